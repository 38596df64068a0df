"""``omniconv synth --top``: the overlay top (overlay_top.v) instead of the conv datapath.

The fast tests build a real 2×2 overlay top once (seconds) and run the command with
stand-ins for Yosys and nextpnr (``omniconv.yosys._launcher``), so they check what the
command reads, where it works, what it places and what it writes -- resources_top.json
beside, never over, the datapath's resources.json -- that a top which does not fit is not
placed, and the refusal of a design the top cannot run.  The real Yosys run of the same top
(ECP5, ``--no-place``: 2.5 minutes on a quiet 2-core machine) is ``regress`` only.
"""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from omniconv import yosys
from omniconv.cli import main

#: A 2×2 int8 overlay with 2 KiB buffers and a 64-bit DRAM bus (the narrowest the top's
#: instruction fetch takes), running the tiny network: the smallest top omniconv builds.
SMALL = ("{rows: 2, cols: 2, act_buffer_kib: 2, weight_buffer_kib: 2, out_buffer_kib: 2, "
         "bus_bits: 64}")

# A stand-in for both tools, run in the tool's work folder with the tool's arguments.
# Yosys: a stat.json (and netlist.json) for the script's -top module; nextpnr: report.json.
_FAKE_TOOLS = r"""
import json, os, re, sys
argv = sys.argv[1:]
if "--report" in argv:
    open("nextpnr.log", "w").write("fake nextpnr\n")
    json.dump({"fmax": {"$glbnet$clk$TRELLIS_IO_IN": {"achieved": 61.5, "constraint": 150}},
               "utilization": {"TRELLIS_FF": {"used": 900, "available": 83640}}},
              open("report.json", "w"))
else:
    top = re.search(r"-top (\S+)", open("synth.ys").read()).group(1)
    open("yosys.log", "w").write("fake yosys\n")
    json.dump({"modules": {"\\" + top: {"num_cells_by_type": {
        "LUT4": int(os.environ.get("FAKE_LUT4", 700)), "TRELLIS_FF": 800, "MULT18X18D": 5, "DP16KD": 3, "CCU2C": 40}}}},
        open("stat.json", "w"))
    open("netlist.json", "w").write("{}")
"""


def _config(path, layers=None):
    lines = ["network: tiny", "board: ecp5-85k", "precision: 8",
             "algorithms: [im2col, kn2row]", "dataflows: [ws, os, is]", f"hardware: {SMALL}"]
    if layers:
        lines.append(f"layers: {layers}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    """The 2×2 config and a folder where ``omniconv verilog`` wrote its design, overlay.v and
    overlay_top.v (once per module: a test copies it, mtimes kept, so nothing is stale)."""
    folder = tmp_path_factory.mktemp("small")
    cfg = _config(folder / "small.yaml")
    assert main(["verilog", str(cfg), "--out", str(folder / "build")]) == 0
    assert (folder / "build" / "overlay_top.v").is_file()
    return cfg, folder / "build"


def _copy(build, out):
    shutil.copytree(build, out)
    return out


def _fake_tools(monkeypatch):
    monkeypatch.setattr(yosys, "_launcher", lambda tool: [sys.executable, "-c", _FAKE_TOOLS])


def _synth(capsys, *argv):
    code = main(["synth", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_top_writes_resources_top_json_beside_the_datapaths(small_build, tmp_path,
                                                            monkeypatch, capsys):
    _fake_tools(monkeypatch)
    cfg, build = small_build
    out = _copy(build, tmp_path / "out")
    code, stdout, err = _synth(capsys, cfg, "--top", "--out", out)
    assert code == 0, err
    assert (out / "overlay_top.v").is_file()
    assert not (out / "resources.json").exists()          # the datapath's is not touched
    doc = json.loads((out / "resources_top.json").read_text())
    assert (doc["top"], doc["verilog"], doc["flow"]) == ("overlay_top", "overlay_top.v", "ecp5")
    assert (doc["dsp"], doc["lut"], doc["ff"], doc["bram_blocks"]) == (5, 700, 800, 3)
    assert doc["fmax_mhz"] == 61.5 and str(doc["speed_grade"]) == "6" and doc["target_mhz"] == 150
    assert doc["out_of_context"] is False and doc["pnr_skipped"] is None
    for field in ("dsp_kind", "lut_kind", "bram_kind", "uram_blocks", "carry", "lutram",
                  "cells_by_type", "synth_seconds", "pnr_seconds", "composed", "model",
                  "model_error", "budget", "fits", "config", "board"):
        assert field in doc
    assert f"wrote {out / 'resources_top.json'}" in stdout
    assert "ecp5 synthesis of overlay_top" in stdout

    # Yosys ran on overlay_top.v, then on the scan wrapper around it; nextpnr placed the
    # wrapper; all under synth/top/, apart from the datapath's folders
    work = out / "synth" / "top"
    assert "synth_ecp5 -top overlay_top " in (work / "ecp5" / "synth.ys").read_text()
    assert (work / "ecp5" / "src" / "0_overlay_top.v").is_file()
    wrapper = (work / "pnr-src" / "overlay_top_pnr.v").read_text()
    assert wrapper.startswith("module overlay_top_pnr(clk, rst, scan_in, scan_en, scan_out);")
    assert "  overlay_top core (.clk(clk), .rst(rst), " in wrapper
    assert ".\\program (si[" in wrapper                     # an escaped port name
    script = (work / "ecp5-overlay_top_pnr" / "synth.ys").read_text()
    assert "synth_ecp5 -top overlay_top_pnr " in script
    assert (work / "pnr" / "report.json").is_file()
    assert sorted(p.name for p in (out / "synth").iterdir()) == ["top"]

    # the default still synthesises overlay.v into resources.json, and leaves the top's alone
    before = (out / "resources_top.json").read_text()
    code, stdout, err = _synth(capsys, cfg, "--out", out, "--no-place")
    assert code == 0, err
    data = json.loads((out / "resources.json").read_text())
    assert (data["top"], data["verilog"], data["fmax_mhz"]) == ("overlay", "overlay.v", None)
    assert "synth_ecp5 -top overlay " in (out / "synth" / "ecp5" / "synth.ys").read_text()
    assert (out / "resources_top.json").read_text() == before


def test_a_top_that_does_not_fit_is_not_placed(small_build, tmp_path, monkeypatch, capsys):
    """Yosys counts above the board: nextpnr could not place it, so it is not run; the counts
    are written and the command exits 1 saying what does not fit."""
    _fake_tools(monkeypatch)
    monkeypatch.setenv("FAKE_LUT4", "90000")                 # the ECP5-85 has 83 640
    cfg, build = small_build
    out = _copy(build, tmp_path / "out")
    code, stdout, err = _synth(capsys, cfg, "--top", "--out", out)
    assert code == 1
    assert err.strip().splitlines()[-1] == ("omniconv synth: overlay_top does not fit ecp5-85k "
                                            "(LUT4 90000 > 83640): nextpnr not run, no Fmax")
    doc = json.loads((out / "resources_top.json").read_text())
    assert doc["lut"] == 90000 and doc["fits"] is False and doc["fmax_mhz"] is None
    assert doc["pnr_skipped"] == "does not fit: LUT4 90000 > 83640"
    assert not (out / "synth" / "top" / "pnr").exists()
    assert not (out / "synth" / "top" / "pnr-src").exists()


def test_top_refuses_a_design_the_top_cannot_run(tmp_path, monkeypatch, capsys):
    """An ``is`` pin (its output words need a relayout the store cannot do): no overlay_top.v,
    so exit 2 with one line, before any tool runs and without resources_top.json."""
    monkeypatch.setattr(yosys, "_launcher", lambda tool: pytest.fail(f"{tool} was run"))
    cfg = _config(tmp_path / "is.yaml", layers="{conv3: {dataflow: is}}")
    out = tmp_path / "out"
    code, _, err = _synth(capsys, cfg, "--top", "--out", out)
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("omniconv synth: the overlay top cannot run this design (")
    assert "'conv3'" in last and last.endswith("without --top, synth synthesises the "
                                               "datapath (overlay.v)")
    assert not (out / "overlay_top.v").exists()
    assert not (out / "resources_top.json").exists() and not (out / "synth").exists()


@pytest.mark.regress
def test_top_through_yosys_on_ecp5(small_build, tmp_path, capsys):
    """Real Yosys (synth_ecp5) on the 2×2 overlay top, no place and route."""
    cfg, build = small_build
    out = _copy(build, tmp_path / "out")
    code, _, err = _synth(capsys, cfg, "--top", "--no-place", "--out", out)
    assert code == 0, err
    doc = json.loads((out / "resources_top.json").read_text())
    assert (doc["top"], doc["flow"], doc["fmax_mhz"]) == ("overlay_top", "ecp5", None)
    # the engines' address arithmetic and the datapath's multipliers, a register file, the
    # buffers and the token FIFOs: every kind of resource is used
    assert doc["dsp"] > 0 and doc["lut"] > 0 and doc["ff"] > 0 and doc["bram_blocks"] > 0
    assert doc["cells_by_type"]["TRELLIS_FF"] == doc["ff"]
    assert doc["fits"] is True
    assert not (out / "resources.json").exists() and not (out / "synth" / "top" / "pnr").exists()
