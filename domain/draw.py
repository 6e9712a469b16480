"""The publicly verifiable draw (protocol v1, docs/draw-protocol.md). Pure: stdlib only, no I/O.

CONTRACT STUB written by the lead so the plan/draw service can be built in parallel.
The names and signatures below are the interface the service uses; the bodies are to be
implemented (and helpers added freely) by the owner of the draw core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

PROTOCOL = "inspectbot/draw/v1"


@dataclass(frozen=True)
class PoolLine:
    """One eligible entity: its public key (USCC) and its stratum label (risk class A–E)."""

    key: str
    stratum: str


@dataclass(frozen=True)
class InspectorLine:
    """One eligible inspector as published: key (certificate no.), unit key, sorted qualification codes."""

    key: str
    unit: str
    quals: tuple[str, ...]


@dataclass(frozen=True)
class UnitInfo:
    """Published with the draw so an auditor can re-derive teams: owning department code and
    jurisdiction (administrative-division code prefix, e.g. "3702" covers 370202…)."""

    department: str
    jurisdiction: str


@dataclass(frozen=True)
class TeamSpec:
    """Team size (>= 2) and composition. ``slots`` lists, per team seat, the department code the
    seat must come from (a joint plan has one seat per department); None = any department."""

    size: int
    slots: tuple[str | None, ...] = ()


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


@dataclass(frozen=True)
class Inspection:
    no: int  # 1, 2, … in ascending (rank, key)
    entity: str
    stratum: str
    rank: int  # u64
    team: tuple[str, ...]  # inspector keys, in seat order; empty when unstaffable
    unstaffable: str | None = None  # reason code when the team could not be completed


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
    notes: tuple[str, ...] = field(default=())  # e.g. balance could not hold because …


def commitment(secret: bytes) -> str:
    """hex(H(secret))."""
    raise NotImplementedError


def run_draw(inputs: DrawInputs) -> DrawOutcome:
    """Select entities per stratum and form teams, exactly as docs/draw-protocol.md says."""
    raise NotImplementedError


@dataclass(frozen=True)
class Replacement:
    inspector: str | None  # None = nobody eligible
    reason: str | None = None  # reason code when None


def replacement(
    inputs: DrawInputs,
    seed: bytes,
    inspection: Inspection,
    earlier_replacements: int,
    current_team: Sequence[str],
    recusing: str,
    extra_conflicts: frozenset[tuple[str, str]] = frozenset(),
) -> Replacement:
    """The drawn replacement for ``recusing`` on ``inspection`` (protocol section 5, rule 5)."""
    raise NotImplementedError
