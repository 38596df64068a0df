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

**Sparse phase 2** (``sparse_fft``, with ``sparse`` parameters: ``smac_go`` while
``sparse_on``): instead of the array, the sparse MAC unit (``rtl.sparse_fft.SparseMAC``, P
lanes, B banks) multiplies the input spectra by pruned kernel spectra.  Per tile t, per group
of P filters (f₀ = 0, P, 2P, …; the last has F − f₀ lanes) and per channel c:

a. **spectrum load**: the N·(N/2+1) bins (u, v ≤ N/2) of (t, c), u-major, are read from the
   input spectrum buffer and written into the banks at their placement, one a cycle
   (bins + 1 cycles from the first read to the last write);
b. **steps**: the schedule memory, read from where the previous pair stopped, presents one
   step a cycle until the step marked ``last`` is taken (each step is held while lanes
   conflict on a bank: the compiled schedule never stalls); each lane multiplies and adds
   into its accumulator of the bin;

after the group's last channel, once the MAC pipeline is empty (``active`` low), the
accumulators are dumped, one bin (all lanes) a beat, and written one lane a cycle, each part
requantised like the array's C sink (``shift``, half up, saturated), into the output spectrum
of (t, f₀ + lane) at bin (u, v); then the next group starts its sums (``new_sum``), or the
next tile rewinds the kernel pointers and the schedule.  Each lane's kernel bank holds, in
the order the schedule consumes them, the non-zeros of its filters over all groups and
channels (written through ``sk_*`` at lane·2^k + index); the schedule memory the steps of
every (group, channel) pair, group-major (``ss_*``); the placement table bin → (bank, row)
(``sp_*``).  ``smac_last`` pulses with the last output-spectrum write.  Cycles:
``dse.lowering.sparse_fft``.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .fft import FFT2D, complex_layout
from .memstream import memory_streamer
from .params import COUNTER_BITS, SparseParams
from .sparse_fft import SparseMAC, step_layout
from .validate import check_int, reject

__all__ = ["SpectralPath", "sparse_step_word", "sparse_kernel_address_bits", "sparse_ports"]


def sparse_step_word(params: SparseParams) -> data.StructLayout:
    """One word of the sparse schedule memory: a step and whether it is its (group,
    channel) pair's last."""
    return data.StructLayout({"step": step_layout(params), "last": 1})


def sparse_kernel_address_bits(params: SparseParams) -> int:
    """Bits of the kernel-bank index in ``sk_addr`` (lane · 2^bits + index)."""
    return max(1, (params.max_nnz - 1).bit_length())


def sparse_ports(params: SparseParams, steps: int) -> dict:
    """The sparse unit's host ports (signature members) of a path or datapath that has one:
    the kernel-bank (``sk_*``), schedule (``ss_*``, ``steps`` words) and placement
    (``sp_*``) writes, and the counters."""
    def bits(n):
        return max(1, (n - 1).bit_length())

    return {
        "sk_addr": In(bits(params.lanes) + sparse_kernel_address_bits(params)),
        "sk_data": In(complex_layout(params.kernel_width)), "sk_en": In(1),
        "ss_addr": In(range(steps)), "ss_data": In(sparse_step_word(params)), "ss_en": In(1),
        "sp_addr": In(bits(params.bins)),
        "sp_data": In(data.StructLayout({"bank": bits(params.banks),
                                         "row": bits(params.bank_depth)})),
        "sp_en": In(1),
        "smac_cycles": Out(COUNTER_BITS), "smac_stall_cycles": Out(COUNTER_BITS),
        "smac_conflict": Out(1),
    }


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
    sparse:
        The sparse MAC unit's :class:`~rtl.params.SparseParams` (bins N·(N/2+1), data width
        ``a_width − 1``), or ``None`` for none.
    sparse_steps:
        Depth of the sparse schedule memory.

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
    sparse_on, smac_go, smac_last : with ``sparse``: the layer runs phase 2 on the sparse
        unit; its start and its last output-spectrum write
    sk_addr, sk_data, sk_en; ss_addr, ss_data, ss_en; sp_addr, sp_data, sp_en : with
        ``sparse``: kernel-bank, schedule and placement writes
    smac_cycles, smac_stall_cycles, smac_conflict : with ``sparse``: cycles of the sparse
        phase (``smac_go`` through ``smac_last``), the unit's stall cycles, its sticky
        conflict flag
    """

    def __init__(self, n: int, precision: int, a_width: int, acc_width: int,
                 spectral_words: int, max_mn: int, out_words: int, dim_bits: int,
                 sparse: SparseParams | None = None, sparse_steps: int = 2):
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
        self.sparse, self.sparse_steps = sparse, sparse_steps
        ports = {}
        if sparse is not None:
            if not isinstance(sparse, SparseParams):
                reject(self, TypeError(f"sparse must be a SparseParams or None, not "
                                       f"{sparse!r}"))
            check_int(self, "sparse_steps", sparse_steps, 2)
            bins = n * (n // 2 + 1)
            if sparse.bins != bins or sparse.data_width != self.data_bits:
                reject(self, ValueError(f"sparse must have bins = {bins} and data_width = "
                                        f"{self.data_bits}, not {sparse.bins} and "
                                        f"{sparse.data_width}"))
            ports = {"sparse_on": In(1), "smac_go": In(1), "smac_last": Out(1),
                     **sparse_ports(sparse, sparse_steps)}
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
            **ports,
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

        if self.sparse is not None:
            self._sparse_phase(m, xrp, mk, zre_wp, zim_wp, lo, hi)

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

    def _sparse_phase(self, m, xrp, mk, zre_wp, zim_wp, lo, hi):
        """Phase 2 on the sparse MAC unit (module docstring, "Sparse phase 2"): drives the
        input-spectrum read port and the output-spectrum write ports while it runs."""
        sp = self.sparse
        n, lg = self.n, self.lg
        half = n // 2
        bins = sp.bins
        lanes = sp.lanes
        m.submodules.sparse_mac = mac = SparseMAC(sp)

        # ---- host writes: placement table, kernel banks, schedule memory -------------------
        ib = sparse_kernel_address_bits(sp)
        m.d.comb += [mac.place.valid.eq(self.sp_en), mac.place.payload.bin.eq(self.sp_addr),
                     mac.place.payload.bank.eq(self.sp_data.bank),
                     mac.place.payload.row.eq(self.sp_data.row),
                     mac.w_stream.valid.eq(self.sk_en),
                     mac.w_stream.payload.index.eq(self.sk_addr[:ib]),
                     mac.w_stream.payload.lane.eq(self.sk_addr[ib:]),
                     mac.w_stream.payload.value.eq(self.sk_data)]
        word = sparse_step_word(sp)
        m.submodules.sparse_steps = smem = Memory(shape=word, depth=self.sparse_steps,
                                                  init=[])
        swp, srp = smem.write_port(), smem.read_port()
        m.d.comb += [swp.addr.eq(self.ss_addr), swp.data.eq(self.ss_data),
                     swp.en.eq(self.ss_en)]

        # ---- the loop: tile, group, channel -------------------------------------------------
        s_idle, s_load, s_step, s_wait, s_dump = range(5)
        state = Signal(range(5), name="smac_state")
        tile = Signal.like(self.tiles, name="smac_tile")
        chan = Signal.like(self.chans, name="smac_chan")
        f0 = Signal.like(self.filters, name="smac_f0")          # the group's first filter
        tc = Signal(range(self.spectral_words + 1), name="smac_tc")   # t·C + c
        tf = Signal(range(self.max_mn + 1), name="smac_tf")           # t·F + f0
        group_lanes = Signal(range(lanes + 1), name="smac_group_lanes")
        m.d.comb += group_lanes.eq(Mux(self.filters - f0 >= lanes, lanes, self.filters - f0))
        last_tile = tile == self.tiles - 1
        last_group = f0 + lanes >= self.filters
        last_chan = chan == self.chans - 1

        # spectrum load: read bin (u, v) of (t, c), write it into the banks a cycle later
        xu, xv = Signal(lg, name="smac_xu"), Signal(lg, name="smac_xv")
        xbin = Signal(range(bins), name="smac_xbin")
        w_valid = Signal(name="smac_w_valid")
        w_bin = Signal(range(bins), name="smac_w_bin")
        loading = state == s_load
        m.d.sync += [w_valid.eq(loading), w_bin.eq(xbin)]
        m.d.comb += [mac.x_stream.valid.eq(w_valid), mac.x_stream.payload.bin.eq(w_bin),
                     mac.x_stream.payload.value.eq(xrp.data)]
        with m.If(loading):
            m.d.comb += [xrp.en.eq(1), xrp.addr.eq(Cat(xv, xu) * mk + tc)]
            m.d.sync += xbin.eq(xbin + 1)
            with m.If(xv == half):
                m.d.sync += [xv.eq(0), xu.eq(xu + 1)]
            with m.Else():
                m.d.sync += xv.eq(xv + 1)

        # schedule reader: a one-word output register, stopped by the pair's last step
        s_addr = Signal(range(self.sparse_steps), name="smac_s_addr")
        s_valid = Signal(name="smac_s_valid")
        stepping = state == s_step
        step_word = word(srp.data)
        take = s_valid & mac.steps.ready
        take_last = take & step_word.last
        advance = ~s_valid | mac.steps.ready
        m.d.comb += [srp.addr.eq(s_addr), srp.en.eq(stepping & advance),
                     mac.steps.valid.eq(s_valid), mac.steps.payload.eq(step_word.step)]
        with m.If(stepping & advance):
            m.d.sync += s_valid.eq(~take_last)
            with m.If(~take_last):
                m.d.sync += s_addr.eq(s_addr + 1)

        # dump: one beat (a bin, all lanes) taken per group_lanes cycles, a lane a cycle
        du, dv = Signal(lg, name="smac_du"), Signal(lg, name="smac_dv")
        dbin = Signal(range(bins), name="smac_dbin")
        dl = Signal(range(lanes), name="smac_dl")
        o = mac.o_stream
        dumping = state == s_dump
        lane_last = dl == group_lanes - 1
        m.d.comb += o.ready.eq(dumping & lane_last)
        lane_re = Array(o.payload[k].re for k in range(lanes))[dl]
        lane_im = Array(o.payload[k].im for k in range(lanes))[dl]
        shift = self.shift
        rnd = Signal(unsigned(sp.acc_width + 2), name="smac_half")
        m.d.comb += rnd.eq((Const(1, 1) << shift) >> 1)

        def requant(v, name):
            r = Signal(signed(sp.acc_width + 3), name=name)
            m.d.comb += r.eq((v + rnd) >> shift)
            return Mux(r > hi, hi, Mux(r < lo, lo, r))

        z_write = dumping & o.valid
        z_addr = Cat(dv, du, tf + dl)            # (t·F + f)·N² + u·N + v
        with m.If(z_write):
            m.d.comb += [zre_wp.addr.eq(z_addr), zim_wp.addr.eq(z_addr),
                         zre_wp.data.eq(requant(lane_re, "smac_re")),
                         zim_wp.data.eq(requant(lane_im, "smac_im")),
                         zre_wp.en.eq(1), zim_wp.en.eq(1)]
            m.d.sync += dl.eq(Mux(lane_last, 0, dl + 1))
            with m.If(lane_last):
                m.d.sync += dbin.eq(dbin + 1)
                with m.If(dv == half):
                    m.d.sync += [dv.eq(0), du.eq(du + 1)]
                with m.Else():
                    m.d.sync += dv.eq(dv + 1)
        group_done = z_write & lane_last & (dbin == bins - 1)
        m.d.comb += self.smac_last.eq(group_done & last_group & last_tile)

        # ---- control ---------------------------------------------------------------------
        start_load = [xu.eq(0), xv.eq(0), xbin.eq(0)]
        m.d.comb += [mac.clear.eq(self.smac_go),
                     mac.rewind.eq(group_done & last_group),
                     mac.new_sum.eq(group_done)]
        with m.If(self.smac_go & self.sparse_on):
            m.d.sync += [state.eq(s_load), tile.eq(0), chan.eq(0), f0.eq(0), tc.eq(0),
                         tf.eq(0), s_addr.eq(0), s_valid.eq(0), *start_load]
        with m.Elif(loading):
            with m.If(xbin == bins - 1):
                m.d.sync += state.eq(s_step)
        with m.Elif(stepping):
            with m.If(take_last):
                m.d.sync += state.eq(Mux(last_chan, s_wait, s_load))
                with m.If(~last_chan):
                    m.d.sync += [chan.eq(chan + 1), tc.eq(tc + 1), *start_load]
        with m.Elif(state == s_wait):
            with m.If(~mac.active):
                m.d.comb += mac.dump.eq(1)
                m.d.sync += [state.eq(s_dump), dl.eq(0), du.eq(0), dv.eq(0), dbin.eq(0)]
        with m.Elif(dumping):
            with m.If(group_done):
                m.d.sync += [chan.eq(0), *start_load]
                with m.If(~last_group):             # the next group of this tile
                    m.d.sync += [state.eq(s_load), f0.eq(f0 + lanes), tf.eq(tf + lanes),
                                 tc.eq(tc - (self.chans - 1))]
                with m.Elif(~last_tile):            # the next tile: schedule from the top
                    m.d.sync += [state.eq(s_load), tile.eq(tile + 1), f0.eq(0),
                                 tf.eq(tf + group_lanes), tc.eq(tc + 1), s_addr.eq(0)]
                with m.Else():
                    m.d.sync += state.eq(s_idle)

        # ---- counters ----------------------------------------------------------------------
        count = Signal(COUNTER_BITS, name="smac_count")
        with m.If(self.smac_go & self.sparse_on):
            m.d.sync += count.eq(1)
        with m.Elif(state != s_idle):
            m.d.sync += count.eq(count + 1)
        m.d.comb += [self.smac_cycles.eq(count), self.smac_stall_cycles.eq(mac.stall_cycles),
                     self.smac_conflict.eq(mac.conflict)]
