"""``layers.csv`` beside design.json and the array utilisation column of the report tables."""

from __future__ import annotations

import csv
import json

import pytest

from dse.design import CSV_FIELDS, LayerPlan, read_design, table_lines, utilisation
from dse.board import load_board
from omniconv.cli import main


def test_dse_writes_layers_csv_matching_design_json(tmp_path, capsys):
    assert main(["dse", "tiny", "--out", str(tmp_path)]) == 0
    assert "layers.csv" in capsys.readouterr().out
    doc = json.loads((tmp_path / "design.json").read_text())
    with open(tmp_path / "layers.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_FIELDS
    assert [r["name"] for r in rows] == [lay["name"] for lay in doc["layers"]]
    n_pe = doc["hardware"]["rows"] * doc["hardware"]["cols"]
    for row, lay in zip(rows, doc["layers"]):
        for key in ("algorithm", "variant", "dataflow"):
            assert row[key] == (lay[key] or "")
        for key in ("macs", "cycles", "compute_cycles", "transform_cycles", "memory_cycles",
                    "dram_bytes"):
            assert int(row[key]) == lay[key]
        assert float(row["utilisation"]) == pytest.approx(
            lay["macs"] / (n_pe * lay["compute_cycles"]), abs=5e-5)
        # the DRAM port's share of the layer's time: the narrower of the bus and the board
        board = load_board("ecp5-85k")
        per_cycle = min(doc["hardware"]["bus_bits"] / 8, board.dram_gbps * 1e3 / doc["clock_mhz"])
        dram = float(row["dram_utilisation"])
        assert dram == pytest.approx(lay["dram_bytes"] / (lay["cycles"] * per_cycle), abs=5e-5)
        assert 0 < dram <= 1 + 5e-5          # a layer is never shorter than its transfers
    report = (tmp_path / "report.md").read_text()
    assert "| utilisation | DRAM use |" in report
    design = read_design(tmp_path / "design.json")
    first = design.layers[0]
    assert f"{100 * utilisation(first, 8, 8):.1f}%" in report


def test_utilisation_formula_and_missing_values():
    lay = LayerPlan(name="c", algorithm="im2col", variant="", dataflow="ws", tiling={},
                    macs=6400, cycles=150, compute_cycles=100, transform_cycles=10,
                    memory_cycles=50, dram_bytes=10)
    assert utilisation(lay, 8, 8) == 1.0
    assert utilisation(lay, 4, 8) == 2.0            # Winograd-like: fewer multiplies than MACs
    assert utilisation(lay, None, 8) is None
    zero = LayerPlan(**{**lay.__dict__, "compute_cycles": 0})
    assert utilisation(zero, 8, 8) is None
    assert table_lines([lay], 8, 8)[2].endswith("| 100.0% |")
    assert "utilisation" not in table_lines([lay])[0]


def test_report_table_has_utilisation(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from omniconv.report import layer_table

    assert main(["dse", "tiny", "--out", str(tmp_path)]) == 0
    design = read_design(tmp_path / "design.json")
    head, rows = layer_table(design)
    col = head.index("utilisation")
    for row, lay in zip(rows, design.layers):
        assert row[col] == f"{100 * utilisation(lay, 8, 8):.1f}%"
    macs = sum(lay.macs for lay in design.layers)
    compute = sum(lay.compute_cycles for lay in design.layers)
    assert rows[-1][col] == f"{100 * macs / (64 * compute):.1f}%"
