"""Import of a very wide file: 40,000 columns (issue 15, item 13; target: <= 5 s).

A file with tens of thousands of columns used to take 73 s to plan, because work per
column grew with the number of columns (``header.count`` per header, a scan of the
attribute names kept so far per column). Two shapes are timed, each planned and written
into a fresh project with the built-in codebook:

- wide: a respondent id, questions H1 and H2, and 40,000 other columns (attributes);
- long: id, question and response columns, and 40,000 attribute columns.

Run: python benchmarks/bench_import_wide.py [--columns 40000] [--rows 20]
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import peak_rss_mib, write_result  # noqa: E402

from coder.codebook import builtin_codebook_path, load_codebook  # noqa: E402
from coder.importer import plan_import, run_import  # noqa: E402
from coder.store import Store  # noqa: E402

TARGET_SECONDS = 5.0


def make_wide(path: Path, columns: int, rows: int) -> None:
    """Respondent id, two question columns, then ``columns`` attribute columns."""
    rng = random.Random(3)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ID", "H1", "H2", *(f"field {i}" for i in range(columns))])
        for row in range(rows):
            writer.writerow(
                [f"p{row}", "Leadership mattered a great deal to us.", "Data was hard to get.",
                 *(str(rng.randint(0, 9)) for _ in range(columns))]
            )


def make_long(path: Path, columns: int, rows: int) -> None:
    """id, question, response, then ``columns`` attribute columns."""
    rng = random.Random(4)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "question", "response", *(f"field {i}" for i in range(columns))])
        for row in range(rows):
            writer.writerow(
                [f"r{row}", "H1", "Leadership mattered.", *(str(rng.randint(0, 9)) for _ in range(columns))]
            )


def time_import(source: Path, db: Path) -> tuple[float, float, int]:
    """(seconds to plan, seconds to write, responses added) for one import."""
    codebook = load_codebook(builtin_codebook_path())
    with Store(db) as store:
        store.save_codebook(codebook)
        start = time.perf_counter()
        plan = plan_import(source, codebook=codebook)
        planned = time.perf_counter()
        added, _ = run_import(store, plan)
        done = time.perf_counter()
    return planned - start, done - planned, added


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--columns", type=int, default=40_000)
    parser.add_argument("--rows", type=int, default=20)
    args = parser.parse_args()
    result: dict[str, object] = {"columns": args.columns, "rows": args.rows,
                                 "target_seconds": TARGET_SECONDS}
    with tempfile.TemporaryDirectory() as tmp:
        for shape, make in (("wide", make_wide), ("long", make_long)):
            source = Path(tmp) / f"{shape}.csv"
            make(source, args.columns, args.rows)
            plan_seconds, write_seconds, added = time_import(source, Path(tmp) / f"{shape}.db")
            assert added == args.rows * (2 if shape == "wide" else 1)
            result[f"{shape}_seconds_plan"] = round(plan_seconds, 2)
            result[f"{shape}_seconds_write"] = round(write_seconds, 2)
            result[f"{shape}_seconds_total"] = round(plan_seconds + write_seconds, 2)
    result["meets_target"] = all(
        float(result[f"{shape}_seconds_total"]) <= TARGET_SECONDS for shape in ("wide", "long")  # type: ignore[arg-type]
    )
    result["peak_rss_mib"] = peak_rss_mib()
    write_result("import_wide", result)


if __name__ == "__main__":
    main()
