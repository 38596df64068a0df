"""Network IR: Layer validation, shape inference (against onnxruntime), MACs, graph, errors."""

import itertools

import networkx as nx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from dse.errors import InputError
from dse.network import Layer, Network, NetworkBuilder
from dse.shapes import ShapeError, padding4, pair, pool_out_size


# -- shape inference against an independent runtime ----------------------------------------

def _ort_output_shape(node, in_shape, initializers=()):
    """Run one ONNX node on zeros in onnxruntime; return the output's [C, H, W]."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *in_shape])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([node], "g", [x], [y], initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"x": np.zeros((1, *in_shape), np.float32)})
    return tuple(out.shape[1:])


POOL_CASES = [  # (H, W), kernel, stride, pads (t, l, b, r), ceil_mode
    ((112, 112), 3, 2, (0, 0, 0, 0), True),    # GoogLeNet pool1: 112 -> 56
    ((14, 14), 3, 2, (0, 0, 0, 0), True),      # GoogLeNet pool4: 14 -> 7
    ((13, 13), 3, 2, (0, 0, 0, 0), False),
    ((7, 9), 2, 2, (1, 1, 1, 1), True),        # the ceil rule's "last window" clamp
    ((6, 6), 2, 2, (1, 0, 1, 0), True),
    ((11, 10), (3, 2), (2, 3), (1, 0, 0, 1), True),
    ((8, 8), 3, 3, (1, 1, 1, 1), False),
]


@pytest.mark.parametrize("hw,kernel,stride,pads,ceil", POOL_CASES)
def test_pool_shapes_match_onnxruntime(hw, kernel, stride, pads, ceil):
    k, s = pair("k", kernel), pair("s", stride)
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=list(k), strides=list(s),
                            pads=list(pads), ceil_mode=int(ceil))
    b = NetworkBuilder("t", (2, *hw))
    b.maxpool("p", kernel=kernel, stride=stride, padding=list(pads), ceil_mode=ceil)
    assert b.shape("p") == _ort_output_shape(node, (2, *hw))


CONV_CASES = [  # (C, H, W), out_channels, kernel, stride, pads, dilation, groups
    ((3, 15, 17), 4, 3, 2, (1, 1, 1, 1), 1, 1),
    ((4, 9, 9), 8, (1, 7), 1, (0, 3, 0, 3), 1, 2),
    ((6, 12, 10), 6, 3, 1, (2, 2, 2, 2), 2, 6),     # depthwise, dilated
    ((2, 11, 11), 3, 5, 3, (0, 1, 2, 0), 1, 1),     # asymmetric padding
]


@pytest.mark.parametrize("in_shape,out_c,kernel,stride,pads,dil,groups", CONV_CASES)
def test_conv_shapes_match_onnxruntime(in_shape, out_c, kernel, stride, pads, dil, groups):
    k = pair("k", kernel)
    w = onnx.numpy_helper.from_array(
        np.zeros((out_c, in_shape[0] // groups, *k), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=list(k),
                            strides=[stride, stride], pads=list(pads), dilations=[dil, dil],
                            group=groups)
    b = NetworkBuilder("t", in_shape)
    b.conv("c", out_channels=out_c, kernel=kernel, stride=stride, padding=list(pads),
           dilation=dil, groups=groups)
    assert b.shape("c") == _ort_output_shape(node, in_shape, [w])


def test_padding_forms():
    assert padding4("p", 2) == (2, 2, 2, 2)
    assert padding4("p", [1, 3]) == (1, 3, 1, 3)
    assert padding4("p", [0, 1, 2, 3]) == (0, 1, 2, 3)
    with pytest.raises(ShapeError, match=r"^p: must be an integer, \[h, w\] or "
                                         r"\[top, left, bottom, right\], not \[1, 2, 3\]$"):
        padding4("p", [1, 2, 3])
    with pytest.raises(ShapeError, match=r"^p: must be at least 0, not -1$"):
        padding4("p", -1)


def test_pool_ceil_never_starts_a_window_in_the_padding():
    # 5 + 1 + 1 padded, k=2, s=2: ceil gives 4 windows, but the 4th would start at 6 >= 5 + 1.
    assert pool_out_size(5, 2, 2, 1, 1, ceil_mode=True) == 3
    assert pool_out_size(5, 2, 2, 1, 1, ceil_mode=False) == 3
    assert pool_out_size(6, 3, 2, 0, 0, ceil_mode=True) == 3  # floor would give 2


# -- MACs ------------------------------------------------------------------------------------

def _brute_force_conv_macs(in_shape, out_c, k, s, pads, groups):
    """Count the multiply-accumulates of a naive grouped convolution loop nest."""
    c, h, w = in_shape
    (kh, kw), (sh, sw) = k, s
    pt, pl, pb, pr = pads
    oh = (h + pt + pb - kh) // sh + 1
    ow = (w + pl + pr - kw) // sw + 1
    per_group = c // groups
    count = 0
    for _o, _y, _x in itertools.product(range(out_c), range(oh), range(ow)):
        count += per_group * kh * kw  # every (input channel of the group, ky, kx), padding too
    return count


@pytest.mark.parametrize("in_shape,out_c,k,s,pads,groups", [
    ((4, 7, 6), 6, (3, 3), (1, 1), (1, 1, 1, 1), 1),
    ((6, 8, 8), 6, (3, 3), (2, 2), (1, 1, 1, 1), 6),
    ((4, 9, 5), 8, (1, 5), (1, 2), (0, 2, 0, 2), 2),
])
def test_conv_macs_match_brute_force(in_shape, out_c, k, s, pads, groups):
    b = NetworkBuilder("t", in_shape)
    b.conv("c", out_channels=out_c, kernel=list(k), stride=list(s), padding=list(pads),
           groups=groups)
    net = b.build()
    assert net["c"].macs == _brute_force_conv_macs(in_shape, out_c, k, s, pads, groups)
    assert net.total_macs == net["c"].macs


def test_fc_macs_flatten_the_input():
    b = NetworkBuilder("t", (4, 3, 2))
    b.fc("fc", out_features=5)
    b.flatten("flat", "input")
    b.fc("fc2", out_features=5)
    net = b.build()
    assert net["fc"].macs == 4 * 3 * 2 * 5 == net["fc2"].macs
    assert net["flat"].out_shape == (24, 1, 1)
    assert net.total_macs == 2 * 120


# -- graph structure --------------------------------------------------------------------------

def _branchy():
    b = NetworkBuilder("branchy", (8, 8, 8))
    b.conv("a", out_channels=4, kernel=3, padding=1)
    b.conv("b1", "a", out_channels=2, kernel=1)
    b.conv("b2", "a", out_channels=6, kernel=3, padding=1)
    b.concat("cat", ["b1", "b2"])
    b.sum("res", ["cat", "input"])
    b.act("relu", "out")
    return b.build()


def test_graph_edges_shapes_and_order():
    net = _branchy()
    g = net.graph()
    assert nx.is_directed_acyclic_graph(g)
    assert set(g.edges) == {("input", "a"), ("a", "b1"), ("a", "b2"), ("b1", "cat"),
                            ("b2", "cat"), ("cat", "res"), ("input", "res"), ("res", "out")}
    assert g.edges["b2", "cat"] == {"shape": (6, 8, 8), "index": 1}
    assert g.nodes["cat"]["layer"] is net["cat"]
    assert net["cat"].out_shape == (8, 8, 8)
    assert net.in_shapes("cat") == [(2, 8, 8), (6, 8, 8)]
    assert [l.name for l in net.consumers("a")] == ["b1", "b2"]
    assert [l.name for l in net.convs()] == ["a", "b1", "b2"]
    assert "cat" in net and "nope" not in net and len(net) == 7
    net.check()


def test_default_names_are_op_and_index_made_unique():
    b = NetworkBuilder("t", (3, 4, 4))
    assert b.add("relu") == "relu_1"
    assert b.add("relu", "relu_2") == "relu_2"
    b.add("identity", "identity_3")
    assert b.unique_name("relu_2") == "relu_2_1"


def test_check_rejects_tampered_shapes_and_order():
    net = _branchy()
    bad = Network(net.name, net.input_shape, list(net.layers))
    bad.layers[1] = Layer("a", "conv", ("input",), (8, 8, 8), (4, 7, 7), kernel=(3, 3),
                          padding=(1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"^layer 'a' out_shape must be \(4, 8, 8\), "
                                         r"not \(4, 7, 7\)$"):
        bad.check()
    swapped = Network(net.name, net.input_shape, [net.layers[1], net.layers[0]])
    with pytest.raises(ValueError, match=r"^layer 'a' must read earlier layers, not 'input'$"):
        swapped.check()


# -- Layer validation ---------------------------------------------------------------------

def test_layer_validates_kinds_and_values():
    ok = Layer("c", "conv", ["x"], [3, 8, 8], [4, 8, 8], kernel=[3, 3])
    assert ok.inputs == ("x",) and ok.in_shape == (3, 8, 8) and ok.kernel == (3, 3)
    with pytest.raises(ValueError, match=r"^Layer.op must be one of .*, not 'lstm'$"):
        Layer("c", "lstm", (), (1, 1, 1), (1, 1, 1))
    with pytest.raises(TypeError, match=r"^Layer.in_shape must be a tuple of 3 integers, "
                                        r"not \(3, 8\)$"):
        Layer("c", "relu", ("x",), (3, 8), (3, 8, 8))
    with pytest.raises(ValueError, match=r"^Layer.out_shape must hold integers of at least 1, "
                                         r"not \(0, 8, 8\)$"):
        Layer("c", "relu", ("x",), (3, 8, 8), (0, 8, 8))
    with pytest.raises(TypeError, match=r"^Layer.groups must be an integer, not 1.0$"):
        Layer("c", "conv", ("x",), (3, 8, 8), (3, 8, 8), groups=1.0)
    with pytest.raises(ValueError, match=r"^Layer.padding must hold integers of at least 0"):
        Layer("c", "conv", ("x",), (3, 8, 8), (3, 8, 8), padding=(0, -1, 0, 0))


def test_depthwise_property():
    b = NetworkBuilder("t", (8, 4, 4))
    b.conv("dw", out_channels=8, kernel=3, padding=1, groups=8)
    b.conv("gc", out_channels=8, kernel=3, padding=1, groups=2)
    net = b.build()
    assert net["dw"].is_depthwise and not net["gc"].is_depthwise


# -- builder errors: one InputError naming source and field ------------------------------

def _err(fn):
    with pytest.raises(InputError) as exc:
        fn()
    return str(exc.value)


def test_add_of_different_shapes_is_an_input_error():
    b = NetworkBuilder("t", (4, 8, 8), source="net.yaml")
    b.conv("a", out_channels=8, kernel=1)
    msg = _err(lambda: b.sum("s", ["a", "input"]))
    assert msg == ("net.yaml: s.inputs: of add must all have the same shape; input 0 is "
                   "[8, 8, 8], input 1 is [4, 8, 8]")


def test_concat_of_different_hw_is_an_input_error():
    b = NetworkBuilder("t", (4, 8, 8), source="net.yaml")
    b.maxpool("p", kernel=2)
    msg = _err(lambda: b.add("concat", "c", ["p", "input"], where="layers[1]"))
    assert msg == ("net.yaml: layers[1].inputs: of concat must have equal H and W; input 0 is "
                   "[4, 4, 4], input 1 is [4, 8, 8]")


@pytest.mark.parametrize("params,expected", [
    ({"out_channels": 4, "kernel": 7}, "x.kernel: must fit the padded input (5), not span 7"),
    ({"out_channels": 4, "kernel": 3, "dilation": 3, "padding": 1}, None),
    ({"out_channels": 4, "kernel": 3, "groups": 3}, "x.groups: must divide the input "
                                                    "channels (4), not 3"),
    ({"out_channels": 6, "kernel": 1, "groups": 4}, "x.groups: must divide out_channels (6), "
                                                    "not 4"),
    ({"out_channels": 0, "kernel": 1}, "x.out_channels: must be positive, not 0"),
    ({"out_channels": 2, "kernel": [3, 3, 3]}, "x.kernel: must be an integer or a list "
                                               "[h, w], not [3, 3, 3]"),
    ({"out_channels": 2, "kernel": 1, "stride": 0}, "x.stride: must be positive, not 0"),
    ({"kernel": 1}, "x.out_channels: is required for conv"),
    ({"out_channels": 2, "kernel": 1, "ceil_mode": True},
     "x.ceil_mode: is not a parameter of conv (expected: out_channels, kernel, stride, "
     "padding, dilation, groups)"),
])
def test_conv_parameter_errors(params, expected):
    b = NetworkBuilder("t", (4, 5, 5), source="f")
    if expected is None:  # dilated 3x3 (span 7) fits 5 + 2: a valid layer
        b.conv("x", **params)
        assert b.shape("x") == (4, 1, 1)
        return
    assert _err(lambda: b.conv("x", **params)) == f"f: {expected}"


def test_input_and_naming_errors():
    assert _err(lambda: NetworkBuilder("t", (3, 0, 4), source="f")) == \
        "f: input: must have positive dimensions, not [3, 0, 4]"
    assert _err(lambda: NetworkBuilder("t", (3, 4), source="f")) == \
        "f: input: must be [C, H, W] (three integers), not (3, 4)"
    b = NetworkBuilder("t", (3, 4, 4), source="f")
    b.act("relu", "r")
    assert _err(lambda: b.act("relu", "r")) == "f: r.name: must be unique, not repeat 'r'"
    assert _err(lambda: b.act("relu", "q", "nope")) == \
        "f: q.inputs: must name earlier layers, not 'nope'"
    assert _err(lambda: b.add("softmax", "s")).startswith("f: s.op: must be one of conv, fc")
    assert _err(lambda: b.sum("s", ["r"])) == \
        "f: s.inputs: must name at least 2 layer(s) for add, not 1"
    assert _err(lambda: b.maxpool("p", kernel=2, padding=2)) == \
        "f: p.padding: must be smaller than the kernel [2, 2], not [2, 2, 2, 2]"
