"""Run convolution layers on ``rtl.conv_datapath.ConvDatapath`` in Verilator through cocotb.

Two halves, one file, so the pytest side and the cocotb side agree on the job format:

* pytest side: :func:`rtl_conv` (one layer: the golden model's signature plus cycles) and
  :func:`rtl_conv_batch` (many layers in one simulator run: one build per datapath
  configuration, cached by :mod:`sim.runner`).  The compiler (:mod:`dse.compiler`) plans each
  layer and builds its buffer images; the job file carries them to the testbench, whose
  results come back as JSON and are decoded into N×OH×OW outputs and accumulations.
* cocotb side: :func:`drive_invocation` loads the feature / tile / weight buffers through
  their write ports, sets the layer's settings, pulses ``start``, waits for ``done``, reads the
  cycle counters and the output and accumulator buffers.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from rtl.params import OverlayParams

__all__ = ["DatapathConfig", "ConvCase", "ConvResult", "COUNTERS", "SPARSE_COUNTERS",
           "sized_config", "fft_golden", "sparse_golden", "calibrated_fft_shift", "plan_case",
           "sparse_images", "rtl_conv", "rtl_conv_batch", "drive_invocation", "run_job"]

#: The cocotb test module that executes a job (``sim/bench/tb_conv_datapath.py``), by its
#: package name: it imports wherever ``sim`` does, from a checkout or an installed package.
TB_MODULE = "sim.bench.tb_conv_datapath"

#: Cycle counters of the datapath, summed over a layer's invocations.
COUNTERS = ("cycles", "gemm_cycles", "front_cycles", "back_cycles", "requant_cycles")

#: The sparse unit's counters, read besides :data:`COUNTERS` from a datapath that has one.
SPARSE_COUNTERS = ("smac_cycles", "smac_stall_cycles", "smac_conflict")


@dataclass(frozen=True)
class DatapathConfig:
    """Everything that selects one datapath build (one Verilator binary).

    Members
    -------
    params:
        The overlay parameters.
    limits:
        ``rtl.params.DatapathLimits`` keyword arguments, as a sorted tuple of pairs.
    precision:
        Bits of activations, weights and outputs.
    mult_latency:
        PE multiplier stages.
    """

    params: OverlayParams
    limits: tuple
    precision: int = 8
    mult_latency: int = 3

    @classmethod
    def make(cls, params: OverlayParams, limits: dict, **kwargs) -> "DatapathConfig":
        """Build from a limits dict (e.g. :func:`dse.compiler.required_limits`)."""
        return cls(params, tuple(sorted(limits.items())), **kwargs)

    def limits_obj(self):
        """The :class:`rtl.params.DatapathLimits`."""
        from rtl.params import DatapathLimits

        return DatapathLimits(**dict(self.limits))

    @property
    def toplevel(self) -> str:
        """Top module name, unique per configuration."""
        p = self.params
        blob = json.dumps([p.as_dict(), self.limits, self.precision, self.mult_latency,
                           ])
        digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
        return f"conv_r{p.rows}c{p.cols}_a{p.a_width}b{p.b_width}w{p.winograd_m}_{digest}"

    def datapath(self):
        """The ``ConvDatapath`` to build (behavioural multipliers)."""
        from rtl.conv_datapath import ConvDatapath

        return ConvDatapath(self.params, self.limits_obj(), precision=self.precision,
                            target="sim", mult_latency=self.mult_latency, pe_instances=True)


@dataclass(frozen=True)
class ConvCase:
    """One layer to run.

    Members
    -------
    x, w:
        Input C×H×W and weights N×C/g×R×S (integers of the precision).
    layer:
        The :class:`dse.network.Layer` (conv).
    algorithm, dataflow:
        The choice (names).
    relu:
        ReLU after requantisation.
    requant:
        (mult, shift) or ``None`` for :func:`dse.compiler.default_requant`.
    name:
        Label.
    fft_shift:
        FFT: requantisation shift of the spectral sums; ``None`` calibrates it on the case's
        data (:func:`calibrated_fft_shift`).
    variant:
        ``"patches"`` for im2col from the host's patches (``dse.compiler.plan_conv``).
    density:
        sparse_fft: the density the kernel spectra are pruned to (``None``: the
        compiler's default).
    """

    x: np.ndarray
    w: np.ndarray
    layer: object
    algorithm: str
    dataflow: str
    relu: bool = False
    requant: tuple | None = None
    name: str = ""
    fft_shift: int | None = None
    variant: str | None = None
    density: float | None = None


@dataclass(frozen=True)
class ConvResult:
    """What one simulated layer produced.

    Members
    -------
    outputs, accumulations:
        N×OH×OW int64: requantised outputs and the accumulations entering the requantiser.
    cycles:
        Counter name → cycles, summed over the layer's invocations (:data:`COUNTERS`).
    per_invocation:
        The counters of each invocation.
    plan:
        The :class:`dse.compiler.ConvPlan` that ran.
    """

    outputs: np.ndarray
    accumulations: np.ndarray
    cycles: dict
    per_invocation: list
    plan: object

    @property
    def measured_cycles(self) -> int:
        """Whole-layer cycles (the datapath's ``cycles`` counter, summed)."""
        return self.cycles["cycles"]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:120]


def sized_config(cases: Sequence[ConvCase], params: OverlayParams, *, precision: int = 8,
                 **kwargs) -> DatapathConfig:
    """A datapath configuration whose buffers hold every case, each limit rounded up to a
    power of two (so batches of similar layers share one cached build)."""
    from dse.compiler import plan_conv, required_limits

    plans = [plan_conv(c.layer, c.algorithm, c.dataflow, params, None, precision=precision,
                       variant=c.variant, density=c.density)
             for c in cases]
    limits = {k: 1 << max(1, (v - 1).bit_length()) for k, v in required_limits(plans).items()}
    return DatapathConfig.make(params, limits, precision=precision, **kwargs)


def _by_band(golden, x, w, plan, fft_shift, mask=None):
    """``golden`` of a spectral plan cut into row bands and channel chunks: each band's
    own golden (its input rows, halo and padding, as the datapath runs it), its channel
    chunks' summed (the datapath's accumulator buffer adds them) with the kernel spectra
    quantised at the whole layer's fraction, the bands stacked along the output rows; the
    first part's scale and shift (every part has the layer's), saturations summed."""
    from sim.models.fft import spectral_kernels

    x, w = np.asarray(x, dtype=np.int64), np.asarray(w, dtype=np.int64)
    frac = spectral_kernels(w, plan.fft_n, plan.kernel_bits)[2]       # the whole layer's
    rows: dict = {}
    parts = []
    for b in plan.bands:
        (c0, c1), (i0, i1) = b.channels, b.in_rows
        extra = {} if mask is None else {"mask": mask[:, c0:c1]}
        part = golden(x[c0:c1, i0:i1], w[:, c0:c1], b.plan, fft_shift, kernel_frac=frac,
                      **extra)
        rows[b.rows] = rows.get(b.rows, 0) + part.acc
        parts.append(part)
    acc = np.concatenate([rows[r] for r in sorted(rows)], axis=1)
    return replace(parts[0], acc=acc, saturated=sum(p.saturated for p in parts))


def fft_golden(x, w, plan, fft_shift=None, kernel_frac=None):
    """``sim.models.fft.fft_conv`` of a layer with the plan's widths and padding (the
    bit-accurate golden model of the FFT path; of a plan cut into row bands and channel
    chunks, part by part); ``fft_shift`` ``None`` picks the smallest shift that saturates
    nothing on this data; ``kernel_frac`` as ``fft_conv``'s."""
    from sim.models.fft import FFTParams, fft_conv

    if plan.bands:
        return _by_band(fft_golden, x, w, plan, fft_shift)
    t, l, b, r = plan.pads
    xp = np.pad(np.asarray(x, dtype=np.int64), ((0, 0), (t, b), (l, r)))
    params = FFTParams(n=plan.fft_n, data_bits=plan.data_bits, twiddle_bits=plan.data_bits)
    return fft_conv(xp, w, params, padding=0, in_bits=plan.precision,
                    kernel_bits=plan.kernel_bits, mac_shift=fft_shift, hermitian=True,
                    kernel_frac=kernel_frac)


def sparse_golden(x, w, plan, fft_shift=None, mask=None, kernel_frac=None):
    """``sim.models.sparse_fft.sparse_fft_conv`` of a sparse_fft layer with the plan's widths
    and padding (the bit-accurate golden model of the sparse path), pruned by ``mask``
    (N×C×n×(n/2+1)) or, by default, as the compiler prunes; ``fft_shift`` ``None`` picks
    the smallest shift that saturates nothing; ``kernel_frac`` as ``fft_conv``'s."""
    from sim.models.fft import FFTParams
    from sim.models.sparse_fft import sparse_fft_conv

    if mask is None:
        mask = plan.sparse_kernels(w).mask                 # filters × channels × bins
        mask = mask.reshape(mask.shape[:2] + (plan.fft_n, plan.fft_n // 2 + 1))
    if plan.bands:
        return _by_band(sparse_golden, x, w, plan, fft_shift, mask=mask)
    t, l, b, r = plan.pads
    xp = np.pad(np.asarray(x, dtype=np.int64), ((0, 0), (t, b), (l, r)))
    params = FFTParams(n=plan.fft_n, data_bits=plan.data_bits, twiddle_bits=plan.data_bits)
    return sparse_fft_conv(xp, w, params, mask=mask, padding=0, in_bits=plan.precision,
                           kernel_bits=plan.kernel_bits, mac_shift=fft_shift,
                           kernel_frac=kernel_frac)


def calibrated_fft_shift(case: ConvCase, cfg: DatapathConfig) -> int:
    """The spectral requantisation shift a calibrating compiler stores for this layer: the
    smallest that saturates nothing on the case's data (``fft_conv``'s choice, on the
    pruned kernels for sparse_fft)."""
    from dse.compiler import plan_conv

    plan = plan_conv(case.layer, case.algorithm, case.dataflow, cfg.params, None,
                     precision=cfg.precision, density=case.density)
    golden = sparse_golden if case.algorithm == "sparse_fft" else fft_golden
    return golden(case.x, case.w, plan).mac_shift


def plan_case(case: ConvCase, cfg: DatapathConfig):
    """The compiler's plan of ``case`` on ``cfg``'s datapath."""
    from dse.compiler import plan_conv

    shift = case.fft_shift
    if case.algorithm in ("fft", "sparse_fft") and shift is None:
        shift = calibrated_fft_shift(case, cfg)
    return plan_conv(case.layer, case.algorithm, case.dataflow, cfg.params, cfg.limits_obj(),
                     requant=case.requant, relu=case.relu,
                     precision=cfg.precision, fft_shift=shift, variant=case.variant,
                     density=case.density)


def sparse_images(program, sparse) -> dict:
    """The sparse unit's memory words for a :class:`dse.compiler.sparse_schedule.SparseProgram`
    on a datapath whose unit is ``sparse`` (``ConvDatapath.sparse``), encoded by the ports'
    own layouts: ``sp`` (placement, a word per bin), ``ss`` (schedule, a word per step) and
    ``sk`` ((address, word) pairs of the kernel banks)."""
    from rtl.fft import complex_layout
    from rtl.spectral import sparse_kernel_address_bits, sparse_step_word

    def bits(layout, value):
        return int(layout.const(value).as_value().value)

    step = sparse_step_word(sparse)
    kernel = complex_layout(sparse.kernel_width)
    bank_bits = max(1, (sparse.banks - 1).bit_length())
    index_bits = sparse_kernel_address_bits(sparse)
    ss = [bits(step, {"step": [{"valid": int(b >= 0), "bin": max(b, 0)} for b in row],
                      "last": int(last)})
          for row, last in program.steps]
    sk = [[(lane << index_bits) | i, bits(kernel, {"re": re, "im": im})]
          for lane, values in enumerate(program.kernels) for i, (re, im) in enumerate(values)]
    sp = [bank | (row << bank_bits) for bank, row in program.placement]
    return {"sp": sp, "ss": ss, "sk": sk}


def _job_invocations(case: ConvCase, plan, sparse=None) -> list:
    out = []
    for inv in plan.invocations:
        item = {"registers": inv.registers, "out_words": inv.out_words,
                "weights": plan.weight_image(case.w, inv).tolist()}
        if plan.algorithm == "winograd":
            item["tiles"] = plan.tile_image(case.x, inv).tolist()
        elif plan.spectral:
            item["fft_tiles"] = plan.fft_tile_image(case.x, inv).tolist()
        else:
            item["feature"] = plan.feature_image(case.x, inv).tolist()
        if plan.algorithm == "sparse_fft":
            item["sparse"] = sparse_images(plan.sparse_program(case.w, inv), sparse)
        out.append(item)
    return out


def rtl_conv_batch(cases: Sequence[ConvCase], cfg: DatapathConfig, *, run_name: str,
                   seed: int = 1, progress=None, work_dir: Path | None = None,
                   timing: dict | None = None) -> list[ConvResult]:
    """Run layers one after another on one simulated datapath; return their results.

    ``progress`` (optional callable) is called with each case's name before the run starts
    (the run is one simulator process for the whole batch).  The job and result files go to
    ``work_dir``, by default ``build/sim/<run_name>``: two runs at the same time must not share
    one (each would read the other's results).  ``timing`` (optional dict) gets the wall
    seconds of generating and building the datapath (``build_s``) and of the simulator run
    (``simulate_s``).

    Raises
    ------
    ValueError
        If the compiler refuses a case (bad layer/algorithm combination, too big).
    sim.runner.CocotbFailure
        If the simulation fails.
    """
    from sim.runner import REPO_ROOT, build_component, run_cocotb

    plans = [plan_case(c, cfg) for c in cases]
    start = time.perf_counter()
    dp = cfg.datapath()
    build = build_component(dp, cfg.toplevel)
    built = time.perf_counter()
    test_dir = Path(work_dir) if work_dir is not None else \
        REPO_ROOT / "build" / "sim" / _safe(run_name)
    test_dir.mkdir(parents=True, exist_ok=True)
    out = test_dir / "conv_results.json"
    out.unlink(missing_ok=True)
    job = {"precision": cfg.precision, "lanes": dp.lanes, "back_width": dp.back_width,
           "rows": cfg.params.rows, "edge": dp.edge,
           "a_width": cfg.params.a_width, "b_width": cfg.params.b_width,
           "tile_lanes": (cfg.params.winograd_m + 2) ** 2 if cfg.params.winograd_m else 0,
           "fft": cfg.params.fft_size, "sparse": dp.sparse is not None,
           "out": str(out),
           "cases": [{"name": c.name, "invocations": _job_invocations(c, p, dp.sparse)}
                     for c, p in zip(cases, plans)]}
    (test_dir / "conv_job.json").write_text(json.dumps(job))
    if progress is not None:
        for c in cases:
            progress(c.name)
    run_cocotb(build, TB_MODULE, test_dir=test_dir, seed=seed,
               extra_env={"OMNICONV_CONV_JOB": str(test_dir / "conv_job.json")})
    if timing is not None:
        timing.update(build_s=built - start, simulate_s=time.perf_counter() - built)
    results = json.loads(out.read_text())
    done = []
    for case, plan, res in zip(cases, plans, results):
        outs, accs, per_inv = [], [], []
        for inv, r in zip(plan.invocations, res):
            outs.append(plan.decode(np.array(r["ob"], dtype=np.int64), inv))
            accs.append(plan.decode(np.array(r["ab"], dtype=np.int64), inv))
            per_inv.append({k: r[k] for k in COUNTERS + SPARSE_COUNTERS if k in r})
        totals = {k: sum(d[k] for d in per_inv) for k in per_inv[0]}
        done.append(ConvResult(plan.assemble(outs), plan.assemble(accs), totals, per_inv,
                               plan))
    return done


def rtl_conv(x, w, layer, choice, params: OverlayParams, *, precision: int = 8,
             limits: dict | None = None, relu: bool = False, requant=None):
    """Run one conv layer on the simulated datapath.

    ``choice`` is ``(algorithm, dataflow)`` (names or enums).  Returns
    ``(outputs, accumulations, measured_cycles)``: N×OH×OW int64 arrays and the layer's
    cycles.  The datapath is sized for this layer (``dse.compiler.required_limits``) unless
    ``limits`` is given.
    """
    from dse.compiler import plan_conv, required_limits

    algo, flow = (getattr(v, "value", v) for v in choice)
    if limits is None:
        limits = required_limits([plan_conv(layer, algo, flow, params, None,
                                            precision=precision)])
    cfg = DatapathConfig.make(params, limits, precision=precision)
    case = ConvCase(np.asarray(x), np.asarray(w), layer, algo, flow, relu, requant,
                    name=layer.name)
    res = rtl_conv_batch([case], cfg, run_name=f"rtl_conv_{cfg.toplevel}_{layer.name}")[0]
    return res.outputs, res.accumulations, res.measured_cycles


# cocotb side ---------------------------------------------------------------------------


async def _write_words(dut, clk, prefix: str, words, encode) -> None:
    from cocotb.triggers import FallingEdge

    en = getattr(dut, f"{prefix}_en")
    addr = getattr(dut, f"{prefix}_addr")
    data = getattr(dut, f"{prefix}_data")
    for i, word in enumerate(words):
        await FallingEdge(clk)
        addr.value = i
        data.value = encode(word)
        en.value = 1
    await FallingEdge(clk)
    en.value = 0


async def _write_pairs(dut, clk, prefix: str, pairs) -> None:
    """Write (address, word) pairs through ``<prefix>_addr``/``_data``/``_en``."""
    from cocotb.triggers import FallingEdge

    en = getattr(dut, f"{prefix}_en")
    addr = getattr(dut, f"{prefix}_addr")
    data = getattr(dut, f"{prefix}_data")
    for a, word in pairs:
        await FallingEdge(clk)
        addr.value = a
        data.value = word
        en.value = 1
    await FallingEdge(clk)
    en.value = 0


async def drive_invocation(dut, inv: dict, job: dict, timeout_cycles: int = 50_000_000) -> dict:
    """Load one invocation's buffers, run it and return its counters and output buffers."""
    from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge, with_timeout

    from sim.bench.streams import ArrayCodec, IntCodec, NestedCodec

    clk = dut.clk
    if "feature" in inv:
        await _write_words(dut, clk, "fb", inv["feature"],
                           ArrayCodec(job["a_width"], job["rows"]).encode)
    if "tiles" in inv:
        tile = ArrayCodec(job["precision"], job["tile_lanes"])
        await _write_words(dut, clk, "tb", inv["tiles"],
                           NestedCodec(tile, job["rows"]).encode)
    if "fft_tiles" in inv:
        await _write_words(dut, clk, "xb", inv["fft_tiles"], IntCodec(job["precision"]).encode)
    await _write_words(dut, clk, "wb", inv["weights"],
                       ArrayCodec(job["b_width"], job["edge"]).encode)
    if "sparse" in inv:
        images = inv["sparse"]
        await _write_words(dut, clk, "sp", images["sp"], int)
        await _write_words(dut, clk, "ss", images["ss"], int)
        await _write_pairs(dut, clk, "sk", images["sk"])
    await FallingEdge(clk)
    for name, value in inv["registers"].items():
        getattr(dut, name).value = value
    dut.start.value = 1
    await FallingEdge(clk)
    dut.start.value = 0
    if str(dut.done.value) != "1":
        await with_timeout(RisingEdge(dut.done), timeout_cycles * 10, "ns")
    await ReadOnly()
    def unsigned(value):                    # a one-bit port's value is a Logic
        return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)

    counters = {k: unsigned(getattr(dut, k).value)
                for k in COUNTERS + (SPARSE_COUNTERS if job.get("sparse") else ())}
    ob_codec = ArrayCodec(job["precision"], job["lanes"])
    ab_codec = ArrayCodec(job["back_width"], job["lanes"])
    ob, ab = [], []
    for i in range(inv["out_words"]):
        await FallingEdge(clk)
        dut.ob_addr.value = i
        await RisingEdge(clk)
        await ReadOnly()
        ob.append(list(ob_codec.decode(dut.ob_data.value.to_unsigned())))
        ab.append(list(ab_codec.decode(dut.ab_data.value.to_unsigned())))
    await ClockCycles(clk, 1, rising=False)
    return {**counters, "ob": ob, "ab": ab}


async def run_job(dut, job_path: str) -> None:
    """Run every invocation of every case of a job file; write the results it names."""
    from cocotb.clock import Clock
    from cocotb.triggers import ClockCycles, FallingEdge

    with open(job_path) as f:
        job = json.load(f)
    Clock(dut.clk, 10, unit="ns").start()
    await FallingEdge(dut.clk)
    dut.rst.value = 1
    for name in ("start", "fb_en", "wb_en"):
        getattr(dut, name).value = 0
    if job["tile_lanes"]:
        dut.tb_en.value = 0
    if job.get("fft"):
        dut.xb_en.value = 0
    if job.get("sparse"):
        for name in ("sp_en", "ss_en", "sk_en"):
            getattr(dut, name).value = 0
    await ClockCycles(dut.clk, 2, rising=False)
    dut.rst.value = 0
    results = []
    for case in job["cases"]:
        results.append([await drive_invocation(dut, inv, job) for inv in case["invocations"]])
    Path(job["out"]).write_text(json.dumps(results))
