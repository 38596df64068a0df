"""Pool / element-wise engine: max and average pooling, global pooling, add and rescale.

The golden model of ``rtl/pool_engine.py`` (the ISA's ``pool.setup`` / ``pool.tile``), in exact
integers.  Every mode first forms an integer ``v`` per output position and channel, then
requantises it the project's way (``sim.models.requant``): ``sat(round(v · mult / 2^shift))``
with round half up (add 2^(shift−1), then shift right arithmetically), saturation to int8, and
the optional ReLU after saturation.

============  ========================================================  =====================
mode          ``v`` (then ``× mult``, ``/ 2^shift``)                    output rows × cols
============  ========================================================  =====================
``max``       max over the kh × kw window; padding is ignored (−∞)      oh × ow (below)
``avg``       sum over the kh × kw window, padding counting as 0        oh × ow
``gmax``      max over the whole tile (pads, kh, kw, stride unused)     1 × 1
``gavg``      sum over the whole tile                                   1 × 1
``add``       a · mult + b · mult2 (the rescale is part of ``v``)       rows × cols
``rescale``   a                                                         rows × cols
============  ========================================================  =====================

with ``oh = (pad_t + rows + pad_b − kh) // stride + 1`` and ``ow = (pad_l + cols + pad_r −
kw) // stride + 1`` (windows start at multiples of ``stride`` in the padded tile and must lie
inside it; ``kh`` ≤ ``pad_t + rows + pad_b`` and ``kw`` ≤ ``pad_l + cols + pad_r``).  For
``add`` the whole of ``a · mult + b · mult2`` is rounded once: ``sat(round((a · mult + b · mult2)
/ 2^shift))``.  Average pooling divides by a constant: the compiler folds 1 / (kh · kw) into
``mult`` and ``shift`` (``count_include_pad`` semantics; a per-position divisor at the borders is
an open question of the ISA).  Max pooling with ``mult = 1, shift = 0`` (the ISA's defaults)
returns the maximum itself; another ``mult`` rescales it (both are monotonic, so the order of
max and rescale does not matter).  A max window that holds only padding gives −128, the int8
minimum: values are int8, so ignoring the padding is the same as padding with −128.

Tiles are HWC arrays (rows × cols × channels); every channel is independent, so the same
functions run on a tile as the buffers hold it, ⌈ch / lanes⌉ words of ``lanes`` int8 lanes
per pixel, viewed as rows × cols × (words · lanes) (:func:`hwc_words`, :func:`words_hwc`): a
lane past ``ch`` is computed like the others (zero in gives zero out).
"""

from __future__ import annotations

import numpy as np

from sim.models.requant import requantize

__all__ = [
    "ELEMENTWISE_MODES",
    "GLOBAL_MODES",
    "INT8_MAX",
    "INT8_MIN",
    "POOL_MODES",
    "WINDOW_MODES",
    "hwc_words",
    "pool_output_size",
    "pool_tile",
    "words_hwc",
]

#: The windowed modes: kh × kw windows with stride and padding.
WINDOW_MODES = ("max", "avg")
#: The global modes: one output pixel per tile.
GLOBAL_MODES = ("gmax", "gavg")
#: The element-wise modes: one output pixel per input pixel.
ELEMENTWISE_MODES = ("add", "rescale")
#: Every mode, in the ISA's code order (``rtl.isa.PoolMode``).
POOL_MODES = ("max", "avg", "gmax", "gavg", "add", "rescale")
INT8_MIN, INT8_MAX = -128, 127


def _check_mode(mode) -> str:
    # rtl.isa.PoolMode is a str enum, so its members pass as their values.
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a string, not {mode!r}")
    value = getattr(mode, "value", mode)
    if value not in POOL_MODES:
        raise ValueError(f"mode must be one of {', '.join(POOL_MODES)}, not {value!r}")
    return value


def _check_int(name: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < lo:
        raise ValueError(f"{name} must be at least {lo}, not {value}")
    return int(value)


def _check_pads(pads) -> tuple[int, int, int, int]:
    try:
        pads = tuple(pads)
    except TypeError:
        raise TypeError(f"pads must be (top, bottom, left, right), not {pads!r}") from None
    if len(pads) != 4:
        raise ValueError(f"pads must be (top, bottom, left, right), not {pads!r}")
    return tuple(_check_int(n, p, 0) for n, p in zip(("pad_t", "pad_b", "pad_l", "pad_r"),
                                                     pads))


def _check_tile(name: str, x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3 or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{name} must be an integer array of rows × cols × channels, "
                         f"not shape {x.shape} of {x.dtype}")
    if x.size == 0:
        raise ValueError(f"{name} must not be empty, not shape {x.shape}")
    if x.min() < INT8_MIN or x.max() > INT8_MAX:
        raise ValueError(f"{name} must hold int8 values (−128 … 127), not "
                         f"{x.min()} … {x.max()}")
    return x.astype(np.int64)


def pool_output_size(mode, rows: int, cols: int, kh: int = 1, kw: int = 1, stride: int = 1,
                     pads=(0, 0, 0, 0)) -> tuple[int, int]:
    """Rows and columns of the result of one tile (module docstring's table).

    Raises
    ------
    TypeError, ValueError
        For a bad argument, or a window larger than the padded tile (windowed modes).
    """
    mode = _check_mode(mode)
    rows, cols = _check_int("rows", rows, 1), _check_int("cols", cols, 1)
    kh, kw = _check_int("kh", kh, 1), _check_int("kw", kw, 1)
    stride = _check_int("stride", stride, 1)
    pt, pb, pl, pr = _check_pads(pads)
    if mode in GLOBAL_MODES:
        return 1, 1
    if mode in ELEMENTWISE_MODES:
        return rows, cols
    if kh > pt + rows + pb:
        raise ValueError(f"kh must be at most pad_t + rows + pad_b = {pt + rows + pb}, "
                         f"not {kh}")
    if kw > pl + cols + pr:
        raise ValueError(f"kw must be at most pad_l + cols + pad_r = {pl + cols + pr}, "
                         f"not {kw}")
    return (pt + rows + pb - kh) // stride + 1, (pl + cols + pr - kw) // stride + 1


def pool_tile(mode, a, b=None, *, kh: int = 1, kw: int = 1, stride: int = 1,
              pads=(0, 0, 0, 0), mult: int = 1, shift: int = 0, mult2: int = 0,
              relu: bool = False) -> np.ndarray:
    """The engine's result on one tile, exactly (module docstring).

    Parameters
    ----------
    mode:
        ``"max"``, ``"avg"``, ``"gmax"``, ``"gavg"``, ``"add"`` or ``"rescale"`` (or an
        ``rtl.isa.PoolMode``).
    a:
        The tile, rows × cols × channels of int8 values (any integer dtype).
    b:
        The second operand of ``add``, shaped like ``a``; only ``add`` takes it.
    kh, kw, stride, pads:
        Window, stride and (top, bottom, left, right) padding of the windowed modes.
    mult, shift, mult2:
        Multipliers (≥ 0) and right shift (≥ 0) of the requantisation.
    relu:
        Clamp negative results to zero, after saturation.

    Returns
    -------
    numpy.ndarray
        oh × ow × channels int64 values in −128 … 127 (:func:`pool_output_size`).

    Raises
    ------
    TypeError, ValueError
        For a bad argument ("*name* must be …, not …").
    """
    mode = _check_mode(mode)
    a = _check_tile("a", a)
    if mode == "add":
        if b is None:
            raise ValueError("b must be given for mode add, not None")
        b = _check_tile("b", b)
        if b.shape != a.shape:
            raise ValueError(f"b must have a's shape {a.shape}, not {b.shape}")
    elif b is not None:
        raise ValueError(f"b must be None for mode {mode} (only add has a second operand), "
                         f"not an array")
    mult, mult2 = _check_int("mult", mult, 0), _check_int("mult2", mult2, 0)
    shift = _check_int("shift", shift, 0)
    if not isinstance(relu, (bool, np.bool_)):
        raise TypeError(f"relu must be a bool, not {relu!r}")
    rows, cols, _ = a.shape
    oh, ow = pool_output_size(mode, rows, cols, kh, kw, stride, pads)
    if mode in WINDOW_MODES:
        pt, pb, pl, pr = _check_pads(pads)
        fill = INT8_MIN if mode == "max" else 0
        padded = np.pad(a, ((pt, pb), (pl, pr), (0, 0)), constant_values=fill)
        # every window position as an axis: (oh, ow, kh, kw, channels)
        oy = np.arange(oh)[:, None, None, None] * stride + np.arange(kh)[None, None, :, None]
        ox = np.arange(ow)[None, :, None, None] * stride + np.arange(kw)[None, None, None, :]
        windows = padded[oy, ox]
        v = windows.max(axis=(2, 3)) if mode == "max" else windows.sum(axis=(2, 3))
    elif mode == "gmax":
        v = a.max(axis=(0, 1), keepdims=True)
    elif mode == "gavg":
        v = a.sum(axis=(0, 1), keepdims=True)
    elif mode == "add":
        v = a * mult + b * mult2
        return requantize(v, 1, shift, 8, bool(relu))
    else:
        v = a
    return requantize(v, mult, shift, 8, bool(relu))


def hwc_words(x, lanes: int) -> np.ndarray:
    """A tile rows × cols × ch as the buffers hold it: rows·cols·⌈ch / lanes⌉ words of
    ``lanes`` lanes (pixel-major, channel word minor), the last word of a pixel zero-filled."""
    x = np.asarray(x, dtype=np.int64)
    lanes = _check_int("lanes", lanes, 1)
    if x.ndim != 3:
        raise ValueError(f"x must be rows × cols × channels, not shape {x.shape}")
    rows, cols, ch = x.shape
    words = -(-ch // lanes)
    out = np.zeros((rows, cols, words * lanes), dtype=np.int64)
    out[..., :ch] = x
    return out.reshape(rows * cols * words, lanes)


def words_hwc(words, rows: int, cols: int, ch: int | None = None) -> np.ndarray:
    """The inverse of :func:`hwc_words`: words (n × lanes) as rows × cols × channels; with
    ``ch`` the lanes past it are dropped, else every lane of a pixel's words is kept."""
    words = np.asarray(words, dtype=np.int64)
    rows, cols = _check_int("rows", rows, 1), _check_int("cols", cols, 1)
    if words.ndim != 2 or words.shape[0] % (rows * cols):
        raise ValueError(f"words must be rows·cols·k × lanes, not shape {words.shape}")
    x = words.reshape(rows, cols, -1)
    if ch is not None:
        ch = _check_int("ch", ch, 1)
        if ch > x.shape[2]:
            raise ValueError(f"ch must be at most {x.shape[2]}, not {ch}")
        x = x[..., :ch]
    return x
