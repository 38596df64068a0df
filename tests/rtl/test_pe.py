"""One processing element, cycle by cycle, in the Amaranth simulator.

Timing from docs/rtl.md: inputs driven in cycle τ are in the PE's registers in τ + 1, the
product is ``mult_latency`` cycles later, and the accumulator shows it one cycle after that:
``p_out`` reflects the operands of cycle τ in cycle τ + 2 + L.
"""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator

from rtl.params import ArrayParams, Dataflow
from rtl.pe import ProcessingElement

P = ArrayParams(rows=3, cols=1, a_width=8, b_width=12, acc_width=32)
WS, OS, IS = (d.code for d in Dataflow)


def run_pe(row, latency, mode, drive, cycles):
    """Drive ``drive(t) -> dict`` each cycle; return the sampled (p_out, p_valid_out) list."""
    pe = ProcessingElement(P, row=row, mult_latency=latency)
    sim = Simulator(pe)
    sim.add_clock(1e-8)
    trace = []

    async def tb(ctx):
        ctx.set(pe.mode, mode)
        for t in range(cycles):
            for name, value in drive(t).items():
                ctx.set(getattr(pe, name), value)
            trace.append((ctx.get(pe.p_out), ctx.get(pe.p_valid_out), ctx.get(pe.h_out)))
            await ctx.tick()
            for name in drive(t):
                if name in ("h_valid_in", "h_first_in", "latch", "drain"):
                    ctx.set(getattr(pe, name), 0)

    sim.add_testbench(tb)
    sim.run()
    return trace


@pytest.mark.parametrize("latency", [0, 2, 3])
def test_os_accumulates_with_first_and_latency(latency):
    a = [3, -128, 127, 5]
    b = [-2048, 2047, -7, 1]

    def drive(t):
        if t < len(a):
            return {"h_in": a[t], "v_in": b[t], "h_valid_in": 1, "h_first_in": int(t == 0)}
        return {}

    trace = run_pe(row=0, latency=latency, mode=OS, drive=drive, cycles=len(a) + 6)
    acc = [x[0] for x in trace]
    # Operand pair t is in the accumulator from cycle t + 2 + L on.
    partial = 0
    for t in range(len(a)):
        partial += a[t] * b[t]
        assert acc[t + 2 + latency] == partial, t
    assert acc[-1] == sum(x * y for x, y in zip(a, b))
    # The horizontal operand is forwarded one cycle later, unchanged.
    assert [x[2] for x in trace[1:len(a) + 1]] == a


def test_os_first_clears_previous_tile():
    seq = [(2, 3, 1), (4, 5, 0), (7, -1, 1)]  # (a, b, first): the third starts a new tile

    def drive(t):
        if t < len(seq):
            a, b, first = seq[t]
            return {"h_in": a, "v_in": b, "h_valid_in": 1, "h_first_in": first}
        return {}

    trace = run_pe(row=0, latency=1, mode=OS, drive=drive, cycles=8)
    assert trace[1 + 3][0] == 2 * 3 + 4 * 5
    assert trace[2 + 3][0] == -7


@pytest.mark.parametrize("mode", [WS, IS])
def test_stationary_modes_add_partial_sum_from_above(mode):
    latency = 2
    stationary = -100 if mode == WS else 77   # B (12-bit) for ws, A (8-bit) for is
    stream = [5, -3, 100, 0]
    p_in = [1000, -1, 123456, 7]

    def drive(t):
        if t == 0:
            return {"v_in": stationary}
        if t == 1:
            return {"latch": 1}                      # w <= v (v holds the value now)
        i = t - 2
        if i < len(stream):                          # s <= w with the first vector
            return {"h_in": stream[i], "h_valid_in": 1, "h_first_in": int(i == 0)}
        return {}

    # p_in must line up with the product: the operand of cycle τ meets p_in of τ + 1 + L.
    pe_trace = []

    pe = ProcessingElement(P, row=1, mult_latency=latency)
    sim = Simulator(pe)
    sim.add_clock(1e-8)

    async def tb(ctx):
        ctx.set(pe.mode, mode)
        for t in range(14):
            for name, value in drive(t).items():
                ctx.set(getattr(pe, name), value)
            i = t - 2 - 1 - latency
            ctx.set(pe.p_in, p_in[i] if 0 <= i < len(p_in) else 0)
            pe_trace.append((ctx.get(pe.p_out), ctx.get(pe.p_valid_out)))
            await ctx.tick()
            for name in ("h_valid_in", "h_first_in", "latch"):
                ctx.set(getattr(pe, name), 0)

    sim.add_testbench(tb)
    sim.run()
    for i, x in enumerate(stream):
        out, valid = pe_trace[i + 2 + 2 + latency]
        assert (out, valid) == (p_in[i] + x * stationary, 1), i
    assert pe_trace[2 + 1 + latency][1] == 0          # nothing valid before the first


@pytest.mark.parametrize("mode", [WS, IS])
def test_next_stationary_latched_under_the_stream_switches_with_its_first_vector(mode):
    # Tile 0 uses 3, tile 1 uses -5; -5 is latched (into the shadow) while tile 0 streams,
    # and tile 1's first vector follows tile 0's last without a gap.
    stream = [(2, 1), (7, 0), (-4, 0), (9, 1), (6, 0)]   # (value, first of a tile)
    tile = [0, 0, 0, 1, 1]
    stat = [3, -5]

    def drive(t):
        d = {}
        if t == 0:
            d["v_in"] = stat[0]
        if t == 1:
            d["latch"] = 1
        if t == 2:
            d["v_in"] = stat[1]
        if t == 3:
            d["latch"] = 1                           # during tile 0's second vector
        i = t - 2
        if 0 <= i < len(stream):
            d.update(h_in=stream[i][0], h_valid_in=1, h_first_in=stream[i][1])
        return d

    latency = 1
    trace = run_pe(row=0, latency=latency, mode=mode, drive=drive, cycles=12)
    outs = [x[0] for x in trace]
    for i, (x, _) in enumerate(stream):
        assert outs[i + 2 + 2 + latency] == x * stat[tile[i]], i


@pytest.mark.parametrize("row", [0, 1, 2])
def test_os_drain_shifts_only_in_steps_below_row(row):
    # Load acc with 6 * 7 = 42, then drain steps 0..2 with p_in = 1000 + step.
    def drive(t):
        if t == 0:
            return {"h_in": 6, "v_in": 7, "h_valid_in": 1, "h_first_in": 1}
        d = {}
        if 4 <= t < 7:
            d.update(drain=1, drain_step=t - 4)
        if 5 <= t < 8:                  # p_in of the cycle in which step t - 5 acts
            d["p_in"] = 1000 + t - 5
        return d

    trace = run_pe(row=row, latency=1, mode=OS, drive=drive, cycles=10)
    acc = [x[0] for x in trace]
    assert acc[5] == 42
    # A strobe of cycle τ acts in τ + 1 (registered): step j's p_in shows in τ + 2.
    # Row r takes p_in in steps 0 … r-1 and keeps the last one taken.
    for j in range(3):
        expected = 1000 + min(j, row - 1) if row else 42
        assert acc[4 + j + 2] == expected, j


def test_bad_row():
    with pytest.raises(ValueError, match=r"^row must be between 0 and 2, not 3$"):
        ProcessingElement(P, row=3)
    with pytest.raises(TypeError, match=r"^params must be an ArrayParams, not None$"):
        ProcessingElement(None)


@pytest.mark.parametrize("target,expected", [("ecp5", 15), ("xcup", 0), ("sim", 0)])
def test_control_registers_are_explicit_cells_on_ecp5(target, expected):
    # On ECP5, Yosys's opt_merge would fold identical control flags of different PEs into one
    # array-wide flip-flop (the critical path at ~142 MHz); explicit TRELLIS_FF cells stay
    # per PE.  Other targets keep plain registers.  15 = the flags rtl/pe.py lists as control.
    from amaranth.back import verilog

    pe = ProcessingElement(ArrayParams(rows=2, cols=2), target=target, mult_latency=4)
    text = verilog.convert(pe, name="pe")
    assert text.count("TRELLIS_FF ") == expected
