"""Pooling and the residual add on overlays with rows ≠ cols, compiled and run in Verilator.

The pool engine works on groups of gcd(rows, cols) int8 lanes (``rtl.pool_layout``): on a
4×8 overlay it reads feature and aux words of 4 lanes and packs two results into each output
word of 8 lanes; on an 8×4 overlay it picks two groups out of each 8-lane input word and
writes 4-lane output words.  The small residual network of test_compile_network.py (conv →
ReLU → max pool → conv → ReLU → 1×1 conv → add with the pool's output → ReLU → average pool
3×3/2 with padding → global average pool), 12 channels wide here so that a pixel's last
output word on 4×8 is half full, is explored (``dse.search.search`` with the overlay
pinned), compiled by ``dse.compiler.network.compile_network`` and run with the DRAM model in
RTL (``sim/overlay_sim.py``).  Every layer's tensor read back equals the golden tensor of
``sim.models`` (``sim.overlay_golden.golden_outputs``: from the plans and weights, never the
program), the measured total is within 1 % of ``dse.compiler.timing.program_timing``'s, and
every ``pool.tile``'s and ``compute.tile``'s measured span equals ``instruction_cycles``'.
"""

from __future__ import annotations

import numpy as np
import pytest

from dse.board import load_board
from dse.compiler.network import compile_network, design_overlay
from dse.compiler.program import PoolLayer, decode_output, instruction_cycles
from dse.compiler.timing import program_timing
from dse.search import search
from rtl.isa import ComputeTile, PoolSetup, PoolTile
from rtl.overlay_top import OverlayTop
from rtl.pool_layout import pool_lanes
from sim.overlay_golden import golden_outputs
from sim.overlay_sim import build_overlay_sim, instruction_spans, run_overlay_sim
from test_compile_network import RESIDUAL_LAYER_PINS, _residual

pytestmark = [pytest.mark.verilator, pytest.mark.regress]

#: DRAM model words (16 bytes each): 256 KiB.
MEM_WORDS = 1 << 14
TABLE_WORDS = 256


@pytest.mark.parametrize("rows,cols", [(4, 8), (8, 4)])
def test_pools_run_bit_exact_with_predicted_cycles(rows, cols):
    net = _residual(channels=12)
    pins = {"rows": rows, "cols": cols, "act_buffer_kib": 4, "weight_buffer_kib": 4,
            "out_buffer_kib": 4, "bus_bits": 128}
    design = search(net, load_board("zcu102"), algorithms=("im2col", "kn2row"),
                    dataflows=("ws", "os"), hardware_pins=pins,
                    layer_pins=RESIDUAL_LAYER_PINS, optimizer="grid")
    params, limits = design_overlay(design)
    assert (params.rows, params.cols) == (rows, cols) and pool_lanes(params) == 4
    x = np.random.default_rng(11).integers(-128, 128, net.input_shape)
    lp, used = compile_network(net, design, x, seed=4)
    gold = golden_outputs(lp, x, list(used.values()), list(used))
    assert list(gold) == ["c1", "p1", "c2", "c3", "add", "ap", "g"]
    kinds = [p.mode if isinstance(p, PoolLayer) else p.algorithm for p in lp.plans]
    assert kinds[1:] == ["max", "kn2row", "im2col", "add", "avg", "gavg"]
    assert lp.plans[5].pads == (1, 1, 1, 1) and lp.plans[5].stride == 2
    for name, g in gold.items():                       # not degenerate
        assert len(np.unique(g)) > (1 if name == "g" else 4), name
    # the pool instructions: input words of ⌈12 / rows⌉, output words of ⌈12 / cols⌉ a pixel
    setups = [i for i in lp.program if isinstance(i, PoolSetup)]
    assert [s.ch for s in setups] == [12] * 4

    top = OverlayTop(params, limits, table_words=TABLE_WORDS, token_depth=2)
    assert top.has_pool and top.pool.lanes == 4
    assert (top.pool.in_lanes, top.pool.out_lanes) == (rows, cols)
    sim = build_overlay_sim(top, mem_words=MEM_WORDS)
    r = run_overlay_sim(sim, lp.image, program=lp.program_addr, trace=True)
    assert r.ok and not r.error, (r.error_code, r.error_index)
    for i, (name, g) in enumerate(gold.items()):
        out = decode_output(lp, r.memory[:len(lp.image)], 0, layer=i)
        assert np.array_equal(out, g), f"{name}: {(out != g).sum()} outputs differ"

    timing = program_timing(lp, params)
    assert abs(r.cycles - timing.total_cycles) <= 0.01 * r.cycles, (r.cycles,
                                                                   timing.total_cycles)
    spans = instruction_spans(lp.program, r.trace)
    durations = instruction_cycles(lp, params)
    pools = 0
    for inst, span, n in zip(lp.program, spans, durations, strict=True):
        if isinstance(inst, (ComputeTile, PoolTile)):       # the read channel cannot delay
            assert span[1] - span[0] == n, (inst, span, n)
            pools += isinstance(inst, PoolTile)
    assert pools >= 4
    print(f"{rows}x{cols}: measured {r.cycles} cycles, program_timing "
          f"{timing.total_cycles}, {pools} pool.tiles")


@pytest.mark.parametrize("rows,cols", [(4, 8), (8, 4)])
def test_wide_tops_lint_clean(tmp_path, rows, cols):
    """The overlay tops with the wide pool engine are Verilator-lint clean, as the others."""
    from rtl.params import DatapathLimits, OverlayParams
    from sim.runner import emit_verilog, lint_verilog

    limits = DatapathLimits(max_m=64, max_k=72, max_n=8, feature_words=256,
                            weight_words=128, out_words=64, max_gemms=16, tile_words=2,
                            spectral_words=2)
    top = OverlayTop(OverlayParams(rows=rows, cols=cols), limits)
    assert top.has_pool
    violations, _ = lint_verilog(emit_verilog(top, "overlay_top"), "overlay_top",
                                 work_dir=tmp_path)
    assert not violations, "\n".join(f"line {v.line}: %{v.rule}: {v.message}"
                                     for v in violations[:20])
