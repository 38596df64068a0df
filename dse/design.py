"""The design point document, ``design.json``: what the explorer chose and what it predicts.

Fields: the documented outputs (``config``, ``board``, ``clock_mhz``, ``hardware``,
``layers``, ``total_cycles``, ``latency_ms``, ``power_w``, ``energy_mj``, ``resources``,
``search_seconds``), plus a few of our own (``network``, ``objective``, ``precision``,
``optimal``, ``mapping_method``, ``hardware_points``, ``pareto`` (the latency/power front
of the searched points, each mapped for least latency and for least energy; ``mapped_for``
says which), ``pareto_area`` (the latency/area front of the same points: ``area`` is the share
of the board's most used resource, DSP, LUT, FF or block RAM), ``other_layers`` (pools and
adds: name, op, cycles), ``optimizer`` (``nlp`` or ``grid``: which searched the hardware)
``evaluations`` (hardware points it mapped exactly) and ``timing`` (where the cycles come
from: ``source`` ``"program"`` -- the compiler's schedule of the program the overlay top
runs, ``dse.compiler.timing``, with ``model_total_cycles`` the explorer's estimate and
``dram_latency_cycles`` -- or ``"model"``, the explorer's analytic model, with ``why`` the
top cannot run the design)).  :func:`read_design`
reads a document back and checks it; :func:`write_text_atomic` writes any output file so
that nothing half-written is ever left behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import InputError, OutputError

__all__ = ["LayerPlan", "Design", "read_design", "write_bytes_atomic", "write_text_atomic",
           "table_lines", "utilisation", "dram_utilisation", "LAYER_FIELDS", "RESOURCE_FIELDS", "CSV_FIELDS"]

#: Keys of every entry of ``layers``, in order.
LAYER_FIELDS = ("name", "algorithm", "variant", "dataflow", "tiling", "macs", "cycles",
                "compute_cycles", "transform_cycles", "memory_cycles", "dram_bytes")
#: Columns of the per-layer CSV (``layers.csv`` beside design.json, :meth:`Design.to_csv`).
CSV_FIELDS = ("name", "algorithm", "variant", "dataflow", "macs", "cycles", "compute_cycles",
              "transform_cycles", "memory_cycles", "dram_bytes", "utilisation",
              "dram_utilisation")
#: Keys of ``resources``.
RESOURCE_FIELDS = ("dsp", "lut", "ff", "bram_blocks")
_REQUIRED = ("config", "board", "clock_mhz", "hardware", "layers", "total_cycles",
             "latency_ms", "power_w", "energy_mj", "resources", "search_seconds")


@dataclass(frozen=True)
class LayerPlan:
    """One layer's chosen algorithm and dataflow and its predicted cost.

    Members
    -------
    name: layer name (as in the network).
    algorithm: :class:`rtl.params.Algorithm` value actually used (after any fallback).
    variant: algorithm size, e.g. ``"F2x2_3x3"``, ``"fft8"``; ``""`` for im2col and kn2row.
    dataflow: ``"ws"``, ``"os"`` or ``"is"``; ``""`` for layers that do not use the array.
    tiling: the tiling of the GEMM on the array (a flat dict of integers).
    macs: multiply-accumulates of the layer.
    cycles: predicted cycles of the layer including its incoming layout changes.
    compute_cycles: cycles with unlimited DRAM bandwidth.
    transform_cycles: cycles of the algorithm's transforms (part of compute_cycles).
    memory_cycles: cycles of DRAM transfer (overlapped with compute where double-buffered).
    dram_bytes: bytes moved to and from DRAM.
    sqnr_db: predicted SQNR of an approximate (FFT) layer in dB (:mod:`dse.cost.sqnr`);
        ``None`` for exact layers, and design.json then leaves the key out.
    sparse: for a ``sparse_fft`` layer, ``density``, ``nnz`` (kept bins per kernel),
        ``sparse_lanes``, ``sparse_banks``, ``reuse`` (``kernels``: kernels resident,
        activations streamed; ``activations``: the reverse), ``expected_steps`` (the expected
        stall-free schedule length per tile, all (group, channel) pairs, an estimate:
        :mod:`dse.lowering.sparse_fft`) and ``lane_utilisation`` (kept complex MACs per tile
        over lanes × expected steps); ``None`` otherwise, and design.json leaves the key out.
    """

    name: str
    algorithm: str
    variant: str
    dataflow: str
    tiling: dict
    macs: int
    cycles: int
    compute_cycles: int
    transform_cycles: int
    memory_cycles: int
    dram_bytes: int
    sqnr_db: float | None = None
    sparse: dict | None = None


@dataclass(frozen=True)
class Design:
    """A design point: hardware parameters, per-layer plan and predicted totals.

    ``hardware`` is :meth:`rtl.params.OverlayParams.as_dict`; ``resources`` has
    :data:`RESOURCE_FIELDS`: the accelerator, the datapath and the overlay top's shell
    around it; ``resources_datapath`` the same fields for the datapath alone (overlay.v).  Times: ``latency_ms`` at ``clock_mhz``; ``energy_mj`` per
    inference; ``search_seconds`` the wall time of the search in process.
    """

    config: str
    board: str
    clock_mhz: float
    hardware: dict
    layers: tuple
    total_cycles: int
    latency_ms: float
    power_w: float
    energy_mj: float
    resources: dict
    search_seconds: float
    network: str = ""
    objective: str = "latency"
    precision: int = 8
    optimal: bool = True
    mapping_method: str = ""
    hardware_points: int = 0
    pareto: list = field(default_factory=list)
    pareto_area: list = field(default_factory=list)
    other_layers: list = field(default_factory=list)
    dram_bytes_per_cycle: float = 0.0
    optimizer: str = "grid"
    evaluations: int = 0
    timing: dict = field(default_factory=dict)
    fusion: list = field(default_factory=list)
    resources_datapath: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Return the JSON document (plain dicts and lists)."""
        doc = asdict(self)
        doc["layers"] = [_layer_dict(layer) for layer in self.layers]
        return doc

    def to_json(self) -> str:
        """Return the document as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, doc, source="design.json") -> "Design":
        """Return the design in ``doc``; raise :class:`InputError` naming a missing field."""
        if not isinstance(doc, dict):
            raise InputError(source, "", f"must be a JSON object, not {type(doc).__name__}")
        for key in _REQUIRED:
            if key not in doc:
                raise InputError(source, key, "is required")
        if not isinstance(doc["layers"], list):
            raise InputError(source, "layers", "must be a list")
        layers = []
        for i, entry in enumerate(doc["layers"]):
            if not isinstance(entry, dict):
                raise InputError(source, f"layers[{i}]", "must be an object")
            for key in LAYER_FIELDS:
                if key not in entry:
                    raise InputError(source, f"layers[{i}].{key}", "is required")
            layers.append(LayerPlan(**{k: entry[k] for k in LAYER_FIELDS},
                                    sqnr_db=entry.get("sqnr_db"), sparse=entry.get("sparse")))
        for key in RESOURCE_FIELDS:
            if key not in doc["resources"]:
                raise InputError(source, f"resources.{key}", "is required")
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in doc.items() if k in known}
        kwargs["layers"] = tuple(layers)
        return cls(**kwargs)

    def to_markdown(self) -> str:
        """Return a readable report: the hardware, the totals and the per-layer table."""
        hw = self.hardware
        lines = [f"# {self.config}: design point", "",
                 f"- network: {self.network}; board: {self.board} at {self.clock_mhz:g} MHz; "
                 f"objective: {self.objective}; precision: int{self.precision}",
                 f"- array {hw.get('rows')} x {hw.get('cols')}, winograd_m {hw.get('winograd_m')}"
                 f" ({hw.get('winograd_lanes', 1)} output transforms), fft_size "
                 f"{hw.get('fft_size')}, buffers act/weight/out "
                 f"{hw.get('act_buffer_kib')}/{hw.get('weight_buffer_kib')}/"
                 f"{hw.get('out_buffer_kib')} KiB, bus {hw.get('bus_bits')} bits",
                 f"- total {self.total_cycles:,} cycles = {self.latency_ms:.4f} ms; "
                 f"{self.power_w:.2f} W; {self.energy_mj:.3f} mJ per inference",
                 "- resources: " + ", ".join(f"{k} {self.resources[k]:,}"
                                             for k in RESOURCE_FIELDS),
                 f"- mapping: {'optimal' if self.optimal else 'NOT proved optimal'} "
                 f"({self.mapping_method}); {self.hardware_points:,} hardware points mapped "
                 f"by the {self.optimizer} optimiser in {self.search_seconds:.2f} s", ""]
        lines += table_lines(self.layers, hw.get("rows"), hw.get("cols"),
                             self.dram_bytes_per_cycle)
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """Return the per-layer table as CSV (:data:`CSV_FIELDS`, a header line first):
        design.json's per-layer numbers, the array utilisation (:func:`utilisation`) and the
        DRAM bandwidth utilisation (:func:`dram_utilisation`)."""
        import csv
        import io

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_FIELDS)
        rows, cols = self.hardware.get("rows"), self.hardware.get("cols")
        for p in self.layers:
            util = utilisation(p, rows, cols)
            dram = dram_utilisation(p, self.dram_bytes_per_cycle)
            writer.writerow([p.name, p.algorithm, p.variant, p.dataflow, p.macs, p.cycles,
                             p.compute_cycles, p.transform_cycles, p.memory_cycles,
                             p.dram_bytes, "" if util is None else f"{util:.4f}",
                             "" if dram is None else f"{dram:.4f}"])
        return buf.getvalue()


def _layer_dict(layer) -> dict:
    """design.json's entry of a layer: every field, ``sqnr_db`` only where it is not exact."""
    entry = asdict(layer) if isinstance(layer, LayerPlan) else dict(layer)
    for key in ("sqnr_db", "sparse"):
        if entry.get(key) is None:
            entry.pop(key, None)
    return entry


def utilisation(layer, rows, cols) -> float | None:
    """The array utilisation of a layer, ``macs / (rows · cols · compute_cycles)``: the share
    of the processing elements' cycles on chip that direct-convolution MACs would fill.
    Winograd and FFT layers can pass 1 (they multiply less than ``macs``).  ``None`` when
    the layer has no compute cycles or the array size is unknown, and for ``sparse_fft``
    layers (the array idles; their ``sparse`` entry has the lanes' utilisation)."""
    if (not rows or not cols or not layer.compute_cycles
            or getattr(layer, "algorithm", "") == "sparse_fft"):
        return None
    return layer.macs / (rows * cols * layer.compute_cycles)


def dram_utilisation(layer, bytes_per_cycle) -> float | None:
    """The DRAM bandwidth utilisation of a layer, ``dram_bytes / (cycles · bytes_per_cycle)``:
    the share of the layer's time that its transfers would keep the DRAM port busy (at most 1:
    a layer is never shorter than its transfers).  ``bytes_per_cycle`` is design.json's
    ``dram_bytes_per_cycle``; ``None`` when it or the layer's cycles are 0 (older files)."""
    if not bytes_per_cycle or not layer.cycles:
        return None
    return layer.dram_bytes / (layer.cycles * bytes_per_cycle)


def table_lines(layers, rows=None, cols=None, bytes_per_cycle=0.0) -> list[str]:
    """Return the per-layer plan as markdown table lines; with the array's ``rows`` and
    ``cols`` a column gives the array utilisation (:func:`utilisation`), with
    ``bytes_per_cycle`` a last one the DRAM bandwidth utilisation (:func:`dram_utilisation`)."""
    head = ("layer", "algorithm", "variant", "dataflow", "MACs", "cycles", "compute",
            "transform", "memory", "DRAM bytes") + (("utilisation",) if rows and cols else ()) \
        + (("DRAM use",) if bytes_per_cycle else ())

    def percent(value):
        return "-" if value is None else f"{100 * value:.1f}%"

    lines = [head, tuple("---" for _ in head)]
    for p in layers:
        line = (p.name, p.algorithm, p.variant or "-", p.dataflow or "-", f"{p.macs:,}",
                f"{p.cycles:,}", f"{p.compute_cycles:,}", f"{p.transform_cycles:,}",
                f"{p.memory_cycles:,}", f"{p.dram_bytes:,}")
        if rows and cols:
            line += (percent(utilisation(p, rows, cols)),)
        if bytes_per_cycle:
            line += (percent(dram_utilisation(p, bytes_per_cycle)),)
        lines.append(line)
    return ["| " + " | ".join(r) + " |" for r in lines]


def read_design(path) -> Design:
    """Return the design stored at ``path`` (InputError if unreadable or incomplete)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise InputError(path, "", f"cannot be read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"line {exc.lineno}", f"is not valid JSON: {exc.msg}") from None
    return Design.from_dict(doc, path)


def write_bytes_atomic(path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Any failure (the folder cannot be created, is read-only or lies under a regular file, the
    disk is full) raises :class:`dse.errors.OutputError` naming ``path`` and the OS's reason,
    and leaves neither the temporary file nor a partial ``path``: an existing ``path`` is
    kept as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise OutputError.from_os_error(exc, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)      # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise OutputError.from_os_error(exc, path) from None
        raise


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`write_bytes_atomic`)."""
    write_bytes_atomic(path, text.encode("utf-8"))
