"""A whole network and the explorer's design as one program for the overlay top.

:func:`compile_network` walks a :class:`dse.network.Network` in its (topological) order and
turns it into the layers that :func:`dse.compiler.program.build_network_program` runs one
after the other, each reading any earlier tensor, on the overlay of the design
(``OverlayParams(**design.hardware)`` with the buffer sizes of
:func:`dse.cost.resources.overlay_limits`, the ones overlay.v is written with):

* ``conv`` → :func:`dse.compiler.plan_conv` with the design's algorithm and dataflow of that
  layer (design.json's ``layers`` entry of the same name) and the design's precision; the
  requantisation is ``plan_conv``'s default (:func:`dse.compiler.default_requant`);
* ``fc`` → the 1×1 convolution over the (C·H·W)×1×1 vector of its input tensor's bytes,
  planned with the design's choice for it (the explorer's geometry of an fc layer).  The
  tensor is HWC in DRAM, so the vector is in (y, x, c) order, while a framework flattens
  C×H×W in (c, y, x) order: the fc's weights (N × C·H·W, the framework's order) are
  reordered for the plan;
* ``maxpool`` / ``avgpool`` → :class:`~dse.compiler.program.PoolLayer` ``max`` / ``avg``
  (equal strides, dilation 1; a ``ceil_mode`` max pool whose windows reach past the input
  gets that much more padding at the bottom and right, which a max ignores, while a
  ``ceil_mode`` average pool whose size differs from the floor rule's is refused; average
  pools count their padding, ``count_include_pad``);
* ``gap`` → ``PoolLayer("gavg")``;
* ``add`` of two inputs → ``PoolLayer("add", source=…)`` (any two earlier tensors);
* ``concat`` → :class:`~dse.compiler.program.Concat`, **written in place**: each input's
  producer stores its output straight into its channel slice of the concatenation (no
  copy).  So each input must be a conv, fc, pool or add output (not the network input, not
  another concatenation) and joins one concatenation only;
* ``relu`` → the ReLU of its producer's requantisation (``plan_conv(relu=True)`` or
  ``PoolLayer(relu=True)``), as the explorer folds it (``dse.search.FOLDED_OPS``): no other
  layer may read the un-rectified tensor (it is never written);
* ``identity`` names the tensor it reads (no instruction), and so does ``flatten``: of a
  C×1×1 tensor always, of a larger one when only fc layers read it (they read the tensor's
  bytes as the vector).

Everything else is refused with one :class:`ValueError` naming the layer and the reason:
``relu6``, ``sigmoid``, grouped convolutions, a design choice of FFT or the ``is``
dataflow (the top runs the im2col, kn2row and Winograd datapaths and stores ``ws`` / ``os``
words only), a second ``input`` node, and the concatenations and flattens above.  A conv
the design gives im2col from host patches (variant ``patches``, the first layer's usual
choice) reads the patches the host writes into DRAM in place of the input tensor
(``patches="host"``, the default); ``patches="tensor"`` plans it as im2col from the input
tensor instead and ``patches="refuse"`` refuses it.

**Weights.**  The IR carries no weights (``dse.network.Layer`` has none), so they come from
``weights`` (conv layer name → N×C×R×S integers, fc layer name → N×K with K the input's
C·H·W) or, for each conv and fc layer it does not name, are drawn in network order from
``numpy.random.default_rng(seed)``, uniform over the precision's range (int8: −128 … 127).

**Golden outputs** are ``sim.overlay_golden.golden_outputs``'s (``dse`` imports no ``sim``):
every tensor from the reference models on whole tensors, independent of the program (an fc
layer's from the framework-order weights, so the reordering is checked too).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from dse.compiler.plan import plan_conv
from dse.compiler.qdq import channel_quant, concat_lut, gap_requant
from dse.qlinear import qadd_settings
from dse.compiler.program import (Concat, PoolLayer, _fits_halves, build_network_program,
                                  double_buffer_limits)
from dse.cost.resources import overlay_limits
from dse.network import Layer, Network
from rtl.params import DatapathLimits, OverlayParams, top_refusal
from rtl.pool_layout import pool_supported

__all__ = ["PATCHES", "compile_network", "design_overlay", "tensor_layers"]

#: What :func:`compile_network` does with a conv the design gives im2col from host patches.
PATCHES = ("host", "tensor", "refuse")
#: Ops that name the tensor they read without an instruction (``flatten``: of C×1×1 only).
_ALIASES = ("identity", "flatten")
#: The datapath algorithms and dataflows the overlay top runs from tensors.
_ALGORITHMS = ("im2col", "kn2row", "winograd")
_DATAFLOWS = ("ws", "os")


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


@dataclass
class _Entry:
    """One layer of the program while it is being built: its IR name, the IR layer, the
    tensor it reads (0 the network input, j + 1 entry j's output; None for a concat), the
    pool layer's fields or the concat's sources, and whether a ReLU was folded into it."""

    name: str
    layer: object                 # the dse.network.Layer
    input: int | None
    pool: dict | None = None      # PoolLayer keyword arguments
    sources: tuple | None = None  # a concat's tensors
    relu: bool = False

    @property
    def kind(self) -> str:
        return "concat" if self.sources is not None else "pool" if self.pool else "mac"


def _graph(network: Network, fuse: bool = True) -> tuple[list[_Entry], dict]:
    """The program's entries in network order and, per IR layer name, the tensor holding
    its output (0 the network input, j + 1 entry j's output); refusals as the module
    docstring says."""
    entries: list[_Entry] = []
    tensor_of: dict[str, int] = {}
    joined: set[int] = set()                     # tensors written into a concatenation
    for layer in network.layers:
        if layer.op == "input":
            if tensor_of:
                raise _refuse(layer, "a second network input (the program has one input "
                                     "tensor)")
            tensor_of[layer.name] = 0
            continue
        if not tensor_of:
            raise _refuse(layer, "must follow the network's input layer")
        ins = [tensor_of[name] for name in layer.inputs]
        if layer.op in _ALIASES:
            if layer.op == "flatten" and tuple(layer.in_shape[1:]) != (1, 1):
                readers = [c for c in network.consumers(layer.name) if c.op != "fc"]
                if readers:
                    raise _refuse(layer, f"flattening a {layer.in_shape} tensor changes its "
                                         f"layout (HWC in DRAM, CHW flattened) for "
                                         f"{readers[0].name!r}; only fully connected layers "
                                         f"read it flattened for free")
            tensor_of[layer.name] = ins[0]
            continue
        if layer.op == "relu" and not fuse:
            # unfused: a pass of its own, the pool engine's 1×1 max with its ReLU
            entries.append(_Entry(layer.name, layer, ins[0], {"mode": "max"}, relu=True))
            tensor_of[layer.name] = len(entries)
            continue
        if layer.op == "relu":
            t = ins[0]
            if t == 0 or entries[t - 1].kind == "concat":
                raise _refuse(layer, "a ReLU runs as its producer's requantiser ReLU, so its "
                                     "input must be a conv, fc, pool or add output, not the "
                                     "network input or a concatenation")
            names = {n for n, v in tensor_of.items() if v == t}
            readers = {c.name for n in names for c in network.consumers(n)} - names
            if readers - {layer.name} or t in joined:
                what = sorted(readers - {layer.name}) or ["a concatenation"]
                raise _refuse(layer, f"cannot fold into {entries[t - 1].name!r}: its "
                                     f"un-rectified output is also read by "
                                     f"{', '.join(what)}")
            entries[t - 1].relu = True
            tensor_of[layer.name] = t
            continue
        if layer.op == "conv":
            if layer.groups != 1:
                raise _refuse(layer, f"grouped convolutions ({layer.groups} groups) are not "
                                     f"run by the overlay top")
            entries.append(_Entry(layer.name, layer, ins[0]))
        elif layer.op == "fc":
            entries.append(_Entry(layer.name, layer, ins[0]))
        elif layer.op in ("maxpool", "avgpool"):
            if layer.stride[0] != layer.stride[1]:
                raise _refuse(layer, f"the pool engine takes one stride, not {layer.stride}")
            if layer.dilation != (1, 1):
                raise _refuse(layer, f"the pool engine has no dilation, not {layer.dilation}")
            pt, pl, pb, pr = layer.padding
            kwargs = {"mode": "max" if layer.op == "maxpool" else "avg",
                      "kernel": layer.kernel, "stride": layer.stride[0],
                      "pads": (pt, pb, pl, pr)}
            if layer.op == "maxpool":
                # ceil_mode: the last windows reach past the input; padding them at the
                # bottom and right (ignored by a max) gives the framework's output size
                _, h, w = layer.in_shape
                _, oh, ow = layer.out_shape
                (kh, kw), st = layer.kernel, layer.stride[0]
                pb += max(0, (oh - 1) * st + kh - (h + pt + pb))
                pr += max(0, (ow - 1) * st + kw - (w + pl + pr))
                kwargs["pads"] = (pt, pb, pl, pr)
            try:
                out = PoolLayer(**kwargs).out_shape(layer.in_shape)
            except (TypeError, ValueError) as exc:
                raise _refuse(layer, f"the pool engine cannot run it: {exc}") from None
            if out != tuple(layer.out_shape):
                raise _refuse(layer, f"its output {layer.out_shape} (ceil_mode) is not the "
                                     f"pool engine's {out}")
            entries.append(_Entry(layer.name, layer, ins[0], kwargs))
        elif layer.op == "gap":
            entries.append(_Entry(layer.name, layer, ins[0], {"mode": "gavg"}))
        elif layer.op == "add":
            if len(ins) != 2:
                raise _refuse(layer, f"the pool engine adds two tensors, not {len(ins)}")
            entries.append(_Entry(layer.name, layer, ins[0], {"mode": "add",
                                                              "source": ins[1]}))
        elif layer.op == "concat":
            for name, t in zip(layer.inputs, ins):
                why = ("is the network input" if t == 0 else
                       "is a concatenation" if entries[t - 1].kind == "concat" else
                       "joins another concatenation" if t in joined or ins.count(t) > 1
                       else None)
                if why:
                    raise _refuse(layer, f"its input {name!r} {why}: a concatenation is "
                                         f"written in place by the layers that produce its "
                                         f"inputs, each into one concatenation")
            joined.update(ins)
            entries.append(_Entry(layer.name, layer, None, sources=tuple(ins)))
        else:
            reasons = {"relu6": "the requantiser clamps at 0 only (ReLU), not at 6",
                       "sigmoid": "the overlay top has no sigmoid"}
            raise _refuse(layer, reasons.get(layer.op, "not an op the overlay top runs"))
        tensor_of[layer.name] = len(entries)
    if not any(e.kind != "concat" for e in entries):
        raise ValueError(f"network {network.name!r} must have a layer the overlay top runs "
                         f"(conv, fc, pool or add), not none")
    return entries, tensor_of


def fusions(network: Network, quant=None) -> list[dict]:
    """What :func:`compile_network` fuses, as design.json's ``fusion`` lists it: per ReLU
    ``{"kind": "activation", "layer", "into"}`` (run by its producer's requantiser), per
    concatenation ``{"kind": "concat", "layer", "in_place", "requantised"}`` (the inputs
    their producers write into its slices, and those a ``lut`` pass copies: ``quant``'s
    records, a quantised network's)."""
    entries, tensor_of = _graph(network)
    out = []
    for layer in network.layers:
        if layer.op == "relu":
            out.append({"kind": "activation", "layer": layer.name,
                        "into": entries[tensor_of[layer.name] - 1].name})
    for e in entries:
        if e.kind == "concat":
            rec = quant.layers[e.name] if quant is not None else None
            luts = ([concat_lut(q, rec.y) for q in rec.inputs] if rec is not None
                    else [None] * len(e.layer.inputs))
            out.append({"kind": "concat", "layer": e.name,
                        "in_place": [n for n, t in zip(e.layer.inputs, luts) if t is None],
                        "requantised": [n for n, t in zip(e.layer.inputs, luts)
                                        if t is not None]})
    return out


def tensor_layers(network: Network) -> dict[str, int]:
    """Per IR layer name the program layer of :func:`compile_network` whose output tensor
    holds that layer's output (a folded ReLU, a flatten or an identity name their
    producer's), −1 for the network input: where ``decode_output(lp, dram, layer=i)``
    reads it."""
    _, tensor_of = _graph(network)
    return {name: t - 1 for name, t in tensor_of.items()}


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
    if variant == "patches" and patches != "host":
        if patches == "refuse":
            raise _refuse(layer, "the design reads it from host im2col patches "
                                 "(patches='host' loads them, patches='tensor' plans it as "
                                 "im2col from the input tensor)")
        variant = None
    return algorithm, dataflow, variant or None


def _weights(layer, weights, rng, lo: int, hi: int) -> np.ndarray:
    """A conv layer's N×C×R×S or an fc layer's N×K weights: given, or drawn from ``rng``."""
    if layer.op == "fc":
        shape = (layer.out_shape[0], int(np.prod(layer.in_shape)))
    else:
        shape = (layer.out_shape[0], layer.in_shape[0], *layer.kernel)
    if layer.name not in weights:
        return rng.integers(lo, hi, shape)
    w = np.asarray(weights[layer.name])
    if w.shape != shape or not np.issubdtype(w.dtype, np.integer):
        raise ValueError(f"weights[{layer.name!r}] must be integers of shape {shape}, not "
                         f"{w.dtype} of shape {w.shape}")
    return w


def _half_plan(plan, layer, algorithm, dataflow, params, limits, **kwargs):
    """The plan of ``layer`` for half buffers (:func:`dse.compiler.program.
    double_buffer_limits`) that :func:`compile_network` may double-buffer it with, ``plan``
    being its plan for the whole buffers; None where there is none: a layer the whole
    buffers hold in one invocation has nothing to overlap, and one may not fit half the
    buffers.  ``kwargs`` go to ``plan_conv`` as for ``plan``."""
    if len(plan.invocations) <= 1:
        return None
    try:
        return plan_conv(layer, algorithm, dataflow, params, double_buffer_limits(limits),
                         **kwargs)
    except ValueError:
        return None                 # it does not fit half the buffers: single-buffered


def _buffering(plans, halves, timing):
    """Which plans :func:`compile_network` runs double-buffered: each layer of ``halves``
    (program layer → its :func:`_half_plan`) as it runs faster, by its cycles in the timing
    of the program single- and double-buffered (the layers run one after the other, so a
    layer's cycles are its own; double-buffered only where strictly fewer).
    ``timing(plans, double_buffer)`` returns ``dse.compiler.timing.program_timing`` of the
    program of ``plans`` (``build_network_program``'s ``double_buffer``).  Returns the
    plans (the half plan where it is double-buffered) and the ``double_buffer`` to build
    them with."""
    if not halves:
        return list(plans), False
    both = [halves.get(i, plan) for i, plan in enumerate(plans)]
    flags = tuple(i in halves for i in range(len(plans)))
    one = timing(list(plans), False).by_index()
    two = timing(both, flags).by_index()
    keep = {i for i in halves if two[i].cycles < one[i].cycles}
    return ([halves[i] if i in keep else plan for i, plan in enumerate(plans)],
            tuple(i in keep for i in range(len(plans))))


def compile_network(network, design, x, weights=None, *, seed: int = 0, token_depth: int = 2,
                    base: int = 0, patches: str = "host", image: bool = True,
                    double_buffer: bool = True, quant=None, fuse: bool = True):
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
    double_buffer:
        True (the default): double-buffer the conv and pool layers that gain by it
        (``build_network_program``'s ``double_buffer``).  A conv layer the whole buffers
        hold in one invocation has nothing to overlap; any other is planned again for half
        buffers (:func:`dse.compiler.program.double_buffer_limits`), and a pool layer whose
        bands fit half buffers is banded for them; each is double-buffered where
        ``dse.compiler.timing.program_timing`` gives it fewer cycles that way (halving the
        buffers can cut it into so many more invocations that it runs slower).
    patches:
        A conv the design reads from host patches: ``"host"`` plans it so (the image holds
        the patches in place of ``x``) where it is the only layer reading the input, else
        as ``"tensor"`` does, im2col from its input tensor; ``"refuse"`` refuses it.
    image:
        False: the program without its DRAM image (``x`` may be None, no weights are drawn
        and the returned weights are None): the instructions, tensors and segments, which
        fix the cycles and DRAM bytes, at a fraction of the cost.
    fuse:
        True (the default): fuse as the module docstring says -- each ReLU into its
        producer's requantiser, each concatenation written in place by its inputs'
        producers.  False: the same network without those fusions, for comparison -- each
        ReLU a pass of its own over its input tensor (the pool engine's 1×1 ``max`` with
        its ReLU), each concatenation's inputs written as tensors of their own and copied
        into its slices (``Concat.copy``).  Needs an overlay with the pool engine.
    quant:
        A quantised network's records (``dse.importers.onnx_qdq.QuantizedNetwork`` of this
        network), for a design whose overlay requantises per channel (``hardware.requant``
        f32): each conv and fc layer's int8 weights and :class:`~dse.compiler.program.
        ChannelQuant` come from its record (``dse.compiler.qdq.channel_quant``), ``x`` is the
        quantised input in the stored form (``dse.compiler.qdq``), and only the layers whose
        integer kernels the overlay computes as onnxruntime does are taken: conv, fc, max
        and global average pools, adds, concatenations (an input of another scale or zero
        point through the pool engine's ``lut`` table) and the ReLUs onnxruntime removes;
        average pools are refused (their float32 rescaling is not on the overlay yet).

    Returns
    -------
    (NetworkProgram, dict)
        The program (``lp.plans[i]`` is program layer i) and the weights it was built with:
        program layer i's name (the conv, fc, pool, add or concat layer; a ReLU folded into
        it is in it) → its N×C×R×S weights (an fc's N×C×H×W, the framework's order over its
        input tensor; None for a pool or concat layer), in program order —
        ``sim.overlay_golden.golden_outputs(lp, x, list(w.values()), list(w))`` computes
        what ``decode_output(lp, dram, layer=i)`` must equal.

    Raises
    ------
    TypeError, ValueError
        For arguments of the wrong kind, and for a layer the overlay top cannot run ("layer
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
    if top_refusal(params) is not None:
        raise ValueError(top_refusal(params))
    if not isinstance(double_buffer, bool):
        raise TypeError(f"double_buffer must be a bool, not {double_buffer!r}")
    halves = {}                     # program layer → its plan for half buffers
    precision = design.precision
    if not isinstance(getattr(design, "layers", None), (tuple, list)):
        raise TypeError(f"design.layers must be a sequence of layer plans, not "
                        f"{getattr(design, 'layers', None)!r:.60}")
    if x is None and not image:
        x = np.zeros(network.input_shape, dtype=np.int8)
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
    if quant is not None:
        if params.requant != "f32":
            raise ValueError(f"a quantised network needs an overlay that requantises per "
                             f"channel (hardware.requant f32), not {params.requant}")
        if weights:
            raise ValueError("weights must be None with quant: the records hold them")
        weights = {name: rec.weight for name, rec in quant.layers.items()
                   if name in convs or network[name].op == "fc"}
        convs |= set(weights)
    elif params.requant == "f32":
        raise ValueError("the overlay requantises per channel (hardware.requant f32): quant "
                         "must give the quantised network's records")
    unknown = sorted(set(weights) - convs)
    if unknown:
        raise ValueError(f"weights must name conv layers of the network, not "
                         f"{', '.join(map(repr, unknown))}")

    if not isinstance(fuse, bool):
        raise TypeError(f"fuse must be a bool, not {fuse!r}")
    entries, _ = _graph(network, fuse)
    readers = [e for e in entries if e.kind != "concat" and e.input == 0]
    pools = [e for e in entries if e.kind == "pool"]
    if pools and not pool_supported(params, precision):
        raise _refuse(pools[0].layer, f"the pool engine needs an 8-bit design on an overlay "
                                      f"whose rows and cols are a power of two apart, not "
                                      f"int{precision} on {params.rows}x{params.cols}")
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (precision - 1)), 1 << (precision - 1)
    shapes = [tuple(network.input_shape)] + [tuple(e.layer.out_shape) for e in entries]
    plans, ws, used, qs = [], [], [], []
    for e in entries:
        if quant is not None:
            op = e.layer.op
            if op not in ("conv", "fc", "maxpool", "add", "gap", "concat"):
                raise _refuse(e.layer, "a quantised network's average pools do not run on "
                                       "the overlay yet (their float32 rescaling)")
            qs.append(channel_quant(quant.layers[e.name]) if op in ("conv", "fc") else None)
            if op == "add":
                rec = quant.layers[e.name]
                e.pool = {**e.pool, "qadd": tuple(qadd_settings(
                    rec.a.scale, rec.a.zero_point, rec.b.scale, rec.b.zero_point,
                    rec.y.scale, rec.y.zero_point).packed()[k] for k in ("r_a", "r_b", "f"))}
            if op == "gap":
                rec, (_, h, w) = quant.layers[e.name], e.layer.in_shape
                try:
                    fields = gap_requant(rec.x.scale, rec.x.zero_point, rec.y.scale,
                                         rec.y.zero_point, h * w)
                except ValueError as exc:
                    raise _refuse(e.layer, str(exc)) from None
                e.pool = {**e.pool, "qgavg": fields}
        if e.kind == "concat":
            rec = quant.layers[e.name] if quant is not None else None
            plans.append(Concat(e.sources, () if rec is None else
                                tuple(concat_lut(q, rec.y) for q in rec.inputs),
                                copy=not fuse))
            ws.append(None)
            used.append(None)
            continue
        if e.kind == "pool":
            pool = PoolLayer(**e.pool, relu=e.relu)
            if double_buffer and _fits_halves(pool, shapes[e.input], limits, params):
                halves[len(plans)] = pool       # the same layer, banded for half buffers
            plans.append(pool)
            ws.append(None)
            used.append(None)
            continue
        layer = e.layer
        # host patches replace the input in DRAM: only for the one layer reading it
        algorithm, dataflow, variant = _choices(
            design, layer, patches if readers == [e] or patches == "refuse" else "tensor")
        w = _weights(layer, weights, rng, lo, hi) if image else None
        if layer.op == "fc" and w is not None:
            # the vector the overlay reads is the tensor's HWC bytes, the framework's is CHW:
            # the plan's weights are the framework's reordered to HWC
            c, h, wd = shapes[e.input]
            if w.shape[1] != c * h * wd:
                raise _refuse(layer, f"its {w.shape[1]} input features are not the "
                                     f"{c}x{h}x{wd} tensor it reads")
            used.append(w.reshape(-1, c, h, wd))
            w = used[-1].transpose(0, 2, 3, 1).reshape(-1, c * h * wd, 1, 1)
        else:
            used.append(w)
        if layer.op == "fc":
            c, h, wd = shapes[e.input]
            layer = Layer(layer.name, "conv", layer.inputs, (c * h * wd, 1, 1),
                          layer.out_shape, kernel=(1, 1))
        try:
            plan = plan_conv(layer, algorithm, dataflow, params, limits, relu=e.relu,
                             precision=precision, variant=variant)
        except ValueError as exc:
            raise _refuse(layer, f"cannot be planned: {exc}") from None
        if double_buffer:
            half = _half_plan(plan, layer, algorithm, dataflow, params, limits,
                              relu=e.relu, precision=precision, variant=variant)
            if half is not None:
                halves[len(plans)] = half
        plans.append(plan)
        ws.append(w)

    def build(chosen, banked, with_image):
        return build_network_program(chosen, x, ws, params, limits, base=base,
                                     token_depth=token_depth,
                                     inputs=[e.input for e in entries], image=with_image,
                                     double_buffer=banked, quant=qs or None)

    def timing(chosen, banked):
        from dse.compiler.timing import program_timing

        return program_timing(build(chosen, banked, False), params)

    try:
        plans, banked = _buffering(plans, halves, timing)
        lp = build(plans, banked, image)
    except ValueError as exc:
        names = [e.name for e in entries]
        message = re.sub(r"(plans|weights|inputs)\[(\d+)\]",
                         lambda m: f"layer {names[int(m.group(2))]!r} ({m.group(0)})",
                         str(exc))
        raise ValueError(message) from None
    return lp, dict(zip((e.name for e in entries), used))
