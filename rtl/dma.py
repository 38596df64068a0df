"""Load and store engines of the overlay: boxes of a DRAM tensor to and from an on-chip buffer.

:class:`LoadEngine` executes decoded ``load.tile`` commands (with the pitches and element size
of the buffer's ``load.setup``): it reads a ``rows`` × ``cols`` × ``ch`` box of an HWC tensor
from DRAM through an AXI4 read channel and writes it to a buffer write port, one pixel as
⌈ch / lanes⌉ consecutive words, the last one zero-filled.  :class:`StoreEngine` executes
``store.tile`` commands: it reads such words through a buffer read port (one cycle of latency)
and writes the box to DRAM through an AXI4 write channel, with byte strobes for partial beats.

Both engines split the box the same way (docs/rtl.md, "Load and store engines (DMA)"):

* into **runs**, the contiguous byte ranges of the box: the whole box when its pixels and rows
  are packed (``px_pitch`` = ``ch``·``elem`` and ``row_pitch`` = ``cols``·``px_pitch``), else
  one run per row when its pixels are packed, else one run per pixel;
* each run into AXI4 INCR **bursts** of at most :data:`AXI_MAX_BEATS` beats that never cross a
  :data:`AXI_BOUNDARY`-byte boundary, at bus-aligned addresses (``m_axi_arsize`` /
  ``m_axi_awsize`` give the whole bus); the first beat of a run may start and its last beat
  may end inside a beat.

Up to ``outstanding`` bursts are in flight at once.  The byte aligner between the bus and
the buffer words is serial: in each cycle it either moves one bus beat (into or out of its
byte register) or one buffer word, never both, so with a memory that never stalls a tile
takes a fixed start-up, plus one cycle per beat, plus one per word
(``dse/cost/dma.py`` gives the formula; ``tests/rtl/test_dma.py`` checks it).

Elements: ``elem`` (1, 2 or 4 bytes in DRAM, the ISA's code) maps to one buffer lane of
``lane_bits``.  A load sign-extends (or zero-extends) narrower elements to the lane and keeps
the low ``lane_bits`` of wider ones; a store writes the lane's low 8·``elem`` bits, extended
the same way when the lane is narrower.  An element wider than the lane rounded up to 1, 2 or
4 bytes is refused, as are a zero extent and the reserved ``elem`` code: the command ends at
once with ``done`` and ``error`` and moves nothing.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from rtl.isa import (
    BUF_ADDR_BITS,
    CHANNEL_BITS,
    DRAM_ADDR_BITS,
    EXTENT_BITS,
    PIXEL_PITCH_BITS,
    ROW_PITCH_BITS,
    TILE_SLOT_BITS,
    LoadSetup,
)
from rtl.params import AXI_BOUNDARY, AXI_MAX_BEATS, BUS_BITS, COUNTER_BITS, DMA_OUTSTANDING

from .validate import rejecting

__all__ = [
    "AXI_BOUNDARY",
    "AXI_BURST_INCR",
    "AXI_MAX_BEATS",
    "ELEM_BYTES",
    "ELEM_CODE_BITS",
    "DmaCommand",
    "LoadEngine",
    "StoreEngine",
    "axi_read_master",
]

_ELEM_FIELD = next(f for f in LoadSetup.LAYOUT if f.name == "elem")
#: Width of the element-size code (``load.setup`` / ``store.setup`` ``elem``).
ELEM_CODE_BITS = _ELEM_FIELD.bits
#: Bytes per element of each code: code i is 2**i bytes, so the code is a shift.
ELEM_BYTES = _ELEM_FIELD.choices
if ELEM_BYTES != tuple(1 << i for i in range(len(ELEM_BYTES))):
    raise ImportError(f"rtl.dma needs elem code i to mean 2**i bytes, not {ELEM_BYTES}")
#: ``m_axi_arburst`` / ``m_axi_awburst`` code of an incrementing burst.
AXI_BURST_INCR = 1

#: The command of both engines: a decoded ``load.tile`` / ``store.tile`` with the pitches and
#: the element code of the ``load.setup`` / ``store.setup`` in force (widths from rtl.isa).
DmaCommand = data.StructLayout({
    "dram": DRAM_ADDR_BITS,      # byte address of the box's first element
    "addr": BUF_ADDR_BITS,       # buffer word address of the first pixel
    "rows": EXTENT_BITS,
    "cols": EXTENT_BITS,
    "ch": CHANNEL_BITS,
    "elem": ELEM_CODE_BITS,      # element bytes = 2**elem
    "row_pitch": ROW_PITCH_BITS,
    "px_pitch": PIXEL_PITCH_BITS,
    "tile": 1,                   # tile mode (engines with a tile_side only)
    "slot": TILE_SLOT_BITS,      # tile mode: slot of the box's first pixel
    "wpitch": EXTENT_BITS,       # load tile mode: 0, or a span's window pitch in words
})

#: Largest tile side of tile mode: its slots must fit the command's ``slot`` field.
_MAX_TILE_SIDE = int((1 << TILE_SLOT_BITS) ** 0.5)
#: Bytes of the longest run: a whole box.
_RUN_BITS = 2 * EXTENT_BITS + CHANNEL_BITS + len(ELEM_BYTES)


def _thermometer(m: Module, count, width: int, name: str):
    """A ``width``-bit signal whose bits below ``count`` are set."""
    out = Signal(width, name=name)
    top = (1 << len(count)) - 1              # count > top is never true: no constant compare
    m.d.comb += out.eq(Cat(*((count > i) if i < top else Const(0, 1) for i in range(width))))
    return out


def _shift_bytes(value, amount, width: int, left: bool):
    """``value`` shifted by ``amount`` bytes, ``width`` bits kept: one shift operator (a
    log-depth shifter in synthesis; one cell to convert and one wide shift to simulate)."""
    v = value[:width] if len(value) >= width else Cat(value, Const(0, width - len(value)))
    bits = Cat(Const(0, 3), amount)                 # amount · 8
    return (v << bits)[:width] if left else v >> bits


def _bytes_to_bits(mask):
    """Each bit of a byte mask repeated over its byte."""
    return Cat(*(mask[i].replicate(8) for i in range(len(mask))))


def axi_read_master(bus_bits: int) -> dict:
    """The signature members of an AXI4 read master: ``m_axi_ar*`` out (40-bit byte
    addresses, INCR bursts), ``m_axi_r*`` in (``bus_bits`` of data)."""
    return {
        "m_axi_araddr": Out(DRAM_ADDR_BITS), "m_axi_arlen": Out(8), "m_axi_arsize": Out(3),
        "m_axi_arburst": Out(2), "m_axi_arvalid": Out(1), "m_axi_arready": In(1),
        "m_axi_rdata": In(bus_bits), "m_axi_rresp": In(2), "m_axi_rlast": In(1),
        "m_axi_rvalid": In(1), "m_axi_rready": Out(1),
    }


class _DmaEngine(wiring.Component):
    """What the two engines share: parameters, command and status ports, the run walker and
    burst splitter, the tile-mode slot walk, and the element ↔ lane conversion."""

    #: Whether tile mode takes ``tile_lanes`` (the store engine's lanes of one pixel).
    _TILE_LANES = False

    def __init__(self, bus_bits: int, lanes: int, lane_bits: int, outstanding: int,
                 sign_extend: bool, tile_side: int = 0, tile_lanes: int = 0):
        with rejecting(self):
            if bus_bits not in BUS_BITS:
                raise ValueError(f"bus_bits must be one of {', '.join(map(str, BUS_BITS))}, "
                                 f"not {bus_bits!r}")
            for name, value, lo, hi in (("lanes", lanes, 1, 256), ("lane_bits", lane_bits, 1, 64),
                                        ("outstanding", outstanding, 3, 16)):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise TypeError(f"{name} must be an integer, not {value!r}")
                if not lo <= value <= hi:
                    raise ValueError(f"{name} must be between {lo} and {hi}, not {value}")
            if not isinstance(sign_extend, bool):
                raise TypeError(f"sign_extend must be a bool, not {sign_extend!r}")
            for name, value, hi in (("tile_side", tile_side, _MAX_TILE_SIDE),
                                    ("tile_lanes", tile_lanes, lanes)):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise TypeError(f"{name} must be an integer, not {value!r}")
                if not 0 <= value <= hi:
                    raise ValueError(f"{name} must be between 0 and {hi}, not {value}")
            if bool(tile_lanes) != (bool(tile_side) and self._TILE_LANES):
                raise ValueError(f"tile_lanes must be positive exactly when tile_side is "
                                 f"({'store' if self._TILE_LANES else 'load'} engine), not "
                                 f"{tile_lanes} with tile_side {tile_side}")
            if tile_lanes and tile_lanes * tile_side * tile_side > lanes:
                raise ValueError(f"tile_lanes must be at most lanes / tile_side² = "
                                 f"{lanes // max(1, tile_side * tile_side)}, not {tile_lanes}")
        self._tile_side, self._tile_lanes = tile_side, tile_lanes
        self._bus_bits, self._lanes, self._lane_bits = bus_bits, lanes, lane_bits
        self._outstanding, self._sign_extend = outstanding, sign_extend
        super().__init__({
            "cmd": In(stream.Signature(DmaCommand)),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(1),
            "busy_cycles": Out(COUNTER_BITS),
            "bus_bytes": Out(COUNTER_BITS),
            **self._channel_members(),
        })

    @property
    def bus_bits(self) -> int:
        """AXI4 data width in bits."""
        return self._bus_bits

    @property
    def bus_bytes_per_beat(self) -> int:
        """Bytes of one AXI4 beat."""
        return self._bus_bits // 8

    @property
    def lanes(self) -> int:
        """Elements per buffer word."""
        return self._lanes

    @property
    def lane_bits(self) -> int:
        """Bits of one buffer lane."""
        return self._lane_bits

    @property
    def outstanding(self) -> int:
        """Most bursts in flight at once."""
        return self._outstanding

    @property
    def tile_side(self) -> int:
        """Side of the tile of tile mode (slots per row); 0: no tile mode."""
        return self._tile_side

    @property
    def max_elem_bytes(self) -> int:
        """Widest DRAM element accepted: the lane rounded up to 1, 2 or 4 bytes."""
        return next((e for e in ELEM_BYTES if 8 * e >= self._lane_bits), ELEM_BYTES[-1])

    @property
    def word_layout(self) -> data.ArrayLayout:
        """A buffer word: ``lanes`` lanes of ``lane_bits``, lane i in bits i·lane_bits up."""
        return data.ArrayLayout(unsigned(self._lane_bits), self._lanes)

    def _word_bytes_max(self) -> int:
        return self._lanes * self.max_elem_bytes

    # -- command, run walker, burst splitter ------------------------------------------------

    def _data_side(self, m: Module, head, cap: int, step=None) -> SimpleNamespace:
        """The byte register's state, the same in both engines: ``beat`` (the burst's beat),
        ``lo_b`` / ``hi_b`` (the box's bytes in this beat) and ``span`` (their count);
        ``acc`` / ``cnt`` (the register and its bytes, ``cap`` at most); ``ch_left`` and
        ``px_left`` (elements of the pixel, pixels of the box still to go), ``addr`` (the
        buffer word), ``running``, ``failed``, and ``k`` (the elements of the next word:
        ``step``, default ``lanes``, at most)."""
        B = self.bus_bytes_per_beat
        lb = B.bit_length() - 1
        lanes = self._lanes
        d = SimpleNamespace(
            beat=Signal(8, name="beat"), lo_b=Signal(lb, name="lo_b"),
            hi_b=Signal(lb + 1, name="hi_b"), span=Signal(lb + 1, name="span"),
            # acc is data only: every box starts it at 0 (``ns.start``) before a byte of it
            # is used, so it needs no reset (nor the simulator its wide reset mux)
            acc=Signal(8 * cap, name="acc", reset_less=True),
            cnt=Signal(range(cap + 1), name="cnt"),
            ch_left=Signal(CHANNEL_BITS, name="ch_left"),
            px_left=Signal(2 * EXTENT_BITS, name="px_left"),
            addr=Signal(BUF_ADDR_BITS, name="word_addr"), running=Signal(name="running"),
            failed=Signal(name="failed"), k=Signal(range(lanes + 1), name="k"))
        m.d.comb += [d.lo_b.eq(Mux(d.beat == 0, head.lo, 0)),
                     d.hi_b.eq(Mux(d.beat == head.len, head.hi, B)),
                     d.span.eq(d.hi_b - d.lo_b),
                     d.k.eq(Mux(d.ch_left > (lanes if step is None else step),
                                lanes if step is None else step, d.ch_left))]
        return d

    def _slot_rc(self, m: Module, slot, name: str):
        """(row, column) of tile slot ``slot``: slot = row·side + column."""
        side = max(1, self._tile_side)
        r0 = Signal(range(max(2, side)), name=f"{name}_row")
        c0 = Signal(TILE_SLOT_BITS + 1, name=f"{name}_col")
        m.d.comb += [r0.eq(sum((slot >= k * side) for k in range(1, side))
                           if side > 1 else 0),
                     c0.eq(slot - r0 * side)]
        return r0, c0

    def _tile_refused(self, m: Module, p, whole_row: bool):
        """Whether tile-mode command ``p`` is refused: no tile mode, a slot past the tile, or
        a box past the tile's bottom (and with ``whole_row`` its right edge, unless it spans
        windows: ``p.wpitch``, on an engine whose tiles are at least 4 wide).  With
        ``whole_row`` (the load engine) a ``wpitch`` outside tile mode is refused too."""
        side = self._tile_side
        if not side:
            return p.tile | ((p.wpitch != 0) if whole_row else 0)
        r0, c0 = self._slot_rc(m, p.slot, "cmd_slot")
        bad = (p.slot >= side * side) | (r0 + p.rows > side)
        if whole_row:
            span = p.wpitch != 0
            bad = bad | Mux(span, Const(int(side < 4), 1), c0 + p.cols > side)
            return (p.tile & bad) | (~p.tile & span)
        return p.tile & bad

    def _tile_walk(self, m: Module, c, start, pixel_end, addr, span: bool = False
                   ) -> SimpleNamespace:
        """Tile mode's walk over the box's pixels (the engines' docstrings): ``slot`` (the
        current pixel's slot), ``first`` (the first pixel of a tile: the box's first, and
        with ``span`` each window's first in the box's first row), ``on`` (the command is in
        tile mode), and ``next_addr`` (the buffer word of the next pixel's first word, valid
        with ``pixel_end`` while ``addr`` is the current pixel's last word: the tile's base
        again, the next tile's words after this tile's at a tile's right edge, ``c.addr`` at
        the box's row end); advanced on ``pixel_end``.

        ``span`` (the load engine): a command with ``c.wpitch`` set spans a row of every
        other window, P = 2·(side − 2) columns apart: the walk's column inside the window
        runs to P − 1, the next window's words start ``c.wpitch`` words after this one's,
        and ``drop`` marks the pixels between two windows (columns ``side`` to P − 1).
        ``left`` and ``right`` bound the current window's columns inside the box (a slot
        column c is in the box when ``left`` ≤ c < ``right``)."""
        if not self._tile_side:         # no tile mode: constants, no state
            return SimpleNamespace(slot=Const(0, TILE_SLOT_BITS + 1), on=Const(0, 1),
                                   first=Const(0, 1), next_addr=addr, drop=Const(0, 1))
        side = self._tile_side
        period = 2 * (side - 2) if span else side
        t = SimpleNamespace(slot=Signal(TILE_SLOT_BITS + 1, name="tile_slot"),
                            on=Signal(name="tile_on"), first=Signal(name="tile_first"),
                            next_addr=Signal(BUF_ADDR_BITS, name="tile_next_addr"),
                            drop=Signal(name="tile_drop"))
        col = Signal(EXTENT_BITS, name="tile_col")
        xin = Signal(range(max(2, side, period)), name="tile_x")    # column inside the tile
        row_slot = Signal(TILE_SLOT_BITS + 1, name="tile_row_slot")
        base = Signal(BUF_ADDR_BITS, name="tile_base")
        _, c0 = self._slot_rc(m, c.slot, "box_slot")
        m.d.comb += t.on.eq(c.tile)
        row_end = col == c.cols - 1
        if span:
            spanning = Signal(name="tile_span")
            first_row = Signal(name="tile_first_row")
            t.left = Signal(range(side + 1), name="tile_left")
            t.right = Signal(EXTENT_BITS + 1, name="tile_right")
            m.d.comb += [spanning.eq(c.wpitch != 0), t.drop.eq(spanning & (xin >= side))]
            cross = ~row_end & Mux(spanning, xin == period - 1, xin == side - 1)
            jump = Mux(spanning, base + c.wpitch, addr + 1)
        else:
            cross = ~row_end & (xin == side - 1)
            jump = addr + 1
        m.d.comb += t.next_addr.eq(Mux(row_end, c.addr, Mux(cross, jump, base)))
        with m.If(start):
            m.d.sync += [t.slot.eq(c.slot), row_slot.eq(c.slot), col.eq(0), xin.eq(c0),
                         base.eq(c.addr), t.first.eq(1)]
            if span:
                m.d.sync += [first_row.eq(1), t.left.eq(c0), t.right.eq(c0 + c.cols)]
        with m.Elif(pixel_end):
            m.d.sync += [t.first.eq(0), base.eq(t.next_addr)]
            with m.If(row_end):
                m.d.sync += [col.eq(0), xin.eq(c0), row_slot.eq(row_slot + side),
                             t.slot.eq(row_slot + side)]
                if span:
                    m.d.sync += first_row.eq(0)
            with m.Elif(cross):
                m.d.sync += [col.eq(col + 1), xin.eq(0), t.slot.eq(t.slot - xin)]
                if span:
                    m.d.sync += [t.first.eq(first_row), t.left.eq(0),
                                 t.right.eq(t.right - period)]
            with m.Else():
                m.d.sync += [col.eq(col + 1), xin.eq(xin + 1), t.slot.eq(t.slot + 1)]
        return t

    def _front(self, m: Module):
        """Build the command latch, the run walker and the burst splitter.

        Returns a namespace of signals: ``start`` (the cycle the transfer begins), ``bad``
        (refused command), ``active`` (a command in progress), ``gen`` (bursts left to
        split), ``c`` (the latched command), ``code`` and ``desc_*`` (the next burst: valid,
        addr aligned to the bus, len (beats − 1), lo (first byte in its first beat), hi (end
        byte in its last beat)), with ``desc_take`` to be driven by the caller when the burst
        is issued.
        """
        B = self.bus_bytes_per_beat
        lb = B.bit_length() - 1

        ns = SimpleNamespace()
        c = Signal(DmaCommand, name="c")
        ns.c = c
        code = c.elem
        ns.code = code

        # setup pipeline: S1 pixel bytes, S2 row bytes and packed pixels, S3 runs
        px_bytes = Signal(CHANNEL_BITS + len(ELEM_BYTES))
        row_bytes = Signal(EXTENT_BITS + len(px_bytes))
        dense_px = Signal()
        stage = Signal(range(4))           # 0 idle/running, 1..3 setup
        active = Signal()
        ns.active = active
        start = Signal()
        ns.start = start
        bad = Signal()
        ns.bad = bad

        # walker state
        cur = Signal(DRAM_ADDR_BITS)
        rem = Signal(_RUN_BITS)
        run_len = Signal(_RUN_BITS)
        run_addr = Signal(DRAM_ADDR_BITS)
        row_base = Signal(DRAM_ADDR_BITS)
        c_left = Signal(EXTENT_BITS)
        r_left = Signal(EXTENT_BITS)
        c_runs = Signal(EXTENT_BITS)
        pitch_c = Signal(PIXEL_PITCH_BITS)
        pitch_r = Signal(ROW_PITCH_BITS)
        gen = Signal()
        ns.gen = gen

        # the next burst, registered
        ns.desc_valid = Signal()
        ns.desc_addr = Signal(DRAM_ADDR_BITS)
        ns.desc_len = Signal(8)
        ns.desc_lo = Signal(lb)
        ns.desc_hi = Signal(lb + 1)
        ns.desc_take = Signal()

        take_cmd = self.cmd.valid & self.cmd.ready
        m.d.comb += [self.cmd.ready.eq(~active), self.busy.eq(active)]
        elem_ok = self.cmd.payload.elem < len(ELEM_BYTES)
        too_wide = Const(0)
        for i, e in enumerate(ELEM_BYTES):
            if e > self.max_elem_bytes:
                too_wide = too_wide | (self.cmd.payload.elem == i)
        p = self.cmd.payload
        refused = ~elem_ok | too_wide | (p.rows == 0) | (p.cols == 0) | (p.ch == 0)
        refused = refused | self._tile_refused(m, p, whole_row=not self._TILE_LANES)
        refused = refused | self._format_refused(p)
        with m.If(take_cmd):
            m.d.sync += c.eq(self.cmd.payload)
            with m.If(refused):
                m.d.comb += bad.eq(1)
            with m.Else():
                m.d.sync += [active.eq(1), stage.eq(1)]

        with m.If(stage == 1):
            m.d.sync += [px_bytes.eq(c.ch << code), stage.eq(2)]
        with m.Elif(stage == 2):
            m.d.sync += [row_bytes.eq(c.cols * px_bytes),
                         dense_px.eq((c.px_pitch == px_bytes) | (c.cols == 1)),
                         stage.eq(3)]
        with m.Elif(stage == 3):
            dense_rows = dense_px & ((c.row_pitch == row_bytes) | (c.rows == 1))
            m.d.comb += start.eq(1)
            m.d.sync += [stage.eq(0), gen.eq(1), cur.eq(c.dram), run_addr.eq(c.dram),
                         row_base.eq(c.dram), pitch_r.eq(c.row_pitch),
                         pitch_c.eq(c.px_pitch)]
            with m.If(dense_rows):
                m.d.sync += [run_len.eq(c.rows * row_bytes), rem.eq(c.rows * row_bytes),
                             r_left.eq(1), c_left.eq(1), c_runs.eq(1)]
            with m.Elif(dense_px):
                m.d.sync += [run_len.eq(row_bytes), rem.eq(row_bytes), r_left.eq(c.rows),
                             c_left.eq(1), c_runs.eq(1)]
            with m.Else():
                m.d.sync += [run_len.eq(px_bytes), rem.eq(px_bytes), r_left.eq(c.rows),
                             c_left.eq(c.cols), c_runs.eq(c.cols)]

        # burst length in bytes: to the run's end, the next 4 KiB boundary or 256 beats from
        # the aligned start, whichever comes first.  Computed on the offsets (12 and 8 + lb
        # bits) rather than on whole 40-bit end addresses, so that the path from ``cur``
        # through the comparisons to the next state is short carry chains only (timing:
        # docs/synthesis.md)
        bw = max(_RUN_BITS, (AXI_MAX_BEATS * B).bit_length())
        to_4k = Signal(bw)                   # 1 … 4096
        to_len = Signal(bw)                  # 1 … 256·B
        to_edge = Signal(bw)
        burst_bytes = Signal(bw)
        aligned = Cat(Const(0, lb), cur[lb:])
        m.d.comb += [
            to_4k.eq(AXI_BOUNDARY - cur[:AXI_BOUNDARY.bit_length() - 1]),
            to_len.eq(AXI_MAX_BEATS * B - cur[:lb]),
            to_edge.eq(Mux(to_len < to_4k, to_len, to_4k)),
            burst_bytes.eq(Mux(rem < to_edge, rem, to_edge)),
        ]
        burst_end = Signal(DRAM_ADDR_BITS + 1)
        m.d.comb += burst_end.eq(cur + burst_bytes)
        # the burst's last byte relative to the aligned start: below 256·B
        last_off = Signal(8 + lb)
        m.d.comb += last_off.eq(cur[:lb] + burst_bytes - 1)

        advance = gen & (~ns.desc_valid | ns.desc_take)
        with m.If(ns.desc_take):
            m.d.sync += ns.desc_valid.eq(0)
        with m.If(advance):
            m.d.sync += [
                ns.desc_valid.eq(1),
                ns.desc_addr.eq(aligned),
                ns.desc_len.eq(last_off[lb:]),
                ns.desc_lo.eq(cur[:lb]),
                ns.desc_hi.eq(last_off[:lb] + 1),
            ]
            left = rem - burst_bytes
            with m.If(rem != burst_bytes):
                m.d.sync += [cur.eq(burst_end), rem.eq(left)]
            with m.Elif(c_left > 1):
                m.d.sync += [c_left.eq(c_left - 1), run_addr.eq(run_addr + pitch_c),
                             cur.eq(run_addr + pitch_c), rem.eq(run_len)]
            with m.Elif(r_left > 1):
                m.d.sync += [r_left.eq(r_left - 1), row_base.eq(row_base + pitch_r),
                             run_addr.eq(row_base + pitch_r), cur.eq(row_base + pitch_r),
                             c_left.eq(c_runs), rem.eq(run_len)]
            with m.Else():
                m.d.sync += gen.eq(0)

        # status
        with m.If(active):
            m.d.sync += self.busy_cycles.eq(self.busy_cycles + 1)
        return ns

    def _format_refused(self, p):
        """Refusals of the engine's own (none here; :class:`LoadEngine` with
        ``per_command``)."""
        return Const(0, 1)

    # -- element <-> lane ---------------------------------------------------------------------

    def _lane_from_bytes(self, m: Module, raw, e: int, name: str, signed_=None):
        """A lane holding the ``e``-byte element ``raw``, extended (sign-extended where
        ``signed_``, a signal, is high; else as ``sign_extend`` says) or truncated."""
        lane = Signal(self._lane_bits, name=name)
        if signed_ is None:
            m.d.comb += lane.eq(raw.as_signed() if self._sign_extend else raw)
        else:
            m.d.comb += lane.eq(Mux(signed_, raw.as_signed(), raw))
        return lane

    def _bytes_from_lane(self, m: Module, lane, e: int, name: str):
        """The ``e``-byte DRAM element of ``lane``, extended or truncated."""
        out = Signal(8 * e, name=name)
        m.d.comb += out.eq(lane.as_signed() if self._sign_extend else lane)
        return out


class LoadEngine(_DmaEngine):
    """Copy a box of a DRAM tensor into an on-chip buffer (``load.tile``).

    Parameters
    ----------
    bus_bits:
        AXI4 data width in bits, 64, 128, 256 or 512.
    lanes:
        Elements per buffer word.
    lane_bits:
        Bits of one lane of a buffer word (1 to 64).
    outstanding:
        Most read bursts in flight (3 to 16): also the depth of the burst queue between the
        address and the data side.
    sign_extend:
        Sign-extend elements narrower than a lane (else zero-extend).
    tile_side:
        0, or the side t of the tiles of **tile mode** (``cmd.tile``; 1 to 8): the box is
        part of a t × t window whose slot (row-major, t a row) ``cmd.slot`` is its first
        pixel, and word j of every pixel goes to buffer word ``addr`` + j, with ``buf_tile``
        high and ``buf_slot`` the pixel's slot; the first pixel's writes also set
        ``buf_zero``, the window's slots outside the box, to be written zero (so one box
        fills its whole window, the padding included).  The words and cycles are those of
        the same box outside tile mode; only the addresses differ.  Without ``tile_side`` a
        tile-mode command is refused, as is one with a slot past the window or a box that
        does not fit inside the window from its slot.
    per_command:
        Each command brings its word format, sampled with it: ``fmt_lanes`` (1 to ``lanes``:
        the elements of a pixel in one word, lanes from there on zero), ``fmt_signed``
        (sign- or zero-extend, in place of ``sign_extend``) and ``fmt_tile`` (tile mode
        allowed; a tile-mode command without it is refused, as is one with ``fmt_lanes``
        0).  One engine then loads buffers of different words: the overlay top's feature,
        weight, table and aux buffers, whose loads the controller runs one at a time.  The
        words and cycles are those of an engine of ``fmt_lanes`` lanes.

    Members
    -------
    cmd : In(stream.Signature(DmaCommand))
        One command per tile; ``ready`` while the engine is idle.
    busy : Out(1)
        A command is in progress.
    done : Out(1)
        One-cycle pulse when a command has finished (its last word written).
    error : Out(1)
        With ``done``: the command was refused or a read response was not OKAY.
    busy_cycles, bus_bytes : Out(COUNTER_BITS)
        Cycles with ``busy`` high and bytes of the beats read (whole beats), since reset.
    m_axi_ar* , m_axi_r* :
        AXI4 read address and data channels (address width ``DRAM_ADDR_BITS``).
    buf_addr : Out(BUF_ADDR_BITS), buf_data : Out(word_layout), buf_en : Out(1)
        The buffer write port.
    buf_tile : Out(1), buf_slot : Out(TILE_SLOT_BITS), buf_zero : Out(tile_side²)
        With ``tile_side``: the write is a tile-mode one, its slot, and the slots to be
        written zero with it.
    """

    def __init__(self, bus_bits: int = 128, lanes: int = 8, lane_bits: int = 8,
                 outstanding: int = DMA_OUTSTANDING, sign_extend: bool = True, tile_side: int = 0,
                 per_command: bool = False):
        with rejecting(self):
            if not isinstance(per_command, bool):
                raise TypeError(f"per_command must be a bool, not {per_command!r}")
        self._per_command = per_command
        super().__init__(bus_bits, lanes, lane_bits, outstanding, sign_extend, tile_side)

    @property
    def per_command(self) -> bool:
        """Whether each command brings its word format (``fmt_*``)."""
        return self._per_command

    def _channel_members(self) -> dict:
        bus, layout = self._bus_bits, self.word_layout
        side = self._tile_side
        tile = ({"buf_tile": Out(1), "buf_slot": Out(TILE_SLOT_BITS),
                 "buf_zero": Out(side * side)} if side else {})
        fmt = ({"fmt_lanes": In(range(self._lanes + 1)), "fmt_signed": In(1),
                "fmt_tile": In(1)} if self._per_command else {})
        return {
            **axi_read_master(bus),
            "buf_addr": Out(BUF_ADDR_BITS),
            "buf_data": Out(layout),
            "buf_en": Out(1),
            **tile,
            **fmt,
        }

    def _format_refused(self, p):
        """With ``per_command``: a command whose format has no lanes, or tile mode without
        ``fmt_tile``."""
        if not self._per_command:
            return Const(0, 1)
        return (self.fmt_lanes == 0) | (p.tile & ~self.fmt_tile)

    def elaborate(self, platform):
        m = Module()
        B = self.bus_bytes_per_beat
        lb = B.bit_length() - 1
        lanes = self._lanes
        cap = self._word_bytes_max() + B - 1          # byte register: a partial word + a beat
        ns = self._front(m)
        c, code = ns.c, ns.code

        desc = data.StructLayout({"len": 8, "lo": lb, "hi": lb + 1})
        m.submodules.bursts = fifo = SyncFIFO(width=desc.size, depth=self._outstanding)

        # -- address side: issue a burst when the queue has room ----------------------------
        ar_free = ~self.m_axi_arvalid | self.m_axi_arready
        issue = ns.desc_valid & fifo.w_rdy & ar_free
        m.d.comb += [
            ns.desc_take.eq(issue),
            fifo.w_en.eq(issue),
            fifo.w_data.eq(Cat(ns.desc_len, ns.desc_lo, ns.desc_hi)),
            self.m_axi_arsize.eq(lb),
            self.m_axi_arburst.eq(AXI_BURST_INCR),
        ]
        with m.If(issue):
            m.d.sync += [self.m_axi_arvalid.eq(1), self.m_axi_araddr.eq(ns.desc_addr),
                         self.m_axi_arlen.eq(ns.desc_len)]
        with m.Elif(self.m_axi_arready):
            m.d.sync += self.m_axi_arvalid.eq(0)

        # -- data side: beats into the byte register, words out -----------------------------
        # the word format: the engine's, or the command's (``per_command``)
        if self._per_command:
            step = Signal(range(lanes + 1), name="fmt_step")
            sgn = Signal(name="fmt_sign")
            with m.If(self.cmd.valid & self.cmd.ready):
                m.d.sync += [step.eq(self.fmt_lanes), sgn.eq(self.fmt_signed)]
        else:
            step, sgn = lanes, None
        head = desc(fifo.r_data)
        d = self._data_side(m, head, cap, step if self._per_command else None)
        beat, lo_b, take, acc, cnt = d.beat, d.lo_b, d.span, d.acc, d.cnt
        ch_left, px_left, waddr, running, failed, k = (d.ch_left, d.px_left, d.addr,
                                                       d.running, d.failed, d.k)
        need = Signal(range(self._word_bytes_max() + 1))
        m.d.comb += need.eq(k << code)
        emit = running & (px_left != 0) & (cnt >= need)

        # the word: lane i is element i of the register, lanes from k on are zero
        word = Signal(self.word_layout)
        keep = _thermometer(m, k, lanes, "keep")
        for i in range(lanes):
            lane = Signal(self._lane_bits, name=f"lane{i}")
            options = {ci: self._lane_from_bytes(m, acc[8 * e * i: 8 * e * (i + 1)], e,
                                                 f"lane{i}_e{e}", sgn)
                       for ci, e in enumerate(ELEM_BYTES) if e <= self.max_elem_bytes}
            with m.Switch(code):
                for n_opt, (ci, value) in enumerate(options.items()):
                    # the last legal code also takes the refused ones: a complete case
                    with (m.Default() if n_opt == len(options) - 1 else m.Case(ci)):
                        m.d.comb += lane.eq(value)
            m.d.comb += word[i].eq(Mux(keep[i], lane, 0))

        # a word that empties the register (``cnt == need``) makes room for the next beat in
        # the same cycle (``dse.cost.dma.dma_joins``); the box's last word takes none
        empties = emit & (cnt == need) & ~((px_left == 1) & (ch_left <= step))
        rd = running & (~emit | empties) & fifo.r_rdy & (px_left != 0)
        # the engine counts each burst's beats itself; RLAST carries nothing it needs
        unused_rlast = Signal()
        m.d.comb += unused_rlast.eq(self.m_axi_rlast)
        m.d.comb += [self.m_axi_rready.eq(rd), self.buf_addr.eq(waddr),
                     self.buf_data.eq(word)]
        got = rd & self.m_axi_rvalid
        m.d.comb += fifo.r_en.eq(got & (beat == head.len))

        keep_b = _thermometer(m, take, B, "keep_b")
        incoming = Signal(8 * B)
        m.d.comb += incoming.eq(_shift_bytes(self.m_axi_rdata, lo_b, 8 * B, left=False)
                                & _bytes_to_bits(keep_b))
        pixel_end = emit & (ch_left <= step)
        span = self._tile_side >= 4
        tw = self._tile_walk(m, c, ns.start, pixel_end, waddr, span=span)
        if self._tile_side:
            # the slots of the window outside the box, zeroed with its first pixel's words:
            # the rows outside the box's (fixed for the command) and the columns outside the
            # window's part of the box (the walk's ``left`` / ``right`` with ``span``)
            side = self._tile_side
            r0, c0 = self._slot_rc(m, c.slot, "fill_slot")
            out_rows = Signal(side, name="tile_out_rows")
            with m.If(ns.start):
                # (r0 ≤ the last row is always true: left out, a constant compare for lint)
                m.d.sync += out_rows.eq(Cat(*(
                    ~(((r0 <= i) if i < side - 1 else Const(1, 1)) & (i < r0 + c.rows))
                    for i in range(side))))
            if span:
                left, right = tw.left, tw.right
            else:
                left, right = Signal.like(c0, name="tile_left"), Signal(EXTENT_BITS + 1,
                                                                         name="tile_right")
                with m.If(ns.start):
                    m.d.sync += [left.eq(c0), right.eq(c0 + c.cols)]
            out_cols = Signal(side, name="tile_out_cols")
            m.d.comb += out_cols.eq(Cat(*((left > j) | (right <= j) for j in range(side))))
            outside = Signal(side * side, name="tile_outside")
            m.d.comb += outside.eq(Cat(*(out_rows[e // side] | out_cols[e % side]
                                         for e in range(side * side))))
            m.d.comb += [self.buf_tile.eq(tw.on), self.buf_slot.eq(tw.slot),
                         self.buf_zero.eq(Mux(tw.on & tw.first, outside, 0))]
        # a span's pixels between two windows are read and dropped
        m.d.comb += self.buf_en.eq(emit & ~tw.drop)
        with m.If(emit):
            m.d.sync += [acc.eq(_shift_bytes(acc, need, 8 * cap, left=False)), cnt.eq(cnt - need),
                         waddr.eq(waddr + 1)]
            with m.If(got):                 # the register emptied: the beat starts it again
                m.d.sync += [acc.eq(incoming), cnt.eq(take),
                             beat.eq(Mux(beat == head.len, 0, beat + 1)),
                             self.bus_bytes.eq(self.bus_bytes + B)]
                with m.If(self.m_axi_rresp != 0):
                    m.d.sync += failed.eq(1)
            with m.If(ch_left > step):
                m.d.sync += ch_left.eq(ch_left - step)
            with m.Else():
                m.d.sync += [ch_left.eq(c.ch), px_left.eq(px_left - 1)]
                with m.If(tw.on):           # tile mode: the next pixel's words
                    m.d.sync += waddr.eq(tw.next_addr)
        with m.Elif(got):
            m.d.sync += [acc.eq(acc | _shift_bytes(incoming, cnt, 8 * cap, left=True)),
                         cnt.eq(cnt + take),
                         beat.eq(Mux(beat == head.len, 0, beat + 1)),
                         self.bus_bytes.eq(self.bus_bytes + B)]
            with m.If(self.m_axi_rresp != 0):
                m.d.sync += failed.eq(1)

        with m.If(ns.start):
            m.d.sync += [running.eq(1), failed.eq(0), acc.eq(0), cnt.eq(0), beat.eq(0),
                         ch_left.eq(c.ch), px_left.eq(c.rows * c.cols), waddr.eq(c.addr)]
        last = emit & (px_left == 1) & (ch_left <= step)
        with m.If(last):
            m.d.sync += [running.eq(0), ns.active.eq(0)]
        m.d.comb += [self.done.eq(last | ns.bad), self.error.eq(ns.bad | (last & failed))]
        return m


class StoreEngine(_DmaEngine):
    """Copy a box from an on-chip buffer to a DRAM tensor (``store.tile``).

    Parameters
    ----------
    bus_bits, lanes, lane_bits, outstanding, sign_extend:
        As :class:`LoadEngine`; ``outstanding`` bounds the write bursts whose response has
        not arrived, and ``sign_extend`` applies to lanes narrower than a DRAM element.
    tile_side, tile_lanes:
        0 and 0, or the side m of the tiles of **tile mode** (``cmd.tile``; 1 to 8) and the
        elements of a pixel in one buffer word (``tile_lanes`` · m² at most ``lanes``): the
        box covers rows of a row of m × m tiles, whose words hold ``tile_lanes`` channels of
        every pixel of the tile, channel i of slot e (row-major, m a row) in lane i·m² + e,
        ⌈ch / tile_lanes⌉ words a tile, the tiles' words one after another from ``addr``.
        The box's first pixel is slot ``cmd.slot`` of the first tile; pixel (r, c) lies
        x = (slot mod m) + c columns on, in tile ⌊x / m⌋, and word j of it is buffer word
        ``addr`` + ⌊x / m⌋·⌈ch / tile_lanes⌉ + j.  The cycles are those of the same box
        outside tile mode with ``tile_lanes`` lanes.  Without ``tile_side`` a tile-mode
        command is refused, as is one with a slot past the tile or rows past its bottom.
    box_lanes:
        Elements of a pixel in one buffer word outside tile mode (1 to ``lanes``; None:
        ``lanes``): a word's lanes from ``box_lanes`` on are not stored.  The datapath's
        output words are ``lanes`` wide when its Winograd tiles are wider than the array
        (``ConvDatapath.lanes``), but a GEMM or pooled output word holds ``cols`` channels.

    Members
    -------
    cmd, busy, error, busy_cycles :
        As :class:`LoadEngine`.
    done : Out(1)
        One-cycle pulse when a command has finished: every write response received.
    bus_bytes : Out(COUNTER_BITS)
        Bytes of the beats written (whole beats, strobed or not), since reset.
    m_axi_aw*, m_axi_w*, m_axi_b* :
        AXI4 write address, data and response channels.
    buf_addr : Out(BUF_ADDR_BITS), buf_en : Out(1), buf_data : In(word_layout)
        The buffer read port: ``buf_data`` holds the word of ``buf_addr`` the cycle after
        ``buf_en``.
    """

    _TILE_LANES = True

    def __init__(self, bus_bits: int = 128, lanes: int = 8, lane_bits: int = 8,
                 outstanding: int = DMA_OUTSTANDING, sign_extend: bool = True, tile_side: int = 0,
                 tile_lanes: int = 0, box_lanes: int | None = None):
        super().__init__(bus_bits, lanes, lane_bits, outstanding, sign_extend, tile_side,
                         tile_lanes)
        with rejecting(self):
            if box_lanes is not None and (isinstance(box_lanes, bool)
                                          or not isinstance(box_lanes, int)):
                raise TypeError(f"box_lanes must be an integer or None, not {box_lanes!r}")
            if box_lanes is not None and not 1 <= box_lanes <= lanes:
                raise ValueError(f"box_lanes must be between 1 and lanes = {lanes}, "
                                 f"not {box_lanes}")
        self._box_lanes = lanes if box_lanes is None else box_lanes

    @property
    def box_lanes(self) -> int:
        """Elements of a pixel in one buffer word outside tile mode."""
        return self._box_lanes

    @property
    def tile_lanes(self) -> int:
        """Elements of a pixel in one buffer word in tile mode (0: no tile mode)."""
        return self._tile_lanes

    def _channel_members(self) -> dict:
        bus, layout = self._bus_bits, self.word_layout
        return {
            "m_axi_awaddr": Out(DRAM_ADDR_BITS),
            "m_axi_awlen": Out(8),
            "m_axi_awsize": Out(3),
            "m_axi_awburst": Out(2),
            "m_axi_awvalid": Out(1),
            "m_axi_awready": In(1),
            "m_axi_wdata": Out(bus),
            "m_axi_wstrb": Out(bus // 8),
            "m_axi_wlast": Out(1),
            "m_axi_wvalid": Out(1),
            "m_axi_wready": In(1),
            "m_axi_bresp": In(2),
            "m_axi_bvalid": In(1),
            "m_axi_bready": Out(1),
            "buf_addr": Out(BUF_ADDR_BITS),
            "buf_en": Out(1),
            "buf_data": In(layout),
        }

    def elaborate(self, platform):
        m = Module()
        B = self.bus_bytes_per_beat
        lb = B.bit_length() - 1
        lanes = self._lanes
        wmax = self._word_bytes_max()
        cap = wmax + B - 1                   # byte register: a partial beat + a word
        ns = self._front(m)
        c, code = ns.c, ns.code

        desc = data.StructLayout({"len": 8, "lo": lb, "hi": lb + 1})
        m.submodules.bursts = fifo = SyncFIFO(width=desc.size, depth=self._outstanding)

        # -- address side: a burst is issued when fewer than `outstanding` await responses --
        pending = Signal(range(self._outstanding + 1))
        aw_free = ~self.m_axi_awvalid | self.m_axi_awready
        issue = ns.desc_valid & fifo.w_rdy & aw_free & (pending < self._outstanding)
        got_b = self.m_axi_bvalid & self.m_axi_bready
        m.d.comb += [
            ns.desc_take.eq(issue),
            fifo.w_en.eq(issue),
            fifo.w_data.eq(Cat(ns.desc_len, ns.desc_lo, ns.desc_hi)),
            self.m_axi_awsize.eq(lb),
            self.m_axi_awburst.eq(AXI_BURST_INCR),
            self.m_axi_bready.eq(1),
        ]
        with m.If(issue):
            m.d.sync += [self.m_axi_awvalid.eq(1), self.m_axi_awaddr.eq(ns.desc_addr),
                         self.m_axi_awlen.eq(ns.desc_len)]
        with m.Elif(self.m_axi_awready):
            m.d.sync += self.m_axi_awvalid.eq(0)
        m.d.sync += pending.eq(pending + issue - got_b)

        # -- data side: words into the byte register, beats out -----------------------------
        head = desc(fifo.r_data)
        pixel_end = Signal()
        raddr_sig = Signal(BUF_ADDR_BITS)
        tw = self._tile_walk(m, c, ns.start, pixel_end, raddr_sig)
        step = Signal(range(lanes + 1))          # elements of a pixel in one word
        m.d.comb += step.eq(Mux(tw.on, self._tile_lanes, self._box_lanes))
        d = self._data_side(m, head, cap, step)
        beat, lo_b, hi_b, need_b, acc, cnt = d.beat, d.lo_b, d.hi_b, d.span, d.acc, d.cnt
        ch_left, px_left, raddr, running, failed, k = (d.ch_left, d.px_left, d.addr,
                                                       d.running, d.failed, d.k)
        m.d.comb += raddr_sig.eq(raddr)

        # the word read last cycle (one cycle of read latency) and its element count
        infl = Signal()
        infl_k = Signal(range(lanes + 1))
        infl_slot = Signal.like(tw.slot)
        infl_tile = Signal()
        packed = Signal(8 * wmax)
        # the word's elements: its lanes, or in tile mode lane i·m² + slot as element i
        elems = [self.buf_data[i] for i in range(lanes)]
        if self._tile_side:
            s2 = self._tile_side * self._tile_side
            for i in range(self._tile_lanes):
                picked = Signal(self._lane_bits, name=f"tile_elem{i}")
                with m.Switch(infl_slot):
                    for e in range(s2):
                        # the last slot also takes the slots past the tile: a complete case
                        with (m.Default() if e == s2 - 1 else m.Case(e)):
                            m.d.comb += picked.eq(self.buf_data[i * s2 + e])
                elems[i] = Mux(infl_tile, picked, elems[i])
        options = {ci: Cat(*(self._bytes_from_lane(m, elems[i], e, f"elem{i}_e{e}")
                             for i in range(lanes)))
                   for ci, e in enumerate(ELEM_BYTES) if e <= self.max_elem_bytes}
        with m.Switch(code):
            for n_opt, (ci, value) in enumerate(options.items()):
                # the last legal code also takes the refused ones: a complete case
                with (m.Default() if n_opt == len(options) - 1 else m.Case(ci)):
                    m.d.comb += packed.eq(value)
        infl_n = Signal(range(wmax + 1))
        m.d.comb += infl_n.eq(Mux(infl, infl_k << code, 0))
        keep_w = _thermometer(m, infl_n, wmax, "keep_w")
        acc_eff = Signal(8 * cap)
        cnt_eff = Signal(range(cap + 1))
        m.d.comb += [acc_eff.eq(acc | _shift_bytes(packed & _bytes_to_bits(keep_w), cnt, 8 * cap,
                                                  left=True)),
                     cnt_eff.eq(cnt + infl_n)]

        w_free = ~self.m_axi_wvalid | self.m_axi_wready
        emit = running & fifo.r_rdy & w_free & (cnt_eff >= need_b)
        # a beat that takes every byte held (its last byte ends a word) reads the next word
        # in the same cycle (``dse.cost.dma.dma_joins``)
        read = (running & fifo.r_rdy & (px_left != 0)
                & Mux(emit, cnt_eff == need_b, cnt_eff < need_b))
        m.d.comb += [self.buf_addr.eq(raddr), self.buf_en.eq(read),
                     fifo.r_en.eq(emit & (beat == head.len))]

        strb_hi = _thermometer(m, hi_b, B, "strb_hi")
        strb_lo = _thermometer(m, lo_b, B, "strb_lo")
        with m.If(self.m_axi_wvalid & self.m_axi_wready):
            m.d.sync += [self.m_axi_wvalid.eq(0), self.bus_bytes.eq(self.bus_bytes + B)]
        with m.If(emit):
            m.d.sync += [
                self.m_axi_wvalid.eq(1),
                self.m_axi_wdata.eq(_shift_bytes(acc_eff, lo_b, 8 * B, left=True)),
                self.m_axi_wstrb.eq(strb_hi & ~strb_lo),
                self.m_axi_wlast.eq(beat == head.len),
                acc.eq(_shift_bytes(acc_eff, need_b, 8 * cap, left=False)),
                cnt.eq(cnt_eff - need_b),
                beat.eq(Mux(beat == head.len, 0, beat + 1)),
            ]
        with m.Else():
            m.d.sync += [acc.eq(acc_eff), cnt.eq(cnt_eff)]
        m.d.sync += [infl.eq(read), infl_k.eq(k), infl_slot.eq(tw.slot), infl_tile.eq(tw.on)]
        m.d.comb += pixel_end.eq(read & (ch_left <= step))
        with m.If(read):
            m.d.sync += raddr.eq(raddr + 1)
            with m.If(ch_left > step):
                m.d.sync += ch_left.eq(ch_left - step)
            with m.Else():
                m.d.sync += [ch_left.eq(c.ch), px_left.eq(px_left - 1)]
                with m.If(tw.on):           # tile mode: the next pixel's words
                    m.d.sync += raddr.eq(tw.next_addr)
        with m.If(got_b & (self.m_axi_bresp != 0)):
            m.d.sync += failed.eq(1)

        with m.If(ns.start):
            m.d.sync += [running.eq(1), failed.eq(0), acc.eq(0), cnt.eq(0), beat.eq(0),
                         ch_left.eq(c.ch), px_left.eq(c.rows * c.cols), raddr.eq(c.addr)]
        # finished: every burst generated, sent and answered
        last = (running & ~ns.gen & ~ns.desc_valid & ~fifo.r_rdy & ~self.m_axi_wvalid
                & ~self.m_axi_awvalid & (pending == 0) & ~ns.start)
        with m.If(last):
            m.d.sync += [running.eq(0), ns.active.eq(0)]
        m.d.comb += [self.done.eq(last | ns.bad),
                     self.error.eq(ns.bad | (last & failed))]
        return m
