"""The outbox dispatcher: claims due rows, sends them through their channel, records the outcome.

Guarantee (docs/messaging.md): at-least-once. A row is *claimed* with a lease
(``status='sending'``, ``claimed_until``) in one statement — on PostgreSQL with
``FOR UPDATE SKIP LOCKED`` so several instances never claim the same row — then sent, then
marked ``sent``. A dispatcher that dies between the send and the mark leaves the row
``sending``; when its lease expires another claim sends it again. Duplicates are therefore
limited to rows in flight at a crash (at most ``concurrency`` rows), and only then.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from bot import db
from bot.channels.base import Channel as ChannelImpl
from bot.channels.base import SendError
from bot.clock import SYSTEM, Clock
from bot.compose import compose
from bot.ratelimit import RateLimiter
from models.directory import Entity, Inspector
from models.messaging import ChatBinding, Channel, Outbox, OutboxStatus, RecipientKind, Role, Unreachable
from services.alerts import raise_alert

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=120)
MAX_ATTEMPTS = 12
MAX_HOLD = 1.0
OUR_FAULT = frozenset({"auth", "config", "too_long", "bad_request", "bad_response", "unsupported", "not_modified"})  # a worker waits at most this long for a rate-limit slot before postponing


def backoff(attempts: int) -> float:
    """Seconds before the next try: 2, 4, 8, … capped at one hour."""
    return float(min(2 ** max(attempts, 1), 3600))


@dataclass
class Claimed:
    id: int
    dedupe_key: str
    channel: str
    recipient_kind: str
    recipient_id: int
    template: str
    context: dict
    locale: str
    attempts: int
    address: str | None = None


class Dispatcher:
    def __init__(
        self,
        channels: dict[str, ChannelImpl],
        *,
        clock: Clock = SYSTEM,
        limits: dict[str, RateLimiter] | None = None,
        concurrency: int = 32,
        batch: int = 256,
        data_dir: Path | None = None,
        idle: float = 1.0,
    ) -> None:
        self.channels = channels
        self.clock = clock
        self.limits = limits or {"telegram": RateLimiter(30, 1.0), "sms": RateLimiter(10, None)}
        self.concurrency = concurrency
        self.batch = batch
        self.data_dir = data_dir
        self.idle = idle
        self._wake = asyncio.Event()
        self._stopping = False
        self.sent = 0
        self.failed = 0

    # -- loop --------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Send until stopped; sleeps when nothing is due, wakes on :meth:`wake`."""
        while not self._stopping:
            try:
                n = await self.run_once()
            except Exception:
                log.exception("dispatcher cycle failed; retrying")
                n = 0
            if n == 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.idle)
                except asyncio.TimeoutError:
                    pass

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def drain(self, timeout: float = 30.0) -> int:
        """Send everything due now (tests, the headless demo). Returns how many rows it handled."""
        total = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            n = await self.run_once()
            total += n
            if n == 0:
                break
        return total

    async def run_once(self) -> int:
        rows = await self.claim(self.batch)
        if not rows:
            return 0
        sem = asyncio.Semaphore(self.concurrency)

        async def one(row: Claimed) -> None:
            async with sem:
                await self.process(row)

        await asyncio.gather(*(one(r) for r in rows))
        return len(rows)

    # -- claim -------------------------------------------------------------------------------

    async def claim(self, limit: int) -> list[Claimed]:
        now = self.clock.now()
        conn = db.conn()
        lock = " FOR UPDATE SKIP LOCKED" if db.dialect() == "postgres" else ""
        p = db.placeholders(4).split(", ")
        sql = (
            f"UPDATE outbox SET status='sending', claimed_until={p[0]}, attempts=attempts+1 "
            f"WHERE id IN (SELECT id FROM outbox WHERE (status='pending' AND next_attempt_at <= {p[1]}) "
            f"OR (status='sending' AND claimed_until < {p[2]}) "
            f"ORDER BY priority, next_attempt_at, id LIMIT {p[3]}{lock}) "
            "RETURNING id, dedupe_key, channel, recipient_kind, recipient_id, template, context, locale, attempts, address"
        )
        rows = await conn.execute_query_dict(sql, [now + LEASE, now, now, limit])
        out = []
        for r in rows:
            ctx = r["context"]
            if isinstance(ctx, str):
                import json

                ctx = json.loads(ctx)
            out.append(Claimed(r["id"], r["dedupe_key"], r["channel"], r["recipient_kind"], r["recipient_id"],
                               r["template"], ctx, r["locale"], r["attempts"], r["address"]))
        out.sort(key=lambda c: c.id)
        return out

    # -- one row -----------------------------------------------------------------------------

    async def process(self, row: Claimed) -> None:
        channel = self.channels.get(row.channel)
        if channel is None:
            await self._retry(row, "no_channel", backoff(row.attempts))
            return
        address = row.address or await resolve_address(row.channel, row.recipient_kind, row.recipient_id)
        if address is None:
            await Outbox.filter(id=row.id).update(status=OutboxStatus.NO_ADDRESS, claimed_until=None,
                                                  attempts=row.attempts - 1)
            return
        if await Unreachable.exists(channel=row.channel, address=address):
            await self._dead(row, address, "unreachable", alert=False)
            return
        limiter = self.limits.get(row.channel)
        if limiter is not None and not await limiter.acquire(address, MAX_HOLD):
            # The recipient is busy (1 message/s per chat): come back later, no attempt used.
            await Outbox.filter(id=row.id).update(
                status=OutboxStatus.PENDING, claimed_until=None, attempts=row.attempts - 1,
                next_attempt_at=self.clock.now() + timedelta(seconds=max(limiter.wait_hint(address), 0.05)),
            )
            return
        edit_id = None
        if row.context.get("edit_of"):
            edit_id = await Outbox.filter(dedupe_key=row.context["edit_of"]).values_list("provider_id", flat=True)
            edit_id = edit_id[0] if edit_id else None
        try:
            outgoing = compose(row.template, row.context, row.locale, address, edit_message_id=edit_id,
                               data_dir=self.data_dir)
            provider_id = await channel.send(outgoing)
        except SendError as exc:
            await self._failed(row, address, exc, limiter)
            return
        except Exception as exc:  # a template or programming error: keep the row, say why
            log.exception("outbox %s could not be composed or sent", row.id)
            await self._retry(row, f"error:{exc.__class__.__name__}", backoff(row.attempts))
            return
        self.sent += 1
        await Outbox.filter(id=row.id).update(
            status=OutboxStatus.SENT, provider_id=provider_id, sent_at=self.clock.now(), claimed_until=None,
            last_error="",
        )

    async def _failed(self, row: Claimed, address: str, exc: SendError, limiter: RateLimiter | None) -> None:
        self.failed += 1
        log.info("outbox %s to %s/%s failed: %s (retryable=%s)", row.id, row.channel, row.recipient_kind,
                 exc.kind, exc.retryable)
        if exc.kind == "not_modified":  # an edit that changed nothing is done
            await Outbox.filter(id=row.id).update(status=OutboxStatus.SENT, sent_at=self.clock.now(),
                                                  claimed_until=None)
            return
        if exc.retryable:
            if exc.kind == "throttled" and limiter is not None and exc.retry_after:
                limiter.pause(exc.retry_after)
            if row.attempts >= MAX_ATTEMPTS:
                await self._dead(row, address, f"gave_up:{exc.kind}", alert=True, mark=False)
                return
            await self._retry(row, exc.kind, max(exc.retry_after or 0.0, backoff(row.attempts)))
            return
        # A permanent error that is our fault (credentials, sender, a malformed request) says
        # nothing about the recipient: dead-letter and alert, but do not mark them unreachable.
        await self._dead(row, address, exc.kind, alert=True, mark=exc.kind not in OUR_FAULT)

    async def _retry(self, row: Claimed, kind: str, delay: float) -> None:
        await Outbox.filter(id=row.id).update(
            status=OutboxStatus.PENDING, claimed_until=None, last_error=kind[:255],
            next_attempt_at=self.clock.now() + timedelta(seconds=delay),
        )

    async def _dead(self, row: Claimed, address: str, kind: str, *, alert: bool, mark: bool = True) -> None:
        now = self.clock.now()
        await Outbox.filter(id=row.id).update(status=OutboxStatus.DEAD, claimed_until=None, last_error=kind[:255])
        if mark:
            await mark_unreachable(row.channel, address, kind, now)
        if alert and row.template != ALERT_TEMPLATE:
            await alert_undeliverable(row, kind, now)


ALERT_TEMPLATE = "alert_undeliverable.j2"


async def resolve_address(channel: str, kind: str, recipient_id: int) -> str | None:
    """Where a recipient is reached on a channel, or None if nowhere yet."""
    if channel == Channel.SMS.value:
        if kind == RecipientKind.ENTITY.value:
            mobile = await Entity.filter(id=recipient_id).values_list("mobile", flat=True)
            return mobile[0] if mobile and mobile[0] else None
        if kind == RecipientKind.INSPECTOR.value:
            mobile = await Inspector.filter(id=recipient_id).values_list("mobile", flat=True)
            return mobile[0] if mobile and mobile[0] else None
        return None
    q = ChatBinding.filter(channel=channel, revoked_at=None)
    if kind == RecipientKind.INSPECTOR.value:
        q = q.filter(inspector_id=recipient_id, role=Role.INSPECTOR)
    elif kind == RecipientKind.ENTITY.value:
        q = q.filter(entity_id=recipient_id, role=Role.ENTITY)
    else:  # coordinator / person: the binding's own id
        q = q.filter(id=recipient_id)
    found = await q.order_by("-id").values_list("address", flat=True)
    return found[0] if found else None


async def mark_unreachable(channel: str, address: str, reason: str, now: datetime) -> None:
    await db.bulk_insert("unreachable", ("channel", "address", "reason", "at"), [(channel, address, reason, now)],
                         ignore_conflicts=True)
    await ChatBinding.filter(channel=channel, address=address).update(reachable=False)


async def alert_undeliverable(row: Claimed, kind: str, now: datetime) -> None:
    """Tell the coordinators responsible for the recipient (or, failing that, the admins)."""
    departments = set(row.context.get("departments", ()))
    if row.recipient_kind == RecipientKind.INSPECTOR.value:
        departments.update(await Inspector.filter(id=row.recipient_id).values_list("department__code", flat=True))
    recipient = await recipient_label(row.recipient_kind, row.recipient_id)
    await raise_alert(f"undeliverable:{row.id}", ALERT_TEMPLATE,
                      {"recipient": recipient, "reason": kind, "original": row.template}, departments, now)


async def recipient_label(kind: str, rid: int) -> str:
    if kind == RecipientKind.INSPECTOR.value:
        names = await Inspector.filter(id=rid).values_list("name", "cert_no")
        return f"{names[0][0]} ({names[0][1]})" if names else str(rid)
    if kind == RecipientKind.ENTITY.value:
        names = await Entity.filter(id=rid).values_list("name", flat=True)
        return names[0] if names else str(rid)
    names = await ChatBinding.filter(id=rid).values_list("display_name", flat=True)
    return names[0] if names and names[0] else str(rid)
