"""Cycle model of one GEMM on the systolic array, per dataflow.

PROVISIONAL: the RTL issue replaces this with the exact formula of ``rtl/`` and tests that
simulation equals it.  The function signature is the contract the explorer codes against.
"""

from __future__ import annotations

import numpy as np

__all__ = ["gemm_cycles"]


def _cdiv(a, b):
    return -(-a // b)


def gemm_cycles(m, k, n, rows, cols, dataflow, xp=np):
    """Return cycles of C[m×n] = A[m×k]·B[k×n] on a rows×cols array (broadcasting).

    ``dataflow`` is the integer code of :class:`rtl.params.Dataflow` (0 ws, 1 os, 2 is).
    All arguments are integer arrays (or scalars) of the namespace ``xp`` (numpy or torch).
    """
    # spatial (s_r along rows, s_c along cols) and temporal extents per dataflow
    s_r = xp.where(dataflow == 1, m, k)
    s_c = xp.where(dataflow == 2, m, n)
    t = xp.where(dataflow == 0, m, xp.where(dataflow == 1, k, n))
    folds = _cdiv(s_r, rows) * _cdiv(s_c, cols)
    return folds * (2 * rows + cols + t - 2)
