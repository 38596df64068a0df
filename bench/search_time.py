"""Whole-process time of `omniconv dse` (default search: hardware and mapping) per built-in network.

Each run is a fresh ``python -m omniconv dse`` process on a config naming the network on the
ZCU102 board (int8, latency, every algorithm and dataflow allowed), so the time includes the
interpreter start and every import.  Target: under 5 s each on 2 cores, aim 1 s.
Prints a table; never asserts on time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["time_dse"]

ROOT = Path(__file__).resolve().parent.parent
NETWORKS = ("tiny", "alexnet", "vgg16", "resnet18", "resnet50", "mobilenet_v2", "googlenet",
            "inception_v4")


def time_dse(network: str, board: str = "zcu102") -> tuple[float, dict]:
    """Return (wall seconds of the whole process, design.json) for one network."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / f"{network}.yaml"
        cfg.write_text(f"network: {network}\nboard: {board}\n")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "omniconv", "dse", str(cfg), "--out",
                        str(Path(tmp) / "out")], cwd=ROOT, check=True, capture_output=True)
        wall = time.perf_counter() - start
        return wall, json.loads((Path(tmp) / "out" / "design.json").read_text())


def main() -> int:
    print(f"{'network':14} {'process s':>9} {'search s':>8} {'points':>6} {'optimal':>7} "
          f"{'latency ms':>10}  array  algorithms used")
    for name in NETWORKS:
        wall, d = time_dse(name)
        used = sorted({(p['algorithm'] + (f"/{p['variant']}" if p['variant'] else ""))
                       for p in d["layers"]})
        hw = d["hardware"]
        print(f"{name:14} {wall:9.2f} {d['search_seconds']:8.2f} {d['hardware_points']:6d} "
              f"{str(d['optimal']):>7} {d['latency_ms']:10.3f}  {hw['rows']}x{hw['cols']}  "
              f"{', '.join(used)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
