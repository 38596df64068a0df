"""Layout-change costs: DYNAMAP's published calibration values and our adapted table."""

from __future__ import annotations

import pytest

from dse.layout import (dram_bytes_per_cycle, dynamap_transition_bytes, edge_matrix_bytes,
                        in_layout, layout_change_bytes, out_layout)

# DYNAMAP (FPGA'21): 64 GB/s = 64e6 bytes per ms; Inception-3a edge costs computed with the
# authors' own formulas (1 byte per element).
BYTES_PER_MS = 64e6


def test_dynamap_calibration_fork_to_1x1():
    # fork (28x28x192) -> 1x1 im2col consumer: 0.002352 ms
    ms = dynamap_transition_bytes("im2col", "im2col", (192, 28, 28), (1, 1)) / BYTES_PER_MS
    assert ms == pytest.approx(0.002352, rel=1e-9)


@pytest.mark.parametrize("nxt, ms, rel", [
    ("im2col", 0.010584, 1e-9),
    ("kn2row", 0.001176, 1e-9),
    # the tool uses a ~4 % lower effective bandwidth for Winograd (0.004704 -> 0.004900)
    ("winograd", 0.004900, 0.05),
])
def test_dynamap_calibration_1x1_to_3x3(nxt, ms, rel):
    got = dynamap_transition_bytes(nxt, "im2col", (96, 28, 28), (3, 3)) / BYTES_PER_MS
    assert got == pytest.approx(ms, rel=rel)


def test_dynamap_winograd_reuse():
    plain = 96 * 28 * 28
    assert dynamap_transition_bytes("winograd", "winograd", (96, 28, 28)) == plain * 4 / 4


def test_overlay_table():
    shape = (8, 10, 10)          # 800 bytes at int8
    # spatial readers (im2col window generator, kn2row, FFT load) cost nothing extra
    for alg in ("im2col", "kn2row", "fft"):
        assert layout_change_bytes("spatial", in_layout(alg), shape, (3, 3)) == 0.0
        assert layout_change_bytes("wino2", in_layout(alg), shape, (3, 3)) == 0.0
    # Winograd F(2) tiles: 4x4 tiles at stride 2 hold (4/2)^2 = 4x the map, 3x extra
    assert layout_change_bytes("spatial", in_layout("winograd", 2), shape) == 2400.0
    # F(4): 6x6 at stride 4 = 2.25x, 1.25x extra; int16 doubles it
    assert layout_change_bytes("spatial", "wino4", shape, element_bytes=2) == 1600 * 1.25
    # reuse after a producer of the same tile size; none after a different one
    assert layout_change_bytes(out_layout("winograd", 2), "wino2", shape) == 0.0
    assert layout_change_bytes("wino4", "wino2", shape) == 2400.0
    # DYNAMAP's Toeplitz layout for im2col, on request: K^2 - 1 extra
    assert layout_change_bytes("spatial", in_layout("im2col", toeplitz=True), shape,
                               (3, 3)) == 800 * 8
    m = edge_matrix_bytes(["spatial", "wino2"], ["spatial", "wino2", "wino4"], shape)
    assert m.tolist() == [[0, 2400, 1000], [0, 0, 1000]]


def test_dram_bytes_per_cycle():
    # 19.2 GB/s at 300 MHz = 64 bytes a cycle; a 128-bit bus caps it at 16
    assert dram_bytes_per_cycle(19.2, 300, 1024) == pytest.approx(64.0)
    assert dram_bytes_per_cycle(19.2, 300, 128) == 16.0


def test_winograd_needs_a_tile_size():
    with pytest.raises(ValueError, match=r"^winograd_m must be at least 2"):
        in_layout("winograd", 0)
