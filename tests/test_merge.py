"""`coder merge`: two copies of a project, worked on apart, joined into one.

Real project files throughout: a base project copied twice, edited through the store as
the review app edits it, merged with the real merge (and the CLI)."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coder.cli import cli
from coder.merge import MergeError, canonical_dump, merge_projects
from coder.review import ReviewIndex, disagreements
from coder.store import Store
from schemas import Labels, Proposal
from tests.review_data import build_project, small_codebook

THEMES = ["leadership", "data", "funding", "pathway"]


@pytest.fixture
def base(tmp_path: Path) -> Path:
    path = tmp_path / "base.db"
    build_project(path, 6, codebook=small_codebook()).close()
    return path


def copies(base: Path, *names: str) -> list[Path]:
    out = []
    for name in names:
        target = base.parent / name
        shutil.copy(base, target)
        out.append(target)
    return out


def labels(store: Store, response_id: str, theme: str) -> Labels:
    return Labels(question=store.response(response_id).question, themes=[theme])


def final(path: Path) -> dict[str, tuple[str, str | None]]:
    with Store(path) as store:
        return {rid: (d.reviewer, d.labels.model_dump_json() if d.labels else None)
                for rid, d in store.final_labels().items()}


def dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with Store(path) as store:
        return canonical_dump(store)


def merge(ours: Path, theirs: Path) -> dict[str, int]:
    with Store(ours) as store:
        return merge_projects(store, theirs).added


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the property: any interleaving, either order, twice --------------------------------

OPS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        st.sampled_from(["accept", "correct", "correct", "undo", "propose", "codebook", "llm_call"]),
        st.integers(min_value=0, max_value=5),
        st.sampled_from(THEMES),
        st.sampled_from(["ann", "bob"]),
    ),
    max_size=14,
)


def apply(store: Store, op: tuple[str, str, int, str, str], count: int) -> None:
    _, kind, number, theme, reviewer = op
    response_id = f"r{number:06d}"
    if kind in ("accept", "correct"):
        store.add_decision(response_id=response_id, reviewer=reviewer, action=kind,
                           labels=labels(store, response_id, theme))
    elif kind == "undo":
        undone = {d.undoes for d in store.decisions() if d.undoes is not None}
        live = [d for d in store.decisions() if d.action != "undo" and d.id not in undone]
        if live:
            store.add_decision(response_id=live[-1].response_id, reviewer=reviewer, action="undo",
                               undoes=live[-1].id)
    elif kind == "propose":
        version, _ = store.codebook()
        store.add_proposal(
            response_id=response_id, backend="local", model="test", codebook_version=version,
            proposal=Proposal(response_id=response_id, question=store.response(response_id).question,
                              relevant=True, confidence=0.5),
        )
    elif kind == "codebook":
        store.save_codebook(small_codebook().model_copy(update={"name": f"tiny {count}"}))
    else:
        store.log_llm_call(run_id=f"run{count}", backend="openai", model="m", prompt_tokens=count)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=OPS)
def test_any_interleaving_merged_either_way_twice_gives_one_store(base: Path, ops: list[tuple[str, str, int, str, str]]) -> None:
    a_path, b_path = copies(base, "a.db", "b.db")
    with Store(a_path) as a, Store(b_path) as b:
        for count, op in enumerate(ops):
            apply(a if op[0] == "a" else b, op, count)
    before_a, before_b = dump(a_path), dump(b_path)
    a_then_b, b_then_a = copies(a_path, "ab.db")[0], copies(b_path, "ba.db")[0]
    theirs_hash = file_hash(b_path)

    merge(a_then_b, b_path)
    merge(b_then_a, a_path)
    assert file_hash(b_path) == theirs_hash  # the other file is never changed

    first_ab, first_ba = dump(a_then_b), dump(b_then_a)
    assert first_ab == first_ba
    assert final(a_then_b) == final(b_then_a)
    # Nothing lost: every row of both copies is in the merged store.
    for table, rows in first_ab.items():
        uids = {row[0] for row in rows}
        assert {row[0] for row in before_a[table]} <= uids
        assert {row[0] for row in before_b[table]} <= uids
    # Twice: nothing more, nothing moved.
    assert sum(merge(a_then_b, b_path).values()) == 0
    assert sum(merge(b_then_a, a_path).values()) == 0
    assert dump(a_then_b) == first_ab
    assert dump(b_then_a) == first_ba
    # And merged back into each other: still the same.
    assert sum(merge(a_then_b, b_then_a).values()) == 0


# --- examples -----------------------------------------------------------------------------


def test_merge_adds_the_other_copys_work_and_remaps_undos(base: Path) -> None:
    a_path, b_path = copies(base, "a.db", "b.db")
    with Store(a_path) as a:
        a.add_decision(response_id="r000000", reviewer="ann", action="correct",
                       labels=labels(a, "r000000", "data"))
    with Store(b_path) as b:
        first = b.add_decision(response_id="r000001", reviewer="bob", action="correct",
                               labels=labels(b, "r000001", "funding"))
        b.add_decision(response_id="r000001", reviewer="bob", action="undo", undoes=first)
        b.add_decision(response_id="r000002", reviewer="bob", action="accept",
                       labels=labels(b, "r000002", "leadership"))
        b.log_llm_call(run_id="x", backend="openai", model="m")
    with Store(a_path) as a:
        report = merge_projects(a, b_path)
        assert report.added["decisions"] == 3
        assert report.added["llm_calls"] == 1
        assert not report.conflicts
        decisions = a.decisions()
        undo = next(d for d in decisions if d.action == "undo")
        assert a.decisions(response_id="r000001")[0].id == undo.undoes  # points at bob's correction here
        finals = a.final_labels()
        assert "r000001" not in finals  # the undo still cancels it
        assert finals["r000002"].reviewer == "bob"
        assert finals["r000000"].reviewer == "ann"


def test_conflicting_labels_are_kept_and_go_to_adjudication(base: Path) -> None:
    a_path, b_path = copies(base, "a.db", "b.db")
    with Store(a_path) as a:
        a.add_decision(response_id="r000003", reviewer="ann", action="correct",
                       labels=labels(a, "r000003", "data"))
    with Store(b_path) as b:
        b.add_decision(response_id="r000003", reviewer="bob", action="correct",
                       labels=labels(b, "r000003", "funding"))
    with Store(a_path) as a:
        report = merge_projects(a, b_path)
        assert [c.response_id for c in report.conflicts] == ["r000003"]
        conflict = report.conflicts[0]
        assert (conflict.ours_reviewer, conflict.theirs_reviewer) == ("ann", "bob")
        assert "conflicting final labels" in "\n".join(report.lines())
        both = {d.reviewer: d.labels.themes for d in a.decisions(response_id="r000003") if d.labels}
        assert both == {"ann": ["data"], "bob": ["funding"]}  # neither overwritten
        listed = disagreements(ReviewIndex(a), "ann", "bob")
        assert [d.entry.response_id for d in listed] == ["r000003"]


def test_same_labels_on_both_sides_are_no_conflict(base: Path) -> None:
    a_path, b_path = copies(base, "a.db", "b.db")
    for path, name in ((a_path, "ann"), (b_path, "bob")):
        with Store(path) as store:
            store.add_decision(response_id="r000004", reviewer=name, action="correct",
                               labels=labels(store, "r000004", "data"))
    with Store(a_path) as a:
        assert merge_projects(a, b_path).conflicts == []


def test_codebook_versions_from_both_copies_are_renumbered_in_time_order(base: Path) -> None:
    a_path, b_path = copies(base, "a.db", "b.db")
    with Store(a_path) as a:
        version_a = a.save_codebook(small_codebook().model_copy(update={"name": "from a"}))
        a.add_proposal(response_id="r000000", backend="local", model="m", codebook_version=version_a,
                       proposal=Proposal(response_id="r000000", question="H1", confidence=0.4))
    with Store(b_path) as b:
        b.save_codebook(small_codebook().model_copy(update={"name": "from b"}))
    with Store(b_path) as b:
        report = merge_projects(b, a_path)
        assert report.added["codebook_versions"] == 1
        names = [row["name"] for row in b.codebook_versions()]
        assert names == ["tiny", "from a", "from b"]  # a's was made first
        proposal = b.current_proposals(["r000000"])["r000000"]
        _, codebook = b.codebook(proposal.codebook_version)
        assert codebook.name == "from a"  # the proposal still names the codebook it used
        assert b.codebook()[1].name == "from b"  # the latest made is the current one


def test_models_and_encoders_merge_by_version(base: Path) -> None:
    a_path, b_path = copies(base, "a.db", "b.db")
    with Store(b_path) as b:
        b.db.table("models").insert({"backend": "local", "model": "kr", "version": "v-b",
                                     "codebook_version": 1, "trained_at": "2026-11-29T10:00:00",
                                     "blob": b"\x00\x01"})
        b.save_encoder("minilm-ft-x", b"onnx", sha256="00", quantized=False, base="minilm",
                       params={}, metrics={})
    with Store(a_path) as a:
        report = merge_projects(a, b_path)
        assert report.added["models"] == 1 and report.added["encoders"] == 1
        row = next(a.db.query("select version, blob from models"))
        assert row == {"version": "v-b", "blob": b"\x00\x01"}
        assert a.load_encoder("minilm-ft-x") is not None
        assert sum(merge_projects(a, b_path).added.values()) == 0


def test_refuses_another_project_naming_both_files(base: Path, tmp_path: Path) -> None:
    a_path = copies(base, "a.db")[0]
    other = tmp_path / "other.db"
    # Ids r000000..r000003: four of this project's six, so a different response set.
    build_project(other, 4, codebook=small_codebook(), seed=3).close()
    before = dump(a_path)
    with Store(a_path) as a, pytest.raises(MergeError) as raised:
        merge_projects(a, other)
    message = str(raised.value)
    assert str(other) in message and str(a_path) in message and "response sets differ" in message
    assert dump(a_path) == before


def test_refuses_files_that_are_not_coder_projects(base: Path, tmp_path: Path) -> None:
    a_path = copies(base, "a.db")[0]
    plain = tmp_path / "notes.db"
    conn = sqlite3.connect(plain)
    conn.execute("create table notes (x)")
    conn.commit()
    conn.close()
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, just words " * 200)
    with Store(a_path) as a:
        with pytest.raises(MergeError, match="not a coder project") as raised:
            merge_projects(a, plain)
        assert str(plain) in str(raised.value) and "coder-merge-" not in str(raised.value)
        with pytest.raises(MergeError, match="notes.txt"):
            merge_projects(a, text)
        with pytest.raises(MergeError, match="no such file"):
            merge_projects(a, tmp_path / "missing.db")


def test_a_failure_mid_merge_leaves_the_project_unchanged(base: Path) -> None:
    a_path, b_path = copies(base, "a.db", "b.db")
    with Store(a_path) as a:
        a.add_decision(response_id="r000000", reviewer="ann", action="correct",
                       labels=labels(a, "r000000", "data"))
    with Store(b_path) as b:
        for number in range(4):
            b.add_decision(response_id=f"r{number:06d}", reviewer="bob", action="correct",
                           labels=labels(b, f"r{number:06d}", "funding"))
    with Store(a_path) as a:
        a.add_decision(response_id="r000005", reviewer="ann", action="correct",
                       labels=labels(a, "r000005", "data"))
    before = dump(a_path)
    # A real fault inside SQLite halfway through the inserts (after the tail was deleted).
    conn = sqlite3.connect(a_path)
    conn.execute("create trigger fail_late before insert on decisions when new.id > 4 "
                 "begin select raise(abort, 'simulated disk fault'); end")
    conn.commit()
    conn.close()
    with Store(a_path) as a, pytest.raises(sqlite3.IntegrityError, match="simulated disk fault"):
        merge_projects(a, b_path)
    assert dump(a_path) == before


def test_cli_merge_reports_counts_and_is_idempotent(base: Path) -> None:
    a_path, b_path = copies(base, "a.db", "b.db")
    with Store(b_path) as b:
        b.add_decision(response_id="r000001", reviewer="bob", action="accept",
                       labels=labels(b, "r000001", "data"))
    runner = CliRunner()
    result = runner.invoke(cli, ["merge", str(b_path), "--db", str(a_path)])
    assert result.exit_code == 0, result.output
    assert "decisions: 1 added" in result.output
    again = runner.invoke(cli, ["merge", str(b_path), "--db", str(a_path), "--json"])
    assert again.exit_code == 0
    assert '"decisions": 0' in again.output
    refused = runner.invoke(cli, ["merge", str(base.parent / "nope.db"), "--db", str(a_path)])
    assert refused.exit_code == 1 and "no such file" in refused.output


def test_an_assignment_made_on_one_copy_reaches_the_other(base: Path) -> None:
    from coder.assign import assign, assignments_in_force

    a_path, b_path = copies(base, "a.db", "b.db")
    with Store(b_path) as b:
        assign(b, ["ann", "bob"], 0.5, seed=2)
        planned = assignments_in_force(b)
    with Store(a_path) as a:
        assert merge_projects(a, b_path).added["assignments"] == 9
        assert assignments_in_force(a) == planned
        assert merge_projects(a, b_path).added["assignments"] == 0
