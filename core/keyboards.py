"""Named keyboards: the buttons a message carries, built when it is rendered.

A service that queues a message says which actions it offers, as data —
``context["keyboard"] = ["assignment_offer", 42]`` — and :func:`core.compose.compose` builds the
buttons from the keyboard's name here, with typed callback data (``core.callbacks``) and text
codes for the labels (rendered in the recipient's locale). So services never spell callback
strings or labels, and a button's layout changes in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.callbacks import ASSIGNMENT, BEACON, CORRECTION, FINDINGS, OFF_SCHEDULE, REVIEW, RISK_OVERRIDE, key

Rows = list[list[dict[str, Any]]]


def assignment_offer(assignment_id: int) -> Rows:
    """A fresh assignment: accept or recuse."""
    return [
        [
            key("draw_btn_accept", ASSIGNMENT.data("accept", assignment_id)),
            key("draw_btn_recuse", ASSIGNMENT.data("recuse", assignment_id)),
        ]
    ]


def assignment_accept(assignment_id: int) -> Rows:
    """An assignment given back after a rejected recusal: accept only."""
    return [[key("draw_btn_accept", ASSIGNMENT.data("accept", assignment_id))]]


def result_confirm(result_id: int) -> Rows:
    """A submitted result a team member confirms."""
    return [[key("btn_confirm_result", FINDINGS.data("confirm", result_id))]]


def correction_decision(correction_id: int) -> Rows:
    """A coordinator approves or rejects a requested correction."""
    return [
        [
            key("btn_approve_correction", CORRECTION.data("ok", correction_id)),
            key("btn_reject_correction", CORRECTION.data("no", correction_id)),
        ]
    ]


def review_decision(review_id: int) -> Rows:
    """A coordinator approves a result under review (returning it needs a comment: /return)."""
    return [[key("btn_approve_review", REVIEW.data("ok", review_id))]]


def reinspection_open(rectification_id: int) -> Rows:
    """The re-inspector opens the re-inspection's findings conversation (复查)."""
    return [[key("btn_reinspect", FINDINGS.data("recheck", rectification_id))]]


def off_schedule_decision(request_id: int) -> Rows:
    """Another coordinator confirms or declines an off-schedule draw asked for in chat."""
    return [
        [
            key("btn_offsched_yes", OFF_SCHEDULE.data("yes", request_id)),
            key("btn_offsched_no", OFF_SCHEDULE.data("no", request_id)),
        ]
    ]


def beacon_decision(entry_id: int) -> Rows:
    """Another coordinator confirms or declines beacon values typed in chat."""
    return [[key("btn_beacon_yes", BEACON.data("yes", entry_id)), key("btn_beacon_no", BEACON.data("no", entry_id))]]


def risk_override_decision(override_id: int) -> Rows:
    """Another coordinator approves or rejects a proposed risk-class override."""
    return [
        [
            key("btn_override_approve", RISK_OVERRIDE.data("approve", override_id)),
            key("btn_override_reject", RISK_OVERRIDE.data("reject", override_id)),
        ]
    ]


KEYBOARDS: dict[str, Callable[[int], Rows]] = {
    f.__name__: f
    for f in (
        assignment_offer,
        assignment_accept,
        result_confirm,
        correction_decision,
        off_schedule_decision,
        beacon_decision,
        review_decision,
        reinspection_open,
        risk_override_decision,
    )
}


def keyboard(name: str, row_id: int) -> Rows:
    """The rows of keyboard ``name`` for ``row_id`` (KeyError for an unknown name: a bug, not input)."""
    return KEYBOARDS[name](row_id)
