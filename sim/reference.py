"""Independent references from onnxruntime: ConvInteger (exact int32) and float32 Conv.

Each call builds a one-node ONNX model with ``onnx.helper`` and runs it on the CPU execution
provider.  ConvInteger has int8 inputs and weights with zero points 0, so it computes the plain
integer convolution with zero padding; onnxruntime has no int16 kernel (int16 is checked
against the numpy int64 golden in sim/models/conv.py instead).
"""

from __future__ import annotations

import numpy as np

from sim.models.conv import conv_out_size, pair

__all__ = ["ort_conv_integer", "ort_conv_float"]


def _run(op: str, x: np.ndarray, w: np.ndarray, elem_in, elem_out, stride, padding, dilation,
         groups: int) -> np.ndarray:
    import onnx
    import onnxruntime as ort
    from onnx import helper

    sh, sw = pair(stride, "stride")
    ph, pw = pair(padding, "padding")
    dh, dw = pair(dilation, "dilation")
    oh = conv_out_size(x.shape[1], w.shape[2], sh, ph, dh)
    ow = conv_out_size(x.shape[2], w.shape[3], sw, pw, dw)
    node = helper.make_node(op, ["x", "w"], ["y"], strides=[sh, sw], pads=[ph, pw, ph, pw],
                            dilations=[dh, dw], group=groups,
                            kernel_shape=list(w.shape[2:]))
    graph = helper.make_graph(
        [node], "ref",
        [helper.make_tensor_value_info("x", elem_in, [1, *x.shape]),
         helper.make_tensor_value_info("w", elem_in, list(w.shape))],
        [helper.make_tensor_value_info("y", elem_out, [1, w.shape[0], oh, ow])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x[None], "w": w})[0][0]


def ort_conv_integer(x, w, stride=1, padding=0, dilation=1, groups: int = 1) -> np.ndarray:
    """onnxruntime ConvInteger of int8 x (C×H×W) and int8 w (N×C/g×R×S) → int64 N×OH×OW."""
    from onnx import TensorProto

    x = np.asarray(x)
    w = np.asarray(w)
    for name, a in (("x", x), ("w", w)):
        if a.min(initial=0) < -128 or a.max(initial=0) > 127:
            raise ValueError(f"{name} must hold int8 values, not range "
                             f"[{a.min()}, {a.max()}]")
    y = _run("ConvInteger", x.astype(np.int8), w.astype(np.int8), TensorProto.INT8,
             TensorProto.INT32, stride, padding, dilation, groups)
    return y.astype(np.int64)


def ort_conv_float(x, w, stride=1, padding=0, dilation=1, groups: int = 1) -> np.ndarray:
    """onnxruntime float32 Conv (for SQNR checks) → float64 N×OH×OW."""
    from onnx import TensorProto

    y = _run("Conv", np.asarray(x, dtype=np.float32), np.asarray(w, dtype=np.float32),
             TensorProto.FLOAT, TensorProto.FLOAT, stride, padding, dilation, groups)
    return y.astype(np.float64)
