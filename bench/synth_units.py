"""Yosys cost of each transform unit of ``rtl/``, synthesised alone (no place-and-route).

Usage::

    .venv/bin/python bench/synth_units.py [--flow xcup|ecp5|all] [--units NAME,...]
                                          [--timeout S] [--force] [--write]

Every unit is converted to Verilog on its own (``amaranth.back.verilog.convert``, top
``unit``, every port a top-level port, no ``src`` attributes so the text depends on the logic
only) and synthesised with :func:`omniconv.yosys.synthesize`: ``synth_xilinx -family xcup
-flatten`` or ``synth_ecp5``.  Yosys 0.70's abc9 stops with "Assert `count_id(wire->name) ==
0' failed" on Amaranth's escaped array-element names (docs/calibration.md) -- here on the
Winograd units in ``synth_ecp5`` too, which ``synthesize`` does not guard -- so the text
given to Yosys has those names rewritten by :func:`omniconv.calibrate.yosys_safe` (names
only; the logic is the same).  The units and their parameter
points are :data:`UNITS`, at the int8 widths the explorer uses:

=============  ==========================================================================
``im2col``     ``rtl.im2col.Im2col(lanes=1, width=8, depth=1024, dim_bits=11)``
``shift_add``  ``rtl.kn2row.ShiftAdd(lanes=1, in_width=32, acc_width=32, depth=1024,
               dim_bits=11)``
``wino_in``    ``rtl.winograd.InputTransform(2, 8)`` and ``InputTransform(4, 8)``
``wino_out``   ``rtl.winograd.OutputAccumulator(2, 32)`` and ``OutputAccumulator(4, 40)``
               (one lane: the output side's adders per array column)
``fft2d``      ``rtl.fft.FFT2D(n, data_bits, twiddle_bits)`` at n = 8 and 16 with 16-bit
               parts (int8: ``a_width`` 17, data_bits = a_width − 1) and with 24-bit parts
               (int16: ``a_width`` 25)
``requant``    ``rtl.requant.Requant(lanes=1, acc_width=32, out_width=8, mult_width=16,
               shift_width=6)``
``overlay_``   the overlay top (``rtl.overlay_top.OverlayTop``) of int8 overlays from 4×4
``shell``      to 16×16, buses of 64 to 512 bits, with and without a Winograd unit, its
               datapath a blackbox (:func:`shell_verilog`): what the top adds to overlay.v
=============  ==========================================================================

Runs are cached under ``build/synth_units/<flow>/<unit>-<point>-<sha>/`` keyed by the sha256
of the Verilog the generator writes (before the renaming): an unchanged unit is not synthesised again (``--force`` does).  Yosys runs one
at a time, each stopped after ``--timeout`` seconds.

The table printed has, per unit, point and flow: DSP, LUT, FF, block RAM (RAMB36E2 or DP16KD
units), LUT RAM cells and the synthesis seconds.  A second table checks the resource model's
fitted Winograd terms (``dse.cost.resources``: LUT per transform adder bit, FF per
transformed-tile register bit, fitted on whole overlays) against the transforms measured
alone, and the model's requantiser DSPs against the ``requant`` unit's.

``--fft-overlay`` also synthesises a whole int8 FFT8 overlay (:data:`FFT_OVERLAY`, as
``omniconv verilog`` writes it) and compares the resource model's estimate with it.  It is
the same overlay as ``omniconv.calibrate``'s fit point ``4x4-fft8-i8``, whose Yosys counts
the model's ``*_control_fft`` terms are fitted to, so it is no held-out check; the
calibration's ``4x4-fft16-i8`` holdout is.

``--write`` writes ``dse/cost/unit_resources.json`` (the counts per unit/point/flow with the
Yosys version, the Verilog's sha256 and the run's date), which the resource model reads for
the FFT unit (docs/calibration.md, "Transform units measured alone").  Points not run keep
their committed entries.  Synthesis never runs in ``make test``.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from omniconv.calibrate import yosys_safe  # noqa: E402
from omniconv.yosys import (FLOWS, SynthError, count_cells, synthesize,  # noqa: E402
                            yosys_version)

__all__ = ["UNITS", "UNIT_RESOURCES_PATH", "FFT_OVERLAY", "unit_verilog", "synth_unit",
           "fft_overlay_check", "winograd_check", "main"]

#: Where ``--write`` puts the measured table (read by ``dse.cost.resources``).
UNIT_RESOURCES_PATH = REPO / "dse" / "cost" / "unit_resources.json"

#: Cache of the runs (one folder per flow and Verilog text).
CACHE = REPO / "build" / "synth_units"

#: unit name -> (class path, [(point label, keyword arguments), ...])
UNITS = {
    "im2col": ("rtl.im2col.Im2col",
               [("l1-w8-d1024", dict(lanes=1, width=8, depth=1024, dim_bits=11))]),
    "shift_add": ("rtl.kn2row.ShiftAdd",
                  [("l1-w32-d1024", dict(lanes=1, in_width=32, acc_width=32, depth=1024,
                                         dim_bits=11))]),
    "wino_in": ("rtl.winograd.InputTransform",
                [("m2-w8", dict(m=2, in_width=8)), ("m4-w8", dict(m=4, in_width=8))]),
    "wino_out": ("rtl.winograd.OutputAccumulator",
                 [("m2-acc32", dict(m=2, acc_width=32, lanes=1)),
                  ("m4-acc40", dict(m=4, acc_width=40, lanes=1))]),
    "fft2d": ("rtl.fft.FFT2D",
              [("n8-d16", dict(n=8, data_bits=16, twiddle_bits=16)),
               ("n16-d16", dict(n=16, data_bits=16, twiddle_bits=16)),
               ("n8-d24", dict(n=8, data_bits=24, twiddle_bits=24)),
               ("n16-d24", dict(n=16, data_bits=24, twiddle_bits=24))]),
    "requant": ("rtl.requant.Requant",
                [("l1-acc32-m16", dict(lanes=1, acc_width=32, out_width=8, mult_width=16,
                                       shift_width=6))]),
    # the overlay top without its datapath (OverlayParams fields; :func:`shell_verilog`)
    "overlay_shell": ("rtl.overlay_top.OverlayTop", [
        ("8x8-b64", dict(rows=8, cols=8, bus_bits=64)),
        ("8x8-b512", dict(rows=8, cols=8, bus_bits=512)),
        ("4x4-b128", dict(rows=4, cols=4, bus_bits=128)),
        ("16x16-b128", dict(rows=16, cols=16, bus_bits=128)),
        ("8x8-wino4-b128", dict(rows=8, cols=8, bus_bits=128, winograd_m=4, a_width=15,
                                b_width=18, acc_width=42)),
        ("8x8-b128", dict(rows=8, cols=8, bus_bits=128)),
        ("4x8-b256", dict(rows=4, cols=8, bus_bits=256)),
        ("8x8-wino2-b64", dict(rows=8, cols=8, bus_bits=64, winograd_m=2, a_width=10,
                               b_width=12)),
    ]),
}


def _component(class_path: str, kwargs: dict):
    import importlib

    module, name = class_path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(**kwargs)


def shell_verilog(kwargs: dict) -> str:
    """The overlay top of the int8 overlay ``OverlayParams(**kwargs)`` at its default buffers
    (``dse.cost.resources.overlay_limits``), top module ``unit``, with its datapath a
    blackbox (``rtl.emit.blackbox_stub``): DMA engines, fetch, controller,
    compute and pool engines, host registers, table and aux memories -- the shell that
    ``dse.cost.resources.shell_resources`` prices."""
    from dse.cost.resources import overlay_limits
    from rtl.emit import blackbox_stub, verilog_text
    from rtl.overlay_top import OverlayTop
    from rtl.params import DatapathLimits, OverlayParams

    hw = OverlayParams(**kwargs)
    top = OverlayTop(hw, DatapathLimits(**overlay_limits(hw)), 8, datapath_module="overlay")
    return (verilog_text(top, "unit", provided={"overlay"})
            + blackbox_stub(top.datapath, "overlay"))


def unit_verilog(unit: str, label: str) -> str:
    """The Verilog text of one unit point (top module ``unit``, no ``src`` attributes)."""
    from amaranth.back import verilog

    class_path, points = UNITS[unit]
    kwargs = dict(points)[label]
    if unit == "overlay_shell":
        return shell_verilog(kwargs)
    return verilog.convert(_component(class_path, kwargs), name="unit", emit_src=False)


def synth_unit(unit: str, label: str, flow: str, *, force: bool = False,
               timeout_s: float | None = 1800) -> dict:
    """Synthesise one unit point for ``flow`` (or reuse the cached run of the same Verilog).

    Returns the counts of :func:`omniconv.yosys.count_cells` plus ``cells_by_type``,
    ``synth_seconds``, ``verilog_sha256``, ``yosys_version``, ``date`` (of the run) and
    ``cached`` (whether this call reused an earlier run).
    """
    text = unit_verilog(unit, label)
    digest = hashlib.sha256(text.encode()).hexdigest()
    work = CACHE / flow / f"{unit}-{label}-{digest[:16]}"
    result_file = work / "result.json"
    if not force and result_file.is_file():
        row = json.loads(result_file.read_text())
        if row.get("verilog_sha256") == digest:
            return {**row, "cached": True}
    work.mkdir(parents=True, exist_ok=True)
    source = work / "unit.v"
    source.write_text(yosys_safe(text))
    result = synthesize([source], "unit", flow, work / "yosys", timeout_s=timeout_s)
    cells = dict(result.cells_by_type)
    row = {**count_cells(cells, flow), "cells_by_type": cells,
           "synth_seconds": round(result.seconds, 1), "verilog_sha256": digest,
           "yosys_version": yosys_version(work / "yosys" / "yosys.log"),
           "date": datetime.date.today().isoformat()}
    result_file.write_text(json.dumps(row, indent=1) + "\n")
    return {**row, "cached": False}


#: The whole-overlay check of ``--fft-overlay``: a small int8 FFT point (OverlayParams fields;
#: ``omniconv.calibrate.POINTS["4x4-fft8-i8"]``, a fit point).
FFT_OVERLAY = dict(rows=4, cols=4, a_width=17, b_width=17, acc_width=48, fft_size=8,
                   act_buffer_kib=2, weight_buffer_kib=2, out_buffer_kib=1)


def fft_overlay_check(flow: str, *, force: bool = False, timeout_s: float | None = 1800) -> dict:
    """Synthesise the overlay.v of :data:`FFT_OVERLAY` (int8) and compare the model with it.

    The model's FFT part is the FFT2D measured alone plus the FFT path's buffers; this checks
    the sum on a whole overlay (``omniconv.overlay.write_overlay``, as ``omniconv verilog``
    writes it).  Cached like the units, by the overlay's sha256.  Returns ``{"yosys": counts,
    "model": counts, "synth_seconds", "verilog_sha256", "cached"}``.
    """
    from types import SimpleNamespace

    from dse.cost.hardware import HardwareTable
    from dse.cost.resources import estimate_resources
    from omniconv.overlay import write_overlay
    from rtl.params import OverlayParams

    scratch = CACHE / flow / "overlay-fft-new"
    scratch.mkdir(parents=True, exist_ok=True)
    text = write_overlay(SimpleNamespace(hardware=FFT_OVERLAY, precision=8),
                         SimpleNamespace(family=flow), scratch, precision=8).read_text()
    digest = hashlib.sha256(text.encode()).hexdigest()
    work = CACHE / flow / f"overlay-fft8-{digest[:16]}"
    result_file = work / "result.json"
    if not force and result_file.is_file() and \
            json.loads(result_file.read_text()).get("verilog_sha256") == digest:
        row = {**json.loads(result_file.read_text()), "cached": True}
    else:
        work.mkdir(parents=True, exist_ok=True)
        (work / "overlay.v").write_text(yosys_safe(text))
        result = synthesize([work / "overlay.v"], "overlay", flow, work / "yosys",
                            timeout_s=timeout_s)
        row = {"yosys": count_cells(dict(result.cells_by_type), flow),
               "synth_seconds": round(result.seconds, 1), "verilog_sha256": digest}
        result_file.write_text(json.dumps(row, indent=1) + "\n")
        row = {**row, "cached": False}
    hw = HardwareTable.from_params([OverlayParams(**FFT_OVERLAY)], family=flow)
    return {**row, "model": estimate_resources(hw, shell=False).as_dict(0)}


def winograd_check(measured: dict) -> list[dict]:
    """Model-vs-unit rows for the Winograd transforms and the requantiser.

    The model's Winograd terms are per datapath, not per unit; split by what each feature
    counts (``dse.cost.resources.features``) they give, at the calibration points' widths
    (F(2×2): a_width 10, acc 32; F(4×4): a_width 15, acc 40; back = acc + growth):

    * input transform: LUT ``lut_per_winograd_add_bit · adds_in · a_width``,
      FF ``ff_per_winograd_reg_bit · (m+2)² · a_width``;
    * output accumulator, one lane: LUT ``lut_per_winograd_add_bit · m² · back``,
      FF ``ff_per_winograd_reg_bit · acc``.

    The fitted coefficients also absorb the rest of the Winograd datapath (tile and
    accumulation buffer muxes, the scale units, the m² requantiser lanes' logic), so they may
    exceed the units alone.  The requantiser row compares the model's DSPs for one lane
    (``_mults(acc + growth, 17)``, growth 0 here) with the unit's.
    """
    import numpy as np

    from dse.cost.energy import WINOGRAD_ADDS
    from dse.cost.resources import REQUANT_MULT_BITS, RESOURCE_COEFFS, _mults

    widths = {2: (10, 32 + 4), 4: (15, 40 + 9)}      # (a_width, back width) per m
    rows = []
    for (unit, label), flows in sorted(measured.items()):
        for flow, got in sorted(flows.items()):
            c = RESOURCE_COEFFS[flow]
            if unit in ("wino_in", "wino_out"):
                m = int(label[1])
                a, back = widths[m]
                adds_in = WINOGRAD_ADDS[m][0]
                if unit == "wino_in":
                    lut = c["lut_per_winograd_add_bit"] * adds_in * a
                    ff = c["ff_per_winograd_reg_bit"] * (m + 2) ** 2 * a
                else:
                    lut = c["lut_per_winograd_add_bit"] * m * m * back
                    ff = c["ff_per_winograd_reg_bit"] * (back - (4 if m == 2 else 9))
                rows.append({"unit": unit, "point": label, "flow": flow, "what": "LUT",
                             "unit_value": got["lut"], "model": round(lut)})
                rows.append({"unit": unit, "point": label, "flow": flow, "what": "FF",
                             "unit_value": got["ff"], "model": round(ff)})
            elif unit == "requant":
                dsp = int(_mults(np.array(32), np.array(REQUANT_MULT_BITS + 1), c))
                rows.append({"unit": unit, "point": label, "flow": flow, "what": "DSP",
                             "unit_value": got["dsp"], "model": dsp})
    for r in rows:
        r["error"] = (round((r["model"] - r["unit_value"]) / r["unit_value"], 3)
                      if r["unit_value"] else None)
    return rows


def _write(measured: dict, selected_flows: list[str]) -> None:
    """Merge the measured rows into unit_resources.json (other units are kept; a unit's
    points that UNITS no longer lists, or measured for another class, are dropped)."""
    try:
        doc = json.loads(UNIT_RESOURCES_PATH.read_text())
    except FileNotFoundError:
        doc = {}
    units = doc.get("units", {})
    keep = ("dsp", "lut", "ff", "bram_blocks", "uram_blocks", "carry", "lutram",
            "cells_by_type", "synth_seconds", "yosys_version", "date")
    for (unit, label), flows in measured.items():
        class_path, points = UNITS[unit]
        entry = units.setdefault(unit, {"class": class_path, "points": {}})
        if entry["class"] != class_path:
            entry["points"] = {}
        entry["class"] = class_path
        entry["points"] = {k: v for k, v in entry["points"].items() if k in dict(points)}
        point = entry["points"].setdefault(label, {})
        point["params"] = dict(points)[label]
        point.setdefault("flows", {})
        for flow, got in flows.items():
            point["verilog_sha256"] = got["verilog_sha256"]
            point["flows"][flow] = {k: got[k] for k in keep}
    doc = {
        "generated_by": "python bench/synth_units.py --write",
        "about": "Yosys counts of each rtl/ transform unit synthesised alone (xcup: "
                 "synth_xilinx -family xcup -flatten; ecp5: synth_ecp5; no place-and-route). "
                 "bram_blocks in RAMB36E2 (xcup, RAMB18E2 = 0.5) or DP16KD (ecp5) units; lut "
                 "counts logic LUTs only (docs/synthesis.md).",
        "date": datetime.date.today().isoformat(),
        "units": {k: units[k] for k in sorted(units)},
    }
    UNIT_RESOURCES_PATH.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {UNIT_RESOURCES_PATH.relative_to(REPO)} ({', '.join(selected_flows)})")


def main(argv=None) -> int:
    """Synthesise the selected units, print the tables, optionally write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flow", choices=[*FLOWS, "all"], default="all",
                        help="synthesis flow (default: %(default)s)")
    parser.add_argument("--units", default=",".join(UNITS), metavar="NAME,...",
                        help="units to run, from: %(default)s")
    parser.add_argument("--timeout", type=float, default=1800.0, metavar="S",
                        help="stop one Yosys run after S seconds (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="synthesise again even when a cached run of the same Verilog exists")
    parser.add_argument("--write", action="store_true",
                        help=f"write {UNIT_RESOURCES_PATH.relative_to(REPO)}")
    parser.add_argument("--fft-overlay", action="store_true",
                        help="also synthesise a whole 4x4 int8 FFT8 overlay and compare the "
                             "resource model with it")
    args = parser.parse_args(argv)
    units = [u.strip() for u in args.units.split(",") if u.strip()]
    unknown = [u for u in units if u not in UNITS]
    if unknown:
        parser.error(f"--units must name units from {', '.join(UNITS)}, not {unknown}")
    flows = list(FLOWS) if args.flow == "all" else [args.flow]

    measured: dict = {}
    failed = []
    for unit in units:
        for label, _ in UNITS[unit][1]:
            for flow in flows:
                try:
                    got = synth_unit(unit, label, flow, force=args.force,
                                     timeout_s=args.timeout)
                except SynthError as exc:
                    print(f"{unit} {label} {flow}: {exc}", file=sys.stderr)
                    failed.append(f"{unit} {label} {flow}")
                    continue
                measured.setdefault((unit, label), {})[flow] = got
                print(f"{unit} {label} {flow}: DSP {got['dsp']} LUT {got['lut']} "
                      f"FF {got['ff']} BRAM {got['bram_blocks']:g}"
                      f"{' (cached)' if got['cached'] else ''}", file=sys.stderr, flush=True)

    print("\n| unit | point | flow | DSP | LUT | FF | BRAM | LUT RAM | carry | synth s |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (unit, label), per_flow in measured.items():
        for flow, r in per_flow.items():
            print(f"| {unit} | {label} | {flow} | {r['dsp']} | {r['lut']} | {r['ff']} | "
                  f"{r['bram_blocks']:g} | {r['lutram']} | {r['carry']} | "
                  f"{r['synth_seconds']:.1f} |")
    if args.write and measured:
        # before the check: the resource model (imported by it) reads this file
        _write(measured, flows)
    check = winograd_check(measured)
    if check:
        print("\nModel terms against the units measured alone (error = (model - unit) / unit)")
        print("\n| unit | point | flow | resource | unit alone | model | error % |")
        print("| --- | --- | --- | --- | ---: | ---: | ---: |")
        for r in check:
            err = "-" if r["error"] is None else f"{100 * r['error']:+.1f}"
            print(f"| {r['unit']} | {r['point']} | {r['flow']} | {r['what']} | "
                  f"{r['unit_value']} | {r['model']} | {err} |")
    if args.fft_overlay:
        print(f"\nWhole overlay, int8 FFT8 ({FFT_OVERLAY}): Yosys against the model")
        print("\n| flow | Yosys DSP / LUT / FF / BRAM | model DSP / LUT / FF / BRAM | "
              "error % | synth s |")
        print("| --- | --- | --- | --- | ---: |")
        for flow in flows:
            try:
                got = fft_overlay_check(flow, force=args.force, timeout_s=args.timeout)
            except SynthError as exc:
                print(f"fft overlay {flow}: {exc}", file=sys.stderr)
                failed.append(f"fft overlay {flow}")
                continue
            keys = ("dsp", "lut", "ff", "bram_blocks")
            y, mo = got["yosys"], got["model"]
            err = " / ".join(f"{100 * (mo[k] - y[k]) / y[k]:+.1f}" if y[k] else "-"
                             for k in keys)
            print(f"| {flow} | {' / '.join(f'{y[k]:g}' for k in keys)} | "
                  f"{' / '.join(str(mo[k]) for k in keys)} | {err} | "
                  f"{got['synth_seconds']:.1f} |")
    if failed:
        print("failed: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
