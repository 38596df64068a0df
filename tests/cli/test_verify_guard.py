"""``omniconv verify`` (the per-layer datapath mode, ``--mode datapath``) before it builds
anything: ``--layers`` selection (ONNX names, nearest
names for a typo), the memory estimate and the one-line refusal of a run that would not fit.

Everything here stops before Verilog generation, so it runs in ``make test``; the one run that
builds (a ``--layers`` subset of the tiny network gives the same entry as the whole run) is
``regress``.
"""

from __future__ import annotations

import json
import time

import cli_helpers
import pytest
from cli_helpers import ConvBuilder

from omniconv.cli import main
from omniconv.verify import MEMORY_FRACTION, memory_budget, physical_memory
from sim.verify import buffer_bits

HW_4X8 = ("{rows: 4, cols: 8, a_width: 15, b_width: 18, acc_width: 42, winograd_m: 4, "
          "fft_size: 0, act_buffer_kib: 32, weight_buffer_kib: 32, out_buffer_kib: 64, "
          "bus_bits: 512}")


def write_config(path, network, hardware=HW_4X8, board="zcu102"):
    return cli_helpers.write_config(path, network, hardware=hardware, board=board)


def onnx_net(path):
    """Three convs named as torchvision's exporter names them (``/conv1/Conv`` ...)."""
    net, prev = ConvBuilder(0), "x"
    for i, (name, cin, cout, k) in enumerate([("/conv1/Conv", 3, 8, 3),
                                              ("/layer1/layer1.0/conv1/Conv", 8, 8, 3),
                                              ("/layer1/layer1.0/conv2/Conv", 8, 8, 1)]):
        prev = net.conv(name, prev, cin, cout, k, relu_name=f"/relu{i}/Relu")
    return net.save(path, [1, 3, 8, 8], prev)


run_cli = cli_helpers.run_verify


#: An overlay whose buffers hold every ResNet-18 layer (one output row of the first at least).
HW_4X8_BIG = HW_4X8.replace("acc_width: 42", "acc_width: 48").replace(
    "winograd_m: 4", "winograd_m: 0").replace(
    "act_buffer_kib: 32, weight_buffer_kib: 32, out_buffer_kib: 64",
    "act_buffer_kib: 512, weight_buffer_kib: 128, out_buffer_kib: 256")


def test_whole_resnet18_over_the_budget_is_refused_quickly_with_one_line(tmp_path, capsys):
    cfg = write_config(tmp_path / "r18.yaml", "resnet18", hardware=HW_4X8_BIG)
    start = time.perf_counter()
    code, out, err = run_cli(capsys, cfg, "--out", tmp_path / "o", "--max-memory-gb", 1.5,
                             "--mode", "datapath")
    seconds = time.perf_counter() - start
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("omniconv verify: resnet18: verifying 20 conv layers on a 4x8 "
                           "array needs about ")
    assert "more than the 1.5 GiB allowed" in last and "--layers" in last
    assert "--max-memory-gb" in last and "Traceback" not in err
    assert not (tmp_path / "o").exists()              # nothing generated, nothing written
    assert seconds < 30                               # ~2 s alone; generous under load


def test_a_budget_below_the_estimate_refuses_and_raising_it_would_pass(tmp_path, capsys):
    cfg = write_config(tmp_path / "t.yaml", "tiny", hardware="{rows: 8, cols: 8}",
                       board="ecp5-85k")
    code, _, err = run_cli(capsys, cfg, "--out", tmp_path / "o", "--max-memory-gb", 0.05,
                           "--mode", "datapath")
    assert code == 2
    estimate = next(line for line in err.splitlines() if line.startswith("estimate: "))
    gib = float(estimate.split("about ")[1].split(" GiB")[0])
    assert gib > 0.05
    last = err.strip().splitlines()[-1]
    assert "more than the 0.05 GiB allowed" in last and "--max-memory-gb" in last
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("bad", ["0", "-1", "x", "inf"])
def test_max_memory_must_be_positive(tmp_path, capsys, bad):
    with pytest.raises(SystemExit) as exc:
        main(["verify", "tiny", "--max-memory-gb", bad])
    assert exc.value.code == 2
    assert "positive number of GiB" in capsys.readouterr().err


def test_default_budget_is_a_fraction_of_physical_memory():
    assert memory_budget(None) == int(MEMORY_FRACTION * physical_memory())
    assert memory_budget(2) == 2 * 2 ** 30
    assert 0 < physical_memory() < 1 << 50


def test_layers_accepts_onnx_names_and_verifies_only_those(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml", onnx_net(tmp_path / "tv.onnx"))
    code, _, err = run_cli(capsys, cfg, "--out", tmp_path / "o", "--layers",
                           "/layer1/layer1.0/conv2/Conv,/conv1/Conv", "--max-memory-gb", 0.01)
    assert code == 2                                     # stopped by the budget, after selection
    assert "estimate: 2 conv layers" in err
    assert "verifying 2 conv layers" in err.strip().splitlines()[-1]


@pytest.mark.parametrize("name, hint", [
    ("/conv1/conv", "did you mean '/conv1/Conv'?"),
    ("layer1.0.conv2", "did you mean '/layer1/layer1.0/conv2/Conv'"),
    ("/relu0/Relu", "is not a conv layer"),
])
def test_unknown_layer_names_the_nearest(tmp_path, capsys, name, hint):
    cfg = write_config(tmp_path / "c.yaml", onnx_net(tmp_path / "tv.onnx"))
    code, _, err = run_cli(capsys, cfg, "--out", tmp_path / "o", "--layers", name)
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"omniconv verify: --layers: {name!r}") and hint in last
    assert not (tmp_path / "o").exists()


def test_buffer_bits_grow_with_the_limits():
    from rtl.params import OverlayParams

    params = OverlayParams(rows=4, cols=8, a_width=15, b_width=14, acc_width=42, winograd_m=4,
                           fft_size=0, act_buffer_kib=32, weight_buffer_kib=32,
                           out_buffer_kib=64, bus_bits=512)
    small = dict(max_m=64, max_k=64, max_n=16, feature_words=1024, weight_words=4096,
                 tile_words=1024, out_words=1024, max_gemms=64, spectral_words=2,
                 engine_a_words=64, engine_c_words=64)
    base = buffer_bits(small, params)
    for key in ("feature_words", "weight_words", "tile_words", "out_words", "engine_a_words",
                "engine_c_words"):
        assert buffer_bits({**small, key: small[key] * 4}, params) > base, key
    # the GEMM engine's A halves: 2 · words · L = 8 banks · rows = 4 elements of 15 bits
    assert buffer_bits({**small, "engine_a_words": 128}, params) - base == 2 * 64 * 8 * 4 * 15


@pytest.mark.verilator
@pytest.mark.regress
def test_a_layer_subset_gives_the_whole_runs_entries(tmp_path):
    """``--layers conv2`` of tiny: verify.json lists conv2 alone, and its entry (same data,
    same datapath plan) is the whole run's."""
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert main(["verify", "tiny", "--out", str(whole), "--mode", "datapath"]) == 0
    assert main(["verify", "tiny", "--out", str(part), "--layers", "conv2"]) == 0
    w = json.loads((whole / "verify.json").read_text())
    p = json.loads((part / "verify.json").read_text())
    assert [e["name"] for e in p["layers"]] == ["conv2"]
    assert p["layers"][0] == next(e for e in w["layers"] if e["name"] == "conv2")
    assert p["seed"] == w["seed"] and p["hardware"] == w["hardware"]


def test_buffers_too_small_for_a_layer_is_one_line_naming_it(tmp_path, capsys):
    # the pinned overlay's 1 KiB output side cannot hold one output row of ResNet-18's
    # first layer (nor of the next ones) in the GEMM engine's C half: refused before
    # anything is built
    cfg = write_config(tmp_path / "r18.yaml", "resnet18",
                       hardware=HW_4X8.replace("out_buffer_kib: 64", "out_buffer_kib: 1"))
    code, _, err = run_cli(capsys, cfg, "--out", tmp_path / "o", "--max-memory-gb", 16)
    assert code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "hardware: no overlay fitting zcu102 can run every layer with these pins: " in last
    assert ": conv1, " in last and "more fit no algorithm in the buffers" in last
    assert "act_buffer_kib" in last
    assert not (tmp_path / "o").exists()
