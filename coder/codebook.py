"""Load, check and convert codebooks.

Formats read:
- coder's own YAML or JSON (``schemas.Codebook``; JSON Schema in ``schemas/codebook.schema.json``);
- the gold-set ``codebook.json`` format of ../shared/gold/README.md (``codes`` with
  ``group``), so gold sets need no conversion.

:func:`check_codebook_data` reports every problem at once, each with the file and the
path to the bad field, because an analyst fixing a codebook wants the whole list, not
one error per run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from coder.decoding import bom_encoding, decode_or_raise
from coder.errors import CodebookError
from coder.jsonl import find_problem, loads_checked
from schemas import Codebook, RelevanceRule, StanceScale, StanceValue, Theme

if TYPE_CHECKING:
    from coder.embedded.encoder import Encoder

BUILTIN_CODEBOOK = "example_codebook.yaml"


def builtin_codebook_path() -> Path:
    """Path of the built-in example codebook (the seed's nine hypotheses + question 10)."""
    return Path(str(resources.files("coder.data").joinpath(BUILTIN_CODEBOOK)))


def read_codebook_file(path: Path) -> Any:
    """Parse a YAML or JSON file into plain data, with a clear error on bad syntax.

    Hostile content is a :class:`CodebookError` too, never a traceback: nesting deeper than
    Python's parsers go, integers longer than Python converts, lone surrogates, and YAML
    aliases that expand to millions of values (see :func:`coder.jsonl.find_problem`).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CodebookError(str(path), ["file not found"]) from None
    except OSError as error:
        raise CodebookError(str(path), [f"cannot read the file: {error.strerror or error}"]) from None
    encoding = bom_encoding(data) or "utf-8"
    text = decode_or_raise(
        data, encoding,
        lambda line, column, byte, _: f"line {line}, column {column}: not {encoding} text (byte 0x{byte:02x})",
        lambda message: CodebookError(str(path), [message]),
    )
    try:
        if path.suffix.lower() == ".json":
            parsed = loads_checked(text)
        else:
            parsed = yaml.safe_load(text)
    except RecursionError:
        raise CodebookError(str(path), ["nested too deeply to read (thousands of levels)"]) from None
    except json.JSONDecodeError as error:
        raise CodebookError(
            str(path), [f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"]
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise CodebookError(str(path), [f"invalid YAML{where}: {problem}"]) from None
    except ValueError as error:
        # loads_checked's own messages; or PyYAML's int() of a number longer than Python
        # converts (sys.get_int_max_str_digits).
        message = str(error)
        if "integer string conversion" in message:
            message = (f"a number with more than {sys.get_int_max_str_digits()} digits; "
                       "write it in quotes if it is meant as text")
        raise CodebookError(str(path), [message]) from None
    problem = find_problem(parsed)
    if problem is not None:
        raise CodebookError(str(path), [problem])
    return parsed


def is_gold_format(data: Any) -> bool:
    """True for the gold-set ``codebook.json`` shape (``codes`` instead of ``themes``)."""
    return isinstance(data, dict) and "codes" in data and "themes" not in data


def from_gold_format(data: dict[str, Any]) -> dict[str, Any]:
    """Convert gold ``codebook.json`` data to coder's codebook shape."""
    stance = data.get("stance")
    relevance = data.get("relevance")
    codes = data.get("codes") or []
    if not isinstance(codes, list):
        # Left as it is, for the checker to report ('themes: Input should be a valid list').
        return {**data, "name": data.get("name") or "gold codebook", "themes": codes, "codes": None}
    themes: list[Any] = []
    for code in codes:
        if not isinstance(code, dict):
            themes.append(code)  # left for the checker to report
            continue
        group = code.get("group")
        themes.append(
            {
                "id": code.get("id"),
                "label": code.get("label") or code.get("id"),
                # Some published codes have no definition; their label is the best
                # definition there is, and a gold set must load without conversion.
                "definition": code.get("definition") or code.get("label") or code.get("id") or "",
                "examples": list(code.get("examples") or []),
                "category": code.get("category"),
                # A gold code with a group applies only to items of that group; in the
                # gold sets a group is a question id (ArgKP: the motion).
                "questions": [group] if group else None,
            }
        )
    raw_questions = data.get("questions") or []
    questions = [
        {"id": q.get("id"), "text": q.get("text") or q.get("id")} if isinstance(q, dict) else q
        for q in (raw_questions if isinstance(raw_questions, list) else [])
    ]
    # Groups that are not listed as questions still need to exist for the check.
    known = {q.get("id") for q in questions if isinstance(q, dict)}
    for theme in themes:
        for group in (theme.get("questions") or []) if isinstance(theme, dict) else []:
            if group not in known:
                questions.append({"id": group, "text": group})
                known.add(group)
    converted: dict[str, Any] = {
        "name": data.get("name") or "gold codebook",
        "description": data.get("description") or "",
        "questions": questions,
        "themes": themes,
        "stance": _gold_part(lambda raw: StanceScale(
            values=[StanceValue(id=value) for value in raw.get("values", [])],
            ordered=True,
            description=raw.get("description") or "",
        ).model_dump(), stance),
        "relevance": _gold_part(
            lambda raw: RelevanceRule(description=raw.get("description") or "").model_dump(), relevance
        ),
    }
    return converted


def _gold_part(build: Callable[[dict[str, Any]], dict[str, Any]], raw: Any) -> Any:
    """A converted gold stance/relevance block; a malformed one is passed on as it is, so
    the checker reports it with its field path instead of the conversion failing."""
    if not isinstance(raw, dict):
        return None
    try:
        return build(raw)
    except (ValidationError, TypeError):
        return raw


def _loc(loc: tuple[Any, ...], data: Any) -> str:
    """Render a pydantic error location as ``themes[3] (id 'x').definition``."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict):
                item_id = node[item].get("id")
                if item_id is not None:
                    label += f" (id {item_id!r})"
                node = node[item]
            else:
                node = None
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


def check_codebook_data(data: Any) -> list[str]:
    """Every problem in codebook data (coder's shape), as 'path: message' strings."""
    if not isinstance(data, dict):
        return ["(top level): a codebook must be a mapping with 'name', 'questions' and 'themes'"]
    problems: list[str] = []
    try:
        Codebook.model_validate(data)
    except ValidationError as error:
        for item in error.errors():
            problems.append(f"{_loc(tuple(item['loc']), data)}: {item['msg']}")

    raw_questions, raw_themes = data.get("questions"), data.get("themes")
    questions: list[Any] = raw_questions if isinstance(raw_questions, list) else []
    themes: list[Any] = raw_themes if isinstance(raw_themes, list) else []
    question_ids = _check_questions(questions, problems)
    theme_ids, parents = _check_themes(themes, question_ids, problems)
    _check_parents(themes, theme_ids, problems)
    _check_parent_cycles(parents, theme_ids, problems)
    _check_stance_values(data.get("stance"), problems)
    return problems


def _check_questions(questions: list[Any], problems: list[str]) -> dict[str, int]:
    """Duplicate ids and empty texts of the questions; returns id -> first index."""
    question_ids: dict[str, int] = {}
    for index, question in enumerate(questions):
        if not isinstance(question, dict):
            continue
        qid = question.get("id")
        if qid in question_ids:
            problems.append(
                f"questions[{index}] (id {qid!r}).id: duplicate question id (first at questions[{question_ids[qid]}])"
            )
        elif qid is not None:
            question_ids[qid] = index
        if isinstance(question.get("text"), str) and not question["text"].strip():
            problems.append(f"questions[{index}] (id {qid!r}).text: empty question text")

    return question_ids


def _check_themes(
    themes: list[Any], question_ids: dict[str, int], problems: list[str]
) -> tuple[dict[str, int], dict[str, str]]:
    """Duplicate ids, empty definitions and unknown questions of the themes; returns
    (id -> first index, id -> parent id)."""
    theme_ids: dict[str, int] = {}
    parents: dict[str, str] = {}
    for index, theme in enumerate(themes):
        if not isinstance(theme, dict):
            continue
        tid = theme.get("id")
        where = f"themes[{index}] (id {tid!r})"
        if tid in theme_ids:
            problems.append(f"{where}.id: duplicate theme id (first at themes[{theme_ids[tid]}])")
        elif tid is not None:
            theme_ids[tid] = index
        if isinstance(theme.get("definition"), str) and not theme["definition"].strip():
            problems.append(f"{where}.definition: empty definition")
        if isinstance(theme.get("parent"), str) and isinstance(tid, str):
            parents[tid] = theme["parent"]
        for qindex, qid in enumerate(theme.get("questions") or []):
            if qid not in question_ids:
                problems.append(
                    f"{where}.questions[{qindex}]: applies to unknown question {qid!r}"
                )

    return theme_ids, parents


def _check_parents(themes: list[Any], theme_ids: dict[str, int], problems: list[str]) -> None:
    """Parents that are no theme, and themes that are their own parent."""
    for index, theme in enumerate(themes):
        if not isinstance(theme, dict):
            continue
        tid, parent = theme.get("id"), theme.get("parent")
        if isinstance(parent, str) and parent not in theme_ids:
            problems.append(f"themes[{index}] (id {tid!r}).parent: unknown parent theme {parent!r}")
        if parent == tid and tid is not None:
            problems.append(f"themes[{index}] (id {tid!r}).parent: a theme cannot be its own parent")


def _check_parent_cycles(parents: dict[str, str], theme_ids: dict[str, int], problems: list[str]) -> None:
    """Each cycle of parents (a -> b -> a), reported once."""
    reported_cycles: set[frozenset[str]] = set()
    for start in parents:
        seen: list[str] = []
        node: str | None = start
        while node is not None and node in parents and node not in seen:
            seen.append(node)
            node = parents.get(node)
        if node is not None and node in seen and len(seen) > 1:
            cycle = seen[seen.index(node) :]
            key = frozenset(cycle)
            if key not in reported_cycles and len(cycle) > 1:
                reported_cycles.add(key)
                chain = " -> ".join([*cycle, node])
                problems.append(
                    f"themes[{theme_ids[cycle[0]]}] (id {cycle[0]!r}).parent: parent cycle {chain}"
                )


def _check_stance_values(stance: Any, problems: list[str]) -> None:
    """Duplicate stance value ids."""
    if isinstance(stance, dict) and isinstance(stance.get("values"), list):
        seen_values: set[Any] = set()
        for index, value in enumerate(stance["values"]):
            vid = value.get("id") if isinstance(value, dict) else None
            if vid in seen_values:
                problems.append(f"stance.values[{index}].id: duplicate stance value {vid!r}")
            seen_values.add(vid)


def load_codebook(path: str | Path) -> Codebook:
    """Load and check a codebook file (YAML, JSON, or gold codebook.json).

    Raises :class:`CodebookError` listing every problem, with the file name.
    """
    path = Path(path)
    data = read_codebook_file(path)
    if is_gold_format(data):
        data = from_gold_format(data)
    problems = check_codebook_data(data)
    if problems:
        raise CodebookError(str(path), problems)
    return Codebook.model_validate(data)


def codebook_to_yaml(codebook: Codebook) -> str:
    """Serialise a codebook as readable YAML (None fields left out)."""
    data = codebook.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def codebook_json_schema() -> dict[str, Any]:
    """The JSON Schema of the codebook file format, generated from the Pydantic model."""
    schema = Codebook.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "coder codebook"
    return schema


# --- overlapping themes ---------------------------------------------------------------------
#
# How similar two theme texts must be to count as overlapping. A constant does not travel:
# MiniLM cosines between the comparable themes of one codebook have a median of 0.29 in the
# built-in codebook and in the NHS pxtextmining framework (48 themes), but 0.66 in ArgKP,
# whose key points all repeat their motion's words. So the threshold is relative: the
# median similarity of the codebook's comparable pairs plus 3 interquartile ranges (Tukey's
# "far out" fence), which is 0.70, 0.85 and above 1 on those three. Their most similar
# pairs (0.57, 0.75, 0.94: whole pathway / relationships on clinical pathways, appointment
# arrangements / appointment method, and opposite key points of one motion) are the designed
# near-neighbours of a published codebook and stay quiet, while a theme added to the
# built-in codebook that restates informal_workforce_networks in other words scores 0.75
# and is named. The fence is clamped to [0.6, 0.95]: below 0.6 two MiniLM texts are rarely
# paraphrases, and at 0.95 two definitions say the same thing whatever the rest of the
# codebook looks like. With fewer than 10 comparable pairs the median and quartiles mean
# little, and a fixed 0.75 is used.
OVERLAP_FENCE_IQRS = 3.0
OVERLAP_FLOOR = 0.6
OVERLAP_CEILING = 0.95
OVERLAP_MIN_PAIRS = 10
OVERLAP_SMALL_CODEBOOK = 0.75


@dataclass(frozen=True)
class ThemeOverlap:
    """Pairs of themes whose texts are unusually similar, with the rule that chose them."""

    pairs: list[tuple[str, str, float]]
    threshold: float
    median: float
    compared: int
    skipped_parent_child: int


def theme_text(theme: Theme) -> str:
    """What a theme says: label, definition and include criteria (what a coder reads)."""
    return ". ".join(part.strip().rstrip(".") for part in (theme.label, theme.definition, *theme.include) if part.strip())


def _ancestors(theme_id: str, parents: dict[str, str | None]) -> set[str]:
    seen: set[str] = set()
    node = parents.get(theme_id)
    while node is not None and node not in seen:  # a cycle is reported by the checker, not here
        seen.add(node)
        node = parents.get(node)
    return seen


def theme_overlap(codebook: Codebook, encoder: Encoder | None = None) -> ThemeOverlap:
    """Compare every pair of themes that could be confused, and pick the unusually similar.

    Skipped: a theme and its ancestor (a sub-theme overlaps its parent by design; counted
    in ``skipped_parent_child``) and themes whose question lists do not meet (they are
    never candidates for the same response). Similarity is the cosine of the offline
    encoder's vectors of :func:`theme_text`; see ``OVERLAP_*`` above for the threshold.
    """
    import numpy as np

    themes = codebook.themes
    parents = {theme.id: theme.parent for theme in themes}
    lineage = {theme.id: _ancestors(theme.id, parents) for theme in themes}
    pairs: list[tuple[int, int]] = []
    parent_child = 0
    for i, first in enumerate(themes):
        for j in range(i + 1, len(themes)):
            second = themes[j]
            if first.id in lineage[second.id] or second.id in lineage[first.id]:
                parent_child += 1
                continue
            if first.questions is not None and second.questions is not None and not (
                set(first.questions) & set(second.questions)
            ):
                continue
            pairs.append((i, j))
    if not pairs:
        return ThemeOverlap([], OVERLAP_SMALL_CODEBOOK, float("nan"), 0, parent_child)
    if encoder is None:
        from coder.embedded.encoder import get_encoder

        encoder = get_encoder()
    vectors = np.asarray(encoder.encode([theme_text(theme) for theme in themes]), dtype=np.float64)
    similarity = vectors @ vectors.T
    values = np.array([similarity[i, j] for i, j in pairs])
    median = float(np.median(values))
    if len(pairs) < OVERLAP_MIN_PAIRS:
        threshold = OVERLAP_SMALL_CODEBOOK
    else:
        first_quartile, third_quartile = np.percentile(values, [25, 75])
        fence = median + OVERLAP_FENCE_IQRS * float(third_quartile - first_quartile)
        threshold = min(max(fence, OVERLAP_FLOOR), OVERLAP_CEILING)
    found = [
        (themes[i].id, themes[j].id, round(float(value), 3))
        for (i, j), value in zip(pairs, values, strict=True)
        if value >= threshold
    ]
    found.sort(key=lambda pair: (-pair[2], pair[0], pair[1]))
    return ThemeOverlap(found, round(threshold, 3), round(median, 3), len(pairs), parent_child)


def overlapping_themes(codebook: Codebook, encoder: Encoder | None = None) -> list[tuple[str, str, float]]:
    """Pairs of themes whose definitions overlap: (id, id, similarity), most similar first."""
    return theme_overlap(codebook, encoder).pairs
