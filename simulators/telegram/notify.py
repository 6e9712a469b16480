"""A wake-up call for coroutines waiting on simulator state (new updates, new messages)."""

from __future__ import annotations

import asyncio


class Notifier:
    """``await wait(timeout)`` returns when :meth:`notify` is called or the time is up.

    Unlike an :class:`asyncio.Event` there is nothing to clear, so a notification can never be
    lost between a check and a wait: callers re-check their condition after every wake-up."""

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future] = []

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)

    async def wait(self, timeout: float | None) -> None:
        if timeout is not None and timeout <= 0:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await asyncio.wait({future}, timeout=timeout)
        finally:
            if future in self._waiters:
                self._waiters.remove(future)
            if not future.done():
                future.cancel()
