"""Gold-coded sets in the format of /work/shared/gold/README.md.

A gold set is a codebook file (the gold ``codebook.json`` shape, or any codebook
``coder.codebook.load_codebook`` reads) and an items file (JSONL, one item a line:
``{id, text, question, group, labels, uncertain_labels?, stance, relevant, meta}``).
:func:`load_gold` takes a folder holding ``codebook.json`` and ``dev.jsonl`` (or
``items.jsonl``), or the two files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coder.codebook import load_codebook
from coder.errors import CoderError
from coder.jsonl import jsonl_objects as read_jsonl
from schemas import Codebook, Response

ITEM_FILE_NAMES = ("dev.jsonl", "items.jsonl")
#: A gold folder's codebook: gold-set JSON, or a coder codebook in YAML or JSON.
CODEBOOK_FILE_NAMES = ("codebook.json", "codebook.yaml", "codebook.yml")


class GoldError(CoderError):
    """A gold set cannot be read; the message names the file, line and field."""


class GoldItem(BaseModel):
    """One human-coded item."""

    model_config = ConfigDict(extra="ignore")

    id: str
    text: str = ""
    question: str | None = None
    group: str | None = None
    labels: list[str] = Field(default_factory=list)
    uncertain_labels: list[str] = Field(default_factory=list)
    stance: str | None = None
    relevant: bool | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @property
    def scope(self) -> str | None:
        """The id that decides which group-limited codes apply (group, else question)."""
        return self.group if self.group is not None else self.question

    def to_response(self) -> Response:
        """The item as a response to classify (the question id travels with it)."""
        return Response(
            id=self.id, text=self.text, question=self.question, attributes=dict(self.meta)
        )


def find_gold_files(folder: Path) -> tuple[Path, Path]:
    """The codebook (codebook.json, .yaml or .yml) and the items file (dev.jsonl or
    items.jsonl) of a gold folder."""
    codebook = next(
        (folder / name for name in CODEBOOK_FILE_NAMES if (folder / name).is_file()), None
    )
    if codebook is None:
        raise GoldError(
            f"{folder}: no codebook.json or codebook.yaml in this folder (pass --codebook FILE)"
        )
    for name in ITEM_FILE_NAMES:
        if (folder / name).is_file():
            return codebook, folder / name
    raise GoldError(f"{folder}: no dev.jsonl or items.jsonl in this folder (pass --items FILE)")


def jsonl_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a gold JSONL file (GoldError)."""
    return read_jsonl(path, GoldError)


ModelT = TypeVar("ModelT", bound=BaseModel)


def validated(model: type[ModelT], data: dict[str, Any], path: Path, number: int) -> ModelT:
    """``data`` (line ``number`` of ``path``) as ``model``; a GoldError naming the line and
    the first field that failed."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise GoldError(f"{path}, line {number}, field '{field}': {first['msg']}") from None


def read_items(path: Path) -> list[GoldItem]:
    """Read a gold items JSONL file; errors name the line and field."""
    items: list[GoldItem] = []
    seen: set[str] = set()
    for number, data in jsonl_objects(path):
        item = validated(GoldItem, data, path, number)
        if item.id in seen:
            raise GoldError(f"{path}, line {number}, field 'id': duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    return items


def load_gold(
    path: str | Path | None = None,
    *,
    codebook: str | Path | None = None,
    items: str | Path | None = None,
) -> tuple[Codebook, list[GoldItem]]:
    """Load a gold set: a folder, or ``codebook=`` and ``items=`` files.

    A folder supplies whichever of the two files is not given explicitly.
    """
    codebook_path = Path(codebook) if codebook else None
    items_path = Path(items) if items else None
    if path is not None:
        folder = Path(path)
        if folder.is_dir():
            found_codebook, found_items = (None, None)
            if codebook_path is None or items_path is None:
                found_codebook, found_items = find_gold_files(folder)
            codebook_path = codebook_path or found_codebook
            items_path = items_path or found_items
        elif folder.is_file():
            items_path = items_path or folder
        else:
            raise GoldError(f"{folder}: no such file or folder")
    if codebook_path is None or items_path is None:
        raise GoldError("give a gold folder, or both --codebook FILE and --items FILE")
    if not codebook_path.is_file():
        raise GoldError(f"{codebook_path}: no such codebook file")
    if not items_path.is_file():
        raise GoldError(f"{items_path}: no such items file")
    return load_codebook(codebook_path), read_items(items_path)


def data_hash(items: Sequence[GoldItem]) -> str:
    """A stable hash of the items scored (ids, texts and gold labels)."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(item.model_dump_json().encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()
