"""Instruction set of the overlay: formats, encoding and decoding.

This module must not import Amaranth: the compiler and the assembler (``dse``), the hardware
decoder (``rtl``) and the documentation all read the formats from here, and each format is
written down once, as a frozen dataclass whose fields carry their width, range and meaning.
The bit layout, :meth:`Instruction.encode`, :func:`decode` and the tables of docs/isa.md are
derived from those declarations.

Every instruction is :data:`INSTRUCTION_BITS` (128) bits wide.  Bits 3:0 hold the opcode;
an engine's instruction then holds its token flags, ``pop`` (bits 5:4) and ``push``
(bits 7:6), one bit per neighbouring engine (:data:`NEIGHBOURS`), and its own fields packed
upwards from bit 8 in declaration order.  Every bit no field covers is reserved and must be
zero.  Anything else is illegal: :func:`decode` raises :class:`IllegalInstruction` (the
hardware sets its error flag and stops).  Opcode 0 is illegal on purpose, so that a
program counter running into zeroed memory stops at once.

Four engines run their own instructions in order: ``load`` (DRAM → on-chip buffers),
``compute`` (the conv datapath on a tile), ``pool`` (pooling, element-wise add, rescale) and
``store`` (output buffer → DRAM).  Each has a layer-constant ``*.setup`` instruction and a
per-tile ``*.tile`` instruction that carries only addresses, extents and pads (the compute
engine's settings are register images the compiler wrote, :func:`pack_image`); ``finish``
ends the program.  Dependencies between engines are tokens on small FIFOs, one per ordered
pair of neighbours: an instruction pops a token from each neighbour named in ``pop`` before
it starts, and pushes one to each neighbour named in ``push`` when it ends, so an engine's
timeline is ``start = max(own previous end, token arrival)``.

Field values are checked at construction (``TypeError`` for the wrong kind, ``ValueError``
for a bad value), with messages "*mnemonic field* must be *constraint*, not *value*".
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
import sys
from dataclasses import MISSING, dataclass, field
from collections.abc import Iterable
from typing import Any, ClassVar

from rtl.params import (AXI_BOUNDARY, AXI_MAX_BEATS, BUS_BITS, FLOAT32_MANTISSA_BITS,
                        QADD_SETTING_BITS, REQUANT_MULT_BITS, REQUANT_SHIFT_BITS)

__all__ = ["INSTRUCTION_BITS", "INSTRUCTION_BYTES", "OPCODE_BITS", "FetchGeometry",
           "DRAM_ADDR_BITS", "BUF_ADDR_BITS", "EXTENT_BITS", "CHANNEL_BITS", "SMALL_BITS", "ROW_PITCH_BITS",
           "PIXEL_PITCH_BITS", "TILE_SLOT_BITS", "Engine", "Buffer", "Activation", "PoolMode",
           "NEIGHBOURS", "Field", "Instruction", "EngineInstruction", "IllegalInstruction",
           "LoadSetup", "LoadTile", "ComputeSetup", "ComputeTile", "PoolSetup", "PoolQAdd", "PoolRequant",
           "PoolTile", "PoolLut", "lut_instructions", "LUT_ENTRIES", "LUT_ENTRIES_PER_INSTRUCTION", "LUT_INSTRUCTIONS",
           "StoreSetup", "StoreTile", "Finish", "INSTRUCTIONS", "BY_MNEMONIC", "BY_OPCODE",
           "decode", "opcode_table", "field_table", "render_doc_tables",
           "IMAGE_WORD_BITS", "image_words", "pack_image", "unpack_image"]

#: Width of one instruction: a power of two, so instructions sit at aligned addresses and
#: one 128-bit AXI beat (the default ``bus_bits``) carries exactly one; 64 bits cannot hold
#: a 40-bit DRAM address together with a buffer address, a 3-D tile extent and the tokens.
INSTRUCTION_BITS = 128
#: Bytes of one instruction in a program image (little-endian).
INSTRUCTION_BYTES = INSTRUCTION_BITS // 8
#: Width of the opcode, bits 3:0 of every instruction.
OPCODE_BITS = 4
#: DRAM byte addresses: 1 TiB, which covers the Zynq UltraScale+ upper DDR window
#: (0x8_0000_0000 and up) and the DDR of the Alveo cards.
DRAM_ADDR_BITS = 40


@dataclass(frozen=True)
class FetchGeometry:
    """How the fetch unit (``rtl.fetch.InstructionFetch``) reads a program on a
    ``bus_bits``-wide AXI4 port with a credit of ``prefetch_words`` words: the RTL and the
    compiler's timing model (``dse.compiler.asm.schedule``) both read these."""

    bus_bits: int
    prefetch_words: int

    def __post_init__(self):
        if self.bus_bits not in BUS_BITS:
            raise ValueError(f"bus_bits must be one of {', '.join(map(str, BUS_BITS))}, not "
                             f"{self.bus_bits!r}")
        if (isinstance(self.prefetch_words, bool) or not isinstance(self.prefetch_words, int)
                or self.prefetch_words < self.words_per_beat):
            raise ValueError(f"prefetch_words must be an integer of at least "
                             f"{self.words_per_beat} (the words of one beat), not "
                             f"{self.prefetch_words!r}")

    @property
    def words_per_beat(self) -> int:
        """Instruction words one beat carries (1 on a 64- or 128-bit bus)."""
        return max(1, self.bus_bits // INSTRUCTION_BITS)

    @property
    def beats_per_word(self) -> int:
        """Beats one instruction word takes (2 on a 64-bit bus, else 1)."""
        return max(1, INSTRUCTION_BITS // self.bus_bits)

    @property
    def burst_beats(self) -> int:
        """Beats of a full burst: the largest power of two not above half the credit in
        beats (at least 1), at most 256 beats and at most 4 KiB."""
        credit_beats = self.prefetch_words * self.beats_per_word // self.words_per_beat
        limit = min(AXI_MAX_BEATS, AXI_BOUNDARY * 8 // self.bus_bits)
        half = max(1, credit_beats // 2)
        return min(1 << (half.bit_length() - 1), limit)


#: On-chip buffer word addresses: 2^20 words per buffer (a word is one buffer row of lanes).
BUF_ADDR_BITS = 20
#: Tile rows and columns: up to 4095 pixels each (a 224×224 input with any halo fits whole).
EXTENT_BITS = 12
#: Channels, filters and groups: up to 8191 (full-size networks have at most 4096).
CHANNEL_BITS = 13
#: Kernel sides, strides, dilations, pads and pool windows: up to 15.
SMALL_BITS = 4
#: DRAM bytes between consecutive rows of a tensor (up to 16 MiB − 1).
ROW_PITCH_BITS = 24
#: DRAM bytes between consecutive pixels of a tensor (up to 65535: 4096 channels × 4 bytes
#: fit four times over).
PIXEL_PITCH_BITS = 16
#: Element slots of a Winograd tile word a tile-mode box starts at: up to 63, enough for the
#: (m+2)² = 36 slots of F(4×4, 3×3).
TILE_SLOT_BITS = 6

_TOKEN_BITS = 2
#: Entries of the pool engine's ``lut`` table (one per int8 value) and those one ``pool.lut``
#: carries; a table takes :data:`LUT_INSTRUCTIONS` of them.
LUT_ENTRIES = 256
LUT_ENTRIES_PER_INSTRUCTION = 8
LUT_INSTRUCTIONS = LUT_ENTRIES // LUT_ENTRIES_PER_INSTRUCTION


class _Coded(str, enum.Enum):
    """A string enum whose run-time encoding is the member's index."""

    @property
    def code(self) -> int:
        """Encoding of the member in its instruction field."""
        return list(type(self)).index(self)


class Engine(_Coded):
    """The engines that execute instructions, each in its own program order."""

    LOAD = "load"
    COMPUTE = "compute"
    POOL = "pool"
    STORE = "store"


#: The two neighbours of each engine, in token-bit order: bit i of ``pop`` and ``push`` is
#: the token queue to or from ``NEIGHBOURS[engine][i]``.  The engines form a ring,
#: load → compute → store ← pool ← load: data flows from load through compute or pool to
#: store, and every edge carries a queue each way (the forward one says "data ready", the
#: backward one "buffer free").
NEIGHBOURS: dict[Engine, tuple[Engine, Engine]] = {
    Engine.LOAD: (Engine.COMPUTE, Engine.POOL),
    Engine.COMPUTE: (Engine.LOAD, Engine.STORE),
    Engine.POOL: (Engine.LOAD, Engine.STORE),
    Engine.STORE: (Engine.COMPUTE, Engine.POOL),
}


class Buffer(_Coded):
    """On-chip buffers the load engine fills."""

    FEATURE = "feature"   #: activations the conv datapath and the pool engine read
    WEIGHT = "weight"     #: B matrices, stored in DRAM in the buffer's own word order
    AUX = "aux"           #: the second operand of an element-wise add (a residual)
    TABLE = "table"       #: register images of the conv datapath's invocations
    QUANT = "quant"       #: per-channel requantisation entries (``requant`` f32 overlays)


class Activation(_Coded):
    """Activation applied after requantisation."""

    NONE = "none"
    RELU = "relu"


class PoolMode(_Coded):
    """Operations of the pool / element-wise engine."""

    MAX = "max"           #: max pooling, ``kh`` × ``kw`` windows
    AVG = "avg"           #: average pooling: window sum × mult / 2^shift
    GLOBAL_MAX = "gmax"   #: max over the whole tile, per channel
    GLOBAL_AVG = "gavg"   #: sum over the whole tile × mult / 2^shift, per channel
    ADD = "add"           #: element-wise a·mult + b·mult2, then / 2^shift
    RESCALE = "rescale"   #: a·mult / 2^shift (a change of scale, e.g. before a concat)
    QADD = "qadd"         #: onnxruntime's QLinearAdd of a and b (settings: ``pool.qadd``)
    QGAVG = "qgavg"       #: onnxruntime's QLinearGlobalAveragePool (settings: ``pool.requant``)
    LUT = "lut"           #: each element through a 256-entry table (entries: ``pool.lut``)


@functools.cache
def _enum_codes(kind: type[enum.Enum]) -> dict[int, enum.Enum]:
    """Code → member of an enum with a ``code`` property."""
    return {member.code: member for member in kind}  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Field:
    """One field of an instruction format.

    Parameters
    ----------
    name:
        The dataclass field (and the assembler's ``name=``), or ``opcode``.
    lsb, bits:
        Position of the least significant bit and width.
    doc:
        Meaning, for the documentation table.
    kind:
        ``"int"`` (the value is the code, ``lo`` ≤ value ≤ ``hi``), ``"bool"``, ``"enum"``
        (the member's ``code``), ``"choice"`` (the index of the value in ``choices``),
        ``"tokens"`` (a set of neighbouring engines) or ``"opcode"``.
    lo, hi:
        Inclusive range of an ``"int"`` field (``hi`` defaults to all ones).
    enum:
        The enum of an ``"enum"`` field.
    choices:
        The values of a ``"choice"`` field.
    hex:
        Written in hexadecimal by the disassembler (addresses).
    default, required:
        Value the assembler fills in when the field is left out, unless ``required``.
    """

    name: str
    lsb: int
    bits: int
    doc: str
    kind: str = "int"
    lo: int = 0
    hi: int | None = None
    enum: Any = None
    choices: tuple = ()
    hex: bool = False
    default: Any = None
    required: bool = True

    @property
    def msb(self) -> int:
        """Position of the most significant bit."""
        return self.lsb + self.bits - 1

    @property
    def mask(self) -> int:
        """The field's bits within the instruction word."""
        return ((1 << self.bits) - 1) << self.lsb

    @property
    def top(self) -> int:
        """Largest value of an ``"int"`` field."""
        return (1 << self.bits) - 1 if self.hi is None else self.hi

    def values_text(self) -> str:
        """The legal values, as the documentation lists them."""
        if self.kind == "int":
            return f"{self.lo} … {self.top}"
        if self.kind == "bool":
            return "0, 1"
        if self.kind == "enum":
            return ", ".join(f"{m.value} = {c}" for c, m in sorted(_enum_codes(self.enum).items()))
        if self.kind == "choice":
            return f"{', '.join(map(str, self.choices))} (code: the position)"
        return ""

    def check(self, value: Any, where: str, engine: Engine | None = None) -> Any:
        """Validate ``value`` for this field and return it in canonical form.

        Raises
        ------
        TypeError
            For a value of the wrong kind.
        ValueError
            For a value out of range, not among the choices, or (tokens) not a neighbour.
        """
        # the common case, a legal value, first: no message is built for it
        kind = self.kind
        if kind == "int" and type(value) is int and self.lo <= value <= self.top:
            return value
        if kind == "bool" and type(value) is bool:
            return value
        if (kind == "enum" and isinstance(value, self.enum)
                and value in _enum_codes(self.enum).values()):
            return value
        what = f"{where} {self.name}"
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{what} must be an integer, not {value!r}")
            if not self.lo <= value <= self.top:
                raise ValueError(f"{what} must be between {self.lo} and {self.top} "
                                 f"({self.bits} bits), not {value}")
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise TypeError(f"{what} must be a bool, not {value!r}")
            return value
        if self.kind == "enum":
            legal = _enum_codes(self.enum)
            names = ", ".join(m.value for m in legal.values())
            if isinstance(value, str) and not isinstance(value, self.enum):
                try:
                    value = self.enum(value)
                except ValueError:
                    raise ValueError(f"{what} must be one of {names}, not {value!r}") from None
            if not isinstance(value, self.enum):
                raise TypeError(f"{what} must be a {self.enum.__name__}, not {value!r}")
            if value not in legal.values():
                raise ValueError(f"{what} must be one of {names}, not {value.value!r}")
            return value
        if self.kind == "choice":
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{what} must be an integer, not {value!r}")
            if value not in self.choices:
                raise ValueError(f"{what} must be one of "
                                 f"{', '.join(map(str, self.choices))}, not {value}")
            return value
        if self.kind == "tokens":
            assert engine is not None
            items = [value] if isinstance(value, str) else value
            try:
                items = list(items)
            except TypeError:
                raise TypeError(f"{what} must be a set of engines, not {value!r}") from None
            out = set()
            near = NEIGHBOURS[engine]
            for item in items:
                if not isinstance(item, str):
                    raise TypeError(f"{what} must be a set of engines, not {value!r}")
                name = item.value if isinstance(item, Engine) else item
                if name not in (near[0].value, near[1].value):
                    raise ValueError(f"{what} must name neighbours of {engine.value} "
                                     f"({near[0].value}, {near[1].value}), not {name!r}")
                out.add(Engine(name))
            return frozenset(out)
        raise AssertionError(self.kind)

    def encode(self, value: Any, engine: Engine | None = None) -> int:
        """The field's code for a checked value (not shifted into place)."""
        if self.kind == "int":
            return value
        if self.kind == "bool":
            return int(value)
        if self.kind == "enum":
            return value.code
        if self.kind == "choice":
            return self.choices.index(value)
        if self.kind == "tokens":
            assert engine is not None
            return sum(1 << i for i, e in enumerate(NEIGHBOURS[engine]) if e in value)
        raise AssertionError(self.kind)

    def decode(self, code: int, where: str, engine: Engine | None = None) -> Any:
        """The value of a code (range checks follow at construction)."""
        if self.kind == "int":
            return code
        if self.kind == "bool":
            return bool(code)
        if self.kind == "enum":
            legal = _enum_codes(self.enum)
            if code not in legal:
                names = ", ".join(f"{c} ({m.value})" for c, m in sorted(legal.items()))
                raise ValueError(f"{where} {self.name} code must be one of {names}, not {code}")
            return legal[code]
        if self.kind == "choice":
            if code >= len(self.choices):
                raise ValueError(f"{where} {self.name} code must be below "
                                 f"{len(self.choices)}, not {code}")
            return self.choices[code]
        if self.kind == "tokens":
            assert engine is not None
            return frozenset(e for i, e in enumerate(NEIGHBOURS[engine]) if code >> i & 1)
        raise AssertionError(self.kind)


def _f(bits: int, doc: str, *, lo: int = 0, hi: int | None = None, kind: str = "int",
       enum_: Any = None, choices: tuple = (), hex_: bool = False, default: Any = MISSING):
    """A dataclass field that carries its instruction-format description."""
    spec = dict(bits=bits, doc=doc, kind=kind, lo=lo, hi=hi, enum=enum_, choices=choices,
                hex=hex_, default=None if default is MISSING else default,
                required=default is MISSING)
    if default is MISSING:
        return field(metadata={"isa": spec})
    return field(default=default, metadata={"isa": spec})


def _addr(doc: str, bits: int = BUF_ADDR_BITS):
    return _f(bits, doc, hex_=True)


def _flag(doc: str):
    return _f(1, doc, kind="bool", default=False)


def _small(doc: str, lo: int = 1, default: Any = MISSING):
    return _f(SMALL_BITS, doc, lo=lo, default=default)


def _choice(bits: int, doc: str, choices: tuple, default: Any = MISSING):
    return _f(bits, doc, kind="choice", choices=choices, default=default)


def _enum(bits: int, doc: str, kind: Any, default: Any = MISSING):
    return _f(bits, doc, kind="enum", enum_=kind, default=default)


class IllegalInstruction(ValueError):
    """An instruction word the hardware refuses (it sets its error flag and stops).

    Members
    -------
    word:
        The 128-bit instruction word.
    reason:
        Why it is illegal.
    index:
        Position of the instruction in its program, when known.
    """

    def __init__(self, word: int, reason: str, index: int | None = None):
        self.word, self.reason, self.index = word, reason, index
        at = "" if index is None else f"instruction {index} (byte {index * INSTRUCTION_BYTES}): "
        super().__init__(f"{at}illegal instruction 0x{word:032x}: {reason}")


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """Base of every instruction format (see the module docstring).

    Subclasses are frozen dataclasses registered with :func:`_format`; their class
    attributes give the opcode, the mnemonic, the engine and the derived ``LAYOUT``.
    """

    MNEMONIC: ClassVar[str]
    OPCODE: ClassVar[int]
    ENGINE: ClassVar[Engine | None] = None
    LAYOUT: ClassVar[tuple[Field, ...]]
    RESERVED_MASK: ClassVar[int]

    def __post_init__(self):
        for f in self.LAYOUT[1:]:
            value = f.check(getattr(self, f.name), self.MNEMONIC, self.ENGINE)
            object.__setattr__(self, f.name, value)

    def encode(self) -> int:
        """The instruction as an unsigned :data:`INSTRUCTION_BITS`-bit integer."""
        word = self.OPCODE
        for f in self.LAYOUT[1:]:
            word |= f.encode(getattr(self, f.name), self.ENGINE) << f.lsb
        return word

    def values(self) -> dict[str, Any]:
        """Field name → value, in layout order (the opcode left out)."""
        return {f.name: getattr(self, f.name) for f in self.LAYOUT[1:]}


@dataclass(frozen=True, kw_only=True)
class EngineInstruction(Instruction):
    """An instruction an engine executes: its token flags come first, after the opcode.

    Parameters
    ----------
    pop:
        Neighbours (:data:`NEIGHBOURS`) to take one token from before starting.
    push:
        Neighbours to give one token to on finishing.
    """

    pop: frozenset = _f(_TOKEN_BITS, "wait for and take a token from each named neighbour "
                        "before starting", kind="tokens", default=frozenset())
    push: frozenset = _f(_TOKEN_BITS, "give a token to each named neighbour on finishing",
                         kind="tokens", default=frozenset())


INSTRUCTIONS: list[type[Instruction]] = []


def _format(opcode: int, mnemonic: str, engine: Engine | None):
    """Register an instruction class: derive its bit layout from its dataclass fields."""
    def register(cls):
        cls.OPCODE, cls.MNEMONIC, cls.ENGINE = opcode, mnemonic, engine
        layout = [Field("opcode", 0, OPCODE_BITS, mnemonic, kind="opcode")]
        lsb = OPCODE_BITS
        for f in dataclasses.fields(cls):
            spec = f.metadata["isa"]
            layout.append(Field(f.name, lsb, **spec))
            lsb += spec["bits"]
        if lsb > INSTRUCTION_BITS:
            raise ValueError(f"{mnemonic} fields must fit {INSTRUCTION_BITS} bits, "
                             f"not {lsb}")
        cls.LAYOUT = tuple(layout)
        used = 0
        for f in layout:
            used |= f.mask
        cls.RESERVED_MASK = ((1 << INSTRUCTION_BITS) - 1) & ~used
        INSTRUCTIONS.append(cls)
        return cls
    return register


@_format(0x1, "load.setup", Engine.LOAD)
@dataclass(frozen=True, kw_only=True)
class LoadSetup(EngineInstruction):
    """Describe how a DRAM tensor is laid out, for the loads into one buffer."""

    buf: Buffer = _enum(3, "buffer whose loads this describes", Buffer)
    elem: int = _choice(2, "bytes per element in DRAM", (1, 2, 4))
    row_pitch: int = _f(ROW_PITCH_BITS, "DRAM bytes from one tensor row to the next")
    px_pitch: int = _f(PIXEL_PITCH_BITS, "DRAM bytes from one pixel to the next")


@_format(0x2, "load.tile", Engine.LOAD)
@dataclass(frozen=True, kw_only=True)
class LoadTile(EngineInstruction):
    """Copy a rows × cols × ch box of a DRAM tensor into a buffer, in bursts."""

    buf: Buffer = _enum(3, "target buffer (its load.setup gives the pitches)", Buffer)
    dram: int = _addr("DRAM byte address of the box's first element", DRAM_ADDR_BITS)
    addr: int = _addr("buffer word address of the first pixel; each pixel takes "
                      "⌈ch / lanes⌉ words, the last one zero-filled")
    rows: int = _f(EXTENT_BITS, "rows of the box (a band's rows with its halo)", lo=1)
    cols: int = _f(EXTENT_BITS, "pixels per row", lo=1)
    ch: int = _f(CHANNEL_BITS, "elements per pixel (contiguous in DRAM)", lo=1)
    tile: bool = _flag("tile mode (buf=feature only, with a Winograd unit): the box is part "
                       "of a (m+2)×(m+2) input window; word j of each pixel goes to Winograd "
                       "tile-buffer word addr + j, into the element slot of the pixel's "
                       "place in the window; the window's other slots of those words are "
                       "written zero")
    slot: int = _f(TILE_SLOT_BITS, "tile mode: window slot (row·(m+2) + column) of the box's "
                   "first pixel", default=0)
    wpitch: int = _f(EXTENT_BITS, "tile mode: 0 (the box lies inside one window), or the box "
                     "spans a row of every other window, 2m columns apart (window a: the box's "
                     "pixels at columns 2m·a to 2m·a + m + 1 from the first window's, the "
                     "others read and dropped), whose words start wpitch words apart from "
                     "addr", default=0)
    wide: bool = _flag("tile mode: words of 2·rows channels, each filling a pair of tile-buffer "
                       "words at once (2k and 2k + 1 for load word k; addr and wpitch count "
                       "pairs)")


@_format(0x3, "compute.setup", Engine.COMPUTE)
@dataclass(frozen=True, kw_only=True)
class ComputeSetup(EngineInstruction):
    """Point the compute engine at a layer's register images (the datapath's settings of
    each invocation, which the compiler writes).

    The images are :func:`pack_image`'s words of :func:`rtl.params.datapath_registers`."""

    images: int = _addr("table buffer word address of the layer's register images; "
                        "compute.tile's image offsets count from it")


@_format(0x4, "compute.tile", Engine.COMPUTE)
@dataclass(frozen=True, kw_only=True)
class ComputeTile(EngineInstruction):
    """Run the conv datapath once (a band, filter chunk or channel chunk of the layer) with
    the settings of one register image."""

    image: int = _addr("word offset of the invocation's register image from "
                       "compute.setup's images")


@_format(0x5, "pool.setup", Engine.POOL)
@dataclass(frozen=True, kw_only=True)
class PoolSetup(EngineInstruction):
    """Program the pool / element-wise engine for the tiles that follow."""

    mode: PoolMode = _enum(4, "operation", PoolMode)
    kh: int = _small("window rows (max, avg)", default=1)
    kw: int = _small("window columns (max, avg)", default=1)
    stride: int = _small("window stride (max, avg)", default=1)
    ch: int = _f(CHANNEL_BITS, "channels per pixel", lo=1)
    act: Activation = _enum(2, "activation after the operation", Activation,
                            default=Activation.NONE)
    mult: int = _f(REQUANT_MULT_BITS, "multiplier of the first operand (avg: of the window "
                   "sum, with 1 / window folded in)", default=1)
    shift: int = _f(REQUANT_SHIFT_BITS, "right shift of the result, rounding", default=0)
    mult2: int = _f(REQUANT_MULT_BITS, "multiplier of the second operand (add)", default=0)


@_format(0x9, "pool.qadd", Engine.POOL)
@dataclass(frozen=True, kw_only=True)
class PoolQAdd(EngineInstruction):
    """The settings of the ``qadd`` mode (an overlay that requantises per channel): the
    exact float32 values ``r_a``, ``r_b`` and ``F`` of onnxruntime's QLinearAdd
    (``rtl/qadd_f32.py``), each packed as ``sign << 32 | (exponent mod 2^8) << 24 |
    mantissa`` (``dse.qlinear.QAddSettings.packed``)."""

    r_a: int = _f(QADD_SETTING_BITS, "the first operand's ratio fl(s_a / s_c), packed")
    r_b: int = _f(QADD_SETTING_BITS, "the second operand's ratio fl(s_b / s_c), packed")
    f: int = _f(QADD_SETTING_BITS, "the offset F, packed")


@_format(0xA, "pool.requant", Engine.POOL)
@dataclass(frozen=True, kw_only=True)
class PoolRequant(EngineInstruction):
    """The settings of the ``qgavg`` mode (an overlay that requantises per channel):
    onnxruntime's QLinearGlobalAveragePool requantises ``Σ x + bias`` as a convolution's
    accumulator (``rtl/requant_f32.py``), the scale ``mantissa · 2^exponent``; signed values
    in two's complement."""

    bias: int = _f(32, "added to each channel's sum, int32 (the stored form's and the input "
                   "zero point's correction, (128 − z_x)·N)")
    mantissa: int = _f(FLOAT32_MANTISSA_BITS, "the scale's mantissa, 2^23 … 2^24 − 1",
                       lo=1 << (FLOAT32_MANTISSA_BITS - 1))
    exponent: int = _f(9, "the scale's exponent, int9")
    zero_point: int = _f(8, "the output zero point in the stored form, int8")


@_format(0xB, "pool.lut", Engine.POOL)
@dataclass(frozen=True, kw_only=True)
class PoolLut(EngineInstruction):
    """Eight entries of the ``lut`` mode's table (an overlay that requantises per channel):
    entry ``8·index + k`` is the result, int8 in two's complement, for the element whose
    unsigned byte (its stored form + 128, i.e. the uint8 value) is ``8·index + k``.
    :data:`LUT_INSTRUCTIONS` of them fill the table, which the engine holds for the tiles
    after them."""

    index: int = _f(5, "the eight entries' place: entries 8·index … 8·index + 7")
    entries: int = _f(8 * LUT_ENTRIES_PER_INSTRUCTION, "entry 8·index + k in bits 8k … 8k + 7")


def lut_instructions(entries) -> list[PoolLut]:
    """The :data:`LUT_INSTRUCTIONS` ``pool.lut`` instructions that fill the table with
    ``entries`` (:data:`LUT_ENTRIES` int8 results, indexed by the element's unsigned byte)."""
    entries = [int(v) for v in entries]
    if len(entries) != LUT_ENTRIES or not all(-128 <= v <= 127 for v in entries):
        raise ValueError(f"entries must be {LUT_ENTRIES} int8 values, not {len(entries)} "
                         f"from {min(entries, default=0)} to {max(entries, default=0)}")
    per = LUT_ENTRIES_PER_INSTRUCTION
    out = []
    for index in range(LUT_INSTRUCTIONS):
        word = sum((v & 0xFF) << (8 * k) for k, v in enumerate(entries[index * per:][:per]))
        out.append(PoolLut(index=index, entries=word))
    return out


@_format(0x6, "pool.tile", Engine.POOL)
@dataclass(frozen=True, kw_only=True)
class PoolTile(EngineInstruction):
    """Run the pool / element-wise engine on one tile."""

    in_addr: int = _addr("feature buffer word address of the tile's first pixel")
    in2_addr: int = _addr("aux buffer word address of the second operand (add)")
    out_addr: int = _addr("output buffer word address of the first result pixel")
    rows: int = _f(EXTENT_BITS, "input rows of the tile", lo=1)
    cols: int = _f(EXTENT_BITS, "input columns of the tile", lo=1)
    pad_t: int = _small("padding rows above (max: −∞, avg: 0)", lo=0, default=0)
    pad_b: int = _small("padding rows below", lo=0, default=0)
    pad_l: int = _small("padding columns left", lo=0, default=0)
    pad_r: int = _small("padding columns right", lo=0, default=0)


@_format(0x7, "store.setup", Engine.STORE)
@dataclass(frozen=True, kw_only=True)
class StoreSetup(EngineInstruction):
    """Describe how the output tensor is laid out in DRAM."""

    elem: int = _choice(2, "bytes per element in DRAM", (1, 2, 4))
    row_pitch: int = _f(ROW_PITCH_BITS, "DRAM bytes from one tensor row to the next")
    px_pitch: int = _f(PIXEL_PITCH_BITS, "DRAM bytes from one pixel to the next")


@_format(0x8, "store.tile", Engine.STORE)
@dataclass(frozen=True, kw_only=True)
class StoreTile(EngineInstruction):
    """Copy a rows × cols × ch box from the output buffer to DRAM, in bursts."""

    dram: int = _addr("DRAM byte address of the box's first element", DRAM_ADDR_BITS)
    addr: int = _addr("output buffer word address of the first pixel")
    rows: int = _f(EXTENT_BITS, "rows of the box", lo=1)
    cols: int = _f(EXTENT_BITS, "pixels per row", lo=1)
    ch: int = _f(CHANNEL_BITS, "elements per pixel", lo=1)
    tile: bool = _flag("tile mode (with a Winograd unit): the box covers rows of a row of "
                       "m×m output tiles, ⌈ch / winograd_lanes⌉ words a tile from addr; "
                       "lane i·m² + slot of a tile's word j holds channel "
                       "j·winograd_lanes + i of the pixel at that slot")
    slot: int = _f(TILE_SLOT_BITS, "tile mode: slot (row·m + column) of the box's first "
                   "pixel in the first tile", default=0)


@_format(0xF, "finish", None)
@dataclass(frozen=True, kw_only=True)
class Finish(Instruction):
    """End the program once every engine has finished its instructions."""


#: Mnemonic → instruction class.
BY_MNEMONIC: dict[str, type[Instruction]] = {c.MNEMONIC: c for c in INSTRUCTIONS}
#: Opcode → instruction class (every other opcode is illegal).
BY_OPCODE: dict[int, type[Instruction]] = {c.OPCODE: c for c in INSTRUCTIONS}


def decode(word: int) -> Instruction:
    """Decode one instruction word.

    Raises
    ------
    TypeError
        If ``word`` is not an integer.
    IllegalInstruction
        For a word outside 0 … 2^128 − 1, an unknown opcode, a reserved bit set or a field
        value out of range.
    """
    if isinstance(word, bool) or not isinstance(word, int):
        raise TypeError(f"word must be an integer, not {word!r}")
    if not 0 <= word < 1 << INSTRUCTION_BITS:
        raise ValueError(f"word must be between 0 and 2^{INSTRUCTION_BITS} − 1, not {word}")
    opcode = word & ((1 << OPCODE_BITS) - 1)
    cls = BY_OPCODE.get(opcode)
    if cls is None:
        raise IllegalInstruction(word, f"unknown opcode 0x{opcode:x}")
    reserved = word & cls.RESERVED_MASK
    if reserved:
        raise IllegalInstruction(word, f"{cls.MNEMONIC} reserved bits set "
                                       f"(0x{reserved:x})")
    try:
        values = {f.name: f.decode((word >> f.lsb) & ((1 << f.bits) - 1), cls.MNEMONIC,
                                   cls.ENGINE)
                  for f in cls.LAYOUT[1:]}
        return cls(**values)
    except ValueError as exc:
        raise IllegalInstruction(word, str(exc)) from None


# -- documentation -------------------------------------------------------------------------


def _bits_text(msb: int, lsb: int) -> str:
    return f"{msb}:{lsb}" if msb != lsb else f"{lsb}"


def opcode_table() -> str:
    """The Markdown table of every instruction: opcode, mnemonic, engine, bits used."""
    lines = ["| opcode | mnemonic | engine | bits used | does |",
             "| --- | --- | --- | --- | --- |"]
    for cls in sorted(INSTRUCTIONS, key=lambda c: c.OPCODE):
        used = INSTRUCTION_BITS - bin(cls.RESERVED_MASK).count("1")
        summary = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        engine = cls.ENGINE.value if cls.ENGINE else "—"
        lines.append(f"| 0x{cls.OPCODE:x} | `{cls.MNEMONIC}` | {engine} | {used} | {summary} |")
    return "\n".join(lines)


def field_table(cls: type[Instruction]) -> str:
    """The Markdown table of one format: bits, field, width, values, meaning; reserved bits
    included."""
    lines = ["| bits | field | width | values | meaning |", "| --- | --- | --- | --- | --- |"]
    rows = []
    for f in cls.LAYOUT:
        if f.kind == "opcode":
            values, doc = f"0x{cls.OPCODE:x}", f"`{cls.MNEMONIC}`"
        elif f.kind == "tokens":
            near = NEIGHBOURS[cls.ENGINE]
            values = f"bit 0: {near[0].value}, bit 1: {near[1].value}"
            doc = f.doc
        else:
            values, doc = f.values_text(), f.doc
        if not f.required and f.kind not in ("opcode", "tokens"):
            default = f.default.value if isinstance(f.default, enum.Enum) else f.default
            doc += f" (default {int(default) if isinstance(default, bool) else default})"
        rows.append((f.lsb, f"| {_bits_text(f.msb, f.lsb)} | `{f.name}` | {f.bits} | "
                            f"{values} | {doc} |"))
    # reserved runs
    bit = 0
    while bit < INSTRUCTION_BITS:
        if cls.RESERVED_MASK >> bit & 1:
            end = bit
            while end + 1 < INSTRUCTION_BITS and cls.RESERVED_MASK >> (end + 1) & 1:
                end += 1
            rows.append((bit, f"| {_bits_text(end, bit)} | reserved | {end - bit + 1} | 0 | "
                              f"must be zero |"))
            bit = end + 1
        else:
            bit += 1
    lines += [text for _, text in sorted(rows)]
    return "\n".join(lines)


_REGION = re.compile(r"(<!-- isa:(\S+) -->\n)(.*?)(<!-- isa:end -->)", re.S)


def render_doc_tables(text: str) -> str:
    """Regenerate the tables of a Markdown page in place.

    A region ``<!-- isa:opcodes -->`` … ``<!-- isa:end -->`` receives
    :func:`opcode_table`; ``<!-- isa:MNEMONIC -->`` … ``<!-- isa:end -->`` receives
    :func:`field_table` of that instruction.

    Raises
    ------
    ValueError
        For a region naming no instruction.
    """
    def table(match: re.Match) -> str:
        name = match.group(2)
        if name == "opcodes":
            body = opcode_table()
        elif name in BY_MNEMONIC:
            body = field_table(BY_MNEMONIC[name])
        else:
            raise ValueError(f"region must name opcodes or an instruction "
                             f"({', '.join(BY_MNEMONIC)}), not {name!r}")
        return f"{match.group(1)}{body}\n{match.group(4)}"
    return _REGION.sub(table, text)



# -- register images -------------------------------------------------------------------------

#: Bits of one word of a register image (one word of the table buffer).
IMAGE_WORD_BITS = 128


def image_words(registers) -> int:
    """Words of a register image of ``registers`` (``(name, bits)`` pairs in order, e.g.
    :func:`rtl.params.datapath_registers`)."""
    total = sum(bits for _, bits in registers)
    return max(1, -(-total // IMAGE_WORD_BITS))


def pack_image(values: dict, registers) -> list[int]:
    """A register image: the settings ``values`` (name → non-negative int) packed in the
    order and widths of ``registers``, the first at bit 0, into little-endian
    :data:`IMAGE_WORD_BITS`-bit words (the last one zero-padded).

    Raises
    ------
    ValueError
        If a register is missing, a name is not a register, or a value does not fit.
    """
    names = [name for name, _ in registers]
    extra = sorted(set(values) - set(names))
    if extra:
        raise ValueError(f"register image names must be registers ({', '.join(names)}), "
                         f"not {', '.join(extra)}")
    word, lsb = 0, 0
    for name, bits in registers:
        if name not in values:
            raise ValueError(f"register image must set {name}")
        v = values[name]
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"register {name} must be an integer, not {v!r}")
        if not 0 <= v < (1 << bits):
            raise ValueError(f"register {name} must be between 0 and {(1 << bits) - 1} "
                             f"({bits} bits), not {v}")
        word |= v << lsb
        lsb += bits
    mask = (1 << IMAGE_WORD_BITS) - 1
    return [(word >> (IMAGE_WORD_BITS * i)) & mask for i in range(image_words(registers))]


def unpack_image(words, registers) -> dict:
    """The settings of a register image (:func:`pack_image`'s inverse)."""
    if len(words) != image_words(registers):
        raise ValueError(f"register image must have {image_words(registers)} words, "
                         f"not {len(words)}")
    word = sum(int(w) << (IMAGE_WORD_BITS * i) for i, w in enumerate(words))
    out, lsb = {}, 0
    for name, bits in registers:
        out[name] = (word >> lsb) & ((1 << bits) - 1)
        lsb += bits
    return out


def _main(argv: Iterable[str]) -> int:
    """``python -m rtl.isa PAGE.md``: rewrite the tables of a Markdown page."""
    args = list(argv)
    if len(args) != 1:
        print("usage: python -m rtl.isa PAGE.md", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as fh:
        text = fh.read()
    new = render_doc_tables(text)
    if new != text:
        with open(args[0], "w", encoding="utf-8") as fh:
            fh.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
