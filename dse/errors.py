"""The one error type for bad user input (configs, networks, boards, pins).

The CLI prints it as a single line and exits with status 2, having written nothing.
"""

from __future__ import annotations

__all__ = ["InputError"]


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
