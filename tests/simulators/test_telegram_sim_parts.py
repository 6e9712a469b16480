"""The simulator's pure parts: Telegram HTML, entity detection, the spec checker, flood buckets."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulators.telegram.entities import EntityParseError, detect_entities, parse_html, utf16_len
from simulators.telegram.errors import ApiError
from simulators.telegram.flood import FloodControl, FloodLimits, FloodStats
from simulators.telegram.media import image_size, make_png, photo_sizes
from simulators.telegram.spec import BotApiSpec, Upload

# Cases from TDLib's own test of parse_html (test/message_entities.cpp), which the Bot API runs.
HTML_ERRORS = [
    ("🏟 🏟&lt;<abacaba", "Unclosed start tag at byte offset 13"),
    ("🏟 🏟&lt;<abac aba>", 'Unsupported start tag "abac" at byte offset 13'),
    ("🏟 🏟&lt;<i   =aba>", 'Empty attribute name in the tag "i" at byte offset 13'),
    ("🏟 🏟&lt;<i    aba>", 'Expected equal sign in declaration of an attribute of the tag "i" at byte offset 13'),
    ("🏟 🏟&lt;<i    aba  =  ", 'Unclosed start tag "i" at byte offset 13'),
    ("🏟 🏟&lt;<i    aba  =  190azAz-.,", "Unexpected end of name token at byte offset 27"),
    ('🏟 🏟&lt;<i    aba  =  "&lt;&gt;&quot;>', "Unclosed start tag at byte offset 13"),
    ("🏟 🏟&lt;</", "Unexpected end tag at byte offset 13"),
    ("🏟 🏟&lt;<b></b></", "Unexpected end tag at byte offset 20"),
    ("🏟 🏟&lt;<i>a</i   ", "Unclosed end tag at byte offset 17"),
    ("🏟 🏟&lt;<i>a</em   >", 'Unmatched end tag at byte offset 17, expected "</i>", found "</em>"'),
    ("a < b", 'Unsupported start tag "" at byte offset 2'),
    ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
    ('<tg-emoji emoji-id="x">y</tg-emoji>', "Invalid custom emoji identifier specified"),
    (
        "&#57311;",
        "Text contains invalid Unicode characters after decoding HTML entities, check for unmatched "
        "surrogate code units",
    ),
]
HTML_OK = [
    ("&lt;&gt;&amp;&quot;&laquo;&raquo;&#12345678;", '<>&"&laquo;&raquo;&#12345678;', []),
    ("➡️ ➡️<i>➡️ ➡️</i>", "➡️ ➡️➡️ ➡️", [("italic", 5, 5)]),
    ("➡️ ➡️<strong>➡️ ➡️</strong>", "➡️ ➡️➡️ ➡️", [("bold", 5, 5)]),
    ("🏟 🏟<i>🏟 &gt;<b aba   =   caba>&lt🏟</b></i>", "🏟 🏟🏟 ><🏟", [("italic", 5, 7), ("bold", 9, 3)]),
    ("🏟 🏟&lt;<i    aba  =  '&lt;&gt;&quot;'>a</>", "🏟 🏟<a", [("italic", 6, 1)]),
    ("🏟 🏟&lt;<b></b>", "🏟 🏟<", []),
    ("<a href=telegram.org> </a>", " ", [("text_link", 0, 1)]),
    ("<a>telegram.org</a>", "telegram.org", [("text_link", 0, 12)]),
    ("<a> </a>", " ", []),
    ("🏟 🏟&lt;<pre><code>🏟 🏟&lt;</code></>", "🏟 🏟<🏟 🏟<", [("pre", 6, 6), ("code", 6, 6)]),
    ('🏟 🏟&lt;<pre><code class="language-fift">🏟 🏟&lt;</></>', "🏟 🏟<🏟 🏟<", [("pre", 6, 6)]),
    ('🏟 🏟&lt;<pre><code class="language-fift">🏟 🏟&lt;</> </>', "🏟 🏟<🏟 🏟< ", [("pre", 6, 7), ("code", 6, 6)]),
    ("<blockquote expandable>x</blockquote>", "x", [("expandable_blockquote", 0, 1)]),
    ('<span class="tg-spoiler">x</span><tg-spoiler>y</tg-spoiler>', "xy", [("spoiler", 0, 1), ("spoiler", 1, 1)]),
]


@pytest.mark.parametrize(("html", "message"), HTML_ERRORS)
def test_html_errors_are_tdlibs(html, message):
    with pytest.raises(EntityParseError) as err:
        parse_html(html)
    assert str(err.value) == message


@pytest.mark.parametrize(("html", "text", "entities"), HTML_OK)
def test_html_entities_are_tdlibs(html, text, entities):
    plain, found = parse_html(html)
    assert (plain, [(e["type"], e["offset"], e["length"]) for e in found]) == (text, entities)


def test_html_links_and_languages_are_normalised():
    assert parse_html("<a href=telegram.org>t</a>")[1][0]["url"] == "http://telegram.org/"
    assert parse_html('<pre><code class="language-python">x</code></pre>')[1] == [
        {"offset": 0, "length": 1, "type": "pre", "language": "python"}
    ]
    assert parse_html('<code class="language-python">x</code>')[1] == [{"offset": 0, "length": 1, "type": "code"}]


@given(st.text(alphabet=st.characters(blacklist_characters="<>&", blacklist_categories=("Cs",)), max_size=40))
def test_html_without_markup_is_the_text_itself(text):
    assert parse_html(text) == (text, [])


@given(
    st.text(alphabet=st.characters(blacklist_characters="<>&", blacklist_categories=("Cs",)), min_size=1, max_size=20),
    st.sampled_from(["b", "i", "u", "s", "code", "tg-spoiler"]),
)
def test_html_entity_offsets_are_utf16(inner, tag):
    plain, entities = parse_html(f"前😀<{tag}>{inner}</{tag}>")
    assert plain == f"前😀{inner}"
    assert entities[0]["offset"] == 3 and entities[0]["length"] == utf16_len(inner)


def test_detected_entities_match_what_clients_send():
    assert detect_entities("/start INV-1") == [{"offset": 0, "length": 6, "type": "bot_command"}]
    assert detect_entities("Привет 👋 see https://example.org and 你好") == [
        {"offset": 14, "length": 19, "type": "url"}
    ]
    assert [e["type"] for e in detect_entities("hi @alice_x /help@some_bot #tag")] == [
        "mention",
        "bot_command",
        "hashtag",
    ]
    assert detect_entities("a/b and 1/2") == []


# -- the spec checker -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec():
    return BotApiSpec.load()


def test_spec_is_bot_api_10_with_case_insensitive_methods(spec):
    assert spec.version == "Bot API 10.0"
    assert spec.method("SENDMESSAGE").name == "sendMessage"
    assert spec.method("sendMessages") is None


def test_decode_call_types_values_the_way_the_server_reads_them(spec):
    decoded = spec.decode_call(
        spec.method("sendPhoto"),
        {
            "chat_id": "-100123",
            "caption": "x",
            "disable_notification": "true",
            "photo": "attach://pic",
            "reply_markup": json.dumps({"remove_keyboard": True}),
        },
        {"pic": Upload("p.png", "image/png", b"...")},
    )
    assert decoded["chat_id"] == -100123 and decoded["disable_notification"] is True
    assert isinstance(decoded["photo"], Upload) and decoded["reply_markup"] == {"remove_keyboard": True}
    assert (
        spec.decode_call(spec.method("sendMessage"), {"chat_id": "@channel", "text": "t"}, {})["chat_id"] == "@channel"
    )


@pytest.mark.parametrize(
    ("method", "params", "fragment"),
    [
        ("sendLocation", {"chat_id": "1", "latitude": "north", "longitude": "1"}, '"latitude" must be a Float'),
        ("setWebhook", {"url": "https://x", "certificate": "some-id"}, '"certificate" must be an uploaded file'),
        (
            "setMyCommands",
            {"commands": json.dumps([{"command": "a"}])},
            'field "description" of BotCommand is required',
        ),
        (
            "setMyCommands",
            {"commands": "[]", "scope": json.dumps({"type": "nope"})},
            "is not any of BotCommandScopeDefault",
        ),
        (
            "sendPoll",
            {"chat_id": "1", "question": "q", "options": json.dumps(["a", "b"])},
            "must be an Object (InputPollOption)",
        ),
        ("getUpdates", {"allowed_updates": json.dumps("message")}, "must be an Array"),
        (
            "sendMessage",
            {"chat_id": "1", "text": "x", "reply_markup": json.dumps({"keyboard": "x"})},
            'field "keyboard" of ReplyKeyboardMarkup must be an Array',
        ),
    ],
)
def test_decode_call_refuses_wrong_types(spec, method, params, fragment):
    with pytest.raises(ApiError) as err:
        spec.decode_call(spec.method(method), params, {})
    assert err.value.code == 400 and fragment in err.value.description


def test_unknown_parameters_are_only_refused_when_strict(spec):
    params = {"chat_id": "1", "text": "x", "parse_mod": "HTML"}
    with pytest.raises(ApiError, match="unknown parameter"):
        spec.decode_call(spec.method("sendMessage"), params, {})
    assert "parse_mod" not in spec.decode_call(spec.method("sendMessage"), params, {}, strict=False)


def test_problem_checks_subtypes_by_their_constant_field(spec):
    kicked = {"status": "kicked", "user": {"id": 1, "is_bot": True, "first_name": "b"}, "until_date": 0}
    assert spec.problem("ChatMember", kicked) is None
    assert spec.problem("ChatMember", {**kicked, "status": "member", "until_date": "soon"}) is not None
    assert spec.problem("ChatMember", {**kicked, "status": "nobody"}) is not None


# -- flood limits ---------------------------------------------------------------------------


def test_buckets_allow_bursts_then_the_rate():
    now = [0.0]
    flood = FloodControl(FloodLimits(global_rate=30, global_burst=30, chat_rate=1, chat_burst=3), lambda: now[0])
    assert [flood.admit(7) for _ in range(4)] == [0, 0, 0, pytest.approx(1.0)]
    now[0] = 0.5
    assert flood.admit(7) == pytest.approx(0.5)
    assert FloodControl.retry_after(0.5) == 1
    now[0] = 1.0
    assert flood.admit(7) == 0
    assert sum(flood.admit(None) == 0 for _ in range(40)) == 29  # the global bucket refilled to 30, 1 spent
    assert flood.stats.refused == 2 + 11


def test_disabled_limits_refuse_nothing_but_still_count():
    flood = FloodControl(FloodLimits.off(), lambda: 0.0)
    assert all(flood.admit(1) == 0 for _ in range(100))
    assert flood.stats.summary() == {
        "accepted": 100,
        "refused_429": 0,
        "max_per_second": 100,
        "max_per_chat_second": 100,
    }


def test_stats_find_the_busiest_second():
    stats = FloodStats()
    for t in [0.0, 0.1, 0.95, 1.0, 1.05, 3.0]:
        stats.record(1 if t < 1 else 2, t)
    assert stats.max_per_second() == 4  # 0.1 .. 1.05
    assert stats.max_per_chat_second() == 3


# -- pictures -------------------------------------------------------------------------------


@given(st.integers(1, 3000), st.integers(1, 3000))
def test_photo_sizes_fit_their_boxes_and_keep_the_original_last(width, height):
    sizes = photo_sizes(width, height)
    assert sizes == sorted(sizes) and max(sizes[-1]) <= 2560
    if max(width, height) <= 1280:
        assert sizes[-1] == (width, height)


def test_generated_png_reports_its_size():
    assert image_size(make_png(33, 21)) == (33, 21)
    assert image_size(b"GIF89a\x10\x00\x08\x00") == (16, 8)
    assert image_size(b"not an image") is None
