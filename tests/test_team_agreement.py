"""Agreement on the assignment's overlap, the adjudication queue it feeds, and the coding
team's figures in `coder status` and the report (real project files, the real CLI and app)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from coder.assign import assign, double_coded
from coder.cli import cli
from coder.report.markdown import render_markdown
from coder.report.model import build_report
from coder.status import reviewer_stats
from coder.store import Store
from eval.agreement import pair_agreement
from eval.overlap import overlap_agreement
from review_tui.adjudication_screen import AdjudicationScreen
from schemas import Labels
from tests.review_data import build_project, review_app, small_codebook

DIFFERENT = 3


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """ann and bob double-code half of 40 answers; they differ on three of them."""
    store = build_project(tmp_path / "overlap.db", 40, codebook=small_codebook())
    assign(store, ["ann", "bob"], 0.5, seed=1)
    for number, response_id in enumerate(sorted(double_coded(store))):
        question = store.response(response_id).question
        stance = ["agree", "disagree"][number % 2]
        ann = Labels(question=question, themes=["data"], stance=stance)
        bob = ann if number >= DIFFERENT else ann.model_copy(update={"themes": ["funding"]})
        store.add_decision(response_id=response_id, reviewer="ann", action="correct", labels=ann)
        store.add_decision(response_id=response_id, reviewer="bob", action="correct", labels=bob)
    return store


def test_pair_agreement_matches_hand_computed_figures() -> None:
    result = pair_agreement(["a", "a", "b", "b"], ["a", "b", "b", "b"], n_resamples=200)
    assert result["n_items"] == 4
    assert result["percent_agreement"] == pytest.approx(0.75)
    assert result["kappa"] == pytest.approx(0.5)
    assert result["ac1"] == pytest.approx((0.75 - 0.46875) / (1 - 0.46875))
    low, high = result["ci"]["kappa"]  # type: ignore[index]
    assert low <= 0.5 <= high
    # Missing values are left out, never a category; no variation is undefined, not 1.
    assert pair_agreement(["a", None], ["a", "a"])["n_items"] == 1
    assert math.isnan(pair_agreement(["a", "a"], ["a", "a"])["kappa"])  # type: ignore[arg-type]


def test_overlap_agreement_pairs_model_and_adjudication_queue(store: Store) -> None:
    result = overlap_agreement(store, n_resamples=200)
    assert result["n_double_coded"] == 20
    [pair] = result["pairs"]
    assert pair["reviewers"] == ["ann", "bob"]
    assert (pair["assigned"], pair["both_coded"], pair["to_adjudicate"]) == (20, 20, DIFFERENT)
    assert pair["themes"]["exact_match"] == pytest.approx(17 / 20)
    assert pair["stance"]["kappa"] == pytest.approx(1.0)  # same stance on every one
    assert [m["reviewer"] for m in result["model"]] == ["ann", "bob"]
    assert all(m["n_items"] == 20 for m in result["model"])


def test_adjudication_screen_lists_the_overlap_disagreements(store: Store) -> None:
    import asyncio

    async def run() -> None:
        app = review_app(store, reviewer="lead", adjudicate=("ann", "bob"))
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, AdjudicationScreen)
            assert len(app.screen.items) == DIFFERENT
            await pilot.press("1")  # take ann's labels
        assert store.decisions()[-1].action == "adjudicate"

    asyncio.run(run())
    assert overlap_agreement(store, n_resamples=50)["pairs"][0]["to_adjudicate"] == DIFFERENT - 1


def test_reviewer_stats_in_status_and_the_report(store: Store, tmp_path: Path) -> None:
    stats = {s.reviewer: s for s in reviewer_stats(store)}
    assert set(stats) == {"ann", "bob"}
    assert stats["ann"].decisions == 20 and stats["ann"].reviewed == 20
    assert (stats["ann"].overlap_coded, stats["ann"].overlap_agreed) == (20, 17)
    assert stats["ann"].accepted_share == 0.0  # corrections only
    path = str(store.path)
    store.close()
    runner = CliRunner()
    status = runner.invoke(cli, ["status", "--db", path])
    assert status.exit_code == 0, status.output
    assert "reviewers:" in status.output and "agrees 85% on 20 shared" in status.output
    as_json = json.loads(runner.invoke(cli, ["status", "--db", path, "--json"]).stdout)
    assert as_json["reviewers"][0]["overlap_agreement"] == pytest.approx(0.85)
    with Store(path) as again:
        markdown = render_markdown(build_report(again))
    assert "## Coding team" in markdown
    assert "| ann | 20 | 20 |" in markdown and "85% of 20" in markdown
    out = tmp_path / "report"
    result = runner.invoke(cli, ["report", "--db", path, "--out", str(out), "--format", "xlsx"])
    assert result.exit_code == 0, result.output
    [workbook_path] = list(out.glob("*.xlsx")) if out.is_dir() else [out.with_suffix(".xlsx")]
    sheet = load_workbook(workbook_path)["Summary"]
    assert "Coding team" in [cell.value for cell in sheet["A"]]


def test_a_single_reviewer_report_has_no_team_section(tmp_path: Path) -> None:
    store = build_project(tmp_path / "solo.db", 5, codebook=small_codebook())
    store.add_decision(response_id="r000000", reviewer="ann", action="accept",
                       labels=Labels(question="H1", themes=["data"]))
    assert "Coding team" not in render_markdown(build_report(store))


def test_cli_eval_agreement_reports_the_overlap(store: Store, tmp_path: Path) -> None:
    path = str(store.path)
    store.close()
    out = tmp_path / "agreement.json"
    result = CliRunner().invoke(cli, ["eval", "agreement", "--db", path, "--resamples", "100",
                                      "--json-file", str(out)])
    assert result.exit_code == 0, result.output
    assert "Agreement on the overlap" in result.output
    assert "ann+bob" in result.output and "model/ann" in result.output
    data = json.loads(out.read_text())
    assert data["overlap"]["pairs"][0]["to_adjudicate"] == DIFFERENT
