"""One processing element of the systolic array, serving all three dataflows.

The PE has four registered paths (see docs/rtl.md for the timing):

* horizontal operand ``h`` with its ``valid``/``first`` flags, passed to the right neighbour;
* vertical operand ``v``, passed down: the B stream (os) or the stationary operand while it is
  being preloaded (ws, is);
* the stationary operand of ws/is in two registers: a shadow ``w`` that takes ``v`` when the
  column's ``latch`` strobe is high, and ``s``, the multiplier's operand, that takes ``w``
  with the first vector of a tile (``h_first`` beside a valid ``h``).  The switch to the next
  tile's operand thus travels through the array with the tile's first vector, one row and
  one column a cycle, so the next tile's vectors can follow the last of the current one
  without a gap while its operand is preloaded and latched underneath;
* the accumulator ``acc``, which is also the partial-sum output to the PE below: ws/is add
  the partial sum from above (``acc <= p_in + a·b``); os accumulates in place and, when the
  column drains, shifts accumulators down the column (``acc <= p_in``).

Operands of the multiplier per dataflow (A activations, B weights)::

    ws:  a = h (A streaming),   b = s (B stationary)
    os:  a = h (A streaming),   b = v (B streaming)
    is:  a = s (A stationary),  b = h (B streaming)

The multiplier's ``latency`` register stages delay the product; ``valid``/``first`` are delayed
by the same amount beside it, so every dataflow simply sees the whole array shifted in time.
"""

from __future__ import annotations

from amaranth.hdl import (
    ClockSignal,
    Const,
    Instance,
    Module,
    Mux,
    ResetSignal,
    Signal,
    signed,
)
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.dsp import DEFAULT_LATENCY, Multiplier
from rtl.params import ArrayParams, Dataflow

from .validate import rejecting

__all__ = ["ProcessingElement"]

_WS, _OS, _IS = Dataflow.WS.code, Dataflow.OS.code, Dataflow.IS.code


class ProcessingElement(wiring.Component):
    """Multiply-accumulate cell at row ``row`` of the array.

    Parameters
    ----------
    params:
        Operand and accumulator widths (``rows``/``cols`` are not used by one PE).
    row:
        Row index of this PE; an os drain shifts this PE only in drain steps ``< row``, so the
        rows above may already start the next tile.
    mult_latency:
        Register stages of the multiplier (0 … 4).
    target:
        Multiplier target (``"sim"``, ``"xcup"``, ``"ecp5"``).
    row_port:
        Take the row index from the ``row`` port instead of ``row`` (one Verilog module for
        every PE of an array; each instance ties the port to its row, and synthesis, which
        flattens, folds the constant as it does ``row``).

    Members
    -------
    mode : In(2)
        Dataflow code (0 ws, 1 os, 2 is); held constant while a GEMM runs.
    h_in, h_valid_in, h_first_in : In
        Horizontal operand and flags from the left; ``h_*_out`` are their registered copies.
    v_in : In
        Vertical operand from above; ``v_out`` its registered copy.
    latch : In(1)
        Column strobe: ``w <= v`` (ws/is); ``s <= w`` follows with the tile's first vector.
    drain, drain_step : In
        Column drain strobe and step index (os).
    p_in : In(signed(acc_width))
        Partial sum (ws/is) or drained accumulator (os) from the PE above.
    p_out, p_valid_out : Out
        ``acc`` and, for ws/is, whether it holds a valid partial sum.
    row : In(bits for rows − 1)
        With ``row_port``: the PE's row index, held constant.
    h_valid_q, h_first_q, p_valid_q, p_first_q, is_os, is_is, is_ws : In(1)
        With ``shared_flags`` (instead of ``mode``): the values the PE's own control
        registers would hold (the registered ``h_valid_in``/``h_first_in``; those delayed
        again by the multiplier's latency; the registered mode decode), from the array.
        Each is a pure delay of an array-wide input, so PEs on one anti-diagonal hold the
        same flags and all PEs the same decode: the array keeps one delay line instead of a
        copy per PE (what Yosys' ``opt_merge`` makes of them anyway; a simulator evaluates
        each copy every cycle), and the PE's logic is otherwise the same.
    """

    def __init__(self, params: ArrayParams, row: int = 0, mult_latency: int = DEFAULT_LATENCY,
                 target: str = "sim", *, row_port: bool = False, shared_flags: bool = False):
        with rejecting(self):
            self._setup(params, row, mult_latency, target, row_port, shared_flags)

    def _setup(self, params, row, mult_latency, target, row_port, shared_flags):
        if not isinstance(row_port, bool):
            raise TypeError(f"row_port must be True or False, not {row_port!r}")
        if not isinstance(shared_flags, bool):
            raise TypeError(f"shared_flags must be True or False, not {shared_flags!r}")
        if not isinstance(params, ArrayParams):
            raise TypeError(f"params must be an ArrayParams, not {params!r}")
        if isinstance(row, bool) or not isinstance(row, int):
            raise TypeError(f"row must be an integer, not {row!r}")
        if not 0 <= row < params.rows:
            raise ValueError(f"row must be between 0 and {params.rows - 1}, not {row}")
        self._params = params
        self._row = row
        self._row_port = row_port
        self._shared_flags = shared_flags
        self._mult = Multiplier(params.a_width, params.b_width, mult_latency, target)
        hw = max(params.a_width, params.b_width)
        step_bits = max(1, (params.rows - 1).bit_length())
        super().__init__({
            **({} if shared_flags else {"mode": In(2)}),
            "h_in": In(signed(hw)), "h_valid_in": In(1), "h_first_in": In(1),
            "h_out": Out(signed(hw)), "h_valid_out": Out(1), "h_first_out": Out(1),
            "v_in": In(signed(hw)), "v_out": Out(signed(hw)),
            "latch": In(1), "drain": In(1), "drain_step": In(step_bits),
            "p_in": In(signed(params.acc_width)),
            "p_out": Out(signed(params.acc_width)), "p_valid_out": Out(1),
            **({"row": In(step_bits)} if row_port else {}),
            **({name: In(1) for name in ("h_valid_q", "h_first_q", "p_valid_q", "p_first_q",
                                         "is_os", "is_is", "is_ws")} if shared_flags else {}),
        })

    @property
    def params(self) -> ArrayParams:
        """Widths of this PE."""
        return self._params

    def elaborate(self, platform):
        m = Module()
        p = self._params
        m.submodules.mult = mult = self._mult

        # Datapath registers need no reset (only the valid/first/latch controls do); leaving
        # it out keeps the reset net off thousands of flip-flops.
        # The 1-bit controls (valid/first, mode decode, drain decision) go through ``control``:
        # see _control_ff for why ECP5 gets explicit flip-flops.
        target = self._mult.target

        def control(q, d):
            _control_ff(m, q, d, target)

        shared = self._shared_flags
        h = Signal.like(self.h_in, name="h", reset_less=True)
        v = Signal.like(self.v_in, name="v", reset_less=True)
        w = Signal.like(self.v_in, name="w", reset_less=True)
        s = Signal.like(self.v_in, name="s", reset_less=True)
        m.d.sync += [h.eq(self.h_in), v.eq(self.v_in)]
        if shared:
            hv, hf = self.h_valid_q, self.h_first_q
        else:
            hv = Signal(name="h_valid")
            hf = Signal(name="h_first")
            control(hv, self.h_valid_in)
            control(hf, self.h_first_in)
        with m.If(self.latch):
            m.d.sync += w.eq(v)
        # s changes in the edge that brings the tile's first vector into h (os ignores s)
        with m.If(self.h_first_in & self.h_valid_in):
            m.d.sync += s.eq(w)
        m.d.comb += [self.h_out.eq(h), self.h_valid_out.eq(hv), self.h_first_out.eq(hf),
                     self.v_out.eq(v)]

        # The mode is static for a whole GEMM (latched at start, two cycles before the first
        # vector arrives); a registered per-PE decode keeps its array-wide fan-out off the
        # operand and accumulator paths.
        if shared:
            is_os, is_is, is_ws = self.is_os, self.is_is, self.is_ws
        else:
            is_os = Signal(name="is_os")
            is_is = Signal(name="is_is")
            is_ws = Signal(name="is_ws")
            control(is_os, self.mode == _OS)
            control(is_is, self.mode == _IS)
            control(is_ws, self.mode == _WS)
        # The registers are max(a_width, b_width) wide; each holds a value of the operand it
        # carries in this dataflow, so truncating to that operand's width is lossless.
        m.d.comb += [
            mult.a.eq(Mux(is_is, s, h)[:p.a_width].as_signed()),
            mult.b.eq(Mux(is_os, v, Mux(is_ws, s, h))[:p.b_width].as_signed()),
        ]
        # valid/first travel beside the multiplier's pipeline.
        pv, pf = hv, hf
        if shared:
            pv, pf = self.p_valid_q, self.p_first_q
        for stage in range(0 if shared else mult.latency):
            pv_r = Signal(name=f"p_valid{stage}")
            pf_r = Signal(name=f"p_first{stage}")
            control(pv_r, pv)
            control(pf_r, pf)
            pv, pf = pv_r, pf_r

        acc = Signal(signed(p.acc_width), name="acc", reset_less=True)
        acc_valid = Signal(name="acc_valid")
        # One adder serves every dataflow, so the path is DSP output register -> one LUT ->
        # carry chain -> acc:  ws/is  acc <= p_in + a·b;  os  acc <= (first ? 0 : acc) + a·b;
        # os drain  acc <= p_in + 0.  Row r passes the accumulators of the rows above during
        # drain steps 0 … r-1; afterwards the row below has taken its content and it is free.
        # The column's drain strobe reaches the PE one cycle before it acts: the PE registers
        # its decision, so the operand selects are flip-flops, not a 6-input cone in front of
        # the carry chain.
        shift = Signal(name="drain_shift")
        take_p_in = Signal(name="take_p_in")
        row = self.row if self._row_port else self._row
        control(shift, is_os & self.drain & (self.drain_step < row))
        control(take_p_in, ~is_os | (self.drain & (self.drain_step < row)))
        operand = Mux(take_p_in, self.p_in, Mux(pf, 0, acc))
        product = Mux(shift, 0, mult.p)
        with m.If(~is_os | shift | pv):
            m.d.sync += acc.eq(operand + product)
        with m.If(~is_os):
            m.d.sync += acc_valid.eq(pv)
        m.d.comb += [self.p_out.eq(acc), self.p_valid_out.eq(acc_valid)]
        return m


def _control_ff(m: Module, q: Signal, d, target: str) -> None:
    """``q <= d`` each cycle (synchronous reset to 0), kept a flip-flop of this PE on ECP5.

    The valid/first flags of PEs on one anti-diagonal, and the mode decode of every PE, are
    the same wave: Yosys' ``opt_merge`` folds such registers into one flip-flop whose fan-out
    spans the array, and those routes (≈2.8 ns on ECP5-85) in front of the accumulator's carry
    chain set the clock.  ``opt_merge`` merges only Yosys' internal cell types, so on ECP5 each
    PE gets its own ``TRELLIS_FF`` instance (sync reset through LSR, like the inferred
    register); other targets keep the plain register, so simulation is unchanged.
    """
    if target != "ecp5":
        m.d.sync += q.eq(d)
        return
    m.submodules[f"{q.name}_ff"] = Instance(
        "TRELLIS_FF",
        p_GSR="DISABLED", p_CEMUX="1", p_CLKMUX="CLK", p_LSRMUX="LSR",
        p_SRMODE="LSR_OVER_CE", p_REGSET="RESET",
        i_CLK=ClockSignal("sync"), i_LSR=ResetSignal("sync"), i_CE=Const(1), i_DI=d, o_Q=q)
