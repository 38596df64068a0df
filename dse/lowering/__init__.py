"""One lowering per convolution algorithm, shared by the explorer and the compiler.

Each module here (:mod:`~dse.lowering.im2col`, :mod:`~dse.lowering.kn2row`,
:mod:`~dse.lowering.winograd`, :mod:`~dse.lowering.fft`) says, for its algorithm:

* ``legal(g, unit)`` -- whether the datapath can run the layer (``RULE`` says why not), and
  ``DATAFLOWS``, the dataflows it runs the algorithm in;
* ``lower(g, unit, rows, cols, dataflow, n=None)`` -- the GEMMs of one datapath invocation
  (:class:`Lowered`): their shape M×K×N and count, the invocations (one per group), the
  vectors each stream moves, the words the invocation writes, and the cycles of the front
  and back units around the array;
* ``cycles(low, rows, cols, dataflow)`` -- the invocation's cycles on the conv datapath
  (``rtl/conv_datapath.py``), whole and per unit counter, exactly as the RTL counts them.

Every function takes a :class:`Geometry` whose members are either Python integers (the
compiler: one layer, :meth:`Geometry.of_layer`) or broadcasting numpy/torch arrays (the
explorer: every layer × choice × hardware point at once, :meth:`Geometry.of_table`), and
uses only arithmetic, ``//`` and ``xp.maximum``/``xp.where``, so one formula serves both.
The explorer's per-layer ``compute_cycles`` *is* :func:`layer_cycles` within the overlay's
buffers, and ``omniconv verify`` checks the same numbers against Verilator.

:data:`LOWERINGS` maps each algorithm of the conv datapath to its module.
:mod:`~dse.lowering.sparse_fft` (pruned spectral convolution) is not on the conv datapath:
the FFT unit's transforms around the sparse MAC unit, with ``legal`` and ``DATAFLOWS`` as
above but ``cycles(g, unit, lanes, banks, nnz)`` over the layer's expected stall-free
schedule (no GEMMs, no invocations to split); :data:`SPARSE_LOWERINGS` holds it (the cost
model's), and :func:`lowering` (the compiler's) still refuses it: the datapath lacks it.
"""

from __future__ import annotations

import numpy as np

from dse.lowering import fft, im2col, kn2row, sparse_fft, winograd
from dse.lowering.geometry import Geometry, Lowered
from rtl.params import Algorithm

__all__ = ["LOWERINGS", "SPARSE_LOWERINGS", "Geometry", "Lowered", "lowering", "layer_cycles"]

#: Algorithm → its lowering module on the conv datapath.
LOWERINGS = {
    Algorithm.IM2COL: im2col,
    Algorithm.KN2ROW: kn2row,
    Algorithm.WINOGRAD: winograd,
    Algorithm.FFT: fft,
}

#: Algorithms beside the conv datapath → their lowering module.
SPARSE_LOWERINGS = {Algorithm.SPARSE_FFT: sparse_fft}


def lowering(algorithm):
    """The lowering module of ``algorithm`` (a name or :class:`Algorithm`)."""
    algo = Algorithm(algorithm)
    if algo not in LOWERINGS:
        raise ValueError(f"{algo.value} has no lowering of its own (dse.lowering.sparse_fft "
                         f"prices it on the FFT path's shapes)")
    return LOWERINGS[algo]


def layer_cycles(algorithm, g: Geometry, unit, rows, cols, dataflow, xp=np, lanes=1,
                 limits=None, requant_latency=None) -> dict:
    """Cycles of a whole layer: every invocation of :func:`lower` run through :func:`cycles`,
    summed -- one per group, or, within ``limits`` (``rtl.params.DatapathLimits`` fields, the
    overlay's buffers), the filter chunks and row bands of :mod:`dse.lowering.split`.  Returns
    the dict of counters (``cycles``, ``gemm_cycles``, ``front_cycles``, ``back_cycles``,
    ``requant_cycles``, ``gemms``), the first invocation's :class:`Lowered` under
    ``"lowered"``, the layer's ``"macs_needed"`` and the ``"split"``.  ``lanes``: the
    Winograd unit's output transforms (``OverlayParams.winograd_lanes``); ``unit`` for im2col
    is 1 from host patches, else 0.
    """
    from dse.lowering.split import split_cycles

    extra = {} if requant_latency is None else {"requant_latency": requant_latency}
    return split_cycles(algorithm, g, unit, rows, cols, dataflow, limits, xp, lanes, **extra)
