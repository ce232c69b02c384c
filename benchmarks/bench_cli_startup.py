"""How fast the commands people type most often start: ``coder --help`` and ``coder status``.

Target (issue 16): each ≤ 0.3 s wall on this machine (2 cores). Each command runs as a
fresh process ``--runs`` times after one warm-up run (so the OS file cache is warm, as it is
for a user who just ran coder); the figure is the median wall time, with the CPU time
beside it (less sensitive to other jobs on a shared machine). ``status`` runs on a project
the size of a rapid-insight workshop (the demo, 45 answers) and on a 5,000-answer project
with a proposal for every answer and a decision for a fifth of them. The import cost of
the heaviest modules on the status path comes from ``python -X importtime``, with the heavy
libraries status should not import (``status_imports``).

``--baseline DIR`` also times another version of coder in the same run, for a ratio that a
loaded machine distorts less than the absolute figures (DIR: a source tree, e.g.
``git archive HEAD coder schemas prompts | tar -x -C DIR``, run with PYTHONPATH=DIR).

Run: python benchmarks/bench_cli_startup.py [--runs 15] [--baseline DIR]
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
#: Libraries ``coder status`` should not import (issue 16): sqlite-utils with numpy, and
#: pydantic (through the schemas).
HEAVY = ("sqlite_utils", "numpy", "pydantic")


def timed_runs(command: list[str], runs: int, tree: Path | None = None) -> dict[str, float]:
    """Median and p90 wall time, and median CPU time (user + system), of ``runs`` runs (of
    the coder in source tree ``tree``, if given)."""
    env = None if tree is None else {**os.environ, "PYTHONPATH": str(tree)}
    # ``python -m`` puts the working folder first on sys.path: the tree's, for its coder.
    where = None if tree is None else str(tree)
    subprocess.run(command, capture_output=True, check=True, env=env, cwd=where)  # warm the cache
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(runs):
        before = os.times()
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, env=env, cwd=where)
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


def import_profile(command: list[str], top: int = 12) -> dict[str, Any]:
    """The modules with the largest cumulative import time on this command's path, and
    which of the :data:`HEAVY` libraries it imports."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *command[1:]], capture_output=True, text=True
    )
    rows = []
    imported = set()
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if not match:
            continue
        imported.add(match.group(4))
        if len(match.group(3)) <= 7:  # the first four levels of imports
            rows.append({"module": match.group(4), "cumulative_ms": int(match.group(2)) / 1000})
    rows.sort(key=lambda row: -float(row["cumulative_ms"]))
    return {"heaviest": rows[:top], "imports": {name: name in imported for name in HEAVY}}


def check_tree(tree: Path) -> Path:
    """``tree`` resolved, after checking that python run there imports its coder."""
    tree = tree.resolve()
    found = subprocess.run(
        [sys.executable, "-c", "import coder; print(coder.__file__)"],
        capture_output=True, text=True, check=True, cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
    ).stdout.strip()
    if not Path(found).resolve().is_relative_to(tree):
        raise SystemExit(f"--baseline {tree}: python imports coder from {found}, not from there")
    return tree


def baseline_timings(
    tree: Path, commands: dict[str, list[str]], runs: int, timings: dict[str, Any]
) -> dict[str, Any]:
    """The same commands run by the coder in ``tree``, and this coder's time over theirs."""
    theirs = {name: timed_runs(command, runs, tree) for name, command in commands.items()}
    return {
        "tree": str(tree),
        "commands": theirs,
        "ratio_median_wall": {
            name: round(timings[name]["median_s"] / theirs[name]["median_s"], 2) for name in theirs
        },
        "ratio_median_cpu": {
            name: round(timings[name]["cpu_median_s"] / theirs[name]["cpu_median_s"], 2)
            for name in theirs
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command")
    parser.add_argument(
        "--baseline", type=Path, default=None,
        help="source tree of another coder version to time in the same run (a ratio)",
    )
    args = parser.parse_args()
    baseline_tree = check_tree(args.baseline) if args.baseline is not None else None
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
        profile = import_profile(commands["coder status (demo, 45 answers)"])
        baseline = (
            baseline_timings(baseline_tree, commands, args.runs, timings)
            if baseline_tree is not None
            else None
        )
    python_alone = timed_runs([sys.executable, "-c", "pass"], args.runs)
    write_result(
        "cli_startup",
        {
            "target_s": TARGET_S,
            "method": "fresh process per run after one warm-up; median of --runs wall times",
            "runs": args.runs,
            "python_alone": python_alone,
            "commands": timings,
            "heaviest_imports_status": profile["heaviest"],
            "status_imports": profile["imports"],
            "baseline": baseline,
            "load_average_1_5_15": {"before": load_before, "after": os.getloadavg()},
            "meets_target": all(t["median_s"] <= TARGET_S for t in timings.values()),
        },
    )


if __name__ == "__main__":
    main()
