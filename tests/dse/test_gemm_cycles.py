"""The closed-form GEMM cycle formula against an event-by-event schedule walk.

RTL simulation equality is tested in tests/rtl/test_gemm_engine.py (and through Verilator in
tests/cocotb); here the closed form is checked against an independent brute-force walk of the
engine's schedule as documented in docs/rtl.md (one INIT cycle, ws/is preload and latch of
tile 0, slots of T + rows − 1 cycles (os) or max(T, rows + 1) (ws, is), then the pipeline
latency of the last vector to its write),
and for the properties the explorer relies on: broadcasting, numpy/torch agreement, tile
counts by enumeration, and the breakdown adding up.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dse.cost.gemm import DEFAULT_MULT_LATENCY, gemm_cycle_breakdown, gemm_cycles

WS, OS, IS = 0, 1, 2


def walk_schedule(m, k, n, rows, cols, flow, lat):
    """Count busy cycles by walking the tiles one event at a time (docs/rtl.md timing)."""
    if flow == WS:
        tiles = [(kt, nt) for nt in range(0, n, cols) for kt in range(0, k, rows)]
        t_len = m
    elif flow == IS:
        tiles = [(kt, mt) for mt in range(0, m, cols) for kt in range(0, k, rows)]
        t_len = n
    else:
        tiles = [(mt, nt) for mt in range(0, m, rows) for nt in range(0, n, cols)]
        t_len = k
    cycle = 1                                # busy cycle 1: INIT resets the tile walkers
    if flow != OS:
        cycle += rows + 1                    # preload of tile 0's stationary operand, latch
    last_issue = None
    for _ in tiles:
        slot_start = cycle + 1
        last_issue = slot_start + t_len - 1  # one vector per cycle
        if flow == OS:
            cycle += t_len + rows - 1        # slot: stream T, drain rows under the next
        else:
            cycle += max(t_len, rows + 1)    # slot: stream T; preload and latch the next
    if flow == OS:
        # drain starts rows + L + 1 after the last vector, lasts rows cycles; each drained
        # row leaves the de-skew cols cycles after its drain step and is written one later.
        drain = last_issue + rows + lat + 1
        return drain + rows - 1 + cols + 1
    # the last vector reaches the writer rows + cols + L + 1 cycles after its issue and is
    # written in the cycle after (read-modify-write)
    return last_issue + rows + cols + lat + 2


SHAPES = [(1, 1, 1), (3, 5, 4), (5, 1, 3), (2, 13, 3), (4, 4, 4), (7, 3, 5), (17, 40, 9)]
ARRAYS = [(1, 1), (2, 2), (3, 4), (4, 4), (8, 8), (4, 8)]


@pytest.mark.parametrize("lat", [0, 1, 3])
def test_closed_form_equals_schedule_walk(lat):
    for (m, k, n), (rows, cols), flow in itertools.product(SHAPES, ARRAYS, (WS, OS, IS)):
        expect = walk_schedule(m, k, n, rows, cols, flow, lat)
        got = int(gemm_cycles(m, k, n, rows, cols, flow, mult_latency=lat))
        assert got == expect, (m, k, n, rows, cols, flow)


def test_hand_derived_smallest_case():
    # 1×1×1 on a 1×1 array, L = 3 (docs/rtl.md): os: INIT, issue, 1+L+1 to the accumulator,
    # drain step, write → 1 + 1 + (1 + 3 + 1) + 1 + 1 = 9; ws/is add the one-cycle preload,
    # its latch and the read-modify-write path: 1 + 1 + 1 + 1 + (1 + 1 + 3 + 1) + 1 = 11.
    assert int(gemm_cycles(1, 1, 1, 1, 1, OS)) == 9
    assert int(gemm_cycles(1, 1, 1, 1, 1, WS)) == 11
    assert int(gemm_cycles(1, 1, 1, 1, 1, IS)) == 11


def test_tiles_match_enumeration_and_breakdown_adds_up():
    m, k, n = np.meshgrid(np.arange(1, 12), np.arange(1, 12), np.arange(1, 12), indexing="ij")
    for rows, cols in ARRAYS:
        for flow in (WS, OS, IS):
            parts = gemm_cycle_breakdown(m, k, n, rows, cols, flow)
            assert np.array_equal(parts["steady"] + parts["fill_drain"], parts["cycles"])
            i = (4, 9, 2)
            mm, kk, nn = int(m[i]), int(k[i]), int(n[i])
            spatial = {WS: (kk, nn), OS: (mm, nn), IS: (kk, mm)}[flow]
            count = len(range(0, spatial[0], rows)) * len(range(0, spatial[1], cols))
            assert int(parts["tiles"][i]) == count


def test_vectorised_matches_scalar_and_broadcasts():
    rng = np.random.default_rng(0)
    m, k, n = (rng.integers(1, 300, size=50) for _ in range(3))
    rows = np.array([[4], [8], [16]])
    flows = rng.integers(0, 3, size=50)
    got = gemm_cycles(m, k, n, rows, rows, flows)
    assert got.shape == (3, 50)
    for r in range(3):
        for j in range(50):
            assert got[r, j] == walk_schedule(int(m[j]), int(k[j]), int(n[j]), int(rows[r, 0]),
                                              int(rows[r, 0]), int(flows[j]),
                                              DEFAULT_MULT_LATENCY)


def test_torch_backend_agrees():
    torch = pytest.importorskip("torch")
    m, k, n = torch.tensor([3, 50, 7]), torch.tensor([9, 2, 64]), torch.tensor([5, 5, 1])
    flows = torch.tensor([0, 1, 2])
    got = gemm_cycles(m, k, n, 8, 4, flows, xp=torch)
    expect = gemm_cycles(m.numpy(), k.numpy(), n.numpy(), 8, 4, flows.numpy())
    assert got.tolist() == expect.tolist()


def test_default_latency_is_the_rtl_default():
    from rtl.dsp import DEFAULT_LATENCY
    assert DEFAULT_MULT_LATENCY == DEFAULT_LATENCY


def test_beats_match_enumeration():
    """Beat functions against counting the chunks of each wide beat order (docs/rtl.md)."""
    from dse.cost.gemm import a_beats, b_beats, c_beats

    for (m, k, n), (rows, cols) in itertools.product(SHAPES, ARRAYS):
        chunks = lambda extent, size: len(range(0, extent, size))  # noqa: E731
        assert int(a_beats(m, k, rows, True)) == m * chunks(k, rows)
        assert int(a_beats(m, k, rows, False)) == m * k
        for flow in (WS, OS, IS):
            want_b = n * chunks(k, rows) if flow == IS else k * chunks(n, cols)
            want_c = chunks(m, cols) * n if flow == IS else m * chunks(n, cols)
            assert int(b_beats(k, n, rows, cols, flow, True)) == want_b
            assert int(c_beats(m, n, cols, flow, True)) == want_c
            assert int(b_beats(k, n, rows, cols, flow, False)) == k * n
            assert int(c_beats(m, n, cols, flow, False)) == m * n


def test_beats_broadcast_numpy_and_torch():
    from dse.cost.gemm import a_beats, b_beats, c_beats

    m = np.array([1, 5, 9, 17])
    k = np.array([1, 4, 13, 3])
    n = np.array([2, 8, 3, 30])
    flows = np.array([WS, OS, IS, IS])
    wide = np.array([True, False, True, True])
    calls = ((b_beats, (k, n, 4, 8, flows, wide)), (c_beats, (m, n, 8, flows, wide)),
             (a_beats, (m, k, 4, wide)))
    expect = []
    for fn, args in calls:
        each = [int(fn(*[a[i] if isinstance(a, np.ndarray) else a for a in args]))
                for i in range(4)]
        assert fn(*args).tolist() == each
        expect.append(each)
    torch = pytest.importorskip("torch")
    for (fn, args), each in zip(calls, expect):
        targs = [torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args]
        assert fn(*targs, xp=torch).tolist() == each
