"""Parameters and shared enums of the overlay.

This module must not import Amaranth: the explorer (``dse``) imports it to size and
describe hardware without pulling in the HDL.  Every dataclass here is frozen and validated
at construction; ``dataclasses.replace`` re-validates, so variants made in a search are
checked too.  Messages follow "*name* must be *constraint*, not *value*".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields

__all__ = ["Algorithm", "Dataflow", "ArrayParams", "OverlayParams", "DatapathLimits",
           "SparseParams", "datapath_registers", "top_refusal", "FRONT_SETTINGS",
           "SHIFT_ADD_SETTINGS",
           "FFT_SETTINGS",
           "accumulator_bits", "winograd_lanes_ok",
           "ALG_BITS", "ACC_MAX_BITS", "COUNTER_BITS", "REQUANT_MULT_BITS", "REQUANT_SHIFT_BITS",
           "WINOGRAD_EXTRA_BITS", "SHIFT_ADD_ADDRESS_STAGES",
           "DISPATCH_LATENCY", "FETCH_LATENCY", "FINISH_CYCLES", "START_CYCLES", "QUEUE_DEPTH",
           "PREFETCH_WORDS", "AXI_MAX_BEATS", "AXI_BOUNDARY",
           "REQUANT_KINDS", "QUANT_ENTRY_BYTES", "QUANT_ENTRY_BITS", "QUANT_ENTRY_FIELDS", "pack_quant_entries",
           "quant_lanes", "FLOAT32_MANTISSA_BITS", "QADD_EXPONENT_BITS", "QADD_GUARD",
           "QADD_ADDEND_MAX_SHIFT", "QADD_ADDEND_MIN_SHIFT", "QADD_WINDOW_BITS",
           "QADD_LATENCY", "QADD_SETTING_BITS", "REQUANT_F32_LATENCY"]

# -- The overlay top's controller timing (``rtl/controller.py``, ``rtl/overlay_top.py``): the
# compiler's schedule (``dse.compiler.asm.schedule``) and the explorer read the same numbers.

#: Cycles from an event to the dispatch it allows: from an engine's ``done`` to its next
#: instruction and to the instructions that pop the tokens it pushed, and from a pop's
#: command transfer to a push waiting for the slot it freed (token levels are registers).
DISPATCH_LATENCY = 1
#: Cycles from a word's transfer on ``i_stream`` to the first cycle its instruction can be
#: dispatched (the fetch register, then the write into the engine's queue), when its queue
#: has room.
FETCH_LATENCY = 2
#: Cycles ``finish`` takes in ``dse.compiler.asm.schedule``'s terms: ``done`` rises this many
#: cycles after the controller has seen every engine idle (the cycle after the last ``done``).
FINISH_CYCLES = 1
#: Cycles from ``start`` to the first cycle the engines can take a command, with a memory
#: that answers the fetch unit's first burst at once: the fetch unit's start register (1),
#: its AR register (1), the memory's registered first beat (1), the fetch unit's prefetch
#: buffer (1, the word is offered), then the controller's ``FETCH_LATENCY`` (2: its fetch
#: register and the engine's instruction queue).  A memory read latency of L cycles adds L.
START_CYCLES = 6
#: Instructions each engine's instruction queue in the overlay top's controller holds
#: (``dse.compiler.asm.schedule``'s ``queue_depth``).
QUEUE_DEPTH = 4
#: The overlay top's fetch unit's credit: most program words read beyond the words the
#: controller has taken (``rtl.fetch.InstructionFetch``'s ``prefetch_words``).
PREFETCH_WORDS = 8
#: Most beats of one AXI4 INCR burst.
AXI_MAX_BEATS = 256
#: No AXI4 burst may cross a boundary of this many bytes.
AXI_BOUNDARY = 4096
#: Most read bursts the load engine has in flight (``rtl.dma.LoadEngine``'s ``outstanding``,
#: the depth of its burst queue), and most write bursts the store engine has awaiting their
#: response.  With a DRAM read latency of L cycles a load of bursts of b beats is bound by
#: ``outstanding`` bursts per L + 3 cycles (``dse.cost.dma.load_tile_cycles``).  16, the
#: most the engines take: at the ZCU102's 39 cycles, 4 kept a channel slice of VGG16's
#: conv5_1 (a 4-beat burst a pixel) to 16 beats per 42 cycles.
DMA_OUTSTANDING = 16

#: Width of the datapath's run-time algorithm register (codes: :attr:`Algorithm.code`).
ALG_BITS = 2

#: Widest accumulator (of the array, and of each part of a sparse lane's; the simulators'
#: and the explorer's 64-bit integers hold them).
ACC_MAX_BITS = 64
#: Width of the datapath's cycle counters.
COUNTER_BITS = 32
#: AXI4 data widths (bits) the overlay top's DMA engines and instruction fetch support; a
#: config's ``hardware.bus_bits`` must be one of them (the cost model alone takes 32 to 1024).
BUS_BITS = (64, 128, 256, 512)
#: Requantiser multiplier and shift widths (``out = sat(round(acc·mult / 2^shift))``).
REQUANT_MULT_BITS = 16
REQUANT_SHIFT_BITS = 6

#: Significant bits of a float32 (the hidden one included): the mantissas of the
#: onnxruntime-exact units (``rtl/requant_f32.py``, ``rtl/qadd_f32.py``) and their settings.
FLOAT32_MANTISSA_BITS = 24
#: The QLinearAdd unit's numerics (``rtl/qadd_f32.py``, its settings ``dse.qlinear``): the
#: width of its signed exponent ports; window bits below the product (two guard bits and
#: the sticky bit 0); the highest addend position kept in the window (beyond it the addend
#: alone is the result), the position at or below which every addend bit is sticky, and the
#: signed window width.
QADD_EXPONENT_BITS = 8
QADD_GUARD = 3
QADD_ADDEND_MAX_SHIFT = 36
QADD_ADDEND_MIN_SHIFT = -FLOAT32_MANTISSA_BITS
QADD_WINDOW_BITS = QADD_ADDEND_MAX_SHIFT + FLOAT32_MANTISSA_BITS + 2
#: Registers of the QLinearAdd unit between an accepted word and its result.
QADD_LATENCY = 8
#: Pipeline registers of ``rtl.requant_f32.RequantF32`` (onnxruntime's requantisation).
REQUANT_F32_LATENCY = 5
#: Bits of a packed QLinearAdd setting (``pool.qadd``'s ``r_a``, ``r_b``, ``f``):
#: ``sign << 32 | (exponent mod 2^8) << 24 | mantissa`` (``dse.qlinear.QAddSettings.packed``).
QADD_SETTING_BITS = 1 + QADD_EXPONENT_BITS + FLOAT32_MANTISSA_BITS

#: The datapath's requantisers (``OverlayParams.requant``): ``shift``, one multiplier and
#: shift per layer (``rtl.requant.Requant``, round half up); ``f32``, per output channel an
#: int32 bias, a float32 scale and a zero point, rounded as onnxruntime's QLinearConv rounds
#: (``rtl.requant_f32.RequantF32``): what quantised (QDQ) networks need.
REQUANT_KINDS = ("shift", "f32")
#: Bytes of one output channel's entry in the quant buffer (``Buffer.QUANT``) in DRAM: one
#: word of the load engine's 16-byte table format, so a load writes one channel a word.
QUANT_ENTRY_BYTES = 16
#: The entry's fields: (name, first bit, bits, signed), packed from bit 0 of the
#: little-endian entry (the bits past :data:`QUANT_ENTRY_BITS` are zero).  The bias is the
#: layer's int32 bias with the zero points folded in (the compiler's); the scale is
#: ``mantissa · 2^exponent`` with ``2^23 ≤ mantissa < 2^24`` (``sim.models.qdq.scale_parts``);
#: ``zero_point`` is the output's, in the stored form.
QUANT_ENTRY_FIELDS = (("bias", 0, 32, True), ("mantissa", 32, 24, False),
                      ("exponent", 56, 9, True), ("zero_point", 65, 8, True))
#: Bits of an entry the quant buffer keeps.
QUANT_ENTRY_BITS = 73
#: Extra (activation, weight) operand bits over the precision p that exact Winograd
#: F(m×m, 3×3) needs in the array, per m: Bᵀ·d·B grows inputs by the squared largest row sum
#: of |Bᵀ| (4 for m = 2, 100 for m = 4: p+2 and p+7 bits); the weights are stored as
#: (G_DENOM·G)·g·(G_DENOM·G)ᵀ, up to G_DENOM²·(largest |G| row sum)²·2^(p−1) (9·2^(p−1):
#: p+4 bits for m = 2; 576·2^(p−1): p+10 bits for m = 4 -- one 15 × 18 multiply for int8).
WINOGRAD_EXTRA_BITS = {2: (2, 4), 4: (7, 10)}
#: Register stages of the kn2row shift-and-add unit's address pipeline (``rtl/kn2row.py``:
#: oy/ox and the hit test, oy·out_w, + ox, ·f_words, + fw), one operation each: the cycles
#: between its last word in and its first drain read.
SHIFT_ADD_ADDRESS_STAGES = 5


class Algorithm(str, enum.Enum):
    """Convolution algorithm families the overlay can run (the names configs and design.json
    use)."""

    IM2COL = "im2col"
    KN2ROW = "kn2row"
    WINOGRAD = "winograd"
    FFT = "fft"
    SPARSE_FFT = "sparse_fft"

    @property
    def code(self) -> int:
        """Encoding in the datapath's ``alg`` register (:data:`ALG_BITS` bits).

        Sparse FFT has no code of its own (``ValueError``): it runs as FFT with the
        datapath's ``ff_sparse`` setting (``rtl/spectral.py``).
        """
        if self is Algorithm.SPARSE_FFT:
            raise ValueError("sparse_fft has no algorithm code: it runs as fft with ff_sparse")
        return list(Algorithm).index(self)


class Dataflow(str, enum.Enum):
    """Dataflows of the systolic array, with SCALE-Sim's names and spatial assignment.

    ``OS``: rows × cols hold output pixels × filters; ``WS``: window elements × filters;
    ``IS``: window elements × output pixels.  The run-time encoding is the enum's index.
    """

    WS = "ws"
    OS = "os"
    IS = "is"

    @property
    def code(self) -> int:
        """Encoding of the dataflow in the array's 2-bit mode register."""
        return list(Dataflow).index(self)


def accumulator_bits(a_width: int, b_width: int, terms: int) -> int:
    """Bits of a signed accumulator that holds every sum of ``terms`` products of signed
    ``a_width``- and ``b_width``-bit values exactly: |a·b| <= 2^(a_width + b_width − 2),
    reached by (−2^(a_width−1))·(−2^(b_width−1)) > 0."""
    return (terms << (a_width + b_width - 2)).bit_length() + 1


def winograd_lanes_ok(cols, m, lanes):
    """Whether ``lanes`` output transforms fit an overlay with ``cols`` columns and Winograd
    F(m×m) (:class:`OverlayParams`): 1 when m is 0, else a power of two dividing ``cols``
    with lanes·m² ≤ max(cols, m²).  Works on integers and on numpy integer arrays alike."""
    power_of_two = (lanes & (lanes - 1)) == 0
    # lanes·m² ≤ max(cols, m²): one lane always fits; more must fit in cols
    fits = (lanes == 1) | (lanes * m * m <= cols)
    return ((m == 0) & (lanes == 1)) | ((m > 0) & power_of_two & (cols % lanes == 0) & fits)


def quant_lanes(cols: int) -> int:
    """Entry slots of one quant-buffer word (``Buffer.QUANT``): ``cols`` rounded up to a
    power of two, so a loaded entry's address splits into (word, lane) by bits: entry
    ``j`` of an output word's channels is at address ``word · quant_lanes + j``."""
    return 1 << (cols - 1).bit_length()


def pack_quant_entries(bias, mantissa, exponent, zero_point):
    """The quant buffer's entries of the channels given (``QUANT_ENTRY_FIELDS``), as an
    ``(n, QUANT_ENTRY_BYTES)`` uint8 array: each argument an integer array of ``n`` (or a
    scalar), checked against its field's range."""
    import numpy as np

    values = dict(bias=bias, mantissa=mantissa, exponent=exponent, zero_point=zero_point)
    n = max(np.size(v) for v in values.values())
    out = np.zeros((n, QUANT_ENTRY_BYTES), dtype=np.uint8)
    for name, first, bits, signed_ in QUANT_ENTRY_FIELDS:
        v = np.broadcast_to(np.asarray(values[name], dtype=np.int64), (n,))
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed_ else (0, (1 << bits) - 1)
        if np.any((v < lo) | (v > hi)):
            bad = v[(v < lo) | (v > hi)][0]
            raise ValueError(f"quant entry {name} must be between {lo} and {hi}, not {bad}")
        u = v & ((1 << bits) - 1)
        for k in range(n):
            word = int.from_bytes(out[k].tobytes(), "little") | int(u[k]) << first
            out[k] = np.frombuffer(word.to_bytes(QUANT_ENTRY_BYTES, "little"), np.uint8)
    return out


def _fields_dict(obj) -> dict:
    """A dataclass's fields as a flat dict."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _check_int(name: str, value, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be {bound}, not {value}")


@dataclass(frozen=True)
class ArrayParams:
    """Shape and widths of the systolic array.

    Parameters
    ----------
    rows, cols:
        PEs in each dimension.
    a_width, b_width:
        Signed operand widths in bits: activations (A) and weights (B).  Transforms widen
        them (Winograd F(2×2,3×3) on int8 needs about 10 × 12 bits).
    acc_width:
        Signed accumulator width in bits (32 for int8, 48 for int16).
    """

    rows: int = 8
    cols: int = 8
    a_width: int = 8
    b_width: int = 8
    acc_width: int = 32

    def __post_init__(self):
        _check_int("rows", self.rows, 1, 256)
        _check_int("cols", self.cols, 1, 256)
        _check_int("a_width", self.a_width, 2, 27)
        _check_int("b_width", self.b_width, 2, 27)
        _check_int("acc_width", self.acc_width, 2, ACC_MAX_BITS)
        if self.acc_width < self.a_width + self.b_width:
            raise ValueError(f"acc_width must be at least a_width + b_width = "
                             f"{self.a_width + self.b_width}, not {self.acc_width}")

    @property
    def pes(self) -> int:
        """Number of processing elements."""
        return self.rows * self.cols


@dataclass(frozen=True)
class OverlayParams:
    """Everything that sizes the overlay hardware (flat, as design.json's ``hardware``).

    Parameters
    ----------
    rows, cols, a_width, b_width, acc_width:
        The systolic array (see :class:`ArrayParams`).
    winograd_m:
        Output tile of the Winograd unit, F(m×m, 3×3); 0 when there is no Winograd unit.
    winograd_lanes:
        Output transforms of the Winograd unit, each taking one (tile, filter) a cycle
        (1 without a Winograd unit).  They share the requantiser with the C vectors, so
        ``winograd_lanes``·m² may not exceed ``max(cols, m²)``, and they split the transformed
        domain's ``cols``-lane words, so they divide ``cols``; a power of two.
    fft_size:
        Points per side of the 2-D FFT unit; 0 when there is no FFT unit.
    sparse_lanes, sparse_banks:
        Sparse spectral MAC lanes and input-spectrum banks; 0 when absent.
    act_buffer_kib, weight_buffer_kib, out_buffer_kib:
        On-chip buffer capacities in KiB (each double-buffered: the figure is one half).
    bus_bits:
        AXI4 data width to DRAM in bits.
    requant:
        The datapath's requantiser (:data:`REQUANT_KINDS`): ``shift`` (per layer) or ``f32``
        (per output channel, onnxruntime's float32 rounding, for quantised networks; the
        im2col and kn2row datapaths only, so no Winograd, FFT or sparse unit, 8-bit
        operands).
    """

    rows: int = 8
    cols: int = 8
    a_width: int = 8
    b_width: int = 8
    acc_width: int = 32
    winograd_m: int = 0
    winograd_lanes: int = 1
    fft_size: int = 0
    sparse_lanes: int = 0
    sparse_banks: int = 0
    act_buffer_kib: int = 64
    weight_buffer_kib: int = 64
    out_buffer_kib: int = 64
    bus_bits: int = 128
    requant: str = "shift"

    def __post_init__(self):
        ArrayParams(self.rows, self.cols, self.a_width, self.b_width, self.acc_width)
        if self.winograd_m not in (0, 2, 4):
            raise ValueError(f"winograd_m must be 0, 2 or 4, not {self.winograd_m!r}")
        _check_int("winograd_lanes", self.winograd_lanes, 1, 256)
        if not winograd_lanes_ok(self.cols, self.winograd_m, self.winograd_lanes):
            raise ValueError(f"winograd_lanes must be 1 without a Winograd unit, else a power "
                             f"of two dividing cols ({self.cols}) with winograd_lanes·m² at "
                             f"most max(cols, m²) = {max(self.cols, self.winograd_m ** 2)}, "
                             f"not {self.winograd_lanes}")
        if self.fft_size not in (0, 4, 8, 16, 32):
            raise ValueError(f"fft_size must be 0, 4, 8, 16 or 32, not {self.fft_size!r}")
        _check_int("sparse_lanes", self.sparse_lanes, 0, 1024)
        _check_int("sparse_banks", self.sparse_banks, 0, 1024)
        if (self.sparse_lanes == 0) != (self.sparse_banks == 0):
            raise ValueError("sparse_lanes and sparse_banks must both be 0 or both positive, "
                             f"not {self.sparse_lanes} and {self.sparse_banks}")
        for name in ("act_buffer_kib", "weight_buffer_kib", "out_buffer_kib"):
            _check_int(name, getattr(self, name), 1, 1 << 20)
        if self.bus_bits not in (32, 64, 128, 256, 512, 1024):
            raise ValueError(f"bus_bits must be a power of two from 32 to 1024, "
                             f"not {self.bus_bits!r}")
        if self.requant not in REQUANT_KINDS:
            raise ValueError(f"requant must be one of {', '.join(REQUANT_KINDS)}, "
                             f"not {self.requant!r}")
        if self.requant == "f32":
            units = [n for n in ("winograd_m", "fft_size", "sparse_lanes") if getattr(self, n)]
            if units or (self.a_width, self.b_width) != (8, 8):
                raise ValueError(f"requant f32 runs the im2col and kn2row datapaths on 8-bit "
                                 f"operands: it needs winograd_m, fft_size and sparse_lanes "
                                 f"0 and a_width = b_width = 8, not "
                                 f"{', '.join(f'{n} = {getattr(self, n)}' for n in units) or 'a_width = %d, b_width = %d' % (self.a_width, self.b_width)}")

    @property
    def array(self) -> ArrayParams:
        """The systolic array part of these parameters."""
        return ArrayParams(self.rows, self.cols, self.a_width, self.b_width, self.acc_width)

    @property
    def algorithms(self) -> tuple[Algorithm, ...]:
        """Algorithms whose hardware exists in this overlay (im2col and kn2row always)."""
        algos = [Algorithm.IM2COL, Algorithm.KN2ROW]
        if self.winograd_m:
            algos.append(Algorithm.WINOGRAD)
        if self.fft_size:
            algos.append(Algorithm.FFT)
        if self.sparse_lanes:
            algos.append(Algorithm.SPARSE_FFT)
        return tuple(algos)

    def as_dict(self) -> dict:
        """The fields as a flat dict (design.json's ``hardware``)."""
        return _fields_dict(self)


#: (field, smallest value) of :class:`DatapathLimits`; buffers of at least 2 words, so that
#: no memory gets a zero-width address port.
_LIMIT_FIELDS = (("max_m", 1), ("max_k", 1), ("max_n", 1), ("feature_words", 2),
                 ("weight_words", 2), ("tile_words", 2), ("out_words", 2), ("max_gemms", 1),
                 ("spectral_words", 2), ("engine_a_words", 0), ("engine_c_words", 0),
                 ("sparse_steps", 2), ("sparse_nnz", 2))


def engine_rectangle(rows: int, cols: int, max_m: int, max_k: int, max_n: int) -> tuple:
    """Words per lane of the GEMM engine's A, B and C halves that hold every GEMM up to
    max_m × max_k × max_n in every dataflow: A ⌈max_m/L⌉·⌈max_k/rows⌉ (L = max(rows,
    cols)); B and C the larger of their ws/os and is layouts (docs/rtl.md)."""
    cdiv = lambda a, b: -(-a // b)  # noqa: E731
    lanes = max(rows, cols)
    return (cdiv(max_m, lanes) * cdiv(max_k, rows),
            max(cdiv(max_n, cols) * max_k, cdiv(max_k, rows) * max_n),
            max(cdiv(max_n, cols) * max_m, cdiv(max_m, cols) * max_n))


@dataclass(frozen=True)
class DatapathLimits:
    """Buffer sizes of one conv datapath build: what the compiler must fit a layer into.

    Parameters
    ----------
    max_m, max_k, max_n:
        Largest GEMM dimensions of one invocation (register widths; ``max_k`` also bounds
        the accumulator's exact sums).
    feature_words:
        Feature buffer depth (one activation per word: H·W·C of the input).
    weight_words:
        Weight buffer depth (all B matrices of an invocation).
    tile_words:
        Winograd tile buffer depth (tiles · pieces · C).
    out_words:
        Output and accumulator buffer depth (also the kn2row shift-and-add buffer).
    max_gemms:
        Most GEMMs in one invocation (kn2row R·S, Winograd (m+2)², FFT 3·N·(N/2+1)).
    spectral_words:
        FFT tile buffer and spectrum buffer depth (tiles · channels · N², and tiles ·
        filters · N²); unused without an FFT unit.
    engine_a_words, engine_c_words:
        Words per lane in one half of the GEMM engine's A and C buffers
        (``rtl.gemm_engine.GemmEngine``): one GEMM's operands and results must fit
        (``dse.lowering.split.engine_words``).  C's capacity also sizes the Winograd
        transformed-domain buffers (a GEMM's C words) and the FFT path's Gauss buffer (its
        elements).  0: the rectangle of ``max_m``, ``max_k``, ``max_n``
        (:meth:`engine_capacity`).  The engine reads B in the weight buffer.
    sparse_steps, sparse_nnz:
        With a sparse MAC unit (``sparse_lanes``; ``rtl/spectral.py``): depth of the
        schedule memory (the steps of every (filter group, channel) pair of a layer) and
        of each lane's kernel bank (the non-zeros one lane reads on one tile, every group
        and channel); unused without one.
    """

    max_m: int = 64
    max_k: int = 64
    max_n: int = 16
    feature_words: int = 1024
    weight_words: int = 4096
    tile_words: int = 1024
    out_words: int = 1024
    max_gemms: int = 64
    spectral_words: int = 1024
    engine_a_words: int = 0
    engine_c_words: int = 0
    sparse_steps: int = 256
    sparse_nnz: int = 256

    def engine_capacity(self, rows: int, cols: int) -> tuple[int, int, int]:
        """The engine's (A, B, C) words per lane on a rows×cols array: A and C a half's,
        the ``engine_*_words`` given, else the rectangle (:func:`engine_rectangle`); B the
        weight buffer's (the engine reads B there)."""
        a, _, c = engine_rectangle(rows, cols, self.max_m, self.max_k, self.max_n)
        return (self.engine_a_words or a, self.weight_words, self.engine_c_words or c)

    def on_array(self, rows: int, cols: int) -> dict:
        """The limits as a dict with the engine's A and C capacities on a rows×cols array
        filled in (:meth:`engine_capacity`): what the explorer's cut takes
        (``dse.lowering.split``)."""
        a, _, c = self.engine_capacity(rows, cols)
        return {**self.as_dict(), "engine_a_words": a, "engine_c_words": c}

    def __post_init__(self):
        for name, low in _LIMIT_FIELDS:
            _check_int(name, getattr(self, name), low)

    @classmethod
    def smallest(cls) -> "DatapathLimits":
        """The smallest limits allowed (the start of a fit over several layers)."""
        return cls(**dict(_LIMIT_FIELDS))

    def as_dict(self) -> dict:
        """The limits as a dict (JSON, cache keys)."""
        return _fields_dict(self)


@dataclass(frozen=True)
class SparseParams:
    """Sizes of the sparse spectral multiply-accumulate unit (``rtl/sparse_fft.py``).

    Parameters
    ----------
    lanes:
        P, complex MAC lanes; each holds one sparse kernel and serves one non-zero a cycle.
    banks:
        B, banks of the input-spectrum buffer.
    ports:
        Read ports per bank, 1 or 2 (dual-port BRAM): how many lanes one bank serves a cycle.
    bins:
        Spectral bins of one channel's input spectrum (N·(N/2 + 1) for N×N half spectra).
    data_width:
        Signed width of the real and of the imaginary part of an input-spectrum value.
    kernel_width:
        Signed width of the real and of the imaginary part of a kernel value.
    acc_width:
        Signed width of the real and of the imaginary part of an accumulator; at least
        :attr:`product_width`, so one product is exact (sums wrap modulo 2^acc_width).
    max_nnz:
        Kernel-bank depth: the most non-zeros one lane holds (one channel's, at most
        ``bins``, when the banks are reloaded per channel; all the channels and filter
        groups a lane runs on one tile in the conv datapath, ``rtl/spectral.py``).
    """

    lanes: int = 4
    banks: int = 4
    ports: int = 1
    bins: int = 40
    data_width: int = 16
    kernel_width: int = 16
    acc_width: int = 40
    max_nnz: int = 40

    def __post_init__(self):
        _check_int("lanes", self.lanes, 1, 64)
        _check_int("banks", self.banks, 1, 64)
        _check_int("ports", self.ports, 1, 2)
        _check_int("bins", self.bins, 2, 4096)
        _check_int("data_width", self.data_width, 2, 26)
        _check_int("kernel_width", self.kernel_width, 2, 26)
        _check_int("acc_width", self.acc_width, 2, ACC_MAX_BITS)
        _check_int("max_nnz", self.max_nnz, 1, 1 << 24)
        if self.acc_width < self.product_width:
            raise ValueError(f"acc_width must be at least data_width + kernel_width + 1 = "
                             f"{self.product_width}, not {self.acc_width}")

    @property
    def bank_depth(self) -> int:
        """Words per bank, ⌈bins / banks⌉: a placement may put at most this many bins in a
        bank."""
        return -(-self.bins // self.banks)

    @property
    def product_width(self) -> int:
        """Signed bits of each part of one exact complex product: |ac − bd| and |ad + bc|
        reach 2^(data_width + kernel_width − 1)."""
        return self.data_width + self.kernel_width + 1


#: Geometry settings of the window generator (``fe_``), the shift-and-add unit (``sa_``) and
#: the FFT path (``ff_``), in the conv datapath's port order.
FRONT_SETTINGS = ("in_h", "in_w", "c_words", "kernel_h", "kernel_w", "stride", "pad", "dil",
                  "out_h", "out_w")
SHIFT_ADD_SETTINGS = ("in_h", "in_w", "kernel_h", "kernel_w", "out_h", "out_w", "f_words",
                      "pad", "dil")
FFT_SETTINGS = ("tiles_w", "step", "kernel", "out_h", "out_w")


def top_refusal(params: OverlayParams) -> str | None:
    """Why the overlay top (``rtl.overlay_top.OverlayTop``) cannot be built for ``params``,
    or ``None``: it drives the im2col, kn2row and Winograd datapaths only, so an FFT unit
    (and a sparse unit beside it) has no path through it."""
    if params.fft_size:
        return (f"the overlay top runs the im2col, kn2row and Winograd datapaths only, not an "
                f"FFT unit (fft_size={params.fft_size})")
    return None


def datapath_registers(params: OverlayParams, limits: DatapathLimits
                       ) -> tuple[tuple[str, int], ...]:
    """The conv datapath's per-invocation settings (``rtl.conv_datapath.ConvDatapath``'s
    setting ports, which are built from this), in port order, each with its width in bits:
    what the compiler's :class:`dse.compiler.Invocation` ``registers`` hold and what a register
    image (``rtl.isa.pack_image``) carries.  The FFT settings exist only with an FFT unit
    (``ff_keep``: skip the forward transforms, the input spectra being the previous
    invocation's), ``ff_sparse`` only with a sparse unit beside it."""
    if not isinstance(params, OverlayParams):
        raise TypeError(f"params must be an OverlayParams, not {params!r}")
    if not isinstance(limits, DatapathLimits):
        raise TypeError(f"limits must be a DatapathLimits, not {limits!r}")
    lim = limits
    biggest = max(lim.max_m, lim.max_k, lim.max_n, lim.feature_words, lim.out_words, 255)
    if params.fft_size:
        biggest = max(biggest, lim.spectral_words)
    geometry = biggest.bit_length()
    dims = max(lim.max_m, lim.max_k, lim.max_n).bit_length()   # the GEMM engine's m, k, n
    regs = [("alg", ALG_BITS), ("mode", 2),
            ("gemm_m", dims), ("gemm_k", dims), ("gemm_n", dims),
            ("gemms", lim.max_gemms.bit_length()),
            ("gemm_period", COUNTER_BITS),
            ("a_words", (lim.max_m * lim.max_k).bit_length()),
            ("b_words", lim.weight_words.bit_length()),
            ("c_words", (lim.max_m * lim.max_n).bit_length()),
            *((f"fe_{n}", geometry) for n in FRONT_SETTINGS),
            *((f"sa_{n}", geometry) for n in SHIFT_ADD_SETTINGS),
            ("sa_stride_log2", 2),
            ("out_words", lim.out_words.bit_length()),
            *((("rq_mult", REQUANT_MULT_BITS), ("rq_shift", REQUANT_SHIFT_BITS),
               ("rq_relu", 1)) if params.requant == "shift" else ()),
            ("accumulate", 1), ("bank", 1)]
    if params.requant == "f32":
        # output words per pixel: the quant buffer word of an output word is its index
        # modulo this (the words are (pixel, filter chunk), pixel-major)
        regs += [("rq_chunks", (-(-lim.max_n // params.cols)).bit_length())]
    if params.fft_size:
        # ff_keep: the input spectra are the previous invocation's (a later filter chunk of
        # the same band and channels): phase 1 is skipped
        regs += [*((f"ff_{n}", geometry) for n in FFT_SETTINGS),
                 ("ff_shift", (params.acc_width + 1).bit_length()), ("ff_keep", 1)]
        if params.sparse_lanes:
            # sparse_fft: the FFT path's phase 2 on the sparse MAC unit (rtl/spectral.py)
            regs += [("ff_sparse", 1)]
    return tuple(regs)
