"""Reading JSON Lines files of objects, with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from coder.errors import CoderError


def jsonl_objects(
    path: Path, error: type[CoderError] = CoderError
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file; ids become strings.

    Problems raise ``error`` naming the file and line: unreadable file, invalid JSON, a line
    that is not a JSON object.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as problem:
        raise error(f"{path}: cannot read: {problem}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as problem:
            raise error(f"{path}, line {number}: not valid JSON ({problem.msg})") from None
        if not isinstance(data, dict):
            raise error(f"{path}, line {number}: expected a JSON object")
        if "id" in data and not isinstance(data["id"], str):
            data["id"] = str(data["id"])
        yield number, data
