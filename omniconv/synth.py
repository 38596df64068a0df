"""``omniconv synth CONFIG [--flow xcup|ecp5] [--out DIR] [--no-place]``: resources and Fmax.

Makes sure ``DIR/overlay.v`` is current (through ``omniconv verilog``, which reruns the search
only when ``design.json`` is stale and the generation only when ``overlay.v`` is),
synthesises it with Yosys for the board's family, places and routes it with nextpnr-ecp5 on
ECP5 boards (the board's part, package, speed grade and clock; inside a five-pin scan
wrapper, :func:`omniconv.yosys.scan_wrapper`, so the overlay's ports need no package pins,
its clock is on the global network and Fmax is that of its paths from and to flip-flops),
and writes
``DIR/resources.json``: the counts (docs/synthesis.md), the explorer's estimate of the same
fields (``model``), and the board budget with what fits and by how much.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dse.errors import InputError, check_output_dir, output_errors
from omniconv.yosys import FLOWS, SynthError, ToolMissingError

__all__ = ["add_arguments", "run", "budget", "TOP", "PNR_TOP"]

#: Module name of the generated overlay (``omniconv verilog`` converts with this name).
TOP = "overlay"
#: The five-pin top that nextpnr places on ECP5 (:func:`omniconv.yosys.scan_wrapper`).
PNR_TOP = "overlay_pnr"

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


def _ensure_overlay(args, out_dir: Path) -> int:
    """Bring ``overlay.v`` up to date through :func:`omniconv.flow.run_verilog` (which skips the
    search when design.json is current and the generation when overlay.v is)."""
    from omniconv import flow

    return flow.run_verilog(argparse.Namespace(config=args.config, out=str(out_dir),
                                               summary=False, top=False))


def _synthesise(args, chosen: str, board, out_dir: Path):
    """Yosys (composed or whole), then nextpnr on ECP5: ``(SynthResult, PnrResult or None)``."""
    from omniconv.yosys import place_and_route_ecp5, scan_wrapper, synthesize

    if getattr(args, "compose", False):
        from omniconv.compose import composed_synthesis
        result = composed_synthesis(out_dir / "overlay.v", TOP, chosen,
                                    out_dir / "synth" / f"{chosen}-composed")
    else:
        result = synthesize([out_dir / "overlay.v"], TOP, chosen, out_dir / "synth" / chosen)
    placed = None
    if chosen == "ecp5" and not args.no_place and result.netlist_json is not None:
        # The overlay has more ports than the package has pins (the 8x8 tiny overlay: 846
        # I/O bits for 365 pins), so it is placed inside a five-pin scan wrapper (its clock
        # on a pin, so on the global clock network); the counts above are of the overlay.
        wrapper = out_dir / "synth" / "pnr-src" / f"{PNR_TOP}.v"
        wrapper.parent.mkdir(parents=True, exist_ok=True)
        wrapper.write_text(scan_wrapper((out_dir / "overlay.v").read_text(), TOP,
                                        name=PNR_TOP))
        wrapped = synthesize([out_dir / "overlay.v", wrapper], PNR_TOP, chosen,
                             out_dir / "synth" / f"{chosen}-{PNR_TOP}")
        placed = place_and_route_ecp5(wrapped.netlist_json, board.part, board.package,
                                      int(board.speed_grade), board.clock_mhz,
                                      out_dir / "synth" / "pnr", out_of_context=False)
    return result, placed


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
    status = _ensure_overlay(args, out_dir)
    if status:
        return status
    design = read_design(out_dir / "design.json")
    try:
        with output_errors(out_dir):
            result, placed = _synthesise(args, chosen, board, out_dir)
    except ToolMissingError as exc:
        print(f"omniconv synth: {exc}", file=sys.stderr)
        return 2
    except SynthError as exc:
        print(f"omniconv synth: {exc}", file=sys.stderr)
        return 1
    counts = result.as_dict()
    doc = {"config": config.name, "board": board.name, **counts,
           "composed": bool(getattr(args, "compose", False)),
           "fmax_mhz": None, "speed_grade": None}
    if placed is not None:
        doc.update(placed.as_dict())
        doc["speed_grade"] = board.speed_grade
    model = {k: design.resources.get(k) for k in _FIELDS}
    doc["model"] = model
    doc["model_error"] = {k: (round((model[k] - counts[k]) / counts[k], 4)
                              if model.get(k) is not None and counts[k] else None)
                          for k in _FIELDS}
    doc["budget"] = budget(counts, board)
    doc["fits"] = all(v["fits"] for v in doc["budget"].values())
    write_text_atomic(out_dir / "resources.json", json.dumps(doc, indent=2) + "\n")
    _print_table(doc, board)
    print(f"wrote {out_dir / 'resources.json'}")
    return 0


def _print_table(doc: dict, board) -> None:
    kinds = {"dsp": doc["dsp_kind"], "lut": doc["lut_kind"], "ff": "FF",
             "bram_blocks": doc["bram_kind"], "uram_blocks": "URAM288"}
    print(f"{doc['config']}: {doc['flow']} synthesis of {TOP} ({doc['synth_seconds']:.1f} s)")
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
