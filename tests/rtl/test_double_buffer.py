"""Double-buffered programs on the overlay top in Verilator.

With ``double_buffer`` the program builder (``dse.compiler.program.build_network_program``)
alternates a conv layer's invocations between the two halves of the datapath's feature (or
tile), weight and output buffers (the register image's ``bank``): invocation k's loads wait
for compute k − 2, not k − 1, and compute k for the store of k − 2, so loads overlap the
previous compute and stores the next.  The networks of ``test_compile_network.py`` (the
residual chain and the branches, im2col and kn2row) and of ``test_compile_winograd.py``
(im2col → Winograd, every layer planned for half buffers) run here double-buffered: every
tensor read back equals ``sim.overlay_golden.golden_outputs`` (whole-tensor reference
models, never the program) bit for bit, the measured cycles lie within 1 % of
``dse.compiler.timing.program_timing``, and the schedule is shorter than the single-buffered
program's.  Then the token structure and the refusals, without a simulator.
"""

from __future__ import annotations

import numpy as np
import pytest

from dse.board import load_board
from dse.compiler import plan_conv
from dse.compiler.asm import schedule
from dse.compiler.network import compile_network, design_overlay
from dse.compiler.program import (build_network_program, decode_output,
                                  double_buffer_limits, instruction_cycles)
from dse.compiler.timing import program_timing
from dse.network import Layer, NetworkBuilder
from dse.search import search
from test_compile_network import (BRANCHES_LAYER_PINS, MEM_WORDS, PINS, RESIDUAL_LAYER_PINS,
                                  TABLE_WORDS, _branches as _branches_net,
                                  _residual as _residual_net)
from rtl.isa import Buffer, ComputeTile, Engine, LoadTile, PoolTile, StoreTile
from rtl.overlay_top import OverlayTop
from rtl.params import DISPATCH_LATENCY, QUEUE_DEPTH, DatapathLimits
from sim.overlay_golden import golden_outputs
from sim.overlay_sim import build_overlay_sim, run_overlay_sim

pytestmark = pytest.mark.verilator

# PINS, MEM_WORDS and TABLE_WORDS are test_compile_network.py's: every top here but the
# Winograd one is its 4×4 overlay with 2 KiB buffers, the same Verilator build (also
# tests/cli/test_verify_top.py's).
#: The overlay of test_compile_winograd.py (F(2×2, 3×3)).
WINO_PINS = {**PINS, "winograd_m": 2, "a_width": 10, "b_width": 12}


def _residual():
    return _residual_net(), RESIDUAL_LAYER_PINS


def _branches():
    return _branches_net(), BRANCHES_LAYER_PINS


def _run(lp, gold, params, limits, table_words=TABLE_WORDS):
    """Run ``lp`` in Verilator; check every tensor bit-exact and the cycles within 1 % of
    ``program_timing``; return (measured, model) cycles."""
    top = OverlayTop(params, limits, table_words=table_words, token_depth=2)
    r = run_overlay_sim(build_overlay_sim(top, mem_words=MEM_WORDS), lp.image,
                        program=lp.program_addr)
    assert r.ok and not r.error, (r.error_code, r.error_index)
    for i, (name, g) in enumerate(gold.items()):
        out = decode_output(lp, r.memory[:len(lp.image)], 0, layer=i)
        assert np.array_equal(out, g), f"{name}: {(out != g).sum()} outputs differ"
    model = program_timing(lp, params).total_cycles
    assert abs(r.cycles - model) <= 0.01 * model, (r.cycles, model)
    return r.cycles, model


@pytest.mark.parametrize("network", [_residual, _branches], ids=["residual", "branches"])
def test_compiled_network_double_buffered_bit_exact(network):
    net, pins = network()
    design = search(net, load_board("zcu102"), algorithms=("im2col", "kn2row"),
                    dataflows=("ws", "os"), hardware_pins=PINS, layer_pins=pins,
                    optimizer="grid")
    params, limits = design_overlay(design)
    x = np.random.default_rng(7).integers(-128, 128, net.input_shape)
    lp, used = compile_network(net, design, x, seed=3, double_buffer=True)
    single, _ = compile_network(net, design, x, seed=3, double_buffer=False)
    gold = golden_outputs(lp, x, list(used.values()), list(used))
    for name, g in gold.items():
        assert len(np.unique(g)) > 2, name
    # some layer alternates its halves (the upper half runs), the rest as before
    banks = [inv.registers["bank"] for _, inv in lp.computes]
    assert 1 in banks and 0 in banks
    measured, model = _run(lp, gold, params, limits)
    slow = program_timing(single, params).total_cycles
    print(f"{net.name}: double-buffered measured {measured}, model {model}; "
          f"single-buffered model {slow}")
    assert model < slow


def _pools():
    """conv → ReLU → max pool 2×2 → conv → add with the pool's output → ReLU → average pool
    3×3/2 with padding, on a 16×16 input: the pool layers' inputs outgrow the 2 KiB
    buffers' halves, so they run in bands."""
    b = NetworkBuilder("pools", (4, 16, 16))
    b.conv("c1", out_channels=8, kernel=3, padding=1)
    b.act("relu", "r1")
    b.maxpool("p1", kernel=2)                                      # 8×8×8
    b.conv("c2", out_channels=8, kernel=3, padding=1)
    b.sum("add", ["c2", "p1"])
    b.act("relu", "r2")
    b.avgpool("ap", kernel=3, stride=2, padding=1)                  # 8×4×4
    return b.build()


def test_pool_layers_double_buffered_bit_exact():
    """Pool and add layers alternate their bands between the feature, aux and output
    buffers' halves (the pool engine's in_addr, in2_addr and out_addr): a band loads while
    the one before it pools, bit-exact, on the model, faster than single-buffered."""
    net = _pools()
    design = search(net, load_board("zcu102"), algorithms=("im2col", "kn2row"),
                    dataflows=("ws", "os"), hardware_pins=PINS, optimizer="grid")
    params, limits = design_overlay(design)
    x = np.random.default_rng(11).integers(-128, 128, net.input_shape)
    lp, used = compile_network(net, design, x, seed=5, double_buffer=True)
    single, _ = compile_network(net, design, x, seed=5, double_buffer=False)
    tiles = [i for i in lp.program if isinstance(i, PoolTile)]
    half_f, half_o = limits.feature_words // 2, limits.out_words // 2
    assert {(t.in_addr, t.out_addr) for t in tiles} == {(0, 0), (half_f, half_o)}
    assert {t.in2_addr for t in tiles} == {0, min(half_f, half_o)}     # the add's aux halves
    gold = golden_outputs(lp, x, list(used.values()), list(used))
    measured, model = _run(lp, gold, params, limits)
    slow = program_timing(single, params).total_cycles
    print(f"pools: double-buffered measured {measured}, model {model}; single {slow}")
    assert measured == model < slow


def test_next_layers_first_weights_load_before_the_layer_boundary():
    """Three double-buffered conv layers in a row: each later layer's first invocation
    loads its weights before the boundary (popping the token of the previous layer's last
    compute on weight half 0), then its features after it; bit-exact, measured = model."""
    b = NetworkBuilder("chain", (8, 24, 24))
    b.conv("c1", out_channels=8, kernel=3, padding=1)
    b.act("relu", "r1")
    b.conv("c2", out_channels=8, kernel=3, padding=1)
    b.conv("c3", out_channels=8, kernel=1)
    net = b.build()
    # 4 KiB buffers: each layer runs five invocations, double-buffered
    pins = {**PINS, "act_buffer_kib": 4, "weight_buffer_kib": 4, "out_buffer_kib": 4}
    design = search(net, load_board("zcu102"), algorithms=("im2col",), dataflows=("ws",),
                    hardware_pins=pins, optimizer="grid")
    params, limits = design_overlay(design)
    x = np.random.default_rng(13).integers(-128, 128, net.input_shape)
    lp, used = compile_network(net, design, x, seed=9, double_buffer=True)
    early = [k for k, (a, b) in enumerate(zip(lp.program, lp.program[1:]))
             if isinstance(a, LoadTile) and a.buf is Buffer.WEIGHT
             and getattr(b, "buf", None) is Buffer.FEATURE and type(b).__name__ == "LoadSetup"]
    assert len(early) == 2, early                        # before c2's and c3's boundaries
    gold = golden_outputs(lp, x, list(used.values()), list(used))
    measured, model = _run(lp, gold, params, limits)
    assert measured == model


@pytest.mark.regress
def test_winograd_network_double_buffered_bit_exact():
    b = NetworkBuilder("wino", (5, 7, 7))
    b.conv("c1", out_channels=6, kernel=3, padding=1)
    b.act("relu", "r1")
    b.conv("c2", out_channels=5, kernel=3, padding=1)
    net = b.build()
    design = search(net, load_board("zcu102"), algorithms=("im2col", "winograd"),
                    dataflows=("ws", "os"), hardware_pins=WINO_PINS,
                    layer_pins={"c1": {"algorithm": "im2col"},
                                "c2": {"algorithm": "winograd"}}, optimizer="grid")
    params, limits = design_overlay(design)
    single, used = compile_network(net, design, np.zeros(net.input_shape, np.int8), seed=2,
                                   double_buffer=False)
    # every layer planned for half buffers: the Winograd layer runs two invocations, the
    # second from the upper half of the tile, weight and output buffers
    half = double_buffer_limits(limits)
    by_name = {p.name: p for p in design.layers}
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, net.input_shape)
    plans = [plan_conv(layer, by_name[layer.name].algorithm, by_name[layer.name].dataflow,
                       params, half, relu=layer.name == "c1") for layer in net.convs()]
    assert [len(p.invocations) for p in plans] == [1, 2]
    assert [p.algorithm for p in plans] == ["im2col", "winograd"]
    ws = list(used.values())
    lp = build_network_program(plans, x, ws, params, limits, double_buffer=True)
    assert [inv.registers["bank"] for _, inv in lp.computes] == [0, 0, 1]
    gold = golden_outputs(lp, x, ws, list(used))
    measured, model = _run(lp, gold, params, limits, table_words=max(64, lp.table_words))
    slow = program_timing(single, params).total_cycles
    print(f"wino: double-buffered measured {measured}, model {model}; "
          f"single-buffered model {slow}")
    assert model < slow


def _chain():
    """The 4×4 overlay of PINS (its buffers as design_overlay sizes them) and one 3×3 im2col
    layer, 32 → 8 channels on 8×8, that its weight buffer cuts into two channel chunks, and
    half of it into four invocations: two filter chunks of two channel chunks each (a K
    split, the second chunk accumulating onto the first)."""
    from dse.cost.resources import overlay_limits
    from dse.network import Layer
    from rtl.params import OverlayParams

    params = OverlayParams(**PINS)
    limits = DatapathLimits(**overlay_limits(params, 8))
    layer = Layer("c", "conv", (), (32, 8, 8), (8, 8, 8), kernel=(3, 3),
                  padding=(1, 1, 1, 1))
    return params, limits, layer


def test_tokens_and_halves_of_a_double_buffered_layer():
    params, limits, layer = _chain()
    plan = plan_conv(layer, "im2col", "ws", params, double_buffer_limits(limits))
    n = len(plan.invocations)
    assert [inv.final for inv in plan.invocations] == [False, True, False, True]
    assert [inv.registers["accumulate"] for inv in plan.invocations] == [0, 1, 0, 1]
    x = np.random.default_rng(0).integers(-128, 128, layer.in_shape)
    w = np.random.default_rng(1).integers(-128, 128, (8, 32, 3, 3))
    lp = build_network_program([plan], x, [w], params, limits, double_buffer=True)
    assert [inv.filters for inv in plan.invocations] == [(0, 4), (0, 4), (4, 8), (4, 8)]
    prog = lp.program
    computes = [i for i, inst in enumerate(prog) if isinstance(inst, ComputeTile)]
    assert [inv.registers["bank"] for _, inv in lp.computes] == [k % 2 for k in range(n)]
    # per invocation: its loads and stores address its half of each buffer
    starts = [0] + [c + 1 for c in computes[:-1]]
    for k, (lo, c) in enumerate(zip(starts, computes)):
        loads = [prog[i] for i in range(lo, c) if isinstance(prog[i], LoadTile)]
        feature = [ld for ld in loads if ld.buf == Buffer.FEATURE]
        weight = [ld for ld in loads if ld.buf == Buffer.WEIGHT]
        # invocations 2 and 3 read the channel chunks 0 and 1 left in their halves: their
        # features are not loaded again (only their weights, the other filters')
        assert weight and bool(feature) == (k < 2), k
        f_lo = (limits.feature_words // 2) * (k % 2)
        w_lo = (limits.weight_words // 2) * (k % 2)
        assert all(f_lo <= ld.addr < f_lo + limits.feature_words // 2 for ld in feature)
        assert all(w_lo <= ld.addr < w_lo + limits.weight_words // 2 for ld in weight)
        # the first load waits for compute k − 2 (none for the first two)
        assert (Engine.COMPUTE in loads[0].pop) == (k >= 2), k
        assert (Engine.STORE in prog[c].pop) == (k >= 2 and plan.invocations[k - 2].final)
    o_half = limits.out_words // 2
    stores = [(i, inst) for i, inst in enumerate(prog) if isinstance(inst, StoreTile)]
    for i, st in stores:
        k = sum(c < i for c in computes) - 1
        assert (k % 2) * o_half <= st.addr < (k % 2 + 1) * o_half
    # in the schedule, invocation 1's loads end before compute 0 does: they overlap
    times = schedule(prog, instruction_cycles(lp, params), 2, latency=DISPATCH_LATENCY,
                     queue_depth=QUEUE_DEPTH)
    last_load_1 = max(i for i in range(starts[1], computes[1])
                      if isinstance(prog[i], LoadTile))
    assert times[last_load_1][1] < times[computes[0]][1]
    single = build_network_program([plan], x, [w], params, limits)
    assert (program_timing(lp, params).total_cycles
            < program_timing(single, params).total_cycles)


def test_k_split_layer_double_buffered_bit_exact():
    """The im2col layer of four invocations (two of them accumulating onto the chunk before,
    from the other half) in Verilator."""
    params, limits, layer = _chain()
    plan = plan_conv(layer, "im2col", "ws", params, double_buffer_limits(limits))
    rng = np.random.default_rng(4)
    x = rng.integers(-128, 128, layer.in_shape)
    w = rng.integers(-128, 128, (8, 32, 3, 3))
    lp = build_network_program([plan], x, [w], params, limits, double_buffer=True)
    assert [inv.registers["accumulate"] for _, inv in lp.computes] == [0, 1, 0, 1]
    gold = golden_outputs(lp, x, [w])
    assert len(np.unique(gold["0"])) > 16
    measured, model = _run(lp, gold, params, limits)
    single = build_network_program([plan_conv(layer, "im2col", "ws", params, limits)], x,
                                   [w], params, limits)
    slow = program_timing(single, params).total_cycles
    print(f"k-split layer: double-buffered measured {measured}, model {model}; "
          f"single-buffered model {slow}")
    assert model < slow


def test_filter_chunks_outside_the_row_bands_keep_the_input_on_chip():
    """A 3×3 im2col layer, 4 → 32 channels on 16×16, that half buffers cut into two row bands
    of four filter chunks each.  Filter chunk after filter chunk, the two bands alternate
    between the halves, so each half keeps its band: only the first two invocations load
    features (in the plan's order, band after band, each band is loaded into both halves:
    four invocations load).  Bit-exact in Verilator, cycles within 1 % of the model and no
    more than the plan's order's."""
    from dse.compiler import program as program_module

    params, limits, _ = _chain()
    layer = Layer("c", "conv", (), (4, 16, 16), (32, 16, 16), kernel=(3, 3),
                  padding=(1, 1, 1, 1))
    plan = plan_conv(layer, "im2col", "ws", params, double_buffer_limits(limits))
    assert [(inv.band, inv.filters[0]) for inv in plan.invocations] == \
        [(b, f) for b in (0, 1) for f in (0, 8, 16, 24)]
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, layer.in_shape)
    w = rng.integers(-128, 128, (32, 4, 3, 3))
    lp = build_network_program([plan], x, [w], params, limits, double_buffer=True)
    assert [(inv.band, inv.filters[0]) for _, inv in lp.computes] == \
        [(b, f) for f in (0, 8, 16, 24) for b in (0, 1)]
    prog = lp.program

    def fed(prog):
        """Per invocation, whether it loads features."""
        computes = [i for i, inst in enumerate(prog) if isinstance(inst, ComputeTile)]
        starts = [0] + [c + 1 for c in computes[:-1]]
        return [any(isinstance(prog[i], LoadTile) and prog[i].buf == Buffer.FEATURE
                    for i in range(lo, c)) for lo, c in zip(starts, computes)]

    assert fed(prog) == [True, True] + [False] * 6
    # the same layer in the plan's order loads every invocation's features
    plan_order = program_module._invocation_order
    try:
        program_module._invocation_order = lambda invs, *rest: list(range(len(invs)))
        banded = build_network_program([plan], x, [w], params, limits, double_buffer=True)
    finally:
        program_module._invocation_order = plan_order
    assert fed(banded.program) == [True, True, False, False] * 2
    gold = golden_outputs(lp, x, [w])
    assert len(np.unique(gold["0"])) > 16
    measured, model = _run(lp, gold, params, limits)
    slow = program_timing(banded, params).total_cycles
    print(f"filter-outer: measured {measured}, model {model}; plan order model {slow}")
    assert model <= slow


def test_reuse_skips_what_a_half_still_holds():
    """``_reuse`` on hand-made keys: invocation k uses half k mod gap; a load is skipped
    when that half holds the same key, but never both loads of one invocation."""
    from dse.compiler.program import _reuse

    f, w = ["a", "b", "a", "b", "c"], ["x", "x", "x", "y", "y"]
    fb, wb = [10] * 5, [3] * 5
    skip_f, skip_w, loaded = _reuse(range(5), f, w, fb, wb, 2)
    # half 0: (a,x) (a,x) (c,y) -- the second keeps its (cheaper) weight load
    # half 1: (b,x) (b,y)
    assert skip_f == [False, False, True, True, False]
    assert skip_w == [False, False, False, False, False]
    assert loaded == 10 + 3 + 10 + 3 + 3 + 3 + 10 + 3
    skip_f, skip_w, _ = _reuse(range(5), f, w, fb, wb, 1)
    assert skip_f == [False] * 5
    assert skip_w == [False, True, True, False, True]


def test_double_buffer_refusals():
    params, limits, layer = _chain()
    full = plan_conv(layer, "im2col", "ws", params, limits)
    x = np.zeros(layer.in_shape, np.int64)
    w = np.zeros((8, 32, 3, 3), np.int64)
    with pytest.raises(ValueError, match=r"^plans\[0\] weight_words must fit half the "
                                         r"buffer with double_buffer \(256 words; plan it "
                                         r"with double_buffer_limits\), not 288$"):
        build_network_program([full], x, [w], params, limits, double_buffer=True)
    half = plan_conv(layer, "im2col", "ws", params, double_buffer_limits(limits))
    with pytest.raises(ValueError, match=r"^token_depth must be at least 2 with "
                                         r"double_buffer, not 1$"):
        build_network_program([half], x, [w], params, limits, double_buffer=True,
                              token_depth=1)
    with pytest.raises(ValueError, match=r"^double_buffer must be a bool or one bool per "
                                         r"plan \(1\)"):
        build_network_program([half], x, [w], params, limits, double_buffer=(True, False))
    assert double_buffer_limits(limits).weight_words == limits.weight_words // 2
    assert double_buffer_limits(limits).max_m == limits.max_m
