"""A whole network, explored and compiled, on the overlay top in Verilator.

``dse.compiler.network.compile_network`` turns a small residual network of the IR
(conv → ReLU → max pool → conv → ReLU → conv → add with the pool's output → ReLU →
average pool 3×3/2 with padding → global average pool) and its design (``dse.search.search``
on a 4×4 overlay with 2 KiB buffers, the algorithms restricted to im2col and kn2row, the
dataflows to ws and os, one layer pinned to kn2row and one to os so that both datapaths and
both dataflows run) into one program.
It runs in Verilator with the DRAM model in RTL (``sim/overlay_sim.py``); every layer's
output tensor read back equals the golden tensor of ``sim.models`` (computed by
``sim.overlay_golden.golden_outputs`` from the plans' requantisation and the weights, never
from the program).  Then the
refusals: layers and designs the chain cannot run, each a ValueError naming the layer.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dse.board import load_board
from dse.compiler.network import compile_network as _compile_network
from dse.compiler.network import design_overlay
from dse.compiler.plan import plan_conv
from dse.compiler.program import (PoolLayer, build_network_program, decode_output,
                                  instruction_cycles)
from dse.compiler.timing import program_choices, program_design, program_timing
from dse.network import NetworkBuilder
from dse.zoo import tiny
from dse.search import search
from rtl.isa import ComputeTile, PoolTile
from rtl.params import DISPATCH_LATENCY, FINISH_CYCLES
from rtl.overlay_top import OverlayTop
from sim.overlay_golden import golden_outputs
from sim.models.requant import requantize
from sim.overlay_sim import build_overlay_sim, instruction_spans, run_overlay_sim

pytestmark = pytest.mark.verilator

#: A 4×4 overlay with small buffers (the search keeps the pins: one hardware point).
PINS = {"rows": 4, "cols": 4, "act_buffer_kib": 2, "weight_buffer_kib": 2,
        "out_buffer_kib": 2, "bus_bits": 128}
#: DRAM model words (16 bytes each): 256 KiB.
MEM_WORDS = 1 << 14
#: Table-buffer words of the top every test here builds: one Verilator build for all, and
#: for test_double_buffer.py's (which imports PINS, MEM_WORDS and TABLE_WORDS) and
#: tests/cli/test_verify_top.py's (omniconv verify sizes it alike).
TABLE_WORDS = 256



def compile_network(network, design, x, weights=None, **kwargs):
    """``dse.compiler.network.compile_network`` and the golden tensors of its program
    (``sim.overlay_golden``, computed from the plans and the weights, not the program)."""
    lp, used = _compile_network(network, design, x, weights, **kwargs)
    return lp, golden_outputs(lp, x, list(used.values()), list(used))


def _sim(design):
    """The Verilator build of the design's overlay top (cached by its Verilog's hash)."""
    params, limits = design_overlay(design)
    top = OverlayTop(params, limits, table_words=TABLE_WORDS, token_depth=2)
    return build_overlay_sim(top, mem_words=MEM_WORDS)


def _residual(channels=8):
    """conv → ReLU → max pool → conv → ReLU → 1×1 conv → add with the pool's output → ReLU
    → average pool 3×3/2 with padding → global average pool, every layer ``channels`` wide
    (also the network of test_compile_network_wide.py and test_double_buffer.py)."""
    b = NetworkBuilder("residual", (6, 8, 8))
    b.conv("c1", out_channels=channels, kernel=3, padding=1)
    b.act("relu", "r1")
    b.maxpool("p1", kernel=2)                                      # channels×4×4
    b.conv("c2", out_channels=channels, kernel=3, padding=1)
    b.act("relu", "r2")
    b.conv("c3", out_channels=channels, kernel=1)
    b.sum("add", ["c3", "p1"])
    b.act("relu", "r3")
    b.avgpool("ap", kernel=3, stride=2, padding=1)                  # channels×2×2
    b.gap("g")
    b.act("identity", "out")
    return b.build()


#: The residual network's layer pins: both datapaths and both dataflows run.
RESIDUAL_LAYER_PINS = {"c2": {"algorithm": "kn2row"}, "c3": {"dataflow": "os"}}


@pytest.fixture(scope="module")
def explored():
    net = _residual()
    design = search(net, load_board("zcu102"), algorithms=("im2col", "kn2row"),
                    dataflows=("ws", "os"), hardware_pins=PINS,
                    layer_pins=RESIDUAL_LAYER_PINS, optimizer="grid")
    return net, design


def test_network_compiles_and_runs_bit_exact_in_verilator(explored):
    net, design = explored
    x = np.random.default_rng(7).integers(-128, 128, net.input_shape)
    lp, gold = compile_network(net, design, x, seed=3)
    # the chain: folded ReLUs, the add's second operand is the max pool's output tensor
    assert list(gold) == ["c1", "p1", "c2", "c3", "add", "ap", "g"]
    kinds = [p.mode if isinstance(p, PoolLayer) else p.algorithm for p in lp.plans]
    assert kinds[1:] == ["max", "kn2row", "im2col", "add", "avg", "gavg"]
    # the design reads c1 from host patches: the image holds them in place of x
    assert kinds[0] == "im2col" and lp.plans[0].host_patches != ()
    assert lp.tensors[0].shape == lp.plans[0].in_shape == (6 * 9, 8, 8)
    assert [p.invocations[0].registers["rq_relu"] for p in lp.plans if not
            isinstance(p, PoolLayer)] == [1, 1, 0]
    assert lp.plans[4].source == 2 and lp.plans[4].relu and not lp.plans[5].relu
    by_name = {p.name: p for p in design.layers}
    flows = [p.dataflow for p in lp.plans if not isinstance(p, PoolLayer)]
    assert flows == [by_name[n].dataflow for n in ("c1", "c2", "c3")] and flows[2] == "os"
    # the golden tensors are not degenerate (a wrong program cannot match them by chance)
    for name, g in gold.items():
        assert len(np.unique(g)) > (1 if name == "g" else 4), name
    assert all(gold[n].min() >= 0 for n in ("c1", "p1", "c2", "add"))  # the folded ReLUs
    assert gold["c3"].min() < 0

    params, limits = design_overlay(design)
    assert lp.table_words <= TABLE_WORDS
    sim = _sim(design)
    r = run_overlay_sim(sim, lp.image, program=lp.program_addr)
    assert r.ok and not r.error, (r.error_code, r.error_index)
    for i, (name, g) in enumerate(gold.items()):
        out = decode_output(lp, r.memory[:len(lp.image)], 0, layer=i)
        assert np.array_equal(out, g), f"{name}: {(out != g).sum()} outputs differ"


def _branches():
    """A stem, an inception block (1×1; 1×1 → 3×3; 3×3/1 max pool → 1×1; concatenated),
    a ResNet basic block with a projection shortcut (3×3/2 → 3×3, plus 1×1/2 of the block's
    input), then global pooling and a fully connected layer; odd sizes and channel counts."""
    b = NetworkBuilder("branches", (5, 9, 9))
    b.conv("stem", out_channels=8, kernel=3, padding=1)
    b.act("relu", "r0")
    b.conv("b1", ["r0"], out_channels=4, kernel=1)
    b.act("relu", "rb1")
    b.conv("b2a", ["r0"], out_channels=3, kernel=1)
    b.act("relu", "rb2a")
    b.conv("b2b", out_channels=6, kernel=3, padding=1)
    b.maxpool("b3p", ["r0"], kernel=3, stride=1, padding=1)
    b.conv("b3", out_channels=5, kernel=1)
    b.concat("cat", ["rb1", "b2b", "b3"])                           # 15×9×9
    b.conv("k1", out_channels=6, kernel=3, stride=2, padding=1)      # 6×5×5
    b.act("relu", "rk1")
    b.conv("k2", out_channels=6, kernel=3, padding=1)
    b.conv("proj", ["cat"], out_channels=6, kernel=1, stride=2)
    b.sum("res", ["k2", "proj"])
    b.act("relu", "rres")
    b.flatten("fl")
    b.fc("fc", out_features=10)
    return b.build()


#: The branches network's layer pins: both datapaths and both dataflows run.
BRANCHES_LAYER_PINS = {"k2": {"algorithm": "kn2row"}, "proj": {"dataflow": "os"}}


@pytest.fixture(scope="module")
def branches():
    """The branches network and its design on the pinned 4×4 overlay."""
    net = _branches()
    return net, search(net, load_board("zcu102"), algorithms=("im2col", "kn2row"),
                       dataflows=("ws", "os"), hardware_pins=PINS,
                       layer_pins=BRANCHES_LAYER_PINS, optimizer="grid")


def test_branches_run_bit_exact_in_verilator(branches):
    net, design = branches
    x = np.random.default_rng(5).integers(-128, 128, net.input_shape)
    lp, gold = compile_network(net, design, x, seed=2)
    assert list(gold) == ["stem", "b1", "b2a", "b2b", "b3p", "b3", "cat", "k1", "k2", "proj",
                          "res", "fc"]
    flows = {p.name: (p.algorithm, p.dataflow) for p in design.layers}
    assert flows["k2"][0] == "kn2row" and flows["proj"][1] == "os"
    # every layer reads the tensor its IR input names; the concat is written in place
    assert lp.inputs == (0, 1, 1, 3, 1, 5, None, 7, 8, 7, 9, 11)
    cat = lp.tensors[7]
    assert [lp.tensors[t].dram - cat.dram for t in (2, 4, 6)] == [0, 4, 10]
    assert all(lp.tensors[t].px_pitch == 15 for t in (2, 4, 6))
    assert np.array_equal(gold["cat"], np.concatenate([gold["b1"], gold["b2b"], gold["b3"]]))
    # the fully connected layer against the framework's CHW flattening, computed here
    _, used = _compile_network(net, design, x, seed=2)
    fc = lp.plans[list(gold).index("fc")]
    assert fc.in_shape == (150, 1, 1)                   # the 6×5×5 tensor as one vector
    regs = fc.invocations[0].registers
    acc = used["fc"].reshape(10, -1) @ gold["res"].reshape(-1)
    assert np.array_equal(gold["fc"].reshape(-1),
                          requantize(acc, regs["rq_mult"], regs["rq_shift"], 8, False))
    for name, g in gold.items():
        assert len(np.unique(g)) > 3, name

    r = run_overlay_sim(_sim(design), lp.image, program=lp.program_addr, trace=True)
    assert r.ok and not r.error, (r.error_code, r.error_index)
    for i, (name, g) in enumerate(gold.items()):
        out = decode_output(lp, r.memory[:len(lp.image)], 0, layer=i)
        assert np.array_equal(out, g), f"{name}: {(out != g).sum()} outputs differ"
    # the timing the explorer reports (dse.compiler.timing) against the measured trace:
    # every instruction's start and end, each layer's end and compute-engine cycles
    params, _ = design_overlay(design)
    timing = program_timing(lp, params)
    assert abs(r.cycles - timing.total_cycles) <= 0.01 * r.cycles, (r.cycles,
                                                                   timing.total_cycles)
    spans = instruction_spans(lp.program, r.trace)
    durations = instruction_cycles(lp, params)
    for inst, span, n in zip(lp.program, spans, durations):
        if isinstance(inst, (ComputeTile, PoolTile)):       # the read channel cannot delay
            assert span[1] - span[0] == n, (inst, span, n)
    previous = 0
    for t in timing.layers:
        mine = [i for i, li in enumerate(lp.layer_of) if li == t.index]
        end = max(spans[i][1] for i in mine)
        assert abs((end - previous) - t.cycles) <= max(8, 0.02 * t.cycles), (t, end)
        assert sum(spans[i][1] - spans[i][0] for i in mine if isinstance(
            lp.program[i], (ComputeTile, PoolTile))) == t.compute_cycles, t
        previous = end


def test_design_takes_the_program_timing(explored):
    """design.json's numbers from the program: the image-free program is the same program,
    and every conv layer's, pool's and the total cycles are its schedule's."""
    net, design = explored
    x = np.random.default_rng(7).integers(-128, 128, net.input_shape)
    lp, _ = _compile_network(net, design, x, seed=3)
    bare, none = _compile_network(net, design, None, image=False)
    assert bare.program == lp.program and bare.image == b"" and \
        bare.image_bytes == len(lp.image) and set(none.values()) == {None}
    params, _ = design_overlay(design)
    timing = program_timing(lp, params)
    timed = program_design(net, design)
    assert timed.total_cycles == timing.total_cycles != design.total_cycles
    assert timed.latency_ms == pytest.approx(timing.total_cycles / (design.clock_mhz * 1e3))
    names = ["c1", "p1", "c2", "c3", "add", "ap", "g"]
    by_index = timing.by_index()
    for p in timed.layers:
        t = by_index[names.index(p.name)]
        assert (p.cycles, p.compute_cycles, p.memory_cycles, p.dram_bytes) == \
            (t.cycles, t.compute_cycles, t.memory_cycles, t.dram_bytes)
    assert {p.name: p.variant for p in timed.layers}["c1"] == "patches"   # host patches
    for o in timed.other_layers:
        assert o["cycles"] == by_index[names.index(o["name"])].cycles
    assert sum(t.cycles for t in timing.layers) + DISPATCH_LATENCY + FINISH_CYCLES == \
        timing.total_cycles                                          # + finish
    # the program's layers run back to back: compute is a part of each layer's cycles
    assert all(0 < t.compute_cycles < t.cycles for t in timing.layers)
    # the fusions it makes: each ReLU into its producer
    assert timed.fusion == [{"kind": "activation", "layer": r, "into": into}
                            for r, into in (("r1", "c1"), ("r2", "c2"), ("r3", "add"))]
    assert program_design(net, design, fuse=False).fusion == []


@pytest.mark.parametrize("rows, cols", [(4, 4), (4, 16), (8, 4)])
def test_explorer_pool_cycles_are_the_pool_engines_taps(rows, cols):
    """The explorer ranks hardware with ``evaluate_aux``'s pool, add and global-pool cycles:
    with the DRAM out of the way they are the pool engine's taps on its gcd(rows, cols)
    lanes, which the program's pool tiles take plus POOL_LATENCY each (the ranking model
    once counted ``cols`` lanes: 3.4× too fast on VGG16's pools at 16×64).  The residual
    network's 8 channels are two groups a pixel on 4 lanes."""
    from dse.cost.hardware import HardwareTable
    from dse.cost.model import evaluate_aux
    from dse.cost.transforms import POOL_LATENCY
    from dse.cost.workload import AuxTable

    net = _residual()
    design = search(net, load_board("zcu102"), algorithms=("im2col", "kn2row"),
                    dataflows=("ws", "os"), hardware_pins={**PINS, "rows": rows, "cols": cols},
                    optimizer="grid")
    lp, names = _compile_network(net, design, None, image=False)
    params, _ = design_overlay(design)
    by_index = program_timing(lp, params).by_index()
    aux = AuxTable.from_network(net)
    assert aux.names == ("p1", "add", "ap", "g")
    model = evaluate_aux(aux, HardwareTable.from_params(params, dram_gbps=1e9), fuse=False)
    names = list(names)
    for a, name in enumerate(aux.names):
        tiles = sum(isinstance(inst, PoolTile) for inst, li in zip(lp.program, lp.layer_of)
                    if li == names.index(name))
        assert model.cycles[a, 0] == by_index[names.index(name)].compute_cycles \
            - tiles * POOL_LATENCY, name


def test_choices_by_the_programs_cycles():
    """program_choices on tiny (4×4 with a Winograd unit, on the ECP5-85 where an 8×8 one
    does not fit): every conv layer's choice is at least as fast, in the whole network's
    program, as each other choice the top runs for that layer alone; a pinned layer keeps
    its pin."""
    net = tiny()
    allowed = {"algorithms": ("im2col", "kn2row", "winograd"), "dataflows": ("ws", "os")}
    design = search(net, load_board("ecp5-85k"), hardware_pins={"rows": 4, "cols": 4},
                    **allowed)
    assert "winograd" in {p.algorithm for p in design.layers}       # the model's pick
    chosen = program_choices(net, design, **allowed)
    total = program_design(net, chosen).total_cycles
    assert total <= program_design(net, design).total_cycles
    for i, p in enumerate(chosen.layers):
        for algo in allowed["algorithms"]:
            for flow in allowed["dataflows"]:
                if (algo, flow) == (p.algorithm, p.dataflow):
                    continue
                variant = "F2x2_3x3" if algo == "winograd" else ""
                other = dataclasses.replace(p, algorithm=algo, variant=variant, dataflow=flow)
                layers = chosen.layers[:i] + (other,) + chosen.layers[i + 1:]
                try:
                    alt = program_design(net, dataclasses.replace(chosen, layers=layers))
                except ValueError:
                    continue                        # a choice the layer cannot take
                assert total <= alt.total_cycles, (p.name, algo, flow)
    pinned = program_choices(net, design, pins={"conv3": {"algorithm": "winograd"}},
                             **allowed)
    assert {p.name: p.algorithm for p in pinned.layers}["conv3"] == "winograd"


def test_choices_ranked_as_the_program_is_buffered():
    """program_choices ranks each candidate by its one-layer program buffered as
    program_design buffers the layer: by default double-buffered where that is faster
    (compile_network's choice), single-buffered with double_buffer=False.  On 8×8 with
    4 KiB buffers the 5×5/2 layer c2 (64 → 12 channels on 12×12) is faster in ws
    double-buffered and in os single-buffered, so ranking under the other buffering than the
    program's would keep the slower dataflow: under each buffering, every layer's choice is
    at least as fast, in the whole program so buffered, as its other dataflow."""
    b = NetworkBuilder("flip", (8, 12, 12))
    b.conv("c1", out_channels=64, kernel=1)
    b.act("relu", "r1")
    b.conv("c2", out_channels=12, kernel=5, stride=2, padding=2)
    net = b.build()
    allowed = {"algorithms": ("im2col",), "dataflows": ("ws", "os")}
    design = search(net, load_board("zcu102"), **allowed,
                    hardware_pins={"rows": 8, "cols": 8, "act_buffer_kib": 4,
                                   "weight_buffer_kib": 4, "out_buffer_kib": 4,
                                   "bus_bits": 128})
    picked = {}
    for double in (True, False):
        chosen = program_choices(net, design, double_buffer=double, **allowed)
        total = program_design(net, chosen, double_buffer=double).total_cycles
        for p in chosen.layers:
            for flow in allowed["dataflows"]:
                other = _with(chosen, p.name, dataflow=flow, variant="")
                assert total <= program_design(net, other, double_buffer=double).total_cycles, \
                    (double, p.name, flow)
        picked[double] = {p.name: p.dataflow for p in chosen.layers}["c2"]
    # the layer whose fastest dataflow depends on the buffering (else this test could not
    # tell a ranking under the wrong buffering from the right one)
    assert (picked[True], picked[False]) == ("ws", "os")


def test_weights_given_or_seeded(explored):
    net, design = explored
    x = np.random.default_rng(7).integers(-128, 128, net.input_shape)
    lp, gold = compile_network(net, design, x, seed=3)
    again, _ = compile_network(net, design, x, seed=3)
    other, _ = compile_network(net, design, x, seed=4)
    assert again.image == lp.image and other.image != lp.image
    # the seeded draw, in network order, given explicitly: the same program
    rng = np.random.default_rng(3)
    ws = {layer.name: rng.integers(-128, 128, (layer.out_shape[0], layer.in_shape[0],
                                               *layer.kernel)) for layer in net.convs()}
    given, gold2 = compile_network(net, design, x, ws, seed=99)
    assert given.image == lp.image
    assert all(np.array_equal(gold[k], gold2[k]) for k in gold)
    zero, gz = compile_network(net, design, x, {"c3": np.zeros_like(ws["c3"])})
    assert not gz["c3"].any() and zero.image != lp.image


def _net(build, shape):
    b = NetworkBuilder("bad", shape)
    build(b)
    return b.build()


REFUSED = [
    ("concat-input", lambda b: (b.conv("c1", out_channels=8, kernel=1),
                                b.concat("cat", ["input", "c1"])),
     r"layer 'cat' \(concat\): its input 'input' is the network input"),
    ("concat-twice", lambda b: (b.conv("c1", out_channels=8, kernel=1),
                                b.conv("c2", "input", out_channels=8, kernel=1),
                                b.concat("cat", ["c1", "c2"]),
                                b.concat("cat2", ["c2", "c1"])),
     r"layer 'cat2' \(concat\): its input 'c2' joins another concatenation"),
    ("concat-nested", lambda b: (b.conv("c1", out_channels=8, kernel=1),
                                 b.conv("c2", "input", out_channels=8, kernel=1),
                                 b.concat("cat", ["c1", "c2"]),
                                 b.conv("c3", "input", out_channels=8, kernel=1),
                                 b.concat("cat2", ["cat", "c3"])),
     r"layer 'cat2' \(concat\): its input 'cat' is a concatenation"),
    ("relu-joined", lambda b: (b.conv("c1", out_channels=8, kernel=1),
                               b.conv("c2", "input", out_channels=8, kernel=1),
                               b.concat("cat", ["c1", "c2"]), b.act("relu", "r", "c1")),
     r"layer 'r' \(relu\): cannot fold into 'c1'.*read by cat"),
    ("relu6", lambda b: (b.conv("c1", out_channels=8, kernel=1), b.act("relu6", "r")),
     r"layer 'r' \(relu6\): the requantiser clamps at 0 only"),
    ("relu-shared", lambda b: (b.conv("c1", out_channels=6, kernel=1), b.act("relu", "r"),
                               b.sum("add", ["r", "c1"])),
     r"layer 'r' \(relu\): cannot fold into 'c1'.*read by add"),
    ("relu-input", lambda b: (b.act("relu", "r"), b.conv("c1", out_channels=8, kernel=1)),
     r"layer 'r' \(relu\): a ReLU runs as its producer's requantiser ReLU"),
    ("groups", lambda b: b.conv("c1", out_channels=6, kernel=3, padding=1, groups=2),
     r"layer 'c1' \(conv\): grouped convolutions \(2 groups\)"),
    ("ceil", lambda b: (b.conv("c1", out_channels=8, kernel=1),
                        b.avgpool("p", kernel=2, stride=2, ceil_mode=True)),
     (r"layer 'p' \(avgpool\): its output \(8, 4, 4\) \(ceil_mode\) is not the pool "
      r"engine's \(8, 3, 3\)")),
    ("flatten", lambda b: (b.conv("c1", out_channels=8, kernel=1), b.flatten("f"),
                           b.act("relu", "r")),
     r"layer 'f' \(flatten\): flattening a \(8, 7, 7\) tensor .* for 'r'"),
]


@pytest.mark.parametrize("build,match", [(b, m) for _, b, m in REFUSED],
                         ids=[n for n, _, _ in REFUSED])
def test_layers_refused(explored, build, match):
    _, design = explored
    shape = (6, 7, 7)                   # odd: a ceil_mode pool's output differs
    net = _net(build, shape)
    with pytest.raises(ValueError, match=match):
        compile_network(net, design, np.zeros(shape, int))


@pytest.mark.parametrize("kernel, stride, padding", [(2, 2, 0), (3, 2, 0), (3, 2, 1)])
def test_ceil_mode_max_pools_pad_their_last_windows(kernel, stride, padding):
    """A ``ceil_mode`` max pool (GoogLeNet's, as Caffe computes them) runs with more padding
    at the bottom and right: the program's golden output equals the ONNX ceil-mode max pool
    (``sim.models.qdq_network.max_pool``, windows clipped to the input) of its input."""
    from sim.models.qdq_network import max_pool

    shape = (6, 8, 8)
    net = _net(lambda b: (b.conv("c1", out_channels=8, kernel=1),
                          b.maxpool("p", kernel=kernel, stride=stride, padding=padding,
                                    ceil_mode=True)), shape)
    design = search(net, load_board("zcu102"), algorithms=("im2col",), dataflows=("ws",),
                    hardware_pins=PINS, optimizer="grid")
    x = np.random.default_rng(kernel + padding).integers(-128, 128, shape)
    _, gold = compile_network(net, design, x)
    want = max_pool(gold["c1"], (kernel, kernel), (stride, stride), [padding] * 4,
                    ceil_mode=True)
    assert gold["p"].shape == tuple(net["p"].out_shape) == want.shape
    assert np.array_equal(gold["p"], want)


def _with(design, name, **changes):
    layers = tuple(dataclasses.replace(p, **changes) if p.name == name else p
                   for p in design.layers)
    return dataclasses.replace(design, layers=layers)


def test_design_choices_and_arguments_refused(explored):
    net, design = explored
    x = np.zeros(net.input_shape, int)
    with pytest.raises(ValueError, match=r"layer 'c2' \(conv\): the design chose fft; the "
                                         r"overlay top runs the im2col, kn2row and winograd "
                                         r"datapaths only"):
        compile_network(net, _with(design, "c2", algorithm="fft", variant="fft8"), x)
    # Winograd runs, but only on an overlay with a Winograd unit
    with pytest.raises(ValueError, match=r"layer 'c2' \(conv\): cannot be planned: .*winograd "
                                         r"needs a Winograd unit"):
        compile_network(net, _with(design, "c2", algorithm="winograd", variant="F2x2_3x3"), x)
    with pytest.raises(ValueError, match=r"layer 'c3' \(conv\): the design chose the 'is' "
                                         r"dataflow"):
        compile_network(net, _with(design, "c3", dataflow="is"), x)
    with pytest.raises(ValueError, match=r"layer 'c3' \(conv\): the design has no choice"):
        compile_network(net, dataclasses.replace(design, layers=design.layers[:2]), x)
    assert {p.name: p.variant for p in design.layers}["c1"] == "patches"
    with pytest.raises(ValueError, match=r"layer 'c1' \(conv\): the design reads it from "
                                         r"host im2col patches"):
        compile_network(net, design, x, patches="refuse")
    wide = dataclasses.replace(design, hardware={**design.hardware, "cols": 12})
    with pytest.raises(ValueError, match=r"layer 'p1' \(maxpool\): the pool engine needs an "
                                         r"8-bit design on an overlay whose rows and cols are "
                                         r"a power of two apart, not int8 on 4x12"):
        compile_network(net, wide, x)
    # the program builder's errors name the layer
    with pytest.raises(ValueError, match=r"layer 'c1' \(weights\[0\]\) must fit 8-bit"):
        compile_network(net, design, x, {"c1": np.full((8, 6, 3, 3), 300)})
    with pytest.raises(ValueError, match=r"weights must name conv layers.*'p1'"):
        compile_network(net, design, x, {"p1": np.zeros(1, int)})
    with pytest.raises(ValueError, match=r"weights\['c3'\] must be integers of shape "
                                         r"\(8, 8, 1, 1\)"):
        compile_network(net, design, x, {"c3": np.zeros((8, 8, 3, 3), int)})
    with pytest.raises(ValueError, match=r"x must be integers of the network's input shape"):
        compile_network(net, design, x[:, :4])
    with pytest.raises(ValueError, match="patches must be one of host, tensor, refuse"):
        compile_network(net, design, x, patches="file")
    # host patches: the layer reading them must be the only one reading the input
    two = NetworkBuilder("two_readers", (3, 6, 6))
    two.conv("a", out_channels=4, kernel=3, padding=1)
    two.conv("b", ["input"], out_channels=4, kernel=1)
    two.sum("s", ["a", "b"])
    two_net = two.build()
    two_design = search(two_net, load_board("zcu102"), algorithms=("im2col",),
                        dataflows=("ws",), hardware_pins=PINS, optimizer="grid")
    patched = _with(two_design, "a", variant="patches")
    lp, _ = compile_network(two_net, patched, np.zeros((3, 6, 6), int))
    assert lp.plans[0].host_patches == () and lp.tensors[0].shape == (3, 6, 6)  # the tensor
    params, limits = design_overlay(patched)
    plans = [plan_conv(two_net.layers[1], "im2col", "ws", params, limits, variant="patches"),
             lp.plans[1], lp.plans[2]]
    with pytest.raises(ValueError, match=r"plans\[0\] reads host patches of the network "
                                         r"input, so it must be the only layer"):
        build_network_program(plans, np.zeros((3, 6, 6), int), [None] * 3, params, limits,
                              inputs=lp.inputs, image=False)
    with pytest.raises(TypeError, match="network must be a dse.network.Network"):
        compile_network(design, design, x)


def test_unfused_program_computes_the_same_network_at_more_cost(branches):
    """``compile_network(fuse=False)``, the program without the compiler's fusions (each
    ReLU a pool-engine pass of its own, each concatenation's inputs copied into its
    slices), runs bit-exact in Verilator at its model's cycles, ends with the fused
    program's outputs, and moves more DRAM bytes in more cycles (bench/fusion.py's
    comparison on a network small enough to run)."""
    net, design = branches
    x = np.random.default_rng(5).integers(-128, 128, net.input_shape)
    fused, fused_gold = compile_network(net, design, x, seed=2)
    lp, gold = compile_network(net, design, x, seed=2, fuse=False)
    relus = ["r0", "rb1", "rb2a", "rk1", "rres"]
    assert set(gold) - set(fused_gold) == set(relus)
    assert [lp.plans[list(gold).index(r)].mode for r in relus] == ["max"] * 5
    for name in ("cat", "fc"):
        assert np.array_equal(gold[name], fused_gold[name]), name
    # no source of the concatenation is written in place: each is a tensor of its own
    cat = lp.tensors[list(gold).index("cat") + 1]
    for name in ("rb1", "b2b", "b3"):
        t = lp.tensors[list(gold).index(name) + 1]
        assert t.px_pitch == t.shape[0] and not cat.dram <= t.dram < cat.dram + cat.nbytes

    r = run_overlay_sim(_sim(design), lp.image, program=lp.program_addr)
    assert r.ok and not r.error, (r.error_code, r.error_index)
    for i, (name, g) in enumerate(gold.items()):
        out = decode_output(lp, r.memory[:len(lp.image)], 0, layer=i)
        assert np.array_equal(out, g), f"{name}: {(out != g).sum()} outputs differ"
    params, _ = design_overlay(design)
    on, off = program_timing(fused, params), program_timing(lp, params)
    assert abs(r.cycles - off.total_cycles) <= 0.01 * r.cycles, (r.cycles, off.total_cycles)
    assert off.total_cycles > on.total_cycles
    assert sum(t.dram_bytes for t in off.layers) > sum(t.dram_bytes for t in on.layers)
    fusion = program_design(net, design).fusion
    assert {"kind": "concat", "layer": "cat", "in_place": ["rb1", "b2b", "b3"],
            "requantised": []} in fusion
    assert sorted(f["layer"] for f in fusion if f["kind"] == "activation") == sorted(relus)
