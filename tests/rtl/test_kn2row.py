"""rtl.kn2row.ShiftAdd vs sim/models/kn2row.py: bit-exact assembly, cycles == formula."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from dse.cost.transforms import kn2row_shift_add_cycles
from rtl.kn2row import ShiftAdd
from sim.models.conv import conv2d, conv_out_size
from sim.models.kn2row import kn2row_partials, partial_words, shift_add


def rtl_shift_add(partials, out_h, out_w, stride, pad, dil, lanes, *, idle=0.0, stall=0.0,
                  seed=0, acc_width=32, dut=None, runs=1):
    """Stream partial words through the unit ``runs`` times; returns ([outputs], [cycles])."""
    r, s, n, h, w = partials.shape
    fw = -(-n // lanes)
    words = partial_words(partials, lanes).tolist()
    n_out = out_h * out_w * fw
    dut = dut or ShiftAdd(lanes, acc_width, acc_width, depth=max(n_out, 1))
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    results, cycles = [], []

    async def bench(ctx):
        for name, v in dict(in_h=h, in_w=w, kernel_h=r, kernel_w=s, out_h=out_h, out_w=out_w,
                            f_words=fw, pad=pad, dil=dil,
                            stride_log2=stride.bit_length() - 1).items():
            ctx.set(getattr(dut, name), v)
        rng = random.Random(seed)
        for _ in range(runs):
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            got, i, cyc, last, pending = [], 0, 1, None, False
            src, o = dut.i_stream, dut.o_stream
            while len(got) < n_out:
                if i < len(words) and (pending or rng.random() >= idle):
                    ctx.set(src.payload, words[i])
                    ctx.set(src.valid, 1)
                else:
                    ctx.set(src.valid, 0)
                ctx.set(o.ready, 0 if rng.random() < stall else 1)
                _, _, iv, ir, ov, orr, p = await ctx.tick().sample(
                    src.valid, src.ready, o.valid, o.ready, o.payload)
                pending = bool(iv and not ir)
                if iv and ir:
                    i += 1
                if ov and orr:
                    got.append(list(p))
                    last = cyc
                cyc += 1
                assert cyc < 200_000
            ctx.set(src.valid, 0)
            ctx.set(o.ready, 1)
            await ctx.tick().until(~dut.busy)
            assert i == len(words)
            results.append(np.array(got))
            cycles.append(last + 1)

    sim.add_testbench(bench)
    sim.run()
    return [res.reshape(out_h, out_w, fw * lanes).transpose(2, 0, 1)[:n] for res in results], \
        cycles


# (channels, h, w, filters, kernel, stride, pad, dilation, lanes)
CASES = [(3, 5, 6, 5, 3, 1, 1, 1, 2), (4, 6, 5, 3, 1, 2, 0, 1, 4), (2, 7, 6, 3, 5, 2, 2, 1, 2),
         (3, 6, 6, 2, 3, 1, 2, 2, 1), (2, 5, 5, 3, 7, 1, 3, 1, 2)]


@pytest.mark.parametrize("case", CASES)
def test_shift_add_bit_exact(case):
    c, h, w, n, k, s, p, d, lanes = case
    rng = np.random.default_rng(sum(case))
    x = rng.integers(-128, 128, (c, h, w))
    wt = rng.integers(-128, 128, (n, c, k, k))
    oh, ow = conv_out_size(h, k, s, p, d), conv_out_size(w, k, s, p, d)
    parts = kn2row_partials(x, wt)                  # the array's 1×1 GEMM outputs
    got, _ = rtl_shift_add(parts, oh, ow, s, p, d, lanes, idle=0.3, stall=0.3, seed=n)
    np.testing.assert_array_equal(got[0], shift_add(parts, oh, ow, s, p, d))
    np.testing.assert_array_equal(got[0], conv2d(x, wt, s, p, d))


def test_buffer_is_clear_for_the_next_layer_and_cycles_match():
    # the same layer twice on one unit: the drain must have zeroed the buffer
    c, h, w, n, k, s, p, d, lanes = (2, 4, 4, 3, 3, 1, 1, 1, 2)
    rng = np.random.default_rng(1)
    parts = kn2row_partials(rng.integers(-128, 128, (c, h, w)),
                            rng.integers(-128, 128, (n, c, k, k)))
    got, cycles = rtl_shift_add(parts, 4, 4, s, p, d, lanes, runs=2)
    want = shift_add(parts, 4, 4, s, p, d)
    np.testing.assert_array_equal(got[0], want)
    np.testing.assert_array_equal(got[1], want)
    assert cycles == [kn2row_shift_add_cycles(h, w, k, k, 4, 4, 2)] * 2


def test_one_pixel_taps_hit_the_same_address_back_to_back():
    # 1×1 input, 1 filter word: every tap's single word lands on the same output address,
    # one cycle after the previous one (the transparent read must forward the new sum)
    parts = np.arange(1, 10).reshape(3, 3, 1, 1, 1) * 1000
    got, cycles = rtl_shift_add(parts, 1, 1, 1, 1, 1, 1)
    np.testing.assert_array_equal(got[0], shift_add(parts, 1, 1, 1, 1, 1))
    assert cycles == [kn2row_shift_add_cycles(1, 1, 3, 3, 1, 1, 1)]


def test_int16_partials_with_48_bit_accumulators():
    rng = np.random.default_rng(5)
    x = rng.integers(-32768, 32768, (3, 4, 5))
    wt = rng.integers(-32768, 32768, (2, 3, 3, 3))
    parts = kn2row_partials(x, wt)
    got, _ = rtl_shift_add(parts, 4, 5, 1, 1, 1, 2, acc_width=48)
    np.testing.assert_array_equal(got[0], conv2d(x, wt, 1, 1))


@pytest.mark.regress
@pytest.mark.parametrize("seed", range(8))
def test_shift_add_sweep(seed):
    rng = np.random.default_rng(400 + seed)
    k = [1, 3, 5, 7][seed % 4]
    s = [1, 2, 4][seed % 3]
    d = int(rng.integers(1, 3)) if k < 5 else 1
    p = int(rng.integers(0, k // 2 * d + 1))
    c, n, lanes = int(rng.integers(1, 6)), int(rng.integers(1, 8)), int(rng.integers(1, 4))
    h, w = int(rng.integers(d * (k - 1) + 1, 10)), int(rng.integers(d * (k - 1) + 1, 10))
    bits, acc_w = (16, 48) if seed % 3 == 0 else (8, 32)
    x = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (c, h, w))
    wt = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (n, c, k, k))
    oh, ow = conv_out_size(h, k, s, p, d), conv_out_size(w, k, s, p, d)
    parts = kn2row_partials(x, wt)
    got, _ = rtl_shift_add(parts, oh, ow, s, p, d, lanes, idle=0.3, stall=0.3, seed=seed,
                           acc_width=acc_w)
    np.testing.assert_array_equal(got[0], conv2d(x, wt, s, p, d))
    _, cycles = rtl_shift_add(parts, oh, ow, s, p, d, lanes, acc_width=acc_w)
    assert cycles == [kn2row_shift_add_cycles(h, w, k, k, oh, ow, -(-n // lanes))]


@pytest.mark.verilator
def test_lints_clean(tmp_path):
    from sim.runner import LINT_WAIVERS, emit_verilog, lint_verilog
    for i, dut in enumerate([ShiftAdd(2, 32, 32, 256)]):
        top = f"lint_kn2row{i}"
        violations, waived = lint_verilog(emit_verilog(dut, top), top, work_dir=tmp_path)
        assert not violations, [(v.rule, v.line, v.message) for v in violations[:10]]
        assert {w.rule for w in waived} <= set(LINT_WAIVERS)
