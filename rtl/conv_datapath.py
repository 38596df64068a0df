"""Convolution-layer datapath: one layer from on-chip buffers through the array to requantised out.

Blocks (each unit is instantiated only if the :class:`rtl.params.OverlayParams` have it):

* **feature buffer + window generator** (``rtl.im2col.Im2col``, one channel per word): the
  im2col front, and for kn2row the reader of the input rows unchanged (a 1×1 window);
* **tile buffer + Winograd input transform** (``rtl.winograd.InputTransform``, when
  ``winograd_m``): the buffer holds the input in the ``wino<m>`` layout (dse/layout.py: the
  overlapping (m+2)² tiles contiguous, one tile of one channel per word); a reader streams the
  words through Bᵀ·d·B and picks the transformed element of the running GEMM;
* **weight buffer**: the compiler's weight image, all B matrices of the layer back to back
  in the engine's B layout (Winograd weights already transformed offline); the GEMM engine
  reads B there (``b_external``), no copy;
* **GEMM engine** (``rtl.gemm_engine.GemmEngine``);
* **back**: for kn2row the shift-and-add unit (``rtl.kn2row.ShiftAdd``, fed the GEMMs' C
  streams one tap after another); for Winograd the output accumulator
  (``rtl.winograd.OutputAccumulator``), which sums Aᵀ·M·A into m² accumulation buffers as
  each GEMM's C drains, then the scale units (``rtl.winograd.OutputScale``); im2col has
  none;
* **requantiser** (``rtl.requant.Requant``, per layer; with ``requant`` f32 the per-channel
  ``rtl.requant_channels.ChannelRequant`` and its quant buffer, written through ``qw_*``)
  into the **output buffer**; the accumulations entering the requantiser are kept in an
  **accumulator buffer** beside it, so a test can check them against exact convolution.

The algorithm (``alg``, codes :attr:`rtl.params.Algorithm.code`), dataflow (``mode``) and all
geometry are run-time settings, held stable while ``busy``.  The controller runs the layer's
GEMMs through the engine's double buffers: the fronts of GEMM g + 1 load while GEMM g
computes and GEMM g − 1 drains into the back unit (the FFT, whose spectral path holds one
bin, runs them one after another), then the back's tail.  The cycles it takes are exactly
predictable from the unit formulas (``dse.lowering``, the same code the explorer prices
layers with).  Cycle counters: ``cycles`` (the whole layer),
``gemm_cycles`` (the engine's busy cycles), ``front_cycles``, ``back_cycles`` and
``requant_cycles`` (each unit's cycles by the convention of ``dse/cost/transforms.py``:
from its first input (or start) to its last output, cycles in which its source had nothing
for it not counted).  Port contract and timing: docs/verify.md.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl.gemm_engine import GemmEngine
from rtl.im2col import Im2col
from rtl.kn2row import ShiftAdd
from rtl.params import (ACC_MAX_BITS, COUNTER_BITS, QUANT_ENTRY_BITS, REQUANT_MULT_BITS,
                        REQUANT_SHIFT_BITS, WINOGRAD_EXTRA_BITS, Algorithm, DatapathLimits,
                        OverlayParams, SparseParams, datapath_registers, quant_lanes)
from rtl.requant import Requant
from rtl.requant_channels import ChannelRequant
from rtl.spectral import SpectralPath, sparse_ports
from rtl.widen import Packer, Unpacker
from rtl.winograd import (
    WINOGRAD_AT,
    InputTransform,
    OutputAccumulator,
    OutputScale,
    transform_growth_bits,
)

from .memstream import memory_streamer
from .validate import reject

__all__ = ["ConvDatapath", "generate_verilog", "sparse_params"]


def sparse_params(params: OverlayParams, limits: DatapathLimits) -> SparseParams:
    """The sparse MAC unit of a datapath with ``sparse_lanes`` beside its FFT path: P =
    ``sparse_lanes`` lanes, B = ``sparse_banks`` single-ported banks, the FFT path's bins
    and data width (a_width − 1), kernels of b_width − 1 bits (the dense path's spectral
    weights), accumulators one bit wider than the dense path's Gauss sums (Re = k1 − k3 is
    exact there) up to :data:`ACC_MAX_BITS` bits, kernel banks ``sparse_nnz`` deep."""
    n = params.fft_size
    data_width, kernel_width = params.a_width - 1, params.b_width - 1
    return SparseParams(lanes=params.sparse_lanes, banks=params.sparse_banks, ports=1,
                        bins=n * (n // 2 + 1), data_width=data_width,
                        kernel_width=kernel_width,
                        acc_width=min(ACC_MAX_BITS,
                                      max(params.acc_width + 1, data_width + kernel_width + 1)),
                        max_nnz=limits.sparse_nnz)

class _Span:
    """Stall-free cycle counter of one unit (docs/verify.md, "Measured cycles").

    Counts from the cycle of ``first`` (the unit's start pulse or first input beat) through
    the cycle of ``last_out`` inclusive, less the cycles before its last input beat in which
    its source had no data (``starved``).  Accumulates over the layer; ``clear`` zeroes it.
    """

    def __init__(self, m, name, clear, first, starved, last_out):
        self.count = Signal(COUNTER_BITS, name=f"{name}_count")
        active = Signal(name=f"{name}_active")
        counting = active | first
        with m.If(clear):
            # the clearing cycle may itself be the unit's first (a start pulse)
            m.d.sync += [self.count.eq(first), active.eq(first & ~last_out)]
        with m.Else():
            with m.If(counting & ~(active & starved)):
                m.d.sync += self.count.eq(self.count + 1)
            with m.If(first):
                m.d.sync += active.eq(1)
            with m.If(counting & last_out):
                m.d.sync += active.eq(0)


class ConvDatapath(wiring.Component):
    """Runs one convolution layer (its GEMMs and transforms) from on-chip buffers.

    Parameters
    ----------
    params:
        The overlay: array shape and widths, Winograd m (0: no Winograd unit), FFT size N
        (0: no FFT path; else ``rtl.spectral.SpectralPath`` with data width a_width − 1).
    limits:
        Buffer sizes (:class:`DatapathLimits`).
    precision:
        Bits of activations, weights and requantised outputs (8 or 16).
    target:
        Multiplier target of the array (``"sim"``, ``"xcup"``, ``"ecp5"``).
    mult_latency:
        Register stages of the PE multiplier.
    pe_instances:
        Instantiate the PEs by module name, for Verilog (``rtl.systolic.SystolicArray``).
    out_write_port:
        Add a second writer of the output buffer (``ow_*``) and a second reader of the
        feature buffer (``fr_*``), for the pool engine of ``rtl.overlay_top``; off by default,
        leaving the datapath as it was.
    tile_slot_port:
        With ``winograd_m``: add a writer of single element slots of the tile buffer
        (``ts_*``), for the load engine's tile mode in ``rtl.overlay_top``; the buffer then
        keeps each slot in its own byte lanes of the word (a write port with one enable
        per slot).  Off by default, leaving the datapath as it was.

    Members (ports; docs/verify.md)
    -------
    alg, mode, gemm_m, gemm_k, gemm_n, gemms, gemm_period : settings of the layer (GEMMs
        start ``gemm_period`` cycles apart)
    fe_* : window generator geometry; sa_* : shift-and-add geometry
    out_words, rq_mult, rq_shift, rq_relu : output count and requantisation
    accumulate : add the previous invocation's accumulations (a K split's later chunks)
    bank : the invocation's half of the feature (or tile), weight and output buffers (double
        buffering): 0 reads its image, its weights and writes its outputs from word 0 as
        before; 1 from word ⌊depth / 2⌋ of each (feature_words, tile_words, weight_words,
        out_words).  The accumulator buffer (``accumulate``) is not banked.
    fb_*, wb_*, tb_* : buffer write ports; ob_addr, ob_data, ab_data : output read port
    ow_addr, ow_data, ow_en : with ``out_write_port``, a second write port of the output
        buffer: in a cycle with ``ow_en`` high the buffer's one write port takes ``ow_data``
        at ``ow_addr`` instead of the requantiser's word.  The two writers must not overlap
        (the overlay's tokens keep the pool engine and a running layer apart); a layer's
        own writes are lost in a cycle with ``ow_en``.
    fr_addr, fr_en, fr_data : with ``out_write_port``, a reader of the feature buffer on the
        window generator's read port (data one cycle after ``fr_en``), only while no layer
        runs.
    ts_addr, ts_slot, ts_zero, ts_data, ts_pair, ts_en : with ``tile_slot_port``, a write
        of element slot ``ts_slot`` (0 to (m+2)² − 1) of every lane of tile-buffer word
        ``ts_addr``: lane i takes ``ts_data[i]`` (i < ``rows``); the slots set in ``ts_zero``
        ((m+2)² bits) are written zero in every lane, and the word's other slots keep their
        values.  With ``ts_pair`` the write covers words 2·``ts_addr`` and 2·``ts_addr`` + 1
        at once, the second taking lanes ``rows`` … 2·``rows`` − 1: the buffer is two banks,
        its even and its odd words, so a load of 2·``rows`` channels a word fills the tile
        buffer twice as fast.  It takes the write ports in its cycle (a ``tb_en`` write in
        the same cycle is lost).
    ff_keep : with an FFT unit, skip an FFT layer's forward transforms: the input spectra are
        those the previous invocation left (a later filter chunk of the same input)
    ff_sparse, sk_*, ss_*, sp_*, smac_cycles, smac_stall_cycles, smac_conflict : with a sparse
        unit beside the FFT unit (``sparse_lanes``; :func:`sparse_params`): the setting that
        runs an FFT layer's phase 2 on it (``sparse_fft``), the kernel-bank, schedule and
        placement writes, and its counters (``rtl.spectral.SpectralPath``)
    start, busy, done, cycles, gemm_cycles, front_cycles, back_cycles, requant_cycles
    """

    def __init__(self, params: OverlayParams, limits: DatapathLimits | None = None, *,
                 precision: int = 8, target: str = "sim", mult_latency: int = 3,
                 pe_instances: bool = False, out_write_port: bool = False,
                 tile_slot_port: bool = False):
        if not isinstance(params, OverlayParams):
            reject(self, TypeError(f"params must be an OverlayParams, not {params!r}"))
        limits = limits if limits is not None else DatapathLimits()
        if not isinstance(limits, DatapathLimits):
            reject(self, TypeError(f"limits must be a DatapathLimits, not {limits!r}"))
        if precision not in (8, 16):
            reject(self, ValueError(f"precision must be 8 or 16, not {precision!r}"))
        if params.a_width < precision or params.b_width < precision:
            reject(self, ValueError(f"a_width and b_width must be at least the precision "
                                    f"{precision}, not {params.a_width} and {params.b_width}"))
        wm = params.winograd_m
        if wm:
            need_a, need_b = (precision + e for e in WINOGRAD_EXTRA_BITS[wm])
            if params.a_width < need_a or params.b_width < need_b:
                reject(self, ValueError(f"a_width and b_width must be at least {need_a} and "
                                        f"{need_b} for Winograd F({wm}x{wm},3x3) on "
                                        f"int{precision}, not {params.a_width} and "
                                        f"{params.b_width}"))
        if params.fft_size:
            if params.a_width < precision + 2:
                reject(self, ValueError(f"a_width must be at least {precision + 2} for the FFT "
                                        f"path on int{precision}, not {params.a_width}"))
            if params.acc_width < params.a_width + 2:
                reject(self, ValueError(f"acc_width must be at least {params.a_width + 2} for "
                                        f"the FFT path, not {params.acc_width}"))
        if not isinstance(out_write_port, bool):
            reject(self, TypeError(f"out_write_port must be a bool, not {out_write_port!r}"))
        if not isinstance(tile_slot_port, bool):
            reject(self, TypeError(f"tile_slot_port must be a bool, not {tile_slot_port!r}"))
        if tile_slot_port and not wm:
            reject(self, ValueError("tile_slot_port needs a Winograd unit (winograd_m = 0)"))
        self._tile_slot_port = tile_slot_port
        self._params, self._limits = params, limits
        self._precision, self._target, self._lat = precision, target, mult_latency
        self._out_write_port = out_write_port
        capacity = limits.engine_capacity(params.rows, params.cols)
        self._engine = GemmEngine(params.array, max_m=limits.max_m, max_k=limits.max_k,
                                  max_n=limits.max_n, target=target, mult_latency=mult_latency,
                                  a_wide=True, b_wide=True, c_wide=True,
                                  pe_instances=pe_instances, a_words=capacity[0],
                                  b_words=limits.weight_words, c_words=capacity[2],
                                  b_external=True)
        #: Lanes of a weight buffer word (the engine's wide B beat).
        self.edge = max(params.rows, params.cols)
        #: Lanes of an output word: a C beat of ``cols`` filters, or a Winograd m×m tile.
        self.lanes = max(params.cols, wm * wm) if wm else params.cols
        #: Depth of the Winograd accumulation buffers: the C beats of one GEMM.
        self.mbuf_words = (limits.engine_c_words
                           or limits.max_m * -(-limits.max_n // params.cols))
        # back-end width: accumulators, plus the output transform's growth
        self.back_width = params.acc_width + (transform_growth_bits(WINOGRAD_AT[wm]) if wm
                                              else 0)
        # the settings of an invocation, one port each (rtl.params.datapath_registers: the
        # compiler's registers and the register images use the same list)
        registers = datapath_registers(params, limits)
        #: Width of the geometry settings (window generator, shift-and-add, FFT path).
        self.dim_bits = dict(registers)["fe_in_h"]
        ports = {name: In(unsigned(bits)) for name, bits in registers}
        ports.update({
            "fb_addr": In(range(limits.feature_words)),
            "fb_data": In(data.ArrayLayout(signed(params.a_width), params.rows)),
            "fb_en": In(1),
            "wb_addr": In(range(limits.weight_words)),
            "wb_data": In(data.ArrayLayout(signed(params.b_width), self.edge)),
            "wb_en": In(1),
            "ob_addr": In(range(limits.out_words)),
            "ob_data": Out(data.ArrayLayout(signed(precision), self.lanes)),
            "ab_data": Out(data.ArrayLayout(signed(self.back_width), self.lanes)),
            "start": In(1), "busy": Out(1), "done": Out(1),
            **{n: Out(COUNTER_BITS) for n in ("cycles", "gemm_cycles", "front_cycles",
                                              "back_cycles", "requant_cycles")},
        })
        if out_write_port:
            ports.update({
                "ow_addr": In(range(limits.out_words)),
                "ow_data": In(data.ArrayLayout(signed(precision), self.lanes)),
                "ow_en": In(1),
                "fr_addr": In(range(limits.feature_words)), "fr_en": In(1),
                "fr_data": Out(data.ArrayLayout(signed(params.a_width), params.rows)),
            })
        if wm:
            t = wm + 2
            self.tile_width = precision
            ports.update({
                "tb_addr": In(range(limits.tile_words)),
                "tb_data": In(data.ArrayLayout(data.ArrayLayout(signed(precision), t * t),
                                               params.rows)),
                "tb_en": In(1),
            })
            if tile_slot_port:
                ports.update({
                    "ts_addr": In(range(limits.tile_words)),
                    "ts_slot": In(range(t * t)),
                    "ts_zero": In(t * t),
                    "ts_data": In(data.ArrayLayout(signed(precision), 2 * params.rows)),
                    "ts_pair": In(1),
                    "ts_en": In(1),
                })
        if params.fft_size:
            ports.update({
                "xb_addr": In(range(limits.spectral_words)), "xb_data": In(signed(precision)),
                "xb_en": In(1),
            })
        #: The sparse MAC unit's parameters (``sparse_fft`` beside the FFT path), or None.
        self.sparse = sparse_params(params, limits) if params.fft_size and \
            params.sparse_lanes else None
        if self.sparse is not None:
            ports.update(sparse_ports(self.sparse, limits.sparse_steps))
        #: Quant-buffer words of one half with the per-channel requantiser (else 0).
        self.quant_words = -(-limits.max_n // params.cols) if params.requant == "f32" else 0
        if self.quant_words:
            if precision != 8:
                reject(self, ValueError(f"requant f32 gives 8-bit outputs: precision must be "
                                        f"8, not {precision}"))
            entries = 2 * self.quant_words * quant_lanes(params.cols)
            ports.update({
                "qw_addr": In(range(entries)),
                "qw_data": In(unsigned(QUANT_ENTRY_BITS)),
                "qw_en": In(1),
            })
        super().__init__(ports)

    @property
    def params(self) -> OverlayParams:
        """The overlay parameters this datapath was built for."""
        return self._params

    @property
    def limits(self) -> DatapathLimits:
        """Buffer sizes."""
        return self._limits

    @property
    def precision(self) -> int:
        """Bits of activations, weights and outputs."""
        return self._precision

    @property
    def engine(self) -> GemmEngine:
        """The GEMM engine inside."""
        return self._engine

    def instance_modules(self) -> dict:
        """The modules the array instantiates by name (``rtl.emit.verilog_text``)."""
        return self._engine.instance_modules()

    # ------------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        p, lim = self._params, self._limits
        wm = p.winograd_m
        lanes = self.lanes
        m.submodules.engine = eng = self._engine
        is_im2col = self.alg == Algorithm.IM2COL.code
        is_kn2row = self.alg == Algorithm.KN2ROW.code
        is_wino = (self.alg == Algorithm.WINOGRAD.code) if wm else False
        fn = p.fft_size
        is_fft = (self.alg == Algorithm.FFT.code) if fn else False
        # sparse_fft: the FFT path with phase 2 on the sparse MAC unit
        is_sparse = (is_fft & self.ff_sparse) if self.sparse is not None else Const(0, 1)

        # ---- controller ----------------------------------------------------------------
        fft_fwd_last = Signal()     # driven by the spectral path
        fft_inv_last = Signal()
        fft_smac_last = Signal()
        busy = Signal()
        done = Signal()
        cycles = Signal(COUNTER_BITS)
        gf = Signal(range(lim.max_gemms + 1))         # GEMM whose operands the fronts load
        gc = Signal(range(lim.max_gemms + 1))         # GEMM whose C the back takes
        wbase = Signal(range(lim.weight_words + 1))   # B matrix of GEMM gf in the weight buffer
        load_go = Signal()                            # pulse: start the fronts of GEMM gf
        next_go = Signal()                            # load_go in the next cycle (no overlap)
        c_count = Signal(range(lim.max_m * lim.max_n + 1))   # C words of GEMM gc consumed
        out_count = Signal(range(lim.out_words + 1))          # output words written
        acc_count = Signal(range(lim.out_words + 1))          # accumulator words written
        post_go = Signal()                            # pulse: Winograd output drain
        # per GEMM: C words its back takes (engine beats; FFT: elements), B words
        mn = self.c_words
        kn = self.b_words
        m.d.comb += [self.busy.eq(busy), self.done.eq(done), self.cycles.eq(cycles)]
        m.d.comb += [eng.m.eq(self.gemm_m), eng.k.eq(self.gemm_k), eng.n.eq(self.gemm_n),
                     eng.mode.eq(self.mode)]
        # a C word taken by the back (FFT: an element out of the C unpacker, below)
        c_fire = Signal()
        eng_c_fire = eng.c_stream.valid & eng.c_stream.ready
        with m.If(busy):
            m.d.sync += cycles.eq(cycles + 1)
        # States as an if-chain on a plain register (Tail last, the catch-all): Amaranth's
        # Switch prunes trailing cases per signal, which Verilator flags as CASEINCOMPLETE.
        # FFT layers run the forward transforms first (fwd), then the GEMMs, then the
        # inverse transforms (inv) before the drain (post, tail).
        #
        # While running, the engine is asked to start GEMM gf as long as one is left; it
        # takes the start once both operands are loaded, its array is free and a result
        # half is free.  The fronts of GEMM gf + 1 start in the cycle the engine takes GEMM
        # gf, so its operands load while GEMM gf computes and GEMM gf − 1 drains (the
        # engine's double buffers).  The FFT's spectral path has one set of bin registers
        # for its A and C sides, so there the next GEMM's fronts wait for the last C beat.
        idle, run, post, tail, fwd, inv, smac = range(7)
        state = Signal(range(7) if self.sparse is not None else range(6) if fn else range(4))
        overlap = ~is_fft if fn else Const(1, 1)
        # The GEMMs of an invocation start ``gemm_period`` cycles apart (the compiler's
        # value, dse.lowering.datapath.gemm_period: by then the engine is ready), so their
        # timing is the explorer's formula; 0 starts each as soon as the engine takes it.
        since = Signal(COUNTER_BITS)              # cycles since the engine's last start
        paced = (gf == 0) | (since >= self.gemm_period)
        issue = (state == run) & (gf < self.gemms) & paced
        eng_fire = issue & eng.start_ready
        c_last = c_fire & (c_count == mn - 1)
        # ff_keep: the input spectra in the spectral buffer are the previous invocation's
        # (a later filter chunk): no forward transforms, phase 2 starts at once
        keep = (is_fft & self.ff_keep) if fn else False
        fwd_go = ((state == idle) & self.start & is_fft & ~keep) if fn else False
        m.d.comb += [load_go.eq(((state == idle) & self.start & ~is_fft) | next_go
                                | (eng_fire & overlap & (gf + 1 < self.gemms))),
                     eng.start.eq(issue),
                     post_go.eq(state == post)]
        m.d.sync += next_go.eq(0)
        # im2col runs its GEMMs on bands of ``fe_out_h`` output rows with one B; the others
        # take the next B matrix for each GEMM
        with m.If(eng_fire):
            m.d.sync += since.eq(1)
        with m.Elif(since != (1 << COUNTER_BITS) - 1):
            m.d.sync += since.eq(since + 1)
        with m.If(eng_fire):
            m.d.sync += gf.eq(gf + 1)
            with m.If(~is_im2col):
                m.d.sync += wbase.eq(wbase + kn)
        with m.If(state == idle):
            with m.If(self.start):
                m.d.sync += [busy.eq(1), done.eq(0), cycles.eq(0), gf.eq(0), gc.eq(0),
                             wbase.eq(Mux(self.bank, lim.weight_words // 2, 0)),
                             c_count.eq(0), out_count.eq(0),
                             acc_count.eq(0),
                             state.eq(Mux(is_fft, fwd, run) if fn else run)]
                if fn:      # kept spectra: to phase 2 as the forward transforms' end would
                    with m.If(keep):
                        m.d.sync += [state.eq(Mux(is_sparse, smac, run) if self.sparse
                                              is not None else run),
                                     next_go.eq(~is_sparse)]
        with m.Elif(state == run):
            # the GEMM is over when its last C beat has been taken
            with m.If(c_fire):
                m.d.sync += c_count.eq(c_count + 1)
                with m.If(c_count == mn - 1):
                    m.d.sync += [c_count.eq(0), gc.eq(gc + 1)]
                    with m.If(gc == self.gemms - 1):
                        after = Mux(is_wino, post, tail) if wm else tail
                        m.d.sync += state.eq(Mux(is_fft, inv, after) if fn else after)
                    with m.Elif(~overlap):
                        m.d.sync += next_go.eq(1)
        with m.Elif(state == post):
            m.d.sync += state.eq(tail)
        if fn:
            # states fwd and inv end on the spectral path's last-beat pulses (below)
            with m.Elif(state == fwd):
                with m.If(fft_fwd_last):
                    m.d.sync += [state.eq(Mux(is_sparse, smac, run)), next_go.eq(~is_sparse)]
            with m.Elif(state == inv):
                with m.If(fft_inv_last):
                    m.d.sync += state.eq(post)
            if self.sparse is not None:
                with m.Elif(state == smac):
                    with m.If(fft_smac_last):
                        m.d.sync += state.eq(inv)
        with m.Else():              # Tail: wait for the last output word
            with m.If(out_count == self.out_words):
                m.d.sync += [busy.eq(0), done.eq(1), state.eq(idle)]

        # ---- weight buffer: the engine reads B where it lies --------------------------
        # GEMM gf's B starts at word wbase (im2col's bands all read the first); the engine
        # takes the base with its start.
        m.submodules.wbuf = wbuf = Memory(shape=data.ArrayLayout(signed(p.b_width), self.edge),
                                          depth=lim.weight_words, init=[])
        wwp = wbuf.write_port()
        wrp = wbuf.read_port()
        m.d.comb += [wwp.addr.eq(self.wb_addr), wwp.data.eq(self.wb_data),
                     wwp.en.eq(self.wb_en),
                     wrp.addr.eq(eng.b_addr), eng.b_data.eq(wrp.data), eng.b_base.eq(wbase)]

        # ---- fronts ----------------------------------------------------------------------
        m.submodules.im2col = win = Im2col(lanes=p.rows, width=p.a_width,
                                           depth=lim.feature_words, dim_bits=self.dim_bits,
                                           shared_read=self._out_write_port)
        if self._out_write_port:
            m.d.comb += [win.x_addr.eq(self.fr_addr), win.x_en.eq(self.fr_en),
                         self.fr_data.eq(win.x_data)]
        m.d.comb += [win.w_addr.eq(self.fb_addr), win.w_data.eq(self.fb_data),
                     win.w_en.eq(self.fb_en)]
        # double buffering: ``bank`` 1 reads the image from the buffer's upper half
        m.d.comb += win.base.eq(Mux(self.bank, lim.feature_words // 2, 0))
        for n in ("in_h", "in_w", "c_words", "kernel_h", "kernel_w", "stride", "pad", "dil",
                  "out_h", "out_w"):
            m.d.comb += getattr(win, n).eq(getattr(self, f"fe_{n}"))
        spatial_front = (self.alg <= Algorithm.KN2ROW.code) if fn else (~is_wino if wm else 1)
        # im2col's GEMMs are bands of output rows, one after another: the window generator
        # carries on from each to the next; kn2row's read the whole input each
        m.d.comb += [win.start.eq(load_go & spatial_front),
                     win.first.eq((self.start & ~busy) | ~is_im2col)]
        a_fire = eng.a_stream.valid & eng.a_stream.ready
        a_count = Signal(range(lim.max_m * lim.max_k + 1))
        mk = Signal(range(lim.max_m * lim.max_k + 1))     # A elements of a GEMM
        m.d.comb += mk.eq(self.gemm_m * self.gemm_k)
        with m.If(load_go):
            m.d.sync += a_count.eq(0)
        with m.Elif(a_fire):
            m.d.sync += a_count.eq(a_count + 1)
        a_last = a_fire & (a_count == self.a_words - 1)
        # The FFT's spectral reader delivers one element a cycle: a packer makes K-chunks of
        # ``rows`` elements of a row of A for the engine.
        if fn:
            m.submodules.a_packer = pack = Packer(signed(p.a_width), p.rows,
                                                  self._engine.dim_bits)
            m.d.comb += pack.row_len.eq(self.gemm_k)
        if wm:
            # Winograd: a tile-buffer word holds ``rows`` channels of one tile piece; ``rows``
            # input transforms turn them into Bᵀ·d·B at once, and GEMM g takes transformed
            # element g of each -- a K-chunk a cycle.
            t = wm + 2
            tile = data.ArrayLayout(signed(self._precision), t * t)
            # two banks, the even and the odd words (a tile load can write a pair at once):
            # a read of word a reads both banks at a >> 1 and keeps bank a mod 2's word
            bank_words = (lim.tile_words + 1) // 2
            trp = SimpleNamespace(addr=Signal(range(lim.tile_words + 1), name="tbuf_raddr"),
                                  en=Signal(name="tbuf_ren"),
                                  data=Signal(data.ArrayLayout(tile, p.rows), name="tbuf_rdata"))
            odd = Signal(name="tbuf_rodd")              # the word being read is an odd one
            with m.If(trp.en):
                m.d.sync += odd.eq(trp.addr[0])
            words = []
            if self._tile_slot_port:
                # slot-major words, one write enable per slot: the ts_* port writes one slot
                # of every lane of one word, or (ts_pair) of a pair of words, one in each
                # bank; tb_* a whole word
                lanes_w = data.ArrayLayout(signed(self._precision), p.rows)
                for k in range(2):
                    bank = Memory(shape=data.ArrayLayout(lanes_w, t * t), depth=bank_words,
                                  init=[])
                    m.submodules[f"tbuf{k}"] = bank
                    twp, rp = bank.write_port(granularity=1), bank.read_port()
                    m.d.comb += [rp.addr.eq(trp.addr >> 1), rp.en.eq(trp.en)]
                    words.append(rp.data)
                    mine = self.ts_pair | (self.ts_addr[0] == k)
                    with m.If(self.ts_en):
                        m.d.comb += [twp.addr.eq(Mux(self.ts_pair, self.ts_addr,
                                                     self.ts_addr >> 1)),
                                     twp.en.eq(Mux(mine, (1 << self.ts_slot) | self.ts_zero,
                                                   0))]
                        bank_lanes = Signal(lanes_w, name=f"tbuf{k}_lanes")
                        for lane in range(p.rows):
                            m.d.comb += bank_lanes[lane].eq(
                                Mux(self.ts_pair, self.ts_data[lane + p.rows],
                                    self.ts_data[lane]) if k else self.ts_data[lane])
                        for e in range(t * t):
                            with m.If(~self.ts_zero[e]):
                                m.d.comb += twp.data[e].eq(bank_lanes)
                    with m.Else():
                        m.d.comb += [twp.addr.eq(self.tb_addr >> 1),
                                     twp.en.eq(Mux(self.tb_en & (self.tb_addr[0] == k),
                                                   (1 << (t * t)) - 1, 0))]
                        for e in range(t * t):
                            for lane in range(p.rows):
                                m.d.comb += twp.data[e][lane].eq(self.tb_data[lane][e])
                for e in range(t * t):
                    for lane in range(p.rows):
                        m.d.comb += trp.data[lane][e].eq(
                            Mux(odd, words[1][e][lane], words[0][e][lane]))
            else:
                # lane-major words, written a whole word at a time
                for k in range(2):
                    bank = Memory(shape=data.ArrayLayout(tile, p.rows), depth=bank_words,
                                  init=[])
                    m.submodules[f"tbuf{k}"] = bank
                    twp, rp = bank.write_port(), bank.read_port()
                    m.d.comb += [rp.addr.eq(trp.addr >> 1), rp.en.eq(trp.en),
                                 twp.addr.eq(self.tb_addr >> 1), twp.data.eq(self.tb_data),
                                 twp.en.eq(self.tb_en & (self.tb_addr[0] == k))]
                    words.append(rp.data)
                m.d.comb += trp.data.eq(Mux(odd, words[1], words[0]))
            itfs = []
            for lane in range(p.rows):
                itf = InputTransform(wm, self._precision)
                m.submodules[f"in_transform{lane}"] = itf
                itfs.append(itf)
            t_addr, t_left, t_valid = memory_streamer(m, [trp], itfs[0].i_stream.ready,
                                                       lim.tile_words, "t")
            for lane, itf in enumerate(itfs):
                m.d.comb += [itf.i_stream.valid.eq(t_valid),
                             itf.i_stream.payload.eq(trp.data[lane]),
                             itf.o_stream.ready.eq(eng.a_stream.ready & is_wino)]
            # double buffering: ``bank`` 1 reads the tiles from the buffer's upper half
            t_base = Signal(range(lim.tile_words), name="t_base")
            m.d.comb += t_base.eq(Mux(self.bank, lim.tile_words // 2, 0))
            with m.If(load_go & is_wino):
                m.d.sync += [t_addr.eq(t_base), t_left.eq(self.a_words)]
            # GEMM g of Winograd is transformed-domain position g: pick that element.
            gsel = Signal(range(t * t))
            m.d.comb += gsel.eq(gf)
            wino_first = (itfs[0].i_stream.valid & itfs[0].i_stream.ready
                          & (t_addr == t_base + 1)
                          & is_wino)
        spatial = Signal()
        m.d.comb += spatial.eq(spatial_front)
        with m.If(spatial):
            m.d.comb += [eng.a_stream.valid.eq(win.o_stream.valid),
                         eng.a_stream.payload.eq(win.o_stream.payload),
                         win.o_stream.ready.eq(eng.a_stream.ready)]
        if wm:
            with m.Elif(is_wino):
                m.d.comb += eng.a_stream.valid.eq(itfs[0].o_stream.valid)
                for lane, itf in enumerate(itfs):
                    m.d.comb += eng.a_stream.payload[lane].eq(itf.o_stream.payload[gsel])
        if fn:
            with m.Elif(is_fft):
                m.d.comb += [eng.a_stream.valid.eq(pack.o_stream.valid),
                             eng.a_stream.payload.eq(pack.o_stream.payload),
                             pack.o_stream.ready.eq(eng.a_stream.ready)]

        # ---- back ------------------------------------------------------------------------
        m.submodules.shift_add = sa = ShiftAdd(lanes=p.cols, in_width=p.acc_width,
                                               acc_width=p.acc_width, depth=lim.out_words,
                                               dim_bits=self.dim_bits)
        for n in ("in_h", "in_w", "kernel_h", "kernel_w", "out_h", "out_w", "f_words", "pad",
                  "dil"):
            m.d.comb += getattr(sa, n).eq(getattr(self, f"sa_{n}"))
        m.d.comb += [sa.stride_log2.eq(self.sa_stride_log2),
                     sa.start.eq(self.start & ~busy & is_kn2row),
                     sa.i_stream.payload.eq(eng.c_stream.payload)]
        if self.quant_words:
            # per output channel: bias, float32 scale, zero point (rtl/requant_channels.py)
            m.submodules.requant = rq = ChannelRequant(lanes, self.quant_words,
                                                       in_width=self.back_width)
            m.d.comb += [rq.chunks.eq(self.rq_chunks), rq.bank.eq(self.bank),
                         rq.restart.eq(self.start & ~busy),
                         rq.qw_addr.eq(self.qw_addr), rq.qw_data.eq(self.qw_data),
                         rq.qw_en.eq(self.qw_en), rq.o_stream.ready.eq(1)]
        else:
            m.submodules.requant = rq = Requant(lanes=lanes, acc_width=self.back_width,
                                                out_width=self._precision,
                                                mult_width=REQUANT_MULT_BITS,
                                                shift_width=REQUANT_SHIFT_BITS)
            m.d.comb += [rq.mult.eq(self.rq_mult), rq.shift.eq(self.rq_shift),
                         rq.relu.eq(self.rq_relu), rq.o_stream.ready.eq(1)]
        # the back's accumulations; the requantiser takes them plus, with ``accumulate``,
        # the previous invocation's at the same accumulator-buffer word (below)
        back_out = Signal(data.ArrayLayout(signed(self.back_width), lanes))

        # C of the engine: to the requantiser (im2col), the shift-and-add (kn2row) or the
        # output accumulator (Winograd).
        with m.If(is_kn2row):
            m.d.comb += [sa.i_stream.valid.eq(eng.c_stream.valid),
                         eng.c_stream.ready.eq(sa.i_stream.ready),
                         rq.i_stream.valid.eq(sa.o_stream.valid),
                         sa.o_stream.ready.eq(rq.i_stream.ready),
                         c_fire.eq(eng_c_fire)]
            for lane in range(p.cols):
                m.d.comb += back_out[lane].eq(sa.o_stream.payload[lane])
        with m.Elif(is_im2col):
            m.d.comb += [rq.i_stream.valid.eq(eng.c_stream.valid),
                         eng.c_stream.ready.eq(rq.i_stream.ready),
                         c_fire.eq(eng_c_fire)]
            for lane in range(p.cols):
                m.d.comb += back_out[lane].eq(eng.c_stream.payload[lane])
        back_first = Signal()
        back_starved = Signal()
        back_last = Signal()
        sa_in_total = Signal(range(lim.max_gemms * lim.max_m * lim.max_n + 1))
        sa_in_count = Signal.like(sa_in_total)
        m.d.comb += sa_in_total.eq(self.gemms * mn)
        sa_fire = sa.i_stream.valid & sa.i_stream.ready
        with m.If(self.start & ~busy):
            m.d.sync += sa_in_count.eq(0)
        with m.Elif(sa_fire & is_kn2row):
            m.d.sync += sa_in_count.eq(sa_in_count + 1)
        rq_fire_in = rq.i_stream.valid & rq.i_stream.ready
        rq_fire_out = rq.o_stream.valid & rq.o_stream.ready
        with m.If(is_kn2row):
            # ShiftAdd's cycles count from its start pulse (dse/cost/transforms.py), less the
            # cycles it waits for partial sums while the engine loads and computes.
            m.d.comb += [back_first.eq(sa.start),
                         back_starved.eq((sa_in_count < sa_in_total) & ~sa.i_stream.valid),
                         back_last.eq(rq_fire_in & (acc_count == self.out_words - 1))]

        if wm:
            # The output side sums Aᵀ·M·A as C drains: GEMM g's C vector at word w (the
            # ``cols`` filters of one tile) adds its term into the m² accumulations of word
            # w, one memory per output element e, read in the cycle the vector is taken and
            # written the next (consecutive vectors are different words, and the engine
            # leaves C_DRAIN_GAP cycles between two GEMMs' vectors).  After the last GEMM
            # the drain reads one word of every element a cycle; one unpacker per element,
            # in lockstep, hands the ``winograd_lanes`` scale units the m×m outputs of as
            # many filters of one tile a cycle.
            e2 = wm * wm
            oacc = OutputAccumulator(wm, p.acc_width, p.cols)
            m.submodules.out_accumulator = oacc
            draining = state != run
            m.d.comb += [oacc.i_valid.eq(is_wino & eng_c_fire), oacc.g.eq(gc),
                         oacc.c.eq(eng.c_stream.payload)]
            w_idx = Signal(range(self.mbuf_words + 1))       # the word oacc works on
            with m.If(eng_c_fire):
                m.d.sync += w_idx.eq(c_count)
            acc_word = data.ArrayLayout(signed(self.back_width), p.cols)
            wacc_rps = []
            drain_ports = []
            for e in range(e2):
                mem = Memory(shape=acc_word, depth=self.mbuf_words, init=[])
                m.submodules[f"wacc{e}"] = mem
                wp = mem.write_port()
                rp = mem.read_port()
                port = SimpleNamespace(en=Signal(name=f"wacc{e}_drain_en"),
                                       addr=Signal(range(self.mbuf_words + 1),
                                                   name=f"wacc{e}_drain_addr"))
                m.d.comb += [rp.en.eq(Mux(draining, port.en, 1)),
                             rp.addr.eq(Mux(draining, port.addr, c_count)),
                             oacc.prev[e].eq(rp.data),
                             wp.addr.eq(w_idx), wp.data.eq(oacc.sums[e]),
                             wp.en.eq(oacc.o_valid)]
                wacc_rps.append(rp)
                drain_ports.append(port)
            wl = p.winograd_lanes
            scales = []
            for j in range(wl):
                sc = OutputScale(wm, self.back_width)
                m.submodules[f"out_scale{j}"] = sc
                scales.append(sc)
            group = data.ArrayLayout(signed(self.back_width), wl)
            m_unps = []
            for e in range(e2):
                unp = Unpacker(group, p.cols // wl, self._engine.dim_bits)
                m.submodules[f"m_unpacker{e}"] = unp
                m_unps.append(unp)
            q_addr, q_left, q_valid = memory_streamer(m, drain_ports, m_unps[0].i_stream.ready,
                                                       self.mbuf_words, "q")
            groups = (self.gemm_n + (wl - 1)) >> (wl.bit_length() - 1)   # wl: a power of 2
            for e, (rp, unp) in enumerate(zip(wacc_rps, m_unps)):
                m.d.comb += [unp.i_stream.payload.eq(rp.data), unp.i_stream.valid.eq(q_valid),
                             unp.row_len.eq(groups),
                             unp.o_stream.ready.eq(scales[0].i_stream.ready)]
                for j, sc in enumerate(scales):
                    m.d.comb += sc.i_stream.payload[e].eq(unp.o_stream.payload[j])
            for sc in scales:
                m.d.comb += [sc.i_stream.valid.eq(m_unps[0].o_stream.valid),
                             sc.o_stream.ready.eq(rq.i_stream.ready)]
            lead = scales[0]                  # the scale units move in lockstep
            with m.If(post_go & is_wino):
                m.d.sync += [q_addr.eq(0), q_left.eq(mn)]
            ot_in = lead.i_stream.valid & lead.i_stream.ready
            ot_started = Signal()
            with m.If(post_go):
                m.d.sync += ot_started.eq(0)
            with m.Elif(ot_in):
                m.d.sync += ot_started.eq(1)
            with m.If(is_wino):
                m.d.comb += [eng.c_stream.ready.eq(1), c_fire.eq(eng_c_fire),
                             rq.i_stream.valid.eq(lead.o_stream.valid)]
                # an output word: the m×m tiles of the group's filters, filter-major
                for j, each in enumerate(scales):
                    for e in range(e2):
                        m.d.comb += back_out[j * e2 + e].eq(each.o_stream.payload[e])
                m.d.comb += [back_first.eq(ot_in & ~ot_started),
                             back_starved.eq(0),
                             back_last.eq(rq_fire_in & (acc_count == self.out_words - 1))]

        if fn:
            # FFT: forward transforms, then three real GEMMs per bin (Gauss) of the bins
            # (u, v ≤ N/2), then the inverse transforms with overlap-add, drained through
            # the requantiser.
            m.submodules.spectral = sp = SpectralPath(
                fn, self._precision, p.a_width, p.acc_width, lim.spectral_words,
                lim.engine_c_words * p.cols or lim.max_m * lim.max_n, lim.out_words,
                self.dim_bits, sparse=self.sparse, sparse_steps=lim.sparse_steps)
            lg = fn.bit_length() - 1
            bin_u, bin_v = Signal(lg), Signal(lg)      # row and column of the running bin
            fft_part = Signal(2)
            with m.If(self.start & ~busy):
                m.d.sync += [bin_u.eq(0), bin_v.eq(0), fft_part.eq(0)]
            with m.Elif((state == run) & c_last):
                m.d.sync += fft_part.eq(fft_part + 1)
                with m.If(fft_part == 2):
                    m.d.sync += [fft_part.eq(0), bin_v.eq(bin_v + 1)]
                    with m.If(bin_v == fn // 2):
                        m.d.sync += [bin_v.eq(0), bin_u.eq(bin_u + 1)]
            fft_bin = Cat(bin_v, bin_u)                 # u·N + v
            inv_go = (state == run) & c_last & (gc == self.gemms - 1) & is_fft
            if self.sparse is not None:
                # phase 2 on the sparse unit: from the forward transforms' last beat to its
                # last output-spectrum write, then the inverse transforms
                inv_go = inv_go | sp.smac_last
                m.d.comb += [sp.sparse_on.eq(is_sparse),
                             sp.smac_go.eq((((state == fwd) & fft_fwd_last)
                                            | ((state == idle) & self.start & keep))
                                           & is_sparse),
                             fft_smac_last.eq(sp.smac_last),
                             *(getattr(sp, f"{w}_{k}").eq(getattr(self, f"{w}_{k}"))
                               for w in ("sk", "ss", "sp") for k in ("addr", "data", "en")),
                             self.smac_cycles.eq(sp.smac_cycles),
                             self.smac_stall_cycles.eq(sp.smac_stall_cycles),
                             self.smac_conflict.eq(sp.smac_conflict)]
            m.d.comb += [sp.xb_addr.eq(self.xb_addr), sp.xb_data.eq(self.xb_data),
                         sp.xb_en.eq(self.xb_en),
                         sp.tiles.eq(self.gemm_m), sp.chans.eq(self.gemm_k),
                         sp.filters.eq(self.gemm_n), sp.tiles_w.eq(self.ff_tiles_w),
                         sp.step.eq(self.ff_step), sp.kernel.eq(self.ff_kernel),
                         sp.out_h.eq(self.ff_out_h), sp.out_w.eq(self.ff_out_w),
                         sp.shift.eq(self.ff_shift),
                         sp.fwd_go.eq(fwd_go), sp.a_go.eq(load_go & is_fft),
                         sp.a_bin.eq(fft_bin), sp.a_part.eq(fft_part),
                         sp.inv_go.eq(inv_go), sp.out_go.eq(post_go & is_fft),
                         sp.out_words_n.eq(self.out_words),
                         fft_fwd_last.eq(sp.fwd_last), fft_inv_last.eq(sp.inv_last)]
            # the spectral path takes C one element a cycle: an unpacker of the C beats
            m.submodules.c_unpacker = c_unp = Unpacker(signed(p.acc_width), p.cols,
                                                       self._engine.dim_bits)
            m.d.comb += [c_unp.row_len.eq(self.gemm_n),
                         c_unp.i_stream.payload.eq(eng.c_stream.payload),
                         c_unp.i_stream.valid.eq(eng.c_stream.valid & is_fft),
                         sp.c_stream.valid.eq(c_unp.o_stream.valid),
                         sp.c_stream.payload.eq(c_unp.o_stream.payload),
                         c_unp.o_stream.ready.eq(sp.c_stream.ready)]
            with m.If(is_fft):
                m.d.comb += [pack.i_stream.valid.eq(sp.a_stream.valid),
                             pack.i_stream.payload.eq(sp.a_stream.payload),
                             sp.a_stream.ready.eq(pack.i_stream.ready),
                             eng.c_stream.ready.eq(c_unp.i_stream.ready),
                             c_fire.eq(c_unp.o_stream.valid & c_unp.o_stream.ready),
                             rq.i_stream.valid.eq(sp.o_stream.valid),
                             back_out[0].eq(sp.o_stream.payload),
                             sp.o_stream.ready.eq(rq.i_stream.ready),
                             back_first.eq(sp.inv_first), back_starved.eq(0),
                             back_last.eq(sp.inv_last)]

        # ---- output and accumulator buffers ------------------------------------------------
        m.submodules.obuf = obuf = Memory(shape=data.ArrayLayout(signed(self._precision), lanes),
                                          depth=lim.out_words, init=[])
        m.submodules.abuf = abuf = Memory(shape=data.ArrayLayout(signed(self.back_width), lanes),
                                          depth=lim.out_words, init=[])
        owp, orp = obuf.write_port(), obuf.read_port()
        awp, arp = abuf.write_port(), abuf.read_port()
        # K split across invocations (channel chunks, dse.lowering.split): an invocation
        # with ``accumulate`` adds the accumulations the previous one left at each word.
        # While busy the read port runs one word ahead of the writes (its address is the
        # next word's, so the word being taken is on ``arp.data``); idle, it is the
        # host's (``ob_addr``), and the start cycle reads word 0.
        acc_next = Signal.like(acc_count)
        m.d.comb += acc_next.eq(acc_count + (rq_fire_in & busy))
        prev = data.ArrayLayout(signed(self.back_width), lanes)(arp.data)
        for lane in range(lanes):
            m.d.comb += rq.i_stream.payload[lane].eq(
                back_out[lane] + Mux(self.accumulate, prev[lane], 0))
        # double buffering: ``bank`` 1 writes the outputs from the buffer's upper half (the
        # accumulator buffer is the datapath's alone: not banked)
        out_addr = Signal(range(lim.out_words), name="out_addr")
        m.d.comb += out_addr.eq(out_count + Mux(self.bank, lim.out_words // 2, 0))
        if self._out_write_port:
            # the second writer (docstring: ow_*) takes the port in its cycles
            m.d.comb += [owp.addr.eq(Mux(self.ow_en, self.ow_addr, out_addr)),
                         owp.data.eq(Mux(self.ow_en, self.ow_data, rq.o_stream.payload)),
                         owp.en.eq((rq_fire_out & busy) | self.ow_en)]
        else:
            m.d.comb += [owp.addr.eq(out_addr), owp.data.eq(rq.o_stream.payload),
                         owp.en.eq(rq_fire_out & busy)]
        m.d.comb += [awp.addr.eq(acc_count), awp.data.eq(rq.i_stream.payload),
                     awp.en.eq(rq_fire_in & busy),
                     orp.addr.eq(self.ob_addr),
                     arp.addr.eq(Mux(busy, acc_next, Mux(self.start, 0, self.ob_addr))),
                     self.ob_data.eq(orp.data), self.ab_data.eq(arp.data)]
        with m.If(rq_fire_out & busy):
            m.d.sync += out_count.eq(out_count + 1)
        with m.If(rq_fire_in & busy):
            m.d.sync += acc_count.eq(acc_count + 1)

        # ---- cycle counters --------------------------------------------------------------
        clear = self.start & ~busy
        gemm_count = Signal(COUNTER_BITS)
        with m.If(clear):
            m.d.sync += gemm_count.eq(0)
        with m.Elif(eng.busy):
            m.d.sync += gemm_count.eq(gemm_count + 1)
        m.d.comb += self.gemm_cycles.eq(gemm_count)
        # front: Im2col from its start pulse; the Winograd input transform from its first
        # input beat; through the last A beat the engine takes, per GEMM.
        # The FFT's front is the forward transform phase.
        front_first = (load_go & spatial_front) if not wm else \
            Mux(is_wino, wino_first, load_go)
        front_last = a_last
        if fn:
            front_first = Mux(is_fft, sp.fwd_first, front_first)
            front_last = Mux(is_fft, sp.fwd_last, a_last)
        front = _Span(m, "front", clear, front_first, 0, front_last)
        m.d.comb += self.front_cycles.eq(front.count)
        back = _Span(m, "back", clear, back_first, back_starved, back_last)
        m.d.comb += self.back_cycles.eq(back.count)
        rq_total_in = acc_count
        rq_first = rq_fire_in & (rq_total_in == 0)
        rq_starved = (acc_count < self.out_words) & ~rq.i_stream.valid
        rq_last = rq_fire_out & (out_count == self.out_words - 1)
        requant = _Span(m, "requant", clear, rq_first & busy, rq_starved, rq_last)
        m.d.comb += self.requant_cycles.eq(requant.count)
        return m


def generate_verilog(params: OverlayParams, limits: DatapathLimits | None = None, *,
                     precision: int = 8, target: str = "sim", name: str = "overlay") -> str:
    """Return the Verilog text of the datapath for ``params`` (top module ``name``)."""
    from rtl.emit import verilog_text

    return verilog_text(ConvDatapath(params, limits, precision=precision, target=target,
                                     pe_instances=True), name)
