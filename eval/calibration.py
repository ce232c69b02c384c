"""Calibration of a classifier's confidences: expected calibration error and reliability data.

Equal-width bins over [0, 1] (10 by default). For each bin: the mean confidence, the
share of predictions that were right, and the count. ECE is the count-weighted mean
|accuracy - confidence| (Guo et al. 2017). A confidence of exactly 1.0 falls in the top bin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def calibration(
    confidences: Sequence[float], correct: Sequence[bool | float], n_bins: int = 10
) -> dict[str, Any]:
    """ECE and reliability-diagram data; ``None`` confidences are left out."""
    pairs = [
        (float(c), float(k)) for c, k in zip(confidences, correct, strict=True) if c is not None
    ]
    if not pairs:
        return {"ece": None, "n": 0, "bins": []}
    conf = np.clip(np.array([c for c, _ in pairs]), 0.0, 1.0)
    hit = np.array([k for _, k in pairs])
    which = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    bins = []
    ece = 0.0
    for b in range(n_bins):
        mask = which == b
        count = int(mask.sum())
        if count == 0:
            bins.append(
                {
                    "lo": b / n_bins,
                    "hi": (b + 1) / n_bins,
                    "n": 0,
                    "confidence": None,
                    "accuracy": None,
                }
            )
            continue
        mean_conf = float(conf[mask].mean())
        accuracy = float(hit[mask].mean())
        ece += count / len(conf) * abs(accuracy - mean_conf)
        bins.append(
            {
                "lo": b / n_bins,
                "hi": (b + 1) / n_bins,
                "n": count,
                "confidence": mean_conf,
                "accuracy": accuracy,
            }
        )
    return {"ece": float(ece), "n": len(conf), "bins": bins}
