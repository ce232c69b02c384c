"""What one request sends: the prompt (static instructions, the shortlisted themes,
examples of reviewed answers, then the answer or answers) and the response model, fitted
to the model's context window.

The system prompt is the static instructions first, so provider prompt caching applies,
then the per-answer themes and examples. Rendered parts and response models are built
once per run and reused (:class:`PromptParts`): rebuilding a pydantic model and its JSON
schema for every request cost ~10 ms of CPU each and capped throughput at high concurrency.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from coder.llm import prompts
from coder.llm.context_window import CONTEXT_SAFETY, ContextTooSmall, ContextWindow
from coder.llm.examples import Example, render_examples
from coder.llm.patches import as_response_schema
from coder.llm.pricing import estimate_tokens
from coder.llm.prompt_choice import PromptChoice
from coder.llm.response_model import build_batch_model, build_item_model
from coder.llm.shortlist import Shortlister
from schemas import Codebook, Response

#: response models (and their JSON schemas) kept per run, one per distinct shortlist
MODEL_CACHE_SIZE = 4096


@dataclass(frozen=True)
class RequestPrompt:
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
        """The chat messages: the system prompt, then the user prompt."""
        return [
            {"role": "system", "content": self.system.text},
            {"role": "user", "content": self.user},
        ]


def _bounded_put(
    cache: OrderedDict[tuple[Any, ...], Any], key: tuple[Any, ...], value: Any
) -> None:
    cache[key] = value
    if len(cache) > MODEL_CACHE_SIZE:
        cache.popitem(last=False)


class PromptParts:
    """Rendered prompt parts and response models, built once per codebook and reused."""

    def __init__(self) -> None:
        # Keyed by the codebook's identity; each entry holds the codebook so its id cannot
        # be reused by another one.
        self._memo: dict[tuple[Any, ...], tuple[Codebook, Any]] = {}
        # Per-shortlist response models and system prompts, bounded: a run over 100,000
        # answers may have thousands of distinct shortlists.
        self._models: OrderedDict[tuple[Any, ...], tuple[type[BaseModel], int]] = OrderedDict()
        self._systems: OrderedDict[tuple[Any, ...], tuple[Codebook, prompts.SystemPrompt]] = (
            OrderedDict()
        )

    def memoised(self, codebook: Codebook, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """``compute()`` once per codebook and ``key``."""
        full_key = (id(codebook), *key)
        hit = self._memo.get(full_key)
        if hit is None or hit[0] is not codebook:
            hit = (codebook, compute())
            self._memo[full_key] = hit
        return hit[1]

    def system_prompt(self, codebook: Codebook, question_id: str | None) -> prompts.SystemPrompt:
        """The question's full system prompt (every code), as the cache key hashes it."""
        return self.memoised(  # type: ignore[no-any-return]
            codebook,
            ("system", question_id),
            lambda: prompts.render_system_prompt(codebook, question_id),
        )

    def static_prompt(self, codebook: Codebook, question_id: str | None) -> str:
        """The static instructions that open every system prompt of the question."""
        return self.memoised(  # type: ignore[no-any-return]
            codebook,
            ("static", question_id),
            lambda: prompts.render_static_prompt(codebook, question_id),
        )

    def item_model(
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
            else as_response_schema(build_item_model(codebook, question_id, None, theme_ids))
        )
        model._coder_codebook = codebook  # type: ignore[attr-defined]
        entry = (model, estimate_tokens(json.dumps(model.model_json_schema())))
        # A batch's model names its ids: it is used once, so it is not kept.
        if response_ids is None:
            _bounded_put(self._models, key, entry)
        return entry

    def system_for(
        self,
        codebook: Codebook,
        question_id: str | None,
        theme_ids: tuple[str, ...] | None,
        examples: list[Example],
        example_texts: list[str],
        show_theme_examples: bool,
    ) -> prompts.SystemPrompt:
        """The system prompt with these themes and examples (``example_texts``: as sent)."""
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
            render_examples(examples, example_texts),
            show_theme_examples=show_theme_examples,
        )
        system = prompts.compose_system_prompt(
            self.static_prompt(codebook, question_id), part, question_id
        )
        if not examples:
            _bounded_put(self._systems, key, (codebook, system))
        return system


def user_prompt(
    codebook: Codebook,
    question_id: str | None,
    responses: Sequence[Response],
    outgoing: Callable[[Response], str],
) -> str:
    """The user message: one answer, or a batch of them with their ids."""
    if len(responses) == 1:
        return prompts.render_user_prompt(responses[0], outgoing(responses[0]))
    return prompts.render_batch_prompt(
        codebook, question_id, [{"id": r.id, "text": outgoing(r)} for r in responses]
    )


@dataclass
class _Trim:
    """What a prompt still carries, and what was given up to fit the window."""

    examples: list[Example]
    show_theme_examples: bool = True
    #: the shortlist's size once halved (None: the cut's own size)
    size: int | None = None
    fitted: list[str] = field(default_factory=list)

    def give_up_one(self, shortlister: Shortlister | None, current: int, applicable: int) -> bool:
        """Give up, in turn, what helps least; False when nothing is left to give up."""
        if self.examples:
            self.examples = []
            self.fitted.append("examples")
        elif self.show_theme_examples:
            self.show_theme_examples = False
            self.fitted.append("theme examples")
        elif shortlister is not None and current > 1:
            self.size = max(1, min(current, shortlister.cut.size_for(applicable)) // 2)
            self.fitted.append(f"shortlist {self.size}")
        else:
            return False
        return True


def _shortlisted(
    shortlister: Shortlister | None,
    responses: Sequence[Response],
    codebook: Codebook,
    trim: _Trim,
    applicable: int,
) -> tuple[str, ...] | None:
    """The codes the prompt offers, in codebook order (None: every code of the question).

    The examples' codes join the shortlist, so an example never shows an unoffered code.
    """
    if shortlister is None:
        return None
    extra = [code for example in trim.examples for code in example.codes()]
    chosen: list[str] = []
    for response in responses:
        for code in shortlister.shortlist(response, codebook, size=trim.size, extra=extra):
            if code not in chosen:
                chosen.append(code)
    if len(chosen) >= applicable:
        return None
    order = {t.id: i for i, t in enumerate(codebook.themes)}
    return tuple(sorted(chosen, key=order.__getitem__))


def fit_prompt(
    parts: PromptParts,
    choice: PromptChoice,
    window: ContextWindow,
    codebook: Codebook,
    question_id: str | None,
    responses: Sequence[Response],
    *,
    batch: bool,
    max_tokens: int | None,
    outgoing: Callable[[str], str],
) -> RequestPrompt:
    """The request's prompt, fitted to the context window when one is known (examples
    dropped first, then the themes' own examples, then the shortlist halved), else
    :class:`ContextTooSmall`. ``outgoing`` turns a text into what is sent (redaction)."""
    shortlister = choice.shortlister(codebook)
    trim = _Trim(examples=choice.examples_for(responses, codebook))
    user = user_prompt(codebook, question_id, responses, lambda r: outgoing(r.text))
    ids = tuple(r.id for r in responses) if batch else None
    applicable = len(codebook.themes_for(question_id))
    while True:
        theme_ids = _shortlisted(shortlister, responses, codebook, trim, applicable)
        system = parts.system_for(
            codebook,
            question_id,
            theme_ids,
            trim.examples,
            [outgoing(e.text) for e in trim.examples],
            trim.show_theme_examples,
        )
        model, schema_tokens = parts.item_model(codebook, question_id, theme_ids, ids)
        tokens = estimate_tokens(system.text) + estimate_tokens(user) + schema_tokens
        budget = window.budget(len(responses), max_tokens)
        if budget is None or window.needed(tokens) <= budget:
            return RequestPrompt(
                system=system,
                user=user,
                model=model,
                theme_ids=theme_ids,
                example_ids=tuple(e.response_id for e in trim.examples),
                tokens=tokens,
                fitted=tuple(trim.fitted),
            )
        current = len(theme_ids) if theme_ids is not None else applicable
        if not trim.give_up_one(shortlister, current, applicable):
            raise ContextTooSmall(
                f"the prompt needs about {round(window.needed(tokens))}"
                f" tokens (with a {CONTEXT_SAFETY:g}x margin) and the answer "
                f"{window.answer_reserve(len(responses), max_tokens)} more, but the model's "
                f"context window is {window.size} tokens"
                + (
                    " even with the shortlist cut to one code"
                    if shortlister is not None
                    else "; shortlisting is off (drop --no-shortlist)"
                )
                + "; a larger context window (--context-window) or a shorter response needed"
            )
