"""rtl.im2col.Im2col vs sim/models/im2col.py: patch words bit-exact, cycles == formula."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from dse.cost.transforms import im2col_stream_cycles
from rtl.im2col import Im2col
from sim.bench.amaranth_stream import take_words
from sim.models.conv import conv2d, conv_out_size
from sim.models.im2col import hwc_words, im2col_weights, im2col_words


def rtl_im2col(x, k, stride, pad, dil, lanes, *, stall=0.0, seed=0, width=8, runs=None):
    """Load x into the buffer, run the generator, return (words, cycles from start).

    ``runs``: output rows of each run (default: one run of every row); the first starts
    with ``first``, the others carry on from the previous run's last row."""
    c, h, w = x.shape
    cw = -(-c // lanes)
    oh, ow = conv_out_size(h, k, stride, pad, dil), conv_out_size(w, k, stride, pad, dil)
    buf = hwc_words(x, lanes)
    dut = Im2col(lanes, width, depth=len(buf))
    n_out = oh * ow * k * k * cw
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    got, marks = [], {}

    async def bench(ctx):
        for a, word in enumerate(buf.tolist()):          # the loader fills the buffer
            ctx.set(dut.w_addr, a)
            ctx.set(dut.w_data, word)
            ctx.set(dut.w_en, 1)
            await ctx.tick()
        ctx.set(dut.w_en, 0)
        rng, cyc, o = random.Random(seed), 1, dut.o_stream
        for i, rows in enumerate(runs or [oh]):
            for name, v in dict(in_h=h, in_w=w, c_words=cw, kernel_h=k, kernel_w=k,
                                stride=stride, pad=pad, dil=dil, out_h=rows,
                                out_w=ow).items():
                ctx.set(getattr(dut, name), v)
            ctx.set(dut.first, i == 0)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            ctx.set(dut.first, 0)
            cyc = await take_words(ctx, o, got, len(got) + rows * ow * k * k * cw, rng,
                                   stall=stall, marks=marks, cycle=cyc, timeout=100_000)
            while ctx.get(dut.busy):
                await ctx.tick()
        await ctx.tick().repeat(3)
        assert not ctx.get(o.valid), "generator streamed more words than the layer has"

    sim.add_testbench(bench)
    sim.run()
    return np.array(got), marks["last"] + 1


# (channels, h, w, kernel, stride, pad, dilation, lanes)
CASES = [(3, 5, 6, 3, 1, 1, 1, 2), (5, 6, 5, 1, 2, 0, 1, 4), (2, 7, 6, 5, 2, 2, 1, 2),
         (4, 6, 6, 3, 1, 2, 2, 4), (1, 9, 8, 7, 2, 3, 1, 1)]


@pytest.mark.parametrize("case", CASES)
def test_im2col_words_bit_exact(case):
    c, h, w, k, s, p, d, lanes = case
    rng = np.random.default_rng(sum(case))
    x = rng.integers(-128, 128, (c, h, w))
    x.flat[0], x.flat[-1] = -128, 127
    got, cycles = rtl_im2col(x, k, s, p, d, lanes, stall=0.3, seed=c)
    np.testing.assert_array_equal(got, im2col_words(x, k, s, p, d, lanes))


@pytest.mark.parametrize("case", CASES)
def test_im2col_runs_carry_on_from_the_previous_band(case):
    """A layer streamed as bands of output rows (the datapath's im2col GEMMs), each run
    after the first carrying on from where the previous one stopped, is the whole layer's
    stream."""
    c, h, w, k, s, p, d, lanes = case
    rng = np.random.default_rng(sum(case) + 1)
    x = rng.integers(-128, 128, (c, h, w))
    oh = conv_out_size(h, k, s, p, d)
    want = im2col_words(x, k, s, p, d, lanes)
    runs = [1, oh - 1] if oh > 1 else [1]
    if oh > 3:
        runs = [2, 1, oh - 3]
    got, _ = rtl_im2col(x, k, s, p, d, lanes, stall=0.2, seed=c, runs=runs)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("case", CASES[:3])
def test_im2col_cycles_match_formula(case):
    c, h, w, k, s, p, d, lanes = case
    x = np.ones((c, h, w), dtype=np.int64)
    got, cycles = rtl_im2col(x, k, s, p, d, lanes)
    oh, ow = conv_out_size(h, k, s, p, d), conv_out_size(w, k, s, p, d)
    assert cycles == im2col_stream_cycles(oh, ow, k, k, -(-c // lanes))


def test_im2col_stream_times_weights_is_conv():
    # the streamed patch rows, multiplied by B as the array would, give the convolution
    rng = np.random.default_rng(8)
    x = rng.integers(-128, 128, (3, 6, 5))
    wt = rng.integers(-128, 128, (4, 3, 3, 3))
    got, _ = rtl_im2col(x, 3, 2, 1, 1, 2, stall=0.2)
    a = got.reshape(-1, 9 * 2 * 2)[:, np.arange(9 * 4).reshape(9, 4)[:, :3].ravel()]
    out = (a @ im2col_weights(wt)).T.reshape(4, 3, 3)
    np.testing.assert_array_equal(out, conv2d(x, wt, 2, 1))


def test_im2col_int16_words():
    rng = np.random.default_rng(2)
    x = rng.integers(-32768, 32768, (3, 4, 4))
    got, _ = rtl_im2col(x, 3, 1, 1, 1, 3, width=16)
    np.testing.assert_array_equal(got, im2col_words(x, 3, 1, 1, 1, 3))


@pytest.mark.regress
@pytest.mark.parametrize("seed", range(8))
def test_im2col_sweep(seed):
    rng = np.random.default_rng(300 + seed)
    k = [1, 3, 5, 7][seed % 4]
    s, d = int(rng.integers(1, 3)), int(rng.integers(1, 3)) if k < 5 else 1
    p = int(rng.integers(0, k // 2 * d + 1))
    c, lanes = int(rng.integers(1, 10)), int(rng.integers(1, 5))
    h, w = int(rng.integers(d * (k - 1) + 1, 12)), int(rng.integers(d * (k - 1) + 1, 12))
    bits = 16 if seed % 3 == 0 else 8
    x = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (c, h, w))
    got, _ = rtl_im2col(x, k, s, p, d, lanes, stall=0.4, seed=seed, width=bits)
    np.testing.assert_array_equal(got, im2col_words(x, k, s, p, d, lanes))
    _, cycles = rtl_im2col(x, k, s, p, d, lanes, width=bits)
    oh, ow = conv_out_size(h, k, s, p, d), conv_out_size(w, k, s, p, d)
    assert cycles == im2col_stream_cycles(oh, ow, k, k, -(-c // lanes))


@pytest.mark.verilator
def test_lints_clean(tmp_path):
    from sim.runner import LINT_WAIVERS, emit_verilog, lint_verilog
    for i, dut in enumerate([Im2col(4, 8, 256)]):
        top = f"lint_im2col{i}"
        violations, waived = lint_verilog(emit_verilog(dut, top), top, work_dir=tmp_path)
        assert not violations, [(v.rule, v.line, v.message) for v in violations[:10]]
        assert {w.rule for w in waived} <= set(LINT_WAIVERS)
