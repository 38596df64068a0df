"""Requantiser: out = sat(round(acc · mult / 2^shift)), optional ReLU, one word per cycle.

Mirrors ``sim/models/requant.py``: round half up as "add 2^(shift−1), then arithmetic shift",
saturation to the signed output width, ReLU after saturation.  ``mult``, ``shift`` and
``relu`` are per-layer settings held stable while words flow.

Three pipeline registers: the input (so that nothing in front of the requantiser -- a
buffer read, the K split's accumulate adder -- shares a cycle with its multiplier), the
product (the multiplier, one per lane, is the long path), then round / saturate / ReLU.  The whole pipe advances when its last stage is empty or taken, so
back-pressure stalls it without losing words; with a ready sink it takes a word every cycle
(``dse.cost.transforms.requant_cycles``).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .validate import check_int

__all__ = ["Requant"]


class Requant(wiring.Component):
    """Requantise ``lanes`` signed accumulators per word.

    Parameters
    ----------
    lanes:
        Accumulators per word.
    acc_width:
        Signed accumulator width.
    out_width:
        Signed output width (8 or 16).
    mult_width:
        Unsigned multiplier width.
    shift_width:
        Bits of the shift amount.

    Attributes
    ----------
    i_stream, o_stream:
        Words of accumulators in, of requantised values out.
    mult, shift, relu:
        Per-layer settings.
    """

    def __init__(self, lanes: int = 1, acc_width: int = 32, out_width: int = 8,
                 mult_width: int = 16, shift_width: int = 6):
        for name, v, lo in (("lanes", lanes, 1), ("acc_width", acc_width, 2),
                            ("out_width", out_width, 2), ("mult_width", mult_width, 1),
                            ("shift_width", shift_width, 1)):
            check_int(self, name, v, lo)
        self.lanes, self.acc_width, self.out_width = lanes, acc_width, out_width
        self.mult_width, self.shift_width = mult_width, shift_width
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(signed(acc_width), lanes))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(signed(out_width), lanes))),
            "mult": In(unsigned(mult_width)),
            "shift": In(unsigned(shift_width)),
            "relu": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        prod_w = self.acc_width + self.mult_width + 1
        acc = Signal.like(self.i_stream.payload)
        prod = Signal(data.ArrayLayout(signed(prod_w), self.lanes))
        v0 = Signal()
        v1 = Signal()
        v2 = Signal()
        out = Signal.like(self.o_stream.payload)
        advance = ~v2 | self.o_stream.ready
        m.d.comb += [
            self.i_stream.ready.eq(advance),
            self.o_stream.valid.eq(v2),
            self.o_stream.payload.eq(out),
        ]
        lo = -(1 << (self.out_width - 1))
        hi = (1 << (self.out_width - 1)) - 1
        # shifts past the product's width give 0 for every product (a round half up of
        # |p| < 2^(prod_w − 1)): clamp them to prod_w + 1, where the offset still fits
        sh = Signal(range(prod_w + 2))
        m.d.comb += sh.eq(Mux(self.shift > prod_w + 1, prod_w + 1, self.shift))
        # 2^(sh-1) for sh > 0, else 0: the round-half-up offset
        half = Signal(prod_w + 1)
        m.d.comb += half.eq((1 << sh) >> 1)
        with m.If(advance):
            m.d.sync += [v0.eq(self.i_stream.valid), acc.eq(self.i_stream.payload),
                         v1.eq(v0), v2.eq(v1)]
            for i in range(self.lanes):
                m.d.sync += prod[i].eq(acc[i] * self.mult)
                rounded = Signal(signed(prod_w + 1), name=f"rounded{i}")
                m.d.comb += rounded.eq((prod[i] + half) >> sh)
                sat = Mux(rounded > hi, hi, Mux(rounded < lo, lo, rounded))
                m.d.sync += out[i].eq(Mux(self.relu & (sat < 0), 0, sat))
        return m
