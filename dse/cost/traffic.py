"""Buffer tiling and DRAM traffic of each (layer, choice, hardware point).

The loop nest (one layer, everything in bytes):

* Activations live in DRAM as the raw C×H×W map at ``precision`` bits (no im2col matrix, no
  transformed inputs: the front units transform on chip).  A *spatial tile* is a block of
  ``hb`` output rows × ``wb`` output columns; loading it fetches its receptive field,
  ``(hb-1)·s + dil·(kh-1) + 1`` input rows by the same in columns, clipped to the map
  (padding is synthesised, never fetched), for all Cin channels.  Neighbouring tiles
  re-fetch their overlapping halo.
* Weights live in DRAM in the form the array consumes (spatial, Winograd-transformed, or FFT
  bins; :func:`dse.cost.choices.weight_word_bytes`).  A *weight block* is ``nb`` output
  channels with all their weights.
* Outputs are written once, requantised to ``precision`` bits; partial sums never leave the
  chip (the output buffer holds ``hb·wb·nb`` accumulators, more for transformed domains).

Tilings (:data:`dse.cost.choices.TILINGS`)::

    weights resident:                      activations resident:
    for each weight block:   load once     for each spatial tile:   load once
      for each spatial tile: load            for each weight block: load
        compute; store outputs                 compute; store outputs

so with ``T`` spatial tiles and ``B`` weight blocks, weights-resident fetches the
activations ``B`` times (once if ``T`` = 1: the only tile stays resident) and the weights
once; activations-resident fetches the activations once and the weights ``T`` times (once if
``B`` = 1).

Tile sizes (greedy, per hardware point): the largest spatial tile whose receptive field fits
the activation buffer and whose outputs for one channel fit the output buffer -- full-width
row blocks (a multiple of the algorithm's tile height) when one fits, else one tile row split
into column blocks -- then the largest ``nb`` that fits both the weight buffer and the output
buffer.  When not even one algorithm tile and one output channel fit, the entry is
infeasible (``feasible`` false; the model reports infinite cycles).  Buffer capacities are
the OverlayParams KiB figures, which are one half of each double buffer.
"""

from __future__ import annotations

import numpy as np

from rtl.params import Algorithm

from dse.cost.choices import weight_word_bytes

__all__ = ["Traffic", "tile_traffic", "fetched_extent"]

_ALGOS = list(Algorithm)


def _cdiv(a, b):
    return -(-a // b)


def fetched_extent(n_out, blk, stride, k_eff, pad, n_in, xp=np):
    """Input rows (or columns) fetched in total when ``n_out`` outputs are cut into blocks.

    Block j covers outputs [j·blk, min((j+1)·blk, n_out)) and fetches inputs
    [j·blk·s - pad, (last output)·s - pad + k_eff) clipped to [0, n_in).  The sum over blocks
    is computed in closed form (sums of clipped arithmetic progressions), exact whenever no
    block lies entirely inside the padding (pad < k_eff).
    """
    n = _cdiv(n_out, blk)
    a = blk * stride
    b = k_eff - stride - pad
    # upper ends of blocks 0..n-2 are a·u + b for u = 1..n-1, clipped at n_in
    j = xp.minimum(xp.maximum((n_in - b) // a, 0.0), n - 1)
    sum_hi = (a * j * (j + 1) / 2 + b * j + (n - 1 - j) * n_in
              + xp.minimum(n_in, (n_out - 1) * stride - pad + k_eff))
    # lower ends a·j - pad for j = 0..n-1, clipped at 0
    j0 = xp.minimum(_cdiv(pad, a), n)
    sum_lo = a * (n * (n - 1) / 2 - j0 * (j0 - 1) / 2) - pad * (n - j0)
    return sum_hi - sum_lo


class Traffic:
    """Tiling and DRAM traffic, arrays broadcastable to ``(L, C, P)``.

    Members
    -------
    hb, wb, nb: spatial tile (output rows × columns) and weight block (output channels).
    n_tiles, n_blocks: spatial tiles and weight blocks per layer.
    act_bytes, weight_bytes, out_bytes: DRAM bytes moved for each operand.
    dram_bytes: their sum.
    buffer_bytes: bytes of the three buffers the tiling uses (one half of each double buffer).
    first_load_bytes, last_store_bytes: the transfers no compute can hide (before the first
        tile computes, after the last one finishes).
    feasible: a tile and a weight block fit the buffers.
    """

    def __init__(self, **kw):
        self.__dict__.update(kw)


#: Layer columns as :class:`dse.lowering.Geometry` fields.
_GEOMETRY_FIELD = {"stride_h": "stride", "stride_w": "stride", "dil_h": "dilation",
                   "dil_w": "dilation"}


class _AsRun:
    """The layer columns of the convolution each choice runs: a choice from host patches
    (variant ``patches``) runs the 1×1 convolution of :func:`dse.lowering.im2col.patched`,
    whose input (the patches) is what it loads."""

    def __init__(self, layers, choices, xp):
        from dse.lowering import Geometry
        from dse.lowering.im2col import patched

        self._layers, self._xp = layers, xp
        self._on = choices.column("patches", xp) == 1
        self._g = patched(Geometry.of_table(layers, xp), choices.column("patches", xp), xp)

    def column(self, name, xp=None):
        base = self._layers.column(name, self._xp)
        field = _GEOMETRY_FIELD.get(name, name)
        if not hasattr(self._g, field):
            return base
        return self._xp.where(self._on, getattr(self._g, field), base)


def _weight_bytes_per_channel(layers, choices, precision, xp):
    """DRAM bytes of one output channel's weights, ``(L, C, 1)``."""
    col = lambda name: layers.column(name, xp)  # noqa: E731
    c_in, g, kh, kw = col("c_in"), col("groups"), col("kh"), col("kw")
    ab = precision / 8.0
    wbytes = np.array([weight_word_bytes(c.variant, precision) for c in choices.choices],
                      dtype=np.float64).reshape(1, -1, 1)
    wbytes = xp.asarray(wbytes)
    algo = choices.column("algo", xp)
    is_wino = algo == _ALGOS.index(Algorithm.WINOGRAD)
    is_fft = algo == _ALGOS.index(Algorithm.FFT)
    m = choices.column("wino_m", xp)
    n = choices.column("fft_n", xp)
    spatial = (c_in / g) * kh * kw * ab
    wino = _cdiv(kh, 3.0) * _cdiv(kw, 3.0) * (m + 2) ** 2 * c_in * wbytes
    fft = n * (n // 2 + 1) * 2 * c_in * wbytes
    return xp.where(is_wino, wino, xp.where(is_fft, fft, spatial))


def _tile_units(layers, choices, xp):
    """Algorithm tile height and width in output pixels, and the output-buffer expansion."""
    kh, kw = layers.column("kh", xp), layers.column("kw", xp)
    algo = choices.column("algo", xp)
    is_wino = algo == _ALGOS.index(Algorithm.WINOGRAD)
    is_fft = algo == _ALGOS.index(Algorithm.FFT)
    m = xp.maximum(choices.column("wino_m", xp), 1.0)
    n = choices.column("fft_n", xp)
    step_h = xp.maximum(n - kh + 1, 1.0)
    step_w = xp.maximum(n - kw + 1, 1.0)
    th = xp.where(is_wino, m, xp.where(is_fft, step_h, 1.0))
    tw = xp.where(is_wino, m, xp.where(is_fft, step_w, 1.0))
    # accumulators held per output pixel: (m+2)²/m² transformed points for Winograd; for FFT
    # the 2·N(N/2+1) real parts of a tile's bins per (N-kh+1)(N-kw+1) outputs
    expand = xp.where(is_wino, (m + 2) ** 2 / m ** 2,
                      xp.where(is_fft, 2 * n * (n // 2 + 1) / (step_h * step_w), 1.0))
    return th, tw, expand


def tile_traffic(layers, choices, hardware, precision=8, xp=np) -> Traffic:
    """Tile sizes and DRAM bytes for every (layer, choice, point) (module docstring)."""
    if precision not in (8, 16):
        raise ValueError(f"precision must be 8 or 16, not {precision!r}")
    layers = _AsRun(layers, choices, xp)
    col = lambda name: layers.column(name, xp)  # noqa: E731
    ab = precision / 8.0
    c_in, c_out = col("c_in"), col("c_out")
    h_in, w_in, ho, wo = col("h_in"), col("w_in"), col("h_out"), col("w_out")
    sh, sw = col("stride_h"), col("stride_w")
    kh_eff = col("dil_h") * (col("kh") - 1) + 1
    kw_eff = col("dil_w") * (col("kw") - 1) + 1
    th, tw, expand = _tile_units(layers, choices, xp)
    w_ch = _weight_bytes_per_channel(layers, choices, precision, xp)
    ba = hardware.column("act_buffer_kib", xp) * 1024.0
    bw = hardware.column("weight_buffer_kib", xp) * 1024.0
    bo = hardware.column("out_buffer_kib", xp) * 1024.0
    acc = _cdiv(hardware.column("acc_width", xp), 8.0)
    big = 1e18

    # full-width row blocks: rows of the receptive field that fit the activation buffer
    row_bytes = xp.minimum(w_in, (wo - 1) * sw + kw_eff) * c_in * ab
    a_rows = ba // row_bytes
    hb_act = xp.where(a_rows >= h_in, big, (a_rows - kh_eff) // sh + 1)
    hb_out = bo // (wo * expand * acc)
    hb_cap = xp.minimum(hb_act, hb_out)
    hb_full = xp.where(hb_cap >= ho, ho, (hb_cap // th) * th)
    full_ok = hb_full >= xp.minimum(th, ho)
    # otherwise one algorithm tile row, split into column blocks
    hb_one = xp.minimum(th, ho)
    col_bytes = xp.minimum(h_in, (hb_one - 1) * sh + kh_eff) * c_in * ab
    a_cols = ba // col_bytes
    wb_act = xp.where(a_cols >= w_in, big, (a_cols - kw_eff) // sw + 1)
    wb_cap = xp.minimum(wb_act, bo // (hb_one * expand * acc))
    wb_col = xp.where(wb_cap >= wo, wo, (wb_cap // tw) * tw)
    col_ok = wb_col >= xp.minimum(tw, wo)
    hb = xp.where(full_ok, hb_full, hb_one)
    wb = xp.where(full_ok, wo, xp.maximum(wb_col, 1.0))
    # weight block: output channels whose weights and accumulators fit
    nb = xp.minimum(xp.minimum(bw // w_ch, bo // (hb * wb * expand * acc)), c_out)
    feasible = xp.logical_and(xp.logical_or(full_ok, col_ok), nb >= 1)
    nb = xp.maximum(nb, 1.0)

    n_tiles = _cdiv(ho, hb) * _cdiv(wo, wb)
    n_blocks = _cdiv(c_out, nb)
    rows = fetched_extent(ho, hb, sh, kh_eff, col("pad_t"), h_in, xp)
    cols = fetched_extent(wo, wb, sw, kw_eff, col("pad_l"), w_in, xp)
    act_pass = rows * cols * c_in * ab
    w_total = c_out * w_ch
    out_total = c_out * ho * wo * ab
    weights_resident = choices.column("tiling", xp) == 0
    act = xp.where(weights_resident, act_pass * xp.where(n_tiles > 1, n_blocks, 1.0), act_pass)
    wgt = xp.where(weights_resident, w_total, w_total * xp.where(n_blocks > 1, n_tiles, 1.0))
    tile_act = (xp.minimum(h_in, (hb - 1) * sh + kh_eff)
                * xp.minimum(w_in, (wb - 1) * sw + kw_eff) * c_in * ab)
    tile_acc = hb * wb * nb * expand * acc
    return Traffic(hb=hb, wb=wb, nb=nb, n_tiles=n_tiles, n_blocks=n_blocks,
                   act_bytes=act, weight_bytes=wgt, out_bytes=out_total,
                   dram_bytes=act + wgt + out_total,
                   buffer_bytes=tile_act + nb * w_ch + tile_acc,
                   first_load_bytes=xp.minimum(tile_act, act_pass) + nb * w_ch,
                   last_store_bytes=xp.minimum(hb * wb * nb * ab, out_total),
                   feasible=feasible)
