"""Resource model: DSP, BRAM, LUT and FF of overlay points, vectorised over a HardwareTable.

What is modelled is the overlay that ``omniconv`` writes as ``overlay.v`` for an
:class:`rtl.params.OverlayParams` point: the convolution datapath of ``rtl/conv_datapath.py``
with the buffer limits of ``omniconv.verify.overlay_limits`` (docs/verify.md), synthesised by
Yosys (docs/synthesis.md).  docs/calibration.md gives the method and the measured table.

Structure (derived by hand from the RTL and Yosys's library files, no fitted numbers):

* **DSP**: each PE multiplies a×b: one DSP48E2 up to 27×18 bits, wider operands in 17-bit
  slices (:func:`_mults`), or ``ceil(a/18)·ceil(b/18)`` MULT18X18D; the requantiser
  multiplies each of its lanes (1, or m² with a Winograd unit) by a 16-bit unsigned constant
  (17 bits signed) at the back-end width (acc_width plus the output transform's growth, 4
  bits for F(2×2), 9 for F(4×4)).
* **BRAM**: every memory of the datapath with its depth and width (:func:`datapath_memories`:
  the GEMM engine's A and B lane buffers and its C lanes, which have two read ports and so two
  copies; the feature, weight, shift-and-add, output and accumulator buffers; with Winograd
  the tile buffer and the m² accumulation buffers; with FFT the tile, spectrum, Gauss-sum
  and overlap-add buffers), each mapped the way Yosys's
  ``memory_libmap`` chooses (:func:`memory_blocks`): block RAM in the cheapest aspect ratio
  (RAMB36E2 32K×1 .. 512×72, a RAMB18E2 counting one half; DP16KD 16K×1 .. 512×36) unless LUT
  RAM costs less.  The read-multiplexer cost of LUT RAM, :data:`LUTRAM_MUX_COST`, is the one
  number here set from measurements (the choices Yosys made on the calibration points).

Fitted (keys :data:`FITTED_KEYS`, least squares over the ``fit`` points of
``dse/cost/calibration.json``, which ``python -m omniconv.calibrate`` regenerates and this
module loads): the DSPs of the control logic's run-time multiplies (address and count
products, ``dsp_control``, plus ``dsp_control_winograd`` with a Winograd unit and
``dsp_control_fft`` with an FFT unit), and LUT and FF beyond the PE array: a constant
(controller, counters, address generators), a term per engine lane bit
(``max(rows, cols)·(a+b) + cols·acc``: the lane buffers' muxes and registers), a Winograd
term (LUT: per adder bit of the input and output transforms; FF: per register bit of the
transformed tiles) and a constant with an FFT unit (``lut_control_fft``, ``ff_control_fft``:
the spectral path's control) -- :func:`features`.  The FFT terms are fitted after the others,
on the FFT points only, so they do not move the coefficients of points without an FFT unit.

The PE array's LUT and FF (:func:`array_resources`) are measurements of the array alone
(``python bench/synth_bare_array.py``: ``rtl.systolic.SystolicArray``, int8 operands, 32-bit
accumulators, the flow's multiplier at its default latency), proportional fits through
the 8×8 and 16×16 points, per PE bit: a + b + acc = 48 bits for LUTs, plus the shadow
register of the next stationary operand, max(a, b) = 8 bits (:func:`shadow_bits`), for
flip-flops.  xcup: 4181 and 16989 LUT, 7379 and 29218 FF, so 1.3813 LUT and 2.0393 FF per
bit; ecp5: 4882 and 19586 LUT4, 6329 and 25608 FF, so 1.5936 and 1.7851.

overlay.v's feature, tile, weight and output buffers hold the OverlayParams' KiB in words as
wide as the datapath makes them (:func:`overlay_buffer_words`, which ``omniconv.overlay``
generates overlay.v with); its GEMM engine holds one array tile of M and N.

**The overlay top's shell** (:func:`shell_resources`): what overlay_top.v adds to the
datapath, a linear fit over shells Yosys synthesised with the datapath a blackbox
(``python bench/synth_units.py --units overlay_shell --write``), added to every point's
estimate (``estimate_resources(..., shell=False)``: the datapath alone).

Measured alone (``dse/cost/unit_resources.json``, written by ``python bench/synth_units.py
--write``): the FFT unit.  A point with ``fft_size > 0`` has exactly one
``rtl.fft.FFT2D(n=fft_size, data_bits=a_width-1, twiddle_bits=a_width-1)``, shared by the
forward FFT and the IFFT; its DSP, LUT, FF and block RAM are :func:`fft_resources` (from the
FFT2D points Yosys synthesised), and the FFT path's buffers outside it (tile, spectra, Gauss
sum, overlap-add) are in :func:`datapath_memories`.  The datapath's precision is not an
OverlayParams field: it is taken as 16 when both operands are at least 16 bits wide, else 8
(int8 designs have operands of 8 to 15 bits), and with an FFT unit as 16 when they are at
least 25 bits (int8 FFT operands are 17 bits wide).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dse.cost.choices import required_widths
from dse.cost.energy import WINOGRAD_ADDS
from rtl.params import ACC_MAX_BITS, REQUANT_MULT_BITS
from rtl.pool_layout import pool_lanes, pool_supported

__all__ = ["RESOURCE_COEFFS", "DEFAULT_COEFFS", "FITTED_KEYS", "CALIBRATION_PATH",
           "UNIT_RESOURCES_PATH", "FFT_MEASURED", "LUTRAM_MUX_COST", "LUTRAM_TRANSPARENT_COST",
           "TRANSPARENT_MEMORIES", "overlay_buffer_words",
           "Resources", "estimate_resources", "array_resources", "shadow_bits", "fft_resources",
           "memory_blocks", "datapath_memories", "features", "precision_of",
           "SHELL_FEATURES", "SHELL_MEASURED", "shell_coefficients", "shell_features",
           "shell_memories", "shell_resources", "top_has_pool",
           "REQUANT_MULT_BITS", "CHANNEL_REQUANT_PER_LANE", "QADD_PER_LANE", "POOL_REQUANT_PER_LANE",
           "POOL_LUT_PER_LANE",
           "requant_f32_resources"]

#: What the per-channel requantiser (``rtl/requant_channels.py``: onnxruntime's float32
#: rounding, its bias and zero point per channel, the quant buffer) costs per output lane
#: beyond the per-layer ``rtl/requant.py`` it replaces: Yosys on both flows, each unit
#: alone at 4 and 8 lanes (``python bench/synth_top_units.py``: ``channel_requant`` and
#: ``requant`` rows), the differences per lane.  xcup: ChannelRequant 9,020 − 4,492 LUT,
#: Requant 2,953 − 1,498; ECP5 13,480 − 6,710 and 5,647 − 2,837 (MULT18X18D 4 a lane
#: against 2); FF 2,985 − 1,496 against 707 − 355 on both.
CHANNEL_REQUANT_PER_LANE = {"xcup": {"dsp": 0.0, "lut": 768.25, "ff": 284.25},
                            "ecp5": {"dsp": 2.0, "lut": 990.0, "ff": 284.25}}
#: The pool engine's QLinearAdd unit (``rtl/qadd_f32.py``, its ``qadd`` mode) per pool
#: lane: one lane synthesised alone (``python bench/synth_top_units.py qadd``).
QADD_PER_LANE = {"xcup": {"dsp": 2.0, "lut": 1791.0, "ff": 398.0},
                 "ecp5": {"dsp": 4.0, "lut": 2381.0, "ff": 398.0}}
#: The pool engine's float32-exact requantiser (``rtl/requant_f32.py``, its ``qgavg`` mode)
#: per pool lane: one lane alone (``python bench/synth_top_units.py requant_f32``).
POOL_REQUANT_PER_LANE = {"xcup": {"dsp": 2.0, "lut": 1189.0, "ff": 165.0},
                         "ecp5": {"dsp": 4.0, "lut": 1888.0, "ff": 165.0}}
#: The pool engine's ``lut`` table (a 32 × 64-bit memory, one read port a lane: a
#: quantised concatenation's requantisation) per pool lane: the 4-lane engine with its
#: quantised modes synthesised with and without it (``python bench/synth_top_units.py
#: pool_engine``: xcup 12,840 − 12,755 LUT and 3,721 − 3,432 FF, ECP5 15,485 − 14,703 LUT,
#: over 4 lanes).
POOL_LUT_PER_LANE = {"xcup": {"dsp": 0.0, "lut": 21.25, "ff": 72.25},
                     "ecp5": {"dsp": 0.0, "lut": 195.5, "ff": 72.25}}


def requant_f32_resources(hw, shell: bool = True) -> dict:
    """``{"dsp", "lut", "ff"}`` arrays: what an overlay that requantises per channel
    (``hw.requant`` f32) adds to every point: the per-channel requantiser beyond the
    per-layer one, per output lane (``cols``: no Winograd unit), and with ``shell`` the
    pool engine's QLinearAdd unit, requantiser and ``lut`` table per pool lane, where the
    top has a pool engine (:data:`CHANNEL_REQUANT_PER_LANE`, :data:`QADD_PER_LANE`,
    :data:`POOL_REQUANT_PER_LANE`, :data:`POOL_LUT_PER_LANE`); zeros for ``shift``."""
    f32 = 1.0 if getattr(hw, "requant", "shift") == "f32" else 0.0
    cols = np.asarray(hw.cols, dtype=np.float64)
    pool = (pool_lanes(hw) * top_has_pool(hw)
            if shell else 0 * cols)
    per_pool_lane = {k: sum(unit[hw.family][k] for unit in (
        QADD_PER_LANE, POOL_REQUANT_PER_LANE, POOL_LUT_PER_LANE)) for k in ("dsp", "lut", "ff")}
    return {k: f32 * (v * cols + per_pool_lane[k] * pool)
            for k, v in CHANNEL_REQUANT_PER_LANE[hw.family].items()}


#: The committed calibration (measured Yosys counts and the fitted coefficients).
CALIBRATION_PATH = Path(__file__).with_name("calibration.json")

#: Yosys counts of the rtl/ units synthesised alone (``python bench/synth_units.py --write``).
UNIT_RESOURCES_PATH = Path(__file__).with_name("unit_resources.json")

#: Coefficients fitted by ``python -m omniconv.calibrate`` (per family).
FITTED_KEYS = ("dsp_control", "dsp_control_winograd", "dsp_control_fft",
               "lut_control", "lut_per_lane_bit", "lut_per_winograd_add_bit", "lut_control_fft",
               "ff_control", "ff_per_lane_bit", "ff_per_winograd_reg_bit", "ff_control_fft")

#: Block RAM aspect ratios: (width, depth, blocks) per family, blocks in ``bram_kind`` units.
_XCUP_BRAMS = ([(w, 16384 // d, 0.5) for w, d in ((1, 1), (2, 2), (4, 4), (9, 8), (18, 16),
                                                   (36, 32))]                  # RAMB18E2
               + [(w, 32768 // d, 1.0) for w, d in ((1, 1), (2, 2), (4, 4), (9, 8), (18, 16),
                                                    (36, 32), (72, 64))])      # RAMB36E2
_ECP5_BRAMS = [(w, 16384 // d, 1.0) for w, d in ((1, 1), (2, 2), (4, 4), (9, 8), (18, 16),
                                                 (36, 32))]                    # DP16KD

#: Defaults per family.  The fitted keys' defaults are the uncalibrated guesses (the "before"
#: of docs/calibration.md); calibration.json overrides them.
DEFAULT_COEFFS = {
    "xcup": {
        "lut_per_pe_bit": 1.3813,          # bare arrays, 8×8 and 16×16 (module docstring)
        "lut_array_base": 0.0,
        "ff_per_pe_bit": 2.0393,
        "dsp_max_a": 27, "dsp_max_b": 18,  # DSP48E2 multiplier port widths
        "dsp_partial_bits": 17,            # mul2dsp slice of an over-wide operand
        "brams": _XCUP_BRAMS,
        "lutram": (64, 7, 16, True),       # depth, width, cost, cost scaled by width used
        "dsp_control": 0.0, "dsp_control_winograd": 0.0, "dsp_control_fft": 0.0,
        "lut_control": 2500.0, "lut_per_lane_bit": 0.0, "lut_per_winograd_add_bit": 1.0,
        "lut_control_fft": 0.0,
        "ff_control": 3000.0, "ff_per_lane_bit": 0.0, "ff_per_winograd_reg_bit": 1.0,
        "ff_control_fft": 0.0,
    },
    "ecp5": {
        "lut_per_pe_bit": 1.5936,          # bare arrays, 8×8 and 16×16 (LUT4)
        "lut_array_base": 0.0,
        "ff_per_pe_bit": 1.7851,
        "dsp_max_a": 18, "dsp_max_b": 18,  # MULT18X18D
        "brams": _ECP5_BRAMS,
        "lutram": (16, 4, 4, False),       # TRELLIS_DPR16X4
        "dsp_control": 0.0, "dsp_control_winograd": 0.0, "dsp_control_fft": 0.0,
        "lut_control": 2500.0, "lut_per_lane_bit": 0.0, "lut_per_winograd_add_bit": 1.0,
        "lut_control_fft": 0.0,
        "ff_control": 3000.0, "ff_per_lane_bit": 0.0, "ff_per_winograd_reg_bit": 1.0,
        "ff_control_fft": 0.0,
    },
}


#: Yosys cost of the LUT-RAM read multiplexer, per data bit per extra primitive in depth
#: (fitted to the measured choices: docs/calibration.md).
LUTRAM_MUX_COST = 0.42

#: Extra Yosys cost of LUT RAM, per data bit, for a memory whose read port is transparent to
#: its write port (the read-modify-write buffers :data:`TRANSPARENT_MEMORIES`): LUT RAM has no
#: write-through, so ``memory_libmap`` adds bypass logic.  Bracketed by the measured choices
#: (docs/calibration.md): ecp5 put the 64 × 48 shift-and-add and overlap-add buffers of the
#: 4x8-fft8-wino2-i8 point in DP16KD but its sixteen 64 × 48 transformed-domain buffers
#: (not transparent) in LUT RAM, so the cost is above 0.073; xcup kept the 64 × 32
#: shift-and-add buffers of the 8×8 and 4×8 points in LUT RAM, so it is below 1.75.
LUTRAM_TRANSPARENT_COST = 0.5

#: The read-modify-write memories of :func:`datapath_memories`: a read port transparent to
#: the write port (``rtl.kn2row.ShiftAdd``'s buffer, ``rtl.spectral``'s overlap-add
#: buffer), or one whose data feeds the write port (the accumulator buffer, which adds the
#: previous invocation's words for a K split).  Yosys treats both alike: ecp5 put the
#: 42 × 192 accumulator buffer of the FFT points in DP16KD once it was read back.
TRANSPARENT_MEMORIES = ("shift_add", "overlap_add", "accumulator")


#: Output transform growth bits (rtl/winograd.py transform_growth_bits of Aᵀ), per m.
_OUT_GROWTH = {2: 4, 4: 9}


def back_width(hw):
    """Bits of the back end's words: the accumulator, plus the Winograd output transform's
    growth with a Winograd unit (:data:`_OUT_GROWTH`)."""
    wm = np.asarray(hw.winograd_m)
    return hw.acc_width + np.select([wm == 2, wm == 4], [_OUT_GROWTH[2], _OUT_GROWTH[4]], 0)


def _load_calibrated(path: Path = CALIBRATION_PATH) -> dict:
    """``{family: {key: value}}`` of calibration.json's fitted coefficients ({} if absent)."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    fitted = doc.get("coefficients", {})
    for family, values in fitted.items():
        unknown = set(values) - set(FITTED_KEYS)
        if family not in DEFAULT_COEFFS or unknown:
            raise ValueError(f"{path}: coefficients must be per family "
                             f"({', '.join(DEFAULT_COEFFS)}) with keys from FITTED_KEYS, "
                             f"not {family!r} {sorted(unknown)}")
    return fitted


def _merged(calibrated: dict) -> dict:
    out = {}
    for family, defaults in DEFAULT_COEFFS.items():
        out[family] = {**defaults, **{k: float(v) for k, v in calibrated.get(family, {}).items()}}
    return out


#: Coefficients in use: the defaults with calibration.json's fitted values.
RESOURCE_COEFFS = _merged(_load_calibrated())


@dataclass(frozen=True, eq=False)
class Resources:
    """Estimated resources of ``P`` points, each member an int64 ``(P,)`` array."""

    dsp: np.ndarray
    lut: np.ndarray
    ff: np.ndarray
    bram_blocks: np.ndarray

    def fits(self, dsp: int, lut: int, ff: int, bram_blocks: int) -> np.ndarray:
        """Boolean ``(P,)``: every resource within the given budget (a board's)."""
        return ((self.dsp <= dsp) & (self.lut <= lut) & (self.ff <= ff)
                & (self.bram_blocks <= bram_blocks))

    def as_dict(self, i: int) -> dict:
        """Point ``i`` as design.json's ``resources`` dict."""
        return {"dsp": int(self.dsp[i]), "lut": int(self.lut[i]), "ff": int(self.ff[i]),
                "bram_blocks": int(self.bram_blocks[i])}


def _cdiv(a, b):
    return -(-a // b)


def _bit_length(x):
    """Vectorised ``int.bit_length`` of non-negative integers."""
    x = np.asarray(x, dtype=np.int64)
    n = np.zeros_like(x)
    while np.any(x > 0):
        n = n + (x > 0)
        x = x >> 1
    return n


def _pow2_at_least(x):
    return np.left_shift(1, np.maximum(0, _bit_length(np.asarray(x) - 1)))


def _mults(a, b, c):
    """Hard multipliers for an a×b product with c's port limits.

    ecp5: ``ceil(a/18)·ceil(b/18)`` MULT18X18D.  xcup: the wider operand on the 27-bit port,
    the narrower on the 18-bit one; Yosys's ``mul2dsp`` (``DSP_A_MAXWIDTH_PARTIAL=18``) splits
    an operand that is too wide into 17-bit unsigned slices (the DSP48E2 cascade shifts by 17)
    until the rest fits the port, so a w-bit operand on a p-bit port takes
    ``1 + ceil((w - p) / 17)`` DSPs: the requantisers' 49 × 17 and 48 × 17-bit products take 3,
    36 × 17 and 32 × 17 take 2, which makes the control DSPs of all calibration points agree
    to ±1 (docs/calibration.md).
    """
    if c["dsp_max_a"] == c["dsp_max_b"]:
        return _cdiv(a, c["dsp_max_a"]) * _cdiv(b, c["dsp_max_b"])
    wide, narrow = np.maximum(a, b), np.minimum(a, b)
    step = c["dsp_partial_bits"]

    def pieces(w, port):
        return np.where(w <= port, 1, 1 + _cdiv(np.maximum(w - port, 0), step))

    return pieces(wide, c["dsp_max_a"]) * pieces(narrow, c["dsp_max_b"])


def memory_blocks(depth, width, family: str, transparent: bool = False):
    """Block RAMs of one ``depth × width`` memory (float, ``bram_kind`` units), vectorised.

    Yosys's ``memory_libmap`` picks the cheapest of its RAM kinds by the costs in its
    library files (share/xilinx/brams_xcu.txt, lutrams_xcu.txt; share/lattice/brams_16kd.txt,
    lutrams_trellis.txt):

    * block RAM: ``ceil(width / w) · ceil(depth / d)`` blocks of the cheapest ``w``-wide,
      ``d``-deep aspect ratio, each at the block's cost (RAMB18E2 129, RAMB36E2 257, DP16KD 128);
    * LUT RAM: ``ceil(depth / d) · width / w`` primitives (xcup RAM64M8-style simple dual port,
      64 × 7, cost 16, cost scaled by the width used; ecp5 TRELLIS_DPR16X4, 16 × 4, cost 4,
      whole primitives), plus the read multiplexer over the ``ceil(depth / d)`` primitives:
      :data:`LUTRAM_MUX_COST` per data bit per extra primitive (fitted to the measured
      choices, docs/calibration.md), and with a ``transparent`` read port
      :data:`LUTRAM_TRANSPARENT_COST` per data bit.

    Returns the block count when block RAM is at most as costly, else 0 (LUT RAM).
    """
    c = DEFAULT_COEFFS[family]
    depth = np.asarray(depth, dtype=np.int64)
    width = np.asarray(width, dtype=np.int64)
    best = best_cost = None
    for w, d, blocks in c["brams"]:
        n = _cdiv(width, w) * _cdiv(depth, d)
        cost = n * (257 if blocks == 1.0 and family == "xcup" else
                    129 if family == "xcup" else 128)
        n = n * blocks
        if best is None:
            best, best_cost = n, cost
        else:
            better = cost < best_cost
            best, best_cost = np.where(better, n, best), np.where(better, cost, best_cost)
    lut_d, lut_w, lut_cost, scaled = c["lutram"]
    units = _cdiv(depth, lut_d)
    per_width = width / lut_w if scaled else _cdiv(width, lut_w)
    lut_total = units * per_width * lut_cost + LUTRAM_MUX_COST * width * (units - 1)
    if transparent:
        lut_total = lut_total + LUTRAM_TRANSPARENT_COST * width
    return np.where(best_cost <= lut_total, best.astype(float), 0.0)


def out_lanes(hw):
    """Lanes of the requantiser and the output words: a C vector of ``cols`` accumulators,
    or a Winograd m×m tile (``rtl.conv_datapath.ConvDatapath.lanes``)."""
    return np.maximum(hw.cols, hw.winograd_m * hw.winograd_m)


def precision_of(hw):
    """Datapath precision of each point: 16 when both operands are >= 16 bits, else 8.

    With an FFT unit the operands carry the spectra's extra bits
    (:func:`dse.cost.choices.required_widths`: int8 needs 17, int16 25), so there the
    threshold is int16's FFT width.
    """
    narrow = np.minimum(hw.a_width, hw.b_width)
    fft16 = min(required_widths("fft8", 16))
    return np.where(hw.fft_size > 0, np.where(narrow >= fft16, 16, 8),
                    np.where(narrow >= 16, 16, 8))


def _pow2_at_most(x):
    """The largest power of two not above ``x`` (at least 1)."""
    x = np.maximum(np.asarray(x, dtype=np.int64), 1)
    return np.left_shift(1, np.floor(np.log2(x)).astype(np.int64))


#: The largest K the overlay's ports and counters take (its accumulator may bound it lower).
MAX_K = 1 << 16
#: The most GEMMs one invocation runs (im2col: one band of output rows each).
MAX_GEMMS = 1024


#: Depth of the widest block RAM aspect of every family (xcup RAMB36E2 512×72 and RAMB18E2
#: 512×36, ecp5 DP16KD 512×36): a memory that wide fills its blocks in steps of this many words.
BLOCK_DEPTH = 512


def _whole_blocks(words, *memories, step=BLOCK_DEPTH):
    """``words`` rounded up to a multiple of ``step`` where that adds no block RAM on either
    family to any of ``memories`` (``(words per word, width)`` pairs: a memory ``per ·
    words`` deep and ``width`` bits wide, absent where the width is 0): the depth their
    blocks hold anyway.  Where one of them is LUT RAM, or a block more, ``words``."""
    words = np.asarray(words, dtype=np.int64)
    deeper = _cdiv(words, step) * step
    free = np.ones(words.shape, dtype=bool)
    for per, width in memories:
        for family in DEFAULT_COEFFS:
            before = memory_blocks(per * words, width, family)
            same = (before > 0) & (memory_blocks(per * deeper, width, family) == before)
            free = free & ((np.asarray(width) == 0) | same)
    return np.where(free, deeper, words)


def overlay_buffer_words(hw, precision) -> dict:
    """Buffer limits of each point's overlay.v (``rtl.params.DatapathLimits`` fields), from
    the OverlayParams (or a :class:`dse.cost.hardware.HardwareTable`: arrays broadcast).

    The feature buffer holds ``act_buffer_kib`` in words of ``rows`` activations, the
    Winograd tile buffer the same KiB in words of ``rows`` (m+2)² tiles of ``precision``
    bits, the weight buffer ``weight_buffer_kib`` in words of max(rows, cols) weights, and
    the output side ``out_buffer_kib`` of accumulators in words of ``cols`` (the
    shift-and-add buffer; the output and accumulator buffers beside it are as deep); the FFT
    path's tile and spectrum buffers hold ``act_buffer_kib`` of activations, one a word; a
    sparse unit's kernel banks as many bits as the weight buffer (``sparse_nnz`` words a
    lane), and its schedule memory as many (``sparse_steps`` words).  The
    GEMM engine's double buffers hold one GEMM's operands and results in each half: a half of
    A as many bits as the feature buffer, of B as many words a lane as the weight buffer, of
    C a quarter of the output side's words, each rounded down to a power of two of words a
    lane (``engine_*_words``; C's two read ports make two copies of it, so C's memories
    hold as much as the output buffer).

    Each depth is then rounded up to the depth its block RAMs hold anyway
    (:func:`_whole_blocks`: whole 512-word steps, C's halves up to 256 words, wherever no
    memory of that depth takes a block more on either family): the buffers' words are tens
    to hundreds of bits wide, so a depth of 885 fills the same 1024-deep blocks as 1024
    words.  The largest dimensions are what those hold (K at most :data:`MAX_K` and what the
    accumulator sums exactly), and an invocation runs up to :data:`MAX_GEMMS` GEMMs.  At
    least two words each.
    """
    rows, cols = hw.rows, hw.cols
    a, b, acc = hw.a_width, hw.b_width, hw.acc_width
    t2 = (hw.winograd_m + 2) ** 2
    act_bits = hw.act_buffer_kib * 8192
    side = np.maximum(rows, cols)
    at_least_2 = lambda v: np.maximum(2, v)  # noqa: E731
    wm = np.asarray(hw.winograd_m)
    has_w, has_fft = wm > 0, np.asarray(hw.fft_size) > 0
    back = back_width(hw)
    lanes = out_lanes(hw)
    weight_words = _whole_blocks(at_least_2(hw.weight_buffer_kib * 8192 // (b * side)),
                                 (1, b * side))
    # the output side: the shift-and-add buffer, the output and accumulator words, and the
    # FFT's overlap-add buffer, all this deep (a memory that is absent adds no block)
    out_raw = at_least_2(hw.out_buffer_kib * 8192 // (acc * cols))
    out_words = _whole_blocks(out_raw, (1, acc * cols), (1, precision * lanes), (1, back * lanes),
                              (1, np.where(has_fft, acc, 0)))
    engine_a = _pow2_at_most(act_bits // (a * rows * side))
    # C's halves (two copies each), the Winograd accumulation buffers and the FFT's Gauss
    # buffer are as deep as a C half: up to 256 words a lane where that adds no block
    engine_c = _whole_blocks(_pow2_at_most(out_raw // 4), (2, acc),
                             (1, np.where(has_w, back * cols, 0)),
                             (cols, np.where(has_fft, acc, 0)), step=BLOCK_DEPTH // 2)
    # the sparse unit's kernel banks (P lanes of complex b_width − 1 words) and its schedule
    # memory (words of P lanes' (valid, bin) and a last flag) each hold as many bits as the
    # weight buffer (DatapathLimits' defaults without the unit)
    sparse_lanes = np.asarray(hw.sparse_lanes)
    weight_bits = weight_words * np.maximum(rows, cols) * hw.b_width
    fft_n = np.where(np.asarray(hw.fft_size) > 0, hw.fft_size, 8)
    bin_bits = _bit_length(np.maximum(fft_n * (fft_n // 2 + 1) - 1, 1))
    sparse_nnz = np.where(sparse_lanes > 0, at_least_2(
        weight_bits // np.maximum(2 * sparse_lanes * (hw.b_width - 1), 1)), 256)
    sparse_steps = np.where(sparse_lanes > 0, at_least_2(
        weight_bits // (sparse_lanes * (1 + bin_bits) + 1)), 256)
    return {
        "max_m": engine_a * side, "max_n": weight_words * cols,
        "max_k": np.minimum(MAX_K, np.left_shift(1, np.maximum(0, acc - a - b))),
        "feature_words": _whole_blocks(at_least_2(act_bits // (a * rows)), (1, a * rows)),
        "tile_words": _whole_blocks(at_least_2(act_bits // (precision * t2 * rows)),
                                    (1, precision * t2 * rows)),
        "weight_words": weight_words,
        "out_words": out_words,
        "spectral_words": at_least_2(act_bits // a),
        "max_gemms": np.maximum(MAX_GEMMS, 3 * hw.fft_size ** 2),
        "engine_a_words": engine_a, "engine_c_words": engine_c,
        "sparse_steps": sparse_steps, "sparse_nnz": sparse_nnz,
    }


def overlay_limits(params, precision: int = 8) -> dict:
    """The buffer sizes of the datapath written as overlay.v for ``params`` (an
    ``rtl.params.OverlayParams``), as ``DatapathLimits`` keyword arguments: what the
    explorer plans every layer into and ``omniconv verify`` runs it through."""
    return {k: int(v) for k, v in overlay_buffer_words(params, precision).items()}


def datapath_memories(hw) -> dict:
    """Memories of each point's overlay.v: ``{name: (depth, width, copies)}``, ``(P,)`` arrays.

    Mirrors :func:`overlay_buffer_words` (buffer limits from the KiB figures),
    ``rtl.gemm_engine.GemmEngine`` (lane buffers: two halves, power-of-two depth) and
    ``rtl.conv_datapath.ConvDatapath`` (which buffers exist; the Winograd tile buffer in two
    banks, its even and its odd words); ``copies`` counts memories of the same shape (and
    read ports beyond one: Yosys duplicates the memory for each).

    With an FFT unit (``fft_size > 0``) the FFT path's buffers are listed too: the raw
    activation tiles (``fft_tile``, precision bits), the forward spectra (``spectrum_in``,
    complex: 2·D bits with D = a_width − 1, the FFT2D's part width), the output spectra
    (``spectrum_out``, real and imaginary parts in two memories of D bits), the Gauss sum k1
    of one GEMM (``gauss_k1``, the engine C half's accumulators) and the overlap-add
    buffer (``overlap_add``, two read ports, so two copies like the C lanes).  The spectral
    buffers are as deep as the tile buffer.  The FFT2D's own tile memory and twiddle ROM are
    not here: they are in its measured counts (:func:`fft_resources`).
    """
    rows, cols = hw.rows, hw.cols
    a, b, acc = hw.a_width, hw.b_width, hw.acc_width
    wm = hw.winograd_m
    prec = precision_of(hw)
    words = overlay_buffer_words(hw, prec)
    feature_words, weight_words = words["feature_words"], words["weight_words"]
    out_words, tile_words = words["out_words"], words["tile_words"]
    spectral_words = words["spectral_words"]
    # GemmEngine halves: A K-chunk words of ``rows`` elements in L banks, B and C lanes
    a_words, c_words = words["engine_a_words"], words["engine_c_words"]
    engine_lanes = np.maximum(rows, cols)
    has_w = wm > 0
    t2 = (wm + 2) ** 2
    lanes = out_lanes(hw)
    # the Winograd accumulation buffers: m² of them, a word per C vector of one GEMM
    mbuf_words = c_words
    back = back_width(hw)
    has_fft = (hw.fft_size > 0) * 1
    fft_part = a - 1                      # the FFT2D's data_bits (rtl.fft.FFT2D)
    return {
        "engine_a": (2 * _pow2_at_least(a_words), a * rows, engine_lanes),
        "engine_c": (2 * _pow2_at_least(c_words), acc, 2 * cols),   # 2 read ports
        "feature": (feature_words, a * rows, 1),
        "weight": (weight_words, b * engine_lanes, 1),
        "shift_add": (out_words, acc * cols, 1),
        "output": (out_words, prec * lanes, 1),
        "accumulator": (out_words, back * lanes, 1),
        # the even and the odd tile words in two banks (the overlay top's loads write a pair
        # of words at once)
        "tile": ((tile_words + 1) // 2, prec * t2 * rows, 2 * has_w),
        "winograd_acc": (mbuf_words, back * cols, has_w * wm * wm),
        "fft_tile": (spectral_words, prec, has_fft),
        "spectrum_in": (spectral_words, 2 * fft_part, has_fft),
        "spectrum_out": (spectral_words, fft_part, 2 * has_fft),
        "gauss_k1": (c_words * cols, acc, has_fft),
        "overlap_add": (out_words, acc, 2 * has_fft),               # 2 read ports
    }


def array_resources(hw) -> tuple:
    """``(dsp, lut, ff)`` of the PE array alone, float ``(P,)`` arrays (the measured part)."""
    c = RESOURCE_COEFFS[hw.family]
    pes = hw.rows * hw.cols
    pe_bits = hw.a_width + hw.b_width + hw.acc_width
    return (pes * _mults(hw.a_width, hw.b_width, c),
            pes * pe_bits * c["lut_per_pe_bit"] + c["lut_array_base"],
            pes * (pe_bits + shadow_bits(hw)) * c["ff_per_pe_bit"])


def shadow_bits(hw):
    """Flip-flops of a PE's shadow register (the next stationary operand, ``rtl/pe.py``):
    ``max(a_width, b_width)``; registers with an enable, so no LUTs."""
    return np.maximum(hw.a_width, hw.b_width)


def _load_fft_points(path: Path = UNIT_RESOURCES_PATH) -> dict:
    """``{family: {(n, data_bits): {dsp, lut, ff, bram_blocks}}}`` of the measured FFT2D points.

    Raises ValueError when the points of a family are not a full grid of at least two n by two
    data widths (:func:`fft_resources` interpolates between them), or a point's twiddle width
    differs from its data width (the datapath instantiates them equal).
    """
    doc = json.loads(path.read_text())
    points = doc.get("units", {}).get("fft2d", {}).get("points", {})
    out: dict = {family: {} for family in DEFAULT_COEFFS}
    for label, point in points.items():
        params = point["params"]
        if params["twiddle_bits"] != params["data_bits"]:
            raise ValueError(f"{path}: fft2d point {label} must have twiddle_bits equal to "
                             f"data_bits, not {params['twiddle_bits']} and {params['data_bits']}")
        for family, got in point["flows"].items():
            out[family][params["n"], params["data_bits"]] = {
                k: float(got[k]) for k in ("dsp", "lut", "ff", "bram_blocks")}
    for family, got in out.items():
        ns, ds = {n for n, _ in got}, {d for _, d in got}
        if len(ns) < 2 or len(ds) < 2 or len(got) != len(ns) * len(ds):
            raise ValueError(f"{path}: fft2d must be measured on a grid of at least two sizes n "
                             f"by two data widths on {family}, not at {sorted(got)} (run "
                             f"python bench/synth_units.py --units fft2d --write)")
    return out


#: The FFT2D points Yosys synthesised alone: ``{family: {(n, data_bits): counts}}``.
FFT_MEASURED = _load_fft_points()


def _axis(x, grid):
    """Bracketing indices and weight of ``x`` clamped into the sorted ``grid``."""
    grid = np.asarray(grid, dtype=np.float64)
    xc = np.clip(x, grid[0], grid[-1])
    hi = np.clip(np.searchsorted(grid, xc), 1, len(grid) - 1)
    lo = hi - 1
    return lo, hi, (xc - grid[lo]) / (grid[hi] - grid[lo]), xc


def fft_resources(hw) -> tuple:
    """``(dsp, lut, ff, bram_blocks)`` of each point's FFT2D, float ``(P,)`` arrays (0 without).

    The unit is ``rtl.fft.FFT2D(n=fft_size, data_bits=D, twiddle_bits=D)`` with D = a_width − 1
    (one unit for the forward FFT and the IFFT).  From its Yosys runs alone
    (:data:`FFT_MEASURED`: n = 8 and 16 at D = 16 and 24, the widths the search gives int8 and
    int16 FFT points):

    * **DSP**: the butterfly's complex multiply, four D × D products (``t = b·w``), each
      :func:`_mults` hard multipliers: 4 DSP48E2 / MULT18X18D at D = 16; 8 DSP48E2 (24 bits
      on the 18-bit port take two slices) and 16 MULT18X18D (2 × 2 tiles) at D = 24 -- what
      Yosys counted on every measured point.
    * **LUT, FF, block RAM**: bilinear interpolation in n² and D between the measured points
      (exact there).  Outside the measured box the nearest box value is scaled in proportion
      to n² and to D: the unit is dominated by its tile memory, N² complex words with two read
      and two write ports, which Yosys builds from N²·2D flip-flops and LUT multiplexers (no
      block RAM has four ports; ``memory_libmap`` chooses "FF mapping" for it and for the n/2-word
      twiddle ROM), so its block RAM is 0.  The search offers n = 8, 16 at D = 16, 24 only;
      n = 4, 32 and other widths are extrapolations.
    """
    c = DEFAULT_COEFFS[hw.family]          # DSP port widths (not fitted)
    has = (hw.fft_size > 0).astype(float)
    dsp = has * 4 * _mults(hw.a_width - 1, hw.a_width - 1, c)
    points = FFT_MEASURED[hw.family]
    ns = sorted({n * n for n, _ in points})
    ds = sorted({d for _, d in points})
    n2 = (hw.fft_size ** 2).astype(float)
    d = (hw.a_width - 1).astype(float)
    n_lo, n_hi, tn, n2c = _axis(n2, ns)
    d_lo, d_hi, td, dc = _axis(d, ds)
    scale = has * (n2 / n2c) * (d / dc)
    rest = []
    for resource in ("lut", "ff", "bram_blocks"):
        table = np.array([[points[round(np.sqrt(q)), w][resource] for w in ds] for q in ns])
        value = ((1 - tn) * (1 - td) * table[n_lo, d_lo] + tn * (1 - td) * table[n_hi, d_lo]
                 + (1 - tn) * td * table[n_lo, d_hi] + tn * td * table[n_hi, d_hi])
        rest.append(scale * value)
    return (dsp, *rest)

def sparse_memories(hw) -> dict:
    """Memories of the sparse MAC unit beside the FFT path (``rtl/sparse_fft.py`` in
    ``rtl/spectral.py``) of each point: ``{name: (depth, width, copies)}``, ``(P,)``
    arrays; nothing where ``sparse_lanes`` is 0.

    As ``rtl.conv_datapath.sparse_params`` builds it: bins = N·(N/2 + 1) of the point's FFT
    size (N = 8 without an FFT unit), input-spectrum parts of D = a_width − 1 bits, kernel
    parts of b_width − 1, accumulator parts of max(acc_width + 1, D + b_width); the
    input-spectrum banks, B of ⌈bins/B⌉ complex words; per lane a kernel bank of
    ``sparse_nnz`` complex words (:func:`overlay_buffer_words`) and ``bins`` complex
    accumulators (two read ports: the accumulation's and the dump's); the schedule
    memory, ``sparse_steps`` words of P·(1 + bin bits) + 1 bits; the placement table, ``bins``
    words of bank and row.
    """
    lanes, banks = np.asarray(hw.sparse_lanes), np.asarray(hw.sparse_banks)
    has = (lanes > 0) * 1
    n = np.where(np.asarray(hw.fft_size) > 0, hw.fft_size, 8)
    bins = n * (n // 2 + 1)
    depth = _cdiv(bins, np.maximum(banks, 1))
    data, kernel = np.asarray(hw.a_width) - 1, np.asarray(hw.b_width) - 1
    acc = np.minimum(ACC_MAX_BITS,
                     np.maximum(np.asarray(hw.acc_width) + 1, data + kernel + 1))
    words = overlay_buffer_words(hw, precision_of(hw))
    bin_bits = _bit_length(np.maximum(bins - 1, 1))
    table_bits = _bit_length(np.maximum(banks - 1, 1)) + _bit_length(np.maximum(depth - 1, 1))
    return {
        "spectrum_banks": (depth, 2 * data, banks * has),
        "kernel_banks": (words["sparse_nnz"], 2 * kernel, lanes * has),
        "lane_accumulators": (bins, 2 * acc, 2 * lanes * has),
        "schedule": (words["sparse_steps"], lanes * (1 + bin_bits) + 1, has),
        "placement": (bins, table_bits, has),
    }


def sparse_resources(hw) -> tuple:
    """``(dsp, bram)`` of the sparse MAC unit, float ``(P,)``: 3 DSPs a lane (Gauss's three
    16 × 17-bit products, one DSP48E2 or MULT18X18D each) and the block RAM of
    :func:`sparse_memories` (:func:`memory_blocks`; memories that LUT RAM holds more cheaply
    count 0 blocks).  LUT and FF of the unit (arbiter, sequencer, lane adders, LUT RAM) are
    not modelled: it has not been synthesised (docs/sparse-fft.md)."""
    from dse.lowering.sparse_fft import DSP_PER_LANE

    dsp = DSP_PER_LANE * np.asarray(hw.sparse_lanes, dtype=np.float64)
    bram = np.zeros(np.shape(dsp))
    for depth, width, copies in sparse_memories(hw).values():
        bram = bram + copies * memory_blocks(depth, width, hw.family)
    return dsp, bram


def _load_shell_points(path: Path = UNIT_RESOURCES_PATH) -> dict:
    """``{family: [(OverlayParams keyword arguments, {dsp, lut, ff, bram_blocks})]}`` of the
    overlay shells Yosys measured (``bench/synth_units.py --units overlay_shell``)."""
    doc = json.loads(path.read_text())
    points = doc.get("units", {}).get("overlay_shell", {}).get("points", {})
    out: dict = {family: [] for family in DEFAULT_COEFFS}
    for point in points.values():
        for family, got in point["flows"].items():
            out[family].append((dict(point["params"]),
                                {k: float(got[k]) for k in ("dsp", "lut", "ff", "bram_blocks")}))
    return out


def top_has_pool(hw):
    """Whether each point's top has a pool engine (``rtl.pool_layout.pool_supported`` at
    the point's :func:`precision_of`)."""
    return pool_supported(hw, precision_of(hw))


def shell_features(hw) -> dict:
    """The shell model's features, float ``(P,)`` arrays (:func:`shell_resources`).

    ``control``: 1.  ``bus_bits``: the DRAM bus, which every DMA engine's byte shifters and
    the fetch unit are as wide as.  ``lane_bits``: the buffer words the
    engines assemble and take apart -- the feature loader's ``rows`` lanes of ``a_width``,
    the weight loader's max(rows, cols) of ``b_width``, the store engine's output words
    (:func:`out_lanes` of the precision) and, with a pool engine, the aux format's ``rows``
    int8 lanes.  ``pool_lanes``: the pool engine's lanes, gcd(rows, cols)
    (``rtl.pool_layout.pool_lanes``; 0 without one), each with its own multipliers."""
    rows, cols = hw.rows, hw.cols
    prec = precision_of(hw)
    pool = top_has_pool(hw)
    lane_bits = (rows * hw.a_width + np.maximum(rows, cols) * hw.b_width
                 + out_lanes(hw) * prec + pool * rows * 8)
    return {"control": np.ones(np.shape(rows), dtype=np.float64),
            "bus_bits": np.asarray(hw.bus_bits, dtype=np.float64),
            "lane_bits": np.asarray(lane_bits, dtype=np.float64),
            "pool_lanes": (pool * pool_lanes(hw)).astype(np.float64)}


def shell_memories(hw) -> dict:
    """The shell's memories, ``{name: (depth, width, copies)}``: the table of register images
    (64 words of :data:`rtl.isa.IMAGE_WORD_BITS`, ``OverlayTop``'s default; a program with
    more images makes it deeper) and, with a pool engine, the aux buffer of min(feature, out)
    words of ``rows`` int8 lanes."""
    from rtl.isa import IMAGE_WORD_BITS

    words = overlay_buffer_words(hw, precision_of(hw))
    pool = top_has_pool(hw)
    aux = np.maximum(2, np.minimum(words["feature_words"], words["out_words"]))
    ones = np.ones(np.shape(hw.rows), dtype=np.int64)
    return {"table": (64 * ones, IMAGE_WORD_BITS * ones, ones),
            "aux": (aux, 8 * hw.rows, pool.astype(np.int64))}


def _shell_coefficients(points: dict) -> dict:
    """Per family and resource the least-squares coefficients of :func:`shell_features`
    over the measured shells (block RAM: of what :func:`shell_memories` leaves)."""
    from dse.cost.hardware import HardwareTable
    from rtl.params import OverlayParams

    out: dict = {}
    for family, rows in points.items():
        if len(rows) < 4:
            raise ValueError(f"{UNIT_RESOURCES_PATH}: overlay_shell needs at least four "
                             f"points on {family}, not {len(rows)} (run python "
                             f"bench/synth_units.py --units overlay_shell --write)")
        hw = HardwareTable.from_params([OverlayParams(**p) for p, _ in rows], family=family)
        f = shell_features(hw)
        mem = np.zeros(len(rows))
        for depth, width, copies in shell_memories(hw).values():
            mem = mem + copies * memory_blocks(depth, width, family)
        out[family] = {}
        for resource, names in SHELL_FEATURES.items():
            x = np.stack([f[k] for k in names], axis=1)
            y = np.array([got[resource] for _, got in rows])
            if resource == "bram_blocks":
                y = y - mem
            coef, *_ = np.linalg.lstsq(x, y, rcond=None)
            out[family][resource] = dict(zip(names, coef.tolist()))
    return out


#: Per resource the :func:`shell_features` its linear model uses: the DSPs are the DMA
#: engines' address products (a constant) and the pool engine's multipliers (per lane);
#: the LUTs and FFs the bus-wide byte shifters and the lanes' packing; the block RAM beyond
#: :func:`shell_memories` a constant.
SHELL_FEATURES = {"dsp": ("control", "pool_lanes"),
                  "lut": ("control", "bus_bits", "lane_bits"),
                  "ff": ("control", "bus_bits", "lane_bits"),
                  "bram_blocks": ("control",)}
#: The measured overlay shells: ``{family: [(params, counts)]}``.
SHELL_MEASURED = _load_shell_points()


@functools.cache
def shell_coefficients() -> dict:
    """Fitted per family and resource, ``{family: {resource: {feature: coefficient}}}``
    (:func:`_shell_coefficients` of :data:`SHELL_MEASURED`, on first use: the bench that
    measures the shells imports this module before there are any)."""
    return _shell_coefficients(SHELL_MEASURED)


def shell_resources(hw) -> tuple:
    """``(dsp, lut, ff, bram_blocks)`` of each point's overlay shell, float ``(P,)`` arrays:
    everything ``overlay_top.v`` holds beside the datapath (``rtl.overlay_top.OverlayTop``:
    the load engine of every buffer, the store engine, fetch (on its own read port),
    controller, compute and pool engines, host registers, table and aux memories).
    Every point pays it, an FFT point too: the top cannot run an FFT unit yet, but no board
    runs a datapath without the DMA and control around it (and a shell-free estimate would
    make the FFT unit look cheaper than it is).

    A linear model in :func:`shell_features` fitted by least squares to the shells Yosys
    synthesised with the datapath a blackbox (:data:`SHELL_MEASURED`, 4×4 to 16×16 int8
    overlays, 64- to 512-bit buses, with and without Winograd units), plus for block RAM
    the :func:`shell_memories` mapped like the datapath's (:func:`memory_blocks`).  The
    DSPs are the DMA engines' address products (rows and pixels times pitches) and the pool
    engine's.  Every measured point has a pool engine, so a point without one is priced as
    if it had its logic (its aux memory is left out)."""
    c = shell_coefficients()[hw.family]
    f = shell_features(hw)
    out = []
    for resource, names in SHELL_FEATURES.items():
        v = sum(c[resource][k] * f[k] for k in names)
        if resource == "bram_blocks":
            for depth, width, copies in shell_memories(hw).values():
                v = v + copies * memory_blocks(depth, width, hw.family)
        out.append(np.maximum(v, 0.0))
    return tuple(out)


def features(hw) -> dict:
    """The fitted terms' features, float ``(P,)`` arrays (module docstring).

    ``control``: 1.  ``lane_bits``: ``max(rows, cols)·(a+b) + cols·acc``.  ``winograd``: 1
    with a Winograd unit.  ``winograd_add_bits``: the Winograd adder bits,
    ``rows·adds_in·a_width + cols·m²·back_width``: ``rows`` input transforms (one per channel
    of a tile-buffer word) of :data:`dse.cost.energy.WINOGRAD_ADDS`'s per-tile adds, and the
    output accumulator's ``cols·m²`` adders (``rtl.winograd.OutputAccumulator``).
    ``winograd_reg_bits``: their register bits, ``rows·(m+2)²·a_width + cols·acc_width +
    lanes·m²·back_width`` (the input transforms, the accumulator's C vector, and
    ``lanes`` = ``winograd_lanes`` scale units).
    ``fft``: 1 with an FFT unit (the spectral path's
    control beyond the FFT2D and its buffers: ``rtl/spectral.py``'s run-time address and count
    products, counters and multiplexers); 0 on every point without one, so the ``*_fft``
    coefficients leave those points' estimates as they are.
    """
    rows, cols = hw.rows, hw.cols
    lanes = np.maximum(rows, cols)
    wm = hw.winograd_m
    a = hw.a_width
    back = back_width(hw)
    adds_in = np.select([wm == 2, wm == 4], [WINOGRAD_ADDS[2][0], WINOGRAD_ADDS[4][0]], 0)
    wl = hw.winograd_lanes
    has = (wm > 0).astype(float)
    has_fft = (hw.fft_size > 0).astype(float)
    ones = np.ones(np.shape(rows), dtype=np.float64)
    return {
        "control": ones,
        "lane_bits": (lanes * (a + hw.b_width) + cols * hw.acc_width).astype(float),
        "winograd": has,
        "winograd_add_bits": has * (rows * adds_in * a + cols * wm * wm * back),
        "winograd_reg_bits": has * (rows * (wm + 2) ** 2 * a + cols * hw.acc_width
                                    + wl * wm * wm * back),
        "fft": has_fft,
    }


def estimate_resources(hw, coeffs: dict | None = None, shell: bool = True) -> Resources:
    """Estimated DSP, LUT, FF and BRAM blocks of every point of ``hw`` (module docstring):
    the accelerator, its datapath and the overlay top's shell (:func:`shell_resources`).

    ``coeffs`` replaces :data:`RESOURCE_COEFFS` (the calibration uses it to compare
    coefficient sets); by default the calibrated coefficients.  ``shell=False``: the
    datapath alone (overlay.v, what the calibration synthesises).
    """
    c = (coeffs if coeffs is not None else RESOURCE_COEFFS)[hw.family]
    if coeffs is not None:
        c = {**DEFAULT_COEFFS[hw.family], **c}
    a = hw.a_width
    pes = hw.rows * hw.cols
    pe_bits = a + hw.b_width + hw.acc_width
    dsp = pes * _mults(a, hw.b_width, c)
    lut = pes * pe_bits * c["lut_per_pe_bit"] + c["lut_array_base"]
    ff = pes * (pe_bits + shadow_bits(hw)) * c["ff_per_pe_bit"]
    # requantiser: one back-end-width × 17-bit multiply per lane
    lanes = out_lanes(hw)
    dsp = dsp + lanes * _mults(back_width(hw),
                               np.full_like(a, REQUANT_MULT_BITS + 1), c)
    f = features(hw)
    dsp = (dsp + c["dsp_control"] * f["control"] + c["dsp_control_winograd"] * f["winograd"]
           + c["dsp_control_fft"] * f["fft"])
    lut = (lut + c["lut_control"] * f["control"] + c["lut_per_lane_bit"] * f["lane_bits"]
           + c["lut_per_winograd_add_bit"] * f["winograd_add_bits"]
           + c["lut_control_fft"] * f["fft"])
    ff = (ff + c["ff_control"] * f["control"] + c["ff_per_lane_bit"] * f["lane_bits"]
          + c["ff_per_winograd_reg_bit"] * f["winograd_reg_bits"] + c["ff_control_fft"] * f["fft"])
    bram = np.zeros(np.shape(a), dtype=np.float64)
    for name, (depth, width, copies) in datapath_memories(hw).items():
        bram = bram + copies * memory_blocks(depth, width, hw.family,
                                             transparent=name in TRANSPARENT_MEMORIES)
    # the one FFT2D (measured alone; its tile memory and twiddle ROM are inside these counts,
    # the FFT path's buffers outside it are in datapath_memories)
    fft_dsp, fft_lut, fft_ff, fft_bram = fft_resources(hw)
    dsp, lut, ff, bram = dsp + fft_dsp, lut + fft_lut, ff + fft_ff, bram + fft_bram
    sp_dsp, sp_bram = sparse_resources(hw)
    dsp, bram = dsp + sp_dsp, bram + sp_bram
    if shell:
        sh_dsp, sh_lut, sh_ff, sh_bram = shell_resources(hw)
        dsp, lut, ff, bram = dsp + sh_dsp, lut + sh_lut, ff + sh_ff, bram + sh_bram
    q = requant_f32_resources(hw, shell)
    dsp, lut, ff = dsp + q["dsp"], lut + q["lut"], ff + q["ff"]
    return Resources(dsp=np.ceil(dsp).astype(np.int64),
                     lut=np.ceil(lut).astype(np.int64),
                     ff=np.ceil(ff).astype(np.int64),
                     bram_blocks=np.ceil(bram).astype(np.int64))
