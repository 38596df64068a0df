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
:func:`dse.compiler.sparse_schedule.schedule_layer`), then dumps the group's accumulators,
one bin a beat::

    mac     = tiles · (C · Σ_groups max(E[Δ], ⌈bins/B⌉) + groups · bins)
    cycles  = fft2d(tiles, C) + mac + fft2d(tiles, F)

``⌈bins/B⌉`` is the bank depth: the next channel's spectrum is written into the second half
of the double-buffered banks, one bin per bank a cycle, while the lanes read the current one.

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

import math
from functools import lru_cache

import numpy as np

from dse.cost import transforms as tf
from dse.lowering import fft
from dse.lowering.geometry import Geometry, cdiv
from rtl.params import Dataflow

__all__ = ["RULE", "DATAFLOWS", "DSP_PER_LANE", "MAC_LATENCY", "legal", "bins_of", "keep",
           "expected_steps", "expected_steps_array", "mac_cycles", "cycles", "tile_grid"]

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


def mac_cycles(g: Geometry, unit, lanes, banks, nnz, ports=1):
    """``(mac, steps)``: the sparse MAC phase of the whole layer (module docstring) and the
    expected stall-free schedule steps per tile (Σ over (group, channel) pairs of E[Δ]),
    float64 arrays broadcast over the arguments (numpy only: E[Δ] is a table lookup)."""
    unit = np.asarray(unit)
    bins = bins_of(unit)
    lanes = np.asarray(lanes)
    p = np.maximum(lanes, 1)
    f = np.asarray(g.c_out)
    full, rest = f // p, f % p
    depth = cdiv(bins, np.maximum(np.asarray(banks), 1))
    e_full = expected_steps_array(bins, nnz, p, np.maximum(banks, 1), ports)
    e_rest = expected_steps_array(bins, nnz, rest, np.maximum(banks, 1), ports)
    steps = g.c_in * (full * e_full + e_rest)
    paced = g.c_in * (full * np.maximum(e_full, depth)
                      + np.where(rest > 0, np.maximum(e_rest, depth), 0.0))
    th, tw = tile_grid(g, unit)
    tiles = th * tw
    groups = cdiv(f, p)
    return tiles * (paced + groups * bins) + MAC_LATENCY, steps


def cycles(g: Geometry, unit, lanes, banks, nnz, ports=1) -> dict:
    """Counters of the whole layer: ``cycles`` (forward transforms, sparse MAC phase,
    inverse transforms with overlap-add), ``front_cycles``, ``mac_cycles``,
    ``back_cycles``, ``steps`` (expected stall-free schedule steps per tile) and ``macs``
    (useful complex MACs of the layer: tiles · C · F · z)."""
    th, tw = tile_grid(g, unit)
    tiles = th * tw
    front = tf.fft2d_cycles(unit, tiles, g.c_in)
    back = tf.fft2d_cycles(unit, tiles, g.c_out)
    mac, steps = mac_cycles(g, unit, lanes, banks, nnz, ports)
    return {"cycles": front + mac + back, "front_cycles": front, "mac_cycles": mac,
            "back_cycles": back, "steps": steps, "tiles": tiles,
            "macs": tiles * g.c_in * g.c_out * np.asarray(nnz)}
