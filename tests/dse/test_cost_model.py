"""The vectorised entry point: masks, consistency with evaluate_one, the double-buffered
combination, energy from the cited table, non-MAC layers, and the torch backend."""

from __future__ import annotations

import numpy as np
import pytest

from dse.cost import energy
from dse.cost.backend import get_namespace, to_numpy, torch_available
from dse.cost.choices import Choice, enumerate_choices
from dse.cost.hardware import PARAM_FIELDS, HardwareTable
from dse.cost.model import COST_FIELDS, evaluate, evaluate_aux, evaluate_one
from dse.cost.workload import AuxTable, LayerTable
from dse.network import Layer, Network
from rtl.params import Algorithm, Dataflow, OverlayParams

from cost_helpers import conv, fc

LAYERS = [conv("c3", c_in=16, h=14, w=14, c_out=24, k=3, p=1),
          conv("c1", c_in=24, h=14, w=14, c_out=32, k=1, p=0),
          conv("s2", c_in=8, h=15, w=15, c_out=16, k=3, s=2, p=1),
          conv("dw", c_in=16, h=14, w=14, c_out=16, k=3, p=1, g=16),
          conv("c5", c_in=8, h=14, w=14, c_out=8, k=5, p=2),
          fc("fc", c=32, h=2, w=2, out=10)]


def _hardware(**kw):
    axes = dict(rows=[4, 8, 16], cols=[4, 16], a_width=[17], b_width=[17], acc_width=[48],
                winograd_m=[0, 2, 4], fft_size=[0, 8, 16], act_buffer_kib=[4, 64],
                weight_buffer_kib=[2, 64], out_buffer_kib=[64], bus_bits=[64, 512])
    axes.update(kw)
    return HardwareTable.from_grid(clock_mhz=200, dram_gbps=12.8, **axes)


@pytest.fixture(scope="module")
def case():
    layers = LayerTable.from_layers(LAYERS)
    choices = enumerate_choices()
    hw = _hardware()
    return layers, choices, hw, evaluate(layers, choices, hw)


def test_shapes_and_invalid_entries_are_inf(case):
    layers, choices, hw, cost = case
    assert cost.shape == (len(layers), len(choices), len(hw))
    valid = np.asarray(cost.valid)
    for name in COST_FIELDS:
        arr = getattr(cost, name)
        assert np.all(np.isinf(arr[~valid])), name
        assert np.all(np.isfinite(arr[valid])), name
    # Winograd on the 1×1 layer and on the stride-2 layer is never valid
    wino = np.array([c.algorithm == Algorithm.WINOGRAD for c in choices.choices])
    assert not valid[1][wino].any() and not valid[2][wino].any()
    # im2col runs every layer at every point that has room for its tiles; from host patches
    # only where the layer reads the network's input (none of these: no input layer)
    im2col = np.array([c.variant == "im2col" for c in choices.choices])
    patches = np.array([c.variant == "patches" for c in choices.choices])
    big = (hw.act_buffer_kib == 64) & (hw.weight_buffer_kib == 64)
    assert valid[:, im2col][:, :, big].all()
    assert not valid[:, patches].any()


def test_evaluate_equals_evaluate_one(case):
    layers, choices, hw, cost = case
    rng = np.random.default_rng(1)
    for _ in range(25):
        li, ci, pi = (rng.integers(n) for n in cost.shape)
        rep = evaluate_one(LAYERS[li], choices[ci], hw.params(pi), clock_mhz=200,
                           dram_gbps=12.8)
        assert rep.valid == bool(cost.valid[li, ci, pi])
        for name in COST_FIELDS:
            assert getattr(rep, name) == getattr(cost, name)[li, ci, pi], name


def test_chunking_does_not_change_results(case):
    layers, choices, hw, cost = case
    small = evaluate(layers, choices, hw, chunk_points=7)
    for name in COST_FIELDS + ("valid",):
        assert np.array_equal(getattr(small, name), getattr(cost, name)), name


def test_double_buffered_combination(case):
    _, _, _, cost = case
    v = np.asarray(cost.valid)
    cycles, memory = cost.cycles[v], cost.memory_cycles[v]
    on_chip = np.maximum(cost.compute_cycles, cost.transform_cycles)[v]
    # never faster than either engine alone, never slower than running them back to back
    assert np.all(cycles >= np.maximum(on_chip, memory))
    assert np.all(cycles <= on_chip + memory)
    assert np.all(cost.fill_drain_cycles[v] <= cost.compute_cycles[v])


def test_memory_bound_and_compute_bound_by_hand():
    layer = conv(c_in=16, h=14, w=14, c_out=24, k=3, p=1)
    choice = Choice(Algorithm.IM2COL, "im2col", Dataflow.OS, "weights")
    # everything fits on chip: one tile, so nothing overlaps -- load the whole 14×14×16 map
    # and 24 filters of 3·3·16, compute, store the 14×14×24 outputs
    hw = OverlayParams(rows=8, cols=8, bus_bits=1024)
    for gbps, per_cycle in ((0.001, 0.005), (1000, 128)):    # at 200 MHz; bus 128 B/cycle
        rep = evaluate_one(layer, choice, hw, clock_mhz=200, dram_gbps=gbps)
        assert rep.tiles == rep.blocks == 1
        moved = 14 * 14 * 16 + 24 * 16 * 9 + 14 * 14 * 24
        assert rep.dram_bytes == moved
        assert rep.cycles == moved / per_cycle + max(rep.compute_cycles, rep.transform_cycles)
    # a 1 KiB activation buffer cuts the map into 2-row tiles; at 0.005 B/cycle transfers
    # dominate and hide all compute: the layer takes exactly its transfer time
    small = OverlayParams(rows=8, cols=8, bus_bits=1024, act_buffer_kib=1)
    rep = evaluate_one(layer, choice, small, clock_mhz=200, dram_gbps=0.001)
    assert rep.tiles > 1
    assert rep.cycles == rep.memory_cycles == rep.dram_bytes / 0.005


@pytest.mark.parametrize("gbps", [(0.5, 2.0), (2.0, 8.0), (8.0, 64.0)])
def test_more_bandwidth_is_never_slower(gbps):
    layers = LayerTable.from_layers(LAYERS)
    choices = enumerate_choices()
    lo, hi = (evaluate(layers, choices, HardwareTable.from_grid(
        clock_mhz=200, dram_gbps=g, bus_bits=[1024], act_buffer_kib=[2, 64])) for g in gbps)
    v = np.asarray(lo.valid)
    assert np.all(hi.cycles[v] <= lo.cycles[v])


def test_energy_table_is_horowitz_2014():
    # the cited 45 nm figures, reproduced by the scaling rules at their own sizes
    assert energy.mult_pj(8, 8) == pytest.approx(0.2)
    assert energy.add_pj(32) == pytest.approx(0.1)
    assert 8 * energy.sram_pj_per_byte(8.0) == pytest.approx(10.0)
    assert 8 * energy.sram_pj_per_byte(32.0) == pytest.approx(20.0)
    assert 8 * energy.DRAM_PJ_PER_BYTE == pytest.approx((1300 + 2600) / 2)


def test_static_energy_is_power_times_latency():
    layer = conv(c_in=16, h=14, w=14, c_out=24, k=3, p=1)
    choice = Choice(Algorithm.IM2COL, "im2col", Dataflow.WS, "activations")
    hw = OverlayParams(rows=8, cols=8)
    cold = evaluate_one(layer, choice, hw, clock_mhz=250, static_power_w=0.0)
    hot = evaluate_one(layer, choice, hw, clock_mhz=250, static_power_w=2.0)
    # 2 W for cycles × 4 ns = cycles × 8 nJ = cycles × 8000 pJ
    assert hot.energy_pj - cold.energy_pj == pytest.approx(hot.cycles * 8000.0)
    assert cold.energy_pj > 0                        # dynamic energy is there too


def test_aux_layers_by_hand():
    x = Layer("x", "input", (), (4, 8, 8), (4, 8, 8))
    pool = Layer("pool", "maxpool", ("x",), (4, 8, 8), (4, 4, 4), kernel=(2, 2),
                 stride=(2, 2))
    aux = AuxTable.from_network(Network("n", (4, 8, 8), [x, pool]))
    # DRAM: reads 256 B, writes 64 B, at 8 B/cycle = 40 cycles
    slow = HardwareTable.from_grid(clock_mhz=100, dram_gbps=0.8, rows=[4], cols=[8],
                                   bus_bits=[64])
    cost = evaluate_aux(aux, slow)
    # the pool engine: gcd(4, 8) = 4 lanes, so each of the 16 output pixels is one group of
    # 4 channels, 4 taps each: 64 cycles, more than the DRAM's 40
    assert cost.dram_bytes[0, 0] == 320 and cost.cycles[0, 0] == 64
    # 2 lanes (gcd(2, 8)): two groups a pixel, 128 taps
    assert evaluate_aux(aux, HardwareTable.from_grid(
        clock_mhz=100, dram_gbps=0.8, rows=[2], cols=[8], bus_bits=[64])).cycles[0, 0] == 128
    # DRAM at 0.2 B/cycle: 1,600 cycles, more than the taps
    assert evaluate_aux(aux, HardwareTable.from_grid(
        clock_mhz=100, dram_gbps=0.02, rows=[4], cols=[8], bus_bits=[64])).cycles[0, 0] == 1600


@pytest.mark.skipif(not torch_available(), reason="torch is not installed")
def test_torch_backend_equals_numpy_and_has_gradients(case):
    import torch

    layers, choices, hw, cost = case
    xp = get_namespace("torch", "cpu")
    tcost = evaluate(layers, choices, hw, xp)
    for name in COST_FIELDS + ("valid",):
        assert np.array_equal(to_numpy(getattr(tcost, name)), np.asarray(getattr(cost, name))), name
    gbps = torch.tensor(12.8, dtype=torch.float64, requires_grad=True)
    hw_g = HardwareTable(**{k: getattr(hw, k) for k in PARAM_FIELDS},
                         clock_mhz=200.0, dram_gbps=gbps)
    g = evaluate(layers, choices, hw_g, xp)
    total = torch.where(g.valid, g.cycles, torch.zeros_like(g.cycles)).sum()
    total.backward()
    # more bandwidth, fewer cycles: the gradient exists and is not positive
    assert gbps.grad is not None and float(gbps.grad) <= 0
