"""Errors a test orders in advance: "the next N calls of this method (or to this chat) fail so".

Kinds: ``blocked`` (403), ``chat_not_found`` (400), ``flood`` (429 with ``retry_after``),
``server_error`` (500), ``bad_gateway`` (502, nginx's HTML page as on the real service) and
``timeout`` (the reply is held for ``seconds``, longer than the client waits; with
``deliver=True`` the call is then carried out anyway — the message reaches the user although the
client saw a timeout, the case a duplicate-send guard exists for).
"""

from __future__ import annotations

from dataclasses import dataclass

from simulators.telegram import errors

KINDS = ("blocked", "chat_not_found", "flood", "server_error", "bad_gateway", "timeout")


@dataclass
class Fault:
    kind: str
    method: str | None = None  # any method when None; compared case-insensitively
    chat_id: int | None = None  # any chat when None
    times: int = 1
    retry_after: int = 5
    seconds: float = 30.0
    deliver: bool = False
    hits: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {', '.join(KINDS)}")
        if self.times < 1:
            raise ValueError("times must be at least 1")

    @property
    def remaining(self) -> int:
        return self.times - self.hits

    def matches(self, method: str, chat_id: object) -> bool:
        if self.remaining <= 0:
            return False
        if self.method is not None and self.method.lower() != method.lower():
            return False
        return self.chat_id is None or str(self.chat_id) == str(chat_id)

    def error(self) -> errors.ApiError | None:
        """The error to answer with; None for a timeout that is then carried out."""
        if self.kind == "blocked":
            return errors.blocked()
        if self.kind == "chat_not_found":
            return errors.chat_not_found()
        if self.kind == "flood":
            return errors.too_many_requests(self.retry_after)
        if self.kind == "server_error":
            return errors.internal_error()
        if self.kind == "bad_gateway":
            return errors.bad_gateway()
        return None if self.deliver else errors.bad_gateway()

    def as_json(self) -> dict:
        return {
            "kind": self.kind,
            "method": self.method,
            "chat_id": self.chat_id,
            "times": self.times,
            "hits": self.hits,
            "retry_after": self.retry_after,
            "seconds": self.seconds,
            "deliver": self.deliver,
        }


class FaultBook:
    """Pending faults, first added first used."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def take(self, method: str, chat_id: object) -> Fault | None:
        """The first fault that matches this call, counted as used."""
        for fault in self.faults:
            if fault.matches(method, chat_id):
                fault.hits += 1
                return fault
        return None

    def clear(self) -> None:
        self.faults.clear()

    def pending(self) -> list[Fault]:
        return [f for f in self.faults if f.remaining > 0]
