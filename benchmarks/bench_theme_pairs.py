"""Theme cross-encoder (issue 14): does re-ranking each answer's top codes help?

ArgKP: the classifier is trained on the 24 train motions (as ``coder eval
../shared/gold/argkp_2021 --train-filter meta.source_split=train --test-filter
meta.source_split=dev``, which gave mAP 0.808 / 0.920), the theme cross-encoder is
fine-tuned on the same answers, and the 932 dev-motion arguments are scored without and
with re-ranking at each blend weight: key-point mAP strict/relaxed (``eval/matching.py``),
themes micro/macro F1 (scores only, and with the blend deciding), training time and
proposals/s of both in the same run. NHS (``--set nhs``): a seeded 80/20 split.
Run with ``nice``; the cross-encoder's fine-tune takes minutes on 2 cores.

    nice python benchmarks/bench_theme_pairs.py --set argkp --epochs 1 --out theme_pairs_argkp.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import RESULTS, machine_info  # noqa: E402

GOLD = Path(__file__).resolve().parent.parent.parent / "shared" / "gold"


def _split(name: str, seed: int) -> tuple[list[Any], list[Any], Any]:
    """(train items, test items, codebook) of the set."""
    from eval.gold import load_gold

    folder = GOLD / ("argkp_2021" if name == "argkp" else "nhs_pxtextmining_v6")
    codebook, items = load_gold(folder)
    if name == "argkp":
        split = [(item.meta or {}).get("source_split") for item in items]
        train = [item for item, s in zip(items, split, strict=True) if s == "train"]
        test = [item for item, s in zip(items, split, strict=True) if s == "dev"]
        return train, test, codebook
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    cut = len(items) // 5
    return [items[i] for i in order[cut:]], [items[i] for i in order[:cut]], codebook


def _scored(classifier: Any, test: list[Any], codebook: Any) -> dict[str, Any]:
    """Predict the test items (timed) and score them as ``coder eval`` does."""
    from coder.embedded import theme_pairs
    from eval import runner
    from eval.scoring import score

    theme_pairs._recent.clear()  # each run pays for its pair passes (none cached)
    started = time.perf_counter()
    predictions, _ = runner.predict(classifier, test, codebook)
    seconds = time.perf_counter() - started
    metrics = score(codebook, test, predictions, n_resamples=10)
    themes = metrics["themes"]
    out = {
        "themes_micro_f1": round(float(themes["micro_f1"]), 4),
        "themes_macro_f1": round(float(themes["macro_f1"]), 4),
        # propose + code_scores, as the eval does: both re-rank
        "items_per_second": round(len(test) / seconds, 1),
        "loadavg": round(os.getloadavg()[0], 2),
    }
    if "matching" in metrics:
        out["map_strict"] = round(float(metrics["matching"]["map_strict"]), 4)
        out["map_relaxed"] = round(float(metrics["matching"]["map_relaxed"]), 4)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train, then score without and with re-ranking; figures as a dict."""
    from coder.embedded.classifier import LocalClassifier
    from coder.embedded.finetune import FineTuneConfig
    from coder.embedded.theme_pairs import RERANK, RERANK_DECIDE, STATE_KEY, WEIGHT_KEY
    from coder.embedded.theme_pairs_train import train_theme_pairs
    from eval import runner

    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    train, test, codebook = _split(args.set, 0)
    examples = runner.labelled_examples(train)
    from coder.embedded import theme_pairs_train

    theme_pairs_train.MAX_PAIR_ROWS = args.max_pairs
    config = FineTuneConfig(
        epochs=args.epochs, max_steps=args.max_steps, seed=0, max_tokens=args.max_tokens
    )
    if args.layers:
        config.trainable_layers = args.layers
    load_start = os.getloadavg()
    started = time.perf_counter()
    model = train_theme_pairs(examples, codebook, config, Path(args.checkpoints) / args.set)
    train_seconds = time.perf_counter() - started
    assert model is not None
    classifier = LocalClassifier(None, use_stored_model=False)
    classifier.prepare([item.to_response() for item in train + test], codebook)
    started = time.perf_counter()
    state = classifier.fit(examples, codebook)
    fit_seconds = time.perf_counter() - started
    classifier.theme_pairs = model
    state.params[STATE_KEY] = model.name
    results: dict[str, Any] = {}
    for repeat in range(2):  # the second round is warm (encoders loaded)
        state.fields.pop(STATE_KEY, None)
        results["default"] = _scored(classifier, test, codebook)
        for weight in args.weights:
            state.params[WEIGHT_KEY] = weight
            for mode in (RERANK, RERANK_DECIDE):
                if repeat == 0 and (weight != args.weights[0] or mode != RERANK):
                    continue
                state.fields[STATE_KEY] = mode
                results[f"{mode}@{weight}"] = _scored(classifier, test, codebook)
    metrics = model.record["metrics"]
    first = f"{RERANK}@{args.weights[0]}"
    gate: dict[str, Any] = {}
    if args.gate:  # what fit() would choose: refits the classifier without the held motions
        from coder.embedded.theme_pairs_gate import gate_theme_pairs

        state.fields.pop(STATE_KEY, None)
        started = time.perf_counter()
        report = gate_theme_pairs(
            classifier, examples, codebook, lambda sibling, rows: sibling.fit(rows, codebook)
        )
        gate = {k: v for k, v in report.items() if k != "trained_on"}
        gate["wall_seconds"] = round(time.perf_counter() - started, 1)
    return {
        "gate": gate,
        "set": args.set,
        "n_train": len(train),
        "n_test": len(test),
        "results": results,
        "rerank_over_default_speed": round(
            results[first]["items_per_second"] / results["default"]["items_per_second"], 3
        ),
        "cross_encoder": {
            key: metrics.get(key)
            for key in ("n_answers", "n_pairs", "n_matches", "n_codes", "holdout", "steps",
                        "stopped", "export", "onnx_int8_cosine", "cpu_seconds", "best_step")
        },  # fmt: skip
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "max_pairs": args.max_pairs,
        "max_tokens": args.max_tokens,
        "trainable_layers": model.record["params"].get("trainable_layers"),
        "wall_seconds_cross_encoder_train_and_export": round(train_seconds, 1),
        "wall_seconds_classifier_fit": round(fit_seconds, 1),
        "loadavg_at_start": [round(value, 2) for value in load_start],
        "loadavg_at_end": [round(value, 2) for value in os.getloadavg()],
    }


def main() -> None:
    """Parse options, run, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=["argkp", "nhs"], default="argkp")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--max-pairs", type=int, default=12000)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.75, 0.5, 1.0])
    parser.add_argument("--gate", action="store_true", help="also run the gate (slow)")
    parser.add_argument("--checkpoints", default="/tmp/theme_pairs")
    parser.add_argument("--out", default=None, help="file name under benchmarks/results/")
    args = parser.parse_args()
    figures = {"machine": machine_info(), **run(args)}
    text = json.dumps(figures, indent=1)
    print(text)
    if args.out:
        (RESULTS / args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
