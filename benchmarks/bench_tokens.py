"""Prompt tokens per response: one response per call vs batched calls, 40-code codebook.

Target: batching (``--batch-size``, default 10) at least halves the prompt tokens per
response. The codebook is the built-in one (23 themes) plus 17 more themes that apply to
every question, so each question's prompt lists about 40 codes.

Two measures, both from the real prompt rendering (coder/llm/prompts.py) and the real
request plan (LLMClassifier.plan):
* ``estimate``: the project's own pre-flight estimate (messages + the response model's
  JSON schema, chars/4), which ``coder precode --dry-run`` prints;
* ``sent``: an actual run through the fake OpenAI-compatible server, counting the
  characters of every request body it received (messages and tool schema), /4.

Run: python benchmarks/bench_tokens.py [--responses 300] [--batch-size 10]
Writes benchmarks/results/tokens.json.

``--shortlist`` measures the codebook shortlist instead (coder/llm/shortlist.py) on the gold
dev sets in ../shared/gold: recall of the gold codes and codes per prompt, zero-shot with the
default cut on every set, and on every set (``--trained``) with the embedded model trained
on half the items (the "reviewed" answers), the cut chosen on a fifth and measured on the
rest (30%); plus
prompt tokens per NHS answer with and without the shortlist (the pre-flight estimate:
messages and the response model's JSON schema) and whether each fits a 4,096-token window.
Run: python benchmarks/bench_tokens.py --shortlist [--gold ../shared/gold]
Writes benchmarks/results/shortlist.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from machine import peak_rss_mib, write_result  # noqa: E402

from coder.codebook import builtin_codebook_path, load_codebook  # noqa: E402
from coder.llm.classifier import LLMClassifier  # noqa: E402
from coder.precode import precode  # noqa: E402
from coder.store import Store  # noqa: E402
from schemas import Codebook, Response, Theme  # noqa: E402
from tests.llm_fake_server import SAMPLE_TEXTS, FakeOpenAI  # noqa: E402

EXTRA_THEMES = [
    ("digital_maturity", "Digital maturity", "the organisation's IT systems and digital skills"),
    ("procurement", "Procurement rules", "buying processes, frameworks and tenders"),
    ("clinical_safety", "Clinical safety", "safety cases, clinical risk and assurance"),
    ("information_governance", "Information governance", "data sharing agreements, DPIAs"),
    ("patient_voice", "Patient voice", "patients and carers shaping or asking for the change"),
    ("health_inequalities", "Health inequalities", "reaching underserved groups"),
    ("workforce_capacity", "Workforce capacity", "vacancies, rotas and time to adopt"),
    ("training", "Training", "teaching staff to use the innovation"),
    ("regulation", "Regulation", "MHRA, CE/UKCA marking, NICE guidance"),
    ("evaluation_methods", "Evaluation methods", "how impact is measured"),
    ("commissioning", "Commissioning", "commissioners' decisions and contracts"),
    ("primary_care", "Primary care", "GP practices and primary care networks"),
    ("social_care", "Social care", "local authority and care homes"),
    ("sustainability", "Net zero", "environmental sustainability"),
    ("supplier_relationship", "Supplier relationship", "working with the company"),
    ("culture_change", "Culture change", "attitudes, habits and resistance"),
    ("scale_up", "Scale-up", "spreading beyond the first site"),
]


def forty_code_codebook() -> Codebook:
    codebook = load_codebook(builtin_codebook_path())
    themes = list(codebook.themes)
    for code, label, definition in EXTRA_THEMES:
        themes.append(
            Theme(
                id=code,
                label=label,
                definition=f"The response discusses {definition}.",
                include=[f"mentions {definition}"],
                exclude=["a passing mention with no argument"],
                examples=[f"An example response about {label.lower()}."],
            )
        )
    return codebook.model_copy(update={"themes": themes})


def responses(n: int, codebook: Codebook) -> list[Response]:
    questions = codebook.question_ids
    return [
        Response(
            id=f"r{i:04d}",
            text=f"{SAMPLE_TEXTS[i % len(SAMPLE_TEXTS)]} ({i})",
            question=questions[i % len(questions)],
        )
        for i in range(n)
    ]


def measure(codebook: Codebook, items: list[Response], batch_size: int) -> dict[str, Any]:
    with FakeOpenAI() as fake, tempfile.TemporaryDirectory() as tmp:
        settings: dict[str, Any] = {"base_url": fake.base_url, "mode": "tools", "concurrency": 4}
        classifier = LLMClassifier(model="gpt-4o-mini", batch_size=batch_size, **settings)
        estimate = classifier.estimate(items, codebook)
        with Store(Path(tmp) / "tokens.db") as store:
            store.save_codebook(codebook, source="bench")
            store.add_responses(items)
            summary = precode(store, classifier)
        assert summary.proposed == len(items) and summary.failed == 0, summary.errors[:3]
        sent_chars = sum(
            len(json.dumps(body.get("messages", []))) + len(json.dumps(body.get("tools", [])))
            for body in fake.chat_requests
        )
    n = len(items)
    return {
        "batch_size": batch_size,
        "calls": len(fake.chat_requests),
        "estimate_prompt_tokens_per_response": round(estimate.prompt_tokens / n, 1),
        "sent_prompt_tokens_per_response": round(sent_chars / 4 / n, 1),
        "server_reported_prompt_tokens_per_response": round(summary.prompt_tokens / n, 1),
    }


def _gold_codes(items: list[Any]) -> list[list[str]]:
    return [list(item.labels) if item.relevant is not False else [] for item in items]


def _shortlist_stats(
    classifier: LLMClassifier, codebook: Codebook, items: list[Any], extra: dict[str, list[str]]
) -> dict[str, Any]:
    """Recall of gold codes and mean codes per prompt for the classifier's shortlists."""
    from coder.llm.shortlist import Shortlister

    shortlister = classifier.shortlister(codebook)
    responses = [item.to_response() for item in items]
    if shortlister is not None:
        shortlister.rank(responses, codebook)
    found = total = 0
    sizes = []
    for item, response, codes in zip(items, responses, _gold_codes(items), strict=True):
        if shortlister is None:
            chosen = {t.id for t in codebook.themes_for(item.question)}
        else:
            chosen = set(
                Shortlister.shortlist(shortlister, response, codebook, extra=extra.get(item.id, []))
            )
        if codes:
            sizes.append(len(chosen))
            total += len(codes)
            found += sum(code in chosen for code in codes)
    return {
        "items_with_codes": len(sizes),
        "recall": round(found / total, 4) if total else None,
        "mean_codes_per_prompt": round(sum(sizes) / len(sizes), 2) if sizes else None,
        "codes": len(codebook.themes),
    }


def _smallest_fraction(classifier: LLMClassifier, codebook: Codebook, items: list[Any]) -> float:
    """The smallest share of each response's codes (step 0.05) reaching 98% recall."""
    import math

    from coder.llm.shortlist import DEFAULT_MIN_SIZE

    shortlister = classifier.shortlister(codebook)
    responses = [item.to_response() for item in items]
    rankings = []
    for response in responses:
        applicable = [t.id for t in codebook.themes_for(response.question)]
        if shortlister is None or len(applicable) <= DEFAULT_MIN_SIZE:
            rankings.append([(code, 0.0) for code in applicable])
        else:
            rankings.append(shortlister.ranking(response, codebook))
    gold = _gold_codes(items)
    for step in range(1, 21):
        fraction = step / 20
        found = total = 0
        for ranking, codes in zip(rankings, gold, strict=True):
            k = min(len(ranking), max(DEFAULT_MIN_SIZE, math.ceil(fraction * len(ranking))))
            top = {code for code, _ in ranking[:k]}
            total += len(codes)
            found += sum(code in top for code in codes)
        if total and found / total >= 0.98:
            return fraction
    return 1.0


def _bench_classifier(scorer: Any = None, **settings: Any) -> LLMClassifier:
    return LLMClassifier(
        model="gpt-4o-mini",
        base_url="http://127.0.0.1:9/v1",
        mode="tools",
        scorer=scorer,
        **settings,
    )


def shortlist_main(gold_root: Path, trained_sets: list[str]) -> None:
    import time

    from coder.embedded.classifier import LocalClassifier
    from eval.gold import load_gold

    results: dict[str, Any] = {"zero_shot_default_cut": {}, "smallest_zero_shot_fraction": {}}
    for name in ("nhs_pxtextmining_v6", "rapid_insight_dev", "argkp_2021"):
        folder = gold_root / name
        if not folder.is_dir():
            print(f"skipped {name}: {folder} not found", file=sys.stderr)
            continue
        codebook, items = load_gold(folder)
        scorer = LocalClassifier(use_stored_model=False)
        classifier = _bench_classifier(scorer)
        started = time.perf_counter()
        assert classifier.prepare is not None
        classifier.prepare([item.to_response() for item in items], codebook)
        stats = _shortlist_stats(classifier, codebook, items, {})
        stats["seconds"] = round(time.perf_counter() - started, 1)
        results["zero_shot_default_cut"][name] = stats
        results["smallest_zero_shot_fraction"][name] = _smallest_fraction(
            classifier, codebook, items
        )
        print(name, stats, file=sys.stderr, flush=True)
        if name in trained_sets:
            key = "nhs_trained_on_half" if name.startswith("nhs") else f"{name}_trained_on_half"
            results[key] = _trained(codebook, items, with_tokens=name.startswith("nhs"))
    results["targets"] = {
        "nhs_recall": ">= 0.98 of gold codes with <= 12 of 48 codes per prompt on average",
        "nhs_prompt_tokens": "<= 0.25 x the whole-codebook prompt per answer",
        "fits_4096": "every NHS item fits a 4,096-token context",
    }
    results["command"] = " ".join(["python", f"benchmarks/{Path(__file__).name}", *sys.argv[1:]])
    results["peak_rss_mib"] = peak_rss_mib()
    write_result("shortlist", results)


def _trained(codebook: Codebook, items: list[Any], *, with_tokens: bool) -> dict[str, Any]:
    """The embedded model trained on half the items (the "reviewed" answers), the cut
    chosen on a fifth, recall and codes per prompt measured on the remaining 30%."""
    import time

    import numpy as np

    from coder.embedded.classifier import LocalClassifier
    from coder.llm.examples import Example, ExamplePool
    from eval.runner import gold_labels, labelled_examples

    order = np.random.default_rng(0).permutation(len(items))
    reviewed = [items[i] for i in order[: len(items) // 2]]
    calibration = [items[i] for i in order[len(items) // 2 : int(len(items) * 0.7)]]
    test = [items[i] for i in order[int(len(items) * 0.7) :]]
    scorer = LocalClassifier(use_stored_model=False)
    scorer.prepare([item.to_response() for item in items], codebook)
    started = time.perf_counter()
    scorer.fit(labelled_examples(reviewed), codebook)
    trained: dict[str, Any] = {
        "reviewed": len(reviewed), "calibration": len(calibration), "test": len(test),
        "fit_seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    pool = ExamplePool(
        [Example(i.id, i.question, i.text, gold_labels(i)) for i in reviewed + calibration],
        scorer.embed,
    )
    test_responses = [item.to_response() for item in test]
    whole_tokens = 0.0
    if with_tokens:
        whole = _bench_classifier(scorer, shortlist=False, examples=0)
        whole_tokens = whole.estimate(test_responses, codebook).prompt_tokens / len(test)
        trained["whole_codebook_prompt_tokens_per_answer"] = round(whole_tokens, 1)
    for label, examples in (("no_examples", 0), ("with_3_examples", 3)):
        classifier = _bench_classifier(scorer, examples=examples, example_pool=pool)
        cut = classifier.calibrate_shortlist(
            [i.to_response() for i in calibration], _gold_codes(calibration), codebook
        )
        extra: dict[str, list[str]] = {}
        if examples:
            for item in test:
                nearest = pool.nearest([item.to_response()], examples, codebook)
                extra[item.id] = [code for e in nearest for code in e.codes()]
        stats = _shortlist_stats(classifier, codebook, test, extra)
        described = cut.describe() if cut is not None else "too few themed answers: default cut"
        trained[label] = {"cut": described, **stats}
        if with_tokens:
            trained[label].update(
                _prompt_tokens(classifier, codebook, test_responses, whole_tokens)
            )
        print(label, trained[label], file=sys.stderr, flush=True)
    if with_tokens:
        default = _bench_classifier(LocalClassifier(use_stored_model=False), examples=0)
        trained["zero_shot_default_cut_prompt_tokens"] = _prompt_tokens(
            default, codebook, test_responses, whole_tokens
        )
    return trained


def _prompt_tokens(
    classifier: LLMClassifier, codebook: Codebook, responses: list[Response], whole: float
) -> dict[str, Any]:
    """Estimated prompt tokens per answer (messages + JSON schema, chars/4) and the share
    that fits a 4,096-token window with the classifier's margin and answer reserve."""
    from coder.llm.classifier import CONTEXT_SAFETY

    classifier._rank(responses, codebook)
    per_answer = [
        classifier._prompt(codebook, _planned(response), batch=False).tokens
        for response in responses
    ]
    mean = sum(per_answer) / len(per_answer)
    # The same prompts fitted to a 4,096-token window, as for a small local model.
    from coder.llm.classifier import ContextTooSmall

    window, classifier.window.size = classifier.window.size, 4096
    fitted: list[int] = []
    shrunk = too_big = 0
    for response in responses:
        try:
            prompt = classifier._prompt(codebook, _planned(response), batch=False)
        except ContextTooSmall:
            too_big += 1
            continue
        fitted.append(prompt.tokens)
        shrunk += bool(prompt.fitted)
    classifier.window.size = window
    return {
        "prompt_tokens_mean": round(mean, 1),
        "prompt_tokens_max": max(per_answer),
        "prompt_tokens_ratio_to_whole_codebook": round(mean / whole, 3),
        "share_fitting_4096_unfitted": round(
            sum(t * CONTEXT_SAFETY + 512 <= 4096 for t in per_answer) / len(per_answer), 4
        ),
        "window_4096": {
            "failed_to_fit": too_big,
            "shrunk_to_fit": shrunk,
            "prompt_tokens_mean": round(sum(fitted) / len(fitted), 1) if fitted else None,
            "prompt_tokens_max": max(fitted) if fitted else None,
        },
    }


def _planned(response: Response) -> Any:
    from coder.llm.classifier import _Planned

    return _Planned(response.question, [response])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--responses", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--shortlist", action="store_true", help="measure the shortlist")
    parser.add_argument("--gold", type=Path, default=REPO.parent / "shared" / "gold")
    parser.add_argument(
        "--trained",
        default="nhs_pxtextmining_v6,rapid_insight_dev,argkp_2021",
        help="with --shortlist: gold sets also measured with a trained ranking (comma list)",
    )
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-local")
    if args.shortlist:
        shortlist_main(args.gold, [name for name in args.trained.split(",") if name])
        return
    codebook = forty_code_codebook()
    items = responses(args.responses, codebook)
    codes_per_prompt = [len(codebook.themes_for(q)) for q in codebook.question_ids]
    single = measure(codebook, items, 1)
    batched = measure(codebook, items, args.batch_size)
    key = "sent_prompt_tokens_per_response"
    ratio = batched[key] / single[key]
    estimate_ratio = (
        batched["estimate_prompt_tokens_per_response"]
        / single["estimate_prompt_tokens_per_response"]
    )
    write_result(
        "tokens",
        {
            "codes": len(codebook.themes),
            "codes_per_prompt_min_max": [min(codes_per_prompt), max(codes_per_prompt)],
            "responses": args.responses,
            "single": single,
            "batched": batched,
            "batched_over_single_sent": round(ratio, 3),
            "batched_over_single_estimate": round(estimate_ratio, 3),
            "target": "batched / single <= 0.5 (batching at least halves prompt tokens)",
            "meets_target": ratio <= 0.5 and estimate_ratio <= 0.5,
            "note": (
                "server_reported counts the messages only (the fake server's usage); "
                "sent and estimate include the tool JSON schema sent with every call"
            ),
            "command": " ".join(["python", f"benchmarks/{Path(__file__).name}", *sys.argv[1:]]),
            "peak_rss_mib": peak_rss_mib(),
        },
    )


if __name__ == "__main__":
    main()
