"""Spreadsheet safety for text cells: no user text may become a formula.

A response such as ``=HYPERLINK("http://evil", "click")`` or ``@SUM(...)`` would run as a
formula when a CSV export is opened in Excel or LibreOffice (CSV or formula injection).
Following OWASP's guidance, :func:`neutralise` prefixes a single quote (``'``) to every
text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, so the
spreadsheet shows it as text. To keep the escaping reversible, a cell that already begins
with quotes followed by one of those characters gets one more quote; :func:`restore` removes
exactly one, so ``coder import`` of a coder CSV export gives back the exact ids and texts
(it does so for files whose header is that of a coder export, see
:func:`is_coder_export`). XLSX files need no prefix: their text cells are typed as text.

Control characters are the other hazard of untrusted text. XML 1.0 (the format inside XLSX
and REFI-QDA files) cannot hold C0 controls other than tab, newline and carriage return,
nor U+FFFE, U+FFFF or a lone surrogate: :func:`xml_text` replaces each with U+FFFD (the
Unicode replacement character, shown as a visible "�"), so a response holding an ESC or a
vertical tab exports instead of crashing. A terminal would *run* an ESC sequence (colours,
cursor moves, window titles, hyperlinks): :func:`safe_for_terminal` shows every control
character as its ``\\x..`` escape instead. Excel also caps a cell at 32,767 characters;
:func:`xlsx_text` cuts longer text there and says so in the cell.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: Characters that make a spreadsheet read a cell as a formula (OWASP CSV injection).
FORMULA_TRIGGERS = "=+-@\t\r"
_ESCAPABLE = re.compile(r"'*[=+\-@\t\r]")
_ESCAPED = re.compile(r"'+[=+\-@\t\r]")
#: Columns only a coder export has together (see coder/export.py COLUMNS).
EXPORT_SIGNATURE = ("response_id", "label_source", "proposal_backend")


def neutralise(text: str) -> str:
    """``text`` with a leading ``'`` if a spreadsheet would take it as a formula."""
    return "'" + text if _ESCAPABLE.match(text) else text


def restore(text: str) -> str:
    """Undo :func:`neutralise` (removes the one quote it added, nothing else)."""
    return text[1:] if _ESCAPED.match(text) else text


#: Characters XML 1.0 cannot hold: C0 controls but tab, LF and CR; U+FFFE, U+FFFF;
#: surrogates (a lone one cannot even be encoded as UTF-8).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
#: What stands in for a character a file format cannot hold (visible, never a control).
REPLACEMENT = "\ufffd"
#: Control characters a terminal may act on: C0 (but tab and newline), DEL, C1, and the
#: bidirectional overrides that can make text display in another order than it reads.
_TERMINAL_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
#: The most characters Excel holds in one cell.
XLSX_CELL_LIMIT = 32_767


def xml_text(text: str) -> str:
    """``text`` with every character XML 1.0 forbids replaced by U+FFFD."""
    return _XML_ILLEGAL.sub(REPLACEMENT, text)


def xlsx_text(text: str) -> str:
    """A text cell for XLSX: :func:`xml_text`, cut to Excel's 32,767 characters with a note."""
    text = xml_text(text)
    if len(text) <= XLSX_CELL_LIMIT:
        return text
    note = f" [cut: {len(text):,} characters; the CSV or JSONL export has all of it]"
    return text[: XLSX_CELL_LIMIT - len(note)] + note


def _escape_control(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_for_terminal(text: str) -> str:
    """``text`` with control characters (ESC, BEL, backspace, CR, C1, bidi overrides, lone
    surrogates) shown as ``\\x1b``-style escapes, so printing it cannot drive the terminal.

    Tab and newline are kept. Call it on every user text printed to a terminal
    (``coder responses``, review screens, error messages quoting a cell).
    """
    return _TERMINAL_UNSAFE.sub(_escape_control, text)


def is_coder_export(header: Sequence[str]) -> bool:
    """True if a CSV header is that of ``coder export --format csv`` (cells were neutralised)."""
    names = {name.strip().lower() for name in header}
    return all(column in names for column in EXPORT_SIGNATURE)
