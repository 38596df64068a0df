"""Exact cycle count of one GEMM on the RTL GEMM engine (``rtl/gemm_engine.py``), per dataflow.

``gemm_cycles`` is what the engine's ``cycles`` register measures: the busy cycles from the
cycle after the start handshake to the last write of C into the result buffer, with A and B
already on chip (loading and draining overlap with compute through double buffering).  The
tests run the RTL in simulation and require equality for every tested shape, array and
dataflow.  Derivation: docs/rtl.md, "Cycle formula".

The engine walks ``tiles`` tiles; each occupies a slot of ``T + rows − 1`` cycles, where T is
the temporal extent of the dataflow (SCALE-Sim's assignment)::

    dataflow   spatial rows × cols     temporal T   tiles
    ws (0)     K × N                   M            ⌈K/rows⌉ · ⌈N/cols⌉
    os (1)     M × N                   K            ⌈M/rows⌉ · ⌈N/cols⌉
    is (2)     K × M                   N            ⌈K/rows⌉ · ⌈M/cols⌉

The ``rows − 1`` extra cycles per slot let the next tile's stationary operand be preloaded
(ws, is) or the finished accumulators be drained (os) underneath the current tile.  Once per
GEMM come the pipeline fill and drain: ``rows + cols + mult_latency + 3`` cycles, plus one
for the first stationary preload in ws and is.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT_MULT_LATENCY", "gemm_cycles", "gemm_cycle_breakdown"]

#: Multiplier register stages of the engine's default PE (``rtl.dsp.DEFAULT_LATENCY``).
DEFAULT_MULT_LATENCY = 3


def _cdiv(a, b):
    return -(-a // b)


def gemm_cycle_breakdown(m, k, n, rows, cols, dataflow, xp=np,
                         mult_latency=DEFAULT_MULT_LATENCY):
    """Return the parts of the engine's cycles for C[m×n] = A[m×k]·B[k×n].

    Parameters
    ----------
    m, k, n:
        GEMM shape (integers >= 1), arrays or scalars; all arguments broadcast.
    rows, cols:
        Systolic array shape.
    dataflow:
        Integer code of :class:`rtl.params.Dataflow` (0 ws, 1 os, 2 is).
    xp:
        Array namespace (``numpy`` or ``torch``); only ``where``, ``//`` and arithmetic are
        used, so torch tensors (CPU or GPU) work unchanged.
    mult_latency:
        Register stages of the PE multiplier (0 … 4; the engine's default is 3).

    Returns
    -------
    dict
        ``tiles`` (tiles walked), ``steady`` (cycles with one vector streamed each:
        tiles · T), ``fill_drain`` (all other cycles: per-tile preload/drain slack of
        rows − 1 and the once-per-GEMM pipeline fill and drain) and ``cycles`` (their sum,
        equal to :func:`gemm_cycles`).
    """
    is_ws = dataflow == 0
    is_os = dataflow == 1
    is_is = dataflow == 2
    spatial_r = xp.where(is_os, m, k)
    spatial_c = xp.where(is_is, m, n)
    temporal = xp.where(is_ws, m, xp.where(is_os, k, n))
    tiles = _cdiv(spatial_r, rows) * _cdiv(spatial_c, cols)
    steady = tiles * temporal
    # The ws/is engine spends its first `rows` cycles preloading tile 0's stationary operand
    # before any vector streams; os needs none, hence the one-cycle difference (docs/rtl.md).
    once = rows + cols + mult_latency + 3 + xp.where(is_os, 0, 1)
    fill_drain = tiles * (rows - 1) + once
    return {"tiles": tiles, "steady": steady, "fill_drain": fill_drain,
            "cycles": steady + fill_drain}


def gemm_cycles(m, k, n, rows, cols, dataflow, xp=np, mult_latency=DEFAULT_MULT_LATENCY):
    """Return the engine's cycles of C[m×n] = A[m×k]·B[k×n] on a rows×cols array.

    Broadcasts over array arguments of the namespace ``xp`` (numpy or torch).  ``dataflow``
    is the integer code of :class:`rtl.params.Dataflow` (0 ws, 1 os, 2 is).  Equal to the
    ``cycles`` register of ``rtl.gemm_engine.GemmEngine`` (see the module docstring).
    """
    return gemm_cycle_breakdown(m, k, n, rows, cols, dataflow, xp, mult_latency)["cycles"]
