"""PII redaction before text leaves the machine.

Applied by the LLM backend when the endpoint is not local (its host is not
127.0.0.1/localhost/::1), on by default. Finds e-mail addresses, phone numbers
(UK formats and international ``+`` numbers), NHS numbers (10 digits passing the
Modulus 11 check), UK postcodes, and names where the pattern is clear ("my name is X",
"Dr Smith") unless the text is already anonymised with ``[Name]``-style markers.
Each is replaced by a marker such as ``[email]``; the redacted text is stored beside
the original (``responses.redacted_text``) so reviewers can see what was sent.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

EMAIL = re.compile(r"\b[\w.+'-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")
# 3-3-4 grouped or 10 straight digits; confirmed by the Modulus 11 check.
NHS_NUMBER = re.compile(r"(?<![\d+])(\d{3})[ -]?(\d{3})[ -]?(\d{4})(?!\d)")
# Candidate phone numbers: a run of digits with the usual separators.
PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\(?\d[\d \-().]{7,}\d(?!\d)")
POSTCODE = re.compile(
    r"\b(?:GIR ?0AA|[A-PR-UWYZ][A-HK-Y]?\d[\dA-HJKPSTUW]? ?\d[ABD-HJLNP-UW-Z]{2})\b",
    re.IGNORECASE,
)
_NAME = r"[A-Z][a-zA-Z'\-]+"
TITLED_NAME = re.compile(
    rf"\b(Dr|Doctor|Mr|Mrs|Ms|Miss|Mx|Prof|Professor|Nurse|Sister|Matron|Cllr)(\.?\s+)"
    rf"({_NAME}(?:[ \-]{_NAME})?)"
)
INTRODUCED_NAME = re.compile(
    rf"(?i:\b(my name is|my name's|i am called|i'm called|call me|signed|regards,?|"
    rf"many thanks,?|kind regards,?|best wishes,?)\s+)({_NAME}(?:\s{_NAME})?)"
)
# Text already anonymised upstream: '[Name]', '[NAME REDACTED]', '[name removed]' ...
NAME_MARKER = re.compile(r"\[(?:name|redacted|person|staff)[^\]]*\]", re.IGNORECASE)
# Capitalised words after a title that are not names ('Dr Foster Intelligence' is rare;
# 'Dr Who' we accept as a name).
NOT_NAMES = {"The", "And", "Of", "In", "At", "On", "For", "I", "A"}


def nhs_number_valid(digits: str) -> bool:
    """True if ``digits`` (10 digits) passes the NHS number Modulus 11 check."""
    if len(digits) != 10 or not digits.isdigit():
        return False
    total = sum(
        int(digit) * weight for digit, weight in zip(digits[:9], range(10, 1, -1), strict=True)
    )
    check = 11 - total % 11
    if check == 11:
        check = 0
    if check == 10:
        return False
    return check == int(digits[9])


def _phone_like(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    stripped = candidate.strip()
    if stripped.startswith("+") or stripped.startswith("00"):
        return 8 <= len(digits) <= 15
    # UK national numbers: 0 + 9 or 10 digits (01/02/03/07/08 ...).
    return digits.startswith("0") and len(digits) in (10, 11)


@dataclass
class Redaction:
    """The redacted text and what was found (kind -> count)."""

    text: str
    found: Counter[str] = field(default_factory=Counter)

    @property
    def changed(self) -> bool:
        return bool(self.found)


def redact(text: str) -> Redaction:
    """Replace PII in ``text`` with markers like ``[email]``; see the module docstring."""
    found: Counter[str] = Counter()

    def sub(pattern: re.Pattern[str], kind: str, marker: str, value: str) -> str:
        def replace(match: re.Match[str]) -> str:
            found[kind] += 1
            return marker

        return pattern.sub(replace, value)

    text = sub(EMAIL, "email", "[email]", text)

    def nhs(match: re.Match[str]) -> str:
        if nhs_number_valid("".join(match.groups())):
            found["nhs_number"] += 1
            return "[NHS number]"
        return match.group(0)

    text = NHS_NUMBER.sub(nhs, text)

    def phone(match: re.Match[str]) -> str:
        candidate = match.group(0)
        if _phone_like(candidate):
            found["phone"] += 1
            return "[phone]"
        return candidate

    text = PHONE.sub(phone, text)
    text = sub(POSTCODE, "postcode", "[postcode]", text)

    if not NAME_MARKER.search(text):

        def titled(match: re.Match[str]) -> str:
            if match.group(3).split()[0] in NOT_NAMES:
                return match.group(0)
            found["name"] += 1
            return f"{match.group(1)}{match.group(2)}[Name]"

        text = TITLED_NAME.sub(titled, text)

        def introduced(match: re.Match[str]) -> str:
            if match.group(2).split()[0] in NOT_NAMES:
                return match.group(0)
            found["name"] += 1
            return f"{match.group(1)} [Name]"

        text = INTRODUCED_NAME.sub(introduced, text)
    return Redaction(text=text, found=found)
