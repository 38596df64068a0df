"""The report's plots: one function per plot, each returning a matplotlib ``Figure``.

Figures are built on the Agg canvas directly (no ``pyplot``, so no global figure state and no
GUI backend is ever selected); :func:`png_bytes` renders one to PNG.  Every function takes the
design (:class:`dse.design.Design`) and plain data, never a path, so the report decides what
is written where.

* :func:`latency_plot` -- per-layer latency stacked as array busy / loads and transforms /
  exposed memory (:func:`latency_stack` says how design.json's overlapping cycle counts are split),
  coloured by algorithm;
* :func:`roofline_plot` -- the board's roofline with each MAC layer at its arithmetic intensity;
* :func:`resource_plot` -- resource use against the board budget (model, and Yosys if known);
* :func:`pareto_plot` -- the latency-power Pareto front of the hardware search;
* :func:`pareto_area_plot` -- its latency-area front;
* :func:`verify_plot` -- predicted against measured cycles per simulated layer.
"""

from __future__ import annotations

import io
import re

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import Bbox
from matplotlib.ticker import LogFormatter

__all__ = ["ALGORITHM_COLOURS", "latency_stack", "latency_plot", "roofline_plot",
           "resource_budget", "resource_plot", "pareto_plot", "pareto_area_plot", "chosen_area",
           "verify_plot", "png_bytes"]

#: One colour per algorithm (colour-blind-safe Okabe-Ito hues); ``other`` for pools and adds.
ALGORITHM_COLOURS = {
    "im2col": "#0072B2", "kn2row": "#E69F00", "winograd": "#009E73", "fft": "#CC79A7",
    "sparse_fft": "#D55E00", "other": "#999999",
}
_FALLBACK_COLOUR = "#56B4E9"
#: Hatches of the latency parts: array time is solid; the exposed parts are hatched.
_PART_HATCH = {"array": "", "transform": "//", "memory": ".."}
_PART_ALPHA = {"array": 1.0, "transform": 0.55, "memory": 0.3}
_DPI = 110
#: Above this many bars the latency plot turns horizontal (one row per layer).
HORIZONTAL_ABOVE = 32


def _colour(algorithm: str) -> str:
    return ALGORITHM_COLOURS.get(algorithm, _FALLBACK_COLOUR)


def _figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _plain_log_labels(axis) -> None:
    """Label a log axis with plain numbers (20, 50, 100), minor ticks too on short ranges."""
    axis.set_major_formatter(LogFormatter())
    axis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1.2, 0.6)))


def png_bytes(fig: Figure) -> bytes:
    """Return ``fig`` rendered as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def latency_stack(layer) -> tuple[int, int, int]:
    """Split a layer's ``cycles`` into ``(array, transform, memory)`` parts that sum to it.

    ``compute_cycles`` is the conv datapath's time with the data on chip (``dse.lowering``),
    of which ``transform_cycles`` lie outside the array's busy cycles (operand loads, result
    drains, transforms, tails); DRAM transfers overlap the on-chip time except the first
    load, the last store and any excess::

        cycles = exposed + max(compute_cycles, memory_cycles - exposed)   (+ layout changes)

    So the stack is: ``array = compute - transform`` (the array busy), ``transform`` (the
    rest of the on-chip time) and ``memory = cycles - compute``, the DRAM time not hidden
    behind on-chip work (including the layout changes charged to the layer).  Each part is
    clamped so the three are non-negative and sum exactly to ``cycles``.
    """
    cycles = int(layer.cycles)
    compute = min(int(layer.compute_cycles), cycles)
    transform = min(max(0, int(layer.transform_cycles)), compute)
    return compute - transform, transform, cycles - compute


def latency_plot(design) -> Figure:
    """Per-layer latency bars stacked as array busy / loads and transforms / exposed memory.

    Bars are coloured by the layer's algorithm; a black tick marks the layer's whole DRAM
    transfer time (``memory_cycles``), most of which the stack shows hidden under on-chip
    work.  Pools and adds (``other_layers``) follow as grey bars that are not split.
    """
    layers = list(design.layers)
    others = list(design.other_layers)
    n = len(layers) + len(others)
    # Long networks read better with one row per layer, top to bottom in network order.
    horizontal = n > HORIZONTAL_ABOVE
    if horizontal:
        fig = _figure(10.0, max(4.8, 0.17 * n + 1.5))
    else:
        fig = _figure(max(6.5, 0.38 * n + 2.5) + 2.6, 4.8)
    ax = fig.add_subplot()
    peak = max([lay.cycles for lay in layers] + [o["cycles"] for o in others] + [0])
    scale, unit = (1e3, "k") if peak < 1e6 else (1e6, "M")

    def bar(pos, value, start=0.0, **style):
        if horizontal:
            ax.barh(pos, value, left=start, height=0.75, **style)
        else:
            ax.bar(pos, value, bottom=start, width=0.75, **style)

    def tick(pos, value):
        span, at = [pos - 0.375, pos + 0.375], [value, value]
        ax.plot(*((at, span) if horizontal else (span, at)), color="black", linewidth=1.2)

    names = []
    for x, layer in enumerate(layers):
        colour = _colour(layer.algorithm)
        start = 0.0
        for part, value in zip(("array", "transform", "memory"), latency_stack(layer)):
            bar(x, value / scale, start, color=colour, alpha=_PART_ALPHA[part],
                hatch=_PART_HATCH[part], edgecolor=colour, linewidth=0.6)
            start += value / scale
        tick(x, layer.memory_cycles / scale)
        names.append(layer.name)
    for j, other in enumerate(others):
        bar(len(layers) + j, other["cycles"] / scale, color=_colour("other"))
        names.append(f"{other['name']} ({other['op']})")
    if horizontal:
        ax.set_yticks(range(n), names, fontsize=7)
        ax.set_ylim(n - 0.3, -0.7)
        ax.set_xlabel(f"cycles ({unit})")
        ax.grid(axis="x", alpha=0.3)
    else:
        ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=8)
        ax.set_xlim(-0.7, n - 0.3)
        ax.set_ylabel(f"cycles ({unit})")
        ax.grid(axis="y", alpha=0.3)
    source = ("the overlay top's program" if design.timing.get("source") == "program"
              else "the explorer's model")
    ax.set_title(f"{design.config}: per-layer latency predicted by {source}\n"
                 f"(design.json: {design.total_cycles:,} cycles = "
                 f"{design.latency_ms:.3f} ms at {design.clock_mhz:g} MHz)", fontsize=10)
    used = list(dict.fromkeys(lay.algorithm for lay in layers))
    algo_handles = [Patch(color=_colour(a), label=a) for a in used]
    if others:
        algo_handles.append(Patch(color=_colour("other"), label="pool / add / concat (not split)"))
    part_handles = [
        Patch(facecolor="#555555", edgecolor="#555555", label="array busy (compute − transform)"),
        Patch(facecolor="#555555", alpha=0.55, hatch="//", edgecolor="#555555",
              label="loads, drains, transforms (transform_cycles)"),
        Patch(facecolor="#555555", alpha=0.3, hatch="..", edgecolor="#555555",
              label="DRAM not hidden by on-chip work"),
        ax.plot([], [], color="black", linewidth=1.2, label="all DRAM time (memory_cycles)")[0],
    ]
    # legends outside the axes, so that they never hide a bar
    first = ax.legend(handles=algo_handles, title="algorithm", loc="upper left",
                      bbox_to_anchor=(1.01, 1.0), fontsize=8, title_fontsize=8)
    ax.add_artist(first)
    ax.legend(handles=part_handles, title="part of the bar", loc="lower left",
              bbox_to_anchor=(1.01, 0.0), fontsize=8, title_fontsize=8)
    return fig


def roofline_plot(design, board) -> Figure:
    """The board's roofline and each MAC layer at (MACs per DRAM byte, achieved MAC/s).

    Peak compute is ``rows · cols · clock`` (one MAC per PE per cycle); the memory roof is the
    board's DRAM bandwidth, and a dashed roof shows the AXI bus when it is the narrower.
    Achieved MAC/s counts the layer's direct-convolution MACs over its predicted time, so
    Winograd and FFT layers may rise above the array's peak: they do fewer multiplications.
    Layers without DRAM traffic are left out (their intensity is unbounded).
    """
    clock_hz = design.clock_mhz * 1e6
    hw = design.hardware
    peak = hw["rows"] * hw["cols"] * clock_hz
    board_bw = board.dram_gbps * 1e9
    bus_bw = hw["bus_bits"] / 8 * clock_hz
    points = [(lay, lay.macs / lay.dram_bytes, lay.macs * clock_hz / lay.cycles)
              for lay in design.layers if lay.dram_bytes > 0 and lay.cycles > 0]
    fig = _figure(7.5, 5.0)
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.set_yscale("log")
    xs = [p[1] for p in points] + [peak / board_bw, peak / bus_bw]
    lo, hi = min(xs) / 4, max(xs) * 12        # room on the right for the point labels
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.plot(grid, [min(peak, board_bw * x) / 1e9 for x in grid], color="black", linewidth=1.8,
            label=f"roof: {board.dram_gbps:g} GB/s DRAM, {peak / 1e9:,.1f} GMAC/s peak "
                  f"({hw['rows']}x{hw['cols']} at {design.clock_mhz:g} MHz)")
    if bus_bw < board_bw:
        ax.plot(grid, [min(peak, bus_bw * x) / 1e9 for x in grid], color="black",
                linestyle="--", linewidth=1.0,
                label=f"AXI bus roof: {hw['bus_bits']} bits = {bus_bw / 1e9:.1f} GB/s")
    for variant in sorted({lay.variant for lay, _, _ in points if lay.algorithm == "winograd"}):
        gain = _winograd_gain(variant)
        if gain:
            ax.plot(grid, [min(peak * gain, board_bw * x) / 1e9 for x in grid],
                    color=_colour("winograd"), linestyle=":", linewidth=1.0,
                    label=f"Winograd {variant} ideal: {gain:g}x fewer multiplications")
    seen = set()
    for layer, x, y in points:
        label = None if layer.algorithm in seen else layer.algorithm
        seen.add(layer.algorithm)
        ax.scatter([x], [y / 1e9], color=_colour(layer.algorithm), s=36, zorder=3,
                   edgecolor="black", linewidth=0.5, label=label)
    ax.set_xlim(lo, hi)
    top = max([peak] + [y for _, _, y in points]) / 1e9
    ax.set_ylim(top=top * 3)
    _plain_log_labels(ax.xaxis)
    _plain_log_labels(ax.yaxis)
    ax.set_xlabel("arithmetic intensity (MACs per DRAM byte)")
    ax.set_ylabel("achieved GMAC/s (direct-convolution MACs / predicted time)")
    ax.set_title(f"{design.config}: roofline of {board.name}\n"
                 "(achieved MAC/s predicted by the explorer's model, design.json)", fontsize=10)
    ax.grid(which="both", alpha=0.25)
    legend = ax.legend(fontsize=7, loc="lower right")
    groups = _clusters([(lay.name, x, y / 1e9, lay.cycles) for lay, x, y in points])
    note = ax.text(0.01, 0.99, f"labelled: the {len(groups)} of {len(groups)} layer groups "
                               "with the most cycles whose labels fit; all layers: layers.csv",
                   transform=ax.transAxes, fontsize=7, va="top", color="#444444")
    placed = _place_labels(fig, ax, groups, avoid=[legend, note],
                           markers=[(x, y / 1e9) for _, x, y in points])
    if placed == len(groups):
        note.set_text("labels: a layer, or the first of a group at one point and how many "
                      "more; all layers: layers.csv")
    else:
        note.set_text(note.get_text().replace(f"the {len(groups)} of", f"the {placed} of", 1))
    return fig


def _winograd_gain(variant: str) -> float:
    """Multiplications saved by Winograd F(m×m, r×r): (m·r)² direct against (m+r-1)²."""
    match = re.fullmatch(r"F(\d+)x\d+_(\d+)x\d+", variant or "")
    if not match:
        return 0.0
    m, r = int(match[1]), int(match[2])
    return (m * r) ** 2 / (m + r - 1) ** 2


def _clusters(points, ratio: float = 1.25):
    """Group ``(name, x, y, cycles)`` points lying within ``ratio`` of each other on both log
    axes.

    Returns ``(names, x, y, cycles)`` per group, at the group's first point with the group's
    total cycles, so that one label names all the layers drawn on top of each other.
    """
    groups = []
    for name, x, y, cycles in points:
        for group in groups:
            gx, gy = group[1], group[2]
            if max(x, gx) / min(x, gx) < ratio and max(y, gy) / min(y, gy) < ratio:
                group[0].append(name)
                group[3] += cycles
                break
        else:
            groups.append([[name], x, y, cycles])
    return [tuple(g) for g in groups]


#: Longest point label; longer ONNX names keep their start and end around an ellipsis.
LABEL_CHARS = 34
# Label offsets tried in turn (points from the point): right, above and below right, left,
# above and below left.
_LABEL_OFFSETS = ((6, -3, "left"), (5, 6, "left"), (5, -12, "left"), (-6, -3, "right"),
                  (-5, 6, "right"), (-5, -12, "right"))
# Half the side of the box around each point that labels keep clear of (pixels).
_POINT_HALF = 4.0


def _shorten(text: str, limit: int = LABEL_CHARS) -> str:
    if len(text) <= limit:
        return text
    keep = limit - 2
    return text[:keep // 2] + ".." + text[len(text) - (keep - keep // 2):]


def _group_label(names) -> str:
    if len(names) == 1:
        return _shorten(names[0])
    if len(names) == 2:
        half = (LABEL_CHARS - 2) // 2
        return f"{_shorten(names[0], half)}, {_shorten(names[1], half)}"
    return f"{_shorten(names[0], LABEL_CHARS - 6)} +{len(names) - 1}"


def _place_labels(fig, ax, groups, avoid=(), markers=()) -> int:
    """Label point groups, the most cycles first, where a label overlaps no other label and no
    ``avoid`` artist and stays inside the axes; return how many were placed.

    The layout is settled first (one draw), and the labels are kept out of it, so the boxes
    measured here are where the labels are drawn.
    """
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    taken = [a.get_window_extent(renderer) for a in avoid]
    for px, py in ax.transData.transform(list(markers)).reshape(-1, 2):
        taken.append(Bbox.from_extents(px - _POINT_HALF, py - _POINT_HALF,
                                       px + _POINT_HALF, py + _POINT_HALF))
    placed = 0
    for names, x, y, _ in sorted(groups, key=lambda g: -g[3]):
        text = _group_label(names)
        for dx, dy, ha in _LABEL_OFFSETS:
            label = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy),
                                fontsize=7, ha=ha)
            label.set_in_layout(False)
            box = label.get_window_extent(renderer)
            fits = (inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0
                    and box.y1 <= inside.y1)
            if fits and not any(box.overlaps(t) for t in taken):
                taken.append(box)
                placed += 1
                break
            label.remove()
    return placed


def resource_budget(design, board, synthesis=None) -> list[dict]:
    """Return one row per resource: ``resource``, ``budget``, ``model``, ``yosys`` (or None).

    Budgets are the board's; where the board has UltraRAM, BRAM counts it as its equivalent
    in block RAMs (each 288 Kb URAM holds ``288 // bram_block_kbits`` blocks' worth), as the
    search's fit test does, and Yosys's URAM count is folded in the same way.
    """
    per_uram = board.URAM_BLOCK_KBITS // board.bram_block_kbits if board.uram_blocks else 0
    bram_label = "BRAM" if not per_uram else f"BRAM (+URAM as {per_uram} blocks)"
    budgets = {"dsp": ("DSP", board.dsp), "lut": ("LUT", board.lut), "ff": ("FF", board.ff),
               "bram_blocks": (bram_label, board.bram_blocks + per_uram * board.uram_blocks)}
    rows = []
    for field, (label, budget) in budgets.items():
        yosys = None
        if synthesis is not None and synthesis.get(field) is not None:
            yosys = synthesis[field]
            if field == "bram_blocks":
                yosys += per_uram * (synthesis.get("uram_blocks") or 0)
        rows.append({"field": field, "resource": label, "budget": budget,
                     "model": design.resources[field], "yosys": yosys})
    return rows


def resource_plot(design, board, synthesis=None) -> Figure:
    """Horizontal bars: each resource as % of the board's budget, model and (if run) Yosys."""
    rows = resource_budget(design, board, synthesis)
    fig = _figure(7.5, 3.6)
    ax = fig.add_subplot()
    height = 0.38 if synthesis is not None else 0.6
    worst = 100.0
    for i, row in enumerate(rows):
        y = len(rows) - 1 - i
        series = [("model", row["model"], "#0072B2")]
        if synthesis is not None:
            series.append(("Yosys", row["yosys"], "#E69F00"))
        for k, (name, used, colour) in enumerate(series):
            if used is None:
                continue
            offset = (k - (len(series) - 1) / 2) * height
            pct = 100.0 * used / row["budget"] if row["budget"] else 0.0
            worst = max(worst, pct)
            ax.barh(y + offset, pct, height=height * 0.95, color=colour,
                    label=("explorer's model" if name == "model" else name)
                    if i == 0 else None)
            count = f"{used:,.0f}" if float(used).is_integer() else f"{used:,.1f}"
            ax.annotate(f"{count} / {row['budget']:,} ({pct:.1f}%)", (pct, y + offset),
                        textcoords="offset points", xytext=(3, 0), va="center", fontsize=7)
    ax.axvline(100, color="red", linewidth=1.2, label="board budget")
    ax.set_yticks(range(len(rows)), [r["resource"] for r in reversed(rows)])
    ax.set_xlim(0, worst * 1.35)
    ax.set_xlabel("% of the board's budget")
    flow = f", Yosys flow {synthesis.get('flow')}" if synthesis is not None else ""
    ax.set_title(f"{design.config}: resources on {board.name} ({board.part}{flow})",
                 fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return fig


def pareto_plot(design) -> Figure:
    """The latency-power front of the searched hardware points, and the chosen design.

    Front points are coloured by their DSP count and joined by the staircase that bounds the
    dominated region; a few are labelled with their array shape and units (``W2``: Winograd
    m = 2, ``FFT8``: 8-point FFT).
    """
    return _front_plot(design, design.pareto, "power_w", design.power_w, "power (W)",
                       "latency-power", "pareto")


def chosen_area(design, board) -> float:
    """The chosen design's area: the share of the board's most used resource (as
    design.json's ``pareto_area`` counts it)."""
    from dse.search import board_shares

    return float(max(board_shares(design.resources, board)))


def pareto_area_plot(design, board) -> Figure:
    """The latency-area front (design.json ``pareto_area``: area is the share of the board's
    most used resource), and the chosen design; drawn as :func:`pareto_plot`."""
    return _front_plot(design, design.pareto_area, "area", chosen_area(design, board),
                       "area (share of the board's most used resource)", "latency-area",
                       "pareto_area")


def _front_plot(design, points, key, chosen, ylabel, kind, source) -> Figure:
    front = sorted(points, key=lambda p: p["latency_ms"])
    fig = _figure(7.5, 5.0)
    ax = fig.add_subplot()
    if front:
        xs = [p["latency_ms"] for p in front]
        ys = [p[key] for p in front]
        ax.step(xs, ys, where="post", color="#777777", linewidth=0.8, zorder=1)
        sc = ax.scatter(xs, ys, c=[p.get("dsp", 0) for p in front], cmap="viridis", s=30,
                        zorder=2, edgecolor="black", linewidth=0.4,
                        label=f"Pareto front ({len(front)} points)")
        fig.colorbar(sc, ax=ax, label="DSPs of the point")
        step = max(1, len(front) // 8)
        for i, p in enumerate(front):
            if i % step == 0 or i == len(front) - 1:
                units = "".join(f" {tag}{p[key]}" for key, tag in
                                (("winograd_m", "W"), ("fft_size", "FFT")) if p.get(key))
                ax.annotate(f"{p['rows']}x{p['cols']}{units}", (p["latency_ms"], p[key]),
                            textcoords="offset points", xytext=(4, 4), fontsize=7)
    else:
        ax.text(0.5, 0.6, f"design.json has no {source}", transform=ax.transAxes,
                ha="center", fontsize=9)
    hw = design.hardware
    ax.scatter([design.latency_ms], [chosen], marker="*", s=220, color="red",
               edgecolor="black", linewidth=0.6, zorder=3,
               label=f"chosen ({design.objective}): {hw['rows']}x{hw['cols']}")
    latencies = [p["latency_ms"] for p in front] + [design.latency_ms]
    if max(latencies) > 20 * min(latencies):       # wide fronts span decades of latency
        ax.set_xscale("log")
        _plain_log_labels(ax.xaxis)
    else:
        ax.ticklabel_format(axis="x", useOffset=False, style="plain")
    ax.set_xlabel("latency per inference (ms)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{design.config}: {kind} front of {design.hardware_points:,} "
                 f"searched points\n(the explorer's model, design.json {source})", fontsize=10)
    ax.grid(which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="upper right")
    return fig


def verify_plot(verify: dict) -> Figure:
    """Predicted against measured cycles per simulated layer, and the relative error.

    ``verify`` is the verify.json document; a layer whose output was not bit-exact is drawn
    with a red edge and named so in its tick label.
    """
    layers = verify["layers"]
    n = len(layers)
    fig = _figure(max(6.5, 0.5 * n + 2.5), 5.6)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    width = 0.38
    names, errors = [], []
    for x, layer in enumerate(layers):
        pred, meas = layer["predicted_cycles"], layer["measured_cycles"]
        edge = "red" if layer.get("bit_exact") is False else "black"
        top.bar(x - width / 2, pred, width, color="#0072B2", edgecolor=edge, linewidth=0.6,
                label="predicted: design.json compute_cycles" if x == 0 else None)
        top.bar(x + width / 2, meas, width, color="#E69F00", edgecolor=edge, linewidth=0.6,
                label="measured: Verilator, the datapath's cycle counter" if x == 0 else None)
        errors.append(100.0 * (pred - meas) / meas if meas else 0.0)
        suffix = " NOT exact" if layer.get("bit_exact") is False else ""
        names.append(f"{layer['name']} ({layer.get('algorithm', '?')}){suffix}")
    top.set_ylabel("cycles")
    top.set_title("predicted (explorer's lowering formula) vs measured (Verilator) cycles "
                  "per layer, data on chip", fontsize=10)
    top.legend(fontsize=8)
    top.grid(axis="y", alpha=0.3)
    bottom.bar(range(n), errors, color=["#D55E00" if abs(e) > 10 else "#009E73"
                                        for e in errors])
    for x, e in enumerate(errors):         # write the value: a zero error draws no bar
        bottom.annotate(f"{e:+.1f}%", (x, e), textcoords="offset points",
                        xytext=(0, 3 if e >= 0 else -10), ha="center", fontsize=8)
    bottom.axhline(0, color="black", linewidth=0.8)
    bottom.set_ylabel("(pred - meas) / meas, %")
    bottom.set_title("relative error of the prediction (orange: beyond 10%)", fontsize=9)
    bottom.grid(axis="y", alpha=0.3)
    bottom.set_xticks(range(n), names, rotation=45, ha="right", fontsize=8)
    return fig
