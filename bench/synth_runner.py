"""Validate the Yosys/nextpnr runner on tiny Amaranth designs and time each step.

Designs: an 8-bit signed multiply-accumulate, naive (the product goes straight into the 32-bit
accumulator) and registered (operands and product registered), and a 512 x 64-bit RAM.  Each is
synthesised for xcup (``synth_xilinx -family xcup -flatten``) and ecp5 (``synth_ecp5``); the ECP5
netlists are placed and routed with nextpnr-ecp5 for the ``ecp5-85k`` board (LFE5U-85F,
CABGA381, speed grade 6).  Expected by hand: one DSP per MAC on both flows; flip-flops
8+8+32 = 48 (naive) and 8+8+16+32 = 64 (registered); the RAM is one RAMB36E2 and two DP16KD
(a DP16KD is at most 36 bits wide at depth 512).

Run: ``python bench/synth_runner.py`` (writes under ``build/bench/synth_runner/``).
"""

import sys
import time
from pathlib import Path

from amaranth import Module, Signal, signed
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from dse.board import load_board
from omniconv.yosys import place_and_route_ecp5, synthesize

__all__ = ["NaiveMac", "RegisteredMac", "Ram", "main"]

ROOT = Path(__file__).resolve().parent.parent


class NaiveMac(wiring.Component):
    """Registered operands, then acc <= acc + a * b: the multiplier feeds the adder directly.

    The operands are registered so that the multiplier lies on a register-to-register path
    (nextpnr does not time paths from unconstrained input pins).
    """

    a: In(signed(8))
    b: In(signed(8))
    acc: Out(signed(32))

    def elaborate(self, platform):
        m = Module()
        ar, br = Signal(signed(8)), Signal(signed(8))
        m.d.sync += [ar.eq(self.a), br.eq(self.b), self.acc.eq(self.acc + ar * br)]
        return m


class RegisteredMac(wiring.Component):
    """Registered operands and product before the accumulator (two more pipeline stages)."""

    a: In(signed(8))
    b: In(signed(8))
    acc: Out(signed(32))

    def elaborate(self, platform):
        m = Module()
        ar, br, prod = Signal(signed(8)), Signal(signed(8)), Signal(signed(16))
        m.d.sync += [ar.eq(self.a), br.eq(self.b), prod.eq(ar * br),
                     self.acc.eq(self.acc + prod)]
        return m


class Ram(wiring.Component):
    """512 x 64-bit memory, one write port and one synchronous read port (32 Kbit)."""

    waddr: In(9)
    wdata: In(64)
    we: In(1)
    raddr: In(9)
    rdata: Out(64)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=64, depth=512, init=[])
        wp, rp = mem.write_port(), mem.read_port()
        m.d.comb += [wp.addr.eq(self.waddr), wp.data.eq(self.wdata), wp.en.eq(self.we),
                     rp.addr.eq(self.raddr), self.rdata.eq(rp.data)]
        return m


#: design name -> (component class, expected (dsp, ff, bram_blocks xcup, bram_blocks ecp5))
DESIGNS = {
    "naive_mac": (NaiveMac, (1, 48, 0, 0)),
    "registered_mac": (RegisteredMac, (1, 64, 0, 0)),
    "ram512x64": (Ram, (0, None, 1, 2)),
}


def main() -> int:
    """Synthesise every design on both flows, place the ECP5 ones; print a table."""
    board = load_board("ecp5-85k")
    out = ROOT / "build" / "bench" / "synth_runner"
    out.mkdir(parents=True, exist_ok=True)
    print(f"ECP5 placement: {board.part} {board.package} speed grade {board.speed_grade}, "
          f"target 100 MHz")
    header = (f"{'design':<15} {'flow':<5} {'DSP':>4} {'LUT':>5} {'FF':>4} {'BRAM':>5} "
              f"{'synth s':>8} {'Fmax MHz':>9} {'P&R s':>6}  check")
    print(header)
    print("-" * len(header))
    failures = 0
    for name, (cls, (dsp, ff, bram_x, bram_e)) in DESIGNS.items():
        source = out / f"{name}.v"
        start = time.perf_counter()
        source.write_text(verilog.convert(cls(), name=name))
        convert_s = time.perf_counter() - start
        for flow, bram in (("xcup", bram_x), ("ecp5", bram_e)):
            r = synthesize([source], name, flow, out / name / flow)
            fmax = pnr_s = ""
            if flow == "ecp5":
                p = place_and_route_ecp5(r.netlist_json, board.part, board.package,
                                         int(board.speed_grade), 100, out / name / "pnr")
                fmax, pnr_s = f"{p.fmax_mhz:9.1f}", f"{p.seconds:6.1f}"
            ok = r.dsp == dsp and (ff is None or r.ff == ff) and r.bram_blocks == bram
            failures += not ok
            print(f"{name:<15} {flow:<5} {r.dsp:>4} {r.lut:>5} {r.ff:>4} {r.bram_blocks:>5g} "
                  f"{r.seconds:>8.1f} {fmax:>9} {pnr_s:>6}  {'ok' if ok else 'MISMATCH'}")
        print(f"{'':<15} (Amaranth to Verilog {convert_s:.2f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
