"""Where the pool engine fits: its lanes on an overlay, and the overlays it runs on.

Pure Python (no Amaranth), so that the compiler (``dse.compiler``) can ask without building
hardware; ``rtl.overlay_top`` builds :class:`rtl.pool_engine.PoolEngine` from these.
"""

from __future__ import annotations

import numpy as np

from rtl.params import OverlayParams

__all__ = ["pool_lanes", "pool_supported"]


def pool_lanes(params: OverlayParams):
    """The pool engine's lanes on ``params``: g = gcd(``rows``, ``cols``), the lanes it works
    on a cycle.  It reads feature and aux words of ``rows`` = g·a lanes and writes output
    words of ``cols`` = g·b lanes (:class:`rtl.pool_engine.PoolEngine` ``in_lanes``,
    ``out_lanes``); a pixel of ``ch`` channels is ⌈ch / g⌉ groups, so a ``pool.tile`` takes
    ``dse.cost.transforms.pool_cycles`` with ``ch_words`` = ⌈ch / g⌉ (min(rows, cols) when
    :func:`pool_supported`).  ``params`` may also be a ``dse.cost.hardware.HardwareTable``
    (an array of lanes, one per point: the explorer's pool cycles use the same lanes)."""
    g = np.gcd(params.rows, params.cols)
    return int(g) if np.ndim(g) == 0 else g


def pool_supported(params: OverlayParams, precision=8):
    """Whether :class:`rtl.overlay_top.OverlayTop` has a pool engine for ``params`` and ``precision``: the
    engine is int8, so ``precision`` 8, and its groups of :func:`pool_lanes` lanes pack into
    feature words (``rows`` lanes) and output words (``cols`` lanes) a power of two at a time:
    ``rows`` / g and ``cols`` / g powers of two (one of them 1), as on every overlay whose
    ``rows`` and ``cols`` are powers of two.  ``params`` may also be a
    ``dse.cost.hardware.HardwareTable`` (with ``precision`` an array or a number): a bool
    array, one per point."""
    rows, cols = np.asarray(params.rows), np.asarray(params.cols)
    g = np.asarray(pool_lanes(params))
    a, b = rows // g, cols // g
    ok = ((np.asarray(precision) == 8) & ((a & (a - 1)) == 0) & ((b & (b - 1)) == 0)
          & (np.maximum(rows, cols) <= 256))
    return bool(ok) if ok.ndim == 0 else ok
