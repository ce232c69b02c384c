"""REFI-QDA projects (``.qdpx``): one text source per response, labels as coded segments,
streamed so memory grows with ids, not with whole responses."""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import IO
from xml.etree import ElementTree as ET

from coder.cells import xml_text
from coder.refi_qda.codebook import code_elements
from coder.refi_qda.qda_xml import (
    NOT_RELEVANT,
    ORIGIN,
    PROJECT_NS,
    QUOTE_CODE,
    STANCE_ROOT,
    clean,
    code_guid,
    fragment,
    guid,
    timestamp,
)
from coder.report.model import CodedResponse, iter_coded
from coder.store import Store, now
from schemas import Codebook


def locate(text: str, evidence: str | None) -> tuple[int, int] | None:
    """Character offsets [start, end) of ``evidence`` in ``text``, tolerating case, spacing,
    surrounding quotes and ellipses; None when it is not there."""
    if not evidence:
        return None
    candidate = evidence.strip().strip("\"'“”‘’").strip()
    candidate = re.sub(r"^(\.\.\.|…)\s*|\s*(\.\.\.|…)$", "", candidate)
    if not candidate:
        return None
    start = text.find(candidate)
    if start >= 0:
        return start, start + len(candidate)
    pattern = r"\s+".join(re.escape(word) for word in candidate.split())
    match = re.search(pattern, text, flags=re.IGNORECASE)
    return (match.start(), match.end()) if match else None


def _segments(c: CodedResponse) -> list[tuple[str, int, int, str]]:
    """(code key, start, end, description) of each coded segment of ``c``'s labels: a theme
    on its evidence quote when found in the text, else, like the rest, on the whole response."""
    assert c.labels is not None
    text = c.response.text
    segments: list[tuple[str, int, int, str]] = []
    whole = (0, len(text))
    if not c.labels.relevant:
        segments.append((NOT_RELEVANT, *whole, c.labels.relevance_reason or "not relevant"))
    for code in dict.fromkeys(c.labels.themes):
        evidence = c.evidence(code)
        span = locate(text, evidence)
        note = f"evidence: {evidence}" if span else "whole response"
        segments.append((code, *(span or whole), note))
    if c.labels.stance:
        segments.append((f"stance:{c.labels.stance}", *whole, "stance"))
    if c.labels.quote:
        segments.append((QUOTE_CODE, *whole, "flagged quote"))
    return segments


class ProjectWriter:
    """Writes ``project.qde`` from one pass over the coded responses.

    Each response's ``TextSource`` is serialised as it arrives into a spool file; what the
    document needs before the sources (users, extra codes, variables, cases) and after them
    (notes, sets) is collected on the way: names, the response ids of each case and set,
    and reviewers' notes, so memory grows with those ids, not with whole responses.
    Elements are built without a namespace and the root declares it as the default one, so
    each fragment serialises alone without repeating the declaration.
    """

    def __init__(self, codebook: Codebook) -> None:
        self.codebook = codebook
        self.users: dict[str, str] = {}
        self.stance_ids = list(codebook.stance_ids)
        self.attribute_names: dict[str, None] = {}
        self.respondents: dict[str, list[str]] = {}
        self.questions: dict[str, list[str]] = {}
        self.themes_used: set[str] = set()
        self.notes: list[tuple[str, str, str]] = []  # guid, author, text
        self.count = 0

    def user(self, name: str) -> str:
        return self.users.setdefault(name, guid("user", name))

    def add(self, c: CodedResponse, spool: IO[bytes]) -> str:
        """Write ``c``'s TextSource to ``spool``; returns its file name in ``sources/``."""
        response = c.response
        self.count += 1
        source_guid = guid("source", response.id)
        self._collect(c)
        source = ET.Element(
            "TextSource",
            {
                "guid": source_guid,
                "name": response.id,
                "plainTextPath": f"internal://{source_guid}.txt",
            },
        )
        question = c.question
        description = f"{question}: {self.codebook.question_text(question)}" if question else ""
        ET.SubElement(source, "Description").text = f"{description} [labels: {c.source}]".strip()
        if c.labels is not None:
            self._code_segments(source, c)
        for index, text in enumerate(c.notes):
            note_guid = guid("note", f"{response.id}:{index}")
            author, _, body = text.partition(": ")
            self.notes.append((note_guid, author, body))
            ET.SubElement(source, "NoteRef", {"targetGUID": note_guid})
        for attribute, value in response.attributes.items():
            variable_value = ET.SubElement(source, "VariableValue")
            ET.SubElement(
                variable_value, "VariableRef", {"targetGUID": guid("variable", attribute)}
            )
            ET.SubElement(variable_value, "TextValue").text = "" if value is None else str(value)
        spool.write(fragment(source, level=2))
        return f"{source_guid}.txt"

    def _collect(self, c: CodedResponse) -> None:
        """Note what the head and tail of the document need from ``c``: attribute names, its
        case and set, stance values and codes outside the codebook."""
        response = c.response
        self.attribute_names.update(dict.fromkeys(response.attributes))
        if response.respondent:
            self.respondents.setdefault(response.respondent, []).append(response.id)
        self.questions.setdefault(c.question, []).append(response.id)
        if c.labels is not None:
            if c.labels.stance and c.labels.stance not in self.stance_ids:
                self.stance_ids.append(c.labels.stance)
            self.themes_used.update(c.labels.themes)

    def _code_segments(self, source: ET.Element, c: CodedResponse) -> None:
        """A coded PlainTextSelection under ``source`` for each of ``c``'s labels, by the
        reviewer who decided them or a user named after the model."""
        assert c.labels is not None
        response = c.response
        when: str | None
        if c.source == "reviewed" and c.decision is not None:
            author, when = c.decision.reviewer, c.decision.created_at
        else:
            model = c.proposal.model if c.proposal else "model"
            author, when = f"model:{model}", c.proposal.created_at if c.proposal else None
        user_guid = self.user(author)
        for key, start, end, note in _segments(c):
            selection_guid = guid("selection", f"{response.id}:{key}:{start}:{end}")
            attributes = {
                "guid": selection_guid,
                "name": response.text[start:end][:60],
                "startPosition": str(start),
                "endPosition": str(end),
                "creatingUser": user_guid,
            }
            if timestamp(when):
                attributes["creationDateTime"] = timestamp(when) or ""
            selection = ET.SubElement(source, "PlainTextSelection", attributes)
            ET.SubElement(selection, "Description").text = note
            coding = ET.SubElement(
                selection,
                "Coding",
                {"guid": guid("coding", selection_guid), "creatingUser": user_guid},
            )
            target = (
                code_guid(key)
                if not key.startswith(("stance:", "coder:"))
                else guid("code", key)
            )
            ET.SubElement(coding, "CodeRef", {"targetGUID": target})

    def write(self, out: IO[bytes], spool: IO[bytes], name: str, created_at: str | None) -> None:
        """The whole document: head, the spooled sources, notes and sets."""
        for _, author, _ in self.notes:
            self.user(author)
        root = ET.Element("Project", {"xmlns": PROJECT_NS, "name": name, "origin": ORIGIN})
        stamp = timestamp(created_at or now())
        if stamp:
            root.set("creationDateTime", stamp)
        clean(root)
        start_tag = ET.tostring(root, encoding="unicode")
        assert start_tag.endswith(" />")
        out.write(b"<?xml version='1.0' encoding='utf-8'?>\n")
        out.write(start_tag[: -len(" />")].encode("utf-8") + b">")

        if self.users:
            users = ET.Element("Users")
            for user_name, user_guid in self.users.items():
                ET.SubElement(users, "User", {"guid": user_guid, "name": user_name})
            out.write(fragment(users, level=1))

        out.write(fragment(self._codebook_element(), level=1))
        if self.attribute_names:
            variables = ET.Element("Variables")
            for attribute in self.attribute_names:
                ET.SubElement(
                    variables,
                    "Variable",
                    {
                        "guid": guid("variable", attribute),
                        "name": attribute,
                        "typeOfVariable": "Text",
                    },
                )
            out.write(fragment(variables, level=1))

        # Cases and sets name every source: written one case or set at a time.
        if self.respondents:
            out.write(b"\n  <Cases>")
            for respondent, response_ids in self.respondents.items():
                case = ET.Element("Case", {"guid": guid("case", respondent), "name": respondent})
                for response_id in response_ids:
                    ET.SubElement(case, "SourceRef", {"targetGUID": guid("source", response_id)})
                out.write(fragment(case, level=2))
            out.write(b"\n  </Cases>")

        if self.count:
            out.write(b"\n  <Sources>")
            spool.seek(0)
            shutil.copyfileobj(spool, out)
            out.write(b"\n  </Sources>")

        self._write_notes_and_sets(out)

    def _write_notes_and_sets(self, out: IO[bytes]) -> None:
        """The parts after the sources: reviewers' notes, and a set of sources per question."""
        codebook = self.codebook
        if self.notes:
            notes_element = ET.Element("Notes")
            for note_guid, author, body in self.notes:
                note_element = ET.SubElement(
                    notes_element,
                    "Note",
                    {
                        "guid": note_guid,
                        "name": f"Note by {author}",
                        "creatingUser": self.user(author),
                    },
                )
                ET.SubElement(note_element, "PlainTextContent").text = body
            out.write(fragment(notes_element, level=1))

        if self.questions:
            out.write(b"\n  <Sets>")
            for question_id, response_ids in self.questions.items():
                element = ET.Element("Set", {"guid": guid("set", question_id), "name": question_id})
                ET.SubElement(element, "Description").text = codebook.question_text(question_id)
                for theme in (
                    codebook.themes_for(question_id) if question_id in codebook.question_ids else []
                ):
                    ET.SubElement(element, "MemberCode", {"targetGUID": code_guid(theme.id)})
                for response_id in response_ids:
                    ET.SubElement(
                        element, "MemberSource", {"targetGUID": guid("source", response_id)}
                    )
                out.write(fragment(element, level=2))
            out.write(b"\n  </Sets>")
        out.write(b"\n</Project>")

    def _codebook_element(self) -> ET.Element:
        """The CodeBook: the codebook's codes, coder's stance, not-relevant and quote codes,
        and a code for each label the codebook lacks."""
        codebook = self.codebook
        codebook_element = ET.Element("CodeBook")
        codes = ET.SubElement(codebook_element, "Codes")
        code_elements(codes, codebook, "")
        stance_root = ET.SubElement(
            codes,
            "Code",
            {
                "guid": guid("code", STANCE_ROOT),
                "name": "Stance",
                "isCodable": "false",
                "color": "#455A64",
            },
        )
        ET.SubElement(stance_root, "Description").text = (
            codebook.stance.description if codebook.stance else "Stance"
        ) or "Stance"
        labels = {
            v.id: v.label or v.id for v in (codebook.stance.values if codebook.stance else [])
        }
        for stance_id in self.stance_ids:
            element = ET.SubElement(
                stance_root,
                "Code",
                {
                    "guid": guid("code", f"stance:{stance_id}"),
                    "name": labels.get(stance_id, stance_id),
                    "isCodable": "true",
                    "color": "#607D8B",
                },
            )
            ET.SubElement(element, "Description").text = f"Stance: {stance_id}"
        for key, label, colour, description in (
            (
                NOT_RELEVANT,
                "Not relevant",
                "#9E9E9E",
                "Excluded from the analysis as not relevant.",
            ),
            (QUOTE_CODE, "Flagged quote", "#FFC107", "A reviewer flagged this response as a quote."),
        ):
            element = ET.SubElement(
                codes,
                "Code",
                {"guid": guid("code", key), "name": label, "isCodable": "true", "color": colour},
            )
            ET.SubElement(element, "Description").text = description
        # Codes the labels use that the codebook lacks still need a Code element.
        for code in sorted(self.themes_used - set(codebook.theme_ids)):
            element = ET.SubElement(
                codes, "Code", {"guid": code_guid(code), "name": code, "isCodable": "true"}
            )
            ET.SubElement(element, "Description").text = "(not in the codebook)"
        return codebook_element


def write_qdpx(
    store: Store,
    path: Path,
    codebook: Codebook | None = None,
    name: str | None = None,
    created_at: str | None = None,
) -> int:
    """Write the project as a ``.qdpx`` zip; returns the number of sources.

    Streamed: responses are read a batch at a time, each source text goes into the zip as
    it is read, and each source's XML into a spool file beside ``path`` that is copied into
    ``project.qde`` at the end.
    """
    if codebook is None:
        _, codebook = store.codebook()
    path.parent.mkdir(parents=True, exist_ok=True)
    project = ProjectWriter(codebook)
    with (
        tempfile.TemporaryFile(dir=path.parent) as spool,
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
    ):
        for coded in iter_coded(store):
            file_name = project.add(coded, spool)
            # The same replacement as in the XML, so selections' positions match the text.
            archive.writestr(f"sources/{file_name}", xml_text(coded.response.text).encode("utf-8"))
        with archive.open("project.qde", "w", force_zip64=True) as document:
            project.write(document, spool, name or codebook.name, created_at)
    return project.count
