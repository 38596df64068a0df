"""Exact per-layer mapping: a PBQP on the layer graph, solved for many hardware points at once.

The problem (DYNAMAP, Meng et al., FPGA'21: a PBQP over the layer graph): every node ``v`` of a graph picks one of ``a_v`` choices
at cost ``c_v[i]``; every edge ``(u, v)`` adds ``C_uv[i, j]`` for the pair of choices it joins
(the layout change between a producer and a consumer).  Minimise the sum.  The problem is
NP-hard in general, but on series-parallel graphs -- chains, Inception fork/join modules,
residual blocks -- it is solved exactly by three reductions that never guess:

* **R0**: an isolated node takes its argmin.
* **RI**: a degree-1 node ``u`` with neighbour ``v`` folds into ``v``:
  ``c_v[i] += min_j (C_vu[i, j] + c_u[j])``.
* **RII**: a degree-2 node ``u`` between ``v`` and ``w`` becomes (or merges into) an edge:
  ``C_vw[i, k] += min_j (C_vu[i, j] + c_u[j] + C_uw[j, k])`` -- a min-plus product.

A node with a single choice is folded into all its neighbours whatever its degree (exact), so
concat/add nodes with one fixed layout split the graph as DYNAMAP's join nodes do.  Every
reduction works on arrays with a leading axis of ``P`` hardware points (costs ``(P, a)`` and
``(P, a, b)``): the graph structure, and hence the reduction order, is the same for every
point, so thousands of hardware points are mapped in one numpy pass.

Where the reductions stop (every remaining node has degree >= 3: the graph is not
series-parallel), the remaining *kernel* is solved exactly, by vectorised enumeration when it
is small and otherwise by a mixed-integer linear program (scipy's HiGHS) per point with the
pairwise terms linearised by marginal constraints.  DYNAMAP's solver guesses at such nodes
(its RN rule); here the answer stays exact and :attr:`MappingSolution.optimal` says whether
every sub-solve proved optimality (only a MILP time limit can make it false).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MappingProblem", "MappingSolution", "solve", "solve_milp", "solve_brute_force",
           "evaluate", "reduction_kernel"]

#: Largest number of (point x joint choice) cells the vectorised enumeration may allocate.
_ENUM_CELLS = 4_000_000
#: Largest number of cells :func:`solve_brute_force` accepts.
_BRUTE_CELLS = 16_000_000


@dataclass(frozen=True, eq=False)
class MappingProblem:
    """A batch of PBQP instances sharing one graph.

    Parameters
    ----------
    node_costs:
        One array per node, shaped ``(P, a_v)`` (or ``(a_v,)`` for a single point): the cost
        of each choice at each of the ``P`` hardware points.  ``+inf`` marks a choice that
        cannot run; NaN and ``-inf`` are refused.
    edges:
        ``(u, v)`` node-index pairs.  Repeated pairs (either orientation) add up.
    edge_costs:
        One array per edge, shaped ``(P, a_u, a_v)`` (or ``(a_u, a_v)``).
    names:
        Optional node names, for messages and reports.
    """

    node_costs: tuple
    edges: tuple
    edge_costs: tuple
    names: tuple = ()

    def __post_init__(self):
        nodes = [np.asarray(c, dtype=np.float64) for c in self.node_costs]
        if not nodes:
            raise ValueError("node_costs must hold at least one node, not 0")
        points = max(c.shape[0] if c.ndim == 2 else 1 for c in nodes)
        fixed = []
        for i, c in enumerate(nodes):
            if c.ndim == 1:
                c = np.broadcast_to(c, (points, c.shape[0]))
            if c.ndim != 2 or c.shape[0] != points or c.shape[1] < 1:
                raise ValueError(f"node_costs[{i}] must have shape ({points}, a) with a >= 1, "
                                 f"not {c.shape}")
            fixed.append(np.ascontiguousarray(c))
        sizes = tuple(c.shape[1] for c in fixed)
        edges = tuple((int(u), int(v)) for u, v in self.edges)
        if len(edges) != len(self.edge_costs):
            raise ValueError(f"edge_costs must have one matrix per edge ({len(edges)}), "
                             f"not {len(self.edge_costs)}")
        mats = []
        for e, ((u, v), m) in enumerate(zip(edges, self.edge_costs)):
            if not (0 <= u < len(sizes) and 0 <= v < len(sizes)) or u == v:
                raise ValueError(f"edges[{e}] must join two different nodes in "
                                 f"0..{len(sizes) - 1}, not {(u, v)}")
            m = np.asarray(m, dtype=np.float64)
            if m.ndim == 2:
                m = np.broadcast_to(m, (points,) + m.shape)
            if m.shape != (points, sizes[u], sizes[v]):
                raise ValueError(f"edge_costs[{e}] must have shape "
                                 f"{(points, sizes[u], sizes[v])}, not {m.shape}")
            mats.append(m)
        for label, arrays in (("node_costs", fixed), ("edge_costs", mats)):
            for a in arrays:
                if np.isnan(a).any() or (a == -np.inf).any():
                    raise ValueError(f"{label} must be finite or +inf, not NaN or -inf")
        if self.names and len(self.names) != len(sizes):
            raise ValueError(f"names must have one entry per node ({len(sizes)}), "
                             f"not {len(self.names)}")
        object.__setattr__(self, "node_costs", tuple(fixed))
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "edge_costs", tuple(mats))
        object.__setattr__(self, "names", tuple(self.names))

    @property
    def n_points(self) -> int:
        """Number of hardware points ``P`` (the leading batch axis)."""
        return self.node_costs[0].shape[0]

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of choices of each node."""
        return tuple(c.shape[1] for c in self.node_costs)


@dataclass(frozen=True, eq=False)
class MappingSolution:
    """The optimum of every instance of a :class:`MappingProblem`.

    Members
    -------
    choices: ``(P, n)`` int array, the chosen choice index of each node at each point.
    total_cost: ``(P,)`` float array, the objective of those choices (``inf`` where no
        feasible choice exists).
    optimal: True when every point's optimum is proved (always, except after a MILP limit).
    method: ``"reduce"`` (reductions alone), ``"reduce+enum"``, ``"reduce+milp"``, ``"milp"``
        or ``"brute"``.
    """

    choices: np.ndarray
    total_cost: np.ndarray
    optimal: bool
    method: str


def evaluate(problem: MappingProblem, choices) -> np.ndarray:
    """Return the ``(P,)`` objective of ``choices`` (``(P, n)`` or ``(n,)`` choice indices)."""
    x = np.asarray(choices, dtype=np.int64)
    points = problem.n_points
    if x.ndim == 1:
        x = np.broadcast_to(x, (points, x.shape[0]))
    rows = np.arange(points)
    total = np.zeros(points)
    for v, c in enumerate(problem.node_costs):
        total += c[rows, x[:, v]]
    for (u, v), m in zip(problem.edges, problem.edge_costs):
        total += m[rows, x[:, u], x[:, v]]
    return total


class _Graph:
    """Mutable working copy: node vectors and one matrix per unordered node pair."""

    def __init__(self, problem: MappingProblem):
        self.cost = [c.copy() for c in problem.node_costs]
        self.nbr: list[set[int]] = [set() for _ in problem.node_costs]
        self.mat: dict[tuple[int, int], np.ndarray] = {}
        for (u, v), m in zip(problem.edges, problem.edge_costs):
            self.add_edge(u, v, m)

    def add_edge(self, u: int, v: int, m: np.ndarray) -> None:
        if u > v:
            u, v, m = v, u, m.transpose(0, 2, 1)
        key = (u, v)
        if key in self.mat:
            self.mat[key] = self.mat[key] + m
        else:
            self.mat[key] = np.array(m)
            self.nbr[u].add(v)
            self.nbr[v].add(u)

    def get(self, u: int, v: int) -> np.ndarray:
        """The matrix of edge u-v oriented ``(P, a_u, a_v)``."""
        return self.mat[(u, v)] if u < v else self.mat[(v, u)].transpose(0, 2, 1)

    def remove_edge(self, u: int, v: int) -> None:
        del self.mat[(min(u, v), max(u, v))]
        self.nbr[u].discard(v)
        self.nbr[v].discard(u)


def _reduce(problem: MappingProblem):
    """Apply R0/RI/RII and single-choice folding until none applies.

    Returns the working graph (what is left is the kernel), the set of kernel nodes and the
    reduction records for back-propagation.
    """
    g = _Graph(problem)
    sizes = problem.sizes
    alive = set(range(len(sizes)))
    records = []
    stack = sorted(alive, reverse=True)
    while stack:
        u = stack.pop()
        if u not in alive:
            continue
        nbrs = sorted(g.nbr[u])
        if sizes[u] == 1:
            # A fixed choice decouples its neighbours: fold each edge's column into them.
            for v in nbrs:
                g.cost[v] = g.cost[v] + g.get(v, u)[:, :, 0]
                g.remove_edge(u, v)
                stack.append(v)
            records.append(("fix", u))
        elif not nbrs:
            records.append(("r0", u, g.cost[u].argmin(axis=1)))
        elif len(nbrs) == 1:
            (v,) = nbrs
            t = g.get(v, u) + g.cost[u][:, None, :]           # (P, a_v, a_u)
            arg = t.argmin(axis=2)
            g.cost[v] = g.cost[v] + np.take_along_axis(t, arg[:, :, None], 2)[:, :, 0]
            g.remove_edge(u, v)
            records.append(("r1", u, v, arg))
            stack.append(v)
        elif len(nbrs) == 2:
            v, w = nbrs
            # min-plus product through u: (P, a_v, a_u, 1) + (P, 1, a_u, 1) + (P, 1, a_u, a_w)
            t = (g.get(v, u)[:, :, :, None] + g.cost[u][:, None, :, None]
                 + g.get(u, w)[:, None, :, :])
            arg = t.argmin(axis=2)                              # (P, a_v, a_w)
            best = np.take_along_axis(t, arg[:, :, None, :], 2)[:, :, 0, :]
            g.remove_edge(u, v)
            g.remove_edge(u, w)
            g.add_edge(v, w, best)
            records.append(("r2", u, v, w, arg))
            stack.extend((v, w))
        else:
            continue
        alive.discard(u)
    return g, alive, records


def reduction_kernel(problem: MappingProblem) -> list[int]:
    """Return the nodes the exact reductions cannot remove (empty for series-parallel graphs)."""
    return sorted(_reduce(problem)[1])


def _subproblem(g: _Graph, kernel: list[int]) -> MappingProblem:
    index = {v: i for i, v in enumerate(kernel)}
    edges, mats = [], []
    for (u, v), m in g.mat.items():
        edges.append((index[u], index[v]))
        mats.append(m)
    return MappingProblem(tuple(g.cost[v] for v in kernel), tuple(edges), tuple(mats))


def solve(problem: MappingProblem, *, milp_time_limit_s: float | None = None) -> MappingSolution:
    """Return the exact optimum of every instance of ``problem``.

    Reductions first; a non-series-parallel kernel left over is enumerated when small and
    otherwise solved by :func:`solve_milp` per point.
    """
    g, alive, records = _reduce(problem)
    points = problem.n_points
    x = np.zeros((points, len(problem.sizes)), dtype=np.int64)
    optimal = True
    method = "reduce"
    if alive:
        kernel = sorted(alive)
        sub = _subproblem(g, kernel)
        if points * int(np.prod([float(s) for s in sub.sizes])) <= _ENUM_CELLS:
            sol, method = solve_brute_force(sub), "reduce+enum"
        else:
            sol, method = solve_milp(sub, time_limit_s=milp_time_limit_s), "reduce+milp"
        optimal = sol.optimal
        x[:, kernel] = sol.choices
    rows = np.arange(points)
    for rec in reversed(records):
        kind, u = rec[0], rec[1]
        if kind == "fix":
            x[:, u] = 0
        elif kind == "r0":
            x[:, u] = rec[2]
        elif kind == "r1":
            x[:, u] = rec[3][rows, x[:, rec[2]]]
        else:
            x[:, u] = rec[4][rows, x[:, rec[2]], x[:, rec[3]]]
    return MappingSolution(x, evaluate(problem, x), optimal, method)


def _enumerate(problem: MappingProblem) -> np.ndarray:
    """Return the objective of every joint choice, shaped ``(P, a_0, ..., a_{n-1})``."""
    sizes = problem.sizes
    n = len(sizes)
    total = np.zeros((problem.n_points,) + sizes)
    for v, c in enumerate(problem.node_costs):
        shape = [problem.n_points] + [1] * n
        shape[v + 1] = sizes[v]
        total += c.reshape(shape)
    for (u, v), m in zip(problem.edges, problem.edge_costs):
        # reshape needs the lower-numbered node's axis first
        mm = m if u < v else m.transpose(0, 2, 1)
        total += mm.reshape([problem.n_points]
                            + [sizes[i] if i in (u, v) else 1 for i in range(n)])
    return total


def solve_brute_force(problem: MappingProblem) -> MappingSolution:
    """Return the optimum by trying every joint choice (vectorised; for tests and tiny kernels).

    Raises
    ------
    ValueError
        If the joint choice space of all points exceeds a few million cells.
    """
    cells = problem.n_points * float(np.prod([float(s) for s in problem.sizes]))
    if cells > _BRUTE_CELLS:
        raise ValueError(f"problem must have at most {_BRUTE_CELLS} (point x joint choice) "
                         f"cells for brute force, not {cells:.0f}")
    total = _enumerate(problem).reshape(problem.n_points, -1)
    flat = total.argmin(axis=1)
    x = np.stack(np.unravel_index(flat, problem.sizes), axis=1).astype(np.int64)
    return MappingSolution(x, evaluate(problem, x), True, "brute")


def solve_milp(problem: MappingProblem, *, time_limit_s: float | None = None) -> MappingSolution:
    """Return the optimum by an exact MILP per point (scipy.optimize.milp, HiGHS).

    Binary ``x[v, i]`` selects choice ``i`` of node ``v`` (one per node); continuous
    ``y[e, i, j] >= 0`` linearises each pairwise term through the marginal constraints
    ``sum_j y[e, i, j] = x[u, i]`` and ``sum_i y[e, i, j] = x[v, j]``, which force ``y`` to
    the product of the two one-hot vectors whenever ``x`` is integral.  ``+inf`` costs become
    upper bounds of 0.  The MIP gap is 0, so the result is exact unless a time limit stops it.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    sizes = problem.sizes
    x_off = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    n_x = int(x_off[-1])
    y_off = [n_x]
    for u, v in problem.edges:
        y_off.append(y_off[-1] + sizes[u] * sizes[v])
    n_var = y_off[-1]
    rows, cols, vals = [], [], []
    r = 0
    for v, a in enumerate(sizes):                       # one choice per node
        rows += [r] * a
        cols += list(range(x_off[v], x_off[v] + a))
        vals += [1.0] * a
        r += 1
    for e, (u, v) in enumerate(problem.edges):
        au, av = sizes[u], sizes[v]
        for i in range(au):                             # sum_j y[i, j] - x[u, i] = 0
            rows += [r] * (av + 1)
            cols += [y_off[e] + i * av + j for j in range(av)] + [x_off[u] + i]
            vals += [1.0] * av + [-1.0]
            r += 1
        for j in range(av):                             # sum_i y[i, j] - x[v, j] = 0
            rows += [r] * (au + 1)
            cols += [y_off[e] + i * av + j for i in range(au)] + [x_off[v] + j]
            vals += [1.0] * au + [-1.0]
            r += 1
    a_eq = coo_matrix((vals, (rows, cols)), shape=(r, n_var)).tocsr()
    rhs = np.zeros(r)
    rhs[:len(sizes)] = 1.0
    constraint = LinearConstraint(a_eq, rhs, rhs)
    integrality = np.zeros(n_var)
    integrality[:n_x] = 1
    options = {"mip_rel_gap": 0.0, "presolve": True}
    if time_limit_s is not None:
        options["time_limit"] = float(time_limit_s)

    points = problem.n_points
    x = np.zeros((points, len(sizes)), dtype=np.int64)
    optimal = True
    for p in range(points):
        cost = np.concatenate([c[p] for c in problem.node_costs]
                              + [m[p].ravel() for m in problem.edge_costs])
        upper = np.where(np.isinf(cost), 0.0, 1.0)
        cost = np.where(np.isinf(cost), 0.0, cost)
        res = milp(cost, constraints=constraint, integrality=integrality,
                   bounds=Bounds(np.zeros(n_var), upper), options=options)
        if res.x is None:
            # Infeasible: no finite choice exists; the objective below is then +inf.
            optimal = optimal and res.status == 2
            continue
        optimal = optimal and res.status == 0
        for v, a in enumerate(sizes):
            x[p, v] = int(np.argmax(res.x[x_off[v]:x_off[v] + a]))
    return MappingSolution(x, evaluate(problem, x), optimal, "milp")

