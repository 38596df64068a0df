"""GEMM engine: C[M×N] = A[M×K]·B[K×N] on the systolic array, from on-chip buffers.

Blocks (one ``Module``; the buffers are ``amaranth.lib.memory.Memory`` lanes):

* **loader** — takes A and B row-major from two streams and writes them into lane memories
  in the bank layout the chosen dataflow reads (every lane is read at the same address in a
  cycle, so one address feeds the whole array edge);
* **sequencer** — walks the tiles, issues one read per cycle to the operand lanes (stream
  vector and, for ws/is, the next tile's stationary preload in the same cycles), the os drain
  strobes, and counts the busy cycles;
* **systolic array** (``rtl.systolic``);
* **writer** — writes the array's output vectors into the result lanes, read-modify-write to
  accumulate the K tiles of ws/is;
* **drainer** — reads C row-major out of the result lanes into ``c_stream``.

Every buffer has two halves (double buffering): the loader fills one operand half while the
sequencer reads the other, and one result half drains while the next GEMM writes the other.
Port-level protocol, timing and the cycle formula: docs/rtl.md.  The formula lives in
``dse.cost.gemm.gemm_cycles`` and the tests check that ``cycles`` equals it.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl.dsp import DEFAULT_LATENCY, TARGETS
from rtl.params import ArrayParams, Dataflow
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
        Largest GEMM the buffers hold (each buffer half is sized for the worst dataflow).
    target:
        Multiplier target: ``"sim"`` (Amaranth simulator, Verilator), ``"xcup"``, ``"ecp5"``.
    mult_latency:
        Register stages of each PE's multiplier (0 … 4); the cycle formula's ``mult_latency``.

    Members
    -------
    m, k, n : In(dim_bits)
    mode : In(2)
    start : In(1)
    start_ready, busy, done : Out(1)
    cycles : Out(32)
    a_stream : In(stream.Signature(signed(a_width)))
    b_stream : In(stream.Signature(signed(b_width)))
    c_stream : Out(stream.Signature(signed(acc_width)))

    Raises
    ------
    TypeError, ValueError
        For a bad parameter, including an accumulator too narrow for ``max_k`` products of
        the largest operands (the sum must never wrap for in-range operands).
    """

    def __init__(self, params: ArrayParams, *, max_m: int = 64, max_k: int = 64,
                 max_n: int = 64, target: str = "sim", mult_latency: int = DEFAULT_LATENCY):
        with rejecting(self):
            self._setup(params, max_m, max_k, max_n, target, mult_latency)

    def _setup(self, params, max_m, max_k, max_n, target, mult_latency):
        if not isinstance(params, ArrayParams):
            raise TypeError(f"params must be an ArrayParams, not {params!r}")
        for name, value in (("max_m", max_m), ("max_k", max_k), ("max_n", max_n)):
            _check_count(name, value)
            if value > 1 << 20:
                raise ValueError(f"{name} must be at most {1 << 20}, not {value}")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
        # |a·b| <= 2^(a_width + b_width − 2), reached by (−2^(aw−1))·(−2^(bw−1)) > 0.
        worst = max_k << (params.a_width + params.b_width - 2)
        if worst > (1 << (params.acc_width - 1)) - 1:
            need = worst.bit_length() + 1
            raise ValueError(f"acc_width must be at least {need} for max_k = {max_k} products "
                             f"of {params.a_width} × {params.b_width} bits, "
                             f"not {params.acc_width}")
        self._params = params
        self._max = (max_m, max_k, max_n)
        self._array = SystolicArray(params, mult_latency, target)
        rows, cols = params.rows, params.cols
        # Words per lane in one half, worst case over the dataflows' layouts (docs/rtl.md).
        a_words = max(_cdiv(max_m, rows) * max_k, _cdiv(max_m, cols) * max_k,
                      _cdiv(max_k, rows) * max_m)
        b_words = max(_cdiv(max_n, cols) * max_k, _cdiv(max_k, rows) * max_n)
        c_words = max(_cdiv(max_n, cols) * max_m, _cdiv(max_m, cols) * max_n)
        self._half_depth = {"a": _pow2_at_least(a_words), "b": _pow2_at_least(b_words),
                            "c": _pow2_at_least(c_words)}
        self._dim_bits = max(max_m, max_k, max_n).bit_length()
        super().__init__({
            "m": In(self._dim_bits), "k": In(self._dim_bits), "n": In(self._dim_bits),
            "mode": In(2),
            "start": In(1), "start_ready": Out(1),
            "busy": Out(1), "done": Out(1),
            "cycles": Out(CYCLE_BITS),
            "a_stream": In(stream.Signature(signed(params.a_width))),
            "b_stream": In(stream.Signature(signed(params.b_width))),
            "c_stream": Out(stream.Signature(signed(params.acc_width))),
        })

    @property
    def params(self) -> ArrayParams:
        """Array shape and widths."""
        return self._params

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
    def half_depths(self) -> dict[str, int]:
        """Words per lane in one buffer half, for ``"a"``, ``"b"``, ``"c"``."""
        return dict(self._half_depth)

    # ------------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        p = self._params
        rows, cols = p.rows, p.cols
        lanes = max(rows, cols)
        lat = self.mult_latency
        dbits = self._dim_bits
        abits = {key: (depth - 1).bit_length() for key, depth in self._half_depth.items()}
        # Wide enough for every base/address sum before it is cut to a memory address.
        wbits = max(abits.values()) + dbits + 2
        m.submodules.array = array = self._array

        # ---- buffers ------------------------------------------------------------------
        def lane_memories(key, count, shape, read_ports):
            mems = []
            for lane in range(count):
                mem = Memory(shape=shape, depth=2 * self._half_depth[key], init=[])
                m.submodules[f"{key}_lane{lane}"] = mem
                wp = mem.write_port()
                rps = [mem.read_port(transparent_for=(wp,) if transparent else ())
                       for transparent in read_ports]
                mems.append(SimpleNamespace(wp=wp, rps=rps))
            return mems

        a_mem = lane_memories("a", lanes, signed(p.a_width), [False])
        b_mem = lane_memories("b", lanes, signed(p.b_width), [False])
        # Result lanes: read port 0 for the writer's read-modify-write (transparent, so a K
        # tile may read what the previous K tile writes in the same cycle), 1 for the drainer.
        c_mem = lane_memories("c", cols, signed(p.acc_width), [True, False])

        def mem_addr(key, addr, half):
            return Cat(addr[:abits[key]], half) if abits[key] else half

        # ---- control registers and handshake ------------------------------------------
        busy = Signal()
        done = Signal()
        cycles = Signal(CYCLE_BITS)
        ld_half = Signal()      # operand half the loader fills
        op_half = Signal()      # operand half the sequencer reads
        c_next = Signal()       # result half the next GEMM writes
        c_half = Signal()       # result half the running GEMM writes
        c_full = Signal(2)      # result half holds a GEMM not yet drained
        cm = Signal(dbits)
        ck = Signal(dbits)
        cn = Signal(dbits)
        cmode = Signal(2)
        a_complete = Signal()
        b_complete = Signal()
        fire = Signal()
        finish = Signal()       # last write of C this cycle
        m.d.comb += [
            self.start_ready.eq(~busy & a_complete & b_complete & ~c_full.bit_select(c_next, 1)),
            fire.eq(self.start & self.start_ready),
            self.busy.eq(busy), self.done.eq(done), self.cycles.eq(cycles),
        ]
        with m.If(fire):
            m.d.sync += [busy.eq(1), done.eq(0), cycles.eq(0),
                         cm.eq(self.m), ck.eq(self.k), cn.eq(self.n), cmode.eq(self.mode),
                         op_half.eq(ld_half), ld_half.eq(~ld_half),
                         c_half.eq(c_next), c_next.eq(~c_next)]
        with m.Elif(busy):
            m.d.sync += cycles.eq(cycles + 1)
            with m.If(finish):
                m.d.sync += [busy.eq(0), done.eq(1)]
        m.d.comb += array.mode.eq(cmode)

        os_ = cmode == _OS
        is_ = cmode == _IS

        # ---- loader --------------------------------------------------------------------
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

        def loader(name, strm, mems, e0, e1, by_j, period, complete):
            take = Signal(name=f"{name}_take")
            m.d.comb += [strm.ready.eq(~complete), take.eq(strm.valid & strm.ready)]
            walk = row_major(name, e0, e1, by_j, period, take, fire)
            for lane, mem in enumerate(mems):
                m.d.comb += [mem.wp.addr.eq(mem_addr(name[0], walk.addr, ld_half)),
                             mem.wp.data.eq(strm.payload),
                             mem.wp.en.eq(take & (walk.lane == lane))]
            with m.If(fire):
                m.d.sync += complete.eq(0)
            with m.Elif(take & walk.last):
                m.d.sync += complete.eq(1)

        # The loader places data for the dataflow on the `mode` input (held until start).
        live_os, live_is = self.mode == _OS, self.mode == _IS
        loader("a_load", self.a_stream, a_mem, self.m, self.k, ~live_os & ~live_is,
               Mux(live_is, cols, rows), a_complete)
        loader("b_load", self.b_stream, b_mem, self.k, self.n, ~live_is,
               Mux(live_is, rows, cols), b_complete)

        # ---- tile walkers (stream, preload, writer share the tile order) ----------------
        # Tile loops: ws: n tiles (outer) × k tiles (inner); is: m × k; os: m × n.
        irem0 = Mux(os_, cn, ck)
        istep_rem = Mux(os_, cols, rows)
        orem0 = Mux(os_ | is_, cm, cn)
        ostep_rem = Mux(os_, rows, cols)
        rbits = dbits + 1

        def walker(name, advance, clear, ibase_step, obase_step):
            inner_rem = Signal(signed(rbits), name=f"{name}_irem")
            outer_rem = Signal(signed(rbits), name=f"{name}_orem")
            inner_base = Signal(wbits, name=f"{name}_ibase")
            outer_base = Signal(wbits, name=f"{name}_obase")
            inner_first = Signal(name=f"{name}_ifirst")
            finished = Signal(name=f"{name}_finished")
            last_inner = inner_rem <= istep_rem
            last_outer = outer_rem <= ostep_rem
            with m.If(clear):
                m.d.sync += [inner_rem.eq(irem0), outer_rem.eq(orem0), inner_base.eq(0),
                             outer_base.eq(0), inner_first.eq(1), finished.eq(0)]
            with m.Elif(advance):
                with m.If(last_inner):
                    m.d.sync += [inner_rem.eq(irem0), inner_base.eq(0), inner_first.eq(1)]
                    with m.If(last_outer):
                        m.d.sync += finished.eq(1)
                    with m.Else():
                        m.d.sync += [outer_rem.eq(outer_rem - ostep_rem),
                                     outer_base.eq(outer_base + obase_step)]
                with m.Else():
                    m.d.sync += [inner_rem.eq(inner_rem - istep_rem),
                                 inner_base.eq(inner_base + ibase_step), inner_first.eq(0)]
            return SimpleNamespace(irem=inner_rem, orem=outer_rem, ibase=inner_base,
                                   obase=outer_base, ifirst=inner_first, finished=finished,
                                   last=last_inner & last_outer)

        # ---- sequencer ------------------------------------------------------------------
        init = Signal()          # first busy cycle: reset the walkers from the latched shape
        m.d.sync += init.eq(fire)
        t_len = Mux(os_, ck, Mux(is_, cn, cm))   # temporal extent of a tile
        span = max(self._max) + rows + 1
        o = Signal(range(span))                  # offset in the tile slot
        pi = Signal(range(rows))                 # preload item
        seq_pro = Signal()
        seq_slot = Signal()
        seq_tail = Signal()
        s_adv = Signal()
        pre_adv = Signal()
        stream_walk = walker("s", s_adv, init, Mux(os_, ck, Mux(is_, cn, cm)),
                             Mux(os_, ck, 0))
        pre_walk = walker("pre", pre_adv, init, rows, ck)

        with m.If(init):
            m.d.sync += [o.eq(0), pi.eq(0), seq_pro.eq(~os_), seq_slot.eq(os_)]

        issue_stream = seq_slot & (o < t_len)
        issue_pre = (seq_pro | (seq_slot & ~os_ & (o >= t_len - 1))) & ~pre_walk.finished
        slot_end = seq_slot & (o == t_len + rows - 2)
        m.d.comb += [pre_adv.eq(issue_pre & (pi == rows - 1)), s_adv.eq(slot_end)]
        with m.If(issue_pre):
            m.d.sync += pi.eq(Mux(pi == rows - 1, 0, pi + 1))
        with m.If(seq_pro & (pi == rows - 1)):
            m.d.sync += [seq_pro.eq(0), seq_slot.eq(1), o.eq(0)]
        with m.If(seq_slot):
            m.d.sync += o.eq(o + 1)
            with m.If(slot_end):
                m.d.sync += o.eq(0)
                with m.If(stream_walk.last):
                    m.d.sync += [seq_slot.eq(0), seq_tail.eq(1)]
        with m.If(finish):
            m.d.sync += seq_tail.eq(0)

        # Operand reads: one address for all lanes of a buffer.
        rr = rows - 1 - pi                        # preload item pi carries row rows-1-pi
        stream_addr = Mux(os_, stream_walk.obase, stream_walk.ibase) + o
        b_stream_addr = stream_walk.ibase + o
        pre_addr = pre_walk.obase + pre_walk.ibase + rr
        a_rd_addr = Mux(is_, pre_addr, stream_addr)
        b_rd_addr = Mux(os_ | is_, b_stream_addr, pre_addr)
        for mem in a_mem:
            m.d.comb += mem.rps[0].addr.eq(mem_addr("a", a_rd_addr, op_half))
        for mem in b_mem:
            m.d.comb += mem.rps[0].addr.eq(mem_addr("b", b_rd_addr, op_half))

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
        m.d.sync += [
            al_valid.eq(issue_stream), al_first.eq(issue_stream & (o == 0)),
            al_latch.eq(issue_stream & (o == 0) & ~os_),
            al_drain.eq(iss_drain), al_step.eq(iss_step),
            al_hmask.eq(h_mask), al_vmask.eq(v_mask),
        ]
        m.d.comb += [array.h_valid.eq(al_valid), array.h_first.eq(al_first),
                     array.latch.eq(al_latch), array.drain.eq(al_drain),
                     array.drain_step.eq(al_step)]
        for r in range(rows):
            h_val = Mux(is_, b_mem[r].rps[0].data, a_mem[r].rps[0].data)
            m.d.comb += array.h_in[r].eq(Mux(al_hmask[r], h_val, 0))
        for c in range(cols):
            v_val = Mux(is_, a_mem[c].rps[0].data, b_mem[c].rps[0].data)
            m.d.comb += array.v_in[c].eq(Mux(al_vmask[c], v_val, 0))

        # ---- writer ----------------------------------------------------------------------
        w_adv = Signal()
        w_walk = walker("w", w_adv, init, Mux(os_, cm, 0),
                        Mux(os_, rows, Mux(is_, cn, cm)))
        w_len = Mux(os_, rows, t_len)            # output vectors per tile
        wt = Signal(range(span))
        out_v = array.out_valid
        w_row = Mux(os_, rows - 1 - wt, wt)
        w_addr = w_walk.obase + w_walk.ibase + w_row
        tile_end = wt == w_len - 1
        m.d.comb += w_adv.eq(out_v & tile_end)
        with m.If(init):
            m.d.sync += wt.eq(0)
        with m.Elif(out_v):
            m.d.sync += wt.eq(Mux(tile_end, 0, wt + 1))
        st_valid = Signal()
        st_last = Signal()
        st_acc = Signal()
        st_en = Signal(cols)
        st_addr = Signal(wbits)
        st_data = [Signal(signed(p.acc_width), name=f"st_data{c}") for c in range(cols)]
        lane_en = Signal(cols)
        for c in range(cols):
            os_ok = (c < w_walk.irem) & (rows - 1 - wt < w_walk.orem)
            m.d.comb += lane_en[c].eq(Mux(os_, os_ok, c < w_walk.orem))
        m.d.sync += [st_valid.eq(out_v), st_last.eq(out_v & tile_end & w_walk.last),
                     st_acc.eq(~os_ & ~w_walk.ifirst), st_en.eq(lane_en), st_addr.eq(w_addr)]
        m.d.sync += [st_data[c].eq(array.out[c]) for c in range(cols)]
        for c, mem in enumerate(c_mem):
            rmw, _ = mem.rps
            m.d.comb += [
                rmw.addr.eq(mem_addr("c", w_addr, c_half)),
                mem.wp.addr.eq(mem_addr("c", st_addr, c_half)),
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
        d_lane = Signal(range(cols))
        m.submodules.c_fifo = c_fifo = fifo.SyncFIFO(width=p.acc_width, depth=4)
        e_m = Mux(d_half, dm[1], dm[0])
        e_n = Mux(d_half, dn[1], dn[0])
        e_is = Mux(d_half, dis[1], dis[0])
        d_step_rd = Signal()
        d_walk = row_major("c_drain", e_m, e_n, ~e_is, cols, d_step_rd, d_clear)
        # Keep at most 3 words queued or in flight, so a read never finds the FIFO full.
        room = (c_fifo.level + in_flight) < 3
        m.d.comb += [d_clear.eq(~d_run & c_full.bit_select(d_half, 1)),
                     d_step_rd.eq(d_run & ~d_issued & room)]
        for mem in c_mem:
            m.d.comb += mem.rps[1].addr.eq(mem_addr("c", d_walk.addr, d_half))
        m.d.sync += [in_flight.eq(d_step_rd), d_lane.eq(d_walk.lane)]
        rd_word = Signal(signed(p.acc_width))
        with m.Switch(d_lane):
            for c, mem in enumerate(c_mem):
                with m.Case(c):
                    m.d.comb += rd_word.eq(mem.rps[1].data)
        m.d.comb += [c_fifo.w_data.eq(rd_word), c_fifo.w_en.eq(in_flight),
                     self.c_stream.payload.eq(c_fifo.r_data.as_signed()),
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
        set_bits = Mux(finish, Mux(c_half, 0b10, 0b01), 0)
        clr_bits = Mux(drained, Mux(d_half, 0b10, 0b01), 0)
        m.d.sync += c_full.eq((c_full | set_bits) & ~clr_bits)
        return m

