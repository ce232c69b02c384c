"""REFI-QDA XML shared by codebooks and projects: namespaces, stable GUIDs, coder's own
codes, serialising (control characters made safe) and validation against the shipped schemas."""

from __future__ import annotations

import uuid
from importlib import resources
from pathlib import Path
from xml.etree import ElementTree as ET

from coder import __version__
from coder.cells import xml_text

CODEBOOK_NS = "urn:QDA-XML:codebook:1.0"
PROJECT_NS = "urn:QDA-XML:project:1.0"
ORIGIN = f"coder {__version__}"


#: Namespace of every GUID coder writes (a UUID5 of a fixed URL).
GUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://coder.invalid/refi-qda")
PALETTE = [
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


STANCE_ROOT = "coder:stance"
NOT_RELEVANT = "coder:not_relevant"
QUOTE_CODE = "coder:quote"


def guid(kind: str, key: str) -> str:
    """A stable GUID (upper-case UUID5) for an object of ``kind`` named ``key``."""
    return str(uuid.uuid5(GUID_NAMESPACE, f"{kind}:{key}")).upper()


def code_guid(theme_id: str) -> str:
    """The GUID of a theme's code: the same in every export of any codebook version."""
    return guid("code", theme_id)


def schema_path(name: str) -> Path:
    """Path of a shipped REFI-QDA schema: 'Codebook.xsd' or 'Project.xsd'."""
    return Path(str(resources.files("coder").joinpath("refi_qda_schema", name)))


def timestamp(value: str | None) -> str | None:
    # xsd:dateTime wants 'T' and an optional zone; the store already writes ISO 8601.
    return value.replace(" ", "T") if value else None


def serialise(root: ET.Element) -> bytes:
    clean(root)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def local_name(tag: str) -> str:
    # Namespace-agnostic: tools disagree on (or omit) the namespace.
    return tag.rsplit("}", 1)[-1]


def clean(root: ET.Element) -> None:
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


def fragment(element: ET.Element, level: int) -> bytes:
    """``element`` indented as a child at ``level`` of the document, on a new line."""
    clean(element)
    ET.indent(element, level=level)
    return ("\n" + "  " * level + ET.tostring(element, encoding="unicode")).encode("utf-8")


def validate_xml(data: bytes, schema: str) -> list[str]:
    """Problems found validating ``data`` against a shipped schema ('Codebook.xsd' or
    'Project.xsd'); empty when valid. Needs the ``xmlschema`` package."""
    import xmlschema

    compiled = xmlschema.XMLSchema(str(schema_path(schema)))
    return [str(error.reason or error) for error in compiled.iter_errors(data.decode("utf-8"))]
