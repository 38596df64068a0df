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
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .validate import check_int

__all__ = ["ShiftAdd"]


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
        ky, kx, y, x, fw = (Signal(db, name=n) for n in ("ky", "kx", "y", "x", "fw"))
        ny = Signal(signed(2 * db + 2))     # oy·stride, before the division
        nx = Signal(signed(2 * db + 2))
        m.d.comb += [ny.eq(y + self.pad - ky * self.dil), nx.eq(x + self.pad - kx * self.dil)]
        mask = (1 << self.stride_log2) - 1
        oy = ny >> self.stride_log2
        ox = nx >> self.stride_log2
        hit = ((ny >= 0) & ((ny & mask) == 0) & (oy < self.out_h)
               & (nx >= 0) & ((nx & mask) == 0) & (ox < self.out_w))
        oaddr = Signal(range(self.depth))
        m.d.comb += oaddr.eq((oy * self.out_w + ox) * self.f_words + fw)
        last_in = ((fw == self.f_words - 1) & (x == self.in_w - 1) & (y == self.in_h - 1)
                   & (kx == self.kernel_w - 1) & (ky == self.kernel_h - 1))

        # accumulate pipeline: stage 1 holds the word whose old sum is being read
        s1_hit = Signal()
        s1_addr = Signal(range(self.depth))
        s1_data = Signal.like(self.i_stream.payload)
        # drain: read address, output valid, address to clear
        didx = Signal(range(self.depth + 1))
        valid = Signal()
        clr = Signal()
        clr_addr = Signal(range(self.depth))
        out_words = Signal(range(self.depth + 1))
        m.d.comb += out_words.eq(self.out_h * self.out_w * self.f_words)
        advance = ~valid | self.o_stream.ready

        m.d.comb += [self.o_stream.valid.eq(valid), self.o_stream.payload.eq(rp.data)]
        m.d.sync += s1_hit.eq(0)
        with m.If(s1_hit):
            m.d.comb += [wp.en.eq(1), wp.addr.eq(s1_addr)]
            for i in range(self.lanes):
                m.d.comb += wp.data[i].eq(rp.data[i] + s1_data[i])
        with m.Elif(clr):
            m.d.comb += [wp.en.eq(1), wp.addr.eq(clr_addr), wp.data.eq(0)]
        m.d.sync += clr.eq(0)

        # phases as a plain state register and an If chain (an Amaranth FSM emits case
        # statements without a default, which Verilator -Wall flags as CASEINCOMPLETE)
        IDLE, ACCUMULATE, DRAIN = range(3)
        phase = Signal(range(3))
        with m.If(phase == IDLE):
            m.d.comb += rp.en.eq(advance)
            with m.If(self.start):
                m.d.sync += [self.busy.eq(1), ky.eq(0), kx.eq(0), y.eq(0), x.eq(0),
                             fw.eq(0), didx.eq(0)]
                m.d.sync += phase.eq(ACCUMULATE)
        with m.Elif(phase == ACCUMULATE):
            m.d.comb += [self.i_stream.ready.eq(1), rp.en.eq(1), rp.addr.eq(oaddr)]
            with m.If(self.i_stream.valid):
                m.d.sync += [s1_hit.eq(hit), s1_addr.eq(oaddr),
                             s1_data.eq(self.i_stream.payload)]
                # step (ky, kx, y, x, fw), fw fastest
                m.d.sync += fw.eq(fw + 1)
                with m.If(fw == self.f_words - 1):
                    m.d.sync += [fw.eq(0), x.eq(x + 1)]
                    with m.If(x == self.in_w - 1):
                        m.d.sync += [x.eq(0), y.eq(y + 1)]
                        with m.If(y == self.in_h - 1):
                            m.d.sync += [y.eq(0), kx.eq(kx + 1)]
                            with m.If(kx == self.kernel_w - 1):
                                m.d.sync += [kx.eq(0), ky.eq(ky + 1)]
                with m.If(last_in):
                    m.d.sync += phase.eq(DRAIN)
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
