"""Hardware search with the optimal per-layer mapping solved at every hardware point.

:func:`prepare` builds a :class:`Problem` (everything but the hardware points); an optimiser
chooses which points to map through it: ``nlp`` (default, :mod:`dse.optimize`: seeds, a
relaxation, local search over a space too large to enumerate) or ``grid`` (below).  Steps 2-5
are the same for both.  The grid's pipeline, each stage on whole arrays (STYLE.md 19):

1. **enumerate** the OverlayParams grid for the board (:func:`hardware_space`): array rows ×
   cols, which algorithm units exist and their sizes (Winograd m, FFT size; only for allowed
   algorithms), activation / weight / output buffer KiB and the AXI bus width; operand widths
   follow from the units present (``dse.cost.choices.required_widths``), the accumulator from
   them and the network's longest reduction.  Hardware pins fix fields.
2. **filter** by the resource model against the board (DSP, LUT, FF, BRAM with URAM); an empty
   result is an :class:`~dse.errors.InputError`: the board cannot hold the smallest overlay,
   or the pins contradict the board.
3. **evaluate** the cost model once for (layers × choices × points) (``dse.cost.model``).
4. **map**: build the PBQP of :mod:`dse.mapping` on the network's mapping graph (activations
   folded into their producers; layers without MACs keep one spatial layout) with one node
   choice per *layout class* (spatial, Winograd F(2), Winograd F(4)): the class's cost is the
   best (algorithm variant, dataflow, tiling) of that class, since only the layout crosses an
   edge; edges cost :mod:`dse.layout`'s layout changes.  Solved exactly for every point at once.
5. **reduce** to the best point for the objective (``latency``: cycles; ``energy``: pJ; ``edp``:
   energy × delay) and to the Pareto front of latency against power.

Pins: ``algorithms`` / ``dataflows`` are allowed sets; a layer that no allowed algorithm can
run (at a point) falls back to im2col (with the allowed dataflows).  ``layer_pins`` are hard:
a pinned algorithm that cannot run that layer is an InputError naming it.

EDP is not a sum over layers, so it is not a PBQP objective: for ``edp`` each point's mapping
is the best EDP among the exact optima of ``cycles + λ·energy`` for a few λ (the convex hull
of the (delay, energy) mappings), and the design says ``optimal: false`` for the mapping.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from rtl.params import OverlayParams, winograd_lanes_ok

from .cost.sqnr import DEFAULT_MIN_SQNR_DB, fft_sqnr_db, layer_sqnr_db, sqnr_mask
from .errors import InputError, did_you_mean
from .layout import dram_bytes_per_cycle, in_layout, layout_change_bytes, out_layout
from .mapping import MappingProblem, solve

__all__ = ["FOLDED_OPS", "LayerGraph", "layer_graph", "SearchSpace", "hardware_space",
           "pareto_front", "board_shares", "search", "OBJECTIVES", "OPTIMIZERS", "NEAR_TIE",
           "Problem", "Found", "complete_points", "prepare", "operand_widths"]

#: Relative tolerance within which two hardware points count as equally good for the
#: objective; the cheaper one (smaller share of the board's resources) is chosen.
NEAR_TIE = 0.005

#: Objectives the search can minimise.
OBJECTIVES = ("latency", "energy", "edp")

#: Hardware optimisers: ``nlp`` (the larger space, :mod:`dse.optimize`) and ``grid``.
OPTIMIZERS = ("nlp", "grid")

#: Operations folded into their producer: the overlay applies them in the drain of the layer
#: before (the back end requantises, applies ReLU and pools on the way out), so they store no tensor and keep its layout.
FOLDED_OPS = ("relu", "relu6", "sigmoid", "identity", "flatten")

#: Layout classes of a MAC layer's choices: name -> Winograd m (0: the plain spatial layout).
LAYOUT_CLASSES = {"spatial": 0, "wino2": 2, "wino4": 4}


@dataclass(frozen=True)
class LayerGraph:
    """Nodes and edges of a network's mapping graph.

    Members
    -------
    layers: the node layers, in the network's topological order.
    edges: ``(producer, consumer)`` node-index pairs, one per tensor read (repeats kept).
    node_of: every layer name -> index of its node (folded layers map to their producer's).
    """

    layers: tuple
    edges: tuple
    node_of: dict


def layer_graph(network) -> LayerGraph:
    """Return the mapping graph of ``network`` (activations folded into their producers)."""
    layers, edges, node_of = [], [], {}
    for layer in network.layers:
        if layer.op in FOLDED_OPS and len(layer.inputs) == 1:
            node_of[layer.name] = node_of[layer.inputs[0]]
            continue
        node_of[layer.name] = len(layers)
        edges += [(node_of[src], len(layers)) for src in layer.inputs]
        layers.append(layer)
    return LayerGraph(tuple(layers), tuple(edges), node_of)


@dataclass(frozen=True)
class SearchSpace:
    """Value lists of the searched OverlayParams fields (the grid before filtering).

    ``rows`` and ``cols`` are crossed; ``buffer_kib`` is crossed for the activation and weight
    buffers; the output buffer takes ``out_buffer_kib``.  Unit sizes are offered only for
    allowed algorithms.  With ``sparse_fft`` allowed, every point with an FFT unit is offered
    without a sparse MAC unit and with each (``sparse_lanes``, ``sparse_banks``) pair (at
    most 64 lanes and banks: ``rtl.params.SparseParams``).
    """

    rows: tuple = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128)
    cols: tuple = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128)
    winograd_m: tuple = (0, 2, 4)
    winograd_lanes: tuple = (1, 2, 4, 8, 16)
    fft_size: tuple = (0, 8, 16)
    sparse_lanes: tuple = (16, 32, 64)
    sparse_banks: tuple = (16, 40)
    buffer_kib: tuple = (8, 32, 128, 512)
    out_buffer_kib: tuple = (16, 64, 256, 1024)
    bus_bits: tuple = (64, 128, 512)


def _acc_width(a_width, b_width, max_k: int, precision: int):
    # The accumulator must hold a full reduction of the longest K without wrapping
    # (exact sums need a + b + ceil(log2 K) bits), at least the default 32 / 48.
    grow = int(np.ceil(np.log2(max(2, max_k))))
    base = 32 if precision == 8 else 48
    return np.minimum(64, np.maximum(base, a_width + b_width + grow))


def hardware_space(board, precision: int, algorithms, max_k: int, pins=None,
                   space: SearchSpace | None = None):
    """Return the :class:`dse.cost.hardware.HardwareTable` of the grid with ``pins`` applied.

    Operand widths are the widest that the units present need; the accumulator follows
    (:func:`_acc_width`).  Pinned fields replace their axis (a pinned width is kept as is).
    """
    space = space or SearchSpace()
    pins = dict(pins or {})
    algos = set(algorithms)
    axes = {
        "rows": space.rows, "cols": space.cols,
        "winograd_m": space.winograd_m if "winograd" in algos else (0,),
        "winograd_lanes": space.winograd_lanes if "winograd" in algos else (1,),
        "fft_size": space.fft_size if algos & {"fft", "sparse_fft"} else (0,),
        "sparse_lanes": (0, *space.sparse_lanes) if "sparse_fft" in algos else (0,),
        "sparse_banks": (0, *space.sparse_banks) if "sparse_fft" in algos else (0,),
        "act_buffer_kib": space.buffer_kib, "weight_buffer_kib": space.buffer_kib,
        "out_buffer_kib": space.out_buffer_kib, "bus_bits": space.bus_bits,
    }
    for name, value in pins.items():
        if name in axes:
            axes[name] = (value,)
    grids = np.meshgrid(*[np.asarray(v, dtype=np.int64) for v in axes.values()], indexing="ij")
    arrays = {name: g.reshape(-1) for name, g in zip(axes, grids)}
    # a sparse MAC unit has lanes and banks, and only beside an FFT unit (it uses its
    # transforms); pinned sizes are kept as pinned (OverlayParams checks them)
    keep = np.ones(len(arrays["rows"]), dtype=bool)
    if not {"sparse_lanes", "sparse_banks"} & set(pins):
        keep = (arrays["sparse_lanes"] == 0) == (arrays["sparse_banks"] == 0)
        keep &= (arrays["sparse_lanes"] == 0) | (arrays["fft_size"] > 0)
    arrays = {name: v[keep] for name, v in arrays.items()}
    return complete_points(arrays, board, precision, max_k, pins)


def operand_widths(winograd_m, fft_size, max_k: int, precision: int):
    """``(a_width, b_width, acc_width)`` of overlays with these units (int arrays or ints):
    the widest operands of im2col and the units present need, the accumulator
    :func:`_acc_width` for the longest reduction ``max_k``."""
    from .cost.choices import VARIANTS, required_widths

    winograd_m, fft_size = np.asarray(winograd_m), np.asarray(fft_size)
    base_a, base_b = required_widths("im2col", precision)
    a = np.full(np.shape(winograd_m), base_a, dtype=np.int64)
    b = np.full(np.shape(winograd_m), base_b, dtype=np.int64)
    for variant, (_, m, n) in VARIANTS.items():
        va, vb = required_widths(variant, precision)
        has = ((winograd_m == m) & (m > 0)) | ((fft_size == n) & (n > 0))
        a = np.where(has, np.maximum(a, va), a)
        b = np.where(has, np.maximum(b, vb), b)
    return a, b, _acc_width(a, b, max_k, precision)


def complete_points(arrays: dict, board, precision: int, max_k: int, pins=None,
                    sparse: bool = False):
    """Return the :class:`dse.cost.hardware.HardwareTable` of the searched fields in ``arrays``
    (``{field: (P,) ints}``), the rest derived or pinned.

    Winograd output-transform lanes that do not fit their unit and array are dropped (all are
    kept when none fits, so that HardwareTable's check names the pin); operand widths are the
    widest that the units present need, the accumulator follows (:func:`_acc_width`); pinned
    fields replace theirs (a pinned width is kept as is); the other fields take
    OverlayParams' defaults.  ``sparse`` (``sparse_fft`` allowed) and no ``sparse_lanes`` in
    ``arrays`` (the nlp optimiser does not search them): each point with an FFT unit gets the
    sparse MAC unit :func:`derived_sparse_unit` sizes for it.
    """
    from .cost.hardware import PARAM_FIELDS, HardwareTable

    pins = dict(pins or {})
    arrays = {name: np.asarray(v, dtype=np.int64).reshape(-1) for name, v in arrays.items()}
    for name, value in pins.items():
        if name in arrays:
            arrays[name] = np.full_like(arrays[name], value)
    keep = winograd_lanes_ok(arrays["cols"], arrays["winograd_m"], arrays["winograd_lanes"])
    if keep.any():
        arrays = {name: v[keep] for name, v in arrays.items()}
    a, b, _ = operand_widths(arrays["winograd_m"], arrays["fft_size"], max_k, precision)
    arrays["a_width"] = np.full_like(a, pins["a_width"]) if "a_width" in pins else a
    arrays["b_width"] = np.full_like(b, pins["b_width"]) if "b_width" in pins else b
    acc = _acc_width(arrays["a_width"], arrays["b_width"], max_k, precision)
    arrays["acc_width"] = np.full_like(a, pins["acc_width"]) if "acc_width" in pins else acc
    defaults = OverlayParams()
    if (sparse and "sparse_lanes" not in arrays
            and not {"sparse_lanes", "sparse_banks"} & set(pins)):
        arrays["sparse_lanes"], arrays["sparse_banks"] = derived_sparse_unit(arrays, board)
    for name in PARAM_FIELDS:
        if name not in arrays:
            arrays[name] = np.full_like(a, pins.get(name, getattr(defaults, name)))
    return HardwareTable(**{k: arrays[k].astype(np.int64) for k in PARAM_FIELDS},
                         clock_mhz=float(board.clock_mhz), dram_gbps=float(board.dram_gbps),
                         static_power_w=float(board.static_power_w), family=board.family,
                         requant=pins.get("requant", "shift"))


def derived_sparse_unit(arrays: dict, board):
    """``(sparse_lanes, sparse_banks)`` for points the optimiser gives without them: beside an
    FFT unit, the most lanes of :attr:`SearchSpace.sparse_lanes` whose 3 DSPs a lane fit the
    DSPs the rest of the point leaves on ``board``, with min(lanes, bins) banks (with more
    banks than bins, banks stay empty); none without an FFT unit or room."""
    from .cost.hardware import PARAM_FIELDS, HardwareTable
    from .cost.resources import estimate_resources
    from .lowering.sparse_fft import DSP_PER_LANE

    defaults = OverlayParams()
    n = np.asarray(arrays["fft_size"], dtype=np.int64)
    base = {name: np.asarray(arrays[name], dtype=np.int64) if name in arrays
            else np.full(n.shape, getattr(defaults, name), dtype=np.int64)
            for name in PARAM_FIELDS}
    base["sparse_lanes"] = np.zeros_like(n)
    base["sparse_banks"] = np.zeros_like(n)
    left = board.dsp - estimate_resources(HardwareTable(**base, family=board.family)).dsp
    lanes = np.zeros_like(n)
    for option in sorted(SearchSpace.sparse_lanes):
        lanes = np.where(DSP_PER_LANE * option <= left, option, lanes)
    lanes = np.where(n > 0, lanes, 0)
    bins = n * (n // 2 + 1)
    banks = np.where(lanes > 0, np.minimum(lanes, np.maximum(bins, 1)), 0)
    return lanes, banks


def board_shares(usage, board) -> list:
    """The share of the board's DSP, LUT, FF and block RAM each point uses (four arrays)."""
    return [np.asarray(usage[k], dtype=np.float64) / max(1, total) for k, total in
            (("dsp", board.dsp), ("lut", board.lut_budget), ("ff", board.ff),
             ("bram_blocks", board.bram_blocks))]


def pareto_front(latency, power) -> np.ndarray:
    """Return the indices of the points no other point beats in both latency and power.

    Sorted by latency; among equal (latency, power) pairs the first index is kept.
    """
    latency = np.asarray(latency, dtype=float)
    power = np.asarray(power, dtype=float)
    ok = np.flatnonzero(np.isfinite(latency) & np.isfinite(power))
    order = ok[np.lexsort((power[ok], latency[ok]))]
    front, best = [], np.inf
    for i in order:
        if power[i] < best:
            front.append(int(i))
            best = power[i]
    return np.asarray(front, dtype=np.int64)


def _pin_error(source, field, message):
    return InputError(source, field, message)


def _datapath_resources(point, family: str) -> dict:
    """The resource estimate of ``point``'s datapath alone (overlay.v, without the top's
    shell), as design.json's ``resources_datapath``."""
    from .cost.hardware import HardwareTable
    from .cost.resources import estimate_resources

    r = estimate_resources(HardwareTable.from_params([point], family=family), shell=False)
    return {k: int(v) for k, v in r.as_dict(0).items()}


def _pooled_pow2(hardware) -> np.ndarray:
    """Points whose top has a pool engine and whose rows and cols are powers of two
    (:meth:`Problem.fit`)."""
    from .cost.resources import top_has_pool

    rows, cols = np.asarray(hardware.rows), np.asarray(hardware.cols)
    pow2 = ((rows & (rows - 1)) == 0) & ((cols & (cols - 1)) == 0)
    return top_has_pool(hardware) & pow2


def _fit_mask(hardware, board):
    """Return ``(mask, usage)``: points whose resource estimate fits the board, and the usage."""
    from .cost.resources import estimate_resources

    r = estimate_resources(hardware)
    usage = {"dsp": r.dsp, "lut": r.lut, "ff": r.ff, "bram_blocks": r.bram_blocks}
    onchip_blocks = board.onchip_blocks             # UltraRAM holds buffers too
    ok = ((usage["dsp"] <= board.dsp) & (usage["lut"] <= board.lut_budget)
          & (usage["ff"] <= board.ff)
          & (usage["bram_blocks"] <= onchip_blocks))
    return ok, usage


def _smallest_need(usage, board) -> str:
    i = int(np.argmin(usage["dsp"] / board.dsp + usage["bram_blocks"] / max(1, board.bram_blocks)
                      + usage["lut"] / board.lut_budget))
    return (f"{int(usage['dsp'][i])} DSP, {int(usage['lut'][i])} LUT, {int(usage['ff'][i])} FF, "
            f"{int(usage['bram_blocks'][i])} BRAM blocks; the board has {board.dsp} DSP, "
            f"{board.lut_budget} LUT (of {board.lut} sites), {board.ff} FF, "
            f"{board.bram_blocks} BRAM blocks")


class _Progress:
    """A rich progress bar shown only once the search has run for a second."""

    def __init__(self, enabled: bool, total: int):
        self.enabled = enabled
        self.total = total
        self.start = time.perf_counter()
        self.bar = None
        self.done = 0

    def advance(self, n: int, what: str) -> None:
        self.done += n
        if not self.enabled:
            return
        if self.bar is None and time.perf_counter() - self.start > 1.0:
            from rich.progress import Progress

            self.bar = Progress(transient=True)
            self.bar.start()
            self.task = self.bar.add_task(what, total=self.total, completed=self.done)
        elif self.bar is not None:
            self.bar.update(self.task, completed=self.done, description=what)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def search(network, board, *, config: str = "", precision: int = 8,
           objective: str = "latency", algorithms=("im2col", "kn2row", "winograd", "fft"),
           dataflows=("ws", "os", "is"), hardware_pins=None, layer_pins=None,
           space: SearchSpace | None = None, source: str = "config", progress: bool = False,
           chunk_points: int = 1024, exhaustive: bool = False, top_groups: int = 8,
           min_sqnr_db: float = DEFAULT_MIN_SQNR_DB, optimizer: str = "nlp",
           optimizer_options=None, density=None):
    """Return the best :class:`dse.design.Design` of ``network`` on ``board``.

    Parameters
    ----------
    network, board:
        A :class:`dse.network.Network` and a :class:`dse.board.Board`.
    config:
        Label written to design.json.
    precision:
        8 or 16 bits of weights and activations.
    objective:
        ``"latency"``, ``"energy"`` or ``"edp"``.
    algorithms, dataflows:
        Allowed sets (names).
    hardware_pins:
        ``{OverlayParams field: value}`` fixed in the search.
    layer_pins:
        ``{layer name: {"algorithm": name, "dataflow": name}}`` (either key may be absent).
    space:
        The grid to search (default :class:`SearchSpace`).
    source:
        The config file, for error messages.
    progress:
        Show a progress bar when the search takes longer than a second.
    chunk_points:
        Hardware points evaluated per cost-model call (bounds memory).
    exhaustive:
        Map every fitting point.  By default the search runs in two stages: every
        (rows, cols, winograd_m, winograd_lanes, fft_size) group at its largest fitting
        activation and weight buffers and bus for each output-buffer size, then
        the full buffer x bus grid of the ``top_groups`` best groups.
    top_groups:
        Groups refined in the second stage.
    min_sqnr_db:
        Accuracy floor: an approximate (FFT) choice is offered on a layer only where its
        predicted SQNR reaches it (:mod:`dse.cost.sqnr`).
    optimizer:
        ``"grid"`` (the :class:`SearchSpace` grid; ``space``, ``exhaustive`` and
        ``top_groups`` apply) or ``"nlp"`` (:func:`dse.optimize.nlp_search` over the larger
        space; ``optimizer_options`` are its keyword arguments).
    density:
        Spectral kernel density of the ``sparse_fft`` choices: one number for every layer,
        or ``{layer name: D}`` (``"*"``: the others; default
        :data:`dse.cost.workload.DEFAULT_DENSITY`), each in (0, 1].  Only sparse choices
        read it.

    Raises
    ------
    InputError
        Bad objective or pins, a board that cannot hold the smallest overlay, or a pinned
        algorithm that cannot run its layer.
    """
    start = time.perf_counter()
    if optimizer not in OPTIMIZERS:
        raise InputError(source, "optimizer", f"must be one of {', '.join(OPTIMIZERS)}, "
                                              f"not {optimizer!r}")
    problem = prepare(network, board, source=source, precision=precision,
                      objective=objective, algorithms=algorithms, dataflows=dataflows,
                      hardware_pins=hardware_pins, layer_pins=layer_pins,
                      chunk_points=chunk_points, min_sqnr_db=min_sqnr_db, density=density)
    if optimizer == "grid":
        found = _grid_search(problem, space, progress, exhaustive, top_groups)
    else:
        from .optimize import nlp_search

        found = nlp_search(problem, progress=progress, **dict(optimizer_options or {}))
    return problem.design(found, config=config, start=start, optimizer=optimizer, space=space)


def prepare(network, board, *, source: str = "config", precision: int = 8,
            objective: str = "latency", algorithms=("im2col", "kn2row", "winograd", "fft"),
            dataflows=("ws", "os", "is"), hardware_pins=None, layer_pins=None,
            chunk_points: int = 1024, min_sqnr_db: float = DEFAULT_MIN_SQNR_DB,
            density=None) -> "Problem":
    """Return the :class:`Problem` of ``network`` on ``board``: validated objective and
    pins, the choice axis with its legality, accuracy and pin masks (the arguments as for
    :func:`search`).  Raises :class:`InputError` as :func:`search` does."""
    from .cost.choices import enumerate_choices, legal_mask
    from .cost.workload import AuxTable, LayerTable

    if objective not in OBJECTIVES:
        raise InputError(source, "objective", f"must be one of {', '.join(OBJECTIVES)}, "
                                              f"not {objective!r}")
    hardware_pins = dict(hardware_pins or {})
    layer_pins = dict(layer_pins or {})
    graph = layer_graph(network)
    mac_nodes = [i for i, layer in enumerate(graph.layers) if layer.op in ("conv", "fc")]
    by_name = {layer.name: layer for layer in network.layers}
    layers = LayerTable.from_layers([graph.layers[i] for i in mac_nodes],
                                    inputs={x.name for x in graph.layers if x.op == "input"},
                                    density=_densities(density, by_name, network, source))
    aux = AuxTable.from_network(network)
    for name, pin in layer_pins.items():
        if name not in by_name or by_name[name].op not in ("conv", "fc"):
            macs = [n for n, layer in by_name.items() if layer.op in ("conv", "fc")]
            raise InputError(source, f"layers.{name}",
                             f"must name a conv or fc layer of {network.name}, not {name!r}"
                             f"{did_you_mean(name, macs)}")

    # entries that pin nothing (a layer's density alone) are no pins
    layer_pins = {name: pin for name, pin in layer_pins.items() if pin}

    # -- the choice axis: allowed algorithms, plus im2col for the fallback --------------------
    pinned_algos = {p["algorithm"] for p in layer_pins.values() if "algorithm" in p}
    offered = list(dict.fromkeys(list(algorithms) + ["im2col"] + sorted(pinned_algos)))
    flows = list(dict.fromkeys(list(dataflows)
                               + [p["dataflow"] for p in layer_pins.values() if "dataflow" in p]))
    choices = enumerate_choices(offered, flows)
    algo_of = np.array([c.algorithm.value for c in choices.choices])
    flow_of = np.array([c.dataflow.value for c in choices.choices])
    allowed = np.isin(algo_of, list(algorithms)) & np.isin(flow_of, list(dataflows))
    fallback = (algo_of == "im2col") & np.isin(flow_of, list(dataflows))
    legal = legal_mask(layers, choices)                                   # (L, C)
    accurate = sqnr_mask(layers, choices, precision, min_sqnr_db)         # (L, C)
    pin_mask = np.ones_like(legal)
    for li, name in enumerate(layers.names):
        pin = layer_pins.get(name)
        if not pin:
            continue
        keep = np.ones(len(choices), dtype=bool)
        if "algorithm" in pin:
            keep &= algo_of == pin["algorithm"]
        if "dataflow" in pin:
            keep &= flow_of == pin["dataflow"]
        if not (legal[li] & keep).any():
            what = "/".join(pin[k] for k in ("algorithm", "dataflow") if k in pin)
            layer = by_name[name]
            raise InputError(source, f"layers.{name}",
                             f"{what} cannot run this layer ({layer.op} "
                             f"{layer.kernel[0]}x{layer.kernel[1]}, stride "
                             f"{layer.stride[0]}, groups {layer.groups})")
        if not (legal[li] & accurate[li] & keep).any():
            k = int(layers.kh[li])
            best = max(float(fft_sqnr_db(precision, choices.fft_n[c], k))
                       for c in np.flatnonzero(legal[li] & keep))
            raise InputError(source, f"layers.{name}",
                             f"{pin['algorithm']} reaches about {best:.1f} dB SQNR on this "
                             f"{k}x{k} layer at int{precision}, below min_sqnr_db "
                             f"{min_sqnr_db:g}; lower min_sqnr_db or pin an exact algorithm")
        pin_mask[li] = keep
    legal = legal & accurate

    max_k = int(max([1] + [int(k) for k in (layers.c_in // layers.groups * layers.kh
                                            * layers.kw)]))
    return Problem(
        network=network, board=board, source=source, precision=precision,
        objective=objective, graph=graph, mac_nodes=mac_nodes, layers=layers, aux=aux,
        choices=choices, legal=legal, allowed=allowed, fallback=fallback, pin_mask=pin_mask,
        layer_pins=layer_pins, hardware_pins=hardware_pins,
        unit_algos=frozenset(algorithms) | pinned_algos, max_k=max_k,
        chunk_points=chunk_points)


def _densities(density, by_name, network, source):
    """``density`` (a number, or ``{layer name or "*": D}``) checked, as
    :meth:`LayerTable.from_layers` takes it."""
    from .cost.workload import DEFAULT_DENSITY

    def check(field, d):
        if (isinstance(d, bool) or not isinstance(d, (int, float))
                or not np.isfinite(d) or not 0 < d <= 1):
            raise InputError(source, field, f"must be a number in (0, 1], not {d!r}")
        return float(d)

    if density is None or not isinstance(density, dict):
        return check("sparsity.density", DEFAULT_DENSITY if density is None else density)
    out = {}
    default = check("sparsity.density", density.get("*", DEFAULT_DENSITY))
    macs = [n for n, layer in by_name.items() if layer.op in ("conv", "fc")]
    for name in by_name:
        out[name] = default
    for name, d in density.items():
        if name == "*":
            continue
        if name not in by_name or by_name[name].op not in ("conv", "fc"):
            raise InputError(source, f"layers.{name}",
                             f"must name a conv or fc layer of {network.name}, not {name!r}"
                             f"{did_you_mean(name, macs)}")
        out[name] = check(f"layers.{name}.density", d)
    return out


@dataclass
class Problem:
    """One network's search problem on one board, everything but the hardware points:
    the mapping graph, the choice axis with its legality, accuracy and pin masks.

    :meth:`table` completes searched fields into a HardwareTable, :meth:`fit` filters by
    the resource model, :meth:`map` solves the per-layer mapping of any points exactly.
    Both optimisers (the grid here, :mod:`dse.optimize`) call these three.
    """

    network: object
    board: object
    source: str
    precision: int
    objective: str
    graph: LayerGraph
    mac_nodes: list
    layers: object
    aux: object
    choices: object
    legal: np.ndarray
    allowed: np.ndarray
    fallback: np.ndarray
    pin_mask: np.ndarray
    layer_pins: dict
    hardware_pins: dict
    unit_algos: frozenset
    max_k: int
    chunk_points: int = 1024
    #: :meth:`_pooled_only`'s answer, once known.
    pooled_fits: bool | None = None

    @property
    def other(self) -> str:
        """The second objective every point is also mapped for (the front needs both)."""
        return "energy" if self.objective == "latency" else "latency"

    def table(self, arrays: dict):
        """The HardwareTable of the searched fields in ``arrays``, pins applied, widths
        derived (:func:`complete_points`; it drops points whose Winograd lanes do not fit,
        so pass valid ones, :func:`dse.optimize.valid_points`)."""
        return complete_points(arrays, self.board, self.precision, self.max_k,
                               self.hardware_pins, sparse="sparse_fft" in self.unit_algos)

    def fit(self, hardware):
        """``(mask, usage)``: the points of ``hardware`` that fit the board, and every
        point's DSP, LUT, FF and block RAM.

        A network with pools or adds (:class:`dse.cost.workload.AuxTable`) also needs the
        overlay top's pool engine to run them, which an int8 overlay has when ``rows`` and
        ``cols`` are a power of two apart (``rtl.pool_layout.pool_supported``).  Of those,
        only arrays whose ``rows`` and ``cols`` are both powers of two fit: on others (18×72
        for VGG16) the program's channel words waste lanes that the model does not see, and
        it ranked an 18×72 point at 9.6 M cycles that the program runs in 15.7 M.  If no
        such point fits the board (with the pins; judged once on the grid, not per call, so
        that an optimiser's batch of other points is not let through), the others stay
        (design.json then has the model's cycles)."""
        ok, usage = _fit_mask(hardware, self.board)
        if len(self.aux) and self.precision == 8:
            pooled = ok & _pooled_pow2(hardware)
            if self._pooled_only(pooled):
                ok = pooled
        return ok, usage

    def _pooled_only(self, pooled) -> bool:
        """Whether the board holds an overlay with a pool engine and power-of-two sides
        (:meth:`fit`): on the grid with the pins, once; where the pins leave no grid,
        whether ``pooled`` has one."""
        if self.pooled_fits is None:
            try:
                grid = hardware_space(self.board, self.precision, self.unit_algos, self.max_k,
                                      self.hardware_pins)
            except ValueError:
                return bool(pooled.any())
            # the smallest such points first: one of them fits if any does, and the whole
            # grid's resource estimate takes seconds
            grid = grid.take(np.flatnonzero(_pooled_pow2(grid)))
            size = (grid.rows * grid.cols * (1 + grid.winograd_m + grid.fft_size)
                    + grid.act_buffer_kib + grid.weight_buffer_kib + grid.out_buffer_kib
                    + grid.bus_bits)
            order = np.argsort(size, kind="stable")
            self.pooled_fits = any(
                bool(_fit_mask(grid.take(part), self.board)[0].any())
                for part in (order[:64], order[64:]) if len(part))
        return self.pooled_fits

    def map(self, hardware, bar=None):
        """``(result, alt)``: the points of ``hardware`` mapped for the objective and for
        :attr:`other`, from one cost evaluation."""
        bar = bar or _Progress(False, len(hardware))
        return _map_points(self.network, self.graph, self.mac_nodes, self.layers, self.aux,
                           self.choices, hardware, self.precision,
                           (self.objective, self.other), self.legal, self.allowed,
                           self.fallback, self.pin_mask, self.layer_pins, self.chunk_points,
                           bar)

    def design(self, found: "Found", *, config: str = "", start: float | None = None,
               optimizer: str = "grid", space: SearchSpace | None = None):
        """The :class:`dse.design.Design` of the points ``found`` mapped (any optimiser's):
        the best for the objective under the near-tie and unused-unit rules, its plan and
        the fronts.  Raises :class:`InputError` when no point runs every layer, naming the
        layers no buffer holds (judged on the grid's fitting points, whose buffers reach
        the largest sizes, when ``found`` is another optimiser's)."""
        hardware, usage, result, alt = found.hardware, found.usage, found.result, found.alt
        if not np.isfinite(result.key(self.objective)).any():
            field = "layers" if self.layer_pins else ("hardware" if self.hardware_pins else "")
            if optimizer != "grid":
                try:
                    grid = hardware_space(self.board, self.precision, self.unit_algos,
                                          self.max_k, self.hardware_pins, space)
                    fits, _ = self.fit(grid)
                    if fits.any():
                        hardware = grid.take(fits)
                except ValueError:
                    pass
            raise InputError(self.source, field,
                             f"no overlay fitting {self.board.name} can run every layer with "
                             f"these pins"
                             f"{_unrunnable(self.layers, self.choices, hardware, self.precision)}")
        done = np.flatnonzero(result.evaluated)
        return _design(self.network, self.board, config, self.precision, self.objective,
                       self.graph, self.mac_nodes, self.layers, self.aux, self.choices,
                       hardware.take(done), {k: np.asarray(v)[done] for k, v in usage.items()},
                       result.subset(done),
                       time.perf_counter() if start is None else start,
                       pinned=set(self.hardware_pins),
                       alternative=(self.other, alt.subset(done)), optimizer=optimizer,
                       evaluations=found.evaluations)

    def check_pinned_units(self, hardware) -> None:
        """Refuse pinned layers whose algorithm needs a unit no point of ``hardware`` has."""
        from .cost.choices import hardware_mask

        hw_ok = hardware_mask(self.choices, hardware, self.precision)           # (C, P)
        for li, name in enumerate(self.layers.names):
            if name in self.layer_pins and not (self.legal[li] & self.pin_mask[li]
                                                & hw_ok.any(axis=1)).any():
                raise InputError(self.source, f"layers.{name}",
                                 f"{self.layer_pins[name].get('algorithm', 'its pin')} needs "
                                 f"hardware that no overlay fitting {self.board.name} with "
                                 f"these pins has")

    def refuse_unfit(self, usage) -> None:
        """The error for a search in which no point fits the board."""
        if self.hardware_pins:
            raise InputError(self.source, "hardware",
                             f"pins {self.hardware_pins} do not fit board {self.board.name}: "
                             f"the smallest pinned overlay needs "
                             f"{_smallest_need(usage, self.board)}")
        raise InputError(self.board.name, "", "cannot hold the smallest overlay: it needs "
                         + _smallest_need(usage, self.board))


@dataclass
class Found:
    """What an optimiser hands back: the points it mapped (``hardware``, ``usage``), their
    mappings for the objective (``result``) and the other objective (``alt``), and how
    many points it evaluated with the exact model."""

    hardware: object
    usage: dict
    result: "_Mapped"
    alt: "_Mapped"
    evaluations: int


def _grid_search(problem: Problem, space, progress: bool, exhaustive: bool,
                 top_groups: int) -> Found:
    """Today's search: the :class:`SearchSpace` grid, filtered by the board.

    Stage A maps every (array shape, units) group at its largest fitting buffers and bus,
    for each output-buffer size; stage B the whole buffer x bus grid of the ``top_groups``
    best groups (under either objective).  ``exhaustive`` maps every fitting point."""
    try:
        hardware = hardware_space(problem.board, problem.precision, problem.unit_algos,
                                  problem.max_k, problem.hardware_pins, space)
    except ValueError as exc:
        raise InputError(problem.source, "hardware", str(exc)) from None
    fits, usage = problem.fit(hardware)
    if not fits.any():
        problem.refuse_unfit(usage)
    hardware = hardware.take(fits)
    usage = {k: np.asarray(v)[fits] for k, v in usage.items()}
    n_points = len(hardware)
    problem.check_pinned_units(hardware)
    group = np.stack([hardware.rows, hardware.cols, hardware.winograd_m,
                      hardware.winograd_lanes, hardware.fft_size, hardware.sparse_lanes,
                      hardware.sparse_banks], axis=1)
    _, group_id = np.unique(group, axis=0, return_inverse=True)
    group_id = group_id.reshape(-1)
    if exhaustive:
        first = np.arange(n_points)
    else:
        # per group and output-buffer size, the largest fitting activation and weight
        # buffers and bus (the output side decides how large a GEMM's M and N may be; the
        # board's block RAM trades it against the others)
        size = hardware.act_buffer_kib + hardware.weight_buffer_kib + hardware.bus_bits
        _, sub_id = np.unique(np.stack([group_id, hardware.out_buffer_kib], axis=1), axis=0,
                              return_inverse=True)
        sub_id = sub_id.reshape(-1)
        order = np.lexsort((-size, sub_id))
        first = order[np.r_[True, sub_id[order][1:] != sub_id[order][:-1]]]
    # Every mapped point is mapped twice (one cost evaluation): for the objective and for
    # the other of latency and energy, so that the latency-power front (design.json
    # ``pareto``) holds both mappings (a point mapped for least energy may beat points
    # mapped for least latency in both); stage B takes the best groups under either.
    bar = _Progress(progress, n_points if exhaustive else len(first) + top_groups * 64)
    result, alt = _Mapped.empty(n_points), _Mapped.empty(n_points)
    for mapped, part in zip((result, alt), problem.map(hardware.take(first), bar)):
        mapped.merge(first, part)
    evaluations = len(first)
    if not exhaustive:
        best_groups = np.union1d(
            *(group_id[first][np.argsort(r.key(goal)[first], kind="stable")][:top_groups]
              for r, goal in ((result, problem.objective), (alt, problem.other))))
        second = np.setdiff1d(np.flatnonzero(np.isin(group_id, best_groups)), first)
        if second.size:
            for mapped, part in zip((result, alt), problem.map(hardware.take(second), bar)):
                mapped.merge(second, part)
            evaluations += len(second)
    bar.close()
    return Found(hardware, usage, result, alt, evaluations)


def _unrunnable(layers, choices, hardware, precision: int, points: int = 256) -> str:
    """For a search that found no point: the layers no choice runs on any of the first
    ``points`` overlays (their buffers cannot hold one invocation of them), as the end of
    the refusal."""
    from .cost.model import evaluate

    cost = evaluate(layers, choices, hardware.take(np.arange(min(points, len(hardware)))),
                    precision=precision, fill_drain=False)
    stuck = [name for name, ok in zip(layers.names, cost.valid.any(axis=(1, 2))) if not ok]
    if not stuck:
        return " (a tile that fits the buffers, operands wide enough)"
    more = f" and {len(stuck) - 3} more" if len(stuck) > 3 else ""
    return (f": {', '.join(stuck[:3])}{more} fit no algorithm in the buffers (one output "
            f"row's operands and results must fit the GEMM engine's halves; larger "
            f"act_buffer_kib and out_buffer_kib, or a wider accumulator for K, would hold "
            f"them)")


@dataclass
class _Mapped:
    """Per-point outcome of the mapping stage (all arrays have a leading axis of P points)."""

    choice: np.ndarray          # (P, L) choice index of each MAC layer
    cycles: np.ndarray          # (P,) total cycles including layout changes and aux layers
    energy_pj: np.ndarray       # (P,) total energy
    optimal: bool
    method: str
    evaluated: np.ndarray | None = None     # (P,) bool: the point was mapped

    @classmethod
    def empty(cls, n_points: int) -> "_Mapped":
        return cls(np.zeros((n_points, 0), dtype=np.int64), np.full(n_points, np.inf),
                   np.full(n_points, np.inf), True, "", np.zeros(n_points, dtype=bool))

    def merge(self, index, other: "_Mapped") -> None:
        if self.choice.shape[1] != other.choice.shape[1]:
            self.choice = np.zeros((len(self.cycles), other.choice.shape[1]), dtype=np.int64)
        self.choice[index] = other.choice
        self.cycles[index] = other.cycles
        self.energy_pj[index] = other.energy_pj
        self.evaluated[index] = True
        self.optimal = self.optimal and other.optimal
        self.method = other.method

    def key(self, objective: str) -> np.ndarray:
        return {"latency": self.cycles, "energy": self.energy_pj,
                "edp": self.cycles * self.energy_pj}[objective]

    def subset(self, index) -> "_Mapped":
        return _Mapped(self.choice[index], self.cycles[index], self.energy_pj[index],
                       self.optimal, self.method, self.evaluated[index])


def _aux_costs(aux, hardware, precision: int):
    """Return ``(cycles, dram_bytes, energy_pj)`` of the non-MAC layers, each ``(A, P)``:
    each a pass of its own, as the overlay top's pool engine runs it (no pool is fused into
    its conv's back end on the top, so none is costed as free)."""
    from .cost.model import evaluate_aux

    cost = evaluate_aux(aux, hardware, precision=precision, fuse=False)
    shape = (len(aux), len(hardware))
    return tuple(np.broadcast_to(np.asarray(a, dtype=float), shape)
                 for a in (cost.cycles, cost.dram_bytes, cost.energy_pj))


def _energy_pj_per_dram_byte() -> float:
    from .cost.energy import dram_pj_per_byte

    return float(dram_pj_per_byte())


def _map_points(network, graph, mac_nodes, layers, aux, choices, hardware, precision,
                objectives, legal, allowed, fallback, pin_mask, layer_pins, chunk_points, bar):
    """Map every point of ``hardware`` for each of ``objectives``: a :class:`_Mapped` each,
    from one cost evaluation."""
    from .cost.choices import hardware_mask
    from .cost.model import evaluate

    n_points = len(hardware)
    n_layers = len(layers)
    pinned = np.array([name in layer_pins for name in layers.names], dtype=bool)
    wino_m = choices.wino_m
    class_ms = list(LAYOUT_CLASSES.values())
    e_byte = _energy_pj_per_dram_byte()
    aux_index = {name: i for i, name in enumerate(aux.names)}
    mac_index = {node: li for li, node in enumerate(mac_nodes)}
    element_bytes = precision // 8
    outs = [_Mapped(np.zeros((n_points, n_layers), dtype=np.int64), np.zeros(n_points),
                    np.zeros(n_points), True, "reduce", np.ones(n_points, dtype=bool))
            for _ in objectives]
    for lo in range(0, n_points, chunk_points):
        idx = np.arange(lo, min(n_points, lo + chunk_points))
        hw = hardware.take(idx)
        p = len(idx)
        cost = evaluate(layers, choices, hw, precision=precision, fill_drain=False)
        cycles = np.asarray(cost.cycles, dtype=float)                     # (L, C, p)
        energy = np.asarray(cost.energy_pj, dtype=float)
        hw_ok = hardware_mask(choices, hw, precision)                      # (C, p)
        base = (legal[:, :, None] & hw_ok[None, :, :] & pin_mask[:, :, None]
                & np.isfinite(cycles) & np.isfinite(energy))
        ok = base & np.where(pinned[:, None], True, allowed[None, :])[:, :, None]
        none = ~ok.any(axis=1, keepdims=True) & ~pinned[:, None, None]
        ok = ok | (none & base & fallback[None, :, None])
        cycles = np.where(ok, cycles, np.inf)
        energy = np.where(ok, energy, np.inf)
        # finite copies for the weighted objective (0 * inf would be NaN)
        cycles_f, energy_f = np.where(ok, cycles, 0.0), np.where(ok, energy, 0.0)
        bpc = dram_bytes_per_cycle(hw.dram_gbps, hw.clock_mhz, hw.bus_bits)    # (p,)
        static_pj_per_cycle = hw.static_power_w / hw.clock_mhz * 1e6        # W / MHz -> pJ
        aux_cycles, _, aux_energy = _aux_costs(aux, hw, precision)

        def build(weight_c, weight_e):
            """The PBQP for ``weight_c * cycles + weight_e * energy`` (weights per point)."""
            obj = cycles_f * weight_c[None, None, :]
            if weight_e is not None:
                obj = obj + energy_f * weight_e[None, None, :]
            obj = np.where(ok, obj, np.inf)
            node_costs, best_choice, node_ms = [], {}, []
            for node, layer in enumerate(graph.layers):
                if node in mac_index:
                    li = mac_index[node]
                    vecs, args, ms = [], [], []
                    for m in class_ms:
                        sel = np.flatnonzero(wino_m == m)
                        sub = obj[li][sel]                                  # (k, p)
                        if not sel.size or not np.isfinite(sub).any():
                            continue
                        a = sub.argmin(axis=0)
                        vecs.append(sub[a, np.arange(p)])
                        args.append(sel[a])
                        ms.append(m)
                    if not vecs:
                        vecs, args, ms = [np.full(p, np.inf)], [np.zeros(p, np.int64)], [0]
                    node_costs.append(np.stack(vecs, axis=1))
                    best_choice[node] = np.stack(args, axis=1)
                    node_ms.append(ms)
                else:
                    c = np.zeros(p)
                    if layer.name in aux_index:
                        a = aux_index[layer.name]
                        c = weight_c * aux_cycles[a]
                        if weight_e is not None:
                            c = c + weight_e * aux_energy[a]
                    node_costs.append(c[:, None])
                    node_ms.append([0])
            per_byte = weight_c / bpc
            if weight_e is not None:
                per_byte = per_byte + weight_e * (e_byte + static_pj_per_cycle / bpc)
            mats = []
            for u, v in graph.edges:
                mb = np.array([[_change_bytes(mu, mv, graph, u, v, element_bytes)
                                for mv in node_ms[v]] for mu in node_ms[u]])
                mats.append(mb[None, :, :] * per_byte[:, None, None])
            return MappingProblem(tuple(node_costs), graph.edges, tuple(mats)), best_choice

        def totals(sol, best_choice):
            ch = np.zeros((p, n_layers), dtype=np.int64)
            for node, li in mac_index.items():
                ch[:, li] = best_choice[node][np.arange(p), sol.choices[:, node]]
            rows = np.arange(p)
            cyc = aux_cycles.sum(axis=0).copy()
            en = aux_energy.sum(axis=0).copy()
            for li in range(n_layers):
                cyc += cycles[li, ch[:, li], rows]
                en += energy[li, ch[:, li], rows]
            node_m = [wino_m[ch[:, mac_index[node]]] if node in mac_index else np.zeros(p, int)
                      for node in range(len(graph.layers))]
            extra = _edge_bytes(graph, node_m, element_bytes, p)
            cyc += extra / bpc
            en += extra * e_byte + extra / bpc * static_pj_per_cycle
            return ch, cyc, en

        ones = np.ones(p)
        for out, objective in zip(outs, objectives):
            if objective == "latency":
                prob, bc = build(ones, None)
                sol = solve(prob)
                ch, cyc, en = totals(sol, bc)
                optimal, method = sol.optimal, sol.method
            elif objective == "energy":
                prob, bc = build(np.zeros(p), ones)
                sol = solve(prob)
                ch, cyc, en = totals(sol, bc)
                optimal, method = sol.optimal, sol.method
            else:
                prob, bc = build(ones, None)
                sol = solve(prob)
                ch, cyc, en = totals(sol, bc)
                t0 = np.where(np.isfinite(cyc) & (cyc > 0), cyc, 1.0)
                e0 = np.where(np.isfinite(en) & (en > 0), en, 1.0)
                for lam in (0.25, 1.0, 4.0, None):
                    wc, we = (np.zeros(p), 1.0 / e0) if lam is None else (1.0 / t0, lam / e0)
                    prob, bc2 = build(wc, we)
                    sol2 = solve(prob)
                    ch2, cyc2, en2 = totals(sol2, bc2)
                    better = cyc2 * en2 < cyc * en
                    ch = np.where(better[:, None], ch2, ch)
                    cyc = np.where(better, cyc2, cyc)
                    en = np.where(better, en2, en)
                optimal, method = False, "reduce (edp: best of weighted sums)"
            out.choice[idx] = ch
            out.cycles[idx] = cyc
            out.energy_pj[idx] = en
            out.optimal = out.optimal and optimal
            out.method = method
        bar.advance(p, "mapping hardware points")
    return outs


def _sparse_plan(layers, li, choice, point) -> dict | None:
    """design.json's ``sparse`` entry of layer ``li`` under ``choice`` on ``point`` (an
    OverlayParams), ``None`` unless the choice is ``sparse_fft``."""
    if choice.algorithm.value != "sparse_fft":
        return None
    from .cost.choices import VARIANTS
    from .lowering import Geometry, sparse_fft

    g = Geometry.of_table(layers.take([li]))
    g = Geometry(*(v if isinstance(v, bool) else int(np.asarray(v).reshape(-1)[0])
                   for v in (g.c_in, g.c_out, g.groups, g.kh, g.kw, g.stride, g.dilation,
                             g.h_in, g.w_in, g.h_out, g.w_out, g.pad_t, g.pad_l, g.pad_b,
                             g.pad_r, bool(np.asarray(g.square_steps).reshape(-1)[0]))))
    n = VARIANTS[choice.variant][2]
    density = float(layers.density[li])
    z = int(sparse_fft.keep(density, n))
    c = sparse_fft.cycles(g, n, point.sparse_lanes, point.sparse_banks, z)
    steps = float(np.asarray(c["steps"]))
    per_tile = g.c_in * g.c_out * z
    return {"density": density, "nnz": z, "sparse_lanes": point.sparse_lanes,
            "sparse_banks": point.sparse_banks,
            "reuse": "kernels" if choice.tiling == "weights" else "activations",
            "expected_steps": round(steps, 3),
            "lane_utilisation": round(per_tile / (point.sparse_lanes * steps), 4)
            if steps else None}


def _change_bytes(mu, mv, graph, u, v, element_bytes) -> float:
    """Extra bytes on edge u -> v for producer Winograd m ``mu`` and consumer ``mv`` (0: none)."""
    produced = out_layout("winograd", mu) if mu else "spatial"
    needed = in_layout("winograd", mv) if mv else "spatial"
    return layout_change_bytes(produced, needed, graph.layers[u].out_shape,
                               graph.layers[v].kernel, element_bytes)


def _edge_bytes(graph, node_m, element_bytes, p):
    """Return ``(p,)`` extra DRAM bytes of the layout changes, given each node's Winograd m."""
    total = np.zeros(p)
    for u, v in graph.edges:
        for mu in np.unique(node_m[u]):
            for mv in np.unique(node_m[v]):
                b = _change_bytes(int(mu), int(mv), graph, u, v, element_bytes)
                if b:
                    total += np.where((node_m[u] == mu) & (node_m[v] == mv), b, 0.0)
    return total


def _variant(choice) -> str:
    return "" if choice.variant in ("im2col", "kn2row") else choice.variant


def _unused_unit(choices, hardware, choice, pinned) -> np.ndarray:
    """``(P,)`` bool: the point has a Winograd, FFT or sparse MAC unit that no layer of its mapping
    (``choice``, ``(P, L)``) uses and that is not pinned."""
    uses_wino = (choices.wino_m[choice] > 0).any(axis=1)
    uses_fft = (choices.fft_n[choice] > 0).any(axis=1)
    sparse_algo = np.array([c.algorithm.value == "sparse_fft" for c in choices.choices])
    uses_sparse = sparse_algo[choice].any(axis=1)
    return ((("winograd_m" not in pinned) & (hardware.winograd_m > 0) & ~uses_wino)
            | (("fft_size" not in pinned) & (hardware.fft_size > 0) & ~uses_fft)
            | (("sparse_lanes" not in pinned) & (hardware.sparse_lanes > 0) & ~uses_sparse))


def _design(network, board, config, precision, objective, graph, mac_nodes, layers, aux,
            choices, hardware, usage, result: _Mapped, start: float, pinned=frozenset(),
            alternative=None, optimizer: str = "grid", evaluations: int = 0):
    """Pick the best point for the objective and write its plan as a Design.

    A point with a unit that no layer of its mapping uses (and no pin asks for) is not
    chosen while another point is: the same mapping runs without the unit, for less.
    ``alternative``: ``(objective, _Mapped)`` of the same points mapped for another
    objective; the latency-power front (``pareto``) is taken over both mappings."""
    from .cost.model import evaluate
    from .design import Design, LayerPlan

    cyc, en = result.cycles, result.energy_pj
    key = {"latency": cyc, "energy": en, "edp": cyc * en}[objective]
    if not np.isfinite(key).any():
        raise InputError(network.name, "", f"has no layer plan that runs on any overlay fitting "
                                           f"{board.name} with these pins")
    unused = _unused_unit(choices, hardware, result.choice, pinned)
    if np.isfinite(np.where(unused, np.inf, key)).any():
        key = np.where(unused, np.inf, key)
    # near-ties (within NEAR_TIE of the best objective) go to the cheaper point: the smallest
    # share of the board's DSP, LUT, FF and block RAM, then the lower index
    finite = np.where(np.isfinite(key), key, np.inf)
    near = finite <= finite.min() * (1.0 + NEAR_TIE)
    shares = board_shares(usage, board)
    share = sum(shares)
    best = int(np.lexsort((np.where(near, share, np.inf), ~near))[0])
    hw = hardware.take([best])
    cost = evaluate(layers, choices, hw, precision=precision)
    ch = result.choice[best]
    clock_mhz = float(board.clock_mhz)
    bpc = float(dram_bytes_per_cycle(board.dram_gbps, clock_mhz, hw.bus_bits)[0])
    element_bytes = precision // 8
    node_m = {node: int(choices.wino_m[ch[li]]) for li, node in enumerate(mac_nodes)}
    incoming = np.zeros(len(graph.layers))
    for u, v in graph.edges:
        incoming[v] += _change_bytes(node_m.get(u, 0), node_m.get(v, 0), graph, u, v,
                                     element_bytes)

    def at(name, li):
        return float(np.asarray(getattr(cost, name))[li, ch[li], 0])

    plans = []
    for li, node in enumerate(mac_nodes):
        c = choices.choices[ch[li]]
        layout_cycles = incoming[node] / bpc
        plans.append(LayerPlan(
            name=layers.names[li], algorithm=c.algorithm.value, variant=_variant(c),
            dataflow=c.dataflow.value, tiling={"resident": c.tiling},
            macs=int(layers.macs[li]),
            cycles=int(np.ceil(at("cycles", li) + layout_cycles)),
            compute_cycles=int(at("compute_cycles", li)),
            transform_cycles=int(at("transform_cycles", li)),
            memory_cycles=int(np.ceil(at("memory_cycles", li) + layout_cycles)),
            dram_bytes=int(at("dram_bytes", li) + incoming[node]),
            sqnr_db=layer_sqnr_db(_variant(c), int(layers.kh[li]), precision),
            sparse=_sparse_plan(layers, li, c, hardware.params(best))))
    total_cycles = int(np.ceil(cyc[best]))
    latency_ms = total_cycles / (clock_mhz * 1e3)
    energy_mj = float(en[best]) * 1e-9
    power_w = energy_mj / latency_ms if latency_ms > 0 else 0.0
    mappings = [(objective, cyc, en)]
    if alternative is not None:
        mappings.append((alternative[0], alternative[1].cycles, alternative[1].energy_pj))
    cyc_all = np.concatenate([m[1] for m in mappings])
    en_all = np.concatenate([m[2] for m in mappings])
    latency_all = cyc_all / (clock_mhz * 1e3)
    with np.errstate(invalid="ignore", divide="ignore"):
        power_all = np.where(np.isfinite(en_all) & (latency_all > 0),
                             en_all * 1e-9 / latency_all, np.inf)
    # the area of a point: the share of the board's most used resource (DSP, LUT, FF or
    # block RAM), the same under either mapping
    area_all = np.tile(np.max(np.stack(shares), axis=0), len(mappings))

    def entry(j, **extra):
        i = int(j) % len(cyc)
        point = hardware.params(i)
        return {"rows": point.rows, "cols": point.cols, "winograd_m": point.winograd_m,
                "winograd_lanes": point.winograd_lanes, "fft_size": point.fft_size,
                **({"sparse_lanes": point.sparse_lanes, "sparse_banks": point.sparse_banks}
                   if point.sparse_lanes else {}),
                "act_buffer_kib": point.act_buffer_kib,
                "weight_buffer_kib": point.weight_buffer_kib,
                "out_buffer_kib": point.out_buffer_kib,
                "bus_bits": point.bus_bits, "dsp": int(usage["dsp"][i]),
                "latency_ms": round(float(latency_all[j]), 6), **extra,
                "mapped_for": mappings[int(j) // len(cyc)][0]}

    pareto = [entry(j, power_w=round(float(power_all[j]), 6))
              for j in pareto_front(latency_all, power_all)[:64]]
    pareto_area = [entry(j, area=round(float(area_all[j]), 6),
                         **{k: int(usage[k][int(j) % len(cyc)]) for k in ("lut", "ff",
                                                                        "bram_blocks")})
                   for j in pareto_front(latency_all, area_all)[:64]]
    aux_cycles = _aux_costs(aux, hw, precision)[0]
    other = [{"name": name, "op": op, "cycles": int(np.ceil(aux_cycles[a, 0]))}
             for a, (name, op) in enumerate(zip(aux.names, aux.ops))]
    return Design(
        config=config, board=board.name, clock_mhz=clock_mhz,
        hardware=hardware.params(best).as_dict(), layers=tuple(plans),
        total_cycles=total_cycles, latency_ms=latency_ms, power_w=power_w,
        energy_mj=energy_mj,
        resources={k: int(np.asarray(usage[k])[best]) for k in ("dsp", "lut", "ff",
                                                               "bram_blocks")},
        resources_datapath=_datapath_resources(hardware.params(best), board.family),
        search_seconds=round(time.perf_counter() - start, 4), network=network.name,
        objective=objective, precision=precision, optimal=bool(result.optimal),
        mapping_method=result.method, hardware_points=len(hardware), pareto=pareto,
        pareto_area=pareto_area, other_layers=other, optimizer=optimizer,
        evaluations=int(evaluations),
        dram_bytes_per_cycle=round(float(hardware.dram_bytes_per_cycle()[0, 0, best]), 4))
