"""Fusion on and off: DRAM bytes and latency of the overlay top's programs (issue "The overlay
top", beside DNNVM's reported gain of up to 1.26×).

For each config (default: the three DNNVM configs, VGG16, ResNet-50 and GoogLeNet on the
zcu102), the explorer's design (``omniconv.flow.explore``, the program's own cycles) is
timed as two programs of ``dse.compiler.network.compile_network`` on the same overlay:

* **on** (the compiler's default): each ReLU runs in its producer's requantiser, each
  concatenation is written in place by the layers producing its inputs;
* **off** (``fuse=False``): each ReLU is a pass of its own over its input tensor on the pool
  engine (read from DRAM, written back), and each concatenation's inputs are written as
  tensors of their own and copied into its slices by the pool engine.

DRAM bytes and cycles are ``dse.compiler.timing.program_timing``'s with the board's DRAM
read latency and bandwidth (as design.json's), the numbers ``omniconv verify`` measures in
Verilator for such programs.  The fusions DNNVM also makes
that the overlay top does not (a conv with its pool or residual add, sibling branches
sharing one loaded input) are not in either program; the table says what the top's own
fusions are worth.

Usage: ``python bench/fusion.py [CONFIG ...]``.  Prints a markdown table and writes
``build/bench/fusion.json``.  A few minutes (three searches and six programs).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["DNNVM_GAIN", "CONFIGS", "measure", "main"]

#: DNNVM's (Xing et al., TCAD 2020) largest reported speed-up from its fusions.
DNNVM_GAIN = 1.26
#: The configs measured by default.
CONFIGS = ("configs/dnnvm_vgg16.yaml", "configs/dnnvm_resnet50.yaml",
           "configs/dnnvm_googlenet.yaml")


def measure(config_path) -> dict:
    """The explored design of ``config_path`` timed with and without fusion."""
    from dse.compiler.network import compile_network, design_overlay
    from dse.compiler.timing import program_timing
    from dse.load import load_network
    from omniconv.config import load_config
    from omniconv.flow import explore, quantized_network

    config = load_config(config_path)
    start = time.perf_counter()
    network = load_network(config.network_spec, config.base_dir)
    design = explore(config, progress=False)
    if design.timing.get("source") != "program":
        raise SystemExit(f"{config_path}: the overlay top cannot run the design: "
                         f"{design.timing.get('why')}")
    quant = quantized_network(config)
    params, _ = design_overlay(design)
    row = {"config": str(config_path), "network": network.name,
           "hardware": f"{params.rows}x{params.cols}, bus {params.bus_bits}",
           "activations_fused": sum(f["kind"] == "activation" for f in design.fusion),
           "concats_in_place": sum(f["kind"] == "concat" for f in design.fusion)}
    for fuse in (True, False):
        lp, _ = compile_network(network, design, None, image=False, quant=quant, fuse=fuse)
        timing = program_timing(lp, params, latency=config.board.dram_latency_cycles,
                                bandwidth=config.board.dram_bandwidth_256(params.bus_bits))
        key = "on" if fuse else "off"
        row[f"cycles_{key}"] = timing.total_cycles
        row[f"dram_bytes_{key}"] = sum(t.dram_bytes for t in timing.layers)
        row[f"instructions_{key}"] = len(lp.program)
    row["speedup"] = round(row["cycles_off"] / row["cycles_on"], 4)
    row["dram_ratio"] = round(row["dram_bytes_off"] / row["dram_bytes_on"], 4)
    row["clock_mhz"] = design.clock_mhz
    row["dram_latency_cycles"] = config.board.dram_latency_cycles
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def main(argv: list[str] | None = None) -> int:
    configs = (sys.argv[1:] if argv is None else argv) or [str(ROOT / c) for c in CONFIGS]
    rows = []
    print("| network | overlay | ReLUs fused | concats in place | DRAM MB on / off | "
          "latency ms on / off | speed-up (DNNVM: up to 1.26×) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for path in configs:
        r = measure(path)
        rows.append(r)
        ms = [r[f"cycles_{k}"] / (r["clock_mhz"] * 1e3) for k in ("on", "off")]
        print(f"| {r['network']} | {r['hardware']} | {r['activations_fused']} | "
              f"{r['concats_in_place']} | {r['dram_bytes_on'] / 1e6:.1f} / "
              f"{r['dram_bytes_off'] / 1e6:.1f} | {ms[0]:.2f} / {ms[1]:.2f} | "
              f"{r['speedup']:.3f}× |", flush=True)
    out = ROOT / "build" / "bench" / "fusion.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
