"""The error types the CLI turns into one line on stderr: bad input and unwritable output.

:class:`InputError` (bad user input: configs, networks, boards, pins) is printed as one line
with exit status 2, having written nothing.  :class:`OutputError` (an output file or folder
that cannot be written: a read-only folder, a path under a regular file, a full disk) is
printed as one line naming the path and the operating system's reason, exit status 3; the
atomic writers (:func:`dse.design.write_bytes_atomic`) leave no half-written file behind.
"""

from __future__ import annotations

import errno as _errno
import os
from contextlib import contextmanager
from pathlib import Path

__all__ = ["InputError", "OutputError", "output_errors", "check_output_dir", "nearest",
           "did_you_mean"]


class InputError(ValueError):
    """Bad user input: names the file, the field and what was expected.

    Parameters
    ----------
    source:
        The file (or built-in name) the bad value came from.
    field:
        Dotted path of the field inside it (``layers[3].kernel``), or ``""``.
    message:
        What was expected, phrased "must be ..., not ...".
    """

    def __init__(self, source: object, field: str, message: str):
        self.source = str(source)
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.source}: {self.field}" if self.field else self.source
        return f"{where}: {self.message}"


class OutputError(OSError):
    """An output that cannot be written: the path and the operating system's reason.

    Parameters
    ----------
    path:
        The file or folder that could not be written (or created).
    reason:
        The OS's words for why (``os.strerror`` of the errno: "Permission denied",
        "No space left on device", "Not a directory").
    errno:
        The OS error number, when there is one.
    """

    def __init__(self, path: object, reason: str, errno: int | None = None):
        super().__init__(errno, reason, str(path))
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot write {self.path}: {self.reason}"

    @classmethod
    def from_os_error(cls, exc: OSError, path: object = None) -> "OutputError":
        """The OutputError of an ``OSError`` raised while writing ``path`` (default: the
        error's own file name)."""
        if isinstance(exc, OutputError):
            return exc
        where = path if path is not None else (exc.filename or "?")
        reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))
        return cls(where, reason, exc.errno)


def _under(path: Path, folder: Path) -> bool:
    try:
        Path(os.path.abspath(path)).relative_to(os.path.abspath(folder))
    except ValueError:
        return False
    return True


@contextmanager
def output_errors(folder):
    """Turn an ``OSError`` about a file under ``folder`` (an output folder) into an
    :class:`OutputError`; other errors pass unchanged.  Wraps work that writes into an
    output folder through code that raises plain ``OSError`` (simulator and tool runners)."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        names = [n for n in (exc.filename, getattr(exc, "filename2", None)) if n]
        hit = next((n for n in names if _under(Path(os.fsdecode(n)), Path(folder))), None)
        if hit is None:
            raise
        raise OutputError.from_os_error(exc, os.fsdecode(hit)) from None


def check_output_dir(folder) -> None:
    """Raise :class:`OutputError` now when ``folder`` could not be created or written, so a
    command fails before its work rather than after it.  Creates nothing.

    The nearest existing ancestor must be a folder this process may write into
    (``os.access``, which knows read-only file systems; for root only those).
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        reason = os.strerror(_errno.ENOTDIR)
        raise OutputError(folder, reason if probe == folder else f"{reason} ({probe} is a file)",
                          _errno.ENOTDIR)
    if probe.is_dir() and not os.access(probe, os.W_OK | os.X_OK):
        reason = os.strerror(_errno.EROFS if _read_only_fs(probe) else _errno.EACCES)
        raise OutputError(probe, reason, _errno.EACCES)


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def nearest(name: str, candidates, n: int = 3, cutoff: float = 0.6) -> list[str]:
    """Up to ``n`` of ``candidates`` closest to ``name`` (``difflib``, similarity at least
    ``cutoff``), best first."""
    import difflib

    return difflib.get_close_matches(str(name), [str(c) for c in candidates], n=n,
                                     cutoff=cutoff)


def did_you_mean(name: str, candidates, n: int = 3) -> str:
    """``"; did you mean 'a' or 'b'?"`` for the nearest of ``candidates`` to ``name``, or
    ``""`` when none is near."""
    found = nearest(name, candidates, n)
    if not found:
        return ""
    quoted = [repr(f) for f in found]
    text = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f"; did you mean {text}?"
