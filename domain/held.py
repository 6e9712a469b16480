"""Messages held for an unreachable recipient: which of them are still worth sending when the
recipient is reachable again (docs/messaging.md, "Unreachable: held, not thrown away").

A held message is identified by its outbox ``dedupe_key``; its prefix says what it is about:

- ``asg:<assignment>:…`` — a task (the assignment card, its reminder): sent while the task is
  open (the assignment waits for an answer, or was accepted and its inspection is not finished);
- ``survey:<survey>:…`` — a survey message: sent while the survey is live (pending or sent);
- ``alert:<alert>:…`` — an alert to a coordinator: sent while the alert is not acknowledged;
- ``reply:…`` — an answer to something the person sent before the mark: dropped (they get an
  answer to what they send now);
- anything else (a notice: a team change, a result to confirm, a reveal, a monthly report) —
  sent if it is at most :data:`HOLD_WINDOW` old.
"""

from __future__ import annotations

import re
from datetime import timedelta

HOLD_WINDOW = timedelta(days=7)

ASSIGNMENT = "assignment"
SURVEY = "survey"
ALERT = "alert"
REPLY = "reply"
NOTICE = "notice"

_SUBJECT = re.compile(r"(asg|survey|alert):([0-9]{1,18}):")
_KINDS = {"asg": ASSIGNMENT, "survey": SURVEY, "alert": ALERT}
#: Why a message about a subject that is over is dropped.
_CLOSED = {ASSIGNMENT: "task_closed", SURVEY: "survey_closed", ALERT: "alert_acknowledged"}


def subject(dedupe_key: str) -> tuple[str, int]:
    """What a held message is about: (kind, the subject's id; 0 when it has none)."""
    if dedupe_key.startswith("reply:"):
        return REPLY, 0
    found = _SUBJECT.match(dedupe_key)
    if found is None:
        return NOTICE, 0
    return _KINDS[found.group(1)], int(found.group(2))


def drop_reason(kind: str, live: bool, age: timedelta) -> str:
    """Why a held message is dropped on release, or ``""`` to send it. ``live``: its subject
    (task, survey, alert) is still open; ``age``: how long ago the message was written."""
    if kind == REPLY:
        return "stale_reply"
    if kind in _CLOSED:
        return "" if live else _CLOSED[kind]
    return "" if age <= HOLD_WINDOW else "expired"
