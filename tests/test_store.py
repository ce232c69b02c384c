"""The project store: migrations, WAL, append-only proposals and decisions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from coder.store import Store
from schemas import Labels, Proposal, Response, ThemeAssignment


def make_store(db_path: Path) -> Store:
    store = Store(db_path)
    store.add_responses([Response(id="r1", text="hello", question="H1"), Response(id="r2", text="bye")])
    return store


def test_migrations_wal_and_tables(db_path: Path) -> None:
    with make_store(db_path) as store:
        assert store.db.journal_mode == "wal"
        assert {"responses", "codebook_versions", "proposals", "decisions", "llm_calls", "eval_runs"} <= set(
            store.db.table_names()
        )
        applied = [row["name"] for row in store.db["_sqlite_migrations"].rows]
        assert applied[0] == "m001_initial"
    # Reopening applies nothing twice.
    with Store(db_path) as store:
        assert store.count_responses() == 2


def test_proposals_are_never_overwritten(db_path: Path) -> None:
    with make_store(db_path) as store:
        first = store.add_proposal(
            response_id="r1", backend="local", model="m", codebook_version=1,
            proposal=Proposal(response_id="r1", themes=[ThemeAssignment(code="a", confidence=0.4)], confidence=0.4),
            prompt_template_hash="t1",
        )
        store.add_proposal(response_id="r1", backend="openai", model="gpt", codebook_version=1,
                           proposal=None, status="failed", error="429 Too Many Requests")
        second = store.add_proposal(
            response_id="r1", backend="local", model="m", codebook_version=1,
            proposal=Proposal(response_id="r1", confidence=0.9),
        )
        current = store.current_proposals()
        assert current["r1"].id == second
        history = store.proposal_history("r1")
        assert [p.id for p in history][0] == first and history[0].proposal is not None
        assert history[0].proposal.theme_codes == ["a"]
        assert history[1].status == "failed" and "429" in (history[1].error or "")
        assert store.response_ids_without_proposal() == ["r2"]


def test_final_labels_follow_undo_and_adjudication(db_path: Path) -> None:
    with make_store(db_path) as store:
        a = store.add_decision(response_id="r1", reviewer="ann", action="accept", labels=Labels(themes=["x"]))
        store.add_decision(response_id="r1", reviewer="ann", action="correct", labels=Labels(themes=["y"]))
        latest = store.final_labels()["r1"]
        assert latest.labels is not None and latest.labels.themes == ["y"]
        store.add_decision(response_id="r1", reviewer="ann", action="undo", undoes=latest.id)
        assert store.final_labels()["r1"].id == a
        store.add_decision(response_id="r1", reviewer="lead", action="adjudicate", labels=Labels(themes=["z"]))
        store.add_decision(response_id="r1", reviewer="bob", action="correct", labels=Labels(themes=["w"]))
        final = store.final_labels()["r1"]
        assert final.action == "adjudicate" and final.labels is not None and final.labels.themes == ["z"]
        assert store.final_labels(reviewer="bob")["r1"].labels.themes == ["w"]  # type: ignore[union-attr]
        # Append-only: every row survives.
        assert len(store.decisions(response_id="r1")) == 5


def test_second_connection_sees_committed_writes(db_path: Path) -> None:
    with make_store(db_path) as store:
        store.add_decision(response_id="r2", reviewer="ann", action="skip")
        other = sqlite3.connect(db_path)
        assert other.execute("select count(*) from decisions").fetchone()[0] == 1
        other.close()


def test_quote_flag_alone_is_not_a_review(db_path: Path) -> None:
    with make_store(db_path) as store:
        store.add_decision(response_id="r1", reviewer="ann", action="flag_quote", labels=Labels(quote=True))
        assert store.reviewed_response_ids() == set()
        accepted = store.add_decision(response_id="r2", reviewer="ann", action="accept", labels=Labels())
        assert store.reviewed_response_ids() == {"r2"}
        store.add_decision(response_id="r2", reviewer="ann", action="undo", undoes=accepted)
        assert store.reviewed_response_ids() == set()
