"""Hardware search and mapping on real networks: pins, fallback, errors, optimality bounds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dse.board import load_board
from dse.errors import InputError
from dse.search import layer_graph, pareto_front, search
from dse.zoo import builtin

# One fully pinned overlay: the search has one point, so only the mapping is exercised.
PINNED = {"rows": 16, "cols": 16, "winograd_m": 2, "fft_size": 8, "act_buffer_kib": 128,
          "weight_buffer_kib": 512, "out_buffer_kib": 64, "bus_bits": 128}


@pytest.fixture(scope="module")
def zcu102():
    return load_board("zcu102")


def test_layer_graph_folds_activations():
    net = builtin("tiny")
    graph = layer_graph(net)
    ops = {layer.op for layer in graph.layers}
    assert not ops & {"relu", "relu6", "sigmoid", "identity", "flatten"}
    # every edge joins nodes in topological order and every layer has a node
    assert all(u < v for u, v in graph.edges)
    assert set(graph.node_of) == {layer.name for layer in net.layers}


def test_pareto_front_equals_brute_force():
    rng = np.random.default_rng(5)
    lat, pw = rng.integers(0, 20, 200).astype(float), rng.integers(0, 20, 200).astype(float)
    front = set(pareto_front(lat, pw).tolist())
    for i in range(200):
        dominated = np.any((lat <= lat[i]) & (pw <= pw[i]) & ((lat < lat[i]) | (pw < pw[i])))
        duplicate_before = np.any((lat[:i] == lat[i]) & (pw[:i] == pw[i]))
        assert (i in front) == (not dominated and not duplicate_before)


@pytest.mark.parametrize("name", ["googlenet",                  # inception_v4: 63 s, regress
                                  pytest.param("inception_v4", marks=pytest.mark.regress)])
def test_full_graphs_are_mapped_optimally_with_mixed_algorithms(name, zcu102):
    # with a Winograd unit the 3×3 layers take it and the rest (1×1, 5×5 stride 1 aside)
    # stay im2col; without the pin the zcu102 point has no unit worth its resources
    design = search(builtin(name), zcu102, config=name, hardware_pins={"winograd_m": 2})
    assert design.optimal and design.mapping_method == "reduce"
    algorithms = {p.algorithm for p in design.layers}
    assert "im2col" in algorithms and len(algorithms) >= 2


def test_plan_totals_are_consistent_and_bounded(zcu102):
    net = builtin("resnet18")
    design = search(net, zcu102, hardware_pins=PINNED)
    aux = sum(o["cycles"] for o in design.other_layers)
    layer_sum = sum(p.cycles for p in design.layers) + aux
    # per-layer cycles are rounded up one by one
    assert design.total_cycles <= layer_sum <= design.total_cycles + len(design.layers)
    # free choice is never worse than a subset of the algorithms (kn2row and Winograd,
    # im2col where neither runs: on these buffers no smaller subset runs every layer)
    subset = search(net, zcu102, hardware_pins=PINNED, algorithms=("kn2row", "winograd"))
    assert design.total_cycles <= subset.total_cycles
    assert {p.algorithm for p in subset.layers} <= {"kn2row", "winograd", "im2col"}


def test_pareto_front_holds_both_mappings_and_no_design_beats_it(zcu102):
    """The front is taken over every point's least-latency and least-energy mappings: its
    points beat one another in neither both latency and power, and neither the latency
    nor the energy design (their own mapping) beats any front point in both.  (On the
    grid both searches map the same points; the nlp optimiser's two searches do not, so
    there only the first property holds: test_optimize.py.)"""
    net = builtin("tiny")
    fast = search(net, zcu102, objective="latency", optimizer="grid")
    frugal = search(net, zcu102, objective="energy", optimizer="grid")
    front = [(p["latency_ms"], p["power_w"]) for p in fast.pareto]
    assert {p["mapped_for"] for p in fast.pareto} <= {"latency", "energy"}
    for i, (lat, pw) in enumerate(front):
        for j, (lat2, pw2) in enumerate(front):
            assert i == j or not (lat2 <= lat and pw2 <= pw and (lat2, pw2) != (lat, pw))
    for design in (fast, frugal):
        lat, pw = round(design.latency_ms, 6), round(design.power_w, 6)
        assert not any(lat < a and pw < b for a, b in front), design.objective


def test_area_front_is_non_dominated_and_holds_the_design(zcu102):
    """design.json's ``pareto_area``: latency against the share of the board's most used
    resource (worked out here from each entry's counts and the board), no entry beaten by
    another in both, the fastest at least as fast as the design, and the design (latency
    and its own area) beating no entry in both."""
    design = search(builtin("tiny"), zcu102, objective="latency")
    front = design.pareto_area
    assert len(front) >= 2
    for p in front:
        area = max(p["dsp"] / zcu102.dsp, p["lut"] / zcu102.lut, p["ff"] / zcu102.ff,
                   p["bram_blocks"] / zcu102.bram_blocks)
        assert p["area"] == pytest.approx(area, abs=1e-6) and area <= 1
    pts = [(p["latency_ms"], p["area"]) for p in front]
    for i, (lat, area) in enumerate(pts):
        for j, (lat2, area2) in enumerate(pts):
            assert i == j or not (lat2 <= lat and area2 <= area and (lat2, area2) != (lat, area))
    assert min(lat for lat, _ in pts) <= round(design.latency_ms, 6)
    r = design.resources
    mine = max(r["dsp"] / zcu102.dsp, r["lut"] / zcu102.lut, r["ff"] / zcu102.ff,
               r["bram_blocks"] / zcu102.bram_blocks)
    assert not any(round(design.latency_ms, 6) < lat and mine < area - 1e-6 for lat, area in pts)


def test_energy_objective_trades_latency_for_energy(zcu102):
    net = builtin("resnet18")
    fast = search(net, zcu102, hardware_pins=PINNED, objective="latency")
    frugal = search(net, zcu102, hardware_pins=PINNED, objective="energy")
    assert frugal.energy_mj <= fast.energy_mj * (1 + 1e-12)
    assert fast.total_cycles <= frugal.total_cycles


def test_fallback_to_im2col_where_no_allowed_algorithm_runs(zcu102):
    net = builtin("tiny")
    design = search(net, zcu102, algorithms=("winograd",), hardware_pins=PINNED)
    for plan in design.layers:
        layer = net[plan.name]
        square3 = layer.kernel[0] == layer.kernel[1] >= 3 and layer.stride == (1, 1)
        assert plan.algorithm == ("winograd" if square3 and layer.groups == 1 else "im2col")


def test_layer_pins_are_obeyed(zcu102):
    net = builtin("tiny")
    conv = [layer.name for layer in net.layers if layer.op == "conv"]
    pins = {conv[0]: {"algorithm": "kn2row", "dataflow": "os"} if net[conv[0]].kernel != (1, 1)
            else {"dataflow": "is"}}
    design = search(net, zcu102, layer_pins=pins, hardware_pins=PINNED)
    plan = {p.name: p for p in design.layers}[conv[0]]
    assert plan.dataflow == pins[conv[0]]["dataflow"]
    assert plan.algorithm == pins[conv[0]].get("algorithm", plan.algorithm)


def test_pin_an_algorithm_cannot_run_names_the_layer(zcu102):
    net = builtin("googlenet")
    with pytest.raises(InputError, match=r"^cfg: layers\.inception_3a/1x1: winograd cannot run"):
        search(net, zcu102, layer_pins={"inception_3a/1x1": {"algorithm": "winograd"}},
               source="cfg")


def test_unknown_layer_pin(zcu102):
    with pytest.raises(InputError, match=r"^cfg: layers\.nope: must name a conv or fc layer"):
        search(builtin("tiny"), zcu102, layer_pins={"nope": {"dataflow": "ws"}}, source="cfg")


def test_hardware_pin_that_does_not_fit_the_board():
    board = load_board("ecp5-85k")
    with pytest.raises(InputError, match=r"^cfg: hardware: pins .* do not fit board ecp5-85k"):
        search(builtin("tiny"), board, hardware_pins={"rows": 128, "cols": 128}, source="cfg")


def test_board_too_small_for_any_overlay():
    board = dataclasses.replace(load_board("ecp5-85k"), dsp=1)
    with pytest.raises(InputError, match=r"^ecp5-85k: cannot hold the smallest overlay"):
        search(builtin("tiny"), board)


def test_winograd_pin_with_no_winograd_unit(zcu102):
    net = builtin("tiny")
    name = next(l.name for l in net.layers if l.op == "conv" and l.kernel == (3, 3)
                and l.stride == (1, 1))
    with pytest.raises(InputError, match=rf"^cfg: layers\.{name}: winograd needs hardware"):
        search(net, zcu102, hardware_pins={**PINNED, "winograd_m": 0}, source="cfg",
               layer_pins={name: {"algorithm": "winograd"}})


@pytest.mark.parametrize("name", ["vgg16", "resnet18", "googlenet"])
def test_no_transform_unit_that_no_layer_uses(name, zcu102):
    # a unit bought for a gain inside the near-tie tolerance is not worth its resources: the
    # cheaper point without it is chosen (here: an FFT unit no layer ran, +63k LUT, 2x power)
    design = search(builtin(name), zcu102, config=name)
    used = {p.algorithm for p in design.layers}
    if "fft" not in used:
        assert design.hardware["fft_size"] == 0
    if "winograd" not in used:
        assert design.hardware["winograd_m"] == 0


def test_unused_unit_rule_marks_points_by_their_own_mapping():
    from dse.cost.choices import enumerate_choices
    from dse.cost.hardware import HardwareTable
    from dse.search import _unused_unit
    from rtl.params import OverlayParams

    choices = enumerate_choices(["im2col", "winograd", "fft"], ["ws"])
    idx = {c.variant: i for i, c in enumerate(choices.choices)}
    hw = HardwareTable.from_params([
        OverlayParams(winograd_m=2, a_width=10, b_width=12),
        OverlayParams(winograd_m=2, a_width=10, b_width=12),
        OverlayParams(fft_size=8, a_width=17, b_width=17, acc_width=48),
        OverlayParams()])
    mapping = np.array([[idx["im2col"], idx["F2x2_3x3"]],      # uses its Winograd unit
                        [idx["im2col"], idx["im2col"]],        # does not
                        [idx["im2col"], idx["im2col"]],        # FFT unit unused
                        [idx["im2col"], idx["im2col"]]])       # no unit at all
    assert _unused_unit(choices, hw, mapping, set()).tolist() == [False, True, True, False]
    assert _unused_unit(choices, hw, mapping, {"winograd_m", "fft_size"}).tolist() == [
        False] * 4


def test_a_unit_no_layer_runs_is_left_out_unless_pinned(zcu102):
    net = builtin("tiny")
    pins = {layer.name: {"algorithm": "im2col"} for layer in net.layers if layer.op == "conv"}
    free = search(net, zcu102, algorithms=("im2col", "winograd"), layer_pins=pins)
    assert free.hardware["winograd_m"] == 0
    pinned = search(net, zcu102, algorithms=("im2col", "winograd"), layer_pins=pins,
                    hardware_pins={"winograd_m": 2})
    assert pinned.hardware["winograd_m"] == 2
