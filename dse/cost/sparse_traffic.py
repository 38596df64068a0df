"""Off-chip traffic of a spectral-sparse (``sparse_fft``) convolution layer under the two reuse
modes -- kernels resident or activations resident -- and the per-layer flexible choice.

Vectorised over ``L`` layers × ``P`` hardware points (two buffer sizes per point); every
result is an ``(L, P)`` float64 array of bytes (bits / 8: entries are packed, not byte
aligned).  Numpy only, no Amaranth.

What lives in DRAM
------------------
Per layer: ``C`` input channels of an ``H×W`` map, ``F`` filters, a square ``k×k`` kernel,
padding ``pt, pb`` (rows) and ``pl, pr`` (columns), stride 1 (the spectral path's only
stride), FFT size ``N``, and ``z`` kept non-zeros per (filter, channel) kernel
(:func:`dse.compiler.sparse_schedule.keep_count`; ``bins = N·(N/2 + 1)`` half-spectrum bins).

* **Kernels**, compressed: each kept non-zero is (bin index, complex value), packed at
  ``e = index_bits + 2·value_bits`` bits (default ``index_bits = ⌈log2 bins⌉`` = 6 at N = 8,
  9 at N = 16; ``value_bits = 16`` for each of the real and imaginary parts).  One kernel is
  ``κ = z·e`` bits, the layer ``K = F·C·κ``.
* **Activations** as the raw spatial map at ``act_bits``; the FFT is on chip.  Overlap-add
  cuts the padded map (``Hp = H + pt + pb`` rows) into disjoint ``s×s`` input tiles,
  ``s = N − k + 1``, so ``th = ⌈Hp/s⌉`` tile rows, ``tw = ⌈Wp/s⌉`` tile columns,
  ``T = th·tw`` tiles; padding is synthesised, never fetched, and the input has no halo: one
  pass over the activations is ``A = C·H·W·act_bits``.
* **Outputs**, written once, requantised to ``out_bits``: ``O = F·Ho·Wo·out_bits`` with
  ``Ho = Hp − k + 1``.

On-chip buffers (inputs, one number each per hardware point, in bytes -- the usable half of a
double buffer): the **kernel buffer** ``Bk`` and the **activation buffer** ``Ba``.  The
spectral accumulators, the lanes' kernel banks and the banked input spectrum belong to the
datapath and are not charged to either buffer.

Blocking
--------
* *Activation block*: ``r×c`` tiles (``1 ≤ r ≤ th``, ``1 ≤ c ≤ tw``) with all ``C``
  channels, held at full tile size: fits when ``r·c·C·s²·act_bits ≤ 8·Ba``.  There are
  ``nA(r, c) = ⌈th/r⌉·⌈tw/c⌉`` blocks.  If not even one tile fits, *channel blocking*: a
  block is one tile × ``ca = ⌊8·Ba / (s²·act_bits)⌋`` channels (infeasible when ``ca = 0``),
  a tile's channel blocks back to back, geometry (1, 1).
* *Kernel block*: ``fk = min(F, ⌊8·Bk / (C·κ)⌋)`` filters with all their channels,
  ``nK = ⌈F/fk⌉`` blocks.  If not even one filter fits, channel blocking: one filter × ``ck =
  ⌊8·Bk / κ⌋`` channels (infeasible when ``ck = 0``), ``nCk = ⌈C/ck⌉`` blocks per filter.
* *Channel partial sums*: the datapath keeps the spectral accumulators (``σ = 2·bins·psum_bits``
  per (tile, filter)) of the tile it is working on, for every filter that tile's consecutive
  work covers; they go to DRAM only when the work moves to another tile and comes back later.
  That happens under kernel reuse with channel-blocked kernels and more than one tile (for
  each filter, every channel block sweeps all tiles): ``2·(nCk − 1)·F·T·σ`` (written after
  every visit but the last, read before every visit but the first).  A channel-blocked tile
  under either mode is finished before the next tile starts, so it spills nothing (at the
  price of accumulators for all ``F`` filters of one tile, which this model does not charge).
* *Overlap-add halo*: tile (i, j) yields an ``N×N`` full-convolution block at
  ``(i·s, j·s)``; the output keeps rows ``[k−1, k−1+Ho)``.  Sums over tiles of one
  activation block stay on chip; an output pixel touched by ``b`` blocks has its partial sum
  written ``b − 1`` times and read back ``b − 1`` times at ``psum_bits``.  Block seams lie at
  tile rows ``j = r, 2r, … < th``; seam ``j`` is straddled by the output rows
  ``[j·s, j·s + k − 1) ∩ [k − 1, k − 1 + Ho)``, ``hs(j)`` of them, and ``Hs = Σ hs(j)``
  (likewise ``Vs`` over columns).  A pixel on ``h`` row seams and ``v`` column seams is in
  ``(h + 1)(v + 1)`` blocks, so the halo is
  ``halo(r, c) = 2·F·psum_bits·(Hs·Wo + Vs·Ho + Hs·Vs)``; zero when the whole map is one
  block.

The two modes (``[·]`` is 1 when the condition holds, else 0)
-------------------------------------------------------------
Kernel reuse (kernels resident, activations streamed)::

    for each kernel block: load once
      for each activation block: load (skipped when the whole map is one resident block)
        MAC, IFFT, overlap-add, store

    KR(r, c) = K + A·act_passes + 2·(nCk − 1)·F·T·σ·[kernel channel-blocked]·[T > 1]
               + halo(r, c) + O
    act_passes = 1 if (r, c) = (th, tw) else (nK, or F when kernel channel-blocked)

Activation reuse (tiles resident, kernels streamed)::

    for each activation block: load once
      for each kernel block: load (skipped when all kernels fit Bk: fetched once)
        MAC, IFFT, overlap-add, store

    AR(r, c) = A + K·kernel_passes + halo(r, c) + O
    kernel_passes = 1 if K ≤ 8·Bk else (nA(r, c), or T when activation channel-blocked)

Each mode takes the feasible (r, c) -- or the channel-blocked tile -- that minimises its
bytes; the **flexible** choice is per layer the smaller mode.  Every candidate that fits a
buffer fits a larger one, so a larger buffer never increases a mode's bytes or the flexible
bytes, and the flexible bytes never exceed either fixed mode's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["ACT_REUSE", "KERNEL_REUSE", "SparseTraffic", "entry_bits", "sparse_traffic"]

#: ``SparseTraffic.mode`` values.
KERNEL_REUSE, ACT_REUSE = 0, 1


def _cdiv(a, b):
    return -(-a // b)


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < low or (high is not None and value > high):
        want = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {want}, not {value}")
    return int(value)


def _bins(n: int) -> int:
    _check_int("n", n, 4)
    if n not in (4, 8, 16, 32):
        raise ValueError(f"n must be 4, 8, 16 or 32, not {n}")
    return n * (n // 2 + 1)


def entry_bits(n: int, index_bits: int | None = None, value_bits: int = 16) -> int:
    """Bits of one compressed kernel non-zero: bin index plus two ``value_bits`` parts;
    ``index_bits`` ``None`` is ⌈log2 bins⌉, the fewest that number every bin."""
    bins = _bins(n)
    if index_bits is None:
        index_bits = max(1, math.ceil(math.log2(bins)))
    index_bits = _check_int("index_bits", index_bits, 1, 32)
    if 1 << index_bits < bins:
        raise ValueError(f"index_bits must number all {bins} bins (at least "
                         f"{math.ceil(math.log2(bins))}), not {index_bits}")
    value_bits = _check_int("value_bits", value_bits, 1, 64)
    return index_bits + 2 * value_bits


def _buffer(name: str, value) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                                 or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must be numbers of bytes, not {value!r}")
    arr = np.atleast_1d(arr.astype(np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be one row of hardware points, not shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be positive finite byte counts, not {arr!r}")
    return arr


@dataclass(frozen=True, eq=False)
class SparseTraffic:
    """Off-chip traffic of ``L`` sparse spectral layers on ``P`` hardware points.

    Byte arrays are float64 of shape ``(L, P)`` (per-layer-only quantities broadcast to it);
    ``inf`` where a mode is infeasible: both modes need one kernel (``κ``) to fit the kernel
    buffer and one channel of one tile (``s²·act_bits``) to fit the activation buffer.

    Attributes
    ----------
    tiles:
        ``T``, overlap-add tiles per layer.
    kernel_bytes, act_bytes, out_bytes:
        ``K`` (compressed kernels), ``A`` (one pass over the activations), ``O`` (outputs).
    kr_bytes, ar_bytes:
        Total bytes under kernel reuse and activation reuse, best block geometry each.
    kr_kernel_bytes, kr_act_bytes, kr_partial_bytes, kr_halo_bytes:
        Kernel-reuse bytes by operand (``partial``: channel partial sums; ``halo``:
        overlap-add partial sums between activation blocks); plus ``out_bytes`` they sum to
        ``kr_bytes``.
    ar_kernel_bytes, ar_act_bytes, ar_partial_bytes, ar_halo_bytes:
        The same for activation reuse.
    kr_block, ar_block:
        int64 ``(L, P, 2)``: the activation block (tile rows, tile columns) each mode chose;
        (1, 1) also for a channel-blocked tile; (0, 0) where infeasible.
    kr_chan_blocked, ar_chan_blocked:
        bool ``(L, P)``: the kernels (KR) or the tiles (AR) are split by channel; for KR
        the kernel blocks, for AR the activation blocks.
    flexible_bytes, mode:
        ``min(kr_bytes, ar_bytes)`` and which mode gives it (:data:`KERNEL_REUSE` or
        :data:`ACT_REUSE`; kernel reuse on a tie).
    feasible:
        bool ``(L, P)``: the modes fit (both or neither: they need the same minimum).
    """

    tiles: np.ndarray
    kernel_bytes: np.ndarray
    act_bytes: np.ndarray
    out_bytes: np.ndarray
    kr_bytes: np.ndarray
    kr_kernel_bytes: np.ndarray
    kr_act_bytes: np.ndarray
    kr_partial_bytes: np.ndarray
    kr_halo_bytes: np.ndarray
    kr_block: np.ndarray
    kr_chan_blocked: np.ndarray
    ar_bytes: np.ndarray
    ar_kernel_bytes: np.ndarray
    ar_act_bytes: np.ndarray
    ar_partial_bytes: np.ndarray
    ar_halo_bytes: np.ndarray
    ar_block: np.ndarray
    ar_chan_blocked: np.ndarray
    flexible_bytes: np.ndarray
    mode: np.ndarray
    feasible: np.ndarray


def _layer_columns(layers) -> dict:
    """Integer columns of a :class:`dse.cost.workload.LayerTable`, checked for the spectral
    path (stride 1, no dilation, one group, square kernel)."""
    cols = {}
    for name in ("c_in", "c_out", "h_in", "w_in", "kh", "kw", "stride_h", "stride_w",
                 "dil_h", "dil_w", "pad_t", "pad_b", "pad_l", "pad_r", "groups"):
        if not hasattr(layers, name):
            raise TypeError(f"layers must be a LayerTable, not {layers!r}")
        cols[name] = np.asarray(getattr(layers, name), dtype=np.int64)
    if cols["c_in"].ndim != 1 or cols["c_in"].size == 0:
        raise ValueError(f"layers must hold at least one layer, not {cols['c_in'].size}")
    names = list(getattr(layers, "names", range(cols["c_in"].size)))
    for field, want, rule in (("stride_h", 1, "1"), ("stride_w", 1, "1"), ("dil_h", 1, "1"),
                              ("dil_w", 1, "1"), ("groups", 1, "1")):
        bad = np.flatnonzero(cols[field] != want)
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{field} must be {rule} on the spectral path, not "
                             f"{cols[field][i]} (layer {names[i]})")
    bad = np.flatnonzero(cols["kh"] != cols["kw"])
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"kernel must be square on the spectral path, not "
                         f"{cols['kh'][i]}×{cols['kw'][i]} (layer {names[i]})")
    return cols


def _seams(tiles, blk, s, k, n_out, span):
    """Σ over block seams j = blk, 2·blk, … < tiles of the output rows straddling seam j,
    ``|[j·s, j·s + k − 1) ∩ [k − 1, k − 1 + n_out)|``; shapes (L, 1) against blk (1, R)."""
    j = np.arange(1, span + 1).reshape(1, 1, -1)                     # (1, 1, J)
    lo = np.maximum(j * s[..., None], (k - 1)[..., None])
    hi = np.minimum(j * s[..., None] + k[..., None] - 1, (k - 1 + n_out)[..., None])
    clip = np.maximum(hi - lo, 0)                                    # (L, 1, J)
    seam = (j % blk[..., None] == 0) & (j < tiles[..., None])       # (L, R, J)
    return (clip * seam).sum(axis=-1)                                # (L, R)


def sparse_traffic(layers, n: int, nnz, kernel_buffer_bytes, act_buffer_bytes, *,
                   index_bits: int | None = None, value_bits: int = 16, act_bits: int = 8,
                   out_bits: int = 8, psum_bits: int = 32) -> SparseTraffic:
    """Off-chip bytes of every (layer, hardware point) under kernel reuse, activation reuse
    and the flexible choice (formulas in the module docstring).

    Parameters
    ----------
    layers:
        A :class:`dse.cost.workload.LayerTable` of stride-1, undilated, ungrouped convolutions
        with square kernels smaller than ``n``.
    n:
        FFT size N (4, 8, 16 or 32).
    nnz:
        Kept non-zeros per (filter, channel) kernel: one integer, or one per layer, each
        between 1 and N·(N/2 + 1).
    kernel_buffer_bytes, act_buffer_bytes:
        ``(P,)`` usable bytes of the kernel and the activation buffer of each hardware point.
    index_bits, value_bits:
        Compressed non-zero: bin index bits (``None``: ⌈log2 bins⌉) and bits of each of the
        real and imaginary parts.
    act_bits, out_bits, psum_bits:
        Activation and output words in DRAM (8 or 16), and partial sums (accumulator parts)
        spilled for channel blocking or the overlap-add halo.
    """
    bins = _bins(n)
    e = entry_bits(n, index_bits, value_bits)
    for name, value in (("act_bits", act_bits), ("out_bits", out_bits)):
        if isinstance(value, bool) or value not in (8, 16):
            raise ValueError(f"{name} must be 8 or 16, not {value!r}")
    psum_bits = _check_int("psum_bits", psum_bits, 1, 64)
    col = _layer_columns(layers)
    L = col["c_in"].size
    bad = np.flatnonzero(col["kh"] >= n)
    if bad.size:
        raise ValueError(f"kernel must be smaller than n = {n}, not {col['kh'][bad[0]]} "
                         f"(layer {bad[0]})")
    z = np.asarray(nnz)
    if z.dtype == bool or not np.issubdtype(z.dtype, np.integer):
        raise TypeError(f"nnz must be integers, not {nnz!r}")
    z = np.broadcast_to(z, (L,)) if z.ndim == 0 else z
    if z.shape != (L,):
        raise ValueError(f"nnz must be one integer or {L}, not shape {z.shape}")
    if np.any(z < 1) or np.any(z > bins):
        raise ValueError(f"nnz must be between 1 and {bins}, not {z!r}")
    bk_bits = 8.0 * _buffer("kernel_buffer_bytes", kernel_buffer_bytes)[None, :]   # (1, P)
    ba_bits = 8.0 * _buffer("act_buffer_bytes", act_buffer_bytes)[None, :]
    if bk_bits.shape != ba_bits.shape:
        raise ValueError(f"kernel_buffer_bytes and act_buffer_bytes must have one entry per "
                         f"hardware point each, not {bk_bits.shape[1]} and {ba_bits.shape[1]}")
    P = bk_bits.shape[1]

    c = lambda name: col[name].astype(np.float64)[:, None]
    C, F, H, W, k = c("c_in"), c("c_out"), c("h_in"), c("w_in"), c("kh")
    hp, wp = H + c("pad_t") + c("pad_b"), W + c("pad_l") + c("pad_r")
    s = n - k + 1
    th, tw = _cdiv(hp, s), _cdiv(wp, s)
    T = th * tw
    ho, wo = hp - k + 1, wp - k + 1
    kappa = z.astype(np.float64)[:, None] * e                         # bits per kernel
    K = F * C * kappa
    A = C * H * W * act_bits
    O = F * ho * wo * out_bits
    sigma = 2.0 * bins * psum_bits                                   # accumulators, (tile, filter)
    tile_ch = s * s * act_bits                                       # one tile, one channel

    # -- kernel blocks -------------------------------------------------------------------
    fk = np.minimum(F, np.floor(bk_bits / (C * kappa)))              # (L, P)
    ck = np.minimum(C, np.floor(bk_bits / kappa))
    k_ok = ck >= 1
    k_chan = fk < 1
    n_kblk = np.where(k_chan, F, _cdiv(F, np.maximum(fk, 1)))        # activation passes
    n_ck = _cdiv(C, np.maximum(ck, 1))
    k_partial = np.where(k_chan & (T > 1), 2 * (n_ck - 1) * F * T * sigma, 0.0)
    k_resident = K <= bk_bits

    # -- activation blocks: r×c tiles, all channels ----------------------------------------
    R, Cc = int(th.max()), int(tw.max())
    r = np.arange(1, R + 1, dtype=np.float64)[None, :]               # (1, R)
    cc = np.arange(1, Cc + 1, dtype=np.float64)[None, :]
    hs = _seams(th, r, s, k, ho, R)                                  # (L, R)
    vs = _seams(tw, cc, s, k, wo, Cc)                                # (L, Cc)
    hs4, vs4 = hs[:, None, :, None], vs[:, None, None, :]            # (L, 1, R, Cc)
    r4, c4 = r[:, None, :, None], cc[:, None, None, :]
    th4, tw4, ho4, wo4 = (x[:, :, None, None] for x in (th, tw, ho, wo))
    C4, F4 = C[:, :, None, None], F[:, :, None, None]
    geom = (r4 <= th4) & (c4 <= tw4)
    fits = geom & (r4 * c4 * C4 * tile_ch[:, :, None, None] <= ba_bits[:, :, None, None])          # (L, P, R, Cc)
    halo = 2.0 * F4 * psum_bits * (hs4 * wo4 + vs4 * ho4 + hs4 * vs4)           # (L, 1, R, Cc)
    n_ablk = _cdiv(th4, r4) * _cdiv(tw4, c4)
    whole = (r4 == th4) & (c4 == tw4)

    kr_act4 = A[:, :, None, None] * np.where(whole, 1.0, n_kblk[:, :, None, None])
    kr4 = np.where(fits, kr_act4 + halo, np.inf)                     # variable part of KR
    ar_k4 = K[:, :, None, None] * np.where(k_resident[:, :, None, None], 1.0, n_ablk)
    ar4 = np.where(fits, ar_k4 + halo, np.inf)

    # -- the channel-blocked tile (geometry 1×1), only when one whole tile does not fit ------
    ca = np.minimum(C, np.floor(ba_bits / tile_ch))                  # (L, P)
    a_chan = (C * tile_ch > ba_bits) & (ca >= 1)
    halo11 = halo[:, :, 0, 0]                                        # (L, 1)
    kr_cb = np.where(a_chan, A * n_kblk + halo11, np.inf)
    ar_cb = np.where(a_chan, K * np.where(k_resident, 1.0, T) + halo11, np.inf)

    def best(var4, var_cb):
        flat = var4.reshape(L, P, -1)
        i = np.argmin(flat, axis=-1)
        v = np.take_along_axis(flat, i[..., None], -1)[..., 0]
        use_cb = var_cb < v
        v = np.where(use_cb, var_cb, v)
        rows = np.where(use_cb, 1, i // Cc + 1)
        cols = np.where(use_cb, 1, i % Cc + 1)
        ok = np.isfinite(v)
        block = np.stack([np.where(ok, rows, 0), np.where(ok, cols, 0)], -1).astype(np.int64)
        return v, use_cb & ok, block, i

    def pick(arr4, i, use_cb, cb_value):
        arr4 = np.broadcast_to(arr4, (L, P, R, Cc)).reshape(L, P, -1)
        return np.where(use_cb, cb_value, np.take_along_axis(arr4, i[..., None], -1)[..., 0])

    kr_var, kr_cb_used, kr_block, kr_i = best(kr4, kr_cb)
    ar_var, ar_cb_used, ar_block, ar_i = best(ar4, ar_cb)
    kr_ok = k_ok & np.isfinite(kr_var)
    ar_ok = k_ok & np.isfinite(ar_var)
    kr_block = np.where(kr_ok[..., None], kr_block, 0)
    ar_block = np.where(ar_ok[..., None], ar_block, 0)
    inf = np.full((L, P), np.inf)
    full = lambda x: np.broadcast_to(x, (L, P)).astype(np.float64)

    kr_halo = np.where(kr_ok, pick(halo, kr_i, kr_cb_used, full(halo11)), inf)
    kr_act = np.where(kr_ok, pick(kr_act4, kr_i, kr_cb_used, full(A * n_kblk)), inf)
    kr_kernel = np.where(kr_ok, full(K), inf)
    kr_partial = np.where(kr_ok, full(k_partial), inf)
    kr_total = kr_kernel + kr_act + kr_partial + kr_halo + full(O)

    ar_halo = np.where(ar_ok, pick(halo, ar_i, ar_cb_used, full(halo11)), inf)
    ar_kernel = np.where(ar_ok, pick(ar_k4, ar_i, ar_cb_used,
                                     full(K * np.where(k_resident, 1.0, T))), inf)
    ar_partial = np.where(ar_ok, 0.0, inf)
    ar_act = np.where(ar_ok, full(A), inf)
    ar_total = ar_kernel + ar_act + ar_partial + ar_halo + full(O)

    mode = np.where(ar_total < kr_total, ACT_REUSE, KERNEL_REUSE).astype(np.int64)
    flex = np.minimum(kr_total, ar_total)
    b = lambda x: x / 8.0
    return SparseTraffic(
        tiles=full(T), kernel_bytes=b(full(K)), act_bytes=b(full(A)), out_bytes=b(full(O)),
        kr_bytes=b(kr_total), kr_kernel_bytes=b(kr_kernel), kr_act_bytes=b(kr_act),
        kr_partial_bytes=b(kr_partial), kr_halo_bytes=b(kr_halo), kr_block=kr_block,
        kr_chan_blocked=k_chan & kr_ok,
        ar_bytes=b(ar_total), ar_kernel_bytes=b(ar_kernel), ar_act_bytes=b(ar_act),
        ar_partial_bytes=b(ar_partial), ar_halo_bytes=b(ar_halo), ar_block=ar_block,
        ar_chan_blocked=ar_cb_used & ar_ok,
        flexible_bytes=b(flex), mode=mode, feasible=np.isfinite(flex))
