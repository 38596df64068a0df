"""``omniconv run``: a quantised network on the simulated overlay equals onnxruntime, value for
value.

A small classifier (3×3 conv + ReLU, 2×2 max pool, 3×3 conv + ReLU, flatten, Gemm), a
residual block, an inception block and a pooled head are built with ``onnx.helper``, quantised by ``quantize_static`` (QDQ, uint8 activations, per-channel
int8 weights), explored on a pinned 4×4 overlay (the config as a user writes it) and run
through the README's command on a random input: the graph output ``y.npy`` equals
onnxruntime's float32 output exactly, run.json's measured cycles equal the prediction, and
the mistakes a user makes (a float model, an input of the wrong shape) exit 2 with one line
naming the file, writing nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from qdq_helpers import conv_node, gemm_head, inception_block, make_model, quantise  # noqa: E402

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

REPO_ROOT = Path(__file__).resolve().parents[2]
SHAPE = [1, 3, 8, 8]
HARDWARE = ("{rows: 4, cols: 4, act_buffer_kib: 4, weight_buffer_kib: 4, out_buffer_kib: 4, "
            "bus_bits: 64}")


def _classifier(rng):
    from onnx import helper

    n, i = [], []
    conv_node(n, i, rng, "x", "c1", 3, 8, 3)
    n.append(helper.make_node("MaxPool", ["c1"], ["p1"], name="pool", kernel_shape=[2, 2],
                              strides=[2, 2]))
    conv_node(n, i, rng, "p1", "c2", 8, 8, 3)
    gemm_head(n, i, rng, "c2", 8 * 4 * 4, 0.2)
    return make_model(n, i, SHAPE, [1, 10])


def _residual(rng):
    """A ResNet basic block with a stem: conv + ReLU, conv + ReLU, conv, add, ReLU."""
    from onnx import helper

    n, i = [], []
    conv_node(n, i, rng, "x", "c1", 3, 8, 3)
    conv_node(n, i, rng, "c1", "c2", 8, 8, 3)
    conv_node(n, i, rng, "c2", "c3", 8, 8, 3, relu=False)
    n.append(helper.make_node("Add", ["c3", "c1"], ["s"], name="add"))
    n.append(helper.make_node("Relu", ["s"], ["y"], name="add_relu"))
    return make_model(n, i, SHAPE, [1, 8, 8, 8])


def _gap_head(rng):
    """Two convs, a global average pool, flatten and a Gemm: a classifier's head."""
    from onnx import helper

    n, i = [], []
    conv_node(n, i, rng, "x", "c1", 3, 8, 3)
    conv_node(n, i, rng, "c1", "c2", 8, 8, 3)
    n.append(helper.make_node("GlobalAveragePool", ["c2"], ["g"], name="gap"))
    gemm_head(n, i, rng, "g", 8, 0.3)
    return make_model(n, i, SHAPE, [1, 10])


def _omniconv(*args):
    return subprocess.run([sys.executable, "-m", "omniconv", *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    quantise(_classifier(np.random.default_rng(3)), SHAPE, folder / "fp32.onnx",
             folder / "qdq.onnx")
    quantise(_residual(np.random.default_rng(4)), SHAPE, folder / "res_fp32.onnx",
             folder / "res.onnx")
    quantise(_gap_head(np.random.default_rng(5)), SHAPE, folder / "gap_fp32.onnx",
             folder / "gap.onnx")
    model, shape = inception_block(np.random.default_rng(6))
    quantise(model, shape, folder / "inc_fp32.onnx", folder / "inc.onnx")
    for name in ("qdq", "fp32", "res", "gap", "inc"):
        (folder / f"{name}.yaml").write_text(
            f"network: {name}.onnx\nboard: zcu102\nprecision: 8\nhardware: {HARDWARE}\n")
    return folder


@pytest.mark.verilator
@pytest.mark.parametrize("name, layers", [
    ("qdq", ["c1", "pool", "c2", "fc"]), ("res", ["c1", "c2", "c3", "add"]),
    ("inc", ["b1", "b3", "b5", "pool", "bp", "cat"]),
    # make test keeps three (CI's time): the head runs in make regress
    pytest.param("gap", ["c1", "c2", "gap", "fc"], marks=pytest.mark.regress)])
def test_run_equals_onnxruntime(models, name, layers):
    """The classifier (max pool, flatten, Gemm), the residual block (QLinearAdd on the
    pool engine's qadd mode, its ReLU removed into the saturation), the inception block
    (three branches' scales differ from the output's, so the concatenation requantises them
    through the pool engine's lut table: "cat" has instructions; the fourth is written in
    place) and the head with a global average pool
    (QLinearGlobalAveragePool, the qgavg mode) on a random input."""
    rng = np.random.default_rng(11)
    x = rng.normal(0, 1, [1, 8, 9, 9] if name == "inc" else SHAPE).astype(np.float32)
    np.save(models / f"x_{name}.npy", x)
    out = models / f"out_{name}"
    proc = _omniconv("run", models / f"{name}.yaml", "--input", models / f"x_{name}.npy",
                     "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.load(out / "y.npy")
    session = ort.InferenceSession(str(models / f"{name}.onnx"),
                                   providers=["CPUExecutionProvider"])
    want = session.run(None, {"x": x})[0]
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want), f"{(got != want).sum()} of {want.size} outputs differ"
    doc = json.loads((out / "run.json").read_text())
    assert doc["totals"]["measured_cycles"] == doc["totals"]["predicted_cycles"]
    assert [e["name"] for e in doc["layers"]] == layers
    assert doc["hardware"]["requant"] == "f32"
    assert f"{layers[0]} finished" in proc.stderr         # progress, one line per layer
    if name == "inc":       # both paths: inputs written in place and through the lut
        from dse.importers.onnx_qdq import import_qdq

        rec = import_qdq(models / "inc.onnx").layers["cat"]
        same = [q == rec.y for q in rec.inputs]
        assert any(same) and not all(same), same


@pytest.mark.verilator
@pytest.mark.parametrize("name, macs, others", [
    ("res", ["c1", "c2", "c3"], ["add"]), ("inc", ["b1", "b3", "b5", "bp"], ["pool", "cat"]),
    pytest.param("qdq", ["c1", "c2", "fc"], ["pool"], marks=pytest.mark.regress)])
def test_verify_checks_every_layer_against_the_qdq_golden_model(models, name, macs, others):
    """``omniconv verify`` of a quantised network: the model's weights on a random input,
    each layer against ``sim.models.qdq_network`` (onnxruntime's kernels), the cycles
    against design.json's."""
    out = models / f"verified_{name}"
    proc = _omniconv("verify", models / f"{name}.yaml", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "verify.json").read_text())
    assert doc["totals"]["all_bit_exact"] and doc["totals"]["max_rel_error"] == 0
    assert [e["name"] for e in doc["layers"]] == macs
    assert [e["name"] for e in doc["other_layer_results"]] == others
    assert all(e["bit_exact"] for e in doc["other_layer_results"])
    assert doc["hardware"]["requant"] == "f32"


def test_run_refuses_a_float_model_and_a_bad_input(models, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(SHAPE, np.float32))
    proc = _omniconv("run", models / "fp32.yaml", "--input", tmp_path / "x.npy", "--out",
                     tmp_path / "a")
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("network: must be an ONNX model quantised in the QDQ "
                                        "format (onnxruntime.quantization.quantize_static); "
                                        "omniconv run computes its integer kernels as "
                                        "onnxruntime does")
    assert len(proc.stderr.strip().splitlines()) == 1
    np.save(tmp_path / "bad.npy", np.zeros([1, 3, 4, 4], np.float32))
    proc = _omniconv("run", models / "qdq.yaml", "--input", tmp_path / "bad.npy", "--out",
                     tmp_path / "b")
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "bad.npy" in last and "must be float32 of shape [1, 3, 8, 8]" in last
    assert not (tmp_path / "b" / "run.json").exists()
    proc = _omniconv("run", models / "qdq.yaml", "--input", tmp_path / "none.npy")
    assert proc.returncode == 2 and "none.npy: does not exist" in proc.stderr


def test_dse_of_a_quantised_network_prices_its_units(models, tmp_path):
    """A quantised network is explored with the per-channel requantiser and the pool
    engine's QDQ units priced: on the zcu102 the design requantises per channel and its
    program times it; on ECP5-85 no overlay with the pool engine these layers need fits,
    and the command says so (exit 2, one line naming the board field)."""
    for board, code in (("zcu102", 0), ("ecp5-85k", 2)):
        cfg = tmp_path / f"{board}.yaml"
        cfg.write_text(f"network: {models / 'qdq.onnx'}\nboard: {board}\nprecision: 8\n")
        proc = _omniconv("dse", cfg, "--out", tmp_path / board)
        assert proc.returncode == code, proc.stderr[-2000:]
        if code == 0:
            doc = json.loads((tmp_path / board / "design.json").read_text())
            assert doc["hardware"]["requant"] == "f32"
            assert doc["hardware"]["winograd_m"] == doc["hardware"]["fft_size"] == 0
            assert doc["timing"]["source"] == "program"
        else:
            last = proc.stderr.strip().splitlines()[-1]
            assert "board: a quantised network's pool and add layers need" in last
            assert not (tmp_path / board / "design.json").exists()

