"""The Telegram channel: the real python-telegram-bot behind our channel interface.

Sending goes through PTB's ``Bot``; receiving either by long polling (our loop over PTB's
``Bot.get_updates``, :meth:`TelegramChannel._poll`) or through our own aiohttp webhook route
(``webhook_handler``), which checks the secret token and stores the event before it answers
2xx (so a failure answers 503 and Telegram retries). Either way each ``Update`` is normalised
to an :class:`~core.channel.InboundEvent`.

Why not PTB's ``Updater``: it confirms a batch of updates (the next ``getUpdates`` offset) as
soon as it has fetched it and queued it in memory, before any of it is handled — a crash, or a
restart while the database is down, loses every update fetched but not yet stored. Our loop
asks for the next updates only once each update of the batch is stored (committed), so
Telegram keeps what we have not stored and delivers it again; a redelivered update we did store
is a duplicate the inbound log ignores (its ``update_id`` is its key).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import timedelta

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Update
from telegram import error as tg_error
from telegram.ext import Application, ApplicationBuilder

from core.channel import EventCallback, EventKind, InboundEvent, Outgoing, SendError, split_parts, utf16_units
from core.logs import not_stored

log = logging.getLogger(__name__)
# httpx logs every request URL at INFO, and Bot API URLs carry the bot token: never let it out.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

#: answerCallbackQuery calls waiting or under way at most (:meth:`TelegramChannel.answer_button_soon`)…
MAX_PENDING_ANSWERS = 256
#: … of which at most this many are on the wire at once: the rest wait here, not in httpx's
#: connection pool (whose scan of waiting requests grows with their square) and not taking the
#: pool's connections from the dispatcher's sends.
ANSWER_CONCURRENCY = 16
#: my_chat_member: the person blocked or unblocked the bot (or a group removed or added it), which
#: marks the chat unreachable or clears the mark (services/reachability.py).
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "poll_answer", "my_chat_member"]
POLL_TIMEOUT = 10  # seconds a getUpdates call waits for updates (long polling)
RETRY_MAX = 30.0  # the longest wait between tries (getUpdates failing, or storing an update)
MAX_BODY = 1 << 20  # a Telegram update is far smaller; anything larger is refused
TEXT_LIMIT = 4096  # a message's text, in UTF-16 code units (sendMessage, editMessageText)


class TelegramChannel:
    name = "telegram"

    def __init__(
        self,
        token: str,
        *,
        api_url: str = "",
        mode: str = "polling",  # "polling" | "webhook" | "send-only"
        webhook_url: str = "",
        webhook_secret: str = "",
        on_event: EventCallback | None = None,
        timeout: float = 10.0,
        pool_size: int = 64,
    ) -> None:
        if mode not in ("polling", "webhook", "send-only"):
            raise ValueError(f"unknown Telegram mode {mode!r}")
        if mode == "webhook" and not webhook_secret:
            raise ValueError("webhook mode needs a secret token")
        self.mode = mode
        self.webhook_url = webhook_url
        self._secret = webhook_secret
        self.on_event = on_event
        builder = (
            ApplicationBuilder()
            .token(token)
            .connection_pool_size(pool_size)
            .pool_timeout(timeout)
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .write_timeout(timeout)
            .get_updates_read_timeout(timeout + 30)
        )
        if api_url:
            base = api_url.rstrip("/")
            builder = builder.base_url(f"{base}/bot").base_file_url(f"{base}/file/bot")
        builder = builder.updater(None)  # polling is our own loop (_poll), see the module's docstring
        self.app: Application = builder.build()
        self.username = ""
        self._polling: asyncio.Task | None = None
        self._offset: int | None = None  # the next getUpdates offset: every update before it is stored
        self._confirmed: int | None = None  # the offset Telegram was last told
        self._answers: set[asyncio.Task] = set()  # answerCallbackQuery calls under way (answer_button_soon)
        self._answer_slots = asyncio.Semaphore(ANSWER_CONCURRENCY)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self.app.initialize()
        self.username = self.app.bot.username or ""
        if self.mode == "webhook":
            await self.app.bot.set_webhook(self.webhook_url, secret_token=self._secret, allowed_updates=ALLOWED_UPDATES)
        elif self.mode == "polling":
            await self.app.bot.delete_webhook()
            self._polling = asyncio.create_task(self._poll(), name="telegram-polling")

    async def stop(self) -> None:
        if self._answers:  # a moment for the spinners' answers under way, then they are dropped
            _, late = await asyncio.wait(list(self._answers), timeout=2)
            for task in late:
                task.cancel()
        if self._polling is not None:
            self._polling.cancel()
            await asyncio.gather(self._polling, return_exceptions=True)
            self._polling = None
            await self._confirm()
        await self.app.shutdown()

    # -- sending -----------------------------------------------------------------------------

    async def send(self, message: Outgoing) -> str:
        bot = self.app.bot
        markup = _markup(message)
        try:
            if message.edit_message_id:
                result = await bot.edit_message_text(
                    _cut(message.text, TEXT_LIMIT),  # an edit is one message: what does not fit is cut
                    chat_id=message.address,
                    message_id=int(message.edit_message_id),
                    reply_markup=markup,
                )
                return str(getattr(result, "message_id", message.edit_message_id))
            if message.poll is not None:
                sent = await bot.send_poll(
                    message.address, message.poll.question, list(message.poll.options), is_anonymous=False
                )
                # a poll answer names only the poll's id: that is the id to record for a poll
                return str(sent.poll.id)
            elif message.photo is not None:
                sent = await bot.send_photo(
                    message.address,
                    InputFile(message.photo, filename=message.photo_name),
                    caption=message.text or None,
                    reply_markup=markup,
                )
            elif message.document is not None:
                sent = await bot.send_document(
                    message.address,
                    InputFile(message.document, filename=message.document_name),
                    caption=message.text or None,
                    reply_markup=markup,
                )
            else:
                # a text past Telegram's 4,096 goes as several messages (the buttons on the last),
                # never refused whole: a bad_request is permanent and the reply would be lost
                *first, last = split_parts(message.text, TEXT_LIMIT, utf16_units) or [message.text]
                for part in first:
                    await bot.send_message(message.address, part)
                sent = await bot.send_message(message.address, last, reply_markup=markup)
        except tg_error.TelegramError as exc:
            raise send_error(exc) from None
        return str(sent.message_id)

    async def answer_button(self, callback_id: str, text: str = "") -> None:
        """Stop the client's spinner. Best effort: a late answer is harmless."""
        try:
            await self.app.bot.answer_callback_query(callback_id, text=text or None)
        except tg_error.TelegramError as exc:
            log.info("answerCallbackQuery failed: %s", exc.__class__.__name__)

    def answer_button_soon(self, callback_id: str, text: str = "") -> None:
        """:meth:`answer_button` in the background: the caller (a webhook's 200, the next polled
        update) does not wait for the Bot API's round trip. At most :data:`MAX_PENDING_ANSWERS`
        at a time; past that one is dropped (logged) — the client's spinner then stops by itself."""
        if len(self._answers) >= MAX_PENDING_ANSWERS:
            log.info("answerCallbackQuery skipped: %d answers under way", len(self._answers))
            return
        task = asyncio.get_running_loop().create_task(self._answer_in_turn(callback_id, text))
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)

    async def _answer_in_turn(self, callback_id: str, text: str = "") -> None:
        async with self._answer_slots:
            await self.answer_button(callback_id, text)

    async def fetch_file(self, file_id: str) -> bytes:
        try:
            file = await self.app.bot.get_file(file_id)
            return bytes(await file.download_as_bytearray())
        except tg_error.TelegramError as exc:
            raise send_error(exc) from None

    # -- receiving ---------------------------------------------------------------------------

    async def _poll(self) -> None:
        """Long polling: fetch a batch, store each of its updates in order, then ask for the next
        batch — whose offset is what confirms the stored ones to Telegram. A failing getUpdates
        (the network, Telegram's 5xx, 409 while another instance polls) is tried again with
        backoff; an update that cannot be stored (the database is down) is tried again, with
        backoff, before anything after it, and stays unconfirmed meanwhile."""
        delay = 0.5
        while True:
            try:
                updates = await self.app.bot.get_updates(
                    offset=self._offset, timeout=POLL_TIMEOUT, allowed_updates=ALLOWED_UPDATES
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # PTB's TelegramError, or anything the HTTP layer raised
                log.warning("getUpdates failed (%s), trying again in %.1f s", exc.__class__.__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            delay = 0.5
            self._confirmed = self._offset
            for update in updates:
                await self._store(update)
                self._offset = update.update_id + 1

    async def _store(self, update: Update) -> None:
        """Hand one polled update to ``on_event`` (which returns once it is committed), trying
        again until it is stored: it is not confirmed until then, so nothing is lost."""
        try:
            event = normalise(update, me=self.username)
        except Exception:  # an update we cannot read is not retried for ever (it would hold up the rest)
            log.exception("Telegram update %s could not be read; skipped", update.update_id)
            return
        if event is None or self.on_event is None:
            return
        delay = 0.5
        while True:
            try:
                await self.on_event(event)
                return
            except Exception as exc:
                not_stored(log, exc, "inbound Telegram update %s not stored; retrying", event.external_id)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    async def _confirm(self) -> None:
        """At shutdown, tell Telegram which updates are stored (else it sends them again at the
        next start, where they are duplicates: harmless, but needless)."""
        if self._offset is None or self._offset == self._confirmed:
            return
        try:
            await self.app.bot.get_updates(offset=self._offset, timeout=0, limit=1, allowed_updates=ALLOWED_UPDATES)
            self._confirmed = self._offset
        except Exception as exc:
            log.warning("could not confirm the stored updates at shutdown (%s)", exc.__class__.__name__)

    def secret_ok(self, header: str | None) -> bool:
        return bool(header) and secrets.compare_digest(header.encode(), self._secret.encode())

    def parse_webhook(self, data: dict) -> InboundEvent | None:
        return normalise(
            Update.de_json(data, self.app.bot), raw=data, me=self.username
        )  # the posted dict: no to_dict() again


def _markup(message: Outgoing) -> InlineKeyboardMarkup | None:
    if not message.buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.label, callback_data=b.data) for b in row] for row in message.buttons]
    )


def _cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` UTF-16 code units, ending "…" when cut."""
    if utf16_units(text) <= limit:
        return text
    cut = limit - 1
    while utf16_units(text[:cut]) > limit - 1:
        cut -= 1
    return text[:cut] + "…"


def send_error(exc: tg_error.TelegramError) -> SendError:
    """Map PTB's exceptions onto retryable / permanent send errors."""
    text = str(exc)
    if isinstance(exc, tg_error.RetryAfter):
        ra = exc.retry_after
        seconds = ra.total_seconds() if isinstance(ra, timedelta) else float(ra)
        return SendError("throttled", retryable=True, retry_after=seconds, detail=text)
    if isinstance(exc, tg_error.TimedOut):
        return SendError("timeout", retryable=True, detail=text)
    if isinstance(exc, tg_error.Forbidden):
        return SendError("blocked", retryable=False, detail=text)
    if isinstance(exc, tg_error.InvalidToken):
        # Our configuration, not the recipient: retry later, never mark anyone unreachable.
        return SendError("auth", retryable=True, retry_after=60, detail="invalid token")
    if isinstance(exc, tg_error.BadRequest):
        lowered = text.lower()
        if "chat not found" in lowered or "user not found" in lowered:
            return SendError("chat_not_found", retryable=False, detail=text)
        if "message is not modified" in lowered:
            return SendError("not_modified", retryable=False, detail=text)
        return SendError("bad_request", retryable=False, detail=text)
    if isinstance(exc, tg_error.NetworkError):
        return SendError("server", retryable=True, detail=text)
    return SendError("unknown", retryable=True, detail=text)


def normalise(update: Update, raw: dict | None = None, me: str = "") -> InboundEvent | None:
    """One Telegram update as our channel-neutral event (None for kinds we do not handle);
    ``raw``, the update as received, is rebuilt from ``update`` when not given. ``me`` is our
    bot's username: a ``/command@name`` naming any other bot is marked ``elsewhere``."""
    uid = str(update.update_id)
    raw = update.to_dict() if raw is None else raw
    if update.callback_query is not None:
        q = update.callback_query
        chat = q.message.chat.id if q.message is not None else q.from_user.id
        return InboundEvent(
            channel="telegram",
            external_id=uid,
            sender=str(chat),
            kind=EventKind.BUTTON,
            data=q.data or "",
            callback_id=q.id,
            message_id=str(q.message.message_id) if q.message is not None else "",
            sender_name=q.from_user.full_name,
            user=str(q.from_user.id),  # the presser, who need not be the person the message was for
            chat_type=q.message.chat.type if q.message is not None else "",
            raw=raw,
        )
    if update.poll_answer is not None:
        a = update.poll_answer
        user = a.user.id if a.user is not None else 0
        return InboundEvent(
            channel="telegram",
            external_id=uid,
            sender=str(user),
            kind=EventKind.POLL_ANSWER,
            poll_id=a.poll_id,
            user=str(user),
            option_ids=tuple(a.option_ids),
            raw=raw,
        )
    if update.my_chat_member is not None:
        m = update.my_chat_member
        status = m.new_chat_member.status
        return InboundEvent(
            channel="telegram",
            external_id=uid,
            sender=str(m.chat.id),
            kind=EventKind.MEMBERSHIP,
            status=str(getattr(status, "value", status)),
            sender_name=m.from_user.full_name if m.from_user else "",
            raw=raw,
        )
    msg = update.message or update.edited_message
    if msg is None or msg.chat is None:
        return None
    edited = update.edited_message is not None
    common = dict(
        channel="telegram",
        external_id=uid,
        sender=str(msg.chat.id),
        message_id=str(msg.message_id),
        sender_name=msg.from_user.full_name if msg.from_user else "",
        edited=edited,
        user=str(msg.from_user.id) if msg.from_user else "",
        chat_type=msg.chat.type,
        raw=raw,
    )
    if msg.location is not None:
        return InboundEvent(
            kind=EventKind.LOCATION, latitude=msg.location.latitude, longitude=msg.location.longitude, **common
        )
    if msg.photo:
        largest = max(msg.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        return InboundEvent(kind=EventKind.PHOTO, file_id=largest.file_id, text=msg.caption or "", **common)
    text = msg.text or ""
    if text.startswith("/") and not edited:
        head, _, arg = text.partition(" ")
        name, _, addressee = head[1:].partition("@")
        addressee = addressee.lower()
        return InboundEvent(
            kind=EventKind.COMMAND,
            command=name.lower(),
            argument=arg.strip(),
            text=text,
            addressee=addressee,
            elsewhere=bool(addressee) and addressee != me.lower(),
            **common,
        )
    if text:
        return InboundEvent(kind=EventKind.TEXT, text=text, **common)
    return None
