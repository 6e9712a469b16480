"""The outbox dispatcher: claims due rows, sends them through their channel, records the outcome.

Guarantee (docs/messaging.md): at-least-once. A row is *claimed* with a lease
(``status='sending'``, ``claimed_until``) in one statement — on PostgreSQL with
``FOR UPDATE SKIP LOCKED`` so several instances never claim the same row — then sent, then
marked ``sent``. A dispatcher that dies between the send and the mark leaves the row
``sending``; when its lease expires another claim sends it again. Duplicates are therefore
limited to rows in flight at a crash (at most ``concurrency`` rows), and only then.

Database work is batched (docs/messaging.md): one statement claims a batch; one query each
finds the batch's addresses, the unreachable ones among them and the messages it edits; and
outcomes are written by group commit (:class:`OutcomeWriter`). A worker still waits until its
row's outcome is stored before it takes another row, so the duplicate bound above is unchanged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

from core import db
from core.channel import Channel as ChannelImpl
from core.channel import SendError
from core.clock import SYSTEM, Clock
from core.compose import compose
from core.ratelimit import RateLimiter
from domain.surveys import SHANGHAI
from models.directory import Entity, Inspector
from models.messaging import CHAT_CHANNELS, Channel, ChatBinding, Outbox, RecipientKind, Role
from services.alerts import raise_alert
from services.quota import DailyQuota, alert_quota_spent, china_day, next_day_starts
from services.reachability import HOLD_CHANNELS, Marked, mark_unreachable
from services.surveys.receipts import apply_recorded, awaited, lock_for_sends

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=120)
MAX_ATTEMPTS = 12
MAX_HOLD = 1.0  # a worker waits at most this long for a busy recipient before postponing the row
# A permanent error that is our fault (credentials, sender, a malformed request) says nothing
# about the recipient.
OUR_FAULT = frozenset({"auth", "config", "too_long", "bad_request", "bad_response", "unsupported", "not_modified"})

# The outcomes, one UPDATE each (``?`` placeholders; see :func:`sql`).
SENT = "UPDATE outbox SET status='sent', provider_id=?, sent_at=?, claimed_until=NULL, last_error='' WHERE id=?"
UNCHANGED = "UPDATE outbox SET status='sent', sent_at=?, claimed_until=NULL WHERE id=?"
RETRY = "UPDATE outbox SET status='pending', claimed_until=NULL, last_error=?, next_attempt_at=? WHERE id=?"
POSTPONE = "UPDATE outbox SET status='pending', claimed_until=NULL, attempts=?, next_attempt_at=? WHERE id=?"
NO_ADDRESS = "UPDATE outbox SET status='no_address', claimed_until=NULL, attempts=? WHERE id=?"
# Over the channel's daily quota: due again when the next day starts (no attempt used).
OVER_QUOTA = "UPDATE outbox SET status='pending', claimed_until=NULL, attempts=?, last_error='quota', next_attempt_at=? WHERE id=?"
# A send that failed so: the request may have reached the provider (and counted against the quota).
MAYBE_SENT = frozenset({"timeout", "connection"})
DEAD = "UPDATE outbox SET status='dead', claimed_until=NULL, last_error=? WHERE id=?"
# Held while the address is marked unreachable (no attempt used); due again if the mark cleared
# meanwhile, so a release that ran while this row was in flight does not miss it.
HOLD = (
    "UPDATE outbox SET status=CASE WHEN EXISTS (SELECT 1 FROM unreachable WHERE channel=? AND address=?) "
    "THEN 'held' ELSE 'pending' END, claimed_until=NULL, attempts=?, last_error=?, next_attempt_at=? WHERE id=?"
)


#: WeCom's published limits for an application's messages: per member 30 a minute and 1000 an
#: hour, per corp and API 10,000 calls a minute and 150,000 an hour. 40/s keeps under both corp
#: limits (2,400/min, 144,000/h); one message per member every 4 s keeps under both member limits
#: (15/min, 900/h) even when a message takes two requests (a long text and its card, a caption
#: and its photo). docs/messaging.md, "WeCom channel".
WECOM_RATE = 40
WECOM_PER_MEMBER = 4.0


def default_limits() -> dict[str, RateLimiter]:
    return {
        "telegram": RateLimiter(30, 1.0),
        "sms": RateLimiter(10, None),
        "wecom": RateLimiter(WECOM_RATE, WECOM_PER_MEMBER),
    }


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
    claimed_channel: str = ""  # the channel the row was stored with (``channel`` may be rerouted)

    def __post_init__(self) -> None:
        self.claimed_channel = self.claimed_channel or self.channel


@dataclass
class Batch:
    """What one claimed batch needs from the database, looked up with one query per kind."""

    addresses: dict[int, str | None]  # outbox id -> where to send it (None: no address yet)
    unreachable: set[tuple[str, str]]  # (channel, address) refused for good, incl. those found now
    edits: dict[str, str | None] = field(default_factory=dict)  # dedupe key -> its provider message id


class OutcomeWriter:
    """Group commit of outcomes: :meth:`write` returns once the row's UPDATE is stored, but all
    the outcomes that arrive while one write is under way go together in the next one — one
    ``executemany`` (one transaction) per statement — instead of one commit per row.

    A send's provider id (``sent``: channel, id; SMS sends and Telegram survey polls) is recorded
    under the receipts' advisory lock (shared); the delivery receipts and poll answers that
    arrived before it and wait for that id are applied right after that commit, before the
    workers are answered, each id in a transaction of its own (services/surveys/receipts.py)."""

    def __init__(self, clock: Clock = SYSTEM, zone: tzinfo = SHANGHAI) -> None:
        self._zone = zone  # the service's (INSPECTBOT_TZ): a survey fallback a receipt starts uses it
        self._queued: dict[str, list[tuple[list, asyncio.Future, tuple[str, str] | None]]] = {}
        self._writer: asyncio.Task | None = None
        self._clock = clock

    async def write(self, statement: str, params: list, *, sent: tuple[str, str] | None = None) -> None:
        done = asyncio.get_running_loop().create_future()
        self._queued.setdefault(statement, []).append((params, done, sent))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        while self._queued:
            queued, self._queued = self._queued, {}
            outcome: Exception | None = None
            sent = [s for items in queued.values() for _, _, s in items if s is not None]
            try:
                # One transaction for all of them, on SQLite wholly on the loop's thread (short
                # statements by id): no hand-off to aiosqlite's thread, whose wake-ups under a busy
                # loop made the workers wait for their outcomes as long as for their sends
                # (docs/benchmarks.md, "WeCom fan-out"); BEGIN waits there only if another process
                # holds the write lock. With SMS sends or polls, their ids are recorded under the
                # advisory lock shared (PostgreSQL: an event that found no row commits its wait
                # first, or waits for this commit), and nothing else is locked under it.
                with db.on_loop():
                    async with db.transaction() as conn:
                        if sent:
                            await lock_for_sends(conn)
                        for statement, items in queued.items():
                            await conn.execute_many(db.sql(statement, connection=conn), [p for p, _, _ in items])
            except Exception as exc:  # each waiting worker raises it, as a failed UPDATE did
                outcome = exc
            if outcome is None and sent:
                # What waited for those ids, each id in a transaction of its own, after the commit:
                # applied under the advisory lock, a survey fallback or a poll answer would wait
                # for a survey an inbound batch holds while that batch waits for the advisory lock
                # (docs/messaging.md, "Lock order around receipts"). Never raises: the sweep retries.
                await apply_recorded(sent, self._clock.now(), zone=self._zone)
            for items in queued.values():
                for _, done, _ in items:
                    if done.done():
                        continue
                    if outcome is None:
                        done.set_result(None)
                    else:
                        done.set_exception(outcome)


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
        lease: timedelta = LEASE,
        quotas: dict[str, int] | None = None,
        zone: tzinfo = SHANGHAI,
    ) -> None:
        self.channels = channels
        self.clock = clock
        self.limits = limits or default_limits()
        self.concurrency = concurrency
        self.batch = batch
        self.data_dir = data_dir
        self.idle = idle
        self.lease = lease  # how long a claimed row is ours; a dead dispatcher's rows wait this long
        self._wake = asyncio.Event()
        self._stopping = False
        self._outcomes = OutcomeWriter(clock, zone)
        # channel -> messages a day (WeCom: licensed accounts x 200), counted across instances
        self.quotas = {ch: DailyQuota(ch, n) for ch, n in (quotas or {}).items() if n > 0}
        self._quota_alerted: set[str] = set()
        self.sent = 0
        self.failed = 0

    # -- loop --------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Send until stopped; sleeps when nothing is due, wakes on :meth:`wake`."""
        while not self._stopping:
            try:
                n = await self.pump()
            except Exception:
                log.exception("dispatcher cycle failed; retrying")
                n = 0
            if n == 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.idle)
                except TimeoutError:
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
            n = await self.pump(deadline=deadline)
            total += n
            if n == 0:
                break
        return total

    async def pump(self, limit: int | None = None, *, deadline: float | None = None) -> int:
        """Claim and send until nothing is due (or ``limit`` rows are claimed, or the loop time
        passes ``deadline``), with ``concurrency`` rows in flight all along: the next batch is
        claimed and prepared while the current one's last rows are being sent, so the channel
        never idles between batches. Returns how many rows it handled.

        The guarantees of :meth:`run_once` hold: a row is sent only after its claim is stored,
        a worker takes another row only once its row's outcome is stored (duplicates after a
        crash stay bounded by ``concurrency``), and rows claimed ahead are ``sending`` under
        their lease like any claimed row. The batches of one pump share their set of
        unreachable addresses, so a mark made while a batch is queued still applies to it."""
        loop = asyncio.get_running_loop()
        queue: deque[tuple[Claimed, Batch]] = deque()
        unreachable: set[tuple[str, str]] = set()
        claimed = handled = 0
        exhausted = False
        refill: asyncio.Task | None = None
        errors: list[BaseException] = []

        def stop_claiming() -> bool:
            return (
                exhausted
                or self._stopping
                or (limit is not None and claimed >= limit)
                or (deadline is not None and loop.time() >= deadline)
            )

        async def claim_next() -> None:
            nonlocal claimed, exhausted
            try:
                rows = await self.claim(self.batch if limit is None else min(self.batch, limit - claimed))
                if not rows:
                    exhausted = True
                    return
                claimed += len(rows)
                batch = await self.prepare(rows)
            except Exception as exc:  # raised once the rows already taken are done
                errors.append(exc)
                exhausted = True
                return
            unreachable.update(batch.unreachable)
            batch.unreachable = unreachable
            queue.extend((r, batch) for r in rows)

        def ensure_refill() -> None:
            nonlocal refill
            if (refill is None or refill.done()) and not stop_claiming():
                refill = asyncio.create_task(claim_next())

        async def worker() -> None:
            nonlocal handled
            while True:
                if len(queue) <= self.concurrency:  # running low: claim the next batch now
                    ensure_refill()
                while not queue:
                    task = refill
                    if task is None or (task.done() and stop_claiming()):
                        return
                    if task.done():
                        ensure_refill()
                        continue
                    await asyncio.shield(task)
                row, batch = queue.popleft()
                try:
                    await self.process(row, batch)
                except Exception as exc:  # every row finishes; the first failure is raised at the end
                    errors.append(exc)
                handled += 1

        workers = [asyncio.create_task(worker()) for _ in range(self.concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            if refill is not None and not refill.done():  # cancelled from outside: its rows wait out their lease
                refill.cancel()
        if errors:
            raise errors[0]
        return handled

    async def run_once(self) -> int:
        """Claim one batch, look up what it needs, send it with bounded concurrency."""
        rows = await self.claim(self.batch)
        if not rows:
            return 0
        batch = await self.prepare(rows)
        sem = asyncio.Semaphore(self.concurrency)

        async def one(row: Claimed) -> None:
            async with sem:
                await self.process(row, batch)

        # Every row finishes (or fails) before the cycle ends; the first failure is raised then.
        results = await asyncio.gather(*(one(r) for r in rows), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        return len(rows)

    # -- claim -------------------------------------------------------------------------------

    async def claim(self, limit: int) -> list[Claimed]:
        now = self.clock.now()
        conn = db.conn()
        lock = " FOR UPDATE SKIP LOCKED" if db.dialect() == "postgres" else ""
        p = db.placeholders(4).split(", ")
        statement = (
            f"UPDATE outbox SET status='sending', claimed_until={p[0]}, attempts=attempts+1 "
            f"WHERE id IN (SELECT id FROM outbox WHERE (status='pending' AND next_attempt_at <= {p[1]}) "
            f"OR (status='sending' AND claimed_until < {p[2]}) "
            f"ORDER BY priority, next_attempt_at, id LIMIT {p[3]}{lock}) "
            "RETURNING id, dedupe_key, channel, recipient_kind, recipient_id, template, context, locale, attempts, address"
        )
        rows = await conn.execute_query_dict(statement, [now + self.lease, now, now, limit])
        out = []
        for r in rows:
            ctx = r["context"]
            if isinstance(ctx, str):
                ctx = json.loads(ctx)
            out.append(
                Claimed(
                    r["id"],
                    r["dedupe_key"],
                    r["channel"],
                    r["recipient_kind"],
                    r["recipient_id"],
                    r["template"],
                    ctx,
                    r["locale"],
                    r["attempts"],
                    r["address"],
                )
            )
        out.sort(key=lambda c: c.id)
        return out

    async def prepare(self, rows: list[Claimed]) -> Batch:
        """Addresses, unreachable addresses and edited messages of a batch: one query per kind."""
        addresses = await resolve_addresses(rows)
        moved: dict[str, list[int]] = {}
        for r in rows:
            if r.channel != r.claimed_channel:
                moved.setdefault(r.channel, []).append(r.id)
        conn = db.conn()
        # Plain SQL, not querysets: building a query of 256 parameters through the ORM cost more
        # than running it (docs/benchmarks.md, "WeCom fan-out").
        for channel, ids in moved.items():  # sent where the person is bound: the row says so (hold, release)
            marks = db.placeholders(len(ids), 2)
            await conn.execute_query(db.sql("UPDATE outbox SET channel=? WHERE id IN (") + marks + ")", [channel, *ids])
        wanted = sorted({a for a in addresses.values() if a})
        unreachable = set()
        if wanted:
            statement = f"SELECT channel, address FROM unreachable WHERE address IN ({db.placeholders(len(wanted))})"
            _, found = await conn.execute_query(statement, wanted)
            unreachable = {(r["channel"], r["address"]) for r in found}
        keys = sorted({r.context["edit_of"] for r in rows if r.context.get("edit_of")})
        edits = dict(await Outbox.filter(dedupe_key__in=keys).values_list("dedupe_key", "provider_id")) if keys else {}
        return Batch(addresses, unreachable, edits)

    # -- one row -----------------------------------------------------------------------------

    async def process(self, row: Claimed, batch: Batch | None = None) -> None:
        """Send one claimed row and store its outcome (``batch``: what :meth:`prepare` found)."""
        if batch is None:
            batch = await self.prepare([row])
        address = batch.addresses.get(row.id)
        if address is None:  # before the channel: a chat row finds its channel with its address
            await self._outcomes.write(NO_ADDRESS, [row.attempts - 1, row.id])
            return
        channel = self.channels.get(row.channel)
        if channel is None:
            await self._retry(row, "no_channel", backoff(row.attempts))
            return
        if (row.channel, address) in batch.unreachable:
            if row.channel in HOLD_CHANNELS:
                await self._hold(row, address, "unreachable")
            else:
                await self._dead(row, address, "unreachable", batch, alert=False)
            return
        quota = self.quotas.get(row.channel)
        if quota is not None and not await quota.take(self.clock.now()):
            await self._over_quota(row, quota)
            return
        limiter = self.limits.get(row.channel)
        slot = None
        if limiter is not None:
            slot = await limiter.acquire(address, MAX_HOLD)
            if slot is None:
                if quota is not None:
                    quota.give_back(self.clock.now())
                # The recipient is busy (1 message/s per chat): come back later, no attempt used.
                delay = max(limiter.wait_hint(address), 0.05)
                await self._outcomes.write(
                    POSTPONE, [row.attempts - 1, self.clock.now() + timedelta(seconds=delay), row.id]
                )
                return
        edit_id = batch.edits.get(row.context["edit_of"]) if row.context.get("edit_of") else None
        try:
            try:
                outgoing = compose(
                    row.template,
                    row.context,
                    row.locale,
                    address,
                    edit_message_id=edit_id,
                    data_dir=self.data_dir,
                    key=row.dedupe_key,
                    channel=row.channel,
                )
                provider_id = await channel.send(outgoing)
            finally:
                if slot is not None:
                    limiter.release(slot)  # the limits count from the answer
        except SendError as exc:
            if quota is not None and exc.kind not in MAYBE_SENT:
                quota.give_back(self.clock.now())
            await self._failed(row, address, exc, limiter, batch)
            return
        except Exception as exc:  # a template or programming error: keep the row, say why
            if quota is not None:
                quota.give_back(self.clock.now())
            log.exception("outbox %s could not be composed or sent", row.id)
            await self._retry(row, f"error:{exc.__class__.__name__}", backoff(row.attempts))
            return
        self.sent += 1
        waits = (row.channel, provider_id) if awaited(row.channel, row.dedupe_key) else None
        await self._outcomes.write(SENT, [provider_id, self.clock.now(), row.id], sent=waits)

    async def _failed(
        self, row: Claimed, address: str, exc: SendError, limiter: RateLimiter | None, batch: Batch
    ) -> None:
        self.failed += 1
        log.info(
            "outbox %s to %s/%s failed: %s (retryable=%s)",
            row.id,
            row.channel,
            row.recipient_kind,
            exc.kind,
            exc.retryable,
        )
        if exc.kind == "not_modified":  # an edit that changed nothing is done
            await self._outcomes.write(UNCHANGED, [self.clock.now(), row.id])
            return
        if exc.retryable:
            if exc.kind == "throttled" and limiter is not None and exc.retry_after:
                limiter.pause(exc.retry_after)
            if row.attempts >= MAX_ATTEMPTS:
                await self._dead(row, address, f"gave_up:{exc.kind}", batch, alert=True, mark=False)
                return
            await self._retry(row, exc.kind, max(exc.retry_after or 0.0, backoff(row.attempts)))
            return
        # A permanent error that is our fault says nothing about the recipient: dead-letter and
        # alert, but do not mark them unreachable.
        await self._dead(row, address, exc.kind, batch, alert=True, mark=exc.kind not in OUR_FAULT)

    async def _over_quota(self, row: Claimed, quota: DailyQuota) -> None:
        """The channel's quota for today is spent: the row waits for the next day (not lost), and
        the admins are told once a day."""
        now = self.clock.now()
        await self._outcomes.write(OVER_QUOTA, [row.attempts - 1, next_day_starts(now), row.id])
        day = f"{row.channel}:{china_day(now)}"
        if day not in self._quota_alerted:
            self._quota_alerted.add(day)
            if await alert_quota_spent(row.channel, quota.daily, now):
                log.warning("%s: the daily quota of %d messages is spent; the rest waits", row.channel, quota.daily)

    async def _retry(self, row: Claimed, kind: str, delay: float) -> None:
        await self._outcomes.write(RETRY, [kind[:255], self.clock.now() + timedelta(seconds=delay), row.id])

    async def _hold(self, row: Claimed, address: str, kind: str) -> None:
        """Keep the row until its address is reachable again (services/reachability.py)."""
        await self._outcomes.write(HOLD, [row.channel, address, row.attempts - 1, kind[:255], self.clock.now(), row.id])

    async def _dead(
        self, row: Claimed, address: str, kind: str, batch: Batch, *, alert: bool, mark: bool = True
    ) -> None:
        """A permanent failure. With ``mark``, the address is marked unreachable and, on a channel
        that holds (Telegram), the row itself is held with the rest, not dead-lettered."""
        now = self.clock.now()
        marked = Marked(new=False, alerted=False)
        if mark:
            marked = await mark_unreachable(row.channel, address, kind, now)
            batch.unreachable.add((row.channel, address))  # the rest of the batch skips it
        if mark and row.channel in HOLD_CHANNELS:
            await self._hold(row, address, kind)
        else:
            await self._outcomes.write(DEAD, [kind[:255], row.id])
        # an inspector's coordinators were told of the episode itself; anyone else's, of this row
        if alert and not marked.alerted and row.template != ALERT_TEMPLATE:
            await alert_undeliverable(row, kind, now)


ALERT_TEMPLATE = "alert_undeliverable.j2"


async def resolve_addresses(rows: list[Claimed]) -> dict[int, str | None]:
    """Where each row goes: its own address (a reply), else its recipient's, one query per
    (channel, recipient kind) in the batch. None where the recipient has no address yet.

    A chat row (``telegram``, the default of every notice) goes to the person's newest live
    binding on any chat channel: a person bound on WeCom only is reached there, and the row's
    ``channel`` is changed to say so (WeCom rows are never moved back)."""
    wanted: dict[tuple[str, str], set[int]] = {}
    for r in rows:
        if not r.address:
            wanted.setdefault((r.channel, r.recipient_kind), set()).add(r.recipient_id)
    found: dict[tuple[str, str], dict[int, tuple[str, str]]] = {}
    for (channel, kind), ids in wanted.items():
        if channel == Channel.TELEGRAM.value:
            found[(channel, kind)] = await chat_addresses(kind, sorted(ids))
        else:
            found[(channel, kind)] = {
                rid: (channel, a) for rid, a in (await addresses_of(channel, kind, sorted(ids))).items()
            }
    out: dict[int, str | None] = {}
    for r in rows:
        if r.address:
            out[r.id] = r.address
            continue
        hit = found[(r.channel, r.recipient_kind)].get(r.recipient_id)
        if hit is None:
            out[r.id] = None
        else:
            r.channel, out[r.id] = hit
    return out


#: A WeCom inspector binding is used only while the directory agrees (as
#: ``services.identity.as_the_directory_says`` on an event): its inspector not retired, naming no
#: other userid, and no other inspector named with this one (the userid was given to someone else,
#: who takes the binding over on their first event) — an inspector's notices never go to a userid
#: that is now another person's. Userids are compared as WeCom compares them, without regard to
#: case (``LOWER()``, the inspector's unique index): a directory's ``ZhangSan`` is the binding of
#: ``zhangsan``, and the message goes to the binding's address, as WeCom spelt it in its callback.
DIRECTORY_LIVE = (
    " AND (channel <> ? OR (EXISTS (SELECT 1 FROM inspector i WHERE i.id = chat_binding.inspector_id"
    " AND i.status <> 'retired' AND (i.wecom_userid IS NULL OR i.wecom_userid = ''"
    " OR LOWER(i.wecom_userid) = LOWER(chat_binding.address)))"
    " AND NOT EXISTS (SELECT 1 FROM inspector o WHERE LOWER(o.wecom_userid) = LOWER(chat_binding.address)"
    " AND o.id <> chat_binding.inspector_id AND o.status <> 'retired')))"
)


async def chat_addresses(kind: str, ids: list[int]) -> dict[int, tuple[str, str]]:
    """Recipient id -> (channel, address) of the newest live binding on any chat channel."""
    # never a Telegram group's chat (a negative id); a WeCom userid may start with "-"
    key, role = {
        RecipientKind.INSPECTOR.value: ("inspector_id", Role.INSPECTOR.value),
        RecipientKind.ENTITY.value: ("entity_id", Role.ENTITY.value),
    }.get(kind, ("id", ""))
    params: list = [*CHAT_CHANNELS, Channel.WECOM.value]
    statement = (
        f"SELECT {key} AS rid, channel, address FROM chat_binding WHERE channel IN (?, ?) AND revoked_at IS NULL "
        "AND (channel = ? OR address NOT LIKE '-%')"
    )
    if role:
        statement += " AND role = ?"
        params.append(role)
    if role == Role.INSPECTOR.value:  # a WeCom binding reaches the inspector the directory names (services.identity)
        statement += DIRECTORY_LIVE
        params.append(Channel.WECOM.value)
    conn = db.conn()
    statement = db.sql(statement) + f" AND {key} IN ({db.placeholders(len(ids), len(params) + 1)}) ORDER BY id"
    _, rows = await conn.execute_query(statement, [*params, *ids])
    # ascending ids: a later binding of the same person overwrites an earlier one (the newest wins)
    return {r["rid"]: (r["channel"], r["address"]) for r in rows}


async def resolve_address(channel: str, kind: str, recipient_id: int) -> str | None:
    """Where one recipient is reached on a channel, or None if nowhere yet."""
    return (await addresses_of(channel, kind, [recipient_id])).get(recipient_id)


async def addresses_of(channel: str, kind: str, ids: list[int]) -> dict[int, str]:
    """Recipient id -> address on ``channel``: the mobile number (SMS) or the newest live chat
    binding (Telegram) of the person — never a group's chat (negative id): a binding of a group,
    made before issue 13, gets nothing (``inspectbot bindings groups --revoke`` removes it).
    Recipients without one are left out."""
    if channel == Channel.SMS.value:
        model = {RecipientKind.ENTITY.value: Entity, RecipientKind.INSPECTOR.value: Inspector}.get(kind)
        if model is None:
            return {}
        return {rid: mobile for rid, mobile in await model.filter(id__in=ids).values_list("id", "mobile") if mobile}
    if channel == Channel.WECOM.value and kind == RecipientKind.INSPECTOR.value:  # a row already moved to WeCom
        params: list = [channel, Role.INSPECTOR.value, Channel.WECOM.value]
        statement = db.sql(
            "SELECT inspector_id AS rid, address FROM chat_binding WHERE channel = ? AND revoked_at IS NULL "
            "AND role = ?" + DIRECTORY_LIVE
        )
        statement += f" AND inspector_id IN ({db.placeholders(len(ids), len(params) + 1)}) ORDER BY id"
        _, rows = await db.conn().execute_query(statement, [*params, *ids])
        return {r["rid"]: r["address"] for r in rows}
    q = ChatBinding.filter(channel=channel, revoked_at=None).exclude(address__startswith="-")
    if kind == RecipientKind.INSPECTOR.value:
        q, key = q.filter(inspector_id__in=ids, role=Role.INSPECTOR), "inspector_id"
    elif kind == RecipientKind.ENTITY.value:
        q, key = q.filter(entity_id__in=ids, role=Role.ENTITY), "entity_id"
    else:  # coordinator / person: the binding's own id
        q, key = q.filter(id__in=ids), "id"
    # Ascending ids: a later binding of the same person overwrites an earlier one (the newest wins).
    return {rid: address for rid, address in await q.order_by("id").values_list(key, "address")}


async def alert_undeliverable(row: Claimed, kind: str, now: datetime) -> None:
    """Tell the coordinators responsible for the recipient (or, failing that, the admins)."""
    departments = set(row.context.get("departments", ()))
    if row.recipient_kind == RecipientKind.INSPECTOR.value:
        departments.update(await Inspector.filter(id=row.recipient_id).values_list("department__code", flat=True))
    recipient = await recipient_label(row.recipient_kind, row.recipient_id)
    await raise_alert(
        f"undeliverable:{row.id}",
        ALERT_TEMPLATE,
        # "via": the recipient's channel (the alert is read on the coordinator's): WeCom's reasons differ
        {"recipient": recipient, "reason": kind, "original": row.template, "via": row.channel},
        departments,
        now,
    )


async def recipient_label(kind: str, rid: int) -> str:
    if kind == RecipientKind.INSPECTOR.value:
        names = await Inspector.filter(id=rid).values_list("name", "cert_no")
        return f"{names[0][0]} ({names[0][1]})" if names else str(rid)
    if kind == RecipientKind.ENTITY.value:
        names = await Entity.filter(id=rid).values_list("name", flat=True)
        return names[0] if names else str(rid)
    names = await ChatBinding.filter(id=rid).values_list("display_name", flat=True)
    return names[0] if names and names[0] else str(rid)
