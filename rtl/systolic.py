"""rows × cols systolic array with input skew, output de-skew and a run-time dataflow.

Inputs arrive time-aligned (one vector per cycle, as read from the row/column-banked buffers);
the array skews them itself: row ``r`` of the horizontal operand is delayed ``r`` cycles and
column ``c`` of the vertical operand and of the column controls ``c`` cycles, so that a value
presented in cycle τ is in the ``h``/``v`` registers of PE(r, c) in cycle τ + r + c + 1.  The
partial sums / drained accumulators leave at the bottom of column ``c`` skewed by ``c``; the
de-skew delays column ``c`` by ``cols − 1 − c`` so that ``out`` is again one aligned vector.

Dataflows (``mode`` = ``rtl.params.Dataflow.code``; SCALE-Sim's spatial assignment):

* ws (0): PE(r, c) holds B[k0+r][n0+c]; ``h`` row r streams A[t][k0+r]; ``out[c]`` = the
  partial C[t][n0+c] over this K tile.
* os (1): PE(r, c) accumulates C[m0+r][n0+c]; ``h`` row r streams A[m0+r][t], ``v`` column c
  streams B[t][n0+c]; a drain (``drain`` for ``rows`` cycles, step 0 … rows−1) shifts the
  accumulators out of the bottom, row m0+rows−1 first.
* is (2): PE(r, c) holds A[m0+c][k0+r]; ``h`` row r streams B[k0+r][t]; ``out[c]`` = the
  partial C[m0+c][t].

Stationary operands (ws, is) are preloaded through ``v``: the value for row r is presented
``rows − 1 − r`` cycles before ``latch``; ``latch`` copies ``v`` into the shadow register of
every PE of the column at once, and each PE moves its shadow into its stationary register
with the first vector of the next tile (``h_first``), which reaches PE(r, c) r + c cycles
after it enters.  So the latch for tile t + 1 may come once the first vector of tile t has
passed the last row (``rows`` − 1 cycles after it entered) and must come at least one cycle
before tile t + 1's first vector: tiles can follow each other every max(T, rows) cycles.
Timing and the resulting cycle formula: docs/rtl.md.
"""

from __future__ import annotations

import hashlib

from amaranth.hdl import ClockSignal, Const, Instance, Module, Mux, ResetSignal, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rtl.dsp import DEFAULT_LATENCY
from rtl.params import ArrayParams, Dataflow
from rtl.pe import ProcessingElement

from .validate import rejecting

__all__ = ["SystolicArray"]


class SystolicArray(wiring.Component):
    """The PE grid with skew and de-skew.

    Parameters
    ----------
    params:
        Array shape and widths.
    mult_latency:
        Register stages of each PE's multiplier (0 … 4); outputs come ``mult_latency`` cycles
        later than with a combinational multiplier.
    target:
        Multiplier target (``"sim"``, ``"xcup"``, ``"ecp5"``).
    pe_instances:
        Instantiate each PE by module name (one Verilog module for the whole array, its
        ``row`` port tied to each instance's row, written once by ``rtl.emit.verilog_text``)
        instead of inlining its logic, so the Verilog of a big array is converted in
        seconds; for Verilog only (Amaranth's simulator cannot run instances).  The logic is
        the same.

    Members
    -------
    mode : In(2)
        Dataflow code; constant while a GEMM runs.
    h_in : In(ArrayLayout(signed(max(a_width, b_width)), rows))
        Horizontal operand vector (A in ws/os, B in is).
    h_valid, h_first : In(1)
        The vector is valid; it is the first of a tile (os: clears the accumulators; ws/is:
        switches to the latched stationary operand).
    v_in : In(ArrayLayout(signed(max(a_width, b_width)), cols))
        Vertical operand vector (B in os; the stationary operand during a ws/is preload).
    latch, drain : In(1)
        Latch the preloaded stationary operand into the shadow registers (ws/is); drain step
        ``drain_step`` (os).
    drain_step : In(bits for rows − 1)
    out : Out(ArrayLayout(signed(acc_width), cols))
        De-skewed output vector.
    out_valid : Out(1)
    """

    def __init__(self, params: ArrayParams, mult_latency: int = DEFAULT_LATENCY,
                 target: str = "sim", pe_instances: bool = False):
        with rejecting(self):
            self._setup(params, mult_latency, target, pe_instances)

    def _setup(self, params, mult_latency, target, pe_instances):
        if not isinstance(params, ArrayParams):
            raise TypeError(f"params must be an ArrayParams, not {params!r}")
        if not isinstance(pe_instances, bool):
            raise TypeError(f"pe_instances must be True or False, not {pe_instances!r}")
        self._params = params
        self._pe_instances = pe_instances
        # ECP5 keeps each PE's control flip-flops its own (rtl.pe._control_ff); elsewhere the
        # PEs take the flags from the array's shared delay lines (the same values)
        self._shared_flags = shared = target != "ecp5"
        if pe_instances:
            # one PE component (its Verilog module, the row a port); each PE is an instance
            # of it wired through plain signals shaped like its ports
            self._pe = ProcessingElement(params, 0, mult_latency, target, row_port=True,
                                         shared_flags=shared)
            # converted by rtl.emit, not elaborated here
            self._pe._MustUse__silence = self._pe._mult._MustUse__silence = True
            self._pes = [[_PortWires(self._pe, f"pe_{r}_{c}")
                          for c in range(params.cols)] for r in range(params.rows)]
            self._mult_latency = self._pe._mult.latency
        else:
            self._pes = [[ProcessingElement(params, r, mult_latency, target, shared_flags=shared)
                          for _ in range(params.cols)] for r in range(params.rows)]
            self._mult_latency = self._pes[0][0]._mult.latency
        digest = hashlib.sha256(repr((params, self._mult_latency, target)).encode())
        self._pe_module = f"omniconv_pe_{digest.hexdigest()[:10]}"
        hw = max(params.a_width, params.b_width)
        step_bits = max(1, (params.rows - 1).bit_length())
        super().__init__({
            "mode": In(2),
            "h_in": In(data.ArrayLayout(signed(hw), params.rows)),
            "h_valid": In(1), "h_first": In(1),
            "v_in": In(data.ArrayLayout(signed(hw), params.cols)),
            "latch": In(1), "drain": In(1), "drain_step": In(step_bits),
            "out": Out(data.ArrayLayout(signed(params.acc_width), params.cols)),
            "out_valid": Out(1),
        })

    @property
    def params(self) -> ArrayParams:
        """Shape and widths of the array."""
        return self._params

    @property
    def mult_latency(self) -> int:
        """Register stages of each PE's multiplier."""
        return self._mult_latency

    def instance_modules(self) -> dict:
        """``{Verilog module name: component}`` of the modules the array instantiates by
        name when built with ``pe_instances`` (one PE module; ``rtl.emit.verilog_text``
        writes them after the top), else empty."""
        if not self._pe_instances:
            return {}
        return {self._pe_module: self._pe}

    def _pe_instance(self, r, wires):
        """An ``Instance`` of the PE module on ``wires`` (a :class:`_PortWires`), its ``row``
        port tied to ``r``."""
        ports = {"i_clk": ClockSignal("sync"), "i_rst": ResetSignal("sync")}
        for name, member in self._pe.signature.members.items():
            value = Const(r, member.shape) if name == "row" else getattr(wires, name)
            ports[f"{'i' if member.flow == In else 'o'}_{name}"] = value
        return Instance(self._pe_module, **ports)

    def elaborate(self, platform):
        m = Module()
        p = self._params
        rows, cols = p.rows, p.cols
        pes = self._pes
        for r in range(rows):
            for c in range(cols):
                if self._pe_instances:
                    m.submodules[f"pe_{r}_{c}"] = self._pe_instance(r, pes[r][c])
                else:
                    m.submodules[f"pe_{r}_{c}"] = pes[r][c]
                if not self._shared_flags:
                    m.d.comb += pes[r][c].mode.eq(self.mode)

        def delay(sig, n, name, reset_less=False):
            """Delay ``sig`` by ``n`` registers (skew / de-skew line)."""
            for i in range(n):
                reg = Signal.like(sig, name=f"{name}_d{i}", reset_less=reset_less)
                m.d.sync += reg.eq(sig)
                sig = reg
            return sig

        def taps(sig, n, name):
            """``[sig, sig delayed 1, …, sig delayed n]``: one delay line for every skew of
            ``sig`` (row r's or column c's copy is tap r or c)."""
            line = [sig]
            for i in range(n):
                reg = Signal.like(sig, name=f"{name}_d{i}", reset_less=False)
                m.d.sync += reg.eq(line[-1])
                line.append(reg)
            return line

        shared = self._shared_flags
        lat = self._mult_latency
        # h_valid / h_first reach PE(r, c)'s input delayed r + c cycles and its registers
        # r + c + 1 (+ the multiplier's latency for the product's flags): one wave for the
        # whole array, tapped per row (skew) and, with shared flags, per anti-diagonal.
        depth = rows + cols - 1 + lat if shared else rows - 1
        hv_wave = taps(self.h_valid, depth, "hv_wave")
        hf_wave = taps(self.h_first, depth, "hf_wave")
        if shared:
            # the mode decode each PE would register (the same value in every PE)
            decode = {}
            for name, code in (("is_os", Dataflow.OS.code), ("is_is", Dataflow.IS.code),
                               ("is_ws", Dataflow.WS.code)):
                decode[name] = Signal(name=name)
                m.d.sync += decode[name].eq(self.mode == code)
            for r in range(rows):
                for c in range(cols):
                    pe = pes[r][c]
                    m.d.comb += [pe.h_valid_q.eq(hv_wave[r + c + 1]),
                                 pe.h_first_q.eq(hf_wave[r + c + 1]),
                                 pe.p_valid_q.eq(hv_wave[r + c + 1 + lat]),
                                 pe.p_first_q.eq(hf_wave[r + c + 1 + lat]),
                                 *(getattr(pe, k).eq(v) for k, v in decode.items())]

        # Left edge: row r skewed by r cycles, together with its flags.
        for r in range(rows):
            pe = pes[r][0]
            m.d.comb += [
                pe.h_in.eq(delay(self.h_in[r], r, f"h_skew{r}", reset_less=True)),
                pe.h_valid_in.eq(hv_wave[r]),
                pe.h_first_in.eq(hf_wave[r]),
            ]
            for c in range(1, cols):
                left, pe = pes[r][c - 1], pes[r][c]
                m.d.comb += [pe.h_in.eq(left.h_out), pe.h_valid_in.eq(left.h_valid_out),
                             pe.h_first_in.eq(left.h_first_out)]

        # Top edge: column c skewed by c cycles; its controls reach every PE of the column at
        # once (a column-wide strobe: the preloaded values sit in all rows in the same cycle).
        latch_line = taps(self.latch, cols - 1, "latch_skew")
        drain_line = taps(self.drain, cols, "drain_skew")
        step_line = taps(self.drain_step, cols - 1, "step_skew")
        out_cols = []
        for c in range(cols):
            v_top = delay(self.v_in[c], c, f"v_skew{c}", reset_less=True)
            latch, drain, step = latch_line[c], drain_line[c], step_line[c]
            m.d.comb += [pes[0][c].v_in.eq(v_top), pes[0][c].p_in.eq(Const(0))]
            for r in range(rows):
                pe = pes[r][c]
                m.d.comb += [pe.latch.eq(latch), pe.drain.eq(drain), pe.drain_step.eq(step)]
                if r:
                    m.d.comb += [pe.v_in.eq(pes[r - 1][c].v_out),
                                 pe.p_in.eq(pes[r - 1][c].p_out)]
            out_cols.append(delay(pes[rows - 1][c].p_out, cols - 1 - c, f"out_deskew{c}",
                                  reset_less=True))
        for c in range(cols):
            m.d.comb += self.out[c].eq(out_cols[c])
        # A drain step acts (and the bottom row shows its output) one cycle after the strobe
        # reaches the column: the PEs register their shift decision.  All columns are aligned
        # after the de-skew; column 0's flag (its own delay line) stands for the vector.
        valid = Mux(self.mode == Dataflow.OS.code, drain_line[1], pes[rows - 1][0].p_valid_out)
        m.d.comb += self.out_valid.eq(delay(valid, cols - 1, "outv_deskew0"))
        return m


class _PortWires:
    """One signal per port of ``pe``, same shapes, named ``<prefix>_<port>``: the wires of an
    instance of the PE's module."""

    def __init__(self, pe, prefix):
        for name, member in pe.signature.members.items():
            setattr(self, name, Signal(member.shape, name=f"{prefix}_{name}"))
