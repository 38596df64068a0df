"""Winograd layers on the overlay top in Verilator, from DRAM (``sim/overlay_sim.py``).

One build of a 4×4 overlay with F(2×2, 3×3) (``OverlayTop`` with ``winograd_m``: the load
engine's tile mode fills the tile buffer slot by slot, the store engine's tile mode writes
each output tile) runs

* a Winograd layer (6 → 5 channels, not multiples of the array; a 7×7 output, not a multiple
  of m; 3×3 with padding 1; cut into two row bands by the buffers): its output tensor read
  back equals ``sim.overlay_golden.golden_outputs`` (``sim.models`` on whole tensors,
  independent of the program and the RTL) bit for bit, and the top's cycles equal
  ``dse.compiler.timing.top_cycles`` (the schedule with ``instruction_cycles``); with a
  read latency and random back-pressure the cycles grow and the output stays the same;
* a chain im2col 3×3 (ws) → Winograd 3×3 → im2col 1×1 (os), every tensor bit-exact, the
  cycles the schedule's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dse.compiler import plan_conv
from dse.compiler.program import build_network_program, decode_output
from dse.compiler.timing import top_cycles
from rtl.overlay_top import OverlayTop
from rtl.params import DatapathLimits, OverlayParams
from sim.overlay_golden import golden_outputs
from sim.overlay_sim import build_overlay_sim, run_overlay_sim

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dse"))
from cost_helpers import conv

pytestmark = [pytest.mark.verilator, pytest.mark.regress]

HW = OverlayParams(rows=4, cols=4, winograd_m=2, a_width=10, b_width=12)
#: The 7×7 Winograd layer's 80 output words do not fit 64: two row bands.
LIMITS = DatapathLimits(max_m=64, max_k=72, max_n=8, feature_words=256, weight_words=256,
                        out_words=64, max_gemms=16, tile_words=64, spectral_words=2)
TOKEN_DEPTH = 2
#: DRAM model words (16 bytes each): 256 KiB.
MEM_WORDS = 1 << 14
#: The chain: (algorithm, dataflow, layer).
CHAIN = [
    ("im2col", "ws", conv(c_in=6, h=7, w=7, c_out=5, k=3)),
    ("winograd", "ws", conv(c_in=5, h=7, w=7, c_out=6, k=3)),
    ("im2col", "os", conv(c_in=6, h=7, w=7, c_out=7, k=1, p=0)),
]


@pytest.fixture(scope="module")
def sim():
    """One Verilator build of the Winograd overlay."""
    top = OverlayTop(HW, LIMITS, token_depth=TOKEN_DEPTH)
    return build_overlay_sim(top, mem_words=MEM_WORDS)


def _program(chain, seed):
    plans = [plan_conv(layer, algo, flow, HW, LIMITS) for algo, flow, layer in chain]
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, chain[0][2].in_shape)
    ws = [rng.integers(-128, 128, (layer.out_shape[0], layer.in_shape[0], *layer.kernel))
          for _, _, layer in chain]
    lp = build_network_program(plans, x, ws, HW, LIMITS, token_depth=TOKEN_DEPTH)
    return lp, golden_outputs(lp, x, ws)


def _model(lp):
    return top_cycles(lp, HW)


def test_winograd_layer_bit_exact_and_on_the_model(sim):
    lp, gold = _program(CHAIN[1:2], seed=11)
    assert len(lp.plans[0].bands) == 2
    r = run_overlay_sim(sim, lp.image, program=lp.program_addr)
    assert r.ok and not r.error, (r.error_code, r.error_index)
    out = decode_output(lp, r.memory[:len(lp.image)], 0)
    assert np.array_equal(out, gold["0"]), f"{(out != gold['0']).sum()} outputs differ"
    model = _model(lp)
    print(f"winograd layer: measured {r.cycles} cycles, model {model} "
          f"({100 * (r.cycles - model) / model:+.2f} %), {len(lp.program)} instructions")
    assert r.cycles == model, (r.cycles, model)
    slow = run_overlay_sim(sim, lp.image, program=lp.program_addr, latency=5, stall=64)
    assert slow.ok and slow.cycles > r.cycles
    assert np.array_equal(decode_output(lp, slow.memory[:len(lp.image)], 0), gold["0"])


def test_chain_with_a_winograd_layer_bit_exact(sim):
    lp, gold = _program(CHAIN, seed=12)
    assert [p.algorithm for p in lp.plans] == ["im2col", "winograd", "im2col"]
    r = run_overlay_sim(sim, lp.image, program=lp.program_addr)
    assert r.ok and not r.error, (r.error_code, r.error_index)
    for i in range(len(CHAIN)):
        out = decode_output(lp, r.memory[:len(lp.image)], 0, layer=i)
        assert np.array_equal(out, gold[str(i)]), f"layer {i}: {(out != gold[str(i)]).sum()}"
    model = _model(lp)
    print(f"chain: measured {r.cycles} cycles, model {model} "
          f"({100 * (r.cycles - model) / model:+.2f} %), {len(lp.program)} instructions")
    assert r.cycles == model, (r.cycles, model)


def test_winograd_top_lints_clean(tmp_path):
    """The Winograd top's Verilog (tile-mode engines, the slot-enabled tile buffer) is
    Verilator-lint clean, as the other tops'."""
    from sim.runner import emit_verilog, lint_verilog

    violations, _ = lint_verilog(emit_verilog(OverlayTop(HW, LIMITS), "overlay_top"),
                                 "overlay_top", work_dir=tmp_path)
    assert not violations, "\n".join(f"line {v.line}: %{v.rule}: {v.message}"
                                     for v in violations[:20])
