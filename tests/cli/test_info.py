"""`omniconv info NETWORK [--json]`: the JSON contract, the table, one-line errors."""

import json
import subprocess
import sys

import pytest

from omniconv import cli

LAYER_KEYS = {"name", "op", "inputs", "in_shape", "out_shape", "kernel", "stride", "padding",
              "groups", "macs"}


def _info(capsys, *argv):
    code = cli.main(["info", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_lists_every_node_with_the_contract_fields(capsys):
    code, out, err = _info(capsys, "tiny", "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert set(doc) == {"network", "input", "layers", "total_macs"}
    assert doc["network"] == "tiny" and doc["input"] == [3, 16, 16]
    assert [l["name"] for l in doc["layers"]] == ["input", "conv1", "conv1/relu", "conv2",
                                                  "conv3", "conv3/relu", "conv4"]
    for layer in doc["layers"]:
        assert set(layer) == LAYER_KEYS
    conv1 = doc["layers"][1]
    # hand-derived: 8 filters x 16x16 outputs x 3 channels x 3x3 window
    assert conv1 == {"name": "conv1", "op": "conv", "inputs": ["input"],
                     "in_shape": [3, 16, 16], "out_shape": [8, 16, 16], "kernel": [3, 3],
                     "stride": [1, 1], "padding": [1, 1, 1, 1], "groups": 1,
                     "macs": 8 * 16 * 16 * 3 * 9}
    assert doc["layers"][-1]["out_shape"] == [16, 8, 8]
    assert doc["total_macs"] == sum(l["macs"] for l in doc["layers"])


@pytest.mark.parametrize("name,published", [("vgg16", 15.47e9), ("resnet50", 4.09e9),
                                            ("googlenet", 1.58e9)])
def test_json_totals_match_published(capsys, name, published):
    code, out, _ = _info(capsys, name, "--json")
    assert code == 0
    assert json.loads(out)["total_macs"] == pytest.approx(published, rel=0.01)


def test_table_is_aligned_with_a_total(capsys):
    code, out, _ = _info(capsys, "tiny")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "tiny: input 3x16x16, 7 layers, 0.001 GMAC"
    assert lines[1].split() == ["name", "op", "out", "shape", "kernel/stride", "MACs"]
    conv4 = next(l for l in lines if l.startswith("conv4 "))
    assert conv4.split() == ["conv4", "conv", "16x8x8", "3x3/2", "73,728"]
    assert lines[-1].split() == ["total", "980,992"]
    # right-aligned MACs column: every number ends in the same column
    ends = {len(l) for l in lines[2:] if "," in l.split()[-1]}
    assert len(ends) == 1


@pytest.mark.parametrize("argv,expected", [
    (["vgg19"], "omniconv info: vgg19: must be a built-in network (vgg16, "),
    (["missing.onnx"], "omniconv info: missing.onnx: does not exist"),
])
def test_errors_are_one_line_and_exit_2(capsys, argv, expected):
    code, out, err = _info(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith(expected) and err.count("\n") == 1


def test_malformed_yaml_is_one_line(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("input: [3, 8, 8]\nlayers:\n  - {op: conv, kernel: 3\n")
    code, out, err = _info(capsys, str(path))
    assert code == 2 and out == ""
    assert err.startswith(f"omniconv info: {path}: line ") and err.count("\n") == 1
    assert "is not valid YAML" in err


def test_console_entry_point_end_to_end():
    proc = subprocess.run([sys.executable, "-m", "omniconv", "info", "mobilenet_v2", "--json"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["total_macs"] == pytest.approx(0.30e9, rel=0.01)
    dw = [l for l in doc["layers"] if l["op"] == "conv" and l["groups"] == l["in_shape"][0] > 1]
    assert len(dw) == 17
