"""AXI4-Lite control and status registers.

:class:`AxiLiteRegisters` is a slave (ports ``s_axil_*``, 32-bit data) over a list of 32-bit
registers, register *i* at byte offset 4·i:

* ``"rw"``: a register the host writes and reads back; its value is the output port of the
  same name (reset 0).  Byte strobes select the bytes written;
* ``"ro"``: the host reads the input port of the same name; writes are ignored (OKAY);
* ``"pulse"``: writing a word with bit 0 set pulses the output port of the same name for one
  cycle (e.g. ``start``); reads return 0.

A register wider than 32 bits takes consecutive offsets, least significant word first
(``name`` at 4·i, the next 32 bits at 4·i + 4, ...).  An address past the last register,
or one that is not a multiple of 4, answers SLVERR and changes nothing (reads return 0).  The unit takes a write's address and data in either order
or together, answers one write and one read at a time, and answers a read in the cycle after
its address (RDATA registered) and a write in the cycle after both halves arrive; it never
waits on the host except through BREADY and RREADY.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .validate import reject

__all__ = ["AxiLiteRegisters", "KINDS", "OKAY", "SLVERR"]

#: Register kinds (module docstring).
KINDS = ("rw", "ro", "pulse")
#: AXI response codes.
OKAY, SLVERR = 0, 2


class AxiLiteRegisters(wiring.Component):
    """An AXI4-Lite slave over ``registers`` (module docstring).

    Parameters
    ----------
    registers:
        ``(name, kind, bits)`` triples in address order; ``bits`` 1 to 64 (a pulse: 1).
    addr_bits:
        Width of ``s_axil_awaddr`` / ``s_axil_araddr`` (enough for every register).

    Attributes
    ----------
    s_axil_* : the AXI4-Lite slave (AW, W, B, AR, R channels).
    <name> : Out (``rw``, ``pulse``) or In (``ro``) per register.
    """

    def __init__(self, registers, addr_bits: int = 12):
        regs = []
        try:
            for name, kind, bits in registers:
                regs.append((str(name), str(kind), int(bits)))
        except (TypeError, ValueError):
            reject(self, TypeError(f"registers must be (name, kind, bits) triples, not "
                                   f"{registers!r}"))
        if not regs:
            reject(self, ValueError("registers must name at least one register, not none"))
        names = [n for n, _, _ in regs]
        if len(set(names)) != len(names):
            reject(self, ValueError(f"registers must have distinct names, not {names}"))
        for name, kind, bits in regs:
            if not name.isidentifier() or name.startswith("s_axil_"):
                reject(self, ValueError(f"register names must be identifiers not starting "
                                        f"with s_axil_, not {name!r}"))
            if kind not in KINDS:
                reject(self, ValueError(f"register {name} kind must be one of "
                                        f"{', '.join(KINDS)}, not {kind!r}"))
            if not 1 <= bits <= 64 or (kind == "pulse" and bits != 1):
                reject(self, ValueError(f"register {name} must be 1 to 64 bits (a pulse 1), "
                                        f"not {bits}"))
        #: ``(name, kind, bits, first word)`` of every register.
        self.registers = []
        word = 0
        for name, kind, bits in regs:
            self.registers.append((name, kind, bits, word))
            word += -(-bits // 32)
        self.words = word
        if not isinstance(addr_bits, int) or isinstance(addr_bits, bool) \
                or (4 * self.words - 1).bit_length() > addr_bits or addr_bits > 32:
            reject(self, ValueError(f"addr_bits must be an integer from "
                                    f"{(4 * self.words - 1).bit_length()} to 32, not "
                                    f"{addr_bits!r}"))
        self.addr_bits = addr_bits
        ports = {
            "s_axil_awaddr": In(addr_bits), "s_axil_awvalid": In(1), "s_axil_awready": Out(1),
            "s_axil_wdata": In(32), "s_axil_wstrb": In(4), "s_axil_wvalid": In(1),
            "s_axil_wready": Out(1),
            "s_axil_bresp": Out(2), "s_axil_bvalid": Out(1), "s_axil_bready": In(1),
            "s_axil_araddr": In(addr_bits), "s_axil_arvalid": In(1), "s_axil_arready": Out(1),
            "s_axil_rdata": Out(32), "s_axil_rresp": Out(2), "s_axil_rvalid": Out(1),
            "s_axil_rready": In(1),
        }
        for name, kind, bits, _ in self.registers:
            ports[name] = In(bits) if kind == "ro" else Out(bits)
        super().__init__(ports)

    def offset(self, name: str) -> int:
        """Byte offset of register ``name`` (its least significant word)."""
        for n, _, _, word in self.registers:
            if n == name:
                return 4 * word
        raise KeyError(f"no register {name!r}")

    def elaborate(self, platform):
        m = Module()
        # the 32-bit words as the host sees them: (register, kind, bit slice) per word
        words = []
        for name, kind, bits, _ in self.registers:
            for lo in range(0, bits, 32):
                words.append((name, kind, lo, min(bits, lo + 32)))

        # -- write: take AW and W in either order, answer B, then take the next
        aw_addr = Signal(self.addr_bits)
        aw_full = Signal()
        w_data = Signal(32)
        w_strb = Signal(4)
        w_full = Signal()
        b_valid = Signal()
        b_resp = Signal(2)
        m.d.comb += [
            self.s_axil_awready.eq(~aw_full & ~b_valid),
            self.s_axil_wready.eq(~w_full & ~b_valid),
            self.s_axil_bvalid.eq(b_valid),
            self.s_axil_bresp.eq(b_resp),
        ]
        with m.If(self.s_axil_awvalid & self.s_axil_awready):
            m.d.sync += [aw_addr.eq(self.s_axil_awaddr), aw_full.eq(1)]
        with m.If(self.s_axil_wvalid & self.s_axil_wready):
            m.d.sync += [w_data.eq(self.s_axil_wdata), w_strb.eq(self.s_axil_wstrb),
                         w_full.eq(1)]
        with m.If(b_valid & self.s_axil_bready):
            m.d.sync += b_valid.eq(0)
        commit = aw_full & w_full & ~b_valid
        index = aw_addr[2:]
        byte_mask = Cat(*(w_strb[i].replicate(8) for i in range(4)))
        with m.If(commit):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), b_valid.eq(1),
                         b_resp.eq(SLVERR)]
            for i, (name, kind, lo, hi) in enumerate(words):
                with m.If((index == i) & (aw_addr[:2] == 0)):
                    m.d.sync += b_resp.eq(OKAY)
                    port = getattr(self, name)
                    if kind == "rw":
                        old = port[lo:hi]
                        new = (old & ~byte_mask[:hi - lo]) | (w_data[:hi - lo]
                                                              & byte_mask[:hi - lo])
                        m.d.sync += port[lo:hi].eq(new)
                    elif kind == "pulse":
                        m.d.comb += port.eq(w_data[0] & w_strb[0])
        # -- read: registered data, one read at a time
        r_valid = Signal()
        r_data = Signal(32)
        r_resp = Signal(2)
        m.d.comb += [
            self.s_axil_arready.eq(~r_valid),
            self.s_axil_rvalid.eq(r_valid),
            self.s_axil_rdata.eq(r_data),
            self.s_axil_rresp.eq(r_resp),
        ]
        with m.If(r_valid & self.s_axil_rready):
            m.d.sync += r_valid.eq(0)
        with m.If(self.s_axil_arvalid & self.s_axil_arready):
            rindex = self.s_axil_araddr[2:]
            m.d.sync += [r_valid.eq(1), r_data.eq(0), r_resp.eq(SLVERR)]
            for i, (name, kind, lo, hi) in enumerate(words):
                with m.If((rindex == i) & (self.s_axil_araddr[:2] == 0)):
                    m.d.sync += r_resp.eq(OKAY)
                    if kind != "pulse":
                        m.d.sync += r_data.eq(getattr(self, name)[lo:hi])
        return m
