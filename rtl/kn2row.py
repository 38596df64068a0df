"""kn2row shift-and-add (pad-and-accumulate) unit: assembles R·S 1×1 GEMM outputs.

The array computes, for each kernel tap (ky, kx), the 1×1 product P = W[:, :, ky, kx]·X over
every input pixel and streams it here in the order (ky, kx, y, x, filter word), one word of
``lanes`` filters per cycle.  The unit adds each word into its output buffer at the output
pixel that tap shifts it to: oy = (y + pad − ky·dil) / stride when that divides exactly and
lands inside the output (likewise ox); other words are dropped (they still take their cycle).
This is ``sim/models/kn2row.py: shift_add``.

Accumulation is a read-modify-write on a synchronous memory: read in the cycle a word arrives,
add and write in the next.  The read port is transparent to the write port, so a read of the
address being written sees the new sum (consecutive words never share an address within a tap,
but the last word of one tap and the first of the next can).  After the last word the buffer
drains one word per cycle, and each drained address is cleared in the cycle after its read,
so the buffer is all zeros for the next layer without a clearing pass.

Strides are powers of two (1, 2, 4) so the division is a shift and a mask.  Cycles:
``dse.cost.transforms.kn2row_shift_add_cycles``.

Timing: the buffer address ``(oy·out_w + ox)·f_words + fw`` is computed in a pipeline of
``rtl.params.SHIFT_ADD_ADDRESS_STAGES`` register stages, one multiply or add each, from
``ny = y + pad − ky·dil`` and ``nx = x + pad − kx·dil``, which registers keep by additions as
the counters step.  Done in one cycle (as before), the address was the overlay's critical
path: 47 ns on the ECP5-85 (21 MHz) in the 8×8 tiny overlay.  The read of a word happens
when it leaves the pipeline, the write in the next cycle, so the read-modify-write and the
transparent read are as before; the last word's write comes ``SHIFT_ADD_ADDRESS_STAGES``
cycles later, and the drain waits for it.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .params import SHIFT_ADD_ADDRESS_STAGES
from .validate import check_int

__all__ = ["ShiftAdd"]

#: Cycles between the last word in and the first drain read: the address stages.
FLUSH_CYCLES = SHIFT_ADD_ADDRESS_STAGES


class ShiftAdd(wiring.Component):
    """Pad-and-accumulate of 1×1 partial products into a layer output.

    Parameters
    ----------
    lanes:
        Filters per word.
    in_width:
        Signed width of the incoming partial sums.
    acc_width:
        Signed width of the output accumulators.
    depth:
        Output buffer depth in words (≥ out_h·out_w·f_words).
    dim_bits:
        Width of the geometry settings.

    Attributes
    ----------
    in_h, in_w, kernel_h, kernel_w, out_h, out_w, f_words, pad, dil:
        Layer geometry (``f_words`` = ceil(filters / lanes)).
    stride_log2:
        log2 of the stride (0, 1 or 2).
    start, busy:
        Pulse ``start``; ``busy`` until the last output word has been taken.
    i_stream, o_stream:
        Partial-sum words in; output words out (raster order, filter word fastest).
    """

    def __init__(self, lanes: int = 4, in_width: int = 32, acc_width: int = 32,
                 depth: int = 1024, dim_bits: int = 8):
        for name, v, lo in (("lanes", lanes, 1), ("in_width", in_width, 2),
                            ("acc_width", acc_width, 2), ("depth", depth, 1),
                            ("dim_bits", dim_bits, 2)):
            check_int(self, name, v, lo)
        self.lanes, self.in_width, self.acc_width = lanes, in_width, acc_width
        self.depth, self.dim_bits = depth, dim_bits
        self._acc = data.ArrayLayout(signed(acc_width), lanes)
        dims = {n: In(unsigned(dim_bits)) for n in ("in_h", "in_w", "kernel_h", "kernel_w",
                                                    "out_h", "out_w", "f_words", "pad", "dil")}
        super().__init__({
            **dims,
            "stride_log2": In(2),
            "start": In(1), "busy": Out(1),
            "i_stream": In(stream.Signature(data.ArrayLayout(signed(in_width), lanes))),
            "o_stream": Out(stream.Signature(self._acc)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.buf = buf = Memory(shape=self._acc, depth=self.depth, init=[])
        wp = buf.write_port()
        rp = buf.read_port(transparent_for=(wp,))

        db = self.dim_bits
        wide = signed(2 * db + 2)
        ky, kx, y, x, fw = (Signal(db, name=n) for n in ("ky", "kx", "y", "x", "fw"))
        # ny = y + pad − ky·dil and nx = x + pad − kx·dil (oy·stride, ox·stride before the
        # division), kept by additions as the counters step: no multiply on the way to the
        # buffer's address (module docstring, "Timing")
        ny, nx, ybase, xbase = (Signal(wide, name=n) for n in ("ny", "nx", "ybase", "xbase"))
        last_in = ((fw == self.f_words - 1) & (x == self.in_w - 1) & (y == self.in_h - 1)
                   & (kx == self.kernel_w - 1) & (ky == self.kernel_h - 1))

        # address pipeline, one register stage per operation: A oy, ox and the hit test;
        # B oy·out_w; C + ox; D ·f_words; E + fw.  Each stage carries the word and its flags.
        # B..D are wide enough for every address of the buffer; a word that is dropped (no hit)
        # may wrap, since only hits are written.
        addr_shape = range(self.depth + 1 << db)
        payload = self.i_stream.payload
        a_valid, a_hit = Signal(name="a_valid"), Signal(name="a_hit")
        a_oy, a_ox = Signal(wide, name="a_oy"), Signal(wide, name="a_ox")
        b_row = Signal(addr_shape, name="b_row")
        e_addr = Signal(range(self.depth), name="e_addr")
        valids = [a_valid] + [Signal(name=f"{n}_valid") for n in "bcde"]
        hits = [a_hit] + [Signal(name=f"{n}_hit") for n in "bcde"]
        words = [Signal.like(payload, name=f"{n}_data") for n in "abcde"]
        fws = [Signal(db, name=f"{n}_fw") for n in "abcd"]
        b_ox = Signal(wide, name="b_ox")
        c_pix = Signal(addr_shape, name="c_pix")
        d_word = Signal(addr_shape, name="d_word")
        mask = (1 << self.stride_log2) - 1
        accept = Signal()
        m.d.sync += [
            a_valid.eq(accept),
            a_hit.eq((ny >= 0) & ((ny & mask) == 0) & ((ny >> self.stride_log2) < self.out_h)
                     & (nx >= 0) & ((nx & mask) == 0) & ((nx >> self.stride_log2) < self.out_w)),
            a_oy.eq(ny >> self.stride_log2), a_ox.eq(nx >> self.stride_log2),
            words[0].eq(payload), fws[0].eq(fw),
            b_row.eq(a_oy[:db] * self.out_w), b_ox.eq(a_ox),
            c_pix.eq(b_row + b_ox[:db]),
            d_word.eq(c_pix * self.f_words),
            e_addr.eq(d_word + fws[3]),
        ]
        for i in range(1, 5):
            m.d.sync += [valids[i].eq(valids[i - 1]), hits[i].eq(hits[i - 1]),
                         words[i].eq(words[i - 1])]
        for i in range(1, 4):
            m.d.sync += fws[i].eq(fws[i - 1])
        e_valid, e_hit, e_data = valids[4], hits[4], words[4]

        # accumulate: read at the end of the address pipeline, add and write in the next cycle
        s1_hit = Signal()
        s1_addr = Signal(range(self.depth))
        s1_data = Signal.like(payload)
        # drain: read address, output valid, address to clear
        didx = Signal(range(self.depth + 1))
        valid = Signal()
        clr = Signal()
        clr_addr = Signal(range(self.depth))
        out_pixels = Signal(range((1 << 2 * db) + 1))
        out_words = Signal(range((1 << 3 * db) + 1))
        # out_h·out_w·f_words in two registered steps: the settings are held for the whole
        # layer, and out_words is first compared at the end of the drain
        m.d.sync += [out_pixels.eq(self.out_h * self.out_w),
                     out_words.eq(out_pixels * self.f_words)]
        advance = ~valid | self.o_stream.ready

        m.d.comb += [self.o_stream.valid.eq(valid), self.o_stream.payload.eq(rp.data)]
        m.d.sync += s1_hit.eq(0)
        with m.If(e_valid):
            m.d.sync += [s1_hit.eq(e_hit), s1_addr.eq(e_addr), s1_data.eq(e_data)]
        with m.If(s1_hit):
            m.d.comb += [wp.en.eq(1), wp.addr.eq(s1_addr)]
            for i in range(self.lanes):
                m.d.comb += wp.data[i].eq(rp.data[i] + s1_data[i])
        with m.Elif(clr):
            m.d.comb += [wp.en.eq(1), wp.addr.eq(clr_addr), wp.data.eq(0)]
        m.d.sync += clr.eq(0)

        # phases as a plain state register and an If chain (an Amaranth FSM emits case
        # statements without a default, which Verilator -Wall flags as CASEINCOMPLETE)
        IDLE, ACCUMULATE, FLUSH, DRAIN = range(4)
        phase = Signal(range(4))
        flush = Signal(range(FLUSH_CYCLES + 1))
        with m.If(phase == IDLE):
            m.d.comb += rp.en.eq(advance)
            with m.If(self.start):
                m.d.sync += [self.busy.eq(1), ky.eq(0), kx.eq(0), y.eq(0), x.eq(0),
                             fw.eq(0), didx.eq(0), ny.eq(self.pad), nx.eq(self.pad),
                             ybase.eq(self.pad), xbase.eq(self.pad)]
                m.d.sync += phase.eq(ACCUMULATE)
        with m.Elif((phase == ACCUMULATE) | (phase == FLUSH)):
            m.d.comb += [rp.en.eq(1), rp.addr.eq(e_addr)]
            with m.If(phase == ACCUMULATE):
                m.d.comb += [self.i_stream.ready.eq(1), accept.eq(self.i_stream.valid)]
            with m.Else():
                m.d.sync += flush.eq(flush - 1)
                with m.If(flush == 1):
                    m.d.sync += phase.eq(DRAIN)
            with m.If(accept):
                # step (ky, kx, y, x, fw), fw fastest, and ny, nx with them
                m.d.sync += fw.eq(fw + 1)
                with m.If(fw == self.f_words - 1):
                    m.d.sync += [fw.eq(0), x.eq(x + 1), nx.eq(nx + 1)]
                    with m.If(x == self.in_w - 1):
                        m.d.sync += [x.eq(0), nx.eq(xbase), y.eq(y + 1), ny.eq(ny + 1)]
                        with m.If(y == self.in_h - 1):
                            m.d.sync += [y.eq(0), ny.eq(ybase), kx.eq(kx + 1),
                                         xbase.eq(xbase - self.dil), nx.eq(xbase - self.dil)]
                            with m.If(kx == self.kernel_w - 1):
                                m.d.sync += [kx.eq(0), xbase.eq(self.pad), nx.eq(self.pad),
                                             ky.eq(ky + 1), ybase.eq(ybase - self.dil),
                                             ny.eq(ybase - self.dil)]
                with m.If(last_in):
                    m.d.sync += [phase.eq(FLUSH), flush.eq(FLUSH_CYCLES)]
        with m.Elif(phase == DRAIN):
            m.d.comb += [rp.en.eq(advance), rp.addr.eq(didx)]
            with m.If(advance):
                with m.If(didx < out_words):
                    m.d.sync += [valid.eq(1), didx.eq(didx + 1), clr.eq(1),
                                 clr_addr.eq(didx)]
                with m.Else():
                    m.d.sync += [valid.eq(0), self.busy.eq(0)]
                    m.d.sync += phase.eq(IDLE)
        return m
