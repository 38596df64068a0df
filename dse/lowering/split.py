"""How a layer is cut into datapath invocations that fit the overlay's buffers.

An invocation of the conv datapath holds its whole input in one on-chip buffer (the feature
buffer, the Winograd tile buffer or the FFT spectral buffers), its weights in the weight
buffer, its outputs in the output buffer, and each GEMM's operands in the engine's buffer
halves (``rtl.params.DatapathLimits``).  A layer too large for them runs as several
invocations, one after another:

* **filter chunks** -- ``n_step`` filters at a time (the weight buffer, the engine's B and C
  halves, the output buffer);
* **row bands** -- ``band`` output rows at a time, each with its own input image: the input
  rows under those outputs, the halo included, and the padding that falls inside the band
  (Winograd bands are whole tile rows, so a multiple of m).  The bands are as even as
  allowed: ``bands`` = ⌈Ho / largest fitting band⌉, then the smallest band with that count;
* **channel chunks** (a K split) -- ``c_step`` input channels at a time (whole feature words
  of ``rows`` channels; as even as the words allow), when even one output row of one filter
  with every channel does not fit (:func:`channel_words_max`): VGG-16's fc6, K = 25 088,
  on a wide array.  The chunks of one band and filter chunk run one after another, each
  adding its accumulations to the previous chunk's in the accumulator buffer (the datapath's
  ``accumulate``); the last one's requantised words are the outputs.  Im2col, kn2row and
  Winograd, and FFT (one activation a tile-buffer word: chunks of any channel count), on
  ungrouped layers.  An FFT chunk's spectral sums are requantised and inverse-transformed
  on their own and the chunks' overlap-added outputs summed in the accumulator buffer, so
  a chunked FFT layer rounds once per chunk (its golden model is the chunks' sum,
  ``sim.bench.conv_tb.fft_golden``); the kernel spectra keep the whole layer's fraction.

A layer that fits whole is one band.  FFT bands are whole rows of tiles: a band of t tile
rows has t·(N − k + 1) − (k − 1) output rows, and its own input image (halo included) is
tiled afresh, so the tiles under a band edge run in both bands (the overlap-add of one
band never reaches into the next); a band is as many tile rows as the input and output
spectrum buffers, the engine's halves (M = the band's tiles) and the overlap-add buffer
hold.  Every function takes
scalars (the compiler) or broadcasting arrays (the explorer), like the lowerings, and
:func:`split_cycles` sums the invocations' :func:`cycles <dse.lowering.im2col.cycles>` from
three band geometries (first, middle, last) and two chunk widths, which is exact whenever the
middle bands touch no padding (the compiler's sum over its own invocations is exact always).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from dse.cost import gemm as _gemm
from dse.cost import transforms as tf
from dse.lowering.geometry import Geometry, cdiv
from rtl.params import Algorithm, Dataflow

__all__ = ["Split", "split", "band_geometry", "band_rows", "split_cycles", "engine_words",
           "n_fits_b", "n_fits_c", "m_fits_c", "channel_words_max", "with_channels",
           "whole_where"]

_IS = Dataflow.IS.code
#: Stand-in for "no limit" in the closed forms.
_BIG = 1 << 40


@dataclass(frozen=True)
class Split:
    """How one layer (per hardware point) is cut into invocations.

    Members
    -------
    fits: whether the layer runs at all within the limits.
    n_step, n_chunks, n_last: filters per invocation, chunks per group, filters of the last.
    band, bands, band_last: output rows per band, bands, rows of the last band.
    c_step, c_chunks, c_last: input channels per channel chunk (a multiple of the array's
        rows), chunks, channels of the last (``c_chunks`` = 1: the group's channels whole).
    """

    fits: object
    n_step: object
    n_chunks: object
    n_last: object
    band: object
    bands: object
    band_last: object
    c_step: object = 0
    c_chunks: object = 1
    c_last: object = 0


def _where(xp, cond, a, b):
    return xp.where(cond, a, b) if not isinstance(cond, bool) else (a if cond else b)


def _min(xp, *values):
    out = values[0]
    for v in values[1:]:
        out = xp.minimum(out, v)
    return out


def engine_words(m, k, n, rows, cols, dataflow, xp=np) -> tuple:
    """Words per lane (bank) one GEMM fills in each engine half: A ⌈M/L⌉·⌈K/rows⌉ (L =
    max(rows, cols)), B and C their wide beats, one address across the lanes each
    (``rtl.gemm_engine``; ``dse.cost.gemm.b_beats``, ``c_beats``)."""
    lanes = xp.maximum(rows, cols) if not np.isscalar(rows) else max(rows, cols)
    return (cdiv(m, lanes) * cdiv(k, rows), _gemm.b_beats(k, n, rows, cols, dataflow, True, xp),
            _gemm.c_beats(m, n, cols, dataflow, True, xp))


def n_fits_b(k, words, rows, cols, dataflow, xp=np):
    """Most filters N whose B (K × N) takes at most ``words`` per lane."""
    return _where(xp, dataflow == _IS, words // cdiv(k, rows), cols * (words // k))


def n_fits_c(m, words, cols, dataflow, xp=np):
    """Most filters N whose C (M × N) takes at most ``words`` per lane."""
    return _where(xp, dataflow == _IS, words // cdiv(m, cols), cols * (words // m))


def m_fits_c(n, words, cols, dataflow, xp=np):
    """Most rows M whose C (M × N) takes at most ``words`` per lane."""
    return _where(xp, dataflow == _IS, cols * (words // n), words // cdiv(n, cols))


def band_rows(g: Geometry, oy0, h, xp=np) -> tuple:
    """Input rows ``(i0, i1)`` (unpadded, clipped to the input) and the padding rows
    ``(top, bottom)`` under output rows [oy0, oy0 + h)."""
    p0 = oy0 * g.stride
    p1 = (oy0 + h - 1) * g.stride + (g.kh - 1) * g.dilation + 1
    i0, i1 = p0 - g.pad_t, p1 - g.pad_t
    top = xp.maximum(0 * i0 - i0, 0 * i0)
    bottom = xp.maximum(i1 - g.h_in, 0 * i1)
    return xp.maximum(i0, 0 * i0), xp.minimum(i1, g.h_in + 0 * i1), top, bottom


def band_geometry(g: Geometry, oy0, h, xp=np) -> Geometry:
    """The geometry of output rows [oy0, oy0 + h) as a layer of its own: the input rows
    under them and the padding inside the band."""
    i0, i1, top, bottom = band_rows(g, oy0, h, xp)
    return Geometry(g.c_in, g.c_out, g.groups, g.kh, g.kw, g.stride, g.dilation, i1 - i0,
                    g.w_in, h, g.w_out, top, g.pad_l, bottom, g.pad_r, g.square_steps,
                    g.unit_pads)


def _fft_step(g, unit, xp=np):
    """Input rows a row of FFT tiles covers, N − k + 1 (at least 1)."""
    return xp.maximum(unit - g.kh + 1, 1)


def _fft_band_rows(g, unit, tiles, xp=np):
    """Most output rows of a band whose input (halo included) fills at most ``tiles`` rows
    of FFT tiles: tiles · (N − k + 1) − (k − 1) (stride 1; ≤ 0 where none fits)."""
    return tiles * _fft_step(g, unit, xp) - (g.kh - 1)


def _rows_in(g, h):
    """Padded input rows under h output rows."""
    return (h - 1) * g.stride + (g.kh - 1) * g.dilation + 1


def _h_of_rows_in(g, rows_in):
    """Most output rows whose input (padded, halo included) is at most ``rows_in`` rows."""
    return (rows_in - (g.kh - 1) * g.dilation - 1) // g.stride + 1


def with_channels(g: Geometry, c) -> Geometry:
    """``g`` with ``c`` input channels a group (a channel chunk's geometry)."""
    return replace(g, c_in=c * g.groups)


def channel_words_max(algorithm, g: Geometry, unit, rows, cols, dataflow, limits, xp=np):
    """Most channel words (``rows`` channels each) one invocation of ``g`` takes: those its
    smallest invocation -- one output row (Winograd: one row of tiles; kn2row: the input
    rows under one), one filter -- holds within the limits that grow with K: the weight
    buffer (one filter's K; the engine reads B there), the engine's A half (⌈M/L⌉ lines of
    ⌈K/rows⌉ words) and the feature or tile buffer.  The same conditions as :func:`split`'s,
    solved for the channel words; im2col's ``g`` is the patched one.  (``max_k`` bounds the
    layer's whole K, not a chunk's: the chunks' sum is one exact accumulation.)  FFT: in
    channels, for one row of tiles and one filter."""
    from dse.lowering import winograd

    algo = Algorithm(algorithm)
    lim = limits
    side = xp.maximum(rows, cols) if not np.isscalar(rows) else max(rows, cols)
    wp_full = g.w_in + g.pad_l + g.pad_r
    rows_in1 = (g.kh - 1) * g.dilation + 1                # input rows under one output row
    if algo == Algorithm.IM2COL:
        per, b_mats = g.kh * g.kw, 1                      # K-chunks per channel word
        lines = cdiv(g.w_out, side)
        store = lim["feature_words"] // (wp_full * rows_in1)
    elif algo == Algorithm.KN2ROW:
        per, b_mats = 1, g.kh * g.kw
        lines = cdiv(rows_in1 * wp_full, side)
        store = lim["feature_words"] // (rows_in1 * wp_full)
    elif algo == Algorithm.WINOGRAD:
        per = winograd.pieces(g.kh) * winograd.pieces(g.kw)
        b_mats = (unit + 2) * (unit + 2)
        tw = cdiv(g.w_out, unit)
        lines = cdiv(tw, side)
        store = lim["tile_words"] // (tw * per)
    else:
        # FFT: in channels, not words (the tile buffer holds one activation a word): one
        # row of tiles' input spectra, A of one GEMM (M = its tiles; K = the chunk's
        # channels, at most max_k), one filter's K in the weight buffer (ws and os only);
        # sparse_fft adds its kernel banks' cap
        from dse.lowering import fft
        _, tw = fft.tile_grid(g, unit, xp)
        m = cdiv(g.kh + 0 * tw, _fft_step(g, unit, xp)) * tw
        b_mats = 3 * unit * (unit // 2 + 1)
        return _min(xp, lim["spectral_words"] // (m * unit * unit),
                    rows * (lim["engine_a_words"] // cdiv(m, side)),
                    lim["weight_words"] // b_mats, lim["max_k"] + 0 * m)

    def b_cap(words):            # one filter's K within ``words`` a lane
        return _where(xp, dataflow == _IS, words // per, words // (per * rows))

    return _min(xp, b_cap(lim["weight_words"] // b_mats),
                lim["engine_a_words"] // (lines * per), store)


def _channel_chunks(algo, g, unit, rows, cols, dataflow, lim, xp, words_cap=None):
    """``(c_step, c_chunks, c_last)`` of ``g`` within ``lim`` (the fewest chunks that fit,
    as even as the feature words allow -- FFT: the channels; at most ``words_cap`` channel
    words, FFT channels, a chunk)."""
    gran = 1 if Algorithm(algo) == Algorithm.FFT else rows     # channels of a chunk's unit
    words = cdiv(g.c_group, gran)
    most = channel_words_max(algo, g, unit, rows, cols, dataflow, lim, xp)
    if words_cap is not None:
        most = xp.minimum(most, words_cap)
    chunks = _where(xp, (g.groups == 1) & (most >= 1) & (most < words),
                    cdiv(words, xp.maximum(most, 1 + 0 * most)), 1 + 0 * most)
    step = cdiv(words, chunks)
    chunks = cdiv(words, step)
    c_step = _where(xp, chunks > 1, step * gran, g.c_group + 0 * step)
    return c_step, chunks, g.c_group - (chunks - 1) * c_step


def split(algorithm, g: Geometry, unit, rows, cols, dataflow, limits, xp=np,
          lanes=1, n_cap=None, c_words_cap=None, band_cap=None) -> Split:
    """Cut one group of ``g`` into invocations within ``limits`` (a mapping of
    ``rtl.params.DatapathLimits`` fields; ``None``: one invocation a group).

    ``unit``: Winograd m, FFT N, im2col 1 from host patches (the geometry is then
    :func:`dse.lowering.im2col.patched`'s), else 0; ``lanes``: the Winograd output lanes;
    ``n_cap``: at most that many filters per invocation; ``c_words_cap``: at most that many
    channel words (``rows`` channels each) per channel chunk; ``band_cap``: at most that many
    output rows per band (the caps give every smaller cut: ``bench/exact_cut.py``)."""
    from dse.lowering import im2col, winograd

    algo = Algorithm(algorithm)
    if algo == Algorithm.IM2COL:
        g = im2col.patched(g, unit, xp)
    ng = g.n_group
    one = 0 * ng + 1
    if limits is None:
        return Split(one > 0, ng, one, ng, g.h_out, one, g.h_out, g.c_group, one, g.c_group)
    lim = limits
    # -- channel chunks; the rest is planned for the largest chunk (every chunk of a band
    # and filter chunk writes the same output words)
    c_step, c_chunks, c_last = _channel_chunks(algo, g, unit, rows, cols, dataflow, lim, xp,
                                               c_words_cap)
    words_layer = cdiv(g.c_group, rows)
    g = with_channels(g, c_step)
    wm = unit if algo == Algorithm.WINOGRAD else 0
    c_words = cdiv(g.c_group, rows)
    is_ = dataflow == _IS
    wp_full = g.w_in + g.pad_l + g.pad_r
    # -- per algorithm: K, the B matrices in the weight buffer, the smallest band's M
    if algo == Algorithm.IM2COL:
        k = g.kh * g.kw * c_words * rows
        b_mats = one
        m_min = g.w_out                                   # a GEMM of one output row
        step = one
    elif algo == Algorithm.KN2ROW:
        k = c_words * rows
        b_mats = g.kh * g.kw
        m_min = _rows_in(g, one) * wp_full
        step = one
    elif algo == Algorithm.WINOGRAD:
        p2 = winograd.pieces(g.kh) * winograd.pieces(g.kw)
        k = p2 * c_words * rows
        b_mats = (wm + 2) * (wm + 2)
        m_min = cdiv(g.w_out, wm)                         # one row of tiles
        step = wm
    else:                           # FFT: bands of whole tile rows (_fft_band_rows)
        from dse.lowering import fft
        _, tw = fft.tile_grid(g, unit, xp)
        k = g.c_in
        b_mats = 3 * unit * (unit // 2 + 1)
        t_min = cdiv(g.kh + 0 * tw, _fft_step(g, unit, xp))   # tile rows under one output row
        m_min = t_min * tw
        h_min = xp.minimum(_fft_band_rows(g, unit, t_min, xp), g.h_out)
        step = one
    # -- filters per invocation: weight buffer, engine B, engine C and output at the
    # smallest band
    n = _min(xp, ng + 0 * k, lim["max_n"] + 0 * k,
             n_fits_b(k, lim["weight_words"] // b_mats, rows, cols, dataflow, xp),
             n_fits_c(m_min, lim["engine_c_words"], cols, dataflow, xp))
    if algo == Algorithm.WINOGRAD:
        n = _min(xp, n, lanes * (lim["out_words"] // m_min))
    elif algo == Algorithm.FFT:
        n = _min(xp, n, lim["spectral_words"] // (m_min * unit * unit),
                 lim["out_words"] // (h_min * g.w_out))
    else:
        n = _min(xp, n, n_fits_c(_where(xp, is_, m_min, g.w_out), lim["out_words"], cols,
                                 dataflow, xp))
    if n_cap is not None:
        n = xp.minimum(n, n_cap)
    n = xp.maximum(n, 0 * n)
    n_ok = n >= 1
    n_step = xp.maximum(n, one)
    # -- output rows per band, for n_step filters
    a_rows = _min(xp, xp.maximum(rows, cols) * (lim["engine_a_words"] // cdiv(k, rows)),
                  lim["max_m"] + 0 * k)                                      # M by A
    c_rows = m_fits_c(n_step, lim["engine_c_words"], cols, dataflow, xp)        # M by C
    if algo == Algorithm.IM2COL:
        # ws/os: GEMMs of one output row at the least (in: the whole band is one GEMM)
        m_gemm = _min(xp, a_rows, c_rows)
        h_feat = _h_of_rows_in(g, lim["feature_words"] // (wp_full * c_words))
        h_out_buf = _where(xp, is_, m_fits_c(n_step, lim["out_words"], cols, dataflow, xp),
                           lim["out_words"] // cdiv(n_step, cols)) // g.w_out
        h_gemm = _where(xp, is_, m_gemm // g.w_out,
                        _where(xp, m_gemm >= g.w_out, lim["max_gemms"], 0 * m_gemm))
        h = _min(xp, h_feat, h_out_buf, h_gemm)
        band_ok = (m_gemm >= g.w_out) & (h >= 1)
    elif algo == Algorithm.KN2ROW:
        m_max = _min(xp, a_rows, c_rows, lim["feature_words"] // c_words)
        h_in = _h_of_rows_in(g, m_max // wp_full)
        h_out_buf = lim["out_words"] // (g.w_out * cdiv(n_step, cols))
        h = _min(xp, h_in, h_out_buf)
        band_ok = h >= 1
    elif algo == Algorithm.WINOGRAD:
        tw = cdiv(g.w_out, wm)
        t_max = _min(xp, a_rows, c_rows, lim["tile_words"] // (k // rows),
                     lim["out_words"] // cdiv(n_step, lanes))
        h = wm * (t_max // tw)
        band_ok = h >= wm
    else:
        # tile rows a band holds: its input and output spectra, one GEMM's A and C (M =
        # the band's tiles) and the overlap-add buffer (its output rows × filters)
        spectra = lim["spectral_words"] // (tw * unit * unit * xp.maximum(k, n_step))
        by_engine = _min(xp, a_rows, c_rows, (lim["engine_c_words"] * cols) // n_step) // tw
        h = _min(xp, _fft_band_rows(g, unit, xp.minimum(spectra, by_engine), xp),
                 lim["out_words"] // (g.w_out * n_step))
        band_ok = h >= 1
    # -- the whole layer as one band when it fits with its own padding (im2col and kn2row
    # put less padding into the image then)
    if band_cap is not None:
        h = xp.minimum(h, band_cap)
    if algo in (Algorithm.IM2COL, Algorithm.KN2ROW):
        whole = _fits_whole(algo, g, k, n_step, rows, cols, dataflow, lim, xp) & band_ok
    else:
        whole = (h >= g.h_out) & band_ok
    if band_cap is not None:
        whole = whole & (band_cap >= g.h_out)
    h = _where(xp, whole, g.h_out, xp.minimum(h, g.h_out))
    h = xp.maximum(h, step)
    bands = _where(xp, whole, one, cdiv(g.h_out, h))
    band = step * cdiv(cdiv(g.h_out, bands), step)        # as even as the step allows
    bands = cdiv(g.h_out, band)
    band_last = g.h_out - (bands - 1) * band
    # ``max_k`` bounds the layer's whole K (a chunked layer's K is per·c_words·rows)
    k_layer = _where(xp, c_chunks > 1, (k // c_words) * words_layer, k)
    if algo == Algorithm.FFT:     # each chunk's channels are one GEMM's K, the sums
        k_layer = k               # of the chunks are in the accumulator buffer
    fits = n_ok & band_ok & (k_layer <= lim["max_k"])
    if algo != Algorithm.IM2COL:
        fits = fits & (b_mats <= lim["max_gemms"])
    n_chunks = cdiv(ng, n_step)
    return Split(fits, n_step, n_chunks, ng - (n_chunks - 1) * n_step, band, bands, band_last,
                 c_step, c_chunks, c_last)


def _fits_whole(algo, g, k, n, rows, cols, dataflow, lim, xp):
    """Whether the whole layer (one band, its own unit padding) fits with ``n`` filters."""
    c_words = cdiv(g.c_group, rows)
    hp, wp = g.padded(g.unit_pad(xp))
    if algo == Algorithm.IM2COL:
        pix = g.w_out
        a_w, _, c_w = engine_words(pix, k, n, rows, cols, dataflow, xp)
        is_ = dataflow == _IS
        # in: one GEMM of every output pixel; ws/os: GEMMs of one output row at the least
        a_i, _, c_i = engine_words(g.h_out * g.w_out, k, n, rows, cols, dataflow, xp)
        engine = _where(xp, is_, (a_i <= lim["engine_a_words"]) & (c_i <= lim["engine_c_words"]),
                        (a_w <= lim["engine_a_words"]) & (c_w <= lim["engine_c_words"]))
        out = c_i <= lim["out_words"]
        gemms = _where(xp, is_, True, g.h_out <= lim["max_gemms"])
        return engine & out & gemms & (hp * wp * c_words <= lim["feature_words"])
    if algo == Algorithm.KN2ROW:
        a_w, _, c_w = engine_words(hp * wp, k, n, rows, cols, dataflow, xp)
        return ((a_w <= lim["engine_a_words"]) & (c_w <= lim["engine_c_words"])
                & (hp * wp * c_words <= lim["feature_words"])
                & (g.h_out * g.w_out * cdiv(n, cols) <= lim["out_words"]))
    return True


def split_cycles(algorithm, g: Geometry, unit, rows, cols, dataflow, limits, xp=np,
                 lanes=1, requant_latency=tf.REQUANT_LATENCY) -> dict:
    """The layer's counters (``cycles``, ``gemm_cycles``, ``front_cycles``,
    ``back_cycles``, ``requant_cycles``) and its GEMMs (``gemms``) summed over its
    invocations (:func:`split`), plus ``"split"`` (the :class:`Split`), ``"lowered"`` (the
    first invocation's lowering) and ``"macs_needed"`` (the layer's, all invocations).
    ``requant_latency``: the datapath's requantiser's (``dse.cost.transforms.requant_latency``).

    Of several cuts it keeps the fastest: the most filters an invocation holds
    (:func:`split`), and at most twice or once ``cols`` of them (more room for M in the
    engine's C half).  The compiler plans the cut this returns."""
    algo = Algorithm(algorithm)
    best = _split_sum(algo, split(algo, g, unit, rows, cols, dataflow, limits, xp, lanes),
                      g, unit, rows, cols, dataflow, limits, xp, lanes, requant_latency)
    if limits is None:
        return best
    # the most filters an invocation holds leave the least room for M (the engine's C
    # half): one or two array-widths of filters at a time may be faster
    seen = [best["split"]]
    for cap in (2 * cols, cols):
        narrow = split(algo, g, unit, rows, cols, dataflow, limits, xp, lanes, n_cap=cap)
        if any(_same(xp, narrow, cut) for cut in seen):
            continue                    # the cap cuts nothing the earlier cuts did not
        seen.append(narrow)
        other = _split_sum(algo, narrow, g, unit, rows, cols, dataflow, limits, xp, lanes,
                           requant_latency)
        best = _faster(xp, best, other)
    return best


def _same(xp, a: Split, b: Split) -> bool:
    """Whether two cuts are equal everywhere (their counters then are too)."""
    for f in fields(Split):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if xp is np:
            if not np.array_equal(np.broadcast_to(x, np.broadcast(x, y).shape),
                                  np.broadcast_to(y, np.broadcast(x, y).shape)):
                return False
        elif not bool((x == y).all()):
            return False
    return True


def _faster(xp, best: dict, other: dict) -> dict:
    """Per entry, ``other``'s counters where it fits and is faster than ``best``'s."""
    take = other["split"].fits & ((other["cycles"] < best["cycles"])
                                  | ~xp.asarray(best["split"].fits))
    if np.ndim(take) == 0:
        return other if bool(take) else best
    out = {k: xp.where(take, other[k], v) for k, v in best.items()
           if k not in ("split", "lowered")}
    for key, cls in (("split", Split), ("lowered", None)):
        a, b = best[key], other[key]
        cls = cls or type(a)
        out[key] = cls(**{f.name: xp.where(take, getattr(b, f.name), getattr(a, f.name))
                          for f in fields(cls)})
    return out


def _split_sum(algo, sp, g, unit, rows, cols, dataflow, limits, xp, lanes,
               requant_latency=tf.REQUANT_LATENCY) -> dict:
    """:func:`split_cycles` of one :class:`Split`."""
    from dse.lowering import lowering, im2col

    mod = lowering(algo)
    gp = im2col.patched(g, unit, xp) if algo == Algorithm.IM2COL else g
    extra = {"lanes": lanes} if algo == Algorithm.WINOGRAD else {}
    if algo == Algorithm.IM2COL:
        extra["limits"] = limits
    many = sp.bands >= 2
    parts = [(0 * sp.band, sp.band, 1),
             (sp.band, sp.band, xp.maximum(sp.bands - 2, 0 * sp.bands)),
             ((sp.bands - 1) * sp.band, sp.band_last, _where(xp, many, 1, 0))]
    # channel chunks: (c_chunks - 1) of c_step channels, then the last (with one chunk,
    # only that)
    chunks = [(sp.c_last, 1)]
    if not _all_one(sp.c_chunks):
        chunks.insert(0, (sp.c_step, sp.c_chunks - 1))
    # FFT: a band's later filter chunks find its input spectra in the buffer (``ff_keep``)
    # where its channels are one chunk (else the chunks take turns in the buffer)
    kept = (sp.n_chunks - 1) * (sp.c_chunks == 1) if algo == Algorithm.FFT else 0
    total: dict = {}
    first = None
    macs = 0
    for c, c_times in chunks:
        gc = with_channels(gp, c)
        for oy0, h, count in parts:
            # a lone band is the whole layer (its own padding); else the band's own
            bg = whole_where(xp, many, band_geometry(gc, oy0, h, xp), gc)
            for n, times in ((sp.n_step, sp.n_chunks - 1), (sp.n_last, 0 * sp.n_chunks + 1)):
                low = mod.lower(bg, unit, rows, cols, dataflow, n=n, xp=xp, **extra)
                per = mod.cycles(low, rows, cols, dataflow, xp=xp,
                                 requant_latency=requant_latency)
                w = c_times * count * times * low.invocations
                for key, v in per.items():
                    total[key] = total.get(key, 0) + w * v
                total["gemms"] = total.get("gemms", 0) + w * low.gemms
                macs = macs + c_times * count * times * low.macs_needed
                if first is None:
                    first = low
            if algo == Algorithm.FFT:       # what each kept invocation does not spend
                kept_per = mod.cycles(low, rows, cols, dataflow, xp=xp,
                                      requant_latency=requant_latency, kept=True)
                for key, v in kept_per.items():
                    total[key] = total[key] - c_times * count * kept * (per[key] - v)
    total["split"], total["lowered"], total["macs_needed"] = sp, first, macs
    return total


def _all_one(v) -> bool:
    """Whether ``v`` (an int or an array) is 1 everywhere."""
    return bool(np.all(np.asarray(v) == 1)) if not hasattr(v, "all") else bool((v == 1).all())


def whole_where(xp, many, bg: Geometry, whole: Geometry) -> Geometry:
    """``bg`` where the layer has several bands, else the whole layer's geometry."""
    if np.ndim(many) == 0:
        return bg if bool(many) else whole
    return Geometry(**{f.name: _where(xp, many, getattr(bg, f.name), getattr(whole, f.name))
                       for f in fields(Geometry)})
