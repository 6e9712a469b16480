"""Pictures without an imaging library: read an image's size, make a small PNG, list photo sizes.

Telegram stores every photo at several sizes (boxes of 90, 320, 800, 1280 and 2560 pixels, the
smallest first). The simulator lists the same sizes but keeps only the original bytes: every
size downloads the uploaded file.
"""

from __future__ import annotations

import struct
import zlib

PHOTO_BOXES = (90, 320, 800, 1280, 2560)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, GIF, JPEG or WebP image; None for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    return None


def image_type(data: bytes) -> tuple[str, str]:
    """(MIME type, file extension) of an image that :func:`image_size` can read."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png", "png"
    if data[:3] == b"GIF":
        return "image/gif", "gif"
    if data[:4] == b"RIFF":
        return "image/webp", "webp"
    return "image/jpeg", "jpg"


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk the JPEG segments to the first start-of-frame marker."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def make_png(width: int, height: int, rgb: tuple[int, int, int] = (70, 130, 180)) -> bytes:
    """A valid one-colour PNG of the given size (what a virtual user's camera produces)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height, 9))
        + chunk(b"IEND", b"")
    )


def photo_sizes(width: int, height: int) -> list[tuple[int, int]]:
    """The sizes Telegram keeps of a ``width`` x ``height`` photo, smallest first."""
    sizes: list[tuple[int, int]] = []
    for box in PHOTO_BOXES:
        scale = min(1.0, box / max(width, height))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        if not sizes or sizes[-1] != size:
            sizes.append(size)
        if scale == 1.0:
            break
    return sizes


def valid_photo_dimensions(width: int, height: int) -> bool:
    """Telegram's rule: width + height at most 10000, and a side ratio of at most 20."""
    return width > 0 and height > 0 and width + height <= 10000 and max(width, height) / min(width, height) <= 20
