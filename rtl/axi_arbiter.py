"""One AXI4 read channel shared by several read masters (the fetch unit, the load engine).

:class:`AxiReadArbiter` takes the read-address (AR) requests of its masters in round-robin
order into one AR register toward the memory, and routes the read data (R) beats back to
the master that asked for them.

**Routing by order, not by ID.** Every burst goes to the memory with the same (absent, so
zero) ID; AXI4 then requires the slave to return the bursts in the order of their
addresses and never to interleave their beats.  The arbiter records the index of each
granted master in a FIFO (``outstanding`` entries) and sends R beats to the master at its
head, popping it on ``RLAST``.  So no ID is needed: the memory side has no ``arid`` /
``rid``, and any AXI4 slave (or interconnect port) serves it.  The price is head-of-line
blocking: a master that holds ``rready`` low holds up the bursts of the others queued
behind its burst; the fetch unit never does (its ``rready`` stays high), the load engine
does while its aligner writes buffer words.  Distinct IDs with out-of-order return would
lift that, at the cost of per-ID reorder logic that the memory controllers of the target
boards do not need to be used well.

**Round-robin, not fixed priority.** The master granted last has the lowest priority in
the next cycle, so a master whose ``arvalid`` is high is granted before any other master
is granted twice: at most ``masters`` − 1 other bursts go ahead of it.  That bound holds
for any traffic, whereas a fixed priority is fair only while the high-priority masters
keep their own demand bounded (the fetch unit's credit does; a second load engine, which
will share the channel later, would not).  Bursts are never split, and a master's bursts
keep their order; the masters' bursts interleave at burst granularity.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from rtl.isa import DRAM_ADDR_BITS
from rtl.params import BUS_BITS

from .validate import rejecting

__all__ = ["AR_FIELDS", "R_FIELDS", "AxiReadArbiter"]

#: The AR members a master drives (besides ``arvalid``), with their widths.
AR_FIELDS = {"araddr": DRAM_ADDR_BITS, "arlen": 8, "arsize": 3, "arburst": 2}
#: The R members a master receives (besides ``rvalid``); ``rdata`` is ``bus_bits`` wide.
R_FIELDS = ("rdata", "rresp", "rlast")


class AxiReadArbiter(wiring.Component):
    """Share one AXI4 read channel between ``masters`` read masters (module docstring).

    Master i meets the arbiter on the ports ``s<i>_axi_ar*`` / ``s<i>_axi_r*`` (the slave
    side of an AXI4 read channel; :meth:`attach` wires a component's ``m_axi_*`` ports to
    them), the memory on ``m_axi_ar*`` / ``m_axi_r*``.  A granted request enters the AR
    register in the cycle of its handshake and is offered to the memory from the next cycle;
    R beats pass combinationally (``rvalid`` to the owner, the owner's ``rready`` back).

    Parameters
    ----------
    masters:
        Number of read masters, an integer of at least 1.
    bus_bits:
        AXI4 data width in bits, 64, 128, 256 or 512 (every master's width).
    outstanding:
        Bursts granted and not yet ended (their last beat received), over all masters: the
        depth of the routing FIFO, an integer of at least 1.  The default holds the load
        engine's 16 and the fetch unit's 2 (at their default parameters), rounded up to a
        power of two, which costs no more LUT RAM.

    Members
    -------
    s<i>_axi_araddr : In(DRAM_ADDR_BITS), s<i>_axi_arlen : In(8), s<i>_axi_arsize : In(3),
    s<i>_axi_arburst : In(2), s<i>_axi_arvalid : In(1), s<i>_axi_arready : Out(1)
        Master i's read-address channel.
    s<i>_axi_rdata : Out(bus_bits), s<i>_axi_rresp : Out(2), s<i>_axi_rlast : Out(1),
    s<i>_axi_rvalid : Out(1), s<i>_axi_rready : In(1)
        Master i's read-data channel (``rdata``, ``rresp`` and ``rlast`` are the memory's,
        shared by all masters; ``rvalid`` is high only at the owner of the beat).
    m_axi_ar*, m_axi_r* :
        The memory's read channel, the same members on the master side of AXI4.

    Raises
    ------
    TypeError, ValueError
        For a parameter of the wrong kind or value ("*name* must be …, not …").
    """

    def __init__(self, masters: int = 2, bus_bits: int = 128, outstanding: int = 32):
        with rejecting(self):
            for name, value in (("masters", masters), ("bus_bits", bus_bits),
                                ("outstanding", outstanding)):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise TypeError(f"{name} must be an integer, not {value!r}")
            if masters < 1:
                raise ValueError(f"masters must be at least 1, not {masters}")
            if bus_bits not in BUS_BITS:
                raise ValueError(f"bus_bits must be one of {', '.join(map(str, BUS_BITS))}, "
                                 f"not {bus_bits}")
            if outstanding < 1:
                raise ValueError(f"outstanding must be at least 1, not {outstanding}")
        self._masters, self._bus_bits, self._outstanding = masters, bus_bits, outstanding
        members = {}
        for i in range(masters):
            p = f"s{i}_axi_"
            members.update({p + n: In(w) for n, w in AR_FIELDS.items()})
            members.update({p + "arvalid": In(1), p + "arready": Out(1),
                            p + "rdata": Out(bus_bits), p + "rresp": Out(2),
                            p + "rlast": Out(1), p + "rvalid": Out(1), p + "rready": In(1)})
        members.update({"m_axi_" + n: Out(w) for n, w in AR_FIELDS.items()})
        members.update({"m_axi_arvalid": Out(1), "m_axi_arready": In(1),
                        "m_axi_rdata": In(bus_bits), "m_axi_rresp": In(2),
                        "m_axi_rlast": In(1), "m_axi_rvalid": In(1), "m_axi_rready": Out(1)})
        super().__init__(members)

    @property
    def masters(self) -> int:
        """Number of read masters."""
        return self._masters

    @property
    def bus_bits(self) -> int:
        """AXI4 data width in bits."""
        return self._bus_bits

    @property
    def outstanding(self) -> int:
        """Bursts granted and not yet ended, over all masters."""
        return self._outstanding

    def port(self, index: int, name: str):
        """Return master ``index``'s member ``name`` (``"araddr"``, ``"rvalid"``, …)."""
        return getattr(self, f"s{index}_axi_{name}")

    def attach(self, m: Module, index: int, master, prefix: str = "m_axi_") -> None:
        """Wire ``master``'s AXI4 read ports ``<prefix>ar*`` / ``<prefix>r*`` to master
        port ``index``, with combinational statements added to ``m``.

        Raises
        ------
        ValueError
            If ``index`` is not a master port, or ``master``'s data width differs.
        """
        if isinstance(index, bool) or not isinstance(index, int) or \
                not 0 <= index < self._masters:
            raise ValueError(f"index must be a master port, 0 to {self._masters - 1}, "
                             f"not {index!r}")
        width = len(getattr(master, prefix + "rdata"))
        if width != self._bus_bits:
            raise ValueError(f"master's {prefix}rdata must be {self._bus_bits} bits wide, "
                             f"not {width}")
        for name in (*AR_FIELDS, "arvalid", "rready"):
            m.d.comb += self.port(index, name).eq(getattr(master, prefix + name))
        for name in ("arready", *R_FIELDS, "rvalid"):
            m.d.comb += getattr(master, prefix + name).eq(self.port(index, name))

    def elaborate(self, platform):
        m = Module()
        n = self._masters
        index_bits = max(1, (n - 1).bit_length())
        m.submodules.route = route = SyncFIFO(width=index_bits, depth=self._outstanding)

        # -- AR: round-robin grant into the AR register ---------------------------------
        last = Signal(index_bits, init=n - 1)    # the master granted last
        pick = Signal(index_bits)
        found = Signal()
        valid = [self.port(i, "arvalid") for i in range(n)]
        with m.Switch(last):
            for k in range(n):
                # the master after the one granted last comes first
                with (m.Case(k) if k < n - 1 else m.Default()):
                    order = [(k + 1 + j) % n for j in range(n)]
                    with m.If(valid[order[0]]):
                        m.d.comb += [pick.eq(order[0]), found.eq(1)]
                    for i in order[1:]:
                        with m.Elif(valid[i]):
                            m.d.comb += [pick.eq(i), found.eq(1)]
        ar_free = ~self.m_axi_arvalid | self.m_axi_arready
        grant = Signal()
        m.d.comb += grant.eq(found & ar_free & route.w_rdy)
        for i in range(n):
            m.d.comb += self.port(i, "arready").eq(grant & (pick == i))
        m.d.comb += [route.w_en.eq(grant), route.w_data.eq(pick)]
        with m.If(grant):
            m.d.sync += [self.m_axi_arvalid.eq(1), last.eq(pick)]
            with m.Switch(pick):
                for i in range(n):
                    with (m.Case(i) if i < n - 1 else m.Default()):
                        m.d.sync += [getattr(self, "m_axi_" + f).eq(self.port(i, f))
                                     for f in AR_FIELDS]
        with m.Elif(self.m_axi_arready):
            m.d.sync += self.m_axi_arvalid.eq(0)

        # -- R: beats to the master at the head of the routing FIFO, popped on RLAST ----------
        owner = route.r_data
        ready = Signal()
        with m.Switch(owner):
            for i in range(n):
                with (m.Case(i) if i < n - 1 else m.Default()):
                    m.d.comb += ready.eq(self.port(i, "rready"))
        for i in range(n):
            m.d.comb += [self.port(i, f).eq(getattr(self, "m_axi_" + f)) for f in R_FIELDS]
            m.d.comb += self.port(i, "rvalid").eq(self.m_axi_rvalid & route.r_rdy &
                                                  (owner == i))
        m.d.comb += [
            self.m_axi_rready.eq(route.r_rdy & ready),
            route.r_en.eq(self.m_axi_rvalid & self.m_axi_rready & self.m_axi_rlast),
        ]
        return m
