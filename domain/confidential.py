"""Confidential strata (protocol ``inspectbot/draw/v2``, docs/draw-protocol.md §15): the salted
per-entity class commitments of the public pool file, the per-stratum cut, and the two
disclosures (the auditor's: every class and the salt key; an entity's: its own line).

Pure: stdlib only. ``domain/draw.py`` builds the public pool with :func:`public_pool_bytes`;
``domain/bundle.py`` verifies with the rest.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256

from domain.protocol import DrawInputError

PROTOCOL_V2 = "inspectbot/draw/v2"
DISCLOSURE = "inspectbot/disclosure/v2"
SALT_KEY_BYTES = 32
ALL_RANKS = "ffffffffffffffff"  # the cut of a stratum drawn whole
_CLASS_TAG = b"inspectbot/class/v2\x00"
_HEX64 = re.compile(r"[0-9a-f]{64}")


class DisclosureError(DrawInputError):
    """A disclosure file cannot be read: ``code`` names the problem, ``params`` where (line)."""


def check_salt_key(salt_key: bytes) -> None:
    if not isinstance(salt_key, bytes) or len(salt_key) != SALT_KEY_BYTES:
        # never echo the value: it opens every class of the draw
        raise DrawInputError("bad_salt_key", length=len(salt_key) if isinstance(salt_key, bytes) else None)


def entity_salt(salt_key: bytes, key_b: bytes) -> bytes:
    """salt_e = HMAC-SHA256(salt_key, key): 32 bytes, one entity's alone."""
    return hmac.digest(salt_key, key_b, "sha256")


def class_commitment(salt_e: bytes, key_b: bytes, stratum_b: bytes) -> str:
    """hex(H("inspectbot/class/v2" || 0x00 || salt_e || 0x00 || key || 0x00 || stratum))."""
    return sha256(_CLASS_TAG + salt_e + b"\x00" + key_b + b"\x00" + stratum_b).hexdigest()


def public_pool_bytes(keys_b: Sequence[bytes], strata_b: Sequence[bytes], salt_key: bytes) -> bytes:
    """pool.tsv of v2: ``key TAB class_commitment LF`` per entity, in the order given (the
    caller has checked the private form: sorted, unique, well-formed fields).

    A city has a million lines: HMAC-SHA256 is computed from the two pad states hashed once
    (RFC 2104; the same bytes as :func:`entity_salt`, in a third of ``hmac.digest``'s time)."""
    check_salt_key(salt_key)
    inner = sha256(bytes(b ^ 0x36 for b in salt_key.ljust(64, b"\x00")))
    outer = sha256(bytes(b ^ 0x5C for b in salt_key.ljust(64, b"\x00")))
    tag = _CLASS_TAG
    lines: list[bytes] = []
    append = lines.append
    for k, s in zip(keys_b, strata_b):
        i = inner.copy()
        i.update(k)
        o = outer.copy()
        o.update(i.digest())
        append(k + b"\t" + sha256(tag + o.digest() + b"\x00" + k + b"\x00" + s).hexdigest().encode() + b"\n")
    return b"".join(lines)


def is_commitment(text: str) -> bool:
    return _HEX64.fullmatch(text) is not None


def cut(ranks: Sequence[int], drawn: int) -> str | None:
    """The published cut of a stratum (docs §15.5) from its ranks in ascending (rank, key) order,
    of which at least the first ``drawn + 1`` are given (all, when the stratum is drawn whole):
    ``None`` when nothing is drawn, ``ALL_RANKS`` when everything is, else the midpoint
    ``r_last + floor((r_next − r_last) / 2)`` of the last drawn rank and the first not drawn."""
    if drawn <= 0:
        return None
    if len(ranks) <= drawn:
        return ALL_RANKS
    last, following = ranks[drawn - 1], ranks[drawn]
    return f"{last + (following - last) // 2:016x}"


def drawn_by_cut(rank: int, cut_hex: str | None) -> bool:
    """Whether an entity of rank ``rank`` in a stratum with this cut is drawn: ``rank ≤ cut``."""
    return cut_hex is not None and rank <= int(cut_hex, 16)


# --------------------------------------------------------------------------- disclosures


@dataclass(frozen=True)
class AuditDisclosure:
    """Every class of a v2 draw and the salt key that opens every commitment."""

    draw_ref: str
    salt_key: bytes
    keys: list[str]
    strata: list[str]


@dataclass(frozen=True)
class EntityDisclosure:
    """One entity's own line: its class and its salt, which open its commitment only."""

    draw_ref: str
    key: str
    stratum: str
    salt: bytes


def _check_draw_ref(draw_ref: str) -> None:
    if not draw_ref or "\t" in draw_ref or "\n" in draw_ref:
        raise DisclosureError("disclosure_bad_draw_ref", line=1)


def audit_disclosure_bytes(draw_ref: str, salt_key: bytes, keys: Sequence[str], strata: Sequence[str]) -> bytes:
    """``DISCLOSURE TAB "audit" TAB draw_ref TAB hex(salt_key) LF`` then ``key TAB stratum LF``
    per pool line, in pool order (docs §15.7)."""
    check_salt_key(salt_key)
    _check_draw_ref(draw_ref)
    head = f"{DISCLOSURE}\taudit\t{draw_ref}\t{salt_key.hex()}\n"
    return (head + "".join(f"{k}\t{s}\n" for k, s in zip(keys, strata))).encode("utf-8")


def entity_disclosure_bytes(draw_ref: str, salt_key: bytes, key: str, stratum: str) -> bytes:
    """``DISCLOSURE TAB "entity" TAB draw_ref TAB key TAB stratum TAB hex(salt_e) LF``."""
    _check_draw_ref(draw_ref)
    salt = entity_salt(salt_key, key.encode("utf-8"))
    return f"{DISCLOSURE}\tentity\t{draw_ref}\t{key}\t{stratum}\t{salt.hex()}\n".encode()


def parse_disclosure(data: bytes) -> AuditDisclosure | EntityDisclosure:
    """Either disclosure, from its bytes; a malformed one raises :class:`DisclosureError`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DisclosureError("disclosure_not_utf8", line=0) from None
    # read leniently what a person may have copied by hand: CR LF line ends, no final LF
    text = text.replace("\r\n", "\n")
    if not text.endswith("\n"):
        text += "\n"
    lines = text[:-1].split("\n")
    head = lines[0].split("\t")
    if head[0] != DISCLOSURE or len(head) < 2 or head[1] not in ("audit", "entity"):
        raise DisclosureError("disclosure_header", line=1)
    if head[1] == "entity":
        if len(head) != 6 or len(lines) != 1 or not head[2] or not head[3] or not head[4] or not is_commitment(head[5]):
            raise DisclosureError("disclosure_header", line=1)
        return EntityDisclosure(head[2], head[3], head[4], bytes.fromhex(head[5]))
    if len(head) != 4 or not head[2] or not is_commitment(head[3]):
        raise DisclosureError("disclosure_header", line=1)
    keys: list[str] = []
    strata: list[str] = []
    for i, line in enumerate(lines[1:], 2):
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0] or not fields[1]:
            raise DisclosureError("disclosure_line", line=i)
        keys.append(fields[0])
        strata.append(fields[1])
    return AuditDisclosure(head[2], bytes.fromhex(head[3]), keys, strata)
