"""The local classifier: zero-shot proposals, learning from labels, and `coder train`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from coder.backends.base import Classifier, get_classifier
from coder.cli import cli
from coder.codebook import load_codebook
from coder.embedded.classifier import LocalClassifier
from coder.embedded.features import non_answer_reason, split_sentences
from coder.embedded.retrain import retrain_and_repropose
from coder.embedded.training import LabelledExample, examples_from_gold_file
from coder.errors import CoderError
from coder.store import Store
from schemas import Codebook, Labels, Question, Response, Theme
from tests.conftest import shared_path


def small_codebook() -> Codebook:
    return Codebook(
        name="ward feedback",
        questions=[
            Question(id="good", text="What was good?"),
            Question(id="better", text="What could we do better?"),
        ],
        themes=[
            Theme(
                id="staff",
                label="Staff attitude",
                definition="Comments about how kind, caring, friendly or rude the staff were.",
                examples=["The nurses were lovely", "Staff were rude to me"],
            ),
            Theme(
                id="parking",
                label="Parking",
                definition="Car parking: cost, spaces, distance from the entrance.",
                examples=["Parking is too expensive", "Could not find a space"],
            ),
            Theme(
                id="food",
                label="Food",
                definition="Meals, drinks and snacks served to patients.",
                examples=["The food was cold", "Lovely lunch"],
                questions=["good"],
            ),
        ],
    )


RESPONSES = [
    Response(
        id="r1",
        text="The nurses were so kind. Parking is too expensive and there are no spaces.",
        question="better",
    ),
    Response(id="r2", text="Lovely hot meals every day.", question="good"),
    Response(id="r3", text="Did not answer", question="good"),
    Response(id="r4", text="", question="better"),
    Response(id="r5", text="Cheaper parking please", question="better"),
    Response(id="r6", text="Friendly staff", question="good"),
]


def test_text_helpers() -> None:
    assert split_sentences("Good care. Bad parking!\nThanks") == [
        "Good care.",
        "Bad parking!",
        "Thanks",
    ]
    assert (
        non_answer_reason("Did not answer") and non_answer_reason("  ") and non_answer_reason("?!")
    )
    assert non_answer_reason("n/a") and non_answer_reason("Nothing.") is None


def test_zero_shot_proposals_are_valid_against_the_codebook() -> None:
    codebook = small_codebook()
    classifier = get_classifier("local")
    assert isinstance(classifier, Classifier) and classifier.backend == "local"
    results = classifier.propose(RESPONSES, codebook)
    assert [r.response_id for r in results] == [r.id for r in RESPONSES]
    by_id = {r.response_id: r.proposal for r in results}
    for response in RESPONSES:
        proposal = by_id[response.id]
        assert proposal is not None
        assert proposal.question == response.question
        allowed = {t.id for t in codebook.themes_for(response.question)}
        assert set(proposal.theme_codes) <= allowed
        assert proposal.stance in codebook.stance_ids or not proposal.relevant
        for assignment in proposal.themes:
            assert assignment.evidence and assignment.evidence in response.text
            assert assignment.evidence in split_sentences(response.text)
    assert not by_id["r3"].relevant and not by_id["r4"].relevant
    assert by_id["r3"].themes == [] and by_id["r3"].relevance_reason
    assert "food" not in by_id["r1"].theme_codes  # food applies to 'good' only
    # Zero-shot gives the best code and those close to it (multi-topic answers rank the
    # other topic next; a reviewer adds it with one key, and training learns it).
    assert by_id["r1"].theme_codes[0] == "parking"
    parking = by_id["r1"].themes[0]
    assert parking.evidence == "Parking is too expensive and there are no spaces."
    scores = classifier.code_scores([RESPONSES[0]], codebook)[0]  # type: ignore[attr-defined]
    assert sorted(scores, key=scores.get, reverse=True)[:2] == ["parking", "staff"]
    assert by_id["r5"].theme_codes[0] == "parking"
    assert by_id["r2"].theme_codes[0] == "food"
    assert "Staff attitude" in by_id["r6"].rationale
    assert all(r.model_version == "zero-shot" for r in results)


@pytest.fixture(scope="module")
def nhs() -> tuple[Codebook, list[LabelledExample]]:
    folder = shared_path("gold", "nhs_pxtextmining_v6")
    return load_codebook(folder / "codebook.json"), examples_from_gold_file(folder / "dev.jsonl")


def micro_f1(
    examples: list[LabelledExample], classifier: LocalClassifier, codebook: Codebook
) -> float:
    responses = [
        Response(id=str(i), text=e.text, question=e.question) for i, e in enumerate(examples)
    ]
    results = classifier.propose(responses, codebook)
    tp = fp = fn = 0
    for example, result in zip(examples, results, strict=True):
        assert result.proposal is not None
        truth, predicted = set(example.themes), set(result.proposal.theme_codes)
        tp += len(truth & predicted)
        fp += len(predicted - truth)
        fn += len(truth - predicted)
    return 2 * tp / (2 * tp + fp + fn)


@pytest.mark.slow
def test_training_on_a_small_subset_beats_zero_shot(
    nhs: tuple[Codebook, list[LabelledExample]],
) -> None:
    codebook, examples = nhs
    rng = np.random.default_rng(1)
    order = rng.permutation(len(examples))
    train = [examples[i] for i in order[:600]]
    test = [examples[i] for i in order[600:900] if examples[i].relevant]
    zero_shot = LocalClassifier()
    baseline = micro_f1(test, zero_shot, codebook)
    trained = LocalClassifier()
    state = trained.fit(train, codebook)
    assert state.version.startswith("local:") and state.n_examples == 600
    learned = micro_f1(test, trained, codebook)
    assert learned > baseline + 0.05, (learned, baseline)


def make_project(path: Path) -> Store:
    store = Store(path)
    store.save_codebook(small_codebook(), source="test")
    texts = {
        "staff": [
            "Kind nurses",
            "The staff were rude",
            "Lovely friendly team",
            "Doctors were caring",
            "Receptionist was unhelpful",
            "Great nurses on the ward",
        ],
        "parking": [
            "Parking is expensive",
            "No spaces in the car park",
            "Parking charges too high",
            "Had to park miles away",
            "Car park full again",
            "Make parking free",
        ],
    }
    responses = []
    for code, items in texts.items():
        for number, text in enumerate(items):
            responses.append(Response(id=f"{code}{number}", text=text, question="better"))
    responses += [
        Response(id=f"new{i}", text=t, question="better")
        for i, t in enumerate(["The nurse was kind to me", "Parking fees are a rip off", "n/a"])
    ]
    store.add_responses(responses)
    for code, items in texts.items():
        for number in range(len(items)):
            store.add_decision(
                response_id=f"{code}{number}",
                reviewer="ann",
                action="accept",
                labels=Labels(question="better", stance="resonates", themes=[code]),
            )
    return store


def test_retrain_and_repropose_appends_proposals_for_unreviewed(db_path: Path) -> None:
    store = make_project(db_path)
    summary = retrain_and_repropose(store)
    assert summary.n_examples == 12 and summary.n_reproposed == 3
    current = store.current_proposals()
    assert set(current) == {"new0", "new1", "new2"}
    assert current["new0"].model_version == summary.model_version
    assert current["new0"].proposal is not None and "staff" in current["new0"].proposal.theme_codes
    assert (
        current["new1"].proposal is not None and "parking" in current["new1"].proposal.theme_codes
    )
    assert current["new2"].proposal is not None and not current["new2"].proposal.relevant
    # A second run on the same labels makes the same model version: it replaces the model's
    # row and adds no second proposal from it; the stored model is picked up by new classifiers.
    again = retrain_and_repropose(store)
    assert again.model_version == summary.model_version and again.n_reproposed == 0
    assert len(store.proposal_history("new0")) == 1
    assert LocalClassifier(store).model_version == summary.model_version
    store.close()


def test_coder_train_command_end_to_end(db_path: Path, tmp_path: Path) -> None:
    make_project(db_path).close()
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    assert "Re-proposed 3 unreviewed responses" in result.output
    items = tmp_path / "items.jsonl"
    items.write_text(
        "\n".join(
            json.dumps(
                {
                    "id": f"g{i}",
                    "text": t,
                    "question": "better",
                    "labels": [c],
                    "stance": None,
                    "relevant": True,
                }
            )
            for i, (t, c) in enumerate(
                [("Rude staff", "staff"), ("Nice nurse", "staff"), ("Parking fee", "parking")] * 4
            )
        )
    )
    result = runner.invoke(cli, ["train", "--db", str(db_path), "--from-file", str(items)])
    assert result.exit_code == 0, result.output
    with Store(db_path) as store:
        versions = [row[0] for row in store.db.execute("select version from models order by id")]
        assert len(versions) == 2 and versions[0] != versions[1]
    empty = tmp_path / "empty.db"
    Store(empty).close()
    result = runner.invoke(cli, ["train", "--db", str(empty)])
    assert result.exit_code == 1 and "codebook" in result.output


def test_only_the_latest_three_model_blobs_are_kept(db_path: Path) -> None:
    from coder.embedded.training import KEEP_MODEL_BLOBS, load_state, model_rows

    store = make_project(db_path)
    classifier = LocalClassifier(store)
    examples = examples_from_store_for_test(store)
    versions = []
    for run in range(KEEP_MODEL_BLOBS + 2):
        # Different parameters make a different version each run.
        classifier.fit(examples, small_codebook(), stance_kernel_weight=0.1 * run)
        classifier.save()
        versions.append(classifier.model_version)
    rows = model_rows(store)
    assert [row["version"] for row in rows] == versions  # every row (provenance) survives
    assert [bool(row["pruned"]) for row in rows] == [True, True, False, False, False]
    assert load_state(store).version == versions[-1]
    assert load_state(store, versions[2]).version == versions[2]
    with pytest.raises(CoderError, match="pruned"):
        load_state(store, versions[0])
    store.close()


def examples_from_store_for_test(store: Store) -> list[LabelledExample]:
    from coder.embedded.training import examples_from_store

    return examples_from_store(store)


def test_trained_proposals_take_evidence_from_the_same_encoder_pass(db_path: Path) -> None:
    store = make_project(db_path)
    classifier = LocalClassifier(store)
    classifier.fit(examples_from_store_for_test(store), small_codebook())
    text = "The nurses were so kind. Parking is too expensive and there are no spaces."
    embeddings, sentences = classifier.embed_sentences([text, "Friendly staff"])
    assert sentences[0].shape == (2, 384) and sentences[1].shape == (1, 384)
    assert np.allclose(sentences[1][0], embeddings[1])
    assert np.allclose(np.linalg.norm(sentences[0], axis=1), 1.0, atol=1e-4)
    # Each span's vector is closest to its own sentence encoded alone.
    alone = classifier.encoder.encode(split_sentences(text))
    assert (sentences[0] @ alone.T).argmax(axis=1).tolist() == [0, 1]
    [result] = classifier.propose(
        [Response(id="x", text=text, question="better")], small_codebook()
    )
    assert result.proposal is not None
    for assignment in result.proposal.themes:
        assert assignment.evidence in split_sentences(text)
    store.close()
