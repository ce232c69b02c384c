"""Importing a Microsoft Forms export: the rapid-insight workshop, end to end.

A Forms-shaped XLSX (ID, times, email, name, role, organisation, the nine hypothesis texts
as headers, one with a word changed, and Q10) through the real CLI: refused without a
codebook, matched tolerantly with one, mapped explicitly with --map, never doubled by a
re-import under other question ids, with role and organisation kept as attributes.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import Workbook

from coder.cli import cli
from coder.codebook import builtin_codebook_path, load_codebook
from coder.errors import ImportError_
from coder.importer import (
    attribution_name,
    column_index,
    column_letter,
    match_question_header,
    parse_column_map,
    split_question_columns,
)
from coder.store import Store
from schemas import Codebook, Question

CODEBOOK = load_codebook(builtin_codebook_path())
QUESTION_TEXTS = [q.text for q in CODEBOOK.questions]  # H1..H9, Q10
RESPONDENTS = 40
ROLES = ["Innovator", "Clinician", "Commissioner"]
ORGANISATIONS = ["Somerset ICB", "Health Innovation West", "Dorset HealthCare"]
COMMENTS = "Any other comments about the session today?"


def forms_headers() -> list[str]:
    headers = list(QUESTION_TEXTS)
    # The case: Forms held "an innovation" where the codebook says "the innovation".
    assert "the innovation" in headers[2]
    headers[2] = headers[2].replace("the innovation", "an innovation", 1)
    return ["ID", "Start time", "Completion time", "Email", "Name", "What is your role?",
            "Which organisation do you work for?", *headers]


def write_forms(path: Path, respondents: int = RESPONDENTS, extra: dict[str, list[str]] | None = None,
                headers: list[str] | None = None) -> Path:
    """A Forms export: one row per respondent, every question answered (answers differ)."""
    workbook = Workbook()
    sheet = workbook.active
    header_row = headers or forms_headers()
    sheet.append([*header_row, *(extra or {})])
    questions = len(header_row) - 7
    for number in range(1, respondents + 1):
        answers = [f"Respondent {number} on question {k + 1}: yes, mostly, with reservations #NHSSomerset"
                   for k in range(questions)]
        sheet.append([number, "12/11/23 10:00:00", "12/11/23 10:20:00", f"person{number}@nhs.net",
                      f"Person {number}", ROLES[number % 3], ORGANISATIONS[number % 3], *answers,
                      *(values[number - 1] for values in (extra or {}).values())])
    workbook.save(path)
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def count(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    conn = sqlite3.connect(db_path)
    try:
        return int(conn.execute("select count(*) from responses").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def forms(tmp_path: Path) -> Path:
    return write_forms(tmp_path / "workshop.xlsx")


@pytest.fixture
def project(db_path: Path) -> Path:
    code, output = invoke("codebook", "add", "--example", "--db", str(db_path))
    assert code == 0, output
    return db_path


def flat(output: str) -> str:
    return " ".join(output.split())


# --- without a codebook -------------------------------------------------------------------


def test_wide_file_without_codebook_is_refused_with_what_to_do(forms: Path, db_path: Path) -> None:
    code, output = invoke("import", str(forms), "--db", str(db_path))
    assert code == 1
    text = flat(output)
    assert "workshop.xlsx" in text and "no codebook" in text
    assert "coder codebook add --example" in text and "--map" in text and "--allow-unknown-questions" in text
    assert count(db_path) == 0


def test_without_codebook_map_or_allow_unknown_still_import(forms: Path, db_path: Path) -> None:
    code, output = invoke("import", str(forms), "--map", "H=H1", "--db", str(db_path))
    assert code == 0, output
    with Store(db_path) as store:
        assert {r.question for r in store.responses()} == {"H1"}
    assert count(db_path) == RESPONDENTS


# --- with the built-in codebook ----------------------------------------------------------------


def test_forms_export_with_codebook(forms: Path, project: Path) -> None:
    code, output = invoke("import", str(forms), "--db", str(project))
    assert code == 0, output
    text = flat(output)
    # The one-word difference is matched, and said so, with its similarity.
    assert "J 'The perceived utility of an innovation" in text
    assert "→ H3 (similar words, similarity 0.98)" in text
    assert "'What is your role?' → attribute role" in text
    assert "'Which organisation do you work for?' → attribute organisation" in text
    assert f"Imported {RESPONDENTS * 10} new responses" in text
    with Store(project) as store:
        responses = list(store.responses())
        assert len(responses) == RESPONDENTS * 10
        assert {r.question for r in responses} == set(CODEBOOK.question_ids)
        first = store.response("1-H3")
    assert first.respondent == "1" and first.tags == ["NHSSomerset"]
    # Times, email and name are not kept; role and organisation are, under normalised names.
    assert first.attributes == {"role": ROLES[1], "organisation": ORGANISATIONS[1]}
    # Re-importing the same file with the same mapping adds nothing.
    code, output = invoke("import", str(forms), "--db", str(project))
    assert code == 0 and "Imported 0 new responses" in output and f"{RESPONDENTS * 10} already" in output
    assert count(project) == RESPONDENTS * 10


def test_dry_run_prints_the_mapping_table(forms: Path, project: Path) -> None:
    code, output = invoke("import", str(forms), "--dry-run", "--db", str(project))
    assert code == 0, output
    assert "Column mapping" in output and "Dry run: nothing written" in output
    rows = {line.split("│")[1].strip(): line for line in output.splitlines()
            if line.startswith("│") and line.split("│")[1].strip()}
    assert "respondent" in rows["A"] and "ID" in rows["A"]
    assert "dropped" in rows["B"] and "Forms metadata" in rows["B"]
    assert "dropped" in rows["D"] and "personal data" in rows["D"]
    assert "attribute role" in rows["F"] and "recognised role" in rows["F"]
    assert "attribute organisation" in rows["G"]
    assert "question H1" in rows["H"] and "exact text" in rows["H"]
    assert "question H3" in rows["J"] and "similar words (0.98)" in rows["J"]
    assert "question Q10" in rows["Q"]
    assert count(project) == 0


def test_unmatched_free_text_column_is_a_warning_naming_it(tmp_path: Path, project: Path) -> None:
    comments = [f"The room was cold and the session ran long, said person {n}" for n in range(1, RESPONDENTS + 1)]
    path = write_forms(tmp_path / "with_comments.xlsx", extra={COMMENTS: comments})
    code, output = invoke("import", str(path), "--db", str(project))
    assert code == 0, output
    text = flat(output)
    assert f"warning: {path}: column R '{COMMENTS}' holds free text like a question" in text
    assert "matches no question in the codebook" in text and '--map "R=ID"' in text
    with Store(project) as store:
        assert store.response("1-H1").attributes[COMMENTS] == comments[0]


def test_organisation_type_and_other_spellings(tmp_path: Path, project: Path) -> None:
    headers = forms_headers()
    headers[5], headers[6] = "Job title", "What type of organization do you work for?"
    path = write_forms(tmp_path / "types.xlsx", headers=headers)
    code, output = invoke("import", str(path), "--db", str(project))
    assert code == 0, output
    with Store(project) as store:
        attributes = store.response("2-H1").attributes
    assert attributes == {"role": ROLES[2], "organisation_type": ORGANISATIONS[2]}


# --- --map --------------------------------------------------------------------------------------


def renamed_headers() -> list[str]:
    """Headers that match no question, two of them with commas in them."""
    headers = forms_headers()
    headers[7] = "Pathways, whole-system, first statement"
    headers[8] = "Policy levers, national and local"
    return headers


def test_map_by_letter_and_by_header_with_commas(tmp_path: Path, project: Path) -> None:
    path = write_forms(tmp_path / "renamed.xlsx", headers=renamed_headers())
    code, output = invoke("import", str(path), "--dry-run", "--db", str(project))
    assert code == 0
    assert "column H 'Pathways, whole-system, first statement' holds free text" in flat(output)
    code, output = invoke(
        "import", str(path), "--db", str(project),
        "--map", "Pathways, whole-system, first statement=H1", "--map", "i=h2",
    )
    assert code == 0, output
    with Store(project) as store:
        assert store.response("5-H1").text.startswith("Respondent 5 on question 1:")
        assert store.response("5-H2").text.startswith("Respondent 5 on question 2:")
        assert {r.question for r in store.responses()} == set(CODEBOOK.question_ids)


def test_question_columns_keeps_headers_that_hold_commas(tmp_path: Path, project: Path) -> None:
    path = write_forms(tmp_path / "renamed.xlsx", headers=renamed_headers())
    code, output = invoke(
        "import", str(path), "--allow-unknown-questions", "--db", str(project),
        "--question-columns", "Pathways, whole-system, first statement,Policy levers, national and local",
    )
    assert code == 0, output
    with Store(project) as store:
        assert {r.question for r in store.responses()} == {
            "Pathways, whole-system, first statement", "Policy levers, national and local"}


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ("H=H99", "--map H=H99: 'H99' is not a question in the project's codebook (valid ids: H1, H2, H3, "
                  "H4, H5, H6, H7, H8, H9, Q10)"),
        ("Z=H1", "renamed.xlsx: --map: there is no column Z; the header row has 17 columns (A to Q)"),
        ("No such header=H1", "renamed.xlsx: --map: no column letter or header 'No such header'; the header "
                              "row has 17 columns: A 'ID'"),
        ("H", "--map 'H': expected COLUMN=QUESTION"),
        ("I=H3", "columns I 'Policy levers, national and local' (--map) and J 'The perceived utility of an "
                 "innovation,…' (similar words) both map to question H3"),
    ],
)
def test_map_errors_name_the_problem(tmp_path: Path, project: Path, mapping: str, message: str) -> None:
    path = write_forms(tmp_path / "renamed.xlsx", headers=renamed_headers())
    code, output = invoke("import", str(path), "--map", mapping, "--db", str(project))
    assert code == 1
    assert message in flat(output), output
    assert count(project) == 0


# --- re-importing under other question ids ------------------------------------------------------


def test_reimport_after_adding_the_codebook_is_refused(forms: Path, db_path: Path) -> None:
    code, output = invoke("import", str(forms), "--allow-unknown-questions", "--db", str(db_path))
    assert code == 0, output
    assert count(db_path) == RESPONDENTS * 10
    assert invoke("codebook", "add", "--example", "--db", str(db_path))[0] == 0
    code, output = invoke("import", str(forms), "--db", str(db_path))
    assert code == 1
    text = flat(output)
    assert "refused" in text and "under other question ids" in text
    assert "by content, 400 answer(s) with the same file name, row, respondent and text" in text
    assert "row 2, respondent 1: stored as 'Taking a whole pathway approach, consid…', now 'H1'" in text
    assert "by file hash" in text and "Nothing was imported" in text
    assert count(db_path) == RESPONDENTS * 10  # not 800
    # The same bytes under another name: caught by the file hash alone.
    renamed = shutil.copy(forms, forms.with_name("renamed.xlsx"))
    code, output = invoke("import", str(renamed), "--db", str(db_path))
    assert code == 1 and "by file hash" in flat(output) and "by content" not in flat(output)
    # A re-export with one more respondent (other bytes, same name): caught by content.
    write_forms(forms, respondents=RESPONDENTS + 1)
    code, output = invoke("import", str(forms), "--dry-run", "--db", str(db_path))
    assert code == 1 and "by content" in flat(output) and "by file hash" not in flat(output)
    assert count(db_path) == RESPONDENTS * 10


def test_reimport_with_another_map_is_refused(forms: Path, project: Path) -> None:
    assert invoke("import", str(forms), "--db", str(project))[0] == 0
    code, output = invoke("import", str(forms), "--map", "H=H2", "--map", "I=H1", "--db", str(project))
    assert code == 1, output
    assert "by content" in flat(output) and "'H1', now 'H2'" in flat(output)
    assert count(project) == RESPONDENTS * 10


def test_same_text_for_two_questions_is_not_a_conflict(tmp_path: Path, project: Path) -> None:
    """'Yes' to every hypothesis, imported twice: identical, so nothing is refused or added."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["ID", *QUESTION_TEXTS[:3]])
    sheet.append([1, "Yes", "Yes", "Yes"])
    path = tmp_path / "yes.xlsx"
    workbook.save(path)
    assert invoke("import", str(path), "--db", str(project))[0] == 0
    code, output = invoke("import", str(path), "--db", str(project))
    assert code == 0 and "Imported 0 new responses" in output, output


# --- the library pieces ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "question", "how"),
    [
        ("H1", "H1", "id"),
        ("Pathways", "H1", "short name"),
        ("Hypothesis 4: leadership", "H4", "number"),
        (QUESTION_TEXTS[0], "H1", "exact text"),
        ("1. " + QUESTION_TEXTS[0].upper().replace(",", " ,"), "H1", "normalised text"),
        (QUESTION_TEXTS[9].replace("'", "\u2019") + " (optional)", "Q10", "contains question text"),
        ("Timely national and local quantitative uptake data", "H5", "part of question text"),
        (QUESTION_TEXTS[6].replace("robust", "strong").replace("key", "main"), "H7", "similar words"),
    ],
)
def test_header_matching(header: str, question: str, how: str) -> None:
    match = match_question_header(header, CODEBOOK)
    assert (match.question_id, match.how) == (question, how)
    assert match.exact == (how in ("id", "short name", "exact text", "number"))


def test_ambiguous_or_contradicting_headers_are_not_matched() -> None:
    twins = Codebook(name="twins", questions=[
        Question(id="A1", text="Local leadership is essential to the spread and adoption of proven innovations."),
        Question(id="A2", text="Local leadership is essential to the spread and adoption of new innovations."),
    ])
    match = match_question_header("Local leadership is essential to the spread and adoption of innovations.", twins)
    assert match.question_id is None and "A1" in match.note and "A2" in match.note
    # Its number says one question, its text another: neither is assumed.
    match = match_question_header("Hypothesis 2: " + QUESTION_TEXTS[0], CODEBOOK)
    assert match.question_id is None and "H2" in match.note and "H1" in match.note
    assert match_question_header("What is your role?", CODEBOOK).question_id is None


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("What is your role?", "role"), ("Role", "role"), ("Job title", "role"),
        ("Which organisation do you work for?", "organisation"), ("Organization", "organisation"),
        ("Organisation type", "organisation_type"),
        ("What type of organisation do you work for?", "organisation_type"),
        ("Which stakeholder group do you represent?", "stakeholder"),
        ("Start time", None), ("Email", None), (QUESTION_TEXTS[3], None),
    ],
)
def test_attribution_names(header: str, name: str | None) -> None:
    assert attribution_name(header) == name


def test_column_letters_and_map_parsing() -> None:
    assert [column_letter(i) for i in (0, 25, 26, 27, 701, 702)] == ["A", "Z", "AA", "AB", "ZZ", "AAA"]
    assert [column_index(x) for x in ("A", "z", "AA", "ZZ", "AAA")] == [0, 25, 26, 701, 702]
    assert column_index("Role?") is None
    assert parse_column_map(["D=H1", "A header, with commas = and equals=H2"]) == [
        ("D", "H1"), ("A header, with commas = and equals", "H2")]
    with pytest.raises(ImportError_, match="expected COLUMN=QUESTION"):
        parse_column_map(["=H1"])
    assert split_question_columns("a, b,c,d", ["a, b", "c", "x"]) == ["a, b", "c", "d"]
