"""The integrity-survey core: reply parsing, the survey state machine, sampling, quiet hours,
alerts, scores and the anonymity rule (domain/surveys, docs/surveys.md)."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.surveys import (
    COMMENT_MAX_CHARS,
    DEFAULT_SHARES,
    MAX_CLARIFICATIONS,
    OPT_OUT_KEYWORDS,
    QUIET_HOURS,
    REQUIRED,
    SHANGHAI,
    Answers,
    AskQuestion,
    Candidate,
    Clarify,
    ConfirmOptOut,
    OptOutEntity,
    ParseResult,
    Problem,
    Question,
    RaiseAlert,
    Reason,
    Response,
    Routing,
    Score,
    SendReminder,
    Status,
    Thank,
    ThankKind,
    alert_reasons,
    expires_at,
    integrity_scores,
    is_code,
    is_quiet,
    make_code,
    new_survey,
    next_allowed_send,
    next_due,
    parse_reply,
    publishable,
    quota,
    rank,
    reminder_at,
    route_reply,
    sample,
    share,
    step,
    tick,
)
from domain.surveys.flow import MAX_ACKNOWLEDGEMENTS
from domain.surveys.replies import is_courtesy

Q1, Q2, Q3, Q4 = Question.CREDENTIALS, Question.IMPROPER, Question.FAIRNESS, Question.COMMENT
YN, SC, AMB, MANY, CODE = (
    Reason.EXPECTED_YES_NO,
    Reason.EXPECTED_SCORE,
    Reason.AMBIGUOUS,
    Reason.TOO_MANY,
    Reason.BAD_CODE,
)
ALL = REQUIRED


# --- parse_reply: a table of real-looking replies ------------------------------------------

# (text, expecting, (credentials, improper, fairness), comment, code, problems)
READABLE = [
    ("1 2 5", ALL, (True, False, 5), None, None),
    ("是，否，5", ALL, (True, False, 5), None, None),
    ("Y N 4", ALL, (True, False, 4), None, None),
    ("y n 4", ALL, (True, False, 4), None, None),
    ("yes no 3", ALL, (True, False, 3), None, None),
    ("YES,NO,5", ALL, (True, False, 5), None, None),
    ("1,2,5", ALL, (True, False, 5), None, None),
    ("1、2、5", ALL, (True, False, 5), None, None),
    ("125", ALL, (True, False, 5), None, None),
    ("１２５", ALL, (True, False, 5), None, None),
    ("１，２，５", ALL, (True, False, 5), None, None),
    ("Ｙ　Ｎ　４", ALL, (True, False, 4), None, None),
    ("①②⑤", ALL, (True, False, 5), None, None),
    ("1️⃣ 2️⃣ 5️⃣", ALL, (True, False, 5), None, None),
    ("  是   否    5  ", ALL, (True, False, 5), None, None),
    ("是\n否\n5", ALL, (True, False, 5), None, None),
    ("是 否 5 态度很好", ALL, (True, False, 5), "态度很好", None),
    ("是，否，5，检查人员很专业，谢谢！", ALL, (True, False, 5), "检查人员很专业，谢谢！", None),
    ("是的 没有 5分 满意", ALL, (True, False, 5), "满意", None),
    ("对 没有 五分", ALL, (True, False, 5), None, None),
    ("有 无 满分", ALL, (True, False, 5), None, None),
    ("不是 有 1", ALL, (False, True, 1), None, None),
    ("否 是 2 他们要我买指定的灭火器", ALL, (False, True, 2), "他们要我买指定的灭火器", None),
    ("沒有 沒有 3", ALL, (False, False, 3), None, None),
    ("是😀否😀5😀", ALL, (True, False, 5), "😀", None),  # an emoji after the answers is a comment
    ("👍是 否 5 👍👍", ALL, (True, False, 5), None, None),  # a trailing courtesy is no comment
    ("Y N 4 friendly inspectors", ALL, (True, False, 4), "friendly inspectors", None),
    ("1 2 5 10点来的，半小时就走了", ALL, (True, False, 5), "10点来的，半小时就走了", None),
    ("是 否 5很好", ALL, (True, False, None), "5很好", None),  # "5很好" is one text word
    ("#K7Q2 是 否 5", ALL, (True, False, 5), None, "K7Q2"),
    ("K7Q2 1 2 5", ALL, (True, False, 5), None, "K7Q2"),
    ("k7q2 1 2 5", ALL, (True, False, 5), None, "K7Q2"),
    ("＃Ｋ７Ｑ２ 是 否 5", ALL, (True, False, 5), None, "K7Q2"),
    ("K7Q2是 否 5", ALL, (True, False, 5), None, "K7Q2"),
    ("是 否 5 #K7Q2", ALL, (True, False, 5), None, "K7Q2"),
    ("是 否 5 很好 #K7Q2", ALL, (True, False, 5), "很好", "K7Q2"),
    ("1是 2否 3 5", ALL, (True, False, 5), None, None),
    ("1.是 2.否 3.5分", ALL, (True, False, 5), None, None),
    ("1:Y 2:N 3:4 ok", ALL, (True, False, 4), None, None),  # "ok" is a courtesy, not a comment
    ("2否 3 4", (Q2, Q3), (None, False, 4), None, None),
    ("是", ALL, (True, None, None), None, None),
    ("是 谢谢", ALL, (True, None, None), None, None),
    ("否", (Q2, Q3), (None, False, None), None, None),
    ("1", (Q2, Q3), (None, True, None), None, None),
    ("5", (Q3,), (None, None, 5), None, None),
    ("5分", (Q3,), (None, None, 5), None, None),
    ("5 分", (Q3,), (None, None, 5), None, None),
    ("五", (Q3,), (None, None, 5), None, None),
    ("满分！", (Q3,), (None, None, 5), None, None),
    ("1", (Q3,), (None, None, 1), None, None),
    ("2 3", (Q2, Q3), (None, False, 3), None, None),
    ("N", ALL, (False, None, None), None, None),  # N is "no", never opt-out
    ("no", ALL, (False, None, None), None, None),
    ("No.", ALL, (False, None, None), None, None),
    ("是 否 5", [Q3, Q1, Q2, Q4], (True, False, 5), None, None),  # order of expecting does not matter
]


@pytest.mark.parametrize("text,expecting,values,comment,code", READABLE)
def test_readable_replies(text, expecting, values, comment, code):
    r = parse_reply(text, expecting)
    assert (r.answers.credentials, r.answers.improper, r.answers.fairness) == values
    assert r.comment == comment
    assert r.code == code
    assert not r.opt_out
    assert r.problems == () and r.readable and r.problem is None


UNREADABLE = [
    ("是否", ALL, (None, None, None), [Problem(Q1, AMB)]),
    ("是否5", ALL, (None, None, None), [Problem(Q1, AMB)]),
    ("是不是 5", ALL, (None, None, None), [Problem(Q1, AMB)]),
    ("否是5", ALL, (None, None, None), [Problem(Q1, AMB)]),  # two yes/no words need a separator
    ("有没 5", ALL, (None, None, None), [Problem(Q1, AMB)]),
    ("是或否", ALL, (None, None, None), [Problem(Q1, AMB)]),  # the prompt copied back
    ("是 有没有 5", ALL, (True, None, None), [Problem(Q2, AMB)]),  # nothing after the ambiguous word
    ("6", (Q3,), (None, None, None), [Problem(Q3, SC)]),
    ("0", (Q3,), (None, None, None), [Problem(Q3, SC)]),
    ("是", (Q3,), (None, None, None), [Problem(Q3, SC)]),
    ("3.5", (Q3,), (None, None, None), [Problem(Q3, MANY)]),
    ("10", (Q3,), (None, None, None), [Problem(Q3, MANY)]),
    ("6", ALL, (None, None, None), [Problem(Q1, YN)]),
    ("3 2 5", ALL, (None, False, 5), [Problem(Q1, YN)]),
    ("是 6 5", ALL, (True, None, 5), [Problem(Q2, YN)]),
    ("是 否 6", ALL, (True, False, None), [Problem(Q3, SC)]),
    ("是 否 是", ALL, (True, False, None), [Problem(Q3, SC)]),
    ("5分 否 5", ALL, (None, False, 5), [Problem(Q1, YN)]),  # a score is never a yes
    ("五 否 5", ALL, (None, False, 5), [Problem(Q1, YN)]),  # Chinese numerals only score
    ("7 8 9", ALL, (None, None, None), [Problem(Q1, YN), Problem(Q2, YN), Problem(Q3, SC)]),
    ("1 2 5 3", ALL, (None, None, None), [Problem(Q1, MANY)]),
    ("是 否 5 是", ALL, (None, None, None), [Problem(Q1, MANY)]),
    ("是 否 5", (Q2, Q3), (None, None, None), [Problem(Q2, MANY)]),  # an old answer again: no guessing
    ("1 1 2 2 3 5", ALL, (None, None, None), [Problem(Q1, MANY)]),  # digits-only labels are not labels
    ("是个好人", ALL, (None, None, None), [Problem(Q1, YN)]),
    ("好的", ALL, (None, None, None), [Problem(Q1, YN)]),
    ("态度很好 是 否 5", ALL, (None, None, None), [Problem(Q1, YN)]),  # answers come first
    ("", ALL, (None, None, None), [Problem(Q1, YN)]),
    ("   ", (Q3,), (None, None, None), [Problem(Q3, SC)]),
    ("👍👍", ALL, (None, None, None), [Problem(Q1, YN)]),
    ("yep", ALL, (None, None, None), [Problem(Q1, YN)]),
    ("yn4", ALL, (None, None, None), [Problem(Q1, YN)]),
    ("#K0Q2 1 2 5", ALL, (None, None, None), [Problem(Q1, CODE)]),
    ("#12 是 否 5", ALL, (None, None, None), [Problem(Q1, CODE)]),
]


@pytest.mark.parametrize("text,expecting,values,problems", UNREADABLE)
def test_unreadable_replies_name_the_question_and_what_is_expected(text, expecting, values, problems):
    r = parse_reply(text, expecting)
    assert (r.answers.credentials, r.answers.improper, r.answers.fairness) == values
    assert list(r.problems) == problems
    assert r.problem == problems[0] and not r.readable
    assert not r.opt_out


@pytest.mark.parametrize(
    "text",
    ["TD", "td", "Td", "T", "R", "r", "退订", "退訂", "退", "拒收", "取消", "STOP", "stop", "Stop!", "UNSUBSCRIBE",
     "quit", "opt-out", "ＴＤ", " TD。", "T D", "TD退订", "退订 TD", "#K7Q2 TD", "🙅 退订"],
)  # fmt: skip
def test_opt_out_is_the_whole_message(text):
    r = parse_reply(text, ALL)
    assert r.opt_out and r.answers == Answers() and r.problems == ()


@pytest.mark.parametrize("text", ["N", "n", "no", "TD 是", "是 否 5 TD", "请退订", "TDD", "tend", "STOPP", "T N"])
def test_not_opt_out(text):
    assert not parse_reply(text, ALL).opt_out


def test_opt_out_keywords_are_stored_normalised():
    assert all(k == k.casefold() and k.isalnum() for k in OPT_OUT_KEYWORDS)
    assert "n" not in OPT_OUT_KEYWORDS and "no" not in OPT_OUT_KEYWORDS


def test_nothing_open_makes_everything_a_comment():
    r = parse_reply("  是 否 5 谢谢  ", ())
    assert r.answers == Answers(comment="是 否 5 谢谢") and r.problems == ()
    assert parse_reply("", ()).answers == Answers()
    assert parse_reply("#K7Q2 后来又想到一件事", [Q4]).answers == Answers(comment="后来又想到一件事")
    assert parse_reply("#K7Q2 后来又想到一件事", [Q4]).code == "K7Q2"


def test_comment_keeps_the_original_text_and_is_capped_and_cleaned():
    r = parse_reply("１ ２ ５ ＡＢＣ，很好\x00\x07\ud800", ALL)
    assert r.comment == "ＡＢＣ，很好"  # original full-width text, controls and surrogates removed
    long = parse_reply("是 否 5 " + "很" * 2000, ALL)
    assert long.comment == "很" * COMMENT_MAX_CHARS
    assert parse_reply("是 否 5 \r\n第一行\r\n第二行", ALL).comment == "第一行\n第二行"


def test_a_single_question_can_be_passed_alone_and_duplicates_are_a_programming_error():
    assert parse_reply("4", Q3).answers.fairness == 4
    with pytest.raises(ValueError):
        parse_reply("4", [Q3, Q3])


# --- survey codes and routing -------------------------------------------------------------


def test_codes_are_short_unambiguous_and_deterministic():
    codes = {make_code(i.to_bytes(4, "big")) for i in range(2000)}
    assert len(codes) > 1900  # few clashes in 2000 draws out of 211,392 codes
    for c in codes:
        assert is_code(c) and len(c) == 4 and c[0].isalpha()
        assert not set(c) & set("01OIL NYAEU")
        assert any(ch.isdigit() for ch in c)
    assert make_code(b"x") == make_code(b"x")
    assert not is_code("STOP") and not is_code("K0Q2") and not is_code("7KQ2") and not is_code("BCDF")


@given(st.binary(max_size=16))
def test_every_made_code_is_read_back(entropy):
    code = make_code(entropy)
    assert parse_reply(f"{code} 1 2 5", ALL).code == code
    assert parse_reply(f"#{code.lower()} 是 否 5", ALL).code == code
    assert parse_reply(f"是 否 5 #{code}", ALL).code == code


def test_route_reply():
    assert route_reply(None, ["K7Q2"]) == Routing("K7Q2")
    assert route_reply("k7q2", ["B2C3", "K7Q2"]) == Routing("K7Q2")
    assert route_reply(None, ["B2C3", "K7Q2"]) == Routing(None, "which_inspection")
    assert route_reply("Z9Z9", ["K7Q2"]) == Routing(None, "unknown_code")
    assert route_reply(None, []) == Routing(None, "none_open")


# --- parse_reply: properties ----------------------------------------------------------------

LEXICON = [
    "是", "否", "是的", "不是", "有", "没有", "无", "不", "对", "是否", "有没有", "分", "满分", "五", "一",
    "y", "n", "Y", "N", "yes", "no", "TD", "T", "R", "退订", "STOP", "#", "＃", "K7Q2", "k7q2", "B2C3",
    "1", "2", "3", "4", "5", "6", "0", "１", "⑤", "½", "⑩", " ", "  ", ",", "，", "、", ".", "。", "\n", "\t",
    "👍", "😀", "\u200d", "\ufe0f", "\u20e3", "\x00", "\ud800", "\u0301", "很好", "好", "态度", "é", "ǅ", "İ", "ß",
]  # fmt: skip
lexical_text = st.lists(st.one_of(st.sampled_from(LEXICON), st.characters(exclude_categories=())), max_size=30).map(
    "".join
)
any_text = st.one_of(st.text(st.characters(exclude_categories=()), max_size=200), lexical_text)
expecting_sets = st.lists(st.sampled_from(list(Question)), unique=True)


@settings(max_examples=400)
@given(any_text, expecting_sets)
def test_arbitrary_unicode_never_raises_and_the_result_is_well_formed(text, expecting):
    r = parse_reply(text, expecting)
    open_ = [q for q in expecting if q is not Q4]
    for q in REQUIRED:
        if q not in open_:
            assert r.answers.get(q) is None
    assert r.answers.fairness is None or 1 <= r.answers.fairness <= 5
    if r.opt_out:
        assert r.answers == Answers() and r.problems == ()
    for p in r.problems:
        assert p.question in open_ or (p.question is None and not open_)
    if r.comment is not None:
        assert 0 < len(r.comment) <= COMMENT_MAX_CHARS
        r.comment.encode("utf-8")  # storable: no lone surrogates
        assert "\x00" not in r.comment and r.comment == r.comment.rstrip()
    if r.code is not None:
        assert is_code(r.code) and r.code == r.code.upper()


YES_FORMS = ["是", "是的", "对", "对的", "有", "有的", "Y", "y", "yes", "Yes", "YES", "1"]
NO_FORMS = ["否", "不是", "不", "不对", "没有", "沒有", "没", "无", "N", "n", "no", "No", "NO", "2"]
SEPARATORS = [" ", "  ", ",", "，", "、", ";", "；", "/", "\n", " 👍 ", "。", "|", "-", "\u3000", "~", " , "]
NUMERALS = "一二三四五"


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in text)


@st.composite
def valid_replies(draw):
    """A valid reply to a random non-empty set of open questions, in any of the accepted
    forms, and the answers it must parse to."""
    open_ = draw(
        st.lists(st.sampled_from(REQUIRED), min_size=1, unique=True).map(lambda qs: sorted(qs, key=lambda q: q.number))
    )
    values = {}
    tokens = []
    for q in open_:
        if q is Q3:
            v = draw(st.integers(1, 5))
            form = draw(st.sampled_from(["digit", "points", "numeral", "numeral_points", "circled"]))
            tok = {"digit": str(v), "points": f"{v}分", "numeral": NUMERALS[v - 1],
                   "numeral_points": NUMERALS[v - 1] + "分", "circled": chr(0x2460 + v - 1)}[form]  # fmt: skip
            if v == 5 and draw(st.booleans()):
                tok = "满分"
        else:
            v = draw(st.booleans())
            tok = draw(st.sampled_from(YES_FORMS if v else NO_FORMS))
            tok = draw(st.sampled_from([tok, tok.upper(), tok.lower(), tok.swapcase()]))
        values[q.value] = v
        tokens.append(tok)
    labelled = (
        len(open_) >= 2
        and all(t not in ("1", "2") for q, t in zip(open_, tokens) if q is not Q3)
        and draw(st.booleans())
    )
    if labelled:
        tokens = [f"{q.number}{draw(st.sampled_from(['', '.', ':', '、', ' ']))}{t}" for q, t in zip(open_, tokens)]
    compact = not labelled and all(t.isdigit() and len(t) == 1 for t in tokens) and draw(st.booleans())
    if compact:
        text = "".join(tokens)
    else:
        text = tokens[0] + "".join(draw(st.sampled_from(SEPARATORS)) + t for t in tokens[1:])
    code = draw(st.sampled_from([None, "K7Q2", "B2C3"]))
    if code:
        glued = [f"#{code}"] if not ("a" <= text[0].lower() <= "z" or text[0].isdigit()) else []
        text = draw(st.sampled_from([f"{code} ", f"#{code} ", f"{code.lower()}  ", *glued])) + text
    text = draw(st.sampled_from(["", " ", "👍", "\n"])) + text + draw(st.sampled_from(["", " ", "。", "!", "👍"]))
    if draw(st.booleans()):
        text = _full_width(text)
    return text, open_, Answers(**values), code


@settings(max_examples=400)
@given(valid_replies())
def test_every_valid_form_parses_to_the_same_answers(case):
    text, open_, answers, code = case
    r = parse_reply(text, open_)
    assert r.problems == (), text
    assert replace(r.answers, comment=None) == answers, text
    assert r.code == code
    assert not r.opt_out


COMMENT_STARTS = [
    "态度很好",
    "很满意",
    "Good",
    "检查2人",
    "备注",
    "ok",
    "谢谢",
    "他们没有要任何东西",
    "5很好",
    "yesterday",
    "不错",
]


@settings(max_examples=200)
@given(valid_replies(), st.sampled_from(COMMENT_STARTS), st.text(st.characters(exclude_categories=()), max_size=80),
       st.sampled_from([" ", "，", "\n", "。", "! "]))  # fmt: skip
def test_a_comment_never_changes_the_answers(case, start, rest, sep):
    text, open_, answers, code = case
    r = parse_reply(text + sep + start + rest, open_)
    assert r.problems == ()
    assert replace(r.answers, comment=None) == answers
    if is_courtesy(start + rest):  # "ok", "谢谢": politeness is never stored as a comment
        assert r.comment is None
    else:
        assert r.comment is not None and start in r.comment


# --- the survey state machine -------------------------------------------------------------

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=SHANGHAI)


def reply(state, text, at):
    return step(state, parse_reply(text, state.open_questions), at)


def test_all_at_once_completes_and_thanks():
    s, actions = reply(new_survey(T0), "是 否 5 很好", T0 + timedelta(hours=1))
    assert s.status is Status.COMPLETE and s.answers == Answers(True, False, 5, "很好")
    assert actions == (Thank(ThankKind.COMPLETE),)
    assert s.closed_at == T0 + timedelta(hours=1)


def test_one_answer_per_sms_asks_the_next_question():
    s = new_survey(T0)
    s, a = reply(s, "是", T0 + timedelta(minutes=1))
    assert a == (AskQuestion(Q2),)
    s, a = reply(s, "否", T0 + timedelta(minutes=2))
    assert a == (AskQuestion(Q3),)
    s, a = reply(s, "4", T0 + timedelta(minutes=3))
    assert a == (Thank(ThankKind.COMPLETE),) and s.answers == Answers(True, False, 4)


def test_two_clarifications_per_question_then_incomplete():
    s = new_survey(T0)
    s, a = reply(s, "是 否 8", T0)
    assert a == (Clarify(Q3, SC, 1),) and s.answers == Answers(True, False)
    s, a = reply(s, "很好", T0)
    assert a == (Clarify(Q3, SC, 2),)
    s, a = reply(s, "非常好", T0 + timedelta(minutes=5))
    assert s.status is Status.INCOMPLETE and a == (Thank(ThankKind.INCOMPLETE),)
    assert s.closed_at == T0 + timedelta(minutes=5)
    s, a = reply(s, "还是很好", T0)
    assert a == (Thank(ThankKind.COMMENT),)  # never asks again; the comment is kept and said to be
    s, a = reply(s, "5", T0 + timedelta(minutes=9))  # but a late good answer still completes it
    assert s.status is Status.COMPLETE and a == (Thank(ThankKind.COMPLETE),)


def test_clarifications_are_counted_per_question():
    s = new_survey(T0)
    s, a = reply(s, "是否", T0)
    assert a == (Clarify(Q1, AMB, 1),)
    s, a = reply(s, "是 否 9", T0)
    assert a == (Clarify(Q3, SC, 1),)
    s, a = reply(s, "0", T0)
    assert a == (Clarify(Q3, SC, 2),)
    assert s.clarifications == {Q1: 1, Q3: 2}


def test_alerts_are_raised_at_once_and_only_once():
    s = new_survey(T0)
    s, a = reply(s, "是 是", T0)
    assert a == (RaiseAlert(("improper",), Answers(True, True)), AskQuestion(Q3))
    s, a = reply(s, "1 很差", T0)
    assert a == (RaiseAlert(("unfair",), Answers(True, True, 1, "很差")), Thank(ThankKind.COMPLETE))
    assert s.alerted == {"improper", "unfair"}


def test_no_credentials_is_not_an_alert():
    s, a = reply(new_survey(T0), "否 否 5", T0)
    assert a == (Thank(ThankKind.COMPLETE),)


def test_opt_out_in_any_state_is_confirmed_once():
    for prior in ("", "是", "是 否 5"):
        s = new_survey(T0)
        if prior:
            s, _ = reply(s, prior, T0)
        s, a = reply(s, "TD", T0 + timedelta(hours=1))
        assert s.status is Status.OPTED_OUT and a == (OptOutEntity(), ConfirmOptOut())
        s, a = reply(s, "退订", T0 + timedelta(hours=2))
        assert a == ()
        s, a = reply(s, "1 2 很好", T0 + timedelta(hours=3))  # answers after opting out are kept silently
        assert all(isinstance(x, RaiseAlert) for x in a) and s.status is Status.OPTED_OUT
        assert s.answers.comment.endswith("很好")


def test_comment_after_completion_is_kept_and_acknowledged():
    s, _ = reply(new_survey(T0), "1 2 5", T0)
    s, a = reply(s, "补充：他们还检查了消防通道", T0 + timedelta(days=1))
    assert a == (Thank(ThankKind.COMMENT),) and s.answers.comment == "补充：他们还检查了消防通道"
    assert s.answers.fairness == 5 and s.status is Status.COMPLETE


@pytest.mark.parametrize("text", ["谢谢", "谢谢！", "好的，谢谢", "OK", "thank you", "👍", "收到。", "谢谢谢谢"])
def test_thanks_after_completion_is_answered_not_stored(text):
    s, _ = reply(new_survey(T0), "1 2 5 很好", T0)
    s, a = reply(s, text, T0 + timedelta(hours=1))
    assert a == (Thank(ThankKind.COURTESY),) and s.answers.comment == "很好"


def test_acknowledgements_are_capped_so_an_auto_responder_cannot_loop():
    s, _ = reply(new_survey(T0), "1 2 5", T0)
    said = []
    for i in range(MAX_ACKNOWLEDGEMENTS + 3):
        s, a = reply(s, "谢谢" if i % 2 else f"意见{i}", T0 + timedelta(minutes=i + 1))
        said += a
    assert len(said) == MAX_ACKNOWLEDGEMENTS
    assert s.answers.comment.startswith("意见0") and "谢谢" not in s.answers.comment


def test_a_first_sms_without_answers_keeps_its_text_as_the_comment():
    s, a = reply(new_survey(T0), "检查人员态度很好，很专业", T0)
    assert s.answers.comment == "检查人员态度很好，很专业" and a == (Clarify(Q1, YN, 1),)
    s, a = reply(s, "好的", T0)  # a courtesy while asked: asked again, not stored
    assert s.answers.comment == "检查人员态度很好，很专业" and a == (Clarify(Q1, YN, 2),)
    s, a = reply(s, "是 否 5", T0)
    assert s.status is Status.COMPLETE and s.answers.comment == "检查人员态度很好，很专业"


def test_late_reply_is_recorded_and_thanked_once():
    s = new_survey(T0)
    late = T0 + timedelta(days=7, seconds=1)
    s, a = reply(s, "是 是 2", late)
    assert s.status is Status.EXPIRED and s.late
    assert s.answers == Answers(True, True, 2)
    assert a == (RaiseAlert(("improper", "unfair"), Answers(True, True, 2)), Thank(ThankKind.LATE))
    s, a = reply(s, "补充说明", late + timedelta(hours=1))
    assert a == () and s.answers.comment == "补充说明"
    s2, a2 = reply(new_survey(T0), "乱码", late)
    assert s2.late and a2 == (Thank(ThankKind.LATE),)  # no clarification after expiry


def test_exactly_at_expiry_is_late():
    s, a = reply(new_survey(T0), "1 2 5", expires_at(T0))
    assert s.status is Status.EXPIRED and a == (Thank(ThankKind.LATE),)
    s, a = reply(new_survey(T0), "1 2 5", expires_at(T0) - timedelta(microseconds=1))
    assert s.status is Status.COMPLETE


def test_reminder_once_in_allowed_hours_then_expiry():
    sent = datetime(2026, 12, 1, 19, 30, tzinfo=SHANGHAI)
    s = new_survey(sent)
    assert tick(s, sent + timedelta(hours=47))[1] == ()
    due = reminder_at(sent)
    assert due == datetime(2026, 12, 3, 19, 30, tzinfo=SHANGHAI)
    assert next_due(s) == due
    s, a = tick(s, due)
    assert a == (SendReminder(REQUIRED),) and s.reminded_at == due
    assert tick(s, due + timedelta(hours=1))[1] == ()
    assert next_due(s) == expires_at(sent)
    s, a = tick(s, expires_at(sent))
    assert s.status is Status.EXPIRED and a == () and next_due(s) is None


def test_reminder_moved_out_of_quiet_hours_names_the_open_questions():
    sent = datetime(2026, 12, 1, 21, 30, tzinfo=SHANGHAI)  # e.g. sent late by hand
    s, _ = reply(new_survey(sent), "是", sent)
    assert reminder_at(sent) == datetime(2026, 12, 4, 8, 0, tzinfo=SHANGHAI)
    assert tick(s, datetime(2026, 12, 3, 23, 0, tzinfo=SHANGHAI))[1] == ()
    s, a = tick(s, datetime(2026, 12, 4, 8, 0, tzinfo=SHANGHAI))
    assert a == (SendReminder((Q2, Q3)),)


def test_a_late_tick_in_quiet_hours_waits_for_the_morning():
    s = new_survey(T0)
    night = datetime(2026, 12, 3, 23, 0, tzinfo=SHANGHAI)  # after the 48 h mark, but at night
    assert tick(s, night)[1] == ()
    assert tick(s, night + timedelta(hours=9))[1] == (SendReminder(REQUIRED),)


def test_no_reminder_for_a_closed_survey():
    s, _ = reply(new_survey(T0), "1 2 5", T0)
    assert tick(s, T0 + timedelta(days=3)) == (s, ())
    assert next_due(s) is None


def test_naive_times_are_refused():
    with pytest.raises(ValueError):
        new_survey(datetime(2026, 12, 1))
    with pytest.raises(ValueError):
        step(new_survey(T0), ParseResult(), datetime(2026, 12, 1))
    with pytest.raises(ValueError):
        next_allowed_send(datetime(2026, 12, 1))


conversation = st.lists(
    st.tuples(st.one_of(lexical_text, st.sampled_from(["是", "否", "5", "是 否 5", "TD", "6", "是否", "很好"])),
              st.integers(0, 3 * 24 * 60)),  # minutes until this reply
    max_size=12,
)  # fmt: skip


@settings(max_examples=150)
@given(conversation)
def test_the_state_machine_never_asks_more_than_twice_per_question(messages):
    s, at = new_survey(T0), T0
    clarified: Counter = Counter()
    confirmations = 0
    raised: list[str] = []
    for text, minutes in messages:
        at += timedelta(minutes=minutes)
        was_closed, before = s.status.closed, s.answers
        s, actions = reply(s, text, at)
        for a in actions:
            if isinstance(a, Clarify):
                clarified[a.question] += 1
                assert a.attempt == clarified[a.question]
            if isinstance(a, (Clarify, AskQuestion)):
                assert not was_closed and s.status is Status.OPEN
            confirmations += isinstance(a, ConfirmOptOut)
            if isinstance(a, RaiseAlert):
                raised.extend(a.reasons)
        for q in REQUIRED:  # an answer once recorded is never overwritten
            assert before.get(q) is None or s.answers.get(q) == before.get(q)
        assert (s.status is Status.COMPLETE) <= (not s.answers.open())
        assert s.status.closed == (s.closed_at is not None)
    assert all(n <= MAX_CLARIFICATIONS for n in clarified.values())
    assert confirmations <= 1
    assert len(raised) == len(set(raised))
    assert set(raised) == set(alert_reasons(s.answers))


# --- sampling -------------------------------------------------------------------------------

SEED = bytes(range(32))


def test_rank_is_the_documented_formula():
    digest = hashlib.sha256(SEED + b"survey" + b"\x00" + b"P0042/2026-12-01/17").digest()
    assert rank(SEED, "P0042/2026-12-01/17") == int.from_bytes(digest[:8], "big")


def test_default_shares_survey_all_of_d_and_e_and_a_third_of_the_rest():
    pool = [Candidate(f"P1/{i}", "ABCDE"[i % 5]) for i in range(100)]
    chosen = sample(pool, DEFAULT_SHARES, SEED)
    by = Counter(c.stratum for c in chosen)
    assert by == {"A": 7, "B": 7, "C": 7, "D": 20, "E": 20}  # ceil(20/3) = 7
    ranks = [(rank(SEED, c.key), c.key) for c in chosen]
    assert ranks == sorted(ranks)
    for s in "ABC":  # the smallest ranks of each stratum
        stratum = sorted((rank(SEED, c.key), c.key) for c in pool if c.stratum == s)
        assert {k for _, k in stratum[:7]} == {c.key for c in chosen if c.stratum == s}


@given(st.integers(0, 500), st.integers(0, 60), st.integers(1, 60))
def test_quota_is_exact_ceil(n, a, b):
    a = min(a, b)
    assert quota(n, Fraction(a, b)) == min(n, -(-n * a // b))
    assert quota(n, f"{a}/{b}") == quota(n, Fraction(a, b))


@given(st.integers(0, 500), st.integers(0, 10000))
def test_quota_of_decimal_strings_is_exact(n, hundredths):
    p = Decimal(hundredths) / 10000
    assert quota(n, str(p)) == quota(n, p) == min(n, -(-n * hundredths // 10000))


def test_quota_examples_and_bad_shares():
    assert quota(3, "1/3") == 1 and quota(4, "1/3") == 2 and quota(10, "0.1") == 1 and quota(11, "0.1") == 2
    assert quota(7, "0") == 0 and quota(7, "1") == 7 and quota(0, "1/3") == 0
    for bad in (0.1, "1.5", "-0.1", "abc", "1/0", True, None, "nan"):
        with pytest.raises(ValueError):
            share(bad)
    with pytest.raises(ValueError):
        sample([Candidate("a", "F")], {"A": "1"}, SEED)  # no share for F, no "*"
    with pytest.raises(ValueError):
        sample([Candidate("a", "A"), Candidate("a", "B")], DEFAULT_SHARES, SEED)


@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=8), st.sampled_from("ABCDE")), unique_by=lambda t: t[0], max_size=60
    ),
    st.binary(min_size=32, max_size=32),
    st.sampled_from(["0", "1/3", "0.05", "1/2", "1"]),
)
def test_sampling_is_deterministic_exact_and_order_free(items, seed, other):
    pool = [Candidate(k, s) for k, s in items]
    shares = {"E": "1", "*": other}
    chosen = sample(pool, shares, seed)
    assert chosen == sample(list(reversed(pool)), shares, seed)
    sizes = Counter(c.stratum for c in pool)
    got = Counter(c.stratum for c in chosen)
    for s, n in sizes.items():
        assert got[s] == quota(n, shares.get(s, other))


def test_sampling_is_about_uniform():
    pool = [Candidate(f"P9/{i}", "B") for i in range(30)]
    hits = Counter()
    for i in range(1200):
        hits.update(c.key for c in sample(pool, DEFAULT_SHARES, i.to_bytes(32, "big")))
    # each inspection is surveyed in 10 of 30 places: expected 400 of 1200 draws, sd ≈ 16
    assert all(320 <= hits[c.key] <= 480 for c in pool), hits
    assert sum(hits.values()) == 1200 * 10


# --- quiet hours ----------------------------------------------------------------------------

ZONES = [SHANGHAI, ZoneInfo("UTC"), ZoneInfo("America/New_York"), ZoneInfo("Europe/London"),
         ZoneInfo("Australia/Lord_Howe"), ZoneInfo("America/Havana"), ZoneInfo("Asia/Kolkata")]  # fmt: skip
WINDOWS = [QUIET_HOURS, (time(22, 0), time(7, 0)), (time(0, 30), time(1, 30)), (time(1, 30), time(0, 30)),
           (time(23, 0), time(0, 30)), (time(12, 0), time(12, 0))]  # fmt: skip


@settings(max_examples=300)
@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)),
    st.sampled_from(ZONES),
    st.sampled_from(WINDOWS),
)
def test_next_allowed_send_is_allowed_not_earlier_and_the_earliest(now, tz, quiet):
    out = next_allowed_send(now, tz, quiet)
    assert out >= now
    assert not is_quiet(out, tz, quiet)
    assert out.tzinfo is tz
    # Compared in UTC: PEP 495 makes == between zones False for an ambiguous wall time (a
    # repeated hour), even at the same instant.
    if out.astimezone(UTC) != now:  # waited: the instant before was still quiet
        assert is_quiet(now, tz, quiet)
        assert is_quiet(out.astimezone(UTC) - timedelta(microseconds=1), tz, quiet)


def test_quiet_hours_examples_in_shanghai():
    def at(d, h, m=0):
        return datetime(2026, 12, d, h, m, tzinfo=SHANGHAI)

    assert next_allowed_send(at(1, 19, 59)) == at(1, 19, 59)
    assert next_allowed_send(at(1, 20, 0)) == at(2, 8, 0)
    assert next_allowed_send(at(2, 3, 0)) == at(2, 8, 0)
    assert next_allowed_send(at(2, 7, 59)) == at(2, 8, 0)
    assert next_allowed_send(at(2, 8, 0)) == at(2, 8, 0)
    assert next_allowed_send(datetime(2026, 12, 1, 13, 0, tzinfo=UTC)) == at(2, 8, 0)  # 21:00 local
    assert expires_at(at(1, 10)) == at(8, 10)


def test_the_end_of_quiet_hours_in_a_daylight_saving_gap():
    ny = ZoneInfo("America/New_York")  # 2026-03-08 02:00 EST → 03:00 EDT
    out = next_allowed_send(datetime(2026, 3, 8, 1, 0, tzinfo=ny), ny, (time(0, 0), time(2, 30)))
    assert out == datetime(2026, 3, 8, 3, 0, tzinfo=ny)  # the moment the clocks jump


# --- alerts, scores, anonymity --------------------------------------------------------------


def test_alert_reasons():
    assert alert_reasons(Answers(True, True, 5)) == ("improper",)
    assert alert_reasons(Answers(True, False, 2)) == ("unfair",)
    assert alert_reasons(Answers(False, True, 1)) == ("improper", "unfair")
    assert alert_reasons(Answers(False, False, 3)) == ()  # no credentials only lowers the score
    assert alert_reasons(Answers()) == ()


NOW = datetime(2026, 12, 31, 12, 0, tzinfo=SHANGHAI)
WINDOW = timedelta(days=90)


def resp(i, team, answers, days_ago=1.0, late=False):
    return Response(f"s{i}", team, NOW - timedelta(days=days_ago), answers, late)


def test_score_formula_and_shrinkage():
    scores = integrity_scores([resp(1, ("a", "b"), Answers(True, True, 5))], WINDOW, NOW)
    assert scores["a"] == scores["b"] == Score(1, 85.0, 1, 0, 0, 5.0, 1)  # 100 − 60·1/(1+3)
    clean = integrity_scores([resp(i, ("c",), Answers(True, False, 5)) for i in range(10)], WINDOW, NOW)
    assert clean["c"].score == 100.0
    worst = integrity_scores([resp(i, ("d",), Answers(False, True, 1)) for i in range(97)], WINDOW, NOW)["d"]
    assert worst.score == 3.0  # 100 − 100·97/100
    mixed = [resp(1, ("e",), Answers(False, False, 3)), resp(2, ("e",), Answers(True, None, 4)),
             resp(3, ("e",), Answers(None, None, None, "only a comment"))]  # fmt: skip
    e = integrity_scores(mixed, WINDOW, NOW)["e"]
    # C = 1/(2+3), I = 0/(1+3), U = (2/4 + 1/4)/(2+3): 100 − 20/5 − 0 − 20·0.15 = 93
    assert e == Score(2, 93.0, 0, 1, 0, 3.5, 0)


def test_scores_use_the_window_and_count_each_survey_once():
    rs = [resp(1, ("a",), Answers(True, True, 5), days_ago=91), resp(2, ("a",), Answers(True, False, 5), days_ago=0),
          resp(3, ("a",), Answers(True, True, 5), days_ago=-1), resp(4, ("a", "a"), Answers(True, False, 5), late=True)]  # fmt: skip
    assert integrity_scores(rs, WINDOW, NOW)["a"].n == 2
    assert integrity_scores([], WINDOW, NOW) == {}
    with pytest.raises(ValueError):
        integrity_scores([rs[1], rs[1]], WINDOW, NOW)


@given(st.lists(st.tuples(st.sampled_from([None, True, False]), st.sampled_from([None, True, False]),
                          st.sampled_from([None, 1, 2, 3, 4, 5])), max_size=40))  # fmt: skip
def test_scores_stay_between_0_and_100_and_bad_answers_never_raise_them(rows):
    rs = [resp(i, ("x",), Answers(*row)) for i, row in enumerate(rows)]
    got = integrity_scores(rs, WINDOW, NOW).get("x")
    if got is None:
        assert all(row == (None, None, None) for row in rows)
        return
    assert 0 <= got.score <= 100
    worse = integrity_scores(rs + [resp(999, ("x",), Answers(False, True, 1))], WINDOW, NOW)["x"]
    assert worse.score <= got.score


def test_publishable_needs_five_responses():
    assert not publishable(Score(4, 90.0, 0, 0, 0, 4.5, 0))
    assert publishable(Score(5, 90.0, 0, 0, 0, 4.5, 0))
