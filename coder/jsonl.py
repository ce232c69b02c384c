"""Reading JSON Lines files of objects, with errors that name the file and line.

The one reader of JSON Lines in coder (the importer, gold sets, training files and
``coder agree`` all use it). Three things it gets right that a naive reader does not:

- lines are split at ``\\n`` only (``\\r\\n`` too): ``str.splitlines`` also splits at
  U+2028, U+0085 and form feed, which valid JSON may hold inside strings;
- a file with a byte-order mark (UTF-8, UTF-16, UTF-32) is decoded by it (through
  :mod:`coder.decoding`, the one text decoder);
- hostile content gives a clear error, never a traceback: nesting deeper than
  :data:`MAX_DEPTH` (Python's parser would overflow the stack), integers longer than
  Python converts (``sys.get_int_max_str_digits``), and ``\\ud800``-style escapes that
  leave a lone surrogate (not text: SQLite and every output would reject it).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from coder.decoding import bom_encoding, decode_or_raise
from coder.errors import CoderError

#: Deepest nesting of arrays and objects accepted. Survey files and gold sets nest two or
#: three levels; Python's own parser overflows its stack near 1,000.
MAX_DEPTH = 64


def decode_json_text(data: bytes, path: Path, error: type[CoderError] = CoderError) -> str:
    """JSON text from file bytes: UTF-8 (RFC 8259), or UTF-16/32 announced by a BOM."""
    encoding = bom_encoding(data) or "utf-8"
    return decode_or_raise(data, encoding, lambda line, column, byte, _: (
        f"{path}, line {line}, column {column}: byte 0x{byte:02x} is not "
        f"valid {encoding} text; save the file as UTF-8"
    ), error)


class _LongInteger(str):
    """An integer too long for ``int()``, kept as its digits so the field can be named."""

    __slots__ = ()


def _parse_int(digits: str) -> int | str:
    limit = sys.get_int_max_str_digits()
    if limit and len(digits.lstrip("-")) > limit:
        return _LongInteger(digits)
    return int(digits)


def loads_checked(
    text: str, *, parse_float: Callable[[str], Any] | None = None,
    parse_constant: Callable[[str], Any] | None = None,
) -> Any:
    """``json.loads`` that raises :class:`ValueError` with a plain message for hostile input.

    Raw control characters (tab, form feed) inside strings are accepted, as most JSON
    writers' readers do. The message of a ``ValueError`` names the field where it can
    (``field 'text'``, ``field 'meta.tags[3]'``); a ``json.JSONDecodeError`` is re-raised
    as it is (it carries the column).
    """
    try:
        value = json.loads(
            text, strict=False, parse_int=_parse_int, parse_float=parse_float,
            parse_constant=parse_constant,
        )
    except RecursionError:
        raise ValueError(f"arrays or objects nested more than {MAX_DEPTH} levels deep") from None
    problem = find_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


#: Most values (counting every use of a shared one) a document may expand to: YAML
#: aliases let a few hundred bytes stand for billions of values ("billion laughs").
MAX_VALUES = 1_000_000


def find_problem(value: Any, max_depth: int = MAX_DEPTH, max_values: int = MAX_VALUES) -> str | None:
    """What makes parsed JSON/YAML data unusable, naming the field; None if nothing does.

    Checks nesting depth, lone surrogates in strings and keys, over-long integers (see
    :func:`loads_checked`) and, for YAML aliases, expansion past ``max_values`` values.
    Iterative, so deep data cannot overflow the stack.
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    seen = 0
    while stack:
        node, where, depth = stack.pop()
        seen += 1
        if seen > max_values:
            return (f"the data expands to more than {max_values:,} values (YAML aliases repeating "
                    "each other?)")
        if depth > max_depth:
            return f"arrays or objects nested more than {max_depth} levels deep (at {_field(where)})"
        if isinstance(node, _LongInteger):
            return (
                f"{_field(where)}: an integer of {len(node.lstrip('-'))} digits, more than "
                f"{sys.get_int_max_str_digits()}; write it as a string"
            )
        if isinstance(node, str):
            if _lone_surrogate(node):
                return f"{_field(where)}: a lone surrogate (an unpaired \\ud800-\\udfff escape) is not text"
        elif isinstance(node, dict):
            for key, item in node.items():
                name = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and _lone_surrogate(key):
                    return f"{_field(where)}: a key holds a lone surrogate (an unpaired \\ud800-\\udfff escape)"
                stack.append((item, name, depth + 1))
        elif isinstance(node, list | tuple):
            for index, item in enumerate(node):
                stack.append((item, f"{where}[{index}]", depth + 1))
    return None


def _field(where: str) -> str:
    return f"field {where!r}" if where else "the top level"


def _lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_jsonl(
    text: str, path: Path, error: type[CoderError] = CoderError, *, row_word: str = "line",
    parse_float: Callable[[str], Any] | None = None,
    parse_constant: Callable[[str], Any] | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of JSON Lines text.

    Errors raise ``error`` naming ``path`` and the line (called ``row_word``, since the
    importer speaks of rows): invalid JSON, a line that is not an object, hostile content.
    """
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}, {row_word} {number}" if row_word == "line" else f"{path}: {row_word} {number}"
        try:
            data = loads_checked(line, parse_float=parse_float, parse_constant=parse_constant)
        except json.JSONDecodeError as problem:
            raise error(f"{where}: not valid JSON ({problem.msg}, column {problem.colno})") from None
        except ValueError as problem:
            raise error(f"{where}: {problem}") from None
        if not isinstance(data, dict):
            raise error(f"{where}: expected a JSON object, got {type(data).__name__}")
        yield number, data


def jsonl_objects(
    path: Path, error: type[CoderError] = CoderError
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file; ids become strings.

    Problems raise ``error`` naming the file and line: unreadable file, bytes that are not
    UTF-8 (or UTF-16/32 with a byte-order mark), invalid JSON, a line that is not a JSON
    object, hostile content (see :func:`loads_checked`).
    """
    try:
        data = path.read_bytes()
    except OSError as problem:
        raise error(f"{path}: cannot read: {problem}") from None
    text = decode_json_text(data, path, error)
    for number, record in parse_jsonl(text, path, error):
        if "id" in record and not isinstance(record["id"], str):
            record["id"] = str(record["id"])
        yield number, record
