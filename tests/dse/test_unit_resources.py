"""The committed Yosys counts of the transform units alone, and the FFT terms built on them.

``dse/cost/unit_resources.json`` holds what Yosys counted on each ``rtl/`` transform unit
synthesised alone (``python bench/synth_units.py --flow all --write``; docs/calibration.md,
"Transform units measured alone").  Nothing here runs Yosys: the tests check that the file is
complete and plausible, and that the resource model's FFT unit reproduces the measured FFT2D
points.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from dse.cost.hardware import HardwareTable
from dse.cost.resources import (FFT_MEASURED, RESOURCE_COEFFS, UNIT_RESOURCES_PATH,
                                datapath_memories, estimate_resources, fft_resources)
from rtl.params import OverlayParams

DOC = json.loads(UNIT_RESOURCES_PATH.read_text())
FLOWS = ("xcup", "ecp5")
#: unit -> class, as bench/synth_units.py's UNITS names them
UNITS = {"im2col": "rtl.im2col.Im2col", "shift_add": "rtl.kn2row.ShiftAdd",
         "wino_in": "rtl.winograd.InputTransform", "wino_out": "rtl.winograd.OutputAccumulator",
         "fft2d": "rtl.fft.FFT2D", "requant": "rtl.requant.Requant",
         "overlay_shell": "rtl.overlay_top.OverlayTop"}
ROWS = [(unit, label, flow, point["flows"][flow])
        for unit, entry in DOC["units"].items()
        for label, point in entry["points"].items() for flow in FLOWS]


def _ids(row):
    return "-".join(row[:3])


def test_every_unit_measured_on_both_flows():
    assert set(DOC["units"]) == set(UNITS)
    for unit, entry in DOC["units"].items():
        assert entry["class"] == UNITS[unit]
        assert entry["points"], unit
        for label, point in entry["points"].items():
            assert set(point["flows"]) == set(FLOWS), (unit, label)
            assert re.fullmatch(r"[0-9a-f]{64}", point["verilog_sha256"])
            for got in point["flows"].values():
                assert re.fullmatch(r"\d+\.\d+\S*", got["yosys_version"])
                assert re.fullmatch(r"\d{4}-\d\d-\d\d", got["date"])
    # the points docs/calibration.md compares the Winograd terms with
    assert set(DOC["units"]["wino_in"]["points"]) == {"m2-w8", "m4-w8"}
    assert set(DOC["units"]["wino_out"]["points"]) == {"m2-acc32", "m4-acc40"}


@pytest.mark.parametrize("row", ROWS, ids=_ids)
def test_counts_are_plausible(row):
    unit, _, _, got = row
    assert got["lut"] > 0 and got["ff"] > 0
    assert got["dsp"] >= 0 and got["bram_blocks"] >= 0 and got["synth_seconds"] > 0
    if unit in ("fft2d", "requant"):
        assert got["dsp"] > 0                   # complex multiply; the requant product
    if unit in ("wino_in", "wino_out"):
        assert got["dsp"] == 0                  # constant products are shifts and adds
    if unit in ("im2col", "shift_add"):
        assert got["bram_blocks"] > 0           # the 1024-word buffer each owns


def _fft_point(n, data_bits, family, fft_size=None):
    params = OverlayParams(rows=4, cols=4, a_width=data_bits + 1, b_width=data_bits + 1,
                           acc_width=2 * data_bits + 8,
                           fft_size=n if fft_size is None else fft_size)
    return HardwareTable.from_params([params], family=family)


MEASURED = [(family, n, d) for family in FLOWS for n, d in sorted(FFT_MEASURED[family])]


@pytest.mark.parametrize("family, n, data_bits", MEASURED)
def test_fft_unit_is_the_measured_fft2d(family, n, data_bits):
    """At every measured point the model's FFT2D is Yosys's: DSP exactly, LUT, FF and block RAM
    within 0.5 (the bilinear form has as many terms as there are measured points)."""
    got = FFT_MEASURED[family][n, data_bits]
    dsp, lut, ff, bram = (float(x[0]) for x in fft_resources(_fft_point(n, data_bits, family)))
    assert dsp == got["dsp"]
    assert lut == pytest.approx(got["lut"], abs=0.5)
    assert ff == pytest.approx(got["ff"], abs=0.5)
    assert bram == pytest.approx(got["bram_blocks"], abs=0.5)


@pytest.mark.parametrize("family, n, data_bits", MEASURED)
def test_estimate_adds_the_fft2d_and_the_fft_buffers(family, n, data_bits):
    """Against the same point without FFT: + the measured DSP, LUT and FF plus the fitted FFT
    control terms (``*_control_fft``, calibration.json), within the model's rounding up (1),
    + the FFT buffers' block RAM."""
    with_fft = estimate_resources(_fft_point(n, data_bits, family), shell=False).as_dict(0)
    without = estimate_resources(_fft_point(n, data_bits, family, fft_size=0), shell=False).as_dict(0)
    got = FFT_MEASURED[family][n, data_bits]
    c = RESOURCE_COEFFS[family]
    for resource in ("dsp", "lut", "ff"):
        added = with_fft[resource] - without[resource]
        assert abs(added - got[resource] - c[f"{resource}_control_fft"]) < 1 + 1e-9, resource
    assert with_fft["bram_blocks"] > without["bram_blocks"]


@pytest.mark.parametrize("family", FLOWS)
def test_no_fft_no_fft_resources(family):
    hw = _fft_point(8, 16, family, fft_size=0)
    assert all(float(x[0]) == 0.0 for x in fft_resources(hw))
    memories = datapath_memories(hw)
    for name in ("fft_tile", "spectrum_in", "spectrum_out", "gauss_k1", "overlap_add"):
        assert int(np.ravel(memories[name][2])[0]) == 0, name


def test_fft_buffers_follow_the_datapath():
    """Depths and widths of the FFT path's buffers (a_width 17: D = 16, int8)."""
    hw = HardwareTable.from_params([OverlayParams(rows=4, cols=8, a_width=17, b_width=17,
                                                  acc_width=48, fft_size=8,
                                                  act_buffer_kib=4, out_buffer_kib=4)])
    mem = {k: tuple(int(np.ravel(x)[0]) for x in v) for k, v in datapath_memories(hw).items()}
    tile_words = 4 * 1024 * 8 // 17
    assert mem["fft_tile"] == (tile_words, 8, 1)
    assert mem["spectrum_in"] == (tile_words, 32, 1)
    assert mem["spectrum_out"] == (tile_words, 16, 2)
    # the Gauss sum of one GEMM: the engine's C half, a quarter of the 85 words of 8 (cols)
    # 48-bit accumulators of the 4 KiB output side (21, so a power of two: 16), every lane's
    assert mem["gauss_k1"] == (16 * 8, 48, 1)
    # as deep as the output side: 4 KiB of words of 8 (cols) 48-bit accumulators; 2 read ports
    assert mem["overlap_add"] == (4 * 1024 * 8 // (48 * 8), 48, 2)


@pytest.mark.parametrize("family", FLOWS)
def test_fft_extrapolation_grows_with_size_and_width(family):
    """Off the measured points (n = 4, 32; other widths) the FFT2D still costs more with
    larger n and wider parts, and never nothing."""
    sizes, widths = (4, 8, 16, 32), (12, 16, 20, 24, 26)
    table = np.array([[[float(x[0]) for x in fft_resources(_fft_point(n, d, family))][1:3]
                       for d in widths] for n in sizes])         # (n, D, [lut, ff])
    assert np.all(table > 0)
    assert np.all(np.diff(table, axis=0) > 0) and np.all(np.diff(table, axis=1) > 0)


_MEMORY = re.compile(r"^\s*reg (?:\[(\d+):0\] )?\\?(\S+) +\[(\d+):0\];$", re.M)


def test_fft_memories_are_the_generated_verilogs(tmp_path):
    """With an FFT unit, the memories the model counts are those overlay.v declares, except the
    FFT2D's own tile memory ``mem`` and twiddle ROM ``rom`` (inside its measured counts, so
    not in the memory list) and the engine's 4-word C FIFO ``storage`` (LUT RAM).  One
    generation, a few seconds; the FFT counterpart of test_resources_calibration's check."""
    from omniconv.overlay import write_overlay

    fields = dict(rows=2, cols=4, a_width=17, b_width=17, acc_width=48, fft_size=8,
                  act_buffer_kib=3, weight_buffer_kib=5, out_buffer_kib=1)
    text = write_overlay(SimpleNamespace(hardware=fields, precision=8),
                         SimpleNamespace(family="xcup"), tmp_path, precision=8).read_text()
    found = _MEMORY.findall(text)
    internal = Counter((int(d) + 1, int(w or 0) + 1) for w, name, d in found
                       if name in ("mem", "rom"))
    assert internal == Counter({(8 * 8, 2 * 16): 1, (8 // 2, 3 * 16): 1})
    declared = Counter((int(d) + 1, int(w or 0) + 1) for w, name, d in found
                       if name not in ("storage", "mem", "rom"))
    hw = HardwareTable.from_params([OverlayParams(**fields)], family="xcup")
    modelled = Counter()
    for name, (depth, width, copies) in datapath_memories(hw).items():
        n = int(np.ravel(copies)[0]) // (2 if name in ("engine_c", "overlap_add") else 1)  # ports
        modelled[int(np.ravel(depth)[0]), int(np.ravel(width)[0])] += n
    assert +declared == +modelled
