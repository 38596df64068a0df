"""The overlay top (first milestone): a program in DRAM runs conv and pool layers.

:class:`OverlayTop` joins the units that exist so far behind two AXI4 masters (``m_axi_*``,
the engines' data, and ``m_axi_instr_*``, read-only, the program) and one AXI4-Lite slave:

* :class:`rtl.axil.AxiLiteRegisters` gives the host :data:`HOST_REGISTERS`: a ``start``
  pulse, the ``program`` address, the status bits (:data:`STATUS_BITS`), the error
  registers, ``cycles`` and each engine's busy cycles.  The plain ``start`` / ``program``
  ports stay beside it (a start from either; each with its own address);
* :class:`rtl.fetch.InstructionFetch` reads the program from ``program`` after ``start``,
  on its own read port ``m_axi_instr_*`` (as the Xilinx DPU's instruction master), and
  feeds :class:`rtl.controller.Controller`, which decodes the words and dispatches each
  engine's instructions as the dependency tokens allow;
* the **load adapter** keeps each buffer's ``load.setup`` (element size, pitches) and hands
  each ``load.tile`` to the one :class:`rtl.dma.LoadEngine` (``per_command``: the
  controller runs loads one at a time), in the format of its ``buf``
  (:attr:`OverlayTop.load_formats`), and the engine's words to that buffer's write port:
  ``feature`` → the datapath's feature-buffer write port (lanes = ``rows``, lane bits =
  ``a_width``, sign-extended; with ``winograd_m`` tile mode is allowed and its
  tile-mode writes go to the Winograd tile buffer, slot by slot: ``ConvDatapath``'s
  ``ts_*`` port), ``weight`` → its weight-buffer write port (lanes = the
  datapath's ``edge`` = max(rows, cols), lane bits = ``b_width``, sign-extended), ``table``
  → the table memory (:data:`rtl.isa.IMAGE_WORD_BITS`-bit words, 16 lanes of 8 bits, not
  extended), ``aux`` (with a pool engine) → the aux buffer (``aux_words`` words of ``rows``
  int8 lanes).  The engine is as wide as the widest format; each buffer takes its lanes'
  low bits.  The instruction's ``done`` is the engine's;
* the **compute adapter** keeps ``compute.setup``'s image base and hands ``compute.tile``'s
  base + image offset to :class:`rtl.compute_engine.ComputeEngine`, which reads the image
  from the table memory, drives the :class:`rtl.conv_datapath.ConvDatapath`'s setting ports
  (by name), starts it and waits for its ``done``;
* the **pool adapter** hands the pool commands to :class:`rtl.pool_engine.PoolEngine`
  (present when :func:`pool_supported`: precision 8, and ``rows`` and ``cols`` a power of
  two apart).  It works on groups of :func:`pool_lanes` = gcd(``rows``, ``cols``) lanes,
  reading feature and aux words of ``rows`` lanes and writing output words of ``cols`` lanes
  (``in_lanes``, ``out_lanes``: on rows == cols the plain engine).  It reads the feature buffer (inside the datapath's
  window generator) through the generator's read port and the aux buffer, and writes the
  output buffer through the datapath's second write port (both
  ``ConvDatapath(out_write_port=True)``: ``fr_*``, ``ow_*``); the tokens keep it and the
  compute engine apart in time;
* the **store adapter** keeps ``store.setup`` and hands ``store.tile`` to a
  :class:`rtl.dma.StoreEngine` reading the datapath's output-buffer port (lanes = the
  datapath's ``lanes``, lane bits = ``precision``, of which a GEMM or pooled output word fills
  ``cols``: ``box_lanes``; with ``winograd_m`` it has tile mode for the Winograd output
  words, m×m tiles of ``winograd_lanes`` filters);
* ``m_axi_*``: the load engine's read channel and the store engine's write channel.  The
  fetch unit's bursts have a port of their own, so they never delay a load and the
  schedule below is exact.

A ``setup`` instruction takes no time: its ``done`` comes in its transfer's cycle.

**Errors.** Besides the controller's (an illegal word, a deadlock: ``error_code``,
``error_index``), the top stops on

* without a pool engine, a ``pool.setup`` / ``pool.tile`` or a ``load.setup`` /
  ``load.tile`` naming the ``aux`` buffer; a ``pool.tile`` the pool engine refuses (its
  window larger than the padded tile); a ``load.tile`` into a buffer whose ``load.setup``
  has not come: ``engine_error``, with the engine in ``error_engine``
  (:attr:`rtl.isa.Engine.code`);
* a DMA command the engine refuses or a response that is not OKAY: ``engine_error`` too;
* a fetch error (unaligned ``program``, a read response that is not OKAY): ``fetch_error``.

On any of these ``error`` rises, the fetch is stopped and the controller is held in reset
(nothing further is dispatched) until the next ``start``; an engine still running its
instruction finishes it (an AXI burst is never cut short), and ``busy`` stays high until it
has.  So an error never hangs the top.

Timing (docs/rtl.md, "Overlay top"): the first instruction can be dispatched
:data:`START_CYCLES` cycles after ``start`` (plus the memory's read latency); from there
the controller follows ``dse.compiler.asm.schedule`` with each instruction's cycles from
``dse.compiler.program.instruction_cycles``.

Limitations of this milestone: the im2col, kn2row and Winograd datapaths (parameters with
``fft_size`` are refused: the spectral buffer has no load path yet); pooling only on 8-bit overlays whose ``rows`` and ``cols`` are a power of two apart; buffer addresses are truncated to the buffer
depths (the compiler keeps them in range); single buffers, so load, compute and store of
consecutive invocations overlap only as far as the write-after-read tokens allow.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, ResetInserter, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl.axi_arbiter import AR_FIELDS, R_FIELDS
from rtl.axil import AxiLiteRegisters
from rtl.compute_engine import ComputeEngine
from rtl.controller import Controller, ErrorCode
from rtl.conv_datapath import ConvDatapath
from rtl.emit import module_instance
from rtl.dma import LoadEngine, StoreEngine
from rtl.fetch import InstructionFetch
from rtl.isa import (
    DRAM_ADDR_BITS,
    IMAGE_WORD_BITS,
    Buffer,
    ComputeSetup,
    Engine,
    LoadSetup,
    StoreSetup,
)
from rtl.params import (COUNTER_BITS, PREFETCH_WORDS, QUANT_ENTRY_BYTES, QUEUE_DEPTH,
                        START_CYCLES,
                        DatapathLimits, OverlayParams, datapath_registers, top_refusal)
from rtl.pool_engine import DATA_BITS, PoolEngine
from rtl.pool_layout import pool_lanes, pool_supported

from .validate import reject, rejecting

__all__ = ["table_words_for", "top_datapath", "HOST_ADDR_BITS", "HOST_REGISTERS", "START_CYCLES", "STATUS_BITS", "TABLE_LANES",
           "OverlayTop", "pool_lanes", "pool_supported"]

def top_datapath(params: OverlayParams, limits: DatapathLimits, precision: int = 8, *,
                 mult_latency: int = 3, target: str = "sim",
                 pe_instances: bool = False) -> ConvDatapath:
    """The conv datapath as the overlay top has it: with the pool engine's second output
    writer and feature reader where the top has a pool engine (:func:`pool_supported`), and
    the load engine's tile-slot writer where it has a Winograd unit.  ``omniconv verilog``
    writes this datapath as overlay.v for a design the top runs, so the top's Verilog reuses
    it."""
    return ConvDatapath(params, limits, precision=precision, mult_latency=mult_latency,
                        target=target, pe_instances=pe_instances,
                        out_write_port=pool_supported(params, precision),
                        tile_slot_port=bool(params.winograd_m))


def table_words_for(needed: int) -> int:
    """Table-memory words of a top whose programs need ``needed`` (``NetworkProgram.
    table_words``): a power of two, at least 256, so programs of one overlay share a build."""
    return max(256, 1 << (max(int(needed), 2) - 1).bit_length())


#: Lanes of a table-memory word as the table's load engine writes it: 16 bytes.
TABLE_LANES = IMAGE_WORD_BITS // 8

#: The status register's bits, least significant first (docs/rtl.md, "Overlay top").
STATUS_BITS = ("busy", "done", "error", "engine_error", "fetch_error")
#: The host's AXI4-Lite registers, ``(name, kind, bits)`` in address order (``rtl.axil``:
#: 32-bit words, register i at byte 4·i, a 40-bit one taking two words): ``start`` (pulse:
#: run the program at ``program``), ``program`` (rw), ``status`` (ro, :data:`STATUS_BITS`),
#: ``error_code``, ``error_engine``, ``error_index``, ``cycles`` (ro, as the ports of the
#: same names), and each engine's busy cycles since the last start (ro).  Byte offsets:
#: 0x00 start, 0x04 program, 0x0C status, 0x10 error_code, 0x14 error_engine,
#: 0x18 error_index, 0x1C cycles, 0x20 load_busy, 0x24 compute_busy, 0x28 pool_busy,
#: 0x2C store_busy.
HOST_REGISTERS = (
    ("start", "pulse", 1),
    ("program", "rw", DRAM_ADDR_BITS),
    ("status", "ro", len(STATUS_BITS)),
    ("error_code", "ro", 3),
    ("error_engine", "ro", 2),
    ("error_index", "ro", COUNTER_BITS),
    ("cycles", "ro", COUNTER_BITS),
    *((f"{e.value}_busy", "ro", COUNTER_BITS) for e in Engine),
)
#: Address bits of the AXI4-Lite slave.
HOST_ADDR_BITS = 8

class OverlayTop(wiring.Component):
    """Fetch, controller, DMA, compute and pool engines and the conv datapath behind one
    AXI4 master and the host's AXI4-Lite slave (module docstring).

    Parameters
    ----------
    params:
        The overlay: array, widths, ``bus_bits`` (64, 128, 256 or 512), ``winograd_m``
        (0, 2 or 4).  ``fft_size`` must be 0 in this milestone.
    limits:
        The datapath's buffer sizes (the compiler plans layers into them).
    precision:
        Bits of activations, weights and outputs (8 or 16).
    table_words:
        Depth of the table memory (register images), an integer of at least 2.
    aux_words:
        Depth of the aux buffer (the second operand of ``add``), in words; default
        min(``feature_words``, ``out_words``), enough for any tile the pool engine can read
        and write.  Only with a pool engine (:func:`pool_supported`).
    token_depth, queue_depth:
        The controller's token-queue and instruction-queue depths.
    prefetch_words:
        The fetch unit's credit.
    mult_latency:
        Register stages of the PE multipliers.
    target:
        Multiplier target of the array (``"sim"``, ``"xcup"``, ``"ecp5"``;
        ``rtl.conv_datapath.ConvDatapath``).
    datapath_module:
        If given, the datapath is a Verilog module of that name, instantiated by name
        (:func:`rtl.emit.module_instance`, its PEs by row as well) and listed in
        :meth:`instance_modules`, so that :func:`rtl.emit.verilog_text` converts it once,
        or not at all where the caller has its Verilog (``omniconv verilog``: overlay.v).
        For Verilog only; the Amaranth simulator needs the default, a submodule.

    Members
    -------
    start : In(1)
        Run the program at ``program``; taken only while ``busy`` is low (as the host's
        ``start`` register, which runs the program at the ``program`` register).
    program : In(DRAM_ADDR_BITS)
        DRAM byte address of the program (a multiple of 16), sampled with ``start``.
    busy : Out(1)
        A program is running, or a unit is still finishing after ``done`` or ``error``.
    done : Out(1)
        The last program reached ``finish`` with every engine idle (until ``start``).
    error : Out(1)
        The last program stopped on an error (until ``start``).
    error_code : Out(ErrorCode), error_index : Out(COUNTER_BITS)
        The controller's error and the index of the offending instruction.
    engine_error : Out(1), error_engine : Out(2)
        An engine refused an instruction (an unsupported one, a refused DMA command, an
        error response), and which engine (:attr:`rtl.isa.Engine.code`).
    fetch_error : Out(1)
        The fetch unit failed (unaligned ``program`` or an error response).
    cycles : Out(COUNTER_BITS)
        Cycles from the cycle after ``start`` through the cycle the controller finished
        (its ``done`` or ``error``) or the top stopped on an engine or fetch error.
    trace_take : Out(4), trace_done : Out(4)
        Per engine (bit :attr:`rtl.isa.Engine.code`), high in the cycle the controller
        hands it an instruction and in the cycle the engine reports it done: a testbench
        that logs them with ``cycles`` times every instruction (``sim/overlay_sim.py``).
        Nothing else reads them (synthesis removes them with the ports left open).
    m_axi_ar*, m_axi_r*, m_axi_aw*, m_axi_w*, m_axi_b* :
        The AXI4 master (address width ``DRAM_ADDR_BITS``, data width ``bus_bits``).
    s_axil_* :
        The host's AXI4-Lite slave (:data:`HOST_REGISTERS`; 32-bit data, 8 address bits).

    Raises
    ------
    TypeError, ValueError
        For a parameter of the wrong kind or value ("*name* must be …, not …").
    """

    def __init__(self, params: OverlayParams, limits: DatapathLimits, precision: int = 8, *,
                 table_words: int = 64, aux_words: int | None = None, token_depth: int = 2,
                 queue_depth: int = QUEUE_DEPTH, prefetch_words: int = PREFETCH_WORDS,
                 mult_latency: int = 3,
                 target: str = "sim", datapath_module: str | None = None):
        with rejecting(self):
            if datapath_module is not None and not (isinstance(datapath_module, str)
                                                    and datapath_module.isidentifier()):
                raise ValueError(f"datapath_module must be a Verilog identifier or None, not "
                                 f"{datapath_module!r}")
            if not isinstance(params, OverlayParams):
                raise TypeError(f"params must be an OverlayParams, not {params!r}")
            if not isinstance(limits, DatapathLimits):
                raise TypeError(f"limits must be a DatapathLimits, not {limits!r}")
            if top_refusal(params) is not None:
                raise ValueError(f"params must have no FFT unit: {top_refusal(params)}")
            if isinstance(table_words, bool) or not isinstance(table_words, int):
                raise TypeError(f"table_words must be an integer, not {table_words!r}")
            if table_words < 2:
                raise ValueError(f"table_words must be at least 2, not {table_words}")
            if aux_words is None:
                aux_words = max(2, min(limits.feature_words, limits.out_words))
            if isinstance(aux_words, bool) or not isinstance(aux_words, int):
                raise TypeError(f"aux_words must be an integer, not {aux_words!r}")
            if aux_words < 2:
                raise ValueError(f"aux_words must be at least 2, not {aux_words}")
        self._params, self._limits, self._precision = params, limits, precision
        self._table_words, self._aux_words = table_words, aux_words
        self._has_pool = pool_supported(params, precision)
        self._datapath_module = datapath_module
        try:
            self.datapath = top_datapath(params, limits, precision, mult_latency=mult_latency,
                                         target=target,
                                         pe_instances=datapath_module is not None)
        except (TypeError, ValueError) as exc:
            reject(self, exc)
        dp = self.datapath
        bus = params.bus_bits
        try:
            self.fetch = InstructionFetch(bus, prefetch_words)
            self.controller = Controller(token_depth=token_depth, queue_depth=queue_depth,
                                         counter_bits=COUNTER_BITS)
        except (TypeError, ValueError) as exc:
            dp._MustUse__silence = True
            reject(self, exc)
        wm = params.winograd_m
        #: Per loaded buffer its word format: (lanes, lane bits, signed elements, tile mode).
        self.load_formats = {
            Buffer.FEATURE: (params.rows, params.a_width, True, bool(wm)),
            Buffer.WEIGHT: (dp.edge, params.b_width, True, False),
            Buffer.TABLE: (TABLE_LANES, 8, False, False),
        }
        if dp.quant_words:
            # one channel's entry a word (rtl/requant_channels.py)
            self.load_formats[Buffer.QUANT] = (QUANT_ENTRY_BYTES, 8, False, False)
        #: The pool engine, or None (:func:`pool_supported`).
        self.pool = None
        if self._has_pool:
            self.load_formats[Buffer.AUX] = (params.rows, DATA_BITS, True, False)
            self.pool = PoolEngine(pool_lanes(params), limits.feature_words,
                                   in2_depth=aux_words, out_depth=limits.out_words,
                                   in_lanes=params.rows, out_lanes=params.cols,
                                   qdq=params.requant == "f32")
        #: The one load engine: the controller runs loads one at a time, so every buffer's
        #: loads share it, each command in its buffer's format (``per_command``).
        self.loader = LoadEngine(bus, max([f[0] for f in self.load_formats.values()]
                                          + ([2 * params.rows] if wm else [])),
                                 max(f[1] for f in self.load_formats.values()),
                                 sign_extend=True, tile_side=wm + 2 if wm else 0,
                                 per_command=True)
        self.storer = StoreEngine(bus, dp.lanes, precision, sign_extend=True, tile_side=wm,
                                  tile_lanes=params.winograd_lanes if wm else 0,
                                  box_lanes=params.cols)
        self.compute = ComputeEngine(datapath_registers(params, limits))
        #: The host's AXI4-Lite registers (:data:`HOST_REGISTERS`).
        self.host = AxiLiteRegisters(HOST_REGISTERS, addr_bits=HOST_ADDR_BITS)
        super().__init__({
            "start": In(1),
            "program": In(DRAM_ADDR_BITS),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(1),
            "error_code": Out(ErrorCode),
            "error_index": Out(COUNTER_BITS),
            "engine_error": Out(1),
            "error_engine": Out(range(len(Engine))),
            "fetch_error": Out(1),
            "cycles": Out(COUNTER_BITS),
            "trace_take": Out(len(Engine)),
            "trace_done": Out(len(Engine)),
            **{f"m_axi_{n}": Out(w) for n, w in AR_FIELDS.items()},
            "m_axi_arvalid": Out(1), "m_axi_arready": In(1),
            "m_axi_rdata": In(bus), "m_axi_rresp": In(2), "m_axi_rlast": In(1),
            "m_axi_rvalid": In(1), "m_axi_rready": Out(1),
            **{f"m_axi_instr_{n}": Out(w) for n, w in AR_FIELDS.items()},
            "m_axi_instr_arvalid": Out(1), "m_axi_instr_arready": In(1),
            "m_axi_instr_rdata": In(bus), "m_axi_instr_rresp": In(2),
            "m_axi_instr_rlast": In(1), "m_axi_instr_rvalid": In(1),
            "m_axi_instr_rready": Out(1),
            "m_axi_awaddr": Out(DRAM_ADDR_BITS), "m_axi_awlen": Out(8),
            "m_axi_awsize": Out(3), "m_axi_awburst": Out(2),
            "m_axi_awvalid": Out(1), "m_axi_awready": In(1),
            "m_axi_wdata": Out(bus), "m_axi_wstrb": Out(bus // 8), "m_axi_wlast": Out(1),
            "m_axi_wvalid": Out(1), "m_axi_wready": In(1),
            "m_axi_bresp": In(2), "m_axi_bvalid": In(1), "m_axi_bready": Out(1),
            **{name: (In(port.shape) if port.flow is In else Out(port.shape))
               for name, port in self.host.signature.members.items()
               if name.startswith("s_axil_")},
        })

    @property
    def params(self) -> OverlayParams:
        """The overlay parameters."""
        return self._params

    @property
    def limits(self) -> DatapathLimits:
        """The datapath's buffer sizes."""
        return self._limits

    @property
    def precision(self) -> int:
        """Bits of activations, weights and outputs."""
        return self._precision

    @property
    def table_words(self) -> int:
        """Depth of the table memory."""
        return self._table_words

    @property
    def aux_words(self) -> int:
        """Depth of the aux buffer (present only with a pool engine)."""
        return self._aux_words

    @property
    def has_pool(self) -> bool:
        """Whether the top has a pool engine and an aux buffer (:func:`pool_supported`)."""
        return self._has_pool

    def instance_modules(self) -> dict:
        """``{Verilog module name: component}`` of the modules instantiated by name: with
        ``datapath_module``, the datapath and its PE rows (``rtl.emit.verilog_text``)."""
        if self._datapath_module is None:
            return {}
        return {self._datapath_module: self.datapath, **self.datapath.instance_modules()}

    def elaborate(self, platform):
        m = Module()
        dp, fetch = self.datapath, self.fetch
        if self._datapath_module is None:
            m.submodules.datapath = dp
        else:
            m.submodules.datapath = module_instance(dp, self._datapath_module)
        m.submodules.fetch = fetch
        m.submodules.compute = ce = self.compute
        m.submodules.store = st = self.storer
        m.submodules.host = host = self.host
        for name, port in host.signature.members.items():
            if not name.startswith("s_axil_"):
                continue
            if port.flow is In:
                m.d.comb += getattr(host, name).eq(getattr(self, name))
            else:
                m.d.comb += getattr(self, name).eq(getattr(host, name))
        m.submodules.load = ld = self.loader
        pe = self.pool
        if pe is not None:
            m.submodules.pool = pe

        # -- run state, errors ------------------------------------------------------------
        running = Signal()
        aborted = Signal()          # stopped on an engine or fetch error: hold the controller
        refuse = Signal()           # an engine refuses an instruction this cycle
        refuse_engine = Signal(range(len(Engine)))
        units_busy = Signal()
        m.d.comb += units_busy.eq(Cat(fetch.busy, ce.busy, st.busy, ld.busy,
                                      *((pe.busy,) if pe is not None else ())).any())
        idle = Signal()
        m.d.comb += idle.eq(~running & ~units_busy & ~self.controller.busy)
        go = Signal()
        m.d.comb += go.eq((self.start | host.start) & idle)
        program = Signal(DRAM_ADDR_BITS)    # the host's register when it starts the run
        m.d.comb += program.eq(Mux(host.start, host.program, self.program))
        stop_now = Signal()         # an engine or fetch error, this cycle or before
        m.d.comb += stop_now.eq(aborted | (running & (refuse | fetch.error)))

        ctl = ResetInserter(aborted & ~go)(self.controller)
        m.submodules.controller = ctl
        m.d.comb += [ctl.start.eq(go), fetch.start.eq(go), fetch.base.eq(program),
                     fetch.stop.eq(ctl.done | ctl.error | stop_now)]
        wiring.connect(m, fetch.o_stream, ctl.i_stream)

        # -- AXI: the fetch unit's read port, the load engine's read channel and the store
        # engine's write channel
        for port, unit in (("m_axi_instr_", fetch), ("m_axi_", ld)):
            for name in (*AR_FIELDS, "arvalid", "rready"):
                m.d.comb += getattr(self, port + name).eq(getattr(unit, "m_axi_" + name))
            for name in ("arready", *R_FIELDS, "rvalid"):
                m.d.comb += getattr(unit, "m_axi_" + name).eq(getattr(self, port + name))
        for name in ("awaddr", "awlen", "awsize", "awburst", "awvalid", "wdata", "wstrb",
                     "wlast", "wvalid", "bready"):
            m.d.comb += getattr(self, "m_axi_" + name).eq(getattr(st, "m_axi_" + name))
        for name in ("awready", "wready", "bresp", "bvalid"):
            m.d.comb += getattr(st, "m_axi_" + name).eq(getattr(self, "m_axi_" + name))

        # -- load adapter -------------------------------------------------------------------
        lc = ctl.load
        lp = lc.cmd.payload
        l_setup = lp.opcode == LoadSetup.OPCODE
        l_take = lc.cmd.valid & lc.cmd.ready
        loaded = tuple(self.load_formats)
        l_sel = {buf: (lp.tile.buf == buf.code) for buf in loaded}
        l_known = Cat(*l_sel.values()).any()
        setup_known = Cat(*((lp.setup.buf == b.code) for b in loaded)).any()
        ready_sel = Signal()
        l_bad = Signal()
        # ``wide`` (tile-buffer word pairs) only with tile mode into the feature buffer
        wide_bad = Signal()
        if self._params.winograd_m:
            m.d.comb += wide_bad.eq(lp.tile.wide & ~(lp.tile.tile & l_sel[Buffer.FEATURE]))
        else:
            m.d.comb += wide_bad.eq(lp.tile.wide)
        l_wide = Signal()                       # the load in progress writes word pairs
        # the buffer of the load in progress: its words go to that buffer's write port
        l_buf = {buf: Signal(name=f"{buf.value}_loading") for buf in loaded}
        for buf, (lanes, _, signed_, tile) in self.load_formats.items():
            elem = Signal(2, name=f"{buf.value}_elem")
            row_pitch = Signal.like(lp.setup.row_pitch, name=f"{buf.value}_row_pitch")
            px_pitch = Signal.like(lp.setup.px_pitch, name=f"{buf.value}_px_pitch")
            ready = Signal(name=f"{buf.value}_setup_seen")
            with m.If(l_take & l_setup & (lp.setup.buf == buf.code)):
                m.d.sync += [elem.eq(lp.setup.elem), row_pitch.eq(lp.setup.row_pitch),
                             px_pitch.eq(lp.setup.px_pitch), ready.eq(1)]
            with m.If(go):
                m.d.sync += ready.eq(0)
            pick = l_sel[buf] & ~l_setup
            fmt_lanes = Mux(lp.tile.wide, 2 * lanes, lanes) if tile else lanes
            with m.If(pick):
                m.d.comb += [
                    ld.cmd.valid.eq(lc.cmd.valid & ready & ~aborted & ~wide_bad),
                    ld.cmd.payload.elem.eq(elem),
                    ld.cmd.payload.row_pitch.eq(row_pitch),
                    ld.cmd.payload.px_pitch.eq(px_pitch),
                    ld.fmt_lanes.eq(fmt_lanes), ld.fmt_signed.eq(int(signed_)),
                    ld.fmt_tile.eq(int(tile)),
                    ready_sel.eq(ld.cmd.ready), l_bad.eq(~ready),
                ]
            with m.If(ld.cmd.valid & ld.cmd.ready):
                m.d.sync += l_buf[buf].eq(pick)
        with m.If(ld.cmd.valid & ld.cmd.ready):
            m.d.sync += l_wide.eq(lp.tile.wide)
        m.d.comb += [
            ld.cmd.payload.dram.eq(lp.tile.dram),
            ld.cmd.payload.addr.eq(lp.tile.addr),
            ld.cmd.payload.rows.eq(lp.tile.rows),
            ld.cmd.payload.cols.eq(lp.tile.cols),
            ld.cmd.payload.ch.eq(lp.tile.ch),
            ld.cmd.payload.tile.eq(lp.tile.tile),
            ld.cmd.payload.slot.eq(lp.tile.slot),
            ld.cmd.payload.wpitch.eq(lp.tile.wpitch),
        ]

        def lanes_of(buf):
            """The loader's word as ``buf``'s: its lanes, each cut to the buffer's bits."""
            lanes, bits = self.load_formats[buf][:2]
            return Cat(*(ld.buf_data[i][:bits] for i in range(lanes)))

        # the datapath's and the table's write ports
        fe_en = ld.buf_en & l_buf[Buffer.FEATURE]
        fb_write = fe_en & ~ld.buf_tile if self._params.winograd_m else fe_en
        m.d.comb += [dp.fb_addr.eq(ld.buf_addr), dp.fb_data.eq(lanes_of(Buffer.FEATURE)),
                     dp.fb_en.eq(fb_write),
                     dp.wb_addr.eq(ld.buf_addr), dp.wb_data.eq(lanes_of(Buffer.WEIGHT)),
                     dp.wb_en.eq(ld.buf_en & l_buf[Buffer.WEIGHT])]
        if dp.quant_words:
            m.d.comb += [dp.qw_addr.eq(ld.buf_addr), dp.qw_data.eq(lanes_of(Buffer.QUANT)),
                         dp.qw_en.eq(ld.buf_en & l_buf[Buffer.QUANT])]
        if self._params.winograd_m:
            # tile mode: each word of a window piece into its slot of a tile-buffer word (the
            # window's slots outside the box zeroed with the first pixel's words); the lanes'
            # low ``precision`` bits are the (sign-extended) elements
            # (with ``wide``, each word's 2·rows lanes fill a pair of tile-buffer words)
            m.d.comb += [dp.ts_addr.eq(ld.buf_addr), dp.ts_slot.eq(ld.buf_slot),
                         dp.ts_zero.eq(ld.buf_zero), dp.ts_pair.eq(l_wide),
                         dp.ts_en.eq(fe_en & ld.buf_tile)]
            for lane in range(2 * self._params.rows):
                m.d.comb += dp.ts_data[lane].eq(ld.buf_data[lane][:self._precision])
        m.submodules.table = table = Memory(shape=unsigned(IMAGE_WORD_BITS),
                                            depth=self._table_words, init=[])
        twp, trp = table.write_port(), table.read_port()
        m.d.comb += [twp.addr.eq(ld.buf_addr), twp.data.eq(lanes_of(Buffer.TABLE)),
                     twp.en.eq(ld.buf_en & l_buf[Buffer.TABLE]),
                     trp.addr.eq(ce.table_addr), trp.en.eq(ce.table_en),
                     ce.table_data.eq(trp.data)]
        if pe is not None:
            # The pool engine reads the feature buffer (inside the datapath's window
            # generator) through the generator's own read port (ConvDatapath fr_*: the tokens
            # keep a pooling and a convolution apart), and its second operand from the aux
            # buffer, int8 words of ``rows`` lanes.
            word = data.ArrayLayout(signed(DATA_BITS), self._params.rows)
            m.submodules.aux = aux = Memory(shape=word, depth=self._aux_words, init=[])
            xwp, xrp = aux.write_port(), aux.read_port()
            m.d.comb += [xwp.addr.eq(ld.buf_addr), xwp.en.eq(ld.buf_en & l_buf[Buffer.AUX]),
                         xwp.data.eq(lanes_of(Buffer.AUX)),
                         dp.fr_addr.eq(pe.in_addr), dp.fr_en.eq(pe.in_en),
                         xrp.addr.eq(pe.in2_addr), xrp.en.eq(pe.in2_en),
                         pe.in2_data.eq(xrp.data),
                         dp.ow_addr.eq(pe.out_addr), dp.ow_data.eq(pe.out_data),
                         dp.ow_en.eq(pe.out_en)]
            for lane in range(self._params.rows):
                # the loads sign-extended int8 elements: the low byte is the element
                m.d.comb += pe.in_data[lane].eq(dp.fr_data[lane][:DATA_BITS])
        l_refuse = Signal()
        m.d.comb += [
            l_refuse.eq(l_take & Mux(l_setup, ~setup_known, ~l_known | l_bad | wide_bad)),
            lc.cmd.ready.eq(l_setup | ~l_known | l_bad | wide_bad | ready_sel),
            lc.done.eq(ld.done | (l_take & (l_setup | l_refuse))),
        ]

        # -- compute adapter ----------------------------------------------------------------
        cc = ctl.compute
        cpl = cc.cmd.payload
        c_setup = cpl.opcode == ComputeSetup.OPCODE
        c_take = cc.cmd.valid & cc.cmd.ready
        images = Signal.like(cpl.setup.images)
        with m.If(c_take & c_setup):
            m.d.sync += images.eq(cpl.setup.images)
        m.d.comb += [
            ce.cmd.valid.eq(cc.cmd.valid & ~c_setup & ~aborted),
            ce.cmd.payload.eq(images + cpl.tile.image),
            cc.cmd.ready.eq(c_setup | ce.cmd.ready),
            cc.done.eq(ce.done | (c_take & c_setup)),
        ]
        for name, _ in self.compute.registers:
            m.d.comb += getattr(dp, name).eq(getattr(ce.settings, name))
        m.d.comb += [dp.start.eq(ce.start), ce.dp_done.eq(dp.done)]

        # -- store adapter ------------------------------------------------------------------
        sc = ctl.store
        spl = sc.cmd.payload
        s_setup = spl.opcode == StoreSetup.OPCODE
        s_take = sc.cmd.valid & sc.cmd.ready
        s_elem = Signal(2)
        s_row = Signal.like(spl.setup.row_pitch)
        s_px = Signal.like(spl.setup.px_pitch)
        with m.If(s_take & s_setup):
            m.d.sync += [s_elem.eq(spl.setup.elem), s_row.eq(spl.setup.row_pitch),
                         s_px.eq(spl.setup.px_pitch)]
        m.d.comb += [
            st.cmd.valid.eq(sc.cmd.valid & ~s_setup & ~aborted),
            st.cmd.payload.dram.eq(spl.tile.dram),
            st.cmd.payload.addr.eq(spl.tile.addr),
            st.cmd.payload.rows.eq(spl.tile.rows),
            st.cmd.payload.cols.eq(spl.tile.cols),
            st.cmd.payload.ch.eq(spl.tile.ch),
            st.cmd.payload.elem.eq(s_elem),
            st.cmd.payload.row_pitch.eq(s_row),
            st.cmd.payload.px_pitch.eq(s_px),
            st.cmd.payload.tile.eq(spl.tile.tile),
            st.cmd.payload.slot.eq(spl.tile.slot),
            sc.cmd.ready.eq(s_setup | st.cmd.ready),
            sc.done.eq(st.done | (s_take & s_setup)),
            dp.ob_addr.eq(st.buf_addr),
            st.buf_data.eq(dp.ob_data.as_value()),
        ]

        # -- pool adapter: the controller's command is the engine's ----------------------------
        pc = ctl.pool
        p_take = pc.cmd.valid & pc.cmd.ready
        p_refuse = Signal()
        if pe is not None:
            m.d.comb += [pe.cmd.valid.eq(pc.cmd.valid & ~aborted),
                         pe.cmd.payload.eq(pc.cmd.payload),
                         pc.cmd.ready.eq(pe.cmd.ready),
                         pc.done.eq(pe.done),
                         p_refuse.eq(pe.done & pe.error)]
        else:
            # no pool engine (pool_supported): every pool instruction is refused
            m.d.comb += [pc.cmd.ready.eq(1), pc.done.eq(p_take), p_refuse.eq(p_take)]

        # -- refusals and errors -----------------------------------------------------------
        with m.If(l_refuse | (ld.done & ld.error)):
            m.d.comb += [refuse.eq(1), refuse_engine.eq(Engine.LOAD.code)]
        with m.Elif(st.done & st.error):
            m.d.comb += [refuse.eq(1), refuse_engine.eq(Engine.STORE.code)]
        with m.Elif(p_refuse):
            m.d.comb += [refuse.eq(1), refuse_engine.eq(Engine.POOL.code)]

        cycles = Signal(COUNTER_BITS)
        with m.If(running):
            with m.If(refuse | fetch.error):
                m.d.sync += [running.eq(0), aborted.eq(1), self.error.eq(1)]
                with m.If(refuse):
                    m.d.sync += [self.engine_error.eq(1), self.error_engine.eq(refuse_engine)]
                with m.Else():
                    m.d.sync += self.fetch_error.eq(1)
            with m.Elif(ctl.error):
                m.d.sync += [running.eq(0), self.error.eq(1),
                             self.error_code.eq(ctl.error_code),
                             self.error_index.eq(ctl.error_index)]
            with m.Elif(ctl.done):
                m.d.sync += [running.eq(0), self.done.eq(1)]
            m.d.sync += cycles.eq(cycles + 1)
        with m.If(go):
            m.d.sync += [running.eq(1), aborted.eq(0), cycles.eq(0), self.done.eq(0),
                         self.error.eq(0), self.error_code.eq(ErrorCode.NONE),
                         self.error_index.eq(0), self.engine_error.eq(0),
                         self.error_engine.eq(0), self.fetch_error.eq(0)]
        m.d.comb += [self.busy.eq(~idle), self.cycles.eq(cycles)]
        for engine, port in ((Engine.LOAD, lc), (Engine.COMPUTE, cc), (Engine.POOL, pc),
                             (Engine.STORE, sc)):
            m.d.comb += [self.trace_take[engine.code].eq(port.cmd.valid & port.cmd.ready),
                         self.trace_done[engine.code].eq(port.done)]

        # -- the host's status registers and per-engine busy counters ---------------------
        m.d.comb += [host.status.eq(Cat(*(getattr(self, n) for n in STATUS_BITS))),
                     host.error_code.eq(self.error_code), host.error_engine.eq(self.error_engine),
                     host.error_index.eq(self.error_index), host.cycles.eq(self.cycles)]
        engine_busy = {
            Engine.LOAD: ld.busy,
            Engine.COMPUTE: ce.busy,
            Engine.POOL: pe.busy if pe is not None else 0,
            Engine.STORE: st.busy,
        }
        for engine, active in engine_busy.items():
            count = getattr(host, f"{engine.value}_busy")
            counter = Signal(COUNTER_BITS, name=f"{engine.value}_busy_cycles")
            m.d.comb += count.eq(counter)
            with m.If(go):
                m.d.sync += counter.eq(0)
            with m.Elif(active):
                m.d.sync += counter.eq(counter + 1)
        return m

