"""Agreement on the assignment's overlap: the answers `coder assign` gave to two reviewers.

For each pair of reviewers who share double-coded answers: how many were assigned, how
many both have coded, how many of those they label differently and no adjudication has
settled (the adjudication queue, :func:`coder.review.disagreements`), and their agreement
on stance and relevance (percent, Cohen's kappa, Gwet's AC1 with bootstrap 95% CIs,
Krippendorff's alpha: :func:`eval.agreement.pair_agreement`) and on themes (micro F1 with
a CI, exact match, MASI alpha: :func:`eval.project.compare_labels`). Beside it, each
reviewer against the model's current proposal on the overlap answers they coded.

Only a reviewer's own labels count (``Store.final_labels(reviewer=...)``), so an
adjudication does not make two reviewers agree after the fact.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from coder.assign import double_coded
from coder.review import ReviewIndex, disagreements
from coder.store import Store
from eval import agreement, bootstrap
from eval.project import compare_labels
from schemas import Labels


def _fields(
    first: list[Labels], second: list[Labels], scale: list[str], n_resamples: int, seed: int
) -> dict[str, Any]:
    themes = compare_labels(first, second, scale, n_resamples, seed)
    out: dict[str, Any] = {
        "n_items": len(first),
        "themes": {key.split(".", 1)[1]: value for key, value in themes.items() if key.startswith("themes.")},
        "themes_ci": {"f1": themes.get("ci", {}).get("themes.f1")},
        "stance": agreement.pair_agreement(
            [x.stance for x in first], [y.stance for y in second], scale or None, n_resamples, seed
        ),
        "relevance": agreement.pair_agreement(
            [x.relevant for x in first], [y.relevant for y in second], [True, False], n_resamples, seed
        ),
    }
    return out


def overlap_agreement(
    store: Store, n_resamples: int = bootstrap.DEFAULT_RESAMPLES, seed: int = bootstrap.DEFAULT_SEED
) -> dict[str, Any]:
    """Reviewer-vs-reviewer and model-vs-reviewer agreement on the double-coded answers."""
    overlap = double_coded(store)
    result: dict[str, Any] = {"n_double_coded": len(overlap), "pairs": [], "model": []}
    if not overlap:
        return result
    try:
        _, codebook = store.codebook()
        scale = list(codebook.stance_ids)
    except LookupError:
        scale = []
    by_pair: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for response_id, names in overlap.items():
        by_pair[names].append(response_id)
    reviewers = sorted({name for pair in by_pair for name in pair})
    own = {
        name: {rid: d.labels for rid, d in store.final_labels(reviewer=name, response_ids=list(overlap)).items()
               if d.labels is not None and d.action != "adjudicate"}
        for name in reviewers
    }
    index = ReviewIndex(store)
    for pair, response_ids in sorted(by_pair.items()):
        first_name, second_name = pair[0], pair[1]
        both = [rid for rid in sorted(response_ids) if rid in own[first_name] and rid in own[second_name]]
        pending = {d.entry.response_id for d in disagreements(index, first_name, second_name)}
        result["pairs"].append({
            "reviewers": [first_name, second_name],
            "assigned": len(response_ids),
            "both_coded": len(both),
            "to_adjudicate": len(pending & set(response_ids)),
            **_fields([own[first_name][rid] for rid in both], [own[second_name][rid] for rid in both],
                      scale, n_resamples, seed),
        })
    proposals = store.current_proposals(list(overlap))
    for name in reviewers:
        coded = [rid for rid in sorted(own[name]) if rid in proposals and proposals[rid].proposal is not None]
        model_labels = [Labels.from_proposal(proposals[rid].proposal) for rid in coded]  # type: ignore[arg-type]
        result["model"].append({
            "reviewer": name,
            **_fields(model_labels, [own[name][rid] for rid in coded], scale, n_resamples, seed),
        })
    return result
