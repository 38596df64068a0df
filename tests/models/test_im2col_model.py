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
