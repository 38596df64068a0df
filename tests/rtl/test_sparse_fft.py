"""rtl.sparse_fft: the sparse spectral MAC unit in the Amaranth simulator.

Random sparse kernels and input spectra, random placements, three kinds of schedule (naive
in-order, a greedy conflict-free one, a Latin-square one), random valid gaps on every input
stream and back-pressure on the readout.  The accumulators are compared bit for bit with a
numpy reference written here (acc[p][bin] = Σ X[bin]·W_p[bin]); the busy and stall cycles
with the lock-step formula, also computed here: cycles(step) = max(1, max over banks of
⌈requests/ports⌉), stalls = Σ cycles − steps.
"""

import random

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from rtl.params import COUNTER_BITS, SparseParams
from rtl.sparse_fft import SparseArbiter, SparseMAC

# ---- test data and the independent references ---------------------------------------------

def random_placement(params, rng):
    """A random balanced placement: {bin: (bank, row)}, every bank at most bank_depth bins."""
    order = rng.permutation(params.bins)
    return {int(f): (i % params.banks, i // params.banks) for i, f in enumerate(order)}


def random_kernels(params, rng, density):
    """Per lane a sorted list of distinct non-zero bins and {bin: (re, im)} values."""
    lim = 1 << (params.kernel_width - 1)
    kernels = []
    for _ in range(params.lanes):
        nnz = int(np.clip(rng.binomial(params.bins, density), 1, params.max_nnz))
        bins = sorted(int(f) for f in rng.choice(params.bins, nnz, replace=False))
        kernels.append({f: (int(rng.integers(-lim, lim)), int(rng.integers(-lim, lim)))
                        for f in bins})
    return kernels


def random_spectrum(params, rng, extremes=False):
    lim = 1 << (params.data_width - 1)
    if extremes:   # the corners where exact widths matter
        return rng.choice([-lim, lim - 1, -lim + 1, 0], (params.bins, 2))
    return rng.integers(-lim, lim, (params.bins, 2))


def naive_schedule(params, kernels):
    """Step t: each lane's t-th non-zero in bin order (lanes with fewer non-zeros idle)."""
    depth = max(len(k) for k in kernels)
    order = [sorted(k) for k in kernels]
    return [[o[t] if t < len(o) else None for o in order] for t in range(depth)]


def greedy_conflict_free(params, kernels, placement):
    """Steps in which no two lanes read the same bank: each step, lanes with the most work
    left first take a remaining non-zero in a free bank (preferring the busiest bank)."""
    left = [sorted(k) for k in kernels]
    steps = []
    while any(left):
        used, step = set(), [None] * params.lanes
        for lane in sorted(range(params.lanes), key=lambda q: -len(left[q])):
            options = [f for f in left[lane] if placement[f][0] not in used]
            if not options:
                continue
            def load(f):
                return sum(placement[g][0] == placement[f][0] for k in left for g in k)
            f = max(options, key=load)
            step[lane] = f
            used.add(placement[f][0])
            left[lane].remove(f)
        steps.append(step)
    return steps


def latin_square(params, placement, rng, steps, gap=0.2):
    """In step t lane p reads a bin of bank (p + t) mod B (P ≤ B), each bin once per lane;
    a lane skips a step with probability ``gap``.  Returns (kernels' bins, schedule)."""
    assert params.lanes <= params.banks
    by_bank = {}
    for f, (b, _) in placement.items():
        by_bank.setdefault(b, []).append(f)
    free = [{b: list(rng.permutation(fs)) for b, fs in by_bank.items()}
            for _ in range(params.lanes)]
    schedule = []
    for t in range(steps):
        row = []
        for lane in range(params.lanes):
            bank = (lane + t) % params.banks
            if rng.random() < gap or not free[lane][bank]:
                row.append(None)
            else:
                row.append(int(free[lane][bank].pop()))
        schedule.append(row)
    return schedule


def kernels_from_schedule(params, schedule, rng):
    lim = 1 << (params.kernel_width - 1)
    kernels = [{} for _ in range(params.lanes)]
    for step in schedule:
        for lane, f in enumerate(step):
            if f is not None:
                kernels[lane][f] = (int(rng.integers(-lim, lim)), int(rng.integers(-lim, lim)))
    return kernels


def reference_acc(params, channels):
    """acc[p, bin] = Σ over channels and lane p's non-zeros of X[bin]·W_p[bin] (int64)."""
    re = np.zeros((params.lanes, params.bins), dtype=np.int64)
    im = np.zeros_like(re)
    for x, kernels, _ in channels:
        for lane, k in enumerate(kernels):
            for f, (c, d) in k.items():
                a, b = int(x[f, 0]), int(x[f, 1])
                re[lane, f] += a * c - b * d
                im[lane, f] += a * d + b * c
    return re, im


def lockstep(params, schedule, placement):
    """(busy cycles, stall cycles) of the lock-step semantics for a schedule."""
    busy = 0
    for step in schedule:
        counts = {}
        for f in step:
            if f is not None:
                b = placement[f][0]
                counts[b] = counts.get(b, 0) + 1
        busy += max([1] + [-(-n // params.ports) for n in counts.values()])
    return busy, busy - len(schedule)


def order_kernel(kernel, schedule, lane):
    """Lane ``lane``'s kernel values in the order ``schedule`` consumes them (a list is taken
    to be in that order already)."""
    if isinstance(kernel, list):
        return kernel
    return [kernel[step[lane]] for step in schedule if step[lane] is not None]


# ---- the simulation driver -------------------------------------------------------------------

def run_unit(params, placement, jobs, *, idle=0.0, stall=0.0, seed=0):
    """Load the placement once; then for each job (a list of channels, each (x, kernels,
    schedule)): ``clear``, per channel the spectrum, the kernel banks (in schedule order), a
    ``rewind`` and the steps; then ``dump``.  Returns per job the accumulators, the counters,
    the conflict flag and the cycles each step was presented (measured by the testbench)."""
    dut = SparseMAC(params)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    results = []

    async def bench(ctx):
        rng = random.Random(seed)

        async def gap():
            while rng.random() < idle:
                await ctx.tick()

        async def write(strm, payloads):
            for payload in payloads:
                await gap()
                ctx.set(strm.payload, payload)
                ctx.set(strm.valid, 1)
                await ctx.tick()
                ctx.set(strm.valid, 0)

        async def pulse(sig):
            ctx.set(sig, 1)
            await ctx.tick()
            ctx.set(sig, 0)

        await write(dut.place, [{"bin": f, "bank": b, "row": r}
                                for f, (b, r) in placement.items()])
        for channels in jobs:
            await pulse(dut.clear)
            presented = []
            for x, kernels, schedule in channels:
                await write(dut.x_stream, [{"bin": f, "value": {"re": int(x[f, 0]),
                                                                "im": int(x[f, 1])}}
                                           for f in rng.sample(range(params.bins), params.bins)])
                words = [{"lane": lane, "index": i, "value": {"re": c, "im": d}}
                         for lane, k in enumerate(kernels)
                         for i, (c, d) in enumerate(order_kernel(k, schedule, lane))]
                await write(dut.w_stream, rng.sample(words, len(words)))
                await pulse(dut.rewind)
                for step in schedule:
                    await gap()
                    ctx.set(dut.steps.payload, [{"valid": int(f is not None), "bin": f or 0}
                                                for f in step])
                    ctx.set(dut.steps.valid, 1)
                    held = 1
                    while True:
                        _, _, ready = await ctx.tick().sample(dut.steps.ready)
                        if ready:
                            break
                        held += 1
                        assert held <= params.lanes, "a step held longer than P cycles"
                    ctx.set(dut.steps.valid, 0)
                    presented.append(held)
                while ctx.get(dut.active):
                    await ctx.tick()
            await pulse(dut.dump)
            got = []
            while len(got) < params.bins:
                ctx.set(dut.o_stream.ready, 0 if rng.random() < stall else 1)
                _, _, v, r, p = await ctx.tick().sample(dut.o_stream.valid,
                                                        dut.o_stream.ready, dut.o_stream.payload)
                if v and r:
                    got.append([(lane.re, lane.im) for lane in p])
            ctx.set(dut.o_stream.ready, 0)
            arr = np.array(got, dtype=np.int64)          # bins × lanes × 2
            results.append({"re": arr[:, :, 0].T, "im": arr[:, :, 1].T, "presented": presented,
                            "busy": ctx.get(dut.busy_cycles),
                            "stall": ctx.get(dut.stall_cycles),
                            "reads": ctx.get(dut.reads), "conflict": ctx.get(dut.conflict)})

    sim.add_testbench(bench)
    sim.run()
    return results


def check_run(params, placement, channels, res, *, expect_stalls=None):
    for _, kernels, schedule in channels:   # the schedule reads each non-zero exactly once
        for lane, k in enumerate(kernels):
            assert sorted(st[lane] for st in schedule if st[lane] is not None) == sorted(k)
    want_re, want_im = reference_acc(params, channels)
    np.testing.assert_array_equal(res["re"], want_re)
    np.testing.assert_array_equal(res["im"], want_im)
    busy = stalls = 0
    for _, _, schedule in channels:
        b, s = lockstep(params, schedule, placement)
        busy, stalls = busy + b, stalls + s
    assert res["busy"] == busy == sum(res["presented"])
    assert res["stall"] == stalls
    assert res["reads"] == sum(f is not None for _, _, sch in channels for st in sch for f in st)
    assert res["conflict"] == 0
    if expect_stalls is not None:
        assert (stalls > 0) == expect_stalls


# ---- tests ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("lanes,banks,bins,seed", [(2, 2, 8, 0), (4, 2, 20, 1), (4, 4, 40, 2),
                                                   (2, 4, 13, 3)])
def test_naive_schedule_bit_exact_and_formula_stalls(lanes, banks, bins, seed):
    params = SparseParams(lanes=lanes, banks=banks, bins=bins, data_width=10, kernel_width=9,
                          acc_width=24, max_nnz=bins)
    rng = np.random.default_rng(seed)
    placement = random_placement(params, rng)
    kernels = random_kernels(params, rng, 0.5)
    channels = [(random_spectrum(params, rng), kernels, naive_schedule(params, kernels))]
    [res] = run_unit(params, placement, [channels], idle=0.25, stall=0.3, seed=seed)
    check_run(params, placement, channels, res, expect_stalls=True)


@pytest.mark.parametrize("lanes,banks,bins,seed", [(2, 2, 16, 4), (4, 4, 40, 5), (4, 2, 24, 6)])
def test_greedy_conflict_free_schedule_has_no_stalls(lanes, banks, bins, seed):
    params = SparseParams(lanes=lanes, banks=banks, bins=bins, data_width=8, kernel_width=8,
                          acc_width=20, max_nnz=bins)
    rng = np.random.default_rng(seed)
    placement = random_placement(params, rng)
    kernels = random_kernels(params, rng, 0.4)
    schedule = greedy_conflict_free(params, kernels, placement)
    channels = [(random_spectrum(params, rng), kernels, schedule)]
    [res] = run_unit(params, placement, [channels], idle=0.2, stall=0.2, seed=seed)
    check_run(params, placement, channels, res, expect_stalls=False)
    assert res["stall"] == 0 and res["busy"] == len(schedule)
    # the same kernels in the naive order stall on this placement (the comparison that matters)
    assert lockstep(params, naive_schedule(params, kernels), placement)[1] > 0


@pytest.mark.parametrize("lanes,banks", [(2, 2), (2, 4), (4, 4)])
def test_latin_square_schedule_two_channels(lanes, banks):
    params = SparseParams(lanes=lanes, banks=banks, bins=40, data_width=12, kernel_width=12,
                          acc_width=26, max_nnz=40)
    rng = np.random.default_rng(10 * lanes + banks)
    placement = random_placement(params, rng)
    channels = []
    for _ in range(2):   # two input channels accumulate onto the same sums (rewind between)
        schedule = latin_square(params, placement, rng, steps=3 * banks)
        channels.append((random_spectrum(params, rng),
                         kernels_from_schedule(params, schedule, rng), schedule))
    [res] = run_unit(params, placement, [channels], idle=0.3, stall=0.4, seed=lanes + banks)
    check_run(params, placement, channels, res, expect_stalls=False)


def test_extreme_values_at_minimum_accumulator_width():
    # full-scale corners; acc_width = product_width holds one product exactly
    params = SparseParams(lanes=4, banks=2, bins=12, data_width=8, kernel_width=6,
                          acc_width=15, max_nnz=12)
    assert params.acc_width == params.product_width
    rng = np.random.default_rng(7)
    placement = random_placement(params, rng)
    lim = 1 << (params.kernel_width - 1)
    kernels = [{f: (int(rng.choice([-lim, lim - 1])), int(rng.choice([-lim, lim - 1])))
                for f in sorted(rng.choice(params.bins, 5, replace=False).tolist())}
               for _ in range(params.lanes)]
    kernels[0] = {f: (-lim, -lim) for f in range(params.bins)}   # Im reaches 2^(dw+kw-1)
    x = random_spectrum(params, rng, extremes=True)
    x[:, :] = np.where(np.arange(params.bins)[:, None] % 3 == 0, -(1 << 7), x)
    channels = [(x, kernels, naive_schedule(params, kernels))]
    [res] = run_unit(params, placement, [channels], idle=0.1, stall=0.1, seed=7)
    check_run(params, placement, channels, res)
    assert res["im"][0].max() == 1 << (params.data_width + params.kernel_width - 1)


def test_dual_port_banks_halve_conflicts():
    params = SparseParams(lanes=4, banks=2, ports=2, bins=16, data_width=8, kernel_width=8,
                          acc_width=20, max_nnz=16)
    rng = np.random.default_rng(11)
    placement = random_placement(params, rng)
    kernels = random_kernels(params, rng, 0.6)
    channels = [(random_spectrum(params, rng), kernels, naive_schedule(params, kernels))]
    [res] = run_unit(params, placement, [channels], idle=0.2, stall=0.2, seed=11)
    check_run(params, placement, channels, res)
    single = SparseParams(lanes=4, banks=2, ports=1, bins=16, data_width=8, kernel_width=8,
                          acc_width=20, max_nnz=16)
    assert res["stall"] < lockstep(single, channels[0][2], placement)[1]


def test_all_lanes_on_one_bank_serialise_lowest_first():
    # every lane wants bank 0 in every step: P cycles per step, P − 1 stalls; the testbench
    # watches the grants to check the lowest pending lane goes first
    params = SparseParams(lanes=3, banks=2, bins=6, data_width=6, kernel_width=6,
                          acc_width=16, max_nnz=3)
    placement = {f: (f % 2, f // 2) for f in range(6)}     # bank 0 holds bins 0, 2, 4
    schedule = [[0, 2, 4], [4, 0, 2], [2, 4, 0]]
    rng = np.random.default_rng(12)
    kernels = kernels_from_schedule(params, schedule, rng)
    channels = [(random_spectrum(params, rng), kernels, schedule)]
    [res] = run_unit(params, placement, [channels])
    check_run(params, placement, channels, res)
    assert res["presented"] == [3, 3, 3] and res["stall"] == 6


def test_clear_between_jobs_forgets_sums_and_counts():
    # the second job touches fewer bins than the first: untouched bins must read 0
    params = SparseParams(lanes=2, banks=2, bins=10, data_width=8, kernel_width=8,
                          acc_width=20, max_nnz=10)
    rng = np.random.default_rng(13)
    placement = random_placement(params, rng)
    jobs = []
    for density in (0.9, 0.2):
        kernels = random_kernels(params, rng, density)
        jobs.append([(random_spectrum(params, rng), kernels, naive_schedule(params, kernels))])
    results = run_unit(params, placement, jobs, idle=0.2, stall=0.2, seed=13)
    for channels, res in zip(jobs, results):
        check_run(params, placement, channels, res)
    assert any(f not in k2 for f in range(params.bins) for k1, k2 in
               zip(jobs[0][0][1], jobs[1][0][1]) if f in k1)


def test_same_bin_in_consecutive_steps_accumulates():
    # a lane reading one bin in back-to-back cycles: the accumulator's read-modify-write
    # must see the previous cycle's write (kernel values given in schedule order)
    params = SparseParams(lanes=2, banks=2, bins=4, data_width=8, kernel_width=8,
                          acc_width=22, max_nnz=4)
    placement = {0: (0, 0), 1: (1, 0), 2: (0, 1), 3: (1, 1)}
    # steps 2 and 3 put both lanes on bank 1 (step 3 even on the same bin: still two reads)
    schedule = [[1, 0], [1, 2], [1, 3], [3, 3]]
    rng = np.random.default_rng(14)
    values = [[(int(rng.integers(-128, 128)), int(rng.integers(-128, 128))) for _ in range(4)]
              for _ in range(2)]
    x = random_spectrum(params, rng)
    [res] = run_unit(params, placement, [[(x, values, schedule)]])
    re = np.zeros((2, 4), dtype=np.int64)
    im = np.zeros_like(re)
    for lane in range(2):
        for (c, d), step in zip(values[lane], schedule):
            f = step[lane]
            re[lane, f] += int(x[f, 0]) * c - int(x[f, 1]) * d
            im[lane, f] += int(x[f, 0]) * d + int(x[f, 1]) * c
    np.testing.assert_array_equal(res["re"], re)
    np.testing.assert_array_equal(res["im"], im)
    assert (res["busy"], res["stall"], res["reads"]) == (6, 2, 8)
    assert lockstep(params, schedule, placement) == (6, 2)
    assert res["presented"] == [1, 1, 2, 2] and res["conflict"] == 0


@pytest.mark.parametrize("lanes,banks,ports", [(4, 2, 1), (5, 3, 2), (3, 4, 1)])
def test_arbiter_serves_lowest_lanes_per_bank(lanes, banks, ports):
    params = SparseParams(lanes=lanes, banks=banks, ports=ports, bins=16, max_nnz=4)
    dut = SparseArbiter(params)
    sim = Simulator(dut)
    rng = random.Random(lanes * banks)

    async def bench(ctx):
        for _ in range(300):
            pending = [rng.random() < 0.7 for _ in range(lanes)]
            bank = [rng.randrange(banks) for _ in range(lanes)]
            ctx.set(dut.pending, sum(int(v) << i for i, v in enumerate(pending)))
            ctx.set(dut.bank, bank)
            await ctx.delay(1e-9)
            grant, port = ctx.get(dut.grant), list(ctx.get(dut.port))
            seen = {}
            for lane in range(lanes):
                rank = seen.get(bank[lane], 0)
                expect = pending[lane] and rank < ports
                assert bool(grant >> lane & 1) == expect
                if expect:
                    assert port[lane] == rank
                if pending[lane]:
                    seen[bank[lane]] = rank + 1

    sim.add_testbench(bench)
    sim.run()


def test_verilog_generation():
    for params in (SparseParams(), SparseParams(lanes=2, banks=2, ports=2, bins=8, max_nnz=8),
                   SparseParams(lanes=1, banks=1, bins=2, data_width=4, kernel_width=4,
                                acc_width=9, max_nnz=1)):
        text = verilog.convert(SparseMAC(params), name="sparse_mac")
        assert "module sparse_mac(" in text
        for port in ("steps__payload", "steps__ready", "o_stream__payload", "conflict",
                     "stall_cycles", "x_stream__valid", "w_stream__payload", "place__payload"):
            assert port in text
    assert f"output [{COUNTER_BITS - 1}:0] stall_cycles" in text


# ---- parameters ----------------------------------------------------------------------------------

def test_sparse_params_derived():
    p = SparseParams(lanes=4, banks=3, bins=40, data_width=16, kernel_width=16, acc_width=40)
    assert p.bank_depth == 14 and p.product_width == 33


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"lanes": 0}, ValueError, r"^lanes must be between 1 and 64, not 0$"),
    ({"banks": 2.0}, TypeError, r"^banks must be an integer, not 2\.0$"),
    ({"ports": 3}, ValueError, r"^ports must be between 1 and 2, not 3$"),
    ({"bins": True}, TypeError, r"^bins must be an integer, not True$"),
    ({"bins": 8, "max_nnz": 0}, ValueError, r"^max_nnz must be between 1 and 16777216, not 0$"),
    ({"data_width": 16, "kernel_width": 16, "acc_width": 32}, ValueError,
     r"^acc_width must be at least data_width \+ kernel_width \+ 1 = 33, not 32$"),
])
def test_sparse_params_rejects(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        SparseParams(**kwargs)


def test_sparse_mac_rejects_other_params():
    with pytest.raises(TypeError, match=r"^params must be a SparseParams, not 4$"):
        SparseMAC(4)


def test_sparse_mac_lints_clean(tmp_path):
    from sim.runner import emit_verilog, lint_verilog

    params = SparseParams(lanes=3, banks=2, ports=2, bins=8, max_nnz=8)
    violations, _ = lint_verilog(emit_verilog(SparseMAC(params), "sparse_mac"), "sparse_mac",
                                 work_dir=tmp_path)
    assert not violations, "\n".join(f"line {w.line}: %{w.rule}: {w.message}"
                                     for w in violations[:20])
