"""Telegram's flood limits as token buckets, and what was measured against them.

Telegram documents "no more than one message per second in a single chat (short bursts are
allowed)" and "no more than 30 messages per second" overall; above that the Bot API answers 429
with ``retry_after``. The simulator enforces both with token buckets: overall ``global_rate``
per second with room for ``global_burst`` at once, per chat ``chat_rate`` per second with room
for ``chat_burst``. A message that would overdraw either bucket is refused (and costs nothing);
``retry_after`` is the whole number of seconds until both buckets can pay for it, at least 1.

Independently of the buckets, :class:`FloodStats` records every accepted message's time, so a
benchmark can show the largest number of messages seen in any one-second window, overall and
in a single chat.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FloodLimits:
    enabled: bool = True
    global_rate: float = 30.0
    global_burst: float = 30.0
    chat_rate: float = 1.0
    chat_burst: float = 3.0

    @classmethod
    def off(cls) -> FloodLimits:
        return cls(enabled=False)


class TokenBucket:
    """``rate`` tokens a second, holding at most ``capacity``; starts full."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for_one(self) -> float:
        """Seconds until one token is there (after :meth:`refill`)."""
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


@dataclass
class FloodStats:
    """Times of accepted messages and the count of refused ones."""

    accepted: int = 0
    refused: int = 0
    times: list[float] = field(default_factory=list)
    chat_times: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))

    def record(self, chat_id: int | None, now: float) -> None:
        self.accepted += 1
        self.times.append(now)
        if chat_id is not None:
            self.chat_times[chat_id].append(now)

    def max_per_second(self) -> int:
        """Most messages accepted in any window of one second, overall."""
        return _max_in_window(self.times, 1.0)

    def max_per_chat_second(self) -> int:
        """Most messages accepted in any window of one second in a single chat."""
        return max((_max_in_window(t, 1.0) for t in self.chat_times.values()), default=0)

    def summary(self) -> dict:
        return {
            "accepted": self.accepted,
            "refused_429": self.refused,
            "max_per_second": self.max_per_second(),
            "max_per_chat_second": self.max_per_chat_second(),
        }


def _max_in_window(times: list[float], width: float) -> int:
    """Largest number of sorted ``times`` inside a half-open window ``[t, t + width)``."""
    best = 0
    for i, t in enumerate(times):
        j = bisect_left(times, t - width + 1e-9, 0, i + 1)
        best = max(best, i - j + 1)
    return best


class FloodControl:
    """Decides whether one more message may go out now; counts what it let through."""

    def __init__(self, limits: FloodLimits, now: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.now = now
        self.stats = FloodStats()
        self._global: TokenBucket | None = None
        self._chats: dict[int, TokenBucket] = {}

    def configure(self, limits: FloodLimits) -> None:
        """New limits; buckets start full again."""
        self.limits = limits
        self._global = None
        self._chats.clear()

    def reset_stats(self) -> None:
        self.stats = FloodStats()

    def admit(self, chat_id: int | None) -> float:
        """0 when the message may go now (and it is counted); else seconds to wait."""
        now = self.now()
        if not self.limits.enabled:
            self.stats.record(chat_id, now)
            return 0.0
        buckets = [self._global_bucket(now)]
        if chat_id is not None:
            buckets.append(self._chat_bucket(chat_id, now))
        for bucket in buckets:
            bucket.refill(now)
        wait = max(b.wait_for_one() for b in buckets)
        if wait > 0:
            self.stats.refused += 1
            return wait
        for bucket in buckets:
            bucket.tokens -= 1
        self.stats.record(chat_id, now)
        return 0.0

    @staticmethod
    def retry_after(wait: float) -> int:
        return max(1, math.ceil(wait))

    def _global_bucket(self, now: float) -> TokenBucket:
        if self._global is None:
            self._global = TokenBucket(self.limits.global_rate, self.limits.global_burst, now)
        return self._global

    def _chat_bucket(self, chat_id: int, now: float) -> TokenBucket:
        bucket = self._chats.get(chat_id)
        if bucket is None:
            bucket = self._chats[chat_id] = TokenBucket(self.limits.chat_rate, self.limits.chat_burst, now)
        return bucket
