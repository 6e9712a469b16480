"""Who a web request comes from behind trusted reverse proxies (domain/network.py)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.network import MAX_HOPS, client_address, parse_networks

PROXY = parse_networks("10.0.0.5, 10.1.0.0/16, ::1")


def test_without_trusted_proxies_the_peer_is_the_client_whatever_it_forwards():
    assert client_address("10.0.0.5", ["203.0.113.7"], ()) == "10.0.0.5"


def test_a_peer_that_is_not_a_trusted_proxy_cannot_name_another_client():
    assert client_address("198.51.100.9", ["203.0.113.7"], PROXY) == "198.51.100.9"


@pytest.mark.parametrize(
    ("headers", "client"),
    [
        (["203.0.113.7"], "203.0.113.7"),  # one proxy
        (["203.0.113.7, 10.1.2.3"], "203.0.113.7"),  # two proxies, both ours
        (["1.2.3.4, 203.0.113.7"], "203.0.113.7"),  # the client sent its own header: only our proxy's hop counts
        (["1.2.3.4", "203.0.113.7"], "203.0.113.7"),  # the same in two headers
        (["10.1.0.9, 10.1.0.8"], "10.1.0.9"),  # every hop is ours: the leftmost
        ([], "10.0.0.5"),  # no header: the proxy itself (a health check)
        (["not-an-ip, 203.0.113.7"], "203.0.113.7"),
        (["203.0.113.7, garbage"], "10.0.0.5"),  # what our proxy wrote is not an address: stop at the proxy
        (["203.0.113.7:51234"], "203.0.113.7"),
        (["[2001:db8::7]:443"], "2001:db8::7"),
        ([" 2001:db8::7 "], "2001:db8::7"),
    ],
)
def test_forwarded_for_is_read_from_the_right_past_our_proxies(headers, client):
    assert client_address("10.0.0.5", headers, PROXY) == client


def test_an_ipv4_mapped_peer_is_its_ipv4_address():
    assert client_address("::ffff:10.0.0.5", ["203.0.113.7"], PROXY) == "203.0.113.7"


def test_a_very_long_header_is_cut_on_the_clients_side():
    forged = ", ".join(f"198.51.{i // 250}.{i % 250}" for i in range(10_000))
    assert client_address("10.0.0.5", [forged + ", 203.0.113.7, 10.1.0.1"], PROXY) == "203.0.113.7"
    ours = ", ".join(f"10.1.0.{i}" for i in range(MAX_HOPS + 5))  # all ours: the leftmost of those read
    assert client_address("10.0.0.5", [ours], PROXY) == "10.1.0.5"


@pytest.mark.parametrize("text", ["10.0.0.300", "proxy.example", "10.0.0.0/33", "10.0.0.5;"])
def test_a_wrong_proxy_setting_names_the_entry(text):
    with pytest.raises(ValueError, match="is not an IP address or network"):
        parse_networks(f"10.0.0.5, {text}")


@pytest.mark.parametrize("text", ["0.0.0.0/0", "::/0"])
def test_trusting_every_address_is_refused(text):
    with pytest.raises(ValueError, match="would be believed from anyone"):
        parse_networks(text)


def test_proxy_settings_read_addresses_and_networks():
    assert parse_networks(" 10.0.0.5 , ,10.1.0.0/16") == (
        ipaddress.ip_network("10.0.0.5/32"),
        ipaddress.ip_network("10.1.0.0/16"),
    )
    assert parse_networks("") == ()


ips = st.ip_addresses().map(str)


@given(peer=ips, hops=st.lists(st.one_of(ips, st.text(max_size=8)), max_size=6), trusted=st.lists(ips, max_size=3))
def test_the_client_is_the_peer_or_one_of_the_hops_and_never_a_hop_from_an_untrusted_peer(peer, hops, trusted):
    networks = parse_networks(",".join(trusted))
    header = [",".join(h.replace(",", "") for h in hops)]
    client = client_address(peer, header, networks)
    peer_trusted = any(
        ipaddress.ip_address(peer) in n for n in networks if n.version == ipaddress.ip_address(peer).version
    )
    if not peer_trusted:
        assert client == peer
    else:
        assert client == str(ipaddress.ip_address(peer)) or client in {
            str(ipaddress.ip_address(h.strip())) for h in header[0].split(",") if _is_ip(h)
        }


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip())
    except ValueError:
        return False
    return True
