"""`coder status` on a reviewed project: the exact lines it prints, where --db may go, and
the errors for a missing or empty project file (real project files, the real CLI)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

import coder.store
from coder.assign import assign, double_coded
from coder.cli import cli
from coder.status import project_status
from coder.store import Store
from schemas import Labels
from tests.review_data import build_project

#: As the code before issue 16 printed it for this project (the lazy store changed nothing).
STATUS_LINES = """\
  codebook version: 1
  responses: 30
  proposed: 30   failed: 0
  reviewed: 7   decisions: 16
  by question: H1 3, H2 3, H3 3, H4 3, H5 3, H6 3, H7 3, H8 3, H9 3, Q10 3
  review sessions (latest last):
    ann 2026-11-29 09:04-09:09 · 6 decisions (72/h) · 83% accepted unchanged
    bob 2026-11-29 09:10-09:15 · 6 decisions (72/h) · 83% accepted unchanged
    bob 2026-11-29 11:16-11:18 · 2 decisions (60/h) · 50% accepted unchanged
    lead 2026-11-29 11:19-11:19 · 1 decision
  reviewers:
    ann · 6 decisions · 6 reviewed · 72/h · 83% accepted unchanged · agrees 83% on 6 shared
    bob · 8 decisions · 7 reviewed · 69/h · 75% accepted unchanged · agrees 83% on 6 shared
    lead · 1 decision · 0 reviewed
"""


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[datetime]]:
    """A clock that moves a minute per decision (the store reads coder.store.now)."""
    moment = [datetime(2026, 11, 29, 9, 0, tzinfo=UTC)]

    def tick() -> str:
        moment[0] += timedelta(minutes=1)
        return moment[0].isoformat(timespec="microseconds")

    monkeypatch.setattr(coder.store, "now", tick)
    yield moment


@pytest.fixture
def reviewed(tmp_path: Path, clock: list[datetime]) -> Path:
    """ann and bob double-code six answers and differ on one; bob comes back two hours later,
    reviews one more and undoes one decision; the lead adjudicates the difference."""
    path = tmp_path / "reviewed.db"
    store = build_project(path, 30)
    assign(store, ["ann", "bob"], 0.5, seed=1)
    proposals = store.current_proposals()
    shared = sorted(double_coded(store))[:6]
    for reviewer in ("ann", "bob"):
        for number, response_id in enumerate(shared):
            stored = proposals[response_id]
            assert stored.proposal is not None
            labels = Labels.from_proposal(stored.proposal)
            action = "accept"
            if number == 2 and reviewer == "bob":
                labels = labels.model_copy(update={"themes": [*labels.themes, "another_theme"]})
                action = "correct"
            if number == 4 and reviewer == "ann":
                action = "correct"  # the same labels, corrected by hand
            store.add_decision(response_id=response_id, reviewer=reviewer, action=action,
                               labels=labels, proposal_id=stored.id)
    clock[0] += timedelta(hours=2)
    other = sorted(set(proposals) - set(shared))[0]
    stored = proposals[other]
    assert stored.proposal is not None
    kept = store.add_decision(response_id=other, reviewer="bob", action="accept",
                              labels=Labels.from_proposal(stored.proposal), proposal_id=stored.id)
    store.add_decision(response_id=other, reviewer="bob", action="undo", undoes=kept)
    store.add_decision(response_id=other, reviewer="bob", action="correct",
                       labels=Labels.from_proposal(stored.proposal), proposal_id=stored.id)
    disputed = proposals[shared[2]]
    assert disputed.proposal is not None
    store.add_decision(response_id=shared[2], reviewer="lead", action="adjudicate",
                       labels=Labels.from_proposal(disputed.proposal), proposal_id=disputed.id)
    store.close()
    return path


def test_status_prints_sessions_and_reviewers(reviewed: Path) -> None:
    result = CliRunner().invoke(cli, ["status", "--db", str(reviewed)])
    assert result.exit_code == 0, result.output
    assert result.output.endswith(STATUS_LINES)
    # The first line is the project's path (Rich wraps a long one at the terminal width).
    assert result.output[: -len(STATUS_LINES)].replace("\n", "") == str(reviewed)


def test_db_goes_before_or_after_the_command(reviewed: Path) -> None:
    after = CliRunner().invoke(cli, ["status", "--db", str(reviewed)])
    before = CliRunner().invoke(cli, ["--db", str(reviewed), "status"])
    assert before.exit_code == 0 and before.output == after.output


def test_status_json_is_the_library_figures(reviewed: Path) -> None:
    result = CliRunner().invoke(cli, ["status", "--json", "--db", str(reviewed)])
    assert result.exit_code == 0, result.output
    with Store(reviewed) as store:
        assert json.loads(result.output) == json.loads(json.dumps(project_status(store)))


def test_labels_in_force_read_raw_or_parsed_agree(reviewed: Path) -> None:
    """final_label_rows is final_labels' rule without the Pydantic records."""
    with Store(reviewed) as store:
        for reviewer in (None, "ann", "bob", "lead"):
            parsed = store.final_labels(reviewer=reviewer)
            raw = store.final_label_rows(reviewer=reviewer)
            assert {rid: d.id for rid, d in parsed.items()} == {rid: r["id"] for rid, r in raw.items()}
            for response_id, row in raw.items():
                assert Labels.model_validate_json(row["labels"]) == parsed[response_id].labels
        adjudicated = [rid for rid, row in store.final_label_rows().items()
                       if row["action"] == "adjudicate"]
        assert len(adjudicated) == 1


def test_missing_or_empty_project_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    result = CliRunner().invoke(cli, ["status", "--db", str(missing)])
    assert result.exit_code == 1 and "missing.db: no such project file" in result.output
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    result = CliRunner().invoke(cli, ["--db", str(empty), "status"])
    assert result.exit_code == 1, result.output
    assert "empty.db: the file is empty (0 bytes), not a coder project" in result.output
    assert "Traceback" not in result.output
    assert empty.stat().st_size == 0 and sorted(tmp_path.iterdir()) == [empty]
    # A command that creates projects still takes the empty file.
    result = CliRunner().invoke(cli, ["codebook", "add", "--example", "--db", str(empty)])
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(cli, ["status", "--db", str(empty)]).exit_code == 0
