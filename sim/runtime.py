"""The host runtime: run a quantised network on the overlay, float32 in, float32 out.

What a host does with the accelerator, in four steps, each behind a :class:`Backend`:
load the program and the DRAM image, start it at the program's address, wait for ``done``
(or ``error``), read the memory back.  The first backend is :class:`VerilatorBackend`: the
overlay top of the design in Verilator with the DRAM model in RTL (``sim.overlay_sim``: no
Python on the per-cycle path; optional read latency and random back-pressure).  A board
backend implements the same :meth:`Backend.run` and needs nothing else changed.

:func:`run_quantized` does the rest around it, as onnxruntime would see it: the graph
input's QuantizeLinear on the host (``dse.compiler.qdq.quantize_input``), the network
compiled with the model's weights and quantisation (``compile_network(quant=...)``), the
run, and each graph output read back from its tensor and dequantised
(``dequantize_output``) into onnxruntime's shape and dtype.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

__all__ = ["Backend", "VerilatorBackend", "RunOutput", "check_input", "run_quantized"]


class Backend(Protocol):
    """Something that runs an overlay program: a simulation or a board."""

    def run(self, image: bytes, program: int, *, on_progress=None):
        """Load ``image`` as DRAM from address 0, start the program at byte ``program``,
        wait for the end and return a ``sim.overlay_sim.SimResult``-like object (``ok``,
        ``error_code``, ``error_index``, ``cycles``, ``memory``, ``trace``, ``seconds``)."""


class VerilatorBackend:
    """The overlay top of ``params`` and ``limits`` in Verilator (built once, cached under
    build/cache/verilator), its DRAM model ``mem_words`` bus words deep."""

    def __init__(self, params, limits, *, table_words: int, token_depth: int, mem_words: int,
                 work_dir: Path, latency: int = 0, stall: int = 0, bandwidth: int = 0):
        from rtl.overlay_top import OverlayTop
        from sim.overlay_sim import build_overlay_sim

        start = time.perf_counter()
        top = OverlayTop(params, limits, table_words=table_words, token_depth=token_depth)
        self.sim = build_overlay_sim(top, mem_words=mem_words)
        self.build_seconds = time.perf_counter() - start
        self.work_dir, self.latency, self.stall = Path(work_dir), latency, stall
        self.bandwidth = bandwidth

    def run(self, image: bytes, program: int, *, on_progress=None, timeout_cycles=None):
        from sim.overlay_sim import run_overlay_sim

        return run_overlay_sim(self.sim, image, program=program, latency=self.latency,
                               stall=self.stall, bandwidth=self.bandwidth, trace=True, work_dir=self.work_dir,
                               on_progress=on_progress,
                               timeout_cycles=timeout_cycles or 100_000_000)


@dataclass(frozen=True)
class RunOutput:
    """What :func:`run_quantized` returns: the graph outputs by ONNX name (float32, the
    model's shapes), run.json's document, and the backend's result."""

    outputs: dict
    doc: dict
    result: object


def check_input(x: np.ndarray, network) -> None:
    """Raise ValueError unless ``x`` is the graph input as onnxruntime takes it: float32 of
    shape [1, C, H, W]."""
    want = (1, *network.input_shape)
    if x.shape != want or x.dtype != np.float32:
        raise ValueError(f"must be float32 of shape {list(want)} (the graph input as "
                         f"onnxruntime takes it), not {x.dtype} of shape {list(x.shape)}")


def run_quantized(network, design, quant, x, work_dir: Path, *, output_shapes=None,
                  latency: int = 0, stall: int = 0, log: Callable[[str], None] = print,
                  backend: Backend | None = None, bandwidth: int = 0) -> RunOutput:
    """Run ``network`` (its QDQ records ``quant``) on ``design``'s overlay with the float32
    input ``x`` (the graph input as onnxruntime takes it, batch dimension 1 included).
    ``output_shapes``: the graph outputs' shapes by ONNX name (default ``[1, C, H, W]``, or
    ``[1, N]`` for a vector).

    Raises
    ------
    ValueError
        ``x`` has the wrong shape or dtype, or the overlay top cannot run the design
        (``compile_network``'s message, naming the layer).
    RuntimeError
        The overlay stopped with an error or did not finish.
    """
    from dse.compiler.network import compile_network, design_overlay, tensor_layers
    from dse.compiler.program import decode_output
    from dse.compiler.qdq import dequantize_output, from_stored, quantize_input, to_stored
    from dse.compiler.timing import program_timing
    from rtl.overlay_top import table_words_for
    from sim.overlay_sim import instruction_spans, layer_progress, mem_words_for

    x = np.asarray(x)
    check_input(x, network)
    q = quantize_input(x[0], quant.input.scale, quant.input.zero_point)
    lp, weights = compile_network(network, design, to_stored(q), quant=quant)
    names = list(weights)
    params, limits = design_overlay(design)
    timing = program_timing(lp, params, latency=latency, bandwidth=bandwidth)
    if backend is None:
        log(f"overlay top {params.rows}x{params.cols}, bus {params.bus_bits} bits: "
            f"{len(names)} layers, {len(lp.program)} instructions, DRAM image "
            f"{len(lp.image) / 2 ** 20:.1f} MiB; predicted {timing.total_cycles:,} cycles; "
            f"building it (cached in build/cache/verilator)")
        backend = VerilatorBackend(params, limits, table_words=table_words_for(lp.table_words),
                                   token_depth=lp.token_depth,
                                   mem_words=mem_words_for(len(lp.image), params.bus_bits),
                                   work_dir=work_dir, latency=latency, stall=stall,
                                   bandwidth=bandwidth)
    ends = {t.index: t.end for t in timing.layers}
    r = backend.run(lp.image, lp.program_addr,
                    on_progress=layer_progress(lp.program, lp.layer_of, names, ends, log))
    if not r.ok:
        raise RuntimeError(f"the overlay stopped with an error (code {r.error_code} at "
                           f"instruction {r.error_index}) or did not finish")
    memory = r.memory[:len(lp.image)]
    where = tensor_layers(network)
    outputs = {}
    for layer_name, onnx_name in quant.output_names.items():
        t = quant.outputs[layer_name]
        stored = decode_output(lp, memory, 0, layer=where[layer_name])
        values = dequantize_output(from_stored(stored), t.scale, t.zero_point)
        c, h, w = network[layer_name].out_shape
        shape = (output_shapes or {}).get(onnx_name) or ((1, c) if h == w == 1 else (1, c, h, w))
        outputs[onnx_name] = values.reshape(shape)
    spans = instruction_spans(lp.program, r.trace)
    layers = []
    for tl in timing.layers:
        mine = [i for i, li in enumerate(lp.layer_of) if li == tl.index]
        layers.append({"name": names[tl.index], "predicted_cycles": tl.cycles,
                       "end_cycle": max(spans[i][1] for i in mine),
                       "predicted_end_cycle": tl.end, "dram_bytes": tl.dram_bytes})
    doc = {"network": network.name, "hardware": params.as_dict(),
           "input": {"shape": list(x.shape), "scale": quant.input.scale,
                     "zero_point": quant.input.zero_point},
           "outputs": {name: list(v.shape) for name, v in outputs.items()},
           "layers": layers,
           "totals": {"measured_cycles": r.cycles, "predicted_cycles": timing.total_cycles,
                      "dram_bytes": sum(entry["dram_bytes"] for entry in layers),
                      "image_bytes": len(lp.image)},
           "dram": {"read_latency_cycles": latency, "stall_per_256": stall,
                    "bandwidth_bytes_per_cycle": bandwidth / 256 if bandwidth else None},
           "simulation_seconds": round(r.seconds, 2),
           "simulated_cycles_per_s": round(r.cycles / max(r.seconds, 1e-9))}
    return RunOutput(outputs, doc, r)
