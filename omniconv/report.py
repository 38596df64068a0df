"""``omniconv report DIR``: plots, an HTML page and Markdown tables for a build folder.

Reads ``DIR/design.json`` (required; written by ``omniconv dse``), and ``DIR/verify.json`` and
``DIR/resources.json`` when present; writes ``DIR/report.html`` and the PNGs it embeds by
relative path (``latency.png``, ``roofline.png``, ``resources.png``, ``pareto.png``,
``pareto_area.png``, and ``verify.png`` when verify.json exists) and prints the tables as
Markdown.

Every input is read and checked before anything is drawn, and every figure is rendered to
memory before any file is written; each file is then written through a temporary file and a
rename.  So a missing or malformed input is an :class:`~dse.errors.InputError` (exit status 2)
that leaves the folder as it was.

The board comes from ``--board``, else from the run config (``--config``, else
``configs/<DIR name>.yaml`` when its ``name`` is the design's label), else from the built-in
board named in design.json.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import sys
import time
from pathlib import Path

from dse.design import write_bytes_atomic
from dse.errors import InputError, output_errors

__all__ = ["add_arguments", "run", "PLOTS", "layer_table", "Report", "load_report",
           "render_markdown", "render_html"]

#: PNG files of the report, in page order (``verify.png`` only with verify.json).
PLOTS = ("latency.png", "roofline.png", "resources.png", "pareto.png", "pareto_area.png",
         "verify.png")

_CAPTIONS = {
    "latency.png": "Per-layer latency. Each bar is the layer's predicted cycles split into "
                   "array time, transform time the array does not hide, and DRAM time not "
                   "hidden behind on-chip work (the three sum to the layer's cycles); the tick "
                   "marks the layer's whole DRAM transfer time, mostly overlapped.",
    "roofline.png": "Roofline of the board: each MAC layer at its arithmetic intensity "
                    "(direct-convolution MACs per DRAM byte) and the MAC rate the explorer's "
                    "model predicts for it. "
                    "Winograd and FFT layers can pass the array's peak: they multiply less.",
    "resources.png": "Resources as a share of the board's budget: the explorer's model, and "
                     "Yosys when resources.json exists.",
    "pareto.png": "Latency-power Pareto front of the hardware points the search mapped, each "
                  "mapped for least latency and for least energy (only points no other "
                  "beats in both); the star is the chosen design.",
    "pareto_area.png": "Latency-area Pareto front of the same points: area is the share of "
                       "the board's most used resource (DSP, LUT, FF or block RAM); the star "
                       "is the chosen design.",
    "verify.png": "Predicted (the explorer's cycle formula, design.json's compute_cycles) "
                  "against measured (Verilator, data on chip) cycles of the verified layers, "
                  "and the relative error.",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``omniconv report``."""
    parser.add_argument("dir", metavar="DIR",
                        help="build folder holding design.json (e.g. build/vgg16)")
    parser.add_argument("--config", metavar="CONFIG", default=None,
                        help="run config to show on the page and take the board from "
                             "(default: configs/<DIR name>.yaml when it names this design)")
    parser.add_argument("--board", metavar="BOARD", default=None,
                        help="board name or file (default: the config's, else the one named "
                             "in design.json)")


# -- reading and checking the inputs --------------------------------------------------------

def _number(source, field, value, *, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value):
        raise InputError(source, field, f"must be a finite number, not {value!r}")
    if value < 0 or (positive and value == 0):
        raise InputError(source, field, f"must be {'positive' if positive else 'non-negative'}"
                                        f", not {value!r}")


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise InputError(path, "", f"cannot be read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f"line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise InputError(path, where, f"is not valid JSON: {exc}") from None


def _read_design(path: Path):
    """Return the :class:`dse.design.Design` at ``path``, checked for what the plots need."""
    from dse.design import RESOURCE_FIELDS, Design

    if not path.is_file():
        raise InputError(path, "", "is missing: run `omniconv dse CONFIG --out "
                                   f"{path.parent}` first")
    doc = _read_json(path)
    try:
        design = Design.from_dict(doc, path)
    except InputError:
        raise
    except (TypeError, ValueError, AttributeError) as exc:
        raise InputError(path, "", f"is not a design document ({exc})") from None
    _number(path, "clock_mhz", design.clock_mhz, positive=True)
    for key in ("total_cycles", "latency_ms", "power_w", "energy_mj", "search_seconds"):
        _number(path, key, getattr(design, key))
    if not isinstance(design.hardware, dict):
        raise InputError(path, "hardware", "must be an object")
    for key in ("rows", "cols", "bus_bits"):
        _number(path, f"hardware.{key}", design.hardware.get(key), positive=True)
    if not isinstance(design.resources, dict):
        raise InputError(path, "resources", "must be an object")
    for key in RESOURCE_FIELDS:
        _number(path, f"resources.{key}", design.resources[key])
    if not design.layers:
        raise InputError(path, "layers", "must list at least one layer")
    for i, layer in enumerate(design.layers):
        if not isinstance(layer.name, str) or not isinstance(layer.algorithm, str):
            raise InputError(path, f"layers[{i}]", "must have a string name and algorithm")
        for key in ("macs", "cycles", "compute_cycles", "transform_cycles", "memory_cycles",
                    "dram_bytes"):
            _number(path, f"layers[{i}].{key}", getattr(layer, key))
    if not isinstance(design.other_layers, list) or not isinstance(design.pareto, list) \
            or not isinstance(design.pareto_area, list):
        raise InputError(path, "other_layers", "pareto and pareto_area must be lists")
    for i, other in enumerate(design.other_layers):
        if not isinstance(other, dict) or not {"name", "op", "cycles"} <= set(other):
            raise InputError(path, f"other_layers[{i}]", "must have name, op and cycles")
        _number(path, f"other_layers[{i}].cycles", other["cycles"])
    for name, value in (("pareto", "power_w"), ("pareto_area", "area")):
        for i, point in enumerate(getattr(design, name)):
            if not isinstance(point, dict):
                raise InputError(path, f"{name}[{i}]", "must be an object")
            for key in ("latency_ms", value, "rows", "cols"):
                _number(path, f"{name}[{i}].{key}", point.get(key))
    return design


def _read_verify(path: Path):
    """Return verify.json's document, or None when absent (fields in docs/verify.md)."""
    if not path.is_file():
        return None
    doc = _read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("layers"), list) or not doc["layers"]:
        raise InputError(path, "layers", "must be a non-empty list")
    for i, layer in enumerate(doc["layers"]):
        if not isinstance(layer, dict) or not isinstance(layer.get("name"), str):
            raise InputError(path, f"layers[{i}]", "must be an object with a name")
        for key in ("predicted_cycles", "measured_cycles"):
            _number(path, f"layers[{i}].{key}", layer.get(key))
    return doc


def _read_resources(path: Path):
    """Return resources.json's document, or None when absent (fields in docs/synthesis.md)."""
    if not path.is_file():
        return None
    doc = _read_json(path)
    if not isinstance(doc, dict):
        raise InputError(path, "", "must be a JSON object")
    for key in ("dsp", "lut", "ff", "bram_blocks"):
        _number(path, key, doc.get(key))
    if doc.get("uram_blocks") is not None:
        _number(path, "uram_blocks", doc["uram_blocks"])
    return doc


def _find_config(args, design, out_dir: Path):
    """Return the run config of this design, or None (see the module docstring)."""
    from omniconv.config import CONFIGS_DIR, load_config

    if args.config is not None:
        return load_config(args.config)
    guess = CONFIGS_DIR / f"{out_dir.resolve().name}.yaml"
    if guess.is_file():
        try:
            config = load_config(guess)
        except InputError:
            return None
        if config.name == design.config:
            return config
    return None


def _find_board(args, design, config):
    from dse.board import load_board

    if args.board is not None:
        board = load_board(args.board)
    elif config is not None:
        board = config.board
    else:
        try:
            board = load_board(design.board)
        except InputError:
            raise InputError(design.board, "", "is not a built-in board: pass --board FILE "
                                               "or --config CONFIG") from None
    if board.name != design.board:
        source = args.board or (config.path if config is not None else design.board)
        raise InputError(source, "name",
                         f"must be the design's board {design.board!r}, not {board.name!r}")
    return board


class Report:
    """Everything a report shows, read and checked: the design and its companions.

    Members
    -------
    out_dir: the build folder.
    design: :class:`dse.design.Design`.
    board: :class:`dse.board.Board`.
    config: :class:`omniconv.config.RunConfig` or None; config_text its file's text or "".
    verify, synthesis: verify.json and resources.json documents, or None.
    """

    def __init__(self, out_dir, design, board, config, verify, synthesis):
        self.out_dir = Path(out_dir)
        self.design = design
        self.board = board
        self.config = config
        self.config_text = Path(config.path).read_text() if config is not None else ""
        self.verify = verify
        self.synthesis = synthesis

    @property
    def plots(self) -> tuple:
        """The PNG names this report draws, in page order."""
        return tuple(p for p in PLOTS if p != "verify.png" or self.verify is not None)


def load_report(out_dir, config=None, board=None) -> Report:
    """Read and check everything in ``out_dir``; raise InputError for missing or bad input."""
    out_dir = Path(out_dir)
    args = argparse.Namespace(config=config, board=board)
    design = _read_design(out_dir / "design.json")
    verify = _read_verify(out_dir / "verify.json")
    synthesis = _read_resources(out_dir / "resources.json")
    cfg = _find_config(args, design, out_dir)
    return Report(out_dir, design, _find_board(args, design, cfg), cfg, verify, synthesis)


# -- tables ---------------------------------------------------------------------------------

def _int(value) -> str:
    return f"{int(round(value)):,}"


def layer_table(design) -> tuple[list, list]:
    """Return ``(header, rows)`` of the per-layer table; the last row is the column totals.

    Totals are the sums over the MAC layers of design.json; intensity and GMAC/s of the
    total row are those of the summed MACs, bytes and cycles.
    """
    from dse.design import dram_utilisation, utilisation

    head = ["layer", "algorithm", "variant", "dataflow", "MACs", "cycles", "compute",
            "transform", "memory", "DRAM bytes", "MACs/B", "GMAC/s", "utilisation",
            "DRAM use"]
    pes = (design.hardware.get("rows") or 0, design.hardware.get("cols") or 0)
    clock_hz = design.clock_mhz * 1e6
    keys = ("macs", "cycles", "compute_cycles", "transform_cycles", "memory_cycles",
            "dram_bytes")

    def derived(layer):
        intensity = f"{layer.macs / layer.dram_bytes:,.1f}" if layer.dram_bytes else "-"
        rate = f"{layer.macs * clock_hz / layer.cycles / 1e9:,.2f}" if layer.cycles else "-"
        util = utilisation(layer, *pes)
        dram = dram_utilisation(layer, design.dram_bytes_per_cycle)
        return [intensity, rate, "-" if util is None else f"{100 * util:.1f}%",
                "-" if dram is None else f"{100 * dram:.1f}%"]

    rows = []
    for lay in design.layers:
        rows.append([lay.name, lay.algorithm, lay.variant or "-", lay.dataflow or "-"]
                    + [_int(getattr(lay, k)) for k in keys] + derived(lay))
    sums = {k: sum(getattr(lay, k) for lay in design.layers) for k in keys}
    rows.append(["**total**", "", "", ""] + [_int(sums[k]) for k in keys]
                + derived(argparse.Namespace(**sums)))
    return head, rows


def _summary(report: Report) -> list[str]:
    d, b, hw = report.design, report.board, report.design.hardware
    units = ", ".join(f"{k} {hw[k]}" for k in ("winograd_m", "fft_size", "sparse_lanes")
                      if hw.get(k))
    if hw.get("winograd_m") and hw.get("winograd_lanes", 1) > 1:
        units += f" with {hw['winograd_lanes']} output transforms"
    return [
        f"network {d.network or '?'} on {b.name} ({b.part}) at {d.clock_mhz:g} MHz; "
        f"objective {d.objective}; int{d.precision}",
        f"array {hw['rows']} x {hw['cols']} ({units or 'im2col / kn2row only'}); buffers "
        f"act/weight/out {hw.get('act_buffer_kib')}/{hw.get('weight_buffer_kib')}/"
        f"{hw.get('out_buffer_kib')} KiB; bus {hw['bus_bits']} bits",
        f"total {d.total_cycles:,} cycles = {d.latency_ms:.4f} ms per inference; "
        f"{d.power_w:.2f} W; {d.energy_mj:.3f} mJ per inference",
        f"search: {d.hardware_points:,} hardware points in {d.search_seconds:.2f} s; mapping "
        f"{'optimal' if d.optimal else 'not proved optimal'} ({d.mapping_method})",
    ]


def _cycles_tables(design) -> list[tuple[str, list, list]]:
    tables = []
    if design.other_layers:
        rows = [[o["name"], o["op"], _int(o["cycles"])] for o in design.other_layers]
        rows.append(["**total**", "", _int(sum(o["cycles"] for o in design.other_layers))])
        tables.append(("Other layers (pools, adds: not on the array)",
                       ["layer", "op", "cycles"], rows))
    mac = sum(lay.cycles for lay in design.layers)
    other = sum(o["cycles"] for o in design.other_layers)
    rows = [["MAC layers (table above)", _int(mac)], ["other layers", _int(other)],
            ["rounding (each layer rounds its cycles up)",
             _int(design.total_cycles - mac - other)],
            ["**design total_cycles**", _int(design.total_cycles)]]
    tables.append(("Where the total comes from", ["part", "cycles"], rows))
    return tables


def _resource_table(report: Report) -> tuple[list, list]:
    from omniconv.plots import resource_budget

    rows_in = resource_budget(report.design, report.board, report.synthesis)
    with_yosys = report.synthesis is not None
    head = ["resource", "model"] + (["Yosys"] if with_yosys else []) + ["board budget",
                                                                        "model %"]
    head += ["Yosys %"] if with_yosys else []
    rows = []
    for r in rows_in:
        pct = lambda v: "-" if v is None else f"{100 * v / r['budget']:.1f}%"  # noqa: E731
        row = [r["resource"], _int(r["model"])]
        row += [("-" if r["yosys"] is None else _int(r["yosys"]))] if with_yosys else []
        row += [_int(r["budget"]), pct(r["model"])]
        row += [pct(r["yosys"])] if with_yosys else []
        rows.append(row)
    return head, rows


def _synthesis_lines(synthesis) -> list[str]:
    if synthesis is None:
        return ["no resources.json: run `omniconv synth CONFIG` for Yosys counts"]
    lines = [f"Yosys flow {synthesis.get('flow', '?')}"
             + (f", {synthesis['synth_seconds']:.1f} s" if isinstance(
                 synthesis.get("synth_seconds"), (int, float)) else "")]
    if synthesis.get("fmax_mhz") is not None:
        lines.append(f"Fmax {synthesis['fmax_mhz']:.1f} MHz after nextpnr place and route "
                     f"(speed grade {synthesis.get('speed_grade')})")
    return lines


def _front_table(design, front, value: str, title: str, fmt: str) -> tuple[list, list]:
    """A Pareto front of design.json (``pareto``: ``value`` = ``power_w``; ``pareto_area``:
    ``area``) as a table, latency ascending, the chosen point marked."""
    head = ["#", "array", "winograd_m", "fft_size", "act/weight/out KiB", "bus bits", "DSP",
            "mapped for", "latency ms", title, "chosen"]
    hw = design.hardware
    rows = []
    for i, p in enumerate(sorted(front, key=lambda p: p["latency_ms"])):
        chosen = all(p.get(k, hw.get(k)) == hw.get(k)
                     for k in ("rows", "cols", "winograd_m", "fft_size", "act_buffer_kib",
                               "weight_buffer_kib", "out_buffer_kib", "bus_bits"))
        chosen = chosen and p.get("mapped_for", design.objective) == design.objective
        kib = "/".join(str(p.get(f"{k}_buffer_kib", "-")) for k in ("act", "weight", "out"))
        rows.append([str(i + 1), f"{p['rows']}x{p['cols']}", str(p.get("winograd_m", "-")),
                     str(p.get("fft_size", "-")), kib, str(p.get("bus_bits", "-")),
                     _int(p.get("dsp", 0)), str(p.get("mapped_for", "-")),
                     f"{p['latency_ms']:.4f}", format(p[value], fmt),
                     "**yes**" if chosen else ""])
    return head, rows


def _verify_table(verify) -> tuple[list, list]:
    head = ["layer", "algorithm", "variant", "dataflow", "predicted", "measured", "error",
            "bit exact", "SQNR dB"]
    rows = []
    for lay in verify["layers"]:
        pred, meas = lay["predicted_cycles"], lay["measured_cycles"]
        err = f"{100 * (pred - meas) / meas:+.1f}%" if meas else "-"
        sqnr = lay.get("sqnr_db")
        rows.append([lay["name"], str(lay.get("algorithm", "-")), lay.get("variant") or "-",
                     lay.get("dataflow") or "-", _int(pred), _int(meas), err,
                     {True: "yes", False: "**NO**"}.get(lay.get("bit_exact"), "-"),
                     "-" if sqnr is None else f"{sqnr:.1f}"])
    pred = sum(lay["predicted_cycles"] for lay in verify["layers"])
    meas = sum(lay["measured_cycles"] for lay in verify["layers"])
    exact = [lay.get("bit_exact") for lay in verify["layers"]]
    rows.append(["**total**", "", "", "", _int(pred), _int(meas),
                 f"{100 * (pred - meas) / meas:+.1f}%" if meas else "-",
                 "yes" if all(e is True for e in exact) else "**NO**", ""])
    return head, rows


def _sections(report: Report) -> list[tuple[str, list, list]]:
    """Return the report's tables as ``(title, header, rows)`` in page order."""
    d = report.design
    sections = [("Layers (MAC layers, as in design.json)", *layer_table(d))]
    sections += _cycles_tables(d)
    sections.append(("Resources against the board", *_resource_table(report)))
    if d.pareto:
        sections.append(("Latency-power Pareto front",
                         *_front_table(d, d.pareto, "power_w", "power W", ".3f")))
    if d.pareto_area:
        sections.append(("Latency-area Pareto front (area: the share of the board's most "
                         "used resource)",
                         *_front_table(d, d.pareto_area, "area", "area", ".3f")))
    if report.verify is not None:
        sections.append(("Verification: predicted vs measured cycles",
                         *_verify_table(report.verify)))
    return sections


# -- rendering ------------------------------------------------------------------------------

def _md_table(head, rows) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(report: Report) -> str:
    """Return the report's summary and tables as Markdown."""
    lines = [f"# {report.design.config}: report", ""]
    lines += [f"- {s}" for s in _summary(report)]
    lines += [f"- {s}" for s in _synthesis_lines(report.synthesis)]
    for title, head, rows in _sections(report):
        lines += ["", f"## {title}", ""] + _md_table(head, rows)
    return "\n".join(lines) + "\n"


def _html_cell(text: str, tag: str) -> str:
    text = str(text)
    if text.startswith("**") and text.endswith("**") and len(text) > 4:
        return f"<{tag}><b>{html.escape(text[2:-2])}</b></{tag}>"
    return f"<{tag}>{html.escape(text)}</{tag}>"


def _html_table(head, rows) -> str:
    out = ["<table>", "<tr>" + "".join(_html_cell(h, "th") for h in head) + "</tr>"]
    out += ["<tr>" + "".join(_html_cell(c, "td") for c in row) + "</tr>" for row in rows]
    return "\n".join(out + ["</table>"])


_CSS = """
body { font-family: sans-serif; max-width: 1200px; margin: 1em auto; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #bbb; padding: 2px 6px; text-align: right; }
th { background: #eee; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0 2em; } figcaption { font-size: 0.85em; color: #333; max-width: 900px; }
img { max-width: 100%; } pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
"""


def render_html(report: Report) -> str:
    """Return the HTML page: summary, plots (relative PNG paths), tables, config and board."""
    d, esc = report.design, html.escape
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>{esc(d.config)}: omniconv report</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{esc(d.config)}: omniconv report</h1>", "<ul>"]
    parts += [f"<li>{esc(s)}</li>" for s in _summary(report) + _synthesis_lines(
        report.synthesis)]
    parts.append("</ul>")
    for name in report.plots:
        parts.append(f"<figure><img src=\"{name}\" alt=\"{name}\">"
                     f"<figcaption>{esc(_CAPTIONS[name])}</figcaption></figure>")
    for title, head, rows in _sections(report):
        parts += [f"<h2>{esc(title)}</h2>", _html_table(head, rows)]
    board_rows = [[k, str(v)] for k, v in report.board.as_dict().items()]
    parts += ["<h2>Board</h2>", _html_table(["field", "value"], board_rows)]
    parts.append("<h2>Run config</h2>")
    if report.config is not None:
        parts.append(f"<p>{esc(str(report.config.path))}</p><pre>{esc(report.config_text)}"
                     "</pre>")
    else:
        parts.append("<p>The run config was not found (pass --config); design.json's "
                     "hardware:</p>")
    parts.append(f"<pre>{esc(json.dumps(d.hardware, indent=2))}</pre>")
    parts.append(f"<p>Generated by <code>omniconv report</code> on "
                 f"{esc(time.strftime('%Y-%m-%d %H:%M:%S'))}.</p></body></html>")
    return "\n".join(parts) + "\n"


def _draw(report: Report, name: str):
    from omniconv import plots

    d = report.design
    if name == "latency.png":
        return plots.latency_plot(d)
    if name == "roofline.png":
        return plots.roofline_plot(d, report.board)
    if name == "resources.png":
        return plots.resource_plot(d, report.board, report.synthesis)
    if name == "pareto.png":
        return plots.pareto_plot(d)
    if name == "pareto_area.png":
        return plots.pareto_area_plot(d, report.board)
    return plots.verify_plot(report.verify)


def run(args) -> int:
    """Run ``omniconv report``: check the inputs, draw, write the page, print the tables."""
    from dse.errors import check_output_dir

    report = load_report(args.dir, config=args.config, board=args.board)
    check_output_dir(report.out_dir)     # before the drawing, which takes a while
    try:
        from omniconv.plots import png_bytes
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "matplotlib":
            raise
        print("omniconv report: matplotlib is not installed; install the extra with "
              "`pip install -e '.[report]'` (or run `make install`)", file=sys.stderr)
        return 2
    names = report.plots
    images = {}
    for i, name in enumerate(names, 1):
        # matplotlib's first import and each render take a moment: say what is happening
        print(f"[{i}/{len(names)}] drawing {name}", file=sys.stderr, flush=True)
        images[name] = png_bytes(_draw(report, name))
    page = render_html(report).encode()
    markdown = render_markdown(report)
    for name, data in images.items():
        write_bytes_atomic(report.out_dir / name, data)
    stale = report.out_dir / "verify.png"
    if "verify.png" not in images and stale.is_file():
        with output_errors(report.out_dir):
            stale.unlink()                  # a plot of an older verify.json would mislead
    write_bytes_atomic(report.out_dir / "report.html", page)
    sys.stdout.write(markdown)
    print(f"wrote {report.out_dir / 'report.html'} and {len(images)} plots "
          f"({', '.join(images)})")
    return 0
