"""sparse_fft on the conv datapath in Verilator: the FFT path with phase 2 on the sparse MAC
unit (``rtl/spectral.py``, "Sparse phase 2").

Each layer runs from its buffers with random int8/int16 data and weights; the checks:

* accumulations equal the bit-accurate golden model of the pruned spectral convolution
  (``sim.models.sparse_fft``), whose pruning mask is derived there from the weights, not
  taken from the compiler (and equals the compiler's), and the requantised outputs equal the
  numpy requantiser's;
* every counter equals the compiler's prediction with the compiled schedule's steps
  (``ConvPlan.sparse_cycles``), and the explorer's expectation (``ConvPlan.cycles``: E[Δ]
  for the steps) is within 2 % of the measured cycles;
* the compiled schedule never stalls and no bank port is ever claimed twice.

A layer larger than the buffers runs as row bands of whole tile rows (each with its own
input image: halo and the padding inside the band) and filter chunks, each chunk with its
own schedule and kernels (the smoke batch has both).

A smoke batch (P = B = 4, densities 0.1 to 0.5, 3×3 and 5×5, a last group of one lane)
runs in ``make test``; lanes and banks P ∈ {4, 8, 16}, B ∈ {8, 16, 32, 40} and int16 in
``make regress``.
"""

import dataclasses
import json

import numpy as np
import pytest
from test_conv_datapath import conv_layer, make_case

from rtl.params import OverlayParams
from sim.models.requant import requantize
from sim.runner import REPO_ROOT

#: The explorer's expectation of the schedule's steps may differ from a real schedule's by a
#: few per cent of the steps (docs/sparse-fft.md), a fraction of that of the layer.
MODEL_TOLERANCE = 0.02


def spectral(lanes, banks, precision=8):
    """A 4×4 overlay with an 8-point FFT unit and a sparse unit of ``lanes`` × ``banks``."""
    wide = precision == 16
    return OverlayParams(rows=4, cols=4, a_width=25 if wide else 17, b_width=26 if wide else 18,
                         acc_width=64 if wide else 48, fft_size=8, sparse_lanes=lanes,
                         sparse_banks=banks)


#: (channels, height, width, filters, kernel, padding, density) of the cases: 3×3 and 5×5,
#: padded and not, filter counts that leave a last group of fewer lanes.
SHAPES = [(3, 7, 6, 6, 3, 1, 0.25), (2, 9, 8, 5, 5, 2, 0.1), (5, 6, 6, 9, 3, 0, 0.5),
          (4, 10, 7, 3, 3, 1, 0.3)]


def sparse_cases(precision, seed, shapes=SHAPES):
    cases = []
    for i, (c, h, w, f, k, pad, d) in enumerate(shapes):
        layer = conv_layer(f"sp{i}", c, h, w, f, k, 1, pad)
        case = make_case(layer, "sparse_fft", "ws", precision, seed + i)
        cases.append(dataclasses.replace(case, density=d, name=f"{case.name} D={d}"))
    return cases


def golden(case, plan):
    """The pruned spectral convolution of ``case`` (``sim.models.sparse_fft``), pruned by the
    model's own :func:`~sim.models.sparse_fft.spectral_mask`, with the plan's widths."""
    from sim.bench.conv_tb import sparse_golden
    from sim.models.sparse_fft import spectral_mask

    mask = spectral_mask(case.w, plan.fft_n, case.density, plan.kernel_bits)
    compiled = plan.sparse_kernels(case.w).mask
    assert np.array_equal(mask.reshape(compiled.shape), compiled), "pruning masks differ"
    return sparse_golden(case.x, case.w, plan, plan.fft_shift, mask=mask).acc


def check_sparse_batch(params, cases, run_name, precision, limits=None, sized_by=None):
    """Run ``cases`` on one datapath sized for the first ``sized_by`` of them (default all),
    with the ``limits`` given instead (e.g. a shallower output buffer), so that larger
    layers run in bands and chunks; check them (module docstring); return the explorer's
    largest relative error and the plans."""
    from sim.bench.conv_tb import DatapathConfig, rtl_conv_batch, sized_config

    cfg = sized_config(cases[:sized_by], params, precision=precision)
    if limits:
        cfg = DatapathConfig.make(params, {**dict(cfg.limits), **limits}, precision=precision)
    results = rtl_conv_batch(cases, cfg, run_name=run_name)
    failures, table, worst = [], [], 0.0
    for case, res in zip(cases, results):
        plan = res.plan
        ref = golden(case, plan)
        regs = plan.invocations[0].registers
        if not np.array_equal(res.accumulations, ref):
            bad = tuple(np.argwhere(res.accumulations != ref)[0])
            failures.append(f"{case.name}: accumulation {bad} is {res.accumulations[bad]}, "
                            f"golden {ref[bad]}")
        if not np.array_equal(res.outputs, requantize(ref, regs["rq_mult"], regs["rq_shift"],
                                                      precision, case.relu)):
            failures.append(f"{case.name}: requantised outputs differ from the golden")
        pred = plan.sparse_cycles(case.w)
        for key, value in pred.items():
            if res.cycles[key] != value:
                failures.append(f"{case.name}: {key} measured {res.cycles[key]}, "
                                f"compiler {value}")
        if res.cycles["smac_stall_cycles"] or res.cycles["smac_conflict"]:
            failures.append(f"{case.name}: {res.cycles['smac_stall_cycles']} stall cycles, "
                            f"conflict {res.cycles['smac_conflict']}")
        model = plan.cycles(params.rows, params.cols)["cycles"]
        rel = abs(model - res.measured_cycles) / res.measured_cycles
        worst = max(worst, rel)
        if rel > MODEL_TOLERANCE:
            failures.append(f"{case.name}: explorer {model} cycles, measured "
                            f"{res.measured_cycles} ({rel:.2%})")
        table.append({"case": case.name, "invocations": len(plan.invocations),
                      "measured": res.cycles, "compiler": pred, "explorer": model})
    out = REPO_ROOT / "build" / "sim" / run_name / "sparse_cycles.json"
    out.write_text(json.dumps({"explorer_max_rel_error": worst, "cases": table}, indent=1))
    assert not failures, f"{len(failures)} problems in {len(cases)} layers:\n" + "\n".join(
        failures[:20])
    return worst, [r.plan for r in results]


@pytest.mark.verilator
def test_sparse_datapath_smoke_int8():
    # buffers sized for the first four but a 256-word output buffer: the 9×8 layer runs as
    # two row bands of 5 and 4 output rows (two tile rows each, halo included); the 12×12
    # one as 3 bands × 2 filter chunks (5 + 3 filters, each its own schedule and kernels,
    # the forward transforms again for each); the 64-channel one (GEMM K up to 128) in 3
    # channel chunks: one group's schedule of 64 channels overflows the 1,024-word schedule
    # memory (up to P·⌈bins/B⌉ = 40 steps a channel for any weights: 25 channels), and the
    # accumulator buffer sums the chunks' overlap-added outputs
    cases = sparse_cases(8, 40, SHAPES + [(3, 12, 12, 8, 3, 1, 0.25),
                                          (64, 6, 6, 4, 3, 1, 0.25)])
    worst, plans = check_sparse_batch(
        spectral(4, 4), cases, "sparse_smoke_int8", 8, sized_by=4,
        limits={"out_words": 256, "max_k": 128, "spectral_words": 16384})
    assert worst <= MODEL_TOLERANCE
    assert [len({b.rows for b in p.bands}) for p in plans] == [0, 2, 0, 0, 3, 1]
    assert {i.filters for i in plans[4].invocations} == {(0, 5), (5, 8)}
    assert {b.channels for b in plans[5].bands} == {(0, 22), (22, 44), (44, 64)}


@pytest.mark.verilator
@pytest.mark.regress
@pytest.mark.parametrize("lanes, banks, precision", [
    (4, 8, 8), (8, 16, 8), (16, 32, 8), (16, 8, 8), (8, 32, 8), (4, 16, 16), (16, 8, 16),
    (16, 40, 8)])       # 40 banks, as the explorer offers: a select that is not a power of two
def test_sparse_datapath_sweep(lanes, banks, precision):
    cases = sparse_cases(precision, 100 + lanes + banks)
    worst, _ = check_sparse_batch(spectral(lanes, banks, precision), cases,
                                  f"sparse_sweep_{lanes}x{banks}_int{precision}", precision)
    assert worst <= MODEL_TOLERANCE


def test_sparse_plan_refuses_what_it_cannot_run():
    from dse.compiler import plan_conv

    layer = conv_layer("r", 3, 7, 6, 6, 3, 1, 1)
    with pytest.raises(ValueError, match="sparse_fft needs an FFT unit and a sparse unit"):
        plan_conv(layer, "sparse_fft", "ws", dataclasses.replace(spectral(4, 4), sparse_lanes=0,
                                                                 sparse_banks=0))
    stride2 = conv_layer("s", 3, 8, 8, 6, 3, 2, 1)
    with pytest.raises(ValueError, match="stride 1"):
        plan_conv(stride2, "sparse_fft", "ws", spectral(4, 4))
    from rtl.params import DatapathLimits

    small = DatapathLimits(spectral_words=4096, out_words=1024, sparse_steps=8, sparse_nnz=8)
    with pytest.raises(ValueError, match="schedule words and 10 kernel words a lane"):
        plan_conv(layer, "sparse_fft", "ws", spectral(4, 4), small)
