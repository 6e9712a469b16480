"""The publicly verifiable draw (protocol v1, docs/draw-protocol.md; v2, confidential strata, §15:
the same draw over a pool file whose strata are salted commitments, ``domain/confidential.py``).
Pure: stdlib only, no I/O.

Which entities are inspected is fixed byte for byte by shared/draw-protocol.md (sections 1–4, 6);
who inspects them is our design (``domain/teams.py``), specified just as exactly in
docs/draw-protocol.md. Everything here is a function of the published inputs and the seed, so
``domain/bundle.py`` can re-derive a published draw with the same code an auditor would write.

The pool can hold a million entities: the functions on the selection path work on parallel
lists (keys, strata, ranks) and allocate as little per entity as they can.
"""

from __future__ import annotations

import gc
import heapq
import operator
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from hashlib import sha256
from itertools import islice
from math import isqrt
from typing import NamedTuple, TypeVar

from domain import teams
from domain.confidential import PROTOCOL_V2, cut, public_pool_bytes
from domain.protocol import (
    DrawInputError,
    InspectorLine,
    RatioError,
    TeamSpec,
    TeamSpecError,
    TsvFormatError,
    UnitInfo,
    note,
    pair_hash,
)
from domain.protocol import note_fields as note_fields  # re-exported: callers read a draw's notes from here

PROTOCOL = "inspectbot/draw/v1"
SECRET_BYTES = 32


class PoolLine(NamedTuple):
    """One eligible entity: its public key (USCC) and its stratum label (risk class A–E).

    A named tuple rather than a dataclass: a city-scale pool has a million of them, and a
    tuple is built in half the time (``PoolLine._make(row)`` takes a database row as is)."""

    key: str
    stratum: str


@dataclass(frozen=True)
class DrawInputs:
    draw_ref: str
    secret: bytes  # 32 bytes
    beacon: str
    pool: Sequence[PoolLine]  # sorted by key (byte order), unique
    ratios: Mapping[str, str]  # stratum -> decimal string, e.g. {"A": "0.03", "E": "1"}
    inspectors: Sequence[InspectorLine]  # sorted by key, unique
    units: Mapping[str, UnitInfo]  # unit key -> info, for every unit named in inspectors
    divisions: Mapping[str, str]  # entity key -> division code (needed at least for drawn ones)
    team: TeamSpec
    conflicts: frozenset[tuple[str, str]] = frozenset()  # (inspector key, entity key) never together
    recent: frozenset[tuple[str, str]] = frozenset()  # (inspector key, entity key) rotation exclusions
    # v2 (confidential strata, docs §15): the firing's secret salt key; None = v1 (public strata)
    salt_key: bytes | None = None
    # v2: H(published pool.tsv) as announced with the commitment (docs §15.4). Given, the draw
    # takes it instead of computing a million class commitments again; an export recomputes them,
    # and a mismatch shows there (the seed, and so every inspection, would differ).
    announced_pool_digest: bytes | None = None

    @property
    def protocol(self) -> str:
        return PROTOCOL if self.salt_key is None else PROTOCOL_V2


@dataclass(frozen=True)
class Inspection:
    no: int  # 1, 2, … in ascending (rank, key)
    entity: str
    stratum: str
    rank: int  # u64
    team: tuple[str, ...]  # inspector keys, in seat order; empty when unstaffable
    unstaffable: str | None = None  # reason code when the team could not be completed
    division: str = ""  # the entity's division code, as published in draw.json


@dataclass(frozen=True)
class StratumCount:
    pool: int
    ratio: str
    drawn: int


@dataclass(frozen=True)
class DrawOutcome:
    seed: bytes
    pool_digest: bytes
    inspectors_digest: bytes
    strata: Mapping[str, StratumCount]
    inspections: tuple[Inspection, ...]
    notes: tuple[str, ...] = field(default=())  # canonical JSON objects, see note()
    # hex pair hashes (docs/draw-protocol.md §7.4) of the exclusions that team formation
    # consulted and found; published as draw.json "excluded_pairs"
    excluded_pairs: tuple[str, ...] = ()
    protocol: str = PROTOCOL
    # per stratum, the published cut of v2 (docs §15.5): hex16, or None when nothing is drawn
    cuts: Mapping[str, str | None] = field(default_factory=dict)


# --------------------------------------------------------------------------- hashing


def H(data: bytes) -> bytes:
    """SHA-256, the protocol's H."""
    return sha256(data).digest()


def u64(b: bytes) -> int:
    """The first 8 bytes of ``b`` as an unsigned big-endian integer."""
    return int.from_bytes(b[:8], "big")


def commitment(secret: bytes) -> str:
    """hex(H(secret))."""
    _check_secret(secret)
    return sha256(secret).hexdigest()


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes) or len(secret) != SECRET_BYTES:
        # never echo the value: it is a secret
        raise DrawInputError("bad_secret", length=len(secret) if isinstance(secret, bytes) else None)


def derive_seed(
    secret: bytes, beacon: str, pool_digest: bytes, inspectors_digest: bytes, draw_ref: str, protocol: str = PROTOCOL
) -> bytes:
    """Protocol §3: every later hash hangs off this value (v2: the same with its own tag, §15.3)."""
    _check_secret(secret)
    if protocol not in (PROTOCOL, PROTOCOL_V2):
        raise DrawInputError("bad_protocol", protocol=protocol)
    return H(
        protocol.encode()
        + b"\x00"
        + secret
        + b"\x00"
        + beacon.encode()
        + b"\x00"
        + pool_digest
        + b"\x00"
        + inspectors_digest
        + b"\x00"
        + draw_ref.encode()
    )


def rank(seed: bytes, key: str) -> int:
    """r(e) = u64(H(seed || "entity" || 0x00 || e.key))."""
    return u64(H(seed + b"entity\x00" + key.encode()))


# --------------------------------------------------------------------------- TSV files

POOL_FILE = "pool.tsv"
INSPECTORS_FILE = "inspectors.tsv"


@dataclass
class PoolColumns:
    """pool.tsv as parallel columns (no per-line objects): keys, their UTF-8 bytes, strata."""

    keys: list[str]
    keys_b: list[bytes]
    strata: list[str]


def pool_tsv(pool: Sequence[PoolLine]) -> bytes:
    """The pool file's bytes (protocol §2), after checking order, uniqueness and fields."""
    keys = [p.key for p in pool]
    strata = [p.stratum for p in pool]
    return _pool_bytes(keys, strata)


def published_pool_tsv(pool: Sequence[PoolLine], salt_key: bytes | None) -> bytes:
    """pool.tsv as published: v1 the lines themselves, v2 (``salt_key`` given) each stratum
    replaced by its salted class commitment (docs §15.2)."""
    private = pool_tsv(pool)
    if salt_key is None:
        return private
    n = len(pool)
    parts = private.replace(b"\t", b"\n").split(b"\n")
    return public_pool_bytes(parts[0 : 2 * n : 2], parts[1 : 2 * n : 2], salt_key)


def _pool_bytes(keys: list[str], strata: list[str]) -> bytes:
    n = len(keys)
    if n == 0:
        return b""
    text = "".join([f"{k}\t{s}\n" for k, s in zip(keys, strata)])
    # Cheap whole-file checks first; find the guilty line only when one fails.
    if text.count("\t") != n or text.count("\n") != n or not keys[0] or "" in set(strata):
        for i, (k, s) in enumerate(zip(keys, strata), 1):
            _check_field(POOL_FILE, i, "key", k)
            _check_field(POOL_FILE, i, "stratum", s)
    if not all(map(operator.lt, keys, islice(keys, 1, None))):
        _raise_order(POOL_FILE, keys)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        for i, (k, s) in enumerate(zip(keys, strata), 1):
            for name, value in (("key", k), ("stratum", s)):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise TsvFormatError("tsv_not_utf8", file=POOL_FILE, line=i, field=name) from None
        raise


def _check_field(file: str, line: int, name: str, value: str, forbidden: str = "\t\n") -> None:
    if not isinstance(value, str) or not value or any(c in value for c in forbidden):
        raise TsvFormatError("tsv_bad_field", file=file, line=line, field=name, value=str(value))


_Key = TypeVar("_Key", str, bytes)


def _raise_order(file: str, keys: Sequence[_Key]) -> None:
    """Name the first line whose key is not strictly after the previous one."""
    for i in range(1, len(keys)):
        if not keys[i - 1] < keys[i]:
            code = "tsv_duplicate_key" if keys[i - 1] == keys[i] else "tsv_unsorted"
            this = keys[i]
            key = this.decode("utf-8", "replace") if isinstance(this, bytes) else this
            raise TsvFormatError(code, file=file, line=i + 1, key=key)


def parse_pool_tsv(data: bytes) -> PoolColumns:
    """pool.tsv bytes → columns, enforcing every rule of protocol §2 (for verify)."""
    if not data:
        return PoolColumns([], [], [])
    n = data.count(b"\n")
    if not data.endswith(b"\n"):
        raise TsvFormatError("tsv_no_final_newline", file=POOL_FILE, line=n + 1)
    parts = data.replace(b"\t", b"\n").split(b"\n")
    if len(parts) != 2 * n + 1 or b"" in parts[: 2 * n]:
        for i, line in enumerate(data.split(b"\n")[:n], 1):
            fields = line.split(b"\t")
            if len(fields) != 2:
                raise TsvFormatError("tsv_field_count", file=POOL_FILE, line=i, expected=2, found=len(fields))
            if not fields[0] or not fields[1]:
                raise TsvFormatError(
                    "tsv_bad_field", file=POOL_FILE, line=i, field="key" if not fields[0] else "stratum", value=""
                )
    keys_b = parts[0 : 2 * n : 2]
    if not all(map(operator.lt, keys_b, islice(keys_b, 1, None))):
        _raise_order(POOL_FILE, keys_b)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TsvFormatError(
            "tsv_not_utf8", file=POOL_FILE, line=data.count(b"\n", 0, exc.start) + 1, field=""
        ) from None
    sparts = text.replace("\t", "\n").split("\n")
    return PoolColumns(keys=sparts[0 : 2 * n : 2], keys_b=keys_b, strata=sparts[1 : 2 * n : 2])


def inspectors_tsv(inspectors: Sequence[InspectorLine]) -> bytes:
    """The inspectors file's bytes (protocol §2), after checking every line."""
    out = []
    previous = None
    for i, ins in enumerate(inspectors, 1):
        _check_field(INSPECTORS_FILE, i, "key", ins.key)
        _check_field(INSPECTORS_FILE, i, "unit", ins.unit)
        _check_quals(INSPECTORS_FILE, i, ins.quals)
        if previous is not None and not previous < ins.key:
            raise TsvFormatError(
                "tsv_duplicate_key" if previous == ins.key else "tsv_unsorted",
                file=INSPECTORS_FILE,
                line=i,
                key=ins.key,
            )
        previous = ins.key
        out.append(f"{ins.key}\t{ins.unit}\t{','.join(ins.quals)}\n")
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError:
        raise TsvFormatError("tsv_not_utf8", file=INSPECTORS_FILE, line=0, field="") from None


def _check_quals(file: str, line: int, quals: Sequence[str]) -> None:
    for q in quals:
        _check_field(file, line, "quals", q, forbidden="\t\n,")
    if list(quals) != sorted(set(quals)):
        raise TsvFormatError("tsv_quals_unsorted", file=file, line=line, value=",".join(quals))


def parse_inspectors_tsv(data: bytes) -> list[InspectorLine]:
    """inspectors.tsv bytes → lines, enforcing protocol §2 (for verify)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TsvFormatError(
            "tsv_not_utf8", file=INSPECTORS_FILE, line=data.count(b"\n", 0, exc.start) + 1, field=""
        ) from None
    if not text:
        return []
    if not text.endswith("\n"):
        raise TsvFormatError("tsv_no_final_newline", file=INSPECTORS_FILE, line=text.count("\n") + 1)
    out: list[InspectorLine] = []
    for i, line in enumerate(text[:-1].split("\n"), 1):
        fields = line.split("\t")
        if len(fields) != 3:
            raise TsvFormatError("tsv_field_count", file=INSPECTORS_FILE, line=i, expected=3, found=len(fields))
        key, unit, quals = fields
        _check_field(INSPECTORS_FILE, i, "key", key)
        _check_field(INSPECTORS_FILE, i, "unit", unit)
        codes = tuple(quals.split(",")) if quals else ()
        _check_quals(INSPECTORS_FILE, i, codes)
        if out and not out[-1].key < key:
            raise TsvFormatError(
                "tsv_duplicate_key" if out[-1].key == key else "tsv_unsorted", file=INSPECTORS_FILE, line=i, key=key
            )
        out.append(InspectorLine(key, unit, codes))
    return out


# --------------------------------------------------------------------------- quotas and selection

_RATIO = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")


def parse_ratio(text: str) -> Fraction:
    """A ratio string in plain decimal notation ("0.05", "1", "0.125"), exactly, 0 <= p <= 1."""
    if not isinstance(text, str) or not _RATIO.fullmatch(text):
        raise RatioError("bad_ratio", value=str(text))
    value = Fraction(text)
    if value > 1:
        raise RatioError("ratio_above_one", value=text)
    return value


def quota(pool_size: int, ratio: str) -> int:
    """n_s = min(N_s, ceil(N_s × p_s)) in exact arithmetic (protocol §4)."""
    p = parse_ratio(ratio)
    product = pool_size * p
    ceiling = -((-product.numerator) // product.denominator)
    return min(pool_size, ceiling)


@dataclass
class Selection:
    strata: dict[str, StratumCount]
    drawn: list[tuple[int, str, str]]  # (rank, key, stratum) in inspection order
    notes: list[str]
    cuts: dict[str, str | None] = field(default_factory=dict)  # v2's published cut per stratum


def select(seed: bytes, pool: PoolColumns, ratios: Mapping[str, str], *, sigmas: int = 6) -> Selection:
    """Protocol §4: per stratum the n_s smallest (rank, key), numbered over all in (rank, key).

    A stratum of the pool without a ratio draws nothing (ratio "0") and says so in a note;
    a ratio for a stratum absent from the pool is reported with pool 0.

    One pass hashes every key and keeps only the entities whose rank falls below their stratum's
    threshold: ranks are uniform u64s, so a threshold a few standard deviations above the expected
    n_s-th rank keeps at least n_s of them but a few hundred more. Should a stratum keep fewer
    (odds below 1e-9), it is redone exactly with a heap. The result is exact either way.
    """
    for text in ratios.values():
        parse_ratio(text)  # reject a bad plan before hashing a million keys
    sizes = Counter(pool.strata)
    counts: dict[str, StratumCount] = {}
    notes: list[str] = []
    thresholds: dict[str, int] = {}
    for label in sorted(set(sizes) | set(ratios)):
        ratio = ratios.get(label)
        if ratio is None:
            ratio = "0"
            notes.append(note("stratum_without_ratio", stratum=label, pool=sizes[label]))
        size = sizes.get(label, 0)
        n = quota(size, ratio)
        counts[label] = StratumCount(pool=size, ratio=ratio, drawn=n)
        thresholds[label] = _threshold(n, size, sigmas)
    # Compare whole digests with 32-byte limits: d < limit ⟺ u64(d) < threshold, with no int
    # built for the million entities that are not kept.
    limits = {label: _limit(t) for label, t in thresholds.items()}
    prefix = seed + b"entity\x00"
    kept = [
        (d, k, s)
        for k, kb, s in zip(pool.keys, pool.keys_b, pool.strata)
        if (d := sha256(prefix + kb).digest()) < limits[s]
    ]
    frombytes = int.from_bytes
    by_label: dict[str, list[tuple[int, str, str]]] = {label: [] for label in counts}
    for d, k, s in kept:
        by_label[s].append((frombytes(d[:8], "big"), k, s))
    del kept
    drawn: list[tuple[int, str, str]] = []
    cuts: dict[str, str | None] = {}
    for label, count in counts.items():
        chosen = by_label[label]
        # the cut needs the first entity not drawn too (docs §15.5)
        wanted = min(count.drawn + 1, count.pool) if count.drawn else 0
        if len(chosen) < wanted:
            chosen = _exact_smallest(seed, pool, label, wanted)
        chosen.sort()
        drawn.extend(chosen[: count.drawn])
        cuts[label] = cut([r for r, _, _ in chosen[:wanted]], count.drawn)
    drawn.sort()
    return Selection(counts, drawn, notes, cuts)


def _threshold(n: int, size: int, sigmas: int) -> int:
    """An upper bound on the n-th smallest of ``size`` uniform u64 ranks, almost surely: the
    count below it is binomial with mean n + sigmas·√n + 16, so falling short of n takes more
    than ``sigmas`` standard deviations (about 1e-9 for 6)."""
    if n <= 0:
        return 0
    if n >= size:
        return 1 << 65  # above every u64: keep them all
    return max(0, min(1 << 65, ((n + sigmas * isqrt(n) + 16) << 64) // size))


def _limit(threshold: int) -> bytes:
    """The 32-byte string below which exactly the digests with u64 < threshold fall."""
    if threshold >= 1 << 64:
        return b"\xff" * 33  # above every 32-byte digest
    return threshold.to_bytes(8, "big") + bytes(24)


def _exact_smallest(seed: bytes, pool: PoolColumns, label: str, n: int) -> list[tuple[int, str, str]]:
    """The slow, plainly exact path: rank the whole stratum, keep the n smallest (rank, key)."""
    items = [(rank_b(seed, kb), k, s) for k, kb, s in zip(pool.keys, pool.keys_b, pool.strata) if s == label]
    return heapq.nsmallest(n, items)


def rank_b(seed: bytes, key_b: bytes) -> int:
    """:func:`rank` of an already encoded key."""
    return u64(H(seed + b"entity\x00" + key_b))


# --------------------------------------------------------------------------- the whole draw


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC: a million small objects would trigger it hundreds of times, for nothing
    (nothing allocated here forms a cycle)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def run_draw(inputs: DrawInputs) -> DrawOutcome:
    """Select entities per stratum and form teams, exactly as docs/draw-protocol.md says."""
    _check_secret(inputs.secret)
    with gc_paused():
        keys = [p.key for p in inputs.pool]
        strata = [p.stratum for p in inputs.pool]
        pool_bytes = _pool_bytes(keys, strata)
        parts = pool_bytes.replace(b"\t", b"\n").split(b"\n")
        keys_b = parts[0 : 2 * len(keys) : 2]
        if inputs.salt_key is not None and inputs.announced_pool_digest is not None:
            pool_bytes = b""
            pool_digest = inputs.announced_pool_digest
        else:
            if inputs.salt_key is not None:  # v2: the public pool carries class commitments (§15.2)
                pool_bytes = public_pool_bytes(keys_b, parts[1 : 2 * len(keys) : 2], inputs.salt_key)
            pool_digest = H(pool_bytes)
        del parts
        del pool_bytes
        inspectors_digest = H(inspectors_tsv(inputs.inspectors))
        seed = derive_seed(
            inputs.secret, inputs.beacon, pool_digest, inspectors_digest, inputs.draw_ref, inputs.protocol
        )
        columns = PoolColumns(keys=keys, keys_b=keys_b, strata=strata)
        selection = select(seed, columns, inputs.ratios)
        del columns
        targets = [(no, key, _division(inputs.divisions, key)) for no, (_, key, _) in enumerate(selection.drawn, 1)]
        excluded = teams.PairExclusions(inputs.conflicts | inputs.recent)
        formed = teams.form_teams(seed, inputs.inspectors, inputs.units, inputs.team, targets, excluded.check)
        inspections = tuple(
            Inspection(no=no, entity=key, stratum=label, rank=r, team=team, unstaffable=reason, division=division)
            for (r, key, label), (no, _, division), (team, reason) in zip(selection.drawn, targets, formed.teams)
        )
    return DrawOutcome(
        seed=seed,
        pool_digest=pool_digest,
        inspectors_digest=inspectors_digest,
        strata=selection.strata,
        inspections=inspections,
        notes=tuple(selection.notes + formed.notes),
        excluded_pairs=tuple(sorted(pair_hash(seed, i, e) for i, e in excluded.hits)),
        protocol=inputs.protocol,
        cuts=selection.cuts,
    )


def _division(divisions: Mapping[str, str], key: str) -> str:
    division = divisions.get(key)
    if division is None:
        raise TeamSpecError("missing_division", entity=key)
    return division


# --------------------------------------------------------------------------- replacement


@dataclass(frozen=True)
class Replacement:
    inspector: str | None  # None = nobody eligible
    reason: str | None = None  # reason code when None
    # hex pair hashes of the exclusions consulted and found while deriving it: they go on the
    # recusal log line (recusals.tsv), so an auditor can re-derive this replacement
    exclusions: tuple[str, ...] = ()
    seat: int = 0  # 1-based seat of the recusing inspector


def replacement(
    inputs: DrawInputs,
    seed: bytes,
    inspection: Inspection,
    earlier_replacements: int,
    current_team: Sequence[str],
    recusing: str,
    extra_conflicts: frozenset[tuple[str, str]] = frozenset(),
) -> Replacement:
    """The drawn replacement for ``recusing`` on ``inspection`` (protocol section 5, rule 5).

    Pass every exclusion known now in ``extra_conflicts`` — at least the recusal itself and any
    conflict declared since the draw. ``current_team`` is the team as it stands (vacant seats as "").
    """
    division = inspection.division or _division(inputs.divisions, inspection.entity)
    excluded = teams.PairExclusions(inputs.conflicts | inputs.recent | extra_conflicts)
    pools = teams.Pools(seed, inputs.inspectors, inputs.units, inputs.team)
    inspector, reason = pools.replace(
        no=inspection.no,
        entity=inspection.entity,
        division=division,
        ordinal=earlier_replacements,
        team=current_team,
        recusing=recusing,
        excluded=excluded.check,
    )
    return Replacement(
        inspector=inspector,
        reason=reason,
        exclusions=tuple(sorted(pair_hash(seed, i, e) for i, e in excluded.hits)),
        seat=list(current_team).index(recusing) + 1,
    )
