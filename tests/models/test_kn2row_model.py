"""kn2row golden: R·S 1×1 GEMMs + shift-and-add equal exact convolution."""

import numpy as np
import pytest

from sim.models.conv import conv2d
from sim.models.kn2row import kn2row_conv, kn2row_partials, partial_words, shift_add
from sim.reference import ort_conv_integer

LAYERS = [(3, 9, 10, 5, 1, 1, 0, 1, 1), (5, 11, 9, 7, 3, 1, 1, 1, 1),
          (6, 12, 13, 4, 3, 2, 1, 1, 2), (7, 13, 12, 3, 5, 1, 2, 1, 1),
          (3, 15, 14, 6, 5, 2, 2, 1, 1), (9, 16, 15, 5, 7, 2, 3, 1, 1),
          (4, 12, 12, 3, 7, 1, 3, 1, 1), (5, 13, 11, 9, 3, 1, 2, 2, 1), (2, 7, 7, 3, 3, 2, 0, 1, 1)]


@pytest.mark.parametrize("layer", LAYERS)
def test_kn2row_int8_equals_conv_integer(layer):
    c, h, w, n, k, s, p, d, g = layer
    rng = np.random.default_rng(sum(layer))
    x = rng.integers(-128, 128, (c, h, w))
    wt = rng.integers(-128, 128, (n, c // g, k, k))
    np.testing.assert_array_equal(kn2row_conv(x, wt, s, p, d, g),
                                  ort_conv_integer(x, wt, s, p, d, g))


@pytest.mark.parametrize("layer", LAYERS[1::2])
def test_kn2row_int16_equals_int64_conv(layer):
    c, h, w, n, k, s, p, d, g = layer
    rng = np.random.default_rng(7 + sum(layer))
    x = rng.integers(-32768, 32768, (c, h, w))
    wt = rng.integers(-32768, 32768, (n, c // g, k, k))
    np.testing.assert_array_equal(kn2row_conv(x, wt, s, p, d, g), conv2d(x, wt, s, p, d, g))


def test_shift_add_by_hand():
    # one filter, 1×2 kernel over a 1×3 input of partials; padding 1 on the width
    partials = np.array([[[[[1, 2, 3]]], [[[10, 20, 30]]]]])        # r=1, s=2, n=1, h=1, w=3
    out = shift_add(partials, 1, 4, stride=1, padding=(0, 1))
    # out[ox] = P0[ox-1] + P1[ox]
    np.testing.assert_array_equal(out, [[[0 + 10, 1 + 20, 2 + 30, 3 + 0]]])


def test_partial_words_order():
    p = kn2row_partials(np.ones((1, 1, 2)), np.arange(3).reshape(3, 1, 1, 1))
    np.testing.assert_array_equal(partial_words(p, 2), [[0, 1], [2, 0], [0, 1], [2, 0]])


@pytest.mark.regress
@pytest.mark.parametrize("seed", range(40))
def test_kn2row_random_layers(seed):
    rng = np.random.default_rng(6000 + seed)
    k = int(rng.choice([1, 3, 5, 7]))
    s, d = int(rng.integers(1, 3)), int(rng.integers(1, 3)) if k < 5 else 1
    g = int(rng.choice([1, 1, 2]))
    c, n = g * int(rng.integers(1, 7)), g * int(rng.integers(1, 6))
    p = int(rng.integers(0, k // 2 * d + 1))
    h, w = int(rng.integers(d * (k - 1) + 1, 20)), int(rng.integers(d * (k - 1) + 1, 20))
    bits = 16 if seed % 4 == 0 else 8
    x = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (c, h, w))
    wt = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (n, c // g, k, k))
    ref = conv2d(x, wt, s, p, d, g) if bits == 16 else ort_conv_integer(x, wt, s, p, d, g)
    np.testing.assert_array_equal(kn2row_conv(x, wt, s, p, d, g), ref)
