"""The nlp optimiser's latency-power front by ε-constraint sweeps against weighted sums.

For each case -- ResNet-18, VGG16 and GoogLeNet on the ZCU102 (their configs) and the tiny
network on the ECP5-85 (configs/tiny.yaml without its pins) -- the nlp search runs three
times, identical up to its front sweep (:func:`dse.optimize.sweep_front`): none, the
ε-constraint sweep (the default) and the weighted-sum sweep, each with the same budget of
mapped points.  Each front is the non-dominated set of every (latency, power) pair the search
mapped (both mappings of each point); its hypervolume is the area it dominates below a
reference point 10 % beyond the worst latency and power of the three runs together.  A larger
hypervolume is a better front.

Usage: ``python bench/pareto_fronts.py [--networks resnet18 vgg16 googlenet tiny]``.
Prints a table; writes build/bench/pareto_fronts.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["CASES", "fronts", "main"]

#: name -> (config, drop the config's hardware pins)
CASES = {"resnet18": ("liang_resnet18", False), "vgg16": ("vgg16", False),
         "googlenet": ("dnnvm_googlenet", False), "tiny": ("tiny", True)}
METHODS = (None, "epsilon", "weighted")


def fronts(name: str) -> dict:
    """The three runs of one case: per method its points, front size, hypervolume, time."""
    from dse.load import load_network
    from dse.optimize import hypervolume, latency_power, nlp_search
    from dse.search import prepare
    from omniconv.config import load_config

    config_name, drop_pins = CASES[name]
    cfg = load_config(config_name)
    net = load_network(cfg.network_spec, cfg.base_dir)
    problem = prepare(net, cfg.board, precision=cfg.precision, objective=cfg.objective,
                      algorithms=tuple(a.value for a in cfg.algorithms),
                      dataflows=tuple(d.value for d in cfg.dataflows),
                      hardware_pins={} if drop_pins else dict(cfg.hardware),
                      min_sqnr_db=cfg.min_sqnr_db)
    runs = {}
    for method in METHODS:
        start = time.perf_counter()
        found = nlp_search(problem, front=method)
        pairs = [latency_power(problem, m) for m in (found.result, found.alt)]
        lat = np.concatenate([p[0] for p in pairs])
        power = np.concatenate([p[1] for p in pairs])
        ok = np.isfinite(lat) & np.isfinite(power)
        runs[str(method)] = {"latency": lat[ok], "power": power[ok],
                             "evaluations": found.evaluations,
                             "seconds": time.perf_counter() - start}
    lat_all = np.concatenate([r["latency"] for r in runs.values()])
    pow_all = np.concatenate([r["power"] for r in runs.values()])
    ref = (float(lat_all.max()) * 1.1, float(pow_all.max()) * 1.1)
    from dse.search import pareto_front

    out = {}
    for method, r in runs.items():
        out[method] = {"hypervolume": hypervolume(r["latency"], r["power"], ref),
                       "front_points": int(len(pareto_front(r["latency"], r["power"]))),
                       "evaluations": int(r["evaluations"]),
                       "seconds": round(r["seconds"], 2)}
    out["reference"] = ref
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args(argv)
    results = {}
    print("| case | sweep | hypervolume (ms·W) | front points | mapped points | s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.networks:
        res = fronts(name)
        results[name] = res
        for method in ("None", "epsilon", "weighted"):
            r = res[method]
            label = {"None": "none", "epsilon": "ε-constraint", "weighted": "weighted sum"}
            print(f"| {name} | {label[method]} | {r['hypervolume']:.4f} | {r['front_points']} "
                  f"| {r['evaluations']} | {r['seconds']:.1f} |")
        ratio = res["epsilon"]["hypervolume"] / max(1e-12, res["weighted"]["hypervolume"])
        print(f"| {name} | ε / weighted | {ratio:.3f}× | | | |")
    out = ROOT / "build" / "bench" / "pareto_fronts.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
