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


def is_coder_export(header: Sequence[str]) -> bool:
    """True if a CSV header is that of ``coder export --format csv`` (cells were neutralised)."""
    names = {name.strip().lower() for name in header}
    return all(column in names for column in EXPORT_SIGNATURE)
