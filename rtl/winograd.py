"""Winograd F(m×m, 3×3) units (m = 2 or 4): the input transform Bᵀ·d·B, and the output
side Aᵀ·M·A summed position by position as the array's results drain.

The array does the (m+2)² element-wise GEMMs over channels, one per transformed position
g = (r, c), with weights the compiler has already transformed exactly
(``sim/models/winograd.py``: 2G for m = 2, 24G for m = 4).

* :class:`InputTransform`: a stream of whole tiles, one tile per cycle, a constant-matrix
  product built from shifts and adds (the constants are 0, ±1, ±2, ±4, ±5, ±8), then one
  register.
* :class:`OutputAccumulator`: Aᵀ·M·A is linear in M, so output element (i, j) is the sum
  over positions of Aᵀ[i][r]·Aᵀ[j][c]·M[r][c] (:func:`output_coefficients`; each a 0 or
  ±2^s: a shift and a sign).  The unit takes GEMM g's C vectors as they drain and adds each
  one's term to the m² accumulations of its (tile, filters) word, so the output side keeps
  m² accumulators per (tile, filter) instead of the (m+2)² results of every GEMM.
* :class:`OutputScale`: the sums divided by the weights' scale, exactly: Aᵀ M A is a
  multiple of 4 (m = 2: an arithmetic shift by 2) or of 576 (m = 4: a shift by 6, then a
  division by 9 of a multiple of 9, which is a product by 9's inverse modulo 2^width -- five
  shifted adds, as 9⁻¹ ≡ (1 − 8)(1 + 2⁶)(1 + 2¹²)(1 + 2²⁴)… mod 2^width).

Widths are exact: no wrap is possible (a partial sum over positions is bounded like the
whole), so the units equal the golden model bit for bit, and the result is the convolution
itself.

The tables are written here independently of the golden model's (rtl imports nothing of
ours); tests check that both agree through simulation.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .validate import reject

__all__ = ["WINOGRAD_BT", "WINOGRAD_AT", "transform_growth_bits", "output_coefficients",
           "InputTransform", "OutputAccumulator", "OutputScale"]

WINOGRAD_BT = {
    2: ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
    4: ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
        (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1)),
}
WINOGRAD_AT = {
    2: ((1, 1, 1, 0), (0, 1, -1, -1)),
    4: ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1)),
}


def transform_growth_bits(matrix) -> int:
    """Extra bits a 2-D transform X ↦ M·X·Mᵀ can add: ceil(log2(max row |sum|²))."""
    peak = max(sum(abs(c) for c in row) for row in matrix) ** 2
    return (peak - 1).bit_length()


def output_coefficients(m: int) -> tuple:
    """``coef[e][g]``: the weight of transformed position g = r·(m+2) + c in output element
    e = i·m + j of Aᵀ·M·A, Aᵀ[i][r]·Aᵀ[j][c]."""
    at, t = WINOGRAD_AT[m], m + 2
    return tuple(tuple(at[e // m][g // t] * at[e % m][g % t] for g in range(t * t))
                 for e in range(m * m))


def _cmul(x, c: int):
    """x·c for a small constant c, as shifts and adds (no multiplier is inferred)."""
    if c == 0:
        return None
    mag = abs(c)
    terms = [x << b if b else x for b in range(mag.bit_length()) if mag >> b & 1]
    acc = terms[0]
    for t in terms[1:]:
        acc = acc + t
    return -acc if c < 0 else acc


def _lin(xs, coeffs):
    """Σ c·x over non-zero coefficients (an expression)."""
    parts = [_cmul(x, c) for x, c in zip(xs, coeffs) if c]
    acc = parts[0]
    for p in parts[1:]:
        acc = acc + p
    return acc


def _div9_exact(y, width: int):
    """y / 9 for y a multiple of 9 within ``width`` signed bits: y · 9⁻¹ mod 2^width.

    (1 + 8)(1 − 8)(1 + 2⁶)(1 + 2¹²)… = 1 − 2^(2s) for the last factor 1 + 2^s, which is
    1 modulo 2^width once 2s ≥ width.
    """
    v = (y - (y << 3))[:width]
    s = 6
    while s < width:
        v = (v + (v << s))[:width]
        s *= 2
    return v.as_signed()


def _check(component, name, value, allowed) -> None:
    if value not in allowed:
        reject(component, ValueError(f"{name} must be one of {allowed}, not {value!r}"))


class _TileTransform(wiring.Component):
    """Y = L·X·Lᵀ per tile, then a shift; one tile per cycle with back-pressure."""

    def __init__(self, matrix, in_width: int, out_width: int, shift: int, div9: bool):
        self._mat = matrix
        self._shift = shift
        self._div9 = div9
        rows, cols = len(matrix), len(matrix[0])
        self._rows, self._cols = rows, cols
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(signed(in_width), cols * cols))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(signed(out_width), rows * rows))),
        })

    def elaborate(self, platform):
        m = Module()
        mat, r, c = self._mat, self._rows, self._cols
        x = self.i_stream.payload
        valid = Signal()
        out = Signal.like(self.o_stream.payload)
        advance = ~valid | self.o_stream.ready
        m.d.comb += [self.i_stream.ready.eq(advance), self.o_stream.valid.eq(valid),
                     self.o_stream.payload.eq(out)]
        # first L·X (r × c), then (L·X)·Lᵀ (r × r)
        t = [[_lin([x[k * c + j] for k in range(c)], mat[i]) for j in range(c)]
             for i in range(r)]
        with m.If(advance):
            m.d.sync += valid.eq(self.i_stream.valid)
            for i in range(r):
                for j in range(r):
                    y = _lin(t[i], mat[j])
                    if self._shift:
                        y = y >> self._shift
                    if self._div9:
                        y = _div9_exact(y, len(out[i * r + j]))
                    m.d.sync += out[i * r + j].eq(y)
        return m


class InputTransform(_TileTransform):
    """V = Bᵀ·d·B on (m+2)×(m+2) input tiles (row-major payloads), one tile per cycle.

    Parameters
    ----------
    m:
        Output tile size, 2 or 4.
    in_width:
        Signed width of the input elements (8 or 16).

    The output width is ``in_width + transform_growth_bits(Bᵀ)`` (10 bits for int8 and
    m = 2; 15 for int8 and m = 4), so no value can wrap.
    """

    def __init__(self, m: int = 2, in_width: int = 8):
        _check(self, "m", m, (2, 4))
        self.m = m
        self.out_width = in_width + transform_growth_bits(WINOGRAD_BT[m])
        super().__init__(WINOGRAD_BT[m], in_width, self.out_width, 0, False)


class OutputAccumulator(wiring.Component):
    """The output side's adders: each C vector of transformed position ``g`` added into the
    m² accumulations of its word (the module docstring).

    In the cycle ``i_valid`` is high it takes ``c`` (one C vector: ``lanes`` accumulators of
    the array) and ``g`` into registers.  In the next cycle ``o_valid`` is high and
    ``sums[e][lane]`` = (0 if g = 0 else ``prev[e][lane]``) + coef[e][g]·c[lane], where
    ``prev`` is that word's accumulations, read meanwhile (a synchronous read issued with
    ``i_valid``).

    Parameters
    ----------
    m:
        Output tile size, 2 or 4.
    acc_width:
        Signed width of the array's accumulators.
    lanes:
        Elements of a C vector (the array's columns).

    ``out_width`` = ``acc_width + transform_growth_bits(Aᵀ)``: every partial sum fits.
    """

    def __init__(self, m: int = 2, acc_width: int = 32, lanes: int = 1):
        _check(self, "m", m, (2, 4))
        self.m, self.lanes = m, lanes
        self.out_width = acc_width + transform_growth_bits(WINOGRAD_AT[m])
        t = m + 2
        acc = data.ArrayLayout(data.ArrayLayout(signed(self.out_width), lanes), m * m)
        super().__init__({
            "i_valid": In(1), "g": In(range(t * t)),
            "c": In(data.ArrayLayout(signed(acc_width), lanes)),
            "prev": In(acc), "o_valid": Out(1), "sums": Out(acc),
        })

    def elaborate(self, platform):
        m = Module()
        wm, t = self.m, self.m + 2
        coef = output_coefficients(wm)
        c = Signal.like(self.c)
        g = Signal.like(self.g)
        m.d.sync += self.o_valid.eq(self.i_valid)
        with m.If(self.i_valid):
            m.d.sync += [c.eq(self.c), g.eq(self.g)]
        first = g == 0
        for e in range(wm * wm):
            for lane in range(self.lanes):
                term = Signal(signed(self.out_width), name=f"term{e}_{lane}")
                # the term of each position; the last one as the default (complete cases)
                with m.Switch(g):
                    for pos in range(t * t):
                        product = _cmul(c[lane], coef[e][pos])
                        value = 0 if product is None else product
                        if pos < t * t - 1:
                            with m.Case(pos):
                                m.d.comb += term.eq(value)
                        else:
                            with m.Default():
                                m.d.comb += term.eq(value)
                m.d.comb += self.sums[e][lane].eq(
                    Mux(first, 0, self.prev[e][lane]) + term)
        return m


class OutputScale(_TileTransform):
    """Y = S / scale on m×m tiles of summed outputs S = Aᵀ·M·A, one tile per cycle,
    exactly: scale 4 for m = 2, 576 for m = 4 (the module docstring).

    Parameters
    ----------
    m:
        Output tile size, 2 or 4.
    in_width:
        Signed width of the sums (``OutputAccumulator.out_width``).

    The output width is ``in_width`` less the shift, 2 or 6 (the division by 9 only
    narrows the value).
    """

    def __init__(self, m: int = 2, in_width: int = 36):
        _check(self, "m", m, (2, 4))
        self.m = m
        shift = 2 if m == 2 else 6
        self.out_width = in_width - shift
        identity = tuple(tuple(int(i == j) for j in range(m)) for i in range(m))
        super().__init__(identity, in_width, self.out_width, shift, m == 4)
