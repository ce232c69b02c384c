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

from coder.refi_qda.codebook import (
    codebook_to_qdc,
    qdc_to_codebook,
    slugify,
    theme_description,
    write_qdc,
)
from coder.refi_qda.project import ProjectWriter, locate, write_qdpx
from coder.refi_qda.qda_xml import (
    CODEBOOK_NS,
    GUID_NAMESPACE,
    ORIGIN,
    PROJECT_NS,
    code_guid,
    guid,
    schema_path,
    validate_xml,
)

__all__ = [
    "CODEBOOK_NS",
    "GUID_NAMESPACE",
    "ORIGIN",
    "PROJECT_NS",
    "ProjectWriter",
    "code_guid",
    "codebook_to_qdc",
    "guid",
    "locate",
    "qdc_to_codebook",
    "schema_path",
    "slugify",
    "theme_description",
    "validate_xml",
    "write_qdc",
    "write_qdpx",
]
