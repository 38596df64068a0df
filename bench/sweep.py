"""The default ``omniconv sweep``: 4 networks × 3 boards × 2 precisions on a local Dask
cluster; prints the latency table (ms, the explorer's model) and the sweep's wall time.

Usage: ``python bench/sweep.py [--workers N]``; writes ``build/sweep/sweep.csv`` and
``sweep.png``.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from omniconv.cli import main as omniconv  # noqa: E402


def main(argv: list[str]) -> int:
    out = REPO / "build" / "sweep"
    start = time.perf_counter()
    status = omniconv(["sweep", "--out", str(out), *argv])
    if status:
        return status
    wall = time.perf_counter() - start
    rows = list(csv.DictReader((out / "sweep.csv").read_text().splitlines()))
    boards = list(dict.fromkeys(r["board"] for r in rows))
    print(f"\n{'network':12} {'int':>4} " + " ".join(f"{b:>12}" for b in boards))
    for network in dict.fromkeys(r["network"] for r in rows):
        for precision in dict.fromkeys(r["precision"] for r in rows):
            cells = []
            for board in boards:
                hit = [r for r in rows if (r["network"], r["board"], r["precision"])
                       == (network, board, precision)]
                cells.append("refused" if not hit or hit[0]["error"]
                             else f"{float(hit[0]['latency_ms']):.2f}")
            print(f"{network:12} {precision:>4} " + " ".join(f"{c:>12}" for c in cells))
    print(f"\n{len(rows)} searches in {wall:.1f} s (wall, local cluster)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
