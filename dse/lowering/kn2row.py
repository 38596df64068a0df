"""kn2row on the conv datapath: R·S 1×1 GEMMs over every padded input pixel, shift-and-add.

The window generator with a 1×1 window reads the input rows unchanged (A = Xᵀ: M = Hp·Wp
pixels of the input with the padding beyond the units' own in the buffer, K = ⌈C/g/rows⌉·rows
channels, a feature word per cycle); GEMM (ky, kx) multiplies by B = W[:, :, ky, kx]ᵀ
(K × N), and its C vectors (``cols`` filters of a pixel) go into the shift-and-add unit
(``rtl/kn2row.py``, ``cols`` lanes), which adds every partial sum into the output pixel its
tap shifts it to and drops the rest, then drains the output into the requantiser.  Strides
are powers of two up to 4 (the unit divides by shifting); a 1×1 kernel is im2col's (not
offered twice); ws and os only (the shift-and-add takes filter vectors, which is drains as
pixel vectors).
"""

from __future__ import annotations

import numpy as np

from dse.cost import transforms as tf
from dse.cost.gemm import DEFAULT_MULT_LATENCY
from dse.lowering import datapath as dp
from dse.lowering.geometry import Geometry, Lowered, cdiv
from rtl.params import SHIFT_ADD_ADDRESS_STAGES, Dataflow

__all__ = ["RULE", "DATAFLOWS", "legal", "lower", "cycles"]

#: The dataflows the datapath runs this algorithm in.
DATAFLOWS = (Dataflow.WS, Dataflow.OS)

#: What :func:`legal` requires, for refusals.
RULE = ("kn2row runs kernels larger than 1x1 with strides 1, 2 or 4 only (its "
        "shift-and-add divides by shifting; a 1x1 kn2row is im2col)")


def legal(g: Geometry, unit=0, xp=np):
    """Whether the datapath runs ``g`` by kn2row."""
    s = g.stride
    return ((g.kh * g.kw > 1) & ((s == 1) | (s == 2) | (s == 4))
            & xp.asarray(g.square_steps))


def lower(g: Geometry, unit, rows, cols, dataflow, n=None, xp=np) -> Lowered:
    """The R·S GEMMs of one invocation (one group); ``n`` filters (default the group's)."""
    n = g.n_group if n is None else n
    c_words = cdiv(g.c_group, rows)
    hp, wp = g.padded(g.unit_pad(xp))
    k = c_words * rows
    load = tf.im2col_stream_cycles(hp, wp, 1, 1, c_words)
    gemms = g.kh * g.kw
    f_words = cdiv(n, cols)
    back = tf.kn2row_shift_add_cycles(hp, wp, g.kh, g.kw, g.h_out, g.w_out, f_words)
    c = dp.c_words(hp * wp, n, cols, dataflow, xp)
    return Lowered(m=hp * wp, k=k, n=n, k_alg=g.c_group, gemms=gemms, invocations=g.groups,
                   a_words=dp.a_words(hp * wp, k, rows, xp),
                   b_words=dp.b_words(k, n, rows, cols, dataflow, xp), c_words=c,
                   out_words=g.h_out * g.w_out * f_words, tiles=hp * wp, pieces=1,
                   load=load, drain=c, front=gemms * load, back=back)


def cycles(low: Lowered, rows, cols, dataflow, xp=np,
           mult_latency=DEFAULT_MULT_LATENCY, requant_latency=tf.REQUANT_LATENCY) -> dict:
    """Counters of one invocation: the R·S GEMMs, then the shift-and-add's address pipeline
    (the last word's write) and drain."""
    busy = dp.gemm_busy(low, rows, cols, dataflow, xp, mult_latency)
    tail = low.out_words + 1 + SHIFT_ADD_ADDRESS_STAGES + dp.requant_tail(requant_latency)
    period = dp.gemm_period(low, busy, rows, cols, dataflow, xp)
    total = dp.gemms_cycles(low, busy, period, xp) + tail - 1
    return {"cycles": total, "gemm_cycles": dp.gemms_busy(low, busy, period, xp),
            "front_cycles": low.front,
            "back_cycles": low.back,
            "requant_cycles": dp.requant_cycles(low, requant_latency)}
