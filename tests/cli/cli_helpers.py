"""Helpers of the CLI tests: a run config writer, and small ONNX networks built with
``onnx.helper`` (a conv (+ ReLU) builder and the one way to wrap nodes into a saved model)."""

from __future__ import annotations

import numpy as np

__all__ = ["ConvBuilder", "write_config", "run_verify"]


def write_config(path, network, *, hardware, board="ecp5-85k", algorithms=None,
                 dataflows=None, layers=None, verify=None):
    """Write an int8 run config for ``network`` on ``board`` with the ``hardware`` pins (a
    YAML flow mapping) and the optional allowed sets, layer pins and verify network."""
    lines = [f"network: {network}", f"board: {board}", "precision: 8"]
    if algorithms:
        lines.append(f"algorithms: [{', '.join(algorithms)}]")
    if dataflows:
        lines.append(f"dataflows: [{', '.join(dataflows)}]")
    if hardware:
        lines.append(f"hardware: {hardware}")
    if layers:
        lines.append(f"layers: {layers}")
    if verify:
        lines.append(f"verify: {{network: {verify}}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def run_verify(capsys, *argv):
    """``omniconv verify ARGV`` in-process: (exit status, stdout, stderr)."""
    from omniconv.cli import main

    code = main(["verify", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


class ConvBuilder:
    """Collects Conv + Relu nodes with random float weights (seeded) and saves the model.

    ``conv(name, x, cin, cout, k, s=1, p=k//2)`` adds a conv named ``name`` reading tensor
    ``x`` and returns the name of its ReLU output; ``node(...)`` adds any other node;
    ``save(path, input_shape, output)`` writes the model (opset 13, IR 8) and returns
    ``path``.
    """

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []

    def conv(self, name, x, cin, cout, k, s=1, p=None, relu_name=None):
        from onnx import helper, numpy_helper

        p = k // 2 if p is None else p
        tag = f"w{len(self.inits)}"
        w = self.rng.standard_normal((cout, cin, k, k)).astype(np.float32)
        self.inits.append(numpy_helper.from_array(w, tag))
        self.nodes.append(helper.make_node("Conv", [x, tag], [f"{tag}_y"], name=name,
                                           kernel_shape=[k, k], strides=[s, s], pads=[p] * 4))
        self.nodes.append(helper.make_node("Relu", [f"{tag}_y"], [f"{tag}_r"],
                                           name=relu_name or f"{name}_relu"))
        return f"{tag}_r"

    def node(self, op, inputs, output, name, **attrs):
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], name=name, **attrs))
        return output

    def save(self, path, input_shape, output):
        import onnx
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            self.nodes, "net",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_shape))],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        onnx.save(model, path)
        return path
