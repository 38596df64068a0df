"""Yosys cost of the overlay top's units (issue "The overlay top"), each synthesised alone.

The load and store engines (``rtl/dma.py``, 128-bit bus, 16 byte lanes), the controller
(``rtl/controller.py``, default queues), the sparse spectral MAC unit (``rtl/sparse_fft.py``,
P = B = 8, 16-bit parts), the compute engine (``rtl/compute_engine.py``, the register image of
a 16×16 overlay's datapath at its default buffers) and the onnxruntime-exact requantiser
(``rtl/requant_f32.py``, one lane) and the onnxruntime-exact QLinearAdd unit
(``rtl/qadd_f32.py``, one lane), and the per-channel requantiser against the per-layer one
it replaces (``rtl/requant_channels.py`` and ``rtl/requant.py`` at 4 and 8 lanes: the
differences per lane are ``dse.cost.resources.CHANNEL_REQUANT_PER_LANE``) and the pool
engine with its quantised modes at 4 and 8 lanes, with
:func:`omniconv.yosys.synthesize` on both flows
(``synth_xilinx -family xcup -flatten``; ``synth_ecp5``), no place-and-route.

Usage: ``python bench/synth_top_units.py [NAME ...]``: every unit, or only those whose name
contains one of the NAMEs (``python bench/synth_top_units.py qadd``).  Prints a table; writes
build/bench/synth_top_units.json (a run of some units updates their rows, keeping the others).
About 3 minutes on 2 cores for all of them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["units", "main"]


def units() -> dict:
    """name -> component, as the module docstring lists them."""
    from dse.cost.resources import overlay_limits
    from rtl.compute_engine import ComputeEngine
    from rtl.controller import Controller
    from rtl.dma import LoadEngine, StoreEngine
    from rtl.params import DatapathLimits, OverlayParams, SparseParams, datapath_registers
    from rtl.pool_engine import PoolEngine
    from rtl.params import REQUANT_MULT_BITS, REQUANT_SHIFT_BITS
    from rtl.qadd_f32 import QAddF32
    from rtl.requant import Requant
    from rtl.requant_channels import ChannelRequant
    from rtl.requant_f32 import RequantF32
    from rtl.sparse_fft import SparseMAC

    hw = OverlayParams(rows=16, cols=16)
    return {
        "load_engine (128 b, 16 lanes)": LoadEngine(128, 16),
        "store_engine (128 b, 16 lanes)": StoreEngine(128, 16),
        "controller (tokens 2, queues 4)": Controller(),
        "sparse_mac (P 8, B 8)": SparseMAC(SparseParams(lanes=8, banks=8)),
        "compute_engine (16x16 image)": ComputeEngine(
            datapath_registers(hw, DatapathLimits(**overlay_limits(hw)))),
        "requant_f32 (1 lane)": RequantF32(1),
        "qadd_f32 (1 lane)": QAddF32(1),
        **{f"channel_requant ({n} lanes)": ChannelRequant(n, n) for n in (4, 8)},
        **{f"requant ({n} lanes)": Requant(n, 32, 8, REQUANT_MULT_BITS, REQUANT_SHIFT_BITS)
           for n in (4, 8)},
        **{f"pool_engine qdq ({n} lanes)": PoolEngine(n, 1024, qdq=True) for n in (4, 8)},
    }


def main(argv: list[str] | None = None) -> int:
    from omniconv.yosys import synthesize
    from sim.runner import emit_verilog

    names = sys.argv[1:] if argv is None else argv
    work = ROOT / "build" / "bench" / "synth_top_units"
    out = ROOT / "build" / "bench" / "synth_top_units.json"
    rows = json.loads(out.read_text()) if names and out.exists() else {}
    print("| unit | flow | DSP | LUT | FF | BRAM | s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for i, (name, comp) in enumerate(units().items()):
        if names and not any(k in name for k in names):
            comp._MustUse__silence = True           # built but not synthesised
            continue
        top = f"unit{i}"
        d = work / top
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{top}.v").write_text(emit_verilog(comp, top))
        for flow in ("xcup", "ecp5"):
            r = synthesize([d / f"{top}.v"], top, flow, d / flow, progress=False)
            rows[f"{name}/{flow}"] = dict(dsp=r.dsp, lut=r.lut, ff=r.ff, bram=r.bram_blocks,
                                         seconds=round(r.seconds, 1))
            print(f"| {name} | {flow} | {r.dsp} | {r.lut:,} | {r.ff:,} | {r.bram_blocks} "
                  f"| {r.seconds:.1f} |", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
