"""``coder agree``: agreement between coders, from a long-format file of coded rows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from coder.cli.common import F, handle_errors
from coder.cli.eval_tables import print_agreement
from coder.cli.json_output import emit_json, json_options
from coder.errors import CoderError

METRIC_CHOICES = (
    "percent", "cohen", "scott", "ac1", "fleiss", "alpha",
    "exact", "jaccard", "f1", "masi_alpha", "mv_alpha",
)  # fmt: skip


def _column_option(flag: str, name: str, role: str, found: str) -> Callable[[F], F]:
    """An option naming the file's column in ``role``; by default the column is found by
    its name (``found``: the names tried, slash-separated)."""
    return click.option(flag, name, default=None, help=f"Column {role} (default: {found}...).")


@click.command("agree")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_column_option("--field", "label_column", "holding the labels", "label/code/value")
@_column_option("--coder-column", "coder_column", "naming the coder", "coder/rater/annotator")
@_column_option("--item-column", "item_column", "naming the item", "item/unit/id")
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    type=click.Choice(METRIC_CHOICES),
    help="Metric(s) to compute (repeatable; default: all that apply).",
)
@click.option(
    "--level",
    type=click.Choice(["nominal", "ordinal", "interval", "ratio"]),
    default="nominal",
    show_default=True,
    help="Level of measurement (alpha's distance; weighted kappa when not nominal).",
)
@click.option(
    "--multi", is_flag=True, help="Labels are sets (themes): one row per label, or a list per row."
)
@click.option("--categories", default=None,
              help="Full ordered category set, comma-separated (weighted kappa and AC1 use all "
              "of it, seen or not).")
@click.option(
    "--resamples",
    default=1000,
    show_default=True,
    help="Bootstrap resamples for 95% CIs (0 = none).",
)
@click.option("--seed", default=0, show_default=True, help="Bootstrap seed.")
@json_options("the figures")
@handle_errors
def agree(
    file: Path,
    label_column: str | None,
    coder_column: str | None,
    item_column: str | None,
    metrics: tuple[str, ...],
    level: str,
    multi: bool,
    categories: str | None,
    resamples: int,
    seed: int,
    json_path: Path | None,
    as_json: bool,
) -> None:
    """Agreement between coders, from a long-format CSV or JSONL file of (coder, item, label) rows.

    Every pair of coders and all coders together. Single-label fields: percent agreement,
    Cohen's kappa (weighted too when --level is ordinal/interval), Scott's pi, Gwet's AC1,
    Fleiss' kappa, Krippendorff's alpha. With --multi (label sets): exact match, Jaccard,
    F1, alpha with MASI distance, and Krippendorff & Craggs' mv-alpha.
    """
    from eval.agree import MULTI_METRICS, SINGLE_METRICS, compute, load_long

    data = load_long(
        file,
        multi=multi,
        coder_column=coder_column,
        item_column=item_column,
        label_column=label_column,
    )
    if len(data.coders) < 2:
        raise CoderError(f"{file}: agreement needs at least two coders; found {len(data.coders)}")
    wanted = [m for m in metrics if m in (MULTI_METRICS if multi else SINGLE_METRICS)]
    if metrics and not wanted:
        raise CoderError(
            f"none of the metrics {', '.join(metrics)} apply to "
            f"{'label sets' if multi else 'single labels'}"
        )
    result = compute(
        data,
        multi=multi,
        level=level,
        categories=[c.strip() for c in categories.split(",")] if categories else None,
        metrics=wanted or None,
        n_resamples=resamples,
        seed=seed,
    )
    result["file"] = str(file)
    print_agreement(result)
    emit_json(result, json_path, as_json)

