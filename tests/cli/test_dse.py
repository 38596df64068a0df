"""`omniconv dse` / `omniconv verilog` end to end on the tiny config."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dse.design import LAYER_FIELDS, RESOURCE_FIELDS, read_design
from omniconv.cli import main

TOP_FIELDS = ("config", "board", "clock_mhz", "hardware", "layers", "total_cycles",
              "latency_ms", "power_w", "energy_mj", "resources", "search_seconds")


def test_dse_writes_design_and_report(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["dse", "tiny", "--out", str(out)]) == 0
    doc = json.loads((out / "design.json").read_text())
    for key in TOP_FIELDS:
        assert key in doc
    assert list(doc["layers"][0]) == list(LAYER_FIELDS)
    assert set(RESOURCE_FIELDS) <= set(doc["resources"])
    assert doc["hardware"]["rows"] == 8 and doc["hardware"]["cols"] == 8    # tiny.yaml pins
    assert doc["latency_ms"] == pytest.approx(doc["total_cycles"] / (doc["clock_mhz"] * 1e3))
    assert "| layer | algorithm |" in (out / "report.md").read_text()
    printed = capsys.readouterr().out
    assert "| layer | algorithm |" in printed
    # reading back gives the same document
    assert read_design(out / "design.json").to_dict() == doc
    assert not [p for p in out.iterdir() if p.name.startswith(".")]     # no temp files left


def test_dse_json_prints_the_document(tmp_path, capsys):
    assert main(["dse", "tiny", "--out", str(tmp_path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "design.json").read_text())


def _config(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("network: tiny\nboard: ecp5-85k\nbogus: 1\n", r"bogus: is not a known key"),
    ("network: tiny\nboard: ecp5-85k\nhardware: {rows: 128, cols: 128}\n",
     r"hardware: pins .* do not fit board ecp5-85k"),
    ("network: tiny\nboard: ecp5-85k\nlayers: {conv2: {algorithm: fft}}\n",
     r"layers\.conv2: fft cannot run this layer"),
    ("network: tiny\nboard: ecp5-85k\nhardware: {winograd_m: 0}\n"
     "layers: {conv1: {algorithm: winograd}}\n", r"layers\.conv1: winograd needs hardware"),
    ("network: tiny\nboard: ecp5-85k\noptimizer: anneal\n",
     r"optimizer: must be one of nlp, grid, not 'anneal'"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, text, message):
    import re

    out = tmp_path / "out"
    assert main(["dse", str(_config(tmp_path, text)), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert not out.exists()


def test_verilog_reuses_a_fresh_design(tmp_path, capsys, monkeypatch):
    import omniconv.flow as flow

    # a private copy of the config, so its mtime is ours to move (the checkout's age is not)
    config = tmp_path / "tiny.yaml"
    config.write_text((Path(__file__).parents[2] / "configs" / "tiny.yaml").read_text())
    out = tmp_path / "out"
    assert main(["dse", str(config), "--out", str(out)]) == 0
    stamp = (out / "design.json").stat().st_mtime
    monkeypatch.setattr(flow, "_generate_verilog", lambda d, b, o: o / "overlay.v")
    monkeypatch.setattr(flow, "_top_files", lambda *a: None)      # overlay.v's staleness only
    assert main(["verilog", str(config), "--out", str(out)]) == 0
    assert "up to date: search skipped" in capsys.readouterr().out
    assert (out / "design.json").stat().st_mtime == stamp
    # an input newer than design.json makes it stale
    os.utime(config, (stamp + 60, stamp + 60))
    assert main(["verilog", str(config), "--out", str(out)]) == 0
    assert "searched in" in capsys.readouterr().out


def test_verilog_skips_a_fresh_overlay(tmp_path, capsys, monkeypatch):
    import omniconv.flow as flow
    import omniconv.overlay as overlay

    config = tmp_path / "tiny.yaml"
    config.write_text((Path(__file__).parents[2] / "configs" / "tiny.yaml").read_text())
    out = tmp_path / "out"
    assert main(["dse", str(config), "--out", str(out)]) == 0
    calls = []

    def fake_generate(design, board, out_dir):
        calls.append(out_dir)
        (out_dir / "overlay.v").write_text("module overlay; endmodule\n")
        return out_dir / "overlay.v"

    monkeypatch.setattr(flow, "_generate_verilog", fake_generate)
    monkeypatch.setattr(flow, "_top_files", lambda *a: None)      # overlay.v's staleness only
    assert main(["verilog", str(config), "--out", str(out)]) == 0     # missing: generated
    assert len(calls) == 1
    stamp = (out / "overlay.v").stat().st_mtime
    # newer than design.json and every generator source: not regenerated
    for p in [out / "design.json", *overlay.generator_sources()]:
        assert p.stat().st_mtime <= stamp
    assert main(["verilog", str(config), "--out", str(out)]) == 0
    assert "overlay.v is up to date: generation skipped" in capsys.readouterr().out
    assert len(calls) == 1
    # a design.json newer than overlay.v makes it stale
    os.utime(out / "design.json", (stamp + 60, stamp + 60))
    assert main(["verilog", str(config), "--out", str(out)]) == 0
    assert len(calls) == 2
    # so does a generator source newer than overlay.v
    os.utime(out / "overlay.v", (stamp + 120, stamp + 120))
    assert main(["verilog", str(config), "--out", str(out)]) == 0
    assert len(calls) == 2
    source = tmp_path / "generator.py"
    source.write_text("")
    os.utime(source, (stamp + 180, stamp + 180))
    monkeypatch.setattr(overlay, "generator_sources", lambda: [source])
    assert main(["verilog", str(config), "--out", str(out)]) == 0
    assert len(calls) == 3


def test_verilog_without_rtl_top(tmp_path, capsys, monkeypatch):
    import omniconv.flow as flow

    monkeypatch.setattr(flow, "RTL_TOP", "rtl.no_such_top_module")
    assert main(["verilog", "tiny", "--out", str(tmp_path)]) == 2
    assert "RTL top not built yet" in capsys.readouterr().err


def test_dse_if_stale_skips_a_fresh_design(tmp_path, capsys, monkeypatch):
    """`make report` runs `omniconv dse CONFIG --if-stale`: a search only when needed."""
    import omniconv.flow as flow

    config = tmp_path / "tiny.yaml"
    config.write_text((Path(__file__).parents[2] / "configs" / "tiny.yaml").read_text())
    out = tmp_path / "out"
    assert main(["dse", str(config), "--out", str(out), "--if-stale"]) == 0   # missing: search
    assert (out / "design.json").is_file() and (out / "layers.csv").is_file()
    stamp = (out / "design.json").stat().st_mtime
    (out / "layers.csv").unlink()                                   # an older build folder
    capsys.readouterr()
    monkeypatch.setattr(flow, "explore", lambda *a, **k: pytest.fail("searched again"))
    assert main(["dse", str(config), "--out", str(out), "--if-stale"]) == 0
    assert "up to date: search skipped" in capsys.readouterr().out
    assert (out / "design.json").stat().st_mtime == stamp
    assert (out / "layers.csv").is_file()
    assert main(["dse", str(config), "--out", str(out), "--if-stale", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((out / "design.json").read_text())
    monkeypatch.undo()
    os.utime(config, (stamp + 60, stamp + 60))                      # stale: searched again
    assert main(["dse", str(config), "--out", str(out), "--if-stale"]) == 0
    assert (out / "design.json").stat().st_mtime > stamp


def test_verilog_ends_with_a_summary_and_next_commands(tmp_path, capsys, monkeypatch):
    import omniconv.flow as flow

    config = tmp_path / "tiny.yaml"
    config.write_text((Path(__file__).parents[2] / "configs" / "tiny.yaml").read_text())
    out = tmp_path / "out"

    def fake_generate(design, board, out_dir):
        (out_dir / "overlay.v").write_text("module overlay; endmodule\n")
        return out_dir / "overlay.v"

    monkeypatch.setattr(flow, "_generate_verilog", fake_generate)
    monkeypatch.setattr(flow, "_top_files", lambda *a: None)      # overlay.v's staleness only
    assert main(["verilog", str(config), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "[1/2] searching" in captured.err and "[2/2] generating" in captured.err
    design = json.loads((out / "design.json").read_text())
    text = captured.out
    assert f"{design['latency_ms']:.3f} ms per inference" in text
    assert f"DSP {design['resources']['dsp']:,}/156" in text             # the ecp5-85k budget
    assert f"written: {out / 'design.json'}" in text and f"{out / 'overlay.v'}" in text
    assert f"next: omniconv verify {config}" in text
    assert main(["verilog", str(config), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"up to date: {out / 'design.json'}, {out / 'overlay.v'}" in captured.out
    assert "written:" not in captured.out and captured.err == ""


def test_a_newer_explorer_source_makes_design_json_stale(tmp_path, monkeypatch):
    """An upgraded cost model (a dse/ source or table newer than design.json) searches again,
    as a changed config does; the real list names the calibration and the cost model."""
    import omniconv.flow as flow

    sources = flow.explorer_sources()
    names = {p.name for p in sources}
    assert {"model.py", "calibration.json", "fft_sqnr.json", "params.py"} <= names
    config = tmp_path / "tiny.yaml"
    config.write_text((Path(__file__).parents[2] / "configs" / "tiny.yaml").read_text())
    out = tmp_path / "out"
    assert main(["dse", str(config), "--out", str(out)]) == 0
    stamp = (out / "design.json").stat().st_mtime
    source = tmp_path / "model.py"
    source.write_text("")
    os.utime(source, (stamp - 60, stamp - 60))
    monkeypatch.setattr(flow, "explorer_sources", lambda: [source])
    from omniconv.config import load_config

    assert not flow.is_stale(out / "design.json", load_config(config))
    os.utime(source, (stamp + 60, stamp + 60))
    assert flow.is_stale(out / "design.json", load_config(config))


def test_the_optimizer_is_the_configs_unless_the_flag_says_otherwise(tmp_path, capsys):
    """design.json records the optimiser: nlp by default, the config's ``optimizer`` key,
    ``--optimizer`` over both; ``--if-stale`` searches again for another optimiser."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("network: tiny\nboard: ecp5-85k\nhardware: {rows: 8, cols: 8}\n")
    out = tmp_path / "out"

    def optimizer(*extra):
        assert main(["dse", str(cfg), "--out", str(out), "--json", *extra]) == 0
        capsys.readouterr()
        return json.loads((out / "design.json").read_text())

    doc = optimizer()
    assert doc["optimizer"] == "nlp" and doc["evaluations"] == doc["hardware_points"] > 0
    assert optimizer("--optimizer", "grid")["optimizer"] == "grid"
    # up to date but made by the other optimiser: searched again
    assert optimizer("--if-stale")["optimizer"] == "nlp"
    assert main(["dse", str(cfg), "--out", str(out), "--if-stale"]) == 0
    assert "search skipped" in capsys.readouterr().out
    cfg.write_text(cfg.read_text() + "optimizer: grid\n")
    assert optimizer()["optimizer"] == "grid"
    assert optimizer("--optimizer", "nlp")["optimizer"] == "nlp"


@pytest.mark.parametrize("body, on_top", [
    ("board: ecp5-85k\nalgorithms: [im2col, kn2row]\nhardware: {rows: 4, cols: 4}\n", True),
    # (an FFT8 unit and the top's shell outgrow the ECP5-85's LUT budget)
    ("board: zcu102\nalgorithms: [fft]\nhardware: {rows: 4, cols: 4, fft_size: 8}\n", False),
])
def test_the_early_datapath_job_writes_what_converting_at_once_writes(tmp_path, monkeypatch,
                                                                       capsys, body, on_top):
    """From ``_BACKGROUND_PES`` PEs, overlay.v converts in a second process from the moment
    the search has fixed the hardware, as the top's datapath: the files equal those of the
    conversion in one process, and overlay.v is not older than design.json (so the next run
    skips it); for a design the top cannot run, that text is dropped and the plain datapath
    written."""
    import omniconv.flow as flow

    config = tmp_path / "small.yaml"
    config.write_text("network: tiny\n" + body)
    at_once, early = tmp_path / "at_once", tmp_path / "early"
    assert main(["verilog", str(config), "--out", str(at_once)]) == 0      # 16 PEs: in-process
    monkeypatch.setattr(flow, "_BACKGROUND_PES", 1)
    assert main(["verilog", str(config), "--out", str(early)]) == 0
    design = read_design(early / "design.json")
    assert (design.timing["source"] == "program") == on_top
    names = ["overlay.v", *(["overlay_top.v", "dram.bin", "program.bin"] if on_top else [])]
    for name in names:
        assert (early / name).read_bytes() == (at_once / name).read_bytes(), name
    assert (early / "overlay.v").stat().st_mtime >= (early / "design.json").stat().st_mtime
    capsys.readouterr()
    assert main(["verilog", str(config), "--out", str(early)]) == 0
    assert "overlay.v is up to date: generation skipped" in capsys.readouterr().out


def test_a_design_without_the_pool_engine_is_searched_again_with_it():
    """The overlay top runs pools on its pool engine, which needs rows and cols a power of
    two apart: ``omniconv.flow._pool_engine_pins`` rounds the searched sides down (a
    float network's pinned shape without it keeps the model's numbers, a quantised one's
    is an error naming the field)."""
    from types import SimpleNamespace

    from dse.errors import InputError
    from dse.zoo import resnet18
    from omniconv.config import load_config
    from omniconv.flow import _pool_engine_pins

    config = load_config("tiny_zcu102")
    net = resnet18()
    design = SimpleNamespace(hardware={"rows": 36, "cols": 64, "requant": "shift"})
    assert _pool_engine_pins(config, net, design, {}) == {"rows": 32, "cols": 64}
    assert _pool_engine_pins(config, net, design, {"cols": 64}, quantised=False) == \
        {"rows": 32, "cols": 64}
    pinned = {"rows": 36, "cols": 64}
    assert _pool_engine_pins(config, net, design, pinned, quantised=False) is None
    with pytest.raises(InputError, match=r"hardware: rows 36 and cols 64 must be a power of "
                                         r"two apart"):
        _pool_engine_pins(config, net, design, pinned)
    ok = SimpleNamespace(hardware={"rows": 32, "cols": 64})
    assert _pool_engine_pins(config, net, ok, {}) is None


def test_verilog_of_a_design_the_top_cannot_run(tmp_path, capsys):
    """tiny_fft has an FFT unit, which the overlay top has no path for: `omniconv verilog`
    writes overlay.v (the conv datapath, which runs it) and says why there is no top
    instead of failing while building one; design.json holds the model's cycles."""
    out = tmp_path / "out"
    assert main(["verilog", "tiny_fft", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert (out / "overlay.v").is_file() and not (out / "overlay_top.v").exists()
    assert "the overlay top cannot run this design yet" in text and "FFT unit" in text
    timing = json.loads((out / "design.json").read_text())["timing"]
    assert timing["source"] == "model" and "fft_size=" in timing["why"]
