"""REFI-QDA exchange: codebooks (.qdc) and projects (.qdpx) that NVivo, ATLAS.ti, MAXQDA and
QualCoder read, and import of a .qdc codebook.

- ``.qdc``: the codebook's themes as codes (sub-themes nested under their parent), one set of
  codes per question.
- ``.qdpx``: a zip of ``project.qde`` plus ``sources/<GUID>.txt``, one text source per response;
  each theme is a coded segment on the model's evidence quote (character offsets into the
  text) or, without evidence, on the whole response; stance, 'not relevant' and flagged quotes
  are codes too; respondents are cases, respondent attributes are variables, reviewer notes
  are notes. Reviewed labels are coded by their reviewer, model-only labels by a user named
  after the model, so an analyst can tell them apart in any tool.

GUIDs are UUID5s of stable names (``code:<theme id>``, ``source:<response id>`` ...), so the
same theme keeps its GUID in every export and re-imports update rather than duplicate.
The schemas (MIT, REFI) are in ``coder/refi_qda_schema/``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import uuid
import zipfile
from importlib import resources
from pathlib import Path
from typing import IO, Any
from xml.etree import ElementTree as ET

from coder import __version__
from coder.cells import xml_text
from coder.errors import CodebookError
from coder.report.model import CodedResponse, iter_coded
from coder.store import Store, now
from schemas import Codebook, Theme

CODEBOOK_NS = "urn:QDA-XML:codebook:1.0"
PROJECT_NS = "urn:QDA-XML:project:1.0"
ORIGIN = f"coder {__version__}"
#: Namespace of every GUID coder writes (a UUID5 of a fixed URL).
GUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://coder.invalid/refi-qda")

_PALETTE = [
    "#1F77B4",
    "#FF7F0E",
    "#2CA02C",
    "#D62728",
    "#9467BD",
    "#8C564B",
    "#E377C2",
    "#7F7F7F",
    "#BCBD22",
    "#17BECF",
]
_STANCE_ROOT = "coder:stance"
_NOT_RELEVANT = "coder:not_relevant"
_QUOTE = "coder:quote"


def guid(kind: str, key: str) -> str:
    """A stable GUID (upper-case UUID5) for an object of ``kind`` named ``key``."""
    return str(uuid.uuid5(GUID_NAMESPACE, f"{kind}:{key}")).upper()


def code_guid(theme_id: str) -> str:
    """The GUID of a theme's code: the same in every export of any codebook version."""
    return guid("code", theme_id)


def schema_path(name: str) -> Path:
    """Path of a shipped REFI-QDA schema: 'Codebook.xsd' or 'Project.xsd'."""
    return Path(str(resources.files("coder").joinpath("refi_qda_schema", name)))


# --- codebook ------------------------------------------------------------------------
def theme_description(theme: Theme) -> str:
    """Definition plus include/exclude/examples, one prefixed line each (parsed back on import)."""
    lines = [theme.definition.strip()]
    lines += [f"Include: {item}" for item in theme.include]
    lines += [f"Exclude: {item}" for item in theme.exclude]
    lines += [f"Example: {item}" for item in theme.examples]
    return "\n".join(line for line in lines if line)


def _children(codebook: Codebook) -> dict[str | None, list[Theme]]:
    known = set(codebook.theme_ids)
    tree: dict[str | None, list[Theme]] = {}
    for theme in codebook.themes:
        parent = theme.parent if theme.parent in known and theme.parent != theme.id else None
        tree.setdefault(parent, []).append(theme)
    return tree


def _code_elements(parent: ET.Element, codebook: Codebook, ns: str) -> None:
    """Add the codebook's codes under ``parent`` (tags in ``ns``; none when it is '')."""
    tree = _children(codebook)
    prefix = f"{{{ns}}}" if ns else ""

    def add(into: ET.Element, theme: Theme, colour: str, seen: frozenset[str]) -> None:
        element = ET.SubElement(
            into,
            f"{prefix}Code",
            {
                "guid": code_guid(theme.id),
                "name": theme.label,
                "isCodable": "true",
                "color": colour,
            },
        )
        ET.SubElement(element, f"{prefix}Description").text = theme_description(theme)
        for child in tree.get(theme.id, []):
            if child.id not in seen:  # a parent cycle must not recurse forever
                add(element, child, colour, seen | {child.id})

    for index, theme in enumerate(tree.get(None, [])):
        add(parent, theme, _PALETTE[index % len(_PALETTE)], frozenset({theme.id}))


def codebook_to_qdc(codebook: Codebook) -> bytes:
    """The codebook as a REFI-QDA ``.qdc`` document (UTF-8 XML)."""
    ET.register_namespace("", CODEBOOK_NS)
    root = ET.Element(f"{{{CODEBOOK_NS}}}CodeBook", {"origin": ORIGIN})
    codes = ET.SubElement(root, f"{{{CODEBOOK_NS}}}Codes")
    _code_elements(codes, codebook, CODEBOOK_NS)
    if not len(codes):
        raise CodebookError(codebook.name, ["the codebook has no themes to export"])
    sets = [(q.id, q.short_name or q.id, codebook.themes_for(q.id)) for q in codebook.questions]
    sets = [item for item in sets if item[2]]
    if sets:
        sets_element = ET.SubElement(root, f"{{{CODEBOOK_NS}}}Sets")
        for question_id, name, themes in sets:
            element = ET.SubElement(
                sets_element,
                f"{{{CODEBOOK_NS}}}Set",
                {"guid": guid("set", question_id), "name": f"{question_id}: {name}"},
            )
            ET.SubElement(element, f"{{{CODEBOOK_NS}}}Description").text = codebook.question_text(
                question_id
            )
            for theme in themes:
                ET.SubElement(
                    element, f"{{{CODEBOOK_NS}}}MemberCode", {"guid": code_guid(theme.id)}
                )
    return _serialise(root)


def _serialise(root: ET.Element) -> bytes:
    _clean(root)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _local(tag: str) -> str:
    # Namespace-agnostic: tools disagree on (or omit) the namespace.
    return tag.rsplit("}", 1)[-1]


def slugify(text: str) -> str:
    """A theme id from a code name: lower case, words joined by '_'."""
    slug = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    return slug or "code"


def qdc_to_codebook(
    data: bytes, name: str = "Imported codebook", source: str = "<qdc>"
) -> Codebook:
    """Read a REFI-QDA codebook: nested codes become themes with ``parent``.

    Descriptions become definitions (coder's 'Include:'/'Exclude:'/'Example:' lines are read
    back into their fields). Sets become questions' theme lists only when named like coder's
    ('ID: name'); other tools' sets are ignored.
    """
    try:
        root = ET.fromstring(data)
    except ET.ParseError as error:
        raise CodebookError(source, [f"not well-formed XML: {error}"]) from error
    if _local(root.tag) not in ("CodeBook", "Project"):
        raise CodebookError(source, [f"root element is <{_local(root.tag)}>, expected <CodeBook>"])
    codes = next((child for child in root.iter() if _local(child.tag) == "Codes"), None)
    if codes is None:
        raise CodebookError(source, ["no <Codes> element"])
    themes: list[Theme] = []
    used: set[str] = set()
    by_guid: dict[str, str] = {}
    problems: list[str] = []

    def walk(element: ET.Element, parent: str | None, path: str) -> None:
        for index, code in enumerate(c for c in element if _local(c.tag) == "Code"):
            label = (code.get("name") or "").strip()
            where = f"{path}/Code[{index + 1}]"
            if not label:
                problems.append(f"{where}: a code without a name")
                continue
            if code.get("guid", "").upper() == guid("code", _STANCE_ROOT):
                continue  # coder's own stance codes are not themes
            theme_id, counter = slugify(label), 2
            base = theme_id
            while theme_id in used:
                theme_id, counter = f"{base}_{counter}", counter + 1
            used.add(theme_id)
            by_guid[code.get("guid", "").upper()] = theme_id
            description = next((c.text or "" for c in code if _local(c.tag) == "Description"), "")
            fields = _parse_description(description)
            themes.append(
                Theme(
                    id=theme_id,
                    label=label,
                    definition=fields["definition"] or label,
                    include=fields["include"],
                    exclude=fields["exclude"],
                    examples=fields["examples"],
                    parent=parent,
                )
            )
            walk(code, theme_id, where)

    walk(codes, None, "CodeBook/Codes")
    if problems:
        raise CodebookError(source, problems)
    if not themes:
        raise CodebookError(source, ["the codebook has no codes"])
    return Codebook(name=name, themes=themes)


def _parse_description(text: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"definition": "", "include": [], "exclude": [], "examples": []}
    definition = []
    prefixes = {"Include: ": "include", "Exclude: ": "exclude", "Example: ": "examples"}
    for line in text.strip().splitlines():
        for prefix, key in prefixes.items():
            if line.startswith(prefix):
                fields[key].append(line[len(prefix) :].strip())
                break
        else:
            definition.append(line)
    fields["definition"] = "\n".join(definition).strip()
    return fields


# --- project ------------------------------------------------------------------------------
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


def _timestamp(value: str | None) -> str | None:
    # xsd:dateTime wants 'T' and an optional zone; the store already writes ISO 8601.
    return value.replace(" ", "T") if value else None


class _ProjectWriter:
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
        codebook = self.codebook
        response = c.response
        self.count += 1
        source_guid = guid("source", response.id)
        self.attribute_names.update(dict.fromkeys(response.attributes))
        if response.respondent:
            self.respondents.setdefault(response.respondent, []).append(response.id)
        self.questions.setdefault(c.question, []).append(response.id)
        if c.labels is not None:
            if c.labels.stance and c.labels.stance not in self.stance_ids:
                self.stance_ids.append(c.labels.stance)
            self.themes_used.update(c.labels.themes)
        source = ET.Element(
            "TextSource",
            {
                "guid": source_guid,
                "name": response.id,
                "plainTextPath": f"internal://{source_guid}.txt",
            },
        )
        question = c.question
        description = f"{question}: {codebook.question_text(question)}" if question else ""
        ET.SubElement(source, "Description").text = f"{description} [labels: {c.source}]".strip()
        if c.labels is not None:
            when: str | None
            if c.source == "reviewed" and c.decision is not None:
                author, when = c.decision.reviewer, c.decision.created_at
            else:
                model = c.proposal.model if c.proposal else "model"
                author, when = f"model:{model}", c.proposal.created_at if c.proposal else None
            user_guid = self.user(author)
            segments: list[tuple[str, int, int, str]] = []  # code key, start, end, description
            whole = (0, len(response.text))
            if not c.labels.relevant:
                segments.append(
                    (_NOT_RELEVANT, *whole, c.labels.relevance_reason or "not relevant")
                )
            for code in dict.fromkeys(c.labels.themes):
                evidence = c.evidence(code)
                span = locate(response.text, evidence)
                note = f"evidence: {evidence}" if span else "whole response"
                segments.append((code, *(span or whole), note))
            if c.labels.stance:
                segments.append((f"stance:{c.labels.stance}", *whole, "stance"))
            if c.labels.quote:
                segments.append((_QUOTE, *whole, "flagged quote"))
            for key, start, end, note in segments:
                selection_guid = guid("selection", f"{response.id}:{key}:{start}:{end}")
                attributes = {
                    "guid": selection_guid,
                    "name": response.text[start:end][:60],
                    "startPosition": str(start),
                    "endPosition": str(end),
                    "creatingUser": user_guid,
                }
                if _timestamp(when):
                    attributes["creationDateTime"] = _timestamp(when) or ""
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
        spool.write(_fragment(source, level=2))
        return f"{source_guid}.txt"

    def write(self, out: IO[bytes], spool: IO[bytes], name: str, created_at: str | None) -> None:
        """The whole document: head, the spooled sources, notes and sets."""
        codebook = self.codebook
        for _, author, _ in self.notes:
            self.user(author)
        root = ET.Element("Project", {"xmlns": PROJECT_NS, "name": name, "origin": ORIGIN})
        stamp = _timestamp(created_at or now())
        if stamp:
            root.set("creationDateTime", stamp)
        _clean(root)
        start_tag = ET.tostring(root, encoding="unicode")
        assert start_tag.endswith(" />")
        out.write(b"<?xml version='1.0' encoding='utf-8'?>\n")
        out.write(start_tag[: -len(" />")].encode("utf-8") + b">")

        if self.users:
            users = ET.Element("Users")
            for user_name, user_guid in self.users.items():
                ET.SubElement(users, "User", {"guid": user_guid, "name": user_name})
            out.write(_fragment(users, level=1))

        codebook_element = ET.Element("CodeBook")
        codes = ET.SubElement(codebook_element, "Codes")
        _code_elements(codes, codebook, "")
        stance_root = ET.SubElement(
            codes,
            "Code",
            {
                "guid": guid("code", _STANCE_ROOT),
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
                _NOT_RELEVANT,
                "Not relevant",
                "#9E9E9E",
                "Excluded from the analysis as not relevant.",
            ),
            (_QUOTE, "Flagged quote", "#FFC107", "A reviewer flagged this response as a quote."),
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
        out.write(_fragment(codebook_element, level=1))

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
            out.write(_fragment(variables, level=1))

        # Cases and sets name every source: written one case or set at a time.
        if self.respondents:
            out.write(b"\n  <Cases>")
            for respondent, response_ids in self.respondents.items():
                case = ET.Element("Case", {"guid": guid("case", respondent), "name": respondent})
                for response_id in response_ids:
                    ET.SubElement(case, "SourceRef", {"targetGUID": guid("source", response_id)})
                out.write(_fragment(case, level=2))
            out.write(b"\n  </Cases>")

        if self.count:
            out.write(b"\n  <Sources>")
            spool.seek(0)
            shutil.copyfileobj(spool, out)
            out.write(b"\n  </Sources>")

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
            out.write(_fragment(notes_element, level=1))

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
                out.write(_fragment(element, level=2))
            out.write(b"\n  </Sets>")
        out.write(b"\n</Project>")


def _clean(root: ET.Element) -> None:
    # ElementTree writes control characters as they are, which XML 1.0 forbids: a response
    # holding an ESC made the whole project unreadable. Each becomes U+FFFD (one character
    # for one, so text positions stay right).
    for element in root.iter():
        if element.text:
            element.text = xml_text(element.text)
        if element.tail:
            element.tail = xml_text(element.tail)
        for name, value in element.attrib.items():
            element.set(name, xml_text(value))


def _fragment(element: ET.Element, level: int) -> bytes:
    """``element`` indented as a child at ``level`` of the document, on a new line."""
    _clean(element)
    ET.indent(element, level=level)
    return ("\n" + "  " * level + ET.tostring(element, encoding="unicode")).encode("utf-8")


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
    project = _ProjectWriter(codebook)
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


def write_qdc(codebook: Codebook, path: Path) -> None:
    """Write the codebook as a ``.qdc`` file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(codebook_to_qdc(codebook))


def validate_xml(data: bytes, schema: str) -> list[str]:
    """Problems found validating ``data`` against a shipped schema ('Codebook.xsd' or
    'Project.xsd'); empty when valid. Needs the ``xmlschema`` package."""
    import xmlschema

    compiled = xmlschema.XMLSchema(str(schema_path(schema)))
    return [str(error.reason or error) for error in compiled.iter_errors(data.decode("utf-8"))]
