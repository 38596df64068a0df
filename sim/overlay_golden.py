"""Golden outputs of an overlay-top program, independent of the program.

:func:`golden_outputs` computes every tensor of a chain built by
``dse.compiler.program.build_network_program`` (or ``dse.compiler.network.compile_network``)
with the reference models on whole tensors: ``sim.models.conv.conv2d`` +
``sim.models.requant.requantize`` with each conv plan's requantisation
(``rq_mult``, ``rq_shift``, ``rq_relu``), ``sim.models.pool.pool_tile`` with each pool layer's
``PoolLayer.numerics``.  Only the plans' shapes and requantisation are read, never the
program or its DRAM image.
"""

from __future__ import annotations

import numpy as np

from dse.compiler.program import NetworkProgram, PoolLayer
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
        Per chain layer its N×C×R×S weights (None for a pool layer).
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
    for plan, w in zip(lp.plans, weights):
        a = tensors[-1]
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
        top, left, bottom, right = plan.pads
        padded = np.pad(a, ((0, 0), (top, bottom), (left, right)))
        acc = conv2d(padded, w, stride=plan.stride, padding=0, dilation=plan.dilation)
        tensors.append(requantize(acc, mult, shift, plan.precision, bool(relu)))
    return dict(zip(names, tensors[1:]))
