"""im2col on the conv datapath: one GEMM of output pixels × (window · channels) × filters.

The window generator (``rtl/im2col.py``) walks the feature buffer and streams the patch rows
of A (M = Ho·Wo, K = R·S·C/g, order (ky, kx, c)) straight into the engine's A loader, one
element per cycle; B holds the weights (K × N = C_out/g).  No back unit: C goes through the
requantiser into the output buffer (HWC, filter fastest).  Grouped convs run one invocation
per group.  Every conv and fc layer can run this way (the fallback of every other algorithm)
as long as its strides and dilations are equal in both directions.
"""

from __future__ import annotations

import numpy as np

from dse.cost import transforms as tf
from dse.cost.gemm import DEFAULT_MULT_LATENCY
from dse.lowering import datapath as dp
from dse.lowering.geometry import Geometry, Lowered

__all__ = ["RULE", "legal", "lower", "cycles"]

#: What :func:`legal` requires, for refusals.
RULE = "the datapath needs equal strides and dilations in both directions"


def legal(g: Geometry, unit=0, xp=np):
    """Whether the datapath runs ``g`` by im2col."""
    return xp.asarray(g.square_steps)


def lower(g: Geometry, unit=0, n=None, xp=np) -> Lowered:
    """The GEMM of one invocation (one group); ``n`` filters (default all of the group's)."""
    n = g.n_group if n is None else n
    cg = g.c_group
    pix = g.h_out * g.w_out
    load = tf.im2col_stream_cycles(g.h_out, g.w_out, g.kh, g.kw, cg)
    return Lowered(m=pix, k=g.kh * g.kw * cg, n=n, gemms=1, invocations=g.groups,
                   out_words=pix * n, tiles=pix, pieces=1, load=load, front=load, back=0)


def cycles(low: Lowered, rows, cols, dataflow, xp=np,
           mult_latency=DEFAULT_MULT_LATENCY) -> dict:
    """Counters of one invocation: the GEMM, then the requantiser's last words."""
    busy = dp.gemm_busy(low, rows, cols, dataflow, xp, mult_latency)
    total = low.gemms * dp.per_gemm_cycles(low, busy, xp) + dp.REQUANT_TAIL - 1
    return {"cycles": total, "gemm_cycles": low.gemms * busy, "front_cycles": low.front,
            "back_cycles": 0 * total, "requant_cycles": dp.requant_cycles(low)}
