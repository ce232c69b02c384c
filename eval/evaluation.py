"""One ``coder eval`` run: options in, scored metrics out, stored and checked.

:func:`run_eval` loads the gold set, runs the backend in one of its modes (an existing
predictions file, zero-shot or trained, k-fold cross-validation, a learning curve), scores
the predictions and the baselines; :func:`store_run` records the run in the project's
``eval_runs``; :func:`check_minimums` is the ``--min`` gate. The faces only print:
everything the run has to say on the way goes through a :class:`Notices`.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from coder.backends.base import ProposalResult
from coder.errors import CoderError
from coder.store import Store
from eval import baselines, runner
from eval.formatting import fmt_value, json_safe
from eval.gold import GoldItem, data_hash
from eval.learning_curve import learning_curve
from eval.run_baselines import naive_themes, score_baselines
from eval.scoring import Prediction, lookup, read_predictions, score
from schemas import Codebook


class Notices(Protocol):
    """Where a run says what it does; the CLI prints these as the run goes."""

    def warning(self, text: str, details: Sequence[str] = ()) -> None:
        """A warning about the run's figures, with a few detail lines (shown with them)."""

    def progress(self, text: str) -> None:
        """A step of the run done (a learning-curve point), shown with the results."""

    def status(self, text: str, problem: bool) -> None:
        """What the run does now, or a problem on the side (``problem``)."""

    def fine_tune_bar(self) -> AbstractContextManager[Any]:
        """A progress display fed by the fine-tuning progress callback it yields."""

    def fine_tuned(self, result: Any) -> None:
        """Fine-tuning finished with ``result`` (a FineTuneResult)."""


@dataclass
class EvalOptions:
    """The options of one ``coder eval`` run (as ``coder eval --help`` names them)."""

    gold_path: Path | None
    codebook_path: Path | None
    items_path: Path | None
    predictions_path: Path | None = None
    backend: str = "local"
    model: str | None = None
    train_path: Path | None = None
    cv: int | None = None
    learning_curve: str | None = None
    train_filters: tuple[str, ...] = ()
    test_filters: tuple[str, ...] = ()
    limit: int | None = None
    resamples: int = 1000
    seed: int = 0
    no_baselines: bool = False
    fine_tune: bool = False
    #: with fine_tune: also the stance cross-encoder over (question, answer) pairs
    stance_pairs: bool = False
    #: with fine_tune: also the theme cross-encoder over (code text, answer) pairs
    theme_pairs: bool = False


@dataclass
class Predicted:
    """What one mode of running the backend gave: predictions and how they were made."""

    predictions: dict[str, Prediction]
    results: list[ProposalResult]
    mode: str
    n_train: int = 0
    #: (training, test) splits the baselines are fitted and scored on: the model's own
    splits: list[baselines.Split] = field(default_factory=list)
    curve: list[dict[str, Any]] = field(default_factory=list)
    #: a learning curve scores its own baselines, point by point
    baselines: dict[str, Any] | None = None
    #: the model the run names (a trained classifier may name its own)
    model: Any = None


@dataclass
class EvalRun:
    """A scored eval run, ready to print, store and check."""

    codebook: Codebook
    items: list[GoldItem]
    metrics: dict[str, Any]
    params: dict[str, Any]
    run_info: dict[str, Any]
    #: the project store the LLM calls were traced into (opened before the run), if any
    call_store: Store | None = None


def _check_combinations(options: EvalOptions) -> None:
    """Refuse options that cannot go together in one run."""
    trains = options.train_path or options.train_filters
    if options.predictions_path is not None:
        if trains or options.cv or options.learning_curve:
            raise CoderError(
                "--predictions scores an existing file: it cannot be combined with "
                "--train, --train-filter, --cv or --learning-curve"
            )
        return
    if options.stance_pairs and not options.fine_tune:
        raise CoderError("--stance-pairs goes with --fine-tune")
    if options.theme_pairs and not options.fine_tune:
        raise CoderError("--theme-pairs goes with --fine-tune")
    if options.fine_tune and (options.cv or options.learning_curve):
        raise CoderError(
            "--fine-tune fine-tunes once on --train or --train-filter items: it cannot be "
            "combined with --cv or --learning-curve"
        )
    if options.cv and (trains or options.learning_curve):
        raise CoderError(
            "--cv trains on the other folds of the scored items: it cannot be combined "
            "with --train, --train-filter or --learning-curve"
        )


def _base_params(options: EvalOptions) -> dict[str, Any]:
    """The run's stored parameters that every mode records."""
    params: dict[str, Any] = {
        "limit": options.limit, "seed": options.seed, "resamples": options.resamples,
    }  # fmt: skip
    if options.train_filters:
        params["train_filter"] = list(options.train_filters)
    if options.test_filters:
        params["test_filter"] = list(options.test_filters)
    params["baselines"] = not options.no_baselines
    return params


def fine_tune_encoder(
    make: runner.BackendFactory,
    backend: str,
    pool: list[GoldItem],
    seed: int,
    notices: Notices,
) -> dict[str, Any]:
    """``coder eval --fine-tune``: fine-tune on the training items, give the factory the encoder.

    Returns what to record in the eval run's params (encoder name, steps, times).
    """
    from coder.embedded.finetune import config_from, require_finetune
    from coder.embedded.finetune_run import fine_tuned_encoder

    if backend != "local":
        raise CoderError(f"--fine-tune needs the local backend, not {backend!r}")
    if not pool:
        raise CoderError("--fine-tune needs training items: give --train FILE or --train-filter")
    require_finetune()
    with notices.fine_tune_bar() as bar:
        encoder, result = fine_tuned_encoder(
            runner.labelled_examples(pool), config_from(seed=seed), bar
        )
    notices.fine_tuned(result)
    make.options["encoder"] = runner.CachingEncoder(encoder)
    return {
        "encoder": result.name,
        **{k: result.metrics[k] for k in ("steps", "stopped", "train_seconds", "export")},
    }


def fine_tune_stance_pairs(
    pool: list[GoldItem], codebook: Codebook, seed: int, notices: Notices, params: dict[str, Any]
) -> Any:
    """``coder eval --fine-tune``: the stance cross-encoder on the training items' stances."""
    from coder.embedded.finetune import config_from
    from coder.embedded.finetune_run import fine_tuned_stance_pairs

    with notices.fine_tune_bar() as bar:
        pairs = fine_tuned_stance_pairs(
            runner.labelled_examples(pool), codebook, config_from(seed=seed), bar
        )
    if pairs is not None:
        metrics = pairs.record.get("metrics", {})
        params["stance_pairs"] = {
            "encoder": pairs.name,
            **{k: metrics.get(k) for k in ("steps", "stopped", "train_seconds", "export")},
            "holdout_accuracy": metrics.get("holdout_accuracy"),
        }
    return pairs


def fine_tune_theme_pairs(
    pool: list[GoldItem], codebook: Codebook, seed: int, notices: Notices, params: dict[str, Any]
) -> Any:
    """``coder eval --fine-tune --theme-pairs``: the theme cross-encoder on the training
    items' codes (None, with a warning, when they are too few)."""
    from coder.embedded.finetune import config_from
    from coder.embedded.theme_pairs_project import fine_tuned_theme_pairs

    with notices.fine_tune_bar() as bar:
        model = fine_tuned_theme_pairs(
            runner.labelled_examples(pool), codebook, config_from(seed=seed), bar
        )
    if model is None:
        notices.warning("Too few labelled answers with codes: no theme cross-encoder.")
        return None
    metrics = model.record.get("metrics", {})
    keys = ("n_pairs", "steps", "stopped", "train_seconds", "export")
    params["theme_pairs"] = {"encoder": model.name, **{k: metrics.get(k) for k in keys}}
    return model


def _run_trained_or_zero_shot(
    options: EvalOptions,
    make: runner.BackendFactory,
    codebook: Codebook,
    items: list[GoldItem],
    pool: list[GoldItem],
    params: dict[str, Any],
    notices: Notices,
) -> Predicted:
    """One classifier, trained on ``pool`` when it learns (else zero-shot), on ``items``."""
    pairs = themes = None
    if options.fine_tune:
        params["fine_tune"] = fine_tune_encoder(
            make, options.backend, pool, options.seed, notices
        )
        if options.stance_pairs:
            pairs = fine_tune_stance_pairs(pool, codebook, options.seed, notices, params)
        if options.theme_pairs:
            themes = fine_tune_theme_pairs(pool, codebook, options.seed, notices, params)
    classifier = make()
    if pairs is not None:
        # fit() gates it against the current stance model (only the local backend gets here)
        classifier.stance_pairs = pairs  # type: ignore[attr-defined]
    if themes is not None:
        classifier.theme_pairs = themes  # type: ignore[attr-defined]
    if pool and not runner.fit(classifier, pool, codebook):
        notices.warning(f"The {options.backend} backend does not learn: training ignored.")
        pool = []
    if themes is not None and pool:
        report = classifier.state.metrics.get("theme_pairs") or {}  # type: ignore[attr-defined]
        params["theme_pairs"]["gate"] = {k: v for k, v in report.items() if k != "trained_on"}
    predictions, results = runner.predict(classifier, items, codebook)
    return Predicted(
        predictions,
        results,
        mode="trained" if pool else "zero-shot",
        n_train=len(pool),
        splits=[baselines.Split(pool, items)],
        model=getattr(classifier, "model", options.model),
    )


def _run_backend(
    options: EvalOptions,
    make: runner.BackendFactory,
    codebook: Codebook,
    all_items: list[GoldItem],
    items: list[GoldItem],
    train_by: list[runner.ItemFilter],
    params: dict[str, Any],
    notices: Notices,
) -> tuple[Predicted, list[GoldItem]]:
    """Run the backend in the mode the options ask for; (what it gave, the scored items).

    A learning curve without separate training data holds out a seeded 20% of the items,
    so the scored items can change.
    """
    pool = runner.training_pool(
        all_items, items, options.train_path, train_by, options.limit, notices.warning
    )
    if options.train_path:
        params["train"] = str(options.train_path)
    seed = options.seed
    if options.cv:
        predictions, results = runner.cross_validate(make, items, codebook, options.cv, seed)
        params["cv"] = options.cv
        splits = [baselines.Split(t, f) for t, f in runner.cv_splits(items, options.cv, seed)]
        n_train = len(items) - len(items) // options.cv
        mode = f"{options.cv}-fold cv"
        return Predicted(predictions, results, mode, n_train, splits, model=options.model), items
    if options.learning_curve:
        if not pool:
            # No separate training data: hold out a fixed, seeded 20% of the items.
            pool, items = runner.split_pool(items, seed)
            params["held_out"] = "20% of the scored items (seeded)"
        curve = learning_curve(
            make, items, pool, codebook, options.learning_curve, seed=seed,
            resamples=options.resamples, with_baselines=not options.no_baselines,
            progress=notices.progress, status=notices.status,
        )  # fmt: skip
        params["learning_curve"] = options.learning_curve
        predicted = Predicted(
            curve.predictions, curve.results, "learning curve", curve.n_train,
            curve=curve.points, baselines=curve.baselines, model=options.model,
        )  # fmt: skip
        return predicted, items
    predicted = _run_trained_or_zero_shot(options, make, codebook, items, pool, params, notices)
    return predicted, items


def _report_failures(results: list[ProposalResult], notices: Notices) -> None:
    """Warn about the items the backend failed on (scored as predicting nothing)."""
    failed = [r for r in results if not r.ok]
    if failed:
        notices.warning(
            f"{len(failed)} item(s) failed and are scored as predicting nothing.",
            [f"  failed {result.response_id}: {result.error}" for result in failed[:3]],
        )


def _factory(
    options: EvalOptions,
    codebook: Codebook,
    all_items: list[GoldItem],
    params: dict[str, Any],
    open_store: Callable[[], Store] | None,
) -> tuple[runner.BackendFactory, Store | None]:
    """The run's classifier factory, and the store its LLM calls are traced into (if any)."""
    llm_options: dict[str, Any] = {}
    call_store = None
    if options.backend == "openai" and open_store is not None:
        # Every model call is traced, as in precode: into the project's llm_calls, under
        # one run id that the stored eval run names. Opened before the run, so the calls
        # of a run that fails half-way are kept.
        call_store = open_store()
        llm_run_id = uuid.uuid4().hex
        llm_options = {"call_logger": call_store.log_llm_call, "run_id": llm_run_id}
        params["llm_run_id"] = llm_run_id
    make = runner.factory(options.backend, options.model, **llm_options)
    make.unlabelled = ([item.to_response() for item in all_items], codebook)
    return make, call_store


def run_eval(
    options: EvalOptions,
    notices: Notices,
    open_store: Callable[[], Store] | None = None,
) -> EvalRun:
    """Run and score one eval; ``open_store`` (None: --no-store) opens the project whose
    ``llm_calls`` trace an LLM backend's calls."""
    codebook, all_items, items = runner.scored_items(
        options.gold_path, options.codebook_path, options.items_path,
        options.test_filters, options.limit,
    )  # fmt: skip
    train_by = [runner.ItemFilter.parse(text, "--train-filter") for text in options.train_filters]
    _check_combinations(options)
    params = _base_params(options)
    run_info: dict[str, Any] = {
        "backend": options.backend, "model": options.model, "prompt_hash": None,
    }  # fmt: skip
    make: runner.BackendFactory | None = None
    call_store = None
    if options.predictions_path is not None:
        predicted = Predicted(read_predictions(options.predictions_path), [], "predictions")
        predicted.splits = [baselines.Split([], items)]
        run_info["backend"], run_info["model"] = "predictions", str(options.predictions_path)
        params["predictions"] = str(options.predictions_path)
    else:
        make, call_store = _factory(options, codebook, all_items, params, open_store)
        predicted, items = _run_backend(
            options, make, codebook, all_items, items, train_by, params, notices
        )
        run_info["model"] = predicted.model
        hashes = {r.prompt_template_hash for r in predicted.results if r.prompt_template_hash}
        run_info["prompt_hash"] = ",".join(sorted(hashes)) or None
        _report_failures(predicted.results, notices)
    params["mode"], params["n_train"] = predicted.mode, predicted.n_train
    metrics = _score_run(options, codebook, items, predicted, make, run_info, notices)
    return EvalRun(codebook, items, metrics, params, run_info, call_store)


def _score_run(
    options: EvalOptions,
    codebook: Codebook,
    items: list[GoldItem],
    predicted: Predicted,
    make: runner.BackendFactory | None,
    run_info: dict[str, Any],
    notices: Notices,
) -> dict[str, Any]:
    """The run's metrics: scored predictions, the run's description, curve and baselines."""
    metrics = score(
        codebook, items, predicted.predictions, n_resamples=options.resamples, seed=options.seed
    )
    metrics["run"] = {
        "backend": run_info["backend"],
        "model": run_info["model"],
        "mode": predicted.mode,
        "n_train": predicted.n_train,
        "cv": options.cv,
        "seed": options.seed,
    }
    if predicted.curve:
        metrics["learning_curve"] = predicted.curve
    if not options.no_baselines:
        block = predicted.baselines
        if block is None:
            naive = naive_themes(make or runner.factory("local"), codebook, items, notices.status)
            block = score_baselines(
                codebook, items, predicted.splits, options.seed, metrics, naive
            )
        metrics["baselines"] = block
    metrics["codebook"] = {"name": codebook.name, "hash": codebook.content_hash()}
    return metrics


def store_run(run: EvalRun, store: Store, *, name: str | None, command: str) -> int:
    """Record the run in the project's ``eval_runs``; its id."""
    return store.add_eval_run(
        name=name,
        backend=run.run_info["backend"],
        model=run.run_info["model"],
        prompt_hash=run.run_info["prompt_hash"],
        codebook_version=None,
        codebook_hash=run.codebook.content_hash(),
        data_hash=data_hash(run.items),
        n_items=len(run.items),
        params=run.params,
        metrics=json_safe(run.metrics),
        command=command,
    )


def parse_minimums(minimums: Sequence[str]) -> list[tuple[str, float]]:
    """``--min PATH=VALUE`` options as (metric path, minimum) pairs."""
    out = []
    for text in minimums:
        path, sep, value = text.partition("=")
        if not sep or not path.strip():
            raise CoderError(f"--min '{text}': expected PATH=VALUE, e.g. themes.micro_f1=0.6")
        try:
            out.append((path.strip(), float(value)))
        except ValueError:
            raise CoderError(f"--min '{text}': '{value}' is not a number") from None
    return out


def check_minimums(metrics: dict[str, Any], thresholds: Sequence[tuple[str, float]]) -> None:
    """The ``--min`` gate: a CoderError naming every metric below its minimum."""
    failures = []
    for path, minimum in thresholds:
        try:
            value = lookup(metrics, path)
        except KeyError:
            raise CoderError(f"--min {path}: no such metric in this run") from None
        if not isinstance(value, int | float) or math.isnan(value) or value < minimum:
            failures.append(f"{path} = {fmt_value(value)} is below the minimum {minimum}")
    if failures:
        raise CoderError("; ".join(failures))
