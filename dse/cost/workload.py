"""The workload side of the cost model: a network's layers as numpy arrays.

:class:`LayerTable` holds one entry per MAC layer (``conv`` and ``fc``) of a
:class:`dse.network.Network`, each field a 1-D integer array, so the cost model broadcasts a
whole network against every choice and hardware point in one expression.  A fully connected
layer is a 1×1 convolution on a 1×1 map whose input channels are the flattened features
(``c_in = C·H·W`` of its input).

:class:`AuxTable` holds the layers that do no MACs but still move data: pooling, global
average pooling and element-wise add.  Activations, ``flatten``, ``identity`` and ``concat``
cost nothing on this overlay (activations are folded into the requantiser; concat writes its
inputs side by side in DRAM, as DNNVM does, and flatten/identity are views), so they are not
listed.  A pooling layer whose only input is a conv layer that feeds nothing else is marked
``fusable``: the back end of the array pools on the way out (requantise, ReLU, pool), and
the search may then charge it nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from dse.network import Layer, Network

__all__ = ["LayerTable", "AuxTable", "AUX_OPS", "DEFAULT_DENSITY"]

#: Spectral kernel density of a layer that no config sets (``sparsity: {density: D}``).
DEFAULT_DENSITY = 0.25

#: Non-MAC operations that cost time on the overlay.
AUX_OPS = ("maxpool", "avgpool", "gap", "add")

_INT_FIELDS = ("c_in", "h_in", "w_in", "c_out", "h_out", "w_out", "kh", "kw",
               "stride_h", "stride_w", "dil_h", "dil_w", "pad_t", "pad_l", "pad_b", "pad_r",
               "groups", "macs")


@dataclass(frozen=True, eq=False)
class LayerTable:
    """MAC layers of a network as parallel integer arrays (length ``L``).

    Members
    -------
    names: layer names, in network order.
    ops: ``"conv"`` or ``"fc"`` per layer.
    c_in, h_in, w_in: input channels and map size (fc: flattened features, 1, 1).
    c_out, h_out, w_out: output channels and map size.
    kh, kw: kernel height and width.
    stride_h, stride_w, dil_h, dil_w: strides and dilations.
    pad_t, pad_l, pad_b, pad_r: zero padding (top, left, bottom, right).
    groups: convolution groups (``c_in`` for depthwise).
    macs: multiply-accumulates of one inference.
    first: 1 where the layer reads the network's input (which the host writes to DRAM in
        whatever layout the layer asks for, e.g. im2col patches), else 0.
    density: float, the fraction of spectral kernel bins a ``sparse_fft`` choice keeps per
        kernel, in (0, 1] (default :data:`DEFAULT_DENSITY`; only sparse choices read it).
    """

    names: tuple
    ops: tuple
    c_in: np.ndarray
    h_in: np.ndarray
    w_in: np.ndarray
    c_out: np.ndarray
    h_out: np.ndarray
    w_out: np.ndarray
    kh: np.ndarray
    kw: np.ndarray
    stride_h: np.ndarray
    stride_w: np.ndarray
    dil_h: np.ndarray
    dil_w: np.ndarray
    pad_t: np.ndarray
    pad_l: np.ndarray
    pad_b: np.ndarray
    pad_r: np.ndarray
    groups: np.ndarray
    macs: np.ndarray
    first: np.ndarray | None = None
    density: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.names)
        density = (np.full(n, DEFAULT_DENSITY) if self.density is None
                   else np.asarray(self.density, dtype=np.float64))
        if density.shape != (n,) or not np.all((density > 0) & (density <= 1)):
            raise ValueError(f"density must be {n} numbers in (0, 1], not {self.density!r}")
        density = density.copy()
        density.setflags(write=False)
        object.__setattr__(self, "density", density)
        first = np.zeros(n, dtype=np.int64) if self.first is None else np.asarray(self.first)
        if first.shape != (n,) or not np.isin(first, (0, 1)).all():
            raise ValueError(f"first must be {n} values of 0 or 1, not {self.first!r}")
        first = first.astype(np.int64)
        first.setflags(write=False)
        object.__setattr__(self, "first", first)
        if len(set(self.names)) != n:
            raise ValueError("names must be unique")
        if len(self.ops) != n or any(op not in ("conv", "fc") for op in self.ops):
            raise ValueError(f"ops must hold 'conv' or 'fc' for each of the {n} layers, "
                             f"not {self.ops!r}")
        for name in _INT_FIELDS:
            arr = np.asarray(getattr(self, name))
            if arr.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), not {arr.shape}")
            if not np.issubdtype(arr.dtype, np.integer):
                raise TypeError(f"{name} must be an integer array, not {arr.dtype}")
            low = 0 if name.startswith("pad") else 1
            if n and arr.min() < low:
                raise ValueError(f"{name} must be at least {low}, not {arr.min()}")
            arr = arr.astype(np.int64)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        if n and (np.any(self.c_in % self.groups) or np.any(self.c_out % self.groups)):
            raise ValueError("c_in and c_out must be multiples of groups")

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def from_layers(cls, layers, inputs=None, density=None) -> "LayerTable":
        """Build the table from :class:`dse.network.Layer` objects (non-MAC layers skipped);
        ``inputs``: the names of the network's input layers (default: the ``input`` layers
        among ``layers``); ``density``: ``{layer name: D}`` (others :data:`DEFAULT_DENSITY`)
        or one number for every layer."""
        layers = list(layers)
        if inputs is None:
            inputs = {layer.name for layer in layers if layer.op == "input"}
        rows = {name: [] for name in _INT_FIELDS}
        names, ops, first = [], [], []
        for layer in layers:
            if layer.op not in ("conv", "fc"):
                continue
            names.append(layer.name)
            ops.append(layer.op)
            first.append(int(bool(layer.inputs) and all(i in inputs for i in layer.inputs)))
            for key, value in _layer_row(layer).items():
                rows[key].append(value)
        arrays = {k: np.asarray(v, dtype=np.int64).reshape(len(names)) for k, v in rows.items()}
        if density is None or isinstance(density, (int, float)):
            dens = np.full(len(names), DEFAULT_DENSITY if density is None else float(density))
        else:
            dens = np.array([float(density.get(n, DEFAULT_DENSITY)) for n in names])
        return cls(names=tuple(names), ops=tuple(ops), **arrays,
                   first=np.asarray(first, dtype=np.int64).reshape(len(names)), density=dens)

    @classmethod
    def from_network(cls, network: Network) -> "LayerTable":
        """Build the table of the conv and fc layers of ``network``, in network order."""
        return cls.from_layers(network.layers)

    def take(self, index) -> "LayerTable":
        """Return the sub-table of the layers at ``index`` (an integer array or list)."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        kw = {f.name: getattr(self, f.name)[index] for f in fields(self)
              if f.name in _INT_FIELDS}
        return LayerTable(names=tuple(self.names[i] for i in index),
                          ops=tuple(self.ops[i] for i in index), **kw, first=self.first[index],
                          density=self.density[index])

    def column(self, name: str, xp=np):
        """Return field ``name`` as a float64 ``(L, 1, 1)`` array of namespace ``xp``."""
        return xp.asarray(getattr(self, name).astype(np.float64).reshape(-1, 1, 1))


def _layer_row(layer: Layer) -> dict:
    if layer.op == "fc":
        c, h, w = layer.in_shape
        return dict(c_in=c * h * w, h_in=1, w_in=1, c_out=layer.out_shape[0], h_out=1,
                    w_out=1, kh=1, kw=1, stride_h=1, stride_w=1, dil_h=1, dil_w=1, pad_t=0,
                    pad_l=0, pad_b=0, pad_r=0, groups=1, macs=layer.macs)
    c_in, h_in, w_in = layer.in_shape
    c_out, h_out, w_out = layer.out_shape
    pt, pl, pb, pr = layer.padding
    return dict(c_in=c_in, h_in=h_in, w_in=w_in, c_out=c_out, h_out=h_out, w_out=w_out,
                kh=layer.kernel[0], kw=layer.kernel[1], stride_h=layer.stride[0],
                stride_w=layer.stride[1], dil_h=layer.dilation[0], dil_w=layer.dilation[1],
                pad_t=pt, pad_l=pl, pad_b=pb, pad_r=pr, groups=layer.groups, macs=layer.macs)


@dataclass(frozen=True, eq=False)
class AuxTable:
    """Non-MAC layers that move data (``A`` entries): pools, global pooling and adds.

    Members
    -------
    names, ops: layer names and operations (one of :data:`AUX_OPS`).
    in_elems: elements read, summed over all inputs.
    out_elems: elements written.
    window: elements combined per output (pool kernel area; ``H·W`` for ``gap``; the number
        of inputs for ``add``).
    channels: channels of the output (the pool engine works on a pixel's channels in groups
        of its lanes).
    fusable: the layer can run in the back end of its producer conv (pooling of a conv
        that feeds nothing else).
    """

    names: tuple
    ops: tuple
    in_elems: np.ndarray
    out_elems: np.ndarray
    window: np.ndarray
    fusable: np.ndarray
    channels: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def from_network(cls, network: Network) -> "AuxTable":
        """Collect the pooling, global-pooling and add layers of ``network``."""
        by_name = {layer.name: layer for layer in network.layers}
        consumers: dict[str, int] = {}
        for layer in network.layers:
            for src in layer.inputs:
                consumers[src] = consumers.get(src, 0) + 1
        names, ops, ins, outs, win, fus, chans = [], [], [], [], [], [], []
        for layer in network.layers:
            if layer.op not in AUX_OPS:
                continue
            in_elems = 0
            for src in layer.inputs:
                shape = by_name[src].out_shape if src in by_name else layer.in_shape
                in_elems += int(np.prod(shape))
            if not layer.inputs:
                in_elems = int(np.prod(layer.in_shape))
            c, h, w = layer.out_shape
            if layer.op == "add":
                window = max(1, len(layer.inputs))
            elif layer.op == "gap":
                window = layer.in_shape[1] * layer.in_shape[2]
            else:
                window = layer.kernel[0] * layer.kernel[1]
            producer = by_name.get(layer.inputs[0]) if len(layer.inputs) == 1 else None
            fusable = (layer.op in ("maxpool", "avgpool", "gap") and producer is not None
                       and producer.op == "conv" and consumers.get(producer.name, 0) == 1)
            names.append(layer.name)
            ops.append(layer.op)
            ins.append(in_elems)
            outs.append(c * h * w)
            win.append(window)
            fus.append(fusable)
            chans.append(c)
        return cls(names=tuple(names), ops=tuple(ops),
                   in_elems=np.asarray(ins, dtype=np.int64),
                   out_elems=np.asarray(outs, dtype=np.int64),
                   window=np.asarray(win, dtype=np.int64),
                   fusable=np.asarray(fus, dtype=bool),
                   channels=np.asarray(chans, dtype=np.int64))
