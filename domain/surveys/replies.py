"""Reading an entity's SMS reply to the integrity survey. Pure, stdlib only; never raises on text.

``parse_reply(text, expecting)`` reads any Unicode string against the questions still open and
says exactly what it understood — answers per question, the comment, the survey code, opt-out —
and, when something could not be read, which question and why (a :class:`Reason` code that
names what is expected, so the caller can send one short clarification). It never guesses:
input that could mean two things is unreadable. The accepted forms are listed in
docs/surveys.md; the rules, in the order they are applied:

1. **Normalise**: each character is NFKC-normalised and case-folded (full-width ``１２５``,
   ``，``, ``Ｙ`` and circled ``①`` become ASCII). Whitespace, punctuation, symbols (emoji),
   control and unassigned characters are *separators*.
2. **Survey code** (several open surveys): the first word, if it is a code (``K7Q2``,
   optionally ``#K7Q2``), or a last word written ``#K7Q2``. A ``#`` followed by letters or
   digits that are not a code is :attr:`Reason.BAD_CODE`.
3. **Opt-out**: the whole message (apart from separators and a code) is opt-out keywords
   (``TD``, ``T``, ``R``, ``退订``, ``STOP``, … see :data:`OPT_OUT_KEYWORDS`); ``N`` is *no*.
4. **Answers** are the leading run of answer words; the first other word starts the comment.
   A word is an answer only if it is *wholly* made of answer tokens: ``是``/``是的``/``对``/
   ``有``/``y``/``yes`` (yes), ``否``/``不是``/``不``/``没有``/``无``/``n``/``no`` (no), digits (each
   digit one answer, so ``125`` is three), ``一``–``五``, ``满分``, and ``分`` after a number.
   ``是否``, ``是不是``, ``有没有`` — any two yes/no words with no separator between them —
   are ambiguous; ``是个好人`` is text, not ``是``.
5. **Slots**: the n-th answer fills the n-th open question. In a yes/no slot ``1`` means yes
   and ``2`` means no (the survey says "回复1表示是，2表示否"); in the fairness slot a number is
   the score 1–5. A number's meaning comes from its slot, never from its value. A *labelled*
   reply (``1是 2否 3 5``, ``1.是 2.否 3.5分``) — every open question's number followed by its
   answer, in order, yes/no given as words — is read by the labels (two or more open questions
   only, so that ``3.5`` alone is never "question 3: 5").
6. **Never a guess**: more answers than open questions → :attr:`Reason.TOO_MANY` and nothing
   is read; an ambiguous word → :attr:`Reason.AMBIGUOUS` for its slot and nothing after it is
   read (the alignment is lost); a wrong kind of answer (``6`` or ``是`` for fairness, ``3``
   for a yes/no) → that question is unreadable, the other slots are still read.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import lru_cache
from typing import Any

from domain.surveys.questions import COMMENT_MAX_CHARS, REQUIRED, SCORE_MAX, SCORE_MIN, Answers, Kind, Question


class Reason(Enum):
    """Why a reply could not be read; each names what the clarification asks for."""

    EXPECTED_YES_NO = "expected_yes_no"  # 请回复"是"或"否"
    EXPECTED_SCORE = "expected_score"  # 请回复1到5的数字
    AMBIGUOUS = "ambiguous"  # e.g. "是否": reply 是 or 否, one per question
    TOO_MANY = "too_many"  # more answers than open questions
    BAD_CODE = "bad_code"  # "#…" that is not a survey code


@dataclass(frozen=True)
class Problem:
    """One thing that could not be read: the question (None only when no question was open)
    and the reason."""

    question: Question | None
    reason: Reason


@dataclass(frozen=True)
class ParseResult:
    """Everything read from one reply. ``answers`` holds only what was read unambiguously."""

    answers: Answers = field(default_factory=Answers)
    code: str | None = None  # survey code, upper-case, if the reply named one
    opt_out: bool = False
    problems: tuple[Problem, ...] = ()  # in slot order; the first is the one to clarify
    courtesy: bool = False  # the reply is only a courtesy ("谢谢", "好的", "OK"): no answer, no comment

    @property
    def comment(self) -> str | None:
        return self.answers.comment

    @property
    def problem(self) -> Problem | None:
        """The problem to clarify (the first), or None."""
        return self.problems[0] if self.problems else None

    @property
    def readable(self) -> bool:
        return not self.problems


# --- survey codes -------------------------------------------------------------------------

#: Code letters: consonants without L, N, Y (L looks like 1; N and Y are answers) and no vowels
#: (so no code spells a word such as STOP); digits without 0 and 1.
CODE_LETTERS = "BCDFGHJKMPQRSTVWXZ"
CODE_DIGITS = "23456789"
CODE_ALPHABET = CODE_DIGITS + CODE_LETTERS
CODE_LENGTH = 4  # a letter, then three of CODE_ALPHABET, at least one of them a digit: 211,392 codes


def is_code(word: str) -> bool:
    """Whether ``word`` (any case) is a well-formed survey code, e.g. ``K7Q2``."""
    w = word.upper()
    return (
        len(w) == CODE_LENGTH
        and w[0] in CODE_LETTERS
        and all(c in CODE_ALPHABET for c in w)
        and any(c in CODE_DIGITS for c in w)
    )


def make_code(entropy: bytes) -> str:
    """A survey code derived from ``entropy`` (random bytes, or a hash the caller chose).
    The caller keeps codes unique among one entity's open surveys (draw again on a clash)."""
    counter = 0
    while True:
        h = hashlib.sha256(b"inspectbot/survey-code/v1\x00" + entropy + counter.to_bytes(4, "big")).digest()
        code = CODE_LETTERS[h[0] % len(CODE_LETTERS)] + "".join(CODE_ALPHABET[b % len(CODE_ALPHABET)] for b in h[1:4])
        if is_code(code):
            return code
        counter += 1


@dataclass(frozen=True)
class Routing:
    """Which open survey a reply belongs to: ``code``, or ``reason`` why it cannot be said."""

    code: str | None
    reason: str | None = None  # "none_open", "which_inspection", "unknown_code"


def route_reply(code: str | None, open_codes: Sequence[str]) -> Routing:
    """Pick the survey a reply answers. One open survey and no code → that one; a code → the
    open survey with it; several open and no code → ask which inspection (never a guess)."""
    if not open_codes:
        return Routing(None, "none_open")
    if code is not None:
        wanted = code.upper()
        return Routing(wanted) if wanted in {c.upper() for c in open_codes} else Routing(None, "unknown_code")
    if len(open_codes) == 1:
        return Routing(open_codes[0])
    return Routing(None, "which_inspection")


# --- opt-out -----------------------------------------------------------------------------

#: Whole-message opt-out keywords (case-insensitive). Chinese practice: "回复TD退订" / "回T退订",
#: "拒收请回复R" (the R required of marketing SMS by carriers and cloud SMS platforms); the
#: Twilio/CTIA set (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, OPTOUT, REVOKE) because the
#: gateway is Twilio-compatible; REMOVE as AWS does. "N" is deliberately *not* one: it means no.
OPT_OUT_KEYWORDS = frozenset(
    {
        "td", "t", "r", "stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "revoke", "remove",
        "退订", "退訂", "退", "拒收", "取消",
    }
)  # fmt: skip


# --- characters and tokens ---------------------------------------------------------------

_LETTER, _DIGIT, _OTHER, _SEP = "L", "D", "O", "S"


@lru_cache(maxsize=4096)  # pure, and called for every character of every reply
def _char_class(c: str) -> str:
    """L: ASCII letter, D: ASCII digit, S: separator, O: anything else (CJK, other scripts)."""
    if "a" <= c <= "z":
        return _LETTER
    if "0" <= c <= "9":
        return _DIGIT
    cat = unicodedata.category(c)
    if cat[0] in "ZPSC" or cat == "Me" or "\ufe00" <= c <= "\ufe0f" or "\U000e0100" <= c <= "\U000e01ef":
        return _SEP  # spaces, punctuation, symbols and emoji, controls, keycap marks, variation selectors
    return _OTHER


def _normalise(text: str) -> tuple[str, list[int]]:
    """NFKC + casefold, character by character, with each output character's source index
    (so the comment can be cut from the original text)."""
    if text.isascii():  # NFKC leaves ASCII alone, and casefolds it to its lower case
        return text.lower(), list(range(len(text)))
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        piece = unicodedata.normalize("NFKC", ch).casefold()
        out.append(piece)
        origin.extend([i] * len(piece))
    return "".join(out), origin


_YES, _NO, _NUM, _AMBIGUOUS, _TEXT, _POINTS = "yes", "no", "num", "ambiguous", "text", "points"


@dataclass(frozen=True)
class _Token:
    kind: str  # _YES, _NO, _NUM, _AMBIGUOUS or _TEXT
    start: int  # in the normalised text
    end: int
    value: int = 0  # for _NUM
    digit: bool = False  # _NUM written as an ASCII digit (only those may mean yes/no)
    points: bool = False  # _NUM written as a score ("5分", "满分"): never a yes/no

    @property
    def answer(self) -> bool:
        return self.kind != _TEXT


_LETTER_WORDS = {"y": _YES, "yes": _YES, "n": _NO, "no": _NO}

_CJK_WORDS: dict[str, tuple[str, int]] = {
    **{w: (_YES, 0) for w in ("是", "是的", "对", "对的", "對", "對的", "有", "有的")},
    **{w: (_NO, 0) for w in ("否", "不是", "不", "不对", "不對", "没有", "沒有", "没", "沒", "无", "無")},
    **{
        w: (_AMBIGUOUS, 0) for w in ("是否", "是不是", "有没有", "有沒有", "对不对", "對不對", "有无", "有無", "是或否")
    },
    **{w: (_NUM, v) for v, w in enumerate("一二三四五", start=1)},
    "满分": (_POINTS, SCORE_MAX),
    "滿分": (_POINTS, SCORE_MAX),
    "分": (_POINTS, 0),  # suffix of a number: "5分", "五分"
}
_CJK_LONGEST = max(len(w) for w in _CJK_WORDS)


def _cjk_tokens(seg: str, start: int, before: _Token | None) -> tuple[_Token | None, list[_Token]] | None:
    """Split a run of non-ASCII characters wholly into answer tokens (longest match first), or
    None if any part is not one. Two yes/no words with nothing between them (``是否``, ``否是``,
    ``有没``) are one ambiguous token. A ``分`` qualifies the number just before it, which may
    be ``before`` (the token preceding the run): it is returned, rewritten if so."""
    out: list[_Token] = []
    i = 0
    while i < len(seg):
        for size in range(min(_CJK_LONGEST, len(seg) - i), 0, -1):
            hit = _CJK_WORDS.get(seg[i : i + size])
            if hit is not None:
                break
        else:
            return None
        kind, value = hit
        a, b = start + i, start + i + size
        if kind == _POINTS and value == 0:  # "分" after a number
            last = out[-1] if out else before
            if last is None or last.kind != _NUM or last.points:
                return None
            scored = replace(last, end=b, points=True)
            if out:
                out[-1] = scored
            else:
                before = scored
        elif kind == _POINTS:  # "满分"
            out.append(_Token(_NUM, a, b, value, points=True))
        else:
            out.append(_Token(kind, a, b, value))
        i += size
    if sum(t.kind in (_YES, _NO, _AMBIGUOUS) for t in out) > 1:  # "否是", "有没": one answer or two?
        return before, [_Token(_AMBIGUOUS, start, start + len(seg))]
    return before, out


def _word_tokens(word: str, start: int, prev: _Token | None) -> tuple[_Token | None, list[_Token]]:
    """The tokens of one word, and ``prev`` (rewritten if the word began with a ``分`` that
    qualifies it). A word that is not wholly answers is one text token."""
    text = (prev, [_Token(_TEXT, start, start + len(word))])
    toks: list[_Token] = []
    i = 0
    while i < len(word):
        cls = _char_class(word[i])
        j = i
        while j < len(word) and _char_class(word[j]) == cls:
            j += 1
        seg, a = word[i:j], start + i
        if cls == _LETTER:
            kind = _LETTER_WORDS.get(seg)
            if kind is None:
                return text
            toks.append(_Token(kind, a, j + start))
        elif cls == _DIGIT:
            toks.extend(_Token(_NUM, a + k, a + k + 1, int(d), digit=True) for k, d in enumerate(seg))
        else:
            got = _cjk_tokens(seg, a, toks[-1] if toks else prev)
            if got is None:
                return text
            before, more = got
            if toks:
                assert before is not None  # it was toks[-1]: _cjk_tokens only rewrites it
                toks[-1] = before
            else:
                prev = before
            toks.extend(more)
        i = j
    return prev, toks


def _tokenise(s: str, begin: int, end: int) -> list[_Token]:
    """Words are runs of non-separators; each becomes answer tokens or one text token."""
    tokens: list[_Token] = []
    i = begin
    while i < end:
        if _char_class(s[i]) == _SEP:
            i += 1
            continue
        j = i
        while j < end and _char_class(s[j]) != _SEP:
            j += 1
        prev, toks = _word_tokens(s[i:j], i, tokens[-1] if tokens else None)
        if tokens:
            assert prev is not None  # it was tokens[-1]: _word_tokens only rewrites it
            tokens[-1] = prev
        tokens.extend(toks)
        i = j
    return tokens


# --- codes and opt-out in the normalised text --------------------------------------------


def _is_ascii_alnum(c: str) -> bool:
    return "a" <= c <= "z" or "0" <= c <= "9"


@dataclass(frozen=True)
class _Frame:
    code: str | None
    begin: int  # where answers may start
    end: int  # where the comment ends (a trailing "#CODE" is cut off)
    bad_code: bool = False


def _frame(s: str) -> _Frame:
    """Find a leading code (``K7Q2``/``#K7Q2``) or else a trailing ``#K7Q2``."""
    words = [i for i, c in enumerate(s) if _char_class(c) != _SEP]
    if not words:
        return _Frame(None, 0, len(s))
    i = words[0]
    j = i
    while j < len(s) and _is_ascii_alnum(s[j]):
        j += 1
    if j > i and is_code(s[i:j]):
        return _Frame(s[i:j].upper(), j, len(s))
    if j > i and i > 0 and s[i - 1] == "#":
        return _Frame(None, 0, len(s), bad_code=True)
    k = words[-1] + 1
    m = k
    while m > 0 and _is_ascii_alnum(s[m - 1]):
        m -= 1
    if m < k and m > 0 and s[m - 1] == "#" and is_code(s[m:k]):
        return _Frame(s[m:k].upper(), 0, m - 1)
    return _Frame(None, 0, len(s))


def _is_opt_out(s: str) -> bool:
    """The text (separators removed) is made only of opt-out keywords, split where the script
    changes: "TD", "td退订", "STOP!", "退订" — but not "N", nor answers followed by "TD"."""
    compact = "".join(c for c in s if _char_class(c) != _SEP)
    if not compact:
        return False
    i = 0
    while i < len(compact):
        cls = _char_class(compact[i])
        j = i
        while j < len(compact) and _char_class(compact[j]) == cls:
            j += 1
        if compact[i:j] not in OPT_OUT_KEYWORDS:
            return False
        i = j
    return True


# --- reading answers ------------------------------------------------------------------------


def _expected(q: Question) -> Reason:
    return Reason.EXPECTED_SCORE if q.kind is Kind.SCORE else Reason.EXPECTED_YES_NO


def _value(q: Question, tok: _Token) -> bool | int | None:
    """The answer ``tok`` gives in ``q``'s slot, or None if it is the wrong kind."""
    if q.kind is Kind.YES_NO:
        if tok.kind in (_YES, _NO):
            return tok.kind == _YES
        if tok.kind == _NUM and tok.digit and not tok.points and tok.value in (1, 2):
            return tok.value == 1
        return None
    if tok.kind == _NUM and SCORE_MIN <= tok.value <= SCORE_MAX:
        return tok.value
    return None


def _labelled(run: list[_Token], open_: tuple[Question, ...]) -> list[tuple[Question, _Token]] | None:
    """Read ``1是 2否 3 5`` by its labels: one (question number as a digit, answer) pair for
    each of two or more open questions, in order; yes/no answers as words (so ``1 1 2 2 3 5``
    is not labelled), scores as numbers. Anything else is not the labelled form."""
    if len(open_) < 2 or len(run) != 2 * len(open_):
        return None
    pairs: list[tuple[Question, _Token]] = []
    for q, label, tok in zip(open_, run[::2], run[1::2]):
        if label.kind != _NUM or not label.digit or label.points or label.value != q.number:
            return None
        if q.kind is Kind.YES_NO and tok.kind not in (_YES, _NO, _AMBIGUOUS):
            return None
        if q.kind is Kind.SCORE and tok.kind != _NUM:
            return None
        pairs.append((q, tok))
    return pairs


def _clean_comment(raw: str) -> str | None:
    """Drop control characters (but keep line breaks) and lone surrogates, trim leading
    separators and trailing spaces, cap the length; None unless a letter, digit or symbol
    (emoji) is left."""
    kept = []
    for c in raw.replace("\r\n", "\n").replace("\t", " "):
        cat = unicodedata.category(c)
        if cat == "Cs" or (cat == "Cc" and c != "\n"):
            continue
        kept.append(c)
    text = "".join(kept)
    start = 0
    while start < len(text) and unicodedata.category(text[start])[0] in "ZPCM":
        start += 1  # the separator between the answers and the comment, and orphaned marks
    text = text[start:][:COMMENT_MAX_CHARS].rstrip()
    return text if any(unicodedata.category(c)[0] in "LNS" for c in text) else None


def _original_slice(text: str, origin: list[int], a: int, b: int) -> str:
    """The original text between normalised positions ``a`` and ``b`` (boundaries after whole
    original characters)."""
    oa = origin[a - 1] + 1 if a > 0 else 0
    ob = origin[b] if b < len(origin) else len(text)
    return text[oa:ob] if oa < ob else ""


def _open_questions(expecting: Question | Iterable[Question]) -> tuple[Question, ...]:
    qs = [expecting] if isinstance(expecting, Question) else list(expecting)
    qs = [q for q in qs if q is not Question.COMMENT]  # the comment is always read after the answers
    if len(set(qs)) != len(qs):
        raise ValueError(f"expecting names a question twice: {qs}")
    return tuple(sorted(qs, key=lambda q: q.number))


#: Replies that are only politeness, compared without blanks, punctuation and case: acknowledged
#: after a survey is over, never stored as a comment (they are not an opinion about the inspection).
COURTESIES = frozenset(
    {
        "谢谢", "谢谢你", "谢谢您", "谢了", "多谢", "感谢", "非常感谢", "十分感谢", "谢谢啦", "谢谢了",
        "好", "好的", "好滴", "好哒", "收到", "已收到", "知道了", "明白", "明白了", "嗯", "嗯嗯", "ok", "okay",
        "thanks", "thankyou", "thx", "ty", "👍", "🙏", "👌",
    }
)  # fmt: skip
_NOT_WORD = re.compile(r"[\s\W_]+", re.UNICODE)


def _courteous(word: str) -> bool:
    return word in COURTESIES or any(word == c * n for c in COURTESIES for n in (2, 3))


def is_courtesy(text: str | None) -> bool:
    """Whether ``text`` is only courtesies (谢谢！, 好的，谢谢, OK, 👍…), each possibly repeated."""
    if not text or not text.strip():
        return False
    words = [w for w in _NOT_WORD.split(text.lower()) if w]
    if not words:  # only symbols: an emoji such as 👍
        return _courteous(text.strip())
    return all(_courteous(w) for w in words) or _courteous("".join(words))


def parse_reply(text: str, expecting: Question | Iterable[Question] = REQUIRED) -> ParseResult:
    """Read one SMS reply against the open questions ``expecting`` (in any order; the comment
    question is implied). Never raises on any ``text``; see the module docstring for the rules."""
    open_ = _open_questions(expecting)
    first = open_[0] if open_ else None
    s, origin = _normalise(text)
    frame = _frame(s)
    if frame.bad_code:
        return ParseResult(problems=(Problem(first, Reason.BAD_CODE),))
    if _is_opt_out(s[frame.begin : frame.end]):
        return ParseResult(code=frame.code, opt_out=True)
    whole = _clean_comment(_original_slice(text, origin, frame.begin, frame.end))
    courtesy = is_courtesy(whole)  # "谢谢": never recorded as a comment
    if not open_:  # nothing to answer: all of it is a comment
        return ParseResult(Answers(comment=None if courtesy else whole), frame.code, courtesy=courtesy)
    tokens = _tokenise(s, frame.begin, frame.end)
    run: list[_Token] = []
    for tok in tokens:
        if not tok.answer:
            break
        run.append(tok)
    if not run:  # no answer: the text is kept as the comment (a first SMS that only says what happened)
        asked = (Problem(first, _expected(open_[0])),)  # still asked for the answer
        return ParseResult(Answers(comment=None if courtesy else whole), frame.code, problems=asked, courtesy=courtesy)
    pairs = _labelled(run, open_)
    if pairs is None:
        if len(run) > len(open_):
            return ParseResult(code=frame.code, problems=(Problem(first, Reason.TOO_MANY),))
        pairs = list(zip(open_, run))
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for q, tok in pairs:
        if tok.kind == _AMBIGUOUS:
            problems.append(Problem(q, Reason.AMBIGUOUS))
            break  # "是否" may be one answer or two: the slots after it are not known
        value = _value(q, tok)
        if value is None:
            problems.append(Problem(q, _expected(q)))
        else:
            values[q.value] = value
    comment = _clean_comment(_original_slice(text, origin, run[-1].end, frame.end))
    comment = None if is_courtesy(comment) else comment  # "是 否 5 谢谢": the thanks is no opinion
    return ParseResult(Answers(**values, comment=comment), frame.code, problems=tuple(problems))
