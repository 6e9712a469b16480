"""Typed callback data for inline buttons: ``prefix:action:id[:arg]``, checked against
Telegram's 64-byte limit when packed and strictly when parsed (a pressed button's data is
user-controlled input: anything malformed parses to None, never to a guess)."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_BYTES = 64
_PART = re.compile(r"^[A-Za-z0-9_\-]{1,24}$")


@dataclass(frozen=True)
class Callback:
    prefix: str  # the feature: "asg" (assignment), "rcs" (recusal), "pg" (page), …
    action: str  # "accept", "recuse", "type", …
    id: int  # the row it acts on; the handler re-checks that the presser owns it
    arg: str = ""

    def pack(self) -> str:
        parts = [self.prefix, self.action, str(self.id)] + ([self.arg] if self.arg else [])
        for p in (self.prefix, self.action) + ((self.arg,) if self.arg else ()):
            if not _PART.match(p):
                raise ValueError(f"callback part {p!r} must be 1-24 of [A-Za-z0-9_-]")
        data = ":".join(parts)
        if len(data.encode()) > MAX_BYTES:
            raise ValueError(f"callback data {data!r} exceeds Telegram's {MAX_BYTES} bytes")
        return data

    @classmethod
    def parse(cls, data: str) -> "Callback | None":
        if not data or len(data.encode()) > MAX_BYTES:
            return None
        parts = data.split(":")
        if len(parts) not in (3, 4) or not all(_PART.match(p) for p in parts[:2]):
            return None
        if not parts[2].isascii() or not parts[2].isdigit() or len(parts[2]) > 18:
            return None
        arg = parts[3] if len(parts) == 4 else ""
        if len(parts) == 4 and not _PART.match(arg):
            return None
        return cls(parts[0], parts[1], int(parts[2]), arg)
