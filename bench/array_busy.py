"""How busy the design keeps its array: per conv layer, design.json's on-chip cycles against
the ideal bound (the multiplies the chosen algorithm needs ÷ the PEs).

For a config (default ``vgg16``, the zcu102 point) the explorer runs as ``omniconv dse``
does; each conv layer's plan is lowered again (``dse.lowering``, the same code) to count the
multiplies the algorithm needs -- transformed-domain products for Winograd and FFT, without
the zero channels that fill a pixel's last feature word -- and the array's busy cycles.  Prints one row per conv layer and the totals; the ratios are the figures of merit:
``compute / ideal`` (how far the datapath is from keeping every PE busy) and ``compute /
busy`` (how much of the on-chip time lies outside the array: serial loads, drains,
transforms).  Never asserts.

Usage: ``python bench/array_busy.py [CONFIG]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dse.load import load_network  # noqa: E402
from dse.lowering import Geometry, layer_cycles  # noqa: E402
from omniconv.config import load_config  # noqa: E402
from omniconv.flow import explore  # noqa: E402
from dse.cost.resources import overlay_limits  # noqa: E402
from rtl.params import Dataflow, OverlayParams  # noqa: E402

__all__ = ["conv_layers", "layer_rows", "main"]


def conv_layers(design, network):
    """Per conv layer of ``design``: its design.json entry and the arguments of the lowering
    (``dse.lowering.layer_cycles``) for the chosen algorithm, dataflow and the design's
    overlay: ``algorithm``, ``g``, ``unit``, ``rows``, ``cols``, ``dataflow`` (code),
    ``lanes``, ``limits``."""
    hw = design.hardware
    by_name = {layer.name: layer for layer in network.layers}
    limits = overlay_limits(OverlayParams(**hw), design.precision)
    for lp in design.layers:
        layer = by_name[lp.name]
        if layer.op != "conv":
            continue
        unit = {"winograd": hw["winograd_m"], "fft": hw["fft_size"]}.get(
            lp.algorithm, int(lp.variant == "patches"))
        yield lp, dict(algorithm=lp.algorithm, g=Geometry.of_layer(layer), unit=unit,
                       rows=hw["rows"], cols=hw["cols"], dataflow=Dataflow(lp.dataflow).code,
                       lanes=hw.get("winograd_lanes", 1), limits=limits)


def layer_rows(design, network) -> list[dict]:
    """One dict per conv layer: name, choice, ideal, busy, compute, cycles."""
    hw = design.hardware
    pes = hw["rows"] * hw["cols"]
    rows = []
    for lp, args in conv_layers(design, network):
        c = layer_cycles(**args)
        # the layer's cycles from the lowering, as design.json has them
        assert int(c["cycles"]) == int(lp.compute_cycles), lp.name
        rows.append({"name": lp.name, "choice": f"{lp.algorithm} {lp.variant or ''} "
                                                 f"{lp.dataflow}".replace("  ", " "),
                     "ideal": int(c["macs_needed"]) / pes, "bands": int(c["split"].bands),
                     "busy": int(c["gemm_cycles"]),
                     "compute": int(lp.compute_cycles), "cycles": int(lp.cycles)})
    return rows


def main(argv: list[str]) -> int:
    config = load_config(argv[0] if argv else "vgg16")
    design = explore(config, progress=False)
    network = load_network(config.network_spec, config.base_dir)
    rows = layer_rows(design, network)
    hw = design.hardware
    print(f"{config.name}: {hw['rows']}x{hw['cols']} array at {design.clock_mhz} MHz, "
          f"{len(rows)} conv layers")
    print(f"{'layer':12} {'choice':24} {'ideal':>12} {'busy':>12} {'compute':>12} "
          f"{'cycles':>12} {'comp/ideal':>10} {'comp/busy':>9}")
    for r in rows:
        print(f"{r['name'][:12]:12} {r['choice'][:24]:24} {r['ideal']:12,.0f} {r['busy']:12,} "
              f"{r['compute']:12,} {r['cycles']:12,} {r['compute'] / r['ideal']:10.2f} "
              f"{r['compute'] / r['busy']:9.2f}")
    tot = {k: sum(r[k] for r in rows) for k in ("ideal", "busy", "compute", "cycles")}
    print(f"{'total':37} {tot['ideal']:12,.0f} {tot['busy']:12,} {tot['compute']:12,} "
          f"{tot['cycles']:12,} {tot['compute'] / tot['ideal']:10.2f} "
          f"{tot['compute'] / tot['busy']:9.2f}")
    ms = tot["cycles"] / (design.clock_mhz * 1e3)
    print(f"conv layers: {tot['cycles']:,} cycles = {ms:.2f} ms with DRAM "
          f"(issue target: compute <= 1.2x ideal, cycles <= 2.7 M = 9 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
