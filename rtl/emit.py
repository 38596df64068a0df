"""Verilog of an Amaranth component, with memories that start at zero left uninitialised.

Amaranth 0.5 gives every memory an initial value, zeros included, as one ``$meminit_v2``
cell whose data it builds bit by bit in Python; Yosys then writes it as one ``mem[i] = 0;``
line per word, and Verilator turns each line into C++.  For the datapath's buffers (megabits
at real sizes) that is most of the time and memory of generating and building the Verilog,
for values that no one reads: every buffer of the datapath is written before it is read.
:func:`verilog_text` emits memories whose initial contents are all zero without an
initialiser (Verilator's models start at zero; synthesised block RAMs start at zero or are
written first) and memories with real contents (the FFT's twiddle ROMs) unchanged.
"""

from __future__ import annotations

from contextlib import contextmanager

__all__ = ["verilog_text"]


@contextmanager
def _zero_memories_uninitialised():
    """While active, Amaranth's RTLIL emitter skips the initialiser of all-zero memories."""
    from amaranth.back import rtlil

    emitter = rtlil.ModuleEmitter
    original = emitter.emit_memory

    def emit_memory(self, cell_idx, cell):
        if any(cell.init):
            original(self, cell_idx, cell)

    emitter.emit_memory = emit_memory
    try:
        yield
    finally:
        emitter.emit_memory = original


def verilog_text(component, name: str) -> str:
    """Return the Verilog of ``component`` with top module ``name`` (ports from its
    signature, plus ``clk`` and ``rst``; no source locations), all-zero memories without
    initialisers."""
    from amaranth.back import verilog

    with _zero_memories_uninitialised():
        return verilog.convert(component, name=name, emit_src=False)
