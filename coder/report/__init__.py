"""The rapid-insight report: data (model.py) and its renderings (Markdown, HTML, XLSX)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from coder.atomic import write_atomically
from coder.report.model import ReportData, build_report, collect_coded
from coder.store import Store

__all__ = ["ReportData", "build_report", "collect_coded", "write_report", "write_reports"]


def write_report(
    store: Store,
    out_dir: Path,
    formats: Sequence[str] = ("md", "html", "xlsx"),
    **options: Any,
) -> tuple[ReportData, list[Path]]:
    """Build the report once and write it in each format to ``out_dir``.

    Returns the report data and the paths written.

    ``options`` go to :func:`build_report` (attribution_field, max_quotes, title, ...).
    """
    from coder.report.html import render_html
    from coder.report.markdown import render_markdown
    from coder.report.rows import export_columns, iter_export_rows
    from coder.report.xlsx import write_report_xlsx

    report = build_report(store, **options)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        write: Callable[[Path], object]
        if fmt == "md":
            path = out_dir / "report.md"
            write = functools.partial(_write_text, render_markdown(report))
        elif fmt == "html":
            path = out_dir / "report.html"
            write = functools.partial(_write_text, render_html(report))
        elif fmt == "xlsx":
            path = out_dir / "report.xlsx"
            # The rows are read from the store as the sheet is written, a batch at a time.
            def write(temporary: Path) -> None:
                write_report_xlsx(
                    report, iter_export_rows(store), temporary, export_columns(store)
                )

        else:
            raise ValueError(f"unknown report format {fmt!r}")
        write_atomically(path, write)
        written.append(path)
    return report, written


def _write_text(text: str, path: Path) -> None:
    path.write_text(text, encoding="utf-8")


def write_reports(
    store: Store, out_dir: Path, formats: Sequence[str] = ("md", "html", "xlsx"), **options: Any
) -> list[Path]:
    """Like :func:`write_report`, returning only the paths written (for ``coder demo``)."""
    return write_report(store, out_dir, formats, **options)[1]
