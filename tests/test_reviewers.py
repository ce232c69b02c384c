"""Reviewer sign-in tokens: created once, stored hashed, checked, revoked (real SQLite)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from coder import reviewers
from coder.cli import cli
from coder.errors import CoderError
from coder.leases import Leases
from coder.store import Store
from tests.review_data import build_project


def test_token_is_stored_hashed_and_checked(db_path: Path) -> None:
    with Store(db_path) as store:
        token = reviewers.add_reviewer(store, "ann")
        assert reviewers.check_token(store, "ann", token)
        assert not reviewers.check_token(store, "ann", token[:-1] + "x")
        assert not reviewers.check_token(store, "bob", token)  # a token is one reviewer's
        assert not reviewers.check_token(store, "ann", "")
    raw = sqlite3.connect(db_path).execute("select * from reviewer_tokens").fetchall()
    assert raw and all(token not in str(value) for row in raw for value in row)
    assert raw[0][1] == reviewers.token_hash(token)


def test_second_token_needs_replace_and_the_old_one_stops(db_path: Path) -> None:
    with Store(db_path) as store:
        first = reviewers.add_reviewer(store, "ann")
        with pytest.raises(CoderError, match="already has a token; give --replace"):
            reviewers.add_reviewer(store, "ann")
        second = reviewers.add_reviewer(store, "ann", replace=True)
        assert not reviewers.check_token(store, "ann", first)
        assert reviewers.check_token(store, "ann", second)


def test_revoked_token_is_refused_and_can_be_reissued(db_path: Path) -> None:
    with Store(db_path) as store:
        token = reviewers.add_reviewer(store, "ann")
        reviewers.revoke_reviewer(store, "ann")
        assert not reviewers.check_token(store, "ann", token)
        with pytest.raises(CoderError, match="no reviewer 'ann' with a working token"):
            reviewers.revoke_reviewer(store, "ann")
        fresh = reviewers.add_reviewer(store, "ann")  # a revoked reviewer may come back
        assert reviewers.check_token(store, "ann", fresh)


@pytest.mark.parametrize("name", ["", "a b", "ann;rm", "-x", "x" * 41, "ann:1", "é"])
def test_bad_reviewer_names_are_refused(db_path: Path, name: str) -> None:
    with Store(db_path) as store, pytest.raises(CoderError, match="reviewer name"):
        reviewers.add_reviewer(store, name)


def test_sign_in_link_keeps_the_token_in_the_fragment() -> None:
    link = reviewers.sign_in_link("https://review.example.org/", "ann", "abc-_1")
    assert link == "https://review.example.org/#reviewer=ann&token=abc-_1"


def test_cli_add_list_revoke(db_path: Path) -> None:
    build_project(db_path, 6).close()
    runner = CliRunner()
    added = runner.invoke(cli, ["reviewers", "add", "ann", "--db", str(db_path), "--url", "http://h:9"])
    assert added.exit_code == 0, added.output
    link = added.stdout.strip()
    assert link.startswith("http://h:9/#reviewer=ann&token=")
    with Store(db_path) as store:
        assert reviewers.check_token(store, "ann", link.split("token=")[1])
        # A terminal session on an item shows up in the list too.
        Leases(store, "cy").take("r000003")
    listed = runner.invoke(cli, ["reviewers", "list", "--db", str(db_path)])
    assert listed.exit_code == 0
    assert "ann" in listed.stdout and "working" in listed.stdout
    assert "cy" in listed.stdout and "r000003" in listed.stdout
    assert link.split("token=")[1] not in listed.stdout
    again = runner.invoke(cli, ["reviewers", "add", "ann", "--db", str(db_path)])
    assert again.exit_code == 1 and "--replace" in again.stderr
    revoked = runner.invoke(cli, ["reviewers", "revoke", "ann", "--db", str(db_path)])
    assert revoked.exit_code == 0
    assert "revoked" in runner.invoke(cli, ["reviewers", "list", "--db", str(db_path)]).stdout


def test_cli_refuses_a_missing_project(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["reviewers", "add", "ann", "--db", str(tmp_path / "no.db")])
    assert result.exit_code == 1 and "no such project file" in result.stderr
    assert not (tmp_path / "no.db").exists()
