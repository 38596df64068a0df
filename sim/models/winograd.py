"""Winograd minimal filtering F(m×m, 3×3) for m = 2 and m = 4, both bit-exact.

One output tile Y (m×m) from an input tile d ((m+2)×(m+2)) and a 3×3 kernel g:
Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A, summed over input channels inside the brackets.
Bᵀ and Aᵀ are integer matrices for both variants, so the input and output transforms
(rtl/winograd.py) are exact integer adders.  G is not:

- F(2×2, 3×3): 2·G is integer, so the compiler stores U' = (2G) g (2G)ᵀ = 4·U exactly, the
  array accumulates Σ_c U'⊙V, and the output transform divides Aᵀ M A by 4 exactly (an
  arithmetic shift by 2: the sum is a multiple of 4).  Widths for int8 (|d| ≤ 128):
  V ∈ [−512, 510] → 10-bit signed inputs; |U'| ≤ 3·3·128 = 1152 →
  12-bit signed weights.  Bit-exact with direct convolution.
- F(4×4, 3×3): G has denominators up to 24, so the compiler stores U' = (24G) g (24G)ᵀ =
  576·U, integers; the array accumulates Σ_c U'⊙V and the output transform divides Aᵀ M A by
  576 exactly (an arithmetic shift by 6, then an exact division by 9: the sum is a multiple of
  576).  Widths for int8: |U'| ≤ 24·24·128 = 73728 → 18-bit signed weights; |V| ≤
  10·10·128 = 12800 → 15-bit signed inputs; each product is one 15×18 multiply.  Bit-exact
  with direct convolution.

Only stride 1, dilation 1, groups 1 layers run on Winograd; the functions refuse others.
:func:`winograd_conv` takes 3×3 kernels; :func:`winograd_piecewise_conv` is the golden model of
a larger k×k kernel as the datapath runs it: cut into ⌈k/3⌉² zero-padded 3×3 pieces whose
transformed products are summed before one (rounding, for m = 4) output transform.
"""

from __future__ import annotations

import numpy as np

from sim.models.conv import conv_out_size, pad_chw, pair

__all__ = ["BT", "AT", "G_SCALED", "G_DENOM", "tile_size", "input_transform",
           "output_transform", "transform_weights", "winograd_conv", "winograd_piecewise_conv"]

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


def output_transform(acc: np.ndarray, m: int) -> np.ndarray:
    """Y = Aᵀ M A divided by the weights' scale G_DENOM² (4 or 576), exactly.

    Raises ValueError if Aᵀ M A is not a multiple of the scale (the accumulations did not
    come from transformed weights).
    """
    _check_m(m)
    at = AT[m]
    y = at @ np.asarray(acc, dtype=np.int64) @ at.T
    den = G_DENOM[m] ** 2
    if np.any(y % den):
        raise ValueError(f"Aᵀ M A must be a multiple of {den} (weights transformed with "
                         f"{G_DENOM[m]}·G)")
    return y // den


def transform_weights(w: np.ndarray, m: int) -> np.ndarray:
    """Weights N×C×3×3 → transformed N×C×(m+2)×(m+2), as the compiler stores them:
    U' = (G_DENOM·G) g (G_DENOM·G)ᵀ = G_DENOM²·U, exact integers (4·U for m = 2, 576·U
    for m = 4)."""
    _check_m(m)
    w = np.asarray(w, dtype=np.int64)
    if w.shape[-2:] != (3, 3):
        raise ValueError(f"kernel must be 3×3, not {w.shape[-2]}×{w.shape[-1]}")
    gs = G_SCALED[m]
    return gs @ w @ gs.T


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


def winograd_conv(x, w, padding=0, m: int = 2) -> np.ndarray:
    """3×3 stride-1 convolution by F(m×m, 3×3) tiles; int64 N×OH×OW, exact."""
    _check_m(m)
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    if w.shape[1] != x.shape[0]:
        raise ValueError(f"channels must match: x has {x.shape[0]}, w has {w.shape[1]} "
                         "(Winograd runs groups = 1 only)")
    d, oh, ow, th, tw = _tiles(x, padding, m)
    v = input_transform(d, m)                                   # c, th, tw, t, t
    u = transform_weights(w, m)                                 # n, c, t, t
    acc = np.einsum("nckl,cijkl->nijkl", u, v)                  # the (m+2)² GEMMs
    y = output_transform(acc, m)                                # n, th, tw, m, m
    n = w.shape[0]
    out = y.transpose(0, 1, 3, 2, 4).reshape(n, th * m, tw * m)
    return out[:, :oh, :ow]


def winograd_piecewise_conv(x, w, pads, m: int = 4) -> np.ndarray:
    """k×k stride-1 convolution by F(m×m, 3×3) on 3×3 pieces of the kernel; int64 N×OH×OW.

    The kernel is zero-padded to 3⌈kh/3⌉ × 3⌈kw/3⌉ and cut into 3×3 pieces; piece (a, b)
    sees the input tiles shifted by (3a, 3b).  The transformed products of every piece and
    channel are summed in the transformed domain and go through *one* output transform, as
    the datapath does (its accumulator holds the sum over the pieces).  Exact.

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
            u = transform_weights(big[:, :, 3 * a:3 * a + 3, 3 * b:3 * b + 3], m)
            acc = acc + np.einsum("nckl,cijkl->nijkl", u, v)
    y = output_transform(acc, m)                                      # n, th, tw, m, m
    return y.transpose(0, 1, 3, 2, 4).reshape(n, th * m, tw * m)[:, :oh, :ow]
