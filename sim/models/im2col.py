"""im2col: convolution as one GEMM over patch rows, and the word stream of rtl/im2col.py.

GEMM convention (as everywhere in the project): C[M×N] = A[M×K]·B[K×N], A the activations with M = output pixels
(raster order) and K = window elements × input channels ordered (ky, kx, c), B the weights.
The hardware never materialises A: its window generator streams A's rows from the feature
buffer; :func:`im2col_words` is exactly that stream.
"""

from __future__ import annotations

import numpy as np

from sim.models.conv import conv_out_size, pad_chw, pair

__all__ = ["im2col_matrix", "im2col_weights", "im2col_conv", "hwc_words", "im2col_words"]


def im2col_matrix(x: np.ndarray, kernel, stride=1, padding=0, dilation=1) -> np.ndarray:
    """The patch matrix A (OH·OW × R·S·C) of x (C×H×W), columns ordered (ky, kx, c)."""
    x = np.asarray(x, dtype=np.int64)
    r, s = pair(kernel, "kernel")
    sh, sw = pair(stride, "stride")
    dh, dw = pair(dilation, "dilation")
    ph, pw = pair(padding, "padding")
    c, h, w = x.shape
    oh, ow = conv_out_size(h, r, sh, ph, dh), conv_out_size(w, s, sw, pw, dw)
    xp = pad_chw(x, padding)
    oy, ox, ky, kx = np.meshgrid(np.arange(oh), np.arange(ow), np.arange(r), np.arange(s),
                                 indexing="ij")
    rows = oy * sh + ky * dh                       # (oh, ow, r, s) gather indices
    cols = ox * sw + kx * dw
    patches = xp[:, rows, cols]                    # c, oh, ow, r, s
    return patches.transpose(1, 2, 3, 4, 0).reshape(oh * ow, r * s * c)


def im2col_weights(w: np.ndarray) -> np.ndarray:
    """Weights N×C×R×S as the GEMM's B matrix (R·S·C × N), rows ordered (ky, kx, c)."""
    w = np.asarray(w, dtype=np.int64)
    n = w.shape[0]
    return w.transpose(2, 3, 1, 0).reshape(-1, n)


def im2col_conv(x, w, stride=1, padding=0, dilation=1, groups: int = 1) -> np.ndarray:
    """Convolution as im2col GEMMs (one per group), exact int64, returned as N×OH×OW."""
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    n, cg, r, s = w.shape
    ng = n // groups
    outs = []
    for g in range(groups):
        a = im2col_matrix(x[g * cg:(g + 1) * cg], (r, s), stride, padding, dilation)
        outs.append(a @ im2col_weights(w[g * ng:(g + 1) * ng]))   # M × N_g
    c_mat = np.concatenate(outs, axis=1)
    sh, sw = pair(stride, "stride")
    dh, dw = pair(dilation, "dilation")
    ph, pw = pair(padding, "padding")
    oh = conv_out_size(x.shape[1], r, sh, ph, dh)
    ow = conv_out_size(x.shape[2], s, sw, pw, dw)
    return c_mat.T.reshape(n, oh, ow)


def hwc_words(x: np.ndarray, lanes: int) -> np.ndarray:
    """The feature buffer's contents: x (C×H×W) as H·W·ceil(C/lanes) words of ``lanes``.

    Word address = (y·W + x)·words_per_pixel + channel word; missing channels are zero.
    """
    c, h, w = x.shape
    cw = -(-c // lanes)
    buf = np.zeros((h, w, cw * lanes), dtype=np.int64)
    buf[:, :, :c] = np.asarray(x, dtype=np.int64).transpose(1, 2, 0)
    return buf.reshape(h * w * cw, lanes)


def im2col_words(x: np.ndarray, kernel, stride, padding, dilation, lanes: int) -> np.ndarray:
    """The words the window generator streams, in order (oy, ox, ky, kx, channel word).

    Returns an array (OH·OW·R·S·ceil(C/lanes)) × lanes; padding positions are zero words.
    """
    c = x.shape[0]
    cw = -(-c // lanes)
    xpad = np.zeros((cw * lanes,) + x.shape[1:], dtype=np.int64)
    xpad[:c] = x
    a = im2col_matrix(xpad, kernel, stride, padding, dilation)   # M × (r·s·cw·lanes)
    return a.reshape(-1, lanes)
