"""Our own network format (docs/networks.md, "YAML"), read and written.

.. code-block:: yaml

    name: small                 # optional; default: the file's stem
    input: [3, 224, 224]        # C, H, W
    layers:                     # in order; `inputs` defaults to the previous layer
      - {name: conv1, op: conv, out_channels: 64, kernel: 3, stride: 1, padding: 1}
      - {name: pool1, op: maxpool, kernel: 2, stride: 2}
      - {name: fc, op: fc, out_features: 1000}

Every layer takes ``name`` (default ``<op>_<index>``), ``op`` and ``inputs`` (a name or a list),
plus the parameters its op accepts (:data:`dse.shapes.PARAM_OPS`).  Errors name the file and
the field as ``layers[3].kernel`` (0-based index into ``layers``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..network import OPS, Network, NetworkBuilder
from ..shapes import PARAM_OPS
from ..yamlio import check_keys, load_yaml

__all__ = ["import_yaml", "network_from_dict", "network_to_dict"]

_TOP_KEYS = ("name", "input", "layers")


def import_yaml(path: str | Path) -> Network:
    """Return the network described by the YAML file at *path*.

    Raises
    ------
    InputError
        The file is missing or malformed, or a layer is bad (unknown key or op, a shape
        that does not fit).
    """
    path = Path(path)
    return network_from_dict(load_yaml(path), source=path, default_name=path.stem)


def network_from_dict(doc, source: object = "<yaml>", default_name: str = "network") -> Network:
    """Return the network described by the parsed YAML document *doc*."""
    check_keys(source, "", doc, _TOP_KEYS, required=("input", "layers"))
    name = doc.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise InputError(source, "name", f"must be a non-empty string, not {name!r}")
    b = NetworkBuilder(name, doc["input"], source=source)
    layers = doc["layers"]
    if not isinstance(layers, list) or not layers:
        raise InputError(source, "layers", f"must be a non-empty list of layers, not {layers!r}")
    ops = [op for op in OPS if op != "input"]
    for i, entry in enumerate(layers):
        where = f"layers[{i}]"
        if not isinstance(entry, dict):
            raise InputError(source, where, f"must be a mapping, not {type(entry).__name__}")
        op = entry.get("op")
        if op not in ops:
            raise InputError(source, f"{where}.op",
                             f"must be one of {', '.join(ops)}, not {op!r}")
        check_keys(source, where, entry, ("name", "op", "inputs") + PARAM_OPS[op])
        params = {k: v for k, v in entry.items() if k not in ("name", "op", "inputs")}
        layer_name = entry.get("name", b.unique_name(f"{op}_{i}"))
        b.add(op, layer_name, entry.get("inputs"), where=where, **params)
    return b.build()


def network_to_dict(net: Network) -> dict:
    """Return *net* as a YAML-ready document that :func:`network_from_dict` reads back.

    Raises ValueError for a network with more than one ``input`` node (SCALE-Sim
    topologies), which the format cannot express.
    """
    sources = [layer for layer in net.layers if layer.op == "input"]
    if len(sources) != 1 or net.layers[0] is not sources[0]:
        raise ValueError(f"network must have exactly one input node, first, "
                         f"not {len(sources)}")
    source = sources[0].name
    layers = []
    previous = source
    for layer in net.layers[1:]:
        entry: dict = {"name": layer.name, "op": layer.op}
        inputs = [i for i in layer.inputs]
        if inputs != [previous]:
            entry["inputs"] = inputs if len(inputs) > 1 else inputs[0]
        params = PARAM_OPS[layer.op]
        if "out_channels" in params:
            entry["out_channels"] = layer.out_shape[0]
        if "out_features" in params:
            entry["out_features"] = layer.out_shape[0]
        if "kernel" in params:
            entry["kernel"] = list(layer.kernel)
            entry["stride"] = list(layer.stride)
            entry["padding"] = list(layer.padding)
        if "dilation" in params and layer.dilation != (1, 1):
            entry["dilation"] = list(layer.dilation)
        if "groups" in params and layer.groups != 1:
            entry["groups"] = layer.groups
        if "ceil_mode" in params and layer.ceil_mode:
            entry["ceil_mode"] = True
        layers.append(entry)
        previous = layer.name
    return {"name": net.name, "input": list(net.input_shape), "layers": layers}
