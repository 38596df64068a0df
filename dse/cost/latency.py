"""On-chip cycles of each (layer, choice, hardware point): the conv datapath's own formula.

A layer's ``compute_cycles`` are the cycles the conv datapath (``rtl/conv_datapath.py``)
takes to run it with its data on chip -- the lowering of its algorithm
(:mod:`dse.lowering`: GEMM shapes and counts, fronts, backs, loads and drains, the layer cut
into the invocations that fit the point's overlay.v, :mod:`dse.lowering.split`), exactly
what ``omniconv verify`` measures in Verilator.  The same
functions plan the layer in the compiler, so the explorer prices the machine that is built.

This module evaluates them over the whole ``(L, C, U)`` grid at once: layer columns
``(L, 1, 1)``, the choice's unit size and dataflow ``(1, C, 1)``, array shapes ``(1, 1, U)``;
every algorithm's formula is computed on the grid and the choice's algorithm picks one.
Entries of illegal (layer, choice) pairs are finite placeholders that
:func:`dse.cost.choices.legal_mask` masks out.

``sparse_fft`` choices are not on the conv datapath: their cycles are
:func:`dse.lowering.sparse_fft.cycles` (the FFT unit's transforms around the sparse MAC unit
of the point's ``sparse_lanes`` and ``sparse_banks``, at the layer's ``density``), their
"GEMM" is the layer's useful real products (3 per kept complex MAC), and nothing of them is
array busy time.  Numpy only (the expected schedule length is a table lookup).

* ``compute_cycles``: the whole layer (every invocation), transforms included;
* ``fill_drain_cycles``: the array's busy cycles that stream no vector: its pipeline fill
  and drain, less what GEMMs back to back overlap (the busy cycles less the GEMMs' steady
  cycles, :func:`dse.cost.gemm.gemm_cycle_breakdown`);
* ``transform_cycles``: the layer's cycles outside the array's busy cycles -- operand
  loads, result drains, transforms, shift-and-add and requantiser tails, which the datapath
  runs one after another with the GEMMs.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dse.cost import gemm as _gemm
from rtl.params import Algorithm

__all__ = ["GemmShapes", "gemm_shapes", "datapath_cycles"]

_ALGOS = list(Algorithm)


class GemmShapes:
    """GEMM decomposition of every (layer, choice), arrays of shape ``(L, C, 1)``.

    Members
    -------
    m, k, n: GEMM dimensions.
    count: number of such GEMMs per layer (all invocations).
    tiles: output tiles (Winograd, FFT), output pixels (im2col) or input pixels (kn2row).
    pieces: Winograd 3×3 pieces per kernel (1 elsewhere).
    """

    def __init__(self, m, k, n, count, tiles, pieces):
        self.m, self.k, self.n, self.count = m, k, n, count
        self.tiles, self.pieces = tiles, pieces

    @property
    def macs(self):
        """MACs the array performs (transformed-domain products for Winograd and FFT)."""
        return self.count * self.m * self.k * self.n


def _unit(choices, algo, xp):
    """The unit size each choice gives ``algo`` (placeholders where it is not that algo)."""
    if algo == Algorithm.WINOGRAD:
        return xp.maximum(choices.column("wino_m", xp), 1.0)
    if algo == Algorithm.FFT:
        return xp.maximum(choices.column("fft_n", xp), 4.0)
    if algo == Algorithm.IM2COL:
        return choices.column("patches", xp)
    return 0.0


def _pick(choices, values: dict, xp):
    """Per choice, the value of its algorithm (``values``: algorithm → array)."""
    algo = choices.column("algo", xp)
    out = None
    for a, v in values.items():
        out = v if out is None else xp.where(algo == _ALGOS.index(a), v, out)
    return out


def _lowerings():
    # imported when first used: dse.lowering imports dse.cost's formulas, and dse.cost's
    # package init imports this module
    from dse.lowering import LOWERINGS

    return LOWERINGS


def _lowered(layers, choices, rows, cols, xp, banded=True, wino_lanes=1):
    """Every algorithm's lowering of every (layer, choice); ``banded=False`` keeps im2col
    as one GEMM of all output pixels (the algorithm's GEMM, not the datapath's bands);
    ``wino_lanes``: the points' Winograd output transforms."""
    from dse.lowering import Geometry

    g = Geometry.of_table(layers, xp)
    flow = choices.column("dataflow", xp)
    extra = {Algorithm.IM2COL: {} if banded else {"banded": False},
             Algorithm.WINOGRAD: {"lanes": wino_lanes}}
    return {a: mod.lower(g, _unit(choices, a, xp), rows, cols, flow, xp=xp,
                         **extra.get(a, {}))
            for a, mod in _lowerings().items()}


def gemm_shapes(layers, choices, xp=np) -> GemmShapes:
    """The GEMMs of each (layer, choice) as the algorithm needs them: its lowering's shape
    and count, K without the zero channels that fill a feature word on a given array."""
    low = _lowered(layers, choices, 1.0, 1.0, xp, banded=False)
    zero = 0.0 * choices.column("algo", xp)

    def field(name):
        return _pick(choices, {a: getattr(v, name) + zero for a, v in low.items()}, xp)

    count = _pick(choices, {a: v.gemms * v.invocations + zero for a, v in low.items()}, xp)
    shapes = GemmShapes(field("m"), field("k_alg"), field("n"), count, field("tiles"),
                        field("pieces"))
    sparse = _sparse_columns(choices)
    if sparse.size:
        _need_numpy(xp)
        from dse.lowering import Geometry, sparse_fft

        g = Geometry.of_table(layers)
        unit = choices.column("fft_n")[:, sparse]
        th, tw = sparse_fft.tile_grid(g, unit)
        z = sparse_fft.keep(layers.density.reshape(-1, 1, 1), unit)
        full = (len(layers), len(choices), 1)
        for name, value in (("m", th * tw), ("k", g.c_in), ("n", g.c_out),
                            ("count", sparse_fft.DSP_PER_LANE * z), ("tiles", th * tw),
                            ("pieces", 1.0)):
            arr = np.array(np.broadcast_to(getattr(shapes, name), full), dtype=np.float64)
            arr[:, sparse] = np.broadcast_to(value, (full[0], sparse.size, 1))
            setattr(shapes, name, arr)
    return shapes


def _sparse_columns(choices) -> np.ndarray:
    return np.flatnonzero(choices.algo == _ALGOS.index(Algorithm.SPARSE_FFT))


def _need_numpy(xp) -> None:
    if xp is not np:
        raise ValueError("sparse_fft choices are costed in numpy only, not on "
                         f"{getattr(xp, '__name__', xp)!r}")


def sparse_cycles(layers, choices, hardware, limits=None) -> dict:
    """:func:`dse.lowering.sparse_fft.cycles` of every (layer, sparse choice, point):
    ``(L, S, U)`` float64 arrays for the ``S`` sparse choices (``hardware``: anything with
    ``column``, the points' ``fft_size`` is not read: the choice's FFT size is).  With
    ``limits`` (the points' ``DatapathLimits`` fields as ``(1, 1, U)`` arrays) the layer is
    cut into the invocations the compiler cuts it into
    (:func:`dse.lowering.sparse_fft.layer_cycles`) and ``fits`` says where it runs."""
    from dse.lowering import Geometry, sparse_fft

    sparse = _sparse_columns(choices)
    g = Geometry.of_table(layers)
    g = Geometry(*(v if f.name == "square_steps" else _integers(v)
                   for f, v in zip(dataclasses.fields(Geometry), dataclasses.astuple(g))))
    unit = _integers(choices.column("fft_n"))[:, sparse]
    z = sparse_fft.keep(layers.density.reshape(-1, 1, 1), unit)
    lanes = _integers(hardware.column("sparse_lanes"))
    banks = _integers(hardware.column("sparse_banks"))
    if limits is None:
        out = sparse_fft.cycles(g, unit, lanes, banks, z)
    else:
        out = sparse_fft.layer_cycles(g, unit, _integers(hardware.column("rows")),
                                      _integers(hardware.column("cols")), lanes, banks,
                                      layers.density.reshape(-1, 1, 1), limits)
    shape = (len(layers), sparse.size, np.shape(lanes)[2])
    return {k: np.broadcast_to(np.asarray(v, dtype=np.float64), shape) for k, v in out.items()}


def datapath_cycles(layers, choices, hardware, xp=np, fill_drain=True, limits=None):
    """``(compute, fill_drain, transform, fits)`` ``(L, C, U)`` of every layer on the conv
    datapath (module docstring): the layer cut into the invocations that fit ``limits``
    (``rtl.params.DatapathLimits`` fields as ``(1, 1, U)`` arrays, the points' overlay.v;
    ``None``: one invocation a group) by :mod:`dse.lowering.split`, the compiler's rule;
    ``fits`` is where the layer runs at all.  ``fill_drain`` is ``None`` when not asked
    for."""
    from dse.lowering import Geometry
    from dse.lowering.split import split_cycles

    sparse = _sparse_columns(choices)
    if sparse.size:
        _need_numpy(xp)
    ints = _integers if xp is np else (lambda v: v)
    rows, cols = ints(hardware.column("rows", xp)), ints(hardware.column("cols", xp))
    flow = ints(choices.column("dataflow", xp))
    lanes = ints(hardware.column("winograd_lanes", xp))
    g = Geometry.of_table(layers, xp)
    if xp is np:
        g = Geometry(*(v if f.name == "square_steps" else ints(v)
                       for f, v in zip(dataclasses.fields(Geometry), dataclasses.astuple(g))))
        limits = None if limits is None else {k: ints(v) for k, v in limits.items()}
        out = _datapath_cycles_np(choices, g, rows, cols, flow, lanes, limits, fill_drain)
        if sparse.size:
            compute, fill, transform, ok = out
            c = sparse_cycles(layers, choices, hardware, limits)
            compute[:, sparse] = c["cycles"]
            transform[:, sparse] = c["cycles"]          # no array busy cycles
            if fill is not None:
                fill[:, sparse] = 0.0
            # the compiler's rule (dse.lowering.sparse_fft.invocations)
            ok[:, sparse] = (c["fits"] if limits is not None
                             else hardware.column("sparse_lanes") > 0)
        return out
    total, busy, fill, fits = {}, {}, {}, {}
    for a in _lowerings():
        c = split_cycles(a, g, _unit(choices, a, xp), rows, cols, flow, limits, xp=xp,
                         lanes=lanes)
        total[a], busy[a] = c["cycles"], c["gemm_cycles"]
        fits[a] = c["split"].fits + 0 * c["cycles"] > 0
        if fill_drain:
            v = c["lowered"]
            parts = _gemm.gemm_cycle_breakdown(v.m, v.k, v.n, rows, cols, flow, xp=xp)
            fill[a] = xp.maximum(c["gemm_cycles"] - parts["steady"] * c["gemms"], 0)
    compute = _pick(choices, total, xp)
    transform = compute - _pick(choices, busy, xp)
    ok = _pick(choices, fits, xp)
    return compute, (_pick(choices, fill, xp) if fill_drain else None), transform, ok


def _datapath_cycles_np(choices, g, rows, cols, flow, lanes, limits, fill_drain):
    """:func:`datapath_cycles` in numpy: each algorithm evaluated on its own choices only
    (int64; a quarter of the work of evaluating every algorithm on every choice)."""
    from dse.lowering.split import split_cycles

    algo = choices.column("algo", np).reshape(-1)
    shape = (np.shape(g.c_in)[0], len(algo), np.shape(rows)[2])          # (L, C, U)
    compute = np.zeros(shape)
    busy = np.zeros(shape)
    fill = np.zeros(shape) if fill_drain else None
    ok = np.zeros(shape, dtype=bool)
    for a in _lowerings():
        idx = np.flatnonzero(algo == _ALGOS.index(a))
        if not len(idx):
            continue
        unit = np.broadcast_to(_integers(_unit(choices, a, np)), flow.shape)[0, idx, 0]
        # choices that differ only in what stays resident in DRAM cost the same on chip:
        # one evaluation per (dataflow, unit)
        key, inverse = np.unique(np.stack([flow[0, idx, 0], unit], axis=1), axis=0,
                                 return_inverse=True)
        inverse = inverse.reshape(-1)
        f = key[:, 0].reshape(1, -1, 1)
        c = split_cycles(a, g, key[:, 1].reshape(1, -1, 1), rows, cols, f, limits, xp=np,
                         lanes=lanes)
        compute[:, idx] = np.broadcast_to(c["cycles"], (shape[0], len(key), shape[2]))[:, inverse]
        busy[:, idx] = np.broadcast_to(c["gemm_cycles"],
                                       (shape[0], len(key), shape[2]))[:, inverse]
        ok[:, idx] = np.broadcast_to(c["split"].fits, (shape[0], len(key), shape[2]))[:, inverse]
        if fill_drain:
            v = c["lowered"]
            parts = _gemm.gemm_cycle_breakdown(v.m, v.k, v.n, rows, cols, f, xp=np)
            fill[:, idx] = np.broadcast_to(np.maximum(c["gemm_cycles"]
                                                      - parts["steady"] * c["gemms"], 0),
                                           (shape[0], len(key), shape[2]))[:, inverse]
    return compute, fill, compute - busy, ok


def _integers(v):
    """``v`` as int64 (numpy): the explorer's formulas are integer, and numpy's floor
    division is several times faster on integers than on floats (and exact)."""
    return np.asarray(v).astype(np.int64)
