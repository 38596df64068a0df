"""Winograd golden: F(2×2,3×3) and F(4×4,3×3) exact, at the stated operand widths."""

import numpy as np
import pytest

from sim.models.conv import conv2d
from sim.models.winograd import (
    AT,
    BT,
    G_DENOM,
    G_SCALED,
    input_transform,
    output_transform,
    transform_weights,
    winograd_conv,
    winograd_piecewise_conv,
)
from sim.reference import ort_conv_integer

# (channels, height, width, filters, padding)
LAYERS = [(3, 9, 10, 5, 1), (5, 11, 9, 7, 0), (6, 12, 13, 4, 1), (1, 3, 3, 2, 0),
          (9, 8, 7, 3, 2), (13, 6, 6, 10, 1)]


def test_matrices_give_1d_minimal_filtering():
    # F(m, 3) in 1-D: Aᵀ[(G g) ⊙ (Bᵀ d)] = correlation of d with g (float check of the tables)
    rng = np.random.default_rng(0)
    for m in (2, 4):
        d = rng.standard_normal(m + 2)
        g = rng.standard_normal(3)
        y = AT[m] @ ((G_SCALED[m] / G_DENOM[m]) @ g * (BT[m] @ d))
        np.testing.assert_allclose(y, [d[i:i + 3] @ g for i in range(m)], atol=1e-12)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("layer", LAYERS)
def test_int8_equals_conv_integer(layer, m):
    c, h, w, n, p = layer
    rng = np.random.default_rng(10 * m + sum(layer))
    x = rng.integers(-128, 128, (c, h, w))
    wt = rng.integers(-128, 128, (n, c, 3, 3))
    x[0, 0, :] = -128                       # extremes inside the random data
    wt[0, 0] = -128
    np.testing.assert_array_equal(winograd_conv(x, wt, p, m=m),
                                  ort_conv_integer(x, wt, 1, p))


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("layer", LAYERS[::2])
def test_int16_equals_int64_conv(layer, m):
    c, h, w, n, p = layer
    rng = np.random.default_rng(3 + 10 * m + sum(layer))
    x = rng.integers(-32768, 32768, (c, h, w))
    wt = rng.integers(-32768, 32768, (n, c, 3, 3))
    np.testing.assert_array_equal(winograd_conv(x, wt, p, m=m), conv2d(x, wt, 1, p))


def test_f2_widths_for_int8():
    # stated widths: V fits 10-bit signed, 2G-transformed weights fit 12-bit signed.  Each V
    # entry is a linear form in d with coefficients Bᵀ[i,k]·B[l,j]; its extremes over int8 d
    # pick -128 or 127 per coefficient sign (exact, no sampling).
    coef = np.einsum("ik,lj->ijkl", BT[2], BT[2].T)
    vmax = np.maximum(coef * 127, coef * -128).sum(axis=(2, 3))
    vmin = np.minimum(coef * 127, coef * -128).sum(axis=(2, 3))
    assert vmin.min() == -512 and vmax.max() == 510
    d = np.where(coef[1, 1] > 0, -128, 127)[None]          # attains the minimum
    assert input_transform(d, 2)[0, 1, 1] == -512
    u = transform_weights(np.full((1, 1, 3, 3), -128), 2)
    assert -2048 <= u.min() and u.max() <= 2047
    u = transform_weights(np.full((1, 1, 3, 3), 127), 2)
    assert u.max() == 9 * 127


def test_f4_widths_for_int8():
    # stated widths: V within 15-bit signed (|V| ≤ 10·10·128 = 12800), the 24G-transformed
    # weights within 18-bit signed (|576·U| ≤ 24·24·128 = 73728); extremes of linear forms
    # over int8 data pick -128 or 127 per coefficient sign (exact, no sampling)
    coef = np.einsum("ik,lj->ijkl", BT[4], BT[4].T)
    vbound = np.maximum(np.abs(np.maximum(coef * 127, coef * -128).sum(axis=(2, 3))),
                        np.abs(np.minimum(coef * 127, coef * -128).sum(axis=(2, 3))))
    assert vbound.max() <= 12800 < 1 << 14
    wcoef = np.einsum("ik,jl->ijkl", G_SCALED[4], G_SCALED[4])
    wbound = np.abs(wcoef).sum(axis=(2, 3)).max() * 128
    assert wbound == 73728 and wbound < 1 << 17
    u = transform_weights(np.where(wcoef[5, 5] > 0, -128, 127)[None, None], 4)
    assert u[0, 0, 5, 5] == -73728


def test_output_transform_refuses_what_transformed_weights_cannot_give():
    acc = np.zeros((6, 6), dtype=np.int64)
    acc[0, 0] = 1                           # Aᵀ M A = 1: not a multiple of 576
    with pytest.raises(ValueError, match="multiple of 576"):
        output_transform(acc, 4)


def test_winograd_refuses_non_3x3():
    with pytest.raises(ValueError, match=r"^kernel must be 3×3, not 5×5$"):
        winograd_conv(np.zeros((1, 8, 8)), np.zeros((1, 1, 5, 5)))


@pytest.mark.regress
@pytest.mark.parametrize("seed", range(30))
def test_winograd_random_layers(seed):
    rng = np.random.default_rng(7000 + seed)
    c, n = int(rng.integers(1, 20)), int(rng.integers(1, 9))
    h, w, p = int(rng.integers(3, 20)), int(rng.integers(3, 20)), int(rng.integers(0, 3))
    bits = 16 if seed % 4 == 0 else 8
    x = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (c, h, w))
    wt = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (n, c, 3, 3))
    ref = conv2d(x, wt, 1, p) if bits == 16 else ort_conv_integer(x, wt, 1, p)
    np.testing.assert_array_equal(winograd_conv(x, wt, p, m=2), ref)
    np.testing.assert_array_equal(winograd_conv(x, wt, p, m=4), ref)


# (channels, height, width, filters, kernel, pads (top, left, bottom, right))
PIECEWISE = [(3, 9, 10, 4, 5, (2, 2, 2, 2)), (2, 11, 8, 3, 7, (3, 1, 2, 3)),
             (4, 7, 7, 2, 3, (1, 0, 1, 1)), (1, 6, 9, 2, 4, (0, 0, 0, 0))]


@pytest.mark.parametrize("m, seed", [(2, 11), (4, 5)])
@pytest.mark.parametrize("layer", PIECEWISE)
def test_piecewise_equals_exact_conv(layer, m, seed):
    c, h, w, n, k, pads = layer
    rng = np.random.default_rng(seed + sum(layer[:5]))
    x = rng.integers(-128, 128, (c, h, w))
    wt = rng.integers(-128, 128, (n, c, k, k))
    xp = np.pad(x, ((0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    np.testing.assert_array_equal(winograd_piecewise_conv(x, wt, pads, m=m), conv2d(xp, wt))


@pytest.mark.parametrize("padding", [0, 1, 2])
def test_piecewise_3x3_is_winograd_conv(padding):
    rng = np.random.default_rng(padding)
    x = rng.integers(-128, 128, (5, 10, 9))
    wt = rng.integers(-128, 128, (3, 5, 3, 3))
    for m in (2, 4):
        np.testing.assert_array_equal(winograd_piecewise_conv(x, wt, (padding,) * 4, m=m),
                                      winograd_conv(x, wt, padding, m=m))


def test_piecewise_refuses_groups_and_bad_m():
    with pytest.raises(ValueError, match="channels"):
        winograd_piecewise_conv(np.zeros((4, 6, 6)), np.zeros((2, 2, 5, 5)), (0, 0, 0, 0), m=2)
    with pytest.raises(ValueError, match="m must be"):
        winograd_piecewise_conv(np.zeros((1, 6, 6)), np.zeros((1, 1, 3, 3)), (0, 0, 0, 0), m=3)
