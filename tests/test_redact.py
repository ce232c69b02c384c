"""PII redaction: recall on a labelled sample, NHS Modulus 11, and no damage to ordinary text."""

from __future__ import annotations

import pytest

from coder.redact import nhs_number_valid, redact

# (text, [PII strings that must not survive]) — hand-labelled, UK survey style.
LABELLED: list[tuple[str, list[str]]] = [
    ("Contact me at sarah.jones@nhs.net if you want more detail.", ["sarah.jones@nhs.net"]),
    ("My email is j.smith+survey@example.co.uk", ["j.smith+survey@example.co.uk"]),
    ("Ring 07700 900123 any weekday.", ["07700 900123"]),
    ("Mobile: 07700900456", ["07700900456"]),
    ("Call +44 7700 900789 for the team lead.", ["+44 7700 900789"]),
    ("Our office is on 0117 496 0123.", ["0117 496 0123"]),
    ("London line: 020 7946 0958", ["020 7946 0958"]),
    ("Phone (01632) 960 001 after 2pm.", ["(01632) 960 001"]),
    ("Try 01632-960-002.", ["01632-960-002"]),
    ("International: +1 212 555 0147", ["+1 212 555 0147"]),
    ("Patient NHS number 943 476 5919 was on the form.", ["943 476 5919"]),
    ("NHS no. 9434765870 recorded.", ["9434765870"]),
    ("Ref 401-023-2137 on the letter.", ["401-023-2137"]),
    ("We are based in BS1 4DJ near the hospital.", ["BS1 4DJ"]),
    ("Postcode SW1A 1AA is the ministry.", ["SW1A 1AA"]),
    ("Clinic at M1 1AE and another at EH1 1YZ.", ["M1 1AE", "EH1 1YZ"]),
    ("send it to ta12 6pp please", ["ta12 6pp"]),
    ("My name is Priya Shah and I run the clinic.", ["Priya Shah"]),
    ("my name is Tom and I am a nurse", ["Tom"]),
    ("Dr Smith pushed for the pathway.", ["Smith"]),
    ("Thanks to Dr. Okafor and Mrs Brown on ward 5.", ["Okafor", "Brown"]),
    ("Professor Hughes-Lee led the evaluation.", ["Hughes-Lee"]),
    ("Nurse Patel trained everyone.", ["Patel"]),
    ("Kind regards, Helen Wright", ["Helen Wright"]),
    ("Mr O'Brien from IT helped.", ["O'Brien"]),
    ("I am called Aisha at work.", ["Aisha"]),
    (
        "Email a.b@trust.nhs.uk, phone 07700 900111, NHS 943 476 5919, postcode TA1 2BQ - Dr Evans",
        ["a.b@trust.nhs.uk", "07700 900111", "943 476 5919", "TA1 2BQ", "Evans"],
    ),
    (
        "Reach Ms Clarke on 0300 123 4567 or clarke@ccg.org",
        ["Clarke", "0300 123 4567", "clarke@ccg.org"],
    ),
    ("Sister Murphy at GL1 3NN", ["Murphy", "GL1 3NN"]),
    ("Signed Dave Collins", ["Dave Collins"]),
]

# Text that must come through unchanged.
CLEAN = [
    "We saw 1,234 patients in 2023 and 45% were seen within 18 weeks.",
    "The pathway approach helped; clinical leadership mattered most.",
    "Dr [Name] said it would work, and [Name] agreed.",
    "Between 2019 and 2021 the budget was 1500000 pounds.",
    "My name is not important here.",
    "Ward 12 and theatre 3 adopted it first.",
]


def test_recall_on_labelled_sample_is_at_least_95_percent() -> None:
    total = caught = 0
    missed = []
    for text, pii in LABELLED:
        redacted = redact(text).text
        for item in pii:
            total += 1
            if item in redacted:
                missed.append((text, item))
            else:
                caught += 1
    recall = caught / total
    assert recall >= 0.95, f"recall {recall:.3f}; missed {missed}"


@pytest.mark.parametrize("text", CLEAN)
def test_ordinary_text_is_left_alone(text: str) -> None:
    result = redact(text)
    assert result.text == text
    assert not result.changed


def test_nhs_numbers_need_a_valid_check_digit() -> None:
    assert nhs_number_valid("9434765919")
    assert nhs_number_valid("4010232137")
    assert not nhs_number_valid("9434765918")
    # An invalid NHS-shaped number is not redacted as one (and is not phone-shaped).
    assert redact("ref 943 476 5918").text == "ref 943 476 5918"


def test_counts_by_kind_and_markers() -> None:
    result = redact("Dr Jones: jo@x.org, 07700 900123, BS1 4DJ, 943 476 5919")
    assert dict(result.found) == {"email": 1, "phone": 1, "postcode": 1, "nhs_number": 1, "name": 1}
    assert result.text == "Dr [Name]: [email], [phone], [postcode], [NHS number]"


def test_names_are_left_when_the_text_is_already_anonymised() -> None:
    assert redact("[Name] told Dr Smith").text == "[Name] told Dr Smith"
