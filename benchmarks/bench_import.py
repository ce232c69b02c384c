"""Import throughput: a 100,000-row CSV into a fresh project (target: <= 10 s).

Run: python benchmarks/bench_import.py [--rows 100000]
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

WORDS = (
    "pathway adoption evidence leadership data funding patients staff system "
    "innovation local national business case workforce network learning scale"
).split()


def make_csv(path: Path, rows: int) -> None:
    rng = random.Random(7)
    questions = [f"H{i}" for i in range(1, 10)] + ["Q10"]
    tags = ["#NHSSomerset", "#Dorset", "#HIWessex", "#ICS", ""]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "respondent", "role", "question", "response"])
        for row in range(rows):
            text = " ".join(rng.choices(WORDS, k=rng.randint(5, 60))) + " " + rng.choice(tags)
            writer.writerow(
                [
                    f"b{row}",
                    f"p{row // 10}",
                    rng.choice(["Innovator", "NHS organisation"]),
                    rng.choice(questions),
                    text,
                ]
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "responses.csv"
        make_csv(source, args.rows)
        codebook = load_codebook(builtin_codebook_path())
        with Store(Path(tmp) / "bench.db") as store:
            store.save_codebook(codebook)
            start = time.perf_counter()
            plan = plan_import(source, codebook=codebook)
            parsed = time.perf_counter()
            added, _ = run_import(store, plan)
            done = time.perf_counter()
            assert added == args.rows
            # A real import holds one plan: drop this one before planning the re-import,
            # or the peak RSS counts two 100k-response plans at once (~510 instead of ~320 MiB).
            del plan
            start2 = time.perf_counter()
            _, skipped = run_import(store, plan_import(source, codebook=codebook))
            reimport = time.perf_counter() - start2
            assert skipped == args.rows
    write_result(
        "import",
        {
            "rows": args.rows,
            "seconds_total": round(done - start, 2),
            "seconds_parse_and_check": round(parsed - start, 2),
            "seconds_write": round(done - parsed, 2),
            "rows_per_second": round(args.rows / (done - start)),
            "seconds_reimport_no_op": round(reimport, 2),
            "target_seconds": 10,
            "meets_target": (done - start) <= 10,
            "peak_rss_mib": peak_rss_mib(),
        },
    )


if __name__ == "__main__":
    main()
