"""Small helpers every handler uses: who is acting, and answering in the sender's chat."""

from __future__ import annotations

from domain import refs
from models.messaging import Role
from services import assignments
from services.assignments import AssignmentError
from services.inbound import Context
from services.outbox import reply


def binding_of(ctx: Context, role: Role):
    return next((b for b in ctx.bindings if b.role == role), None)


def inspector_id(ctx: Context) -> int | None:
    b = binding_of(ctx, Role.INSPECTOR)
    return b.inspector_id if b else None


class Replier:
    """Numbered replies to one event (each its own outbox row, keyed by the event)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.seq = 0

    async def __call__(self, template: str, context: dict | None = None, **kw) -> None:
        binding = self.ctx.bindings[0].id if self.ctx.bindings else 0
        await reply(
            self.ctx.event,
            template,
            context or {},
            locale=self.ctx.locale,
            now=self.ctx.clock.now(),
            connection=self.ctx.conn,
            seq=self.seq,
            binding_id=binding,
            **kw,
        )
        self.seq += 1


#: What :func:`typed_assignment` returns when it has already answered (bad input, not found).
ANSWERED = -1


async def typed_assignment(ctx: Context, usage: str, *, required: bool = False) -> int | None:
    """The inspector's own assignment on the inspection the command's argument names (the public
    reference ``P1/2026-12-01/7``, or a bare number of one of theirs: :mod:`domain.refs`). ``None``
    when no argument was given (and none is ``required``); :data:`ANSWERED` after answering bad
    input, an unknown reference or an ambiguous number."""
    arg = ctx.event.argument.strip()
    if not arg and not required:
        return None
    ref = refs.parse(arg)
    if ref is None:
        await Replier(ctx)("usage.j2", {"usage": usage})
        return ANSWERED
    try:
        return await assignments.find(inspector_id(ctx), ref, ctx.conn)
    except AssignmentError as exc:
        await Replier(ctx)("refused.j2", {"code": exc.code, "params": exc.params})
        return ANSWERED


def split_ref(argument: str) -> tuple[refs.Ref | None, str]:
    """A command's leading inspection reference and the rest of its argument (a comment, a reason).
    The reference may be typed with a blank before its number (``P1/2026-12-01 7``)."""
    words = argument.strip().split(None, 2)
    if not words:
        return None, ""
    if (one := refs.parse(words[0])) is not None:
        return one, argument.strip()[len(words[0]) :].strip()
    if len(words) >= 2 and (two := refs.parse(f"{words[0]} {words[1]}")) is not None:
        return two, words[2] if len(words) == 3 else ""
    return None, ""
