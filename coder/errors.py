"""Errors a user can act on. The CLI prints them without a traceback and exits 1."""

from __future__ import annotations


class CoderError(Exception):
    """Base class: the message names the file, row and field where it can."""


class CodebookError(CoderError):
    """A codebook file is malformed; ``problems`` lists every problem found."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{path}: {len(problems)} problem(s) in the codebook:\n{lines}")


class ImportError_(CoderError):
    """An input file cannot be imported; nothing was written."""


class BackendError(CoderError):
    """A classifier backend is misconfigured or unavailable."""


class NoCodebookError(CoderError, LookupError):
    """The project has no codebook (or not the version asked for).

    Also a LookupError, so code that checked for one keeps working; the CLI prints it as a
    user error, without a traceback.
    """
