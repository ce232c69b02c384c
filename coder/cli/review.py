"""``coder review``: the review TUI."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import click

from coder.cli.common import db_option, handle_errors, open_store
from coder.errors import CoderError


def load_keymap(path: Path) -> dict[str, str]:
    """Binding id -> keys from a YAML/JSON mapping (a CoderError names what is wrong)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise CoderError(f"{path}: cannot read the keymap: {error}") from error
    if not isinstance(data, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in data.items()
    ):
        raise CoderError(f"{path}: a keymap maps binding ids to keys, e.g. 'review.skip: k,s'")
    return data


def default_reviewer() -> str:
    return os.environ.get("CODER_REVIEWER") or getpass.getuser()


@click.command("review")
@db_option
@click.option(
    "--reviewer",
    "-r",
    default=None,
    help="Your name: every decision records it (default: $CODER_REVIEWER or your login).",
)
@click.option(
    "--blind",
    is_flag=True,
    help="Hide the model's proposal and other reviewers' decisions (for human-human agreement).",
)
@click.option(
    "--filter",
    "filter_text",
    default="",
    help="Start with a queue filter, e.g. 'status:skipped question:H3 theme:ID tag:X conf<0.6'.",
)
@click.option(
    "--order",
    type=click.Choice(["confidence", "import"]),
    default=None,
    help="Review order (default: least confident first; import order when --blind).",
)
@click.option(
    "--adjudicate",
    nargs=2,
    default=None,
    metavar="A B",
    help="Open the adjudication screen for reviewers A and B.",
)
@click.option(
    "--retrain-every",
    type=int,
    default=0,
    metavar="N",
    help="Retrain the embedded model every N decisions and reorder the queue (active learning).",
)
@click.option(
    "--keymap",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML or JSON file mapping binding ids to keys, e.g. 'review.accept: a,enter,y'.",
)
@click.option(
    "--served",
    is_flag=True,
    hidden=True,
    help="Run as one browser session of 'coder serve': the reviewer is fixed by the sign-in.",
)
@handle_errors
def review(
    db_path: Path | None,
    reviewer: str | None,
    blind: bool,
    filter_text: str,
    order: str | None,
    adjudicate: tuple[str, str] | None,
    retrain_every: int,
    keymap: Path | None,
    served: bool = False,
) -> None:
    """Review the model's proposals one response at a time (a terminal UI).

    Keys: a/Enter accept and go on, 1-0 toggle themes, t pick a theme, s stance,
    h hypothesis, x not relevant, f flag quote, n note, k skip, u undo, l queue,
    d definitions, ? help, Ctrl+P commands, q quit. Every decision is saved at once;
    reopening resumes at the first unreviewed item.
    """
    from coder.leases import Leases
    from coder.review import check_filter, parse_filter
    from review_tui.app import ReviewApp
    from review_tui.served_app import ServedReviewApp
    from review_tui.session import ReviewSession

    # A typo in the filter is an error before anything opens (an empty queue says nothing).
    queue_filter = parse_filter(filter_text) if filter_text else None
    store = open_store(db_path)
    if store.count_responses() == 0:
        raise CoderError(f"{store.path}: no responses yet: run 'coder import FILE' first")
    if queue_filter is not None:
        try:
            check_filter(store, queue_filter)
        except CoderError:
            store.close()
            raise
    name = reviewer or default_reviewer()
    # Leases keep two sessions (terminals or browsers) off the same item; blind reviewers
    # double-code, so they may share items.
    leases = Leases.for_review(store, name, blind=blind)
    # A question-only filter finds its first item without the index (built after the first
    # draw); any other filter builds the index here.
    session = ReviewSession(
        store,
        name,
        blind=blind,
        order=order,
        leases=leases,
        reviewer_locked=served,
        queue_filter=queue_filter,
    )
    keys = load_keymap(keymap) if keymap else None
    app = (ServedReviewApp if served else ReviewApp)(
        session,
        adjudicate=tuple(adjudicate) if adjudicate else None,  # type: ignore[arg-type]
        retrain_every=retrain_every,
        keymap=keys,
    )
    try:
        app.run()
    finally:
        session.close()
        summary = session.summary()
        store.close()
    if not served:  # a served app's stdout is textual-serve's channel to the browser
        click.echo(summary)
