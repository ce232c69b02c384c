"""Agreement inside a coder project: model vs reviewers, and reviewer vs reviewer.

* **Model–human**: each response's model proposal against the final labels in force
  (``Store.final_labels``). By default the proposal is the one reviewers saw and acted on
  (the latest successful one, ``Store.current_proposals``); ``first=True`` uses the
  model's first successful proposal instead, before any re-run.
* **Human–human**: responses with labelling decisions by at least two reviewers
  ("double-coded"); each reviewer's own labels in force (``final_labels(reviewer=...)``),
  compared pairwise and across all reviewers. Adjudications are the reviewers' own
  decisions too; a reviewer who only adjudicated still counts as a coder of that response.

Themes of a response marked not relevant are empty (as ``Labels.from_proposal``), so theme
figures are computed on every response both sides coded, relevance included.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from coder.store import Store
from eval import agreement, bootstrap, multilabel
from schemas import Labels, Proposal


def _labels_of_proposal(proposal: Proposal) -> Labels:
    return Labels.from_proposal(proposal)


def _first_proposals(store: Store) -> dict[str, Proposal]:
    out: dict[str, Proposal] = {}
    for proposal_id, response_id in store.ok_proposal_ids():
        if response_id in out:
            continue
        stored = store.proposal(proposal_id)
        if stored.proposal is not None:
            out[response_id] = stored.proposal
    return out


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if np.isnan(value) else value


def compare_labels(
    first: list[Labels],
    second: list[Labels],
    stance_scale: list[str],
    n_resamples: int = bootstrap.DEFAULT_RESAMPLES,
    seed: int = bootstrap.DEFAULT_SEED,
) -> dict[str, Any]:
    """Theme, stance and relevance agreement between two aligned lists of labels."""
    out: dict[str, Any] = {"n_items": len(first), "ci": {}}
    if not first:
        return out
    codes = sorted({c for labels in first + second for c in labels.themes})
    a = multilabel.indicator([x.themes for x in first], codes)
    b = multilabel.indicator([x.themes for x in second], codes)
    stats = multilabel.item_stats(a, b)
    n = float(len(first))
    sums = multilabel.set_metrics_from_sums(stats.sum(axis=0), n)
    out["themes.f1"] = _num(sums["micro_f1"])
    out["themes.exact_match"] = _num(sums["exact_match"])
    out["themes.jaccard"] = _num(sums["jaccard"])
    units = [[x.themes, y.themes] for x, y in zip(first, second, strict=True)]
    out["themes.masi_alpha"] = _num(multilabel.set_alpha(units, "masi"))
    out["ci"]["themes.f1"] = list(
        bootstrap.bootstrap_ci(
            stats, lambda s: multilabel.set_metrics_from_sums(s, n)["micro_f1"], n_resamples, seed
        )
    )
    pairs = [
        (x.stance, y.stance) for x, y in zip(first, second, strict=True) if x.stance and y.stance
    ]
    if pairs:
        cats = list(stance_scale) + sorted({v for p in pairs for v in p} - set(stance_scale))
        out["stance.n_items"] = len(pairs)
        out["stance.percent_agreement"] = _num(
            agreement.percent_agreement([p[0] for p in pairs], [p[1] for p in pairs])
        )
        out["stance.kappa"] = _num(
            agreement.cohen_kappa([p[0] for p in pairs], [p[1] for p in pairs], categories=cats)
        )
        out["stance.alpha"] = _num(
            agreement.krippendorff_alpha(
                [[p[0] for p in pairs], [p[1] for p in pairs]], categories=cats
            )
        )
    rel_a = [x.relevant for x in first]
    rel_b = [y.relevant for y in second]
    out["relevance.percent_agreement"] = _num(agreement.percent_agreement(rel_a, rel_b))
    out["relevance.kappa"] = _num(agreement.cohen_kappa(rel_a, rel_b, categories=[True, False]))
    return out


def project_agreement(
    store: Store,
    *,
    first: bool = False,
    n_resamples: int = bootstrap.DEFAULT_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Model–human and human–human agreement in a project."""
    try:
        _, codebook = store.codebook()
        scale = codebook.stance_ids
    except LookupError:
        scale = []
    finals = store.final_labels()
    if first:
        proposals = _first_proposals(store)
    else:
        proposals = {
            rid: sp.proposal for rid, sp in store.current_proposals().items() if sp.proposal
        }
    final_labels = {rid: d.labels for rid, d in finals.items() if d.labels is not None}
    shared = [rid for rid in final_labels if rid in proposals]
    model = compare_labels(
        [_labels_of_proposal(proposals[rid]) for rid in shared],
        [final_labels[rid] for rid in shared],
        scale,
        n_resamples,
        seed,
    )
    reviewers = sorted({d.reviewer for d in store.decisions() if d.labels is not None})
    by_reviewer: dict[str, dict[str, Labels]] = {
        r: {rid: d.labels for rid, d in store.final_labels(reviewer=r).items() if d.labels}
        for r in reviewers
    }
    human_pairs = []
    pooled_first: list[Labels] = []
    pooled_second: list[Labels] = []
    for a, b in multilabel.pairwise(reviewers):
        common = sorted(set(by_reviewer[a]) & set(by_reviewer[b]))
        la = [by_reviewer[a][rid] for rid in common]
        lb = [by_reviewer[b][rid] for rid in common]
        pooled_first += la
        pooled_second += lb
        human_pairs.append(
            {"reviewers": [a, b], **compare_labels(la, lb, scale, n_resamples, seed)}
        )
    human = compare_labels(pooled_first, pooled_second, scale, n_resamples, seed)
    double_coded = {
        rid for rid in final_labels if sum(1 for r in reviewers if rid in by_reviewer[r]) >= 2
    }
    if reviewers and double_coded:
        ids = sorted(double_coded)
        # all reviewers at once; None where a reviewer did not code the response
        matrix = [
            [by_reviewer[r][rid].stance if rid in by_reviewer[r] else None for rid in ids]
            for r in reviewers
        ]
        try:
            human["stance.alpha_all_reviewers"] = _num(agreement.krippendorff_alpha(matrix))
        except ValueError:
            pass
        theme_units: list[list[list[str] | None]] = [
            [by_reviewer[r][rid].themes if rid in by_reviewer[r] else None for r in reviewers]
            for rid in ids
        ]
        human["themes.masi_alpha_all_reviewers"] = _num(multilabel.set_alpha(theme_units, "masi"))
    return {
        "model_human": model,
        "human_human": human,
        "human_pairs": human_pairs,
        "reviewers": reviewers,
        "n_double_coded": len(double_coded),
        "proposals": "first" if first else "current",
    }
