"""Stream words out of synchronous memory read ports (the datapath's buffer readers)."""

from __future__ import annotations

from amaranth.hdl import Module, Signal

__all__ = ["memory_streamer"]


def memory_streamer(m: Module, read_ports, ready, words: int, name: str):
    """Stream words out of synchronous memory read ports, one per cycle, under back-pressure.

    The read data is the output register: a word is read (``en``) whenever the register is
    empty or its word is being taken, and is valid the next cycle.  The caller loads
    ``addr``/``left`` to start a run, and drives the stream's ``valid`` from the returned
    ``valid`` and its payload from the ports' ``data``.  Returns ``(addr, left, valid)``.
    """
    addr = Signal(range(words + 1), name=f"{name}_addr")
    left = Signal(range(words + 1), name=f"{name}_left")
    valid = Signal(name=f"{name}_valid")
    advance = ~valid | ready
    for rp in read_ports:
        m.d.comb += [rp.en.eq(advance), rp.addr.eq(addr)]
    with m.If(advance):
        m.d.sync += valid.eq(left != 0)
        with m.If(left != 0):
            m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
    return addr, left, valid
