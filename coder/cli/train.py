"""``coder train``: refit the offline classifier from reviewers' decisions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.table import Table

from coder.cli.common import (
    console,
    db_option,
    err_console,
    handle_errors,
    open_store,
    value_option,
)
from coder.store import Store

F = TypeVar("F", bound=Callable[..., Any])


def _fine_tune_setting(flag: str, kind: Any, help: str) -> Callable[[F], F]:
    """A setting of --fine-tune (unset: the fine-tuning default that ``help`` names)."""
    return value_option(flag, kind, f"With --fine-tune: {help}")


#: The --fine-tune settings, in the order train() receives them.
FINE_TUNE_SETTINGS = ("time_budget", "seed", "epochs", "trainable_layers")


def fine_tune_options(func: F) -> F:
    """--fine-tune and its settings (shared by coder train and coder eval)."""
    options = [
        click.option(
            "--fine-tune",
            "fine_tune",
            is_flag=True,
            help="Fine-tune the sentence encoder on the labels first (optional extra: "
            "pip install 'coder[finetune]').",
        ),
        click.option(
            "--stance-pairs",
            "stance_pairs",
            is_flag=True,
            help="With --fine-tune: also fine-tune a stance cross-encoder on (question, "
            "answer) pairs; it proposes stance only where it beats the current stance model "
            "on held-back labels (one more encoder pass per answer: about half the speed).",
        ),
        click.option(
            "--theme-pairs",
            "theme_pairs",
            is_flag=True,
            help="With --fine-tune: also fine-tune a theme cross-encoder on (code text, answer) "
            "pairs that re-ranks each answer's top codes; used only where it ranks held-back "
            "answers' codes clearly better (a few more encoder passes per answer).",
        ),
        _fine_tune_setting(
            "--time-budget",
            click.FloatRange(min=1),
            "seconds of training at most; the best weights so far are used and a rerun "
            "continues from the checkpoint.",
        ),
        _fine_tune_setting("--seed", int, "random seed (default 0)."),
        _fine_tune_setting(
            "--epochs",
            click.IntRange(min=1),
            "passes over the labels at most (default 4; early stopping on a held-back 10%).",
        ),
        _fine_tune_setting(
            "--trainable-layers",
            click.IntRange(1, 6),
            "how many of the 6 top transformer layers to train (default 2; the rest are "
            "frozen).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


class FineTuneBar:
    """A rich progress bar on stderr fed by the fine-tuning progress callback."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("Fine-tuning"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps"),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        )
        self.task = self.progress.add_task("fine-tune", total=None, loss="–")
        self.started = False

    def __enter__(self) -> FineTuneBar:
        # Drawn at the first step, so a run refused before training (no labels) shows
        # only its error, not an empty "0/None steps" bar.
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.progress.stop()

    def __call__(self, step: int, total: int, info: dict[str, Any]) -> None:
        if not self.started:
            self.progress.start()
            self.started = True
        self.progress.update(self.task, completed=step, total=total, loss=f"{info['loss']:.3f}")


def _fine_tune(
    store: Store,
    codebook_version: int | None,
    *,
    from_file: Path | None,
    split: str | None,
    repropose: bool,
    options: dict[str, Any],
    stance_pairs: bool = False,
    theme_pairs: bool = False,
) -> Any:
    """Run coder train --fine-tune; print the encoder's figures; return the retrain summary."""
    from coder.embedded.finetune import config_from, require_finetune
    from coder.embedded.finetune_run import checkpoint_folder, fine_tune_project

    require_finetune()
    config = config_from(**options)
    with FineTuneBar() as bar:
        result = fine_tune_project(
            store,
            codebook_version,
            from_file=from_file,
            split=split,
            config=config,
            progress=bar,
            repropose=repropose,
            stance_pairs=stance_pairs,
            theme_pairs=theme_pairs,
        )
    print_fine_tune(result.encoder, checkpoint_folder(store))
    if result.stance_pairs is not None:
        print_stance_pairs(result.stance_pairs, result.retrain.metrics.get("stance_pairs") or {})
    if theme_pairs:
        console.print(theme_pairs_line(result.theme_pairs, result.retrain.metrics))
    return result.retrain


def print_stance_pairs(pairs: Any, report: dict[str, Any]) -> None:
    """The stance cross-encoder: its held-back accuracy against the current stance model."""
    metrics = pairs.record.get("metrics", {})
    line = (
        f"Stance cross-encoder [bold]{pairs.name}[/]: {metrics.get('steps')} steps "
        f"({metrics.get('stopped')}), exported as {metrics.get('export')} ONNX"
    )
    if report.get("pairs_accuracy") is not None:
        held = f"{report['n_held_back']} held-back answers"
        if report.get("held_back_by") == "questions":
            questions = len(report.get("held_back_questions") or ())
            held = f"{report['n_held_back']} answers to {questions} questions it never saw"
        line += (
            f"; on {held} {report['pairs_accuracy']:.3f} "
            f"against the current stance model's {report['current_accuracy']:.3f}: "
            + ("proposes stance." if report.get("chosen") else "not used (not clearly better).")
        )
    else:
        line += f"; not used ({report.get('why', 'no held-back answers')})."
    console.print(line)


def theme_pairs_line(model: Any, metrics: dict[str, Any]) -> str:
    """The theme cross-encoder: trained or declined, and the gate's verdict."""
    if model is None:
        from coder.embedded.theme_pairs_train import MIN_THEME_PAIR_ANSWERS

        return (
            f"Theme cross-encoder: not trained (it needs {MIN_THEME_PAIR_ANSWERS} labelled "
            "answers with a code, and both matching and non-matching codes)."
        )
    trained = model.record.get("metrics", {})
    report = metrics.get("theme_pairs") or {}
    line = (
        f"Theme cross-encoder [bold]{model.name}[/]: {trained.get('n_pairs')} pairs, "
        f"{trained.get('steps')} steps ({trained.get('stopped')}), "
        f"exported as {trained.get('export')} ONNX"
    )
    current = (report.get("current") or {}).get("ranking_ap")
    reranked = (report.get(f"rerank_{report.get('weight')}") or {}).get("ranking_ap")
    if current is None or reranked is None:
        return line + f"; not used ({report.get('why', 'no held-back answers')})."
    verdict = "not used (not clearly better)."
    if report.get("chosen"):
        verdict = "re-ranks and decides codes." if report.get("decides") else "re-ranks codes."
    return line + (
        f"; on {report.get('n_held_back')} held-back answers code ranking AP {reranked:.3f} "
        f"against the current model's {current:.3f}: {verdict}"
    )


def print_fine_tune(result: Any, folder: Path | None) -> None:
    """What the fine-tuning did: steps, stopping reason, loss, export and its accuracy."""
    metrics = result.metrics
    cosine = metrics.get("onnx_int8_frozen_layers_cosine") or metrics.get("onnx_int8_cosine") or {}
    console.print(
        f"Fine-tuned encoder [bold]{result.name}[/]: {metrics['steps']}/{metrics['total_steps']} "
        f"steps ({metrics['stopped']}; best holdout loss {metrics['best_holdout_loss']:.4f} at "
        f"step {metrics['best_step']}) in {metrics['train_seconds']:.0f} s; exported as "
        f"{metrics['export']} ONNX ({len(result.onnx_bytes) / 1e6:.1f} MB"
        + (f", cosine to the float model {cosine['mean']:.3f}" if result.quantized else "")
        + ")."
    )
    if not result.complete and folder is not None:
        console.print(
            f"Stopped before the end: run the same command again to continue from {folder}."
        )


@click.command()
@db_option
@click.option(
    "--from-file",
    "from_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Train on a gold-format items file (JSONL: id, text, question, labels, stance, "
    "relevant) instead of the project's decisions.",
)
@click.option(
    "--split",
    default=None,
    help="With --from-file: only items whose meta.source_split is this (e.g. 'train').",
)
@click.option(
    "--codebook-version", type=int, default=None, help="Codebook version (default: latest)."
)
@click.option(
    "--no-repropose",
    is_flag=True,
    help="Only train and store the model; do not re-propose unreviewed responses.",
)
@click.option(
    "--default-encoder",
    is_flag=True,
    help="Train on the shipped sentence encoder, leaving the project's fine-tuned one aside "
    "(it stays stored; a later --fine-tune makes a new one).",
)
@fine_tune_options
@handle_errors
def train(
    db_path: Path | None,
    from_file: Path | None,
    split: str | None,
    codebook_version: int | None,
    no_repropose: bool,
    default_encoder: bool,
    fine_tune: bool,
    stance_pairs: bool,
    theme_pairs: bool,
    time_budget: float | None,
    seed: int | None,
    epochs: int | None,
    trainable_layers: int | None,
) -> None:
    """Train the local (offline) classifier and re-propose unreviewed responses.

    Learns from every response's labels in force (accepted, corrected or adjudicated), or
    from --from-file. The model is stored in the project; responses nobody has reviewed get
    a new proposal from it (earlier proposals are kept).

    With --fine-tune (needs: pip install 'coder[finetune]') the sentence encoder itself is
    first fine-tuned on the labels, stored in the project as ONNX (usable without the
    extra) and used from then on; checkpoints in PROJECT.finetune/ let an interrupted or
    time-boxed run continue. --stance-pairs adds a stance cross-encoder that reads each
    answer with its question, --theme-pairs one that re-ranks each answer's best codes.
    --default-encoder goes back to the shipped encoder: the
    project then trains and proposes with it until the next --fine-tune.
    """
    from coder.embedded.retrain import retrain_and_repropose

    settings = (time_budget, seed, epochs, trainable_layers)
    if not fine_tune and (stance_pairs or theme_pairs or any(v is not None for v in settings)):
        raise click.UsageError(
            "--stance-pairs, --theme-pairs, --time-budget, --seed, --epochs and "
            "--trainable-layers go with --fine-tune"
        )
    if default_encoder and fine_tune:
        raise click.UsageError("--default-encoder and --fine-tune exclude each other")
    with open_store(db_path) as store:
        if fine_tune:
            summary = _fine_tune(
                store,
                codebook_version,
                from_file=from_file,
                split=split,
                repropose=not no_repropose,
                options=dict(zip(FINE_TUNE_SETTINGS, settings, strict=True)),
                stance_pairs=stance_pairs,
                theme_pairs=theme_pairs,
            )
        else:
            classifier = None
            if default_encoder:
                from coder.embedded.classifier import LocalClassifier
                from coder.embedded.encoder import get_encoder

                # No store: get_encoder then gives the shipped default, not the project's.
                classifier = LocalClassifier(store, use_stored_model=False, encoder=get_encoder())
            with console.status("Training the local classifier ..."):
                summary = retrain_and_repropose(
                    store,
                    codebook_version,
                    from_file=from_file,
                    split=split,
                    repropose=not no_repropose,
                    classifier=classifier,
                )
    console.print(
        f"Trained [bold]{summary.model_version}[/] on {summary.n_examples} labelled responses "
        f"({summary.source}, codebook v{summary.codebook_version}) in {summary.train_seconds:.1f} s."
    )
    _print_fields(summary.fields, summary.metrics.get("gate") or {})
    console.print(
        f"Re-proposed {summary.n_reproposed} unreviewed responses "
        f"in {summary.propose_seconds:.1f} s."
    )
    _print_changes(summary.changes)


#: Why a field proposes as it does, by the gate's choice (coder/embedded/gate.py).
_WHY = {
    "zero-shot": "kept zero-shot: no trained option beat it out of fold",
    "augmented": "zero-shot matching with reviewed answers as extra examples",
    "stacked": "zero-shot weighed against the nearest reviewed answers, per code by its examples",
    "hybrid": "trained model for codes with enough examples, zero-shot for the rest",
    "trained": "trained model",
    "trained+cues": "trained model; the respondent's explicit opening wins",
}


def _print_fields(fields: dict[str, str], gate: dict[str, Any]) -> None:
    """Which model proposes each field, and the cross-validated scores behind the choice."""
    if not fields:
        return
    table = Table("field", "proposed by", "why", "out-of-fold score per option", box=None)
    for name in ("themes", "stance", "relevance"):
        used = fields.get(name, "trained")
        scores = gate.get(name) or {}
        shown = ", ".join(
            f"{option} {'–' if value is None else f'{value:.3f}'}"
            for option, value in scores.items()
        )
        why = _WHY.get(used, used)
        if scores and all(value is None for value in scores.values()):
            why = "kept zero-shot: the reviewed answers give nothing to judge by"
        if gate.get("skipped"):
            why += f" (gate skipped: {gate['skipped']})"
        table.add_row(name, used, why, shown or "–")
    console.print(table)
    if gate.get("n_examples") and not gate.get("skipped"):
        console.print(
            "A trained option replaces a safer one only when it beats it on the same "
            f"answers, out of fold in {gate['n_examples']}-answer cross-validation, by more "
            "than the noise of that comparison.",
            highlight=False,
        )


def _print_changes(changes: dict[str, dict[str, list[int]]]) -> None:
    """Counts per label before -> after re-proposing (so a collapse is seen at once)."""
    if not changes:
        return
    table = Table("field", "label", "before", "after", title="Proposals of unreviewed responses")
    for name, labels in changes.items():
        for label, (before, after) in labels.items():
            if before or after:
                mark = "" if before == after else (" ▲" if after > before else " ▼")
                table.add_row(name, label, str(before), f"{after}{mark}")
    console.print(table)
    lost = [
        f"{name} {label!r}"
        for name, labels in changes.items()
        for label, (before, after) in labels.items()
        if before > 0 and after == 0 and name == "stance"
    ]
    if lost:
        err_console.print(
            f"[yellow]warning:[/] no unreviewed response is proposed as {', '.join(lost)} any "
            "more (was before): review a few such answers so the model can learn them.",
            highlight=False,
        )

