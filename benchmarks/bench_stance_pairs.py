"""Stance cross-encoder (issue 14): ArgKP train motions -> dev motions, and NHS sentiment.

Trains the (question, answer) pair model with the ``finetune`` extra on one split and scores
stance accuracy on the other with the exported ONNX graph (what ``coder precode`` runs),
beside the pair model's proposals/s against the sentence encoder's sentences/s in the same
run. Run with ``nice``; it takes minutes per set on 2 cores.

    nice python benchmarks/bench_stance_pairs.py --set argkp --epochs 2 --out results.json
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

from benchmarks.machine import machine_info  # noqa: E402

GOLD = Path(__file__).resolve().parent.parent.parent / "shared" / "gold"


def _split(name: str, seed: int) -> tuple[list[Any], list[Any], Any]:
    from coder.codebook import load_codebook
    from coder.embedded.training import examples_from_gold_file

    folder = GOLD / ("argkp_2021" if name == "argkp" else "nhs_pxtextmining_v6")
    codebook = load_codebook(folder / "codebook.json")
    if name == "argkp":
        train = examples_from_gold_file(folder / "dev.jsonl", split="train")
        test = examples_from_gold_file(folder / "dev.jsonl", split="dev")
        return train, test, codebook
    items = examples_from_gold_file(folder / "dev.jsonl")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    cut = len(items) // 5
    return [items[i] for i in order[cut:]], [items[i] for i in order[:cut]], codebook


def run(
    name: str,
    epochs: int,
    layers: int | None,
    budget: float | None,
    with_propose: bool,
    checkpoints: Path = Path("/tmp/pairs"),
) -> dict[str, Any]:
    """Train on the set's training part, score its test part; figures as a dict."""
    from coder.embedded.encoder import get_encoder
    from coder.embedded.finetune import FineTuneConfig
    from coder.embedded.stance_pairs import question_texts
    from coder.embedded.stance_pairs_train import stance_examples, train_stance_pairs

    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    train, test, codebook = _split(name, 0)
    config = FineTuneConfig(epochs=epochs, time_budget=budget)
    if layers:
        config.trainable_layers = layers
    started = time.perf_counter()
    load = os.getloadavg()
    model = train_stance_pairs(train, codebook, config, checkpoints / f"ckpt-{name}")
    train_seconds = time.perf_counter() - started
    assert model is not None
    scored = stance_examples(test, codebook)
    firsts = question_texts([e.question for e in scored], codebook)
    started = time.perf_counter()
    probabilities = model.probabilities(firsts, [e.text for e in scored])
    pair_seconds = time.perf_counter() - started
    predicted = [model.classes[i] for i in probabilities.argmax(1)]
    accuracy = sum(p == e.stance for p, e in zip(predicted, scored, strict=True)) / len(scored)
    encoder = get_encoder()
    started = time.perf_counter()
    encoder.encode([e.text for e in scored])
    encode_seconds = time.perf_counter() - started
    metrics = model.record["metrics"]
    figures = propose_ab(train, test, codebook, model) if with_propose else {}
    return {
        "propose": figures,
        "set": name,
        "n_train": len(stance_examples(train, codebook)),
        "n_test": len(scored),
        "stance_accuracy": round(accuracy, 4),
        "holdout_accuracy": metrics.get("holdout_accuracy"),
        "holdout": metrics.get("holdout"),
        "epochs": epochs,
        "trainable_layers": model.record["params"].get("trainable_layers"),
        "steps": metrics.get("steps"),
        "stopped": metrics.get("stopped"),
        "export": metrics.get("export"),
        "onnx_int8_cosine": metrics.get("onnx_int8_cosine"),
        "wall_seconds_train_and_export": round(train_seconds, 1),
        "cpu_seconds": metrics.get("cpu_seconds"),
        "pairs_per_second": round(len(scored) / pair_seconds, 1),
        "sentences_per_second": round(len(scored) / encode_seconds, 1),
        "loadavg_at_start": [round(value, 2) for value in load],
        "loadavg_at_end": [round(value, 2) for value in os.getloadavg()],
    }


def propose_ab(train: list[Any], test: list[Any], codebook: Any, model: Any) -> dict[str, Any]:
    """Fit the classifier with the cross-encoder (its gate runs), then propose the test
    answers with stance from the sentence model and from the pairs: accuracy and
    proposals/s of both, in the same run."""
    from coder.embedded.classifier import LocalClassifier
    from coder.embedded.gate import _responses, stance_accuracy

    classifier = LocalClassifier(None, use_stored_model=False)
    classifier.stance_pairs = model
    responses = _responses(test)
    classifier.prepare(responses, codebook)
    started = time.perf_counter()
    state = classifier.fit(train, codebook)
    figures: dict[str, Any] = {
        "fit_seconds_with_gate": round(time.perf_counter() - started, 1),
        "gate": {k: v for k, v in state.metrics["stance_pairs"].items() if k != "trained_on"},
        "chosen_stance_mode": state.fields.get("stance"),
    }
    chosen = state.fields.get("stance")
    for mode in ("trained", "pairs", "trained", "pairs"):  # twice: the second pair is warm
        state.fields["stance"] = mode
        # A fresh classifier (cold embedding cache), as precode meets new answers.
        fresh = LocalClassifier(None, encoder=classifier.encoder, state=state)
        fresh.stance_pairs = model
        started = time.perf_counter()
        results = fresh.propose(responses, codebook)
        seconds = time.perf_counter() - started
        accuracy = stance_accuracy(test, [r.proposal for r in results], codebook)
        figures[mode] = {
            "stance_accuracy": round(accuracy or 0.0, 4),
            "proposals_per_second": round(len(responses) / seconds, 1),
            "loadavg": round(os.getloadavg()[0], 2),
        }
    state.fields["stance"] = chosen or "trained"
    figures["pairs_over_default_speed"] = round(
        figures["pairs"]["proposals_per_second"] / figures["trained"]["proposals_per_second"], 3
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--set", choices=["argkp", "nhs"], default="argkp")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--budget", type=float, default=None, help="training seconds")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--checkpoints", type=Path, default=Path("/tmp/pairs"), help="resumable runs' folder"
    )
    parser.add_argument(
        "--no-propose", action="store_true", help="skip the classifier fit and propose A/B"
    )
    args = parser.parse_args()
    result = {
        "machine": machine_info(),
        **run(
            args.set, args.epochs, args.layers, args.budget, not args.no_propose, args.checkpoints
        ),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
