"""``omniconv verify CONFIG [--out DIR]``: run the conv datapath in Verilator, write verify.json.

Steps:

1. The hardware: ``DIR/design.json``'s OverlayParams when that file is newer than the
   config's inputs (:func:`omniconv.flow.is_stale`), else a fresh search of the config.
2. The verification network (``verify.network``, default the config's network) is mapped anew
   on exactly that hardware (every OverlayParams field pinned) with the config's allowed
   algorithms and dataflows, objective and the per-layer pins whose names match.  Sparse FFT
   has no datapath, so it is taken out of the allowed set (layers fall back as DESIGN.md
   says; a per-layer sparse_fft pin is refused with exit status 2).
3. The compiler (:mod:`dse.compiler`) plans every conv layer; one datapath is generated for the
   hardware with buffers sized for the largest plan, built once by Verilator (cached), and
   every layer runs through it with random data (seeded) loaded into its buffers.
4. Each layer's accumulations are compared with exact convolution (numpy int64; for int8 also
   onnxruntime's ConvInteger) -- or, for the approximate algorithms (Winograd F(4×4,3×3),
   FFT), with their bit-accurate golden models, whose SQNR against exact convolution is
   reported -- and its requantised outputs with the numpy requantiser; measured cycles with
   ``ConvPlan.cycles`` (:mod:`dse.lowering`, the explorer's own formula).  FFT layers' spectral requantisation shift is calibrated on
   the layer's data (the smallest that saturates nothing).
5. ``DIR/verify.json`` is written atomically.  Exit 0 when every layer is bit-exact, 1 when
   any is not, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from dse.errors import InputError

__all__ = ["add_arguments", "run", "verify_config", "overlay_limits", "write_overlay",
           "golden_accumulations"]

#: Seed of the random layer data (a run replays exactly).
DATA_SEED = 2024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``omniconv verify``."""
    parser.add_argument("config", metavar="CONFIG",
                        help="run config: a path, or a name in configs/ (with or without .yaml)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="output folder (default: build/<config stem>)")


#: Largest buffer (words) overlay.v gets: Amaranth writes every memory word's initial value
#: into the Verilog, so KiB-sized one-element-per-word buffers of a big board would make a
#: file of hundreds of MB that takes hours to generate (measured: the zcu102 VGG-16 point's
#: ~900k words did not finish in 30 minutes).  The overlay top with BRAM-wide words replaces
#: this datapath later.
OVERLAY_MAX_WORDS = 4096


def overlay_limits(params, precision: int = 8) -> dict:
    """Buffer sizes of the datapath written as overlay.v, from the OverlayParams.

    One array tile of M and N (the larger side of the array), K what the accumulator holds
    (at most 64), and the feature, weight, tile and output buffers from the OverlayParams'
    KiB, each capped at :data:`OVERLAY_MAX_WORDS` words; the FFT path's tile and spectrum
    buffers like the feature buffer, and room for its 3·N² GEMMs.
    """
    side = max(params.rows, params.cols)
    act_words = params.act_buffer_kib * 1024 * 8 // params.a_width
    weight_words = params.weight_buffer_kib * 1024 * 8 // params.b_width
    out_words = params.out_buffer_kib * 1024 * 8 // params.acc_width
    max_k = min(64, 1 << max(0, params.acc_width - params.a_width - params.b_width))
    cap = lambda v: max(2, min(v, OVERLAY_MAX_WORDS))  # noqa: E731
    return dict(max_m=side, max_k=max_k, max_n=side, feature_words=cap(act_words),
                weight_words=cap(weight_words), tile_words=cap(act_words),
                out_words=cap(min(out_words, side * side)),
                max_gemms=max(49, 3 * params.fft_size ** 2), spectral_words=cap(act_words))


def write_overlay(design, board, out_dir: Path, precision: int | None = None) -> Path:
    """Write the conv datapath for ``design``'s hardware as ``out_dir/overlay.v``.

    ``precision`` defaults to the design's.  Returns the path.
    """
    from dse.design import write_text_atomic
    from rtl.conv_datapath import generate_verilog
    from rtl.params import DatapathLimits, OverlayParams

    if precision is None:
        precision = int(getattr(design, "precision", 8) or 8)
    params = OverlayParams(**design.hardware)
    limits = DatapathLimits(**overlay_limits(params, precision))
    text = generate_verilog(params, limits, precision=precision, target=board.family,
                            name="overlay")
    path = Path(out_dir) / "overlay.v"
    write_text_atomic(path, text)
    return path


def golden_accumulations(x, w, plan) -> np.ndarray:
    """What the datapath's accumulations must equal: exact convolution; for Winograd
    F(4×4,3×3) its golden model (``sim/models/winograd.py``) summed over the 3×3 pieces
    before the one rounding output transform; for FFT the bit-accurate
    ``sim.models.fft.fft_conv`` with the plan's widths and shift."""
    from sim.models.conv import conv2d

    if plan.algorithm == "fft":
        from sim.bench.conv_tb import fft_golden

        return fft_golden(x, w, plan, plan.fft_shift).acc
    pads = plan.pads
    if plan.algorithm != "winograd" or plan.winograd_m == 2:
        xp = np.pad(np.asarray(x, dtype=np.int64),
                    ((0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
        return conv2d(xp, w, plan.stride, 0, plan.dilation, plan.groups)
    from sim.models import winograd as wg

    m, f = plan.winograd_m, plan.frac_bits
    k = plan.kernel[0]
    p = -(-k // 3)
    oh, ow = plan.out_shape[1:]
    th, tw = -(-oh // m), -(-ow // m)
    t = m + 2
    c = x.shape[0]
    full = np.zeros((c, th * m + 3 * (p - 1) + t, tw * m + 3 * (p - 1) + t), dtype=np.int64)
    hh = min(x.shape[1], full.shape[1] - pads[0])
    ww = min(x.shape[2], full.shape[2] - pads[1])
    full[:, pads[0]:pads[0] + hh, pads[1]:pads[1] + ww] = np.asarray(x)[:, :hh, :ww]
    big = np.zeros((w.shape[0], c, 3 * p, 3 * p), dtype=np.int64)
    big[:, :, :k, :k] = w
    acc = 0
    for a in range(p):
        for b in range(p):
            iy = (np.arange(th) * m + 3 * a)[:, None] + np.arange(t)[None, :]
            ix = (np.arange(tw) * m + 3 * b)[:, None] + np.arange(t)[None, :]
            d = full[:, iy[:, None, :, None], ix[None, :, None, :]]
            v = wg.input_transform(d, m)
            u = wg.transform_weights(big[:, :, 3 * a:3 * a + 3, 3 * b:3 * b + 3], m, f)
            acc = acc + np.einsum("nckl,cijkl->nijkl", u, v)
    y = wg.output_transform(acc, m, f)
    n = w.shape[0]
    return y.transpose(0, 1, 3, 2, 4).reshape(n, th * m, tw * m)[:, :oh, :ow]


def _hardware(config, out_dir: Path, log):
    from dse.design import read_design
    from omniconv.flow import explore, is_stale
    from rtl.params import OverlayParams

    design_path = out_dir / "design.json"
    if not is_stale(design_path, config):
        log(f"hardware from {design_path}")
        return OverlayParams(**read_design(design_path).hardware)
    log("design.json missing or stale: searching the hardware")
    return OverlayParams(**explore(config, progress=False).hardware)


def _map(config, network, params, log):
    from dse.search import search

    algorithms = [a.value for a in config.algorithms if a.value != "sparse_fft"]
    if len(algorithms) < len(config.algorithms):
        log("sparse_fft has no conv datapath: mapped without it")
    names = {layer.name for layer in network.layers if layer.op in ("conv", "fc")}
    pins = {}
    for name, pin in config.layers.items():
        if name not in names:
            continue
        if pin.algorithm is not None and pin.algorithm.value == "sparse_fft":
            raise InputError(config.path, f"layers.{name}",
                             "sparse_fft has no conv datapath; omniconv verify cannot run "
                             "this pin")
        pins[name] = {k: getattr(pin, k).value for k in ("algorithm", "dataflow")
                      if getattr(pin, k) is not None}
    if not algorithms:
        algorithms = ["im2col"]
    return search(network, config.board, config=config.name, precision=config.precision,
                  objective=config.objective, algorithms=tuple(algorithms),
                  dataflows=tuple(d.value for d in config.dataflows),
                  hardware_pins=params.as_dict(), layer_pins=pins, source=str(config.path))


def verify_config(config, out_dir: Path, *, log=print, seed: int = DATA_SEED) -> dict:
    """Run the whole verification of ``config``; return the verify.json document."""
    from dse.compiler import plan_conv
    from dse.load import load_network
    from sim.bench.conv_tb import ConvCase, rtl_conv_batch, sized_config
    from sim.models.fft import sqnr_db
    from sim.models.requant import requantize

    params = _hardware(config, out_dir, log)
    network = load_network(config.verify_network_spec, config.base_dir)
    design = _map(config, network, params, log)
    by_name = {layer.name: layer for layer in network.layers}
    precision = config.precision
    cases = []
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (precision - 1)), 1 << (precision - 1)
    for lp in design.layers:
        layer = by_name[lp.name]
        if layer.op != "conv":
            continue
        try:    # refuse a combination the datapath cannot run before building anything
            plan_conv(layer, lp.algorithm, lp.dataflow, params, None, precision=precision)
        except ValueError as exc:
            raise InputError(config.path, f"layers.{lp.name}", str(exc)) from None
        x = rng.integers(lo, hi, layer.in_shape)
        w = rng.integers(lo, hi, (layer.out_shape[0], layer.in_shape[0] // layer.groups,
                                  *layer.kernel))
        cases.append(ConvCase(x, w, layer, lp.algorithm, lp.dataflow, name=lp.name))
    if not cases:
        raise InputError(config.verify_network_spec, "", "has no convolution layer to verify")
    # Powers of two: verifications of similar networks then share one cached build.
    cfg = sized_config(cases, params, precision=precision)
    limits = dict(cfg.limits)
    log(f"datapath {params.rows}x{params.cols}, a{params.a_width} b{params.b_width} "
        f"acc{params.acc_width}, winograd_m {params.winograd_m}; {len(cases)} conv layers; "
        f"building (cached) and simulating")
    start = time.perf_counter()
    # the simulator's files beside verify.json: verifications into other folders may run at
    # the same time
    results = rtl_conv_batch(cases, cfg, run_name=f"verify_{config.stem}",
                             work_dir=out_dir.resolve() / "sim",
                             progress=lambda n: log(f"  queued {n}"))
    layers = []
    for case, res in zip(cases, results):
        plan = res.plan
        gold_acc = golden_accumulations(case.x, case.w, plan)
        approximate = plan.algorithm == "fft" or (plan.algorithm == "winograd"
                                                  and plan.winograd_m == 4)
        exact = None
        if precision == 8 and not approximate:
            from sim.reference import ort_conv_integer

            pads = plan.pads
            xp = np.pad(case.x, ((0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
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
            from sim.models.conv import conv2d

            pads = plan.pads
            xp = np.pad(case.x, ((0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
            scaled = res.accumulations
            if plan.algorithm == "fft":
                scaled = scaled * 2.0 ** plan.fft_scale_exp(plan.fft_weights(case.w)[2])
                entry["fft_shift"] = plan.fft_shift
            entry["sqnr_db"] = round(sqnr_db(scaled, conv2d(xp, case.w)), 2)
        layers.append(entry)
        rel = abs(entry["measured_cycles"] - entry["predicted_cycles"]) / entry["predicted_cycles"]
        log(f"  {case.name}: {plan.algorithm} {entry['variant'] or ''} {plan.dataflow} "
            f"bit_exact={bit_exact} cycles {entry['measured_cycles']} "
            f"(model {entry['predicted_cycles']}, rel. error {rel:.4f})")
    rels = []
    for e in layers:
        rels.append(abs(e["measured_cycles"] - e["predicted_cycles"]) / e["predicted_cycles"])
        for u in e["units"].values():
            if u["predicted"]:
                rels.append(abs(u["measured"] - u["predicted"]) / u["predicted"])
    doc = {"config": config.name, "network": network.name, "hardware": params.as_dict(),
           "precision": precision, "limits": limits, "seed": seed,
           "layers": layers,
           "totals": {"predicted_cycles": sum(e["predicted_cycles"] for e in layers),
                      "measured_cycles": sum(e["measured_cycles"] for e in layers),
                      "max_rel_error": max(rels),
                      "all_bit_exact": all(e["bit_exact"] for e in layers)},
           "simulation_seconds": round(time.perf_counter() - start, 2)}
    return doc


def run(args) -> int:
    """Run ``omniconv verify``: exit 0 all bit-exact, 1 any not, 2 bad input."""
    from dse.design import write_text_atomic
    from omniconv.config import load_config

    config = load_config(args.config)
    out_dir = Path(args.out) if args.out else config.out_dir

    def log(text):
        print(text, file=sys.stderr, flush=True)

    doc = verify_config(config, out_dir, log=log)
    path = out_dir / "verify.json"
    write_text_atomic(path, json.dumps(doc, indent=1) + "\n")
    t = doc["totals"]
    print(f"wrote {path}: {len(doc['layers'])} layers, all_bit_exact={t['all_bit_exact']}, "
          f"cycles measured {t['measured_cycles']} / predicted {t['predicted_cycles']}, "
          f"max_rel_error {t['max_rel_error']:.4f}")
    return 0 if t["all_bit_exact"] else 1
