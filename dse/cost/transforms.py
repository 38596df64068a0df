"""Cycle formulas of the algorithm units around the systolic array (im2col, kn2row, Winograd, FFT).

Each formula is the exact cycle count of the matching unit in ``rtl/`` and is checked against
Amaranth simulation in ``tests/rtl/test_<unit>.py``.  They are vectorised: every argument may
be a scalar or an integer array of the namespace ``xp`` (numpy by default, or torch), and only
operations common to both are used (``+ - * //``, comparisons, ``xp.where``), so one call
evaluates (layers × choices × hardware points) at once.

Cycle convention, the same for every unit: cycles are counted from the cycle in which the unit
accepts its first input beat (stream units) or sees ``start`` (generator units), through the
cycle of its last output transfer, inclusive, with a source that is always valid and a sink
that is always ready.  Stalls on either stream add cycles one for one; the formulas give the
stall-free count.

Throughput assumptions (the units as built):

- requantiser: one word of ``lanes`` accumulators per cycle, two pipeline registers.
- Winograd input / output transform: one whole tile ((m+2)² values in, or (m+2)² accumulators
  in and m² outputs out) per cycle per lane, fully parallel constant adders, one register.
- im2col window generator: one feature-buffer word (``lanes`` channels of one pixel) per cycle;
  padding words cost a cycle like real ones (they are streamed as zeros).
- kn2row shift-and-add: one partial-sum word (``lanes`` filters of one input pixel) per cycle
  for each of the R·S 1×1 products, then the output buffer drains one word per cycle.
- 2-D FFT/IFFT: one memory-based radix-2 engine per unit: N² cycles to load a tile, one
  butterfly per cycle for 2·log2(N) passes of N²/2 butterflies (one bubble cycle between
  passes so a pass reads what the previous one wrote), and N² cycles to stream it out.
"""

from __future__ import annotations

import numpy as np

from rtl.isa import PoolMode
from rtl.params import QADD_LATENCY, REQUANT_F32_LATENCY, SHIFT_ADD_ADDRESS_STAGES

__all__ = [
    "REQUANT_LATENCY", "REQUANT_F32_LATENCY", "WINOGRAD_LATENCY", "IM2COL_LATENCY",
    "KN2ROW_LATENCY", "FFT_LATENCY",
    "IMAGE_LOAD_LATENCY", "cdiv", "requant_cycles", "requant_f32_cycles",
    "CHANNEL_REQUANT_LATENCY", "requant_latency", "image_load_cycles",
    "winograd_tiles", "winograd_input_transform_cycles", "winograd_output_transform_cycles",
    "im2col_stream_cycles", "im2col_overhead_cycles",
    "kn2row_shift_add_cycles",
    "fft_log2", "fft_tiles", "fft2d_pass_cycles", "fft2d_cycles",
    "POOL_LATENCY", "POOL_REFUSED_CYCLES", "pool_taps", "pool_cycles",
]

#: Pipeline registers of rtl.requant.Requant (input, product, then round/saturate/ReLU).
REQUANT_LATENCY = 3
#: Cycles of ``rtl.compute_engine.ComputeEngine`` beyond one per image word, from taking a
#: command to starting the datapath (the table buffer's read latency, then the start).
IMAGE_LOAD_LATENCY = 2
#: Pipeline registers of ``rtl.requant_channels.ChannelRequant``: the quant buffer's read,
#: then the float32-exact requantiser.
CHANNEL_REQUANT_LATENCY = 1 + REQUANT_F32_LATENCY
#: Pipeline registers of the Winograd input and output transforms.
WINOGRAD_LATENCY = 1
#: Cycles of rtl.im2col.Im2col beyond one per word (start decode, synchronous buffer read).
IM2COL_LATENCY = 2
#: Cycles of rtl.kn2row.ShiftAdd beyond one per beat in and one per word out: its address
#: pipeline, and the start and the last write.
KN2ROW_LATENCY = 2 + SHIFT_ADD_ADDRESS_STAGES
#: Cycles of rtl.fft.FFT2D per tile beyond load, passes and unload.
FFT_LATENCY = 1
#: Cycles of rtl.pool_engine.PoolEngine per tile beyond one per window tap, from the tile's
#: transfer to its ``done``: two start-up cycles (the products of cols × words and stride ×
#: row pitch, then the pointers), and after the last tap its read, the accumulator, the
#: product, the rounding register, the write, and ``done`` the cycle after.
POOL_LATENCY = 7
#: Cycles of a pool tile the engine refuses (a window larger than the padded tile), from its
#: transfer to its ``done``.
POOL_REFUSED_CYCLES = 1
_POOL_MODES = tuple(m.value for m in PoolMode)
#: Cycles of a ``qadd`` tile beyond :data:`POOL_LATENCY`: the QLinearAdd unit's registers
#: (``rtl.params.QADD_LATENCY``) in place of the three result stages of the other modes.
POOL_QADD_EXTRA = QADD_LATENCY - 3
#: Likewise for a ``qgavg`` tile: the float32-exact requantiser's registers.
POOL_QGAVG_EXTRA = REQUANT_F32_LATENCY - 3


def cdiv(a, b):
    """Ceiling division of non-negative integers (works on numpy and torch integers)."""
    return -(-a // b)


def requant_cycles(words, xp=np):
    """Cycles of the requantiser on ``words`` words (one word per cycle, 2 registers)."""
    return words + REQUANT_LATENCY


def requant_latency(kind: str) -> int:
    """Pipeline registers of the datapath's requantiser of ``kind``
    (``rtl.params.OverlayParams.requant``)."""
    return {"shift": REQUANT_LATENCY, "f32": CHANNEL_REQUANT_LATENCY}[kind]


def image_load_cycles(words, xp=np):
    """Cycles from the compute engine's taking a command to its datapath start, for a
    register image of ``words`` words."""
    return words + IMAGE_LOAD_LATENCY


def requant_f32_cycles(words, xp=np):
    """Cycles of the float32-exact requantiser on ``words`` words (one word per cycle)."""
    return words + REQUANT_F32_LATENCY


def winograd_tiles(out_h, out_w, m, xp=np):
    """Number of m×m output tiles covering an out_h × out_w output (ragged edges padded)."""
    return cdiv(out_h, m) * cdiv(out_w, m)


def winograd_input_transform_cycles(tiles, channels, m=2, lanes=1, xp=np):
    """Cycles of Bᵀ·d·B over ``tiles`` tiles of ``channels`` input channels.

    Each of ``lanes`` parallel transforms takes one (m+2)×(m+2) tile per cycle; the tile size
    does not change the rate (the adders are fully parallel), so ``m`` only documents which
    variant is meant.
    """
    return tiles * cdiv(channels, lanes) + WINOGRAD_LATENCY + 0 * m


def winograd_output_transform_cycles(tiles, filters, m=2, lanes=1, xp=np):
    """Cycles of Aᵀ·M·A over ``tiles`` tiles of ``filters`` output channels (one tile/cycle/lane)."""
    return tiles * cdiv(filters, lanes) + WINOGRAD_LATENCY + 0 * m


def im2col_stream_cycles(out_h, out_w, kernel_h, kernel_w, in_words, xp=np):
    """Cycles for the window generator to stream every patch row of a layer.

    One word per cycle: out_h·out_w patches of kernel_h·kernel_w·in_words words, where
    ``in_words`` = ceil(input channels / lanes).
    """
    return out_h * out_w * kernel_h * kernel_w * in_words + IM2COL_LATENCY


def im2col_overhead_cycles(out_h, out_w, kernel_h, kernel_w, in_words, xp=np):
    """Cycles the window generator adds in front of a GEMM it feeds at the array's rate.

    The generator delivers a word per cycle, as fast as the array takes a row, so the only
    cost is its latency (the arguments broadcast the constant to the right shape).
    """
    return 0 * (out_h * out_w * kernel_h * kernel_w * in_words) + IM2COL_LATENCY


def kn2row_shift_add_cycles(in_h, in_w, kernel_h, kernel_w, out_h, out_w, filter_words, xp=np):
    """Cycles of the shift-and-add unit for one layer (all R·S passes, then the drain).

    Every pass streams all in_h·in_w input pixels × ``filter_words`` words (= ceil(filters /
    lanes)); those that land outside the output or between strided outputs are dropped but
    still take their cycle.  The drain then streams out_h·out_w·filter_words words.
    """
    beats = kernel_h * kernel_w * in_h * in_w * filter_words
    return beats + out_h * out_w * filter_words + KN2ROW_LATENCY


def fft_log2(n_fft, xp=np):
    """log2 of the FFT size for sizes 4, 8, 16, 32 (ops common to numpy and torch)."""
    return (2 + xp.where(n_fft >= 8, 1, 0) + xp.where(n_fft >= 16, 1, 0)
            + xp.where(n_fft >= 32, 1, 0))


def fft_tiles(out_h, out_w, n_fft, kernel, xp=np):
    """Overlap-add tiles of a layer: input blocks of (N − kernel + 1)² pixels covering the
    padded input (out + kernel − 1 per side), each zero-padded to N×N (``rtl/spectral.py``)."""
    step = n_fft - kernel + 1
    return cdiv(out_h + kernel - 1, step) * cdiv(out_w + kernel - 1, step)


def fft2d_pass_cycles(n_fft, xp=np):
    """Cycles of one N×N 2-D FFT or IFFT: load, 2·log2(N) butterfly passes, unload."""
    n2 = n_fft * n_fft
    passes = 2 * fft_log2(n_fft, xp)
    return n2 + passes * (n2 // 2 + 1) + n2 + FFT_LATENCY


def fft2d_cycles(n_fft, tiles, channels, xp=np):
    """Cycles of one FFT unit transforming ``tiles`` tiles of ``channels`` channels each.

    The unit works on one tile at a time (no overlap between tiles), so this is
    tiles·channels times :func:`fft2d_pass_cycles`.  The same count holds for the IFFT.
    """
    return tiles * channels * fft2d_pass_cycles(n_fft, xp)


def pool_taps(mode, rows, cols, ch_words, kh=1, kw=1, stride=1, pads=(0, 0, 0, 0), xp=np):
    """Window taps of one ``pool.tile`` (``rtl/pool_engine.py`` issues one a cycle).

    ``mode`` is one of ``max``, ``avg``, ``gmax``, ``gavg``, ``add``, ``rescale``, ``qadd``,
    ``qgavg``, ``lut`` (an ``rtl.isa.PoolMode`` or its value); ``ch_words`` = ⌈ch / lanes⌉; ``pads`` = (top, bottom, left, right).
    Windowed modes: oh·ow·ch_words·kh·kw, with oh = (pad_t + rows + pad_b − kh) // stride + 1
    and ow likewise (every tap, padding included, takes its cycle; 0 where the window does
    not fit).  Global modes: ch_words·rows·cols (the window is the tile).  Element-wise modes:
    rows·cols·ch_words.
    """
    mode = getattr(mode, "value", mode)
    if mode not in _POOL_MODES:
        raise ValueError(f"mode must be one of {', '.join(_POOL_MODES)}, not {mode!r}")
    if mode not in ("max", "avg"):
        return rows * cols * ch_words
    pad_t, pad_b, pad_l, pad_r = pads
    span_h, span_w = pad_t + rows + pad_b, pad_l + cols + pad_r
    fits = (span_h >= kh) & (span_w >= kw)
    oh = xp.where(fits, (span_h - kh) // stride + 1, 0)
    ow = xp.where(fits, (span_w - kw) // stride + 1, 0)
    return oh * ow * ch_words * kh * kw


def pool_cycles(mode, rows, cols, ch_words, kh=1, kw=1, stride=1, pads=(0, 0, 0, 0), xp=np):
    """Cycles of the pool engine on one ``pool.tile``, from its transfer to its ``done``:
    :func:`pool_taps` + :data:`POOL_LATENCY`, or :data:`POOL_REFUSED_CYCLES` for a windowed
    tile whose window is larger than the padded tile (the engine refuses it).  Element-wise
    tiles write one word per cycle; windowed ones one per kh·kw cycles; global ones one per
    rows·cols cycles."""
    taps = pool_taps(mode, rows, cols, ch_words, kh, kw, stride, pads, xp)
    if getattr(mode, "value", mode) in ("max", "avg"):
        pad_t, pad_b, pad_l, pad_r = pads
        fits = (pad_t + rows + pad_b >= kh) & (pad_l + cols + pad_r >= kw)
        return xp.where(fits, taps + POOL_LATENCY, POOL_REFUSED_CYCLES)
    return taps + POOL_LATENCY + {"qadd": POOL_QADD_EXTRA, "qgavg": POOL_QGAVG_EXTRA}.get(mode, 0)
