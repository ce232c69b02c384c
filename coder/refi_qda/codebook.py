"""REFI-QDA codebooks (``.qdc``): coder's themes as nested codes, and reading a ``.qdc`` back."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from coder.errors import CodebookError
from coder.refi_qda.qda_xml import (
    CODEBOOK_NS,
    ORIGIN,
    PALETTE,
    STANCE_ROOT,
    code_guid,
    guid,
    local_name,
    serialise,
)
from schemas import Codebook, Theme


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


def code_elements(parent: ET.Element, codebook: Codebook, ns: str) -> None:
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
        add(parent, theme, PALETTE[index % len(PALETTE)], frozenset({theme.id}))


def codebook_to_qdc(codebook: Codebook) -> bytes:
    """The codebook as a REFI-QDA ``.qdc`` document (UTF-8 XML)."""
    ET.register_namespace("", CODEBOOK_NS)
    root = ET.Element(f"{{{CODEBOOK_NS}}}CodeBook", {"origin": ORIGIN})
    codes = ET.SubElement(root, f"{{{CODEBOOK_NS}}}Codes")
    code_elements(codes, codebook, CODEBOOK_NS)
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
    return serialise(root)


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
    if local_name(root.tag) not in ("CodeBook", "Project"):
        raise CodebookError(source, [f"root element is <{local_name(root.tag)}>, expected <CodeBook>"])
    codes = next((child for child in root.iter() if local_name(child.tag) == "Codes"), None)
    if codes is None:
        raise CodebookError(source, ["no <Codes> element"])
    themes: list[Theme] = []
    used: set[str] = set()
    by_guid: dict[str, str] = {}
    problems: list[str] = []

    def walk(element: ET.Element, parent: str | None, path: str) -> None:
        for index, code in enumerate(c for c in element if local_name(c.tag) == "Code"):
            label = (code.get("name") or "").strip()
            where = f"{path}/Code[{index + 1}]"
            if not label:
                problems.append(f"{where}: a code without a name")
                continue
            if code.get("guid", "").upper() == guid("code", STANCE_ROOT):
                continue  # coder's own stance codes are not themes
            theme_id, counter = slugify(label), 2
            base = theme_id
            while theme_id in used:
                theme_id, counter = f"{base}_{counter}", counter + 1
            used.add(theme_id)
            by_guid[code.get("guid", "").upper()] = theme_id
            description = next((c.text or "" for c in code if local_name(c.tag) == "Description"), "")
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


def write_qdc(codebook: Codebook, path: Path) -> None:
    """Write the codebook as a ``.qdc`` file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(codebook_to_qdc(codebook))
