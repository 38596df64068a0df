"""A whole network and the explorer's design as one program for the overlay top.

:func:`compile_network` walks a :class:`dse.network.Network` in its (topological) order and
turns it into the straight chain that :func:`dse.compiler.program.build_network_program`
runs, on the overlay of the design (``OverlayParams(**design.hardware)`` with the buffer
sizes of :func:`dse.cost.resources.overlay_limits`, the ones overlay.v is written with):

* ``conv`` → :func:`dse.compiler.plan_conv` with the design's algorithm and dataflow of that
  layer (design.json's ``layers`` entry of the same name) and the design's precision; the
  requantisation is ``plan_conv``'s default (:func:`dse.compiler.default_requant`);
* ``maxpool`` / ``avgpool`` → :class:`~dse.compiler.program.PoolLayer` ``max`` / ``avg``
  (equal strides, dilation 1, an output size the floor rule gives: a ``ceil_mode`` pool
  whose size differs is refused; average pools count their padding, ``count_include_pad``);
* ``gap`` → ``PoolLayer("gavg")``;
* ``add`` of two inputs → ``PoolLayer("add", source=…)``: one input must be the chain's
  current tensor (the previous layer's output), the other any earlier tensor of the chain;
* ``relu`` → the ReLU of its producer's requantisation (``plan_conv(relu=True)`` or
  ``PoolLayer(relu=True)``), as the explorer folds it (``dse.search.FOLDED_OPS``): its input
  must be the previous layer's output, and no other layer may read that output before the
  ReLU (the un-rectified tensor is never written);
* ``identity``, and ``flatten`` of a C×1×1 tensor, name the tensor they read (no
  instruction).

Everything else is refused with one :class:`ValueError` naming the layer and the reason:
``fc``, ``concat``, ``relu6``, ``sigmoid``, ``flatten`` of a larger tensor, grouped
convolutions, a design choice of FFT or the ``is`` dataflow (the top runs the im2col,
kn2row and Winograd datapaths and stores ``ws`` / ``os`` words only), and **branches** the
chain cannot express: a layer whose (first) input is not the previous layer's output, a
second ``input`` node.  A conv the design gives im2col from host patches (variant
``patches``, the first layer's usual choice) is planned as im2col from the input tensor by
default, since the top reads tensors, not patches (``patches="refuse"`` refuses it instead).

**Weights.**  The IR carries no weights (``dse.network.Layer`` has none), so they come from
``weights`` (conv layer name → N×C×R×S integers) or, for each conv layer it does not name,
are drawn in network order from ``numpy.random.default_rng(seed)``, uniform over the
precision's range (int8: −128 … 127).

**Golden outputs** are ``sim.overlay_golden.golden_outputs``'s (``dse`` imports no ``sim``):
every tensor of the chain from the reference models on whole tensors, independent of the
program.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from dse.compiler.plan import plan_conv
from dse.compiler.program import PoolLayer, build_network_program
from dse.cost.resources import overlay_limits
from dse.network import Network
from rtl.params import DatapathLimits, OverlayParams

__all__ = ["PATCHES", "compile_network", "design_overlay"]

#: What :func:`compile_network` does with a conv the design gives im2col from host patches.
PATCHES = ("tensor", "refuse")
#: Ops that name the tensor they read without an instruction (``flatten``: of C×1×1 only).
_ALIASES = ("identity", "flatten")
#: The datapath algorithms and dataflows the overlay top runs from tensors.
_ALGORITHMS = ("im2col", "kn2row", "winograd")
_DATAFLOWS = ("ws", "os")


@dataclass
class _Entry:
    """One layer of the chain while it is being built: its IR name, the conv layer or the
    pool layer's fields, and whether a ReLU was folded into it."""

    name: str
    layer: object                 # the dse.network.Layer
    pool: dict | None = None      # PoolLayer keyword arguments (None: a conv)
    relu: bool = False


def design_overlay(design) -> tuple[OverlayParams, DatapathLimits]:
    """The overlay a design runs on: ``OverlayParams(**design.hardware)`` and the
    ``DatapathLimits`` of :func:`dse.cost.resources.overlay_limits` at the design's
    precision (the buffer sizes overlay.v is written with)."""
    hardware = getattr(design, "hardware", None)
    if not isinstance(hardware, Mapping):
        raise TypeError(f"design must be a dse.design.Design (with a hardware dict), not "
                        f"{design!r:.60}")
    params = OverlayParams(**hardware)
    precision = getattr(design, "precision", 8)
    if precision not in (8, 16):
        raise ValueError(f"design precision must be 8 or 16, not {precision!r}")
    return params, DatapathLimits(**overlay_limits(params, precision))


def _refuse(layer, reason: str) -> ValueError:
    return ValueError(f"layer {layer.name!r} ({layer.op}): {reason}")


def _chain(network: Network) -> tuple[list[_Entry], dict]:
    """The chain's entries and, per IR layer name, the chain tensor holding its output
    (0 the network input, j + 1 entry j's output); refusals as the module docstring says."""
    entries: list[_Entry] = []
    tensor_of: dict[str, int] = {}
    for layer in network.layers:
        if layer.op == "input":
            if tensor_of:
                raise _refuse(layer, "a second network input is a branch the chain cannot "
                                     "express (one input tensor)")
            tensor_of[layer.name] = 0
            continue
        if not tensor_of:
            raise _refuse(layer, "must follow the network's input layer")
        current = len(entries)                       # the chain's current tensor
        ins = [tensor_of[name] for name in layer.inputs]
        if layer.op in _ALIASES:
            if layer.op == "flatten" and tuple(layer.in_shape[1:]) != (1, 1):
                raise _refuse(layer, f"flattening a {layer.in_shape} tensor changes its "
                                     f"layout (HWC in DRAM, CHW flattened); only C×1×1 "
                                     f"tensors are flattened for free")
            tensor_of[layer.name] = ins[0]
            continue
        if layer.op == "relu":
            if ins[0] != current or current == 0:
                raise _refuse(layer, "a ReLU runs as its producer's requantiser ReLU, so its "
                                     "input must be the output of the layer just before it "
                                     "(a conv, pool or add), not an earlier tensor or the "
                                     "network input")
            names = {n for n, t in tensor_of.items() if t == current}
            readers = {c.name for n in names for c in network.consumers(n)} - names
            if readers - {layer.name}:
                raise _refuse(layer, f"cannot fold into {entries[-1].name!r}: its "
                                     f"un-rectified output is also read by "
                                     f"{', '.join(sorted(readers - {layer.name}))}")
            entries[-1].relu = True
            tensor_of[layer.name] = current
            continue
        if layer.op in ("conv", "maxpool", "avgpool", "gap") and ins[0] != current:
            raise _refuse(layer, f"its input {layer.inputs[0]!r} is not the previous "
                                 f"layer's output: a branch the chain cannot express (each "
                                 f"layer reads the one before it; only add reads an "
                                 f"earlier tensor)")
        if layer.op == "conv":
            if layer.groups != 1:
                raise _refuse(layer, f"grouped convolutions ({layer.groups} groups) are not "
                                     f"run by the overlay top")
            entries.append(_Entry(layer.name, layer))
        elif layer.op in ("maxpool", "avgpool"):
            if layer.stride[0] != layer.stride[1]:
                raise _refuse(layer, f"the pool engine takes one stride, not {layer.stride}")
            if layer.dilation != (1, 1):
                raise _refuse(layer, f"the pool engine has no dilation, not {layer.dilation}")
            pt, pl, pb, pr = layer.padding
            kwargs = {"mode": "max" if layer.op == "maxpool" else "avg",
                      "kernel": layer.kernel, "stride": layer.stride[0],
                      "pads": (pt, pb, pl, pr)}
            try:
                out = PoolLayer(**kwargs).out_shape(layer.in_shape)
            except (TypeError, ValueError) as exc:
                raise _refuse(layer, f"the pool engine cannot run it: {exc}") from None
            if out != tuple(layer.out_shape):
                raise _refuse(layer, f"its output {layer.out_shape} (ceil_mode) is not the "
                                     f"pool engine's {out}")
            entries.append(_Entry(layer.name, layer, kwargs))
        elif layer.op == "gap":
            entries.append(_Entry(layer.name, layer, {"mode": "gavg"}))
        elif layer.op == "add":
            if len(ins) != 2:
                raise _refuse(layer, f"the pool engine adds two tensors, not {len(ins)}")
            if current not in ins:
                raise _refuse(layer, f"neither input ({', '.join(layer.inputs)}) is the "
                                     f"previous layer's output: a branch the chain cannot "
                                     f"express")
            source = ins[1] if ins[0] == current else ins[0]
            entries.append(_Entry(layer.name, layer, {"mode": "add", "source": source}))
        else:
            reasons = {"fc": "fully connected layers do not run on the overlay top",
                       "concat": "concatenation is a branch the chain cannot express",
                       "relu6": "the requantiser clamps at 0 only (ReLU), not at 6",
                       "sigmoid": "the overlay top has no sigmoid"}
            raise _refuse(layer, reasons.get(layer.op, "not an op the overlay top runs"))
        tensor_of[layer.name] = len(entries)
    if not entries:
        raise ValueError(f"network {network.name!r} must have a layer the overlay top runs "
                         f"(conv, pool or add), not none")
    return entries, tensor_of


def _choices(design, layer, patches: str) -> tuple[str, str, str | None]:
    """(algorithm, dataflow, plan_conv variant) of a conv layer from the design."""
    found = [p for p in design.layers if getattr(p, "name", None) == layer.name]
    if len(found) != 1:
        raise _refuse(layer, "the design has no choice for it (design.layers names "
                             "every conv layer once)")
    choice = found[0]
    algorithm, dataflow, variant = choice.algorithm, choice.dataflow, choice.variant
    if algorithm not in _ALGORITHMS:
        raise _refuse(layer, f"the design chose {algorithm}; the overlay top runs the "
                             f"{', '.join(_ALGORITHMS[:-1])} and {_ALGORITHMS[-1]} "
                             f"datapaths only")
    if dataflow not in _DATAFLOWS:
        raise _refuse(layer, f"the design chose the {dataflow!r} dataflow; the store writes "
                             f"{' and '.join(_DATAFLOWS)} output words only (is needs a "
                             f"relayout)")
    if variant == "patches":
        if patches == "refuse":
            raise _refuse(layer, "the design reads it from host im2col patches, which the "
                                 "overlay top does not load (patches='tensor' plans it as "
                                 "im2col from the input tensor)")
        variant = None
    return algorithm, dataflow, variant or None


def compile_network(network, design, x, weights=None, *, seed: int = 0, token_depth: int = 2,
                    base: int = 0, patches: str = "tensor"):
    """A network and its design as one overlay-top program, with golden outputs (module
    docstring).

    Parameters
    ----------
    network:
        A :class:`dse.network.Network` (checked).
    design:
        Its :class:`dse.design.Design` (``omniconv.flow.explore`` / ``dse.search.search``):
        ``hardware``, ``precision`` and a ``layers`` entry per conv layer.
    x:
        The network input, C×H×W integers of the design's precision.
    weights:
        None, or a mapping of conv layer names to N×C×R×S integer weights; conv layers it
        does not name take seeded random weights.
    seed:
        Seed of the random weights.
    token_depth, base:
        As :func:`dse.compiler.program.build_network_program` takes them.
    patches:
        ``"tensor"``: a conv the design reads from host patches is planned as im2col from
        its input tensor; ``"refuse"``: it is refused.

    Returns
    -------
    (NetworkProgram, dict)
        The program (``lp.plans[i]`` is chain layer i) and the weights it was built with:
        chain layer i's name (the conv, pool or add layer; a ReLU folded into it is in it) →
        its N×C×R×S weights (None for a pool layer), in chain order —
        ``sim.overlay_golden.golden_outputs(lp, x, list(w.values()), list(w))`` computes
        what ``decode_output(lp, dram, layer=i)`` must equal.

    Raises
    ------
    TypeError, ValueError
        For arguments of the wrong kind, and for a layer the chain cannot run ("layer
        'name' (op): reason"; errors of the program builder name the layer too).
    """
    if not isinstance(network, Network):
        raise TypeError(f"network must be a dse.network.Network, not {network!r:.60}")
    network.check()
    if patches not in PATCHES:
        raise ValueError(f"patches must be one of {', '.join(PATCHES)}, not {patches!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    params, limits = design_overlay(design)
    precision = design.precision
    if not isinstance(getattr(design, "layers", None), (tuple, list)):
        raise TypeError(f"design.layers must be a sequence of layer plans, not "
                        f"{getattr(design, 'layers', None)!r:.60}")
    x = np.asarray(x)
    if x.shape != tuple(network.input_shape) or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"x must be integers of the network's input shape "
                         f"{tuple(network.input_shape)}, not {x.dtype} of shape {x.shape}")
    if weights is None:
        weights = {}
    if not isinstance(weights, Mapping):
        raise TypeError(f"weights must be a mapping of conv layer names to arrays, not "
                        f"{weights!r:.60}")
    convs = {layer.name for layer in network.convs()}
    unknown = sorted(set(weights) - convs)
    if unknown:
        raise ValueError(f"weights must name conv layers of the network, not "
                         f"{', '.join(map(repr, unknown))}")

    entries, _ = _chain(network)
    if any(e.pool for e in entries) and not (precision == 8 and params.rows == params.cols):
        first = next(e for e in entries if e.pool)
        raise _refuse(first.layer, f"the pool engine needs an 8-bit design on an overlay with "
                                   f"rows == cols, not int{precision} on "
                                   f"{params.rows}x{params.cols}")
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (precision - 1)), 1 << (precision - 1)
    plans, ws = [], []
    for e in entries:
        if e.pool is not None:
            plans.append(PoolLayer(**e.pool, relu=e.relu))
            ws.append(None)
            continue
        layer = e.layer
        algorithm, dataflow, variant = _choices(design, layer, patches)
        shape = (layer.out_shape[0], layer.in_shape[0], *layer.kernel)
        if layer.name in weights:
            w = np.asarray(weights[layer.name])
            if w.shape != shape or not np.issubdtype(w.dtype, np.integer):
                raise ValueError(f"weights[{layer.name!r}] must be integers of shape {shape}, "
                                 f"not {w.dtype} of shape {w.shape}")
        else:
            w = rng.integers(lo, hi, shape)
        try:
            plan = plan_conv(layer, algorithm, dataflow, params, limits, relu=e.relu,
                             precision=precision, variant=variant)
        except ValueError as exc:
            raise _refuse(layer, f"cannot be planned: {exc}") from None
        plans.append(plan)
        ws.append(w)
    try:
        lp = build_network_program(plans, x, ws, params, limits, base=base,
                                   token_depth=token_depth)
    except ValueError as exc:
        names = [e.name for e in entries]
        message = re.sub(r"(plans|weights)\[(\d+)\]",
                         lambda m: f"layer {names[int(m.group(2))]!r} ({m.group(0)})",
                         str(exc))
        raise ValueError(message) from None
    return lp, dict(zip((e.name for e in entries), ws))
