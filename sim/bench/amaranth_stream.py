"""Drive one stream unit in Amaranth's simulator with random idles and back-pressure.

The Amaranth-simulator counterpart of :mod:`sim.bench.streams` (cocotb): the unit tests of the
algorithm units (``tests/rtl``) run their component through :func:`run_stream` and compare
the words with the golden model and the cycles with ``dse.cost.transforms``.
"""

from __future__ import annotations

import random

from amaranth.sim import Simulator

__all__ = ["run_stream", "take_words"]


async def take_words(ctx, strm, got, want, rng, *, stall=0.0, decode=list, marks,
                     cycle=0, timeout=500_000):
    """Take words of ``strm`` into ``got`` until it holds ``want``, with ``ready`` low on
    each cycle with probability ``stall`` (from ``rng``).  ``cycle`` counts the ticks;
    ``marks["last"]`` is set to the cycle of each word taken.  Returns the next cycle."""
    while len(got) < want:
        ctx.set(strm.ready, 0 if rng.random() < stall else 1)
        _, _, v, r, p = await ctx.tick().sample(strm.valid, strm.ready, strm.payload)
        if v and r:
            got.append(decode(p))
            marks["last"] = cycle
        cycle += 1
        assert cycle < timeout, f"only {len(got)} of {want} words in {timeout} cycles"
    return cycle


def run_stream(dut, inputs, n_out, *, config=None, start=False, idle=0.0, stall=0.0, seed=0,
               decode=list, timeout=500_000, before=None):
    """Drive ``inputs`` into ``dut.i_stream`` and collect ``n_out`` words of ``dut.o_stream``.

    Parameters
    ----------
    dut:
        A component with an ``o_stream`` source and, when ``inputs`` is non-empty, an
        ``i_stream`` sink.
    inputs:
        Payloads to send, in order (anything ``ctx.set`` accepts for the payload shape).
    n_out:
        Number of output words to collect.
    config:
        ``{port name: value}`` set before the first transfer (geometry, modes).
    start:
        Pulse ``dut.start`` for one cycle first; cycles then count from that pulse.
    idle, stall:
        Probabilities of a source idle cycle and of a sink back-pressure cycle; both streams
        are seeded from ``seed`` so a failure replays exactly.
    decode:
        Applied to each output payload view (e.g. ``list`` for arrays, or a lambda for
        structs).
    timeout:
        Cycles after which the sink gives up (an assertion naming how far it got).
    before:
        An async function of the simulator context, awaited after ``config`` is set and
        before anything else (e.g. to fill a memory through a write port); it returns the
        number of clock ticks it awaited.

    Returns
    -------
    ``(outputs, cycles)`` with cycles counted from the first input transfer (or the ``start``
    pulse) through the last output transfer, inclusive — the convention of
    ``dse/cost/transforms.py``.
    """
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    got, marks = [], {}

    async def source(ctx):
        for name, value in (config or {}).items():
            ctx.set(getattr(dut, name), value)
        k = 0
        if before is not None:
            k = await before(ctx)
        if start:
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            marks["first"], k = k, k + 1
        rng, i, pending = random.Random(seed), 0, False
        while i < len(inputs):
            s = dut.i_stream
            # a valid beat must stay valid until taken ("valid must not wait for ready")
            if pending or rng.random() >= idle:
                ctx.set(s.payload, inputs[i])
                ctx.set(s.valid, 1)
            else:
                ctx.set(s.valid, 0)
            _, _, v, r = await ctx.tick().sample(s.valid, s.ready)
            pending = bool(v and not r)
            if v and r:
                marks.setdefault("first", k)
                i += 1
            k += 1
        if len(inputs):
            ctx.set(dut.i_stream.valid, 0)

    async def sink(ctx):
        await take_words(ctx, dut.o_stream, got, n_out, random.Random(seed + 1), stall=stall,
                         decode=decode, marks=marks, timeout=timeout)

    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    return got, marks["last"] - marks["first"] + 1
