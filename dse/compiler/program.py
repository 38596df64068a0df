"""Conv and pool layers as one program for the overlay top (``rtl/overlay_top.py``), and its
DRAM image.

:func:`build_network_program` turns layers run one after the other —
:class:`dse.compiler.ConvPlan`\\ s (each planned with the overlay's ``OverlayParams`` and
``DatapathLimits``), :class:`PoolLayer`\\ s (max, average and global pooling, and the
residual ``add``) and :class:`Concat`\\ s; each layer reads the network's input or an earlier
layer's output (``inputs``; by default layer i + 1 reads layer i's output, a chain) — the
input ``x`` (C×H×W) and each conv layer's weights into one program and one DRAM image;
:func:`build_layer_program` is the program of one layer.

**Activations in DRAM** are real tensors: **HWC**, pixel-major (row after row, pixel after
pixel), a pixel's C channels contiguous, each element ``precision / 8`` bytes (int8 for
8-bit layers), little-endian, signed; no padding, no gaps.  Element (c, y, x) of a C×H×W
tensor at ``dram`` lies at ``dram + ((y·W + x)·C + c)·elem``: the pixel pitch is C·elem and
the row pitch W·C·elem (:class:`Tensor`).  The network's input is written there; each
layer's output tensor is read in place by the layers that take it.

**Concatenations are written in place.**  A :class:`Concat` has no instruction: its output
tensor is allocated whole (C = the sum of its inputs' channels), and each input tensor is a
**view** of it, a channel slice whose pixel pitch is the concatenation's (``Tensor.pitch``):
the layer producing it stores its output there with that pitch (a store box of ``ch``
channels with a wider pixel pitch), and the layers reading it load it the same way.  An
input is therefore a conv or pool layer's output (not ``x``, not another concatenation)
and joins one concatenation only.  In a quantised network an input whose scale or zero
point differs from the concatenation's is requantised instead (:attr:`Concat.luts`): its
producer writes it as a tensor of its own, and the concatenation copies it through the pool
engine's ``lut`` table into its slice (a :class:`PoolLayer` ``lut`` pass per such input, the
concatenation's instructions, after its inputs' layers).

**Fully connected layers** are conv plans of a 1×1 convolution over a (C·H·W)×1×1 input
reading a C×H×W tensor: the tensor's bytes read as one vector, (y, x, c) order
(:meth:`Tensor.flat`; a contiguous tensor only).

**Feature loads.**  The datapath's feature buffer holds, per invocation, its band's input
rows [in_rows) and its channel chunk's channels [channels) (the whole layer's when it is not
cut) as an image of (y, x, channel word) words, ``rows`` channels a word, ⌈ch / rows⌉ words a
pixel, the last zero-filled (:meth:`ConvPlan.feature_image`) — exactly the load engine's
packing of a box of ``ch`` channels into ``rows``-lane words.  The image is not always the
bare rows: the units synthesise ``unit_pad`` = min(pads) of padding (the window generator's
``fe_pad``, the shift-and-add's ``sa_pad``), and the rest (pads − unit_pad on each side,
e.g. a band's left and right columns when its top or bottom has no padding) is zero pixels
in the image.  So an invocation's feature words are loaded as ``load.tile buf=feature``
boxes straight from the input tensor (``px_pitch`` C·elem, ``row_pitch`` W·C·elem, ``ch`` the
chunk's channels at ``dram`` + c0·elem: a channel sub-range is a box with a pixel pitch
wider than its pixel) and **zero boxes** for the padding pixels, read from a zero area of
the image with the same pitches:

* no left or right padding in the image: the top padding, one box of all the band's rows
  (its rows and pixels packed in the buffer), the bottom padding;
* else one box per input row, and between rows one zero box of the right and the next left
  padding (contiguous in the buffer).

A box has at most 4095 rows and 4095 columns (``rtl.isa.EXTENT_BITS``); longer runs are
cut.  Zero boxes overwrite what the previous invocation left in the buffer.

**Output stores.**  An im2col or kn2row output buffer in the ``ws`` and ``os`` dataflows
holds (pixel, filter chunk) words: the invocation's filters [f0, f1) of each of its output
pixels in ⌈(f1 − f0) / cols⌉ words, pixel-major — the store engine's packing.  So a final
invocation's outputs are **one** ``store.tile`` box (rows of its band × OW × (f1 − f0)
channels at (y0, 0, f0) of the output tensor; cut at 4095 rows), and a K split's earlier
channel chunks, whose outputs are not the layer's, are not stored at all.  The ``is``
dataflow is refused: its words are ``cols`` pixels of one filter, elements that lie N·elem
apart in an HWC tensor, which no box (contiguous channels) can store; it needs a relayout
by the host or a transposing store.  Grouped convolutions and FFT plans are refused too.
A ``host_patches`` plan (im2col from the host's patches, the first layer's usual choice) is
the 1×1 convolution over the patches, which the image holds in place of the input tensor
(the host writes them, as it writes the input).

**Winograd layers** (F(m×m, 3×3) plans of the overlay's ``winograd_m`` and
``winograd_lanes``, banded or not) use the load and store engines' **tile mode**
(``load.tile`` / ``store.tile`` with ``tile``, docs/isa.md).  The tile buffer holds, per
invocation, :meth:`ConvPlan.tile_image`: for every output tile (ty, tx) and 3×3 kernel piece
(a, b) the (m+2)×(m+2) input window at row ty·m + 3a − top, column tx·m + 3b − left, ⌈ch /
rows⌉ words of ``rows`` channels × (m+2)² slots, order (tile, piece, channel word).  Per row
of tiles and piece, the windows of each column parity (tx even, tx odd: 2m columns apart,
so they do not overlap) that reach into the input tensor are **one** ``load.tile
buf=feature tile=1`` **span** (``wpitch`` = 2·pieces²·⌈ch / rows⌉ words from one window's
words to the next one's of the span; a parity with one such window is a one-window box):
the part of those windows inside the tensor (its band's rows and channel chunk), its first
pixel at its first window's slot (``wide`` where a pixel takes an even number of
tile-buffer words: words of 2·rows channels, a pair of tile-buffer words each,
:func:`_feature_load`); the load zeroes each window's other slots, so the padding
and the windows past the image's bottom and right edge (the tiles of an output size that is
not a multiple of m) need no boxes of their own.  A window wholly outside the image is a
one-pixel box read from the zero area.  The outputs, per tile and group of ``winograd_lanes`` filters one word
(:meth:`ConvPlan.decode`), are stored as **one** ``store.tile tile=1`` box per row of output
tiles (min(m, rows left) × OW pixels × the invocation's filters), clipped at the tensor's
bottom and right edges.  The weights, transformed offline (:meth:`ConvPlan.weight_image`),
outgrow the precision: a chain with a Winograd layer stores every weight element in the
smallest of 1, 2 or 4 bytes that holds ``b_width`` bits (the weight ``load.setup``'s
``elem``).  Cost: two load instructions per row of tiles and piece (one per parity), the
input read (m+2)/m times down the rows and twice across them (F(4×4) reads the two columns
between its windows and drops them), and one store per tile row.  (One load a window, as
before spans, paid the DRAM's read latency and a command's overhead per window: VGG16 on
the ZCU102 point took 12.07 M cycles against 11.31 M with spans.)

**Weights and register images stay pre-tiled** (the compiler writes them once, offline):
the register images (:func:`rtl.isa.pack_image` of each invocation's ``registers``, in
:func:`rtl.params.datapath_registers` order, 16 bytes a word) of every layer back to back,
and per distinct weight key (:func:`_weight_key`) its weight-buffer words exactly as
:meth:`ConvPlan.weight_image` gives them, each word stored as its lanes of ``elem`` bytes, the words contiguous (dense boxes of
one word a pixel, at most 4095 a box).

**Pool layers** (:class:`PoolLayer`) run on the pool engine (``rtl/pool_engine.py``, int8:
8-bit networks on an overlay whose ``rows`` and ``cols`` are a power of two apart,
``rtl.pool_layout.pool_supported``; it reads feature words of ``rows`` lanes and writes output
words of ``cols`` lanes).  A layer is cut into **bands** of output rows, each one
``pool.tile``: the band's input rows (with the layer's padding at the tensor's top and bottom
edges as the tile's ``pad_t`` / ``pad_b``, its left and right padding as ``pad_l`` /
``pad_r``) are one ``load.tile buf=feature`` box of the input tensor at buffer word 0
(⌈C / rows⌉ words a pixel, the load engine's packing, which is the pool engine's input
layout), and its output rows one ``store.tile`` box at output word 0 (⌈C / cols⌉ words a
pixel, the store engine's packing).  A band has as many output rows as fit both the feature
buffer (its input rows × W × ⌈C / rows⌉ words) and the output buffer (its output rows × OW ×
⌈C / cols⌉ words); a global pool is one
tile of the whole tensor (it must fit).  ``add``'s second operand is an earlier tensor of the
program (:attr:`PoolLayer.source`: the network input or an earlier layer's output, the shape of
the add's input), loaded band by band as ``load.tile buf=aux`` boxes at aux word 0 (the aux
buffer holds min(``feature_words``, ``out_words``) words, ``rtl.overlay_top.OverlayTop``'s
default).

**Pool numerics** (:func:`pool_numerics`; the engine's are ``sim/models/pool.py``'s): max
pools take ``mult`` = 1, ``shift`` = 0 (the maximum itself); an average pool of a window of n
elements (kh·kw; the whole H·W for ``gavg``; padding counts, ``count_include_pad``) takes the
largest ``shift`` ≤ 63 with ``mult`` = round(2^shift / n) < 2^16, so the sum times ``mult``
/ 2^shift is the mean within a relative 2^−15 before the engine's rounding; ``add`` takes
``mult`` = ``mult2`` = 1, ``shift`` = 0 (a saturating int8 sum of two tensors of one scale)
unless the layer gives its own.  The optional ReLU follows saturation.

**The DRAM image**, each region 64-byte aligned: the program, the register images, the zero
area, per layer and invocation the weight words, the input tensor, then each layer's output
tensor (a concatenation's inputs inside the concatenation's).

**The program**: ``load.setup`` of the table buffer, one ``load.tile buf=table`` of all
register images (cut at 4095 words); then per conv layer a ``load.setup buf=weight`` (its
weight element size: a Winograd layer's transformed weights take 2 or 4 bytes), a
``load.setup buf=feature`` and a ``store.setup`` with its tensors' pitches and a
``compute.setup`` naming its images, and per
invocation its feature and weight ``load.tile``\\ s, ``compute.tile`` naming its image and
(final invocations) its ``store.tile``\\ s; per pool layer a ``load.setup buf=feature`` (and
``buf=aux`` for ``add``), a ``store.setup`` and a ``pool.setup``, and per band its loads, its
``pool.tile`` and its ``store.tile``\\ s; then ``finish``.

**Loads the buffers make unnecessary** (:func:`_reuse`, :func:`_invocation_order`).  An
invocation whose half of the feature (tile) or weight buffer still holds the same feature
boxes or the same weights (:func:`_weight_key`) skips those loads, keeping at least one (its
tokens ride on its loads); each conv layer's invocations run in the plan's order or filter
chunk after filter chunk (K-split runs kept together), whichever loads fewer bytes; and
invocations with one weight key share one weight segment in the image.

**Tokens.**  The datapath owns its buffers: every invocation reads its feature and weight
words from word 0 and writes its outputs from word 0 (single-buffered; see "Double
buffering" below).  Besides the read-after-write
dependencies (an invocation's loads before its compute: load → compute; its compute before
its store: compute → store) the program carries the write-after-read ones: the loads of an
invocation wait until the previous compute has finished reading the buffers (compute →
load), and a compute waits until the store of the previous invocation, if it had one, has
read the output buffer (store → compute).  Across a layer boundary layer i + 1's loads
read the tensor layer i's last store writes; the ring has no store → load queue, so the
dependency goes **store → compute → load**, whichever earlier tensor layer i + 1 reads (every
earlier layer has stored its output by then): layer i's last store pushes store → compute,
layer i + 1's ``compute.setup`` (which the compute engine runs after layer i's last compute)
pops it and pushes compute → load, and layer i + 1's first load pops that.  Single-buffered, in
program order every queue holds at most one token, so the program passes
``dse.compiler.asm.check_tokens`` at any depth (it is checked at the given ``token_depth``);
double-buffered, at most two.  The table load precedes the first
feature load on the load engine, so the first compute's load → compute token also covers the
images.

**Double buffering** (``double_buffer``, per conv or pool layer).  Invocation k of a
double-buffered layer owns half k mod 2 of the feature (Winograd: tile), weight and output
buffers: its register image's ``bank`` is k mod 2 (the datapath then reads its image and
weights from word ⌊depth / 2⌋ and writes its outputs from word ⌊out_words / 2⌋), and its
``load.tile`` and ``store.tile`` buffer addresses are offset by that half.  The plan must
fit a half (:func:`double_buffer_limits`).  The write-after-read tokens then skip one
invocation: the first load of invocation k pops the compute → load token of compute k − 2
(none for k < 2), and compute k pops the store → compute token of invocation k − 2's store
(if it had one); compute k pushes compute → load only for an invocation k + 2 of the layer,
and a store pushes store → compute only for a compute k + 2 (the layer's last store
still hands the boundary on; the one before it pushes nothing, the store engine running in
order).  So invocation k + 1 loads while k computes, and k stores while k + 1 computes;
up to two tokens wait in a queue (``token_depth`` ≥ 2).  A K split's accumulator buffer
is not banked: each chunk's compute follows the previous one's on the compute engine.
A double-buffered **pool layer** (max, average and global pools, adds) is cut into bands
that fit half buffers (:func:`double_buffer_limits`), and band b owns half b mod 2 of the
feature, aux (an add's second operand) and output buffers: its ``pool.tile``'s
``in_addr``, ``in2_addr`` and ``out_addr`` and its loads' and stores' buffer addresses are
that half's, and its tokens skip a band as a conv layer's skip an invocation, so band b + 1
loads while band b pools (VGG16's five max pools on the ZCU102 point: 770 k → 407 k
cycles).  A double-buffered conv layer right after another double-buffered conv layer
loads its first invocation's weights (and quant entries) **before** the layer boundary: its
``load.setup buf=weight`` and those loads come first, the first of them popping the
compute → load token that the previous layer's last compute on weight half 0 now pushes;
then its feature ``load.setup``, ``store.setup`` and ``compute.setup``, and its first
invocation's feature loads wait for the boundary as before (VGG16: 10,719,389 →
10,655,144 cycles).  Layer boundaries stay as below otherwise.

A pool layer has the same tokens with the pool engine in the compute engine's place (pool's
ring neighbours are load and store too): a band's loads → its ``pool.tile`` (load → pool),
the tile → its stores (pool → store), the next band's loads wait for the tile (pool → load)
and its tile for the stores (store → pool).  The layer boundary goes store → pool → load
through the ``pool.setup`` (a conv layer followed by a pool layer pushes its last store's
token to pool; a pool layer followed by a conv layer pushes it to compute).  The feature and
output buffers are shared by the two engines, and this chain of tokens keeps them apart: a
layer's loads start only after the previous layer's last store, which came after its last
compute or pool tile.

:func:`instruction_cycles` gives each instruction's cycles in the controller's convention
(``rtl/controller.py``: from the command's transfer to its engine's ``done``), for
``dse.compiler.asm.schedule``: the DMA formula (:mod:`dse.cost.dma`; a tile-mode box moves
the beats and words of the same box without ``tile``, a store's words of
``winograd_lanes`` elements), less one (the formula counts
both ends); the register-image load plus the datapath's cycles
(:meth:`ConvPlan.invocation_cycles`) plus one (the datapath's ``done`` is a register);
0 for the setups, which take no time; ``dse.cost.transforms.pool_cycles`` for a
``pool.tile`` (the engine's cycles from its transfer to its ``done``, exactly, with
``ch_words`` = ⌈ch / gcd(rows, cols)⌉, the engine's groups: ``rtl.pool_layout.pool_lanes``);
``FINISH_CYCLES`` for ``finish``.

:func:`decode_output` reads a layer's output tensor back from a memory as N×OH×OW.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from dse.compiler.asm import check_tokens
from dse.compiler.plan import required_limits
from dse.cost.dma import load_tile_cycles, store_tile_cycles
from dse.cost.gemm import DEFAULT_MULT_LATENCY
from dse.cost.transforms import image_load_cycles, pool_cycles
from dse.lowering.winograd import pieces as winograd_pieces
from rtl.isa import (
    CHANNEL_BITS,
    EXTENT_BITS,
    IMAGE_WORD_BITS,
    INSTRUCTION_BYTES,
    LUT_ENTRIES,
    LUT_INSTRUCTIONS,
    PIXEL_PITCH_BITS,
    ROW_PITCH_BITS,
    Activation,
    Buffer,
    ComputeSetup,
    ComputeTile,
    Engine,
    Finish,
    Instruction,
    LoadSetup,
    LoadTile,
    PoolLut,
    PoolMode,
    PoolQAdd,
    PoolRequant,
    PoolSetup,
    PoolTile,
    StoreSetup,
    StoreTile,
    image_words,
    lut_instructions,
    pack_image,
)
from rtl.params import (
    AXI_BOUNDARY,
    FINISH_CYCLES,
    QADD_SETTING_BITS,
    QUANT_ENTRY_BYTES,
    REQUANT_MULT_BITS,
    REQUANT_SHIFT_BITS,
    DatapathLimits,
    OverlayParams,
    datapath_registers,
    pack_quant_entries,
    quant_lanes,
)
from rtl.pool_layout import pool_lanes, pool_supported

__all__ = [
    "ChannelQuant",
    "FINISH_CYCLES",
    "MAX_BOX_WORDS",
    "MAX_EXTENT",
    "TABLE_LANES",
    "Concat",
    "LayerProgram",
    "NetworkProgram",
    "PoolLayer",
    "Segment",
    "Tensor",
    "build_layer_program",
    "build_network_program",
    "decode_output",
    "double_buffer_limits",
    "instruction_cycles",
    "pool_numerics",
    "tensor_bytes",
]

#: Lanes of a table-buffer word as the load engine fills it: 16 bytes of a 128-bit word.
TABLE_LANES = IMAGE_WORD_BITS // 8
#: Most rows, and most pixels a row, of one box.
MAX_EXTENT = (1 << EXTENT_BITS) - 1
#: Most buffer words one pre-tiled box moves: one word a pixel, one row of pixels.
MAX_BOX_WORDS = MAX_EXTENT
#: Alignment of every region of the DRAM image (bytes): a 512-bit beat.
_ALIGN = 64


@dataclass(frozen=True)
class Segment:
    """A run of pre-tiled buffer words in DRAM.

    Members
    -------
    dram:
        Byte address of the first word.
    words:
        Buffer words.
    lanes:
        Elements per word.
    elem:
        Bytes per element.
    """

    dram: int
    words: int
    lanes: int
    elem: int

    @property
    def nbytes(self) -> int:
        """Bytes the segment takes."""
        return self.words * self.lanes * self.elem


@dataclass(frozen=True)
class Tensor:
    """A C×H×W activation tensor in DRAM, HWC (module docstring).

    Members
    -------
    dram:
        Byte address of element (0, 0, 0).
    shape:
        (C, H, W).
    elem:
        Bytes per element.
    pitch:
        Channels from one pixel to the next in memory; 0 (the default) for C.  A wider
        pitch makes the tensor a channel slice of a wider one: a concatenation's input,
        written in place.
    """

    dram: int
    shape: tuple
    elem: int
    pitch: int = 0

    @property
    def px_pitch(self) -> int:
        """Bytes from one pixel to the next: ``pitch``·elem (C·elem unless a view)."""
        return (self.pitch or self.shape[0]) * self.elem

    @property
    def contiguous(self) -> bool:
        """Whether the tensor's pixels lie back to back (not a channel slice of a wider
        tensor)."""
        return self.pitch in (0, self.shape[0])

    def flat(self) -> "Tensor":
        """The same bytes as a (C·H·W)×1×1 tensor, channel index (y·W + x)·C + c (what a
        fully connected layer reads); a contiguous tensor's only, or one of 1×1 pixels."""
        c, h, w = self.shape
        if not (self.contiguous or h * w == 1):
            raise ValueError(f"a {self.shape} channel slice of a wider tensor cannot be "
                             f"read as one vector")
        return Tensor(self.dram, (c * h * w, 1, 1), self.elem)

    @property
    def row_pitch(self) -> int:
        """Bytes from one row to the next: W·C·elem."""
        return self.shape[2] * self.px_pitch

    @property
    def nbytes(self) -> int:
        """Bytes the tensor takes."""
        return self.shape[1] * self.row_pitch

    def address(self, c: int, y: int, x: int) -> int:
        """Byte address of element (c, y, x)."""
        return self.dram + y * self.row_pitch + x * self.px_pitch + c * self.elem


@dataclass(frozen=True)
class NetworkProgram:
    """A network's program and DRAM image (module docstring).

    Members
    -------
    plans:
        The :class:`dse.compiler.ConvPlan` or :class:`PoolLayer` of each layer, in order.
    program:
        The instructions, ``finish`` last.
    image:
        The DRAM image: byte i at address ``base`` + i.  The output tensors are zero.
    base:
        DRAM byte address of the image (and of the program, its first bytes).
    tables:
        The register images' segment (every layer's, in order).
    zeros:
        The zero area the padding boxes read.
    weights:
        Per layer, per invocation its weight segment (none for a pool layer).
    tensors:
        The network input tensor, then each layer's output :class:`Tensor`.
    computes:
        Per ``compute.tile`` in program order, its (plan, invocation).
    image_words:
        Words of one register image.
    token_depth:
        The token-queue depth the program was checked at.
    inputs:
        Per layer the index into ``tensors`` of the tensor it reads (None for a
        :class:`Concat`).
    layer_of:
        Per instruction the layer it belongs to (−1: the register-image loads and
        ``finish``).
    image_bytes:
        Bytes of the DRAM image (also when it was not built, ``image=False``).
    pads:
        ``(pad value, Segment)`` of each padding area other than the zero area: a quantised
        layer's input zero point, which its padding boxes read.
    quant:
        Per layer the segments of its quant-buffer images (``ChannelQuant``), one per
        distinct filter range, in the order first used (empty without).
    """

    plans: tuple
    program: tuple
    image: bytes
    base: int
    tables: Segment
    zeros: Segment
    weights: tuple
    tensors: tuple
    computes: tuple
    image_words: int
    token_depth: int
    inputs: tuple = ()
    layer_of: tuple = ()
    image_bytes: int = 0
    pads: tuple = ()
    quant: tuple = ()

    @property
    def program_addr(self) -> int:
        """DRAM byte address of the program's first word."""
        return self.base

    @property
    def plan(self):
        """The plan of a one-layer program."""
        if len(self.plans) != 1:
            raise ValueError(f"plan is a one-layer program's; this one has {len(self.plans)} "
                             f"layers (use plans)")
        return self.plans[0]

    @property
    def input(self) -> Tensor:
        """The network input tensor."""
        return self.tensors[0]

    @property
    def output(self) -> Tensor:
        """The last layer's output tensor."""
        return self.tensors[-1]

    @property
    def table_words(self) -> int:
        """Table-memory words the register images need (``OverlayTop(table_words=…)``)."""
        return self.tables.words


#: The program of one layer is a chain of one (the name :func:`build_layer_program` returns).
LayerProgram = NetworkProgram

@dataclass(frozen=True)
class Concat:
    """The channel concatenation of earlier layers' outputs, written in place (module
    docstring): no instruction; each source layer stores its output into its channel slice
    of this layer's output tensor.

    Members
    -------
    sources:
        The concatenated tensors in channel order, each an earlier layer's output (j + 1 for
        layer j), of one height and width; a layer's output joins at most one concatenation,
        and a concatenation's own output joins none.
    luts:
        Empty (every input written in place), or per source None (written in place) or the
        :data:`rtl.isa.LUT_ENTRIES` int8 entries (stored form) of the pool engine's ``lut``
        table that requantises it into its slice (module docstring).
    copy:
        Copy the inputs without a table into their slices too (a 1×1 ``max`` pass each),
        rather than having their producers write them in place: the program without that
        fusion (``dse.compiler.network.compile_network(fuse=False)``).
    """

    sources: tuple
    luts: tuple = ()
    copy: bool = False

    def __post_init__(self):
        sources = self.sources
        if isinstance(sources, (str, bytes)) or not hasattr(sources, "__iter__"):
            raise TypeError(f"sources must be a sequence of tensor indices, not {sources!r}")
        sources = tuple(sources)
        if not sources or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                              or v < 1 for v in sources):
            raise ValueError(f"sources must be one or more layer output indices (1 or more), "
                             f"not {sources!r}")
        if len(set(sources)) != len(sources):
            raise ValueError(f"sources must be distinct, not {sources!r}")
        object.__setattr__(self, "sources", tuple(int(v) for v in sources))
        luts = tuple(self.luts)
        if luts and len(luts) != len(sources):
            raise ValueError(f"luts must hold one entry per source ({len(sources)}), not "
                             f"{len(luts)}")
        object.__setattr__(self, "luts", tuple(None if t is None else _lut(f"luts[{k}]", t)
                                               for k, t in enumerate(luts)))
        if not any(self.luts):
            object.__setattr__(self, "luts", ())
        if not isinstance(self.copy, bool):
            raise TypeError(f"copy must be a bool, not {self.copy!r}")

    def passes(self) -> dict:
        """Source index → the element-wise :class:`PoolLayer` pass that copies it into its
        slice: a ``lut`` pass for a source with a table, a 1×1 ``max`` pass (a copy) for
        the others with ``copy``; the sources it leaves out are written in place."""
        luts = self.luts or (None,) * len(self.sources)
        return {k: PoolLayer("lut", lut=t) if t is not None else PoolLayer("max")
                for k, t in enumerate(luts) if t is not None or self.copy}


def _lut(name: str, table) -> tuple:
    """A ``lut`` table, checked: :data:`rtl.isa.LUT_ENTRIES` int8 integers."""
    if isinstance(table, (str, bytes)) or not hasattr(table, "__len__"):
        raise TypeError(f"{name} must be a sequence of {LUT_ENTRIES} integers, not {table!r:.60}")
    values = tuple(_int(f"{name} entry", v, -128, 127) for v in table)
    if len(values) != LUT_ENTRIES:
        raise ValueError(f"{name} must hold {LUT_ENTRIES} entries, not {len(values)}")
    return values


#: The pool layers' modes (``rtl.isa.PoolMode`` values).
POOL_LAYER_MODES = ("max", "avg", "gmax", "gavg", "add", "lut")


def _int(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, not {value}")
    return int(value)


def pool_numerics(mode: str, window: int = 1) -> tuple[int, int, int]:
    """The program builder's ``(mult, shift, mult2)`` of a pool layer (module docstring,
    "Pool numerics"): ``(1, 0, 0)`` for max pools, ``(round(2^shift / window), shift, 0)``
    with the largest ``shift`` ≤ 63 that keeps ``mult`` below 2^16 for average pools of a
    ``window``-element window, ``(1, 0, 1)`` for ``add``."""
    mode = getattr(mode, "value", mode)
    if mode not in POOL_LAYER_MODES:
        raise ValueError(f"mode must be one of {', '.join(POOL_LAYER_MODES)}, not {mode!r}")
    window = _int("window", window, 1, 1 << 30)
    if mode in ("max", "gmax", "lut"):
        return 1, 0, 0
    if mode == "add":
        return 1, 0, 1
    for shift in range((1 << REQUANT_SHIFT_BITS) - 1, -1, -1):
        mult = ((1 << shift) + window // 2) // window
        if mult < 1 << REQUANT_MULT_BITS:
            return mult, shift, 0
    raise AssertionError("unreachable: shift 0 gives mult ≤ 1")


@dataclass(frozen=True)
class PoolLayer:
    """A pool or element-wise layer, run on the pool engine (module docstring).

    Members
    -------
    mode:
        ``"max"``, ``"avg"`` (``kernel`` windows with ``stride`` and ``pads``), ``"gmax"``,
        ``"gavg"`` (one output pixel per channel), or ``"add"`` (the input plus the tensor
        ``source``).
    kernel:
        (kh, kw) of the windowed modes, each 1 to 15.
    stride:
        Window stride of the windowed modes, 1 to 15.
    pads:
        (top, bottom, left, right) padding of the windowed modes, each less than the
        kernel's extent in its direction (max: padding is ignored; avg: it counts as 0).
    relu:
        Clamp negative results to 0.
    source:
        ``add``: the tensor of the second operand, 0 the network input, j + 1 layer j's
        output (an earlier layer's or the add's own input's), of the add's input shape.
    mult, shift, mult2:
        The engine's requantisation; None (all three) takes :func:`pool_numerics`.
    qadd:
        ``add`` of a quantised network (an overlay that requantises per channel): the
        packed ``(r_a, r_b, f)`` of onnxruntime's QLinearAdd
        (``dse.qlinear.QAddSettings.packed``); the engine's ``qadd`` mode then computes it,
        ``mult``, ``shift``, ``mult2`` and ``relu`` unused.  Empty otherwise.
    qgavg:
        ``gavg`` of a quantised network: ``pool.requant``'s fields
        (``dse.compiler.qdq.gap_requant``: bias, mantissa, exponent, zero point); the
        engine's ``qgavg`` mode then computes onnxruntime's QLinearGlobalAveragePool.
        Empty otherwise.
    lut:
        ``lut`` (an element-wise table lookup of a quantised network, a
        :class:`Concat`'s requantisation of one input): the table's
        :data:`rtl.isa.LUT_ENTRIES` int8 entries, indexed by the element's unsigned byte
        (stored form + 128); ``mult``, ``shift``, ``mult2`` and ``relu`` unused.

    Raises
    ------
    TypeError, ValueError
        For a member of the wrong kind or value ("*name* must be …, not …").
    """

    mode: str
    kernel: tuple = (1, 1)
    stride: int = 1
    pads: tuple = (0, 0, 0, 0)
    relu: bool = False
    source: int | None = None
    mult: int | None = None
    shift: int | None = None
    mult2: int | None = None
    qadd: tuple = ()
    qgavg: dict | tuple = ()
    lut: tuple = ()

    def __post_init__(self):
        mode = getattr(self.mode, "value", self.mode)
        if mode not in POOL_LAYER_MODES:
            raise ValueError(f"mode must be one of {', '.join(POOL_LAYER_MODES)}, not "
                             f"{self.mode!r}")
        object.__setattr__(self, "mode", mode)
        try:
            kh, kw = self.kernel
            pads = tuple(self.pads)
        except (TypeError, ValueError):
            raise ValueError(f"kernel must be (kh, kw) and pads (top, bottom, left, right), "
                             f"not {self.kernel!r} and {self.pads!r}") from None
        if len(pads) != 4:
            raise ValueError(f"pads must be (top, bottom, left, right), not {self.pads!r}")
        kh, kw = _int("kh", kh, 1, 15), _int("kw", kw, 1, 15)
        _int("stride", self.stride, 1, 15)
        for name, pad, k in zip(("pad_t", "pad_b", "pad_l", "pad_r"), pads, (kh, kh, kw, kw)):
            _int(name, pad, 0, k - 1)
        object.__setattr__(self, "kernel", (kh, kw))
        object.__setattr__(self, "pads", tuple(int(p) for p in pads))
        if mode not in ("max", "avg") and ((kh, kw) != (1, 1) or self.stride != 1
                                           or any(pads)):
            raise ValueError(f"kernel, stride and pads must be the defaults for mode {mode} "
                             f"(only max and avg have windows), not {self.kernel}, "
                             f"{self.stride}, {self.pads}")
        if not isinstance(self.relu, bool):
            raise TypeError(f"relu must be a bool, not {self.relu!r}")
        if (mode == "add") != (self.source is not None):
            raise ValueError(f"source must be given for mode add and only for it, not "
                             f"{self.source!r} for mode {mode}")
        if self.source is not None:
            _int("source", self.source, 0, 1 << 20)
        given = [v is not None for v in (self.mult, self.shift, self.mult2)]
        if any(given) and not all(given):
            raise ValueError("mult, shift and mult2 must be given together or not at all")
        if all(given):
            _int("mult", self.mult, 0, (1 << REQUANT_MULT_BITS) - 1)
            _int("shift", self.shift, 0, (1 << REQUANT_SHIFT_BITS) - 1)
            _int("mult2", self.mult2, 0, (1 << REQUANT_MULT_BITS) - 1)
        if self.qadd:
            if mode != "add" or len(self.qadd) != 3:
                raise ValueError(f"qadd must be (r_a, r_b, f) of an add layer, not "
                                 f"{self.qadd!r} for mode {mode}")
            object.__setattr__(self, "qadd", tuple(
                _int(name, v, 0, (1 << QADD_SETTING_BITS) - 1)
                for name, v in zip(("r_a", "r_b", "f"), self.qadd)))
        if self.qgavg:
            if mode != "gavg":
                raise ValueError(f"qgavg must be given for a gavg layer only, not mode {mode}")
            fields = dict(self.qgavg)
            PoolRequant(**fields)                             # the ISA's ranges
            object.__setattr__(self, "qgavg", tuple(sorted(fields.items())))
        if (mode == "lut") != bool(self.lut):
            raise ValueError(f"lut must be given for mode lut and only for it, not "
                             f"{len(self.lut)} entries for mode {mode}")
        if self.lut:
            object.__setattr__(self, "lut", _lut("lut", self.lut))

    def out_shape(self, in_shape) -> tuple[int, int, int]:
        """(C, OH, OW) of the layer on a C×H×W input."""
        c, h, w = (int(v) for v in in_shape)
        if self.mode in ("gmax", "gavg"):
            return c, 1, 1
        if self.mode in ("add", "lut"):
            return c, h, w
        (kh, kw), (pt, pb, pl, pr) = self.kernel, self.pads
        if kh > pt + h + pb or kw > pl + w + pr:
            raise ValueError(f"kernel must fit the padded input {pt + h + pb}×{pl + w + pr}, "
                             f"not {kh}×{kw}")
        return (c, (pt + h + pb - kh) // self.stride + 1,
                (pl + w + pr - kw) // self.stride + 1)

    def numerics(self, in_shape) -> tuple[int, int, int]:
        """``(mult, shift, mult2)`` on a C×H×W input: the layer's own, else
        :func:`pool_numerics` of its window (``gavg``: H·W)."""
        if self.mult is not None:
            return self.mult, self.shift, self.mult2
        _, h, w = in_shape
        window = h * w if self.mode == "gavg" else self.kernel[0] * self.kernel[1]
        return pool_numerics(self.mode, window)


def _pool_bands(layer: PoolLayer, in_shape, limits: DatapathLimits, params: OverlayParams,
                what: str):
    """The bands of a pool layer: (o0, o1, y0, y1, pad_t, pad_b) with output rows [o0, o1)
    from input rows [y0, y1) and the tile's top and bottom padding (module docstring): its
    input pixels take ⌈C / rows⌉ feature (and aux) words, its output pixels ⌈C / cols⌉
    output words."""
    c, h, w = in_shape
    _, oh, ow = layer.out_shape(in_shape)
    cw, ocw = -(-c // params.rows), -(-c // params.cols)
    if layer.mode in ("gmax", "gavg"):
        if h * w * cw > limits.feature_words or h > MAX_EXTENT:
            raise ValueError(f"{what} input must fit the feature buffer ({limits.feature_words} "
                             f"words) as one tile for a global pool, not {h * w * cw} words")
        return [(0, 1, 0, h, 0, 0)]
    (kh, _), s, (pt, _, _, _) = layer.kernel, layer.stride, layer.pads
    if layer.mode == "add":
        kh, s, pt = 1, 1, 0
    room = min(limits.feature_words, limits.out_words)     # the aux buffer's default depth

    def band(o0, o1):
        y0, y1 = o0 * s - pt, (o1 - 1) * s - pt + kh
        return (o0, o1, max(y0, 0), min(y1, h), max(0, -y0), max(0, y1 - h))

    def fits(b):
        o0, o1, y0, y1, _, _ = b
        need_in = (y1 - y0) * w * cw
        return (need_in <= (room if layer.mode == "add" else limits.feature_words)
                and (o1 - o0) * ow * ocw <= limits.out_words)

    bands, o0 = [], 0
    while o0 < oh:
        o1 = o0 + 1
        if not fits(band(o0, o1)):
            raise ValueError(f"{what} must fit one output row in the buffers (feature "
                             f"{limits.feature_words}, output {limits.out_words} words), not "
                             f"{(band(o0, o1)[3] - band(o0, o1)[2]) * w * cw} and {ow * ocw}")
        while o1 < oh and fits(band(o0, o1 + 1)):
            o1 += 1
        bands.append(band(o0, o1))
        o0 = o1
    return bands


def _fits_halves(layer: PoolLayer, in_shape, limits: DatapathLimits,
                 params: OverlayParams) -> bool:
    """Whether a pool layer can run double-buffered: its bands fit half buffers
    (:func:`double_buffer_limits`; a global pool's whole input must)."""
    try:
        _pool_bands(layer, in_shape, double_buffer_limits(limits), params, "pool")
    except ValueError:
        return False
    return True


def _pool_count(layer: PoolLayer, bands) -> int:
    """Instructions of a pool layer: its setups, then per band its loads, tile and stores."""
    per_band = sum((2 if layer.mode == "add" else 1) * len(_pieces(y1 - y0)) + 1
                   + len(_pieces(o1 - o0)) for o0, o1, y0, y1, _, _ in bands)
    return (3 + (layer.mode == "add") + bool(layer.qadd) + bool(layer.qgavg)
            + LUT_INSTRUCTIONS * bool(layer.lut) + per_band)


def _align(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _word_bytes(words: np.ndarray, elem: int, what: str = "buffer words") -> bytes:
    """Integers as little-endian signed ``elem``-byte elements, in order."""
    arr = np.asarray(words, dtype=np.int64)
    lo, hi = -(1 << (8 * elem - 1)), (1 << (8 * elem - 1)) - 1
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(f"{what} must fit {8 * elem}-bit elements, not "
                         f"{int(arr.min())} … {int(arr.max())}")
    return arr.astype(f"<i{elem}").tobytes()


def tensor_bytes(x, elem: int) -> bytes:
    """A C×H×W integer tensor as its HWC DRAM bytes (module docstring)."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x must be a C×H×W tensor, not of shape {x.shape}")
    return _word_bytes(x.transpose(1, 2, 0), elem, "x")


def _pieces(n: int, step: int = MAX_EXTENT):
    """(offset, count) of the pieces of at most ``step`` that cover ``n``."""
    return [(o, min(step, n - o)) for o in range(0, n, step)]


def _weight_key(plan, inv) -> tuple:
    """What an invocation's weight words depend on (:meth:`ConvPlan.weight_image`): its
    band's channels (a banded plan), group, filters and B matrices.  Invocations of one
    layer with equal keys have equal words (checked where the image is built)."""
    channels = plan.bands[inv.band].channels if inv.band >= 0 else None
    return (channels, inv.group, tuple(inv.filters), inv.b_matrices, inv.registers["b_words"])


def _chains(invs) -> list:
    """The invocations' indices cut into runs that end with a final one (a K split's channel
    chunks accumulate into one buffer, so a run stays together and in order)."""
    out, run = [], []
    for k, inv in enumerate(invs):
        run.append(k)
        if inv.final:
            out.append(run)
            run = []
    if run:
        out.append(run)
    return out


def _reuse(order, fkeys, wkeys, fbytes, wbytes, gap: int):
    """Which loads of the invocations ``order`` (indices, in program order) are skipped:
    (feature skips, weight skips, bytes loaded).  Invocation k of the order uses half k mod
    ``gap`` of the feature and weight buffers (``gap`` 2: double buffered); its features or
    weights are not loaded when that half still holds the same ones (same boxes; same
    :func:`_weight_key`) -- nothing else writes a conv layer's buffers during the layer.  An
    invocation always keeps at least one load (its tokens ride on its loads): the smaller of
    the two is loaded again."""
    held = {"f": [None] * gap, "w": [None] * gap}
    skip_f, skip_w, loaded = [], [], 0
    for k, j in enumerate(order):
        h = k % gap
        sf, sw = held["f"][h] == fkeys[j], held["w"][h] == wkeys[j]
        if sf and sw:
            if wbytes[j] <= fbytes[j]:
                sw = False
            else:
                sf = False
        held["f"][h], held["w"][h] = fkeys[j], wkeys[j]
        skip_f.append(sf)
        skip_w.append(sw)
        loaded += (0 if sf else fbytes[j]) + (0 if sw else wbytes[j])
    return skip_f, skip_w, loaded


def _invocation_order(invs, fkeys, wkeys, fbytes, wbytes, gap: int) -> list:
    """The program order of a conv layer's invocations: the plan's (row band after row
    band, filter chunks inside: the input stays, the weights pass) or filter chunk after
    filter chunk with the row bands inside (the weights stay, the input passes), whichever
    loads fewer bytes with :func:`_reuse` (ties: the plan's).  K-split runs stay together."""
    chains = _chains(invs)
    plan_order = [k for run in chains for k in run]
    by_filters = [k for run in sorted(chains, key=lambda r: tuple(invs[r[0]].filters))
                  for k in run]
    cost = {tuple(o): _reuse(o, fkeys, wkeys, fbytes, wbytes, gap)[2]
            for o in (plan_order, by_filters)}
    return by_filters if cost[tuple(by_filters)] < cost[tuple(plan_order)] else plan_order


def _check_plan(i: int, plan, params: OverlayParams) -> None:
    what = f"plans[{i}]"
    if getattr(plan, "algorithm", None) not in ("im2col", "kn2row", "winograd"):
        raise ValueError(f"{what} must be an im2col, kn2row or winograd plan, not "
                         f"{getattr(plan, 'algorithm', plan)!r}")
    if (plan.rows, plan.cols) != (params.rows, params.cols):
        raise ValueError(f"{what} must be for a {params.rows}x{params.cols} array, not "
                         f"{plan.rows}x{plan.cols}")
    if plan.algorithm == "winograd" and (plan.winograd_m, plan.winograd_lanes) != \
            (params.winograd_m, params.winograd_lanes):
        raise ValueError(f"{what} winograd_m and winograd_lanes must be the overlay's "
                         f"{params.winograd_m} and {params.winograd_lanes}, not "
                         f"{plan.winograd_m} and {plan.winograd_lanes}")
    if plan.dataflow not in ("ws", "os"):
        raise ValueError(f"{what} must be in the ws or os dataflow, not {plan.dataflow!r}: "
                         f"the is output words hold {params.cols} pixels of one filter, "
                         f"which no store box writes into an HWC tensor (it needs a "
                         f"relayout by the host)")
    if plan.groups != 1:
        raise ValueError(f"{what} must have 1 group, not {plan.groups}")
    if plan.precision not in (8, 16):
        raise ValueError(f"{what} precision must be 8 or 16, not {plan.precision}")
    for name, shape in (("input", plan.in_shape), ("output", plan.out_shape)):
        c, h, w = shape
        elem = plan.precision // 8
        vector = name == "input" and (h, w) == (1, 1)     # its loads are cut by channels
        if w > MAX_EXTENT or (c >= 1 << CHANNEL_BITS and not vector):
            raise ValueError(f"{what} {name} must have at most {MAX_EXTENT} columns and "
                             f"{(1 << CHANNEL_BITS) - 1} channels, not {w} and {c}")
        if c * elem >= 1 << PIXEL_PITCH_BITS or w * c * elem >= 1 << ROW_PITCH_BITS:
            raise ValueError(f"{what} {name} pitches must fit {PIXEL_PITCH_BITS} and "
                             f"{ROW_PITCH_BITS} bits, not {c * elem} and {w * c * elem}")


def _feature_boxes(plan, inv, rows: int):
    """The feature boxes of one invocation: (source, y, c0, rows, cols, ch, addr), source
    "x" (the input tensor's pixel (y, 0), channel c0) or "zero" (module docstring)."""
    c_all, h_all, w = plan.in_shape
    if inv.band >= 0:
        band = plan.bands[inv.band]
        sub, (i0, i1), (c0, c1) = band.plan, band.in_rows, band.channels
    else:
        sub, (i0, i1), (c0, c1) = plan, (0, h_all), (0, c_all)
    top, left, bottom, right = (p - sub.unit_pad for p in sub.pads)
    h, ch = i1 - i0, c1 - c0
    assert sub.padded_hw == (h + top + bottom, w + left + right), (sub.padded_hw, h, w)
    cw = -(-ch // rows)
    wp = w + left + right
    boxes, at = [], 0                       # at: buffer pixel

    def zero(n):
        nonlocal at
        for _, k in _pieces(n):
            boxes.append(("zero", 0, c0, 1, k, ch, at * cw))
            at += k

    def data(y, n):
        nonlocal at
        boxes.append(("x", i0 + y, c0, n, w, ch, at * cw))
        at += n * w

    if left == right == 0:
        zero(top * wp)
        for y, n in _pieces(h):
            data(y, n)
        zero(bottom * wp)
    else:
        zero(top * wp + left)
        for y in range(h):
            data(y, 1)
            zero(right + (left if y < h - 1 else bottom * wp))
    return boxes


def _store_boxes(plan, inv, cols: int):
    """The store boxes of a final invocation: (y, f0, rows, OW, ch, addr)."""
    _, oh, ow = plan.out_shape
    y0, y1 = plan.bands[inv.band].rows if inv.band >= 0 else (0, oh)
    f0, f1 = inv.filters
    nb = -(-(f1 - f0) // cols)
    assert (y1 - y0) * ow * nb <= inv.out_words, (y1 - y0, ow, nb, inv.out_words)
    return [(y0 + o, f0, n, ow, f1 - f0, o * ow * nb) for o, n in _pieces(y1 - y0)]


def _band_of(plan, inv):
    """(sub-plan, input rows (i0, i1), channels (c0, c1), output rows (y0, y1)) of an
    invocation: its band's, or the whole layer's."""
    c_all, h_all, _ = plan.in_shape
    if inv.band >= 0:
        band = plan.bands[inv.band]
        return band.plan, band.in_rows, band.channels, band.rows
    return plan, (0, h_all), (0, c_all), (0, plan.out_shape[1])


def _tile_boxes(plan, inv, rows: int):
    """The tile-mode feature boxes of a Winograd invocation (module docstring, "Winograd
    layers"): (source, y, x, c0, rows, cols, ch, addr, slot, wpitch) with source "x" (the
    input tensor's pixel (y, x), channel c0) or "zero".  Per row of tiles and piece, the
    windows of each column parity that reach into the image are one span (``wpitch``: the
    words from one window's to the next one's of the span), or a one-window box where the
    parity has one such window (the load zeroes each window's slots outside the box); a
    window wholly outside the image is a one-pixel zero box."""
    sub, (i0, i1), (c0, c1), _ = _band_of(plan, inv)
    m = plan.winograd_m
    t = m + 2
    p = winograd_pieces(plan.kernel[0])
    _, oh, ow = sub.out_shape
    h, w = i1 - i0, plan.in_shape[2]
    top, left = sub.pads[0], sub.pads[1]
    th, tw = -(-oh // m), -(-ow // m)
    ch = c1 - c0
    cw = -(-ch // rows)
    assert th * tw * p * p * cw == inv.registers["a_words"], (th, tw, p, cw, inv.registers)
    pitch = 2 * p * p * cw                      # words from window tx's to window tx + 2's
    span_ok = pitch < 1 << EXTENT_BITS
    boxes = []
    for ty in range(th):
        for a in range(p):
            y0 = ty * m + 3 * a - top
            r0, r1 = min(t, max(0, -y0)), max(0, min(t, h - y0))
            for b in range(p):
                def window(tx):
                    return ((ty * tw + tx) * p * p + a * p + b) * cw, tx * m + 3 * b - left

                inside = []                     # the windows with pixels in the image
                for tx in range(tw):
                    addr, x0 = window(tx)
                    q0, q1 = min(t, max(0, -x0)), max(0, min(t, w - x0))
                    if r1 <= r0 or q1 <= q0:            # the window lies outside the image
                        boxes.append(("zero", 0, 0, c0, 1, 1, ch, addr, 0, 0))
                    else:
                        inside.append(tx)
                for parity in (0, 1):
                    run = [tx for tx in inside if tx % 2 == parity]
                    groups = [run] if span_ok else [[tx] for tx in run]
                    for group in filter(None, groups):
                        addr, x0 = window(group[0])
                        q0 = min(t, max(0, -x0))
                        x1 = min(w, window(group[-1])[1] + t)
                        boxes.append(("x", i0 + y0 + r0, x0 + q0, c0, r1 - r0, x1 - x0 - q0,
                                      ch, addr, r0 * t + q0, pitch if len(group) > 1 else 0))
    return boxes


def _feature_load(dram: int, addr: int, rows: int, cols: int, ch: int, tile: bool, slot: int,
                  wpitch: int, lanes: int) -> dict:
    """A feature ``load.tile``'s fields (module docstring, "Winograd layers"): a tile-mode
    box whose pixels take an even number of tile-buffer words (⌈ch / lanes⌉), from an even
    word, is ``wide``: its words of 2·lanes channels fill a pair of tile-buffer words at
    once, and its ``addr`` and ``wpitch`` count pairs."""
    wide = tile and -(-ch // lanes) % 2 == 0 and addr % 2 == 0
    if wide:
        addr, wpitch = addr // 2, wpitch // 2
    return {"buf": Buffer.FEATURE, "dram": dram, "addr": addr, "rows": rows, "cols": cols,
            "ch": ch, "tile": tile, "slot": slot, "wpitch": wpitch, "wide": wide}


def _weight_elem(plan, params: OverlayParams, elem: int) -> int:
    """Bytes of a conv layer's weight element in DRAM: the precision's, or for a Winograd
    layer the smallest of 1, 2, 4 bytes that holds ``params.b_width`` (its weights are
    transformed offline and grow beyond the precision; the weight buffer's lanes hold
    them).  Each layer's ``load.setup buf=weight`` gives its own."""
    if plan.algorithm != "winograd":
        return elem
    return max(elem, next(e for e in (1, 2, 4) if 8 * e >= params.b_width))


def _load_boxes(plan, inv, rows: int):
    """An invocation's feature boxes as (source, y, x, c0, rows, cols, ch, addr, tile, slot,
    wpitch):
    :func:`_tile_boxes` in tile mode for Winograd, else :func:`_feature_boxes`."""
    if plan.algorithm == "winograd":
        return [(*b[:8], True, *b[8:]) for b in _tile_boxes(plan, inv, rows)]
    out = []
    step = ((1 << CHANNEL_BITS) - 1) // rows * rows       # whole words of a box's channels
    for src, y, c0, n, cols, ch, addr in _feature_boxes(plan, inv, rows):
        # a one-pixel box of more channels than a load.tile takes (a fully connected
        # layer's vector): one box per run of whole words
        pieces = [(j, min(step, ch - j)) for j in range(0, ch, step)] if n * cols == 1 \
            else [(0, ch)]
        out += [(src, y, 0, c0 + j, n, cols, k, addr + j // rows, False, 0, 0)
                for j, k in pieces]
    return out


def _tile_store_boxes(plan, inv):
    """The tile-mode store boxes of a final Winograd invocation, one per row of output
    tiles clipped to the layer: (y, x, f0, rows, cols, ch, addr, slot 0)."""
    sub, _, _, (y0, _) = _band_of(plan, inv)
    m, wl = plan.winograd_m, plan.winograd_lanes
    _, oh, ow = sub.out_shape
    th, tw = -(-oh // m), -(-ow // m)
    f0, f1 = inv.filters
    groups = -(-(f1 - f0) // wl)
    assert th * tw * groups <= inv.out_words, (th, tw, groups, inv.out_words)
    return [(y0 + ty * m, 0, f0, min(m, oh - ty * m), ow, f1 - f0, ty * tw * groups, 0)
            for ty in range(th)]


def _output_boxes(plan, inv, cols: int):
    """A final invocation's store boxes as (y, x, f0, rows, cols, ch, addr, tile, slot)."""
    if plan.algorithm == "winograd":
        return [(*b[:7], True, b[7]) for b in _tile_store_boxes(plan, inv)]
    return [(y, 0, f0, n, w, ch, addr, False, 0)
            for y, f0, n, w, ch, addr in _store_boxes(plan, inv, cols)]


def double_buffer_limits(limits: DatapathLimits) -> DatapathLimits:
    """The limits a double-buffered program's conv layers are planned with (module
    docstring, "Double buffering"): ``limits`` with the feature, tile, weight and output
    buffers halved (⌊words / 2⌋ each), the half an invocation owns."""
    if not isinstance(limits, DatapathLimits):
        raise TypeError(f"limits must be a DatapathLimits, not {limits!r}")
    return dataclasses.replace(limits, **{name: getattr(limits, name) // 2
                                          for name in _BANKED})


#: The ``DatapathLimits`` of the buffers a double-buffered program splits into halves.
_BANKED = ("feature_words", "tile_words", "weight_words", "out_words")


@dataclass(frozen=True)
class ChannelQuant:
    """A conv layer's per-channel requantisation on an overlay with ``requant`` f32
    (``rtl/requant_channels.py``): per output channel the int32 ``bias`` (the model's, with
    the input zero point folded in: the datapath sums the stored inputs), the scale as
    ``mantissa`` · 2^``exponent`` and the output ``zero_point`` in the stored form; ``pad``
    is the value of the layer's padding in the stored form (the input's zero point)."""

    bias: tuple
    mantissa: tuple
    exponent: tuple
    zero_point: tuple
    pad: int = 0

    def __post_init__(self):
        n = len(self.bias)
        for name in ("mantissa", "exponent", "zero_point"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"ChannelQuant.{name} must have {n} entries (one per "
                                 f"channel, as bias), not {len(getattr(self, name))}")
        if isinstance(self.pad, bool) or not isinstance(self.pad, int) \
                or not -128 <= self.pad <= 127:
            raise ValueError(f"ChannelQuant.pad must be an int8, not {self.pad!r}")
        self.entries()                                    # the fields' ranges

    def entries(self) -> np.ndarray:
        """The quant-buffer entries, ``(channels, QUANT_ENTRY_BYTES)`` uint8."""
        return pack_quant_entries(self.bias, self.mantissa, self.exponent, self.zero_point)


def _quant_image(q: ChannelQuant, filters, cols: int) -> bytes:
    """The quant-buffer image of an invocation's filters [f0, f1): entry j at
    ``(j div cols) · quant_lanes(cols) + j mod cols`` (``rtl/requant_channels.py``), the
    slots past ``cols`` empty."""
    f0, f1 = filters
    slots = quant_lanes(cols)
    words = -(-(f1 - f0) // cols)
    out = np.zeros((words * slots, QUANT_ENTRY_BYTES), dtype=np.uint8)
    j = np.arange(f1 - f0)
    out[(j // cols) * slots + j % cols] = q.entries()[f0:f1]
    return out.tobytes()


def build_network_program(plans, x, weights, params: OverlayParams, limits: DatapathLimits, *,
                          base: int = 0, token_depth: int = 2, inputs=None,
                          image: bool = True, double_buffer=False,
                          quant=None) -> NetworkProgram:
    """The program and DRAM image of planned conv, pool and concat layers (module
    docstring).

    Parameters
    ----------
    plans:
        Per layer, in the order they run, ``dse.compiler.plan_conv(layer, algorithm,
        dataflow, params, limits, ...)`` (im2col, kn2row or Winograd, ws or os, one group),
        a :class:`PoolLayer` or a :class:`Concat`; the conv layers all of one precision (8
        where there is a pool layer).
    x:
        The network's input C×H×W, integers of the plans' precision.  Where the layer that
        reads it is planned from host patches (``plan.host_patches``, the first layer's im2col
        variant ``patches``), the image holds its patches (``plan.host_input(x)``,
        C·R·S×OH×OW, what the host writes) in place of ``x``, and that layer must be the only
        one reading the input.
    weights:
        Per layer its weights N×C×R×S, integers of the precision (None for a pool or
        concat layer).
    params, limits:
        The overlay the plans were made for (they fix the register layout and the lanes).
    base:
        DRAM byte address of the image, a multiple of 64.
    token_depth:
        Depth of the controller's token queues, for ``dse.compiler.asm.check_tokens``.
    inputs:
        Per layer the tensor it reads: 0 the input ``x``, j + 1 layer j's output (an
        earlier layer's); None for a concat.  By default layer i reads tensor i (a chain).
        A conv plan's input shape is its tensor's, or (C·H·W, 1, 1) of a C×H×W tensor (a
        fully connected layer, reading the tensor's bytes as one vector).
    image:
        False: the program without the DRAM image (``image`` is empty, ``image_bytes`` says
        how large it would be; the weights are not read and may be None): what the cycles
        and DRAM traffic need, cheaply, for the explorer.
    double_buffer:
        True, or per layer a bool (ignored for concat layers): alternate a conv layer's
        invocations, or a pool layer's bands, between the two halves of the feature
        (tile), weight, aux and output buffers, so an invocation's loads overlap the
        previous one's compute (module docstring, "Double buffering"); such a conv plan
        must fit a half (planned with :func:`double_buffer_limits` of ``limits``), such a
        pool layer's bands are cut for half buffers (one that cannot be is refused; with
        True it runs on whole buffers), and ``token_depth`` must be at least 2.  False
        (the default): every invocation uses the whole buffers.
    quant:
        On an overlay with ``params.requant`` f32, per layer its :class:`ChannelQuant`
        (None for a pool or concat layer): each invocation loads its filters' entries into
        the quant buffer with its weights, and the layer's padding boxes read an area of
        its ``pad`` value.  ``x`` and the weights are then the stored int8 values.

    Raises
    ------
    TypeError, ValueError
        For arguments of the wrong kind, a plan the overlay top cannot run from a tensor,
        a pool layer it cannot run (``rtl.overlay_top.pool_supported``), shapes that do not
        match, or data that does not fit the precision.
    """
    if not isinstance(params, OverlayParams):
        raise TypeError(f"params must be an OverlayParams, not {params!r}")
    if not isinstance(limits, DatapathLimits):
        raise TypeError(f"limits must be a DatapathLimits, not {limits!r}")
    if isinstance(plans, (str, bytes)) or not hasattr(plans, "__len__") or not len(plans):
        raise ValueError(f"plans must be a non-empty sequence of plans, not {plans!r}")
    plans = tuple(plans)
    weights = tuple(weights) if hasattr(weights, "__len__") else weights
    if not isinstance(weights, tuple) or len(weights) != len(plans):
        raise ValueError(f"weights must hold one array per plan ({len(plans)}), not "
                         f"{weights!r:.60}")
    if isinstance(base, bool) or not isinstance(base, int) or base < 0 or base % _ALIGN:
        raise ValueError(f"base must be a non-negative multiple of {_ALIGN}, not {base!r}")
    every = isinstance(double_buffer, bool)         # True: the pools whose bands fit halves
    if every:
        double_buffer = (double_buffer,) * len(plans)
    elif isinstance(double_buffer, (str, bytes)) or not hasattr(double_buffer, "__len__") \
            or len(double_buffer) != len(plans) or \
            not all(isinstance(v, bool) for v in double_buffer):
        raise ValueError(f"double_buffer must be a bool or one bool per plan ({len(plans)}), "
                         f"not {double_buffer!r:.60}")
    double_buffer = tuple(double_buffer)
    f32 = params.requant == "f32"
    quant = tuple(quant) if quant is not None else (None,) * len(plans)
    if len(quant) != len(plans):
        raise ValueError(f"quant must hold one entry per plan ({len(plans)}), not "
                         f"{len(quant)}")
    for i, (plan, q) in enumerate(zip(plans, quant)):
        conv_i = not isinstance(plan, (PoolLayer, Concat))
        if q is not None and not isinstance(q, ChannelQuant):
            raise TypeError(f"quant[{i}] must be a ChannelQuant or None, not {q!r:.60}")
        if f32 and conv_i and q is None:
            raise ValueError(f"quant[{i}] must be given: the overlay requantises per channel "
                             f"(requant f32)")
        if q is not None and not (f32 and conv_i):
            raise ValueError(f"quant[{i}] must be None: "
                             + ("not a conv layer" if not conv_i else
                                "the overlay requantises per layer (requant shift)"))
        if q is not None and len(q.bias) != plan.out_shape[0]:
            raise ValueError(f"quant[{i}] must have {plan.out_shape[0]} channels, not "
                             f"{len(q.bias)}")
    pad_of = [q.pad if q is not None else 0 for q in quant]
    if any(double_buffer) and (isinstance(token_depth, bool)
                               or not isinstance(token_depth, int) or token_depth < 2):
        raise ValueError(f"token_depth must be at least 2 with double_buffer, not "
                         f"{token_depth!r}")
    is_pool = [isinstance(plan, PoolLayer) for plan in plans]
    is_cat = [isinstance(plan, Concat) for plan in plans]
    inputs = _inputs(inputs, plans, is_cat)
    convs = [plan for plan, pool, cat in zip(plans, is_pool, is_cat) if not (pool or cat)]
    if not convs and not any(is_pool):
        raise ValueError("plans must hold a conv or pool layer, not concatenations only")
    precision = convs[0].precision if convs else 8
    x = np.asarray(x)
    # a conv planned from host patches reads the patches in place of x: the host writes them
    patched = [i for i, plan in enumerate(plans)
               if not (is_pool[i] or is_cat[i]) and plan.host_patches]
    if patched:
        i = patched[0]
        readers = [j for j in range(len(plans)) if not is_cat[j] and inputs[j] == 0]
        if len(patched) > 1 or readers != [i]:
            raise ValueError(f"plans[{i}] reads host patches of the network input, so it "
                             f"must be the only layer that reads the input, not one of "
                             f"layers {readers}")
        (r, s), *_ = plans[i].host_patches
        if not image:                            # only its shape matters
            x = np.zeros(plans[i].in_shape, np.int64)
        elif x.ndim != 3 or x.shape[0] * r * s != plans[i].in_shape[0]:
            raise ValueError(f"x must be the network input C×H×W of the host-patches plan "
                             f"({plans[i].in_shape[0] // (r * s)} channels), not {x.shape}")
        else:
            x = plans[i].host_input(x, pad_of[i])
    shapes = [tuple(int(v) for v in x.shape)]          # every tensor's: x, each layer's output
    if not (is_pool[0] or is_cat[0]):
        want = tuple(int(v) for v in plans[0].in_shape)
        if shapes[0] != want and want != (int(np.prod(shapes[0])), 1, 1):
            raise ValueError(f"x must have the first plan's input shape {want}, not "
                             f"{x.shape}")
    view_of: dict[int, tuple[int, int]] = {}             # tensor → (concat tensor, channel 0)
    joined: set[int] = set()                              # tensors joined to a concat
    # per concat layer its passes: (source tensor, channel 0, the PoolLayer)
    cat_passes: list[list] = [[] for _ in plans]
    flat = [False] * len(plans)                           # a conv reading its tensor as a vector
    for i, plan in enumerate(plans):
        if is_cat[i]:
            if weights[i] is not None:
                raise ValueError(f"weights[{i}] must be None for a concat layer, not an array")
            c0 = 0
            passes = plan.passes()
            if passes and not pool_supported(params, precision):
                raise ValueError(f"plans[{i}] (a concat with pool passes) needs an 8-bit "
                                 f"network on an overlay whose rows and cols are a power of "
                                 f"two apart, not int{precision} on "
                                 f"{params.rows}x{params.cols}")
            for k, s in enumerate(plan.sources):
                if s > i:
                    raise ValueError(f"plans[{i}] sources must be earlier layers' outputs (1 "
                                     f"to {i}), not {s}")
                if is_cat[s - 1] or s in joined:
                    raise ValueError(f"plans[{i}] source {s} must be a conv or pool layer's "
                                     f"output not yet concatenated, not "
                                     f"{'a concat output' if is_cat[s - 1] else 'one joined to an earlier concat'}")
                if shapes[s][1:] != shapes[plan.sources[0]][1:]:
                    raise ValueError(f"plans[{i}] sources must share one height and width, "
                                     f"not {shapes[plan.sources[0]]} and {shapes[s]}")
                joined.add(s)
                if k in passes:
                    cat_passes[i].append((s, c0, passes[k]))
                else:
                    view_of[s] = (i + 1, c0)
                c0 += shapes[s][0]
            shapes.append((c0, *shapes[plan.sources[0]][1:]))
            continue
        in_shape = shapes[inputs[i]]
        if is_pool[i]:
            if not pool_supported(params, precision):
                raise ValueError(f"plans[{i}] (a pool layer) needs an 8-bit network on an "
                                 f"overlay whose rows and cols are a power of two apart "
                                 f"(rtl.overlay_top.pool_supported), not int{precision} on "
                                 f"{params.rows}x{params.cols}")
            if plan.mode == "add":
                if plan.source > i:
                    raise ValueError(f"plans[{i}] source must be an earlier tensor (0 to "
                                     f"{i}), not {plan.source}")
                if shapes[plan.source] != in_shape:
                    raise ValueError(f"plans[{i}] source tensor {plan.source} must have the "
                                     f"add's input shape {in_shape}, not "
                                     f"{shapes[plan.source]}")
            if weights[i] is not None:
                raise ValueError(f"weights[{i}] must be None for a pool layer, not an array")
            try:
                shapes.append(plan.out_shape(in_shape))
            except ValueError as exc:
                raise ValueError(f"plans[{i}] {exc}") from None
            continue
        _check_plan(i, plan, params)
        if plan.precision != precision:
            raise ValueError(f"plans[{i}] precision must be {precision} like the first conv "
                             f"layer's, not {plan.precision}")
        want_in = tuple(int(v) for v in plan.in_shape)
        flat[i] = want_in != in_shape and want_in == (int(np.prod(in_shape)), 1, 1)
        if want_in != in_shape and not flat[i]:
            raise ValueError(f"plans[{i}] input must be tensor {inputs[i]}'s shape "
                             f"{in_shape} (or its {int(np.prod(in_shape))} elements as a "
                             f"vector), not {want_in}")
        want = (plan.out_shape[0], plan.in_shape[0], *plan.kernel)
        if plan.host_patches:                    # the layer's own weights, N×C×R×S
            (r, s), *_ = plan.host_patches
            want = (plan.out_shape[0], plan.in_shape[0] // (r * s), r, s)
        if (image or weights[i] is not None) and np.shape(weights[i]) != want:
            raise ValueError(f"weights[{i}] must have shape {want}, not {np.shape(weights[i])}")
        if double_buffer[i]:
            half = double_buffer_limits(limits)
            need = required_limits([plan])
            for name in _BANKED:
                if need[name] > getattr(half, name):
                    raise ValueError(f"plans[{i}] {name} must fit half the buffer with "
                                     f"double_buffer ({getattr(half, name)} words; plan it "
                                     f"with double_buffer_limits), not {need[name]}")
        shapes.append(tuple(int(v) for v in plan.out_shape))
    for i, shape in enumerate(shapes[1:]):
        c, _, w = shape
        if (is_pool[i] or is_cat[i]) and (w > MAX_EXTENT or c >= 1 << CHANNEL_BITS
                                          or w * c >= 1 << ROW_PITCH_BITS
                                          or c >= 1 << PIXEL_PITCH_BITS):
            raise ValueError(f"plans[{i}] output must fit the boxes and pitches, not {shape}")
    for i in range(len(plans)):
        if flat[i] and inputs[i] in view_of and shapes[inputs[i]][1:] != (1, 1):
            raise ValueError(f"plans[{i}] reads tensor {inputs[i]} as a vector, but it is a "
                             f"channel slice of concat tensor {view_of[inputs[i]][0]} "
                             f"(its pixels are not contiguous)")
    elem = precision // 8
    welems = [None if is_pool[i] or is_cat[i] else _weight_elem(plan, params, elem)
              for i, plan in enumerate(plans)]
    edge = max(params.rows, params.cols)
    registers = datapath_registers(params, limits)
    n_img = image_words(registers)
    if every and any(double_buffer):
        double_buffer = tuple(db and not (is_pool[i] and not _fits_halves(
            plan, shapes[inputs[i]], limits, params)) for i, (db, plan) in
            enumerate(zip(double_buffer, plans)))
    bands = [_pool_bands(plan, shapes[inputs[i]],
                         double_buffer_limits(limits) if double_buffer[i] else limits, params,
                         f"plans[{i}]")
             if is_pool[i] else None for i, plan in enumerate(plans)]
    # channels from one pixel to the next of each tensor (a concat's input: the concat's)
    pitch = [shapes[view_of[t][0]][0] if t in view_of else shape[0]
             for t, shape in enumerate(shapes)]
    # layers with instructions: all but the concatenations written wholly in place
    real = [i for i in range(len(plans)) if not is_cat[i] or cat_passes[i]]
    # each concat pass with its bands (its input: the source tensor)
    cat_passes = [[(s, c0, pl, _pool_bands(pl, shapes[s], limits, params,
                                           f"plans[{i}] pass of tensor {s}"))
                   for s, c0, pl in passes] for i, passes in enumerate(cat_passes)]

    # -- contents -------------------------------------------------------------------------
    # per conv layer and invocation its feature boxes
    conv = [i in real and not (is_pool[i] or is_cat[i]) for i in range(len(plans))]
    feats = [[_load_boxes(plan, inv, params.rows) for inv in plan.invocations]
             if conv[i] else [] for i, plan in enumerate(plans)]
    # the invocations in program order (:func:`_invocation_order`) and the loads the
    # buffers' halves make unnecessary (:func:`_reuse`)
    gaps = [2 if double_buffer[i] else 1 for i in range(len(plans))]
    orders, skips, wkey_of = [], [], []
    for i, plan in enumerate(plans):
        if not conv[i]:
            orders.append([])
            skips.append(([], []))
            wkey_of.append([])
            continue
        invs = plan.invocations
        fkeys = [tuple(boxes) for boxes in feats[i]]
        wkeys = [_weight_key(plan, inv) for inv in invs]
        fbytes = [sum(b[4] * b[5] * b[6] for b in boxes) * elem for boxes in feats[i]]
        wbytes = [inv.weight_words * edge * welems[i] for inv in invs]
        order = _invocation_order(invs, fkeys, wkeys, fbytes, wbytes, gaps[i])
        orders.append(order)
        wkey_of.append([wkeys[k] for k in order])      # per invocation, program order
        skips.append(_reuse(order, fkeys, wkeys, fbytes, wbytes, gaps[i])[:2])
    ordered = [[plan.invocations[k] for k in orders[i]] if conv[i] else []
               for i, plan in enumerate(plans)]
    feats = [[feats[i][k] for k in orders[i]] for i in range(len(plans))]
    # double buffering: invocation k of a layer owns half k mod 2 of the banked buffers (its
    # ``bank``), whose first words lie at ``halves`` (Winograd: the tile buffer's)
    banked = [[dataclasses.replace(inv, registers={**inv.registers,
                                                   "bank": k % 2 if double_buffer[i] else 0})
               for k, inv in enumerate(ordered[i])]
              for i, plan in enumerate(plans) if not (is_pool[i] or is_cat[i])]
    halves = {name: getattr(limits, name) // 2 for name in _BANKED}
    images = [word for invs in banked for inv in invs
              for word in pack_image(inv.registers, registers)]
    table_bytes = b"".join(v.to_bytes(IMAGE_WORD_BITS // 8, "little") for v in images)
    # per conv layer its distinct weight images, in order of first use (invocations with
    # one key share one): their keys and words
    wdistinct, wwords = [], []
    for i in range(len(plans)):
        words_of: dict = {}
        for inv, key in zip(ordered[i], wkey_of[i]):
            words_of.setdefault(key, inv.weight_words)
        wdistinct.append(list(words_of))
        wwords.append(list(words_of.values()))
    wts = []
    for i, (plan, w) in enumerate(zip(plans, weights)):
        got: dict = {}
        if image and conv[i]:
            for inv, key in zip(ordered[i], wkey_of[i]):
                b = _word_bytes(plan.weight_image(w, inv), welems[i], f"weights[{i}]")
                if got.setdefault(key, b) != b:
                    raise AssertionError(f"plans[{i}]: invocations with one weight key "
                                         f"{key} have different weight words")
        wts.append([got[key] for key in wdistinct[i]] if got else [])
    assert all(len(wb) == n * edge * we for wl, nl, we in zip(wts, wwords, welems)
               for wb, n in zip(wl, nl)), "weight_words disagrees with weight_image"
    x_bytes = tensor_bytes(x, elem) if image else b""
    stores = [[_output_boxes(plan, inv, params.cols) if inv.final else []
               for inv in ordered[i]] if conv[i] else []
              for i, plan in enumerate(plans)]
    # the zero area: the largest zero box read with its input tensor's pitches
    in_pitch = [None if is_cat[i] else
                (int(np.prod(shapes[inputs[i]])) if flat[i] else pitch[inputs[i]])
                for i in range(len(plans))]
    in_width = [None if is_cat[i] else (1 if flat[i] else shapes[inputs[i]][2])
                for i in range(len(plans))]
    zero_bytes = max([elem] + [((n - 1) * in_width[i] + k - 1) * in_pitch[i] * elem
                               + ch * elem
                               for i, per in enumerate(feats) for boxes in per
                               for src, _, _, _, n, k, ch, *_ in boxes if src == "zero"])

    # the quant-buffer images: per conv layer with a ChannelQuant, one per filter range
    slots = quant_lanes(params.cols)
    qranges = [sorted({tuple(inv.filters) for inv in ordered[i]}) if quant[i] is not None
               else [] for i in range(len(plans))]

    def qentries(inv):
        return -(-(inv.filters[1] - inv.filters[0]) // params.cols) * slots

    # -- layout: program, tables, zeros, weights, tensors ----------------------------------
    n_instr = (1 + len(_pieces(len(images))) + 1
               + sum(_pool_count(plans[i], bands[i]) for i in real if is_pool[i])
               + sum(_pool_count(pl, b) for passes in cat_passes for _, _, pl, b in passes)
               + sum(4 + (quant[i] is not None)
                     + sum((0 if sf else len(f))
                           + (0 if sw else len(_pieces(inv.weight_words))
                              + (len(_pieces(qentries(inv))) if quant[i] is not None else 0))
                           + 1 + len(s)
                           for f, inv, s, sf, sw in zip(feats[i], ordered[i], stores[i],
                                                        *skips[i]))
                     for i in real if conv[i]))
    at = base + _align(n_instr * INSTRUCTION_BYTES)
    tables = Segment(at, len(images), TABLE_LANES, 1)
    at = _align(at + tables.nbytes)
    zeros = Segment(at, zero_bytes, 1, 1)
    at = _align(at + zeros.nbytes)
    pad_segs = {}                   # a quantised layer's padding value → its area
    for v in sorted(set(pad_of) - {0}):
        pad_segs[v] = Segment(at, zero_bytes, 1, 1)
        at = _align(at + zero_bytes)
    quant_segs = []                 # per layer {filter range: segment}
    for i, ranges in enumerate(qranges):
        segs = {}
        for f0, f1 in ranges:
            segs[(f0, f1)] = Segment(at, -(-(f1 - f0) // params.cols) * slots,
                                     QUANT_ENTRY_BYTES, 1)
            at = _align(at + segs[(f0, f1)].nbytes)
        quant_segs.append(segs)
    weight_segs = []                # per layer its distinct weight images' segments
    for nl, we in zip(wwords, welems):
        segs = []
        for n in nl:
            segs.append(Segment(at, n, edge, we))
            at = _align(at + segs[-1].nbytes)
        weight_segs.append(tuple(segs))
    # per layer and invocation (program order) its weight segment
    wseg_of = []
    for i in range(len(plans)):
        seg_of = dict(zip(wdistinct[i], weight_segs[i]))
        wseg_of.append([seg_of[key] for key in wkey_of[i]])
    tensors: list = [None] * len(shapes)
    for t, shape in enumerate(shapes):
        if t not in view_of:
            tensors[t] = Tensor(at, shape, elem)
            at = _align(at + tensors[t].nbytes)
    for t, (parent, c0) in view_of.items():
        tensors[t] = Tensor(tensors[parent].dram + c0 * elem, shapes[t], elem, pitch[t])

    # -- program ----------------------------------------------------------------------------
    def tokens(pop, push):
        return {"pop": frozenset(pop), "push": frozenset(push)}

    def after(li):
        """The engine layer li's last store hands the layer boundary to (none: the last)."""
        later = [j for j in real if j > li]
        return ({Engine.POOL if is_pool[later[0]] or is_cat[later[0]] else Engine.COMPUTE}
                if later else set())

    prog: list[Instruction] = [
        LoadSetup(buf=Buffer.TABLE, elem=1, row_pitch=0, px_pitch=TABLE_LANES),
    ]
    prog += [LoadTile(buf=Buffer.TABLE, dram=tables.dram + o * TABLE_LANES, addr=o, rows=1,
                      cols=n, ch=TABLE_LANES) for o, n in _pieces(tables.words)]
    computes = []
    image_at = 0
    banked_of = iter(banked)
    # a double-buffered conv layer right after another loads its first invocation's weights
    # before the layer boundary (module docstring, "Double buffering")
    conv_db = [double_buffer[i] and not (is_pool[i] or is_cat[i]) for i in range(len(plans))]
    prefetch = [False] * len(plans)
    prefetch_after = [False] * len(plans)
    for a, b in zip(real, real[1:]):
        if conv_db[a] and conv_db[b]:
            prefetch[b] = prefetch_after[a] = True
    layer_of = [-1] * len(prog)                 # per instruction its layer (−1: none)
    for li in real:
        layer_of += [layer_of[-1]] * (len(prog) - len(layer_of))   # the previous layer's
        layer_of.append(li)                     # every layer emits a setup first
        plan = plans[li]
        t_in = None if is_cat[li] else tensors[inputs[li]]
        t_out = tensors[li + 1]
        chained = li != real[0]
        # the previous layer's last store → this layer's setup → this layer's first load
        boundary = tokens({Engine.STORE} if chained else (), {Engine.LOAD} if chained else ())
        if is_cat[li]:
            # the passes, one after the other as pool layers are: each into its slice
            for k, (s, c0, pl, b) in enumerate(cat_passes[li]):
                view = Tensor(t_out.dram + c0 * elem, shapes[s], elem, t_out.shape[0])
                more = k < len(cat_passes[li]) - 1
                prog += _pool_program(pl, b, tensors[s], view, None, params, True,
                                      {Engine.POOL} if more else after(li),
                                      tokens({Engine.STORE}, {Engine.LOAD}) if k else boundary,
                                      tokens)
            continue
        if is_pool[li]:
            prog += _pool_program(plan, bands[li], t_in, t_out,
                                  tensors[plan.source] if plan.mode == "add" else None,
                                  params, chained, after(li), boundary, tokens,
                                  halves if double_buffer[li] else None)
            continue
        if flat[li]:
            t_in = t_in.flat()
        invs = next(banked_of)
        n_inv = len(invs)
        # the previous user of this invocation's buffers: invocation k − 2 when double
        # buffered (the other half is k − 1's), else k − 1
        gap = 2 if double_buffer[li] else 1
        fbase = halves["tile_words" if plan.algorithm == "winograd" else "feature_words"]
        welem = welems[li]
        pad_area = pad_segs.get(pad_of[li], zeros)

        def weight_loads(k, inv, bank):
            """Invocation k's weight (and quant) load fields, unless its half holds them."""
            if skips[li][1][k]:
                return []
            seg = wseg_of[li][k]
            out = [{"buf": Buffer.WEIGHT, "dram": seg.dram + o * edge * welem,
                    "addr": o + bank * halves["weight_words"], "rows": 1, "cols": n,
                    "ch": edge} for o, n in _pieces(seg.words)]
            if quant[li] is not None:
                # the filters' entries go with their weights (the same half, kept alike)
                qseg = quant_segs[li][tuple(inv.filters)]
                qbase = bank * -(-limits.max_n // params.cols) * slots
                out += [{"buf": Buffer.QUANT, "dram": qseg.dram + o * QUANT_ENTRY_BYTES,
                         "addr": qbase + o, "rows": 1, "cols": n, "ch": QUANT_ENTRY_BYTES}
                        for o, n in _pieces(qseg.words)]
            return out

        setups = [LoadSetup(buf=Buffer.WEIGHT, elem=welem, row_pitch=0,
                            px_pitch=edge * welem)]
        if quant[li] is not None:
            setups.append(LoadSetup(buf=Buffer.QUANT, elem=1, row_pitch=0,
                                    px_pitch=QUANT_ENTRY_BYTES))
        prog += setups
        if prefetch[li]:
            # the first invocation's weights load before the layer boundary, once the
            # previous layer's last compute on their half is done (it pushes compute → load)
            early = weight_loads(0, invs[0], invs[0].registers["bank"])
            prog += [LoadTile(**fields, **tokens({Engine.COMPUTE} if j == 0 else (), ()))
                     for j, fields in enumerate(early)]
        prog += [LoadSetup(buf=Buffer.FEATURE, elem=elem, row_pitch=t_in.row_pitch,
                           px_pitch=t_in.px_pitch),
                 StoreSetup(elem=elem, row_pitch=t_out.row_pitch, px_pitch=t_out.px_pitch),
                 ComputeSetup(images=image_at, **boundary)]
        image_at += len(invs) * n_img
        # the next layer's first weights load early: this layer's last compute on half 0
        # hands it half 0 of the weight buffer
        hand_on = (max(k for k in range(n_inv) if invs[k].registers["bank"] == 0)
                   if prefetch_after[li] else None)
        for k, inv in enumerate(invs):
            bank = inv.registers["bank"]
            skip_f = skips[li][0][k]
            loads = [_feature_load(pad_area.dram if src == "zero" else t_in.address(c0, y, x),
                                   addr + bank * fbase, n, cols, ch, tile, slot, wpitch,
                                   params.rows)
                     for src, y, x, c0, n, cols, ch, addr, tile, slot, wpitch in
                     ([] if skip_f else feats[li][k])]
            if not (k == 0 and prefetch[li]):
                loads += weight_loads(k, inv, bank)
            for j, fields in enumerate(loads):
                # the first load waits for the layer boundary, or for the compute that last
                # read its half
                first = j == 0 and ((chained and k == 0) or k >= gap)
                prog.append(LoadTile(**fields, **tokens({Engine.COMPUTE} if first else (),
                                                        {Engine.COMPUTE}
                                                        if j == len(loads) - 1 else ())))
            pop = {Engine.LOAD} | ({Engine.STORE} if k >= gap and invs[k - gap].final
                                   else set())
            push = ({Engine.STORE} if inv.final else set()) | \
                ({Engine.LOAD} if k + gap < n_inv or k == hand_on else set())
            prog.append(ComputeTile(image=k * n_img, **tokens(pop, push)))
            computes.append((plan, inv))
            boxes = stores[li][k]
            # the store hands its half to the compute that next writes it; the layer's last
            # store hands the layer boundary on (double buffered, the one before it
            # pushes nothing: the store engine runs in order)
            last_push = ({Engine.COMPUTE} if k + gap < n_inv else
                         after(li) if k == n_inv - 1 else set())
            for j, (y, x, f0, n, cols, ch, addr, tile, slot) in enumerate(boxes):
                prog.append(StoreTile(dram=t_out.address(f0, y, x),
                                      addr=addr + bank * halves["out_words"], rows=n,
                                      cols=cols, ch=ch, tile=tile, slot=slot,
                                      **tokens({Engine.COMPUTE} if j == 0 else (),
                                               last_push if j == len(boxes) - 1 else ())))
    layer_of += [layer_of[-1]] * (len(prog) - len(layer_of)) + [-1]
    prog.append(Finish())
    assert len(prog) == n_instr == len(layer_of), (len(prog), n_instr, len(layer_of))
    check_tokens(prog, token_depth)

    # -- bytes --------------------------------------------------------------------------
    extra = dict(pads=tuple(pad_segs.items()),
                 quant=tuple(tuple(segs.values()) for segs in quant_segs))
    if not image:
        return NetworkProgram(plans, tuple(prog), b"", base, tables, zeros,
                              tuple(weight_segs), tuple(tensors), tuple(computes), n_img,
                              token_depth, inputs, tuple(layer_of), at - base, **extra)
    image = bytearray(at - base)
    code = b"".join(inst.encode().to_bytes(INSTRUCTION_BYTES, "little") for inst in prog)
    image[:len(code)] = code
    blobs = [(tables.dram, table_bytes), (tensors[0].dram, x_bytes)]
    blobs += [(seg.dram, wb) for segs, wl in zip(weight_segs, wts) for seg, wb in zip(segs, wl)]
    blobs += [(seg.dram, bytes([v & 0xFF]) * seg.nbytes) for v, seg in pad_segs.items()]
    blobs += [(seg.dram, _quant_image(quant[i], rng, params.cols))
              for i, segs in enumerate(quant_segs) for rng, seg in segs.items()]
    for dram, blob in blobs:
        image[dram - base:dram - base + len(blob)] = blob
    return NetworkProgram(plans, tuple(prog), bytes(image), base, tables, zeros,
                          tuple(weight_segs), tuple(tensors), tuple(computes), n_img,
                          token_depth, inputs, tuple(layer_of), at - base, **extra)


def _inputs(inputs, plans, is_cat) -> tuple:
    """``build_network_program``'s ``inputs``, checked (default: the chain)."""
    if inputs is None:
        return tuple(None if cat else i for i, cat in enumerate(is_cat))
    if isinstance(inputs, (str, bytes)) or not hasattr(inputs, "__len__") or \
            len(inputs) != len(plans):
        raise ValueError(f"inputs must hold one tensor index per plan ({len(plans)}), not "
                         f"{inputs!r:.60}")
    out = []
    for i, (t, cat) in enumerate(zip(inputs, is_cat)):
        if cat:
            if t is not None:
                raise ValueError(f"inputs[{i}] must be None for a concat layer, not {t!r}")
        elif isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t <= i:
            raise ValueError(f"inputs[{i}] must be a tensor index from 0 (the input) to {i} "
                             f"(the previous layer's output), not {t!r}")
        out.append(None if cat else int(t))
    return tuple(out)


def _pool_program(layer: PoolLayer, bands, t_in: Tensor, t_out: Tensor, t_aux,
                  params: OverlayParams, chained: bool, last_push: set, boundary: dict,
                  tokens, halves: dict | None = None) -> list:
    """A pool layer's instructions (module docstring, "Pool layers" and "Tokens"): input
    pixels of ⌈C / rows⌉ feature (and aux) words, output pixels of ⌈C / cols⌉ output words.
    With ``halves`` (the half buffers' words, double-buffered) band b owns half b mod 2 of
    the feature, aux and output buffers, and its tokens skip a band as a double-buffered
    conv layer's skip an invocation."""
    c, _, w = t_in.shape
    _, _, ow = t_out.shape
    cw, ocw = -(-c // params.rows), -(-c // params.cols)
    mult, shift, mult2 = layer.numerics(t_in.shape)
    kh, kw = layer.kernel
    prog = [LoadSetup(buf=Buffer.FEATURE, elem=t_in.elem, row_pitch=t_in.row_pitch,
                      px_pitch=t_in.px_pitch)]
    if t_aux is not None:
        prog.append(LoadSetup(buf=Buffer.AUX, elem=t_aux.elem, row_pitch=t_aux.row_pitch,
                              px_pitch=t_aux.px_pitch))
    prog.append(StoreSetup(elem=t_out.elem, row_pitch=t_out.row_pitch, px_pitch=t_out.px_pitch))
    mode = PoolMode(layer.mode)
    if layer.qadd:
        # the QLinearAdd settings, held by the engine for the tiles after the setup
        r_a, r_b, f = layer.qadd
        prog.append(PoolQAdd(r_a=r_a, r_b=r_b, f=f))
        mode = PoolMode.QADD
    if layer.qgavg:
        prog.append(PoolRequant(**dict(layer.qgavg)))
        mode = PoolMode.QGAVG
    if layer.lut:
        prog += lut_instructions(layer.lut)
        mode = PoolMode.LUT
    prog.append(PoolSetup(mode=mode, kh=kh, kw=kw, stride=layer.stride, ch=c,
                          act=Activation.RELU if layer.relu else Activation.NONE, mult=mult,
                          shift=shift, mult2=mult2, **boundary))
    gap = 1 if halves is None else 2
    n_bands = len(bands)
    for b, (o0, o1, y0, y1, pad_t, pad_b) in enumerate(bands):
        half = b % 2 if halves is not None else 0
        if half:        # the aux buffer is as deep as the smaller of the two (OverlayTop)
            fh, oh_ = halves["feature_words"], halves["out_words"]
            base, out_base = {Buffer.FEATURE: fh, Buffer.AUX: min(fh, oh_)}, oh_
        else:
            base, out_base = {Buffer.FEATURE: 0, Buffer.AUX: 0}, 0
        loads = [(Buffer.FEATURE, t_in, y0 + o, n) for o, n in _pieces(y1 - y0)]
        if t_aux is not None:
            loads += [(Buffer.AUX, t_aux, y0 + o, n) for o, n in _pieces(y1 - y0)]
        for j, (buf, t, y, n) in enumerate(loads):
            # the first load waits for the layer boundary, or for the tile that last read
            # its half
            first = j == 0 and ((chained and b == 0) or b >= gap)
            prog.append(LoadTile(buf=buf, dram=t.address(0, y, 0),
                                 addr=base[buf] + (y - y0) * w * cw, rows=n, cols=w, ch=c,
                                 **tokens({Engine.POOL} if first else (),
                                          {Engine.POOL} if j == len(loads) - 1 else ())))
        windowed = layer.mode in ("max", "avg")
        pad_l, pad_r = layer.pads[2:] if windowed else (0, 0)
        prog.append(PoolTile(in_addr=base[Buffer.FEATURE], in2_addr=base[Buffer.AUX],
                             out_addr=out_base, rows=y1 - y0, cols=w,
                             pad_t=pad_t, pad_b=pad_b, pad_l=pad_l, pad_r=pad_r,
                             **tokens({Engine.LOAD} | ({Engine.STORE} if b >= gap else set()),
                                      {Engine.STORE} | ({Engine.LOAD} if b + gap < n_bands
                                                        else set()))))
        boxes = _pieces(o1 - o0)
        # the stores hand their half to the tile that next writes it; the layer's last
        # store hands the layer boundary on (double-buffered, the band before it pushes
        # nothing: the store engine runs in order)
        band_push = ({Engine.POOL} if b + gap < n_bands else
                     last_push if b == n_bands - 1 else set())
        for j, (o, n) in enumerate(boxes):
            push = band_push if j == len(boxes) - 1 else ()
            prog.append(StoreTile(dram=t_out.address(0, o0 + o, 0),
                                  addr=out_base + o * ow * ocw, rows=n,
                                  cols=ow, ch=c, **tokens({Engine.POOL} if j == 0 else (),
                                                          push)))
    return prog


def build_layer_program(plan, x, w, params: OverlayParams, limits: DatapathLimits, *,
                        base: int = 0, token_depth: int = 2) -> NetworkProgram:
    """The program and DRAM image of one planned layer: :func:`build_network_program` of
    ``[plan]`` with weights ``[w]`` (same parameters and errors)."""
    return build_network_program([plan], x, [w], params, limits, base=base,
                                 token_depth=token_depth)


def instruction_cycles(lp: NetworkProgram, params: OverlayParams, *, latency: int = 0,
                       mult_latency: int = DEFAULT_MULT_LATENCY,
                       bandwidth: int = 0) -> list[int]:
    """Each instruction's cycles from its command transfer to its ``done`` (the controller's
    convention, ``dse.compiler.asm.schedule``'s ``cycles``), with a memory of ``latency`` cycles that
    never stalls (module docstring), moving ``bandwidth``/256 bytes a cycle (0: a beat a
    cycle; ``dse.cost.dma``'s ``bytes_per_cycle``, a model: a load and a store that overlap
    share the memory's bandwidth in the DRAM model, each has all of it here)."""
    if not isinstance(lp, NetworkProgram):
        raise TypeError(f"lp must be a NetworkProgram, not {lp!r:.60}")
    lanes = {Buffer.FEATURE: params.rows, Buffer.WEIGHT: max(params.rows, params.cols),
             Buffer.TABLE: TABLE_LANES, Buffer.AUX: params.rows,
             Buffer.QUANT: QUANT_ENTRY_BYTES}
    setups: dict = {}
    computes = iter(lp.computes)
    out = []
    dma: dict = {}                              # DMA cycles by box shape and beat offset
    beat = params.bus_bits // 8
    for inst in lp.program:
        if isinstance(inst, (LoadSetup, StoreSetup, ComputeSetup, PoolSetup, PoolQAdd,
                             PoolRequant, PoolLut)):
            if isinstance(inst, LoadSetup):
                setups[inst.buf] = inst
            elif isinstance(inst, StoreSetup):
                setups["store"] = inst
            elif isinstance(inst, PoolSetup):
                setups["pool"] = inst
            out.append(0)
        elif isinstance(inst, PoolTile):
            s = setups["pool"]
            out.append(int(pool_cycles(s.mode, inst.rows, inst.cols,
                                       -(-s.ch // pool_lanes(params)),
                                       s.kh, s.kw, s.stride,
                                       (inst.pad_t, inst.pad_b, inst.pad_l, inst.pad_r))))
        elif isinstance(inst, (LoadTile, StoreTile)):
            load = isinstance(inst, LoadTile)
            s = setups[inst.buf] if load else setups["store"]
            # a tile-mode store: a pixel's winograd_lanes elements a word (module docstring)
            n_lanes = ((2 if inst.wide else 1) * lanes[inst.buf] if load else
                       params.winograd_lanes if inst.tile else params.cols)
            # the cycles depend on the address only through its offset in a beat (and, with a
            # read latency, in an AXI boundary, where the bursts split): boxes of one shape
            # and offset (most of a layer's) are costed once.  The memory's latency is a
            # read latency: it answers a write burst the cycle after its last beat
            waits = load and latency
            key = (load, inst.dram % (AXI_BOUNDARY if waits else beat), inst.rows, inst.cols,
                   inst.ch, s.elem, s.row_pitch, s.px_pitch, n_lanes)
            if key not in dma:
                f = load_tile_cycles if load else store_tile_cycles
                dma[key] = int(f(inst.dram, inst.rows, inst.cols, inst.ch, s.elem,
                                 s.row_pitch, s.px_pitch, params.bus_bits, n_lanes,
                                 latency=latency if load else 0,
                                 bytes_per_cycle=Fraction(bandwidth, 256) if bandwidth
                                 else None)) - 1
            out.append(dma[key])
        elif isinstance(inst, ComputeTile):
            plan, inv = next(computes)
            dp_cycles = plan.invocation_cycles(inv, params.rows, params.cols,
                                               mult_latency)["cycles"]
            out.append(int(image_load_cycles(lp.image_words)) + dp_cycles + 1)
        elif isinstance(inst, Finish):
            out.append(FINISH_CYCLES)
        else:           # a legal instruction the top cannot run yet: a bad value
            raise ValueError(f"program must hold load, compute, pool, store and "  # noqa: TRY004
                             f"finish instructions only, not {inst.MNEMONIC}")
    return out


def decode_output(lp: NetworkProgram, dram: bytes, base: int | None = None, *,
                  layer: int = -1) -> np.ndarray:
    """Layer ``layer``'s (by default the last's) N×OH×OW output tensor (int64) read from
    ``dram``, a memory whose byte 0 is at address ``base`` (by default the image's)."""
    base = lp.base if base is None else base
    if isinstance(layer, bool) or not isinstance(layer, int) or \
            not -len(lp.plans) <= layer < len(lp.plans):
        raise ValueError(f"layer must be an index of the {len(lp.plans)} layers, not "
                         f"{layer!r}")
    t = lp.tensors[1:][layer]
    c, h, w = t.shape
    end = t.dram + (h * w - 1) * t.px_pitch + c * t.elem     # past its last element
    raw = bytes(dram[t.dram - base:end - base])
    if len(raw) != end - t.dram:
        raise ValueError(f"dram must hold the output tensor up to address {end:#x}")
    raw += bytes(h * w * t.px_pitch - len(raw))               # a view's last pixel's tail
    pixels = np.frombuffer(raw, dtype=f"<i{t.elem}").reshape(h, w, -1)[:, :, :c]
    return pixels.astype(np.int64).transpose(2, 0, 1)
