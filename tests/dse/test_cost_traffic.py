"""Buffer tiling and DRAM traffic against an explicit loop nest over tiles (brute force).

The model computes the bytes in closed form; here the same loop nest the docstring of
dse.cost.traffic describes is run tile by tile: every spatial tile fetches its receptive field
clipped to the input map, every weight block its output channels' weights, in the loop order
of the tiling, skipping a reload only where the one tile or block stays resident.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dse.cost.choices import Choice
from dse.cost.model import evaluate_one
from dse.cost.traffic import fetched_extent
from dse.lowering import Geometry, lowering
from rtl.params import Algorithm, Dataflow, OverlayParams

from cost_helpers import conv

SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _loop_nest(layer, tiling, hb, wb, nb, w_per_channel, ab):
    """DRAM bytes (act, weights, out) of the loop nest, counted tile by tile."""
    c_in, h_in, w_in = layer.in_shape
    c_out, ho, wo = layer.out_shape
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel, layer.stride, layer.dilation
    pt, pl = layer.padding[0], layer.padding[1]
    tiles = []
    for y0 in range(0, ho, hb):
        y1 = min(y0 + hb, ho)
        r0, r1 = max(0, y0 * sh - pt), min(h_in, (y1 - 1) * sh - pt + dh * (kh - 1) + 1)
        for x0 in range(0, wo, wb):
            x1 = min(x0 + wb, wo)
            c0, c1 = max(0, x0 * sw - pl), min(w_in, (x1 - 1) * sw - pl + dw * (kw - 1) + 1)
            tiles.append((r1 - r0) * (c1 - c0) * c_in * ab)
    blocks = [min(nb, c_out - j) * w_per_channel for j in range(0, c_out, nb)]
    act = wgt = 0
    resident = None
    if tiling == "weights":
        for block in blocks:
            wgt += block
            for i, tile in enumerate(tiles):
                if resident != i:
                    act += tile
                    resident = i if len(tiles) == 1 else None
    else:
        for tile in tiles:
            act += tile
            for j, block in enumerate(blocks):
                if resident != j:
                    wgt += block
                    resident = j if len(blocks) == 1 else None
    return act, wgt, c_out * ho * wo * ab


@st.composite
def layers(draw):
    k = draw(st.integers(1, 5))
    d = draw(st.integers(1, 2))
    k_eff = d * (k - 1) + 1
    h = draw(st.integers(1, 20))
    w = draw(st.integers(1, 20))
    p = draw(st.integers(0, k_eff - 1))
    assume(h + 2 * p >= k_eff and w + 2 * p >= k_eff)
    g = draw(st.sampled_from([1, 1, 2]))
    c_in = g * draw(st.integers(1, 10))
    c_out = g * draw(st.integers(1, 20))
    return conv("c", c_in=c_in, h=h, w=w, c_out=c_out, k=k, s=draw(st.integers(1, 3)), p=p,
                g=g, d=d)


@SETTINGS
@given(layer=layers(), tiling=st.sampled_from(["weights", "activations"]),
       algo=st.sampled_from(["im2col", "kn2row"]), precision=st.sampled_from([8, 16]),
       kib=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)))
def test_dram_bytes_equal_the_loop_nest(layer, tiling, algo, precision, kib):
    assume(bool(lowering(algo).legal(Geometry.of_layer(layer))))
    hw = OverlayParams(rows=4, cols=4, a_width=16, b_width=16, acc_width=40,
                       act_buffer_kib=kib[0], weight_buffer_kib=kib[1], out_buffer_kib=kib[2])
    choice = Choice(Algorithm(algo), algo, Dataflow.OS, tiling)
    rep = evaluate_one(layer, choice, hw, precision=precision)
    ab = precision // 8
    c_in, c_out, g = layer.in_shape[0], layer.out_shape[0], layer.groups
    w_ch = c_in // g * layer.kernel[0] * layer.kernel[1] * ab      # spatial weights
    acc_bytes = 5                                                   # 40-bit accumulators
    hb, wb, nb = rep.tile
    if not rep.valid:
        # infeasible only if overlay.v's buffers cannot hold one invocation of the layer
        # (dse.lowering.split), or one output row-tile pixel × one channel does not fit
        from dse.cost.resources import overlay_limits
        from dse.lowering.split import split

        if not bool(split(algo, Geometry.of_layer(layer), 0, 4, 4, Dataflow.OS.code,
                          overlay_limits(hw, precision)).fits):
            return
        k_eff = layer.dilation[0] * (layer.kernel[0] - 1) + 1
        one_pixel = min(layer.in_shape[1], k_eff) * min(layer.in_shape[2], k_eff) * c_in * ab
        assert (one_pixel > kib[0] * 1024 or w_ch > kib[1] * 1024
                or acc_bytes > kib[2] * 1024)
        return
    act, wgt, out = _loop_nest(layer, tiling, hb, wb, nb, w_ch, ab)
    assert (rep.act_bytes, rep.weight_bytes, rep.out_bytes) == (act, wgt, out)
    assert rep.dram_bytes == act + wgt + out
    # the tiles fit their buffers ...
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel, layer.stride, layer.dilation
    rows = min(layer.in_shape[1], (hb - 1) * sh + dh * (kh - 1) + 1)
    cols = min(layer.in_shape[2], (wb - 1) * sw + dw * (kw - 1) + 1)
    assert rows * cols * c_in * ab <= kib[0] * 1024
    assert nb * w_ch <= kib[1] * 1024
    assert hb * wb * nb * acc_bytes <= kib[2] * 1024
    assert rep.buffer_bytes == rows * cols * c_in * ab + nb * w_ch + hb * wb * nb * acc_bytes
    # ... and the weight block is as large as they allow
    if nb < c_out:
        assert (nb + 1) * w_ch > kib[1] * 1024 or hb * wb * (nb + 1) * acc_bytes > kib[2] * 1024
    # full-width row blocks grow until the next row would not fit
    if wb == layer.out_shape[2] and hb < layer.out_shape[1]:
        rows_next = min(layer.in_shape[1], hb * sh + dh * (kh - 1) + 1)
        assert (rows_next * cols * c_in * ab > kib[0] * 1024
                or (hb + 1) * wb * acc_bytes > kib[2] * 1024)


def test_weights_resident_refetches_activations_per_block_by_hand():
    # 8×8×4 input, 3×3 pad 1, 16 filters, int8: weights 36 B per filter (576 B), input 256 B.
    # 1 KiB act buffer holds the whole map; weight buffer 1 KiB holds 28 filters: one block.
    layer = conv(c_in=4, h=8, w=8, c_out=16, k=3, p=1)
    choice = Choice(Algorithm.IM2COL, "im2col", Dataflow.WS, "weights")
    hw = OverlayParams(act_buffer_kib=1, weight_buffer_kib=1, out_buffer_kib=1)
    rep = evaluate_one(layer, choice, hw)
    # outputs: 16·64 accumulators of 4 B = 4 KiB > 1 KiB -> at most 4 filters of a whole map
    # (64·4·4 = 1 KiB), so 4 weight blocks; the single spatial tile stays resident
    assert rep.tile == (8, 8, 4) and rep.blocks == 4 and rep.tiles == 1
    assert (rep.act_bytes, rep.weight_bytes, rep.out_bytes) == (256, 576, 1024)


def test_transformed_weights_are_wider_by_hand():
    layer = conv(c_in=4, h=8, w=8, c_out=2, k=3, p=1)
    big = dict(act_buffer_kib=64, weight_buffer_kib=64, out_buffer_kib=64)
    # F(2x2,3x3) int8: 16 transformed values per (filter, channel), 12-bit -> 2 bytes each
    hw = OverlayParams(a_width=10, b_width=12, acc_width=32, winograd_m=2, **big)
    rep = evaluate_one(layer, Choice(Algorithm.WINOGRAD, "F2x2_3x3", Dataflow.OS, "weights"),
                       hw)
    assert rep.weight_bytes == 2 * 4 * 16 * 2
    # fft8 int8: 8·5 = 40 complex bins per (filter, channel), two 16-bit words each
    hw = OverlayParams(a_width=17, b_width=17, acc_width=48, fft_size=8, **big)
    rep = evaluate_one(layer, Choice(Algorithm.FFT, "fft8", Dataflow.OS, "weights"), hw)
    assert rep.weight_bytes == 2 * 4 * 40 * 2 * 2
    # activations stay the raw map either way
    assert rep.act_bytes == 4 * 8 * 8


@given(n_out=st.integers(1, 40), blk=st.integers(1, 12), stride=st.integers(1, 3),
       k_eff=st.integers(1, 7), pad=st.integers(0, 6))
@settings(max_examples=200, deadline=None)
def test_fetched_extent_closed_form(n_out, blk, stride, k_eff, pad):
    assume(pad < k_eff)
    n_in = (n_out - 1) * stride + k_eff - 2 * pad
    assume(n_in >= 1)
    brute = sum(min(n_in, (min(y0 + blk, n_out) - 1) * stride - pad + k_eff)
                - max(0, y0 * stride - pad) for y0 in range(0, n_out, blk))
    got = fetched_extent(float(n_out), float(blk), float(stride), float(k_eff), float(pad),
                         float(n_in))
    assert got == brute


def _full_buffer_dram(layer, choice, hw):
    """DRAM bytes of the tiling that fills the buffers (tile_traffic on the point alone)."""
    from dse.cost.choices import ChoiceTable
    from dse.cost.hardware import HardwareTable
    from dse.cost.traffic import tile_traffic
    from dse.cost.workload import LayerTable

    t = tile_traffic(LayerTable.from_layers([layer]), ChoiceTable([choice]),
                     HardwareTable.from_params([hw]))
    return float(t.dram_bytes.reshape(-1)[0])


@pytest.mark.parametrize("tiling", ["weights", "activations"])
def test_more_weight_buffer_never_costs_more_dram(tiling):
    """The tiling that fills the buffers moves no more DRAM bytes with a larger weight buffer."""
    layer = conv(c_in=32, h=28, w=28, c_out=96, k=3, p=1)
    choice = Choice(Algorithm.IM2COL, "im2col", Dataflow.OS, tiling)
    got = [_full_buffer_dram(layer, choice, OverlayParams(act_buffer_kib=8,
                                                          weight_buffer_kib=kib,
                                                          out_buffer_kib=256))
           for kib in (1, 2, 4, 8, 16, 32, 64)]
    assert all(b <= a for a, b in zip(got, got[1:]))
    assert got[-1] < got[0]


@pytest.mark.parametrize("algorithm, variant", [(Algorithm.IM2COL, "im2col"),
                                                (Algorithm.WINOGRAD, "F2x2_3x3")])
@pytest.mark.parametrize("tiling", ["weights", "activations"])
def test_a_larger_buffer_never_makes_a_layer_slower(algorithm, variant, tiling):
    """The model may fill a buffer partly (dse.cost.model.TILE_KIB): over the search grid's
    buffer sizes, more activation or weight buffer never costs cycles.  (With TILE_KIB
    empty, only the tiling that fills the buffers, all four cases fail: its first load,
    which nothing hides, grows with the buffer.)"""
    from dse.search import SearchSpace

    sizes = SearchSpace().buffer_kib
    layer = conv(c_in=64, h=56, w=56, c_out=128, k=3, p=1)
    choice = Choice(algorithm, variant, Dataflow.WS, tiling)

    def point(act, weight):
        return OverlayParams(rows=16, cols=16, winograd_m=2, a_width=10, b_width=12,
                             act_buffer_kib=act, weight_buffer_kib=weight, bus_bits=128)

    cycles = {(a, w): evaluate_one(layer, choice, point(a, w), dram_gbps=4.0).cycles
              for a in sizes for w in sizes}
    for (a, w), c in cycles.items():
        for (a2, w2), c2 in cycles.items():
            if a2 >= a and w2 >= w:
                assert c2 <= c, ((a, w), (a2, w2))
    # a layer too large for the smallest activation buffer (one output row's im2col A
    # does not fit the engine) runs on every larger one
    valid = {(a, w): evaluate_one(layer, choice, point(a, w), dram_gbps=4.0).valid
             for a in sizes for w in sizes}
    assert all(valid[(a2, w2)] for (a, w), ok in valid.items() if ok
               for (a2, w2) in valid if a2 >= a and w2 >= w)
    assert valid[(max(sizes), max(sizes))]
