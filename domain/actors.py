"""Who did something, as the audit chain, the database and the bundles record it: an *actor string*.

``coordinator:<binding id>`` and ``admin:<binding id>`` (a chat binding, :class:`services.scope.Scope`),
``inspector:<inspector id>``, ``system``, ``scheduler:<job>``, ``cli``, or a name given at the CLI
(``--by 张三``). The string is stable and unambiguous, right for what machines read; people read
the name :mod:`services.people` finds for it. This module only reads the string.
"""

from __future__ import annotations

from dataclasses import dataclass

BINDING_KINDS = ("coordinator", "admin")  # the id is a chat binding's
SYSTEM_KINDS = ("system", "scheduler", "cli")  # no person: the program itself
MAX_ID = 2**31  # the ids are 32-bit columns: a bigger number (typed at the CLI as --by) is no row's


@dataclass(frozen=True)
class Actor:
    """An actor string read: ``kind`` is ``coordinator``, ``admin``, ``inspector``, ``system``,
    ``scheduler``, ``cli`` or ``named`` (anything else: a name as written, in ``detail``)."""

    kind: str
    id: int | None = None  # the binding's (coordinator, admin) or the inspector's
    detail: str = ""  # the scheduler's job, or the name as written

    @property
    def binding(self) -> int | None:
        return self.id if self.kind in BINDING_KINDS else None


def parse(actor: str) -> Actor:
    """``"coordinator:12"`` → ``Actor("coordinator", 12)``; ``"scheduler:risk_mix"`` →
    ``Actor("scheduler", detail="risk_mix")``; ``"system"`` → ``Actor("system")``; anything else
    (``"张三"``, ``"coordinator:x"``) → ``Actor("named", detail=actor)``."""
    kind, colon, rest = actor.partition(":")
    if kind in SYSTEM_KINDS and (not colon or kind == "scheduler"):
        return Actor(kind, detail=rest)
    if kind in (*BINDING_KINDS, "inspector") and rest.isascii() and rest.isdigit() and int(rest) < MAX_ID:
        return Actor(kind, int(rest))
    return Actor("named", detail=actor)


def binding_id(actor: str) -> int | None:
    """The chat binding of an actor ``coordinator:<id>`` (or ``admin:<id>``); None for others."""
    return parse(actor).binding
