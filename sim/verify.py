"""Verification of a network on the conv datapath in Verilator: the work of ``omniconv verify``.

Given the hardware (:class:`rtl.params.OverlayParams`), the verification network and the run
config's settings (:class:`VerifySettings`), :func:`verify_config`

1. maps the network anew on exactly that hardware (every OverlayParams field pinned) with the
   allowed algorithms and dataflows, objective and the per-layer pins whose names match
   (:func:`map_network`).  Sparse FFT runs where the hardware has an FFT unit and a sparse
   unit (``sparse_lanes``); elsewhere it is taken out of the allowed set (and a per-layer
   sparse_fft pin is refused);
2. has the compiler (:mod:`dse.compiler`) plan every conv layer (or those of a ``layers``
   selection, :func:`select_layers`), estimates the run's memory and time
   (:func:`estimate_cost`) and refuses one above the budget; the datapath of overlay.v is
   generated for the hardware, with its buffer sizes (:func:`dse.cost.resources.overlay_limits`:
   a layer larger than they hold runs as the row bands and filter chunks the compiler cuts
   it into, as the explorer counted it), built once by Verilator (cached), and
   every layer runs through it with random data (seeded) loaded into its buffers
   (:func:`sim.bench.conv_tb.rtl_conv_batch`);
3. compares each layer's accumulations with exact convolution (numpy int64; for int8 also
   onnxruntime's ConvInteger) -- or, for the approximate FFT and sparse FFT, with their
   bit-accurate golden models in :mod:`sim.models` (:func:`golden_accumulations`), whose
   SQNR against exact convolution is reported -- and its requantised outputs with the numpy
   requantiser; measured cycles with ``ConvPlan.cycles`` (:mod:`dse.lowering`, the
   explorer's own formula; for sparse FFT with the compiled schedule's steps, the
   explorer's expectation beside them as ``model_cycles``).  FFT layers' spectral
   requantisation shift is calibrated on the layer's data (the smallest that saturates
   nothing);
4. returns the verify.json document.

Bad input (a pin or a layer the datapath cannot run, a network without convolutions) raises
:class:`dse.errors.InputError` before anything is built.  Reading the config, choosing the
hardware and writing verify.json are the command's (``omniconv/verify.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from dse.cost.sqnr import DEFAULT_MIN_SQNR_DB, layer_sqnr_db
from dse.errors import InputError

__all__ = ["DATA_SEED", "VerifySettings", "VerifyCost", "golden_accumulations", "map_network",
           "select_layers", "buffer_bits", "estimate_cost", "verify_config"]

#: Seed of the random layer data (a run replays exactly; a ``--layers`` subset gets the same
#: data for its layers as the whole run).
DATA_SEED = 2024

#: Peak resident memory of a verification, ``BASE + PER_PE · PEs + PER_BIT · buffer_bits +
#: PER_ELEMENT · job elements`` bytes (:func:`estimate_cost`; a job word counts max(rows,
#: cols) elements, but the FFT tile buffer's, which hold one activation each).  ``BASE`` is
#: the command itself (numpy, onnx and Amaranth loaded) beside the Verilator build or the
#: simulator's own interpreter; ``PER_PE`` the command's elaborated datapath, which it
#: keeps while the simulator runs (2.5 GB for a 32×64 array with a Winograd unit, its PEs
#: instances of one module per row; 3.4 GB for 16×64 when the PEs were inlined);
#: ``PER_BIT`` the simulator's model holding the buffers (1.2 bytes a bit measured on 404
#: Mbit and 3.5 Gbit datapaths, rounded up: a C++ word per 32 bits of each buffer word);
#: ``PER_ELEMENT`` an element of a loaded or read buffer word (a list of up to max(rows,
#: cols) Python ints, and JSON text) in the command and in the simulator: 56 bytes, from
#: VGG16's 13 layers on a 32×64 array (2.59 M words of up to 64 elements, about 13.6 GB in
#: the simulator and the command together; 400 bytes a word said 4.5 GiB) and within 20 % of
#: torchvision's ResNet-18 on a 4×8 array (10.1 M words, 4.7 GB peak; this says 5.6 GB).
#: Generating and building the Verilog no longer grows with the buffers: memories carry no
#: per-word initialisers (``rtl/emit.py``).
MEMORY_BASE_BYTES = 2 ** 30
MEMORY_PER_PE_BYTES = 1.25 * 2 ** 20
MEMORY_PER_BUFFER_BIT = 1.5
MEMORY_PER_JOB_ELEMENT = 56.0
#: Wall time, ``BUILD + cycles · PEs / PE_CYCLES_PER_S + job_words · SECONDS_PER_WORD``
#: seconds on two shared cores (a rough guide): generating the Verilog and a Verilator build
#: not yet cached (about 110 s for a 16×16 array with a Winograd unit), then the simulation,
#: which runs at about 7 M PE-cycles a second (28 k cycles/s on 16×16, 110 k on 8×8).
BUILD_SECONDS = 120.0
PE_CYCLES_PER_S = 7.0e6
SECONDS_PER_WORD = 1.0e-4


@dataclass(frozen=True)
class VerifySettings:
    """What a verification takes from the run config (names, not the config's enums).

    Members
    -------
    name:
        The config's label (verify.json's ``config``).
    stem:
        The config file's stem (names the simulator run).
    source:
        The config file: bad pins are reported against it.
    network_source:
        The verification network as given to the loader: a network without convolutions is
        reported against it.
    board:
        The loaded :class:`dse.board.Board`.
    precision:
        Bits of activations, weights and outputs (8 or 16).
    objective:
        ``"latency"``, ``"energy"`` or ``"edp"``.
    algorithms, dataflows:
        The allowed sets, as names (``"im2col"``, ``"ws"``).
    layer_pins:
        Per-layer pins ``{layer: {"algorithm": name, "dataflow": name}}`` (either key may be
        missing).
    min_sqnr_db:
        The config's accuracy floor for approximate algorithms.
    densities:
        sparse_fft's kernel densities, ``{layer name or "*": D}`` (the config's
        ``sparsity`` and per-layer ``density``; empty: the search's default).
    """

    name: str
    stem: str
    source: str
    network_source: str
    board: object
    precision: int = 8
    objective: str = "latency"
    algorithms: tuple[str, ...] = ()
    dataflows: tuple[str, ...] = ()
    layer_pins: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    min_sqnr_db: float = DEFAULT_MIN_SQNR_DB
    densities: Mapping[str, float] = field(default_factory=dict)


def _padded_input(x, layer) -> np.ndarray:
    t, l, b, r = layer.padding
    return np.pad(np.asarray(x, dtype=np.int64), ((0, 0), (t, b), (l, r)))


def golden_accumulations(x, w, layer, plan) -> np.ndarray:
    """What the datapath's accumulations of ``layer``, as ``plan`` runs it, must equal.

    Exact convolution of the layer itself (:func:`sim.models.conv.conv2d`; the plan's own
    shapes may be a rewriting, e.g. host patches) -- im2col, kn2row and both Winograd
    variants are exact; for FFT the bit-accurate :func:`sim.models.fft.fft_conv` with the
    plan's widths and shift (:func:`sim.bench.conv_tb.fft_golden`); for sparse FFT
    :func:`sim.models.sparse_fft.sparse_fft_conv` with the compiler's pruning
    (:func:`sim.bench.conv_tb.sparse_golden`).
    """
    from sim.models.conv import conv2d

    if plan.algorithm == "sparse_fft":
        from sim.bench.conv_tb import sparse_golden

        return sparse_golden(x, w, plan, plan.fft_shift).acc
    if plan.algorithm == "fft":
        from sim.bench.conv_tb import fft_golden

        return fft_golden(x, w, plan, plan.fft_shift).acc
    return conv2d(_padded_input(x, layer), w, layer.stride[0], 0, layer.dilation[0],
                  layer.groups)


def map_network(network, params, settings: VerifySettings, log: Callable[[str], None] = print,
                program: bool = False, quant=None):
    """Map ``network`` on exactly ``params`` (every field pinned): the :class:`dse.design.Design`.

    With ``program`` (the overlay-top mode), the design's choices are then re-made by the
    program's cycles as ``omniconv dse`` makes them (``dse.compiler.timing.timed_design``);
    the datapath mode verifies the model's choices.
    Sparse FFT is left out of the allowed algorithms unless ``params`` has a sparse unit
    beside its FFT unit and this is the datapath mode (the overlay top has no sparse
    path); a per-layer sparse_fft pin then raises :class:`dse.errors.InputError`.  Pins of
    layers that the network does not have are ignored (the verification network may differ
    from the config's).
    ``quant``: a quantised network's records (``dse.importers.onnx_qdq.QuantizedNetwork``),
    for ``params`` that requantise per channel (``requant`` f32, which the design keeps).
    """
    from dse.compiler.timing import timed_design
    from dse.search import search

    sparse_path = bool(params.fft_size and params.sparse_lanes) and not program
    algorithms = [a for a in settings.algorithms if a != "sparse_fft" or sparse_path]
    if len(algorithms) < len(settings.algorithms):
        log("sparse_fft needs the datapath mode and a sparse unit beside the FFT unit: "
            "mapped without it")
    names = {layer.name for layer in network.layers if layer.op in ("conv", "fc")}
    pins = {}
    for name, pin in settings.layer_pins.items():
        if name not in names:
            continue
        if pin.get("algorithm") == "sparse_fft" and not sparse_path:
            raise InputError(settings.source, f"layers.{name}",
                             "sparse_fft runs on the datapath with a sparse unit beside the "
                             "FFT unit (sparse_lanes > 0, --mode datapath); omniconv verify "
                             "cannot run this pin here")
        pins[name] = {k: v for k, v in pin.items() if k in ("algorithm", "dataflow")}
    if not algorithms:
        algorithms = ["im2col"]
    design = search(network, settings.board, config=settings.name,
                    precision=settings.precision, objective=settings.objective,
                    algorithms=tuple(algorithms), dataflows=tuple(settings.dataflows),
                    hardware_pins=params.as_dict(), layer_pins=pins, source=settings.source,
                    min_sqnr_db=settings.min_sqnr_db, optimizer="grid",  # one point: all pinned
                    density=settings.densities or None)
    if not program:
        return design
    # the choices design.json holds: re-made by the program's cycles where the top runs it
    return timed_design(network, design, algorithms=tuple(algorithms),
                        dataflows=tuple(settings.dataflows), pins=pins, quant=quant,
                        latency=settings.board.dram_latency_cycles,
                        bandwidth=settings.board.dram_bandwidth_256(params.bus_bits))


def select_layers(network, design, names, source: str = "--layers") -> list[str]:
    """Check a ``--layers`` selection against the conv layers ``design`` maps; return it in
    network order.  An unknown name raises :class:`dse.errors.InputError` offering the
    nearest valid names; an empty selection is refused too."""
    from dse.errors import did_you_mean

    ops = {layer.name: layer.op for layer in network.layers}
    convs = [lp.name for lp in design.layers if ops.get(lp.name) == "conv"]
    wanted = [n.strip() for n in names if n.strip()]
    if not wanted:
        raise InputError(source, "", "must name at least one conv layer")
    for name in wanted:
        if name not in convs:
            others = {layer.name for layer in network.layers}
            what = "is not a conv layer" if name in others else "is not a layer"
            raise InputError(source, "", f"{name!r} {what} of {network.name}"
                             f"{did_you_mean(name, convs) or f' (conv layers: {_few(convs)})'}")
    return [n for n in convs if n in wanted]


def _few(names, n: int = 5) -> str:
    shown = ", ".join(names[:n])
    return shown + (f", … ({len(names)} in all)" if len(names) > n else "")


def _cases(network, design, params, settings: VerifySettings, seed: int,
           only=None) -> list:
    """One :class:`sim.bench.conv_tb.ConvCase` per conv layer (those named in ``only`` when it
    is given), random data of the precision drawn in network order for every layer, so a
    layer's data does not depend on the selection."""
    from dse.compiler import plan_conv
    from sim.bench.conv_tb import ConvCase

    from dse.cost.resources import overlay_limits
    from rtl.params import DatapathLimits

    by_name = {layer.name: layer for layer in network.layers}
    precision = settings.precision
    limits = DatapathLimits(**overlay_limits(params, precision))
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (precision - 1)), 1 << (precision - 1)
    cases = []
    for lp in design.layers:
        layer = by_name[lp.name]
        if layer.op != "conv":
            continue
        x = rng.integers(lo, hi, layer.in_shape)
        w = rng.integers(lo, hi, (layer.out_shape[0], layer.in_shape[0] // layer.groups,
                                  *layer.kernel))
        if only is not None and lp.name not in only:
            continue
        density = (lp.sparse or {}).get("density")
        try:    # refuse a combination the datapath cannot run before building anything
            plan_conv(layer, lp.algorithm, lp.dataflow, params, limits, precision=precision,
                      variant=lp.variant, density=density)
        except ValueError as exc:
            raise InputError(settings.source, f"layers.{lp.name}", str(exc)) from None
        cases.append(ConvCase(x, w, layer, lp.algorithm, lp.dataflow, name=lp.name,
                              variant=lp.variant, density=density))
    if not cases:
        raise InputError(settings.network_source, "", "has no convolution layer to verify")
    return cases


def _layer_entry(case, res, params, precision: int) -> dict:
    """verify.json's entry of one simulated layer: bit-exactness, cycles, SQNR if approximate."""
    from sim.models.conv import conv2d
    from sim.models.fft import sqnr_db
    from sim.models.requant import requantize

    plan, layer = res.plan, case.layer
    gold_acc = golden_accumulations(case.x, case.w, layer, plan)
    approximate = plan.spectral
    xp = _padded_input(case.x, layer)
    exact = None
    if precision == 8 and not approximate:
        from sim.reference import ort_conv_integer

        exact = ort_conv_integer(xp, case.w, layer.stride[0], 0, layer.dilation[0],
                                 layer.groups)
    inv = plan.invocations[0]
    gold_out = requantize(gold_acc, inv.registers["rq_mult"], inv.registers["rq_shift"],
                          precision, bool(inv.registers["rq_relu"]))
    bit_exact = bool(np.array_equal(res.accumulations, gold_acc)
                     and np.array_equal(res.outputs, gold_out)
                     and (exact is None or np.array_equal(res.accumulations, exact)))
    pred = plan.cycles(params.rows, params.cols)
    model = None
    unit_names = ["gemm_cycles", "front_cycles", "back_cycles", "requant_cycles"]
    if plan.algorithm == "sparse_fft":
        # the compiler knows the weights: its schedule's steps, not the explorer's estimate
        model, pred = pred["cycles"], plan.sparse_cycles(case.w)
        unit_names.append("smac_cycles")
    units = {k: {"predicted": pred[k], "measured": res.cycles[k]} for k in unit_names}
    entry = {"name": case.name, "algorithm": plan.algorithm,
             "variant": plan.variant if plan.algorithm in ("winograd", "fft", "sparse_fft")
             or plan.host_patches else "",
             "dataflow": plan.dataflow, "predicted_cycles": pred["cycles"],
             "measured_cycles": res.measured_cycles,
             "ideal_cycles": plan.ideal_cycles(params.rows, params.cols),
             "bit_exact": bit_exact,
             "invocations": len(plan.invocations), "units": units}
    if model is not None:
        entry["model_cycles"] = model
        entry["sparse"] = {"density": plan.density, "lanes": plan.sparse_lanes,
                           "banks": plan.sparse_banks,
                           "stall_cycles": res.cycles["smac_stall_cycles"],
                           "conflict": bool(res.cycles["smac_conflict"])}
    if approximate:
        scaled = res.accumulations
        if plan.spectral:
            scaled = scaled * 2.0 ** plan.fft_scale_exp(plan.fft_weights(case.w)[2])
            entry["fft_shift"] = plan.fft_shift
        entry["sqnr_db"] = round(sqnr_db(scaled, conv2d(xp, case.w)), 2)
        entry["predicted_sqnr_db"] = layer_sqnr_db(plan.variant, plan.kernel[0], precision)
    return entry


@dataclass(frozen=True)
class VerifyCost:
    """What a verification is estimated to take, before anything is built.

    Members
    -------
    buffer_bits:
        Storage bits of overlay.v's buffers (:func:`buffer_bits`).
    job_words:
        Words the testbench writes into and reads out of the buffers, all invocations.
    cycles:
        The cases' predicted datapath cycles (``ConvPlan.cycles``).
    memory_bytes:
        Estimated peak resident memory of the run (Verilog generation, Verilator build,
        simulation), by the fitted :data:`MEMORY_BASE_BYTES` formula.
    seconds:
        Estimated wall time (a Verilator build not yet cached included).
    largest:
        ``(layer name, words)`` of the layer that loads and reads the most buffer words.
    """

    buffer_bits: int
    job_words: int
    cycles: int
    memory_bytes: int
    seconds: float
    largest: tuple


def buffer_bits(limits: Mapping[str, int], params, precision: int = 8) -> int:
    """Storage bits of a datapath built with ``limits`` (``rtl.params.DatapathLimits`` fields)
    on ``params``, counted from the limits: the GEMM engine's double-buffered A and C
    halves (their capacities; C twice, for its two read ports; B is read in the weight
    buffer), the feature, weight, Winograd tile, FFT and kn2row buffers, and the output and
    accumulator buffers of one array-edge vector per word.  An approximation of what the generated RTL holds (it rounds
    depths to powers of two), good for the memory estimate."""
    from rtl.params import DatapathLimits

    lim = dict(limits)
    rows, cols = params.rows, params.cols
    edge = max(rows, cols)
    wm = params.winograd_m
    lanes = max(cols, wm * wm)                  # output words: a C vector or an m×m tile
    acc = params.acc_width
    a_words, _, c_words = DatapathLimits(**lim).engine_capacity(rows, cols)
    bits = 2 * (a_words * edge * rows * params.a_width
                + 2 * c_words * cols * acc)
    # feature words of ``rows`` channels, weight words of the array's edge
    bits += lim["feature_words"] * params.a_width * rows
    bits += lim["weight_words"] * params.b_width * edge
    if wm:
        bits += lim["tile_words"] * precision * (wm + 2) ** 2 * rows
        bits += wm * wm * c_words * cols * (acc + 9)      # the accumulation buffers
    if params.fft_size:
        bits += 2 * lim["spectral_words"] * 2 * acc
    bits += lim["out_words"] * (acc * cols + lanes * (precision + acc))
    return bits


def _job_size(plan, edge: int) -> tuple:
    """``(words, elements)`` written into and read out of the buffers for one planned layer
    on an array of ``edge`` = max(rows, cols): a word counts ``edge`` elements, an FFT
    tile-buffer word one (it holds one activation)."""
    if plan.bands:
        parts = [_job_size(band.plan, edge) for band in plan.bands]
        return sum(w for w, _ in parts), sum(e for _, e in parts)
    hp, wp = plan.padded_hw
    words = elements = 0
    for inv in plan.invocations:
        gm, gk, gn = inv.gemm
        regs = inv.registers
        if plan.algorithm == "winograd":
            wide = regs["a_words"]                  # tile words: one K-chunk each
        elif plan.spectral:
            wide = 0
            words += gm * gk * plan.fft_n ** 2      # one activation a word
            elements += gm * gk * plan.fft_n ** 2
        else:
            wide = hp * wp * regs["fe_c_words"]
        wide += inv.weight_words + 2 * inv.out_words
        words += wide
        elements += wide * edge
    return words, elements


def _fixed_bytes(params) -> float:
    """The estimate's memory that does not grow with the buffers: the command and its
    elaborated datapath."""
    return MEMORY_BASE_BYTES + MEMORY_PER_PE_BYTES * params.rows * params.cols


def estimate_cost(cases, params, precision: int = 8) -> VerifyCost:
    """Estimate memory and time of verifying ``cases`` on ``params``'s overlay.v (nothing is
    built): its buffers (:func:`dse.cost.resources.overlay_limits`), and the words and cycles
    of the compiler's plans within them."""
    from dse.compiler import plan_conv
    from dse.cost.resources import overlay_limits
    from rtl.params import DatapathLimits

    limits = overlay_limits(params, precision)
    plans = [plan_conv(c.layer, c.algorithm, c.dataflow, params, DatapathLimits(**limits),
                       precision=precision, variant=c.variant, density=c.density)
             for c in cases]
    bits = buffer_bits(limits, params, precision)
    edge = max(params.rows, params.cols)
    jobs = [_job_size(p, edge) for p in plans]
    per_layer = [(c.name, w) for c, (w, _) in zip(cases, jobs)]
    largest = max(per_layer, key=lambda item: item[1])
    words = sum(w for w, _ in jobs)
    cycles = sum(p.cycles(params.rows, params.cols)["cycles"] for p in plans)
    memory = int(_fixed_bytes(params) + MEMORY_PER_BUFFER_BIT * bits
                 + MEMORY_PER_JOB_ELEMENT * sum(e for _, e in jobs))
    seconds = (BUILD_SECONDS + cycles * params.rows * params.cols / PE_CYCLES_PER_S
               + words * SECONDS_PER_WORD)
    return VerifyCost(bits, words, cycles, memory, seconds, largest)


def _gib(n: float) -> str:
    gib = n / 2 ** 30
    return f"{gib:.2f} GiB" if gib < 1 else f"{gib:,.1f} GiB"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def verify_config(settings: VerifySettings, network, params, work_dir: Path, *,
                  log: Callable[[str], None] = print, seed: int = DATA_SEED,
                  layers=None, max_memory_bytes: int | None = None,
                  memory_hint: str = "") -> dict:
    """Run every conv layer of ``network`` on the datapath of ``params``; return verify.json.

    Parameters
    ----------
    settings:
        The run config's settings.
    network:
        The loaded verification network (:class:`dse.network.Network`).
    params:
        The hardware (:class:`rtl.params.OverlayParams`).
    work_dir:
        Folder of the simulator's job and result files (one per verification: two running
        at the same time must not share it).
    log:
        Called with each progress line.
    seed:
        Seed of the random layer data.
    layers:
        Names of the conv layers to verify (default: every one); see :func:`select_layers`.
    max_memory_bytes:
        Refuse (``InputError``) when :func:`estimate_cost` puts the run above this; ``None``
        checks nothing.
    memory_hint:
        How the caller lets the budget be raised (``--max-memory-gb``), for the message.

    Raises
    ------
    dse.errors.InputError
        A pin or layer the datapath cannot run, an unknown layer name, no conv layer, or a run
        estimated above ``max_memory_bytes``; nothing has been built.
    sim.runner.CocotbFailure
        If the simulation itself fails.
    """
    from dse.cost.resources import overlay_limits
    from sim.bench.conv_tb import DatapathConfig, rtl_conv_batch

    design = map_network(network, params, settings, log)
    precision = settings.precision
    only = None if layers is None else set(select_layers(network, design, layers))
    cases = _cases(network, design, params, settings, seed, only)
    cost = estimate_cost(cases, params, precision)
    log(f"estimate: {len(cases)} conv layers, buffers {cost.buffer_bits / 8 / 2 ** 20:.1f} MiB "
        f"(most data: {cost.largest[0]}), {cost.cycles:,} cycles, "
        f"{cost.job_words:,} words loaded; about {_gib(cost.memory_bytes)} of memory and "
        f"{_duration(cost.seconds)}")
    if max_memory_bytes is not None and cost.memory_bytes > max_memory_bytes:
        raise InputError(settings.network_source, "",
                         _too_big(cost, cases, params, precision, max_memory_bytes,
                                  memory_hint))
    # overlay.v's own buffers: the layers run as the compiler cuts them to fit
    cfg = DatapathConfig.make(params, overlay_limits(params, precision), precision=precision)
    limits = dict(cfg.limits)
    log(f"datapath {params.rows}x{params.cols}, a{params.a_width} b{params.b_width} "
        f"acc{params.acc_width}, winograd_m {params.winograd_m}; {len(cases)} conv layers; "
        f"generating and building it (cached in build/cache/verilator), then simulating")
    start = time.perf_counter()
    # One simulator run for every layer: generating the datapath (even to find its cached
    # build) takes as long as a small network's simulation, so it is done once.
    n = len(cases)
    timing: dict = {}
    results = rtl_conv_batch(cases, cfg, run_name=f"verify_{settings.stem}",
                             work_dir=Path(work_dir).resolve(),
                             progress=lambda name: log(f"  queued {name}"), timing=timing)
    log(f"  built in {timing['build_s']:.1f} s, simulated {n} layers in "
        f"{timing['simulate_s']:.1f} s; checking")
    entries = []
    for i, (case, res) in enumerate(zip(cases, results), 1):
        entry = _layer_entry(case, res, params, precision)
        entries.append(entry)
        rel = abs(entry["measured_cycles"] - entry["predicted_cycles"]) / entry["predicted_cycles"]
        log(f"  [{i}/{n}] {case.name}: {entry['algorithm']} {entry['variant'] or ''} "
            f"{entry['dataflow']} bit_exact={entry['bit_exact']} cycles "
            f"{entry['measured_cycles']} (model {entry['predicted_cycles']}, rel. error "
            f"{rel:.4f})")
    seconds = time.perf_counter() - start
    rels = []
    for e in entries:
        rels.append(abs(e["measured_cycles"] - e["predicted_cycles"]) / e["predicted_cycles"])
        for u in e["units"].values():
            if u["predicted"]:
                rels.append(abs(u["measured"] - u["predicted"]) / u["predicted"])
    return {"config": settings.name, "network": network.name, "hardware": params.as_dict(),
            "precision": precision, "limits": limits, "seed": seed,
            "layers": entries,
            "other_layers": [layer.name for layer in network.layers
                             if layer.op not in ("conv", "input")],
            "totals": {"predicted_cycles": sum(e["predicted_cycles"] for e in entries),
                       "measured_cycles": sum(e["measured_cycles"] for e in entries),
                       "max_rel_error": max(rels),
                       "all_bit_exact": all(e["bit_exact"] for e in entries)},
            "simulation_seconds": round(seconds, 2),
            "build_seconds": round(timing["build_s"], 2),
            "simulated_cycles_per_s": round(sum(e["measured_cycles"] for e in entries)
                                            / max(timing["simulate_s"], 1e-9))}


def _too_big(cost: VerifyCost, cases, params, precision: int, budget: int, hint: str) -> str:
    """The one-line refusal of a run estimated above ``budget``: what to narrow."""
    fitting = [c.name for c in cases
               if estimate_cost([c], params, precision).memory_bytes <= budget]
    raise_it = f", or raise {hint}" if hint else ""
    head = (f"verifying {len(cases)} conv layers on a {params.rows}x{params.cols} array needs "
            f"about {_gib(cost.memory_bytes)} of memory (overlay.v's buffers, "
            f"{cost.buffer_bits / 8 / 2 ** 20:.1f} MiB, and the layers' data; the most, "
            f"{cost.largest[0]}), more than the {_gib(budget)} allowed; ")
    if fitting:
        return (head + f"narrow with --layers (the {len(fitting)} of {len(cases)} layers that "
                f"fit alone include {', '.join(fitting[:3])}), or verify a smaller network "
                f"(verify.network) or array{raise_it}")
    return (head + f"no layer fits alone: verify a smaller network (verify.network) or "
            f"array{raise_it}")
