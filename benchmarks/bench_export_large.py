"""Export and report at scale: 500,000 coded responses (issue 15, item 14).

Targets: ``coder export --format xlsx`` <= 60 s and <= 1 GB peak RSS; the memory of
``coder report``, ``coder export --format qdpx`` and ``coder precode --limit 3000`` grows
with what they write or propose, not with the project.

The project is built once (synthetic responses across H1-H9 and Q10, a model proposal for
every response, a reviewer decision for every 20th) and kept at ``--db``; each command runs
as its own ``coder`` process and is measured from outside (wall time, peak RSS of the
child).

Run: python benchmarks/bench_export_large.py [--rows 500000] [--db /tmp/bench500k.db]
     [--only export|report|qdpx|precode ...]

Figures of commands not run this time are kept from the last results file, and a command's
figures from the last file are kept under ``previous`` (with that run's commit), so a
before/after pair survives a partial rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import RESULTS, write_result  # noqa: E402

from coder.codebook import builtin_codebook_path, load_codebook  # noqa: E402
from coder.store import Store  # noqa: E402
from schemas import Labels, Proposal, Response, ThemeAssignment  # noqa: E402

WORDS = (
    "pathway adoption evidence leadership data funding patients staff system "
    "innovation local national business case workforce network learning scale"
).split()
ROLES = ["Innovator", "NHS organisation", "Programme Manager", "Clinician", "Commissioner"]
ORGANISATIONS = ["HI Wessex", "NHS Somerset", "Dorset ICB", "Acme Health Ltd", "University"]


def build_project(db: Path, rows: int) -> None:
    """A project with ``rows`` responses, a proposal each and a decision every 20th."""
    rng = random.Random(15)
    codebook = load_codebook(builtin_codebook_path())
    with Store(db) as store:
        version = store.save_codebook(codebook, source="builtin")
        questions = codebook.question_ids
        batch = 20_000
        for start in range(0, rows, batch):
            responses = []
            proposals: list[dict[str, Any]] = []
            for index in range(start, min(rows, start + batch)):
                question = questions[index % len(questions)]
                text = " ".join(rng.choices(WORDS, k=rng.randint(5, 60)))
                response = Response(
                    id=f"b{index}",
                    text=text,
                    question=question,
                    respondent=f"p{index // 10}",
                    attributes={
                        "role": rng.choice(ROLES),
                        "organisation": rng.choice(ORGANISATIONS),
                    },
                    source_file="bench.csv",
                    source_row=index + 2,
                )
                responses.append(response)
                codes = [
                    theme.id
                    for theme in codebook.themes
                    if theme.questions is None or question in theme.questions
                ]
                chosen = rng.sample(codes, k=min(len(codes), rng.randint(1, 2)))
                proposal = Proposal(
                    response_id=response.id,
                    question=question,
                    stance=codebook.stance.values[index % 3].id if codebook.stance else None,
                    themes=[
                        ThemeAssignment(code=code, evidence=" ".join(text.split()[:4]))
                        for code in chosen
                    ],
                    rationale="benchmark",
                    confidence=rng.random(),
                )
                proposals.append(
                    {
                        "response_id": response.id,
                        "backend": "local",
                        "model": "bench",
                        "proposal": proposal,
                        "codebook_version": version,
                    }
                )
            reviewed = [
                (row["response_id"], Labels.from_proposal(row["proposal"]))
                for row in proposals
                if int(row["response_id"][1:]) % 20 == 0
            ]
            store.add_responses(responses)
            store.add_proposals(proposals)
            with store.db.atomic():
                for response_id, labels in reviewed:
                    store.add_decision(
                        response_id=response_id, reviewer="ana", action="accept", labels=labels
                    )
            print(f"built {min(rows, start + batch)} responses", file=sys.stderr, flush=True)


def measure(command: list[str], cwd: Path) -> dict[str, Any]:
    """Run one ``coder`` command: wall time, CPU time (user + system: on a shared machine the
    wall time also counts other processes' turns) and the child's peak RSS (MiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    # GNU time reports the child's own peak; RUSAGE_CHILDREN is the max over all children.
    finished = subprocess.run(
        ["/usr/bin/time", "-f", "%M %U %S", *command],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    seconds = time.perf_counter() - started
    lines = finished.stderr.strip().splitlines()
    fields = lines[-1].split() if lines else []
    cpu_seconds = None
    if len(fields) == 3 and fields[0].isdigit():
        peak_kib = int(fields[0])
        cpu_seconds = round(float(fields[1]) + float(fields[2]), 1)
    else:
        peak_kib = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    if finished.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{finished.stderr}")
    return {
        "command": " ".join(command[1:]),
        "seconds": round(seconds, 1),
        "cpu_seconds": cpu_seconds,
        "peak_rss_mib": round(peak_kib / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/bench_export_500k.db"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_export_out"))
    parser.add_argument(
        "--only",
        choices=["export", "report", "qdpx", "precode"],
        action="append",
        default=None,
    )
    args = parser.parse_args()
    coder = str(Path(sys.executable).parent / "coder")
    if not args.db.exists():
        started = time.perf_counter()
        build_project(args.db, args.rows)
        print(f"built in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    only = set(args.only or ["export", "report", "qdpx", "precode"])
    results: dict[str, Any] = {"rows": args.rows}
    if "export" in only:
        results["export_xlsx"] = measure(
            [coder, "export", "--db", str(args.db), "--out", str(args.out / "export.xlsx")],
            args.out,
        )
        results["export_csv"] = measure(
            [coder, "export", "--db", str(args.db), "--out", str(args.out / "export.csv")],
            args.out,
        )
    if "report" in only:
        results["report_xlsx"] = measure(
            [coder, "report", "--db", str(args.db), "--out", str(args.out), "--format", "xlsx"],
            args.out,
        )
        results["report_md"] = measure(
            [coder, "report", "--db", str(args.db), "--out", str(args.out), "--format", "md"],
            args.out,
        )
    if "qdpx" in only:
        results["export_qdpx"] = measure(
            [coder, "export", "--db", str(args.db), "--out", str(args.out / "project.qdpx")],
            args.out,
        )
    if "precode" in only:
        # A real run of the offline backend over 3,000 responses (--redo: the benchmark
        # project is fully proposed already); it adds 3,000 proposals each time.
        results["precode_limit_3000"] = measure(
            [coder, "precode", "--db", str(args.db), "--redo", "--limit", "3000"], args.out
        )
    results["targets"] = {"export_xlsx_seconds": 60, "export_xlsx_peak_rss_mib": 1024}
    write_result("export_large", with_earlier(results))


def with_earlier(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` plus, from the last results file, the figures of commands not run now and
    (under ``previous``) the last figures of those run now, with the commit they came from."""
    path = RESULTS / "export_large.json"
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return results
    commit = (earlier.get("machine") or {}).get("commit")
    merged: dict[str, Any] = {}
    previous: dict[str, Any] = dict(earlier.get("previous") or {})
    for key, value in earlier.items():
        if key in ("benchmark", "machine", "previous") or not isinstance(value, dict):
            continue
        if "peak_rss_mib" not in value:
            continue
        if key in results:
            previous[key] = {**value, "commit": value.get("commit", commit)}
        else:
            merged[key] = {**value, "commit": value.get("commit", commit)}
    merged.update(results)
    if previous:
        merged["previous"] = previous
    return merged


if __name__ == "__main__":
    main()
