"""Eval scoring speed: 10,000 items x 50 codes, 1,000 bootstrap resamples (target <= 3 s).

The whole of ``eval.scoring.score`` is timed: themes (micro/macro/samples F1, per-code
kappa and F1), stance (accuracy, macro F1, kappas), relevance, calibration and a bootstrap
CI for every headline figure. Gold and predictions are synthetic (seeded): about 1.5 codes
per item, 80% of predicted codes right, 5% of items not relevant, per-code scores.

Run: python benchmarks/bench_eval.py [--items 10000] [--codes 50] [--resamples 1000]
Writes benchmarks/results/eval.json.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from machine import peak_rss_mib, write_result  # noqa: E402

from eval.gold import GoldItem  # noqa: E402
from eval.scoring import Prediction, score  # noqa: E402
from schemas import Codebook, Theme  # noqa: E402

TARGET_SECONDS = 3.0


def synthetic(
    n_items: int, n_codes: int, seed: int = 0
) -> tuple[Codebook, list[GoldItem], dict[str, Prediction]]:
    rng = random.Random(seed)
    codes = [f"code_{i:02d}" for i in range(n_codes)]
    codebook = Codebook(
        name="bench",
        themes=[Theme(id=code, label=code, definition=f"Theme {code}.") for code in codes],
    )
    stances = codebook.stance_ids
    # Zipf-ish prevalence, as real codebooks have a few common and many rare codes.
    weights = [1 / (rank + 1) for rank in range(n_codes)]
    items: list[GoldItem] = []
    predictions: dict[str, Prediction] = {}
    for index in range(n_items):
        item_id = f"i{index:05d}"
        relevant = rng.random() > 0.05
        gold = (
            sorted(set(rng.choices(codes, weights, k=rng.choice((1, 1, 2, 2, 3)))))
            if relevant
            else []
        )
        stance = rng.choice(stances) if relevant else None
        items.append(GoldItem(id=item_id, labels=gold, stance=stance, relevant=relevant))
        predicted = [code for code in gold if rng.random() < 0.8]
        if rng.random() < 0.3:
            predicted.append(rng.choices(codes, weights)[0])
        predicted = sorted(set(predicted))
        predictions[item_id] = Prediction(
            id=item_id,
            labels=predicted,
            stance=stance if rng.random() < 0.7 else rng.choice(stances),
            relevant=relevant if rng.random() < 0.95 else not relevant,
            confidence=rng.random(),
            scores={code: rng.uniform(0.5, 1.0) for code in predicted},
        )
    return codebook, items, predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--codes", type=int, default=50)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="report the best and all runs")
    args = parser.parse_args()
    codebook, items, predictions = synthetic(args.items, args.codes)
    runs = []
    metrics = {}
    for _ in range(args.repeats):
        started = time.perf_counter()
        metrics = score(codebook, items, predictions, n_resamples=args.resamples)
        runs.append(round(time.perf_counter() - started, 3))
    assert metrics["n_items"] == args.items and metrics["ci"], "scoring returned no CIs"
    write_result(
        "eval",
        {
            "items": args.items,
            "codes": args.codes,
            "resamples": args.resamples,
            "seconds": min(runs),
            "seconds_runs": runs,
            "ci_figures": len(metrics["ci"]),
            "micro_f1": round(metrics["themes"]["micro_f1"], 4),
            "target_seconds": TARGET_SECONDS,
            "meets_target": min(runs) <= TARGET_SECONDS,
            "command": " ".join(["python", f"benchmarks/{Path(__file__).name}", *sys.argv[1:]]),
            "peak_rss_mib": peak_rss_mib(),
        },
    )


if __name__ == "__main__":
    main()
