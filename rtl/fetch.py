"""Instruction fetch of the overlay: the program image from DRAM to the controller.

:class:`InstructionFetch` reads the program, a little-endian array of 128-bit instruction
words (:data:`rtl.isa.INSTRUCTION_BITS`) at a 16-byte-aligned DRAM address, through an AXI4
read channel, and delivers the words in order on a stream that feeds
:class:`rtl.controller.Controller`'s ``i_stream``.  It cannot know the program's length (the
program ends at its ``finish``, which only the controller decodes), so it prefetches until
``stop``, bounded by a credit of ``prefetch_words``:

* **Credit.** A burst is issued only when the program words it carries, added to the words
  already requested and not yet taken by the consumer, come to at most ``prefetch_words``.
  So at every cycle, and therefore after ``stop``, the program words read beyond the words
  taken never exceed ``prefetch_words`` (the burst in flight included: its words are counted
  when its address is issued).  The prefetch buffer is sized for that credit, so the unit
  always accepts R beats (``m_axi_rready`` stays high) and never holds up a shared read
  channel.
* **Bursts.** INCR bursts of :attr:`InstructionFetch.burst_beats` beats (half the credit in
  beats, a power of two, at most 256 beats and 4 KiB), each ending at a multiple of its own
  size; only the first is shorter when ``base`` is not aligned to it.  A burst therefore
  never crosses a 4 KiB boundary, and the credit holds at least two bursts, so that one can
  be in flight while the words of another are taken.
* **Stop.** After ``stop`` no address is issued; an address already on offer stays until it
  is taken (AXI4 forbids withdrawing it), and every beat of the bursts issued is received and
  discarded.  ``busy`` drops once no burst is outstanding, so the channel is left idle.

A read response that is not OKAY stops the unit like ``stop`` and sets ``error``; an
unaligned ``base`` sets ``error`` at once and reads nothing.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from rtl.dma import AXI_BURST_INCR, axi_read_master
from rtl.isa import DRAM_ADDR_BITS, INSTRUCTION_BITS, INSTRUCTION_BYTES, FetchGeometry
from rtl.params import BUS_BITS, COUNTER_BITS

from .validate import rejecting

__all__ = ["InstructionFetch"]

#: log2 of the instruction bytes: the low address bits that must be zero in ``base``.
_WORD_SHIFT = INSTRUCTION_BYTES.bit_length() - 1


class InstructionFetch(wiring.Component):
    """Prefetch the program's instruction words from DRAM and deliver them in order.

    After ``start`` (taken while ``busy`` is low) the unit reads the 128-bit words from
    ``base`` upwards, little-endian, and offers them on ``o_stream`` one a cycle at most, in
    address order, until ``stop``.  On a 64-bit bus two beats make a word (the first beat
    the low half); on a 256- or 512-bit bus one beat carries 2 or 4 words, the lowest address
    first, and the words of the first beat below ``base`` are skipped.  See the module
    docstring for the credit, the bursts and the drain after ``stop``.

    Parameters
    ----------
    bus_bits:
        AXI4 data width in bits, 64, 128, 256 or 512.
    prefetch_words:
        Most program words read beyond the words the consumer has taken, in flight or
        buffered: an integer of at least the words of one beat (1, or 2 and 4 on a 256- and
        a 512-bit bus).

    Members
    -------
    start : In(1)
        Fetch a program from ``base``; taken only while ``busy`` is low.  Clears ``error``
        and the counters.
    base : In(DRAM_ADDR_BITS)
        DRAM byte address of the program's first word, sampled with ``start``.  It must be a
        multiple of 16; otherwise ``error`` rises in the next cycle and nothing is read.
    stop : In(1)
        End the fetch: sampled while ``busy`` is high (the top drives it from the
        controller's ``done`` and ``error``).  No word is offered from the next cycle on.
    o_stream : Out(stream.Signature(INSTRUCTION_BITS))
        The program's words, in order.
    busy : Out(1)
        A fetch is running or draining: high from the cycle after ``start`` until no burst
        is outstanding after ``stop`` (or after an error response).
    error : Out(1)
        The last fetch was refused (unaligned ``base``) or got a read response other than
        OKAY; sticky until the next ``start``.
    words : Out(COUNTER_BITS)
        Words transferred on ``o_stream`` since ``start``.
    beats : Out(COUNTER_BITS)
        R beats received since ``start``, the discarded ones included.
    m_axi_ar*, m_axi_r* :
        AXI4 read address and data channels (address width ``DRAM_ADDR_BITS``;
        ``m_axi_rready`` is high whenever the unit could be offered a beat).

    Raises
    ------
    TypeError, ValueError
        For a parameter of the wrong kind or value ("*name* must be …, not …").
    """

    def __init__(self, bus_bits: int = 128, prefetch_words: int = 8):
        with rejecting(self):
            if isinstance(bus_bits, bool) or not isinstance(bus_bits, int):
                raise TypeError(f"bus_bits must be an integer, not {bus_bits!r}")
            if bus_bits not in BUS_BITS:
                raise ValueError(f"bus_bits must be one of {', '.join(map(str, BUS_BITS))}, "
                                 f"not {bus_bits!r}")
            if isinstance(prefetch_words, bool) or not isinstance(prefetch_words, int):
                raise TypeError(f"prefetch_words must be an integer, not {prefetch_words!r}")
            per_beat = max(1, bus_bits // INSTRUCTION_BITS)
            if prefetch_words < per_beat:
                raise ValueError(f"prefetch_words must be at least {per_beat} (the words of "
                                 f"one {bus_bits}-bit beat), not {prefetch_words}")
        self._bus_bits, self._prefetch_words = bus_bits, prefetch_words
        super().__init__({
            "start": In(1),
            "base": In(DRAM_ADDR_BITS),
            "stop": In(1),
            "o_stream": Out(stream.Signature(unsigned(INSTRUCTION_BITS))),
            "busy": Out(1),
            "error": Out(1),
            "words": Out(COUNTER_BITS),
            "beats": Out(COUNTER_BITS),
            **axi_read_master(bus_bits),
        })

    @property
    def bus_bits(self) -> int:
        """AXI4 data width in bits."""
        return self._bus_bits

    @property
    def prefetch_words(self) -> int:
        """Most program words read beyond the words the consumer has taken."""
        return self._prefetch_words

    @property
    def geometry(self) -> FetchGeometry:
        """Beats, words and bursts (``rtl.isa.FetchGeometry``), which the compiler's timing
        model reads too."""
        return FetchGeometry(self._bus_bits, self._prefetch_words)

    @property
    def words_per_beat(self) -> int:
        """Instruction words one beat carries (1 on a 64- or 128-bit bus)."""
        return self.geometry.words_per_beat

    @property
    def beats_per_word(self) -> int:
        """Beats one instruction word takes (2 on a 64-bit bus, else 1)."""
        return self.geometry.beats_per_word

    @property
    def burst_beats(self) -> int:
        """Beats of a full burst (``rtl.isa.FetchGeometry.burst_beats``)."""
        return self.geometry.burst_beats

    @property
    def buffer_entries(self) -> int:
        """Entries of the prefetch buffer: words on a 64-bit bus (two beats each), else
        beats.  Enough for every word the credit allows: the buffered and in-flight beats
        hold at least one untaken word in the first and a full beat in each other."""
        if self._bus_bits < INSTRUCTION_BITS:
            return self._prefetch_words
        return 1 + (self._prefetch_words - 1) // self.words_per_beat

    def elaborate(self, platform):
        m = Module()
        B = self._bus_bits // 8
        lb = B.bit_length() - 1
        wpb, bpw = self.words_per_beat, self.beats_per_word
        # Credit unit: a beat on a 64-bit bus (a burst may end inside a word), else a word.
        upb, upw = wpb, bpw                  # units per beat, units per word
        cap = self._prefetch_words * upw     # the credit, in units
        L = self.burst_beats
        lL = L.bit_length() - 1

        active = Signal()                    # busy: fetching or draining
        stopping = Signal()                  # draining after stop or an error response
        error = Signal()
        fetching = Signal()
        m.d.comb += fetching.eq(active & ~stopping)
        go = Signal()
        m.d.comb += go.eq(self.start & ~active)

        next_beat = Signal(DRAM_ADDR_BITS - lb)      # beat index of the next burst's start
        first = Signal()                             # the next burst is the program's first
        skip = Signal(range(wpb)) if wpb > 1 else None   # words of the first beat below base
        reserved = Signal(range(cap + 1))            # units requested and not yet taken
        pending = Signal(range(cap + 1))             # bursts issued and not yet ended

        # -- address side: a burst to the next multiple of L beats, when the credit allows ----
        length = Signal(range(L + 1))
        m.d.comb += length.eq(L - next_beat[:lL] if lL else 1)
        units = Signal(range(L * upb + 1))
        if skip is not None:
            m.d.comb += units.eq(length * upb - Mux(first, skip, 0))
        else:
            m.d.comb += units.eq(length * upb)
        ar_free = ~self.m_axi_arvalid | self.m_axi_arready
        issue = Signal()
        m.d.comb += issue.eq(fetching & ~self.stop & ar_free & (reserved + units <= cap))
        m.d.comb += [self.m_axi_arsize.eq(lb), self.m_axi_arburst.eq(AXI_BURST_INCR)]
        with m.If(issue):
            m.d.sync += [self.m_axi_arvalid.eq(1),
                         self.m_axi_araddr.eq(Cat(Const(0, lb), next_beat)),
                         self.m_axi_arlen.eq(length - 1),
                         next_beat.eq(next_beat + length),
                         first.eq(0)]
        with m.Elif(self.m_axi_arready):
            m.d.sync += self.m_axi_arvalid.eq(0)

        # -- data side: beats into the prefetch buffer, words out ---------------------------
        entry_bits = max(self._bus_bits, INSTRUCTION_BITS)
        buf = ResetInserter(go)(SyncFIFO(width=entry_bits, depth=self.buffer_entries))
        m.submodules.buffer = buf
        beat_in = Signal()
        m.d.comb += [
            self.m_axi_rready.eq(buf.w_rdy | ~fetching),
            beat_in.eq(self.m_axi_rvalid & self.m_axi_rready),
        ]
        bad = self.m_axi_rresp != 0
        keep = beat_in & fetching & ~bad             # a beat that goes into the buffer
        take = Signal()
        m.d.comb += [
            self.o_stream.valid.eq(fetching & buf.r_rdy),
            take.eq(self.o_stream.valid & self.o_stream.ready),
        ]
        if bpw > 1:
            # two beats make a word: hold the first (the low half) until the second arrives
            low = Signal(self._bus_bits)
            have_low = Signal()
            with m.If(keep):
                m.d.sync += [low.eq(self.m_axi_rdata), have_low.eq(~have_low)]
            m.d.comb += [buf.w_en.eq(keep & have_low),
                         buf.w_data.eq(Cat(low, self.m_axi_rdata)),
                         self.o_stream.payload.eq(buf.r_data),
                         buf.r_en.eq(take)]
            with m.If(go):
                m.d.sync += have_low.eq(0)
        else:
            m.d.comb += [buf.w_en.eq(keep), buf.w_data.eq(self.m_axi_rdata)]
            if wpb > 1:
                # the head beat's words go out lowest address first; it leaves after its last
                sel = Signal(range(wpb))
                m.d.comb += [self.o_stream.payload.eq(buf.r_data.word_select(sel,
                                                                             INSTRUCTION_BITS)),
                             buf.r_en.eq(take & (sel == wpb - 1))]
                with m.If(take):
                    m.d.sync += sel.eq(Mux(sel == wpb - 1, 0, sel + 1))
                with m.If(go):
                    m.d.sync += sel.eq(self.base[_WORD_SHIFT:lb])
            else:
                m.d.comb += [self.o_stream.payload.eq(buf.r_data), buf.r_en.eq(take)]

        # -- credit, outstanding bursts, stop and drain --------------------------------------
        ended = beat_in & self.m_axi_rlast
        m.d.sync += [reserved.eq(reserved + Mux(issue, units, 0) - Mux(take, upw, 0)),
                     pending.eq(pending + issue - ended)]
        with m.If(take):
            m.d.sync += self.words.eq(self.words + 1)
        with m.If(beat_in):
            m.d.sync += self.beats.eq(self.beats + 1)
        with m.If(fetching & (self.stop | (beat_in & bad))):
            m.d.sync += stopping.eq(1)
        with m.If(beat_in & bad & fetching):
            m.d.sync += error.eq(1)
        with m.If(stopping & (pending == 0)):
            m.d.sync += [active.eq(0), stopping.eq(0)]

        with m.If(go):
            aligned = self.base[:_WORD_SHIFT] == 0
            m.d.sync += [active.eq(aligned), stopping.eq(0), error.eq(~aligned),
                         next_beat.eq(self.base[lb:]), first.eq(1), reserved.eq(0),
                         pending.eq(0), self.words.eq(0), self.beats.eq(0)]
            if skip is not None:
                m.d.sync += skip.eq(self.base[_WORD_SHIFT:lb])
        m.d.comb += [self.busy.eq(active), self.error.eq(error)]
        return m
