"""The project file seen through sqlite-utils: its table helpers and write transactions.

A module of its own because sqlite-utils (and numpy, which it imports whenever numpy is
installed) costs about 80 ms of start-up: :class:`coder.store.Store` reads through its plain
``sqlite3`` connection and builds this wrapper only when a command first writes, migrates
or uses a sqlite-utils helper, so ``coder status`` never imports it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from sqlite_utils import Database

from coder.project_file import ProjectFileError, describe_sqlite_error


class ProjectDatabase(Database):
    """A sqlite-utils Database whose transactions take the write lock when they begin.

    With a deferred ``BEGIN``, a transaction that reads and then writes cannot wait for
    another writer: in WAL mode SQLite fails its first write at once with "database is
    locked" (its snapshot is stale), so the busy timeout never applies, and ``coder
    import`` failed while precode or train was writing. ``BEGIN IMMEDIATE`` waits (up to
    the busy timeout) for the lock first. Nested blocks stay savepoints. On a read-only
    project any write transaction is refused with a clear message before it starts.
    """

    read_only = False
    label = ""

    @contextlib.contextmanager
    def atomic(self) -> Iterator[Database]:  # type: ignore[override]
        if self.conn.in_transaction:
            with super().atomic():
                yield self
            return
        if self.read_only:
            raise ProjectFileError(
                describe_sqlite_error(self.label, sqlite3.OperationalError("readonly"))
            )
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        else:
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                self.rollback()
                raise
