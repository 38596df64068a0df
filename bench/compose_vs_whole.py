"""Composed synthesis estimate against whole synthesis of the same overlay.

Usage: ``.venv/bin/python bench/compose_vs_whole.py [--sizes 4x4 4x8 ...] [--flow xcup]
[--out DIR] [--timeout S]``

For each size, the overlay (``rtl.conv_datapath``, int8: 8 × 8-bit operands, 32-bit
accumulators, no Winograd unit, 16 KiB activation, weight and output buffers, buffer limits
from ``omniconv.overlay.overlay_limits`` as ``overlay.v`` has them) is generated for the flow's
multipliers and synthesised twice:

* **whole**: ``omniconv.compose.whole_synthesis``: what ``omniconv synth`` runs
  (``synth_xilinx -family xcup -flatten``) after flattening and hiding the wire names in the
  same Yosys run; without that, Yosys 0.70's abc9 stops on these overlays with "Assert
  `count_id(wire->name) == 0' failed".  The hidden names change no logic;
* **composed**: ``omniconv.compose.composed_synthesis``, each distinct block once, without
  flattening, summed by instance count; run with an empty cache, so its time is that of a
  first estimate.

It prints DSP/LUT/FF/BRAM of both, the relative error (composed − whole) / whole, and the wall
time of each, and writes ``DIR/compose_vs_whole.json``.  A whole result is reused when
``DIR/<size>/whole.json`` was made from the same Verilog (its SHA-256 matches), because a
whole run takes minutes.  Run one at a time: the machine is shared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from omniconv.compose import composed_synthesis, whole_synthesis  # noqa: E402
from omniconv.overlay import overlay_limits  # noqa: E402
from rtl.conv_datapath import generate_verilog  # noqa: E402
from rtl.params import DatapathLimits  # noqa: E402
from rtl.params import OverlayParams  # noqa: E402

__all__ = ["FIELDS", "params_for", "run_size", "main"]

#: Resources compared.
FIELDS = ("dsp", "lut", "ff", "bram_blocks")


def params_for(size: str) -> OverlayParams:
    """OverlayParams of a size ``"RxC"`` (int8, 16 KiB buffers, no Winograd unit)."""
    rows, cols = (int(v) for v in size.lower().split("x"))
    return OverlayParams(rows=rows, cols=cols, a_width=8, b_width=8, acc_width=32,
                         act_buffer_kib=16, weight_buffer_kib=16, out_buffer_kib=16)


def run_size(size: str, flow: str, out: Path, timeout_s: float) -> dict:
    """Generate, synthesise whole and composed; return the row of the table."""
    work = out / size
    work.mkdir(parents=True, exist_ok=True)
    params = params_for(size)
    started = time.monotonic()
    text = generate_verilog(params, DatapathLimits(**overlay_limits(params, 8)), precision=8,
                            target=flow, name="overlay")
    gen_s = time.monotonic() - started
    digest = hashlib.sha256(text.encode()).hexdigest()
    path = work / "overlay.v"
    path.write_text(text)
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)   # time a first estimate, not a cache hit
    comp = composed_synthesis(path, "overlay", flow, work / "composed", cache_dir=cache,
                              timeout_s=timeout_s).as_dict()
    saved = work / "whole.json"
    whole = json.loads(saved.read_text()) if saved.is_file() else None
    if whole is None or whole.get("sha256") != digest or whole.get("flow") != flow:
        res = whole_synthesis(path, "overlay", flow, work / "whole", timeout_s=timeout_s)
        whole = {**res.as_dict(), "sha256": digest}
        saved.write_text(json.dumps(whole, indent=1) + "\n")
    blocks = json.loads((work / "composed" / "blocks.json").read_text())
    row = {"size": size, "flow": flow, "generate_s": round(gen_s, 1),
           "whole_s": whole["synth_seconds"], "composed_s": comp["synth_seconds"],
           "distinct_blocks": len(blocks), "instances": sum(b["instances"] for b in blocks)}
    for field in FIELDS:
        w, c = whole[field], comp[field]
        row[field] = {"whole": w, "composed": c,
                      "rel_error": round((c - w) / w, 4) if w else (0.0 if c == w else None)}
    (work / "row.json").write_text(json.dumps(row, indent=1) + "\n")
    return row


def main(argv=None) -> int:
    """Run the sizes, print the table and write the JSON; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["4x4", "4x8"], metavar="RxC",
                        help="array sizes (default: %(default)s)")
    parser.add_argument("--flow", choices=("xcup", "ecp5"), default="xcup",
                        help="synthesis flow (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "bench" / "compose_vs_whole",
                        metavar="DIR", help="output folder (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=1800.0, metavar="S",
                        help="limit per Yosys run in seconds (default: %(default)s)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.sizes:
        rows.append(run_size(size, args.flow, args.out, args.timeout))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\nComposed estimate vs whole synthesis ({args.flow}; int8 overlay, 16 KiB buffers)")
    print("| size | resource | whole | composed | error | whole s | composed s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        for i, field in enumerate(FIELDS):
            f = r[field]
            err = "" if f["rel_error"] is None else f"{100 * f['rel_error']:+.1f}%"
            times = (f"{r['whole_s']:.0f} | {r['composed_s']:.0f}" if i == 0 else " | ")
            print(f"| {r['size'] if i == 0 else ''} | {field} | {f['whole']:g} | "
                  f"{f['composed']:g} | {err} | {times} |")
    (args.out / "compose_vs_whole.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
