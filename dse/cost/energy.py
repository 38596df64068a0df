"""Energy of each (layer, choice, hardware point) in picojoules.

Per-operation and per-access energies come from one cited table, :data:`ENERGY_PJ`:

    M. Horowitz, "Computing's energy problem (and what we can do about it)", IEEE ISSCC 2014,
    pp. 10-14 (45 nm, 0.9 V): integer add 8 bit 0.03 pJ, 32 bit 0.1 pJ; integer multiply
    8 bit 0.2 pJ, 32 bit 3.1 pJ; one 64-bit SRAM access 10 pJ (8 KB), 20 pJ (32 KB), 100 pJ
    (1 MB); one 64-bit DRAM access 1.3-2.6 nJ.

Scaling rules (ours, stated so they can be checked against the table):

* multiply: 0.2 pJ × (a_bits·b_bits)/64 -- an array multiplier's energy grows with its
  partial products; it gives 3.2 pJ at 32×32 against the table's 3.1.
* add: 0.1 pJ × bits/32 (0.025 pJ at 8 bits against 0.03).
* SRAM: 10 pJ per 64 bits × sqrt(KiB/8) -- 20 pJ at 32 KB exactly, 113 pJ at 1 MB against
  100; charged per byte (÷8) at the capacity of the buffer being read.
* DRAM: the middle of the range, 1.95 nJ per 64 bits = 243.75 pJ per byte.

These are ASIC figures.  On an FPGA the same logic takes more dynamic energy: Kuon and Rose,
"Measuring the gap between FPGAs and ASICs", IEEE TCAD 26(2), 2007, measured about 14× for
logic-only circuits (less where hard DSP and RAM blocks are used), so every on-chip dynamic
energy is multiplied by ``fpga_factor`` = 14 (an upper estimate, kept in the table so power
measurements can recalibrate it).  DRAM is off the FPGA and is not scaled.  Static energy is
the board's ``static_power_w`` times the latency.

What is counted per layer: the array's multiplies and accumulator adds (transformed-domain
products for Winograd and FFT); buffer reads and writes by dataflow (SCALE-Sim's operand
reuse: the stationary operand is read once per fold, the streaming one once per fold of the
other dimension, partial sums read and written once per fold of K for ws and is); DRAM
traffic; the transform units' adds (Winograd B^T d B and A^T M A counted from the non-zeros
of the matrices, FFT butterflies, kn2row shift-and-add, requantisation); and static power.
"""

from __future__ import annotations

import numpy as np

from rtl.params import Algorithm

__all__ = ["ENERGY_PJ", "mult_pj", "add_pj", "sram_pj_per_byte", "dram_pj_per_byte",
           "access_counts", "point_energies", "transform_ops", "static_energy_pj",
           "WINOGRAD_ADDS", "DRAM_PJ_PER_BYTE"]

#: The cited per-operation table (Horowitz, ISSCC 2014, 45 nm) and the FPGA factor.
ENERGY_PJ = {
    "add8": 0.03, "add32": 0.1,            # integer add
    "mult8": 0.2, "mult32": 3.1,           # integer multiply
    "sram64_8kb": 10.0,                    # one 64-bit read of an 8 KB SRAM
    "sram64_32kb": 20.0,
    "sram64_1mb": 100.0,
    "dram64_low": 1300.0, "dram64_high": 2600.0,   # one 64-bit DRAM access
    "fpga_factor": 14.0,                   # Kuon & Rose 2007, FPGA/ASIC dynamic power
}

#: Winograd adds, m -> (input B^T d B per tile and channel, output side per tile and filter).
#: Input: a 1-D transform of a vector costs nnz - rows adds, and the 2-D one applies it to
#: every column and then every row; F(2,3): B^T has 8 non-zeros in 4 rows (4 adds per 1-D):
#: 2·4·4 = 32; F(4,3): 22 non-zeros in 6 rows (16 adds): 2·6·16 = 192 (constant multiplies
#: by 2, 4, 5, 8 are shift-adds).  Output: the accumulator adds every position's term into
#: every output element it reaches (rtl.winograd.OutputAccumulator), nnz(A^T)² adds:
#: 6² = 36 for F(2,3), 18² = 324 for F(4,3).
WINOGRAD_ADDS = {2: (32, 36), 4: (192, 324)}

_ALGOS = list(Algorithm)


def mult_pj(a_bits, b_bits):
    """ASIC energy of one a_bits × b_bits multiply (pJ)."""
    return ENERGY_PJ["mult8"] * a_bits * b_bits / 64.0


def add_pj(bits):
    """ASIC energy of one ``bits``-wide add (pJ)."""
    return ENERGY_PJ["add32"] * bits / 32.0


def sram_pj_per_byte(kib, xp=np):
    """ASIC energy of one byte read from (or written to) a ``kib`` KiB SRAM (pJ)."""
    return ENERGY_PJ["sram64_8kb"] / 8.0 * xp.sqrt(kib / 8.0)


def dram_pj_per_byte():
    """Energy of one byte of DRAM traffic (pJ): the middle of Horowitz's range."""
    return (ENERGY_PJ["dram64_low"] + ENERGY_PJ["dram64_high"]) / 2.0 / 8.0


#: :func:`dram_pj_per_byte` as a constant (243.75 pJ).
DRAM_PJ_PER_BYTE = dram_pj_per_byte()


def _cdiv(a, b):
    return -(-a // b)


def access_counts(shapes, choices, points, xp=np):
    """Buffer element accesses of the array per layer, ``(a_reads, b_reads, out_moves)``.

    Each is ``(L, C, U)`` over the array shapes ``points`` (anything with ``column("rows")``
    and ``column("cols")``), summed over the layer's GEMMs.  SCALE-Sim's operand reuse: os
    holds M×N on the array (A read once per column fold, B once per row fold, outputs
    written once); ws holds K×N (B read once, A once per column fold, partial sums read and
    written once per row fold of K); is holds K×M (A once, B once per column fold of M,
    partial sums as ws).
    """
    rows, cols = points.column("rows", xp), points.column("cols", xp)
    m, k, n, cnt = shapes.m, shapes.k, shapes.n, shapes.count
    flow = choices.column("dataflow", xp)
    a_reads = xp.where(flow == 2, m * k, m * k * _cdiv(n, cols))
    b_reads = xp.where(flow == 0, k * n, k * n * _cdiv(m, xp.where(flow == 1, rows, cols)))
    o_moves = xp.where(flow == 1, m * n, 2 * m * n * _cdiv(k, rows))
    return cnt * a_reads, cnt * b_reads, cnt * o_moves


def point_energies(hardware) -> dict:
    """Per-point energy coefficients in pJ, each a numpy ``(P,)`` array (FPGA-scaled).

    ``mac`` (multiply + accumulator add), ``a_elem``/``b_elem``/``o_elem`` (one array operand
    or accumulator moved through its buffer), ``a_byte``/``b_byte``/``o_byte`` (one byte
    written into a buffer from DRAM or read out of it to DRAM), ``add`` (one accumulator-wide
    add), ``requant`` (one output requantised).  Static energy: :func:`static_energy_pj`.
    """
    f = ENERGY_PJ["fpga_factor"]
    a_w = hardware.a_width.astype(np.float64)
    b_w = hardware.b_width.astype(np.float64)
    acc = hardware.acc_width.astype(np.float64)
    e_a = f * sram_pj_per_byte(hardware.act_buffer_kib.astype(np.float64))
    e_b = f * sram_pj_per_byte(hardware.weight_buffer_kib.astype(np.float64))
    e_o = f * sram_pj_per_byte(hardware.out_buffer_kib.astype(np.float64))
    return {"mac": f * (mult_pj(a_w, b_w) + add_pj(acc)),
            "a_elem": np.ceil(a_w / 8) * e_a, "b_elem": np.ceil(b_w / 8) * e_b,
            "o_elem": np.ceil(acc / 8) * e_o, "a_byte": e_a, "b_byte": e_b, "o_byte": e_o,
            "add": f * add_pj(acc), "requant": f * (mult_pj(acc, 16) + add_pj(acc))}


def transform_ops(layers, choices, shapes, precision=8, xp=np):
    """Work of the units around the array, ``(adds, fixed_pj, outputs)``.

    ``adds`` ``(L, C, 1)``: accumulator-wide adds (Winograd transforms, kn2row shift-and-add);
    ``fixed_pj`` ``(L, C, 1)``: FPGA-scaled energy of the FFT butterflies (at the fixed
    spectral width p+8); ``outputs`` ``(L, 1, 1)``: outputs through the requantiser.
    """
    col = lambda name: layers.column(name, xp)  # noqa: E731
    c_in, c_out = col("c_in"), col("c_out")
    algo = choices.column("algo", xp)
    m_w = choices.column("wino_m", xp)
    n_f = xp.maximum(choices.column("fft_n", xp), 4.0)
    # Winograd: input transform per (tile, piece, input channel), output per (tile, filter)
    add_in = xp.where(m_w == 4, float(WINOGRAD_ADDS[4][0]), float(WINOGRAD_ADDS[2][0]))
    add_out = xp.where(m_w == 4, float(WINOGRAD_ADDS[4][1]), float(WINOGRAD_ADDS[2][1]))
    wino = shapes.tiles * shapes.pieces * c_in * add_in + shapes.tiles * c_out * add_out
    # kn2row: one accumulator add per partial sum landed (R·S·Hin·Win·Cout)
    kn2row = col("kh") * col("kw") * col("h_in") * col("w_in") * c_out
    is_wino = algo == _ALGOS.index(Algorithm.WINOGRAD)
    # the sparse spectral path runs the same forward and inverse transforms
    is_fft = xp.logical_or(algo == _ALGOS.index(Algorithm.FFT),
                           algo == _ALGOS.index(Algorithm.SPARSE_FFT))
    adds = xp.where(is_wino, wino,
                    xp.where(algo == _ALGOS.index(Algorithm.KN2ROW), kn2row, 0.0))
    # FFT: N² log2 N radix-2 butterflies per 2-D transform, each one complex multiply (4 real
    # multiplies, 2 adds) and two complex adds (4 adds), at the spectral width p+8
    log2n = 2.0 + xp.where(n_f >= 8, 1.0, 0.0) + xp.where(n_f >= 16, 1.0, 0.0)
    bfly = n_f * n_f * log2n * shapes.tiles * (c_in + c_out)
    wide = precision + 8
    fixed = xp.where(is_fft, bfly * ENERGY_PJ["fpga_factor"]
                     * (4 * mult_pj(wide, wide) + 6 * add_pj(wide)), 0.0)
    return adds, fixed, c_out * col("h_out") * col("w_out")


def static_energy_pj(cycles, hardware):
    """Static energy (pJ) over ``cycles`` clock cycles: P_static · cycles / f."""
    return cycles * (hardware.static_power_w * 1e6 / hardware.clock_mhz)
