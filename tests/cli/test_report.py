"""`omniconv report DIR` on a tiny design searched in the test; plots' data helpers."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omniconv.cli import main

pytest.importorskip("matplotlib", reason="the report extra: pip install -e '.[report]'")

PLOTS = ("latency.png", "roofline.png", "resources.png", "pareto.png", "pareto_area.png")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_design(tmp_path_factory):
    """A folder holding only the design.json of the tiny config (searched once per module)."""
    out = tmp_path_factory.mktemp("tiny")
    assert main(["dse", "tiny", "--out", str(out), "--json"]) == 0
    (out / "report.md").unlink()
    (out / "layers.csv").unlink()
    return out


@pytest.fixture
def build(tiny_design, tmp_path):
    """A fresh copy of the tiny build folder."""
    out = tmp_path / "build"
    shutil.copytree(tiny_design, out)
    return out


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _table(markdown: str, title_start: str):
    """Return (header, rows) of the Markdown table under the '## <title_start...>' heading."""
    lines = markdown.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"## {title_start}"))
    body = []
    for line in lines[at + 2:]:
        if not line.startswith("|"):
            break
        body.append([c.strip() for c in line.strip("|").split("|")])
    return body[0], body[2:]


def _number(cell: str) -> int:
    return int(cell.replace(",", ""))


def _check_png(path):
    from matplotlib.image import imread

    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC), path
    pixels = imread(path)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 300
    # a drawn plot has many colours (bars, text antialiasing), a blank canvas has one
    rgb = (pixels[..., :3] * 255).astype(np.int64)
    assert len(np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2])) > 20


@pytest.fixture(scope="module")
def reported(tiny_design, tmp_path_factory):
    """The tiny folder after one ``omniconv report``: (folder, stdout, stderr)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("reported") / "build"
    shutil.copytree(tiny_design, out)
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        assert main(["report", str(out)]) == 0
    return out, stdout.getvalue(), stderr.getvalue()


def test_report_writes_page_and_plots(reported):
    build, out, err = reported
    for name in PLOTS:
        _check_png(build / name)
    assert not (build / "verify.png").exists()          # no verify.json, no verify plot
    page = (build / "report.html").read_text()
    for name in PLOTS:
        assert f'src="{name}"' in page                  # relative paths: the folder can move
    doc = json.loads((build / "design.json").read_text())
    for layer in doc["layers"]:
        assert f"<td>{layer['name']}</td>" in page
    assert "LFE5U-85F" in page                         # the board's table (ecp5-85k's part)
    assert "| layer | algorithm |" in out
    assert "drawing latency.png" in err                 # progress goes to stderr
    assert not [p for p in build.iterdir() if p.name.startswith(".")]   # no temp files


def test_markdown_totals_are_the_sums_of_the_layers(reported):
    build, out, _ = reported
    head, rows = _table(out, "Layers")
    doc = json.loads((build / "design.json").read_text())
    layers, total = rows[:-1], rows[-1]
    assert [r[0] for r in layers] == [lay["name"] for lay in doc["layers"]]
    assert total[0] == "**total**"
    columns = {"MACs": "macs", "cycles": "cycles", "compute": "compute_cycles",
               "transform": "transform_cycles", "memory": "memory_cycles",
               "DRAM bytes": "dram_bytes"}
    for column, key in columns.items():
        i = head.index(column)
        assert _number(total[i]) == sum(lay[key] for lay in doc["layers"]), column
        assert [_number(r[i]) for r in layers] == [lay[key] for lay in doc["layers"]]
    # the achieved rate of the total row: all MACs over all layer time at the clock
    macs = sum(lay["macs"] for lay in doc["layers"])
    seconds = sum(lay["cycles"] for lay in doc["layers"]) / (doc["clock_mhz"] * 1e6)
    assert float(total[head.index("GMAC/s")].replace(",", "")) == pytest.approx(
        macs / seconds / 1e9, abs=0.006)
    # and the reconciliation ends at design.json's own total
    _, parts = _table(out, "Where the total")
    assert _number(parts[-1][1]) == doc["total_cycles"]
    assert sum(_number(r[1]) for r in parts[:-1]) == doc["total_cycles"]


def _companions(build):
    """Write a verify.json and a resources.json (their documented fields) beside the design."""
    doc = json.loads((build / "design.json").read_text())
    layers = [{"name": lay["name"], "algorithm": lay["algorithm"], "variant": lay["variant"],
               "dataflow": lay["dataflow"], "predicted_cycles": 1000 * (i + 1),
               "measured_cycles": 1000 * (i + 1) + 10 * i, "bit_exact": i != 1,
               "sqnr_db": None} for i, lay in enumerate(doc["layers"])]
    verify = {"layers": layers, "totals": {}}
    (build / "verify.json").write_text(json.dumps(verify))
    resources = {"flow": "ecp5", "dsp": 64, "lut": 12345, "ff": 6789, "bram_blocks": 100,
                 "bram_kind": "DP16KD", "uram_blocks": 0, "fmax_mhz": 111.5,
                 "speed_grade": "6"}
    (build / "resources.json").write_text(json.dumps(resources))
    return doc, verify


def test_verify_and_resources_are_shown(build, capsys):
    doc, verify = _companions(build)
    assert main(["report", str(build), "--config", "tiny"]) == 0
    out = capsys.readouterr().out
    _check_png(build / "verify.png")
    page = (build / "report.html").read_text()
    assert 'src="verify.png"' in page
    assert "network: tiny" in page                      # the config file's text
    head, rows = _table(out, "Verification")
    n = len(doc["layers"])
    assert _number(rows[-1][head.index("predicted")]) == 1000 * n * (n + 1) // 2
    assert _number(rows[-1][head.index("measured")]) == 1000 * n * (n + 1) // 2 + 10 * (
        n * (n - 1) // 2)
    assert rows[1][head.index("bit exact")] == "**NO**" and rows[-1][-2] == "**NO**"
    # hand-computed error of the second layer: (2000 - 2010) / 2010
    assert rows[1][head.index("error")] == f"{100 * -10 / 2010:+.1f}%"
    head, rows = _table(out, "Resources")
    by_name = {r[0]: r for r in rows}
    assert by_name["LUT"][head.index("Yosys")] == "12,345"
    assert by_name["LUT"][head.index("Yosys %")] == f"{100 * 12345 / 83640:.1f}%"  # LFE5U-85F
    assert by_name["DSP"][head.index("model")] == f"{doc['resources']['dsp']:,}"
    assert "Fmax 111.5 MHz" in out
    # a later report without verify.json drops the stale plot
    (build / "verify.json").unlink()
    assert main(["report", str(build)]) == 0
    assert not (build / "verify.png").exists()


def test_missing_design_exits_2_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "design.json" in err and "missing" in err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def _break(field):
    def edit(doc):
        target, key = doc, field
        if "." in field:
            head, key = field.split(".")
            target = doc[head][0] if head == "layers" else doc[head]
        if key.startswith("-"):
            del target[key[1:]]
        else:
            target[key] = "many"
    return edit


@pytest.mark.parametrize("name, breaker, message", [
    ("design.json", "not json {", r"design\.json: line 1: is not valid JSON"),
    ("design.json", [1, 2], r"must be a JSON object"),
    ("design.json", _break("-layers"), r"design\.json: layers: is required"),
    ("design.json", _break("layers.-cycles"), r"layers\[0\]\.cycles: is required"),
    ("design.json", _break("layers.cycles"), r"layers\[0\]\.cycles: must be a finite number"),
    ("design.json", _break("clock_mhz"), r"clock_mhz: must be a finite number"),
    ("design.json", _break("resources.dsp"), r"resources\.dsp: must be a finite number"),
    ("verify.json", {"layers": []}, r"verify\.json: layers: must be a non-empty list"),
    ("verify.json", {"layers": [{"name": "conv1", "predicted_cycles": 5}]},
     r"verify\.json: layers\[0\]\.measured_cycles: must be a finite number"),
    ("resources.json", {"dsp": 1, "lut": 2, "ff": -3, "bram_blocks": 4},
     r"resources\.json: ff: must be non-negative"),
])
def test_bad_input_exits_2_and_writes_nothing(build, capsys, name, breaker, message):
    path = build / name
    if callable(breaker):
        doc = json.loads(path.read_text())
        breaker(doc)
        path.write_text(json.dumps(doc))
    else:
        path.write_text(breaker if isinstance(breaker, str) else json.dumps(breaker))
    before = _snapshot(build)
    assert main(["report", str(build)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("omniconv report: ")
    assert re.search(message, err), err
    assert _snapshot(build) == before


def test_board_must_be_the_designs(build, capsys):
    assert main(["report", str(build), "--board", "zcu102"]) == 2
    assert "must be the design's board 'ecp5-85k'" in capsys.readouterr().err
    assert sorted(p.name for p in build.iterdir()) == ["design.json"]


# -- the data behind the plots ---------------------------------------------------------------

class _Layer:
    def __init__(self, cycles, compute_cycles, transform_cycles, memory_cycles):
        self.cycles, self.compute_cycles = cycles, compute_cycles
        self.transform_cycles, self.memory_cycles = transform_cycles, memory_cycles


def test_latency_stack_by_hand():
    from omniconv.plots import latency_stack

    # 250 on-chip cycles of which 150 outside the array; 300 DRAM cycles, 20 exposed:
    # cycles = 20 + max(250, 300 - 20) = 300, so 50 of DRAM time shows
    assert latency_stack(_Layer(300, 250, 150, 300)) == (100, 150, 50)
    # compute-bound with everything hidden: no DRAM part
    assert latency_stack(_Layer(1000, 1000, 200, 500)) == (800, 200, 0)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**7), st.integers(0, 10**7), st.integers(0, 10**7),
       st.integers(0, 10**7), st.integers(0, 10**5))
def test_latency_stack_matches_the_overlap_formula(busy, transform, memory, exposed, layout):
    """The parts are what each stage adds: the double-buffered overlap, written out."""
    from omniconv.plots import latency_stack

    exposed = min(exposed, memory)
    compute = busy + transform
    cycles = exposed + max(compute, memory - exposed) + layout
    parts = latency_stack(_Layer(cycles, compute, transform, memory))
    assert parts == (busy, transform, cycles - compute)
    assert sum(parts) == cycles and min(parts) >= 0


def test_resource_budget_counts_uram_as_block_rams():
    from dse.board import load_board
    from omniconv.plots import resource_budget

    board = load_board("alveo-u200")
    assert board.uram_blocks > 0 and board.bram_block_kbits == 36

    class _Design:
        resources = {"dsp": 1, "lut": 2, "ff": 3, "bram_blocks": 4}

    rows = {r["field"]: r for r in resource_budget(_Design(), board,
                                                   {"dsp": 5, "lut": 6, "ff": 7,
                                                    "bram_blocks": 8, "uram_blocks": 2})}
    # a URAM288 holds 288 / 36 = 8 RAMB36 blocks' worth
    assert rows["bram_blocks"]["budget"] == board.bram_blocks + 8 * board.uram_blocks
    assert rows["bram_blocks"]["yosys"] == 8 + 8 * 2
    assert rows["dsp"] == {"field": "dsp", "resource": "DSP", "budget": board.dsp, "model": 1,
                           "yosys": 5}


def test_winograd_gain_by_hand():
    from omniconv.plots import _winograd_gain

    # F(2x2,3x3): 2*2 outputs x 9 taps = 36 multiplications direct, 4*4 = 16 transformed
    assert _winograd_gain("F2x2_3x3") == 36 / 16
    # F(4x4,3x3): 16 x 9 = 144 against 6*6 = 36
    assert _winograd_gain("F4x4_3x3") == 4.0
    assert _winograd_gain("fft8") == 0.0


def test_missing_matplotlib_says_how_to_install(build, capsys, monkeypatch):
    import sys

    monkeypatch.delitem(sys.modules, "omniconv.plots", raising=False)
    for name in [m for m in sys.modules if m.split(".")[0] == "matplotlib"] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)          # importing it now fails
    assert main(["report", str(build)]) == 2
    err = capsys.readouterr().err
    assert "matplotlib is not installed" in err and ".[report]" in err
    assert sorted(p.name for p in build.iterdir()) == ["design.json"]


def test_roofline_labels_stay_apart_and_inside_on_a_crowded_plot():
    """80 layers with long ONNX names on one plot: every drawn label lies inside the axes,
    no two overlap, none is longer than LABEL_CHARS (plus a group's count), the layers with
    the most cycles get theirs first."""
    from omniconv import plots

    rng = np.random.default_rng(3)
    fig = plots._figure(7.5, 5.0)
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.set_yscale("log")
    xs, ys = 10 ** rng.uniform(0, 2, 80), 10 ** rng.uniform(1, 3, 80)
    ax.scatter(xs, ys)
    names = [f"/layer{i // 20}/layer{i // 20}.{i % 3}/downsample/downsample.0/Conv_{i}"
             for i in range(80)]
    cycles = rng.integers(1, 10**6, 80)
    groups = plots._clusters(list(zip(names, xs, ys, cycles)))
    placed = plots._place_labels(fig, ax, groups, markers=list(zip(xs, ys)))
    labels = [t for t in ax.texts]
    assert 0 < placed == len(labels) < len(groups)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    boxes = [t.get_window_extent(renderer) for t in labels]
    for i, box in enumerate(boxes):
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1
        assert inside.y0 <= box.y0 and box.y1 <= inside.y1
        assert not any(box.overlaps(other) for other in boxes[i + 1:])
    for t in labels:
        assert len(t.get_text().split(" +")[0]) <= plots.LABEL_CHARS
    busiest = max(groups, key=lambda g: g[3])
    assert labels[0].xy == (busiest[1], busiest[2])
