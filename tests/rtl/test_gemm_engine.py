"""GemmEngine in the Amaranth simulator: bit-exact C and cycles equal to the formula.

The harness ``sim_gemms`` (STYLE.md example 12) runs GEMMs back to back through the engine's
streams as a host would: it loads the next GEMM's operands while the current one computes
(double buffering), drives random idles on the A/B sources and random back-pressure on the C
sink from seeded generators, and returns each GEMM's C, the ``cycles`` register and the
number of cycles ``busy`` was observed high.  Expectations: C from ``sim.models.gemm``
(numpy int64 with explicit wrap), cycles from ``dse.cost.gemm.gemm_cycles`` (derived by hand
in docs/rtl.md), and the busy count observed independently of the counter.

Budget: the fast set runs in ~30 s of Amaranth simulation; sweeps are ``regress``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import pytest
from amaranth.sim import Simulator

from dse.cost.gemm import DEFAULT_MULT_LATENCY, gemm_cycles
from rtl.dsp import MAX_LATENCY
from rtl.gemm_engine import GemmEngine
from rtl.params import ArrayParams, Dataflow
from sim.models.gemm import golden_gemm

@dataclass(frozen=True)
class GemmRun:
    """Result of one GEMM on the engine."""

    c: np.ndarray
    cycles: int
    busy_cycles: int
    overlapped_load: bool  # some operand beat was taken while the previous GEMM computed


async def _put(ctx, strm, values, rng, idle, busy, overlap_flag):
    """Send ``values`` on ``strm``; random idles only between beats (valid never retracts)."""
    i = 0
    while i < len(values):
        if idle and rng.random() < idle:
            ctx.set(strm.valid, 0)
            await ctx.tick()
            continue
        ctx.set(strm.valid, 1)
        ctx.set(strm.payload, int(values[i]))
        *_, ready, is_busy = await ctx.tick().sample(strm.ready, busy)
        if ready:
            if is_busy:
                overlap_flag[0] = True
            i += 1
    ctx.set(strm.valid, 0)


def sim_gemms(params: ArrayParams, cases, *, mult_latency: int = 3, idle: float = 0.0,
              backpressure: float = 0.0, seed: int = 0, max_dim: int = 16,
              start_delay: int = 0) -> list[GemmRun]:
    """Run ``cases`` (a list of ``(a, b, dataflow_code)``) on one engine, back to back.

    Parameters
    ----------
    idle, backpressure:
        Probability of an idle cycle on the A and B sources, of ``ready`` low on the C sink.
    start_delay:
        Cycles the host waits after loading before raising ``start`` (at most; random).
    """
    eng = GemmEngine(params, max_m=max_dim, max_k=max_dim, max_n=max_dim,
                     mult_latency=mult_latency)
    rng = random.Random(seed)
    sim = Simulator(eng)
    sim.add_clock(1e-8)
    shapes = [(a.shape[0], a.shape[1], b.shape[1]) for a, b, _ in cases]
    loaded = [[False, False] for _ in cases]
    overlap = [[False] for _ in cases]
    cycles, busy_counts, outputs = [], [], []

    def set_dims(ctx, i):
        m, k, n = shapes[i]
        ctx.set(eng.m, m)
        ctx.set(eng.k, k)
        ctx.set(eng.n, n)
        ctx.set(eng.mode, cases[i][2])

    def source(which):
        async def run(ctx):
            strm = eng.a_stream if which == 0 else eng.b_stream
            src_rng = random.Random(rng.random())
            for i, case in enumerate(cases):
                await _put(ctx, strm, case[which].flatten(), src_rng, idle, eng.busy, overlap[i])
                loaded[i][which] = True
        return run

    async def control(ctx):
        ctl_rng = random.Random(rng.random())
        set_dims(ctx, 0)
        for i in range(len(cases)):
            while not all(loaded[i]):
                await ctx.tick()
            if start_delay:
                await ctx.tick().repeat(ctl_rng.randint(1, start_delay))
            ctx.set(eng.start, 1)
            while True:
                *_, ready = await ctx.tick().sample(eng.start_ready)
                if ready:
                    break
            ctx.set(eng.start, 0)
            if i + 1 < len(cases):
                set_dims(ctx, i + 1)

    async def monitor(ctx):
        prev_busy, count = 0, 0
        async for _, _, busy, cyc in ctx.tick().sample(eng.busy, eng.cycles):
            if busy:
                count += 1
            elif prev_busy:
                cycles.append(cyc)
                busy_counts.append(count)
                count = 0
            prev_busy = busy

    async def sink(ctx):
        snk_rng = random.Random(rng.random())
        for m, _, n in shapes:
            words = []
            while len(words) < m * n:
                ready = not (backpressure and snk_rng.random() < backpressure)
                ctx.set(eng.c_stream.ready, ready)
                *_, valid, payload = await ctx.tick().sample(eng.c_stream.valid,
                                                             eng.c_stream.payload)
                if valid and ready:
                    words.append(payload)
            outputs.append(np.array(words, dtype=np.int64).reshape(m, n))
        ctx.set(eng.c_stream.ready, 0)
        # A few more cycles: an extra (duplicated) beat would show up here.
        for _ in range(8):
            ctx.set(eng.c_stream.ready, 1)
            *_, valid = await ctx.tick().sample(eng.c_stream.valid)
            assert not valid, "c_stream offered a beat beyond the last GEMM's M·N"

    sim.add_testbench(source(0))
    sim.add_testbench(source(1))
    sim.add_testbench(control)
    sim.add_testbench(sink)
    sim.add_testbench(monitor, background=True)
    sim.run()
    assert len(cycles) == len(cases), f"saw {len(cycles)} GEMMs finish, not {len(cases)}"
    return [GemmRun(c, cyc, busy, ov[0])
            for c, cyc, busy, ov in zip(outputs, cycles, busy_counts, overlap)]


# ---- cases -------------------------------------------------------------------------------

FLOWS = [d.code for d in Dataflow]


def operand(rng, shape, width, kind):
    """A random or extreme ``width``-bit signed matrix."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    if kind == "zero":
        return np.zeros(shape, dtype=np.int64)
    if kind == "min":
        return np.full(shape, lo, dtype=np.int64)
    if kind == "max":
        return np.full(shape, hi, dtype=np.int64)
    if kind == "extreme":
        return rng.choice([lo, hi], size=shape).astype(np.int64)
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64)


def make_cases(params, shapes, seed, kinds=("random",)):
    """(a, b, flow) for every shape × dataflow, cycling through operand kinds."""
    rng = np.random.default_rng(seed)
    cases = []
    for i, (m, k, n) in enumerate(shapes):
        for flow in FLOWS:
            kind_a = kinds[(i + flow) % len(kinds)]
            kind_b = kinds[(i + 2 * flow + 1) % len(kinds)]
            cases.append((operand(rng, (m, k), params.a_width, kind_a),
                          operand(rng, (k, n), params.b_width, kind_b), flow))
    return cases


def check_runs(params, cases, runs, mult_latency=DEFAULT_MULT_LATENCY):
    """Every GEMM bit-exact; cycles register == busy count == the formula."""
    for (a, b, flow), run in zip(cases, runs):
        (m, k), n = a.shape, b.shape[1]
        where = f"{Dataflow(list(Dataflow)[flow]).value} M={m} K={k} N={n}"
        np.testing.assert_array_equal(
            run.c, golden_gemm(a, b, params.acc_width, params.a_width, params.b_width),
            err_msg=where)
        predicted = int(gemm_cycles(m, k, n, params.rows, params.cols, flow,
                                    mult_latency=mult_latency))
        assert (run.cycles, run.busy_cycles) == (predicted, predicted), where


# K = 1, M and N not multiples of the array, K much larger than the array, exact multiples.
SHAPES = [(1, 1, 1), (3, 5, 4), (5, 1, 3), (2, 13, 3), (4, 4, 4), (7, 3, 5)]
INT8 = ArrayParams(rows=2, cols=2, a_width=8, b_width=8, acc_width=32)


@pytest.mark.parametrize("stalls", [0.0, 0.35], ids=["no-stalls", "stalls"])
def test_2x2_int8_all_dataflows(stalls):
    cases = make_cases(INT8, SHAPES, seed=11,
                       kinds=("random", "extreme", "min", "max", "zero"))
    runs = sim_gemms(INT8, cases, idle=stalls, backpressure=stalls, seed=5, start_delay=3)
    check_runs(INT8, cases, runs)


def test_3x4_nonsquare():
    params = ArrayParams(rows=3, cols=4, a_width=8, b_width=8, acc_width=32)
    shapes = [(1, 1, 1), (5, 2, 9), (4, 11, 3)]
    cases = make_cases(params, shapes, seed=3, kinds=("random", "extreme"))
    runs = sim_gemms(params, cases, idle=0.25, backpressure=0.4, seed=9)
    check_runs(params, cases, runs)


def test_4x4_int16_acc48_extremes():
    params = ArrayParams(rows=4, cols=4, a_width=16, b_width=16, acc_width=48)
    shapes = [(5, 9, 6), (1, 1, 4)]
    cases = make_cases(params, shapes, seed=4, kinds=("min", "extreme", "random", "max"))
    runs = sim_gemms(params, cases, idle=0.2, backpressure=0.2, seed=2)
    check_runs(params, cases, runs)


@pytest.mark.parametrize("latency", [0, 1, 2, 4])
def test_multiplier_latency_in_formula(latency):
    params = ArrayParams(rows=2, cols=3, a_width=10, b_width=12, acc_width=32)
    cases = make_cases(params, [(3, 4, 5)], seed=latency, kinds=("random", "min"))
    runs = sim_gemms(params, cases, mult_latency=latency, seed=latency)
    check_runs(params, cases, runs, mult_latency=latency)


def test_loads_overlap_compute():
    # Double buffering: the host streams GEMM i+1's operands while GEMM i computes.
    cases = make_cases(INT8, [(6, 6, 6), (6, 6, 6)], seed=1)
    runs = sim_gemms(INT8, cases)
    check_runs(INT8, cases, runs)
    assert [r.overlapped_load for r in runs[1:]] == [True] * (len(runs) - 1)


def test_accumulator_at_its_limit():
    # acc_width 20 is the narrowest the constructor allows for max_k = 16 int8 products:
    # 16 · (-128)·(-128) = 2^18 = 262144 must come out exactly (a wrap would give -262144).
    params = ArrayParams(rows=2, cols=2, a_width=8, b_width=8, acc_width=20)
    a = np.full((2, 16), -128, dtype=np.int64)
    b = np.full((16, 3), -128, dtype=np.int64)
    for flow in FLOWS:
        runs = sim_gemms(params, [(a, b, flow)])
        assert runs[0].c.tolist() == [[262144] * 3] * 2
        check_runs(params, [(a, b, flow)], runs)
    with pytest.raises(ValueError, match=r"^acc_width must be at least 20 for max_k = 16 "):
        GemmEngine(ArrayParams(rows=2, cols=2, acc_width=19), max_k=16)


def test_golden_wraps_explicitly():
    # 4 · 127 · 127 = 64516 wraps in 16 bits to 64516 − 65536 = −1020 (hand computed).
    a = np.full((1, 4), 127)
    b = np.full((4, 1), 127)
    assert golden_gemm(a, b, acc_width=16).tolist() == [[-1020]]
    assert golden_gemm(a, b, acc_width=32).tolist() == [[64516]]
    with pytest.raises(ValueError, match=r"^a must fit in 8-bit signed"):
        golden_gemm(np.full((1, 1), 128), np.ones((1, 1), dtype=int))


def test_4x4_int8_long_k():
    params = ArrayParams(rows=4, cols=4, a_width=8, b_width=8, acc_width=32)
    cases = make_cases(params, [(6, 40, 5), (9, 1, 7)], seed=8, kinds=("random", "extreme"))
    runs = sim_gemms(params, cases, idle=0.3, backpressure=0.3, seed=3, max_dim=64)
    check_runs(params, cases, runs)


def test_1x1_array():
    params = ArrayParams(rows=1, cols=1, a_width=8, b_width=8, acc_width=32)
    cases = make_cases(params, [(1, 1, 1), (2, 3, 2)], seed=6, kinds=("random", "min"))
    runs = sim_gemms(params, cases, idle=0.3, backpressure=0.3, seed=4)
    check_runs(params, cases, runs)


# ---- construction errors -------------------------------------------------------------------

def test_bad_parameters():
    with pytest.raises(ValueError, match=r"^rows must be between 1 and 256, not 0$"):
        ArrayParams(rows=0)
    with pytest.raises(ValueError, match=r"^acc_width must be at least 33 for max_k = 131072 "):
        GemmEngine(ArrayParams(acc_width=32), max_k=1 << 17)
    with pytest.raises(ValueError, match=r"^target must be one of sim, xcup, ecp5, not 'asic'$"):
        GemmEngine(ArrayParams(), target="asic")
    with pytest.raises(ValueError, match=rf"^latency must be between 0 and {MAX_LATENCY}, not 5$"):
        GemmEngine(ArrayParams(), mult_latency=5)
    with pytest.raises(TypeError, match=r"^max_m must be an integer, not 2.0$"):
        GemmEngine(ArrayParams(), max_m=2.0)
    with pytest.raises(ValueError, match=r"^max_n must be at least 1, not 0$"):
        GemmEngine(ArrayParams(), max_n=0)
    with pytest.raises(TypeError, match=r"^params must be an ArrayParams, not 8$"):
        GemmEngine(8)
    with pytest.raises(ValueError, match=r"^a_width and b_width must be at most 18 for "):
        GemmEngine(ArrayParams(a_width=20, acc_width=64), target="ecp5")


# ---- regression sweep ----------------------------------------------------------------------

@pytest.mark.regress
@pytest.mark.parametrize("rows,cols", [(1, 1), (2, 2), (3, 4), (4, 4), (4, 2)])
def test_sweep_random_shapes(rows, cols):
    params = ArrayParams(rows=rows, cols=cols, a_width=8, b_width=8, acc_width=32)
    rng = np.random.default_rng(rows * 10 + cols)
    shapes = [tuple(int(x) for x in rng.integers(1, 12, size=3)) for _ in range(4)]
    shapes.append((3, 16, 2))
    cases = make_cases(params, shapes, seed=rows + cols,
                       kinds=("random", "extreme", "zero", "min", "max"))
    runs = sim_gemms(params, cases, idle=0.3, backpressure=0.3, seed=rows, start_delay=4)
    check_runs(params, cases, runs)


@pytest.mark.regress
@pytest.mark.parametrize("latency", range(MAX_LATENCY + 1))
def test_sweep_latency_int16(latency):
    params = ArrayParams(rows=3, cols=2, a_width=16, b_width=16, acc_width=48)
    cases = make_cases(params, [(4, 7, 5), (1, 2, 1)], seed=latency,
                       kinds=("extreme", "random"))
    runs = sim_gemms(params, cases, mult_latency=latency, idle=0.2, backpressure=0.5)
    check_runs(params, cases, runs, mult_latency=latency)
