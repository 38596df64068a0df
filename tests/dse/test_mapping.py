"""The exact mapping solver against brute force (hypothesis) on small graphs.

Costs are small integers stored as floats, so every sum is exact in float64 and "equal"
means bit-for-bit equal, whatever order the solver and the brute force add in.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dse.mapping import (MappingProblem, evaluate, reduction_kernel, solve, solve_brute_force,
                         solve_milp)

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _costs(rng, sizes, edges, points, inf_rate=0.0):
    nodes = []
    for a in sizes:
        c = rng.integers(0, 50, size=(points, a)).astype(float)
        if inf_rate:
            c[rng.random(c.shape) < inf_rate] = np.inf
        nodes.append(c)
    mats = [rng.integers(0, 30, size=(points, sizes[u], sizes[v])).astype(float)
            for u, v in edges]
    return MappingProblem(tuple(nodes), tuple(edges), tuple(mats))


@st.composite
def series_parallel(draw, max_nodes=8):
    """A two-terminal series-parallel DAG built by series and parallel compositions.

    Start with one edge s -> t; each step either subdivides an edge (series), adds a path
    u -> w -> v beside an existing edge u -> v (parallel with a new node), duplicates an edge
    (parallel multi-edge) or hangs a chain tail on a node.
    """
    edges = [(0, 1)]
    n = 2
    target = draw(st.integers(2, max_nodes))
    while n < target:
        op = draw(st.sampled_from(["series", "parallel", "multi", "tail"]))
        i = draw(st.integers(0, len(edges) - 1))
        u, v = edges[i]
        if op == "series":
            edges[i:i + 1] = [(u, n), (n, v)]
            n += 1
        elif op == "parallel":
            edges += [(u, n), (n, v)]
            n += 1
        elif op == "multi":
            edges.append((u, v))
        else:
            edges.append((v, n))
            n += 1
    sizes = tuple(draw(st.integers(1, 4)) for _ in range(n))
    return sizes, edges


@st.composite
def random_dag(draw, max_nodes=7):
    n = draw(st.integers(4, max_nodes))
    pairs = [(u, v) for v in range(n) for u in range(v)]
    mask = draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs)))
    edges = [p for p, keep in zip(pairs, mask) if keep]
    sizes = tuple(draw(st.integers(1, 3)) for _ in range(n))
    return sizes, edges


@SETTINGS
@given(series_parallel(), st.integers(0, 2**32 - 1), st.sampled_from([0.0, 0.15]))
def test_series_parallel_equals_brute_force(graph, seed, inf_rate):
    sizes, edges = graph
    problem = _costs(np.random.default_rng(seed), sizes, edges, points=3, inf_rate=inf_rate)
    sol = solve(problem)
    ref = solve_brute_force(problem)
    assert sol.method == "reduce"            # no kernel: the reductions alone are exact
    assert sol.optimal
    np.testing.assert_array_equal(sol.total_cost, ref.total_cost)
    # the reported total is the objective of the reported choices
    np.testing.assert_array_equal(evaluate(problem, sol.choices), sol.total_cost)


@SETTINGS
@given(random_dag(), st.integers(0, 2**32 - 1))
def test_milp_equals_brute_force(graph, seed):
    sizes, edges = graph
    problem = _costs(np.random.default_rng(seed), sizes, edges, points=2, inf_rate=0.1)
    ref = solve_brute_force(problem)
    sol = solve_milp(problem)
    assert sol.optimal
    np.testing.assert_array_equal(sol.total_cost, ref.total_cost)
    auto = solve(problem)
    np.testing.assert_array_equal(auto.total_cost, ref.total_cost)


def _k4(points=2, seed=1):
    edges = [(u, v) for v in range(4) for u in range(v)]
    return _costs(np.random.default_rng(seed), (3, 3, 3, 3), edges, points)


def test_complete_graph_is_not_reducible_but_solved_exactly():
    problem = _k4()
    assert reduction_kernel(problem) == [0, 1, 2, 3]
    sol = solve(problem)
    assert sol.method == "reduce+enum" and sol.optimal
    np.testing.assert_array_equal(sol.total_cost, solve_brute_force(problem).total_cost)


def test_large_kernel_goes_to_milp(monkeypatch):
    import dse.mapping as mapping
    monkeypatch.setattr(mapping, "_ENUM_CELLS", 1)
    problem = _k4(points=3, seed=7)
    sol = solve(problem)
    assert sol.method == "reduce+milp" and sol.optimal
    np.testing.assert_array_equal(sol.total_cost, solve_brute_force(problem).total_cost)


def test_batched_points_match_single_point_solves():
    rng = np.random.default_rng(3)
    sizes = (3, 2, 4, 3, 3, 2)
    edges = [(0, 1), (1, 2), (0, 3), (3, 2), (2, 4), (4, 5), (2, 5)]
    problem = _costs(rng, sizes, edges, points=50)
    batched = solve(problem)
    for p in range(0, 50, 7):
        single = MappingProblem(tuple(c[p] for c in problem.node_costs), problem.edges,
                                tuple(m[p] for m in problem.edge_costs))
        assert solve(single).total_cost[0] == batched.total_cost[p]


def test_hand_chain():
    # two layers, two choices each.  By hand: (0,0) 2+1+0 = 3, (0,1) 2+3+9 = 14,
    # (1,0) 1+1+5 = 7, (1,1) 1+3+0 = 4; the cheapest node choice (1) of layer 0 loses.
    problem = MappingProblem(
        ([2.0, 1.0], [1.0, 3.0]), [(0, 1)], ([[0.0, 9.0], [5.0, 0.0]],))
    sol = solve(problem)
    assert sol.choices.tolist() == [[0, 0]]
    assert sol.total_cost.tolist() == [3.0]


def test_infeasible_point_has_infinite_cost():
    problem = MappingProblem(([np.inf, np.inf], [1.0]), [(0, 1)], ([[0.0], [0.0]],))
    assert solve(problem).total_cost[0] == np.inf
    assert solve_milp(problem).total_cost[0] == np.inf


@pytest.mark.parametrize("kwargs, message", [
    (dict(node_costs=(), edges=(), edge_costs=()), r"^node_costs must hold at least one"),
    (dict(node_costs=([1.0],), edges=[(0, 0)], edge_costs=([[0.0]],)),
     r"^edges\[0\] must join two different nodes"),
    (dict(node_costs=([1.0], [1.0, 2.0]), edges=[(0, 1)], edge_costs=([[0.0]],)),
     r"^edge_costs\[0\] must have shape \(1, 1, 2\), not \(1, 1, 1\)$"),
    (dict(node_costs=([np.nan],), edges=(), edge_costs=()), r"^node_costs must be finite"),
])
def test_problem_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MappingProblem(**kwargs)
