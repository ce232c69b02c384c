"""`coder discover`: clustering poorly covered responses into candidate themes, and their review."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from coder import discover as discovery
from coder.cli import cli
from coder.errors import CoderError
from coder.store import Store
from schemas import Codebook, Proposal, Question, Response, SuggestedTheme, Theme, ThemeAssignment

PARKING = [
    "There is never anywhere to park at the hospital car park.",
    "Car parking is far too expensive for patients.",
    "I drove round the car park for ages looking for a parking space.",
    "Parking charges at the hospital are a disgrace.",
]
WAITING = [
    "I waited four hours in the waiting room before being seen.",
    "The waiting times in A&E are far too long.",
    "We had a long wait for the appointment, over three hours.",
    "Waiting so long to be seen made my anxiety worse.",
]
FOOD = [
    "The hospital food was cold and tasteless.",
    "Meals on the ward were awful, the food was inedible.",
    "The food served for dinner was cold again.",
]
COVERED = ["The nurses were kind and caring."]


def build(path: Path) -> Store:
    store = Store(path)
    codebook = Codebook(
        name="FFT",
        questions=[Question(id="Q1", text="What could we do better?")],
        themes=[Theme(id="staff", label="Staff attitude", definition="Kindness of staff.")],
    )
    version = store.save_codebook(codebook)
    texts = PARKING + WAITING + FOOD + COVERED
    store.add_responses(
        Response(id=f"r{i:02d}", text=t, question="Q1") for i, t in enumerate(texts)
    )
    for i, text in enumerate(texts):
        covered = text in COVERED
        proposal = Proposal(
            response_id=f"r{i:02d}",
            question="Q1",
            stance=None,
            themes=[ThemeAssignment(code="staff")] if covered else [],
            suggested_themes=[SuggestedTheme(label="Car parking")] if text in PARKING[:3] else [],
            confidence=0.9 if covered else 0.4,
        )
        store.add_proposal(
            response_id=f"r{i:02d}",
            backend="local",
            model="m",
            proposal=proposal,
            codebook_version=version,
        )
    return store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return build(tmp_path / "project.db")


def test_selects_only_poorly_covered_responses(store: Store) -> None:
    from coder.report.model import collect_coded

    selected = discovery.select_uncovered(collect_coded(store))
    assert len(selected) == len(PARKING + WAITING + FOOD)


def test_cluster_picks_k_by_silhouette() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(3, 8)
    points = np.vstack([c + rng.normal(0, 0.05, (5, 8)) for c in centres])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    labels = discovery.cluster(points)
    assert len(set(labels)) == 3
    assert all(len(set(labels[i * 5 : (i + 1) * 5])) == 1 for i in range(3))
    assert discovery.cluster(points[:3]).tolist() == [0, 0, 0]


def test_characteristic_terms_are_class_specific() -> None:
    terms = discovery.characteristic_terms([PARKING, WAITING, FOOD])
    assert any("park" in t for t in terms[0][:3])
    assert any("wait" in t for t in terms[1][:3])
    assert "food" in terms[2][:3]


def test_discover_finds_the_obvious_clusters_with_the_real_encoder(store: Store) -> None:
    found = discovery.discover(store)
    groups = sorted(sorted(c.response_ids) for c in found)
    ids = {t: f"r{i:02d}" for i, t in enumerate(PARKING + WAITING + FOOD)}
    expected = sorted(sorted(ids[t] for t in group) for group in (PARKING, WAITING, FOOD))
    assert groups == expected
    parking = next(c for c in found if ids[PARKING[0]] in c.response_ids)
    assert parking.label == "Car parking"  # most members' suggested theme
    food = next(c for c in found if ids[FOOD[0]] in c.response_ids)
    assert "food" in food.label.lower() and food.count == 3 and len(food.examples) == 3
    assert food.questions == ["Q1"] and food.status == "proposed"


def _fake_encode(texts: list[str]) -> np.ndarray:
    # Topic one-hot vectors: keeps review tests independent of the encoder.
    topics = ("park", "wait", "food")
    vectors = np.array(
        [[1.0 if topic in t.lower() else 0.0 for topic in topics] + [0.01] for t in texts]
    )
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_accept_rename_merge_reject(store: Store) -> None:
    found = discovery.discover(store, encode=_fake_encode)
    assert [c.count for c in found] == [4, 4, 3]
    parking, waiting, food = found
    discovery.rename(store, waiting.id, "Waiting times", "Long waits to be seen.")
    version, theme = discovery.accept(store, waiting.id, parent="staff")
    assert version == 2 and theme.id == "waiting_times" and theme.parent == "staff"
    _, codebook = store.codebook()
    assert codebook.theme("waiting_times").definition == "Long waits to be seen."
    assert codebook.theme("waiting_times").questions == ["Q1"]
    merged = discovery.merge(store, [parking.id, food.id])
    assert merged.count == 7 and discovery.candidate(store, food.id).status == "merged"
    discovery.reject(store, parking.id)
    statuses = {c.id: c.status for c in discovery.candidates(store)}
    assert statuses == {parking.id: "rejected", waiting.id: "accepted", food.id: "merged"}
    with pytest.raises(CoderError, match="already accepted"):
        discovery.reject(store, waiting.id)
    with pytest.raises(CoderError, match="no theme candidate 99"):
        discovery.candidate(store, 99)


def test_accept_refuses_a_duplicate_id_or_unknown_parent(store: Store) -> None:
    first = discovery.discover(store, encode=_fake_encode)[0]
    with pytest.raises(CoderError, match="already has a theme 'staff'"):
        discovery.accept(store, first.id, theme_id="staff")
    with pytest.raises(CoderError, match="--parent 'nope'"):
        discovery.accept(store, first.id, parent="nope")


def test_custom_namer_is_used(store: Store) -> None:
    def namer(texts: object, terms: object) -> discovery.ClusterName:
        return discovery.ClusterName(label="Named by LLM", definition="Defined by LLM.")

    found = discovery.discover(
        store, encode=_fake_encode, namer=namer, method="agglomerative+llm:x"
    )
    assert {c.label for c in found} == {"Named by LLM"} and found[0].method == "agglomerative+llm:x"


def test_cli_review_commands(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    db = str(store.path)
    discovery.discover(store, encode=_fake_encode)
    runner = CliRunner()
    listed = runner.invoke(cli, ["discover", "list", "--db", db])
    assert listed.exit_code == 0 and "proposed" in listed.output
    accepted = runner.invoke(cli, ["discover", "--db", db, "accept", "2", "--label", "Waiting"])
    assert accepted.exit_code == 0, accepted.output
    assert "codebook version 2" in accepted.output and "coder precode --redo" in accepted.output
    assert runner.invoke(cli, ["discover", "reject", "1", "--db", db]).exit_code == 0
    again = runner.invoke(cli, ["discover", "reject", "1", "--db", db])
    assert again.exit_code == 1 and "already rejected" in again.output
    needs_model = runner.invoke(cli, ["discover", "--db", db, "--backend", "openai"])
    assert needs_model.exit_code == 1 and "--model" in needs_model.output


def test_too_few_responses_gives_no_candidates(tmp_path: Path) -> None:
    store = Store(tmp_path / "p.db")
    store.save_codebook(Codebook(name="x", themes=[Theme(id="a", label="A", definition="A.")]))
    assert discovery.discover(store, encode=_fake_encode) == []
