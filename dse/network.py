"""Network IR: a DAG of layers with inferred shapes and MAC counts.

A :class:`Network` is an ordered collection of :class:`Layer` objects in topological order
(every layer's inputs come before it).  Shapes are ``(C, H, W)`` tuples.  The importers
(``dse.importers``) and the built-in networks (``dse.zoo``) produce Networks; the cost model
and the mapper consume them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Layer", "Network", "OPS"]

#: Layer operations of the IR.  ``conv`` and ``fc`` carry MACs; the rest are data movement
#: or element-wise work (``input`` is the graph's source node).
OPS = ("input", "conv", "fc", "maxpool", "avgpool", "gap", "add", "concat",
       "relu", "relu6", "sigmoid", "flatten", "identity")


@dataclass(frozen=True)
class Layer:
    """One node of the network graph.

    Members
    -------
    name: unique layer name.
    op: one of :data:`OPS`.
    inputs: names of the producer layers, in order.
    in_shape: shape of the first input, ``(C, H, W)``.
    out_shape: output shape, ``(C, H, W)``; fc layers have ``(features, 1, 1)``.
    kernel, stride, dilation: ``(h, w)`` pairs (``(1, 1)`` where meaningless).
    padding: ``(top, left, bottom, right)``.
    groups: convolution groups (``in_channels`` for depthwise).
    ceil_mode: pooling rounds the output size up.
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


@dataclass
class Network:
    """A named DAG of layers in topological order, with the input shape ``(C, H, W)``."""

    name: str
    input_shape: tuple[int, int, int]
    layers: list[Layer] = field(default_factory=list)

    def __getitem__(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def total_macs(self) -> int:
        """MACs of all conv and fc layers."""
        return sum(layer.macs for layer in self.layers)
