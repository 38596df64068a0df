"""The resource model against committed Yosys measurements (dse/cost/calibration.json).

calibration.json holds what Yosys counted on the overlay.v of each calibration point
(``python -m omniconv.calibrate`` regenerates it; docs/calibration.md).  These tests read
those measured counts -- nothing here runs Yosys -- so they fail when the model (formulas or
coefficients) drifts away from the synthesised hardware.  The memory list of the model is
checked against the memories the RTL generator actually declares, and the block-RAM packing
against hand derivation.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from dse.cost.hardware import HardwareTable
from dse.cost.resources import (CALIBRATION_PATH, RESOURCE_COEFFS,
                                datapath_memories, estimate_resources, memory_blocks)
from rtl.params import OverlayParams

DOC = json.loads(CALIBRATION_PATH.read_text())
POINTS = DOC["points"]


def _model(point):
    hw = HardwareTable.from_params([OverlayParams(**point["params"])], family=point["flow"])
    return estimate_resources(hw, shell=False).as_dict(0)


def _ids(point):
    return f"{point['flow']}-{point['name']}"


def test_enough_distinct_points_with_a_holdout():
    xcup = [p for p in POINTS if p["flow"] == "xcup"]
    assert len({json.dumps(p["params"], sort_keys=True) for p in xcup}) >= 5
    assert any(p["role"] == "holdout" for p in xcup)
    assert any(p["role"] == "fit" for p in xcup)


@pytest.mark.parametrize("point", POINTS, ids=_ids)
@pytest.mark.parametrize("resource", ["dsp", "bram_blocks"])
def test_model_within_10_percent_of_yosys(point, resource):
    """Within 10 % (block RAM in whole sites on both sides: RAMB36E2 sites, DP16KD)."""
    measured = point["yosys"][resource]
    assert measured > 0
    model = _model(point)[resource]
    assert model == pytest.approx(measured, rel=0.10)


def test_module_uses_the_committed_coefficients():
    for family, fitted in DOC["coefficients"].items():
        for key, value in fitted.items():
            assert RESOURCE_COEFFS[family][key] == value


def test_committed_coefficients_are_the_fit_of_the_committed_measurements():
    """omniconv.calibrate.fit on calibration.json's points gives its coefficients; without the
    FFT points it gives the same non-FFT coefficients (the FFT terms are a second stage)."""
    from omniconv.calibrate import fit

    assert fit(POINTS) == DOC["coefficients"]
    without_fft = fit([p for p in POINTS if p["params"].get("fft_size", 0) == 0])
    for family, fitted in without_fft.items():
        for key, value in fitted.items():
            if not key.endswith("_fft"):
                assert DOC["coefficients"][family][key] == value, (family, key)


def test_fft_terms_do_not_touch_points_without_an_fft_unit():
    for point in POINTS:
        if point["params"].get("fft_size", 0):
            continue
        family = point["flow"]
        zeroed = {family: {**RESOURCE_COEFFS[family],
                           **{k: 0.0 for k in RESOURCE_COEFFS[family] if k.endswith("_fft")}}}
        hw = HardwareTable.from_params([OverlayParams(**point["params"])], family=family)
        assert estimate_resources(hw, coeffs=zeroed, shell=False).as_dict(0) == _model(point)


@pytest.mark.parametrize("family, depth, width, blocks", [
    # docs/synthesis.md, measured: a 512 × 64 RAM is one RAMB36E2 (512×72) or two DP16KD
    ("xcup", 512, 64, 1.0), ("ecp5", 512, 64, 2.0),
    # 4096 × 8: one RAMB36E2 as 4K×9; two DP16KD as 2K×9
    ("xcup", 4096, 8, 1.0), ("ecp5", 4096, 8, 2.0),
    # 2048 × 8 fits one RAMB18E2 as 2K×9 (half a RAMB36E2 site)
    ("xcup", 2048, 8, 0.5),
    # 1638 × 128 (a Winograd tile buffer): 2K×9 RAMB18E2, ceil(128/9) = 15 halves; DP16KD 15
    ("xcup", 1638, 128, 7.5), ("ecp5", 1638, 128, 15.0),
    # Yosys's measured choices (yosys.log "mapping memory" of the calibration runs): LUT RAM
    # for the GEMM engine's 128 × 8 lanes on both flows and 256 × 8 on xcup, DP16KD for
    # 256 × 8 and for 128 × 12 (but LUT RAM for 128 × 10) on ecp5, LUT RAM for 16 × 144
    ("xcup", 128, 8, 0.0), ("ecp5", 128, 8, 0.0), ("xcup", 256, 8, 0.0), ("ecp5", 256, 8, 1.0),
    ("ecp5", 128, 12, 1.0), ("ecp5", 128, 10, 0.0), ("xcup", 16, 144, 0.0),
])
def test_block_ram_packing_by_hand(family, depth, width, blocks):
    assert float(memory_blocks(depth, width, family)) == blocks


@pytest.mark.parametrize("family, depth, width, transparent, blocks", [
    # the 4x8-fft8-wino2-i8 point on ecp5 (yosys.log): the 64 × 48 shift-and-add and
    # overlap-add buffers (read port transparent to the write port) in two DP16KD each, the
    # sixteen 64 × 48 transformed-domain buffers in LUT RAM; on xcup all of them in LUT RAM
    ("ecp5", 64, 48, True, 2.0), ("ecp5", 64, 48, False, 0.0),
    ("xcup", 64, 48, True, 0.0), ("xcup", 64, 32, True, 0.0),
    # 16 deep (the 4×4 points): LUT RAM on both flows, transparent or not
    ("ecp5", 16, 48, True, 0.0), ("xcup", 16, 48, True, 0.0),
])
def test_transparent_read_port_costs_lut_ram_more(family, depth, width, transparent, blocks):
    assert float(memory_blocks(depth, width, family, transparent=transparent)) == blocks


_MEMORY = re.compile(r"^\s*reg (?:\[(\d+):0\] )?\\?(\S+) +\[(\d+):0\];$", re.M)


@pytest.mark.parametrize("fields, precision", [
    # Winograd F(2x2) (tile and accumulation buffers, 4 back-end lanes), a rectangular
    # array and buffer sizes that are not powers of two; one generation (a few seconds)
    (dict(rows=2, cols=4, a_width=10, b_width=12, acc_width=32, winograd_m=2,
          act_buffer_kib=3, weight_buffer_kib=5, out_buffer_kib=1), 8),
])
def test_model_memories_are_the_generated_verilogs(fields, precision, tmp_path):
    """The (depth, width) of every memory the model counts equals what the generator
    declares in overlay.v (``reg [W-1:0] name [D-1:0];``), the engine's 4-word C FIFO
    (``storage``, LUT RAM) aside."""
    from omniconv.overlay import write_overlay

    params = OverlayParams(**fields)
    design = SimpleNamespace(hardware=fields, precision=precision)
    text = write_overlay(design, SimpleNamespace(family="xcup"), tmp_path,
                         precision=precision).read_text()
    declared = Counter((int(d) + 1, int(w or 0) + 1) for w, name, d in _MEMORY.findall(text)
                       if name != "storage")
    hw = HardwareTable.from_params([params], family="xcup")
    modelled = Counter()
    for name, (depth, width, copies) in datapath_memories(hw).items():
        n = int(np.ravel(copies)[0]) // (2 if name in ("engine_c", "overlap_add") else 1)  # ports
        modelled[int(np.ravel(depth)[0]), int(np.ravel(width)[0])] += n
    assert +declared == +modelled

