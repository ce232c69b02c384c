"""Fault matrix: PII redaction recall on an independent labelled sample, and the API key.

The sample is separate from tests/test_redact.py: 40 hand-written survey-style sentences
plus seeded generated ones (valid NHS numbers from the Modulus 11 rule, every UK postcode
shape, UK and international phone formats, e-mail shapes) in varied sentence frames,
well over 100 labelled spans in all. Recall (spans that do not survive redaction) must be
at least 0.95 overall; ordinary numbers in survey text must survive.

The API key must never reach the store (the database, its WAL), stdout, stderr or the
logs, even when the server fails, rate-limits, or quotes the key back in an error.
"""

from __future__ import annotations

import logging
import os
import random
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from coder.redact import nhs_number_valid, redact
from tests.llm_fake_server import FakeOpenAI, coder_executable, make_project, precode_args

HAND_LABELLED: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Please email DEREK.HOLT@SOMERSET.NHS.UK with questions.",
        [("email", "DEREK.HOLT@SOMERSET.NHS.UK")],
    ),
    ("feedback to first_last@gmail.com thanks", [("email", "first_last@gmail.com")]),
    ("cc: o'neill.k@dorset-ics.org.uk", [("email", "o'neill.k@dorset-ics.org.uk")]),
    ("Write to me (anna@example.org).", [("email", "anna@example.org")]),
    (
        "my work address is r.k.singh@uhbristol.nhs.uk; home is rk@singh.me",
        [("email", "r.k.singh@uhbristol.nhs.uk"), ("email", "rk@singh.me")],
    ),
    ("Text me on 07911 123456.", [("phone", "07911 123456")]),
    ("mob 07911-123-457", [("phone", "07911-123-457")]),
    ("Call +44 (0)7911 123458 evenings", [("phone", "+44 (0)7911 123458")]),
    ("Tel: 0044 7911 123459", [("phone", "0044 7911 123459")]),
    ("switchboard 0300 303 5678 ext 4", [("phone", "0300 303 5678")]),
    ("The team is on 01823 333444.", [("phone", "01823 333444")]),
    ("ring 0161 496 0000 and ask for the PM", [("phone", "0161 496 0000")]),
    ("Freephone 0800 123 4567", [("phone", "0800 123 4567")]),
    ("Dublin office +353 1 234 5678", [("phone", "+353 1 234 5678")]),
    ("(020) 7123 4567 is the London desk", [("phone", "(020) 7123 4567")]),
    ("NHS number: 450 557 7104", [("nhs_number", "450 557 7104")]),
    ("nhs no 4505577104, date of birth withheld", [("nhs_number", "4505577104")]),
    ("Her number is 450-557-7104 on the referral.", [("nhs_number", "450-557-7104")]),
    ("Postcode: TA1 5DA", [("postcode", "TA1 5DA")]),
    ("we moved to ba1 1lz last year", [("postcode", "ba1 1lz")]),
    ("Deliveries to DT11AB only", [("postcode", "DT11AB")]),
    ("the clinic (W1A 0AX) is closed", [("postcode", "W1A 0AX")]),
    (
        "Site at EC1V 9HX and overflow at N1C 4AG.",
        [("postcode", "EC1V 9HX"), ("postcode", "N1C 4AG")],
    ),
    ("Leeds LS2 7UE, Cardiff CF10 3AT", [("postcode", "LS2 7UE"), ("postcode", "CF10 3AT")]),
    ("Dr Fairweather was supportive.", [("name", "Fairweather")]),
    ("Prof. Adeyemi chaired the board", [("name", "Adeyemi")]),
    ("Matron Kowalski made it happen", [("name", "Kowalski")]),
    ("Best wishes, Gareth Jones", [("name", "Gareth Jones")]),
    ("My name's Li Wei and I manage IT", [("name", "Li Wei")]),
    ("Mrs Hall-Smith on reception", [("name", "Hall-Smith")]),
    (
        "Contact: Ms Begum, 07700 900222, begum@trust.nhs.uk, BS8 1TH, NHS 450 557 7104",
        [
            ("name", "Begum"),
            ("phone", "07700 900222"),
            ("email", "begum@trust.nhs.uk"),
            ("postcode", "BS8 1TH"),
            ("nhs_number", "450 557 7104"),
        ],
    ),
    (
        "Ring Mr Ahmed on 0117 900 1234 re: GL50 1AA",
        [("name", "Ahmed"), ("phone", "0117 900 1234"), ("postcode", "GL50 1AA")],
    ),
    ("kind regards, Siobhan", [("name", "Siobhan")]),
    ("Many thanks, Oluwaseun Adebayo", [("name", "Oluwaseun Adebayo")]),
    (
        "Cllr Whitaker opposed it; email cllr.whitaker@council.gov.uk",
        [("name", "Whitaker"), ("email", "cllr.whitaker@council.gov.uk")],
    ),
    ("Nurse Chen (07700 900333) ran the pilot", [("name", "Chen"), ("phone", "07700 900333")]),
    (
        "patient id 943 476 5919 and postcode PL4 8AA",
        [("nhs_number", "943 476 5919"), ("postcode", "PL4 8AA")],
    ),
    ("Sent from j.doe@outlook.com on 02/03/2024", [("email", "j.doe@outlook.com")]),
    (
        "The survey lead, Dr Nakamura, can be reached at +44 117 496 0777.",
        [("name", "Nakamura"), ("phone", "+44 117 496 0777")],
    ),
    ("signed Bartholomew", [("name", "Bartholomew")]),
]

# Survey text with numbers that are not PII: must come through unchanged.
CLEAN = [
    "In 2022/23 we saw 12,345 referrals, up 18% on 2021.",
    "The budget was £1,250,000 over 3 years (2019-2022).",
    "Waiting times fell from 52 to 18 weeks by 31/03/2024.",
    "Ward 7B and bay 12 piloted it from 09:30 to 17:00.",
    "Version 2.4.1 of the app crashed 3 times in 100 uses.",
    "About 1 in 4 staff (25%) completed the 45-minute module.",
    "ICB spend rose to 4.7 million in Q3.",
    "Scores: 8/10 for usability, 6/10 for integration.",
]

FIRST = ["Amira", "Ben", "Chloe", "Dafydd", "Esther", "Farhan", "Grace", "Hamish", "Ines"]
LAST = ["Okonkwo", "Pritchard", "Quinn", "Rahman", "Sutherland", "Tremlett", "Underwood"]
TITLES = ["Dr", "Mr", "Mrs", "Ms", "Professor", "Nurse", "Sister"]
FRAMES = [
    "If you need more, {x} is best.",
    "{x} - that's where to reach us.",
    "I put {x} on the form but heard nothing back.",
    "Details: {x}.",
    "happy to talk further ({x})",
]


def _nhs_number(rng: random.Random) -> str:
    while True:
        digits = "".join(str(rng.randint(0, 9)) for _ in range(9))
        for check in range(10):
            if nhs_number_valid(digits + str(check)):
                return digits + str(check)


def _postcode(rng: random.Random) -> str:
    letters = "ABDEFGHJLNPQRSTUWXYZ"
    inward = f"{rng.randint(0, 9)}{rng.choice(letters)}{rng.choice(letters)}"
    shape = rng.choice(["A9", "A99", "AA9", "AA99", "A9A", "AA9A"])
    area1 = rng.choice("BCDEGHKLMNPRSTW")
    area2 = rng.choice("ABDEHLMNPRSTY")
    outward = {
        "A9": f"{area1}{rng.randint(1, 9)}",
        "A99": f"{area1}{rng.randint(10, 99)}",
        "AA9": f"{area1}{area2}{rng.randint(1, 9)}",
        "AA99": f"{area1}{area2}{rng.randint(10, 99)}",
        "A9A": f"W{rng.randint(1, 9)}{rng.choice('ABCDEFGHJK')}",
        "AA9A": f"EC{rng.randint(1, 4)}{rng.choice('ABCDEFGHJK')}",
    }[shape]
    return f"{outward}{rng.choice([' ', ' ', ''])}{inward}"


def _phone(rng: random.Random) -> str:
    kind = rng.choice(["mobile", "landline", "intl", "london", "0300"])
    if kind == "mobile":
        return f"07{rng.randint(100, 999)} {rng.randint(100000, 999999)}"
    if kind == "landline":
        return f"01{rng.randint(100, 999)} {rng.randint(100000, 999999)}"
    if kind == "london":
        return f"020 {rng.randint(7000, 8999)} {rng.randint(1000, 9999)}"
    if kind == "0300":
        return f"0300 {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
    return f"+44 {rng.randint(7000, 7999)} {rng.randint(100000, 999999)}"


def generated(seed: int = 7, n: int = 80) -> list[tuple[str, list[tuple[str, str]]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        kind = rng.choice(["email", "phone", "nhs_number", "postcode", "name"])
        first, last = rng.choice(FIRST), rng.choice(LAST)
        if kind == "email":
            value = f"{first.lower()}.{last.lower()}@{rng.choice(['nhs.net', 'trust.nhs.uk', 'mail.com'])}"
            text = rng.choice(FRAMES).format(x=value)
        elif kind == "phone":
            value = _phone(rng)
            text = rng.choice(FRAMES).format(x=value)
        elif kind == "nhs_number":
            digits = _nhs_number(rng)
            value = rng.choice([digits, f"{digits[:3]} {digits[3:6]} {digits[6:]}"])
            text = rng.choice(FRAMES).format(x=f"NHS number {value}")
        elif kind == "postcode":
            value = _postcode(rng)
            text = rng.choice(FRAMES).format(x=value)
        else:
            value = last
            text = f"{rng.choice(TITLES)} {last} {rng.choice(['championed it', 'was against it', 'left in May'])}."
        out.append((text, [(kind, value)]))
    return out


def test_redaction_recall_on_an_independent_sample_is_at_least_95_percent() -> None:
    sample = HAND_LABELLED + generated()
    spans = Counter[str]()
    caught = Counter[str]()
    missed = []
    for text, labelled in sample:
        redacted = redact(text).text
        for kind, value in labelled:
            assert value in text, (value, text)  # the label is a real span
            spans[kind] += 1
            if value in redacted:
                missed.append((kind, value, redacted))
            else:
                caught[kind] += 1
    total = sum(spans.values())
    assert total >= 100
    recall = sum(caught.values()) / total
    per_kind = {kind: round(caught[kind] / spans[kind], 3) for kind in spans}
    assert recall >= 0.95, f"recall {recall:.3f} {per_kind}; missed {missed}"


@pytest.mark.parametrize("text", CLEAN)
def test_survey_numbers_are_not_redacted(text: str) -> None:
    assert redact(text).text == text


SECRET = "sk-fault-SECRET-9f8e7d6c5b4a3210"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2"], ids=["local", "remote"])
def test_api_key_never_reaches_store_output_or_logs_even_through_faults(
    tmp_path: Path, host: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    db = tmp_path / "p.db"
    make_project(db, n=6).close()
    with FakeOpenAI(host=host, timeout_sleep=0.5) as fake:
        # A server that quotes the key back must not get it stored either.
        fake.add_faults("echo_auth", "429", "500", "reset", "echo_auth", "bad_code")
        command = [coder_executable(), *precode_args(db, fake, "--concurrency", "2", "--request-timeout", "0.3")]
        env = {**os.environ, "OPENAI_API_KEY": SECRET, "CODER_LOG_LEVEL": "DEBUG"}
        finished = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
        )
        assert finished.returncode == 0, finished.stderr
        assert any(
            {k.lower(): v for k, v in h.items()}.get("authorization") == f"Bearer {SECRET}"
            for h in fake.headers_seen
        ), "the key was not used"
        # A second run retries what failed (the 401s), with the same key.
        again = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
        )
        assert again.returncode == 0, again.stderr
    for output in (finished.stdout, finished.stderr, again.stdout, again.stderr, caplog.text):
        assert SECRET not in output
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name == "p.db" for path in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    # The error the server sent is kept, with the key masked.
    import sqlite3

    with sqlite3.connect(db) as conn:
        errors = [
            row[0] for row in conn.execute("select error from llm_calls where error is not null")
        ]
    assert any("invalid credentials" in error for error in errors), errors
