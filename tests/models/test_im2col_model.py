"""im2col golden: GEMM over patch rows equals exact convolution (int8 vs ORT, int16 vs int64)."""

import numpy as np
import pytest

from sim.models.conv import conv2d
from sim.models.im2col import hwc_words, im2col_conv, im2col_matrix, im2col_words
from sim.reference import ort_conv_integer

# (channels, height, width, filters, kernel, stride, padding, dilation, groups)
LAYERS = [(3, 9, 10, 5, 1, 1, 0, 1, 1), (5, 11, 9, 7, 3, 1, 1, 1, 1),
          (6, 12, 13, 4, 3, 2, 1, 1, 2), (7, 13, 12, 3, 5, 1, 2, 1, 1),
          (3, 15, 14, 6, 5, 2, 2, 1, 1), (9, 16, 15, 5, 7, 2, 3, 1, 1),
          (4, 12, 12, 3, 7, 1, 3, 1, 1), (5, 13, 11, 9, 3, 1, 2, 2, 1)]


@pytest.mark.parametrize("layer", LAYERS)
def test_im2col_int8_equals_conv_integer(layer):
    c, h, w, n, k, s, p, d, g = layer
    rng = np.random.default_rng(sum(layer))
    x = rng.integers(-128, 128, (c, h, w))
    wt = rng.integers(-128, 128, (n, c // g, k, k))
    np.testing.assert_array_equal(im2col_conv(x, wt, s, p, d, g),
                                  ort_conv_integer(x, wt, s, p, d, g))


@pytest.mark.parametrize("layer", LAYERS[::2])
def test_im2col_int16_equals_int64_conv(layer):
    c, h, w, n, k, s, p, d, g = layer
    rng = np.random.default_rng(100 + sum(layer))
    x = rng.integers(-32768, 32768, (c, h, w))
    wt = rng.integers(-32768, 32768, (n, c // g, k, k))
    x.flat[0], wt.flat[0] = -32768, -32768
    np.testing.assert_array_equal(im2col_conv(x, wt, s, p, d, g), conv2d(x, wt, s, p, d, g))


def test_im2col_matrix_by_hand():
    x = np.arange(9).reshape(1, 3, 3)
    a = im2col_matrix(x, 2, 1, 0, 1)
    np.testing.assert_array_equal(a, [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]])


def test_words_are_padded_channels_of_patches():
    x = np.arange(2 * 2 * 2).reshape(2, 2, 2) + 1
    words = im2col_words(x, 1, 1, 0, 1, lanes=3)
    np.testing.assert_array_equal(words, [[1, 5, 0], [2, 6, 0], [3, 7, 0], [4, 8, 0]])
    np.testing.assert_array_equal(hwc_words(x, 3), words)


def random_layer(rng, kernels=(1, 3, 5, 7)):
    """A random conv layer: (c, h, w, n, k, stride, pad, dilation, groups)."""
    k = int(rng.choice(kernels))
    s, d = int(rng.integers(1, 3)), int(rng.integers(1, 3)) if k < 5 else 1
    g = int(rng.choice([1, 1, 2, 3]))
    c, n = g * int(rng.integers(1, 7)), g * int(rng.integers(1, 6))
    p = int(rng.integers(0, k // 2 * d + 1))
    h, w = int(rng.integers(d * (k - 1) + 1, 20)), int(rng.integers(d * (k - 1) + 1, 20))
    return c, h, w, n, k, s, p, d, g


@pytest.mark.regress
@pytest.mark.parametrize("seed", range(40))
def test_im2col_random_layers(seed):
    rng = np.random.default_rng(5000 + seed)
    c, h, w, n, k, s, p, d, g = random_layer(rng)
    bits = 16 if seed % 4 == 0 else 8
    x = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (c, h, w))
    wt = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (n, c // g, k, k))
    ref = conv2d(x, wt, s, p, d, g) if bits == 16 else ort_conv_integer(x, wt, s, p, d, g)
    np.testing.assert_array_equal(im2col_conv(x, wt, s, p, d, g), ref)
