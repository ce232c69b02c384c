"""The log of model calls, written fast: one plain INSERT per HTTP attempt.

``Store.log_llm_call`` inserts through sqlite-utils with ``alter=True``, which reads the
table's columns (and may add one) on every call: about a fifth of a millisecond of CPU
each, paid for every attempt of a pre-coding run. :class:`CallLog` reads the columns once
and inserts the known ones with a prepared statement, each row in its own transaction
(committed at once, as before, so a killed run keeps the audit row of every attempt that
finished). A field the table does not have yet goes through ``Store.log_llm_call``, which
adds the column.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coder.store import Store

#: fields stored as JSON text
JSON_FIELDS = ("request", "response", "response_ids")


class CallLog:
    """A ``call_logger`` for :class:`coder.llm.classifier.LLMClassifier` writing to ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.columns = {row[1] for row in store.db.execute("pragma table_info(llm_calls)")}

    def __call__(self, **fields: Any) -> int:
        """Record one model call (never the API key); returns its row id."""
        if not fields.keys() <= self.columns:
            row_id = self.store.log_llm_call(**fields)
            self.columns = {row[1] for row in self.store.db.execute("pragma table_info(llm_calls)")}
            return row_id
        row = {"created_at": self.store._now(), **fields}
        for key in JSON_FIELDS:
            if key in row and not isinstance(row[key], str | type(None)):
                row[key] = json.dumps(row[key], default=str)
        sql = f"insert into llm_calls ({', '.join(row)}) values ({', '.join('?' * len(row))})"
        with self.store.db.atomic():
            cursor = self.store.db.execute(sql, list(row.values()))
        return int(cursor.lastrowid)  # type: ignore[arg-type]
