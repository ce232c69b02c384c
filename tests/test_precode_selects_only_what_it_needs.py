"""Issue 15, item 14: ``coder precode --limit N`` reads N responses, not the project.

``--limit 3000`` on a 500,000-response project held 1.15 GB: the limit was applied after
every id was read, "already done" was counted by loading every response, and the embedded
classifier's question prior was given every response although it samples 300 per question.
Now the limit is SQL, the count is SQL, and the prior's sample is drawn from per-question
counts — the very sample ``prepare`` would draw from all responses (checked here).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from coder.embedded import classifier as embedded
from coder.embedded.classifier import LocalClassifier
from coder.precode import count_to_precode, precode, prior_sample, responses_to_precode
from coder.store import Store
from tests.llm_fake_server import make_project


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return make_project(tmp_path / "p.db", n=40)


def test_limit_reads_the_first_responses_in_order(store: Store) -> None:
    version, _ = store.codebook()
    first = responses_to_precode(store, version, limit=3)
    assert [r.id for r in first] == ["r000", "r001", "r002"]
    assert count_to_precode(store, version) == 40
    assert len(responses_to_precode(store, version, redo=True, limit=5)) == 5
    assert responses_to_precode(store, version, limit=0) == []


def test_precode_with_a_limit_counts_what_is_done(store: Store) -> None:
    summary = precode(store, LocalClassifier(), limit=7)
    assert summary.proposed == 7 and summary.already_done == 0
    version, _ = store.codebook()
    assert count_to_precode(store, version) == 33
    again = precode(store, LocalClassifier(), limit=5)
    assert again.already_done == 7 and again.proposed == 5
    assert [r.id for r in responses_to_precode(store, version, limit=1)] == ["r012"]


def test_the_prior_sample_is_the_one_prepare_draws(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 40 answers over 3 questions, 5 sampled per question: sampling happens.
    monkeypatch.setattr(embedded, "PRIOR_SAMPLE", 5)
    _, codebook = store.codebook()
    sample = prior_sample(store, 5)
    assert len(sample) == 15
    counts = dict(store.question_counts())
    assert sum(counts.values()) == 40 and all(count > 5 for count in counts.values())
    classifier = LocalClassifier()
    from_everything = classifier.prepare(list(store.responses()), codebook)
    from_sample = LocalClassifier(encoder=classifier.encoder).prepare(sample, codebook)
    assert from_sample == from_everything


def test_responses_at_reads_positions_of_one_question(store: Store) -> None:
    question, count = store.question_counts()[0]
    every = [r.id for r in store.responses() if r.question == question]
    assert len(every) == count
    assert [r.id for r in store.responses_at(question, [0, 2, count - 1])] == [
        every[0],
        every[2],
        every[-1],
    ]
