"""Winograd layers in an overlay-top program (``dse.compiler.program``), without a simulator.

A model of the ISA's tile-mode boxes (docs/isa.md, ``load.tile`` / ``store.tile`` with
``tile``), written here from the instruction semantics alone, runs the program's loads and
stores on a copy of its DRAM image:

* **loads**: pixel (r, c) of a tile-mode box, channel word j (``rows`` channels, the last
  zero-filled) into element slot ``slot`` + r·(m+2) + c of tile-buffer word ``addr`` + j,
  the window's other slots of those words zero, over a buffer of garbage; before every
  ``compute.tile`` the buffer's words must be exactly ``ConvPlan.tile_image`` of the layer
  input (so the boxes cover all the padding and the windows past the image);
* **stores**: a tile-mode box covers rows of a row of m×m tiles, q = ⌈ch / L⌉ words a tile
  (L = ``winograd_lanes``); pixel (r, c) lies x = (``slot`` mod m) + c columns on, in tile
  ⌊x / m⌋ at slot e = (⌊slot / m⌋ + r)·m + x mod m, and its channel k is lane
  (k mod L)·m² + e of output word ``addr`` + ⌊x / m⌋·q + ⌊k / L⌋; the words are made from
  the golden output in the datapath's layout (``ConvPlan.decode``: per tile and filter
  group the m×m outputs of L filters, filter-major); the stored tensor must be the golden
  one, with the tiles clipped at the right and bottom edges.

Then the program's shape: its cycles are the DMA formula's (``instruction_cycles``), the
weights are stored with the element size that holds the transformed weights, and
mismatched plans are refused.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dse.compiler import plan_conv
from dse.compiler.program import build_layer_program, build_network_program
from dse.cost.dma import store_tile_cycles
from rtl.isa import Buffer, LoadSetup, LoadTile, StoreSetup, StoreTile
from rtl.params import DatapathLimits, OverlayParams
from sim.models.conv import conv2d
from sim.models.requant import requantize

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dse"))
from cost_helpers import conv

#: A 4×4 overlay with F(2×2, 3×3).
HW = OverlayParams(rows=4, cols=4, winograd_m=2, a_width=10, b_width=12)
#: A 4×8 overlay with F(2×2, 3×3) and two output transforms (two filters a word).
HW2 = OverlayParams(rows=4, cols=8, winograd_m=2, winograd_lanes=2, a_width=10, b_width=12)
#: Room for a 7×7 layer in two row bands (its 80 output words do not fit 64).
LIMITS = DatapathLimits(max_m=64, max_k=72, max_n=8, feature_words=256, weight_words=256,
                        out_words=64, max_gemms=16, tile_words=64, spectral_words=2)
#: Whole layers of the cases below.
ROOMY = DatapathLimits(max_m=64, max_k=144, max_n=8, feature_words=512, weight_words=512,
                       out_words=256, max_gemms=36, tile_words=256, spectral_words=2)


def _golden(layer, plan, x, w):
    regs = plan.invocations[0].registers
    acc = conv2d(x, w, stride=1, padding=layer.padding[0], dilation=1)
    return requantize(acc, regs["rq_mult"], regs["rq_shift"], plan.precision,
                      bool(regs["rq_relu"]))


def _out_words(y, m, wl, lanes):
    """Output words of an F×OH×OW output in the datapath's Winograd layout."""
    n, oh, ow = y.shape
    th, tw, groups = -(-oh // m), -(-ow // m), -(-n // wl)
    full = np.zeros((groups * wl, th * m, tw * m), np.int64)
    full[:n, :oh, :ow] = y
    words = np.zeros((th * tw * groups, lanes), np.int64)
    for ty in range(th):
        for tx in range(tw):
            for g in range(groups):
                blk = full[g * wl:(g + 1) * wl, ty * m:(ty + 1) * m, tx * m:(tx + 1) * m]
                words[(ty * tw + tx) * groups + g, :wl * m * m] = blk.reshape(-1)
    return words


def _box_model(lp, hw, x_layer, gold):
    """Run the tile-mode loads and stores of a one-layer program (module docstring);
    return the memory afterwards and how many computes were checked."""
    m, rows, wl = hw.winograd_m, hw.rows, hw.winograd_lanes
    t = m + 2
    lanes = max(hw.cols, m * m)
    mem = bytearray(lp.image)
    tbuf = np.full((512, rows, t * t), -77, np.int64)
    setups, computes, checked = {}, iter(lp.computes), 0
    inv = None
    for inst in lp.program:
        if isinstance(inst, (LoadSetup, StoreSetup)):
            setups[getattr(inst, "buf", "store")] = inst
        elif isinstance(inst, LoadTile) and inst.buf is Buffer.FEATURE:
            assert inst.tile
            s = setups[Buffer.FEATURE]
            cw = -(-inst.ch // rows)
            # a span (wpitch): window a holds the pixels 2m·a … 2m·a + t − 1 columns on
            # from the first window's origin, its words wpitch·a on; the others are dropped
            period = 2 * m if inst.wpitch else 1 << 20
            r0, q0 = divmod(inst.slot, t)
            for r in range(inst.rows):
                for c in range(inst.cols):
                    win, u = divmod(q0 + c, period)
                    if u >= t:
                        continue
                    p = inst.dram - lp.base + r * s.row_pitch + c * s.px_pitch
                    v = np.frombuffer(bytes(mem[p:p + inst.ch * s.elem]), f"<i{s.elem}")
                    px = np.zeros(cw * rows, np.int64)
                    px[:inst.ch] = v
                    # (wide: addr and wpitch count pairs of tile-buffer words)
                    first = (1 + inst.wide) * (inst.addr + win * inst.wpitch)
                    for j in range(cw):
                        if r == 0 and (c == 0 or u == 0):   # a window's other slots: zero
                            tbuf[first + j] = 0
                        tbuf[first + j, :, (r0 + r) * t + u] = px[j * rows:(j + 1) * rows]
        elif type(inst).__name__ == "ComputeTile":
            p, inv = next(computes)
            want = p.tile_image(x_layer, inv)
            np.testing.assert_array_equal(tbuf[:len(want)], want)
            checked += 1
        elif isinstance(inst, StoreTile):
            assert inst.tile
            s = setups["store"]
            sub = p.bands[inv.band].plan if inv.band >= 0 else p
            y0, y1 = p.bands[inv.band].rows if inv.band >= 0 else (0, p.out_shape[1])
            f0, f1 = inv.filters
            words = _out_words(gold[f0:f1, y0:y1], m, wl, lanes)
            assert len(words) <= inv.out_words and sub.out_shape[1] == y1 - y0
            q = -(-inst.ch // wl)
            for r in range(inst.rows):
                for c in range(inst.cols):
                    x = inst.slot % m + c
                    slot = (inst.slot // m + r) * m + x % m
                    at = inst.addr + (x // m) * q
                    vals = [words[at + k // wl][(k % wl) * m * m + slot]
                            for k in range(inst.ch)]
                    p_at = inst.dram - lp.base + r * s.row_pitch + c * s.px_pitch
                    mem[p_at:p_at + inst.ch * s.elem] = np.asarray(vals, f"<i{s.elem}").tobytes()
    return bytes(mem), checked


CASES = [
    # 7×7 output (not a multiple of m), 6 → 5 channels (not multiples of 4), two row bands
    ("banded", HW, LIMITS, conv(c_in=6, h=7, w=7, c_out=5, k=3)),
    # a 5×5 kernel: four 3×3 pieces per tile; padding 2
    ("5x5", HW, ROOMY, conv(c_in=3, h=6, w=5, c_out=4, k=5, p=2)),
    # two filters a word, 8 columns; no padding: windows past the image only
    ("lanes2", HW2, ROOMY, conv(c_in=9, h=7, w=6, c_out=5, k=3, p=0)),
]


@pytest.mark.parametrize("name,hw,limits,layer", CASES, ids=[c[0] for c in CASES])
def test_tile_boxes_fill_the_tile_image_and_store_the_output(name, hw, limits, layer):
    plan = plan_conv(layer, "winograd", "ws", hw, limits)
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, layer.in_shape)
    w = rng.integers(-128, 128, (layer.out_shape[0], layer.in_shape[0], *layer.kernel))
    lp = build_layer_program(plan, x, w, hw, limits, base=0x1000)
    gold = _golden(layer, plan, x, w)
    mem, checked = _box_model(lp, hw, x, gold)
    assert checked == len(plan.invocations)
    assert (len(plan.bands) > 1) == (name == "banded")
    t = lp.output
    raw = mem[t.dram - lp.base:t.dram - lp.base + t.nbytes]
    c, h, wd = t.shape
    out = np.frombuffer(raw, np.int8).astype(np.int64).reshape(h, wd, c).transpose(2, 0, 1)
    np.testing.assert_array_equal(out, gold)


def test_store_cycles_use_the_winograd_lanes():
    """A tile-mode store moves ⌈ch / winograd_lanes⌉ words a pixel: its cycles are the
    formula's with those lanes; one store a row of output tiles."""
    from dse.compiler.program import instruction_cycles

    layer = conv(c_in=9, h=7, w=6, c_out=5, k=3, p=0)
    plan = plan_conv(layer, "winograd", "ws", HW2, ROOMY)
    x = np.zeros(layer.in_shape, int)
    w = np.zeros((5, 9, 3, 3), int)
    lp = build_layer_program(plan, x, w, HW2, ROOMY)
    cycles = instruction_cycles(lp, HW2)
    s = next(i for i in lp.program if isinstance(i, StoreSetup))
    stores = [(i, c) for i, c in zip(lp.program, cycles) if isinstance(i, StoreTile)]
    assert len(stores) == 3 and all(i.tile for i, _ in stores)      # one per tile row
    for inst, got in stores:
        assert got == int(store_tile_cycles(inst.dram, inst.rows, inst.cols, inst.ch, s.elem,
                                            s.row_pitch, s.px_pitch, HW2.bus_bits, 2)) - 1


def test_weights_in_two_bytes_and_mismatch_refused():
    layer = conv(c_in=6, h=7, w=7, c_out=5, k=3)
    plan = plan_conv(layer, "winograd", "ws", HW, LIMITS)
    x = np.zeros(layer.in_shape, int)
    w = np.full((5, 6, 3, 3), -128)
    lp = build_layer_program(plan, x, w, HW, LIMITS)
    setup = next(i for i in lp.program if isinstance(i, LoadSetup) and i.buf is Buffer.WEIGHT)
    assert setup.elem == 2 and all(seg.elem == 2 for seg in lp.weights[0])
    hw4 = OverlayParams(rows=4, cols=4, winograd_m=4, a_width=15, b_width=18, acc_width=40)
    with pytest.raises(ValueError, match=r"^plans\[0\] winograd_m and winograd_lanes must be "
                                         r"the overlay's 4 and 1, not 2 and 1$"):
        build_network_program([plan], x, [w], hw4, LIMITS)
    # F(4×4, 3×3) weights need 18 bits: four bytes in DRAM
    plan4 = plan_conv(layer, "winograd", "ws", hw4, ROOMY)
    lp4 = build_layer_program(plan4, x, w, hw4, ROOMY)
    assert all(seg.elem == 4 for seg in lp4.weights[0])
