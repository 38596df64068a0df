"""The cocotb testbench layer's own test: a stream FIFO loopback on Verilator.

A ``SyncFIFOBuffered`` wrapped as a component with stream ports ``i`` and ``o`` is built once
(cached) and driven by :class:`sim.bench.streams.StreamSource`/``StreamSink`` with and without
random idles and back-pressure.  Whatever goes in must come out once, in order: this is what
proves the drivers sample the handshake at the right moment.  Also checks the payload codec
against Amaranth's own layout packing, the build cache's reuse and the scoreboard messages.
"""

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from sim.bench.scoreboard import ScoreboardMismatch, assert_matrix_equal, assert_stream_equal
from sim.bench.streams import ArrayCodec, IntCodec
from sim.runner import REPO_ROOT, build_component, run_cocotb

HERE = Path(__file__).resolve().parent
LAYOUT = data.ArrayLayout(signed(8), 3)


class StreamFifo(wiring.Component):
    """A 4-deep stream FIFO: the smallest DUT with real back-pressure."""

    i: In(stream.Signature(LAYOUT))
    o: Out(stream.Signature(LAYOUT))

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = q = fifo.SyncFIFOBuffered(width=LAYOUT.size, depth=4)
        m.d.comb += [
            q.w_data.eq(self.i.payload),
            q.w_en.eq(self.i.valid),
            self.i.ready.eq(q.w_rdy),
            self.o.payload.eq(q.r_data),
            self.o.valid.eq(q.r_rdy),
            q.r_en.eq(self.o.ready),
        ]
        return m


# name, source idle probability, sink back-pressure probability
STALLS = [("none", 0.0, 0.0), ("idle", 0.5, 0.0), ("backpressure", 0.0, 0.6),
          ("both", 0.4, 0.4)]
BEATS = 300


def _beats(seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    extremes = [[-128, 127, 0], [127, -128, -1], [0, 0, 0]]
    return extremes + [[rng.randint(-128, 127) for _ in range(3)] for _ in range(BEATS - 3)]


def run_loopback():
    """Run every stall case through the FIFO in one simulation; return (build, results)."""
    build = build_component(StreamFifo(), "stream_fifo")
    test_dir = REPO_ROOT / "build" / "sim" / "stream_loopback"
    test_dir.mkdir(parents=True, exist_ok=True)
    cases = [{"name": name, "idle_prob": idle, "backpressure_prob": bp, "seed": 100 + n,
              "beats": _beats(100 + n)} for n, (name, idle, bp) in enumerate(STALLS)]
    job = {"width": 8, "count": 3, "cases": cases, "out": str(test_dir / "out.json")}
    (test_dir / "job.json").write_text(json.dumps(job))
    run_cocotb(build, "tb_stream_loopback", test_dir=test_dir, module_dir=HERE,
               extra_env={"OMNICONV_TB_JOB": str(test_dir / "job.json")})
    results = json.loads((test_dir / "out.json").read_text())
    return build, [(c, results[c["name"]]) for c in cases]


# One test for the whole batch (not a module fixture shared by several tests): under
# pytest -n 2 each worker would otherwise run the simulation again.
@pytest.mark.verilator
def test_loopback_under_stalls():
    build, results = run_loopback()
    for case, got in results:
        stall = case["name"]
        assert_stream_equal([tuple(b) for b in got["received"]],
                            [tuple(b) for b in case["beats"]],
                            name="o", context=f"stalls={stall}, seed={case['seed']}")
        assert got["sent"] == BEATS, stall
        if stall == "none":
            # One beat per cycle once the FIFO has filled: the drivers add no bubbles.
            assert got["cycles"] <= BEATS + 4, got["cycles"]
        else:
            # The stalls really happened (idle or back-pressure with p >= 0.4 costs far more
            # than 20 % of the beats in extra cycles).
            assert got["cycles"] > 1.2 * BEATS, (stall, got["cycles"])
    # The build is in the cache now: asking again is a lookup, not a build (5-60 s).
    again = build_component(StreamFifo(), "stream_fifo")
    assert again.reused and again.key == build.key
    assert again.lookup_seconds < 5.0
    assert (again.build_dir / "stream_fifo").is_file()


def test_array_codec_matches_amaranth_layout():
    codec = ArrayCodec.from_layout(LAYOUT)
    rng = random.Random(7)
    for values in [[-128, 127, 0], [-1, -1, -1]] + [[rng.randint(-128, 127) for _ in range(3)]
                                                    for _ in range(50)]:
        raw = LAYOUT.const(values).as_bits()
        assert codec.encode(values) == raw
        assert codec.decode(raw) == tuple(values)


def test_int_codec_signed_and_unsigned():
    assert IntCodec(8, signed=True).decode(0xFF) == -1
    assert IntCodec(8, signed=False).decode(0xFF) == 255
    assert IntCodec(8, signed=True).encode(-128) == 0x80
    with pytest.raises(ValueError, match=r"^width must be at least 1, not 0$"):
        IntCodec(0)
    with pytest.raises(TypeError, match=r"^width must be an integer, not 'x'$"):
        IntCodec("x")


def test_scoreboard_reports_lost_duplicated_and_wrong_beats():
    with pytest.raises(ScoreboardMismatch, match=r"2 beats missing at the end \(lost\)"):
        assert_stream_equal([1, 2], [1, 2, 3, 4])
    with pytest.raises(ScoreboardMismatch, match=r"1 extra beats \(duplicated or invented\)"):
        assert_stream_equal([1, 2, 2], [1, 2])
    with pytest.raises(ScoreboardMismatch, match=r"beat 1: got 5, expected 2"):
        assert_stream_equal([1, 5, 3], [1, 2, 3])
    assert_stream_equal([(1, 2)], [(1, 2)])


def test_scoreboard_matrix_report():
    golden = np.arange(12).reshape(3, 4)
    bad = golden.copy()
    bad[1, 2] += 3
    bad[2, 3] = -7
    with pytest.raises(ScoreboardMismatch) as err:
        assert_matrix_equal(bad, golden, name="C", context="ws 3x4")
    msg = str(err.value)
    assert msg.startswith("C (ws 3x4): 2 of 12 entries differ from the golden")
    assert "C[1, 2]: got 9, expected 6 (difference 3)" in msg
    assert re.search(r"rows with errors: 1-2; columns: 2-3", msg)
    with pytest.raises(ScoreboardMismatch, match=r"shape \(2, 2\) differs from the golden"):
        assert_matrix_equal(np.zeros((2, 2)), np.zeros((2, 3)))
    assert_matrix_equal(golden, golden.copy())
