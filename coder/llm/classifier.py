"""The LLM backend: instructor over any OpenAI-compatible endpoint.

``LLMClassifier.propose_iter`` is the working path: an async generator that yields a
:class:`ProposalResult` per response as soon as it is known, so the caller can commit
each one at once (nothing is lost if the process dies). ``propose`` is the synchronous
form the :class:`coder.backends.base.Classifier` protocol asks for.

Its parts, one module each: ``transport`` (HTTP attempts guarded and logged),
``request_prompt`` (what a request sends), ``prompt_choice`` (shortlist and examples),
``context_window``, ``planning``, ``retry`` and ``patches`` (speed patches of third parties).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from pydantic import BaseModel

from coder import event_loop
from coder.backends.base import ProposalResult
from coder.llm.client import instructor_client
from coder.llm.config import LLMSettings, build_settings
from coder.llm.context_window import (
    CONTEXT_SAFETY,
    ContextTooSmall,
    ContextWindow,
    probe_context_window,
)
from coder.llm.examples import ExamplePool
from coder.llm.gc_pauses import frozen_heap
from coder.llm.planning import Estimate, PlannedRequest, estimate_run, plan_requests
from coder.llm.pricing import PriceTable
from coder.llm.prompt_choice import PromptChoice
from coder.llm.proxy import ProxyRoutes
from coder.llm.request_prompt import PromptParts, RequestPrompt, fit_prompt
from coder.llm.response_model import VALIDATION_CONTEXT, to_proposal
from coder.llm.retry import describe_error, transport_retrying, validation_retrying
from coder.llm.secret_screen import scrub_result_fast
from coder.llm.secrets import scrub
from coder.llm.shortlist import Cut, Shortlister
from coder.llm.transport import CALL_CONTEXT, CallContext, CallStats
from coder.redact import redact
from schemas import Codebook, Response

__all__ = [
    "CONTEXT_SAFETY",
    "CallContext",
    "CallStats",
    "ContextTooSmall",
    "Estimate",
    "LLMClassifier",
    "describe_error",
    "probe_context_window",
]

#: the name callers (tests, benchmarks) know a planned request by
_Planned = PlannedRequest

CallLogger = Callable[..., Any]


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
        # per run, not once per call.
        self.parts = PromptParts()
        self._api_key: str | None = None
        self._proxy_routes: ProxyRoutes | None = None
        self._clean: weakref.WeakValueDictionary[int, ProposalResult] = (
            weakref.WeakValueDictionary()
        )
        self.model_store = model_store
        self.choice = PromptChoice(self.settings, model_store, scorer, example_pool)
        #: the context window: the setting, else what the server reports/says
        self.window = ContextWindow(self.settings.context_window)
        self._window_probed = self.window.size is not None

    @property
    def context_window(self) -> int | None:
        """The context window in tokens (None: unknown)."""
        return self.window.size

    @property
    def _token_ratio(self) -> float:
        return self.window.token_ratio

    @property
    def _scorer(self) -> Any:
        return self.choice.scorer_override

    @property
    def _example_pool(self) -> ExamplePool | None:
        return self.choice.pool_override

    @_example_pool.setter
    def _example_pool(self, pool: ExamplePool | None) -> None:
        self.choice.pool_override = pool

    def secrets(self) -> tuple[str, ...]:
        """The key(s) this classifier sends (and a proxy's password), to be scrubbed from
        whatever is stored."""
        key = self._api_key or os.environ.get(self.settings.api_key_env)
        proxy = self._proxy_routes.secrets() if self._proxy_routes is not None else ()
        return ((key,) if key else ()) + proxy

    def proxy_routes(self) -> ProxyRoutes:
        """The proxies model calls go through (--proxy, else the environment), read once."""
        if self._proxy_routes is None:
            self._proxy_routes = ProxyRoutes.resolve(self.settings.proxy)
        return self._proxy_routes

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
        clean = scrub_result_fast(result, self.secrets())
        self._clean[id(clean)] = clean
        return clean

    # --- shortlist and examples (coder.llm.prompt_choice) ------------------------------
    @property
    def scorer(self) -> Any:
        """The embedded classifier that ranks codes and embeds examples."""
        return self.choice.scorer

    def shortlister(self, codebook: Codebook) -> Shortlister | None:
        """The shortlister for ``codebook`` (None: off, or every code fits the cut)."""
        return self.choice.shortlister(codebook)

    def shortlist_cut(self, codebook: Codebook) -> Cut:
        """The shortlist's cut (option, else reviewed answers, else the default)."""
        return self.choice.shortlist_cut(codebook)

    def calibrate_shortlist(
        self, responses: Sequence[Response], gold: Sequence[Sequence[str]], codebook: Codebook
    ) -> Cut | None:
        """Choose the cut on answers whose codes are known; None if too few."""
        return self.choice.calibrate_shortlist(responses, gold, codebook)

    def fit(self, examples: Sequence[Any], codebook: Codebook) -> None:
        """Learn from labelled answers the way an LLM can: they become the pool of prompt
        examples and choose the shortlist's cut (the model's weights do not change).

        ``examples`` are :class:`coder.embedded.training.LabelledExample`-like objects (text,
        question, themes, stance, relevant, id), as ``coder eval`` passes a gold set's
        training part; in a project the reviewed answers play this part on their own.
        """
        self.choice.fit(examples, codebook)

    def example_pool(self) -> ExamplePool | None:
        """Reviewed answers to show as examples (None when --examples 0 or none exist)."""
        return self.choice.example_pool()

    def examples_wanted(self) -> int:
        """Examples per request: --examples, else DEFAULT_EXAMPLES when reviewed answers exist."""
        return self.choice.examples_wanted()

    @property
    def prepare(self) -> Callable[[Sequence[Response], Codebook], None] | None:
        """The pipeline's hook, called with a sample of the project's answers so the ranking
        model learns its question prior from them; None when shortlisting is off (the
        pipeline then neither reads the sample nor loads the embedded model)."""
        return self.choice.prepare_shortlist if self.settings.shortlist else None

    def _rank(self, responses: Sequence[Response], codebook: Codebook) -> None:
        self.choice.rank(responses, codebook)

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
        system = self.parts.system_prompt(codebook, response.question)
        key = {
            "backend": self.backend,
            "model": self.model,
            "params": self.settings.params(),
            "template_hash": system.template_hash,
            "system_prompt_hash": system.hash,
            "codebook_hash": self.parts.memoised(codebook, ("hash",), codebook.content_hash),
            "question": response.question,
            "text": self.outgoing_text(response),
        }
        # The shortlist and examples are functions of the text, the ranking model and the
        # reviewed answers: their settings (not the per-response result) join the key.
        prompt_choice = self.choice.cache_key(codebook)
        if prompt_choice is not None:
            key["prompt_choice"] = prompt_choice
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()

    # --- planning and estimates ------------------------------------------------------
    def plan(self, responses: Sequence[Response]) -> list[PlannedRequest]:
        """Group responses into requests: by question, token-aware, ``batch_size`` at most."""
        return plan_requests(responses, self.settings)

    def estimate(self, responses: Sequence[Response], codebook: Codebook) -> Estimate:
        """Calls, tokens and cost a run over ``responses`` would take (no network)."""
        self._rank(responses, codebook)
        return estimate_run(
            self.plan(responses),
            lambda request: self._prompt(codebook, request, batch=len(request.responses) > 1),
            self.prices,
            self.settings,
        )

    # --- the protocol ----------------------------------------------------------------
    def propose(self, responses: Sequence[Response], codebook: Codebook) -> list[ProposalResult]:
        """Propose labels for ``responses`` (one result per response, same order)."""

        async def collect() -> list[ProposalResult]:
            return [result async for result in self.propose_iter(responses, codebook)]

        results = {result.response_id: result for result in event_loop.run(collect())}
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
                with frozen_heap():
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
        self._api_key = self.settings.api_key()
        self.stats.event_loop = type(asyncio.get_running_loop()).__module__.partition(".")[0]
        return instructor_client(self, self._api_key)

    def _messages(self, codebook: Codebook, request: PlannedRequest) -> list[dict[str, str]]:
        return self._prompt(codebook, request, batch=len(request.responses) > 1).messages()

    def _prompt(self, codebook: Codebook, request: PlannedRequest, *, batch: bool) -> RequestPrompt:
        """The request's prompt, fitted to the context window (see ``fit_prompt``)."""
        return fit_prompt(
            self.parts,
            self.choice,
            self.window,
            codebook,
            request.question_id,
            request.responses,
            batch=batch,
            max_tokens=self.settings.max_tokens,
            outgoing=self.outgoing_text_of,
        )

    def outgoing_text_of(self, text: str) -> str:
        """Any text sent to the endpoint (e.g. an example): redacted unless it is local."""
        return redact(text).text if self.redacts else text

    async def _probe_context_window(self, client: Any) -> None:
        """Ask a local server for its context window (llama.cpp's /props n_ctx, vLLM's
        max_model_len in /v1/models), once; any failure leaves it unknown."""
        if self._window_probed:
            return
        self._window_probed = True
        if not self.settings.is_local:
            return
        self.window.size = await probe_context_window(
            self.settings.resolved_base_url, self.model, routes=self.proxy_routes()
        )

    def _learn_window(self, error: BaseException) -> bool:
        """True when ``error`` names a smaller window (taken) or a prompt we under-counted."""
        return self.window.learn(error)

    def _provenance(
        self, response: Response, codebook: Codebook, prompt: RequestPrompt | None = None
    ) -> dict[str, Any]:
        system = prompt.system if prompt else self.parts.system_prompt(codebook, response.question)
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
        self, client: Any, semaphore: asyncio.Semaphore, codebook: Codebook, request: PlannedRequest
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
                results[response_id] = self._answered(
                    response, item, model_version, codebook, prompt
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
        request = PlannedRequest(response.question, [response])
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
            return self._answered(response, items[0], model_version, codebook, prompt)
        except asyncio.CancelledError:
            raise
        except ContextTooSmall as error:
            return self._failed(response, codebook, f"ContextTooSmall: {error}")
        except Exception as error:  # noqa: BLE001 - stored as a failed proposal, retried next run
            return self._failed(response, codebook, self._mask_key(describe_error(error)))

    def _answered(
        self,
        response: Response,
        item: BaseModel,
        model_version: str | None,
        codebook: Codebook,
        prompt: RequestPrompt,
    ) -> ProposalResult:
        """The proposal for ``response`` from one parsed answer item (key scrubbed)."""
        return self.scrubbed(
            ProposalResult(
                response_id=response.id,
                proposal=to_proposal(item, response.id, response.question),
                model_version=model_version,
                **self._provenance(response, codebook, prompt),
            )
        )

    def _failed(self, response: Response, codebook: Codebook, error: str) -> ProposalResult:
        """A failed proposal for ``response`` (stored, and retried on the next run)."""
        return ProposalResult(
            response_id=response.id,
            proposal=None,
            error=error,
            **self._provenance(response, codebook),
        )

    async def _call(
        self,
        client: Any,
        semaphore: asyncio.Semaphore,
        codebook: Codebook,
        request: PlannedRequest,
        *,
        batch: bool,
    ) -> tuple[list[BaseModel], str | None, RequestPrompt]:
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
            token = CALL_CONTEXT.set(CallContext(ids, "batch" if batch else "single"))
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
                CALL_CONTEXT.reset(token)
        model_version = getattr(completion, "model", None)
        items = list(parsed.items) if batch else [parsed]  # type: ignore[attr-defined]
        return items, model_version, prompt
