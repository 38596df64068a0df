"""On-chip cycles of each (layer, choice, hardware point): the array's GEMMs and the units
around it.

Every algorithm is a set of identical GEMMs C[M×N] = A[M×K]·B[K×N] on the systolic array
(A activations, B weights), fed and drained by its transform units:

=========  ==========================  ===========  ===========  ===========================
algorithm  M                           K            N            GEMMs
=========  ==========================  ===========  ===========  ===========================
im2col     Ho·Wo                       kh·kw·Cin/g  Cout/g       g
kn2row     Hin·Win (every input pixel)  Cin/g        Cout/g       g·kh·kw
Winograd   ceil(Ho/m)·ceil(Wo/m)        Cin          Cout         (m+2)²·ceil(k/3)²
FFT        ceil((Ho+kh-1)/(N-kh+1))·    Cin          Cout         3·N·(N/2+1)
           ceil((Wo+kw-1)/(N-kw+1))
=========  ==========================  ===========  ===========  ===========================

* kn2row runs its R·S 1×1 products over every input pixel because the shift-and-add unit
  streams all of them and drops those between strided outputs
  (:func:`dse.cost.transforms.kn2row_shift_add_cycles`); for stride 1 and "same" padding
  Hin·Win = Ho·Wo.
* Winograd kernels larger than 3×3 are split into ceil(k/3)² 3×3 pieces (module
  :mod:`dse.cost.choices`); each piece is (m+2)² more GEMMs over the same tiles.
* FFT: overlap-and-add tiles of N−kh+1 input pixels cover the padded input (Ho+kh−1 rows),
  as ``rtl/spectral.py`` runs them; a real tile's spectrum is Hermitian, so the datapath
  computes the N·(N/2+1) bins with v ≤ N/2 and mirrors the rest; each is one complex GEMM of 3
  real GEMMs by Gauss's trick (:data:`dse.cost.choices.REAL_PRODUCTS_PER_COMPLEX`).

Cycles of one GEMM come from :func:`dse.cost.gemm.gemm_cycles` only (the RTL-verified
formula is the single source of truth), and ``compute_cycles`` = GEMMs × that.  The GEMM is
the whole layer's: the engine's sequencer runs the array's folds back to back across buffer
tiles, so buffer tiling changes DRAM traffic, not array cycles.

The transform units run beside the array on double-buffered tiles, so a layer's on-chip
time is the slowest of the three stages: ``max(compute, front, back)``.  ``transform_cycles``
is the busier of front and back.  Front: the im2col window generator's latency, nothing for
kn2row, the Winograd input transform (``rows`` lanes, one per array row it feeds), the FFT
unit (one engine, input tiles × Cin).  Back: the requantiser (one word of ``cols``
accumulators per cycle) and, behind it, the kn2row shift-and-add (``cols`` filters per
word), the Winograd output transform (``cols`` lanes) or the IFFT (output tiles × Cout).
"""

from __future__ import annotations

import numpy as np

from dse.cost import gemm as _gemm
from dse.cost import transforms as tf
from dse.cost.choices import REAL_PRODUCTS_PER_COMPLEX
from rtl.params import Algorithm

__all__ = ["GemmShapes", "gemm_shapes", "array_cycles", "transform_cycles"]

_ALGOS = list(Algorithm)


def _cdiv(a, b):
    return -(-a // b)


class GemmShapes:
    """GEMM decomposition of every (layer, choice), arrays of shape ``(L, C, 1)``.

    Members
    -------
    m, k, n: GEMM dimensions.
    count: number of such GEMMs per layer.
    tiles: output tiles (Winograd, FFT), output pixels (im2col) or input pixels (kn2row).
    pieces: Winograd 3×3 pieces per kernel (1 elsewhere).
    """

    def __init__(self, m, k, n, count, tiles, pieces):
        self.m, self.k, self.n, self.count = m, k, n, count
        self.tiles, self.pieces = tiles, pieces

    @property
    def macs(self):
        """MACs the array performs (transformed-domain products for Winograd and FFT)."""
        return self.count * self.m * self.k * self.n


def _masks(choices, xp):
    algo = choices.column("algo", xp)
    return tuple(algo == _ALGOS.index(a) for a in
                 (Algorithm.IM2COL, Algorithm.KN2ROW, Algorithm.WINOGRAD, Algorithm.FFT))


def gemm_shapes(layers, choices, xp=np) -> GemmShapes:
    """The GEMMs of each (layer, choice) (table in the module docstring).

    Entries of illegal pairs are finite placeholders; :func:`dse.cost.choices.legal_mask`
    says which to ignore.
    """
    col = lambda name: layers.column(name, xp)  # noqa: E731
    c_in, c_out, g = col("c_in"), col("c_out"), col("groups")
    kh, kw, ho, wo = col("kh"), col("kw"), col("h_out"), col("w_out")
    is_im2col, is_kn2row, is_wino, _ = _masks(choices, xp)
    m_w = xp.maximum(choices.column("wino_m", xp), 1.0)
    n_f = choices.column("fft_n", xp)
    # Winograd F(m×m, 3×3) on ceil(k/3)² pieces of a k×k kernel
    pieces = _cdiv(kh, 3.0) * _cdiv(kw, 3.0)
    w_tiles = _cdiv(ho, m_w) * _cdiv(wo, m_w)
    # FFT overlap-and-add: input tiles of (N-kh+1)×(N-kw+1) pixels over the padded input
    step_h = xp.maximum(n_f - kh + 1, 1.0)
    step_w = xp.maximum(n_f - kw + 1, 1.0)
    f_tiles = _cdiv(ho + kh - 1, step_h) * _cdiv(wo + kw - 1, step_w)
    bins = n_f * (n_f // 2 + 1)
    pix_out = ho * wo
    pix_in = col("h_in") * col("w_in")

    def pick(v_im2col, v_kn2row, v_wino, v_fft):
        return xp.where(is_im2col, v_im2col,
                        xp.where(is_kn2row, v_kn2row, xp.where(is_wino, v_wino, v_fft)))

    m = pick(pix_out, pix_in, w_tiles, f_tiles)
    k = pick(kh * kw * c_in / g, c_in / g, c_in, c_in)
    n = pick(c_out / g, c_out / g, c_out, c_out)
    count = pick(g, g * kh * kw, (m_w + 2) ** 2 * pieces, REAL_PRODUCTS_PER_COMPLEX * bins)
    pieces = xp.where(is_wino, pieces, 1.0)
    return GemmShapes(m, k, n, count, m, pieces)


def _breakdown(m, k, n, rows, cols, dataflow, xp):
    """Total and fill/drain cycles of one GEMM, both from :mod:`dse.cost.gemm`."""
    split = getattr(_gemm, "gemm_cycle_breakdown", None)
    if split is not None:
        parts = split(m, k, n, rows, cols, dataflow, xp=xp)
        return parts["cycles"], parts["fill_drain"]
    total = _gemm.gemm_cycles(m, k, n, rows, cols, dataflow, xp=xp)
    # Without a breakdown: the array streams the temporal operand one element per cycle per
    # fold, so cycles are affine in the temporal extent t (SCALE-Sim's assignment: ws t = M,
    # os t = K, is t = N) and fill/drain = 2·cycles(t) - cycles(2t).
    two_m = xp.where(dataflow == 0, 2 * m, m)
    two_k = xp.where(dataflow == 1, 2 * k, k)
    two_n = xp.where(dataflow == 2, 2 * n, n)
    doubled = _gemm.gemm_cycles(two_m, two_k, two_n, rows, cols, dataflow, xp=xp)
    return total, 2 * total - doubled


def array_cycles(shapes: GemmShapes, choices, hardware, xp=np, fill_drain=True):
    """Array cycles ``(L, C, P)`` of every layer's GEMMs, and the fill/drain part of them.

    Returns ``(compute_cycles, fill_drain_cycles)``; the second is ``None`` when
    ``fill_drain`` is false (it costs a second pass of the GEMM formula).
    """
    rows, cols = hardware.column("rows", xp), hardware.column("cols", xp)
    flow = choices.column("dataflow", xp)
    if fill_drain:
        total, fill = _breakdown(shapes.m, shapes.k, shapes.n, rows, cols, flow, xp)
        return shapes.count * total, shapes.count * fill
    total = _gemm.gemm_cycles(shapes.m, shapes.k, shapes.n, rows, cols, flow, xp=xp)
    return shapes.count * total, None


def transform_cycles(layers, choices, shapes: GemmShapes, hardware, xp=np):
    """Cycles of the front and back units, ``(front, back)``, each ``(L, C, P)`` or smaller.

    Formulas from :mod:`dse.cost.transforms` (H7's units), lanes as in the module docstring.
    """
    col = lambda name: layers.column(name, xp)  # noqa: E731
    rows, cols = hardware.column("rows", xp), hardware.column("cols", xp)
    c_in, c_out = col("c_in"), col("c_out")
    kh, kw, ho, wo = col("kh"), col("kw"), col("h_out"), col("w_out")
    is_im2col, is_kn2row, is_wino, is_fft = _masks(choices, xp)
    m_w = xp.maximum(choices.column("wino_m", xp), 1.0)
    n_f = xp.maximum(choices.column("fft_n", xp), 4.0)
    filter_words = _cdiv(c_out, cols)
    requant = tf.requant_cycles(ho * wo * filter_words, xp=xp)
    im2col_front = tf.im2col_overhead_cycles(ho, wo, kh, kw, c_in, xp=xp)
    wino_front = tf.winograd_input_transform_cycles(shapes.tiles * shapes.pieces, c_in, m_w,
                                                    lanes=rows, xp=xp)
    wino_back = tf.winograd_output_transform_cycles(shapes.tiles, c_out, m_w, lanes=cols,
                                                    xp=xp)
    fft_front = tf.fft2d_cycles(n_f, shapes.tiles, c_in, xp=xp)
    fft_back = tf.fft2d_cycles(n_f, shapes.tiles, c_out, xp=xp)
    kn2row_back = tf.kn2row_shift_add_cycles(col("h_in"), col("w_in"), kh, kw, ho, wo,
                                             filter_words, xp=xp)
    front = xp.where(is_im2col, im2col_front,
                     xp.where(is_wino, wino_front, xp.where(is_fft, fft_front, 0.0)))
    back = xp.where(is_kn2row, kn2row_back,
                    xp.where(is_wino, wino_back, xp.where(is_fft, fft_back, 0.0)))
    return front, xp.maximum(back, requant)
