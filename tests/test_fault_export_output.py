"""Issue 15 fault targets for outputs: a full disk, and kill -9, during export and report.

Either way the file at ``--out`` is the old one or the complete new one, and a full disk is
a clear error (exit 1, the file named, no traceback). A full disk cannot be produced on a
real disk in a test, so a test double stands in for the file-write call only: files opened
for the output's temporary name refuse writes past a few kilobytes with ENOSPC, as a full
disk does; everything else (SQLite, openpyxl, zipfile, our writers) is real.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from coder.cli import cli
from coder.store import Store
from tests.faults import kill_when
from tests.llm_fake_server import coder_executable
from tests.report_project import CODEBOOK

ROOM = 4096  # bytes a temporary output may take before the "disk" is full


def make_project(db: Path, n: int) -> None:
    from schemas import Response

    with Store(db) as store:
        store.save_codebook(CODEBOOK)
        store.add_responses(
            Response(
                id=f"r{index}",
                text=f"Funding for the pathway ran out, answer number {index} " * 3,
                question="H1" if index % 2 else "H2",
                respondent=f"p{index % 97}",
                attributes={"role": "Innovator", "organisation": f"Org {index % 13}"},
            )
            for index in range(n)
        )


class _FullDisk:
    """A file object that accepts ``ROOM`` bytes, then fails as a full disk does."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._written = 0

    def write(self, data: Any) -> int:
        size = len(data.encode("utf-8") if isinstance(data, str) else data)
        if self._written + size > ROOM:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._written += size
        return int(self._inner.write(data))

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.close()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = io.open

    def open_on_a_full_disk(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        temporary = Path(str(file)).name.endswith(".tmp") and Path(str(file)).name.startswith(".")
        if temporary and any(flag in mode for flag in "wa+"):
            return _FullDisk(handle)
        return handle

    # pathlib and zipfile open files through io.open.
    monkeypatch.setattr(io, "open", open_on_a_full_disk)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "xlsx", "qdpx"])
def test_export_on_a_full_disk_is_a_clear_error_and_keeps_the_old_file(
    tmp_path: Path, fmt: str, full_disk: None
) -> None:
    db = tmp_path / "p.db"
    make_project(db, 300)
    out = tmp_path / f"out.{fmt}"
    out.write_bytes(b"the previous export\n")
    result = CliRunner().invoke(cli, ["export", "--db", str(db), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "not enough disk space" in result.output
    assert f"the previous out.{fmt} is unchanged" in result.output
    assert "Traceback" not in result.output
    assert out.read_bytes() == b"the previous export\n"
    assert sorted(path.name for path in tmp_path.iterdir() if "out" in path.name) == [out.name]


def test_report_on_a_full_disk_is_a_clear_error_and_keeps_the_old_files(
    tmp_path: Path, full_disk: None
) -> None:
    db = tmp_path / "p.db"
    make_project(db, 300)
    folder = tmp_path / "report"
    folder.mkdir()
    for name in ("report.md", "report.html", "report.xlsx"):
        (folder / name).write_text("old report\n")
    result = CliRunner().invoke(cli, ["report", "--db", str(db), "--out", str(folder)])
    assert result.exit_code == 1 and "not enough disk space" in result.output
    assert "report.html: cannot write" in result.output
    # Each file is the old one or the complete new one: the Markdown (under the room left)
    # was written whole; the HTML (over it) failed, and so nothing after it was started.
    markdown = (folder / "report.md").read_text()
    assert markdown.startswith("# Innovation ecosystem") and markdown.endswith("```\n")
    assert (folder / "report.html").read_text() == "old report\n"
    assert (folder / "report.xlsx").read_text() == "old report\n"
    assert sorted(path.name for path in folder.iterdir()) == [
        "report.html",
        "report.md",
        "report.xlsx",
    ]


def _kill_when_writing(command: list[str], folder: Path, name: str) -> None:
    """Start ``command``; SIGKILL it once its temporary ``name`` file has data."""

    def writing() -> bool:
        return any(
            entry.name.startswith(f".{name}.") and entry.stat().st_size > 0
            for entry in os.scandir(folder)
        )

    kill_when(command, writing, cwd=folder)


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_kill_9_during_export_leaves_the_old_file(tmp_path: Path, fmt: str) -> None:
    db = tmp_path / "p.db"
    make_project(db, 20_000)
    out = tmp_path / f"out.{fmt}"
    old = b"a complete earlier export\n"
    out.write_bytes(old)
    command = [coder_executable(), "export", "--db", str(db), "--out", str(out)]
    _kill_when_writing(command, tmp_path, out.name)
    assert out.read_bytes() == old
    # The next run replaces it with the complete new file.
    finished = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    if fmt == "xlsx":
        sheet = load_workbook(out, read_only=True).worksheets[0]
        assert sum(1 for _ in sheet.iter_rows()) == 20_001
    else:
        assert out.read_text("utf-8-sig").count("\n") >= 20_001


def test_kill_9_during_report_leaves_the_old_workbook(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    make_project(db, 20_000)
    folder = tmp_path / "report"
    subprocess.run(
        [coder_executable(), "report", "--db", str(db), "--out", str(folder), "--format", "xlsx"],
        check=True,
        capture_output=True,
    )
    old = (folder / "report.xlsx").read_bytes()
    with Store(db) as store:
        store.add_decision(
            response_id="r1", reviewer="ana", action="note", note="changes the new report"
        )
    command = [
        coder_executable(), "report", "--db", str(db), "--out", str(folder), "--format", "xlsx",
    ]
    _kill_when_writing(command, folder, "report.xlsx")
    assert (folder / "report.xlsx").read_bytes() == old
    load_workbook(folder / "report.xlsx", read_only=True)
