"""rtl.winograd units vs sim/models/winograd.py (Amaranth simulator, random stalls).

The output side is the output accumulator (each transformed position's C vector added into
the m² sums of its word, positions in GEMM order) and the scale units; together they must
give Aᵀ·M·A divided by the weights' scale.  Also runs a whole F(2×2,3×3) layer as input
transform → (numpy element-wise GEMMs, the array's job) → output side and checks it equals
exact convolution.
"""


import numpy as np
import pytest

from dse.cost.transforms import (winograd_input_transform_cycles,
                                 winograd_output_transform_cycles)
from amaranth.sim import Simulator

from rtl.winograd import InputTransform, OutputAccumulator, OutputScale, output_coefficients
from sim.bench.amaranth_stream import run_stream
from sim.models.conv import conv2d
from sim.models.winograd import input_transform, output_transform, transform_weights


def rtl_input_transform(d, m, in_width, **kw):
    t = m + 2
    got, cycles = run_stream(InputTransform(m, in_width), d.reshape(-1, t * t).tolist(),
                             len(d), **kw)
    return np.array(got).reshape(-1, t, t), cycles


def rtl_output_sums(acc, m, acc_width, lanes=4):
    """Aᵀ·M·A of each (t×t) accumulator tile, summed by OutputAccumulator: ``lanes`` tiles at
    a time as its lanes (one word), the positions g = 0 … (m+2)² − 1 one a cycle, each new
    sum fed back as the word's ``prev`` (what the datapath's buffer gives it)."""
    if len(acc) > lanes:
        parts = [rtl_output_sums(acc[i:i + lanes], m, acc_width, lanes)
                 for i in range(0, len(acc), lanes)]
        return np.concatenate([p[0] for p in parts]), parts[0][1]
    t = m + 2
    flat = np.asarray(acc, dtype=np.int64).reshape(len(acc), t * t)
    dut = OutputAccumulator(m, acc_width, len(acc))
    out = {}

    async def bench(ctx):
        prev = [[0] * len(acc) for _ in range(m * m)]
        for g in range(t * t):
            ctx.set(dut.i_valid, 1)
            ctx.set(dut.g, g)
            ctx.set(dut.c, [int(v) for v in flat[:, g]])
            await ctx.tick()
            ctx.set(dut.i_valid, 0)
            ctx.set(dut.prev, prev)
            assert ctx.get(dut.o_valid)
            new = ctx.get(dut.sums)
            prev = [[int(new[e][i]) for i in range(len(acc))] for e in range(m * m)]
        out["sums"] = np.array(prev, dtype=np.int64).T.reshape(-1, m, m)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out["sums"], dut.out_width


def rtl_output_transform(acc, m, acc_width, **kw):
    """The output side: sums, then the scale units (a stream, with ``kw``'s stalls)."""
    sums, width = rtl_output_sums(acc, m, acc_width)
    got, cycles = run_stream(OutputScale(m, width), sums.reshape(-1, m * m).tolist(),
                             len(acc), **kw)
    return np.array(got).reshape(-1, m, m), cycles


@pytest.mark.parametrize("m,bits", [(2, 8), (4, 8), (2, 16)])
def test_input_transform_bit_exact(m, bits):
    rng = np.random.default_rng(m + bits)
    t = m + 2
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    d = rng.integers(lo, hi + 1, (12, t, t))
    d[0], d[1] = lo, hi                                       # extremes
    d[2] = np.where(np.indices((t, t)).sum(0) % 2, lo, hi)
    got, _ = rtl_input_transform(d, m, bits, idle=0.3, stall=0.3, seed=m)
    np.testing.assert_array_equal(got, input_transform(d, m))


def transformed_sums(rng, m, count, channels, bits=8, extreme=False):
    """Accumulations the array can produce: Σ over channels of U'⊙V for random (or extreme)
    kernels and tiles, so Aᵀ M A is a multiple of the weights' scale."""
    t = m + 2
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    d = rng.integers(lo, hi + 1, (count, channels, t, t))
    g = rng.integers(lo, hi + 1, (count, channels, 3, 3))
    if extreme:
        d = np.where(rng.random(d.shape) < 0.5, lo, hi)
        g = np.where(rng.random(g.shape) < 0.5, lo, hi)
    return (transform_weights(g, m) * input_transform(d, m)).sum(axis=1)


@pytest.mark.parametrize("m", [2, 4])
def test_output_coefficients_are_the_transform(m):
    # the sum over positions of coef[e][g]·M[g] is Aᵀ M A, for M each unit matrix
    t = m + 2
    coef = np.array(output_coefficients(m))
    at = np.array({2: [[1, 1, 1, 0], [0, 1, -1, -1]],
                   4: [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                       [0, 1, -1, 8, -8, 1]]}[m])
    for g in range(t * t):
        unit = np.zeros(t * t, dtype=np.int64)
        unit[g] = 1
        np.testing.assert_array_equal(coef[:, g], (at @ unit.reshape(t, t) @ at.T).ravel())


@pytest.mark.parametrize("m,acc_w", [(2, 32), (4, 40), (4, 48)])
def test_output_transform_bit_exact(m, acc_w):
    rng = np.random.default_rng(m + acc_w)
    acc = np.concatenate([transformed_sums(rng, m, 8, 16),
                          transformed_sums(rng, m, 8, 16, extreme=True),
                          -transformed_sums(rng, m, 2, 64, extreme=True)])
    got, _ = rtl_output_transform(acc, m, acc_w, idle=0.3, stall=0.3, seed=m)
    np.testing.assert_array_equal(got, output_transform(acc, m))


def test_cycles_match_formula():
    d = np.arange(5 * 16).reshape(5, 4, 4) - 40
    _, cycles = rtl_input_transform(d, 2, 8)
    assert cycles == winograd_input_transform_cycles(5, 1, m=2)
    acc = np.zeros((7, 6, 6), dtype=np.int64)
    _, cycles = rtl_output_transform(acc, 4, 32)
    assert cycles == winograd_output_transform_cycles(7, 1, m=4)


def test_f2_layer_through_rtl_transforms_is_exact():
    # 3 channels, 2 filters, 6×5 input, padding 1: 3×3 output tiles of 2×2
    rng = np.random.default_rng(4)
    x = rng.integers(-128, 128, (3, 6, 5))
    w = rng.integers(-128, 128, (2, 3, 3, 3))
    oh, ow = 6, 5
    th, tw = 3, 3
    xp = np.zeros((3, th * 2 + 2, tw * 2 + 2), dtype=np.int64)
    xp[:, 1:7, 1:6] = x
    tiles = np.array([[[xp[c, 2 * i:2 * i + 4, 2 * j:2 * j + 4] for j in range(tw)]
                       for i in range(th)] for c in range(3)])           # c, th, tw, 4, 4
    v, _ = rtl_input_transform(tiles.reshape(-1, 4, 4), 2, 8, stall=0.2, seed=3)
    v = v.reshape(3, th, tw, 4, 4)
    u = transform_weights(w, 2)                                         # 4·U, 12-bit
    acc = np.einsum("nckl,cijkl->nijkl", u, v)                          # the array's GEMMs
    y, _ = rtl_output_transform(acc.reshape(-1, 4, 4), 2, 32, idle=0.2, seed=5)
    y = y.reshape(2, th, tw, 2, 2).transpose(0, 1, 3, 2, 4).reshape(2, 6, 6)[:, :oh, :ow]
    np.testing.assert_array_equal(y, conv2d(x, w, 1, 1))


def test_rejects_bad_m():
    with pytest.raises(ValueError, match=r"^m must be one of \(2, 4\), not 3$"):
        InputTransform(3)


@pytest.mark.regress
@pytest.mark.parametrize("m,bits", [(2, 8), (4, 8), (2, 16), (4, 16)])
def test_transforms_sweep(m, bits):
    rng = np.random.default_rng(50 + m + bits)
    t = m + 2
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    d = rng.integers(lo, hi + 1, (150, t, t))
    d[rng.random(d.shape) < 0.2] = lo
    d[rng.random(d.shape) < 0.2] = hi
    got, _ = rtl_input_transform(d, m, bits, idle=0.4, stall=0.4, seed=bits)
    np.testing.assert_array_equal(got, input_transform(d, m))
    acc_w = 40 if bits == 8 else 64
    acc = np.concatenate([transformed_sums(rng, m, 100, 8, bits),
                          transformed_sums(rng, m, 50, 8, bits, extreme=True)])
    got, cycles = rtl_output_transform(acc, m, acc_w, idle=0.4, stall=0.4, seed=m)
    np.testing.assert_array_equal(got, output_transform(acc, m))
    _, cycles = rtl_output_transform(acc, m, acc_w)
    assert cycles == winograd_output_transform_cycles(150, 1, m=m)


@pytest.mark.regress
def test_f4_layer_through_rtl_transforms_is_exact():
    rng = np.random.default_rng(6)
    c, n = 3, 2
    x = rng.integers(-128, 128, (c, 8, 8))
    w = rng.integers(-128, 128, (n, c, 3, 3))
    xp = np.zeros((c, 10, 10), dtype=np.int64)
    xp[:, 1:9, 1:9] = x
    tiles = np.array([[[xp[ch, 4 * i:4 * i + 6, 4 * j:4 * j + 6] for j in range(2)]
                       for i in range(2)] for ch in range(c)])
    v, _ = rtl_input_transform(tiles.reshape(-1, 6, 6), 4, 8, stall=0.3, seed=1)
    u = transform_weights(w, 4)                                         # 576·U, 18-bit
    acc = np.einsum("nckl,cijkl->nijkl", u, v.reshape(c, 2, 2, 6, 6))
    y, _ = rtl_output_transform(acc.reshape(-1, 6, 6), 4, 40, idle=0.3, seed=2)
    y = y.reshape(n, 2, 2, 4, 4).transpose(0, 1, 3, 2, 4).reshape(n, 8, 8)
    np.testing.assert_array_equal(y, conv2d(x, w, 1, 1))


@pytest.mark.verilator
def test_lints_clean(tmp_path):
    from sim.runner import LINT_WAIVERS, emit_verilog, lint_verilog
    for i, dut in enumerate([InputTransform(4, 8), OutputAccumulator(2, 32, 2),
                             OutputAccumulator(4, 40, 2), OutputScale(4, 49)]):
        top = f"lint_winograd{i}"
        violations, waived = lint_verilog(emit_verilog(dut, top), top, work_dir=tmp_path)
        assert not violations, [(v.rule, v.line, v.message) for v in violations[:10]]
        assert {w.rule for w in waived} <= set(LINT_WAIVERS)
