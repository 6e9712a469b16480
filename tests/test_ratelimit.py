"""The send limiter: what it guarantees at the receiver, and when it tells the caller to postpone."""

from __future__ import annotations

import asyncio
import random
import time

from core.ratelimit import RateLimiter


class Clock:
    """A clock that moves only when told to (the limiter never sleeps when nothing is due)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_arrivals_stay_within_the_limits_whatever_the_latency():
    """Each simulated request reaches the 'server' at a random moment between its start and its
    answer; no window holds more than ``rate`` arrivals, and one address never gets two closer
    than ``per_address`` — by construction, not by luck of timing."""
    rate, window, gap = 5, 0.05, 0.05
    limiter = RateLimiter(rate, gap, window=window)
    rng = random.Random(7)
    arrivals: list[tuple[float, str]] = []

    async def send(address: str) -> None:
        slot = await limiter.acquire(address, max_wait=10.0)
        assert slot is not None
        try:
            await asyncio.sleep(rng.uniform(0, 0.01))  # the request on its way
            arrivals.append((time.monotonic(), address))
            await asyncio.sleep(rng.uniform(0, 0.01))  # the answer on its way back
        finally:
            limiter.release(slot)

    addresses = [f"chat{i % 4}" for i in range(40)]
    rng.shuffle(addresses)
    await asyncio.gather(*(send(a) for a in addresses))

    times = sorted(t for t, _ in arrivals)
    assert len(times) == 40
    assert all(times[k + rate] - times[k] >= window for k in range(len(times) - rate))
    for chat in set(addresses):
        mine = sorted(t for t, a in arrivals if a == chat)
        assert all(b - a >= gap for a, b in zip(mine, mine[1:]))


async def test_a_busy_recipient_is_refused_not_waited_for():
    clock = Clock()
    limiter = RateLimiter(None, 1.0, now=clock)
    first = await limiter.acquire("42", max_wait=1.0)
    assert first is not None
    # the first message to chat 42 has no answer yet: a second would wait over a second
    assert await limiter.acquire("42", max_wait=1.0) is None
    assert limiter.wait_hint("42") == 1.0
    assert await limiter.acquire("43", max_wait=1.0) is not None  # other chats are free
    limiter.release(first)
    clock.t += 1.0
    assert limiter.wait_hint("42") == 0.0
    assert await limiter.acquire("42", max_wait=0.0) is not None


async def test_a_pause_after_429_holds_every_address():
    clock = Clock()
    limiter = RateLimiter(None, None, now=clock)
    limiter.pause(7)
    assert await limiter.acquire("1", max_wait=1.0) is None
    assert limiter.wait_hint("2") == 7
    clock.t += 7
    assert await limiter.acquire("1", max_wait=0.0) is not None


async def test_unlimited_never_waits():
    clock = Clock()
    limiter = RateLimiter(None, None, now=clock)
    slots = [await limiter.acquire("same", max_wait=0.0) for _ in range(100)]
    assert all(s is not None for s in slots)
