"""The LLM backend: instructor over any OpenAI-compatible endpoint.

``LLMClassifier.propose_iter`` is the working path: an async generator that yields a
:class:`ProposalResult` per response as soon as it is known, so the caller can commit
each one at once (nothing is lost if the process dies). ``propose`` is the synchronous
form the :class:`coder.backends.base.Classifier` protocol asks for.

Every HTTP call is logged through ``call_logger`` (``Store.log_llm_call``) by a thin
transport wrapper: it sees every attempt, including rate-limited and failed ones,
and never the request headers, so the API key cannot reach the log. The same wrapper
guards against a hostile or broken server: one deadline for the whole attempt
(``request_timeout``, not per read), a cap on the answer's size after decompression
(``max_response_bytes``), and a 200 answer that is not a JSON object is refused with what
came back (content type, first bytes, key scrubbed) instead of a puzzling parse error.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import hashlib
import json
import os
import re
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx2
import instructor
import openai
from pydantic import BaseModel

from coder.backends.base import ProposalResult
from coder.llm import prompts
from coder.llm.config import LLMSettings, build_settings
from coder.llm.examples import DEFAULT_EXAMPLES, Example, ExamplePool, render_examples
from coder.llm.pricing import PriceTable, estimate_tokens
from coder.llm.response_model import (
    VALIDATION_CONTEXT,
    build_batch_model,
    build_item_model,
    to_proposal,
)
from coder.llm.retry import (
    AnswerDeadline,
    AnswerNotJSON,
    AnswerTooLarge,
    BadAnswer,
    transport_retrying,
    validation_retrying,
)
from coder.llm.secrets import scrub, scrub_value
from coder.llm.shortlist import Cut, Shortlister, choose_cut
from coder.redact import redact
from schemas import Codebook, Response

MODES = {
    "tools": instructor.Mode.TOOLS,
    "json": instructor.Mode.JSON,
    "json_schema": instructor.Mode.JSON_SCHEMA,
    "md_json": instructor.Mode.MD_JSON,
}
#: a guess of the answer length per response, for the pre-flight estimate
COMPLETION_TOKENS_PER_RESPONSE = 180
MAX_ERROR_CHARS = 2000
#: Our token count is chars/4 of the messages plus the JSON schema; a tokenizer may need
#: more (code ids, punctuation, other scripts), so a prompt is fitted to the window with this
#: margin. (llama-cpp-python counted about half our estimate for fitted NHS prompts: it
#: turns the tool schema into a grammar instead of prompt text.) A server that still
#: refuses a prompt as too long teaches a larger ratio (``_learn_window``).
CONTEXT_SAFETY = 1.25
#: response models (and their JSON schemas) kept per run, one per distinct shortlist
MODEL_CACHE_SIZE = 4096
#: "Requested tokens (5012) exceed context window of 4096" (llama-cpp-python), "maximum
#: context length is 8192 tokens" (OpenAI, vLLM), "n_ctx: 4096" / "n_ctx_slot" (llama.cpp)
_WINDOW_IN_ERROR = re.compile(
    r"(?:context window of|maximum context length is|n_ctx(?:_slot)?\W+)\s*(\d{3,})", re.I
)

CallLogger = Callable[..., Any]


@dataclass
class CallContext:
    """Which responses the HTTP call in this task is about (set per request)."""

    response_ids: list[str]
    kind: str = "single"


_CALL_CONTEXT: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar(
    "coder_llm_call_context", default=None
)


@dataclass
class CallStats:
    """Running totals for the progress bar and the summary."""

    calls: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True


@dataclass
class Estimate:
    """A pre-flight estimate: what a run would send, before any money is spent."""

    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    model: str
    base_url: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Planned:
    """One request to make: responses that share a system prompt."""

    question_id: str | None
    responses: list[Response]


@dataclass(frozen=True)
class _Prompt:
    """What one request sends: messages, the response model, and what was chosen."""

    system: prompts.SystemPrompt
    user: str
    model: type[BaseModel]
    #: the shortlist (None: every code of the question)
    theme_ids: tuple[str, ...] | None
    example_ids: tuple[str, ...]
    #: estimated prompt tokens, JSON schema included
    tokens: int
    #: what was given up to fit the context window, if anything
    fitted: tuple[str, ...] = ()

    def messages(self) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self.system.text},
            {"role": "user", "content": self.user},
        ]


class ContextTooSmall(Exception):
    """The smallest prompt for an item does not fit the model's context window."""


class _LoggingTransport(httpx2.AsyncBaseTransport):
    """Times every HTTP call and records it (model, ids, tokens, cost, error; no headers)."""

    def __init__(self, classifier: LLMClassifier, concurrency: int = 4) -> None:
        # Keep a connection alive per request in flight: httpx's default of 20 would close
        # and reopen connections on every call above concurrency 20.
        self.inner = httpx2.AsyncHTTPTransport(
            limits=httpx2.Limits(
                max_connections=max(100, concurrency), max_keepalive_connections=concurrency
            )
        )
        self.classifier = classifier

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        started = time.perf_counter()
        context = _CALL_CONTEXT.get()
        settings = self.classifier.settings
        response: httpx2.Response | None = None
        body: bytes | None = None
        try:
            try:
                # One deadline for the whole attempt: httpx's timeouts are per read, so a
                # server sending a byte a second never trips them.
                async with asyncio.timeout(settings.request_timeout):
                    response = await self.inner.handle_async_request(request)
                    body = await _read_capped(response, settings.max_response_bytes)
            except TimeoutError as error:
                raise AnswerDeadline(
                    f"no complete answer within {settings.request_timeout:g} s "
                    "(--request-timeout covers the whole answer)"
                ) from error
            finally:
                if response is not None:
                    await response.aclose()
            assert response is not None and body is not None
            if response.status_code == 200:
                _check_json_object(response, body, self.classifier.secrets())
        except Exception as error:
            self.classifier._record_call(request, response, body, started, context, error)
            raise
        # The body is read and decoded: hand the client a plain copy (no Content-Encoding,
        # or it would be decompressed twice).
        answer = httpx2.Response(
            response.status_code,
            headers=[
                (name, value)
                for name, value in response.headers.raw
                if name.lower() not in (b"content-encoding", b"content-length", b"transfer-encoding")
            ],
            content=body,
            request=request,
            extensions=response.extensions,
        )
        self.classifier._record_call(request, answer, body, started, context, None)
        return answer

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _read_capped(response: httpx2.Response, limit: int) -> bytes:
    """The decoded (decompressed) body, refused once it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            encoding = response.headers.get("content-encoding")
            how = f" ({encoding}-compressed)" if encoding else ""
            raise AnswerTooLarge(
                f"the answer{how} passed {limit:,} bytes once decoded; refused "
                "(max_response_bytes in the config file)"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _check_json_object(response: httpx2.Response, body: bytes, keys: Sequence[str]) -> None:
    """Refuse a 200 answer that is not a JSON object, saying what came back."""
    try:
        parsed = json.loads(body)
    except RecursionError:
        problem = "JSON nested too deeply to read"
    except ValueError:
        problem = "not JSON"
    else:
        if isinstance(parsed, dict):
            return
        problem = f"JSON {type(parsed).__name__}, not an object"
    content_type = response.headers.get("content-type") or "(none)"
    start = scrub(body[:200].decode("utf-8", "replace"), keys)
    raise AnswerNotJSON(
        f"HTTP 200 with content-type {content_type!r} and a {len(body):,}-byte body that is "
        f"{problem}; it began: {start!r}"
    )


class LLMClassifier:
    """Pre-codes responses through an OpenAI-compatible endpoint with instructor."""

    backend = "openai"

    def __init__(
        self,
        model: str | None = None,
        *,
        settings: LLMSettings | None = None,
        config_file: str | None = None,
        call_logger: CallLogger | None = None,
        run_id: str | None = None,
        model_store: Any = None,
        scorer: Any = None,
        example_pool: ExamplePool | None = None,
        **overrides: Any,
    ) -> None:
        """``model_store`` (the project) supplies the reviewed answers that choose the
        shortlist's size and give examples, and its trained embedded model ranks codes;
        ``scorer`` (an embedded classifier) and ``example_pool`` override them."""
        self.settings = settings or build_settings(config_file, model=model, **overrides)
        if settings is not None and model is not None:
            self.settings.model = model
        self.model = self.settings.model
        self.prices = PriceTable.load(self.settings.prices_file)
        self.call_logger = call_logger
        self.run_id = run_id or uuid.uuid4().hex
        self.stats = CallStats()
        # Per-codebook values (system prompts, response models, hashes) are computed once
        # per run, not once per call: rebuilding a pydantic model and its JSON schema for
        # every request cost ~10 ms of CPU each and capped throughput at high concurrency.
        self._memo: dict[tuple[Any, ...], tuple[Codebook, Any]] = {}
        # Per-shortlist response models and their schema sizes, bounded: a run over
        # 100,000 answers may have thousands of distinct shortlists.
        self._models: OrderedDict[tuple[Any, ...], tuple[type[BaseModel], int]] = OrderedDict()
        self._systems: OrderedDict[tuple[Any, ...], tuple[Codebook, prompts.SystemPrompt]] = (
            OrderedDict()
        )
        self._api_key: str | None = None
        self._clean: weakref.WeakValueDictionary[int, ProposalResult] = (
            weakref.WeakValueDictionary()
        )
        self.model_store = model_store
        self._scorer = scorer
        self._example_pool = example_pool
        self._shortlister: Shortlister | None = None
        self._cut_for: tuple[Codebook, Cut] | None = None
        #: the context window in tokens: the setting, else what the server reports/says
        self.context_window: int | None = self.settings.context_window
        self._window_probed = self.context_window is not None
        #: measured (server tokens / our estimate), raised when a server says a prompt was
        #: longer than we thought
        self._token_ratio = 1.0

    def secrets(self) -> tuple[str, ...]:
        """The key(s) this classifier sends, to be scrubbed from whatever is stored."""
        key = self._api_key or os.environ.get(self.settings.api_key_env)
        return (key,) if key else ()

    def _mask_key(self, text: str) -> str:
        # A proxy or server may quote the key back in an error ("invalid credentials:
        # Bearer sk-..."); errors are stored and printed, the key never is.
        return scrub(text, self.secrets())

    def scrubbed(self, result: ProposalResult) -> ProposalResult:
        """``result`` with the key masked everywhere (a server may echo it in a good answer,
        e.g. in the model name or the rationale)."""
        # The pipeline scrubs again what this backend already scrubbed: skip the second walk.
        if self._clean.get(id(result)) is result:
            return result
        keys = self.secrets()
        clean = dataclasses.replace(
            result,
            proposal=scrub_value(result.proposal, keys),
            model_version=scrub(result.model_version, keys) if result.model_version else None,
            error=scrub(result.error, keys) if result.error else None,
            params=scrub_value(result.params, keys),
        )
        self._clean[id(clean)] = clean
        return clean

    def _memoised(
        self, codebook: Codebook, key: tuple[Any, ...], compute: Callable[[], Any]
    ) -> Any:
        # Keyed by identity; the entry holds the codebook so its id cannot be reused.
        full_key = (id(codebook), *key)
        hit = self._memo.get(full_key)
        if hit is None or hit[0] is not codebook:
            hit = (codebook, compute())
            self._memo[full_key] = hit
        return hit[1]

    def _system_prompt(self, codebook: Codebook, question_id: str | None) -> prompts.SystemPrompt:
        return self._memoised(  # type: ignore[no-any-return]
            codebook,
            ("system", question_id),
            lambda: prompts.render_system_prompt(codebook, question_id),
        )

    def _item_model(
        self,
        codebook: Codebook,
        question_id: str | None,
        theme_ids: tuple[str, ...] | None = None,
        response_ids: tuple[str, ...] | None = None,
    ) -> tuple[type[BaseModel], int]:
        """The response model for a question and shortlist (batched: and ids), with its
        JSON schema's size in tokens; built once and reused (bounded LRU)."""
        key = (id(codebook), question_id, theme_ids, response_ids)
        hit = self._models.get(key)
        if hit is not None and getattr(hit[0], "_coder_codebook", None) is codebook:
            self._models.move_to_end(key)
            return hit
        model = (
            build_batch_model(codebook, question_id, list(response_ids), theme_ids)
            if response_ids is not None
            else _as_response_schema(build_item_model(codebook, question_id, None, theme_ids))
        )
        model._coder_codebook = codebook  # type: ignore[attr-defined]
        entry = (model, estimate_tokens(json.dumps(model.model_json_schema())))
        # A batch's model names its ids: it is used once, so it is not kept.
        if response_ids is None:
            self._models[key] = entry
            if len(self._models) > MODEL_CACHE_SIZE:
                self._models.popitem(last=False)
        return entry

    def _static_prompt(self, codebook: Codebook, question_id: str | None) -> str:
        return self._memoised(  # type: ignore[no-any-return]
            codebook,
            ("static", question_id),
            lambda: prompts.render_static_prompt(codebook, question_id),
        )

    # --- shortlist and examples --------------------------------------------------------
    @property
    def scorer(self) -> Any:
        """The embedded classifier that ranks codes and embeds examples (built on first use:
        the project's trained model, else zero-shot)."""
        if self._scorer is None:
            from coder.embedded.classifier import LocalClassifier

            self._scorer = LocalClassifier(self.model_store)
        return self._scorer

    def shortlister(self, codebook: Codebook) -> Shortlister | None:
        """The shortlister for ``codebook``, or None when shortlisting is off or every
        question's codes fit the cut (a small codebook goes whole)."""
        if not self.settings.shortlist:
            return None
        cut = self.shortlist_cut(codebook)
        if all(
            cut.size_for(len(codebook.themes_for(q))) >= len(codebook.themes_for(q))
            for q in [*codebook.question_ids, None]
        ):
            return None
        if self._shortlister is None or self._shortlister.cut is not cut:
            scorer = self.scorer
            name = f"{getattr(scorer, 'model', type(scorer).__name__)}@" + str(
                getattr(scorer, "model_version", "")
            )
            self._shortlister = Shortlister(scorer, cut, name=name)
        return self._shortlister

    def shortlist_cut(self, codebook: Codebook) -> Cut:
        """The shortlist's cut: --shortlist-size, else chosen on the project's reviewed
        answers (those the trained model did not learn from), else the measured default."""
        if self._cut_for is not None and self._cut_for[0] is codebook:
            return self._cut_for[1]
        cut = Cut(size=None)
        if self.settings.shortlist_size is not None:
            cut = Cut(size=self.settings.shortlist_size, source="option")
        elif self.settings.shortlist and self.model_store is not None:
            cut = self._cut_from_reviews(codebook) or cut
        self._cut_for = (codebook, cut)
        return cut

    def _cut_from_reviews(self, codebook: Codebook) -> Cut | None:
        finals = self.model_store.final_labels()
        if not finals:
            return None
        state = getattr(self.scorer, "state", None)
        learned = set(getattr(state, "train_texts", None) or [])
        reviewed = [
            r
            for r in self.model_store.responses(ids=list(finals))
            if r.text not in learned and r.id in finals and finals[r.id].labels is not None
        ]
        gold = []
        for response in reviewed:
            labels = finals[response.id].labels
            gold.append(list(labels.themes) if labels.relevant else [])
        return self.calibrate_shortlist(reviewed, gold, codebook)

    def calibrate_shortlist(
        self, responses: Sequence[Response], gold: Sequence[Sequence[str]], codebook: Codebook
    ) -> Cut | None:
        """Choose the cut on ``responses`` whose codes are known (``gold``, e.g. reviewed or
        a gold set's training part) and use it from now on; None if too few."""
        ranker = Shortlister(self.scorer, Cut(size=None))
        ranker.rank(responses, codebook)
        rankings = [ranker.ranking(r, codebook) for r in responses]
        # With examples, their labels join every shortlist: count them as kept (each
        # answer's examples exclude the answer itself).
        pool = self.example_pool()
        wanted = self.examples_wanted()
        given = (
            [[c for e in pool.nearest([r], wanted, codebook) for c in e.codes()] for r in responses]
            if pool is not None and wanted
            else None
        )
        cut = choose_cut(rankings, gold, self.settings.shortlist_recall, given)
        if cut is not None:
            self._cut_for = (codebook, cut)
            # The same scorer ranked them: keep its rankings.
            self._shortlister = Shortlister(ranker.scorer, cut, name=self._scorer_name())
            self._shortlister._rankings = ranker._rankings
            self._shortlister._prepared = ranker._prepared
        return cut

    def _scorer_name(self) -> str:
        scorer = self.scorer
        return f"{getattr(scorer, 'model', type(scorer).__name__)}@" + str(
            getattr(scorer, "model_version", "")
        )

    def fit(self, examples: Sequence[Any], codebook: Codebook) -> None:
        """Learn from labelled answers the way an LLM can: they become the pool of prompt
        examples and choose the shortlist's cut (the model's weights do not change).

        ``examples`` are :class:`coder.embedded.training.LabelledExample`-like objects (text,
        question, themes, stance, relevant, id), as ``coder eval`` passes a gold set's
        training part; in a project the reviewed answers play this part on their own.
        """
        from schemas import Labels

        kept = [e for e in examples if (e.text or "").strip()]
        pool = [
            Example(
                str(e.id or f"train-{number}"),
                e.question,
                e.text,
                Labels(
                    question=e.question,
                    themes=list(e.themes),
                    stance=e.stance,
                    relevant=e.relevant is not False,
                ),
            )
            for number, e in enumerate(kept)
        ]
        self._example_pool = ExamplePool(pool, self.scorer.embed)
        # The prompt choice (and so the cache key) depends on the pool and the cut.
        self._memo = {k: v for k, v in self._memo.items() if "shortlist_key" not in k}
        if self.settings.shortlist and self.settings.shortlist_size is None:
            self._cut_for = None
            self.calibrate_shortlist(
                [Response(id=p.response_id, text=p.text, question=p.question) for p in pool],
                [p.codes() for p in pool],
                codebook,
            )

    def example_pool(self) -> ExamplePool | None:
        """Reviewed answers to show as examples (None when --examples 0 or none exist)."""
        if self.settings.examples == 0:
            return None
        if self._example_pool is None and self.model_store is not None:
            self._example_pool = ExamplePool.from_store(self.model_store, self.scorer.embed)
        return self._example_pool if self._example_pool else None

    def examples_wanted(self) -> int:
        """Examples per request: --examples, else DEFAULT_EXAMPLES when reviewed answers exist."""
        pool = self.example_pool()
        if pool is None:
            return 0
        return self.settings.examples if self.settings.examples is not None else DEFAULT_EXAMPLES

    @property
    def prepare(self) -> Callable[[Sequence[Response], Codebook], None] | None:
        """The pipeline's hook, called with a sample of the project's answers so the ranking
        model learns its question prior from them; None when shortlisting is off (the
        pipeline then neither reads the sample nor loads the embedded model)."""
        return self._prepare_shortlist if self.settings.shortlist else None

    def _prepare_shortlist(self, responses: Sequence[Response], codebook: Codebook) -> None:
        shortlister = self.shortlister(codebook)
        if shortlister is not None:
            shortlister.prepare(responses, codebook)

    def _shortlist_key(self, codebook: Codebook) -> dict[str, Any] | None:
        shortlister = self.shortlister(codebook)
        examples = self.examples_wanted()
        pool = self.example_pool()
        return {
            "shortlist": (
                {"cut": shortlister.cut.describe(), "ranker": shortlister.name}
                if shortlister
                else None
            ),
            "examples": {"k": examples, "pool": pool.fingerprint()} if examples and pool else None,
            "context_window": self.settings.context_window,
        }

    # --- what leaves the machine ---------------------------------------------------
    @property
    def redacts(self) -> bool:
        """True when PII is redacted before sending (on, unless the endpoint is local)."""
        return self.settings.redact and not self.settings.is_local

    def outgoing_text(self, response: Response) -> str:
        """The text sent to the endpoint: redacted unless the endpoint is local."""
        return redact(response.text).text if self.redacts else response.text

    def input_hash(self, response: Response, codebook: Codebook) -> str:
        """Cache key: backend, model, params, prompt version, codebook and text."""
        system = self._system_prompt(codebook, response.question)
        key = {
            "backend": self.backend,
            "model": self.model,
            "params": self.settings.params(),
            "template_hash": system.template_hash,
            "system_prompt_hash": system.hash,
            "codebook_hash": self._memoised(codebook, ("hash",), codebook.content_hash),
            "question": response.question,
            "text": self.outgoing_text(response),
        }
        # The shortlist and examples are functions of the text, the ranking model and the
        # reviewed answers: their settings (not the per-response result) join the key.
        prompt_choice = self._memoised(
            codebook, ("shortlist_key",), lambda: self._shortlist_key(codebook)
        )
        if prompt_choice != {"shortlist": None, "examples": None, "context_window": None}:
            key["prompt_choice"] = prompt_choice
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()

    # --- planning and estimates ------------------------------------------------------
    def plan(self, responses: Sequence[Response]) -> list[_Planned]:
        """Group responses into requests: by question, token-aware, ``batch_size`` at most."""
        if self.settings.batch_size <= 1:
            return [_Planned(r.question, [r]) for r in responses]
        by_question: dict[str | None, list[Response]] = {}
        for response in responses:
            by_question.setdefault(response.question, []).append(response)
        planned: list[_Planned] = []
        for question_id, group in by_question.items():
            current: list[Response] = []
            tokens = 0
            for response in group:
                size = estimate_tokens(response.text) + 20
                if current and (
                    len(current) >= self.settings.batch_size
                    or tokens + size > self.settings.batch_max_tokens
                ):
                    planned.append(_Planned(question_id, current))
                    current, tokens = [], 0
                current.append(response)
                tokens += size
            if current:
                planned.append(_Planned(question_id, current))
        return planned

    def estimate(self, responses: Sequence[Response], codebook: Codebook) -> Estimate:
        """Calls, tokens and cost a run over ``responses`` would take (no network)."""
        prompt_tokens = completion_tokens = 0
        planned = self.plan(responses)
        self._rank(responses, codebook)
        too_big = 0
        for request in planned:
            try:
                prompt = self._prompt(codebook, request, batch=len(request.responses) > 1)
            except ContextTooSmall:
                too_big += 1
                continue
            prompt_tokens += prompt.tokens
            completion_tokens += COMPLETION_TOKENS_PER_RESPONSE * len(request.responses)
        cost = self.prices.cost(
            self.model, prompt_tokens, completion_tokens, local=self.settings.is_local
        )
        return Estimate(
            calls=len(planned),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost,
            model=self.model,
            base_url=self.settings.resolved_base_url,
            extra={"requests_too_big_for_context": too_big} if too_big else {},
        )

    # --- the protocol ----------------------------------------------------------------
    def propose(self, responses: Sequence[Response], codebook: Codebook) -> list[ProposalResult]:
        """Propose labels for ``responses`` (one result per response, same order)."""

        async def collect() -> list[ProposalResult]:
            return [result async for result in self.propose_iter(responses, codebook)]

        results = {result.response_id: result for result in asyncio.run(collect())}
        return [results[response.id] for response in responses]

    async def propose_iter(
        self, responses: Sequence[Response], codebook: Codebook
    ) -> AsyncIterator[ProposalResult]:
        """Yield one result per response, in the order they complete."""
        if not responses:
            return
        client = self._client()
        semaphore = asyncio.Semaphore(max(1, self.settings.concurrency))
        try:
            await self._probe_context_window(client)
            # One batch for the ranking model (a few ms per answer, not per call).
            self._rank(responses, codebook)
            tasks = [
                asyncio.create_task(self._run_planned(client, semaphore, codebook, request))
                for request in self.plan(responses)
            ]
            try:
                for finished in asyncio.as_completed(tasks):
                    for result in await finished:
                        yield result
            finally:
                for task in tasks:
                    task.cancel()
        finally:
            await client.client.close()

    # --- internals ---------------------------------------------------------------------
    def _client(self) -> Any:
        _memoise_instructor_async_validator_check()
        _plain_chat_request_transform()
        api_key = self.settings.api_key()
        self._api_key = api_key
        concurrency = max(1, self.settings.concurrency)
        http_client = httpx2.AsyncClient(
            transport=_LoggingTransport(self, concurrency),
            timeout=httpx2.Timeout(self.settings.request_timeout, connect=10.0),
        )
        raw = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=self.settings.resolved_base_url,
            # Our tenacity policy is the only retry layer (see coder.llm.retry).
            max_retries=0,
            timeout=self.settings.request_timeout,
            http_client=http_client,
        )
        return instructor.from_openai(raw, mode=MODES[self.settings.resolved_mode])

    def _messages(self, codebook: Codebook, request: _Planned) -> list[dict[str, str]]:
        return self._prompt(codebook, request, batch=len(request.responses) > 1).messages()

    def _rank(self, responses: Sequence[Response], codebook: Codebook) -> None:
        shortlister = self.shortlister(codebook)
        if shortlister is not None:
            shortlister.rank(responses, codebook)

    def _prompt(self, codebook: Codebook, request: _Planned, *, batch: bool) -> _Prompt:
        """The request's prompt: static instructions, the shortlisted themes, examples of
        reviewed answers, then the answer(s); fitted to the context window when one is
        known (examples dropped first, then the themes' own examples, then the shortlist
        halved), else :class:`ContextTooSmall`."""
        question_id = request.question_id
        shortlister = self.shortlister(codebook)
        pool = self.example_pool()
        wanted_examples = self.examples_wanted()
        examples: list[Example] = (
            pool.nearest(request.responses, wanted_examples, codebook)
            if pool is not None and wanted_examples
            else []
        )
        if len(request.responses) == 1:
            response = request.responses[0]
            user = prompts.render_user_prompt(response, self.outgoing_text(response))
        else:
            user = prompts.render_batch_prompt(
                codebook,
                question_id,
                [{"id": r.id, "text": self.outgoing_text(r)} for r in request.responses],
            )
        ids = tuple(r.id for r in request.responses) if batch else None
        static = self._static_prompt(codebook, question_id)
        applicable = len(codebook.themes_for(question_id))
        size: int | None = None  # the cut's own size
        show_theme_examples = True
        fitted: list[str] = []
        while True:
            theme_ids: tuple[str, ...] | None = None
            if shortlister is not None:
                extra = [code for example in examples for code in example.codes()]
                chosen: list[str] = []
                for response in request.responses:
                    for code in shortlister.shortlist(response, codebook, size=size, extra=extra):
                        if code not in chosen:
                            chosen.append(code)
                if len(chosen) < applicable:
                    order = {t.id: i for i, t in enumerate(codebook.themes)}
                    theme_ids = tuple(sorted(chosen, key=order.__getitem__))
            system = self._system_for(
                codebook, question_id, static, theme_ids, examples, show_theme_examples
            )
            model, schema_tokens = self._item_model(codebook, question_id, theme_ids, ids)
            tokens = estimate_tokens(system.text) + estimate_tokens(user) + schema_tokens
            prompt = _Prompt(
                system=system,
                user=user,
                model=model,
                theme_ids=theme_ids,
                example_ids=tuple(e.response_id for e in examples),
                tokens=tokens,
                fitted=tuple(fitted),
            )
            budget = self._prompt_budget(len(request.responses))
            if budget is None or tokens * self._token_ratio * CONTEXT_SAFETY <= budget:
                return prompt
            # Too long for the window: give up, in turn, what helps least.
            current = len(theme_ids) if theme_ids is not None else applicable
            if examples:
                examples = []
                fitted.append("examples")
            elif show_theme_examples:
                show_theme_examples = False
                fitted.append("theme examples")
            elif shortlister is not None and current > 1:
                size = max(1, min(current, shortlister.cut.size_for(applicable)) // 2)
                fitted.append(f"shortlist {size}")
            else:
                assert budget is not None
                raise ContextTooSmall(
                    f"the prompt needs about {round(tokens * self._token_ratio * CONTEXT_SAFETY)}"
                    f" tokens (with a {CONTEXT_SAFETY:g}x margin) and the answer "
                    f"{self._answer_reserve(len(request.responses))} more, but the model's "
                    f"context window is {self.context_window} tokens"
                    + (
                        " even with the shortlist cut to one code"
                        if shortlister is not None
                        else "; shortlisting is off (drop --no-shortlist)"
                    )
                    + "; a larger context window (--context-window) or a shorter response needed"
                )

    def _system_for(
        self,
        codebook: Codebook,
        question_id: str | None,
        static: str,
        theme_ids: tuple[str, ...] | None,
        examples: list[Example],
        show_theme_examples: bool,
    ) -> prompts.SystemPrompt:
        # Without examples the system prompt depends only on the question and shortlist:
        # rendered once (bounded LRU), as the response models are.
        key = (id(codebook), question_id, theme_ids, show_theme_examples)
        if not examples:
            hit = self._systems.get(key)
            if hit is not None and hit[0] is codebook:
                self._systems.move_to_end(key)
                return hit[1]
        part = prompts.render_themes_part(
            codebook,
            question_id,
            theme_ids,
            render_examples(examples, [self.outgoing_text_of(e.text) for e in examples]),
            show_theme_examples=show_theme_examples,
        )
        system = prompts.compose_system_prompt(static, part, question_id)
        if not examples:
            self._systems[key] = (codebook, system)
            if len(self._systems) > MODEL_CACHE_SIZE:
                self._systems.popitem(last=False)
        return system

    def outgoing_text_of(self, text: str) -> str:
        """Any text sent to the endpoint (e.g. an example): redacted unless it is local."""
        return redact(text).text if self.redacts else text

    def _answer_reserve(self, items: int) -> int:
        if self.context_window is None:
            return 0
        per_item = min(self.settings.max_tokens or COMPLETION_TOKENS_PER_RESPONSE * 2, 512)
        return min(per_item * items, self.context_window // 4)

    def _prompt_budget(self, items: int) -> int | None:
        if self.context_window is None:
            return None
        return self.context_window - self._answer_reserve(items)

    async def _probe_context_window(self, client: Any) -> None:
        """Ask a local server for its context window (llama.cpp's /props n_ctx, vLLM's
        max_model_len in /v1/models), once; any failure leaves it unknown."""
        if self._window_probed:
            return
        self._window_probed = True
        if not self.settings.is_local:
            return
        self.context_window = await probe_context_window(
            self.settings.resolved_base_url, self.model
        )

    def _provenance(
        self, response: Response, codebook: Codebook, prompt: _Prompt | None = None
    ) -> dict[str, Any]:
        system = prompt.system if prompt else self._system_prompt(codebook, response.question)
        params: dict[str, Any] = {"model": self.model, **self.settings.params()}
        if prompt is not None:
            if prompt.theme_ids is not None:
                params["shortlist"] = list(prompt.theme_ids)
                cut = self.shortlist_cut(codebook)
                params["shortlist_cut"] = cut.describe()
            if prompt.example_ids:
                params["examples"] = list(prompt.example_ids)
            if prompt.fitted:
                params["fitted_to_context"] = list(prompt.fitted)
        if self.context_window is not None:
            params["context_window"] = self.context_window
        return {
            "prompt_template_hash": system.template_hash,
            "system_prompt_hash": system.hash,
            "input_hash": self.input_hash(response, codebook),
            "params": params,
        }

    async def _run_planned(
        self, client: Any, semaphore: asyncio.Semaphore, codebook: Codebook, request: _Planned
    ) -> list[ProposalResult]:
        if len(request.responses) == 1:
            return [await self._run_single(client, semaphore, codebook, request.responses[0])]
        results: dict[str, ProposalResult] = {}
        try:
            items, model_version, prompt = await self._call(
                client, semaphore, codebook, request, batch=True
            )
            for item in items:
                response_id = str(item.response_id)  # type: ignore[attr-defined]
                if response_id in results:  # a duplicated id keeps its first answer
                    continue
                response = next(r for r in request.responses if r.id == response_id)
                results[response_id] = self.scrubbed(
                    ProposalResult(
                        response_id=response_id,
                        proposal=to_proposal(item, response_id, response.question),
                        model_version=model_version,
                        **self._provenance(response, codebook, prompt),
                    )
                )
        except Exception:  # noqa: BLE001 - every item is retried on its own below
            results = {}
        # Ids the batch did not return (or a failed batch) get single-item requests.
        missing = [r for r in request.responses if r.id not in results]
        singles = await asyncio.gather(
            *(self._run_single(client, semaphore, codebook, r) for r in missing)
        )
        for result in singles:
            results[result.response_id] = result
        return [results[r.id] for r in request.responses]

    async def _run_single(
        self, client: Any, semaphore: asyncio.Semaphore, codebook: Codebook, response: Response
    ) -> ProposalResult:
        request = _Planned(response.question, [response])
        try:
            try:
                items, model_version, prompt = await self._call(
                    client, semaphore, codebook, request, batch=False
                )
            except ContextTooSmall:
                raise
            except Exception as error:
                # The server said the prompt passed its window (and how big that is): learn
                # it, and try once more with a prompt fitted to it.
                if not self._learn_window(error):
                    raise
                items, model_version, prompt = await self._call(
                    client, semaphore, codebook, request, batch=False
                )
            return self.scrubbed(
                ProposalResult(
                    response_id=response.id,
                    proposal=to_proposal(items[0], response.id, response.question),
                    model_version=model_version,
                    **self._provenance(response, codebook, prompt),
                )
            )
        except asyncio.CancelledError:
            raise
        except ContextTooSmall as error:
            return ProposalResult(
                response_id=response.id,
                proposal=None,
                error=f"ContextTooSmall: {error}",
                **self._provenance(response, codebook),
            )
        except Exception as error:  # noqa: BLE001 - stored as a failed proposal, retried next run
            return ProposalResult(
                response_id=response.id,
                proposal=None,
                error=self._mask_key(describe_error(error)),
                **self._provenance(response, codebook),
            )

    def _learn_window(self, error: BaseException) -> bool:
        """True when ``error`` is a server saying the prompt passed its context window and
        the window it names is smaller than the one assumed (which is then taken)."""
        seen: set[int] = set()
        item: BaseException | None = error
        while item is not None and id(item) not in seen:
            seen.add(id(item))
            found = _WINDOW_IN_ERROR.search(str(item))
            if found:
                window = int(found.group(1))
                requested = re.search(r"Requested tokens \((\d+)\)", str(item))
                if self.context_window is None or window < self.context_window:
                    self.context_window = window
                    return True
                if requested and int(requested.group(1)) > window:
                    # Our estimate was short: count tokens more generously from now on.
                    self._token_ratio *= 1.2
                    return True
                return False
            item = item.__cause__ or item.__context__
        return False

    async def _call(
        self,
        client: Any,
        semaphore: asyncio.Semaphore,
        codebook: Codebook,
        request: _Planned,
        *,
        batch: bool,
    ) -> tuple[list[BaseModel], str | None, _Prompt]:
        ids = [r.id for r in request.responses]
        # Every request is a task from the start; it prepares its prompt only once a slot
        # is free. Preparing first delayed the first call of a 2,000-response run by
        # ~0.4 s (all prompts rendered before any was sent) and held them all in memory.
        async with semaphore:
            prompt = self._prompt(codebook, request, batch=batch)
            model = prompt.model
            # The validators read this context from a contextvar, not instructor's
            # context= (which would render the text as a Jinja template; see response_model).
            context = {
                "codebook": codebook,
                "texts": {r.id: self.outgoing_text(r) for r in request.responses},
                "question": request.question_id,
                "response_id": None if batch else ids[0],
            }
            messages = prompt.messages()
            kwargs: dict[str, Any] = {
                "model": self.model,
                "temperature": self.settings.temperature,
            }
            if self.settings.seed is not None:
                kwargs["seed"] = self.settings.seed
            if self.settings.max_tokens:
                kwargs["max_tokens"] = self.settings.max_tokens * (len(ids) if batch else 1)
            token = _CALL_CONTEXT.set(CallContext(ids, "batch" if batch else "single"))
            validation_token = VALIDATION_CONTEXT.set(context)
            try:
                async for attempt in transport_retrying(self.settings):
                    with attempt:
                        parsed, completion = await client.create_with_completion(
                            messages=messages,
                            response_model=model,
                            max_retries=validation_retrying(self.settings),
                            **kwargs,
                        )
            finally:
                VALIDATION_CONTEXT.reset(validation_token)
                _CALL_CONTEXT.reset(token)
        model_version = getattr(completion, "model", None)
        items = list(parsed.items) if batch else [parsed]  # type: ignore[attr-defined]
        return items, model_version, prompt

    def _record_call(
        self,
        request: httpx2.Request,
        response: httpx2.Response | None,
        body: bytes | None,
        started: float,
        context: CallContext | None,
        error: BaseException | None,
    ) -> None:
        duration_ms = (time.perf_counter() - started) * 1000
        payload: dict[str, Any] = {}
        if body and not isinstance(error, BadAnswer):
            try:
                payload = json.loads(body)
            except (ValueError, RecursionError):
                payload = {}
            if not isinstance(payload, dict):
                payload = {}
        usage = payload.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        cost = self.prices.cost(
            self.model, prompt_tokens, completion_tokens, local=self.settings.is_local
        )
        status = response.status_code if response is not None else None
        failed = error is not None or (status is not None and status >= 400)
        self.stats.calls += 1
        self.stats.failed_calls += int(failed)
        self.stats.prompt_tokens += prompt_tokens
        self.stats.completion_tokens += completion_tokens
        if cost is None:
            self.stats.cost_known = False
        else:
            self.stats.cost_usd += cost
        if self.call_logger is None:
            return
        error_text = None
        if error is not None:
            error_text = self._mask_key(f"{type(error).__name__}: {error}")[:MAX_ERROR_CHARS]
        elif failed:
            error_text = self._mask_key(
                f"HTTP {status}: {body[:500].decode('utf-8', 'replace') if body else ''}"
            )
        # The answer's choices are logged: mask a key echoed anywhere in them.
        payload = scrub_value(payload, self.secrets())
        self.call_logger(
            run_id=self.run_id,
            backend=self.backend,
            model=self.model,
            base_url=self.settings.resolved_base_url,
            response_ids=context.response_ids if context else [],
            # Request metadata only: never headers (the key), never the messages (PII).
            request={
                "method": request.method,
                "path": request.url.path,
                "kind": context.kind if context else None,
                "mode": self.settings.resolved_mode,
                "temperature": self.settings.temperature,
                "seed": self.settings.seed,
                "max_tokens": self.settings.max_tokens,
            },
            response={
                "status": status,
                "id": payload.get("id"),
                "model": payload.get("model"),
                "choices": payload.get("choices"),
            }
            if response is not None
            else None,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            duration_ms=round(duration_ms, 1),
            cost_usd=cost,
            error=error_text,
        )


def _memoise_instructor_async_validator_check() -> None:
    # instructor walks the response model's whole type graph (every member of every class
    # in its MRO) about seven times per request to refuse async validators: ~1.5 ms of CPU
    # a call, the largest cost left at high concurrency. A class that passed once passes
    # again, so remember the classes that passed (failures are not cached).
    try:
        from instructor.v2.validation import async_validators
    except ImportError:  # pragma: no cover - another instructor layout: leave it alone
        return
    original = async_validators.reject_async_validators
    if getattr(original, "_coder_memoised", False):
        return
    passed: weakref.WeakSet[type] = weakref.WeakSet()

    def reject_async_validators(response_model: Any) -> None:
        if isinstance(response_model, type) and response_model in passed:
            return
        original(response_model)
        if isinstance(response_model, type):
            passed.add(response_model)

    reject_async_validators._coder_memoised = True  # type: ignore[attr-defined]
    async_validators.reject_async_validators = reject_async_validators


_PLAIN = (str, int, float, bool, type(None))


def _is_plain_json(value: Any, depth: int = 0) -> bool:
    """True for nested dicts/lists of str, numbers, booleans and None (JSON as is)."""
    if isinstance(value, _PLAIN):
        return True
    if depth > 64:
        return False
    if type(value) is dict:
        return all(type(k) is str and _is_plain_json(v, depth + 1) for k, v in value.items())
    if type(value) is list:
        return all(_is_plain_json(item, depth + 1) for item in value)
    return False


def _plain_chat_request_transform() -> None:
    # The openai client walks every request body against its TypedDict annotations
    # (unions of six message types, the tool schema) to rename aliased keys and serialise
    # models and dates: ~0.6 ms of CPU per call, a fifth of the client's cost at
    # concurrency 32. Chat request params have no aliases, so a body of plain JSON needs
    # only the omitted arguments dropped; anything else goes through openai's own transform.
    try:
        from openai._utils import is_given
        from openai.resources.chat.completions import completions as module
        from openai.types.chat import completion_create_params
    except ImportError:  # pragma: no cover - another openai layout: leave it alone
        return
    original = module.async_maybe_transform
    if getattr(original, "_coder_plain", False):
        return
    chat_params = (
        completion_create_params.CompletionCreateParamsNonStreaming,
        completion_create_params.CompletionCreateParamsStreaming,
        completion_create_params.CompletionCreateParams,
    )

    async def async_maybe_transform(data: Any, expected_type: Any) -> Any:
        if expected_type in chat_params and type(data) is dict:
            given = {key: value for key, value in data.items() if is_given(value)}
            if _is_plain_json(given):
                return given
        return await original(data, expected_type)

    async_maybe_transform._coder_plain = True  # type: ignore[attr-defined]
    module.async_maybe_transform = async_maybe_transform  # type: ignore[assignment]


def _as_response_schema(model: type[BaseModel]) -> type[BaseModel]:
    # instructor wraps a plain model in a new ResponseSchema subclass on every call, which
    # defeats its own schema cache (a fresh JSON schema per request). Wrapping once, here,
    # lets a memoised model reuse it.
    try:
        from instructor.v2.core.function_calls import ResponseSchema, response_schema
    except ImportError:  # pragma: no cover - another instructor layout: let it wrap
        return model
    if issubclass(model, ResponseSchema):
        return model
    return response_schema(model)


_WINDOW_KEYS = ("max_model_len", "context_length", "context_window", "n_ctx", "max_context_length")


def _window_in(data: Any) -> int | None:
    """The first context-window figure found in a server's metadata (searched shallowly)."""
    if isinstance(data, dict):
        for key in _WINDOW_KEYS:
            value = data.get(key)
            if isinstance(value, int) and value > 0:
                return value
        for key in ("meta", "default_generation_settings", "settings"):
            found = _window_in(data.get(key))
            if found:
                return found
    return None


async def probe_context_window(base_url: str, model: str, timeout: float = 5.0) -> int | None:
    """The context window a local OpenAI-compatible server reports, if it reports one.

    vLLM lists ``max_model_len`` per model in ``/v1/models``; llama.cpp's server has
    ``n_ctx`` under ``default_generation_settings`` in ``/props`` (and ``meta.n_ctx_train``,
    the training length, in ``/v1/models``, which is not the serving window and is ignored);
    LM Studio ``context_length``. llama-cpp-python reports none: its window is learned from
    its "exceed context window of N" error instead.
    """
    root = base_url.rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    async with httpx2.AsyncClient(timeout=timeout) as http:
        for url in (f"{base_url.rstrip('/')}/models", f"{root}/props"):
            try:
                answer = await http.get(url)
                if answer.status_code != 200 or len(answer.content) > 2**20:
                    continue
                data = answer.json()
            except (httpx2.HTTPError, ValueError):
                continue
            entries = data.get("data") if isinstance(data, dict) else None
            if isinstance(entries, list):
                matching = [e for e in entries if isinstance(e, dict) and e.get("id") == model]
                for entry in matching or entries[:1]:
                    found = _window_in({k: v for k, v in entry.items() if k != "meta"})
                    if found:
                        return found
                continue
            found = _window_in(data)
            if found:
                return found
    return None


def describe_error(error: BaseException) -> str:
    """A one-paragraph error for the failed proposal row (attempts and last cause)."""
    attempts = getattr(error, "n_attempts", None)
    cause = error.__cause__ or error
    # The openai client says "Connection error." for anything its transport raised; the
    # transport's own reason (a deadline, a size cap, an HTML page) is the useful part.
    seen: set[int] = set()
    item: BaseException | None = error
    while item is not None and id(item) not in seen:
        seen.add(id(item))
        if isinstance(item, BadAnswer):
            cause = item
            break
        item = item.__cause__ or item.__context__
    text = f"{type(cause).__name__}: {cause}"
    if attempts:
        text = f"after {attempts} attempt(s): {text}"
    return text[:MAX_ERROR_CHARS]
