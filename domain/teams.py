"""Who inspects: team formation and replacement after a recusal (docs/draw-protocol.md §7).

Pure: stdlib only. Every choice hangs off the draw's seed through hashes, so anyone holding the
published bundle re-derives the same teams; the rules keep protocol §5's properties:

- a *pool* is the set of inspectors who may fill one kind of seat (department, qualifications)
  in one jurisdiction; an inspection's seat is dealt from the most local pool that covers the
  entity's division code, falling back to broader ones only when it cannot serve;
- each pool deals from a *deck*: its members in a fresh seeded order every round, so within a
  pool loads differ by at most one, and partners change from round to round;
- a member who cannot take the card dealt to them (conflict, rotation, already on the team) is
  *owed* a turn and served first next time, which keeps the balance;
- an inspection that cannot be staffed gets an empty team and a reason, never a short one.

The cost is linear in inspections plus inspectors: no step scans all inspectors per inspection.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from hashlib import sha256
from operator import itemgetter
from typing import NamedTuple

from domain.protocol import InspectorLine, TeamSpec, TeamSpecError, UnitInfo, note, pair_hash

NO_POOL = "no_inspector_in_jurisdiction"
ALL_EXCLUDED = "all_candidates_excluded"

Excluded = Callable[[str, str], bool]  # (inspector key, entity key) -> excluded?


class Seat(NamedTuple):
    """What one team seat requires: a department ("" = any) and qualification codes. (A named
    tuple: it keys dictionaries on the hot path, and tuples hash in C.)"""

    department: str
    quals: tuple[str, ...]


def seats(spec: TeamSpec) -> list[Seat]:
    """The seats of a team, in order (docs §7.1)."""
    if not isinstance(spec.size, int) or spec.size < 2:
        raise TeamSpecError("team_too_small", size=spec.size)
    if len(spec.slots) > spec.size or len(spec.slot_quals) > spec.size:
        raise TeamSpecError("team_slots_exceed_size", size=spec.size)
    out = []
    for s in range(spec.size):
        department = spec.slots[s] if s < len(spec.slots) else None
        if department is not None and not _is_code(department):
            raise TeamSpecError("team_bad_code", value=str(department))
        extra = spec.slot_quals[s] if s < len(spec.slot_quals) else ()
        quals = tuple(sorted(set(spec.required_quals) | set(extra)))
        for q in quals:
            if not _is_code(q) or "," in q:
                raise TeamSpecError("team_bad_code", value=str(q))
        out.append(Seat(department or "", quals))
    return out


def _is_code(value: object) -> bool:
    return isinstance(value, str) and value != "" and not any(c in value for c in "\t\n\x00")


class PairExclusions:
    """Exclusions known as plain (inspector, entity) pairs, as the draw service has them.
    Records which pairs were consulted and found, since exactly those get published."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.by_entity: dict[str, set[str]] = {}
        for inspector, entity in pairs:
            self.by_entity.setdefault(entity, set()).add(inspector)
        self.hits: set[tuple[str, str]] = set()

    def check(self, inspector: str, entity: str) -> bool:
        found = self.by_entity.get(entity)
        if found is not None and inspector in found:
            self.hits.add((inspector, entity))
            return True
        return False


class HashedExclusions:
    """Exclusions known only as published pair hashes, as an auditor has them."""

    def __init__(self, seed: bytes, hashes: Iterable[str]) -> None:
        self.seed = seed
        self.hashes = set(hashes)
        self.hits: set[str] = set()

    def check(self, inspector: str, entity: str) -> bool:
        if not self.hashes:
            return False
        h = pair_hash(self.seed, inspector, entity)
        if h in self.hashes:
            self.hits.add(h)
            return True
        return False


class Pool:
    """The inspectors who may fill one kind of seat in one jurisdiction, and their deck."""

    __slots__ = ("seat", "jurisdiction", "members", "m", "prefix", "cursor", "rounds", "order_round", "order", "owed")

    def __init__(self, seed: bytes, seat: Seat, jurisdiction: str, members: list[str]) -> None:
        self.seat = seat
        self.jurisdiction = jurisdiction
        self.members = members  # in key order
        self.m = len(members)
        ident = f"{seat.department}\x00{','.join(seat.quals)}\x00{jurisdiction}".encode()
        self.prefix = seed + b"deal\x00" + ident + b"\x00"
        self.cursor = 0  # position in the endless deck: round cursor // m, card cursor % m
        self.rounds: dict[int, list[str]] = {}
        self.order_round = -1  # the round last looked at, kept at hand
        self.order: list[str] = []
        self.owed: list[str] = []

    def round_order(self, r: int) -> list[str]:
        """Round r of the deck: members by (u64(H(prefix || dec(r) || 0x00 || key)), key).
        (Comparing the 8 digest bytes as bytes is comparing them as big-endian u64s.)"""
        p = self.prefix + str(r).encode() + b"\x00"
        decorated = sorted([(sha256(p + k.encode()).digest()[:8], k) for k in self.members])
        return [k for _, k in decorated]

    def card(self, position: int) -> str:
        r, i = divmod(position, self.m)
        if r != self.order_round:
            order = self.rounds.get(r)
            if order is None:
                order = self.rounds[r] = self.round_order(r)
                for old in [x for x in self.rounds if x < r - 1]:
                    del self.rounds[old]
            self.order_round, self.order = r, order
        return self.order[i]

    def take(self, entity: str, team: Sequence[str], excluded: Excluded) -> str | None:
        """The next member who may sit on ``team`` for ``entity``; None (state unchanged) when no
        member may (docs §7.3)."""
        if not self.owed:  # the usual case: the next card is the one
            c = self.cursor
            w = self.card(c)
            if w not in team and not excluded(w, entity):
                self.cursor = c + 1
                return w
        return self._take(entity, team, excluded)

    def _take(self, entity: str, team: Sequence[str], excluded: Excluded) -> str | None:
        """:meth:`take` exactly as docs §7.3 writes it (owed turns, then the deck)."""
        owed = self.owed
        seen: set[str] = set()
        for j, w in enumerate(owed):
            if w in team or excluded(w, entity):
                seen.add(w)
                continue
            del owed[j]
            return w
        start, owed_before = self.cursor, len(owed)
        while len(seen) < self.m:
            w = self.card(self.cursor)
            self.cursor += 1
            if w in team or excluded(w, entity):
                owed.append(w)
                seen.add(w)
                continue
            return w
        self.cursor = start
        del owed[owed_before:]
        return None

    def give_back(self, w: str) -> None:
        """Undo a take (the inspection turned out unstaffable): ``w`` is owed the turn, first."""
        self.owed.insert(0, w)


class Pools:
    """Every pool of a draw, by seat kind and jurisdiction (docs §7.2)."""

    def __init__(
        self, seed: bytes, inspectors: Sequence[InspectorLine], units: Mapping[str, UnitInfo], spec: TeamSpec
    ) -> None:
        self.seed = seed
        self.seats = seats(spec)
        held = []
        for ins in inspectors:
            unit = units.get(ins.unit)
            if unit is None:
                raise TeamSpecError("unknown_unit", unit=ins.unit, inspector=ins.key)
            if not _is_code(unit.department) or not isinstance(unit.jurisdiction, str):
                raise TeamSpecError("bad_unit", unit=ins.unit)
            held.append((ins.key, unit, frozenset(ins.quals)))
        self.by_seat: dict[Seat, dict[str, Pool]] = {}
        for seat in self.seats:
            if seat in self.by_seat:
                continue
            need = frozenset(seat.quals)
            groups: dict[str, list[str]] = {}
            for key, unit, quals in held:
                if (not seat.department or unit.department == seat.department) and need <= quals:
                    groups.setdefault(unit.jurisdiction, []).append(key)
            self.by_seat[seat] = {j: Pool(seed, seat, j, members) for j, members in groups.items()}
        self._chains: dict[Seat, dict[str, list[Pool]]] = {seat: {} for seat in self.by_seat}
        self._seat_chains = [self._chains[seat] for seat in self.seats]  # per seat index, no hashing

    def chain(self, seat: Seat, division: str) -> list[Pool]:
        """The pools that may fill ``seat`` for an entity in ``division``, most local first."""
        return self._chain(self._chains[seat], seat, division)

    def _chain(self, cache: dict[str, list[Pool]], seat: Seat, division: str) -> list[Pool]:
        found = cache.get(division)
        if found is None:
            pools = self.by_seat[seat]
            found = cache[division] = [
                pools[division[:n]] for n in range(len(division), -1, -1) if division[:n] in pools
            ]
        return found

    def form(self, entity: str, division: str, excluded: Excluded) -> tuple[tuple[str, ...], str | None]:
        """One inspection's team, seat by seat; all or nothing (docs §7.3)."""
        team: list[str] = []
        took: list[Pool] = []
        reason = None
        for seat, cache in zip(self.seats, self._seat_chains):
            chain = cache.get(division) or self._chain(cache, seat, division)
            if not chain:
                reason = NO_POOL
                break
            for pool in chain:
                w = pool.take(entity, team, excluded)
                if w is not None:
                    team.append(w)
                    took.append(pool)
                    break
            else:
                reason = ALL_EXCLUDED
                break
        if reason is None:
            return tuple(team), None
        for pool, w in reversed(list(zip(took, team))):
            pool.give_back(w)
        return (), reason

    def balance_notes(self, teams: Sequence[Sequence[str]]) -> list[str]:
        """A note for every pool whose loads differ by more than one (docs §7.6). A member's load
        is the number of teams where they hold a seat of the pool's kind (one pool per kind each)."""
        staffed = [team for team in teams if team]
        loads: dict[Seat, Counter[str]] = {seat: Counter() for seat in self.by_seat}
        for s, seat in enumerate(self.seats):
            loads[seat].update(Counter(map(itemgetter(s), staffed)))
        out = []
        for seat, pools in self.by_seat.items():
            for jurisdiction in sorted(pools):
                counts = [loads[seat][k] for k in pools[jurisdiction].members]
                if max(counts) - min(counts) > 1:
                    out.append(
                        note(
                            "imbalanced_pool",
                            department=seat.department,
                            quals=list(seat.quals),
                            jurisdiction=jurisdiction,
                            min=min(counts),
                            max=max(counts),
                        )
                    )
        return out

    def replace(
        self,
        no: int,
        entity: str,
        division: str,
        ordinal: int,
        team: Sequence[str],
        recusing: str,
        excluded: Excluded,
    ) -> tuple[str | None, str | None]:
        """The replacement for ``recusing`` (docs §8): the first eligible member, in the order of
        H(seed || "replace" || no || ordinal || key), of the most local pool that has one."""
        team = list(team)
        if recusing not in team:
            raise TeamSpecError("recusing_not_on_team", inspector=recusing, no=no)
        s = team.index(recusing)
        if s >= len(self.seats):
            raise TeamSpecError("team_longer_than_spec", no=no)
        chain = self.chain(self.seats[s], division)
        if not chain:
            return None, NO_POOL
        prefix = self.seed + b"replace\x00" + str(no).encode() + b"\x00" + str(ordinal).encode() + b"\x00"
        for pool in chain:
            order = sorted(
                pool.members, key=lambda k: (int.from_bytes(sha256(prefix + k.encode()).digest()[:8], "big"), k)
            )
            for key in order:
                if key in team:
                    continue
                if excluded(key, entity):
                    continue
                return key, None
        return None, ALL_EXCLUDED


@dataclass
class Formed:
    teams: list[tuple[tuple[str, ...], str | None]]  # per target: (team, unstaffable reason)
    notes: list[str]


def form_teams(
    seed: bytes,
    inspectors: Sequence[InspectorLine],
    units: Mapping[str, UnitInfo],
    spec: TeamSpec,
    targets: Sequence[tuple[int, str, str]],
    excluded: Excluded,
) -> Formed:
    """Teams for ``targets`` = (no, entity key, division code), taken in inspection order."""
    pools = Pools(seed, inspectors, units, spec)
    teams = [pools.form(entity, division, excluded) for _, entity, division in targets]
    return Formed(teams, pools.balance_notes([team for team, _ in teams]) + unstaffable_notes(teams))


def unstaffable_notes(teams: Sequence[tuple[tuple[str, ...], str | None]]) -> list[str]:
    """One note per reason some inspection could not be staffed, with how many (docs §7.6)."""
    counts = Counter(reason for _, reason in teams if reason is not None)
    return [note("unstaffable", reason=r, count=counts[r]) for r in sorted(counts, key=str.encode)]
