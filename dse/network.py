"""Network IR: a DAG of layers with inferred shapes and MAC counts.

A :class:`Network` is an ordered collection of :class:`Layer` objects in topological order
(every layer's inputs come before it).  Shapes are ``(C, H, W)`` tuples.  The graph's sources
are ``input`` nodes (one for every network except SCALE-Sim topologies, whose layers may each
read a fresh input; see ``docs/networks.md``).  The importers (``dse.importers``) and the
built-in networks (``dse.zoo``) produce Networks through :class:`NetworkBuilder`, which infers
every shape (:mod:`dse.shapes`) and reports bad input as :class:`~dse.errors.InputError`; the
cost model and the mapper consume them.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

from .errors import InputError
from .shapes import ARITY, PARAM_OPS, ShapeError, infer_shape, padding4, pair

__all__ = ["Layer", "Network", "NetworkBuilder", "OPS", "MAC_OPS"]

#: Layer operations of the IR.  ``conv`` and ``fc`` carry MACs; the rest are data movement
#: or element-wise work (``input`` is the graph's source node).
OPS = ("input", "conv", "fc", "maxpool", "avgpool", "gap", "add", "concat",
       "relu", "relu6", "sigmoid", "flatten", "identity")

#: Operations that multiply-accumulate (and so count in :attr:`Network.total_macs`).
MAC_OPS = ("conv", "fc")


def _int_tuple(owner: str, name: str, value, length: int, low: int) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) != length:
        raise TypeError(f"{owner}.{name} must be a tuple of {length} integers, not {value!r}")
    for v in value:
        # numbers.Integral admits numpy integers, which the cost model's arrays hand back
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{owner}.{name} must be a tuple of {length} integers, "
                            f"not {value!r}")
        if v < low:
            raise ValueError(f"{owner}.{name} must hold integers of at least {low}, "
                             f"not {tuple(value)!r}")
    return tuple(int(v) for v in value)


@dataclass(frozen=True)
class Layer:
    """One node of the network graph.

    Members
    -------
    name: unique layer name.
    op: one of :data:`OPS`.
    inputs: names of the producer layers, in order (empty for ``input``).
    in_shape: shape of the first input, ``(C, H, W)`` (for ``input``: the output shape).
    out_shape: output shape, ``(C, H, W)``; fc, gap and flatten give ``(C, 1, 1)``.
    kernel, stride, dilation: ``(h, w)`` pairs (``(1, 1)`` where meaningless; a ``gap``
        layer's kernel is its input's ``(H, W)``, the window it averages).
    padding: ``(top, left, bottom, right)``.
    groups: convolution groups (``in_channels`` for depthwise).
    ceil_mode: pooling rounds the output size up.

    Lists are accepted for the tuple members and stored as tuples; a wrong kind raises
    TypeError, a bad value ValueError.
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    ceil_mode: bool = False

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Layer.name must be a non-empty string, not {self.name!r}")
        if self.op not in OPS:
            raise ValueError(f"Layer.op must be one of {', '.join(OPS)}, not {self.op!r}")
        if not isinstance(self.inputs, (tuple, list)) or not all(
                isinstance(i, str) for i in self.inputs):
            raise TypeError(f"Layer.inputs must be a tuple of layer names, not {self.inputs!r}")
        set_ = object.__setattr__  # frozen: normalise lists to tuples once, here
        set_(self, "inputs", tuple(self.inputs))
        set_(self, "in_shape", _int_tuple("Layer", "in_shape", self.in_shape, 3, 1))
        set_(self, "out_shape", _int_tuple("Layer", "out_shape", self.out_shape, 3, 1))
        set_(self, "kernel", _int_tuple("Layer", "kernel", self.kernel, 2, 1))
        set_(self, "stride", _int_tuple("Layer", "stride", self.stride, 2, 1))
        set_(self, "padding", _int_tuple("Layer", "padding", self.padding, 4, 0))
        set_(self, "dilation", _int_tuple("Layer", "dilation", self.dilation, 2, 1))
        if isinstance(self.groups, bool) or not isinstance(self.groups, numbers.Integral):
            raise TypeError(f"Layer.groups must be an integer, not {self.groups!r}")
        set_(self, "groups", int(self.groups))
        if self.groups < 1:
            raise ValueError(f"Layer.groups must be positive, not {self.groups}")
        if not isinstance(self.ceil_mode, bool):
            raise TypeError(f"Layer.ceil_mode must be a bool, not {self.ceil_mode!r}")

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one inference (0 for layers other than conv and fc)."""
        if self.op == "conv":
            c_out, h, w = self.out_shape
            c_in = self.in_shape[0]
            return c_out * h * w * (c_in // self.groups) * self.kernel[0] * self.kernel[1]
        if self.op == "fc":
            c, h, w = self.in_shape
            return c * h * w * self.out_shape[0]
        return 0

    @property
    def in_channels(self) -> int:
        """Channels of the first input."""
        return self.in_shape[0]

    @property
    def out_channels(self) -> int:
        """Channels (or features) of the output."""
        return self.out_shape[0]

    @property
    def is_depthwise(self) -> bool:
        """A conv whose every group has one input channel (MobileNet's depthwise layers)."""
        return self.op == "conv" and self.groups > 1 and self.groups == self.in_shape[0]


@dataclass
class Network:
    """A named DAG of layers in topological order, with the input shape ``(C, H, W)``.

    Networks from :class:`NetworkBuilder` (every importer and built-in) start with an
    ``input`` layer and pass :meth:`check`.
    """

    name: str
    input_shape: tuple[int, int, int]
    layers: list[Layer] = field(default_factory=list)

    def __getitem__(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(layer.name == name for layer in self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def total_macs(self) -> int:
        """MACs of all conv and fc layers."""
        return sum(layer.macs for layer in self.layers)

    def layer_map(self) -> dict[str, Layer]:
        """Return the layers by name."""
        return {layer.name: layer for layer in self.layers}

    def convs(self) -> list[Layer]:
        """Return the conv layers, in topological order."""
        return [layer for layer in self.layers if layer.op == "conv"]

    def mac_layers(self) -> list[Layer]:
        """Return the conv and fc layers, in topological order."""
        return [layer for layer in self.layers if layer.op in MAC_OPS]

    def consumers(self, name: str) -> list[Layer]:
        """Return the layers that read layer *name*, in topological order."""
        return [layer for layer in self.layers if name in layer.inputs]

    def in_shapes(self, layer: Layer | str) -> list[tuple[int, int, int]]:
        """Return the shapes of *layer*'s inputs, in order (e.g. each branch of a concat)."""
        if isinstance(layer, str):
            layer = self[layer]
        by_name = self.layer_map()
        return [by_name[i].out_shape for i in layer.inputs]

    def graph(self):
        """Return the DAG as a ``networkx.DiGraph``.

        Nodes are layer names with attribute ``layer`` (the :class:`Layer`); an edge
        producer → consumer carries ``shape`` (the tensor's ``(C, H, W)``) and ``index`` (the
        position of the producer among the consumer's inputs).
        """
        import networkx as nx  # deferred: the cost model imports this module in hot loops

        g = nx.DiGraph(name=self.name)
        for layer in self.layers:
            g.add_node(layer.name, layer=layer)
        by_name = self.layer_map()
        for layer in self.layers:
            for index, src in enumerate(layer.inputs):
                shape = by_name[src].out_shape if src in by_name else None
                g.add_edge(src, layer.name, shape=shape, index=index)
        return g

    def check(self) -> None:
        """Raise ValueError unless names are unique, the order is topological and every
        shape and MAC-bearing parameter agrees with shape inference."""
        seen: dict[str, Layer] = {}
        for layer in self.layers:
            if layer.name in seen:
                raise ValueError(f"layer names must be unique, not repeat {layer.name!r}")
            for src in layer.inputs:
                if src not in seen:
                    raise ValueError(f"layer {layer.name!r} must read earlier layers, "
                                     f"not {src!r}")
            in_shapes = [seen[src].out_shape for src in layer.inputs]
            if layer.op == "input":
                expect = layer.in_shape
            else:
                if in_shapes[0] != layer.in_shape:
                    raise ValueError(f"layer {layer.name!r} in_shape must be "
                                     f"{in_shapes[0]}, not {layer.in_shape}")
                try:
                    expect = infer_shape(layer.op, in_shapes, _params_of(layer))
                except ShapeError as exc:
                    raise ValueError(f"layer {layer.name!r}: {exc}") from None
            if expect != layer.out_shape:
                raise ValueError(f"layer {layer.name!r} out_shape must be {expect}, "
                                 f"not {layer.out_shape}")
            seen[layer.name] = layer
        sources = [layer for layer in self.layers if layer.op == "input"]
        if sources and sources[0].out_shape != tuple(self.input_shape):
            raise ValueError(f"input_shape must be {sources[0].out_shape}, "
                             f"not {self.input_shape}")


def _params_of(layer: Layer) -> dict:
    """Return the shape-inference parameters stored in *layer*."""
    return {"out_channels": layer.out_shape[0], "out_features": layer.out_shape[0],
            "kernel": layer.kernel, "stride": layer.stride, "padding": layer.padding,
            "dilation": layer.dilation, "groups": layer.groups, "ceil_mode": layer.ceil_mode}


#: Parameters that must be given, per op; the others default as below.
_REQUIRED = {"conv": ("out_channels", "kernel"), "fc": ("out_features",),
             "maxpool": ("kernel",), "avgpool": ("kernel",)}


class NetworkBuilder:
    """Build a :class:`Network` layer by layer, inferring and checking every shape.

    Parameters
    ----------
    name:
        The network's name.
    input_shape:
        ``(C, H, W)`` of the input; an ``input`` layer named *input_name* is created.
    source:
        What errors name as the file (a path, or the built-in's name).

    Every method raises :class:`~dse.errors.InputError` naming *source* and the field
    (``<where>.<parameter>``, where *where* defaults to the layer's name).
    """

    def __init__(self, name: str, input_shape, source: object = None, *,
                 input_name: str = "input", input_where: str = "input"):
        self.name = name
        self.source = name if source is None else source
        self._layers: list[Layer] = []
        self._by_name: dict[str, Layer] = {}
        self.input(input_name, input_shape, where=input_where)

    # -- queries ---------------------------------------------------------------------------

    @property
    def last(self) -> str:
        """Name of the most recently added layer (the default input of the next)."""
        return self._layers[-1].name

    def shape(self, name: str | None = None) -> tuple[int, int, int]:
        """Return the output shape of layer *name* (default: the last one)."""
        return self._by_name[name or self.last].out_shape

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def unique_name(self, base: str) -> str:
        """Return *base*, or *base* with the smallest ``_<n>`` suffix not yet taken."""
        if base not in self._by_name:
            return base
        n = 1
        while f"{base}_{n}" in self._by_name:
            n += 1
        return f"{base}_{n}"

    # -- construction ----------------------------------------------------------------------

    def _error(self, where: str, field_: str, message: str) -> InputError:
        path = ".".join(p for p in (where, field_) if p)
        return InputError(self.source, path, message)

    def input(self, name: str, shape, *, where: str | None = None) -> str:
        """Add an ``input`` node of *shape* ``(C, H, W)``; return its name."""
        where = name if where is None else where
        if (not isinstance(shape, (list, tuple)) or len(shape) != 3
                or any(isinstance(v, bool) or not isinstance(v, int) for v in shape)):
            raise self._error(where, "", f"must be [C, H, W] (three integers), not {shape!r}")
        if any(v < 1 for v in shape):
            raise self._error(where, "", f"must have positive dimensions, not {list(shape)}")
        if name in self._by_name:
            raise self._error(where, "name", f"must be unique, not repeat {name!r}")
        shape = tuple(shape)
        self._append(Layer(name=name, op="input", inputs=(), in_shape=shape, out_shape=shape))
        return name

    def add(self, op: str, name: str | None = None, inputs=None, *, where: str | None = None,
            **params) -> str:
        """Add a layer; return its name.

        Parameters
        ----------
        op:
            An operation of :data:`OPS` other than ``input``.
        name:
            Layer name; default ``<op>_<index>`` (index: position in the network), made unique.
        inputs:
            A layer name, a list of them, or ``None`` for the previous layer.
        where:
            Field prefix for error messages (default: the layer name).
        params:
            ``out_channels``, ``kernel``, ``stride`` (default 1 for conv, the kernel for
            pools), ``padding`` (``p``, ``[h, w]`` or ``[t, l, b, r]``), ``dilation``,
            ``groups``, ``ceil_mode``, ``out_features`` as the op accepts
            (:data:`dse.shapes.PARAM_OPS`).
        """
        if name is None:
            name = self.unique_name(f"{op}_{len(self._layers)}")
        where = name if where is None else where
        if not isinstance(name, str) or not name:
            raise self._error(where, "name", f"must be a non-empty string, not {name!r}")
        if op not in PARAM_OPS or op == "input":
            ops = ", ".join(o for o in OPS if o != "input")
            raise self._error(where, "op", f"must be one of {ops}, not {op!r}")
        if name in self._by_name:
            raise self._error(where, "name", f"must be unique, not repeat {name!r}")
        inputs = self._resolve_inputs(where, op, inputs)
        try:
            norm = self._normalise(op, params)
            in_shapes = [self._by_name[i].out_shape for i in inputs]
            out_shape = infer_shape(op, in_shapes, norm)
        except ShapeError as exc:
            raise self._error(where, exc.field, exc.message) from None
        extra = {}
        if op in ("conv", "maxpool", "avgpool"):
            extra = {k: norm[k] for k in ("kernel", "stride", "padding", "dilation")}
            extra["groups"] = norm.get("groups", 1)
            extra["ceil_mode"] = norm.get("ceil_mode", False)
        elif op == "gap":
            extra = {"kernel": in_shapes[0][1:]}
        self._append(Layer(name=name, op=op, inputs=tuple(inputs), in_shape=in_shapes[0],
                           out_shape=out_shape, **extra))
        return name

    # -- one method per op, so that the built-in networks read like their papers ---------

    def conv(self, name=None, inputs=None, *, where=None, **params) -> str:
        """Add a ``conv`` layer (see :meth:`add`); return its name."""
        return self.add("conv", name, inputs, where=where, **params)

    def fc(self, name=None, inputs=None, *, where=None, **params) -> str:
        """Add an ``fc`` layer (see :meth:`add`); return its name."""
        return self.add("fc", name, inputs, where=where, **params)

    def maxpool(self, name=None, inputs=None, *, where=None, **params) -> str:
        """Add a ``maxpool`` layer (see :meth:`add`); return its name."""
        return self.add("maxpool", name, inputs, where=where, **params)

    def avgpool(self, name=None, inputs=None, *, where=None, **params) -> str:
        """Add an ``avgpool`` layer (see :meth:`add`); return its name."""
        return self.add("avgpool", name, inputs, where=where, **params)

    def gap(self, name=None, inputs=None) -> str:
        """Add a global average pool; return its name."""
        return self.add("gap", name, inputs)

    def act(self, op: str, name=None, inputs=None) -> str:
        """Add an activation (``relu``, ``relu6``, ``sigmoid``) or ``identity``; return its name."""
        return self.add(op, name, inputs)

    def flatten(self, name=None, inputs=None) -> str:
        """Add a ``flatten`` layer; return its name."""
        return self.add("flatten", name, inputs)

    def concat(self, name, inputs) -> str:
        """Add a channel concatenation of *inputs*; return its name."""
        return self.add("concat", name, inputs)

    def sum(self, name, inputs) -> str:
        """Add an element-wise ``add`` of *inputs* (a residual join); return its name."""
        return self.add("add", name, inputs)

    def _resolve_inputs(self, where: str, op: str, inputs) -> list[str]:
        if inputs is None:
            inputs = [self.last]
        elif isinstance(inputs, str):
            inputs = [inputs]
        elif not isinstance(inputs, (list, tuple)) or not all(
                isinstance(i, str) for i in inputs):
            raise self._error(where, "inputs",
                              f"must be a layer name or a list of them, not {inputs!r}")
        for i in inputs:
            if i not in self._by_name:
                raise self._error(where, "inputs", f"must name earlier layers, not {i!r}")
        least, most = ARITY[op]
        if len(inputs) < least or (most is not None and len(inputs) > most):
            want = f"exactly {least}" if least == most else f"at least {least}"
            raise self._error(where, "inputs", f"must name {want} layer(s) for {op}, "
                                               f"not {len(inputs)}")
        return list(inputs)

    @staticmethod
    def _normalise(op: str, params: dict) -> dict:
        allowed = PARAM_OPS[op]
        for key in params:
            if key not in allowed:
                expected = ", ".join(allowed) if allowed else "none"
                raise ShapeError(key, f"is not a parameter of {op} (expected: {expected})")
        for key in _REQUIRED.get(op, ()):
            if params.get(key) is None:
                raise ShapeError(key, f"is required for {op}")
        norm: dict = {}
        if op in ("conv", "maxpool", "avgpool"):
            norm["kernel"] = pair("kernel", params["kernel"])
            stride = params.get("stride")
            if stride is None:  # PyTorch's defaults: 1 for conv, the window for pools
                stride = 1 if op == "conv" else norm["kernel"]
            norm["stride"] = pair("stride", stride)
            norm["padding"] = padding4("padding", params.get("padding", 0))
            norm["dilation"] = pair("dilation", params.get("dilation", 1))
        if op == "conv":
            norm["out_channels"] = _scalar("out_channels", params["out_channels"])
            norm["groups"] = _scalar("groups", params.get("groups", 1))
        if op in ("maxpool", "avgpool"):
            ceil = params.get("ceil_mode", False)
            if not isinstance(ceil, bool):
                raise ShapeError("ceil_mode", f"must be true or false, not {ceil!r}")
            norm["ceil_mode"] = ceil
            pt, pl, pb, pr = norm["padding"]
            kh, kw = norm["kernel"]
            # A window made only of padding has no defined maximum or mean; runtimes
            # (onnxruntime, PyTorch) refuse such pools.
            if max(pt, pb) >= kh or max(pl, pr) >= kw:
                raise ShapeError("padding", f"must be smaller than the kernel "
                                            f"{list(norm['kernel'])}, not "
                                            f"{list(norm['padding'])}")
        if op == "fc":
            norm["out_features"] = _scalar("out_features", params["out_features"])
        return norm

    def _append(self, layer: Layer) -> None:
        self._layers.append(layer)
        self._by_name[layer.name] = layer

    def build(self) -> Network:
        """Return the network built so far (checked; raises ValueError on an internal bug)."""
        net = Network(name=self.name, input_shape=self._layers[0].out_shape,
                      layers=list(self._layers))
        net.check()
        return net


def _scalar(field_: str, value) -> int:
    """Return *value* if it is a positive integer; raise :class:`ShapeError` otherwise."""
    if isinstance(value, (list, tuple)):
        raise ShapeError(field_, f"must be an integer, not {list(value)!r}")
    return pair(field_, value)[0]
