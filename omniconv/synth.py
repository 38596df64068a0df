"""``omniconv synth CONFIG [--flow xcup|ecp5] [--out DIR] [--no-place] [--top]``: resources
and Fmax.

Makes sure ``DIR/overlay.v`` is current (through ``omniconv verilog``, which reruns the search
only when ``design.json`` is stale and the generation only when ``overlay.v`` is),
synthesises it with Yosys for the board's family, places and routes it with nextpnr-ecp5 on
ECP5 boards (the board's part, package, speed grade and clock; inside a five-pin scan
wrapper, :func:`omniconv.yosys.scan_wrapper`, so the overlay's ports need no package pins,
its clock is on the global network and Fmax is that of its paths from and to flip-flops),
and writes
``DIR/resources.json``: the counts (docs/synthesis.md), the explorer's estimate of the same
fields (``model``), and the board budget with what fits and by how much.  A design whose
Yosys counts exceed the board is not placed (nextpnr could not): the file is written with
``pnr_skipped`` saying why, and the command exits 1.

With ``--top`` it does the same for the whole accelerator, ``DIR/overlay_top.v`` (module
``overlay_top``: the datapath with its AXI4 DRAM master, AXI-Lite registers, instruction
fetch and engines), which ``omniconv verilog`` writes for a design the overlay top runs, and
writes ``DIR/resources_top.json`` (same fields), leaving the datapath's ``resources.json``
as it is; its work folders are under ``DIR/synth/top/``.  A design the top cannot run has no
``overlay_top.v``: exit status 2, one line, nothing synthesised or written.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from dse.errors import InputError, check_output_dir, output_errors
from omniconv.yosys import FLOWS, SynthError, ToolMissingError

__all__ = ["add_arguments", "run", "budget", "Target", "DATAPATH", "OVERLAY_TOP", "TOP",
           "PNR_TOP"]

#: Module name of the generated overlay (``omniconv verilog`` converts with this name).
TOP = "overlay"
#: The five-pin top that nextpnr places on ECP5 (:func:`omniconv.yosys.scan_wrapper`).
PNR_TOP = "overlay_pnr"


@dataclass(frozen=True)
class Target:
    """What one ``omniconv synth`` run synthesises and where it writes.

    Members
    -------
    verilog:
        The Verilog file in the output folder.
    module:
        Its top module.
    pnr_module:
        The scan wrapper's module name (ECP5 place and route).
    workdir:
        Folder under ``DIR`` for the tools' work folders.
    resources:
        The JSON file written in ``DIR``.
    """

    verilog: str
    module: str
    pnr_module: str
    workdir: str
    resources: str


#: The conv datapath (the default): overlay.v, work folders in DIR/synth/, resources.json.
DATAPATH = Target("overlay.v", TOP, PNR_TOP, "synth", "resources.json")
#: The overlay top (``--top``): overlay_top.v (``omniconv.overlay.write_overlay_top``), work
#: folders in DIR/synth/top/, resources_top.json.
OVERLAY_TOP = Target("overlay_top.v", "overlay_top", "overlay_top_pnr", "synth/top",
                     "resources_top.json")  # omniconv.overlay.TOP_FILES[0], TOP_MODULE

#: resources.json fields compared with the explorer's model and the board budget.
_FIELDS = ("dsp", "lut", "ff", "bram_blocks")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``omniconv synth``."""
    parser.add_argument("config", metavar="CONFIG",
                        help="run config: a path, or a name in configs/ (with or without .yaml)")
    parser.add_argument("--flow", metavar="FLOW", choices=FLOWS, default=None,
                        help="synthesis flow, xcup or ecp5; must match the board "
                             "(default: the board's family)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="output folder (default: build/<config stem>)")
    parser.add_argument("--no-place", action="store_true",
                        help="ECP5: skip nextpnr (resources only, no Fmax; placing a large "
                             "design takes many minutes) (default: %(default)s)")
    parser.add_argument("--compose", action="store_true",
                        help="estimate instead: synthesise each distinct sub-block once and "
                             "compose by instance counts (omniconv.compose; faster on large "
                             "arrays, no place and route) (default: %(default)s)")
    parser.add_argument("--top", action="store_true",
                        help="synthesise the whole accelerator, DIR/overlay_top.v (module "
                             "overlay_top: the datapath with its AXI4 DRAM master, AXI-Lite "
                             "registers, instruction fetch and engines), instead of the conv "
                             "datapath overlay.v, and write DIR/resources_top.json (the "
                             "datapath's resources.json is left as it is); exit status 2 for "
                             "a design the overlay top cannot run (default: %(default)s)")


def budget(counts: dict, board) -> dict:
    """Return, per resource, what is used, what the board has, the fraction, and whether it fits.

    BRAM use counts UltraRAM as well where the board has it: each is reported on its own.
    """
    available = {"dsp": board.dsp, "lut": board.lut, "ff": board.ff,
                 "bram_blocks": board.bram_blocks, "uram_blocks": board.uram_blocks}
    result = {}
    for field, total in available.items():
        used = counts.get(field, 0) or 0
        result[field] = {"used": used, "available": total,
                         "fraction": round(used / total, 4) if total else None,
                         "fits": used <= total,
                         "margin": total - used}
    return result


def _ensure_overlay(args, out_dir: Path, top: bool = False) -> int:
    """Bring ``overlay.v`` (and with ``top``, where the overlay top runs the design,
    ``overlay_top.v``) up to date through :func:`omniconv.flow.run_verilog` (which skips the
    search when design.json is current and the generation when overlay.v is)."""
    from omniconv import flow

    return flow.run_verilog(argparse.Namespace(config=args.config, out=str(out_dir),
                                               summary=False, top=top))


def _no_top_reason(design, out_dir: Path) -> str | None:
    """Why ``DIR/overlay_top.v`` cannot be synthesised for ``design``, or None if it can."""
    timing = getattr(design, "timing", {}) or {}
    if timing.get("source") != "program":
        why = timing.get("why") or "design.json has the explorer's model timing, not the " \
                                   "program's (omniconv dse --model-only?)"
        return f"the overlay top cannot run this design ({why}), so there is no " \
               f"overlay_top.v to synthesise; without --top, synth synthesises the datapath " \
               f"(overlay.v)"
    if not (out_dir / OVERLAY_TOP.verilog).is_file():
        return f"{out_dir / OVERLAY_TOP.verilog} is missing"
    return None


def _synthesise(args, chosen: str, board, out_dir: Path, target: Target = DATAPATH):
    """Yosys (composed or whole), then nextpnr on ECP5: ``(SynthResult, PnrResult or None,
    why nextpnr was skipped or None)``.  nextpnr is skipped for a design whose Yosys counts
    exceed the board (it could not place it, and would take many minutes to say so)."""
    from omniconv.yosys import place_and_route_ecp5, scan_wrapper, synthesize

    source = out_dir / target.verilog
    work = out_dir / target.workdir
    if getattr(args, "compose", False):
        from omniconv.compose import composed_synthesis
        result = composed_synthesis(source, target.module, chosen, work / f"{chosen}-composed")
    else:
        result = synthesize([source], target.module, chosen, work / chosen)
    if chosen != "ecp5" or args.no_place or result.netlist_json is None:
        return result, None, None
    skipped = _does_not_fit(result, board)
    if skipped is not None:
        return result, None, skipped
    # The overlay has more ports than the package has pins (the 8x8 tiny overlay: 846 I/O
    # bits for 365 pins; the overlay top's AXI ports are wider still), so it is placed
    # inside a five-pin scan wrapper (its clock on a pin, so on the global clock network);
    # the counts above are of the overlay.
    wrapper = work / "pnr-src" / f"{target.pnr_module}.v"
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    wrapper.write_text(scan_wrapper(source.read_text(), target.module, name=target.pnr_module))
    wrapped = synthesize([source, wrapper], target.pnr_module, chosen,
                         work / f"{chosen}-{target.pnr_module}")
    placed = place_and_route_ecp5(wrapped.netlist_json, board.part, board.package,
                                  int(board.speed_grade), board.clock_mhz, work / "pnr",
                                  out_of_context=False)
    return result, placed, None


def _does_not_fit(result, board) -> str | None:
    """What of ``result``'s counts exceeds ``board`` ("LUT4 118609 > 83640"), or None."""
    kinds = {"dsp": result.dsp_kind, "lut": result.lut_kind, "ff": "FF",
             "bram_blocks": result.bram_kind, "uram_blocks": "URAM288"}
    over = [f"{kinds[k]} {v['used']:g} > {v['available']}"
            for k, v in budget(result.as_dict(), board).items() if not v["fits"]]
    return ", ".join(over) or None


def run(args) -> int:
    """Run ``omniconv synth``; return 0, 1 when a tool fails, 2 for bad input or no tools."""
    from dse.design import read_design, write_text_atomic
    from omniconv.config import load_config

    config = load_config(args.config)
    board = config.board
    chosen = args.flow or board.family
    if chosen != board.family:
        raise InputError(config.path, "board", f"must be a board of family {chosen} for "
                                               f"--flow {chosen}, not {board.name} "
                                               f"(family {board.family})")
    out_dir = Path(args.out) if args.out else config.out_dir
    check_output_dir(out_dir)
    target = OVERLAY_TOP if getattr(args, "top", False) else DATAPATH
    status = _ensure_overlay(args, out_dir, top=target is OVERLAY_TOP)
    if status:
        return status
    design = read_design(out_dir / "design.json")
    if target is OVERLAY_TOP:
        reason = _no_top_reason(design, out_dir)
        if reason:
            print(f"omniconv synth: {reason}", file=sys.stderr)
            return 2
    try:
        with output_errors(out_dir):
            result, placed, skipped = _synthesise(args, chosen, board, out_dir, target)
    except ToolMissingError as exc:
        print(f"omniconv synth: {exc}", file=sys.stderr)
        return 2
    except SynthError as exc:
        print(f"omniconv synth: {exc}", file=sys.stderr)
        return 1
    counts = result.as_dict()
    doc = {"config": config.name, "board": board.name, **counts,
           "verilog": target.verilog,
           "composed": bool(getattr(args, "compose", False)),
           "fmax_mhz": None, "speed_grade": None,
           "pnr_skipped": None if skipped is None else f"does not fit: {skipped}"}
    if placed is not None:
        doc.update(placed.as_dict())
        doc["speed_grade"] = board.speed_grade
    # the model of what was synthesised: the whole top, or the datapath alone (designs
    # written before resources_datapath existed give their one estimate)
    estimate = (design.resources if target is OVERLAY_TOP
                else design.resources_datapath or design.resources)
    model = {k: estimate.get(k) for k in _FIELDS}
    doc["model"] = model
    doc["model_error"] = {k: (round((model[k] - counts[k]) / counts[k], 4)
                              if model.get(k) is not None and counts[k] else None)
                          for k in _FIELDS}
    doc["budget"] = budget(counts, board)
    doc["fits"] = all(v["fits"] for v in doc["budget"].values())
    write_text_atomic(out_dir / target.resources, json.dumps(doc, indent=2) + "\n")
    _print_table(doc, board)
    print(f"wrote {out_dir / target.resources}")
    if skipped is not None:
        print(f"omniconv synth: {target.module} does not fit {board.name} ({skipped}): "
              f"nextpnr not run, no Fmax", file=sys.stderr)
        return 1
    return 0


def _print_table(doc: dict, board) -> None:
    kinds = {"dsp": doc["dsp_kind"], "lut": doc["lut_kind"], "ff": "FF",
             "bram_blocks": doc["bram_kind"], "uram_blocks": "URAM288"}
    print(f"{doc['config']}: {doc['flow']} synthesis of {doc['top']} "
          f"({doc['synth_seconds']:.1f} s)")
    print("| resource | Yosys | model | board | use |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for field, kind in kinds.items():
        if field == "uram_blocks" and not board.uram_blocks:
            continue
        b = doc["budget"][field]
        model = doc["model"].get(field)
        frac = "" if b["fraction"] is None else f"{100 * b['fraction']:.1f}%"
        flag = "" if b["fits"] else " (does not fit)"
        print(f"| {kind} | {b['used']:g} | {'' if model is None else f'{model:g}'} | "
              f"{b['available']} | {frac}{flag} |")
    if doc.get("fmax_mhz") is not None:
        print(f"Fmax {doc['fmax_mhz']:.1f} MHz on {board.part} {board.package} speed grade "
              f"{board.speed_grade} (target {doc['target_mhz']:g} MHz, "
              f"place and route {doc['pnr_seconds']:.1f} s)")
