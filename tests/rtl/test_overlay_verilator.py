"""The overlay top in Verilator with the DRAM model in RTL (``sim/overlay_sim.py``): no Python
runs per cycle.  The layers of ``test_overlay_top`` (planned by the compiler, programs and
DRAM images by ``dse.compiler.program``) run from the DRAM model; the output read back equals the
golden convolution bit for bit, and the top's ``cycles`` equal the model
(``dse.compiler.timing.top_cycles``), as in the Amaranth-simulator tests:
the DRAM model with no latency is the ideal memory the model assumes, as
``sim/bench/axi_memory.py``'s is.  A read latency and random back-pressure change the cycles,
never the outputs."""

from __future__ import annotations

import numpy as np
import pytest

from dse.compiler import plan_conv
from dse.compiler.program import build_layer_program, decode_output
from dse.compiler.timing import top_cycles
from rtl.controller import ErrorCode
from rtl.isa import INSTRUCTION_BYTES
from rtl.overlay_top import OverlayTop
from sim.overlay_sim import build_overlay_sim, run_overlay_sim

from test_overlay_top import CASES, HW, TOKEN_DEPTH, _golden, _layer_data

pytestmark = pytest.mark.verilator

#: DRAM model words (16 bytes each): 1 MiB, plenty for these layers.
MEM_WORDS = 1 << 16


def _program(algo, flow, layer, limits, seed=1):
    plan = plan_conv(layer, algo, flow, HW, limits)
    x, w = _layer_data(layer, seed)
    lp = build_layer_program(plan, x, w, HW, limits, base=0, token_depth=TOKEN_DEPTH)
    return plan, x, w, lp


@pytest.fixture(scope="module")
def sims():
    """One build per limits object (the datapath's buffer sizes differ)."""
    built = {}

    def get(limits):
        """The simulation."""
        if limits not in built:
            top = OverlayTop(HW, limits, token_depth=TOKEN_DEPTH)
            built[limits] = build_overlay_sim(top, mem_words=MEM_WORDS)
        return built[limits]
    return get


@pytest.mark.parametrize("algo,flow,layer,limits", [
    # the banded case's limits are its own Verilator build (about 25 s): make regress
    pytest.param(*CASES[0], marks=pytest.mark.regress), *CASES[1:]],
    ids=["im2col-ws-3x3-bands", "kn2row-os-3x3", "im2col-ws-1x1"])
def test_layer_in_verilator(sims, algo, flow, layer, limits):
    plan, x, w, lp = _program(algo, flow, layer, limits)
    sim = sims(limits)
    r = run_overlay_sim(sim, lp.image, program=lp.program_addr)
    assert r.ok and not r.error, (r.error_code, r.error_index)
    out = decode_output(lp, r.memory[:len(lp.image)], 0)
    gold = _golden(plan, layer, x, w)
    assert np.array_equal(out, gold), f"{(out != gold).sum()} outputs differ"
    model = top_cycles(lp, HW)
    assert r.cycles == model, (r.cycles, model)
    # with latency and back-pressure in the DRAM model: other cycles, the same outputs
    slow = run_overlay_sim(sim, lp.image, program=lp.program_addr, latency=5, stall=64)
    assert slow.ok and slow.cycles > r.cycles
    assert np.array_equal(decode_output(lp, slow.memory[:len(lp.image)], 0), gold)


def test_illegal_word_stops_in_verilator(sims):
    algo, flow, layer, limits = CASES[2]
    _, _, _, lp = _program(algo, flow, layer, limits)
    image = bytearray(lp.image)
    at = lp.program_addr + 3 * INSTRUCTION_BYTES
    image[at:at + INSTRUCTION_BYTES] = bytes(INSTRUCTION_BYTES)      # opcode 0: illegal
    r = run_overlay_sim(sims(limits), bytes(image), program=lp.program_addr,
                        timeout_cycles=200_000)
    assert r.error and not r.ok
    assert r.error_code == ErrorCode.OPCODE.value and r.error_index == 3
    assert r.wall_cycles < 200_000                                     # stopped, no hang
