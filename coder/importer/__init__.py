"""Import responses from CSV, XLSX and JSONL files.

Two shapes are understood:

- **long**: one row per response, with a text column and (optionally) a question column;
- **wide**: a Microsoft Forms style export, one row per respondent and one column per
  question; every non-empty answer cell becomes one response. Headers are matched to the
  codebook's questions exactly, then tolerantly (normalised text, word similarity), and
  every tolerant match is reported; ``--map "D=H1"`` names a column's question outright.
  Forms' role and organisation columns become the attributes ``role``, ``organisation``
  and ``organisation_type``; its ID column is the respondent; times, email and name are
  dropped.

The whole file is read and checked before anything is written, and the write is one
transaction, so a bad file leaves the project exactly as it was. Ids are stable: the
file's id column when there is one, else a hash of file name + row + question, so
re-importing a file adds nothing twice; re-importing it under *other* question ids is
refused (:func:`reimport_conflicts`), since that would hold every answer twice.
"""

from coder.decoding import decode_bytes
from coder.importer.attributes import attribution_name
from coder.importer.columns import (
    ColumnPlan,
    JsonNumber,
    column_index,
    column_letter,
    shorten,
)
from coder.importer.headers import (
    HeaderMatch,
    match_question,
    match_question_header,
    normalise_text,
)
from coder.importer.model import (
    MAX_CELL_CHARS,
    MAX_UNZIPPED_MB,
    ImportLimits,
    ImportPlan,
    Shape,
    Table,
)
from coder.importer.plan import plan_import
from coder.importer.rows import extract_tags, stable_id
from coder.importer.text_files import read_csv, read_jsonl
from coder.importer.wide import parse_column_map, split_question_columns
from coder.importer.write import check_reimport, reimport_conflicts, run_import
from coder.importer.xlsx_reader import read_xlsx

__all__ = [
    "MAX_CELL_CHARS",
    "MAX_UNZIPPED_MB",
    "ColumnPlan",
    "HeaderMatch",
    "ImportLimits",
    "ImportPlan",
    "JsonNumber",
    "Shape",
    "Table",
    "attribution_name",
    "check_reimport",
    "column_index",
    "column_letter",
    "decode_bytes",
    "extract_tags",
    "match_question",
    "match_question_header",
    "normalise_text",
    "parse_column_map",
    "plan_import",
    "read_csv",
    "read_jsonl",
    "read_xlsx",
    "reimport_conflicts",
    "run_import",
    "shorten",
    "split_question_columns",
    "stable_id",
]
