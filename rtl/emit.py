"""Verilog of an Amaranth component, with memories that start at zero left uninitialised.

Amaranth 0.5 gives every memory an initial value, zeros included, as one ``$meminit_v2``
cell whose data it builds bit by bit in Python; Yosys then writes it as one ``mem[i] = 0;``
line per word, and Verilator turns each line into C++.  For the datapath's buffers (megabits
at real sizes) that is most of the time and memory of generating and building the Verilog,
for values that no one reads: every buffer of the datapath is written before it is read.
:func:`verilog_text` emits memories whose initial contents are all zero without an
initialiser (Verilator's models start at zero; synthesised block RAMs start at zero or are
written first) and memories with real contents (the FFT's twiddle ROMs) unchanged.

It also skips Amaranth's search for combinational cycles, which visits every input bit of
every wide operator and took half of the conversion of a 16×64 datapath (about 25 s).  The
datapath's structure does not change with its size, so ``tests/rtl/test_lint.py`` runs the
search, through Amaranth's own conversion, on a small datapath with every unit.
"""

from __future__ import annotations

from contextlib import contextmanager

from amaranth.hdl import ClockSignal, Instance, ResetSignal, Value
from amaranth.lib.wiring import In

__all__ = ["verilog_text", "module_instance", "blackbox_stub"]


@contextmanager
def _fast_emission():
    """While active, Amaranth's RTLIL emitter skips the initialiser of all-zero memories, and
    its netlist builder skips the search for combinational cycles."""
    from amaranth.back import rtlil
    from amaranth.hdl import _nir

    emitter = rtlil.ModuleEmitter
    original = emitter.emit_memory
    check = _nir.Netlist.check_comb_cycles

    def emit_memory(self, cell_idx, cell):
        if any(cell.init):
            original(self, cell_idx, cell)

    emitter.emit_memory = emit_memory
    _nir.Netlist.check_comb_cycles = lambda self: None
    try:
        yield
    finally:
        emitter.emit_memory = original
        _nir.Netlist.check_comb_cycles = check


def verilog_text(component, name: str, *, provided=()) -> str:
    """Return the Verilog of ``component`` with top module ``name`` (ports from its
    signature, plus ``clk`` and ``rst``; no source locations), all-zero memories without
    initialisers.

    A component that instantiates modules by name (``rtl.systolic.SystolicArray`` with
    ``pe_instances``, ``rtl.overlay_top.OverlayTop`` with ``datapath_module``) lists them in
    ``instance_modules()``, ``{module name: component}``; each is converted once and written
    after the top, except those named in ``provided``, whose Verilog the caller already has
    (``omniconv verilog`` writes the overlay top as its shell plus overlay.v's text).
    """
    from amaranth.back import verilog

    extra = getattr(component, "instance_modules", dict)()
    with _fast_emission():
        parts = [verilog.convert(component, name=name, emit_src=False)]
        parts += [verilog.convert(sub, name=sub_name, emit_src=False)
                  for sub_name, sub in extra.items() if sub_name not in provided]
    for sub_name, sub in extra.items():
        if sub_name in provided:
            _silence(sub)
    return "".join(parts)


def _silence(obj, seen=None) -> None:
    """Mark ``obj`` and the elaboratables it holds as used: a module whose Verilog the caller
    provides is never elaborated here, which Amaranth would otherwise warn about."""
    from amaranth.hdl import Elaboratable

    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, Elaboratable):
        obj._MustUse__silence = True
        children = vars(obj).values()
    elif isinstance(obj, (list, tuple)):
        children = obj
    elif isinstance(obj, dict):
        children = obj.values()
    else:
        return
    for child in children:
        if isinstance(child, (Elaboratable, list, tuple, dict)):
            _silence(child, seen)


def module_instance(component, module: str) -> Instance:
    """An ``Instance`` of ``module``, the Verilog :func:`verilog_text` writes for
    ``component``, on ``component``'s own port signals (named as Amaranth's converter names
    them: the signature's member paths joined by ``__``), clocked by the ``sync`` domain.

    The parent drives the component's ``In`` members and reads its ``Out`` members exactly
    as it would with the component as a submodule."""
    ports = {"i_clk": ClockSignal("sync"), "i_rst": ResetSignal("sync")}
    for path, member, value in component.signature.flatten(component):
        direction = "i" if member.flow == In else "o"
        ports[f"{direction}_{'__'.join(map(str, path))}"] = value
    return Instance(module, **ports)


def blackbox_stub(component, module: str) -> str:
    """A Verilog ``(* blackbox *)`` module ``module`` with ``component``'s ports as
    :func:`module_instance` connects them (``clk``, ``rst``, then the signature's members),
    and no body: the parent's Verilog with this stub synthesises without the component
    (``bench/synth_units.py`` measures the overlay top's shell, its datapath a stub)."""
    ports = ["input wire clk", "input wire rst"]
    for path, member, value in component.signature.flatten(component):
        direction = "input" if member.flow == In else "output"
        ports.append(f"{direction} wire [{len(Value.cast(value)) - 1}:0] "
                     f"{'__'.join(map(str, path))}")
    return f"(* blackbox *)\nmodule {module}(\n  " + ",\n  ".join(ports) + "\n);\nendmodule\n"
