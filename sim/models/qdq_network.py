"""A whole QDQ-quantised ONNX network, run exactly as onnxruntime runs it, in integers.

``onnxruntime.quantization.quantize_static`` (QDQ format, uint8 activations, per-channel int8
weights, int32 bias) writes float ops wrapped in QuantizeLinear / DequantizeLinear pairs;
onnxruntime's default session fuses each group into one quantised kernel.  This module
recognises the same groups and computes each kernel's output value for value, with integer
operations only: where onnxruntime computes in float32, the float32 operations (their
roundings included) are reproduced on integer pairs ``(q, e)``, value ``q · 2^e`` with
``|q| < 2^24`` (:func:`f32_mul`, :func:`f32_add`, :func:`f32_fma`, :func:`f32_div`,
:func:`f32_rint`: exact integer products and sums rounded to 24 significant bits, half to
even, as IEEE 754 binary32 does).  ``fl(·)`` below is one such rounding, ``rint`` rounds half
to even, ``sat`` clamps to uint8 [0, 255].

The ops (fused kernel in brackets) and their formulas:

* graph input QuantizeLinear: ``q = sat(rint(fl(x / s)) + zp)`` (a true division, not a
  multiplication by ``1/s``);
* DequantizeLinear -> Conv [-> Relu/Clip] -> QuantizeLinear (QLinearConv), and Gemm / MatMul
  with a constant int8 weight (QGemm, QLinearMatMul): the exact integer accumulator
  ``acc = Σ (x − x_zp)(w − w_zp) + bias`` requantised by
  :func:`sim.models.qdq.requantize_exact` with the scale ``fl(fl(x_s · w_s[c]) / y_s)``;
* Add of two dequantised tensors (QLinearAdd, MLAS's AVX2 kernel): ``r_a = fl(s_a / s_c)``,
  ``r_b = fl(s_b / s_c)``, ``F = fl(zp_c − fma(r_a, zp_a, fl(r_b · zp_b)))`` (the compiler
  contracts ``r_a·zp_a + r_b·zp_b`` into one fused multiply-add), then per element
  ``c = sat(rint(fma(a, r_a, fma(b, r_b, F))))`` with ``a``, ``b`` the raw uint8 values and
  ``fma`` rounded once;
* Concat (QLinearConcat): each input through a 256-entry table,
  ``T[i] = sat(rint(fl(fl(s_x · (i − zp_x)) / s_y)) + zp_y)`` (a copy where scale and zero
  point equal the output's);
* MaxPool: the maximum of the uint8 values in the window (padding never wins), no
  requantisation (onnxruntime drops the Q/DQ pair; input and output scale must match);
* AveragePool (QLinearAveragePool): ``d_i = fl(s_x · (x_i − zp_x))``, summed in float32 in
  window order (rows, then columns; padding skipped), ``m = fl(sum / n)`` with ``n`` the
  kernel size (``count_include_pad``) or the number of valid taps, then
  ``y = sat(rint(fl(fl(m / s_y) + zp_y)))``.  A kernel covering the whole unpadded map takes
  the global path below, as onnxruntime does;
* GlobalAveragePool (QLinearGlobalAveragePool): ``acc = Σ x − zp_x · N`` (exact), requantised
  like a convolution with the scale ``fl(s_x / fl(s_y · N))``;
* Flatten / Reshape: the uint8 tensor reshaped (input and output scale must match);
* graph output DequantizeLinear: ``y = fl((q − zp) · s)`` returned as float32.

Relu or Clip between a kernel and its QuantizeLinear is accepted where onnxruntime removes
it (Relu: output zero point 0; Clip: its range contains the QuantizeLinear's range), so the
saturation does the clipping.  Anything else -- another op, int8 activations (onnxruntime
does not fuse them by default), broadcasting adds, dilated or ``auto_pad`` pools -- raises
ValueError naming the node.

The float32 formulas were established against onnxruntime 1.32 (CPUExecutionProvider, x86-64
with AVX2/FMA) on constructed inputs where the candidate orderings disagree (docs/algorithms.md,
"Quantised (QDQ) networks: the golden model"); a build without FMA, or on ARM (whose NEON
global pool requantises in fixed point), can round QLinearAdd and the global pool otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .conv import conv2d
from .qdq import (
    MANTISSA_BITS,
    bit_length,
    output_scale,
    requantize_exact,
    round_bits_half_even,
    scale_parts,
    shift_half_even,
)

__all__ = [
    "QdqNetwork",
    "concat_table",
    "dequantize_output",
    "f32_add",
    "f32_div",
    "f32_fma",
    "f32_from_int",
    "f32_mul",
    "f32_parts",
    "f32_rint",
    "f32_value",
    "load",
    "max_pool",
    "qlinear_add",
    "qlinear_average_pool",
    "qlinear_global_average_pool",
    "quantize_input",
    "run",
]

# -- float32 arithmetic on integers -----------------------------------------------------------

#: Sum alignment keeps this many bits below the larger operand's top bit (fits int64).
_SPAN = 60


def _round(q, e) -> tuple[np.ndarray, np.ndarray]:
    """``q · 2^e`` (``|q| < 2^62``) rounded to 24 significant bits, half to even, as a pair
    with ``|q| < 2^24`` (a rounding that carries to 2^24 is renormalised: the other
    operations, the division's normalisation first, take at most 24 bits)."""
    r, d = round_bits_half_even(q)
    carry = np.abs(r) == 1 << MANTISSA_BITS
    return np.where(carry, r >> 1, r), np.asarray(e, dtype=np.int64) + d + carry


def f32_parts(x) -> tuple[np.ndarray, np.ndarray]:
    """``(q, e)`` with ``x = q · 2^e`` exactly, ``|q| < 2^24``, for float32 values (finite,
    normal or zero)."""
    x = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite float32 numbers")
    frac, exp = np.frexp(x.astype(np.float64))
    q = np.ldexp(frac, MANTISSA_BITS).astype(np.int64)
    return q, exp.astype(np.int64) - MANTISSA_BITS


def f32_value(a) -> np.ndarray:
    """The float32 array of a pair ``(q, e)`` (exact: the value is a float32)."""
    q, e = a
    return np.ldexp(np.asarray(q, dtype=np.float64), np.asarray(e)).astype(np.float32)


def f32_from_int(n) -> tuple[np.ndarray, np.ndarray]:
    """The float32 conversion of integers (``(float)n``), rounded half to even."""
    return _round(np.asarray(n, dtype=np.int64), 0)


def f32_mul(a, b) -> tuple[np.ndarray, np.ndarray]:
    """``fl(a · b)``: the exact 48-bit product rounded once."""
    return _round(np.asarray(a[0]) * np.asarray(b[0]), np.asarray(a[1]) + np.asarray(b[1]))


def _exact_sum(q1, e1, q2, e2) -> tuple[np.ndarray, np.ndarray]:
    """``q1·2^e1 + q2·2^e2`` (``|q| < 2^50``) as one integer pair that rounds like the exact
    sum: bits more than :data:`_SPAN` below the larger operand's top bit are folded into a
    sticky bit (they cannot reach the 24-bit rounding point, only break its ties)."""
    q1, e1, q2, e2 = np.broadcast_arrays(*(np.asarray(v, dtype=np.int64)
                                           for v in (q1, e1, q2, e2)))
    none = np.int64(-(1 << 40))
    t1 = np.where(q1 != 0, e1 + bit_length(q1), none)
    t2 = np.where(q2 != 0, e2 + bit_length(q2), none)
    top = np.maximum(t1, t2)
    base = np.maximum(np.minimum(np.where(q1 != 0, e1, top), np.where(q2 != 0, e2, top)),
                      top - _SPAN) - 1

    def aligned(q, e):
        k = e - base                                # ≥ 1: shift left; else fold below base
        left = np.abs(q) << np.clip(k, 0, 62)
        drop = np.clip(1 - k, 0, 62)                # bits below base + 1
        kept = np.abs(q) >> drop
        sticky = (np.abs(q) & ((np.int64(1) << drop) - 1)) != 0
        folded = (kept << 1) | sticky
        return np.sign(q) * np.where(k >= 1, left, folded)

    total = aligned(q1, e1) + aligned(q2, e2)
    return total, np.where(top == none, 0, base)


def f32_add(a, b) -> tuple[np.ndarray, np.ndarray]:
    """``fl(a + b)``."""
    return _round(*_exact_sum(a[0], a[1], b[0], b[1]))


def f32_fma(a, b, c) -> tuple[np.ndarray, np.ndarray]:
    """``fl(a · b + c)`` rounded once (a fused multiply-add)."""
    prod = np.asarray(a[0], dtype=np.int64) * np.asarray(b[0], dtype=np.int64)
    return _round(*_exact_sum(prod, np.asarray(a[1]) + np.asarray(b[1]), c[0], c[1]))


def f32_div(a, b) -> tuple[np.ndarray, np.ndarray]:
    """``fl(a / b)``, correctly rounded (``b`` non-zero)."""
    qa, ea = (np.asarray(v, dtype=np.int64) for v in a)
    qb, eb = (np.asarray(v, dtype=np.int64) for v in b)
    if np.any(qb == 0):
        raise ValueError("division by zero")
    # normalise both mantissas to exactly 24 bits, then a quotient of at least 26 bits
    na = np.where(qa != 0, MANTISSA_BITS - bit_length(qa), 0)
    nb = MANTISSA_BITS - bit_length(qb)
    num = (np.abs(qa) << na) << 26
    den = np.abs(qb) << nb
    quo, rem = np.divmod(num, den)
    jam = (quo << 1) | (rem != 0)                   # a sticky bit below the quotient
    sign = np.sign(qa) * np.sign(qb)
    return _round(sign * jam, (ea - na) - 26 - (eb - nb) - 1)


def f32_rint(a) -> np.ndarray:
    """The integer nearest to ``a``, ties to even (``nearbyintf``), as int64."""
    q, e = (np.asarray(v, dtype=np.int64) for v in a)
    right = shift_half_even(q, np.maximum(-e, 0))
    left = np.clip(q, -(1 << 24), 1 << 24) << np.clip(e, 0, 30)
    return np.where(e < 0, right, left)


def _sat(v) -> np.ndarray:
    return np.clip(v, 0, 255)


def _scalar_f32(s, what: str) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(s, dtype=np.float32)
    if s.size != 1 or not (np.isfinite(s) and s.reshape(()) > 0):
        raise ValueError(f"{what} must be one positive finite float32, not {s!r}")
    return f32_parts(s.reshape(()))


def _scale_mantissa(a) -> tuple[np.ndarray, np.ndarray]:
    """A positive pair ``(q, e)`` as :func:`sim.models.qdq.scale_parts` gives it
    (``2^23 ≤ m < 2^24``)."""
    return scale_parts(f32_value(a))


# -- the kernels ------------------------------------------------------------------------------

def quantize_input(x, scale, zero_point) -> np.ndarray:
    """QuantizeLinear of a float32 tensor to uint8: ``sat(rint(fl(x / s)) + zp)``."""
    return _sat(f32_rint(f32_div(f32_parts(x), _scalar_f32(scale, "scale")))
                + int(zero_point))


def dequantize_output(q, scale, zero_point) -> np.ndarray:
    """DequantizeLinear to float32: ``fl((q − zp) · s)``."""
    prod = f32_mul(f32_from_int(np.asarray(q, dtype=np.int64) - int(zero_point)),
                   _scalar_f32(scale, "scale"))
    return f32_value(prod)


def qlinear_add(a, a_scale, a_zp, b, b_scale, b_zp, c_scale, c_zp) -> np.ndarray:
    """QLinearAdd of two uint8 tensors of one shape (module docstring), as int64."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if a.shape != b.shape:
        raise ValueError(f"add operands must have one shape, not {a.shape} and {b.shape}")
    sc = _scalar_f32(c_scale, "c_scale")
    r_a = f32_div(_scalar_f32(a_scale, "a_scale"), sc)
    r_b = f32_div(_scalar_f32(b_scale, "b_scale"), sc)
    both = f32_fma(r_a, f32_from_int(int(a_zp)), f32_mul(r_b, f32_from_int(int(b_zp))))
    fixed = f32_add(f32_from_int(int(c_zp)), (-both[0], both[1]))
    inner = f32_fma(f32_from_int(b), r_b, fixed)
    return _sat(f32_rint(f32_fma(f32_from_int(a), r_a, inner)))


def concat_table(x_scale, x_zp, y_scale, y_zp) -> np.ndarray:
    """QLinearConcat's 256-entry requantisation table for one input (int64)."""
    d = f32_mul(_scalar_f32(x_scale, "x_scale"), f32_from_int(np.arange(256) - int(x_zp)))
    return _sat(f32_rint(f32_div(d, _scalar_f32(y_scale, "y_scale"))) + int(y_zp))


def _pool_geometry(size, kernel, stride, pad_begin, pad_end, ceil_mode):
    """Output length and the (start, end) taps of each window along one axis (ONNX
    output size; windows clipped to the input as onnxruntime clips them)."""
    span = size + pad_begin + pad_end - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1
    starts = np.arange(out) * stride - pad_begin
    ends = np.minimum(starts + kernel, size)
    return out, np.maximum(starts, 0), ends


def max_pool(x, kernel, strides, pads, ceil_mode=False) -> np.ndarray:
    """MaxPool over the two trailing axes of an integer array (``pads`` as ONNX orders them:
    top, left, bottom, right); padded taps never win."""
    x = np.asarray(x, dtype=np.int64)
    oh, hs, he = _pool_geometry(x.shape[-2], kernel[0], strides[0], pads[0], pads[2], ceil_mode)
    ow, ws, we = _pool_geometry(x.shape[-1], kernel[1], strides[1], pads[1], pads[3], ceil_mode)
    out = np.empty(x.shape[:-2] + (oh, ow), dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            out[..., i, j] = x[..., hs[i]:he[i], ws[j]:we[j]].max(axis=(-2, -1))
    return out


def qlinear_global_average_pool(x, x_scale, x_zp, y_scale, y_zp) -> np.ndarray:
    """QLinearGlobalAveragePool over the two trailing axes (keeps them as 1×1), as int64."""
    x = np.asarray(x, dtype=np.int64)
    n = x.shape[-1] * x.shape[-2]
    scale = f32_div(_scalar_f32(x_scale, "x_scale"),
                    f32_mul(_scalar_f32(y_scale, "y_scale"), f32_from_int(n)))
    value = f32_value(scale)
    if n >= 1 << 24 or not (2.0 ** -32 <= value < 256.0):
        raise ValueError(f"global average pool scale {value} or size {n} is outside the "
                         "range onnxruntime accepts ([2^-32, 256), size < 2^24)")
    acc = x.sum(axis=(-2, -1), keepdims=True) - int(x_zp) * n
    m, e = _scale_mantissa(scale)
    return requantize_exact(acc, m, e, int(y_zp), np.uint8)


def qlinear_average_pool(x, x_scale, x_zp, y_scale, y_zp, kernel, strides, pads,
                         ceil_mode=False, count_include_pad=False) -> np.ndarray:
    """QLinearAveragePool over the two trailing axes (module docstring), as int64."""
    x = np.asarray(x, dtype=np.int64)
    h, w = x.shape[-2:]
    if tuple(kernel) == (h, w) and not any(pads):
        return qlinear_global_average_pool(x, x_scale, x_zp, y_scale, y_zp)
    d = f32_mul(_scalar_f32(x_scale, "x_scale"), f32_from_int(x - int(x_zp)))
    oh, hs, he = _pool_geometry(h, kernel[0], strides[0], pads[0], pads[2], ceil_mode)
    ow, ws, we = _pool_geometry(w, kernel[1], strides[1], pads[1], pads[3], ceil_mode)
    shape = x.shape[:-2] + (oh, ow)
    total = (np.zeros(shape, np.int64), np.zeros(shape, np.int64))
    for ky in range(kernel[0]):
        for kx in range(kernel[1]):
            rows = hs[:, None] + ky + np.zeros(ow, np.int64)[None]
            cols = ws[None, :] + kx + np.zeros(oh, np.int64)[:, None]
            valid = (rows < he[:, None]) & (cols < we[None, :])
            r, c = np.minimum(rows, h - 1), np.minimum(cols, w - 1)
            tap = (np.where(valid, d[0][..., r, c], 0), np.where(valid, d[1][..., r, c], 0))
            total = f32_add(total, tap)             # invalid taps add an exact zero
    if count_include_pad:
        count = np.full((oh, ow), kernel[0] * kernel[1])
    else:
        count = (he - hs)[:, None] * (we - ws)[None, :]
    mean = f32_div(total, f32_from_int(count))
    v = f32_add(f32_div(mean, _scalar_f32(y_scale, "y_scale")), f32_from_int(int(y_zp)))
    return _sat(f32_rint(v))


# -- the graph --------------------------------------------------------------------------------

@dataclass
class _Q:
    """A quantised activation: uint8 values (int64 array), its scale and zero point."""
    values: np.ndarray
    scale: np.float32
    zp: int


@dataclass
class QdqNetwork:
    """A parsed QDQ model (:func:`load`); :meth:`run` evaluates it."""
    model: object
    inputs: list = field(default_factory=list)

    def run(self, x, intermediates: bool = False) -> dict[str, np.ndarray]:
        """Evaluate the network on ``x`` (an array for a single graph input, else a dict by
        input name): the graph outputs as onnxruntime returns them (float32 where the output
        is a DequantizeLinear, uint8 where it is a quantised tensor) and, with
        ``intermediates``, every quantised tensor by name (uint8) besides."""
        return _Runner(self.model, x).run(intermediates)


def load(model) -> QdqNetwork:
    """A :class:`QdqNetwork` from a path or an ``onnx.ModelProto``."""
    import onnx
    if isinstance(model, (str, Path)):
        model = onnx.load(str(model))
    if not isinstance(model, onnx.ModelProto):
        raise TypeError(f"model must be a path or an onnx.ModelProto, not {type(model)!r}")
    inits = {t.name for t in model.graph.initializer}
    return QdqNetwork(model, [i.name for i in model.graph.input if i.name not in inits])


def run(model, x, intermediates: bool = False) -> dict[str, np.ndarray]:
    """Run a QDQ model (path or ``onnx.ModelProto``) on ``x``; see :meth:`QdqNetwork.run`."""
    return load(model).run(x, intermediates)


def _attrs(node) -> dict:
    import onnx
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _name(node) -> str:
    return f"{node.op_type} node {node.name or node.output[0]!r}"


class _Runner:
    """One evaluation: walks the nodes in order, fusing the groups onnxruntime fuses."""

    _SKIP = object()

    def __init__(self, model, x):
        from onnx import numpy_helper
        g = model.graph
        self.graph = g
        self.consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        for n in g.node:
            if n.op_type == "Constant":
                self.consts[n.output[0]] = numpy_helper.to_array(_attrs(n)["value"])
        self.consumers: dict[str, list] = {}
        for n in g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        names = [i.name for i in g.input if i.name not in self.consts]
        feeds = x if isinstance(x, dict) else {names[0]: x} if len(names) == 1 else None
        if feeds is None or set(feeds) != set(names):
            raise ValueError(f"inputs must be given for {names}, not {x if feeds is None else list(feeds)}")
        self.floats = {k: np.asarray(v) for k, v in feeds.items()}
        self.q: dict[str, _Q] = {}
        self.dq: dict[str, str] = {}                # DequantizeLinear output -> quantised name
        self.wdq: dict[str, tuple] = {}             # dequantised constant -> (q, scale, zp, axis)
        self.done: set[int] = set()
        self.outputs_f: dict[str, np.ndarray] = {}  # graph outputs that are dequantised

    # helpers -----------------------------------------------------------------------------

    def _scale_zp(self, node, i_scale, i_zp):
        if node.input[i_scale] not in self.consts:
            raise ValueError(f"{_name(node)}: scale must be a constant")
        scale = self.consts[node.input[i_scale]]
        zp = (self.consts[node.input[i_zp]] if len(node.input) > i_zp and node.input[i_zp]
              else np.zeros((), np.uint8))
        return scale, zp

    def _act(self, node, name) -> _Q:
        if name not in self.dq:
            raise ValueError(f"{_name(node)}: input {name!r} is not a dequantised activation")
        return self.q[self.dq[name]]

    def _const(self, node, name):
        if name not in self.wdq:
            raise ValueError(f"{_name(node)}: input {name!r} is not a dequantised constant")
        return self.wdq[name]

    def _output_q(self, node):
        """The QuantizeLinear that takes ``node``'s output, through removable Relu / Clip
        nodes (onnxruntime's ReluQuantFusion / ClipQuantFusion); marks them done."""
        tensor, skipped = node.output[0], []
        while True:
            users = self.consumers.get(tensor, [])
            if len(users) != 1 or tensor in {o.name for o in self.graph.output}:
                raise ValueError(f"{_name(node)}: output must feed exactly one QuantizeLinear")
            user = users[0]
            if user.op_type == "QuantizeLinear":
                break
            if user.op_type not in ("Relu", "Clip"):
                raise ValueError(f"{_name(node)}: output feeds {_name(user)}, not a "
                                 "QuantizeLinear")
            skipped.append(user)
            tensor = user.output[0]
        scale, zp = self._scale_zp(user, 1, 2)
        if zp.dtype != np.uint8:
            raise ValueError(f"{_name(user)}: activations must be uint8, not {zp.dtype}")
        s, z = np.float32(scale.reshape(())), int(zp.reshape(()))
        for act in skipped:
            self._check_removable(act, s, z)
            self.done.add(id(act))
        self.done.add(id(user))
        return user.output[0], s, z

    def _check_removable(self, act, s, z):
        if act.op_type == "Relu":
            if z != 0:
                raise ValueError(f"{_name(act)}: a Relu is only folded into an output zero "
                                 f"point of 0, not {z}")
            return
        lo = (self.consts.get(act.input[1]) if len(act.input) > 1 and act.input[1] else None)
        hi = (self.consts.get(act.input[2]) if len(act.input) > 2 and act.input[2] else None)
        a = _attrs(act)
        lo = np.float32(lo if lo is not None else a.get("min", -np.inf))
        hi = np.float32(hi if hi is not None else a.get("max", np.inf))
        low, high = np.float32((0 - z) * s), np.float32((255 - z) * s)
        eps = np.finfo(np.float32).eps
        if eps < lo - low or eps < high - hi:
            raise ValueError(f"{_name(act)}: a Clip is only folded where its range "
                             f"[{lo}, {hi}] contains the output range [{low}, {high}]")

    def _store(self, name, values, s, z):
        self.q[name] = _Q(np.asarray(values, dtype=np.int64), np.float32(s), int(z))

    # the walk ----------------------------------------------------------------------------

    def run(self, intermediates):
        for node in self.graph.node:
            if id(node) in self.done or node.op_type == "Constant":
                continue
            handler = getattr(self, f"_op_{node.op_type}", None)
            if handler is None:
                raise ValueError(f"{_name(node)}: op {node.op_type} is not supported")
            handler(node)
        out = {}
        for o in self.graph.output:
            if o.name in self.q:
                out[o.name] = self.q[o.name].values.astype(np.uint8)
            elif o.name in self.outputs_f:
                out[o.name] = self.outputs_f[o.name]
            else:
                raise ValueError(f"graph output {o.name!r} is neither a quantised tensor nor "
                                 "a DequantizeLinear of one")
        if intermediates:
            for k, v in self.q.items():
                out.setdefault(k, v.values.astype(np.uint8))
        return out

    def _op_QuantizeLinear(self, node):
        src = node.input[0]
        if src not in self.floats:
            raise ValueError(f"{_name(node)}: only graph inputs are quantised on their own; "
                             f"{src!r} is not one")
        scale, zp = self._scale_zp(node, 1, 2)
        if zp.dtype != np.uint8 or scale.size != 1:
            raise ValueError(f"{_name(node)}: activations must be uint8 per tensor")
        x = self.floats[src].astype(np.float32)
        self._store(node.output[0], quantize_input(x, scale, zp.reshape(())),
                    scale.reshape(()), zp.reshape(()))

    def _op_DequantizeLinear(self, node):
        src = node.input[0]
        scale, zp = self._scale_zp(node, 1, 2)
        if src in self.consts:
            axis = _attrs(node).get("axis", 1)
            self.wdq[node.output[0]] = (self.consts[src], scale, zp, axis)
            return
        if src in self.floats:                      # a uint8 graph input
            if self.floats[src].dtype != np.uint8 or zp.dtype != np.uint8:
                raise ValueError(f"{_name(node)}: graph input {src!r} must be uint8")
            self._store(src, self.floats[src], scale.reshape(()), zp.reshape(()))
        if src not in self.q:
            raise ValueError(f"{_name(node)}: {src!r} is not a quantised tensor")
        t = self.q[src]
        if scale.size != 1 or np.float32(scale.reshape(())) != t.scale or int(zp.reshape(())) != t.zp:
            raise ValueError(f"{_name(node)}: scale and zero point must be those of the "
                             f"QuantizeLinear that made {src!r}")
        self.dq[node.output[0]] = src
        if node.output[0] in {o.name for o in self.graph.output}:
            self.outputs_f[node.output[0]] = dequantize_output(t.values, t.scale, t.zp)

    def _op_Conv(self, node):
        a = _attrs(node)
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise ValueError(f"{_name(node)}: auto_pad is not supported; give explicit pads")
        x = self._act(node, node.input[0])
        w, w_s, w_zp, _ = self._const(node, node.input[1])
        if w.ndim != 4:
            raise ValueError(f"{_name(node)}: only 2-D convolutions are supported")
        pads = list(a.get("pads", [0, 0, 0, 0]))
        xv = x.values - x.zp
        xv = np.pad(xv, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
        wv = w.astype(np.int64) - np.asarray(w_zp, np.int64).reshape(-1, 1, 1, 1)
        acc = np.stack([conv2d(img, wv, stride=tuple(a.get("strides", [1, 1])),
                               dilation=tuple(a.get("dilations", [1, 1])),
                               groups=int(a.get("group", 1))) for img in xv])
        acc = acc + self._bias(node, 2, w.shape[0])[:, None, None]
        self._requant(node, acc, x.scale, w_s, axis=1)

    def _bias(self, node, index, n):
        if len(node.input) <= index or not node.input[index]:
            return np.zeros(n, np.int64)
        b, _, b_zp, _ = self._const(node, node.input[index])
        if b.dtype != np.int32 or np.any(b_zp != 0):
            raise ValueError(f"{_name(node)}: the bias must be int32 with zero point 0")
        return b.astype(np.int64).reshape(n)

    def _requant(self, node, acc, x_scale, w_scale, axis):
        name, s, z = self._output_q(node)
        m, e = scale_parts(output_scale(x_scale, w_scale, s))
        shape = [1] * acc.ndim
        shape[axis] = -1
        if m.ndim:
            m, e = m.reshape(shape), e.reshape(shape)
        self._store(name, requantize_exact(acc, m, e, z, np.uint8), s, z)

    def _op_Gemm(self, node):
        a = _attrs(node)
        if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            raise ValueError(f"{_name(node)}: only transA=0, alpha=beta=1 is supported")
        x = self._act(node, node.input[0])
        w, w_s, w_zp, _ = self._const(node, node.input[1])
        wv = w.astype(np.int64)
        wv = (wv - np.asarray(w_zp, np.int64).reshape(-1, 1)) if a.get("transB", 0) else \
            (wv - np.asarray(w_zp, np.int64).reshape(1, -1)).T
        if x.values.ndim != 2:
            raise ValueError(f"{_name(node)}: input must be 2-D, not {x.values.shape}")
        acc = (x.values - x.zp) @ wv.T + self._bias(node, 2, wv.shape[0])
        self._requant(node, acc, x.scale, w_s, axis=1)

    def _op_MatMul(self, node):
        x = self._act(node, node.input[0])
        w, w_s, w_zp, _ = self._const(node, node.input[1])
        if w.ndim != 2:
            raise ValueError(f"{_name(node)}: the weight must be 2-D, not {w.shape}")
        wv = w.astype(np.int64) - np.asarray(w_zp, np.int64).reshape(1, -1)
        acc = (x.values - x.zp) @ wv
        self._requant(node, acc, x.scale, w_s, axis=acc.ndim - 1)

    def _op_Add(self, node):
        a = self._act(node, node.input[0])
        b = self._act(node, node.input[1])
        if a.values.shape != b.values.shape:
            raise ValueError(f"{_name(node)}: broadcasting adds are not supported "
                             f"({a.values.shape} + {b.values.shape})")
        name, s, z = self._output_q(node)
        self._store(name, qlinear_add(a.values, a.scale, a.zp, b.values, b.scale, b.zp, s, z),
                    s, z)

    def _op_Concat(self, node):
        axis = _attrs(node)["axis"]
        parts = [self._act(node, i) for i in node.input]
        name, s, z = self._output_q(node)
        vals = [p.values if (p.scale == s and p.zp == z)
                else concat_table(p.scale, p.zp, s, z)[p.values] for p in parts]
        self._store(name, np.concatenate(vals, axis=axis), s, z)

    def _pool_args(self, node):
        a = _attrs(node)
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise ValueError(f"{_name(node)}: auto_pad is not supported; give explicit pads")
        kernel = list(a["kernel_shape"])
        if len(kernel) != 2 or any(d != 1 for d in a.get("dilations", [1, 1])):
            raise ValueError(f"{_name(node)}: only undilated 2-D pools are supported")
        return (kernel, list(a.get("strides", [1, 1])), list(a.get("pads", [0, 0, 0, 0])),
                bool(a.get("ceil_mode", 0)), a)

    def _same_scale(self, node, x, s, z):
        if x.scale != s or x.zp != z:
            raise ValueError(f"{_name(node)}: input and output scale and zero point must be "
                             "equal (onnxruntime runs it on uint8 only then)")

    def _op_MaxPool(self, node):
        if len(node.output) > 1 and node.output[1]:
            raise ValueError(f"{_name(node)}: the Indices output is not supported")
        kernel, strides, pads, ceil, _ = self._pool_args(node)
        x = self._act(node, node.input[0])
        name, s, z = self._output_q(node)
        self._same_scale(node, x, s, z)
        self._store(name, max_pool(x.values, kernel, strides, pads, ceil), s, z)

    def _op_AveragePool(self, node):
        kernel, strides, pads, ceil, a = self._pool_args(node)
        x = self._act(node, node.input[0])
        name, s, z = self._output_q(node)
        y = qlinear_average_pool(x.values, x.scale, x.zp, s, z, kernel, strides, pads, ceil,
                                 bool(a.get("count_include_pad", 0)))
        self._store(name, y, s, z)

    def _op_GlobalAveragePool(self, node):
        x = self._act(node, node.input[0])
        if x.values.ndim != 4:
            raise ValueError(f"{_name(node)}: input must be N×C×H×W, not {x.values.shape}")
        name, s, z = self._output_q(node)
        self._store(name, qlinear_global_average_pool(x.values, x.scale, x.zp, s, z), s, z)

    def _op_Flatten(self, node):
        x = self._act(node, node.input[0])
        axis = _attrs(node).get("axis", 1)
        axis = axis + x.values.ndim if axis < 0 else axis
        name, s, z = self._output_q(node)
        self._same_scale(node, x, s, z)
        shape = (int(np.prod(x.values.shape[:axis], dtype=np.int64)), -1)
        self._store(name, x.values.reshape(shape), s, z)

    def _op_Reshape(self, node):
        x = self._act(node, node.input[0])
        if node.input[1] not in self.consts:
            raise ValueError(f"{_name(node)}: the shape must be a constant")
        shape = [int(d) for d in self.consts[node.input[1]]]
        if _attrs(node).get("allowzero", 0) == 0:
            shape = [x.values.shape[i] if d == 0 else d for i, d in enumerate(shape)]
        name, s, z = self._output_q(node)
        self._same_scale(node, x, s, z)
        self._store(name, x.values.reshape(shape), s, z)
