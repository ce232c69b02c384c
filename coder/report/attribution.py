"""Who said it: the response attributes that hold a respondent's role and organisation."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from coder.errors import CoderError
from schemas import Response

#: Attribute names read as the respondent's role, first present wins. The Forms importer
#: stores 'role'; older projects and other surveys use the others.
ROLE_FIELDS = ("role", "job_role", "job_title", "stakeholder", "stakeholder_type")
#: Attribute names read as the respondent's organisation.
ORGANISATION_FIELDS = ("organisation", "organization", "org")
#: Attribute names read as the kind of organisation (e.g. 'NHS trust', 'SME').
ORGANISATION_TYPE_FIELDS = ("organisation_type", "organization_type")
#: Every attribute name recognised for attribution, in the order tried.
DEFAULT_ATTRIBUTION_FIELDS = (*ROLE_FIELDS, *ORGANISATION_TYPE_FIELDS, *ORGANISATION_FIELDS)
ANONYMOUS_RESPONDENT = "Respondent"


class UnknownAttributionField(CoderError):
    """``--attribution-field`` names an attribute no response has."""


def attribute_value(attributes: Mapping[str, Any], name: str | None) -> str | None:
    if name is None:
        return None
    value = attributes.get(name)
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


@dataclass(frozen=True)
class AttributionFields:
    """Which response attributes hold the role, organisation and organisation type."""

    role: str | None = None
    organisation: str | None = None
    organisation_type: str | None = None

    @property
    def used(self) -> str:
        """The attribute a quote is attributed by first (shown in the summary)."""
        return self.role or self.organisation or self.organisation_type or ROLE_FIELDS[0]


def attribute_names(responses: Sequence[Response]) -> list[str]:
    """Every attribute name the responses carry, sorted."""
    return sorted({name for response in responses for name in response.attributes})


def attribution_fields(
    responses: Sequence[Response], configured: str | None = None
) -> AttributionFields:
    """The attributes to attribute quotes by and to break counts down by.

    ``configured`` (``--attribution-field``) replaces the role; it must be an attribute
    of at least one response, else :class:`UnknownAttributionField` lists those there are.
    """
    present = {
        name
        for response in responses
        for name, value in response.attributes.items()
        if value is not None and str(value).strip()
    }
    if configured:
        check_attribution_field(configured, attribute_names(responses))
    return fields_from(present, configured)


def check_attribution_field(configured: str, known: Sequence[str]) -> None:
    """Raise :class:`UnknownAttributionField` unless ``configured`` is one of ``known``."""
    if configured in known:
        return
    known = sorted(known)
    close = difflib.get_close_matches(configured, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    available = ", ".join(known) if known else "(none: the responses have no attributes)"
    raise UnknownAttributionField(
        f"--attribution-field {configured!r}: no response has that attribute.{hint} "
        f"Attributes of this project's responses: {available}."
    )


def fields_from(present: set[str], configured: str | None) -> AttributionFields:
    role = configured or next((name for name in ROLE_FIELDS if name in present), None)

    def first(names: Sequence[str]) -> str | None:
        return next((name for name in names if name in present and name != role), None)

    return AttributionFields(
        role=role,
        organisation=first(ORGANISATION_FIELDS),
        organisation_type=first(ORGANISATION_TYPE_FIELDS),
    )


def attribution_for(response: Response, fields: AttributionFields | None = None) -> str:
    """Who said it: 'Programme Manager, Health Innovation Wessex'.

    Role and organisation; the organisation type stands in for a missing organisation; either
    alone when only one is known; 'Respondent' when neither is.
    """
    if fields is None:
        fields = attribution_fields([response])
    return attribution_of(response.attributes, fields)


def attribution_of(attributes: Mapping[str, Any], fields: AttributionFields) -> str:
    role = attribute_value(attributes, fields.role)
    where = attribute_value(attributes, fields.organisation) or attribute_value(
        attributes, fields.organisation_type
    )
    parts = [role] if role else []
    if where and (role is None or where.lower() != role.lower()):
        parts.append(where)
    return ", ".join(parts) if parts else ANONYMOUS_RESPONDENT
