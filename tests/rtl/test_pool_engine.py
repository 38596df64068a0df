"""rtl.pool_engine.PoolEngine in the Amaranth simulator, against sim.models.pool.

The bench plays the controller and the three buffers: it hands ``pool.setup`` / ``pool.tile``
commands (the instruction words of ``rtl.isa``, cut to ``command_layout(Engine.POOL)``) with
random idles between them, answers the two synchronous read ports from Python lists (a word
one cycle after its ``en``; junk when no read was issued), and records every write.  Each
tile's input words sit among random junk words, with junk in the lanes past ``ch`` too, so a
wrong address or lane shows; the reference is the golden model on the tile's words as the
buffer holds them (every lane), computed here from the command alone.  The checks:

- every result word is bit-exact, written exactly once, at ``out_addr`` + its index, and
  nothing else is written;
- cycles from each tile's transfer to its ``done`` equal ``dse.cost.transforms.pool_cycles``
  exactly, and a setup's ``done`` comes in its transfer's cycle;
- a window larger than its padded tile is refused (``done`` with ``error``, nothing written).
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from dse.cost.transforms import pool_cycles
from rtl.isa import EXTENT_BITS, Activation, PoolSetup, PoolTile
from rtl.pool_engine import SUM_BITS, PoolEngine
from sim.models.pool import pool_output_size, pool_tile

TIMEOUT = 100_000


def _pack(lanes_values):
    word = 0
    for i, v in enumerate(lanes_values):
        word |= (int(v) & 0xFF) << (8 * i)
    return word


def _unpack(word, lanes):
    vals = [(word >> (8 * i)) & 0xFF for i in range(lanes)]
    return [v - 256 if v >= 128 else v for v in vals]


def _run(engine, commands, feature, aux, seed, idle=0.3):
    """Run ``commands`` (rtl.isa PoolSetup / PoolTile) through ``engine`` with the input
    and aux buffers holding ``feature`` and ``aux`` (lists of packed words of the engine's
    ``in_lanes`` lanes; a port not read last cycle gets its own random junk word).  Returns
    the writes [(address, lanes)] in order, each word unpacked into the engine's
    ``out_lanes`` lanes, and, per command, (transfer cycle, done cycle, error).  Also the
    bench of tests/rtl/test_pool_engine_wide.py (``in_lanes`` or ``out_lanes`` ≠ ``lanes``)."""
    rng = random.Random(seed)
    mask = (1 << len(engine.cmd.payload.as_value())) - 1
    words = [c.encode() & mask for c in commands]
    in_lanes, out_lanes = engine.in_lanes, engine.out_lanes
    writes, log = [], []
    sim = Simulator(engine)
    sim.add_clock(1e-6)

    async def bench(ctx):
        cycle, pending = 0, list(words)
        read = read2 = None
        started = None
        while pending or started is not None:
            ctx.set(engine.in_data.as_value(),
                    rng.getrandbits(8 * in_lanes) if read is None else read)
            ctx.set(engine.in2_data.as_value(),
                    rng.getrandbits(8 * in_lanes) if read2 is None else read2)
            offer = bool(pending) and started is None and rng.random() >= idle
            ctx.set(engine.cmd.valid, offer)
            if offer:
                ctx.set(engine.cmd.payload.as_value(), pending[0])
            if offer and ctx.get(engine.cmd.ready):
                pending.pop(0)
                started = cycle
            if ctx.get(engine.done):
                assert started is not None, "done without a command"
                log.append((started, cycle, ctx.get(engine.error)))
                started = None
            read = feature[ctx.get(engine.in_addr)] if ctx.get(engine.in_en) else None
            read2 = aux[ctx.get(engine.in2_addr)] if ctx.get(engine.in2_en) else None
            if ctx.get(engine.out_en):
                writes.append((ctx.get(engine.out_addr),
                               _unpack(ctx.get(engine.out_data.as_value()), out_lanes)))
            await ctx.tick()
            cycle += 1
            assert cycle < TIMEOUT, "the engine hung"

    sim.add_testbench(bench)
    sim.run()
    return writes, log


def _case(rng, lanes, mode, rows, cols, ch, *, kh=1, kw=1, stride=1, pads=(0, 0, 0, 0),
          relu=False, extreme=False, mult=None, shift=None, mult2=None):
    """A setup and a tile with random multipliers (unless given) for ``mode``."""
    if mult is None:
        mult = rng.choice([1, 1, rng.randrange(1, 1 << 16), 65535])
    if shift is None:
        shift = 0 if mult == 1 else rng.randrange(0, 24)
    if mult2 is None:
        mult2 = rng.randrange(0, 1 << 16) if mode == "add" else 0
    setup = PoolSetup(mode=mode, kh=kh, kw=kw, stride=stride, ch=ch,
                      act=Activation.RELU if relu else Activation.NONE, mult=mult,
                      shift=shift, mult2=mult2)
    w = -(-ch // lanes)
    shape = (rows, cols, w * lanes)
    if extreme:
        a = rng_np(rng).choice([-128, 127, -127, 0], size=shape)
        b = rng_np(rng).choice([-128, 127, -127, 0], size=shape)
    else:
        a = rng_np(rng).integers(-128, 128, size=shape)
        b = rng_np(rng).integers(-128, 128, size=shape)
    return setup, pads, a, b if mode == "add" else None


def rng_np(rng):
    return np.random.default_rng(rng.getrandbits(32))


def _check(engine, cases, seed, back_to_back=False):
    """Place every case's tiles in the buffers, run them all, check words and cycles.

    ``cases``: [(setup or None (keep the previous), pads, a, b)] with a, b as rows × cols ×
    (words·lanes) lane values (junk past ``ch``)."""
    rng = random.Random(seed)
    lanes = engine.lanes
    feature = [rng.getrandbits(8 * lanes) for _ in range(engine.depth)]
    aux = [rng.getrandbits(8 * lanes) for _ in range(engine.in2_depth)]
    commands, expected = [], []
    in_at, in2_at, out_at = 0, 0, 0
    setup = None
    for new_setup, pads, a, b in cases:
        if new_setup is not None:
            setup = new_setup
            commands.append(setup)
            expected.append(None)
        rows, cols, width = a.shape
        n_in = rows * cols * width // lanes
        mode = setup.mode.value
        oh, ow = pool_output_size(mode, rows, cols, setup.kh, setup.kw, setup.stride, pads)
        n_out = oh * ow * width // lanes
        assert in_at + n_in <= engine.depth and in2_at + n_in <= engine.in2_depth
        assert out_at + n_out <= engine.out_depth
        for i, word in enumerate(a.reshape(-1, lanes)):
            feature[in_at + i] = _pack(word)
        if b is not None:
            for i, word in enumerate(b.reshape(-1, lanes)):
                aux[in2_at + i] = _pack(word)
        tile = PoolTile(in_addr=in_at, in2_addr=in2_at, out_addr=out_at, rows=rows, cols=cols,
                        pad_t=pads[0], pad_b=pads[1], pad_l=pads[2], pad_r=pads[3])
        want = pool_tile(mode, a, b, kh=setup.kh, kw=setup.kw, stride=setup.stride, pads=pads,
                         mult=setup.mult, shift=setup.shift, mult2=setup.mult2,
                         relu=setup.act is Activation.RELU)
        commands.append(tile)
        expected.append((out_at, want.reshape(-1, lanes).tolist(),
                         int(pool_cycles(mode, rows, cols, width // lanes, setup.kh, setup.kw,
                                         setup.stride, pads))))
        in_at, in2_at, out_at = in_at + n_in, in2_at + n_in, out_at + n_out
    writes, log = _run(engine, commands, feature, aux, seed, idle=0.0 if back_to_back else 0.3)
    assert len(log) == len(commands)
    got = {}
    for addr, word in writes:
        assert addr not in got, f"word {addr} written twice"
        got[addr] = word
    n_written = 0
    for (start, done, error), want in zip(log, expected):
        assert not error
        if want is None:
            assert done == start                       # a setup: done in its transfer cycle
            continue
        out_at, words, cycles = want
        assert [got.get(out_at + i) for i in range(len(words))] == words
        assert done - start == cycles
        n_written += len(words)
    assert len(got) == n_written                       # nothing else written
    if back_to_back:        # the bench offers the next command the cycle after a done
        for prev, nxt in itertools.pairwise(log):
            assert nxt[0] == prev[1] + 1


def _mixed_cases(seed, lanes):
    rng = random.Random(seed)
    c = []
    add = lambda *args, **kw: c.append(_case(rng, lanes, *args, **kw))
    # max: odd tiles, pads, strides 1 and 2, windows of padding only, ReLU, extremes
    add("max", 7, 9, 6, kh=3, kw=3, stride=2, pads=(1, 1, 1, 1))
    add("max", 5, 6, 3, kh=2, kw=3, stride=1, pads=(0, 1, 2, 0), relu=True, mult=3, shift=1)
    add("max", 3, 2, 5, kh=3, kw=2, stride=1, pads=(3, 2, 2, 1), extreme=True)
    add("max", 4, 4, 4, kh=2, kw=2, stride=2, extreme=True, relu=True, mult=65535, shift=9)
    # avg: 1/9 and exact means, full-range multipliers, saturation
    add("avg", 7, 7, 5, kh=3, kw=3, stride=1, pads=(1, 1, 1, 1), mult=7282, shift=16)
    add("avg", 6, 5, 2, kh=2, kw=2, stride=2, pads=(0, 0, 0, 1), mult=1, shift=2, relu=True)
    add("avg", 5, 8, 7, kh=3, kw=2, stride=2, pads=(2, 0, 1, 1), extreme=True, mult=65535,
        shift=14)
    add("avg", 4, 3, 3, kh=4, kw=3, stride=1, extreme=True, mult=1, shift=0)   # saturates
    # global max / average
    add("gmax", 5, 7, 6, pads=(1, 2, 3, 4))          # pads are unused in the global modes
    add("gmax", 3, 3, 3, extreme=True, relu=True, mult=200, shift=7)
    add("gavg", 6, 5, 5, mult=1311, shift=15)
    add("gavg", 2, 7, 2, extreme=True, mult=1, shift=0)                        # saturates
    add("gavg", 3, 4, 6, extreme=True, relu=True, mult=65535, shift=63)        # all round to 0
    # add and rescale
    add("add", 5, 3, 6, mult=1, shift=0, mult2=1)
    add("add", 3, 7, 5, relu=True, mult=21000, shift=15, mult2=46000)
    add("add", 2, 3, 3, extreme=True, mult=65535, shift=16, mult2=65535)
    add("rescale", 4, 5, 7, mult=40000, shift=15)
    add("rescale", 3, 3, 2, extreme=True, relu=True, mult=3, shift=0)
    return c


def test_every_mode_bit_exact_with_exact_cycles():
    engine = PoolEngine(lanes=4, depth=1024)
    cases = _mixed_cases(1, 4)
    assert {case[0].mode.value for case in cases} == {"max", "avg", "gmax", "gavg", "add",
                                                      "rescale"}
    _check(engine, cases, seed=11)


def test_odd_lanes_depths_and_held_setup_back_to_back():
    """Three lanes, buffers of different, non-power-of-two depths; two tiles under one
    setup; commands offered with no idle cycle."""
    engine = PoolEngine(lanes=3, depth=700, in2_depth=300, out_depth=400)
    rng = random.Random(2)
    first = _case(rng, 3, "avg", 6, 7, 4, kh=3, kw=3, stride=2, pads=(1, 0, 1, 1),
                  mult=3641, shift=15)
    second = _case(rng, 3, "avg", 5, 4, 4, kh=3, kw=3, stride=2, pads=(0, 1, 1, 0))
    cases = [first, (None,) + second[1:],
             _case(rng, 3, "add", 4, 5, 7, relu=True),
             _case(rng, 3, "gmax", 4, 3, 1),
             _case(rng, 3, "max", 1, 1, 2, kh=1, kw=1, stride=1)]
    _check(engine, cases, seed=5, back_to_back=True)


def _random_cases(seed, lanes, count):
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        mode = rng.choice(["max", "avg", "gmax", "gavg", "add", "rescale"])
        rows, cols = rng.randint(1, 8), rng.randint(1, 8)
        ch = rng.randint(1, 3 * lanes)
        pads = tuple(rng.randint(0, 3) for _ in range(4))
        # the window fits the padded tile (kh, kw, stride are unused but set in the others)
        kh = rng.randint(1, min(5, pads[0] + rows + pads[1]))
        kw = rng.randint(1, min(5, pads[2] + cols + pads[3]))
        shift = rng.choice([0, rng.randint(1, 20), rng.randint(20, 63)])
        cases.append(_case(rng, lanes, mode, rows, cols, ch, kh=kh, kw=kw,
                           stride=rng.randint(1, 3), pads=pads, relu=rng.random() < 0.5,
                           extreme=rng.random() < 0.3, mult=rng.randrange(0, 1 << 16),
                           shift=shift))
    return cases


@pytest.mark.parametrize("lanes,seed", [(1, 31), (4, 32), (8, 33)])
def test_random_tiles(lanes, seed):
    _check(PoolEngine(lanes=lanes, depth=4096), _random_cases(seed, lanes, 30), seed=seed)


def test_refuses_a_window_larger_than_the_padded_tile():
    engine = PoolEngine(lanes=2, depth=64)
    commands = [PoolSetup(mode="max", kh=4, kw=2, ch=3),
                PoolTile(in_addr=0, in2_addr=0, out_addr=0, rows=2, cols=5, pad_t=1),
                PoolTile(in_addr=0, in2_addr=0, out_addr=0, rows=3, cols=5, pad_t=1)]
    feature = [random.Random(1).getrandbits(16) for _ in range(64)]
    writes, log = _run(engine, commands, feature, feature, seed=3)
    (s0, d0, e0), (s1, d1, e1), (s2, d2, e2) = log
    assert (d0 - s0, e0) == (0, 0)
    assert e1 == 1 and d1 - s1 == int(pool_cycles("max", 2, 5, 2, 4, 2, 1, (1, 0, 0, 0))) == 1
    assert e2 == 0 and d2 - s2 == int(pool_cycles("max", 3, 5, 2, 4, 2, 1, (1, 0, 0, 0)))
    assert len(writes) == 1 * 4 * 2                    # only the second tile's 1×4 pixels


def test_sum_bits_hold_any_isa_tile():
    most = (1 << EXTENT_BITS) - 1
    assert -128 * most * most >= -(1 << (SUM_BITS - 1))
    assert 127 * most * most < 1 << (SUM_BITS - 1)


def test_parameter_errors():
    with pytest.raises(TypeError, match=r"^lanes must be an integer, not 2\.0$"):
        PoolEngine(lanes=2.0)
    with pytest.raises(ValueError, match=r"^lanes must be between 1 and 256, not 0$"):
        PoolEngine(lanes=0)
    with pytest.raises(ValueError, match=r"^depth must be between 2 and 1048576, not 1$"):
        PoolEngine(depth=1)
    with pytest.raises(TypeError, match=r"^out_depth must be an integer, not True$"):
        PoolEngine(out_depth=True)


def test_verilog_conversion():
    """Amaranth's own conversion (with its combinational-loop check)."""
    text = verilog.convert(PoolEngine(lanes=3, depth=100), name="pool_top")
    assert "module pool_top" in text
    for port in ("in_addr", "in2_en", "out_data", "cmd__ready", "done"):
        assert f" {port};" in text or f" {port} " in text


def test_lint_clean(tmp_path):
    from sim.runner import emit_verilog, lint_verilog

    violations, _ = lint_verilog(emit_verilog(PoolEngine(lanes=4, depth=1024), "pool_engine"),
                                 "pool_engine", work_dir=tmp_path)
    assert not violations, "\n".join(f"line {w.line}: %{w.rule}: {w.message}"
                                     for w in violations[:20])


def _stored_words(x, in_lanes):
    """A rows × cols × ch uint8 tile as the engine's input words: each pixel's stored values
    (uint8 − 128) in ⌈ch / in_lanes⌉ packed words, the lanes past ``ch`` zero."""
    rows, cols, ch = x.shape
    wpp = -(-ch // in_lanes)
    out = []
    for y in range(rows):
        for c in range(cols):
            v = list(x[y, c] - 128) + [0] * (wpp * in_lanes - ch)
            out += [_pack(v[k * in_lanes:(k + 1) * in_lanes]) for k in range(wpp)]
    return out


@pytest.mark.parametrize("lanes, in_lanes, out_lanes", [(4, 4, 4), (2, 4, 2), (2, 2, 4)])
def test_qadd_mode_equals_qlinear_add_with_exact_cycles(lanes, in_lanes, out_lanes):
    """The ``qadd`` mode (``pool.qadd`` settings, then ``pool.setup mode=qadd``): every result
    onnxruntime's QLinearAdd (``sim.models.qdq_network.qlinear_add``) of the stored operands,
    in ``pool_cycles`` exactly, beside a plain ``add`` tile that still runs its own path; with
    wider input or output words."""
    from dse.qlinear import qadd_settings
    from rtl.isa import PoolQAdd
    from sim.models.qdq_network import qlinear_add

    rng = random.Random(lanes * 7 + out_lanes)
    scales = [np.float32(s) for s in (0.031, 0.047, 0.052)]
    zps = (131, 97, 120)
    q = qadd_settings(scales[0], zps[0], scales[1], zps[1], scales[2], zps[2]).packed()
    rows, cols, ch = 3, 2, 2 * out_lanes + 1
    nrng = np.random.default_rng(lanes)
    a = nrng.integers(0, 256, (rows, cols, ch))
    b = nrng.integers(0, 256, (rows, cols, ch))
    a[0, 0, :2], b[0, 0, :2] = (0, 255), (255, 0)
    engine = PoolEngine(lanes, 64, in_lanes=in_lanes, out_lanes=out_lanes, qdq=True)
    commands = [PoolQAdd(r_a=q["r_a"], r_b=q["r_b"], f=q["f"]),
                PoolSetup(mode="qadd", ch=ch),
                PoolTile(in_addr=0, in2_addr=0, out_addr=0, rows=rows, cols=cols),
                PoolSetup(mode="add", ch=ch, mult=1, shift=0, mult2=1),
                PoolTile(in_addr=0, in2_addr=0, out_addr=32, rows=rows, cols=cols)]
    writes, log = _run(engine, commands, _stored_words(a, in_lanes), _stored_words(b, in_lanes),
                       seed=rng.randrange(1 << 30))
    opw = -(-ch // out_lanes)                # output words a pixel
    got = {}
    for addr, vals in writes:
        got[addr] = vals
    want = qlinear_add(a, scales[0], zps[0], b, scales[1], zps[1], scales[2], zps[2])
    out = np.array([[sum((got[(y * cols + c) * opw + k] for k in range(opw)), [])[:ch]
                     for c in range(cols)] for y in range(rows)])
    np.testing.assert_array_equal(out + 128, want)
    plain = np.array([[sum((got[32 + (y * cols + c) * opw + k] for k in range(opw)), [])[:ch]
                       for c in range(cols)] for y in range(rows)])
    np.testing.assert_array_equal(plain, np.clip((a - 128) + (b - 128), -128, 127))
    groups = -(-ch // lanes)
    assert [d - t for t, d, _ in log] == [0, 0, pool_cycles("qadd", rows, cols, groups), 0,
                                          pool_cycles("add", rows, cols, groups)]
    assert pool_cycles("qadd", rows, cols, groups) > pool_cycles("add", rows, cols, groups)


@pytest.mark.parametrize("lanes, in_lanes, out_lanes", [(4, 4, 4), (2, 4, 2), (2, 2, 4)])
def test_qgavg_mode_equals_qlinear_global_average_pool(lanes, in_lanes, out_lanes):
    """The ``qgavg`` mode (``pool.requant`` settings, then ``pool.setup mode=qgavg``): each
    channel's sum of the stored values plus the bias (128 − z_x)·N, requantised float32-
    exactly, equals onnxruntime's QLinearGlobalAveragePool
    (``sim.models.qdq_network.qlinear_global_average_pool``), in ``pool_cycles`` exactly."""
    from dse.compiler.qdq import gap_requant
    from rtl.isa import PoolRequant
    from sim.models.qdq_network import qlinear_global_average_pool

    rows, cols, ch = 3, 5, 2 * out_lanes + 1
    nrng = np.random.default_rng(lanes + 3 * out_lanes)
    x = nrng.integers(0, 256, (rows, cols, ch))
    x[:, :, 0] = 255                                 # a saturating channel
    sx, zx, sy, zy = np.float32(0.043), 119, np.float32(0.011), 131
    setting = gap_requant(sx, zx, sy, zy, rows * cols)
    feature = _stored_words(x, in_lanes)
    engine = PoolEngine(lanes, 128, in_lanes=in_lanes, out_lanes=out_lanes, qdq=True)
    commands = [PoolRequant(**setting), PoolSetup(mode="qgavg", ch=ch),
                PoolTile(in_addr=0, in2_addr=0, out_addr=0, rows=rows, cols=cols)]
    writes, log = _run(engine, commands, feature, feature, seed=lanes)
    got = dict(writes)
    opw = -(-ch // out_lanes)
    out = np.array(sum((got[k] for k in range(opw)), [])[:ch])
    want = qlinear_global_average_pool(x.transpose(2, 0, 1)[None], sx, zx, sy, zy)
    np.testing.assert_array_equal(out + 128, np.asarray(want).reshape(-1))
    assert [d - t for t, d, _ in log] == [0, 0, pool_cycles("qgavg", rows, cols,
                                                            -(-ch // lanes))]


@pytest.mark.parametrize("lanes, in_lanes, out_lanes", [(4, 4, 4), (2, 4, 2), (2, 2, 4)])
def test_lut_mode_equals_qlinear_concat_requantisation(lanes, in_lanes, out_lanes):
    """The ``lut`` mode (32 ``pool.lut`` instructions, then ``pool.setup mode=lut``): each
    element replaced by its table entry -- here QLinearConcat's requantisation table of
    one input (``sim.models.qdq_network.concat_table``) over every uint8 value, extremes
    included -- in ``pool_cycles`` exactly; a second table replaces the first, and a plain
    ``rescale`` tile after it runs its own path."""
    from rtl.isa import LUT_INSTRUCTIONS, lut_instructions
    from sim.models.qdq_network import concat_table

    rows, cols, ch = 8, 8, 2 * out_lanes + 1
    x = np.arange(rows * cols * ch).reshape(rows, cols, ch) * 37 % 256   # every byte value
    assert set(x.ravel()) == set(range(256))
    tables = [concat_table(np.float32(0.043), 119, np.float32(0.031), 131),
              concat_table(np.float32(0.0071), 3, np.float32(0.052), 250)]
    assert {int(tables[0].min()), int(tables[0].max())} == {0, 255}        # saturates
    feature = _stored_words(x, in_lanes)
    engine = PoolEngine(lanes, 512, in_lanes=in_lanes, out_lanes=out_lanes, qdq=True)
    tile = dict(in_addr=0, in2_addr=0, rows=rows, cols=cols)
    commands = [*lut_instructions(tables[1] - 128), *lut_instructions(tables[0] - 128),
                PoolSetup(mode="lut", ch=ch), PoolTile(out_addr=0, **tile),
                PoolSetup(mode="rescale", ch=ch, mult=1, shift=0),
                PoolTile(out_addr=256, **tile)]
    writes, log = _run(engine, commands, feature, feature, seed=lanes)
    got = dict(writes)
    opw = -(-ch // out_lanes)

    def tensor(base):
        return np.array([[sum((got[base + (y * cols + c) * opw + k] for k in range(opw)),
                              [])[:ch] for c in range(cols)] for y in range(rows)])

    np.testing.assert_array_equal(tensor(0) + 128, tables[0][x])
    np.testing.assert_array_equal(tensor(256), x - 128)
    cycles = pool_cycles("lut", rows, cols, -(-ch // lanes))
    assert [d - t for t, d, _ in log] == [0] * (2 * LUT_INSTRUCTIONS + 1) + [cycles, 0, cycles]
