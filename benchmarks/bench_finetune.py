"""Benchmark ``--fine-tune`` on NHS dev: accuracy on the fixed 20% holdout, time, speed.

Protocol (as the learning curve's ``all`` point in docs/results.md): NHS dev is shuffled with
seed 0, 20% (1,098 items) is held out, and the other 4,392 items are the training pool. The
default classifier and the fine-tuned one (encoder fine-tuned on the pool, then the same
heads) are trained on the pool and scored on the holdout with ``eval.scoring.score``. Speed:
proposals/s of each trained classifier on the holdout answers with a fresh (cold) encoder
cache, measured in the same run, and the fine-tuning wall time.

Run: ``nice python benchmarks/bench_finetune.py [--epochs N] [--trainable-layers K]
[--theme-balance B] [--pool N] [--out FILE]`` (needs the ``finetune`` extra and
/work/shared/gold; ``--pool`` trains both sides on the first N of the pool, for a quicker
speed ratio).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

GOLD = Path(__file__).resolve().parents[2] / "shared" / "gold" / "nhs_pxtextmining_v6"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/machine.py


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    from eval.scoring import lookup

    out = {}
    for path in ("themes.micro_f1", "themes.macro_f1", "stance.accuracy", "relevance.f1"):
        try:
            out[path] = round(float(lookup(metrics, path)), 4)
        except (KeyError, TypeError, ValueError):
            out[path] = None
    return out


def _proposals_per_second(encoder: Any, state: Any, items: list[Any], codebook: Any) -> float:
    from coder.embedded.classifier import LocalClassifier

    fresh = LocalClassifier(None, encoder=encoder, state=state, use_stored_model=False)
    fresh.code_vectors(codebook)  # prototypes are embedded once per codebook
    responses = [item.to_response() for item in items]
    started = time.perf_counter()
    fresh.propose(responses, codebook)
    return len(responses) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--trainable-layers", type=int, default=None)
    parser.add_argument("--theme-balance", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-default", action="store_true")
    parser.add_argument(
        "--pool",
        type=int,
        default=None,
        help="train on the first N of the training pool only (a quicker speed-ratio run)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/finetune.json"))
    args = parser.parse_args()

    from coder.embedded.encoder import get_encoder
    from coder.embedded.finetune import config_from
    from coder.embedded.finetune_run import fine_tuned_encoder
    from eval import runner
    from eval.gold import load_gold
    from eval.scoring import score

    codebook, items = load_gold(GOLD, items=GOLD / "dev.jsonl")
    pool, test = runner.split_pool(items, args.seed)
    if args.pool is not None:
        pool = pool[: args.pool]
    unlabelled = ([item.to_response() for item in items], codebook)
    from machine import machine_info

    result: dict[str, Any] = {
        "machine": machine_info(),
        "n_train": len(pool),
        "n_test": len(test),
        "seed": args.seed,
    }

    def run(encoder: Any) -> tuple[dict[str, Any], Any, float]:
        make = runner.factory("local", encoder=runner.CachingEncoder(encoder))
        make.unlabelled = unlabelled
        classifier = make()
        started = time.perf_counter()
        runner.fit(classifier, pool, codebook)
        fit_seconds = time.perf_counter() - started
        predictions, _ = runner.predict(classifier, test, codebook)
        metrics = score(codebook, test, predictions, n_resamples=0, seed=0)
        return _headline(metrics), classifier, fit_seconds

    default_encoder = get_encoder()
    default_state = None
    if not args.skip_default:
        scores, classifier, fit_seconds = run(default_encoder)
        default_state = classifier.state
        result["default"] = {**scores, "fit_seconds": round(fit_seconds, 1)}
        print("default", result["default"], flush=True)

    config = config_from(
        seed=args.seed,
        epochs=args.epochs,
        trainable_layers=args.trainable_layers,
        theme_balance=args.theme_balance,
    )
    last = [0.0]

    def progress(step: int, total: int, info: dict[str, Any]) -> None:
        if time.perf_counter() - last[0] > 30 or step == total:
            last[0] = time.perf_counter()
            print(f"  step {step}/{total} loss {info['loss']:.4f}", flush=True)

    started = time.perf_counter()
    encoder, tuned = fine_tuned_encoder(runner.labelled_examples(pool), config, progress)
    fine_tune_seconds = time.perf_counter() - started
    scores, classifier, fit_seconds = run(encoder)
    from coder.embedded.encoder import MiniLMEncoder

    # Both speeds at the end, alternating (best of 3 each, fresh caches), so a change in the
    # machine's load during the run does not land on one side only.
    speeds: dict[str, list[float]] = {"default": [], "fine_tuned": []}
    for _ in range(3):
        if default_state is not None:
            speeds["default"].append(
                _proposals_per_second(get_encoder(), default_state, test, codebook)
            )
        cold = MiniLMEncoder.from_onnx_bytes(
            tuned.onnx_bytes, name=tuned.name, expected_sha256=tuned.sha256, per_text=tuned.quantized
        )
        speeds["fine_tuned"].append(_proposals_per_second(cold, classifier.state, test, codebook))
    speed = max(speeds["fine_tuned"])
    if default_state is not None:
        result["default"]["proposals_per_second"] = round(max(speeds["default"]), 1)
    result["speeds"] = {side: [round(v, 1) for v in values] for side, values in speeds.items()}
    result["fine_tuned"] = {
        **scores,
        "encoder": tuned.name,
        "export": tuned.metrics.get("export"),
        "fine_tune_wall_seconds": round(fine_tune_seconds, 1),
        "heads_fit_seconds": round(fit_seconds, 1),
        "proposals_per_second": round(speed, 1),
        "onnx_mb": round(len(tuned.onnx_bytes) / 1e6, 1),
        "fine_tune_metrics": {k: v for k, v in tuned.metrics.items() if k not in ("history",)},
        "history": tuned.metrics.get("history"),
        "config": tuned.params,
    }
    if "default" in result:
        result["speed_ratio"] = round(speed / result["default"]["proposals_per_second"], 3)
    print("fine-tuned", json.dumps(result["fine_tuned"], indent=1), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "fine_tuned"}, default=str))


if __name__ == "__main__":
    main()
