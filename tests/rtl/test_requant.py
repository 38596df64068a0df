"""rtl.requant.Requant vs sim/models/requant.py in the Amaranth simulator, with stalls."""

import numpy as np
import pytest

from dse.cost.transforms import requant_cycles
from rtl.requant import Requant
from sim.bench.amaranth_stream import run_stream
from sim.models.requant import requantize


@pytest.mark.parametrize("lanes,acc_w,out_w,mult_w", [(2, 32, 8, 16), (1, 48, 16, 24)])
@pytest.mark.parametrize("relu", [0, 1])
def test_requant_bit_exact_with_stalls(lanes, acc_w, out_w, mult_w, relu):
    rng = np.random.default_rng(lanes + relu)
    n = 40
    acc = rng.integers(-(1 << (acc_w - 1)), 1 << (acc_w - 1), (n, lanes))
    acc[0, 0], acc[1, 0], acc[2, 0] = -(1 << (acc_w - 1)), (1 << (acc_w - 1)) - 1, 0
    acc[3:8] >>= acc_w - 10                         # small values: exercise rounding ties
    mult, shift = int(rng.integers(1, 1 << mult_w)), int(rng.integers(1, acc_w))
    dut = Requant(lanes, acc_w, out_w, mult_w)
    got, _ = run_stream(dut, acc.tolist(), n, config={"mult": mult, "shift": shift, "relu": relu},
                        idle=0.3, stall=0.3, seed=lanes)
    np.testing.assert_array_equal(got, requantize(acc, mult, shift, out_w, bool(relu)))


def test_requant_extremes_and_cycles():
    acc = np.array([[6, -6, 5, -5], [2, -2, 0, -1], [2 ** 31 - 1, -2 ** 31, 300, -300]])
    dut = Requant(4, 32, 8, 8)
    for shift in (0, 2):
        got, cycles = run_stream(dut, acc.tolist(), 3, config={"mult": 1, "shift": shift})
        np.testing.assert_array_equal(got, requantize(acc, 1, shift, 8))
        assert cycles == requant_cycles(3)


@pytest.mark.parametrize("shift", [48, 49, 50, 51, 55, 63])
def test_requant_shifts_past_the_product_width(shift):
    # a 32-bit accumulator times a 16-bit multiplier is a 49-bit product: every shift from
    # 50 on rounds every product to 0 (the offset 2^(shift−1) must not be cut off)
    acc = np.array([[-5], [-(1 << 31)], [(1 << 31) - 1], [-1], [0]])
    got, _ = run_stream(Requant(1, 32, 8, 16), acc.tolist(), 5,
                        config={"mult": (1 << 16) - 1, "shift": shift})
    np.testing.assert_array_equal(got, requantize(acc, (1 << 16) - 1, shift, 8))


def test_requant_rejects_bad_params():
    with pytest.raises(ValueError, match=r"^lanes must be at least 1, not 0$"):
        Requant(0)
    with pytest.raises(TypeError, match=r"^acc_width must be an integer, not 3.0$"):
        Requant(1, 3.0)


@pytest.mark.regress
@pytest.mark.parametrize("seed", range(6))
def test_requant_sweep(seed):
    rng = np.random.default_rng(1000 + seed)
    lanes = int(rng.integers(1, 9))
    acc_w, out_w = [(32, 8), (48, 16)][seed % 2]
    mult_w = int(rng.integers(4, 25))
    acc = rng.integers(-(1 << (acc_w - 1)), 1 << (acc_w - 1), (300, lanes))
    acc >>= rng.integers(0, acc_w - 2, (300, lanes))
    mult, shift = int(rng.integers(0, 1 << mult_w)), int(rng.integers(0, 63))
    relu = seed % 3 == 0
    dut = Requant(lanes, acc_w, out_w, mult_w)
    cfg = {"mult": mult, "shift": shift, "relu": int(relu)}
    got, _ = run_stream(dut, acc.tolist(), 300, config=cfg, idle=0.4, stall=0.4, seed=seed)
    np.testing.assert_array_equal(got, requantize(acc, mult, shift, out_w, relu))
    _, cycles = run_stream(Requant(lanes, acc_w, out_w, mult_w), acc.tolist(), 300, config=cfg)
    assert cycles == requant_cycles(300)


@pytest.mark.verilator
def test_lints_clean(tmp_path):
    from sim.runner import LINT_WAIVERS, emit_verilog, lint_verilog
    for i, dut in enumerate([Requant(2)]):
        top = f"lint_requant{i}"
        violations, waived = lint_verilog(emit_verilog(dut, top), top, work_dir=tmp_path)
        assert not violations, [(v.rule, v.line, v.message) for v in violations[:10]]
        assert {w.rule for w in waived} <= set(LINT_WAIVERS)
