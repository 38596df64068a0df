"""The QDQ importer (dse/importers/onnx_qdq.py) against the quantised models themselves.

Small networks built with ``onnx.helper`` (a ResNet block with a strided 1×1 shortcut, an
inception block whose concat joins tensors of different scales, classifiers ending in Gemm
with and without ``transB`` or in MatMul), quantised by ``quantize_static`` (QDQ, uint8
activations, per-channel int8 weights), then:

* the network is :func:`import_onnx`'s; every record equals the model's initializers
  (located by walking the graph from each kernel node, not by the quantiser's naming);
* the records and the IR alone compute the model: every layer's uint8 output, and the
  float output, equal the integer golden model's (``sim.models.qdq_network``), which in
  turn equals onnxruntime (tests/models/test_qdq_network.py);
* removable Relu/Clip and flatten layers report their producer's quantisation;
* what onnxruntime would not fuse is refused in one line naming the node.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from dse.errors import InputError
from dse.importers.onnx_import import import_onnx
from dse.importers.onnx_qdq import (
    AddQuant,
    ConcatQuant,
    ConvQuant,
    PoolQuant,
    TensorQuant,
    import_qdq,
    is_qdq,
)
from sim.models.qdq import output_scale, requantize_exact, scale_parts
from sim.models.qdq_network import (
    concat_table,
    dequantize_output,
    max_pool,
    qlinear_add,
    qlinear_average_pool,
    qlinear_global_average_pool,
    quantize_input,
    run,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from qdq_helpers import conv_node as _conv, make_model as _model, quantise  # noqa: E402
from qdq_helpers import inception_block as _inception  # noqa: E402

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
TensorProto, helper, numpy_helper = onnx.TensorProto, onnx.helper, onnx.numpy_helper


# -- models -----------------------------------------------------------------------------------

def _resnet(rng):
    """A downsampling basic block: 3×3 s2 → 3×3, a 1×1 s2 shortcut, add, relu."""
    n, i = [], []
    _conv(n, i, rng, "x", "a", 8, 16, 3, 2)
    _conv(n, i, rng, "a", "b", 16, 16, 3, relu=False)
    _conv(n, i, rng, "x", "sc", 8, 16, 1, 2, relu=False)
    n.append(helper.make_node("Add", ["b", "sc"], ["s"], name="add"))
    n.append(helper.make_node("Relu", ["s"], ["y"], name="out_relu"))
    return _model(n, i, [1, 8, 10, 10], [1, 16, 5, 5]), [1, 8, 10, 10]


def _classifier(rng, fc):
    """conv, maxpool, conv, padded 3×3 average pool, then ``fc``: ``gemm`` (GAP, Flatten,
    Gemm transB=1), ``gemm_t0`` (Flatten of the whole map, Gemm transB=0) or ``matmul``
    (GAP, Flatten, MatMul)."""
    n, i = [], []
    _conv(n, i, rng, "x", "c1", 3, 8, 3)
    n.append(helper.make_node("MaxPool", ["c1"], ["p1"], name="pool", kernel_shape=[2, 2],
                              strides=[2, 2]))
    _conv(n, i, rng, "p1", "c2", 8, 16, 3)
    n.append(helper.make_node("AveragePool", ["c2"], ["ap"], name="avg", kernel_shape=[3, 3],
                              strides=[1, 1], pads=[1] * 4, count_include_pad=1))
    if fc == "gemm_t0":
        n.append(helper.make_node("Flatten", ["ap"], ["f"], name="flat", axis=1))
        k = 16 * 6 * 6
    else:
        n.append(helper.make_node("GlobalAveragePool", ["ap"], ["g"], name="gap"))
        n.append(helper.make_node("Flatten", ["g"], ["f"], name="flat", axis=1))
        k = 16
    w = rng.normal(0, 1 / np.sqrt(k), (10, k) if fc == "gemm" else (k, 10)).astype(np.float32)
    i.append(numpy_helper.from_array(w, "fc_w"))
    if fc == "matmul":
        n.append(helper.make_node("MatMul", ["f", "fc_w"], ["y"], name="fc"))
    else:
        i.append(numpy_helper.from_array(rng.normal(0, 0.1, 10).astype(np.float32), "fc_b"))
        n.append(helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], name="fc",
                                  transB=int(fc == "gemm")))
    return _model(n, i, [1, 3, 12, 12], [1, 10]), [1, 3, 12, 12]


def _torch_view(rng):
    """conv, GAP, torch's ``x.view(x.size(0), -1)`` (Shape → Gather → Concat → Reshape),
    Dropout and Identity, Gemm: the quantisation passes through the reshape and the no-ops
    (the golden model does not take the Shape path, so this one is checked by records)."""
    n, i = [], []
    _conv(n, i, rng, "x", "c1", 3, 8, 3)
    i += [numpy_helper.from_array(np.array([0], np.int64), "zero"),
          numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
          numpy_helper.from_array(rng.normal(0, 0.3, (10, 8)).astype(np.float32), "fc_w"),
          numpy_helper.from_array(rng.normal(0, 0.1, 10).astype(np.float32), "fc_b")]
    n += [helper.make_node("GlobalAveragePool", ["c1"], ["g"], name="gap"),
          helper.make_node("Shape", ["g"], ["sh"], name="shape"),
          helper.make_node("Gather", ["sh", "zero"], ["b0"], name="gather", axis=0),
          helper.make_node("Concat", ["b0", "minus1"], ["target"], name="target", axis=0),
          helper.make_node("Reshape", ["g", "target"], ["f"], name="view"),
          helper.make_node("Dropout", ["f"], ["fd"], name="drop"),
          helper.make_node("Identity", ["fd"], ["fi"], name="same"),
          helper.make_node("Gemm", ["fi", "fc_w", "fc_b"], ["y"], name="fc", transB=1)]
    return _model(n, i, [1, 3, 8, 8], [1, 10]), [1, 3, 8, 8]


_BUILDERS = {
    "resnet": _resnet,
    "inception": _inception,
    "classifier-gemm": lambda rng: _classifier(rng, "gemm"),
    "classifier-gemm-t0": lambda rng: _classifier(rng, "gemm_t0"),
    "classifier-matmul": lambda rng: _classifier(rng, "matmul"),
}
#: Quantised on demand, not part of the golden-model comparisons.
_OTHERS = {"torch-view": _torch_view}


def _quantise(folder, name, activation="uint8"):
    """Build model *name*, quantise it into ``folder/<name>.onnx``; return the path and the
    input shape."""
    model, shape = {**_BUILDERS, **_OTHERS}[name](np.random.default_rng(1))
    qdq = quantise(model, shape, folder / f"{name}_fp32.onnx", folder / f"{name}.onnx",
                   activation)
    return qdq, shape


@pytest.fixture(scope="module")
def quantised(tmp_path_factory):
    """name -> (path of the QDQ model, input shape), each quantised once per module."""
    folder = tmp_path_factory.mktemp("qdq")
    return {name: _quantise(folder, name) for name in _BUILDERS}


# -- reading the model back, independently of the importer -------------------------------------

class _Graph:
    def __init__(self, model):
        self.model = model
        self.g = model.graph
        self.inits = {t.name: numpy_helper.to_array(t) for t in self.g.initializer}

    def producer(self, tensor):
        return next(n for n in self.g.node if tensor in n.output)

    def users(self, tensor):
        return [n for n in self.g.node if tensor in n.input]

    def node(self, name):
        return next(n for n in self.g.node if n.name == name)

    def quant(self, node):
        """The TensorQuant of a QuantizeLinear/DequantizeLinear node's initializers."""
        return TensorQuant(float(self.inits[node.input[1]]), int(self.inits[node.input[2]]))

    def x_quant(self, node, i=0):
        dq = self.producer(node.input[i])
        assert dq.op_type == "DequantizeLinear"
        return self.quant(dq)

    def y_quant(self, node):
        """The QuantizeLinear after the node (through Relu/Clip) and its output tensor."""
        tensor = node.output[0]
        while True:
            (user,) = self.users(tensor)
            if user.op_type == "QuantizeLinear":
                return self.quant(user), user.output[0]
            assert user.op_type in ("Relu", "Clip")
            tensor = user.output[0]

    def weight(self, node, i):
        """The integers, scale and zero point of the DequantizeLinear feeding input *i*."""
        dq = self.producer(node.input[i])
        assert dq.op_type == "DequantizeLinear"
        return [self.inits[t] for t in dq.input]


def _attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


# -- the records equal the model ----------------------------------------------------------------

_RECORD = {"conv": ConvQuant, "fc": ConvQuant, "add": AddQuant, "concat": ConcatQuant,
           "maxpool": PoolQuant, "avgpool": PoolQuant, "gap": PoolQuant}


@pytest.mark.parametrize("name", list(_BUILDERS))
def test_records_equal_the_models_initializers(quantised, name):
    path, _ = quantised[name]
    qn = import_qdq(path)
    g = _Graph(onnx.load(path))
    net = import_onnx(path)
    assert qn.network == net                                 # names, ops, shapes
    assert list(qn.layers) == [l.name for l in net if l.op in _RECORD]
    for layer in net:
        if layer.op in _RECORD:
            assert type(qn.layers[layer.name]) is _RECORD[layer.op], layer.name
    kernels = [n for n in g.g.node if n.op_type in ("Conv", "Gemm", "MatMul", "Add", "Concat",
                                                    "MaxPool", "AveragePool",
                                                    "GlobalAveragePool")]
    assert {n.name for n in kernels} == set(qn.layers)
    for node in kernels:
        rec = qn.layers[node.name]
        y, _ = g.y_quant(node)
        assert rec.y == y, node.name
        if node.op_type in ("Conv", "Gemm", "MatMul"):
            q, s, z = g.weight(node, 1)
            transpose = node.op_type == "MatMul" or (
                node.op_type == "Gemm" and not _attr(node, "transB", 0))
            assert rec.x == g.x_quant(node)
            assert rec.weight.dtype == np.int8
            np.testing.assert_array_equal(rec.weight, q.T if transpose else q)
            assert rec.weight_scale.dtype == np.float32 and rec.weight_scale.shape == s.shape
            np.testing.assert_array_equal(rec.weight_scale, s)
            np.testing.assert_array_equal(rec.weight_zero_point, z)
            assert not rec.weight_zero_point.any()
            if node.op_type == "MatMul":
                np.testing.assert_array_equal(rec.bias, np.zeros(q.shape[1], np.int32))
            else:
                b, _, _ = g.weight(node, 2)
                assert b.dtype == np.int32 and rec.bias.dtype == np.int32
                np.testing.assert_array_equal(rec.bias, b)
            assert not rec.relu and not rec.weight.flags.writeable
        elif node.op_type == "Add":
            assert (rec.a, rec.b) == (g.x_quant(node, 0), g.x_quant(node, 1))
        elif node.op_type == "Concat":
            assert rec.inputs == tuple(g.x_quant(node, i) for i in range(len(node.input)))
            assert len(set(rec.inputs)) > 1                 # the branches' scales differ
        else:
            assert rec.x == g.x_quant(node)
            assert rec.count_include_pad == bool(_attr(node, "count_include_pad", 0))
    q_in = next(n for n in g.g.node if n.op_type == "QuantizeLinear" and n.input[0] == "x")
    assert qn.input == g.quant(q_in) == qn.tensor("input")
    out_dq = g.producer("y")
    out_layer = net.layers[-1].name
    assert qn.outputs == {out_layer: g.quant(out_dq)} and qn.output_names == {out_layer: "y"}
    for layer in net:                     # a scale is the model's float32, exactly
        q = qn.tensor(layer.name)
        assert type(q.scale) is float and float(np.float32(q.scale)) == q.scale
        if layer.op in ("flatten", "relu", "identity"):
            assert q == qn.tensor(layer.inputs[0]), layer.name
    if "classifier" in name:
        assert qn.tensor("flat") == qn.tensor(net["flat"].inputs[0])
        assert qn.layers["pool"].x == qn.layers["pool"].y
        assert qn.layers["avg"].count_include_pad


def test_import_onnx_reports_the_layer_of_every_tensor(quantised):
    path, _ = quantised["resnet"]
    tensors = {}
    net = import_onnx(path, tensors=tensors)
    assert net == import_onnx(path)                          # the hook changes nothing
    g = _Graph(onnx.load(path))
    assert tensors["x"] == "input"
    for node in g.g.node:
        if node.op_type == "Conv":
            assert tensors[node.output[0]] == node.name
            _, q_out = g.y_quant(node)
            assert tensors[q_out] == node.name                 # Q/DQ vanish into their layer
    assert tensors["y"] == "add"


# -- the records compute the model ---------------------------------------------------------------

def _conv2d(x, w, layer):
    """Integer convolution of ``x`` (C×H×W, zero point already subtracted) by ``w``."""
    t, l, b, r = layer.padding
    x = np.pad(x, ((0, 0), (t, b), (l, r)))
    (sh, sw), (dh, dw), groups = layer.stride, layer.dilation, layer.groups
    n, cg, kh, kw = w.shape
    _, oh, ow = layer.out_shape
    acc = np.zeros((n, oh, ow), np.int64)
    ng = n // groups
    for grp in range(groups):
        xs = x[grp * cg:(grp + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                tap = xs[:, i * dh: i * dh + sh * (oh - 1) + 1: sh,
                         j * dw: j * dw + sw * (ow - 1) + 1: sw]
                acc[grp * ng:(grp + 1) * ng] += np.einsum(
                    "nc,chw->nhw", w[grp * ng:(grp + 1) * ng, :, i, j], tap)
    return acc


def _requantize(acc, rec):
    m, e = scale_parts(output_scale(rec.x.scale, rec.weight_scale, rec.y.scale))
    return requantize_exact(acc, m[:, None, None], e[:, None, None], rec.y.zero_point,
                            np.uint8)


def _evaluate(qn, x, quantised_input=False):
    """Every IR layer's uint8 output from the records and the IR's geometry alone, with the
    golden model's kernels where onnxruntime computes in float32."""
    vals = {}
    for layer in qn.network:
        ins = [vals[i] for i in layer.inputs]
        rec = qn.layers.get(layer.name)
        if layer.op == "input":
            v = x[0] if quantised_input else quantize_input(x[0], qn.input.scale,
                                                             qn.input.zero_point)
        elif layer.op == "conv":
            acc = _conv2d(ins[0] - rec.x.zero_point, rec.weight.astype(np.int64), layer)
            v = _requantize(acc + rec.bias[:, None, None], rec)
        elif layer.op == "fc":
            xv = ins[0].reshape(-1) - rec.x.zero_point      # C, H, W order
            acc = rec.weight.astype(np.int64) @ xv + rec.bias
            v = _requantize(acc[:, None, None], rec)
        elif layer.op == "maxpool":
            v = max_pool(ins[0], layer.kernel, layer.stride, layer.padding, layer.ceil_mode)
        elif layer.op == "avgpool":
            v = qlinear_average_pool(ins[0], rec.x.scale, rec.x.zero_point, rec.y.scale,
                                     rec.y.zero_point, layer.kernel, layer.stride,
                                     layer.padding, layer.ceil_mode, rec.count_include_pad)
        elif layer.op == "gap":
            v = qlinear_global_average_pool(ins[0], rec.x.scale, rec.x.zero_point,
                                            rec.y.scale, rec.y.zero_point)
        elif layer.op == "add":
            v = qlinear_add(ins[0], rec.a.scale, rec.a.zero_point, ins[1], rec.b.scale,
                            rec.b.zero_point, rec.y.scale, rec.y.zero_point)
        elif layer.op == "concat":
            v = np.concatenate([a if q == rec.y else
                                concat_table(q.scale, q.zero_point, rec.y.scale,
                                             rec.y.zero_point)[a]
                                for q, a in zip(rec.inputs, ins)])
        elif layer.op in ("relu", "relu6", "identity"):
            v = ins[0]                        # removed: the requantisation clipped already
        elif layer.op == "flatten":
            v = ins[0].reshape(-1, 1, 1)
        else:
            raise AssertionError(f"unexpected op {layer.op}")
        assert v.shape == layer.out_shape, layer.name
        vals[layer.name] = np.asarray(v, np.int64)
    return vals


def _check_against_golden(path, shape, model=None):
    model = onnx.load(path) if model is None else model
    qn = import_qdq(path)
    tensors = {}
    import_onnx(path, tensors=tensors)
    quantised = {n.output[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    rng = np.random.default_rng(3)
    for scale in (0.5, 1.0, 3.0):
        x = rng.normal(0, scale, shape).astype(np.float32)
        want = run(model, x, intermediates=True)
        got = _evaluate(qn, x)
        for t in quantised:                   # every quantised tensor, by its IR layer
            layer = tensors[t]
            np.testing.assert_array_equal(got[layer].reshape(-1), want[t].reshape(-1),
                                          err_msg=f"{layer} ({t})")
        (layer, q), = qn.outputs.items()
        y = dequantize_output(got[layer], q.scale, q.zero_point)
        np.testing.assert_array_equal(y.reshape(-1), want[qn.output_names[layer]].reshape(-1))


@pytest.mark.parametrize("name", list(_BUILDERS))
def test_records_compute_the_model_as_the_golden_model(quantised, name):
    _check_against_golden(*quantised[name])


def test_one_conv_from_golden_intermediates(quantised):
    """The second conv of the ResNet block, on the golden model's quantised input: ``acc =
    Σ (x − x_zp)·w + bias`` with numpy, requantised exactly, equals the golden output."""
    path, shape = quantised["resnet"]
    model, qn = onnx.load(path), import_qdq(path)
    g = _Graph(model)
    conv = g.node("b")
    x_name = g.producer(conv.input[0]).input[0]             # the uint8 tensor it reads
    _, y_name = g.y_quant(conv)
    golden = run(model, np.random.default_rng(4).normal(0, 1, shape).astype(np.float32),
                 intermediates=True)
    rec = qn.layers["b"]
    x = golden[x_name][0].astype(np.int64) - rec.x.zero_point
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    n, _, kh, kw = rec.weight.shape
    _, h, w = x.shape
    acc = np.array([[[np.sum(xp[:, i:i + kh, j:j + kw] * rec.weight[c].astype(np.int64))
                      for j in range(w)] for i in range(h)] for c in range(n)])
    acc = acc + rec.bias[:, None, None]
    m, e = scale_parts(output_scale(rec.x.scale, rec.weight_scale, rec.y.scale))
    y = requantize_exact(acc, m[:, None, None], e[:, None, None], rec.y.zero_point)
    np.testing.assert_array_equal(y, golden[y_name][0])
    assert len(np.unique(y)) > 10                           # not a saturated, trivial output


# -- removable activations ---------------------------------------------------------------------

@pytest.mark.parametrize("act", ["Relu", "Clip"])
def test_relu_or_clip_before_the_quantize_is_folded(quantised, tmp_path, act):
    """A Relu (or Clip to [0, 6]) between conv ``a`` (output zero point 0, range below 6)
    and its QuantizeLinear: onnxruntime removes it; the IR has the relu layer, the conv's
    record says so, and the relu reports the conv's quantisation."""
    path, shape = quantised["resnet"]
    model = onnx.load(path)
    g = _Graph(model)
    conv = g.node("a")
    (q,) = g.users(conv.output[0])
    assert g.quant(q).zero_point == 0 and 255 * g.quant(q).scale < 6
    q.input[0] = "a_act"
    inputs = [conv.output[0]]
    if act == "Clip":
        model.graph.initializer.extend([numpy_helper.from_array(np.float32(0), "lo"),
                                        numpy_helper.from_array(np.float32(6), "hi")])
        inputs += ["lo", "hi"]
    index = list(model.graph.node).index(conv) + 1
    model.graph.node.insert(index, helper.make_node(act, inputs, ["a_act"], name="a_act"))
    out = tmp_path / "relu.onnx"
    onnx.save(model, out)
    qn = import_qdq(out)
    assert qn.network["a_act"].op == ("relu" if act == "Relu" else "relu6")
    assert qn.layers["a"].relu and not qn.layers["b"].relu
    assert qn.tensor("a_act") == qn.tensor("a") == qn.layers["a"].y == qn.layers["b"].x
    _check_against_golden(out, shape, model)


def test_reshape_dropout_and_identity_pass_the_quantisation_through(tmp_path):
    """torch's view (Shape arithmetic feeding a Reshape), Dropout and Identity: the IR's
    flatten and identity layers carry the global pool's quantisation to the Gemm."""
    path, _ = _quantise(tmp_path, "torch-view")
    qn = import_qdq(path)
    assert qn.network == import_onnx(path)
    assert [(l.name, l.op) for l in qn.network] == [
        ("input", "input"), ("c1", "conv"), ("gap", "gap"), ("view", "flatten"),
        ("same", "identity"), ("fc", "fc")]
    gap = qn.layers["gap"].y
    assert qn.tensor("view") == qn.tensor("same") == gap == qn.layers["fc"].x
    assert set(qn.layers) == {"c1", "gap", "fc"}


def test_uint8_graph_input_is_dequantised_directly(quantised, tmp_path):
    """A graph that takes the quantised image (uint8) and starts with its
    DequantizeLinear: the input's quantisation is that DequantizeLinear's."""
    path, shape = quantised["resnet"]
    model = onnx.load(path)
    g = _Graph(model)
    (q,) = [n for n in g.g.node if n.op_type == "QuantizeLinear" and n.input[0] == "x"]
    for dq in g.users(q.output[0]):
        dq.input[0] = "x"
    model.graph.node.remove(q)
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    out = tmp_path / "u8.onnx"
    onnx.save(model, out)
    qn = import_qdq(out)
    assert qn.input == g.quant(q) == qn.layers["a"].x == qn.layers["sc"].x
    x = np.random.default_rng(5).integers(0, 256, shape).astype(np.uint8)
    want = run(model, x)["y"]
    got = _evaluate(qn, x, quantised_input=True)
    (layer, yq), = qn.outputs.items()
    np.testing.assert_array_equal(dequantize_output(got[layer], yq.scale, yq.zero_point),
                                  want[0])


# -- refusals ----------------------------------------------------------------------------------

def _edit(path, tmp_path, change):
    model = onnx.load(path)
    change(model, _Graph(model))
    out = tmp_path / "m.onnx"
    onnx.save(model, out)
    return out


def _insert_after(model, node, new):
    model.graph.node.insert(list(model.graph.node).index(node) + 1, new)


def _stray_sigmoid(model, g):
    """A float Sigmoid after the output's DequantizeLinear, with no Q/DQ of its own."""
    dq = g.producer("y")
    dq.output[0] = "y_float"
    _insert_after(model, dq, helper.make_node("Sigmoid", ["y_float"], ["y"], name="squash"))


def _float_relu(model, g):
    """A Relu on conv ``b``'s dequantised input: a float op onnxruntime cannot remove."""
    conv = g.node("b")
    dq = g.producer(conv.input[0])
    conv.input[0] = "relu_out"
    _insert_after(model, dq, helper.make_node("Relu", [dq.output[0]], ["relu_out"],
                                              name="stray_relu"))


def _relu_nonzero_zp(model, g):
    """A Relu before the shortcut's QuantizeLinear, whose zero point is not 0."""
    conv = g.node("sc")
    (q,) = g.users(conv.output[0])
    assert g.quant(q).zero_point != 0
    q.input[0] = "sc_relu"
    _insert_after(model, conv, helper.make_node("Relu", [conv.output[0]], ["sc_relu"],
                                                name="r"))


def _clip_narrower(model, g):
    """A Clip to [0, 6] before the shortcut's QuantizeLinear, whose range reaches below 0."""
    conv = g.node("sc")
    (q,) = g.users(conv.output[0])
    q.input[0] = "sc_clip"
    model.graph.initializer.extend([numpy_helper.from_array(np.float32(0), "lo"),
                                    numpy_helper.from_array(np.float32(6), "hi")])
    _insert_after(model, conv, helper.make_node("Clip", [conv.output[0], "lo", "hi"],
                                                ["sc_clip"], name="clip"))


def _weight_zero_point(model, g):
    zp = g.producer(g.node("a").input[1]).input[2]
    init = next(t for t in model.graph.initializer if t.name == zp)
    init.CopyFrom(numpy_helper.from_array(np.full(16, 3, np.int8), zp))


def _scale_length(model, g):
    dq = g.producer(g.node("a").input[1])
    for name, value in ((dq.input[1], np.full(15, 0.01, np.float32)),
                        (dq.input[2], np.zeros(15, np.int8))):
        init = next(t for t in model.graph.initializer if t.name == name)
        init.CopyFrom(numpy_helper.from_array(value, name))


def _maxpool_requantises(model, g):
    pool = g.node("pool")
    (q,) = g.users(pool.output[0])
    (dq,) = g.users(q.output[0])
    old = g.quant(q)
    model.graph.initializer.append(numpy_helper.from_array(np.float32(old.scale * 2), "s2"))
    q.input[1] = dq.input[1] = "s2"


def _dequantize_mismatch(model, g):
    dq = g.producer(g.node("b").input[0])
    model.graph.initializer.append(numpy_helper.from_array(np.float32(0.5), "s_other"))
    dq.input[1] = "s_other"


@pytest.mark.parametrize("name,change,expected", [
    ("resnet", _stray_sigmoid,
     r"nodes\[\d+\]\(squash\): must be a kernel onnxruntime fuses in a QDQ graph \(.*\) or "
     r"pass the quantisation through \(.*\), not the float op Sigmoid"),
    ("resnet", _float_relu,
     r"nodes\[\d+\]\(stray_relu\): a Relu must sit between a kernel .* and its "
     r"QuantizeLinear, where onnxruntime removes it"),
    ("resnet", _relu_nonzero_zp,
     r"nodes\[\d+\]\(r\): a Relu is removed only before a QuantizeLinear with zero point 0, "
     r"not \d+"),
    ("resnet", _clip_narrower,
     r"nodes\[\d+\]\(clip\): a Clip is removed only where its range \[0\.0, 6\.0\] contains "
     r"the QuantizeLinear's \[-\d\.\d+, \d\.\d+\]"),
    ("resnet", _weight_zero_point,
     r"nodes\[\d+\]\(a\): weight zero points must be 0 \(symmetric int8 weights\), not \[3\]"),
    ("resnet", _scale_length,
     r"nodes\[\d+\]\(a\): weight scale must hold 1 value, or 16 \(one per output channel, "
     r"on axis 0\), not shape \[15\] on axis 0"),
    ("inception", _maxpool_requantises,
     r"nodes\[\d+\]\(pool\): a MaxPool must keep its input's quantisation"),
    ("resnet", _dequantize_mismatch,
     r"nodes\[\d+\]\(\w+\): must dequantise with the scale and zero point of its "
     r"QuantizeLinear"),
], ids=["stray-sigmoid", "float-relu", "relu-zero-point", "clip-range", "weight-zero-point",
        "scale-length", "maxpool-requantises", "dequantize-mismatch"])
def test_unsupported_qdq_is_refused_naming_the_node(quantised, tmp_path, name, change,
                                                    expected):
    path = _edit(quantised[name][0], tmp_path, change)
    import_onnx(path)                     # the float importer takes it: the refusal is ours
    with pytest.raises(InputError) as err:
        import_qdq(path)
    text = str(err.value)
    assert "\n" not in text
    assert re.fullmatch(re.escape(str(path)) + ": " + expected + ".*", text), text


def test_int8_activations_are_refused(tmp_path):
    path, _ = _quantise(tmp_path, "resnet", activation="int8")
    assert is_qdq(path)
    with pytest.raises(InputError, match=r"nodes\[\d+\]\(\w+\): must quantise activations to "
                                         r"uint8, not int8 \(onnxruntime does not fuse"):
        import_qdq(path)


def test_float_model_is_not_qdq(tmp_path):
    model, _ = _resnet(np.random.default_rng(1))
    path = tmp_path / "float.onnx"
    onnx.save(model, path)
    assert not is_qdq(path) and not is_qdq(model)
    with pytest.raises(InputError, match=r"float\.onnx: must be a QDQ-quantised model"):
        import_qdq(path)


def test_is_qdq_on_models_and_paths(quantised):
    path, _ = quantised["inception"]
    assert is_qdq(path) and is_qdq(str(path)) and is_qdq(onnx.load(path))


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        import_qdq(tmp_path / "none.onnx")


def test_records_are_validated_and_frozen():
    q = TensorQuant(0.5, 3)
    with pytest.raises(ValueError, match="float32"):
        TensorQuant(0.1, 0)                                   # 0.1 is no float32
    with pytest.raises(ValueError, match="uint8"):
        TensorQuant(0.5, 256)
    rec = ConvQuant(q, q, np.ones((2, 3), np.int8), np.float32([0.5, 0.25]),
                    np.zeros(2, np.int8), np.int32([1, 2]))
    assert rec == ConvQuant(q, q, np.ones((2, 3), np.int8), np.float32([0.5, 0.25]),
                            np.zeros(2, np.int64), np.int32([1, 2]))
    assert rec != ConvQuant(q, q, np.ones((2, 3), np.int8), np.float32([0.5, 0.25]),
                            np.zeros(2, np.int8), np.int32([1, 3]))
    with pytest.raises(ValueError):
        rec.bias[0] = 5
    with pytest.raises(ValueError, match="weight_scale must have shape"):
        ConvQuant(q, q, np.ones((2, 3), np.int8), np.float32([0.5]), np.zeros(2, np.int8),
                  np.int32([1, 2]))
