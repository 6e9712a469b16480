"""Pacing of sends: an overall rate per channel and a minimum interval per recipient.

python-telegram-bot's own limiter does not pace private chats, so the dispatcher does. Telegram
counts a message when it *arrives*, and a request spends a variable time between our start and
their server (a busy event loop, the network), so pacing start times alone can still put 31
arrivals into one second. This limiter therefore counts from the *answers*:

- **overall**: a send starts only when the send ``rate`` places before it was answered at least
  ``window`` seconds ago. The server sees that earlier message before its answer and this one
  after our start, so any ``rate + 1`` consecutive messages arrive more than ``window`` apart:
  never more than ``rate`` in any window, whatever the latency. Starts are also spaced
  ``window / rate`` apart, so the messages are spread over the second rather than bunched;
- **per address**: a send starts only ``per_address`` seconds after the previous send to the
  same address was answered, so two arrive at least that far apart.

The price is a little rate: ``rate / (window + latency)`` at saturation (29.9/s for 30/s at 5 ms).
A slot is reserved in order (the wait is known in advance, so a caller can decide to postpone a
busy recipient rather than hold a worker), and must be given back with :meth:`release` once the
send has an answer or failed. Real (monotonic) time: pacing is about the wire, not the business
clock.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

STALE = 60.0  # a slot not released this long after its start counts as answered (a caller's bug)


class Slot:
    """One reserved send: starts at ``at``; ``answered`` is set by :meth:`RateLimiter.release`."""

    __slots__ = ("at", "answered", "done")

    def __init__(self, at: float) -> None:
        self.at = at
        self.answered: float | None = None
        self.done = asyncio.Event()


class RateLimiter:
    def __init__(
        self,
        rate: float | None = 30.0,  # sends per ``window`` over the channel; None = unlimited
        per_address: float | None = 1.0,  # seconds between two sends to one address; None = no limit
        *,
        window: float = 1.0,
        now: Callable[[], float] = time.monotonic,  # tests may tie it to a fake clock
    ) -> None:
        self.rate = rate
        self.per_address = per_address
        self.window = window
        self.now = now
        self._recent: deque[Slot] | None = deque(maxlen=max(1, int(rate))) if rate else None
        # the same limits as plain numbers, for the arithmetic done only when they are set
        self._interval = per_address or 0.0
        self._spacing = window / rate if rate else 0.0
        self._next_start = 0.0
        self._last: dict[str, Slot] = {}
        self._paused_until = 0.0

    async def acquire(self, address: str, max_wait: float) -> Slot | None:
        """Wait for the next slot for ``address`` and return it (give it back with :meth:`release`).

        None, with nothing reserved, when the recipient (or a pause after a 429) is not free within
        ``max_wait`` seconds: the caller should postpone the message. The channel-wide limit is
        always waited for; it is bounded by the number of concurrent senders over ``rate``."""
        deadline = self.now() + max_wait
        while True:
            now = self.now()
            at = max(now, self._paused_until)
            prev = self._last.get(address) if self.per_address else None
            if prev is not None:
                if prev.answered is None:  # answered no earlier than now: free no earlier than now + interval
                    if now + self._interval >= deadline:
                        return None
                    if not await self._answered(prev, deadline - self._interval):
                        return None
                    continue
                at = max(at, prev.answered + self._interval)
            if at > deadline:
                return None
            if self._recent is not None:
                if len(self._recent) == self._recent.maxlen:
                    first = self._recent[0]
                    if first.answered is None:
                        await self._answered(first, first.at + STALE)
                        continue
                    at = max(at, first.answered + self.window)
                at = max(at, self._next_start)
            return await self._take(address, at)

    def release(self, slot: Slot) -> None:
        """The send has its answer (or failed): the limits now count from this moment."""
        if slot.answered is None:
            slot.answered = max(self.now(), slot.at)
            slot.done.set()

    def wait_hint(self, address: str) -> float:
        """Seconds until ``address`` could next be sent to (for postponing)."""
        now = self.now()
        at = max(now, self._paused_until)
        prev = self._last.get(address) if self.per_address else None
        if prev is not None:
            at = max(at, (prev.answered if prev.answered is not None else now) + self._interval)
        return at - now

    def pause(self, seconds: float) -> None:
        """The provider said 'too many requests': hold the whole channel back."""
        self._paused_until = max(self._paused_until, self.now() + seconds)

    async def _take(self, address: str, at: float) -> Slot:
        """Reserve the slot at ``at`` (no await before this: the checks above still hold), wait for it."""
        slot = Slot(at)
        if self._recent is not None:
            self._recent.append(slot)
            self._next_start = at + self._spacing
        if self.per_address:
            self._last[address] = slot
            if len(self._last) > 100_000:
                self._forget(at)
        wait = at - self.now()
        if wait > 0:
            try:
                await asyncio.sleep(wait)
            except BaseException:
                self.release(slot)
                raise
        return slot

    async def _answered(self, slot: Slot, until: float) -> bool:
        """Wait until ``slot`` is released or the clock reaches ``until``; True if it was released."""
        if slot.answered is None:
            try:
                await asyncio.wait_for(slot.done.wait(), max(until - self.now(), 0.0))
            except TimeoutError:
                if self.now() >= slot.at + STALE:
                    self.release(slot)
        return slot.answered is not None

    def _forget(self, now: float) -> None:
        """Drop addresses whose interval has passed (bounds memory on a city-wide fan-out)."""
        self._last = {a: s for a, s in self._last.items() if s.answered is None or s.answered + self._interval > now}
