"""Whole QDQ networks: the integer golden model against onnxruntime, value for value.

* the integer float32 operations round as numpy's float32 (and, for the fused multiply-add,
  as exact rational arithmetic) does;
* networks built here with ``onnx.helper`` (a ResNet basic block, its stride-2 downsampling
  variant, an inception block, a small classifier), quantised by ``quantize_static`` (QDQ,
  uint8 activations, per-channel int8 weights), give onnxruntime's float outputs and every
  quantised intermediate exactly;
* QLinearAdd and QLinearAveragePool agree on all 65,536 operand pairs and on constructed
  near-ties, where a different float32 ordering gives different answers;
* an op the model does not know is refused with the node named.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from sim.models.qdq_network import (
    f32_add,
    f32_div,
    f32_fma,
    f32_from_int,
    f32_mul,
    f32_parts,
    f32_rint,
    f32_value,
    load,
    run,
)

from qdq_helpers import conv_node as _conv, make_model as _model, quantise
from qdq_helpers import gemm_head, inception_block as _inception_block

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
TensorProto, helper, numpy_helper = onnx.TensorProto, onnx.helper, onnx.numpy_helper


# -- integer float32 arithmetic ---------------------------------------------------------------

def _random_f32(rng, n, lo=-20, hi=20):
    x = (rng.uniform(1, 2, n) * 2.0 ** rng.integers(lo, hi, n)).astype(np.float32)
    x[rng.random(n) < 0.5] *= -1
    x[: n // 50] = 0
    return x


def test_f32_ops_round_as_float32():
    rng = np.random.default_rng(20)
    n = 200_000
    a, b = _random_f32(rng, n), _random_f32(rng, n)
    b[b == 0] = 1
    # near cancellation and operands far apart
    b[n // 4: n // 2] = -np.nextafter(a[n // 4: n // 2], np.float32(0)) * np.float32(1.0)
    b[n // 2: n // 2 + 1000] = (a[n // 2: n // 2 + 1000] * np.float32(2.0 ** -30))
    b[b == 0] = 1
    pa, pb = f32_parts(a), f32_parts(b)
    np.testing.assert_array_equal(f32_value(f32_add(pa, pb)), a + b)
    np.testing.assert_array_equal(f32_value(f32_mul(pa, pb)), a * b)
    np.testing.assert_array_equal(f32_value(f32_div(pa, pb)), a / b)
    v = (a / np.float32(1 << 16)).astype(np.float32)
    np.testing.assert_array_equal(f32_rint(f32_parts(v)), np.rint(v).astype(np.int64))
    ints = rng.integers(-(1 << 31), 1 << 31, n)
    np.testing.assert_array_equal(f32_value(f32_from_int(ints)), ints.astype(np.float32))


def _round_f32(q: Fraction) -> np.float32:
    """Nearest float32 to a rational, ties to the even mantissa (by exact comparison)."""
    guess = np.float32(float(q))
    cands = [np.nextafter(guess, np.float32(-np.inf)), guess,
             np.nextafter(guess, np.float32(np.inf))]
    best = min(cands, key=lambda c: (abs(Fraction(float(c)) - q),
                                     int(f32_parts(c)[0]) & 1 if c != 0 else 0))
    return best


def test_f32_fma_rounds_once():
    rng = np.random.default_rng(21)
    n = 3000
    a, b = _random_f32(rng, n, -8, 8), _random_f32(rng, n, -8, 8)
    c = (-(a.astype(np.float64) * b) * (1 + rng.normal(0, 1e-7, n))).astype(np.float32)
    c[::3] = _random_f32(rng, len(c[::3]), -30, 10)
    got = f32_value(f32_fma(f32_parts(a), f32_parts(b), f32_parts(c)))
    for i in range(n):
        exact = Fraction(float(a[i])) * Fraction(float(b[i])) + Fraction(float(c[i]))
        assert got[i] == _round_f32(exact), (a[i], b[i], c[i])


# -- networks ---------------------------------------------------------------------------------

def _resnet_block(rng, downsample):
    n, i = [], []
    c_out, stride = (16, 2) if downsample else (8, 1)
    _conv(n, i, rng, "x", "a", 8, c_out, 3, stride)
    _conv(n, i, rng, "a", "b", c_out, c_out, 3, relu=False)
    short = _conv(n, i, rng, "x", "sc", 8, c_out, 1, 2, relu=False) if downsample else "x"
    n.append(helper.make_node("Add", ["b", short], ["s"], name="add"))
    n.append(helper.make_node("Relu", ["s"], ["y"], name="out_relu"))
    size = 5 if downsample else 10
    return _model(n, i, [1, 8, 10, 10], [1, c_out, size, size]), [1, 8, 10, 10]


def _classifier(rng):
    n, i = [], []
    _conv(n, i, rng, "x", "c1", 3, 8, 3)
    n.append(helper.make_node("MaxPool", ["c1"], ["p1"], name="pool", kernel_shape=[2, 2],
                              strides=[2, 2]))
    _conv(n, i, rng, "p1", "c2", 8, 16, 3)
    n.append(helper.make_node("AveragePool", ["c2"], ["ap"], name="avg", kernel_shape=[3, 3],
                              strides=[1, 1], pads=[1] * 4))
    n.append(helper.make_node("GlobalAveragePool", ["ap"], ["g"], name="gap"))
    gemm_head(n, i, rng, "g", 16, 0.3)
    return _model(n, i, [1, 3, 12, 12], [1, 10]), [1, 3, 12, 12]


def _quantise(tmp_path, model, shape):
    return onnx.load(quantise(model, shape, tmp_path / "fp32.onnx", tmp_path / "qdq.onnx"))


def _session(model, tmp_path=None):
    opts = ort.SessionOptions()
    if tmp_path is not None:
        opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def _fused_ops(tmp_path):
    return {n.op_type for n in onnx.load(tmp_path / "optimized.onnx").graph.node}


@pytest.mark.parametrize("build,fused", [
    (lambda r: _resnet_block(r, False), {"QLinearConv", "QLinearAdd"}),
    (lambda r: _resnet_block(r, True), {"QLinearConv", "QLinearAdd"}),
    (_inception_block, {"QLinearConv", "QLinearConcat", "MaxPool"}),
    (_classifier, {"QLinearConv", "QLinearAveragePool", "QLinearGlobalAveragePool", "QGemm"}),
], ids=["resnet", "resnet-downsample", "inception", "classifier"])
def test_network_equals_onnxruntime(tmp_path, build, fused):
    model, shape = build(np.random.default_rng(1))
    qdq = _quantise(tmp_path, model, shape)
    # every quantised tensor becomes a graph output too, so the session exposes it
    exposed = [n.output[0] for n in qdq.graph.node if n.op_type == "QuantizeLinear"]
    for name in exposed:
        qdq.graph.output.append(helper.make_tensor_value_info(name, TensorProto.UINT8, None))
    sess = _session(qdq, tmp_path)
    assert fused <= _fused_ops(tmp_path)        # the fused path is what we compare
    names = [o.name for o in sess.get_outputs()]
    net = load(qdq)
    rng = np.random.default_rng(2)
    for trial in range(4):
        x = rng.normal(0, [0.3, 1.0, 2.0, 4.0][trial], shape).astype(np.float32)
        want = dict(zip(names, sess.run(None, {"x": x})))
        got = net.run(x, intermediates=True)
        assert got["y"].dtype == np.float32
        for name in names:
            assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        assert set(exposed) <= set(got)


# -- single fused ops on uint8 inputs: stress ---------------------------------------------------

def _const(name, value, dtype):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def _add_model(sa, za, sb, zb, sc, zc, shape):
    nodes = [helper.make_node("DequantizeLinear", ["a", "sa", "za"], ["fa"]),
             helper.make_node("DequantizeLinear", ["b", "sb", "zb"], ["fb"]),
             helper.make_node("Add", ["fa", "fb"], ["s"], name="add"),
             helper.make_node("QuantizeLinear", ["s", "sc", "zc"], ["y"])]
    inits = [_const("sa", sa, np.float32), _const("za", za, np.uint8),
             _const("sb", sb, np.float32), _const("zb", zb, np.uint8),
             _const("sc", sc, np.float32), _const("zc", zc, np.uint8)]
    graph = helper.make_graph(
        nodes, "add", [helper.make_tensor_value_info(n, TensorProto.UINT8, shape) for n in "ab"],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _add_scales(rng, trial):
    sa, sb, sc = (10 ** rng.uniform(-3, -1, 3)).astype(np.float32)
    if trial % 3 == 1:      # ratios with few bits: many exact half-way sums
        sa = np.float32(sc * rng.choice([0.5, 1.5, 0.25, 3.0]))
        sb = np.float32(sc * rng.choice([0.5, 0.75, 1.0]))
    return sa, sb, sc


def test_qlinear_add_every_operand_pair(tmp_path):
    """All 256 × 256 (a, b) pairs per scale set: 24 sets, 1.6 M sums, 1 in 10^5 of which a
    different float32 ordering (fma order, no fma, the zero-point term unfused) rounds
    otherwise."""
    rng = np.random.default_rng(30)
    a, b = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8))
    shape = [1, 256, 16, 16]
    a, b = a.reshape(shape), b.reshape(shape)
    for trial in range(24):
        sa, sb, sc = _add_scales(rng, trial)
        za, zb, zc = (int(v) for v in rng.integers(0, 256, 3))
        model = _add_model(sa, za, sb, zb, sc, zc, shape)
        sess = _session(model, tmp_path)
        assert "QLinearAdd" in _fused_ops(tmp_path)
        want = sess.run(None, {"a": a, "b": b})[0]
        got = run(model, {"a": a, "b": b})["y"]
        np.testing.assert_array_equal(got, want, err_msg=f"trial {trial}")


def test_qlinear_add_near_ties(tmp_path):
    """Operand pairs whose exact sum lies within 10^-5 of k + ½ (where any float32 error
    decides the rounding), collected over many scale sets."""
    rng = np.random.default_rng(31)
    grid = np.stack(np.meshgrid(np.arange(256), np.arange(256)), -1).reshape(-1, 2)
    picked, n_ties = 0, 0
    for trial in range(40):
        sa, sb, sc = _add_scales(rng, trial)
        za, zb, zc = (int(v) for v in rng.integers(0, 256, 3))
        exact = ((grid[:, 0] - za) * np.float64(sa) + (grid[:, 1] - zb) * np.float64(sb)) \
            / np.float64(sc) + zc
        near = grid[np.abs(exact - np.floor(exact) - 0.5) < 1e-5]
        if len(near) == 0:
            continue
        picked += 1
        n_ties += len(near)
        shape = [1, 1, 1, len(near)]
        model = _add_model(sa, za, sb, zb, sc, zc, shape)
        a = near[:, 0].astype(np.uint8).reshape(shape)
        b = near[:, 1].astype(np.uint8).reshape(shape)
        want = _session(model).run(None, {"a": a, "b": b})[0]
        np.testing.assert_array_equal(run(model, {"a": a, "b": b})["y"], want)
    assert picked >= 10 and n_ties >= 1000


def _avgpool_model(sx, zx, sy, zy, shape, kernel, stride, pad, include_pad):
    nodes = [helper.make_node("DequantizeLinear", ["x", "sx", "zx"], ["fx"]),
             helper.make_node("AveragePool", ["fx"], ["p"], name="avg", kernel_shape=kernel,
                              strides=stride, pads=pad, count_include_pad=include_pad),
             helper.make_node("QuantizeLinear", ["p", "sy", "zy"], ["y"])]
    inits = [_const("sx", sx, np.float32), _const("zx", zx, np.uint8),
             _const("sy", sy, np.float32), _const("zy", zy, np.uint8)]
    graph = helper.make_graph(
        nodes, "avg", [helper.make_tensor_value_info("x", TensorProto.UINT8, shape)],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("kernel,stride,pad,include_pad,size", [
    ([3, 3], [1, 1], [1, 1, 1, 1], 0, 5), ([3, 3], [2, 2], [1, 1, 1, 1], 1, 5),
    ([2, 2], [2, 2], [0, 0, 0, 0], 0, 4), ([2, 3], [1, 2], [0, 1, 1, 0], 0, 6),
    ([4, 4], [1, 1], [0, 0, 0, 0], 0, 4)], ids=["3x3", "3x3-s2-incl", "2x2-s2", "2x3-asym",
                                               "global"])
def test_qlinear_average_pool_near_ties(tmp_path, kernel, stride, pad, include_pad, size):
    """The 3,000 channels of a random pool of 20,000 whose exact output sits nearest k + ½
    (an output scale a small multiple of the input scale makes exact ties), plus random
    channels; the float32 sum order, the division and the zero-point add all show there."""
    rng = np.random.default_rng(40 + size + kernel[1])
    for trial in range(6):
        sx = np.float32(10 ** rng.uniform(-3, -1))
        sy = np.float32(sx * [1, 2, 0.5, 3, 1.25, 10 ** rng.uniform(-0.5, 0.5)][trial])
        zx, zy = (int(v) for v in rng.integers(0, 256, 2))
        pool = rng.integers(0, 256, (20000, size, size))
        # the 3,000 channels nearest a tie (float64 finds them; ORT is the reference)
        ex = _exact_avg(pool, sx, zx, sy, zy, kernel, stride, pad, include_pad)
        dist = np.abs(ex - np.floor(ex) - 0.5).min(axis=(1, 2))
        chosen = np.concatenate([pool[np.argsort(dist)[:3000]], pool[:200]])
        x = chosen[None].astype(np.uint8)
        model = _avgpool_model(sx, zx, sy, zy, list(x.shape), kernel, stride, pad, include_pad)
        sess = _session(model, tmp_path)
        assert _fused_ops(tmp_path) & {"QLinearAveragePool", "QLinearGlobalAveragePool"}
        want = sess.run(None, {"x": x})[0]
        np.testing.assert_array_equal(run(model, x)["y"], want, err_msg=f"trial {trial}")


def _exact_avg(x, sx, zx, sy, zy, kernel, stride, pad, include_pad):
    """The real-valued (float64) pool output before rounding, straight from the
    definition."""
    h, w = x.shape[-2:]
    oh = (h + pad[0] + pad[2] - kernel[0]) // stride[0] + 1
    ow = (w + pad[1] + pad[3] - kernel[1]) // stride[1] + 1
    out = np.zeros(x.shape[:-2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * stride[0] - pad[0], j * stride[1] - pad[1]
            h1, w1 = min(h0 + kernel[0], h), min(w0 + kernel[1], w)
            h0, w0 = max(h0, 0), max(w0, 0)
            n = kernel[0] * kernel[1] if include_pad else (h1 - h0) * (w1 - w0)
            s = x[..., h0:h1, w0:w1].sum(axis=(-2, -1)) - zx * (h1 - h0) * (w1 - w0)
            out[..., i, j] = s * np.float64(sx) / n / np.float64(sy) + zy
    return out


def _pool_graph(op, sx, zx, sy, zy, shape):
    nodes = [helper.make_node("DequantizeLinear", ["x", "sx", "zx"], ["fx"]),
             helper.make_node(op, ["fx"], ["p"], name="pool"),
             helper.make_node("QuantizeLinear", ["p", "sy", "zy"], ["y"])]
    inits = [_const("sx", sx, np.float32), _const("zx", zx, np.uint8),
             _const("sy", sy, np.float32), _const("zy", zy, np.uint8)]
    graph = helper.make_graph(
        nodes, "pool", [helper.make_tensor_value_info("x", TensorProto.UINT8, shape)],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_qlinear_global_average_pool_constructed_sums(tmp_path):
    """Channel sums chosen where the scale's float32 ordering matters: for each scale set
    the sums whose requantised value differs between fl(s_x / fl(s_y·N)) and
    fl(fl(s_x / s_y) / N), or between float32 and exact arithmetic, each realised as a
    channel of uint8 values; onnxruntime decides."""
    rng = np.random.default_rng(50)
    f32 = np.float32
    hits = 0
    for trial in range(600):
        sx, sy = (10 ** rng.uniform(-3, -1, 2)).astype(f32)
        zx, zy = (int(v) for v in rng.integers(0, 256, 2))
        h, w = int(rng.integers(1, 9)), int(rng.integers(2, 9))
        n = h * w
        acc = np.arange(-zx * n, (255 - zx) * n + 1)

        one, two = (np.rint(np.clip(acc.astype(f32) * scale, f32(-zy), f32(255 - zy))) + zy
                    for scale in (f32(sx / f32(sy * f32(n))), f32(f32(sx / sy) / f32(n))))
        exact = np.clip(np.rint(acc * np.float64(sx) / n / np.float64(sy)) + zy, 0, 255)
        pick = acc[(one != two) | (one != exact)]
        if len(pick) == 0 and trial % 50:
            continue                                # onnxruntime only where it tells
        hits += len(pick)
        pick = np.concatenate([pick, rng.choice(acc, 64)])
        total = pick + zx * n                       # the sum of the channel's uint8 values
        x = np.zeros((len(total), n), np.int64)
        left = total.copy()
        for i in range(n):
            x[:, i] = np.minimum(left, 255)
            left -= x[:, i]
        x = rng.permuted(x, axis=1).reshape(1, len(total), h, w).astype(np.uint8)
        model = _pool_graph("GlobalAveragePool", sx, zx, sy, zy, list(x.shape))
        sess = _session(model, tmp_path)
        assert "QLinearGlobalAveragePool" in _fused_ops(tmp_path)
        np.testing.assert_array_equal(run(model, x)["y"], sess.run(None, {"x": x})[0])
    assert hits > 0                                 # the search found disagreements


def test_qlinear_concat_every_value(tmp_path):
    """Every uint8 value of two inputs with their own scales (and one sharing the output's
    scale and zero point, which is copied) through QLinearConcat, a dequantised value that
    rounds up to a power of two included."""
    rng = np.random.default_rng(60)
    shape = [1, 1, 16, 16]
    a = np.arange(256, dtype=np.uint8).reshape(shape)
    b = a[..., ::-1].copy()
    for trial in range(40):
        s1, s2, sy = (10 ** rng.uniform(-3, -1, 3)).astype(np.float32)
        z1, z2, zy = (int(v) for v in rng.integers(0, 256, 3))
        if trial % 5 == 0:
            s2, z2 = sy, zy
        if trial == 1:      # fl(200 · 0.005) rounds up to 1.0: a product carrying to 2^24
            s1, z1, sy, zy = np.float32(0.005), 0, np.float32(1.0), 0
        nodes = [helper.make_node("DequantizeLinear", ["a", "s1", "z1"], ["fa"]),
                 helper.make_node("DequantizeLinear", ["b", "s2", "z2"], ["fb"]),
                 helper.make_node("Concat", ["fa", "fb"], ["c"], name="cat", axis=1),
                 helper.make_node("QuantizeLinear", ["c", "sy", "zy"], ["y"])]
        inits = [_const("s1", s1, np.float32), _const("z1", z1, np.uint8),
                 _const("s2", s2, np.float32), _const("z2", z2, np.uint8),
                 _const("sy", sy, np.float32), _const("zy", zy, np.uint8)]
        graph = helper.make_graph(
            nodes, "cat", [helper.make_tensor_value_info(n, TensorProto.UINT8, shape)
                           for n in "ab"],
            [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                  ir_version=8)
        sess = _session(model, tmp_path)
        assert "QLinearConcat" in _fused_ops(tmp_path)
        np.testing.assert_array_equal(run(model, {"a": a, "b": b})["y"],
                                      sess.run(None, {"a": a, "b": b})[0])


# -- refusals ---------------------------------------------------------------------------------

def test_unsupported_op_is_refused_with_its_name():
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["fx"]),
             helper.make_node("Sigmoid", ["fx"], ["sg"], name="squash"),
             helper.make_node("QuantizeLinear", ["sg", "s", "z"], ["y"])]
    graph = helper.make_graph(
        nodes, "sig", [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 4])],
        [_const("s", 0.1, np.float32), _const("z", 128, np.uint8)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    with pytest.raises(ValueError, match="Sigmoid node 'squash'.*not supported"):
        run(model, np.zeros((1, 4), np.uint8))


def test_broadcasting_add_is_refused():
    model = _add_model(0.1, 0, 0.1, 0, 0.2, 0, [1, 4])
    model.graph.input[1].type.tensor_type.shape.dim[1].dim_value = 1
    with pytest.raises(ValueError, match="Add node 'add'.*broadcasting"):
        run(model, {"a": np.zeros((1, 4), np.uint8), "b": np.zeros((1, 1), np.uint8)})


def test_relu_with_nonzero_output_zero_point_is_refused(tmp_path):
    model = _add_model(0.1, 3, 0.1, 5, 0.2, 7, [1, 4])
    add = model.graph.node[2]
    add.output[0] = "s0"
    model.graph.node.insert(3, helper.make_node("Relu", ["s0"], ["s"], name="r"))
    with pytest.raises(ValueError, match="Relu node 'r'.*zero point of 0, not 7"):
        run(model, {"a": np.zeros((1, 4), np.uint8), "b": np.zeros((1, 4), np.uint8)})
