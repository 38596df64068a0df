"""rtl.params: validation messages and derived properties (STYLE.md example 10)."""

import dataclasses

import pytest

from rtl.params import Algorithm, ArrayParams, Dataflow, OverlayParams


def test_dataflow_codes_are_stable():
    # the RTL mode register and dse.cost.gemm both rely on this encoding
    assert [d.code for d in (Dataflow.WS, Dataflow.OS, Dataflow.IS)] == [0, 1, 2]


def test_array_rows_wrong_kind():
    with pytest.raises(TypeError, match=r"^rows must be an integer, not '8'$"):
        ArrayParams(rows="8")


def test_array_rows_out_of_range():
    with pytest.raises(ValueError, match=r"^rows must be between 1 and 256, not 0$"):
        ArrayParams(rows=0)


def test_array_accumulator_too_narrow():
    with pytest.raises(ValueError, match=r"^acc_width must be at least a_width \+ b_width = 32, "
                                         r"not 24$"):
        ArrayParams(a_width=16, b_width=16, acc_width=24)


def test_overlay_bool_is_not_an_integer():
    with pytest.raises(TypeError, match=r"^sparse_lanes must be an integer, not True$"):
        OverlayParams(sparse_lanes=True, sparse_banks=1)


def test_overlay_sparse_fields_go_together():
    with pytest.raises(ValueError, match=r"^sparse_lanes and sparse_banks must both be 0"):
        OverlayParams(sparse_lanes=4)


def test_overlay_fft_size():
    with pytest.raises(ValueError, match=r"^fft_size must be 0, 4, 8, 16 or 32, not 12$"):
        OverlayParams(fft_size=12)


def test_replace_revalidates():
    base = OverlayParams()
    with pytest.raises(ValueError, match=r"^winograd_m must be 0, 2 or 4, not 3$"):
        dataclasses.replace(base, winograd_m=3)


def test_algorithms_follow_units():
    p = OverlayParams(winograd_m=2, fft_size=8)
    assert p.algorithms == (Algorithm.IM2COL, Algorithm.KN2ROW, Algorithm.WINOGRAD, Algorithm.FFT)
    assert OverlayParams().algorithms == (Algorithm.IM2COL, Algorithm.KN2ROW)


def test_as_dict_is_flat_and_complete():
    d = OverlayParams(rows=4, cols=16).as_dict()
    assert d["rows"] == 4 and d["cols"] == 16
    assert set(d) == {f.name for f in dataclasses.fields(OverlayParams)}
    assert OverlayParams(rows=4, cols=16).array == ArrayParams(rows=4, cols=16)


@pytest.mark.parametrize("cols, m, lanes, ok", [
    (8, 0, 1, True), (8, 0, 2, False),          # no Winograd unit: one (unused) lane
    (8, 2, 2, True), (8, 2, 4, False),          # 4 lanes of 2×2 tiles: 16 > max(8, 4)
    (4, 2, 1, True), (64, 4, 4, True), (64, 4, 8, False),
    (48, 4, 2, True), (48, 2, 3, False),        # 3 divides 48 but is not a power of two
    (24, 2, 16, False),                         # 16 does not divide 24
])
def test_winograd_lanes_rule(cols, m, lanes, ok):
    from dse.cost.hardware import HardwareTable
    from rtl.params import winograd_lanes_ok

    assert bool(winograd_lanes_ok(cols, m, lanes)) == ok
    widths = dict(a_width=15, b_width=18, acc_width=48) if m else {}
    make = lambda: OverlayParams(cols=cols, winograd_m=m, winograd_lanes=lanes,  # noqa: E731
                                 **widths)
    grid = lambda: HardwareTable.from_grid(cols=[cols], winograd_m=[m],  # noqa: E731
                                           winograd_lanes=[lanes], **{k: [v] for k, v in
                                                                      widths.items()})
    if ok:
        assert make().winograd_lanes == lanes and len(grid()) == 1
    else:
        with pytest.raises(ValueError, match="winograd_lanes must be"):
            make()
        with pytest.raises(ValueError, match="winograd_lanes must be"):
            grid()
