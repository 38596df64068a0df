"""Direct convolution golden vs a brute-force loop and vs onnxruntime ConvInteger / Conv."""

import numpy as np
import pytest

from sim.models.conv import conv2d, conv_out_size
from sim.reference import ort_conv_float, ort_conv_integer


def brute_conv(x, w, stride, padding, dilation, groups):
    """Scalar loops straight from the definition (Python ints, no numpy arithmetic)."""
    c, h, wd = x.shape
    n, cg, r, s = w.shape
    oh = conv_out_size(h, r, stride, padding, dilation)
    ow = conv_out_size(wd, s, stride, padding, dilation)
    out = np.zeros((n, oh, ow), dtype=object)
    ng = n // groups
    for f in range(n):
        g = f // ng
        for oy in range(oh):
            for ox in range(ow):
                acc = 0
                for ci in range(cg):
                    for ky in range(r):
                        for kx in range(s):
                            y = oy * stride + ky * dilation - padding
                            xx = ox * stride + kx * dilation - padding
                            if 0 <= y < h and 0 <= xx < wd:
                                acc += int(x[g * cg + ci, y, xx]) * int(w[f, ci, ky, kx])
                out[f, oy, ox] = acc
    return out


@pytest.mark.parametrize("c,h,w,n,k,s,p,d,g", [
    (3, 6, 7, 2, 3, 1, 1, 1, 1), (4, 7, 5, 4, 2, 2, 1, 2, 2), (1, 5, 5, 3, 5, 1, 2, 1, 1)])
def test_conv_matches_brute_force_int16(c, h, w, n, k, s, p, d, g):
    rng = np.random.default_rng(11)
    x = rng.integers(-32768, 32768, (c, h, w))
    wt = rng.integers(-32768, 32768, (n, c // g, k, k))
    got = conv2d(x, wt, s, p, d, g)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, brute_conv(x, wt, s, p, d, g).astype(np.int64))


@pytest.mark.parametrize("seed", range(4))
def test_conv_matches_onnxruntime_int8(seed):
    rng = np.random.default_rng(seed)
    k = [1, 3, 5, 7][seed]
    c, n, s, g = int(rng.integers(1, 12)), int(rng.integers(1, 10)), 1 + seed % 2, 1
    x = rng.integers(-128, 128, (c, 13, 11))
    x[0, 0, 0], x[-1, -1, -1] = -128, 127
    wt = rng.integers(-128, 128, (n, c, k, k))
    wt[0, 0, 0, 0] = -128
    np.testing.assert_array_equal(conv2d(x, wt, s, k // 2, 1, g),
                                  ort_conv_integer(x, wt, s, k // 2, 1, g))


def test_conv_float_reference_agrees():
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (5, 9, 9))
    wt = rng.integers(-128, 128, (3, 5, 3, 3))
    # float32 holds these sums (< 2^24) exactly
    np.testing.assert_array_equal(ort_conv_float(x, wt, 1, 1), conv2d(x, wt, 1, 1))


def test_conv_rejects_bad_channels():
    with pytest.raises(ValueError, match=r"^channels must match"):
        conv2d(np.zeros((3, 4, 4)), np.zeros((2, 2, 1, 1)))


def test_int8_reference_rejects_out_of_range():
    with pytest.raises(ValueError, match=r"^x must hold int8 values"):
        ort_conv_integer(np.full((1, 3, 3), 200), np.ones((1, 1, 1, 1)))
