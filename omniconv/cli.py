"""The ``omniconv`` command line: one console script, one module per subcommand.

Each subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int``.

Exit statuses (README.md, "Exit status"):

- 0: done;
- 1: the command ran and found a failure: ``verify`` a layer not bit-exact, ``lint`` a
  violation, ``synth`` a tool that failed or an ECP5 design too large to place;
- 2: bad input (:class:`dse.errors.InputError`: a config, network, board or option), one line
  naming the file and field; nothing written;
- 3: an output could not be written (:class:`dse.errors.OutputError`, or any ``OSError`` on
  standard output other than a closed pipe: a read-only folder, a path under a regular file,
  a full disk), one line naming the path and the operating system's reason; no file is left
  half-written;
- 130: interrupted (Ctrl-C);
- 141 (128 + SIGPIPE, what a tool killed by SIGPIPE reports): standard output was closed
  early (``omniconv dse CONFIG --json | head``); quietly, as the reader asked for no more.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from dse.errors import InputError, OutputError

__all__ = ["main", "EXIT_OK", "EXIT_FAILED", "EXIT_INPUT", "EXIT_OUTPUT", "EXIT_INTERRUPTED",
           "EXIT_PIPE"]

#: Exit statuses (see the module docstring).
EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_OUTPUT = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_PIPE = 130, 141

#: subcommand -> (module, one-line help)
COMMANDS = {
    "info": ("omniconv.info", "layers, shapes and MACs of a network"),
    "dse": ("omniconv.flow", "explore hardware and per-layer mapping; write design.json"),
    "verilog": ("omniconv.flow", "explore if stale, then generate overlay.v"),
    "verify": ("omniconv.verify", "run the generated datapath in Verilator on the verify network"),
    "run": ("omniconv.run", "run a quantised (QDQ) network on the simulated overlay: "
                            "float32 in, onnxruntime's outputs out"),
    "lint": ("omniconv.lint", "Verilator lint (-Wall, documented waivers) of overlay.v"),
    "synth": ("omniconv.synth", "Yosys (+ nextpnr for ECP5) resources and Fmax"),
    "report": ("omniconv.report", "plots and an HTML page for a build folder"),
    "sweep": ("omniconv.sweep", "the explorer over networks x boards x precisions x "
                                "objectives, on Dask; sweep.csv and sweep.png"),
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


class _Stdout:
    """Standard output whose write errors name it: an ``OSError`` other than a closed pipe
    becomes :class:`OutputError` ("cannot write standard output: No space left on device")."""

    def __init__(self, stream):
        self._stream = stream

    def _guard(self, method, *args):
        try:
            return method(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise BrokenPipeError(*exc.args) from None
            raise OutputError.from_os_error(exc, "standard output") from None

    def write(self, text):
        return self._guard(self._stream.write, text)

    def writelines(self, lines):
        return self._guard(self._stream.writelines, lines)

    def flush(self):
        return self._guard(self._stream.flush)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _silence_stdout() -> None:
    """After a closed pipe: point file descriptor 1 at /dev/null so the interpreter's final
    flush of what is still buffered raises nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_missing", None):
        print(f"omniconv {args._missing}: not built yet in this version of omniconv",
              file=sys.stderr)
        return EXIT_INPUT
    real_stdout = sys.stdout
    sys.stdout = _Stdout(real_stdout)
    try:
        status = int(args._run(args) or 0)
        sys.stdout.flush()
        return status
    except InputError as exc:
        print(f"omniconv {args.command}: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except OutputError as exc:
        print(f"omniconv {args.command}: {exc}", file=sys.stderr)
        return EXIT_OUTPUT
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_PIPE
    except KeyboardInterrupt:
        print("omniconv: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        sys.stdout = real_stdout


if __name__ == "__main__":
    sys.exit(main())
