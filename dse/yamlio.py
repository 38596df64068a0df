"""Strict YAML loading: duplicate keys are errors (PyYAML silently keeps the last one)."""

from __future__ import annotations

from pathlib import Path

import yaml

from .errors import InputError, did_you_mean

__all__ = ["load_yaml", "check_keys", "resolve_named_file"]


class _StrictLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str | Path):
    """Return the parsed YAML document at *path*; raise :class:`InputError` on any problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(path, "", f"cannot be read ({exc.strerror})") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(path, where, f"is not valid YAML: {problem}") from None


def check_keys(source, field: str, mapping, allowed, required=()) -> None:
    """Raise :class:`InputError` if *mapping* is not a dict, has unknown or lacks required keys."""
    if not isinstance(mapping, dict):
        raise InputError(source, field, f"must be a mapping, not {type(mapping).__name__}")
    for key in mapping:
        if key not in allowed:
            raise InputError(source, f"{field}.{key}" if field else str(key),
                             f"is not a known key (expected one of: {', '.join(allowed)})"
                             f"{did_you_mean(key, allowed)}")
    for key in required:
        if key not in mapping:
            raise InputError(source, f"{field}.{key}" if field else key, "is required")


def resolve_named_file(spec, what: str, folder: Path, base_dir=None) -> Path:
    """Return the YAML file *spec* names: a path (relative to *base_dir* if given), or a bare
    name with or without ``.yaml`` looked up in *folder*.

    *what* names the kind of file in messages (``"board"``, ``"config"``).  Raises
    :class:`InputError` when *spec* is empty or names neither.
    """
    if not isinstance(spec, (str, Path)) or not str(spec).strip():
        raise InputError(what, "", f"must be a {what} name or a path, not {spec!r}")
    path = Path(spec)
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if path.is_file():
        return path
    text = str(spec).strip()
    if "/" not in text and "\\" not in text:
        stem = text[:-5] if text.endswith(".yaml") else text
        candidate = Path(folder) / f"{stem}.yaml"
        if candidate.is_file():
            return candidate
    stems = sorted(p.stem for p in Path(folder).glob("*.yaml"))
    guess = did_you_mean(Path(text).stem, stems)
    raise InputError(spec, "", f"must be a {what} file or a name in {Path(folder).name}/ "
                               f"({', '.join(stems)}), but neither exists{guess}")
