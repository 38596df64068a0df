"""A network whose design picks Winograd, compiled and run on the overlay top in Verilator.

``dse.search.search`` explores a two-conv network (3×3 conv → ReLU → 3×3 conv, 5 → 6 → 5
channels on 7×7: none a multiple of the 4×4 array, the output size not a multiple of m) on
a 4×4 overlay with F(2×2, 3×3), the first layer pinned to im2col and the second to Winograd;
``dse.compiler.network.compile_network`` turns network and design into one program (the
folded ReLU in the im2col layer's requantiser, the Winograd layer's tile-mode loads and
stores); in Verilator every tensor read back equals ``sim.overlay_golden.golden_outputs``
(``sim.models`` on whole tensors, from the plans and weights, never the program) bit for
bit, and the cycles equal the schedule's.
"""

from __future__ import annotations

import numpy as np
import pytest

from dse.board import load_board
from dse.compiler.network import compile_network, design_overlay
from dse.compiler.program import decode_output
from dse.compiler.timing import top_cycles
from dse.network import NetworkBuilder
from dse.search import search
from rtl.overlay_top import OverlayTop
from sim.overlay_golden import golden_outputs
from sim.overlay_sim import build_overlay_sim, run_overlay_sim

pytestmark = pytest.mark.verilator

#: A 4×4 overlay with F(2×2, 3×3) and small buffers (the search keeps the pins).
PINS = {"rows": 4, "cols": 4, "act_buffer_kib": 2, "weight_buffer_kib": 2,
        "out_buffer_kib": 2, "bus_bits": 128, "winograd_m": 2, "a_width": 10, "b_width": 12}
#: DRAM model words (16 bytes each): 64 KiB.
MEM_WORDS = 1 << 12


def _network():
    b = NetworkBuilder("wino", (5, 7, 7))
    b.conv("c1", out_channels=6, kernel=3, padding=1)
    b.act("relu", "r1")
    b.conv("c2", out_channels=5, kernel=3, padding=1)
    return b.build()


def test_design_with_winograd_compiles_and_runs_bit_exact():
    net = _network()
    design = search(net, load_board("zcu102"), algorithms=("im2col", "winograd"),
                    dataflows=("ws", "os"), hardware_pins=PINS,
                    layer_pins={"c1": {"algorithm": "im2col"}, "c2": {"algorithm": "winograd"}},
                    optimizer="grid")
    assert {p.name: p.algorithm for p in design.layers} == {"c1": "im2col", "c2": "winograd"}
    x = np.random.default_rng(1).integers(-128, 128, net.input_shape)
    lp, used = compile_network(net, design, x, seed=2)
    assert [p.algorithm for p in lp.plans] == ["im2col", "winograd"]
    assert lp.plans[0].invocations[0].registers["rq_relu"] == 1          # the folded ReLU
    gold = golden_outputs(lp, x, list(used.values()), list(used))
    params, limits = design_overlay(design)
    top = OverlayTop(params, limits, table_words=max(64, lp.table_words))
    sim = build_overlay_sim(top, mem_words=MEM_WORDS)
    r = run_overlay_sim(sim, lp.image, program=lp.program_addr)
    assert r.ok and not r.error, (r.error_code, r.error_index)
    for i, name in enumerate(used):
        out = decode_output(lp, r.memory[:len(lp.image)], 0, layer=i)
        assert np.array_equal(out, gold[name]), f"{name}: {(out != gold[name]).sum()} differ"
    model = top_cycles(lp, params)
    print(f"compiled network: measured {r.cycles} cycles, model {model} "
          f"({100 * (r.cycles - model) / model:+.2f} %), {len(lp.program)} instructions")
    assert r.cycles == model, (r.cycles, model)
