"""rtl.overlay_top.OverlayTop in the Amaranth simulator: conv layers from DRAM, end to end.

A layer is planned by the compiler (``dse.compiler.plan_conv``) on a 4×4 array with small
``DatapathLimits`` (so it runs as several invocations: filter chunks, and row bands for the
first case), turned into a program and a DRAM image by ``dse.compiler.program`` (the input and
output are HWC tensors in DRAM, moved with strided ``load.tile`` / ``store.tile`` boxes), and
run from an AXI4 memory model (``sim.bench.axi_memory.AxiMemory``).  References, independent
of the RTL:

* **outputs**: the output tensor read back from DRAM equals ``sim.models.conv.conv2d``
  followed by ``sim.models.requant.requantize`` with the plan's (mult, shift), bit for bit;
* **cycles**: ``dse.compiler.timing.top_schedule`` (``dse.compiler.asm.schedule`` with
  ``instruction_cycles``, the controller's dispatch latency, instruction queues and fetch)
  from :data:`rtl.overlay_top.START_CYCLES` on, as design.json's cycles.  With a memory
  that answers at once and never stalls, every instruction takes exactly its model cycles
  (checked instruction by instruction) and the top's ``cycles`` equal the model's total
  (the fetch unit reads on its own port, ``m_axi_instr_*``, so it never delays a load).
  With random latency, idles and stalls on both ports: model(latency) ≤ measured ≤
  model(0) + both memories' delay_cycles;
* host control: a host writes the program address and ``start`` over AXI4-Lite and polls
  the status register until ``done`` (and reads ``cycles``, the error registers and the
  engines' busy counters), then sees an unaligned program's fetch error there;
* errors: a pool instruction or a load into the aux buffer on an overlay without a pool
  engine, a load before its setup, a pool tile the engine refuses stop the top with
  ``error`` (never a hang); the same program runs twice with equal results; Verilog and Verilator lint.

Chains of layers: ``tests/rtl/test_overlay_network.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from dse.compiler.asm import schedule
from dse.compiler import plan_conv
from dse.compiler.program import build_layer_program, decode_output, instruction_cycles
from dse.compiler.timing import top_cycles, top_schedule
from rtl.controller import DISPATCH_LATENCY, ErrorCode
from rtl.isa import (
    INSTRUCTION_BYTES,
    Buffer,
    ComputeTile,
    Engine,
    Finish,
    LoadSetup,
    LoadTile,
    PoolMode,
    PoolSetup,
    PoolTile,
    StoreTile,
)
from rtl.overlay_top import HOST_REGISTERS, START_CYCLES, STATUS_BITS, OverlayTop
from rtl.params import QUEUE_DEPTH, DatapathLimits, OverlayParams
from sim.bench.axi_memory import AxiMemory
from sim.models.conv import conv2d
from sim.models.requant import requantize

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dse"))
from cost_helpers import conv

HW = OverlayParams(rows=4, cols=4)
#: Row bands and filter chunks (4 invocations of an 8×8 3×3 layer).
BANDED = DatapathLimits(max_m=32, max_k=72, max_n=4, feature_words=256, weight_words=128,
                        out_words=32, max_gemms=16, tile_words=2, spectral_words=2)
#: Filter chunks only.
CHUNKED = DatapathLimits(max_m=64, max_k=72, max_n=4, feature_words=256, weight_words=128,
                         out_words=64, max_gemms=16, tile_words=2, spectral_words=2)
BASE = 0x10_0000_0000          # high in the 40-bit space: the address's top bits are used
TOKEN_DEPTH = 2
TIMEOUT = 100_000

CASES = [
    ("im2col", "ws", conv(c_in=8, h=8, w=8, c_out=8, k=3), BANDED),
    ("kn2row", "os", conv(c_in=8, h=10, w=6, c_out=8, k=3), CHUNKED),
    ("im2col", "ws", conv(c_in=8, h=8, w=8, c_out=8, k=1, p=0), CHUNKED),
]


def _layer_data(layer, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, layer.in_shape)
    w = rng.integers(-128, 128, (layer.out_shape[0], layer.in_shape[0], *layer.kernel))
    return x, w


def _golden(plan, layer, x, w):
    regs = plan.invocations[0].registers
    acc = conv2d(x, w, stride=layer.stride[0], padding=layer.padding[0],
                 dilation=layer.dilation[0])
    return requantize(acc, regs["rq_mult"], regs["rq_shift"], 8, False)


def _run(dut, mem, program_addr, *, runs=1, **axi_args):
    """Run the program ``runs`` times; return per run the top's flags and counters and the
    instructions' (transfer, done) cycles per engine, and the memory models of the data and
    the instruction port."""
    axi, instr = _memories(dut, mem, **axi_args)
    results = []
    cycle = [0]
    ctl = dut.controller

    async def monitor(ctx):
        while True:
            await ctx.tick()
            cycle[0] += 1
            if not results:
                continue
            r = results[-1]
            for e in Engine:
                port = getattr(ctl, e.value)
                if ctx.get(port.cmd.valid) and ctx.get(port.cmd.ready):
                    r["log"][e].append(("T", cycle[0]))
                if ctx.get(port.done):
                    r["log"][e].append(("D", cycle[0]))

    async def bench(ctx):
        for _ in range(runs):
            while ctx.get(dut.busy):
                await ctx.tick()
            results.append({"log": {e: [] for e in Engine}})
            ctx.set(dut.program, program_addr)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            results[-1]["start"] = cycle[0] - 1
            n = 0
            while not (ctx.get(dut.done) or ctx.get(dut.error)):
                await ctx.tick()
                n += 1
                assert n < TIMEOUT, "the overlay top hangs"
            r = results[-1]
            r.update({k: ctx.get(getattr(dut, k)) for k in (
                "done", "error", "cycles", "engine_error", "error_engine", "fetch_error",
                "error_code", "error_index")})
            r["dram"] = bytes(mem)
        while ctx.get(dut.busy):        # every unit idle again: nothing left hanging
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(axi.read_process, background=True)
    sim.add_testbench(axi.write_process, background=True)
    sim.add_testbench(instr.read_process, background=True)
    sim.add_testbench(monitor, background=True)
    sim.add_testbench(bench)
    sim.run()
    return results, (axi, instr)


def _memories(dut, mem, seed=0, **axi_args):
    """The AXI4 memory models of the top's data port (``m_axi_*``) and instruction port
    (``m_axi_instr_*``, reads only), over the same bytes."""
    bus = dut.params.bus_bits
    return (AxiMemory(dut, mem, bus, base=BASE, seed=seed, **axi_args),
            AxiMemory(dut, mem, bus, base=BASE, seed=seed + 2, prefix="m_axi_instr_",
                      **axi_args))


def _durations(r, lp):
    """(instruction index, transfer cycle, done − transfer) of every engine instruction."""
    out = []
    for e in Engine:
        idx = [i for i, inst in enumerate(lp.program[:-1]) if inst.ENGINE is e]
        events = r["log"][e]
        took = [c for k, c in events if k == "T"]
        done = [c for k, c in events if k == "D"]
        assert len(took) == len(done) == len(idx), (e, events)
        out += [(i, t, d - t) for i, t, d in zip(idx, took, done)]
    return sorted(out)


def _setup_case(algo, flow, layer, limits, seed=1, hw=HW):
    plan = plan_conv(layer, algo, flow, hw, limits)
    x, w = _layer_data(layer, seed)
    lp = build_layer_program(plan, x, w, hw, limits, base=BASE, token_depth=TOKEN_DEPTH)
    mem = bytearray(lp.image) + bytearray(4096)
    return plan, x, w, lp, mem


def check_cycles(lp, r, hw=HW) -> int:
    """The cycles (module docstring) of run ``r`` of program ``lp``: every instruction takes
    exactly its model cycles, and the total is the schedule's (with the fetch unit's
    arrivals).  Returns the model's total."""
    cyc, spans = top_schedule(lp, hw)
    model = START_CYCLES + spans[-1][1]
    for i, took, measured in _durations(r, lp):
        assert measured == cyc[i], (i, lp.program[i].MNEMONIC, measured, cyc[i])
    assert r["cycles"] == model, (r["cycles"], model)
    return model


@pytest.mark.parametrize("algo,flow,layer,limits", CASES,
                         ids=["im2col-ws-3x3-bands", "kn2row-os-3x3", "im2col-ws-1x1"])
def test_layer_bit_exact_and_cycles_ideal_memory(algo, flow, layer, limits):
    plan, x, w, lp, mem = _setup_case(algo, flow, layer, limits)
    assert len(plan.invocations) >= 2
    dut = OverlayTop(HW, limits, token_depth=TOKEN_DEPTH)
    runs = 2 if layer.kernel == (1, 1) else 1
    results, _ = _run(dut, mem, lp.program_addr, runs=runs)
    gold = _golden(plan, layer, x, w)
    for r in results:
        assert r["done"] and not r["error"] and not r["engine_error"] and not r["fetch_error"]
        out = decode_output(lp, r["dram"], BASE)
        assert np.array_equal(out, gold), f"{(out != gold).sum()} outputs differ"
        check_cycles(lp, r)
    if runs == 2:
        assert results[0]["cycles"] == results[1]["cycles"]
        assert results[0]["dram"] == results[1]["dram"]


@pytest.mark.parametrize("bus", [64, 256, 512])
def test_cycles_on_every_bus_width(bus):
    """A 64-bit bus brings an instruction in two beats, a 256- or 512-bit one two or four in
    one: the first instructions wait for them (the schedule's fetch model), the loads and
    stores move other beats, and the totals are still the model's exactly."""
    hw = OverlayParams(rows=4, cols=4, bus_bits=bus)
    algo, flow, layer, limits = CASES[2]
    plan, x, w, lp, mem = _setup_case(algo, flow, layer, limits, hw=hw)
    (r,), _ = _run(OverlayTop(hw, limits, token_depth=TOKEN_DEPTH), mem, lp.program_addr)
    assert r["done"] and not r["error"]
    assert np.array_equal(decode_output(lp, r["dram"], BASE), _golden(plan, layer, x, w))
    check_cycles(lp, r, hw)


def test_layer_random_memory_within_bounds():
    algo, flow, layer, limits = CASES[2]
    plan, x, w, lp, mem = _setup_case(algo, flow, layer, limits, seed=7)
    dut = OverlayTop(HW, limits, token_depth=TOKEN_DEPTH)
    latency = 3
    (r,), (axi, instr) = _run(dut, mem, lp.program_addr, read_latency=latency,
                              write_latency=latency, idle=0.2, stall=0.2, seed=5)
    assert r["done"] and not r["error"]
    assert np.array_equal(decode_output(lp, r["dram"], BASE), _golden(plan, layer, x, w))
    low = START_CYCLES + latency + schedule(lp.program, instruction_cycles(lp, HW,
                                                                         latency=latency),
                                            TOKEN_DEPTH, latency=DISPATCH_LATENCY,
                                            queue_depth=QUEUE_DEPTH)[-1][1]
    high = top_cycles(lp, HW) + axi.delay_cycles + instr.delay_cycles
    print(f"random memory: {low} <= {r['cycles']} <= {high}")
    assert low <= r["cycles"] <= high, (low, r["cycles"], high)


def _small_program(body):
    """A DRAM image of ``body`` + finish at BASE, with room behind it."""
    program = [*body, Finish()]
    code = b"".join(i.encode().to_bytes(INSTRUCTION_BYTES, "little") for i in program)
    return bytearray(code) + bytearray(4096)


#: An overlay without a pool engine (12 / gcd(4, 12) = 3 is no power of two:
#: rtl.overlay_top.pool_supported).
WIDE = OverlayParams(rows=4, cols=12)


@pytest.mark.parametrize("params,body,engine", [
    (WIDE, [LoadSetup(buf=Buffer.FEATURE, elem=1, row_pitch=0, px_pitch=4),
            PoolSetup(mode=PoolMode.MAX, kh=2, kw=2, stride=2, ch=8)], Engine.POOL),
    (WIDE, [LoadSetup(buf=Buffer.AUX, elem=1, row_pitch=0, px_pitch=4)], Engine.LOAD),
    (WIDE, [LoadTile(buf=Buffer.AUX, dram=BASE + 4096, addr=0, rows=1, cols=2, ch=4)],
     Engine.LOAD),
    (HW, [LoadTile(buf=Buffer.WEIGHT, dram=BASE + 4096, addr=0, rows=1, cols=2, ch=4)],
     Engine.LOAD),
    (HW, [LoadTile(buf=Buffer.AUX, dram=BASE + 4096, addr=0, rows=1, cols=2, ch=4)],
     Engine.LOAD),
    # the pool engine refuses a window larger than its padded tile
    (HW, [PoolSetup(mode=PoolMode.MAX, kh=3, kw=3, stride=1, ch=4),
          PoolTile(in_addr=0, in2_addr=0, out_addr=0, rows=2, cols=2)], Engine.POOL),
], ids=["pool-no-engine", "aux-setup-no-engine", "aux-tile-no-engine", "tile-before-setup",
        "aux-tile-before-setup", "pool-window-too-large"])
def test_unsupported_instruction_sets_error_and_stops(params, body, engine):
    dut = OverlayTop(params, CHUNKED)
    assert dut.has_pool == (params is HW)
    mem = _small_program(body)
    (first, second), _ = _run(dut, mem, BASE, runs=2)
    for r in (first, second):                      # and the top takes a second start
        assert r["error"] and r["engine_error"] and not r["done"] and not r["fetch_error"]
        assert r["error_engine"] == engine.code
        assert r["error_code"] == ErrorCode.NONE
        assert not r["log"][Engine.COMPUTE] and not r["log"][Engine.STORE]


def test_illegal_word_and_fetch_error():
    dut = OverlayTop(HW, CHUNKED)
    mem = bytearray(INSTRUCTION_BYTES) + bytearray(4096)        # the zero word: illegal
    (r,), _ = _run(dut, mem, BASE)
    assert r["error"] and not r["engine_error"] and r["error_code"] == ErrorCode.OPCODE
    assert r["error_index"] == 0
    dut = OverlayTop(HW, CHUNKED)
    (r,), _ = _run(dut, _small_program([]), BASE + 8)            # unaligned program
    assert r["error"] and r["fetch_error"] and not r["done"]


def test_parameters_refused():
    with pytest.raises(ValueError, match=r"^params must have no FFT unit: the overlay top "
                                         r"runs the im2col, kn2row and Winograd datapaths "
                                         r"only, not an FFT unit \(fft_size=8\)$"):
        OverlayTop(OverlayParams(rows=4, cols=4, fft_size=8, a_width=16, b_width=16,
                                 acc_width=48), CHUNKED)
    with pytest.raises(ValueError, match="table_words must be at least 2, not 1"):
        OverlayTop(HW, CHUNKED, table_words=1)
    with pytest.raises(TypeError, match="limits must be a DatapathLimits"):
        OverlayTop(HW, {"max_m": 4})
    with pytest.raises(ValueError, match="precision must be 8 or 16"):
        OverlayTop(HW, CHUNKED, precision=12)


def test_program_tokens_and_layout():
    algo, flow, layer, limits = CASES[0]
    plan, x, _, lp, _ = _setup_case(algo, flow, layer, limits)
    n = len(plan.invocations)
    computes = [i for i in lp.program if isinstance(i, ComputeTile)]
    assert [c.image for c in computes] == [k * lp.image_words for k in range(n)]
    # the write-after-read tokens: loads after the previous compute, compute after the store
    loads = [i for i in lp.program if isinstance(i, LoadTile) and i.buf is not Buffer.TABLE]
    assert sum(Engine.COMPUTE in i.pop for i in loads) == n - 1
    assert sum(Engine.STORE in c.pop for c in computes) == n - 1
    # the input is the real HWC tensor, int8, and the output tensor is zero until stored
    c, h, w = layer.in_shape
    t = lp.input
    raw = np.frombuffer(lp.image[t.dram - BASE:t.dram - BASE + t.nbytes], np.int8)
    assert np.array_equal(raw.reshape(h, w, c), x.transpose(1, 2, 0))
    assert not any(lp.image[lp.output.dram - BASE:lp.output.dram - BASE + lp.output.nbytes])
    setup = next(i for i in lp.program if isinstance(i, LoadSetup) and i.buf is Buffer.FEATURE)
    assert (setup.px_pitch, setup.row_pitch) == (c, w * c)
    # the bands' padding is in the buffer image (pads (1, 1, 0, 1), unit_pad 0): one box per
    # input row of the band's 8 pixels, zero boxes of the padding between them
    band = plan.bands[plan.invocations[0].band]
    assert band.plan.pads == (1, 1, 0, 1) and band.plan.unit_pad == 0
    first = loads[:loads.index(next(i for i in loads if i.buf is Buffer.WEIGHT))]
    rows_in = band.in_rows[1] - band.in_rows[0]
    assert [i.cols for i in first if i.dram != lp.zeros.dram] == [w] * rows_in
    assert [i.addr for i in first] == sorted(i.addr for i in first)
    # one store box per final invocation: its band's rows × OW × its filters
    stores = [i for i in lp.program if isinstance(i, StoreTile)]
    assert [(s.rows, s.cols, s.ch) for s in stores] == [
        (b - a, w, f1 - f0) for inv in plan.invocations
        for (a, b), (f0, f1) in [(plan.bands[inv.band].rows, inv.filters)]]


def test_verilog_and_lint(tmp_path):
    from sim.runner import emit_verilog, lint_verilog

    text = verilog.convert(OverlayTop(HW, CHUNKED), name="overlay_top")
    assert "m_axi_araddr" in text and "m_axi_awaddr" in text
    violations, _ = lint_verilog(emit_verilog(OverlayTop(HW, CHUNKED), "overlay_top"),
                                 "overlay_top", work_dir=tmp_path)
    assert not violations, "\n".join(f"line {v.line}: %{v.rule}: {v.message}"
                                     for v in violations[:20])


async def _axil_write(ctx, dut, addr, value):
    """One AXI4-Lite write by the host; returns BRESP."""
    ctx.set(dut.s_axil_awaddr, addr)
    ctx.set(dut.s_axil_wdata, value)
    ctx.set(dut.s_axil_wstrb, 0xF)
    ctx.set(dut.s_axil_awvalid, 1)
    ctx.set(dut.s_axil_wvalid, 1)
    ctx.set(dut.s_axil_bready, 1)
    for _ in range(100):
        aw = ctx.get(dut.s_axil_awvalid) and ctx.get(dut.s_axil_awready)
        w = ctx.get(dut.s_axil_wvalid) and ctx.get(dut.s_axil_wready)
        b = ctx.get(dut.s_axil_bvalid)
        resp = ctx.get(dut.s_axil_bresp)
        await ctx.tick()
        if aw:
            ctx.set(dut.s_axil_awvalid, 0)
        if w:
            ctx.set(dut.s_axil_wvalid, 0)
        if b:
            ctx.set(dut.s_axil_bready, 0)
            return resp
    raise AssertionError("the AXI4-Lite write hangs")


async def _axil_read(ctx, dut, addr):
    """One AXI4-Lite read by the host; returns (RDATA, RRESP)."""
    ctx.set(dut.s_axil_araddr, addr)
    ctx.set(dut.s_axil_arvalid, 1)
    ctx.set(dut.s_axil_rready, 1)
    for _ in range(100):
        ar = ctx.get(dut.s_axil_arvalid) and ctx.get(dut.s_axil_arready)
        r = ctx.get(dut.s_axil_rvalid)
        value, resp = ctx.get(dut.s_axil_rdata), ctx.get(dut.s_axil_rresp)
        await ctx.tick()
        if ar:
            ctx.set(dut.s_axil_arvalid, 0)
        if r:
            ctx.set(dut.s_axil_rready, 0)
            return value, resp
    raise AssertionError("the AXI4-Lite read hangs")


def test_host_runs_program_over_axi_lite():
    """A host writes the program address and start over AXI4-Lite and polls the status
    register (rtl.overlay_top.HOST_REGISTERS); then an unaligned program's fetch error."""
    algo, flow, layer, limits = CASES[2]
    plan, x, w, lp, mem = _setup_case(algo, flow, layer, limits, seed=3)
    dut = OverlayTop(HW, limits, token_depth=TOKEN_DEPTH)
    off = {name: dut.host.offset(name) for name, _, _ in HOST_REGISTERS}
    assert off == {"start": 0x00, "program": 0x04, "status": 0x0C, "error_code": 0x10,
                   "error_engine": 0x14, "error_index": 0x18, "cycles": 0x1C,
                   "load_busy": 0x20, "compute_busy": 0x24, "pool_busy": 0x28,
                   "store_busy": 0x2C}
    bit = {name: 1 << i for i, name in enumerate(STATUS_BITS)}
    axi, instr = _memories(dut, mem)
    got = []

    async def host(ctx):
        for addr in (lp.program_addr, BASE + 8):            # the second is unaligned
            assert await _axil_write(ctx, dut, off["program"], addr & 0xFFFF_FFFF) == 0
            assert await _axil_write(ctx, dut, off["program"] + 4, addr >> 32) == 0
            lo, _ = await _axil_read(ctx, dut, off["program"])
            hi, _ = await _axil_read(ctx, dut, off["program"] + 4)
            assert lo | hi << 32 == addr                      # rw: reads back
            assert await _axil_write(ctx, dut, off["start"], 1) == 0
            polls, seen_busy = 0, False
            while True:
                status, resp = await _axil_read(ctx, dut, off["status"])
                assert resp == 0
                seen_busy |= bool(status & bit["busy"])
                if status & (bit["done"] | bit["error"]):
                    break
                polls += 1
                assert polls < TIMEOUT, "the overlay top hangs"
            while (await _axil_read(ctx, dut, off["status"]))[0] & bit["busy"]:
                pass
            regs = {n: (await _axil_read(ctx, dut, off[n]))[0] for n in off if n != "start"}
            got.append((status, seen_busy, regs, ctx.get(dut.cycles), bytes(mem)))
        # an address past the registers answers SLVERR
        assert (await _axil_read(ctx, dut, 0x40))[1] == 2

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(axi.read_process, background=True)
    sim.add_testbench(axi.write_process, background=True)
    sim.add_testbench(instr.read_process, background=True)
    sim.add_testbench(host)
    sim.run()
    (status, seen_busy, regs, cycles, dram), (e_status, _, e_regs, _, _) = got
    assert seen_busy and status & bit["done"] and not status & bit["error"]
    assert np.array_equal(decode_output(lp, dram, BASE), _golden(plan, layer, x, w))
    model = top_cycles(lp, HW)
    assert regs["cycles"] == cycles == model
    assert regs["error_code"] == regs["error_engine"] == regs["error_index"] == 0
    # each engine's busy cycles: every instruction's model cycles at least, within the run
    cyc = instruction_cycles(lp, HW)
    for engine in (Engine.LOAD, Engine.COMPUTE, Engine.STORE):
        least = sum(c for inst, c in zip(lp.program, cyc) if inst.ENGINE is engine)
        assert least <= regs[f"{engine.value}_busy"] <= cycles, (engine, regs)
    assert regs["pool_busy"] == 0
    assert e_status & bit["error"] and e_status & bit["fetch_error"]
    assert not e_status & (bit["done"] | bit["engine_error"])
    assert e_regs["compute_busy"] == e_regs["store_busy"] == 0
