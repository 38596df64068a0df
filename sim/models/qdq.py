"""onnxruntime's int8 requantisation, exactly, and the integer form the hardware can run.

A QDQ model (``onnxruntime.quantization.quantize_static``) runs a quantised convolution as
QLinearConv, whose output is::

    scale = fl(fl(x_scale · w_scale[c]) / y_scale)                 # float32, left to right
    v     = fl(fl(acc + bias) · scale)                             # int32 -> float32, × scale
    y     = clamp(round_half_even(v), qmin − zp, qmax − zp) + zp   # saturate to u8 / s8

(``fl`` rounds to float32, half to even).  Two roundings happen before the final one: the
int32 accumulator becomes a float32 (24 significant bits) and the product is rounded to 24
significant bits again.  A fixed-point requantiser with one rounding (gemmlowp's
``round(acc · M / 2^s)``) differs on a fraction of a percent of outputs; this module's
integer requantiser (:func:`requantize_exact`) reproduces both float32 roundings with integer
operations only -- what an RTL requantiser can do:

1. round ``acc`` to 24 significant bits, half to even (its float32 value, an integer);
2. multiply by the scale's 24-bit mantissa ``m`` (``scale = m · 2^e``, exact);
3. round the product to 24 significant bits, half to even (the float32 product
   ``q · 2^(e + d)``, ``d`` the bits dropped);
4. shift right by ``−(e + d)`` rounding half to even (left where that is negative), clamp,
   add the zero point.

:func:`requantize_float32` is the float32 emulation in numpy (the reference the tests hold
the integer form to, and onnxruntime itself in ``tests/models/test_qdq_model.py``).
Scales must be normal positive float32 numbers, accumulators int32.
"""

from __future__ import annotations

import numpy as np

__all__ = ["output_scale", "scale_parts", "requantize_float32", "requantize_exact",
           "round_bits_half_even", "shift_half_even", "bit_length", "quant_range"]

#: Significant bits of a float32 (the hidden one included).
MANTISSA_BITS = 24


def quant_range(dtype) -> tuple[int, int]:
    """``(qmin, qmax)`` of ``uint8`` or ``int8``."""
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.uint8), np.dtype(np.int8)):
        raise ValueError(f"dtype must be uint8 or int8, not {dt}")
    info = np.iinfo(dt)
    return int(info.min), int(info.max)


def output_scale(x_scale, w_scale, y_scale) -> np.ndarray:
    """The float32 requantisation scale(s) onnxruntime's QLinearConv computes:
    ``(x_scale · w_scale) / y_scale`` in float32, left to right; ``w_scale`` per channel or
    per tensor."""
    xs, ws, ys = (np.asarray(v, dtype=np.float32) for v in (x_scale, w_scale, y_scale))
    for name, v in (("x_scale", xs), ("w_scale", ws), ("y_scale", ys)):
        if not np.all(np.isfinite(v) & (v > 0)):
            raise ValueError(f"{name} must be positive and finite, not {v}")
    return np.asarray((xs * ws) / ys, dtype=np.float32)


def scale_parts(scale) -> tuple[np.ndarray, np.ndarray]:
    """``(m, e)`` with ``scale = m · 2^e`` exactly, ``2^23 ≤ m < 2^24`` (int64 arrays): the
    mantissa and exponent the requantiser is programmed with."""
    s = np.asarray(scale, dtype=np.float32)
    tiny = np.finfo(np.float32).tiny
    if not np.all(np.isfinite(s) & (s >= tiny)):
        raise ValueError(f"scale must be a normal positive float32, not {s}")
    frac, exp = np.frexp(s.astype(np.float64))            # s = frac · 2^exp, frac in [½, 1)
    m = np.ldexp(frac, MANTISSA_BITS).astype(np.int64)    # exact: 24 significant bits
    return m, exp.astype(np.int64) - MANTISSA_BITS


def requantize_float32(acc, scale, zero_point, dtype=np.uint8) -> np.ndarray:
    """onnxruntime's requantisation emulated in numpy float32 (module docstring): ``acc``
    the int32 accumulators with the bias added; ``scale`` float32 (broadcasting);
    returns int64 values in ``dtype``'s range."""
    qmin, qmax = quant_range(dtype)
    zp = np.asarray(zero_point, dtype=np.int64)
    v = np.asarray(acc, dtype=np.int64).astype(np.float32) * np.asarray(scale, np.float32)
    v = np.clip(v, (qmin - zp).astype(np.float32), (qmax - zp).astype(np.float32))
    return np.rint(v).astype(np.int64) + zp               # rint: half to even


def shift_half_even(x, s) -> np.ndarray:
    """``x / 2^s`` rounded half to even, for integer arrays and shifts ``s ≥ 0``
    (``s = 0``: ``x``)."""
    x = np.asarray(x, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64)
    if np.any(s < 0):
        raise ValueError(f"shift must be non-negative, not {s.min()}")
    s = np.minimum(s, 62)
    q = x >> s
    rem = x - (q << s)
    half = np.where(s > 0, np.left_shift(1, np.maximum(s - 1, 0)), 1)
    up = (rem > half) | ((rem == half) & ((q & 1) == 1))
    return np.where(s > 0, q + up, x)


def round_bits_half_even(x, bits: int = MANTISSA_BITS) -> tuple[np.ndarray, np.ndarray]:
    """``(q, d)`` with ``q · 2^d`` the value of ``x`` rounded to ``bits`` significant bits,
    half to even (``d`` ≥ 0 the bits dropped; ``q`` may reach ``2^bits`` when rounding
    carries)."""
    x = np.asarray(x, dtype=np.int64)
    d = np.maximum(bit_length(x) - bits, 0)
    return shift_half_even(x, d), d


def bit_length(x) -> np.ndarray:
    """Bit length of ``|x|`` (0 for 0), elementwise, for ``|x| < 2^63``."""
    mag = np.abs(np.asarray(x, dtype=np.int64))
    width = np.zeros_like(mag)
    for b in (32, 16, 8, 4, 2, 1):
        big = (mag >> (width + b)) > 0
        width = width + np.where(big, b, 0)
    return np.where(mag > 0, width + 1, 0)


def requantize_exact(acc, mantissa, exponent, zero_point, dtype=np.uint8) -> np.ndarray:
    """The integer requantiser (module docstring): equal to :func:`requantize_float32` with
    ``scale = mantissa · 2^exponent`` for every int32 ``acc``; integer operations only.
    Returns int64 values in ``dtype``'s range."""
    qmin, qmax = quant_range(dtype)
    acc = np.asarray(acc, dtype=np.int64)
    if np.any((acc < -(1 << 31)) | (acc >= (1 << 31))):
        raise ValueError("acc must be int32")
    m = np.asarray(mantissa, dtype=np.int64)
    if np.any((m < (1 << (MANTISSA_BITS - 1))) | (m >= (1 << MANTISSA_BITS))):
        raise ValueError(f"mantissa must be in [2^23, 2^24), not {m}")
    e = np.asarray(exponent, dtype=np.int64)
    zp = np.asarray(zero_point, dtype=np.int64)
    a_q, a_d = round_bits_half_even(acc)                  # fl32(acc) = a_q · 2^a_d
    p_q, p_d = round_bits_half_even(a_q * m)              # < 2^49: exact in int64
    shift = e + a_d + p_d                                 # fl32(acc · scale) = p_q · 2^shift
    right = shift_half_even(p_q, np.maximum(-shift, 0))
    # a left shift only for scales ≥ 1 (rare): clamp first so the shift cannot overflow
    left = np.clip(p_q, -(1 << 20), 1 << 20) << np.clip(shift, 0, 20)
    v = np.where(shift < 0, right, left)
    return np.clip(v, qmin - zp, qmax - zp) + zp
