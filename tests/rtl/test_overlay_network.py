"""A chain of conv layers as one program on rtl.overlay_top.OverlayTop, tensors in DRAM (HWC).

Three layers (3×3 im2col ws → 1×1 im2col os → 3×3 kn2row os, 6 → 5 → 7 → 6 channels: none a
multiple of the 4×4 array) are planned on one overlay with small ``DatapathLimits``, so
every layer is cut into row bands and filter chunks, and the 3×3 layers into channel chunks
too (a K split: channel sub-ranges loaded with a pixel pitch wider than the box's pixel).
``dse.compiler.program.build_network_program`` makes one program and one DRAM image of them: layer
i's output tensor is layer i + 1's input.  References, independent of the RTL:

* **boxes** (no simulator): a model of ``load.tile`` / ``store.tile`` written from the ISA's
  box semantics (docs/isa.md; ⌈ch / lanes⌉ words a pixel, the last zero-filled) applied to
  the program and its DRAM image must fill the feature buffer with exactly
  ``ConvPlan.feature_image`` before every ``compute.tile`` (over a buffer of garbage: the
  zero boxes must cover the padding), and storing the golden outputs' words
  (``ConvPlan.decode``'s layout) must give the golden HWC tensor;
* **tokens**: ``dse.compiler.asm.check_tokens``, and each layer's first load depends (through
  store → compute → load) on the previous layer's last store;
* **simulation**: every layer's output tensor read back from DRAM after the run equals
  ``sim.models.conv.conv2d`` + ``sim.models.requant.requantize`` of the golden previous
  layer's output, bit for bit, and the cycles are test_overlay_top.py's: every instruction
  and the total exactly ``dse.compiler.asm.schedule``'s.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dse.compiler.asm import check_tokens, schedule
from dse.compiler import plan_conv
from dse.compiler.program import (
    PoolLayer,
    build_layer_program,
    build_network_program,
    decode_output,
    instruction_cycles,
    pool_numerics,
    tensor_bytes,
)
from rtl.controller import DISPATCH_LATENCY
from rtl.params import QUEUE_DEPTH
from rtl.isa import (
    Activation,
    Buffer,
    ComputeSetup,
    ComputeTile,
    Engine,
    LoadSetup,
    LoadTile,
    PoolMode,
    PoolSetup,
    PoolTile,
    StoreSetup,
    StoreTile,
)
from rtl.overlay_top import OverlayTop, pool_supported
from rtl.params import DatapathLimits, OverlayParams
from sim.models.conv import conv2d
from sim.models.pool import pool_tile
from sim.models.requant import requantize

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dse"))
from cost_helpers import conv
from test_overlay_top import BASE, HW, TOKEN_DEPTH, _run, check_cycles

#: Small buffers: bands everywhere, filter chunks, channel chunks of the 3×3 layers.
LIMITS = DatapathLimits(max_m=32, max_k=72, max_n=4, feature_words=256, weight_words=36,
                        out_words=32, max_gemms=16, tile_words=2, spectral_words=2)
CHAIN = [
    ("im2col", "ws", conv(c_in=6, h=7, w=5, c_out=5, k=3)),
    ("im2col", "os", conv(c_in=5, h=7, w=5, c_out=7, k=1, p=0)),
    ("kn2row", "os", conv(c_in=7, h=7, w=5, c_out=6, k=3)),
]


def _chain(seed=3):
    plans = [plan_conv(layer, algo, flow, HW, LIMITS) for algo, flow, layer in CHAIN]
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, CHAIN[0][2].in_shape)
    ws = [rng.integers(-128, 128, (layer.out_shape[0], layer.in_shape[0], *layer.kernel))
          for _, _, layer in CHAIN]
    return plans, x, ws


def _golden(plans, x, ws):
    """Each layer's requantised output, the previous one's feeding the next."""
    outs = []
    for plan, (_, _, layer), w in zip(plans, CHAIN, ws):
        regs = plan.invocations[0].registers
        acc = conv2d(x, w, stride=layer.stride[0], padding=layer.padding[0],
                     dilation=layer.dilation[0])
        x = requantize(acc, regs["rq_mult"], regs["rq_shift"], 8, False)
        outs.append(x)
    return outs


def _box_model(lp, outputs=None):
    """Run the program's loads and stores on a copy of its image with a model of the ISA's
    boxes: the feature buffer before each compute.tile, and the memory after the stores,
    which write each final invocation's ``outputs`` words (from the golden per layer)."""
    mem = bytearray(lp.image)
    base, lanes, cols = lp.base, HW.rows, HW.cols
    buf = np.full((LIMITS.feature_words, lanes), -77, dtype=np.int64)
    setups, feats, computes, pending = {}, [], iter(lp.computes), None
    for inst in lp.program:
        if isinstance(inst, (LoadSetup, StoreSetup)):
            setups[getattr(inst, "buf", "store")] = inst
        elif isinstance(inst, LoadTile) and inst.buf is Buffer.FEATURE:
            s = setups[Buffer.FEATURE]
            cw, a = -(-inst.ch // lanes), inst.addr
            for r in range(inst.rows):
                for c in range(inst.cols):
                    p = inst.dram - base + r * s.row_pitch + c * s.px_pitch
                    v = np.frombuffer(bytes(mem[p:p + inst.ch * s.elem]), f"<i{s.elem}")
                    word = np.zeros(cw * lanes, dtype=np.int64)
                    word[:inst.ch] = v
                    buf[a:a + cw] = word.reshape(cw, lanes)
                    a += cw
        elif isinstance(inst, ComputeTile):
            feats.append(buf.copy())
            plan, inv = next(computes)
            if outputs is not None:
                gold = outputs[lp.plans.index(plan)]
                y0, y1 = plan.bands[inv.band].rows if inv.band >= 0 else (0, gold.shape[1])
                f0, f1 = inv.filters
                part = gold[f0:f1, y0:y1]                       # decode's inverse (ws, os)
                nb = -(-(f1 - f0) // cols)
                words = np.zeros((part.shape[1] * part.shape[2], nb * cols), dtype=np.int64)
                words[:, :f1 - f0] = part.transpose(1, 2, 0).reshape(-1, f1 - f0)
                pending = words.reshape(-1, cols)
        elif isinstance(inst, StoreTile):
            s = setups["store"]
            cw, a = -(-inst.ch // cols), inst.addr
            for r in range(inst.rows):
                for c in range(inst.cols):
                    p = inst.dram - base + r * s.row_pitch + c * s.px_pitch
                    v = pending[a:a + cw].reshape(-1)[:inst.ch]
                    mem[p:p + inst.ch * s.elem] = v.astype(f"<i{s.elem}").tobytes()
                    a += cw
    return feats, bytes(mem)


def test_boxes_fill_feature_images_and_store_tensors():
    plans, x, ws = _chain()
    lp = build_network_program(plans, x, ws, HW, LIMITS, base=BASE, token_depth=TOKEN_DEPTH)
    gold = _golden(plans, x, ws)
    # the feature boxes of layer i read layer i − 1's golden output from its tensor
    ins = [x, *gold[:-1]]
    image = bytearray(lp.image)
    for t, v in zip(lp.tensors, ins):
        image[t.dram - BASE:t.dram - BASE + t.nbytes] = tensor_bytes(v, t.elem)
    lp_in = type(lp)(**{**lp.__dict__, "image": bytes(image)})
    feats, mem = _box_model(lp_in, gold)
    assert len(feats) == sum(len(p.invocations) for p in plans) == 28
    for (plan, inv), got in zip(lp.computes, feats):
        ref = plan.feature_image(ins[lp.plans.index(plan)], inv)
        assert np.array_equal(got[:len(ref)], ref), (plan.algorithm, inv.band, inv.filters)
    for i, g in enumerate(gold):
        assert np.array_equal(decode_output(lp, mem, layer=i), g), i
    # the chain's input tensor is x in HWC order, int8
    t = lp.input
    raw = np.frombuffer(lp.image[t.dram - BASE:t.dram - BASE + t.nbytes], np.int8)
    assert np.array_equal(raw.reshape(7, 5, 6), x.transpose(1, 2, 0))
    # a channel chunk is a sub-range: its boxes start at channel c0 with the tensor's pitch
    chunk_loads = [i for i in lp.program if isinstance(i, LoadTile) and i.buf is Buffer.FEATURE
                   and t.dram <= i.dram < t.dram + t.nbytes and (i.dram - t.dram) % 6 == 4]
    assert chunk_loads and all(i.ch == 2 for i in chunk_loads)


def test_tokens_chain_layers_through_compute():
    plans, x, ws = _chain()
    lp = build_network_program(plans, x, ws, HW, LIMITS, base=BASE, token_depth=1)
    check_tokens(lp.program, 1)
    prog = lp.program
    setups = [i for i, inst in enumerate(prog) if isinstance(inst, ComputeSetup)]
    assert len(setups) == 3
    assert not prog[setups[0]].pop and not prog[setups[0]].push
    for s in setups[1:]:
        assert prog[s].pop == {Engine.STORE} and prog[s].push == {Engine.LOAD}
        last_store = max(i for i in range(s) if isinstance(prog[i], StoreTile))
        assert Engine.COMPUTE in prog[last_store].push
        first_load = min(i for i in range(s, len(prog)) if isinstance(prog[i], LoadTile))
        assert Engine.COMPUTE in prog[first_load].pop
    # K split: only the final channel chunk of each (band, filter chunk) is stored
    stores = [i for i in prog if isinstance(i, StoreTile)]
    assert len(stores) == sum(inv.final for p in plans for inv in p.invocations) == 16
    # the schedule never starts a layer's load before the previous layer's last store ends
    spans = schedule(prog, instruction_cycles(lp, HW), 1, latency=DISPATCH_LATENCY,
                     queue_depth=QUEUE_DEPTH)
    for s in setups[1:]:
        last_store = max(i for i in range(s) if isinstance(prog[i], StoreTile))
        first_load = min(i for i in range(s, len(prog)) if isinstance(prog[i], LoadTile))
        assert spans[first_load][0] > spans[last_store][1]


def test_network_arguments_refused():
    plans, x, ws = _chain()
    with pytest.raises(ValueError,
                       match=r"plans\[1\] input must be tensor 1's shape \(5, 7, 5\)"):
        build_network_program([plans[0], plans[2]], x, [ws[0], ws[2]], HW, LIMITS)
    with pytest.raises(ValueError, match="weights must hold one array per plan"):
        build_network_program(plans, x, ws[:2], HW, LIMITS)
    with pytest.raises(ValueError, match=r"weights\[1\] must have shape \(7, 5, 1, 1\)"):
        build_network_program(plans, x, [ws[0], ws[2], ws[2]], HW, LIMITS)
    with pytest.raises(ValueError, match="plans must be a non-empty sequence"):
        build_network_program([], x, [], HW, LIMITS)
    with pytest.raises(ValueError, match="x must have the first plan's input shape"):
        build_network_program(plans, x[:5], ws, HW, LIMITS)
    with pytest.raises(ValueError, match="x must fit 8-bit elements"):
        build_network_program(plans, x + 200, ws, HW, LIMITS)
    layer = conv(c_in=8, h=6, w=6, c_out=8, k=3)
    with pytest.raises(ValueError, match="ws or os dataflow, not 'is'.*relayout"):
        build_layer_program(plan_conv(layer, "im2col", "is", HW, LIMITS),
                            np.zeros(layer.in_shape, int), np.zeros((8, 8, 3, 3), int),
                            HW, LIMITS)
    with pytest.raises(ValueError, match="must have 1 group, not 2"):
        g = conv(c_in=8, h=6, w=6, c_out=8, k=3, g=2)
        build_layer_program(plan_conv(g, "im2col", "ws", HW, LIMITS),
                            np.zeros(g.in_shape, int), np.zeros((8, 4, 3, 3), int), HW,
                            LIMITS)
    with pytest.raises(ValueError, match="one-layer program's"):
        _ = build_network_program(plans, x, ws, HW, LIMITS).plan


def test_network_bit_exact_and_cycles():
    plans, x, ws = _chain()
    lp = build_network_program(plans, x, ws, HW, LIMITS, base=BASE, token_depth=TOKEN_DEPTH)
    mem = bytearray(lp.image) + bytearray(4096)
    dut = OverlayTop(HW, LIMITS, table_words=max(2, lp.table_words),
                     token_depth=TOKEN_DEPTH)
    (r,), _ = _run(dut, mem, lp.program_addr)
    assert r["done"] and not r["error"] and not r["engine_error"] and not r["fetch_error"]
    for i, g in enumerate(_golden(plans, x, ws)):
        out = decode_output(lp, r["dram"], BASE, layer=i)
        assert np.array_equal(out, g), f"layer {i}: {(out != g).sum()} outputs differ"
    check_cycles(lp, r)


# -- pool layers: max, average and global pooling and the residual add ----------------------

#: conv → max pool 2×2/2 → conv (the pool output is the second conv's input).
POOL_CHAIN = [
    ("im2col", "ws", conv(c_in=6, h=8, w=6, c_out=5, k=3)),
    PoolLayer("max", (2, 2), 2),
    ("kn2row", "os", conv(c_in=5, h=4, w=3, c_out=6, k=3)),
]
#: A residual block (conv → conv → add with the block's input, 7 rows: the add runs in
#: bands of the output buffer's 32 words), then an average pool 3×3/2 with padding and a
#: global average pool.
RESIDUAL_CHAIN = [
    ("im2col", "ws", conv(c_in=6, h=7, w=5, c_out=5, k=3)),
    ("im2col", "os", conv(c_in=5, h=7, w=5, c_out=6, k=3)),
    PoolLayer("add", source=0),
    PoolLayer("avg", (3, 3), 2, (1, 1, 1, 1), relu=True),
    PoolLayer("gavg"),
]


def _pool_chain(chain, seed):
    """Plans, input and weights of a chain of conv layers and :class:`PoolLayer`\\ s."""
    rng = np.random.default_rng(seed)
    plans, ws = [], []
    for entry in chain:
        if isinstance(entry, PoolLayer):
            plans.append(entry)
            ws.append(None)
            continue
        algo, flow, layer = entry
        plans.append(plan_conv(layer, algo, flow, HW, LIMITS))
        ws.append(rng.integers(-128, 128, (layer.out_shape[0], layer.in_shape[0],
                                           *layer.kernel)))
    first = next(e for e in chain if not isinstance(e, PoolLayer))[2]
    x = rng.integers(-128, 128, first.in_shape)
    return plans, x, ws


def _pool_golden(chain, plans, x, ws):
    """Every tensor of the chain from the golden models: conv2d + requantize, and
    ``sim.models.pool.pool_tile`` on whole HWC tensors with the numerics of
    ``dse.compiler.program.pool_numerics`` (the window's element count)."""
    tensors = [x]
    for entry, plan, w in zip(chain, plans, ws):
        a = tensors[-1]
        if isinstance(entry, PoolLayer):
            _, h, wd = a.shape
            n = h * wd if entry.mode == "gavg" else entry.kernel[0] * entry.kernel[1]
            mult, shift, mult2 = pool_numerics(entry.mode, n)
            b = tensors[entry.source].transpose(1, 2, 0) if entry.mode == "add" else None
            out = pool_tile(entry.mode, a.transpose(1, 2, 0), b, kh=entry.kernel[0],
                            kw=entry.kernel[1], stride=entry.stride, pads=entry.pads,
                            mult=mult, shift=shift, mult2=mult2, relu=entry.relu)
            tensors.append(out.transpose(2, 0, 1))
        else:
            _, _, layer = entry
            regs = plan.invocations[0].registers
            acc = conv2d(a, w, stride=layer.stride[0], padding=layer.padding[0],
                         dilation=layer.dilation[0])
            tensors.append(requantize(acc, regs["rq_mult"], regs["rq_shift"], 8, False))
    return tensors[1:]


@pytest.mark.parametrize("chain,seed", [(POOL_CHAIN, 11), (RESIDUAL_CHAIN, 12)],
                         ids=["conv-maxpool-conv", "residual-avg-gavg"])
def test_pool_chain_bit_exact_and_cycles(chain, seed):
    plans, x, ws = _pool_chain(chain, seed)
    lp = build_network_program(plans, x, ws, HW, LIMITS, base=BASE, token_depth=TOKEN_DEPTH)
    pool_tiles = [i for i in lp.program if isinstance(i, PoolTile)]
    assert pool_tiles
    if chain is RESIDUAL_CHAIN:         # the add and the average pool run in bands
        assert sum(i.buf is Buffer.AUX for i in lp.program if isinstance(i, LoadTile)) >= 3
        assert len(pool_tiles) >= 5
    mem = bytearray(lp.image) + bytearray(4096)
    dut = OverlayTop(HW, LIMITS, table_words=max(2, lp.table_words), token_depth=TOKEN_DEPTH)
    (r,), _ = _run(dut, mem, lp.program_addr)
    assert r["done"] and not r["error"] and not r["engine_error"] and not r["fetch_error"]
    for i, g in enumerate(_pool_golden(chain, plans, x, ws)):
        out = decode_output(lp, r["dram"], BASE, layer=i)
        assert np.array_equal(out, g), f"layer {i}: {(out != g).sum()} outputs differ"
    check_cycles(lp, r)


def test_pool_tokens_and_numerics():
    plans, x, ws = _pool_chain(RESIDUAL_CHAIN, 12)
    lp = build_network_program(plans, x, ws, HW, LIMITS, base=BASE, token_depth=1)
    check_tokens(lp.program, 1)
    prog = lp.program
    setups = [i for i, inst in enumerate(prog) if isinstance(inst, PoolSetup)]
    assert len(setups) == 3
    for s in setups:
        # store → pool → load across each layer boundary
        assert prog[s].pop == {Engine.STORE} and prog[s].push == {Engine.LOAD}
        last_store = max(i for i in range(s) if isinstance(prog[i], StoreTile))
        assert Engine.POOL in prog[last_store].push
        first_load = min(i for i in range(s, len(prog)) if isinstance(prog[i], LoadTile))
        assert Engine.POOL in prog[first_load].pop
    spans = schedule(prog, instruction_cycles(lp, HW), 1, latency=DISPATCH_LATENCY,
                     queue_depth=QUEUE_DEPTH)
    for s in setups:
        last_store = max(i for i in range(s) if isinstance(prog[i], StoreTile))
        first_load = min(i for i in range(s, len(prog)) if isinstance(prog[i], LoadTile))
        assert spans[first_load][0] > spans[last_store][1]
    # pool.tile cycles are the engine's formula; the average's numerics are 1 / window
    cyc = instruction_cycles(lp, HW)
    tiles = [(i, inst) for i, inst in enumerate(prog) if isinstance(inst, PoolTile)]
    gavg = tiles[-1]
    assert cyc[gavg[0]] == 4 * 3 * 2 + 7          # 4×3 pixels, 2 words each, POOL_LATENCY 7
    avg = prog[setups[1]]
    assert avg.mode is PoolMode.AVG and avg.act is Activation.RELU
    assert abs(avg.mult / 2 ** avg.shift - 1 / 9) < 2 ** -15 / 9 and avg.mult < 1 << 16
    assert pool_numerics("gavg", 12) == (round(2 ** 19 / 12), 19, 0)
    assert pool_numerics("max", 4) == (1, 0, 0) and pool_numerics("add") == (1, 0, 1)
    add = prog[setups[0]]
    assert (add.mode, add.mult, add.shift, add.mult2) == (PoolMode.ADD, 1, 0, 1)


def test_pool_layers_refused():
    plans, x, ws = _pool_chain(RESIDUAL_CHAIN, 12)
    with pytest.raises(ValueError, match=r"weights\[2\] must be None for a pool layer"):
        build_network_program(plans, x, [*ws[:2], np.zeros(1), *ws[3:]], HW, LIMITS)
    bad = [*plans[:2], PoolLayer("add", source=3)]
    with pytest.raises(ValueError, match=r"plans\[2\] source must be an earlier tensor"):
        build_network_program(bad, x, ws[:3], HW, LIMITS)
    bad = [plans[0], PoolLayer("add", source=0)]
    with pytest.raises(ValueError, match=r"source tensor 0 must have the add's input shape"):
        build_network_program(bad, x, ws[:2], HW, LIMITS)
    wide = OverlayParams(rows=4, cols=12)       # 12 / gcd(4, 12) = 3: no power of two
    with pytest.raises(ValueError, match=r"needs an 8-bit network on an overlay whose rows and "
                                         r"cols are a power of two apart.*int8 on 4x12"):
        build_network_program([PoolLayer("max", (2, 2), 2)], x, [None], wide, LIMITS)
    with pytest.raises(ValueError, match="global pool"):
        build_network_program([PoolLayer("gmax")], np.zeros((8, 12, 12), int), [None], HW,
                              LIMITS)
    with pytest.raises(ValueError, match="pad_t must be between 0 and 1, not 2"):
        PoolLayer("max", (2, 2), 2, (2, 0, 0, 0))
    with pytest.raises(ValueError, match="source must be given for mode add"):
        PoolLayer("add")
    with pytest.raises(ValueError, match="only max and avg have windows"):
        PoolLayer("gavg", (2, 2))
    with pytest.raises(ValueError, match="mode must be one of max, avg, gmax, gavg, add"):
        PoolLayer("rescale")
    with pytest.raises(ValueError, match="given together"):
        PoolLayer("add", source=0, mult=3)
    # the builder's condition is the top's (rtl.overlay_top.pool_supported)
    assert not pool_supported(wide) and pool_supported(HW) and not pool_supported(HW, 16)
    assert pool_supported(OverlayParams(rows=4, cols=8))
    assert pool_supported(OverlayParams(rows=8, cols=4))
    assert not pool_supported(OverlayParams(rows=4, cols=6))
