"""ONNX models, as exporters (torch.onnx included) really emit them, into the network IR.

The walk follows the graph's node order (ONNX requires it to be topological) and keeps, for
every tensor, either the IR layer that produces it or the fact that it is a constant (an
initializer, a ``Constant`` node, or anything computed from constants and ``Shape`` alone, such
as torch's ``Shape → Gather → Unsqueeze → Concat`` chains that feed a ``Reshape``).

What becomes what (see ``docs/networks.md`` for the full table):

- ``Conv`` → conv (``auto_pad``, ``pads``, ``strides``, ``dilations``, ``group``; the kernel from
  the weight's shape); ``BatchNormalization`` is folded into the preceding layer and vanishes,
  as does an ``Add``/``Sub``/``Mul``/``Div`` with a constant operand (a bias or a scale).
- ``Gemm`` and ``MatMul`` with a constant weight → fc.
- ``MaxPool``/``AveragePool`` (``ceil_mode``, ``pads``, ``auto_pad``) → maxpool/avgpool;
  ``GlobalAveragePool`` and ``ReduceMean`` over H and W → gap; ``GlobalMaxPool`` → maxpool
  over the whole map.
- ``Relu`` → relu; ``Clip`` with constant bounds → relu6 for [0, 6], relu for [0, ∞);
  ``Sigmoid`` → sigmoid.
- ``Add`` of two activations and ``Sum`` (Caffe2's n-ary add) → add; ``Concat`` on axis 1 → concat; ``Flatten``, ``Reshape`` to
  ``[1, N]`` and ``Squeeze`` of a 1×1 map → flatten; ``Identity`` → identity.
- ``Dropout``, ``LRN``, ``Softmax``/``LogSoftmax``, ``QuantizeLinear``/``DequantizeLinear``
  and a zero ``Pad`` (merged into the next conv or pool) leave no layer.

Layer names are the ONNX node names where present, else ``<op>_<node index>``, made unique;
the image input becomes the ``input`` node.  The batch dimension must be 1 (or symbolic).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..network import Network, NetworkBuilder

__all__ = ["import_onnx", "network_from_model", "SUPPORTED_OPS"]

#: Nodes that vanish: their output is their first input (batch norm is folded into the
#: producer's weights, the others do not change a shape and cost nothing on the overlay).
_PASS_THROUGH = ("BatchNormalization", "Dropout", "LRN", "Softmax", "LogSoftmax",
                 "QuantizeLinear", "DequantizeLinear")
#: Element-wise ops that vanish when one operand is a constant (bias, scale, mean).
_AFFINE = ("Add", "Sub", "Mul", "Div")
_ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Identity": "identity"}
#: ONNX operators the importer understands (anything else is an InputError).
SUPPORTED_OPS = tuple(sorted(set(_PASS_THROUGH + _AFFINE + tuple(_ACTIVATIONS) + (
    "Conv", "Gemm", "MatMul", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
    "ReduceMean", "Clip", "Concat", "Flatten", "Reshape", "Squeeze", "Pad", "Constant",
    "Shape", "Sum"))))
#: Ops that may appear on constant-only paths (shape arithmetic, weight dequantisation).
_CONST_FOLDABLE = set(SUPPORTED_OPS) | {"Gather", "Unsqueeze", "Cast", "Slice",
                                        "ConstantOfShape", "Floor", "Ceil", "Range",
                                        "Transpose", "Sqrt", "Equal", "Where", "Expand"}

_IR_OP = {"Conv": "conv", "Gemm": "fc", "MatMul": "fc", "MaxPool": "maxpool",
          "AveragePool": "avgpool", "GlobalAveragePool": "gap", "GlobalMaxPool": "maxpool",
          "ReduceMean": "gap", "Relu": "relu", "Sigmoid": "sigmoid", "Identity": "identity",
          "Add": "add", "Sum": "add", "Concat": "concat", "Flatten": "flatten", "Reshape": "flatten",
          "Squeeze": "flatten"}


def import_onnx(path: str | Path, *, tensors: dict[str, str] | None = None) -> Network:
    """Return the network of the ONNX model at *path*.

    *tensors*, when given, is filled with every activation tensor of the ONNX graph mapped to
    the IR layer that produces it (tensors of vanished nodes -- BatchNorm, Dropout,
    QuantizeLinear, ... -- map to the layer of their input), so that a caller reading more
    of the model than shapes (:mod:`.onnx_qdq`, the quantisation) can name layers exactly as
    this importer does without repeating its naming rules.

    Raises
    ------
    InputError
        The file cannot be read or parsed, its input is not one ``[1, C, H, W]`` tensor, or a
        node is unsupported or does not fit its inputs.
    """
    import onnx  # deferred: onnx is a heavy import and only this format needs it

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "", "does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... for a bad file
        raise InputError(path, "", f"is not a readable ONNX model ({type(exc).__name__})") \
            from None
    return network_from_model(model, source=path, name=path.stem, tensors=tensors)


def network_from_model(model, source: object = "<onnx>", name: str = "onnx", *,
                       tensors: dict[str, str] | None = None) -> Network:
    """Return the network of the in-memory ``onnx.ModelProto`` *model* (*tensors*: as for
    :func:`import_onnx`)."""
    importer = _Importer(model, source, name)
    network = importer.run()
    if tensors is not None:
        tensors.update(importer.act)
    return network


#: Fewest inputs of the operators whose handlers read more than the data input.
_MIN_INPUTS = {"Conv": 2, "Gemm": 2, "MatMul": 2, "Add": 2, "Sub": 2, "Mul": 2, "Div": 2,
               "Reshape": 2}

#: Kinds of the attributes the importer reads (others pass unchecked).
_ATTR_KINDS = {"kernel_shape": "ints", "strides": "ints", "pads": "ints", "dilations": "ints",
               "group": "int", "axis": "int", "ceil_mode": "int", "transA": "int",
               "transB": "int", "auto_pad": "str", "mode": "str"}


class _Importer:
    def __init__(self, model, source, name):
        import onnx
        from onnx import shape_inference

        try:
            model = shape_inference.infer_shapes(model, data_prop=True)
        except Exception:  # a model onnx cannot infer still imports: we infer shapes ourselves
            pass
        self.onnx = onnx
        self.graph = model.graph
        self.source = source
        self.name = name
        self.inits = {t.name: t for t in self.graph.initializer}
        self.shapes: dict[str, list | None] = {}
        for vi in list(self.graph.value_info) + list(self.graph.input) + list(self.graph.output):
            self.shapes[vi.name] = _dims(vi)
        for t in self.graph.initializer:
            self.shapes[t.name] = list(t.dims)
        self.act: dict[str, str] = {}          # tensor -> IR layer producing it
        self.const: dict[str, object] = {}      # tensor -> numpy value, or None if unknown
        self.pending_pad: dict[str, tuple] = {}  # tensor -> (t, l, b, r) from a Pad node
        for t in self.graph.initializer:
            self.const[t.name] = t

    # -- helpers -------------------------------------------------------------------------

    def error(self, field: str, message: str) -> InputError:
        return InputError(self.source, field, message)

    def value(self, tensor: str):
        """Return the numpy value of a constant tensor, or None when it is not known."""
        v = self.const.get(tensor)
        if v is None:
            return None
        if isinstance(v, np.ndarray):
            return v
        try:
            arr = self.onnx.numpy_helper.to_array(v)
        except Exception:  # external data not loaded: the value is unknown, the shape is not
            return None
        self.const[tensor] = arr
        return arr

    def const_shape(self, tensor: str) -> list | None:
        v = self.const.get(tensor)
        if isinstance(v, np.ndarray):
            return list(v.shape)
        return self.shapes.get(tensor)

    # -- the walk ------------------------------------------------------------------------

    def run(self) -> Network:
        inputs = [vi for vi in self.graph.input if vi.name not in self.inits]
        if len(inputs) != 1:
            names = [vi.name for vi in inputs]
            raise self.error("graph.input", f"must be exactly one image tensor, not {names}")
        image = inputs[0]
        shape = self._input_shape(image)
        self.b = NetworkBuilder(self.name, shape, source=self.source)
        self.act[image.name] = self.b.last
        for index, node in enumerate(self.graph.node):
            self.node(index, node)
        return self.b.build()

    def _input_shape(self, vi) -> tuple[int, int, int]:
        field = f"graph.input({vi.name})"
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
            raise self.error(field, "must be a tensor of shape [1, C, H, W], not unshaped")
        dims = tt.shape.dim
        if len(dims) != 4:
            raise self.error(field, f"must have shape [1, C, H, W], not rank {len(dims)}")
        if dims[0].HasField("dim_value") and dims[0].dim_value != 1:
            raise self.error(field, f"must have batch dimension 1, not {dims[0].dim_value}")
        out = []
        for d in dims[1:]:
            if not d.HasField("dim_value") or d.dim_value < 1:
                raise self.error(field, "must have fixed positive C, H and W, not "
                                        f"{[_dim_text(x) for x in dims]}")
            out.append(d.dim_value)
        return tuple(out)

    def node(self, index: int, node) -> None:
        op = node.op_type
        where = f"nodes[{index}]" + (f"({node.name})" if node.name else f"({op})")
        if node.domain not in ("", "ai.onnx"):
            raise self.error(where, f"must be a standard ONNX operator, not {node.domain}.{op}")
        live = [t for t in node.input if t in self.act]
        if op == "Constant":
            self._constant(node)
            return
        if not live:
            # constant folding territory: shape arithmetic, weight dequantisation
            if op not in _CONST_FOLDABLE:
                raise self._unsupported(where, op)
            for out in node.output:
                self.const[out] = None
            return
        for t in node.input:
            if t and t not in self.act and t not in self.const:
                raise self.error(where, f"reads tensor {t!r}, which no earlier node produces")
        if op == "Shape":
            self.const[node.output[0]] = None
            return
        if len(node.input) < _MIN_INPUTS.get(op, 1) or not node.output:
            raise self.error(where, f"must have at least {_MIN_INPUTS.get(op, 1)} inputs and "
                                    f"one output, not {len(node.input)} and "
                                    f"{len(node.output)}")
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            if op in _PASS_THROUGH:
                self._alias(node)
                return
            raise self._unsupported(where, op)
        handler(node, where, self._name(index, node, op))

    def _unsupported(self, where: str, op: str) -> InputError:
        return self.error(where, f"must be a supported operator ({', '.join(SUPPORTED_OPS)}), "
                                 f"not {op}")

    def _name(self, index: int, node, op: str) -> str:
        base = node.name or f"{_IR_OP.get(op, op.lower())}_{index}"
        return self.b.unique_name(base)

    def _alias(self, node, tensor: str | None = None) -> None:
        src = node.input[0] if tensor is None else tensor
        self.act[node.output[0]] = self.act[src]
        if src in self.pending_pad:
            self.pending_pad[node.output[0]] = self.pending_pad[src]

    def _constant(self, node) -> None:
        value = None
        for a in node.attribute:
            if a.name == "value":
                value = self.onnx.numpy_helper.to_array(a.t)
            elif a.name in ("value_float", "value_int"):
                value = np.array(self.onnx.helper.get_attribute_value(a))
            elif a.name in ("value_floats", "value_ints"):
                value = np.array(list(self.onnx.helper.get_attribute_value(a)))
        self.const[node.output[0]] = value

    def _attrs(self, node, where: str = "") -> dict:
        """The node's attributes, those this importer reads checked for their kind."""
        out = {}
        for a in node.attribute:
            value = self.onnx.helper.get_attribute_value(a)
            kind = _ATTR_KINDS.get(a.name)
            ok = {"ints": lambda v: isinstance(v, list)
                  and all(isinstance(i, int) for i in v),
                  "int": lambda v: isinstance(v, int),
                  "str": lambda v: isinstance(v, (bytes, str))}
            if kind is not None and not ok[kind](value):
                text = {"ints": "a list of integers", "int": "an integer",
                        "str": "a string"}[kind]
                raise self.error(f"{where or node.op_type}.{a.name}",
                                 f"must be {text}, not {value!r}")
            out[a.name] = value
        return out

    def _data(self, node, where: str) -> str:
        """Return the IR layer of the node's first input (which must be an activation)."""
        t = node.input[0]
        if t not in self.act:
            raise self.error(where, f"must take an activation as its first input, not the "
                                    f"constant {t!r}")
        if t in self.pending_pad and node.op_type not in ("Conv", "MaxPool", "AveragePool",
                                                                     "Pad"):
            raise self.error(where, f"must not follow a Pad node (only Conv and pools "
                                    f"absorb padding), not {node.op_type}")
        return self.act[t]

    def _emit(self, node, op: str, name: str, inputs, where: str, **params) -> None:
        layer = self.b.add(op, name, inputs, where=where, **params)
        self.act[node.output[0]] = layer

    # -- one method per ONNX operator ----------------------------------------------------

    def _window(self, node, where: str, kernel: list[int], attrs: dict, in_hw) -> dict:
        strides = list(attrs.get("strides", [1, 1]))
        dilations = list(attrs.get("dilations", [1, 1]))
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if len(kernel) != 2 or len(strides) != 2 or len(pads) != 4 or len(dilations) != 2:
            raise self.error(where, f"must be a 2-D {node.op_type} (kernel [kh, kw]), "
                                    f"not kernel {kernel}")
        auto_pad = attrs.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            pads = [0, 0, 0, 0]
            for axis in range(2):
                size, k, s, d = in_hw[axis], kernel[axis], strides[axis], dilations[axis]
                total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
                small = total // 2
                lo, hi = (small, total - small) if auto_pad == "SAME_UPPER" else \
                    (total - small, small)
                pads[axis], pads[axis + 2] = lo, hi
        elif auto_pad == "VALID":
            pads = [0, 0, 0, 0]
        elif auto_pad != "NOTSET":
            raise self.error(f"{where}.auto_pad", f"must be NOTSET, SAME_UPPER, SAME_LOWER or "
                                                  f"VALID, not {auto_pad!r}")
        extra = self.pending_pad.get(node.input[0])
        if extra is not None:
            pads = [p + e for p, e in zip(pads, extra)]
        return {"kernel": list(kernel), "stride": strides, "padding": pads,
                "dilation": dilations}

    def _op_Conv(self, node, where, name):
        x = self._data(node, where)
        if len(node.input) < 2 or node.input[1] not in self.const:
            raise self.error(where, "must have a constant weight (initializer) as input 1")
        w_shape = self.const_shape(node.input[1])
        if w_shape is None or len(w_shape) != 4:
            raise self.error(where, f"must have a 4-D weight [M, C/group, kh, kw], "
                                    f"not {w_shape}")
        attrs = self._attrs(node, where)
        groups = attrs.get("group", 1)
        in_c, h, w = self.b.shape(x)
        if w_shape[1] * groups != in_c:
            raise self.error(f"{where}.group", f"weight {w_shape} with group {groups} must "
                                                f"read {in_c} input channels")
        kernel = list(attrs.get("kernel_shape", w_shape[2:]))
        params = self._window(node, where, kernel, attrs, (h, w))
        self._emit(node, "conv", name, [x], where, out_channels=w_shape[0], groups=groups,
                   **params)

    def _pool(self, node, where, name, op):
        x = self._data(node, where)
        attrs = self._attrs(node, where)
        if "kernel_shape" not in attrs:
            raise self.error(f"{where}.kernel_shape", "is required")
        _, h, w = self.b.shape(x)
        params = self._window(node, where, list(attrs["kernel_shape"]), attrs, (h, w))
        if op == "avgpool":
            params.pop("dilation")
        self._emit(node, op, name, [x], where, ceil_mode=bool(attrs.get("ceil_mode", 0)),
                   **params)

    def _op_MaxPool(self, node, where, name):
        self._pool(node, where, name, "maxpool")

    def _op_AveragePool(self, node, where, name):
        self._pool(node, where, name, "avgpool")

    def _op_GlobalAveragePool(self, node, where, name):
        self._emit(node, "gap", name, [self._data(node, where)], where)

    def _op_GlobalMaxPool(self, node, where, name):
        x = self._data(node, where)
        _, h, w = self.b.shape(x)
        self._emit(node, "maxpool", name, [x], where, kernel=[h, w], stride=1)

    def _op_ReduceMean(self, node, where, name):
        x = self._data(node, where)
        axes = self._attrs(node, where).get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            value = self.value(node.input[1])
            axes = None if value is None else [int(a) for a in value.reshape(-1)]
        if axes is None or sorted(a % 4 for a in axes) != [2, 3]:
            raise self.error(f"{where}.axes", f"must be [2, 3] (a global average pool), "
                                              f"not {axes}")
        self._emit(node, "gap", name, [x], where)

    def _op_Relu(self, node, where, name):
        self._emit(node, "relu", name, [self._data(node, where)], where)

    def _op_Sigmoid(self, node, where, name):
        self._emit(node, "sigmoid", name, [self._data(node, where)], where)

    def _op_Identity(self, node, where, name):
        self._emit(node, "identity", name, [self._data(node, where)], where)

    def _op_Clip(self, node, where, name):
        x = self._data(node, where)
        attrs = self._attrs(node, where)
        bounds = [attrs.get("min"), attrs.get("max")]  # opset < 11 keeps them as attributes
        for i in (1, 2):
            if len(node.input) > i and node.input[i]:
                value = self.value(node.input[i])
                if value is None:
                    raise self.error(where, "must have constant min and max (a Constant or "
                                            "an initializer)")
                bounds[i - 1] = float(np.asarray(value).reshape(-1)[0])
        low, high = bounds
        if low == 0 and high == 6:
            op = "relu6"
        elif low == 0 and (high is None or math.isinf(high)):
            op = "relu"
        else:
            raise self.error(where, f"must clip to [0, 6] (relu6) or [0, inf) (relu), "
                                    f"not [{low}, {high}]")
        self._emit(node, op, name, [x], where)

    def _binary(self, node, where, name) -> bool:
        """Handle an element-wise op with a constant operand; return False if both are live."""
        live = [t for t in node.input if t in self.act]
        if len(live) == len(node.input):
            return False
        self._alias(node, live[0])
        return True

    def _op_Add(self, node, where, name):
        if self._binary(node, where, name):
            return
        xs = [self._data(node, where)] + [self.act[t] for t in node.input[1:]]
        self._emit(node, "add", name, xs, where)

    def _affine(self, node, where, name):
        if not self._binary(node, where, name):
            raise self.error(where, f"must have a constant operand ({node.op_type} of two "
                                    f"activations is not supported)")

    _op_Sub = _op_Mul = _op_Div = _affine

    def _op_Sum(self, node, where, name):
        consts = [t for t in node.input if t not in self.act]
        if consts:
            raise self.error(where, f"must sum activations only, not constants {consts}")
        if len(node.input) == 1:
            self._alias(node)
            return
        self._emit(node, "add", name, [self.act[t] for t in node.input], where)

    def _op_Concat(self, node, where, name):
        consts = [t for t in node.input if t not in self.act]
        if consts:
            raise self.error(where, "must concatenate activations only, not constants "
                                    f"{consts}")
        axis = self._attrs(node, where).get("axis")
        if axis is None or axis % 4 != 1:
            raise self.error(f"{where}.axis", f"must be 1 (channels), not {axis}")
        xs = [self.act[t] for t in node.input]
        if len(xs) == 1:
            self._alias(node)
            return
        self._emit(node, "concat", name, xs, where)

    def _op_Flatten(self, node, where, name):
        x = self._data(node, where)
        axis = self._attrs(node, where).get("axis", 1)
        if axis != 1:
            raise self.error(f"{where}.axis", f"must be 1 (keep the batch), not {axis}")
        self._emit(node, "flatten", name, [x], where)

    def _op_Reshape(self, node, where, name):
        x = self._data(node, where)
        c, h, w = self.b.shape(x)
        out = self.shapes.get(node.output[0])
        target = self.value(node.input[1]) if len(node.input) > 1 else None
        if target is not None:
            target = [int(v) for v in np.asarray(target).reshape(-1)]
        flat = c * h * w
        if out is not None and None not in out:
            if out == [1, c, h, w]:
                self._alias(node)
                return
            ok = len(out) == 2 and out[1] == flat
        elif target is not None:
            ok = len(target) == 2 and target[0] in (0, 1, -1) and target[1] in (-1, flat)
        else:
            # torch's x.view(x.size(0), -1): the target comes from Shape arithmetic
            ok = True
        if not ok:
            raise self.error(where, f"must reshape to [1, {flat}] (a flatten), not "
                                    f"{out if out is not None else target}")
        self._emit(node, "flatten", name, [x], where)

    def _op_Squeeze(self, node, where, name):
        x = self._data(node, where)
        c, h, w = self.b.shape(x)
        if (h, w) != (1, 1):
            raise self.error(where, f"must squeeze a [1, C, 1, 1] tensor (a flatten), not "
                                    f"[1, {c}, {h}, {w}]")
        self._emit(node, "flatten", name, [x], where)

    def _op_Gemm(self, node, where, name):
        x = self._data(node, where)
        attrs = self._attrs(node, where)
        if attrs.get("transA", 0):
            raise self.error(f"{where}.transA", "must be 0")
        w_shape = self.const_shape(node.input[1]) if node.input[1] in self.const else None
        if w_shape is None or len(w_shape) != 2:
            raise self.error(where, f"must have a constant 2-D weight B, not {w_shape}")
        k, n = (w_shape[1], w_shape[0]) if attrs.get("transB", 0) else w_shape
        self._fc(node, where, name, x, k, n)

    def _op_MatMul(self, node, where, name):
        x = self._data(node, where)
        w_shape = self.const_shape(node.input[1]) if node.input[1] in self.const else None
        if w_shape is None or len(w_shape) != 2:
            raise self.error(where, f"must multiply by a constant 2-D weight, not {w_shape}")
        self._fc(node, where, name, x, w_shape[0], w_shape[1])

    def _fc(self, node, where, name, x, k, n):
        c, h, w = self.b.shape(x)
        if k != c * h * w:
            raise self.error(where, f"weight must have {c * h * w} input features "
                                    f"(input [{c}, {h}, {w}]), not {k}")
        self._emit(node, "fc", name, [x], where, out_features=n)

    def _op_Pad(self, node, where, name):
        self._data(node, where)
        attrs = self._attrs(node, where)
        mode = attrs.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        pads = attrs.get("pads")
        if pads is None and len(node.input) > 1:
            value = self.value(node.input[1])
            pads = None if value is None else [int(v) for v in value.reshape(-1)]
        fill = self.value(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if fill is None:
            fill = np.array([attrs.get("value", 0.0)])
        if (mode != "constant" or pads is None or len(pads) != 8
                or any(pads[i] for i in (0, 1, 4, 5)) or min(pads) < 0
                or float(np.asarray(fill).reshape(-1)[0]) != 0.0):
            raise self.error(where, "must zero-pad H and W only, with constant pads, "
                                    f"not mode {mode} pads {pads}")
        t, left, b, r = pads[2], pads[3], pads[6], pads[7]
        prev = self.pending_pad.get(node.input[0], (0, 0, 0, 0))
        self._alias(node)
        self.pending_pad[node.output[0]] = tuple(
            p + q for p, q in zip(prev, (t, left, b, r)))


def _dims(vi) -> list | None:
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None
            for d in vi.type.tensor_type.shape.dim]


def _dim_text(d) -> str:
    return str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
