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
computes and GEMM i − 1 drains.  For the lowerings that run several GEMMs (kn2row,
Winograd) a GEMM's loads and drain are never longer than its compute (``tests/dse``
checks this over random layers and arrays), so each GEMM after the first adds its busy
cycles and the one cycle between the engine's last busy cycle and its next start.  The FFT
runs its GEMMs one after another (its spectral path holds one bin for its A and C sides).

Each algorithm adds its lead and tail (its module).  ``cycles`` counts the cycles ``busy``
is high (the start cycle itself is not counted).
"""

from __future__ import annotations

import numpy as np

from dse.cost import gemm as _gemm
from dse.cost import transforms as tf
from dse.cost.gemm import DEFAULT_MULT_LATENCY, gemm_cycles

__all__ = ["TILE_READ_LATENCY", "ENGINE_DRAIN_LATENCY", "WIDEN_LATENCY",
           "REQUANT_TAIL", "gemm_busy", "per_gemm_cycles", "gemms_cycles", "overlap_slack",
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
#: pipeline, then one cycle).
REQUANT_TAIL = tf.REQUANT_LATENCY + 1


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


def overlap_slack(low, busy, xp=np):
    """How many cycles the compute of one GEMM exceeds its loads and its drain by: the
    overlapped period :func:`gemms_cycles` assumes holds when this is at least 0."""
    return xp.minimum(busy + 1 - low.load, busy + 1 - (low.drain + _gemm.C_DRAIN_GAP))


def gemms_cycles(low, busy, xp=np):
    """Cycles of the invocation's ``low.gemms`` GEMMs overlapped through the engine's double
    buffers, from the first fronts' start to the last C beat: the first GEMM whole
    (:func:`per_gemm_cycles`), then ``busy + 1`` for each further GEMM (the start the engine
    takes in the cycle after its last busy cycle; needs :func:`overlap_slack` >= 0)."""
    return per_gemm_cycles(low, busy, xp) + (low.gemms - 1) * (busy + 1)


def requant_cycles(low):
    """The requantiser's counter over the invocation's output words."""
    return tf.requant_cycles(low.out_words)
