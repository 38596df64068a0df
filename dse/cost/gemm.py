"""Exact cycle count of one GEMM on the RTL GEMM engine (``rtl/gemm_engine.py``), per dataflow.

``gemm_cycles`` is what the engine's ``cycles`` register measures: the busy cycles from the
cycle after the start handshake to the last write of C into the result buffer, with A and B
already on chip (loading and draining overlap with compute through double buffering).  The
tests run the RTL in simulation and require equality for every tested shape, array and
dataflow.  Derivation: docs/rtl.md, "Cycle formula".

The engine walks ``tiles`` tiles, each in a slot of cycles, where T is the temporal extent of
the dataflow (SCALE-Sim's assignment)::

    dataflow   spatial rows × cols     temporal T   tiles
    ws (0)     K × N                   M            ⌈K/rows⌉ · ⌈N/cols⌉
    os (1)     M × N                   K            ⌈M/rows⌉ · ⌈N/cols⌉
    is (2)     K × M                   N            ⌈K/rows⌉ · ⌈M/cols⌉

An os slot is ``T + rows − 1`` cycles: the finished accumulators drain down the columns for
rows cycles underneath the next tile's stream.  A ws/is slot is ``max(T, rows + 1)`` cycles:
the next tile's stationary operand is preloaded into the PEs' shadow registers during the
current tile and each PE switches to it with the next tile's first vector (``rtl/pe.py``), so
tiles follow each other without a gap unless T is shorter than the preload and its latch.
Once per GEMM come the pipeline fill and drain: ``rows + cols + mult_latency + 3`` cycles,
plus, in ws and is, ``rows + 1`` for the first stationary preload and its latch.  The busy
cycles do not depend on the stream widths (narrow or wide): the sequencer reads the same
buffers either way.

Stream beats per GEMM (``a_beats``, ``b_beats``, ``c_beats``): a narrow stream moves one
element per beat; a wide one moves one array-edge vector (docs/rtl.md, "Wide streams")::

    stream  narrow   wide ws / os          wide is
    A       M·K      M·⌈K/rows⌉            M·⌈K/rows⌉
    B       K·N      K·⌈N/cols⌉            N·⌈K/rows⌉
    C       M·N      M·⌈N/cols⌉            ⌈M/cols⌉·N

``pipelined_gemms_cycles`` gives the cycles of a sequence of GEMMs run back to back through the
double buffers (loads of GEMM i+1 and the drain of GEMM i−1 under the compute of GEMM i).
"""

from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT_MULT_LATENCY", "LOAD_START_LATENCY", "ENGINE_C_LATENCY", "C_DRAIN_GAP",
           "C_HALF_FREE_LATENCY", "gemm_cycles", "gemm_lead", "gemm_issue_cycles",
           "gemm_cycle_breakdown",
           "a_beats", "b_beats", "c_beats", "pipelined_gemms_schedule",
           "pipelined_gemms_cycles"]

#: Multiplier register stages of the engine's default PE (``rtl.dsp.DEFAULT_LATENCY``).
DEFAULT_MULT_LATENCY = 3

#: A start is accepted at the earliest this many cycles after the cycle of the last operand
#: beat (the loader's "complete" flag is a register).
LOAD_START_LATENCY = 1
#: The first C beat leaves this many cycles, plus one, after the last busy cycle: the
#: result-half flag, the drainer's start, its synchronous read, the C FIFO.
ENGINE_C_LATENCY = 3
#: Idle cycles on ``c_stream`` between the last beat of one GEMM and the first of the next
#: when the next is already computed (FIFO empty, half released, next half's drain started).
C_DRAIN_GAP = 4
#: The result half of GEMM i is free for GEMM i+2 (its start accepted) at the earliest this
#: many cycles after the cycle of GEMM i's last C beat.
C_HALF_FREE_LATENCY = 2


def _cdiv(a, b):
    return -(-a // b)


def _where(xp, cond, a, b):
    """``xp.where`` that also takes a Python bool (torch.where needs a tensor condition; the
    compiler's scalar calls stay Python numbers, without an array round trip)."""
    if isinstance(cond, (bool, np.bool_)):
        return a if cond else b
    return xp.where(cond, a, b)


def maximum(xp, a, b):
    """``xp.maximum`` that keeps two Python or numpy scalars scalars (the compiler's calls)."""
    if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)):
        return max(a, b)
    return xp.maximum(a, b)


def _tiles(m, k, n, rows, cols, dataflow, xp):
    """The tiles the engine walks and the temporal extent T of each (module docstring)."""
    is_os = dataflow == 1
    spatial_r = _where(xp, is_os, m, k)
    spatial_c = _where(xp, dataflow == 2, m, n)
    temporal = _where(xp, dataflow == 0, m, _where(xp, is_os, k, n))
    return _cdiv(spatial_r, rows) * _cdiv(spatial_c, cols), temporal


def gemm_cycle_breakdown(m, k, n, rows, cols, dataflow, xp=np,
                         mult_latency=DEFAULT_MULT_LATENCY):
    """Return the parts of the engine's cycles for C[m×n] = A[m×k]·B[k×n].

    Parameters
    ----------
    m, k, n:
        GEMM shape (integers >= 1), arrays or scalars; all arguments broadcast.
    rows, cols:
        Systolic array shape.
    dataflow:
        Integer code of :class:`rtl.params.Dataflow` (0 ws, 1 os, 2 is).
    xp:
        Array namespace (``numpy`` or ``torch``); only ``where``, ``//`` and arithmetic are
        used, so torch tensors (CPU or GPU) work unchanged.
    mult_latency:
        Register stages of the PE multiplier (0 … 4; the engine's default is 3).

    Returns
    -------
    dict
        ``tiles`` (tiles walked), ``steady`` (cycles with one vector streamed each:
        tiles · T), ``fill_drain`` (all other cycles: per-tile slack, os rows − 1, ws/is
        max(0, rows + 1 − T), and the once-per-GEMM pipeline fill and drain) and
        ``cycles`` (their sum, equal to :func:`gemm_cycles`).
    """
    is_os = dataflow == 1
    tiles, temporal = _tiles(m, k, n, rows, cols, dataflow, xp)
    steady = tiles * temporal
    # os: every slot is rows − 1 longer than T.  ws/is: a slot is max(T, rows + 1), and the
    # GEMM adds tile 0's preload and latch (rows + 1) before its first vector.
    once = rows + cols + mult_latency + 3
    slack_stationary = (tiles - 1) * maximum(xp, rows + 1 - temporal, 0) + rows + 1
    fill_drain = once + _where(xp, is_os, tiles * (rows - 1), slack_stationary)
    return {"tiles": tiles, "steady": steady, "fill_drain": fill_drain,
            "cycles": steady + fill_drain}


def gemm_lead(rows, dataflow, xp=np):
    """Cycles from a start handshake that finds the sequencer free to the GEMM's first tile
    slot: os 2 (the start, then the sequencer's first cycle); ws/is rows + 3 (also the
    first stationary tile's rows preload cycles and its latch)."""
    return _where(xp, dataflow == 1, 2, rows + 3)


def _slot(temporal, rows, dataflow, xp):
    """Cycles of one tile slot: os T + rows − 1, ws/is max(T, rows + 1)."""
    return _where(xp, dataflow == 1, temporal + rows - 1, maximum(xp, temporal, rows + 1))


def gemm_issue_cycles(m, k, n, rows, cols, dataflow, xp=np):
    """The least spacing of start handshakes at which GEMMs of this shape and dataflow run
    back to back with every GEMM's first slot :func:`gemm_lead` after its start (so each
    GEMM's timing from its start is a lone GEMM's).  The array and the writer finish one
    GEMM under the next (their ``gemm_cycles − gemm_issue_cycles`` overlap it).

    * os: ``lead + tiles·slot``: the sequencer takes the next GEMM in the cycle after the
      last slot.
    * ws/is: ``max(tiles·slot, lead + (tiles − 1)·slot)``: the sequencer takes the next GEMM
      from the first cycle of the last slot on; its first stationary tile is then preloaded
      under that slot, and it streams from max(end of that slot, start + lead)."""
    tiles, temporal = _tiles(m, k, n, rows, cols, dataflow, xp)
    slot = _slot(temporal, rows, dataflow, xp)
    lead = gemm_lead(rows, dataflow, xp)
    return _where(xp, dataflow == 1, lead + tiles * slot,
                  maximum(xp, tiles * slot, lead + (tiles - 1) * slot))


def gemm_cycles(m, k, n, rows, cols, dataflow, xp=np, mult_latency=DEFAULT_MULT_LATENCY):
    """Return the engine's cycles of C[m×n] = A[m×k]·B[k×n] on a rows×cols array.

    Broadcasts over array arguments of the namespace ``xp`` (numpy or torch).  ``dataflow``
    is the integer code of :class:`rtl.params.Dataflow` (0 ws, 1 os, 2 is).  Equal to the
    ``cycles`` register of ``rtl.gemm_engine.GemmEngine`` (see the module docstring).
    """
    return gemm_cycle_breakdown(m, k, n, rows, cols, dataflow, xp, mult_latency)["cycles"]


def a_beats(m, k, rows, wide, xp=np):
    """Beats on the engine's ``a_stream`` for A[m×k]: m·k narrow, m·⌈k/rows⌉ wide (every
    dataflow: a wide beat is a K-chunk of one row of A).  Broadcasts like ``gemm_cycles``."""
    return _where(xp, wide, m * _cdiv(k, rows), m * k)


def b_beats(k, n, rows, cols, dataflow, wide, xp=np):
    """Beats on ``b_stream`` for B[k×n]: k·n narrow; wide: k·⌈n/cols⌉ (ws, os: N-chunks of a
    row of B) or n·⌈k/rows⌉ (is: K-chunks of a column)."""
    chunks = _where(xp, dataflow == 2, n * _cdiv(k, rows), k * _cdiv(n, cols))
    return _where(xp, wide, chunks, k * n)


def c_beats(m, n, cols, dataflow, wide, xp=np):
    """Beats on ``c_stream`` for C[m×n]: m·n narrow; wide: m·⌈n/cols⌉ (ws, os: N-chunks of a
    row of C) or ⌈m/cols⌉·n (is: M-chunks of a column)."""
    chunks = _where(xp, dataflow == 2, _cdiv(m, cols) * n, m * _cdiv(n, cols))
    return _where(xp, wide, chunks, m * n)


def pipelined_gemms_schedule(shapes, rows, cols, dataflows, wide=(False, False, False),
                             xp=np, mult_latency=DEFAULT_MULT_LATENCY, fires=None):
    """Return ``(starts, last_c)``: per GEMM run back to back (see
    :func:`pipelined_gemms_cycles`), the cycle of its start handshake ``f_i`` and of its last
    C beat ``e_i``, as lists.

    ``fires``: the start handshakes as a host made them (integers, each no sooner than the
    engine takes it; ValueError otherwise) instead of the earliest ones."""
    if isinstance(dataflows, (int, np.integer)):
        dataflows = [dataflows] * len(shapes)
    a_wide, b_wide, c_wide = wide
    fire_prev = -1
    flow_prev = None
    starts, ends, busy_ends, last_slots, slots_ends = [], [], [], [], []
    for (m, k, n), flow in zip(shapes, dataflows):
        load = xp.maximum(xp.asarray(a_beats(m, k, rows, a_wide, xp)),
                          xp.asarray(b_beats(k, n, rows, cols, flow, b_wide, xp)))
        busy = gemm_cycles(m, k, n, rows, cols, flow, xp, mult_latency)
        drain = c_beats(m, n, cols, flow, c_wide, xp)
        tiles, temporal = _tiles(m, k, n, rows, cols, flow, xp)
        slot = _slot(temporal, rows, flow, xp)
        lead = gemm_lead(rows, flow, xp)
        same = flow == flow_prev
        fire = fire_prev + load + LOAD_START_LATENCY
        if ends:
            # the same dataflow: once the sequencer is in the last slot (ws/is) or past it
            # (os); another: once the array is empty
            free = (last_slots[-1] if same else busy_ends[-1] + 1)
            fire = xp.maximum(xp.asarray(fire), xp.asarray(free))
        if len(ends) >= 2:
            # its result half drained (GEMM i − 2's, which has then also left the array),
            # and GEMM i − 2 wholly written (two GEMMs in flight at most)
            fire = xp.maximum(xp.asarray(fire), xp.asarray(ends[-2] + C_HALF_FREE_LATENCY))
            fire = xp.maximum(xp.asarray(fire), xp.asarray(busy_ends[-2] + 1))
        if fires is not None:
            if fires[len(starts)] < fire:
                raise ValueError(f"GEMM {len(starts)} cannot start at {fires[len(starts)]}, "
                                 f"only from {fire} on")
            fire = fires[len(starts)]
        stream = fire + lead
        if ends and same:
            stream = xp.maximum(xp.asarray(stream), xp.asarray(slots_ends[-1]))
        busy_end = stream - lead + busy          # its last write of C
        first = busy_end + ENGINE_C_LATENCY + 1
        if ends:
            first = xp.maximum(xp.asarray(first), xp.asarray(ends[-1] + C_DRAIN_GAP + 1))
        starts.append(fire)
        ends.append(first + drain - 1)
        busy_ends.append(busy_end)
        slots_ends.append(stream + tiles * slot)
        last_slots.append(slots_ends[-1] - xp.where(flow == 1, 0, slot))
        fire_prev, flow_prev = fire, flow
    return starts, ends


def pipelined_gemms_cycles(shapes, rows, cols, dataflows, wide=(False, False, False),
                           xp=np, mult_latency=DEFAULT_MULT_LATENCY):
    """Return the cycles of GEMMs run back to back through the engine's double buffers.

    Assumes the host keeps ``start`` high from the first cycle (setting the next GEMM's
    shape right after each handshake), the A and B sources are always valid and the C sink
    always ready.  Counted from the first cycle (A and B beats of GEMM 0 are taken from
    cycle 0 on) up to and including the cycle of the last C beat of the last GEMM.

    With ``f_i`` the cycle of GEMM i's start handshake, ``B_i`` its busy cycles
    (:func:`gemm_cycles`), ``L_i`` = max(A beats, B beats), ``D_i`` its C beats, ``s_i`` the
    first cycle of its tile slots and ``S_i = s_i + tiles_i·slot_i`` the cycle after them,
    ``w_i`` the cycle of its last write of C and ``e_i`` that of its last C beat (``f_-1`` =
    −1, the terms of GEMMs before the first absent)::

        f_i = max(f_(i−1) + L_i + LOAD_START_LATENCY,    loads after the previous start
                  F_(i−1),                                the sequencer takes it
                  e_(i−2) + C_HALF_FREE_LATENCY,          its result half drained
                  w_(i−2) + 1)                            two GEMMs in flight at most
        s_i = max(f_i + lead_i, S_(i−1))                  (S_(i−1): same dataflow, ws/is)
        w_i = s_i − lead_i + B_i
        e_i = max(w_i + ENGINE_C_LATENCY + 1,             first C beat after compute
                  e_(i−1) + C_DRAIN_GAP + 1) + D_i − 1    after the previous drain

    with ``lead`` = :func:`gemm_lead` and ``F_(i−1)`` = ``S_(i−1) − slot_(i−1)`` (the same
    dataflow, ws/is: the next GEMM is taken in the last slot and preloaded under it),
    ``S_(i−1)`` (os) or ``w_(i−1) + 1`` (another dataflow: the array empties first); the
    result is ``e_(G−1) + 1``.  For G equal GEMMs it approaches G·max(L + 1,
    :func:`gemm_issue_cycles`, D + C_DRAIN_GAP, (B + D + ENGINE_C_LATENCY +
    C_HALF_FREE_LATENCY)/2) plus one fill (the last bound: GEMM i+2 waits for the drain of
    GEMM i).

    Parameters
    ----------
    shapes:
        Sequence of ``(m, k, n)`` (each integer or array; all broadcast together).
    rows, cols:
        Array shape.
    dataflows:
        One dataflow code per GEMM, or one for all.
    wide:
        ``(a_wide, b_wide, c_wide)`` of the engine.
    """
    return pipelined_gemms_schedule(shapes, rows, cols, dataflows, wide, xp,
                                    mult_latency)[1][-1] + 1
