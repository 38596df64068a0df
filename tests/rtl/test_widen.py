"""rtl.widen.Packer and Unpacker in the Amaranth simulator: rows of random lengths, random
idles and back-pressure, the vectors checked against numpy chunks of the rows."""

import numpy as np
import pytest
from amaranth.hdl import signed

from rtl.widen import WIDEN_LATENCY, Packer, Unpacker
from sim.bench.amaranth_stream import run_stream


def _chunks(rows, lanes):
    """The vectors of each row, ``lanes`` elements each, the last of a row zero-filled."""
    out = []
    for row in rows:
        for c0 in range(0, len(row), lanes):
            part = list(row[c0:c0 + lanes])
            out.append(part + [0] * (lanes - len(part)))
    return out


@pytest.mark.parametrize("lanes, row_len", [(1, 3), (4, 4), (4, 5), (4, 3), (3, 7), (8, 1)])
@pytest.mark.parametrize("stalls", [0.0, 0.3])
def test_packer_chunks_rows(lanes, row_len, stalls):
    rng = np.random.default_rng(lanes * 10 + row_len)
    rows = rng.integers(-128, 128, (5, row_len))
    rows[0, 0], rows[-1, -1] = -128, 127
    dut = Packer(signed(8), lanes, 4)
    want = _chunks(rows.tolist(), lanes)
    got, cycles = run_stream(dut, rows.reshape(-1).tolist(), len(want),
                             config={"row_len": row_len}, idle=stalls, stall=stalls,
                             seed=lanes, decode=list)
    assert got == want
    if not stalls:
        # one element a cycle in, the last vector one cycle after its last element
        assert cycles == rows.size + WIDEN_LATENCY


@pytest.mark.parametrize("lanes, row_len", [(1, 3), (4, 4), (4, 5), (4, 3), (3, 7), (8, 1)])
@pytest.mark.parametrize("stalls", [0.0, 0.3])
def test_unpacker_drops_lanes_past_the_row(lanes, row_len, stalls):
    rng = np.random.default_rng(lanes * 7 + row_len)
    rows = rng.integers(-(1 << 31), 1 << 31, (4, row_len))
    beats = _chunks(rows.tolist(), lanes)
    for b in beats:                 # lanes past a row's end carry junk the unpacker drops
        for i in range(lanes):
            b[i] = b[i] or int(rng.integers(-5, 5))
    want = rows.reshape(-1).tolist()
    dut = Unpacker(signed(32), lanes, 4)
    got, cycles = run_stream(dut, beats, len(want), config={"row_len": row_len},
                             idle=stalls, stall=stalls, seed=lanes, decode=int)
    assert got == want
    if not stalls:
        # a vector a cycle is not needed: one element a cycle out, after one cycle
        assert cycles == len(want) + WIDEN_LATENCY


def test_widen_rejects_bad_params():
    with pytest.raises(ValueError, match=r"^lanes must be at least 1, not 0$"):
        Packer(signed(8), 0, 4)
    with pytest.raises(TypeError, match=r"^len_bits must be an integer, not 2.5$"):
        Unpacker(signed(8), 2, 2.5)
