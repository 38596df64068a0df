"""GemmEngine in the Amaranth simulator: bit-exact C and cycles equal to the formula.

The harness ``sim_gemms`` (STYLE.md example 12) runs GEMMs back to back through the engine's
streams as a host would: it loads the next GEMM's operands while the current one computes
(double buffering), drives random idles on the A/B sources and random back-pressure on the C
sink from seeded generators, and returns each GEMM's C, the ``cycles`` register and the
number of cycles ``busy`` was observed high.  Expectations: C from ``sim.models.gemm``
(numpy int64 with explicit wrap), cycles from ``dse.cost.gemm.gemm_cycles`` (derived by hand
in docs/rtl.md), and the busy count observed independently of the counter.

Wide streams (``a_wide``/``b_wide``/``c_wide``): the harness uses the beat orders written out
from docs/rtl.md in ``sim.bench.gemm_tb`` (shared with the Verilator tests), fills the lanes past the
matrix edge of A and B beats with random values (the engine must ignore them) and checks the
zero lanes of C beats; the beats each stream moved per GEMM are measured from the handshakes
and compared with ``dse.cost.gemm``'s ``a_beats``/``b_beats``/``c_beats``, and back-to-back
runs with ``pipelined_gemms_schedule``.

Budget: the fast set runs in ~30 s of Amaranth simulation; sweeps are ``regress``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import pytest
from amaranth.hdl import Fragment, Shape, signed
from amaranth.sim import Simulator

from dse.cost.gemm import (
    DEFAULT_MULT_LATENCY,
    a_beats,
    b_beats,
    c_beats,
    gemm_cycles,
    pipelined_gemms_cycles,
    pipelined_gemms_schedule,
)
from rtl.dsp import MAX_LATENCY
from rtl.gemm_engine import GemmEngine
from rtl.params import ArrayParams, Dataflow
from sim.bench.gemm_tb import a_stream_beats, b_stream_beats, c_beat_count, c_from_beats
from sim.models.gemm import golden_gemm


@dataclass(frozen=True)
class GemmRun:
    """Result of one GEMM on the engine."""

    c: np.ndarray
    cycles: int            # the cycles register when busy fell (-1: not the last GEMM of
    busy_cycles: int       # its busy run) and the cycles busy was seen high in that run
    alone: bool            # no other GEMM in its busy run (the engine took it idle)
    overlapped_load: bool  # some operand beat was taken while the previous GEMM computed
    a_beats: int = -1      # A / B beats the engine took between the previous start and this one
    b_beats: int = -1
    c_beats: int = -1      # C beats of this GEMM (as decoded by the test's beat order)
    start_cycle: int = -1  # cycle of the start handshake (cycle 0: the first clock cycle)
    last_c_cycle: int = -1  # cycle of its last C beat


def _flat(x) -> list[int]:
    """Narrow beats: the elements row-major."""
    return [int(v) for v in x.flatten()]


async def _put(ctx, strm, values, rng, idle, busy, overlap_flag):
    """Send ``values`` on ``strm``; random idles only between beats (valid never retracts)."""
    i = 0
    while i < len(values):
        if idle and rng.random() < idle:
            ctx.set(strm.valid, 0)
            await ctx.tick()
            continue
        ctx.set(strm.valid, 1)
        ctx.set(strm.payload, values[i])
        *_, ready, is_busy = await ctx.tick().sample(strm.ready, busy)
        if ready:
            if is_busy:
                overlap_flag[0] = True
            i += 1
    ctx.set(strm.valid, 0)


def sim_gemms(params: ArrayParams, cases, *, mult_latency: int = 3, idle: float = 0.0,
              backpressure: float = 0.0, seed: int = 0, max_dim: int = 16,
              start_delay: int = 0, wide=(False, False, False),
              eager_start: bool = False, capacity=(None, None, None),
              start_gaps=None) -> list[GemmRun]:
    """Run ``cases`` (a list of ``(a, b, dataflow_code)``) on one engine, back to back.

    Parameters
    ----------
    idle, backpressure:
        Probability of an idle cycle on the A and B sources, of ``ready`` low on the C sink.
    start_delay:
        Cycles the host waits after loading before raising ``start`` (at most; random).
    wide:
        ``(a_wide, b_wide, c_wide)`` of the engine; lanes of a wide beat past the matrix edge
        carry random values (the engine must ignore them).
    eager_start:
        Hold ``start`` high from the first cycle (the next GEMM's shape set right after each
        handshake) instead of raising it once the operands are sent.
    capacity:
        The engine's ``(a_words, b_words, c_words)`` per lane and half (``None``: the
        rectangle of ``max_dim``).
    start_gaps:
        Cycles from each start handshake to the first cycle ``start`` is up for the next
        GEMM (its handshake then, if the engine takes it), one per GEMM after the first;
        the host holds ``start`` until accepted, loaded or not.
    """
    a_wide, b_wide, c_wide = wide
    a_words, b_words, c_words = capacity
    eng = GemmEngine(params, max_m=max_dim, max_k=max_dim, max_n=max_dim,
                     mult_latency=mult_latency, a_wide=a_wide, b_wide=b_wide, c_wide=c_wide,
                     a_words=a_words, b_words=b_words, c_words=c_words)
    rng = random.Random(seed)
    pad_rng = random.Random(seed + 1)
    lo = -(1 << (min(params.a_width, params.b_width) - 1))

    def pad(count):
        return [pad_rng.choice([lo, -lo - 1, 1, -1]) for _ in range(count)]

    rows, cols = params.rows, params.cols
    streams = [(a_stream_beats(a, rows, pad) if a_wide else _flat(a),
                b_stream_beats(b, rows, cols, flow, pad) if b_wide else _flat(b))
               for a, b, flow in cases]
    sim = Simulator(eng)
    sim.add_clock(1e-8)
    shapes = [(a.shape[0], a.shape[1], b.shape[1]) for a, b, _ in cases]
    loaded = [[False, False] for _ in cases]
    overlap = [[False] for _ in cases]
    periods, outputs = [], []          # busy runs: (first busy cycle, cycles reg, count)
    fires, a_takes, b_takes, c_takes = [], [], [], []

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
            for i in range(len(cases)):
                await _put(ctx, strm, streams[i][which], src_rng, idle, eng.busy, overlap[i])
                loaded[i][which] = True
        return run

    async def control(ctx):
        ctl_rng = random.Random(rng.random())
        set_dims(ctx, 0)
        for i in range(len(cases)):
            if start_gaps is not None and i > 0 and start_gaps[i - 1] > 1:
                await ctx.tick().repeat(start_gaps[i - 1] - 1)
            while not all(loaded[i]) and not eager_start and start_gaps is None:
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

    # A stalled engine fails the test instead of hanging it: far more cycles than loading,
    # computing and draining every GEMM one after another with every stall and delay take.
    slack = 4 + (start_delay or 0) + max(start_gaps or [0])
    limit = 1000 + sum(slack * (m * k + k * n + m * n)
                       + int(gemm_cycles(m, k, n, rows, cols, flow, mult_latency=mult_latency))
                       for (m, k, n), (_, _, flow) in zip(shapes, cases))

    async def monitor(ctx):
        prev_busy, count, t, first = 0, 0, 0, 0
        async for _, _, busy, cyc, start, start_ready, av, ar, bv, br, cv, cr in ctx.tick().sample(
                eng.busy, eng.cycles, eng.start, eng.start_ready, eng.a_stream.valid,
                eng.a_stream.ready, eng.b_stream.valid, eng.b_stream.ready, eng.c_stream.valid,
                eng.c_stream.ready):
            if start and start_ready:
                fires.append(t)
            assert t < limit, f"engine stalled: {len(fires)} of {len(cases)} GEMMs started " \
                              f"by cycle {t}"
            if av and ar:
                a_takes.append(t)
            if bv and br:
                b_takes.append(t)
            if cv and cr:
                c_takes.append(t)
            if busy:
                if not prev_busy:
                    first = t
                count += 1
            elif prev_busy:
                periods.append((first, cyc, count))
                count = 0
            t += 1
            prev_busy = busy

    async def sink(ctx):
        snk_rng = random.Random(rng.random())
        for (m, _, n), (_, _, flow) in zip(shapes, cases):
            words = []
            while len(words) < c_beat_count(m, n, cols, flow, c_wide):
                ready = not (backpressure and snk_rng.random() < backpressure)
                ctx.set(eng.c_stream.ready, ready)
                *_, valid, payload = await ctx.tick().sample(eng.c_stream.valid,
                                                             eng.c_stream.payload)
                if valid and ready:
                    words.append([payload[i] for i in range(cols)] if c_wide else payload)
            if c_wide:
                c, bad = c_from_beats(words, m, n, cols, flow)
                assert bad == 0, f"nonzero lanes past the edge in {words}"
                outputs.append(c)
            else:
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
    assert len(fires) == len(cases)
    # each GEMM's busy run: the last one that began by the cycle after its start
    run_of = [max(j for j, (first, _, _) in enumerate(periods) if first <= f + 1)
              for f in fires]
    assert sorted(set(run_of)) == list(range(len(periods))), (run_of, periods)
    runs, prev_fire, c_seen = [], -1, 0
    for i, (c, ov) in enumerate(zip(outputs, overlap)):
        (m, _, n), flow = shapes[i], cases[i][2]
        n_a = sum(prev_fire < t < fires[i] for t in a_takes)
        n_b = sum(prev_fire < t < fires[i] for t in b_takes)
        n_c = c_beat_count(m, n, cols, flow, c_wide)
        c_seen += n_c
        last = i + 1 == len(cases) or run_of[i + 1] != run_of[i]
        _, cyc, busy = periods[run_of[i]]
        runs.append(GemmRun(c, cyc if last else -1, busy if last else -1,
                            run_of.count(run_of[i]) == 1, ov[0], n_a, n_b, n_c, fires[i],
                            c_takes[c_seen - 1]))
        prev_fire = fires[i]
    assert len(c_takes) == c_seen, f"c_stream moved {len(c_takes)} beats, not {c_seen}"
    return runs


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


def check_runs(params, cases, runs, mult_latency=DEFAULT_MULT_LATENCY,
               wide=(False, False, False)):
    """Every GEMM bit-exact; for a GEMM the engine took idle, cycles register == busy
    count == the formula (GEMMs back to back: ``test_pipelined_gemms_overlap``); beats per
    GEMM on each stream == ``dse.cost.gemm``'s beat functions."""
    rows, cols = params.rows, params.cols
    for (a, b, flow), run in zip(cases, runs):
        (m, k), n = a.shape, b.shape[1]
        where = f"{Dataflow(list(Dataflow)[flow]).value} M={m} K={k} N={n} wide={wide}"
        np.testing.assert_array_equal(
            run.c, golden_gemm(a, b, params.acc_width, params.a_width, params.b_width),
            err_msg=where)
        predicted = int(gemm_cycles(m, k, n, rows, cols, flow, mult_latency=mult_latency))
        if run.alone:
            assert (run.cycles, run.busy_cycles) == (predicted, predicted), where
        beats = (int(a_beats(m, k, rows, wide[0])), int(b_beats(k, n, rows, cols, flow, wide[1])),
                 int(c_beats(m, n, cols, flow, wide[2])))
        assert (run.a_beats, run.b_beats, run.c_beats) == beats, where


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


# ---- wide streams (one array-edge vector per beat) ----------------------------------------

WIDE = (True, True, True)


def wide_shapes(rows, cols):
    """Ragged M, K, N around the array and the bank count L, K = 1, exact multiples."""
    lanes = max(rows, cols)
    return [(1, 1, 1), (2 * lanes + 1, rows + 1, cols + 2), (lanes + 2, 1, 2 * cols - 1),
            (3, 2 * rows, 2 * cols)]


# 2×3 and 8×4... : L = 3 is not a multiple of rows = 2 (os groups cross a bank line); 3×2:
# not of cols = 2 (is preload groups cross it).
@pytest.mark.parametrize("rows,cols", [(1, 1), (2, 3), (3, 2), (4, 4), (4, 8), (8, 4)],
                         ids=lambda v: str(v))
def test_wide_all_dataflows(rows, cols):
    params = ArrayParams(rows=rows, cols=cols, a_width=8, b_width=8, acc_width=32)
    cases = make_cases(params, wide_shapes(rows, cols), seed=rows * 7 + cols,
                       kinds=("random", "extreme", "min", "max"))
    runs = sim_gemms(params, cases, idle=0.3, backpressure=0.3, seed=rows + 3 * cols,
                     start_delay=2, wide=WIDE, max_dim=20)
    check_runs(params, cases, runs, wide=WIDE)


@pytest.mark.parametrize("wide", [(True, False, False), (False, True, False),
                                  (False, False, True), (True, True, False)],
                         ids=lambda w: "".join("w" if x else "n" for x in w))
def test_mixed_stream_widths(wide):
    params = ArrayParams(rows=2, cols=3, a_width=8, b_width=8, acc_width=32)
    cases = make_cases(params, [(7, 5, 4), (1, 1, 2)], seed=21, kinds=("random", "extreme"))
    runs = sim_gemms(params, cases, idle=0.25, backpressure=0.25, seed=8, wide=wide)
    check_runs(params, cases, runs, wide=wide)


def test_wide_int16_acc48_extremes_long_k():
    params = ArrayParams(rows=4, cols=4, a_width=16, b_width=16, acc_width=48)
    cases = make_cases(params, [(6, 37, 5)], seed=5, kinds=("min", "extreme", "max"))
    runs = sim_gemms(params, cases, idle=0.2, backpressure=0.2, seed=6, wide=WIDE, max_dim=40)
    check_runs(params, cases, runs, wide=WIDE)


# wide: compute-bound; narrow: load-bound; wide A/B with narrow C: drain-bound (the result
# half of GEMM i is what GEMM i+2 waits for).
@pytest.mark.parametrize("wide", [WIDE, (False, False, False), (True, True, False)],
                         ids=["wide", "narrow", "narrow-c"])
@pytest.mark.parametrize("rows,cols,shape", [(4, 4, (8, 8, 8)), (2, 3, (7, 5, 9))],
                         ids=["4x4", "2x3"])
def test_pipelined_gemms_overlap(wide, rows, cols, shape):
    """G GEMMs back to back, start held high, no stalls: loads of GEMM i+1 and the drain of
    GEMM i−1 overlap the compute of GEMM i, and the total is the double-buffer recurrence."""
    params = ArrayParams(rows=rows, cols=cols, a_width=8, b_width=8, acc_width=32)
    gemms = 4
    cases = [c for c in make_cases(params, [shape] * gemms, seed=3) if c[2] == 0][:gemms]
    cases += make_cases(params, [shape], seed=4)       # then one per dataflow
    runs = sim_gemms(params, cases, wide=wide, eager_start=True)
    check_runs(params, cases, runs, wide=wide)
    shapes = [(a.shape[0], a.shape[1], b.shape[1]) for a, b, _ in cases]
    flows = [flow for _, _, flow in cases]
    total = runs[-1].last_c_cycle + 1
    assert total == int(pipelined_gemms_cycles(shapes, rows, cols, flows, wide))
    # The recurrence step by step: every start handshake and every last C beat; and the
    # overlap is real: each GEMM's load, compute and drain one after the other take far longer.
    starts, ends = pipelined_gemms_schedule(shapes, rows, cols, flows, wide)
    assert [r.start_cycle for r in runs] == [int(x) for x in starts]
    assert [r.last_c_cycle for r in runs] == [int(x) for x in ends]
    serial = sum(int(max(a_beats(m, k, rows, wide[0]), b_beats(k, n, rows, cols, f, wide[1])))
                 + int(gemm_cycles(m, k, n, rows, cols, f)) + int(c_beats(m, n, cols, f, wide[2]))
                 for (m, k, n), f in zip(shapes, flows))
    assert total < 0.75 * serial
    assert all(r.overlapped_load for r in runs[1:])


@pytest.mark.parametrize("rows,cols,shape,flow", [
    (2, 8, (1, 1, 1), 0), (2, 8, (1, 1, 1), 1), (4, 8, (3, 2, 9), 2), (8, 2, (2, 9, 3), 0),
    (3, 5, (4, 7, 2), 1)], ids=["ws-1x1x1", "os-1x1x1", "is", "ws-tall", "os"])
def test_back_to_back_gemms_overlap_fill_and_drain(rows, cols, shape, flow):
    """GEMMs of one dataflow back to back: the engine takes the next in the last tile slot
    (ws/is) or after it (os), so the array's fill and drain overlap the next GEMM -- down
    to GEMMs of one element, where the result halves (two GEMMs in flight at most) set the
    pace; bit-exact, starts and last C beats as the
    recurrence says, and each start sooner than the GEMM before it has finished."""
    params = ArrayParams(rows=rows, cols=cols, a_width=8, b_width=8, acc_width=32)
    cases = [c for c in make_cases(params, [shape] * 4, seed=5) if c[2] == flow]
    runs = sim_gemms(params, cases, wide=WIDE, eager_start=True)
    check_runs(params, cases, runs, wide=WIDE)
    starts, ends = pipelined_gemms_schedule([shape] * 4, rows, cols, flow, WIDE)
    assert [r.start_cycle for r in runs] == [int(x) for x in starts]
    assert [r.last_c_cycle for r in runs] == [int(x) for x in ends]
    busy = int(gemm_cycles(*shape, rows, cols, flow))
    assert runs[1].start_cycle - runs[0].start_cycle < busy + 1      # overlapped
    assert not any(r.alone for r in runs)                            # one busy run


@pytest.mark.parametrize("flow", [0, 2], ids=["ws", "is"])
def test_next_gemm_starts_anywhere_in_the_last_slot(flow):
    """ws/is: a GEMM started during the last tile slot of the one before is preloaded under
    that slot (start before the slot's preload window) or from its start on (later), and
    streams at max(end of the slot, start + rows + 3).  The host raises each start a set
    number of cycles after the one before, so starts fall on every cycle of the slot and
    after it; every last C beat is where the recurrence puts it for the starts the host
    made, and C is bit-exact."""
    params = ArrayParams(rows=2, cols=2, a_width=8, b_width=8, acc_width=32)
    # ws: 2 K-chunks × 3 N-chunks of T = M = 6; is: 2 K-chunks × 2 M-chunks of T = N = 12
    # (shapes whose loads and result halves let every such start through)
    shape, tiles, slot = ((6, 3, 5), 6, 6) if flow == 0 else ((3, 3, 12), 4, 12)
    lead = 2 + 3
    cases = [c for c in make_cases(params, [shape] * 2 * (slot + 3), seed=9) if c[2] == flow]
    # the host starts each GEMM ``offset`` cycles into the last slot of the one before,
    # for every offset of the slot and two after it: where that slot lies follows from the
    # starts before (s_i = max(f_i + lead, S_(i-1)), S_i = s_i + tiles·slot)
    offsets = [i % (slot + 2) for i in range(len(cases) - 1)]
    gaps, slots_end, fire = [], lead + tiles * slot, 0
    for offset in offsets:
        start = slots_end - slot + offset
        gaps.append(start - fire)
        slots_end = max(start + lead, slots_end) + tiles * slot
        fire = start
    runs = sim_gemms(params, cases, wide=WIDE, start_gaps=gaps)
    check_runs(params, cases, runs, wide=WIDE)
    fires = [r.start_cycle for r in runs]
    assert [b - a for a, b in zip(fires, fires[1:])] == gaps    # each start taken at once
    _, ends = pipelined_gemms_schedule([shape] * len(cases), 2, 2, flow, WIDE, fires=fires)
    assert [r.last_c_cycle for r in runs] == [int(x) for x in ends]


@pytest.mark.parametrize("wide", [WIDE, (False, False, False)], ids=["wide", "narrow"])
def test_buffers_hold_any_shape_within_capacity(wide):
    """A buffer half holds any GEMM whose words fit, not only a max_m × max_k rectangle:
    a tall thin A (K = 1 chunk) and a short wide one (6 chunks) in halves of 6 words a bank,
    back to back so that each GEMM computes with its own stride while the next one loads,
    under random stalls, in every dataflow."""
    params = ArrayParams(rows=2, cols=3, a_width=8, b_width=8, acc_width=32)
    shapes = [(18, 2, 3), (3, 12, 3), (18, 1, 2), (2, 11, 3)]
    cases = make_cases(params, shapes, seed=21, kinds=("random", "extreme"))
    a_words = max(-(-m // 3) * -(-k // 2) for m, k, _ in shapes)
    assert a_words == 6 and a_words < -(-18 // 3) * -(-12 // 2)    # far below the rectangle
    eng = GemmEngine(params, max_m=18, max_k=12, max_n=3, a_words=a_words, b_words=18,
                     c_words=18)
    assert eng.half_depths == {"a": 8, "b": 32, "c": 32}
    Fragment.get(eng, None)          # (an elaboratable never elaborated warns when collected)
    runs = sim_gemms(params, cases, idle=0.3, backpressure=0.3, seed=2, max_dim=18,
                     wide=wide, capacity=(a_words, 18, 18))
    check_runs(params, cases, runs, wide=wide)


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
    with pytest.raises(ValueError, match="a_words"):
        GemmEngine(ArrayParams(), a_words=0)
    with pytest.raises(TypeError, match=r"^params must be an ArrayParams, not 8$"):
        GemmEngine(8)
    with pytest.raises(ValueError, match=r"^a_width and b_width must be at most 18 for "):
        GemmEngine(ArrayParams(a_width=20, acc_width=64), target="ecp5")
    with pytest.raises(TypeError, match=r"^b_wide must be True or False, not 1$"):
        GemmEngine(ArrayParams(), b_wide=1)
    with pytest.raises(TypeError, match=r"^a_wide must be True or False, not None$"):
        GemmEngine(ArrayParams(), a_wide=None)


def test_wide_ports_and_depths():
    eng = GemmEngine(ArrayParams(rows=2, cols=3, a_width=8, b_width=6, acc_width=32),
                     max_m=10, max_k=7, max_n=5, a_wide=True, b_wide=True, c_wide=True)
    # A: L = 3 banks of ⌈10/3⌉ = 4 lines × S = ⌈7/2⌉ = 4 chunks = 16 words per half.
    assert (eng.a_lanes, eng.b_lanes, eng.c_lanes) == (2, 3, 3)
    assert eng.half_depths["a"] == 16
    assert eng.a_stream.payload.shape().length == 2
    assert Shape.cast(eng.b_stream.payload.shape()).width == 3 * 6
    assert Shape.cast(eng.c_stream.payload.shape()).width == 3 * 32
    narrow = GemmEngine(ArrayParams(rows=2, cols=3), max_m=10, max_k=7, max_n=5)
    assert (narrow.a_lanes, narrow.b_lanes, narrow.c_lanes) == (1, 1, 1)
    assert narrow.a_stream.payload.shape() == signed(8)
    # Elaborate both (an elaboratable never elaborated warns when collected).
    Fragment.get(eng, None)
    Fragment.get(narrow, None)


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
