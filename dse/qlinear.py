"""Host side of the QLinearAdd unit (``rtl/qadd_f32.py``): per-layer settings and a bit-level
model of the unit.

onnxruntime's QLinearAdd (MLAS, x86-64 with FMA; docs/algorithms.md, "Quantised (QDQ)
networks") computes, with ``a``, ``b`` the raw uint8 operands and every operation in float32::

    r_a = fl(s_a / s_c),  r_b = fl(s_b / s_c)                    # per layer, on the host
    F   = fl(zp_c − fma(r_a, zp_a, fl(r_b · zp_b)))
    c   = sat_u8(rint(fma(a, r_a, fma(b, r_b, F))))              # per element, in the unit

(``fl`` rounds to float32 half to even, ``fma`` rounds the exact ``x·y + z`` once, ``rint``
rounds half to even, ``sat_u8`` clamps to [0, 255]).  :func:`qadd_settings` computes ``r_a``,
``r_b`` and ``F`` exactly (rational arithmetic, each operation rounded once) as the
``(sign, mantissa, exponent)`` triples the unit is programmed with -- ``value = (−1)^sign ·
mantissa · 2^exponent``, ``2^23 ≤ mantissa < 2^24`` (``F`` may be exactly 0: all three 0).

Supported range (:data:`RATIO_MIN_LOG2`, :data:`RATIO_MAX_LOG2`): ``2^-64 ≤ r_a, r_b ≤ 2^64``.
Within it every exponent fits the unit's 8-bit exponent ports, every float32 value on the way
(``F``, the inner fma, the outer fma) is a normal float32 or 0 (no overflow, no subnormal), so
the integer formulation is onnxruntime's float32 arithmetic.  Parameters outside it are refused
with ValueError naming the parameter.

:func:`reference` is a numpy model of the unit's integer datapath, step for step (the windows,
the sticky bits, the bypasses, the roundings), which the tests hold equal to the independent
golden model ``sim.models.qdq_network.qlinear_add`` and the RTL to both.

The datapath (each fused multiply-add, ``p·2^e_p + c``, with ``p`` the exact 32-bit product of
an 8-bit operand and a 24-bit mantissa, ``c = ±m·2^e_c`` a float32):

* a window integer in units of ``2^(e_p − 3)``: the product at ``p << 3`` (bits 3..34), the
  addend's mantissa at bit ``s = e_c − e_p + 3`` when ``1 ≤ s ≤ 36``; for ``s ≤ 0`` the
  addend's bits below bit 1 are dropped into a sticky bit at bit 0 (for ``s ≤ −24`` all of
  them).  With a non-zero product (``p ≥ 2^23``) the exact sum is then at least ``2^25`` units,
  so its float32 rounding point is at bit 2 or above and the sticky bit decides ties exactly
  as the dropped bits would.  The sum is a signed 62-bit integer;
* ``s ≥ 37`` with ``c ≠ 0`` (the product below a quarter of the addend's ulp) or a zero
  product: the result is the addend itself (a bypass);
* the magnitude is normalised (leading-zero count) and rounded to 24 significant bits half to
  even (guard bit, sticky of the rest); a carry to ``2^24`` renormalises.

The outer result ``X`` is then rounded to an integer half to even and saturated: negative or
zero gives 0, ``X ≥ 2^23`` (exponent ≥ 0) gives 255, else a right shift by ``−e`` (at most 25)
with guard and sticky bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

# the unit's numerics, which the hardware reads too
from rtl.params import FLOAT32_MANTISSA_BITS as MANTISSA_BITS  # noqa: I001
from rtl.params import QADD_ADDEND_MAX_SHIFT as ADDEND_MAX_SHIFT
from rtl.params import QADD_ADDEND_MIN_SHIFT as ADDEND_MIN_SHIFT
from rtl.params import QADD_EXPONENT_BITS as EXPONENT_BITS
from rtl.params import QADD_GUARD as GUARD
from rtl.params import QADD_WINDOW_BITS as WINDOW_BITS

__all__ = [
    "MANTISSA_BITS", "EXPONENT_BITS", "GUARD", "ADDEND_MAX_SHIFT", "ADDEND_MIN_SHIFT",
    "WINDOW_BITS", "RATIO_MIN_LOG2", "RATIO_MAX_LOG2",
    "QAddSettings", "qadd_settings", "check_qadd_settings", "fl", "f32_triple", "reference",
]

#: The supported ratios ``r = fl(s / s_c)``: ``2^RATIO_MIN_LOG2 ≤ r ≤ 2^RATIO_MAX_LOG2``.
RATIO_MIN_LOG2 = -64
RATIO_MAX_LOG2 = 64

_F32_MIN_NORMAL_LOG2 = -126
_F32_MAX_EXP = 128                      # |x| < 2^128


# -- exact float32 arithmetic on rationals -----------------------------------------------------

def _floor_log2(x: Fraction) -> int:
    """``floor(log2 x)`` for a positive rational."""
    n, d = x.numerator, x.denominator
    k = n.bit_length() - d.bit_length()
    if (n << max(-k, 0)) < (d << max(k, 0)):
        k -= 1
    return k


def f32_triple(x: Fraction) -> tuple[int, int, int]:
    """``(sign, mantissa, exponent)`` of a rational with at most 24 significant bits:
    ``x = (−1)^sign · mantissa · 2^exponent``, ``2^23 ≤ mantissa < 2^24``; ``(0, 0, 0)`` for 0."""
    x = Fraction(x)
    if x == 0:
        return 0, 0, 0
    sign, mag = int(x < 0), abs(x)
    e = _floor_log2(mag) - (MANTISSA_BITS - 1)
    q = mag / Fraction(2) ** e
    if q.denominator != 1:
        raise ValueError(f"{x} has more than {MANTISSA_BITS} significant bits")
    return sign, int(q), e


def fl(x) -> Fraction:
    """``x`` (a rational) rounded to 24 significant bits, half to even, with no exponent
    limit (the caller checks the float32 range)."""
    x = Fraction(x)
    if x == 0:
        return x
    mag = abs(x)
    e = _floor_log2(mag) - (MANTISSA_BITS - 1)
    q = mag / Fraction(2) ** e                     # in [2^23, 2^24)
    n = q.numerator // q.denominator
    rem = q - n
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and n % 2 == 1):
        n += 1
    out = Fraction(n) * Fraction(2) ** e
    return -out if x < 0 else out


def _f32_in_range(x: Fraction, what: str) -> None:
    if x != 0 and not _F32_MIN_NORMAL_LOG2 <= _floor_log2(abs(x)) < _F32_MAX_EXP:
        raise ValueError(f"{what} = {float(x):.6g} is not a normal float32")


# -- settings ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class QAddSettings:
    """The unit's per-layer settings: ``r_a``, ``r_b`` and ``F`` as exact float32 triples
    ``(sign, mantissa, exponent)`` (module docstring).

    :meth:`registers` gives the values of ``rtl.qadd_f32.QAddF32``'s setting ports,
    :meth:`packed` one register word per value.
    """

    r_a: tuple[int, int, int]
    r_b: tuple[int, int, int]
    f: tuple[int, int, int]

    def value(self, name: str) -> Fraction:
        """The exact value of ``"r_a"``, ``"r_b"`` or ``"f"``."""
        s, m, e = getattr(self, name)
        return (-1) ** s * Fraction(m) * Fraction(2) ** e

    def registers(self) -> dict[str, int]:
        """``{port name: value}`` for ``QAddF32``: ``ra_mantissa``, ``ra_exponent``,
        ``rb_mantissa``, ``rb_exponent``, ``f_sign``, ``f_mantissa``, ``f_exponent``
        (exponents as signed integers; the ratios are positive and have no sign port)."""
        return {"ra_mantissa": self.r_a[1], "ra_exponent": self.r_a[2],
                "rb_mantissa": self.r_b[1], "rb_exponent": self.r_b[2],
                "f_sign": self.f[0], "f_mantissa": self.f[1], "f_exponent": self.f[2]}

    def packed(self) -> dict[str, int]:
        """One 33-bit register word per value: ``sign << 32 | (exponent mod 2^8) << 24 |
        mantissa`` (:meth:`unpack` inverts it)."""
        ebits = (1 << EXPONENT_BITS) - 1
        return {name: (s << (MANTISSA_BITS + EXPONENT_BITS)) | ((e & ebits) << MANTISSA_BITS) | m
                for name, (s, m, e) in (("r_a", self.r_a), ("r_b", self.r_b), ("f", self.f))}

    @staticmethod
    def unpack(word: int) -> tuple[int, int, int]:
        """The ``(sign, mantissa, exponent)`` of a :meth:`packed` word."""
        m = word & ((1 << MANTISSA_BITS) - 1)
        e = (word >> MANTISSA_BITS) & ((1 << EXPONENT_BITS) - 1)
        e -= (e >> (EXPONENT_BITS - 1)) << EXPONENT_BITS
        return word >> (MANTISSA_BITS + EXPONENT_BITS), m, e


def _scale(value, name: str) -> Fraction:
    try:
        with np.errstate(all="ignore"):
            s = np.float32(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive finite float32, not {value!r}") from None
    if np.ndim(value) != 0 or not (np.isfinite(s) and s > 0):
        raise ValueError(f"{name} must be a positive finite float32, not {value!r}")
    return Fraction(float(s))


def _zero_point(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or not 0 <= int(value) <= 255:
        raise ValueError(f"{name} must be an integer in 0..255 (uint8), not {value!r}")
    return int(value)


def check_qadd_settings(settings: QAddSettings) -> QAddSettings:
    """Refuse settings outside the unit's supported range (module docstring) with ValueError
    naming the value; return them unchanged otherwise."""
    lo, hi = Fraction(2) ** RATIO_MIN_LOG2, Fraction(2) ** RATIO_MAX_LOG2
    elo, ehi = -(1 << (EXPONENT_BITS - 1)), (1 << (EXPONENT_BITS - 1)) - 1
    for name in ("r_a", "r_b", "f"):
        s, m, e = getattr(settings, name)
        ok = s in (0, 1) and ((m == 0 and e == 0) or (1 << 23 <= m < 1 << 24))
        if not ok or (name != "f" and (s or not m)):
            raise ValueError(f"{name} must be a float32 triple (sign, 2^23 ≤ mantissa < 2^24, "
                             f"exponent){' > 0' if name != 'f' else ''}, not {(s, m, e)}")
        if not elo <= e <= ehi:
            raise ValueError(f"{name} exponent {e} does not fit the unit's {EXPONENT_BITS}-bit "
                             f"exponent ports [{elo}, {ehi}]")
        if name != "f" and not lo <= settings.value(name) <= hi:
            raise ValueError(f"{name} = {float(settings.value(name)):.6g} is outside the "
                             f"supported range [2^{RATIO_MIN_LOG2}, 2^{RATIO_MAX_LOG2}]")
    return settings


def qadd_settings(a_scale, a_zp, b_scale, b_zp, c_scale, c_zp) -> QAddSettings:
    """The unit's settings for one QLinearAdd: ``r_a = fl(a_scale / c_scale)``,
    ``r_b = fl(b_scale / c_scale)``, ``F = fl(c_zp − fma(r_a, a_zp, fl(r_b · b_zp)))``, each
    computed exactly and rounded once, half to even (scales are taken as float32).

    Raises ValueError for a scale that is not a positive finite float32, a zero point outside
    0..255, or ratios outside the supported range (naming ``r_a`` or ``r_b``).
    """
    sa, sb, sc = (_scale(v, n) for v, n in ((a_scale, "a_scale"), (b_scale, "b_scale"),
                                             (c_scale, "c_scale")))
    za, zb, zc = (_zero_point(v, n) for v, n in ((a_zp, "a_zp"), (b_zp, "b_zp"),
                                                 (c_zp, "c_zp")))
    r_a, r_b = fl(sa / sc), fl(sb / sc)
    lo, hi = Fraction(2) ** RATIO_MIN_LOG2, Fraction(2) ** RATIO_MAX_LOG2
    for name, what, r in (("r_a", "a_scale / c_scale", r_a), ("r_b", "b_scale / c_scale", r_b)):
        if not lo <= r <= hi:
            raise ValueError(f"{name} = {what} = {float(r):.6g} is outside the supported range "
                             f"[2^{RATIO_MIN_LOG2}, 2^{RATIO_MAX_LOG2}] of the QLinearAdd unit")
    t = fl(r_b * zb)
    u = fl(r_a * za + t)                                  # the fused multiply-add
    f = fl(zc - u)
    for what, v in (("fl(r_b · b_zp)", t), ("fma(r_a, a_zp, ·)", u), ("F", f)):
        _f32_in_range(v, what)
    return check_qadd_settings(QAddSettings(f32_triple(r_a), f32_triple(r_b), f32_triple(f)))


# -- the unit's datapath in numpy --------------------------------------------------------------

def _bit_length(x) -> np.ndarray:
    """Bit length of non-negative int64 values (0 for 0)."""
    x = np.asarray(x, dtype=np.int64)
    width = np.zeros_like(x)
    for b in (32, 16, 8, 4, 2, 1):
        big = (x >> (width + b)) > 0
        width = width + np.where(big, b, 0)
    return np.where(x > 0, width + 1, 0)


def _align(sign, mant, s) -> np.ndarray:
    """The addend ``±mant`` at window bit ``s`` (clamped to [−24, 36]) as a signed window
    integer: exact for ``s ≥ 1``, else its bits below bit 1 folded into the sticky bit 0."""
    mant = np.asarray(mant, dtype=np.int64)
    s = np.clip(s, ADDEND_MIN_SHIFT, ADDEND_MAX_SHIFT)
    drop = np.clip(1 - s, 0, 62)
    kept = ((mant >> drop) << 1) | ((mant & ((np.int64(1) << drop) - 1)) != 0)
    mag = np.where(s >= 1, mant << np.clip(s, 0, 62), kept)
    return np.where(sign != 0, -mag, mag)


def _round_window(total, e_unit):
    """A signed window integer (``|total| < 2^61``, value ``total · 2^e_unit``) rounded to
    24 significant bits half to even: ``(sign, mantissa, exponent, zero)`` with the mantissa
    normalised (``2^23 ≤ m < 2^24``) unless zero."""
    sign = (total < 0).astype(np.int64)
    mag = np.abs(total)
    bl = _bit_length(mag)
    d = bl - MANTISSA_BITS
    right = np.clip(d, 0, 62)
    mant = np.where(d > 0, mag >> right, mag << np.clip(-d, 0, 62))
    guard = np.where(d > 0, (mag >> np.clip(d - 1, 0, 62)) & 1, 0)
    sticky = np.where(d > 1, (mag & ((np.int64(1) << np.clip(d - 1, 0, 62)) - 1)) != 0, 0)
    mant = mant + (guard & (sticky | (mant & 1)))
    carry = mant >> MANTISSA_BITS
    mant = np.where(carry != 0, mant >> 1, mant)
    return sign, mant, e_unit + d + carry, mag == 0


def _fma(p, e_p, sign, mant, e_c):
    """``fl(p·2^e_p ± mant·2^e_c)`` as the unit computes it (module docstring): the window
    sum, or the addend alone when the product is 0 or far below it."""
    s = e_c - e_p + GUARD
    bypass = (p == 0) | ((mant != 0) & (s > ADDEND_MAX_SHIFT))
    total = (p << GUARD) + _align(sign, mant, s)
    rs, rm, re, _ = _round_window(total, e_p - GUARD)
    return (np.where(bypass, sign, rs), np.where(bypass, mant, rm),
            np.where(bypass, e_c, re))


def _rint_sat(sign, mant, e) -> np.ndarray:
    """``sat_u8(rint(±mant · 2^e))`` for a normalised (or zero) mantissa."""
    k = np.clip(-e, 1, MANTISSA_BITS + 1)
    q = mant >> k
    guard = (mant >> (k - 1)) & 1
    sticky = (mant & ((np.int64(1) << (k - 1)) - 1)) != 0
    z = np.minimum(q + (guard & (sticky | (q & 1))), 255)
    return np.where((sign != 0) | (mant == 0), 0, np.where(e >= 0, 255, z))


def reference(a, b, settings: QAddSettings) -> np.ndarray:
    """The unit's output (uint8 values as int64) for uint8 operand values ``a``, ``b``
    (arrays of one shape), computed step for step as the RTL does (module docstring)."""
    check_qadd_settings(settings)
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))
    if np.any((a < 0) | (a > 255) | (b < 0) | (b > 255)):
        raise ValueError("a and b must be uint8 values (0..255)")
    _, ma, ea = settings.r_a
    _, mb, eb = settings.r_b
    fs, fm, fe = settings.f
    inner = _fma(b * mb, eb, fs, fm, fe)                   # fl(b · r_b + F)
    outer = _fma(a * ma, ea, *inner)                       # fl(a · r_a + inner)
    return _rint_sat(*outer)
