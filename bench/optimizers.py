"""The hardware optimisers against each other and against off-the-shelf baselines.

For each (network, board) case -- ResNet-18, VGG16 and GoogLeNet on the ZCU102 (their
configs) and the tiny network on the ECP5-85 (configs/tiny.yaml without its hardware pins):

1. ``grid`` and ``nlp`` run end to end through :func:`dse.search.search` (design totals:
   the design's latency and power, after its near-tie and unused-unit rules); wall time,
   latency, power and the points each mapped exactly (``evaluations``).
2. Three baselines search the same larger space (:class:`dse.optimize.Space`) in one harness,
   each for the wall-clock time the nlp run took, then on to ``--budget-scale`` times it
   (default 2.5x; all four cases then take about 5-6 minutes on 2 busy cores) to time
   when each first comes within 0.5 % of the nlp latency:

   * random search: numpy, uniform over the space's integer values, batches of 32;
   * a genetic algorithm: pymoo's GA with integer sampling, SBX and polynomial mutation with
     rounding repair (pymoo's documented integer set-up), the resource violation as its
     inequality constraint, a whole population per batch;
   * Bayesian optimisation: optuna's TPESampler (multivariate, constant liar) through the
     ask/tell interface, 32 trials per batch, the resource violation as the trial's
     constraint.

   All three use one integer encoding: rows, cols, Winograd m (index), Winograd lanes
   (log2, repaired to the largest valid count at most that), FFT size (index), the three
   buffers in board blocks (:func:`dse.optimize.block_kib`) up to 4096 KiB, the bus width
   (index).  A point that does not fit the board (``problem.fit``) counts as an evaluation
   with an infinite (penalised) cost; every distinct point is evaluated once (a cache).
   The batches go through ``problem.map`` whole.  Each baseline's points are reduced to a
   design the way :func:`dse.search.search` reduces the optimisers' (same rules), so the
   latency and power columns compare like with like.
3. Per case a table: latency, power, evaluations, wall time, and against nlp the latency
   ratio (x / nlp), the power change (nlp / x - 1) and the optimiser-time ratio (time x
   first came within 0.5 % of nlp's latency / nlp's time), beside Liang et al.'s
   (ICCAD'22, ResNet-18) figures: 1.7x latency, -37.5 % power, 6.2x optimiser time.
4. The relaxed model's throughput (:func:`dse.relaxed.relaxed_objective`) on 10^3 and 10^4
   tiled candidates, numpy and ``jax.jit`` (CPU, and GPU when jax sees one).

Writes build/bench/optimizers.json.  Seeds are fixed (``--seed``); the baselines' point
sequences are reproducible, how many batches fit in a wall-clock budget is not (it depends on
the machine's load).  Prints tables; never asserts on time or quality.

Usage: ``python bench/optimizers.py [--networks resnet18 vgg16 googlenet tiny]
[--budget-scale 2.5] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["CASES", "Encoding", "Harness", "ga_search", "main", "random_search",
           "relaxed_throughput", "tpe_search"]

#: name -> (config, hardware pins replacing the config's; None keeps them)
CASES = {
    "resnet18": ("configs/liang_resnet18.yaml", None),
    "vgg16": ("configs/vgg16.yaml", None),
    "googlenet": ("configs/dnnvm_googlenet.yaml", None),
    "tiny": ("configs/tiny.yaml", {}),
}
#: Liang et al. (ICCAD'22), ResNet-18: their optimiser against prior co-optimisers.
PAPER = {"latency_ratio": 1.7, "power_pct": -37.5, "time_ratio": 6.2}
#: A baseline "reaches" nlp when its best latency is within this of nlp's.
REACH = 0.005
BATCH = 32
OUT = ROOT / "build" / "bench" / "optimizers.json"


# -- the cases ----------------------------------------------------------------------------

def load_case(name: str):
    """``(config, network, search keyword arguments)`` of one case."""
    from dse.load import load_network
    from omniconv.config import load_config

    path, pins = CASES[name]
    cfg = load_config(ROOT / path)
    net = load_network(cfg.network_spec, cfg.base_dir)
    kwargs = {"precision": cfg.precision, "objective": cfg.objective,
              "algorithms": tuple(a.value for a in cfg.algorithms),
              "dataflows": tuple(d.value for d in cfg.dataflows),
              "hardware_pins": dict(cfg.hardware) if pins is None else dict(pins),
              "min_sqnr_db": cfg.min_sqnr_db}
    return cfg, net, kwargs


def run_search(net, board, kwargs, optimizer: str) -> dict:
    """One end-to-end :func:`dse.search.search` run: its design totals and wall time."""
    from dse.search import search

    start = time.perf_counter()
    design = search(net, board, optimizer=optimizer, **kwargs)
    wall = time.perf_counter() - start
    return {"optimizer": optimizer, "wall_s": wall, **_design_summary(design),
            "mapped": int(design.evaluations), "looked": None}


def _design_summary(design) -> dict:
    hw = design.hardware
    from dse.optimize import FIELDS

    return {"latency_ms": float(design.latency_ms), "power_w": float(design.power_w),
            "total_cycles": int(design.total_cycles),
            "point": {k: int(hw[k]) for k in FIELDS},
            "resources": dict(design.resources)}


# -- one integer encoding for the three baselines -----------------------------------------

class Encoding:
    """Integer genes of a point of :class:`dse.optimize.Space` (module docstring)."""

    GENES = ("rows", "cols", "winograd_m_index", "winograd_lanes_log2", "fft_size_index",
             "act_blocks", "weight_blocks", "out_blocks", "bus_index")

    def __init__(self, problem, space):
        from dse.optimize import block_kib

        self.problem, self.space = problem, space
        self.step = block_kib(problem.board)
        algos = problem.unit_algos
        self.wino = tuple(space.winograd_m) if "winograd" in algos else (0,)
        self.fft = tuple(space.fft_size) if "fft" in algos else (0,)
        self.bus = tuple(space.bus_bits)
        blocks = space.max_buffer_kib // self.step
        self.lower = np.array([space.min_dim, space.min_dim, 0, 0, 0, 1, 1, 1, 0])
        self.upper = np.array([space.max_dim, space.max_dim, len(self.wino) - 1, 8,
                               len(self.fft) - 1, blocks, blocks, blocks, len(self.bus) - 1])

    def random(self, rng, n: int) -> np.ndarray:
        """``(n, 9)`` genes uniform over each gene's integer values."""
        return rng.integers(self.lower, self.upper + 1, size=(n, len(self.lower)))

    def decode(self, genes) -> np.ndarray:
        """``(N, len(FIELDS))`` valid points of the genes (pins applied, lanes repaired)."""
        from dse.optimize import FIELDS, _lanes, valid_points

        g = np.clip(np.rint(np.asarray(genes, dtype=float)).astype(np.int64), self.lower,
                    self.upper)
        m = np.asarray(self.wino)[g[:, 2]]
        p = np.stack([g[:, 0], g[:, 1], m, np.ones_like(m), np.asarray(self.fft)[g[:, 4]],
                      g[:, 5] * self.step, g[:, 6] * self.step, g[:, 7] * self.step,
                      np.asarray(self.bus)[g[:, 8]]], axis=1)
        for name, value in self.problem.hardware_pins.items():
            if name in FIELDS:
                p[:, FIELDS.index(name)] = value
        wm, wl, c = FIELDS.index("winograd_m"), FIELDS.index("winograd_lanes"), 1
        p[:, wl] = np.where(p[:, wm] > 0, _lanes(p[:, c], p[:, wm], 2 ** g[:, 3]), 1)
        assert valid_points(p, self.space).all(), "decoded an invalid point"
        return p


# -- the harness: evaluate batches, keep every point, time everything ---------------------

class Harness:
    """Fits and maps batches of points for one baseline, once per distinct point, and keeps
    what :func:`dse.search.search` needs to reduce them to a design."""

    def __init__(self, problem, encoding, start: float):
        self.problem, self.enc, self.start = problem, encoding, start
        board = problem.board
        self.cap = {"dsp": board.dsp, "lut": board.lut, "ff": board.ff,
                    "bram_blocks": board.onchip_blocks}
        self.cache = {}                      # point tuple -> (cycles, violation)
        self.points, self.fits, self.done_at = [], [], []
        self.usage = {k: [] for k in self.cap}
        self.parts = []                      # (first archive index, fitting idx, result, alt)
        self.trace = []                      # (elapsed s, looked, mapped, best cycles)
        self.best = np.inf
        self.mapped = 0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def evaluate(self, genes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(points, cycles, violation)`` of a batch of genes: cycles inf where the point
        does not fit (violation > 0: the largest resource overuse, as a fraction) or cannot
        run; every new distinct point is fitted and, when it fits, mapped."""
        from dse.optimize import FIELDS

        pts = self.enc.decode(genes)
        keys = [tuple(int(x) for x in q) for q in pts]
        new = sorted({k for k in keys if k not in self.cache})
        if new:
            arr = np.asarray(new, dtype=np.int64)
            table = self.problem.table({f: arr[:, i] for i, f in enumerate(FIELDS)})
            assert len(table) == len(arr), "problem.table dropped points"
            fits, usage = self.problem.fit(table)
            viol = np.max([np.asarray(usage[k], dtype=float) / max(1, c) - 1.0
                           for k, c in self.cap.items()], axis=0)
            cycles = np.full(len(arr), np.inf)
            where = np.flatnonzero(fits)
            base = len(self.points)
            if where.size:
                result, alt = self.problem.map(table.take(where))
                cycles[where] = result.key(self.problem.objective)
                self.parts.append((base, where, result, alt))
                self.mapped += int(where.size)
            now = self.elapsed()
            for j, k in enumerate(new):
                self.cache[k] = (float(cycles[j]), float(max(viol[j], 0.0) if not fits[j]
                                                         else min(viol[j], 0.0)))
            self.points += list(arr)
            self.fits += list(np.asarray(fits, dtype=bool))
            self.done_at += [now] * len(arr)
            for k in self.usage:
                self.usage[k] += list(np.asarray(usage[k]))
            finite = cycles[np.isfinite(cycles)]
            if finite.size:
                self.best = min(self.best, float(finite.min()))
            self.trace.append((now, len(self.points), self.mapped, self.best))
        out = np.asarray([self.cache[k] for k in keys])
        return pts, out[:, 0], out[:, 1]

    def reached(self, target_cycles: float):
        """Seconds at which the best cycles first came within REACH of ``target_cycles``."""
        for t, _, _, best in self.trace:
            if best <= target_cycles * (1.0 + REACH):
                return t
        return None

    def counts_until(self, t: float) -> tuple[int, int]:
        """``(looked, mapped)`` points finished by ``t`` seconds."""
        looked = mapped = 0
        for when, lk, mp, _ in self.trace:
            if when <= t:
                looked, mapped = lk, mp
        return looked, mapped

    def design_until(self, t: float, label: str):
        """The design :func:`dse.search.search` would make of the points finished by ``t``
        (None when none fits and runs)."""
        from dse.optimize import FIELDS
        from dse.search import Found, _Mapped

        problem = self.problem
        n = sum(1 for when in self.done_at if when <= t)
        if not n:
            return None
        arr = np.asarray(self.points[:n], dtype=np.int64)
        fits = np.asarray(self.fits[:n], dtype=bool)
        n_layers = len(problem.layers.names)
        merged = [_Mapped.empty(n), _Mapped.empty(n)]
        for base, where, result, alt in self.parts:
            idx = base + where
            keep = np.flatnonzero(idx < n)
            if keep.size:
                for m, part in zip(merged, (result, alt)):
                    m.merge(idx[keep], part.subset(keep))
        for m in merged:
            if m.choice.shape[1] != n_layers:
                m.choice = np.zeros((n, n_layers), dtype=np.int64)
        result, alt = merged
        done = np.flatnonzero(fits & result.evaluated)
        if not done.size or not np.isfinite(result.key(problem.objective)[done]).any():
            return None
        table = problem.table({f: arr[:, i] for i, f in enumerate(FIELDS)})
        usage = {k: np.asarray(v[:n])[done] for k, v in self.usage.items()}
        return problem.design(Found(table.take(done), usage, result.subset(done),
                                    alt.subset(done), int(done.size)), optimizer=label)


# -- the baselines ------------------------------------------------------------------------

def random_search(h: Harness, budget_s: float, seed: int) -> None:
    """Uniform random points of the encoding, BATCH at a time, until ``budget_s``."""
    rng = np.random.default_rng(seed)
    while h.elapsed() < budget_s:
        h.evaluate(h.enc.random(rng, BATCH))


def ga_search(h: Harness, budget_s: float, seed: int) -> None:
    """pymoo's GA (integer set-up, resource violation as constraint), ask/tell, one
    population per batch, until ``budget_s``."""
    from pymoo.algorithms.soo.nonconvex.ga import GA
    from pymoo.core.evaluator import Evaluator
    from pymoo.core.problem import Problem as MooProblem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.problems.static import StaticProblem

    moo = MooProblem(n_var=len(h.enc.lower), n_obj=1, n_ieq_constr=1, xl=h.enc.lower,
                     xu=h.enc.upper, vtype=int)
    algorithm = GA(pop_size=BATCH, sampling=IntegerRandomSampling(),
                   crossover=SBX(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                   mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                   eliminate_duplicates=True)
    algorithm.setup(moo, termination=("n_gen", 10 ** 9), seed=seed, verbose=False)
    while h.elapsed() < budget_s:
        pop = algorithm.ask()
        _, cycles, viol = h.evaluate(pop.get("X"))
        # fitting points that cannot run every layer: a large finite cost (pymoo ranks)
        f = np.where(np.isfinite(cycles), cycles, 1e30)
        Evaluator().eval(StaticProblem(moo, F=f[:, None], G=viol[:, None]), pop)
        algorithm.tell(infills=pop)


def tpe_search(h: Harness, budget_s: float, seed: int) -> None:
    """optuna's TPESampler, ask/tell, BATCH trials a batch, until ``budget_s``: value
    log(cycles), or a penalty above every feasible value; the resource violation as the
    trial's constraint."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        legacy = not hasattr(optuna.trial.Trial, "set_constraint")
        sampler = optuna.samplers.TPESampler(
            seed=seed, multivariate=True, constant_liar=True,
            constraints_func=(lambda t: (t.user_attrs["violation"],)) if legacy else None)
        study = optuna.create_study(direction="minimize", sampler=sampler)
    dists = {name: optuna.distributions.IntDistribution(int(lo), int(hi))
             for name, lo, hi in zip(h.enc.GENES, h.enc.lower, h.enc.upper)}
    while h.elapsed() < budget_s:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trials = [study.ask(dists) for _ in range(BATCH)]
            genes = np.array([[t.params[g] for g in h.enc.GENES] for t in trials])
            _, cycles, viol = h.evaluate(genes)
            for t, c, v in zip(trials, cycles, viol):
                if legacy:
                    t.set_user_attr("violation", float(v))
                else:
                    t.set_constraint("resources", float(v))
                value = float(np.log(c)) if np.isfinite(c) else 1e3 + max(float(v), 0.0)
                study.tell(t, value)


BASELINES = (("random", random_search), ("GA (pymoo)", ga_search),
             ("TPE (optuna)", tpe_search))


def run_baseline(label, fn, net, board, kwargs, nlp_wall, scale, seed, target_cycles):
    """One baseline in the harness: the 1x budget's design, the scale x budget's design,
    and when it came within REACH of ``target_cycles``."""
    from dse.optimize import Space
    from dse.search import prepare

    start = time.perf_counter()
    problem = prepare(net, board, **kwargs)
    h = Harness(problem, Encoding(problem, Space()), start)
    fn(h, nlp_wall * scale, seed)
    total = h.elapsed()
    rows = []
    budgets = [("1x", nlp_wall)] + ([(f"{scale:g}x", total)] if scale > 1 else [])
    for budget, when in budgets:
        design = h.design_until(when, label)
        looked, mapped = h.counts_until(when)
        row = {"optimizer": f"{label} @{budget}", "wall_s": min(when, total),
               "looked": looked, "mapped": mapped}
        if design is None:
            row.update(latency_ms=None, power_w=None, total_cycles=None, point=None)
        else:
            row.update(_design_summary(design))
        rows.append(row)
    reach = h.reached(target_cycles)
    for row in rows:
        row["reach_s"] = reach
    trace = [(round(t, 3), lk, mp, (None if not np.isfinite(b) else float(b)))
             for t, lk, mp, b in h.trace]
    return rows, trace


# -- relaxed-model throughput -------------------------------------------------------------

def relaxed_throughput(net, board, kwargs, anchors, sizes=(1_000, 10_000),
                       seconds: float = 1.0) -> dict:
    """Candidate and (layer x choice) evaluations per second of
    :func:`dse.relaxed.relaxed_objective` on tiled anchors, numpy and jax (jit)."""
    from dse.optimize import FIELDS, Space
    from dse.relaxed import relaxation, relaxed_objective
    from dse.search import prepare

    problem = prepare(net, board, **kwargs)
    space = Space()
    anchors = np.unique(np.asarray(anchors, dtype=np.int64), axis=0)
    table = problem.table({f: anchors[:, i] for i, f in enumerate(FIELDS)})
    fits, _ = problem.fit(table)
    anchors = anchors[fits]
    rel = relaxation(problem, anchors, space)
    s, n_layers, n_choices = rel.compute0.shape
    per_candidate = 2 * n_layers * n_choices * 6 * 8            # e_compute + e_memory bytes
    cap = max(1_000, int(4e9 // (4 * per_candidate)))            # ~4 GB with temporaries
    out = {"network": problem.network.name, "anchors": int(s), "layers": int(n_layers),
           "choices": int(n_choices), "runs": []}
    rng = np.random.default_rng(0)

    def timed(fn, args, sync):
        """Mean seconds of ``sync(fn(*args))`` after one warm-up call."""
        sync(fn(*args))
        reps, begin = 0, time.perf_counter()
        while reps < 3 or time.perf_counter() - begin < seconds:
            sync(fn(*args))
            reps += 1
        return (time.perf_counter() - begin) / reps

    jax = jnp = None
    try:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
    except ImportError:
        pass
    for n in sizes:
        n = min(n, cap)
        idx = np.arange(n) % s
        args = tuple(a[idx] for a in _cycle_arrays(rel))
        d = rng.uniform(rel.lo[idx], rel.hi[idx])
        ref = relaxed_objective(d, *args)
        t = timed(relaxed_objective, (d, *args), lambda r: r)
        out["runs"].append(_rate("numpy", "cpu", n, n_layers * n_choices, t))
        if jax is None:
            continue
        fn = jax.jit(lambda d, *a: relaxed_objective(d, *a, xp=jnp))
        devices = [("cpu", jax.devices("cpu")[0])]
        try:
            devices += [("gpu", g) for g in jax.devices("gpu")[:1]]
        except RuntimeError:
            pass
        for kind, dev in devices:
            dd, dargs = jax.device_put((d, args), dev)
            begin = time.perf_counter()
            got = np.asarray(fn(dd, *dargs).block_until_ready())
            compile_s = time.perf_counter() - begin
            t = timed(fn, (dd, *dargs), lambda r: r.block_until_ready())
            ok = np.isfinite(ref)
            err = float(np.max(np.abs(got[ok] - ref[ok]) / np.abs(ref[ok]))) if ok.any() else 0.
            out["runs"].append(_rate("jax.jit", kind, n, n_layers * n_choices, t,
                                     compile_s=compile_s, max_rel_diff_vs_numpy=err))
    return out


def _cycle_arrays(rel) -> tuple:
    """The arguments of ``relaxed_objective`` after ``d`` (by its parameter names when the
    relaxation has no ``cycle_arrays``)."""
    import inspect

    from dse.relaxed import relaxed_objective

    if hasattr(rel, "cycle_arrays"):
        return tuple(rel.cycle_arrays())
    names = [p for p in inspect.signature(relaxed_objective).parameters if p not in ("d", "xp")]
    return tuple(getattr(rel, p) for p in names)


def _rate(backend, device, n, lc, seconds, **extra) -> dict:
    return {"backend": backend, "device": device, "candidates": int(n), "seconds": seconds,
            "candidates_per_s": n / seconds, "layer_choice_per_s": n * lc / seconds, **extra}


# -- printing -----------------------------------------------------------------------------

def _ratios(row: dict, nlp: dict) -> dict:
    lat = pw = tr = None
    if row.get("latency_ms") is not None:
        lat = row["latency_ms"] / nlp["latency_ms"]
        pw = (nlp["power_w"] / row["power_w"] - 1.0) * 100.0
    if "reach_s" in row:
        tr = None if row["reach_s"] is None else row["reach_s"] / nlp["wall_s"]
    elif row["optimizer"] == "grid":
        # one-shot: it reaches nlp's latency at its end or not at all
        if row["total_cycles"] <= nlp["total_cycles"] * (1 + REACH):
            tr = row["wall_s"] / nlp["wall_s"]
    else:
        tr = 1.0
    return {"latency_ratio": lat, "power_pct": pw, "time_ratio": tr}


def print_case(case: dict, scale: float) -> None:
    nlp = case["nlp"]
    print(f"\n{case['name']} ({case['network']} on {case['board']}, {case['clock_mhz']:g} MHz)"
          f"  baselines: same wall-clock budget as nlp ({nlp['wall_s']:.1f} s, @1x), then run "
          f"on to {scale:g}x ({scale * nlp['wall_s']:.1f} s) to time reaching nlp")
    head = (f"{'optimiser':22} {'latency_ms':>10} {'power_w':>8} {'mapped':>7} {'looked':>7} "
            f"{'wall s':>7} {'lat x/nlp':>9} {'power nlp/x-1':>13} {'time to nlp+0.5%':>19}")
    print(head)
    print("-" * len(head))
    for row in case["rows"]:
        r = row["ratios"]
        lat = "-" if row["latency_ms"] is None else f"{row['latency_ms']:10.4f}"
        pw = "-" if row["power_w"] is None else f"{row['power_w']:8.2f}"
        looked = "-" if row["looked"] is None else str(row["looked"])
        lr = "-" if r["latency_ratio"] is None else f"{r['latency_ratio']:.3f}x"
        pp = "-" if r["power_pct"] is None else f"{r['power_pct']:+.1f} %"
        if r["time_ratio"] is not None:
            tr = f"{r['time_ratio']:.2f}x"
        elif row["optimizer"] == "grid":
            tr = "not reached"
        else:
            tr = f"not in {scale:g}x budget"
        print(f"{row['optimizer']:22} {lat:>10} {pw:>8} {row['mapped']:>7} {looked:>7} "
              f"{row['wall_s']:7.1f} {lr:>9} {pp:>13} {tr:>19}")
    paper = (f"{PAPER['latency_ratio']:.1f}x", f"{PAPER['power_pct']:+.1f} %",
             f"{PAPER['time_ratio']:.1f}x")
    print(f"{'paper (Liang, ResNet-18)':22} {'':>10} {'':>8} {'':>7} {'':>7} {'':>7} "
          f"{paper[0]:>9} {paper[1]:>13} {paper[2]:>19}")
    print("  mapped: points mapped exactly (fitting); looked: distinct points fitted, "
          "infeasible included (nlp's count of these is not reported by search()).")
    print("  time to nlp+0.5%: when the optimiser's best first came within 0.5 % of nlp's "
          "latency, over nlp's wall time (grid: its whole run, if its result is within).")
    best = min((r for r in case["rows"] if r["latency_ms"] is not None),
               key=lambda r: r["total_cycles"])
    for row in case["rows"]:
        if row["point"] is not None and (row is best or row["optimizer"] in ("grid", "nlp")):
            pt = " ".join(f"{k}={v}" for k, v in row["point"].items())
            mark = "  <- best latency" if row is best else ""
            print(f"  {row['optimizer']:20} {pt}{mark}")


def print_throughput(tp: dict) -> None:
    print(f"\nrelaxed model throughput (dse.relaxed.relaxed_objective), {tp['network']}: "
          f"{tp['anchors']} anchors tiled, {tp['layers']} layers x {tp['choices']} choices")
    head = (f"{'backend':8} {'device':6} {'candidates':>10} {'ms/call':>9} "
            f"{'candidates/s':>13} {'(layer x choice)/s':>18} {'compile s':>9}")
    print(head)
    print("-" * len(head))
    for r in tp["runs"]:
        comp = f"{r['compile_s']:9.2f}" if "compile_s" in r else f"{'-':>9}"
        print(f"{r['backend']:8} {r['device']:6} {r['candidates']:>10} "
              f"{r['seconds'] * 1e3:9.2f} {r['candidates_per_s']:13.3g} "
              f"{r['layer_choice_per_s']:18.3g} {comp}")
    if not any(r["device"] == "gpu" for r in tp["runs"]):
        print("  (jax sees no GPU here: CPU only)")


# -- main ---------------------------------------------------------------------------------

def run_case(name: str, scale: float, seed: int) -> dict:
    cfg, net, kwargs = load_case(name)
    board = cfg.board
    rows = []
    grid = run_search(net, board, kwargs, "grid")
    print(f"  {name}: grid {grid['wall_s']:.1f} s", flush=True)
    nlp = run_search(net, board, kwargs, "nlp")
    print(f"  {name}: nlp {nlp['wall_s']:.1f} s", flush=True)
    rows += [grid, nlp]
    traces = {}
    for i, (label, fn) in enumerate(BASELINES):
        got, trace = run_baseline(label, fn, net, board, kwargs, nlp["wall_s"], scale,
                                  seed + i, nlp["total_cycles"])
        rows += got
        traces[label] = trace
        print(f"  {name}: {label} {got[-1]['wall_s']:.1f} s", flush=True)
    for row in rows:
        row["ratios"] = _ratios(row, nlp)
    return {"name": name, "config": CASES[name][0], "network": net.name, "board": board.name,
            "clock_mhz": float(board.clock_mhz), "hardware_pins": kwargs["hardware_pins"],
            "nlp": nlp, "rows": rows, "traces": traces}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--budget-scale", type=float, default=2.5,
                        help="baselines run this many times nlp's wall time (>= 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-throughput", action="store_true",
                        help="skip the relaxed-model throughput")
    args = parser.parse_args(argv)
    scale = max(1.0, args.budget_scale)
    began = time.perf_counter()
    cases = []
    for name in args.networks:
        case = run_case(name, scale, args.seed)
        print_case(case, scale)
        cases.append(case)
    throughput = None
    if not args.no_throughput:
        name = "resnet18" if "resnet18" in args.networks else args.networks[0]
        cfg, net, kwargs = load_case(name)
        case = next(c for c in cases if c["name"] == name)
        from dse.optimize import FIELDS

        anchors = [[r["point"][f] for f in FIELDS] for r in case["rows"] if r["point"]]
        throughput = relaxed_throughput(net, cfg.board, kwargs, anchors)
        print_throughput(throughput)
    total = time.perf_counter() - began
    print(f"\npaper: Liang et al. ICCAD'22 (ResNet-18): {PAPER['latency_ratio']}x latency, "
          f"{PAPER['power_pct']} % power, {PAPER['time_ratio']}x optimiser time")
    print(f"total {total:.0f} s")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"budget_scale": scale, "seed": args.seed, "batch": BATCH,
                               "reach": REACH, "paper": PAPER, "cases": cases,
                               "relaxed_throughput": throughput, "total_s": total},
                              indent=1, default=_json_default) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
