"""Width adapters between one-element streams and array-edge vector streams.

The GEMM engine's streams are vectors (one array-edge vector per beat); a unit that still
moves one element per cycle meets them through one of these:

* :class:`Packer` gathers consecutive elements of a row into vectors of ``lanes`` elements
  (the last vector of a row zero-filled), e.g. a K-chunk of A from a front that delivers
  A row-major one element per cycle;
* :class:`Unpacker` spreads vectors back into elements, dropping the lanes past the end of
  each row, e.g. N-chunks of C for a back that takes one accumulator per cycle.

``row_len`` (elements per row) is a run-time setting, held while a stream is running.  Both
move one element per cycle without a bubble; a vector leaves the packer one cycle after its
last element, and the unpacker's first element one cycle after its vector
(:data:`WIDEN_LATENCY`).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .validate import check_int

__all__ = ["Packer", "Unpacker", "WIDEN_LATENCY"]

#: Cycles a vector spends in a packer after its last element (and an unpacker's first element
#: after its vector).
WIDEN_LATENCY = 1


class _Widen(wiring.Component):
    """The ports both adapters share: ``row_len`` and the two streams."""

    def __init__(self, shape, lanes: int, len_bits: int, wide_in: bool):
        check_int(self, "lanes", lanes, 1)
        check_int(self, "len_bits", len_bits, 1)
        self._shape, self._lanes = shape, lanes
        vector = data.ArrayLayout(shape, lanes)
        super().__init__({
            "row_len": In(unsigned(len_bits)),
            "i_stream": In(stream.Signature(vector if wide_in else shape)),
            "o_stream": Out(stream.Signature(shape if wide_in else vector)),
        })


class Packer(_Widen):
    """Elements in, vectors of ``lanes`` consecutive elements of a row out.

    Parameters
    ----------
    shape:
        Element shape.
    lanes:
        Elements per vector.
    len_bits:
        Width of ``row_len``.

    Members
    -------
    row_len : In(len_bits)
        Elements per row (at least 1); a row ends a vector even when it is not full.
    i_stream : In(stream.Signature(shape))
    o_stream : Out(stream.Signature(ArrayLayout(shape, lanes)))
    """

    def __init__(self, shape, lanes: int, len_bits: int):
        super().__init__(shape, lanes, len_bits, wide_in=False)

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes
        buf = Signal(data.ArrayLayout(self._shape, lanes))   # lanes above pos are zero
        pos = Signal(range(lanes))
        k = Signal.like(self.row_len)                        # element index in the row
        out = Signal.like(buf)
        out_valid = Signal()
        completing = (pos == lanes - 1) | (k == self.row_len - 1)
        take_in = self.i_stream.valid & self.i_stream.ready
        m.d.comb += [
            self.i_stream.ready.eq(~completing | ~out_valid | self.o_stream.ready),
            self.o_stream.valid.eq(out_valid),
            self.o_stream.payload.eq(out),
        ]
        with m.If(self.o_stream.valid & self.o_stream.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(take_in):
            m.d.sync += k.eq(k + 1)
            with m.If(k == self.row_len - 1):
                m.d.sync += k.eq(0)
            with m.If(completing):
                full = Signal.like(buf)
                m.d.comb += full.eq(buf)
                for lane in range(lanes):
                    with m.If(pos == lane):
                        m.d.comb += full[lane].eq(self.i_stream.payload)
                m.d.sync += [out.eq(full), out_valid.eq(1), buf.eq(0), pos.eq(0)]
            with m.Else():
                for lane in range(lanes):
                    with m.If(pos == lane):
                        m.d.sync += buf[lane].eq(self.i_stream.payload)
                m.d.sync += pos.eq(pos + 1)
        return m


class Unpacker(_Widen):
    """Vectors of ``lanes`` elements in, their elements out, in lane order, one per cycle;
    the lanes past the end of a row of ``row_len`` elements are dropped.

    Parameters and members as :class:`Packer`, with the streams' shapes swapped.
    """

    def __init__(self, shape, lanes: int, len_bits: int):
        super().__init__(shape, lanes, len_bits, wide_in=True)

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes
        cur = Signal(data.ArrayLayout(self._shape, lanes))
        have = Signal()
        c = Signal(range(lanes))
        e = Signal.like(self.row_len)                        # element index in the row
        last = (c == lanes - 1) | (e == self.row_len - 1)
        take_out = self.o_stream.valid & self.o_stream.ready
        m.d.comb += [
            self.o_stream.valid.eq(have),
            self.o_stream.payload.eq(cur[c]),
            self.i_stream.ready.eq(~have | (take_out & last)),
        ]
        with m.If(take_out):
            m.d.sync += [c.eq(c + 1), e.eq(e + 1)]
            with m.If(e == self.row_len - 1):
                m.d.sync += e.eq(0)
            with m.If(last):
                m.d.sync += [c.eq(0), have.eq(0)]
        with m.If(self.i_stream.valid & self.i_stream.ready):
            m.d.sync += [cur.eq(self.i_stream.payload), have.eq(1), c.eq(0)]
        return m
