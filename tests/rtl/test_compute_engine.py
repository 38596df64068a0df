"""rtl.compute_engine.ComputeEngine in the Amaranth simulator, on the compiler's own plans.

* every invocation the compiler plans (im2col, kn2row, Winograd, FFT; bands, filter and
  channel chunks) packs into a register image of the datapath's registers
  (``rtl.params.datapath_registers``), and the image round-trips;
* the engine, given the images in a table memory, presents exactly the compiler's settings
  to a mock datapath at its start, takes ``image_load_cycles`` cycles from each command to
  the start, passes the datapath's done on, and runs commands back to back under random
  command idles;
* parameter errors, Verilog lint.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
from amaranth.sim import Simulator

from dse.compiler import plan_conv
from dse.cost.resources import overlay_limits
from dse.cost.transforms import image_load_cycles
from rtl.compute_engine import ComputeEngine
from rtl.isa import image_words, pack_image, unpack_image
from rtl.params import DatapathLimits, OverlayParams, datapath_registers

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dse"))
from cost_helpers import conv  # noqa: E402

#: (overlay, layer, algorithm, dataflow): plans with several invocations each.
PLANS = [
    (OverlayParams(rows=4, cols=4, act_buffer_kib=1, weight_buffer_kib=1, out_buffer_kib=1),
     conv(c_in=8, h=14, w=14, c_out=24, k=3), "im2col", "ws"),
    (OverlayParams(rows=4, cols=8, act_buffer_kib=8, weight_buffer_kib=8, out_buffer_kib=8),
     conv(c_in=16, h=40, w=40, c_out=40, k=3, s=2), "kn2row", "os"),
    (OverlayParams(rows=4, cols=8, winograd_m=2, winograd_lanes=2, a_width=10, b_width=12,
                   act_buffer_kib=2, weight_buffer_kib=2, out_buffer_kib=2),
     conv(c_in=8, h=12, w=12, c_out=16, k=3), "winograd", "ws"),
    (OverlayParams(rows=4, cols=4, fft_size=8, a_width=16, b_width=16, acc_width=48,
                   act_buffer_kib=4, weight_buffer_kib=4, out_buffer_kib=4),
     conv(c_in=3, h=10, w=10, c_out=4, k=3), "fft", "ws"),
]


def _plan(hw, layer, algo, flow):
    limits = DatapathLimits(**overlay_limits(hw))
    return plan_conv(layer, algo, flow, hw, limits), limits


@pytest.mark.parametrize("hw,layer,algo,flow", PLANS, ids=[p[2] for p in PLANS])
def test_compiler_invocations_pack_into_register_images(hw, layer, algo, flow):
    plan, limits = _plan(hw, layer, algo, flow)
    regs = datapath_registers(hw, limits)
    assert len(plan.invocations) > 1 or algo == "fft"
    for inv in plan.invocations:
        words = pack_image(inv.registers, regs)
        assert len(words) == image_words(regs)
        assert unpack_image(words, regs) == inv.registers


def test_pack_image_refuses_bad_settings():
    regs = (("a", 3), ("b", 5))
    with pytest.raises(ValueError, match=r"^register image must set b$"):
        pack_image({"a": 1}, regs)
    with pytest.raises(ValueError, match=r"^register image names must be registers \(a, b\), "
                                         r"not c$"):
        pack_image({"a": 1, "b": 2, "c": 3}, regs)
    with pytest.raises(ValueError, match=r"^register a must be between 0 and 7 \(3 bits\), "
                                         r"not 8$"):
        pack_image({"a": 8, "b": 0}, regs)
    assert pack_image({"a": 5, "b": 17}, regs) == [5 | 17 << 3]


def _run(engine, images, commands, seed, done_delay=(0, 6), idle=0.3):
    """Drive ``commands`` (image addresses) into ``engine`` with the table holding
    ``images`` (address -> words); a mock datapath records the settings at each start and
    answers ``done`` after a random delay.  Returns [(settings, transfer cycle, start cycle,
    done cycle)]."""
    table = {a + i: w for a, words in images.items() for i, w in enumerate(words)}
    names = [n for n, _ in engine.registers]
    rng = random.Random(seed)
    log = []
    sim = Simulator(engine)
    sim.add_clock(1e-6)

    async def bench(ctx):
        cycle = 0
        pending = list(commands)
        read = None               # the word the table returns this cycle
        waiting = None            # [cycles left, entry] of the running datapath
        current = None
        while pending or waiting or current is not None or ctx.get(engine.busy):
            # -- before the edge: inputs for this cycle
            ctx.set(engine.table_data, 0 if read is None else read)
            offer = bool(pending) and rng.random() >= idle
            ctx.set(engine.cmd.valid, offer)
            if offer:
                ctx.set(engine.cmd.payload, pending[0])
            fire = waiting is not None and waiting[0] == 0
            ctx.set(engine.dp_done, fire)
            # outputs of this cycle
            taken = offer and ctx.get(engine.cmd.ready)
            en, addr = ctx.get(engine.table_en), ctx.get(engine.table_addr)
            if ctx.get(engine.start):
                settings = {n: ctx.get(getattr(engine.settings, n)) for n in names}
                current["start"], current["settings"] = cycle, settings
                waiting = [rng.randint(*done_delay), current]
            if ctx.get(engine.done):
                assert fire
                current["done"] = cycle
                log.append(current)
                current, waiting = None, None
            elif waiting is not None and waiting[0] > 0:
                waiting[0] -= 1
            if taken:
                assert current is None
                current = {"address": pending.pop(0), "taken": cycle}
            read = table[addr] if en else None
            await ctx.tick()
            cycle += 1
            assert cycle < 10_000, "the engine hung"

    sim.add_testbench(bench)
    sim.run()
    return log


@pytest.mark.parametrize("hw,layer,algo,flow", PLANS, ids=[p[2] for p in PLANS])
def test_engine_presents_the_compilers_settings(hw, layer, algo, flow):
    plan, limits = _plan(hw, layer, algo, flow)
    regs = datapath_registers(hw, limits)
    engine = ComputeEngine(regs)
    n = image_words(regs)
    invocations = plan.invocations[:4]      # the first band's and chunks' differ
    images = {0x40 + 7 * i: pack_image(inv.registers, regs)
              for i, inv in enumerate(invocations)}
    commands = list(images) + list(images)[:1]         # and the first one again
    log = _run(engine, images, commands, seed=len(regs))
    assert [e["address"] for e in log] == commands
    by_address = dict(zip(images, invocations))
    for entry in log:
        assert entry["settings"] == by_address[entry["address"]].registers
        assert entry["start"] - entry["taken"] == image_load_cycles(n)


def test_engine_back_to_back_without_idles():
    regs = (("x", 100), ("y", 100), ("z", 7))          # 207 bits: two image words
    engine = ComputeEngine(regs)
    rng = random.Random(5)
    values = [{"x": rng.getrandbits(100), "y": rng.getrandbits(100), "z": rng.getrandbits(7)}
              for _ in range(4)]
    images = {2 * i: pack_image(v, regs) for i, v in enumerate(values)}
    log = _run(engine, images, list(images), seed=1, done_delay=(0, 0), idle=0.0)
    assert [e["settings"] for e in log] == values
    for a, b in zip(log, log[1:]):
        assert b["taken"] == a["done"] + 1              # the next command the cycle after
    assert all(e["start"] - e["taken"] == image_load_cycles(2) for e in log)


def test_engine_rejects_bad_registers():
    with pytest.raises(ValueError, match=r"^registers must name at least one register"):
        ComputeEngine(())
    with pytest.raises(TypeError, match=r"^registers must be \(name, bits\) pairs"):
        ComputeEngine([("a",)])
    with pytest.raises(ValueError, match=r"^registers must be at least 1 bit wide"):
        ComputeEngine([("a", 0)])


def test_engine_lints_clean(tmp_path):
    from sim.runner import emit_verilog, lint_verilog

    hw, layer, algo, flow = PLANS[2]
    regs = datapath_registers(hw, DatapathLimits(**overlay_limits(hw)))
    violations, _ = lint_verilog(emit_verilog(ComputeEngine(regs), "compute_engine"),
                                 "compute_engine", work_dir=tmp_path)
    assert not violations, "\n".join(f"line {w.line}: %{w.rule}: {w.message}"
                                     for w in violations[:20])
