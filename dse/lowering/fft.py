"""FFT overlap-and-add on the conv datapath (``rtl/spectral.py``): 3 real GEMMs per bin.

Input tiles of T = N − k + 1 pixels of the padded input, zero-padded to N×N, go through the
forward 2-D FFT (one unit, one tile at a time) into the input-spectrum buffer; for each of
the N·(N/2+1) bins with v ≤ N/2 (a real tile's spectrum is Hermitian; the datapath mirrors
the rest) the array runs three real GEMMs by Gauss's trick (M = tiles, K = C, N =
filters; A through a packer of K-chunks, C through an unpacker: the spectral path moves
one element a cycle); the output spectra go back through the same FFT unit inverted and
are overlap-added, then drained through the requantiser.  Square kernels larger than 1×1
and smaller than the tile, stride 1, dilation 1, one group; ws and os only.
"""

from __future__ import annotations

import numpy as np

from dse.cost import transforms as tf
from dse.cost.gemm import DEFAULT_MULT_LATENCY
from dse.lowering import datapath as dp
from dse.lowering.geometry import Geometry, Lowered, cdiv
from rtl.params import Dataflow

__all__ = ["RULE", "DATAFLOWS", "REAL_PRODUCTS_PER_COMPLEX", "legal", "lower", "cycles",
           "tile_grid", "lead_cycles", "front_counter"]

#: Real GEMMs per complex GEMM in the FFT path.  Gauss's trick: with X = a + ib and
#: W = c + id, k1 = c(a+b), k2 = a(d-c), k3 = b(c+d); Re = k1 - k3, Im = k1 + k2, so the
#: array runs three real GEMMs per frequency bin instead of four, at one extra bit on each
#: operand (the compiler stores the weight planes c, d-c and c+d).
REAL_PRODUCTS_PER_COMPLEX = 3

#: The dataflows the datapath runs this algorithm in.
DATAFLOWS = (Dataflow.WS, Dataflow.OS)

#: What :func:`legal` requires, for refusals.
RULE = ("FFT with N x N tiles runs square kernels larger than 1x1 and smaller than the tile "
        "with stride 1, dilation 1 and groups 1 only")


def tile_grid(g: Geometry, unit, xp=np):
    """FFT tiles (rows, columns) covering the padded input for ``unit``-point tiles (a
    kernel not smaller than the tile, which :func:`legal` refuses, counts as step 1)."""
    step = xp.maximum(unit - g.kh + 1, 1)
    hp, wp = g.padded(0)
    return cdiv(hp, step), cdiv(wp, step)


def legal(g: Geometry, unit, xp=np):
    """Whether the datapath runs ``g`` by FFT with ``unit``-point tiles."""
    return ((g.kh == g.kw) & (g.kh > 1) & (g.kh < unit) & (g.stride == 1)
            & (g.dilation == 1) & (g.groups == 1) & xp.asarray(g.square_steps))


def lower(g: Geometry, unit, rows, cols, dataflow, n=None, xp=np) -> Lowered:
    """The 3·N·(N/2+1) GEMMs of ``unit``-point tiles; ``n`` filters (default all)."""
    n = g.c_out if n is None else n
    th, tw = tile_grid(g, unit, xp)
    tiles = th * tw
    gemms = REAL_PRODUCTS_PER_COMPLEX * unit * (unit // 2 + 1)
    # the spectral path takes C one element a cycle, through an unpacker
    elements = tiles * n
    return Lowered(m=tiles, k=g.c_in, n=n, k_alg=g.c_in, gemms=gemms, invocations=1,
                   a_words=dp.a_words(tiles, g.c_in, rows, xp),
                   b_words=dp.b_words(g.c_in, n, rows, cols, dataflow, xp), c_words=elements,
                   out_words=g.h_out * g.w_out * n, tiles=tiles, pieces=1,
                   load=tiles * g.c_in + dp.TILE_READ_LATENCY + dp.WIDEN_LATENCY,
                   drain=elements + dp.WIDEN_LATENCY,
                   front=tf.fft2d_cycles(unit, tiles, g.c_in, xp=xp),
                   back=tf.fft2d_cycles(unit, tiles, n, xp=xp))


def lead_cycles(front, kept=False, xp=np):
    """Cycles from an invocation's start to its spectral MAC phase: the forward transforms
    (``front``) after the tile buffer's read latency, or, with ``kept`` (``ff_keep``: the
    input spectra are the previous invocation's, a later filter chunk), one cycle less than
    that latency (the start cycle is the phase's)."""
    if isinstance(kept, bool):
        return dp.TILE_READ_LATENCY - 1 if kept else dp.TILE_READ_LATENCY + front
    return xp.where(kept, dp.TILE_READ_LATENCY - 1, dp.TILE_READ_LATENCY + front)


def front_counter(value, kept, xp=np):
    """The forward transforms' counter: ``value``, or 0 where ``kept``."""
    if isinstance(kept, bool):
        return 0 * value if kept else value
    return xp.where(kept, 0 * value, value)


def cycles(low: Lowered, rows, cols, dataflow, xp=np,
           mult_latency=DEFAULT_MULT_LATENCY, requant_latency=tf.REQUANT_LATENCY,
           kept=False) -> dict:
    """Counters of one invocation: forward transforms (none with ``kept``:
    :func:`lead_cycles`), the GEMMs, inverse transforms with overlap-add, then the
    requantiser drain."""
    busy = dp.gemm_busy(low, rows, cols, dataflow, xp, mult_latency)
    requant = dp.requant_cycles(low, requant_latency)
    lead = lead_cycles(low.front, kept, xp)
    tail = (dp.TILE_READ_LATENCY + low.back + 1 + dp.TILE_READ_LATENCY + requant - 1)
    total = lead + low.gemms * dp.per_gemm_cycles(low, busy, xp) + tail - 1
    return {"cycles": total, "gemm_cycles": low.gemms * busy,
            "front_cycles": front_counter(low.front, kept, xp),
            "back_cycles": low.back, "requant_cycles": requant}
