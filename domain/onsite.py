"""On site, as pure functions: check-in distance, where a photo is stored, and the findings
state machine. Stdlib only, no I/O.

The findings of one inspection are a :class:`Findings` value: the plan's items in order, a
verdict (合格 / 不合格 / 不涉及) and an optional note per item, where the conversation is
(``cursor`` and ``step``) and the result's ``status``. :func:`apply` takes one event — a
button press or a text — and returns an :class:`Outcome`: the new state and a code naming
what happened. A refused event (a stale or double tap, a text when no note is expected, a
member who is not the lead) returns the state unchanged, so any sequence of presses leaves
a consistent state (:func:`consistent`). Once submitted, verdicts and notes never change:
a correction is a new result that supersedes this one.

Life of a result::

    draft ──Submit──▶ submitted ──Confirm──▶ confirmed
      │                  └──────────┬──────────┘
      │ (a correction)             Supersede (its correction was approved)
      └──Submit──▶ pending ──Approve──▶ submitted …   ▼
                      └──Reject──▶ withdrawn       superseded
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, TypeVar

from domain.inputs import half_width, printable

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG), metres
NOTE_LIMIT = 500
REASON_LIMIT = 500

T = TypeVar("T")


# --- check-in -----------------------------------------------------------------------------------


def valid_position(lat: float | None, lon: float | None) -> bool:
    return (
        lat is not None
        and lon is not None
        and all(map(math.isfinite, (lat, lon)))
        and -90.0 <= lat <= 90.0
        and -180.0 <= lon <= 180.0
    )


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres on a spherical Earth (error under 0.5 %: plenty for
    telling an inspector at the door from one across town)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def checkin_flagged(distance_m: float | None, radius_m: float) -> bool:
    """Implausibly far from the entity: flagged for the coordinator, never refused. Without the
    entity's coordinates nothing can be judged, so nothing is flagged."""
    return distance_m is not None and distance_m > radius_m


# --- photos -------------------------------------------------------------------------------------


def image_kind(data: bytes) -> str:
    """The kind of picture ``data`` is by its magic bytes (``jpg``, ``png``, ``gif``, ``webp``),
    "" when it is none of them (an HTML error page, a truncated download)."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return ""


def image_extension(data: bytes) -> str:
    """The file extension of a picture by its magic bytes (Telegram photos are JPEG)."""
    return image_kind(data) or "jpg"


def photo_path(sha256_hex: str, extension: str = "jpg") -> str:
    """Where a photo lives under the data directory: content-addressed, two-level fan-out
    (``photos/ab/abcdef….jpg``), so the same picture sent twice is stored once."""
    if len(sha256_hex) != 64 or any(c not in "0123456789abcdef" for c in sha256_hex):
        raise ValueError("not a lower-case hex SHA-256")
    return f"photos/{sha256_hex[:2]}/{sha256_hex}.{extension}"


# --- findings -----------------------------------------------------------------------------------


class Verdict(str, Enum):
    PASS = "pass"  # 合格
    FAIL = "fail"  # 不合格
    NA = "na"  # 不涉及


class Step(str, Enum):
    VERDICT = "verdict"  # waiting for the current item's verdict button
    NOTE = "note"  # waiting for the current item's note (text) or Skip
    SUMMARY = "summary"  # every item has a verdict: review, edit or submit


class ResultStatus(str, Enum):
    DRAFT = "draft"
    PENDING = "pending"  # a correction waiting for a coordinator's approval
    SUBMITTED = "submitted"  # by the team lead
    CONFIRMED = "confirmed"  # by another member of the team
    SUPERSEDED = "superseded"  # replaced by an approved correction (kept, never deleted)
    WITHDRAWN = "withdrawn"  # a correction the coordinator rejected

    @property
    def effective(self) -> bool:
        """The inspection's result of record."""
        return self in (ResultStatus.SUBMITTED, ResultStatus.CONFIRMED)


@dataclass(frozen=True)
class Findings:
    items: tuple[str, ...]
    verdicts: tuple[Verdict | None, ...]
    notes: tuple[str, ...]
    cursor: int  # the item being asked about; len(items) at the summary
    step: Step
    status: ResultStatus = ResultStatus.DRAFT
    correction: bool = False  # this result would supersede an earlier one

    @classmethod
    def new(cls, items: Iterable[str], *, prefill: Findings | None = None) -> Findings:
        """A fresh draft over ``items``; a correction starts from the result it corrects, at its
        summary (the lead changes only what was wrong)."""
        items = tuple(items)
        if not items:
            raise ValueError("a result needs at least one item")
        if prefill is not None:
            if prefill.items != items:
                raise ValueError("a correction covers the same items")
            return cls(items, prefill.verdicts, prefill.notes, len(items), Step.SUMMARY, correction=True)
        return cls(items, (None,) * len(items), ("",) * len(items), 0, Step.VERDICT)

    @property
    def complete(self) -> bool:
        return all(v is not None for v in self.verdicts)


@dataclass(frozen=True)
class Pick:
    index: int
    verdict: Verdict


@dataclass(frozen=True)
class Note:
    text: str


@dataclass(frozen=True)
class Skip:
    index: int


@dataclass(frozen=True)
class Edit:
    index: int


@dataclass(frozen=True)
class Submit:
    by_lead: bool


@dataclass(frozen=True)
class Confirm:
    by_lead: bool


@dataclass(frozen=True)
class Approve:
    pass


@dataclass(frozen=True)
class Reject:
    pass


@dataclass(frozen=True)
class Supersede:
    pass


Event = Pick | Note | Skip | Edit | Submit | Confirm | Approve | Reject | Supersede
DRAFTING = (Pick, Note, Skip, Edit, Submit)


@dataclass(frozen=True)
class Outcome:
    state: Findings
    code: str  # what happened (a text code: fnd_<code>)
    changed: bool
    index: int | None = None  # the item it was about, if any


# Codes of applied events; every other code is a refusal and leaves the state as it was.
APPLIED = frozenset(
    {
        "recorded",
        "changed",
        "noted",
        "skipped",
        "editing",
        "submitted",
        "sent_for_approval",
        "confirmed",
        "approved",
        "rejected",
        "superseded",
    }
)


def _refuse(state: Findings, code: str, index: int | None = None) -> Outcome:
    return Outcome(state, code, False, index)


def _advance(state: Findings, **changes: Any) -> Findings:
    """On to the first item still without a verdict, or to the summary."""
    s = replace(state, **changes)
    nxt = next((i for i, v in enumerate(s.verdicts) if v is None), None)
    if nxt is None:
        return replace(s, cursor=len(s.items), step=Step.SUMMARY)
    return replace(s, cursor=nxt, step=Step.VERDICT)


def _set(values: tuple[T, ...], index: int, value: T) -> tuple[T, ...]:
    return values[:index] + (value,) + values[index + 1 :]


def _closed_code(status: ResultStatus) -> str:
    return {
        ResultStatus.PENDING: "pending_approval",
        ResultStatus.SUBMITTED: "already_submitted",
        ResultStatus.CONFIRMED: "already_submitted",
    }.get(status, "closed")


def apply(state: Findings, event: Event) -> Outcome:
    """One event on the findings; see the module docstring."""
    if isinstance(event, DRAFTING) and state.status != ResultStatus.DRAFT:
        return _refuse(state, _closed_code(state.status), getattr(event, "index", None))
    handler = _HANDLERS[type(event)]
    return handler(state, event)


def _in_range(state: Findings, index: int) -> bool:
    return 0 <= index < len(state.items)


def _pick(s: Findings, e: Pick) -> Outcome:
    if not _in_range(s, e.index):
        return _refuse(s, "bad_item")
    if e.index == s.cursor and s.step in (Step.VERDICT, Step.NOTE):
        before = s.verdicts[e.index]
        if s.step == Step.NOTE and before == e.verdict:
            return _refuse(s, "same", e.index)  # a double tap
        new = replace(s, verdicts=_set(s.verdicts, e.index, e.verdict), step=Step.NOTE)
        return Outcome(new, "changed" if before not in (None, e.verdict) else "recorded", True, e.index)
    # a button of another item (an older message) or pressed from the summary
    if s.verdicts[e.index] == e.verdict:
        return _refuse(s, "already", e.index)
    return _refuse(s, "stale_item", e.index)


def _note(s: Findings, e: Note) -> Outcome:
    if s.step != Step.NOTE:
        return _refuse(s, "no_note_expected", s.cursor if s.cursor < len(s.items) else None)
    text = e.text.strip()
    if not text:
        return _refuse(s, "empty_note", s.cursor)
    if len(text) > NOTE_LIMIT:
        return _refuse(s, "note_too_long", s.cursor)
    return Outcome(_advance(s, notes=_set(s.notes, s.cursor, text)), "noted", True, s.cursor)


def _skip(s: Findings, e: Skip) -> Outcome:
    if s.step == Step.NOTE and e.index == s.cursor:
        return Outcome(_advance(s, notes=_set(s.notes, s.cursor, "")), "skipped", True, e.index)
    if _in_range(s, e.index) and s.verdicts[e.index] is not None and e.index != s.cursor:
        return _refuse(s, "already", e.index)
    return _refuse(s, "stale_item", e.index if _in_range(s, e.index) else None)


def _edit(s: Findings, e: Edit) -> Outcome:
    if not _in_range(s, e.index):
        return _refuse(s, "bad_item")
    if s.step != Step.SUMMARY:
        return _refuse(s, "same" if e.index == s.cursor else "finish_current", e.index)
    return Outcome(replace(s, cursor=e.index, step=Step.VERDICT), "editing", True, e.index)


def _submit(s: Findings, e: Submit) -> Outcome:
    if not e.by_lead:
        return _refuse(s, "not_lead")
    if s.step != Step.SUMMARY:
        return _refuse(s, "incomplete")
    if s.correction:
        return Outcome(replace(s, status=ResultStatus.PENDING), "sent_for_approval", True)
    return Outcome(replace(s, status=ResultStatus.SUBMITTED), "submitted", True)


def _confirm(s: Findings, e: Confirm) -> Outcome:
    if s.status == ResultStatus.CONFIRMED:
        return _refuse(s, "already_confirmed")
    if s.status != ResultStatus.SUBMITTED:
        return _refuse(
            s, "closed" if s.status in (ResultStatus.SUPERSEDED, ResultStatus.WITHDRAWN) else "not_submitted"
        )
    if e.by_lead:
        return _refuse(s, "lead_cannot_confirm")
    return Outcome(replace(s, status=ResultStatus.CONFIRMED), "confirmed", True)


def _approve(s: Findings, e: Approve) -> Outcome:
    if s.status != ResultStatus.PENDING:
        return _refuse(s, "not_pending")
    return Outcome(replace(s, status=ResultStatus.SUBMITTED), "approved", True)


def _reject(s: Findings, e: Reject) -> Outcome:
    if s.status != ResultStatus.PENDING:
        return _refuse(s, "not_pending")
    return Outcome(replace(s, status=ResultStatus.WITHDRAWN), "rejected", True)


def _supersede(s: Findings, e: Supersede) -> Outcome:
    if not s.status.effective:
        return _refuse(s, "not_effective")
    return Outcome(replace(s, status=ResultStatus.SUPERSEDED), "superseded", True)


_HANDLERS: dict[type[Event], Callable[[Findings, Any], Outcome]] = {
    Pick: _pick,
    Note: _note,
    Skip: _skip,
    Edit: _edit,
    Submit: _submit,
    Confirm: _confirm,
    Approve: _approve,
    Reject: _reject,
    Supersede: _supersede,
}


def consistent(s: Findings) -> bool:
    """The invariants every reachable state keeps (what the property tests check)."""
    n = len(s.items)
    if n == 0 or len(s.verdicts) != n or len(s.notes) != n or not 0 <= s.cursor <= n:
        return False
    if (s.step == Step.SUMMARY) != (s.cursor == n):
        return False
    if s.step == Step.SUMMARY and not s.complete:
        return False
    if s.step == Step.NOTE and s.verdicts[s.cursor] is None:
        return False
    if any(v is None for v in s.verdicts[: s.cursor]):
        return False
    if any(note and v is None for note, v in zip(s.notes, s.verdicts)):
        return False
    if any(len(note) > NOTE_LIMIT or note != note.strip() for note in s.notes):
        return False
    if s.status != ResultStatus.DRAFT and s.step != Step.SUMMARY:
        return False
    if s.status in (ResultStatus.PENDING, ResultStatus.WITHDRAWN) and not s.correction:
        return False
    return True


# --- the credit record ------------------------------------------------------------------------------


def credit_outcome(verdicts: Iterable[Verdict | str | None]) -> str:
    """The result as the credit publicity system words it (a text code, ``credit_outcome_<code>``):
    ``problems`` when any item is 不合格; ``not_operating`` when every item was 不涉及 (the firm
    does not carry on the activity checked); otherwise ``no_problems``."""
    values = [Verdict(v) if v is not None else None for v in verdicts]
    if any(v == Verdict.FAIL for v in values):
        return "problems"
    if values and all(v == Verdict.NA for v in values):
        return "not_operating"
    return "no_problems"


# --- objections ------------------------------------------------------------------------------------

OBJECTION_WORDS = ("陈述申辩", "异议", "申辩", "陈述", "OBJECTION")
NOTICE_CODE_CHARS = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
#: A notice code is "G" and seven of the 32 characters: 32**7 ≈ 3.4e10 (35 bits). Guessing is
#: bounded by the attempt limits below, not by length alone: at most CODE_ATTEMPTS wrong codes per
#: firm per ATTEMPT_WINDOW, so a whole objection period (a month at most) allows ~7,200 guesses at
#: one firm's code — a chance of 2e-7. A longer code would be no safer and harder to type from paper.
NOTICE_CODE_LEN = 8
#: Wrong codes allowed per firm (on its page) and per client address or SMS sender, per window.
CODE_ATTEMPTS = 10
CLIENT_ATTEMPTS = 20
ATTEMPT_WINDOW_MINUTES = 60
#: Read within a typed code and dropped: the blanks and dashes of a code copied in groups.
_CODE_GAPS = " -"


def is_notice_code(text: str) -> bool:
    """``G`` and seven of :data:`NOTICE_CODE_CHARS` (case-insensitive)."""
    code = text.strip().upper()
    return len(code) == NOTICE_CODE_LEN and code[0] == "G" and all(c in NOTICE_CODE_CHARS for c in code[1:])


def notice_code_text(text: str) -> str:
    """A typed notice code as stored: full-width forms folded, blanks and dashes dropped, upper case
    (``ｇｔｅｓｔ ２３４`` and ``GTEST-234`` are ``GTEST234``)."""
    folded = half_width(text)
    return "".join(c for c in folded if c not in _CODE_GAPS and not c.isspace()).upper()


def clean_reason(text: str) -> str:
    """A firm's reason as kept and shown: control characters (NUL included: PostgreSQL refuses it
    in text) and lone surrogates dropped, line breaks kept, ends trimmed."""
    return printable(text).strip()


def _code_at(text: str) -> tuple[str, int] | None:
    """The notice code at the start of ``text`` (full-width forms, blanks and dashes between its
    characters allowed) and where it ends; None unless exactly a code is there (``GTEST2345`` is
    not ``GTEST234`` and a reason ``5``)."""
    folded = half_width(text)
    code, end = "", 0
    for i, c in enumerate(folded):
        if len(code) == NOTICE_CODE_LEN:
            break
        if c.isascii() and c.isalnum():
            code, end = code + c.upper(), i + 1
        elif not (code and c in _CODE_GAPS):
            break
    if not is_notice_code(code):
        return None
    if end < len(folded) and folded[end].isascii() and folded[end].isalnum():
        return None
    return code, end


def parse_objection(text: str) -> tuple[str, str] | None:
    """``(code, reason)`` from an SMS such as ``异议 G7K3Q9M2 检查当日冷柜已维修``, or None when the
    text is not an objection (a survey reply, say). The keyword may be followed by ``:`` or
    ``：``; the code may be typed in full-width forms, lower case or in groups; the reason may be
    empty (the service refuses that). Only the first objection of a text: :func:`parse_objections`."""
    found = parse_objections(text)
    return found[0] if found else None


def _objection_line(line: str) -> tuple[str, str] | None:
    folded = half_width(line)  # one character for one: indices hold in ``line`` too
    start = len(folded) - len(folded.lstrip())
    word = next((w for w in OBJECTION_WORDS if folded[start:].upper().startswith(w)), None)
    if word is None:
        return None
    start += len(word)
    after = folded[start:]
    start += len(after) - len(after.lstrip(" \t:：,，"))
    found = _code_at(folded[start:])
    if found is None:
        return None
    code, end = found
    return code, line[start + end :].strip(" \t:：,，\u3000")


def parse_objections(text: str) -> list[tuple[str, str]]:
    """Every objection of one text, in order: a line that starts with the keyword and a code
    starts the next one (``异议 G… 理由一`` / ``异议 G… 理由二`` are two); other lines continue the
    reason before them. Empty when the text does not start with an objection."""
    found: list[tuple[str, list[str]]] = []
    for line in text.strip().splitlines():
        head = _objection_line(line)
        if head is not None:
            found.append((head[0], [head[1]] if head[1] else []))
        elif found:
            found[-1][1].append(line)
        else:
            return []
    return [(code, "\n".join(lines).strip()) for code, lines in found]
