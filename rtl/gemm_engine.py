"""GEMM engine: C[M×N] = A[M×K]·B[K×N] on the systolic array, from on-chip buffers.

Blocks (one ``Module``; the buffers are ``amaranth.lib.memory.Memory`` banks/lanes):

* **loaders** — take A and B from two streams and write them into the operand buffers;
* **sequencer** — walks the tiles, issues one read per cycle to the operand buffers (stream
  vector and, for ws/is, the next tile's stationary preload in the same cycles), the os drain
  strobes, and counts the busy cycles;
* **systolic array** (``rtl.systolic``);
* **writer** — writes the array's output vectors into the result lanes, read-modify-write to
  accumulate the K tiles of ws/is;
* **drainer** — reads C out of the result lanes into ``c_stream``.

Each stream is either *narrow* (one element per beat, row-major: today's protocol) or *wide*
(one array-edge vector per beat), chosen per stream at construction (``a_wide``, ``b_wide``,
``c_wide``); the sequencer, and so the busy cycles, are the same for both.

Buffer layouts (L = max(rows, cols); docs/rtl.md has the tables):

* **A** (one layout for every dataflow and both stream widths): L banks, bank ``m mod L``;
  a word is a K-chunk of ``rows`` elements A[m, kb·rows … kb·rows+rows−1]; address
  ``(m div L)·S + kb`` with the stride S = ⌈K/rows⌉ of the GEMM (a half holds any M×K whose
  ⌈M/L⌉·S words fit, not a max_m × max_k rectangle).  A narrow beat writes one
  element of a word (element-granular write port), a wide beat a whole word.  Reads: ws —
  h_in = the word of row m (one bank); os — h_in[r] = element k mod rows of row m0+r (rows
  banks, each at its own address); is — v_in[c] = element k mod rows of row m0+c (cols
  banks).  A group of consecutive rows starting at m0 occupies banks (m0 mod L) + j (mod L);
  banks below m0 mod L hold the rows of the next line, hence their address is one stride on.
* **B**: L lanes; ws/os: lane ``n mod cols``, address ``(n div cols)·K + k``; is: lane
  ``k mod rows``, address ``(k div rows)·N + n``.  A wide beat is one address across the
  lanes (an N-chunk of row k in ws/os, a K-chunk of column n in is).
* **C**: cols lanes; ws/os: lane ``n mod cols``, address ``(n div cols)·M + m``; is: lane
  ``m mod cols``, address ``(m div cols)·N + n``.  A wide beat is one address across the lanes.

Every buffer has two halves (double buffering): the loaders fill one operand half while the
sequencer reads the other, and one result half drains while the next GEMM writes the other.
GEMMs of one dataflow also overlap in the array: the sequencer takes the next GEMM in the
current one's last tile slot (ws/is: it is queued and its first stationary tile preloaded
under that slot) or once that slot has ended (os), while the writer (with its own copy of
the older GEMM's shape and result half) still takes that one's last outputs; at most two
are in flight, so the array's fill and drain, and the ws/is first preload, are paid once
per run of GEMMs.
Port-level protocol, beat orders, timing and the cycle formula: docs/rtl.md.  The formulas live
in ``dse.cost.gemm`` (``gemm_cycles``, ``a_beats``, ``b_beats``, ``c_beats``) and the tests check
the engine against them.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl.dsp import DEFAULT_LATENCY, TARGETS
from rtl.params import ArrayParams, Dataflow, accumulator_bits, engine_rectangle
from rtl.systolic import SystolicArray

from .validate import rejecting

__all__ = ["GemmEngine", "CYCLE_BITS"]

#: Width of the ``cycles`` register.
CYCLE_BITS = 32

_WS, _OS, _IS = Dataflow.WS.code, Dataflow.OS.code, Dataflow.IS.code


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _pow2_at_least(x: int) -> int:
    return 1 << max(0, (x - 1).bit_length())


def _index(count: int) -> range:
    """Range of an index below ``count``, at least one bit wide (a zero-width wire in an
    address sum makes the Verilog ``[-1:0]``)."""
    return range(max(count, 2))


def _check_count(name: str, value, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, not {value}")


class GemmEngine(wiring.Component):
    """Double-buffered GEMM engine around a run-time-switchable systolic array.

    Parameters
    ----------
    params:
        Array shape and operand/accumulator widths.
    max_m, max_k, max_n:
        Largest GEMM dimensions (the widths of the ``m``, ``k``, ``n`` ports and counters;
        ``max_k`` also bounds the accumulator's exact sums).
    a_words, b_words, c_words:
        Words per lane in one buffer half (their capacity), or ``None`` for the rectangle
        of the largest dimensions in the worst dataflow (docs/rtl.md).  A GEMM fits when
        ⌈M/L⌉·⌈K/rows⌉ ≤ a_words, ``dse.cost.gemm.b_lane_words`` ≤ b_words and
        ``c_lane_words`` ≤ c_words; the caller (the compiler) keeps to that.
    target:
        Multiplier target: ``"sim"`` (Amaranth simulator, Verilator), ``"xcup"``, ``"ecp5"``.
    mult_latency:
        Register stages of each PE's multiplier (0 … 4); the cycle formula's ``mult_latency``.
    a_wide, b_wide, c_wide:
        Stream width, per stream: ``False`` (default) one element per beat, row-major;
        ``True`` one array-edge vector per beat (``a_lanes``, ``b_lanes``, ``c_lanes``
        elements; beat orders in docs/rtl.md and the module docstring).
    pe_instances:
        Instantiate the PEs by module name, for Verilog (``rtl.systolic.SystolicArray``).
    b_external:
        Read B where it lies: no B loader and no B halves; the sequencer reads an external
        memory of ``b_words`` wide words (one address across the max(rows, cols) lanes, in
        the B layout below, from the GEMM's ``b_base``; synchronous read, one cycle) through
        ``b_addr`` / ``b_data``.  The conv datapath's weight buffer is that memory.

    Members
    -------
    m, k, n : In(dim_bits)
    mode : In(2)
    start : In(1)
    start_ready, busy, done : Out(1)
    cycles : Out(32)
    a_stream : In(stream.Signature(signed(a_width)))
        Wide: ``ArrayLayout(signed(a_width), rows)``, a K-chunk A[m, kb·rows …], beats
        (m, kb) row-major in every dataflow.
    b_stream : In(stream.Signature(signed(b_width)))
        Wide: ``ArrayLayout(signed(b_width), max(rows, cols))``; ws/os: B[k, nb·cols …]
        (lanes ≥ cols ignored), beats (k, nb); is: B[kb·rows …, n] (lanes ≥ rows ignored),
        beats (n, kb).  Not with ``b_external``, which has instead:
    b_base : In(range(b_words))
        Address of the GEMM's B in the external memory (taken with ``start``).
    b_addr : Out(range(b_words)), b_data : In(ArrayLayout(signed(b_width), max(rows, cols)))
        The external memory's read port.
    c_stream : Out(stream.Signature(signed(acc_width)))
        Wide: ``ArrayLayout(signed(acc_width), cols)``; ws/os: C[m, nb·cols …], beats (m, nb);
        is: C[mb·cols …, n], beats (mb, n).  Lanes past N (ws/os) or M (is) are zero.

    Raises
    ------
    TypeError, ValueError
        For a bad parameter, including an accumulator too narrow for ``max_k`` products of
        the largest operands (the sum must never wrap for in-range operands).
    """

    def __init__(self, params: ArrayParams, *, max_m: int = 64, max_k: int = 64,
                 max_n: int = 64, target: str = "sim", mult_latency: int = DEFAULT_LATENCY,
                 a_wide: bool = False, b_wide: bool = False, c_wide: bool = False,
                 pe_instances: bool = False, a_words: int | None = None,
                 b_words: int | None = None, c_words: int | None = None,
                 b_external: bool = False):
        with rejecting(self):
            self._setup(params, max_m, max_k, max_n, target, mult_latency,
                        a_wide, b_wide, c_wide, pe_instances, (a_words, b_words, c_words),
                        b_external)

    def _setup(self, params, max_m, max_k, max_n, target, mult_latency,
               a_wide, b_wide, c_wide, pe_instances, capacity, b_external):
        if not isinstance(params, ArrayParams):
            raise TypeError(f"params must be an ArrayParams, not {params!r}")
        for name, value in (("max_m", max_m), ("max_k", max_k), ("max_n", max_n)):
            _check_count(name, value)
            if value > 1 << 20:
                raise ValueError(f"{name} must be at most {1 << 20}, not {value}")
        for key, words in zip("abc", capacity):
            if words is not None:
                _check_count(f"{key}_words", words)
        if target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
        for name, value in (("a_wide", a_wide), ("b_wide", b_wide), ("c_wide", c_wide),
                            ("b_external", b_external)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, not {value!r}")
        if b_external and capacity[1] is None:
            raise ValueError("b_external needs b_words, the external memory's depth")
        need = accumulator_bits(params.a_width, params.b_width, max_k)
        if need > params.acc_width:
            raise ValueError(f"acc_width must be at least {need} for max_k = {max_k} products "
                             f"of {params.a_width} × {params.b_width} bits, "
                             f"not {params.acc_width}")
        self._params = params
        self._max = (max_m, max_k, max_n)
        self._wide = {"a": a_wide, "b": b_wide, "c": c_wide}
        self._b_external = b_external
        self._array = SystolicArray(params, mult_latency, target, pe_instances)
        rows, cols = params.rows, params.cols
        lanes = max(rows, cols)
        # A: K-chunk words, bank m mod L, address (m div L)·S + kb, S = ⌈K/rows⌉ of the GEMM.
        self._a_stride = _cdiv(max_k, rows)
        rect = engine_rectangle(rows, cols, max_m, max_k, max_n)
        self._half_depth = {key: _pow2_at_least(r if words is None else words)
                            for key, words, r in zip("abc", capacity, rect)}
        self._dim_bits = max(max_m, max_k, max_n).bit_length()
        if b_external:
            depth = capacity[1]
            b_ports = {"b_base": In(range(depth)), "b_addr": Out(range(depth)),
                       "b_data": In(data.ArrayLayout(signed(params.b_width), lanes))}
        else:
            b_ports = {"b_stream": In(stream.Signature(self._beat_shape("b", params.b_width)))}
        super().__init__({
            "m": In(self._dim_bits), "k": In(self._dim_bits), "n": In(self._dim_bits),
            "mode": In(2),
            "start": In(1), "start_ready": Out(1),
            "busy": Out(1), "done": Out(1),
            "cycles": Out(CYCLE_BITS),
            "a_stream": In(stream.Signature(self._beat_shape("a", params.a_width))),
            **b_ports,
            "c_stream": Out(stream.Signature(self._beat_shape("c", params.acc_width))),
        })

    def _beat_shape(self, key, width):
        """A stream's payload: one element, or an ``ArrayLayout`` of its lanes when wide."""
        lanes = {"a": self.a_lanes, "b": self.b_lanes, "c": self.c_lanes}[key]
        return data.ArrayLayout(signed(width), lanes) if self._wide[key] else signed(width)

    @property
    def params(self) -> ArrayParams:
        """Array shape and widths."""
        return self._params

    def instance_modules(self) -> dict:
        """The modules the array instantiates by name (``rtl.emit.verilog_text``)."""
        return self._array.instance_modules()

    @property
    def mult_latency(self) -> int:
        """Register stages of each PE's multiplier."""
        return self._array.mult_latency

    @property
    def dim_bits(self) -> int:
        """Width of the ``m``, ``k``, ``n`` ports."""
        return self._dim_bits

    @property
    def max_dims(self) -> tuple[int, int, int]:
        """(max_m, max_k, max_n) the buffers hold."""
        return self._max

    @property
    def a_lanes(self) -> int:
        """Elements per ``a_stream`` beat: ``rows`` when wide, else 1."""
        return self._params.rows if self._wide["a"] else 1

    @property
    def b_lanes(self) -> int:
        """Elements per ``b_stream`` beat: max(rows, cols) when wide (ws/os use the first
        cols, is the first rows), else 1."""
        return max(self._params.rows, self._params.cols) if self._wide["b"] else 1

    @property
    def c_lanes(self) -> int:
        """Elements per ``c_stream`` beat: ``cols`` when wide, else 1."""
        return self._params.cols if self._wide["c"] else 1

    @property
    def wide(self) -> dict[str, bool]:
        """Whether each stream (``"a"``, ``"b"``, ``"c"``) is wide."""
        return dict(self._wide)

    @property
    def half_depths(self) -> dict[str, int]:
        """Words per lane in one buffer half, for ``"a"``, ``"b"``, ``"c"``."""
        return dict(self._half_depth)

    # ------------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        p = self._params
        rows, cols = p.rows, p.cols
        lanes = max(rows, cols)
        stride = self._a_stride
        wide = self._wide
        lat = self.mult_latency
        dbits = self._dim_bits
        abits = {key: (depth - 1).bit_length() for key, depth in self._half_depth.items()}
        # Wide enough for every base/address sum before it is cut to a memory address.
        wbits = max(abits.values()) + dbits + 2
        m.submodules.array = array = self._array

        # ---- buffers ------------------------------------------------------------------
        def lane_memories(key, count, shape, read_ports, granularity=None):
            mems = []
            for lane in range(count):
                mem = Memory(shape=shape, depth=2 * self._half_depth[key], init=[])
                m.submodules[f"{key}_lane{lane}"] = mem
                wp = mem.write_port(granularity=granularity)
                rps = [mem.read_port(transparent_for=(wp,) if transparent else ())
                       for transparent in read_ports]
                mems.append(SimpleNamespace(wp=wp, rps=rps))
            return mems

        # A banks: a word is a K-chunk of `rows` elements, written one element (narrow beat)
        # or the whole word (wide beat) at a time.
        a_mem = lane_memories("a", lanes, data.ArrayLayout(signed(p.a_width), rows), [False],
                              granularity=1)
        if self._b_external:
            b_mem = None
            b_rd = [self.b_data[lane] for lane in range(lanes)]
        else:
            b_mem = lane_memories("b", lanes, signed(p.b_width), [False])
            b_rd = [mem.rps[0].data for mem in b_mem]
        # Result lanes: read port 0 for the writer's read-modify-write (transparent, so a K
        # tile may read what the previous K tile writes in the same cycle), 1 for the drainer.
        c_mem = lane_memories("c", cols, signed(p.acc_width), [True, False])

        def mem_addr(key, addr, half):
            return Cat(addr[:abits[key]], half) if abits[key] else half

        # ---- control registers and handshake ------------------------------------------
        # Two GEMMs can be in flight: the sequencer may take the next GEMM in the last tile
        # slot of the current one (ws/is) or once that slot has ended (os), while the array
        # and the writer still finish that one (its fill and drain then overlap the next
        # GEMM's preload and stream).  The sequencer's GEMM is described by
        # cm/ck/cn/cmode/c_half, the writer's by its own copy (below).
        inflight = Signal(2)    # GEMMs started and not yet wholly written
        busy = Signal()
        done = Signal()
        cycles = Signal(CYCLE_BITS)
        ld_half = Signal()      # operand half the loader fills
        op_half = Signal()      # operand half the sequencer reads
        c_next = Signal()       # result half the next GEMM writes
        c_half = Signal()       # result half the sequencer's GEMM writes
        c_full = Signal(2)      # result half holds a GEMM not yet drained
        cm = Signal(dbits)
        ck = Signal(dbits)
        cn = Signal(dbits)
        cmode = Signal(2)
        a_complete = Signal()
        b_complete = Signal()
        fire = Signal()
        finish = Signal()       # last write of C this cycle
        seq_tail = Signal()     # the sequencer has issued its GEMM's last vector
        pend = Signal()         # the sequencer's GEMM waits for the writer (set below)
        # ws/is: the next GEMM may also start during the current one's last tile slot
        # (``ov_ok``, below): it is then *queued* (its shape and halves in q*), its first
        # stationary tile is preloaded under that slot, and it takes over the sequencer
        # (``switch``) when the slot ends.
        queued = Signal()
        qm, qk, qn = (Signal(dbits, name=f"q_{x}") for x in "mkn")
        q_half = Signal()
        q_chalf = Signal()
        ov_ok = Signal()
        ov_fire = Signal()
        switch = Signal()
        # The next GEMM may start when the sequencer is free or in its GEMM's last ws/is
        # slot, at most one GEMM is in flight (the older one's result half is then the next
        # GEMM's, so the drain of that half gates it), the array keeps its dataflow (a
        # switch waits for the array to empty), and its operands and a result half are
        # ready.
        seq_free = ~busy | ((seq_tail | ov_ok) & (inflight == 1) & (self.mode == cmode))
        m.d.comb += [
            busy.eq(inflight != 0),
            self.start_ready.eq(seq_free & a_complete & b_complete
                                & ~c_full.bit_select(c_next, 1)),
            fire.eq(self.start & self.start_ready),
            self.busy.eq(busy), self.done.eq(done), self.cycles.eq(cycles),
        ]
        m.d.sync += inflight.eq(inflight + fire - finish)
        # ``cycles``: the busy cycles since the start that found the engine idle (one GEMM
        # alone: its busy cycles; GEMMs back to back: the whole run).
        with m.If(fire & ~busy):
            m.d.sync += [done.eq(0), cycles.eq(0)]
        with m.Elif(busy):
            m.d.sync += cycles.eq(cycles + 1)
            with m.If(finish & (inflight == 1) & ~fire):
                m.d.sync += done.eq(1)
        with m.If(fire):
            m.d.sync += [ld_half.eq(~ld_half), c_next.eq(~c_next)]
            with m.If(ov_fire):
                m.d.sync += [qm.eq(self.m), qk.eq(self.k), qn.eq(self.n), q_half.eq(ld_half),
                             q_chalf.eq(c_next), queued.eq(1)]
            with m.Else():
                m.d.sync += [cm.eq(self.m), ck.eq(self.k), cn.eq(self.n), cmode.eq(self.mode),
                             op_half.eq(ld_half), c_half.eq(c_next)]
        with m.If(switch):
            m.d.sync += [cm.eq(qm), ck.eq(qk), cn.eq(qn), op_half.eq(q_half),
                         c_half.eq(q_chalf), queued.eq(0)]
        m.d.comb += array.mode.eq(cmode)
        # The preload's GEMM: the queued one, else the sequencer's.
        pm, pk, pn = (Mux(queued, q, c) for q, c in ((qm, cm), (qk, ck), (qn, cn)))
        p_half = Mux(queued, q_half, op_half)

        os_ = cmode == _OS
        is_ = cmode == _IS

        # ---- loaders -------------------------------------------------------------------
        def handshake(name, strm, complete):
            take = Signal(name=f"{name}_take")
            m.d.comb += [strm.ready.eq(~complete), take.eq(strm.valid & strm.ready)]
            return take

        def completion(complete, take, last):
            with m.If(fire):
                m.d.sync += complete.eq(0)
            with m.Elif(take & last):
                m.d.sync += complete.eq(1)

        def row_major(name, e0, e1, by_j, period, step, clear):
            """Row-major (i, j) walk over an e0 × e1 matrix and its lane/address.

            ``by_j`` false: lane = i mod period, address = (i div period)·e1 + j;
            ``by_j`` true:  lane = j mod period, address = (j div period)·e0 + i.
            """
            i = Signal(dbits, name=f"{name}_i")
            j = Signal(dbits, name=f"{name}_j")
            lane = Signal(range(lanes), name=f"{name}_lane")
            base = Signal(wbits, name=f"{name}_base")
            last_j = j == e1 - 1
            last = last_j & (i == e0 - 1)
            lane_wrap = lane == period - 1
            with m.If(clear):
                m.d.sync += [i.eq(0), j.eq(0), lane.eq(0), base.eq(0)]
            with m.Elif(step):
                with m.If(last_j):
                    m.d.sync += [j.eq(0), i.eq(i + 1)]
                    with m.If(by_j):
                        m.d.sync += [lane.eq(0), base.eq(0)]
                    with m.Elif(lane_wrap):
                        m.d.sync += [lane.eq(0), base.eq(base + e1)]
                    with m.Else():
                        m.d.sync += lane.eq(lane + 1)
                with m.Else():
                    m.d.sync += j.eq(j + 1)
                    with m.If(by_j):
                        with m.If(lane_wrap):
                            m.d.sync += [lane.eq(0), base.eq(base + e0)]
                        with m.Else():
                            m.d.sync += lane.eq(lane + 1)
            addr = Signal(wbits, name=f"{name}_addr")
            m.d.comb += addr.eq(base + Mux(by_j, i, j))
            return SimpleNamespace(lane=lane, addr=addr, last=last)

        def chunk_walk(name, e0, e1, s0, s1, a0, a1, step, clear):
            """Row-major (i, j) walk over an e0 × e1 matrix in chunks of s0 × s1 elements.

            ``i``, ``j`` are the first element indices of the chunk; its address is
            (i div s0)·a0 + (j div s1)·a1, kept incrementally.
            """
            i = Signal(dbits, name=f"{name}_i")
            j = Signal(dbits, name=f"{name}_j")
            ai = Signal(wbits, name=f"{name}_ai")
            aj = Signal(wbits, name=f"{name}_aj")
            last_j = j + s1 >= e1
            last_i = i + s0 >= e0
            with m.If(clear):
                m.d.sync += [i.eq(0), j.eq(0), ai.eq(0), aj.eq(0)]
            with m.Elif(step):
                with m.If(last_j):
                    m.d.sync += [j.eq(0), aj.eq(0), i.eq(i + s0), ai.eq(ai + a0)]
                with m.Else():
                    m.d.sync += [j.eq(j + s1), aj.eq(aj + a1)]
            addr = Signal(wbits, name=f"{name}_addr")
            m.d.comb += addr.eq(ai + aj)
            return SimpleNamespace(i=i, j=j, addr=addr, last=last_i & last_j)

        # A: bank m mod L, address (m div L)·S + kb, element k mod rows; beats (m, k) narrow,
        # (m, kb) wide, row-major in both cases and in every dataflow.
        a_take = handshake("a_load", self.a_stream, a_complete)
        a_row = Signal(dbits, name="a_load_m")
        a_k = Signal(dbits, name="a_load_k")               # first k of the beat
        seq_stride = Signal(_index(stride + 1), name="a_seq_stride")  # the running GEMM's S
        a_el = Signal(_index(rows), name="a_load_el")       # k mod rows (narrow)
        a_kb = Signal(_index(stride), name="a_load_kb")     # k div rows
        a_stride = Signal(_index(stride + 1), name="a_load_stride")  # ⌈K/rows⌉, row 0 on
        a_bank = Signal(_index(lanes), name="a_load_bank")  # m mod L
        a_line = Signal(wbits, name="a_load_line")         # (m div L)·S
        a_kstep = rows if wide["a"] else 1
        a_last_k = a_k + a_kstep >= self.k
        q_stride = Signal.like(seq_stride, name="a_q_stride")
        with m.If(fire):
            # the half the started GEMM reads was loaded with stride a_stride
            m.d.sync += [a_row.eq(0), a_k.eq(0), a_el.eq(0), a_kb.eq(0), a_bank.eq(0),
                         a_line.eq(0)]
            with m.If(ov_fire):
                m.d.sync += q_stride.eq(a_stride)
            with m.Else():
                m.d.sync += seq_stride.eq(a_stride)
        with m.Elif(a_take):
            with m.If(a_last_k):
                m.d.sync += [a_k.eq(0), a_el.eq(0), a_kb.eq(0), a_row.eq(a_row + 1),
                             a_stride.eq(a_kb + 1)]
                with m.If(a_bank == lanes - 1):
                    m.d.sync += [a_bank.eq(0), a_line.eq(a_line + a_kb + 1)]
                with m.Else():
                    m.d.sync += a_bank.eq(a_bank + 1)
            with m.Else():
                m.d.sync += a_k.eq(a_k + a_kstep)
                if wide["a"]:
                    m.d.sync += a_kb.eq(a_kb + 1)
                else:
                    with m.If(a_el == rows - 1):
                        m.d.sync += [a_el.eq(0), a_kb.eq(a_kb + 1)]
                    with m.Else():
                        m.d.sync += a_el.eq(a_el + 1)
        with m.If(switch):
            m.d.sync += seq_stride.eq(q_stride)
        completion(a_complete, a_take, a_last_k & (a_row == self.m - 1))
        if wide["a"]:
            a_word, a_el_en = self.a_stream.payload, Const((1 << rows) - 1, rows)
        else:
            a_word = Cat(*[self.a_stream.payload] * rows)
            a_el_en = Cat(*[a_el == e for e in range(rows)])
        for bank, mem in enumerate(a_mem):
            m.d.comb += [mem.wp.addr.eq(mem_addr("a", a_line + a_kb, ld_half)),
                         mem.wp.data.eq(a_word),
                         mem.wp.en.eq(Mux(a_take & (a_bank == bank), a_el_en, 0))]

        # B: placed for the dataflow on the `mode` input (held until start).
        live_is = self.mode == _IS
        if self._b_external:
            m.d.comb += b_complete.eq(1)
        else:
            b_take = handshake("b_load", self.b_stream, b_complete)
            if wide["b"]:
                # A beat is one address across the lanes: ws/os beats (k, nb) at nb·K + k,
                # is beats (n, kb) at kb·N + n.
                b_walk = chunk_walk("b_load", Mux(live_is, self.n, self.k),
                                    Mux(live_is, self.k, self.n), 1, Mux(live_is, rows, cols),
                                    1, Mux(live_is, self.n, self.k), b_take, fire)
                for lane, mem in enumerate(b_mem):
                    m.d.comb += [mem.wp.addr.eq(mem_addr("b", b_walk.addr, ld_half)),
                                 mem.wp.data.eq(self.b_stream.payload[lane]),
                                 mem.wp.en.eq(b_take)]
            else:
                b_walk = row_major("b_load", self.k, self.n, ~live_is, Mux(live_is, rows, cols),
                                   b_take, fire)
                for lane, mem in enumerate(b_mem):
                    m.d.comb += [mem.wp.addr.eq(mem_addr("b", b_walk.addr, ld_half)),
                                 mem.wp.data.eq(self.b_stream.payload),
                                 mem.wp.en.eq(b_take & (b_walk.lane == lane))]
            completion(b_complete, b_take, b_walk.last)

        # ---- tile walkers (stream, preload, writer share the tile order) ----------------
        # Tile loops: ws: n tiles (outer) × k tiles (inner); is: m × k; os: m × n.
        irem0 = Mux(os_, cn, ck)
        istep_rem = Mux(os_, cols, rows)
        orem0 = Mux(os_ | is_, cm, cn)
        ostep_rem = Mux(os_, rows, cols)
        rbits = dbits + 1

        def walker(name, advance, clear, ibase_step, obase_step,
                   shape=(irem0, istep_rem, orem0, ostep_rem)):
            """Tile walk; ``shape``: the first inner and outer remainders (taken at
            ``clear``) and their steps."""
            irem0_, istep_, orem0_, ostep_ = shape
            inner_rem = Signal(signed(rbits), name=f"{name}_irem")
            outer_rem = Signal(signed(rbits), name=f"{name}_orem")
            inner_base = Signal(wbits, name=f"{name}_ibase")
            outer_base = Signal(wbits, name=f"{name}_obase")
            inner_first = Signal(name=f"{name}_ifirst")
            inner_idx = Signal(dbits, name=f"{name}_iidx")     # inner tile index
            finished = Signal(name=f"{name}_finished")
            outer_step = Signal(name=f"{name}_ostep")           # next outer tile this cycle
            last_inner = inner_rem <= istep_
            last_outer = outer_rem <= ostep_
            m.d.comb += outer_step.eq(~clear & advance & last_inner & ~last_outer)
            with m.If(clear):
                m.d.sync += [inner_rem.eq(irem0_), outer_rem.eq(orem0_), inner_base.eq(0),
                             outer_base.eq(0), inner_first.eq(1), inner_idx.eq(0),
                             finished.eq(0)]
            with m.Elif(advance):
                with m.If(last_inner):
                    m.d.sync += [inner_rem.eq(irem0_), inner_base.eq(0), inner_first.eq(1),
                                 inner_idx.eq(0)]
                    with m.If(last_outer):
                        m.d.sync += finished.eq(1)
                    with m.Else():
                        m.d.sync += [outer_rem.eq(outer_rem - ostep_),
                                     outer_base.eq(outer_base + obase_step)]
                with m.Else():
                    m.d.sync += [inner_rem.eq(inner_rem - istep_),
                                 inner_base.eq(inner_base + ibase_step), inner_first.eq(0),
                                 inner_idx.eq(inner_idx + 1)]
            return SimpleNamespace(irem=inner_rem, orem=outer_rem, ibase=inner_base,
                                   obase=outer_base, ifirst=inner_first, iidx=inner_idx,
                                   outer_step=outer_step, finished=finished,
                                   last=last_inner & last_outer)

        # ---- sequencer ------------------------------------------------------------------
        init = Signal()          # first busy cycle: reset the walkers from the latched shape
        m.d.sync += init.eq(fire)
        t_len = Mux(os_, ck, Mux(is_, cn, cm))   # temporal extent of a tile
        span = max(self._max) + rows + 1
        # Tile slot: os T + rows − 1 (the drain of the accumulators shifts rows cycles
        # under the next tile's stream); ws/is max(T, rows + 1): the next tile's stationary
        # operand is preloaded in the slot's last rows + 1 cycles and latched in its last
        # cycle, and the PEs switch to it with the next tile's first vector (rtl/pe.py).
        slot_len = Signal(range(span + 1))
        m.d.comb += slot_len.eq(Mux(os_, t_len + rows - 1,
                                    Mux(t_len > rows, t_len, rows + 1)))
        o = Signal(range(span))                  # offset in the tile slot
        pi = Signal(range(rows))                 # preload item
        seq_pro = Signal()                       # ws/is: preload of tile 0
        seq_lat = Signal()                       # ws/is: its latch, one cycle
        seq_slot = Signal()
        s_adv = Signal()
        pre_adv = Signal()
        # The stream walker takes its GEMM's shape when it starts (``init`` of a GEMM started
        # with the sequencer free, or the ``switch`` to the queued one); the preload walker
        # the preload's GEMM (pm, pk, pn) at ``init``.  B stream (os, is) address base; A's
        # reads have their own group trackers below.
        sm, sk, sn = (Mux(switch, q, c) for q, c in ((qm, cm), (qk, ck), (qn, cn)))
        stream_walk = walker("s", s_adv, (init & ~queued) | switch,
                             Mux(os_, ck, Mux(is_, cn, 0)), 0,
                             shape=(Mux(os_, sn, sk), istep_rem, Mux(os_ | is_, sm, sn),
                                    ostep_rem))
        pre_walk = walker("pre", pre_adv, init, rows, pk,
                          shape=(Mux(os_, pn, pk), istep_rem, Mux(os_ | is_, pm, pn),
                                 ostep_rem))

        ws_ = ~os_ & ~is_
        issue_stream = seq_slot & (o < t_len)
        in_window = (o + rows + 1 >= slot_len) & (o + 1 < slot_len)
        issue_pre = (seq_pro | (seq_slot & ~os_ & in_window)) & ~pre_walk.finished
        issue_latch = seq_lat | (seq_slot & ~os_ & (o + 1 == slot_len))
        slot_end = seq_slot & (o + 1 == slot_len)
        # A GEMM started in the last slot before its preload window (``init`` before the
        # window's first cycle) is preloaded in the window and streams right after the slot;
        # one started later (``late``) is preloaded as after a free start, from ``init`` on,
        # and streams rows + 3 cycles after its start.  Either way its first vector comes
        # max(end of the slot, start + rows + 3).
        late = Signal()          # the queued GEMM is preloaded after a late start
        late_init = Signal()     # ... and this is its init
        m.d.comb += [ov_ok.eq(seq_slot & ~os_ & stream_walk.last & ~queued),
                     ov_fire.eq(fire & seq_slot & ~slot_end),
                     switch.eq(queued & slot_end & stream_walk.last),
                     late_init.eq(init & queued & (o + rows + 2 > slot_len))]
        with m.If(init & ~queued):
            m.d.sync += [o.eq(0), pi.eq(0), seq_pro.eq(~os_), seq_slot.eq(os_)]
        with m.If(init & queued):
            m.d.sync += [pi.eq(0), seq_pro.eq(late_init), late.eq(late_init)]
        m.d.comb += [pre_adv.eq(issue_pre & (pi == rows - 1)), s_adv.eq(slot_end)]
        with m.If(issue_pre):
            m.d.sync += pi.eq(Mux(pi == rows - 1, 0, pi + 1))
        with m.If(seq_pro & (pi == rows - 1)):
            m.d.sync += [seq_pro.eq(0), seq_lat.eq(1)]
        with m.If(seq_lat):
            m.d.sync += [seq_lat.eq(0), seq_slot.eq(1), o.eq(0), late.eq(0)]
        with m.If(seq_slot):
            m.d.sync += o.eq(o + 1)
            with m.If(slot_end):
                m.d.sync += o.eq(0)
                with m.If(stream_walk.last):
                    # the queued GEMM, preloaded in the window, streams on; a late one
                    # streams after its latch; else the sequencer is free
                    with m.If(~queued | late | late_init):
                        m.d.sync += seq_slot.eq(0)
                    with m.If(~queued):
                        m.d.sync += seq_tail.eq(1)
        with m.If(fire):
            m.d.sync += seq_tail.eq(0)
        # The cycles in which o steps and in which it restarts at 0 (the statements above).
        o_inc = Signal()
        o_zero = Signal()
        m.d.comb += [o_inc.eq(seq_slot & ~slot_end),
                     o_zero.eq(~o_inc & (init | seq_lat | slot_end))]

        # B reads: one address for all lanes.
        rr = rows - 1 - pi                        # preload item pi carries row rows-1-pi
        b_stream_addr = stream_walk.ibase + o
        pre_addr = pre_walk.obase + pre_walk.ibase + rr
        b_rd_addr = Mux(os_ | is_, b_stream_addr, pre_addr)
        # ws reads B for the preload (the preload's GEMM), os and is for the stream.
        if self._b_external:
            b_base = Signal.like(self.b_base)
            q_base = Signal.like(self.b_base)
            with m.If(ov_fire):
                m.d.sync += q_base.eq(self.b_base)
            with m.Elif(fire):
                m.d.sync += b_base.eq(self.b_base)
            with m.If(switch):
                m.d.sync += b_base.eq(q_base)
            m.d.comb += self.b_addr.eq(Mux(ws_ & queued, q_base, b_base) + b_rd_addr)
        else:
            for mem in b_mem:
                m.d.comb += mem.rps[0].addr.eq(mem_addr("b", b_rd_addr,
                                                        Mux(ws_, p_half, op_half)))

        # A reads a group of consecutive rows x … x + g − 1 of A, all at one K-chunk kb and
        # element e: ws: x = o (the streamed row, g = 1, the whole word); os: x = m0 (g = rows,
        # e = o mod rows); is: x = m0 (g = cols, e = the preload row rr).  The group tracker
        # keeps x mod L (the bank of the group's first row) and (x div L)·S (its line).  is
        # reads A for the preload: the preload's GEMM's half and stride.
        a_stride_rd = Mux(is_ & queued, q_stride, seq_stride)
        g_bank = Signal(_index(lanes), name="a_grp_bank")
        g_line = Signal(wbits, name="a_grp_line")
        g_next = g_bank + Mux(ws_, 1, Mux(os_, rows, cols))
        with m.If(Mux(ws_, o_zero, init)):
            m.d.sync += [g_bank.eq(0), g_line.eq(0)]
        with m.Elif(Mux(ws_, o_inc, Mux(os_, stream_walk.outer_step, pre_walk.outer_step))):
            with m.If(g_next >= lanes):
                m.d.sync += [g_bank.eq(g_next - lanes), g_line.eq(g_line + a_stride_rd)]
            with m.Else():
                m.d.sync += g_bank.eq(g_next)
        # os: o = o_kb·rows + o_el
        o_el = Signal(_index(rows), name="a_os_el")
        o_kb = Signal(dbits, name="a_os_kb")
        with m.If(o_zero):
            m.d.sync += [o_el.eq(0), o_kb.eq(0)]
        with m.Elif(o_inc):
            with m.If(o_el == rows - 1):
                m.d.sync += [o_el.eq(0), o_kb.eq(o_kb + 1)]
            with m.Else():
                m.d.sync += o_el.eq(o_el + 1)
        a_kb_rd = Mux(os_, o_kb, Mux(is_, pre_walk.iidx, stream_walk.iidx))
        for bank, mem in enumerate(a_mem):
            # Banks below the group's first bank hold its rows of the next line.
            line = g_line + Mux(g_bank > bank, a_stride_rd, 0) if bank < lanes - 1 else g_line
            m.d.comb += mem.rps[0].addr.eq(mem_addr("a", line + a_kb_rd,
                                                    Mux(is_, p_half, op_half)))

        # Lanes outside a partial tile read as zero.
        h_mask = Signal(rows)
        v_mask = Signal(cols)
        h_rem = Mux(os_, stream_walk.orem, stream_walk.irem)
        for r in range(rows):
            m.d.comb += h_mask[r].eq(r < h_rem)
        for c in range(cols):
            pre_ok = (c < pre_walk.orem) & (rr < pre_walk.irem)
            m.d.comb += v_mask[c].eq(Mux(os_, c < stream_walk.irem, pre_ok))

        # os drain: the accumulators of a tile are final rows + L + 1 cycles after its last
        # stream issue (skew, multiplier latency); a delay line times the drain burst, issued
        # one cycle early because the PEs register the strobe before acting on it.
        drain_arm = seq_slot & os_ & (o == t_len - 1)
        drain_go = drain_arm
        for i in range(rows + lat):
            reg = Signal(name=f"drain_delay{i}")
            m.d.sync += reg.eq(drain_go)
            drain_go = reg
        d_step = Signal(range(rows))
        d_active = Signal()
        iss_drain = Signal()
        iss_step = Signal(range(rows))
        m.d.comb += [iss_drain.eq(drain_go | d_active),
                     iss_step.eq(Mux(drain_go, 0, d_step))]
        with m.If(drain_go):
            m.d.sync += [d_step.eq(1 % rows), d_active.eq(rows > 1)]
        with m.Elif(d_active):
            m.d.sync += d_step.eq(d_step + 1)
            with m.If(d_step == rows - 1):
                m.d.sync += [d_active.eq(0), d_step.eq(0)]

        # Align the controls with the read data (synchronous read: one cycle).
        al_valid = Signal()
        al_first = Signal()
        al_latch = Signal()
        al_drain = Signal()
        al_step = Signal(range(rows))
        al_hmask = Signal(rows)
        al_vmask = Signal(cols)
        al_bank = Signal(_index(lanes))
        al_el = Signal(_index(rows))
        m.d.sync += [al_bank.eq(g_bank), al_el.eq(Mux(os_, o_el, rr))]
        m.d.sync += [
            al_valid.eq(issue_stream), al_first.eq(issue_stream & (o == 0)),
            al_latch.eq(issue_latch),
            al_drain.eq(iss_drain), al_step.eq(iss_step),
            al_hmask.eq(h_mask), al_vmask.eq(v_mask),
        ]
        m.d.comb += [array.h_valid.eq(al_valid), array.h_first.eq(al_first),
                     array.latch.eq(al_latch), array.drain.eq(al_drain),
                     array.drain_step.eq(al_step)]
        # A: ws lane r takes element r of the group bank's word; os/is lane j takes element
        # al_el of bank (al_bank + j) mod L.
        a_words = [mem.rps[0].data for mem in a_mem]
        bank_el = [Signal(signed(p.a_width), name=f"a_bank{b}_el") for b in range(lanes)]
        for b, word in enumerate(a_words):
            m.d.comb += bank_el[b].eq(word[al_el] if rows > 1 else word[0])

        def select(name, shape, index, values):
            """values[index] (index < len(values)), as a complete case statement."""
            out = Signal(shape, name=name)
            with m.Switch(index):
                for i, value in enumerate(values[:-1]):
                    with m.Case(i):
                        m.d.comb += out.eq(value)
                with m.Default():
                    m.d.comb += out.eq(values[-1])
            return out

        a_rot = []
        for j in range(lanes):
            idx = al_bank + j
            rot_idx = Signal(_index(lanes), name=f"a_rot{j}_bank")
            m.d.comb += rot_idx.eq(Mux(idx >= lanes, idx - lanes, idx))
            a_rot.append(select(f"a_rot{j}", signed(p.a_width), rot_idx, bank_el))
        for r in range(rows):
            a_ws = select(f"a_ws{r}", signed(p.a_width), al_bank, [word[r] for word in a_words])
            h_val = Mux(is_, b_rd[r], Mux(ws_, a_ws, a_rot[r]))
            m.d.comb += array.h_in[r].eq(Mux(al_hmask[r], h_val, 0))
        for c in range(cols):
            v_val = Mux(is_, a_rot[c], b_rd[c])
            m.d.comb += array.v_in[c].eq(Mux(al_vmask[c], v_val, 0))

        # ---- writer ----------------------------------------------------------------------
        # The writer takes the array's output vectors of one GEMM after another, with its
        # own copy of the GEMM's shape, dataflow and result half: it takes the sequencer's
        # GEMM in the cycle after its start (``init``) when it has no GEMM left, else when
        # the last output vector of its GEMM arrives (``pend`` until then).
        w_m, w_n, w_k = (Signal(dbits, name=f"w_{x}") for x in "mnk")
        w_mode = Signal(2)
        w_half = Signal()
        w_active = Signal()
        w_os, w_is = w_mode == _OS, w_mode == _IS
        w_adv = Signal()
        w_load = Signal()
        w_walk = walker("w", w_adv, w_load, Mux(w_os, w_m, 0),
                        Mux(w_os, rows, Mux(w_is, w_n, w_m)),
                        shape=(irem0, Mux(w_os, cols, rows), orem0, Mux(w_os, rows, cols)))
        w_t_len = Mux(w_os, w_k, Mux(w_is, w_n, w_m))
        w_len = Mux(w_os, rows, w_t_len)         # output vectors per tile
        wt = Signal(range(span))
        out_v = array.out_valid
        w_row = Mux(w_os, rows - 1 - wt, wt)
        w_addr = w_walk.obase + w_walk.ibase + w_row
        tile_end = wt == w_len - 1
        w_end = out_v & tile_end & w_walk.last
        m.d.comb += [w_adv.eq(out_v & tile_end),
                     w_load.eq((init & (~w_active | w_end)) | (pend & w_end))]
        with m.If(w_load):
            m.d.sync += [w_m.eq(cm), w_n.eq(cn), w_k.eq(ck), w_mode.eq(cmode),
                         w_half.eq(c_half), w_active.eq(1), pend.eq(0)]
        with m.Elif(w_end):
            m.d.sync += w_active.eq(0)
        with m.If(init & w_active & ~w_end):
            m.d.sync += pend.eq(1)
        with m.If(w_load):
            m.d.sync += wt.eq(0)
        with m.Elif(out_v):
            m.d.sync += wt.eq(Mux(tile_end, 0, wt + 1))
        st_valid = Signal()
        st_last = Signal()
        st_acc = Signal()
        st_half = Signal()
        st_en = Signal(cols)
        st_addr = Signal(wbits)
        st_data = [Signal(signed(p.acc_width), name=f"st_data{c}") for c in range(cols)]
        lane_en = Signal(cols)
        for c in range(cols):
            os_ok = (c < w_walk.irem) & (rows - 1 - wt < w_walk.orem)
            m.d.comb += lane_en[c].eq(Mux(w_os, os_ok, c < w_walk.orem))
        m.d.sync += [st_valid.eq(out_v), st_last.eq(w_end), st_half.eq(w_half),
                     st_acc.eq(~w_os & ~w_walk.ifirst), st_en.eq(lane_en), st_addr.eq(w_addr)]
        m.d.sync += [st_data[c].eq(array.out[c]) for c in range(cols)]
        for c, mem in enumerate(c_mem):
            rmw, _ = mem.rps
            m.d.comb += [
                rmw.addr.eq(mem_addr("c", w_addr, w_half)),
                mem.wp.addr.eq(mem_addr("c", st_addr, st_half)),
                mem.wp.data.eq(Mux(st_acc, rmw.data + st_data[c], st_data[c])),
                mem.wp.en.eq(st_valid & st_en[c]),
            ]
        m.d.comb += finish.eq(busy & st_valid & st_last)

        # ---- drainer -------------------------------------------------------------------
        dm = [Signal(dbits, name=f"drain_m{h}") for h in range(2)]
        dn = [Signal(dbits, name=f"drain_n{h}") for h in range(2)]
        dis = [Signal(name=f"drain_is{h}") for h in range(2)]
        with m.If(fire):
            for h in range(2):
                with m.If(c_next == h):
                    m.d.sync += [dm[h].eq(self.m), dn[h].eq(self.n),
                                 dis[h].eq(self.mode == _IS)]
        d_half = Signal()
        d_run = Signal()
        d_issued = Signal()
        d_clear = Signal()
        in_flight = Signal()
        m.submodules.c_fifo = c_fifo = fifo.SyncFIFO(width=p.acc_width * self.c_lanes, depth=4)
        e_m = Mux(d_half, dm[1], dm[0])
        e_n = Mux(d_half, dn[1], dn[0])
        e_is = Mux(d_half, dis[1], dis[0])
        d_step_rd = Signal()
        # Keep at most 3 words queued or in flight, so a read never finds the FIFO full.
        room = (c_fifo.level + in_flight) < 3
        m.d.comb += [d_clear.eq(~d_run & c_full.bit_select(d_half, 1)),
                     d_step_rd.eq(d_run & ~d_issued & room)]
        m.d.sync += in_flight.eq(d_step_rd)
        if wide["c"]:
            # A beat is one address across the lanes: ws/os beats (m, nb) at nb·M + m,
            # is beats (mb, n) at mb·N + n; lanes past N (ws/os) or M (is) read as zero.
            d_walk = chunk_walk("c_drain", e_m, e_n, Mux(e_is, cols, 1), Mux(e_is, 1, cols),
                                Mux(e_is, e_n, 1), Mux(e_is, 1, e_m), d_step_rd, d_clear)
            d_mask = Signal(cols)
            m.d.sync += d_mask.eq(Cat(*[Mux(e_is, d_walk.i + c < e_m, d_walk.j + c < e_n)
                                        for c in range(cols)]))
            rd_word = Cat(*[Mux(d_mask[c], mem.rps[1].data, 0) for c, mem in enumerate(c_mem)])
            payload = c_fifo.r_data
        else:
            d_walk = row_major("c_drain", e_m, e_n, ~e_is, cols, d_step_rd, d_clear)
            d_lane = Signal(range(cols))
            m.d.sync += d_lane.eq(d_walk.lane)
            rd_word = Signal(signed(p.acc_width))
            with m.Switch(d_lane):
                for c, mem in enumerate(c_mem):
                    with m.Case(c):
                        m.d.comb += rd_word.eq(mem.rps[1].data)
            payload = c_fifo.r_data.as_signed()
        for mem in c_mem:
            m.d.comb += mem.rps[1].addr.eq(mem_addr("c", d_walk.addr, d_half))
        m.d.comb += [c_fifo.w_data.eq(rd_word), c_fifo.w_en.eq(in_flight),
                     self.c_stream.payload.eq(payload),
                     self.c_stream.valid.eq(c_fifo.r_rdy),
                     c_fifo.r_en.eq(self.c_stream.ready)]
        with m.If(d_clear):
            m.d.sync += [d_run.eq(1), d_issued.eq(0)]
        with m.Elif(d_step_rd & d_walk.last):
            m.d.sync += d_issued.eq(1)
        drained = d_run & d_issued & ~in_flight & (c_fifo.level == 0)
        with m.If(drained):
            m.d.sync += [d_run.eq(0), d_half.eq(~d_half)]
        # c_full: set when a GEMM finishes writing its half, cleared when that half drained.
        set_bits = Mux(finish, Mux(st_half, 0b10, 0b01), 0)
        clr_bits = Mux(drained, Mux(d_half, 0b10, 0b01), 0)
        m.d.sync += c_full.eq((c_full | set_bits) & ~clr_bits)
        return m

