"""Off-chip traffic of the sparse spectral path against a loop nest run event by event.

The model computes bytes in closed form; here each mode's loop nest is executed over explicit
tiles, channel ranges, filter sets and output pixels: every (tile, channel) fetch is counted
with the tile's real (unpadded) pixels, every kernel fetch with its non-zeros, every output
pixel's overlap-add partial sums from the set of blocks whose tiles touch it, and channel
partial sums from the order in which tiles come back.  Block sizes are found by trying every
candidate that fits, so the test also checks the model's choice of the best block.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dse.cost.sparse_traffic import ACT_REUSE, KERNEL_REUSE, entry_bits, sparse_traffic
from dse.cost.workload import LayerTable

SETTINGS = settings(max_examples=250, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def table(layers) -> LayerTable:
    """LayerTable of stride-1 convs given as (C, F, H, W, k, (pt, pb, pl, pr))."""
    rows = {name: [] for name in ("c_in", "h_in", "w_in", "c_out", "h_out", "w_out", "kh",
                                  "kw", "stride_h", "stride_w", "dil_h", "dil_w", "pad_t",
                                  "pad_l", "pad_b", "pad_r", "groups", "macs")}
    for c, f, h, w, k, (pt, pb, pl, pr) in layers:
        ho, wo = h + pt + pb - k + 1, w + pl + pr - k + 1
        for name, v in (("c_in", c), ("h_in", h), ("w_in", w), ("c_out", f), ("h_out", ho),
                        ("w_out", wo), ("kh", k), ("kw", k), ("stride_h", 1), ("stride_w", 1),
                        ("dil_h", 1), ("dil_w", 1), ("pad_t", pt), ("pad_l", pl),
                        ("pad_b", pb), ("pad_r", pr), ("groups", 1),
                        ("macs", f * c * k * k * ho * wo)):
            rows[name].append(v)
    n = len(layers)
    return LayerTable(names=tuple(f"l{i}" for i in range(n)), ops=("conv",) * n,
                      **{k: np.asarray(v, dtype=np.int64) for k, v in rows.items()})


def _largest(limit_bits: float, unit_bits: float, most: int) -> int:
    """Largest m ≤ most with m·unit ≤ limit, by counting up."""
    m = 0
    while m < most and (m + 1) * unit_bits <= limit_bits:
        m += 1
    return m


def loop_nest(layer, n, z, bk_bytes, ba_bytes, e, act_bits=8, out_bits=8, psum_bits=32):
    """(kernel-reuse bits, activation-reuse bits) of the loop nests, best block each."""
    c_in, f_out, h, w, k, (pt, pb, pl, pr) = layer
    bins = n * (n // 2 + 1)
    s = n - k + 1
    bk, ba = 8 * bk_bytes, 8 * ba_bytes
    kappa = z * e
    if kappa > bk or s * s * act_bits > ba:
        return math.inf, math.inf
    row_starts = list(range(0, h + pt + pb, s))
    col_starts = list(range(0, w + pl + pr, s))
    th, tw = len(row_starts), len(col_starts)
    tiles = [(i, j) for i in range(th) for j in range(tw)]

    def real(t):        # input pixels of tile t inside the map (padding is not fetched)
        i, j = t
        rows = sum(1 for y in range(i * s, i * s + s) if pt <= y < pt + h)
        cols = sum(1 for x in range(j * s, j * s + s) if pl <= x < pl + w)
        return rows * cols

    ho, wo = h + pt + pb - k + 1, w + pl + pr - k + 1
    cover = {}          # output pixel -> tiles whose N×N full-convolution block touches it
    for t in tiles:
        for y in range(t[0] * s, t[0] * s + n):
            for x in range(t[1] * s, t[1] * s + n):
                if k - 1 <= y < k - 1 + ho and k - 1 <= x < k - 1 + wo:
                    cover.setdefault((y, x), []).append(t)
    out = f_out * ho * wo * out_bits
    all_k = f_out * c_in * kappa

    # kernel blocks: (filters, channels)
    fk = _largest(bk, c_in * kappa, f_out)
    if fk:
        kblocks = [(range(f0, min(f0 + fk, f_out)), range(c_in)) for f0 in range(0, f_out, fk)]
    else:
        ck = _largest(bk, kappa, c_in)
        kblocks = [(range(f, f + 1), range(c0, min(c0 + ck, c_in)))
                   for f in range(f_out) for c0 in range(0, c_in, ck)]

    # activation block candidates: lists of (tile list, channel range)
    cands = []
    for r in range(1, th + 1):
        for c in range(1, tw + 1):
            if r * c * c_in * s * s * act_bits <= ba:
                blocks = [([(i, j) for i in range(i0, min(i0 + r, th))
                            for j in range(j0, min(j0 + c, tw))], range(c_in))
                          for i0 in range(0, th, r) for j0 in range(0, tw, c)]
                cands.append((blocks, r == th and c == tw))
    if c_in * s * s * act_bits > ba:
        ca = _largest(ba, s * s * act_bits, c_in)
        cands.append(([([t], range(c0, min(c0 + ca, c_in))) for t in tiles
                       for c0 in range(0, c_in, ca)], False))

    def halo(blocks):
        spatial = {}
        for b, (ts, _) in enumerate(blocks):
            for t in ts:
                spatial.setdefault(t, set()).add(tuple(ts))
        bits = 0
        for ts in cover.values():
            touched = set().union(*(spatial[t] for t in ts))
            bits += 2 * (len(touched) - 1) * psum_bits
        return f_out * bits

    def spills(events):
        """Channel partial sums: events are (tile, filters) in loop order; an accumulator
        (filter, tile) survives only while consecutive events stay on its tile."""
        runs, last_tile, open_ = {}, None, set()
        for t, fs in events:
            if t != last_tile:
                open_ = set()
                last_tile = t
            for f in fs:
                if (f, t) not in open_:
                    runs[(f, t)] = runs.get((f, t), 0) + 1
                    open_.add((f, t))
        return sum(2 * (v - 1) * 2 * bins * psum_bits for v in runs.values())

    best_kr = best_ar = math.inf
    for blocks, whole in cands:
        # kernel reuse: for kernel block: load; for activation block: load (unless resident)
        bits, loaded, events = 0, set(), []
        for fs, cs in kblocks:
            bits += len(fs) * len(cs) * kappa
            for ts, chans in blocks:
                for t in ts:
                    for ch in set(cs) & set(chans):
                        if not (whole and (t, ch) in loaded):
                            bits += real(t) * act_bits
                            loaded.add((t, ch))
                    events.append((t, fs))
        best_kr = min(best_kr, bits + spills(events) + halo(blocks) + out)
        # activation reuse: for activation block: load once; for kernel block: load
        bits, kloaded = 0, set()
        for ts, chans in blocks:
            bits += sum(real(t) for t in ts) * len(chans) * act_bits
            for fs, cs in kblocks:
                for f in fs:
                    for ch in set(cs) & set(chans):
                        if not (all_k <= bk and (f, ch) in kloaded):
                            bits += kappa
                            kloaded.add((f, ch))
        best_ar = min(best_ar, bits + halo(blocks) + out)
    return best_kr, best_ar


layer_st = st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 11),
                     st.integers(1, 11), st.integers(1, 7),
                     st.tuples(*[st.integers(0, 3)] * 4))


@SETTINGS
@given(layer=layer_st, n=st.sampled_from([4, 8]), zfrac=st.floats(0.01, 1.0),
       bk=st.integers(1, 1500), ba=st.integers(1, 1500), act=st.sampled_from([8, 16]),
       psum=st.sampled_from([16, 32]))
def test_matches_loop_nest(layer, n, zfrac, bk, ba, act, psum):
    c, f, h, w, k, pads = layer
    k = 1 + (k - 1) % (n - 1)                       # kernel smaller than the FFT
    pads = tuple(p % k for p in pads)                # padding below the kernel size
    layer = (c, f, max(h, k), max(w, k), k, pads)
    z = max(1, round(zfrac * n * (n // 2 + 1)))
    e = entry_bits(n)
    got = sparse_traffic(table([layer]), n, z, [bk], [ba], act_bits=act, psum_bits=psum)
    kr, ar = loop_nest(layer, n, z, bk, ba, e, act_bits=act, psum_bits=psum)
    assert got.kr_bytes[0, 0] * 8 == pytest.approx(kr, rel=1e-12)
    assert got.ar_bytes[0, 0] * 8 == pytest.approx(ar, rel=1e-12)
    assert got.flexible_bytes[0, 0] * 8 == pytest.approx(min(kr, ar), rel=1e-12)
    parts = (got.kr_kernel_bytes + got.kr_act_bytes + got.kr_partial_bytes
             + got.kr_halo_bytes + got.out_bytes)
    if np.isfinite(kr):
        assert parts[0, 0] == pytest.approx(got.kr_bytes[0, 0], rel=1e-12)


@SETTINGS
@given(layers=st.lists(layer_st, min_size=1, max_size=4), n=st.sampled_from([4, 8, 16]),
       z=st.integers(1, 40), bufs=st.lists(st.integers(1, 1 << 16), min_size=4, max_size=4))
def test_buffers_monotone_and_flexible_best(layers, n, z, bufs):
    layers = [(c, f, max(h * 3, n), max(w * 3, n), 1 + (k - 1) % (n - 1), (1, 1, 0, 2))
              for c, f, h, w, k, _ in layers]
    z = min(z, n * (n // 2 + 1))
    bk0, ba0, dk, da = bufs
    # points: a base, a larger kernel buffer, a larger activation buffer, both larger
    bk = np.array([bk0, bk0 + dk, bk0, bk0 + dk])
    ba = np.array([ba0, ba0, ba0 + da, ba0 + da])
    got = sparse_traffic(table(layers), n, z, bk, ba)
    flex = got.flexible_bytes
    for small, big in ((0, 1), (0, 2), (0, 3), (1, 3), (2, 3)):
        assert np.all(flex[:, big] <= flex[:, small])
        assert np.all(got.kr_bytes[:, big] <= got.kr_bytes[:, small])
        assert np.all(got.ar_bytes[:, big] <= got.ar_bytes[:, small])
    assert np.all(flex <= got.kr_bytes) and np.all(flex <= got.ar_bytes)
    assert np.all(np.where(got.mode == KERNEL_REUSE, got.kr_bytes, got.ar_bytes) == flex)
    # never below the compulsory traffic: kernels, activations and outputs once
    once = got.kernel_bytes + got.act_bytes + got.out_bytes
    assert np.all(flex >= once * (1 - 1e-12))


def test_hand_case_one_tile_row():
    """C = F = 2, 6×12 map, N = 8, k = 3 (s = 6), no padding: tiles 1 × 2, Ho = 4, Wo = 10.
    Kernel entry 6 + 32 = 38 bits, 10 non-zeros: κ = 380 bits; K = 4·380 = 1520 bits.
    A = 2·72·8 = 1152 bits, O = 2·40·8 = 640 bits.  A kernel buffer of 100 bytes (800
    bits) holds one filter (760 bits): 2 kernel blocks.  An activation buffer of 72 bytes
    holds one 6×6 tile of both channels (576 bits), not two: blocks 1×1, one column seam at
    j = 1 straddled by output columns [6, 8) ∩ [2, 12) = 2, so halo = 2·F·32·(2·Ho) = 1024.
    KR = 1520 + 2·1152 + 1024 + 640 = 5488 bits; AR: all kernels (1520 > 800) streamed per
    tile: 1152 + 2·1520 + 1024 + 640 = 5856 bits."""
    got = sparse_traffic(table([(2, 2, 6, 12, 3, (0, 0, 0, 0))]), 8, 10, [100], [72])
    assert got.kr_bytes[0, 0] * 8 == 5488
    assert got.ar_bytes[0, 0] * 8 == 5856
    assert got.mode[0, 0] == KERNEL_REUSE
    assert got.kr_block[0, 0].tolist() == [1, 1]
    # an activation buffer of 144 bytes holds the whole map: no halo, activations once
    got = sparse_traffic(table([(2, 2, 6, 12, 3, (0, 0, 0, 0))]), 8, 10, [100], [144])
    assert got.kr_bytes[0, 0] * 8 == 1520 + 1152 + 640
    assert got.ar_bytes[0, 0] * 8 == 1152 + 1520 + 640
    # kernels fit (200 bytes): both modes fetch everything once, a tie goes to kernel reuse
    got = sparse_traffic(table([(2, 2, 6, 12, 3, (0, 0, 0, 0))]), 8, 10, [200], [72])
    assert got.ar_bytes[0, 0] * 8 == got.kr_bytes[0, 0] * 8 == 1152 + 1520 + 1024 + 640
    assert got.mode[0, 0] == KERNEL_REUSE
    # one non-zero a kernel (κ = 38 bits, K = 152), a 10-byte kernel buffer (one filter):
    # KR streams the activations twice, AR the small kernels twice
    got = sparse_traffic(table([(2, 2, 6, 12, 3, (0, 0, 0, 0))]), 8, 1, [10], [72])
    assert got.kr_bytes[0, 0] * 8 == 152 + 2 * 1152 + 1024 + 640
    assert got.ar_bytes[0, 0] * 8 == 1152 + 2 * 152 + 1024 + 640
    assert got.mode[0, 0] == ACT_REUSE


def test_infeasible():
    # one kernel of 10·38 bits = 47.5 bytes does not fit 40 bytes
    got = sparse_traffic(table([(2, 2, 6, 12, 3, (0, 0, 0, 0))]), 8, 10, [40, 100], [72, 72])
    assert np.isinf(got.flexible_bytes[0, 0]) and not got.feasible[0, 0]
    assert got.feasible[0, 1]
    assert got.kr_block[0, 0].tolist() == [0, 0]


def test_entry_bits():
    assert entry_bits(8) == 6 + 32          # 40 bins
    assert entry_bits(16) == 8 + 32         # 144 bins
    assert entry_bits(8, index_bits=8, value_bits=8) == 24


@pytest.mark.parametrize("kw, exc, msg", [
    (dict(n=6), ValueError, r"^n must be 4, 8, 16 or 32, not 6$"),
    (dict(n=8.0), TypeError, r"^n must be an integer, not 8\.0$"),
    (dict(nnz=0), ValueError, r"^nnz must be between 1 and 40, not "),
    (dict(nnz=1.5), TypeError, r"^nnz must be integers, not 1\.5$"),
    (dict(index_bits=5), ValueError, r"^index_bits must number all 40 bins \(at least 6\), "
                                     r"not 5$"),
    (dict(act_bits=4), ValueError, r"^act_bits must be 8 or 16, not 4$"),
    (dict(psum_bits=0), ValueError, r"^psum_bits must be between 1 and 64, not 0$"),
    (dict(kernel_buffer_bytes=[0]), ValueError, r"^kernel_buffer_bytes must be positive "),
    (dict(act_buffer_bytes="x"), TypeError, r"^act_buffer_bytes must be numbers of bytes, "),
    (dict(act_buffer_bytes=[1, 2]), ValueError, r"^kernel_buffer_bytes and act_buffer_bytes "
                                               r"must have one entry per hardware point each, "
                                               r"not 1 and 2$"),
])
def test_errors(kw, exc, msg):
    args = dict(n=8, nnz=10, kernel_buffer_bytes=[100], act_buffer_bytes=[100])
    args.update(kw)
    with pytest.raises(exc, match=msg):
        sparse_traffic(table([(2, 2, 6, 12, 3, (0, 0, 0, 0))]), **args)


def test_layer_errors():
    lt = table([(2, 2, 6, 12, 3, (0, 0, 0, 0))])
    with pytest.raises(ValueError, match=r"^kernel must be smaller than n = 4, not 5 "):
        sparse_traffic(table([(2, 2, 6, 12, 5, (0, 0, 0, 0))]), 4, 3, [100], [100])
    with pytest.raises(TypeError, match=r"^layers must be a LayerTable, not 3$"):
        sparse_traffic(3, 8, 10, [100], [100])
    with pytest.raises(ValueError, match=r"^stride_h must be 1 on the spectral path, not 2 "
                                         r"\(layer l0\)$"):
        sparse_traffic(replace(lt, stride_h=np.array([2])), 8, 10, [100], [100])
    with pytest.raises(ValueError, match=r"^kernel must be square on the spectral path, not "
                                         r"3×1 \(layer l0\)$"):
        sparse_traffic(replace(lt, kw=np.array([1])), 8, 10, [100], [100])
