"""More buffer never makes the cost model slower for the same mapping (issue 13).

For a random conv or fc layer and a random overlay point, every choice (algorithm, variant,
dataflow, tiling) that is legal and that the overlay supports is evaluated on the point and
on copies of it with a larger activation, weight or output buffer (each alone, and all three
together), everything else equal.  Where the smaller point runs the choice, a larger buffer
should

* never make it invalid -- the larger buffer holds every cut and tile the smaller one holds
  (the overlay's limits, ``dse.cost.resources.overlay_buffer_words``, only grow with the
  KiB figures).  This holds: :func:`test_more_buffer_never_invalidates_a_choice`;
* never make ``compute_cycles`` larger -- the datapath's own cycles, the cut into
  invocations (``dse.lowering.split``) that the compiler runs and ``omniconv verify``
  measures;
* never make ``cycles`` larger -- the latency the explorer ranks by: ``compute_cycles``
  plus the DRAM time the double buffering does not hide, with the DRAM tiling
  (``dse.cost.traffic``) the model picks as the fastest of its candidates
  (``dse.cost.model.TILE_KIB``).

``memory_cycles`` and ``dram_bytes`` are not required to shrink: the model picks each
entry's DRAM tiling by its total ``cycles``, and a tiling with a smaller first tile can be
faster overall while it moves more bytes, so a larger buffer may trade DRAM bytes for a
shorter exposed first load.  What should never grow is the latency.

The last two do NOT hold yet, so their tests are strict xfails that pin a counterexample
each (hypothesis finds others within a few dozen examples):

* the cut takes the fewest channel chunks that fit, then the most filters those leave room
  for, then the largest band (and the faster of two filter caps): a heuristic.  A larger
  activation buffer can take one channel chunk where two left room for every filter at once
  (the fc example: 74 + 73 channels, 7 filters, 1,010 cycles -> 147 channels, 6 + 1 filters,
  1,080 cycles; up to 3-6x slower on larger layers), and a larger weight buffer can cut the
  filters 32 + 1 where 28 + 5 was faster;
* the DRAM tiling is the greedy tiling for the whole buffer or for ``min(KiB, c)`` with
  ``c`` in ``TILE_KIB`` = (8, 32, 128) KiB of the activation and weight buffers: a larger
  buffer has the smaller one's tiling only when that one is on the ladder, and the output
  buffer has no ladder (the 1×1 example: a 3 KiB output buffer takes the whole 23-row map as
  one tile where 2 KiB took 22 rows, so the exposed first load grows: 972.6 -> 978.4 cycles).

Making them hold needs each choice to be the fastest of a candidate set that only grows with
the buffers (docs/cost-model.md, section 3); when it does, these tests XPASS and fail, and
the xfail marks go.

Operand and accumulator widths are the explorer's (``dse.search.operand_widths``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dse.cost.choices import enumerate_choices, hardware_mask, legal_mask
from dse.cost.hardware import HardwareTable
from dse.cost.model import evaluate
from dse.cost.workload import LayerTable
from dse.search import operand_widths
from rtl.params import OverlayParams, winograd_lanes_ok

from cost_helpers import conv, fc

PRECISION = 8
CHOICES = enumerate_choices()
BUFFERS = ("act_buffer_kib", "weight_buffer_kib", "out_buffer_kib")
#: Array sides, small ones and ones that are not powers of two among them.
SIDES = (2, 3, 4, 5, 6, 8, 12, 16, 24, 32)
#: Buffer sizes in KiB (the search grid's, and odd ones between them).
KIB = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 200, 256, 512)
#: ~5 s per 100 examples on one core.
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def widths(winograd_m: int, fft_size: int, max_k: int, precision: int = PRECISION) -> dict:
    """a_width, b_width and acc_width of an overlay with these units, as the explorer
    derives them."""
    a, b, acc = operand_widths(winograd_m, fft_size, max_k, precision)
    return {"a_width": int(a), "b_width": int(b), "acc_width": int(acc)}


def _k_of(layer) -> int:
    """The layer's K (channels a group × kernel), for the accumulator width."""
    if layer.op == "fc":
        return int(np.prod(layer.in_shape))
    return layer.in_shape[0] // layer.groups * layer.kernel[0] * layer.kernel[1]


@st.composite
def layers(draw):
    """A conv layer (kernel 1, 3, 5 or 7, stride 1 or 2, channels that need not fill the
    array, 1 to 64 pixels a side) or an fc layer; and whether it reads the network's input
    (so that im2col from host patches is legal)."""
    c_in = draw(st.sampled_from((1, 2, 3, 5, 8, 13, 16, 24, 32, 48, 64, 100, 128)))
    c_out = draw(st.sampled_from((1, 2, 3, 7, 8, 10, 16, 24, 33, 64, 96, 128)))
    if draw(st.integers(0, 7)) == 0:
        side = draw(st.integers(1, 7))
        return fc("f", c=c_in, h=side, w=side, out=c_out), draw(st.booleans())
    k = draw(st.sampled_from((1, 3, 5, 7)))
    s = draw(st.sampled_from((1, 2)))
    p = draw(st.sampled_from(sorted({0, k // 2})))
    h = draw(st.integers(max(1, k - 2 * p), 64))
    w = draw(st.one_of(st.just(h), st.integers(max(1, k - 2 * p), 64)))
    return conv("c", c_in=c_in, h=h, w=w, c_out=c_out, k=k, s=s, p=p), draw(st.booleans())


@st.composite
def overlays(draw, max_k: int):
    """An overlay point: array, units (output-transform lanes that fit them), buffers, bus;
    widths from the units (:func:`widths`)."""
    rows, cols = draw(st.sampled_from(SIDES)), draw(st.sampled_from(SIDES))
    wm = draw(st.sampled_from((0, 2, 4)))
    lanes = 1
    if wm:
        lanes = draw(st.sampled_from([n for n in (1, 2, 4, 8, 16)
                                      if winograd_lanes_ok(cols, wm, n)]))
    fft = draw(st.sampled_from((0, 8, 16)))
    kib = {name: draw(st.sampled_from(KIB)) for name in BUFFERS}
    bus = draw(st.sampled_from((64, 128, 512)))
    return OverlayParams(rows=rows, cols=cols, winograd_m=wm, winograd_lanes=lanes,
                         fft_size=fft, bus_bits=bus, **kib, **widths(wm, fft, max_k))


def larger(hw: OverlayParams, bigger: dict) -> list:
    """Copies of ``hw`` with each buffer as in ``bigger`` alone, then all three."""
    return ([dataclasses.replace(hw, **{name: bigger[name]}) for name in BUFFERS]
            + [dataclasses.replace(hw, **bigger)])


@st.composite
def cases(draw):
    """``(layer, reads the input, point, [4 points with more buffer])``."""
    layer, first = draw(layers())
    hw = draw(overlays(_k_of(layer)))
    bigger = {name: draw(st.sampled_from([k for k in KIB if k > getattr(hw, name)]
                                         or [2 * getattr(hw, name)]))
              for name in BUFFERS}
    return layer, first, hw, larger(hw, bigger)


def case(layer, hw: OverlayParams, first=False, **bigger) -> tuple:
    """An explicit case: ``bigger`` names the larger KiB (the rest stay)."""
    more = {name: bigger.get(name, getattr(hw, name)) for name in BUFFERS}
    return layer, first, hw, larger(hw, more)


def _costs(case):
    """The costs of every choice on the point and the larger ones, and the choices to check
    (legal, supported by the overlay, valid on the smaller point)."""
    layer, first, hw, bigger = case
    table = LayerTable.from_layers([layer], inputs={"x"} if first else set())
    points = HardwareTable.from_params([hw, *bigger], clock_mhz=200.0, dram_gbps=12.8)
    cost = evaluate(table, CHOICES, points, precision=PRECISION)
    runs = legal_mask(table, CHOICES)[0] & hardware_mask(CHOICES, points, PRECISION)[:, 0]
    check = np.flatnonzero(runs & np.asarray(cost.valid)[0, :, 0])
    return cost, check


def _where(case, c, j) -> str:
    layer, _, hw, bigger = case
    return (f"{CHOICES[c].label} on {layer} with {hw}: buffers "
            f"{[getattr(hw, n) for n in BUFFERS]} KiB -> "
            f"{[getattr(bigger[j - 1], n) for n in BUFFERS]} KiB")


def _assert_not_larger(case, name, only_where_compute_holds=False):
    cost, check = _costs(case)
    arr = getattr(cost, name)[0]
    compute = cost.compute_cycles[0]
    for c in check:
        for j in range(1, 5):
            if only_where_compute_holds and compute[c, j] > compute[c, 0]:
                continue
            assert arr[c, j] <= arr[c, 0], \
                f"{name} {arr[c, 0]} -> {arr[c, j]}: {_where(case, c, j)}"


@SETTINGS
@given(cases())
def test_more_buffer_never_invalidates_a_choice(case):
    cost, check = _costs(case)
    valid = np.asarray(cost.valid)[0]
    for c in check:
        for j in range(1, 5):
            assert valid[c, j], f"valid -> invalid: {_where(case, c, j)}"


#: fc 147 -> 7 on a 2×2 array (FFT-8 unit, so 17-bit operands), im2col ws: 1 -> 2 KiB of
#: activation buffer takes one channel chunk instead of two, which leaves the weight buffer
#: room for 6 of the 7 filters: compute_cycles 1,010 -> 1,080.
_FEWER_CHUNKS = case(fc("f", c=3, h=7, w=7, out=7),
                     OverlayParams(rows=2, cols=2, fft_size=8, act_buffer_kib=1,
                                   weight_buffer_kib=1, out_buffer_kib=1, bus_bits=64,
                                   **widths(0, 8, 147)),
                     act_buffer_kib=2)


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="the cut into invocations is a heuristic, not the fastest of a "
                          "candidate set that grows with the buffers (module docstring)")
@SETTINGS
@given(cases())
@example(_FEWER_CHUNKS)
def test_more_buffer_never_slows_the_datapath(case):
    _assert_not_larger(case, "compute_cycles")


#: A 1×1 conv of one channel on 23×23 on a 2×2 array, im2col ws: 2 -> 3 KiB of output
#: buffer tiles the map whole instead of 22 + 1 rows; the first load, which nothing hides,
#: grows: cycles 972.625 -> 978.375 with the same compute_cycles (846).
_WHOLE_TILE = case(conv("c", c_in=1, h=23, w=23, c_out=1, k=1, p=0),
                   OverlayParams(rows=2, cols=2, act_buffer_kib=1, weight_buffer_kib=256,
                                 out_buffer_kib=2, bus_bits=64, **widths(0, 0, 1)),
                   out_buffer_kib=3)


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="the DRAM tilings a buffer offers (TILE_KIB and the whole buffer) "
                          "include a smaller buffer's only on the ladder; the output buffer "
                          "has none (module docstring)")
@SETTINGS
@given(cases())
@example(_WHOLE_TILE)
def test_more_buffer_never_slows_the_layer(case):
    # where compute_cycles does not grow, so that this checks the DRAM side; with the test
    # above passing, this is every case
    _assert_not_larger(case, "cycles", only_where_compute_holds=True)
