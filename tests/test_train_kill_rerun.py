"""`coder train` killed with SIGKILL while re-proposing, then run again (issue 15, item 7).

The rerun trains on the same labels, so it makes the same model version. It must leave
one ``models`` row for that version, no response with two proposals from it, and every
unreviewed response with a proposal from it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from coder.embedded.retrain import BATCH
from coder.store import Store
from tests.llm_fake_server import SAMPLE_TEXTS, coder_executable, make_project

#: Enough responses for three re-proposal batches, so that a kill after the first commit
#: lands before the end.
N = 3 * BATCH

#: A small labelled set (text, question, themes, stance) of the built-in codebook.
LABELLED = [
    ("A whole pathway approach brought GPs and pharmacists in from day one.", "H1",
     ["pathway_approach"], "resonates"),
    ("Clinical leadership: a consultant championed it and others followed.", "H1",
     ["clinical_leadership"], "resonates"),
    ("We never had uptake data, so the business case stalled.", "H2",
     ["uptake_data", "business_case_decision_making"], "partly"),
    ("Commissioners wanted evidence of return on investment first.", "H2",
     ["evidence_efficacy_roi"], "resonates"),
    ("Informal nurse networks spread it faster than policy did.", "H3",
     ["informal_workforce_networks"], "resonates"),
    ("National policy levers were what finally moved it.", "H3",
     ["policy_levers"], "partly"),
    ("It did not fit the clinic workflow, so nobody used it.", "H1",
     ["utility_workflow_fit"], "does_not_resonate"),
    ("Short-term funding ended the pilot before evaluation.", "H2",
     ["financial_stability"], "resonates"),
] * 4  # noqa: E501


def _labels_file(path: Path) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for number, (text, question, themes, stance) in enumerate(LABELLED):
            item = {
                "id": f"g{number}",
                "text": f"{text} (note {number})",
                "question": question,
                "labels": themes,
                "stance": stance,
                "relevant": True,
            }
            handle.write(json.dumps(item) + "\n")
    return path


def _local_proposals(db: Path) -> int:
    with Store(db) as store:
        row = store.db.execute(
            "select count(*) from proposals where model_version like 'local:%'"
        ).fetchone()
    return int(row[0])


@pytest.mark.slow
def test_rerun_after_kill_neither_duplicates_the_model_nor_proposals(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    make_project(db, n=N, texts=SAMPLE_TEXTS).close()
    labels = _labels_file(tmp_path / "labels.jsonl")
    command = [coder_executable(), "train", "--db", str(db), "--from-file", str(labels)]

    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path
    )
    # Kill once the first batch of re-proposals is committed (a condition, not a time).
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if _local_proposals(db) >= 1:
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    interrupted = _local_proposals(db)
    assert 0 < interrupted < N, interrupted

    finished = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert finished.returncode == 0, finished.stderr

    with Store(db) as store:
        versions = store.db.execute(
            "select version, count(*) from models where backend = 'local' group by version"
        ).fetchall()
        assert len(versions) == 1 and versions[0][1] == 1, versions
        version = versions[0][0]
        duplicated = store.db.execute(
            "select response_id, count(*) from proposals where model_version = ? "
            "group by response_id having count(*) > 1",
            [version],
        ).fetchall()
        assert duplicated == []
        covered = store.db.execute(
            "select count(distinct response_id) from proposals where model_version = ?",
            [version],
        ).fetchone()[0]
        assert covered == N
        # The model the project uses is the one that was stored.
        assert all(stored.model_version == version for stored in store.current_proposals().values())
