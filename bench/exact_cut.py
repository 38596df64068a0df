"""How much faster would an exact cut into invocations make the explorer's designs?

The cut of a layer into channel chunks, filter chunks and row bands
(``dse.lowering.split``) is a heuristic: the fewest channel chunks that fit, then the most
filters those leave room for, then the largest band, and the faster of two filter caps.
That is why more buffer can make the model slower (``tests/dse/test_buffer_monotone.py``).
The exact cut — the fastest of every cut the buffers hold — is what would make the model
monotone in the buffers.  This bench measures what it would gain on the explorer's own
designs: for every conv layer of a config's design (the layer's algorithm, dataflow and the
design's buffers), the heuristic's ``compute_cycles`` against the fastest cut over every
even split (``split`` with every distinct cap on channel words, filters and band rows: each
cap ⌈total / k⌉ for k = 1, 2, …), evaluated vectorised over the whole cap grid.

Usage: ``python bench/exact_cut.py [CONFIG ...]`` (default vgg16 liang_resnet18 tiny).  Prints
one row per layer where the exact cut is faster, and the totals; writes
build/bench/exact_cut.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["caps", "exact_cycles", "layer_table", "main"]


def caps(total: int) -> np.ndarray:
    """Every distinct ⌈total / k⌉, k = 1 … total (the sizes of the even splits)."""
    return np.unique(-(-total // np.arange(1, max(1, total) + 1)))


def exact_cycles(algorithm, g, unit, rows, cols, dataflow, limits, lanes) -> tuple[int, int]:
    """(fastest cycles over every capped cut, candidates evaluated) of one layer."""
    from dse.lowering import im2col
    from dse.lowering.geometry import cdiv
    from dse.lowering.split import _split_sum, split
    from rtl.params import Algorithm

    algo = Algorithm(algorithm)
    gp = im2col.patched(g, unit, np) if algo == Algorithm.IM2COL else g
    n, c, b = np.meshgrid(caps(int(gp.n_group)), caps(int(cdiv(gp.c_group, rows))),
                          caps(int(gp.h_out)), indexing="ij")
    n, c, b = n.ravel(), c.ravel(), b.ravel()
    sp = split(algo, g, unit, rows, cols, dataflow, limits, np, lanes, n_cap=n, c_words_cap=c,
               band_cap=b)
    total = _split_sum(algo, sp, g, unit, rows, cols, dataflow, limits, np, lanes)
    cycles = np.where(np.asarray(sp.fits), np.asarray(total["cycles"], dtype=float), np.inf)
    return int(cycles.min()), int(cycles.size)


def layer_table(design, network) -> list[dict]:
    """Per conv layer: the heuristic's compute cycles (design.json's) and the best of every
    even cut and the heuristic's."""
    from array_busy import conv_layers

    out = []
    for lp, args in conv_layers(design, network):
        start = time.perf_counter()
        exact, n = exact_cycles(**args)
        # the heuristic's own cut is among the grid's (every cap at the whole), except its
        # one- and two-array-width filter caps where those are not even splits
        exact = min(exact, int(lp.compute_cycles))
        out.append({"layer": lp.name, "choice": f"{lp.algorithm} {lp.dataflow}",
                    "heuristic": int(lp.compute_cycles), "exact": exact, "candidates": n,
                    "seconds": time.perf_counter() - start})
    return out


def main(argv: list[str]) -> int:
    from dse.load import load_network
    from omniconv.config import load_config
    from omniconv.flow import explore

    results = {}
    for name in argv or ["vgg16", "liang_resnet18", "tiny"]:
        config = load_config(name)
        design = explore(config, progress=False)
        network = load_network(config.network_spec, config.base_dir)
        rows = layer_table(design, network)
        results[name] = rows
        h = sum(r["heuristic"] for r in rows)
        e = sum(r["exact"] for r in rows)
        print(f"\n{config.name}: {design.hardware['rows']}x{design.hardware['cols']}, "
              f"{len(rows)} conv layers")
        print("| layer | choice | heuristic | exact | exact / heuristic | candidates | s |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for r in rows:
            if r["exact"] < r["heuristic"]:
                print(f"| {r['layer']} | {r['choice']} | {r['heuristic']:,} | {r['exact']:,} "
                      f"| {r['exact'] / r['heuristic']:.4f} | {r['candidates']:,} "
                      f"| {r['seconds']:.2f} |")
        print(f"| total | | {h:,} | {e:,} | {e / h:.4f} | "
              f"{sum(r['candidates'] for r in rows):,} | "
              f"{sum(r['seconds'] for r in rows):.1f} |")
    out = ROOT / "build" / "bench" / "exact_cut.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
