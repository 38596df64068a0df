"""Mutated ONNX models and odd configs through ``omniconv dse``: a result or one line and
exit 2, never a traceback.

A small valid model (convs with padding and stride, a concat, a residual add, pooling, a
fully connected head) is mutated the ways real files go wrong -- flipped or truncated bytes,
attributes with odd values, initialisers of the wrong shape, odd input dimensions, rewired or
unknown nodes, nodes or weights missing -- and each mutant runs through the command in
process.  Configs get odd pins, algorithm and dataflow sets, layer choices, boards and
objectives, mostly valid so that the search runs too.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")

from cli_helpers import ConvBuilder, write_config  # noqa: E402


def _base_model(tmp_path):
    from onnx import helper, numpy_helper

    net = ConvBuilder(3)
    stem = net.conv("stem", "x", 3, 8, 3, 2, 1)
    a = net.conv("a", stem, 8, 4, 1)
    b = net.conv("b", stem, 8, 4, 3)
    cat = net.node("Concat", [a, b], "cat", "cat", axis=1)
    res = net.conv("res", cat, 8, 8, 3)
    total = net.node("Add", [cat, res], "sum", "sum")
    pool = net.node("MaxPool", [total], "pool", "pool", kernel_shape=[2, 2], strides=[2, 2])
    gap = net.node("GlobalAveragePool", [pool], "gap", "gap")
    flat = net.node("Flatten", [gap], "flat", "flat", axis=1)
    w = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    net.inits.append(numpy_helper.from_array(w, "fc_w"))
    net.nodes.append(helper.make_node("Gemm", [flat, "fc_w"], ["logits"], name="fc", transB=1))
    return onnx.load(str(net.save(tmp_path / "base.onnx", [1, 3, 16, 12], "logits")))


_OPS = ["Conv", "Relu", "Add", "Concat", "MaxPool", "AveragePool", "Gemm", "MatMul", "Flatten",
        "GlobalAveragePool", "Reshape", "Softmax", "NoSuchOp", ""]
_ATTRS = ["kernel_shape", "strides", "pads", "dilations", "group", "axis", "auto_pad",
          "ceil_mode", "transB"]
_INTS = st.integers(-3, 9)


@st.composite
def mutants(draw, base):
    """Serialized bytes of ``base`` after one to three mutations."""
    model = onnx.ModelProto()
    model.CopyFrom(base)
    g = model.graph
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["attr", "dims", "input", "wire", "op", "drop", "bytes"]))
        if kind == "attr" and len(g.node):
            node = g.node[draw(st.integers(0, len(g.node) - 1))]
            name = draw(st.sampled_from(_ATTRS))
            for i, attr in enumerate(node.attribute):
                if attr.name == name:
                    del node.attribute[i]
                    break
            value = draw(st.one_of(st.lists(_INTS, max_size=5), _INTS,
                                   st.sampled_from(["SAME_UPPER", "VALID", "x"]),
                                   st.floats(-2, 2)))
            kind_of = onnx.AttributeProto.INTS if value == [] else None
            node.attribute.append(onnx.helper.make_attribute(name, value, attr_type=kind_of))
        elif kind == "dims" and len(g.initializer):
            init = g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
            dims = draw(st.lists(_INTS, max_size=5))
            del init.dims[:]
            init.dims.extend(dims)
        elif kind == "input":
            shape = g.input[0].type.tensor_type.shape
            dim = shape.dim[draw(st.integers(0, len(shape.dim) - 1))]
            if draw(st.booleans()):
                dim.dim_value = draw(st.integers(-2, 5000))
            else:
                dim.dim_param = "N"
        elif kind == "wire" and len(g.node):
            node = g.node[draw(st.integers(0, len(g.node) - 1))]
            if len(node.input):
                names = [n for nd in g.node for n in nd.output] + ["x", "nowhere", ""]
                node.input[draw(st.integers(0, len(node.input) - 1))] = draw(
                    st.sampled_from(names))
        elif kind == "op" and len(g.node):
            g.node[draw(st.integers(0, len(g.node) - 1))].op_type = draw(st.sampled_from(_OPS))
        elif kind == "drop":
            if draw(st.booleans()) and len(g.node):
                del g.node[draw(st.integers(0, len(g.node) - 1))]
            elif len(g.initializer):
                del g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
    data = bytearray(model.SerializeToString())
    if draw(st.integers(0, 5)) == 0:               # damage the file itself
        if draw(st.booleans()):
            data = data[:draw(st.integers(0, len(data)))]
        else:
            for _ in range(draw(st.integers(1, 5))):
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return _base_model(tmp_path_factory.mktemp("fuzz"))


def test_the_base_model_maps(tmp_path, base, capsys):
    from omniconv.cli import main

    (tmp_path / "m.onnx").write_bytes(base.SerializeToString())
    cfg = write_config(tmp_path / "m.yaml", "m.onnx", hardware="{rows: 4, cols: 4}")
    assert main(["dse", str(cfg), "--out", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "design.json").exists()


def _check_mutant(tmp_path, base, capsys, data):
    from omniconv.cli import main

    model = data.draw(mutants(base))
    (tmp_path / "m.onnx").write_bytes(model)
    cfg = write_config(tmp_path / "m.yaml", "m.onnx", hardware="{rows: 4, cols: 4}")
    out = tmp_path / "out"
    status = main(["dse", str(cfg), "--out", str(out)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if status == 0:
        assert (out / "design.json").exists()
    else:
        assert status == 2, err
        lines = [line for line in err.splitlines() if line.startswith("omniconv dse:")]
        # the model's fault, or (a mutant with larger layers) the pinned hardware's buffers
        # that hold none of its choices for some layer, named
        assert len(lines) == 1 and (str(tmp_path / "m.onnx") in lines[0]
                                    or "hardware: no overlay fitting" in lines[0]
                                    and "fit no algorithm in the buffers" in lines[0]), err


_HEALTH = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]


@settings(max_examples=50, deadline=None, suppress_health_check=_HEALTH)
@given(data=st.data())
def test_mutated_models_give_a_design_or_one_line(tmp_path, base, capsys, data):
    _check_mutant(tmp_path, base, capsys, data)


@pytest.mark.regress
@settings(max_examples=3000, deadline=None, suppress_health_check=_HEALTH)
@given(data=st.data())
def test_thousands_of_mutated_models(tmp_path, base, capsys, data):
    _check_mutant(tmp_path, base, capsys, data)


# -- configs through the command -----------------------------------------------------------

_HW_KEYS = ["rows", "cols", "a_width", "b_width", "acc_width", "winograd_m", "winograd_lanes",
            "fft_size", "act_buffer_kib", "weight_buffer_kib", "out_buffer_kib", "bus_bits",
            "sparse_lanes", "bogus"]
_ODD = st.one_of(st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128]), st.sampled_from([1, 2, 4]),
                 st.sampled_from([1, 2, 4]), st.sampled_from([1, 2, 4]),
                 st.integers(-4, 300), st.sampled_from([0, 3, 1 << 20]),
                 st.text(max_size=4), st.none(), st.floats(-1, 3), st.booleans(),
                 st.lists(st.integers(0, 9), max_size=2))


@st.composite
def configs(draw):
    """A tiny-network config with odd pins, sets and layer choices."""
    doc = {"network": draw(st.sampled_from(["tiny", "m.onnx", "tiny", "m.onnx", "nosuch"])),
           "board": draw(st.sampled_from(["ecp5-85k", "zu2", "zcu102", "ecp5"]))}
    if draw(st.booleans()):
        doc["hardware"] = draw(st.dictionaries(st.sampled_from(_HW_KEYS), _ODD, max_size=4))
    if draw(st.booleans()):
        doc["algorithms"] = draw(st.lists(st.sampled_from(
            ["im2col", "kn2row", "winograd", "fft", "winograd", "fft", "sparse_fft", "x"]),
            min_size=1, max_size=3, unique=True))
    if draw(st.booleans()):
        doc["dataflows"] = draw(st.lists(st.sampled_from(["ws", "os", "is", "ws", "xs"]),
                                         min_size=1, max_size=3, unique=True))
    if draw(st.booleans()):
        doc["layers"] = draw(st.dictionaries(
            st.sampled_from(["conv1", "conv2", "conv3", "fc", "nope"]),
            st.dictionaries(st.sampled_from(["algorithm", "dataflow", "variant"]),
                            st.sampled_from(["im2col", "kn2row", "winograd", "fft", "ws",
                                             "is", "patches", 3]), max_size=2), max_size=2))
    for key, values in (("precision", [8, 8, 16, 4]), ("objective", ["latency", "energy",
                                                                     "edp", "fast"])):
        if draw(st.booleans()):
            doc[key] = draw(st.sampled_from(values))
    return doc


@settings(max_examples=40, deadline=None, suppress_health_check=_HEALTH)
@given(doc=configs())
def test_odd_configs_give_a_design_or_one_line(tmp_path, base, capsys, doc):
    _check_config(tmp_path, base, capsys, doc)


@pytest.mark.regress
@settings(max_examples=1000, deadline=None, suppress_health_check=_HEALTH)
@given(doc=configs())
def test_a_thousand_odd_configs(tmp_path, base, capsys, doc):
    _check_config(tmp_path, base, capsys, doc)


def _check_config(tmp_path, base, capsys, doc):
    """``omniconv dse`` of ``doc`` writes a design or exits 2 with one line."""
    import yaml

    from omniconv.cli import main

    (tmp_path / "m.onnx").write_bytes(base.SerializeToString())
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    status = main(["dse", str(cfg), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if status != 0:
        assert status == 2, err
        lines = [line for line in err.splitlines() if line.startswith("omniconv dse:")]
        assert len(lines) == 1, err
