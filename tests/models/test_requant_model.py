"""Requantisation golden vs Python Fraction arithmetic (round half up, saturate, ReLU)."""

import math
from fractions import Fraction

import numpy as np
import pytest

from sim.models.requant import requantize


def ref(acc, mult, shift, bits, relu):
    v = math.floor(Fraction(int(acc) * int(mult), 2 ** int(shift)) + Fraction(1, 2))
    v = max(-(2 ** (bits - 1)), min(2 ** (bits - 1) - 1, v))
    return max(v, 0) if relu else v


@pytest.mark.parametrize("bits,acc_bits,mult_bits", [(8, 32, 16), (16, 48, 32), (8, 20, 8)])
@pytest.mark.parametrize("relu", [False, True])
def test_requant_matches_fractions(bits, acc_bits, mult_bits, relu):
    rng = np.random.default_rng(bits + acc_bits + relu)
    acc = rng.integers(-(1 << (acc_bits - 1)), 1 << (acc_bits - 1), 300)
    acc[:4] = [-(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1, 0, -1]
    mult = rng.integers(0, 1 << (mult_bits - 1), 300)
    shift = rng.integers(0, acc_bits + mult_bits - bits, 300)
    got = requantize(acc, mult, shift, bits, relu)
    want = [ref(a, m, s, bits, relu) for a, m, s in zip(acc, mult, shift)]
    np.testing.assert_array_equal(got, want)


def test_requant_ties_round_up():
    np.testing.assert_array_equal(requantize(np.array([6, -6, 5, -5, 2, -2]), 1, 2),
                                  [2, -1, 1, -1, 1, 0])


def test_requant_per_channel_broadcast():
    acc = np.array([[100, 100], [100, 100]])
    np.testing.assert_array_equal(
        requantize(acc, np.array([[1], [3]]), np.array([[1], [2]])), [[50, 50], [75, 75]])
