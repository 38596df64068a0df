"""The overlay's controller: instruction decoder, per-engine queues and dependency tokens.

The controller takes the program's 128-bit instruction words in order (a stream; the fetch
unit feeds it from DRAM) after ``start``, checks each word, and hands each engine
instruction to its engine's instruction queue; the engines then run as their dependency
tokens allow (docs/isa.md, "Dependency tokens").  Every bit position, opcode and legal code
comes from the formats of :mod:`rtl.isa`; nothing is written down twice.

* :class:`InstructionDecoder` is the hardware form of :func:`rtl.isa.decode`'s legality
  rules: unknown opcode, reserved bit set, enum or choice code out of range, int field
  outside its range.
* :class:`Controller` is the fetch stage, the four instruction queues, the eight token
  queues, the dispatch of each engine's next instruction, the ``finish`` handling, the
  sticky error flag and the cycle counters.

Each engine meets the controller through :func:`engine_signature`: a ``cmd`` stream of
:func:`command_layout` (the instruction's used bits, viewable per format) and a ``done``
input the engine pulses for one cycle when the instruction it took has finished.  The
controller hands an engine one instruction at a time: its next command is offered only
after the previous one's ``done``.

Timing (:data:`DISPATCH_LATENCY`): an instruction may be taken in the cycle after its
engine's previous ``done``, after the ``done`` of the instruction that pushed a token it
pops, and after the start of the pop that freed a slot in a queue it pushes to.  That is
``dse.compiler.asm.schedule(program, cycles, depth, latency=DISPATCH_LATENCY,
queue_depth=queue_depth)`` with ``cycles[i]`` the cycles from an instruction's command
transfer to its ``done`` and :data:`FINISH_CYCLES` for ``finish``, counted from the first
cycle the engines can take commands: ``queue_depth`` models the in-order entry into the
instruction queues (an instruction enters its queue :data:`FETCH_LATENCY` − 1 cycle after
its word's transfer, and waits in the fetch register while that queue is full); the
schedule's ``fetch`` adds when the words arrive (see docs/rtl.md, "Controller").
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal, unsigned
from amaranth.lib import data, enum, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .isa import (INSTRUCTION_BITS, INSTRUCTIONS, NEIGHBOURS, OPCODE_BITS, Engine, Field,
                  Instruction)
from .params import DISPATCH_LATENCY, FETCH_LATENCY, FINISH_CYCLES, QUEUE_DEPTH
from .validate import check_int

__all__ = ["DISPATCH_LATENCY", "FETCH_LATENCY", "FINISH_CYCLES", "ErrorCode", "format_layout",
           "command_layout", "engine_signature", "InstructionDecoder", "Controller"]

# DISPATCH_LATENCY, FETCH_LATENCY and FINISH_CYCLES (documented there) live in rtl.params,
# which the compiler's schedule reads without Amaranth.


class ErrorCode(enum.Enum, shape=3):
    """Why the controller stopped with its error flag set (the first cause found)."""

    NONE = 0           #: no error
    OPCODE = 1         #: unknown opcode (0 included)
    RESERVED = 2       #: a reserved bit of the format is set
    FIELD_CODE = 3     #: an enum or choice code out of range
    FIELD_RANGE = 4    #: an int field outside lo … hi (a rows of 0, say)
    DEADLOCK = 5       #: the tokens can never let another instruction start


def _check_engine(engine) -> Engine:
    if isinstance(engine, Engine):
        return engine
    if isinstance(engine, str):
        try:
            return Engine(engine)
        except ValueError:
            names = ", ".join(e.value for e in Engine)
            raise ValueError(f"engine must be one of {names}, not {engine!r}") from None
    raise TypeError(f"engine must be an rtl.isa.Engine, not {engine!r}")


def _formats(engine: Engine) -> list[type[Instruction]]:
    return [cls for cls in INSTRUCTIONS if cls.ENGINE is engine]


def _member(cls: type[Instruction]) -> str:
    """A format's member name in :func:`command_layout`: the mnemonic's second part."""
    return cls.MNEMONIC.split(".", 1)[1]


def _used_bits(cls: type[Instruction]) -> int:
    return max(f.msb for f in cls.LAYOUT) + 1


def _header(engine: Engine) -> tuple[Field, ...]:
    """The opcode and token fields, which every format of ``engine`` has in one place."""
    formats = _formats(engine)
    head = tuple(f for f in formats[0].LAYOUT if f.kind in ("opcode", "tokens"))
    for cls in formats[1:]:
        other = tuple(f for f in cls.LAYOUT if f.kind in ("opcode", "tokens"))
        assert [(f.name, f.lsb, f.bits) for f in other] == \
            [(f.name, f.lsb, f.bits) for f in head], cls.MNEMONIC
    return head


def format_layout(cls: type[Instruction]) -> data.FlexibleLayout:
    """The fields of one instruction format, each at its bit position in the word.

    Every field (the opcode and tokens included) is its raw code, ``unsigned(bits)``: an
    enum's ``code``, a choice's index, a bool's bit, a token set's neighbour bits.

    Raises
    ------
    TypeError
        If ``cls`` is not an :class:`rtl.isa.Instruction` format.
    """
    if not (isinstance(cls, type) and issubclass(cls, Instruction) and cls in INSTRUCTIONS):
        raise TypeError(f"cls must be an rtl.isa instruction format, not {cls!r}")
    return data.FlexibleLayout(_used_bits(cls), {f.name: data.Field(unsigned(f.bits), f.lsb)
                                                 for f in cls.LAYOUT})


def command_layout(engine: Engine | str) -> data.FlexibleLayout:
    """The command an engine receives: the used bits of its instruction word.

    Members ``opcode``, ``pop`` and ``push`` (common to the engine's formats), and one
    member per format named by the mnemonic's second part (``setup``, ``tile``) with that
    format's :func:`format_layout`.  The engine tells the formats apart by ``opcode``.
    The width is the widest format's used bits; the bits above are reserved (zero).

    Raises
    ------
    TypeError, ValueError
        If ``engine`` is not an :class:`rtl.isa.Engine` or the name of one.
    """
    engine = _check_engine(engine)
    formats = _formats(engine)
    fields = {f.name: data.Field(unsigned(f.bits), f.lsb) for f in _header(engine)}
    for cls in formats:
        fields[_member(cls)] = data.Field(format_layout(cls), 0)
    return data.FlexibleLayout(max(_used_bits(cls) for cls in formats), fields)


def engine_signature(engine: Engine | str) -> wiring.Signature:
    """The controller's side of one engine: ``cmd`` (out) and ``done`` (in).

    Members
    -------
    cmd : Out(stream.Signature(command_layout(engine)))
        The engine's next instruction.  Offered only while the engine has no instruction
        in progress; the transfer is the instruction's start.
    done : In(1)
        Pulsed by the engine for one cycle when the instruction it took has finished: in a
        later cycle, or in the transfer's own cycle for an instruction that takes no time
        (a command refused at once).  Ignored while no instruction is in progress or being
        transferred.
    """
    return wiring.Signature({
        "cmd": Out(stream.Signature(command_layout(engine))),
        "done": In(1),
    })


def _legal_codes(f: Field, cls: type[Instruction]) -> list[int]:
    """The codes of an enum or choice field that :meth:`rtl.isa.Field.decode` accepts."""
    legal = []
    for code in range(1 << f.bits):
        try:
            f.decode(code, cls.MNEMONIC, cls.ENGINE)
        except ValueError:
            continue
        legal.append(code)
    return legal


class InstructionDecoder(wiring.Component):
    """Combinational check and routing of one instruction word.

    ``legal`` is high exactly when :func:`rtl.isa.decode` accepts ``word``; otherwise
    ``error_code`` gives the first failing rule in ``decode``'s order: the opcode, then the
    reserved bits, then the enum and choice codes, then the int ranges.

    Members
    -------
    word : In(INSTRUCTION_BITS)
        The instruction word.
    legal : Out(1)
        The word is a legal instruction.
    finish : Out(1)
        The opcode is ``finish``'s.
    engine : Out(2)
        The engine of an engine instruction, as :attr:`rtl.isa.Engine.code`.
    error_code : Out(ErrorCode)
        ``ErrorCode.NONE`` for a legal word.
    """

    def __init__(self):
        super().__init__({
            "word": In(INSTRUCTION_BITS),
            "legal": Out(1),
            "finish": Out(1),
            "engine": Out(range(len(Engine))),
            "error_code": Out(ErrorCode),
        })

    def elaborate(self, platform):
        m = Module()
        w = self.word
        known, reserved, bad_code, bad_range = (Signal(name=n) for n in (
            "known", "reserved", "bad_code", "bad_range"))
        with m.Switch(w[:OPCODE_BITS]):
            for cls in INSTRUCTIONS:
                with m.Case(cls.OPCODE):
                    codes, ranges = [Const(0)], [Const(0)]
                    for f in cls.LAYOUT[1:]:
                        v = w[f.lsb:f.msb + 1]
                        if f.kind in ("enum", "choice"):
                            legal = _legal_codes(f, cls)
                            if len(legal) < 1 << f.bits:
                                codes.append(~v.matches(*legal))
                        elif f.kind == "int":
                            if f.lo > 0:
                                ranges.append(v < f.lo)
                            if f.top < (1 << f.bits) - 1:
                                ranges.append(v > f.top)
                    m.d.comb += [
                        known.eq(1),
                        reserved.eq((w & Const(cls.RESERVED_MASK, INSTRUCTION_BITS)).any()),
                        bad_code.eq(Cat(*codes).any()),
                        bad_range.eq(Cat(*ranges).any()),
                    ]
                    if cls.ENGINE is None:
                        m.d.comb += self.finish.eq(1)
                    else:
                        m.d.comb += self.engine.eq(cls.ENGINE.code)
            with m.Default():          # an unknown opcode (a complete case for the lint)
                m.d.comb += [sig.eq(0) for sig in (known, reserved, bad_code, bad_range,
                                                   self.finish, self.engine)]
        with m.If(~known):
            m.d.comb += self.error_code.eq(ErrorCode.OPCODE)
        with m.Elif(reserved):
            m.d.comb += self.error_code.eq(ErrorCode.RESERVED)
        with m.Elif(bad_code):
            m.d.comb += self.error_code.eq(ErrorCode.FIELD_CODE)
        with m.Elif(bad_range):
            m.d.comb += self.error_code.eq(ErrorCode.FIELD_RANGE)
        m.d.comb += self.legal.eq(self.error_code == ErrorCode.NONE)
        return m


class Controller(wiring.Component):
    """Instruction decoder, instruction queues, token queues and dispatcher of the overlay.

    After ``start`` the controller takes instruction words from ``i_stream`` in program
    order, one a cycle at most, into a one-word fetch register, checks the word there
    (:class:`InstructionDecoder`) and appends an engine instruction to its engine's
    instruction queue (a FIFO of ``queue_depth``; the fetch waits while that queue is full).
    ``finish`` ends the fetch: no word after it is taken.

    **Dispatch.** An engine's next instruction (its queue's head) is offered on its
    ``cmd`` stream when the engine has no instruction in progress, each token queue named in
    its ``pop`` holds a token, and each token queue named in its ``push`` has room (holds
    fewer than ``token_depth``).  An instruction therefore waits *before* it is dispatched,
    both for its tokens and for room for its pushes; the transfer takes the popped tokens.
    When the engine pulses ``done``, the controller pushes a token to each queue named in
    ``push``; room was checked at dispatch, and nothing else pushes into an engine's
    outgoing queues, so that push never finds the queue full and ``done`` never stalls.
    (This is where ``dse.compiler.asm.schedule`` waits too: before the start.)

    **Finish.** Once ``finish`` has been fetched and every engine is idle with its queue
    empty, ``busy`` drops and ``done`` rises; both hold until the next ``start``.

    **Errors.** An illegal word, or a deadlock (no engine has an instruction in progress,
    none can be dispatched, and the fetch holds a word whose queue is full or has fetched
    ``finish`` with instructions still queued: only a program that fails
    ``dse.compiler.asm.check_tokens`` gets there), sets ``error``, ``error_code`` and
    ``error_index``, the 0-based index of the offending word in the program (for a
    deadlock, the word the fetch holds, or ``finish``).  ``busy`` drops and nothing further
    is dispatched: commands on offer are withdrawn, queued instructions are dropped.  An
    engine still running an instruction finishes it; its ``done`` changes no output.

    ``start`` is taken only while ``busy`` is low; it clears the queues, the tokens, the
    flags and the counters, so a program can be run again after ``done`` or ``error``.

    Parameters
    ----------
    token_depth:
        Tokens each of the eight token queues holds (the ``depth`` of
        ``dse.compiler.asm.check_tokens``).
    queue_depth:
        Instructions each engine's instruction queue holds.
    counter_bits:
        Width of the cycle counters and of the instruction index (they wrap).

    Members
    -------
    start : In(1)
        Run a program: its words follow on ``i_stream``.
    i_stream : In(stream.Signature(INSTRUCTION_BITS))
        The program's instruction words, in order.
    load, compute, pool, store : Out(engine_signature(engine))
        Each engine's ``cmd`` stream and ``done`` input.
    busy : Out(1)
        A program is running.
    done : Out(1)
        The last program reached ``finish`` with every engine idle.
    error : Out(1)
        The last program stopped on an error.
    error_code : Out(ErrorCode)
        Why (``ErrorCode.NONE`` without an error).
    error_index : Out(counter_bits)
        Index of the offending instruction.
    cycles : Out(counter_bits)
        Cycles ``busy`` has been high since ``start``.
    busy_cycles : Out(StructLayout({engine: counter_bits}))
        Per engine, the cycles it had an instruction in progress, each instruction counting
        the cycles from its command transfer to its ``done``.
    """

    def __init__(self, *, token_depth: int = 2, queue_depth: int = QUEUE_DEPTH,
                 counter_bits: int = 32):
        check_int(self, "token_depth", token_depth, 1)
        check_int(self, "queue_depth", queue_depth, 1)
        check_int(self, "counter_bits", counter_bits, 1)
        self._token_depth, self._queue_depth = token_depth, queue_depth
        self._counter_bits = counter_bits
        super().__init__({
            "start": In(1),
            "i_stream": In(stream.Signature(unsigned(INSTRUCTION_BITS))),
            **{e.value: Out(engine_signature(e)) for e in Engine},
            "busy": Out(1),
            "done": Out(1),
            "error": Out(1),
            "error_code": Out(ErrorCode),
            "error_index": Out(counter_bits),
            "cycles": Out(counter_bits),
            "busy_cycles": Out(data.StructLayout({e.value: unsigned(counter_bits)
                                                  for e in Engine})),
        })

    @property
    def token_depth(self) -> int:
        """Tokens each token queue holds."""
        return self._token_depth

    @property
    def queue_depth(self) -> int:
        """Instructions each engine's instruction queue holds."""
        return self._queue_depth

    @property
    def counter_bits(self) -> int:
        """Width of the counters and of the instruction index."""
        return self._counter_bits

    def elaborate(self, platform):
        m = Module()
        depth = self._token_depth
        running = Signal()
        go = Signal()                       # start taken: clear everything
        m.d.comb += go.eq(self.start & ~running)

        # -- fetch register and decoder -------------------------------------------------
        m.submodules.decoder = dec = InstructionDecoder()
        held = Signal(INSTRUCTION_BITS)
        held_valid = Signal()
        held_index = Signal(self._counter_bits)
        fetched = Signal(self._counter_bits)     # words taken so far
        finish_seen = Signal()
        m.d.comb += dec.word.eq(held)

        # -- token queues: one counter per (producer, consumer) -----------------------------
        level = {(e, n): Signal(range(depth + 1), name=f"tokens_{e.value}_to_{n.value}")
                 for e in Engine for n in NEIGHBOURS[e]}
        give = {q: Signal(name=f"give_{q[0].value}_to_{q[1].value}") for q in level}
        take = {q: Signal(name=f"take_{q[0].value}_to_{q[1].value}") for q in level}
        for q, lv in level.items():
            with m.If(give[q] & ~take[q]):
                m.d.sync += lv.eq(lv + 1)
            with m.Elif(take[q] & ~give[q]):
                m.d.sync += lv.eq(lv - 1)

        # -- per engine: instruction queue, dispatch, completion ------------------------
        w_rdy, queued, ready_to_go, actives = {}, [], [], []
        for e in Engine:
            layout = command_layout(e)
            port = getattr(self, e.value)
            iq = ResetInserter(go)(fifo.SyncFIFO(width=layout.size, depth=self._queue_depth))
            m.submodules[f"{e.value}_queue"] = iq
            head = layout(iq.r_data)
            busy = Signal(name=f"{e.value}_active")      # an instruction in progress
            pushes = Signal(len(head.push), name=f"{e.value}_pushes")
            count = Signal(self._counter_bits, name=f"{e.value}_busy_cycles")
            near = NEIGHBOURS[e]
            tokens_ok = Cat(~head.pop[i] | (level[(n, e)] != 0)
                            for i, n in enumerate(near)).all()
            room_ok = Cat(~head.push[i] | (level[(e, n)] != depth)
                          for i, n in enumerate(near)).all()
            issuable = Signal(name=f"{e.value}_issuable")
            m.d.comb += issuable.eq(iq.r_rdy & ~busy & tokens_ok & room_ok)
            m.d.comb += [
                port.cmd.valid.eq(running & issuable),
                port.cmd.payload.eq(iq.r_data),
            ]
            started = port.cmd.valid & port.cmd.ready
            # done ends the instruction in progress, or (a zero-cycle instruction, such as
            # a command the engine refuses at once) the one transferred in the same cycle
            finished = (busy | started) & port.done
            m.d.comb += iq.r_en.eq(started)
            for i, n in enumerate(near):
                m.d.comb += [take[(n, e)].eq(started & head.pop[i]),
                             give[(e, n)].eq(finished & Mux(busy, pushes[i], head.push[i]))]
            with m.If(started & ~port.done):
                m.d.sync += [busy.eq(1), pushes.eq(head.push)]
            with m.Elif(finished):
                m.d.sync += busy.eq(0)
            with m.If(busy):
                m.d.sync += count.eq(count + 1)
            m.d.comb += getattr(self.busy_cycles, e.value).eq(count)
            with m.If(go):
                m.d.sync += [busy.eq(0), count.eq(0)]
            m.d.comb += [
                iq.w_data.eq(held[:layout.size]),
                iq.w_en.eq(running & held_valid & dec.legal & ~dec.finish &
                           (dec.engine == e.code)),
            ]
            w_rdy[e] = iq.w_rdy
            queued.append(iq.r_rdy)
            actives.append(busy)
            ready_to_go.append(issuable)
        any_queued, any_active = Cat(*queued).any(), Cat(*actives).any()
        any_issuable = Cat(*ready_to_go).any()

        # -- fetch: take a word into the register, route it, or stop --------------------
        room = Cat(w_rdy[e] & (dec.engine == e.code) for e in Engine).any()
        moved = Signal()        # the held word leaves the register this cycle
        m.d.comb += moved.eq(running & held_valid & dec.legal & (dec.finish | room))
        m.d.comb += self.i_stream.ready.eq(
            running & ~finish_seen & (~held_valid | (moved & ~dec.finish)))
        with m.If(self.i_stream.valid & self.i_stream.ready):
            m.d.sync += [held.eq(self.i_stream.payload), held_valid.eq(1),
                         held_index.eq(fetched), fetched.eq(fetched + 1)]
        with m.Elif(moved):
            m.d.sync += held_valid.eq(0)
        with m.If(moved & dec.finish):
            m.d.sync += finish_seen.eq(1)

        # -- finish, errors, counters ---------------------------------------------------
        done, error = Signal(), Signal()
        code = Signal(ErrorCode)
        index = Signal(self._counter_bits)
        cycles = Signal(self._counter_bits)
        stuck = (finish_seen & any_queued) | (held_valid & dec.legal & ~moved)
        with m.If(running):
            m.d.sync += cycles.eq(cycles + 1)
            with m.If(held_valid & ~dec.legal):
                m.d.sync += [running.eq(0), error.eq(1), code.eq(dec.error_code),
                             index.eq(held_index)]
            with m.Elif(~any_active & ~any_issuable & stuck):
                m.d.sync += [running.eq(0), error.eq(1), code.eq(ErrorCode.DEADLOCK),
                             index.eq(held_index)]
            with m.Elif(finish_seen & ~any_queued & ~any_active):
                m.d.sync += [running.eq(0), done.eq(1)]
        with m.If(go):
            m.d.sync += [running.eq(1), done.eq(0), error.eq(0), code.eq(ErrorCode.NONE),
                         index.eq(0), cycles.eq(0), fetched.eq(0), held_valid.eq(0),
                         finish_seen.eq(0)]
            m.d.sync += [lv.eq(0) for lv in level.values()]
        m.d.comb += [
            self.busy.eq(running),
            self.done.eq(done),
            self.error.eq(error),
            self.error_code.eq(code),
            self.error_index.eq(index),
            self.cycles.eq(cycles),
        ]
        return m
