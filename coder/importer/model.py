"""What an import reads and what it plans: :class:`Table`, :class:`ImportLimits`, :class:`ImportPlan`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from coder.importer.columns import ColumnPlan
from schemas import Response

Shape = Literal["long", "wide"]


@dataclass
class ImportPlan:
    """What an import will do: the parsed responses and how columns were mapped."""

    source: Path
    shape: Shape
    encoding: str
    mapping: dict[str, Any]
    responses: list[Response] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    file_hash: str = ""
    columns: list[ColumnPlan] = field(default_factory=list)

    def tolerant_matches(self) -> list[ColumnPlan]:
        """Question columns matched other than exactly (to show the user what was assumed)."""
        return [c for c in self.columns if c.role == "question" and not c.exact]


#: Default caps on what one import may take (see :class:`ImportLimits`).
MAX_CELL_CHARS = 2_000_000
MAX_UNZIPPED_MB = 1024


@dataclass(frozen=True)
class ImportLimits:
    """Caps that keep a hostile or broken file from taking all memory and time.

    ``max_cell_chars``: the longest cell (any format). Excel itself stops at 32,767
    characters; the default of two million keeps a pasted document, refuses a 1 GB cell.
    ``max_unzipped_mb``: what an XLSX may unzip to (its parts' declared sizes, which
    Python's zip reader never exceeds); a 1 MB zip bomb can unzip to gigabytes.
    Both are named in the error, with the option that raises them.
    """

    max_cell_chars: int = MAX_CELL_CHARS
    max_unzipped_mb: int = MAX_UNZIPPED_MB


@dataclass
class Table:
    """A rectangular table read from a file: header and rows with their source row numbers."""

    header: list[str]
    rows: list[tuple[int, list[Any]]]
    encoding: str
    #: things read but worth telling the user (each names the file, row and column)
    warnings: list[str] = field(default_factory=list)
