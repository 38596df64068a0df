"""rtl.fetch's instruction fetch in the Amaranth simulator, against the AXI4 memory model.

A program image of random 128-bit words sits in ``sim.bench.axi_memory.AxiMemory`` (which
checks the burst rules: INCR, full-width, at most 256 beats, bus-aligned, never across
4 KiB, inside the memory) at a random 16-byte-aligned base a few words below a 4 KiB
boundary.  A consumer takes the words with random back-pressure and, a few cycles after the
last program word (as the controller would after ``finish``), pulses ``stop``.  The
references come from the image and the AXI4 rules alone:

- the words delivered are the image's words, little-endian, in order, for every bus width;
- the bursts read the addresses from ``base`` (rounded down to a beat) upwards without gap
  or overlap, none crosses 4 KiB, each after the first has ``burst_beats`` beats;
- the credit bound: the program words in the beats read (the words from ``base`` to the end
  of the last burst, a half word on a 64-bit bus counted whole) are at most the words taken
  plus ``prefetch_words``.  The memory ends right there, so a read past the bound also trips
  the model's own "outside the memory" check;
- after ``stop`` every burst issued is answered (the beats seen equal the bursts' beats and
  the ``beats`` counter), no burst is outstanding when ``busy`` drops, and no address
  follows;
- the unit never holds ``rready`` low while a beat is offered.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from amaranth.sim import Simulator

from rtl.params import BUS_BITS
from rtl.fetch import InstructionFetch
from rtl.isa import DRAM_ADDR_BITS, INSTRUCTION_BYTES, FetchGeometry
from sim.bench.axi_memory import AXI_BOUNDARY, AxiMemory

#: The memory starts 4 KiB-aligned high in the 40-bit space (top address bits exercised).
MEM_BASE = (1 << (DRAM_ADDR_BITS - 1)) + 0x3000
TIMEOUT = 50_000
W = INSTRUCTION_BYTES


@dataclass
class Fetched:
    """What one fetch did (cycles counted from the ``start`` pulse)."""

    words: list = field(default_factory=list)       # payloads taken, in order
    first_at: int | None = None                     # cycle of the first word's transfer
    last_at: int | None = None                      # cycle of the last word's transfer
    stop_at: int | None = None                      # cycle stop was high
    idle_at: int | None = None                      # first cycle busy was low after stop
    busy_seen: bool = False
    error: bool = False
    words_counter: int = 0
    beats_counter: int = 0
    beats_seen: int = 0                             # R handshakes
    ar_seen: int = 0                                # AR handshakes
    outstanding_at_idle: int = 0
    max_outstanding: int = 0
    rready_low: int = 0                             # cycles rvalid & ~rready
    late_ar: int = 0                                # AR valid after busy dropped
    valid_after_stop: int = 0                       # o_stream valid after the stop cycle
    ar_log: list = field(default_factory=list)      # (cycle from start, beats) per AR


def image(rng, n):
    """``n`` random 128-bit words and their little-endian bytes."""
    words = [rng.getrandbits(128) for _ in range(n)]
    return words, b"".join(w.to_bytes(W, "little") for w in words)


def memory(rng, base, program, words_beyond, bus_bytes):
    """A bytearray from MEM_BASE whose end is ``words_beyond`` words past the program
    (rounded up to a beat), with ``program`` at ``base`` and random bytes elsewhere."""
    end = base + len(program) + W * words_beyond
    end = -(-end // bus_bytes) * bus_bytes
    mem = bytearray(rng.getrandbits(8) for _ in range(end - MEM_BASE))
    mem[base - MEM_BASE:base - MEM_BASE + len(program)] = program
    return mem


def rtl_fetch(dut, mem, base, n, *, latency=0, idle=0.0, stall=0.0, not_ready=0.0, seed=0,
              stop_delay=0, hold=0, error_beats=None, tail=20):
    """Fetch from ``base``: take ``n`` words (or, with ``error_beats``, until ``error``) with
    ``ready`` low with probability ``not_ready`` (and low for the first ``hold`` cycles),
    pulse ``stop`` ``stop_delay`` cycles after the last, run until ``busy`` drops and
    ``tail`` cycles more.  Returns a :class:`Fetched` and the memory model."""
    axi = AxiMemory(dut, mem, dut.bus_bits, base=MEM_BASE, read_latency=latency, idle=idle,
                    stall=stall, seed=seed, error_beats=error_beats)
    rng = random.Random(seed + 7)
    out = Fetched()
    state = {"outstanding": 0, "stopped": False, "idle": False}

    async def monitor(ctx):
        cycle = -1                  # the start pulse's cycle; the bench counts from 0 after it
        while True:
            (_, _, av, ar, ln, rv, rr, rl, ov) = await ctx.tick().sample(
                dut.m_axi_arvalid, dut.m_axi_arready, dut.m_axi_arlen, dut.m_axi_rvalid,
                dut.m_axi_rready, dut.m_axi_rlast, dut.o_stream.valid)
            if av and ar:
                out.ar_seen += 1
                out.ar_log.append((cycle, ln + 1))
                state["outstanding"] += 1
            if rv and rr:
                out.beats_seen += 1
                state["outstanding"] -= rl
            if rv and not rr:
                out.rready_low += 1
            if av and state["idle"]:
                out.late_ar += 1
            if ov and state["stopped"]:
                out.valid_after_stop += 1
            out.max_outstanding = max(out.max_outstanding, state["outstanding"])
            cycle += 1

    async def bench(ctx):
        ctx.set(dut.base, base)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        cycle = 0
        while len(out.words) < n and not (error_beats and ctx.get(dut.error)):
            ctx.set(dut.o_stream.ready, int(cycle >= hold and rng.random() >= not_ready))
            _, _, v, r, p, b = await ctx.tick().sample(dut.o_stream.valid, dut.o_stream.ready,
                                                       dut.o_stream.payload, dut.busy)
            out.busy_seen |= bool(b)
            if v and r:
                out.words.append(p)
                out.first_at = cycle if out.first_at is None else out.first_at
                out.last_at = cycle
            cycle += 1
            assert cycle < TIMEOUT, f"{len(out.words)} of {n} words in {TIMEOUT} cycles"
        ctx.set(dut.o_stream.ready, 0)
        for _ in range(stop_delay):
            await ctx.tick()
            cycle += 1
        ctx.set(dut.stop, 1)
        await ctx.tick()
        out.stop_at = cycle
        state["stopped"] = True
        ctx.set(dut.stop, 0)
        cycle += 1
        while ctx.get(dut.busy):
            await ctx.tick()
            cycle += 1
            assert cycle < TIMEOUT, "busy never dropped after stop"
        out.idle_at = cycle
        out.outstanding_at_idle = state["outstanding"]
        state["idle"] = True
        for _ in range(tail):
            await ctx.tick()
        out.error = bool(ctx.get(dut.error))
        out.words_counter = ctx.get(dut.words)
        out.beats_counter = ctx.get(dut.beats)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(axi.read_process, background=True)
    sim.add_testbench(monitor, background=True)
    sim.add_testbench(bench)
    sim.run()
    return out, axi


def check_bursts(dut, base, axi):
    """The bursts cover [base rounded down to a beat, end) in order, none across 4 KiB, each
    after the first ``burst_beats`` long; return the end address."""
    B = dut.bus_bits // 8
    at = base - base % B
    for k, (addr, beats) in enumerate(axi.read_bursts):
        assert addr == at, f"burst {k} at {addr:#x}, expected {at:#x}"
        assert beats <= 256
        assert addr // AXI_BOUNDARY == (addr + beats * B - 1) // AXI_BOUNDARY, (
            f"burst {k} at {addr:#x} of {beats} beats crosses 4 KiB")
        if k:
            assert beats == dut.burst_beats and addr % (beats * B) == 0, (addr, beats)
        at += beats * B
    return at


def words_read(base, end):
    """Program words in the bytes read: from base to the end of the last burst (a half
    word on a 64-bit bus counts whole)."""
    return max(0, -(-(end - base) // W))


# (bus_bits, prefetch_words): every width at the default, the smallest credit of each
# width, odd credits, and credits large enough for 256-beat (or 4 KiB) bursts
CONFIGS = [(64, 8), (128, 8), (256, 8), (512, 8), (64, 1), (128, 1), (256, 2), (512, 4),
           (64, 3), (256, 13), (512, 9), (128, 1024), (64, 520), (512, 520)]


@pytest.mark.parametrize("bus_bits,prefetch", CONFIGS)
def test_program_in_order_under_random_timing(bus_bits, prefetch):
    """Random latency, idles, AR stalls and consumer back-pressure: the image in order, the
    burst rules, the credit bound and a clean drain after stop."""
    rng = random.Random(bus_bits * 1000 + prefetch)
    dut = InstructionFetch(bus_bits, prefetch)
    n = rng.randrange(90, 160) + (3 * prefetch if prefetch > 100 else 0)
    words, program = image(rng, n)
    base = MEM_BASE + AXI_BOUNDARY - W * rng.randrange(1, 24)
    mem = memory(rng, base, program, prefetch, bus_bits // 8)
    out, axi = rtl_fetch(dut, mem, base, n, latency=rng.randrange(0, 9), idle=0.3, stall=0.3,
                         not_ready=0.4, seed=prefetch, stop_delay=rng.randrange(0, 4))
    assert out.words == words
    assert not out.error and out.busy_seen
    end = check_bursts(dut, base, axi)
    assert words_read(base, end) <= n + prefetch
    assert out.beats_seen == sum(b for _, b in axi.read_bursts) == out.beats_counter
    assert out.ar_seen == len(axi.read_bursts)
    assert out.outstanding_at_idle == 0 and out.late_ar == 0
    assert out.valid_after_stop == 0
    assert out.words_counter == n
    assert out.rready_low == 0
    if prefetch > 100:       # the large credits reach the longest bursts
        assert dut.burst_beats == min(256, AXI_BOUNDARY // (bus_bits // 8))
        assert max(b for _, b in axi.read_bursts) == dut.burst_beats


@pytest.mark.parametrize("bus_bits,prefetch", [(64, 8), (128, 8), (256, 13), (512, 9),
                                               (128, 7), (64, 1)])
def test_prefetch_fills_the_credit_and_no_more(bus_bits, prefetch):
    """A consumer that takes nothing for 300 cycles: by then the unit has requested at most
    ``prefetch_words`` words, and less than one full burst fewer; then the program follows
    in order."""
    rng = random.Random(bus_bits + prefetch)
    dut = InstructionFetch(bus_bits, prefetch)
    n, hold = 40, 300
    words, program = image(rng, n)
    base = MEM_BASE + AXI_BOUNDARY - W * rng.randrange(1, 24)
    mem = memory(rng, base, program, prefetch, bus_bits // 8)
    out, _ = rtl_fetch(dut, mem, base, n, hold=hold, seed=prefetch)
    assert out.words == words
    B = bus_bits // 8
    requested = sum(beats for cycle, beats in out.ar_log if cycle < hold)
    filled = words_read(base, base - base % B + requested * B)
    burst_words = dut.burst_beats * dut.words_per_beat // dut.beats_per_word
    assert prefetch - max(1, burst_words) < filled <= prefetch, (filled, burst_words)


@pytest.mark.parametrize("bus_bits", BUS_BITS)
@pytest.mark.parametrize("latency", [0, 5])
def test_first_word_and_full_rate(bus_bits, latency):
    """An ideal memory of fixed latency and a consumer always ready: the first word is
    offered 4 + latency cycles after the start cycle (one more on a 64-bit bus: its second
    beat), and with a credit of 16 words (latency 0) or 32 (latency 5) the words follow one
    a cycle (one every two cycles on a 64-bit bus)."""
    prefetch = 16 if latency == 0 else 32
    dut = InstructionFetch(bus_bits, prefetch)
    rng = random.Random(bus_bits + latency)
    n = 120
    words, program = image(rng, n)
    base = MEM_BASE + AXI_BOUNDARY - W * 3
    mem = memory(rng, base, program, prefetch, bus_bits // 8)
    out, _ = rtl_fetch(dut, mem, base, n, latency=latency)
    assert out.words == words
    # rtl_fetch counts cycles from the one after the start cycle
    assert out.first_at + 1 == 4 + latency + (dut.beats_per_word - 1)
    assert out.last_at - out.first_at == (n - 1) * dut.beats_per_word


@pytest.mark.parametrize("bus_bits,prefetch", [(128, 8), (128, 12), (64, 8), (256, 16),
                                               (512, 24)])
def test_bursts_outstanding_up_to_the_credit(bus_bits, prefetch):
    """With a memory latency longer than the bursts, as many bursts are in flight as the
    credit holds: ⌊credit beats / burst_beats⌋ (base aligned to a burst)."""
    dut = InstructionFetch(bus_bits, prefetch)
    rng = random.Random(prefetch)
    n = 60
    words, program = image(rng, n)
    B = bus_bits // 8
    base = MEM_BASE + AXI_BOUNDARY - dut.burst_beats * B
    mem = memory(rng, base, program, prefetch, B)
    out, _ = rtl_fetch(dut, mem, base, n, latency=24)
    assert out.words == words
    credit_beats = prefetch * dut.beats_per_word // dut.words_per_beat
    assert credit_beats // dut.burst_beats >= 2
    assert out.max_outstanding == credit_beats // dut.burst_beats


@pytest.mark.parametrize("bus_bits", [64, 512])
def test_unaligned_base_refused_then_a_clean_run(bus_bits):
    """A base that is not a multiple of 16 sets ``error`` the cycle after ``start`` and
    reads nothing; the next ``start`` with an aligned base clears it and runs."""
    dut = InstructionFetch(bus_bits, 8)
    rng = random.Random(bus_bits)
    words, program = image(rng, 30)
    base = MEM_BASE + 2 * AXI_BOUNDARY - 5 * W
    mem = memory(rng, base, program, 8, bus_bits // 8)
    axi = AxiMemory(dut, mem, bus_bits, base=MEM_BASE)
    seen = {"busy": 0, "arvalid": 0, "valid": 0, "error": []}
    got = []

    async def bench(ctx):
        for offset in (8, 4, 1, 15):
            ctx.set(dut.base, base + offset)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            for _ in range(30):
                _, _, b, av, v, e = await ctx.tick().sample(dut.busy, dut.m_axi_arvalid,
                                                            dut.o_stream.valid, dut.error)
                seen["busy"] += b
                seen["arvalid"] += av
                seen["valid"] += v
                seen["error"].append(e)
        assert ctx.get(dut.error)
        ctx.set(dut.base, base)
        ctx.set(dut.start, 1)
        ctx.set(dut.o_stream.ready, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        assert not ctx.get(dut.error) and ctx.get(dut.busy)
        while len(got) < len(words):
            _, _, v, p = await ctx.tick().sample(dut.o_stream.valid, dut.o_stream.payload)
            if v:
                got.append(p)
        ctx.set(dut.stop, 1)
        await ctx.tick()
        ctx.set(dut.stop, 0)
        for _ in range(40):
            await ctx.tick()
        assert not ctx.get(dut.busy) and not ctx.get(dut.error)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(axi.read_process, background=True)
    sim.add_testbench(bench)
    sim.run()
    assert seen["busy"] == seen["arvalid"] == seen["valid"] == 0
    assert all(seen["error"])
    assert got == words
    assert axi.read_bursts[0][0] == base - base % (bus_bits // 8)


@pytest.mark.parametrize("bus_bits", BUS_BITS)
def test_error_response_stops_and_drains(bus_bits):
    """A beat answered SLVERR: ``error`` rises, no word of that beat or after it is
    delivered (those before may be), the unit drains its bursts and drops ``busy``."""
    rng = random.Random(bus_bits + 3)
    dut = InstructionFetch(bus_bits, 12 if bus_bits < 512 else 16)
    n = 64
    words, program = image(rng, n)
    B = bus_bits // 8
    base = MEM_BASE + AXI_BOUNDARY - 8 * W
    mem = memory(rng, base, program, dut.prefetch_words, B)
    bad = base + 37 * W
    bad -= bad % B
    out, axi = rtl_fetch(dut, mem, base, n, latency=3, idle=0.2, stall=0.2, not_ready=0.3,
                         error_beats={bad}, tail=20)
    assert out.error
    first_bad = (bad - base) // W if bad >= base else 0
    assert len(out.words) <= first_bad and out.words == words[:len(out.words)]
    assert out.outstanding_at_idle == 0 and out.late_ar == 0
    assert out.beats_seen == sum(b for _, b in axi.read_bursts) == out.beats_counter
    assert any(a <= bad < a + b * B for a, b in axi.read_bursts)


def test_bad_parameters():
    with pytest.raises(ValueError, match=r"^bus_bits must be one of 64, 128, 256, 512, not 32$"):
        InstructionFetch(bus_bits=32)
    with pytest.raises(TypeError, match=r"^bus_bits must be an integer, not '128'$"):
        InstructionFetch(bus_bits="128")
    with pytest.raises(TypeError, match=r"^prefetch_words must be an integer, not 2\.5$"):
        InstructionFetch(prefetch_words=2.5)
    with pytest.raises(ValueError, match=r"^prefetch_words must be at least 1 \(the words of "
                                         r"one 128-bit beat\), not 0$"):
        InstructionFetch(prefetch_words=0)
    with pytest.raises(ValueError, match=r"^prefetch_words must be at least 4 \(the words of "
                                         r"one 512-bit beat\), not 3$"):
        InstructionFetch(bus_bits=512, prefetch_words=3)


def test_fetch_geometry_refuses_what_the_unit_refuses():
    # the compiler's timing model builds the geometry without the unit
    with pytest.raises(ValueError, match=r"^bus_bits must be one of 64, 128, 256, 512, not 96$"):
        FetchGeometry(96, 8)
    with pytest.raises(ValueError, match=r"^prefetch_words must be an integer of at least 4 "
                                         r"\(the words of one beat\), not 3$"):
        FetchGeometry(512, 3)


def test_properties():
    """Burst sizes and buffer entries follow from the credit (values by hand)."""
    cases = {(64, 8): (8, 8), (128, 8): (4, 8), (256, 8): (2, 4), (512, 8): (1, 2),
             (128, 1): (1, 1), (512, 4): (1, 1), (256, 13): (2, 7), (128, 4096): (256, 4096),
             (512, 4096): (64, 1024), (64, 4096): (256, 4096)}
    for (bus, prefetch), (burst, entries) in cases.items():
        dut = InstructionFetch(bus, prefetch)
        dut._MustUse__silence = True         # built for its properties, never elaborated
        assert (dut.burst_beats, dut.buffer_entries) == (burst, entries), (bus, prefetch)


@pytest.mark.parametrize("bus_bits,prefetch", [(64, 8), (512, 12), (128, 8)])
def test_verilog_lints_clean(bus_bits, prefetch, tmp_path):
    """Amaranth's conversion, then ``verilator --lint-only -Wall``: no violation."""
    from sim.runner import emit_verilog, lint_verilog

    top = f"fetch_{bus_bits}"
    text = emit_verilog(InstructionFetch(bus_bits, prefetch), top)
    for port in ("m_axi_araddr", "m_axi_rdata", "o_stream__payload", "stop", "base"):
        assert port in text
    violations, _ = lint_verilog(text, top, work_dir=tmp_path)
    assert not violations, "\n".join(f"line {w.line}: %{w.rule}: {w.message}"
                                     for w in violations[:20])
