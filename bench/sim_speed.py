"""Simulated cycles per second of the GEMM engine in cocotb + Verilator (tuned build).

The engine computes from its on-chip buffers: the testbench streams A and B in once, raises
``start`` and then only awaits ``done`` (no Python per cycle while it computes), so the figure
is the speed of the Verilator model driven by cocotb's clock -- the "memory-fed" setting of
docs/testing.md.  Loading and draining run through the Python stream drivers and are not timed.

Prints a table (array, GEMM shape, dataflow, cycles, seconds, cycles/s, cycles per CPU
second of the simulator process) and the build time of each engine (or "cached").  Never
asserts on time.

    .venv/bin/python bench/sim_speed.py                  # 16x16, M = K = N = 256, ws
    .venv/bin/python bench/sim_speed.py --arrays 4,8,16 --size 128 --dataflows ws,os,is
"""

import argparse
import sys
import time

import numpy as np

from rtl.params import ArrayParams, Dataflow
from sim.bench.gemm_tb import EngineConfig, GemmCase, rtl_gemm_batch
from sim.runner import build_component

__all__ = ["main"]


def main(argv=None) -> int:
    """Build (or reuse) each engine, time one large GEMM per dataflow, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arrays", default="16", metavar="LIST",
                        help="square array sizes, comma-separated (default: %(default)s)")
    parser.add_argument("--size", type=int, default=256, metavar="L",
                        help="GEMM M = K = N = L (default: %(default)s)")
    parser.add_argument("--shape", default=None, metavar="M,K,N",
                        help="GEMM shape (and buffer sizes) instead of L x L x L; 32,64,32 "
                             "reuses the builds of the cocotb tests (default: %(default)s)")
    parser.add_argument("--dataflows", default="ws", metavar="LIST",
                        help="dataflows to time: ws, os, is (default: %(default)s)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.arrays.split(",")]
    dataflows = [Dataflow(d) for d in args.dataflows.split(",")]
    m, k, n = (int(x) for x in args.shape.split(",")) if args.shape else (args.size,) * 3
    rng = np.random.default_rng(0)
    rows = []
    for size in sizes:
        cfg = EngineConfig(ArrayParams(size, size, 8, 8, 32), max_m=m, max_k=k, max_n=n)
        t0 = time.perf_counter()
        build = build_component(cfg.engine(), cfg.toplevel)
        build_note = "cached" if build.reused else f"built in {time.perf_counter() - t0:.1f} s"
        a = rng.integers(-128, 128, (m, k))
        b = rng.integers(-128, 128, (k, n))
        cases = [GemmCase(a, b, df, name=f"{df.value}") for df in dataflows]
        results = rtl_gemm_batch(cases, cfg, run_name=f"sim_speed_{cfg.toplevel}",
                                 count_busy=False)
        expected = a @ b  # |sum| <= K * 2^14 fits 32 bits for K < 2^17: no wrap
        for df, res in zip(dataflows, results):
            ok = "bit-exact" if np.array_equal(res.c, expected) else "MISMATCH"
            rows.append((f"{size}x{size}", f"{m}x{k}x{n}", df.value, res.cycles,
                         res.compute_seconds, res.cycles / res.compute_seconds,
                         res.cycles / max(res.compute_cpu_seconds, 1e-9), ok, build_note))
    print(f"{'array':>7} {'M x K x N':>13} {'df':>3} {'cycles':>9} {'seconds':>8} "
          f"{'cycles/s':>10} {'cycles/cpu-s':>12}  {'result':<9}  build")
    for r in rows:
        print(f"{r[0]:>7} {r[1]:>13} {r[2]:>3} {r[3]:>9d} {r[4]:>8.3f} {r[5]:>10,.0f} "
              f"{r[6]:>12,.0f}  {r[7]:<9}  {r[8]}")
    print("cycles/s is wall time; cycles/cpu-s divides by the simulator's CPU time, which on a "
          "loaded machine is closer to an idle machine's wall time.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
