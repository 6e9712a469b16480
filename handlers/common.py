"""Small helpers every handler uses: who is acting, and answering in the sender's chat."""

from __future__ import annotations

from models.messaging import Role
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
