"""The ``omniconv`` command line: one console script, one module per subcommand.

Each subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int``.  Bad input
raises :class:`dse.errors.InputError`, printed here as one line with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dse.errors import InputError

__all__ = ["main"]

#: subcommand -> (module, one-line help)
COMMANDS = {
    "info": ("omniconv.info", "layers, shapes and MACs of a network"),
    "dse": ("omniconv.flow", "explore hardware and per-layer mapping; write design.json"),
    "verilog": ("omniconv.flow", "explore if stale, then generate overlay.v"),
    "verify": ("omniconv.verify", "run the generated datapath in Verilator on the verify network"),
    "lint": ("omniconv.lint", "Verilator lint (-Wall, documented waivers) of overlay.v"),
    "synth": ("omniconv.synth", "Yosys (+ nextpnr for ECP5) resources and Fmax"),
    "report": ("omniconv.report", "plots and an HTML page for a build folder"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omniconv",
        description="One FPGA overlay, every convolution algorithm: explore, generate, verify.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            p.set_defaults(_missing=name)
            continue
        adder = getattr(module, f"add_{name}_arguments", None) or module.add_arguments
        adder(p)
        p.set_defaults(_run=getattr(module, f"run_{name}", None) or module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_missing", None):
        print(f"omniconv {args._missing}: not built yet in this version of omniconv",
              file=sys.stderr)
        return 2
    try:
        return int(args._run(args) or 0)
    except InputError as exc:
        print(f"omniconv {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("omniconv: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
