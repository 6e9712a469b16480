"""Which inspections are surveyed: a seeded, stratified draw with exact quotas. Pure, stdlib only.

Each plan says what share of its inspections is surveyed, per stratum (the entity's credit-risk
class A–E); by default all of class D and E and a third of the rest (:data:`DEFAULT_SHARES`).
The draw mirrors the draw protocol's entity selection (shared/draw-protocol.md §4), with its
own domain tag so the two never share ranks:

* ``rank(i) = u64( SHA-256( seed || "survey" || 0x00 || key(i) ) )`` — ``seed`` is the
  recorded random seed (32 bytes from the CSPRNG, stored with the sample), ``key(i)`` the
  inspection's stable key as UTF-8 (e.g. ``"P0042/2026-12-01/17"``: draw reference and
  inspection number), ``u64`` the first 8 bytes as an unsigned big-endian integer;
* for each stratum ``s`` with ``N_s`` inspections and share ``p_s``:
  ``n_s = min(N_s, ceil(N_s × p_s))``, computed with exact fractions (``"1/3"`` is exactly a
  third; ``"0.05"`` exactly five hundredths — never binary floating point);
* surveyed in ``s``: the ``n_s`` inspections with the smallest ``(rank, key)``.

Anyone holding the seed and the list re-derives the sample; nobody without the seed can tell
which visits will be surveyed — so the seed is shown to coordinators and auditors, never to
inspectors, and the sample is best drawn once per draw over all its inspections (each is
surveyed when its result is submitted).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

TAG = b"survey"
OTHERS = "*"  # the share of every stratum not named
#: All of class D and E, a third of the rest.
DEFAULT_SHARES: Mapping[str, str] = {"D": "1", "E": "1", OTHERS: "1/3"}

ShareLike = str | int | Decimal | Fraction


@dataclass(frozen=True)
class Candidate:
    """An inspection that may be surveyed: its stable key and its stratum (risk class)."""

    key: str
    stratum: str


def share(value: ShareLike) -> Fraction:
    """An exact share in [0, 1] from ``"0.05"``, ``"1/3"``, ``1``, a Decimal or a Fraction.
    Floats are refused: ``0.1`` is not one tenth in binary."""
    if isinstance(value, (bool, float)) or not isinstance(value, (str, int, Decimal, Fraction)):
        raise ValueError(f"a share must be a decimal or fraction string, not {value!r}")
    try:
        exact = Fraction(value.strip() if isinstance(value, str) else value)
    except (ValueError, ZeroDivisionError, ArithmeticError) as exc:
        raise ValueError(f"not a share: {value!r}") from exc
    if not 0 <= exact <= 1:
        raise ValueError(f"a share must lie between 0 and 1, got {value!r}")
    return exact


def quota(pool: int, p: ShareLike) -> int:
    """``min(pool, ceil(pool × p))`` in exact arithmetic."""
    if pool < 0:
        raise ValueError("pool size cannot be negative")
    product = pool * share(p)
    return min(pool, -(-product.numerator // product.denominator))


def rank(seed: bytes, key: str) -> int:
    """``u64(SHA-256(seed || "survey" || 0x00 || key))``."""
    digest = hashlib.sha256(seed + TAG + b"\x00" + key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def share_for(stratum: str, shares: Mapping[str, ShareLike]) -> Fraction:
    """The share of ``stratum``: its own, else the ``"*"`` one."""
    if stratum in shares:
        return share(shares[stratum])
    if OTHERS in shares:
        return share(shares[OTHERS])
    raise ValueError(f"no share for stratum {stratum!r} and no {OTHERS!r} default")


def sample(inspections: Iterable[Candidate], shares: Mapping[str, ShareLike], seed: bytes) -> tuple[Candidate, ...]:
    """The surveyed inspections, in ascending ``(rank, key)``; see the module docstring.
    ``shares`` maps strata to shares, ``"*"`` to the share of the others (:data:`DEFAULT_SHARES`
    if the plan says nothing)."""
    if not isinstance(seed, (bytes, bytearray)):
        raise TypeError("seed must be bytes")
    by_stratum: dict[str, list[tuple[int, str, Candidate]]] = {}
    seen: set[str] = set()
    for c in inspections:
        if c.key in seen:
            raise ValueError(f"inspection key {c.key!r} appears twice")
        seen.add(c.key)
        by_stratum.setdefault(c.stratum, []).append((rank(bytes(seed), c.key), c.key, c))
    chosen: list[tuple[int, str, Candidate]] = []
    for stratum, ranked in by_stratum.items():
        ranked.sort(key=lambda t: (t[0], t[1].encode("utf-8")))
        chosen.extend(ranked[: quota(len(ranked), share_for(stratum, shares))])
    chosen.sort(key=lambda t: (t[0], t[1].encode("utf-8")))
    return tuple(c for _, _, c in chosen)
