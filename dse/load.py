"""One entry point for every way to name a network: a built-in name or a file path."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError, did_you_mean
from .importers import IMPORTERS
from .network import Network
from .zoo import BUILTINS, builtin

__all__ = ["load_network"]


def load_network(spec: str, base_dir: str | Path | None = None) -> Network:
    """Return the network *spec* names.

    Parameters
    ----------
    spec:
        A built-in name (:data:`dse.zoo.BUILTINS`) or a path ending ``.onnx``, ``.yaml``,
        ``.yml`` or ``.csv``.
    base_dir:
        Folder a relative path is taken from (a config file's folder); default: the current
        directory.

    Raises
    ------
    InputError
        *spec* is neither a built-in nor a path with a known suffix, the file does not exist,
        or it does not describe a valid network.
    """
    if not isinstance(spec, str) or not spec:
        raise InputError(spec, "", "must be a built-in network name or a file path")
    if spec in BUILTINS:
        return builtin(spec)
    suffix = Path(spec).suffix.lower()
    if suffix not in IMPORTERS:
        raise InputError(spec, "", f"must be a built-in network ({', '.join(BUILTINS)}) or a "
                                   f"path ending .onnx, .yaml, .yml or .csv"
                                   f"{did_you_mean(spec, BUILTINS)}")
    path = Path(spec)
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    if not path.is_file():
        raise InputError(path, "", "does not exist" if not path.exists() else "is not a file")
    return IMPORTERS[suffix](path)
