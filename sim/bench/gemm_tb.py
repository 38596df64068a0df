"""Run GEMMs on ``rtl.gemm_engine.GemmEngine`` in Verilator through cocotb.

Two halves, one file, so the pytest side and the cocotb side agree on the job format:

* pytest side: :func:`rtl_gemm` (one GEMM, the golden model's signature plus the measured
  cycles) and :func:`rtl_gemm_batch` (many GEMMs in one simulator run, which is how the tests
  use it: one process start and one build per engine configuration).  They build the engine
  once (cached, :mod:`sim.runner`), write a JSON job, run the cocotb module
  ``sim/bench/tb_gemm_engine.py`` and read its JSON results back.
* cocotb side: :func:`drive_gemm` runs one GEMM on a live DUT following the protocol of
  ``docs/rtl.md`` (shape and mode held, A and B streamed, ``start`` handshake, ``done``, C
  drained) with optional random idles on A/B and back-pressure on C.  Narrow streams carry
  one element per beat, row-major; wide ones (``EngineConfig.wide``) one array-edge vector
  per beat in the orders of docs/rtl.md, "Wide streams" (:func:`a_stream_beats`,
  :func:`b_stream_beats`, :func:`c_from_beats`).

Measured cycles are the engine's ``cycles`` register; the testbench also counts the cycles
in which ``busy`` is high, an independent check of that counter.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rtl.params import ArrayParams, Dataflow

__all__ = [
    "GemmCase",
    "GemmResult",
    "EngineConfig",
    "rtl_gemm",
    "rtl_gemm_batch",
    "drive_gemm",
    "run_job",
    "a_stream_beats",
    "b_stream_beats",
    "c_from_beats",
]

#: The cocotb test module that executes a job (``sim/bench/tb_gemm_engine.py``), by its
#: package name: it imports wherever ``sim`` does, from a checkout or an installed package.
TB_MODULE = "sim.bench.tb_gemm_engine"


@dataclass(frozen=True)
class EngineConfig:
    """Everything that selects one engine build (one Verilator binary).

    Members
    -------
    params:
        The array.
    max_m, max_k, max_n:
        Largest GEMM shape the engine's buffers hold.
    mult_latency:
        Pipeline stages of the multiplier (``GemmEngine(..., mult_latency=)``).
    wide:
        ``(a_wide, b_wide, c_wide)``: which streams carry one array-edge vector per beat.
    """

    params: ArrayParams
    max_m: int = 32
    max_k: int = 64
    max_n: int = 32
    mult_latency: int = 3
    wide: tuple = (False, False, False)

    @property
    def toplevel(self) -> str:
        """Top module name, unique per configuration (readable in the build cache)."""
        p = self.params
        width = "" if not any(self.wide) else "_w" + "".join(
            name for name, w in zip("abc", self.wide) if w)
        return (f"gemm_r{p.rows}c{p.cols}_a{p.a_width}b{p.b_width}acc{p.acc_width}"
                f"_m{self.max_m}k{self.max_k}n{self.max_n}_l{self.mult_latency}{width}")

    def engine(self):
        """Elaborate-ready ``GemmEngine`` for Verilator (behavioural multiplier)."""
        from rtl.gemm_engine import GemmEngine  # deferred: Amaranth only when building

        a_wide, b_wide, c_wide = self.wide
        return GemmEngine(self.params, max_m=self.max_m, max_k=self.max_k, max_n=self.max_n,
                          target="sim", mult_latency=self.mult_latency, a_wide=a_wide,
                          b_wide=b_wide, c_wide=c_wide, pe_instances=True)


@dataclass(frozen=True)
class GemmCase:
    """One GEMM to run, with its stall settings.

    Members
    -------
    a, b:
        Integer matrices, A[M×K] and B[K×N] (values must fit the engine's widths).
    dataflow:
        The array's dataflow for this GEMM.
    idle_prob, backpressure_prob:
        Random idle probability on the A and B streams and back-pressure on C.
    seed:
        Seed of the stall generators (each stream derives its own from it).
    name:
        Label for reports.
    """

    a: np.ndarray
    b: np.ndarray
    dataflow: Dataflow
    idle_prob: float = 0.0
    backpressure_prob: float = 0.0
    seed: int = 0
    name: str = ""

    def to_json(self) -> dict:
        """The case as the job file stores it."""
        return {"name": self.name, "a": np.asarray(self.a).tolist(),
                "b": np.asarray(self.b).tolist(), "mode": Dataflow(self.dataflow).code,
                "idle_prob": self.idle_prob, "backpressure_prob": self.backpressure_prob,
                "seed": self.seed}


@dataclass(frozen=True)
class GemmResult:
    """What one simulated GEMM produced.

    Members
    -------
    c:
        C[M×N] as int64, as received on ``c_stream``.
    cycles:
        The engine's ``cycles`` register after ``done``.
    busy_cycles:
        Cycles with ``busy`` high, counted by the testbench (-1 when not counted).
    beats:
        ``(a, b, c)``: beats each stream moved for this GEMM (C: every beat offered up to a
        few cycles after the expected last one, so an extra beat shows).
    c_pad_nonzero:
        Lanes of wide C beats past the matrix edge that were not zero (must be 0).
    compute_seconds:
        Wall time of the simulation from the start handshake to ``done``.
    compute_cpu_seconds:
        CPU time of the simulator process over the same span (on a loaded machine, closer
        to what the same run takes on an idle one).
    """

    c: np.ndarray
    cycles: int
    busy_cycles: int
    compute_seconds: float = 0.0
    compute_cpu_seconds: float = 0.0
    beats: tuple = (-1, -1, -1)
    c_pad_nonzero: int = 0


def _check_case(case: GemmCase, cfg: EngineConfig) -> None:
    a, b = np.asarray(case.a), np.asarray(case.b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"a and b must be matrices A[M×K], B[K×N], not {a.shape} and {b.shape}")
    m, k = a.shape
    n = b.shape[1]
    if not (1 <= m <= cfg.max_m and 1 <= k <= cfg.max_k and 1 <= n <= cfg.max_n):
        raise ValueError(f"shape (m, k, n) must be within (1..{cfg.max_m}, 1..{cfg.max_k}, "
                         f"1..{cfg.max_n}) of this engine, not {(m, k, n)}")
    for name, x, width in (("a", a, cfg.params.a_width), ("b", b, cfg.params.b_width)):
        lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
        if x.size and (x.min() < lo or x.max() > hi):
            raise ValueError(f"{name} must hold {width}-bit signed values ({lo}..{hi})")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:120]


def rtl_gemm_batch(cases: Sequence[GemmCase], cfg: EngineConfig, *, run_name: str,
                   seed: int = 1, count_busy: bool = True) -> list[GemmResult]:
    """Run GEMMs one after another on one simulated engine and return their results.

    Parameters
    ----------
    cases:
        The GEMMs, in order (the engine is reset before each).
    cfg:
        The engine configuration (built once, cached).
    run_name:
        Names the run's folder ``build/sim/<run_name>`` (job, results, log).
    seed:
        ``COCOTB_RANDOM_SEED`` of the run (the stall generators use each case's own seed).
    count_busy:
        Count ``busy`` cycles in the testbench (a Python wake-up per cycle); switch off to
        time the simulator with Python idle while the engine computes.

    Raises
    ------
    sim.runner.CocotbFailure
        If the simulation fails (a stream timed out, the engine never finished).
    """
    from sim.runner import REPO_ROOT, build_component, run_cocotb

    for case in cases:
        _check_case(case, cfg)
    build = build_component(cfg.engine(), cfg.toplevel)
    test_dir = REPO_ROOT / "build" / "sim" / _safe(run_name)
    test_dir.mkdir(parents=True, exist_ok=True)
    out = test_dir / "gemm_results.json"
    out.unlink(missing_ok=True)
    job = {"acc_width": cfg.params.acc_width, "a_width": cfg.params.a_width,
           "b_width": cfg.params.b_width, "rows": cfg.params.rows, "cols": cfg.params.cols,
           "wide": list(cfg.wide), "cases": [c.to_json() for c in cases],
           "out": str(out), "count_busy": count_busy}
    (test_dir / "gemm_job.json").write_text(json.dumps(job))
    run_cocotb(build, TB_MODULE, test_dir=test_dir, seed=seed,
               extra_env={"OMNICONV_TB_JOB": str(test_dir / "gemm_job.json")})
    results = json.loads(out.read_text())
    return [GemmResult(np.array(r["c"], dtype=np.int64).reshape(len(c.a), np.shape(c.b)[1]),
                       r["cycles"], r["busy_cycles"], r["compute_seconds"],
                       r["compute_cpu_seconds"], tuple(r["beats"]), r["c_pad_nonzero"])
            for c, r in zip(cases, results)]


def rtl_gemm(a, b, params: ArrayParams, dataflow: Dataflow, *, idle_prob: float = 0.0,
             backpressure_prob: float = 0.0, seed: int = 0, max_m: int = 32, max_k: int = 64,
             max_n: int = 32, mult_latency: int = 3) -> GemmResult:
    """Compute C = A·B on the simulated engine (the golden GEMM's signature, plus cycles).

    ``np.testing.assert_array_equal(rtl_gemm(a, b, p, df).c, gemm(a, b, p))`` is a test.
    """
    cfg = EngineConfig(params, max_m, max_k, max_n, mult_latency)
    case = GemmCase(np.asarray(a), np.asarray(b), Dataflow(dataflow), idle_prob,
                    backpressure_prob, seed)
    run = f"rtl_gemm_{cfg.toplevel}_{Dataflow(dataflow).value}_{seed}"
    return rtl_gemm_batch([case], cfg, run_name=run)[0]


# beat orders of the wide streams (docs/rtl.md, "Wide streams") ------------------------

#: Value of the lanes of a wide A or B beat past the matrix edge (the engine ignores them;
#: nonzero so that a lane the engine wrongly used would show in C).
PAD = -1


def _pad_lanes(count: int) -> list[int]:
    return [PAD] * count


def a_stream_beats(a: np.ndarray, rows: int, pad=_pad_lanes) -> list[list[int]]:
    """Wide A beats: K-chunks A[m, kb·rows … +rows], (m, kb) row-major; the lanes past K hold
    ``pad(count)`` (default PAD: the engine must ignore them)."""
    m, k = a.shape
    return [[int(x) for x in a[i, k0:k0 + rows]] + pad(max(0, k0 + rows - k))
            for i in range(m) for k0 in range(0, k, rows)]


def b_stream_beats(b: np.ndarray, rows: int, cols: int, mode: int,
                   pad=_pad_lanes) -> list[list[int]]:
    """Wide B beats of max(rows, cols) lanes: ws/os N-chunks B[k, nb·cols …], (k, nb)
    row-major; is K-chunks B[kb·rows …, n], (n, kb) row-major; padded with ``pad``."""
    k, n = b.shape
    lanes = max(rows, cols)
    if mode == Dataflow.IS.code:
        chunks = [b[k0:k0 + rows, j] for j in range(n) for k0 in range(0, k, rows)]
    else:
        chunks = [b[i, n0:n0 + cols] for i in range(k) for n0 in range(0, n, cols)]
    return [[int(x) for x in ch] + pad(lanes - len(ch)) for ch in chunks]


def c_from_beats(beats, m: int, n: int, cols: int, mode: int) -> tuple[np.ndarray, int]:
    """C[m×n] from wide C beats (ws/os (m, nb), is (mb, n)) and the count of nonzero lanes
    past the matrix edge."""
    c = np.zeros((m, n), dtype=np.int64)
    if mode == Dataflow.IS.code:
        spots = [(slice(m0, min(m0 + cols, m)), j) for m0 in range(0, m, cols) for j in range(n)]
    else:
        spots = [(i, slice(n0, min(n0 + cols, n))) for i in range(m) for n0 in range(0, n, cols)]
    bad = 0
    for beat, spot in zip(beats, spots):
        valid = len(c[spot])
        c[spot] = beat[:valid]
        bad += sum(1 for x in beat[valid:] if x != 0)
    return c, bad


def c_beat_count(m: int, n: int, cols: int, mode: int, wide: bool) -> int:
    """C beats of one GEMM, by counting the chunks of the beat order."""
    if not wide:
        return m * n
    if mode == Dataflow.IS.code:
        return len(range(0, m, cols)) * n
    return m * len(range(0, n, cols))


# cocotb side ---------------------------------------------------------------------------


async def _reset(dut, clk) -> None:
    from cocotb.triggers import ClockCycles, FallingEdge

    await FallingEdge(clk)
    dut.rst.value = 1
    dut.start.value = 0
    await ClockCycles(clk, 2, rising=False)
    dut.rst.value = 0


async def drive_gemm(dut, a: np.ndarray, b: np.ndarray, mode: int, *, a_width: int,
                     b_width: int, acc_width: int, idle_prob: float = 0.0,
                     backpressure_prob: float = 0.0, seed: int = 0, count_busy: bool = True,
                     timeout_cycles: int | None = None, rows: int = 1, cols: int = 1,
                     wide=(False, False, False)) -> dict:
    """Run one GEMM on a running engine DUT (clock started) and return its outputs.

    ``rows``, ``cols`` and ``wide`` (``(a_wide, b_wide, c_wide)``) describe the engine's
    streams; they matter only for wide ones.

    Returns a dict with ``c`` (list of rows), ``beats`` (A, B, C beats moved),
    ``c_pad_nonzero`` (nonzero lanes of wide C beats past the edge), ``cycles`` (the
    engine's register),
    ``busy_cycles`` (counted here; -1 when ``count_busy`` is false), ``compute_seconds``
    (wall time from the start handshake to ``done``) and ``compute_cpu_seconds`` (the
    simulator process's CPU time over that span).

    Raises
    ------
    sim.bench.streams.StreamTimeout
        If loading, computing or draining takes longer than ``timeout_cycles``.
    """
    from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

    from cocotb.triggers import ClockCycles

    from sim.bench.streams import ArrayCodec, IntCodec, StreamSink, StreamSource, StreamTimeout

    clk = dut.clk
    m, k = a.shape
    n = b.shape[1]
    if timeout_cycles is None:
        # Generous: loads are one beat per cycle, compute is under (m+rows)(k+cols)(n+...),
        # stalls at p < 0.8 cost at most ~5x.
        timeout_cycles = 20 * (m * k + k * n + m * n) + 50 * (m + 8) * (k + 8) * (n + 8) // 8
    await _reset(dut, clk)
    dut.m.value, dut.k.value, dut.n.value, dut.mode.value = m, k, n, mode
    a_wide, b_wide, c_wide = wide
    codec_a = ArrayCodec(a_width, rows) if a_wide else IntCodec(a_width)
    codec_b = ArrayCodec(b_width, max(rows, cols)) if b_wide else IntCodec(b_width)
    codec_c = (ArrayCodec(acc_width, cols, signed=True) if c_wide
               else IntCodec(acc_width, signed=True))
    src_a = StreamSource(dut, "a_stream", clk, encode=codec_a.encode,
                         idle_prob=idle_prob, seed=seed * 3 + 1)
    src_b = StreamSource(dut, "b_stream", clk, encode=codec_b.encode,
                         idle_prob=idle_prob, seed=seed * 3 + 2)
    sink_c = StreamSink(dut, "c_stream", clk, decode=codec_c.decode,
                        backpressure_prob=backpressure_prob, seed=seed * 3 + 3)
    c_count = c_beat_count(m, n, cols, mode, c_wide)
    try:
        src_a.put(a_stream_beats(a, rows) if a_wide else [int(x) for x in a.reshape(-1)])
        src_b.put(b_stream_beats(b, rows, cols, mode) if b_wide
                  else [int(x) for x in b.reshape(-1)])
        await src_a.wait_done(timeout_cycles)
        await src_b.wait_done(timeout_cycles)
        # start handshake: hold start until a ReadOnly phase shows start_ready.
        falling, read_only = FallingEdge(clk), ReadOnly()
        waited = 0
        while True:
            await falling
            dut.start.value = 1
            await read_only
            if str(dut.start_ready.value) == "1":
                break
            waited += 1
            if waited > timeout_cycles:
                raise StreamTimeout(f"start_ready never rose after loading ({waited} cycles)")
        await RisingEdge(clk)  # the handshake edge
        t0, cpu0 = time.perf_counter(), time.process_time()
        busy = 0
        await falling
        dut.start.value = 0
        if count_busy:
            cycles = 0
            while True:
                await read_only
                if str(dut.busy.value) == "1":
                    busy += 1
                if str(dut.done.value) == "1":
                    break
                cycles += 1
                if cycles > timeout_cycles:
                    raise StreamTimeout(f"done never rose ({cycles} cycles after start)")
                await falling
        else:
            busy = -1
            if str(dut.done.value) != "1":
                await RisingEdge(dut.done)
        compute_seconds = time.perf_counter() - t0
        compute_cpu_seconds = time.process_time() - cpu0
        measured = dut.cycles.value.to_unsigned()
        c = await sink_c.wait_for(c_count, timeout_cycles)
        await ClockCycles(clk, 8)      # an extra beat would arrive here
        c_moved = len(sink_c.items)
    finally:
        src_a.stop()
        src_b.stop()
        sink_c.stop()
    bad = 0
    if c_wide:
        c, bad = c_from_beats(c, m, n, cols, mode)
    return {"c": np.array(c, dtype=np.int64).reshape(m, n).tolist(), "cycles": measured,
            "busy_cycles": busy, "compute_seconds": compute_seconds,
            "compute_cpu_seconds": compute_cpu_seconds,
            "beats": [src_a.sent, src_b.sent, c_moved], "c_pad_nonzero": bad}


async def run_job(dut, job_path: str) -> None:
    """Run every case of a job file on the DUT and write the results file it names."""
    from cocotb.clock import Clock

    with open(job_path) as f:
        job = json.load(f)
    Clock(dut.clk, 10, unit="ns").start()
    results = []
    for case in job["cases"]:
        out = await drive_gemm(
            dut, np.array(case["a"], dtype=np.int64), np.array(case["b"], dtype=np.int64),
            case["mode"], a_width=job["a_width"], b_width=job["b_width"],
            acc_width=job["acc_width"], idle_prob=case["idle_prob"],
            backpressure_prob=case["backpressure_prob"], seed=case["seed"],
            count_busy=job.get("count_busy", True), rows=job.get("rows", 1),
            cols=job.get("cols", 1), wide=tuple(job.get("wide", (False, False, False))))
        results.append(out)
    with open(job["out"], "w") as f:
        json.dump(results, f)
