"""Planning a wide file (a Microsoft Forms export): one row per respondent, one column per question."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from coder.errors import ImportError_
from coder.importer.attributes import (
    attribute_plans,
    attribute_values,
    attribution_name,
    choose_attribute_columns,
    looks_like_free_text,
)
from coder.importer.columns import (
    FORMS_METADATA,
    FORMS_PERSONAL,
    ID_COLUMNS,
    RESPONDENT_COLUMNS,
    ColumnPlan,
    cell_text,
    column_index,
    column_letter,
    find_column,
    norm,
    shorten,
)
from coder.importer.headers import match_question_header
from coder.importer.model import ImportPlan, Table
from coder.importer.rows import new_response, unknown_question
from schemas import Codebook, Response


def parse_column_map(values: Sequence[str]) -> list[tuple[str, str]]:
    """Parse repeated ``--map COLUMN=QUESTION`` values (a letter or an exact header).

    Split at the last '=' only, so a header may hold commas (every hypothesis does) and
    even '='; question ids never contain '='.
    """
    pairs = []
    for value in values:
        column, sep, question = value.rpartition("=")
        if not sep or not column.strip() or not question.strip():
            raise ImportError_(
                f"--map {value!r}: expected COLUMN=QUESTION, a column letter or exact header and a "
                "question id, e.g. --map \"D=H1\""
            )
        pairs.append((column.strip(), question.strip()))
    return pairs


def split_question_columns(value: str, header: Sequence[str]) -> list[str]:
    """Split a ``--question-columns`` value on commas, keeping whole headers that hold commas.

    At each comma boundary the longest run of comma-separated parts that is a header is
    taken; a part that is no header is left alone (and reported as an unknown column).
    """
    headers = {norm(h) for h in header if h}
    parts = value.split(",")
    names: list[str] = []
    start = 0
    while start < len(parts):
        end = next((e for e in range(len(parts), start, -1) if norm(",".join(parts[start:e])) in headers), start + 1)
        name = ",".join(parts[start:end]).strip()
        if name:
            names.append(name)
        start = end
    return names


def _resolve_column(spec: str, header: Sequence[str], path: Path) -> int:
    """A ``--map`` column: an exact header (case and spacing aside) or a column letter."""
    by_name = [i for i, h in enumerate(header) if h == spec] or [
        i for i, h in enumerate(header) if norm(h) == norm(spec)
    ]
    by_letter = column_index(spec)
    in_range = by_letter if by_letter is not None and by_letter < len(header) else None
    if by_name and in_range is not None and by_name[0] != in_range:
        raise ImportError_(
            f"{path}: --map {spec!r} is both column {spec.upper()} ({header[in_range]!r}) and the header "
            f"of column {column_letter(by_name[0])}; use the other column's letter"
        )
    if by_name:
        return by_name[0]
    if in_range is not None:
        return in_range
    last = column_letter(len(header) - 1)
    if by_letter is not None:
        raise ImportError_(
            f"{path}: --map: there is no column {spec.upper()}; the header row has {len(header)} "
            f"columns (A to {last})"
        )
    listing = ", ".join(f"{column_letter(i)} {shorten(h, 30)!r}" for i, h in enumerate(header))
    raise ImportError_(
        f"{path}: --map: no column letter or header {spec!r}; the header row has {len(header)} "
        f"columns: {listing}"
    )


def _mapped_question(qid: str, codebook: Codebook | None, allow_unknown: bool, path: Path, spec: str) -> str:
    """The codebook's spelling of a ``--map`` question id (case and spacing aside)."""
    if codebook is None or not codebook.questions:
        return qid
    for known in codebook.question_ids:
        if norm(known) == norm(qid):
            return known
    return unknown_question(qid, allow_unknown, (
        f"{path}: --map {spec}={qid}: {qid!r} is not a question in the project's codebook "
        f"(valid ids: {', '.join(codebook.question_ids)})"
    ))


def plan_wide(
    plan: ImportPlan, table: Table, codebook: Codebook | None, id_column: str | None,
    respondent_column: str | None, question_columns: str | Sequence[str] | None,
    column_map: Sequence[tuple[str, str]], attribute_columns: Sequence[str] | None, allow_unknown: bool,
) -> None:
    """Plan a wide file: each non-empty cell of a question column becomes one response.

    Question columns come from ``--map`` first, then ``--question-columns``, then headers
    that match a codebook question; other free-text columns are kept as attributes, with
    a warning.
    """
    path = plan.source
    header = table.header
    if isinstance(question_columns, str):
        question_columns = split_question_columns(question_columns, header)
    has_questions = codebook is not None and bool(codebook.questions)
    if not has_questions and not allow_unknown and not column_map and not question_columns:
        # Without a codebook the only names for the questions are the headers themselves;
        # importing them so, then again once a codebook exists, would hold every answer twice.
        raise ImportError_(
            f"{path}: this is a wide file (one column per question) and the project has no codebook "
            "to name its question columns. Add the codebook first: 'coder codebook add --example' "
            "(the built-in rapid-insight hypotheses H1-H9, Q10) or 'coder codebook add FILE'; or map "
            "the columns yourself with --map \"D=H1\" (repeatable); or pass --allow-unknown-questions "
            "to keep the column headers as question ids"
        )
    respondent_index = find_column(header, respondent_column or id_column, (*RESPONDENT_COLUMNS, *ID_COLUMNS), path, "respondent id")
    questions = QuestionColumns(path, header)
    _add_mapped_columns(questions, column_map, respondent_index, codebook, allow_unknown)
    _add_named_columns(questions, question_columns or (), codebook, allow_unknown)
    used = set(questions.chosen) | ({respondent_index} if respondent_index is not None else set())
    columns = _respondent_and_metadata_columns(header, respondent_index, used)
    unmatched_free_text = _add_detected_columns(
        plan, table, questions, used, codebook, attribute_columns, bool(question_columns), allow_unknown
    )
    _check_distinct_questions(path, questions.chosen)
    if not questions.chosen:
        raise ImportError_(
            f"{path}: no question columns found for a wide (one column per question) file; "
            "map them with --map \"D=H1\" (repeatable), or use --text-column for a long file"
        )
    names, dropped, warnings = choose_attribute_columns(header, used, attribute_columns, drop=FORMS_PERSONAL)
    plan.warnings += warnings
    plan.columns = [*columns, *questions.chosen.values()]
    for column in attribute_plans(header, names, dropped):
        if column_index(column.letter) in unmatched_free_text:
            column = replace(column, how="free text matching no question (see the warning)")
        plan.columns.append(column)
    plan.mapping = {
        "shape": "wide",
        "respondent": header[respondent_index] if respondent_index is not None else "(row number)",
        "questions": {header[i]: c.target for i, c in questions.chosen.items()},
    }
    plan.responses += _wide_responses(path, table, questions.chosen, respondent_index, names)
    plan.mapping["attributes"] = sorted({k for r in plan.responses for k in r.attributes})


class QuestionColumns:
    """The question columns chosen so far (index -> plan); two columns may not share a question."""

    def __init__(self, path: Path, header: Sequence[str]) -> None:
        self.path = path
        self.header = header
        self.chosen: dict[int, ColumnPlan] = {}

    def add(self, index: int, qid: str, how: str, similarity: float | None = None, exact: bool = True) -> None:
        """Take column ``index`` as question ``qid``, refusing a question already taken."""
        header = self.header
        for other, taken in self.chosen.items():
            if taken.target == qid:
                raise ImportError_(
                    f"{self.path}: columns {column_letter(other)} {shorten(header[other])!r} ({taken.how}) and "
                    f"{column_letter(index)} {shorten(header[index])!r} ({how}) both map to question {qid}; "
                    "name each column's question with --map \"LETTER=ID\""
                )
        self.chosen[index] = ColumnPlan(column_letter(index), header[index], "question", qid, how, similarity, exact)


def _add_mapped_columns(
    questions: QuestionColumns, column_map: Sequence[tuple[str, str]], respondent_index: int | None,
    codebook: Codebook | None, allow_unknown: bool,
) -> None:
    """The columns ``--map`` names, each under its question."""
    path, header = questions.path, questions.header
    for spec, qid in column_map:
        index = _resolve_column(spec, header, path)
        if index in questions.chosen:
            raise ImportError_(f"{path}: --map names column {column_letter(index)} {header[index]!r} twice")
        if index == respondent_index:
            raise ImportError_(
                f"{path}: --map {spec}={qid}: column {column_letter(index)} is the respondent id column"
            )
        questions.add(index, _mapped_question(qid, codebook, allow_unknown, path, spec), "--map")


def _add_named_columns(
    questions: QuestionColumns, names: Sequence[str], codebook: Codebook | None, allow_unknown: bool
) -> None:
    """The columns ``--question-columns`` names, each matched to a question (or kept as its header)."""
    path, header = questions.path, questions.header
    for name in names:
        found = find_column(header, name, (), path, "question")
        assert found is not None  # find_column raises for a name that is not a header
        index = found
        if index in questions.chosen:
            continue
        matched = match_question_header(header[index], codebook)
        if matched.question_id is None and codebook is not None and codebook.questions and not allow_unknown:
            raise ImportError_(
                f"{path}: row 1, field {header[index]!r}: column does not match a codebook question "
                f"(known: {', '.join(codebook.question_ids)}); map it with --map "
                f"\"{column_letter(index)}=ID\" or pass --allow-unknown-questions to keep it"
            )
        questions.add(index, matched.question_id or header[index],
                      f"--question-columns, {matched.how}" if matched.question_id else "--question-columns",
                      matched.similarity, matched.exact or not matched.question_id)


def _respondent_and_metadata_columns(
    header: Sequence[str], respondent_index: int | None, used: set[int]
) -> list[ColumnPlan]:
    """Plans for the respondent column and the dropped Forms metadata columns (added to ``used``)."""
    columns: list[ColumnPlan] = []
    if respondent_index is not None:
        columns.append(ColumnPlan(column_letter(respondent_index), header[respondent_index], "respondent", "",
                                  "respondent id"))
    for index, name in enumerate(header):
        if index not in used and norm(name) in FORMS_METADATA:
            used.add(index)
            columns.append(ColumnPlan(column_letter(index), header[index], "dropped", "", "Forms metadata"))
    return columns


def _add_detected_columns(
    plan: ImportPlan, table: Table, questions: QuestionColumns, used: set[int], codebook: Codebook | None,
    attribute_columns: Sequence[str] | None, named: bool, allow_unknown: bool,
) -> set[int]:
    """Headers that match a question become question columns (unless ``named`` by
    ``--question-columns``); returns the free-text columns that matched none (each warned of)."""
    path = plan.source
    chosen = {norm(c) for c in attribute_columns} if attribute_columns is not None else set()
    unmatched_free_text: set[int] = set()
    for index, name in enumerate(table.header):
        if index in used or not name:
            continue
        # Role and organisation columns are respondent fields, never questions, even when
        # a loose match (e.g. 'Q1. What is your role?') would say otherwise.
        if attribution_name(name) is not None or norm(name) in FORMS_PERSONAL or norm(name) in chosen:
            continue
        matched = match_question_header(name, codebook)
        if matched.question_id is not None and not named:
            questions.add(index, matched.question_id, matched.how, matched.similarity, matched.exact)
            used.add(index)
            continue
        if not looks_like_free_text(name, [row[index] for _, row in table.rows]):
            continue
        if allow_unknown and not named:
            questions.add(index, name, "kept as its header (--allow-unknown-questions)", exact=False)
            used.add(index)
            continue
        unmatched_free_text.add(index)
        letter = column_letter(index)
        if matched.question_id is not None:
            why = f"matches question {matched.question_id} but is not among --question-columns"
        else:
            why = "matches no question in the codebook" + (f" ({matched.note})" if matched.note else "")
        plan.warnings.append(
            f"{path}: column {letter} {shorten(name, 60)!r} holds free text like a question but {why}; "
            f"kept as a respondent attribute. If it is a question, map it with --map \"{letter}=ID\""
        )
    return unmatched_free_text


def _check_distinct_questions(path: Path, questions: dict[int, ColumnPlan]) -> None:
    """Refuse two question columns whose questions differ only in case or spacing."""
    by_key: dict[str, int] = {}
    for index, column in questions.items():
        other = by_key.setdefault(norm(column.target), index)
        if other != index:
            raise ImportError_(
                f"{path}: row 1, columns {column_letter(other)} and {column_letter(index)}: questions "
                f"{questions[other].target!r} and {column.target!r} differ only in case or spacing; "
                "name them the same way (or map them with --map)"
            )


def _wide_responses(
    path: Path, table: Table, questions: dict[int, ColumnPlan], respondent_index: int | None,
    names: dict[int, str],
) -> list[Response]:
    """One response per non-empty answer cell, with the respondent's attributes."""
    responses: list[Response] = []
    for number, row in table.rows:
        respondent = cell_text(row[respondent_index]).strip() if respondent_index is not None else str(number)
        attributes = attribute_values(row, names)
        for index, column in questions.items():
            text = cell_text(row[index])
            if not text.strip():
                continue
            question = column.target
            response_id = f"{respondent}-{question}" if respondent_index is not None else None
            responses.append(new_response(path, number, response_id, text, question, respondent, dict(attributes)))
    return responses
