"""cocotb side of the stream-driver loopback test (launched by test_stream_loopback.py).

The DUT is a stream FIFO (``i`` in, ``o`` out, 3 x int8 array payload).  For each case in the
job (``OMNICONV_TB_JOB``: JSON with ``cases`` and ``out``), it resets the FIFO, pushes the
case's beats through a :class:`StreamSource` with random idles into a :class:`StreamSink` with
random back-pressure, and records what came out and how many cycles it took.  It checks
nothing itself: the pytest side scores the recorded beats against what was sent.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from sim.bench.streams import ArrayCodec, StreamSink, StreamSource

__all__ = ["loopback"]


@cocotb.test()
async def loopback(dut):
    """Send every case's beats through the FIFO and record what arrives."""
    with open(os.environ["OMNICONV_TB_JOB"]) as f:
        job = json.load(f)
    codec = ArrayCodec(job["width"], job["count"], signed=True)
    Clock(dut.clk, 10, unit="ns").start()
    results = {}
    for case in job["cases"]:
        await FallingEdge(dut.clk)
        dut.rst.value = 1
        dut.i__valid.value = 0
        dut.o__ready.value = 0
        await ClockCycles(dut.clk, 2, rising=False)
        dut.rst.value = 0
        src = StreamSource(dut, "i", dut.clk, encode=codec.encode,
                           idle_prob=case["idle_prob"], seed=case["seed"])
        sink = StreamSink(dut, "o", dut.clk, decode=codec.decode,
                          backpressure_prob=case["backpressure_prob"], seed=case["seed"] + 1)
        beats = [tuple(b) for b in case["beats"]]
        src.put(beats)
        cycles = 0
        timeout = 50 * len(beats) + 100
        while len(sink.items) < len(beats) and cycles < timeout:
            await FallingEdge(dut.clk)
            cycles += 1
        # Keep draining a while: a duplicating FIFO or driver would show extra beats here.
        await ClockCycles(dut.clk, 20, rising=False)
        src.stop()
        sink.stop()
        results[case["name"]] = {"received": [list(b) for b in sink.items],
                                 "sent": src.sent, "cycles": cycles}
    with open(job["out"], "w") as f:
        json.dump(results, f)
