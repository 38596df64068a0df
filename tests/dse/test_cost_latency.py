"""The explorer's on-chip cycles: GEMM decompositions derived by hand, and invariants.

The cycles of a layer belong to its lowering (dse/lowering, checked against Verilator by the
datapath's cocotb tests and ``omniconv verify``); what is checked here is how each algorithm
turns a layer into GEMMs -- the (M, K, N, count) worked out below from what the algorithm
computes -- and that the explorer's vectorised evaluation gives every layer exactly the
cycles the compiler's plan of that layer has.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dse.cost import gemm
from dse.cost.choices import Choice, ChoiceTable, enumerate_choices
from dse.cost.hardware import HardwareTable
from dse.compiler import plan_conv
from dse.cost.latency import datapath_cycles, gemm_shapes
from dse.cost.model import evaluate_one
from dse.cost.workload import LayerTable
from rtl.params import Algorithm, Dataflow, OverlayParams

from cost_helpers import conv, fc

WIDE = OverlayParams(rows=4, cols=4, a_width=17, b_width=18, acc_width=48, winograd_m=2,
                     fft_size=8)


def _one(layer, variant, flow="os", hw=None):
    """evaluate_one on a 4×4 overlay that has the unit ``variant`` needs."""
    if hw is None:
        m = {"F2x2_3x3": 2, "F4x4_3x3": 4}.get(variant, 2)
        n = {"fft16": 16}.get(variant, 8)
        hw = OverlayParams(**{**WIDE.__dict__, "winograd_m": m, "fft_size": n})
    algo = {"im2col": Algorithm.IM2COL, "kn2row": Algorithm.KN2ROW, "F2x2_3x3":
            Algorithm.WINOGRAD, "F4x4_3x3": Algorithm.WINOGRAD, "fft8": Algorithm.FFT,
            "fft16": Algorithm.FFT}[variant]
    return evaluate_one(layer, Choice(algo, variant, Dataflow(flow), "weights"), hw)


# Each case: a layer, a variant, (M, K, N, count) derived from the algorithm's meaning, and
# the K the 4-row array's engine runs (im2col, kn2row and Winograd read words of 4 channels,
# so a pixel's channels count up to a multiple of 4; zeros fill the rest).
HAND_CASES = [
    # im2col: 8×8 input, 3×3, pad 1 -> 8×8 = 64 output pixels; a patch is 3·3·5 = 45 values;
    # 7 filters
    (conv(c_in=5, h=8, w=8, c_out=7, k=3, p=1), "im2col", (64, 45, 7, 1), 9 * 8),
    # grouped (g=2): two GEMMs of 64 pixels × (3·3·4/2 = 18) × (6/2 = 3 filters)
    (conv(c_in=4, h=8, w=8, c_out=6, k=3, p=1, g=2), "im2col", (64, 18, 3, 2), 9 * 4),
    # fc on 16×2×2: one output "pixel", K = 64 features, N = 10
    (fc(c=16, h=2, w=2, out=10), "im2col", (1, 64, 10, 1), 64),
    # kn2row: 9 1×1 GEMMs over all 8·8 input pixels (the window's own padding of 1 is not
    # in the buffer), K = Cin = 5, N = 7
    (conv(c_in=5, h=8, w=8, c_out=7, k=3, p=1), "kn2row", (64, 5, 7, 9), 8),
    # kn2row with stride 2: still every one of the 10·10 input pixels (strided ones dropped)
    (conv(c_in=3, h=10, w=10, c_out=4, k=3, s=2, p=1), "kn2row", (100, 3, 4, 9), 4),
    # Winograd F(2,3) on 7×7 outputs: ceil(7/2)² = 16 tiles, (2+2)² = 16 GEMMs
    (conv(c_in=5, h=7, w=7, c_out=7, k=3, p=1), "F2x2_3x3", (16, 5, 7, 16), 8),
    # F(4,3) on 8×8 outputs: 4 tiles, 6² = 36 GEMMs
    (conv(c_in=5, h=8, w=8, c_out=7, k=3, p=1), "F4x4_3x3", (4, 5, 7, 36), 8),
    # F(2,3) on a 5×5 kernel: 2×2 = 4 zero-padded 3×3 pieces, summed by the array along K
    # (K = 4 pieces · 2 channels) -> 16 GEMMs over 4 tiles
    (conv(c_in=2, h=4, w=4, c_out=3, k=5, p=2), "F2x2_3x3", (4, 8, 3, 16), 16),
    # FFT 8 with a 3×3 kernel: input tiles of 6×6 pixels over the 14×14 padded input ->
    # 3·3 = 9 tiles; 8·(8/2+1) = 40 Hermitian bins, 3 real GEMMs each (Gauss)
    (conv(c_in=5, h=12, w=12, c_out=7, k=3, p=1), "fft8", (9, 5, 7, 120), 5),
    # FFT 16 with a 7×7 kernel: input tiles of 10×10 pixels over 9×15 -> 1·2 tiles
    (conv(c_in=2, h=9, w=15, c_out=3, k=7, p=0), "fft16", (2, 2, 3, 3 * 16 * 9), 2),
]


@pytest.mark.parametrize("layer, variant, expected, k_run", HAND_CASES)
@pytest.mark.parametrize("flow", ["ws", "os", "is"])
def test_gemm_decomposition_by_hand(layer, variant, expected, k_run, flow):
    report = _one(layer, variant, flow)
    if flow == "is" and variant != "im2col":
        # only im2col's back takes the pixel vectors that is drains
        assert not report.valid
        return
    assert report.valid
    assert report.gemm == expected
    m, k, n, count = expected
    busy = report.compute_cycles - report.transform_cycles
    code = Dataflow(flow).code

    def busy_range(m, count):
        # GEMMs back to back overlap their fill and drain: the array is busy for at least
        # the first GEMM and each further one's issue cycles, at most all of them whole
        one = int(gemm.gemm_cycles(m, k_run, n, 4, 4, code))
        issue = int(gemm.gemm_issue_cycles(m, k_run, n, 4, 4, code))
        return one + (count - 1) * issue, count * one

    if variant == "im2col" and flow != "is":
        # ws and os run the output rows in equal bands, one GEMM each (the last padded):
        # the array is busy for some band height's GEMMs
        _, ho, wo = layer.out_shape
        ranges = {b: busy_range(b * wo, -(-ho // b) * count) for b in range(1, ho + 1)}
        fits = [b for b, (low, high) in ranges.items() if low <= busy <= high]
        assert fits, "the array's cycles are no band height's GEMMs"
        m, count = fits[0] * wo, -(-ho // fits[0]) * count
    low, high = busy_range(m, count)
    # the array is busy for count GEMMs of that shape; the rest is loads, drains and
    # transforms
    assert low <= busy <= high
    if count == 1 or flow == "is" or variant.startswith("fft"):
        assert busy == high        # one GEMM, or GEMMs one after another (FFT)
    assert report.transform_cycles > 0


@pytest.mark.parametrize("layer, variant, expected, k_run",
                         [c for c in HAND_CASES if c[0].op == "conv"])
@pytest.mark.parametrize("flow", ["ws", "os"])
def test_explorer_cycles_are_the_compilers_plan(layer, variant, expected, k_run, flow):
    # the vectorised evaluation (every layer × choice × point, masked) gives each layer the
    # cycles of the plan the compiler makes for overlay.v's buffers (summed over its
    # invocations)
    from omniconv.overlay import overlay_limits
    from rtl.params import DatapathLimits

    report = _one(layer, variant, flow)
    hw = OverlayParams(**{**WIDE.__dict__,
                          "winograd_m": {"F4x4_3x3": 4}.get(variant, 2),
                          "fft_size": {"fft16": 16}.get(variant, 8)})
    algo = {"F2x2_3x3": "winograd", "F4x4_3x3": "winograd", "fft8": "fft",
            "fft16": "fft"}.get(variant, variant)
    plan = plan_conv(layer, algo, flow, hw, DatapathLimits(**overlay_limits(hw)))
    cycles = plan.cycles(hw.rows, hw.cols)
    assert report.compute_cycles == cycles["cycles"]
    assert report.compute_cycles - report.transform_cycles == cycles["gemm_cycles"]


def test_fill_drain_is_a_part_of_the_arrays_cycles():
    layers = LayerTable.from_layers([conv("a", c_in=16, h=14, w=14, c_out=32, k=3, p=1),
                                     conv("b", c_in=3, h=9, w=9, c_out=5, k=1, p=0)])
    choices = enumerate_choices(["im2col", "kn2row", "winograd", "fft"])
    hw = HardwareTable.from_grid(rows=[2, 4, 8], cols=[3, 8], a_width=[17], b_width=[17],
                                 acc_width=[48])
    total, fill, transform, _ = datapath_cycles(layers, choices, hw)
    busy = total - transform
    shapes = gemm_shapes(layers, choices)
    pes = (hw.rows * hw.cols).reshape(1, 1, -1)
    assert np.all(fill >= 0) and np.all(fill <= busy) and np.all(transform > 0)
    # the rest streams at most rows·cols MACs a cycle
    assert np.all(busy - fill >= shapes.macs / pes - 1e-9)


@settings(max_examples=40, deadline=None)
@given(c_in=st.integers(2, 8), c_out=st.integers(2, 8), size=st.integers(4, 10),
       m=st.sampled_from([2, 4]))
def test_winograd_does_fewer_multiplies_than_im2col_on_3x3(c_in, c_out, size, m):
    # the point of Winograd: (m+2)² products per m² outputs instead of 9·m², per channel pair,
    # so whenever m divides the output size the array's MACs drop by 9m²/(m+2)²
    size = size // m * m
    layer = conv(c_in=c_in, h=size, w=size, c_out=c_out, k=3, p=1)
    direct = math.prod(_one(layer, "im2col").gemm)
    wino = math.prod(_one(layer, f"F{m}x{m}_3x3").gemm)
    assert wino * 9 * m * m == direct * (m + 2) ** 2


@pytest.mark.parametrize("flow", ["ws", "os", "is"])
def test_bigger_arrays_are_not_slower_on_big_layers(flow):
    # layers whose GEMM dimensions are multiples of 32 (no ragged folds) and whose streamed
    # dimension is long (an fc layer in ws streams M = 1 row and only pays more fill when
    # the array grows, so it is not among them)
    layers = LayerTable.from_layers([conv("a", c_in=64, h=32, w=32, c_out=64, k=3, p=1),
                                     conv("b", c_in=128, h=16, w=16, c_out=256, k=1, p=0),
                                     conv("c", c_in=256, h=8, w=8, c_out=128, k=3, p=1)])
    choices = enumerate_choices(["im2col"], [flow], ["weights"])
    hw = HardwareTable.from_grid(rows=[8, 16, 32], cols=[8, 16, 32])
    total, _, _, _ = datapath_cycles(layers, choices, hw, fill_drain=False)
    by_shape = total[:, 0, :].reshape(len(layers), 3, 3)
    assert np.all(np.diff(by_shape, axis=1) <= 0)      # more rows
    assert np.all(np.diff(by_shape, axis=2) <= 0)      # more columns


def test_choice_table_order_does_not_matter():
    layer = conv(c_in=5, h=12, w=12, c_out=7, k=3, p=1)
    choices = enumerate_choices()
    rev = ChoiceTable(list(reversed(choices.choices)))
    layers = LayerTable.from_layers([layer])
    hw = HardwareTable.from_params([WIDE])
    a, _, _, _ = datapath_cycles(layers, choices, hw)
    b, _, _, _ = datapath_cycles(layers, rev, hw)
    assert np.array_equal(a[:, ::-1], b)


@settings(max_examples=300, deadline=None)
@given(rows=st.sampled_from([1, 2, 3, 4, 8, 16, 32, 64, 128]),
       cols=st.sampled_from([1, 2, 3, 4, 8, 16, 32, 64, 128]),
       c_in=st.integers(1, 600), c_out=st.integers(1, 600), size=st.integers(1, 64),
       k=st.sampled_from([3, 5, 7]), s=st.sampled_from([1, 2, 4]),
       algo=st.sampled_from(["im2col", "kn2row", "winograd2", "winograd4"]),
       flow=st.sampled_from([Dataflow.WS, Dataflow.OS]))
def test_overlapped_gemms_are_never_slower(rows, cols, c_in, c_out, size, k, s, algo, flow):
    """GEMMs back to back (im2col's bands too) start ``dse.lowering.datapath.gemm_period``
    apart: never later than one GEMM's busy cycles and the start cycle after it (the
    engine without overlapped fill and drain), as no GEMM of the lowerings loads or drains
    for longer than it computes; and never sooner than the engine's sequencer allows."""
    from dse.lowering import Geometry, datapath, lowering

    size = max(size, k)
    layer = conv(c_in=c_in, h=size, w=size + 3, c_out=c_out, k=k, s=s, p=k // 2)
    name, unit = ("winograd", int(algo[-1])) if algo.startswith("winograd") else (algo, 0)
    mod = lowering(name)
    g = Geometry.of_layer(layer)
    if not mod.legal(g, unit):
        return
    low = mod.lower(g, unit, rows, cols, flow.code)
    busy = datapath.gemm_busy(low, rows, cols, flow.code)
    assert low.gemms > 1 or name == "im2col"       # im2col: one band or several
    period = datapath.gemm_period(low, busy, rows, cols, flow.code)
    assert gemm.gemm_issue_cycles(low.m, low.k, low.n, rows, cols, flow.code) <= period
    assert period <= busy + 1
