"""Sparse spectral multiply-accumulate unit: banked input spectrum, P sparse kernel lanes.

Each of P lanes holds the non-zeros of one pruned spectral kernel W_p and accumulates
X[bin]·W_p[bin] over them, where X is one channel's input spectrum (``bins`` complex values).
All lanes read X, which sits in B banks with ``ports`` read ports each, so two lanes that
need the same bank in one cycle conflict.  The compiler orders the reads (a conflict-free
schedule is a proper edge colouring of the lanes × banks multigraph); this unit executes
any schedule, serialises the conflicts it still contains and counts them, so that a naive
order and a scheduled one can be compared cycle for cycle.

Blocks, in the order a value flows (:class:`SparseMAC` is the top):

1. **Placement table** (in :class:`SparseSequencer`): bin → (bank, row), loaded by the host
   on ``place``.  A bank may hold at most ``bank_depth`` = ⌈bins/B⌉ bins; the host keeps
   (bank, row) pairs distinct.
2. **Banked input-spectrum buffer**: B memories of ``bank_depth`` complex words, written
   bin by bin from ``x_stream`` at the bin's placement, read by the lanes.
3. **Sparse kernel banks**: per lane a memory of ``max_nnz`` complex kernel values, loaded
   on ``w_stream`` in the order the schedule consumes them; each lane reads its next value
   whenever it is served (a per-lane pointer; ``rewind`` or ``clear`` restarts it).
4. **Read sequencer and conflict arbiter** (:class:`SparseSequencer`,
   :class:`SparseArbiter`): ``steps`` carries one step per beat, for each lane (valid,
   bin).  Lock-step semantics: a step is presented for one cycle or more; each cycle, in
   each bank, the ``ports`` lowest-numbered lanes of the step that request that bank and
   have not been served yet are served; the step is taken (``ready``) in the cycle that
   serves its last lane.  So a step takes cycles(step) = max(1, max over banks of
   ⌈requests(bank)/ports⌉) cycles, and the unit stalls cycles(step) − 1 of them.
5. **MAC lanes**: a served (lane, bin) multiplies X[bin] by the lane's next kernel value
   and adds the product to the lane's accumulator for that bin (P × bins complex
   accumulators, exact to ``acc_width`` bits, then wrapping).  Pipeline: cycle 0 serve
   (bank, kernel-bank reads), cycle 1 the three products, cycle 2 the accumulator write.
6. **Counters and readout**: cycles busy (a step presented), stall cycles (a step presented
   but not taken), reads served; ``conflict`` is set, and stays set, if a bank read port
   were ever steered to by two lanes in one cycle (it must never happen: the formal proof
   in ``tests/formal`` shows it cannot).  ``dump`` streams the accumulators out, one bin
   (all P lanes) per beat.

Complex product with three real multiplies (Gauss's trick, as ``rtl/spectral.py`` and
docs/algorithms.md): for X = a + jb and W = c + jd, k1 = c·(a + b), k2 = a·(d − c),
k3 = b·(c + d), Re = k1 − k3, Im = k1 + k2.  The sums a + b, d − c and c + d are formed
in the lane, so the kernel banks hold plain (c, d).

**DSPs per lane: 3** -- one (data_width + 1) × kernel_width and two data_width ×
(kernel_width + 1) multipliers, each one DSP48E2 (27 × 18) or one ECP5 MULT18X18D while
data_width and kernel_width are at most 17 bits (the default 16 × 16).  The accumulators'
adders are fabric.  The unit has 3·P DSPs.

Accumulators are cleared by ``clear`` (or ``new_sum``) in one cycle: a per-(lane, bin)
"touched" bit makes the first contribution overwrite and the readout return 0 for untouched
bins.  ``clear``, ``rewind``, ``new_sum`` and ``dump`` are for an idle unit (``active``
low).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .fft import complex_layout
from .memstream import memory_streamer
from .params import COUNTER_BITS, SparseParams
from .validate import reject

__all__ = ["step_layout", "placement_layout", "SparseArbiter", "SparseSequencer",
           "SparseMAC"]


def _bits(n: int) -> int:
    """Unsigned bits that hold 0 … n − 1 (at least one, so no port is zero-width)."""
    return max(1, (n - 1).bit_length())


def step_layout(params: SparseParams) -> data.ArrayLayout:
    """One schedule step: for each lane, ``valid`` (the lane reads this step) and ``bin``."""
    return data.ArrayLayout(data.StructLayout({"valid": 1, "bin": _bits(params.bins)}),
                            params.lanes)


def placement_layout(params: SparseParams) -> data.StructLayout:
    """One placement-table entry as loaded: ``bin`` goes to ``row`` of ``bank``."""
    return data.StructLayout({"bin": _bits(params.bins), "bank": _bits(params.banks),
                              "row": _bits(params.bank_depth)})


def _check_params(component, params) -> None:
    if not isinstance(params, SparseParams):
        reject(component, TypeError(f"params must be a SparseParams, not {params!r}"))


class SparseArbiter(wiring.Component):
    """Combinational bank arbiter: the lowest-numbered requesting lanes of each bank win.

    Lane p is granted when it is pending and fewer than ``ports`` lower-numbered pending
    lanes request its bank; its read port is that count (0 … ports − 1).

    Parameters
    ----------
    params:
        The unit's :class:`~rtl.params.SparseParams` (lanes, banks, ports).

    Attributes
    ----------
    pending : In(lanes)
        Lanes that still need a read.
    bank : In(ArrayLayout(lanes))
        The bank each lane requests.
    grant : Out(lanes)
        Lanes served this cycle.
    port : Out(ArrayLayout(lanes))
        Read port of its bank each granted lane uses.
    """

    def __init__(self, params: SparseParams):
        _check_params(self, params)
        self._params = params
        super().__init__({
            "pending": In(params.lanes),
            "bank": In(data.ArrayLayout(unsigned(_bits(params.banks)), params.lanes)),
            "grant": Out(params.lanes),
            "port": Out(data.ArrayLayout(unsigned(_bits(params.ports)), params.lanes)),
        })

    @property
    def params(self) -> SparseParams:
        return self._params

    def elaborate(self, platform):
        m = Module()
        lanes, ports = self._params.lanes, self._params.ports
        for p in range(lanes):
            ahead = [self.pending[q] & (self.bank[q] == self.bank[p]) for q in range(p)]
            rank = Signal(range(lanes + 1), name=f"rank{p}")
            m.d.comb += rank.eq(sum(ahead) if ahead else 0)
            m.d.comb += [self.grant[p].eq(self.pending[p] & (rank < ports)),
                         self.port[p].eq(rank)]
        return m


class SparseSequencer(wiring.Component):
    """Placement table, lock-step read sequencer, bank-port steering and counters.

    Parameters
    ----------
    params:
        The unit's :class:`~rtl.params.SparseParams`.

    Attributes
    ----------
    steps : In(stream(step_layout))
        The schedule, one step per beat; ``ready`` in the cycle that serves the step's last
        lane (combinational from the payload: a step is held while lanes conflict).
    place : In(stream(placement_layout))
        Placement-table writes (always ready).
    x_bin : In, x_bank : Out, x_row : Out
        A placement lookup for the input-spectrum write path.
    fire : Out(lanes)
        Lanes served this cycle; ``lane_bin``, ``lane_bank``, ``lane_port`` say where.
    served : Out(lanes)
        Lanes of the presented step served in earlier cycles (0 between steps): the
        sequencer's only state, a monitor for the formal proof.
    rd_en, rd_addr : Out, per bank and port
        Read enables and rows of the bank memories' read ports.
    clear : In(1)
        Zeroes the counters (and forgets a held step: only while idle).
    busy_cycles, stall_cycles, reads : Out(COUNTER_BITS)
        Cycles with a step presented, of those the ones whose step was held, lanes served.
    conflict : Out(1)
        Sticky: some bank read port was selected by two lanes in one cycle (never expected).
    """

    def __init__(self, params: SparseParams):
        _check_params(self, params)
        self._params = params
        p = params
        bank_l = unsigned(_bits(p.banks))
        row_l = unsigned(_bits(p.bank_depth))
        super().__init__({
            "steps": In(stream.Signature(step_layout(p))),
            "place": In(stream.Signature(placement_layout(p))),
            "x_bin": In(_bits(p.bins)),
            "x_bank": Out(bank_l), "x_row": Out(row_l),
            "fire": Out(p.lanes), "served": Out(p.lanes),
            "lane_bin": Out(data.ArrayLayout(unsigned(_bits(p.bins)), p.lanes)),
            "lane_bank": Out(data.ArrayLayout(bank_l, p.lanes)),
            "lane_port": Out(data.ArrayLayout(unsigned(_bits(p.ports)), p.lanes)),
            "rd_en": Out(data.ArrayLayout(unsigned(p.ports), p.banks)),
            "rd_addr": Out(data.ArrayLayout(data.ArrayLayout(row_l, p.ports), p.banks)),
            "clear": In(1),
            "busy_cycles": Out(COUNTER_BITS), "stall_cycles": Out(COUNTER_BITS),
            "reads": Out(COUNTER_BITS),
            "conflict": Out(1),
        })

    @property
    def params(self) -> SparseParams:
        return self._params

    def arbiter(self) -> wiring.Component:
        """The bank arbiter this sequencer instantiates (:class:`SparseArbiter`; the formal
        tests override this with wrong arbiters to show that the proof can fail)."""
        return SparseArbiter(self._params)

    def elaborate(self, platform):
        m = Module()
        p = self._params
        lanes, banks, ports = p.lanes, p.banks, p.ports
        entry = data.StructLayout({"bank": _bits(banks), "row": _bits(p.bank_depth)})

        # ---- placement table: one write port, a lookup per lane and one for x writes -------
        m.submodules.placement = table = Memory(shape=entry, depth=p.bins, init=[])
        twp = table.write_port()
        entry_in = self.place.payload
        m.d.comb += [twp.addr.eq(entry_in.bin), twp.data.bank.eq(entry_in.bank),
                     twp.data.row.eq(entry_in.row), twp.en.eq(self.place.valid),
                     self.place.ready.eq(1)]
        xrp = table.read_port(domain="comb")
        m.d.comb += [xrp.addr.eq(self.x_bin), self.x_bank.eq(xrp.data.bank),
                     self.x_row.eq(xrp.data.row)]
        step = self.steps.payload
        rows = []
        for lane in range(lanes):
            rp = table.read_port(domain="comb")
            m.d.comb += [rp.addr.eq(step[lane].bin), self.lane_bank[lane].eq(rp.data.bank),
                         self.lane_bin[lane].eq(step[lane].bin)]
            rows.append(rp.data.row)

        # ---- lock-step sequencer: hold the step until every valid lane has been served ---
        done = self.served                   # lanes of the held step served in earlier cycles
        want = Cat(step[lane].valid for lane in range(lanes))
        pending = Signal(lanes)
        m.d.comb += pending.eq(Mux(self.steps.valid, want & ~done, 0))
        m.submodules.arbiter = arb = self.arbiter()
        m.d.comb += [arb.pending.eq(pending), arb.bank.eq(self.lane_bank),
                     self.fire.eq(arb.grant), self.lane_port.eq(arb.port)]
        last = Signal()                      # this cycle serves the step's last lanes
        m.d.comb += [last.eq((pending & ~arb.grant) == 0), self.steps.ready.eq(last)]
        with m.If(self.clear):
            m.d.sync += done.eq(0)
        with m.Elif(self.steps.valid & last):
            m.d.sync += done.eq(0)
        with m.Elif(self.steps.valid):
            m.d.sync += done.eq(done | arb.grant)

        # ---- bank-port steering and the conflict detector ----------------------------------
        conflict_now = Signal()
        clashes = []
        for b in range(banks):
            for k in range(ports):
                sel = [self.fire[lane] & (self.lane_bank[lane] == b)
                       & (self.lane_port[lane] == k) for lane in range(lanes)]
                m.d.comb += [self.rd_en[b][k].eq(Cat(sel).any()),
                             self.rd_addr[b][k].eq(_or_all([Mux(s, r, 0)
                                                            for s, r in zip(sel, rows)]))]
                # a select while an earlier lane already selected this port is a clash
                seen = Const(0)
                for s in sel:
                    clashes.append(seen & s)
                    seen = seen | s
        m.d.comb += conflict_now.eq(Cat(clashes).any() if clashes else 0)
        with m.If(conflict_now):
            m.d.sync += self.conflict.eq(1)

        # ---- counters ------------------------------------------------------------------------
        n_fire = Signal(range(lanes + 1))
        m.d.comb += n_fire.eq(sum(self.fire[lane] for lane in range(lanes)))
        with m.If(self.clear):
            m.d.sync += [self.busy_cycles.eq(0), self.stall_cycles.eq(0), self.reads.eq(0)]
        with m.Else():
            m.d.sync += self.reads.eq(self.reads + n_fire)
            with m.If(self.steps.valid):
                m.d.sync += self.busy_cycles.eq(self.busy_cycles + 1)
                with m.If(~last):
                    m.d.sync += self.stall_cycles.eq(self.stall_cycles + 1)
        return m


def _or_all(values):
    """Bitwise OR of one-hot-selected values (0 when none is selected)."""
    acc = values[0]
    for v in values[1:]:
        acc = acc | v
    return acc


class SparseMAC(wiring.Component):
    """The sparse spectral multiply-accumulate unit (module docstring: blocks, semantics).

    Parameters
    ----------
    params:
        :class:`~rtl.params.SparseParams`.

    Attributes
    ----------
    place : In(stream(placement_layout))
        Placement-table writes: ``bin`` → (``bank``, ``row``); always ready.
    x_stream : In(stream({bin, value}))
        Input-spectrum writes, one bin per beat (``value``: complex, ``data_width`` parts),
        stored at the bin's placement; always ready.  Load the placement first.
    w_stream : In(stream({lane, index, value}))
        Kernel-bank writes: ``value`` (complex, ``kernel_width`` parts) is the ``index``-th
        non-zero lane ``lane`` consumes; always ready.
    steps : In(stream(step_layout))
        The schedule (see :class:`SparseSequencer`).
    clear : In(1)
        Zero the accumulators, the counters and the kernel pointers.
    rewind : In(1)
        Restart the kernel pointers only (the next channel accumulates onto the sums).
    new_sum : In(1)
        Zero the accumulators only (the kernel pointers run on, the counters keep
        counting): the next group of filters of the same tile starts its sums.
    dump : In(1)
        Start streaming the accumulators on ``o_stream``: ``bins`` beats, bin 0 first,
        each the P lanes' complex accumulators (``acc_width`` parts).
    o_stream : Out(stream(ArrayLayout(complex, lanes)))
    active : Out(1)
        A step is presented or a served read is still in the MAC pipeline.
    busy_cycles, stall_cycles, reads, conflict : Out
        The sequencer's counters and sticky conflict flag.
    """

    def __init__(self, params: SparseParams):
        _check_params(self, params)
        self._params = params
        p = params
        self._x_cplx = complex_layout(p.data_width)
        self._w_cplx = complex_layout(p.kernel_width)
        self._acc_cplx = complex_layout(p.acc_width)
        super().__init__({
            "place": In(stream.Signature(placement_layout(p))),
            "x_stream": In(stream.Signature(data.StructLayout(
                {"bin": _bits(p.bins), "value": self._x_cplx}))),
            "w_stream": In(stream.Signature(data.StructLayout(
                {"lane": _bits(p.lanes), "index": _bits(p.max_nnz), "value": self._w_cplx}))),
            "steps": In(stream.Signature(step_layout(p))),
            "clear": In(1), "rewind": In(1), "new_sum": In(1), "dump": In(1),
            "o_stream": Out(stream.Signature(data.ArrayLayout(self._acc_cplx, p.lanes))),
            "active": Out(1),
            "busy_cycles": Out(COUNTER_BITS), "stall_cycles": Out(COUNTER_BITS),
            "reads": Out(COUNTER_BITS), "conflict": Out(1),
        })

    @property
    def params(self) -> SparseParams:
        return self._params

    def elaborate(self, platform):
        m = Module()
        p = self._params
        lanes, banks, ports = p.lanes, p.banks, p.ports

        m.submodules.sequencer = seq = SparseSequencer(p)
        wiring.connect(m, wiring.flipped(self.place), seq.place)
        wiring.connect(m, wiring.flipped(self.steps), seq.steps)
        m.d.comb += [seq.clear.eq(self.clear), self.busy_cycles.eq(seq.busy_cycles),
                     self.stall_cycles.eq(seq.stall_cycles), self.reads.eq(seq.reads),
                     self.conflict.eq(seq.conflict)]

        # ---- banked input-spectrum buffer -------------------------------------------------------
        x = self.x_stream
        m.d.comb += [x.ready.eq(1), seq.x_bin.eq(x.payload.bin)]
        x_re, x_im = [], []                  # read data, indexed bank·ports + port
        for b in range(banks):
            # at least two words: a bank of one (B = bins, e.g. N = 8 and B = 40) would have
            # a zero-width address in the Verilog; its row address is one bit (_bits)
            mem = Memory(shape=self._x_cplx, depth=max(2, p.bank_depth), init=[])
            m.submodules[f"bank{b}"] = mem
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(seq.x_row), wp.data.eq(x.payload.value),
                         wp.en.eq(x.valid & (seq.x_bank == b))]
            for k in range(ports):
                rp = mem.read_port()
                m.d.comb += [rp.addr.eq(seq.rd_addr[b][k]), rp.en.eq(seq.rd_en[b][k])]
                x_re.append(rp.data.re)
                x_im.append(rp.data.im)
        # every value of a lane's select chooses a port (the last repeated up to a power of
        # two), so the multiplexers' cases are complete (Verilator: CASEINCOMPLETE) with any
        # bank count, e.g. the explorer's B = 40
        pad = (1 << _bits(banks * ports)) - banks * ports
        x_re, x_im = Array(x_re + x_re[-1:] * pad), Array(x_im + x_im[-1:] * pad)

        # ---- per lane: kernel bank, pointer, products, accumulators ------------------------------
        w = self.w_stream
        m.d.comb += w.ready.eq(1)
        pw = p.product_width
        any_s1, any_s2 = [], []
        dump_ports, touched_at = [], []
        for lane in range(lanes):
            kmem = Memory(shape=self._w_cplx, depth=p.max_nnz, init=[])
            m.submodules[f"kernel{lane}"] = kmem
            kwp, krp = kmem.write_port(), kmem.read_port()
            ptr = Signal(_bits(p.max_nnz), name=f"ptr{lane}")
            m.d.comb += [kwp.addr.eq(w.payload.index), kwp.data.eq(w.payload.value),
                         kwp.en.eq(w.valid & (w.payload.lane == lane)),
                         krp.addr.eq(ptr), krp.en.eq(seq.fire[lane])]
            with m.If(self.clear | self.rewind):
                m.d.sync += ptr.eq(0)
            with m.Elif(seq.fire[lane]):
                m.d.sync += ptr.eq(Mux(ptr == p.max_nnz - 1, 0, ptr + 1))

            # stage 1: the bank and kernel words arrive; three real products
            s1_fire = Signal(name=f"s1_fire{lane}")
            s1_sel = Signal(_bits(banks * ports), name=f"s1_sel{lane}")
            s1_bin = Signal(_bits(p.bins), name=f"s1_bin{lane}")
            m.d.sync += [s1_fire.eq(seq.fire[lane]),
                         s1_sel.eq(seq.lane_bank[lane] * ports + seq.lane_port[lane]),
                         s1_bin.eq(seq.lane_bin[lane])]
            a, b = x_re[s1_sel], x_im[s1_sel]
            c, d = krp.data.re, krp.data.im
            k1 = Signal(signed(pw), name=f"k1_{lane}")
            k2 = Signal(signed(pw), name=f"k2_{lane}")
            k3 = Signal(signed(pw), name=f"k3_{lane}")
            m.d.comb += [k1.eq(c * (a + b)), k2.eq(a * (d - c)), k3.eq(b * (c + d))]

            # stage 2: accumulate (read-modify-write; the read is issued in stage 1)
            s2_fire = Signal(name=f"s2_fire{lane}")
            s2_bin = Signal(_bits(p.bins), name=f"s2_bin{lane}")
            s2_re = Signal(signed(pw), name=f"s2_re{lane}")    # exact: see product_width
            s2_im = Signal(signed(pw), name=f"s2_im{lane}")
            m.d.sync += [s2_fire.eq(s1_fire), s2_bin.eq(s1_bin),
                         s2_re.eq(k1 - k3), s2_im.eq(k1 + k2)]
            amem = Memory(shape=self._acc_cplx, depth=p.bins, init=[])
            m.submodules[f"acc{lane}"] = amem
            awp = amem.write_port()
            arp = amem.read_port(transparent_for=(awp,))
            touched = Signal(p.bins, name=f"touched{lane}")
            first = ~touched.bit_select(s2_bin, 1)
            m.d.comb += [arp.addr.eq(s1_bin), arp.en.eq(1),
                         awp.addr.eq(s2_bin), awp.en.eq(s2_fire),
                         awp.data.re.eq(Mux(first, 0, arp.data.re) + s2_re),
                         awp.data.im.eq(Mux(first, 0, arp.data.im) + s2_im)]
            with m.If(self.clear | self.new_sum):
                m.d.sync += touched.eq(0)
            with m.Elif(s2_fire):
                m.d.sync += touched.eq(touched | (Const(1, p.bins) << s2_bin))
            any_s1.append(s1_fire)
            any_s2.append(s2_fire)
            dump_ports.append(amem.read_port())
            touched_at.append(touched)
        m.d.comb += self.active.eq(self.steps.valid | Cat(any_s1).any() | Cat(any_s2).any())

        # ---- readout: one bin (all lanes) per beat -----------------------------------------
        o = self.o_stream
        q_addr, q_left, q_valid = memory_streamer(m, dump_ports, o.ready, p.bins, "dump")
        with m.If(self.dump):
            m.d.sync += [q_addr.eq(0), q_left.eq(p.bins)]
        q_touched = Signal(lanes)
        with m.If(~q_valid | o.ready):                   # the streamer's read enable
            m.d.sync += q_touched.eq(Cat(t.bit_select(q_addr, 1) for t in touched_at))
        m.d.comb += o.valid.eq(q_valid)
        for lane, rp in enumerate(dump_ports):
            m.d.comb += [o.payload[lane].re.eq(Mux(q_touched[lane], rp.data.re, 0)),
                         o.payload[lane].im.eq(Mux(q_touched[lane], rp.data.im, 0))]
        return m
