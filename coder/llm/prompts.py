"""Rendering the prompt templates, and the hashes that version them.

The templates live in the ``prompts`` package as Jinja2 files. Every proposal stores
``prompt_template_hash`` (the template files' content) and ``system_prompt_hash`` (the
rendered system prompt: template + codebook + question), so a proposal can always be
traced to the exact instructions the model saw.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2

from schemas import Codebook, Question, Response

TEMPLATE_PACKAGE = "prompts"
SYSTEM_TEMPLATE = "system.j2"
THEMES_TEMPLATE = "themes.j2"
USER_TEMPLATE = "user.j2"
USER_BATCH_TEMPLATE = "user_batch.j2"
TEMPLATE_FILES = (SYSTEM_TEMPLATE, THEMES_TEMPLATE, USER_TEMPLATE, USER_BATCH_TEMPLATE)
#: a shortlisted theme's one example is cut to this many characters
SHORTLIST_EXAMPLE_CHARS = 400


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    # StrictUndefined: a typo in a template fails loudly instead of rendering "".
    return jinja2.Environment(
        loader=jinja2.PackageLoader(TEMPLATE_PACKAGE, "."),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )


def template_source(name: str) -> str:
    return (resources.files(TEMPLATE_PACKAGE) / name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def template_hash() -> str:
    """Hash of all template files together: any edit is a new prompt version."""
    digest = hashlib.sha256()
    for name in TEMPLATE_FILES:
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(template_source(name).encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class SystemPrompt:
    """A rendered system prompt for one question, with its hashes."""

    text: str
    question_id: str | None
    template_hash: str
    hash: str


def render_static_prompt(codebook: Codebook, question_id: str | None) -> str:
    """The static part of the system prompt for ``question_id``: the instructions, the
    question, stance and relevance rules (the same for every response to the question)."""
    question: Question | None = None
    if question_id is not None:
        try:
            question = codebook.question(question_id)
        except KeyError:
            question = Question(id=question_id, text=question_id)
    others = [q for q in codebook.questions if question is None or q.id != question.id]
    text = (
        _environment()
        .get_template(SYSTEM_TEMPLATE)
        .render(
            codebook=codebook,
            question=question,
            other_questions=others if len(codebook.questions) > 1 else [],
        )
    )
    return text.strip() + "\n"


def render_themes_part(
    codebook: Codebook,
    question_id: str | None,
    theme_ids: Sequence[str] | None = None,
    examples: Sequence[dict[str, Any]] = (),
    *,
    show_theme_examples: bool = True,
) -> str:
    """The per-response part: the themes (``theme_ids``, else every theme of the question)
    and examples of reviewed answers (:func:`coder.llm.examples.render_examples`).

    The whole codebook shows up to three of each theme's own examples; a shortlist shows
    one, cut to ``SHORTLIST_EXAMPLE_CHARS`` (a codebook's examples may be whole answers:
    NHS's are three-quarters of its prompt)."""
    applicable = codebook.themes_for(question_id)
    if theme_ids is None:
        themes = applicable
    else:
        wanted = set(theme_ids)
        themes = [theme for theme in applicable if theme.id in wanted]
    text = (
        _environment()
        .get_template(THEMES_TEMPLATE)
        .render(
            themes=themes,
            total_themes=len(applicable),
            shortlisted=len(themes) < len(applicable),
            examples=list(examples),
            theme_examples=(
                0 if not show_theme_examples else 1 if len(themes) < len(applicable) else 3
            ),
            example_chars=SHORTLIST_EXAMPLE_CHARS if len(themes) < len(applicable) else None,
        )
    )
    return text.strip() + "\n"


def compose_system_prompt(static: str, part: str, question_id: str | None) -> SystemPrompt:
    """The system prompt sent: the static part first (provider prompt caching), then the
    per-response part; ``hash`` is the SHA-256 of exactly that text."""
    text = static + "\n" + part
    return SystemPrompt(
        text=text, question_id=question_id, template_hash=template_hash(), hash=sha256(text)
    )


def render_system_prompt(
    codebook: Codebook,
    question_id: str | None,
    theme_ids: Sequence[str] | None = None,
    examples: Sequence[dict[str, Any]] = (),
    *,
    show_theme_examples: bool = True,
) -> SystemPrompt:
    """The system prompt for a response to ``question_id``: the whole codebook's themes
    for the question unless ``theme_ids`` shortlists them."""
    return compose_system_prompt(
        render_static_prompt(codebook, question_id),
        render_themes_part(
            codebook, question_id, theme_ids, examples, show_theme_examples=show_theme_examples
        ),
        question_id,
    )


def render_user_prompt(response: Response, text: str) -> str:
    """The user message for one response (``text`` may be the redacted text)."""
    return _environment().get_template(USER_TEMPLATE).render(response=response, text=text).strip()


def render_batch_prompt(
    codebook: Codebook, question_id: str | None, items: list[dict[str, Any]]
) -> str:
    """The user message for several responses to one question: ``items`` of {id, text}."""
    question = None
    if question_id is not None and question_id in codebook.question_ids:
        question = codebook.question(question_id)
    return (
        _environment()
        .get_template(USER_BATCH_TEMPLATE)
        .render(question=question, items=items)
        .strip()
    )
