"""The pool / element-wise engine: max and average pooling, global pooling, add, rescale.

:class:`PoolEngine` executes the pool engine's instructions as the controller hands them
(``rtl.controller.command_layout(Engine.POOL)``): a ``pool.setup`` is held (its ``done`` comes
in its transfer's cycle), and each ``pool.tile`` reads a tile of HWC words from the input
buffer (and, for ``add``, the second operand's words from the aux buffer), and writes the
result words to the output buffer.  The numerics are ``sim/models/pool.py``'s, bit for bit:
every mode forms an integer ``v`` per output word lane (a window max or sum, a tile max or
sum, ``a``, or ``a · mult + b · mult2``), then ``sat(round(v · mult / 2^shift))`` (``add``:
``sat(round(v / 2^shift))``) with round half up as "add 2^(shift−1), then shift right
arithmetically", saturation to int8, and the optional ReLU.  The quantised modes (an
engine built with ``qdq``) compute onnxruntime's integer kernels instead: ``qadd``
(QLinearAdd), ``qgavg`` (QLinearGlobalAveragePool) and ``lut``, each element replaced by the
entry of a 256-entry table that ``pool.lut`` instructions write (QLinearConcat's
requantisation of an input whose scale or zero point differs from the output's).

One address generator serves every mode (docs/rtl.md, "Pool / element-wise engine"): it walks
output pixels (row-major), then a pixel's ⌈ch / lanes⌉ words, then the window's taps (rows,
then columns), one tap per cycle, with

=====================  ==============================  ========  ======================
mode                   window                          stride    pads
=====================  ==============================  ========  ======================
``max``, ``avg``       ``kh`` × ``kw``                 stride    the tile's
``gmax``, ``gavg``     the whole tile, rows × cols     1         none
``add``, ``qadd``      1 × 1                           1         none
``rescale``, ``lut``   1 × 1                           1         none
=====================  ==============================  ========  ======================

A tap inside the tile reads its word (a synchronous read port: the data one cycle after
``in_en``); a padding tap reads nothing and counts as −128 (max, the int8 minimum: padding is
ignored) or 0 (sum).  Pointers are updated by addition only; the products a tile needs
(``cols`` × words, the row pitch; then ``stride`` and ``pad_t`` × the row pitch) take the two
start-up cycles before the first tap.  Behind the generator: the accumulator (max or sum of the window), the product
``v · mult + b · mult2``, then rounding, saturation and ReLU, each a register stage; the result
word is written in the cycle after its last stage.

Throughput: one window tap per cycle, so one output word per cycle in the element-wise modes,
one per kh·kw cycles in the windowed modes (overlapping windows re-read their words) and one
per rows·cols cycles in the global modes (every input word read once).  From a tile's transfer
to its ``done``: ``dse.cost.transforms.pool_cycles`` (taps + ``POOL_LATENCY``), exactly;
``done`` comes the cycle after the last write.  A windowed tile whose window does not fit its
padded tile is refused: ``done`` and ``error`` in the cycle after its transfer, nothing written.

Wider words (an overlay with rows ≠ cols, ``rtl.pool_layout``): the engine works on groups of
``lanes`` lanes a cycle, a pixel of ``ch`` channels being ⌈ch / lanes⌉ groups; its input
words (feature and aux) may hold ``in_lanes`` = a · ``lanes`` lanes and its output words
``out_lanes`` = b · ``lanes`` (a, b powers of two, one of them 1).  With a > 1 the input
pointers count groups (a pixel is ⌈ch / in_lanes⌉ · a groups apart, the word address is the
pointer over a, and the tap's group is picked out of the word read, the pointer's low bits
registered beside it); with b > 1 a pixel's groups fill its ⌈ch / out_lanes⌉ output words in
order, the earlier groups of a word waiting in a register, the word written with its last
group (its slot b − 1 or the pixel's last group: the slots after that are 0), in that group's
cycle.  So taps, cycles and ``done`` are those of the groups, ``pool_cycles`` with
``ch_words`` = ⌈ch / lanes⌉, and with a = b = 1 the engine is the plain one.

Widths: int8 data; the accumulator holds :data:`SUM_BITS` signed bits, enough for the sum of any
tile the ISA can describe (4095 × 4095 pixels of −128: −2,146,435,200 > −2^31) and so of any
window (at most 15 × 15 × 128 = 28,800); ``mult`` and ``mult2`` are
:data:`rtl.params.REQUANT_MULT_BITS` unsigned bits, ``shift`` :data:`rtl.params.REQUANT_SHIFT_BITS`.
Buffer addresses are computed modulo 2^20 (``rtl.isa.BUF_ADDR_BITS``) and presented modulo the
ports' 2^⌈log2 depth⌉; the compiler keeps them in range.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.controller import command_layout
from rtl.isa import (
    BUF_ADDR_BITS,
    CHANNEL_BITS,
    EXTENT_BITS,
    SMALL_BITS,
    Activation,
    Engine,
    LUT_ENTRIES_PER_INSTRUCTION,
    LUT_INSTRUCTIONS,
    PoolLut,
    PoolMode,
    PoolQAdd,
    PoolRequant,
    PoolSetup,
)
from rtl.params import (COUNTER_BITS, FLOAT32_MANTISSA_BITS, QADD_EXPONENT_BITS, QADD_LATENCY,
                        QADD_SETTING_BITS, REQUANT_F32_LATENCY, REQUANT_MULT_BITS,
                        REQUANT_SHIFT_BITS)
from rtl.qadd_f32 import QAddF32
from rtl.requant_f32 import RequantF32

from .validate import rejecting

__all__ = ["DATA_BITS", "SUM_BITS", "PoolEngine"]

#: Bits of a buffer lane: int8 activations.
DATA_BITS = 8
#: Signed bits of the accumulator: the sum of a whole 4095 × 4095 tile of int8 fits.
SUM_BITS = 32

_ADDR_MASK = (1 << BUF_ADDR_BITS) - 1
_COORD = signed(EXTENT_BITS + 3)            # −15 … 4095 + 30, with room to compare
_MODE_BITS = next(f.bits for f in PoolSetup.LAYOUT if f.name == "mode")


class PoolEngine(wiring.Component):
    """Pooling and element-wise operations on HWC word tiles (module docstring).

    Parameters
    ----------
    lanes:
        int8 lanes the engine works on a cycle (1 to 256); a pixel of ``ch`` channels takes
        ⌈ch / lanes⌉ words (groups, with wider words).
    in_lanes, out_lanes:
        int8 lanes per input (feature, aux) word and per output word: ``lanes`` (the
        default) times a power of two, at most 256, one of them ``lanes`` (module
        docstring, "Wider words").
    depth:
        Depth of the input (feature) buffer, in words (at least 2).
    in2_depth, out_depth:
        Depths of the aux buffer (``add``'s second operand) and of the output buffer
        (default: ``depth``).
    qdq:
        Build the quantised-network modes' units (an overlay that requantises per channel):
        ``qadd``'s QLinearAdd (``rtl/qadd_f32.py``), ``qgavg``'s float32-exact
        requantiser (``rtl/requant_f32.py``), ``lanes`` lanes each, and ``lut``'s table
        (:data:`rtl.isa.LUT_ENTRIES` int8 entries, written by ``pool.lut``, one read port a
        lane).  Without them a ``qadd``, ``qgavg`` or ``lut`` tile computes nothing
        meaningful (the compiler emits none).

    Members
    -------
    cmd : In(stream.Signature(command_layout(Engine.POOL)))
        The controller's command (a ``pool.setup`` or ``pool.tile``'s used bits); taken
        while no tile is in progress.
    done : Out(1)
        One-cycle pulse when a command has finished: a setup in its transfer's cycle, a tile
        the cycle after its last write.
    error : Out(1)
        With ``done``: the tile was refused (its window does not fit its padded tile).
    busy : Out(1)
        A tile is in progress (from the cycle after its transfer through its ``done``).
    in_addr : Out(ceil_log2(depth)), in_en : Out(1), in_data : In(ArrayLayout(signed(8), in_lanes))
        The input buffer's read port: ``in_data`` holds the word of ``in_addr`` the cycle
        after ``in_en``.
    in2_addr, in2_en, in2_data :
        The aux buffer's read port, likewise (``add`` only).
    out_addr, out_en, out_data :
        The output buffer's write port, words of ``out_lanes`` lanes (written at the clock
        edge that ends an ``out_en`` cycle).
    busy_cycles, words_written : Out(COUNTER_BITS)
        Cycles with a tile in progress and result words written, since reset.

    Raises
    ------
    TypeError, ValueError
        For a parameter of the wrong kind or value ("*name* must be …, not …").
    """

    def __init__(self, lanes: int = 8, depth: int = 1024, *, in2_depth: int | None = None,
                 out_depth: int | None = None, in_lanes: int | None = None,
                 out_lanes: int | None = None, qdq: bool = False):
        with rejecting(self):
            if not isinstance(qdq, bool):
                raise TypeError(f"qdq must be a bool, not {qdq!r}")
            in2_depth = depth if in2_depth is None else in2_depth
            out_depth = depth if out_depth is None else out_depth
            in_lanes = lanes if in_lanes is None else in_lanes
            out_lanes = lanes if out_lanes is None else out_lanes
            for name, value, lo, hi in (("lanes", lanes, 1, 256),
                                        ("depth", depth, 2, 1 << BUF_ADDR_BITS),
                                        ("in2_depth", in2_depth, 2, 1 << BUF_ADDR_BITS),
                                        ("out_depth", out_depth, 2, 1 << BUF_ADDR_BITS)):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise TypeError(f"{name} must be an integer, not {value!r}")
                if not lo <= value <= hi:
                    raise ValueError(f"{name} must be between {lo} and {hi}, not {value}")
            for name, value in (("in_lanes", in_lanes), ("out_lanes", out_lanes)):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise TypeError(f"{name} must be an integer, not {value!r}")
                ratio = value // lanes
                if value % lanes or ratio & (ratio - 1) or value > 256:
                    raise ValueError(f"{name} must be lanes ({lanes}) times a power of two, "
                                     f"at most 256, not {value}")
            if in_lanes != lanes and out_lanes != lanes:
                raise ValueError(f"in_lanes or out_lanes must be lanes ({lanes}), not "
                                 f"{in_lanes} and {out_lanes}")
        self._lanes, self._depth = lanes, depth
        self._in_lanes, self._out_lanes = in_lanes, out_lanes
        self._in2_depth, self._out_depth = in2_depth, out_depth
        self._qdq = qdq
        word = data.ArrayLayout(signed(DATA_BITS), in_lanes)
        out_word = data.ArrayLayout(signed(DATA_BITS), out_lanes)
        super().__init__({
            "cmd": In(stream.Signature(command_layout(Engine.POOL))),
            "done": Out(1),
            "error": Out(1),
            "busy": Out(1),
            "in_addr": Out(range(depth)), "in_en": Out(1), "in_data": In(word),
            "in2_addr": Out(range(in2_depth)), "in2_en": Out(1), "in2_data": In(word),
            "out_addr": Out(range(out_depth)), "out_en": Out(1), "out_data": Out(out_word),
            "busy_cycles": Out(COUNTER_BITS),
            "words_written": Out(COUNTER_BITS),
        })

    @property
    def lanes(self) -> int:
        """int8 lanes per buffer word."""
        return self._lanes

    @property
    def in_lanes(self) -> int:
        """int8 lanes per input (feature and aux) buffer word: ``lanes`` × a power of two."""
        return self._in_lanes

    @property
    def out_lanes(self) -> int:
        """int8 lanes per output buffer word: ``lanes`` × a power of two."""
        return self._out_lanes

    @property
    def depth(self) -> int:
        """Depth of the input buffer."""
        return self._depth

    @property
    def in2_depth(self) -> int:
        """Depth of the aux buffer."""
        return self._in2_depth

    @property
    def out_depth(self) -> int:
        """Depth of the output buffer."""
        return self._out_depth

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes
        # a > 1: an input word holds a groups of ``lanes`` lanes; b > 1: an output word holds b
        # (module docstring, "Wider words").  Input pointers count groups: PB bits.
        a, b = self._in_lanes // lanes, self._out_lanes // lanes
        la = a.bit_length() - 1
        PB = BUF_ADDR_BITS + la
        cmd = self.cmd.payload
        su, ti = cmd.setup, cmd.tile
        take = self.cmd.valid & self.cmd.ready
        # pool.setup, pool.qadd and pool.requant are held settings: done in their transfer's
        # cycle
        is_qset = cmd.opcode == PoolQAdd.OPCODE
        is_rset = cmd.opcode == PoolRequant.OPCODE
        is_lset = cmd.opcode == PoolLut.OPCODE
        is_setup = (cmd.opcode == PoolSetup.OPCODE) | is_qset | is_rset | is_lset

        # -- pool.setup: held settings; the reset values are the ISA's defaults -----------
        mode = Signal(_MODE_BITS, init=PoolMode.MAX.code)
        kh = Signal(SMALL_BITS, init=1)
        kw = Signal(SMALL_BITS, init=1)
        stride = Signal(SMALL_BITS, init=1)
        words = Signal(CHANNEL_BITS, init=1)        # ⌈ch / lanes⌉ groups per pixel
        # groups from one pixel to the next in the input buffers: ⌈ch / in_lanes⌉ · a
        pitch = words if a == 1 else Signal(CHANNEL_BITS + la, init=a)
        relu = Signal()
        mult = Signal(REQUANT_MULT_BITS, init=1)
        shift = Signal(REQUANT_SHIFT_BITS)
        mult2 = Signal(REQUANT_MULT_BITS)
        with m.If(take & (cmd.opcode == PoolSetup.OPCODE)):
            m.d.sync += [mode.eq(su.mode), kh.eq(su.kh), kw.eq(su.kw), stride.eq(su.stride),
                         words.eq((su.ch + (lanes - 1)) // lanes),
                         *(() if a == 1 else
                           (pitch.eq(((su.ch + (self._in_lanes - 1)) // self._in_lanes) << la),)),
                         relu.eq(su.act == Activation.RELU.code),
                         mult.eq(su.mult), shift.eq(su.shift), mult2.eq(su.mult2)]

        def mode_in(*modes):
            return Cat(*(mode == pm.code for pm in modes)).any()

        windowed = mode_in(PoolMode.MAX, PoolMode.AVG)
        global_ = mode_in(PoolMode.GLOBAL_MAX, PoolMode.GLOBAL_AVG, PoolMode.QGAVG)
        is_max = mode_in(PoolMode.MAX, PoolMode.GLOBAL_MAX)
        is_add = mode_in(PoolMode.ADD, PoolMode.QADD)
        is_qadd = mode == PoolMode.QADD.code
        is_qgavg = mode == PoolMode.QGAVG.code
        is_lut = mode == PoolMode.LUT.code

        # -- pool.tile: the tile and its effective window (module docstring's table) -------
        rows = Signal(EXTENT_BITS)
        cols = Signal(EXTENT_BITS)
        win_h = Signal(EXTENT_BITS)
        win_w = Signal(EXTENT_BITS)
        step = Signal(SMALL_BITS)
        pad_t = Signal(SMALL_BITS)
        pad_b = Signal(SMALL_BITS)
        pad_l = Signal(SMALL_BITS)
        pad_r = Signal(SMALL_BITS)
        in_base = Signal(PB)                        # in groups
        in2_delta = Signal(PB)                      # in2 address − in address, in groups
        p_out = Signal(BUF_ADDR_BITS)               # the next result word's address
        with m.If(take & ~is_setup):
            delta = ti.in2_addr - ti.in_addr
            m.d.sync += [rows.eq(ti.rows), cols.eq(ti.cols),
                         in_base.eq(ti.in_addr << la if la else ti.in_addr),
                         in2_delta.eq(delta << la if la else delta), p_out.eq(ti.out_addr)]
            with m.If(windowed):
                m.d.sync += [win_h.eq(kh), win_w.eq(kw), step.eq(stride), pad_t.eq(ti.pad_t),
                             pad_b.eq(ti.pad_b), pad_l.eq(ti.pad_l), pad_r.eq(ti.pad_r)]
            with m.Else():
                m.d.sync += [win_h.eq(Mux(global_, ti.rows, 1)),
                             win_w.eq(Mux(global_, ti.cols, 1)), step.eq(1),
                             pad_t.eq(0), pad_b.eq(0), pad_l.eq(0), pad_r.eq(0)]

        # -- generator state --------------------------------------------------------------
        row_pitch = Signal(PB)                      # cols · pitch
        step_w = Signal(PB)                         # stride · pitch
        pad_w = Signal(PB)                          # pad_l · pitch
        iyb, ixb = Signal(_COORD), Signal(_COORD)   # the window's top-left (padded coords)
        iy, ix = Signal(_COORD), Signal(_COORD)     # the tap's
        ty, tx = Signal(EXTENT_BITS), Signal(EXTENT_BITS)
        w = Signal(CHANNEL_BITS)
        p_row = Signal(PB)                          # address of (iyb, 0), group 0
        p_win = Signal(PB)                          # (iyb, ixb), group 0
        p_w = Signal(PB)                            # (iyb, ixb), group w
        p_trow = Signal(PB)                         # (iy, ixb), group w
        p_tap = Signal(PB)                          # (iy, ix), group w
        step_row = Signal(PB)                       # stride · row_pitch
        j = Signal(range(b))                        # the group's slot in its output word
        running = Signal()                          # taps left to issue
        ended = Signal()                            # every tap issued

        tx_more = tx != win_w - 1
        ty_more = ty != win_h - 1
        w_more = w != words - 1
        ox_more = ixb + step + win_w <= cols + pad_r
        oy_more = iyb + step + win_h <= rows + pad_b
        inside = (iy >= 0) & (iy < rows) & (ix >= 0) & (ix < cols)
        first = (tx == 0) & (ty == 0)
        last = ~tx_more & ~ty_more
        fits = (rows + pad_t + pad_b >= win_h) & (cols + pad_l + pad_r >= win_w)

        v1, v2, v3, v4 = Signal(), Signal(), Signal(), Signal()
        finish = Signal()
        # The phases of a tile (none set: idle).  Flags rather than an FSM: Amaranth writes
        # an FSM as a Verilog case without a default, which the lint refuses.
        products = Signal()                         # start-up 1: cols·words, stride·words
        pointers = Signal()                         # start-up 2: the first tap's pointers
        run = Signal()                              # taps, then the pipeline drains
        m.d.comb += [self.busy.eq(products | pointers | run),
                     self.cmd.ready.eq(~self.busy)]
        with m.If(take):
            with m.If(is_setup):
                m.d.comb += self.done.eq(1)
            with m.Else():
                m.d.sync += products.eq(1)
        with m.If(products):
            m.d.sync += products.eq(0)
            with m.If(~fits):
                m.d.comb += [self.done.eq(1), self.error.eq(1)]
            with m.Else():
                m.d.sync += [row_pitch.eq(cols * pitch), step_w.eq(step * pitch),
                             pad_w.eq(pad_l * pitch),
                             iyb.eq(-pad_t), iy.eq(-pad_t), ixb.eq(-pad_l), ix.eq(-pad_l),
                             ty.eq(0), tx.eq(0), w.eq(0), pointers.eq(1)]
        if b > 1:
            with m.If(products):
                m.d.sync += j.eq(0)
        with m.If(pointers):
            start = (in_base - pad_t * row_pitch)[:PB]
            origin = (start - pad_w)[:PB]
            m.d.sync += [step_row.eq(step * row_pitch), p_row.eq(start), p_win.eq(origin),
                         p_w.eq(origin), p_trow.eq(origin), p_tap.eq(origin),
                         running.eq(1), ended.eq(0), pointers.eq(0), run.eq(1)]
        with m.If(run & finish):
            m.d.comb += self.done.eq(1)
            m.d.sync += run.eq(0)
        # the quantised modes' delay line (below): valid bits, one a register
        qv = [Signal(name=f"qv{n}") for n in range(QADD_LATENCY)] if self._qdq else []
        # (qgavg's result leaves the line at its REQUANT_F32_LATENCY-th register)
        in_line = (Mux(is_qgavg, Cat(*qv[:REQUANT_F32_LATENCY]).any(), Cat(*qv).any())
                   if qv else 0)
        m.d.comb += finish.eq(ended & ~v1 & ~v2 & ~v3 & ~v4 & ~in_line)

        # -- stage 0: issue one tap a cycle -----------------------------------------------
        m.d.comb += [
            self.in_addr.eq(p_tap[la:]),
            self.in_en.eq(running & inside),
            self.in2_addr.eq((p_tap + in2_delta)[la:PB]),
            self.in2_en.eq(running & inside & is_add),
        ]
        inb1, first1, last1 = Signal(), Signal(), Signal()
        o1 = Signal(BUF_ADDR_BITS)
        # an output word is written with its last group: its slot b − 1 or the pixel's last
        flush = (j == b - 1) | ~w_more
        m.d.sync += [v1.eq(running), inb1.eq(inside), first1.eq(first), last1.eq(last),
                     o1.eq(p_out)]
        # b > 1: the slot and the flush travel with the address, stage by stage
        js, fs = [j], [flush]
        if b > 1:
            for n in range(1, 5):
                js.append(Signal.like(j, name=f"j{n}"))
                fs.append(Signal(name=f"f{n}"))
            m.d.sync += [js[1].eq(j), fs[1].eq(flush)]
        if a > 1:
            sel1 = Signal(la)                       # the group's place in its input word
            m.d.sync += sel1.eq(p_tap[:la])
        with m.If(running):
            with m.If(last):
                if b == 1:
                    m.d.sync += p_out.eq(p_out + 1)
                else:
                    with m.If(flush):
                        m.d.sync += [p_out.eq(p_out + 1), j.eq(0)]
                    with m.Else():
                        m.d.sync += j.eq(j + 1)
            with m.If(tx_more):
                m.d.sync += [tx.eq(tx + 1), ix.eq(ix + 1), p_tap.eq(p_tap + pitch)]
            with m.Elif(ty_more):
                nxt = p_trow + row_pitch
                m.d.sync += [tx.eq(0), ix.eq(ixb), ty.eq(ty + 1), iy.eq(iy + 1),
                             p_trow.eq(nxt), p_tap.eq(nxt)]
            with m.Elif(w_more):
                nxt = p_w + 1
                m.d.sync += [tx.eq(0), ix.eq(ixb), ty.eq(0), iy.eq(iyb), w.eq(w + 1),
                             p_w.eq(nxt), p_trow.eq(nxt), p_tap.eq(nxt)]
            with m.Elif(ox_more):
                nxt = p_win + step_w
                m.d.sync += [tx.eq(0), ty.eq(0), w.eq(0), ixb.eq(ixb + step),
                             ix.eq(ixb + step), iy.eq(iyb), p_win.eq(nxt), p_w.eq(nxt),
                             p_trow.eq(nxt), p_tap.eq(nxt)]
            with m.Elif(oy_more):
                row = p_row + step_row
                nxt = row - pad_w
                m.d.sync += [tx.eq(0), ty.eq(0), w.eq(0), iyb.eq(iyb + step),
                             iy.eq(iyb + step), ixb.eq(-pad_l), ix.eq(-pad_l), p_row.eq(row),
                             p_win.eq(nxt), p_w.eq(nxt), p_trow.eq(nxt), p_tap.eq(nxt)]
            with m.Else():
                m.d.sync += [running.eq(0), ended.eq(1)]
        with m.If(finish):
            m.d.sync += ended.eq(0)

        # -- stage 1: accumulate the window (max or sum); padding is −128 or 0 -------------
        acc = Signal(data.ArrayLayout(signed(SUM_BITS), lanes))
        s2 = Signal(data.ArrayLayout(signed(SUM_BITS), lanes))
        b2 = Signal(data.ArrayLayout(signed(DATA_BITS), lanes))
        o2 = Signal(BUF_ADDR_BITS)
        identity = Mux(is_max, -(1 << (DATA_BITS - 1)), 0)
        acc_last = Signal(data.ArrayLayout(signed(SUM_BITS), lanes))  # the window's, at its last tap
        m.d.sync += [v2.eq(v1 & last1), o2.eq(o1)]
        if a == 1:
            in_g, in2_g = self.in_data, self.in2_data
        else:       # the tap's group of the words read
            gw = data.ArrayLayout(signed(DATA_BITS), lanes)
            in_g, in2_g = Signal(gw), Signal(gw)
            with m.Switch(sel1):
                for k in range(a):
                    with m.Case(k):
                        for i in range(lanes):
                            m.d.comb += [in_g[i].eq(self.in_data[k * lanes + i]),
                                         in2_g[i].eq(self.in2_data[k * lanes + i])]
        for i in range(lanes):
            x = Signal(signed(DATA_BITS), name=f"x{i}")
            m.d.comb += x.eq(Mux(inb1, in_g[i], identity))
            nxt = Signal(signed(SUM_BITS), name=f"acc_next{i}")
            with m.If(first1):
                m.d.comb += nxt.eq(x)
            with m.Elif(is_max):
                m.d.comb += nxt.eq(Mux(x > acc[i], x, acc[i]))
            with m.Else():
                m.d.comb += nxt.eq(acc[i] + x)
            m.d.comb += acc_last[i].eq(nxt)
            with m.If(v1):
                m.d.sync += acc[i].eq(nxt)
            with m.If(v1 & last1):
                m.d.sync += [s2[i].eq(nxt),
                             b2[i].eq(Mux(is_add & inb1, in2_g[i], 0))]

        # -- stage 2: v · mult + b · mult2 (b is 0 but in add) ---------------------------------
        prod_w = SUM_BITS + REQUANT_MULT_BITS + 2
        prod = Signal(data.ArrayLayout(signed(prod_w), lanes))
        o3 = Signal(BUF_ADDR_BITS)
        m.d.sync += [v3.eq(v2), o3.eq(o2)]
        for i in range(lanes):
            m.d.sync += prod[i].eq(s2[i] * mult + b2[i] * mult2)

        # -- lut: the table beside stages 2-3 (one read port a lane; the tap's unsigned byte
        # is the entry: its word, read in stage 1, and its byte, picked in stage 2) --------
        if self._qdq:
            lut3 = Signal(data.ArrayLayout(signed(DATA_BITS), lanes))
            per = LUT_ENTRIES_PER_INSTRUCTION
            m.submodules.lut = lut = memory.Memory(shape=DATA_BITS * per,
                                                   depth=LUT_INSTRUCTIONS, init=[])
            wr = lut.write_port()
            m.d.comb += [wr.en.eq(take & is_lset), wr.addr.eq(cmd.lut.index),
                         wr.data.eq(cmd.lut.entries)]
            for i in range(lanes):
                rd = lut.read_port()
                entry = Signal(DATA_BITS, name=f"lut_entry{i}")
                byte = Signal(range(per), name=f"lut_byte{i}")
                m.d.comb += [entry.eq(in_g[i].as_unsigned() ^ (1 << (DATA_BITS - 1))),
                             rd.addr.eq(entry[per.bit_length() - 1:])]
                m.d.sync += [byte.eq(entry[:per.bit_length() - 1]),
                             lut3[i].eq(rd.data.word_select(byte, DATA_BITS))]

        # -- stage 3: round half up, saturate, ReLU (lut: the entry) ----------------------
        # A shift past prod_w gives 0 for every product, as a shift of prod_w does.
        sh = Signal(range(prod_w + 1))
        m.d.comb += sh.eq(Mux(shift > prod_w, prod_w, shift))
        half = Signal(prod_w)
        m.d.comb += half.eq((1 << sh) >> 1)
        out = Signal(data.ArrayLayout(signed(DATA_BITS), lanes))
        o4 = Signal(BUF_ADDR_BITS)
        lo, hi = -(1 << (DATA_BITS - 1)), (1 << (DATA_BITS - 1)) - 1
        m.d.sync += [v4.eq(v3), o4.eq(o3)]
        if b > 1:
            m.d.sync += [js[n + 1].eq(js[n]) for n in range(1, 4)]
            m.d.sync += [fs[n + 1].eq(fs[n]) for n in range(1, 4)]
        for i in range(lanes):
            rounded = Signal(signed(prod_w + 1), name=f"rounded{i}")
            m.d.comb += rounded.eq((prod[i] + half) >> sh)
            sat = Mux(rounded > hi, hi, Mux(rounded < lo, lo, rounded))
            result = Mux(relu & (sat < 0), 0, sat)
            m.d.sync += out[i].eq(Mux(is_lut, lut3[i], result) if self._qdq else result)

        # -- qadd, qgavg: the QLinearAdd unit and the float32-exact requantiser beside stages
        # 2-3.  Each takes stage 1's operands (qadd: the tap's two; qgavg: the tile's sum) in
        # its cycle and gives the result QADD_LATENCY or REQUANT_F32_LATENCY cycles later
        # (they never stall: their sinks are always ready); the word's address, slot and
        # flush wait as long in a delay line.
        j1, f1, j4_, f4_ = (js[1], fs[1], js[4], fs[4]) if b > 1 else (j, flush, j, flush)
        if self._qdq:
            m.submodules.qadd = qu = QAddF32(lanes)
            m.submodules.requant = rq = RequantF32(lanes, signed_out=True)
            r_bias = Signal(signed(SUM_BITS))
            with m.If(take & is_rset):
                m.d.sync += [r_bias.eq(cmd.requant.bias), rq.mantissa.eq(cmd.requant.mantissa),
                             rq.exponent.eq(cmd.requant.exponent.as_signed()),
                             rq.zero_point.eq(cmd.requant.zero_point.as_signed())]
            m.d.comb += [rq.o_stream.ready.eq(1),
                         rq.i_stream.valid.eq(v1 & last1 & is_qgavg)]
            for i in range(lanes):
                m.d.comb += rq.i_stream.payload[i].eq((acc_last[i] + r_bias)[:SUM_BITS])
            ra, rb, ff = (Signal(QADD_SETTING_BITS, name=n) for n in ("q_ra", "q_rb", "q_f"))
            with m.If(take & is_qset):
                m.d.sync += [ra.eq(cmd.qadd.r_a), rb.eq(cmd.qadd.r_b), ff.eq(cmd.qadd.f)]
            mb = FLOAT32_MANTISSA_BITS
            for name, word in (("ra", ra), ("rb", rb), ("f", ff)):
                m.d.comb += [getattr(qu, f"{name}_mantissa").eq(word[:mb]),
                             getattr(qu, f"{name}_exponent").eq(
                                 word[mb:mb + QADD_EXPONENT_BITS].as_signed())]
            m.d.comb += [qu.f_sign.eq(ff[-1]), qu.o_stream.ready.eq(1),
                         qu.i_stream.valid.eq(v1 & last1 & is_qadd)]
            for i in range(lanes):
                m.d.comb += [qu.i_stream.payload.a[i].eq(in_g[i]),
                             qu.i_stream.payload.b[i].eq(in2_g[i])]
            qo = [Signal(BUF_ADDR_BITS, name=f"qo{n}") for n in range(QADD_LATENCY)]
            qj = [Signal.like(j, name=f"qj{n}") for n in range(QADD_LATENCY)]
            qf = [Signal(name=f"qf{n}") for n in range(QADD_LATENCY)]
            m.d.sync += [qv[0].eq(v1 & last1 & (is_qadd | is_qgavg)), qo[0].eq(o1),
                         qj[0].eq(j1), qf[0].eq(f1)]
            for n in range(1, QADD_LATENCY):
                m.d.sync += [qv[n].eq(qv[n - 1]), qo[n].eq(qo[n - 1]), qj[n].eq(qj[n - 1]),
                             qf[n].eq(qf[n - 1])]
            # the last stage: the normal path's or the unit's (one mode a tile)
            vL, oL, jL, fL = Signal(), Signal.like(o4), Signal.like(j), Signal()
            outL = Signal.like(out)
            r = REQUANT_F32_LATENCY - 1
            with m.If(is_qadd):
                m.d.comb += [vL.eq(qv[-1]), oL.eq(qo[-1]), jL.eq(qj[-1]), fL.eq(qf[-1]),
                             outL.eq(qu.o_stream.payload.c)]
            with m.Elif(is_qgavg):
                m.d.comb += [vL.eq(qv[r]), oL.eq(qo[r]), jL.eq(qj[r]), fL.eq(qf[r]),
                             outL.eq(rq.o_stream.payload)]
            with m.Else():
                m.d.comb += [vL.eq(v4), oL.eq(o4), jL.eq(j4_), fL.eq(f4_), outL.eq(out)]
        else:
            vL, oL, jL, fL, outL = v4, o4, j4_, f4_, out

        # -- stage 4: the write -----------------------------------------------------------
        if b == 1:
            m.d.comb += [self.out_en.eq(vL), self.out_addr.eq(oL), self.out_data.eq(outL)]
        else:
            # the output word's earlier groups wait in ``held`` (zero past the pixel's last
            # group); the word is written with its last group, in that group's cycle
            held = Signal(data.ArrayLayout(signed(DATA_BITS), self._out_lanes))
            j4, f4, v4, out = jL, fL, vL, outL
            m.d.comb += [self.out_en.eq(v4 & f4), self.out_addr.eq(oL)]
            for k in range(b):
                for i in range(lanes):
                    m.d.comb += self.out_data[k * lanes + i].eq(
                        Mux(j4 == k, out[i], held[k * lanes + i]))
                    with m.If(v4):
                        with m.If(f4):
                            m.d.sync += held[k * lanes + i].eq(0)
                        with m.Elif(j4 == k):
                            m.d.sync += held[k * lanes + i].eq(out[i])

        with m.If(self.busy):
            m.d.sync += self.busy_cycles.eq(self.busy_cycles + 1)
        with m.If(self.out_en):
            m.d.sync += self.words_written.eq(self.words_written + 1)
        return m
