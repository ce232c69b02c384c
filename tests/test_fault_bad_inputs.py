"""Fault matrix: a corpus of bad input files through the real CLI.

Each bad file (tests/bad_inputs/corpus.py: wrong encoding, empty, header only, missing text
column, duplicate ids, NUL bytes, malformed XLSX, a bad JSONL line, malformed codebook YAML,
a parent cycle, a duplicated code, ...) must give a clear error that names the file and the
row or field, exit non-zero, and leave the store exactly as it was (a dump of every table
compared before and after). A 1 MB single response must import fine.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from coder.cli import cli
from coder.store import Store
from tests.bad_inputs.corpus import BadInput, command_line, corpus, write_corpus

CASES = corpus()


def dump(db: Path) -> list[str]:
    """Every schema statement and row of the project file, in order."""
    with Store(db) as store:
        return list(store.db.conn.iterdump())


@pytest.fixture
def project(tmp_path: Path) -> Path:
    db = tmp_path / "project.db"
    result = CliRunner().invoke(cli, ["codebook", "add", "--example", "--db", str(db)])
    assert result.exit_code == 0, result.output
    good = tmp_path / "good.csv"
    good.write_text("id,question,response\ng1,H1,Clinical leadership made the difference.\n")
    result = CliRunner().invoke(cli, ["import", str(good), "--db", str(db)])
    assert result.exit_code == 0, result.output
    return db


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad_inputs")
    return {case.name: path for case, path in write_corpus(folder)}


def test_the_corpus_has_at_least_150_bad_files() -> None:
    assert len([c for c in CASES if not c.ok]) >= 150
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [c for c in CASES if not c.ok], ids=lambda c: c.name)
def test_bad_file_is_refused_clearly_and_changes_nothing(
    project: Path, corpus_dir: dict[str, Path], case: BadInput
) -> None:
    before = dump(project)
    path = corpus_dir[case.name]
    file_before = path.read_bytes()
    result = CliRunner().invoke(cli, command_line(case, path, project))
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code != 0, output
    assert result.exit_code == 1, f"not a handled CoderError: {result.exception!r}\n{output}"
    assert "Traceback" not in output
    for expected in case.expect:
        assert expected in output, f"{expected!r} not in: {output}"
    assert dump(project) == before, "a refused file changed the store"
    assert path.read_bytes() == file_before, "the bad file (or project file) was changed"
    if case.project:
        assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0


@pytest.mark.parametrize("case", [c for c in CASES if c.ok], ids=lambda c: c.name)
def test_harmless_odd_file_imports(project: Path, corpus_dir: dict[str, Path], case: BadInput) -> None:
    result = CliRunner().invoke(cli, command_line(case, corpus_dir[case.name], project))
    assert result.exit_code == 0, result.output


def test_one_megabyte_response_imports_whole(project: Path, corpus_dir: dict[str, Path]) -> None:
    (case,) = [c for c in CASES if c.name == "one_megabyte_response.csv"]
    result = CliRunner().invoke(cli, ["import", str(corpus_dir[case.name]), "--db", str(project)])
    assert result.exit_code == 0, result.output
    with Store(project) as store:
        text = store.response("big1").text
    assert len(text) == 1_000_000


def test_real_cli_process_exits_1_and_names_the_row(
    project: Path, corpus_dir: dict[str, Path]
) -> None:
    before = dump(project)
    coder = Path(sys.executable).parent / "coder"
    finished = subprocess.run(
        [str(coder), "import", str(corpus_dir["duplicate_ids.csv"]), "--db", str(project)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 1
    assert "duplicate_ids.csv" in finished.stderr and "row 4" in finished.stderr
    assert finished.stdout == ""  # errors go to stderr
    assert dump(project) == before
