"""rtl.dma's load and store engines in the Amaranth simulator, against an AXI4 memory model.

``rtl_load`` / ``rtl_store`` run commands through an engine whose ``m_axi_*`` ports are
served by ``sim.bench.axi_memory.AxiMemory`` (a bytearray; it checks the burst rules: INCR,
full-width, at most 256 beats, aligned, never across 4 KiB, strobes only inside the box).
The references are numpy, computed here from the DRAM bytes and the command alone:

- load: the box gathered with its pitches, viewed as ``elem``-byte little-endian integers,
  each pixel cut into ⌈ch / lanes⌉ words of ``lanes`` lanes, the last zero-filled, each lane
  the element modulo 2^lane_bits (sign-extended elements);
- store: the reverse, scattered into a copy of the memory, so that every byte outside the box
  must stay as it was; the lanes of a pixel's last word past ``ch`` hold random junk.

Cycles: with a memory that answers at once and never stalls, the measured cycles (command
taken through ``done``) equal ``dse.cost.dma``'s formula exactly; so do a load's with a fixed
read latency and no stalls (the formula's burst-by-burst bound, bursts of a beat waiting on
``outstanding``).  With random latency, idles and back-pressure they lie within

    formula(latency) ≤ measured ≤ formula(0) + delay_cycles

where ``delay_cycles`` counts every cycle the memory model held the engine back (a ready
low while the engine was valid, a response beat held back while the engine was ready, and
the latency of every burst).  The lower bound holds because the engines move their beats and
words in a fixed order, one a cycle at most, and the first beat (a load) or the last
response (a store) comes ``latency`` cycles late; the upper bound because each engine is a
chain of waits (a max-plus system), in which each cycle of delay the memory adds postpones
the end by at most one cycle.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from dse.cost.dma import LOAD_OVERHEAD, STORE_OVERHEAD, dma_beats, load_tile_cycles, store_tile_cycles
from rtl.dma import DmaCommand, LoadEngine, StoreEngine
from rtl.isa import BUF_ADDR_BITS, DRAM_ADDR_BITS
from sim.bench.axi_memory import AxiMemory

#: The memory sits high in the 40-bit space, so the address's top bits are exercised.
BASE = (1 << (DRAM_ADDR_BITS - 1)) + 0x7000
MEM_BYTES = 5 * 4096
TIMEOUT = 20_000


def _elem_dtype(e, signed):
    return np.dtype(f"<{'i' if signed else 'u'}{e}")


def _box_index(cmd):
    """Memory offsets of the box's bytes, shape (rows, cols, ch·elem)."""
    e = 1 << cmd["elem"]
    r = np.arange(cmd["rows"])[:, None, None] * cmd["row_pitch"]
    c = np.arange(cmd["cols"])[None, :, None] * cmd["px_pitch"]
    return cmd["dram"] - BASE + r + c + np.arange(cmd["ch"] * e)[None, None, :]


def ref_load(mem, cmd, lanes, lane_bits, signed=True):
    """Buffer words (address → lanes) a load must write."""
    e, ch = 1 << cmd["elem"], cmd["ch"]
    raw = np.frombuffer(bytes(mem), np.uint8)[_box_index(cmd)]
    vals = raw.copy().view(_elem_dtype(e, signed)).astype(np.int64)    # rows, cols, ch
    q = -(-ch // lanes)
    padded = np.zeros(vals.shape[:2] + (q * lanes,), np.int64)
    padded[..., :ch] = vals
    words = (padded.reshape(-1, lanes) & ((1 << lane_bits) - 1)).tolist()
    return {(cmd["addr"] + i) % (1 << BUF_ADDR_BITS): w for i, w in enumerate(words)}


def ref_store(mem, words, cmd, lanes, lane_bits, signed=True):
    """The memory after a store of ``words`` (n × lanes unsigned lane values)."""
    e, ch = 1 << cmd["elem"], cmd["ch"]
    q = -(-ch // lanes)
    lanes_v = np.asarray(words, np.int64).reshape(cmd["rows"], cmd["cols"], q * lanes)[..., :ch]
    if signed:
        lanes_v = np.where(lanes_v >= 1 << (lane_bits - 1), lanes_v - (1 << lane_bits), lanes_v)
    elems = (lanes_v & ((1 << (8 * e)) - 1)).astype(f"<u{e}")
    out = np.frombuffer(bytes(mem), np.uint8).copy()
    out[_box_index(cmd)] = elems.view(np.uint8).reshape(cmd["rows"], cmd["cols"], ch * e)
    return out


def _run(dut, axi, processes, cmds, on_tick, on_after=None, formats=None):
    """Send ``cmds`` one after the other (with ``formats``, a per-command engine's
    ``(fmt_lanes, fmt_signed, fmt_tile)`` of each); return per command (cycles, error, busy
    seen)."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for p in processes:
        sim.add_testbench(p, background=True)
    results, counters = [], []

    async def bench(ctx):
        cycle, i, t_acc, busy = 0, 0, None, 0
        while len(results) < len(cmds):
            if t_acc is None and i < len(cmds):
                ctx.set(dut.cmd.payload, DmaCommand.const(cmds[i]))
                if formats is not None:
                    for port, value in zip((dut.fmt_lanes, dut.fmt_signed, dut.fmt_tile),
                                           formats[i]):
                        ctx.set(port, value)
                ctx.set(dut.cmd.valid, 1)
            _, _, v, r, done, err, b = await ctx.tick().sample(
                dut.cmd.valid, dut.cmd.ready, dut.done, dut.error, dut.busy)
            if v and r:
                t_acc, busy = cycle, 0
                i += 1
                ctx.set(dut.cmd.valid, 0)
            busy += b
            if done:
                assert t_acc is not None, "done without a command"
                results.append((cycle - t_acc + 1, bool(err), busy))
                t_acc = None
            cycle += 1
            assert cycle < TIMEOUT, f"{len(results)} of {len(cmds)} commands in {TIMEOUT} cycles"
        counters.extend([ctx.get(dut.busy_cycles), ctx.get(dut.bus_bytes)])

    sim.add_testbench(bench)
    sim.add_testbench(on_tick, background=True)
    sim.run()
    return results, tuple(counters)


def rtl_load(dut, mem, cmds, *, latency=0, idle=0.0, stall=0.0, seed=0, formats=None):
    """Run load commands (``formats``: as :func:`_run`); return (buffer writes in order,
    per-command results, counters, the memory model)."""
    axi = AxiMemory(dut, mem, dut.bus_bits, base=BASE, read_latency=latency, idle=idle,
                    stall=stall, seed=seed)
    writes = []

    async def monitor(ctx):
        while True:
            _, _, en, addr, word = await ctx.tick().sample(dut.buf_en, dut.buf_addr,
                                                           dut.buf_data)
            if en:
                writes.append((addr, [int(x) for x in word]))

    per_cmd, counters = _run(dut, axi, [axi.read_process], cmds, monitor, formats=formats)
    return writes, per_cmd, counters, axi


def rtl_store(dut, mem, buffer, cmds, *, writable=None, latency=0, idle=0.0, stall=0.0,
              seed=0):
    """Run store commands reading ``buffer`` (address → lanes); return (per-command results,
    counters, the memory model).  ``mem`` is written in place."""
    axi = AxiMemory(dut, mem, dut.bus_bits, base=BASE, write_latency=latency, idle=idle,
                    stall=stall, seed=seed, writable=writable)
    junk = random.Random(seed + 7)
    top = (1 << dut.lane_bits) - 1

    async def read_port(ctx):
        while True:
            _, _, en, addr = await ctx.tick().sample(dut.buf_en, dut.buf_addr)
            if en:
                assert addr in buffer, f"read of buffer word {addr}, outside the tile"
                ctx.set(dut.buf_data, buffer[addr])
            else:                               # the port's data is only valid after en
                ctx.set(dut.buf_data, [junk.randint(0, top) for _ in range(dut.lanes)])

    per_cmd, counters = _run(dut, axi, [axi.write_process], cmds, read_port)
    return per_cmd, counters, axi


def _random_cmd(rng, *, max_elem, lanes, bus_bytes, four_k=False, one_pixel=False):
    """A random box inside the memory: pitches packed, row-padded or channel-sliced."""
    e_code = rng.randrange(max_elem.bit_length())
    e = 1 << e_code
    rows, cols = (1, 1) if one_pixel else (rng.randint(1, 4), rng.randint(2 if four_k else 1, 5))
    ch = rng.randint(1, 2 * lanes + 3)
    px = ch * e
    px_pitch = rng.choice([px, px, px + e * rng.randint(1, 9)])
    row_pitch = rng.choice([cols * px_pitch, cols * px_pitch + rng.randint(1, 3 * bus_bytes)])
    extent = (rows - 1) * row_pitch + (cols - 1) * px_pitch + px
    if four_k:       # the first row straddles the 4 KiB boundary at BASE + 8192
        off = rng.randint(8192 - ((cols - 1) * px_pitch + px) + 1, 8191)
    else:
        off = rng.randint(0, MEM_BYTES - extent)
    return {"dram": BASE + off, "addr": rng.randrange(1 << BUF_ADDR_BITS), "rows": rows,
            "cols": cols, "ch": ch, "elem": e_code, "row_pitch": row_pitch,
            "px_pitch": px_pitch}


def _formula(cost, cmd, dut, latency=0):
    extra = {"outstanding": dut.outstanding} if cost is load_tile_cycles else {}
    return int(cost(cmd["dram"], cmd["rows"], cmd["cols"], cmd["ch"], 1 << cmd["elem"],
                    cmd["row_pitch"], cmd["px_pitch"], dut.bus_bits, dut.lanes,
                    latency=latency, **extra))


def _crosses_4k(cmd):
    """Whether a row of the box has bytes on both sides of a 4 KiB boundary."""
    idx = (_box_index(cmd) + BASE).reshape(cmd["rows"], -1)
    return bool(np.any(idx.min(axis=1) // 4096 != idx.max(axis=1) // 4096))


# (bus_bits, lanes, lane_bits): every bus width; lanes 1, odd and wide; 8-, 12-, 16-, 32-bit
# lanes (elements up to 1, 2, 2 and 4 bytes)
SHAPES = [(64, 3, 8), (128, 8, 8), (256, 5, 12), (512, 4, 16), (128, 1, 32), (64, 16, 8)]


@pytest.mark.parametrize("bus_bits,lanes,lane_bits", SHAPES)
def test_load_boxes_exact_cycles(bus_bits, lanes, lane_bits):
    """Random boxes (unaligned, odd ch, sliced and padded pitches, 4 KiB crossings, a
    one-pixel box) back to back on an ideal memory: words and cycles exact."""
    rng = random.Random(bus_bits * 31 + lanes)
    dut = LoadEngine(bus_bits, lanes, lane_bits, outstanding=3 + lanes % 2)
    cmds = [_random_cmd(rng, max_elem=dut.max_elem_bytes, lanes=lanes, bus_bytes=bus_bits // 8,
                        four_k=i == 1, one_pixel=i == 2) for i in range(4)]
    assert _crosses_4k(cmds[1])
    mem = bytearray(np.random.default_rng(bus_bits).integers(0, 256, MEM_BYTES, np.uint8))
    writes, per_cmd, (busy, nbytes), axi = rtl_load(dut, bytearray(mem), cmds)
    want = {}
    for cmd in cmds:
        want.update(ref_load(mem, cmd, lanes, lane_bits))
    assert len(writes) == sum(len(ref_load(mem, c, lanes, lane_bits)) for c in cmds)
    assert dict(writes) == want
    for cmd, (cycles, err, seen) in zip(cmds, per_cmd):
        assert not err
        assert cycles == _formula(load_tile_cycles, cmd, dut), cmd
    assert busy == sum(s for _, _, s in per_cmd)
    beats = sum(int(dma_beats(c["dram"], c["rows"], c["cols"], c["ch"], 1 << c["elem"],
                              c["row_pitch"], c["px_pitch"], bus_bits)) for c in cmds)
    assert nbytes == beats * bus_bits // 8 == sum(b for _, b in axi.read_bursts) * bus_bits // 8


@pytest.mark.parametrize("bus_bits,lanes,lane_bits", SHAPES)
def test_store_boxes_exact_cycles(bus_bits, lanes, lane_bits):
    rng = random.Random(bus_bits * 17 + lanes)
    dut = StoreEngine(bus_bits, lanes, lane_bits, outstanding=3 + lanes % 2)
    mem = bytearray(np.random.default_rng(bus_bits + 1).integers(0, 256, MEM_BYTES, np.uint8))
    want = np.frombuffer(bytes(mem), np.uint8).copy()
    for i in range(4):
        cmd = _random_cmd(rng, max_elem=dut.max_elem_bytes, lanes=lanes,
                          bus_bytes=bus_bits // 8, four_k=i == 1, one_pixel=i == 2)
        n = cmd["rows"] * cmd["cols"] * -(-cmd["ch"] // lanes)
        words = [[rng.randrange(1 << lane_bits) for _ in range(lanes)] for _ in range(n)]
        buffer = {(cmd["addr"] + j) % (1 << BUF_ADDR_BITS): w for j, w in enumerate(words)}
        want = ref_store(want, words, cmd, lanes, lane_bits)
        assert i != 1 or _crosses_4k(cmd)
        box = set((_box_index(cmd) + BASE).ravel().tolist())
        [(cycles, err, seen)], (busy, nbytes), axi = rtl_store(dut, mem, buffer, [cmd],
                                                               writable=box, seed=i)
        assert not err
        np.testing.assert_array_equal(np.frombuffer(bytes(mem), np.uint8), want)
        assert cycles == _formula(store_tile_cycles, cmd, dut), cmd
        assert busy == seen
        assert nbytes == sum(b for _, b in axi.write_bursts) * bus_bits // 8


def test_per_command_formats_load_like_engines_of_those_formats():
    """One engine of 16 lanes of 12 bits with ``per_command``: each command's words are those
    an engine of its ``fmt_lanes`` (zero lanes above) and extension would write, and its
    cycles that engine's formula; a format of no lanes, or tile mode without ``fmt_tile``,
    is refused at once."""
    rng = random.Random(11)
    dut = LoadEngine(128, 16, 12, outstanding=3, per_command=True)
    formats = [(16, 1, 0), (4, 0, 0), (7, 1, 0), (16, 0, 0), (1, 1, 0)]
    cmds = [_random_cmd(rng, max_elem=1, lanes=n, bus_bytes=16, one_pixel=i == 4)
            for i, (n, _, _) in enumerate(formats)]
    for cmd in cmds:
        cmd["addr"] = rng.randrange(64)
    mem = bytearray(np.random.default_rng(3).integers(0, 256, MEM_BYTES, np.uint8))
    for cmd, fmt in zip(cmds, formats):
        writes, [(cycles, err, _)], _, _ = rtl_load(dut, bytearray(mem), [cmd], formats=[fmt])
        n, signed, _ = fmt
        want = {a: w + [0] * (16 - n) for a, w in ref_load(mem, cmd, n, 12, bool(signed)).items()}
        assert not err
        assert dict(writes) == want and len(writes) == len(want), fmt
        assert cycles == int(load_tile_cycles(cmd["dram"], cmd["rows"], cmd["cols"], cmd["ch"],
                                              1, cmd["row_pitch"], cmd["px_pitch"], 128, n)), fmt
    bad = dict(cmds[0], tile=1, slot=0, rows=1, cols=1)
    writes, per_cmd, _, axi = rtl_load(dut, bytearray(mem), [cmds[0], bad],
                                       formats=[(0, 1, 0), (16, 1, 0)])
    assert [r[:2] for r in per_cmd] == [(1, True), (1, True)]
    assert not writes and not axi.read_bursts


@pytest.mark.parametrize("bus_bits,lanes,box_lanes", [(64, 16, 8), (128, 12, 5)])
def test_store_box_lanes_take_the_first_lanes_of_each_word(bus_bits, lanes, box_lanes):
    """With ``box_lanes`` below ``lanes`` (the datapath's GEMM outputs in words widened for
    Winograd tiles) a pixel's channels are ``box_lanes`` a word: the memory is the
    reference's for words of the first ``box_lanes`` lanes, the other lanes never stored,
    and the cycles are the formula's with ``box_lanes`` lanes."""
    rng = random.Random(bus_bits + box_lanes)
    dut = StoreEngine(bus_bits, lanes, 8, outstanding=3, box_lanes=box_lanes)
    mem = bytearray(np.random.default_rng(box_lanes).integers(0, 256, MEM_BYTES, np.uint8))
    for i in range(3):
        cmd = _random_cmd(rng, max_elem=1, lanes=box_lanes, bus_bytes=bus_bits // 8)
        cmd["ch"] = max(cmd["ch"], box_lanes + 1)       # more than one word a pixel
        cmd["px_pitch"] = max(cmd["px_pitch"], cmd["ch"])
        cmd["row_pitch"] = max(cmd["row_pitch"], cmd["cols"] * cmd["px_pitch"])
        extent = (cmd["rows"] - 1) * cmd["row_pitch"] + cmd["cols"] * cmd["px_pitch"]
        cmd["dram"] = BASE + rng.randint(0, MEM_BYTES - extent)
        cmd["addr"] = rng.randrange(64)
        n = cmd["rows"] * cmd["cols"] * -(-cmd["ch"] // box_lanes)
        words = [[rng.randrange(256) for _ in range(lanes)] for _ in range(n)]
        buffer = {cmd["addr"] + j: w for j, w in enumerate(words)}
        want = ref_store(mem, [w[:box_lanes] for w in words], cmd, box_lanes, 8)
        box = set((_box_index(cmd) + BASE).ravel().tolist())
        [(cycles, err, _)], _, _ = rtl_store(dut, mem, buffer, [cmd], writable=box, seed=i)
        assert not err
        np.testing.assert_array_equal(np.frombuffer(bytes(mem), np.uint8), want)
        assert cycles == int(store_tile_cycles(
            cmd["dram"], cmd["rows"], cmd["cols"], cmd["ch"], 1, cmd["row_pitch"],
            cmd["px_pitch"], bus_bits, box_lanes)), cmd
    with pytest.raises(ValueError, match=r"^box_lanes must be between 1 and lanes = 16, "
                                         r"not 17$"):
        StoreEngine(64, 16, 8, box_lanes=17)


@pytest.mark.parametrize("bus_bits,lanes,lane_bits,outstanding,latency",
                         [(64, 8, 8, 4, 40), (64, 3, 8, 3, 9), (128, 5, 12, 4, 1),
                          (256, 8, 16, 6, 23)])
def test_load_fixed_latency_exact_cycles(bus_bits, lanes, lane_bits, outstanding, latency):
    """A memory that answers every burst ``latency`` cycles late and never stalls: each
    box's cycles equal the formula's, channel slices (a burst per pixel, waiting on the
    ``outstanding`` bursts in flight), 4 KiB crossings and packed boxes alike."""
    rng = random.Random(latency * 7 + lanes)
    dut = LoadEngine(bus_bits, lanes, lane_bits, outstanding=outstanding)
    bus_bytes = bus_bits // 8
    cmds = [_random_cmd(rng, max_elem=dut.max_elem_bytes, lanes=lanes, bus_bytes=bus_bytes,
                        four_k=i == 0) for i in range(5)]
    # a channel slice of a wider tensor, one beat a pixel: the box that waits most
    cmds.append({**_random_cmd(rng, max_elem=1, lanes=lanes, bus_bytes=bus_bytes),
                 "dram": BASE + 5 * bus_bytes, "rows": 3, "cols": 5, "ch": lanes, "elem": 0,
                 "px_pitch": 2 * lanes, "row_pitch": 10 * lanes})
    mem = bytearray(np.random.default_rng(lanes).integers(0, 256, MEM_BYTES, np.uint8))
    writes, per_cmd, _, _ = rtl_load(dut, bytearray(mem), cmds, latency=latency)
    want = {}
    for cmd in cmds:
        want.update(ref_load(mem, cmd, lanes, lane_bits))
    assert dict(writes) == want
    for cmd, (cycles, err, _) in zip(cmds, per_cmd):
        assert not err
        assert cycles == _formula(load_tile_cycles, cmd, dut, latency), cmd
    if latency >= 9:        # (a latency of a cycle is hidden by the bursts in flight)
        sliced = _formula(load_tile_cycles, cmds[-1], dut, latency)
        assert sliced > _formula(load_tile_cycles, cmds[-1], dut) + latency


@pytest.mark.parametrize("bus_bits,lanes,lane_bits,latency", [(64, 5, 8, 3), (256, 8, 16, 7),
                                                              (128, 3, 12, 0)])
def test_load_random_latency_and_backpressure(bus_bits, lanes, lane_bits, latency):
    rng = random.Random(latency + lanes)
    dut = LoadEngine(bus_bits, lanes, lane_bits, outstanding=3)
    cmds = [_random_cmd(rng, max_elem=dut.max_elem_bytes, lanes=lanes, bus_bytes=bus_bits // 8,
                        four_k=i == 0) for i in range(3)]
    mem = bytearray(np.random.default_rng(lanes).integers(0, 256, MEM_BYTES, np.uint8))
    for cmd in cmds:
        writes, [(cycles, err, _)], _, axi = rtl_load(dut, bytearray(mem), [cmd],
                                                      latency=latency, idle=0.3, stall=0.3,
                                                      seed=cmd["ch"])
        assert not err
        assert dict(writes) == ref_load(mem, cmd, lanes, lane_bits)
        low = _formula(load_tile_cycles, cmd, dut, latency)
        assert low <= cycles <= _formula(load_tile_cycles, cmd, dut) + axi.delay_cycles


@pytest.mark.parametrize("bus_bits,lanes,lane_bits,latency", [(64, 5, 8, 3), (512, 8, 16, 6)])
def test_store_random_latency_and_backpressure(bus_bits, lanes, lane_bits, latency):
    rng = random.Random(latency * 5 + lanes)
    dut = StoreEngine(bus_bits, lanes, lane_bits, outstanding=3)
    mem = bytearray(np.random.default_rng(lanes).integers(0, 256, MEM_BYTES, np.uint8))
    for i in range(3):
        cmd = _random_cmd(rng, max_elem=dut.max_elem_bytes, lanes=lanes,
                          bus_bytes=bus_bits // 8, four_k=i == 0)
        n = cmd["rows"] * cmd["cols"] * -(-cmd["ch"] // lanes)
        words = [[rng.randrange(1 << lane_bits) for _ in range(lanes)] for _ in range(n)]
        buffer = {(cmd["addr"] + j) % (1 << BUF_ADDR_BITS): w for j, w in enumerate(words)}
        want = ref_store(mem, words, cmd, lanes, lane_bits)
        box = set((_box_index(cmd) + BASE).ravel().tolist())
        [(cycles, err, _)], _, axi = rtl_store(dut, mem, buffer, [cmd], writable=box,
                                               latency=latency, idle=0.3, stall=0.3, seed=i)
        assert not err
        np.testing.assert_array_equal(np.frombuffer(bytes(mem), np.uint8), want)
        low = _formula(store_tile_cycles, cmd, dut, latency)
        assert low <= cycles <= _formula(store_tile_cycles, cmd, dut) + axi.delay_cycles


#: Packed, beat-aligned boxes in which every beat ends with a word (bus_bits, lanes,
#: lane_bits, ch, elem code).
JOIN_BOXES = [
    (64, 8, 8, 8, 0),        # a word a beat (weights: lanes · elem = B): beats + 1
    (128, 8, 16, 24, 1),     # a word a beat, three words a pixel
    (256, 4, 8, 4, 0),       # eight words a beat: each beat's last word joins its next
]


@pytest.mark.parametrize("bus_bits,lanes,lane_bits,ch,elem", JOIN_BOXES)
def test_load_takes_the_next_beat_with_a_word_that_empties_the_register(
        bus_bits, lanes, lane_bits, ch, elem):
    """A packed, beat-aligned box: every beat ends with a word, so the engine takes each
    next beat in the cycle it hands that word out -- max(beats, words) + 1 cycles after
    the start-up, not beats + words."""
    dut = LoadEngine(bus_bits, lanes, lane_bits, outstanding=4)
    e = 1 << elem
    rows, cols = 3, 5
    cmd = {"dram": BASE + 4096, "addr": 2, "rows": rows, "cols": cols, "ch": ch, "elem": elem,
           "row_pitch": cols * ch * e, "px_pitch": ch * e}
    mem = bytearray(np.random.default_rng(bus_bits).integers(0, 256, MEM_BYTES, np.uint8))
    writes, [(cycles, err, _)], _, _ = rtl_load(dut, bytearray(mem), [cmd])
    assert not err and dict(writes) == ref_load(mem, cmd, lanes, lane_bits)
    beats = -(-rows * cols * ch * e * 8 // bus_bits)
    words = rows * cols * -(-ch // lanes)
    assert cycles == LOAD_OVERHEAD + max(beats, words) + 1
    assert cycles == _formula(load_tile_cycles, cmd, dut)


@pytest.mark.parametrize("bus_bits,lanes,lane_bits,ch,elem", JOIN_BOXES)
def test_store_reads_the_next_word_with_a_beat_that_empties_the_register(
        bus_bits, lanes, lane_bits, ch, elem):
    """The store side of the joins: a beat that takes every byte held reads the next word in
    the same cycle -- max(beats, words) + 1 cycles after the start-up."""
    dut = StoreEngine(bus_bits, lanes, lane_bits, outstanding=4)
    e = 1 << elem
    rows, cols = 3, 5
    cmd = {"dram": BASE + 4096, "addr": 2, "rows": rows, "cols": cols, "ch": ch, "elem": elem,
           "row_pitch": cols * ch * e, "px_pitch": ch * e}
    rng = random.Random(bus_bits)
    n = rows * cols * -(-ch // lanes)
    words = [[rng.randrange(1 << lane_bits) for _ in range(lanes)] for _ in range(n)]
    buffer = {cmd["addr"] + j: w for j, w in enumerate(words)}
    mem = bytearray(np.random.default_rng(bus_bits).integers(0, 256, MEM_BYTES, np.uint8))
    want = ref_store(mem, words, cmd, lanes, lane_bits)
    [(cycles, err, _)], _, _ = rtl_store(dut, mem, buffer, [cmd])
    assert not err
    np.testing.assert_array_equal(np.frombuffer(bytes(mem), np.uint8), want)
    beats = -(-rows * cols * ch * e * 8 // bus_bits)
    assert cycles == STORE_OVERHEAD + max(beats, n) + 1
    assert cycles == _formula(store_tile_cycles, cmd, dut)


def test_long_runs_split_at_256_beats_and_4k():
    """A packed 3-row box of 2.9 KiB per row on a 64-bit bus: one run of 1100 beats, cut at
    every 256 beats and 4 KiB boundary, with a 4-lane buffer of 16-bit lanes from 2-byte
    elements."""
    dut = LoadEngine(64, 4, 16, outstanding=4)
    cmd = {"dram": BASE + 4096 - 6, "addr": 5, "rows": 3, "cols": 367, "ch": 4, "elem": 1,
           "row_pitch": 367 * 8, "px_pitch": 8}
    mem = bytearray(np.random.default_rng(3).integers(0, 256, MEM_BYTES, np.uint8))
    writes, [(cycles, err, _)], _, axi = rtl_load(dut, bytearray(mem), [cmd])
    assert not err and dict(writes) == ref_load(mem, cmd, 4, 16)
    assert cycles == _formula(load_tile_cycles, cmd, dut)
    assert max(b for _, b in axi.read_bursts) == 256
    starts = [a for a, _ in axi.read_bursts]
    assert BASE + 8192 in starts and BASE + 4096 in starts      # cut at the 4 KiB boundaries


def test_zero_extension():
    """sign_extend=False: 1-byte elements into 12-bit lanes zero-extended on a load; 12-bit
    lanes into 2-byte elements zero-extended on a store."""
    rng = random.Random(5)
    mem = bytearray(np.random.default_rng(5).integers(0, 256, MEM_BYTES, np.uint8))
    cmd = {"dram": BASE + 13, "addr": 40, "rows": 2, "cols": 3, "ch": 7, "elem": 0,
           "row_pitch": 50, "px_pitch": 9}
    dut = LoadEngine(128, 4, 12, sign_extend=False)
    writes, [(cycles, err, _)], _, _ = rtl_load(dut, bytearray(mem), [cmd])
    assert not err and dict(writes) == ref_load(mem, cmd, 4, 12, signed=False)
    assert dict(writes) != ref_load(mem, cmd, 4, 12, signed=True)
    cmd = dict(cmd, elem=1, row_pitch=100, px_pitch=16)
    words = [[rng.randrange(1 << 12) for _ in range(4)] for _ in range(12)]
    buffer = {40 + j: w for j, w in enumerate(words)}
    dut = StoreEngine(128, 4, 12, sign_extend=False)
    [(cycles, err, _)], _, _ = rtl_store(dut, mem, buffer, [cmd])
    want = ref_store(np.zeros(MEM_BYTES, np.uint8), words, cmd, 4, 12, signed=False)
    idx = _box_index(cmd)
    assert not err
    np.testing.assert_array_equal(np.frombuffer(bytes(mem), np.uint8)[idx], want[idx])
    assert cycles == _formula(store_tile_cycles, cmd, dut)


def test_refused_commands_end_at_once():
    """A reserved elem code, or an element wider than the lane, moves nothing."""
    dut = LoadEngine(128, 4, 8)
    cmd = {"dram": BASE, "addr": 0, "rows": 1, "cols": 1, "ch": 4, "elem": 1, "row_pitch": 8,
           "px_pitch": 8}
    bad_code = dict(cmd, elem=3)
    good = dict(cmd, elem=0, px_pitch=4, row_pitch=4)
    mem = bytearray(MEM_BYTES)
    writes, per_cmd, _, axi = rtl_load(dut, mem, [cmd, bad_code, good])
    assert [(c, e) for c, e, _ in per_cmd[:2]] == [(1, True), (1, True)]
    assert per_cmd[2][1] is False and len(writes) == 1 and len(axi.read_bursts) == 1


def test_bad_parameters():
    with pytest.raises(ValueError, match=r"^bus_bits must be one of 64, 128, 256, 512, not 32$"):
        LoadEngine(bus_bits=32)
    with pytest.raises(TypeError, match=r"^lanes must be an integer, not 2\.5$"):
        StoreEngine(lanes=2.5)
    with pytest.raises(ValueError, match=r"^outstanding must be between 3 and 16, not 2$"):
        LoadEngine(outstanding=2)
    with pytest.raises(ValueError, match=r"^lane_bits must be between 1 and 64, not 0$"):
        StoreEngine(lane_bits=0)
    with pytest.raises(TypeError, match=r"^sign_extend must be a bool, not 1$"):
        LoadEngine(sign_extend=1)


@pytest.mark.parametrize("engine", [LoadEngine, StoreEngine])
def test_verilog_conversion(engine):
    """Amaranth's own conversion (with its combinational-loop check) of a small engine."""
    text = verilog.convert(engine(bus_bits=64, lanes=3, lane_bits=12), name="dma_top")
    assert "module dma_top" in text
    prefix = "m_axi_ar" if engine is LoadEngine else "m_axi_aw"
    for port in ("addr", "len", "size", "burst", "valid", "ready"):
        assert f" {prefix}{port};" in text or f" {prefix}{port} " in text


@pytest.mark.parametrize("engine", [LoadEngine, StoreEngine])
@pytest.mark.parametrize("args", [(128, 8), (64, 3, 16)])
def test_engines_lint_clean(engine, args, tmp_path):
    from sim.runner import emit_verilog, lint_verilog

    top = engine.__name__.lower()
    violations, _ = lint_verilog(emit_verilog(engine(*args), top), top, work_dir=tmp_path)
    assert not violations, "\n".join(f"line {w.line}: %{w.rule}: {w.message}"
                                     for w in violations[:20])
