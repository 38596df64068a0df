"""Quantised (QDQ) networks on the overlay: the stored form and the per-channel entries.

A QDQ model (``dse.importers.onnx_qdq``) has uint8 activations ``q`` with a scale ``s`` and a
zero point ``z`` (``real = s · (q − z)``), per-channel int8 weights and int32 biases.  The
overlay multiplies signed 8-bit operands, so every activation tensor is held in DRAM and in
the buffers in the **stored form** ``q − 128`` (int8; the order of values is kept, so a max
pool runs unchanged).  A conv or fc layer's accumulator over the stored inputs ``x'`` is

    Σ (x − z_x)·w + bias = Σ x'·w + (128 − z_x)·Σ w + bias

over every tap, padding included, when the padding holds ``z_x − 128`` (the input's zero
point, so that ``x − z_x`` is 0 there, as onnxruntime pads).  So the compiler folds
``(128 − z_x)·Σw`` into each channel's bias (:func:`channel_quant`), and the layer's padding
boxes read an area of ``z_x − 128`` bytes (``ChannelQuant.pad``).  The requantiser
(``rtl/requant_channels.py``) then computes onnxruntime's QLinearConv output with the scale
``fl(fl(s_x · s_w[c]) / s_y)`` and writes it in the stored form (zero point ``z_y − 128``).

The host's side: :func:`quantize_input` is the graph input's QuantizeLinear
(``sat(rint(fl(x / s)) + z)``, a true float32 division, as onnxruntime), and
:func:`dequantize_output` the graph output's DequantizeLinear (``fl((q − z) · s)``).
"""

from __future__ import annotations

import numpy as np

from dse.compiler.program import ChannelQuant
from rtl.params import FLOAT32_MANTISSA_BITS as _MANTISSA_BITS

__all__ = ["STORED_OFFSET", "scale_parts", "requant_scale", "channel_quant", "gap_requant",
           "concat_lut", "quantize_input", "dequantize_output", "to_stored", "from_stored"]

#: uint8 value − stored int8 value.
STORED_OFFSET = 128


def scale_parts(scale) -> tuple[np.ndarray, np.ndarray]:
    """``(m, e)`` with ``scale = m · 2^e`` exactly, ``2^23 ≤ m < 2^24``: the mantissa and
    exponent of positive normal float32 scales, as the requantiser takes them."""
    s = np.asarray(scale, dtype=np.float32)
    if not np.all(np.isfinite(s) & (s >= np.finfo(np.float32).tiny)):
        raise ValueError(f"scale must be a normal positive float32, not {s}")
    frac, exp = np.frexp(s.astype(np.float64))            # exact: s = frac · 2^exp
    return (np.ldexp(frac, _MANTISSA_BITS).astype(np.int64),
            exp.astype(np.int64) - _MANTISSA_BITS)


def requant_scale(x_scale, w_scale, y_scale) -> np.ndarray:
    """onnxruntime's QLinearConv scale per channel: ``(x_scale · w_scale) / y_scale``, each
    operation rounded to float32 (numpy's float32 arithmetic is IEEE 754's)."""
    xs, ws, ys = (np.asarray(v, dtype=np.float32) for v in (x_scale, w_scale, y_scale))
    return np.asarray((xs * ws) / ys, dtype=np.float32)


def channel_quant(record) -> ChannelQuant:
    """The :class:`~dse.compiler.program.ChannelQuant` of a conv or fc layer's
    ``dse.importers.onnx_qdq.ConvQuant`` (module docstring): the bias with
    ``(128 − z_x)·Σw`` folded in, the scale's parts, the output zero point and the padding
    in the stored form.  Raises ValueError where a folded bias leaves int32."""
    w = np.asarray(record.weight, dtype=np.int64)
    n = w.shape[0]
    if np.any(np.asarray(record.weight_zero_point) != 0):
        raise ValueError("weight zero points must be 0 (symmetric int8 weights)")
    zx = int(record.x.zero_point)
    bias = (np.asarray(record.bias, dtype=np.int64)
            + (STORED_OFFSET - zx) * w.reshape(n, -1).sum(axis=1))
    if np.any((bias < -(1 << 31)) | (bias >= 1 << 31)):
        raise ValueError("a bias with the input zero point folded in leaves int32")
    scale = requant_scale(record.x.scale, record.weight_scale, record.y.scale)
    m, e = scale_parts(np.broadcast_to(scale, (n,)))
    zy = int(record.y.zero_point) - STORED_OFFSET
    return ChannelQuant(tuple(int(v) for v in bias), tuple(int(v) for v in m),
                        tuple(int(v) for v in e), (zy,) * n, pad=zx - STORED_OFFSET)


def gap_requant(x_scale, x_zp: int, y_scale, y_zp: int, n: int) -> dict:
    """The ``pool.requant`` fields of a global average pool over ``n`` pixels
    (QLinearGlobalAveragePool): ``Σ x − z_x·n`` requantised with the scale
    ``fl(s_x / fl(s_y · n))``; over stored values the sum needs the bias ``(128 − z_x)·n``.
    Signed fields in two's complement.  Raises ValueError outside the range onnxruntime
    accepts (scale in [2^-32, 256), n < 2^24)."""
    scale = np.float32(x_scale) / (np.float32(y_scale) * np.float32(n))
    if n >= 1 << 24 or not 2.0 ** -32 <= float(scale) < 256.0:
        raise ValueError(f"a global average pool's scale {float(scale)} or size {n} is "
                         f"outside the range onnxruntime accepts ([2^-32, 256), size < 2^24)")
    m, e = scale_parts(scale)
    bias = (STORED_OFFSET - int(x_zp)) * int(n)
    return {"bias": bias & 0xFFFF_FFFF, "mantissa": int(m), "exponent": int(e) & 0x1FF,
            "zero_point": (int(y_zp) - STORED_OFFSET) & 0xFF}


def concat_lut(x, y) -> tuple | None:
    """The pool engine's ``lut`` table that requantises a concatenation's input of
    quantisation ``x`` (``dse.importers.onnx_qdq.TensorQuant``) to the output's ``y``, as
    onnxruntime's QLinearConcat (a DequantizeLinear, then a QuantizeLinear, in float32):
    per uint8 value ``q`` the stored form of ``sat(rint(fl(fl((q − z_x)·s_x) / s_y)) + z_y)``
    -- None where ``x`` equals ``y`` (the input is copied, so written in place)."""
    if np.float32(x.scale) == np.float32(y.scale) and int(x.zero_point) == int(y.zero_point):
        return None
    real = dequantize_output(np.arange(256), x.scale, x.zero_point)
    return tuple(int(v) for v in to_stored(quantize_input(real, y.scale, y.zero_point)))


def quantize_input(x, scale: float, zero_point: int) -> np.ndarray:
    """The graph input's QuantizeLinear, as onnxruntime computes it: uint8
    ``sat(rint(fl(x / scale)) + zero_point)`` (float32 division, ties to even)."""
    q = np.rint(np.asarray(x, dtype=np.float32) / np.float32(scale)).astype(np.int64)
    return np.clip(q + int(zero_point), 0, 255).astype(np.uint8)


def dequantize_output(q, scale: float, zero_point: int) -> np.ndarray:
    """The graph output's DequantizeLinear: float32 ``(q − zero_point) · scale``."""
    diff = (np.asarray(q, dtype=np.int64) - int(zero_point)).astype(np.float32)
    return (diff * np.float32(scale)).astype(np.float32)


def to_stored(q) -> np.ndarray:
    """uint8 values in the stored form (int64 ``q − 128``)."""
    return np.asarray(q, dtype=np.int64) - STORED_OFFSET


def from_stored(v) -> np.ndarray:
    """Stored values as uint8."""
    return (np.asarray(v, dtype=np.int64) + STORED_OFFSET).astype(np.uint8)
