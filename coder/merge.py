"""``coder merge``: bring another copy's work into this project.

Coders who work apart (a copy of the project file on a laptop, on a train) merge later.
Both stores are append-only, so a merge is a union of rows keyed by *stable* ids.

Stable ids. Local row ids (``proposals.id``, ``decisions.id``, ``codebook_versions.version``)
are autoincrement integers: two copies hand out the same numbers to different rows, so
they cannot key a merge. A row's stable id (its *uid*) is the SHA-256 of its content (each
column as SQLite's ``quote()`` writes it) with every local id it holds replaced by the uid
of the row it points at (a decision's ``proposal_id`` and ``undoes``, a proposal's
``codebook_version``, which becomes that codebook's content hash). Codebook versions are
keyed by their content hash, models by their version, encoders by their name. Content
includes the microsecond ``created_at``, so two rows share a uid only when they record the
same event. It is computed when a merge runs, not stored: nothing on the write path
changes, a file copied before this feature existed merges like any other, and the same row
gets the same uid in every copy (a random uuid backfilled separately in two copies of an
old file would not).

Order. Which proposal is current and which decision is in force depend on row order within
one response (the latest row wins). So that A merged with B ends in the same state as B
merged with A, each response's proposals and decisions (and the codebook versions) of the
merged project are in time order (``created_at``; rows of one batch keep their order).
Where a response gets rows from the other copy, its rows up to the first place one of them
falls keep their local ids; its rows after it get new local ids above the largest one,
with every reference to them (undo -> decision, decision -> proposal, proposal/model ->
codebook version) rewritten. Responses only one copy touched keep every id. Contents are
never changed. Merging twice adds nothing and moves nothing.

Conflicts. A response that both copies labelled since they diverged, with different final
labels, is a conflict: both decisions are kept (never overwritten) and reported. When the
two decisions are by different reviewers, the adjudication screen lists the response
(``coder review --adjudicate A B``; :func:`coder.review.disagreements`); until an
adjudication, the later decision is the one in force, as in a single file.

Safety. The other file is read from a private copy (SQLite's backup API), so it is never
changed, even when it needs a schema upgrade. It must be a coder project with the same
response set as this one; the merge itself is one transaction (``BEGIN IMMEDIATE``): a
crash mid-merge leaves this project as it was.

Not merged: eval runs, imports, discovered theme candidates and Batch API jobs stay with
the copy that made them (they are local work logs, and theme candidates change in place);
so do `coder serve`'s sign-in tokens and leases (one deployment's access, not coding work).
Assignments (coder/assign.py) are merged like llm_calls: a union.

A review app open on this file during a merge keeps working; decisions re-laid by the
merge have new local ids, so that session's "undo" may no longer reach one of them.
"""

from __future__ import annotations

import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coder import merge_queries as queries
from coder.atomic import is_sqlite_file
from coder.errors import CoderError
from coder.merge_conflicts import Conflict, find_conflicts
from coder.merge_rows import (
    REFERENCES,
    SPECS,
    Row,
    Side,
    Spec,
    canonical_dump,
    light_names,
    load_rows,
    table_columns,
)
from coder.store import ProjectFileError, Store, describe_sqlite_error

#: canonical_dump and Conflict are part of this module's interface (tests and benchmarks
#: compare stores through it).
__all__ = ["Conflict", "MergeError", "MergeReport", "canonical_dump", "merge_projects"]

class MergeError(CoderError):
    """The other file cannot be merged into this project; nothing was changed."""


@dataclass
class MergeReport:
    """What a merge did."""

    ours: str
    theirs: str
    added: dict[str, int] = field(default_factory=dict)  # table -> rows added
    moved: dict[str, int] = field(default_factory=dict)  # table -> rows given new local ids
    kept_ours: dict[str, int] = field(default_factory=dict)  # same key, other content: ours kept
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def total_added(self) -> int:
        return sum(self.added.values())

    def lines(self) -> list[str]:
        """The report as text lines (what ``coder merge`` prints)."""
        out = [f"Merged {self.theirs} into {self.ours}:"]
        for table, added in self.added.items():
            extra = []
            if self.moved.get(table):
                extra.append(f"{self.moved[table]:,} re-laid in time order")
            if self.kept_ours.get(table):
                extra.append(f"{self.kept_ours[table]:,} differing, ours kept")
            out.append(f"  {table}: {added:,} added" + (f" ({'; '.join(extra)})" if extra else ""))
        if not self.total_added:
            out.append("  nothing new: this project already holds everything in it")
        if self.conflicts:
            out.append(f"  {len(self.conflicts):,} conflicting final labels, both kept "
                       "(adjudicate them: coder review --adjudicate A B):")
            out.extend(f"    {conflict.describe()}" for conflict in self.conflicts[:20])
            if len(self.conflicts) > 20:
                out.append(f"    ... and {len(self.conflicts) - 20:,} more")
        return out

    def as_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        return {
            "ours": self.ours,
            "theirs": self.theirs,
            "added": self.added,
            "moved": self.moved,
            "kept_ours": self.kept_ours,
            "conflicts": [conflict.__dict__ for conflict in self.conflicts],
        }


# --- the merge -------------------------------------------------------------------------


def _open_copy(path: Path, folder: Path) -> Store:
    """The other project, copied (SQLite backup) into ``folder`` and opened there."""
    if not path.is_file():
        raise MergeError(f"{path}: no such file to merge")
    if not is_sqlite_file(path):
        raise MergeError(f"{path}: not a coder project (not an SQLite database file); nothing was changed")
    copy = folder / "theirs.db"
    try:
        source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            target = sqlite3.connect(copy)
            try:
                source.backup(target)
            finally:
                target.close()
        finally:
            source.close()
    except sqlite3.Error as error:
        raise MergeError(describe_sqlite_error(path, error)) from None
    try:
        return Store(copy)
    except ProjectFileError as error:
        # The checks name the private copy; the user knows the file they gave.
        raise MergeError(str(error).replace(str(copy), str(path))) from None


def _check_same_project(store: Store, theirs: Store, theirs_path: Path) -> None:
    mine = queries.response_ids(store.db.conn)
    other = queries.response_ids(theirs.db.conn)
    if mine == other:
        return
    only_theirs, only_ours = other - mine, mine - other
    parts = []
    if only_theirs:
        files = ", ".join(queries.source_files_of(theirs.db.conn, sorted(only_theirs)[:1000])[:3])
        parts.append(f"{len(only_theirs):,} responses only in {theirs_path} (from {files})")
    if only_ours:
        files = ", ".join(queries.source_files_of(store.db.conn, sorted(only_ours)[:1000])[:3])
        parts.append(f"{len(only_ours):,} only in {store.path} (from {files})")
    shared = len(mine & other)
    hint = ("they look like different projects" if not shared else
            "import the same response files into both copies, then merge again")
    raise MergeError(
        f"{theirs_path} is not a copy of the project {store.path}: the response sets differ "
        f"({'; '.join(parts)}; {shared:,} shared). Nothing was changed: {hint}"
    )


def merge_projects(store: Store, theirs_path: Path | str) -> MergeReport:
    """Merge the project file ``theirs_path`` into ``store`` (one transaction).

    Raises :class:`MergeError` (nothing changed) for a file that is not a coder project or
    is a copy of another project.
    """
    theirs_path = Path(theirs_path)
    report = MergeReport(ours=str(store.path), theirs=str(theirs_path))
    with tempfile.TemporaryDirectory(prefix="coder-merge-") as folder:
        theirs = _open_copy(theirs_path, Path(folder))
        try:
            _check_same_project(store, theirs, theirs_path)
            columns = table_columns(store)
            their_columns = table_columns(theirs)
            for table, names in their_columns.items():
                if table in columns and set(names) != set(columns[table]):
                    raise MergeError(f"{theirs_path}: table {table} has columns {sorted(names)}, this "
                                     f"project {sorted(columns[table])}; open both with the same coder first")
            with store.db.atomic():
                _merge(store.db.conn, columns, theirs.db.conn, report)
        finally:
            theirs.close()
    return report


def _merge(conn: sqlite3.Connection, columns: dict[str, list[str]], their_conn: sqlite3.Connection,
           report: MergeReport) -> None:
    ours = Side(conn, True, columns)
    theirs = Side(their_conn, False, {table: names for table, names in columns.items()
                                        if table in queries.table_names(their_conn)})
    if "decisions" in columns:
        report.conflicts = find_conflicts(ours.rows["decisions"], theirs.rows.get("decisions", []),
                                      columns["decisions"])
    # uid -> local id in this project, kept current as tables are merged.
    local: dict[str, dict[str, Any]] = {}
    present = set(columns)
    for spec in SPECS:
        if spec.table not in columns:
            continue
        names = columns[spec.table]
        mine, other = ours.rows[spec.table], theirs.rows.get(spec.table, [])
        local[spec.table] = {row.uid: row.pk for row in mine}
        known = set(local[spec.table])
        new: list[Row] = []
        for row in other:
            if row.uid in known:
                continue
            known.add(row.uid)
            new.append(row)
        report.added[spec.table] = len(new)
        report.moved[spec.table] = 0
        if spec.uid_column is not None and spec.uid_column != spec.pk and not spec.ordered:
            # Same key (a model version) with other contents: keep ours, say so.
            by_uid = {row.uid: row for row in mine}
            report.kept_ours[spec.table] = sum(
                1 for row in other if row.uid in by_uid and row.key != by_uid[row.uid].key
            )
        if not new:
            continue
        load_rows(their_conn, spec, names, new)
        if spec.ordered:
            moved = _lay_out(conn, spec, names, mine, new, local)
            report.moved[spec.table] = len(moved)
            for table, column in REFERENCES.get(spec.table, ()):
                if table in present and column in columns[table]:
                    queries.remap_column(conn, table, column, moved)
        else:
            _append(conn, spec, names, new, local)


def _translate(row: Row, names: list[str], spec: Spec, local: dict[str, dict[str, Any]]) -> list[Any]:
    assert row.values is not None, "rows are loaded before they are inserted"
    values = list(row.values)
    if not row.refs:
        return values
    targets = dict(spec.refs)
    for position, target_uid in row.refs.items():
        if target_uid is None:
            continue
        found = local.get(targets[names[position]], {}).get(target_uid)
        # A dangling id of ours stays as it was; one of theirs means nothing here.
        values[position] = found if found is not None else (values[position] if row.ours else None)
    return values


def _time_order(mine: list[Row], new: list[Row]) -> list[Row]:
    """Both copies' rows in time order. Rows made in one batch share a time stamp and keep
    their order (a stable sort, each copy's rows in id order); rows of both copies with the
    very same microsecond, which only separate machines make, are ordered by uid, so either
    merge order lays them out alike."""
    merged = sorted([*mine, *new], key=lambda row: row.key[0])
    result: list[Row] = []
    start = 0
    while start < len(merged):
        end = start
        while end < len(merged) and merged[end].key[0] == merged[start].key[0]:
            end += 1
        group = merged[start:end]
        if len({row.ours for row in group}) > 1:
            group.sort(key=lambda row: row.uid)
        result.extend(group)
        start = end
    return result


def _lay_out(conn: sqlite3.Connection, spec: Spec, names: list[str], mine: list[Row], new: list[Row],
             local: dict[str, dict[str, Any]]) -> dict[Any, Any]:
    """Insert ``new`` so each group's rows (a response's proposals or decisions; all
    codebook versions) are in time order; returns our moved rows' old -> new ids."""
    group_at = light_names(spec, names).index(spec.group) if spec.group else None

    def group_of(row: Row) -> Any:
        return row.light[group_at] if group_at is not None else None

    new_by_group: dict[Any, list[Row]] = {}
    for row in new:
        new_by_group.setdefault(group_of(row), []).append(row)
    mine_by_group: dict[Any, list[Row]] = {group: [] for group in new_by_group}
    for row in mine:
        group = group_of(row)
        if group in mine_by_group:
            mine_by_group[group].append(row)
    tail: list[tuple[str, int, Row]] = []
    removed: list[Any] = []
    for group, rows in new_by_group.items():
        ours = mine_by_group[group]
        merged = _time_order(ours, rows)
        keep = 0
        while keep < len(ours) and merged[keep] is ours[keep]:
            keep += 1
        removed.extend(row.pk for row in ours[keep:])
        tail.extend((row.key[0], position, row) for position, row in enumerate(merged[keep:]))
    # New local ids in time order across groups (a group's own order kept on equal times).
    tail.sort(key=lambda item: (item[0], item[1]))
    load_rows(conn, spec, names, [row for _, _, row in tail if row.ours])
    next_pk = queries.max_value(conn, spec.table, spec.pk) + 1
    moved: dict[Any, Any] = {}
    for _, _, row in tail:
        if row.ours:
            moved[row.pk] = next_pk
        local[spec.table][row.uid] = next_pk
        next_pk += 1
    queries.delete_ids(conn, spec.table, spec.pk, removed)
    pk_at = names.index(spec.pk)
    values = []
    for _, _, row in tail:
        translated = _translate(row, names, spec, local)
        translated[pk_at] = local[spec.table][row.uid]
        values.append(translated)
    queries.insert_rows(conn, spec.table, names, values)
    return moved


def _append(conn: sqlite3.Connection, spec: Spec, names: list[str], new: list[Row],
            local: dict[str, dict[str, Any]]) -> None:
    if spec.keep_pk:
        queries.insert_rows(conn, spec.table, names, [_translate(row, names, spec, local) for row in new])
        return
    # A fresh local id (autoincrement): drop the pk column.
    pk_at = names.index(spec.pk)
    kept = [name for i, name in enumerate(names) if i != pk_at]
    rows = []
    for row in sorted(new, key=lambda row: row.key):
        translated = _translate(row, names, spec, local)
        rows.append([value for i, value in enumerate(translated) if i != pk_at])
    queries.insert_rows(conn, spec.table, kept, rows)


