"""Layout-change costs on the edges of the layer graph (DYNAMAP's transition table, adapted).

Every layer stores its output to DRAM once; the cost model charges that plain store and the
consumer's load.  An edge costs the *extra* bytes the producer must store so that its
consumer's front can stream what it needs, divided by the DRAM bytes per cycle.  Only the
store side is paid: the buffers are double-buffered, so the consumer's load of the same bytes
overlaps its compute (DYNAMAP, FPGA'21: "with double buffering only the store side is
paid").

Layouts, from the algorithm units as built (``dse/cost/transforms.py``):

* ``spatial`` (C×H×W row-major).  im2col's window generator and kn2row's row reader take one
  feature-buffer word (one pixel's channels) per cycle, and the FFT unit loads its N×N tile
  one value per cycle with the zero padding streamed as zeros: all three read the plain
  map, so a consumer of these costs nothing extra.  Every producer except Winograd writes it.
* ``wino<m>``: the Winograd input transform takes a whole (m+2)×(m+2) tile per cycle per lane,
  so its tiles must lie contiguous in the buffer -- the overlapping-tile expansion is
  materialised, (t/m)² times the plain map (t = m + 2).  A Winograd F(m) producer writes its
  m×m output tiles tile-major; a following F(m) consumer reuses that layout (DYNAMAP's
  "layout reuse", its cost divided by m²), which with t = m + 2 and m >= 2 is never more than
  the plain store, so it costs nothing extra.

Departure from DYNAMAP's table: DYNAMAP charges an im2col consumer the Toeplitz expansion
O1·O2·K²·C (its im2col matrix lives in DRAM); our overlay generates windows on chip
(the back end writes the next layer's layout), so that cell is 0.  :func:`dynamap_transition_bytes` keeps the literal table for
the DYNAMAP benchmark, and ``toeplitz=True`` in :func:`layout_change_bytes` restores it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SPATIAL", "in_layout", "out_layout", "layout_change_bytes", "edge_matrix_bytes",
           "dram_bytes_per_cycle", "dynamap_transition_bytes"]

#: The plain C×H×W row-major layout.
SPATIAL = "spatial"
#: DYNAMAP's im2col consumer layout (Toeplitz patches in DRAM), used only with ``toeplitz``.
PATCHES = "patches"


def _wino_m(layout: str) -> int:
    return int(layout[4:]) if layout.startswith("wino") else 0


def in_layout(algorithm: str, winograd_m: int = 0, toeplitz: bool = False) -> str:
    """Return the layout the front of ``algorithm`` reads its input in."""
    if algorithm == "winograd":
        if winograd_m < 2:
            raise ValueError(f"winograd_m must be at least 2 for winograd, not {winograd_m!r}")
        return f"wino{winograd_m}"
    if algorithm == "im2col" and toeplitz:
        return PATCHES
    return SPATIAL


def out_layout(algorithm: str, winograd_m: int = 0) -> str:
    """Return the layout the back of ``algorithm`` writes its output in."""
    if algorithm == "winograd":
        if winograd_m < 2:
            raise ValueError(f"winograd_m must be at least 2 for winograd, not {winograd_m!r}")
        return f"wino{winograd_m}"
    return SPATIAL


def layout_change_bytes(produced: str, needed: str, out_shape, kernel=(1, 1),
                        element_bytes: int = 1) -> float:
    """Return the extra bytes stored on an edge from a ``produced`` to a ``needed`` layout.

    Parameters
    ----------
    produced, needed:
        Layout names (:func:`out_layout` of the producer, :func:`in_layout` of the consumer).
    out_shape:
        The producer's output ``(C, H, W)``.
    kernel:
        The consumer's kernel ``(h, w)`` (only the Toeplitz layout depends on it).
    element_bytes:
        Bytes per activation (1 for int8, 2 for int16).
    """
    c, h, w = out_shape
    plain_bytes = float(c * h * w * element_bytes)
    m = _wino_m(needed)
    if m:
        t = m + 2
        expansion = (t / m) ** 2
        if _wino_m(produced) == m:
            expansion /= m * m                 # layout reuse between F(m) layers
        return plain_bytes * max(0.0, expansion - 1.0)
    if needed == PATCHES:
        return plain_bytes * (kernel[0] * kernel[1] - 1)
    return 0.0


def edge_matrix_bytes(produced: list[str], needed: list[str], out_shape, kernel=(1, 1),
                      element_bytes: int = 1) -> np.ndarray:
    """Return the ``(len(produced), len(needed))`` matrix of :func:`layout_change_bytes`."""
    return np.array([[layout_change_bytes(p, n, out_shape, kernel, element_bytes)
                      for n in needed] for p in produced], dtype=np.float64).reshape(
        len(produced), len(needed))


def dram_bytes_per_cycle(dram_gbps, clock_mhz, bus_bits) -> np.ndarray:
    """Return bytes per clock cycle the overlay moves to DRAM (broadcasting over points).

    The lesser of the board's DRAM bandwidth (GB/s; 1 GB/s at 1 MHz is 1000 bytes a cycle)
    and the AXI bus (``bus_bits / 8`` bytes a cycle).
    """
    board = np.asarray(dram_gbps, dtype=float) * 1e3 / np.asarray(clock_mhz, dtype=float)
    return np.minimum(board, np.asarray(bus_bits, dtype=float) / 8.0)


def dynamap_transition_bytes(next_algorithm: str, last_algorithm: str, out_shape,
                             kernel=(1, 1), m: int = 2, r: int = 3) -> float:
    """Return DYNAMAP's literal transition volume (elements, 1 byte each) for an edge.

    DYNAMAP's table (``transition_LD_cost`` of the authors' tool): im2col consumers pay the
    Toeplitz expansion O1·O2·K1·K2·C; kn2row (and joins) O1·O2·C; Winograd the overlapping
    tile expansion O1·O2·(t/m)²·C, divided by m² after a Winograd producer.  ``out_shape`` is
    the producer's ``(C, O1, O2)``; the tool's 4 % lower effective bandwidth for Winograd is left to
    the caller.
    """
    c, o1, o2 = out_shape
    plain = float(o1 * o2 * c)
    if next_algorithm == "im2col":
        return plain * kernel[0] * kernel[1]
    if next_algorithm == "winograd":
        t = m + r - 1
        cost = plain * (t / m) ** 2
        return cost / (m * m) if last_algorithm == "winograd" else cost
    return plain
