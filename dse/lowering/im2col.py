"""im2col on the conv datapath: one GEMM of output pixels × (window · channels) × filters.

The window generator (``rtl/im2col.py``) walks the feature buffer, whose words hold ``rows``
channels of a pixel, and streams the patch rows of A (M = Ho·Wo, K = R·S·⌈C/g/rows⌉·rows,
order (ky, kx, c)) straight into the engine's A loader, one word (K-chunk) per cycle; B holds
the weights (K × N = C_out/g) as the engine's wide words.  No back unit: the C vectors go
through the requantiser into the output buffer (ws, os: ``cols`` filters of a pixel per word,
pixel-major; is: ``cols`` pixels of a filter).  Grouped convs run one invocation
per group.  Every conv and fc layer can run this way (the fallback of every other algorithm)
as long as its strides and dilations are equal in both directions.
"""

from __future__ import annotations

import numpy as np

from dse.cost import transforms as tf
from dse.cost.gemm import DEFAULT_MULT_LATENCY
from dse.lowering import datapath as dp
from dse.lowering.geometry import Geometry, Lowered, cdiv
from rtl.params import Dataflow

__all__ = ["RULE", "DATAFLOWS", "legal", "lower", "cycles"]

#: The dataflows the datapath runs this algorithm in.
DATAFLOWS = (Dataflow.WS, Dataflow.OS, Dataflow.IS)

#: What :func:`legal` requires, for refusals.
RULE = "the datapath needs equal strides and dilations in both directions"


def legal(g: Geometry, unit=0, xp=np):
    """Whether the datapath runs ``g`` by im2col."""
    return xp.asarray(g.square_steps)


def lower(g: Geometry, unit, rows, cols, dataflow, n=None, xp=np) -> Lowered:
    """The GEMM of one invocation (one group) on a rows×cols array; ``n`` filters (default
    all of the group's).  A feature-buffer word holds ``rows`` channels of a pixel, so K
    counts the channels up to a whole number of words (the rest are zeros)."""
    n = g.n_group if n is None else n
    c_words = cdiv(g.c_group, rows)
    pix = g.h_out * g.w_out
    k = g.kh * g.kw * c_words * rows
    load = tf.im2col_stream_cycles(g.h_out, g.w_out, g.kh, g.kw, c_words)
    c = dp.c_words(pix, n, cols, dataflow, xp)
    return Lowered(m=pix, k=k, n=n, k_alg=g.kh * g.kw * g.c_group, gemms=1,
                   invocations=g.groups, a_words=dp.a_words(pix, k, rows, xp),
                   b_words=dp.b_words(k, n, rows, cols, dataflow, xp), c_words=c,
                   out_words=c, tiles=pix, pieces=1, load=load, drain=c, front=load,
                   back=0 * load)


def cycles(low: Lowered, rows, cols, dataflow, xp=np,
           mult_latency=DEFAULT_MULT_LATENCY) -> dict:
    """Counters of one invocation: the GEMM, then the requantiser's last words."""
    busy = dp.gemm_busy(low, rows, cols, dataflow, xp, mult_latency)
    total = low.gemms * dp.per_gemm_cycles(low, busy, xp) + dp.REQUANT_TAIL - 1
    return {"cycles": total, "gemm_cycles": low.gemms * busy, "front_cycles": low.front,
            "back_cycles": 0 * total, "requant_cycles": dp.requant_cycles(low)}
