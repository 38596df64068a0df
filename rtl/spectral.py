"""Spectral (FFT, overlap-and-add) path of the conv datapath: everything around the array.

One layer of C input channels, F filters and T input tiles (N×N each, T = th·tw) runs in
three phases, which the datapath's controller (``rtl/conv_datapath.py``) starts one after
another:

1. **Forward** (``fwd_go``): the tile buffer holds, per (tile t, channel c) in that order
   (c fastest), the N² raw activations of the tile zero-padded to N×N (the compiler's
   ``fft`` layout, dse/compiler/plan.py).  A reader streams all T·C·N² words into the FFT unit
   (``rtl.fft.FFT2D``, shared with phase 3), each shifted left by ``data_bits − precision − 1``
   (one guard bit, as ``sim/models/fft.py`` does).  The spectra are written to the input
   spectrum buffer so that bin u of (t, c) lands at ``u·T·C + t·C + c``: the A matrix of bin
   u (T × C, row-major) is then contiguous.
2. **Spectral MAC on the array**, for the bins (u, v) with v ≤ N/2 only (a real tile's
   spectrum is Hermitian; the datapath's controller walks them): three real GEMMs per bin
   (Gauss's trick, docs/algorithms.md):
   for X = a + jb and W = c + jd, part 0 computes k1 = Σ (a+b)·c, part 1 k2 = Σ a·(d−c), part
   2 k3 = Σ b·(c+d).  ``a_go`` loads the A reader for (``a_bin``, ``a_part``), which streams
   a+b, a or b of that bin; the weights (c, d−c, c+d, formed offline) come from the datapath's
   weight buffer.  The C sink keeps k1 (part 0) in a buffer and, as parts 1 and 2 drain,
   forms Im = k1 + k2 and Re = k1 − k3, requantises each to ``data_bits`` (``shift``: round
   half up, saturate) and writes the output spectrum of (t, f) bin u at ``(t·F + f)·N² + u``.
3. **Inverse** (``inv_go``): the output spectra stream through the FFT unit with conjugate
   twiddles, the bins v > N/2 read from their mirrors conj Z(−u mod N, N − v) (the negated
   imaginary part saturated, as ``sim.models.fft.hermitian_extend`` does); each real output sample of (t, f) is overlap-added into the overlap-add buffer at
   its output pixel (tiles placed every ``step`` = N − R + 1 pixels; samples outside the
   output are dropped).  The first contribution to a pixel (in tile order) is written, later
   ones are added (read-modify-write through a transparent read port), so the buffer needs no
   clearing.  ``out_go`` then streams the buffer (HWC order, filters fastest) to ``o_stream``.

Bit for bit this is ``sim.models.fft.fft_conv``.  Cycles: ``dse.lowering.fft``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .fft import FFT2D, complex_layout
from .memstream import memory_streamer
from .validate import check_int, reject

__all__ = ["SpectralPath"]


class SpectralPath(wiring.Component):
    """The FFT front, the spectral operand and result handling, the IFFT and overlap-add.

    Parameters
    ----------
    n:
        FFT tile size N (4, 8, 16 or 32).
    precision:
        Bits of the raw activations in the tile buffer.
    a_width:
        The array's operand width; the FFT's data width is ``a_width − 1`` (the part sums
        a + b of part 0 take the extra bit).
    acc_width:
        The array's accumulator width (C beats, the k1 buffer and the overlap-add buffer).
    spectral_words:
        Depth of the tile buffer and of the input and output spectrum buffers.
    max_mn:
        Depth of the k1 buffer (one GEMM's C: tiles × filters).
    out_words:
        Depth of the overlap-add buffer (output pixels × filters).
    dim_bits:
        Width of the geometry settings.

    Members
    -------
    xb_addr, xb_data, xb_en : tile buffer write port
    tiles, chans, filters, tiles_w, step, kernel, out_h, out_w, shift : layer settings
    fwd_go, fwd_first, fwd_last : start of phase 1; its first input and last output beats
    a_go, a_bin, a_part, a_stream : A operand of one GEMM
    c_stream : C of the running GEMM (always ready)
    inv_go, inv_first, inv_last : the same for phase 3 (``inv_last``: last overlap-add write
        issued)
    out_go, out_words_n, o_stream : drain of the overlap-add buffer
    """

    def __init__(self, n: int, precision: int, a_width: int, acc_width: int,
                 spectral_words: int, max_mn: int, out_words: int, dim_bits: int):
        if n not in (4, 8, 16, 32):
            reject(self, ValueError(f"n must be 4, 8, 16 or 32, not {n!r}"))
        for name, v, lo in (("precision", precision, 2), ("spectral_words", spectral_words, 2),
                            ("max_mn", max_mn, 2), ("out_words", out_words, 2),
                            ("dim_bits", dim_bits, 2)):
            check_int(self, name, v, lo)
        if a_width < precision + 2:
            reject(self, ValueError(f"a_width must be at least precision + 2 = "
                                    f"{precision + 2} for the FFT path, not {a_width}"))
        self.data_bits = a_width - 1
        if acc_width < self.data_bits + 3:
            reject(self, ValueError(f"acc_width must be at least {self.data_bits + 3} for "
                                    f"the FFT path, not {acc_width}"))
        self.n, self.lg = n, n.bit_length() - 1
        self.precision, self.a_width, self.acc_width = precision, a_width, acc_width
        self.spectral_words, self.max_mn, self.out_words = spectral_words, max_mn, out_words
        db = dim_bits
        super().__init__({
            "xb_addr": In(range(spectral_words)), "xb_data": In(signed(precision)),
            "xb_en": In(1),
            **{k: In(unsigned(db)) for k in ("tiles", "chans", "filters", "tiles_w", "step",
                                             "kernel", "out_h", "out_w")},
            "shift": In(range(acc_width + 2)),
            "fwd_go": In(1), "fwd_first": Out(1), "fwd_last": Out(1),
            "a_go": In(1), "a_bin": In(range(n * n)), "a_part": In(2),
            "a_stream": Out(stream.Signature(signed(a_width))),
            "c_stream": In(stream.Signature(signed(acc_width))),
            "inv_go": In(1), "inv_first": Out(1), "inv_last": Out(1),
            "out_go": In(1), "out_words_n": In(range(out_words + 1)),
            "o_stream": Out(stream.Signature(signed(acc_width))),
        })

    def elaborate(self, platform):
        m = Module()
        n, lg, d_bits = self.n, self.lg, self.data_bits
        n2 = n * n
        cplx = complex_layout(d_bits)
        m.submodules.fft = fft = FFT2D(n, d_bits, d_bits)
        m.d.comb += fft.o_stream.ready.eq(1)
        inverse = Signal()
        m.d.comb += fft.inverse.eq(inverse)
        with m.If(self.fwd_go):
            m.d.sync += inverse.eq(0)
        with m.Elif(self.inv_go):
            m.d.sync += inverse.eq(1)

        mk = Signal(range(self.spectral_words + 1))        # T·C: words of one bin's A
        mn = Signal(range(self.max_mn + 1))                # T·F: (tile, filter) pairs
        m.d.comb += [mk.eq(self.tiles * self.chans), mn.eq(self.tiles * self.filters)]

        # ---- phase 1: tile buffer → FFT → input spectrum buffer ----------------------------
        m.submodules.tile_buf = tbuf = Memory(shape=signed(self.precision),
                                              depth=self.spectral_words, init=[])
        twp, trp = tbuf.write_port(), tbuf.read_port()
        m.d.comb += [twp.addr.eq(self.xb_addr), twp.data.eq(self.xb_data),
                     twp.en.eq(self.xb_en)]
        fwd_ready = fft.i_stream.ready & ~inverse
        t_addr, t_left, t_valid = memory_streamer(m, [trp], fwd_ready, self.spectral_words,
                                                  "ftile")
        with m.If(self.fwd_go):
            m.d.sync += [t_addr.eq(0), t_left.eq(mk << (2 * lg))]
        in_shift = d_bits - self.precision - 1
        z_valid = Signal()
        z_re, z_im = Signal(signed(d_bits)), Signal(signed(d_bits))
        with m.If(inverse):
            m.d.comb += [fft.i_stream.valid.eq(z_valid), fft.i_stream.payload.re.eq(z_re),
                         fft.i_stream.payload.im.eq(z_im)]
        with m.Else():
            m.d.comb += [fft.i_stream.valid.eq(t_valid),
                         fft.i_stream.payload.re.eq(trp.data << in_shift),
                         fft.i_stream.payload.im.eq(0)]
        in_fire = fft.i_stream.valid & fft.i_stream.ready
        out_fire = fft.o_stream.valid & fft.o_stream.ready
        m.d.comb += self.fwd_first.eq(in_fire & ~inverse & (t_addr == 1))

        m.submodules.spec_in = xbuf = Memory(shape=cplx, depth=self.spectral_words, init=[])
        xwp, xrp = xbuf.write_port(), xbuf.read_port()
        x_bin = Signal(range(n2))                 # bin of the sample leaving the FFT
        x_tc = Signal(range(self.spectral_words))  # its (tile, channel)
        x_addr = Signal(range(self.spectral_words))
        m.d.comb += [xwp.addr.eq(x_addr), xwp.data.eq(fft.o_stream.payload),
                     xwp.en.eq(out_fire & ~inverse)]
        fwd_last_beat = (x_bin == n2 - 1) & (x_tc == mk - 1)
        m.d.comb += self.fwd_last.eq(out_fire & ~inverse & fwd_last_beat)
        with m.If(self.fwd_go):
            m.d.sync += [x_bin.eq(0), x_tc.eq(0), x_addr.eq(0)]
        with m.Elif(out_fire & ~inverse):
            m.d.sync += [x_bin.eq(x_bin + 1), x_addr.eq(x_addr + mk)]
            with m.If(x_bin == n2 - 1):
                m.d.sync += [x_bin.eq(0), x_tc.eq(x_tc + 1), x_addr.eq(x_tc + 1)]

        # ---- phase 2: A operands (a+b, a, b of one bin) --------------------------------------
        a_part = Signal(2)
        a_addr, a_left, a_valid = memory_streamer(m, [xrp], self.a_stream.ready,
                                                  self.spectral_words, "spec_a")
        with m.If(self.a_go):
            m.d.sync += [a_addr.eq(self.a_bin * mk), a_left.eq(mk), a_part.eq(self.a_part)]
        m.d.comb += [self.a_stream.valid.eq(a_valid),
                     self.a_stream.payload.eq(Mux(a_part == 0, xrp.data.re + xrp.data.im,
                                                  Mux(a_part == 1, xrp.data.re,
                                                      xrp.data.im)))]

        # ---- phase 2: C sink: k1, then Im = k1 + k2 and Re = k1 − k3 -------------------------
        c_bin = Signal(range(n2))
        c_count = Signal(range(self.max_mn + 1))
        c_fire = self.c_stream.valid & self.c_stream.ready
        m.d.comb += self.c_stream.ready.eq(1)
        with m.If(self.a_go):
            m.d.sync += [c_count.eq(0), c_bin.eq(self.a_bin)]
        with m.Elif(c_fire):
            m.d.sync += c_count.eq(c_count + 1)
        m.submodules.gauss_k1 = k1buf = Memory(shape=signed(self.acc_width),
                                               depth=self.max_mn, init=[])
        kwp, krp = k1buf.write_port(), k1buf.read_port()
        # The read port is addressed one beat ahead, so k1 of the beat arriving is on its data.
        m.d.comb += [kwp.addr.eq(c_count), kwp.data.eq(self.c_stream.payload),
                     kwp.en.eq(c_fire & (a_part == 0)),
                     krp.en.eq(1), krp.addr.eq(Mux(self.a_go, 0, c_count + c_fire))]
        k1 = krp.data
        combined = Signal(signed(self.acc_width + 1))
        m.d.comb += combined.eq(Mux(a_part == 1, k1 + self.c_stream.payload,
                                    k1 - self.c_stream.payload))
        half = Signal(unsigned(self.acc_width + 2))
        m.d.comb += half.eq((Const(1, 1) << self.shift) >> 1)
        rounded = Signal(signed(self.acc_width + 3))
        m.d.comb += rounded.eq((combined + half) >> self.shift)
        lo, hi = -(1 << (d_bits - 1)), (1 << (d_bits - 1)) - 1
        sat = Mux(rounded > hi, hi, Mux(rounded < lo, lo, rounded))
        m.submodules.spec_re = zre = Memory(shape=signed(d_bits), depth=self.spectral_words,
                                            init=[])
        m.submodules.spec_im = zim = Memory(shape=signed(d_bits), depth=self.spectral_words,
                                            init=[])
        zre_wp, zre_rp = zre.write_port(), zre.read_port()
        zim_wp, zim_rp = zim.write_port(), zim.read_port()
        z_waddr = Cat(c_bin, c_count)             # (t·F + f)·N² + bin
        m.d.comb += [zre_wp.addr.eq(z_waddr), zre_wp.data.eq(sat),
                     zre_wp.en.eq(c_fire & (a_part == 2)),
                     zim_wp.addr.eq(z_waddr), zim_wp.data.eq(sat),
                     zim_wp.en.eq(c_fire & (a_part == 1))]

        # ---- phase 3: output spectra → IFFT → overlap-add ------------------------------------
        inv_ready = fft.i_stream.ready & inverse
        z_addr, z_left, z_valid_r = memory_streamer(m, [zre_rp, zim_rp], inv_ready,
                                                    self.spectral_words, "spec_z")
        # bin (u, v) of the word the streamer reads; v > N/2 reads conj of (−u mod N, N − v)
        zu, zv = z_addr[lg:2 * lg], z_addr[:lg]
        mirror = zv > n // 2
        mu, mv = Signal(lg), Signal(lg)
        m.d.comb += [mu.eq(-zu), mv.eq(n - zv)]
        z_raddr = Signal.like(z_addr)
        m.d.comb += z_raddr.eq(Mux(mirror, Cat(mv, mu, z_addr[2 * lg:]), z_addr))
        m.d.comb += [zre_rp.addr.eq(z_raddr), zim_rp.addr.eq(z_raddr)]   # overrides the streamer's
        conj = Signal()
        with m.If(~z_valid_r | inv_ready):          # the streamer's read enable
            m.d.sync += conj.eq(mirror)
        neg_im = Mux(zim_rp.data == lo, hi, -zim_rp.data)
        m.d.comb += [z_valid.eq(z_valid_r), z_re.eq(zre_rp.data),
                     z_im.eq(Mux(conj, neg_im, zim_rp.data))]
        with m.If(self.inv_go):
            m.d.sync += [z_addr.eq(0), z_left.eq(mn << (2 * lg))]
        m.d.comb += self.inv_first.eq(in_fire & inverse & (z_addr == 1))

        # position of the IFFT sample leaving now: (x, y) in the tile, filter f, tile (tx, ty)
        db = len(self.out_h)
        ox, oy = Signal(lg), Signal(lg)
        of = Signal(unsigned(db))
        otx, oty = Signal(unsigned(db)), Signal(unsigned(db))
        inv_fire = out_fire & inverse
        last_tile = Signal()
        m.d.comb += last_tile.eq((of == self.filters - 1) & (otx == self.tiles_w - 1)
                                 & (oty * self.tiles_w + otx == self.tiles - 1))
        m.d.comb += self.inv_last.eq(inv_fire & (ox == n - 1) & (oy == n - 1) & last_tile)
        with m.If(self.inv_go):
            m.d.sync += [ox.eq(0), oy.eq(0), of.eq(0), otx.eq(0), oty.eq(0)]
        with m.Elif(inv_fire):
            m.d.sync += ox.eq(ox + 1)
            with m.If(ox == n - 1):
                m.d.sync += oy.eq(oy + 1)
                with m.If(oy == n - 1):
                    m.d.sync += of.eq(of + 1)
                    with m.If(of == self.filters - 1):
                        m.d.sync += [of.eq(0), otx.eq(otx + 1)]
                        with m.If(otx == self.tiles_w - 1):
                            m.d.sync += [otx.eq(0), oty.eq(oty + 1)]
        pos_bits = 2 * db + 2
        # big-image row and column (signed first: unsigned differences would wrap)
        by, bx = Signal(signed(pos_bits)), Signal(signed(pos_bits))
        py, px = Signal(signed(pos_bits)), Signal(signed(pos_bits))
        m.d.comb += [by.eq(oty * self.step + oy), bx.eq(otx * self.step + ox),
                     py.eq(by - self.kernel + 1), px.eq(bx - self.kernel + 1)]
        inside = (py >= 0) & (py < self.out_h) & (px >= 0) & (px < self.out_w)
        first = (((oty == 0) | (oy >= self.kernel - 1))
                 & ((otx == 0) | (ox >= self.kernel - 1)))
        oa_addr = Signal(range(self.out_words))
        m.d.comb += oa_addr.eq((py * self.out_w + px) * self.filters + of)

        m.submodules.overlap_add = oabuf = Memory(shape=signed(self.acc_width),
                                                  depth=self.out_words, init=[])
        owp = oabuf.write_port()
        orp_rmw = oabuf.read_port(transparent_for=(owp,))
        orp_out = oabuf.read_port()
        w_valid, w_first = Signal(), Signal()
        w_addr = Signal.like(oa_addr)
        w_val = Signal(signed(d_bits))
        m.d.sync += [w_valid.eq(inv_fire & inside), w_first.eq(first), w_addr.eq(oa_addr),
                     w_val.eq(fft.o_stream.payload.re)]
        m.d.comb += [orp_rmw.en.eq(1), orp_rmw.addr.eq(oa_addr),
                     owp.addr.eq(w_addr), owp.en.eq(w_valid),
                     owp.data.eq(Mux(w_first, w_val, orp_rmw.data + w_val))]

        # ---- drain of the overlap-add buffer -------------------------------------------------
        q_addr, q_left, q_valid = memory_streamer(m, [orp_out], self.o_stream.ready,
                                                  self.out_words, "oadd")
        with m.If(self.out_go):
            m.d.sync += [q_addr.eq(0), q_left.eq(self.out_words_n)]
        m.d.comb += [self.o_stream.valid.eq(q_valid), self.o_stream.payload.eq(orp_out.data)]
        return m
