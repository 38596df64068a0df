"""Run a program on the overlay top in Verilator, with the DRAM model in RTL.

:func:`build_overlay_sim` converts :class:`rtl.overlay_top.OverlayTop` to Verilog and builds
it with the DRAM model (``sim/hdl/axi_dram.v``), the testbench (``sim/hdl/overlay_tb.v``) and a
C++ driver (``sim/hdl/overlay_main.cpp``) into one executable; no Python and no cocotb run
per cycle.  Builds are cached under the Verilator cache (``sim.runner``'s folder, then
``overlay/<key>``) keyed by the SHA-256 of the sources, the flags and the tool version, and
locked, so concurrent test workers share one build.

:func:`run_overlay_sim` writes the DRAM image as a hex file (one bus word a line, little-endian
inside the word), runs the executable with the program's address, the DRAM model's read
latency and back-pressure, and returns the memory as bytes afterwards, the top's status and
its ``cycles`` counter (start to done), and the wall time.  With ``trace=True`` the testbench
also logs the cycle (the top's counter) each engine takes and finishes each instruction
(``OverlayTop.trace_take`` / ``trace_done``), and :func:`instruction_spans` maps that log
onto the program: every instruction's measured (start, end), comparable with
``dse.compiler.asm.schedule``'s.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from sim.runner import (OPT_FLAGS, VERILATOR_BIN, _DEFAULT_CACHE, _MAKE_VARS, emit_verilog,
                        verilator_version)

__all__ = ["HDL", "OverlaySim", "SimResult", "build_overlay_sim", "instruction_spans",
           "layer_progress", "mem_words_for",
           "run_overlay_sim"]

#: The hand-written simulation sources.
HDL = Path(__file__).resolve().parent / "hdl"
_SOURCES = ("axi_dram.v", "overlay_tb.v", "overlay_main.cpp")


@dataclass(frozen=True)
class OverlaySim:
    """A built simulation: the executable, its bus width and memory size in words."""

    executable: Path
    bus_bits: int
    mem_words: int


@dataclass(frozen=True)
class SimResult:
    """What a run returns: ``memory`` (bytes from address 0 through the image's last word:
    everything a program may write), the top's ``ok`` (done without
    error), ``error``, ``error_code``, ``error_index``, ``cycles`` (its counter: start to
    done), ``wall_cycles`` (the testbench's, reset included), ``seconds``, and with
    ``trace`` the per-engine log: engine code (:attr:`rtl.isa.Engine.code`) → the (take,
    done) counter values of each instruction it ran, in its order."""

    memory: bytes
    ok: bool
    error: bool
    error_code: int
    error_index: int
    cycles: int
    wall_cycles: int
    seconds: float
    trace: dict | None = None


def _read_trace(path: Path) -> dict:
    """The testbench's trace file as engine code → [(take, done), ...]."""
    takes: dict = {e: [] for e in range(4)}
    dones: dict = {e: [] for e in range(4)}
    for line in path.read_text().split("\n"):
        fields = line.split()
        if len(fields) != 3:            # blank, or the last line of a file still written
            continue
        take, done, cycle = fields
        take, done, cycle = int(take, 16), int(done, 16), int(cycle)
        for e in range(4):
            if take >> e & 1:
                takes[e].append(cycle)
            if done >> e & 1:
                dones[e].append(cycle)
    return {e: list(zip(takes[e], dones[e])) for e in range(4)}


def instruction_spans(program, trace: dict) -> list:
    """Each instruction's measured (take, done) cycles, in program order, from a run's
    ``trace``; ``finish`` (run by the controller itself) gets None.

    Cycles count from the start pulse's cycle, 0, as ``dse.compiler.asm.schedule``'s do
    from ``START_CYCLES`` on and as the top's final ``cycles`` does (the cycle ``done``
    rises in).  The trace logs the top's ``cycles`` counter, which reads k − 1 in cycle k
    (it counts the cycles before), so each value is one more than the trace's.

    Raises
    ------
    ValueError
        If the trace does not hold one (take, done) per engine instruction.
    """
    left = {e: list(v) for e, v in trace.items()}
    out = []
    for inst in program:
        if inst.ENGINE is None:
            out.append(None)
            continue
        queue = left[inst.ENGINE.code]
        if not queue:
            raise ValueError(f"trace has fewer {inst.ENGINE.value} instructions than the "
                             f"program")
        take, done = queue.pop(0)
        out.append((take + 1, done + 1))
    if any(left.values()):
        raise ValueError("trace has more instructions than the program")
    return out


def build_overlay_sim(top, *, mem_words: int = 1 << 16, cache_dir: Path | None = None
                      ) -> OverlaySim:
    """Build (or reuse) the Verilator executable of ``top`` (an ``OverlayTop``) on the DRAM
    model of ``mem_words`` bus words."""
    if not isinstance(mem_words, int) or isinstance(mem_words, bool) or mem_words < 1:
        raise ValueError(f"mem_words must be a positive integer, not {mem_words!r}")
    bus_bits = len(top.m_axi_rdata)
    verilog = emit_verilog(top, "overlay_top")
    sources = {name: (HDL / name).read_text() for name in _SOURCES}
    flags = ["--cc", "--exe", "--build", "-j", "2", "-Wno-fatal", "-Wno-lint", "-Wno-style",
             "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", *OPT_FLAGS,
             f"-GDATA_BITS={bus_bits}", f"-GMEM_WORDS={mem_words}",
             "--top-module", "overlay_tb", "-CFLAGS", "-O2"]
    key = hashlib.sha256("\0".join([verilog, *sources.values(), *flags,
                                    verilator_version()]).encode()).hexdigest()[:32]
    root = Path(cache_dir) if cache_dir is not None else _DEFAULT_CACHE
    folder = root / "overlay" / key
    executable = folder / "obj_dir" / "Voverlay_tb"
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if not executable.exists():
            (folder / "overlay_top.v").write_text(verilog)
            for name, text in sources.items():
                (folder / name).write_text(text)
            env = {**os.environ, "MAKEFLAGS": f"-- {_MAKE_VARS}",
                   "PATH": f"{VERILATOR_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
            proc = subprocess.run([str(VERILATOR_BIN / "verilator"), *flags, "overlay_top.v",
                                   "axi_dram.v", "overlay_tb.v", "overlay_main.cpp"],
                                  cwd=folder, env=env, capture_output=True, text=True)
            if proc.returncode != 0 or not executable.exists():
                shutil.rmtree(folder / "obj_dir", ignore_errors=True)
                raise RuntimeError(f"verilator build of the overlay top failed:\n"
                                   f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return OverlaySim(executable, bus_bits, mem_words)


def _hex_words(image: bytes, word_bytes: int) -> str:
    pad = (-len(image)) % word_bytes
    data = image + bytes(pad)
    return "".join(data[i:i + word_bytes][::-1].hex() + "\n"
                   for i in range(0, len(data), word_bytes))


def _read_hex(path: Path, word_bytes: int, words: int) -> bytes:
    """The first ``words`` words of a ``$writememh`` file as little-endian bytes."""
    out = bytearray(words * word_bytes)
    index = 0
    digits = 2 * word_bytes
    for line in path.read_text().split("\n"):
        line = line.strip()
        if not line or line.startswith("//"):
            continue
        if line.startswith("@"):
            index = int(line[1:], 16)
            continue
        if index >= words:
            break
        if "x" in line or "z" in line or "X" in line or "Z" in line:
            word = bytes(word_bytes)     # never written or loaded: reads as zero
        else:
            word = bytes.fromhex(line.rjust(digits, "0"))[::-1]
        out[index * word_bytes:(index + 1) * word_bytes] = word
        index += 1
    return bytes(out)


_RESULT = re.compile(r"omniconv-sim ok=(\d+) error=(\d+) error_code=(\d+) error_index=(\d+) "
                     r"cycles=(\d+) wall=(\d+)")


def run_overlay_sim(sim: OverlaySim, image: bytes, *, program: int = 0, latency: int = 0,
                    bandwidth: int = 0,
                    stall: int = 0, timeout_cycles: int = 100_000_000,
                    work_dir: Path | None = None, trace: bool = False,
                    on_progress=None, poll_seconds: float = 2.0) -> SimResult:
    """Run the program at byte address ``program`` of ``image`` (the DRAM contents from
    address 0) on ``sim``; ``latency`` cycles of read latency, ``bandwidth``/256 bytes a cycle
    shared by the ports (0: a beat a cycle each) and ``stall``/256 probability of
    back-pressure a cycle in the DRAM model.  With ``trace``, the result's ``trace`` holds
    every instruction's (take, done), and ``on_progress`` (if given) is called every
    ``poll_seconds`` while the simulation runs with the trace so far (written in blocks,
    so it lags a little)."""
    word = sim.bus_bits // 8
    if len(image) > sim.mem_words * word:
        raise ValueError(f"image must fit the DRAM model's {sim.mem_words * word} bytes, not "
                         f"{len(image)}")
    if not 0 <= bandwidth < 1 << 24:
        raise ValueError(f"bandwidth must be in [0, 2^24), not {bandwidth}")
    if not 0 <= latency < 1 << 16 or not 0 <= stall < 256:
        raise ValueError(f"latency must be in [0, 65535] and stall in [0, 255], not {latency} "
                         f"and {stall}")
    own = work_dir is None
    work = Path(work_dir) if work_dir is not None else Path(
        subprocess.check_output(["mktemp", "-d"], text=True).strip())
    try:
        work.mkdir(parents=True, exist_ok=True)
        (work / "image.hex").write_text(_hex_words(image, word))
        dump = work / "dump.hex"
        dump_words = max(1, -(-len(image) // word))
        log = work / "trace.txt"
        start = time.perf_counter()
        command = [str(sim.executable), f"+image={work / 'image.hex'}", f"+dump={dump}",
                   f"+dump_words={dump_words}", f"+program={program:x}", f"+latency={latency}",
                   f"+bandwidth={bandwidth}",
                   f"+stall={stall}", f"+timeout={timeout_cycles}",
                   *([f"+trace={log}"] if trace else [])]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) as running:
            if trace and on_progress is not None:
                while True:
                    try:                # returns as soon as the simulation ends
                        running.wait(timeout=poll_seconds)
                        break
                    except subprocess.TimeoutExpired:
                        if log.exists():
                            on_progress(_read_trace(log))
                if log.exists():                # the last layers, however quick the run
                    on_progress(_read_trace(log))
            stdout, stderr = running.communicate()
        proc = subprocess.CompletedProcess(command, running.returncode, stdout, stderr)
        seconds = time.perf_counter() - start
        match = _RESULT.search(proc.stdout)
        if match is None:
            raise RuntimeError(f"the overlay simulation printed no result (exit "
                               f"{proc.returncode}):\n{proc.stdout[-2000:]}\n"
                               f"{proc.stderr[-2000:]}")
        ok, error, code, index, cycles, wall = (int(g) for g in match.groups())
        memory = _read_hex(dump, word, dump_words)
        return SimResult(memory, bool(ok), bool(error), code, index, cycles, wall, seconds,
                         _read_trace(log) if trace else None)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def mem_words_for(image_bytes: int, bus_bits: int) -> int:
    """DRAM model words for an image: a power of two (few distinct builds), at least 2^14."""
    words = -(-image_bytes // (bus_bits // 8))
    return max(1 << 14, 1 << (words - 1).bit_length())


def layer_progress(program, layer_of, names, ends, log):
    """An ``on_progress`` callback for :func:`run_overlay_sim` that logs each layer of a
    network program once all its instructions have finished: ``program`` and ``layer_of``
    (``NetworkProgram.program`` and ``.layer_of``), ``names`` the program layers' names and
    ``ends`` each layer's modelled end cycle (by layer index)."""
    last_of = {}                               # layer → its last instruction's index
    for i, li in enumerate(layer_of):
        if li >= 0:
            last_of[li] = i
    logged: set = set()

    def progress(trace: dict) -> None:
        # the program-order prefix of finished instructions covers the layers it ends
        left = {e: len(v) for e, v in trace.items()}
        prefix = 0
        for inst in program:
            if inst.ENGINE is not None:
                if not left[inst.ENGINE.code]:
                    break
                left[inst.ENGINE.code] -= 1
            prefix += 1
        for li in sorted(li for li, i in last_of.items() if i < prefix and li not in logged):
            logged.add(li)
            log(f"  [{len(logged)}/{len(last_of)}] {names[li]} finished (model: ends at "
                f"cycle {ends[li]:,})")

    return progress
