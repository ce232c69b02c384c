"""``coder review`` on the command line: clear errors before any screen opens."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from coder.cli import cli
from coder.store import Store


def test_review_without_responses_says_what_to_do(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    result = CliRunner().invoke(cli, ["review", "--db", str(db), "--reviewer", "ann"])
    assert result.exit_code == 1
    assert "coder import" in result.output


def test_review_without_codebook_says_what_to_do(tmp_path: Path) -> None:
    from schemas import Response

    db = tmp_path / "nocodebook.db"
    with Store(db) as store:
        store.add_responses([Response(id="r1", text="hello")])
    result = CliRunner().invoke(cli, ["review", "--db", str(db), "--reviewer", "ann"])
    assert result.exit_code == 1
    assert "codebook" in result.output


def test_review_help_lists_keys() -> None:
    result = CliRunner().invoke(cli, ["review", "--help"])
    assert result.exit_code == 0
    for words in ("--reviewer", "--blind", "--adjudicate", "--retrain-every", "a/Enter accept"):
        assert words in result.output


def test_keymap_file_is_checked(tmp_path: Path) -> None:
    from coder.cli.review import load_keymap
    from coder.errors import CoderError

    good = tmp_path / "keys.yaml"
    good.write_text("review.skip: k,space\n")
    assert load_keymap(good) == {"review.skip": "k,space"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("- not a mapping\n")
    try:
        load_keymap(bad)
    except CoderError as error:
        assert "bad.yaml" in str(error)
    else:
        raise AssertionError("a list is not a keymap")


def test_a_misspelled_filter_is_an_error_that_names_the_key(tmp_path: Path) -> None:
    from tests.review_data import build_project, small_codebook

    db = tmp_path / "typo.db"
    build_project(db, 12, codebook=small_codebook()).close()
    for words, wanted in (
        ("questoin:H1", "did you mean 'question'"),
        ("status:unreviwed", "unknown status 'unreviwed'"),
        ("question:h1", "did you mean 'H1'"),
    ):
        result = CliRunner().invoke(
            cli, ["review", "--db", str(db), "--reviewer", "ann", "--filter", words]
        )
        assert result.exit_code == 1, result.output
        assert wanted in result.output
        assert "Traceback" not in result.output
