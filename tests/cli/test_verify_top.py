"""``omniconv verify`` of a whole network on the overlay top, from DRAM (``--mode top``, and
``auto`` for a design the top runs): design.json's numbers are the program's, and the
measured run equals them.

The end-to-end test builds the top once for a 4×4 overlay with 2 KiB buffers (the build
``tests/rtl/test_compile_network.py`` uses too); the refusals stop before anything is built.
"""

from __future__ import annotations

import json
import subprocess
import sys

import cli_helpers
import pytest
from test_verify import _dse_and_verify, branchy_onnx

from sim.runner import REPO_ROOT

#: A 4×4 overlay with 2 KiB buffers (layers cut into bands and chunks) on the zcu102.
SMALL = ("{rows: 4, cols: 4, act_buffer_kib: 2, weight_buffer_kib: 2, out_buffer_kib: 2, "
         "bus_bits: 128}")
TOP_SETS = {"algorithms": ["im2col", "kn2row"], "dataflows": ["ws", "os"]}


def _omniconv(*argv):
    proc = subprocess.run([sys.executable, "-m", "omniconv", *map(str, argv)], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.verilator
def test_whole_network_on_the_top_measures_design_json(tmp_path):
    onnx_path = branchy_onnx(tmp_path / "branchy.onnx")
    cfg = cli_helpers.write_config(tmp_path / "b.yaml", onnx_path.name, hardware=SMALL,
                                   board="zcu102", **TOP_SETS)
    out = tmp_path / "out"
    code, _, err = _omniconv("dse", cfg, "--out", out)
    assert code == 0, err[-3000:]
    code, _, err = _omniconv("verify", cfg, "--out", out)
    assert code == 0, err[-3000:]
    design = json.loads((out / "design.json").read_text())
    doc = json.loads((out / "verify.json").read_text())
    # design.json holds the program's numbers, which the explorer's model underestimates
    assert design["timing"]["source"] == "program"
    assert design["timing"]["model_total_cycles"] < design["total_cycles"]
    assert doc["mode"] == "overlay_top"
    assert "finished" in err                                      # progress per layer
    planned = {e["name"]: e for e in design["layers"]}
    assert [e["name"] for e in doc["layers"]] == list(planned)
    assert doc["totals"]["all_bit_exact"] is True
    for e in doc["layers"]:
        want = planned[e["name"]]
        assert (e["algorithm"], e["dataflow"]) == (want["algorithm"], want["dataflow"])
        assert e["measured_cycles"] == e["predicted_cycles"] == want["compute_cycles"]
        assert e["predicted_layer_cycles"] == want["cycles"]
        assert abs(e["measured_layer_cycles"] - want["cycles"]) <= max(8, 0.02 * want["cycles"])
    assert {o["name"]: o["op"] for o in doc["other_layer_results"]} == {"sum": "add",
                                                                         "cat": "concat"}
    assert all(o["bit_exact"] for o in doc["other_layer_results"])
    t = doc["totals"]
    assert t["predicted_cycles"] == design["total_cycles"]
    # exact, start to done, with the board's DRAM read latency (design.json's) in the model
    assert doc["dram"]["read_latency_cycles"] == design["timing"]["dram_latency_cycles"] > 0
    assert t["measured_cycles"] == t["predicted_cycles"]

    # DRAM latency and random back-pressure change the cycles, never the results
    slow = tmp_path / "slow"
    code, _, err = _omniconv("verify", cfg, "--out", slow, "--dram-latency", 40,
                             "--dram-stall", 64)
    assert code == 0, err[-3000:]
    doc2 = json.loads((slow / "verify.json").read_text())
    assert doc2["totals"]["all_bit_exact"] is True
    assert doc2["dram"]["read_latency_cycles"] == 40 and doc2["dram"]["stall_per_256"] == 64
    # predicted with the longer latency; the back-pressure only adds to it
    t2 = doc2["totals"]
    assert t2["measured_cycles"] > t2["predicted_cycles"] > t["predicted_cycles"]


def test_top_mode_refuses_a_design_it_cannot_run(tmp_path, capsys):
    """An ``is`` pin (its output words need a relayout the store cannot do): ``--mode top``
    exits 2 naming the layer, before any build."""
    cfg = cli_helpers.write_config(tmp_path / "w.yaml", "tiny", hardware="{rows: 8, cols: 8}",
                                   layers="{conv3: {dataflow: is}}")
    code, out, err = cli_helpers.run_verify(capsys, cfg, "--out", tmp_path / "o", "--mode",
                                            "top")
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert "the overlay top cannot run this design" in last and "'conv3'" in last
    assert not (tmp_path / "o" / "verify.json").exists()


def test_top_mode_takes_no_layer_selection(tmp_path, capsys):
    cfg = cli_helpers.write_config(tmp_path / "t.yaml", "tiny", hardware="{rows: 8, cols: 8}",
                                   **TOP_SETS)
    code, _, err = cli_helpers.run_verify(capsys, cfg, "--mode", "top", "--layers", "conv1")
    assert code == 2 and "--layers" in err.strip().splitlines()[-1]


@pytest.mark.parametrize("flag, bad", [("--dram-stall", "256"), ("--dram-latency", "-1"),
                                       ("--dram-latency", "x"), ("--mode", "board")])
def test_bad_top_arguments_exit_2(tmp_path, capsys, flag, bad):
    with pytest.raises(SystemExit) as exc:
        cli_helpers.run_verify(capsys, "tiny", flag, bad)
    assert exc.value.code == 2


@pytest.mark.verilator
@pytest.mark.regress
def test_tiny_on_an_f4_overlay_top_is_bit_exact(tmp_path):
    # An F(4x4) unit makes the output words 16 lanes wide on an 8-column array: the GEMM
    # layers' words hold 8 channels, and the store engine must step by 8 (box_lanes)
    cfg = tmp_path / "f4.yaml"
    cfg.write_text("network: tiny\nboard: zcu102\nalgorithms: [im2col, kn2row]\n"
                   "hardware: {rows: 8, cols: 8, winograd_m: 4, bus_bits: 64}\n")
    _, doc = _dse_and_verify(cfg, tmp_path / "out")
    assert doc["mode"] == "overlay_top"
    assert doc["totals"]["all_bit_exact"] is True
    # a 64-bit bus brings an instruction every two beats: the schedule's fetch model
    assert doc["totals"]["measured_cycles"] == doc["totals"]["predicted_cycles"]


@pytest.mark.verilator
@pytest.mark.regress
@pytest.mark.parametrize("m, hardware", [(4, "rows: 8, cols: 8, winograd_m: 4, bus_bits: 128"),
                                         (2, "rows: 8, cols: 32, winograd_m: 2, bus_bits: 256")])
def test_winograd_spans_on_the_top_are_bit_exact_and_on_design_json(tmp_path, m, hardware):
    # conv1 (3x3) and conv3 (5x5: four 3x3 pieces) pinned to Winograd: their windows are
    # loaded as spans (every other window of a row of tiles in one load.tile), F(4x4)
    # dropping the two columns between its windows
    cfg = tmp_path / "wino.yaml"
    cfg.write_text("network: tiny\nboard: zcu102\nalgorithms: [im2col, kn2row, winograd]\n"
                   f"dataflows: [ws, os]\nhardware: {{{hardware}}}\n"
                   "layers: {conv1: {algorithm: winograd}, conv3: {algorithm: winograd}}\n")
    out = tmp_path / "out"
    design, doc = _dse_and_verify(cfg, out)
    assert [(p["name"], p["variant"]) for p in design["layers"]
            if p["algorithm"] == "winograd"] == [("conv1", f"F{m}x{m}_3x3"),
                                                 ("conv3", f"F{m}x{m}_3x3")]
    assert doc["totals"]["all_bit_exact"] is True
    assert doc["totals"]["measured_cycles"] == doc["totals"]["predicted_cycles"] \
        == design["total_cycles"]
    # the program verify ran loads its windows in spans
    from dse.compiler.network import compile_network
    from dse.design import read_design
    from dse.zoo import tiny
    from rtl.isa import LoadTile

    lp, _ = compile_network(tiny(), read_design(out / "design.json"), None, image=False)
    assert any(isinstance(i, LoadTile) and i.wpitch for i in lp.program)


@pytest.mark.verilator
def test_a_board_dram_narrower_than_the_bus_paces_model_and_simulation(tmp_path):
    """A board whose DRAM moves fewer bytes a cycle than the AXI bus (0.5 GB/s at 300 MHz:
    1.67 bytes a cycle on a 16-byte bus): design.json is timed with that bandwidth, the DRAM
    model moves no more, and the two agree within 1 % (the model gives each transfer the
    whole bandwidth; in the simulation a load and a store that overlap share it)."""
    board = (REPO_ROOT / "boards" / "zcu102.yaml").read_text()
    board = board.replace("dram_gbps: 19.2", "dram_gbps: 0.5")
    assert "dram_gbps: 0.5" in board
    (tmp_path / "slow.yaml").write_text(board)
    onnx_path = branchy_onnx(tmp_path / "branchy.onnx")
    cfg = cli_helpers.write_config(tmp_path / "b.yaml", onnx_path.name, hardware=SMALL,
                                   board="slow.yaml", **TOP_SETS)
    # the same network and overlay on the zcu102's own DRAM (19.2 GB/s: the bus is the limit)
    fast_cfg = cli_helpers.write_config(tmp_path / "f.yaml", onnx_path.name, hardware=SMALL,
                                        board="zcu102", **TOP_SETS)
    out, fast = tmp_path / "out", tmp_path / "fast"
    for config, folder in ((cfg, out), (fast_cfg, fast)):
        code, _, err = _omniconv("dse", config, "--out", folder)
        assert code == 0, err[-3000:]
        code, _, err = _omniconv("verify", config, "--out", folder)
        assert code == 0, err[-3000:]
    design = json.loads((out / "design.json").read_text())
    doc = json.loads((out / "verify.json").read_text())
    assert design["timing"]["dram_bandwidth_bytes_per_cycle"] == 426 / 256  # ⌊0.5e9/300e6·256⌋
    assert doc["dram"]["bandwidth_bytes_per_cycle"] == 426 / 256
    assert doc["totals"]["all_bit_exact"] is True
    t = doc["totals"]
    assert t["predicted_cycles"] == design["total_cycles"]
    assert abs(t["measured_cycles"] - t["predicted_cycles"]) <= 0.01 * t["predicted_cycles"]
    print(f"slow DRAM: measured {t['measured_cycles']}, predicted {t['predicted_cycles']}")
    # the bandwidth binds: on the zcu102's DRAM the network runs faster
    base = json.loads((fast / "verify.json").read_text())
    assert base["dram"]["bandwidth_bytes_per_cycle"] is None
    assert base["totals"]["measured_cycles"] < 0.9 * t["measured_cycles"]
