"""rtl.axi_arbiter's shared read channel in the Amaranth simulator: the instruction fetch and
one or two load engines behind one ``AxiReadArbiter`` on one ``AxiMemory``.

The fetch unit reads a program of random words while each load engine copies random boxes
of bytes into its buffer, with random memory latency, idles and AR stalls and a consumer of
instruction words that holds ``ready`` low at random.  The references do not come from the
RTL:

- the fetch unit delivers the image's words in order (little-endian 128-bit words), and
  each load engine writes the words of its boxes (1-byte elements in 8-bit lanes, pixels at
  ``dram + r·row_pitch + c·px_pitch``, ⌈ch / lanes⌉ words a pixel, the last zero-filled);
- the memory sees the masters' requests in the order the arbiter granted them, unchanged;
  every R beat goes to exactly one master, the one whose burst is at the head of the
  memory's order, and a burst's beats all go to that master (bursts are never split);
- round-robin: while a master's ``arvalid`` is high, at most ``masters`` − 1 requests of
  other masters are granted before its own.
"""

from __future__ import annotations

import itertools
import random
from collections import deque

import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.sim import Simulator

from rtl.axi_arbiter import AR_FIELDS, AxiReadArbiter
from rtl.dma import DmaCommand, LoadEngine
from rtl.fetch import InstructionFetch
from rtl.isa import DRAM_ADDR_BITS, INSTRUCTION_BYTES
from sim.bench.axi_memory import AXI_BOUNDARY, AxiMemory

MEM_BASE = (1 << (DRAM_ADDR_BITS - 1)) + 0x5000
MEM_BYTES = 6 * AXI_BOUNDARY
TIMEOUT = 60_000
W = INSTRUCTION_BYTES
LANES = 8


class Shared(Elaboratable):
    """An instruction fetch (master 0) and ``loads`` load engines (masters 1 …) behind one
    arbiter, whose ``m_axi_*`` ports face the memory."""

    def __init__(self, bus_bits, loads, prefetch, outstanding):
        self.fetch = InstructionFetch(bus_bits, prefetch)
        self.loads = [LoadEngine(bus_bits, LANES, 8, outstanding=3 + i) for i in range(loads)]
        self.arb = AxiReadArbiter(1 + loads, bus_bits, outstanding=outstanding)

    def elaborate(self, platform):
        m = Module()
        m.submodules.fetch = self.fetch
        m.submodules.arb = self.arb
        self.arb.attach(m, 0, self.fetch)
        for i, load in enumerate(self.loads):
            m.submodules[f"load{i}"] = load
            self.arb.attach(m, 1 + i, load)
        return m


def ref_load(mem, cmd):
    """{buffer address: lanes} a load of ``cmd`` (1-byte elements, 8-bit lanes) writes."""
    out, a = {}, cmd["addr"]
    for r in range(cmd["rows"]):
        for c in range(cmd["cols"]):
            at = cmd["dram"] - MEM_BASE + r * cmd["row_pitch"] + c * cmd["px_pitch"]
            px = list(mem[at:at + cmd["ch"]])
            px += [0] * (-len(px) % LANES)
            for j in range(0, len(px), LANES):
                out[a] = px[j:j + LANES]
                a += 1
    return out


def random_box(rng, lo, hi, addr):
    """A box of 1-byte elements inside [lo, hi): packed, row-padded or pixel-padded."""
    ch, rows, cols = rng.randrange(1, 20), rng.randrange(1, 5), rng.randrange(1, 7)
    px_pitch = ch + rng.choice([0, 0, 3])
    row_pitch = cols * px_pitch + rng.choice([0, 5])
    span = (rows - 1) * row_pitch + (cols - 1) * px_pitch + ch
    return {"dram": rng.randrange(lo, hi - span), "addr": addr, "rows": rows, "cols": cols,
            "ch": ch, "elem": 0, "row_pitch": row_pitch, "px_pitch": px_pitch}


def run_shared(bus_bits, loads, *, seed, n_words=200, boxes=6, prefetch=8, outstanding=8,
               latency=3, idle=0.3, stall=0.3, not_ready=0.5):
    rng = random.Random(seed)
    top = Shared(bus_bits, loads, prefetch, outstanding)
    arb, fetch = top.arb, top.fetch
    n_masters = 1 + loads
    mem = bytearray(rng.getrandbits(8) for _ in range(MEM_BYTES))
    # the program: just below the second 4 KiB boundary, so it crosses it
    base = MEM_BASE + 2 * AXI_BOUNDARY - W * rng.randrange(1, 30)
    words = [rng.getrandbits(128) for _ in range(n_words)]
    mem[base - MEM_BASE:base - MEM_BASE + W * n_words] = b"".join(
        w.to_bytes(W, "little") for w in words)
    assert base + W * (n_words + prefetch) <= MEM_BASE + 4 * AXI_BOUNDARY
    # the boxes: in the last two pages (and across the boundary between them)
    cmds = [[random_box(rng, MEM_BASE + 4 * AXI_BOUNDARY, MEM_BASE + MEM_BYTES, 64 * k)
             for k in range(boxes)] for _ in range(loads)]
    axi = AxiMemory(arb, mem, bus_bits, base=MEM_BASE, read_latency=latency, idle=idle,
                    stall=stall, seed=seed)
    got, writes = [], [{} for _ in range(loads)]
    errors, finished = [], {"fetch": False, "loads": 0}
    log = {"grants": [], "beats": [], "max_others": [0] * n_masters, "max_wait": 0,
           "split": 0, "multi": 0}

    async def monitor(ctx):
        """AR grants, R routing and the round-robin bound, per cycle."""
        ports = []
        for i in range(n_masters):
            ports += [arb.port(i, n) for n in ("arvalid", "arready", "rvalid", "rready",
                                                *AR_FIELDS)]
        others = [0] * n_masters
        waiting = [0] * n_masters
        route = deque()                     # owners of the bursts in the memory's order
        beats_of_burst = 0
        while True:
            _, _, mrv, mrr, mrl, *vals = await ctx.tick().sample(
                arb.m_axi_rvalid, arb.m_axi_rready, arb.m_axi_rlast, *ports)
            per = [vals[k * 8:(k + 1) * 8] for k in range(n_masters)]
            granted = [i for i, p in enumerate(per) if p[0] and p[1]]
            if len(granted) > 1:
                log["multi"] += 1
            for i in granted:
                p = per[i]
                log["grants"].append((i, p[4], p[5] + 1))
                route.append(i)
                log["max_others"][i] = max(log["max_others"][i], others[i])
                log["max_wait"] = max(log["max_wait"], waiting[i])
                others[i], waiting[i] = 0, 0
            for i, p in enumerate(per):
                if p[0] and not p[1]:
                    others[i] += len(granted)
                    waiting[i] += 1
            took = [i for i, p in enumerate(per) if p[2] and p[3]]
            offered = [i for i, p in enumerate(per) if p[2]]
            if mrv and mrr:
                # exactly the owner at the head of the memory's order takes the beat
                if not route or took != [route[0]] or offered != [route[0]]:
                    log["split"] += 1
                beats_of_burst += 1
                if mrl and route:
                    log["beats"].append((route.popleft(), beats_of_burst))
                    beats_of_burst = 0
            elif took or (offered and not mrv):
                log["split"] += 1

    async def consumer(ctx):
        ctx.set(fetch.base, base)
        ctx.set(fetch.start, 1)
        await ctx.tick()
        ctx.set(fetch.start, 0)
        while len(got) < n_words:
            ctx.set(fetch.o_stream.ready, int(rng.random() >= not_ready))
            _, _, v, r, p = await ctx.tick().sample(fetch.o_stream.valid, fetch.o_stream.ready,
                                                    fetch.o_stream.payload)
            if v and r:
                got.append(p)
        ctx.set(fetch.o_stream.ready, 0)
        ctx.set(fetch.stop, 1)
        await ctx.tick()
        ctx.set(fetch.stop, 0)
        while ctx.get(fetch.busy):
            await ctx.tick()
        finished["fetch"] = True

    def driver(k):
        load = top.loads[k]

        async def drive(ctx):
            for cmd in cmds[k]:
                ctx.set(load.cmd.payload, DmaCommand.const(cmd))
                ctx.set(load.cmd.valid, 1)
                await ctx.tick().until(load.cmd.ready)
                ctx.set(load.cmd.valid, 0)
                err, = await ctx.tick().sample(load.error).until(load.done)
                errors.append(err)
            finished["loads"] += 1
        return drive

    def buffer(k):
        load = top.loads[k]

        async def watch(ctx):
            while True:
                _, _, en, addr, data = await ctx.tick().sample(load.buf_en, load.buf_addr,
                                                               load.buf_data)
                if en:
                    writes[k][addr] = [int(x) for x in data]
        return watch

    async def bench(ctx):
        cycles = 0
        while not (finished["fetch"] and finished["loads"] == loads):
            await ctx.tick()
            cycles += 1
            assert cycles < TIMEOUT, f"{len(got)} words, {finished} in {TIMEOUT} cycles"
        for _ in range(10):
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(axi.read_process, background=True)
    sim.add_testbench(monitor, background=True)
    for k in range(loads):
        sim.add_testbench(buffer(k), background=True)
        sim.add_testbench(driver(k))
    sim.add_testbench(consumer)
    sim.add_testbench(bench)
    sim.run()
    return {"top": top, "words": words, "got": got, "cmds": cmds, "writes": writes,
            "errors": errors, "mem": mem, "axi": axi, "log": log, "masters": n_masters}


@pytest.mark.parametrize("bus_bits,loads,seed", [(128, 1, 1), (64, 1, 2), (256, 2, 3),
                                                 (512, 1, 4), (128, 2, 5)])
def test_fetch_and_loads_share_one_channel(bus_bits, loads, seed):
    r = run_shared(bus_bits, loads, seed=seed)
    log, axi = r["log"], r["axi"]
    # contents
    assert r["got"] == r["words"]
    assert r["errors"] and not any(r["errors"])
    for k in range(loads):
        want = {}
        for cmd in r["cmds"][k]:
            want.update(ref_load(r["mem"], cmd))
        assert r["writes"][k] == want
    # the memory saw the granted requests, in grant order, each whole
    assert [(a, b) for _, a, b in log["grants"]] == axi.read_bursts
    assert log["multi"] == 0 and log["split"] == 0
    assert [(i, b) for i, _, b in log["grants"]] == log["beats"]
    # every master used the channel, and the round-robin bound held
    assert {i for i, _, _ in log["grants"]} == set(range(r["masters"]))
    assert max(log["max_others"]) <= r["masters"] - 1
    # the masters' bursts interleave: consecutive grants go to different masters sometimes
    owners = [i for i, _, _ in log["grants"]]
    assert any(a != b for a, b in itertools.pairwise(owners))


def test_round_robin_bound_is_reached():
    """Two load engines with back-to-back per-pixel bursts and the fetch unit contend on
    AR (a memory that stalls AR often): some request waits for exactly ``masters`` − 1
    others, never more."""
    r = run_shared(128, 2, seed=11, stall=0.6, idle=0.1, latency=0, not_ready=0.2,
                   boxes=8)
    assert max(r["log"]["max_others"]) == r["masters"] - 1
    assert r["got"] == r["words"] and not any(r["errors"])


def test_bad_parameters():
    with pytest.raises(ValueError, match=r"^masters must be at least 1, not 0$"):
        AxiReadArbiter(masters=0)
    with pytest.raises(TypeError, match=r"^masters must be an integer, not 2\.0$"):
        AxiReadArbiter(masters=2.0)
    with pytest.raises(ValueError, match=r"^bus_bits must be one of 64, 128, 256, 512, "
                                         r"not 100$"):
        AxiReadArbiter(bus_bits=100)
    with pytest.raises(ValueError, match=r"^outstanding must be at least 1, not 0$"):
        AxiReadArbiter(outstanding=0)
    with pytest.raises(TypeError, match=r"^outstanding must be an integer, not True$"):
        AxiReadArbiter(outstanding=True)


def test_attach_checks_index_and_width():
    arb = AxiReadArbiter(2, 128)
    wide = InstructionFetch(256, 8)
    narrow = InstructionFetch(128, 8)
    m = Module()
    with pytest.raises(ValueError, match=r"^index must be a master port, 0 to 1, not 2$"):
        arb.attach(m, 2, narrow)
    with pytest.raises(ValueError, match=r"^master's m_axi_rdata must be 128 bits wide, "
                                         r"not 256$"):
        arb.attach(m, 0, wide)
    for unused in (arb, wide, narrow, m):
        unused._MustUse__silence = True      # built to check the messages, never elaborated


@pytest.mark.parametrize("masters,bus_bits", [(1, 64), (2, 128), (3, 512)])
def test_verilog_lints_clean(masters, bus_bits, tmp_path):
    """Amaranth's conversion, then ``verilator --lint-only -Wall``: no violation."""
    from sim.runner import emit_verilog, lint_verilog

    top = f"axi_read_arbiter_{masters}"
    text = emit_verilog(AxiReadArbiter(masters, bus_bits, outstanding=6), top)
    for port in ("m_axi_araddr", "m_axi_rlast", f"s{masters - 1}_axi_rready"):
        assert port in text
    violations, _ = lint_verilog(text, top, work_dir=tmp_path)
    assert not violations, "\n".join(f"line {w.line}: %{w.rule}: {w.message}"
                                     for w in violations[:20])
