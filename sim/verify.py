"""Verification of a network on the conv datapath in Verilator: the work of ``omniconv verify``.

Given the hardware (:class:`rtl.params.OverlayParams`), the verification network and the run
config's settings (:class:`VerifySettings`), :func:`verify_config`

1. maps the network anew on exactly that hardware (every OverlayParams field pinned) with the
   allowed algorithms and dataflows, objective and the per-layer pins whose names match
   (:func:`map_network`).  Sparse FFT has no datapath, so it is taken out of the allowed set
   (layers fall back as DESIGN.md says; a per-layer sparse_fft pin is refused);
2. has the compiler (:mod:`dse.compiler`) plan every conv layer; one datapath is generated for
   the hardware with buffers sized for the largest plan, built once by Verilator (cached), and
   every layer runs through it with random data (seeded) loaded into its buffers
   (:func:`sim.bench.conv_tb.rtl_conv_batch`);
3. compares each layer's accumulations with exact convolution (numpy int64; for int8 also
   onnxruntime's ConvInteger) -- or, for the approximate FFT, with its bit-accurate golden
   model in :mod:`sim.models` (:func:`golden_accumulations`), whose SQNR against exact
   convolution is reported -- and its requantised outputs with the numpy requantiser;
   measured cycles with ``ConvPlan.cycles`` (:mod:`dse.lowering`, the explorer's own
   formula).  FFT layers' spectral
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

from dse.errors import InputError

__all__ = ["DATA_SEED", "VerifySettings", "golden_accumulations", "map_network",
           "verify_config"]

#: Seed of the random layer data (a run replays exactly).
DATA_SEED = 2024


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


def golden_accumulations(x, w, plan) -> np.ndarray:
    """What the datapath's accumulations of a planned layer must equal.

    Exact convolution (:func:`sim.models.conv.conv2d`) -- im2col, kn2row and both Winograd
    variants are exact; for FFT the bit-accurate :func:`sim.models.fft.fft_conv` with the
    plan's widths and shift (:func:`sim.bench.conv_tb.fft_golden`).
    """
    from sim.models.conv import conv2d

    if plan.algorithm == "fft":
        from sim.bench.conv_tb import fft_golden

        return fft_golden(x, w, plan, plan.fft_shift).acc
    pads = plan.pads
    xp = np.pad(np.asarray(x, dtype=np.int64), ((0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    return conv2d(xp, w, plan.stride, 0, plan.dilation, plan.groups)


def map_network(network, params, settings: VerifySettings, log: Callable[[str], None] = print):
    """Map ``network`` on exactly ``params`` (every field pinned): the :class:`dse.design.Design`.

    Sparse FFT is left out of the allowed algorithms (it has no datapath); a per-layer
    sparse_fft pin raises :class:`dse.errors.InputError`.  Pins of layers that the network
    does not have are ignored (the verification network may differ from the config's).
    """
    from dse.search import search

    algorithms = [a for a in settings.algorithms if a != "sparse_fft"]
    if len(algorithms) < len(settings.algorithms):
        log("sparse_fft has no conv datapath: mapped without it")
    names = {layer.name for layer in network.layers if layer.op in ("conv", "fc")}
    pins = {}
    for name, pin in settings.layer_pins.items():
        if name not in names:
            continue
        if pin.get("algorithm") == "sparse_fft":
            raise InputError(settings.source, f"layers.{name}",
                             "sparse_fft has no conv datapath; omniconv verify cannot run "
                             "this pin")
        pins[name] = {k: v for k, v in pin.items() if k in ("algorithm", "dataflow")}
    if not algorithms:
        algorithms = ["im2col"]
    return search(network, settings.board, config=settings.name,
                  precision=settings.precision, objective=settings.objective,
                  algorithms=tuple(algorithms), dataflows=tuple(settings.dataflows),
                  hardware_pins=params.as_dict(), layer_pins=pins, source=settings.source)


def _cases(network, design, params, settings: VerifySettings, seed: int) -> list:
    """One :class:`sim.bench.conv_tb.ConvCase` per conv layer, random data of the precision."""
    from dse.compiler import plan_conv
    from sim.bench.conv_tb import ConvCase

    by_name = {layer.name: layer for layer in network.layers}
    precision = settings.precision
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (precision - 1)), 1 << (precision - 1)
    cases = []
    for lp in design.layers:
        layer = by_name[lp.name]
        if layer.op != "conv":
            continue
        try:    # refuse a combination the datapath cannot run before building anything
            plan_conv(layer, lp.algorithm, lp.dataflow, params, None, precision=precision)
        except ValueError as exc:
            raise InputError(settings.source, f"layers.{lp.name}", str(exc)) from None
        x = rng.integers(lo, hi, layer.in_shape)
        w = rng.integers(lo, hi, (layer.out_shape[0], layer.in_shape[0] // layer.groups,
                                  *layer.kernel))
        cases.append(ConvCase(x, w, layer, lp.algorithm, lp.dataflow, name=lp.name))
    if not cases:
        raise InputError(settings.network_source, "", "has no convolution layer to verify")
    return cases


def _layer_entry(case, res, params, precision: int) -> dict:
    """verify.json's entry of one simulated layer: bit-exactness, cycles, SQNR if approximate."""
    from sim.models.conv import conv2d
    from sim.models.fft import sqnr_db
    from sim.models.requant import requantize

    plan = res.plan
    gold_acc = golden_accumulations(case.x, case.w, plan)
    approximate = plan.algorithm == "fft"
    pads = plan.pads
    xp = np.pad(case.x, ((0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    exact = None
    if precision == 8 and not approximate:
        from sim.reference import ort_conv_integer

        exact = ort_conv_integer(xp, case.w, plan.stride, 0, plan.dilation, plan.groups)
    inv = plan.invocations[0]
    gold_out = requantize(gold_acc, inv.registers["rq_mult"], inv.registers["rq_shift"],
                          precision, bool(inv.registers["rq_relu"]))
    bit_exact = bool(np.array_equal(res.accumulations, gold_acc)
                     and np.array_equal(res.outputs, gold_out)
                     and (exact is None or np.array_equal(res.accumulations, exact)))
    pred = plan.cycles(params.rows, params.cols)
    units = {k: {"predicted": pred[k], "measured": res.cycles[k]}
             for k in ("gemm_cycles", "front_cycles", "back_cycles", "requant_cycles")}
    entry = {"name": case.name, "algorithm": plan.algorithm,
             "variant": plan.variant if plan.algorithm in ("winograd", "fft") else "",
             "dataflow": plan.dataflow, "predicted_cycles": pred["cycles"],
             "measured_cycles": res.measured_cycles, "bit_exact": bit_exact,
             "invocations": len(plan.invocations), "units": units}
    if approximate:
        scaled = res.accumulations
        if plan.algorithm == "fft":
            scaled = scaled * 2.0 ** plan.fft_scale_exp(plan.fft_weights(case.w)[2])
            entry["fft_shift"] = plan.fft_shift
        entry["sqnr_db"] = round(sqnr_db(scaled, conv2d(xp, case.w)), 2)
    return entry


def verify_config(settings: VerifySettings, network, params, work_dir: Path, *,
                  log: Callable[[str], None] = print, seed: int = DATA_SEED) -> dict:
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

    Raises
    ------
    dse.errors.InputError
        A pin or layer the datapath cannot run, or no conv layer; nothing has been built.
    sim.runner.CocotbFailure
        If the simulation itself fails.
    """
    from sim.bench.conv_tb import rtl_conv_batch, sized_config

    design = map_network(network, params, settings, log)
    precision = settings.precision
    cases = _cases(network, design, params, settings, seed)
    # Powers of two: verifications of similar networks then share one cached build.
    cfg = sized_config(cases, params, precision=precision)
    limits = dict(cfg.limits)
    log(f"datapath {params.rows}x{params.cols}, a{params.a_width} b{params.b_width} "
        f"acc{params.acc_width}, winograd_m {params.winograd_m}; {len(cases)} conv layers; "
        f"building (cached) and simulating")
    start = time.perf_counter()
    results = rtl_conv_batch(cases, cfg, run_name=f"verify_{settings.stem}",
                             work_dir=Path(work_dir).resolve(),
                             progress=lambda n: log(f"  queued {n}"))
    layers = []
    for case, res in zip(cases, results):
        entry = _layer_entry(case, res, params, precision)
        layers.append(entry)
        rel = abs(entry["measured_cycles"] - entry["predicted_cycles"]) / entry["predicted_cycles"]
        log(f"  {case.name}: {entry['algorithm']} {entry['variant'] or ''} {entry['dataflow']} "
            f"bit_exact={entry['bit_exact']} cycles {entry['measured_cycles']} "
            f"(model {entry['predicted_cycles']}, rel. error {rel:.4f})")
    rels = []
    for e in layers:
        rels.append(abs(e["measured_cycles"] - e["predicted_cycles"]) / e["predicted_cycles"])
        for u in e["units"].values():
            if u["predicted"]:
                rels.append(abs(u["measured"] - u["predicted"]) / u["predicted"])
    return {"config": settings.name, "network": network.name, "hardware": params.as_dict(),
            "precision": precision, "limits": limits, "seed": seed,
            "layers": layers,
            "other_layers": [layer.name for layer in network.layers
                             if layer.op not in ("conv", "input")],
            "totals": {"predicted_cycles": sum(e["predicted_cycles"] for e in layers),
                       "measured_cycles": sum(e["measured_cycles"] for e in layers),
                       "max_rel_error": max(rels),
                       "all_bit_exact": all(e["bit_exact"] for e in layers)},
            "simulation_seconds": round(time.perf_counter() - start, 2)}
