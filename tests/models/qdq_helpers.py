"""Shared by the QDQ tests: small float models built with ``onnx.helper`` and their
``onnxruntime.quantization.quantize_static`` QDQ versions (uint8 activations, per-channel int8
weights), and the calibration data.  Tests outside tests/models put this folder on
``sys.path`` to import it."""

from __future__ import annotations

import numpy as np


class RandomCalibration:
    """A ``CalibrationDataReader``: ``n`` seeded standard-normal inputs named ``x``."""

    def __init__(self, shape, seed, n=8):
        rng = np.random.default_rng(seed)
        self._data = iter([{"x": rng.normal(0, 1, shape).astype(np.float32)}
                           for _ in range(n)])

    def get_next(self):
        return next(self._data, None)


def conv_node(nodes, inits, rng, x, y, c_in, c_out, k, stride=1, relu=True):
    """Append a k×k Conv (random weights and bias, 'same' padding) from tensor ``x`` to
    tensor ``y`` (through a Relu when ``relu``) to ``nodes`` / ``inits``; return ``y``."""
    from onnx import helper, numpy_helper

    w = rng.normal(0, 1 / np.sqrt(c_in * k * k), (c_out, c_in, k, k)).astype(np.float32)
    b = rng.normal(0, 0.1, c_out).astype(np.float32)
    inits += [numpy_helper.from_array(w, y + "_w"), numpy_helper.from_array(b, y + "_b")]
    out = y + "_pre" if relu else y
    nodes.append(helper.make_node("Conv", [x, y + "_w", y + "_b"], [out], name=y,
                                  kernel_shape=[k, k], strides=[stride] * 2, pads=[k // 2] * 4))
    if relu:
        nodes.append(helper.make_node("Relu", [out], [y], name=y + "_relu"))
    return y


def gemm_head(nodes, inits, rng, x, features, std, classes=10):
    """Append a Flatten of tensor ``x`` (``features`` values) and a Gemm to ``classes``
    outputs named ``y`` (weights normal with ``std``, bias with 0.1) to ``nodes`` /
    ``inits``; return ``y``."""
    from onnx import helper, numpy_helper

    nodes.append(helper.make_node("Flatten", [x], ["f"], name="flat", axis=1))
    w = rng.normal(0, std, (classes, features)).astype(np.float32)
    b = rng.normal(0, 0.1, classes).astype(np.float32)
    inits += [numpy_helper.from_array(w, "fc_w"), numpy_helper.from_array(b, "fc_b")]
    nodes.append(helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], name="fc", transB=1))
    return "y"


def inception_block(rng):
    """An inception block on an 8×9×9 input: 1×1, 3×3 and 5×5 branches and a 3×3 max pool
    with a 1×1 conv, concatenated (their scales differ once quantised); (model, shape)."""
    from onnx import helper

    n, i = [], []
    branches = [conv_node(n, i, rng, "x", "b1", 8, 6, 1),
                conv_node(n, i, rng, "x", "b3", 8, 5, 3),
                conv_node(n, i, rng, "x", "b5", 8, 4, 5)]
    n.append(helper.make_node("MaxPool", ["x"], ["mp"], name="pool", kernel_shape=[3, 3],
                              strides=[1, 1], pads=[1] * 4))
    branches.append(conv_node(n, i, rng, "mp", "bp", 8, 3, 1))
    n.append(helper.make_node("Concat", branches, ["y"], name="cat", axis=1))
    return make_model(n, i, [1, 8, 9, 9], [1, 18, 9, 9]), [1, 8, 9, 9]


def make_model(nodes, inits, in_shape, out_shape):
    """A checked opset-17 model of ``nodes`` with float input ``x`` and output ``y``."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def quantise(model, shape, fp32_path, qdq_path, activation="uint8"):
    """Save ``model`` at ``fp32_path`` and its QDQ quantisation (calibrated on seeded
    random inputs of ``shape``) at ``qdq_path``; ``activation`` "uint8" or "int8"."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    onnx.save(model, fp32_path)
    quantize_static(str(fp32_path), str(qdq_path), RandomCalibration(shape, seed=7),
                    quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8 if activation == "uint8"
                    else QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=True)
    return qdq_path
