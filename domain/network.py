"""Who a web request comes from, behind reverse proxies we trust (pure: the standard library only).

The service reads a visitor's address for the per-client limits (guessing notice codes) and the
audit. Behind a reverse proxy the connection's peer is the proxy, so every visitor would share one
address — one visitor's wrong codes would lock the notice pages for everyone. A proxy says who it
forwarded in ``X-Forwarded-For``, appending the address it saw to whatever the client sent; only the
part written by proxies we trust is believed:

- a request whose peer is not a trusted proxy comes from that peer; its ``X-Forwarded-For`` is
  ignored (anyone can send one);
- otherwise ``X-Forwarded-For`` is read from the right, past every trusted proxy, and the first
  address that is not one of them is the client (what nginx's ``real_ip_recursive on`` does); if
  every hop is trusted, the leftmost is. An entry that is not an address ends the walk: what lies to
  its left was written by nobody we trust, so the last trusted hop is taken as the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: The most ``X-Forwarded-For`` entries read (a longer header is cut from the left, the client's side).
MAX_HOPS = 32


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"10.0.0.5, 192.168.0.0/24, ::1"`` -> networks (a bare address is its /32 or /128).
    ValueError naming the entry that is neither an address nor a network."""
    out = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/24)") from None
        if network.prefixlen == 0:
            raise ValueError(f"{item!r} is every address: X-Forwarded-For would be believed from anyone")
        out.append(network)
    return tuple(out)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:51234"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:10.0.0.5 is 10.0.0.5
    return mapped or address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def client_address(peer: str, forwarded_for: Iterable[str], trusted: Sequence[Network]) -> str:
    """The visitor's address: ``peer`` (the connection's), or — when ``peer`` is a trusted proxy —
    the first untrusted hop of ``forwarded_for`` (every ``X-Forwarded-For`` header's entries, in
    order) read from the right."""
    here = _address(peer)
    if not trusted or here is None or not _trusted(here, trusted):
        return peer
    hops = [h for header in forwarded_for for h in header.split(",")][-MAX_HOPS:]
    client = here
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        client = address
        if not _trusted(address, trusted):
            break
    return str(client)
