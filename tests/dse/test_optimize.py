"""The nlp hardware optimiser: its neighbourhoods, its relaxation, and its result against the grid."""

import numpy as np
import pytest

from dse.board import load_board
from dse.optimize import (FIELDS, Space, block_kib, hypervolume, latency_power, neighbours,
                          nlp_search, seeds, valid_points)
from dse.relaxed import (backend_name, relaxation, relaxed_objective, relaxed_resources,
                         solve)
from dse.search import NEAR_TIE, prepare, search
from dse.zoo import builtin

ECP5 = load_board("ecp5-85k")
ZCU102 = load_board("zcu102")


def _point(**kw):
    base = dict(rows=12, cols=32, winograd_m=2, winograd_lanes=4, fft_size=0,
                act_buffer_kib=64, weight_buffer_kib=128, out_buffer_kib=128, bus_bits=256)
    base.update(kw)
    return np.array([base[f] for f in FIELDS], dtype=np.int64)


def test_neighbours_are_valid_distinct_points_that_move_only_searched_fields():
    space = Space()
    p = _point()
    units = space.units({"winograd", "fft"})
    cand = neighbours(p, space, 4, units)
    assert len(cand) > 30
    assert valid_points(cand, space).all()
    assert len(np.unique(cand, axis=0)) == len(cand)
    assert not (cand == p).all(axis=1).any()
    assert (cand[:, FIELDS.index("act_buffer_kib")] % 4 == 0).all()
    # each field moves somewhere in the neighbourhood
    for i, name in enumerate(FIELDS):
        assert (cand[:, i] != p[i]).any(), name
    pinned = neighbours(p, space, 4, units,
                        searched=tuple(f for f in FIELDS if f not in ("rows", "cols")))
    assert (pinned[:, FIELDS.index("rows")] == 12).all()
    assert (pinned[:, FIELDS.index("cols")] == 32).all()


def test_a_cols_move_keeps_the_winograd_lanes_valid():
    # 16 lanes need cols divisible by 16: moving cols to 56 must drop them to 8 (or fewer)
    p = _point(rows=32, cols=64, winograd_lanes=16)
    cand = neighbours(p, Space(), 4, [(2, 0)])
    moved = cand[cand[:, FIELDS.index("cols")] == 56]
    assert len(moved) and (moved[:, FIELDS.index("winograd_lanes")] <= 8).all()


def test_block_kib_is_the_data_one_block_ram_holds():
    assert block_kib(ZCU102) == 4       # RAMB36E2: 32 Kb of data
    assert block_kib(ECP5) == 2         # DP16KD: 16 Kb of data


@pytest.mark.parametrize("board", [ECP5, ZCU102], ids=["ecp5-85k", "zcu102"])
def test_nlp_is_never_worse_than_the_grid(board):
    # the rule: the default optimiser's design is never worse than the grid's beyond
    # the near-tie tolerance (tiny: both optimisers run in a few seconds)
    net = builtin("tiny")
    grid = search(net, board, optimizer="grid")
    nlp = search(net, board, optimizer="nlp")
    assert nlp.optimizer == "nlp" and grid.optimizer == "grid"
    assert nlp.total_cycles <= grid.total_cycles * (1 + NEAR_TIE)
    assert nlp.evaluations == nlp.hardware_points > 0
    for k in ("dsp", "lut", "ff"):
        assert nlp.resources[k] <= getattr(board, k)


def test_nlp_keeps_the_pins():
    design = search(builtin("tiny"), ECP5, optimizer="nlp",
                    hardware_pins={"rows": 8, "cols": 8, "winograd_m": 0})
    assert (design.hardware["rows"], design.hardware["cols"]) == (8, 8)
    assert design.hardware["winograd_m"] == 0


def test_a_pooled_network_maps_only_shapes_its_pool_engine_runs():
    """A network with pools needs the overlay top's pool engine, and the search keeps the
    power-of-two arrays that have it (Problem.fit).  The rule is the board's, not one
    batch's: the nlp optimiser's neighbourhoods of other shapes used to pass whole when
    none of their points had it, and on VGG16 it once chose 32×48, which the flow then cut
    down to 32×32 at twice the cycles."""
    from dse.optimize import nlp_search

    problem = prepare(builtin("resnet18"), ZCU102)
    found = nlp_search(problem)
    table = problem.table({name: np.atleast_1d(getattr(found.hardware, name))
                           for name in FIELDS})
    fits, _ = problem.fit(table)
    assert fits.any() and problem.pooled_fits is True
    rows, cols = table.rows[fits], table.cols[fits]
    assert ((rows & (rows - 1)) == 0).all() and ((cols & (cols - 1)) == 0).all()
    # and one batch of shapes without a pool engine fits nothing
    odd = problem.table({name: np.atleast_1d(v) for name, v in zip(
        FIELDS, _point(rows=24, cols=48, winograd_m=0, winograd_lanes=1))})
    assert not problem.fit(odd)[0].any()


def test_seeds_fit_the_board():
    problem = prepare(builtin("tiny"), ECP5)
    space = Space()
    start = seeds(problem, space, space.units(problem.unit_algos), block_kib(ECP5))
    table = problem.table({name: start[:, i] for i, name in enumerate(FIELDS)})
    fits, _ = problem.fit(table)
    assert fits.all()


def _relaxation():
    problem = prepare(builtin("tiny"), ECP5)
    anchors = np.stack([_point(rows=8, cols=8, winograd_lanes=2, act_buffer_kib=16,
                               weight_buffer_kib=16, out_buffer_kib=8, bus_bits=128),
                        _point(rows=6, cols=16, winograd_m=0, winograd_lanes=1,
                               act_buffer_kib=8, weight_buffer_kib=32, out_buffer_kib=16,
                               bus_bits=64)])
    return problem, relaxation(problem, anchors, Space()), anchors


def test_the_relaxation_at_its_anchor_is_the_exact_per_layer_optimum():
    # at d = 0 the relaxed cycles are each layer's best choice at the anchor (no layout
    # changes between layers: those are the PBQP's), up to the smooth max (at most
    # 2^(1/16) - 1 = 4.4 % above the max of compute and memory)
    from dse.cost.choices import hardware_mask
    from dse.cost.model import evaluate
    from dse.search import _aux_costs

    problem, rel, anchors = _relaxation()
    t = relaxed_objective(np.zeros((2, 6)), *rel.cycle_arrays())
    table = problem.table({name: anchors[:, i] for i, name in enumerate(FIELDS)})
    cost = evaluate(problem.layers, problem.choices, table, precision=8)
    ok = (problem.legal[:, :, None] & problem.allowed[None, :, None]
          & hardware_mask(problem.choices, table, 8)[None])
    best = np.where(ok, cost.cycles, np.inf).min(axis=1).sum(axis=0)
    best += _aux_costs(problem.aux, table, 8)[0].sum(axis=0)
    assert np.all((t >= best * (1 - 1e-9)) & (t <= best * 1.045)), (t, best)
    mapped, _ = problem.map(table)
    assert np.all(mapped.cycles >= best * (1 - 1e-9))     # the PBQP adds layout changes


def test_the_relaxed_resources_at_the_anchor_are_the_resource_model():
    problem, rel, anchors = _relaxation()
    table = problem.table({name: anchors[:, i] for i, name in enumerate(FIELDS)})
    _, usage = problem.fit(table)
    r = relaxed_resources(np.zeros((2, 6)), rel.r0, rel.g)
    assert np.array_equal(r[:, 1], usage["lut"]) and np.array_equal(r[:, 0], usage["dsp"])
    # more PEs cost more LUTs: the rows and cols elasticities of the LUTs are positive
    assert (rel.g[:, 1, :2] > 0).all()


@pytest.mark.skipif(backend_name() != "jax", reason="jax is not installed")
def test_jax_gradients_equal_central_differences():
    from dse.relaxed import _jax_grad, _numpy_grad

    _, rel, _ = _relaxation()
    t0 = np.ones(2)
    args = (*rel.cycle_arrays(), t0, rel.r0, rel.g, rel.cap)
    rng = np.random.default_rng(1)
    d = rng.uniform(-0.5, 0.5, size=(2, 6))
    lam = rng.uniform(0, 1, size=(2, 4))
    auto = np.asarray(_jax_grad()(d, lam, 10.0, *args))
    numeric = _numpy_grad(d, lam, 10.0, *args)
    assert np.allclose(auto, numeric, rtol=1e-4, atol=1e-6)
    assert np.abs(auto).max() > 0


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_the_solve_improves_the_relaxed_cycles_within_the_relaxed_resources(backend):
    if backend == "jax" and backend_name() != "jax":
        pytest.skip("jax is not installed")
    _, rel, _ = _relaxation()
    d, t = solve(rel, backend=backend)
    t0 = relaxed_objective(np.zeros((2, 6)), *rel.cycle_arrays())
    assert (t <= t0 * (1 + 1e-9)).all()
    assert (t < t0 * 0.99).any()                     # the small anchors have room to grow
    used = relaxed_resources(d, rel.r0, rel.g)
    assert (used <= rel.cap * 1.02).all()
    assert ((d >= rel.lo - 1e-12) & (d <= rel.hi + 1e-12)).all()


def test_hypervolume_of_a_small_front():
    # (1, 3) and (2, 1) below the reference (4, 4): 3·1 + 2·2 = 7; a dominated point adds
    # nothing, a point beyond the reference neither
    assert hypervolume([1, 2], [3, 1], (4, 4)) == 7
    assert hypervolume([1, 2, 3, 5], [3, 1, 2, 0.5], (4, 4)) == 7


def _front(method):
    problem = prepare(builtin("tiny"), ECP5)
    found = nlp_search(problem, front=method)
    points = [latency_power(problem, m) for m in (found.result, found.alt)]
    return np.concatenate([p[0] for p in points]), np.concatenate([p[1] for p in points])


def test_the_epsilon_constraint_front_is_at_least_the_weighted_sum_front():
    eps, weighted, base = _front("epsilon"), _front("weighted"), _front(None)
    both = np.concatenate([eps[0], weighted[0]]), np.concatenate([eps[1], weighted[1]])
    ok = np.isfinite(both[0]) & np.isfinite(both[1])
    ref = (both[0][ok].max() * 1.1, both[1][ok].max() * 1.1)
    hv = {name: hypervolume(*f, ref) for name, f in
          (("epsilon", eps), ("weighted", weighted), ("none", base))}
    assert hv["epsilon"] >= hv["weighted"] > 0
    assert hv["epsilon"] > hv["none"]            # the sweep extends the front


def test_the_nlp_front_is_non_dominated_and_holds_the_design():
    design = search(builtin("tiny"), ZCU102, optimizer="nlp")
    front = [(p["latency_ms"], p["power_w"]) for p in design.pareto]
    assert len(front) > 3
    for i, (lat, pw) in enumerate(front):
        assert not any(lat2 <= lat and pw2 <= pw and (lat2, pw2) != (lat, pw)
                       for lat2, pw2 in front)
    lat, pw = round(design.latency_ms, 6), round(design.power_w, 6)
    assert not any(lat < a and pw < b for a, b in front)
    assert min(a for a, _ in front) <= lat
