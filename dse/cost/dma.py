"""Cycle formulas of the load and store engines (``rtl/dma.py``): one tile in or out of DRAM.

A ``load.tile`` or ``store.tile`` moves a ``rows`` × ``cols`` × ``ch`` box of an HWC tensor:
``ch`` elements of ``elem`` bytes per pixel, ``px_pitch`` bytes between pixels and
``row_pitch`` between rows, the first element at byte ``dram``.  The engines move it as

- **runs**, the contiguous byte ranges of the box: one run for the whole box when its pixels
  and rows are packed (``px_pitch`` = ``ch``·``elem``, or one column; and ``row_pitch`` =
  ``cols``·``px_pitch``, or one row), one run per row when only its pixels are packed, else
  one run per pixel;
- **beats** of the AXI4 bus, ``bus_bits`` / 8 = B bytes at B-aligned addresses: a run of n
  bytes starting o bytes into a beat takes ⌈(o + n) / B⌉ beats.  Splitting runs into bursts
  (at most 256 beats, never across a 4 KiB boundary) splits at beat boundaries, so it adds
  no beat;
- **words** of the buffer: ⌈ch / lanes⌉ per pixel.

The engines' **tile mode** (Winograd windows and output tiles, ``rtl.dma``) moves the same
runs, beats and words as the same box without it (only the buffer addresses differ), so the
formulas below hold with ``lanes`` = the array's ``rows`` for a tile-mode load and
``winograd_lanes`` (the elements of a pixel in one output word) for a tile-mode store;
``tests/rtl/test_dma_tile.py`` checks that against the RTL.

The engines' byte aligner is serial: each cycle it moves one beat or one word.  With a memory
that answers at once and never stalls, a tile therefore takes

    cycles = OVERHEAD + beats + words

for a store.  The load engine also takes the next beat in the cycle it hands out a word that
empties its byte register -- a word whose last byte is the last byte of a beat (a run's end,
or a byte just below a multiple of B in DRAM) -- so a load takes

    cycles = LOAD_OVERHEAD + beats + words − (joins − 1)

with ``joins`` those words (:func:`dma_joins`; the box's last word is one, with no beat after
it).  A box of whole beats whose pixels are whole words (weights: ``lanes``·``elem`` = B)
takes beats + 1.

with :data:`LOAD_OVERHEAD` / :data:`STORE_OVERHEAD` the start-up (and, for a store, the
write response) cycles derived below.  Cycle convention: from the cycle the command is taken
(``cmd`` valid and ready) through the cycle of ``done``, inclusive.

The DRAM model adds ``latency`` (cycles from a request to its first data beat, or from the
last data beat to the write response), paid once when ``outstanding`` bursts hide it for the
rest of the tile, and a bandwidth of ``bytes_per_cycle``: a memory slower than one beat per
cycle stretches the beats to ⌈beats · B / bytes_per_cycle⌉ cycles, and the tile takes the
longer of that and the aligner's beats + words.  Both terms are a model (exact only for
``latency`` = 0 and ``bytes_per_cycle`` ≥ B); ``tests/rtl/test_dma.py`` states and checks
the bound that holds under random latency and back-pressure.

:func:`dma_runs`, :func:`dma_beats` and :func:`dma_words` are vectorised: each argument may
be a scalar or an integer array of the namespace ``xp`` (numpy by default), broadcast
together.  :func:`dma_joins` and the tile cycles take scalars (the compiler's, once per box
shape and beat offset).  :func:`dma_beats` sums over the
residues of the run addresses modulo B, so it allocates two trailing axes of size B.
"""

from __future__ import annotations

import numpy as np

from dse.cost.transforms import cdiv

__all__ = [
    "LOAD_OVERHEAD",
    "STORE_OVERHEAD",
    "dma_beats",
    "dma_joins",
    "dma_runs",
    "dma_words",
    "load_tile_cycles",
    "store_tile_cycles",
]

#: Start-up cycles of ``rtl.dma.LoadEngine`` from the command's cycle to the first beat
#: taken, counting that cycle and the first beat's: the command register (1), three setup
#: stages (pixel bytes, row bytes, runs: 3), the burst splitter's register (1), the AR
#: register (1) and the memory's registered answer (1).  The last word's cycle is ``done``.
LOAD_OVERHEAD = 7
#: Cycles of ``rtl.dma.StoreEngine`` beyond one per beat and one per word: the command
#: register, three setup stages, the burst splitter's register, the burst queue (its head
#: is readable the cycle after the push), the read-port latency of the first word (1), the W
#: register of the last beat (1), the memory's registered write response (1), and the
#: response counter seen at zero (1).
STORE_OVERHEAD = 9


def dma_runs(rows, cols, ch, elem, row_pitch, px_pitch, xp=np):
    """How the engines cut a box into runs.

    Returns
    -------
    ``(row_runs, col_runs, run_bytes, row_step, col_step)``: the runs are
    ``dram + r·row_step + c·col_step`` for r < ``row_runs``, c < ``col_runs``, each
    ``run_bytes`` long.
    """
    px = ch * elem
    dense_px = (px_pitch == px) | (cols == 1)
    dense_rows = dense_px & ((row_pitch == cols * px) | (rows == 1))
    run_bytes = xp.where(dense_rows, rows * cols * px, xp.where(dense_px, cols * px, px))
    row_runs = xp.where(dense_rows, 1, rows)
    col_runs = xp.where(dense_px, 1, cols)
    row_step = xp.where(dense_rows, 0, row_pitch)
    col_step = xp.where(dense_px, 0, px_pitch)
    return row_runs, col_runs, run_bytes, row_step, col_step


def _residue_counts(n, grid, beat_bytes):
    """How many of 0 … n−1 are ≡ ρ (mod beat_bytes), for ρ along the last axis of grid
    (0 where ρ ≥ beat_bytes)."""
    return (grid < beat_bytes) * ((n - 1 - grid) // beat_bytes + 1) * (grid < n)


def dma_beats(dram, rows, cols, ch, elem, row_pitch, px_pitch, bus_bits, xp=np):
    """Bus beats of one tile: Σ over its runs of ⌈(run start mod B + run bytes) / B⌉.

    With run bytes − 1 = q·B + s, a run starting x bytes into a beat takes q + 1 beats, plus
    one when x ≥ B − s.  x depends only on (r mod B, c mod B), so the count of runs with
    x ≥ B − s is a sum over a B × B grid of residues weighted by how often each occurs.
    """
    args = [xp.asarray(v) for v in (dram, rows, cols, ch, elem, row_pitch, px_pitch,
                                    bus_bits)]
    dram, rows, cols, ch, elem, row_pitch, px_pitch, bus_bits = args
    beat = bus_bits // 8
    nr, nc, n, pr, pc = dma_runs(rows, cols, ch, elem, row_pitch, px_pitch, xp)
    q, s = (n - 1) // beat, (n - 1) % beat
    g = int(xp.max(beat))
    rho = xp.arange(g)
    e2 = (Ellipsis, None, None)
    wr = _residue_counts(nr[e2], rho[:, None], beat[e2])           # (..., g, 1)
    wc = _residue_counts(nc[e2], rho[None, :], beat[e2])           # (..., 1, g)
    x = (dram[e2] % beat[e2] + rho[:, None] * (pr[e2] % beat[e2])
         + rho[None, :] * (pc[e2] % beat[e2])) % beat[e2]
    extra = (wr * wc * (x >= (beat - s)[e2])).sum(axis=(-2, -1))
    return nr * nc * (q + 1) + extra


def dma_joins(dram, rows, cols, ch, elem, row_pitch, px_pitch, bus_bits, lanes):
    """Words of one tile whose last byte ends a beat (module docstring): the load engine
    takes the next beat in the cycle it hands such a word out.  A word ends a beat where its
    end is a run's end (:func:`dma_runs`) or a multiple of B in DRAM.  Scalars only (the
    compiler's, once per box shape and beat offset)."""
    beat = int(bus_bits) // 8
    rows, cols, ch, elem, lanes = (int(v) for v in (rows, cols, ch, elem, lanes))
    row_pitch, px_pitch, dram = int(row_pitch), int(px_pitch), int(dram)
    nr, nc, *_ = (int(v) for v in dma_runs(rows, cols, ch, elem, row_pitch, px_pitch))
    # each pixel's word ends, relative to the pixel's first byte
    ends = np.minimum(np.arange(1, -(-ch // lanes) + 1) * lanes, ch) * elem
    # the pixels' addresses modulo B
    starts = (dram + (np.arange(rows)[:, None] * row_pitch
                      + np.arange(cols)[None, :] * px_pitch)) % beat
    aligned = ((starts[..., None] + ends) % beat == 0)
    # a pixel's last word ends a run: every pixel (a run per pixel), a row's last (a run
    # per row) or the box's last (one run)
    run_end = np.zeros((rows, cols), dtype=bool)
    if nc > 1:
        run_end[:, :] = True
    elif nr > 1:
        run_end[:, -1] = True
    else:
        run_end[-1, -1] = True
    aligned[..., -1] |= run_end
    return int(aligned.sum())


def dma_words(rows, cols, ch, lanes, xp=np):
    """Buffer words of one tile: ⌈ch / lanes⌉ per pixel."""
    return rows * cols * cdiv(ch, lanes)


def _memory_bound(beats, words, bus_bits, bytes_per_cycle, xp):
    busy = beats + words
    if bytes_per_cycle is None:
        return busy
    stretched = cdiv(beats * (bus_bits // 8), bytes_per_cycle)
    return xp.maximum(busy, stretched)


def load_tile_cycles(dram, rows, cols, ch, elem, row_pitch, px_pitch, bus_bits, lanes,
                     latency=0, bytes_per_cycle=None):
    """Cycles of one ``load.tile`` (module docstring): :data:`LOAD_OVERHEAD` + ``latency`` +
    the larger of beats + words − (joins − 1) and the beats' transfer time at
    ``bytes_per_cycle`` (``None``: at least one beat a cycle).  Scalars only."""
    beats = dma_beats(dram, rows, cols, ch, elem, row_pitch, px_pitch, bus_bits)
    words = dma_words(rows, cols, ch, lanes)
    joins = dma_joins(dram, rows, cols, ch, elem, row_pitch, px_pitch, bus_bits, lanes)
    return LOAD_OVERHEAD + latency + _memory_bound(beats, words - (joins - 1), bus_bits,
                                                   bytes_per_cycle, np)


def store_tile_cycles(dram, rows, cols, ch, elem, row_pitch, px_pitch, bus_bits, lanes,
                      latency=0, bytes_per_cycle=None):
    """Cycles of one ``store.tile`` (module docstring): :data:`STORE_OVERHEAD` + ``latency``
    (of the last write response) + the larger of beats + words and the beats' transfer
    time at ``bytes_per_cycle``."""
    beats = dma_beats(dram, rows, cols, ch, elem, row_pitch, px_pitch, bus_bits)
    words = dma_words(rows, cols, ch, lanes)
    joins = dma_joins(dram, rows, cols, ch, elem, row_pitch, px_pitch, bus_bits, lanes)
    return STORE_OVERHEAD + latency + _memory_bound(beats, words - (joins - 1), bus_bits,
                                                    bytes_per_cycle, np)
