"""Winograd on an 8×8 overlay with two output transforms, in Verilator from DRAM.

One build of an 8×8 overlay with F(2×2, 3×3) and ``winograd_lanes`` = 2 (an output word
holds the 2×2 tiles of two filters: the store engine's tile mode gathers two lanes a pixel)
runs a chain of two Winograd layers: a 5×5 kernel with padding 2 (four 3×3 pieces a tile),
10 → 11 channels, then a 3×3 kernel with padding 1, 11 → 9 channels, on 9×9 (an output size
that is not a multiple of m, channel counts that are not multiples of 8).  Every tensor read
back equals ``sim.overlay_golden.golden_outputs`` bit for bit, and the cycles equal the
schedule's (431 of the 461 instructions are short loads: the fetch unit's own read port and
the instruction queues' model make that exact); with a read latency and random
back-pressure the outputs stay the same.
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

HW = OverlayParams(rows=8, cols=8, winograd_m=2, winograd_lanes=2, a_width=10, b_width=12)
LIMITS = DatapathLimits(max_m=32, max_k=64, max_n=16, feature_words=64, weight_words=512,
                        out_words=128, max_gemms=16, tile_words=128, spectral_words=2)
TOKEN_DEPTH = 2
CHAIN = [conv(c_in=10, h=9, w=9, c_out=11, k=5, p=2), conv(c_in=11, h=9, w=9, c_out=9, k=3)]


def test_winograd_chain_on_8x8_with_two_output_lanes():
    plans = [plan_conv(layer, "winograd", "os" if i else "ws", HW, LIMITS)
             for i, layer in enumerate(CHAIN)]
    rng = np.random.default_rng(21)
    x = rng.integers(-128, 128, CHAIN[0].in_shape)
    ws = [rng.integers(-128, 128, (l.out_shape[0], l.in_shape[0], *l.kernel)) for l in CHAIN]
    lp = build_network_program(plans, x, ws, HW, LIMITS, token_depth=TOKEN_DEPTH)
    gold = golden_outputs(lp, x, ws)
    top = OverlayTop(HW, LIMITS, token_depth=TOKEN_DEPTH)
    sim = build_overlay_sim(top, mem_words=1 << 13)
    r = run_overlay_sim(sim, lp.image, program=lp.program_addr)
    assert r.ok and not r.error, (r.error_code, r.error_index)
    for i in range(len(CHAIN)):
        out = decode_output(lp, r.memory[:len(lp.image)], 0, layer=i)
        assert np.array_equal(out, gold[str(i)]), f"layer {i}: {(out != gold[str(i)]).sum()}"
    model = top_cycles(lp, HW)
    print(f"8x8 winograd chain: measured {r.cycles} cycles, model {model} "
          f"({100 * (r.cycles - model) / model:+.2f} %), {len(lp.program)} instructions, "
          f"invocations {[len(p.invocations) for p in plans]}")
    assert r.cycles == model, (r.cycles, model)
    slow = run_overlay_sim(sim, lp.image, program=lp.program_addr, latency=4, stall=80)
    assert slow.ok and slow.cycles > r.cycles
    assert np.array_equal(decode_output(lp, slow.memory[:len(lp.image)], 0), gold["1"])
