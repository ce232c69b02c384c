"""Run every benchmark and write benchmarks/results/SUMMARY.md.

Each ``bench_*.py`` runs in its own process (so its peak RSS is its own) and writes
``results/<name>.json``; the summary is a table of figure, target, met?, the command that
produced it and the machine. Benchmarks not listed in ``BENCHES`` are found by name and
run without arguments.

Run: python benchmarks/run_all.py            # everything, full figures (~15 min)
     python benchmarks/run_all.py --quick    # shorter pre-coding run at concurrency 1
     python benchmarks/run_all.py --only eval tokens
     python benchmarks/run_all.py --summary-only   # rebuild SUMMARY.md from the results
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

#: result name -> script and arguments (the full, default figure)
BENCHES: dict[str, list[str]] = {
    "import": ["bench_import.py"],
    "precode": ["bench_precode.py"],
    "tokens": ["bench_tokens.py"],
    "eval": ["bench_eval.py"],
    "embedded": ["bench_embedded.py", "all"],
    "review": ["bench_review.py"],
}
QUICK_ARGS = {"precode": ["--quick"]}

Row = tuple[str, str, str, bool | None]  # figure, value, target, met


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _rows_import(data: dict[str, Any]) -> list[Row]:
    return [
        (
            f"import {data['rows']:,} rows (CSV -> store)",
            f"{data['seconds_total']} s",
            f"<= {data['target_seconds']} s",
            data["meets_target"],
        )
    ]


def _rows_precode(data: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for run in data["runs"]:
        rows.append(
            (
                f"precode {run['responses']:,} responses, concurrency {run['concurrency']}, "
                f"{int(data['latency_seconds'] * 1000)} ms latency: ratio to ideal",
                f"{run['ratio_to_ideal']} ({run['seconds']} s vs {run['ideal_seconds']} s; "
                f"client CPU {run.get('client_cpu_ms_per_response', '?')} ms/response)",
                ">= 0.9",
                run["meets_target"],
            )
        )
    load = data.get("load_average_1_5_15")
    if load:
        rows.append(
            (
                "precode: machine load average (1 min) before / after (2 cores, shared)",
                f"{load['before'][0]} / {load['after'][0]}",
                "-",
                None,
            )
        )
    rows.append(
        (
            "precode second run over the same project: calls",
            str(data["second_run_calls"]),
            "0",
            data["second_run_calls"] == 0,
        )
    )
    return rows


def _rows_tokens(data: dict[str, Any]) -> list[Row]:
    single, batched = data["single"], data["batched"]
    return [
        (
            f"prompt tokens/response, {data['codes']}-code codebook: batch "
            f"{batched['batch_size']} vs 1",
            f"{batched['sent_prompt_tokens_per_response']} vs "
            f"{single['sent_prompt_tokens_per_response']} "
            f"(x{data['batched_over_single_sent']})",
            "<= x0.5",
            data["meets_target"],
        )
    ]


def _rows_eval(data: dict[str, Any]) -> list[Row]:
    return [
        (
            f"eval scoring {data['items']:,} items x {data['codes']} codes, "
            f"{data['resamples']:,} bootstrap resamples",
            f"{data['seconds']} s",
            f"<= {data['target_seconds']} s",
            data["meets_target"],
        )
    ]


def _rows_review(data: dict[str, Any]) -> list[Row]:
    targets = data.get("targets", {})
    rows: list[Row] = []
    for run in data.get("runs", []):
        p95 = _get(run, "accept_next", "p95_ms")
        if p95 is not None and "accept_next_p95_ms" in targets:
            limit = targets["accept_next_p95_ms"]
            rows.append(
                (
                    f"review {run['responses']:,} responses: accept -> next item p95",
                    f"{p95} ms",
                    f"<= {limit} ms",
                    p95 <= limit,
                )
            )
        if "startup_s" in run and "startup_s" in targets:
            limit = targets["startup_s"]
            rows.append(
                (
                    f"review {run['responses']:,} responses: start-up",
                    f"{run['startup_s']} s",
                    f"<= {limit} s",
                    run["startup_s"] <= limit,
                )
            )
        if "peak_rss_mib" in run:
            rows.append(
                (
                    f"review {run['responses']:,} responses: peak RSS",
                    f"{run['peak_rss_mib']} MiB",
                    "-",
                    None,
                )
            )
    return rows


def _rows_embedded(data: dict[str, Any]) -> list[Row]:
    """Accuracy and speed of the embedded classifier against the targets of its issue."""
    rows: list[Row] = []
    for figure, path, target, minimum in [
        (
            "embedded NHS dev zero-shot themes micro F1",
            ("nhs_pxtextmining_v6", "zero_shot", "themes_micro_f1"),
            ">= 0.45",
            0.45,
        ),
        (
            "embedded NHS dev 5-fold CV themes micro F1",
            ("nhs_pxtextmining_v6", "cv5", "themes_micro_f1"),
            ">= 0.72",
            0.72,
        ),
        (
            "embedded NHS dev 5-fold CV themes macro F1",
            ("nhs_pxtextmining_v6", "cv5", "themes_macro_f1"),
            ">= 0.58",
            0.58,
        ),
        (
            "embedded NHS dev 5-fold CV stance accuracy",
            ("nhs_pxtextmining_v6", "cv5", "stance_accuracy"),
            ">= 0.70",
            0.70,
        ),
        (
            "embedded NHS dev relevance F1 (not relevant)",
            ("nhs_pxtextmining_v6", "cv5", "relevance_f1_not_relevant"),
            ">= 0.97",
            0.97,
        ),
        ("embedded ArgKP dev mAP (strict)", ("argkp_2021", "map_strict"), ">= 0.80", 0.80),
        ("embedded ArgKP dev mAP (relaxed)", ("argkp_2021", "map_relaxed"), "-", None),
        (
            "embedded ArgKP dev stance accuracy (unseen motions)",
            ("argkp_2021", "stance_accuracy"),
            ">= 0.85",
            0.85,
        ),
        (
            "embedded training on NHS dev, incl. encoding (s)",
            ("nhs_pxtextmining_v6", "train_seconds_full_incl_encoding"),
            "<= 120",
            None,
        ),
        (
            "embedded proposals/s, trained, incl. encoding",
            ("speed", "propose_responses_per_second_trained"),
            ">= 500",
            500.0,
        ),
    ]:
        value = _get(data, *path)
        if value is None:
            continue
        met: bool | None = None
        if minimum is not None:
            met = float(value) >= minimum
        elif target.startswith("<="):
            met = float(value) <= float(target[2:])
        rows.append((figure, str(value), target, met))
    return rows


EXTRACTORS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "import": _rows_import,
    "precode": _rows_precode,
    "tokens": _rows_tokens,
    "eval": _rows_eval,
    "review": _rows_review,
    "embedded": _rows_embedded,
}


def _generic_rows(name: str, data: dict[str, Any]) -> list[Row]:
    if "meets_target" in data:
        return [
            (
                name,
                "see results/" + name + ".json",
                str(data.get("target", "-")),
                data["meets_target"],
            )
        ]
    return []


def _machine(data: dict[str, Any]) -> str:
    machine = data.get("machine") or {}
    when = str(machine.get("measured_at", ""))[:16].replace("T", " ")
    cores = machine.get("cores") or machine.get("cpus") or "?"
    cpu = machine.get("cpu") or machine.get("processor") or machine.get("platform") or "?"
    return f"{cores} cores, {cpu}, {when}".rstrip(", ")


def _command(name: str, data: dict[str, Any]) -> str:
    if data.get("command"):
        return str(data["command"])
    script = BENCHES.get(name, [f"bench_{name}.py"])
    return "python benchmarks/" + " ".join(script)


def summary(results: Path = RESULTS) -> str:
    """The SUMMARY.md table from every results/*.json."""
    lines = [
        "# Benchmark summary",
        "",
        "Written by `python benchmarks/run_all.py`; each row comes from `results/<name>.json`,",
        "which also holds the full machine description. Figures are from a shared machine:",
        "other work running at the same time slows the CPU-bound ones.",
        "",
        "| figure | value | target | met? | command | machine |",
        "|---|---|---|---|---|---|",
    ]
    for path in sorted(results.glob("*.json")):
        data = json.loads(path.read_text())
        name = path.stem
        extractor = EXTRACTORS.get(name)
        rows = extractor(data) if extractor else _generic_rows(name, data)
        if "peak_rss_mib" in data:
            rows.append(
                (f"{name}: peak RSS of the benchmark", f"{data['peak_rss_mib']} MiB", "-", None)
            )
        for figure, value, target, met in rows:
            mark = "-" if met is None else ("yes" if met else "**no**")
            lines.append(
                f"| {figure} | {value} | {target} | {mark} | `{_command(name, data)}` | "
                f"{_machine(data)} |"
            )
    return "\n".join(lines) + "\n"


def discover() -> dict[str, list[str]]:
    benches = dict(BENCHES)
    for script in sorted(HERE.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if not any(args[0] == script.name for args in benches.values()):
            benches[name] = [script.name]
    return {name: args for name, args in benches.items() if (HERE / args[0]).exists()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", default=None, help="run only these benchmarks")
    parser.add_argument("--skip", nargs="+", default=[], help="do not run these")
    parser.add_argument("--quick", action="store_true", help="shorter runs where offered")
    parser.add_argument("--summary-only", action="store_true", help="run nothing")
    args = parser.parse_args()
    failures = []
    if not args.summary_only:
        for name, script in discover().items():
            if (args.only and name not in args.only) or name in args.skip:
                continue
            command = [sys.executable, str(HERE / script[0]), *script[1:]]
            if args.quick:
                command += QUICK_ARGS.get(name, [])
            print(f"== {name}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
            started = time.perf_counter()
            finished = subprocess.run(command, cwd=HERE.parent, stdout=subprocess.DEVNULL)
            seconds = time.perf_counter() - started
            print(f"   exit {finished.returncode} after {seconds:.0f} s", file=sys.stderr)
            if finished.returncode != 0:
                failures.append(name)
    (RESULTS / "SUMMARY.md").write_text(summary())
    print(f"wrote {RESULTS / 'SUMMARY.md'}", file=sys.stderr)
    if failures:
        sys.exit(f"benchmarks failed: {', '.join(failures)}")


if __name__ == "__main__":
    main()
