"""The systolic array alone, driven vector by vector, for every dataflow.

Expected timing (docs/rtl.md, derived from the register counts): a vector presented in cycle
τ is in PE(r, c) in τ + r + c + 1; a ws/is output vector for the input of cycle τ appears
de-skewed in τ + rows + cols + L; an os drain step presented in τ acts in τ + 1 and shows its row
de-skewed in τ + cols.  Values are checked against numpy matrix products.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from rtl.params import ArrayParams, Dataflow
from rtl.systolic import SystolicArray

WS, OS, IS = (d.code for d in Dataflow)


def run_array(params, latency, mode, schedule, cycles):
    """Apply ``schedule[t]`` (dict of port -> value, vectors as lists) in cycle t.

    Returns ``{t: out vector}`` for the cycles where ``out_valid`` is high.
    """
    arr = SystolicArray(params, mult_latency=latency)
    sim = Simulator(arr)
    sim.add_clock(1e-8)
    outs = {}
    scalar = ("h_valid", "h_first", "latch", "drain", "drain_step")

    async def tb(ctx):
        ctx.set(arr.mode, mode)
        for t in range(cycles):
            for name in scalar:
                ctx.set(getattr(arr, name), 0)
            for name, value in schedule.get(t, {}).items():
                port = getattr(arr, name)
                if isinstance(value, list):
                    for i, v in enumerate(value):
                        ctx.set(port[i], int(v))
                else:
                    ctx.set(port, value)
            if ctx.get(arr.out_valid):
                outs[t] = [ctx.get(arr.out[c]) for c in range(params.cols)]
            await ctx.tick()

    sim.add_testbench(tb)
    sim.run()
    return outs


PARAMS = ArrayParams(rows=3, cols=4, a_width=8, b_width=8, acc_width=32)


def stationary_schedule(stat, stream):
    """Preload ``stat`` (rows × cols) then stream ``stream`` (rows × T); start cycle of T."""
    rows = stat.shape[0]
    sched = {}
    for i in range(rows):                    # item i carries row rows-1-i
        sched[i] = {"v_in": list(stat[rows - 1 - i])}
    sched[rows] = {"latch": 1}               # the cycle after the last item
    for t in range(stream.shape[1]):
        sched[rows + 1 + t] = {"h_in": list(stream[:, t]), "h_valid": 1,
                               "h_first": int(t == 0)}
    return sched, rows + 1


@pytest.mark.parametrize("latency", [0, 3])
@pytest.mark.parametrize("mode", [WS, IS])
def test_stationary_dataflows(mode, latency):
    rng = np.random.default_rng(mode * 10 + latency)
    rows, cols = PARAMS.rows, PARAMS.cols
    t_len = 5
    if mode == WS:
        b = rng.integers(-128, 128, (rows, cols))       # B tile: K × N
        a = rng.integers(-128, 128, (t_len, rows))      # A: M × K
        stat, stream, expect = b, a.T, a @ b            # out[t] = C[t][:]
    else:
        a = rng.integers(-128, 128, (cols, rows))       # A tile: M × K, stored transposed
        b = rng.integers(-128, 128, (rows, t_len))      # B: K × N
        stat, stream, expect = a.T, b, (a @ b).T        # out[t] = C[:, t]
    sched, t0 = stationary_schedule(stat, stream)
    outs = run_array(PARAMS, latency, mode, sched, t0 + t_len + rows + cols + latency + 3)
    first_out = t0 + rows + cols + latency
    assert sorted(outs) == list(range(first_out, first_out + t_len))
    for t in range(t_len):
        assert outs[first_out + t] == list(expect[t]), t


@pytest.mark.parametrize("t_len", [1, 2, 5])
@pytest.mark.parametrize("mode", [WS, IS])
def test_stationary_tiles_back_to_back(mode, t_len):
    """Three tiles every max(T, rows) cycles: each tile's operand is preloaded and latched
    while the previous tile streams, and the PEs switch with the tile's first vector."""
    rng = np.random.default_rng(7 * t_len + mode)
    rows, cols = PARAMS.rows, PARAMS.cols
    slot = max(t_len, rows)
    tiles = []
    for _ in range(3):
        if mode == WS:
            b = rng.integers(-128, 128, (rows, cols))
            a = rng.integers(-128, 128, (t_len, rows))
            tiles.append((b, a.T, a @ b))
        else:
            a = rng.integers(-128, 128, (cols, rows))
            b = rng.integers(-128, 128, (rows, t_len))
            tiles.append((a.T, b, (a @ b).T))
    sched = {}
    first = rows + 1                        # tile 0: preload 0 … rows-1, latch at rows
    for i, (stat, stream, _) in enumerate(tiles):
        start = first + i * slot
        latch = start - 1
        for j in range(rows):               # item j carries row rows-1-j
            sched.setdefault(latch - rows + j, {})["v_in"] = list(stat[rows - 1 - j])
        sched.setdefault(latch, {})["latch"] = 1
        for t in range(t_len):
            sched.setdefault(start + t, {}).update(
                h_in=list(stream[:, t]), h_valid=1, h_first=int(t == 0))
    last = first + 2 * slot + t_len
    outs = run_array(PARAMS, 1, mode, sched, last + rows + cols + 4)
    first_out = first + rows + cols + 1
    want = {first_out + i * slot + t: list(tiles[i][2][t])
            for i in range(3) for t in range(t_len)}
    assert outs == want


@pytest.mark.parametrize("latency", [0, 2])
def test_output_stationary_with_drain(latency):
    rng = np.random.default_rng(latency)
    rows, cols = PARAMS.rows, PARAMS.cols
    k = 6
    a = rng.integers(-128, 128, (rows, k))
    b = rng.integers(-128, 128, (k, cols))
    sched = {t: {"h_in": list(a[:, t]), "v_in": list(b[t]), "h_valid": 1,
                 "h_first": int(t == 0)} for t in range(k)}
    # The last operands reach PE(rows-1, c) at (k-1) + rows + c and its accumulator
    # L + 1 later: the drain may act rows + L + 1 cycles after the last input; its strobe is
    # presented one cycle before it acts (the PEs register it).
    t_drain = (k - 1) + rows + latency
    for j in range(rows):
        sched[t_drain + j] = {"drain": 1, "drain_step": j}
    outs = run_array(PARAMS, latency, OS, sched, t_drain + rows + cols + 3)
    first_out = t_drain + cols
    assert sorted(outs) == list(range(first_out, first_out + rows))
    c = a @ b
    for j in range(rows):
        assert outs[first_out + j] == list(c[rows - 1 - j]), j


def test_array_rejects_non_params():
    with pytest.raises(TypeError, match=r"^params must be an ArrayParams, not \(3, 4\)$"):
        SystolicArray((3, 4))
