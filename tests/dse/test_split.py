"""Layers cut into the invocations that fit the datapath's buffers (``dse.lowering.split``
and the compiler's banded plans), checked without the RTL: the bands are the layer (numpy
convolution of each band's rows equals the layer's output rows), every invocation fits the
limits it was planned for, and the explorer's formula over band types equals the compiler's
sum over its invocations.  ``tests/cocotb/test_conv_datapath.py`` runs banded layers in
Verilator."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from dse.compiler import plan_conv, required_limits
from dse.lowering import Geometry
from dse.lowering.split import band_rows, split, split_cycles
from dse.network import NetworkBuilder
from rtl.params import Dataflow, DatapathLimits, OverlayParams
from sim.models.conv import conv2d

PARAMS = OverlayParams(rows=4, cols=4, a_width=10, b_width=12, acc_width=32, winograd_m=2)
#: Small buffers: every layer below needs several bands and filter chunks.
SMALL = DatapathLimits(max_m=512, max_k=512, max_n=4, feature_words=300, weight_words=600,
                       tile_words=200, out_words=256, max_gemms=64, spectral_words=4096,
                       engine_a_words=64, engine_c_words=128)


def layer_of(c, h, w, n, k, stride=1, pad=0, dilation=1):
    b = NetworkBuilder("l", (c, h, w))
    b.conv("l", out_channels=n, kernel=k, stride=stride, padding=pad, dilation=dilation)
    return [x for x in b.build().layers if x.op == "conv"][0]


def padded_conv(x, w, layer):
    """The layer's exact output: numpy padding (any four sides), then ``conv2d``."""
    t, l, b, r = layer.padding
    xp = np.pad(x, ((0, 0), (t, b), (l, r)))
    return conv2d(xp, w, layer.stride[0], 0, layer.dilation[0])


CASES = [  # (layer, algorithm, dataflow)
    (layer_of(5, 17, 9, 10, 3, 1, 1), "im2col", "ws"),
    (layer_of(6, 31, 8, 9, 3, 2, 1), "im2col", "os"),
    (layer_of(3, 13, 7, 6, 5, 1, 2), "im2col", "is"),
    (layer_of(5, 19, 9, 7, 5, 2, 2), "kn2row", "ws"),
    (layer_of(4, 30, 8, 9, 3, 1, 1), "kn2row", "os"),
    (layer_of(5, 60, 9, 10, 3, 1, 1), "winograd", "ws"),
    (layer_of(3, 40, 7, 5, 5, 1, 2), "winograd", "os"),
    (layer_of(4, 41, 7, 6, 3, 1, 2, 2), "im2col", "ws"),
]


@pytest.mark.parametrize("layer, algo, flow", CASES,
                         ids=[f"{a}-{f}-{i}" for i, (_, a, f) in enumerate(CASES)])
def test_bands_fit_their_limits_and_make_up_the_layer(layer, algo, flow):
    plan = plan_conv(layer, algo, flow, PARAMS, SMALL)
    assert len(plan.bands) >= 2, "the case must need bands"
    oh = layer.out_shape[1]
    assert [b.rows for b in plan.bands] == [(y, min(oh, y + plan.bands[0].rows[1]))
                                            for y in range(0, oh, plan.bands[0].rows[1])]
    assert len({inv.filters for inv in plan.invocations}) >= 2, "and filter chunks"
    need = required_limits([plan])
    for key, value in need.items():
        assert value <= getattr(SMALL, key), f"{key}: {value} > {getattr(SMALL, key)}"
    # each band's rows, convolved on their own with the band's padding, are the layer's
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, layer.in_shape)
    w = rng.integers(-128, 128, (layer.out_shape[0], layer.in_shape[0], *layer.kernel))
    whole = padded_conv(x, w, layer)
    for band in plan.bands:
        (y0, y1), (i0, i1) = band.rows, band.in_rows
        sub = dataclasses.replace(layer, padding=band.plan.pads)
        np.testing.assert_array_equal(padded_conv(x[:, i0:i1], w, sub), whole[:, y0:y1])


@pytest.mark.parametrize("layer, algo, flow", CASES,
                         ids=[f"{a}-{f}-{i}" for i, (_, a, f) in enumerate(CASES)])
def test_explorer_formula_is_the_compilers_sum(layer, algo, flow):
    """The explorer's cycles (first, middle and last band types × two chunk widths) are the
    compiler's plan summed invocation by invocation; vectorised over points as per point."""
    plan = plan_conv(layer, algo, flow, PARAMS, SMALL)
    g = Geometry.of_layer(layer)
    code = Dataflow(flow).code
    lim = SMALL.as_dict()
    unit = PARAMS.winograd_m if algo == "winograd" else 0
    got = split_cycles(algo, g, unit, 4, 4, code, lim)
    assert int(got["cycles"]) == plan.cycles(4, 4)["cycles"]
    assert int(got["split"].bands) == max(1, len(plan.bands))
    # as arrays over three points: these limits, larger ones, and unbounded feature words
    big = {k: v * 4 for k, v in lim.items()}
    ga = Geometry(*(np.asarray([v] * 3, dtype=np.float64) if not isinstance(v, bool) else v
                    for v in dataclasses.astuple(g)))
    la = {k: np.asarray([lim[k], big[k], 1 << 30 if k == "feature_words" else lim[k]],
                        dtype=np.float64) for k in lim}
    arr = split_cycles(algo, ga, unit, 4, 4, code, la)
    for i, point in enumerate((lim, big, {**lim, "feature_words": 1 << 30})):
        one = split_cycles(algo, g, unit, 4, 4, code, point)
        assert float(arr["cycles"][i]) == float(one["cycles"])
        assert bool(arr["split"].fits[i]) == bool(one["split"].fits)


def test_a_layer_that_fits_is_one_band():
    layer, algo, flow = CASES[0]
    plan = plan_conv(layer, algo, flow, PARAMS, None)
    sized = plan_conv(layer, algo, flow, PARAMS, DatapathLimits(**required_limits([plan])))
    assert not sized.bands
    assert sized.cycles(4, 4) == plan.cycles(4, 4)


def test_band_rows_of_the_whole_layer_are_its_padding():
    g = Geometry.of_layer(layer_of(3, 10, 10, 4, 3, 1, 1))
    assert tuple(int(v) for v in band_rows(g, 0, 10)) == (0, 10, 1, 1)
    assert tuple(int(v) for v in band_rows(g, 3, 4)) == (2, 8, 0, 0)


def test_a_layer_too_large_for_one_row_is_refused():
    layer = layer_of(64, 8, 200, 8, 3, 1, 1)          # one output row needs 200·576 of A
    with pytest.raises(ValueError, match="does not fit the datapath's buffers"):
        plan_conv(layer, "im2col", "ws", PARAMS, SMALL)
    g = Geometry.of_layer(layer)
    assert not bool(split("im2col", g, 0, 4, 4, 0, SMALL.as_dict()).fits)


#: Layers whose one output row of one filter needs more K than :data:`SMALL` holds: they
#: run as channel chunks (a K split), each adding to the previous chunk's accumulations.
CHUNKED = [  # (layer, algorithm, dataflow)
    (layer_of(40, 9, 8, 6, 3, 1, 1), "im2col", "ws"),
    (layer_of(37, 7, 8, 5, 3, 2, 1), "im2col", "is"),
    (layer_of(70, 6, 6, 5, 3, 1, 1), "kn2row", "os"),
    (layer_of(50, 8, 10, 6, 3, 1, 1), "winograd", "ws"),
]


@pytest.mark.parametrize("layer, algo, flow", CHUNKED,
                         ids=[f"{a}-{f}-{i}" for i, (_, a, f) in enumerate(CHUNKED)])
def test_channel_chunks_add_up_to_the_layer(layer, algo, flow):
    """The chunks of each (band, filter chunk) run one after another, all but the first
    accumulating and only the last final; their convolutions over their own channels sum to
    the layer's; every invocation fits the limits; the explorer's formula is the compiler's
    sum."""
    plan = plan_conv(layer, algo, flow, PARAMS, SMALL)
    g = Geometry.of_layer(layer)
    code = Dataflow(flow).code
    unit = PARAMS.winograd_m if algo == "winograd" else 0
    # one invocation with every channel does not fit these limits
    sp = split(algo, g, unit, 4, 4, code, SMALL.as_dict())
    assert int(sp.c_chunks) >= 2
    channels = sorted({b.channels for b in plan.bands})
    assert len(channels) == int(sp.c_chunks)
    assert channels[0][0] == 0 and channels[-1][1] == layer.in_shape[0]
    assert all(a[1] == b[0] and a[1] % 4 == 0 for a, b in zip(channels, channels[1:]))
    need = required_limits([plan])
    for key, value in need.items():
        assert value <= getattr(SMALL, key), f"{key}: {value} > {getattr(SMALL, key)}"
    # runs of c_chunks invocations: same band rows and filters, accumulate 0 then 1s, the
    # last final
    k = len(channels)
    invs = plan.invocations
    for at in range(0, len(invs), k):
        run = invs[at:at + k]
        assert len({(plan.bands[i.band].rows, i.filters) for i in run}) == 1
        assert [i.registers["accumulate"] for i in run] == [0] + [1] * (k - 1)
        assert [i.final for i in run] == [False] * (k - 1) + [True]
    # the chunks' convolutions (their input channels and weights) sum to the layer
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, layer.in_shape)
    w = rng.integers(-128, 128, (layer.out_shape[0], layer.in_shape[0], *layer.kernel))
    total = np.zeros(layer.out_shape, dtype=np.int64)
    for band in plan.bands:
        (y0, y1), (i0, i1), (c0, c1) = band.rows, band.in_rows, band.channels
        sub = dataclasses.replace(layer, padding=band.plan.pads)
        total[:, y0:y1] += padded_conv(x[c0:c1, i0:i1], w[:, c0:c1], sub)
    np.testing.assert_array_equal(total, padded_conv(x, w, layer))
    got = split_cycles(algo, g, unit, 4, 4, code, SMALL.as_dict())
    assert int(got["cycles"]) == plan.cycles(4, 4)["cycles"]
    assert int(got["macs_needed"]) == sum(
        int(plan.bands[i.band].plan.lowered(4, 4, i.gemm[2]).macs_needed) for i in invs)


def test_fc6_of_vgg16_runs_as_channel_chunks_on_a_wide_array():
    """K = 25 088 does not fit a 32×64 array's engine A half (one row of A lives in one
    bank): the split takes the fewest channel chunks that fit, as even as whole words
    allow."""
    from dse.cost.resources import overlay_limits

    params = OverlayParams(rows=32, cols=64, act_buffer_kib=512, weight_buffer_kib=512,
                           out_buffer_kib=64)
    lim = overlay_limits(params)
    g = Geometry(25088, 4096, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0)
    sp = split("im2col", g, 0, 32, 64, Dataflow.WS.code, lim)
    words = 25088 // 32
    most = lim["engine_a_words"]                      # one line: ⌈K/rows⌉ words
    assert bool(sp.fits) and int(sp.c_chunks) == -(-words // most)
    assert int(sp.c_step) * (int(sp.c_chunks) - 1) + int(sp.c_last) == 25088
    assert int(sp.c_step) % 32 == 0 and int(sp.c_step) // 32 <= most


SPECTRAL = OverlayParams(rows=4, cols=4, a_width=17, b_width=18, acc_width=48, fft_size=8,
                         sparse_lanes=4, sparse_banks=8)
#: FFT cuts: (layer, limits overriding SMALL, what the cut must have)
FFT_CASES = [
    (layer_of(3, 20, 9, 4, 3, 1, 1), {}, "bands"),
    (layer_of(2, 17, 7, 6, 5, 1, 2), {"out_words": 128}, "bands and kept filter chunks"),
    (layer_of(40, 8, 7, 3, 3, 1, 1), {"max_k": 8}, "channel chunks"),
    (layer_of(24, 26, 10, 9, 3, 1, 1), {"max_k": 8, "out_words": 128}, "all three"),
]


@pytest.mark.parametrize("algo", ["fft", "sparse_fft"])
@pytest.mark.parametrize("layer, extra, what", FFT_CASES, ids=[c[2] for c in FFT_CASES])
def test_spectral_explorer_formula_is_the_compilers_sum(layer, extra, what, algo):
    """FFT and sparse FFT layers cut into row bands of tile rows, channel chunks and filter
    chunks (later ones keeping the input spectra): the explorer's closed form is the
    compiler's plan summed invocation by invocation (sparse: both at the expected steps)."""
    from dse.lowering import sparse_fft

    limits = DatapathLimits(**{**SMALL.as_dict(), "sparse_steps": 4096, "sparse_nnz": 4096,
                               "max_gemms": 128, "weight_words": 4096,
                               **extra})
    plan = plan_conv(layer, algo, "ws", SPECTRAL, limits, density=0.25
                     if algo == "sparse_fft" else None)
    assert plan.bands, what
    kept = [inv for inv in plan.invocations if inv.registers["ff_keep"]]
    chunked = len({b.channels for b in plan.bands}) > 1
    assert not (kept and chunked), "channel chunks take turns in the buffer: none kept"
    if "kept" in what:
        assert kept
    if "channel" in what or what == "all three":
        assert chunked
    g = Geometry.of_layer(layer)
    lim = limits.on_array(4, 4)
    if algo == "fft":
        got = float(split_cycles("fft", g, 8, 4, 4, Dataflow.WS.code, lim)["cycles"])
        assert got == plan.cycles(4, 4)["cycles"]
    else:
        got = float(sparse_fft.layer_cycles(g, 8, 4, 4, 4, 8, 0.25, lim)["cycles"])
        # per-invocation rounding of the expected steps aside
        assert abs(got - plan.cycles(4, 4)["cycles"]) <= len(plan.invocations)


@settings(max_examples=200, deadline=None)
@given(c=st.integers(1, 40), h=st.integers(4, 30), w=st.integers(4, 20),
       n=st.integers(1, 12), k=st.sampled_from([3, 5]), pad=st.integers(0, 2),
       spectral=st.sampled_from([512, 2048, 8192]), out=st.sampled_from([64, 256, 1024]),
       max_k=st.sampled_from([4, 16, 64]), sparse_words=st.sampled_from([64, 512, 4096]),
       algo=st.sampled_from(["fft", "sparse_fft"]))
def test_spectral_cuts_explorer_and_compiler_agree(c, h, w, n, k, pad, spectral, out, max_k,
                                                   sparse_words, algo):
    """On random layers and buffers: where the compiler refuses a spectral layer the
    explorer says it does not fit, and where it plans one the explorer's cycles are the
    plan's (sparse: at the expected steps, up to their per-invocation rounding)."""
    from dse.lowering import sparse_fft

    layer = layer_of(c, max(h, k), max(w, k), n, k, 1, pad)
    limits = DatapathLimits(**{**SMALL.as_dict(), "max_gemms": 128, "weight_words": 4096,
                               "spectral_words": spectral, "out_words": out, "max_k": max_k,
                               "sparse_steps": sparse_words, "sparse_nnz": sparse_words})
    g = Geometry.of_layer(layer)
    lim = limits.on_array(SPECTRAL.rows, SPECTRAL.cols)
    if algo == "fft":
        got = split_cycles("fft", g, 8, 4, 4, Dataflow.WS.code, lim)
        fits, cycles = bool(got["split"].fits), float(got["cycles"])
    else:
        got = sparse_fft.layer_cycles(g, 8, 4, 4, 4, 8, 0.25, lim)
        fits, cycles = bool(got["fits"]), float(got["cycles"])
    try:
        plan = plan_conv(layer, algo, "ws", SPECTRAL, limits,
                         density=0.25 if algo == "sparse_fft" else None)
    except ValueError:
        event("refused")
        assert not fits
        return
    event(f"planned, {'banded' if plan.bands else 'whole'}")
    assert fits
    need = required_limits([plan])
    for key in ("spectral_words", "out_words", "max_k", "sparse_steps", "sparse_nnz"):
        assert need[key] <= getattr(limits, key), key
    slack = 0 if algo == "fft" else len(plan.invocations)
    assert abs(cycles - plan.cycles(4, 4)["cycles"]) <= slack
