"""A second, deliberately naive implementation of docs/draw-protocol.md, written from the text alone.

It uses hashlib and fractions and nothing of ours: no shortcuts, no caches, plain lists. The tests
compare it with ``domain.draw`` / ``domain.teams`` on many random draws; a disagreement means that
either our code or the document is wrong — both are meant to be exact.
"""

from __future__ import annotations

import hashlib
import math
from fractions import Fraction

NO_POOL = "no_inspector_in_jurisdiction"
ALL_EXCLUDED = "all_candidates_excluded"


def H(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def u64(data: bytes) -> int:
    return int.from_bytes(data[:8], "big")


def dec(n: int) -> bytes:
    return str(n).encode("ascii")


# §3 — §5


def pool_bytes(pool: list[tuple[str, str]]) -> bytes:
    return b"".join(k.encode() + b"\t" + s.encode() + b"\n" for k, s in pool)


def inspectors_bytes(inspectors: list[tuple[str, str, tuple[str, ...]]]) -> bytes:
    return b"".join(k.encode() + b"\t" + u.encode() + b"\t" + ",".join(q).encode() + b"\n" for k, u, q in inspectors)


def seed(secret: bytes, beacon: str, pool_file: bytes, inspectors_file: bytes, draw_ref: str) -> bytes:
    return H(
        b"inspectbot/draw/v1"
        + b"\x00"
        + secret
        + b"\x00"
        + beacon.encode()
        + b"\x00"
        + H(pool_file)
        + b"\x00"
        + H(inspectors_file)
        + b"\x00"
        + draw_ref.encode()
    )


def rank(seed_: bytes, key: str) -> int:
    return u64(H(seed_ + b"entity" + b"\x00" + key.encode()))


def quota(size: int, ratio: str) -> int:
    return min(size, math.ceil(size * Fraction(ratio)))


def select(seed_: bytes, pool: list[tuple[str, str]], ratios: dict[str, str]):
    """→ (strata {label: (pool, ratio, drawn)}, [(no, key, stratum, rank)], notes)."""
    labels = sorted({s for _, s in pool} | set(ratios), key=lambda s: s.encode())
    strata, drawn, notes = {}, [], []
    for label in labels:
        members = [k for k, s in pool if s == label]
        ratio = ratios.get(label)
        if ratio is None:
            ratio = "0"
            notes.append({"code": "stratum_without_ratio", "stratum": label, "pool": len(members)})
        n = quota(len(members), ratio)
        strata[label] = (len(members), ratio, n)
        ordered = sorted(members, key=lambda k: (rank(seed_, k), k.encode()))
        drawn += [(rank(seed_, k), k, label) for k in ordered[:n]]
    drawn.sort(key=lambda t: (t[0], t[1].encode()))
    return strata, [(no, k, s, r) for no, (r, k, s) in enumerate(drawn, 1)], notes


# §7


def pair_hash(seed_: bytes, w: str, e: str) -> str:
    return H(seed_ + b"pair" + b"\x00" + w.encode() + b"\x00" + e.encode()).hex()


def seat_kinds(team: dict) -> list[tuple[str, tuple[str, ...]]]:
    kinds = []
    for s in range(1, team["size"] + 1):
        slots, slot_quals = team["slots"], team["slot_quals"]
        department = slots[s - 1] if s <= len(slots) and slots[s - 1] is not None else ""
        quals = set(team["required_quals"]) | (set(slot_quals[s - 1]) if s <= len(slot_quals) else set())
        kinds.append((department, tuple(sorted(quals, key=str.encode))))
    return kinds


class RefPool:
    def __init__(self, seed_, kind, jurisdiction, members):
        self.seed, self.kind, self.jurisdiction, self.members = seed_, kind, jurisdiction, members
        self.cursor, self.owed = 0, []

    def pool_id(self) -> bytes:
        d, q = self.kind
        return d.encode() + b"\x00" + ",".join(q).encode() + b"\x00" + self.jurisdiction.encode()

    def round(self, r: int) -> list[str]:
        def key(k):
            h = H(self.seed + b"deal" + b"\x00" + self.pool_id() + b"\x00" + dec(r) + b"\x00" + k.encode())
            return (u64(h), k.encode())

        return sorted(self.members, key=key)

    def card(self, c: int) -> str:
        m = len(self.members)
        return self.round(c // m)[c % m]


class Reference:
    """Team formation and replacement, state and all, exactly as §7 and §8 read."""

    def __init__(self, seed_, inspectors, units, team, excluded_pairs):
        self.seed = seed_
        self.kinds = seat_kinds(team)
        self.excluded_pairs = set(excluded_pairs)
        self.consulted_hits = set()
        self.pools = {}  # (kind, J) -> RefPool
        for kind in self.kinds:
            d, q = kind
            by_j = {}
            for key, unit, quals in inspectors:  # file order
                u_department, u_jurisdiction = units[unit]
                if (d == "" or u_department == d) and set(q) <= set(quals):
                    by_j.setdefault(u_jurisdiction, []).append(key)
            for j, members in by_j.items():
                if (kind, j) not in self.pools:
                    self.pools[(kind, j)] = RefPool(seed_, kind, j, members)

    def excluded(self, w, e) -> bool:
        if (w, e) in self.excluded_pairs:
            self.consulted_hits.add((w, e))
            return True
        return False

    def eligible(self, w, e, team) -> bool:
        if w in team:
            return False
        return not self.excluded(w, e)

    def chain(self, kind, division):
        out = []
        for length in range(len(division), -1, -1):
            pool = self.pools.get((kind, division[:length]))
            if pool is not None:
                out.append(pool)
        return out

    def take(self, pool, e, team):
        seen = set()
        for j in range(len(pool.owed)):
            w = pool.owed[j]
            if self.eligible(w, e, team):
                del pool.owed[j]
                return w
            seen.add(w)
        c0, o0 = pool.cursor, len(pool.owed)
        while len(seen) < len(pool.members):
            w = pool.card(pool.cursor)
            pool.cursor += 1
            if self.eligible(w, e, team):
                return w
            pool.owed.append(w)
            seen.add(w)
        pool.cursor = c0
        pool.owed = pool.owed[:o0]
        return None

    def form(self, entity, division):
        team, took, reason = [], [], None
        for kind in self.kinds:
            chain = self.chain(kind, division)
            if not chain:
                reason = NO_POOL
                break
            got = None
            for pool in chain:
                got = self.take(pool, entity, team)
                if got is not None:
                    team.append(got)
                    took.append(pool)
                    break
            if got is None:
                reason = ALL_EXCLUDED
                break
        if reason is None:
            return tuple(team), None
        for pool, w in reversed(list(zip(took, team))):
            pool.owed.insert(0, w)
        return (), reason

    def balance_notes(self, teams):
        notes, done = [], []
        for kind in self.kinds:
            if kind in done:
                continue
            done.append(kind)
            for (k, j), pool in sorted(self.pools.items(), key=lambda kv: kv[0][1].encode()):
                if k != kind:
                    continue
                loads = [
                    sum(1 for t in teams for kd, w in zip(self.kinds, t) if kd == kind and w == m) for m in pool.members
                ]
                if max(loads) - min(loads) > 1:
                    notes.append(
                        {
                            "code": "imbalanced_pool",
                            "department": kind[0],
                            "quals": list(kind[1]),
                            "jurisdiction": j,
                            "min": min(loads),
                            "max": max(loads),
                        }
                    )
        return notes

    def replace(self, n, e, division, team, seat, k):
        """§8: seat is 1-based; team is the current team (vacant seats as "")."""
        chain = self.chain(self.kinds[seat - 1], division)
        if not chain:
            return None, NO_POOL
        for pool in chain:

            def key(w):
                h = H(self.seed + b"replace" + b"\x00" + dec(n) + b"\x00" + dec(k) + b"\x00" + w.encode())
                return (u64(h), w.encode())

            for w in sorted(pool.members, key=key):
                if w in team:
                    continue
                if self.excluded(w, e):
                    continue
                return w, None
        return None, ALL_EXCLUDED


def unstaffable_notes(inspections):
    """§7.6: per reason (byte order), how many inspections it left unstaffed."""
    reasons = [i[5] for i in inspections if i[5] is not None]
    return [
        {"code": "unstaffable", "reason": r, "count": reasons.count(r)} for r in sorted(set(reasons), key=str.encode)
    ]


def draw(secret, beacon, draw_ref, pool, ratios, inspectors, units, divisions, team, excluded_pairs):
    """The whole draw → dict with the values draw.json would hold (as Python values)."""
    seed_ = seed(secret, beacon, pool_bytes(pool), inspectors_bytes(inspectors), draw_ref)
    strata, drawn, notes = select(seed_, pool, ratios)
    ref = Reference(seed_, inspectors, units, team, excluded_pairs)
    inspections = []
    for no, key, label, r in drawn:
        members, reason = ref.form(key, divisions[key])
        inspections.append((no, key, label, r, members, reason))
    return {
        "seed": seed_,
        "strata": strata,
        "inspections": inspections,
        "notes": notes + ref.balance_notes([i[4] for i in inspections]) + unstaffable_notes(inspections),
        "excluded_pairs": sorted(pair_hash(seed_, w, e) for w, e in ref.consulted_hits),
        "reference": ref,
    }
