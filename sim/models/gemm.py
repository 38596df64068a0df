"""Bit-exact golden model of the GEMM engine: C = A·B in int64 with an explicit wrap.

The engine's accumulators are ``acc_width``-bit two's-complement registers; sums that exceed
that range wrap exactly as modelled here.  Pure numpy: no Amaranth, no cocotb.
"""

from __future__ import annotations

import numpy as np

__all__ = ["wrap_signed", "check_operand", "golden_gemm"]


def wrap_signed(x, width: int) -> np.ndarray:
    """Return ``x`` (integers) reduced to ``width``-bit two's complement, as int64.

    Parameters
    ----------
    x:
        Integer array (any integer dtype; values must fit in int64).
    width:
        Target width in bits, 1 … 64.
    """
    if isinstance(width, bool) or not isinstance(width, int):
        raise TypeError(f"width must be an integer, not {width!r}")
    if not 1 <= width <= 64:
        raise ValueError(f"width must be between 1 and 64, not {width}")
    x = np.asarray(x, dtype=np.int64)
    if width == 64:
        return x
    # Mask in uint64 so that the shift and the subtraction are well defined for negatives.
    u = x.astype(np.uint64) & np.uint64((1 << width) - 1)
    sign = np.uint64(1 << (width - 1))
    return (u ^ sign).astype(np.int64) - np.int64(1 << (width - 1))


def check_operand(x, width: int, name: str) -> np.ndarray:
    """Return ``x`` as an int64 matrix after checking it fits ``width``-bit signed.

    Raises
    ------
    ValueError
        When ``x`` is not 2-D or holds a value outside [−2^(width−1), 2^(width−1) − 1].
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, not shape {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, not {x.dtype}")
    x = x.astype(np.int64)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"{name} must fit in {width}-bit signed [{lo}, {hi}], "
                         f"not [{x.min()}, {x.max()}]")
    return x


def golden_gemm(a, b, acc_width: int = 32, a_width: int = 8, b_width: int = 8) -> np.ndarray:
    """Return C = A·B wrapped to ``acc_width`` bits, as an int64 matrix.

    Parameters
    ----------
    a:
        A[M×K], activations, ``a_width``-bit signed integers.
    b:
        B[K×N], weights, ``b_width``-bit signed integers.
    acc_width:
        Accumulator width in bits.

    Notes
    -----
    Every partial product fits in ``a_width + b_width <= 54`` bits and K is far below 2^9, so
    the int64 matmul is exact before the wrap; for larger K the int64 sum may itself wrap,
    which is still exact modulo 2^acc_width because wrapping commutes with addition.
    """
    a = check_operand(a, a_width, "a")
    b = check_operand(b, b_width, "b")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"a and b must have matching inner dimensions, "
                         f"not {a.shape} and {b.shape}")
    with np.errstate(over="ignore"):
        c = a @ b
    return wrap_signed(c, acc_width)
