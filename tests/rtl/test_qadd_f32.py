"""QLinearAdd unit: ``dse.qlinear`` (settings and the bit-level model) and
``rtl.qadd_f32.QAddF32`` (Amaranth simulator, with stalls) against the independent golden
model ``sim.models.qdq_network.qlinear_add``.

The golden model is itself held equal to onnxruntime's QLinearAdd on all operand pairs
(tests/models/test_qdq_network.py).  Here:

* ``qadd_settings`` equals numpy's float32 division and the golden model's float32 helpers;
* the bit-level model equals the golden model on all 65,536 (a, b) pairs for 96 random
  realistic parameter sets and 94 constructed ones (few-bit ratios with 124,000 exact rint
  ties, the bypass thresholds of both fused multiply-adds crossed in steps of one bit, sums on
  float32 ties that only the sticky bits decide, F = 0, tiny F, negative powers of two, the
  range bounds), and its fused multiply-add equals exact rational arithmetic on 12,000 random
  operands over the whole alignment range;
* the RTL equals the golden model on 3,300 words (two lanes) over eleven parameter sets
  (the structural edges above among them), with random source idles and sink back-pressure,
  the operand extremes and the pairs nearest a tie;
* parameters outside the supported range are refused.
"""

from fractions import Fraction

import numpy as np
import pytest

from dse import qlinear
from dse.qlinear import QAddSettings, check_qadd_settings, fl, qadd_settings, reference
from rtl import qadd_f32
from rtl.qadd_f32 import PIPELINE_DEPTH, QAddF32
from sim.bench.amaranth_stream import run_stream
from sim.models.qdq_network import (f32_add, f32_div, f32_fma, f32_from_int, f32_mul,
                                    f32_parts, f32_value, qlinear_add)

_A, _B = (g.ravel() for g in np.meshgrid(np.arange(256), np.arange(256)))


def _value(triple) -> Fraction:
    s, m, e = triple
    return (-1) ** s * Fraction(m) * Fraction(2) ** e


def _golden_value(pair) -> Fraction:
    q, e = (int(v) for v in pair)
    return Fraction(q) * Fraction(2) ** e


# -- parameter sets ------------------------------------------------------------------------------

def _random_params(rng, i):
    """Realistic calibrations: output scales over four decades, input/output ratios over
    2^±8 (every fourth set 2^±24), random zero points (sometimes 0, 128 or 255)."""
    spread = 24 if i % 4 == 3 else 8
    sc = np.float32(10 ** rng.uniform(-4, 0))
    sa, sb = (np.float32(sc * 2 ** rng.uniform(-spread, spread)) for _ in range(2))
    zp = [int(v) for v in rng.integers(0, 256, 3)]
    if i % 5 == 0:
        zp[int(rng.integers(0, 3))] = int(rng.choice([0, 128, 255]))
    return sa, zp[0], sb, zp[1], sc, zp[2]


def _tie_ratio(n, b):
    """A float32 ``r`` with ``b · r = n + 1/2 + 2^(k−24)`` (``2^k ≤ n + 1/2 < 2^(k+1)``): the
    product lands exactly on a float32 tie next to the rint tie ``n + 1/2``, so the sticky bit
    of whatever is added to it decides both roundings."""
    k = (2 * n + 1).bit_length() - 2
    t = (2 * n + 1) * 2 ** (23 - k) + 1                 # (n + 1/2 + 2^(k-24)) · 2^(24-k)
    assert t % b == 0, (n, b)
    m, e = t // b, k - 24
    while m < 1 << 23:
        m, e = m * 2, e - 1
    assert m < 1 << 24
    return np.float32(m * 2.0 ** e)


#: Parameter sets at the datapath's structural edges, for both the model and the RTL.
_EDGE_SETS = [
    # b·r_b on a tie, F = ±2^-24 far below it (the inner alignment's sticky bit): for
    # (a, b) = (0, 3) the result is 201 with F > 0, 200 with F < 0 and without the sticky bit
    ("inner-sticky+", (np.float32(1 - 2.0 ** -24), 1, _tie_ratio(200, 3), 0, np.float32(1.0),
                       1)),
    ("inner-sticky-", (np.float32(1 + 2.0 ** -23), 1, _tie_ratio(200, 3), 0, np.float32(1.0),
                       1)),
    # a·r_a on a tie, the inner result F = ±2^-24 far below it (the outer alignment's sticky
    # bit): for (a, b) = (7, 0) the result is 135 with F > 0, else 134
    ("outer-sticky+", (_tie_ratio(134, 7), 0, np.float32(1 - 2.0 ** -24), 1, np.float32(1.0),
                       1)),
    ("outer-sticky-", (_tie_ratio(134, 7), 0, np.float32(1 + 2.0 ** -23), 1, np.float32(1.0),
                       1)),
    # F = −64 (a negative power of two) with b·r_b at window position 36 (the last one kept)
    # and 37 (the first bypassed): b·r_b above a quarter ulp of F must round it
    ("inner-edge36", (np.float32(1.0), 128, np.float32((2 ** 24 - 1) * 2.0 ** -49), 0,
                      np.float32(2.0), 0)),
    ("inner-edge37", (np.float32(1.0), 128, np.float32((2 ** 24 - 1) * 2.0 ** -50), 0,
                      np.float32(2.0), 0)),
    # the inner results near 100, a·r_a at window positions 35..38 below them
    ("outer-edge", (np.float32(2.0 ** -27), 9, np.float32(0.75), 100, np.float32(1.0), 128)),
]


def _constructed_params():
    """Parameter sets where the float32 roundings matter (module docstring)."""
    out = []
    rng = np.random.default_rng(77)
    # few-bit ratios: many sums exactly on k + 1/2 and on float32 ties
    for i in range(16):
        sc = np.float32(10 ** rng.uniform(-3, -1))
        sa = np.float32(sc * rng.choice([0.5, 1.5, 0.25, 3.0, 0.75, 1.25]))
        sb = np.float32(sc * rng.choice([0.5, 0.75, 1.0, 0.375, 2.5]))
        za, zb, zc = (int(v) for v in rng.integers(0, 256, 3))
        out.append((f"few-bits{i}", (sa, za, sb, zb, sc, zc)))
    # the inner addend F far above b·r_b: r_b = 2^-k crosses the bypass threshold (the
    # window's top position 36 and beyond), with F near a half-integer, F a negative power
    # of two (the one case where the bypass must not round), and F positive
    for k in range(14, 32):
        rb = np.float32(2.0 ** -k)
        out.append((f"inner-far{k}", (np.float32(1.0), 255, rb, 77, np.float32(2.0), 64)))
        out.append((f"inner-pow2-{k}", (np.float32(1.0), 128, rb, 0, np.float32(1.0), 0)))
        out.append((f"inner-pos{k}", (np.float32(0.5), 3, rb, 200, np.float32(1.0), 255)))
    # the outer addend far above a·r_a: r_a = 2^-k crosses the outer bypass threshold
    for k in range(18, 34, 2):
        out.append((f"outer-far{k}", (np.float32(2.0 ** -k), 9, np.float32(0.75),
                                       100, np.float32(1.0), 128)))
    # F = 0 exactly, F tiny (a near-cancellation), r_a ≫ r_b and r_b ≫ r_a, the range bounds
    out += [
        ("f-zero", (np.float32(0.75), 0, np.float32(0.5), 0, np.float32(1.0), 0)),
        ("f-zero-cancel", (np.float32(0.5), 10, np.float32(1.0), 5, np.float32(1.0), 10)),
        ("f-tiny", (np.float32(1 + 2.0 ** -20), 100, np.float32(1.0), 50, np.float32(1.0), 150)),
        ("f-tiny-neg", (np.float32(1 - 2.0 ** -21), 100, np.float32(1.0), 50, np.float32(1.0),
                        150)),
        ("ra-huge", (np.float32(2.0 ** 20), 17, np.float32(2.0 ** -20), 200, np.float32(1.0),
                     3)),
        ("rb-huge", (np.float32(3e-7), 17, np.float32(1.7e5), 200, np.float32(0.1), 99)),
        ("bounds", (np.float32(2.0 ** 24), 1, np.float32(2.0 ** -104), 255,
                    np.float32(2.0 ** -40), 255)),
        ("bounds-rev", (np.float32(2.0 ** -104), 255, np.float32(2.0 ** 24), 1,
                        np.float32(2.0 ** -40), 0)),
        ("bounds-low", (np.float32(2.0 ** -104), 200, np.float32(2.0 ** -103), 100,
                        np.float32(2.0 ** -40), 77)),
    ]
    return out + _EDGE_SETS


_CONSTRUCTED = _constructed_params()


def _check_all_pairs(params, label):
    got = reference(_A, _B, qadd_settings(*params))
    sa, za, sb, zb, sc, zc = params
    want = qlinear_add(_A, sa, za, _B, sb, zb, sc, zc)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, (f"{label} {params}: {bad.size} of 65,536 differ, first "
                           f"a={_A[bad[0]]} b={_B[bad[0]]}: {got[bad[0]]} != {want[bad[0]]}")


# -- settings ------------------------------------------------------------------------------------

def test_settings_are_float32_exact():
    """r = fl(s/s_c) equals numpy's float32 division; F the golden model's float32 ops."""
    rng = np.random.default_rng(11)
    for i in range(300):
        sa, za, sb, zb, sc, zc = _random_params(rng, i)
        st = qadd_settings(sa, za, sb, zb, sc, zc)
        assert _value(st.r_a) == Fraction(float(np.float32(sa) / np.float32(sc)))
        assert _value(st.r_b) == Fraction(float(np.float32(sb) / np.float32(sc)))
        r_a, r_b = (f32_div(f32_parts(s), f32_parts(sc)) for s in (sa, sb))
        both = f32_fma(r_a, f32_from_int(za), f32_mul(r_b, f32_from_int(zb)))
        f = f32_add(f32_from_int(zc), (-both[0], both[1]))
        assert _value(st.f) == _golden_value(f)
        assert st.f == (0, 0, 0) or 1 << 23 <= st.f[1] < 1 << 24
        assert {k: QAddSettings.unpack(w) for k, w in st.packed().items()} == \
            {"r_a": st.r_a, "r_b": st.r_b, "f": st.f}
        assert set(st.registers()) == {"ra_mantissa", "ra_exponent", "rb_mantissa",
                                       "rb_exponent", "f_sign", "f_mantissa", "f_exponent"}


def test_fl_rounds_half_even():
    assert fl(Fraction(2 ** 24 + 1)) == 2 ** 24                    # tie: to even
    assert fl(Fraction(2 ** 24 + 3)) == 2 ** 24 + 4
    assert fl(Fraction(-(2 ** 25 + 2))) == -(2 ** 25)
    assert fl(Fraction(1, 3)) == Fraction(float(np.float32(1) / np.float32(3)))
    x = np.float32(0.1) * np.float32(3)
    assert fl(Fraction(float(np.float32(0.1))) * 3) == Fraction(float(x))


def test_fma_model_is_exact_over_the_alignment_range():
    """The bit-level fused multiply-add (window, sticky bit, bypasses, rounding) equals exact
    rational arithmetic rounded once, for addends from far below to far above the product,
    half of them with few-bit mantissas (many exact ties)."""
    rng = np.random.default_rng(5)
    n = 12_000
    x = rng.integers(0, 256, n)
    x[:n // 4] = rng.choice([0, 1, 2, 3, 128, 255], n // 4)
    mx = rng.integers(1 << 23, 1 << 24, n)
    few = rng.random(n) < 0.5
    mx[few] = (rng.integers(8, 16, few.sum()) * 2 + 1) << 19
    ex = rng.integers(-60, 40, n)
    s = rng.integers(-45, 50, n)                  # the addend's window position
    mc = rng.integers(1 << 23, 1 << 24, n)
    mc[rng.random(n) < 0.2] = 1 << 23             # powers of two (the bypass special case)
    few = rng.random(n) < 0.3
    mc[few] = rng.integers(8, 16, few.sum()) << 20
    mc[rng.random(n) < 0.05] = 0
    sc = rng.integers(0, 2, n)
    ec = np.where(mc == 0, 0, ex + s - qlinear.GUARD)
    rs, rm, re = qlinear._fma(x * mx, ex, sc, mc, ec)
    for i in range(n):
        exact = Fraction(int(x[i] * mx[i])) * Fraction(2) ** int(ex[i]) \
            + _value((int(sc[i]), int(mc[i]), int(ec[i])))
        got = _value((int(rs[i]), int(rm[i]), int(re[i])))
        assert got == fl(exact), (i, x[i], mx[i], ex[i], s[i], sc[i], mc[i])
        assert rm[i] == 0 or 1 << 23 <= rm[i] < 1 << 24


# -- the bit-level model against the golden model, all operand pairs ----------------------------

@pytest.mark.parametrize("group", range(4))
def test_reference_every_pair_random_params(group):
    rng = np.random.default_rng(900 + group)
    for i in range(24):
        params = _random_params(rng, i)
        _check_all_pairs(params, f"random {group}/{i}")


@pytest.mark.parametrize("group", range(4))
def test_reference_every_pair_constructed_params(group):
    for label, params in _CONSTRUCTED[group::4]:
        _check_all_pairs(params, label)


def test_sticky_sets_hinge_on_the_sticky_bit():
    for label, pair, want in (("inner-sticky+", (0, 3), 201), ("inner-sticky-", (0, 3), 200),
                              ("outer-sticky+", (7, 0), 135), ("outer-sticky-", (7, 0), 134)):
        sa, za, sb, zb, sc, zc = dict(_EDGE_SETS)[label]
        assert qlinear_add([pair[0]], sa, za, [pair[1]], sb, zb, sc, zc)[0] == want, label


def test_constructed_params_reach_the_thresholds():
    """The constructed sets put each addend below the product (sticky), at the window's top
    position and beyond it (bypass), for both fused multiply-adds, and hold exact rint ties."""
    inner, outer = set(), set()
    for _, params in _CONSTRUCTED:
        st = qadd_settings(*params)
        if st.f[1]:
            inner.add(st.f[2] - st.r_b[2] + qlinear.GUARD)
        i_sign, i_mant, i_exp = qlinear._fma(np.arange(256) * st.r_b[1], st.r_b[2], *st.f)
        outer |= set((i_exp - st.r_a[2] + qlinear.GUARD)[i_mant != 0].tolist())
    top = qlinear.ADDEND_MAX_SHIFT
    for shifts in (inner, outer):
        assert min(shifts) <= 0 and {top, top + 1} <= shifts
    ties = 0
    for label, params in _CONSTRUCTED:
        if label.startswith("few-bits"):                   # r_a, r_b, F with few bits
            st = qadd_settings(*params)
            exact = (_A * float(_value(st.r_a)) + _B * float(_value(st.r_b))
                     + float(_value(st.f)))
            ties += np.sum((exact - np.floor(exact) == 0.5) & (exact > 0) & (exact < 255))
    assert ties > 100_000


# -- the RTL ---------------------------------------------------------------------------------------

def _rtl_operands(rng, params, n, lanes):
    """Operand pairs: the extremes and the zero points, the pairs whose sum (with the
    float32 ratios) is nearest k + 1/2, and random pairs; ``n`` words of ``lanes``."""
    st = qadd_settings(*params)
    special = np.array([0, 1, 2, 3, 7, 127, 128, 129, 254, 255, params[1], params[3]])
    ea, eb = (g.ravel() for g in np.meshgrid(special, special))
    exact = _A * float(_value(st.r_a)) + _B * float(_value(st.r_b)) + float(_value(st.f))
    near = np.argsort(np.abs(exact - np.floor(exact) - 0.5), kind="stable")[:n * lanes // 3]
    a = np.concatenate([ea, _A[near], rng.integers(0, 256, n * lanes)])[:n * lanes]
    b = np.concatenate([eb, _B[near], rng.integers(0, 256, n * lanes)])[:n * lanes]
    return a.reshape(n, lanes), b.reshape(n, lanes)


_RTL_SETS = [
    ("realistic", (np.float32(0.0123), 7, np.float32(0.0217), 200, np.float32(0.031), 128)),
    ("few-bits-f-zero", (np.float32(0.75), 0, np.float32(0.5), 0, np.float32(1.0), 0)),
    ("ra-huge-rb-tiny", (np.float32(2.0 ** 20), 17, np.float32(2.0 ** -20), 200,
                         np.float32(1.0), 3)),
    ("range-bounds", (np.float32(2.0 ** 24), 1, np.float32(2.0 ** -104), 255,
                      np.float32(2.0 ** -40), 255)),
    *_EDGE_SETS,
]


@pytest.mark.parametrize("label,params", _RTL_SETS, ids=[s[0] for s in _RTL_SETS])
def test_qadd_f32_rtl_matches_golden_with_stalls(label, params):
    rng = np.random.default_rng(len(label))
    lanes, n = 2, 300
    a, b = _rtl_operands(rng, params, n, lanes)
    st = qadd_settings(*params)
    words = [{"a": (a[k] - 128).tolist(), "b": (b[k] - 128).tolist()} for k in range(n)]
    got, _ = run_stream(QAddF32(lanes), words, n, config=st.registers(), idle=0.3, stall=0.3,
                        seed=len(label), decode=lambda p: list(p.c))
    sa, za, sb, zb, sc, zc = params
    want = qlinear_add(a, sa, za, b, sb, zb, sc, zc)
    np.testing.assert_array_equal(np.array(got) + 128, want, err_msg=label)
    np.testing.assert_array_equal(reference(a, b, st), want, err_msg=label)


def test_qadd_f32_one_word_per_cycle():
    st = qadd_settings(0.02, 3, 0.03, 5, 0.04, 7)
    n = 20
    words = [{"a": [k - 128, 127 - k], "b": [k, -k]} for k in range(n)]
    got, cycles = run_stream(QAddF32(2), words, n, config=st.registers(),
                             decode=lambda p: list(p.c))
    assert cycles == n + PIPELINE_DEPTH
    a = np.array([[k, 255 - k] for k in range(n)])
    b = np.array([[k + 128, 128 - k] for k in range(n)])
    np.testing.assert_array_equal(np.array(got) + 128,
                                  qlinear_add(a, 0.02, 3, b, 0.03, 5, 0.04, 7))


def test_rtl_and_model_share_their_constants():
    for name in ("MANTISSA_BITS", "EXPONENT_BITS", "GUARD", "ADDEND_MAX_SHIFT",
                 "ADDEND_MIN_SHIFT", "WINDOW_BITS"):
        assert getattr(qadd_f32, name) == getattr(qlinear, name), name


def test_qadd_f32_lints_clean(tmp_path):
    from sim.runner import emit_verilog, lint_verilog

    violations, _ = lint_verilog(emit_verilog(QAddF32(2), "qadd_f32"), "qadd_f32",
                                 work_dir=tmp_path)
    assert not violations, "\n".join(f"line {w.line}: %{w.rule}: {w.message}"
                                     for w in violations[:20])


# -- refusals ------------------------------------------------------------------------------------

@pytest.mark.parametrize("params,match", [
    ((2.0 ** 65, 0, 1.0, 0, 1.0, 0), r"^r_a = a_scale / c_scale = .* outside the supported "
                                     r"range \[2\^-64, 2\^64\]"),
    ((1.0, 0, 2.0 ** -65, 0, 1.0, 0), r"^r_b = b_scale / c_scale = .* outside"),
    ((1e-30, 0, 1.0, 0, 1e10, 0), r"^r_a = .* outside"),
    ((0.0, 0, 1.0, 0, 1.0, 0), r"^a_scale must be a positive finite float32"),
    ((1.0, 0, -1.0, 0, 1.0, 0), r"^b_scale must be a positive finite float32"),
    ((1.0, 0, 1.0, 0, float("inf"), 0), r"^c_scale must be a positive finite float32"),
    ((1.0, 0, 1.0, 0, float("nan"), 0), r"^c_scale must be"),
    ((1e39, 0, 1.0, 0, 1.0, 0), r"^a_scale must be"),              # overflows float32
    (([1.0, 2.0], 0, 1.0, 0, 1.0, 0), r"^a_scale must be"),
    ((1.0, 256, 1.0, 0, 1.0, 0), r"^a_zp must be an integer in 0\.\.255"),
    ((1.0, 0, 1.0, -1, 1.0, 0), r"^b_zp must be"),
    ((1.0, 0, 1.0, 0, 1.0, 1.5), r"^c_zp must be"),
    ((1.0, True, 1.0, 0, 1.0, 0), r"^a_zp must be"),
])
def test_qadd_settings_refuses(params, match):
    with pytest.raises(ValueError, match=match):
        qadd_settings(*params)


def test_settings_at_the_range_bounds_are_accepted():
    st = qadd_settings(2.0 ** 24, 255, 2.0 ** -104, 255, 2.0 ** -40, 255)
    assert _value(st.r_a) == 2 ** 64 and _value(st.r_b) == Fraction(1, 2 ** 64)


def test_check_qadd_settings_refuses_out_of_range_triples():
    ok = qadd_settings(0.5, 1, 0.25, 2, 1.0, 3)
    check_qadd_settings(ok)
    with pytest.raises(ValueError, match=r"^r_a = .* outside the supported range"):
        check_qadd_settings(QAddSettings((0, 1 << 23, 42), ok.r_b, ok.f))
    with pytest.raises(ValueError, match=r"^r_b exponent -129 does not fit"):
        check_qadd_settings(QAddSettings(ok.r_a, (0, 1 << 23, -129), ok.f))
    with pytest.raises(ValueError, match=r"^r_b must be a float32 triple"):
        check_qadd_settings(QAddSettings(ok.r_a, (1, 1 << 23, -30), ok.f))
    with pytest.raises(ValueError, match=r"^f must be a float32 triple"):
        check_qadd_settings(QAddSettings(ok.r_a, ok.r_b, (0, 5, -3)))
    with pytest.raises(ValueError, match=r"^a and b must be uint8 values"):
        reference([256], [0], ok)
    with pytest.raises(ValueError, match=r"^lanes must be at least 1, not 0$"):
        QAddF32(0)


def test_golden_helpers_agree_with_float32():
    """Sanity of the comparison itself: the golden model's float32 helpers are numpy's."""
    x = np.float32(0.1)
    assert f32_value(f32_mul(f32_parts(x), f32_parts(np.float32(3)))) == x * np.float32(3)
