"""The explorer's ``sparse_fft``: lowering, expected schedule length, cost model, search, config.

The expected-schedule tolerance is measured (docs/sparse-fft.md, "Explorer"): on random int8
3×3 kernels pruned by ``prune_spectral`` the estimate is within −1 % … +6 % of the real
schedule of ``schedule_layer``; the test allows 8 %.
"""

from __future__ import annotations

import numpy as np
import pytest

from dse.board import load_board
from dse.compiler.sparse_schedule import prune_spectral, schedule_layer, spectral_bins
from dse.cost.choices import enumerate_choices, legal_mask
from dse.cost.hardware import HardwareTable
from dse.cost.latency import sparse_cycles
from dse.cost.model import evaluate
from dse.cost.resources import estimate_resources
from dse.cost.workload import LayerTable
from dse.errors import InputError
from dse.lowering import Geometry, sparse_fft
from dse.network import NetworkBuilder
from dse.search import search
from sim.models.fft import spectral_kernels

TOLERANCE = 0.08


def _net(channels=256, size=12, layers=2, kernel=3):
    b = NetworkBuilder("deep", (channels, size, size))
    for i in range(layers):
        b.conv(f"c{i + 1}", None, out_channels=channels, kernel=kernel, padding=kernel // 2)
    return b.build()


def _mixed():
    b = NetworkBuilder("mixed", (16, 20, 20))
    b.conv("a", None, out_channels=24, kernel=3, padding=1)
    b.conv("b", None, out_channels=40, kernel=5, padding=2)
    b.conv("s", None, out_channels=8, kernel=3, stride=2, padding=1)
    b.conv("p", None, out_channels=70, kernel=1)
    b.conv("c", None, out_channels=33, kernel=3)
    return b.build()


def _hw(**axes):
    base = dict(rows=[8], cols=[8], a_width=[17], b_width=[17], acc_width=[48], fft_size=[8],
                sparse_lanes=[16], sparse_banks=[16])
    base.update(axes)
    return HardwareTable.from_grid(**base)


def test_scalar_and_vectorised_lowering_agree():
    net = _mixed()
    layers = LayerTable.from_layers(net.layers, density={"a": 0.1, "b": 0.5, "c": 0.3})
    choices = enumerate_choices(["sparse_fft"], ["ws"])
    hw = HardwareTable.from_grid(fft_size=[8], sparse_lanes=[7, 16, 64], sparse_banks=[5, 40],
                                 a_width=[17], b_width=[17], acc_width=[48])
    arr = sparse_cycles(layers, choices, hw)
    legal = legal_mask(layers, choices)
    checked = 0
    by_name = {x.name: x for x in net.layers}
    for li, name in enumerate(layers.names):
        g = Geometry.of_layer(by_name[name])
        for ci, choice in enumerate(choices.choices):
            if not legal[li, ci]:
                continue
            n = choices.fft_n[ci]
            z = sparse_fft.keep(float(layers.density[li]), int(n))
            for p in range(len(hw)):
                one = sparse_fft.cycles(g, int(n), int(hw.sparse_lanes[p]),
                                        int(hw.sparse_banks[p]), z)
                for key in ("cycles", "steps", "macs", "front_cycles", "back_cycles"):
                    assert float(one[key]) == pytest.approx(float(arr[key][li, ci, p]),
                                                            rel=1e-12), (name, key, p)
                checked += 1
    assert checked >= 3 * 2 * 6       # a, b, c legal on both sizes (c: 3×3 on 16 too)
    # illegal on the spectral path: stride 2, 1×1
    assert not legal[layers.names.index("s")].any()
    assert not legal[layers.names.index("p")].any()


def test_expected_steps_hand_cases():
    # one lane: it reads its z bins, never two from a bank in one step with B >= bins
    assert sparse_fft.expected_steps(40, 10, 1, 40) == pytest.approx(10.0)
    # one bank, one port: every read of every lane goes through it
    assert sparse_fft.expected_steps(40, 10, 4, 1) == pytest.approx(40.0)
    # two ports halve the bank bound
    assert sparse_fft.expected_steps(40, 10, 4, 1, 2) == pytest.approx(20.0)
    # every bin kept: each bank of s bins gets p·s reads exactly; Δ = max(z, p·s)
    assert sparse_fft.expected_steps(40, 40, 3, 8) == pytest.approx(40.0)
    assert sparse_fft.expected_steps(40, 40, 3, 2) == pytest.approx(60.0)
    assert sparse_fft.expected_steps(40, 0, 3, 8) == 0.0
    with pytest.raises(ValueError, match="nnz must be at most bins"):
        sparse_fft.expected_steps(40, 41, 3, 8)


@pytest.mark.parametrize("n, filters, channels, lanes, banks, density", [
    (8, 64, 32, 16, 16, 0.25), (8, 64, 32, 64, 40, 0.25), (8, 70, 24, 16, 8, 0.1),
    (8, 48, 32, 16, 16, 0.5), (16, 32, 16, 16, 16, 0.25),
])
def test_expected_steps_match_real_schedules(n, filters, channels, lanes, banks, density):
    rng = np.random.default_rng([2024, n, filters, lanes])
    w = rng.integers(-128, 128, (filters, channels, 3, 3))
    kr, ki, _ = spectral_kernels(w, n)
    h = n // 2 + 1
    mask = prune_spectral(kr[..., :h], ki[..., :h], density).mask
    real = schedule_layer(mask, lanes, banks).cycles
    g = Geometry(channels, filters, 1, 3, 3, 1, 1, 12, 12, 12, 12, 1, 1, 1, 1, True)
    _, steps = sparse_fft.mac_cycles(g, n, lanes, banks, sparse_fft.keep(density, n))
    assert abs(float(steps) - real) / real <= TOLERANCE
    assert spectral_bins(n) == sparse_fft.bins_of(n)


def test_resources_count_three_dsps_a_lane_and_banks():
    hw = _hw(fft_size=[16], sparse_lanes=[16, 64], sparse_banks=[16, 40])
    bare = _hw(fft_size=[16], sparse_lanes=[0], sparse_banks=[0])
    r, r0 = estimate_resources(hw), estimate_resources(bare)
    lanes = hw.sparse_lanes
    assert np.array_equal(r.dsp - r0.dsp[0], 3 * lanes)
    # N = 16: 144-deep kernel banks and accumulators are block RAM
    assert np.all(r.bram_blocks > r0.bram_blocks[0])
    assert r.bram_blocks[lanes == 64].min() > r.bram_blocks[lanes == 16].max()


def test_cost_of_other_choices_unchanged_by_sparse_columns():
    layers = LayerTable.from_network(_mixed())
    plain = enumerate_choices(["im2col", "kn2row", "winograd", "fft"], ["ws", "os"])
    both = enumerate_choices(["im2col", "kn2row", "winograd", "fft", "sparse_fft"],
                             ["ws", "os"])
    hw = _hw(rows=[8, 16], winograd_m=[0], sparse_lanes=[16, 64], sparse_banks=[16, 40],
             act_buffer_kib=[32, 256])
    a = evaluate(layers, plain, hw, precision=8)
    b = evaluate(layers, both, hw, precision=8)
    cols = [both.index(c) for c in plain.choices]
    for name in ("cycles", "compute_cycles", "dram_bytes", "energy_pj", "valid"):
        assert np.array_equal(np.asarray(getattr(a, name)),
                              np.asarray(getattr(b, name))[:, cols]), name
    sparse = [i for i, c in enumerate(both.choices) if c.algorithm.value == "sparse_fft"]
    assert np.isfinite(np.asarray(b.cycles)[:, sparse]).any()


def test_flexible_dataflow_is_the_tiling():
    from dse.cost.model import _Points
    from dse.cost.sparse_cost import sparse_tile_traffic
    from dse.cost.sparse_traffic import sparse_traffic
    from dse.cost.traffic import tile_traffic

    # the tilings are the reuse modes (traffic before the datapath's feasibility)
    layers = LayerTable.from_network(_net(channels=128, size=56, layers=1))
    choices = enumerate_choices(["sparse_fft"], ["ws"], variants=["sparse8"])
    hw = _hw(act_buffer_kib=[64], weight_buffer_kib=[64])
    points = _Points({k: np.asarray(getattr(hw, k)) for k in (
        "act_buffer_kib", "weight_buffer_kib", "out_buffer_kib", "acc_width")})
    t = sparse_tile_traffic(tile_traffic(layers, choices, points, 8, np), layers, choices,
                            points, 8)
    labels = [c.tiling for c in choices.choices]
    kr = float(np.asarray(t.dram_bytes)[0, labels.index("weights"), 0])
    ar = float(np.asarray(t.dram_bytes)[0, labels.index("activations"), 0])
    st = sparse_traffic(layers, 8, 10, [64 * 1024], [64 * 1024])
    assert (kr, ar) == (float(st.kr_bytes[0, 0]), float(st.ar_bytes[0, 0]))
    assert kr != ar
    # ... and the conv datapath runs the layer although one row of tiles' spectra of every
    # channel (10 tiles × 128 channels × 64 words) overflows its buffer (30,840 words at
    # 64 KiB): in channel chunks, the explorer's cycles the compiler's plan's
    from dse.compiler import plan_conv
    from dse.cost.resources import overlay_limits
    from rtl.params import DatapathLimits

    cost = evaluate(layers, choices, hw)
    assert np.isfinite(np.asarray(cost.dram_bytes)).all()
    params = hw.params(0)
    conv = [x for x in _net(channels=128, size=56, layers=1).layers if x.op == "conv"][0]
    plan = plan_conv(conv, "sparse_fft", "ws",
                     params, DatapathLimits(**overlay_limits(params)), density=0.25)
    assert len({b.channels for b in plan.bands}) > 1
    explorer = np.asarray(cost.compute_cycles)[0, :, 0]
    assert np.allclose(explorer, plan.cycles(params.rows, params.cols)["cycles"], rtol=0.02)


def test_explorer_picks_sparse_only_when_allowed():
    # 64 channels: a group of 64 filters' kernels (64 · 10 non-zeros a lane) fits the sparse
    # unit's kernel banks on the grid's weight buffers
    net, board = _net(channels=64), load_board("zcu102")
    pins = dict(rows=2, cols=2, fft_size=8, sparse_lanes=64, sparse_banks=40)
    with_sparse = search(net, board, algorithms=("im2col", "sparse_fft"), optimizer="grid",
                         hardware_pins=pins)
    assert {p.algorithm for p in with_sparse.layers} == {"sparse_fft"}
    entry = with_sparse.layers[0].sparse
    assert entry["density"] == 0.25 and entry["nnz"] == 10
    assert (entry["sparse_lanes"], entry["sparse_banks"]) == (64, 40)
    assert entry["reuse"] in ("kernels", "activations")
    assert 0 < entry["lane_utilisation"] <= 1
    assert with_sparse.layers[0].sqnr_db is not None
    assert '"sparse"' in with_sparse.to_json()
    for algos in (("im2col",), ("im2col", "fft")):
        other = search(net, board, algorithms=algos, optimizer="grid",
                       hardware_pins={k: v for k, v in pins.items() if "sparse" not in k})
        assert all(p.algorithm != "sparse_fft" and p.sparse is None for p in other.layers)
        assert other.latency_ms > with_sparse.latency_ms
    # denser kernels take longer
    dense = search(net, board, algorithms=("im2col", "sparse_fft"), optimizer="grid",
                   hardware_pins=pins, density={"*": 0.5, "c2": 0.1})
    assert [p.sparse["nnz"] for p in dense.layers] == [20, 4]


def test_default_search_unaffected_by_density():
    net, board = _mixed(), load_board("zcu102")
    a = search(net, board, optimizer="grid")
    b = search(net, board, optimizer="grid", density={"*": 0.5, "a": 0.1})
    assert a.to_dict()["layers"] == b.to_dict()["layers"]
    assert a.hardware == b.hardware and a.total_cycles == b.total_cycles
    assert a.hardware["sparse_lanes"] == 0


@pytest.mark.parametrize("density, field", [
    (0, "sparsity.density"), (1.5, "sparsity.density"), ("a", "sparsity.density"),
    ({"*": 0.2, "c1": 0.0}, "layers.c1.density"), ({"nope": 0.5}, "layers.nope"),
])
def test_search_refuses_bad_density(density, field):
    with pytest.raises(InputError) as exc:
        search(_net(layers=1), load_board("zcu102"), density=density, optimizer="grid")
    assert exc.value.field == field


def _config(tmp_path, text):
    from omniconv.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text("network: vgg16\nboard: zcu102\n" + text)
    return load_config(str(path))


@pytest.mark.parametrize("text, field, message", [
    ("sparsity: {density: 0}\n", "sparsity.density", r"must be a number in \(0, 1\]"),
    ("sparsity: {density: 1.5}\n", "sparsity.density", r"not 1.5"),
    ("sparsity: {density: dense}\n", "sparsity.density", r"not 'dense'"),
    ("sparsity: {densty: 0.5}\n", "sparsity.densty", "is not a known key"),
    ("layers: {conv1_1: {density: 0}}\n", "layers.conv1_1.density", r"\(0, 1\]"),
    ("layers: {conv1_1: {density: true}}\n", "layers.conv1_1.density", "not True"),
])
def test_config_refuses_bad_density(tmp_path, text, field, message):
    with pytest.raises(InputError, match=message) as exc:
        _config(tmp_path, text)
    assert exc.value.field == field
    assert "\n" not in str(exc.value)


def test_config_density_and_unknown_layer(tmp_path):
    cfg = _config(tmp_path, "algorithms: [im2col, fft, sparse_fft]\nsparsity: {density: 0.3}\n"
                            "layers: {conv1_1: {density: 0.1}, bogus: {density: 0.5}}\n")
    assert cfg.density == 0.3
    assert cfg.densities == {"*": 0.3, "conv1_1": 0.1, "bogus": 0.5}
    assert cfg.layers["conv1_1"].algorithm is None
    default = _config(tmp_path, "")
    assert default.density == 0.25 and "sparse_fft" not in [a.value for a in default.algorithms]
    from dse.zoo import builtin

    with pytest.raises(InputError, match="must name a conv or fc layer of vgg16, not 'bogus'") \
            as exc:
        search(builtin("vgg16"), cfg.board, density=cfg.densities, source=str(cfg.path))
    assert exc.value.field == "layers.bogus"


def test_verify_maps_sparse_only_on_the_datapath_with_a_sparse_unit():
    import dataclasses

    from rtl.params import OverlayParams
    from sim.verify import VerifySettings, map_network

    params = OverlayParams(rows=8, cols=8, a_width=17, b_width=17, acc_width=48, fft_size=8,
                           sparse_lanes=16, sparse_banks=16)
    bare = dataclasses.replace(params, sparse_lanes=0, sparse_banks=0)
    base = dict(name="t", stem="t", source="c.yaml", network_source="deep",
                board=load_board("zcu102"), precision=8, objective="latency",
                algorithms=("im2col", "sparse_fft"), dataflows=("ws", "os", "is"),
                min_sqnr_db=40.0)
    pinned = VerifySettings(**base, layer_pins={"c1": {"algorithm": "sparse_fft"}})
    # the datapath mode with a sparse unit runs a sparse pin
    design = map_network(_net(channels=16, layers=1), params, pinned, log=print)
    assert [p.algorithm for p in design.layers if p.name == "c1"] == ["sparse_fft"]
    # without a sparse unit: mapped without sparse_fft, and a sparse pin is refused
    lines = []
    design = map_network(_net(channels=16, layers=1), bare,
                         VerifySettings(**base, layer_pins={}), log=lines.append)
    assert lines == ["sparse_fft needs the datapath mode and a sparse unit beside the FFT "
                     "unit: mapped without it"]
    assert all(p.algorithm != "sparse_fft" for p in design.layers)
    with pytest.raises(InputError, match="sparse_fft runs on the datapath with a sparse unit"):
        map_network(_net(channels=16, layers=1), bare, pinned, log=lines.append)
