"""Golden outputs of an overlay-top program, independent of the program.

:func:`golden_outputs` computes every tensor of a chain built by
``dse.compiler.program.build_network_program`` (or ``dse.compiler.network.compile_network``)
with the reference models on whole tensors: ``sim.models.conv.conv2d`` +
``sim.models.requant.requantize`` with each conv plan's requantisation
(``rq_mult``, ``rq_shift``, ``rq_relu``), ``sim.models.pool.pool_tile`` with each pool layer's
``PoolLayer.numerics``, ``numpy.concatenate`` for a concat (an input with a table,
``Concat.luts``, looked up first).  Only the plans' shapes, inputs
and requantisation are read, never the program or its DRAM image.

A fully connected layer (a conv plan over the (C·H·W)×1×1 vector of a C×H×W tensor) takes
its weights in either form: N×C×H×W, the framework's (the vector in CHW order: the golden
output is the convolution of the tensor with an H×W kernel, independent of how the
compiler orders the vector), or N×(C·H·W)×1×1 over the HWC vector the overlay reads.  A layer planned from host patches
(``plan.host_patches``) is the convolution of ``x`` with its own window and N×C×R×S weights,
not of the patches the program reads.
"""

from __future__ import annotations

import numpy as np

from dse.compiler.program import Concat, NetworkProgram, PoolLayer
from sim.models.conv import conv2d
from sim.models.pool import pool_tile
from sim.models.requant import requantize

__all__ = ["golden_outputs"]


def golden_outputs(lp: NetworkProgram, x, weights, names=None) -> dict:
    """Every chain tensor of ``lp`` from ``sim.models`` on whole tensors, independent of the
    program: ``conv2d`` + ``requantize`` with each conv plan's ``rq_mult``, ``rq_shift``
    and ``rq_relu``, ``pool_tile`` with each pool layer's :meth:`PoolLayer.numerics`.

    Parameters
    ----------
    lp:
        The program (its plans and shapes).
    x:
        The chain's input C×H×W.
    weights:
        Per layer its N×C×R×S weights (None for a pool or concat layer; a fully connected
        layer's as the module docstring says).
    names:
        The keys of the result, one per layer (default ``"0"``, ``"1"``, …).

    Returns
    -------
    dict
        name → C×H×W int64 tensor, in chain order.
    """
    if not isinstance(lp, NetworkProgram):
        raise TypeError(f"lp must be a NetworkProgram, not {lp!r:.60}")
    names = [str(i) for i in range(len(lp.plans))] if names is None else list(names)
    if len(names) != len(lp.plans) or len(weights) != len(lp.plans):
        raise ValueError(f"names and weights must have one entry per layer "
                         f"({len(lp.plans)}), not {len(names)} and {len(weights)}")
    tensors = [np.asarray(x, dtype=np.int64)]
    inputs = lp.inputs or tuple(range(len(lp.plans)))
    for plan, w, src in zip(lp.plans, weights, inputs):
        if isinstance(plan, Concat):
            luts = plan.luts or (None,) * len(plan.sources)
            tensors.append(np.concatenate([tensors[s] if t is None else
                                           np.asarray(t, dtype=np.int64)[tensors[s] + 128]
                                           for s, t in zip(plan.sources, luts)]))
            continue
        a = tensors[src]
        if isinstance(plan, PoolLayer):
            mult, shift, mult2 = plan.numerics(a.shape)
            b = tensors[plan.source].transpose(1, 2, 0) if plan.mode == "add" else None
            out = pool_tile(plan.mode, a.transpose(1, 2, 0), b, kh=plan.kernel[0],
                            kw=plan.kernel[1], stride=plan.stride, pads=plan.pads, mult=mult,
                            shift=shift, mult2=mult2, relu=plan.relu)
            tensors.append(out.transpose(2, 0, 1))
            continue
        regs = {(r["rq_mult"], r["rq_shift"], r["rq_relu"])
                for r in (inv.registers for inv in plan.invocations)}
        if len(regs) != 1:
            raise ValueError(f"a plan's invocations must share one requantisation, not "
                             f"{sorted(regs)}")
        (mult, shift, relu), = regs
        if tuple(plan.in_shape) != a.shape and not plan.host_patches:   # fully connected
            w = np.asarray(w)
            if w.shape[1:] != a.shape:
                a = a.transpose(1, 2, 0).reshape(-1, 1, 1)
        if plan.host_patches:         # the layer's own window over x (not the patches)
            _, stride, dilation, (top, left, bottom, right) = plan.host_patches
        else:
            stride, dilation = plan.stride, plan.dilation
            top, left, bottom, right = plan.pads
        padded = np.pad(a, ((0, 0), (top, bottom), (left, right)))
        acc = conv2d(padded, w, stride=stride, padding=0, dilation=dilation)
        tensors.append(requantize(acc, mult, shift, plan.precision, bool(relu)))
    return dict(zip(names, tensors[1:]))
