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
last data beat to the write response) and a bandwidth of ``bytes_per_cycle``.  A store pays
the latency once.  A load follows its bursts (:func:`latency_bound_cycles`): long bursts
hide the latency after the first, but ``outstanding`` bursts of a beat wait one latency
each time; with a fixed read latency and no stalls this is exact
(``tests/rtl/test_dma.py::test_load_fixed_latency_exact_cycles``).  A memory slower than
one beat per cycle stretches the beats to ⌈beats · B / bytes_per_cycle⌉ cycles, and the
tile takes the longer of that and the aligner's beats + words: a model, exact only for
``bytes_per_cycle`` ≥ B.  ``tests/rtl/test_dma.py`` states and checks the bound that holds
under random latency and back-pressure.

:func:`dma_runs`, :func:`dma_beats` and :func:`dma_words` are vectorised: each argument may
be a scalar or an integer array of the namespace ``xp`` (numpy by default), broadcast
together.  :func:`dma_joins` and the tile cycles take scalars (the compiler's, once per box
shape and beat offset).  :func:`dma_beats` sums over the
residues of the run addresses modulo B, so it allocates two trailing axes of size B.
"""

from __future__ import annotations

import numpy as np

from dse.cost.transforms import cdiv
from rtl.params import AXI_BOUNDARY, AXI_MAX_BEATS, DMA_OUTSTANDING

__all__ = [
    "LOAD_OVERHEAD",
    "STORE_OVERHEAD",
    "dma_beats",
    "dma_joins",
    "dma_runs",
    "dma_words",
    "latency_bound_cycles",
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


def _run_timeline(offset: int, run_bytes: int, px_bytes: int, word_ends, beat: int):
    """The aligner's timeline of one run that starts ``offset`` bytes into a beat, with the
    byte register empty: each beat's cycle after the run's first beat, and the cycle of the
    run's last word.  After beat b the aligner hands out the words its bytes complete, one a
    cycle, and takes the next beat in the cycle after the last of them -- or in that cycle
    when the word ends exactly where the beat does (it empties the register)."""
    n_beats = -(-(offset + run_bytes) // beat)
    beat_ends = np.minimum(np.arange(1, n_beats + 1) * beat - offset, run_bytes)
    ends = (np.arange(run_bytes // px_bytes)[:, None] * px_bytes + word_ends).ravel()
    done = np.searchsorted(ends, beat_ends, side="right")      # words complete per beat end
    words = np.diff(done, prepend=0)
    exact = np.isin(beat_ends, ends)
    gaps = 1 + words - exact                                   # beat b to beat b + 1
    cycles = np.concatenate(([0], np.cumsum(gaps[:-1])))
    return cycles, int(cycles[-1] + words[-1])


def _load_bursts(dram, rows, cols, ch, elem, row_pitch, px_pitch, bus_bits, lanes):
    """The bursts of one ``load.tile`` on the aligner's own timeline (a memory that answers
    at once): arrays of each burst's first and last beat's cycle, and the last word's cycle,
    all counted from the first beat."""
    beat = bus_bits // 8
    nr, nc, n, pr, pc = (int(v) for v in dma_runs(rows, cols, ch, elem, row_pitch, px_pitch))
    px = ch * elem
    word_ends = np.minimum(np.arange(1, -(-ch // lanes) + 1) * lanes, ch) * elem
    runs = {}                                   # the run's timeline by its beat offset
    first, last = [], []
    start = 0                                   # the run's first beat on the tile's timeline
    for r in range(nr):
        for c in range(nc):
            cur = dram + r * pr + c * pc
            o = cur % beat
            if o not in runs:
                runs[o] = _run_timeline(o, n, px, word_ends, beat)
            cycles, end = runs[o]
            b, rem = 0, n                       # bursts as the engines split the run
            while rem:
                size = min(rem, AXI_BOUNDARY - cur % AXI_BOUNDARY,
                           AXI_MAX_BEATS * beat - cur % beat)
                k = -(-(cur % beat + size) // beat)
                first.append(start + cycles[b])
                last.append(start + cycles[b + k - 1])
                b, cur, rem = b + k, cur + size, rem - size
            start += end                        # the next run's first beat joins the last word
    return np.array(first), np.array(last), start


def load_tile_cycles(dram, rows, cols, ch, elem, row_pitch, px_pitch, bus_bits, lanes,
                     latency=0, bytes_per_cycle=None, outstanding=DMA_OUTSTANDING):
    """Cycles of one ``load.tile`` (module docstring): :data:`LOAD_OVERHEAD` + ``latency`` +
    the larger of beats + words − (joins − 1) and the beats' transfer time at
    ``bytes_per_cycle`` (``None``: at least one beat a cycle) -- with a read ``latency``, the
    larger of that and :func:`latency_bound_cycles`.  Scalars only."""
    beats = dma_beats(dram, rows, cols, ch, elem, row_pitch, px_pitch, bus_bits)
    words = dma_words(rows, cols, ch, lanes)
    joins = dma_joins(dram, rows, cols, ch, elem, row_pitch, px_pitch, bus_bits, lanes)
    cycles = LOAD_OVERHEAD + latency + _memory_bound(beats, words - (joins - 1), bus_bits,
                                                     bytes_per_cycle, np)
    if latency:
        cycles = max(cycles, latency_bound_cycles(dram, rows, cols, ch, elem, row_pitch,
                                                  px_pitch, bus_bits, lanes, latency,
                                                  outstanding))
    return cycles


def latency_bound_cycles(dram, rows, cols, ch, elem, row_pitch, px_pitch, bus_bits, lanes,
                         latency, outstanding=DMA_OUTSTANDING):
    """Cycles of one ``load.tile`` from a memory that answers each burst ``latency`` cycles
    late and never stalls otherwise, with the load engine's ``outstanding`` bursts in flight.

    The engine issues burst j in cycle i_j = max(i_{j−1} + 1, l_{j−outstanding} + 1) -- its
    burst queue frees a place the cycle after a burst's last beat is taken, in cycle l --
    and the memory offers its first beat in i_j + ``latency`` + 2 (the AR register, the
    memory's registered answer).  The aligner takes that beat then or, if later, when its own
    timeline (:func:`_load_bursts`) reaches it; every later beat of the burst follows on
    that timeline.  With ``latency`` 0 this is beats + words − (joins − 1) + the overhead: no
    burst waits.  Bursts of a beat or two (a box whose pixels are a channel slice of a wider
    tensor is a run, and a burst, per pixel) wait: ``outstanding`` of them per
    ``latency`` + 3 cycles.  Scalars only."""
    dram, rows, cols, ch, elem, row_pitch, px_pitch, bus_bits, lanes = (
        int(v) for v in (dram, rows, cols, ch, elem, row_pitch, px_pitch, bus_bits, lanes))
    first, last, end = _load_bursts(dram, rows, cols, ch, elem, row_pitch, px_pitch,
                                    bus_bits, lanes)
    # the first beat's cycle as the closed form counts (the command's cycle is 1): the
    # start-up, then one cycle a beat or a word
    first0 = LOAD_OVERHEAD + 1
    issue = first0 - 2                          # with latency 0 it is taken as it arrives
    slip = 0                                    # the aligner's delay behind its own timeline
    taken = []                                  # each burst's last beat's cycle
    for j in range(len(first)):
        if j:
            issue = max(issue + 1, taken[j - outstanding] + 1 if j >= outstanding else 0)
        slip = max(slip, issue + latency + 2 - (first0 + int(first[j])))
        taken.append(first0 + int(last[j]) + slip)
    return first0 + end + slip                  # the last word's cycle: done


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
