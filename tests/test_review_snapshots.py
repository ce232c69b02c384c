"""SVG snapshots of each review screen at a fixed terminal size.

Update after an intended change with ``pytest tests/test_review_snapshots.py
--snapshot-update`` and look at the report it writes before committing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coder.store import Store
from schemas import Labels
from tests.review_data import build_project, review_app, small_codebook

SIZE = (120, 40)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return build_project(tmp_path / "snap.db", 30, codebook=small_codebook())


@pytest.fixture
def builtin_store(tmp_path: Path) -> Store:
    return build_project(tmp_path / "builtin.db", 30)


def test_review_screen(snap_compare: Any, builtin_store: Store) -> None:
    assert snap_compare(review_app(builtin_store), terminal_size=SIZE)


def test_review_screen_edited(snap_compare: Any, store: Store) -> None:
    assert snap_compare(review_app(store), press=["1", "2"], terminal_size=SIZE)


def test_reason_modal(snap_compare: Any, store: Store) -> None:
    assert snap_compare(review_app(store), press=["1", "a"], terminal_size=SIZE)


def test_blind_review_screen(snap_compare: Any, store: Store) -> None:
    assert snap_compare(review_app(store, blind=True), terminal_size=SIZE)


def test_queue_screen(snap_compare: Any, store: Store) -> None:
    assert snap_compare(review_app(store), press=["l"], terminal_size=SIZE)


def test_queue_screen_with_stance_column(snap_compare: Any, builtin_store: Store) -> None:
    assert snap_compare(review_app(builtin_store), press=["l", "down"], terminal_size=SIZE)


def test_group_action_picker(snap_compare: Any, builtin_store: Store) -> None:
    assert snap_compare(review_app(builtin_store), press=["l", "down", "g"], terminal_size=SIZE)


def test_group_action_confirmation(snap_compare: Any, builtin_store: Store) -> None:
    press = ["l", *"question:H2", "enter", "g", "3", "1"]
    assert snap_compare(review_app(builtin_store), press=press, terminal_size=SIZE)


def test_help_screen(snap_compare: Any, store: Store) -> None:
    assert snap_compare(review_app(store), press=["question_mark"], terminal_size=SIZE)


def test_definitions_screen(snap_compare: Any, store: Store) -> None:
    assert snap_compare(review_app(store), press=["d"], terminal_size=SIZE)


def test_confirmation_screen(snap_compare: Any, store: Store) -> None:
    assert snap_compare(review_app(store), press=["l", "down", "b", "0", "enter"], terminal_size=SIZE)


def test_adjudication_screen(snap_compare: Any, store: Store) -> None:
    first = sorted(store.current_proposals())[:3]
    for response_id in first:
        store.add_decision(
            response_id=response_id,
            reviewer="ann",
            action="correct",
            labels=Labels(question="H1", stance="resonates", themes=["data", "leadership"]),
        )
        store.add_decision(
            response_id=response_id,
            reviewer="bob",
            action="correct",
            labels=Labels(question="H1", stance="partly", themes=["funding"]),
        )
    assert snap_compare(review_app(store, reviewer="cat"), press=["j"], terminal_size=SIZE)
