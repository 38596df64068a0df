"""Per-layer cycles and DRAM bytes of a network program, from the compiler's own schedule.

:func:`program_timing` times a :class:`dse.compiler.program.NetworkProgram` the way the
overlay top runs it: every instruction's cycles from
:func:`dse.compiler.program.instruction_cycles` (the DMA formula of :mod:`dse.cost.dma` with
the DRAM's read latency, the datapath's cycles of :mod:`dse.lowering`, the pool engine's),
the four engines' timeline from :func:`dse.compiler.asm.schedule` at the controller's
``DISPATCH_LATENCY``, and the ``START_CYCLES`` (plus the read latency) from ``start`` to the
first dispatch.  These are the numbers ``omniconv verify`` measures in Verilator.

The layers of a program run one after the other (a layer's first load waits for the
previous layer's last store), so a layer's ``cycles`` are the cycles from the previous
layer's last instruction's end to its own (the first layer's count from ``start``, the
register-image loads before it included), and they add up to the total less ``finish``.

* ``compute_cycles``: the compute engine's cycles of the layer's ``compute.tile``\\ s, the
  layer with its data on chip: each loads its register image from the table memory
  (``image_load_cycles``), then runs the datapath (the lowering's cycles, transforms
  included), then raises ``done``; or the pool engine's cycles of its ``pool.tile``\\ s;
* ``memory_cycles``: the cycles the load and store engines are busy with the layer's
  ``load.tile``\\ s and ``store.tile``\\ s (they overlap each other and the compute as far as
  the tokens allow);
* ``dram_bytes``: the bytes those instructions move (a padding box reads the zero area).

:func:`program_choices` re-chooses each conv and fc layer's algorithm and dataflow on the
design's hardware by these numbers: the layers of a program run one after the other, so its
total is the sum of its layers' cycles and each layer's choice can be made alone, by timing
the one-layer program of every allowed choice the top runs (im2col and kn2row, Winograd on
an overlay with the unit; ws and os) and keeping the fastest (the design's own on a tie).
Each one-layer program is buffered as the whole program will buffer that layer
(``compile_network``'s choice: double-buffered where that gives it fewer cycles, unless
``double_buffer`` is False), so the ranking is by the cycles design.json shows.
The explorer's analytic model ranks choices by an overlap of loads and compute the top does
not have (its single buffers), so it can prefer a choice that is slower on the hardware
(tiny on 8×8: Winograd for conv3, 1.9× the model's cycles in the program; im2col is faster
there).

:func:`program_design` puts these numbers into a design (``dse.design.Design``) whose
network the overlay top runs: per conv and fc layer its ``cycles``, ``compute_cycles``,
``memory_cycles`` and ``dram_bytes`` (a first layer the explorer reads from host patches
reads them on the top too: the host writes them in place of the input), per pool and add its
``other_layers`` cycles, and
``total_cycles`` / ``latency_ms``.  So design.json says what the hardware does, not what the
explorer's analytic model (``dse.cost.model``) estimated while it searched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dse.compiler.asm import schedule
from dse.compiler.program import NetworkProgram, instruction_cycles
from dse.cost.gemm import DEFAULT_MULT_LATENCY
from rtl.isa import (ComputeTile, FetchGeometry, LoadSetup, LoadTile, PoolTile, StoreSetup,
                     StoreTile)
from rtl.params import (DISPATCH_LATENCY, PREFETCH_WORDS, QUEUE_DEPTH, START_CYCLES,
                        OverlayParams, top_refusal)

__all__ = ["LayerTiming", "ProgramTiming", "program_choices", "program_design",
           "program_timing", "timed_design", "top_cycles", "top_schedule"]


@dataclass(frozen=True)
class LayerTiming:
    """One program layer's share of the schedule (module docstring).

    Members
    -------
    index:
        The layer's index in the program's ``plans``.
    end:
        Cycle (from ``start``) its last instruction ends.
    cycles, compute_cycles, memory_cycles, dram_bytes:
        As the module docstring says.
    """

    index: int
    end: int
    cycles: int
    compute_cycles: int
    memory_cycles: int
    dram_bytes: int


@dataclass(frozen=True)
class ProgramTiming:
    """A program's timing: its layers with instructions, in program order, and
    ``total_cycles`` from ``start`` to ``done``."""

    layers: tuple
    total_cycles: int

    def by_index(self) -> dict:
        """Program layer index → its :class:`LayerTiming`."""
        return {t.index: t for t in self.layers}


def top_schedule(lp: NetworkProgram, params: OverlayParams, *, latency: int = 0,
                 mult_latency: int = DEFAULT_MULT_LATENCY, bandwidth: int = 0
                 ) -> tuple[list, list]:
    """``(cycles, spans)`` of ``lp`` on the overlay top of ``params``: each instruction's
    cycles (``instruction_cycles``) and its (start, end) from the controller's first
    dispatch (``dse.compiler.asm.schedule`` with the controller's dispatch latency,
    instruction queues and the fetch unit's word arrivals), with a memory of ``latency``
    cycles of read latency that never stalls (and with ``bandwidth`` > 0 moves
    ``bandwidth``/256 bytes a cycle, ``instruction_cycles``).  The one place that models the
    top's controller: :func:`program_timing` and the tests read it."""
    cycles = instruction_cycles(lp, params, latency=latency, mult_latency=mult_latency,
                                bandwidth=bandwidth)
    spans = schedule(lp.program, cycles, lp.token_depth, latency=DISPATCH_LATENCY,
                     queue_depth=QUEUE_DEPTH,
                     fetch=(FetchGeometry(params.bus_bits, PREFETCH_WORDS), lp.program_addr,
                            latency))
    return cycles, spans


def top_cycles(lp: NetworkProgram, params: OverlayParams, *, latency: int = 0,
               mult_latency: int = DEFAULT_MULT_LATENCY, bandwidth: int = 0) -> int:
    """The top's ``cycles`` counter at ``done`` for ``lp``: ``START_CYCLES`` (+ the read
    latency) and the end of :func:`top_schedule`."""
    _, spans = top_schedule(lp, params, latency=latency, mult_latency=mult_latency,
                            bandwidth=bandwidth)
    return START_CYCLES + latency + spans[-1][1]


def program_timing(lp: NetworkProgram, params: OverlayParams, *, latency: int = 0,
                   mult_latency: int = DEFAULT_MULT_LATENCY,
                   bandwidth: int = 0) -> ProgramTiming:
    """The timing of ``lp`` on the overlay ``params`` with a DRAM of ``latency`` cycles of
    read latency that never stalls, moving ``bandwidth``/256 bytes a cycle (0: a beat a
    cycle) (module docstring).

    Raises
    ------
    TypeError, ValueError
        For a program that is not a :class:`NetworkProgram` with its ``layer_of``, or a
        negative latency.
    """
    if not isinstance(lp, NetworkProgram) or len(lp.layer_of) != len(lp.program):
        raise TypeError(f"lp must be a NetworkProgram of build_network_program, not "
                        f"{lp!r:.60}")
    if isinstance(latency, bool) or not isinstance(latency, int) or latency < 0:
        raise ValueError(f"latency must be a non-negative integer, not {latency!r}")
    cycles, spans = top_schedule(lp, params, latency=latency, mult_latency=mult_latency,
                                 bandwidth=bandwidth)
    offset = START_CYCLES + latency
    rows = {}                                   # layer → [end, compute, memory, bytes]
    setups = {}
    for inst, li, n, (_, end) in zip(lp.program, lp.layer_of, cycles, spans):
        if isinstance(inst, LoadSetup):
            setups[inst.buf] = inst
        elif isinstance(inst, StoreSetup):
            setups["store"] = inst
        row = rows.setdefault(li, [0, 0, 0, 0])
        row[0] = max(row[0], end)
        if isinstance(inst, (ComputeTile, PoolTile)):
            row[1] += n
        elif isinstance(inst, (LoadTile, StoreTile)):
            row[2] += n
            elem = (setups[inst.buf] if isinstance(inst, LoadTile) else setups["store"]).elem
            row[3] += inst.rows * inst.cols * inst.ch * elem
    layers, previous = [], 0
    for li in sorted(k for k in rows if k >= 0):
        end, compute, memory, nbytes = rows[li]
        end += offset
        layers.append(LayerTiming(li, end, end - previous, compute, memory, nbytes))
        previous = end
    # the register-image loads before the first layer are the first layer's
    if layers and -1 in rows:
        first = layers[0]
        layers[0] = LayerTiming(first.index, first.end, first.cycles, first.compute_cycles,
                                first.memory_cycles + rows[-1][2],
                                first.dram_bytes + rows[-1][3])
    return ProgramTiming(tuple(layers), spans[-1][1] + offset)


def program_design(network, design, *, latency: int = 0, double_buffer: bool = True,
                   quant=None, fuse: bool = True, bandwidth: int = 0):
    """``design`` with the cycles and DRAM bytes of its program on the overlay top (module
    docstring): ``dse.compiler.network.compile_network(network, design, None,
    image=False, double_buffer=double_buffer, quant=quant, fuse=fuse)`` timed by
    :func:`program_timing` with ``latency`` cycles of DRAM read latency (``quant``: a
    quantised network's records, ``dse.importers.onnx_qdq.QuantizedNetwork``), and its
    ``fusion`` the fusions that program makes (``dse.compiler.network.fusions``; none
    without ``fuse``).

    Raises
    ------
    ValueError
        If the overlay top cannot run the network as designed (``compile_network``'s
        message, naming the layer).
    """
    from dse.compiler.network import compile_network, design_overlay, fusions

    lp, names = compile_network(network, design, None, image=False,
                                double_buffer=double_buffer, quant=quant, fuse=fuse)
    params, _ = design_overlay(design)
    timing = program_timing(lp, params, latency=latency, bandwidth=bandwidth)
    names = list(names)
    by_name = {names[t.index]: t for t in timing.layers}
    layers = []
    for entry in design.layers:
        t = by_name[entry.name]
        layers.append(dataclasses.replace(
            entry, cycles=t.cycles,
            compute_cycles=t.compute_cycles, memory_cycles=t.memory_cycles,
            dram_bytes=t.dram_bytes))
    others = [{**o, "cycles": by_name[o["name"]].cycles} if o["name"] in by_name else o
              for o in design.other_layers]
    # layers the explorer does not cost that have instructions here (a quantised
    # network's concatenation with lut passes)
    listed = {p.name for p in design.layers} | {o["name"] for o in others}
    others += [{"name": name, "op": network[name].op, "cycles": t.cycles}
               for name, t in by_name.items() if name not in listed]
    total = timing.total_cycles
    return dataclasses.replace(design, layers=tuple(layers), other_layers=others,
                               fusion=fusions(network, quant) if fuse else [],
                               total_cycles=total,
                               latency_ms=total / (design.clock_mhz * 1e3))


#: The choices :func:`program_choices` tries: the algorithms and dataflows the top runs.
TOP_ALGORITHMS = ("im2col", "kn2row", "winograd")
TOP_DATAFLOWS = ("ws", "os")


def _one_layer_cycles(plan, half, params, limits, latency: int, quant=None,
                      bandwidth: int = 0) -> int:
    """Cycles of the one-layer program of ``plan`` (no image), start to done, buffered as
    ``compile_network`` buffers a layer: double-buffered with ``half`` (its plan for half
    buffers, or None) where that gives it fewer cycles; ``quant`` the layer's
    ``ChannelQuant`` on an overlay that requantises per channel."""
    import numpy as np

    from dse.compiler.network import _buffering
    from dse.compiler.program import build_network_program

    x = np.zeros(plan.in_shape, dtype=np.int8)
    timed = {}                  # (plan, double-buffered, latency) → its ProgramTiming

    def timing(plans, banked, latency=0):
        banked = banked[0] if isinstance(banked, tuple) else banked
        key = (id(plans[0]), banked, latency)
        if key not in timed:
            lp = build_network_program(plans, x, [None], params, limits, image=False,
                                       double_buffer=banked,
                                       quant=None if quant is None else [quant])
            timed[key] = program_timing(lp, params, latency=latency, bandwidth=bandwidth)
        return timed[key]

    plans, banked = _buffering([plan], {} if half is None else {0: half}, timing)
    return timing(plans, banked, latency).total_cycles


def _choice(algorithm: str, variant: str, dataflow: str) -> tuple:
    """What makes two choices of a layer different programs: the algorithm, the dataflow and
    whether it reads host patches (the Winograd variant follows from the overlay)."""
    return algorithm, dataflow, variant == "patches"


def program_choices(network, design, *, algorithms=TOP_ALGORITHMS, dataflows=TOP_DATAFLOWS,
                    pins=None, latency: int = 0, double_buffer: bool = True, quant=None,
                    bandwidth: int = 0):
    """``design`` with each conv and fc layer's algorithm, variant and dataflow re-chosen by
    the cycles of its one-layer program (module docstring), among ``algorithms`` and
    ``dataflows`` (the config's allowed sets; those the top does not run are skipped) and
    within ``pins`` (``{layer: {"algorithm": a, "dataflow": d}}``, kept as pinned).  Each
    candidate's program is buffered as :func:`program_design` with ``double_buffer`` times
    it (``compile_network``'s choice per layer: double-buffered where that is faster), so
    the choice is made on the cycles design.json shows.  A layer the top cannot run keeps
    the design's choice (``program_design`` then says why).  ``quant``: a quantised
    network's records, as :func:`program_design` takes them."""
    from dse.compiler.qdq import channel_quant
    from dse.compiler.network import _graph, _half_plan, design_overlay
    from dse.compiler.plan import plan_conv
    from dse.network import Layer

    params, limits = design_overlay(design)
    if top_refusal(params) is not None:         # e.g. an FFT (and sparse) unit
        raise ValueError(top_refusal(params))
    pins = pins or {}
    algos = [a for a in TOP_ALGORITHMS if a in algorithms
             and (a != "winograd" or params.winograd_m)]
    flows = [d for d in TOP_DATAFLOWS if d in dataflows]
    entries, _ = _graph(network)
    shapes = [tuple(network.input_shape)] + [tuple(e.layer.out_shape) for e in entries]
    by_name = {p.name: p for p in design.layers}
    # the one layer reading the network input may read the host's patches instead
    readers = [e for e in entries if e.kind != "concat" and e.input == 0]
    layers = {}
    for e in entries:
        if e.kind != "mac" or e.layer.name not in by_name:
            continue
        layer, current = e.layer, by_name[e.layer.name]
        if layer.op == "fc":
            c, h, w = shapes[e.input]
            layer = Layer(layer.name, "conv", layer.inputs, (c * h * w, 1, 1),
                          layer.out_shape, kernel=(1, 1))
        pin = pins.get(layer.name, {})
        candidates = []             # (least datapath cycles, algorithm, flow, plan, half)
        patches = readers == [e] and layer.op == "conv"
        for algo in ([pin["algorithm"]] if "algorithm" in pin else algos):
            for flow in ([pin["dataflow"]] if "dataflow" in pin else flows):
                for variant in (None, "patches") if algo == "im2col" and patches else (None,):
                    kwargs = {"relu": e.relu, "precision": design.precision,
                              "variant": variant}
                    try:
                        plan = plan_conv(layer, algo, flow, params, limits, **kwargs)
                    except ValueError:
                        continue
                    half = (_half_plan(plan, layer, algo, flow, params, limits, **kwargs)
                            if double_buffer else None)
                    least = min(p.cycles(params.rows, params.cols)["cycles"]
                                for p in (plan, half) if p is not None)
                    candidates.append((least, algo, flow, plan, half))
        best = None
        # a one-layer program takes at least the datapath cycles of the plan it runs: once
        # a candidate's least datapath cycles exceed the best program, the rest's do too
        for dp_cycles, algo, flow, plan, half in sorted(candidates, key=lambda c: c[0]):
            if best is not None and dp_cycles > best[0][0]:
                break
            try:
                cycles = _one_layer_cycles(
                    plan, half, params, limits, latency,
                    None if quant is None else channel_quant(quant.layers[layer.name]),
                    bandwidth)
            except ValueError:
                continue
            key = (cycles, _choice(algo, plan.variant, flow) != _choice(
                current.algorithm, current.variant, current.dataflow))
            if best is None or key < best[0]:
                variant = ("patches" if plan.host_patches else
                           "" if algo in ("im2col", "kn2row") else plan.variant)
                best = (key, algo, variant, flow)
        if best is not None and _choice(*best[1:]) != _choice(
                current.algorithm, current.variant, current.dataflow):
            layers[layer.name] = dataclasses.replace(current, algorithm=best[1],
                                                     variant=best[2], dataflow=best[3])
    if not layers:
        return design
    return dataclasses.replace(design, layers=tuple(layers.get(p.name, p)
                                                    for p in design.layers))


def timed_design(network, design, *, algorithms=None, dataflows=None, pins=None, quant=None,
                 latency: int = 0, bandwidth: int = 0):
    """``design`` with the cycles of the program the overlay top runs where the top runs it
    -- each conv and fc layer's choice first re-made by its program's cycles among the
    allowed ``algorithms`` and ``dataflows`` within ``pins`` (:func:`program_choices`;
    skipped when the sets are None), then the whole program timed (:func:`program_design`)
    -- with ``timing`` saying which numbers it holds; the explorer's model numbers
    otherwise.  ``omniconv dse`` and ``omniconv verify`` both take their design from here,
    so verify runs what design.json describes.  ``quant``: a quantised network's records
    (``dse.importers.onnx_qdq.QuantizedNetwork``), for a design that requantises per
    channel.  ``latency``: the DRAM read latency in cycles (the board's,
    ``dse.board.Board.dram_latency_cycles``), and ``bandwidth`` its bytes per 256 cycles
    where the DRAM is narrower than the bus (``dse.board.Board.dram_bandwidth_256``; 0: a beat
    a cycle), which the choices and the timing both see and ``timing`` states
    (``dram_latency_cycles``, ``dram_bandwidth_bytes_per_cycle``)."""
    chosen = design
    try:
        if algorithms is not None and dataflows is not None:
            # a layer the top cannot run as the model chose it may run another way
            chosen = program_choices(network, design, algorithms=algorithms,
                                     dataflows=dataflows, pins=pins, quant=quant,
                                     latency=latency, bandwidth=bandwidth)
        timed = program_design(network, chosen, quant=quant, latency=latency,
                               bandwidth=bandwidth)
    except ValueError as exc:
        return dataclasses.replace(design, timing={"source": "model", "why": str(exc)})
    changed = [p.name for p, q in zip(design.layers, chosen.layers)
               if _choice(p.algorithm, p.variant, p.dataflow)
               != _choice(q.algorithm, q.variant, q.dataflow)]
    return dataclasses.replace(timed, timing={"source": "program",
                                              "model_total_cycles": design.total_cycles,
                                              "dram_latency_cycles": latency,
                                              "dram_bandwidth_bytes_per_cycle":
                                                  bandwidth / 256 if bandwidth else None,
                                              "rechosen_layers": changed})
