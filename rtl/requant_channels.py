"""Per-channel requantiser: each output channel's bias, float32 scale and zero point.

What quantised (QDQ) networks need (``OverlayParams.requant`` = ``f32``): onnxruntime's
QLinearConv adds an int32 bias per output channel to the accumulator, multiplies by a
float32 scale per channel and adds the output's zero point.  The datapath's output words
hold ``lanes`` channels of one output pixel, ``chunks`` words a pixel, pixel-major
(docs/rtl.md, "Output stores"), so word ``w``'s lane ``j`` is channel ``(w mod chunks) ·
lanes + j`` of the invocation's filters.  Each channel's entry (``rtl.params.
QUANT_ENTRY_FIELDS``: bias, mantissa, exponent, zero point) sits in the **quant buffer**,
one memory per lane, ``2 · chunk_words`` deep: two halves, as the other buffers, so the
next invocation's entries load while this one runs (``bank``).

The load engine writes the buffer one entry per word (``qw_*``, the 16-byte table format):
address ``a`` is lane ``a mod quant_lanes(lanes)`` of quant word ``a div quant_lanes``
(``rtl.params.quant_lanes``: a power of two, so the split is bits).

Pipeline: one register in front of :class:`rtl.requant_f32.RequantF32` (``per_word``) --
the accumulators wait there while the buffer reads their word's entries -- so a word takes
``1 + REQUANT_F32_LATENCY`` cycles through (``dse.cost.transforms.CHANNEL_REQUANT_LATENCY``);
one word a cycle with a ready sink; back-pressure stalls it without losing words.  The bias
is added in that register's output (two's complement, 32 bits: onnxruntime's int32 sum).
Outputs are int8 in the stored form (``signed_out``): the compiler gives a uint8 model's
zero point less 128.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .params import QUANT_ENTRY_BITS, QUANT_ENTRY_FIELDS, quant_lanes
from .requant_f32 import ACC_WIDTH, EXPONENT_WIDTH, MANTISSA_BITS, RequantF32
from .validate import check_int

__all__ = ["ChannelRequant"]

#: One entry as the lane memories hold it (the fields the requantiser takes).
ENTRY = data.StructLayout({"bias": signed(ACC_WIDTH), "mantissa": unsigned(MANTISSA_BITS),
                           "exponent": signed(EXPONENT_WIDTH), "zero_point": signed(8)})


class ChannelRequant(wiring.Component):
    """Requantise words of ``lanes`` accumulators with their channels' entries.

    Parameters
    ----------
    lanes:
        Accumulators (channels) per word.
    chunk_words:
        Quant words of one half: the most output words a pixel (⌈max_n / lanes⌉).
    in_width:
        Signed width of the accumulators in (the low 32 bits are taken).

    Attributes
    ----------
    i_stream, o_stream:
        Words of accumulators in, of int8 values out.
    chunks:
        Output words a pixel of the running invocation (1 to ``chunk_words``).
    bank:
        Which half the running invocation reads.
    restart:
        A pulse before an invocation's first word: its word count starts at 0.
    qw_addr, qw_data, qw_en:
        The load engine's write of one entry (its ``QUANT_ENTRY_BITS`` low bits).
    """

    def __init__(self, lanes: int, chunk_words: int, in_width: int = ACC_WIDTH):
        check_int(self, "lanes", lanes, 1)
        check_int(self, "chunk_words", chunk_words, 1)
        check_int(self, "in_width", in_width, 2)
        self.lanes, self.chunk_words, self.in_width = lanes, chunk_words, in_width
        self.slots = quant_lanes(lanes)
        #: Entries the buffer's address space spans (both halves, slots padded to 2^k).
        self.entries = 2 * chunk_words * self.slots
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(signed(in_width), lanes))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(signed(8), lanes))),
            "chunks": In(range(chunk_words + 1)),
            "bank": In(1),
            "restart": In(1),
            "qw_addr": In(range(self.entries)),
            "qw_data": In(unsigned(QUANT_ENTRY_BITS)),
            "qw_en": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.lanes
        m.submodules.rq = rq = RequantF32(n, signed_out=True, per_word=True)
        m.d.comb += [self.o_stream.valid.eq(rq.o_stream.valid),
                     self.o_stream.payload.eq(rq.o_stream.payload),
                     rq.o_stream.ready.eq(self.o_stream.ready)]

        # the entry fields out of the loaded bytes
        entry = Signal(ENTRY)
        for name, first, bits, _ in QUANT_ENTRY_FIELDS:
            m.d.comb += getattr(entry, name).eq(self.qw_data[first: first + bits])
        slot_bits = (self.slots - 1).bit_length()
        w_lane = self.qw_addr[:slot_bits] if slot_bits else 0
        w_word = self.qw_addr[slot_bits:]

        # the register in front of the requantiser, and the read of its word's entries
        valid = Signal()
        acc = Signal.like(self.i_stream.payload)
        advance = ~valid | rq.i_stream.ready
        chunk = Signal(range(self.chunk_words))
        fire = self.i_stream.valid & self.i_stream.ready
        m.d.comb += self.i_stream.ready.eq(advance)
        with m.If(self.restart):
            m.d.sync += chunk.eq(0)
        with m.Elif(fire):
            m.d.sync += chunk.eq(Mux(chunk + 1 >= self.chunks, 0, chunk + 1))
        with m.If(advance):
            m.d.sync += [valid.eq(self.i_stream.valid), acc.eq(self.i_stream.payload)]
        read_addr = chunk + Mux(self.bank, self.chunk_words, 0)
        m.d.comb += [rq.i_stream.valid.eq(valid)]
        for lane in range(n):
            mem = Memory(shape=ENTRY, depth=2 * self.chunk_words, init=[])
            m.submodules[f"quant{lane}"] = mem
            wp, rp = mem.write_port(), mem.read_port()
            m.d.comb += [wp.addr.eq(w_word), wp.data.eq(entry),
                         wp.en.eq(self.qw_en & (w_lane == lane)),
                         rp.addr.eq(read_addr), rp.en.eq(advance)]
            got = ENTRY(rp.data)
            m.d.comb += [
                rq.i_stream.payload.acc[lane].eq((acc[lane] + got.bias)[:ACC_WIDTH]),
                rq.i_stream.payload.mantissa[lane].eq(got.mantissa),
                rq.i_stream.payload.exponent[lane].eq(got.exponent),
                rq.i_stream.payload.zero_point[lane].eq(got.zero_point),
            ]
        return m
