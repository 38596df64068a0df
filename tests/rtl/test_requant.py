"""rtl.requant.Requant vs sim/models/requant.py in the Amaranth simulator, with stalls."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from dse.cost.transforms import requant_cycles
from rtl.requant import Requant
from sim.models.requant import requantize


def run_stream(dut, inputs, n_out, *, config=None, start=False, idle=0.0, stall=0.0, seed=0,
               decode=list, timeout=200_000):
    """Drive ``inputs`` into dut.i_stream (if any) and collect n_out words of dut.o_stream.

    Random source idles and sink back-pressure come from ``seed``.  Returns (outputs, cycles)
    with cycles counted from the first input transfer (or the ``start`` pulse) through the
    last output transfer, inclusive (the convention of dse/cost/transforms.py).
    """
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    got, marks = [], {}

    async def source(ctx):
        for name, value in (config or {}).items():
            ctx.set(getattr(dut, name), value)
        k = 0
        if start:
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            marks["first"], k = 0, 1
        rng, i, pending = random.Random(seed), 0, False
        while i < len(inputs):
            s = dut.i_stream
            if pending or rng.random() >= idle:
                ctx.set(s.payload, inputs[i])
                ctx.set(s.valid, 1)
            else:
                ctx.set(s.valid, 0)
            _, _, v, r = await ctx.tick().sample(s.valid, s.ready)
            pending = bool(v and not r)
            if v and r:
                marks.setdefault("first", k)
                i += 1
            k += 1
        if inputs:
            ctx.set(dut.i_stream.valid, 0)

    async def sink(ctx):
        rng, k = random.Random(seed + 1), 0
        o = dut.o_stream
        while len(got) < n_out:
            ctx.set(o.ready, 0 if rng.random() < stall else 1)
            _, _, v, r, p = await ctx.tick().sample(o.valid, o.ready, o.payload)
            if v and r:
                got.append(decode(p))
                marks["last"] = k
            k += 1
            assert k < timeout, f"only {len(got)} of {n_out} words in {timeout} cycles"

    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    return got, marks["last"] - marks["first"] + 1


@pytest.mark.parametrize("lanes,acc_w,out_w,mult_w", [(2, 32, 8, 16), (1, 48, 16, 24)])
@pytest.mark.parametrize("relu", [0, 1])
def test_requant_bit_exact_with_stalls(lanes, acc_w, out_w, mult_w, relu):
    rng = np.random.default_rng(lanes + relu)
    n = 40
    acc = rng.integers(-(1 << (acc_w - 1)), 1 << (acc_w - 1), (n, lanes))
    acc[0, 0], acc[1, 0], acc[2, 0] = -(1 << (acc_w - 1)), (1 << (acc_w - 1)) - 1, 0
    acc[3:8] >>= acc_w - 10                         # small values: exercise rounding ties
    mult, shift = int(rng.integers(1, 1 << mult_w)), int(rng.integers(1, acc_w))
    dut = Requant(lanes, acc_w, out_w, mult_w)
    got, _ = run_stream(dut, acc.tolist(), n, config={"mult": mult, "shift": shift, "relu": relu},
                        idle=0.3, stall=0.3, seed=lanes)
    np.testing.assert_array_equal(got, requantize(acc, mult, shift, out_w, bool(relu)))


def test_requant_extremes_and_cycles():
    acc = np.array([[6, -6, 5, -5], [2, -2, 0, -1], [2 ** 31 - 1, -2 ** 31, 300, -300]])
    dut = Requant(4, 32, 8, 8)
    for shift in (0, 2):
        got, cycles = run_stream(dut, acc.tolist(), 3, config={"mult": 1, "shift": shift})
        np.testing.assert_array_equal(got, requantize(acc, 1, shift, 8))
        assert cycles == requant_cycles(3)


def test_requant_rejects_bad_params():
    with pytest.raises(ValueError, match=r"^lanes must be at least 1, not 0$"):
        Requant(0)
    with pytest.raises(TypeError, match=r"^acc_width must be an integer, not 3.0$"):
        Requant(1, 3.0)


@pytest.mark.regress
@pytest.mark.parametrize("seed", range(6))
def test_requant_sweep(seed):
    rng = np.random.default_rng(1000 + seed)
    lanes = int(rng.integers(1, 9))
    acc_w, out_w = [(32, 8), (48, 16)][seed % 2]
    mult_w = int(rng.integers(4, 25))
    acc = rng.integers(-(1 << (acc_w - 1)), 1 << (acc_w - 1), (300, lanes))
    acc >>= rng.integers(0, acc_w - 2, (300, lanes))
    mult, shift = int(rng.integers(0, 1 << mult_w)), int(rng.integers(0, 63))
    relu = seed % 3 == 0
    dut = Requant(lanes, acc_w, out_w, mult_w)
    cfg = {"mult": mult, "shift": shift, "relu": int(relu)}
    got, _ = run_stream(dut, acc.tolist(), 300, config=cfg, idle=0.4, stall=0.4, seed=seed)
    np.testing.assert_array_equal(got, requantize(acc, mult, shift, out_w, relu))
    _, cycles = run_stream(Requant(lanes, acc_w, out_w, mult_w), acc.tolist(), 300, config=cfg)
    assert cycles == requant_cycles(300)


@pytest.mark.verilator
def test_lints_clean(tmp_path):
    from sim.runner import LINT_WAIVERS, emit_verilog, lint_verilog
    for i, dut in enumerate([Requant(2)]):
        top = f"lint_requant{i}"
        violations, waived = lint_verilog(emit_verilog(dut, top), top, work_dir=tmp_path)
        assert not violations, [(v.rule, v.line, v.message) for v in violations[:10]]
        assert {w.rule for w in waived} <= set(LINT_WAIVERS)
