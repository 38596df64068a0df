"""A quantised concatenation's requantisation: ``dse.compiler.qdq.concat_lut`` and the
program builder's ``Concat(luts=...)``.

The table is checked against the golden model's (``sim.models.qdq_network.concat_table``:
onnxruntime's DequantizeLinear then QuantizeLinear in software float32, written apart from
the compiler's numpy float32), on random scales and zero points, extremes included.  The
program of a concatenation with one requantised input is checked for what the hardware
relies on: that input is a tensor of its own, read by a ``lut`` pass (32 ``pool.lut``
instructions, then a ``pool.setup mode=lut``) that stores into the concatenation's channel
slice, while the other input is written in place; the golden outputs look the table up.
End to end (Verilator, onnxruntime) it runs in tests/cli/test_run.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dse.compiler import plan_conv
from dse.compiler.program import Concat, PoolLayer, build_network_program
from dse.compiler.qdq import concat_lut
from dse.importers.onnx_qdq import TensorQuant
from rtl.isa import LUT_INSTRUCTIONS, PoolLut, PoolMode, PoolSetup, PoolTile, StoreTile
from rtl.params import DatapathLimits, OverlayParams
from sim.models.qdq_network import concat_table
from sim.overlay_golden import golden_outputs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cost_helpers import conv  # noqa: E402

_SCALE = st.floats(2.0 ** -20, 2.0 ** 4, allow_nan=False, allow_infinity=False,
                   width=32).filter(lambda s: s > 0)


@settings(max_examples=400, deadline=None)
@given(_SCALE, st.integers(0, 255), _SCALE, st.integers(0, 255))
def test_concat_lut_is_qlinear_concat_table(sx, zx, sy, zy):
    x, y = TensorQuant(sx, zx), TensorQuant(sy, zy)
    lut = concat_lut(x, y)
    if (sx, zx) == (sy, zy):
        assert lut is None                       # copied: written in place
        return
    assert lut == tuple(int(v) - 128 for v in concat_table(np.float32(sx), zx,
                                                           np.float32(sy), zy))


def test_concat_lut_extremes():
    # a ratio that saturates both ends, and ties that round to even
    wide = concat_lut(TensorQuant(1.0, 128), TensorQuant(0.25, 100))
    assert wide[0] == wide[50] == -128 and wide[255] == 127
    halves = concat_lut(TensorQuant(0.5, 0), TensorQuant(1.0, 0))   # q/2: 0.5 → 0, 1.5 → 2
    assert [v + 128 for v in halves[:6]] == [0, 0, 1, 2, 2, 2]


HW = OverlayParams(rows=4, cols=4)
LIMITS = DatapathLimits(max_m=64, max_k=72, max_n=8, feature_words=256, weight_words=256,
                        out_words=256, max_gemms=16, tile_words=2, spectral_words=2)


def _program(luts, image=True):
    """Two max pools of a 6×5×5 input and their concatenation, the second input through
    ``luts``."""
    x = np.random.default_rng(1).integers(-128, 128, (6, 5, 5))
    plans = [PoolLayer("max", kernel=(3, 3), pads=(1, 1, 1, 1)),
             PoolLayer("max", kernel=(2, 2), stride=1, pads=(0, 1, 0, 1)),
             Concat((1, 2), luts)]
    lp = build_network_program(plans, x, [None] * 3, HW, LIMITS, inputs=[0, 0, None],
                               image=image)
    return lp, x


def test_a_requantised_input_is_copied_through_the_lut():
    table = tuple(int(v) for v in (np.arange(256) * 3 // 4 - 100).clip(-128, 127))
    lp, x = _program((None, table))
    t_first, t_second, t_cat = lp.tensors[1:]
    # the first input is a view of the concatenation; the second a tensor of its own
    assert t_first.dram == t_cat.dram and t_first.pitch == 12
    assert not t_cat.dram <= t_second.dram < t_cat.dram + t_cat.nbytes
    cat = [inst for inst, li in zip(lp.program, lp.layer_of) if li == 2]
    luts = [inst for inst in cat if isinstance(inst, PoolLut)]
    assert [inst.index for inst in luts] == list(range(LUT_INSTRUCTIONS))
    setups = [inst for inst in cat if isinstance(inst, PoolSetup)]
    assert [s.mode for s in setups] == [PoolMode.LUT] and setups[0].ch == 6
    # it stores into the concatenation's channels 6 … 11
    stores = [inst for inst in cat if isinstance(inst, StoreTile)]
    assert stores and all(s.ch == 6 for s in stores)
    assert stores[0].dram == t_cat.dram + 6
    assert any(isinstance(inst, PoolTile) for inst in cat)
    gold = golden_outputs(lp, x, [None] * 3)
    np.testing.assert_array_equal(gold["2"][6:], np.asarray(table)[gold["1"] + 128])
    np.testing.assert_array_equal(gold["2"][:6], gold["0"])


def test_a_concatenation_without_tables_has_no_instructions():
    lp, _ = _program(())
    assert 2 not in lp.layer_of
    lp2, _ = _program((None, None))                # all copies: the same program
    assert lp2.program == lp.program


def test_lut_arguments_refused():
    with pytest.raises(ValueError, match=r"^luts must hold one entry per source \(2\), not 1$"):
        Concat((1, 2), (None,))
    with pytest.raises(ValueError, match=r"^luts\[1\] must hold 256 entries, not 3$"):
        Concat((1, 2), (None, (1, 2, 3)))
    with pytest.raises(ValueError, match=r"^luts\[0\] entry must be between -128 and 127, "
                                         r"not 200$"):
        Concat((1, 2), ((200,) * 256, None))
    with pytest.raises(ValueError, match=r"^lut must be given for mode lut and only for it"):
        PoolLayer("lut")
    with pytest.raises(ValueError, match=r"^lut must be given for mode lut and only for it"):
        PoolLayer("max", lut=(0,) * 256)
    with pytest.raises(ValueError, match=r"^plans\[2\] \(a concat with pool passes\) needs an "
                                         r"8-bit network on an overlay whose rows and cols"):
        hw = OverlayParams(rows=4, cols=6)
        plan = plan_conv(conv("c", c_in=4, h=3, w=3, c_out=4, k=1), "im2col", "ws", hw, LIMITS)
        build_network_program([plan, plan, Concat((1, 2), (None, (0,) * 256))],
                              np.zeros((4, 3, 3), np.int64), [np.ones((4, 4, 1, 1))] * 2 + [None],
                              hw, LIMITS, inputs=[0, 0, None])
