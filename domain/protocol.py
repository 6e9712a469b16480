"""What the draw (``domain/draw.py``) and team formation (``domain/teams.py``) share: the published
inspector and unit lines, the team spec, the input errors, draw notes and the pair hash.

Pure: stdlib only. Both modules import this one, and neither imports the other's internals here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from hashlib import sha256
from typing import Any


@dataclass(frozen=True)
class InspectorLine:
    """One eligible inspector as published: key (certificate no.), unit key, sorted qualification codes."""

    key: str
    unit: str
    quals: tuple[str, ...]


@dataclass(frozen=True)
class UnitInfo:
    """Published with the draw so an auditor can re-derive teams: owning department code and
    jurisdiction (administrative-division code prefix, e.g. "3702" covers 370202…)."""

    department: str
    jurisdiction: str


@dataclass(frozen=True)
class TeamSpec:
    """Team size (>= 2) and composition. ``slots`` lists, per team seat, the department code the
    seat must come from (a joint plan has one seat per department); None = any department.

    ``required_quals``: qualification codes every member must hold (the union of what the plan's
    items require). ``slot_quals``: extra codes per seat (a joint plan's seat for department X
    needs the qualifications of X's items); seats past its end need nothing extra."""

    size: int
    slots: tuple[str | None, ...] = ()
    required_quals: tuple[str, ...] = ()
    slot_quals: tuple[tuple[str, ...], ...] = ()


# --------------------------------------------------------------------------- errors


class DrawInputError(ValueError):
    """Bad draw input. ``code`` names the problem (a text code in templates/*/texts/verify.j2,
    prefixed ``protocol_``); ``params`` say where (file, line, value)."""

    def __init__(self, code: str, **params: Any) -> None:
        self.code = code
        self.params = params
        detail = ", ".join(f"{k}={v!r}" for k, v in params.items())
        super().__init__(f"{code}: {detail}" if detail else code)


class TsvFormatError(DrawInputError):
    """A line of pool.tsv / inspectors.tsv / recusals.tsv breaks the format; ``params`` has
    ``file`` and the 1-based ``line``."""


class RatioError(DrawInputError):
    """A sampling ratio is not a plain decimal string between 0 and 1."""


class TeamSpecError(DrawInputError):
    """The team spec, the units or the divisions cannot describe a valid team formation."""


# --------------------------------------------------------------------------- notes, pair hashes


def note(code: str, **fields: Any) -> str:
    """A draw note as published: a canonical JSON object with its ``code`` (docs §7.6)."""
    return json.dumps({"code": code, **fields}, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def note_fields(text: str) -> dict[str, Any]:
    """The fields of a note made by :func:`note` (for rendering it through a template)."""
    fields: dict[str, Any] = json.loads(text)
    return fields


def pair_hash(seed: bytes, inspector: str, entity: str) -> str:
    """How an exclusion (conflict, rotation, recusal) is published: hex H(seed || "pair" || 0x00 ||
    inspector || 0x00 || entity). Salted with the seed, so it cannot be linked across draws."""
    return sha256(seed + b"pair\x00" + inspector.encode() + b"\x00" + entity.encode()).hexdigest()
