"""The compiler's sparse read schedules (``dse.compiler.sparse_schedule``) on the RTL unit
(``rtl.sparse_fft.SparseMAC``): pruned spectral kernels of a real convolution, the layer's
balanced bank placement, then per group of P filters and per channel the compiled
(conflict-free, Δ-step) schedule and the naive in-order one, run in the Amaranth simulator
with random stalls.  Both are bit-exact with a numpy complex MAC; the compiled schedule
measures zero stall cycles and exactly its Δ steps; the naive one measures exactly the stalls
``dse.compiler.sparse_schedule.schedule_cycles`` predicts for it.

The drivers and references are ``test_sparse_fft``'s (the RTL unit's own tests).
"""

from __future__ import annotations

import numpy as np
import pytest

from dse.compiler.sparse_schedule import (balanced_placement, conflict_free_schedule, naive_schedule,
                                 schedule_cycles, schedule_steps, spectral_bins)
from rtl.params import SparseParams
from sim.models.fft import spectral_kernels
from sim.models.sparse_fft import spectral_mask

from test_sparse_fft import check_run, random_spectrum, run_unit


def _layer(n, filters, channels, density, seed):
    """Pruned spectral kernels of a random int8 3×3 convolution: the mask (filters ×
    channels × bins) and the quantised kept values (re, im) per (filter, channel, bin),
    scaled into the unit's kernel width."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, (filters, channels, 3, 3))
    mask = spectral_mask(w, n, density).reshape(filters, channels, -1)
    kr, ki, _ = spectral_kernels(w, n, 16)
    h = n // 2 + 1
    kr = kr[..., :h].reshape(filters, channels, -1) >> 4     # 12-bit parts for the unit
    ki = ki[..., :h].reshape(filters, channels, -1) >> 4
    return mask, kr, ki


@pytest.mark.parametrize("n,lanes,banks,ports,density,seed", [
    (4, 4, 4, 1, 0.25, 0), (4, 4, 2, 1, 0.5, 1), (8, 4, 8, 1, 0.25, 2), (8, 2, 4, 2, 0.1, 3)])
def test_compiled_schedule_has_no_stalls_and_naive_has_the_predicted(n, lanes, banks, ports,
                                                                     density, seed):
    bins = spectral_bins(n)
    params = SparseParams(lanes=lanes, banks=banks, ports=ports, bins=bins, data_width=12,
                          kernel_width=12, acc_width=32, max_nnz=bins)
    channels_n = 2
    mask, kr, ki = _layer(n, 2 * lanes, channels_n, density, seed)
    placement = balanced_placement(mask, lanes, banks)
    where = {f: (int(placement.bank[f]), int(placement.address[f])) for f in range(bins)}
    rng = np.random.default_rng(seed + 100)
    for group in range(2):
        filters = slice(group * lanes, (group + 1) * lanes)
        jobs = {"compiled": [], "naive": []}
        for c in range(channels_n):
            m = mask[filters, c]
            kernels = [{int(f): (int(kr[p, c, f]), int(ki[p, c, f])) for f in np.flatnonzero(row)}
                       for p, row in zip(range(filters.start, filters.stop), m)]
            x = random_spectrum(params, rng)
            jobs["compiled"].append((x, kernels, conflict_free_schedule(m, placement, ports)))
            jobs["naive"].append((x, kernels, naive_schedule(m)))
        compiled, naive = run_unit(params, where, [jobs["compiled"], jobs["naive"]],
                                   idle=0.2, stall=0.3, seed=seed + group)
        check_run(params, where, jobs["compiled"], compiled)
        check_run(params, where, jobs["naive"], naive)
        assert compiled["stall"] == 0
        assert compiled["busy"] == sum(schedule_steps(mask[filters, c], placement, ports)
                                       for c in range(channels_n))
        predicted = sum(schedule_cycles(sch, placement, ports)[1]
                        for _, _, sch in jobs["naive"])
        assert naive["stall"] == predicted
