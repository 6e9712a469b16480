"""domain.beacon and core.drand: round arithmetic, the canonical beacon strings, and the checks of
a bundle's beacon_source against real quicknet rounds (recorded: no network)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.cli import main
from core import drand
from domain import beacon as b
from domain import bundle
from domain.draw import run_draw
from simulators.drand import QUICKNET_RECORDED
from tests.domain.draw_cases import example_inputs

# drand-client's test vector for the same scheme on another chain ("walkthrough")
WALKTHROUGH_PK = (
    "81d320f220ee9c79e60e19dedc838c31e3ab919b15481e9feb52f643628c4f6a13fdc52129493875a818109d767272ca"
    "0541cbcdcea9335f2870d781b39b845ba8cbd44fdfe4967781cf72ca5917fc9398bcf97ca0548ed5a709016c4b1ff0f3"
)
WALKTHROUGH_SIG = "95c93585c513ebbcb4777ff15599b3140e5ec0295faa0e483f3deadd88fa6d43f0d3703e3a4ce106e8fd6c6987f32126"


chains = st.builds(
    lambda g, p: b.Chain("0" * 64, "a" * 192, g, p, "t"),
    st.integers(min_value=0, max_value=4_000_000_000),
    st.integers(min_value=1, max_value=3600),
)


@given(chains, st.integers(min_value=0, max_value=8_000_000_000))
def test_round_at_is_the_first_round_at_or_after_the_time(chain, at):
    r = b.round_at(chain, at)
    assert r >= 1
    if at > chain.genesis_time:
        assert b.round_time(chain, r) >= at  # at or after
        assert r == 1 or b.round_time(chain, r - 1) < at  # the first such
    else:
        assert r == 1


@given(chains, st.integers(min_value=1, max_value=2_000_000_000))
def test_a_round_time_maps_back_to_its_round(chain, r):
    assert b.round_at(chain, b.round_time(chain, r)) == r


def test_quicknet_values_and_a_known_round():
    assert b.QUICKNET.public and b.QUICKNET.period == 3 and b.QUICKNET.genesis_time == 1692803367
    # round 1000000 was produced at 2023-09-27 08:29:24 UTC
    assert b.round_time(b.QUICKNET, 1_000_000) == 1695803364
    fire_at = datetime(2023, 9, 27, 8, 29, 23, 500000, tzinfo=UTC)
    assert b.unix_seconds(fire_at) == 1695803364  # rounded up: no round before the draw time
    assert b.drand_plan(b.QUICKNET, fire_at)["round"] == 1_000_000
    assert b.drand_plan(b.QUICKNET, fire_at + timedelta(seconds=1))["round"] == 1_000_001


@pytest.mark.parametrize("number", sorted(QUICKNET_RECORDED))
def test_recorded_quicknet_rounds_verify_and_only_for_their_round(number):
    sig = QUICKNET_RECORDED[number]
    assert drand.verify_signature(b.QUICKNET_PUBLIC_KEY, number, sig)
    assert not drand.verify_signature(b.QUICKNET_PUBLIC_KEY, number + 1, sig)


def test_published_randomness_of_quicknet_rounds():
    # drand-verify's README and drand's own answers give these
    assert b.randomness(QUICKNET_RECORDED[657413]) == "fc1873a13f3545aeade8401532ef5519920652eee6b0d2b19ca12643b87b3587"
    assert b.randomness(QUICKNET_RECORDED[1000]) == "fe290beca10872ef2fb164d2aa4442de4566183ec51c56ff3cd603d930e54fdd"


def test_the_scheme_on_another_chain_and_malformed_inputs():
    assert drand.verify_signature(WALKTHROUGH_PK, 38, WALKTHROUGH_SIG)
    assert not drand.verify_signature(WALKTHROUGH_PK, 55, WALKTHROUGH_SIG)
    assert not drand.verify_signature(b.QUICKNET_PUBLIC_KEY, 38, WALKTHROUGH_SIG)  # another chain's key
    assert not drand.verify_signature(b.QUICKNET_PUBLIC_KEY, 1000, "00" * 48)
    assert not drand.verify_signature(b.QUICKNET_PUBLIC_KEY, 1000, "zz")
    assert not drand.verify_signature(b.QUICKNET_PUBLIC_KEY, -1, QUICKNET_RECORDED[1000])
    assert not drand.verify_signature(b.QUICKNET_PUBLIC_KEY, 2**64, QUICKNET_RECORDED[1000])


def test_a_test_chain_signs_rounds_that_verify_under_its_own_key_only():
    chain = drand.test_chain(1_700_000_000, secret_key=12345)
    sig = chain.sign(7)
    assert drand.verify_signature(chain.chain.public_key, 7, sig)
    assert not drand.verify_signature(chain.chain.public_key, 8, sig)
    assert not drand.verify_signature(b.QUICKNET_PUBLIC_KEY, 7, sig)
    assert not chain.chain.public and chain.chain.scheme == b.SCHEME


def _drand_source(number: int = 1_000_000, sig: str | None = None) -> tuple[str, dict]:
    plan = b.drand_plan(b.QUICKNET, datetime.fromtimestamp(b.round_time(b.QUICKNET, number), UTC))
    return b.drand_source(plan, sig or QUICKNET_RECORDED[number])


def _failed(beacon: str, source: dict) -> list[str]:
    return [f.what for f in b.check_source(beacon, source, drand.verify_signature) if not f.ok]


def test_a_real_quicknet_source_checks_line_by_line():
    beacon, source = _drand_source()
    assert beacon == "drand/quicknet/1000000/b22aad4794f7451896f7a371aa46106fd84d919f3f569acd5b2fddf1d1440af3"
    findings = b.check_source(beacon, source, drand.verify_signature)
    assert [(f.what, f.ok) for f in findings] == [
        ("beacon_chain_public", True),
        ("beacon_round", True),
        ("beacon_signature", True),
        ("beacon_randomness", True),
        ("beacon_string", True),
    ]


def test_a_forged_or_altered_signature_fails():
    beacon, source = _drand_source()
    other = QUICKNET_RECORDED[657413]  # a real quicknet signature, of another round
    forged = {**source, "signature": other, "randomness": b.randomness(other)}
    assert _failed(b.drand_beacon(b.QUICKNET, 1_000_000, b.randomness(other)), forged) == ["beacon_signature"]
    flipped = source["signature"][:-1] + ("0" if source["signature"][-1] != "0" else "1")
    assert "beacon_signature" in _failed(beacon, {**source, "signature": flipped})


def test_a_wrong_round_fails():
    beacon, source = _drand_source()
    # the round the draw time gives is 1000000; claiming it for a draw time a minute later fails
    assert _failed(beacon, {**source, "fire_at": source["fire_at"] + 60}) == ["beacon_round"]
    # a real round, but not the one the draw time fixed
    beacon, source = _drand_source(657413)
    assert _failed(beacon, {**source, "round": 1_000_000}) == ["beacon_round", "beacon_signature", "beacon_string"]


def test_randomness_and_string_must_follow_from_the_signature():
    beacon, source = _drand_source()
    assert _failed(beacon, {**source, "randomness": "0" * 64}) == ["beacon_randomness"]
    assert _failed(beacon + "0", source) == ["beacon_string"]


def test_a_test_chain_is_flagged_and_quicknet_cannot_be_impersonated():
    chain = drand.test_chain(1_700_000_000, secret_key=99)
    plan = b.drand_plan(chain.chain, datetime.fromtimestamp(1_700_000_300, UTC))
    beacon, source = b.drand_source(plan, chain.sign(plan["round"]))
    findings = b.check_source(beacon, source, drand.verify_signature)
    assert all(f.ok for f in findings) and findings[0].what == "beacon_chain_test"
    # a test chain's key under quicknet's hash is not quicknet: it fails
    fake = {**source, "chain": {**source["chain"], "hash": b.QUICKNET_HASH}}
    assert _failed(beacon, fake) == ["beacon_chain_public"]


def test_without_a_pairing_library_the_signature_is_reported_unchecked():
    beacon, source = _drand_source()
    assert [f.what for f in b.check_source(beacon, source, None) if not f.ok] == ["beacon_signature_unchecked"]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s.pop("signature"),
        lambda s: s.update(extra=1),
        lambda s: s.update(round="1000000"),
        lambda s: s.update(round=True),
        lambda s: s.update(chain={"hash": "x"}),
        lambda s: s.update(kind="lottery"),
        lambda s: s.update(signature="AB" * 48),
    ],
)
def test_a_malformed_drand_source_fails_cleanly(mutate):
    beacon, source = _drand_source()
    mutate(source)
    assert _failed(beacon, source) in (["beacon_malformed"],)


# --------------------------------------------------------------------------- RFC 3797 values


def test_values_beacon_is_rfc3797s_key_string():
    assert b.values_beacon([(7, 3, 0), (12,)]) == "0.3.7/12/"
    assert b.values_beacon([(17, 2, 2), (5,)]) == "2.2.17/5/"
    assert b.parse_value(" 03, 17，22 ") == (3, 17, 22)
    assert b.parse_value("307") == (307,)  # one number keeps the figures' order
    for bad in ("", "abc", "1.5e3", "-3", "1" * 41):
        with pytest.raises(b.BeaconError):
            b.parse_value(bad)


@given(st.lists(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=6), min_size=1, max_size=8))
def test_values_beacon_ignores_order_within_a_source_and_keeps_sources_apart(values):
    reordered = [list(reversed(v)) for v in values]
    assert b.values_beacon(values) == b.values_beacon(reordered)
    assert b.values_beacon(values).count("/") == len(values)


SOURCES = ["福彩3D 2026340期开奖号码", "体彩排列5 26340期开奖号码"]


def _values_source(typed=("3 0 7", "4 4 1 9 0")) -> tuple[str, dict]:
    return b.values_source(b.values_plan(SOURCES), list(typed), entered_by="cli", confirmed_by="coordinator:7")


def test_a_values_source_verifies_and_fails_if_a_value_changed():
    beacon, source = _values_source()
    assert beacon == "0.3.7/0.1.4.4.9/"
    assert [f.ok for f in b.check_source(beacon, source, None)] == [True, True]
    changed = {**source, "values": ["0.3.8", source["values"][1]]}
    assert _failed(beacon, changed) == ["beacon_values"]
    swapped = {**source, "values": list(reversed(source["values"]))}
    assert _failed(beacon, swapped) == ["beacon_values"]  # sources stay in the announced order
    assert _failed(beacon, {**source, "confirmed_by": "cli"}) == ["beacon_values_confirmed"]


def test_values_need_one_per_source_and_a_second_person():
    with pytest.raises(b.BeaconError) as info:
        _values_source(("307",))
    assert info.value.code == "beacon_values_count"
    with pytest.raises(b.BeaconError) as info:
        b.values_source(b.values_plan(SOURCES), ["1", "2"], entered_by="coordinator:7", confirmed_by="coordinator:7")
    assert info.value.code == "beacon_values_unconfirmed"


@pytest.mark.parametrize(
    "sources,code",
    [
        ([], "beacon_sources_count"),
        (["x"] * 9, "beacon_sources_count"),
        (["a", "a"], "beacon_source_repeated"),
        (["a\nb"], "beacon_source_name"),
        (["长" * 121], "beacon_source_name"),
        ([" "], "beacon_source_name"),
    ],
)
def test_bad_source_names_are_refused(sources, code):
    with pytest.raises(b.BeaconError) as info:
        b.values_plan(sources)
    assert info.value.code == code


# --------------------------------------------------------------------------- inspectbot verify


def _bundle_dir(directory, beacon: str, source: dict):
    inputs = dataclasses.replace(example_inputs(), beacon=beacon)
    files = bundle.build_bundle(inputs, run_draw(inputs), beacon_source=source)
    directory.mkdir()
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return directory


def test_cli_verify_says_which_beacon_and_checks_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INSPECTBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INSPECTBOT_LOCALE", "zh-CN")
    beacon, source = _drand_source()
    assert main(["verify", str(_bundle_dir(tmp_path / "real", beacon, source))]) == 0
    out = capsys.readouterr().out
    assert "✓ 信标来源：drand 公共网络 quicknet" in out and "✓ drand 第 1000000 轮的 BLS 签名" in out
    # the signature of another real round under this round's number: exit 1, and it says why
    other = QUICKNET_RECORDED[657413]
    forged = {**source, "signature": other, "randomness": b.randomness(other)}
    forged_beacon = b.drand_beacon(b.QUICKNET, 1_000_000, b.randomness(other))
    assert main(["verify", str(_bundle_dir(tmp_path / "forged", forged_beacon, forged))]) == 1
    assert "✗ drand 第 1000000 轮的 BLS 签名" in capsys.readouterr().out


def test_cli_verify_flags_a_test_chain(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INSPECTBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INSPECTBOT_LOCALE", "en")
    chain = drand.test_chain(1_700_000_000, secret_key=4242)
    plan = b.drand_plan(chain.chain, datetime.fromtimestamp(1_700_000_600, UTC))
    beacon, source = b.drand_source(plan, chain.sign(plan["round"]))
    bundle_dir = str(_bundle_dir(tmp_path / "test", beacon, source))
    assert main(["verify", bundle_dir]) == 3  # every check holds, but the beacon proves nothing
    said = capsys.readouterr()
    assert "a local test chain, not the public drand network" in said.out
    assert "NOT A PUBLIC BEACON" in said.err and "--allow-test-chain" in said.err
    assert main(["verify", "--allow-test-chain", bundle_dir]) == 0
    said = capsys.readouterr()
    assert "NOTE: the beacon came from a local TEST drand chain" in said.out and not said.err
    # a failing check on a test chain stays a failure (1), whatever the flag
    broken = {**source, "randomness": "0" * 64}
    assert main(["verify", "--allow-test-chain", str(_bundle_dir(tmp_path / "broken", beacon, broken))]) == 1


def test_cli_verify_re_forms_the_values_string(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INSPECTBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INSPECTBOT_LOCALE", "zh-CN")
    beacon, source = _values_source()
    assert main(["verify", str(_bundle_dir(tmp_path / "v", beacon, source))]) == 0
    assert "按 RFC 3797 由各来源的数值重新组成" in capsys.readouterr().out
    changed = {**source, "values": ["0.3.8", source["values"][1]]}
    assert main(["verify", str(_bundle_dir(tmp_path / "v2", beacon, changed))]) == 1


def test_values_beyond_the_stored_length_are_refused():
    with pytest.raises(b.BeaconError) as info:
        b.values_source(
            b.values_plan([f"source {i}" for i in range(8)]),
            [" ".join(["9" * 40] * 2)] * 8,
            entered_by="cli",
            confirmed_by="coordinator:7",
        )
    assert info.value.code == "beacon_values_too_long"


def test_beacon_settings_are_checked():
    from core.settings import Settings, SettingsError

    assert Settings().beacon == "none" and Settings().chain == b.QUICKNET
    for bad in (
        {"INSPECTBOT_BEACON": "lottery"},
        {"INSPECTBOT_BEACON": "values"},  # names no sources
        {"INSPECTBOT_DRAND_CHAIN": '{"hash": "x"}'},
        {"INSPECTBOT_BEACON_WAIT_MINUTES": "-1"},
    ):
        with pytest.raises(SettingsError):
            Settings.from_env(bad, dotenv=False)
    chain = drand.test_chain(1_700_000_000, secret_key=5)
    s = Settings.from_env(
        {"INSPECTBOT_BEACON": "drand", "INSPECTBOT_DRAND_CHAIN": json.dumps(chain.chain.to_dict())}, dotenv=False
    )
    assert s.chain == chain.chain and s.drand_relays[0].startswith("https://")


async def test_the_relay_client_skips_relays_that_fail_or_lie():
    from simulators.drand import DrandSimulator

    chain = drand.test_chain(1_700_000_000, secret_key=77)
    async with (
        DrandSimulator(chain=chain) as liar,
        DrandSimulator(chain=chain) as down,
        DrandSimulator(chain=chain) as good,
    ):
        liar.corrupt, down.outage = True, True
        fetch = drand.relay_fetcher([liar.url, down.url, "http://127.0.0.1:9", good.url], timeout=5)
        assert await fetch(chain.chain, 1000) == chain.sign(1000)  # the liar's answer did not verify
        assert len(liar.requests) == 1 and len(down.requests) == 1
        assert await drand.relay_fetcher([liar.url, down.url])(chain.chain, 1000) is None
        # quicknet: only recorded rounds exist here
        assert await fetch(b.QUICKNET, 1000) == QUICKNET_RECORDED[1000]
        assert await fetch(b.QUICKNET, 1001) is None
