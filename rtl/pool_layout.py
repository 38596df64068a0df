"""Where the pool engine fits: its lanes on an overlay, and the overlays it runs on.

Pure Python (no Amaranth), so that the compiler (``dse.compiler``) can ask without building
hardware; ``rtl.overlay_top`` builds :class:`rtl.pool_engine.PoolEngine` from these.
"""

from __future__ import annotations

import math

from rtl.params import OverlayParams

__all__ = ["pool_lanes", "pool_supported"]


def pool_lanes(params: OverlayParams) -> int:
    """The pool engine's lanes on ``params``: g = gcd(``rows``, ``cols``), the lanes it works
    on a cycle.  It reads feature and aux words of ``rows`` = g·a lanes and writes output
    words of ``cols`` = g·b lanes (:class:`rtl.pool_engine.PoolEngine` ``in_lanes``,
    ``out_lanes``); a pixel of ``ch`` channels is ⌈ch / g⌉ groups, so a ``pool.tile`` takes
    ``dse.cost.transforms.pool_cycles`` with ``ch_words`` = ⌈ch / g⌉ (min(rows, cols) when
    :func:`pool_supported`)."""
    return math.gcd(params.rows, params.cols)


def pool_supported(params: OverlayParams, precision: int = 8) -> bool:
    """Whether :class:`rtl.overlay_top.OverlayTop` has a pool engine for ``params`` and ``precision``: the
    engine is int8, so ``precision`` 8, and its groups of :func:`pool_lanes` lanes pack into
    feature words (``rows`` lanes) and output words (``cols`` lanes) a power of two at a time:
    ``rows`` / g and ``cols`` / g powers of two (one of them 1), as on every overlay whose
    ``rows`` and ``cols`` are powers of two."""
    g = pool_lanes(params)
    a, b = params.rows // g, params.cols // g
    return (precision == 8 and not a & (a - 1) and not b & (b - 1)
            and max(params.rows, params.cols) <= 256)
