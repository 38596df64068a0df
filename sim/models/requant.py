"""Requantisation: out = sat(round(acc · mult / 2^shift)), optional ReLU; exact integers.

Rounding is round-half-up, done as the hardware does it: add 2^(shift−1), then shift right
arithmetically (floor).  Saturation clamps to the signed ``out_bits`` range; ReLU clamps
negatives to zero after that.  ``mult`` and ``shift`` broadcast against ``acc``, so a
per-channel requantisation passes arrays shaped like the channel axis.
"""

from __future__ import annotations

import numpy as np

__all__ = ["requantize"]


def requantize(acc, mult, shift, out_bits: int = 8, relu: bool = False) -> np.ndarray:
    """Requantise accumulators (any integer array) exactly; returns int64.

    Products that could exceed int64 (e.g. 48-bit accumulators × 32-bit multipliers) are
    evaluated in Python integers.
    """
    acc = np.asarray(acc)
    mult = np.asarray(mult)
    shift = np.asarray(shift)
    if np.any(shift < 0):
        raise ValueError(f"shift must be non-negative, not {shift.min()}")
    big = (int(np.abs(acc).max(initial=0)).bit_length()
           + int(np.abs(mult).max(initial=0)).bit_length() + 2) > 62
    dt = object if big else np.int64
    prod = acc.astype(dt) * mult.astype(dt)
    sh = shift.astype(dt)
    half = np.where(shift > 0, np.left_shift(np.ones_like(sh), np.maximum(sh - 1, 0)), 0)
    rounded = (prod + half.astype(dt)) >> sh
    lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    out = np.clip(rounded, lo, hi).astype(np.int64)
    if relu:
        out = np.maximum(out, 0)
    return out
