"""An AXI4 slave memory for Amaranth's simulator, backed by a bytearray.

:class:`AxiMemory` serves the ``m_axi_*`` ports of a component (``rtl.dma``'s engines, later
the overlay top) from two background testbenches: :meth:`AxiMemory.read_process` (AR and R)
and :meth:`AxiMemory.write_process` (AW, W and B).  Responses come in order.  Options:

- ``read_latency`` / ``write_latency``: cycles from an AR handshake to its first R beat can
  be presented (0: the next cycle), and from a burst's last W beat to its B response
  (0: the next cycle);
- ``idle``: probability that a response beat (R or B) that could be presented is held back
  a cycle (``valid`` then stays up until taken, as AXI requires);
- ``stall``: probability that ``arready``, ``awready`` or ``wready`` is low in a cycle
  (``wready`` is also low while no write address is waiting, which AXI allows);
- ``seed``: the random generator's seed, so a failure replays exactly;
- ``error_beats``: bus-aligned addresses whose read beats come with ``rresp`` SLVERR (2)
  instead of OKAY (0), to test a master's error path.

The model checks the burst rules as it goes and raises :class:`AssertionError` on a
violation: INCR bursts only, full-width beats (``size`` = log2 of the bus bytes), at most 256
beats, bus-aligned start addresses, no burst across a 4 KiB boundary, inside the memory,
``wlast`` on exactly the last beat, and, when ``writable`` is given, strobes only on bytes it
marks.  It records every burst (``read_bursts``, ``write_bursts``: (address, beats)) and
counts the cycles it held a master back (``delay_cycles``: ready low while the master was
valid, a response beat held back while the master was ready for it, and the latency cycles of
every burst), the budget of the random-stall bound in ``tests/rtl/test_dma.py``.
"""

from __future__ import annotations

import random
from collections import deque

__all__ = ["AXI_BOUNDARY", "AXI_MAX_BEATS", "SLVERR", "AxiMemory"]

#: No burst may cross a boundary of this many bytes (AXI4).
AXI_BOUNDARY = 4096
#: Most beats of an AXI4 INCR burst.
AXI_MAX_BEATS = 256
#: ``rresp`` / ``bresp`` code of a slave error.
SLVERR = 2


class AxiMemory:
    """A bytearray behind the AXI4 ports ``<prefix>ar*``, ``r*``, ``aw*``, ``w*``, ``b*`` of
    ``dut`` (module docstring).

    Parameters
    ----------
    dut:
        The component whose ports are served.
    mem:
        The memory; byte i is at address ``base`` + i.  Writes change it in place.
    bus_bits:
        Data width of the ports in bits.
    base:
        Address of ``mem[0]``.
    read_latency, write_latency, idle, stall, seed:
        Timing (module docstring).
    writable:
        Optional set of addresses a write strobe may touch.
    error_beats:
        Optional set of bus-aligned addresses whose read beats answer SLVERR.
    prefix:
        Port name prefix.
    """

    def __init__(self, dut, mem: bytearray, bus_bits: int, *, base: int = 0,
                 read_latency: int = 0, write_latency: int = 0, idle: float = 0.0,
                 stall: float = 0.0, seed: int = 0, writable=None, prefix: str = "m_axi_",
                 error_beats=None):
        if bus_bits % 8 or bus_bits & (bus_bits - 1):
            raise ValueError(f"bus_bits must be a power of two of whole bytes, not {bus_bits}")
        self.dut, self.mem, self.base = dut, mem, base
        self.beat = bus_bits // 8
        self.read_latency, self.write_latency = read_latency, write_latency
        self.idle, self.stall = idle, stall
        self.writable = writable
        self.error_beats = frozenset(error_beats or ())
        self._prefix = prefix
        self._rng_r, self._rng_w = random.Random(seed), random.Random(seed + 1)
        self.read_bursts: list[tuple[int, int]] = []
        self.write_bursts: list[tuple[int, int]] = []
        self.delay_cycles = 0

    def _port(self, name):
        return getattr(self.dut, self._prefix + name)

    def _check_burst(self, kind: str, addr: int, length: int, size: int, burst: int) -> int:
        beats = length + 1
        assert burst == 1, f"{kind} burst at {addr:#x}: type {burst}, only INCR (1) is used"
        assert 1 << size == self.beat, (f"{kind} burst at {addr:#x}: size {size} "
                                        f"({1 << size} bytes) on a {self.beat}-byte bus")
        assert beats <= AXI_MAX_BEATS, f"{kind} burst at {addr:#x}: {beats} beats > 256"
        assert addr % self.beat == 0, f"{kind} burst at {addr:#x}: not bus-aligned"
        assert addr % AXI_BOUNDARY + beats * self.beat <= AXI_BOUNDARY, (
            f"{kind} burst at {addr:#x} of {beats} beats crosses a 4 KiB boundary")
        assert self.base <= addr and addr + beats * self.beat <= self.base + len(self.mem), (
            f"{kind} burst at {addr:#x} of {beats} beats is outside the memory")
        return beats

    async def read_process(self, ctx):
        """Serve AR and R (run as a background testbench)."""
        arvalid, arready, araddr = (self._port(n) for n in ("arvalid", "arready", "araddr"))
        arlen, arsize, arburst = (self._port(n) for n in ("arlen", "arsize", "arburst"))
        rvalid, rready, rdata = (self._port(n) for n in ("rvalid", "rready", "rdata"))
        rlast, rresp = self._port("rlast"), self._port("rresp")
        rng, queue, cycle, shown = self._rng_r, deque(), 0, False
        while True:
            ctx.set(arready, int(rng.random() >= self.stall))
            if not shown and queue and queue[0][0] <= cycle:
                if rng.random() >= self.idle:
                    _, addr, beats, i = queue[0]
                    a = addr + i * self.beat - self.base
                    ctx.set(rdata, int.from_bytes(self.mem[a:a + self.beat], "little"))
                    ctx.set(rlast, int(i == beats - 1))
                    ctx.set(rresp, SLVERR if addr + i * self.beat in self.error_beats else 0)
                    ctx.set(rvalid, 1)
                    shown = True
                elif ctx.get(rready):
                    self.delay_cycles += 1
            _, _, av, ar, a, ln, sz, bt, rv, rr = await ctx.tick().sample(
                arvalid, arready, araddr, arlen, arsize, arburst, rvalid, rready)
            if av and not ar:
                self.delay_cycles += 1
            if av and ar:
                beats = self._check_burst("read", a, ln, sz, bt)
                self.read_bursts.append((a, beats))
                queue.append([cycle + 1 + self.read_latency, a, beats, 0])
                self.delay_cycles += self.read_latency
            if rv and rr:
                queue[0][3] += 1
                if queue[0][3] == queue[0][2]:
                    queue.popleft()
                shown = False
                ctx.set(rvalid, 0)
            cycle += 1

    async def write_process(self, ctx):
        """Serve AW, W and B (run as a background testbench)."""
        awvalid, awready, awaddr = (self._port(n) for n in ("awvalid", "awready", "awaddr"))
        awlen, awsize, awburst = (self._port(n) for n in ("awlen", "awsize", "awburst"))
        wvalid, wready, wdata = (self._port(n) for n in ("wvalid", "wready", "wdata"))
        wstrb, wlast = self._port("wstrb"), self._port("wlast")
        bvalid, bready, bresp = (self._port(n) for n in ("bvalid", "bready", "bresp"))
        rng, bursts, answers = self._rng_w, deque(), deque()
        cycle, shown = 0, False
        while True:
            ctx.set(awready, int(rng.random() >= self.stall))
            w_ok = bool(bursts) and rng.random() >= self.stall
            ctx.set(wready, int(w_ok))
            if not shown and answers and answers[0] <= cycle:
                if rng.random() >= self.idle:
                    ctx.set(bresp, 0)
                    ctx.set(bvalid, 1)
                    shown = True
                elif ctx.get(bready):
                    self.delay_cycles += 1
            (_, _, av, ar, a, ln, sz, bt, wv, wr, d, st, wl,
             bv, br) = await ctx.tick().sample(awvalid, awready, awaddr, awlen, awsize, awburst,
                                               wvalid, wready, wdata, wstrb, wlast, bvalid,
                                               bready)
            if (av and not ar) or (wv and bursts and not wr):
                self.delay_cycles += 1
            if wv and wr:
                burst = bursts[0]
                addr, beats, i = burst
                assert bool(wl) == (i == beats - 1), (
                    f"write burst at {addr:#x}: wlast {wl} on beat {i} of {beats}")
                base = addr + i * self.beat
                for j in range(self.beat):
                    if st >> j & 1:
                        assert self.writable is None or base + j in self.writable, (
                            f"write strobe on byte {base + j:#x}, outside the box")
                        self.mem[base + j - self.base] = d >> (8 * j) & 0xFF
                burst[2] += 1
                if burst[2] == beats:
                    bursts.popleft()
                    answers.append(cycle + 1 + self.write_latency)
                    self.delay_cycles += self.write_latency
            if av and ar:
                beats = self._check_burst("write", a, ln, sz, bt)
                self.write_bursts.append((a, beats))
                bursts.append([a, beats, 0])
            if bv and br:
                answers.popleft()
                shown = False
                ctx.set(bvalid, 0)
            cycle += 1
