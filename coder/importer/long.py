"""Planning a long file: one row per response, with a text column and (optionally) a question column."""

from __future__ import annotations

from collections.abc import Sequence

from coder.errors import ImportError_
from coder.importer.attributes import attribute_plans, attribute_values, choose_attribute_columns
from coder.importer.columns import (
    ID_COLUMNS,
    RESPONDENT_COLUMNS,
    TEXT_COLUMNS,
    ColumnPlan,
    JsonNumber,
    cell_text,
    column_letter,
    find_column,
)
from coder.importer.model import ImportPlan, Table
from coder.importer.rows import check_case_variants, check_question, new_response
from schemas import Codebook


def plan_long(
    plan: ImportPlan, table: Table, codebook: Codebook | None, text_index: int | None,
    question_index: int | None, id_column: str | None, respondent_column: str | None,
    attribute_columns: Sequence[str] | None, fixed_question: str | None, allow_unknown: bool,
) -> None:
    path = plan.source
    if text_index is None:
        raise ImportError_(
            f"{path}: no response text column found (looked for {', '.join(TEXT_COLUMNS)}; "
            f"columns: {', '.join(table.header)}); name it with --text-column"
        )
    id_index = find_column(table.header, id_column, ID_COLUMNS, path, "id")
    respondent_index = find_column(table.header, respondent_column, RESPONDENT_COLUMNS, path, "respondent")
    used = {i for i in (text_index, question_index, id_index, respondent_index) if i is not None}
    text_name = table.header[text_index]
    question_name = table.header[question_index] if question_index is not None else None
    plan.mapping = {
        "text": text_name,
        "question": question_name or (f"= {fixed_question}" if fixed_question else None),
        "id": table.header[id_index] if id_index is not None else "(hash of file, row, question)",
        "respondent": table.header[respondent_index] if respondent_index is not None else None,
    }
    for index, role, how in (
        (text_index, "text", "response text"), (question_index, "question", "question of each row"),
        (id_index, "id", "response id"), (respondent_index, "respondent", "respondent id"),
    ):
        if index is not None:
            plan.columns.append(ColumnPlan(column_letter(index), table.header[index], role, "", how))
    names, dropped, warnings = choose_attribute_columns(table.header, used, attribute_columns)
    plan.warnings += warnings
    plan.columns += attribute_plans(table.header, names, dropped)
    fixed = check_question(fixed_question, codebook, allow_unknown, path, 0, "--question") if fixed_question else None
    if question_index is not None:
        check_case_variants(path, table, question_index)
    not_text: list[int] = []
    for number, row in table.rows:
        raw_text = row[text_index]
        if isinstance(raw_text, dict | list):
            raise ImportError_(f"{path}: row {number}, field {text_name!r}: expected text, got {type(raw_text).__name__}")
        if isinstance(raw_text, bool | int | float | JsonNumber) and table.encoding != "xlsx":
            not_text.append(number)
        text = cell_text(raw_text)
        question = fixed
        if question_index is not None:
            question = check_question(cell_text(row[question_index]).strip() or None, codebook,
                                       allow_unknown, path, number, question_name or "question") or fixed
        raw_id = cell_text(row[id_index]).strip() if id_index is not None else ""
        if id_index is not None and not raw_id:
            raise ImportError_(f"{path}: row {number}, field {table.header[id_index]!r}: empty id")
        plan.responses.append(
            new_response(path, number, raw_id, text, question,
                         cell_text(row[respondent_index]).strip() or None if respondent_index is not None else None,
                         attribute_values(row, names))
        )
    if not_text:
        plan.warnings.append(
            f"{path}: row {not_text[0]}, column {column_letter(text_index)} {text_name!r}: "
            f"{len(not_text)} response(s) are JSON numbers or true/false, not strings; each is "
            "imported as the text written in the file"
        )
    plan.mapping["attributes"] = sorted({k for r in plan.responses for k in r.attributes})
