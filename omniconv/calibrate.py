"""Calibrate the explorer's resource model against Yosys: ``python -m omniconv.calibrate``.

For every calibration point (an :class:`rtl.params.OverlayParams` and a precision) and flow,
this module

1. generates the overlay Verilog exactly as ``omniconv`` writes ``overlay.v``
   (:func:`omniconv.overlay.write_overlay`: the conv datapath with the buffer limits of
   :func:`omniconv.overlay.overlay_limits`);
2. synthesises it with :func:`omniconv.yosys.synthesize` (one point at a time, with a
   timeout), reusing an earlier run of the same Verilog text when its ``stat.json`` is there;
3. fits the model's calibrated coefficients (:data:`dse.cost.resources.FITTED_KEYS`) by least
   squares over the points whose role is ``"fit"`` -- the ``"holdout"`` points are never
   used in the fit, only reported; the FFT terms in a second stage, on the FFT points only
   (:data:`FIT_TERMS`);
4. writes ``dse/cost/calibration.json``: per point the parameters, the flow, Yosys's counts and
   synthesis time, and the model's counts before (the code's uncalibrated defaults) and after
   (the fitted coefficients); plus the fitted coefficients themselves, which
   :mod:`dse.cost.resources` loads.

Usage::

    python -m omniconv.calibrate [--flow all|xcup|ecp5] [--points NAME,...] [--fit-only]
                                 [--force] [--reuse] [--timeout S] [--work DIR]

``--points`` synthesises only those points; the others keep their committed measurements.
``--fit-only`` refits from the committed measurements without running Yosys.  ``--reuse``
takes an earlier Yosys run of a point even when the generator's Verilog has changed since
(each point records ``verilog_sha256`` and ``matches_generator``).

Yosys workaround: Amaranth names the elements of array-layout signals ``\\name[0]``; after
``abc9`` Yosys rebuilds multi-bit wires by appending ``[i]`` to names and then collides with
them (``Assert `count_id(wire->name) == 0' failed``, YosysHQ/yosys#4349).  The Verilog given
to Yosys therefore has such escaped names rewritten to ``\\name__0`` (:func:`yosys_safe`);
only names change, not logic.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np

__all__ = ["POINTS", "CALIBRATION_PATH", "FIT_TERMS", "yosys_safe", "generate_point",
           "synth_point", "fit", "main"]

REPO = Path(__file__).resolve().parent.parent
#: The committed calibration data (read by dse/cost/resources.py).
CALIBRATION_PATH = REPO / "dse" / "cost" / "calibration.json"

#: Calibration points: name -> (OverlayParams fields, precision, role).  Small enough to
#: synthesise in minutes each on a loaded 2-core machine; chosen so that array shape,
#: operand widths, Winograd and every buffer size vary.
POINTS = {
    "4x4-i8-b4": (dict(rows=4, cols=4, act_buffer_kib=4, weight_buffer_kib=4,
                       out_buffer_kib=4), 8, "fit"),
    "4x8-i8-b4": (dict(rows=4, cols=8, act_buffer_kib=4, weight_buffer_kib=4,
                       out_buffer_kib=4), 8, "fit"),
    "4x4-wino2-i8": (dict(rows=4, cols=4, a_width=10, b_width=12, acc_width=32, winograd_m=2,
                          act_buffer_kib=2, weight_buffer_kib=4, out_buffer_kib=2), 8, "fit"),
    "4x8-wino2-l2-i8": (dict(rows=4, cols=8, a_width=10, b_width=12, acc_width=32,
                             winograd_m=2, winograd_lanes=2, act_buffer_kib=2,
                             weight_buffer_kib=4, out_buffer_kib=2), 8, "fit"),
    "4x4-i16-b8": (dict(rows=4, cols=4, a_width=16, b_width=16, acc_width=48,
                        act_buffer_kib=8, weight_buffer_kib=8, out_buffer_kib=8), 16, "fit"),
    "4x4-wino4-i8": (dict(rows=4, cols=4, a_width=15, b_width=18, acc_width=40, winograd_m=4,
                          act_buffer_kib=2, weight_buffer_kib=2, out_buffer_kib=1), 8, "fit"),
    "4x4-i8-b1": (dict(rows=4, cols=4, act_buffer_kib=1, weight_buffer_kib=2,
                       out_buffer_kib=1), 8, "holdout"),
    "8x8-i8-b8": (dict(rows=8, cols=8, act_buffer_kib=8, weight_buffer_kib=8,
                       out_buffer_kib=4), 8, "holdout"),
    "2x4-wino2-i8": (dict(rows=2, cols=4, a_width=10, b_width=12, acc_width=32, winograd_m=2,
                          act_buffer_kib=1, weight_buffer_kib=2, out_buffer_kib=1), 8,
                     "holdout"),
    # FFT points: int8 FFT operands are 17 bits (dse.cost.choices.required_widths("fft8", 8)),
    # the FFT2D's parts 16 bits; the accumulator is 48 bits as the search gives them
    "4x4-fft8-i8": (dict(rows=4, cols=4, a_width=17, b_width=17, acc_width=48, fft_size=8,
                         act_buffer_kib=2, weight_buffer_kib=2, out_buffer_kib=1), 8, "fit"),
    "4x8-fft8-wino2-i8": (dict(rows=4, cols=8, a_width=17, b_width=17, acc_width=48,
                               winograd_m=2, fft_size=8, act_buffer_kib=4, weight_buffer_kib=2,
                               out_buffer_kib=1), 8, "fit"),
    "4x4-fft16-i8": (dict(rows=4, cols=4, a_width=17, b_width=17, acc_width=48, fft_size=16,
                          act_buffer_kib=2, weight_buffer_kib=2, out_buffer_kib=1), 8,
                     "holdout"),
}

# An escaped Verilog identifier ending in an index, e.g. "\h_in[0] " (the space ends it).
_INDEXED_ESCAPED = re.compile(r"\\(\S*?)\[(\d+)\](?=\s)")


def yosys_safe(verilog: str) -> str:
    """Rewrite escaped identifiers ``\\x[i]`` to ``\\x__i`` (module docstring: Yosys #4349)."""
    out = verilog
    while True:
        new = _INDEXED_ESCAPED.sub(lambda m: "\\" + m.group(1) + "__" + m.group(2), out)
        if new == out:
            return new
        out = new


def _params(name):
    from rtl.params import OverlayParams

    fields, precision, role = POINTS[name]
    return OverlayParams(**fields), precision, role


def generate_point(name: str, flow: str, work: Path) -> Path:
    """Write point ``name``'s overlay.v (as omniconv writes it) and its Yosys-safe copy.

    Returns the path of the Yosys-safe copy, ``work/<flow>/<name>/overlay_yosys.v``.
    """
    from omniconv.overlay import write_overlay

    params, precision, _ = _params(name)
    out = work / flow / name
    out.mkdir(parents=True, exist_ok=True)
    design = SimpleNamespace(hardware=asdict(params), precision=precision)
    board = SimpleNamespace(family=flow)
    path = write_overlay(design, board, out, precision=precision)
    safe = out / "overlay_yosys.v"
    text = yosys_safe(path.read_text())
    if not safe.is_file() or safe.read_text() != text:
        safe.write_text(text)
    return safe


def synth_point(name: str, flow: str, work: Path, *, force: bool = False, reuse: bool = False,
                timeout_s: float | None = 1800) -> dict:
    """Synthesise point ``name`` for ``flow``; return Yosys's counts and seconds.

    An earlier run in ``work/<flow>/<name>/yosys`` is reused when it synthesised the same
    Verilog text (its ``src/`` copy) and left a ``stat.json``, unless ``force``; with
    ``reuse``, also when the text differs (``matches_generator`` is then false: the RTL
    changed since that run).
    """
    from omniconv.yosys import count_cells, parse_stat, synthesize

    source = generate_point(name, flow, work)
    workdir = source.parent / "yosys"
    copy = workdir / "src" / f"0_{source.name}"
    stat = workdir / "stat.json"
    meta = workdir / "seconds.json"
    done = stat.is_file() and meta.is_file() and copy.is_file()
    same = done and copy.read_text() == source.read_text()
    if not force and done and (same or reuse):
        cells = parse_stat(json.loads(stat.read_text()), "overlay")
        counts = count_cells(cells, flow)
        seconds = json.loads(meta.read_text())["seconds"]
        print(f"{flow} {name}: reusing the Yosys run in {workdir}"
              + ("" if same else " (its Verilog differs from the generator's now)"),
              file=sys.stderr)
    else:
        print(f"{flow} {name}: synthesising {source}", file=sys.stderr)
        result = synthesize([source], "overlay", flow, workdir, timeout_s=timeout_s)
        cells = dict(result.cells_by_type)
        counts = count_cells(cells, flow)
        seconds = result.seconds
        meta.write_text(json.dumps({"seconds": round(seconds, 1)}))
        same = True
    digest = hashlib.sha256(copy.read_bytes()).hexdigest()
    return {**counts, "cells_by_type": cells, "synth_seconds": round(seconds, 1),
            "verilog_sha256": digest, "matches_generator": same}


def _git_state() -> dict:
    """The commit the RTL came from and whether rtl/ or the generator had local changes."""
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "rtl", "omniconv/overlay.py")
    return {"commit": commit, "rtl_dirty": None if dirty is None else bool(dirty)}


def _table(params_list, flow):
    from dse.cost.hardware import HardwareTable

    return HardwareTable.from_params(params_list, family=flow)


def _model_counts(params_list, flow, coeffs) -> list[dict]:
    from dse.cost.resources import estimate_resources

    res = estimate_resources(_table(params_list, flow), coeffs=coeffs, shell=False)
    return [res.as_dict(i) for i in range(len(params_list))]


#: The fitted terms: resource -> ((coefficient key, feature of
#: :func:`dse.cost.resources.features`), ...), in two stages.  The first is fitted on the fit
#: points without an FFT unit; the second on the fit points with one, to what the first
#: leaves over there.  The FFT features are 0 without an FFT unit, so the second stage cannot
#: change any estimate of a point without one, and the first stage sees exactly the points
#: and features it saw before the FFT points were added.
FIT_TERMS = (
    {"dsp": (("dsp_control", "control"), ("dsp_control_winograd", "winograd")),
     "lut": (("lut_control", "control"), ("lut_per_lane_bit", "lane_bits"),
             ("lut_per_winograd_add_bit", "winograd_add_bits")),
     "ff": (("ff_control", "control"), ("ff_per_lane_bit", "lane_bits"),
            ("ff_per_winograd_reg_bit", "winograd_reg_bits"))},
    {"dsp": (("dsp_control_fft", "fft"),),
     "lut": (("lut_control_fft", "fft"),),
     "ff": (("ff_control_fft", "fft"),)},
)


def _nnls_stage(chosen: list[dict], flow: str, known: dict, terms: dict) -> dict:
    """Coefficients of ``terms`` fitted on ``chosen`` with the ``known`` ones held fixed.

    Per resource, the part that the model with ``known`` (every other fitted coefficient
    zero) leaves over is fitted by non-negative least squares to the terms' features; a
    feature that is zero on every chosen point gets coefficient 0.
    """
    from scipy.optimize import nnls

    from dse.cost.resources import DEFAULT_COEFFS, FITTED_KEYS, features
    from rtl.params import OverlayParams

    params = [OverlayParams(**p["params"]) for p in chosen]
    fixed = {flow: {**DEFAULT_COEFFS[flow], **{k: 0.0 for k in FITTED_KEYS}, **known}}
    base = _model_counts(params, flow, fixed)
    feats = features(_table(params, flow))
    coeffs = {}
    for resource, pairs in terms.items():
        y = np.array([p["yosys"][resource] - b[resource] for p, b in zip(chosen, base)],
                     dtype=float)
        x = np.stack([feats[f] for _, f in pairs], axis=1)
        used = np.any(x != 0, axis=0)
        sol = np.zeros(len(pairs))
        if used.any():
            sol[used] = nnls(x[:, used], y)[0]
        coeffs.update({key: round(float(v), 6) for (key, _), v in zip(pairs, sol)})
    return coeffs


def fit(points: list[dict]) -> dict:
    """Fitted coefficients ``{family: {key: value}}`` from measured points (role ``fit`` only).

    Per family, in the stages of :data:`FIT_TERMS`: first DSP to ``control`` and
    ``winograd``, LUT to ``control``, ``lane_bits`` and ``winograd_add_bits``, FF to
    ``control``, ``lane_bits`` and ``winograd_reg_bits`` (features of
    :func:`dse.cost.resources.features`), on the fit points without an FFT unit; then each
    resource's ``*_control_fft`` to the ``fft`` feature, on the fit points with an FFT unit,
    with the first stage's coefficients fixed.  Each stage is a non-negative least-squares
    fit of what the model leaves over (:func:`_nnls_stage`).
    """
    out = {}
    for flow in sorted({p["flow"] for p in points}):
        fitted = [p for p in points if p["flow"] == flow and p["role"] == "fit"]
        if not fitted:
            continue
        coeffs: dict = {}
        for stage, terms in enumerate(FIT_TERMS):
            chosen = [p for p in fitted if (p["params"].get("fft_size", 0) > 0) == (stage == 1)]
            if chosen:
                coeffs.update(_nnls_stage(chosen, flow, coeffs, terms))
            else:
                coeffs.update({key: 0.0 for pairs in terms.values() for key, _ in pairs})
        out[flow] = coeffs
    return out


def _errors(model: dict, measured: dict) -> dict:
    return {k: (round((model[k] - measured[k]) / measured[k], 4) if measured[k] else None)
            for k in ("dsp", "lut", "ff", "bram_blocks")}


def _rows(doc: dict) -> str:
    lines = ["| flow | point | role | Yosys DSP/BRAM/LUT/FF | model DSP/BRAM/LUT/FF | "
             "error DSP/BRAM/LUT/FF | synth s |", "|" + " --- |" * 7]
    for p in doc["points"]:
        y, m, e = p["yosys"], p["model_after"], p["error_after"]
        fmt = lambda d: "/".join(f"{d[k]:g}" for k in ("dsp", "bram_blocks", "lut", "ff"))  # noqa
        err = "/".join("-" if e[k] is None else f"{100 * e[k]:+.1f}%"
                       for k in ("dsp", "bram_blocks", "lut", "ff"))
        lines.append(f"| {p['flow']} | {p['name']} | {p['role']} | {fmt(y)} | {fmt(m)} | {err} |"
                     f" {y['synth_seconds']:g} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Synthesise the selected points, refit, write calibration.json; 0 on success."""
    from dse.cost.resources import DEFAULT_COEFFS
    from omniconv.yosys import FLOWS, SynthError, yosys_version
    from rtl.params import OverlayParams

    parser = argparse.ArgumentParser(prog="python -m omniconv.calibrate",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--flow", choices=(*FLOWS, "all"), default="all",
                        help="flow(s) to synthesise (default: %(default)s); the committed "
                             "points of other flows are kept and refitted")
    parser.add_argument("--points", default=",".join(POINTS),
                        help="comma-separated point names (default: all: %(default)s)")
    parser.add_argument("--fit-only", action="store_true",
                        help="refit from calibration.json's measurements; run no synthesis")
    parser.add_argument("--force", action="store_true",
                        help="synthesise again even where an identical earlier run exists")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse an earlier run of a point even if the generator's Verilog "
                             "has changed since (recorded as matches_generator: false)")
    parser.add_argument("--timeout", type=float, default=1800.0, metavar="S",
                        help="stop one Yosys run after S seconds (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=REPO / "build" / "calibrate",
                        help="folder for the generated Verilog and Yosys runs "
                             "(default: build/calibrate)")
    parser.add_argument("--output", type=Path, default=CALIBRATION_PATH,
                        help="calibration file to write (default: dse/cost/calibration.json)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.points.split(",") if n.strip()]
    unknown = [n for n in names if n not in POINTS]
    if unknown:
        parser.error(f"unknown point(s) {', '.join(unknown)}; known: {', '.join(POINTS)}")
    flows = FLOWS if args.flow == "all" else (args.flow,)

    old = json.loads(args.output.read_text()) if args.output.is_file() else {"points": []}
    measured = {(p["flow"], p["name"]): p for p in old.get("points", [])
                if p["name"] in POINTS}
    versions = dict(old.get("yosys_version", {}))
    if not args.fit_only:
        for flow in flows:
            for name in names:
                start = time.monotonic()
                try:
                    counts = synth_point(name, flow, args.work, force=args.force,
                                         reuse=args.reuse, timeout_s=args.timeout)
                except SynthError as exc:
                    print(f"{flow} {name}: {exc}", file=sys.stderr)
                    return 1
                params, precision, role = _params(name)
                # a reused run of the same Verilog keeps the commit it was made at
                prev = measured.get((flow, name), {})
                same_run = prev.get("yosys", {}).get("verilog_sha256") == counts["verilog_sha256"]
                measured[flow, name] = {"name": name, "flow": flow, "role": role,
                                        "precision": precision, "params": asdict(params),
                                        "source": prev["source"] if same_run else _git_state(),
                                        "yosys": counts}
                version = yosys_version(args.work / flow / name / "yosys" / "yosys.log")
                if version:
                    versions[flow] = version
                print(f"{flow} {name}: done ({time.monotonic() - start:.0f} s wall)",
                      file=sys.stderr)
    points = [measured[k] for k in sorted(measured, key=lambda k: (k[0], list(POINTS).index(k[1])))]
    for p in points:   # the role may have changed in POINTS since the measurement
        p["role"] = POINTS[p["name"]][2]
    if not points:
        print("no measured points: run without --fit-only first", file=sys.stderr)
        return 1
    coeffs = fit(points)
    after = {f: {**DEFAULT_COEFFS[f], **coeffs.get(f, {})} for f in DEFAULT_COEFFS}
    for p in points:
        params = [OverlayParams(**p["params"])]
        p["model_before"] = _model_counts(params, p["flow"], DEFAULT_COEFFS)[0]
        p["model_after"] = _model_counts(params, p["flow"], after)[0]
        p["error_after"] = _errors(p["model_after"], p["yosys"])
    doc = {
        "generated_by": "python -m omniconv.calibrate",
        "overlay": "omniconv.overlay.write_overlay (rtl/conv_datapath.py), names made "
                   "Yosys-safe (omniconv.calibrate.yosys_safe)",
        "yosys_version": versions,
        "coefficients": coeffs,
        "points": points,
    }
    args.output.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    print(_rows(doc))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
