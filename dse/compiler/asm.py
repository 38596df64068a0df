"""Assembler, disassembler, program images and the token checks of the overlay's ISA.

The instruction formats live in :mod:`rtl.isa`; this module moves programs between three
forms:

- text, one instruction a line: a mnemonic, then ``name=value`` fields in any order, ``#``
  starting a comment (``load.tile buf=feature dram=0x1000 addr=0x0 rows=3 cols=226 ch=64
  push=compute``).  Fields with a default may be left out; ``pop`` and ``push`` take
  comma-separated engine names.  :func:`assemble` and :func:`disassemble`;
- :class:`rtl.isa.Instruction` objects;
- a binary image, ``program.bin``: the instructions' 128-bit words one after another, each
  little-endian (:func:`to_bytes`, :func:`from_bytes`, :func:`write_image`,
  :func:`read_image`), or as little-endian 32-bit words (:func:`to_words`,
  :func:`from_words`) for memory initialisation files.

The disassembler writes canonical text: fields in layout order, those equal to their
default left out, addresses in hexadecimal, ``pop`` and ``push`` last, so
``disassemble(assemble(text)) == text`` for canonical text and
``assemble(disassemble(program)) == program`` always.

:func:`check_tokens` is the compiler's check of a program's dependency tokens (every push
matched by a pop, no queue deeper than the hardware's, in-order dispatch cannot deadlock);
:func:`schedule` times a program on the four engines with
``start = max(own previous end, token arrival)``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable, Sequence
from typing import Any

from dse.design import write_bytes_atomic
from dse.errors import did_you_mean
from rtl.isa import (BY_MNEMONIC, INSTRUCTION_BITS, INSTRUCTION_BYTES, NEIGHBOURS, Engine,
                     EngineInstruction, Field, Finish, IllegalInstruction, Instruction, decode)
from rtl.params import START_CYCLES

__all__ = ["AsmError", "TokenError", "TokenReport", "parse_line", "format_instruction",
           "assemble", "disassemble", "to_bytes", "from_bytes", "to_words", "from_words",
           "write_image", "read_image", "queues", "check_tokens", "schedule"]

_WORD_BITS = 32
_WORDS = INSTRUCTION_BITS // _WORD_BITS


class AsmError(ValueError):
    """Text that is not an instruction, with the line it is on.

    Members
    -------
    line:
        1-based line number (0 for a single line parsed on its own).
    """

    def __init__(self, line: int, message: str):
        self.line = line
        super().__init__(f"line {line}: {message}" if line else message)


class TokenError(ValueError):
    """A program whose dependency tokens do not balance, overflow a queue or deadlock."""


# -- text ---------------------------------------------------------------------------------


def _parse_value(f: Field, text: str) -> Any:
    """The Python value of a field's text (range checks follow at construction)."""
    if f.kind in ("int", "choice"):
        try:
            return int(text, 0)
        except ValueError:
            raise ValueError(f"{f.name} must be an integer, not {text!r}") from None
    if f.kind == "bool":
        if text not in ("0", "1"):
            raise ValueError(f"{f.name} must be 0 or 1, not {text!r}")
        return text == "1"
    if f.kind == "enum":
        return text
    if f.kind == "tokens":
        return [name for name in text.split(",") if name] if text != "-" else []
    raise AssertionError(f.kind)


def parse_line(text: str, line: int = 0) -> Instruction | None:
    """Assemble one line: an instruction, or ``None`` for a blank or comment-only line.

    Raises
    ------
    AsmError
        Naming the line and what is wrong: an unknown mnemonic or field, a repeated or
        missing field, a malformed or out-of-range value.
    """
    code = text.split("#", 1)[0].split()
    if not code:
        return None
    mnemonic, args = code[0], code[1:]
    cls = BY_MNEMONIC.get(mnemonic)
    if cls is None:
        raise AsmError(line, f"mnemonic must be one of {', '.join(BY_MNEMONIC)}, not "
                             f"{mnemonic!r}{did_you_mean(mnemonic, BY_MNEMONIC)}")
    fields = {f.name: f for f in cls.LAYOUT[1:]}
    values: dict[str, Any] = {}
    for arg in args:
        name, eq, value = arg.partition("=")
        if not eq or not name:
            raise AsmError(line, f"{mnemonic} operands must be name=value, not {arg!r}")
        if name not in fields:
            names = ", ".join(fields) or "none"
            raise AsmError(line, f"{mnemonic} has no field {name!r} (fields: {names})"
                                 f"{did_you_mean(name, fields)}")
        if name in values:
            raise AsmError(line, f"{mnemonic} field {name} given twice")
        try:
            values[name] = _parse_value(fields[name], value)
        except ValueError as exc:
            raise AsmError(line, f"{mnemonic} {exc}") from None
    missing = [n for n, f in fields.items() if f.required and n not in values]
    if missing:
        raise AsmError(line, f"{mnemonic} needs {', '.join(missing)}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise AsmError(line, str(exc)) from None


def _format_value(f: Field, value: Any, engine: Engine | None) -> str:
    if f.kind == "tokens":
        assert engine is not None
        return ",".join(e.value for e in NEIGHBOURS[engine] if e in value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bool):
        return str(int(value))
    return f"0x{value:x}" if f.hex else str(value)


def format_instruction(inst: Instruction) -> str:
    """One instruction as canonical text (no comment, no newline)."""
    if not isinstance(inst, Instruction):
        raise TypeError(f"inst must be an rtl.isa.Instruction, not {inst!r}")
    parts, tokens = [inst.MNEMONIC], []
    for f in inst.LAYOUT[1:]:
        value = getattr(inst, f.name)
        if not f.required and value == f.default:
            continue
        text = f"{f.name}={_format_value(f, value, inst.ENGINE)}"
        (tokens if f.kind == "tokens" else parts).append(text)
    return " ".join(parts + tokens)


def assemble(text: str) -> list[Instruction]:
    """Assemble a program's text (one instruction a line, ``#`` comments).

    Raises
    ------
    AsmError
        For the first line that is not an instruction, with its number.
    """
    program = []
    for number, line in enumerate(text.splitlines(), 1):
        inst = parse_line(line, number)
        if inst is not None:
            program.append(inst)
    return program


def disassemble(program: Iterable[Instruction]) -> str:
    """The canonical text of a program, one instruction a line, ending with a newline."""
    return "".join(format_instruction(inst) + "\n" for inst in program)


# -- binary -------------------------------------------------------------------------------


def to_bytes(program: Iterable[Instruction]) -> bytes:
    """The binary image: each instruction's word, little-endian, in program order."""
    return b"".join(_check_inst(inst).encode().to_bytes(INSTRUCTION_BYTES, "little")
                    for inst in program)


def from_bytes(data: bytes) -> list[Instruction]:
    """Decode a binary image.

    Raises
    ------
    ValueError
        If the image is not a whole number of instructions.
    rtl.isa.IllegalInstruction
        For the first illegal instruction, with its index.
    """
    if len(data) % INSTRUCTION_BYTES:
        raise ValueError(f"image length must be a multiple of {INSTRUCTION_BYTES} bytes, "
                         f"not {len(data)}")
    words = [int.from_bytes(data[i:i + INSTRUCTION_BYTES], "little")
             for i in range(0, len(data), INSTRUCTION_BYTES)]
    return _decode_all(words)


def to_words(program: Iterable[Instruction]) -> list[int]:
    """The image as 32-bit words, the least significant word of each instruction first (the
    little-endian image read as 32-bit words)."""
    out = []
    for inst in program:
        word = _check_inst(inst).encode()
        out += [(word >> (_WORD_BITS * i)) & ((1 << _WORD_BITS) - 1) for i in range(_WORDS)]
    return out


def from_words(words: Sequence[int]) -> list[Instruction]:
    """Decode 32-bit words (:func:`to_words`' order).

    Raises
    ------
    ValueError
        If the count is not a multiple of four or a word is not a 32-bit unsigned value.
    rtl.isa.IllegalInstruction
        For the first illegal instruction, with its index.
    """
    if len(words) % _WORDS:
        raise ValueError(f"words must come in groups of {_WORDS}, not {len(words)}")
    for w in words:
        if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w < 1 << _WORD_BITS:
            raise ValueError(f"words must be 32-bit unsigned integers, not {w!r}")
    return _decode_all([sum(words[i + j] << (_WORD_BITS * j) for j in range(_WORDS))
                        for i in range(0, len(words), _WORDS)])


def write_image(path, program: Iterable[Instruction]) -> None:
    """Write ``program.bin`` atomically (``dse.errors.OutputError`` if it cannot)."""
    write_bytes_atomic(Path(path), to_bytes(program))


def read_image(path) -> list[Instruction]:
    """Read and decode a ``program.bin``."""
    return from_bytes(Path(path).read_bytes())


def _check_inst(inst) -> Instruction:
    if not isinstance(inst, Instruction):
        raise TypeError(f"program must hold rtl.isa.Instruction objects, not {inst!r}")
    return inst


def _decode_all(words: list[int]) -> list[Instruction]:
    program = []
    for index, word in enumerate(words):
        try:
            program.append(decode(word))
        except IllegalInstruction as exc:
            raise IllegalInstruction(word, exc.reason, index) from None
    return program


# -- tokens -------------------------------------------------------------------------------


def queues() -> list[tuple[Engine, Engine]]:
    """Every token queue, as (producer, consumer): one each way along each ring edge."""
    return [(e, n) for e in Engine for n in NEIGHBOURS[e]]


@dataclass(frozen=True)
class TokenReport:
    """What :func:`check_tokens` found in a program that passes.

    Members
    -------
    tokens:
        (producer, consumer) → tokens that pass through the queue (pushes, equal to pops).
    peak:
        (producer, consumer) → most tokens waiting in the queue at once when the program
        runs one instruction at a time in program order (at most the depth).
    instructions:
        Engine → instructions it executes.
    """

    tokens: dict
    peak: dict
    instructions: dict


def _name(index: int, inst: Instruction) -> str:
    return f"instruction {index} ({inst.MNEMONIC})"


def _body(program: Sequence[Instruction]) -> list[EngineInstruction]:
    """The engine instructions before the final ``finish`` (checked to be the only one)."""
    for inst in program:
        _check_inst(inst)
    if not program or not isinstance(program[-1], Finish):
        raise TokenError("program must end with finish")
    for i, inst in enumerate(program[:-1]):
        if isinstance(inst, Finish):
            raise TokenError(f"{_name(i, inst)}: finish must be the last instruction, not "
                             f"followed by {len(program) - 1 - i} more")
    return list(program[:-1])  # type: ignore[arg-type]


def _check_depth(depth, name: str = "depth") -> None:
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise TypeError(f"{name} must be an integer, not {depth!r}")
    if depth < 1:
        raise ValueError(f"{name} must be at least 1, not {depth}")


def check_tokens(program: Sequence[Instruction], depth: int) -> TokenReport:
    """Check a program's dependency tokens against queues of ``depth`` tokens.

    The program must end with its only ``finish``; every queue must see as many pops by its
    consumer as pushes by its producer; and running the instructions one at a time in
    program order, every pop must find a token already pushed and no push may leave more
    than ``depth`` tokens in its queue.  The last condition is what makes the hardware safe:
    the controller dispatches instructions in program order, so a program that runs in that
    order cannot deadlock, however the engines' timings interleave.

    Raises
    ------
    TokenError
        Naming the instruction, the queue and the counts.
    TypeError, ValueError
        For a ``depth`` that is not a positive integer, or a program of non-instructions.
    """
    _check_depth(depth)
    body = _body(program)
    pushes = {q: 0 for q in queues()}
    pops = {q: 0 for q in queues()}
    count = {e: 0 for e in Engine}
    for inst in body:
        count[inst.ENGINE] += 1
        for n in inst.push:
            pushes[(inst.ENGINE, n)] += 1
        for n in inst.pop:
            pops[(n, inst.ENGINE)] += 1
    for (src, dst) in queues():
        if pushes[(src, dst)] != pops[(src, dst)]:
            raise TokenError(f"queue {src.value}→{dst.value}: {pushes[(src, dst)]} pushes by "
                             f"{src.value} but {pops[(src, dst)]} pops by {dst.value}; every "
                             f"push needs exactly one matching pop")
    level = {q: 0 for q in queues()}
    peak = {q: 0 for q in queues()}
    for i, inst in enumerate(body):
        for n in inst.pop:
            q = (n, inst.ENGINE)
            if not level[q]:
                raise TokenError(f"{_name(i, inst)}: {inst.ENGINE.value} pops from "
                                 f"{n.value}, but no token is queued yet: its push must come "
                                 f"earlier in program order, or in-order dispatch can "
                                 f"deadlock")
            level[q] -= 1
        for n in inst.push:
            q = (inst.ENGINE, n)
            level[q] += 1
            if level[q] > depth:
                raise TokenError(f"{_name(i, inst)}: queue {q[0].value}→{q[1].value} would "
                                 f"hold {level[q]} tokens, more than its depth {depth}")
            peak[q] = max(peak[q], level[q])
    return TokenReport(tokens=pushes, peak=peak, instructions=count)


class _Arrival:
    """When the fetch unit (``rtl.fetch.InstructionFetch``, ``geometry``) first offers each
    program word, from a program at byte address ``base`` in a memory that answers at once,
    given when the controller took the earlier words (:func:`schedule`'s times: the start
    of the run is ``rtl.params.START_CYCLES`` + ``read_latency`` cycles before 0).

    The unit issues its first burst the cycle after ``start``; each later burst one cycle
    after the one before at the earliest, and only when the words it carries and those
    requested and not taken come to at most the credit (counted in beats on a 64-bit bus,
    else in words) -- a take in cycle t counts from t + 1.  A burst's beats follow its
    issue by two cycles (its AR register, then the memory's first beat) and each other
    back to back (with a read latency of L, L cycles later); a word is offered the cycle
    after its last beat entered the prefetch buffer.  Bursts end at multiples of
    ``burst_beats`` beats (the first may be shorter).
    """

    def __init__(self, geometry, base: int, read_latency: int = 0):
        self.g = geometry
        beat_bytes = geometry.bus_bits // 8
        self.first_beat = base // beat_bytes
        self.first_word = base // INSTRUCTION_BYTES
        self.skip = (self.first_word - self.first_beat * (beat_bytes // INSTRUCTION_BYTES)
                     if geometry.words_per_beat > 1 else 0)
        # credit units: beats on a 64-bit bus, else words
        self.per_beat = geometry.words_per_beat if geometry.beats_per_word == 1 else 1
        self.per_word = geometry.beats_per_word
        self.cap = geometry.prefetch_words * self.per_word
        # the cycle after start, which is START_CYCLES (+ the read latency) before cycle 0
        self.issue_first = 1 - START_CYCLES - read_latency
        self.delay = 2 + read_latency            # issue to first beat
        self.beats = []                           # arrival cycle of each beat from base's
        self.issues = []                          # (issue cycle, units so far)
        self.next_beat = self.first_beat

    def _last_beat(self, word: int) -> int:
        """Index (from the first beat) of the beat that completes ``word``."""
        if self.g.beats_per_word > 1:
            return (word + 1) * self.g.beats_per_word - 1
        return (self.first_word + word) // self.g.words_per_beat - self.first_beat

    def offered(self, word: int, taken: list) -> int | None:
        """The cycle ``word`` is first offered, or None while it depends on a take not yet
        known (``taken``: the take cycles of words 0, 1, … so far)."""
        need = self._last_beat(word)
        while len(self.beats) <= need:
            L = self.g.burst_beats
            length = L - self.next_beat % L
            units = length * self.per_beat - (self.skip if not self.issues else 0)
            total = (self.issues[-1][1] if self.issues else 0) + units
            cycle = self.issues[-1][0] + 1 if self.issues else self.issue_first
            words_needed = -(-(total - self.cap) // self.per_word)
            if words_needed > 0:
                if len(taken) < words_needed:
                    return None
                cycle = max(cycle, taken[words_needed - 1] + 1)
            self.issues.append((cycle, total))
            for k in range(length):
                after = self.beats[-1] + 1 if self.beats else cycle + self.delay
                self.beats.append(max(cycle + self.delay + k, after))
            self.next_beat += length
        return self.beats[need] + 1


def schedule(program: Sequence[Instruction], cycles: Sequence[int],
             depth: int, latency: int = 0,
             queue_depth: int | None = None, fetch=None) -> list[tuple[int, int]]:
    """Time a program on the four engines: (start, end) cycle of every instruction.

    Each engine runs its own instructions in program order.  An instruction starts at
    ``max(own previous end, token arrival)``: a token it pops arrives when the instruction
    that pushed it ends.  When one of the queues it pushes to would exceed ``depth`` it also
    waits until the consumer has popped the token that frees a slot (a program that passes
    :func:`check_tokens` never deadlocks, but it may wait so).  It ends ``cycles[i]`` later.
    ``finish`` starts when every engine has ended.

    ``queue_depth`` models the controller's instruction queues (``rtl/controller.py``):
    the instructions enter their engines' queues in program order, one a cycle, each one
    cycle before it may start at the earliest, and an instruction enters only when its
    engine's queue has room -- the cycle after that engine started the instruction
    ``queue_depth`` places before it in the engine's order.  So instruction i's start is at
    least ``q(i) + 1`` with ``q(i) = max(q(i − 1) + 1, start(j) + 1)`` (j that instruction,
    where there is one; ``q`` of the first instruction −1).  ``None`` (the default): queues
    deep enough that the engines always have their instructions.

    ``fetch`` (with ``queue_depth``), a ``(rtl.isa.FetchGeometry, program byte address,
    read latency)`` triple, adds when the fetch unit offers each word (:class:`_Arrival`):
    the controller takes word i into its fetch register at ``t(i)``, no earlier than it is
    offered nor than ``q(i − 1)``, and ``q(i) = max(t(i) + 1, start(j) + 1)``.  Without it
    every word is on offer (``t(i) = q(i − 1)``, ``t(0) = −2``).

    ``latency`` is the dispatch latency: the cycles from each of those events (an engine's
    previous end, the end of the push that gave a token, the start of the pop that freed a
    slot, and for ``finish`` the last end) to the start it allows.  With the default 0 the
    timeline is the equation above; the controller (``rtl/controller.py``) takes one cycle
    (its ``DISPATCH_LATENCY``).  An engine's first instruction may start at cycle 0 either
    way.

    Raises
    ------
    TokenError
        If the engines deadlock, naming what each stuck engine waits for; or, as
        :func:`check_tokens`, for a program without its one final ``finish``.
    ValueError
        If ``cycles`` does not give one non-negative integer per instruction.
    TypeError, ValueError
        For a ``depth`` or ``queue_depth`` that is not a positive integer, a ``latency``
        that is not a non-negative integer, or ``fetch`` without ``queue_depth``.
    """
    _check_depth(depth)
    if queue_depth is not None:
        _check_depth(queue_depth, "queue_depth")
    elif fetch is not None:
        raise ValueError("fetch needs queue_depth: the words go through the instruction "
                         "queues")
    if isinstance(latency, bool) or not isinstance(latency, int):
        raise TypeError(f"latency must be an integer, not {latency!r}")
    if latency < 0:
        raise ValueError(f"latency must be at least 0, not {latency}")
    body = _body(program)
    if len(cycles) != len(program) or any(
            isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in cycles):
        raise ValueError(f"cycles must be {len(program)} non-negative integers, one per "
                         f"instruction, not {list(cycles)!r}")
    order = {e: [i for i, inst in enumerate(body) if inst.ENGINE is e] for e in Engine}
    head = {e: 0 for e in Engine}
    free = {e: 0 for e in Engine}                # each engine's previous end + latency
    pushed: dict = {q: [] for q in queues()}     # end cycles + latency of the pushes, in order
    popped: dict = {q: [] for q in queues()}     # start cycles + latency of the pops, in order
    times: list = [None] * len(program)
    place = {i: k for e in Engine for k, i in enumerate(order[e])}
    queued: list = []                            # q(i) of the body so far (docstring)
    taken: list = []                             # t(i)
    arrival = _Arrival(*fetch) if fetch is not None else None

    def queued_at(i: int) -> int | None:
        """q(i), or None while a take or start it depends on is not known."""
        while len(queued) <= i:
            k = len(queued)
            t = queued[-1] if queued else -2
            if arrival is not None:
                offered = arrival.offered(k, taken)
                if offered is None:
                    return None
                t = max(t, offered)
            q = t + 1
            if place[k] >= queue_depth:
                j = order[body[k].ENGINE][place[k] - queue_depth]
                if times[j] is None:
                    return None
                q = max(q, times[j][0] + 1)
            taken.append(t)
            queued.append(q)
        return queued[i]

    def waits(i: int) -> tuple[int | None, str]:
        """Start cycle of an engine's next instruction, or None and what it waits for."""
        inst = body[i]
        start = free[inst.ENGINE]
        if queue_depth is not None:
            q = queued_at(i)
            if q is None:
                return None, "room in an instruction queue"
            start = max(start, q + 1)
        for n in inst.pop:
            q = (n, inst.ENGINE)
            k = len(popped[q])
            if k >= len(pushed[q]):
                return None, f"a token from {n.value}"
            start = max(start, pushed[q][k])
        for n in inst.push:
            q = (inst.ENGINE, n)
            k = len(pushed[q]) - depth
            if k >= 0:
                if k >= len(popped[q]):
                    return None, f"room in the queue to {n.value}"
                start = max(start, popped[q][k])
        return start, ""

    progress = True
    while progress:
        progress = False
        for e in Engine:
            while head[e] < len(order[e]):
                i = order[e][head[e]]
                inst = body[i]
                start, _ = waits(i)
                if start is None:
                    break
                end = start + cycles[i]
                for n in inst.pop:
                    popped[(n, e)].append(start + latency)
                for n in inst.push:
                    pushed[(e, n)].append(end + latency)
                times[i] = (start, end)
                free[e] = end + latency
                head[e] += 1
                progress = True
    stuck = [(e, order[e][head[e]]) for e in Engine if head[e] < len(order[e])]
    if stuck:
        what = "; ".join(f"{e.value} at {_name(i, body[i])} waits for {waits(i)[1]}"
                         for e, i in stuck)
        raise TokenError(f"the engines deadlock: {what}")
    last = max(free.values())                    # 0 for a program of finish alone
    times[-1] = (last, last + cycles[-1])
    return times
