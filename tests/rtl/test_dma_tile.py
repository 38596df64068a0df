"""Tile mode of rtl.dma's load and store engines (``load.tile`` / ``store.tile`` with
``tile``): Winograd input windows into tile-buffer element slots, and output tiles out of
the output words, in the Amaranth simulator against ``sim.bench.axi_memory.AxiMemory``
(``test_dma``'s harness).

References, numpy from the command and the DRAM bytes alone (docs/isa.md, ``tile``):

- load: pixel (r, c) of the box, channel word j (``lanes`` channels, the last zero-filled)
  is written to buffer word ``addr`` + j, element slot ``slot`` + r·t + c; the window's
  other slots of those words are written zero (with the first pixel's writes), so the
  words end up holding the whole window;
- store: the box covers rows of a row of m × m tiles, ⌈ch / L⌉ words a tile (L =
  ``tile_lanes``) from ``addr``; pixel (r, c) lies x = (``slot`` mod m) + c columns on, in
  tile ⌊x / m⌋ at slot (⌊slot / m⌋ + r)·m + x mod m, and its channel j·L + i is lane
  i·m² + slot of word ``addr`` + ⌊x / m⌋·⌈ch / L⌉ + j; every DRAM byte outside the box stays
  as it was.

Cycles: tile mode moves the same beats and words as the box outside it, so with a memory
that never stalls the measured cycles equal ``dse.cost.dma``'s formula exactly (``lanes``
for a load, ``tile_lanes`` for a store), and under random latency and back-pressure they lie
within ``test_dma``'s bounds.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from dse.cost.dma import load_tile_cycles, store_tile_cycles
from rtl.dma import LoadEngine, StoreEngine
from sim.bench.axi_memory import AxiMemory

from test_dma import BASE, MEM_BYTES, _box_index, _elem_dtype, _run, rtl_load, rtl_store


def _tile_cmd(rng, side, lanes, e_code=0, packed=False):
    """A random tile-mode box: a sub-rectangle of a side × side window of a tensor whose
    pixels hold more channels than the box (or exactly its channels: ``packed``)."""
    e = 1 << e_code
    rows, cols = rng.randint(1, side), rng.randint(1, side)
    r0, c0 = rng.randint(0, side - rows), rng.randint(0, side - cols)
    ch = rng.randint(1, 2 * lanes + 3)
    px_pitch = ch * e if packed else ch * e + e * rng.randint(1, 5)
    row_pitch = rng.randint(side, side + 3) * px_pitch
    extent = (rows - 1) * row_pitch + (cols - 1) * px_pitch + ch * e
    return {"dram": BASE + rng.randint(0, MEM_BYTES - extent), "addr": rng.randrange(64),
            "rows": rows, "cols": cols, "ch": ch, "elem": e_code, "row_pitch": row_pitch,
            "px_pitch": px_pitch, "tile": 1, "slot": r0 * side + c0}


def ref_tile_load(mem, cmd, lanes, lane_bits, side):
    """(word address, slot) → the lanes the buffer holds after the load, every slot of the
    window of every word it writes."""
    e, ch = 1 << cmd["elem"], cmd["ch"]
    raw = np.frombuffer(bytes(mem), np.uint8)[_box_index(cmd)]
    vals = raw.copy().view(_elem_dtype(e, True)).astype(np.int64)          # rows, cols, ch
    q = -(-ch // lanes)
    padded = np.zeros(vals.shape[:2] + (q * lanes,), np.int64)
    padded[..., :ch] = vals
    padded &= (1 << lane_bits) - 1
    out = {(cmd["addr"] + j, e): [0] * lanes for j in range(q) for e in range(side * side)}
    for r in range(cmd["rows"]):
        for c in range(cmd["cols"]):
            for j in range(q):
                out[(cmd["addr"] + j, cmd["slot"] + r * side + c)] = \
                    padded[r, c, j * lanes:(j + 1) * lanes].tolist()
    return out


def apply_writes(writes, side, lanes):
    """The buffer (address, slot) → lanes after tile-mode writes ((addr, slot, zero mask),
    lanes), over garbage."""
    buf = {}
    for (addr, slot, zero), word in writes:
        for e in range(side * side):
            if zero >> e & 1:
                buf[(addr, e)] = [0] * lanes
        buf[(addr, slot)] = word
    return buf


def rtl_tile_load(dut, mem, cmds, **kw):
    """Run load commands; the writes as ((addr, slot, tile flag), lanes) in order."""
    axi = AxiMemory(dut, mem, dut.bus_bits, base=BASE, **kw)
    writes = []

    async def monitor(ctx):
        while True:
            _, _, en, addr, slot, tile, zero, word = await ctx.tick().sample(
                dut.buf_en, dut.buf_addr, dut.buf_slot, dut.buf_tile, dut.buf_zero,
                dut.buf_data)
            if en:
                writes.append(((addr, slot, tile, zero), [int(x) for x in word]))

    per_cmd, _ = _run(dut, axi, [axi.read_process], cmds, monitor)
    return writes, per_cmd, axi


def _formula(cost, cmd, bus_bits, lanes, latency=0):
    return int(cost(cmd["dram"], cmd["rows"], cmd["cols"], cmd["ch"], 1 << cmd["elem"],
                    cmd["row_pitch"], cmd["px_pitch"], bus_bits, lanes, latency=latency))


@pytest.mark.parametrize("bus_bits,lanes,lane_bits,side", [(128, 4, 8, 4), (64, 3, 16, 6)])
def test_tile_load_slots_and_cycles(bus_bits, lanes, lane_bits, side):
    """Random window pieces (packed and channel-sliced pixels, 1- and 2-byte elements)
    back to back with a plain box between them: every write at its word and slot, cycles
    exactly the formula's."""
    rng = random.Random(bus_bits + side)
    dut = LoadEngine(bus_bits, lanes, lane_bits, outstanding=3, tile_side=side)
    codes = [0, 1] if lane_bits >= 16 else [0]
    cmds = [_tile_cmd(rng, side, lanes, rng.choice(codes), packed=i % 2 == 0)
            for i in range(4)]
    plain = dict(_tile_cmd(rng, side, lanes), tile=0, slot=0)
    cmds.insert(2, plain)
    mem = bytearray(np.random.default_rng(side).integers(0, 256, MEM_BYTES, np.uint8))
    writes, per_cmd, _ = rtl_tile_load(dut, bytearray(mem), cmds)
    at = 0
    for cmd, (cycles, err, _) in zip(cmds, per_cmd):
        assert not err
        assert cycles == _formula(load_tile_cycles, cmd, bus_bits, lanes), cmd
        q = -(-cmd["ch"] // lanes)
        n = cmd["rows"] * cmd["cols"] * q
        mine, at = writes[at:at + n], at + n
        if cmd["tile"]:
            assert all(t for (_, _, t, _), _ in mine)
            got = apply_writes([((a, s, z), w) for (a, s, _, z), w in mine], side, lanes)
            assert got == ref_tile_load(mem, cmd, lanes, lane_bits, side)
            assert len({(a, s) for (a, s, _, _), _ in mine}) == n
        else:           # outside tile mode: consecutive words, the flag low
            assert [a for (a, _, t, z), _ in mine if not t and not z] == \
                list(range(cmd["addr"], cmd["addr"] + n))
    assert at == len(writes)


def _span_cmd(rng, side, lanes, e_code=0):
    """A random span: rows of a row of every other window (``wpitch``), the first window
    entered at a random slot column, over one to three windows and a part of the next."""
    cmd = _tile_cmd(rng, side, lanes, e_code, packed=rng.random() < 0.5)
    e, period = 1 << e_code, 2 * (side - 2)
    c0 = cmd["slot"] % side
    cmd["cols"] = rng.randint(1, 3 * period + side - c0)
    cmd["row_pitch"] = (cmd["cols"] + rng.randint(0, 3)) * cmd["px_pitch"]
    extent = (cmd["rows"] - 1) * cmd["row_pitch"] + (cmd["cols"] - 1) * cmd["px_pitch"] \
        + cmd["ch"] * e
    cmd["dram"] = BASE + rng.randint(0, MEM_BYTES - extent)
    cmd["wpitch"] = -(-cmd["ch"] // lanes) + rng.randint(0, 3)
    return cmd


def ref_span_load(mem, cmd, lanes, lane_bits, side):
    """(word address, slot) → lanes after a span (docs/isa.md, ``wpitch``): window a's
    words from ``addr`` + a·``wpitch``, each window with a pixel in the box filled whole
    (the box's pixels at their slots, the others zero); the pixels between windows are
    nowhere."""
    period = 2 * (side - 2)
    r0, c0 = divmod(cmd["slot"], side)
    windows = (c0 + cmd["cols"] - 1) // period + 1
    one = dict(cmd, wpitch=0)
    out = {}
    for a in range(windows):
        first = max(0, a * period - c0)                 # the window's first box column
        last = min(cmd["cols"], a * period + side - c0)
        piece = dict(one, cols=last - first,
                     dram=cmd["dram"] + first * cmd["px_pitch"],
                     addr=cmd["addr"] + a * cmd["wpitch"],
                     slot=r0 * side + (c0 if a == 0 else 0))
        out.update(ref_tile_load(mem, piece, lanes, lane_bits, side))
    return out


@pytest.mark.parametrize("bus_bits,lanes,lane_bits,side", [(128, 4, 8, 4), (64, 3, 16, 6)])
def test_tile_load_spans_fill_every_other_window(bus_bits, lanes, lane_bits, side):
    """Random spans (F(2×2)'s 4-wide windows 4 apart, F(4×4)'s 6-wide windows 8 apart,
    the columns between them read and dropped) back to back with a one-window box: every
    window the reference's, nothing else written, cycles exactly the formula's (the box's
    beats and words, dropped pixels included)."""
    rng = random.Random(3 * bus_bits + side)
    dut = LoadEngine(bus_bits, lanes, lane_bits, outstanding=3, tile_side=side)
    codes = [0, 1] if lane_bits >= 16 else [0]
    cmds = [_span_cmd(rng, side, lanes, rng.choice(codes)) for _ in range(5)]
    cmds.insert(2, _tile_cmd(rng, side, lanes))
    mem = bytearray(np.random.default_rng(side + 1).integers(0, 256, MEM_BYTES, np.uint8))
    writes, per_cmd, _ = rtl_tile_load(dut, bytearray(mem), cmds)
    period = 2 * (side - 2)
    at = 0
    for cmd, (cycles, err, _) in zip(cmds, per_cmd):
        assert not err, cmd
        assert cycles == _formula(load_tile_cycles, cmd, bus_bits, lanes), cmd
        q = -(-cmd["ch"] // lanes)
        c0 = cmd["slot"] % side
        kept = sum((c0 + c) % period < side for c in range(cmd["cols"])) \
            if cmd.get("wpitch") else cmd["cols"]
        n = cmd["rows"] * kept * q
        mine, at = writes[at:at + n], at + n
        got = apply_writes([((a, s, z), w) for (a, s, _, z), w in mine], side, lanes)
        want = (ref_span_load if cmd.get("wpitch") else ref_tile_load)(mem, cmd, lanes,
                                                                        lane_bits, side)
        assert got == want, cmd
    assert at == len(writes)


def test_tile_load_under_backpressure():
    rng = random.Random(9)
    dut = LoadEngine(128, 4, 8, outstanding=3, tile_side=4)
    mem = bytearray(np.random.default_rng(9).integers(0, 256, MEM_BYTES, np.uint8))
    for i in range(3):
        cmd = _tile_cmd(rng, 4, 4, packed=i == 0)
        writes, [(cycles, err, _)], axi = rtl_tile_load(dut, bytearray(mem), [cmd],
                                                        read_latency=4, idle=0.3, stall=0.3,
                                                        seed=i)
        assert not err
        got = apply_writes([((a, s, z), w) for (a, s, _, z), w in writes], 4, 4)
        assert got == ref_tile_load(mem, cmd, 4, 8, 4)
        assert (_formula(load_tile_cycles, cmd, 128, 4, 4) <= cycles
                <= _formula(load_tile_cycles, cmd, 128, 4) + axi.delay_cycles)


def _tile_store_case(rng, side, tl, lanes, lane_bits):
    """A tile-mode store box over up to three tiles of a tile row, and its buffer words."""
    cmd = _tile_cmd(rng, side, tl)
    c0 = cmd["slot"] % side
    cmd["cols"] = rng.randint(1, 3 * side - c0)
    cmd["row_pitch"] = max(cmd["row_pitch"], (cmd["cols"] + 1) * cmd["px_pitch"])
    extent = (cmd["rows"] - 1) * cmd["row_pitch"] + cmd["cols"] * cmd["px_pitch"]
    cmd["dram"] = BASE + rng.randint(0, MEM_BYTES - extent)
    q = -(-cmd["ch"] // tl)
    tiles = (c0 + cmd["cols"] - 1) // side + 1
    words = {cmd["addr"] + j: [rng.randrange(1 << lane_bits) for _ in range(lanes)]
             for j in range(q * tiles)}
    return cmd, words


def ref_tile_store(mem, words, cmd, tl, lane_bits, side):
    """The memory after a tile-mode store of ``words`` (address → lanes)."""
    e, ch = 1 << cmd["elem"], cmd["ch"]
    s2 = side * side
    q = -(-ch // tl)
    vals = np.zeros((cmd["rows"], cmd["cols"], ch), np.int64)
    for r in range(cmd["rows"]):
        for c in range(cmd["cols"]):
            x = cmd["slot"] % side + c
            slot = (cmd["slot"] // side + r) * side + x % side
            base = cmd["addr"] + (x // side) * q
            for k in range(ch):
                vals[r, c, k] = words[base + k // tl][(k % tl) * s2 + slot]
    vals = np.where(vals >= 1 << (lane_bits - 1), vals - (1 << lane_bits), vals)
    elems = (vals & ((1 << (8 * e)) - 1)).astype(f"<u{e}")
    out = np.frombuffer(bytes(mem), np.uint8).copy()
    out[_box_index(cmd)] = elems.view(np.uint8).reshape(cmd["rows"], cmd["cols"], ch * e)
    return out


@pytest.mark.parametrize("bus_bits,lanes,tl,side,latency", [(128, 8, 2, 2, 0),
                                                            (64, 16, 1, 4, 0),
                                                            (128, 16, 4, 2, 5)])
def test_tile_store_slots_and_cycles(bus_bits, lanes, tl, side, latency):
    """Random output-tile pieces: the memory is the reference's, bytes outside the box
    untouched; cycles exactly the formula's with ``tile_lanes`` lanes on an ideal memory,
    within the bounds under latency and back-pressure."""
    rng = random.Random(lanes * 7 + tl + latency)
    dut = StoreEngine(bus_bits, lanes, 8, outstanding=3, tile_side=side, tile_lanes=tl)
    mem = bytearray(np.random.default_rng(tl).integers(0, 256, MEM_BYTES, np.uint8))
    for i in range(3):
        cmd, words = _tile_store_case(rng, side, tl, lanes, 8)
        want = ref_tile_store(mem, words, cmd, tl, 8, side)
        box = set((_box_index(cmd) + BASE).ravel().tolist())
        kw = dict(latency=latency, idle=0.3, stall=0.3) if latency else {}
        [(cycles, err, _)], _, axi = rtl_store(dut, mem, words, [cmd], writable=box, seed=i,
                                               **kw)
        assert not err
        np.testing.assert_array_equal(np.frombuffer(bytes(mem), np.uint8), want)
        if latency:
            assert (_formula(store_tile_cycles, cmd, bus_bits, tl, latency) <= cycles
                    <= _formula(store_tile_cycles, cmd, bus_bits, tl) + axi.delay_cycles)
        else:
            assert cycles == _formula(store_tile_cycles, cmd, bus_bits, tl), cmd


def test_tile_mode_refusals():
    """Tile mode on an engine without it, or a box larger than the tile, moves nothing."""
    cmd = {"dram": BASE, "addr": 0, "rows": 2, "cols": 2, "ch": 4, "elem": 0, "row_pitch": 64,
           "px_pitch": 4, "tile": 1, "slot": 0}
    mem = bytearray(MEM_BYTES)
    for bad in (dict(cmd, cols=5), dict(cmd, slot=3), dict(cmd, slot=16), dict(cmd, slot=12)):
        writes, per_cmd, axi = rtl_tile_load(LoadEngine(128, 4, 8, tile_side=4), mem, [bad])
        assert per_cmd[0][:2] == (1, True) and not writes and not axi.read_bursts, bad
    writes, per_cmd, _, axi = rtl_load(LoadEngine(128, 4, 8), mem, [cmd])
    assert per_cmd[0][:2] == (1, True) and not writes and not axi.read_bursts
    # a span on 3-wide tiles (no windows 2m apart), or a window pitch outside tile mode
    for engine, bad in ((LoadEngine(128, 4, 8, tile_side=3), dict(cmd, wpitch=2)),
                        (LoadEngine(128, 4, 8, tile_side=4), dict(cmd, tile=0, wpitch=2))):
        writes, per_cmd, axi = rtl_tile_load(engine, mem, [bad])
        assert per_cmd[0][:2] == (1, True) and not writes and not axi.read_bursts, bad
    writes, per_cmd, _, axi = rtl_load(LoadEngine(128, 4, 8), mem, [dict(cmd, tile=0,
                                                                          wpitch=2)])
    assert per_cmd[0][:2] == (1, True) and not writes and not axi.read_bursts
    with pytest.raises(ValueError, match=r"^tile_lanes must be at most lanes / tile_side² = "
                                         r"2, not 3$"):
        StoreEngine(128, 8, 8, tile_side=2, tile_lanes=3)
    with pytest.raises(ValueError, match=r"^tile_lanes must be positive exactly when "
                                         r"tile_side is \(store engine\), not 0 with "
                                         r"tile_side 2$"):
        StoreEngine(128, 8, 8, tile_side=2)
    with pytest.raises(ValueError, match=r"^tile_side must be between 0 and 8, not 9$"):
        LoadEngine(128, 4, 8, tile_side=9)


@pytest.mark.parametrize("engine,kw", [(LoadEngine, {"tile_side": 6}),
                                       (StoreEngine, {"tile_side": 2, "tile_lanes": 2})])
def test_tile_engines_lint_clean(engine, kw, tmp_path):
    from sim.runner import emit_verilog, lint_verilog

    top = engine.__name__.lower()
    violations, _ = lint_verilog(emit_verilog(engine(128, 8, 8, **kw), top), top,
                                 work_dir=tmp_path)
    assert not violations, "\n".join(f"line {w.line}: %{w.rule}: {w.message}"
                                     for w in violations[:20])
