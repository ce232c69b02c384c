"""Output files written whole or not at all, and never over a project file.

Every file coder writes for the user (exports, reports) goes through
:func:`write_atomically`: the content is written to a temporary file in the same
directory, flushed to disk, then renamed over the target with ``os.replace``, which is
atomic on POSIX and Windows. A crash, a kill -9 or a full disk leaves either the old file
or the complete new one, never a torn one. :func:`check_output_path` refuses an output
path that is the project itself, one of its SQLite side files, or any SQLite database,
so ``coder export --out coder.db`` cannot destroy a project. A write that fails — a full
disk, a quota, a read-only folder — is a :class:`OutputError` that names the file and says
the old one is intact; the temporary file is removed.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from coder.errors import CoderError

#: The first 16 bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"
#: Files SQLite keeps beside a database (write-ahead log, shared memory, rollback journal).
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
#: errno values that mean "no room": a full disk, a quota, a file size limit.
NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class OutputError(CoderError):
    """An output file could not be written; the file it would replace is unchanged."""


def _failed(path: Path, existed: bool, error: OSError) -> OutputError:
    kept = (
        f"the previous {path.name} is unchanged"
        if existed
        else f"no {path.name} was written"
    )
    if error.errno in NO_SPACE:
        reason = f"not enough disk space ({error.strerror or error})"
        advice = "free some space (or choose another --out) and run it again"
    else:
        reason = error.strerror or str(error)
        advice = "check the folder exists and is writable, or choose another --out"
    return OutputError(f"{path}: cannot write: {reason}; {kept}. {advice}.")


def is_sqlite_file(path: Path) -> bool:
    """True if ``path`` is a file that starts with the SQLite 3 header."""
    try:
        with path.open("rb") as handle:
            return handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def _same_file(left: Path, right: Path) -> bool:
    try:
        return left.exists() and right.exists() and os.path.samefile(left, right)
    except OSError:
        return False


def check_output_path(path: Path, protect: Iterable[Path] = ()) -> None:
    """Refuse to write ``path`` if it is a project (``protect``), a side file of one, or
    any SQLite database, or a directory. Raises :class:`CoderError` naming the path."""
    if path.is_dir():
        raise CoderError(f"{path}: is a directory; give a file name for the output")
    for project in protect:
        project_side = [Path(f"{project}{suffix}") for suffix in SQLITE_SIDE_FILES]
        if _same_file(path, project) or path.resolve() == project.resolve():
            raise CoderError(
                f"{path}: refusing to overwrite the project file itself; choose another --out"
            )
        if any(path.resolve() == side.resolve() for side in project_side):
            raise CoderError(
                f"{path}: refusing to overwrite a working file of the project {project}; "
                "choose another --out"
            )
    if is_sqlite_file(path):
        raise CoderError(
            f"{path}: refusing to overwrite an SQLite database (it may be a coder project); "
            "choose another --out, or delete the file first if you really mean to replace it"
        )


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it into place.

    The temporary file is fsynced before the rename, and gets the permissions a new file
    would get (``mkstemp`` makes it owner-only) or those of the file it replaces.
    """
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise _failed(path, existed, error) from error
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        with temporary.open("rb+") as written:
            os.fsync(written.fileno())
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise _failed(path, existed, error) from error
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
