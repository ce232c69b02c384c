"""Issue 15, input side: lock contention, read-only projects, encodings, JSON line breaks,
limits, and property-based fuzzing of the importers and the codebook loader.

The fuzz tests are derandomized (the same examples every run) with a modest number of
examples, so CI never flakes and they stay fast.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coder.cli import cli
from coder.codebook import load_codebook
from coder.errors import CoderError
from coder.importer import ImportLimits, plan_import
from coder.jsonl import jsonl_objects
from coder.store import ProjectFileError, Store
from tests.bad_inputs.more import zip_bomb

CODER = str(Path(sys.executable).parent / "coder")
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _project(folder: Path) -> Path:
    db = folder / "p.db"
    assert CliRunner().invoke(cli, ["codebook", "add", "--example", "--db", str(db)]).exit_code == 0
    return db


def _dump(db: Path) -> list[str]:
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


# --- item 9: an import waits for a writer instead of failing at once ------------------------


#: Linux syscall numbers of nanosleep and clock_nanosleep: SQLite's busy handler sleeps
#: between attempts to take a lock, so a process in one of them is waiting for the lock.
SLEEP_SYSCALLS = {"x86_64": {"35", "230"}, "aarch64": {"101", "115"}}


def _sleeping(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return False
    return bool(fields) and fields[0] in SLEEP_SYSCALLS.get(os.uname().machine, set())


@pytest.mark.skipif(not Path("/proc/self/syscall").exists() or os.uname().machine not in SLEEP_SYSCALLS,
                    reason="needs Linux /proc/PID/syscall to see a process wait for the lock")
def test_import_waits_for_another_writer_instead_of_failing(tmp_path: Path) -> None:
    """Another connection holds the write lock, with uncommitted rows (as precode and train
    do between commits). ``coder import`` must wait for it, then succeed; with a deferred
    transaction it read first, and failed at once with 'database is locked' when the other
    writer committed under it."""
    db = _project(tmp_path)
    good = tmp_path / "good.csv"
    good.write_text("id,question,response\nw1,H1,Leadership mattered.\n")
    holder = Store(db)
    holder.db.conn.execute("BEGIN IMMEDIATE")
    holder.db.conn.execute("insert into imports (source_file, created_at) values ('holder', 'now')")
    importer = subprocess.Popen(
        [CODER, "import", str(good), "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The condition: the importer is asleep in SQLite's busy handler, waiting for us.
        while importer.poll() is None and not _sleeping(importer.pid):
            pass
        assert importer.poll() is None, importer.communicate()
    finally:
        holder.db.conn.execute("COMMIT")
        holder.close()
    out, err = importer.communicate(timeout=60)
    assert importer.returncode == 0, err
    assert "Imported 1 new responses" in out
    with Store(db) as store:
        assert [r.id for r in store.responses()] == ["w1"]


def test_write_transactions_begin_immediate(tmp_path: Path) -> None:
    """Two connections: one holds the write lock; the other's write transaction waits for
    its busy timeout rather than failing at once, and fails cleanly when it runs out."""
    db = _project(tmp_path)
    holder = Store(db)
    waiter = Store(db)
    waiter.db.conn.execute("PRAGMA busy_timeout = 50")
    holder.db.conn.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            with waiter.db.atomic():
                pass  # BEGIN IMMEDIATE itself waits, then reports the lock
    finally:
        holder.db.conn.execute("ROLLBACK")
    # A transaction that reads first holds the write lock from its BEGIN: the other
    # connection cannot commit under it (which used to fail the reader's write at once).
    holder.db.conn.execute("PRAGMA busy_timeout = 0")
    with waiter.db.atomic():
        waiter.db.execute("select count(*) from imports").fetchone()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            holder.db.conn.execute("insert into imports (source_file, created_at) values ('h', 'now')")
        waiter.db.execute("insert into imports (source_file, created_at) values ('w', 'now')")
    assert [row[0] for row in holder.db.execute("select source_file from imports")] == ["w"]
    holder.close()
    waiter.close()


# --- read-only projects -----------------------------------------------------------------------


def _drop_file_capabilities() -> None:
    """Run in the child before exec: drop root's power to ignore file permissions
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER) from the bounding set, so the exec'd
    coder meets read-only files as any user does."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop = 24
    for capability in (1, 2, 3):
        if libc.prctl(pr_capbset_drop, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _as_unprivileged() -> dict[str, object]:
    """subprocess arguments that run the CLI so that file permissions apply to it."""
    if os.geteuid() != 0:
        return {}
    return {"preexec_fn": _drop_file_capabilities}


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder the unprivileged user can reach (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="coder-ro-"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        for path in sorted(folder.rglob("*"), reverse=True):
            path.chmod(0o777)
        for path in sorted(folder.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        folder.rmdir()


def _run(args: list[str], folder: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(folder)}
    return subprocess.run([CODER, *args], capture_output=True, text=True, timeout=120, env=env,
                          cwd=folder, **_as_unprivileged())  # type: ignore[call-overload]


@pytest.mark.parametrize("what", ["file", "folder"])
def test_read_only_project_reads_and_refuses_writes_clearly(shared_folder: Path, what: str) -> None:
    folder = shared_folder / "project"
    folder.mkdir()
    db = _project(folder)
    good = shared_folder / "good.csv"
    good.write_text("id,question,response\nr1,H1,Leadership mattered.\n")
    assert CliRunner().invoke(cli, ["import", str(good), "--db", str(db)]).exit_code == 0
    more = shared_folder / "more.csv"
    more.write_text("id,question,response\nr2,H1,Data mattered.\n")
    before = _dump(db)
    # As a project copied to a shared folder arrives: one file, no WAL side files (with
    # writable side files present, SQLite could write even in a read-only folder).
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    for path in (folder, db, good, more):
        path.chmod(0o755 if path.is_dir() else 0o644)
    if what == "file":
        db.chmod(0o444)
    else:
        folder.chmod(0o555)
    status = _run(["status", "--db", str(db)], shared_folder)
    assert status.returncode == 0, status.stderr
    assert "responses: 1" in status.stdout
    listed = _run(["responses", "--db", str(db)], shared_folder)
    assert listed.returncode == 0 and "r1" in listed.stdout, listed.stderr
    write = _run(["import", str(more), "--db", str(db)], shared_folder)
    assert write.returncode == 1, write.stderr
    assert "read-only" in write.stderr and str(db) in write.stderr
    assert "Traceback" not in write.stderr
    assert _dump(db) == before


def test_a_project_cannot_be_created_in_a_read_only_folder(shared_folder: Path) -> None:
    folder = shared_folder / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    result = _run(["codebook", "add", "--example", "--db", str(folder / "new.db")], shared_folder)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "new.db" in result.stderr and "writable" in result.stderr


def test_future_schema_is_refused_before_any_write(tmp_path: Path) -> None:
    db = _project(tmp_path)
    conn = sqlite3.connect(db)
    conn.execute("insert into _sqlite_migrations (migration_set, name, applied_at) "
                 "values ('coder', 'm042_next_year', 'later')")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    with pytest.raises(ProjectFileError, match="schema version 42 .*m042_next_year.*knows schema version"):
        Store(db)
    assert db.read_bytes() == before


# --- item 10: encodings and JSON line breaks -----------------------------------------------------


def test_excel_unicode_text_csv_imports(tmp_path: Path) -> None:
    """Excel's "Unicode Text": UTF-16 LE with a BOM, tab-separated."""
    path = tmp_path / "unicode.txt"
    text = "id\tquestion\tresponse\r\nu1\tH1\tLeadership \u2014 caf\u00e9\r\n"
    path.write_bytes("\ufeff".encode("utf-16-le") + text.encode("utf-16-le"))
    for encoding in (None, "utf-16", "utf-16-le"):
        plan = plan_import(path, encoding=encoding, allow_unknown_questions=True)
        assert [r.text for r in plan.responses] == ["Leadership \u2014 caf\u00e9"]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\x0c", "\x0b", "\x1c", "\r"])
def test_json_strings_may_hold_unicode_line_breaks(tmp_path: Path, separator: str) -> None:
    text = f"first{separator}second"
    line = json.dumps({"id": "a", "question": "H1", "text": text, "labels": []}, ensure_ascii=False)
    line = line.replace("\\f", "\x0c").replace("\\u000b", "\x0b").replace("\\u001c", "\x1c")
    path = tmp_path / "breaks.jsonl"
    path.write_text(line + "\n" + json.dumps({"id": "b", "question": "H1", "text": "x"}) + "\n",
                    encoding="utf-8", newline="")
    plan = plan_import(path, allow_unknown_questions=True)
    assert [r.text for r in plan.responses] == [text, "x"]
    assert [r.source_row for r in plan.responses] == [1, 2]
    assert [number for number, _ in jsonl_objects(path)] == [1, 2]


def test_train_from_a_non_utf8_file_is_a_clear_error(tmp_path: Path) -> None:
    db = _project(tmp_path)
    path = tmp_path / "gold.jsonl"
    path.write_bytes(b'{"id": "g1", "text": "caf\xe9", "labels": []}\n')
    result = CliRunner().invoke(cli, ["train", "--from-file", str(path), "--db", str(db)])
    assert result.exit_code == 1, result.output
    assert "gold.jsonl, line 1, column" in result.output and "UTF-8" in result.output


# --- item 13: limits ----------------------------------------------------------------------------


def test_zip_bomb_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    path = tmp_path / "bomb.xlsx"
    path.write_bytes(zip_bomb(1100))
    assert path.stat().st_size < 2 * 1024 * 1024
    with pytest.raises(CoderError, match="1,024 MB.*--max-unzipped-mb"):
        plan_import(path)
    # Raising the unzip cap still stops the one giant cell after a few megabytes.
    with pytest.raises(CoderError, match="more than 2,000,000 characters.*--max-cell-chars"):
        plan_import(path, limits=ImportLimits(max_unzipped_mb=2000))


def test_limits_can_be_raised(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("id,question,response\nl1,H1," + "w" * 3000 + "\n")
    with pytest.raises(CoderError, match="row 2.*1,000.*--max-cell-chars"):
        plan_import(path, limits=ImportLimits(max_cell_chars=1000))
    plan = plan_import(path, limits=ImportLimits(max_cell_chars=5000), allow_unknown_questions=True)
    assert len(plan.responses[0].text) == 3000


def test_openpyxl_parses_with_defusedxml() -> None:
    import openpyxl

    assert openpyxl.DEFUSEDXML is True


# --- property-based fuzzing ----------------------------------------------------------------------

CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


def _plan_or_coder_error(path: Path) -> None:
    try:
        plan_import(path, allow_unknown_questions=True)
    except CoderError:
        pass


@FUZZ
@given(rows=st.lists(st.lists(CELL, min_size=1, max_size=5), min_size=1, max_size=6),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]),
       delimiter=st.sampled_from([",", ";", "\t"]))
def test_fuzz_csv_import_fails_only_with_coder_error(
    tmp_path: Path, rows: list[list[str]], encoding: str, delimiter: str
) -> None:
    import csv

    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter).writerows(rows)
    path = tmp_path / "fuzz.csv"
    path.write_bytes(buffer.getvalue().encode(encoding, errors="replace"))
    _plan_or_coder_error(path)


@FUZZ
@given(data=st.binary(max_size=300))
def test_fuzz_csv_bytes_fail_only_with_coder_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bytes.csv"
    path.write_bytes(b"id,question,response\n" + data)
    _plan_or_coder_error(path)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)


@FUZZ
@given(records=st.lists(st.dictionaries(st.sampled_from(["id", "question", "text", "role", "x"]),
                                        JSON_VALUES, max_size=5), min_size=1, max_size=4),
       noise=st.text(max_size=20))
def test_fuzz_jsonl_import_fails_only_with_coder_error(
    tmp_path: Path, records: list[dict[str, object]], noise: str
) -> None:
    lines = [json.dumps(record, ensure_ascii=False) for record in records] + [noise]
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8", errors="surrogatepass"))
    _plan_or_coder_error(path)
    try:
        list(jsonl_objects(path))
    except CoderError:
        pass


@FUZZ
@given(data=st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=15),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["name", "questions", "themes", "id", "label", "definition",
                                       "parent", "stance", "values", "codes", "group", "text"]),
                      children, max_size=4),
    max_leaves=15,
), suffix=st.sampled_from([".yaml", ".json"]))
def test_fuzz_codebook_loader_fails_only_with_coder_error(tmp_path: Path, data: object, suffix: str) -> None:
    import yaml

    path = tmp_path / f"fuzz{suffix}"
    text = json.dumps(data) if suffix == ".json" else yaml.safe_dump(data)
    path.write_text(text, encoding="utf-8")
    try:
        load_codebook(path)
    except CoderError:
        pass


@FUZZ
@given(text=st.text(max_size=200))
def test_fuzz_codebook_text_fails_only_with_coder_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    try:
        load_codebook(path)
    except CoderError:
        pass
