"""The one text decoder: file bytes to text, with errors that name the file, line and column.

Imports, JSON Lines files (gold sets, training files, agreement files) and codebooks all
decode through here. A byte-order mark (UTF-8, UTF-16, UTF-32) always wins; undecodable
bytes raise an error naming where they are, never a traceback.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from pathlib import Path

from coder.errors import CoderError

#: Byte-order marks, longest first (the UTF-32 LE mark starts with the UTF-16 LE one).
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

# Well-formed multi-byte UTF-8 sequences: their presence means the file *is* UTF-8
# (with some bad bytes), not a single-byte Windows encoding.
UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)

#: Builds the message for undecodable bytes from (line, column, the bad byte, the reason).
Complaint = Callable[[int, int, int, str], str]


def bom_encoding(data: bytes) -> str | None:
    """The encoding a byte-order mark at the start of ``data`` announces, or None.

    The returned codec names (``utf-8-sig``, ``utf-16``, ``utf-32``) drop the mark when
    decoding.
    """
    for bom, encoding in BOMS:
        if data.startswith(bom):
            return encoding
    return None


def line_and_column(data: bytes, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a byte offset, for messages about undecodable bytes."""
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return line, column


def decode_or_raise(
    data: bytes, encoding: str, complaint: Complaint,
    error: Callable[[str], Exception] = CoderError, skip: int = 0,
) -> str:
    """``data[skip:]`` decoded as ``encoding``; bad bytes raise ``error(complaint(...))``.

    The complaint gets the line and column (in the whole of ``data``), the bad byte and
    the codec's reason, so each caller words its message for its own file kind; ``error``
    builds the exception from the message (an error class, or a lambda for one that takes
    more than a message).
    """
    try:
        return data[skip:].decode(encoding)
    except UnicodeDecodeError as problem:
        offset = skip + problem.start
        line, column = line_and_column(data, offset)
        raise error(complaint(line, column, data[offset], problem.reason)) from None


def wide_encoding(encoding: str | None) -> bool:
    """True for an encoding whose text holds NUL bytes (UTF-16, UTF-32)."""
    name = (encoding or "").lower().replace("_", "-")
    return name.startswith(("utf-16", "utf16", "utf-32", "utf32"))


def decode_bytes(
    data: bytes, path: Path, encoding: str | None = None, error: type[CoderError] = CoderError
) -> tuple[str, str]:
    """Decode a table's bytes: UTF-8 (with or without BOM) or cp1252 (Excel's default).

    A byte-order mark wins over everything: Excel's "Unicode Text" is UTF-16 with a BOM
    (and tabs between cells), whatever ``--encoding`` says about UTF-16's byte order.
    Returns (text, encoding). Bad bytes raise ``error`` naming file, line and column.
    """
    announced = bom_encoding(data)
    if announced is not None and announced != "utf-8-sig" and (encoding is None or wide_encoding(encoding)):
        return decode_or_raise(data, announced, lambda line, column, _, reason: (
            f"{path}: row {line}, column {column}: bytes that are not valid {announced} text "
            f"({reason}), although the file starts with a {announced.upper()} byte-order mark"
        ), error), announced
    if encoding:
        try:
            return decode_or_raise(data, encoding, lambda line, column, byte, _: (
                f"{path}: row {line}, column {column}: byte 0x{byte:02x} is not valid {encoding}"
            ), error), encoding
        except LookupError:
            raise error(f"unknown encoding {encoding!r}") from None
    if data.startswith(codecs.BOM_UTF8):
        return decode_or_raise(data, "utf-8", lambda line, column, byte, _: (
            f"{path}: row {line}, column {column}: invalid UTF-8 byte 0x{byte:02x} "
            "(the file starts with a UTF-8 byte-order mark)"
        ), error, skip=3), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if UTF8_MULTIBYTE.search(data):
        # Raises: the same bytes failed just above.
        return decode_or_raise(data, "utf-8", lambda line, column, byte, _: (
            f"{path}: row {line}, column {column}: invalid UTF-8 byte 0x{byte:02x} "
            "(the rest of the file is UTF-8; fix the byte or pass --encoding)"
        ), error), "utf-8"
    return decode_or_raise(data, "cp1252", lambda line, column, byte, _: (
        f"{path}: row {line}, column {column}: byte 0x{byte:02x} is neither UTF-8 "
        "nor Windows-1252 text; pass --encoding"
    ), error), "cp1252"

