"""Winograd F(m×m, 3×3) on the conv datapath: (m+2)² GEMMs in the transformed domain.

The tile buffer holds the input's overlapping (m+2)² tiles, one tile of one channel per
word, order (tile, piece, channel word); kernels larger than 3×3 are cut into P =
ceil(k/3)² zero-padded 3×3 pieces whose products the array sums along K.  A tile-buffer word
holds ``rows`` channels of a tile piece; for transformed position g a reader streams the
words through ``rows`` input transforms Bᵀ·d·B (``rtl/winograd.py``) at once and element g
of each goes to the engine as a K-chunk: GEMM g has M = ceil(Ho/m)·ceil(Wo/m) tiles,
K = P·⌈C/rows⌉·rows, N = filters.  As its C vectors drain, the output accumulator adds each
one's share of Aᵀ·M·A into the m² accumulation buffers (one word per C vector); after the
last GEMM they drain through unpackers into ``lanes`` scale units
(``OverlayParams.winograd_lanes``), each taking the m×m outputs of one (tile, filter) a
cycle, and the requantiser: a word holds the m×m outputs of ``lanes`` filters of one tile.
Square kernels of at least 3×3, stride 1, dilation 1, one group; ws and os only.
"""

from __future__ import annotations

import numpy as np

from dse.cost import transforms as tf
from dse.cost.gemm import DEFAULT_MULT_LATENCY
from dse.lowering import datapath as dp
from dse.lowering.geometry import Geometry, Lowered, cdiv
from rtl.params import Dataflow

__all__ = ["RULE", "DATAFLOWS", "legal", "lower", "cycles", "pieces"]

#: The dataflows the datapath runs this algorithm in.
DATAFLOWS = (Dataflow.WS, Dataflow.OS)

#: What :func:`legal` requires, for refusals.
RULE = ("Winograd F(m x m, 3x3) runs square kernels of at least 3x3 with stride 1, "
        "dilation 1 and groups 1 only")


def pieces(kernel):
    """3×3 pieces per side of a k×k kernel: ceil(k/3)."""
    return cdiv(kernel, 3)


def legal(g: Geometry, unit=0, xp=np):
    """Whether the datapath runs ``g`` by Winograd (any m)."""
    return ((g.kh == g.kw) & (g.kh >= 3) & (g.stride == 1) & (g.dilation == 1)
            & (g.groups == 1) & xp.asarray(g.square_steps))


def lower(g: Geometry, unit, rows, cols, dataflow, n=None, lanes=1, xp=np) -> Lowered:
    """The (m+2)² GEMMs of F(``unit``×``unit``, 3×3); ``n`` filters (default all) drained
    through ``lanes`` output transforms (``OverlayParams.winograd_lanes``)."""
    m = unit
    n = g.c_out if n is None else n
    p2 = pieces(g.kh) * pieces(g.kw)
    tiles = cdiv(g.h_out, m) * cdiv(g.w_out, m)
    c_words = cdiv(g.c_in, rows)
    k = p2 * c_words * rows
    gemms = (m + 2) * (m + 2)
    # ``rows`` input transforms take one tile-buffer word (rows channels) a cycle
    transform = tf.winograd_input_transform_cycles(tiles, p2 * c_words, m)
    c = dp.c_words(tiles, n, cols, dataflow, xp)
    return Lowered(m=tiles, k=k, n=n, k_alg=p2 * g.c_in, gemms=gemms, invocations=1,
                   a_words=dp.a_words(tiles, k, rows, xp),
                   b_words=dp.b_words(k, n, rows, cols, dataflow, xp), c_words=c,
                   out_words=tiles * cdiv(n, lanes), tiles=tiles, pieces=p2,
                   load=transform + dp.TILE_READ_LATENCY, drain=c,
                   front=gemms * transform,
                   back=tf.winograd_output_transform_cycles(tiles, n, m, lanes))


def cycles(low: Lowered, rows, cols, dataflow, xp=np,
           mult_latency=DEFAULT_MULT_LATENCY, requant_latency=tf.REQUANT_LATENCY) -> dict:
    """Counters of one invocation: the GEMMs, then the output transform's drain."""
    busy = dp.gemm_busy(low, rows, cols, dataflow, xp, mult_latency)
    tail = 1 + dp.TILE_READ_LATENCY + dp.WIDEN_LATENCY + low.back + requant_latency
    period = dp.gemm_period(low, busy, rows, cols, dataflow, xp)
    total = dp.gemms_cycles(low, busy, period, xp) + tail - 1
    return {"cycles": total, "gemm_cycles": dp.gemms_busy(low, busy, period, xp),
            "front_cycles": low.front,
            "back_cycles": low.back, "requant_cycles": dp.requant_cycles(low, requant_latency)}
