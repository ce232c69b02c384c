"""One row of the queue table: the fields laid out as one line of plain text.

The columns are drawn as ONE table column: DataTable renders each cell through Rich
(padding, measuring, cropping), so a page of 7 cells a row cost ~20 ms more to draw after
each filter at 100k answers than a page of one Text a row. The same 1-cell gap (the cells'
padding) separates the fields, so the table looks as it did with 7 columns.
"""

from __future__ import annotations

from rich.text import Text

from review_tui.queue import SNIPPET, QueueRow

STATUS_STYLE = {
    "unreviewed": "",
    "accepted": "green",
    "corrected": "yellow",
    "adjudicated": "bold cyan",
    "skipped": "dim",
}
COLUMNS = ("id", "status", "conf", "question", "stance", "themes", "text")
# Fixed widths: a page's size must not depend on its texts (QueueTable.rows_that_fit).
# Themes and text share what the terminal's width leaves (column_widths).
WIDTHS = (10, 12, 5, 8, 12, 30, SNIPPET)
MIN_THEMES, MIN_TEXT = 12, 20
GAP = "  "
ROW_COLUMN = "row"


def field(value: str | Text, width: int) -> Text:
    """One field cropped or padded to its column's width, as a cell would show it.

    Response text is plain text, never Rich markup (DataTable would parse a str cell as
    markup: an answer saying "[link=...]" would become a live link, "[/b]" an error)."""
    text = value.copy() if isinstance(value, Text) else Text(value)
    if "\n" in text.plain:
        text.plain = text.plain.split("\n", 1)[0]  # a cell of height 1 shows the first line
    text.truncate(width, overflow="crop", pad=True)
    return text


def column_widths(table_width: int) -> tuple[int, ...]:
    """The fields' widths for a table ``table_width`` cells wide: the first five fixed,
    themes and text sharing the rest (text up to SNIPPET, themes up to 30), so the answer's
    text shows on an 80- or 120-column terminal instead of beyond the right edge."""
    fixed = sum(WIDTHS[:5]) + len(GAP) * (len(WIDTHS) - 1) + 2  # + the cell's padding
    rest = table_width - fixed
    themes = max(MIN_THEMES, min(WIDTHS[5], int(rest * 0.4)))
    text = max(MIN_TEXT, min(SNIPPET, rest - themes))
    return (*WIDTHS[:5], themes, text)


def line(values: tuple[str | Text, ...], widths: tuple[int, ...] = WIDTHS) -> Text:
    """The fields of one row (or the header) laid out at the columns' widths."""
    return Text(GAP, end="").join(
        field(value, width) for value, width in zip(values, widths, strict=True)
    )


def cells(row: QueueRow) -> tuple[str | Text, ...]:
    """The fields of one row, in COLUMNS order."""
    status = Text(row.status, style=STATUS_STYLE.get(row.status, ""))
    if row.flagged:
        status.append(" ★", style="bold yellow")
    confidence = "" if row.confidence is None else f"{row.confidence:.2f}"
    return (
        row.response_id,
        status,
        confidence,
        row.question,
        row.stance,
        row.themes,
        row.snippet,
    )


def shown_field(line: Text, column: str, widths: tuple[int, ...] = WIDTHS) -> str:
    """The text of ``column`` in a row drawn at ``widths`` (tests read the table with it)."""
    index = COLUMNS.index(column)
    start = sum(widths[:index]) + len(GAP) * index
    return line.plain[start : start + widths[index]].rstrip()
