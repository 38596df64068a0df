"""The three axes of the cost model: LayerTable, ChoiceTable (+ legality), HardwareTable."""

from __future__ import annotations

import numpy as np
import pytest

from dse.cost.choices import (Choice, ChoiceTable, enumerate_choices, hardware_mask, legal_mask,
                              required_widths)
from dse.cost.hardware import HardwareTable
from dse.cost.workload import AuxTable, LayerTable
from dse.network import Layer, Network
from rtl.params import Algorithm, Dataflow, OverlayParams

from cost_helpers import conv, fc


def test_layer_table_fields():
    layers = LayerTable.from_layers([conv("a", 6, 10, 12, 4, k=3, s=2, p=1, g=2),
                                     fc("f", 16, 2, 2, 10)])
    assert layers.names == ("a", "f")
    assert list(layers.h_out) == [5, 1] and list(layers.w_out) == [6, 1]
    # fc: a 1×1 conv on a 1×1 map over the 16·2·2 flattened features
    assert layers.c_in[1] == 64 and layers.kh[1] == 1 and layers.h_in[1] == 1
    # MACs: 4·5·6 outputs × (6/2)·3·3 for the grouped conv; 64·10 for fc
    assert list(layers.macs) == [4 * 5 * 6 * 3 * 9, 640]
    assert layers.column("c_in").shape == (2, 1, 1)


def test_layer_table_rejects_bad_groups():
    good = LayerTable.from_layers([conv("a", 6, 8, 8, 4, g=2)])
    with pytest.raises(ValueError, match="multiples of groups"):
        LayerTable(**{**good.__dict__, "groups": np.array([4])})


def test_aux_table_marks_fusable_pools():
    x = Layer("x", "input", (), (3, 8, 8), (3, 8, 8))
    c1 = conv("c1", 3, 8, 8, 4)
    c1 = Layer(**{**c1.__dict__, "inputs": ("x",)})
    pool = Layer("pool", "maxpool", ("c1",), (4, 8, 8), (4, 4, 4), kernel=(2, 2), stride=(2, 2))
    c2 = Layer(**{**conv("c2", 4, 4, 4, 4).__dict__, "inputs": ("pool",)})
    add = Layer("add", "add", ("c2", "pool"), (4, 4, 4), (4, 4, 4))
    table = AuxTable.from_network(Network("n", (3, 8, 8), [x, c1, pool, c2, add]))
    assert table.names == ("pool", "add")
    # pool sits behind c1 which feeds nothing else; the add has two inputs
    assert list(table.fusable) == [True, False]
    assert list(table.in_elems) == [256, 128] and list(table.window) == [4, 2]


def test_enumerate_choices_is_the_full_product():
    table = enumerate_choices()
    # 7 variants (im2col, host patches, kn2row, 2 Winograd, 2 FFT) × 3 dataflows × 2 tilings
    assert len(table) == 42
    assert len(set(table.choices)) == 42
    few = enumerate_choices(["im2col", "winograd"], ["ws"], ["weights"])
    assert [c.variant for c in few.choices] == ["im2col", "patches", "F2x2_3x3", "F4x4_3x3"]
    with pytest.raises(ValueError, match="algorithms"):
        enumerate_choices(["direct"])
    # sparse_fft's two spectral sizes, its reuse modes on the tiling axis (dse.lowering)
    assert [c.variant for c in enumerate_choices(["sparse_fft"], ["ws"], ["weights"]).choices] \
        == ["sparse8", "sparse16"]


def test_choice_validation():
    with pytest.raises(ValueError, match="variant"):
        Choice(Algorithm.IM2COL, "F2x2_3x3", Dataflow.WS, "weights")
    with pytest.raises(TypeError, match="dataflow"):
        Choice(Algorithm.IM2COL, "im2col", "ws", "weights")


LEGALITY_CASES = [
    # layer, legal variants (any dataflow/tiling)
    (conv(k=3), {"im2col", "kn2row", "F2x2_3x3", "F4x4_3x3", "fft8", "fft16"}),
    (conv(k=1, p=0), {"im2col"}),
    (conv(k=3, s=2), {"im2col", "kn2row"}),
    (conv(k=3, d=2, p=2), {"im2col", "kn2row"}),
    (conv(c_in=8, c_out=8, k=3, g=8), {"im2col", "kn2row"}),           # depthwise
    (conv(k=5, p=2), {"im2col", "kn2row", "F2x2_3x3", "F4x4_3x3", "fft8", "fft16"}),
    (conv(h=16, w=16, k=9, p=4), {"im2col", "kn2row", "F2x2_3x3", "F4x4_3x3", "fft16"}),
    (conv(k=1, kw=7, p=0), {"im2col", "kn2row"}),      # 1×7: not square (no Winograd, FFT)
    (fc(), {"im2col"}),
]


@pytest.mark.parametrize("layer, variants", LEGALITY_CASES)
def test_legal_mask(layer, variants):
    choices = enumerate_choices()
    mask = legal_mask(LayerTable.from_layers([layer]), choices)
    got = {c.variant for c, ok in zip(choices.choices, mask[0]) if ok}
    assert got == variants


def test_hardware_mask_needs_units_and_widths():
    choices = enumerate_choices(dataflows=["os"], tilings=["weights"])
    a2, b2 = required_widths("F2x2_3x3", 8)
    points = [OverlayParams(),                                           # 8-bit, no units
              OverlayParams(a_width=a2, b_width=b2, winograd_m=2),
              OverlayParams(a_width=8, b_width=8, winograd_m=2, acc_width=32),   # too narrow
              OverlayParams(a_width=17, b_width=18, acc_width=48, winograd_m=4, fft_size=16)]
    mask = hardware_mask(choices, HardwareTable.from_params(points), precision=8)
    ok = {i: {c.variant for c, m in zip(choices.choices, mask[:, i]) if m} for i in range(4)}
    plain = {"im2col", "patches", "kn2row"}      # host patches need no unit
    assert ok[0] == plain
    assert ok[1] == plain | {"F2x2_3x3"}
    assert ok[2] == plain
    assert ok[3] == plain | {"F4x4_3x3", "fft16"}


def test_hardware_table_grid_and_params_round_trip():
    hw = HardwareTable.from_grid(rows=[8, 16], cols=[4, 8, 16], bus_bits=[64, 128])
    assert len(hw) == 12
    p = hw.params(5)
    assert isinstance(p, OverlayParams)
    back = HardwareTable.from_params([hw.params(i) for i in range(len(hw))])
    for name in ("rows", "cols", "bus_bits", "act_buffer_kib"):
        assert np.array_equal(getattr(back, name), getattr(hw, name))
    assert len(hw.take(hw.rows == 8)) == 6


@pytest.mark.parametrize("axes, message", [
    ({"rows": [0]}, "rows must be between 1 and 256"),
    ({"winograd_m": [3]}, "winograd_m must be 0, 2 or 4"),
    ({"bus_bits": [96]}, "bus_bits must be a power of two"),
    ({"a_width": [20], "b_width": [20], "acc_width": [32]}, "acc_width must be at least"),
])
def test_hardware_table_validates_like_overlay_params(axes, message):
    with pytest.raises(ValueError, match=message):
        HardwareTable.from_grid(**axes)


def test_dram_bytes_per_cycle_is_the_narrower_of_bus_and_board():
    # 19.2 GB/s at 200 MHz = 96 B/cycle; a 128-bit bus moves 16, a 1024-bit one 128
    hw = HardwareTable.from_grid(clock_mhz=200, dram_gbps=19.2, bus_bits=[128, 1024])
    assert list(hw.dram_bytes_per_cycle().reshape(-1)) == [16.0, 96.0]


def test_choice_table_columns():
    table = ChoiceTable([Choice(Algorithm.FFT, "fft16", Dataflow.IS, "activations")])
    assert table.fft_n[0] == 16 and table.dataflow[0] == 2 and table.tiling[0] == 1
    assert table.column("fft_n").shape == (1, 1, 1)
