"""Message entities: Telegram's HTML parse mode, and the entities clients detect in plain text.

Offsets and lengths are in UTF-16 code units, as in the Bot API. :func:`parse_html` follows the
algorithm and error texts of TDLib's ``parse_html`` (td/telegram/MessageEntity.cpp, Boost
licence), which the Bot API server runs for ``parse_mode=HTML``; the server then prefixes its
errors with "can't parse entities: ". MarkdownV2 and Markdown are not parsed (see docs).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
        "tg-time",
    }
)
SIMPLE_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
_SPACE = frozenset(b" \t\r\n\v\0")
# TDLib's order for entities on the same range (MessageEntity::get_type_priority).
_PRIORITY = {
    "blockquote": 0,
    "expandable_blockquote": 0,
    "pre": 11,
    "code": 20,
    "text_link": 49,
    "text_mention": 49,
    "bold": 90,
    "italic": 91,
    "underline": 92,
    "strikethrough": 93,
    "spoiler": 94,
    "custom_emoji": 99,
}


class EntityParseError(ValueError):
    """Text that the real server refuses to parse; ``str(err)`` is TDLib's message."""


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def sort_key(e: dict) -> tuple[int, int, int]:
    return e["offset"], -e["length"], _PRIORITY.get(e["type"], 50)


def entity(kind: str, offset: int, length: int, **extra) -> dict:
    return {"offset": offset, "length": length, "type": kind, **extra}


# -- HTML --------------------------------------------------------------------------------------


class _Cursor:
    """Bytes of the text with a NUL past the end, as TDLib reads its C string."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.i = 0

    def at(self, offset: int = 0) -> int:
        j = self.i + offset
        return self.data[j] if j < len(self.data) else 0

    def skip_spaces(self) -> None:
        while self.at() != 0 and self.at() in _SPACE:
            self.i += 1


def _decode_html_entity(data: bytes, pos: int) -> tuple[int, int]:
    """(code point, position after it) for '&...' at ``pos``; code point 0 when not an entity."""
    end = pos + 1
    res = 0

    def at(j: int) -> int:
        return data[j] if j < len(data) else 0

    if at(pos + 1) == ord("#"):
        end += 1
        if at(pos + 2) == ord("x"):
            end += 1
            while chr(at(end)) in "0123456789abcdefABCDEF" and at(end):
                res = res * 16 + int(chr(at(end)), 16)
                end += 1
        else:
            while 0x30 <= at(end) <= 0x39:
                res = res * 10 + at(end) - 0x30
                end += 1
        if res == 0 or res >= 0x10FFFF or end - pos >= 10:
            return 0, pos
    else:
        while chr(at(end)).isascii() and chr(at(end)).isalpha() and at(end):
            end += 1
        name = data[pos + 1 : end]
        res = {b"lt": 0x3C, b"gt": 0x3E, b"amp": 0x26, b"quot": 0x22}.get(name, 0)
        if res == 0:
            return 0, pos
    return res, end + 1 if at(end) == ord(";") else end


def _read_attribute_value(cur: _Cursor) -> str:
    """A name token or a quoted string (with HTML entities decoded)."""
    if cur.at() not in (0x27, 0x22):
        begin = cur.i
        while chr(cur.at()).isascii() and (chr(cur.at()).isalnum() or cur.at() in (0x2E, 0x2D)) and cur.at():
            cur.i += 1
        if cur.at() not in _SPACE and cur.at() != 0x3E:
            raise EntityParseError(f"Unexpected end of name token at byte offset {begin}")
        return cur.data[begin : cur.i].decode("utf-8", "replace").lower()
    quote = cur.at()
    cur.i += 1
    value = bytearray()
    while cur.at() != quote and cur.at() != 0:
        if cur.at() == 0x26:
            code, after = _decode_html_entity(cur.data, cur.i)
            if code:
                value += chr(code).encode("utf-8", "surrogatepass")
                cur.i = after
                continue
        value.append(cur.at())
        cur.i += 1
    if cur.at() == quote:
        cur.i += 1
    return value.decode("utf-8", "replace")


def _read_start_tag(cur: _Cursor, begin: int) -> tuple[str, dict[str, str]]:
    """Parse '<tag attr=value ...' up to (not past) the closing '>'."""
    while cur.at() not in _SPACE and cur.at() != 0x3E:
        cur.i += 1
    if cur.at() == 0:
        raise EntityParseError(f"Unclosed start tag at byte offset {begin}")
    tag = cur.data[begin + 1 : cur.i].decode("utf-8", "replace").lower()
    if tag not in HTML_TAGS:
        raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {begin}')
    attributes: dict[str, str] = {}
    while cur.at() != 0x3E:
        cur.skip_spaces()
        if cur.at() == 0x3E:
            break
        name_begin = cur.i
        while cur.at() not in _SPACE and cur.at() not in (0x3D, 0x3E):
            cur.i += 1
        name = cur.data[name_begin : cur.i].decode("utf-8", "replace")
        if not name:
            raise EntityParseError(f'Empty attribute name in the tag "{tag}" at byte offset {begin}')
        cur.skip_spaces()
        if cur.at() != 0x3D:
            if tag == "blockquote" and name == "expandable":
                attributes[name] = ""
                continue
            raise EntityParseError(
                f'Expected equal sign in declaration of an attribute of the tag "{tag}" at byte offset {begin}'
            )
        cur.i += 1
        cur.skip_spaces()
        if cur.at() == 0:
            raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
        value = _read_attribute_value(cur)
        if cur.at() == 0:
            raise EntityParseError(f"Unclosed start tag at byte offset {begin}")
        attributes[name] = value
    if tag == "span" and attributes.get("class") != "tg-spoiler":
        raise EntityParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
    return tag, attributes


def _checked_link(url: str) -> str:
    """TDLib-style link normalisation: a scheme and a path are added; junk gives ''."""
    candidate = url if "://" in url or url.startswith("tg:") else f"http://{url}"
    parts = urlsplit(candidate)
    if parts.scheme in ("tg", "ton"):
        return candidate
    if parts.scheme not in ("http", "https") or "." not in parts.netloc or " " in candidate:
        return ""
    if not parts.path:
        candidate = candidate.replace(parts.netloc, parts.netloc + "/", 1)
    return candidate


def _close_entity(tag: str, attrs: dict[str, str], offset: int, length: int, inner: str, entities: list[dict]) -> None:
    """Append the entity for a closed tag (TDLib merges <pre><code class="language-x"> into one pre)."""
    if tag in SIMPLE_TAGS:
        entities.append(entity(SIMPLE_TAGS[tag], offset, length))
    elif tag == "tg-emoji":
        emoji_id = attrs.get("emoji-id", "")
        if not emoji_id.isdigit() or int(emoji_id) == 0:
            raise EntityParseError("Invalid custom emoji identifier specified")
        entities.append(entity("custom_emoji", offset, length, custom_emoji_id=emoji_id))
    elif tag == "tg-time":
        unix = attrs.get("unix", "")
        if not unix.lstrip("-").isdigit():
            raise EntityParseError("Invalid Unix time specified")
        extra = {"date_time_format": attrs["format"]} if attrs.get("format") else {}
        entities.append(entity("date_time", offset, length, unix_time=int(unix), **extra))
    elif tag == "a":
        url = _checked_link(attrs.get("href") or inner)
        if url:
            entities.append(entity("text_link", offset, length, url=url))
    elif tag == "blockquote":
        entities.append(entity("expandable_blockquote" if "expandable" in attrs else "blockquote", offset, length))
    elif tag in ("pre", "code"):
        language = attrs.get("class", "")[len("language-") :] if attrs.get("class", "").startswith("language-") else ""
        last = entities[-1] if entities else None
        same = last is not None and last["offset"] == offset and last["length"] == length
        if tag == "pre" and same and last["type"] == "code" and last.get("language"):
            last.update(type="pre")
        elif tag == "code" and same and last["type"] == "pre" and language:
            last["language"] = language
        else:
            entities.append(
                entity(tag, offset, length, **({"language": language} if tag == "code" and language else {}))
            )


def parse_html(text: str) -> tuple[str, list[dict]]:
    """Plain text and entities for ``text`` in Telegram's HTML, or :class:`EntityParseError`."""
    cur = _Cursor(text.encode("utf-8"))
    out = bytearray()
    utf16 = 0
    entities: list[dict] = []
    open_tags: list[tuple[str, dict[str, str], int, int]] = []  # tag, attributes, utf16 offset, out pos
    while cur.i < len(cur.data):
        c = cur.at()
        if c == 0x26:
            code, after = _decode_html_entity(cur.data, cur.i)
            if code:
                utf16 += 2 if code > 0xFFFF else 1
                out += chr(code).encode("utf-8", "surrogatepass")
                cur.i = after
                continue
        if c != 0x3C:
            if c & 0xC0 != 0x80:
                utf16 += 2 if c >= 0xF0 else 1
            out.append(c)
            cur.i += 1
            continue
        begin = cur.i
        cur.i += 1
        if cur.at() != 0x2F:
            tag, attributes = _read_start_tag(cur, begin)
            open_tags.append((tag, attributes, utf16, len(out)))
        else:
            if not open_tags:
                raise EntityParseError(f"Unexpected end tag at byte offset {begin}")
            while cur.at() not in _SPACE and cur.at() != 0x3E:
                cur.i += 1
            end_tag = cur.data[begin + 2 : cur.i].decode("utf-8", "replace").lower()
            cur.skip_spaces()
            if cur.at() != 0x3E:
                raise EntityParseError(f"Unclosed end tag at byte offset {begin}")
            tag, attributes, offset, out_pos = open_tags.pop()
            if end_tag and end_tag != tag:
                raise EntityParseError(
                    f'Unmatched end tag at byte offset {begin}, expected "</{tag}>", found "</{end_tag}>"'
                )
            if utf16 > offset:
                inner = out[out_pos:].decode("utf-8", "replace")
                _close_entity(tag, attributes, offset, utf16 - offset, inner, entities)
        cur.i += 1  # past '>'
    if open_tags:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{open_tags[-1][0]}"')
    try:
        plain = out.decode("utf-8")
    except UnicodeDecodeError:
        raise EntityParseError(
            "Text contains invalid Unicode characters after decoding HTML entities, check for unmatched "
            "surrogate code units"
        ) from None
    for e in entities:
        if e["type"] == "code":
            e.pop("language", None)  # a language only survives inside <pre>
    entities.sort(key=sort_key)
    return plain, entities


# -- entities clients and the server detect in plain text ------------------------------------

_DETECTORS = (
    ("bot_command", re.compile(r"(?<![\w/<>])/[a-zA-Z0-9_]{1,64}(?:@[a-zA-Z0-9_]{3,32})?(?![\w/<>])")),
    ("url", re.compile(r"\bhttps?://[^\s<>\"]+[^\s<>\".,;:!?)\]'’]")),
    ("mention", re.compile(r"(?<![\w@])@[a-zA-Z0-9_]{4,32}(?![\w@])")),
    ("hashtag", re.compile(r"(?<![\w#])#\w*[^\W\d]\w*(?![\w#])")),
)


def detect_entities(text: str) -> list[dict]:
    """bot_command, url, mention and hashtag entities, as Telegram adds them to a plain message."""
    found: list[dict] = []
    taken: list[range] = []
    for kind, pattern in _DETECTORS:
        for m in pattern.finditer(text):
            span = range(m.start(), m.end())
            if any(span.start < t.stop and t.start < span.stop for t in taken):
                continue
            taken.append(span)
            found.append(entity(kind, utf16_len(text[: m.start()]), utf16_len(m.group())))
    found.sort(key=lambda e: e["offset"])
    return found


def strip_text(text: str, entities: list[dict]) -> tuple[str, list[dict]]:
    """Trim surrounding whitespace as the server does, keeping entities on the same characters."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    shift = utf16_len(text[: len(text) - len(text.lstrip())])
    size = utf16_len(stripped)
    kept = []
    for e in entities:
        start = max(0, e["offset"] - shift)
        end = min(size, e["offset"] - shift + e["length"])
        if end > start:
            kept.append({**e, "offset": start, "length": end - start})
    return stripped, kept
