"""Respondent attributes: which columns become attributes (role, organisation, ...) and their values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from coder.importer.columns import ColumnPlan, JsonNumber, cell_text, column_letter, norm
from coder.importer.headers import normalise_text

ORGANISATION_WORDS = ("organisation", "organization", "organisations", "organizations", "org", "employer", "company")
TYPE_WORDS = ("type", "types", "kind", "sector", "category")


def attribution_name(header: str) -> str | None:
    """The normalised attribute name for a role or organisation column, else None.

    Forms asks 'What is your role?', 'Which organisation do you work for?', 'What type of
    organisation ...'; the report attributes quotes by ``role``, ``organisation_type``
    and ``organisation`` (and ``stakeholder``), so those columns get these names.
    """
    words = normalise_text(header).split()
    # A long header is a question to answer, not a field about the respondent.
    if not words or len(words) > 10:
        return None
    text = " ".join(words)
    organisation = any(word in ORGANISATION_WORDS for word in words)
    if (organisation and any(word in TYPE_WORDS for word in words)) or text in ("sector", "organisation type"):
        return "organisation_type"
    if "role" in words or "roles" in words or "job title" in text or text in (
        "job", "position", "profession", "occupation", "what is your job", "what is your position"
    ):
        return "role"
    if organisation:
        return "organisation"
    if "stakeholder" in words or "stakeholders" in words:
        return "stakeholder"
    return None


def looks_like_free_text(header: str, cells: Sequence[Any]) -> bool:
    """A column that holds answers: a header as long as a hypothesis, or mostly long cells."""
    if len(normalise_text(header)) >= 80:
        return True
    filled = [words for cell in cells if (words := (cell if type(cell) is str else cell_text(cell)).split())]
    return bool(filled) and sum(len(words) >= 5 for words in filled) * 2 >= len(filled)


def choose_attribute_columns(
    header: Sequence[str], used: set[int], chosen: Sequence[str] | None, drop: Sequence[str] = ()
) -> tuple[dict[int, str], dict[int, str], list[str]]:
    """Which columns become attributes and under what name.

    Returns (attributes: index -> name, dropped: index -> why, warnings). Recognised role
    and organisation columns take their normalised name; other columns keep their header.
    """
    wanted = {norm(c) for c in chosen} if chosen is not None else None
    names: dict[int, str] = {}
    dropped: dict[int, str] = {}
    warnings: list[str] = []
    taken: set[str] = set()  # names.values(), as a set: a scan per column is quadratic
    for index, name in enumerate(header):
        if index in used:
            continue
        if not name:
            dropped[index] = "no header"
            continue
        recognised = attribution_name(name)
        key = norm(name)
        if wanted is not None and key not in wanted and (recognised is None or recognised not in wanted):
            dropped[index] = "not chosen with --attribute"
            continue
        if wanted is None and key in drop:
            dropped[index] = "personal data (keep it with --attribute)"
            continue
        target = recognised or name
        if target in taken:
            if recognised is not None:
                warnings.append(
                    f"column {column_letter(index)} {name!r} also looks like the {recognised} column; "
                    f"kept under its own header"
                )
            target = name
        names[index] = target
        taken.add(target)
    return names, dropped, warnings


def attribute_values(row: Sequence[Any], names: dict[int, str]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for index, name in names.items():
        value = row[index]
        if type(value) is str:  # the common case (CSV cells), kept short: wide files have 40k columns
            value = value.strip()
            if value:
                attributes[name] = value
            continue
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if isinstance(value, JsonNumber):
            value = value.number()
        attributes[name] = value if isinstance(value, int | float | bool) else cell_text(value).strip()
    return attributes


def attribute_plans(header: Sequence[str], names: dict[int, str], dropped: dict[int, str]) -> list[ColumnPlan]:
    plans = []
    for index, name in names.items():
        recognised = attribution_name(header[index]) == name and norm(header[index]) != name
        plans.append(ColumnPlan(column_letter(index), header[index], "attribute", name,
                                f"recognised {name} column" if recognised else "other column"))
    for index, why in dropped.items():
        plans.append(ColumnPlan(column_letter(index), header[index], "dropped", "", why))
    return plans
