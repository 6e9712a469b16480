"""The class mix against the mix a version was approved with. Pure, stdlib only.

At the plan's ratios the class mix *is* the inspection budget (D/E are inspected at 100 %), so a
version's mix moving away from what was approved changes the budget without anyone approving it.
A class has drifted when its share moved by more than the model's ``mix_tolerance``, relative to
its approved share (0.10: a 3 % share may be 2.7–3.3 %). A class with no approved share has
drifted as soon as it has members.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ClassShare:
    risk_class: str
    approved: float  # share of the directory when the version was approved
    current: float  # share now
    change: float | None  # relative: current / approved − 1 (None when approved is 0)
    drifted: bool


def shares(counts: Mapping[str, int], classes: Sequence[str]) -> dict[str, float]:
    """Each class's share of the total (0 for a class with no member; all 0 for an empty total)."""
    total = sum(counts.get(c, 0) for c in classes)
    return {c: (counts.get(c, 0) / total if total else 0.0) for c in classes}


def compare(
    approved: Mapping[str, int], current: Mapping[str, int], classes: Sequence[str], tolerance: float
) -> list[ClassShare]:
    """Each class's approved and current share, its relative change, and whether it drifted."""
    was, now = shares(approved, classes), shares(current, classes)
    out = []
    for c in classes:
        if was[c] > 0:
            change = now[c] / was[c] - 1.0
            drifted = abs(change) > tolerance + 1e-12
        else:
            change, drifted = None, now[c] > 0
        out.append(ClassShare(c, was[c], now[c], change, drifted))
    return out


def drifted(compared: Sequence[ClassShare]) -> list[str]:
    """The classes whose share moved beyond the tolerance."""
    return [s.risk_class for s in compared if s.drifted]


def proposed_mix(
    classes: Sequence[str],
    approved: Mapping[str, int],
    current: Mapping[str, int],
    proposed: Mapping[str, int],
    ratios: Mapping[str, float],
    tolerance: float,
) -> dict[str, object]:
    """What an approver of a proposal sees of the budget: each class's share under the version in
    force as approved (``approved``: its first classification's counts; empty before one), as it
    classifies now (``current``) and under the proposal (``proposed``, the same directory), the
    inspections the ratios ask for under each (on the directory now), and the classes whose proposed
    share moved beyond ``tolerance`` from the approved mix (from the current one before any)."""
    base = approved if sum(approved.values()) else current
    moved = compare(base, proposed, classes, tolerance)
    was, now, new = shares(approved, classes), shares(current, classes), shares(proposed, classes)
    size = sum(current.get(c, 0) for c in classes)

    def inspections(share: Mapping[str, float]) -> float:
        return size * sum(share[c] * ratios.get(c, 0.0) for c in classes)

    has_approved = bool(sum(approved.values()))
    return {
        "tolerance": tolerance,
        "rows": [
            {
                "risk_class": c,
                "approved": was[c] if has_approved else None,
                "current": now[c],
                "proposed": new[c],
                "beyond": m.drifted,
            }
            for c, m in zip(classes, moved)
        ],
        "inspections": {
            "approved": inspections(was) if has_approved else None,
            "current": inspections(now),
            "proposed": inspections(new),
        },
        "beyond": drifted(moved),
    }
