"""How fast the commands people type most often start: ``coder --help`` and ``coder status``.

Target (issue 16): each ≤ 0.3 s wall on this machine (2 cores). Each command runs as a
fresh process ``--runs`` times after one warm-up run (so the OS file cache is warm, as it is
for a user who just ran coder); the figure is the median wall time, with the CPU time
beside it (less sensitive to other jobs on a shared machine). ``status`` runs on a project
the size of a rapid-insight workshop (the demo, 45 answers) and on a 5,000-answer project
with a proposal and a decision for every answer. The import cost of the heaviest modules on
the status path comes from ``python -X importtime``.

Run: python benchmarks/bench_cli_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import write_result  # noqa: E402

TARGET_S = 0.3


def timed_runs(command: list[str], runs: int) -> dict[str, float]:
    """Median and p90 wall time, and median CPU time (user + system), of ``runs`` runs."""
    subprocess.run(command, capture_output=True, check=True)  # warm the file cache
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(runs):
        before = os.times()
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        walls.append(time.perf_counter() - start)
        after = os.times()
        cpus.append(
            (after.children_user - before.children_user)
            + (after.children_system - before.children_system)
        )
    walls.sort()
    return {
        "median_s": round(statistics.median(walls), 3),
        "p90_s": round(walls[int(0.9 * (len(walls) - 1))], 3),
        "cpu_median_s": round(statistics.median(cpus), 3),
    }


def big_project(path: Path, answers: int) -> None:
    """A project with ``answers`` answers to the built-in codebook, pre-coded by the
    embedded model (through the CLI, as a user builds one), a fifth of them accepted."""
    from coder.store import Store
    from schemas import Labels

    csv_path = path.with_suffix(".csv")
    rows = ["id,question,text"]
    rows += [
        f"a{n},H{n % 9 + 1},Answer {n}: joining up the pathway needs funding and staff time."
        for n in range(answers)
    ]
    csv_path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    coder = [sys.executable, "-m", "coder"]
    subprocess.run(
        [*coder, "codebook", "add", "--example", "--db", str(path)], check=True, capture_output=True
    )
    subprocess.run(
        [*coder, "import", str(csv_path), "--db", str(path)], check=True, capture_output=True
    )
    subprocess.run([*coder, "precode", "--db", str(path)], check=True, capture_output=True)
    store = Store(path)
    proposals = store.current_proposals()
    for response_id in sorted(proposals)[: answers // 5]:
        stored = proposals[response_id]
        assert stored.proposal is not None
        store.add_decision(
            response_id=response_id,
            reviewer="ann",
            action="accept",
            labels=Labels.from_proposal(stored.proposal),
            proposal_id=stored.id,
        )


def heaviest_imports(command: list[str], top: int = 12) -> list[dict[str, Any]]:
    """The modules with the largest cumulative import time on this command's path."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *command[1:]], capture_output=True, text=True
    )
    rows = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if match and len(match.group(3)) <= 7:  # the first four levels of imports
            rows.append({"module": match.group(4), "cumulative_ms": int(match.group(2)) / 1000})
    rows.sort(key=lambda row: -float(row["cumulative_ms"]))
    return rows[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command")
    args = parser.parse_args()
    coder = [sys.executable, "-m", "coder"]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        demo = Path(folder) / "demo.db"
        subprocess.run([*coder, "demo", "--db", str(demo)], capture_output=True, check=True)
        big = Path(folder) / "big.db"
        big_project(big, 5000)
        commands = {
            "coder --help": [*coder, "--help"],
            "coder status (demo, 45 answers)": [*coder, "--db", str(demo), "status"],
            "coder status (5,000 answers)": [*coder, "--db", str(big), "status"],
        }
        timings = {name: timed_runs(command, args.runs) for name, command in commands.items()}
        imports = heaviest_imports(commands["coder status (demo, 45 answers)"])
    python_alone = timed_runs([sys.executable, "-c", "pass"], args.runs)
    write_result(
        "cli_startup",
        {
            "target_s": TARGET_S,
            "method": "fresh process per run after one warm-up; median of --runs wall times",
            "runs": args.runs,
            "python_alone": python_alone,
            "commands": timings,
            "heaviest_imports_status": imports,
            "load_average_1_5_15": {"before": load_before, "after": os.getloadavg()},
            "meets_target": all(t["median_s"] <= TARGET_S for t in timings.values()),
        },
    )


if __name__ == "__main__":
    main()
