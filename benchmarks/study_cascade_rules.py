"""Which rule lets the cascade settle more answers at the LLM's level, measured held out.

Reads the held-out calibration arrays that ``bench_cascade.py --dump-calibration FILE.npz``
writes (the embedded model's out-of-fold proposals for the reviewed answers: confidences
and agreement with the reviewers) and compares, on repeated half splits (rule and cut
chosen on one half, measured on the other, both ways):

- ``single``: one cut on the proposal's overall confidence (``choose_cut``);
- ``per_field``: a cut per field (``choose_field_cuts``);
- ``joint``: a cut on the logistic "whole proposal right" score over the field confidences
  (and their logs), the overall confidence, log words, codes proposed and relevance
  (``coder/cascade_joint.py``, as ``coder precode --cascade`` fits it: cut chosen on
  scores cross-fitted on the choosing half);
- ``per_field_no_stance_target``: per-field cuts with no stance target (what stance costs).

It also reports what blocks: the stance confidence's reliability (confidence vs accuracy
by bin), the field with the lowest confidence among the answers not settled, and how
answers of each length fare under the single cut chosen on all of them.

Run: python benchmarks/study_cascade_rules.py FILE.npz [--targets '{"themes": 0.883, ...}']
[--repeats 10] [--out cascade_rules_study]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from machine import write_result  # noqa: E402

from coder.cascade_cuts import FIELDS, MIN_SETTLED, choose_cut, choose_field_cuts  # noqa: E402
from coder.cascade_joint import choose_joint_cut, joint_features, whole_right  # noqa: E402

WORD_BUCKETS = ((1, 1), (2, 3), (4, 8), (9, 10**9))
STANCE_BINS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.01)


class Arrays:
    """The dumped held-out arrays."""

    def __init__(self, path: Path) -> None:
        data = np.load(path)
        self.confidence = np.asarray(data["confidence"], dtype=float)
        self.by_field = np.asarray(data["field_confidence"], dtype=float)
        self.stats = np.asarray(data["agreement"], dtype=float)
        self.words = np.asarray(data["words"], dtype=float)
        self.codes = np.asarray(data["n_codes"], dtype=float)
        self.relevant = np.asarray(data["relevant"], dtype=float)
        self.right = whole_right(self.stats)

    def features(self, rows: np.ndarray) -> np.ndarray:
        return joint_features(
            self.by_field[rows], self.confidence[rows], self.words[rows], self.codes[rows],
            self.relevant[rows],
        )  # fmt: skip


def levels(stats: np.ndarray) -> dict[str, Any]:
    """Share-free levels of a block of agreement rows; a field with nothing to score (every
    settled answer proposed not relevant: no themes; no stance given) is None, not 0."""
    tp, fp, fn, stance_right, stance_n, relevance_right = stats.sum(axis=0)
    themes_scored = 2 * tp + fp + fn
    return {
        "n": int(len(stats)),
        "themes": float(2 * tp / themes_scored) if themes_scored else None,
        "stance": float(stance_right / stance_n) if stance_n else None,
        "stance_scored": int(stance_n),
        "relevance": float(relevance_right / max(len(stats), 1)),
    }


def _mean_level(got: list[dict[str, Any]], field: str) -> float | None:
    """The field's level averaged over the splits that scored it."""
    values = [g[field] for g in got if g[field] is not None]
    return float(np.mean(values)) if values else None


def _meets(level: dict[str, Any], targets: dict[str, float]) -> bool:
    """Every scored field at its target (a field with nothing scored cannot miss it)."""
    return all(level[f] is None or level[f] >= targets[f] - 1e-9 for f in FIELDS)


def rules(
    arrays: Arrays, choose: np.ndarray, measure: np.ndarray, targets: dict[str, float]
) -> dict[str, tuple[float, np.ndarray | None]]:
    """Per rule: the share it promised on ``choose`` and the mask it settles on ``measure``."""
    found: dict[str, tuple[float, np.ndarray | None]] = {}
    stats = arrays.stats[choose]
    cut, expected = choose_cut(arrays.confidence[choose].tolist(), stats, targets)
    found["single"] = (
        expected.get("share", 0.0),
        arrays.confidence[measure] >= cut if cut is not None else None,
    )
    for name, wanted in (
        ("per_field", targets),
        ("per_field_no_stance_target", {**targets, "stance": 0.0}),
    ):
        cuts, expected = choose_field_cuts(arrays.by_field[choose], stats, wanted, MIN_SETTLED)
        mask = None
        if cuts is not None:
            mask = np.all(arrays.by_field[measure] >= np.array([cuts[f] for f in FIELDS]), axis=1)
        found[name] = (expected.get("share", 0.0), mask)
    score, cut, expected = choose_joint_cut(arrays.features(choose), stats, targets)
    found["joint"] = (
        expected.get("share", 0.0),
        score.score(arrays.features(measure)) >= cut if score is not None else None,
    )
    return found


def compare(arrays: Arrays, targets: dict[str, float], repeats: int) -> dict[str, Any]:
    """Repeated half splits: promised share, held-out share and levels per rule."""
    count = len(arrays.confidence)
    rows: dict[str, list[tuple[float, dict[str, Any] | None]]] = {}
    for repeat in range(repeats):
        order = np.random.default_rng(100 + repeat).permutation(count)
        first, second = order[: count // 2], order[count // 2 :]
        for choose, measure in ((first, second), (second, first)):
            for name, (promised, mask) in rules(arrays, choose, measure, targets).items():
                measured: dict[str, Any] | None = None
                if mask is not None and mask.any():
                    measured = {"share": float(mask.mean()), **levels(arrays.stats[measure][mask])}
                rows.setdefault(name, []).append((promised, measured))
    summary: dict[str, Any] = {}
    for name, found in rows.items():
        got = [g for _, g in found if g is not None]
        summary[name] = {
            "promised_share": float(np.mean([p for p, _ in found])),
            # A split where the rule found no cut settles nothing: it counts as 0.
            "held_out_share": float(np.mean([g["share"] if g else 0.0 for _, g in found])),
            "held_out_levels": {f: _mean_level(got, f) for f in FIELDS} if got else {},
            "splits_meeting_every_target": float(
                np.mean([_meets(g, targets) for g in got])
            ) if got else 0.0,
            "splits_with_a_cut": f"{len(got)}/{len(found)}",
        }  # fmt: skip
    return summary


def blockers(arrays: Arrays, targets: dict[str, float]) -> dict[str, Any]:
    """What keeps answers from settling: stance reliability, lowest fields, answer length."""
    scored = arrays.stats[:, 4] == 1
    stance_conf, stance_right = arrays.by_field[scored, 1], arrays.stats[scored, 3]
    reliability = []
    for low, high in zip(STANCE_BINS, STANCE_BINS[1:], strict=False):
        inside = (stance_conf >= low) & (stance_conf < high)
        if inside.any():
            reliability.append({
                "bin": [low, min(high, 1.0)], "n": int(inside.sum()),
                "mean_confidence": float(stance_conf[inside].mean()),
                "accuracy": float(stance_right[inside].mean()),
            })  # fmt: skip
    cut, _ = choose_cut(arrays.confidence.tolist(), arrays.stats, targets)
    settled = (
        arrays.confidence >= cut if cut is not None else np.zeros(len(arrays.confidence), bool)
    )
    lowest = np.argmin(arrays.by_field, axis=1)
    by_length = {}
    for low, high in WORD_BUCKETS:
        inside = (arrays.words >= low) & (arrays.words <= high)
        by_length[f"{low}-{high if high < 10**9 else 'more'} words"] = {
            "n": int(inside.sum()),
            "settled_share": float(settled[inside].mean()) if inside.any() else 0.0,
            "settled": levels(arrays.stats[inside & settled]),
            "not_settled": levels(arrays.stats[inside & ~settled]),
        }
    return {
        "all_answers": levels(arrays.stats),
        "stance_reliability": reliability,
        "single_cut_on_all": cut,
        "lowest_field_among_not_settled": {
            name: int(((lowest == col) & ~settled).sum()) for col, name in enumerate(FIELDS)
        },
        "answers_with_stance_confidence_at_least_0.8": float((arrays.by_field[:, 1] >= 0.8).mean()),
        "by_length": by_length,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("npz", type=Path, help="bench_cascade.py --dump-calibration output")
    parser.add_argument(
        "--targets",
        default='{"themes": 0.883, "stance": 0.819, "relevance": 0.902}',
        help="per-field targets as JSON (the run's calibration prints them)",
    )
    parser.add_argument("--repeats", type=int, default=10, help="half splits (each used both ways)")
    parser.add_argument("--out", default="cascade_rules_study", help="results file name")
    args = parser.parse_args()  # fmt: skip
    arrays, targets = Arrays(args.npz), json.loads(args.targets)
    result = {
        "source": str(args.npz),
        "n_reviewed": len(arrays.confidence),
        "targets": targets,
        "rules": compare(arrays, targets, args.repeats),
        "blockers": blockers(arrays, targets),
        "command": " ".join(["python", f"benchmarks/{Path(__file__).name}", *sys.argv[1:]]),
    }
    write_result(args.out, result)
    for name, row in result["rules"].items():
        print(name, json.dumps(row), file=sys.stderr)


if __name__ == "__main__":
    main()
