"""rtl/requant_channels.py: per-channel requantisation from the quant buffer, bit-exact.

Entries are written through the load engine's port (one 16-byte entry a write, at
``word · quant_lanes + lane``) into both halves; words of accumulators then stream through
with random idle and stall cycles, each lane requantised with the entry of its channel
(``(word mod chunks) · lanes + lane``) of the half ``bank`` names, against
``sim.models.qdq.requantize_exact`` with the bias added in int32.
"""

from __future__ import annotations

import numpy as np
import pytest

from dse.cost.transforms import CHANNEL_REQUANT_LATENCY
from rtl.params import pack_quant_entries, quant_lanes
from rtl.requant_channels import ChannelRequant
from sim.bench.amaranth_stream import run_stream
from sim.models.qdq import requantize_exact, scale_parts


def _entries(rng, n):
    scale = np.float32(10.0 ** rng.uniform(-5, -2, n))
    m, e = scale_parts(scale)
    bias = rng.integers(-(1 << 20), 1 << 20, n)
    bias[0] = (1 << 31) - 1                      # the int32 sum wraps, as onnxruntime's
    zp = rng.integers(-128, 128, n)
    return bias, m, e, zp


def _run(lanes, chunk_words, chunks, bank, words, seed, idle=0.3, stall=0.3):
    rng = np.random.default_rng(seed)
    slots = quant_lanes(lanes)
    halves = [_entries(rng, chunk_words * lanes) for _ in range(2)]
    writes = []
    for half, (bias, m, e, zp) in enumerate(halves):
        image = pack_quant_entries(bias, m, e, zp)
        for ch in range(chunk_words * lanes):
            word, lane = divmod(ch, lanes)
            addr = (half * chunk_words + word) * slots + lane
            writes.append((addr, int.from_bytes(image[ch].tobytes(), "little")))
    rng.shuffle(writes)
    acc = rng.integers(-(1 << 24), 1 << 24, (words, lanes))
    acc[:4] = [[-(1 << 31)] * lanes, [(1 << 31) - 1] * lanes, [0] * lanes, [-1] * lanes]
    dut = ChannelRequant(lanes, chunk_words)

    async def load(ctx):
        ctx.set(dut.restart, 1)
        for addr, value in writes:
            ctx.set(dut.qw_addr, addr)
            ctx.set(dut.qw_data, value)
            ctx.set(dut.qw_en, 1)
            await ctx.tick()
        ctx.set(dut.qw_en, 0)
        ctx.set(dut.restart, 0)
        return len(writes)

    got, cycles = run_stream(dut, acc.tolist(), words, config={"chunks": chunks, "bank": bank},
                             idle=idle, stall=stall, seed=seed, before=load)
    bias, m, e, zp = halves[bank]
    ch = (np.arange(words)[:, None] % chunks) * lanes + np.arange(lanes)[None, :]
    total = (acc + bias[ch] + (1 << 31)) % (1 << 32) - (1 << 31)
    want = requantize_exact(total, m[ch], e[ch], zp[ch], np.int8)
    return np.asarray(got), want, cycles


@pytest.mark.parametrize("lanes, chunk_words, chunks, bank", [
    (3, 4, 3, 0), (3, 4, 4, 1), (4, 2, 1, 1), (1, 5, 5, 0), (8, 3, 2, 1)])
def test_channel_requant_bit_exact(lanes, chunk_words, chunks, bank):
    got, want, _ = _run(lanes, chunk_words, chunks, bank, 40, seed=lanes * 10 + chunks)
    np.testing.assert_array_equal(got, want)


def test_channel_requant_cycles():
    _, _, cycles = _run(4, 2, 2, 0, 25, seed=3, idle=0, stall=0)
    assert cycles == 25 + CHANNEL_REQUANT_LATENCY


def test_datapath_with_channel_requant_lints_clean(tmp_path):
    """A 4×4 conv datapath with the per-channel requantiser (``requant`` f32): Verilator
    ``-Wall`` with the documented waivers finds nothing (no per-layer settings left unused,
    every bit of the quant-buffer port read)."""
    from rtl.conv_datapath import generate_verilog
    from rtl.params import DatapathLimits, OverlayParams
    from sim.runner import lint_verilog

    params = OverlayParams(rows=4, cols=4, requant="f32")
    limits = DatapathLimits(max_m=16, max_k=36, max_n=8, feature_words=64, weight_words=64,
                            out_words=32, max_gemms=9, tile_words=2, spectral_words=2)
    violations, _ = lint_verilog(generate_verilog(params, limits), "overlay",
                                 work_dir=tmp_path)
    assert not violations, "\n".join(str(v) for v in violations)
