"""NHS learning curve without fine-tuning (issue 14's targets: themes micro-F1 >= 0.58 /
0.63 / 0.67 / 0.70 at 50 / 100 / 200 / 500 reviewed answers).

Runs ``coder eval GOLD --backend local --learning-curve 0,50,100,200,500`` (a fixed,
seeded 20% of NHS dev held out; docs/results.md "NHS learning curve") and records each
point's themes micro/macro F1 and stance accuracy beside the target. The figures do not
depend on the machine; the elapsed time does (about 10 min on a quiet 2-core machine).

Run: python benchmarks/bench_learning_curve.py [--gold ../shared/gold/nhs_pxtextmining_v6]
Writes benchmarks/results/learning_curve.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from machine import write_result  # noqa: E402

TARGETS = {50: 0.58, 100: 0.63, 200: 0.67, 500: 0.70}
SIZES = "0,50,100,200,500"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gold", default=str(REPO.parent / "shared/gold/nhs_pxtextmining_v6"))
    parser.add_argument("--sizes", default=SIZES, help="learning-curve sizes (default %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "curve.json"
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "coder", "eval", args.gold, "--backend", "local",
             "--learning-curve", args.sizes, "--no-baselines", "--json-file", str(out)],
            check=True, cwd=REPO, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        report = json.loads(out.read_text())
    points = []
    for point in report["learning_curve"]:
        n_train = point["n_train"]
        points.append(
            {
                "n_train": n_train,
                "themes_micro_f1": point.get("themes.micro_f1"),
                "themes_macro_f1": point.get("themes.macro_f1"),
                "stance_accuracy": point.get("stance.accuracy"),
                "target_micro_f1": TARGETS.get(n_train),
            }
        )
    write_result(
        "learning_curve",
        {
            "command": f"coder eval {args.gold} --backend local --learning-curve {args.sizes}",
            "points": points,
            "elapsed_seconds": round(elapsed, 1),
            "load_average": list(os.getloadavg()),
        },
    )


if __name__ == "__main__":
    main()
