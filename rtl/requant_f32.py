"""Requantiser for quantised ONNX models: onnxruntime's float32 requantisation in integers.

Mirrors ``sim/models/qdq.py``'s ``requantize_exact`` bit for bit: for each int32 accumulator
(bias added), with the layer's (or channel's) scale programmed as a 24-bit mantissa ``m``
and an exponent ``e`` (``scale = m·2^e``, ``sim.models.qdq.scale_parts``)::

    a   = acc rounded to 24 significant bits, half to even      # float32(acc) = a
    p   = a · m                                                  # exact, 49 bits
    q   = p rounded to 24 significant bits, half to even         # float32(a · scale)
    out = clamp(round_half_even(q · 2^(e + d)), qmin − zp, qmax − zp) + zp

(``d`` the bits the two roundings dropped) -- what onnxruntime's QLinearConv computes with
float32 arithmetic, so a QDQ model's outputs match it value for value.  Outputs are uint8 or
int8 (``signed_out``).

Five pipeline registers: the input; the first rounding; the product (the 25 × 24 multiplier,
one per lane, is the long path); the second rounding; the final shift, clamp and zero point.
The whole pipe advances when its last stage is empty or taken, so back-pressure stalls it
without losing words; with a ready sink it takes a word every cycle
(``dse.cost.transforms.requant_f32_cycles``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import FLOAT32_MANTISSA_BITS, REQUANT_F32_LATENCY
from .validate import check_int, reject

__all__ = ["RequantF32"]

#: Significant bits of a float32.
MANTISSA_BITS = FLOAT32_MANTISSA_BITS
#: Accumulator width: QLinearConv's accumulators are int32.
ACC_WIDTH = 32
#: Width of the (signed) scale exponent: scales from 2^-127 to 2^1 fit.
EXPONENT_WIDTH = 9


def _bit_length(m: Module, value, width: int, name: str) -> Signal:
    """A signal holding the bit length of the unsigned ``value`` (0 for 0): a binary search
    over halves, ⌈log2 width⌉ stages of word-wide operations (cheaper to simulate than a
    priority chain of ``width`` conditions)."""
    out = Signal(range(width + 1), name=name)
    k = max(1, (width - 1).bit_length())
    v = Signal(1 << k, name=f"{name}_v")
    m.d.comb += v.eq(value)
    cur = v
    bits = []
    for s in reversed(range(k)):
        step = 1 << s
        c = Signal(name=f"{name}_c{s}")
        nxt = Signal(step, name=f"{name}_h{s}")
        m.d.comb += [c.eq(cur[step:2 * step].any()),
                     nxt.eq(Mux(c, cur[step:2 * step], cur[:step]))]
        bits.append(c)
        cur = nxt
    pos = Cat(*reversed(bits))
    m.d.comb += out.eq(Mux(cur[0], pos + 1, 0))
    return out


def _round_shift(m: Module, x, shift, x_width: int, name: str) -> Signal:
    """``x / 2^shift`` rounded half to even (``x`` signed, ``shift`` ≥ 0 unsigned)."""
    q = Signal(signed(x_width + 1), name=f"{name}_q")
    rem = Signal(unsigned(x_width), name=f"{name}_rem")
    half = Signal(unsigned(x_width + 1), name=f"{name}_half")
    out = Signal(signed(x_width + 1), name=name)
    m.d.comb += [
        q.eq(x >> shift),                        # arithmetic: floor
        rem.eq(x - (q << shift)),
        half.eq((1 << shift) >> 1),
        out.eq(q + ((shift != 0) & ((rem > half) | ((rem == half) & q[0])))),
    ]
    return out


class RequantF32(wiring.Component):
    """Requantise ``lanes`` int32 accumulators per word as onnxruntime does.

    Parameters
    ----------
    lanes:
        Accumulators per word.
    signed_out:
        int8 outputs (else uint8).

    Attributes
    ----------
    i_stream, o_stream:
        Words of int32 accumulators in, of 8-bit values out.
    per_word:
        The settings come with each word, one per lane (``i_stream.payload`` is a struct of
        ``acc``, ``mantissa``, ``exponent`` and ``zero_point`` arrays): per-channel
        requantisation, where each lane of each word may be another output channel.
    mantissa, exponent, zero_point:
        Without ``per_word``, per-layer settings: the scale ``mantissa · 2^exponent``
        (``2^23 ≤ mantissa < 2^24``) and the output zero point, held stable while words flow.
    """

    def __init__(self, lanes: int = 1, signed_out: bool = False, per_word: bool = False):
        check_int(self, "lanes", lanes, 1)
        for name, v in (("signed_out", signed_out), ("per_word", per_word)):
            if not isinstance(v, bool):
                reject(self, TypeError(f"{name} must be a bool, not {v!r}"))
        self.lanes, self.signed_out, self.per_word = lanes, signed_out, per_word
        self.qmin, self.qmax = (-128, 127) if signed_out else (0, 255)
        out_shape = signed(8) if signed_out else unsigned(8)
        accs = data.ArrayLayout(signed(ACC_WIDTH), lanes)
        if per_word:
            in_shape = data.StructLayout({
                "acc": accs,
                "mantissa": data.ArrayLayout(unsigned(MANTISSA_BITS), lanes),
                "exponent": data.ArrayLayout(signed(EXPONENT_WIDTH), lanes),
                "zero_point": data.ArrayLayout(signed(9), lanes)})
            settings = {}
        else:
            in_shape = accs
            settings = {"mantissa": In(unsigned(MANTISSA_BITS)),
                        "exponent": In(signed(EXPONENT_WIDTH)),
                        "zero_point": In(signed(9))}
        super().__init__({
            "i_stream": In(stream.Signature(in_shape)),
            "o_stream": Out(stream.Signature(data.ArrayLayout(out_shape, lanes))),
            **settings,
        })

    def elaborate(self, platform):
        m = Module()
        n = self.lanes
        mb = MANTISSA_BITS
        prod_w = mb + 1 + mb                          # |a| ≤ 2^24, m < 2^24: 49 bits signed
        valid = [Signal(name=f"v{i}") for i in range(REQUANT_F32_LATENCY)]
        advance = ~valid[-1] | self.o_stream.ready
        acc = Signal(data.ArrayLayout(signed(ACC_WIDTH), n))
        a_q = Signal(data.ArrayLayout(signed(mb + 2), n))
        a_d = Signal(data.ArrayLayout(unsigned(4), n))
        prod = Signal(data.ArrayLayout(signed(prod_w), n))
        p_d1 = Signal(data.ArrayLayout(unsigned(4), n))
        p_q = Signal(data.ArrayLayout(signed(mb + 2), n))
        total = Signal(data.ArrayLayout(signed(EXPONENT_WIDTH + 2), n))
        out = Signal.like(self.o_stream.payload)
        m.d.comb += [
            self.i_stream.ready.eq(advance),
            self.o_stream.valid.eq(valid[-1]),
            self.o_stream.payload.eq(out),
        ]
        if self.per_word:
            # the settings travel with their word: stage k's settings are the word's
            # that stage k holds (mantissa used in stage 2, exponent 3, zero point 4)
            sets = [Signal(data.StructLayout({
                "mantissa": data.ArrayLayout(unsigned(MANTISSA_BITS), n),
                "exponent": data.ArrayLayout(signed(EXPONENT_WIDTH), n),
                "zero_point": data.ArrayLayout(signed(9), n)}), name=f"set{k}")
                for k in range(4)]
            payload = self.i_stream.payload
            with m.If(advance):
                m.d.sync += [sets[0].mantissa.eq(payload.mantissa),
                             sets[0].exponent.eq(payload.exponent),
                             sets[0].zero_point.eq(payload.zero_point)]
                m.d.sync += [sets[k + 1].eq(sets[k]) for k in range(3)]
            mantissa = [sets[1].mantissa[i] for i in range(n)]
            exponent = [sets[2].exponent[i] for i in range(n)]
            zero_point = [sets[3].zero_point[i] for i in range(n)]
            acc_in = payload.acc
        else:
            mantissa = [self.mantissa] * n
            exponent = [self.exponent] * n
            zero_point = [self.zero_point] * n
            acc_in = self.i_stream.payload
        with m.If(advance):
            m.d.sync += [valid[0].eq(self.i_stream.valid), acc.eq(acc_in)]
            m.d.sync += [valid[i + 1].eq(valid[i]) for i in range(REQUANT_F32_LATENCY - 1)]
            for i in range(n):
                # stage 1: acc to 24 significant bits (float32(acc)); at most 8 bits drop
                mag = Signal(unsigned(ACC_WIDTH + 1), name=f"mag{i}")
                m.d.comb += mag.eq(Mux(acc[i] < 0, -acc[i], acc[i]))
                width = _bit_length(m, mag, ACC_WIDTH + 1, f"acc_len{i}")
                drop = Signal(range(ACC_WIDTH - mb + 2), name=f"acc_drop{i}")
                m.d.comb += drop.eq(Mux(width > mb, width - mb, 0))
                m.d.sync += [a_q[i].eq(_round_shift(m, acc[i], drop, ACC_WIDTH, f"a{i}")),
                             a_d[i].eq(drop)]
                # stage 2: the exact product with the mantissa
                m.d.sync += [prod[i].eq(a_q[i] * mantissa[i]), p_d1[i].eq(a_d[i])]
                # stage 3: the product to 24 significant bits (float32(a · scale))
                pmag = Signal(unsigned(prod_w), name=f"pmag{i}")
                m.d.comb += pmag.eq(Mux(prod[i] < 0, -prod[i], prod[i]))
                pwidth = _bit_length(m, pmag, prod_w, f"p_len{i}")
                pdrop = Signal(range(prod_w), name=f"p_drop{i}")
                m.d.comb += pdrop.eq(Mux(pwidth > mb, pwidth - mb, 0))
                m.d.sync += [p_q[i].eq(_round_shift(m, prod[i], pdrop, prod_w, f"p{i}")),
                             total[i].eq(exponent[i] + p_d1[i] + pdrop)]
                # stage 4: q · 2^total rounded half to even, clamped, plus the zero point.
                # |q| ≤ 2^24, so a right shift of 26 or more leaves 0; a left shift of q ≠ 0
                # by 9 or more saturates every 8-bit range.
                right = Signal(range(27), name=f"right{i}")
                m.d.comb += right.eq(Mux(total[i] < -26, 26, -total[i]))
                rounded = _round_shift(m, p_q[i], right, mb + 2, f"r{i}")
                left = Signal(signed(mb + 2 + 9), name=f"left{i}")
                m.d.comb += left.eq(Mux(total[i] > 8,
                                        Mux(p_q[i] < 0, -(1 << 20), Mux(p_q[i] == 0, 0, 1 << 20)),
                                        p_q[i] << total[i][:4]))
                value = Signal(signed(mb + 2 + 9), name=f"value{i}")
                m.d.comb += value.eq(Mux(total[i] < 0, rounded, left))
                lo = Signal(signed(11), name=f"lo{i}")
                hi = Signal(signed(11), name=f"hi{i}")
                m.d.comb += [lo.eq(self.qmin - zero_point[i]),
                             hi.eq(self.qmax - zero_point[i])]
                clamped = Mux(value < lo, lo, Mux(value > hi, hi, value))
                m.d.sync += out[i].eq(clamped + zero_point[i])
        return m
