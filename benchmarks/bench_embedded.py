"""Measure the embedded classifier on the gold dev splits, and its speed on this machine.

    python benchmarks/bench_embedded.py speed      # encoder load, sentences/s, proposals/s
    python benchmarks/bench_embedded.py nhs        # NHS dev: zero-shot + 5-fold CV
    python benchmarks/bench_embedded.py argkp      # ArgKP: train motions -> dev motions
    python benchmarks/bench_embedded.py all

Results are merged into benchmarks/results/embedded.json with machine info. Scoring: themes
on relevant items only, sklearn f1_score micro/macro over codes with gold positives; stance
accuracy on items with a gold stance; relevance F1 with 'not relevant' as the positive class
is reported beside F1 of 'relevant'. ArgKP mAP follows KPA-2021 track 1 (SOURCE_README.md):
each argument's best key point of its motion and gold stance, top 50% per (motion, stance),
sklearn average_precision_score, strict (undecided = no match) and relaxed (= match),
macro-averaged over (motion, stance).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, f1_score
from sklearn.model_selection import KFold

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import machine_info  # noqa: E402

from coder.codebook import load_codebook  # noqa: E402
from coder.embedded.classifier import LocalClassifier  # noqa: E402
from coder.embedded.encoder import MiniLMEncoder, get_encoder  # noqa: E402
from coder.embedded.training import LabelledExample, examples_from_gold_file  # noqa: E402
from schemas import Codebook, Response  # noqa: E402

GOLD = ROOT.parent / "shared" / "gold"
RESULTS = ROOT / "benchmarks" / "results" / "embedded.json"


def machine() -> dict[str, Any]:
    import onnxruntime

    return {
        **machine_info(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "onnxruntime": onnxruntime.__version__,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def as_responses(examples: list[LabelledExample]) -> list[Response]:
    return [
        Response(id=example.id or str(index), text=example.text, question=example.question)
        for index, example in enumerate(examples)
    ]


def score_nhs(
    examples: list[LabelledExample], proposals: list[Any], codebook: Codebook
) -> dict[str, float]:
    codes = codebook.theme_ids
    column = {code: i for i, code in enumerate(codes)}
    relevant_rows = [i for i, e in enumerate(examples) if e.relevant]
    truth = np.zeros((len(relevant_rows), len(codes)), dtype=int)
    predicted = np.zeros_like(truth)
    for row, index in enumerate(relevant_rows):
        for code in examples[index].themes:
            truth[row, column[code]] = 1
        proposal = proposals[index].proposal
        for code in proposal.theme_codes:
            predicted[row, column[code]] = 1
    has_gold = truth.sum(axis=0) > 0
    stance_rows = [i for i, e in enumerate(examples) if e.stance is not None]
    stance_acc = float(
        np.mean([proposals[i].proposal.stance == examples[i].stance for i in stance_rows])
    )
    rel_truth = [bool(e.relevant) for e in examples]
    rel_pred = [proposals[i].proposal.relevant for i in range(len(examples))]
    return {
        "themes_micro_f1": round(float(f1_score(truth, predicted, average="micro")), 4),
        "themes_macro_f1": round(
            float(f1_score(truth[:, has_gold], predicted[:, has_gold], average="macro")), 4
        ),
        "stance_accuracy": round(stance_acc, 4),
        "relevance_f1_relevant": round(float(f1_score(rel_truth, rel_pred)), 4),
        "relevance_f1_not_relevant": round(
            float(f1_score([not t for t in rel_truth], [not p for p in rel_pred])), 4
        ),
        "n_items": len(examples),
    }


def bench_nhs(folds: int = 5) -> dict[str, Any]:
    folder = GOLD / "nhs_pxtextmining_v6"
    codebook = load_codebook(folder / "codebook.json")
    examples = examples_from_gold_file(folder / "dev.jsonl")
    classifier = LocalClassifier()
    started = time.perf_counter()
    zero = classifier.propose(as_responses(examples), codebook)
    zero_scores = score_nhs(examples, zero, codebook)
    zero_scores["seconds"] = round(time.perf_counter() - started, 1)
    print("zero-shot", zero_scores, flush=True)
    proposals: list[Any] = [None] * len(examples)
    train_seconds = []
    for train, held in KFold(folds, shuffle=True, random_state=0).split(examples):
        fold = LocalClassifier(encoder=classifier.encoder)
        fold._vectors = classifier._vectors  # share the embedding caches across folds
        fold._sentence_vectors = classifier._sentence_vectors
        started = time.perf_counter()
        fold.fit([examples[i] for i in train], codebook)
        train_seconds.append(time.perf_counter() - started)
        held_examples = [examples[i] for i in held]
        for index, result in zip(
            held, fold.propose(as_responses(held_examples), codebook), strict=True
        ):
            proposals[index] = result
        print("fold done", round(train_seconds[-1], 1), flush=True)
    cv_scores = score_nhs(examples, proposals, codebook)
    cv_scores["train_seconds_per_fold"] = round(float(np.mean(train_seconds)), 1)
    print("5-fold CV", cv_scores, flush=True)
    # Full-data training time (what `coder train` does on this split).
    full = LocalClassifier(encoder=classifier.encoder)
    full._vectors = {}
    started = time.perf_counter()
    full.fit(examples, codebook)
    full_seconds = time.perf_counter() - started
    print("full fit incl. encoding", round(full_seconds, 1), flush=True)
    return {
        "zero_shot": zero_scores,
        "cv5": cv_scores,
        "train_seconds_full_incl_encoding": round(full_seconds, 1),
    }


def kpa_map(
    examples: list[LabelledExample], scores: list[dict[str, float]], kp_stance: dict[str, str]
) -> dict[str, float]:
    """KPA-2021 track 1 strict and relaxed mAP."""
    by_group: dict[tuple[str, str], list[tuple[float, int, int]]] = defaultdict(list)
    for example, kp_scores in zip(examples, scores, strict=True):
        own = {kp: s for kp, s in kp_scores.items() if kp_stance.get(kp) == example.stance}
        if not own:
            continue
        best_score = max(own.values())
        best = sorted(kp for kp, s in own.items() if s == best_score)[0]
        strict = int(best in example.themes)
        relaxed = int(best in example.themes or best in example.uncertain_themes)
        by_group[(str(example.question), str(example.stance))].append((best_score, strict, relaxed))
    strict_aps, relaxed_aps = [], []
    for rows in by_group.values():
        rows.sort(key=lambda r: -r[0])
        top = rows[: int(len(rows) * 0.5)]
        s = np.array([r[0] for r in top])
        strict_aps.append(average_precision_score([r[1] for r in top], s))
        relaxed_aps.append(average_precision_score([r[2] for r in top], s))
    return {
        "map_strict": round(float(np.mean(strict_aps)), 4),
        "map_relaxed": round(float(np.mean(relaxed_aps)), 4),
        "groups": len(by_group),
    }


def bench_argkp() -> dict[str, Any]:
    folder = GOLD / "argkp_2021"
    codebook = load_codebook(folder / "codebook.json")
    train = examples_from_gold_file(folder / "dev.jsonl", split="train")
    dev = examples_from_gold_file(folder / "dev.jsonl", split="dev")
    classifier = LocalClassifier()
    started = time.perf_counter()
    classifier.fit(train, codebook)
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    proposals = classifier.propose(as_responses(dev), codebook)
    propose_seconds = time.perf_counter() - started
    kp_stance = {theme.id: str(theme.category) for theme in codebook.themes}
    # Per-key-point scores: the pair model's probability for every key point of the motion.
    scores = classifier.code_scores(as_responses(dev), codebook)
    result = kpa_map(dev, scores, kp_stance)
    result["stance_accuracy"] = round(
        float(
            np.mean(
                [
                    p.proposal is not None and p.proposal.stance == e.stance
                    for p, e in zip(proposals, dev, strict=True)
                ]
            )
        ),
        4,
    )
    truth = [set(e.themes) for e in dev]
    predicted = [set(p.proposal.theme_codes if p.proposal else []) for p in proposals]
    tp = sum(len(t & p) for t, p in zip(truth, predicted, strict=True))
    precision = tp / max(1, sum(len(p) for p in predicted))
    recall = tp / max(1, sum(len(t) for t in truth))
    result["themes_micro_f1_strict"] = round(
        2 * precision * recall / max(1e-9, precision + recall), 4
    )
    result["train_seconds"] = round(train_seconds, 1)
    result["propose_seconds"] = round(propose_seconds, 1)
    result["n_train"] = len(train)
    result["n_dev"] = len(dev)
    print("argkp", result, flush=True)
    return result


def bench_speed() -> dict[str, Any]:
    started = time.perf_counter()
    encoder = MiniLMEncoder()
    load_seconds = time.perf_counter() - started
    folder = GOLD / "nhs_pxtextmining_v6"
    examples = examples_from_gold_file(folder / "dev.jsonl")
    texts = [e.text for e in examples[:2000]]
    started = time.perf_counter()
    encoder.encode(texts)
    sentences_per_second = len(texts) / (time.perf_counter() - started)
    codebook = load_codebook(folder / "codebook.json")
    trained = LocalClassifier(encoder=encoder)
    trained.fit(examples[:3000], codebook)
    responses = as_responses(examples[3000:])
    fresh = LocalClassifier(encoder=encoder, state=trained.state)
    fresh.code_vectors(codebook)  # codebook prototypes are embedded once per codebook
    # Issue 14's ratio: the encoder alone on the very texts propose gets, timed just
    # before it, so that both see the same load (the first-2000 figure above is on other,
    # shorter texts and kept for comparison with earlier runs).
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    propose_texts = [response.text or "" for response in responses]
    started = time.perf_counter()
    encoder.encode(propose_texts)
    same_texts_per_second = len(propose_texts) / (time.perf_counter() - started)
    started = time.perf_counter()
    fresh.propose(responses, codebook)
    proposals_per_second = len(responses) / (time.perf_counter() - started)
    # The shipped float graph (CODER_ENCODER_QUANTIZE=0), for comparison.
    float_encoder = MiniLMEncoder(quantize=False)
    started = time.perf_counter()
    float_encoder.encode(texts)
    float_sentences_per_second = len(texts) / (time.perf_counter() - started)
    float_trained = LocalClassifier(encoder=float_encoder)
    float_trained.fit(examples[:3000], codebook)
    float_fresh = LocalClassifier(encoder=float_encoder, state=float_trained.state)
    float_fresh.code_vectors(codebook)
    started = time.perf_counter()
    float_fresh.propose(responses, codebook)
    float_per_second = len(responses) / (time.perf_counter() - started)
    result = {
        "encoder": encoder.name,
        "encoder_load_seconds": round(load_seconds, 2),
        "encoder_sentences_per_second": round(sentences_per_second, 1),
        "propose_responses_per_second_trained": round(proposals_per_second, 1),
        "encoder_sentences_per_second_on_propose_texts": round(same_texts_per_second, 1),
        "trained_propose_to_encoder_ratio": round(proposals_per_second / same_texts_per_second, 3),
        "trained_propose_to_encoder_ratio_first_2000": round(
            proposals_per_second / sentences_per_second, 3
        ),
        "load_average_1min_before_propose": load_before,
        "encoder_sentences_per_second_float_graph": round(float_sentences_per_second, 1),
        "propose_responses_per_second_trained_float_graph": round(float_per_second, 1),
        "propose_n": len(responses),
        "workers": getattr(encoder, "workers", None),
    }
    print("speed", result, flush=True)
    return result


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    if not GOLD.exists():
        sys.exit(f"gold sets not found at {GOLD}")
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if which in ("speed", "all"):
        results["speed"] = bench_speed()
    if which in ("nhs", "all"):
        results["nhs_pxtextmining_v6"] = bench_nhs()
    if which in ("argkp", "all"):
        results["argkp_2021"] = bench_argkp()
    results["machine"] = machine()
    results["encoder"] = get_encoder().name
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
