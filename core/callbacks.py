"""Typed callback data for inline buttons: ``prefix:action:id[:arg]``, checked against
Telegram's 64-byte limit when packed and strictly when parsed (a pressed button's data is
user-controlled input: anything malformed parses to None, never to a guess)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from domain import inputs

MAX_BYTES = 64
_PART = re.compile(r"^[A-Za-z0-9_\-]{1,24}$")


@dataclass(frozen=True)
class Callback:
    prefix: str  # the feature: "asg" (assignment), "rcs" (recusal), "pg" (page), …
    action: str  # "accept", "recuse", "type", …
    id: int  # the row it acts on; the handler re-checks that the presser owns it
    arg: str = ""

    def pack(self) -> str:
        if inputs.number(str(self.id)) != self.id:  # what parse reads back: 0 … a row id's maximum
            raise ValueError(f"callback id {self.id} is not 0 … {inputs.MAX_ID}")
        parts = [self.prefix, self.action, str(self.id)] + ([self.arg] if self.arg else [])
        for p in (self.prefix, self.action) + ((self.arg,) if self.arg else ()):
            if not _PART.match(p):
                raise ValueError(f"callback part {p!r} must be 1-24 of [A-Za-z0-9_-]")
        data = ":".join(parts)
        if len(data.encode()) > MAX_BYTES:
            raise ValueError(f"callback data {data!r} exceeds Telegram's {MAX_BYTES} bytes")
        return data

    @classmethod
    def parse(cls, data: str) -> Callback | None:
        if not data or len(data.encode()) > MAX_BYTES:
            return None
        parts = data.split(":")
        if len(parts) not in (3, 4) or not all(_PART.match(p) for p in parts[:2]):
            return None
        row = inputs.number(parts[2])  # ASCII digits, no bigger than any row id (PostgreSQL's int4)
        if row is None:
            return None
        arg = parts[3] if len(parts) == 4 else ""
        if len(parts) == 4 and not _PART.match(arg):
            return None
        return cls(parts[0], parts[1], row, arg)


class Family:
    """One feature's buttons, typed: its prefix and the actions it answers (aiogram's
    ``CallbackData`` is the model). Every button is packed through here, so each one is checked
    against Telegram's 64 bytes and against the actions its handler knows, when it is made."""

    def __init__(self, prefix: str, actions: frozenset[str] | set[str]) -> None:
        if not _PART.match(prefix):
            raise ValueError(f"callback prefix {prefix!r} must be 1-24 of [A-Za-z0-9_-]")
        self.prefix = prefix
        self.actions = frozenset(actions)

    def data(self, action: str, id: int, arg: str | int = "") -> str:
        if action not in self.actions:
            raise ValueError(f"{self.prefix}: unknown action {action!r}")
        return Callback(self.prefix, action, int(id), str(arg)).pack()

    def parse(self, data: str) -> Callback | None:
        """``data`` as one of this family's callbacks, or None (another prefix, an unknown action,
        malformed)."""
        cb = Callback.parse(data)
        if cb is None or cb.prefix != self.prefix or cb.action not in self.actions:
            return None
        return cb


#: The features' buttons. A handler registers for ``family.prefix`` and parses with ``family``.
ASSIGNMENT = Family("asg", {"show", "accept", "recuse"})
RECUSAL = Family("rcs", {"type", "skip", "confirm", "cancel"})
CONFLICT = Family("cfl", {"del", "pick", "type", "ok", "cancel"})
PLAN = Family("pln", {"show"})
DRAW = Family("drw", {"preview", "go", "now", "cancel"})
OFF_SCHEDULE = Family("ofs", {"ask", "cancel", "yes", "no"})  # an off-schedule draw asked for and confirmed
BEACON = Family("bcn", {"yes", "no"})  # values typed for a beacon, confirmed by a second coordinator
REJECTION = Family("rjt", {"ask", "confirm", "cancel"})
ALERT = Family("alr", {"ack"})
FINDINGS = Family(
    "fnd",
    {"open", "pass", "fail", "serious", "na", "edit", "skip", "submit", "confirm", "fix", "nofix", "lead", "recheck"},
)
CORRECTION = Family("cor", {"ok", "no"})
REVIEW = Family("rev", {"ok"})
CHECKIN = Family("chk", {"at", "re"})  # an inspection (assignment) or a re-inspection (rectification)
PHOTO = Family("pho", {"at", "re"})  # as CHECKIN
RISK_MODEL = Family("rmv", {"approve", "reject"})  # a proposed risk-model version (issue 15)
RISK_OVERRIDE = Family("rov", {"approve", "reject"})  # a proposed risk-class override, by a second coordinator


def key(label: str, data: str, **params: object) -> dict[str, Any]:
    """One button as an outbox row carries it: a text code (``label``, rendered in the
    recipient's locale, with ``params``) and its packed callback data."""
    return {"label": label, "data": data, **({"params": params} if params else {})}
