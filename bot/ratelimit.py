"""Pacing of sends: an overall rate per channel and a minimum interval per recipient.

python-telegram-bot's own limiter does not pace private chats, so the dispatcher does:
each send reserves the next free slot that respects both the channel-wide spacing
(1/rate seconds) and the per-address interval. Slots are spaced evenly, so no one-second
window ever holds more than ``rate`` sends — Telegram's flood control never has to say 429.
Real (monotonic) time: pacing is about the wire, not the business clock.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class RateLimiter:
    rate: float | None = 30.0  # sends per second over the channel; None = unlimited
    per_address: float | None = 1.0  # seconds between two sends to one address; None = no limit
    now: Callable[[], float] = time.monotonic  # tests may tie it to a fake clock
    _next_global: float = 0.0
    _next_address: dict[str, float] = field(default_factory=dict)
    _paused_until: float = 0.0

    def reserve(self, address: str, max_wait: float) -> float | None:
        """Reserve a slot; return the seconds to wait for it, or None (nothing reserved) when
        the slot is further away than ``max_wait`` — the caller should postpone the message."""
        now = self.now()
        at = max(now, self._paused_until)
        if self.rate:
            at = max(at, self._next_global)
        if self.per_address:
            at = max(at, self._next_address.get(address, 0.0))
        if at - now > max_wait:
            return None
        if self.rate:
            self._next_global = at + 1.0 / self.rate
        if self.per_address:
            self._next_address[address] = at + self.per_address
            if len(self._next_address) > 100_000:
                self._next_address = {a: t for a, t in self._next_address.items() if t > now}
        return at - now

    def wait_hint(self, address: str) -> float:
        """Seconds until ``address`` could next be sent to (for postponing)."""
        now = self.now()
        at = max(now, self._paused_until, self._next_address.get(address, 0.0) if self.per_address else 0.0)
        return at - now

    def pause(self, seconds: float) -> None:
        """The provider said 'too many requests': hold the whole channel back."""
        self._paused_until = max(self._paused_until, self.now() + seconds)

    async def acquire(self, address: str, max_wait: float) -> bool:
        wait = self.reserve(address, max_wait)
        if wait is None:
            return False
        if wait > 0:
            await asyncio.sleep(wait)
        return True
