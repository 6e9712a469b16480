"""Redaction for records released on request: phone numbers out of every text, and a notice's
code (the firm's key to its notice) shortened. Pure functions, standard library only."""

from __future__ import annotations

import re

#: A Chinese mobile (optionally +86 / 86 / 0086, with spaces or dashes between the groups), a
#: landline with its area code, or any E.164 number.
PHONE = re.compile(
    r"(?<![0-9])(?:(?:\+|00)?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}(?![0-9])"
    r"|(?<![0-9])0[1-9][0-9]{1,2}-?[0-9]{7,8}(?![0-9])"
    r"|\+[1-9][0-9]{7,14}(?![0-9])"
)
MASK = "[电话已隐去]"


def redact(text: str) -> str:
    """``text`` with every phone number replaced by :data:`MASK`."""
    return PHONE.sub(MASK, text) if text else text


def redact_code(code: str) -> str:
    """A notice code with all but its last two characters hidden."""
    return "*" * max(len(code) - 2, 0) + code[-2:]
