"""The cascade's cost arithmetic on NHS dev: LLM share, calls, tokens and micro-F1.

A project holds every NHS dev answer; a seeded ``--reviewed`` of them carry their gold
labels as reviewers' decisions, the local model is trained on those (``coder train``) and
they get its proposals, as a project's reviewed answers would have. The other answers are
then pre-coded twice from the same starting file:

- all-LLM: ``precode`` with the openai backend for every answer;
- cascade: ``coder.cascade.cascade`` (the local model settles what it is confident
  about, calibrated on the reviewed answers; the LLM codes the rest).

The "LLM" is tests/llm_gold_server.py in its own process: it answers from the gold labels
with ``--error-rate`` of each field wrong. That is arithmetic for cost and for whether
the cascade loses agreement against the same LLM, **never a model-quality figure**.
Both runs are scored against gold on the same answers with the eval suite's scoring.

Target (issue 18): LLM calls <= 0.5x the all-LLM run at no loss of micro-F1.

Reviewers judged the LLM's proposals of the reviewed answers (zero-shot shortlist, as
before any training), so the cascade's target is the LLM's measured agreement; both runs
then send each answer its shortlist (trained ranking, cut chosen on the reviewed answers,
three examples), as ``coder precode --backend openai`` would.

Run: python benchmarks/bench_cascade.py [--reviewed 1000] [--error-rate 0.1] [--quick]
[--runs all_llm,cascade,cascade_no_joint,cascade_single_cut] [--curve 250,500,1000,2000] [--no-shortlist]
[--keep-start FILE | --start FILE] [--dump-calibration FILE.npz]

The gold server stops with the benchmark, also when it is killed (SIGTERM runs the
cleanup; on SIGKILL the server sees its stdin close).

Writes benchmarks/results/cascade.json (``--out`` names another file).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from machine import write_result  # noqa: E402

from coder.cascade import RULES, cascade  # noqa: E402
from coder.llm.classifier import LLMClassifier  # noqa: E402
from coder.precode import precode  # noqa: E402
from coder.store import Store  # noqa: E402
from eval.gold import GoldItem, load_gold  # noqa: E402
from eval.runner import gold_labels  # noqa: E402
from eval.scoring import Prediction, score  # noqa: E402
from eval.simulate import build_project  # noqa: E402

GOLD = REPO.parent / "shared" / "gold" / "nhs_pxtextmining_v6"


@contextlib.contextmanager
def gold_server(gold: Path, error_rate: float) -> Iterator[str]:
    """The gold-answering server in its own process (so it does not share our GIL); yields
    its base URL and stops it on the way out, whatever ends the benchmark."""
    server = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "llm_gold_server.py"), str(gold),
         "--error-rate", str(error_rate), "--until-stdin-closes"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip()
    finally:
        server.terminate()
        server.wait()


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so ``finally`` blocks run (the server stops, the work
    folder goes); SIGKILL is covered by the server's watch on its stdin."""

    def _exit(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


def llm(
    base_url: str, concurrency: int, store: Store | None = None, shortlist: bool = True
) -> LLMClassifier:
    """The LLM as ``coder precode --backend openai`` builds it for the project ``store``:
    its trained model ranks the codes, its reviewed answers choose the shortlist's cut and
    give examples (``shortlist=False``: every call carries the whole codebook)."""
    return LLMClassifier(
        model="gpt-4o-mini", base_url=base_url, mode="tools", concurrency=concurrency,
        initial_wait=0.01, model_store=store, shortlist=shortlist,
    )  # fmt: skip


def prepare_project(
    path: Path,
    codebook: Any,
    items: list[GoldItem],
    reviewed: list[GoldItem],
    judged_llm: LLMClassifier | None = None,
) -> dict[str, Any]:
    """The starting file: answers imported, reviewed ones labelled, local model trained.

    With ``judged_llm`` the reviewed answers were first pre-coded by that LLM and the
    reviewers judged its proposals, so the cascade's target is the LLM's measured level.
    """
    from coder.embedded.retrain import retrain_and_repropose

    store = build_project(path, codebook, items)
    try:
        judged: dict[str, int] = {}
        if judged_llm is not None:
            precode(store, judged_llm, responses=[store.response(item.id) for item in reviewed])
            judged = {
                response_id: stored.id
                for response_id, stored in store.current_proposals(
                    [item.id for item in reviewed]
                ).items()
            }
        for item in reviewed:
            store.add_decision(
                response_id=item.id,
                reviewer="gold",
                action="correct",
                labels=gold_labels(item),
                proposal_id=judged.get(item.id),
            )
        started = time.perf_counter()
        summary = retrain_and_repropose(store, repropose=False)
        train_seconds = time.perf_counter() - started
        # The reviewed answers had proposals before anyone reviewed them.
        from coder.backends.base import get_classifier

        if judged_llm is None:
            local = get_classifier("local", model_store=store)
            precode(store, local, responses=[store.response(item.id) for item in reviewed])
        return {"train_seconds": round(train_seconds, 1), "fields": summary.fields}
    finally:
        store.close()


def scored(path: Path, codebook: Any, items: list[GoldItem], resamples: int) -> dict[str, Any]:
    with Store(path) as store:
        current = store.current_proposals([item.id for item in items])
        routes: dict[str, int] = {}
        predictions = {}
        for response_id, stored in current.items():
            if stored.proposal is None:
                continue
            predictions[response_id] = Prediction.from_proposal(stored.proposal)
            route = stored.backend
            routes[route] = routes.get(route, 0) + 1
    metrics = score(codebook, items, predictions, n_resamples=resamples, seed=0)
    return {
        "themes_micro_f1": metrics["themes"]["micro_f1"],
        "themes_micro_f1_ci": metrics["ci"].get("themes.micro_f1"),
        "themes_macro_f1": metrics["themes"]["macro_f1"],
        "stance_accuracy": (metrics.get("stance") or {}).get("accuracy"),
        "relevance_f1_not_relevant": (metrics.get("relevance") or {}).get("f1"),
        "proposals_by_backend": routes,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gold", type=Path, default=GOLD)
    parser.add_argument("--reviewed", type=int, default=1000)
    parser.add_argument("--error-rate", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--precision", type=float, default=None, help="--cascade-precision")
    parser.add_argument("--resamples", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="600 answers, 200 reviewed")
    parser.add_argument(
        "--reviewers-judged",
        choices=("llm", "local"),
        default="llm",
        help="whose proposals reviewers judged: the LLM's (the cascade's target is then the "
        "LLM's measured level, the default) or the local model's (target: the default 0.9)",
    )
    parser.add_argument("--judged-llm", action="store_true", help="the same as the default")
    parser.add_argument(
        "--no-shortlist", action="store_true", help="send the whole codebook (the old runs)"
    )
    parser.add_argument(
        "--runs",
        default="all_llm,cascade",
        help="runs to make, comma list: all_llm, cascade (as 'coder precode --cascade' runs: "
        "per-field cuts or the joint score where they settle more), cascade_no_joint "
        "(single or per-field cuts, the rules before the joint score), cascade_single_cut "
        "(one overall cut)",
    )
    parser.add_argument("--out", default="cascade", help="results file name")
    parser.add_argument(
        "--curve",
        help="comma list of reviewed-answer counts (e.g. 250,500,1000,2000): one project "
        "and every run per count, the LLM share at each in one results file",
    )
    parser.add_argument(
        "--keep-start", type=Path, help="also copy the prepared (trained) starting file here"
    )
    parser.add_argument(
        "--start",
        type=Path,
        help="reuse a starting file kept with --keep-start (same gold, --reviewed, --quick)",
    )
    parser.add_argument(
        "--dump-calibration",
        type=Path,
        help="write the cascade's held-out calibration arrays (npz) here, for study",
    )
    return parser.parse_args()


def dump_calibration(path: Path, calibration: Any) -> None:
    """The held-out reviewed answers' confidences and agreement rows, as calibration saw them."""
    import numpy as np

    data = calibration.held_out_data if calibration is not None else None
    if data:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {name: np.asarray(value) for name, value in data.items()}
        np.savez(path, **arrays)
        print(f"Wrote {path}", file=sys.stderr)


def run_one(
    name: str, path: Path, base_url: str, codebook: Any, target: list[GoldItem],
    args: argparse.Namespace,
) -> dict[str, Any]:  # fmt: skip
    """One run (all-LLM or a cascade) on a copy of the starting file, scored on ``target``."""
    started = time.perf_counter()
    with Store(path) as store:
        classifier = llm(base_url, args.concurrency, store, not args.no_shortlist)
        if name == "all_llm":
            summary = precode(store, classifier)
            run: dict[str, Any] = {"llm_share": 1.0, "llm": summary.as_dict()}
        else:
            rules = {
                "cascade_single_cut": ("single",),
                "cascade_no_joint": ("single", "per_field"),
            }.get(name, RULES)
            result = cascade(store, classifier, precision=args.precision, rules=rules)
            run = result.as_dict()
            print(result.calibration.describe() if result.calibration else "", file=sys.stderr)
            if args.dump_calibration is not None:
                dump_calibration(args.dump_calibration, result.calibration)
    run["seconds"] = round(time.perf_counter() - started, 1)
    run["load_average_after"] = list(os.getloadavg())
    run["calls"] = classifier.stats.calls
    run["prompt_tokens"] = classifier.stats.prompt_tokens
    run["completion_tokens"] = classifier.stats.completion_tokens
    run["cost_usd_at_gpt_4o_mini_prices"] = round(classifier.stats.cost_usd, 4)
    run["scores"] = scored(path, codebook, target, args.resamples)
    print(
        f"{name}: {run['calls']} calls, micro-F1 {run['scores']['themes_micro_f1']:.4f}",
        file=sys.stderr,
    )
    return run


def measure(
    args: argparse.Namespace, codebook: Any, items: list[GoldItem], n_reviewed: int
) -> dict[str, Any]:
    """Every run of ``--runs`` for one number of reviewed answers; the result file's data."""
    order = list(items)
    random.Random(0).shuffle(order)
    reviewed, target = order[:n_reviewed], order[n_reviewed:]
    work = Path(tempfile.mkdtemp(prefix="bench_cascade_"))
    runs: dict[str, Any] = {}
    try:
        with gold_server(args.gold, args.error_rate) as base_url:
            start = work / "start.coder"
            if args.start is not None:
                shutil.copy(args.start, start)
                setup: dict[str, Any] = {"reused_start": str(args.start)}
            else:
                judged = llm(base_url, args.concurrency) if args.reviewers_judged == "llm" else None
                setup = prepare_project(start, codebook, items, reviewed, judged)
                if args.keep_start is not None:
                    shutil.copy(start, args.keep_start)
            for name in args.runs.split(","):
                path = work / f"{name}.coder"
                shutil.copy(start, path)
                runs[name] = run_one(name, path, base_url, codebook, target, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return summarise(args, items, reviewed, target, setup, runs)


def curve_point(result: dict[str, Any]) -> dict[str, Any]:
    """One point of the reviewed-answers curve: the LLM share and the loss, if any."""
    base = result["runs"].get("all_llm", {}).get("scores", {})
    cascades = [run for name, run in result["runs"].items() if name != "all_llm"]
    return {
        "n_reviewed": result["n_reviewed"],
        "calls_ratio": result.get("calls_ratio"),
        "prompt_tokens_ratio": result.get("prompt_tokens_ratio"),
        "micro_f1_delta": result.get("micro_f1_delta"),
        "all_llm_micro_f1_ci": base.get("themes_micro_f1_ci"),
        "cascade_micro_f1": cascades[0]["scores"]["themes_micro_f1"] if cascades else None,
        "stance_accuracy": {
            name: run["scores"]["stance_accuracy"] for name, run in result["runs"].items()
        },
    }


def main() -> None:
    args = parse_args()
    exit_on_sigterm()
    codebook, items = load_gold(args.gold)
    if args.quick:
        items = random.Random(1).sample(items, 600)
        args.reviewed = 200
    if args.curve:
        # Each point is a project of its own: reviewed answers, training and both runs.
        points = [measure(args, codebook, items, int(n)) for n in args.curve.split(",")]
        write_result(
            args.out,
            {
                "curve": [curve_point(point) for point in points],
                "points": points,
                "command": " ".join(["python", f"benchmarks/{Path(__file__).name}", *sys.argv[1:]]),
            },
        )
        return
    write_result(args.out, measure(args, codebook, items, args.reviewed))


def summarise(
    args: argparse.Namespace, items: list[GoldItem], reviewed: list[GoldItem],
    target: list[GoldItem], setup: dict[str, Any], runs: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The result file: every run, and the cascade's ratios to the all-LLM run."""
    result: dict[str, Any] = {
        "note": "LLM = tests/llm_gold_server.py answering from gold with the error rate below: "
        "cost and agreement arithmetic, not model quality",
        "gold": args.gold.name,
        "n_items": len(items),
        "n_reviewed": len(reviewed),
        "n_coded": len(target),
        "error_rate": args.error_rate,
        "cascade_precision": args.precision,
        "reviewers_judged": f"{args.reviewers_judged} proposals",
        "setup": setup,
        "runs": runs,
        "shortlist": not args.no_shortlist,
        "target": "calls_ratio <= 0.5 and micro_f1_delta >= 0 (within the CI)",
        "command": " ".join(["python", f"benchmarks/{Path(__file__).name}", *sys.argv[1:]]),
    }
    cascades = [name for name in runs if name != "all_llm"]
    if "all_llm" in runs and cascades:
        base, cas = runs["all_llm"], runs[cascades[0]]
        result["calls_ratio"] = round(cas["calls"] / base["calls"], 4) if base["calls"] else None
        result["prompt_tokens_ratio"] = (
            round(cas["prompt_tokens"] / base["prompt_tokens"], 4)
            if base["prompt_tokens"]
            else None
        )
        result["micro_f1_delta"] = round(
            cas["scores"]["themes_micro_f1"] - base["scores"]["themes_micro_f1"], 4
        )
        result["sent_share"] = cas.get("llm_share")
    return result


if __name__ == "__main__":
    main()
