"""Verification of a whole network on the overlay top, from DRAM: ``omniconv verify``'s mode
for designs the top runs.

:func:`verify_network_top` maps the verification network on the hardware
(:func:`sim.verify.map_network`), compiles it into one program and DRAM image
(:func:`dse.compiler.network.compile_network`, random input and weights from ``seed``),
builds the top (:class:`rtl.overlay_top.OverlayTop` at the design's buffer sizes, the
Verilator build cached) and runs the program on the DRAM model in RTL
(:mod:`sim.overlay_sim`; ``latency`` cycles of read latency and ``stall``/256 random
back-pressure), logging every instruction's start and end.  Then it checks

* every layer's output tensor, read back from the memory, against the golden tensors of
  :func:`sim.overlay_golden.golden_outputs` (the reference models on whole tensors,
  independent of the program);
* every layer's measured cycles against the design's (:func:`dse.compiler.timing.program_design`:
  the explorer's numbers for a design the top runs): each conv and fc layer's compute-engine
  cycles against its ``compute_cycles``, each layer's span against its ``cycles``, and the
  whole run (``start`` to ``done``) against ``total_cycles``.

A design the top cannot run (a Winograd or FFT choice, grouped convolutions, ...) raises
:class:`NotOnTop` with ``compile_network``'s reason before anything is built; the command
then verifies each conv layer on the datapath (:func:`sim.verify.verify_config`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

import numpy as np

from sim.verify import DATA_SEED, VerifySettings, map_network

__all__ = ["NotOnTop", "verify_network_top"]


class NotOnTop(ValueError):
    """The overlay top cannot run the design; the message says which layer and why."""


def _quantized_golden(model_path, network, x) -> dict:
    """Per program layer name its golden output in the stored form: the QDQ golden model
    (``sim.models.qdq_network``, onnxruntime's integer kernels, independent of the compiler)
    run on the float input ``x``, each quantised tensor mapped to the IR layer that produces
    it (``import_onnx``'s ``tensors``) and that layer to the program layer holding it."""
    from dse.compiler.network import tensor_layers
    from dse.importers.onnx_import import import_onnx
    from sim.models.qdq_network import run as run_qdq

    tensors: dict = {}
    import_onnx(model_path, tensors=tensors)
    values = run_qdq(str(model_path), x, intermediates=True)
    where = tensor_layers(network)
    gold = {}
    for name, v in values.items():
        ir = tensors.get(name)
        if ir is None or v.dtype != np.uint8 or where.get(ir, -1) < 0:
            continue
        gold.setdefault(where[ir], v.astype(np.int64).reshape(network[ir].out_shape) - 128)
    return gold


def verify_network_top(settings: VerifySettings, network, params, work_dir: Path, *,
                       log: Callable[[str], None] = print, seed: int = DATA_SEED,
                       latency: int = 0, stall: int = 0, quant=None, bandwidth: int = 0,
                       model_path=None) -> dict:
    """Run ``network`` on the overlay top of ``params``, from DRAM; return verify.json.

    With ``quant`` (a QDQ model's records, ``dse.importers.onnx_qdq.QuantizedNetwork``, of
    the ONNX file ``model_path``) the network runs with the model's weights and
    quantisation on a seeded random float32 input, and each layer is checked against the
    QDQ golden model (``sim.models.qdq_network``: onnxruntime's integer kernels).

    Raises
    ------
    NotOnTop
        If the top cannot run the design (nothing has been built).
    dse.errors.InputError
        A pin the mapping refuses (as :func:`sim.verify.map_network`).
    RuntimeError
        If the simulation itself fails.
    """
    from dse.compiler.network import compile_network, design_overlay
    from dse.compiler.program import Concat, PoolLayer, decode_output
    from dse.compiler.timing import program_design, program_timing
    from rtl.isa import ComputeTile, PoolTile
    from rtl.overlay_top import OverlayTop, table_words_for
    from sim.overlay_golden import golden_outputs
    from sim.overlay_sim import (build_overlay_sim, instruction_spans, layer_progress,
                                 mem_words_for, run_overlay_sim)

    design = map_network(network, params, settings, log, program=True, quant=quant)
    precision = settings.precision
    rng = np.random.default_rng(seed)
    if quant is not None:
        from dse.compiler.qdq import quantize_input, to_stored

        x_float = rng.normal(0, 1, (1, *network.input_shape)).astype(np.float32)
        x = to_stored(quantize_input(x_float[0], quant.input.scale, quant.input.zero_point))
    else:
        x = rng.integers(-(1 << (precision - 1)), 1 << (precision - 1), network.input_shape)
    try:
        lp, weights = compile_network(network, design, x, seed=seed + 1, quant=quant)
    except ValueError as exc:
        raise NotOnTop(str(exc)) from None
    names = list(weights)
    timed = program_design(network, design, latency=latency, quant=quant, bandwidth=bandwidth)
    top_params, limits = design_overlay(design)
    timing = program_timing(lp, top_params, latency=latency, bandwidth=bandwidth)
    mem_words = mem_words_for(len(lp.image), top_params.bus_bits)
    log(f"overlay top {params.rows}x{params.cols}, bus {top_params.bus_bits} bits: "
        f"{len(names)} layers, {len(lp.program)} instructions, DRAM image "
        f"{len(lp.image) / 2 ** 20:.1f} MiB; predicted {timed.total_cycles:,} cycles; "
        f"generating and building it (cached in build/cache/verilator)")
    start = time.perf_counter()
    top = OverlayTop(top_params, limits, precision, table_words=table_words_for(lp.table_words),
                     token_depth=lp.token_depth)
    sim = build_overlay_sim(top, mem_words=mem_words)
    build_s = time.perf_counter() - start
    rate = (f"{bandwidth / 256:g} bytes a cycle" if bandwidth else
            f"a {top_params.bus_bits}-bit beat a cycle")
    log(f"  built in {build_s:.1f} s; simulating (DRAM read latency {latency}, {rate}, "
        f"back-pressure {stall}/256)")

    ends = {t.index: t.end for t in timing.layers}
    progress = layer_progress(lp.program, lp.layer_of, names, ends, log)

    r = run_overlay_sim(sim, lp.image, program=lp.program_addr, latency=latency, stall=stall,
                        bandwidth=bandwidth,
                        trace=True, work_dir=Path(work_dir), on_progress=progress,
                        timeout_cycles=max(10 * timed.total_cycles, 1_000_000))
    sim_s = r.seconds
    if not r.ok:
        raise RuntimeError(f"the overlay top stopped with an error (code {r.error_code} at "
                           f"instruction {r.error_index}) or timed out")
    spans = instruction_spans(lp.program, r.trace)
    if quant is not None:
        by_index = _quantized_golden(model_path, network, x_float)
        gold = {names[i]: g for i, g in by_index.items() if i < len(names)}
    else:
        gold = golden_outputs(lp, x, list(weights.values()), names)
    memory = r.memory[:len(lp.image)]
    by_name = {p.name: p for p in timed.layers}
    others = {o["name"]: o for o in timed.other_layers}
    layers, other, rels = [], [], []
    previous = 0
    for t in timing.layers:
        name = names[t.index]
        mine = [i for i, li in enumerate(lp.layer_of) if li == t.index]
        end = max(spans[i][1] for i in mine)
        measured_layer = end - previous
        previous = end
        measured = sum(spans[i][1] - spans[i][0] for i in mine
                       if isinstance(lp.program[i], (ComputeTile, PoolTile)))
        out = decode_output(lp, memory, 0, layer=t.index)
        exact = bool(np.array_equal(out, gold[name]))
        plan = lp.plans[t.index]
        entry = {"name": name, "bit_exact": exact,
                 "measured_cycles": measured, "predicted_cycles": t.compute_cycles,
                 "measured_layer_cycles": measured_layer, "predicted_layer_cycles": t.cycles,
                 "dram_bytes": t.dram_bytes}
        if not exact:
            entry["mismatches"] = int((out != gold[name]).sum())
        rel = abs(measured - t.compute_cycles) / max(t.compute_cycles, 1)
        entry["rel_error"] = round(rel, 6)
        if isinstance(plan, (PoolLayer, Concat)):
            op = "concat" if isinstance(plan, Concat) else plan.mode
            other.append({**entry, "op": others.get(name, {}).get("op", op)})
        else:
            p = by_name[name]
            entry = {"name": name, "algorithm": p.algorithm, "variant": p.variant,
                     "dataflow": p.dataflow, **{k: v for k, v in entry.items()
                                                if k != "name"},
                     "ideal_cycles": int(plan.ideal_cycles(params.rows, params.cols))}
            layers.append(entry)
            rels.append(rel)
        log(f"  {name}: bit_exact={exact} cycles {measured:,} (model {t.compute_cycles:,}), "
            f"layer {measured_layer:,} (model {t.cycles:,})")
    for li, plan in enumerate(lp.plans):          # concatenations written wholly in place
        if isinstance(plan, Concat) and not plan.luts:
            out = decode_output(lp, memory, 0, layer=li)
            other.append({"name": names[li], "op": "concat",
                          "bit_exact": bool(np.array_equal(out, gold[names[li]])),
                          "measured_cycles": 0, "predicted_cycles": 0})
    total_rel = abs(r.cycles - timed.total_cycles) / timed.total_cycles
    layer_rels = [abs(e["measured_layer_cycles"] - e["predicted_layer_cycles"])
                  / max(e["predicted_layer_cycles"], 1) for e in layers + other
                  if e["predicted_cycles"]]
    all_exact = all(e["bit_exact"] for e in layers + other)
    return {"config": settings.name, "network": network.name, "mode": "overlay_top",
            "hardware": params.as_dict(), "precision": precision,
            "limits": dataclasses.asdict(limits),
            "seed": seed, "dram": {"read_latency_cycles": latency, "stall_per_256": stall,
                                   "bandwidth_bytes_per_cycle":
                                       bandwidth / 256 if bandwidth else None,
                                   "image_bytes": len(lp.image)},
            "layers": layers,
            "other_layers": [layer.name for layer in network.layers
                             if layer.op not in ("conv", "fc", "input")],
            "other_layer_results": other,
            "totals": {"predicted_cycles": timed.total_cycles,
                       "measured_cycles": r.cycles,
                       "total_rel_error": round(total_rel, 6),
                       "max_rel_error": round(max(rels + [total_rel]), 6),
                       "max_layer_rel_error": round(max(layer_rels, default=0.0), 6),
                       "all_bit_exact": all_exact},
            "simulation_seconds": round(sim_s, 2),
            "build_seconds": round(build_s, 2),
            "simulated_cycles_per_s": round(r.cycles / max(sim_s, 1e-9))}
