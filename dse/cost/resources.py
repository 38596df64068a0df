"""Resource model: DSP, BRAM, LUT and FF of overlay points, vectorised over a HardwareTable.

All coefficients sit in one table, :data:`RESOURCE_COEFFS`, per FPGA family, each with where
it came from; the synthesis issue recalibrates them against Yosys.

Measured (docs/TOOLCHAIN.md section 3, Yosys ``-flatten``, output-stationary int8 array with
32-bit accumulators, a+b+acc = 48 bits per PE):

* xcup: 8×8 array 3119 LUT, 3424 FF, 64 DSP48E2; 16×16 12780 LUT, 13984 FF, 256 DSP48E2.
  Least squares through the origin over the two points: 49.85 LUT and 54.56 FF per PE, i.e.
  1.0385 LUT and 1.1367 FF per PE per operand/accumulator bit.  (A fit with an intercept
  gives a negative one, so per-PE proportionality is what the data support.)
* ecp5: 4085 LUT4 (8×8) and 12461 (16×16) are not proportional (the 8×8 count carries
  muxes that do not grow with the array), so the line through both points is used: 43.625
  LUT4 per PE (0.9089 per bit) plus 1293 for the array; FF as xcup.
* One int8 × int8 multiply is one DSP48E2 or one MULT18X18D.  Wider operands: a DSP48E2 is a
  27×18 multiplier, a MULT18X18D 18×18, so a PE takes ceil(wide/27)·ceil(narrow/18) DSP48E2
  or ceil(a/18)·ceil(b/18) MULT18X18D.

Estimated, not yet measured (marked ``uncalibrated`` in the table): the control/AXI shell; the
Winograd transforms (fully parallel adders, one per non-zero of the transform matrices, per
lane: rows input lanes, cols output lanes; one register stage); the FFT unit (one radix-2
engine each for FFT and IFFT, a complex multiplier of 4 DSPs and an N² tile memory each);
the kn2row shift-and-add (one accumulator adder per column); the requantiser (one
acc × 16-bit multiply per column).

BRAM: each of the act, weight and out buffers is double-buffered (the OverlayParams KiB figure
is one half), and each half takes enough blocks for its capacity and for its port width (the
activation buffer feeds ``rows·a_width`` bits a cycle, the weight buffer ``cols·b_width``,
the output buffer takes ``cols·acc_width``).  RAMB36E2: 36 Kb, of which 32 Kb hold bytes,
72 bits widest; DP16KD: 18 Kb, 16 Kb of bytes, 36 bits widest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dse.cost.energy import WINOGRAD_ADDS

__all__ = ["RESOURCE_COEFFS", "Resources", "estimate_resources", "array_resources",
           "REQUANT_MULT_BITS"]

#: Coefficients per family.  Keys ending in ``_uncalibrated`` are estimates awaiting Yosys.
RESOURCE_COEFFS = {
    "xcup": {
        "lut_per_pe_bit": 49.85 / 48,      # TOOLCHAIN.md 3: sa8/sa16 fit
        "lut_array_base": 0.0,
        "ff_per_pe_bit": 54.56 / 48,       # TOOLCHAIN.md 3: sa8/sa16 fit
        "dsp_max_a": 27, "dsp_max_b": 18,  # DSP48E2 multiplier port widths
        "bram_data_kbits": 32, "bram_max_width": 72,   # RAMB36E2
        "shell_lut_uncalibrated": 2500, "shell_ff_uncalibrated": 3000,
        "lut_per_adder_bit_uncalibrated": 1.0,
        "fft_engine_lut_uncalibrated": 600, "fft_engine_dsp_uncalibrated": 4,
    },
    "ecp5": {
        "lut_per_pe_bit": 43.625 / 48,     # TOOLCHAIN.md 3: line through sa8/sa16 LUT4
        "lut_array_base": 1293.0,
        "ff_per_pe_bit": 54.56 / 48,
        "dsp_max_a": 18, "dsp_max_b": 18,  # MULT18X18D
        "bram_data_kbits": 16, "bram_max_width": 36,   # DP16KD
        "shell_lut_uncalibrated": 2500, "shell_ff_uncalibrated": 3000,
        "lut_per_adder_bit_uncalibrated": 1.0,
        "fft_engine_lut_uncalibrated": 600, "fft_engine_dsp_uncalibrated": 4,
    },
}

#: Bits of the requantiser's multiplier constant (rtl/requant.py).
REQUANT_MULT_BITS = 16


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


def _mults(a, b, c):
    """Hard multipliers for an a×b product with c's port limits."""
    wide, narrow = np.maximum(a, b), np.minimum(a, b)
    if c["dsp_max_a"] == c["dsp_max_b"]:
        return _cdiv(a, c["dsp_max_a"]) * _cdiv(b, c["dsp_max_b"])
    return _cdiv(wide, c["dsp_max_a"]) * _cdiv(narrow, c["dsp_max_b"])


def _blocks(kib, port_bits, c):
    by_size = _cdiv(kib * 8, c["bram_data_kbits"])
    by_width = _cdiv(port_bits, c["bram_max_width"])
    return 2 * np.maximum(by_size, by_width)


def array_resources(hw) -> tuple:
    """``(dsp, lut, ff)`` of the PE array alone, float ``(P,)`` arrays (the measured part)."""
    c = RESOURCE_COEFFS[hw.family]
    pes = hw.rows * hw.cols
    pe_bits = hw.a_width + hw.b_width + hw.acc_width
    return (pes * _mults(hw.a_width, hw.b_width, c),
            pes * pe_bits * c["lut_per_pe_bit"] + c["lut_array_base"],
            pes * pe_bits * c["ff_per_pe_bit"])


def estimate_resources(hw) -> Resources:
    """Estimated DSP, LUT, FF and BRAM blocks of every point of ``hw`` (module docstring)."""
    c = RESOURCE_COEFFS[hw.family]
    rows, cols = hw.rows, hw.cols
    a, b, acc = hw.a_width, hw.b_width, hw.acc_width
    dsp, lut, ff = array_resources(hw)
    lut = lut + c["shell_lut_uncalibrated"]
    ff = ff + c["shell_ff_uncalibrated"]
    adder = c["lut_per_adder_bit_uncalibrated"]
    # requantiser: one acc × 16 multiply and a rounding adder per column
    dsp = dsp + cols * _mults(acc, np.full_like(acc, REQUANT_MULT_BITS), c)
    lut = lut + cols * acc * adder
    ff = ff + cols * acc
    # kn2row shift-and-add: one accumulator adder per column (always present)
    lut = lut + cols * acc * adder
    ff = ff + cols * acc
    # Winograd transforms: per input lane (one per row) the B^T d B adders at a_width, per
    # output lane (one per column) the A^T M A adders at acc_width, one register stage each
    for m, (adds_in, adds_out) in WINOGRAD_ADDS.items():
        has = hw.winograd_m == m
        t2 = (m + 2) ** 2
        lut = lut + has * (rows * adds_in * a + cols * adds_out * acc) * adder
        ff = ff + has * (rows * t2 * a + cols * m * m * acc)
    # FFT and IFFT engines: a complex multiplier and butterfly adders each, plus an N² tile
    # memory of complex words (two halves of a_width bits) in block RAM
    has_fft = hw.fft_size > 0
    dsp = dsp + has_fft * 2 * c["fft_engine_dsp_uncalibrated"]
    lut = lut + has_fft * 2 * c["fft_engine_lut_uncalibrated"]
    ff = ff + has_fft * 2 * 6 * 2 * a
    fft_kib = hw.fft_size ** 2 * 2 * a / 8 / 1024
    fft_bram = has_fft * 2 * np.maximum(_cdiv(fft_kib * 8, c["bram_data_kbits"]), 1)
    bram = (_blocks(hw.act_buffer_kib, rows * a, c) + _blocks(hw.weight_buffer_kib, cols * b, c)
            + _blocks(hw.out_buffer_kib, cols * acc, c) + fft_bram)
    return Resources(dsp=np.asarray(dsp, dtype=np.int64),
                     lut=np.ceil(lut).astype(np.int64),
                     ff=np.ceil(ff).astype(np.int64),
                     bram_blocks=np.asarray(np.ceil(bram), dtype=np.int64))
