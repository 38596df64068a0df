"""cocotb drivers for ``amaranth.lib.stream`` ports: a source, a sink and payload codecs.

Amaranth's ``verilog.convert`` names a stream member ``x`` as three ports ``x__payload``,
``x__valid`` and ``x__ready`` (a member declared ``always_valid``/``always_ready`` has no
port for the constant; the drivers then treat it as 1).

Timing discipline (why the falling edge): Verilator runs cocotb's value-change callbacks
*after* evaluating the edge, so at ``RisingEdge`` a testbench reads post-edge register values
but pre-edge combinational inputs -- a mix that makes handshake sampling simulator-dependent.
These drivers instead write their outputs at the falling edge and then, in the ``ReadOnly``
phase of that same time step, read the settled ``valid``/``ready``.  Nothing changes between
that phase and the next rising edge, so "valid and ready in ReadOnly" is exactly "a transfer
happens at the next rising edge", on any simulator.  Every other testbench write should also
happen at a falling edge (or right after a rising edge) to keep that true.

Random idle cycles (source) and back-pressure (sink) come from a private ``random.Random``
seeded by the caller, so a run replays exactly.  A source that has raised ``valid`` keeps it
and its payload until the transfer, as the stream rules require.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any, Callable, Iterable, Sequence

import cocotb
from cocotb.triggers import Event, FallingEdge, ReadOnly, RisingEdge

__all__ = [
    "ArrayCodec",
    "NestedCodec",
    "IntCodec",
    "StreamSource",
    "StreamSink",
    "StreamTimeout",
]


class StreamTimeout(AssertionError):
    """A stream did not move the expected number of beats within the allowed cycles."""


class IntCodec:
    """Payload codec of a single integer field of ``width`` bits.

    Parameters
    ----------
    width:
        Payload width in bits.
    signed:
        Decode as two's complement.
    """

    def __init__(self, width: int, signed: bool = False):
        if not isinstance(width, int) or isinstance(width, bool):
            raise TypeError(f"width must be an integer, not {width!r}")
        if width < 1:
            raise ValueError(f"width must be at least 1, not {width}")
        self.width = width
        self.signed = bool(signed)
        self._mask = (1 << width) - 1

    def encode(self, value: int) -> int:
        """Return the raw bits of ``value`` (wrapped to the width)."""
        return int(value) & self._mask

    def decode(self, raw: int) -> int:
        """Return the value of the raw payload bits."""
        raw &= self._mask
        if self.signed and raw >> (self.width - 1):
            raw -= 1 << self.width
        return raw


class ArrayCodec:
    """Payload codec of ``amaranth.lib.data.ArrayLayout(elem_shape, count)``.

    Element ``i`` occupies bits ``[i*width, (i+1)*width)`` of the payload (element 0 in the
    least significant bits), as Amaranth lays out arrays.

    Parameters
    ----------
    width:
        Bits per element.
    count:
        Number of elements.
    signed:
        Elements are two's complement.
    """

    def __init__(self, width: int, count: int, signed: bool = True):
        for name, value in (("width", width), ("count", count)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        self.width = width
        self.count = count
        self.signed = bool(signed)
        self._mask = (1 << width) - 1

    @classmethod
    def from_layout(cls, layout) -> "ArrayCodec":
        """Return the codec of an Amaranth ``ArrayLayout`` of integer elements."""
        from amaranth.hdl import Shape  # deferred: codecs themselves need no Amaranth

        shape = Shape.cast(layout.elem_shape)
        return cls(shape.width, layout.length, shape.signed)

    def encode(self, values: Sequence[int]) -> int:
        """Return the raw payload bits of ``count`` element values (each wrapped)."""
        if len(values) != self.count:
            raise ValueError(f"payload must have {self.count} elements, not {len(values)}")
        raw = 0
        for i, v in enumerate(values):
            raw |= (int(v) & self._mask) << (i * self.width)
        return raw

    def decode(self, raw: int) -> tuple[int, ...]:
        """Return the element values of raw payload bits."""
        out = []
        half = 1 << (self.width - 1)
        for i in range(self.count):
            v = (raw >> (i * self.width)) & self._mask
            if self.signed and v >= half:
                v -= 1 << self.width
            out.append(v)
        return tuple(out)


class NestedCodec:
    """Payload codec of an ``ArrayLayout`` of ``count`` elements that are themselves arrays
    (``inner``, an :class:`ArrayCodec`): element ``i`` occupies the ``i``-th block of
    ``inner.width · inner.count`` bits."""

    def __init__(self, inner: ArrayCodec, count: int):
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"count must be a positive integer, not {count!r}")
        self.inner, self.count = inner, count
        self._bits = inner.width * inner.count

    def encode(self, values) -> int:
        """Return the raw payload bits of ``count`` inner element lists."""
        if len(values) != self.count:
            raise ValueError(f"payload must have {self.count} elements, not {len(values)}")
        raw = 0
        for i, v in enumerate(values):
            raw |= self.inner.encode(v) << (i * self._bits)
        return raw

    def decode(self, raw: int) -> tuple:
        """Return the inner element tuples of raw payload bits."""
        mask = (1 << self._bits) - 1
        return tuple(self.inner.decode((raw >> (i * self._bits)) & mask)
                     for i in range(self.count))


def _port(dut, name: str, member: str):
    return getattr(dut, f"{name}__{member}", None)


def _high(handle) -> bool:
    return handle is None or str(handle.value) == "1"


def _bind_stream(end, dut, name: str, clk, prob_name: str, prob: float, seed: int) -> None:
    """Attach a source or sink *end* to the DUT's stream *name* (its ports, clock and seeded
    random generator), checking the stall probability *prob* called *prob_name*."""
    if not 0.0 <= prob < 1.0:
        raise ValueError(f"{prob_name} must be in [0, 1), not {prob!r}")
    end.name = name
    end._payload = _port(dut, name, "payload")
    end._valid = _port(dut, name, "valid")
    end._ready = _port(dut, name, "ready")
    if end._payload is None:
        raise ValueError(f"DUT has no port {name}__payload")
    end._clk = clk
    end._rng = random.Random(seed)


class StreamSource:
    """Drive beats into a DUT stream *input* ``<name>__payload/__valid/__ready``.

    Parameters
    ----------
    dut:
        The cocotb top handle.
    name:
        Stream member name (the port prefix before ``__``).
    clk:
        Clock handle (the drivers act on its falling edge).
    encode:
        Maps a queued item to the raw payload integer (default: the item is the integer).
    idle_prob:
        Probability in [0, 1) of inserting an idle cycle (valid low) before a beat.
    seed:
        Seed of the private random generator for idle cycles.

    Members
    -------
    sent:
        Beats accepted by the DUT so far.
    """

    def __init__(self, dut, name: str, clk, *, encode: Callable[[Any], int] | None = None,
                 idle_prob: float = 0.0, seed: int = 0):
        _bind_stream(self, dut, name, clk, "idle_prob", idle_prob, seed)
        self._encode = encode if encode is not None else int
        self._idle_prob = float(idle_prob)
        self._queue: deque = deque()
        self._presenting = False
        self._more = Event()
        self.sent = 0
        if self._valid is not None:
            self._valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def put(self, items: Iterable[Any]) -> None:
        """Queue items to send, in order."""
        self._queue.extend(items)
        self._more.set()

    @property
    def pending(self) -> int:
        """Beats queued and not yet accepted."""
        return len(self._queue)

    async def wait_done(self, timeout_cycles: int | None = None) -> None:
        """Wait until every queued beat has been accepted.

        Raises
        ------
        StreamTimeout
            If beats are still pending after ``timeout_cycles`` clock cycles.
        """
        cycles = 0
        falling = FallingEdge(self._clk)
        while self._queue:
            if timeout_cycles is not None and cycles >= timeout_cycles:
                raise StreamTimeout(f"{self.name}: {len(self._queue)} beats still pending "
                                    f"after {cycles} cycles ({self.sent} sent)")
            await falling
            cycles += 1

    def stop(self) -> None:
        """Stop driving (valid is left low if it was not raised)."""
        self._task.cancel()

    async def _run(self) -> None:
        falling = FallingEdge(self._clk)
        read_only = ReadOnly()
        fired = False
        while True:
            await falling
            if fired:
                # The beat presented last cycle was taken at the rising edge just past.
                self._queue.popleft()
                self.sent += 1
                self._presenting = False
                fired = False
            if not self._presenting and self._queue:
                if self._idle_prob and self._rng.random() < self._idle_prob:
                    pass  # idle cycle: valid stays low before this beat
                else:
                    self._payload.value = self._encode(self._queue[0])
                    self._presenting = True
            if self._valid is not None:
                self._valid.value = int(self._presenting)
            if self._presenting:
                await read_only
                fired = _high(self._ready)
            elif not self._queue:
                # Nothing to send: sleep until put() instead of waking every cycle, so a
                # long computation between loads costs no Python time per cycle.
                self._more.clear()
                await self._more.wait()


class StreamSink:
    """Accept beats from a DUT stream *output* ``<name>__payload/__valid/__ready``.

    Parameters
    ----------
    dut, name, clk:
        As for :class:`StreamSource`.
    decode:
        Maps the raw payload integer to the stored item (default: the integer).
    backpressure_prob:
        Probability in [0, 1) that ``ready`` is low in a cycle.
    seed:
        Seed of the private random generator for back-pressure.

    Members
    -------
    items:
        Beats received so far, in order (decoded).
    """

    def __init__(self, dut, name: str, clk, *, decode: Callable[[int], Any] | None = None,
                 backpressure_prob: float = 0.0, seed: int = 0):
        _bind_stream(self, dut, name, clk, "backpressure_prob", backpressure_prob, seed)
        self._decode = decode if decode is not None else (lambda raw: raw)
        self._bp_prob = float(backpressure_prob)
        self.items: list = []
        if self._ready is not None:
            self._ready.value = 0
        self._task = cocotb.start_soon(self._run())

    async def wait_for(self, count: int, timeout_cycles: int | None = None) -> list:
        """Wait until ``count`` beats have arrived and return the first ``count``.

        Raises
        ------
        StreamTimeout
            If fewer than ``count`` arrived within ``timeout_cycles`` clock cycles.
        """
        cycles = 0
        falling = FallingEdge(self._clk)
        while len(self.items) < count:
            if timeout_cycles is not None and cycles >= timeout_cycles:
                raise StreamTimeout(f"{self.name}: {len(self.items)} of {count} beats "
                                    f"received after {cycles} cycles")
            await falling
            cycles += 1
        return self.items[:count]

    def stop(self) -> None:
        """Stop accepting (ready is left as it was)."""
        self._task.cancel()

    async def _run(self) -> None:
        falling = FallingEdge(self._clk)
        read_only = ReadOnly()
        while True:
            await falling
            ready = not (self._bp_prob and self._rng.random() < self._bp_prob)
            if self._ready is not None:
                self._ready.value = int(ready)
            if ready:
                await read_only
                if _high(self._valid):
                    self.items.append(self._decode(self._payload.value.to_unsigned()))
                elif not self._bp_prob and self._valid is not None:
                    # Ready stays high on its own: sleep until valid rises instead of waking
                    # every cycle.  Valid may rise right after a clock edge or, if the DUT
                    # makes it combinationally, at any time; either way the settled values
                    # in this time step's ReadOnly phase decide the transfer at the next
                    # rising edge, which is then awaited so the beat is recorded once.
                    await RisingEdge(self._valid)
                    await read_only
                    if _high(self._valid):
                        self.items.append(self._decode(self._payload.value.to_unsigned()))
                        await RisingEdge(self._clk)
