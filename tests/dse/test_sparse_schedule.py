"""Sparse spectral kernels: pruning, bank placement and the conflict-free read schedule.

Every check here recomputes what it expects by plain loops (degrees, bank reads, a cycle
by cycle simulation of the lock-step hardware), never through the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dse.compiler.sparse_schedule import (Placement, balanced_placement, bank_loads, bin_index,
                                 conflict_free_schedule, default_placement, keep_count,
                                 naive_schedule, placement_cost, prune_spectral,
                                 schedule_cycles, schedule_layer, schedule_steps,
                                 spectral_bins)

FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random_mask(seed: int, lanes: int, bins: int, kind: str) -> np.ndarray:
    """lanes × bins masks of several shapes of trouble."""
    rng = np.random.default_rng(seed)
    if kind == "uniform":                      # each lane its own density
        return rng.random((lanes, bins)) < rng.random((lanes, 1))
    if kind == "same":                         # every lane reads the same bins
        return np.repeat(rng.random((1, bins)) < rng.random(), lanes, axis=0)
    if kind == "lowpass":                      # non-zeros crowd the low bins
        p = np.exp(-np.arange(bins) / max(1.0, bins * rng.random() / 3))
        return rng.random((lanes, bins)) < p
    k = int(rng.integers(1, bins + 1))         # "pruned": exactly k per lane, like the pruner
    mask = np.zeros((lanes, bins), dtype=bool)
    for p in range(lanes):
        mask[p, rng.choice(bins, k, replace=False)] = True
    return mask


def expected_steps(mask, bank_of, banks, ports) -> int:
    lane_deg = max(int(r.sum()) for r in mask)
    reads = [0] * banks
    for p, f in zip(*np.nonzero(mask)):
        reads[bank_of[f]] += 1
    return max(lane_deg, max(-(-r // ports) for r in reads))


def check_schedule(schedule, mask, bank_of, banks, ports):
    """Length Δ, every non-zero exactly once, only its own lane's, ≤ ports reads per bank."""
    lanes = mask.shape[0]
    assert len(schedule) == expected_steps(mask, bank_of, banks, ports)
    seen = []
    for step in schedule:
        assert len(step) == lanes
        per_bank = {}
        for p, f in enumerate(step):
            if f is None:
                continue
            assert mask[p, f]
            seen.append((p, f))
            per_bank[bank_of[f]] = per_bank.get(bank_of[f], 0) + 1
        assert all(c <= ports for c in per_bank.values())
    assert len(seen) == len(set(seen)) == int(mask.sum())


@settings(FAST, max_examples=700)
@given(seed=st.integers(0, 2 ** 32 - 1), lanes=st.integers(1, 12), banks=st.integers(1, 12),
       bins=st.sampled_from([1, 5, 12, 40, 144]), ports=st.sampled_from([1, 2]),
       kind=st.sampled_from(["uniform", "same", "lowpass", "pruned"]),
       shuffled=st.booleans())
def test_schedule_has_delta_steps_and_no_conflict(seed, lanes, banks, bins, ports, kind,
                                                   shuffled):
    mask = random_mask(seed, lanes, bins, kind)
    pl = default_placement(bins, banks)
    if shuffled:                               # any valid placement, not just f mod B
        perm = np.random.default_rng(seed + 1).permutation(bins)
        pl = Placement(pl.bank[perm], pl.address[perm], banks)
    sched = conflict_free_schedule(mask, pl, ports)
    check_schedule(sched, mask, list(pl.bank), banks, ports)
    assert schedule_cycles(sched, pl, ports) == (len(sched), 0)
    assert schedule_steps(mask, pl, ports) == len(sched)


@settings(FAST, max_examples=150)
@given(seed=st.integers(0, 2 ** 32 - 1), filters=st.integers(1, 40),
       channels=st.integers(1, 6), lanes=st.sampled_from([1, 3, 8, 16]),
       banks=st.sampled_from([1, 4, 7, 16]), ports=st.sampled_from([1, 2]),
       n=st.sampled_from([4, 8]), density=st.sampled_from([0.1, 0.25, 0.5, 1.0]))
def test_layer_schedules_every_pair_optimally(seed, filters, channels, lanes, banks, ports,
                                              n, density):
    # many graphs per example: the batched colouring must be exact for each one
    rng = np.random.default_rng(seed)
    h = n // 2 + 1
    pk = prune_spectral(rng.integers(-50, 50, (filters, channels, n, h)),
                        rng.integers(-50, 50, (filters, channels, n, h)), density)
    ls = schedule_layer(pk.mask, lanes, banks, ports)
    bank_of = list(ls.placement.bank)
    groups = -(-filters // lanes)
    assert ls.steps.shape == ls.naive_cycles.shape == (groups, channels)
    for g in range(groups):
        for c in range(channels):
            sub = np.zeros((lanes, n * h), dtype=bool)
            part = pk.mask[g * lanes:(g + 1) * lanes, c]
            sub[:len(part)] = part
            steps = int(ls.steps[g, c])
            sched = [tuple(None if f < 0 else int(f) for f in row)
                     for row in ls.order[g, c, :steps]]
            check_schedule(sched, sub, bank_of, banks, ports)
            assert np.all(ls.order[g, c, steps:] == -1)
            assert ls.macs[g, c] == sub.sum()
            naive = naive_schedule(sub)
            assert (ls.naive_steps[g, c], ls.naive_cycles[g, c]) == (
                len(naive), simulate_lock_step(naive, bank_of, ports))
    assert ls.cycles == int(ls.steps.sum()) <= ls.naive_total
    assert ls.utilisation == pytest.approx(pk.mask.sum() / (lanes * ls.steps.sum()))


def test_schedule_corner_cases():
    pl = default_placement(6, 3)
    # every lane reads every bin of bank 0 (bins 0 and 3): Δ is the bank's 8 reads
    mask = np.zeros((4, 6), dtype=bool)
    mask[:, [0, 3]] = True
    for ports, want in ((1, 8), (2, 4)):
        sched = conflict_free_schedule(mask, pl, ports)
        check_schedule(sched, mask, list(pl.bank), 3, ports)
        assert len(sched) == want
    # one bank: Δ = all the non-zeros; one lane: Δ = its non-zeros
    one = default_placement(6, 1)
    assert len(conflict_free_schedule(np.ones((3, 6), dtype=bool), one)) == 18
    assert len(conflict_free_schedule(np.ones((1, 6), dtype=bool), pl)) == 6
    # colouring lane 2's second edge needs an alternating-path swap: lanes 0 and 1 take
    # colour 0 at banks 0 and 1, lane 2 then colour 1 at bank 0, and bank 1 has only 1 free
    two = default_placement(2, 3)
    mask = np.array([[1, 0], [0, 1], [1, 1]], dtype=bool)
    sched = conflict_free_schedule(mask, two)
    check_schedule(sched, mask, list(two.bank), 3, 1)
    assert len(sched) == 2
    # no non-zeros at all: no steps
    assert conflict_free_schedule(np.zeros((2, 6), dtype=bool), pl) == []
    assert naive_schedule(np.zeros((2, 6), dtype=bool)) == []


def simulate_lock_step(schedule, bank_of, ports) -> int:
    """Cycle by cycle: a step's requests wait in per-bank queues; each cycle every bank
    serves up to ``ports`` of them; the next step issues once the queues are empty."""
    cycles = 0
    for step in schedule:
        queues = {}
        for f in step:
            if f is not None:
                queues.setdefault(bank_of[f], []).append(f)
        while True:
            cycles += 1
            for q in queues.values():
                del q[:ports]
            if not any(queues.values()):
                break
    return cycles


@settings(FAST, max_examples=400)
@given(seed=st.integers(0, 2 ** 32 - 1), lanes=st.integers(1, 6), banks=st.integers(1, 5),
       bins=st.integers(1, 12), ports=st.sampled_from([1, 2]))
def test_naive_cycles_match_a_cycle_by_cycle_simulation(seed, lanes, banks, bins, ports):
    mask = random_mask(seed, lanes, bins, "uniform")
    pl = default_placement(bins, banks)
    naive = naive_schedule(mask)
    # step t holds each lane's t-th non-zero in bin order
    for p in range(lanes):
        assert [s[p] for s in naive if s[p] is not None] == list(np.flatnonzero(mask[p]))
    assert len(naive) == max(int(r.sum()) for r in mask)
    want = simulate_lock_step(naive, list(pl.bank), ports)
    assert schedule_cycles(naive, pl, ports) == (want, want - len(naive))


def test_naive_stalls_by_hand():
    # two lanes, both reading bins 0 and 2, both in bank 0 of 2: each step is 2 cycles
    pl = default_placement(4, 2)
    mask = np.array([[1, 0, 1, 0], [1, 0, 1, 0]], dtype=bool)
    naive = naive_schedule(mask)
    assert naive == [(0, 0), (2, 2)]
    assert schedule_cycles(naive, pl, 1) == (4, 2)
    assert schedule_cycles(naive, pl, 2) == (2, 0)
    # an empty step still takes a cycle
    assert schedule_cycles([(None, None)], pl) == (1, 0)
    ls = schedule_layer(mask, 2, 2, 1, "default")
    assert (ls.cycles, ls.naive_total, ls.stall_cycles) == (4, 4, 2)


def loads_by_loop(mask, bank_of, lanes, banks):
    f, c, _ = mask.shape
    groups = -(-f // lanes)
    out = np.zeros((groups, c, banks), dtype=int)
    for n in range(f):
        for ch in range(c):
            for b in np.flatnonzero(mask[n, ch]):
                out[n // lanes, ch, bank_of[b]] += 1
    return out


@settings(FAST, max_examples=150)
@given(seed=st.integers(0, 2 ** 32 - 1), filters=st.integers(1, 20),
       channels=st.integers(1, 4), lanes=st.integers(1, 8), banks=st.integers(1, 16),
       bins=st.sampled_from([3, 12, 40, 144]), lowpass=st.booleans())
def test_balanced_placement_fits_and_never_loses_to_mod_b(seed, filters, channels, lanes,
                                                          banks, bins, lowpass):
    rng = np.random.default_rng(seed)
    mask = np.stack([random_mask(int(s), channels, bins, "lowpass" if lowpass else "uniform")
                     for s in rng.integers(0, 2 ** 32, filters)])
    pl = balanced_placement(mask, lanes, banks)
    cap = math.ceil(bins / banks)
    assert pl.capacity == cap
    assert np.bincount(pl.bank, minlength=banks).max() <= cap
    assert len(set(zip(pl.bank, pl.address))) == bins
    assert pl.address.max() < cap
    loads = loads_by_loop(mask, list(pl.bank), lanes, banks)
    np.testing.assert_array_equal(bank_loads(mask, pl, lanes), loads)
    base = loads_by_loop(mask, [f % banks for f in range(bins)], lanes, banks)
    got = (loads.max(-1).max(), loads.max(-1).sum())
    assert got <= (base.max(-1).max(), base.max(-1).sum())
    assert placement_cost(mask, pl, lanes) == got


def test_balanced_placement_splits_hot_bins():
    # every kernel keeps bins 0 and 2 of 4; mod 2 puts both in bank 0, LPT one per bank
    mask = np.zeros((8, 3, 4), dtype=bool)
    mask[:, :, [0, 2]] = True
    assert placement_cost(mask, default_placement(4, 2), 4) == (8, 6 * 8)
    pl = balanced_placement(mask, 4, 2)
    assert pl.bank[0] != pl.bank[2]
    assert placement_cost(mask, pl, 4) == (4, 6 * 4)
    # in order, all 4 lanes hit one bank in both steps: 4 + 4 cycles, 6 stalls per pair
    ls = schedule_layer(mask, 4, 2, 1, "balanced")
    assert ls.cycles == 6 * 4 and (ls.naive_total, ls.stall_cycles) == (6 * 8, 6 * 6)
    # 2 banks serve 2 of the 4 lanes a cycle: 48 MACs in 4 lanes × 24 cycles
    assert (ls.utilisation, ls.naive_utilisation) == (0.5, 0.25)


def test_keep_count():
    # ⌈D·bins⌉ with D read as written: 0.1·40 = 4, 0.07·100 = 7 (binary floats overshoot)
    assert spectral_bins(8) == 40 and spectral_bins(16) == 144 and spectral_bins(4) == 12
    assert [keep_count(d, 40) for d in (0.1, 0.25, 0.5, 1.0, 0.01, 0.3)] == [4, 10, 20, 40,
                                                                              1, 12]
    assert keep_count(0.07, 100) == 7 and keep_count(0.25, 144) == 36
    assert keep_count(0.33, 40) == 14


@settings(FAST, max_examples=200)
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.sampled_from([4, 8, 16]),
       density=st.floats(0.01, 1.0), spread=st.sampled_from([1, 3, 1000]))
def test_pruning_keeps_the_largest_with_low_bin_ties(seed, n, density, spread):
    rng = np.random.default_rng(seed)
    h = n // 2 + 1
    re = rng.integers(-spread, spread + 1, (3, 2, n, h))     # small spreads: many ties
    im = rng.integers(-spread, spread + 1, (3, 2, n, h))
    pk = prune_spectral(re, im, density)
    bins = n * h
    keep = math.ceil(round(density * 10 ** 12) * bins / 10 ** 12)   # no float overshoot
    assert pk.keep == keep
    for i in range(3):
        for c in range(2):
            mag = [int(re[i, c].flat[f]) ** 2 + int(im[i, c].flat[f]) ** 2
                   for f in range(bins)]
            want = sorted(sorted(range(bins), key=lambda f: (-mag[f], f))[:keep])
            assert list(np.flatnonzero(pk.mask[i, c])) == want
            assert pk.pairs(i, c) == [(f, complex(re[i, c].flat[f], im[i, c].flat[f]))
                                      for f in want]
    dr, di = pk.dense()
    np.testing.assert_array_equal(dr, np.where(pk.mask.reshape(re.shape), re, 0))
    np.testing.assert_array_equal(di, np.where(pk.mask.reshape(re.shape), im, 0))


def test_bin_numbering_and_pruning_by_hand():
    # one dominant bin at (u, v) = (3, 2) of an 8-point half spectrum: bin 3·5 + 2 = 17
    assert bin_index(3, 2, 8) == 17 and bin_index(7, 4, 8) == 39
    re = np.ones((8, 5), dtype=np.int64)
    re[3, 2] = 100
    im = np.zeros((8, 5), dtype=np.int64)
    im[0, 1] = -9
    pk = prune_spectral(re, im, 0.05)          # ⌈0.05·40⌉ = 2: (3, 2) then (0, 1)
    assert pk.pairs() == [(1, 1 - 9j), (17, 100 + 0j)]
    # all equal: the lowest bins win
    pk = prune_spectral(np.ones((2, 4, 3)), np.zeros((2, 4, 3)), 0.25)
    assert pk.bin.tolist() == [[0, 1, 2], [0, 1, 2]]


def test_errors():
    pl = default_placement(40, 16)
    with pytest.raises(ValueError, match=r"^density must be in \(0, 1\], not 0$"):
        keep_count(0, 40)
    with pytest.raises(ValueError, match=r"^density must be in \(0, 1\], not 1.5$"):
        prune_spectral(np.zeros((8, 5)), np.zeros((8, 5)), 1.5)
    with pytest.raises(TypeError, match=r"^density must be a number, not '0.5'$"):
        keep_count("0.5", 40)
    with pytest.raises(ValueError, match=r"^spectra must have n/2 \+ 1 = 5 columns, not 8$"):
        prune_spectral(np.zeros((8, 8)), np.zeros((8, 8)), 0.5)
    with pytest.raises(ValueError, match=r"^n must be 4, 8, 16 or 32, not 6$"):
        spectral_bins(6)
    with pytest.raises(ValueError, match=r"^ports must be between 1 and 2, not 3$"):
        conflict_free_schedule(np.ones((2, 40), dtype=bool), pl, 3)
    with pytest.raises(ValueError, match=r"^mask must have the placement's 40 bins, not 12$"):
        conflict_free_schedule(np.ones((2, 12), dtype=bool), pl)
    with pytest.raises(TypeError, match=r"^mask must be a boolean array, not int64$"):
        naive_schedule(np.ones((2, 40), dtype=np.int64))
    with pytest.raises(ValueError, match=r"^mask must be lanes × bins, not \(40,\)$"):
        naive_schedule(np.ones(40, dtype=bool))
    with pytest.raises(ValueError, match=r"^banks must be at least 1, not 0$"):
        default_placement(40, 0)
    with pytest.raises(TypeError, match=r"^lanes must be an integer, not 2.0$"):
        schedule_layer(np.ones((2, 1, 40), dtype=bool), 2.0, 16)
    with pytest.raises(ValueError, match=r"^placement must be a Placement, 'balanced' or "
                                         r"'default', not 'lpt'$"):
        schedule_layer(np.ones((2, 1, 40), dtype=bool), 2, 16, placement="lpt")
    with pytest.raises(ValueError, match=r"^placement must give every bin its own "
                                         r"\(bank, address\)$"):
        Placement(np.array([0, 0]), np.array([0, 0]), 2)
    with pytest.raises(ValueError, match=r"^address entries must be in \[0, 1\), not 0..1$"):
        Placement(np.array([0, 0]), np.array([0, 1]), 2)    # bank 0 over its capacity
