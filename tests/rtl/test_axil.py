"""rtl.axil.AxiLiteRegisters in the Amaranth simulator: an AXI4-Lite master in the test with
random address/data order and delays, random BREADY/RREADY, against a dict model."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from rtl.axil import OKAY, SLVERR, AxiLiteRegisters

REGS = [("start", "pulse", 1), ("program", "rw", 40), ("status", "ro", 3),
        ("cycles", "ro", 32), ("mode", "rw", 5)]


def _run(dut, script, seed, inputs=None):
    """Run ``script`` (a list of ("w", addr, data, strb) / ("r", addr)) through an AXI-Lite
    master; returns [(kind, response, data)] and the cycles each ``pulse`` port was high."""
    rng = random.Random(seed)
    out, pulses = [], {n: [] for n, k, _, _ in dut.registers if k == "pulse"}
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def bench(ctx):
        for name, value in (inputs or {}).items():
            ctx.set(getattr(dut, name), value)
        cycle = 0

        async def tick():
            nonlocal cycle
            for name in pulses:
                if ctx.get(getattr(dut, name)):
                    pulses[name].append(cycle)
            await ctx.tick()
            cycle += 1

        for op in script:
            if op[0] == "w":
                _, addr, data, strb = op
                aw_at, w_at = rng.randint(0, 2), rng.randint(0, 2)
                aw_done = w_done = False
                t = 0
                while not (aw_done and w_done):
                    ctx.set(dut.s_axil_awvalid, not aw_done and t >= aw_at)
                    ctx.set(dut.s_axil_awaddr, addr)
                    ctx.set(dut.s_axil_wvalid, not w_done and t >= w_at)
                    ctx.set(dut.s_axil_wdata, data)
                    ctx.set(dut.s_axil_wstrb, strb)
                    aw_fire = ctx.get(dut.s_axil_awvalid) and ctx.get(dut.s_axil_awready)
                    w_fire = ctx.get(dut.s_axil_wvalid) and ctx.get(dut.s_axil_wready)
                    await tick()
                    aw_done, w_done, t = aw_done or aw_fire, w_done or w_fire, t + 1
                    assert t < 50, "write not accepted"
                ctx.set(dut.s_axil_awvalid, 0)
                ctx.set(dut.s_axil_wvalid, 0)
                while True:
                    ready = rng.random() < 0.6
                    ctx.set(dut.s_axil_bready, ready)
                    fire = ready and ctx.get(dut.s_axil_bvalid)
                    resp = ctx.get(dut.s_axil_bresp)
                    await tick()
                    if fire:
                        break
                ctx.set(dut.s_axil_bready, 0)
                out.append(("w", resp, None))
            else:
                _, addr = op
                ctx.set(dut.s_axil_arvalid, 1)
                ctx.set(dut.s_axil_araddr, addr)
                while not ctx.get(dut.s_axil_arready):
                    await tick()
                await tick()
                ctx.set(dut.s_axil_arvalid, 0)
                while True:
                    ready = rng.random() < 0.6
                    ctx.set(dut.s_axil_rready, ready)
                    fire = ready and ctx.get(dut.s_axil_rvalid)
                    resp, data = ctx.get(dut.s_axil_rresp), ctx.get(dut.s_axil_rdata)
                    await tick()
                    if fire:
                        break
                ctx.set(dut.s_axil_rready, 0)
                out.append(("r", resp, data))
            for _ in range(rng.randint(0, 2)):
                await tick()
        for _ in range(2):
            await tick()

    sim.add_testbench(bench)
    sim.run()
    return out, pulses


def test_registers_follow_a_model_under_random_traffic():
    dut = AxiLiteRegisters(REGS)
    assert [dut.offset(n) for n, _, _ in REGS] == [0, 4, 12, 16, 20]
    rng = random.Random(3)
    model = {"program": 0, "mode": 0}
    script, want = [], []
    for _ in range(60):
        word = rng.choice([4, 8, 20])
        name, shift, bits = {4: ("program", 0, 32), 8: ("program", 32, 8), 20: ("mode", 0, 5)}[word]
        if rng.random() < 0.5:
            data, strb = rng.getrandbits(32), rng.randint(0, 15)
            script.append(("w", word, data, strb))
            mask = sum(0xFF << (8 * i) for i in range(4) if strb >> i & 1)
            field = (model[name] >> shift) & ((1 << bits) - 1)
            field = (field & ~mask | data & mask) & ((1 << bits) - 1)
            model[name] = model[name] & ~(((1 << bits) - 1) << shift) | field << shift
            want.append(("w", OKAY, None))
        else:
            script.append(("r", word))
            want.append(("r", OKAY, (model[name] >> shift) & ((1 << bits) - 1)))
    got, _ = _run(dut, script, seed=1)
    assert got == want


def test_read_only_pulse_and_unmapped():
    dut = AxiLiteRegisters(REGS)
    script = [("r", 12), ("r", 16), ("w", 16, 0x1234, 0xF), ("r", 16),      # ro: write ignored
              ("w", 0, 1, 0x1), ("w", 0, 0, 0xF), ("w", 0, 3, 0x1), ("r", 0),  # two pulses
              ("w", 24, 5, 0xF), ("r", 28), ("w", 0x100, 1, 0xF),             # unmapped
              ("w", 21, 7, 0xF), ("r", 22), ("r", 20)]                         # unaligned
    got, pulses = _run(dut, script, seed=2, inputs={"status": 5, "cycles": 0xDEADBEEF})
    assert got == [("r", OKAY, 5), ("r", OKAY, 0xDEADBEEF), ("w", OKAY, None),
                   ("r", OKAY, 0xDEADBEEF), ("w", OKAY, None), ("w", OKAY, None),
                   ("w", OKAY, None), ("r", OKAY, 0), ("w", SLVERR, None),
                   ("r", SLVERR, 0), ("w", SLVERR, None),
                   ("w", SLVERR, None), ("r", SLVERR, 0), ("r", OKAY, 0)]
    assert len(pulses["start"]) == 2


@pytest.mark.parametrize("regs,match", [
    ([], r"^registers must name at least one register"),
    ([("a", "rw", 8), ("a", "ro", 8)], r"^registers must have distinct names"),
    ([("a", "wo", 8)], r"^register a kind must be one of rw, ro, pulse, not 'wo'$"),
    ([("a", "pulse", 2)], r"^register a must be 1 to 64 bits \(a pulse 1\), not 2$"),
    ([("s_axil_x", "rw", 8)], r"^register names must be identifiers not starting with s_axil_"),
])
def test_rejects_bad_registers(regs, match):
    with pytest.raises(ValueError, match=match):
        AxiLiteRegisters(regs)


def test_lints_clean(tmp_path):
    from sim.runner import emit_verilog, lint_verilog

    violations, _ = lint_verilog(emit_verilog(AxiLiteRegisters(REGS), "axil_regs"), "axil_regs",
                                 work_dir=tmp_path)
    assert not violations, "\n".join(f"line {w.line}: %{w.rule}: {w.message}"
                                     for w in violations[:20])
