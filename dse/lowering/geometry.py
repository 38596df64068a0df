"""A layer's geometry and its lowering, as scalars (compiler) or broadcast arrays (explorer)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Geometry", "Lowered", "cdiv"]


def cdiv(a, b):
    """Ceiling division of non-negative integers (Python, numpy and torch)."""
    return -(-a // b)


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


@dataclass(frozen=True)
class Geometry:
    """One conv layer's shape: Python integers, or arrays that broadcast together.

    ``stride`` and ``dilation`` are the vertical ones; the datapath refuses unequal pairs
    (``square_steps`` is false then).  Fully connected layers are 1×1 convolutions on a 1×1
    map.  ``unit_pads`` false: the window generator and the shift-and-add apply no padding,
    the buffer image holds all of it (an overlay that requantises per channel: the padding
    is the input's zero point, which the units do not know).
    """

    c_in: object
    c_out: object
    groups: object
    kh: object
    kw: object
    stride: object
    dilation: object
    h_in: object
    w_in: object
    h_out: object
    w_out: object
    pad_t: object
    pad_l: object
    pad_b: object
    pad_r: object
    square_steps: object = True
    unit_pads: object = True

    @classmethod
    def of_layer(cls, layer) -> "Geometry":
        """The geometry of a :class:`dse.network.Layer` (``conv`` or ``fc``), as integers."""
        if layer.op == "fc":
            c = int(np.prod(layer.in_shape))
            return cls(c, layer.out_shape[0], 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, True)
        c, h, w = layer.in_shape
        n, oh, ow = layer.out_shape
        kh, kw = _pair(layer.kernel)
        sh, sw = _pair(layer.stride)
        dh, dw = _pair(layer.dilation)
        t, l, b, r = layer.padding
        return cls(c, n, layer.groups, kh, kw, sh, dh, h, w, oh, ow, t, l, b, r,
                   sh == sw and dh == dw)

    @classmethod
    def of_table(cls, layers, xp=np) -> "Geometry":
        """The geometry of every layer of a :class:`dse.cost.workload.LayerTable`,
        float64 ``(L, 1, 1)`` arrays of namespace ``xp``."""
        col = lambda name: layers.column(name, xp)  # noqa: E731
        square = xp.asarray(((layers.stride_h == layers.stride_w)
                             & (layers.dil_h == layers.dil_w)).reshape(-1, 1, 1))
        return cls(col("c_in"), col("c_out"), col("groups"), col("kh"), col("kw"),
                   col("stride_h"), col("dil_h"), col("h_in"), col("w_in"), col("h_out"),
                   col("w_out"), col("pad_t"), col("pad_l"), col("pad_b"), col("pad_r"),
                   square)

    @property
    def c_group(self):
        """Input channels per group."""
        return self.c_in // self.groups

    @property
    def n_group(self):
        """Output channels per group."""
        return self.c_out // self.groups

    def unit_pad(self, xp=np):
        """Padding the window generator and shift-and-add apply (the smallest side); the
        rest is put into the buffer image."""
        least = xp.minimum(xp.minimum(self.pad_t, self.pad_l), xp.minimum(self.pad_b, self.pad_r))
        return least if self.unit_pads is True else xp.where(self.unit_pads, least, 0 * least)

    def padded(self, unit_pad):
        """Height and width of the input image in the buffer, with the padding beyond
        ``unit_pad`` in it."""
        return (self.h_in + self.pad_t + self.pad_b - 2 * unit_pad,
                self.w_in + self.pad_l + self.pad_r - 2 * unit_pad)


@dataclass(frozen=True)
class Lowered:
    """One datapath invocation of a layer under one algorithm (members broadcast).

    Members
    -------
    m, k, n: the shape of each GEMM the engine runs (A activations M×K, B weights K×N; K
        includes the zero channels that fill the last feature-buffer word of a pixel).
    k_alg: K of the algorithm itself (without those zero channels).
    gemms: GEMMs per invocation.
    invocations: identical invocations of the layer (one per group).
    a_words, b_words, c_words: per GEMM, the vectors its A front delivers, the weight
        buffer words it reads, and the C words its back takes.
    out_words: output-buffer words the invocation writes.
    tiles, pieces: Winograd/FFT tiles (im2col: output pixels, kn2row: input pixels) and
        Winograd 3×3 pieces per kernel (1 elsewhere), for the energy model.
    load: cycles the A front needs to deliver one GEMM's A; the engine's start waits for it
        (and for the weights).
    drain: cycles from the engine's first C word of a GEMM to its back taking the last.
    front, back: the front and back unit counters of one invocation.
    band: im2col: output rows of each GEMM (0 elsewhere).
    """

    m: object
    k: object
    n: object
    k_alg: object
    gemms: object
    invocations: object
    a_words: object
    b_words: object
    c_words: object
    out_words: object
    tiles: object
    pieces: object
    load: object
    drain: object
    front: object
    back: object
    band: object = 0

    @property
    def macs(self):
        """Multiplies the array performs in the whole layer (transformed domain, with the
        zero channels of partly filled feature words)."""
        return self.invocations * self.gemms * self.m * self.k * self.n

    @property
    def macs_needed(self):
        """Multiplies the algorithm needs (transformed domain, no padding channels, and for
        im2col's bands no padded rows: its ``tiles`` are the output pixels)."""
        rows_a = np.where(np.asarray(self.band) > 0, self.tiles, self.gemms * self.m)
        return self.invocations * rows_a * self.k_alg * self.n
