"""Timing of the conv datapath around its units (``rtl/conv_datapath.py``), shared by every
lowering.

The GEMM engine's streams are array-edge vectors (``dse.cost.gemm``: ``a_beats``,
``b_beats``, ``c_beats`` with ``wide``): A arrives as K-chunks of ``rows`` elements of a row,
B as weight-buffer words of N-chunks (ws, os) or K-chunks (is), C leaves as vectors of
``cols`` accumulators.  Per GEMM, from the cycle its fronts start:

* **load**: the A front (the algorithm's ``Lowered.load``; the engine reads B where it lies,
  in the weight buffer); the engine takes ``start`` in the cycle after the last A beat;
* **compute**: :func:`dse.cost.gemm.gemm_cycles` (the engine's busy cycles);
* **drain**: ``Lowered.drain`` (the C words, or for a back that takes one element a cycle
  the elements and the unpacker's latency), the first ``ENGINE_DRAIN_LATENCY`` + 1 cycles
  after the last busy cycle;
* one controller cycle to start the next GEMM (or the tail).

A lone GEMM takes the sum of the four (:func:`per_gemm_cycles`).  An invocation of G GEMMs
overlaps them through the engine's double buffers (:func:`gemms_cycles`): the fronts of GEMM
i + 1 start in the cycle the engine takes the start of GEMM i, so they load while GEMM i
computes and GEMM i − 1 drains, and the engine takes GEMM i + 1 in GEMM i's last tile slot
(ws/is: its first stationary tile is preloaded under that slot) or after it (os), so GEMM
i's way through the array and its writes overlap GEMM i + 1 (the array's fill and drain, and
the first preload, are paid once an invocation).  The datapath starts the
GEMMs of an invocation a fixed :func:`gemm_period` apart (the compiler's ``gemm_period``
register): the largest of what the engine's sequencer, the fronts, the C drain and the
result halves need, so every GEMM after the first adds exactly that.  The FFT runs its
GEMMs one after another (its spectral path holds one bin for its A and C sides).

Each algorithm adds its lead and tail (its module).  ``cycles`` counts the cycles ``busy``
is high (the start cycle itself is not counted).
"""

from __future__ import annotations

import numpy as np

from dse.cost import gemm as _gemm
from dse.cost import transforms as tf
from dse.cost.gemm import DEFAULT_MULT_LATENCY, gemm_cycles

__all__ = ["TILE_READ_LATENCY", "ENGINE_DRAIN_LATENCY", "WIDEN_LATENCY",
           "REQUANT_TAIL", "requant_tail", "gemm_busy", "per_gemm_cycles", "gemm_period", "gemms_cycles",
           "gemms_busy",
           "requant_cycles", "a_words",
           "b_words", "c_words"]

#: Buffer readers (Winograd tiles, the transformed-domain buffers, the FFT's spectra): a
#: registered start, then a synchronous read, so the first word is on the stream two cycles
#: after the start.  (B has no reader: the GEMM engine reads it in the weight buffer.)
TILE_READ_LATENCY = 2
#: Cycles from the engine's last busy cycle to its first C beat, less one: the result-half
#: flag, the drainer's start, its synchronous read, then the C FIFO (rtl/gemm_engine.py).
ENGINE_DRAIN_LATENCY = _gemm.ENGINE_C_LATENCY
#: A packer's vector leaves one cycle after its last element; an unpacker's first element
#: one cycle after its vector (``rtl.widen.WIDEN_LATENCY``).
WIDEN_LATENCY = 1
#: Cycles after the last C beat until the last output word is seen written (requantiser
#: pipeline, then one cycle), with the per-layer requantiser (:func:`requant_tail`).
REQUANT_TAIL = tf.REQUANT_LATENCY + 1


def requant_tail(requant_latency=tf.REQUANT_LATENCY):
    """:data:`REQUANT_TAIL` for a requantiser of ``requant_latency`` pipeline registers
    (``dse.cost.transforms.requant_latency``)."""
    return requant_latency + 1


def a_words(m, k, rows, xp=np):
    """K-chunks of A per GEMM (the engine's wide A beats)."""
    return _gemm.a_beats(m, k, rows, True, xp)


def b_words(k, n, rows, cols, dataflow, xp=np):
    """Weight-buffer words per GEMM (the engine's wide B beats)."""
    return _gemm.b_beats(k, n, rows, cols, dataflow, True, xp)


def c_words(m, n, cols, dataflow, xp=np):
    """C vectors per GEMM (the engine's wide C beats)."""
    return _gemm.c_beats(m, n, cols, dataflow, True, xp)


def gemm_busy(low, rows, cols, dataflow, xp=np, mult_latency=DEFAULT_MULT_LATENCY):
    """The engine's busy cycles of one of the invocation's GEMMs."""
    return gemm_cycles(low.m, low.k, low.n, rows, cols, dataflow, xp=xp,
                       mult_latency=mult_latency)


def per_gemm_cycles(low, busy, xp=np):
    """Cycles of one GEMM of the invocation: load, compute (``busy``), drain, next start."""
    return low.load + busy + low.drain + ENGINE_DRAIN_LATENCY + 1


def gemm_period(low, busy, rows, cols, dataflow, xp=np):
    """Cycles from one GEMM's start to the next's in an invocation (the ``gemm_period``
    register): the largest of

    * the engine's sequencer, :func:`dse.cost.gemm.gemm_issue_cycles`;
    * the fronts of the next GEMM, which start with this one: ``low.load``;
    * the C drain, one word a cycle with the engine's gap: ``low.drain + C_DRAIN_GAP``;
    * the result half, which the GEMM after next reuses once this GEMM's C has left it:
      half of ``busy + ENGINE_C_LATENCY + low.drain + C_HALF_FREE_LATENCY``, rounded up.

    At that spacing the engine is ready for every start (each bound is one of its start
    conditions for GEMMs a period apart), so the start times are exact."""
    issue = _gemm.gemm_issue_cycles(low.m, low.k, low.n, rows, cols, dataflow, xp)
    half = (busy + ENGINE_DRAIN_LATENCY + low.drain + _gemm.C_HALF_FREE_LATENCY + 1) // 2
    return _gemm.maximum(xp, _gemm.maximum(xp, issue, low.load),
                      _gemm.maximum(xp, low.drain + _gemm.C_DRAIN_GAP, half))


def gemms_cycles(low, busy, period, xp=np):
    """Cycles of the invocation's ``low.gemms`` GEMMs overlapped through the engine's double
    buffers, from the first fronts' start to the last C beat: the first GEMM whole
    (:func:`per_gemm_cycles`), then ``period`` (:func:`gemm_period`) for each further one."""
    return per_gemm_cycles(low, busy, xp) + (low.gemms - 1) * period


def gemms_busy(low, busy, period, xp=np):
    """Cycles the engine is busy over the invocation's GEMMs a ``period`` apart: each adds
    its own busy cycles, less what overlaps the previous one."""
    return busy + (low.gemms - 1) * xp.minimum(period, busy)


def requant_cycles(low, requant_latency=tf.REQUANT_LATENCY):
    """The requantiser's counter over the invocation's output words."""
    return low.out_words + requant_latency
