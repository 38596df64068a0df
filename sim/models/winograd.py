"""Winograd minimal filtering F(m×m, 3×3) for m = 2 (exact) and m = 4 (quantised weights).

One output tile Y (m×m) from an input tile d ((m+2)×(m+2)) and a 3×3 kernel g:
Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A, summed over input channels inside the brackets.
Bᵀ and Aᵀ are integer matrices for both variants, so the input and output transforms
(rtl/winograd.py) are exact integer adders.  G is not:

- F(2×2, 3×3): 2·G is integer, so the compiler stores U' = (2G) g (2G)ᵀ = 4·U exactly, the
  array accumulates Σ_c U'⊙V, and the output transform divides Aᵀ M A by 4 exactly (an
  arithmetic shift by 2: the sum is a multiple of 4).  Widths for int8 (|d| ≤ 128):
  V ∈ [−512, 510] → 10-bit signed inputs; |U'| ≤ 3·3·128 = 1152 →
  12-bit signed weights.  Bit-exact with direct convolution.
- F(4×4, 3×3): G has denominators up to 24, so U = G g Gᵀ is stored quantised,
  U_q = round_half_up(U · 2^f) (exactly computed from the integer 576·U = (24G) g (24G)ᵀ);
  the output transform rounds Aᵀ M A / 2^f half up.  Error bound, per output element
  (tested):  |Y_q − Y| ≤ 2^−(f+1) · (|Aᵀ| (Σ_c |V_c|) |A|) + 1/2, i.e. at most
  floor of that since both are integers.  |U| ≤ 128 for int8 kernels (row sums of |G| ≤ 1),
  so U_q needs 8 + f + 1 bits signed; |V| ≤ 10·10·128 = 12800 → 15-bit signed inputs.

Only stride 1, dilation 1, groups 1 layers run on Winograd; the functions refuse others.
:func:`winograd_conv` takes 3×3 kernels; :func:`winograd_piecewise_conv` is the golden model of
a larger k×k kernel as the datapath runs it: cut into ⌈k/3⌉² zero-padded 3×3 pieces whose
transformed products are summed before one (rounding, for m = 4) output transform.
"""

from __future__ import annotations

import numpy as np

from sim.models.conv import conv_out_size, pad_chw, pair

__all__ = ["BT", "AT", "G_SCALED", "G_DENOM", "tile_size", "input_transform",
           "output_transform", "transform_weights", "winograd_conv", "winograd_piecewise_conv",
           "winograd_error_bound", "winograd_worst_case_error"]

#: Input transforms Bᵀ ((m+2)×(m+2)), integer.
BT = {
    2: np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.int64),
    4: np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                 [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
                dtype=np.int64),
}
#: Output transforms Aᵀ (m×(m+2)), integer.
AT = {
    2: np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.int64),
    4: np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                 [0, 1, -1, 8, -8, 1]], dtype=np.int64),
}
#: G_DENOM[m] · G: the integer weight transforms (G = G_SCALED / G_DENOM).
G_SCALED = {
    2: np.array([[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]], dtype=np.int64),
    4: np.array([[6, 0, 0], [-4, -4, -4], [-4, 4, -4], [1, 2, 4], [1, -2, 4], [0, 0, 24]],
                dtype=np.int64),
}
G_DENOM = {2: 2, 4: 24}


def _check_m(m: int) -> None:
    if m not in (2, 4):
        raise ValueError(f"m must be 2 or 4, not {m!r}")


def tile_size(m: int) -> int:
    """Input tile side m + 2 for a 3×3 kernel."""
    _check_m(m)
    return m + 2


def input_transform(d: np.ndarray, m: int) -> np.ndarray:
    """V = Bᵀ d B over the last two axes (exact int64)."""
    _check_m(m)
    bt = BT[m]
    return bt @ np.asarray(d, dtype=np.int64) @ bt.T


def output_transform(acc: np.ndarray, m: int, frac_bits: int | None = None) -> np.ndarray:
    """Y = Aᵀ M A scaled back: exact ÷4 for m = 2, round-half-up ÷2^f for m = 4."""
    _check_m(m)
    at = AT[m]
    y = at @ np.asarray(acc, dtype=np.int64) @ at.T
    shift = 2 if m == 2 else frac_bits
    if shift is None:
        raise ValueError("frac_bits must be given for m = 4")
    if m == 2:
        return y >> 2                       # exact: y is a multiple of 4
    return (y + (1 << (shift - 1))) >> shift if shift else y


def transform_weights(w: np.ndarray, m: int, frac_bits: int | None = None) -> np.ndarray:
    """Weights N×C×3×3 → transformed N×C×(m+2)×(m+2), as the compiler stores them.

    m = 2: U' = (2G) g (2G)ᵀ = 4U exactly.  m = 4: U_q = round_half_up(U · 2^frac_bits),
    computed exactly from 576·U in integers.
    """
    _check_m(m)
    w = np.asarray(w, dtype=np.int64)
    if w.shape[-2:] != (3, 3):
        raise ValueError(f"kernel must be 3×3, not {w.shape[-2]}×{w.shape[-1]}")
    gs = G_SCALED[m]
    scaled = gs @ w @ gs.T                  # G_DENOM² · U, exact
    if m == 2:
        return scaled
    if frac_bits is None or frac_bits < 0:
        raise ValueError(f"frac_bits must be a non-negative integer, not {frac_bits!r}")
    den = G_DENOM[m] ** 2
    return (scaled * (1 << frac_bits) + den // 2) // den     # floor(x + 1/2), exact


def _tiles(x: np.ndarray, padding, m: int):
    ph, pw = pair(padding, "padding")
    c, h, w = x.shape
    oh, ow = conv_out_size(h, 3, 1, ph, 1), conv_out_size(w, 3, 1, pw, 1)
    th, tw = -(-oh // m), -(-ow // m)
    xp = pad_chw(x, padding)
    full = np.zeros((c, th * m + 2, tw * m + 2), dtype=np.int64)
    full[:, :xp.shape[1], :xp.shape[2]] = xp[:, :th * m + 2, :tw * m + 2]
    t = m + 2
    iy = (np.arange(th) * m)[:, None] + np.arange(t)[None, :]   # th × t
    ix = (np.arange(tw) * m)[:, None] + np.arange(t)[None, :]
    d = full[:, iy[:, None, :, None], ix[None, :, None, :]]      # c, th, tw, t, t
    return d, oh, ow, th, tw


def winograd_conv(x, w, padding=0, m: int = 2, frac_bits: int = 8) -> np.ndarray:
    """3×3 stride-1 convolution by F(m×m, 3×3) tiles; int64 N×OH×OW.

    Exact for m = 2; for m = 4 within :func:`winograd_error_bound` of the exact result.
    """
    _check_m(m)
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    if w.shape[1] != x.shape[0]:
        raise ValueError(f"channels must match: x has {x.shape[0]}, w has {w.shape[1]} "
                         "(Winograd runs groups = 1 only)")
    d, oh, ow, th, tw = _tiles(x, padding, m)
    v = input_transform(d, m)                                   # c, th, tw, t, t
    u = transform_weights(w, m, frac_bits)                      # n, c, t, t
    acc = np.einsum("nckl,cijkl->nijkl", u, v)                  # the (m+2)² GEMMs
    y = output_transform(acc, m, frac_bits)                     # n, th, tw, m, m
    n = w.shape[0]
    out = y.transpose(0, 1, 3, 2, 4).reshape(n, th * m, tw * m)
    return out[:, :oh, :ow]


def winograd_piecewise_conv(x, w, pads, m: int = 4, frac_bits: int | None = None
                            ) -> np.ndarray:
    """k×k stride-1 convolution by F(m×m, 3×3) on 3×3 pieces of the kernel; int64 N×OH×OW.

    The kernel is zero-padded to 3⌈kh/3⌉ × 3⌈kw/3⌉ and cut into 3×3 pieces; piece (a, b)
    sees the input tiles shifted by (3a, 3b).  The transformed products of every piece and
    channel are summed in the transformed domain and go through *one* output transform, so
    F(4×4,3×3) rounds once per output, as the datapath does (its accumulator holds the sum
    over the pieces).  Exact for m = 2.

    Parameters
    ----------
    x:
        Input C×H×W (integers).
    w:
        Weights N×C×kh×kw (groups = 1).
    pads:
        Zero padding ``(top, left, bottom, right)``.
    m:
        Output tile side: 2 or 4.
    frac_bits:
        F(4×4) weight fraction bits (required for m = 4).
    """
    _check_m(m)
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    if w.shape[1] != x.shape[0]:
        raise ValueError(f"channels must match: x has {x.shape[0]}, w has {w.shape[1]} "
                         "(Winograd runs groups = 1 only)")
    top, left, bottom, right = (int(v) for v in pads)
    c, h, wd = x.shape
    n, _, kh, kw = w.shape
    oh, ow = h + top + bottom - kh + 1, wd + left + right - kw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"a {kh}×{kw} kernel does not fit the padded {h}×{wd} input")
    ph, pw = -(-kh // 3), -(-kw // 3)
    th, tw = -(-oh // m), -(-ow // m)
    t = m + 2
    full = np.zeros((c, th * m + 3 * (ph - 1) + t, tw * m + 3 * (pw - 1) + t), dtype=np.int64)
    hh = min(h, full.shape[1] - top)
    ww = min(wd, full.shape[2] - left)
    full[:, top:top + hh, left:left + ww] = x[:, :hh, :ww]
    big = np.zeros((n, c, 3 * ph, 3 * pw), dtype=np.int64)
    big[:, :, :kh, :kw] = w
    acc = np.zeros((n, th, tw, t, t), dtype=np.int64)
    for a in range(ph):
        for b in range(pw):
            iy = (np.arange(th) * m + 3 * a)[:, None] + np.arange(t)[None, :]
            ix = (np.arange(tw) * m + 3 * b)[:, None] + np.arange(t)[None, :]
            d = full[:, iy[:, None, :, None], ix[None, :, None, :]]   # c, th, tw, t, t
            v = input_transform(d, m)
            u = transform_weights(big[:, :, 3 * a:3 * a + 3, 3 * b:3 * b + 3], m, frac_bits)
            acc = acc + np.einsum("nckl,cijkl->nijkl", u, v)
    y = output_transform(acc, m, frac_bits)                           # n, th, tw, m, m
    return y.transpose(0, 1, 3, 2, 4).reshape(n, th * m, tw * m)[:, :oh, :ow]


def winograd_error_bound(x, padding=0, m: int = 4, frac_bits: int = 8) -> np.ndarray:
    """Data-dependent bound on |winograd_conv − conv2d| per output (1×OH×OW, any filter).

    Weight quantisation error is at most 2^−(f+1) per entry of U, so the error before the
    output rounding is at most 2^−(f+1)·(|Aᵀ| Σ_c|V_c| |A|); the rounding adds at most 1/2.
    Both results are integers, so the floor of the sum bounds the difference.  For m = 2 the
    bound is 0.
    """
    _check_m(m)
    x = np.asarray(x, dtype=np.int64)
    d, oh, ow, th, tw = _tiles(x, padding, m)
    if m == 2:
        return np.zeros((1, oh, ow), dtype=np.int64)
    vabs = np.abs(input_transform(d, m)).sum(axis=0)           # th, tw, t, t
    at = np.abs(AT[m])
    s = at @ vabs @ at.T                                          # th, tw, m, m
    bound = np.floor(s / 2.0 ** (frac_bits + 1) + 0.5).astype(np.int64)
    out = bound.transpose(0, 2, 1, 3).reshape(1, th * m, tw * m)
    return out[:, :oh, :ow]


def winograd_worst_case_error(channels: int, frac_bits: int, in_bits: int = 8) -> int:
    """Input-independent bound for F(4×4,3×3): all |d| at the signed in_bits extreme."""
    bt = np.abs(BT[4])
    at = np.abs(AT[4])
    vmax = bt.sum(axis=1)[:, None] * bt.sum(axis=1)[None, :] * (1 << (in_bits - 1))
    s = (at @ (vmax * channels) @ at.T).max()
    return int(np.floor(s / 2.0 ** (frac_bits + 1) + 0.5))
