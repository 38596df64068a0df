"""Importers: ONNX (against the equivalent YAML and onnxruntime's shapes), YAML, SCALE-Sim CSV,
and load_network's dispatch."""

import math
import re
import textwrap
from pathlib import Path

import networkx as nx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from dse import zoo
from dse.errors import InputError
from dse.importers.scalesim import import_scalesim
from dse.importers.yaml_import import network_from_dict, network_to_dict
from dse.load import load_network
from dse.network import Network

# -- helpers ------------------------------------------------------------------------------

_RNG = np.random.default_rng(0)


def _init(name, *shape):
    return numpy_helper.from_array(_RNG.standard_normal(shape).astype(np.float32), name)


def _model(nodes, inits, in_shape=(1, 3, 16, 16), opset=13, outputs=("y",)):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
    graph = helper.make_graph(nodes, "g", [x], outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _import(model, tmp_path, stem="m"):
    path = tmp_path / f"{stem}.onnx"
    onnx.save(model, str(path))
    return load_network(str(path))


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _err(fn):
    with pytest.raises(InputError) as exc:
        fn()
    return str(exc.value)


def _bn(name, x, y, c):
    inits = [_init(f"{name}.s", c), _init(f"{name}.b", c), _init(f"{name}.m", c),
             numpy_helper.from_array(np.ones(c, np.float32), f"{name}.v")]
    node = helper.make_node("BatchNormalization", [x, *(t.name for t in inits)], [y], name=name)
    return node, inits


# -- ONNX acceptance: the same graph as the equivalent YAML --------------------------------

def _acceptance_model():
    nodes, inits = [], []

    def conv(name, x, y, c_in, c_out, k, pad, **kw):
        inits.extend([_init(f"{name}.w", c_out, c_in, k, k), _init(f"{name}.b", c_out)])
        nodes.append(helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [y], name=name,
                                      pads=[pad] * 4, **kw))

    def bn(name, x, y, c):
        node, more = _bn(name, x, y, c)
        nodes.append(node)
        inits.extend(more)

    conv("conv1", "x", "c1", 3, 8, 3, 1, kernel_shape=[3, 3])
    bn("bn1", "c1", "b1", 8)
    nodes.append(helper.make_node("Relu", ["b1"], ["r1"], name="relu1"))
    nodes.append(helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2],
                                  strides=[2, 2]))
    conv("conv2a", "p1", "c2a", 8, 8, 3, 1)
    bn("bn2a", "c2a", "b2a", 8)
    nodes.append(helper.make_node("Relu", ["b2a"], ["r2"], name="relu2"))
    conv("conv2b", "r2", "c2b", 8, 8, 3, 1)
    bn("bn2b", "c2b", "b2b", 8)
    nodes.append(helper.make_node("Add", ["b2b", "p1"], ["s"], name="res"))
    nodes.append(helper.make_node("Relu", ["s"], ["r3"], name="relu3"))
    conv("conv3a", "r3", "c3a", 8, 4, 1, 0)
    conv("conv3b", "r3", "c3b", 8, 6, 5, 2)
    nodes.append(helper.make_node("Concat", ["c3a", "c3b"], ["cat"], name="cat", axis=1))
    nodes.append(helper.make_node("GlobalAveragePool", ["cat"], ["g"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["g"], ["f"], name="flatten", axis=1))
    inits.extend([_init("fc.w", 5, 10), _init("fc.b", 5)])
    nodes.append(helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["y"], name="fc", transB=1))
    return _model(nodes, inits)


ACCEPTANCE_YAML = """\
input: [3, 16, 16]
layers:
  - {name: conv1, op: conv, out_channels: 8, kernel: 3, padding: 1}
  - {name: relu1, op: relu}
  - {name: pool1, op: maxpool, kernel: 2, stride: 2}
  - {name: conv2a, op: conv, out_channels: 8, kernel: 3, padding: 1}
  - {name: relu2, op: relu}
  - {name: conv2b, op: conv, out_channels: 8, kernel: [3, 3], padding: [1, 1]}
  - {name: res, op: add, inputs: [conv2b, pool1]}
  - {name: relu3, op: relu}
  - {name: conv3a, op: conv, out_channels: 4, kernel: 1}
  - {name: conv3b, op: conv, out_channels: 6, kernel: 5, padding: [2, 2, 2, 2], inputs: relu3}
  - {name: cat, op: concat, inputs: [conv3a, conv3b]}
  - {name: gap, op: gap}
  - {name: flatten, op: flatten}
  - {name: fc, op: fc, out_features: 5}
"""


def test_onnx_imports_to_the_same_graph_as_the_equivalent_yaml(tmp_path):
    from_onnx = _import(_acceptance_model(), tmp_path)
    from_yaml = load_network(str(_write(tmp_path, "m.yaml", ACCEPTANCE_YAML)))
    # Layer equality covers name, op, edges (inputs), shapes, kernel, stride, padding, groups.
    assert from_onnx.layers == from_yaml.layers
    assert [l.macs for l in from_onnx] == [l.macs for l in from_yaml]
    assert from_onnx.total_macs == from_yaml.total_macs
    assert not any(l.name.startswith("bn") for l in from_onnx)  # BatchNorm folded away
    assert from_onnx.name == "m" and from_onnx.input_shape == (3, 16, 16)


def test_onnx_import_shapes_match_onnxruntime(tmp_path):
    model = _acceptance_model()
    net = _import(model, tmp_path)
    # expose every tensor the IR keeps and compare with what the runtime computes
    tensor_of = {"conv1": "c1", "pool1": "p1", "conv2b": "c2b", "res": "s", "cat": "cat",
                 "gap": "g", "fc": "y"}
    for t in tensor_of.values():
        if t != "y":
            model.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = dict(zip([o.name for o in sess.get_outputs()],
                    sess.run(None, {"x": np.zeros((1, 3, 16, 16), np.float32)})))
    for layer, tensor in tensor_of.items():
        shape = outs[tensor].shape[1:]
        assert net[layer].out_shape == tuple(shape) + (1,) * (3 - len(shape))


# -- ONNX: operators as exporters emit them -----------------------------------------------

def test_onnx_unnamed_nodes_and_duplicate_names(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"]),
             helper.make_node("Relu", ["a"], ["b"], name="act"),
             helper.make_node("Relu", ["b"], ["y"], name="act")]
    net = _import(_model(nodes, [_init("w", 4, 3, 3, 3)]), tmp_path)
    assert [l.name for l in net] == ["input", "conv_0", "act", "act_1"]
    assert net["conv_0"].out_shape == (4, 14, 14)


def test_onnx_torch_style_flatten_matmul_bias_dropout_and_clip(tmp_path):
    six = numpy_helper.from_array(np.array(6.0, np.float32), "six")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(
            np.array(0.0, np.float32))),
        helper.make_node("Clip", ["c", "zero", "six"], ["r6"], name="clip6"),
        helper.make_node("Clip", ["r6", "zero"], ["r"], name="clip0"),
        helper.make_node("Shape", ["r"], ["shp"]),
        helper.make_node("Gather", ["shp", "idx0"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["r", "target"], ["flat"], name="view"),
        helper.make_node("Dropout", ["flat"], ["d"], name="drop"),
        helper.make_node("MatMul", ["d", "fcw"], ["mm"], name="fc"),
        helper.make_node("Add", ["mm", "fcb"], ["y"], name="bias"),
    ]
    inits = [_init("w", 4, 3, 3, 3), six, _init("fcw", 4 * 14 * 14, 7), _init("fcb", 7),
             numpy_helper.from_array(np.array(0, np.int64), "idx0"),
             numpy_helper.from_array(np.array([0], np.int64), "ax0"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    net = _import(_model(nodes, inits), tmp_path)
    assert [(l.name, l.op) for l in net] == [
        ("input", "input"), ("conv", "conv"), ("clip6", "relu6"), ("clip0", "relu"),
        ("view", "flatten"), ("fc", "fc")]
    assert net["view"].out_shape == (784, 1, 1)
    assert net["fc"].out_shape == (7, 1, 1) and net["fc"].macs == 784 * 7


def test_onnx_opset6_clip_attributes(tmp_path):
    nodes = [helper.make_node("Clip", ["x"], ["y"], name="c", min=0.0, max=6.0)]
    assert _import(_model(nodes, [], opset=6), tmp_path)["c"].op == "relu6"


def test_onnx_global_pools_reducemean_squeeze_identity(tmp_path):
    nodes = [
        helper.make_node("GlobalMaxPool", ["x"], ["a"], name="gmp"),
        helper.make_node("Identity", ["x"], ["i"], name="id"),
        helper.make_node("ReduceMean", ["i"], ["m"], name="mean", axes=[2, 3], keepdims=1),
        helper.make_node("Squeeze", ["m", "axes"], ["s"], name="sq"),
        helper.make_node("Sigmoid", ["s"], ["y"], name="sig"),
    ]
    axes = numpy_helper.from_array(np.array([2, 3], np.int64), "axes")
    net = _import(_model(nodes, [axes], outputs=("y", "a")), tmp_path)
    assert net["gmp"].op == "maxpool" and net["gmp"].out_shape == (3, 1, 1)
    assert net["gmp"].kernel == (16, 16)
    assert [net[n].op for n in ("id", "mean", "sq", "sig")] == ["identity", "gap", "flatten",
                                                                "sigmoid"]
    assert net["sig"].out_shape == (3, 1, 1)


@pytest.mark.parametrize("auto_pad,stride,hw", [("SAME_UPPER", 2, (15, 16)),
                                               ("SAME_LOWER", 3, (16, 13)),
                                               ("VALID", 2, (15, 15))])
def test_onnx_auto_pad_matches_onnxruntime(tmp_path, auto_pad, stride, hw):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="c", auto_pad=auto_pad,
                              strides=[stride, stride])]
    model = _model(nodes, [_init("w", 2, 3, 4, 3)], in_shape=(1, 3, *hw))
    net = _import(model, tmp_path)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"x": np.zeros((1, 3, *hw), np.float32)})
    assert net["c"].out_shape == out.shape[1:]
    pt, pl, pb, pr = net["c"].padding
    if auto_pad == "SAME_UPPER":
        assert pb >= pt and pr >= pl  # the odd pixel goes at the end
    elif auto_pad == "SAME_LOWER":
        assert pt >= pb and pl >= pr


def test_onnx_pad_is_merged_into_the_next_conv_and_ceil_pools(tmp_path):
    pads = numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 3, 0], np.int64), "pads")
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], name="pad"),
             helper.make_node("Conv", ["p", "w"], ["c"], name="conv", pads=[1, 0, 0, 1]),
             helper.make_node("AveragePool", ["c"], ["y"], name="pool", kernel_shape=[3, 3],
                              strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)]
    model = _model(nodes, [pads, _init("w", 2, 3, 3, 3)])
    net = _import(model, tmp_path)
    assert "pad" not in net
    assert net["conv"].padding == (2, 2, 3, 1)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"x": np.zeros((1, 3, 16, 16), np.float32)})
    assert net["pool"].out_shape == out.shape[1:] and net["pool"].ceil_mode


def test_onnx_symbolic_batch_is_accepted(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="r")]
    net = _import(_model(nodes, [], in_shape=("N", 3, 8, 8)), tmp_path)
    assert net.input_shape == (3, 8, 8)


@pytest.mark.parametrize("case,expected", [
    ("batch", r"m.onnx: graph.input\(x\): must have batch dimension 1, not 2$"),
    ("leaky", r"m.onnx: nodes\[0\]\(lk\): must be a supported operator \(.*\), not LeakyRelu$"),
    ("mul", r"m.onnx: nodes\[1\]\(m\): must have a constant operand \(Mul of two activations "
            r"is not supported\)$"),
    ("clip", r"m.onnx: nodes\[0\]\(c\): must clip to \[0, 6\] \(relu6\) or \[0, inf\) "
             r"\(relu\), not \[-1.0, 1.0\]$"),
    ("concat0", r"m.onnx: nodes\[0\]\(cat\).axis: must be 1 \(channels\), not 0$"),
    ("kernel", r"m.onnx: nodes\[0\]\(c\).kernel: must fit the padded input \(16\), "
               r"not span 17$"),
    ("gemm", r"m.onnx: nodes\[0\]\(fc\): weight must have 768 input features "
             r"\(input \[3, 16, 16\]\), not 10$"),
])
def test_onnx_errors_are_one_line_naming_file_and_node(tmp_path, case, expected):
    shape = (1, 3, 16, 16)
    inits = []
    if case == "batch":
        nodes, shape = [helper.make_node("Relu", ["x"], ["y"])], (2, 3, 16, 16)
    elif case == "leaky":
        nodes = [helper.make_node("LeakyRelu", ["x"], ["y"], name="lk")]
    elif case == "mul":
        nodes = [helper.make_node("Relu", ["x"], ["r"]),
                 helper.make_node("Mul", ["x", "r"], ["y"], name="m")]
    elif case == "clip":
        nodes = [helper.make_node("Clip", ["x"], ["y"], name="c", min=-1.0, max=1.0)]
    elif case == "concat0":
        nodes = [helper.make_node("Concat", ["x", "x"], ["y"], name="cat", axis=0)]
    elif case == "kernel":
        nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="c")]
        inits = [_init("w", 2, 3, 17, 17)]
    else:
        nodes = [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)]
        inits = [_init("w", 4, 10)]
    model = _model(nodes, inits, in_shape=shape, opset=6 if case == "clip" else 13)
    msg = _err(lambda: _import(model, tmp_path))
    assert "\n" not in msg
    assert re.search(expected, msg), msg


def test_onnx_garbage_file_is_an_input_error(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x00\x01not a protobuf at all\xff" * 10)
    assert _err(lambda: load_network(str(path))).endswith(
        "bad.onnx: is not a readable ONNX model (DecodeError)")


# -- YAML ---------------------------------------------------------------------------------

def test_yaml_defaults_names_inputs_and_padding_forms(tmp_path):
    path = _write(tmp_path, "n.yaml", """\
        input: [4, 10, 10]
        layers:
          - {op: conv, out_channels: 4, kernel: [3, 1], padding: [1, 0]}
          - {op: relu}
          - {name: p, op: avgpool, kernel: 2, ceil_mode: true, inputs: input}
          - {op: conv, out_channels: 4, kernel: 3, stride: [2, 1], padding: [0, 1, 2, 1],
             dilation: 1, groups: 2, inputs: relu_1}
        """)
    net = load_network(str(path))
    assert net.name == "n"
    assert [l.name for l in net] == ["input", "conv_0", "relu_1", "p", "conv_3"]
    assert net["conv_0"].out_shape == (4, 10, 10) and net["conv_0"].padding == (1, 0, 1, 0)
    assert net["p"].stride == (2, 2) and net["p"].out_shape == (4, 5, 5)
    # (10 + 0 + 2 - 3) // 2 + 1 = 5 rows, (10 + 1 + 1 - 3) // 1 + 1 = 10 columns
    assert net["conv_3"].out_shape == (4, 5, 10) and net["conv_3"].groups == 2


@pytest.mark.parametrize("text,expected", [
    ("input: [3, 8, 8]\nlayers:\n  - {op: conv, out_channels: 4, kernel: 3}\n"
     "  - {op: relu}\n  - {op: relu}\n  - {op: conv, out_channels: 2, kernell: 3}\n",
     "layers[3].kernell: is not a known key (expected one of: name, op, inputs, out_channels, "
     "kernel, stride, padding, dilation, groups); did you mean 'kernel'?"),
    ("input: [3, 8, 8]\nlayers:\n  - {op: lstm}\n",
     "layers[0].op: must be one of conv, fc, maxpool, avgpool, gap, add, concat, relu, relu6, "
     "sigmoid, flatten, identity, not 'lstm'"),
    ("layers:\n  - {op: relu}\n", "input: is required"),
    ("input: [3, -8, 8]\nlayers:\n  - {op: relu}\n",
     "input: must have positive dimensions, not [3, -8, 8]"),
    ("input: [3, 4, 4]\nlayers:\n  - {op: conv, out_channels: 2, kernel: 5, padding: 0}\n",
     "layers[0].kernel: must fit the padded input (4), not span 5"),
    ("input: [3, 4, 4]\nlayers:\n  - {op: maxpool, kernel: 2}\n  - {op: add, inputs: "
     "[input, maxpool_0]}\n",
     "layers[1].inputs: of add must all have the same shape; input 0 is [3, 4, 4], input 1 is "
     "[3, 2, 2]"),
    ("input: [3, 4, 4]\nlayers:\n  - {op: fc, out_features: 2.5}\n",
     "layers[0].out_features: must be an integer, not 2.5"),
    ("input: [3, 4, 4]\nlayers: []\n", "layers: must be a non-empty list of layers, not []"),
    ("input: [3, 4, 4]\ninput: [3, 4, 4]\nlayers: []\n",
     "line 2: is not valid YAML: duplicate key 'input'"),
    ("input: [3, 4, 4]\nlayers:\n  - {op: relu, name: a}\n  - {op: relu, name: a}\n",
     "layers[1].name: must be unique, not repeat 'a'"),
])
def test_yaml_errors_name_file_field_and_expectation(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert _err(lambda: load_network(str(path))) == f"{path}: {expected}"


@pytest.mark.parametrize("name", zoo.names())
def test_yaml_round_trips_every_builtin(name):
    net = zoo.builtin(name)
    text = yaml.safe_dump(network_to_dict(net), sort_keys=False)
    back = network_from_dict(yaml.safe_load(text), source=f"{name}.yaml")
    assert back.layers == net.layers and back.name == net.name


_VALUES = st.one_of(st.integers(-2, 9), st.lists(st.integers(-1, 6), max_size=5),
                    st.text(max_size=3), st.booleans(), st.none(), st.floats(0, 4))
_KEYS = st.sampled_from(["name", "op", "inputs", "out_channels", "kernel", "stride", "padding",
                         "dilation", "groups", "ceil_mode", "out_features", "bogus"])
_OPS = st.sampled_from(["conv", "fc", "maxpool", "avgpool", "gap", "add", "concat", "relu",
                        "flatten", "identity", "input", "nope"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.fixed_dictionaries({"op": _OPS}, optional={
    "name": st.sampled_from(["a", "b", "input", 3]),
    "inputs": st.one_of(st.sampled_from(["a", "b", "input"]),
                        st.lists(st.sampled_from(["a", "b", "input", "zz"]), max_size=3)),
}).flatmap(lambda d: st.dictionaries(_KEYS, _VALUES, max_size=3).map(lambda e: {**e, **d})),
    max_size=6), st.one_of(st.just([3, 8, 8]), st.lists(st.integers(-1, 9), max_size=4)))
def test_yaml_random_documents_never_crash(layers, input_shape):
    try:
        net = network_from_dict({"input": input_shape, "layers": layers}, source="r.yaml")
    except InputError as exc:
        assert str(exc).startswith("r.yaml") and "\n" not in str(exc)
    else:
        assert isinstance(net, Network)
        net.check()


# -- SCALE-Sim ----------------------------------------------------------------------------

SCALESIM_CSV = """\
Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
Conv1, 18, 18, 3, 3, 3, 8, 1,
Conv2, 16, 16, 3, 3, 8, 16, 2,
Conv3, 10, 12, 3, 5, 16, 4, 1,
FC, 1, 1, 1, 1, 4, 10, 1,
"""


def _scalesim_macs(h, w, fh, fw, c, nf, s):
    """SCALE-Sim's own count: ofmap = ceil((ifmap - filter + stride) / stride)."""
    oh = math.ceil((h - fh + s) / s)
    ow = math.ceil((w - fw + s) / s)
    return oh * ow * fh * fw * c * nf, (nf, oh, ow)


def test_scalesim_rows_keep_their_shapes_and_macs(tmp_path):
    net = load_network(str(_write(tmp_path, "topo.csv", SCALESIM_CSV)))
    rows = [r.split(",") for r in SCALESIM_CSV.splitlines()[1:]]
    for row in rows:
        name, *values = [c.strip() for c in row if c.strip()]
        macs, shape = _scalesim_macs(*map(int, values))
        assert net[name].macs == macs and net[name].out_shape == shape
        assert net[name].in_shape == (int(values[4]), int(values[0]), int(values[1]))
    # Conv2 reads Conv1 (8x16x16 matches), Conv3 and FC get fresh inputs of their stated shape
    assert net["Conv2"].inputs == ("Conv1",)
    assert net["Conv3"].inputs == ("Conv3/ifmap",) and net["Conv3/ifmap"].op == "input"
    assert net["FC"].inputs == ("FC/ifmap",)
    assert net["Conv2"].padding == (0, 0, 1, 1)  # the overhang of SCALE-Sim's ceil rounding
    assert net.input_shape == (3, 18, 18) and net.name == "topo"
    net.check()


@pytest.mark.parametrize("text,expected", [
    ("Layer, IFMAP Height\nC, 1,\n", "row 1: must be the header 'Layer name, IFMAP Height, "
                                      "IFMAP Width, Filter Height, Filter Width, Channels, "
                                      "Num Filter, Strides,', not 'Layer, IFMAP Height'"),
    (SCALESIM_CSV.splitlines()[0] + "\nC1, 8, 8, 3, x, 3, 4, 1,\n",
     "row 2.Filter Width: must be an integer, not 'x'"),
    (SCALESIM_CSV.splitlines()[0] + "\nC1, 8, 8, 3, 3, 3, 4,\n", "row 2: must have 8 values, "
                                                                 "not 7"),
    (SCALESIM_CSV.splitlines()[0] + "\nC1, 8, 8, 9, 3, 3, 4, 1,\n",
     "row 2.Filter Height: must be at most the IFMAP size (8), not 9"),
    (SCALESIM_CSV.splitlines()[0] + "\nC1, 8, 0, 3, 3, 3, 4, 1,\n",
     "row 2.IFMAP Width: must be positive, not 0"),
    (SCALESIM_CSV.splitlines()[0] + "\n", "must have at least one layer row after the header"),
])
def test_scalesim_errors(tmp_path, text, expected):
    path = tmp_path / "t.csv"
    path.write_text(text)
    assert _err(lambda: import_scalesim(path)) == f"{path}: {expected}"


# -- load_network -------------------------------------------------------------------------

def test_load_network_dispatch_and_errors(tmp_path):
    assert load_network("tiny").name == "tiny"
    sub = tmp_path / "nets"
    sub.mkdir()
    _write(sub, "a.yml", "input: [1, 4, 4]\nlayers:\n  - {op: relu}\n")
    assert load_network("a.yml", base_dir=sub).name == "a"
    assert _err(lambda: load_network("resnet101")).startswith(
        "resnet101: must be a built-in network (vgg16, resnet18, resnet50, googlenet, "
        "inception_v4, alexnet, mobilenet_v2, tiny) or a path ending")
    assert _err(lambda: load_network("net.txt")).startswith("net.txt: must be a built-in")
    assert _err(lambda: load_network("missing.yaml", base_dir=sub)) == \
        f"{sub / 'missing.yaml'}: does not exist"


# -- real exported models: the "light" (weightless) models shipped with the onnx wheel ------

_LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def _light(name):
    path = _LIGHT / f"light_{name}.onnx"
    if not path.is_file():
        pytest.skip(f"{path} is not in this onnx wheel")
    return load_network(str(path))


def _structure(layer):
    """What must agree between an exported model and our built-in, names aside."""
    if layer.op in ("gap", "maxpool", "avgpool") and layer.out_shape[1:] == (1, 1):
        return ("global pool",)  # exporters write GAP as a full-map AveragePool
    if layer.op in ("maxpool", "avgpool"):
        return (layer.op, layer.kernel, layer.stride)
    return (layer.op, layer.kernel, layer.stride, layer.padding, layer.groups,
            layer.out_shape[0])


def _same_structure(a, b):
    match = lambda x, y: _structure(x["layer"]) == _structure(y["layer"])  # noqa: E731
    return nx.is_isomorphic(a.graph(), b.graph(), node_match=match)


def test_exported_resnet50_is_our_resnet50():
    exported = _light("resnet50")  # Caffe2 export: Sum for residuals, BN folded, no names
    ours = zoo.builtin("resnet50")
    assert _same_structure(exported, ours)
    assert exported.total_macs == ours.total_macs
    assert exported.total_macs == pytest.approx(4.09e9, rel=0.01)


def test_exported_googlenet_has_our_structure():
    # This Caffe2 conversion predates ONNX's ceil_mode, so its pools round down (55-27-13-6
    # maps, 1.43 GMAC); the layers and their wiring are those of the paper's network.
    exported = _light("inception_v1")
    assert _same_structure(exported, zoo.builtin("googlenet"))
    assert [l.out_shape[1] for l in exported if l.op == "maxpool" and l.stride == (2, 2)] == \
        [55, 27, 13, 6]


def test_exported_vgg19_matches_published_macs():
    assert _light("vgg19").total_macs == pytest.approx(19.63e9, rel=0.01)


def test_the_yaml_example_in_docs_loads(tmp_path):
    doc = (Path(__file__).parents[2] / "docs" / "networks.md").read_text()
    block = doc.split("## Our YAML format", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    net = load_network(str(_write(tmp_path, "small.yaml", block)))
    assert net["cat"].out_shape == (16, 16, 16) and net["fc"].out_shape == (10, 1, 1)
    assert net["b1"].kernel == (1, 7) and net["b1"].padding == (0, 3, 0, 3)
