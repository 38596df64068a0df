"""im2col window generator: streams patch rows from the feature buffer, no matrix in DRAM.

The feature buffer holds the layer input as words of ``lanes`` channels:
word address = (y·in_w + x)·c_words + channel word (``sim/models/im2col.py: hwc_words``).
After ``start`` the generator walks (oy, ox, ky, kx, cw), cw fastest, over ``out_h`` output
rows from output row ``row0`` on (a band of the output: the datapath runs a layer as several
GEMMs of a band each) and streams one word per cycle: the buffer word at
((row0 + oy)·stride + ky·dil − pad, ox·stride + kx·dil − pad), or a zero word where that
pixel lies in the padding or below the input.  ``row0`` is 0 for a run started with
``first``, else the row after the previous run's last (the generator carries on from there).
Consecutive K = R·S·c_words words form one patch row of the GEMM's A matrix, in the order
(ky, kx, c) that the compiler lays out B in.

No multiplier lies between the counters and the buffer address: the coordinates and the
word address of the tap, of its kernel row, of its window and of its output row are
registers stepped by the products of the geometry (dil·c_words, dil·in_w·c_words,
stride·c_words, stride·in_w·c_words), which depend on the settings alone.

Layer geometry comes from per-layer settings (held stable while ``busy``).  The buffer read is
synchronous, so a word appears one cycle after its address; the read port's enable holds the
word while the sink stalls.  Cycles: ``dse.cost.transforms.im2col_stream_cycles``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .validate import check_int, reject

__all__ = ["Im2col"]


class Im2col(wiring.Component):
    """Window address generator over an owned feature buffer.

    Parameters
    ----------
    lanes:
        Channels per buffer word (and per streamed word).
    width:
        Signed element width.
    depth:
        Buffer depth in words.
    dim_bits:
        Width of the geometry settings (sizes up to 2^dim_bits − 1).

    Attributes
    ----------
    w_addr, w_data, w_en:
        Buffer write port (the loader fills the buffer before ``start``).
    in_h, in_w, c_words, kernel_h, kernel_w, stride, pad, dil, out_h, out_w:
        Layer geometry (``c_words`` = ceil(channels / lanes)); ``out_h`` output rows a run.
    base:
        Buffer word of the image's first word (word 0 of the layout above); held while
        ``busy``.  The conv datapath's double buffering reads from either half.
    first:
        With ``start``: this run begins at output row 0; without, at the row after the
        previous run's last.
    start, busy:
        Pulse ``start`` for one cycle; ``busy`` stays high until the last word is issued.
    o_stream:
        Patch words.
    x_addr, x_en, x_data:
        With ``shared_read``: another reader of the buffer (the overlay top's pool engine)
        on the generator's read port, data one cycle after ``x_en``; only while the generator
        is idle (the overlay's tokens keep a pooling and a convolution apart).
    """

    def __init__(self, lanes: int = 4, width: int = 8, depth: int = 1024, dim_bits: int = 8,
                 shared_read: bool = False):
        for name, v, lo in (("lanes", lanes, 1), ("width", width, 2), ("depth", depth, 1),
                            ("dim_bits", dim_bits, 2)):
            check_int(self, name, v, lo)
        if not isinstance(shared_read, bool):
            reject(self, TypeError(f"shared_read must be a bool, not {shared_read!r}"))
        self.shared_read = shared_read
        self.lanes, self.width, self.depth, self.dim_bits = lanes, width, depth, dim_bits
        word = data.ArrayLayout(signed(width), lanes)
        self._word = word
        dims = {n: In(unsigned(dim_bits)) for n in ("in_h", "in_w", "c_words", "kernel_h",
                                                    "kernel_w", "stride", "pad", "dil",
                                                    "out_h", "out_w")}
        extra = ({"x_addr": In(range(depth)), "x_en": In(1), "x_data": Out(word)}
                 if shared_read else {})
        super().__init__({
            "w_addr": In(range(depth)), "w_data": In(word), "w_en": In(1),
            **dims,
            "base": In(range(depth)),
            "first": In(1),
            "start": In(1), "busy": Out(1),
            "o_stream": Out(stream.Signature(word)),
            **extra,
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.buf = buf = Memory(shape=self._word, depth=self.depth, init=[])
        wp = buf.write_port()
        rp = buf.read_port()
        m.d.comb += [wp.addr.eq(self.w_addr), wp.data.eq(self.w_data), wp.en.eq(self.w_en)]

        db = self.dim_bits
        oy, ox, ky, kx, cw = (Signal(db, name=n) for n in ("oy", "ox", "ky", "kx", "cw"))
        # input coordinates of this word (signed: padding makes them negative), and of the
        # first tap of its window (y0, x0); the word addresses of (y, x), of (y, x0), of
        # (y0, x0) and of (y0, 0): a_tap, a_krow, a_win, a_orow (channel word 0)
        coord = signed(2 * db + 3)
        y, x, y0, x0 = (Signal(coord, name=n) for n in ("y", "x", "y0", "x0"))
        abits = 3 * db + 4
        a_tap, a_krow, a_win, a_orow = (Signal(signed(abits), name=n)
                                        for n in ("a_tap", "a_krow", "a_win", "a_orow"))
        # steps: a kernel column, a kernel row, an output column, an output row; the left
        # padding's words.  Registered products of the settings (held while busy), valid
        # from the first busy cycle on.
        d_kx, d_ky, d_ox, d_oy, d_pad = (Signal(signed(abits), name=n)
                                         for n in ("d_kx", "d_ky", "d_ox", "d_oy", "d_pad"))
        cwords, width = self.c_words, self.in_w
        m.d.sync += [d_kx.eq(self.dil * cwords), d_ky.eq(self.dil * width * cwords),
                     d_ox.eq(self.stride * cwords), d_oy.eq(self.stride * width * cwords),
                     d_pad.eq(self.pad * cwords)]
        inside = (y >= 0) & (y < self.in_h) & (x >= 0) & (x < self.in_w)
        addr = Signal(range(self.depth))
        m.d.comb += addr.eq(a_tap + cw + self.base)
        valid = Signal()          # o_stream.valid: rp.data holds a word
        zero = Signal()           # that word lies in the padding
        advance = ~valid | self.o_stream.ready
        if self.shared_read:
            # the other reader takes the port in its cycles (the generator is idle then)
            m.d.comb += [rp.en.eq(advance | self.x_en),
                         rp.addr.eq(Mux(self.x_en, self.x_addr, addr)),
                         self.x_data.eq(rp.data)]
        else:
            m.d.comb += [rp.en.eq(advance), rp.addr.eq(addr)]
        m.d.comb += [
            self.o_stream.valid.eq(valid),
            self.o_stream.payload.eq(Mux(zero, 0, rp.data)),
        ]
        last = ((cw == self.c_words - 1) & (kx == self.kernel_w - 1)
                & (ky == self.kernel_h - 1) & (ox == self.out_w - 1) & (oy == self.out_h - 1))
        with m.If(advance):
            m.d.sync += [valid.eq(self.busy), zero.eq(~inside)]
            with m.If(self.busy):
                # step the nested counters (oy, ox, ky, kx, cw), cw fastest, and the
                # coordinates and addresses with them
                m.d.sync += cw.eq(cw + 1)
                with m.If(cw == self.c_words - 1):
                    m.d.sync += [cw.eq(0), kx.eq(kx + 1), x.eq(x + self.dil),
                                 a_tap.eq(a_tap + d_kx)]
                    with m.If(kx == self.kernel_w - 1):
                        m.d.sync += [kx.eq(0), ky.eq(ky + 1), x.eq(x0), y.eq(y + self.dil),
                                     a_krow.eq(a_krow + d_ky), a_tap.eq(a_krow + d_ky)]
                        with m.If(ky == self.kernel_h - 1):
                            m.d.sync += [ky.eq(0), ox.eq(ox + 1), y.eq(y0),
                                         x0.eq(x0 + self.stride), x.eq(x0 + self.stride),
                                         a_win.eq(a_win + d_ox), a_krow.eq(a_win + d_ox),
                                         a_tap.eq(a_win + d_ox)]
                            with m.If(ox == self.out_w - 1):
                                first_x = -self.pad
                                first_a = a_orow + d_oy - d_pad
                                m.d.sync += [ox.eq(0), oy.eq(oy + 1),
                                             y0.eq(y0 + self.stride), y.eq(y0 + self.stride),
                                             x0.eq(first_x), x.eq(first_x),
                                             a_orow.eq(a_orow + d_oy), a_win.eq(first_a),
                                             a_krow.eq(first_a), a_tap.eq(first_a)]
                with m.If(last):
                    m.d.sync += self.busy.eq(0)
        with m.If(self.start & ~self.busy):
            m.d.sync += [self.busy.eq(1), oy.eq(0), ox.eq(0), ky.eq(0), kx.eq(0), cw.eq(0)]
            with m.If(self.first):
                # output row 0: its window at (−pad, −pad); the row's address at (−pad, 0)
                row_a = -(self.pad * width * cwords)
                tap_a = row_a - self.pad * cwords
                m.d.sync += [y0.eq(-self.pad), y.eq(-self.pad), x0.eq(-self.pad),
                             x.eq(-self.pad), a_orow.eq(row_a), a_win.eq(tap_a),
                             a_krow.eq(tap_a), a_tap.eq(tap_a)]
            # else carry on: the previous run's last step moved the coordinates and
            # addresses to the row after its last (the output-row step above)
        return m
