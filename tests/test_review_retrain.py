"""The active-learning hook: retrain every N decisions in a worker, then reorder the queue."""

from __future__ import annotations

from pathlib import Path

from coder.store import Store
from review_tui.retrain import Retrainer, core_retrain_function
from tests.review_data import build_project, review_app, small_codebook


def repropose_reversed(store: Store) -> None:
    """A stand-in training run: re-proposes every response with its confidence flipped."""
    version, _ = store.codebook()
    rows = []
    for response_id, stored in store.current_proposals().items():
        assert stored.proposal is not None
        flipped = stored.proposal.model_copy(update={"confidence": 1 - stored.proposal.confidence})
        rows.append(
            {
                "response_id": response_id,
                "backend": "local",
                "model": "retrained",
                "codebook_version": version,
                "proposal": flipped,
            }
        )
    store.add_proposals(rows)


async def test_retrain_every_two_decisions_reorders_queue(tmp_path: Path) -> None:
    store = build_project(tmp_path / "retrain.db", 12, codebook=small_codebook())
    app = review_app(store)
    app.retrainer = Retrainer(app.session, 2, repropose_reversed)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("a", "a")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.retrainer.running is False
        order = [entry.confidence for entry in app.session.order]
        assert order == sorted(order)  # type: ignore[type-var]
        # The queue now follows the new model's proposals.
        item = app.session.item
        assert item is not None and item.proposal is not None
        assert item.proposal.model == "retrained"


def test_hook_uses_the_core_retrain_function() -> None:
    from coder.embedded import retrain

    assert core_retrain_function() is retrain.retrain_and_repropose
