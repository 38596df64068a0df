"""One conv layer as a program for the overlay top (``rtl/overlay_top.py``) and its DRAM image.

:func:`build_layer_program` turns a :class:`dse.compiler.ConvPlan` of one layer (planned with
the overlay's ``OverlayParams`` and ``DatapathLimits``), the layer's input ``x`` (C×H×W) and
weights ``w`` into

* a **DRAM image** (bytes, from a base address): the program's instruction words, the layer's
  register images (:func:`rtl.isa.pack_image` of each invocation's ``registers``, in
  :func:`rtl.params.datapath_registers` order, 16 bytes a word), then per invocation its
  feature-buffer and weight-buffer words exactly as :meth:`ConvPlan.feature_image` and
  :meth:`ConvPlan.weight_image` give them, then an output area of every invocation's
  ``out_words`` output-buffer words.  A buffer word is stored as its lanes, each lane one
  element of ``precision / 8`` bytes, little-endian, the words contiguous: a **pre-tiled**
  layout, so that every load and store is one dense box.  Reading the layer's real HWC
  tensor with strided box loads (the feature buffer filled from the tensor, halos and all)
  comes later, with the compiler that lays out whole networks;
* the **program** (``rtl.isa`` instruction objects): a ``load.setup`` per buffer kind
  (feature, weight, table), one ``load.tile buf=table`` of all register images,
  ``store.setup`` and ``compute.setup``, then per invocation ``load.tile`` of its feature
  and weight words, ``compute.tile`` naming its image, and ``store.tile`` of its output
  words; then ``finish``.

**Tokens.** The datapath owns its buffers: every invocation reads its feature and weight
words from word 0 and writes its outputs from word 0.  So besides the read-after-write
dependencies (the loads of an invocation before its compute: load → compute; its compute
before its store: compute → store) the program carries the write-after-read ones: the
loads of invocation i + 1 wait until the compute of invocation i has finished reading the
buffers (compute → load), and the compute of invocation i + 1 waits until the store of
invocation i has read the output buffer (store → compute).  The first load of an
invocation pops the compute → load token, its last load pushes load → compute; the
compute pops both, pushes compute → store and (but the last) compute → load; the store's
first tile pops compute → store, its last (but the last invocation's) pushes store →
compute.  In program order every queue holds at most one token, so the program passes
``dse.asm.check_tokens`` at any depth (it is checked at the given ``token_depth``).  The
table load precedes invocation 0's loads on the load engine, so the first compute's
load → compute token also covers the images.

A box has at most 4095 pixels (``rtl.isa.EXTENT_BITS``); a longer run of words is cut into
several ``load.tile`` / ``store.tile`` instructions (one word a pixel, ``rows`` = 1).

:func:`instruction_cycles` gives each instruction's cycles in the controller's convention
(``rtl/controller.py``: from the command's transfer to its engine's ``done``), for
``dse.asm.schedule``: the DMA formula (:mod:`dse.cost.dma`), less one (the formula counts
both ends), plus :data:`READ_ARBITER_CYCLES` for a load (the read arbiter's AR register);
the register-image load plus the datapath's cycles
(:meth:`ConvPlan.invocation_cycles`) plus one (the datapath's ``done`` is a register);
0 for the setups, which take no time; ``FINISH_CYCLES`` for ``finish``.

:func:`decode_output` reads the output area of a DRAM image back into the layer's
N×OH×OW output, as ``sim/bench/conv_tb.py`` does with the output buffers:
:meth:`ConvPlan.decode` of each invocation's words, then :meth:`ConvPlan.assemble`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dse.asm import check_tokens
from dse.cost.dma import load_tile_cycles, store_tile_cycles
from dse.cost.gemm import DEFAULT_MULT_LATENCY
from dse.cost.transforms import image_load_cycles
from rtl.isa import (
    EXTENT_BITS,
    IMAGE_WORD_BITS,
    INSTRUCTION_BYTES,
    Buffer,
    ComputeSetup,
    ComputeTile,
    Engine,
    Finish,
    Instruction,
    LoadSetup,
    LoadTile,
    StoreSetup,
    StoreTile,
    image_words,
    pack_image,
)
from rtl.params import DatapathLimits, OverlayParams, datapath_registers

__all__ = [
    "FINISH_CYCLES",
    "MAX_BOX_WORDS",
    "READ_ARBITER_CYCLES",
    "TABLE_LANES",
    "LayerProgram",
    "Segment",
    "build_layer_program",
    "decode_output",
    "instruction_cycles",
]

#: Lanes of a table-buffer word as the load engine fills it: 16 bytes of a 128-bit word.
TABLE_LANES = IMAGE_WORD_BITS // 8
#: Cycles ``finish`` takes in ``dse.asm.schedule``'s terms (``rtl.controller.FINISH_CYCLES``;
#: repeated here because ``dse`` must not import Amaranth).
FINISH_CYCLES = 1
#: Most buffer words one box moves here: one word a pixel, one row of pixels.
MAX_BOX_WORDS = (1 << EXTENT_BITS) - 1
#: Cycles the overlay top's read arbiter (``rtl.axi_arbiter.AxiReadArbiter``) adds to a
#: load: its AR register stands between the load engine and the memory.
READ_ARBITER_CYCLES = 1
#: Alignment of every region of the DRAM image (bytes): a 512-bit beat.
_ALIGN = 64

@dataclass(frozen=True)
class Segment:
    """A run of buffer words in DRAM.

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
class LayerProgram:
    """A layer's program and DRAM image (module docstring).

    Members
    -------
    plan:
        The :class:`dse.compiler.ConvPlan` it runs.
    program:
        The instructions, ``finish`` last.
    image:
        The DRAM image: byte i at address ``base`` + i.
    base:
        DRAM byte address of the image (and of the program, its first bytes).
    tables:
        The register images' segment.
    features, weights, outputs:
        Per invocation, its feature, weight and output segments.
    image_words:
        Words of one register image.
    token_depth:
        The token-queue depth the program was checked at.
    """

    plan: object
    program: tuple
    image: bytes
    base: int
    tables: Segment
    features: tuple
    weights: tuple
    outputs: tuple
    image_words: int
    token_depth: int

    @property
    def program_addr(self) -> int:
        """DRAM byte address of the program's first word."""
        return self.base


def _align(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _word_bytes(words: np.ndarray, elem: int) -> bytes:
    """``(n, lanes)`` integers as n·lanes little-endian signed ``elem``-byte elements."""
    arr = np.asarray(words, dtype=np.int64)
    lo, hi = -(1 << (8 * elem - 1)), (1 << (8 * elem - 1)) - 1
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(f"buffer words must fit {8 * elem}-bit elements, not "
                         f"{int(arr.min())} … {int(arr.max())}")
    return arr.astype(f"<i{elem}").tobytes()


def _pieces(seg: Segment):
    """(word offset, words) of the boxes that move ``seg``."""
    return [(o, min(MAX_BOX_WORDS, seg.words - o)) for o in range(0, seg.words, MAX_BOX_WORDS)]


def build_layer_program(plan, x, w, params: OverlayParams, limits: DatapathLimits, *,
                        base: int = 0, token_depth: int = 2) -> LayerProgram:
    """The program and DRAM image of one planned layer (module docstring).

    Parameters
    ----------
    plan:
        ``dse.compiler.plan_conv(layer, algorithm, dataflow, params, limits, ...)`` of an
        im2col or kn2row layer.
    x, w:
        The layer's input C×H×W and weights N×C/g×R×S, integers of the plan's precision.
    params, limits:
        The overlay the plan was made for (they fix the register layout and the lanes).
    base:
        DRAM byte address of the image, a multiple of 64.
    token_depth:
        Depth of the controller's token queues, for ``dse.asm.check_tokens``.

    Raises
    ------
    TypeError, ValueError
        For arguments of the wrong kind, a plan of another algorithm or array, or data that
        does not fit the precision.
    """
    if not isinstance(params, OverlayParams):
        raise TypeError(f"params must be an OverlayParams, not {params!r}")
    if not isinstance(limits, DatapathLimits):
        raise TypeError(f"limits must be a DatapathLimits, not {limits!r}")
    if getattr(plan, "algorithm", None) not in ("im2col", "kn2row"):
        raise ValueError(f"plan must be an im2col or kn2row plan, not "
                         f"{getattr(plan, 'algorithm', plan)!r}")
    if (plan.rows, plan.cols) != (params.rows, params.cols):
        raise ValueError(f"plan must be for a {params.rows}x{params.cols} array, not "
                         f"{plan.rows}x{plan.cols}")
    if isinstance(base, bool) or not isinstance(base, int) or base < 0 or base % _ALIGN:
        raise ValueError(f"base must be a non-negative multiple of {_ALIGN}, not {base!r}")
    if plan.precision not in (8, 16):
        raise ValueError(f"plan precision must be 8 or 16, not {plan.precision}")
    elem = plan.precision // 8
    edge = max(params.rows, params.cols)
    registers = datapath_registers(params, limits)
    n_img = image_words(registers)
    invs = plan.invocations

    # -- contents -------------------------------------------------------------------------
    images = [word for inv in invs for word in pack_image(inv.registers, registers)]
    table_bytes = b"".join(v.to_bytes(IMAGE_WORD_BITS // 8, "little") for v in images)
    feats = [_word_bytes(plan.feature_image(x, inv), elem) for inv in invs]
    wts = [_word_bytes(plan.weight_image(w, inv), elem) for inv in invs]

    # -- layout: program, tables, per invocation feature + weights, outputs ---------------
    f_words = [len(f) // (params.rows * elem) for f in feats]
    w_words = [len(wb) // (edge * elem) for wb in wts]

    def boxes(words):
        return len(_pieces(Segment(0, words, 1, 1)))

    n_instr = (3 + boxes(len(images)) + 2 + 1
               + sum(boxes(fw) + boxes(ww) + 1 + boxes(inv.out_words)
                     for fw, ww, inv in zip(f_words, w_words, invs)))
    at = base + _align(n_instr * INSTRUCTION_BYTES)
    tables = Segment(at, len(images), TABLE_LANES, 1)
    at = _align(at + tables.nbytes)
    features, weights, outputs = [], [], []
    for fw, ww in zip(f_words, w_words):
        features.append(Segment(at, fw, params.rows, elem))
        at = _align(at + features[-1].nbytes)
        weights.append(Segment(at, ww, edge, elem))
        at = _align(at + weights[-1].nbytes)
    for inv in invs:
        outputs.append(Segment(at, inv.out_words, params.cols, elem))
        at = _align(at + outputs[-1].nbytes)

    # -- program ----------------------------------------------------------------------------
    prog: list[Instruction] = [
        LoadSetup(buf=Buffer.FEATURE, elem=elem, row_pitch=0, px_pitch=params.rows * elem),
        LoadSetup(buf=Buffer.WEIGHT, elem=elem, row_pitch=0, px_pitch=edge * elem),
        LoadSetup(buf=Buffer.TABLE, elem=1, row_pitch=0, px_pitch=TABLE_LANES),
    ]
    prog += [LoadTile(buf=Buffer.TABLE, dram=tables.dram + o * TABLE_LANES, addr=o, rows=1,
                      cols=n, ch=TABLE_LANES) for o, n in _pieces(tables)]
    prog += [StoreSetup(elem=elem, row_pitch=0, px_pitch=params.cols * elem),
             ComputeSetup(images=0)]
    last = len(invs) - 1
    for i, inv in enumerate(invs):
        loads = []
        for buf, seg in ((Buffer.FEATURE, features[i]), (Buffer.WEIGHT, weights[i])):
            loads += [{"buf": buf, "dram": seg.dram + o * seg.lanes * seg.elem, "addr": o,
                       "rows": 1, "cols": n, "ch": seg.lanes} for o, n in _pieces(seg)]
        for j, fields in enumerate(loads):
            pop = {Engine.COMPUTE} if (j == 0 and i > 0) else set()
            push = {Engine.COMPUTE} if j == len(loads) - 1 else set()
            prog.append(LoadTile(**fields, pop=frozenset(pop), push=frozenset(push)))
        pop = {Engine.LOAD} | ({Engine.STORE} if i > 0 else set())
        push = {Engine.STORE} | ({Engine.LOAD} if i < last else set())
        prog.append(ComputeTile(image=i * n_img, pop=frozenset(pop), push=frozenset(push)))
        stores = _pieces(outputs[i])
        for j, (o, n) in enumerate(stores):
            pop = {Engine.COMPUTE} if j == 0 else set()
            push = {Engine.COMPUTE} if (j == len(stores) - 1 and i < last) else set()
            prog.append(StoreTile(dram=outputs[i].dram + o * outputs[i].lanes * elem, addr=o,
                                  rows=1, cols=n, ch=outputs[i].lanes, pop=frozenset(pop),
                                  push=frozenset(push)))
    prog.append(Finish())
    assert len(prog) == n_instr, (len(prog), n_instr)
    check_tokens(prog, token_depth)

    # -- bytes --------------------------------------------------------------------------
    image = bytearray(at - base)
    code = b"".join(inst.encode().to_bytes(INSTRUCTION_BYTES, "little") for inst in prog)
    image[:len(code)] = code
    image[tables.dram - base:tables.dram - base + len(table_bytes)] = table_bytes
    for seg, blob in zip(features + weights, feats + wts):
        image[seg.dram - base:seg.dram - base + len(blob)] = blob
    return LayerProgram(plan, tuple(prog), bytes(image), base, tables, tuple(features),
                        tuple(weights), tuple(outputs), n_img, token_depth)


def instruction_cycles(lp: LayerProgram, params: OverlayParams, *, latency: int = 0,
                       mult_latency: int = DEFAULT_MULT_LATENCY) -> list[int]:
    """Each instruction's cycles from its command transfer to its ``done`` (the controller's
    convention, ``dse.asm.schedule``'s ``cycles``), with a memory of ``latency`` cycles that
    never stalls (module docstring)."""
    plan = lp.plan
    lanes = {Buffer.FEATURE: params.rows, Buffer.WEIGHT: max(params.rows, params.cols),
             Buffer.TABLE: TABLE_LANES}
    setups: dict = {}
    out = []
    for inst in lp.program:
        if isinstance(inst, (LoadSetup, StoreSetup, ComputeSetup)):
            if isinstance(inst, LoadSetup):
                setups[inst.buf] = inst
            elif isinstance(inst, StoreSetup):
                setups["store"] = inst
            out.append(0)
        elif isinstance(inst, LoadTile):
            s = setups[inst.buf]
            out.append(int(load_tile_cycles(inst.dram, inst.rows, inst.cols, inst.ch, s.elem,
                                            s.row_pitch, s.px_pitch, params.bus_bits,
                                            lanes[inst.buf], latency=latency))
                       - 1 + READ_ARBITER_CYCLES)
        elif isinstance(inst, StoreTile):
            s = setups["store"]
            out.append(int(store_tile_cycles(inst.dram, inst.rows, inst.cols, inst.ch, s.elem,
                                             s.row_pitch, s.px_pitch, params.bus_bits,
                                             params.cols, latency=latency)) - 1)
        elif isinstance(inst, ComputeTile):
            inv = plan.invocations[inst.image // lp.image_words]
            dp_cycles = plan.invocation_cycles(inv, params.rows, params.cols,
                                               mult_latency)["cycles"]
            out.append(int(image_load_cycles(lp.image_words)) + dp_cycles + 1)
        elif isinstance(inst, Finish):
            out.append(FINISH_CYCLES)
        else:           # a legal instruction the top cannot run yet: a bad value
            raise ValueError(f"program must hold load, compute, store and finish "  # noqa: TRY004
                             f"instructions only, not {inst.MNEMONIC}")
    return out


def decode_output(lp: LayerProgram, dram: bytes, base: int | None = None) -> np.ndarray:
    """The layer's N×OH×OW output (int64) from the output area of ``dram`` (a memory whose
    byte 0 is at address ``base``, by default the image's)."""
    base = lp.base if base is None else base
    plan = lp.plan
    parts = []
    for inv, seg in zip(plan.invocations, lp.outputs):
        raw = bytes(dram[seg.dram - base:seg.dram - base + seg.nbytes])
        if len(raw) != seg.nbytes:
            raise ValueError(f"dram must hold the output area up to address "
                             f"{seg.dram + seg.nbytes:#x}")
        words = np.frombuffer(raw, dtype=f"<i{seg.elem}").astype(np.int64)
        parts.append(plan.decode(words.reshape(seg.words, seg.lanes), inv))
    return plan.assemble(parts)
