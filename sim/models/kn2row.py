"""kn2row: R·S 1×1 GEMMs over the unchanged input, assembled by shift-and-add.

For each kernel tap (ky, kx) the array computes P = W[:, :, ky, kx] · X (a 1×1 convolution
over every input pixel); the shift-and-add unit adds P, shifted by the tap's offset, into
the output: out[n, oy, ox] += P[n, oy·s + ky·d − p, ox·s + kx·d − p] where that input pixel
exists ("pad-and-accumulate": missing pixels are the zero padding).  :func:`shift_add`
mirrors rtl/kn2row.py, including its stream order (tap, y, x, filter word).
"""

from __future__ import annotations

import numpy as np

from sim.models.conv import conv_out_size, pair

__all__ = ["kn2row_partials", "shift_add", "kn2row_conv", "partial_words"]


def kn2row_partials(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The R·S 1×1 products: array R×S×N×H×W, P[ky, kx] = W[:, :, ky, kx] @ X."""
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    return np.einsum("ncrs,chw->rsnhw", w, x)


def shift_add(partials: np.ndarray, out_h: int, out_w: int, stride=1, padding=0,
              dilation=1) -> np.ndarray:
    """Assemble N×out_h×out_w outputs from R×S×N×H×W partial products (exact int64)."""
    r, s, n, h, w = partials.shape
    sh, sw = pair(stride, "stride")
    dh, dw = pair(dilation, "dilation")
    ph, pw = pair(padding, "padding")
    out = np.zeros((n, out_h, out_w), dtype=np.int64)
    oy = np.arange(out_h)
    ox = np.arange(out_w)
    for ky in range(r):
        iy = oy * sh + ky * dh - ph
        vy = (iy >= 0) & (iy < h)
        for kx in range(s):
            ix = ox * sw + kx * dw - pw
            vx = (ix >= 0) & (ix < w)
            blk = partials[ky, kx][:, iy[vy]][:, :, ix[vx]]
            out[:, np.flatnonzero(vy)[:, None], np.flatnonzero(vx)[None, :]] += blk
    return out


def kn2row_conv(x, w, stride=1, padding=0, dilation=1, groups: int = 1) -> np.ndarray:
    """Convolution by kn2row (1×1 GEMMs + shift-and-add), exact int64, N×OH×OW."""
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    n, cg, r, s = w.shape
    ng = n // groups
    sh, sw = pair(stride, "stride")
    dh, dw = pair(dilation, "dilation")
    ph, pw = pair(padding, "padding")
    oh = conv_out_size(x.shape[1], r, sh, ph, dh)
    ow = conv_out_size(x.shape[2], s, sw, pw, dw)
    out = [shift_add(kn2row_partials(x[g * cg:(g + 1) * cg], w[g * ng:(g + 1) * ng]),
                     oh, ow, stride, padding, dilation) for g in range(groups)]
    return np.concatenate(out, axis=0)


def partial_words(partials: np.ndarray, lanes: int) -> np.ndarray:
    """The stream into the shift-and-add unit: order (ky, kx, y, x, filter word) × lanes."""
    r, s, n, h, w = partials.shape
    fw = -(-n // lanes)
    p = np.zeros((r, s, fw * lanes, h, w), dtype=np.int64)
    p[:, :, :n] = partials
    return p.transpose(0, 1, 3, 4, 2).reshape(-1, lanes)
