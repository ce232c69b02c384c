"""Rendering the prompt templates, and the hashes that version them.

The templates live in the ``prompts`` package as Jinja2 files. Every proposal stores
``prompt_template_hash`` (the template files' content) and ``system_prompt_hash`` (the
rendered system prompt: template + codebook + question), so a proposal can always be
traced to the exact instructions the model saw.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2

from schemas import Codebook, Question, Response

TEMPLATE_PACKAGE = "prompts"
SYSTEM_TEMPLATE = "system.j2"
USER_TEMPLATE = "user.j2"
USER_BATCH_TEMPLATE = "user_batch.j2"
TEMPLATE_FILES = (SYSTEM_TEMPLATE, USER_TEMPLATE, USER_BATCH_TEMPLATE)


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


def render_system_prompt(codebook: Codebook, question_id: str | None) -> SystemPrompt:
    """The system prompt for responses to ``question_id``: one rendered codebook shared by all."""
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
            themes=codebook.themes_for(question_id),
        )
    )
    return SystemPrompt(
        text=text.strip() + "\n",
        question_id=question_id,
        template_hash=template_hash(),
        hash=sha256(text.strip() + "\n"),
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
