"""Does a larger buffer ever make a layer slower?  A random probe of the split's cycles.

For random conv layers, arrays, algorithms and dataflows, one buffer of an overlay point
(activation, weight or output KiB) is made 4× larger and the layer's on-chip cycles
(``dse.lowering.split.split_cycles`` within ``dse.cost.resources.overlay_limits``, what the
explorer and the compiler plan) are compared.  Prints every case where the larger buffer
runs the layer slower or not at all, with both cuts (filters, bands, channel chunks), and the
count.  The split takes the largest band and the fewest channel chunks that fit and the
better of two filter cuts: a heuristic, so this can happen (docs/explorer.md).  Never
asserts.

Usage: ``python bench/buffer_monotonicity.py [TRIALS] [SEED]`` (default 400 trials, seed 1).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dse.cost.resources import overlay_limits  # noqa: E402
from dse.lowering import Geometry  # noqa: E402
from dse.lowering.split import split_cycles  # noqa: E402
from rtl.params import Dataflow, OverlayParams  # noqa: E402

__all__ = ["probe", "main"]

FIELDS = ("act_buffer_kib", "weight_buffer_kib", "out_buffer_kib")


def _case(rng: random.Random):
    """A random (geometry, algorithm, dataflow, point, buffer field)."""
    c = rng.choice([3, 16, 37, 64, 128, 256, 512, 1024])
    n = rng.choice([8, 64, 128, 512])
    h = rng.choice([7, 14, 28, 56])
    k = rng.choice([1, 3, 5])
    s = rng.choice([1, 2]) if k > 1 else 1
    p = k // 2
    oh = (h + 2 * p - k) // s + 1
    g = Geometry(c, n, 1, k, k, s, 1, h, h, oh, oh, p, p, p, p)
    rows, cols = rng.choice([(8, 8), (16, 16), (32, 64), (64, 32), (128, 16)])
    algo = rng.choice(["im2col", "kn2row", "winograd"])
    if algo == "winograd" and (k < 3 or s != 1):
        algo = "im2col"
    wm = 2 if algo == "winograd" else 0
    flow = rng.choice(["ws", "os"] + ([] if wm else ["is"]))
    point = dict(rows=rows, cols=cols, a_width=10 if wm else 8, b_width=12 if wm else 8,
                 acc_width=32, winograd_m=wm, act_buffer_kib=rng.choice([32, 128, 512]),
                 weight_buffer_kib=rng.choice([32, 128, 512]),
                 out_buffer_kib=rng.choice([64, 256]))
    return g, algo, flow, point, rng.choice(FIELDS)


def probe(trials: int = 400, seed: int = 1) -> list:
    """The violations: ``(layer, algorithm, dataflow, array, field, small, large, cycles
    small, cycles large or None, split small, split large)``."""
    rng = random.Random(seed)
    found = []
    for _ in range(trials):
        g, algo, flow, point, field = _case(rng)
        big = {**point, field: point[field] * 4}
        runs = []
        for p in (point, big):
            r = split_cycles(algo, g, p["winograd_m"], p["rows"], p["cols"],
                             Dataflow(flow).code, overlay_limits(OverlayParams(**p)))
            fits = bool(r["split"].fits)
            runs.append((int(r["cycles"]) if fits else None, r["split"]))
        (small, sp_small), (large, sp_large) = runs
        if small is not None and (large is None or large > small):
            layer = (g.c_in, g.c_out, g.h_in, g.kh, g.stride)
            found.append((layer, algo, flow, (point["rows"], point["cols"]), field,
                          point[field], big[field], small, large, sp_small, sp_large))
    return found


def _cut(sp) -> str:
    return (f"{int(sp.n_chunks)}x{int(sp.n_step)} filters, {int(sp.bands)}x{int(sp.band)} "
            f"rows, {int(sp.c_chunks)}x{int(sp.c_step)} channels")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    trials = int(argv[0]) if argv else 400
    seed = int(argv[1]) if len(argv) > 1 else 1
    found = probe(trials, seed)
    print("layer (C, N, H, k, stride) | choice | array | buffer | cycles | cuts")
    for layer, algo, flow, arr, field, a, b, small, large, sp_a, sp_b in found:
        print(f"{layer} | {algo} {flow} | {arr[0]}x{arr[1]} | {field} {a} -> {b} | "
              f"{small:,} -> {'no fit' if large is None else f'{large:,}'} | "
              f"{_cut(sp_a)} -> {_cut(sp_b)}")
    print(f"{len(found)} of {trials} cases run slower (or not at all) with the larger buffer")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
