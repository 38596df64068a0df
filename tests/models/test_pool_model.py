"""sim.models.pool against plain loops and Fraction arithmetic.

The reference walks the padded tile window by window in Python, collects the real pixels of
each window (padding is skipped for max and counts as 0 for the average), and rounds
``v · mult / 2^shift`` with ``Fraction`` (floor of x + 1/2: round half up), then saturates to
int8 and applies ReLU; ``add`` rounds ``(a · mult + b · mult2) / 2^shift`` once.
"""

from __future__ import annotations

import math
import zlib
from fractions import Fraction

import numpy as np
import pytest

from sim.models.pool import (
    POOL_MODES,
    hwc_words,
    pool_output_size,
    pool_tile,
    words_hwc,
)
from sim.models.requant import requantize


def _round(value: Fraction, relu: bool) -> int:
    v = max(-128, min(127, math.floor(value + Fraction(1, 2))))
    return max(v, 0) if relu else v


def ref_pool(mode, a, b=None, kh=1, kw=1, stride=1, pads=(0, 0, 0, 0), mult=1, shift=0,
             mult2=0, relu=False):
    """Plain loops; windows placed while they fit in the padded tile."""
    rows, cols, ch = a.shape
    pt, pb, pl, pr = pads
    scale = Fraction(mult, 2 ** shift)
    if mode in ("gmax", "gavg"):
        out = []
        for c in range(ch):
            vals = [int(a[y, x, c]) for y in range(rows) for x in range(cols)]
            v = max(vals) if mode == "gmax" else sum(vals)
            out.append(_round(v * scale, relu))
        return [[out]]
    if mode in ("add", "rescale"):
        res = []
        for y in range(rows):
            row = []
            for x in range(cols):
                px = []
                for c in range(ch):
                    v = Fraction(int(a[y, x, c]) * mult)
                    if mode == "add":
                        v += int(b[y, x, c]) * mult2
                    px.append(_round(v / 2 ** shift, relu))
                row.append(px)
            res.append(row)
        return res
    res = []
    y0 = -pt
    while y0 + kh <= rows + pb:
        row = []
        x0 = -pl
        while x0 + kw <= cols + pr:
            px = []
            for c in range(ch):
                real = [int(a[y, x, c]) for y in range(y0, y0 + kh) for x in range(x0, x0 + kw)
                        if 0 <= y < rows and 0 <= x < cols]
                if mode == "max":
                    v = max(real) if real else -128
                else:
                    v = sum(real)          # the padding adds zeros
                px.append(_round(v * scale, relu))
            row.append(px)
            x0 += stride
        res.append(row)
        y0 += stride
    return res


def _tile(rng, rows, cols, ch, extreme=False):
    if extreme:
        return rng.choice([-128, 127, -127, 126, 0], size=(rows, cols, ch))
    return rng.integers(-128, 128, size=(rows, cols, ch))


CASES = [
    # mode, rows, cols, ch, kh, kw, stride, pads, mult, shift, mult2
    ("max", 7, 9, 5, 3, 3, 2, (1, 1, 1, 1), 1, 0, 0),
    ("max", 6, 5, 3, 2, 2, 2, (0, 1, 0, 1), 3, 2, 0),
    ("max", 3, 4, 2, 3, 2, 1, (2, 2, 1, 0), 1, 0, 0),      # windows of padding only
    ("max", 5, 5, 4, 5, 5, 1, (0, 0, 0, 0), 200, 7, 0),
    ("avg", 7, 7, 3, 3, 3, 1, (1, 1, 1, 1), 7282, 16, 0),  # ≈ 1/9
    ("avg", 8, 6, 2, 2, 2, 2, (0, 0, 0, 0), 1, 2, 0),      # exact mean, ties round up
    ("avg", 5, 9, 3, 3, 2, 2, (1, 0, 0, 1), 65535, 12, 0),
    ("avg", 15, 15, 2, 15, 15, 1, (0, 0, 0, 0), 65535, 30, 0),
    ("gmax", 4, 6, 5, 1, 1, 1, (0, 0, 0, 0), 1, 0, 0),
    ("gmax", 3, 3, 2, 1, 1, 1, (0, 0, 0, 0), 9, 3, 0),
    ("gavg", 7, 7, 4, 1, 1, 1, (0, 0, 0, 0), 1337, 16, 0),
    ("gavg", 2, 3, 3, 1, 1, 1, (0, 0, 0, 0), 1, 0, 0),     # saturates
    ("add", 3, 5, 6, 1, 1, 1, (0, 0, 0, 0), 1, 0, 1),
    ("add", 4, 2, 3, 1, 1, 1, (0, 0, 0, 0), 21000, 15, 46000),
    ("add", 2, 2, 7, 1, 1, 1, (0, 0, 0, 0), 65535, 63, 65535),
    ("rescale", 3, 4, 5, 1, 1, 1, (0, 0, 0, 0), 40000, 15, 0),
    ("rescale", 2, 5, 2, 1, 1, 1, (0, 0, 0, 0), 3, 0, 0),  # saturates
]


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}{i}" for i, c in enumerate(CASES)])
def test_model_matches_loops_and_fractions(case, relu):
    mode, rows, cols, ch, kh, kw, stride, pads, mult, shift, mult2 = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
    for extreme in (False, True):
        a = _tile(rng, rows, cols, ch, extreme)
        b = _tile(rng, rows, cols, ch, extreme) if mode == "add" else None
        got = pool_tile(mode, a, b, kh=kh, kw=kw, stride=stride, pads=pads, mult=mult,
                        shift=shift, mult2=mult2, relu=relu)
        want = ref_pool(mode, a, b, kh, kw, stride, pads, mult, shift, mult2, relu)
        np.testing.assert_array_equal(got, np.array(want))
        assert got.shape[:2] == pool_output_size(mode, rows, cols, kh, kw, stride, pads)
        if relu:
            assert got.min() >= 0


def test_every_mode_is_covered():
    assert {c[0] for c in CASES} == set(POOL_MODES)


def test_output_sizes():
    # 3x3 / 2 with pad 1 on 112x112 (ResNet's stem pool): 56x56
    assert pool_output_size("max", 112, 112, 3, 3, 2, (1, 1, 1, 1)) == (56, 56)
    # the last window that does not fit is dropped (floor)
    assert pool_output_size("avg", 7, 8, 2, 2, 2) == (3, 4)
    assert pool_output_size("gavg", 7, 8, 3, 3, 2, (1, 1, 1, 1)) == (1, 1)
    assert pool_output_size("add", 7, 8, 3, 3, 2, (1, 1, 1, 1)) == (7, 8)
    assert pool_output_size("max", 1, 1, 3, 3, 1, (1, 1, 1, 1)) == (1, 1)


def test_average_rounds_half_up_and_saturates():
    a = np.array([[[1], [2]], [[3], [0]]])                  # sum 6: 6/4 = 1.5 -> 2
    assert pool_tile("avg", a, kh=2, kw=2, shift=2)[0, 0, 0] == 2
    assert pool_tile("avg", -a, kh=2, kw=2, shift=2)[0, 0, 0] == -1   # -1.5 -> -1
    full = np.full((2, 2, 1), 127)
    assert pool_tile("gavg", full)[0, 0, 0] == 127          # 508 saturates
    assert pool_tile("gavg", -full - 1, relu=True)[0, 0, 0] == 0      # -512 -> -128 -> 0


def test_add_rounds_once():
    a, b = np.array([[[1]]]), np.array([[[1]]])
    # 1·1/2 + 1·1/2 = 1: rounding each product first would give 1 + 1 = 2
    assert pool_tile("add", a, b, mult=1, mult2=1, shift=1)[0, 0, 0] == 1


def test_words_round_trip():
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, size=(3, 4, 11))
    words = hwc_words(x, 4)
    assert words.shape == (3 * 4 * 3, 4)
    assert (words.reshape(3, 4, 12)[..., 11] == 0).all()
    np.testing.assert_array_equal(words_hwc(words, 3, 4, 11), x)
    # the model runs on the words' lanes as they are: zero lanes stay zero
    out = pool_tile("max", words_hwc(words, 3, 4), kh=2, kw=2, stride=2)
    assert (out[..., 11] == 0).all()
    np.testing.assert_array_equal(out[..., :11], pool_tile("max", x, kh=2, kw=2, stride=2))


def test_errors():
    a = np.zeros((3, 3, 2), np.int64)
    with pytest.raises(ValueError, match=r"^mode must be one of max, avg, gmax, gavg, add, "
                                         r"rescale, not 'min'$"):
        pool_tile("min", a)
    with pytest.raises(TypeError, match=r"^mode must be a string, not 3$"):
        pool_tile(3, a)
    with pytest.raises(ValueError, match=r"^kh must be at most pad_t \+ rows \+ pad_b = 4, "
                                         r"not 5$"):
        pool_tile("max", a, kh=5, pads=(1, 0, 0, 0))
    with pytest.raises(ValueError, match=r"^b must be given for mode add, not None$"):
        pool_tile("add", a)
    with pytest.raises(ValueError, match=r"^b must be None for mode avg"):
        pool_tile("avg", a, a)
    with pytest.raises(ValueError, match=r"^b must have a's shape \(3, 3, 2\), not \(3, 3, 1\)$"):
        pool_tile("add", a, a[..., :1])
    with pytest.raises(ValueError, match=r"^a must hold int8 values"):
        pool_tile("max", a + 200)
    with pytest.raises(ValueError, match=r"^shift must be at least 0, not -1$"):
        pool_tile("rescale", a, shift=-1)
    with pytest.raises(TypeError, match=r"^stride must be an integer, not 1.5$"):
        pool_tile("max", a, stride=1.5)
    with pytest.raises(ValueError, match=r"^pads must be \(top, bottom, left, right\)"):
        pool_tile("max", a, pads=(1, 1))


def test_average_multiplier_choice_is_within_a_tie_band():
    """docs/algorithms.md: with the largest shift whose round(2^shift / N) is below 2^16 as
    mult, the average differs from round(sum / N) (half up) only within 2^-9 of a tie; every
    N of a window up to 15 x 15 and every sum of N int8 values."""
    for n in range(1, 226):
        shift = max(s for s in range(64) if (2 ** (s + 1) + n) // (2 * n) < 2 ** 16)
        mult = (2 ** (shift + 1) + n) // (2 * n)            # round half up of 2^shift / n
        assert abs(mult * n - 2 ** shift) * 2 ** 16 <= 2 ** shift      # within 2^-16 of 1/n
        sums = np.arange(-128 * n, 127 * n + 1)
        got = requantize(sums, mult, shift)
        exact = np.clip((2 * sums + n) // (2 * n), -128, 127)
        off = got != exact
        tie_distance = np.abs(2 * (sums % n) - n)           # |frac(sum/n) - 1/2| in 1/(2n)
        assert (tie_distance[off] * 2 ** 8 < n).all(), n
