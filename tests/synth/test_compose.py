"""Composed synthesis estimate: module parsing, block identification, composition arithmetic.

Expectations are derived by hand from small hand-written Verilog, not from the code under
test.  Real synthesis (composed against whole) only under ``regress``.
"""

from __future__ import annotations

import pytest

from omniconv.compose import (blackbox_stub, compose_cells, dedup_design, distinct_blocks,
                              instance_counts, module_keys, parse_modules)

# top -> 2 × mid; mid -> leaf_a, leaf_b (same body as leaf_a), leaf_c (different body).
# Names are escaped like Amaranth's, and each module carries the backend's numbered helper.
DESIGN = r"""
(* top =  1  *)
module top(clk, x, y);
  reg \$auto$verilog_backend.cc:2355:dump_module$1  = 0;
  input clk;
  input [7:0] x;
  output [7:0] y;
  \top.m0  m0 (
    .clk(clk), .x(x)
  );
  \top.m1  m1 (
    .clk(clk), .x(x), .y(y)
  );
endmodule

module \top.m0 (clk, x, y);
  reg \$auto$verilog_backend.cc:2355:dump_module$2  = 0;
  input clk;
  input [7:0] x;
  output [7:0] y;
  \top.m0.a  a (
    .clk(clk), .x(x)
  );
  \top.m0.b  b (
    .clk(clk), .x(x)
  );
  \top.m0.c  c (
    .clk(clk), .x(x), .y(y)
  );
endmodule

module \top.m1 (clk, x, y);
  reg \$auto$verilog_backend.cc:2355:dump_module$7  = 0;
  input clk;
  input [7:0] x;
  output [7:0] y;
  \top.m1.a  a (
    .clk(clk), .x(x)
  );
  \top.m1.b  b (
    .clk(clk), .x(x)
  );
  \top.m1.c  c (
    .clk(clk), .x(x), .y(y)
  );
endmodule

module \top.m0.a (clk, x, y);
  reg \$auto$verilog_backend.cc:2355:dump_module$3  = 0;
  input clk;
  input [7:0] x;
  output [7:0] y;
  reg [7:0] y;
  always @(posedge clk)
    y <= x;
endmodule

module \top.m0.b (clk, x, y);
  reg \$auto$verilog_backend.cc:2355:dump_module$4  = 0;
  input clk;
  input [7:0] x;
  output [7:0] y;
  reg [7:0] y;
  always @(posedge clk)
    y <= x;
endmodule

module \top.m0.c (clk, x, y);
  reg \$auto$verilog_backend.cc:2355:dump_module$5  = 0;
  input clk;
  input [7:0] x;
  output [7:0] y;
  reg [7:0] y;
  always @(posedge clk)
    y <= x + 8'h01;
endmodule

module \top.m1.a (clk, x, y);
  reg \$auto$verilog_backend.cc:2355:dump_module$8  = 0;
  input clk;
  input [7:0] x;
  output [7:0] y;
  reg [7:0] y;
  always @(posedge clk)
    y <= x;
endmodule

module \top.m1.b (clk, x, y);
  reg \$auto$verilog_backend.cc:2355:dump_module$9  = 0;
  input clk;
  input [7:0] x;
  output [7:0] y;
  reg [7:0] y;
  always @(posedge clk)
    y <= x;
endmodule

module \top.m1.c (clk, x, y);
  reg \$auto$verilog_backend.cc:2355:dump_module$10  = 0;
  input clk;
  input [7:0] x;
  output [7:0] y;
  reg [7:0] y;
  always @(posedge clk)
    y <= x + 8'h01;
endmodule
"""


@pytest.fixture(scope="module")
def modules():
    return parse_modules(DESIGN)


def test_parse_finds_modules_and_children(modules):
    assert set(modules) == {"top", r"\top.m0", r"\top.m1", r"\top.m0.a", r"\top.m0.b",
                            r"\top.m0.c", r"\top.m1.a", r"\top.m1.b", r"\top.m1.c"}
    assert modules["top"].children == ((r"\top.m0", "m0"), (r"\top.m1", "m1"))
    assert [c for c, _ in modules[r"\top.m0"].children] == [r"\top.m0.a", r"\top.m0.b",
                                                            r"\top.m0.c"]
    assert modules[r"\top.m0.a"].children == ()
    assert modules[r"\top.m0.a"].lines[-1] == "endmodule"


def test_keys_equal_exactly_for_equal_logic(modules):
    keys = module_keys(modules, "top")
    # a and b differ only in name and the backend's helper number: one block
    assert keys[r"\top.m0.a"] == keys[r"\top.m0.b"] == keys[r"\top.m1.a"] == keys[r"\top.m1.b"]
    assert keys[r"\top.m0.c"] == keys[r"\top.m1.c"] != keys[r"\top.m0.a"]
    # m0 and m1 have the same children's logic: one block
    assert keys[r"\top.m0"] == keys[r"\top.m1"]
    assert len({keys[n] for n in keys}) == 4      # top, mid, plain register, incrementer


def test_key_changes_when_a_child_changes():
    changed = DESIGN.replace("y <= x + 8'h01;\nendmodule\n\nmodule \\top.m1.a",
                             "y <= x + 8'h02;\nendmodule\n\nmodule \\top.m1.a")
    assert changed != DESIGN
    keys = module_keys(parse_modules(changed), "top")
    assert keys[r"\top.m0.c"] != keys[r"\top.m1.c"]
    assert keys[r"\top.m0"] != keys[r"\top.m1"]   # the parent sees its child's change


def test_instance_counts_and_blocks(modules):
    counts = instance_counts(modules, "top")
    assert counts["top"] == 1 and counts[r"\top.m0"] == 1 and counts[r"\top.m1.c"] == 1
    blocks = distinct_blocks(modules, "top")
    assert blocks[0].name == "top"
    by_instances = sorted(b.instances for b in blocks)
    # top 1, mid 2 (m0, m1), register 4 (a, b in each), incrementer 2
    assert by_instances == [1, 2, 2, 4]


def test_nested_repeats_multiply():
    text = DESIGN.replace("  \\top.m1  m1 (\n    .clk(clk), .x(x), .y(y)\n  );",
                          "  \\top.m0  m1 (\n    .clk(clk), .x(x), .y(y)\n  );\n"
                          "  \\top.m0  m2 (\n    .clk(clk), .x(x)\n  );")
    counts = instance_counts(parse_modules(text), "top")
    assert counts[r"\top.m0"] == 3 and counts[r"\top.m0.a"] == 3
    assert r"\top.m1" not in counts


def test_compose_cells_arithmetic():
    own = {"t": {"FDRE": 3, "LUT2": 1}, "p": {"DSP48E2": 1, "FDRE": 40, "LUT3": 5}}
    # hand sum: FDRE 3 + 16·40, LUT2 1, LUT3 16·5, DSP 16
    assert compose_cells(own, {"t": 1, "p": 16}) == {"FDRE": 643, "LUT2": 1, "LUT3": 80,
                                                     "DSP48E2": 16}
    with pytest.raises(ValueError, match="own_cells must have every block"):
        compose_cells(own, {"t": 1, "q": 2})
    with pytest.raises(ValueError, match="non-negative integer"):
        compose_cells(own, {"t": -1})


def test_dedup_design_has_each_block_once(modules):
    text, names = dedup_design(modules, "top")
    assert len(names) == 4
    assert text.count("\nmodule ") + text.startswith("module ") == 4
    again = parse_modules(text)
    top = names[module_keys(modules, "top")["top"]]
    # the de-duplicated design elaborates to the same instance multiset
    assert sorted(instance_counts(again, top).values()) == [1, 2, 2, 4]


def test_blackbox_stub_keeps_ports(modules):
    stub = blackbox_stub(modules[r"\top.m0.c"], "b_x")
    assert stub.startswith("(* blackbox *)\nmodule b_x (clk, x, y);")
    assert "input [7:0] x;" in stub and "output [7:0] y;" in stub and "always" not in stub


def test_parse_refusals():
    with pytest.raises(ValueError, match="must end with endmodule"):
        parse_modules("module a(x);\n  input x;\n")
    with pytest.raises(ValueError, match="defined once"):
        parse_modules("module a(x);\nendmodule\nmodule a(x);\nendmodule\n")
    with pytest.raises(TypeError):
        parse_modules(b"module a;")
    with pytest.raises(ValueError, match="top must be a module"):
        module_keys(parse_modules(DESIGN), "nope")


@pytest.mark.regress
def test_composed_matches_whole_on_tiny_array(tmp_path):
    """Real Yosys: a 2×2 overlay, composed against whole (about 2 minutes)."""
    from omniconv.compose import composed_synthesis, whole_synthesis
    from omniconv.overlay import overlay_limits
    from rtl.conv_datapath import generate_verilog
    from rtl.params import DatapathLimits
    from rtl.params import OverlayParams

    params = OverlayParams(rows=2, cols=2, act_buffer_kib=1, weight_buffer_kib=1,
                           out_buffer_kib=1)
    text = generate_verilog(params, DatapathLimits(**overlay_limits(params, 8)),
                            target="xcup", name="overlay")
    path = tmp_path / "overlay.v"
    path.write_text(text)
    whole = whole_synthesis(path, "overlay", "xcup", tmp_path / "whole", progress=False)
    composed = composed_synthesis(path, "overlay", "xcup", tmp_path / "comp", cache_dir=None,
                                  progress=False)
    # docs/composition.md: DSP and BRAM exact, LUT and FF within 10 %, never below whole
    assert composed.dsp == whole.dsp and composed.bram_blocks == whole.bram_blocks
    for field in ("lut", "ff"):
        w, c = getattr(whole, field), getattr(composed, field)
        assert w <= c <= 1.10 * w, (field, w, c)


def test_composed_synthesis_with_a_fake_yosys(tmp_path, monkeypatch, modules):
    """The whole pipeline on the hand design, Yosys replaced by a script that writes a stat.

    Hand-set own cells: top 1 FDRE; mid 2 LUT2; register 8 FDRE; incrementer 8 FDRE +
    2 CARRY4 + 1 INV.  Composed by hand: FDRE 1 + 4·8 + 2·8 = 49, LUT 2·2 + 2·1 = 6
    (LUT2 and INV), CARRY4 2·2 = 4.
    """
    import json
    import sys

    from omniconv import yosys
    from omniconv.compose import composed_synthesis

    keys = module_keys(modules, "top")
    b = {n: f"b_{keys[n][:16]}" for n in keys}
    stat = {"modules": {
        "\\" + b["top"]: {"num_cells_by_type": {"FDRE": 1, b[r"\top.m0"]: 2}},
        "\\" + b[r"\top.m0"]: {"num_cells_by_type": {"LUT2": 2, b[r"\top.m0.a"]: 2,
                                                     b[r"\top.m0.c"]: 1}},
        "\\" + b[r"\top.m0.a"]: {"num_cells_by_type": {"FDRE": 8}},
        "\\" + b[r"\top.m0.c"]: {"num_cells_by_type": {"FDRE": 8, "CARRY4": 2, "INV": 1}},
    }}
    code = (f"import json; open('yosys.log', 'w').write('ok'); "
            f"open('stat.json', 'w').write(json.dumps({stat!r}))")
    monkeypatch.setattr(yosys, "_launcher", lambda tool: [sys.executable, "-c", code])
    path = tmp_path / "d.v"
    path.write_text(DESIGN)
    cache = tmp_path / "cache"
    r = composed_synthesis(path, "top", "xcup", tmp_path / "w", cache_dir=cache,
                           progress=False)
    assert (r.ff, r.lut, r.carry, r.dsp) == (49, 6, 4, 0)
    assert r.netlist_json is None
    script = (tmp_path / "w" / "synth.ys").read_text()
    assert "-flatten" not in script and f"-top {b['top']}" in script
    blocks = json.loads((tmp_path / "w" / "blocks.json").read_text())
    assert sorted(x["instances"] for x in blocks) == [1, 2, 2, 4]
    # second estimate: every block cached, the tool must not run
    monkeypatch.setattr(yosys, "_launcher", lambda tool: [sys.executable, "-c", "exit(3)"])
    again = composed_synthesis(path, "top", "xcup", tmp_path / "w2", cache_dir=cache,
                               progress=False)
    assert dict(again.cells_by_type) == dict(r.cells_by_type)
    assert all(x["cached"] for x in json.loads((tmp_path / "w2" / "blocks.json").read_text()))
    # a lost child entry: its cached parent must be synthesised again, not black-boxed
    child_entry = [f for f in cache.rglob("*.json")
                   if json.loads(f.read_text())["module"] == r"\top.m0.c"]
    assert len(child_entry) == 1
    child_entry[0].unlink()
    monkeypatch.setattr(yosys, "_launcher", lambda tool: [sys.executable, "-c", code])
    third = composed_synthesis(path, "top", "xcup", tmp_path / "w3", cache_dir=cache,
                               progress=False)
    assert dict(third.cells_by_type) == dict(r.cells_by_type)
    design = (tmp_path / "w3" / "design.v").read_text()
    assert design.count("(* blackbox *)") == 1        # only the plain register block
    mid = b[r"\top.m0"]
    assert f"(* blackbox *)\nmodule {mid}" not in design     # nor is its cached parent
