"""``omniconv sweep``: the explorer over networks × boards × precisions × objectives, on Dask.

Each combination is one independent search (:func:`dse.search.search`, the same as
``omniconv dse`` with the defaults of a config: every algorithm and dataflow, no pins).  The
searches run as Dask tasks: on a local cluster of worker processes by default
(``--workers``), or on an existing cluster (``--scheduler ADDRESS``, e.g.
``tcp://10.0.0.5:8786`` from ``dask scheduler``), so a sweep too large for one machine
spreads over several.  Progress is printed as results arrive.

Writes ``OUT/sweep.csv`` (one row per combination, :data:`COLUMNS`; a combination the
explorer refuses, e.g. a network too large for a small board, gets its one-line reason in
``error`` and empty figures) and ``OUT/sweep.png`` (latency per network and board, one
panel per precision and objective; needs matplotlib, the ``report`` extra).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path

__all__ = ["COLUMNS", "add_arguments", "run", "sweep_point", "sweep_on_dask"]

#: sweep.csv's columns, in order.
COLUMNS = ("network", "board", "precision", "objective", "latency_ms", "total_cycles",
           "power_w", "energy_mj", "rows", "cols", "winograd_m", "winograd_lanes", "fft_size",
           "dsp", "lut", "ff", "bram_blocks", "search_seconds", "error")

DEFAULTS = {"networks": "vgg16,resnet18,googlenet,alexnet", "boards": "zcu102,zu2,ecp5-85k",
            "precisions": "8,16", "objectives": "latency"}


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--networks", default=DEFAULTS["networks"],
                        help="comma-separated networks: built-in names or model paths")
    parser.add_argument("--boards", default=DEFAULTS["boards"],
                        help="comma-separated boards: names in boards/ or board files")
    parser.add_argument("--precisions", default=DEFAULTS["precisions"],
                        help="comma-separated precisions (8, 16)")
    parser.add_argument("--objectives", default=DEFAULTS["objectives"],
                        help="comma-separated objectives (latency, energy, edp)")
    parser.add_argument("--out", type=Path, default=Path("build") / "sweep",
                        help="output folder for sweep.csv and sweep.png")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="address of an existing Dask scheduler (default: start a local "
                             "cluster of worker processes)")
    parser.add_argument("--workers", type=int, default=2,
                        help="worker processes of the local cluster")


def sweep_point(network: str, board: str, precision: int, objective: str) -> dict:
    """One row of the sweep: the explorer's design for this combination, or its refusal."""
    from dse.board import load_board
    from dse.errors import InputError
    from dse.load import load_network
    from dse.search import search

    row = {"network": network, "board": board, "precision": precision,
           "objective": objective}
    try:
        net = load_network(network)
        design = search(net, load_board(board), config=f"sweep {network} {board}",
                        precision=precision, objective=objective, progress=False)
    except InputError as exc:
        return {**row, "error": str(exc)}
    hw, res = design.hardware, design.resources
    row.update(latency_ms=round(design.latency_ms, 6), total_cycles=design.total_cycles,
               power_w=round(design.power_w, 4), energy_mj=round(design.energy_mj, 6),
               search_seconds=round(design.search_seconds, 3), error="",
               **{k: hw.get(k) for k in ("rows", "cols", "winograd_m", "winograd_lanes",
                                          "fft_size")},
               **{k: res.get(k) for k in ("dsp", "lut", "ff", "bram_blocks")})
    return row


def _check(args) -> list[tuple]:
    from dse.board import load_board
    from dse.errors import InputError
    from dse.load import load_network

    combos = []
    networks, boards = _list(args.networks), _list(args.boards)
    precisions, objectives = _list(args.precisions), _list(args.objectives)
    for field, values in (("--networks", networks), ("--boards", boards),
                          ("--precisions", precisions), ("--objectives", objectives)):
        if not values:
            raise InputError("omniconv sweep", field, "must name at least one value")
    bad = [p for p in precisions if p not in ("8", "16")]
    if bad:
        raise InputError("omniconv sweep", "--precisions", f"must be 8 or 16, not {bad[0]!r}")
    bad = [o for o in objectives if o not in ("latency", "energy", "edp")]
    if bad:
        raise InputError("omniconv sweep", "--objectives",
                         f"must be latency, energy or edp, not {bad[0]!r}")
    for network in networks:             # fail fast, before any worker starts
        load_network(network)
    for board in boards:
        load_board(board)
    for network in networks:
        for board in boards:
            for precision in precisions:
                for objective in objectives:
                    combos.append((network, board, int(precision), objective))
    if args.workers < 1:
        raise InputError("omniconv sweep", "--workers", f"must be at least 1, not "
                                                       f"{args.workers}")
    return combos


def sweep_on_dask(combos, *, scheduler: str | None = None, workers: int = 2,
              log=print) -> list[dict]:
    """Run :func:`sweep_point` for every combination on Dask; rows in ``combos`` order."""
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
        client = Client(cluster)
    else:
        client = Client(scheduler, timeout="20s")
    try:
        futures = [client.submit(sweep_point, *combo, pure=False) for combo in combos]
        index = {f.key: i for i, f in enumerate(futures)}
        rows = [None] * len(futures)
        start = time.perf_counter()
        for done, future in enumerate(as_completed(futures), 1):
            row = future.result()
            rows[index[future.key]] = row
            what = (f"{row['latency_ms']:.3f} ms" if not row["error"]
                    else f"refused: {row['error']}")
            log(f"[{done}/{len(futures)}] {row['network']} on {row['board']}, "
                f"int{row['precision']}, {row['objective']}: {what} "
                f"({time.perf_counter() - start:.1f} s)")
        return rows
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _csv_text(rows) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in COLUMNS})
    return out.getvalue()


def _plot(rows, path: Path) -> bool:
    """Latency per network (groups) and board (bars), one panel per precision × objective;
    False when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    from dse.design import write_bytes_atomic

    panels = sorted({(r["precision"], r["objective"]) for r in rows})
    networks = list(dict.fromkeys(r["network"] for r in rows))
    boards = list(dict.fromkeys(r["board"] for r in rows))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    width = 0.8 / max(1, len(boards))
    for ax, (precision, objective) in zip(axes[0], panels):
        for j, board in enumerate(boards):
            values = []
            for network in networks:
                hit = [r for r in rows if (r["network"], r["board"], r["precision"],
                                           r["objective"]) == (network, board, precision,
                                                               objective)]
                values.append(hit[0]["latency_ms"] if hit and not hit[0]["error"]
                              else float("nan"))
            ax.bar([i + j * width for i in range(len(networks))], values, width, label=board)
        ax.set_xticks([i + width * (len(boards) - 1) / 2 for i in range(len(networks))])
        ax.set_xticklabels(networks, rotation=30, ha="right")
        ax.set_yscale("log")
        ax.set_ylabel("latency per inference (ms, explorer's model)")
        ax.set_title(f"int{precision}, objective {objective}")
        ax.legend(fontsize=8)
    fig.suptitle("omniconv sweep: the explorer's design per network and board "
                 "(missing bar: refused)", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())
    return True


def run(args) -> int:
    from dse.design import write_text_atomic

    combos = _check(args)
    where = args.scheduler or f"a local cluster of {args.workers} worker processes"
    print(f"sweep: {len(combos)} searches on {where}", file=sys.stderr, flush=True)
    rows = sweep_on_dask(combos, scheduler=args.scheduler, workers=args.workers,
                     log=lambda line: print(line, file=sys.stderr, flush=True))
    csv_path = args.out / "sweep.csv"
    write_text_atomic(csv_path, _csv_text(rows))
    written = [str(csv_path)]
    if _plot(rows, args.out / "sweep.png"):
        written.append(str(args.out / "sweep.png"))
    refused = sum(1 for r in rows if r["error"])
    print(f"wrote {', '.join(written)}: {len(rows)} searches, {refused} refused")
    return 0
