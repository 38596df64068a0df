"""Direct 2-D convolution (cross-correlation, as CNNs use it): the exact integer reference.

Pure numpy, int64 throughout, so int8 and int16 layers are exact for any realistic channel
count (|x·w| < 2^31, and 2^32 such products fit in int64).  Layout is CHW for activations
and N×(C/groups)×R×S for weights, without a batch dimension.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pair", "conv_out_size", "pad_chw", "conv2d"]


def pair(value, name: str) -> tuple[int, int]:
    """Return ``(value, value)`` for an int, or the two ints of a pair (height, width)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair, not {value!r}")
        out = tuple(value)
    else:
        out = (value, value)
    for v in out:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, not {v!r}")
    return int(out[0]), int(out[1])


def conv_out_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length along one axis (PyTorch / ONNX formula)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pad_chw(x: np.ndarray, padding) -> np.ndarray:
    """Zero-pad the two spatial axes of a C×H×W array symmetrically."""
    ph, pw = pair(padding, "padding")
    return np.pad(x, ((0, 0), (ph, ph), (pw, pw)))


def conv2d(x: np.ndarray, w: np.ndarray, stride=1, padding=0, dilation=1,
           groups: int = 1) -> np.ndarray:
    """Direct convolution of x (C×H×W) with w (N×C/groups×R×S), exact in int64.

    Returns an N×OH×OW int64 array.  Every output is the plain sum over channels and kernel
    taps of x·w, evaluated tap by tap over strided views of the padded input.
    """
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    sh, sw = pair(stride, "stride")
    dh, dw = pair(dilation, "dilation")
    c, h, wd = x.shape
    n, cg, r, s = w.shape
    if c != cg * groups or n % groups:
        raise ValueError(f"channels must match: x has {c}, w has {cg}×{groups} groups, "
                         f"{n} filters")
    ph, pw = pair(padding, "padding")
    oh = conv_out_size(h, r, sh, ph, dh)
    ow = conv_out_size(wd, s, sw, pw, dw)
    if oh < 1 or ow < 1:
        raise ValueError(f"output must be at least 1×1, not {oh}×{ow}")
    xp = pad_chw(x, padding)
    out = np.zeros((n, oh, ow), dtype=np.int64)
    ng = n // groups
    for g in range(groups):
        xg = xp[g * cg:(g + 1) * cg]
        wg = w[g * ng:(g + 1) * ng]
        for ky in range(r):
            for kx in range(s):
                y0, x0 = ky * dh, kx * dw
                patch = xg[:, y0:y0 + sh * (oh - 1) + 1:sh, x0:x0 + sw * (ow - 1) + 1:sw]
                out[g * ng:(g + 1) * ng] += np.einsum("nc,chw->nhw", wg[:, :, ky, kx], patch)
    return out
