"""Cycles of exactly what ``omniconv verify`` simulates: one layer on the conv datapath.

The datapath (``rtl/conv_datapath.py``) runs a layer's GEMMs one after another, without
overlapping them (docs/verify.md), so its cycles are a sum of the unit formulas of
:mod:`dse.cost.gemm` and :mod:`dse.cost.transforms` plus the fixed latencies of the
datapath's own plumbing, named below.  Per GEMM (from the cycle its fronts start):

* **load**: the slower of the front (``im2col_stream_cycles`` for im2col and for kn2row's 1×1
  row reader; ``TILE_READ_LATENCY`` + ``winograd_input_transform_cycles`` for Winograd) and
  the weight reader (``K·N + WEIGHT_READ_LATENCY``); the engine takes ``start`` in the cycle
  after the last operand beat, which is the last cycle the front's formula counts;
* **compute**: ``gemm_cycles`` (the engine's busy cycles);
* **drain**: M·N beats of C, the first ``ENGINE_DRAIN_LATENCY`` + 1 cycles after the last
  busy cycle (result-half flag, drainer start, synchronous read, FIFO);
* one controller cycle to start the next GEMM (or the tail).

FFT (``rtl/spectral.py``) runs its forward transforms before the GEMMs: the tile reader's
``TILE_READ_LATENCY``, then ``fft2d_cycles`` over tiles × channels (the unit works one tile
at a time and the reader never starves it); the first GEMM then starts as any first GEMM
does.  Its A reader streams one bin's M·K spectrum words with the same latency as the weight
reader (load = max(M·K, K·N) + ``WEIGHT_READ_LATENCY``).  Its tail: the output-spectrum
reader (``TILE_READ_LATENCY``), the inverse transforms (``fft2d_cycles`` over tiles ×
filters), one cycle to start the drain, the overlap-add buffer's reader
(``TILE_READ_LATENCY``) and the requantiser.

Then the tail: im2col waits for the requantiser (``REQUANT_LATENCY``) and one cycle to see
the last output word; kn2row for the shift-and-add drain (one word per cycle, starting one
cycle after its last partial sum) and the requantiser; Winograd reads the transformed-domain
buffer (``TILE_READ_LATENCY``) through the output transform
(``winograd_output_transform_cycles``) and the requantiser.  The start cycle itself is not
counted (``cycles`` counts the cycles ``busy`` is high).

:func:`unit_cycles` predicts each of the datapath's unit counters, :func:`layer_cycles` the
whole layer; tests require equality with the RTL.
"""

from __future__ import annotations

from dse.cost import transforms as tf
from dse.cost.gemm import DEFAULT_MULT_LATENCY, gemm_cycles

__all__ = ["WEIGHT_READ_LATENCY", "TILE_READ_LATENCY", "ENGINE_DRAIN_LATENCY", "unit_cycles",
           "invocation_cycles", "plan_cycles"]

#: Weight (and tile, and transformed-domain) buffer readers: a registered start, then a
#: synchronous read, so the first word is on the stream two cycles after the start.
WEIGHT_READ_LATENCY = 2
TILE_READ_LATENCY = 2
#: Cycles from the engine's last busy cycle to its first C beat, less one: the result-half
#: flag, the drainer's start, its synchronous read, then the C FIFO (rtl/gemm_engine.py).
ENGINE_DRAIN_LATENCY = 3


def _geometry(plan, inv):
    gm, gk, gn = inv.gemm
    hp, wp = plan.padded_hw
    oh, ow = plan.out_shape[1:]
    r, s = plan.kernel
    return gm, gk, gn, hp, wp, oh, ow, r, s


def _front(plan, inv) -> int:
    """Cycles the front counts for one GEMM (its own formula)."""
    gm, gk, gn, hp, wp, oh, ow, r, s = _geometry(plan, inv)
    cg = plan.in_shape[0] // plan.groups
    if plan.algorithm == "im2col":
        return int(tf.im2col_stream_cycles(oh, ow, r, s, cg))
    if plan.algorithm == "kn2row":
        return int(tf.im2col_stream_cycles(hp, wp, 1, 1, cg))
    if plan.algorithm == "fft":
        return int(tf.fft2d_cycles(plan.fft_n, gm, gk))
    return int(tf.winograd_input_transform_cycles(gm, gk, plan.winograd_m))


def unit_cycles(plan, inv, rows: int, cols: int,
                mult_latency: int = DEFAULT_MULT_LATENCY) -> dict:
    """Predicted unit counters of one invocation: gemm, front, back and requant cycles."""
    gm, gk, gn, hp, wp, oh, ow, r, s = _geometry(plan, inv)
    flow = {"ws": 0, "os": 1, "is": 2}[plan.dataflow]
    g = int(gemm_cycles(gm, gk, gn, rows, cols, flow, mult_latency=mult_latency))
    back = 0
    if plan.algorithm == "kn2row":
        back = int(tf.kn2row_shift_add_cycles(hp, wp, r, s, oh, ow, gn))
    elif plan.algorithm == "winograd":
        back = int(tf.winograd_output_transform_cycles(gm, gn, plan.winograd_m))
    elif plan.algorithm == "fft":
        back = int(tf.fft2d_cycles(plan.fft_n, gm, gn))
    # the FFT's front (its forward transforms) runs once; the other fronts once per GEMM
    front_runs = 1 if plan.algorithm == "fft" else inv.gemms
    return {"gemm_cycles": inv.gemms * g, "front_cycles": front_runs * _front(plan, inv),
            "back_cycles": back, "requant_cycles": int(tf.requant_cycles(inv.out_words))}


def invocation_cycles(plan, inv, rows: int, cols: int,
                      mult_latency: int = DEFAULT_MULT_LATENCY) -> dict:
    """Predicted counters of one invocation, ``cycles`` (the whole run) included."""
    units = unit_cycles(plan, inv, rows, cols, mult_latency)
    gm, gk, gn, hp, wp, oh, ow, r, s = _geometry(plan, inv)
    front = _front(plan, inv)
    if plan.algorithm == "winograd":
        front += TILE_READ_LATENCY
    if plan.algorithm == "fft":
        front = gm * gk + WEIGHT_READ_LATENCY        # the spectrum (A) reader of one GEMM
    load = max(front, gk * gn + WEIGHT_READ_LATENCY)
    per_gemm = (load + units["gemm_cycles"] // inv.gemms + gm * gn
                + ENGINE_DRAIN_LATENCY + 1)
    requant_tail = tf.REQUANT_LATENCY + 1
    if plan.algorithm == "im2col":
        tail = requant_tail
    elif plan.algorithm == "kn2row":
        tail = inv.out_words + 1 + requant_tail
    elif plan.algorithm == "fft":
        lead = TILE_READ_LATENCY + units["front_cycles"]
        tail = (TILE_READ_LATENCY + units["back_cycles"] + 1 + TILE_READ_LATENCY
                + units["requant_cycles"] - 1)
        return {"cycles": lead + inv.gemms * per_gemm + tail - 1, **units}
    else:
        tail = 1 + TILE_READ_LATENCY + units["back_cycles"] + tf.REQUANT_LATENCY
    return {"cycles": inv.gemms * per_gemm + tail - 1, **units}


def plan_cycles(plan, rows: int, cols: int, mult_latency: int = DEFAULT_MULT_LATENCY) -> dict:
    """Predicted counters of a whole layer plan (summed over its invocations)."""
    total: dict = {}
    for inv in plan.invocations:
        for k, v in invocation_cycles(plan, inv, rows, cols, mult_latency).items():
            total[k] = total.get(k, 0) + int(v)
    return total
