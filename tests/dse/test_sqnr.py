"""The explorer's accuracy floor (dse.cost.sqnr): the measured SQNR table against the golden
model of the FFT path, the mask it puts on the choices, pins below the floor, design.json's
``sqnr_db`` and the config key."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dse.cost.choices import enumerate_choices, required_widths
from dse.cost.sqnr import (DEFAULT_MIN_SQNR_DB, fft_sqnr_db, layer_sqnr_db, sqnr_mask,
                           table)
from dse.cost.workload import LayerTable
from dse.errors import InputError
from dse.network import NetworkBuilder
from sim.models.conv import conv2d
from sim.models.fft import FFTParams, fft_conv, sqnr_db


def _golden_sqnr(precision, n, k, channels, seed):
    """The FFT path's SQNR on fresh data (other seeds and sizes than the table's)."""
    a_width, b_width = required_widths(f"fft{n}", precision)
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (precision - 1)), 1 << (precision - 1)
    x = rng.integers(lo, hi, (channels, 3 * n - 1, 3 * n + 1))
    w = rng.integers(lo, hi, (6, channels, k, k))
    pad = k // 2
    res = fft_conv(x, w, FFTParams(n=n, data_bits=a_width - 1, twiddle_bits=a_width - 1),
                   padding=pad, in_bits=precision, kernel_bits=b_width - 1, hermitian=True)
    exact = conv2d(np.pad(x, ((0, 0), (pad, pad), (pad, pad))), w)
    return sqnr_db(res.acc * res.scale, exact)


@pytest.mark.parametrize("precision, n, k, channels, seed", [
    (8, 8, 3, 32, 11), (8, 8, 7, 3, 12), (8, 16, 5, 20, 13), (8, 16, 15, 2, 14),
    (16, 8, 3, 10, 15), (16, 16, 9, 6, 16)])
def test_table_predicts_the_golden_model(precision, n, k, channels, seed):
    """The table is the lowest SQNR over 1..512 channels: fresh data lands above it, or at
    most 3 dB below (the spread between data sets of one shape)."""
    predicted = float(fft_sqnr_db(precision, n, k))
    measured = _golden_sqnr(precision, n, k, channels, seed)
    assert measured >= predicted - 3.0
    assert measured <= predicted + 15.0          # and it is a prediction, not a bound far off


def test_table_covers_every_kernel_the_fft_path_runs():
    t = table()
    for precision in (8, 16):
        for n in (8, 16):
            assert {k for p, tn, k in t if (p, tn) == (precision, n)} == set(range(2, n))
    assert np.isnan(fft_sqnr_db(8, 8, 8)) and np.isnan(fft_sqnr_db(8, 0, 3))
    # int16's extra data bits buy about 8 bits of SQNR
    assert float(fft_sqnr_db(16, 8, 3)) > float(fft_sqnr_db(8, 8, 3)) + 40


def test_layer_sqnr_is_none_for_exact_variants():
    assert layer_sqnr_db("F2x2_3x3", 3, 8) is None
    assert layer_sqnr_db("", 3, 8) is None
    assert layer_sqnr_db("fft16", 5, 8) == float(fft_sqnr_db(8, 16, 5))


def _layers():
    b = NetworkBuilder("k", (8, 20, 20))
    b.conv("k3", out_channels=8, kernel=3, padding=1)
    b.conv("k7", out_channels=8, kernel=7, padding=3)
    b.conv("k12", out_channels=8, kernel=12)
    return LayerTable.from_layers(b.build().layers)


def test_mask_keeps_exact_choices_and_fft_above_the_floor():
    layers = _layers()
    choices = enumerate_choices(["im2col", "winograd", "fft"], ["ws"])
    floor = float(fft_sqnr_db(8, 16, 7)) + 0.05      # fft16 7x7 just below, 3x3 above
    mask = sqnr_mask(layers, choices, 8, floor)
    for ci, c in enumerate(choices.choices):
        if not c.variant.startswith("fft"):
            assert mask[:, ci].all()
            continue
        n = int(c.variant[3:])
        for li, k in enumerate((3, 7, 12)):
            predicted = fft_sqnr_db(8, n, k)
            assert mask[li, ci] == (not np.isnan(predicted) and predicted >= floor)
    fft16 = [ci for ci, c in enumerate(choices.choices) if c.variant == "fft16"][0]
    assert mask[0, fft16] and not mask[1, fft16]
    assert not sqnr_mask(layers, choices, 8, 200.0)[:, fft16].any()


def _fft_config(tmp_path, floor=None):
    # (the zcu102: an FFT unit's spectral buffers with tiny's layers whole outgrow the ECP5)
    text = ("network: tiny\nboard: zcu102\nalgorithms: [im2col, fft]\n"
            "hardware: {rows: 8, cols: 8, a_width: 17, b_width: 17, acc_width: 48, "
            "winograd_m: 0, fft_size: 8}\n"
            "layers: {conv1: {algorithm: fft}, conv3: {algorithm: fft}}\n")
    if floor is not None:
        text += f"min_sqnr_db: {floor}\n"
    path = tmp_path / "fft.yaml"
    path.write_text(text)
    return path


def test_design_json_has_sqnr_db_of_fft_layers_only(tmp_path):
    from omniconv.cli import main

    assert main(["dse", str(_fft_config(tmp_path)), "--out", str(tmp_path / "o")]) == 0
    doc = json.loads((tmp_path / "o" / "design.json").read_text())
    by_name = {lay["name"]: lay for lay in doc["layers"]}
    # tiny: conv1 3x3, conv3 5x5, both on 8-point tiles
    assert by_name["conv1"]["sqnr_db"] == float(fft_sqnr_db(8, 8, 3))
    assert by_name["conv3"]["sqnr_db"] == float(fft_sqnr_db(8, 8, 5))
    for lay in doc["layers"]:
        assert ("sqnr_db" in lay) == (lay["algorithm"] == "fft")
    from dse.design import read_design
    assert read_design(tmp_path / "o" / "design.json").layers[0].sqnr_db == \
        by_name["conv1"]["sqnr_db"]


def test_pin_below_the_floor_is_one_line_naming_the_floor(tmp_path):
    from omniconv.config import load_config
    from omniconv.flow import explore

    floor = float(fft_sqnr_db(8, 8, 5)) + 1         # conv3 (5x5) falls below, conv1 not
    with pytest.raises(InputError) as info:
        explore(load_config(_fft_config(tmp_path, floor)), progress=False)
    assert info.value.field == "layers.conv3"
    assert "min_sqnr_db" in info.value.message and "5x5" in info.value.message


@pytest.mark.parametrize("value", ["hi", -1, 201, True, ".nan"])
def test_config_min_sqnr_db_is_checked(tmp_path, value):
    from omniconv.config import load_config

    with pytest.raises(InputError) as info:
        load_config(_fft_config(tmp_path, value))
    assert info.value.field == "min_sqnr_db"


def test_config_min_sqnr_db_default(tmp_path):
    from omniconv.config import load_config

    assert load_config(_fft_config(tmp_path)).min_sqnr_db == DEFAULT_MIN_SQNR_DB
    assert load_config(_fft_config(tmp_path, 12.5)).min_sqnr_db == 12.5
