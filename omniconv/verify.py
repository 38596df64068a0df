"""``omniconv verify CONFIG [--out DIR] [--layers NAMES] [--max-memory-gb N]``: run the conv
datapath in Verilator, write verify.json.

The command reads the config, chooses the hardware and hands the rest to :mod:`sim.verify`:

1. The hardware: ``DIR/design.json``'s OverlayParams when that file is newer than the
   config's inputs (:func:`omniconv.flow.is_stale`), else a fresh search of the config.
2. The verification network (``verify.network``, default the config's network) is loaded and
   :func:`sim.verify.verify_config` maps it anew on exactly that hardware with the config's
   allowed algorithms, dataflows, objective and per-layer pins (sparse FFT left out unless
   the hardware has a sparse unit; a sparse_fft pin without one is refused with exit status
   2), runs every conv layer through one Verilator build of the datapath with seeded random
   data, and checks it
   bit for bit against exact convolution or the approximate algorithms' golden models, and
   its cycles against ``ConvPlan.cycles`` (:mod:`dse.lowering`, the explorer's own
   formula; docs/verify.md).
   ``--layers NAME,...`` verifies only the named conv layers (the mapping is still the whole
   network's; an unknown name is refused with the nearest valid names).  Before anything is
   built the run's memory and time are estimated (:func:`sim.verify.estimate_cost`) and a run
   above the budget (:data:`MEMORY_FRACTION` of this machine's memory, or
   ``--max-memory-gb``) is refused with one line saying what to narrow.  Progress, one line
   per layer, goes to stderr.
3. ``DIR/verify.json`` is written atomically (its ``layers`` are the verified layers); the
   simulator's job and result files go to ``DIR/sim``.  Exit 0 when every layer is
   bit-exact, 1 when any is not, 2 for bad input (or a run that would not fit), 3 when an
   output cannot be written.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

__all__ = ["add_arguments", "run", "hardware_of", "settings_of", "memory_budget",
           "physical_memory", "MEMORY_FRACTION"]

#: Share of the machine's memory a verification may use by default.
MEMORY_FRACTION = 0.5


def physical_memory() -> int:
    """Bytes of memory this process may use: physical memory, or a smaller cgroup limit."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def memory_budget(max_memory_gb: float | None) -> int:
    """The verification's memory budget in bytes: ``--max-memory-gb`` (GiB) when given, else
    :data:`MEMORY_FRACTION` of :func:`physical_memory`."""
    if max_memory_gb is not None:
        return int(max_memory_gb * 2 ** 30)
    return int(MEMORY_FRACTION * physical_memory())


def _positive_gb(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of GiB, not {text!r}")
    return value


#: ``--mode`` values.
MODES = ("auto", "top", "datapath")


def _bounded(text: str, high: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None
    if not 0 <= value <= high:
        raise argparse.ArgumentTypeError(f"{what} must be from 0 to {high}, not {value}")
    return value


#: Most cycles of read latency the DRAM model takes (its 16-bit input).
MAX_LATENCY = 65535


def _cycles(text: str) -> int:
    return _bounded(text, MAX_LATENCY, "the latency")


def dram_latency(args, config) -> int:
    """The DRAM model's read latency: ``--dram-latency``, else the board's (design.json is
    timed with it)."""
    if getattr(args, "dram_latency", None) is not None:
        return args.dram_latency
    cycles = config.board.dram_latency_cycles
    if cycles > MAX_LATENCY:
        from dse.errors import InputError

        raise InputError(config.board_spec, "dram_latency_ns",
                         f"must be at most {MAX_LATENCY} cycles at the board's clock for the "
                         f"DRAM model, not {cycles}")
    return cycles


def _stall(text: str) -> int:
    return _bounded(text, 255, "the back-pressure")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``omniconv verify``."""
    parser.add_argument("config", metavar="CONFIG",
                        help="run config: a path, or a name in configs/ (with or without .yaml)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="output folder (default: build/<config stem>)")
    parser.add_argument("--layers", metavar="NAMES", default=None,
                        help="comma-separated conv layer names to verify, as `omniconv info` "
                             "lists them (ONNX names like /conv1/Conv work) (default: every "
                             "conv layer)")
    parser.add_argument("--mode", choices=MODES, default="auto",
                        help="top: run the whole network from DRAM on the overlay top; "
                             "datapath: run each conv layer on the conv datapath from its "
                             "buffers; auto (default): top where the top runs the design "
                             "(and no --layers), else datapath")
    parser.add_argument("--dram-latency", metavar="CYCLES", type=_cycles, default=None,
                        help="top mode: the DRAM model's read latency in cycles (default: the "
                             "board's dram_latency_ns at its clock, as design.json is timed)")
    parser.add_argument("--dram-stall", metavar="N", type=_stall, default=0,
                        help="top mode: random AXI back-pressure, N/256 of the cycles "
                             "(default 0)")
    parser.add_argument("--max-memory-gb", metavar="GB", type=_positive_gb, default=None,
                        help="refuse runs estimated above this many GiB (default: "
                             f"{MEMORY_FRACTION:g} of this machine's memory)")


def hardware_of(config, out_dir: Path, log=print):
    """The :class:`rtl.params.OverlayParams` to verify: ``out_dir/design.json``'s when it is
    up to date (:func:`omniconv.flow.is_stale`), else those of a fresh search of ``config``
    (without the program's timing, ``explore(program=False)``: it re-makes layer choices
    and cycles, never the hardware)."""
    from dse.design import read_design
    from omniconv.flow import explore, is_stale
    from rtl.params import OverlayParams

    design_path = out_dir / "design.json"
    if not is_stale(design_path, config):
        log(f"hardware from {design_path}")
        return OverlayParams(**read_design(design_path).hardware)
    log("design.json missing or stale: searching the hardware")
    return OverlayParams(**explore(config, progress=False, program=False).hardware)


def settings_of(config):
    """The :class:`sim.verify.VerifySettings` of a :class:`omniconv.config.RunConfig`."""
    from sim.verify import VerifySettings

    pins = {name: {k: getattr(pin, k).value for k in ("algorithm", "dataflow")
                   if getattr(pin, k) is not None}
            for name, pin in config.layers.items()}
    return VerifySettings(name=config.name, stem=config.stem, source=str(config.path),
                          network_source=config.verify_network_spec, board=config.board,
                          precision=config.precision, objective=config.objective,
                          algorithms=tuple(a.value for a in config.algorithms),
                          dataflows=tuple(d.value for d in config.dataflows),
                          layer_pins=pins, min_sqnr_db=config.min_sqnr_db,
                          densities=config.densities)


def run(args) -> int:
    """Run ``omniconv verify``: exit 0 all bit-exact, 1 any not, 2 bad input."""
    from dse.design import write_text_atomic
    from dse.errors import InputError, check_output_dir, output_errors
    from dse.load import load_network
    from omniconv.config import load_config
    from sim.verify import verify_config
    from sim.verify_top import NotOnTop, verify_network_top

    config = load_config(args.config)
    out_dir = Path(args.out) if args.out else config.out_dir
    check_output_dir(out_dir)

    def log(text):
        print(text, file=sys.stderr, flush=True)

    layers = getattr(args, "layers", None)
    max_gb = getattr(args, "max_memory_gb", None)
    params = hardware_of(config, out_dir, log)
    network = load_network(config.verify_network_spec, config.base_dir)
    # the simulator's files beside verify.json: verifications into other folders may run at
    # the same time
    mode = getattr(args, "mode", "auto")
    if mode == "top" and layers is not None:
        raise InputError("--layers", "", "selects conv layers of the datapath mode; the top "
                                         "runs the whole network (drop --layers or use "
                                         "--mode datapath)")
    settings = settings_of(config)
    quant = None
    if config.verify_network_spec == config.network_spec:
        from omniconv.flow import quantized_network

        quant = quantized_network(config)
    if quant is not None:
        # a quantised network runs with its own weights, on the top only
        from omniconv.flow import QDQ_ALGORITHMS

        settings = dataclasses.replace(settings, algorithms=tuple(
            a for a in settings.algorithms if a in QDQ_ALGORITHMS) or QDQ_ALGORITHMS)
        if mode == "datapath" or layers is not None:
            raise InputError(str(config.path), "network",
                             "a quantised (QDQ) network is verified on the overlay top as a "
                             "whole (drop --layers and --mode datapath)")
    doc = None
    with output_errors(out_dir):
        if mode == "top" or (mode == "auto" and layers is None):
            try:
                doc = verify_network_top(settings, network, params, out_dir / "sim", log=log,
                                         latency=dram_latency(args, config),
                                         stall=getattr(args, "dram_stall", 0), quant=quant,
                                         model_path=config.network_spec,
                                         bandwidth=config.board.dram_bandwidth_256(
                                             params.bus_bits))
            except NotOnTop as exc:
                if mode == "top" or quant is not None:
                    raise InputError(str(config.path), "", f"the overlay top cannot run "
                                                           f"this design: {exc}") from None
                log(f"the overlay top cannot run this design ({exc}); verifying each conv "
                    f"layer on the datapath")
        if doc is None:
            doc = verify_config(settings, network, params, out_dir / "sim", log=log,
                                layers=None if layers is None else layers.split(","),
                                max_memory_bytes=memory_budget(max_gb),
                                memory_hint="--max-memory-gb")
    path = out_dir / "verify.json"
    write_text_atomic(path, json.dumps(doc, indent=1) + "\n")
    t = doc["totals"]
    n = len(doc["layers"])
    print(f"wrote {path}: {n} layer{'' if n == 1 else 's'}, all_bit_exact={t['all_bit_exact']}, "
          f"cycles measured {t['measured_cycles']} / predicted {t['predicted_cycles']}, "
          f"max_rel_error {t['max_rel_error']:.4f}")
    return 0 if t["all_bit_exact"] else 1
