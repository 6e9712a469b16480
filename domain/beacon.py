"""The beacon of a scheduled draw: public randomness that did not exist when the commitment was
published and that nobody here can choose (docs/draw-protocol.md §3.3).

Two sources, both checkable offline from the values stored in the bundle:

- **drand**: a round of a drand chain (the League of Entropy's *quicknet* in production), its
  number fixed at announce time from the draw time (:func:`round_at`). The round's BLS signature
  is checked against the chain's public key (that check needs a pairing library, so it lives in
  ``core.drand`` and is passed in as a function); ``randomness = SHA-256(signature)``; the beacon
  string is :func:`drand_beacon`.
- **values named in advance** (RFC 3797 style): the coordinator names public sources at announce
  time (lottery results), types their values at draw time, a second coordinator confirms; the
  beacon string is :func:`values_beacon`.

Pure: round arithmetic, canonical strings, and the check of a ``beacon_source`` object.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

from domain.inputs import half_width

#: The League of Entropy's quicknet, as its chain info publishes it (``/<hash>/info``).
QUICKNET_HASH = "52db9ba70e0cc0f6eaf7803dd07447a1f5477735fd3f661792ba94600c84e971"
QUICKNET_PUBLIC_KEY = (
    "83cf0f2896adee7eb8b5f01fcad3912212c437e0073e911fb90022d3e760183c"
    "8c4b450b6a0a6c3ac6a5776a2d1064510d1fec758c921cc22b0e17e63aaf4bcb"
    "5ed66304de9cf809bd274ca73bab4af5a6e9c76a4bc09e76eae8991ef5ece45a"
)
QUICKNET_GENESIS = 1692803367
QUICKNET_PERIOD = 3
SCHEME = "bls-unchained-g1-rfc9380"

KIND_DRAND = "drand"
KIND_VALUES = "values"
KINDS = (KIND_DRAND, KIND_VALUES)

MAX_SOURCES = 8
MAX_SOURCE_NAME = 120
MAX_VALUE_DIGITS = 40
MAX_BEACON = 255  # the longest beacon string a draw stores
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX96 = re.compile(r"[0-9a-f]{96}")
_HEX192 = re.compile(r"[0-9a-f]{192}")
_BEACON_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_NUMBER = re.compile(r"[0-9]+")
_SEPARATORS = re.compile(r"[\s,，.。、;；/]+")

#: Checks a BLS signature: ``(public key hex, round, signature hex) -> bool`` (``core.drand``).
SignatureCheck = Callable[[str, int, str], bool]


class BeaconError(ValueError):
    """A beacon value or plan that cannot be used; ``code`` names a template text."""

    def __init__(self, code: str, **params: Any) -> None:
        self.code = code
        self.params = params
        super().__init__(f"{code}: " + ", ".join(f"{k}={v!r}" for k, v in params.items()))


@dataclass(frozen=True)
class Chain:
    """A drand chain's info: what a verifier needs to check its rounds."""

    hash: str
    public_key: str
    genesis_time: int
    period: int
    beacon_id: str
    scheme: str = SCHEME

    @property
    def public(self) -> bool:
        """The League of Entropy's quicknet, not a local test chain."""
        return self.hash == QUICKNET_HASH and self.public_key == QUICKNET_PUBLIC_KEY

    def to_dict(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "public_key": self.public_key,
            "genesis_time": self.genesis_time,
            "period": self.period,
            "beacon_id": self.beacon_id,
            "scheme": self.scheme,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Chain:
        ints = ("genesis_time", "period")
        strs = ("hash", "public_key", "beacon_id", "scheme")
        if not isinstance(raw, Mapping) or set(raw) != set(ints + strs):
            raise BeaconError("beacon_chain_malformed")
        if not all(isinstance(raw[k], int) and not isinstance(raw[k], bool) for k in ints):
            raise BeaconError("beacon_chain_malformed")
        if not all(isinstance(raw[k], str) for k in strs):
            raise BeaconError("beacon_chain_malformed")
        chain = cls(raw["hash"], raw["public_key"], raw["genesis_time"], raw["period"], raw["beacon_id"], raw["scheme"])
        chain.check()
        return chain

    def check(self) -> None:
        if not (
            _HEX64.fullmatch(self.hash)
            and _HEX192.fullmatch(self.public_key)
            and self.genesis_time >= 0
            and self.period > 0
            and _BEACON_ID.fullmatch(self.beacon_id)
            and self.scheme == SCHEME
        ):
            raise BeaconError("beacon_chain_malformed")


QUICKNET = Chain(QUICKNET_HASH, QUICKNET_PUBLIC_KEY, QUICKNET_GENESIS, QUICKNET_PERIOD, "quicknet")


# --------------------------------------------------------------------------- round arithmetic


def unix_seconds(at: datetime) -> int:
    """Whole seconds since the epoch, rounded up (a round at or after ``at``)."""
    micro = (at.astimezone(UTC) - _EPOCH) // _MICROSECOND
    return -(-micro // 1_000_000)


def round_time(chain: Chain, number: int) -> int:
    """When round ``number`` (1, 2, …) is produced, in unix seconds: genesis + (number − 1) × period."""
    return chain.genesis_time + (number - 1) * chain.period


def round_at(chain: Chain, at: int) -> int:
    """The first round whose time is ≥ ``at`` (unix seconds); round 1 before the genesis."""
    if at <= chain.genesis_time:
        return 1
    return -(-(at - chain.genesis_time) // chain.period) + 1


# --------------------------------------------------------------------------- canonical strings


def randomness(signature_hex: str) -> str:
    """drand's randomness of a round: hex(SHA-256(signature bytes))."""
    return sha256(bytes.fromhex(signature_hex)).hexdigest()


def drand_beacon(chain: Chain, number: int, randomness_hex: str) -> str:
    """The beacon string of a drand round: ``drand/<beacon id>/<round>/<randomness hex>``."""
    return f"drand/{chain.beacon_id}/{number}/{randomness_hex}"


def parse_value(text: str) -> tuple[int, ...]:
    """A typed source value → its numbers: non-negative decimal integers separated by spaces,
    commas, dots, slashes or their full-width forms (``"3 0 7"``, ``"03,17,22"``), full-width
    digits read as ASCII (``"３ ０ ７"``). At least one; each at most 40 digits."""
    parts = [p for p in _SEPARATORS.split(half_width(text).strip()) if p]
    if not parts or not all(_NUMBER.fullmatch(p) and len(p) <= MAX_VALUE_DIGITS for p in parts):
        raise BeaconError("beacon_value_malformed", value=text[:60])
    return tuple(int(p) for p in parts)


def values_beacon(values: Sequence[Sequence[int]]) -> str:
    """RFC 3797 §4's key string: for each source, in the announced order, its numbers in
    ascending numeric order, each in decimal without leading zeros, joined by ``.``, then ``/``.
    ``[[7, 3, 0], [12]]`` → ``"0.3.7/12/"``."""
    return "".join(".".join(str(n) for n in sorted(numbers)) + "/" for numbers in values)


def check_sources(sources: Sequence[str]) -> tuple[str, ...]:
    """Source names as announced: 1–8 of them, each non-empty, at most 120 characters, no control
    characters, no repeats."""
    names = tuple(s.strip() for s in sources)
    if not 1 <= len(names) <= MAX_SOURCES:
        raise BeaconError("beacon_sources_count", limit=MAX_SOURCES)
    for name in names:
        if not name or len(name) > MAX_SOURCE_NAME or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
            raise BeaconError("beacon_source_name", name=name[:60], limit=MAX_SOURCE_NAME)
    if len(set(names)) != len(names):
        raise BeaconError("beacon_source_repeated")
    return names


# --------------------------------------------------------------------------- plans and sources


def drand_plan(chain: Chain, fire_at: datetime) -> dict[str, Any]:
    """What an announcement publishes for a drand beacon: the chain and the round to be used."""
    at = unix_seconds(fire_at)
    return {"kind": KIND_DRAND, "chain": chain.to_dict(), "fire_at": at, "round": round_at(chain, at)}


def values_plan(sources: Sequence[str]) -> dict[str, Any]:
    """What an announcement publishes for values named in advance: the sources, in order."""
    return {"kind": KIND_VALUES, "sources": list(check_sources(sources))}


def drand_source(plan: Mapping[str, Any], signature_hex: str) -> tuple[str, dict[str, Any]]:
    """The beacon string and draw.json's ``beacon_source`` for the planned round's signature
    (checked by the caller)."""
    chain = Chain.from_dict(plan["chain"])
    rnd = randomness(signature_hex)
    source = {**plan, "signature": signature_hex, "randomness": rnd}
    return drand_beacon(chain, plan["round"], rnd), source


def values_source(
    plan: Mapping[str, Any], typed: Sequence[str], *, entered_by: str, confirmed_by: str
) -> tuple[str, dict[str, Any]]:
    """The beacon string and ``beacon_source`` for values typed for the announced sources."""
    sources = list(plan["sources"])
    if len(typed) != len(sources):
        raise BeaconError("beacon_values_count", expected=len(sources), found=len(typed))
    if not confirmed_by or confirmed_by == entered_by:
        raise BeaconError("beacon_values_unconfirmed")
    numbers = [parse_value(v) for v in typed]
    if len(values_beacon(numbers)) > MAX_BEACON:
        raise BeaconError("beacon_values_too_long", limit=MAX_BEACON)
    source = {
        "kind": KIND_VALUES,
        "sources": sources,
        "values": [".".join(str(n) for n in sorted(ns)) for ns in numbers],
        "entered_by": entered_by,
        "confirmed_by": confirmed_by,
    }
    return values_beacon(numbers), source


# --------------------------------------------------------------------------- verifying


@dataclass(frozen=True)
class Finding:
    """One check of a bundle's beacon: ``what`` (a text code), ok, and the values shown."""

    ok: bool
    what: str
    params: Mapping[str, Any]


def check_source(beacon: str, source: Any, check_signature: SignatureCheck | None) -> list[Finding]:
    """Check draw.json's ``beacon_source`` against its ``beacon`` (docs §11 step 6a)."""
    if not isinstance(source, dict) or source.get("kind") not in KINDS:
        return [Finding(False, "beacon_malformed", {})]
    try:
        if source["kind"] == KIND_DRAND:
            return _check_drand(beacon, source, check_signature)
        return _check_values(beacon, source)
    except (BeaconError, KeyError, TypeError, ValueError):
        return [Finding(False, "beacon_malformed", {})]


_DRAND_FIELDS = frozenset({"kind", "chain", "fire_at", "round", "signature", "randomness"})
_VALUES_FIELDS = frozenset({"kind", "sources", "values", "entered_by", "confirmed_by"})


def _check_drand(beacon: str, source: dict[str, Any], check_signature: SignatureCheck | None) -> list[Finding]:
    if set(source) != _DRAND_FIELDS:
        raise BeaconError("beacon_malformed")
    chain = Chain.from_dict(source["chain"])
    at, number, sig, rnd = source["fire_at"], source["round"], source["signature"], source["randomness"]
    if not (isinstance(at, int) and isinstance(number, int) and isinstance(sig, str) and isinstance(rnd, str)):
        raise BeaconError("beacon_malformed")
    if isinstance(at, bool) or isinstance(number, bool) or not _HEX96.fullmatch(sig) or not _HEX64.fullmatch(rnd):
        raise BeaconError("beacon_malformed")
    # A chain other than quicknet is shown as a test chain (its rounds prove nothing about who
    # could choose them); one that claims quicknet's hash with another key fails.
    impostor = chain.hash == QUICKNET_HASH and not chain.public
    what = "beacon_chain_public" if chain.public or impostor else "beacon_chain_test"
    out = [Finding(not impostor, what, {"chain": chain.hash, "beacon_id": chain.beacon_id})]
    expected = round_at(chain, at)
    out.append(Finding(expected == number, "beacon_round", {"round": number, "expected": expected, "fire_at": at}))
    if check_signature is None:
        out.append(Finding(False, "beacon_signature_unchecked", {"round": number}))
    else:
        out.append(Finding(check_signature(chain.public_key, number, sig), "beacon_signature", {"round": number}))
    derived = randomness(sig)
    out.append(Finding(derived == rnd, "beacon_randomness", {"found": rnd, "derived": derived}))
    canonical = drand_beacon(chain, number, derived)
    out.append(Finding(canonical == beacon, "beacon_string", {"found": beacon, "derived": canonical}))
    return out


def _check_values(beacon: str, source: dict[str, Any]) -> list[Finding]:
    if set(source) != _VALUES_FIELDS:
        raise BeaconError("beacon_malformed")
    sources, values = source["sources"], source["values"]
    if not (isinstance(sources, list) and isinstance(values, list) and len(sources) == len(values)):
        raise BeaconError("beacon_malformed")
    check_sources([s if isinstance(s, str) else "" for s in sources])
    who = (source["entered_by"], source["confirmed_by"])
    confirmed = all(isinstance(w, str) and w.strip() for w in who) and who[0] != who[1]
    numbers = [parse_value(v) if isinstance(v, str) else () for v in values]
    canonical = values_beacon(numbers)
    return [
        Finding(confirmed, "beacon_values_confirmed", {"confirmed_by": str(who[1]), "entered_by": str(who[0])}),
        Finding(
            canonical == beacon,
            "beacon_values",
            {"sources": " | ".join(str(s) for s in sources), "found": beacon, "derived": canonical},
        ),
    ]
