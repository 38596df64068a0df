"""Yosys counts of the bare PE array, the measured part of the resource model.

Usage: ``.venv/bin/python bench/synth_bare_array.py [--sizes 8 16] [--flows xcup ecp5]
[--out DIR]``

Synthesises ``rtl.systolic.SystolicArray`` alone (square, int8 operands, 32-bit accumulators,
the flow's multiplier target at its default latency; ``synth_xilinx -family xcup -flatten``
or ``synth_ecp5``) and prints DSP, LUT and FF per size and flow, and the per-PE-bit rates
``dse.cost.resources.array_resources`` uses (a PE's bits: a + b + acc, and the shadow
register of the next stationary operand, max(a, b), for flip-flops).  The counts are the
``MEASURED`` table of tests/dse/test_cost_resources.py.  Never runs in ``make test``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from omniconv.yosys import synthesize  # noqa: E402
from rtl.emit import verilog_text  # noqa: E402
from rtl.params import ArrayParams  # noqa: E402
from rtl.systolic import SystolicArray  # noqa: E402

WIDTHS = dict(a_width=8, b_width=8, acc_width=32)


def measure(size: int, flow: str, out: Path) -> dict:
    """DSP, LUT and FF of a bare ``size``×``size`` array for ``flow``."""
    params = ArrayParams(rows=size, cols=size, **WIDTHS)
    work = out / f"{flow}_{size}"
    work.mkdir(parents=True, exist_ok=True)
    src = work / "array.v"
    src.write_text(verilog_text(SystolicArray(params, target=flow), "array"))
    got = synthesize([src], "array", flow, work)
    return {"dsp": got.dsp, "lut": got.lut, "ff": got.ff}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--flows", nargs="+", default=["xcup", "ecp5"])
    ap.add_argument("--out", type=Path, default=REPO / "build" / "synth_bare_array")
    args = ap.parse_args(argv)
    bits = WIDTHS["a_width"] + WIDTHS["b_width"] + WIDTHS["acc_width"]
    shadow = max(WIDTHS["a_width"], WIDTHS["b_width"])
    print(f"{'flow':6} {'size':>5} {'DSP':>6} {'LUT':>8} {'FF':>8} {'LUT/PE/bit':>11} "
          f"{'FF/PE/bit':>10}")
    for flow in args.flows:
        for size in args.sizes:
            got = measure(size, flow, args.out)
            pes = size * size
            print(f"{flow:6} {size:5} {got['dsp']:6} {got['lut']:8} {got['ff']:8} "
                  f"{got['lut'] / pes / bits:11.4f} {got['ff'] / pes / (bits + shadow):10.4f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
