"""Quantised (QDQ) conv layers on the overlay top: per-channel requantisation from DRAM.

An overlay with ``requant`` f32 (``rtl/requant_channels.py``) runs a chain of quantised conv
layers as onnxruntime's QLinearConv computes them: uint8 activations with zero points,
per-channel int8 weights and scales, int32 biases.  The chain is compiled
(``build_network_program(..., quant=...)``: the stored int8 form, the zero points folded
into the biases, the padding read from an area of the input's zero point, each invocation's
channel entries loaded into the quant buffer with its weights) and run in the Amaranth
simulator from DRAM.  Checked:

* every layer's output equals the golden model's value for value: ``sim.models.conv.conv2d``
  on ``x − x_zp`` (zero padding there, as onnxruntime pads with the zero point) plus the
  bias, requantised by ``sim.models.qdq.requantize_exact`` -- written from the model's
  parameters, independent of the compiler's folding;
* every instruction takes exactly its model cycles and the total is the schedule's
  (``check_cycles``: the per-channel requantiser's latency in the lowering);
* the cases cover a 3×3 im2col layer cut into row bands, a kn2row layer whose padding the
  buffer image holds, several output words a pixel (``rq_chunks`` 2) and a filter count that
  leaves lanes empty.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dse.compiler import plan_conv
from dse.compiler.program import ChannelQuant, build_network_program, decode_output
from rtl.overlay_top import OverlayTop
from rtl.params import DatapathLimits, OverlayParams
from sim.models.conv import conv2d
from sim.models.qdq import output_scale, requantize_exact, scale_parts

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dse"))
from cost_helpers import conv  # noqa: E402
from test_overlay_top import BASE, TOKEN_DEPTH, _run, check_cycles  # noqa: E402

HW = OverlayParams(rows=4, cols=4, requant="f32")
LIMITS = DatapathLimits(max_m=32, max_k=72, max_n=8, feature_words=256, weight_words=256,
                        out_words=64, max_gemms=16, tile_words=2, spectral_words=2)


def _quantised_layer(rng, layer, x_scale, x_zp, x_u8):
    """Random QDQ parameters for ``layer`` whose outputs spread over uint8, and its golden
    output (uint8) on ``x_u8``."""
    n, c = layer.out_shape[0], layer.in_shape[0]
    w = rng.integers(-127, 128, (n, c, *layer.kernel))
    bias = rng.integers(-3000, 3000, n)
    w_scale = np.float32(rng.uniform(0.002, 0.02, n))
    acc = conv2d(x_u8.astype(np.int64) - x_zp, w, stride=layer.stride[0],
                 padding=layer.padding[0]) + bias[:, None, None]
    # an output scale that spreads the outputs over about 200 steps, a random zero point
    y_scale = np.float32(x_scale * float(np.median(w_scale)) * (acc.std() + 1) / 40)
    y_zp = int(rng.integers(60, 200))
    scale = output_scale(x_scale, w_scale, y_scale)
    m, e = scale_parts(scale)
    y = requantize_exact(acc, m[:, None, None], e[:, None, None], y_zp, np.uint8)
    return dict(w=w, bias=bias, m=m, e=e, y_scale=y_scale, y_zp=y_zp, y=y)


def _stored_quant(q, x_zp):
    """The compiler's ChannelQuant: the stored form (value − 128) of a uint8 layer; the
    datapath sums the stored inputs, so the bias carries (128 − x_zp)·Σw."""
    w = q["w"]
    bias = q["bias"] + (128 - x_zp) * w.reshape(w.shape[0], -1).sum(axis=1)
    return ChannelQuant(tuple(int(v) for v in bias), tuple(int(v) for v in q["m"]),
                        tuple(int(v) for v in q["e"]), (q["y_zp"] - 128,) * len(bias),
                        pad=x_zp - 128)


CHAINS = {
    # im2col 3×3 cut into row bands, then kn2row 3×3 whose padding is in the buffer, 6
    # filters in two output words a pixel (lanes left empty)
    "im2col-kn2row": [("im2col", "ws", conv("a", c_in=4, h=8, w=8, c_out=8, k=3)),
                      ("kn2row", "os", conv("b", c_in=8, h=8, w=8, c_out=6, k=3))],
    # a 1×1 layer then a 3×3 stride-2 one, both im2col
    "im2col-1x1-s2": [("im2col", "os", conv("c", c_in=4, h=6, w=6, c_out=8, k=1, p=0)),
                      ("im2col", "ws", conv("d", c_in=8, h=6, w=6, c_out=5, k=3, s=2))],
}


@pytest.mark.regress            # make test: tests/cli/test_run.py (the same checks in Verilator)
@pytest.mark.parametrize("chain", list(CHAINS))
def test_qdq_chain_bit_exact_and_cycles(chain):
    rng = np.random.default_rng(len(chain))
    layers = CHAINS[chain]
    x_scale, x_zp = np.float32(0.05), int(rng.integers(20, 235))
    x_u8 = rng.integers(0, 256, layers[0][2].in_shape)
    plans, weights, quant, golden = [], [], [], []
    s, z, t = x_scale, x_zp, x_u8
    for algo, flow, layer in layers:
        plans.append(plan_conv(layer, algo, flow, HW, LIMITS))
        q = _quantised_layer(rng, layer, s, z, t)
        weights.append(q["w"])
        quant.append(_stored_quant(q, z))
        golden.append(q["y"])
        s, z, t = q["y_scale"], q["y_zp"], q["y"]
    invs = [inv for p in plans for inv in p.invocations]
    assert max(inv.registers["rq_chunks"] for inv in invs) >= 2 or chain != "im2col-kn2row"
    assert len(invs) > len(plans)
    lp = build_network_program(plans, x_u8 - 128, weights, HW, LIMITS, base=BASE,
                               token_depth=TOKEN_DEPTH, quant=quant)
    mem = bytearray(lp.image) + bytearray(4096)
    (r,), _ = _run(OverlayTop(HW, LIMITS, token_depth=TOKEN_DEPTH), mem, lp.program_addr)
    assert r["done"] and not r["error"] and not r["engine_error"]
    for i, want in enumerate(golden):
        got = decode_output(lp, r["dram"], BASE, layer=i) + 128
        assert np.array_equal(got, want), f"layer {i}: {(got != want).sum()} outputs differ"
    check_cycles(lp, r, HW)


def test_quant_is_checked():
    layer = conv("a", c_in=4, h=6, w=6, c_out=8, k=1, p=0)
    plan = plan_conv(layer, "im2col", "ws", HW, LIMITS)
    x = np.zeros(layer.in_shape, np.int64)
    w = np.zeros((8, 4, 1, 1), np.int64)
    with pytest.raises(ValueError, match=r"^quant\[0\] must be given: the overlay "
                                         r"requantises per channel \(requant f32\)$"):
        build_network_program([plan], x, [w], HW, LIMITS)
    q = ChannelQuant((0,) * 8, (1 << 23,) * 8, (-30,) * 8, (0,) * 8)
    shift = OverlayParams(rows=4, cols=4)
    with pytest.raises(ValueError, match=r"^quant\[0\] must be None: the overlay "
                                         r"requantises per layer \(requant shift\)$"):
        build_network_program([plan_conv(layer, "im2col", "ws", shift, LIMITS)], x, [w],
                              shift, LIMITS, quant=[q])
    with pytest.raises(ValueError, match=r"^quant entry mantissa must be between 0 and "
                                         r"16777215, not 16777216$"):
        ChannelQuant((0,), (1 << 24,), (0,), (0,))
    with pytest.raises(ValueError, match=r"^ChannelQuant.mantissa must have 2 entries"):
        ChannelQuant((0, 0), (1 << 23,), (0,), (0,))
