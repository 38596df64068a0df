"""Host-side compiler of one convolution layer for the datapath (``rtl/conv_datapath.py``).

:func:`plan_conv` turns a layer and its (algorithm, dataflow) into a :class:`ConvPlan`: the
datapath invocations that run it (one per group and per block of filters that fits the
buffers), each with the settings the datapath's ports take, the GEMMs it runs, and how its
buffers are laid out.  The plan then builds the buffer images from data
(:meth:`ConvPlan.feature_image`, :meth:`ConvPlan.tile_image`, :meth:`ConvPlan.weight_image`)
and reassembles the layer output from the output buffers (:meth:`ConvPlan.decode`).

Offline weight transforms live here (``dse`` must not import ``sim``): Winograd
F(2×2,3×3) weights as (2G)·g·(2G)ᵀ = 4·U and F(4×4,3×3) as (24G)·g·(24G)ᵀ = 576·U, exact
integers (the output transform divides exactly).  Kernels larger than 3×3 are split into ceil(k/3)² zero-padded
3×3 pieces (DYNAMAP); the pieces' transformed products are accumulated by the array along K
(K = pieces · C), so one output transform serves them all.  ``tests/dse/test_compiler.py``
checks these transforms against ``sim/models/winograd.py``.

FFT (overlap-and-add, ``rtl/spectral.py``): input tiles of step T = N − R + 1 pixels of the
padded input, zero-padded to N×N, one tile buffer word per activation in the order (tile,
channel, y, x); kernel spectra computed offline in float64 from the flipped kernel and
quantised half up to ``b_width − 1`` bits with the largest fraction that fits the whole
layer (:func:`fft_kernel_spectra`, the same rule as ``sim/models/fft.py``); only the bins
(u, v) with v ≤ N/2 are computed (the spectrum of a real tile is Hermitian; the datapath
mirrors the rest), in order u-major; the weight buffer holds three real planes per bin for
Gauss's three real GEMMs: c, d − c and c + d of W = c + jd.  GEMM 3b + j is part j of the
b-th computed bin: M = tiles, K = C, N = filters; 3·N·(N/2 + 1) GEMMs.

Refusals (:class:`ValueError` with the reason; the CLI turns them into InputError): Winograd
on anything but a square k×k (k >= 3), stride-1, dilation-1, ungrouped conv, or without a
Winograd unit; FFT on anything but a square, stride-1, dilation-1, ungrouped conv whose kernel
is smaller than the FFT tile, or without an FFT unit; kn2row with a stride other than 1, 2 or
4; unequal strides or dilations; sparse FFT without a sparse unit beside the FFT unit, or a
layer whose input spectra or one group's kernels and schedule do not fit
(:func:`dse.lowering.sparse_fft.invocations`); a GEMM larger than the datapath's buffers.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field

import numpy as np

from dse.cost import transforms as tf
from dse.cost.gemm import DEFAULT_MULT_LATENCY
from dse.lowering import Geometry, lowering
from dse.lowering import datapath as dp
from dse.lowering import im2col as im2col_lowering
from dse.lowering import sparse_fft as sparse_lowering
from dse.lowering.split import band_rows, engine_words, split_cycles
from dse.lowering.winograd import pieces as winograd_pieces
from rtl.params import Algorithm, DatapathLimits, Dataflow, OverlayParams

__all__ = ["WINO_G_SCALED", "WINO_G_DENOM", "winograd_weights",
           "winograd_pieces", "fft_kernel_spectra", "fft_mac_shift_bound", "Invocation",
           "Band", "ConvPlan", "plan_conv", "required_limits", "default_requant"]

#: G_DENOM[m]·G for F(m×m, 3×3): integer weight transforms (Lavin & Gray).
WINO_G_SCALED = {
    2: np.array([[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]], dtype=np.int64),
    4: np.array([[6, 0, 0], [-4, -4, -4], [-4, 4, -4], [1, 2, 4], [1, -2, 4], [0, 0, 24]],
                dtype=np.int64),
}
WINO_G_DENOM = {2: 2, 4: 24}


def winograd_weights(w: np.ndarray, m: int) -> np.ndarray:
    """Transformed weights of 3×3 kernels N×C×3×3 → N×C×(m+2)×(m+2).

    (G_DENOM·G) g (G_DENOM·G)ᵀ = G_DENOM²·U exactly: 4·U for m = 2, 576·U for m = 4 (the
    output transform divides by it exactly).
    """
    if m not in (2, 4):
        raise ValueError(f"m must be 2 or 4, not {m!r}")
    w = np.asarray(w, dtype=np.int64)
    if w.shape[-2:] != (3, 3):
        raise ValueError(f"kernel must be 3×3, not {w.shape[-2]}×{w.shape[-1]}")
    gs = WINO_G_SCALED[m]
    return gs @ w @ gs.T


def _split_pieces(w: np.ndarray) -> np.ndarray:
    """N×C×k×k → N×C×P×3×3: the kernel zero-padded to 3p×3p, cut into p² pieces row-major."""
    n, c, k, _ = w.shape
    p = winograd_pieces(k)
    big = np.zeros((n, c, 3 * p, 3 * p), dtype=np.int64)
    big[:, :, :k, :k] = w
    return big.reshape(n, c, p, 3, p, 3).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, p * p, 3, 3)


def fft_kernel_spectra(w: np.ndarray, n: int, kernel_bits: int):
    """Quantised kernel spectra of N×C×R×S weights for N-point tiles: (re, im, frac).

    The kernel is flipped (the layer correlates), zero-padded to n×n and transformed in
    float64; both parts are quantised half up, floor(v·2^frac + 1/2), with the largest
    ``frac`` that keeps every part of the layer within ``kernel_bits`` signed bits.
    """
    w = np.asarray(w, dtype=np.float64)
    nf, c, r, s = w.shape
    padded = np.zeros((nf, c, n, n))
    padded[:, :, :r, :s] = w[:, :, ::-1, ::-1]
    spec = np.fft.fft2(padded)
    peak = max(float(np.abs(spec.real).max()), float(np.abs(spec.imag).max()), 1e-300)
    frac = int(np.floor(np.log2(((1 << (kernel_bits - 1)) - 1) / peak)))
    scale = 2.0 ** frac
    quant = lambda v: np.floor(v * scale + 0.5).astype(np.int64)  # noqa: E731
    return quant(spec.real), quant(spec.imag), frac


def fft_mac_shift_bound(channels: int, data_bits: int, kernel_bits: int) -> int:
    """A requantisation shift of the spectral sums that can never saturate.

    |Re|, |Im| ≤ C·2·2^(data_bits−1)·2^(kernel_bits−1), brought under 2^(data_bits−1).
    Safe but coarse: ``omniconv verify`` calibrates the shift on its data instead (the
    smallest that saturates nothing, as ``sim.models.fft.fft_conv`` picks it).
    """
    peak = channels * 2 * (1 << (data_bits - 1)) * (1 << (kernel_bits - 1))
    return max(0, peak.bit_length() - (data_bits - 1))


def default_requant(k: int, precision: int, mult_bits: int = 16) -> tuple[int, int]:
    """A (mult, shift) that maps ±3σ of a K-term sum of uniform random operands to the
    output range: σ = sqrt(K)·(2^(p−1))²/3 for operands uniform in [−2^(p−1), 2^(p−1))."""
    sigma = math.sqrt(max(1, k)) * (1 << (2 * precision - 2)) / 3.0
    mult = (1 << (mult_bits - 1)) - 1 - 0x155        # an odd, not-power-of-two multiplier
    target = (1 << (precision - 1)) - 1
    shift = max(0, math.ceil(math.log2(3 * sigma * mult / target)))
    return mult, shift


@dataclass(frozen=True)
class Invocation:
    """One run of the datapath: settings, GEMM shape and where its data comes from.

    Members
    -------
    registers:
        Datapath port name → value (``rtl.conv_datapath.ConvDatapath`` settings).
    gemm:
        (M, K, N) of each of its GEMMs.
    gemms:
        Number of GEMMs (im2col: one per band of output rows, R·S kn2row, (m+2)² Winograd,
        3·N·(N/2+1) FFT).
    b_matrices:
        B matrices in the weight buffer: one for im2col (every band multiplies the same
        weights), one per GEMM otherwise.
    group, filters:
        The group and the slice of output channels (start, stop) it computes.
    out_words:
        Output buffer words it writes.
    """

    registers: dict
    gemm: tuple
    gemms: int
    group: int
    filters: tuple
    out_words: int
    b_matrices: int
    band: int = -1            # index into ConvPlan.bands, −1 in a plan of one band
    final: bool = True        # its outputs are the layer's (False: a K split's earlier
                              # channel chunk, whose accumulations the next one adds to)

    @property
    def weight_words(self) -> int:
        """Weight-buffer words of the invocation."""
        return self.b_matrices * self.registers["b_words"]


@dataclass(frozen=True)
class Band:
    """Output rows [rows[0], rows[1]) of a layer cut into row bands or channel chunks,
    planned as a layer of their own (``plan``) over input rows [in_rows[0], in_rows[1])
    and input channels [channels[0], channels[1]) (of the plan's input: the host patches'
    with ``host_patches``)."""

    rows: tuple
    in_rows: tuple
    plan: "ConvPlan"
    channels: tuple = ()


@dataclass(frozen=True)
class ConvPlan:
    """How one conv layer runs on the datapath (see the module docstring).

    A layer too large for the buffers is cut into row bands (:mod:`dse.lowering.split`):
    ``bands`` then holds one :class:`Band` each, every invocation names its band, and the
    methods that take an invocation work on that band's plan."""

    algorithm: str
    variant: str
    dataflow: str
    in_shape: tuple
    out_shape: tuple
    kernel: tuple
    stride: int
    dilation: int
    pads: tuple                  # (top, left, bottom, right) of the layer
    unit_pad: int                # padding the units apply; the rest is in the buffer image
    groups: int
    winograd_m: int = 0
    invocations: tuple = field(default=())
    fft_n: int = 0               # FFT tile N (0 unless FFT)
    fft_shift: int = 0           # requantisation shift of the spectral sums
    data_bits: int = 0           # FFT data width (a_width − 1)
    kernel_bits: int = 0         # bits of each quantised kernel-spectrum part (b_width − 1)
    precision: int = 8           # bits of activations and weights
    rows: int = 1                # the array the plan is for
    cols: int = 1
    winograd_lanes: int = 1      # Winograd output transforms (filters per output word)
    host_patches: tuple = ()     # im2col from host patches: the layer's (kernel, stride,
                                 # dilation, pads); the plan's shapes are the 1×1 conv's
    limits: tuple = ()           # the DatapathLimits items planned for (im2col's bands)
    bands: tuple = ()            # Band per row band when the layer is cut into bands
    requant: str = "shift"       # the overlay's requantiser (OverlayParams.requant)
    density: float = 0.0         # sparse_fft: kernel density the spectra are pruned to
    sparse_lanes: int = 0        # sparse_fft: the sparse unit's lanes and banks
    sparse_banks: int = 0

    @property
    def spectral(self) -> bool:
        """Whether the layer runs on the FFT path (``fft``, or ``sparse_fft``: the same path
        with the pruned spectral MAC on the sparse unit)."""
        return self.algorithm in ("fft", "sparse_fft")

    @property
    def _lowering_name(self) -> str:
        """The lowering the plan's shapes come from."""
        return _shapes_of(self.algorithm)

    def sparse_kernels(self, w: np.ndarray):
        """sparse_fft: the layer's quantised kernel half spectra pruned to ``density``
        (:class:`dse.compiler.sparse_schedule.PrunedKernels`, filters × channels × bins;
        the spectra's fraction is the whole layer's, as the FFT path's; remembered per
        weights, as every invocation of a layer asks for them)."""
        w = np.ascontiguousarray(w, dtype=np.int64)
        return _pruned(self.fft_n, self.kernel_bits, self.density, w.shape, w.tobytes())

    def sparse_program(self, w: np.ndarray, inv: "Invocation"):
        """sparse_fft: what the sparse unit's memories hold for the invocation's filters and
        channels (:func:`dse.compiler.sparse_schedule.layer_program`; the layer's pruned
        spectra, whose fraction is the whole layer's)."""
        from dse.compiler.sparse_schedule import PrunedKernels, layer_program

        pruned = self.sparse_kernels(w)
        f0, f1 = inv.filters
        c0, c1 = self._channels(inv)
        part = PrunedKernels(pruned.n, pruned.mask[f0:f1, c0:c1], pruned.bin[f0:f1, c0:c1],
                             pruned.re[f0:f1, c0:c1], pruned.im[f0:f1, c0:c1])
        return layer_program(part, self.sparse_lanes, self.sparse_banks)

    def sparse_cycles(self, w: np.ndarray) -> dict:
        """sparse_fft: the predicted counters of the layer with its own weights (the
        compiled schedules' steps, not the explorer's expectation), invocations summed."""
        total: dict = {}
        steps_of: dict = {}         # a filter and channel chunk's schedule: in every band
        for inv in self.invocations:
            key = (inv.filters, self._channels(inv))
            if key not in steps_of:
                steps_of[key] = int(self.sparse_program(w, inv).schedule.steps.sum())
            steps = steps_of[key]
            plan = self._band(inv)[0] if inv.band >= 0 else self     # a band's own tiles
            g = dataclasses.replace(plan.geometry, c_out=inv.gemm[2])
            for k, v in sparse_lowering.datapath_cycles(
                    g, self.fft_n, self.sparse_lanes, steps,
                    requant_latency=tf.requant_latency(self.requant),
                    kept=bool(inv.registers["ff_keep"])).items():
                total[k] = total.get(k, 0) + int(v)
        return total

    def _channels(self, inv: "Invocation") -> tuple:
        """Input channels ``(c0, c1)`` of an invocation (of its band's channel chunk)."""
        return self.bands[inv.band].channels if inv.band >= 0 else (0, self.in_shape[0])

    def _band(self, inv: "Invocation"):
        """(band plan, the invocation as that plan's) of a banded plan's invocation."""
        return self.bands[inv.band].plan, dataclasses.replace(inv, band=-1)

    def _band_input(self, x, inv: "Invocation"):
        band = self.bands[inv.band]
        (i0, i1), (c0, c1) = band.in_rows, band.channels
        return self.host_input(x)[c0:c1, i0:i1]

    @property
    def geometry(self) -> Geometry:
        """The layer's geometry (:class:`dse.lowering.Geometry`)."""
        (c, h, w), (n, oh, ow) = self.in_shape, self.out_shape
        return Geometry(c, n, self.groups, *self.kernel, self.stride, self.dilation, h, w,
                        oh, ow, *self.pads, unit_pads=self.requant != "f32")

    @property
    def unit(self) -> int:
        """The transform unit's size the plan uses: Winograd m, FFT N, else 0."""
        return self.winograd_m or self.fft_n

    def lowered(self, rows: int, cols: int, n: int):
        """The lowering of one invocation of ``n`` filters on a rows×cols array (a plan of
        one band)."""
        return _lower(self._lowering_name, self.geometry, self.unit, rows, cols,
                      Dataflow(self.dataflow).code, n, self.winograd_lanes,
                      dict(self.limits) or None)

    def invocation_cycles(self, inv: "Invocation", rows: int, cols: int,
                          mult_latency: int = DEFAULT_MULT_LATENCY) -> dict:
        """Predicted counters of one invocation on a rows×cols array (``dse.lowering``):
        ``cycles`` and the ``gemm``, ``front``, ``back`` and ``requant`` unit counters."""
        if inv.band >= 0:
            sub, inv = self._band(inv)
            return sub.invocation_cycles(inv, rows, cols, mult_latency)
        if self.algorithm == "sparse_fft":       # the explorer's expectation of the steps
            c = sparse_lowering.cycles(
                dataclasses.replace(self.geometry, c_out=inv.gemm[2]), self.fft_n,
                self.sparse_lanes, self.sparse_banks,
                sparse_lowering.keep(self.density, self.fft_n),
                requant_latency=tf.requant_latency(self.requant),
                kept=bool(inv.registers["ff_keep"]))
            return {k: int(round(float(c[k]))) for k in (
                "cycles", "gemm_cycles", "front_cycles", "back_cycles", "requant_cycles",
                "smac_cycles")}
        mod = lowering(self.algorithm)
        flow = Dataflow(self.dataflow).code
        low = self.lowered(rows, cols, inv.gemm[2])
        kept = {"kept": bool(inv.registers["ff_keep"])} if self.spectral else {}
        return {k: int(v) for k, v in mod.cycles(
            low, rows, cols, flow, mult_latency=mult_latency,
            requant_latency=tf.requant_latency(self.requant), **kept).items()}

    def cycles(self, rows: int, cols: int, mult_latency: int = DEFAULT_MULT_LATENCY) -> dict:
        """Predicted counters of the whole layer: :meth:`invocation_cycles` summed."""
        total: dict = {}
        for inv in self.invocations:
            for k, v in self.invocation_cycles(inv, rows, cols, mult_latency).items():
                total[k] = total.get(k, 0) + v
        return total

    def ideal_cycles(self, rows: int, cols: int) -> int:
        """The ideal bound of the layer on a rows×cols array: the multiplies its algorithm
        needs (:attr:`dse.lowering.Lowered.macs_needed`, summed over the invocations) ÷ PEs,
        rounded up."""
        macs = sum(int((self._band(inv)[0] if inv.band >= 0 else self)
                       .lowered(rows, cols, inv.gemm[2]).macs_needed)
                   for inv in self.invocations)
        return -(-macs // (rows * cols))

    @property
    def fft_step(self) -> int:
        """Output pixels per FFT tile side, N − R + 1."""
        return self.fft_n - self.kernel[0] + 1

    @property
    def fft_grid(self) -> tuple:
        """FFT tiles (rows, columns) covering the padded input."""
        hp, wp = self.padded_hw
        step = self.fft_step
        return -(-hp // step), -(-wp // step)

    def fft_scale_exp(self, kernel_frac: int) -> int:
        """e with accumulations · 2^e ≈ exact convolution (every FFT pass halves).

        Forward and inverse transforms each scale by 2^(−2·log2 N), the IFFT is
        unnormalised (×N²), inputs enter shifted up by data_bits − precision − 1 and the
        kernels by ``kernel_frac``: e = 2·log2 N + fft_shift − in_shift − kernel_frac.
        """
        lg = self.fft_n.bit_length() - 1
        in_shift = self.data_bits - self.precision - 1
        return 2 * lg + self.fft_shift - in_shift - kernel_frac

    # -- geometry helpers -----------------------------------------------------------------
    @property
    def padded_hw(self) -> tuple:
        """Height and width of the input image in the feature buffer (extra padding in)."""
        t, l, b, r = (p - self.unit_pad for p in self.pads)
        return self.in_shape[1] + t + b, self.in_shape[2] + l + r

    def _image_input(self, x: np.ndarray) -> np.ndarray:
        t, l, b, r = (p - self.unit_pad for p in self.pads)
        return np.pad(np.asarray(x, dtype=np.int64), ((0, 0), (t, b), (l, r)))

    def _group_x(self, x, inv: Invocation):
        cg = self.in_shape[0] // self.groups
        return np.asarray(x, dtype=np.int64)[inv.group * cg:(inv.group + 1) * cg]

    # -- host patches ---------------------------------------------------------------------
    def host_input(self, x: np.ndarray, pad: int = 0) -> np.ndarray:
        """The layer input as the plan reads it: ``x`` itself, or with ``host_patches`` its
        im2col patches C·R·S × OH × OW (channel (c, ky, kx), what the host writes to DRAM),
        the padding ``pad`` (a quantised input's zero point, in the stored form)."""
        x = np.asarray(x, dtype=np.int64)
        if not self.host_patches:
            return x
        (r, s), stride, dil, (t, l, b, rr) = self.host_patches
        c = x.shape[0]
        oh, ow = self.out_shape[1:]
        xp = np.pad(x, ((0, 0), (t, b), (l, rr)), constant_values=pad)
        out = np.empty((c, r, s, oh, ow), dtype=np.int64)
        for ky in range(r):
            for kx in range(s):
                out[:, ky, kx] = xp[:, ky * dil:ky * dil + (oh - 1) * stride + 1:stride,
                                    kx * dil:kx * dil + (ow - 1) * stride + 1:stride]
        return out.reshape(c * r * s, oh, ow)

    def host_weights(self, w: np.ndarray) -> np.ndarray:
        """The weights as the plan multiplies them: ``w``, or with ``host_patches`` the
        N × C·R·S × 1 × 1 weights of the 1×1 convolution over the patches."""
        w = np.asarray(w, dtype=np.int64)
        return w.reshape(w.shape[0], -1, 1, 1) if self.host_patches else w

    # -- buffer images --------------------------------------------------------------------
    def feature_image(self, x: np.ndarray, inv: Invocation) -> np.ndarray:
        """Feature buffer words for im2col and kn2row, ``(words, rows)``: ``rows`` channels
        of a pixel each (the last word of a pixel zero-filled), order (y, x, channel word);
        ``x`` is the layer's input (with ``host_patches``, the host makes the patches)."""
        if inv.band >= 0:
            sub, sub_inv = self._band(inv)
            return sub.feature_image(self._band_input(x, inv), sub_inv)
        xi = self._image_input(self._group_x(self.host_input(x), inv))
        c, hp, wp = xi.shape
        cw = -(-c // self.rows)
        full = np.zeros((cw * self.rows, hp, wp), dtype=np.int64)
        full[:c] = xi
        return full.transpose(1, 2, 0).reshape(hp * wp * cw, self.rows)

    def tile_image(self, x: np.ndarray, inv: Invocation) -> np.ndarray:
        """Winograd tile buffer words, ``(words, rows, (m+2)²)``: ``rows`` channels of one
        (m+2)×(m+2) input tile piece each (the last word of a piece zero-filled), order
        (tile, piece, channel word)."""
        if inv.band >= 0:
            sub, sub_inv = self._band(inv)
            return sub.tile_image(self._band_input(x, inv), sub_inv)
        m = self.winograd_m
        t = m + 2
        k = self.kernel[0]
        p = winograd_pieces(k)
        oh, ow = self.out_shape[1:]
        th, tw = -(-oh // m), -(-ow // m)
        top, left = self.pads[0], self.pads[1]
        c = self.in_shape[0]
        h_need = th * m + 3 * (p - 1) + t
        w_need = tw * m + 3 * (p - 1) + t
        full = np.zeros((c, h_need, w_need), dtype=np.int64)
        xin = np.asarray(x, dtype=np.int64)
        hh = min(xin.shape[1], h_need - top)
        ww = min(xin.shape[2], w_need - left)
        full[:, top:top + hh, left:left + ww] = xin[:, :hh, :ww]
        cw = -(-c // self.rows)
        words = np.zeros((th * tw, p * p, cw * self.rows, t * t), dtype=np.int64)
        for ty in range(th):
            for tx in range(tw):
                for a in range(p):
                    for b in range(p):
                        y0, x0 = ty * m + 3 * a, tx * m + 3 * b
                        d = full[:, y0:y0 + t, x0:x0 + t].reshape(c, t * t)
                        words[ty * tw + tx, a * p + b, :c] = d
        return words.reshape(-1, self.rows, t * t)

    def fft_tile_image(self, x: np.ndarray, inv: Invocation) -> np.ndarray:
        """FFT tile buffer words (one activation each), order (tile, channel, y, x): each
        tile's step × step pixels of the padded input, zero-padded to N×N (of a row band:
        its own input image's tiles)."""
        if inv.band >= 0:
            sub, sub_inv = self._band(inv)
            return sub.fft_tile_image(self._band_input(x, inv), sub_inv)
        n, step = self.fft_n, self.fft_step
        th, tw = self.fft_grid
        xi = self._image_input(x)
        c = xi.shape[0]
        full = np.zeros((c, th * step, tw * step), dtype=np.int64)
        full[:, :xi.shape[1], :xi.shape[2]] = xi
        blocks = full.reshape(c, th, step, tw, step).transpose(1, 3, 0, 2, 4)
        words = np.zeros((th, tw, c, n, n), dtype=np.int64)
        words[..., :step, :step] = blocks
        return words.reshape(-1)

    def fft_weights(self, w: np.ndarray):
        """The layer's quantised kernel spectra (re, im, frac) (:func:`fft_kernel_spectra`)."""
        return fft_kernel_spectra(w, self.fft_n, self.kernel_bits)

    def gemm_weights(self, w: np.ndarray, inv: Invocation) -> np.ndarray:
        """The invocation's B matrices, ``(gemms, K, N)``, K as the engine runs it (the zero
        channels of partly filled feature words included)."""
        w = np.asarray(w, dtype=np.int64)
        if self.algorithm == "sparse_fft":
            return np.zeros((0, 1, inv.gemm[2]), dtype=np.int64)   # the weight buffer idles
        if self.algorithm == "fft":
            kr, ki, _ = self.fft_weights(w)          # whole layer: one fraction for all
            f0, f1 = inv.filters
            c0, c1 = self._channels(inv)             # a channel chunk's part of them
            kr, ki = kr[f0:f1, c0:c1], ki[f0:f1, c0:c1]
            half = self.fft_n // 2 + 1
            planes = np.stack([kr, ki - kr, kr + ki])[..., :half]   # 3, n, c, N, N/2+1
            # GEMM 3b + j: B[c][f] = plane j at the b-th bin (u, v ≤ N/2), u-major
            n, c = planes.shape[1:3]
            return planes.transpose(3, 4, 0, 2, 1).reshape(-1, c, n)
        ng = self.out_shape[0] // self.groups
        f0, f1 = inv.filters
        wg = w[inv.group * ng:(inv.group + 1) * ng][f0:f1]             # n × c × r × s
        n, cg, r, s = wg.shape
        if self.algorithm in ("im2col", "kn2row"):
            cw = -(-cg // self.rows)
            full = np.zeros((n, cw * self.rows, r, s), dtype=np.int64)
            full[:, :cg] = wg
            if self.algorithm == "im2col":                             # (ky, kx, c) × n
                return full.transpose(2, 3, 1, 0).reshape(1, -1, n)
            return full.transpose(2, 3, 1, 0).reshape(r * s, cw * self.rows, n)
        m = self.winograd_m
        t = m + 2
        pieces = _split_pieces(wg)                                      # n, c, P, 3, 3
        u = winograd_weights(pieces, m)                                  # n, c, P, t, t
        p2 = u.shape[2]
        cw = -(-cg // self.rows)
        full = np.zeros((n, cw * self.rows, p2, t, t), dtype=np.int64)
        full[:, :cg] = u
        # GEMM g = transformed position (g // t, g % t); B_g[piece·C' + c][n], C' the
        # channels up to whole tile-buffer words
        return full.transpose(3, 4, 2, 1, 0).reshape(t * t, p2 * cw * self.rows, n)

    def weight_image(self, w: np.ndarray, inv: Invocation) -> np.ndarray:
        """Weight buffer words, ``(words, max(rows, cols))``: the invocation's B matrices back
        to back, each in the GEMM engine's B layout (it reads B there) -- ws and os: N-chunks
        of ``cols`` filters of a row k, order (chunk, k); is: K-chunks of ``rows`` of a
        column n, order (chunk, n); lanes past the matrix zero.  (A spectral plan's bands
        share the layer's weights: its GEMMs take the layer's spectra, at the layer's
        fraction, of the band's channels.)"""
        if inv.band >= 0 and not self.spectral:
            sub, sub_inv = self._band(inv)
            c0, c1 = self.bands[inv.band].channels
            return sub.weight_image(self.host_weights(w)[:, c0:c1], sub_inv)
        rows, cols = self.rows, self.cols
        edge = max(rows, cols)
        words = [np.zeros((0, edge), dtype=np.int64)]
        for b in self.gemm_weights(self.host_weights(w), inv):
            k, n = b.shape
            if self.dataflow == "is":
                kb = -(-k // rows)
                full = np.zeros((kb * rows, n), dtype=np.int64)
                full[:k] = b
                chunks = full.reshape(kb, rows, n).transpose(0, 2, 1).reshape(-1, rows)
            else:
                nb = -(-n // cols)
                full = np.zeros((k, nb * cols), dtype=np.int64)
                full[:, :n] = b
                chunks = full.reshape(k, nb, cols).transpose(1, 0, 2).reshape(-1, cols)
            wide = np.zeros((len(chunks), edge), dtype=np.int64)
            wide[:, :chunks.shape[1]] = chunks
            words.append(wide)
        return np.concatenate(words)

    def decode(self, words: np.ndarray, inv: Invocation) -> np.ndarray:
        """This invocation's outputs (filters × OH × OW) from its output buffer words.

        ``words`` is (out_words, lanes): im2col and kn2row words are C vectors of ``cols``
        lanes -- ws and os: filters of a pixel, order (pixel, filter chunk); is (im2col):
        pixels of a filter, order (pixel chunk, filter); FFT words hold one output in lane 0,
        HWC order (pixel-major, filter fastest); Winograd words are the m×m tiles of
        ``winograd_lanes`` filters (filter-major), order (tile, filter group).
        """
        if inv.band >= 0:
            sub, sub_inv = self._band(inv)
            return sub.decode(words, sub_inv)
        words = np.asarray(words, dtype=np.int64)
        oh, ow = self.out_shape[1:]
        f0, f1 = inv.filters
        n = f1 - f0
        cols = self.cols
        if self.spectral:
            return words[:oh * ow * n, 0].reshape(oh, ow, n).transpose(2, 0, 1)
        if self.algorithm in ("im2col", "kn2row"):
            pix = oh * ow
            if self.dataflow == "is":
                mb = -(-pix // cols)
                c = words[:mb * n, :cols].reshape(mb, n, cols).transpose(0, 2, 1)
                c = c.reshape(mb * cols, n)[:pix]
            else:
                nb = -(-n // cols)
                c = words[:pix * nb, :cols].reshape(pix, nb * cols)[:, :n]
            return c.reshape(oh, ow, n).transpose(2, 0, 1)
        m, wl = self.winograd_m, self.winograd_lanes
        th, tw = -(-oh // m), -(-ow // m)
        groups = -(-n // wl)
        y = words[:th * tw * groups, :wl * m * m].reshape(th, tw, groups * wl, m, m)[:, :, :n]
        return y.transpose(2, 0, 3, 1, 4).reshape(n, th * m, tw * m)[:, :oh, :ow]

    def assemble(self, parts) -> np.ndarray:
        """The layer output N×OH×OW from the decoded outputs of every invocation, in order
        (of a K split's channel chunks, the last's)."""
        out = np.zeros(self.out_shape, dtype=np.int64)
        ng = self.out_shape[0] // self.groups
        for inv, part in zip(self.invocations, parts):
            if not inv.final:
                continue
            f0, f1 = inv.filters
            y0, y1 = self.bands[inv.band].rows if inv.band >= 0 else (0, self.out_shape[1])
            out[inv.group * ng + f0:inv.group * ng + f1, y0:y1] = part
        return out


@functools.lru_cache(maxsize=8)
def _pruned(n: int, kernel_bits: int, density: float, shape: tuple, data: bytes):
    """:meth:`ConvPlan.sparse_kernels` itself, keyed by the weights (``data``: their int64
    bytes, ``shape``)."""
    from dse.compiler.sparse_schedule import prune_spectral

    w = np.frombuffer(data, dtype=np.int64).reshape(shape)
    kr, ki, _ = fft_kernel_spectra(w, n, kernel_bits)
    half = n // 2 + 1
    return prune_spectral(kr[..., :half], ki[..., :half], density)


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _lower(algo, geometry, unit, rows, cols, flow_code, n, winograd_lanes, limits=None):
    """``dse.lowering``'s lowering of one invocation (Winograd with its output lanes,
    im2col with its bands within ``limits``)."""
    extra = {"lanes": winograd_lanes} if algo == "winograd" else {}
    if algo == "im2col":
        extra["limits"] = limits
    return lowering(algo).lower(geometry, unit, rows, cols, flow_code, n=n, **extra)


def plan_conv(layer, algorithm, dataflow, params: OverlayParams, limits=None, *,
              requant=None, relu: bool = False,
              precision: int = 8, fft_shift: int | None = None,
              variant: str | None = None, density: float | None = None,
              _n_step: int | None = None) -> ConvPlan:
    """Plan one conv layer (a :class:`dse.network.Layer`) on the datapath.

    Parameters
    ----------
    layer:
        The conv layer (``op == "conv"``).
    algorithm, dataflow:
        Names or enums; Winograd uses ``params.winograd_m``.
    params:
        The overlay.
    limits:
        ``rtl.params.DatapathLimits`` (any object with its attributes), or ``None``
        for unbounded buffers (one invocation per group; used to size a datapath).  A layer
        larger than the buffers runs as several invocations: filter chunks and row bands
        (:mod:`dse.lowering.split`, the explorer's rule too).
    requant:
        (mult, shift), default :func:`default_requant` of the layer's K.
    relu:
        Apply ReLU after requantisation.
    fft_shift:
        FFT: requantisation shift of the spectral sums before the IFFT; ``None`` for
        :func:`fft_mac_shift_bound` (never saturates; coarse).
    variant:
        ``"patches"``: im2col of the host's im2col patches of the layer input (a layer that
        reads the network input: :func:`dse.lowering.im2col.patched`); the plan is the 1×1
        convolution over them and records the layer's window in ``host_patches``.  Any other
        value is the algorithm's own variant, which follows from the algorithm and the
        overlay (design.json's names, or empty).
    density:
        sparse_fft: the density the kernel spectra are pruned to (default 0.25, the
        config's ``sparsity.density`` default).

    Raises
    ------
    ValueError
        For a layer/algorithm combination the datapath cannot run (module docstring).
    """
    # Plans are frozen and a pure function of the arguments; the compiler and the program
    # timing plan the same layers many times over (candidates, half buffers, the network).
    key = (layer, algorithm, dataflow, params, limits, requant, relu, precision, fft_shift,
           variant, density, _n_step)
    try:
        hash(key)
    except TypeError:                        # e.g. limits as a plain namespace
        return _plan_conv(*key)
    return _plan_conv_cached(*key)


@functools.lru_cache(maxsize=4096)
def _plan_conv_cached(*key) -> ConvPlan:
    return _plan_conv(*key)


def _plan_conv(layer, algorithm, dataflow, params: OverlayParams, limits, requant, relu,
               precision, fft_shift, variant, density, _n_step) -> ConvPlan:
    """:func:`plan_conv` itself (uncached)."""
    algo = Algorithm(algorithm).value
    flow = Dataflow(dataflow)
    if getattr(layer, "op", "conv") != "conv":
        raise ValueError(f"layer {layer.name} must be a conv layer, not {layer.op}")
    host_patches = ()
    if variant == "patches":
        g0 = Geometry.of_layer(layer)
        if algo != "im2col" or not bool(im2col_lowering.legal(g0, 1)):
            raise ValueError(f"layer {layer.name}: host patches are an im2col variant of one "
                             f"group ({im2col_lowering.RULE}), not {algo} with "
                             f"{layer.groups} groups and strides {tuple(_pair(layer.stride))}")
        host_patches = ((g0.kh, g0.kw), g0.stride, g0.dilation, tuple(layer.padding))
        pg = im2col_lowering.patched(g0)                          # the lowering's rule
        layer = dataclasses.replace(
            layer, in_shape=(pg.c_in, pg.h_in, pg.w_in), kernel=(pg.kh, pg.kw),
            stride=(pg.stride, pg.stride), dilation=(pg.dilation, pg.dilation),
            padding=(pg.pad_t, pg.pad_l, pg.pad_b, pg.pad_r))
    c, h, w = layer.in_shape
    n_out, oh, ow = layer.out_shape
    r, s = _pair(layer.kernel)
    sh, sw = _pair(layer.stride)
    dh, dw = _pair(layer.dilation)
    pads = tuple(layer.padding)
    groups = layer.groups
    what = f"layer {layer.name} ({r}x{s}, stride {sh}, dilation {dh}, groups {groups})"
    sparse = algo == "sparse_fft"
    if sparse:
        if not params.fft_size or not params.sparse_lanes:
            raise ValueError(f"{what}: sparse_fft needs an FFT unit and a sparse unit "
                             f"(fft_size = {params.fft_size}, sparse_lanes = "
                             f"{params.sparse_lanes})")
        from dse.compiler.sparse_schedule import keep_count

        density = 0.25 if density is None else density
        keep_count(density, 1)                  # a number in (0, 1]
    else:
        density = 0.0
    if sh != sw or dh != dw:
        raise ValueError(f"{what}: {im2col_lowering.RULE}, not {(sh, sw)} and {(dh, dw)}")
    unit, variant = 0, algo
    if algo == "winograd":
        unit = params.winograd_m
        if not unit:
            raise ValueError(f"{what}: winograd needs a Winograd unit (winograd_m = 0)")
        variant = f"F{unit}x{unit}_3x3"
    if algo in ("fft", "sparse_fft"):
        unit = params.fft_size
        if not unit:
            raise ValueError(f"{what}: fft needs an FFT unit (fft_size = 0)")
        variant = f"sparse{unit}" if sparse else f"fft{unit}"
    low_algo = _shapes_of(algo)
    geometry = Geometry.of_layer(layer)
    if params.requant == "f32":
        geometry = dataclasses.replace(geometry, unit_pads=False)
    low_mod = lowering(low_algo)
    if not bool(low_mod.legal(geometry, unit)):
        rule = low_mod.RULE.replace(" m x m,", f" {unit}x{unit},").replace(
            " N x N ", f" {unit}x{unit} ")
        raise ValueError(f"{what}: {rule}")
    flows = (sparse_lowering if sparse else low_mod).DATAFLOWS
    if flow not in flows:
        names = " and ".join(d.value for d in flows)
        raise ValueError(f"{what}: the datapath runs {algo} in the {names} dataflows only, "
                         f"not {flow.value}")
    rows, cols = params.rows, params.cols

    wlanes = params.winograd_lanes if algo == "winograd" else 1
    lim = _limits_dict(limits, rows, cols)

    def lowered(nf=None):
        return _lower(low_algo, geometry, unit, rows, cols, flow.code, nf, wlanes, lim)

    def b_matrices(gemms):
        """B matrices in the weight buffer: im2col's bands all multiply the same weights."""
        return 1 if algo == "im2col" else gemms

    wm = unit if algo == "winograd" else 0
    fn = unit if low_algo == "fft" else 0
    low = lowered()
    gk = int(low.k)
    # per-channel requantisation: the padding is the input's zero point, which only the
    # buffer image holds (the units pad with zeros)
    unit_pad = 0 if fn or params.requant == "f32" else min(pads)
    cg, ng = c // groups, n_out // groups
    c_words = -(-cg // rows)                # feature-buffer words of a pixel
    hp, wp = (int(v) for v in geometry.padded(unit_pad))
    # invocations: filter chunks and row bands that fit the buffers (dse.lowering.split)
    if sparse:
        # row bands of whole tile rows, channel chunks and filter chunks
        # (dse.lowering.sparse_fft.invocations: the explorer's rule too)
        ok, sp = sparse_lowering.invocations(geometry, unit, rows, cols, params.sparse_lanes,
                                             params.sparse_banks, density, lim)
        if not bool(ok):
            steps, nnz = sparse_lowering.memory_words(
                1, params.sparse_lanes, unit, params.sparse_lanes, params.sparse_banks,
                density)
            raise ValueError(f"{what}: sparse_fft needs one row of tiles of one channel "
                             f"and one group of filters to fit spectral_words = "
                             f"{lim['spectral_words']} and out_words = {lim['out_words']}, "
                             f"and one channel of one group's kernels and schedule the "
                             f"sparse unit: {steps} schedule words and {nnz} kernel words a "
                             f"lane at density {density} (sparse_steps = "
                             f"{lim['sparse_steps']}, sparse_nnz = {lim['sparse_nnz']})")
        n_step = int(sp.n_step) if _n_step is None else _n_step
    else:
        sp = split_cycles(low_algo, geometry, unit, rows, cols, flow.code, lim, lanes=wlanes,
                          requant_latency=tf.requant_latency(params.requant))["split"]
        if lim is not None and not bool(sp.fits):
            raise ValueError(f"{what} does not fit the datapath's buffers even one filter "
                             f"and one output row at a time: "
                             f"{_misfit(algo, geometry, gk, lim)}")
        n_step = int(sp.n_step) if _n_step is None else _n_step
    data_bits, kernel_bits = (params.a_width - 1, params.b_width - 1) if fn else (0, 0)
    if fn:
        if fft_shift is None:
            fft_shift = fft_mac_shift_bound(c, data_bits, kernel_bits)
    else:
        fft_shift = 0
    if requant is not None:
        mult, shift = requant
    else:
        mult, shift = default_requant(r * s * cg, precision)
        if fn:
            # The accumulations are the convolution / 2^e; e depends on the kernel spectra's
            # fraction, estimated from the bound |spectrum| <= R·S·2^(p-1).
            lg = fn.bit_length() - 1
            frac = int(np.floor(np.log2(((1 << (kernel_bits - 1)) - 1)
                                        / (r * s * (1 << (precision - 1))))))
            e = 2 * lg + fft_shift - (data_bits - precision - 1) - frac
            shift = max(0, shift - e)
    if sp is not None and _n_step is None and (int(sp.bands) > 1 or int(sp.c_chunks) > 1):
        return _banded_plan(layer, algo, flow, params, limits, sp, (mult, shift), relu,
                            precision, fft_shift, host_patches, density)
    invs = []
    for gi in range(groups):
        for f0 in range(0, ng, n_step):
            f1 = min(ng, f0 + n_step)
            nf = f1 - f0
            lo = lowered(nf)
            im, igemms = int(lo.m), int(lo.gemms)         # im2col's bands depend on N
            # GEMMs a fixed period apart (the FFT's run one after another)
            period = 0 if fn else int(dp.gemm_period(lo, dp.gemm_busy(lo, rows, cols, flow.code),
                                                     rows, cols, flow.code))
            if sparse:                  # no GEMM: the sparse unit runs phase 2
                igemms = 0
            regs = {"alg": Algorithm(low_algo).code, "mode": flow.code, "gemm_m": im,
                    "gemm_k": gk, "gemm_n": nf, "gemms": igemms, "gemm_period": period,
                    "a_words": int(lo.a_words),
                    "b_words": 0 if sparse else int(lo.b_words), "c_words": int(lo.c_words),
                    "accumulate": 0, "bank": 0}
            if params.requant == "shift":
                regs.update(rq_mult=mult, rq_shift=shift, rq_relu=int(relu))
            fe = dict(in_h=hp, in_w=wp, c_words=c_words, kernel_h=r, kernel_w=s, stride=sh,
                      pad=unit_pad, dil=dh, out_h=int(lo.band), out_w=ow)
            if algo == "kn2row":
                fe = dict(in_h=hp, in_w=wp, c_words=c_words, kernel_h=1, kernel_w=1, stride=1,
                          pad=0, dil=1, out_h=hp, out_w=wp)
            sa = dict(in_h=hp, in_w=wp, kernel_h=r, kernel_w=s, out_h=oh, out_w=ow,
                      f_words=-(-nf // cols), pad=unit_pad, dil=dh)
            if algo in ("winograd", "fft", "sparse_fft"):
                fe = {k: 0 for k in fe}
            if algo != "kn2row":
                sa = {k: 0 for k in sa}
            regs.update({f"fe_{k}": v for k, v in fe.items()})
            regs.update({f"sa_{k}": v for k, v in sa.items()})
            regs["sa_stride_log2"] = (sh.bit_length() - 1) if algo == "kn2row" else 0
            if params.fft_size:         # the FFT settings exist only with an FFT unit
                ff = dict(tiles_w=0, step=0, kernel=0, out_h=0, out_w=0, shift=fft_shift,
                          keep=0)
                if fn:
                    step = fn - r + 1
                    # a later filter chunk finds the input spectra the first one made
                    ff.update(tiles_w=-(-wp // step), step=step, kernel=r, out_h=oh, out_w=ow,
                              keep=int(f0 > 0))
                regs.update({f"ff_{k}": v for k, v in ff.items()})
                if params.sparse_lanes:
                    regs["ff_sparse"] = int(sparse)
            out_words = int(lo.out_words)
            regs["out_words"] = out_words
            if params.requant == "f32":
                regs["rq_chunks"] = -(-nf // cols)
            invs.append(Invocation(regs, (im, gk, nf), igemms, gi, (f0, f1), out_words,
                                   b_matrices(igemms)))
    return ConvPlan(algo, "patches" if host_patches else variant, flow.value, (c, h, w),
                    (n_out, oh, ow), (r, s), sh, dh, pads, unit_pad, groups, wm, tuple(invs),
                    fn, fft_shift, data_bits, kernel_bits, precision, rows, cols, wlanes,
                    host_patches, tuple(sorted(lim.items())) if lim is not None else (),
                    requant=params.requant, density=density,
                    sparse_lanes=params.sparse_lanes if sparse else 0,
                    sparse_banks=params.sparse_banks if sparse else 0)


def _shapes_of(algorithm: str) -> str:
    """The lowering whose shapes an algorithm's plan has: its own, but sparse_fft's are the
    FFT path's (only phase 2 differs)."""
    return "fft" if algorithm == "sparse_fft" else algorithm


def _limits_dict(limits, rows: int, cols: int):
    """``limits`` (``DatapathLimits`` or any object with its attributes) as a dict with the
    engine's capacities on a rows×cols array filled in, or ``None``."""
    if limits is None:
        return None
    lim = DatapathLimits(**{f.name: int(getattr(limits, f.name, f.default))
                            for f in dataclasses.fields(DatapathLimits)})
    return lim.on_array(rows, cols)


def _misfit(algo, g, k, lim) -> str:
    """What the smallest invocation of a layer that fits nowhere needs, beside the limits."""
    parts = [f"K = {k}, max_k = {lim['max_k']}"]
    wp = g.w_in + g.pad_l + g.pad_r
    if algo in ("im2col", "kn2row"):
        rows_in = (g.kh - 1) * g.dilation + 1
        parts.append(f"{rows_in} input rows of {wp} pixels, feature_words = "
                     f"{lim['feature_words']}")
    parts.append(f"engine words a/c = {lim['engine_a_words']}/{lim['engine_c_words']}, "
                 f"weight_words = {lim['weight_words']}, "
                 f"out_words = {lim['out_words']}")
    return "; ".join(parts)


def _banded_plan(layer, algo, flow, params, limits, sp, requant, relu, precision, fft_shift,
                 host_patches, density) -> "ConvPlan":
    """The plan of a layer cut into ``sp.bands`` row bands and ``sp.c_chunks`` channel
    chunks: each (band, chunk) planned as a layer of its own (its input rows and channels,
    the padding inside the band), with the whole layer's requantisation and filter chunks;
    the invocations band after band, and in a band filter chunk after filter chunk, the
    channel chunks of each one after another (all but the first ``accumulate``, only the
    last ``final``)."""
    geometry = Geometry.of_layer(layer)
    c, _, w = layer.in_shape
    n_out, oh, ow = layer.out_shape
    band = int(sp.band)
    whole = int(sp.bands) == 1
    c_step, c_chunks = int(sp.c_step), int(sp.c_chunks)
    chunks = [(i * c_step, c if i == c_chunks - 1 else (i + 1) * c_step)
              for i in range(c_chunks)]
    bands, invs = [], []
    for j in range(int(sp.bands)):
        y0, y1 = j * band, min(oh, (j + 1) * band)
        if whole:       # channel chunks of the whole layer: its own rows and padding
            i0, i1, top, bottom = 0, layer.in_shape[1], layer.padding[0], layer.padding[2]
        else:
            i0, i1, top, bottom = (int(v) for v in band_rows(geometry, y0, y1 - y0))
        subs = []
        for c0, c1 in chunks:
            name = layer.name + ("" if whole else f"[rows {y0}:{y1}]") + \
                ("" if c_chunks == 1 else f"[channels {c0}:{c1}]")
            sub_layer = dataclasses.replace(
                layer, name=name, in_shape=(c1 - c0, i1 - i0, w),
                out_shape=(n_out, y1 - y0, ow),
                padding=(top, layer.padding[1], bottom, layer.padding[3]))
            sub = plan_conv(sub_layer, algo, flow, params, limits, requant=requant, relu=relu,
                            precision=precision, fft_shift=fft_shift,
                            density=density if algo == "sparse_fft" else None,
                            _n_step=int(sp.n_step))
            subs.append((len(bands), sub))
            bands.append(Band((y0, y1), (i0, i1), sub, (c0, c1)))
        for at in range(len(subs[0][1].invocations)):
            for i, (index, sub) in enumerate(subs):
                inv = sub.invocations[at]
                regs = {**inv.registers, "accumulate": int(i > 0)}
                if algo in ("fft", "sparse_fft"):   # a band's later filter chunks keep its
                    # spectra, unless its channel chunks take turns in the spectral buffer
                    regs["ff_keep"] = int(at > 0 and c_chunks == 1)
                invs.append(dataclasses.replace(inv, registers=regs, band=index,
                                                final=i == c_chunks - 1))
    first = bands[0].plan
    (r, s), (sh, _), (dh, _) = _pair(layer.kernel), _pair(layer.stride), _pair(layer.dilation)
    return ConvPlan(algo, "patches" if host_patches else first.variant, flow.value,
                    tuple(layer.in_shape), tuple(layer.out_shape), (r, s), sh, dh,
                    tuple(layer.padding), 0, layer.groups, first.winograd_m, tuple(invs),
                    first.fft_n, first.fft_shift, first.data_bits, first.kernel_bits,
                    precision, first.rows, first.cols, first.winograd_lanes, host_patches,
                    first.limits, tuple(bands), first.requant, first.density,
                    first.sparse_lanes, first.sparse_banks)


def required_limits(plans) -> dict:
    """Smallest buffer sizes (``DatapathLimits`` keyword arguments) that hold every plan."""
    need = DatapathLimits.smallest().as_dict()
    flat = []
    for plan in plans:
        flat += [b.plan for b in plan.bands] if plan.bands else [plan]
    for plan in flat:
        hp, wp = plan.padded_hw
        for inv in plan.invocations:
            gm, gk, gn = inv.gemm
            a_words, _, c_words = engine_words(gm, gk, gn, plan.rows, plan.cols,
                                               Dataflow(plan.dataflow).code)
            need["engine_a_words"] = max(need["engine_a_words"], int(a_words))
            need["engine_c_words"] = max(need["engine_c_words"], int(c_words))
            need["max_m"] = max(need["max_m"], gm)
            need["max_k"] = max(need["max_k"], gk)
            need["max_n"] = max(need["max_n"], gn)
            need["max_gemms"] = max(need["max_gemms"], inv.gemms)
            need["weight_words"] = max(need["weight_words"], inv.weight_words)
            need["out_words"] = max(need["out_words"], inv.out_words)
            if plan.algorithm == "winograd":
                need["tile_words"] = max(need["tile_words"], gm * gk // plan.rows)
            elif plan.spectral:
                n2 = plan.fft_n ** 2
                need["spectral_words"] = max(need["spectral_words"], gm * gk * n2,
                                             gm * gn * n2)
                if plan.algorithm == "sparse_fft":
                    from dse.lowering.sparse_fft import memory_words

                    steps, nnz = memory_words(gk, gn, plan.fft_n, plan.sparse_lanes,
                                              plan.sparse_banks, plan.density)
                    need["sparse_steps"] = max(need["sparse_steps"], steps)
                    need["sparse_nnz"] = max(need["sparse_nnz"], nnz)
            else:
                need["feature_words"] = max(need["feature_words"],
                                            hp * wp * inv.registers["fe_c_words"])
    return need
