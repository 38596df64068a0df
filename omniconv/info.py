"""``omniconv info NETWORK [--json]``: layers, shapes and MAC counts of a network.

NETWORK is a built-in name or a path (``.onnx``, ``.yaml``/``.yml``, ``.csv``).  The JSON
document is ``{"network", "input", "layers": [{"name", "op", "inputs", "in_shape",
"out_shape", "kernel", "stride", "padding", "groups", "macs"}], "total_macs"}`` with shapes as
``[C, H, W]`` and every node listed.
"""

from __future__ import annotations

import json
import sys

from dse.load import load_network
from dse.network import Network

__all__ = ["add_arguments", "run", "network_summary", "format_table"]

#: Ops whose kernel/stride column is meaningful.
_WINDOW_OPS = ("conv", "maxpool", "avgpool", "gap")


def add_arguments(parser) -> None:
    """Add ``info``'s arguments to *parser*."""
    parser.add_argument("network", metavar="NETWORK",
                        help="built-in name (e.g. vgg16, tiny) or a .onnx/.yaml/.csv path")
    parser.add_argument("--json", action="store_true", help="print a JSON document")


def network_summary(net: Network) -> dict:
    """Return the ``info --json`` document of *net*."""
    layers = []
    for layer in net.layers:
        layers.append({
            "name": layer.name,
            "op": layer.op,
            "inputs": list(layer.inputs),
            "in_shape": list(layer.in_shape),
            "out_shape": list(layer.out_shape),
            "kernel": list(layer.kernel),
            "stride": list(layer.stride),
            "padding": list(layer.padding),
            "groups": layer.groups,
            "macs": layer.macs,
        })
    return {"network": net.name, "input": list(net.input_shape), "layers": layers,
            "total_macs": net.total_macs}


def _window(layer) -> str:
    if layer.op not in _WINDOW_OPS:
        return ""
    kh, kw = layer.kernel
    sh, sw = layer.stride
    kernel = f"{kh}x{kw}"
    stride = f"/{sh}" if sh == sw else f"/{sh}x{sw}"
    text = kernel + stride
    if layer.groups > 1:
        text += f" g{layer.groups}"
    return text


def format_table(net: Network) -> str:
    """Return *net* as an aligned text table (name, op, output shape, kernel/stride, MACs)."""
    header = ("name", "op", "out shape", "kernel/stride", "MACs")
    rows = [(layer.name, layer.op, "x".join(map(str, layer.out_shape)), _window(layer),
             f"{layer.macs:,}" if layer.macs else "") for layer in net.layers]
    total = ("total", "", "", "", f"{net.total_macs:,}")
    widths = [max(len(r[i]) for r in [header, total, *rows]) for i in range(len(header))]

    def line(row) -> str:
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths)]
        cells.append(row[-1].rjust(widths[-1]))
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    title = (f"{net.name}: input {'x'.join(map(str, net.input_shape))}, {len(net.layers)} "
             f"layers, {net.total_macs / 1e9:.3f} GMAC")
    return "\n".join([title, line(header), rule, *map(line, rows), rule, line(total)])


def run(args) -> int:
    """Print the network's layers (a table, or JSON with ``--json``); return 0."""
    net = load_network(args.network)
    if args.json:
        json.dump(network_summary(net), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(format_table(net))
    return 0
