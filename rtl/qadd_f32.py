"""QLinearAdd for quantised ONNX models: onnxruntime's float32 add of two uint8 tensors, in
integers.

Mirrors ``dse/qlinear.py``'s ``reference`` bit for bit, and so ``sim/models/qdq_network.py``'s
``qlinear_add``: with the per-layer settings ``r_a = fl(s_a/s_c)``, ``r_b = fl(s_b/s_c)``,
``F = fl(zp_c − fma(r_a, zp_a, fl(r_b · zp_b)))`` (``dse.qlinear.qadd_settings``), each element
is::

    c = sat_u8(rint(fma(a, r_a, fma(b, r_b, F))))

with ``a``, ``b`` the uint8 operands, each ``fma`` the exact ``x·y + z`` rounded once to float32
(half to even), ``rint`` half to even.  Operands and results are the overlay's stored form,
signed int8 equal to the uint8 value − 128.

Each fused multiply-add is done exactly (docs/algorithms.md, "QLinearAdd unit"): the 32-bit
product of the operand and the 24-bit mantissa, shifted up by 3 bits (two guard bits and a
sticky bit), plus the addend aligned to it in a 62-bit signed window (its bits below window
bit 1 folded into the sticky bit 0); the sum's magnitude normalised by its leading-zero count
and rounded to 24 significant bits half to even.  Where the product is 0, or below a quarter of
the addend's last place (exponents 34 or more apart), the result is the addend itself.  The inner addend ``F`` is a per-layer value: its alignment is
shared by the lanes.  The outer result is rounded to an integer (half to even, a right shift of
at most 25 bits with guard and sticky) and saturated.

Supported range (``dse.qlinear.RATIO_MIN_LOG2``/``RATIO_MAX_LOG2``, refused beyond it by
``qadd_settings``): ``2^-64 ≤ r_a, r_b ≤ 2^64``, with any zero points; ``F`` is then 0 or of
magnitude in [2^-87, 2^74], every exponent fits the 8-bit ports and every intermediate value
is a normal float32.

Eight pipeline registers: the input; the product ``b · r_b`` (one DSP); the inner window sum;
the inner result (normalise and round); the aligned inner result beside the product
``a · r_a`` (the second DSP); the outer window sum; the outer result; the integer, saturated.
The whole pipe advances when its last stage is empty or taken, so back-pressure stalls it
without losing words; with a ready sink it takes a word every cycle.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

# the numerics, shared with the settings (dse/qlinear.py)
from .params import FLOAT32_MANTISSA_BITS as MANTISSA_BITS
from .params import QADD_ADDEND_MAX_SHIFT as ADDEND_MAX_SHIFT
from .params import QADD_ADDEND_MIN_SHIFT as ADDEND_MIN_SHIFT
from .params import QADD_EXPONENT_BITS as EXPONENT_BITS
from .params import QADD_GUARD as GUARD
from .params import QADD_LATENCY
from .params import QADD_WINDOW_BITS as WINDOW_BITS
from .validate import check_int

__all__ = ["QAddF32", "PIPELINE_DEPTH"]

#: Internal exponent arithmetic: holds every sum of 8-bit exponents and window offsets.
_EXP = signed(10)
#: Registers between an accepted input word and its output word.
PIPELINE_DEPTH = QADD_LATENCY


def _align(m: Module, mant, shift, name: str) -> Signal:
    """The magnitude of an addend ``mant`` placed at window bit ``shift`` (signed, clamped to
    [−24, 36]): exact at bit 1 and above, the bits below folded into the sticky bit 0."""
    lo, hi = ADDEND_MIN_SHIFT, ADDEND_MAX_SHIFT
    amount = Signal(range(hi - lo + 1), name=f"{name}_amount")
    m.d.comb += amount.eq(Mux(shift < lo, 0, Mux(shift > hi, hi - lo, shift - lo)))
    wide = Signal(MANTISSA_BITS + hi - lo, name=f"{name}_wide")       # mant · 2^(shift + 24)
    m.d.comb += wide.eq(mant << amount)
    drop = MANTISSA_BITS + 1                                          # bits below window bit 1
    mag = Signal(WINDOW_BITS - 2, name=name)
    m.d.comb += mag.eq(Cat(wide[:drop].any(), wide[drop:]))
    return mag


def _window_sum(product, sign, mag):
    """``(product << 3) ± mag``: the sign folded into the adder as a one's complement and a
    carry in."""
    ones = Cat(mag ^ sign.replicate(len(mag)), sign).as_signed()
    return (product << GUARD) + ones + sign


def _round(m: Module, total, name: str):
    """A signed window sum rounded to 24 significant bits, half to even: ``(sign, mantissa,
    exponent offset, zero)``, the mantissa normalised unless zero and the value
    ``mantissa · 2^(e_unit + offset)`` for the window's unit ``2^e_unit``."""
    sign = Signal(name=f"{name}_sign")
    mag = Signal(64, name=f"{name}_mag")
    m.d.comb += [sign.eq(total[-1]),
                 mag.eq((total.as_unsigned() ^ sign.replicate(len(total))) + sign)]
    # normalise by halves: lz's bits from 32 down to 1, mag << lz alongside
    cur = mag
    bits = []
    for step in (32, 16, 8, 4, 2, 1):
        z = Signal(name=f"{name}_z{step}")
        nxt = Signal(64, name=f"{name}_n{step}")
        m.d.comb += [z.eq(cur[64 - step:] == 0), nxt.eq(Mux(z, cur << step, cur))]
        bits.append(z)
        cur = nxt
    zero = ~mag.any()
    lz = Signal(6, name=f"{name}_lz")
    m.d.comb += lz.eq(Cat(*reversed(bits)))
    lsb = 64 - MANTISSA_BITS                                          # mantissa at bits 40..63
    top = Signal(MANTISSA_BITS + 1, name=f"{name}_top")              # and the guard bit
    m.d.comb += top.eq(cur[lsb - 1:64])
    # sticky: the bits of mag below the guard bit, which sits at bit lsb − 1 − lz of mag
    sticky = cur[:lsb - 1].any()
    mant = top[1:]
    up = top[0] & (sticky | mant[0])
    rounded = Signal(MANTISSA_BITS + 1, name=f"{name}_rounded")
    m.d.comb += rounded.eq(mant + up)
    carry = rounded[MANTISSA_BITS]                                    # 2^24: becomes 2^23
    out = Signal(MANTISSA_BITS, name=f"{name}_mant")
    m.d.comb += out.eq(Cat(rounded[:MANTISSA_BITS - 1], rounded[MANTISSA_BITS - 1] | carry))
    offset = Signal(_EXP, name=f"{name}_offset")
    m.d.comb += offset.eq(lsb - lz + carry)
    return sign, out, offset, zero


class QAddF32(wiring.Component):
    """QLinearAdd of ``lanes`` operand pairs per word, as onnxruntime computes it.

    Parameters
    ----------
    lanes:
        Operand pairs per word.

    Attributes
    ----------
    i_stream:
        Words ``{"a": lanes × signed(8), "b": lanes × signed(8)}``, each operand the uint8
        value − 128.
    o_stream:
        Words ``{"c": lanes × signed(8)}`` of results, the uint8 value − 128.  (A struct, not a
        bare array: a port array makes Amaranth name wires ``o_stream__payload[0]``, which
        collide with the bit names synth_ecp5's abc9 gives ``o_stream__payload`` -- Yosys
        issue #4349.)
    ra_mantissa, ra_exponent, rb_mantissa, rb_exponent:
        Per-layer settings: ``r = mantissa · 2^exponent`` (``2^23 ≤ mantissa < 2^24``; the
        ratios are positive).
    f_sign, f_mantissa, f_exponent:
        ``F = (−1)^sign · mantissa · 2^exponent`` (mantissa in [2^23, 2^24), or 0 for
        ``F = 0``).  All settings come from ``dse.qlinear.qadd_settings(...).registers()``
        and are held stable while words flow.
    """

    def __init__(self, lanes: int = 1):
        check_int(self, "lanes", lanes, 1)
        self.lanes = lanes
        operands = data.ArrayLayout(signed(8), lanes)
        super().__init__({
            "i_stream": In(stream.Signature(data.StructLayout({"a": operands, "b": operands}))),
            "o_stream": Out(stream.Signature(data.StructLayout({"c": operands}))),
            "ra_mantissa": In(unsigned(MANTISSA_BITS)),
            "ra_exponent": In(signed(EXPONENT_BITS)),
            "rb_mantissa": In(unsigned(MANTISSA_BITS)),
            "rb_exponent": In(signed(EXPONENT_BITS)),
            "f_sign": In(1),
            "f_mantissa": In(unsigned(MANTISSA_BITS)),
            "f_exponent": In(signed(EXPONENT_BITS)),
        })

    def elaborate(self, platform):
        m = Module()
        n, mb = self.lanes, MANTISSA_BITS
        valid = [Signal(name=f"v{i}") for i in range(PIPELINE_DEPTH)]
        advance = ~valid[-1] | self.o_stream.ready
        word = Signal.like(self.i_stream.payload)
        out = Signal.like(self.o_stream.payload)
        m.d.comb += [
            self.i_stream.ready.eq(advance),
            self.o_stream.valid.eq(valid[-1]),
            self.o_stream.payload.eq(out),
        ]

        # shared by the lanes: F aligned to the product b · r_b, and whether F alone is the
        # inner result (the product more than 33 bits below it)
        f_shift = Signal(_EXP)
        m.d.comb += f_shift.eq(self.f_exponent - self.rb_exponent + GUARD)
        f_mag = _align(m, self.f_mantissa, f_shift, "f_mag")
        f_window = Signal(signed(WINDOW_BITS - 1))
        m.d.comb += f_window.eq(Mux(self.f_sign, -f_mag, f_mag))
        f_alone = Signal()
        m.d.comb += f_alone.eq((self.f_mantissa != 0) & (f_shift > ADDEND_MAX_SHIFT))
        ra_unit = Signal(_EXP)
        m.d.comb += ra_unit.eq(self.ra_exponent - GUARD)

        with m.If(advance):
            m.d.sync += [valid[0].eq(self.i_stream.valid), word.eq(self.i_stream.payload)]
            m.d.sync += [valid[i + 1].eq(valid[i]) for i in range(PIPELINE_DEPTH - 1)]
            for i in range(n):
                def reg(shape, stage, name):
                    return Signal(shape, name=f"{name}{stage}_{i}")
                # stage 1: b · r_b (exact, 32 bits); the uint8 values are the stored ones + 128
                a1, b_zero1 = reg(8, 1, "a"), reg(1, 1, "b_zero")
                pb1 = reg(mb + 8, 1, "pb")
                a_u = Cat(word.a[i][:7], ~word.a[i][7])
                b_u = Cat(word.b[i][:7], ~word.b[i][7])
                m.d.sync += [a1.eq(a_u), b_zero1.eq(b_u == 0), pb1.eq(b_u * self.rb_mantissa)]
                # stage 2: the inner window sum
                a2, b_zero2 = reg(8, 2, "a"), reg(1, 2, "b_zero")
                sum2 = reg(signed(WINDOW_BITS), 2, "inner_sum")
                m.d.sync += [a2.eq(a1), b_zero2.eq(b_zero1),
                             sum2.eq((pb1 << GUARD) + f_window)]
                # stage 3: the inner result fl(b · r_b + F): F itself for b = 0 or F ≫ b · r_b
                a3, s3, m3 = reg(8, 3, "a"), reg(1, 3, "i_sign"), reg(mb, 3, "i_mant")
                e3 = reg(_EXP, 3, "i_exp")
                sign, mant, offset, zero = _round(m, sum2, f"inner{i}")
                m.d.sync += a3.eq(a2)
                with m.If(b_zero2 | f_alone):
                    m.d.sync += [s3.eq(self.f_sign), m3.eq(self.f_mantissa),
                                 e3.eq(self.f_exponent)]
                with m.Else():
                    m.d.sync += [s3.eq(sign), m3.eq(Mux(zero, 0, mant)),
                                 e3.eq(self.rb_exponent - GUARD + offset)]
                # stage 4: the inner result aligned to the product a · r_a; for a = 0, or the
                # product more than 33 bits below it, the inner result alone, placed at bit 1
                i_shift = Signal(_EXP, name=f"i_shift{i}")
                alone = Signal(name=f"i_alone{i}")
                m.d.comb += [i_shift.eq(e3 - self.ra_exponent + GUARD),
                             alone.eq((a3 == 0) | ((m3 != 0) & (i_shift > ADDEND_MAX_SHIFT)))]
                i_window = _align(m, m3, Mux(alone, 1, i_shift), f"i_window{i}")
                pa4, alone4 = reg(mb + 8, 4, "pa"), reg(1, 4, "alone")
                window4, sign4 = reg(WINDOW_BITS - 2, 4, "i_window"), reg(1, 4, "i_sign")
                unit4 = reg(_EXP, 4, "unit")
                m.d.sync += [pa4.eq(a3 * self.ra_mantissa), alone4.eq(alone), sign4.eq(s3),
                             window4.eq(i_window), unit4.eq(Mux(alone, e3 - 1, ra_unit))]
                # stage 5: the outer window sum
                sum5, unit5 = reg(signed(WINDOW_BITS), 5, "outer_sum"), reg(_EXP, 5, "unit")
                m.d.sync += [sum5.eq(_window_sum(Mux(alone4, 0, pa4), sign4, window4)),
                             unit5.eq(unit4)]
                # stage 6: the outer result fl(a · r_a + inner)
                s6, m6, e6 = reg(1, 6, "x_sign"), reg(mb, 6, "x_mant"), reg(_EXP, 6, "x_exp")
                sign, mant, offset, zero = _round(m, sum5, f"outer{i}")
                m.d.sync += [s6.eq(sign), m6.eq(Mux(zero, 0, mant)), e6.eq(unit5 + offset)]
                # stage 7: rint (half to even), saturated to [0, 255], stored as value − 128
                right = Signal(range(mb + 2), name=f"right{i}")
                m.d.comb += right.eq(Mux(e6 < -(mb + 1), mb + 1, Mux(e6 > -1, 1, -e6)))
                shifted = Signal(2 * mb + 1, name=f"shifted{i}")
                m.d.comb += shifted.eq(Cat(Const(0, mb + 1), m6) >> right)
                q = shifted[mb + 1:]
                up = shifted[mb] & (shifted[:mb].any() | q[0])
                rounded = Signal(mb + 1, name=f"rint{i}")
                m.d.comb += rounded.eq(q + up)
                c = Signal(8, name=f"c{i}")
                with m.If(s6 | (m6 == 0)):
                    m.d.comb += c.eq(0)
                with m.Elif((e6 >= 0) | (rounded > 255)):
                    m.d.comb += c.eq(255)
                with m.Else():
                    m.d.comb += c.eq(rounded)
                m.d.sync += out.c[i].eq(Cat(c[:7], ~c[7]))
        return m
