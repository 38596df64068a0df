"""QDQ-quantised ONNX models: the network, plus every layer's integer quantisation.

``onnxruntime.quantization.quantize_static`` in QDQ format (uint8 activations, per-channel
symmetric int8 weights, int32 bias) leaves the float graph in place and wraps it in
QuantizeLinear / DequantizeLinear pairs; onnxruntime's default session then fuses each
``DQ → op [→ Relu/Clip] → Q`` group into one integer kernel (QLinearConv, QGemm,
QLinearMatMul, QLinearAdd, QLinearConcat, QLinearAveragePool, QLinearGlobalAveragePool, and
MaxPool / Flatten / Reshape on the uint8 values).  To run such a model bit-exactly the
compiler needs, per fused group, what the float importer throws away: the activation scales
and zero points on each side, the int8 weights with their per-channel scales, and the int32
bias.  :func:`import_qdq` reads them.

The network itself is :func:`~dse.importers.onnx_import.import_onnx`'s, unchanged (Q/DQ
vanish there), and every record is keyed by that network's layer names: the float importer
reports which IR layer produces each ONNX tensor (its ``tensors`` argument), so the names
cannot drift apart.  The graph walk here is our own, written from the ONNX and onnxruntime
semantics, not shared with the integer golden model in ``sim/`` (which must stay an
independent check of what the compiler does with these records).

Every tensor of the walk is in one of three states: the float graph input before its
QuantizeLinear (*raw*), a uint8 tensor (*quantised*, a QuantizeLinear output), or a float
tensor that holds exactly dequantised values (*dequantised*, a DequantizeLinear output).
Flatten, Reshape, Identity and Dropout keep their input's state and quantisation (a reshape
of dequantised values is still dequantised values on the same grid).  A kernel must read
dequantised tensors and feed, through Relu/Clip that onnxruntime removes, exactly one
QuantizeLinear: only then is it one fused integer kernel.  Anything else is refused with an
:class:`~dse.errors.InputError` naming the node (docs/networks.md, "Quantised (QDQ) models").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..network import Network
from .onnx_import import import_onnx

__all__ = ["TensorQuant", "ConvQuant", "AddQuant", "ConcatQuant", "PoolQuant",
           "QuantizedNetwork", "is_qdq", "import_qdq"]

#: Ops onnxruntime fuses into one integer kernel (DQ inputs, one Q output).
_KERNELS = ("Conv", "Gemm", "MatMul", "Add", "Concat", "MaxPool", "AveragePool",
            "GlobalAveragePool")
#: Ops that move values without changing them: the quantisation passes through.
_PASS_THROUGH = ("Flatten", "Reshape", "Identity", "Dropout")
#: Activations onnxruntime removes between a kernel and its QuantizeLinear.
_REMOVABLE = ("Relu", "Clip")


# -- the records ------------------------------------------------------------------------------

def _float32_exact(value) -> float:
    """``value`` as a Python float, which holds any float32 exactly."""
    return float(np.float32(value))


@dataclass(frozen=True)
class TensorQuant:
    """The quantisation of one activation tensor: ``real = scale · (q − zero_point)``, ``q``
    uint8.

    ``scale`` is the model's float32 value exactly (a Python float holds every float32), so
    that the compiler can reproduce onnxruntime's float32 scale arithmetic bit for bit.
    """

    scale: float
    zero_point: int

    def __post_init__(self):
        s = self.scale
        if isinstance(s, bool) or not isinstance(s, (float, int, np.floating)):
            raise TypeError(f"TensorQuant.scale must be a float, not {s!r}")
        if not (math.isfinite(s) and s > 0 and _float32_exact(s) == s):
            raise ValueError(f"TensorQuant.scale must be a positive finite float32 value, "
                             f"not {s!r}")
        z = self.zero_point
        if isinstance(z, bool) or not isinstance(z, (int, np.integer)) or not 0 <= z <= 255:
            raise ValueError(f"TensorQuant.zero_point must be an integer in [0, 255] (uint8), "
                             f"not {z!r}")
        object.__setattr__(self, "scale", float(s))
        object.__setattr__(self, "zero_point", int(z))

    def __str__(self) -> str:
        # nine significant digits name a float32 uniquely; errors stay one short line
        return f"scale {self.scale:.9g}, zero point {self.zero_point}"


def _frozen_array(owner: str, name: str, value, dtype, shape) -> np.ndarray:
    """A read-only copy of *value* in *dtype*, checked for *shape* (``None``: any length)."""
    arr = np.asarray(value)
    if arr.dtype != np.dtype(dtype) and not np.can_cast(arr.dtype, dtype, "safe"):
        raise TypeError(f"{owner}.{name} must be {np.dtype(dtype)}, not {arr.dtype}")
    arr = np.array(arr, dtype=dtype)
    if len(arr.shape) != len(shape) or any(w is not None and a != w
                                           for a, w in zip(arr.shape, shape)):
        raise ValueError(f"{owner}.{name} must have shape {tuple(shape)}, not {arr.shape}")
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class ConvQuant:
    """A conv or fc layer as onnxruntime's QLinearConv / QGemm / QLinearMatMul runs it:
    ``acc = Σ (x − x.zero_point) · weight + bias`` exactly, requantised with the float32
    scale ``(x.scale · weight_scale[n]) / y.scale`` to ``y``.

    Members
    -------
    x, y: the input's and the output's quantisation (``y`` after a removed Relu/Clip).
    weight: int8; conv ``N × C/groups × R × S`` as ONNX stores it; fc ``N × K`` in the
        framework's order, ``K`` running over the input flattened as ``(C, H, W)`` (a Gemm
        without ``transB`` and a MatMul store ``K × N``: they are transposed here).
    weight_scale: float32, one per output channel ``(N,)`` (a per-tensor scale repeated).
    weight_zero_point: int64 ``(N,)``, all 0: the importer refuses asymmetric weights, which
        would add a ``Σ x · w_zp`` term the overlay does not compute.
    bias: int32 ``(N,)`` in accumulator units (zeros where the model has none).
    relu: a Relu or Clip was removed between the layer and its QuantizeLinear (the output
        zero point and saturation do its clipping; informational).

    Arrays are read-only copies; equality compares them by value.
    """

    x: TensorQuant
    y: TensorQuant
    weight: np.ndarray
    weight_scale: np.ndarray
    weight_zero_point: np.ndarray
    bias: np.ndarray
    relu: bool = False

    def __post_init__(self):
        w = np.asarray(self.weight)
        if w.ndim not in (2, 4):
            raise ValueError(f"ConvQuant.weight must be N×C×R×S or N×K, not shape {w.shape}")
        n = w.shape[0]
        fields = (("weight", self.weight, np.int8, (None,) * w.ndim),
                  ("weight_scale", self.weight_scale, np.float32, (n,)),
                  ("weight_zero_point", self.weight_zero_point, np.int64, (n,)),
                  ("bias", self.bias, np.int32, (n,)))
        for name, value, dtype, shape in fields:
            object.__setattr__(self, name, _frozen_array("ConvQuant", name, value, dtype, shape))
        if not np.all(np.isfinite(self.weight_scale) & (self.weight_scale > 0)):
            raise ValueError("ConvQuant.weight_scale must be positive finite float32 values")
        object.__setattr__(self, "relu", bool(self.relu))

    def __eq__(self, other):
        if not isinstance(other, ConvQuant):
            return NotImplemented
        return (self.x == other.x and self.y == other.y and self.relu == other.relu
                and all(np.array_equal(getattr(self, f), getattr(other, f))
                        and getattr(self, f).shape == getattr(other, f).shape
                        for f in ("weight", "weight_scale", "weight_zero_point", "bias")))

    __hash__ = None


@dataclass(frozen=True)
class AddQuant:
    """An add of two tensors (QLinearAdd): ``a`` and ``b`` requantised to ``y``."""

    a: TensorQuant
    b: TensorQuant
    y: TensorQuant


@dataclass(frozen=True)
class ConcatQuant:
    """A channel concatenation (QLinearConcat): each input, in order, requantised to ``y``
    (copied where its quantisation equals ``y``)."""

    inputs: tuple[TensorQuant, ...]
    y: TensorQuant

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))


@dataclass(frozen=True)
class PoolQuant:
    """A maxpool (``x == y``: onnxruntime runs it on the uint8 values), average pool
    (QLinearAveragePool) or global average pool (QLinearGlobalAveragePool).

    ``count_include_pad`` is the ONNX AveragePool attribute (divide by the whole window, or
    by the taps inside the map); the IR's avgpool has no such parameter, and onnxruntime's
    default (``False``) is not what a padded window's ``kh·kw`` divisor gives.  It is
    ``False`` for maxpool and gap.
    """

    x: TensorQuant
    y: TensorQuant
    count_include_pad: bool = False


LayerQuant = ConvQuant | AddQuant | ConcatQuant | PoolQuant


@dataclass(frozen=True)
class QuantizedNetwork:
    """A QDQ model: :func:`import_onnx`'s network and its quantisation by IR layer name.

    Members
    -------
    network: exactly what :func:`import_onnx` returns for the file.
    input: the graph input's QuantizeLinear.
    outputs: IR layer producing each graph output → the quantisation of that output (its
        DequantizeLinear's, or the QuantizeLinear's where the graph returns uint8).
    output_names: IR layer → the ONNX graph output's name.
    layers: the records of the conv, fc, add, concat, maxpool, avgpool and gap layers.
    activations: the quantisation of every IR layer's output tensor (``input`` included);
        read it through :meth:`tensor`.
    """

    network: Network
    input: TensorQuant
    outputs: dict[str, TensorQuant]
    output_names: dict[str, str]
    layers: dict[str, LayerQuant]
    activations: dict[str, TensorQuant] = field(default_factory=dict)

    def tensor(self, layer_name: str) -> TensorQuant:
        """The quantisation of IR layer *layer_name*'s output tensor.  A relu, flatten or
        identity layer has its producer's: onnxruntime removes the relu into the producer's
        requantisation and moves the others' uint8 values unchanged."""
        try:
            return self.activations[layer_name]
        except KeyError:
            raise KeyError(f"{layer_name!r} is not a layer of network "
                           f"{self.network.name!r}") from None


# -- detection --------------------------------------------------------------------------------

def _load(model_or_path, weights: bool):
    import onnx  # deferred: a heavy import that only ONNX input needs
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    return onnx.load(str(model_or_path), load_external_data=weights)


def is_qdq(model_or_path) -> bool:
    """Whether a model (``onnx.ModelProto`` or path) quantises its activations: a
    QuantizeLinear or DequantizeLinear reads a tensor computed from a graph input.  A model
    that only dequantises constant weights (weight-only quantisation) is a float model."""
    graph = _load(model_or_path, weights=False).graph
    inits = {t.name for t in graph.initializer}
    live = {vi.name for vi in graph.input if vi.name not in inits}
    for node in graph.node:
        if any(t in live for t in node.input):
            if node.op_type in ("QuantizeLinear", "DequantizeLinear") and node.input[0] in live:
                return True
            live.update(t for t in node.output if t)
    return False


# -- the import -------------------------------------------------------------------------------

def import_qdq(path: str | Path) -> QuantizedNetwork:
    """Return the network and per-layer quantisation of the QDQ model at *path*.

    Raises
    ------
    InputError
        Whatever :func:`import_onnx` refuses; a float (non-QDQ) model; and one line naming the
        node for what onnxruntime would not run as fused integer kernels: int8 (or other
        non-uint8) activations, per-channel activation scales, weights that are not int8
        with zero zero points, weight scales that are not one per tensor or one per output
        channel, a float op with no Q/DQ around it (except the removable Relu/Clip and the
        pass-through Flatten/Reshape/Identity/Dropout), a requantising MaxPool.
    """
    path = Path(path)
    tensors: dict[str, str] = {}
    network = import_onnx(path, tensors=tensors)
    try:
        model = _load(path, weights=True)
    except Exception as exc:  # external weight data missing or unreadable
        raise InputError(path, "", f"must have readable weights ({type(exc).__name__})") \
            from None
    if not is_qdq(model):
        raise InputError(path, "", "must be a QDQ-quantised model (QuantizeLinear and "
                                   "DequantizeLinear around its activations), not a float "
                                   "model")
    return _Walk(model, path, network, tensors).run()


@dataclass(frozen=True, eq=False)
class _Weight:
    """A DequantizeLinear of a constant: the stored integers and their quantisation, checked
    only where a kernel uses them (a weight and a bias obey different rules)."""

    values: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray | None
    axis: int
    block_size: int


_RAW, _QUANT, _DEQUANT = "raw", "quantised", "dequantised"
#: How an error names a tensor in each state (``None``: a float tensor no Q/DQ made).
_DESCRIBE = {_RAW: "the float graph input, which no QuantizeLinear quantised",
             _QUANT: "a uint8 tensor (a QuantizeLinear output)",
             _DEQUANT: "a dequantised tensor (a DequantizeLinear output)",
             None: "a float tensor that no DequantizeLinear produced"}


class _Walk:
    """One pass over the nodes in order (ONNX requires topological order)."""

    def __init__(self, model, source, network: Network, tensors: dict[str, str]):
        import onnx
        self.onnx = onnx
        self.graph = model.graph
        self.source = source
        self.network = network
        self.layer_of = tensors
        self.inits = {t.name for t in self.graph.initializer}
        self.consts: dict[str, np.ndarray] = {
            t.name: onnx.numpy_helper.to_array(t) for t in self.graph.initializer}
        for node in self.graph.node:            # read before the walk: a Clip bound or a
            if node.op_type == "Constant":      # scale may come after the kernel using it
                value = self._constant_value(node)
                if value is not None:
                    self.consts[node.output[0]] = value
        self.folded: set[str] = set()           # computed from constants, value unknown
        self.inputs = {vi.name: vi for vi in self.graph.input if vi.name not in self.inits}
        self.state: dict[str, tuple[str, TensorQuant | None]] = {
            name: (_RAW, None) for name in self.inputs}
        self.weights: dict[str, _Weight] = {}
        self.outputs = {o.name for o in self.graph.output}
        self.users: dict[str, list[int]] = {}
        for index, node in enumerate(self.graph.node):
            for t in dict.fromkeys(node.input):
                if t:
                    self.users.setdefault(t, []).append(index)
        self.claimed: set[int] = set()          # Relu/Clip/Q nodes folded into a kernel
        self.input_q: TensorQuant | None = None
        self.records: dict[str, LayerQuant] = {}
        self.kernel_y: dict[str, TensorQuant] = {}

    # -- helpers --------------------------------------------------------------------------

    def _where(self, index: int) -> str:
        node = self.graph.node[index]
        return f"nodes[{index}]" + (f"({node.name})" if node.name else f"({node.op_type})")

    def error(self, index: int, message: str) -> InputError:
        return InputError(self.source, self._where(index), message)

    def _attrs(self, node) -> dict:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def _constant_value(self, node) -> np.ndarray | None:
        for a in node.attribute:
            if a.name == "value":
                return self.onnx.numpy_helper.to_array(a.t)
            if a.name in ("value_float", "value_int", "value_floats", "value_ints"):
                return np.array(self.onnx.helper.get_attribute_value(a))
        return None

    def _const(self, index: int, tensor: str, what: str) -> np.ndarray:
        if tensor not in self.consts:
            raise self.error(index, f"{what} must be a constant (an initializer or a "
                                    f"Constant node), not tensor {tensor!r}")
        return self.consts[tensor]

    def _activation_quant(self, index: int) -> TensorQuant:
        """The scale and zero point of an activation's QuantizeLinear/DequantizeLinear:
        one uint8 zero point and one float32 scale per tensor."""
        node = self.graph.node[index]
        scale = self._const(index, node.input[1], "the scale")
        attrs = self._attrs(node)
        if len(node.input) > 2 and node.input[2]:
            zp = self._const(index, node.input[2], "the zero point")
            dtype = zp.dtype
        else:
            zp = np.zeros((), np.uint8)
            out_type = attrs.get("output_dtype", 0)
            dtype = (np.dtype(np.uint8) if out_type in (0, self.onnx.TensorProto.UINT8)
                     else self.onnx.helper.tensor_dtype_to_np_dtype(out_type))
        if dtype != np.uint8:
            raise self.error(index, f"must quantise activations to uint8, not {dtype} "
                                    "(onnxruntime does not fuse other activation types by "
                                    "default)")
        if scale.size != 1 or zp.size != 1:
            raise self.error(index, f"must quantise activations per tensor (one scale and "
                                    f"zero point), not scale shape {list(scale.shape)}")
        if scale.dtype != np.float32:
            raise self.error(index, f"must have a float32 scale, not {scale.dtype}")
        s = scale.reshape(())
        if not (np.isfinite(s) and s > 0):
            raise self.error(index, f"must have a positive finite scale, not {float(s)}")
        return TensorQuant(_float32_exact(s), int(zp.reshape(())))

    def _dequantised(self, index: int, i: int) -> TensorQuant:
        """The quantisation of the kernel's input *i*, which must be dequantised."""
        node = self.graph.node[index]
        t = node.input[i]
        kind, q = self.state.get(t, (None, None))
        if kind == _DEQUANT:
            return q
        constant = kind is None and (t in self.consts or t in self.folded)
        what = "a constant" if constant else _DESCRIBE[kind]
        raise self.error(index, f"input {i} ({t!r}) must be a dequantised activation (a "
                                f"DequantizeLinear output), not {what}")

    def _output(self, index: int) -> tuple[TensorQuant, bool]:
        """Follow the kernel's output through removable Relu/Clip to its one QuantizeLinear;
        claim them, record the quantised tensor, and return its quantisation and whether an
        activation was removed."""
        node = self.graph.node[index]
        tensor, chain = node.output[0], []
        while True:
            if tensor in self.outputs:
                raise self.error(index, f"output {tensor!r} must be quantised before it "
                                        "leaves the graph (a QuantizeLinear must follow)")
            users = self.users.get(tensor, [])
            if len(users) != 1:
                raise self.error(index, f"output {tensor!r} must feed exactly one "
                                        f"QuantizeLinear (through a removable Relu or Clip), "
                                        f"not {len(users)} nodes")
            user = self.graph.node[users[0]]
            if user.op_type == "QuantizeLinear" and user.input[0] == tensor:
                break
            if user.op_type not in _REMOVABLE or user.input[0] != tensor:
                raise self.error(index, f"output {tensor!r} must feed a QuantizeLinear, not "
                                        f"{user.op_type} {self._where(users[0])} (onnxruntime "
                                        "fuses only a kernel with its output's "
                                        "QuantizeLinear)")
            chain.append(users[0])
            tensor = user.output[0]
        q = self._activation_quant(users[0])
        for act in chain:
            self._check_removable(act, q)
        self.claimed.update(chain + [users[0]])
        self.state[user.output[0]] = (_QUANT, q)
        self.kernel_y[self.layer_of[node.output[0]]] = q
        return q, bool(chain)

    def _check_removable(self, index: int, q: TensorQuant) -> None:
        """A Relu or Clip onnxruntime removes before a QuantizeLinear: the quantised range
        already clips as it would (Relu: zero point 0; Clip: its bounds contain the range,
        within float32 epsilon, as onnxruntime's ClipQuantFusion tests)."""
        node = self.graph.node[index]
        if node.op_type == "Relu":
            if q.zero_point != 0:
                raise self.error(index, f"a Relu is removed only before a QuantizeLinear with "
                                        f"zero point 0, not {q.zero_point}")
            return
        attrs = self._attrs(node)
        bounds = [attrs.get("min", -np.inf), attrs.get("max", np.inf)]
        for i in (1, 2):
            if len(node.input) > i and node.input[i]:
                value = self._const(index, node.input[i], "a Clip bound")
                bounds[i - 1] = value.reshape(-1)[0]
        f32 = np.float32
        lo, hi = f32(bounds[0]), f32(bounds[1])
        low = f32(f32(0 - q.zero_point) * f32(q.scale))
        high = f32(f32(255 - q.zero_point) * f32(q.scale))
        eps = np.finfo(np.float32).eps
        with np.errstate(invalid="ignore", over="ignore"):
            removable = not (f32(lo - low) > eps or f32(high - hi) > eps)
        if not removable:
            raise self.error(index, f"a Clip is removed only where its range [{lo}, {hi}] "
                                    f"contains the QuantizeLinear's [{low}, {high}]")

    def _weight(self, index: int, i: int, out_axis: int):
        """The int8 weight of input *i* with its scale and zero point per output channel
        (the weight's axis *out_axis*)."""
        node = self.graph.node[index]
        w = self.weights.get(node.input[i])
        if w is None:
            raise self.error(index, f"weight (input {i}, {node.input[i]!r}) must be a "
                                    "DequantizeLinear of an int8 initializer")
        if w.values.dtype != np.int8:
            raise self.error(index, f"weight must be int8, not {w.values.dtype}")
        if w.block_size:
            raise self.error(index, f"weight must be quantised per channel or per tensor, not "
                                    f"in blocks of {w.block_size}")
        if w.scale.dtype != np.float32:
            raise self.error(index, f"weight scale must be float32, not {w.scale.dtype}")
        n = w.values.shape[out_axis]
        axis = w.axis % w.values.ndim if -w.values.ndim <= w.axis < w.values.ndim else None
        zp = w.zero_point if w.zero_point is not None else np.zeros_like(w.scale, np.int8)
        if w.scale.size == 1 and zp.size == 1:
            scale, zp = np.repeat(w.scale.reshape(1), n), np.repeat(zp.reshape(1), n)
        elif w.scale.shape == (n,) and zp.shape == (n,) and axis == out_axis:
            scale = w.scale
        else:
            raise self.error(index, f"weight scale must hold 1 value, or {n} (one per output "
                                    f"channel, on axis {out_axis}), not shape "
                                    f"{list(w.scale.shape)} on axis {w.axis} (zero point "
                                    f"shape {list(zp.shape)})")
        if not np.all(np.isfinite(scale) & (scale > 0)):
            raise self.error(index, "weight scales must be positive and finite")
        if np.any(zp != 0):
            bad = sorted({int(v) for v in zp.reshape(-1) if v != 0})[:4]
            raise self.error(index, f"weight zero points must be 0 (symmetric int8 weights), "
                                    f"not {bad}")
        return w.values, scale.astype(np.float32), zp.astype(np.int64)

    def _bias(self, index: int, i: int, n: int) -> np.ndarray:
        node = self.graph.node[index]
        if len(node.input) <= i or not node.input[i]:
            return np.zeros(n, np.int32)
        b = self.weights.get(node.input[i])
        if b is None:
            raise self.error(index, f"bias (input {i}, {node.input[i]!r}) must be a "
                                    "DequantizeLinear of an int32 initializer")
        zp = b.zero_point if b.zero_point is not None else np.zeros(1, np.int32)
        if b.values.dtype != np.int32 or np.any(zp != 0):
            raise self.error(index, f"bias must be int32 with zero point 0, not "
                                    f"{b.values.dtype}")
        if b.values.size != n:
            raise self.error(index, f"bias must hold {n} values (one per output channel), "
                                    f"not shape {list(b.values.shape)}")
        return b.values.reshape(n)

    def _record(self, index: int, record: LayerQuant) -> None:
        self.records[self.layer_of[self.graph.node[index].output[0]]] = record

    def _set_input(self, index: int, q: TensorQuant) -> None:
        if self.input_q is not None and self.input_q != q:
            raise self.error(index, f"must quantise the graph input as its other "
                                    f"QuantizeLinear does ({self.input_q}), not {q}")
        self.input_q = q

    # -- the walk -------------------------------------------------------------------------

    def run(self) -> QuantizedNetwork:
        for index, node in enumerate(self.graph.node):
            if index in self.claimed:
                continue
            if node.op_type == "Constant":
                if node.output[0] not in self.consts:
                    self.folded.update(node.output)
                continue
            if not any(t in self.state for t in node.input):
                self._constant(index, node)
                continue
            handler = getattr(self, f"_op_{node.op_type}", None)
            if node.op_type in _PASS_THROUGH:
                self._pass_through(index)
            elif handler is not None:
                handler(index)
            elif node.op_type in _REMOVABLE:
                raise self.error(index, f"a {node.op_type} must sit between a kernel (Conv, "
                                        "Gemm, MatMul, Add, Concat, pool) and its "
                                        "QuantizeLinear, where onnxruntime removes it; on "
                                        "a dequantised tensor it is a float op")
            else:
                raise self.error(index, f"must be a kernel onnxruntime fuses in a QDQ graph "
                                        f"({', '.join(_KERNELS)}) or pass the quantisation "
                                        f"through ({', '.join(_PASS_THROUGH)}), not the "
                                        f"float op {node.op_type}")
        return self._result()

    def _constant(self, index: int, node) -> None:
        """A node on constants only: a weight's DequantizeLinear (kept for its kernel), or
        shape arithmetic (value not needed)."""
        if node.op_type == "DequantizeLinear" and node.input[0] in self.consts:
            attrs = self._attrs(node)
            scale = self._const(index, node.input[1], "the scale")
            zp = (self._const(index, node.input[2], "the zero point")
                  if len(node.input) > 2 and node.input[2] else None)
            self.weights[node.output[0]] = _Weight(
                self.consts[node.input[0]], np.asarray(scale), zp, attrs.get("axis", 1),
                attrs.get("block_size", 0))
            return
        self.folded.update(t for t in node.output if t)

    def _result(self) -> QuantizedNetwork:
        if self.input_q is None:
            name = next(iter(self.inputs), "?")
            raise InputError(self.source, f"graph.input({name})",
                             "must be quantised by a QuantizeLinear")
        act: dict[str, TensorQuant] = {}

        def put(layer: str, q: TensorQuant, what: str) -> None:
            if act.setdefault(layer, q) != q:
                raise InputError(self.source, f"layers.{layer}",
                                 f"must have one quantisation, not {act[layer]} and {q} "
                                 f"({what})")

        put(self.network.layers[0].name, self.input_q, "the graph input")
        for tensor, (kind, q) in self.state.items():
            if q is not None and tensor in self.layer_of:
                put(self.layer_of[tensor], q, f"tensor {tensor!r}")
        for layer, q in self.kernel_y.items():
            put(layer, q, "its kernel's output")
        missing = [layer.name for layer in self.network if layer.name not in act]
        if missing:
            raise InputError(self.source, f"layers.{missing[0]}",
                             "must have a quantised output tensor (a QuantizeLinear)")
        outputs, names = {}, {}
        for o in self.graph.output:
            kind, q = self.state.get(o.name, (None, None))
            if q is None or o.name not in self.layer_of:
                raise InputError(self.source, f"graph.output({o.name})",
                                 "must be a DequantizeLinear (or QuantizeLinear) output")
            layer = self.layer_of[o.name]
            if layer in names:
                raise InputError(self.source, f"graph.output({o.name})",
                                 f"must be another layer's tensor than graph output "
                                 f"{names[layer]!r} (both are layer {layer!r})")
            outputs[layer], names[layer] = q, o.name
        ordered = {layer.name: self.records[layer.name] for layer in self.network
                   if layer.name in self.records}
        return QuantizedNetwork(self.network, self.input_q, outputs, names, ordered, act)

    # -- one method per node kind ---------------------------------------------------------

    def _op_QuantizeLinear(self, index: int) -> None:
        node = self.graph.node[index]
        kind, q_in = self.state.get(node.input[0], (None, None))
        q = self._activation_quant(index)
        if kind == _RAW:
            self._set_input(index, q)
        elif kind == _DEQUANT:
            if q != q_in:
                raise self.error(index, f"must quantise with its input's scale and zero point "
                                        f"({q_in}), not {q} (a requantising QuantizeLinear is "
                                        "no kernel onnxruntime fuses)")
        else:
            raise self.error(index, f"must quantise the graph input or a dequantised tensor, "
                                    f"not {node.input[0]!r}, {_DESCRIBE[kind]}")
        self.state[node.output[0]] = (_QUANT, q)

    def _op_DequantizeLinear(self, index: int) -> None:
        node = self.graph.node[index]
        kind, q_in = self.state.get(node.input[0], (None, None))
        q = self._activation_quant(index)
        if kind == _QUANT:
            if q != q_in:
                raise self.error(index, f"must dequantise with the scale and zero point of "
                                        f"its QuantizeLinear ({q_in}), not {q}")
        elif kind == _RAW and node.input[0] in self.inputs:
            elem = self.inputs[node.input[0]].type.tensor_type.elem_type
            if elem != self.onnx.TensorProto.UINT8:
                raise self.error(index, f"must dequantise a uint8 graph input, not "
                                        f"{self.onnx.TensorProto.DataType.Name(elem)}")
            self._set_input(index, q)
        else:
            raise self.error(index, f"must dequantise a uint8 tensor, not {node.input[0]!r}, "
                                    f"{_DESCRIBE[kind]}")
        self.state[node.output[0]] = (_DEQUANT, q)

    def _op_Shape(self, index: int) -> None:
        # shape arithmetic (torch's flatten as Reshape(x, Concat(Shape(x)[0], -1))): a
        # constant for the walk, whatever tensor it measures
        self.folded.update(t for t in self.graph.node[index].output if t)

    def _pass_through(self, index: int) -> None:
        node = self.graph.node[index]
        self.state[node.output[0]] = self.state[node.input[0]]

    def _op_Conv(self, index: int) -> None:
        x = self._dequantised(index, 0)
        w, scale, zp = self._weight(index, 1, out_axis=0)
        bias = self._bias(index, 2, w.shape[0])
        y, relu = self._output(index)
        self._record(index, ConvQuant(x, y, w, scale, zp, bias, relu))

    def _op_Gemm(self, index: int) -> None:
        node = self.graph.node[index]
        attrs = self._attrs(node)
        if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            raise self.error(index, f"must have alpha and beta 1, not {attrs.get('alpha', 1.0)}"
                                    f" and {attrs.get('beta', 1.0)}")
        x = self._dequantised(index, 0)
        trans_b = bool(attrs.get("transB", 0))
        w, scale, zp = self._weight(index, 1, out_axis=0 if trans_b else 1)
        w = w if trans_b else w.T
        bias = self._bias(index, 2, w.shape[0])
        y, relu = self._output(index)
        self._record(index, ConvQuant(x, y, w, scale, zp, bias, relu))

    def _op_MatMul(self, index: int) -> None:
        x = self._dequantised(index, 0)
        w, scale, zp = self._weight(index, 1, out_axis=1)
        y, relu = self._output(index)
        self._record(index, ConvQuant(x, y, w.T, scale, zp, np.zeros(w.shape[1], np.int32),
                                      relu))

    def _op_Add(self, index: int) -> None:
        a, b = self._dequantised(index, 0), self._dequantised(index, 1)
        y, _ = self._output(index)
        self._record(index, AddQuant(a, b, y))

    def _op_Concat(self, index: int) -> None:
        node = self.graph.node[index]
        xs = tuple(self._dequantised(index, i) for i in range(len(node.input)))
        y, _ = self._output(index)
        if len(xs) == 1:        # no IR layer: the IR's tensor is the input's, unchanged
            if xs[0] != y:
                raise self.error(index, f"a one-input Concat must keep its input's "
                                        f"quantisation ({xs[0]}), not requantise to {y}")
            return
        self._record(index, ConcatQuant(xs, y))

    def _op_MaxPool(self, index: int) -> None:
        x = self._dequantised(index, 0)
        y, _ = self._output(index)
        if x != y:
            raise self.error(index, f"a MaxPool must keep its input's quantisation ({x}), not "
                                    f"requantise to {y} (onnxruntime runs it on the uint8 "
                                    "values only then)")
        self._record(index, PoolQuant(x, y))

    def _op_AveragePool(self, index: int) -> None:
        node = self.graph.node[index]
        x = self._dequantised(index, 0)
        y, _ = self._output(index)
        include = bool(self._attrs(node).get("count_include_pad", 0))
        self._record(index, PoolQuant(x, y, count_include_pad=include))

    def _op_GlobalAveragePool(self, index: int) -> None:
        x = self._dequantised(index, 0)
        y, _ = self._output(index)
        self._record(index, PoolQuant(x, y))
