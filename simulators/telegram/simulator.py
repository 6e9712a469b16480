"""The Telegram Bot API simulator: one object a test or the demo starts, drives and reads.

Every Bot API call goes through :meth:`TelegramSimulator.call`, in the real server's order:
token (malformed → 404, unknown → 401), method (unknown → 404), parameters checked against the
Bot API 10.0 spec (→ 400), then injected faults, flood limits (→ 429), and the method itself.
Each result is checked against the spec's return type before it leaves (a mismatch is our bug:
it is answered 500 and kept in :attr:`self_check_failures`).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.clock import SYSTEM, Clock
from simulators.telegram import errors
from simulators.telegram.botapi import BotApi
from simulators.telegram.errors import ApiError, Described
from simulators.telegram.faults import Fault, FaultBook
from simulators.telegram.flood import FloodControl, FloodLimits
from simulators.telegram.people import People
from simulators.telegram.server import SimulatorServer
from simulators.telegram.spec import BotApiSpec, Upload
from simulators.telegram.updates import UpdateDelivery, UpdateQueue
from simulators.telegram.world import ChatMessage, SimulatorError, VirtualUser, World

log = logging.getLogger("inspectbot.simulators.telegram")

DEFAULT_TOKEN = "7000000001:AAHsimulatedTokenForLocalUseOnly0001"
TOKEN_FORMAT = re.compile(r"\d{1,20}:[A-Za-z0-9_-]{1,100}")


def counts_as_message(method: str) -> bool:
    """Calls that put a message in a chat or change one: these count against flood limits."""
    if method == "sendChatAction":
        return False
    return method.startswith(("send", "editMessage", "copyMessage", "forwardMessage")) or method == "stopPoll"


@dataclass(frozen=True)
class ApiCall:
    """One call as the simulator saw it (files shown by name), for tests to inspect."""

    method: str
    params: dict
    status: int
    description: str = ""


class TelegramSimulator:
    """A loopback Bot API server with virtual users. See docs/simulators.md.

    ``async with TelegramSimulator() as sim:`` starts it on a free port; point
    python-telegram-bot at ``sim.base_url`` / ``sim.base_file_url`` with ``sim.token``."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        bot_name: str = "Inspectbot (simulated)",
        bot_username: str = "inspectbot_sim_bot",
        flood: FloodLimits | None = None,
        strict: bool = True,
        clock: Clock = SYSTEM,
        webhook_timeout: float = 10.0,
        webhook_retry_base: float = 0.05,
        webhook_retry_max: float = 2.0,
        spec: BotApiSpec | None = None,
        flood_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not TOKEN_FORMAT.fullmatch(token):
            raise ValueError("token must look like a Bot API token: <bot id>:<secret>")
        self.token = token
        self.strict = strict
        self.clock = clock
        self.spec = spec or BotApiSpec.load()
        self.queue = UpdateQueue(self.spec)
        self.world = World(int(token.split(":")[0]), bot_name, bot_username, self.queue, self._now)
        self.bot_api = BotApi(self.world)
        self.people = People(self.world)
        self.delivery = UpdateDelivery(
            self.queue,
            self._now,
            webhook_timeout=webhook_timeout,
            retry_base=webhook_retry_base,
            retry_max=webhook_retry_max,
        )
        self.flood = FloodControl(flood or FloodLimits(), flood_clock)
        self.faults = FaultBook()
        self.calls: deque[ApiCall] = deque(maxlen=20_000)
        self.self_check_failures: list[str] = []
        self._handlers = {**self.bot_api.handlers, **self.delivery.handlers}
        self._closing = asyncio.Event()
        self._early_votes: dict[int, tuple[list[int], float]] = {}  # chat id -> (option ids, wait)
        self._server = None  # set by start()
        self.url = ""

    def _now(self) -> int:
        return int(self.clock.now().timestamp())

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> TelegramSimulator:
        """Serve HTTP on ``host:port`` (0 = a free port); ``self.url`` says where."""
        self._server = SimulatorServer(self)
        self.url = await self._server.start(host, port)
        return self

    async def stop(self) -> None:
        self._closing.set()
        await self.delivery.close()
        if self._server is not None:
            await self._server.stop()
            self._server = None

    async def __aenter__(self) -> TelegramSimulator:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder().base_url(...)`` / ``Bot(base_url=...)``: the token is appended."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.url}/file/bot"

    # -- the Bot API ----------------------------------------------------------------------

    async def call(
        self, token: str, method_name: str, raw: dict[str, str], files: dict[str, Upload]
    ) -> tuple[int, Any]:
        """Answer one Bot API request: (HTTP status, JSON body or raw text)."""
        method = method_name
        params: dict = {}
        try:
            if not TOKEN_FORMAT.fullmatch(token):
                raise errors.not_found()
            if token != self.token:
                raise errors.unauthorized()
            spec = self.spec.method(method_name)
            if spec is None:
                raise errors.not_found()
            method = spec.name
            params = self.spec.decode_call(spec, raw, files, strict=self.strict)
            await self._apply_fault(method, params)
            if counts_as_message(method):
                self._admit(params.get("chat_id"))
            result = await self._run(method, params)
            self._check_result(spec.returns, method, result.result)
            if method == "sendPoll":
                await self._vote_before_reply(result.result)
        except ApiError as exc:
            self._record(method, params, exc.code, exc.description)
            return exc.code, exc.raw_body if exc.raw_body is not None else exc.envelope()
        self._record(method, params, 200)
        body = {"ok": True, "result": result.result}
        if result.description:
            body["description"] = result.description
        return 200, body

    async def _run(self, method: str, params: dict) -> Described:
        handler = self._handlers.get(method)
        if handler is None:
            raise errors.bad_request(f"method {method} is valid but not simulated")
        result = handler(params)
        if asyncio.iscoroutine(result):
            result = await result
        return result if isinstance(result, Described) else Described(result, "")

    async def _apply_fault(self, method: str, params: dict) -> None:
        fault = self.faults.take(method, params.get("chat_id"))
        if fault is None:
            return
        log.info("injected fault %s on %s", fault.kind, method)
        if fault.kind == "timeout":
            try:
                await asyncio.wait_for(self._closing.wait(), fault.seconds)
            except TimeoutError:
                pass
        error = fault.error()
        if error is not None:
            raise error

    def _admit(self, chat_id: object) -> None:
        wait = self.flood.admit(chat_id if isinstance(chat_id, int) else None)
        if wait > 0:
            raise errors.too_many_requests(self.flood.retry_after(wait))

    def _check_result(self, returns: tuple[str, ...], method: str, result: Any) -> None:
        problem = self.spec.union_problem(returns, result, where=f"result of {method}")
        if problem:
            self.self_check_failures.append(problem)
            log.error("simulator produced a result outside the spec: %s", problem)
            raise errors.internal_error()

    def _record(self, method: str, params: dict, status: int, description: str = "") -> None:
        shown = {k: (f"<file {v.filename}>" if isinstance(v, Upload) else v) for k, v in params.items()}
        self.calls.append(ApiCall(method, shown, status, description))

    def calls_of(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method.lower() == method.lower()]

    def download(self, file_path: str) -> tuple[bytes, str] | None:
        record = self.world.files_by_path.get(file_path)
        return (record.data, record.mime_type) if record else None

    # -- virtual users --------------------------------------------------------------------

    def create_user(self, first_name: str = "Test", **kw) -> VirtualUser:
        return self.people.create(first_name, **kw)

    def user(self, user_id: int) -> VirtualUser:
        return self.people.user(user_id)

    @property
    def users(self) -> list[VirtualUser]:
        return list(self.world.users.values())

    def create_group(self, title: str, members: list[VirtualUser | int], *, supergroup: bool = False) -> int:
        """A group (or supergroup) of ``members`` with the bot in it; returns its (negative) chat id."""
        return self.people.create_group(title, members, supergroup=supergroup).id

    def send_text(self, user: VirtualUser | int, text: str, *, chat: int | None = None) -> dict:
        return self.people.send_text(user, text, chat=chat)

    def send_command(
        self, user: VirtualUser | int, command: str, argument: str = "", *, chat: int | None = None
    ) -> dict:
        return self.people.send_command(user, command, argument, chat=chat)

    def press_button(
        self,
        user: VirtualUser | int,
        message_id: int,
        *,
        data: str | None = None,
        text: str | None = None,
        chat: int | None = None,
    ) -> dict:
        return self.people.press_button(user, message_id, data=data, text=text, chat=chat)

    def share_location(
        self, user: VirtualUser | int, latitude: float, longitude: float, horizontal_accuracy: float | None = None
    ) -> dict:
        return self.people.share_location(user, latitude, longitude, horizontal_accuracy)

    def send_photo(self, user: VirtualUser | int, image: bytes | None = None, **kw) -> dict:
        return self.people.send_photo(user, image, **kw)

    def answer_poll(self, user: VirtualUser | int, message_id: int, option_ids: list[int]) -> list[dict]:
        return self.people.answer_poll(user, message_id, option_ids)

    def vote_before_reply(self, user: VirtualUser | int, option_ids: list[int], *, wait: float = 5.0) -> None:
        """From now on every poll the bot sends to this user's chat is voted on at once, and the
        sendPoll answer is held until the bot has taken the vote's ``poll_answer`` (a getUpdates
        with a higher offset, or the webhook's 2xx), at most ``wait`` seconds: the vote reaches
        the bot before the poll's id does. :meth:`vote_normally` ends it."""
        self._early_votes[self.world.chat_of(user).id] = (list(option_ids), wait)

    def vote_normally(self, user: VirtualUser | int) -> None:
        self._early_votes.pop(self.world.chat_of(user).id, None)

    async def _vote_before_reply(self, message: dict) -> None:
        plan = self._early_votes.get(message["chat"]["id"])
        if plan is None:
            return
        options, wait = plan
        updates = self.people.answer_poll(message["chat"]["id"], message["message_id"], options)
        votes = {u["update_id"] for u in updates if "poll_answer" in u}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while any(u["update_id"] in votes for u in self.queue.pending) and loop.time() < deadline:
            await asyncio.sleep(0.01)  # the bot takes it (long polling / webhook), then sendPoll answers

    def edit_message(self, user: VirtualUser | int, message_id: int, text: str) -> dict:
        return self.people.edit_message(user, message_id, text)

    def block_bot(self, user: VirtualUser | int) -> dict | None:
        return self.people.block_bot(user)

    def unblock_bot(self, user: VirtualUser | int) -> dict | None:
        return self.people.unblock_bot(user)

    def push_update(self, kind: str, payload: dict) -> dict:
        """Any other update (checked against the spec), for cases the actions above do not cover."""
        return self.queue.push(kind, payload)

    # -- what users received --------------------------------------------------------------

    def messages(self, user: VirtualUser | int, *, include_deleted: bool = False) -> list[ChatMessage]:
        """The bot's messages in this user's chat (or in the group whose chat id ``user`` is), as
        they look now (edits applied)."""
        chat = self.world.chat_of(user)
        return [
            ChatMessage(i, copy.deepcopy(chat.messages[i].data), chat.messages[i].deleted)
            for i in chat.bot_message_ids
            if include_deleted or not chat.messages[i].deleted
        ]

    def message(self, user: VirtualUser | int, message_id: int) -> ChatMessage:
        stored = self.world.chat_of(user).messages.get(message_id)
        if stored is None:
            raise SimulatorError(f"no message {message_id}")
        return ChatMessage(message_id, copy.deepcopy(stored.data), stored.deleted)

    async def wait_for_message(self, user: VirtualUser | int, timeout: float = 5.0) -> ChatMessage:
        """The oldest bot message in this chat not yet returned by this method; waits for one.

        Raises :class:`asyncio.TimeoutError` when none comes within ``timeout`` seconds."""
        chat = self.world.chat_of(user)
        deadline = asyncio.get_running_loop().time() + timeout
        while chat.read_cursor >= len(chat.bot_message_ids):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"no new message for user {chat.user.id} within {timeout} s")
            await chat.changed.wait(remaining)
        message_id = chat.bot_message_ids[chat.read_cursor]
        chat.read_cursor += 1
        return self.message(user, message_id)

    def callback_answers(self, user: VirtualUser | int) -> list[dict]:
        """answerCallbackQuery replies the user saw (toast or alert texts), oldest first."""
        return copy.deepcopy(self.world.chat_of(user).callback_answers)

    def reply_keyboard(self, user: VirtualUser | int) -> dict | None:
        """The custom reply keyboard the bot last gave this user, if any."""
        return copy.deepcopy(self.world.chat_of(user).reply_keyboard)

    # -- faults, flood, webhook -----------------------------------------------------------

    def inject(
        self,
        kind: str,
        *,
        method: str | None = None,
        chat_id: int | None = None,
        times: int = 1,
        retry_after: int = 5,
        seconds: float = 30.0,
        deliver: bool = False,
    ) -> Fault:
        """Make the next ``times`` matching calls fail; see :mod:`faults` for the kinds."""
        return self.faults.add(Fault(kind, method, chat_id, times, retry_after, seconds, deliver))

    def clear_faults(self) -> None:
        self.faults.clear()

    def set_flood_limits(self, limits: FloodLimits) -> None:
        self.flood.configure(limits)

    def flood_stats(self) -> dict:
        return self.flood.stats.summary()

    @property
    def webhook_url(self) -> str:
        return self.delivery.webhook.url

    @property
    def pending_update_count(self) -> int:
        return len(self.queue.pending)

    @property
    def updates(self) -> list[dict]:
        """Every update created so far (delivered or not), oldest first."""
        return copy.deepcopy(self.queue.log)
