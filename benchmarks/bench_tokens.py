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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--responses", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=10)
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-local")
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
