"""im2col on the conv datapath: GEMMs of output pixels × (window · channels) × filters.

The window generator (``rtl/im2col.py``) walks the feature buffer, whose words hold ``rows``
channels of a pixel, and streams the patch rows of A (K = R·S·⌈C/g/rows⌉·rows, order (ky,
kx, c)) straight into the engine's A loader, one word (K-chunk) per cycle; B holds the
weights (K × N = C_out/g) as the engine's wide words.  In ws and os the output rows are cut
into bands of equal height, one GEMM each (M = band · Wo; the last band is padded to full
height and its extra rows dropped), all with the same B, so the generator streams band i + 1
while the engine computes band i (:func:`lower` picks the band count).  No back unit: the C
vectors go through the requantiser into the output buffer (ws, os: ``cols`` filters of a
pixel per word, pixel-major, band after band; is: ``cols`` pixels of a filter, one band).
Grouped convs run one invocation per group.  Every conv and fc layer can run this way (the
fallback of every other algorithm) as long as its strides and dilations are equal in both
directions.

**Host patches** (variant ``patches``, ``unit`` = 1): a layer that reads the network's input
can have the host write that input as its im2col patches (output pixel-major, channel order
(c, ky, kx)); the layer is then the 1×1 convolution of :func:`patched`, R·S·C channels a
pixel, so a first layer of 3 channels fills the array's rows instead of 3 of them.
"""

from __future__ import annotations

from dataclasses import fields
from functools import lru_cache

import numpy as np

from dse.cost import transforms as tf
from dse.cost.gemm import DEFAULT_MULT_LATENCY
from dse.lowering import datapath as dp
from dse.lowering.geometry import Geometry, Lowered, cdiv
from rtl.params import Dataflow

__all__ = ["RULE", "DATAFLOWS", "BAND_COUNTS", "legal", "lower", "cycles", "patched"]

#: The dataflows the datapath runs this algorithm in.
DATAFLOWS = (Dataflow.WS, Dataflow.OS, Dataflow.IS)

#: What :func:`legal` requires, for refusals.
RULE = "the datapath needs equal strides and dilations in both directions"


def legal(g: Geometry, unit=0, xp=np):
    """Whether the datapath runs ``g`` by im2col (``unit`` = 1: from host patches, which
    needs one group; whether the layer reads the network input is the caller's check)."""
    return xp.asarray(g.square_steps) & ((unit == 0) | (g.groups == 1))


def patched(g: Geometry, unit=1, xp=np) -> Geometry:
    """The geometry the datapath runs with host patches (``unit`` = 1, where ``unit`` may be
    an array): a 1×1 convolution, stride 1, no padding, of C·R·S channels on the output
    map; ``g`` unchanged where ``unit`` is 0."""
    on = unit == 1
    one = 0 * g.c_in + 1

    def pick(new, old):
        return xp.where(on, new, old) if not isinstance(on, bool) else (new if on else old)

    return Geometry(pick(g.c_in * g.kh * g.kw, g.c_in), g.c_out, g.groups,
                    pick(one, g.kh), pick(one, g.kw), pick(one, g.stride),
                    pick(one, g.dilation), pick(g.h_out, g.h_in), pick(g.w_out, g.w_in),
                    g.h_out, g.w_out, pick(0 * one, g.pad_t), pick(0 * one, g.pad_l),
                    pick(0 * one, g.pad_b), pick(0 * one, g.pad_r), g.square_steps)


#: Band counts the lowering tries (the output rows split into that many GEMMs, or fewer).
BAND_COUNTS = (1, 2, 4, 8, 16, 32, 64)


def _lower_bands(g: Geometry, rows, cols, dataflow, n, bands, xp) -> Lowered:
    """The invocation as GEMMs of ``band`` = ceil(Ho / bands) output rows each (the last
    band padded to full height: its extra rows are computed and dropped)."""
    c_words = cdiv(g.c_group, rows)
    band = cdiv(g.h_out, bands)
    gemms = cdiv(g.h_out, band)
    pix = band * g.w_out
    k = g.kh * g.kw * c_words * rows
    load = tf.im2col_stream_cycles(band, g.w_out, g.kh, g.kw, c_words)
    c = dp.c_words(pix, n, cols, dataflow, xp)
    return Lowered(m=pix, k=k, n=n, k_alg=g.kh * g.kw * g.c_group, gemms=gemms,
                   invocations=g.groups, a_words=dp.a_words(pix, k, rows, xp),
                   b_words=dp.b_words(k, n, rows, cols, dataflow, xp), c_words=c,
                   out_words=gemms * c, tiles=g.h_out * g.w_out, pieces=1, load=load,
                   drain=c, front=gemms * load, back=0 * load, band=band)


#: Geometry's field names, in order.
_GEOMETRY_FIELDS = tuple(f.name for f in fields(Geometry))
#: What a scalar call passes: Python and numpy integers (and bools).
_SCALAR_TYPES = (int, np.integer, np.bool_)


def _scalars(*values) -> bool:
    return all(isinstance(v, _SCALAR_TYPES) for v in values)


@lru_cache(maxsize=1 << 14)
def _lower_scalar(g: Geometry, unit, rows, cols, dataflow, n, banded, limits) -> Lowered:
    return _lower(g, unit, rows, cols, dataflow, n, np, banded,
                  None if limits is None else dict(limits))


def lower(g: Geometry, unit, rows, cols, dataflow, n=None, xp=np, banded=True,
          limits=None) -> Lowered:
    """The GEMMs of one invocation (one group) on a rows×cols array; ``n`` filters (default
    all of the group's).  A feature-buffer word holds ``rows`` channels of a pixel, so K
    counts the channels up to a whole number of words (the rest are zeros).

    In ws and os the output rows are cut into bands, one GEMM each, so that the window
    generator loads the next band while the engine computes this one: of the splits into
    :data:`BAND_COUNTS` bands or one band a row, the one with the fewest :func:`cycles`
    (ties: fewer bands) among those whose GEMM fits the engine's halves and whose outputs
    fit the output buffer (``limits``, ``rtl.params.DatapathLimits`` fields; ``None``: no
    bound; :func:`dse.lowering.split.split` makes sure one band a row fits).  In is an
    output word holds pixels of one filter, so the layer stays one GEMM; so does every layer
    with ``banded=False`` (the algorithm's GEMM, for the explorer's energy and traffic).
    ``unit`` = 1: the layer from host patches (:func:`patched`).  Scalar calls (the
    compiler's, and the split search's many repeats of a band) are remembered."""
    if xp is np and _scalars(unit, rows, cols, dataflow, n, banded,
                             *(getattr(g, f) for f in _GEOMETRY_FIELDS)) and (
            limits is None or _scalars(*limits.values())):
        return _lower_scalar(g, unit, rows, cols, dataflow, n, banded,
                             None if limits is None else tuple(sorted(limits.items())))
    return _lower(g, unit, rows, cols, dataflow, n, xp, banded, limits)


def _lower(g: Geometry, unit, rows, cols, dataflow, n, xp, banded, limits) -> Lowered:
    """:func:`lower`, uncached."""
    from dse.lowering.split import engine_words

    g = patched(g, unit, xp)
    n = g.n_group if n is None else n
    banded = banded & (dataflow != Dataflow.IS.code)

    def fits(low):
        if limits is None:
            return True
        a, _, c = engine_words(low.m, low.k, n, rows, cols, dataflow, xp)
        return ((a <= limits["engine_a_words"]) & (c <= limits["engine_c_words"])
                & (low.out_words <= limits["out_words"]) & (low.gemms <= limits["max_gemms"]))

    first = _lower_bands(g, rows, cols, dataflow, n, 1, xp)
    best_ok = fits(first)
    best_cycles = cycles(first, rows, cols, dataflow, xp)["cycles"]
    best_bands = 0 * best_cycles + 1
    for bands in (*BAND_COUNTS[1:], g.h_out):
        low = _lower_bands(g, rows, cols, dataflow, n, bands, xp)
        ok = fits(low)
        total = cycles(low, rows, cols, dataflow, xp)["cycles"]
        better = banded & ok & ((total < best_cycles) | ~xp.asarray(best_ok))
        best_bands = xp.where(better, bands, best_bands)
        best_cycles = xp.where(better, total, best_cycles)
        best_ok = best_ok | better
    if np.ndim(best_bands) == 0:
        best_bands = int(best_bands)
    return _lower_bands(g, rows, cols, dataflow, n, best_bands, xp)


def cycles(low: Lowered, rows, cols, dataflow, xp=np,
           mult_latency=DEFAULT_MULT_LATENCY, requant_latency=tf.REQUANT_LATENCY) -> dict:
    """Counters of one invocation: the GEMM, then the requantiser's last words."""
    busy = dp.gemm_busy(low, rows, cols, dataflow, xp, mult_latency)
    period = dp.gemm_period(low, busy, rows, cols, dataflow, xp)
    total = dp.gemms_cycles(low, busy, period, xp) + dp.requant_tail(requant_latency) - 1
    return {"cycles": total, "gemm_cycles": dp.gemms_busy(low, busy, period, xp),
            "front_cycles": low.front, "back_cycles": 0 * total,
            "requant_cycles": dp.requant_cycles(low, requant_latency)}
