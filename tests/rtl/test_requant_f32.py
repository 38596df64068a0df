"""rtl.requant_f32.RequantF32 vs sim/models/qdq.py in the Amaranth simulator, with stalls.

The golden model (``requantize_exact``) is itself held equal to numpy float32 arithmetic and
to onnxruntime's QLinearConv (tests/models/test_qdq_model.py)."""

import numpy as np
import pytest

from dse.cost.transforms import requant_f32_cycles
from rtl.requant_f32 import RequantF32
from sim.bench.amaranth_stream import run_stream
from sim.models.qdq import requantize_exact, scale_parts


def _accumulators(rng, n, lanes, scale):
    """Accumulators that land in range (near-ties among them), big ones beyond 2^24 (the
    first rounding), and the extremes."""
    k = rng.integers(-300, 300, (n, lanes))
    acc = np.floor((k + 0.5) / float(scale)).astype(np.int64) + rng.integers(-2, 3, (n, lanes))
    big = rng.integers(-(1 << 31), 1 << 31, (n, lanes))
    acc = np.where(rng.random((n, lanes)) < 0.3, big, acc).clip(-(1 << 31), (1 << 31) - 1)
    acc[0, 0], acc[1, 0], acc[2, 0], acc[3, 0] = -(1 << 31), (1 << 31) - 1, 0, -1
    acc[4, 0] = 203 * 2 ** 18 - 2               # a tie only the first rounding creates
    return acc


@pytest.mark.parametrize("signed_out", [False, True])
@pytest.mark.parametrize("scale", [2.0 ** -19, 3.7e-3, 1.4e-5, 0.61, 1.7])
def test_requant_f32_bit_exact_with_stalls(signed_out, scale):
    rng = np.random.default_rng(int(scale * 1e6) + signed_out)
    lanes, n = 2, 48
    acc = _accumulators(rng, n, lanes, scale)
    m, e = (int(v) for v in scale_parts(np.float32(scale)))
    zp = int(rng.integers(-128, 128)) if signed_out else int(rng.integers(0, 256))
    dtype = np.int8 if signed_out else np.uint8
    dut = RequantF32(lanes, signed_out)
    got, _ = run_stream(dut, acc.tolist(), n,
                        config={"mantissa": m, "exponent": e, "zero_point": zp},
                        idle=0.3, stall=0.3, seed=lanes + signed_out)
    np.testing.assert_array_equal(got, requantize_exact(acc, m, e, zp, dtype))


@pytest.mark.parametrize("signed_out", [False, True])
def test_requant_f32_per_word_settings(signed_out):
    """``per_word``: every lane of every word its own scale and zero point (a channel's),
    each word requantised with its own settings under idle and stall cycles."""
    rng = np.random.default_rng(31 + signed_out)
    lanes, n = 3, 60
    scales = np.float32(10.0 ** rng.uniform(-4, -2, (n, lanes)))
    acc = _accumulators(rng, n, lanes, 1e-3)
    m, e = scale_parts(scales)
    lo, hi = (-128, 128) if signed_out else (0, 256)
    zp = rng.integers(lo, hi, (n, lanes))
    words = [{"acc": acc[i].tolist(), "mantissa": m[i].tolist(), "exponent": e[i].tolist(),
              "zero_point": zp[i].tolist()} for i in range(n)]
    got, cycles = run_stream(RequantF32(lanes, signed_out, per_word=True), words, n,
                             idle=0.3, stall=0.3, seed=7)
    np.testing.assert_array_equal(
        got, requantize_exact(acc, m, e, zp, np.int8 if signed_out else np.uint8))
    _, cycles = run_stream(RequantF32(lanes, signed_out, per_word=True), words, n)
    assert cycles == requant_f32_cycles(n)


def test_requant_f32_cycles():
    acc = [[5, -5], [1 << 30, -(1 << 30)], [0, 7]]
    m, e = (int(v) for v in scale_parts(np.float32(0.25)))
    _, cycles = run_stream(RequantF32(2), acc, 3,
                           config={"mantissa": m, "exponent": e, "zero_point": 3})
    assert cycles == requant_f32_cycles(3)


def test_requant_f32_rejects_bad_params():
    with pytest.raises(ValueError, match=r"^lanes must be at least 1, not 0$"):
        RequantF32(0)
    with pytest.raises(TypeError, match=r"^signed_out must be a bool, not 1$"):
        RequantF32(1, 1)
    with pytest.raises(TypeError, match=r"^per_word must be a bool, not 0$"):
        RequantF32(1, per_word=0)


@pytest.mark.regress
@pytest.mark.parametrize("seed", range(6))
def test_requant_f32_sweep(seed):
    rng = np.random.default_rng(2000 + seed)
    lanes = int(rng.integers(1, 5))
    scale = float(np.float32(10.0 ** rng.uniform(-6, 0.2)))
    acc = _accumulators(rng, 300, lanes, scale)
    m, e = (int(v) for v in scale_parts(np.float32(scale)))
    signed_out = bool(seed % 2)
    zp = int(rng.integers(-128, 128)) if signed_out else int(rng.integers(0, 256))
    got, _ = run_stream(RequantF32(lanes, signed_out), acc.tolist(), 300,
                        config={"mantissa": m, "exponent": e, "zero_point": zp},
                        idle=0.4, stall=0.4, seed=seed)
    np.testing.assert_array_equal(
        got, requantize_exact(acc, m, e, zp, np.int8 if signed_out else np.uint8))


def test_requant_f32_lints_clean(tmp_path):
    from sim.runner import emit_verilog, lint_verilog

    violations, _ = lint_verilog(emit_verilog(RequantF32(2, True), "requant_f32"), "requant_f32",
                                 work_dir=tmp_path)
    assert not violations, "\n".join(f"line {w.line}: %{w.rule}: {w.message}"
                                     for w in violations[:20])
