"""Pruned spectral convolution (``sparse_fft``): the FFT path's transforms around the sparse
MAC unit (``rtl/sparse_fft.py``, docs/sparse-fft.md).

The layer runs as the FFT path does (:mod:`dse.lowering.fft`) up to the spectra: input tiles
of T = N − k + 1 pixels of the padded input go through the forward 2-D FFT (the same one
unit, one tile-channel at a time, :func:`dse.cost.transforms.fft2d_cycles`) into the FFT
path's spectrum buffer; the output spectra go back through the same unit inverted and are
overlap-added.  Between them, instead of 3·N·(N/2+1) dense GEMMs on the array, the sparse
MAC unit of P = ``sparse_lanes`` complex lanes and B = ``sparse_banks`` input-spectrum banks
runs, per tile, per group of P filters (the last group has F mod P lanes) and per input
channel, a stall-free schedule of Δ steps (the compiler's König edge colouring,
:func:`dse.compiler.sparse_schedule.schedule_layer`), then dumps the group's accumulators
into the output spectra (``rtl/spectral.py``, "Sparse phase 2")::

    mac     = 1 + tiles · (G·C·(bins + 1) + Σ_pairs Δ + G·(MAC_LATENCY + 1) + bins·F)
    cycles  = fft2d(tiles, C) + mac + fft2d(tiles, F) + the FFT path's latencies and
              the requantiser's drain (:func:`datapath_cycles`)

with G = ⌈F/P⌉ groups: each channel's spectrum is loaded into the banks one bin a cycle
before its steps run (the banks are single-buffered), and the dump writes one (bin, lane)
a cycle.  The compiler's prediction (``ConvPlan.sparse_cycles``) puts the compiled
schedule's Σ Δ in this formula and equals the datapath's cycles; the explorer puts its
expectation.

The weights are not known to the explorer, so Δ -- the steps of one (group, channel) -- is
its **expected value** for kernels pruned to density D (z = ⌈D·bins⌉ non-zeros per kernel,
:func:`dse.compiler.sparse_schedule.keep_count`) under the mod-B placement
(``default_placement``, which ``balanced_placement`` keeps on weights without structure):
Δ = max(z, max over banks of ⌈reads/ports⌉) (König: the schedule is exactly Δ steps).  Each
lane's z bins are modelled as a uniformly random z-subset of the bins, so a bank holding s
bins gets a hypergeometric(bins, s, z) count from each lane, and its reads are the sum over
the p lanes (exact distribution, by convolution).  Treating the banks as independent,

    P(Δ ≤ x) = [x ≥ z] · Π_banks P(reads_b ≤ ports·x),   E[Δ] = Σ_{x ≥ 0} (1 − P(Δ ≤ x))

(:func:`expected_steps`).  This is an **estimate**, not a bound: magnitude pruning of real
(Hermitian) spectra keeps conjugate bins on the v = 0 and v = N/2 columns together, and the
banks' loads are negatively correlated (each lane's total is fixed), which the model leaves
out; trained kernels that crowd the low bins would load some banks more.  Measured against
the real schedules of random int8 kernels pruned by ``prune_spectral`` (docs/sparse-fft.md,
"Explorer"), the error is a few per cent.

Square kernels larger than 1×1 and smaller than the tile, stride 1, dilation 1, one group
(the FFT path's rule).  The array is idle, so every dataflow is accepted (the choice's
dataflow means nothing here); the reuse mode is the choice's tiling (``weights``: kernels
resident, activations streamed; ``activations``: the reverse, :mod:`dse.cost.sparse_traffic`).
"""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache

import numpy as np

from dse.cost import transforms as tf
from dse.lowering import fft
from dse.lowering.geometry import Geometry, cdiv
from rtl.params import Dataflow

__all__ = ["RULE", "DATAFLOWS", "DSP_PER_LANE", "MAC_LATENCY", "legal", "bins_of", "keep",
           "expected_steps", "expected_steps_array", "expected_tile_steps", "smac_cycles",
           "datapath_cycles", "mac_cycles", "cycles", "memory_words", "invocations",
           "layer_cycles", "tile_grid"]

#: The array idles on this path: any dataflow (the choice's dataflow is not used).
DATAFLOWS = (Dataflow.WS, Dataflow.OS, Dataflow.IS)

#: DSPs of one complex lane (Gauss's three real products, ``rtl/sparse_fft.py``).
DSP_PER_LANE = 3

#: Pipeline of a lane (serve, products, accumulator write): cycles after the last step.
MAC_LATENCY = 3

#: What :func:`legal` requires, for refusals.
RULE = ("sparse FFT with N x N tiles runs square kernels larger than 1x1 and smaller than the "
        "tile with stride 1, dilation 1 and groups 1 only")

tile_grid = fft.tile_grid


def legal(g: Geometry, unit, xp=np):
    """Whether the sparse spectral path runs ``g`` with ``unit``-point tiles (the FFT
    path's rule)."""
    return fft.legal(g, unit, xp)


def bins_of(unit):
    """Half-spectrum bins of ``unit``-point tiles, N·(N/2 + 1)."""
    return unit * (unit // 2 + 1)


def keep(density, unit):
    """Non-zeros kept per kernel, ⌈D·bins⌉ with D read as the decimal it prints as
    (:func:`dse.compiler.sparse_schedule.keep_count`), broadcast over arrays."""
    from dse.compiler.sparse_schedule import keep_count

    d, n = np.broadcast_arrays(np.asarray(density, dtype=np.float64),
                               np.asarray(unit, dtype=np.int64))
    out = np.zeros(d.shape, dtype=np.int64)
    pairs, inverse = np.unique(np.stack([d.reshape(-1), n.reshape(-1).astype(np.float64)], 1),
                               axis=0, return_inverse=True)
    vals = np.array([keep_count(float(dd), int(bins_of(int(nn)))) if nn >= 4 else 0
                     for dd, nn in pairs], dtype=np.int64)
    out.reshape(-1)[:] = vals[inverse.reshape(-1)]
    return out if out.ndim else int(out)


def _hypergeom(total: int, marked: int, draws: int) -> np.ndarray:
    """pmf of the marked items among ``draws`` drawn without replacement from ``total``."""
    denom = math.comb(total, draws)
    return np.array([math.comb(marked, j) * math.comb(total - marked, draws - j) / denom
                     for j in range(min(marked, draws) + 1)])


def _power(pmf: np.ndarray, times: int) -> np.ndarray:
    """pmf of the sum of ``times`` independent copies (binary powers of convolution)."""
    out, base = np.ones(1), pmf
    while times:
        if times & 1:
            out = np.convolve(out, base)
        times >>= 1
        if times:
            base = np.convolve(base, base)
    return out


@lru_cache(maxsize=8192)
def expected_steps(bins: int, nnz: int, lanes: int, banks: int, ports: int = 1) -> float:
    """Expected steps E[Δ] of one (group, channel) pair: ``lanes`` lanes of ``nnz`` non-zeros
    each among ``bins`` bins, mod-``banks`` placement, ``ports`` read ports a bank (module
    docstring; an estimate).  0 with no lane or no non-zero."""
    for name, v, low in (("bins", bins, 1), ("nnz", nnz, 0), ("lanes", lanes, 0),
                         ("banks", banks, 1), ("ports", ports, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name} must be an integer of at least {low}, not {v!r}")
    if nnz > bins:
        raise ValueError(f"nnz must be at most bins ({bins}), not {nnz}")
    if lanes == 0 or nnz == 0:
        return 0.0
    sizes = {}
    for b in range(min(banks, bins)):
        s = len(range(b, bins, banks))
        sizes[s] = sizes.get(s, 0) + 1
    top = lanes * max(sizes)                       # the most reads a bank can get
    xs = np.arange(cdiv(top, ports) + max(nnz, 1) + 1)
    prob = (xs >= nnz).astype(np.float64)
    for s, count in sizes.items():
        cdf = np.cumsum(_power(_hypergeom(bins, s, nnz), lanes))
        cdf = np.minimum(cdf, 1.0)
        prob = prob * cdf[np.minimum(xs * ports, len(cdf) - 1)] ** count
    return float(np.sum(1.0 - prob))


def expected_steps_array(bins, nnz, lanes, banks, ports=1) -> np.ndarray:
    """:func:`expected_steps` over broadcast integer arrays (float64, their shape)."""
    arrs = np.broadcast_arrays(*(np.asarray(v).astype(np.int64)
                                 for v in (bins, nnz, lanes, banks, ports)))
    flat = np.stack([a.reshape(-1) for a in arrs], axis=1)
    keys, inverse = np.unique(flat, axis=0, return_inverse=True)
    vals = np.array([expected_steps(*(int(x) for x in row)) for row in keys])
    return vals[inverse.reshape(-1)].reshape(arrs[0].shape)


def expected_tile_steps(g: Geometry, unit, lanes, banks, nnz, ports=1):
    """The explorer's expected schedule steps per tile: Σ over the (group, channel) pairs
    of E[Δ] (:func:`expected_steps`; the last group has F mod P lanes), float64 broadcast
    over the arguments (numpy only: E[Δ] is a table lookup)."""
    unit = np.asarray(unit)
    bins = bins_of(unit)
    p = np.maximum(np.asarray(lanes), 1)
    f = np.asarray(g.c_out)
    full, rest = f // p, f % p
    e_full = expected_steps_array(bins, nnz, p, np.maximum(banks, 1), ports)
    e_rest = expected_steps_array(bins, nnz, rest, np.maximum(banks, 1), ports)
    return g.c_in * (full * e_full + e_rest)


def smac_cycles(g: Geometry, unit, lanes, tile_steps):
    """Cycles of the datapath's sparse phase (``rtl/spectral.py``, "Sparse phase 2"), from
    its start through its last output-spectrum write, for ``tile_steps`` schedule steps per
    tile (all (group, channel) pairs: the compiled schedule's, or the explorer's
    :func:`expected_tile_steps`): per tile, per group of P filters, per channel the
    spectrum load (bins reads, one a cycle) and the pair's steps plus the schedule
    memory's first read; per group the MAC pipeline's drain, the dump's first read and a
    cycle per (bin, lane) written; one cycle to start."""
    bins = bins_of(unit)
    th, tw = tile_grid(g, unit)
    groups = cdiv(g.c_out, np.maximum(lanes, 1))
    per_tile = (groups * g.c_in * (bins + 1) + tile_steps
                + groups * (MAC_LATENCY + 1) + bins * g.c_out)
    return 1 + th * tw * per_tile


def datapath_cycles(g: Geometry, unit, lanes, tile_steps,
                    requant_latency=tf.REQUANT_LATENCY, kept=False) -> dict:
    """Counters of a sparse_fft layer on the conv datapath: the FFT path's forward
    transforms (none with ``kept``, :func:`dse.lowering.fft.lead_cycles`), :func:`smac_cycles`
    and the inverse transforms with overlap-add and the requantiser's drain (as
    :func:`dse.lowering.fft.cycles` around its GEMMs)."""
    from dse.lowering import datapath as dp

    th, tw = tile_grid(g, unit)
    tiles = th * tw
    front = tf.fft2d_cycles(unit, tiles, g.c_in)
    back = tf.fft2d_cycles(unit, tiles, g.c_out)
    requant = g.h_out * g.w_out * g.c_out + requant_latency
    mac = smac_cycles(g, unit, lanes, tile_steps)
    lead = fft.lead_cycles(front, kept)
    tail = dp.TILE_READ_LATENCY + back + 1 + dp.TILE_READ_LATENCY + requant - 1
    # the sparse phase starts in the forward transforms' last cycle and the inverse
    # transforms in its last: two cycles shared
    return {"cycles": lead + mac + tail - 2, "gemm_cycles": 0,
            "front_cycles": fft.front_counter(front, kept),
            "back_cycles": back, "requant_cycles": requant, "smac_cycles": mac}


def mac_cycles(g: Geometry, unit, lanes, banks, nnz, ports=1):
    """``(mac, steps)``: the explorer's :func:`smac_cycles` of the whole layer and the
    expected steps per tile (:func:`expected_tile_steps`), float64 arrays broadcast over the
    arguments."""
    steps = expected_tile_steps(g, unit, lanes, banks, nnz, ports)
    return smac_cycles(g, unit, lanes, steps), steps


def cycles(g: Geometry, unit, lanes, banks, nnz, ports=1,
           requant_latency=tf.REQUANT_LATENCY, kept=False) -> dict:
    """The explorer's counters of the whole layer: :func:`datapath_cycles` at the expected
    steps, plus ``mac_cycles`` (the sparse phase), ``steps`` (expected steps per tile),
    ``tiles`` and ``macs`` (useful complex MACs of the layer: tiles · C · F · z)."""
    steps = expected_tile_steps(g, unit, lanes, banks, nnz, ports)
    out = datapath_cycles(g, unit, lanes, steps, requant_latency, kept)
    th, tw = tile_grid(g, unit)
    return {**out, "mac_cycles": out["smac_cycles"], "steps": steps, "tiles": th * tw,
            "macs": th * tw * g.c_in * g.c_out * np.asarray(nnz)}


def memory_words(channels, filters, unit, lanes, banks, density) -> tuple:
    """(schedule words, kernel-bank words a lane) a layer of ``channels`` × ``filters``
    needs in the datapath's sparse unit, for any weights: every kernel keeps z = ⌈D·bins⌉
    bins, so a lane reads z per (group, channel); a pair's steps Δ are at most
    max(z, P·min(z, ⌈bins/B⌉)) (the busiest bank serves each lane at most min(z, its
    depth) times).  Integers, or arrays broadcast over the arguments."""
    bins = bins_of(unit)
    z = keep(density, unit)
    lanes = np.maximum(lanes, 1)
    groups = cdiv(filters, lanes)
    bound = np.maximum(z, lanes * np.minimum(z, cdiv(bins, np.maximum(banks, 1))))
    steps, nnz = groups * channels * bound, groups * channels * z
    if np.ndim(steps) == 0:
        return int(steps), int(nnz)
    return steps, nnz


def invocations(g: Geometry, unit, rows, cols, lanes, banks, density, limits):
    """``(fits, split)``: where the conv datapath runs a sparse_fft layer, and how it cuts
    it (a :class:`dse.lowering.split.Split`; the compiler's rule too, ``dse.compiler.plan``).

    The layer runs on a point with a sparse unit, within ``limits`` (``DatapathLimits``
    fields; the engine's, the weight buffer's and the GEMM count's do not bind: the array
    idles), cut as the FFT path cuts it (:func:`dse.lowering.split.split`): row bands of
    whole tile rows, each with its own input image (halo and padding), and filter chunks of
    ``n_step`` -- as many as the FFT path's buffers hold, at most as many groups of P as the
    sparse unit's kernel banks and schedule memory hold (:func:`memory_words`) -- and
    channel chunks where one group's kernels of every channel do not fit them (or the FFT
    path's rule cuts them): each chunk's output spectra are inverse-transformed on their
    own, and the datapath's accumulator buffer sums the chunks' overlap-added outputs (the
    golden model sums the chunks too).  ``None`` limits:
    one invocation wherever there is a unit and the FFT path runs the layer."""
    from dse.lowering.split import split

    ok = (np.asarray(lanes) > 0) & np.asarray(legal(g, unit))
    if limits is None:
        return ok, split("fft", g, unit, rows, cols, Dataflow.WS.code, None, xp=np)
    big = 1 << 40
    lim = {**limits, "weight_words": big, "engine_a_words": big, "engine_c_words": big,
           "max_gemms": big}
    p = np.maximum(lanes, 1)
    # channels of one group the kernel banks and the schedule memory hold
    steps, nnz = memory_words(1, p, unit, p, banks, density)          # a group's channel
    c_most = np.minimum(limits["sparse_steps"] // np.maximum(steps, 1),
                        limits["sparse_nnz"] // np.maximum(nnz, 1))
    cap = np.maximum(c_most, 1)
    first = split("fft", g, unit, rows, cols, Dataflow.WS.code, lim, xp=np, n_cap=p,
                  c_words_cap=cap)
    # groups of P whose kernels and schedule of the largest channel chunk fit
    steps, nnz = memory_words(np.asarray(first.c_step), p, unit, p, banks, density)
    groups = np.minimum(limits["sparse_steps"] // np.maximum(steps, 1),
                        limits["sparse_nnz"] // np.maximum(nnz, 1))
    sp = split("fft", g, unit, rows, cols, Dataflow.WS.code, lim, xp=np,
               n_cap=np.maximum(groups, 1) * p, c_words_cap=cap)
    ok = ok & np.asarray(sp.fits) & (c_most >= 1) & (groups >= 1)
    return ok, sp


def layer_cycles(g: Geometry, unit, rows, cols, lanes, banks, density, limits,
                 requant_latency=tf.REQUANT_LATENCY) -> dict:
    """The explorer's counters of a whole sparse_fft layer cut as :func:`invocations` cuts
    it (each invocation's :func:`cycles` summed: the first, middle and last bands' own
    geometries, each in channel and filter chunks; a band's later filter chunks skip the
    forward transforms where its channels are one chunk), plus ``fits``."""
    from dse.lowering.split import whole_where, band_geometry, with_channels

    ok, sp = invocations(g, unit, rows, cols, lanes, banks, density, limits)
    nnz = keep(density, unit)
    bands = np.asarray(sp.bands)
    many = bands >= 2
    parts = [(0, sp.band, 1), (sp.band, sp.band, np.maximum(bands - 2, 0)),
             ((bands - 1) * sp.band, sp.band_last, np.where(many, 1, 0))]
    keys = ("cycles", "gemm_cycles", "front_cycles", "back_cycles", "requant_cycles",
            "smac_cycles", "mac_cycles", "macs")
    chunks = [(sp.c_last, 1), (sp.c_step, np.asarray(sp.c_chunks) - 1)]
    # a band's later filter chunks find its input spectra in the buffer (``ff_keep``) where
    # its channels are one chunk
    kept = (np.asarray(sp.n_chunks) - 1) * (np.asarray(sp.c_chunks) == 1)
    out = {k: 0 for k in keys}
    for oy0, h, count in parts:
        bg = whole_where(np, many, band_geometry(g, oy0, h), g)   # one band: the layer
        for c_in, c_times in chunks:
            for n, times in ((sp.n_step, np.asarray(sp.n_chunks) - 1), (sp.n_last, 1)):
                gn = dataclasses.replace(with_channels(bg, c_in), c_out=n)
                c = cycles(gn, unit, lanes, banks, nnz, requant_latency=requant_latency)
                for k in keys:
                    out[k] = out[k] + count * c_times * times * np.asarray(c[k])
            # what each kept invocation does not spend (the forward phase is the same for
            # every filter count)
            k_c = cycles(gn, unit, lanes, banks, nnz, requant_latency=requant_latency,
                         kept=True)
            for k in keys:
                out[k] = out[k] - count * c_times * kept * (np.asarray(c[k])
                                                             - np.asarray(k_c[k]))
    out["fits"] = ok
    return out
