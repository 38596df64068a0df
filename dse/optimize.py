"""The default hardware optimiser (``optimizer: nlp``): a relaxation, then batched local search.

The grid of :class:`dse.search.SearchSpace` decides the answer by what it lists (VGG16's
best grid point is 32×64 because 32×72 is not listed).  This optimiser searches a space too
large to enumerate (:class:`Space`): array rows and cols of any size from 2 to 256, the
three buffers at whole block-RAM steps, every bus width, the Winograd and FFT unit sizes and
the Winograd output-transform lanes, in the spirit of Liang et al. (ICCAD'22):

1. **Relax** (:mod:`dse.relaxed`): the hardware variables become real numbers in log space
   and the network's cost a smooth matrix-form function of them, anchored on the exact model;
   an augmented-Lagrangian gradient descent (jax when installed, else numpy's own gradient
   formulas) moves each unit configuration's seed to the best point the relaxation sees
   within the board's resources.
2. **Discretise** by batched local search over integer neighbourhoods (:func:`neighbours`):
   each round maps every new neighbour of the incumbents exactly (the cost model and the
   per-layer PBQP of :class:`dse.search.Problem`, as the grid does) and keeps the best
   fitting points; it stops when a round finds nothing better or the evaluation budget is
   spent.

Every point the search maps is kept, so the design's fronts (``pareto``, ``pareto_area``) and
its near-tie rule see all of them, exactly as for the grid.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from rtl.params import BUS_BITS, winograd_lanes_ok

from .errors import InputError
from .search import (NEAR_TIE, Found, Problem, SearchSpace, _Mapped, _Progress, board_shares,
                     hardware_space, pareto_front)

__all__ = ["Space", "FIELDS", "nlp_search", "neighbours", "block_kib", "sweep_front",
           "hypervolume", "latency_power"]

#: The searched OverlayParams fields, in the column order of a point array.
FIELDS = ("rows", "cols", "winograd_m", "winograd_lanes", "fft_size", "act_buffer_kib",
          "weight_buffer_kib", "out_buffer_kib", "bus_bits")
_R, _C, _WM, _WL, _FFT, _ACT, _WGT, _OUT, _BUS = range(len(FIELDS))
_BUFFERS = (_ACT, _WGT, _OUT)


def block_kib(board) -> int:
    """KiB of data one block RAM of ``board`` holds (RAMB36E2: 4; DP16KD: 2)."""
    return max(1, board.bram_block_kbits * 8 // 9 // 8)


@dataclass(frozen=True)
class Space:
    """The larger design space: bounds and unit sizes (integers everywhere).

    Buffers are whole multiples of the board's block (:func:`block_kib`) between one block
    and ``max_buffer_kib``; rows and cols any integer in ``[min_dim, max_dim]``; the bus
    every width the overlay top's DMA engines take (``rtl.params.BUS_BITS``: a wider one
    would leave the design without the program's timing).
    """

    min_dim: int = 2
    max_dim: int = 256
    winograd_m: tuple = SearchSpace.winograd_m
    fft_size: tuple = SearchSpace.fft_size
    bus_bits: tuple = BUS_BITS
    max_buffer_kib: int = 4096

    def holding(self, pins: dict) -> "Space":
        """This space widened to hold pinned values (a pin is the user's to choose)."""
        dims = [pins[k] for k in ("rows", "cols") if k in pins]
        kib = [pins[k] for k in ("act_buffer_kib", "weight_buffer_kib", "out_buffer_kib")
               if k in pins]
        bus = tuple(sorted(set(self.bus_bits) | ({pins["bus_bits"]} if "bus_bits" in pins
                                                 else set())))
        return replace(self, min_dim=min([self.min_dim, *dims]),
                       max_dim=max([self.max_dim, *dims]),
                       max_buffer_kib=max([self.max_buffer_kib, *kib]), bus_bits=bus)

    def units(self, algorithms) -> list:
        """The (winograd_m, fft_size) unit configurations the allowed algorithms offer."""
        wino = self.winograd_m if "winograd" in algorithms else (0,)
        fft = self.fft_size if "fft" in algorithms else (0,)
        return [(m, n) for m in wino for n in fft]


def _round_buffer(kib, step: int, space: Space):
    return np.clip(np.round(np.asarray(kib, dtype=float) / step).astype(np.int64) * step,
                   step, space.max_buffer_kib)


def _lanes(cols, m, wanted):
    """The largest valid Winograd output-transform lane count at most ``wanted``."""
    cols, m, wanted = np.broadcast_arrays(*(np.asarray(v, dtype=np.int64)
                                            for v in (cols, m, wanted)))
    out = np.ones_like(cols)
    lanes = 1
    while lanes <= 256:
        ok = (lanes <= np.maximum(wanted, 1)) & winograd_lanes_ok(cols, m, lanes) & (m > 0)
        out = np.where(ok, lanes, out)
        lanes *= 2
    return out


def valid_points(points: np.ndarray, space: Space) -> np.ndarray:
    """``(N,)`` bool: the points inside ``space`` whose lanes fit their unit and array."""
    p = points
    inside = ((p[:, _R] >= space.min_dim) & (p[:, _R] <= space.max_dim)
              & (p[:, _C] >= space.min_dim) & (p[:, _C] <= space.max_dim)
              & (p[:, _BUFFERS] >= 1).all(axis=1)
              & (p[:, _BUFFERS] <= space.max_buffer_kib).all(axis=1))
    return inside & winograd_lanes_ok(p[:, _C], p[:, _WM], p[:, _WL])


def neighbours(point, space: Space, step: int, units, searched=FIELDS) -> np.ndarray:
    """The integer neighbourhood of one point: ``(N, len(FIELDS))`` valid points, no repeats.

    Moves: rows and cols by ±1, ±2, ±1/8 and ×2/÷2 (each alone), the aspect ratio at about
    equal PEs (rows ×2 with cols ÷2 and back, rows ± 1/8 with cols the other way); each
    buffer by one block, ±1/4 and ×2/÷2; the bus one width up or down; the Winograd and
    FFT units to each other size (lanes kept where they fit, else the largest that does) and
    the lanes ×2/÷2.  Only ``searched`` fields move (pinned ones stay).
    """
    p = np.asarray(point, dtype=np.int64)
    out = []

    def add(**changes):
        q = p.copy()
        for name, value in changes.items():
            q[FIELDS.index(name)] = int(round(value))
        if q[_WM] and "winograd_lanes" not in changes and q[_C] != p[_C]:
            # new cols: the lanes kept where they still fit, else the most that do; and
            # the most the new cols allow
            q[_WL] = _lanes(q[_C], q[_WM], q[_WL])
            most = q.copy()
            most[_WL] = _lanes(q[_C], q[_WM], q[_C])
            out.append(most)
        out.append(q)

    r, c = int(p[_R]), int(p[_C])
    for name, v in (("rows", r), ("cols", c)):
        for new in (v - 1, v + 1, v - 2, v + 2, v * 7 / 8, v * 9 / 8, v / 2, v * 2):
            add(**{name: new})
    for k in (2.0, 0.5, 9 / 8, 8 / 9):
        add(rows=r * k, cols=c / k)
    # cols to the next multiples of 8 and 16 either way, rows keeping about the PE count
    for unit in (8, 16):
        for cc in (c // unit * unit, -(-c // unit) * unit, c // unit * unit - unit,
                   -(-c // unit) * unit + unit):
            if cc > 0 and cc != c:
                add(cols=cc, rows=max(1, r * c / cc))
                add(cols=cc)
    for i in _BUFFERS:
        v = int(p[i])
        for new in (v - step, v + step, v * 0.75, v * 1.25, v / 2, v * 2):
            new = int(_round_buffer(new, step, space))
            add(**{FIELDS[i]: new})
    bus = list(space.bus_bits)
    if int(p[_BUS]) in bus:
        j = bus.index(int(p[_BUS]))
        for k in (j - 1, j + 1):
            if 0 <= k < len(bus):
                add(bus_bits=bus[k])
    for m, n in units:
        if (m, n) != (int(p[_WM]), int(p[_FFT])):
            add(winograd_m=m, fft_size=n,
                winograd_lanes=int(_lanes(c, m, p[_WL] if p[_WM] else c)) if m else 1)
    if p[_WM]:
        add(winograd_lanes=p[_WL] * 2)
        add(winograd_lanes=max(1, p[_WL] // 2))
    out = [q for q in out if all(FIELDS[i] in searched or q[i] == p[i]
                                 for i in range(len(FIELDS)))]
    if not out:
        return np.zeros((0, len(FIELDS)), dtype=np.int64)
    cand = np.unique(np.stack(out), axis=0)
    cand = cand[valid_points(cand, space)]
    return cand[(cand != p).any(axis=1)]


class _Archive:
    """Every point the search has looked at: fitting or not, and the mapping of those that fit."""

    def __init__(self, problem: Problem):
        self.problem = problem
        self.index = {}
        self.points, self.fits = [], []
        self.usage = {k: [] for k in ("dsp", "lut", "ff", "bram_blocks")}
        self.result, self.alt = [], []
        self.evaluations = 0

    def add(self, points: np.ndarray, bar) -> np.ndarray:
        """Look at the new ones of ``points`` (fit them, map those that fit); return the
        archive indices of all ``points``."""
        problem = self.problem
        new = [q for q in {tuple(int(x) for x in q) for q in points} if q not in self.index]
        if new:
            arr = np.asarray(sorted(new), dtype=np.int64)
            table = problem.table({name: arr[:, i] for i, name in enumerate(FIELDS)})
            fits, usage = problem.fit(table)
            mapped = [_Mapped.empty(len(arr)), _Mapped.empty(len(arr))]
            where = np.flatnonzero(fits)
            if where.size:
                for m, part in zip(mapped, problem.map(table.take(where), bar)):
                    m.merge(where, part)
                self.evaluations += int(where.size)
            base = len(self.points)
            for j, q in enumerate(map(tuple, arr.tolist())):
                self.index[q] = base + j
            self.points += list(arr)
            self.fits += list(fits)
            for k in self.usage:
                self.usage[k] += list(np.asarray(usage[k]))
            self.result.append(mapped[0])
            self.alt.append(mapped[1])
        return np.asarray([self.index[tuple(int(x) for x in q)] for q in points],
                          dtype=np.int64)

    def mapped(self, which: int) -> _Mapped:
        parts = self.result if which == 0 else self.alt
        out = _Mapped.empty(len(self.points))
        lo = 0
        for part in parts:
            idx = np.arange(lo, lo + len(part.cycles))
            if part.evaluated.any():        # (a part with none has no choice columns)
                out.merge(idx[part.evaluated], part.subset(np.flatnonzero(part.evaluated)))
            lo += len(part.cycles)
        return out

    def key(self) -> np.ndarray:
        """The objective of every archived point (inf where it does not fit or cannot run)."""
        return self.mapped(0).key(self.problem.objective)

    def ranking(self) -> np.ndarray:
        """Archive indices by objective; near-ties (within NEAR_TIE) by board share."""
        key = self.key()
        usage = {k: np.asarray(v, dtype=float) for k, v in self.usage.items()}
        share = sum(board_shares(usage, self.problem.board))
        best = np.min(key) if np.isfinite(key).any() else np.inf
        near = key <= best * (1.0 + NEAR_TIE)
        return np.lexsort((share, np.where(near, 0.0, key)))[:np.isfinite(key).sum()]

    def found(self) -> Found:
        problem = self.problem
        arr = np.asarray(self.points, dtype=np.int64)
        fits = np.asarray(self.fits, dtype=bool)
        table = problem.table({name: arr[:, i] for i, name in enumerate(FIELDS)}).take(fits)
        keep = np.flatnonzero(fits)
        usage = {k: np.asarray(v)[keep] for k, v in self.usage.items()}
        return Found(table, usage, self.mapped(0).subset(keep), self.mapped(1).subset(keep),
                     self.evaluations)


def seeds(problem: Problem, space: Space, units, step: int, scale: int = 1) -> np.ndarray:
    """Starting points: for each unit configuration and array aspect ratio (cols/rows of
    1/2, 1, 2 and 4), the largest array with cols a multiple of 8 that fits the board with
    a 512-bit bus and buffers of 1/8 of the board's block RAM (activations 1/16, at most
    128·``scale`` KiB; weights and outputs 1/8, at most 256·``scale`` KiB each), else 1/32,
    else 1/128, else 1/128 with the narrower buses of the space down to 64 bits (a small
    board's LUTs may not hold a 512-bit DMA shell) (the resource model only; nothing is
    mapped)."""
    board = problem.board
    onchip_kib = board.onchip_blocks * step
    bus = max(b for b in space.bus_bits if b <= 512)
    cols = np.arange(8, space.max_dim + 1, 8)
    # (buffer share, bus) in order of preference
    shares = ([(share, bus) for share in (1 / 8, 1 / 32, 1 / 128)]
              + [(1 / 128, b) for b in sorted(space.bus_bits, reverse=True) if 64 <= b < bus])
    # every (unit, aspect, share, cols) candidate in one array, one resource-model call
    groups, blocks = [], []
    for m, n in units:
        for aspect in (0.5, 1, 2, 4):
            rows = np.clip(np.round(cols / aspect).astype(np.int64), space.min_dim,
                           space.max_dim)
            for k, (share, level_bus) in enumerate(shares):
                act = int(_round_buffer(min(128 * scale, onchip_kib * share), step, space))
                other = int(_round_buffer(min(256 * scale, 2 * onchip_kib * share), step,
                                          space))
                blocks.append(np.stack([rows, cols, np.full_like(rows, m), np.ones_like(rows),
                                        np.full_like(rows, n), np.full_like(rows, act),
                                        np.full_like(rows, other), np.full_like(rows, other),
                                        np.full_like(rows, level_bus)], axis=1))
                groups.append(np.full(len(rows), len(groups) // len(shares) * 8 + k))
    cand = np.concatenate(blocks)
    group = np.concatenate(groups)
    for name, value in problem.hardware_pins.items():
        if name in FIELDS:
            cand[:, FIELDS.index(name)] = value
    if "winograd_lanes" not in problem.hardware_pins:          # the (pinned) cols' most
        cand[:, _WL] = np.where(cand[:, _WM] > 0, _lanes(cand[:, _C], cand[:, _WM], cand[:, _C]),
                                1)
    ok = valid_points(cand, space)
    cand, group = cand[ok], group[ok]
    if not len(cand):
        return cand
    # pins can make many candidates equal: fit each distinct one once
    uniq, inverse = np.unique(cand, axis=0, return_inverse=True)
    table = problem.table({name: uniq[:, i] for i, name in enumerate(FIELDS)})
    fits = problem.fit(table)[0][inverse.reshape(-1)]
    out, unfit = [], []
    for g in np.unique(group // 8):
        for k in range(len(shares)):            # the largest share with a fitting array
            mine = np.flatnonzero((group // 8 == g) & (group % 8 == k))
            if fits[mine].any():
                out.append(cand[mine[fits[mine]][-1]])
                break
        else:
            unfit.append(cand[np.flatnonzero(group // 8 == g)[0]])
    # only when nothing fits: the smallest candidates, for the refusal's numbers
    out = out or unfit
    return np.unique(np.stack(out), axis=0)


def latency_power(problem: Problem, mapped: _Mapped):
    """``(latency_ms, power_w)`` of every point of ``mapped`` (inf where not mapped)."""
    clock = float(problem.board.clock_mhz)
    lat = mapped.cycles / (clock * 1e3)
    with np.errstate(invalid="ignore", divide="ignore"):
        power = np.where(np.isfinite(mapped.energy_pj) & (lat > 0),
                         mapped.energy_pj * 1e-9 / lat, np.inf)
    return lat, power


def hypervolume(latency, power, reference) -> float:
    """The area that the points ``(latency, power)`` dominate below ``reference`` (a
    ``(latency, power)`` pair): larger is a better front."""
    latency, power = np.asarray(latency, float), np.asarray(power, float)
    front = pareto_front(latency, power)
    area, prev = 0.0, float(reference[1])
    for i in front:                      # latency ascending, power descending
        if latency[i] < reference[0] and power[i] < prev:
            area += (reference[0] - latency[i]) * (prev - power[i])
            prev = float(power[i])
    return area


def _both(problem, archive):
    """``(N, 2)`` latency and power of every archived point under both mappings."""
    pairs = [latency_power(problem, archive.mapped(j)) for j in (0, 1)]
    return (np.stack([pairs[0][0], pairs[1][0]], axis=1),
            np.stack([pairs[0][1], pairs[1][1]], axis=1))


def sweep_front(archive: "_Archive", space: Space, step: int, units, searched, bar,
                method: str = "epsilon", levels: int = 4, budget: int = 16,
                rounds: int = 2) -> None:
    """Extend ``archive`` towards the latency-power front.

    ``epsilon``: local search for the least power (the front's far end), then ``levels``
    times a power cap ε halfway across the largest gap of the archive's front (the
    rectangle between two neighbours that a point between them could add to the
    hypervolume), and local search for the least latency with power ≤ ε (the
    ε-constraint method: it reaches parts of the front that no weighted sum does, where the
    front is not convex); the least-power search has twice the budget and rounds.
    ``weighted``: the same least-power search, then the least ``latency/L + w·power/P``
    (L, P the archive's best of each) for ``levels`` weights ``w`` from ¼ to 4 -- the
    weighted-sum method, for comparison at the same budget.  Each level maps at most ``budget`` new points in
    at most ``rounds`` rounds; both mappings of each point count (a point mapped for least
    energy is a different (latency, power) pair).
    """
    if method not in ("epsilon", "weighted"):
        raise ValueError(f"method must be 'epsilon' or 'weighted', not {method!r}")
    problem = archive.problem
    lat, power = _both(problem, archive)
    finite = np.isfinite(lat) & np.isfinite(power)
    if not finite.any():
        return
    l_ref, p_ref = lat[finite].min(), power[finite].min()
    weights = np.geomspace(0.25, 4.0, levels)
    targets = ["least power"] + list(range(levels))     # both methods: the same far end
    for level in targets:
        spent = 0
        level_budget, level_rounds = (budget, rounds) if level != "least power" else (
            2 * budget, 2 * rounds)
        if level == "least power":
            t = None
        elif method == "epsilon":
            # the cap halfway across the front's largest missing rectangle: between two
            # neighbours (l1, p1), (l2, p2) of the front, the area (l2 - l1)·(p1 - p2) that
            # a point between them could add to its hypervolume
            lat, power = _both(problem, archive)
            front = pareto_front(lat.reshape(-1), power.reshape(-1))   # latency ascending
            l_front, p_front = lat.reshape(-1)[front], power.reshape(-1)[front]
            if len(front) < 2:
                t = float(p_front[0]) if len(front) else np.inf
            else:
                area = np.diff(l_front) * -np.diff(p_front)
                j = int(np.argmax(area))
                t = float(0.5 * (p_front[j] + p_front[j + 1]))
        else:
            t = weights[level]
        for _ in range(level_rounds):
            lat, power = _both(problem, archive)
            if t is None:
                key = power.min(axis=1)
            elif method == "epsilon":
                key = np.where(power <= t, lat, np.inf).min(axis=1)
            else:
                key = (lat / l_ref + t * power / p_ref).min(axis=1)
            if not np.isfinite(key).any() or spent >= level_budget:
                break
            best = int(np.argmin(key))
            cand = neighbours(archive.points[best], space, step, units, searched)
            fresh = [q for q in cand if tuple(int(x) for x in q) not in archive.index]
            if not fresh:
                break
            order = np.random.default_rng(len(fresh)).permutation(len(fresh))  # no bias
            fresh = [fresh[i] for i in order[:level_budget - spent]]
            before = archive.evaluations
            archive.add(np.asarray(fresh), bar)
            spent += max(1, archive.evaluations - before)


def nlp_search(problem: Problem, *, progress: bool = False, space: Space | None = None,
               beam: int = 1, max_rounds: int = 12, max_evaluations: int = 600,
               patience: int = 2, relax: bool = True, front: str | None = "epsilon",
               front_levels: int = 4, front_budget: int = 16) -> Found:
    """Search :class:`Space` for ``problem``'s best hardware point (module docstring).

    Parameters
    ----------
    beam:
        Incumbents whose neighbourhoods each round maps.
    max_rounds, max_evaluations:
        Budget: local-search rounds, and hardware points mapped exactly.
    patience:
        Rounds without a better point before the search stops.
    relax:
        Move the seeds with the relaxation first (:mod:`dse.relaxed`).
    front, front_levels, front_budget:
        After the search, extend the latency-power front by :func:`sweep_front` with this
        method (``"epsilon"``, ``"weighted"`` or None for none).
    """
    if problem.hardware_pins:
        # pins that no overlay can have are refused with the grid's message
        try:
            hardware_space(problem.board, problem.precision, problem.unit_algos,
                           problem.max_k, problem.hardware_pins)
        except ValueError as exc:
            raise InputError(problem.source, "hardware", str(exc)) from None
    space = (space or Space()).holding(problem.hardware_pins)
    step = block_kib(problem.board)
    units = space.units(problem.unit_algos)
    pins = problem.hardware_pins
    searched = tuple(f for f in FIELDS if f not in pins)
    if "winograd_m" in pins or "fft_size" in pins:
        units = [(pins.get("winograd_m", m), pins.get("fft_size", n)) for m, n in units]
        units = list(dict.fromkeys(units))
    archive = _Archive(problem)
    bar = _Progress(progress, max_evaluations)
    for scale in (1, 4, 16):
        # larger buffers only while no seed can run every layer (a row of a 5×5 layer at
        # int16 may not fit the smaller ones)
        archive.add(seeds(problem, space, units, step, scale), bar)
        if np.isfinite(archive.key()).any():
            break
    else:
        # still nothing runs every layer: the grid's fitting points (its buffer sizes trade
        # one buffer against another as the seeds' fixed shares do not), at most 512
        try:
            grid = hardware_space(problem.board, problem.precision, problem.unit_algos,
                                  problem.max_k, pins)
        except ValueError:
            grid = None
        if grid is not None:
            fits, _ = problem.fit(grid)
            pick = np.flatnonzero(fits)
            if len(pick) > 512:
                pick = np.random.default_rng(0).choice(pick, 512, replace=False)
            if len(pick):
                pts = np.stack([getattr(grid, f)[pick] for f in FIELDS], axis=1)
                archive.add(pts[valid_points(pts, space)], bar)
    fits = np.asarray(archive.fits, dtype=bool)
    if not fits.any():
        problem.refuse_unfit({k: np.asarray(v) for k, v in archive.usage.items()})
    # the seeds hold every unit configuration the space offers: a pinned layer whose unit
    # none has is refused as the grid refuses it
    seeded = np.asarray(archive.points)[fits]
    problem.check_pinned_units(problem.table({name: seeded[:, i]
                                              for i, name in enumerate(FIELDS)}))
    if relax:
        from .relaxed import relax_seeds

        moved = relax_seeds(problem, archive, space, step)
        if len(moved):
            archive.add(moved, bar)
    stale = 0
    for _ in range(max_rounds):
        ranking = archive.ranking()
        if not len(ranking):
            break                       # nothing runs: search() says why
        best_before = archive.key()[ranking[0]]
        cand = [neighbours(archive.points[i], space, step, units, searched)
                for i in ranking[:beam]]
        fresh = [q for q in np.concatenate(cand) if tuple(int(x) for x in q)
                 not in archive.index]
        if not fresh or archive.evaluations >= max_evaluations:
            break
        archive.add(np.asarray(fresh[:max_evaluations - archive.evaluations]), bar)
        improved = archive.key()[archive.ranking()[0]] < best_before * (1.0 - 1e-9)
        stale = 0 if improved else stale + 1
        if stale >= patience:
            break
    if front:
        sweep_front(archive, space, step, units, searched, bar, method=front,
                    levels=front_levels, budget=front_budget)
    bar.close()
    return archive.found()
