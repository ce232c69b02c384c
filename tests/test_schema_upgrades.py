"""A project file written at every earlier schema version opens, upgrades and keeps its data.

Each case stops the migrations before one of them (as an older coder left the file),
writes a response, a proposal and a decision with the columns that existed then, and
opens it with today's Store: every migration must then be applied, the rows must read
back through the store's own methods, and the commands a colleague runs must work.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from coder import migrations
from coder.cli import cli
from coder.codebook import builtin_codebook_path, load_codebook
from coder.store import Store

NAMES = migrations.names()


def old_project(path: Path, stop_before: str | None) -> None:
    """A project file as a coder that knew the migrations before ``stop_before`` wrote it."""
    db = Database(path)
    migrations.migrations.apply(db, stop_before=stop_before)
    codebook = load_codebook(builtin_codebook_path())
    db["codebook_versions"].insert(
        {
            "version": 1,
            "hash": "old",
            "name": codebook.name,
            "codebook": codebook.model_dump_json(),
            "source": "test",
            "created_at": "2026-01-01T00:00:00+00:00",
        }
    )
    db["responses"].insert(
        {
            "id": "r1",
            "text": "Our lead GP pushed the pathway through.",
            "question": "H1",
            "respondent": "p1",
            "attributes": json.dumps({"role": "GP"}),
            "tags": "[]",
            "source_file": "old.csv",
            "source_row": 2,
            "imported_at": "2026-01-01T00:00:00+00:00",
        }
    )
    proposal = {
        "response_id": "r1",
        "question": "H1",
        "stance": "resonates",
        "relevant": True,
        "themes": [{"code": "relationships_clinical_pathway", "evidence": "", "confidence": 0.7}],
        "confidence": 0.7,
    }
    db["proposals"].insert(
        {
            "id": 1,
            "response_id": "r1",
            "backend": "local",
            "model": "old",
            "codebook_version": 1,
            "output": json.dumps(proposal),
            "confidence": 0.7,
            "status": "ok",
            "created_at": "2026-01-01T00:00:00+00:00",
        }
    )
    db["decisions"].insert(
        {
            "id": 1,
            "response_id": "r1",
            "reviewer": "ann",
            "action": "accept",
            "labels": json.dumps(
                {"question": "H1", "stance": "resonates", "relevant": True, "themes": []}
            ),
            "proposal_id": 1,
            "created_at": "2026-01-01T00:00:00+00:00",
        }
    )
    db.conn.close()


@pytest.mark.parametrize("stop_before", NAMES[1:], ids=lambda name: f"before-{name}")
def test_an_older_project_file_upgrades_and_keeps_its_rows(
    tmp_path: Path, stop_before: str
) -> None:
    path = tmp_path / "old.db"
    old_project(path, stop_before)
    with Store(path) as store:
        applied = {m.name for m in migrations.migrations.applied(store.db)}
        assert applied == set(NAMES)
        assert store.response("r1").text == "Our lead GP pushed the pathway through."
        proposal = store.current_proposals()["r1"].proposal
        assert proposal is not None and proposal.stance == "resonates"
        (decision,) = store.decisions()
        assert decision.reviewer == "ann" and decision.action == "accept"
    result = CliRunner().invoke(cli, ["status", "--db", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["responses"] == 1


def test_every_migration_is_covered() -> None:
    # A new migration gets a case of its own through NAMES; this guards the list itself.
    assert NAMES[0] == "m001_initial" and len(NAMES) == len(set(NAMES)) >= 4
