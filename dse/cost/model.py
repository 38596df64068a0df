"""The cost model's one vectorised entry point: (layers × choices × hardware points) at once.

:func:`evaluate` returns :class:`CostArrays`, every member shaped ``(L, C, P)``:

* ``compute_cycles`` -- the conv datapath's cycles for the layer with its data on chip,
  transforms, loads and drains included: the formula of the layer's lowering
  (:mod:`dse.lowering` through :mod:`dse.cost.latency`), the same the compiler plans with and
  ``omniconv verify`` measures;
* ``fill_drain_cycles`` -- the array's pipeline fill and drain inside its busy cycles;
* ``transform_cycles`` -- the part of ``compute_cycles`` outside the array's busy cycles
  (operand loads, result drains, transforms, shift-add and requantiser tails);
* ``memory_cycles`` -- DRAM transfer time, ``dram_bytes`` ÷ bytes per cycle (the smaller of
  the AXI bus width and the board's GB/s at the clock);
* ``cycles`` -- with double buffering, loads and stores of one tile overlap the compute of
  another, except the first load and the last store::

      exposed = (first_load_bytes + last_store_bytes) / bytes_per_cycle
      cycles  = exposed + max(compute_cycles, memory_cycles - exposed)

* ``dram_bytes``, ``buffer_bytes`` (buffer space the tiling uses) from
  :mod:`dse.cost.traffic`; ``energy_pj`` from :mod:`dse.cost.energy` (dynamic + static).

The tiling may fill less than a buffer: tiles sized for ``min(buffer, c)`` KiB of the
activation and of the weight buffer, for every ``c`` of :data:`TILE_KIB` and the whole
buffer, are costed (each pair), and each entry takes the one with the fewest ``cycles``
(ties: the larger tiles).  A smaller first tile shortens the exposed first load, so a large
buffer can be faster used partly.  A larger buffer has a smaller one's tiling only when the
smaller size is on that ladder (and the output buffer has none), and the cut into
invocations is a heuristic, so a larger buffer can make a layer slower
(``tests/dse/test_buffer_monotone.py`` pins a counterexample of each).

Entries that cannot run -- an algorithm that cannot compute the layer
(:func:`dse.cost.choices.legal_mask`), a unit the overlay lacks or operands too narrow
(:func:`dse.cost.choices.hardware_mask`), or a tile that does not fit the buffers -- are
``inf`` in every member and false in ``valid``.

The same code runs on numpy (default) and torch (``xp=get_namespace("torch", "cuda")``);
hardware points are processed in chunks so that the working arrays stay in cache.
:func:`evaluate_one` is a per-candidate wrapper for tests and reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dse.cost.choices import Choice, ChoiceTable, hardware_mask, legal_mask
from dse.cost.backend import take_last
from dse.cost.energy import (DRAM_PJ_PER_BYTE, ENERGY_PJ, access_counts, add_pj, mult_pj,
                             point_energies, sram_pj_per_byte, static_energy_pj, transform_ops)
from dse.cost.hardware import HardwareTable
from dse.cost.sparse_cost import sparse_tile_traffic
from dse.cost.latency import datapath_cycles, gemm_shapes
from dse.cost.resources import overlay_buffer_words
from dse.cost.traffic import tile_traffic
from dse.cost.workload import AuxTable, LayerTable
from dse.network import Layer
from rtl.params import Algorithm, OverlayParams

__all__ = ["CostArrays", "CostReport", "AuxCost", "evaluate", "evaluate_one", "evaluate_aux",
           "COST_FIELDS"]

#: The ``(L, C, P)`` members of :class:`CostArrays`.
COST_FIELDS = ("compute_cycles", "fill_drain_cycles", "transform_cycles", "memory_cycles",
               "cycles", "dram_bytes", "buffer_bytes", "energy_pj")

#: Elements of the (L, C, P) working arrays per chunk of hardware points (cache-sized).
_CHUNK_ELEMS = 1 << 16


@dataclass(frozen=True, eq=False)
class CostArrays:
    """Costs of every (layer, choice, hardware point); see the module docstring.

    Members are arrays of the evaluation namespace, shape ``(L, C, P)``, float64; ``valid``
    is boolean.  Cycles are in overlay clock cycles, bytes in bytes, energy in pJ.
    """

    compute_cycles: object
    fill_drain_cycles: object
    transform_cycles: object
    memory_cycles: object
    cycles: object
    dram_bytes: object
    buffer_bytes: object
    energy_pj: object
    valid: object

    @property
    def shape(self) -> tuple:
        """``(L, C, P)``."""
        return tuple(self.cycles.shape)


@dataclass(frozen=True)
class CostReport:
    """Costs of one layer under one choice on one overlay (:func:`evaluate_one`).

    ``valid`` false means the choice cannot run there (every cost is then ``inf``);
    ``gemm`` is (M, K, N, count) and ``tile`` is (hb, wb, nb) -- spatial tile in output rows
    and columns, weight block in output channels -- with ``tiles`` and ``blocks`` their
    counts.
    """

    valid: bool
    compute_cycles: float
    fill_drain_cycles: float
    transform_cycles: float
    memory_cycles: float
    cycles: float
    dram_bytes: float
    act_bytes: float
    weight_bytes: float
    out_bytes: float
    buffer_bytes: float
    energy_pj: float
    gemm: tuple
    tile: tuple
    tiles: int
    blocks: int


#: KiB of the activation and of the weight buffer that a tiling may fill besides the whole
#: buffer (module docstring): the search grid's buffer sizes below its largest, and 8.
TILE_KIB = (8, 32, 128)


class _Points:
    """A few hardware columns of the unique points of one key (rows, cols or buffers)."""

    def __init__(self, arrays: dict):
        self.arrays = arrays

    def column(self, name, xp=np):
        return xp.asarray(self.arrays[name].astype(np.float64).reshape(1, 1, -1))


def _unique(hardware, names):
    """Unique combinations of the ``names`` fields, and each point's index into them."""
    key = np.stack([getattr(hardware, n) for n in names], axis=1)
    uniq, inverse = np.unique(key, axis=0, return_inverse=True)
    return _Points({n: uniq[:, i] for i, n in enumerate(names)}), inverse.reshape(-1)


#: The hardware fields a layer's on-chip cycles depend on: the array, and the buffer sizes
#: overlay.v has (``dse.cost.resources.overlay_buffer_words``), which decide how a layer is
#: cut into invocations.
_BUFFER_KEY = ("rows", "cols", "winograd_lanes", "act_buffer_kib", "weight_buffer_kib",
               "out_buffer_kib", "a_width", "b_width", "acc_width", "winograd_m", "fft_size",
               "sparse_lanes", "sparse_banks")


class _Attrs:
    """A dict of arrays as attributes (what ``overlay_buffer_words`` reads)."""

    def __init__(self, arrays):
        self.__dict__.update({k: np.asarray(v).astype(np.int64) for k, v in arrays.items()})


class _Prepared:
    """Everything that depends on only part of a hardware point, computed once.

    Array timing depends on (rows, cols, winograd_lanes) only and tiling on (buffer sizes,
    accumulator width) only; a search grid has few distinct values of each, so these are
    computed on the
    unique combinations (``U`` and ``V`` of them) and gathered per point -- the costly
    integer divisions then run on (L, C, U) and (L, C, V) arrays, not (L, C, P).
    """

    def __init__(self, layers, choices, hardware, precision, xp, fill_drain):
        self.xp = xp
        self.shapes = gemm_shapes(layers, choices, xp)
        pts_u, self.inv_u = _unique(hardware, _BUFFER_KEY)
        limits = {k: xp.asarray(np.asarray(v, dtype=np.float64).reshape(1, 1, -1))
                  for k, v in overlay_buffer_words(_Attrs(pts_u.arrays), precision).items()}
        compute, fill, transform, self.fits = datapath_cycles(
            layers, choices, pts_u, xp, fill_drain=fill_drain, limits=limits)
        self.compute = compute
        self.fill = fill if fill is not None else 0.0 * compute
        self.transform = transform
        self.on_chip = compute
        self.a_reads, self.b_reads, self.o_moves = access_counts(self.shapes, choices, pts_u,
                                                                 xp)
        sparse = np.flatnonzero(choices.algo == list(Algorithm).index(Algorithm.SPARSE_FFT))
        if sparse.size:
            # the sparse lanes: per kept complex MAC one input-spectrum read, one kernel
            # read and one accumulator update (the array reads nothing)
            per_mac = self.shapes.macs / 3.0
            reads = []
            for arr in (self.a_reads, self.b_reads, self.o_moves):
                arr = np.array(np.broadcast_to(arr, np.broadcast_shapes(
                    np.shape(arr), np.shape(per_mac))))
                arr[:, sparse] = np.broadcast_to(per_mac[:, sparse], arr[:, sparse].shape)
                reads.append(arr)
            self.a_reads, self.b_reads, self.o_moves = reads
        pts_v, self.inv_v = _unique(hardware, ("act_buffer_kib", "weight_buffer_kib",
                                               "out_buffer_kib", "acc_width"))
        kib = {n: pts_v.arrays[n].astype(np.float64) for n in
               ("act_buffer_kib", "weight_buffer_kib", "out_buffer_kib")}
        f = ENERGY_PJ["fpga_factor"]
        # energy that depends on the V key only (accumulator width is part of it): DRAM and
        # buffer fills, the transform units' adds, FFT butterflies, requantisation
        adds, fixed_pj, outputs = transform_ops(layers, choices, self.shapes, precision, xp)
        acc = pts_v.arrays["acc_width"].astype(np.float64)
        fixed = (fixed_pj + adds * xp.asarray(f * add_pj(acc))
                 + outputs * xp.asarray(f * (mult_pj(acc, 16) + add_pj(acc))))
        #: one tiling per (activation, weight) buffer fraction: (traffic, V energy)
        self.tilings = []
        for ca in (np.inf, *TILE_KIB):
            for cw in (np.inf, *TILE_KIB):
                part = _Points({**pts_v.arrays,
                                "act_buffer_kib": np.minimum(kib["act_buffer_kib"], ca),
                                "weight_buffer_kib": np.minimum(kib["weight_buffer_kib"], cw)})
                t = sparse_tile_traffic(tile_traffic(layers, choices, part, precision, xp),
                                        layers, choices, part, precision)
                # accesses cost what the physical buffer's size makes them cost
                e_fill = (t.act_bytes * xp.asarray(f * sram_pj_per_byte(kib["act_buffer_kib"]))
                          + t.weight_bytes
                          * xp.asarray(f * sram_pj_per_byte(kib["weight_buffer_kib"]))
                          + t.out_bytes * xp.asarray(f * sram_pj_per_byte(kib["out_buffer_kib"])))
                self.tilings.append((t, t.dram_bytes * DRAM_PJ_PER_BYTE + e_fill + fixed))
        self.legal = xp.asarray(legal_mask(layers, choices)[:, :, None])
        self.hmask = hardware_mask(choices, hardware, precision)
        self.energies = point_energies(hardware)
        self.bus_bytes = hardware.bus_bits.astype(np.float64) / 8.0
        board_bpc = hardware.dram_gbps * 1e3 / hardware.clock_mhz
        if hasattr(board_bpc, "requires_grad"):     # a torch scalar: keep it differentiable
            self.bpc, self.bpc_grad = None, board_bpc
        else:
            self.bpc, self.bpc_grad = np.minimum(self.bus_bytes, board_bpc), None
        self.static_per_cycle = hardware.static_power_w * 1e6 / hardware.clock_mhz

    def combine(self, idx, out=None):
        """The :class:`CostArrays` members for the consecutive points ``idx``, as a dict, or
        written into the ``(L, C, P)`` numpy arrays of ``out``."""
        xp = self.xp
        gu, gv = self.inv_u[idx], self.inv_v[idx]

        def u(a):
            return take_last(xp, a, gu)

        def v(a):
            return take_last(xp, a, gv)

        def p(a):
            return xp.asarray(np.asarray(a)[idx].reshape(1, 1, -1))

        if self.bpc_grad is not None:           # keep the board bandwidth differentiable
            bpc = xp.minimum(p(self.bus_bytes), self.bpc_grad)
        else:
            bpc = p(self.bpc)
        compute = u(self.compute)
        on_chip = u(self.on_chip)
        best = None
        for i, (t, v_energy) in enumerate(self.tilings):
            dram = v(t.dram_bytes)
            memory = dram / bpc
            exposed = v(t.first_load_bytes + t.last_store_bytes) / bpc
            cycles = exposed + xp.maximum(on_chip, memory - exposed)
            feasible = v(t.feasible)
            key = xp.where(feasible, cycles, float("inf"))
            option = dict(key=key, cycles=cycles, dram=dram, memory=memory, feasible=feasible,
                          buffer=v(t.buffer_bytes), v_energy=v(v_energy),
                          tiling=xp.where(feasible, float(i), float(i)))  # i, shaped as key
            if best is None:
                best = option
            else:                               # strictly fewer cycles: ties keep larger tiles
                better = key < best["key"]
                best = {k: xp.where(better, option[k], best[k]) for k in best}
        cycles = best["cycles"]
        e = self.energies
        energy = (self.shapes.macs * p(e["mac"]) + u(self.a_reads) * p(e["a_elem"])
                  + u(self.b_reads) * p(e["b_elem"]) + u(self.o_moves) * p(e["o_elem"])
                  + best["v_energy"] + cycles * self.static_per_cycle)
        hmask = xp.asarray(self.hmask[None, :, idx])
        valid = xp.logical_and(xp.logical_and(self.legal, hmask), best["feasible"])
        valid = xp.logical_and(valid, u(self.fits))
        self.last_tiling = best["tiling"]
        fields = dict(compute_cycles=compute, fill_drain_cycles=u(self.fill),
                      transform_cycles=u(self.transform), memory_cycles=best["memory"],
                      cycles=cycles, dram_bytes=best["dram"], buffer_bytes=best["buffer"],
                      energy_pj=energy)
        if out is None:
            res = {k: xp.where(valid, x, float("inf")) for k, x in fields.items()}
            res["valid"] = valid
            return res
        # numpy, writing into slices of preallocated outputs: adding 0 or inf masks in one
        # pass (every cost is finite or +inf, never NaN, so x + inf is inf)
        penalty = np.where(valid, 0.0, np.inf)
        sl = (slice(None), slice(None), slice(idx[0], idx[-1] + 1))
        for k, x in fields.items():
            np.add(x, penalty, out=out[k][sl])
        out["valid"][sl] = valid
        return out


def evaluate(layers: LayerTable, choices: ChoiceTable, hardware: HardwareTable, xp=np, *,
             precision: int = 8, fill_drain: bool = True, chunk_points: int | None = None
             ) -> CostArrays:
    """Costs of every layer under every choice on every hardware point, shape ``(L, C, P)``.

    Parameters
    ----------
    layers, choices, hardware:
        The three axes (:class:`LayerTable`, :class:`ChoiceTable`, :class:`HardwareTable`).
    xp:
        Array namespace: ``numpy`` (default) or a :class:`dse.cost.backend.TorchNamespace`.
    precision:
        Bits of stored weights and activations, 8 or 16.
    fill_drain:
        Also compute ``fill_drain_cycles`` (zeros otherwise; saves one GEMM-formula pass).
    chunk_points:
        Hardware points per chunk (default: enough for about 64 k elements per array).
    """
    if not isinstance(layers, LayerTable):
        raise TypeError(f"layers must be a LayerTable, not {type(layers).__name__}")
    if not isinstance(choices, ChoiceTable):
        raise TypeError(f"choices must be a ChoiceTable, not {type(choices).__name__}")
    if not isinstance(hardware, HardwareTable):
        raise TypeError(f"hardware must be a HardwareTable, not {type(hardware).__name__}")
    n_l, n_c, n_p = len(layers), len(choices), len(hardware)
    prep = _Prepared(layers, choices, hardware, precision, xp, fill_drain)
    if chunk_points is None:
        chunk_points = max(1, _CHUNK_ELEMS // max(1, n_l * n_c))
    if xp is not np or chunk_points >= n_p:
        return CostArrays(**prep.combine(np.arange(n_p)))
    parts = {name: np.empty((n_l, n_c, n_p)) for name in COST_FIELDS}
    parts["valid"] = np.empty((n_l, n_c, n_p), dtype=bool)
    for start in range(0, n_p, chunk_points):
        prep.combine(np.arange(start, min(n_p, start + chunk_points)), out=parts)
    return CostArrays(**parts)


def evaluate_one(layer: Layer, choice: Choice, hw: OverlayParams, *, clock_mhz: float = 200.0,
                 dram_gbps: float = 19.2, static_power_w: float = 0.0, family: str = "xcup",
                 precision: int = 8) -> CostReport:
    """Costs of one layer under one choice on one overlay (the same formulas as
    :func:`evaluate`, on 1×1×1 tables)."""
    layers = LayerTable.from_layers([layer])
    if len(layers) != 1:
        raise ValueError(f"layer must be a conv or fc layer, not {layer.op!r}")
    choices = ChoiceTable([choice])
    table = HardwareTable.from_params([hw], clock_mhz=clock_mhz, dram_gbps=dram_gbps,
                                      static_power_w=static_power_w, family=family)
    prep = _Prepared(layers, choices, table, precision, np, True)
    out = prep.combine(np.arange(1))
    shapes = prep.shapes
    traffic = prep.tilings[int(np.asarray(prep.last_tiling).reshape(-1)[0])][0]

    def scalar(x):
        return float(np.asarray(x).reshape(-1)[0])

    return CostReport(
        valid=bool(np.asarray(out["valid"]).reshape(-1)[0]),
        **{name: scalar(out[name]) for name in COST_FIELDS},
        act_bytes=scalar(traffic.act_bytes), weight_bytes=scalar(traffic.weight_bytes),
        out_bytes=scalar(traffic.out_bytes),
        gemm=tuple(int(scalar(x)) for x in (shapes.m, shapes.k, shapes.n, shapes.count)),
        tile=tuple(int(scalar(x)) for x in (traffic.hb, traffic.wb, traffic.nb)),
        tiles=int(scalar(traffic.n_tiles)), blocks=int(scalar(traffic.n_blocks)))


@dataclass(frozen=True, eq=False)
class AuxCost:
    """Costs of the non-MAC layers, each member ``(A, P)``: cycles, DRAM bytes, energy (pJ)."""

    cycles: object
    dram_bytes: object
    energy_pj: object


def evaluate_aux(aux: AuxTable, hardware: HardwareTable, xp=np, *, precision: int = 8,
                 fuse: bool = True) -> AuxCost:
    """Costs of pooling, global pooling and add layers on every hardware point.

    An unfused layer is one pass of the overlay top's pool engine: read its inputs from DRAM,
    take one window tap a cycle on each group of the engine's lanes
    (``rtl.pool_layout.pool_lanes``: g = gcd(rows, cols)), write its output.  Its cycles
    are the larger of the engine's taps and the DRAM time; the taps are
    ``dse.cost.transforms.pool_taps`` over the whole map: output pixels × ⌈channels / g⌉ ×
    the window (1 for an add, whose inputs are read side by side), without the per-tile
    latency.  With ``fuse``, a ``fusable`` layer (a pool right behind a conv that feeds
    nothing else) runs in that conv's back end and costs nothing extra.
    """
    from rtl.pool_layout import pool_lanes

    ab = precision / 8.0
    lanes = xp.asarray(np.asarray(pool_lanes(hardware), dtype=np.float64)[None, :])
    ins = xp.asarray(aux.in_elems.astype(np.float64)[:, None])
    outs = xp.asarray(aux.out_elems.astype(np.float64)[:, None])
    win = xp.asarray(aux.window.astype(np.float64)[:, None])
    chans = xp.asarray(aux.channels.astype(np.float64)[:, None])
    taps_per_px = xp.asarray(np.where(np.asarray(aux.ops) == "add", 1.0,
                                      aux.window.astype(np.float64))[:, None])
    fused = xp.asarray((aux.fusable & fuse)[:, None])
    bpc = xp.asarray(np.asarray(hardware.dram_bytes_per_cycle()).reshape(1, -1))
    taps = (outs / chans) * -(-chans // lanes) * taps_per_px
    dram = (ins + outs) * ab + 0.0 * lanes
    cycles = xp.maximum(taps, dram / bpc)
    energy = (dram * DRAM_PJ_PER_BYTE + outs * win * ENERGY_PJ["fpga_factor"] * add_pj(32)
              + static_energy_pj(cycles, hardware))
    return AuxCost(cycles=xp.where(fused, 0.0, cycles), dram_bytes=xp.where(fused, 0.0, dram),
                   energy_pj=xp.where(fused, 0.0, energy))
