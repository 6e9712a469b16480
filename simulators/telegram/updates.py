"""The bot's update queue and its two ways out: getUpdates (long polling) and a webhook.

As on the real server an update stays queued until it is confirmed — by a getUpdates call with a
higher ``offset``, or by a 2xx answer from the webhook — so an update whose delivery failed or
timed out comes again (at least once, never exactly once). ``allowed_updates`` filters updates
when they are created, not the ones already queued. While a webhook is set getUpdates answers 409;
a second getUpdates call ends the one still waiting with 409 ("terminated by other getUpdates
request").

Webhook delivery is one update at a time, in order, with the ``X-Telegram-Bot-Api-Secret-Token``
header when a secret was set. A failed POST (non-2xx, refused connection, no answer within
``webhook_timeout``) is retried after a delay that doubles from ``retry_base`` up to
``retry_max``; getWebhookInfo reports ``pending_update_count``, ``last_error_date`` and
``last_error_message`` in the real server's wording.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from simulators.telegram import errors
from simulators.telegram.errors import Described, bad_request
from simulators.telegram.notify import Notifier
from simulators.telegram.spec import BotApiSpec

log = logging.getLogger("inspectbot.simulators.telegram")

NOT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
MAX_POLL_TIMEOUT = 50


class UpdateError(ValueError):
    """An update the simulator was asked to create does not fit the Update type."""


class UpdateQueue:
    """Updates in creation order; ``pending`` holds the ones not yet confirmed."""

    def __init__(self, spec: BotApiSpec, first_update_id: int = 700_000_001) -> None:
        self.spec = spec
        self.kinds = tuple(n for n in spec.types["Update"].fields if n != "update_id")
        self.default_kinds = frozenset(self.kinds) - NOT_BY_DEFAULT
        self.allowed = self.default_kinds
        self.pending: list[dict] = []
        self.log: list[dict] = []
        self.next_id = first_update_id
        self.changed = Notifier()

    def push(self, kind: str, payload: dict) -> dict:
        """Create an update; queue it when its kind is allowed. Checked against the spec."""
        update = {"update_id": self.next_id, kind: payload}
        problem = self.spec.problem("Update", update, where="update")
        if kind not in self.kinds or problem:
            raise UpdateError(problem or f"unknown update kind {kind!r}")
        self.next_id += 1
        self.log.append(update)
        if kind in self.allowed:
            self.pending.append(update)
            self.changed.notify()
        return update

    def set_allowed(self, kinds: list[str]) -> None:
        self.allowed = frozenset(kinds) & frozenset(self.kinds) if kinds else self.default_kinds

    def confirm(self, offset: int) -> None:
        """getUpdates ``offset``: forget updates below it; a negative one keeps the last -offset."""
        if offset > 0:
            self.pending = [u for u in self.pending if u["update_id"] >= offset]
        elif offset < 0:
            self.pending = self.pending[offset:]

    def drop_pending(self) -> None:
        self.pending.clear()


@dataclass
class Webhook:
    url: str = ""
    secret_token: str | None = field(default=None, repr=False)
    max_connections: int = 40
    ip_address: str | None = None
    has_custom_certificate: bool = False
    allowed_updates: list[str] | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None
    delivered: int = 0
    errors: list[str] = field(default_factory=list)  # every failed attempt, oldest first (last 100)


class UpdateDelivery:
    """getUpdates, setWebhook, deleteWebhook, getWebhookInfo and the webhook sender."""

    def __init__(
        self,
        queue: UpdateQueue,
        now: Callable[[], int],
        *,
        webhook_timeout: float = 10.0,
        retry_base: float = 0.05,
        retry_max: float = 2.0,
    ) -> None:
        self.queue = queue
        self.now = now
        self.webhook_timeout = webhook_timeout
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.webhook = Webhook()
        self.closing = False
        self.waiting_polls = 0  # getUpdates calls now waiting for updates
        self._poll_generation = 0
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def handlers(self) -> dict[str, Callable[[dict], Any]]:
        return {
            "getUpdates": self.get_updates,
            "setWebhook": self.set_webhook,
            "deleteWebhook": self.delete_webhook,
            "getWebhookInfo": self.get_webhook_info,
        }

    # -- long polling ---------------------------------------------------------------------

    async def get_updates(self, p: dict) -> list[dict]:
        if self.webhook.url:
            raise errors.conflict(errors.WEBHOOK_ACTIVE)
        if "allowed_updates" in p:
            self.queue.set_allowed(p["allowed_updates"])
        if "offset" in p:
            self.queue.confirm(p["offset"])
        limit = min(100, max(1, p.get("limit", 100)))
        timeout = min(MAX_POLL_TIMEOUT, max(0, p.get("timeout", 0)))
        self._poll_generation += 1
        mine = self._poll_generation
        self.queue.changed.notify()  # an older poll still waiting now ends with 409
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if mine != self._poll_generation:
                raise errors.conflict(errors.TERMINATED)
            if self.webhook.url:
                raise errors.conflict(errors.WEBHOOK_ACTIVE)
            if self.queue.pending or self.closing:
                return self.queue.pending[:limit]
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return []
            self.waiting_polls += 1
            try:
                await self.queue.changed.wait(remaining)
            finally:
                self.waiting_polls -= 1

    # -- webhook --------------------------------------------------------------------------

    def set_webhook(self, p: dict) -> Described:
        url = p["url"]
        if not url:
            return self.delete_webhook(p)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = p.get("secret_token")
        if secret is not None and not _SECRET.fullmatch(secret):
            raise bad_request("secret token contains unallowed characters")
        settings = {
            "url": url,
            "secret_token": secret,
            "max_connections": min(100, max(1, p.get("max_connections", 40))),
            "ip_address": p.get("ip_address"),
            "has_custom_certificate": "certificate" in p,
            "allowed_updates": p.get("allowed_updates", self.webhook.allowed_updates),
        }
        same = all(getattr(self.webhook, k) == v for k, v in settings.items())
        if p.get("drop_pending_updates"):
            self.queue.drop_pending()
        if "allowed_updates" in p:
            self.queue.set_allowed(p["allowed_updates"])
        if same:
            return Described(True, "Webhook is already set")
        self.webhook = Webhook(**settings)
        self._restart_sender()
        self.queue.changed.notify()  # a waiting getUpdates now ends with 409
        return Described(True, "Webhook was set")

    def delete_webhook(self, p: dict) -> Described:
        if p.get("drop_pending_updates"):
            self.queue.drop_pending()
        if not self.webhook.url:
            return Described(True, "Webhook is already deleted")
        self.webhook = Webhook(allowed_updates=self.webhook.allowed_updates)
        self._stop_sender()
        return Described(True, "Webhook was deleted")

    def get_webhook_info(self, p: dict) -> dict:
        hook = self.webhook
        info: dict[str, Any] = {
            "url": hook.url,
            "has_custom_certificate": hook.has_custom_certificate,
            "pending_update_count": len(self.queue.pending),
        }
        if hook.url:
            info["max_connections"] = hook.max_connections
            if hook.ip_address:
                info["ip_address"] = hook.ip_address
            if hook.allowed_updates is not None:
                info["allowed_updates"] = hook.allowed_updates
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message
        return info

    def _restart_sender(self) -> None:
        self._stop_sender()
        self._task = asyncio.get_running_loop().create_task(self._send_loop(self.webhook))

    def _stop_sender(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def close(self) -> None:
        """Stop sending and wake every waiting poll (it answers with what it has)."""
        self.closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.queue.changed.notify()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _send_loop(self, hook: Webhook) -> None:
        """POST pending updates to ``hook`` one at a time, in order, until the webhook changes."""
        delay = self.retry_base
        while self.webhook is hook and not self.closing:
            if not self.queue.pending:
                await self.queue.changed.wait(None)
                continue
            update = self.queue.pending[0]
            error = await self._post(hook, update)
            if error is None:
                hook.delivered += 1
                if self.queue.pending and self.queue.pending[0] is update:
                    self.queue.pending.pop(0)
                delay = self.retry_base
                continue
            hook.last_error_date = self.now()
            hook.last_error_message = error
            hook.errors = [*hook.errors[-99:], error]
            log.info("webhook delivery of update %s failed: %s", update["update_id"], error)
            await asyncio.sleep(delay)
            delay = min(self.retry_max, delay * 2)

    async def _post(self, hook: Webhook, update: dict) -> str | None:
        """One POST; None on a 2xx answer, else the real server's description of the failure."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {"X-Telegram-Bot-Api-Secret-Token": hook.secret_token} if hook.secret_token else {}
        try:
            async with self._session.post(
                hook.url, json=update, headers=headers, timeout=aiohttp.ClientTimeout(total=self.webhook_timeout)
            ) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return None
                return f"Wrong response from the webhook: {response.status} {response.reason}"
        except TimeoutError:
            return "Read timeout expired"
        except aiohttp.ClientConnectorError:
            return "Connection refused"
        except aiohttp.ClientError as exc:
            return f"Connection error: {type(exc).__name__}"
