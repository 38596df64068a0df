"""The compute engine: runs the conv datapath on register images the compiler wrote.

Every setting of a datapath invocation (GEMM shapes, word counts, window-generator and
shift-and-add geometry, requantisation, ...; :func:`rtl.params.datapath_registers`) is
computed once, by the compiler's plan of the layer (``dse/compiler/plan.py``, the same functions
the explorer's cycle model uses), and packed into a *register image*
(:func:`rtl.isa.pack_image`): a few :data:`rtl.isa.IMAGE_WORD_BITS`-bit words in the table
buffer, which the load engine fills from DRAM.  The hardware never derives a setting a second
time.

A command is the word address of an image.  The engine reads the image's words from the
table buffer (a synchronous read port: data one cycle after the address), holds them as the
datapath's settings (``settings``, a struct with one field per register, to be connected by
name), pulses ``start`` and waits for the datapath's ``done``; then it pulses its own
``done`` and takes the next command.  From a command's transfer to the datapath's start it
takes :func:`dse.cost.transforms.image_load_cycles` cycles (``words + 2``); the datapath's
``done`` is passed on in the same cycle.  The settings stay unchanged until the next command
is taken, so the datapath may read them throughout its run.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.isa import BUF_ADDR_BITS, IMAGE_WORD_BITS, image_words

from .validate import reject

__all__ = ["ComputeEngine", "settings_layout"]


def settings_layout(registers) -> data.StructLayout:
    """The settings struct: one unsigned field per ``(name, bits)`` register, in order (so
    its bits are the register image's, :func:`rtl.isa.pack_image`)."""
    return data.StructLayout({name: unsigned(bits) for name, bits in registers})


class ComputeEngine(wiring.Component):
    """Load a register image, start the datapath, wait for it.

    Parameters
    ----------
    registers:
        The datapath's settings as ``(name, bits)`` pairs in image order
        (:func:`rtl.params.datapath_registers`).

    Attributes
    ----------
    cmd : In(stream)
        Word address of a register image in the table buffer.
    table_addr, table_en : Out
        Table-buffer read port (data one cycle after ``table_en``).
    table_data : In(IMAGE_WORD_BITS)
        The word read.
    settings : Out(settings_layout(registers))
        The datapath's settings, held from the end of a load to the next command.
    start : Out(1)
        One-cycle pulse to the datapath.
    dp_done : In(1)
        The datapath's one-cycle ``done``.
    busy, done : Out(1)
        Between a command's transfer and its ``done``; a one-cycle pulse at the end.
    """

    def __init__(self, registers):
        try:
            registers = tuple((str(n), int(b)) for n, b in registers)
        except (TypeError, ValueError):
            reject(self, TypeError(f"registers must be (name, bits) pairs, not {registers!r}"))
        if not registers:
            reject(self, ValueError("registers must name at least one register, not none"))
        if any(b < 1 for _, b in registers):
            reject(self, ValueError(f"registers must be at least 1 bit wide, not "
                                    f"{[r for r in registers if r[1] < 1]}"))
        self.registers = registers
        #: Words of one register image.
        self.words = image_words(registers)
        super().__init__({
            "cmd": In(stream.Signature(unsigned(BUF_ADDR_BITS))),
            "table_addr": Out(BUF_ADDR_BITS), "table_en": Out(1),
            "table_data": In(IMAGE_WORD_BITS),
            "settings": Out(settings_layout(registers)),
            "start": Out(1), "dp_done": In(1),
            "busy": Out(1), "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.words
        image = [Signal(IMAGE_WORD_BITS, name=f"image{i}") for i in range(n)]
        base = Signal(BUF_ADDR_BITS)
        issued = Signal(range(n + 1))        # reads issued so far
        captured = Signal(range(n + 1))      # index of the word arriving this cycle
        arriving = Signal()                  # a read was issued last cycle
        loading = Signal()
        running = Signal()
        m.d.comb += [
            self.settings.as_value().eq(Cat(*image)[:len(self.settings.as_value())]),
            self.busy.eq(loading | running),
            self.cmd.ready.eq(~loading & ~running),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [base.eq(self.cmd.payload), issued.eq(0), captured.eq(0),
                         loading.eq(1)]
        # issue the image's reads one a cycle; capture each word the cycle after
        with m.If(loading & (issued < n)):
            m.d.comb += [self.table_en.eq(1), self.table_addr.eq(base + issued)]
            m.d.sync += issued.eq(issued + 1)
        m.d.sync += arriving.eq(loading & (issued < n))
        for i in range(n):
            with m.If(arriving & (captured == i)):
                m.d.sync += image[i].eq(self.table_data)
        with m.If(arriving):
            m.d.sync += captured.eq(captured + 1)
        # the last word is in: start the datapath (the settings now hold the whole image)
        with m.If(loading & ~arriving & (captured == n)):
            m.d.comb += self.start.eq(1)
            m.d.sync += [loading.eq(0), running.eq(1)]
        with m.If(running & self.dp_done):
            m.d.comb += self.done.eq(1)
            m.d.sync += running.eq(0)
        return m
