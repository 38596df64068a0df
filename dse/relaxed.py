"""The continuous relaxation the ``nlp`` optimiser solves with gradients (Liang et al.'s NLP step).

The exact model (:mod:`dse.cost.model`) is integer-valued and piecewise constant in the
hardware: tiles, bands and block RAMs are whole numbers.  Its relaxation here is a smooth
matrix-form function of six real variables per candidate, in log2 units around an
*anchor* point x0 that the exact model has evaluated::

    d = log2(x / x0)   for x = (rows, cols, act KiB, weight KiB, out KiB, bus bits)

For every (layer, choice) the anchor's exact compute and memory cycles are scaled by their
*elasticities* -- how much each halves when one variable doubles, measured by the exact
model at the anchor with that variable doubled (six more points) and clipped to [0, 2]::

    compute(d) = compute0 · 2^(-e_compute · d)        memory(d) = memory0 · 2^(-e_memory · d)
    cycles(d)  = (compute^16 + memory^16)^(1/16) + exposed0 · 2^(-e_memory · d)

(a smooth max, plus the anchor's exposed first load and last store, scaled as the memory
cycles are)
    T(d)       = Σ_layers min_choices cycles(d)  +  the non-MAC layers' cycles

and each resource (DSP, LUT, FF, block RAM) likewise: ``R(d) = R0 · 2^(g · d)`` with ``g``
from the same six points.  The NLP minimises ``T(d)`` subject to ``R(d) ≤`` the board's, with
``d`` in a trust region of one doubling either way and inside :class:`dse.optimize.Space`'s
bounds: an augmented Lagrangian with Adam steps.  Many candidates are solved at once (one
per anchor: a leading axis on every coefficient array).

Gradients come from jax when it is installed (``jax.grad`` of :func:`relaxed_objective`,
compiled with ``jax.jit``; it runs on a GPU when jax has one), else from central
differences in numpy -- the same function, so the numpy path is complete.  The solution is
rounded to nearby integer points (rows and cols both ways, cols also to multiples of the
Winograd lanes, buffers to whole blocks, the bus to a power of two), which the local
search maps exactly.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Relaxation", "relaxation", "relaxed_objective", "solve", "relax_seeds",
           "VARIABLES", "backend_name"]

#: The relaxed variables, in order (log2 of each field's value over the anchor's).
VARIABLES = ("rows", "cols", "act_buffer_kib", "weight_buffer_kib", "out_buffer_kib",
             "bus_bits")
_SMOOTH_MAX = 16.0
_TRUST = 1.0


def backend_name() -> str:
    """``"jax"`` when jax can be imported, else ``"numpy"``."""
    try:
        import jax  # noqa: F401
    except ImportError:
        return "numpy"
    return "jax"


class Relaxation:
    """The coefficient arrays of the relaxed model of ``S`` anchors.

    Members
    -------
    compute0, memory0, extra0: ``(S, L, C)`` exact compute and memory cycles at each
        anchor (inf where the choice cannot run there), and what ``cycles`` adds to their
        larger (the exposed first load and last store).
    e_compute, e_memory: ``(S, L, C, 6)`` elasticities.
    aux: ``(S,)`` cycles of the non-MAC layers.
    r0: ``(S, 4)`` DSP, LUT, FF, block RAM at the anchor; ``g``: ``(S, 4, 6)`` their
        elasticities; ``cap``: ``(4,)`` the board's.
    x0: ``(S, 6)`` the anchors' values of :data:`VARIABLES`; ``lo``, ``hi``: ``(S, 6)``
        bounds of ``d`` (trust region and space).
    """

    def __init__(self, **arrays):
        self.__dict__.update(arrays)

    @property
    def shape(self) -> tuple:
        return self.compute0.shape

    def cycle_arrays(self) -> tuple:
        """The arguments of :func:`relaxed_objective` after ``d``."""
        return (self.compute0, self.memory0, self.extra0, self.e_compute, self.e_memory,
                self.aux)


def relaxed_objective(d, compute0, memory0, extra0, e_compute, e_memory, aux, xp=np):
    """``(S,)`` relaxed network cycles at ``d`` (``(S, 6)``), in namespace ``xp``."""
    shift = d[:, None, None, :]
    finite = xp.isfinite(compute0) & xp.isfinite(memory0)
    c0 = xp.where(finite, compute0, 1.0)
    m0 = xp.where(finite, memory0, 1.0)
    x0 = xp.where(finite, extra0, 0.0)
    compute = c0 * xp.exp2(-(e_compute * shift).sum(axis=-1))
    scale = xp.exp2(-(e_memory * shift).sum(axis=-1))
    memory = m0 * scale
    cycles = ((compute ** _SMOOTH_MAX + memory ** _SMOOTH_MAX) ** (1.0 / _SMOOTH_MAX)
              + x0 * scale)
    cycles = xp.where(finite, cycles, xp.inf)
    return cycles.min(axis=-1).sum(axis=-1) + aux


def relaxed_resources(d, r0, g, xp=np):
    """``(S, 4)`` relaxed DSP, LUT, FF and block RAM at ``d``."""
    return r0 * xp.exp2((g * d[:, None, :]).sum(axis=-1))


def _exact(problem, points):
    """Exact per-(layer, choice) compute and memory cycles and resources of ``points``."""
    from .cost.choices import hardware_mask
    from .cost.model import evaluate
    from .optimize import FIELDS

    table = problem.table({name: points[:, i] for i, name in enumerate(FIELDS)})
    cost = evaluate(problem.layers, problem.choices, table, precision=problem.precision,
                    fill_drain=False)
    ok = (problem.legal[:, :, None] & problem.allowed[None, :, None]
          & hardware_mask(problem.choices, table, problem.precision)[None, :, :]
          & np.asarray(cost.valid))
    compute = np.where(ok, np.asarray(cost.compute_cycles), np.inf)
    memory = np.where(ok, np.asarray(cost.memory_cycles), np.inf)
    # the exposed first load and last store: what cycles adds to the larger of the two
    with np.errstate(invalid="ignore"):
        extra = np.where(ok, np.asarray(cost.cycles) - np.maximum(compute, memory), np.inf)
    _, usage = problem.fit(table)
    res = np.stack([np.asarray(usage[k], dtype=float)
                    for k in ("dsp", "lut", "ff", "bram_blocks")], axis=1)
    from .search import _aux_costs

    aux = _aux_costs(problem.aux, table, problem.precision)[0].sum(axis=0)
    return compute, memory, extra, res, aux


def relaxation(problem, anchors: np.ndarray, space) -> Relaxation:
    """The :class:`Relaxation` around each of ``anchors`` (``(S, len(FIELDS))`` points)."""
    from .optimize import FIELDS, valid_points

    cols = [FIELDS.index(v) for v in VARIABLES]
    s = len(anchors)
    pts = [anchors]
    for j, i in enumerate(cols):
        up = anchors.copy()
        up[:, i] = up[:, i] * 2
        if VARIABLES[j] == "bus_bits":
            up[:, i] = np.minimum(up[:, i], max(space.bus_bits))
        pts.append(up)
    allp = np.concatenate(pts)
    allp[:, FIELDS.index("rows")] = np.minimum(allp[:, FIELDS.index("rows")], space.max_dim)
    allp[:, FIELDS.index("cols")] = np.minimum(allp[:, FIELDS.index("cols")], space.max_dim)
    keep = valid_points(allp, space)
    allp = np.where(keep[:, None], allp, np.tile(anchors, (len(cols) + 1, 1)))
    compute, memory, extra, res, aux = _exact(problem, allp)
    k = len(cols)
    compute = compute.reshape(compute.shape[0], compute.shape[1], k + 1, s)
    memory = memory.reshape(memory.shape[0], memory.shape[1], k + 1, s)
    res = res.reshape(k + 1, s, 4)
    x0 = anchors[:, cols].astype(float)
    x1 = allp.reshape(k + 1, s, -1)[1:, :, cols]                    # (6, S, 6)
    steps = np.log2(np.maximum(1.0, np.stack([x1[j, :, j] for j in range(k)], axis=1))
                    / x0)                                           # (S, 6)

    c0 = np.moveaxis(compute[:, :, 0, :], -1, 0)                     # (S, L, C)
    m0 = np.moveaxis(memory[:, :, 0, :], -1, 0)
    e_c = np.zeros(c0.shape + (k,))
    e_m = np.zeros(m0.shape + (k,))
    for j in range(k):
        st = steps[:, j][:, None, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            ec = -np.log2(np.moveaxis(compute[:, :, j + 1, :], -1, 0) / c0) / np.where(
                st > 0, st, 1.0)
            em = -np.log2(np.moveaxis(memory[:, :, j + 1, :], -1, 0) / m0) / np.where(
                st > 0, st, 1.0)
        e_c[..., j] = np.clip(np.where(np.isfinite(ec) & (st > 0), ec, 0.0), 0.0, 2.0)
        e_m[..., j] = np.clip(np.where(np.isfinite(em) & (st > 0), em, 0.0), 0.0, 2.0)
    r0 = res[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.log2(np.maximum(res[1:], 1.0) / np.maximum(r0[None], 1.0))   # (6, S, 4)
    g = np.where(steps.T[:, :, None] > 0, g / np.where(steps.T[:, :, None] > 0,
                                                      steps.T[:, :, None], 1.0), 0.0)
    g = np.clip(np.moveaxis(g, 0, -1), 0.0, 2.0)                    # (S, 4, 6)
    board = problem.board
    cap = np.array([board.dsp, board.lut_budget, board.ff, board.onchip_blocks], dtype=float)
    lo_x = np.array([space.min_dim, space.min_dim, 1, 1, 1, min(space.bus_bits)], float)
    hi_x = np.array([space.max_dim, space.max_dim, space.max_buffer_kib,
                     space.max_buffer_kib, space.max_buffer_kib, max(space.bus_bits)], float)
    lo = np.maximum(-_TRUST, np.log2(lo_x / x0))
    hi = np.minimum(_TRUST, np.log2(hi_x / x0))
    x0_extra = np.moveaxis(extra.reshape(extra.shape[0], extra.shape[1], k + 1, s)[:, :, 0, :],
                           -1, 0)
    return Relaxation(compute0=c0, memory0=m0, extra0=np.maximum(x0_extra, 0.0),
                      e_compute=e_c, e_memory=e_m,
                      aux=aux[:s].astype(float), r0=r0, g=g, cap=cap, x0=x0, lo=lo, hi=hi)


def solve(rel: Relaxation, steps: int = 150, lr: float = 0.05, backend: str | None = None):
    """Minimise the relaxed cycles within the relaxed resources: ``(d, T(d))``, ``(S, 6)``
    and ``(S,)``.

    Augmented Lagrangian on ``T(d)/T(0)`` with the constraints ``R(d)/cap − 1 ≤ 0``: Adam
    steps on ``d`` clipped to its bounds, multipliers updated every 25 steps.
    """
    backend = backend or backend_name()
    t0 = relaxed_objective(np.zeros((rel.shape[0], 6)), *rel.cycle_arrays())
    t0 = np.where(np.isfinite(t0) & (t0 > 0), t0, 1.0)
    args = (*rel.cycle_arrays(), t0, rel.r0, rel.g, rel.cap)
    if backend == "jax":
        grad = _jax_grad()
    else:
        grad = _numpy_grad
    d = np.clip(np.zeros((rel.shape[0], 6)), rel.lo, rel.hi)
    lam = np.zeros((rel.shape[0], 4))
    mu = 10.0
    m = np.zeros_like(d)
    v = np.zeros_like(d)
    for it in range(1, steps + 1):
        gd = np.asarray(grad(d, lam, mu, *args))
        gd = np.where(np.isfinite(gd), gd, 0.0)
        m = 0.9 * m + 0.1 * gd
        v = 0.999 * v + 0.001 * gd * gd
        d = d - lr * (m / (1 - 0.9 ** it)) / (np.sqrt(v / (1 - 0.999 ** it)) + 1e-8)
        d = np.clip(d, rel.lo, rel.hi)
        if it % 25 == 0:
            viol = relaxed_resources(d, rel.r0, rel.g) / rel.cap - 1.0
            lam = np.maximum(0.0, lam + mu * viol)
            mu = min(mu * 2.0, 1e4)
    t = relaxed_objective(d, *rel.cycle_arrays())
    return d, t


def _lagrangian(d, lam, mu, compute0, memory0, extra0, e_c, e_m, aux, t0, r0, g, cap,
                xp=np):
    t = relaxed_objective(d, compute0, memory0, extra0, e_c, e_m, aux, xp) / t0
    viol = relaxed_resources(d, r0, g, xp) / cap - 1.0
    pen = xp.maximum(0.0, lam / mu + viol)
    return (t + 0.5 * mu * (pen * pen).sum(axis=-1)).sum()


def _numpy_grad(d, lam, mu, *args, h: float = 1e-4):
    """Central differences of :func:`_lagrangian` (each candidate's terms are separate)."""
    out = np.zeros_like(d)
    for j in range(d.shape[1]):
        e = np.zeros_like(d)
        e[:, j] = h
        up = _per_candidate(d + e, lam, mu, *args)
        down = _per_candidate(d - e, lam, mu, *args)
        out[:, j] = (up - down) / (2 * h)
    return out


def _per_candidate(d, lam, mu, compute0, memory0, extra0, e_c, e_m, aux, t0, r0, g, cap):
    t = relaxed_objective(d, compute0, memory0, extra0, e_c, e_m, aux) / t0
    viol = relaxed_resources(d, r0, g) / cap - 1.0
    pen = np.maximum(0.0, lam / mu + viol)
    return t + 0.5 * mu * (pen * pen).sum(axis=-1)


_JAX_GRAD = None


def _jax_grad():
    global _JAX_GRAD
    if _JAX_GRAD is None:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)

        def f(d, lam, mu, *args):
            return _lagrangian(d, lam, mu, *args, xp=jnp)

        _JAX_GRAD = jax.jit(jax.grad(f))
    return _JAX_GRAD


def _round(problem, rel: Relaxation, d: np.ndarray, anchors: np.ndarray, space, step: int):
    """Integer points near the relaxed solutions (module docstring)."""
    from .optimize import FIELDS, _lanes, _round_buffer, valid_points

    x = rel.x0 * np.exp2(d)
    out = []
    for s, a in enumerate(anchors):
        m, lanes = int(a[FIELDS.index("winograd_m")]), int(a[FIELDS.index("winograd_lanes")])
        r, c = x[s, 0], x[s, 1]
        col_opts = {int(np.floor(c)), int(np.ceil(c))}
        for unit in (8, max(lanes, 1)):
            col_opts |= {int(np.floor(c / unit) * unit), int(np.ceil(c / unit) * unit)}
        bus = min(space.bus_bits, key=lambda b: abs(np.log2(b) - np.log2(x[s, 5])))
        for rr in {int(np.floor(r)), int(np.ceil(r))}:
            for cc in col_opts:
                q = a.copy()
                q[FIELDS.index("rows")] = rr
                q[FIELDS.index("cols")] = cc
                if m:
                    q[FIELDS.index("winograd_lanes")] = int(_lanes(cc, m, lanes))
                for j, name in enumerate(("act_buffer_kib", "weight_buffer_kib",
                                          "out_buffer_kib")):
                    q[FIELDS.index(name)] = int(_round_buffer(x[s, 2 + j], step, space))
                q[FIELDS.index("bus_bits")] = bus
                out.append(q)
    out = np.asarray(out, dtype=np.int64)
    for name, value in problem.hardware_pins.items():
        if name in FIELDS:
            out[:, FIELDS.index(name)] = value
    return np.unique(out[valid_points(out, space)], axis=0)


def relax_seeds(problem, archive, space, step: int, per_unit: int = 1,
                units: int = 2) -> np.ndarray:
    """Integer candidates from the relaxation anchored at the best mapped point of each of
    the ``units`` best unit configurations in ``archive`` (``per_unit`` anchors each)."""
    from .optimize import FIELDS

    ranking = archive.ranking()
    if not len(ranking):
        return np.zeros((0, len(FIELDS)), dtype=np.int64)
    wm, fft = FIELDS.index("winograd_m"), FIELDS.index("fft_size")
    seen, anchors = {}, []
    for i in ranking:
        p = archive.points[i]
        unit = (int(p[wm]), int(p[fft]))
        if seen.get(unit, 0) < per_unit and (unit in seen or len(seen) < units):
            seen[unit] = seen.get(unit, 0) + 1
            anchors.append(p)
    anchors = np.asarray(anchors, dtype=np.int64)
    rel = relaxation(problem, anchors, space)
    d, _ = solve(rel)
    return _round(problem, rel, d, anchors, space, step)

