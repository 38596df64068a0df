"""The integer requantiser against float32 and against onnxruntime's QLinearConv.

* :func:`sim.models.qdq.requantize_exact` (integers only) equals the numpy float32 emulation
  on random accumulators and scales, on accumulators beyond 2^24 (where int32 -> float32
  rounds), and on constructed near-ties of both roundings;
* the helpers round as exact rational arithmetic does;
* a convolution quantised by ``onnxruntime.quantization.quantize_static`` (QDQ, uint8
  activations, per-channel int8 weights, int32 bias), computed as an exact integer
  convolution (``sim.models.conv``) and requantised by ``requantize_exact``, equals
  onnxruntime's output value for value.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.models.conv import conv2d
from sim.models.qdq import (output_scale, quant_range, requantize_exact, requantize_float32,
                            round_bits_half_even, scale_parts, shift_half_even)

from qdq_helpers import RandomCalibration


def _half_even(q: Fraction) -> int:
    """Nearest integer to ``q``, ties to even (Python's round on a Fraction)."""
    return round(q)


@settings(max_examples=400, deadline=None)
@given(st.integers(-(1 << 40), 1 << 40), st.integers(0, 45))
def test_shift_half_even_is_rational_rounding(x, s):
    assert int(shift_half_even(x, s)) == _half_even(Fraction(x, 1 << s))


@settings(max_examples=400, deadline=None)
@given(st.integers(-(1 << 48), 1 << 48))
def test_round_bits_keeps_24_significant_bits(x):
    q, d = (int(v) for v in round_bits_half_even(x))
    # the float64 of x is exact (|x| < 2^53); float32 rounds it to 24 bits half to even
    assert q * 2 ** d == int(np.float32(float(x)))


def _scales(rng, n):
    """Scales as quantised convolutions have them (about 1e-5 to 2), float32."""
    return (10.0 ** rng.uniform(-5, 0.3, n)).astype(np.float32)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_exact_equals_float32_on_random_cases(dtype):
    rng = np.random.default_rng(1 if dtype is np.uint8 else 2)
    n = 400_000
    scale = _scales(rng, n)
    # accumulators that land in range after scaling, and large ones beyond 2^24
    acc = np.round(rng.normal(0, 200, n) / scale).clip(-(2 ** 31), 2 ** 31 - 1)
    acc[: n // 4] = rng.integers(-(1 << 31), 1 << 31, n // 4)
    acc = acc.astype(np.int64)
    qmin, qmax = quant_range(dtype)
    zp = rng.integers(qmin, qmax + 1, n)
    m, e = scale_parts(scale)
    got = requantize_exact(acc, m, e, zp, dtype)
    want = requantize_float32(acc, scale, zp, dtype)
    np.testing.assert_array_equal(got, want)
    assert got.min() >= qmin and got.max() <= qmax


def test_exact_equals_float32_on_near_ties():
    """Accumulators whose scaled value sits within a few ulps of k + ½ (the last rounding's
    ties), and accumulators beyond 2^24 at ties of the int32 -> float32 rounding."""
    rng = np.random.default_rng(3)
    n = 200_000
    scale = _scales(rng, n)
    k = rng.integers(-130, 130, n)
    acc = np.floor((k + 0.5) / scale.astype(np.float64)).astype(np.int64)
    acc = acc + rng.integers(-2, 3, n)
    big = rng.integers(1 << 24, 1 << 30, n // 2)
    shift = rng.integers(1, 7, n // 2)
    big = ((big >> shift) << shift) | (1 << (shift - 1))  # exactly half an ulp
    acc[: n // 2] = np.where(rng.random(n // 2) < 0.5, big, -big)
    acc = acc.clip(-(1 << 31), (1 << 31) - 1)
    zp = rng.integers(0, 256, n)
    m, e = scale_parts(scale)
    np.testing.assert_array_equal(requantize_exact(acc, m, e, zp),
                                  requantize_float32(acc, scale, zp))


def test_single_rounding_is_not_enough():
    """Why two roundings: acc = 203·2^18 − 2 at scale 2^-19 is 101.4999962 exactly (one
    rounding: 101), but float32 first rounds acc to 203·2^18 (a tie, to the even mantissa),
    then 101.5 rounds to 102 -- onnxruntime's answer, and the integer requantiser's."""
    acc = np.array([203 * 2 ** 18 - 2, -(203 * 2 ** 18 - 2), 205 * 2 ** 18 + 2])
    scale = np.float32(2.0 ** -19)
    once = [round(Fraction(int(a)) * Fraction(1, 2 ** 19)) for a in acc]
    assert once == [101, -101, 103]
    m, e = scale_parts(scale)
    np.testing.assert_array_equal(requantize_float32(acc, scale, 0, np.int8), [102, -102, 102])
    np.testing.assert_array_equal(requantize_exact(acc, m, e, 0, np.int8), [102, -102, 102])


def test_scale_parts_are_exact():
    s = np.array([1.0, 0.5, 3.0e-4, 1.9999999, np.float32(1 / 3)], dtype=np.float32)
    m, e = scale_parts(s)
    for si, mi, ei in zip(s, m, e):
        assert Fraction(int(mi)) * Fraction(2) ** int(ei) == Fraction(float(si))
        assert (1 << 23) <= mi < (1 << 24)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.inf, 1e-45])
def test_scale_parts_refuse(bad):
    with pytest.raises(ValueError, match="scale must be a normal positive float32"):
        scale_parts(np.float32(bad))


def test_requantize_exact_refuses_wide_accumulators():
    with pytest.raises(ValueError, match="acc must be int32"):
        requantize_exact(1 << 31, 1 << 23, -30, 0)


# -- onnxruntime ------------------------------------------------------------------------------

def _float_conv_model(c_in, c_out, k, stride, pad, size, seed):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    out = (size + 2 * pad - k) // stride + 1
    w = rng.normal(0, 0.3, (c_out, c_in, k, k)).astype(np.float32)
    b = rng.normal(0, 0.5, c_out).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[k, k],
                            strides=[stride, stride], pads=[pad] * 4)
    relu = helper.make_node("Relu", ["y"], ["z"])
    graph = helper.make_graph(
        [node, relu], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c_in, size, size])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, c_out, out, out])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _initializers(model):
    from onnx import numpy_helper
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


@pytest.mark.parametrize("c_in,c_out,k,stride,pad,size", [(3, 8, 3, 1, 1, 12),
                                                          (16, 5, 5, 2, 2, 15),
                                                          (7, 33, 1, 1, 0, 9)])
def test_qdq_conv_equals_onnxruntime(tmp_path, c_in, c_out, k, stride, pad, size):
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    shape = (1, c_in, size, size)
    fp32 = tmp_path / "fp32.onnx"
    q = tmp_path / "qdq.onnx"
    onnx.save(_float_conv_model(c_in, c_out, k, stride, pad, size, seed=c_in), fp32)
    quantize_static(str(fp32), str(q), RandomCalibration(shape, seed=c_out),
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True)
    model = onnx.load(q)
    # the quantised output (before the graph's last DequantizeLinear) as a graph output
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    quant_node = next(n for n in model.graph.node
                      if n.op_type == "QuantizeLinear" and n.input[0] == conv.output[0])
    model.graph.output.append(onnx.helper.make_tensor_value_info(quant_node.output[0],
                                                                 onnx.TensorProto.UINT8, None))
    inits = _initializers(model)
    x_q_node = next(n for n in model.graph.node
                    if n.op_type == "QuantizeLinear" and n.input[0] == "x")
    x_scale, x_zp = inits[x_q_node.input[1]], inits[x_q_node.input[2]]
    w_dq = next(n for n in model.graph.node
                if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None
                and inits[n.input[0]].ndim == 4)
    w_q, w_scale = inits[w_dq.input[0]], inits[w_dq.input[1]]
    b_dq = next(n for n in model.graph.node
                if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None
                and inits[n.input[0]].dtype == np.int32)
    bias = inits[b_dq.input[0]]
    y_scale, y_zp = inits[quant_node.input[1]], inits[quant_node.input[2]]
    assert w_scale.shape == (c_out,)          # per channel

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(99)
    for trial in range(4):
        x = rng.normal(0, 1.5 if trial else 0.2, shape).astype(np.float32)
        want = sess.run([quant_node.output[0]], {"x": x})[0][0]
        # the input quantised as onnxruntime's QuantizeLinear does it
        x_q = np.clip(np.rint(x[0] / x_scale) + x_zp, 0, 255).astype(np.int64)
        acc = conv2d(x_q - int(x_zp), w_q.astype(np.int64), stride=stride, padding=pad)
        acc = acc + bias.astype(np.int64)[:, None, None]
        m, e = scale_parts(output_scale(x_scale, w_scale, y_scale))
        got = requantize_exact(acc, m[:, None, None], e[:, None, None], int(y_zp), np.uint8)
        np.testing.assert_array_equal(got, want.astype(np.int64))
