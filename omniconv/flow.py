"""``omniconv dse`` and ``omniconv verilog``: explore, write design.json, generate the overlay.

``dse CONFIG`` loads the config, its network and board, runs the hardware search with the
per-layer mapping (:func:`dse.search.search`), prints the per-layer table and writes
``DIR/design.json``, ``DIR/report.md`` and ``DIR/layers.csv`` (the per-layer table with the
array utilisation, :meth:`dse.design.Design.to_csv`; ``DIR`` defaults to
``build/<config stem>``).
Every file is written through a temporary file and a rename, and only after the whole search
succeeded, so bad input leaves nothing behind.

``verilog CONFIG`` reuses ``DIR/design.json`` when it is newer than its inputs (the config, the
board file and a network file), else reruns the search; then generates the RTL top for the
chosen array as ``DIR/overlay.v`` (:func:`omniconv.overlay.write_overlay`), unless overlay.v is
already newer than design.json and the generator's sources (:func:`overlay_is_stale`).  The RTL
is imported lazily, so ``dse`` never loads Amaranth.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path


__all__ = ["add_dse_arguments", "run_dse", "add_verilog_arguments", "run_verilog", "explore",
           "inputs_of", "explorer_sources", "is_stale", "overlay_is_stale", "summary",
           "RTL_TOP"]

#: Module of the RTL top that ``verilog`` generates (the conv datapath until the overlay lands).
RTL_TOP = "rtl.conv_datapath"


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG",
                        help="run config: a path, or a name in configs/ (with or without .yaml)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="output folder (default: build/<config stem>)")


def add_dse_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``omniconv dse``."""
    _common_arguments(parser)
    parser.add_argument("--json", action="store_true",
                        help="print design.json to stdout instead of the table "
                             "(default: %(default)s)")
    parser.add_argument("--optimizer", choices=("nlp", "grid"), default=None,
                        help="hardware optimiser: nlp (relaxation and local search over the "
                             "larger space) or grid (the fixed grid); default: the config's "
                             "optimizer key, else nlp")
    parser.add_argument("--if-stale", action="store_true",
                        help="search only when DIR/design.json is missing or older than the "
                             "config, board or network file or the explorer's sources "
                             "(default: %(default)s)")
    parser.add_argument("--model-only", dest="program", action="store_false",
                        help="keep the explorer's model numbers: do not compile the overlay "
                             "top's program to time the design (faster on large networks)")


def add_verilog_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``omniconv verilog``."""
    _common_arguments(parser)
    parser.add_argument("--no-top", dest="top", action="store_false",
                        help="write overlay.v only, not the overlay top, its program and DRAM "
                             "image (which a design the top runs otherwise gets)")


def _out_dir(args, config) -> Path:
    return Path(args.out) if args.out else config.out_dir


def inputs_of(config) -> list[Path]:
    """Return the files a design depends on: the config, its board file, its network file."""
    from dse.board import BOARDS_DIR

    paths = [Path(config.path)]
    board = Path(config.board_spec)
    if not board.is_absolute():
        board = config.base_dir / board
    if not board.is_file():
        board = BOARDS_DIR / f"{config.board.name}.yaml"
    paths.append(board)
    spec = Path(config.network_spec)
    if spec.is_file():
        paths.append(spec)
    return [p for p in paths if p.is_file()]


def explorer_sources() -> list[Path]:
    """The files whose change changes design.json for the same inputs: the explorer's Python
    sources and the measurements it reads (``dse/``: the cost model, its calibration and
    tables), and the hardware facts of ``rtl/params.py``."""
    import dse
    import rtl.params

    root = Path(dse.__file__).resolve().parent
    return sorted([*root.rglob("*.py"), *root.rglob("*.json"),
                   Path(rtl.params.__file__).resolve()])


def is_stale(design_path: Path, config) -> bool:
    """Return whether ``design_path`` is missing or older than any input of ``config`` or any
    source of the explorer (:func:`explorer_sources`: an upgraded cost model searches again)."""
    if not design_path.is_file():
        return True
    built = design_path.stat().st_mtime
    return any(p.stat().st_mtime > built for p in [*inputs_of(config), *explorer_sources()])


def overlay_is_stale(overlay_path: Path, design_path: Path) -> bool:
    """Return whether ``overlay_path`` is missing or older than ``design_path`` or any source of
    the generator (:func:`omniconv.overlay.generator_sources`)."""
    from omniconv.overlay import generator_sources

    if not overlay_path.is_file() or not design_path.is_file():
        return True
    built = overlay_path.stat().st_mtime
    return any(p.stat().st_mtime > built for p in [design_path, *generator_sources()])


#: The algorithms a quantised (QDQ) network runs with: bit-exact with onnxruntime, on the
#: per-channel requantiser (``rtl.params.OverlayParams.requant`` f32).
QDQ_ALGORITHMS = ("im2col", "kn2row")
#: Hardware a quantised network's overlay leaves out (the f32 requantiser's datapaths).
QDQ_PINS = {"winograd_m": 0, "winograd_lanes": 1, "fft_size": 0, "sparse_lanes": 0,
            "sparse_banks": 0, "a_width": 8, "b_width": 8}
#: What the search of a quantised network pins besides (the resource model prices it).
QDQ_REQUANT = {"requant": "f32"}


def quantized_network(config):
    """The quantisation records of ``config``'s network
    (``dse.importers.onnx_qdq.QuantizedNetwork``) when it is a QDQ-quantised ONNX model,
    else None (a float model, a built-in or another format)."""
    spec = Path(config.network_spec)
    if spec.suffix.lower() != ".onnx" or not spec.is_file():
        return None
    from dse.importers.onnx_qdq import import_qdq, is_qdq

    return import_qdq(spec) if is_qdq(spec) else None


def _qdq_search_args(config, algorithms, pins):
    """The allowed algorithms and hardware pins of a quantised network's search: the
    config's, narrowed to what runs it bit-exactly; a pin or set that cannot is an
    InputError naming the field."""
    from dse.errors import InputError

    allowed = tuple(a for a in algorithms if a in QDQ_ALGORITHMS)
    if not allowed:
        raise InputError(config.path, "algorithms",
                         f"a quantised (QDQ) network runs {' and '.join(QDQ_ALGORITHMS)} "
                         f"(bit-exact with onnxruntime), not only {', '.join(algorithms)}")
    for name, value in QDQ_PINS.items():
        if name in pins and pins[name] != value:
            raise InputError(config.path, f"hardware.{name}",
                             f"must be {value} for a quantised (QDQ) network (its overlay "
                             f"requantises per channel on the im2col and kn2row datapaths), "
                             f"not {pins[name]}")
    return allowed, {**pins, **QDQ_PINS, **QDQ_REQUANT}


def _pool_engine_pins(config, network, design, pins, quantised: bool = True):
    """A network's pool, add and concat layers run on the overlay top's pool engine only
    (for a quantised network nothing else computes their onnxruntime arithmetic), which
    needs ``rows`` and ``cols`` a power of two apart (``rtl.pool_layout.pool_supported``).
    None when the design has it or the network needs none; else the pins of a search again
    with the searched array's sides rounded down to powers of two (smaller: it still fits).
    When the config pins a shape without it: an InputError for a ``quantised`` network,
    None for a float one (its design keeps the model's numbers)."""
    from dse.errors import InputError
    from rtl.params import OverlayParams
    from rtl.pool_layout import pool_supported

    ops = {layer.op for layer in network.layers}
    if not ops & {"maxpool", "avgpool", "gap", "add", "concat"}:
        return None
    if pool_supported(OverlayParams(**design.hardware), config.precision):
        return None
    if "rows" in pins and "cols" in pins:
        if not quantised:
            return None
        raise InputError(config.path, "hardware",
                         f"rows {pins['rows']} and cols {pins['cols']} must be a power of two "
                         f"apart for a quantised network's pool and add layers (the overlay "
                         f"top's pool engine runs them)")
    down = {k: 1 << (int(design.hardware[k]).bit_length() - 1) for k in ("rows", "cols")
            if k not in pins}
    return {**pins, **down}


def explore(config, *, progress: bool = True, optimizer: str | None = None,
            program: bool = True, searched=None):
    """Return the :class:`dse.design.Design` of ``config`` (network loaded, search run);
    ``optimizer`` replaces the config's.  With ``program``, ``searched`` (if given) is called
    with the searched design before the program's timing re-makes its layer choices (the
    hardware is fixed from then on)."""
    from dse.compiler.timing import timed_design
    from dse.errors import InputError
    from dse.load import load_network
    from dse.search import search

    network = load_network(config.network_spec, config.base_dir)
    quant = quantized_network(config)
    algorithms = tuple(a.value for a in config.algorithms)
    hardware_pins = dict(config.hardware)
    if quant is not None:
        algorithms, hardware_pins = _qdq_search_args(config, algorithms, hardware_pins)
    def searched_with(hardware_pins):
        return search(network, config.board, config=config.name, precision=config.precision,
                      objective=config.objective,
                      algorithms=algorithms,
                      dataflows=tuple(d.value for d in config.dataflows),
                      hardware_pins=hardware_pins,
                      layer_pins={name: {k: getattr(pin, k).value
                                         for k in ("algorithm", "dataflow")
                                         if getattr(pin, k) is not None}
                                  for name, pin in config.layers.items()},
                      source=str(config.path), progress=progress,
                      min_sqnr_db=config.min_sqnr_db, optimizer=optimizer or config.optimizer,
                      density=config.densities)

    design = searched_with(hardware_pins)
    if program or quant is not None:
        # the overlay top runs the network's pools, adds and concatenations on its pool
        # engine: a design without it is searched again with one (a float network's keeps
        # the model's numbers where none fits)
        pinned = _pool_engine_pins(config, network, design, hardware_pins,
                                   quantised=quant is not None)
        if pinned is not None:
            try:
                design = searched_with(pinned)
            except InputError as exc:
                if quant is not None:
                    raise InputError(
                        config.path, "board",
                        f"a quantised network's pool and add layers need the overlay top's "
                        f"pool engine with its QDQ units (rows and cols a power of two "
                        f"apart), and the searched "
                        f"{design.hardware['rows']}x{design.hardware['cols']} array rounded "
                        f"down to {pinned['rows']}x{pinned['cols']} does not fit (it needs "
                        f"{str(exc).split('overlay needs ')[-1]})") from None
    pins = {name: {k: getattr(pin, k).value for k in ("algorithm", "dataflow")
                   if getattr(pin, k) is not None}
            for name, pin in config.layers.items()}
    if not program:
        return design
    if searched is not None:
        searched(design)
    # the program's numbers where the overlay top runs the design (its choices re-made by
    # them), the model's otherwise
    return timed_design(network, design, algorithms=algorithms,
                        dataflows=tuple(d.value for d in config.dataflows), pins=pins,
                        quant=quant, latency=config.board.dram_latency_cycles,
                        bandwidth=config.board.dram_bandwidth_256(design.hardware["bus_bits"]))


def _write_design(design, out_dir: Path) -> None:
    from dse.design import write_text_atomic

    # Render every text first: an error in any leaves no file written.
    json_text = design.to_json()
    report_text = design.to_markdown()
    csv_text = design.to_csv()
    write_text_atomic(out_dir / "design.json", json_text)
    write_text_atomic(out_dir / "report.md", report_text)
    write_text_atomic(out_dir / "layers.csv", csv_text)


def run_dse(args) -> int:
    """Run ``omniconv dse``: search, write design.json and report.md, print the result."""
    from dse.errors import check_output_dir
    from omniconv.config import load_config

    config = load_config(args.config)
    out_dir = _out_dir(args, config)
    check_output_dir(out_dir)            # an unwritable --out fails now, not after the search
    design_path = out_dir / "design.json"
    wanted = getattr(args, "optimizer", None) or config.optimizer
    if getattr(args, "if_stale", False) and not is_stale(design_path, config):
        from dse.design import read_design, write_text_atomic

        design = read_design(design_path)
    else:
        design = None
    if design is not None and design.optimizer == wanted:
        for name, render in (("report.md", design.to_markdown), ("layers.csv", design.to_csv)):
            if not (out_dir / name).is_file():        # a build folder of an older version
                write_text_atomic(out_dir / name, render())
        if args.json:
            sys.stdout.write(design.to_json())
        else:
            print(f"{design_path} is up to date: search skipped")
        return 0
    design = explore(config, progress=not args.json and sys.stderr.isatty(),
                     optimizer=getattr(args, "optimizer", None),
                     program=getattr(args, "program", True))
    _write_design(design, out_dir)
    if args.json:
        sys.stdout.write(design.to_json())
    else:
        sys.stdout.write(design.to_markdown())
        print(f"wrote {out_dir / 'design.json'}, {out_dir / 'report.md'} and "
              f"{out_dir / 'layers.csv'}")
    return 0


def _runs_on_top(design) -> bool:
    """Whether the overlay top runs ``design`` (design.json holds its program's timing)."""
    return (getattr(design, "timing", {}) or {}).get("source") == "program"


def _generate_verilog(design, board, out_dir: Path) -> Path:
    """Write the RTL top for ``design``'s hardware as ``out_dir/overlay.v``; return the path.
    For a design the overlay top runs, it is the top's datapath (its Verilog is reused in
    overlay_top.v)."""
    from omniconv.overlay import write_overlay   # the conv datapath, docs/verify.md

    return write_overlay(design, board, out_dir, top=_runs_on_top(design))


def run_verilog(args) -> int:
    """Run ``omniconv verilog``: search if design.json is stale, then write overlay.v if it is
    stale; progress on stderr, then a summary (latency, resources against the board, files
    written or up to date) and the commands to try next (unless ``args.summary`` is False)."""
    from dse.errors import check_output_dir
    from omniconv.config import load_config

    config = load_config(args.config)
    out_dir = _out_dir(args, config)
    check_output_dir(out_dir)
    early: list[_OverlayJob] = []
    try:
        return _verilog(args, config, out_dir, early)
    finally:
        for job in early:
            job.cancel()


def _verilog(args, config, out_dir: Path, early: list) -> int:
    """:func:`run_verilog` after the config is read; ``early`` receives the overlay.v job
    started as soon as the search has fixed the hardware (cancelled unless used)."""
    from dse.design import read_design

    def searched(design) -> None:
        # a large datapath takes about as long to convert as the program's timing, the
        # program and the rest of the top together: start it now, in a second process, as
        # the top's datapath (the variant of any design the top runs; checked below)
        if importlib.util.find_spec(RTL_TOP) is not None and _in_background(design.hardware):
            early.append(_OverlayJob(design, config.board, out_dir, background=True,
                                     top=True))

    design_path = out_dir / "design.json"
    written, current = [], []
    if is_stale(design_path, config):
        _say(f"[1/2] searching hardware and mapping for {config.name} ({config.board.name})")
        design = explore(config, progress=sys.stderr.isatty(), searched=searched)
        _write_design(design, out_dir)
        written += [design_path, out_dir / "report.md", out_dir / "layers.csv"]
        print(f"wrote {design_path} (searched in {design.search_seconds:.2f} s)")
    else:
        design = read_design(design_path)
        current.append(design_path)
        print(f"{design_path} is up to date: search skipped")
    if importlib.util.find_spec(RTL_TOP) is None:
        print(f"omniconv verilog: RTL top not built yet ({RTL_TOP.replace('.', '/')}.py is "
              f"missing); design.json is written, overlay.v is not", file=sys.stderr)
        return 2
    overlay_path = out_dir / "overlay.v"
    top = getattr(args, "top", True) and _runs_on_top(design)
    job = None
    if not overlay_is_stale(overlay_path, design_path):
        current.append(overlay_path)
        print(f"{overlay_path} is up to date: generation skipped")
    else:
        hw = design.hardware
        _say(f"[2/2] generating {overlay_path} ({hw['rows']}x{hw['cols']} array, Amaranth "
             f"to Verilog; seconds for small arrays, minutes for large ones)")
        if early and _runs_on_top(design):
            job = early.pop()               # converting since the search: the right variant
        else:
            # a large datapath converts in a second process while this one compiles the
            # program and converts the rest of the top (a small one is quicker than the spawn)
            job = _OverlayJob(design, config.board, out_dir,
                              background=top and _in_background(hw))
        if job.path() is not None:
            written.append(job.path())
    if top:
        _top_files(design, config, out_dir, design_path, written, current, job)
    if job is not None and job.path() not in written:
        written.append(job.result())
    if getattr(args, "summary", True):
        print(summary(design, config, out_dir, written, current, args.config))
    return 0


#: Array size from which ``omniconv verilog`` writes overlay.v in a second process.
_BACKGROUND_PES = 256


def _in_background(hardware) -> bool:
    """Whether overlay.v of ``hardware`` is converted in a second process (a small datapath
    converts quicker than the process spawns)."""
    return hardware["rows"] * hardware["cols"] >= _BACKGROUND_PES


class _OverlayJob:
    """overlay.v being written: converted in a child process with ``background`` (while this
    one times and compiles the program and converts the rest of the top; the text comes back
    and :meth:`result` writes it, so overlay.v is never older than design.json), else
    written at once (:func:`_generate_verilog`).  ``top`` picks the datapath variant of a
    background job (default: the top's where the top runs the design).  :meth:`result`
    waits for it, reports it and returns the path."""

    def __init__(self, design, board, out_dir: Path, *, background: bool,
                 top: bool | None = None):
        self._start = time.perf_counter()
        self._out_dir = Path(out_dir)
        self._pool = self._pending = self._path = None
        if background:
            import multiprocessing

            self._pool = multiprocessing.get_context("spawn").Pool(processes=1)
            top = _runs_on_top(design) if top is None else top
            self._pending = self._pool.apply_async(_overlay_text, (design, board, top))
        else:
            self._path = _generate_verilog(design, board, out_dir)
            self._report()

    def result(self) -> Path:
        if self._path is None:
            from dse.design import write_text_atomic

            try:
                text = self._pending.get()
            finally:
                self.cancel()
            path = self._out_dir / "overlay.v"
            write_text_atomic(path, text)
            self._path = path
            self._report()
        return self._path

    def path(self) -> Path | None:
        """overlay.v's path once written (:meth:`result` waits for it), else None."""
        return self._path

    def cancel(self) -> None:
        """Stop the child process, if any (a finished job keeps its file)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def _report(self) -> None:
        print(f"wrote {self._path} in {time.perf_counter() - self._start:.1f} s")


def _overlay_text(design, board, top: bool) -> str:
    """overlay.v's Verilog (:func:`omniconv.overlay.overlay_text`), in the child process."""
    from omniconv.overlay import overlay_text

    return overlay_text(design, board, top=top)


def _top_files(design, config, out_dir: Path, design_path: Path, written, current,
               job=None) -> None:
    """Write overlay_top.v, the program and the DRAM image beside overlay.v
    (``omniconv.overlay.write_overlay_top``) if they are stale; ``job``, overlay.v being
    written (an :class:`_OverlayJob`), is waited for once the rest of the top is converted."""
    from dse.load import load_network
    from omniconv.overlay import TOP_FILES, write_overlay_top

    overlay_path = out_dir / "overlay.v"

    def datapath_text() -> str:
        if job is not None and job.path() is None:
            written.append(job.result())
        return overlay_path.read_text()

    paths = [out_dir / name for name in TOP_FILES]
    if job is None and not any(overlay_is_stale(p, design_path) for p in paths):
        current.extend(paths)
        print(f"{', '.join(p.name for p in paths)} are up to date: generation skipped")
        return
    _say(f"[+] writing the overlay top, its program and DRAM image ({', '.join(TOP_FILES)}; "
         f"seeded random weights and input: the network IR carries none)")
    start = time.perf_counter()
    try:
        network = load_network(config.network_spec, config.base_dir)
        paths = write_overlay_top(design, network, out_dir, target=config.board.family,
                                  datapath_text=datapath_text)
    finally:
        if job is not None:
            job.cancel()
    written.extend(paths)
    size = paths[-1].stat().st_size
    print(f"wrote {', '.join(str(p) for p in paths)} in {time.perf_counter() - start:.1f} s "
          f"(DRAM image {size / 2 ** 10:,.1f} KiB)")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def summary(design, config, out_dir: Path, written, current, config_arg: str) -> str:
    """The closing lines of ``omniconv verilog``: latency, resources against the board, the
    files written or up to date, and the commands to try next."""
    board = config.board
    hw = design.hardware
    lines = [f"summary: {design.network or config.network} on {board.name}: "
             f"{hw['rows']}x{hw['cols']} array, {design.total_cycles:,} cycles = "
             f"{design.latency_ms:.3f} ms per inference at {design.clock_mhz:g} MHz, "
             f"{design.power_w:.2f} W"]
    for p in design.layers:
        lines.append(f"  {p.name}: {p.algorithm}{' ' + p.variant if p.variant else ''} "
                     f"{p.dataflow}, {p.cycles:,} cycles")
    timing = getattr(design, "timing", {}) or {}
    if timing.get("source") == "program":
        lines.append(f"  cycles: the overlay top's program, as the compiler schedules it "
                     f"(the explorer's model said {timing['model_total_cycles']:,})")
    elif timing.get("source") == "model":
        lines.append(f"  cycles: the explorer's model; the overlay top cannot run this "
                     f"design yet ({timing['why']})")
    budget = {"DSP": ("dsp", board.dsp), "LUT": ("lut", board.lut_budget), "FF": ("ff", board.ff),
              "BRAM": ("bram_blocks", board.bram_blocks)}
    parts = []
    for label, (field, total) in budget.items():
        used = design.resources.get(field, 0) or 0
        share = f" ({100 * used / total:.0f}%)" if total else ""
        if field == "lut" and total != board.lut:       # the explorer's LUT budget
            share = share[:-1] + (f"; the budget is {board.lut:,} sites × "
                                  f"{board.ROUTABLE_FILL[board.family]:g} routable / "
                                  f"{board.LUT_SITES_PER_LUT[board.family]:g} sites a LUT)")
        parts.append(f"{label} {used:,}/{total:,}{share}")
    lines.append("  resources (model) against the board: " + ", ".join(parts))
    if written:
        lines.append("  written: " + ", ".join(str(p) for p in written))
    if current:
        lines.append("  up to date: " + ", ".join(str(p) for p in current))
    name = config_arg
    lines.append(f"  next: omniconv verify {name} (Verilator, bit-exact), omniconv lint {name}, "
                 f"omniconv synth {name}, omniconv report {out_dir}")
    if Path(out_dir) == config.out_dir:
        lines.append(f"    (or: make verify|lint|synth|report CONFIG={name})")
    return "\n".join(lines)
