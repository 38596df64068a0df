"""Sparse spectral kernels: magnitude pruning, input-spectrum bank placement, and the
conflict-free read schedule of the sparse FFT datapath (``sparse_fft``).

Bins.  A real N×N tile's spectrum is Hermitian, so the datapath stores and multiplies only
the N·(N/2 + 1) bins (u, v) with v ≤ N/2 (``fft_conv(..., hermitian=True)`` in
``sim/models/fft.py``).  This module numbers them row-major: bin ``f = u·(N/2 + 1) + v``.
A spectral kernel (filter n, channel c) is that half spectrum of the quantised kernel, and
the input spectrum of one channel of one tile is the same N·(N/2 + 1) bins.

Pruning (:func:`prune_spectral`).  Per kernel keep the ⌈D·bins⌉ bins of largest magnitude
(|re|² + |im|², exact on integers), ties broken towards the lower bin index.

Placement (:class:`Placement`).  The input spectrum of one channel sits in B banks; bin f
lives at (bank, address), each bank holding at most ⌈bins/B⌉ bins.  The default is
f → bank f mod B, address f div B; :func:`balanced_placement` balances the non-zeros.

Schedule (:func:`conflict_free_schedule`).  P lanes run P filters of a group; lane p
multiply-accumulates, for one input channel, the non-zeros of its kernel, each of which
reads one input-spectrum bin.  Lanes × banks form a bipartite multigraph with one edge per
non-zero (two lanes reading the *same* bin are two edges: the bank serves each read on its
own, no broadcast of equal addresses).  A proper edge colouring with Δ colours, Δ the larger
of the busiest lane's and the busiest bank's degree, is a schedule of Δ steps in which no
bank is read twice; König's theorem says Δ colours suffice, and Δ is a lower bound, so the
schedule is optimal for the placement.  With two read ports a bank vertex splits into two
copies that share its edges round-robin, so a bank serves up to two lanes per step and Δ
counts ⌈bank degree / 2⌉.

Hardware semantics (lock step, :func:`schedule_cycles`).  The sequencer issues one step per
cycle.  A step in which some bank gets more requests than it has ports takes
max over banks of ⌈requests / ports⌉ cycles (at least 1); stall cycles = cycles − steps.
The in-order hardware (:func:`naive_schedule`: step t = every lane's t-th non-zero in bin
order) stalls; the compiled schedule never does.  One schedule serves every tile of the
layer: it depends only on the kernels and the placement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = ["spectral_bins", "bin_index", "keep_count", "PrunedKernels", "prune_spectral",
           "Placement", "default_placement", "balanced_placement", "bank_loads",
           "placement_cost", "schedule_steps", "conflict_free_schedule", "naive_schedule",
           "schedule_cycles", "LayerSchedule", "schedule_layer", "SparseProgram",
           "layer_program"]

#: Most int32 colouring-table entries held at once (16 MiB); a larger layer is coloured in
#: chunks of (group, channel) pairs.  Larger chunks run faster (fewer Python steps).
_TABLE_ENTRIES = 1 << 22


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < low or (high is not None and value > high):
        want = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {want}, not {value}")
    return int(value)


def spectral_bins(n: int) -> int:
    """Stored bins of an ``n``-point 2-D spectrum: n·(n/2 + 1)."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        raise TypeError(f"n must be an integer, not {n!r}")
    if n not in (4, 8, 16, 32):
        raise ValueError(f"n must be 4, 8, 16 or 32, not {n}")
    return n * (n // 2 + 1)


def bin_index(u, v, n: int):
    """Bin number of the stored spectrum entry (u, v), v ≤ n/2: u·(n/2 + 1) + v."""
    spectral_bins(n)
    u, v = np.asarray(u), np.asarray(v)
    if np.any((u < 0) | (u >= n) | (v < 0) | (v > n // 2)):
        raise ValueError(f"bins must have 0 ≤ u < {n} and 0 ≤ v ≤ {n // 2}, not {u!r}, {v!r}")
    return u * (n // 2 + 1) + v


def keep_count(density, bins: int) -> int:
    """Non-zeros kept per kernel at ``density``: ⌈density·bins⌉, with ``density`` read as
    the decimal it prints as (0.1 · 40 keeps 4, not 5 from binary 0.1's excess)."""
    bins = _check_int("bins", bins, 1)
    if isinstance(density, bool) or not isinstance(density, (int, float, np.floating,
                                                              np.integer, Fraction)):
        raise TypeError(f"density must be a number, not {density!r}")
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], not {density}")
    exact = density if isinstance(density, Fraction) else Fraction(repr(float(density)))
    return math.ceil(exact * bins)


@dataclass(frozen=True)
class PrunedKernels:
    """Pruned spectral kernels, as a mask and in compressed form.

    Attributes
    ----------
    n:
        FFT points per side; ``bins = n·(n/2 + 1)``.
    mask:
        bool, shape ``(..., bins)``: True where the kernel keeps the bin (bin numbering in
        the module docstring).
    bin:
        int64, shape ``(..., keep)``: the kept bins of each kernel in increasing order.
    re, im:
        shape ``(..., keep)``: the kept values, in the same order as ``bin``.
    """

    n: int
    mask: np.ndarray
    bin: np.ndarray
    re: np.ndarray
    im: np.ndarray

    @property
    def keep(self) -> int:
        """Non-zeros per kernel."""
        return self.bin.shape[-1]

    def pairs(self, *index) -> list[tuple[int, complex]]:
        """The (bin, value) pairs of one kernel, in bin order, e.g. ``pairs(filter, channel)``."""
        b, r, i = self.bin[index], self.re[index], self.im[index]
        if b.ndim != 1:
            raise ValueError(f"index must select one kernel of {self.mask.shape[:-1]}, "
                             f"not {index!r}")
        return [(int(f), complex(x, y)) for f, x, y in zip(b, r, i)]

    def dense(self) -> tuple[np.ndarray, np.ndarray]:
        """The pruned half spectra (re, im), shape ``(..., n, n/2 + 1)``, zeros where pruned."""
        shape = self.mask.shape[:-1] + (self.n, self.n // 2 + 1)
        re = np.zeros(self.mask.shape, dtype=self.re.dtype)
        im = np.zeros(self.mask.shape, dtype=self.im.dtype)
        np.put_along_axis(re, self.bin, self.re, -1)
        np.put_along_axis(im, self.bin, self.im, -1)
        return re.reshape(shape), im.reshape(shape)


def prune_spectral(re, im, density) -> PrunedKernels:
    """Magnitude pruning of half spectra ``re``, ``im`` of shape ``(..., n, n/2 + 1)``.

    Keeps per kernel the :func:`keep_count` bins of largest |re|² + |im|² (computed exactly
    for integer parts), the lower bin index first among equal magnitudes.  The half spectra
    of ``sim.models.fft.spectral_kernels(w, n)`` are its ``[..., : n // 2 + 1]`` columns.
    """
    re, im = np.asarray(re), np.asarray(im)
    if re.shape != im.shape or re.ndim < 2:
        raise ValueError(f"re and im must have one shape (..., n, n/2 + 1), not {re.shape} "
                         f"and {im.shape}")
    n = re.shape[-2]
    bins = spectral_bins(n)
    if re.shape[-1] != n // 2 + 1:
        raise ValueError(f"spectra must have n/2 + 1 = {n // 2 + 1} columns, not "
                         f"{re.shape[-1]}")
    k = keep_count(density, bins)
    flat_re = re.reshape(re.shape[:-2] + (bins,))
    flat_im = im.reshape(im.shape[:-2] + (bins,))
    if np.issubdtype(re.dtype, np.integer):
        big = max(int(np.abs(flat_re).max(initial=0)), int(np.abs(flat_im).max(initial=0)))
        if 2 * big * big >= 1 << 63:
            raise ValueError(f"spectra parts must stay below 2^31 in magnitude, not {big}")
        mag = flat_re.astype(np.int64) ** 2 + flat_im.astype(np.int64) ** 2
    else:
        mag = flat_re.astype(np.float64) ** 2 + flat_im.astype(np.float64) ** 2
    order = np.argsort(-mag, axis=-1, kind="stable")     # stable: lower bin first on ties
    kept = np.sort(order[..., :k], axis=-1)
    mask = np.zeros(mag.shape, dtype=bool)
    np.put_along_axis(mask, kept, True, -1)
    return PrunedKernels(n, mask, kept.astype(np.int64),
                         np.take_along_axis(flat_re, kept, -1),
                         np.take_along_axis(flat_im, kept, -1))


@dataclass(frozen=True)
class Placement:
    """Where each input-spectrum bin lives: ``bank[f]`` and ``address[f]`` for bin f.

    Every bank holds at most ``capacity`` = ⌈bins / banks⌉ bins, at distinct addresses
    below ``capacity``.
    """

    bank: np.ndarray
    address: np.ndarray
    banks: int

    def __post_init__(self):
        _check_int("banks", self.banks, 1)
        bank = np.asarray(self.bank, dtype=np.int64)
        address = np.asarray(self.address, dtype=np.int64)
        if bank.ndim != 1 or bank.shape != address.shape or bank.size == 0:
            raise ValueError(f"bank and address must be one non-empty row each, not "
                             f"{bank.shape} and {address.shape}")
        cap = -(-bank.size // self.banks)
        if bank.min() < 0 or bank.max() >= self.banks:
            raise ValueError(f"bank entries must be in [0, {self.banks}), not "
                             f"{bank.min()}..{bank.max()}")
        if address.min() < 0 or address.max() >= cap:
            raise ValueError(f"address entries must be in [0, {cap}), not "
                             f"{address.min()}..{address.max()}")
        if np.unique(bank * cap + address).size != bank.size:
            raise ValueError("placement must give every bin its own (bank, address)")
        bank.setflags(write=False)
        address.setflags(write=False)
        object.__setattr__(self, "bank", bank)
        object.__setattr__(self, "address", address)

    @property
    def bins(self) -> int:
        """Bins placed."""
        return self.bank.size

    @property
    def capacity(self) -> int:
        """Words per bank: ⌈bins / banks⌉."""
        return -(-self.bins // self.banks)


def default_placement(bins: int, banks: int) -> Placement:
    """Bin f at bank f mod ``banks``, address f div ``banks``."""
    bins = _check_int("bins", bins, 1)
    banks = _check_int("banks", banks, 1)
    f = np.arange(bins)
    return Placement(f % banks, f // banks, banks)


def _layer_mask(mask) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise TypeError(f"mask must be a boolean array, not {mask.dtype}")
    if mask.ndim == 2:
        mask = mask[:, None, :]
    if mask.ndim != 3 or 0 in mask.shape:
        raise ValueError(f"mask must be filters × channels × bins (or filters × bins), not "
                         f"{mask.shape}")
    return mask


def _groups(mask: np.ndarray, lanes: int) -> np.ndarray:
    """filters × channels × bins → groups × channels × lanes × bins, idle lanes False."""
    f, c, bins = mask.shape
    g = -(-f // lanes)
    full = np.zeros((g * lanes, c, bins), dtype=bool)
    full[:f] = mask
    return full.reshape(g, lanes, c, bins).transpose(0, 2, 1, 3)


def bank_loads(mask, placement: Placement, lanes: int) -> np.ndarray:
    """Non-zeros per bank that each (group of ``lanes`` filters, channel) reads.

    ``mask`` is filters × channels × bins (a 2-D filters × bins mask is one channel);
    filters are grouped in order, the last group padded with idle lanes.  Returns int64
    of shape groups × channels × banks.
    """
    mask = _layer_mask(mask)
    lanes = _check_int("lanes", lanes, 1)
    if mask.shape[-1] != placement.bins:
        raise ValueError(f"mask must have the placement's {placement.bins} bins, not "
                         f"{mask.shape[-1]}")
    per_bin = _groups(mask, lanes).sum(axis=2, dtype=np.int64)          # g × c × bins
    onehot = np.zeros((placement.bins, placement.banks), dtype=np.int64)
    onehot[np.arange(placement.bins), placement.bank] = 1
    return per_bin @ onehot


def placement_cost(mask, placement: Placement, lanes: int) -> tuple[int, int]:
    """(worst, total) busiest-bank load: the largest, and the sum, over (group, channel)
    pairs, of the busiest bank's non-zero count.  :func:`balanced_placement` minimises this
    pair lexicographically."""
    busiest = bank_loads(mask, placement, lanes).max(axis=-1)
    return int(busiest.max()), int(busiest.sum())


def balanced_placement(mask, lanes: int, banks: int) -> Placement:
    """One placement for a layer that balances the banks' non-zero loads.

    The input spectrum is written once per tile and read by every group of ``lanes``
    filters, so one placement serves all (group, channel) pairs.  Bins are weighted by their
    non-zeros summed over all filters and channels and placed by LPT: heaviest bin first
    (lower bin index on ties), each into the least-loaded bank that has room (lowest bank
    on ties), addresses in order of arrival.  The result is whichever of LPT and
    :func:`default_placement` has the lower :func:`placement_cost` (the default on a tie),
    so it is never worse than the default.
    """
    mask = _layer_mask(mask)
    lanes = _check_int("lanes", lanes, 1)
    banks = _check_int("banks", banks, 1)
    bins = mask.shape[-1]
    base = default_placement(bins, banks)
    weight = mask.sum(axis=(0, 1), dtype=np.int64)
    cap = base.capacity
    load = np.zeros(banks, dtype=np.int64)
    used = np.zeros(banks, dtype=np.int64)
    bank = np.empty(bins, dtype=np.int64)
    address = np.empty(bins, dtype=np.int64)
    for f in np.argsort(-weight, kind="stable"):
        room = np.flatnonzero(used < cap)
        b = room[np.argmin(load[room])]
        bank[f], address[f] = b, used[b]
        load[b] += weight[f]
        used[b] += 1
    lpt = Placement(bank, address, banks)
    if placement_cost(mask, lpt, lanes) < placement_cost(mask, base, lanes):
        return lpt
    return base


def _lane_bins(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., lanes, bins) → each lane's non-zero bins in order, padded with −1, and the
    validity mask; shape (..., lanes, max non-zeros)."""
    nnz = mask.sum(axis=-1)
    k = int(nnz.max(initial=0))
    order = np.argsort(~mask, axis=-1, kind="stable")[..., :k]
    valid = np.arange(k) < nnz[..., None]
    return np.where(valid, order, -1), valid


def _split_ports(bank: np.ndarray, valid: np.ndarray, banks: int, ports: int) -> np.ndarray:
    """Bank vertex of each edge (rows = pairs, columns = edges in order): bank·ports + the
    edge's rank among the row's earlier edges into that bank, mod ports (round-robin)."""
    if ports == 1:
        return bank
    rows, e = bank.shape
    key = np.where(valid, bank, banks)                    # invalid edges sort last
    order = np.argsort(key, axis=1, kind="stable")
    s = np.take_along_axis(key, order, 1)
    pos = np.broadcast_to(np.arange(e), (rows, e))
    start = np.ones((rows, e), dtype=bool)
    start[:, 1:] = s[:, 1:] != s[:, :-1]
    first = np.maximum.accumulate(np.where(start, pos, 0), axis=1)
    rank = np.empty_like(pos)
    np.put_along_axis(rank, order, pos - first, 1)
    return bank * ports + rank % ports


def _degrees(lane_nnz: np.ndarray, vert: np.ndarray, valid: np.ndarray, verts: int):
    """Δ per row: max of the busiest lane's and the busiest bank vertex's degree."""
    rows = vert.shape[0]
    idx = (np.arange(rows)[:, None] * verts + vert)[valid]
    vdeg = np.bincount(idx, minlength=rows * verts).reshape(rows, verts)
    return np.maximum(lane_nnz.max(axis=-1, initial=0), vdeg.max(axis=-1, initial=0))


def _colour(lane: np.ndarray, vert: np.ndarray, valid: np.ndarray, delta: np.ndarray,
            lanes: int, verts: int) -> np.ndarray:
    """Proper edge colouring of a batch of bipartite multigraphs with exactly ``delta[m]``
    colours each (alternating-path / Kempe-chain method, run in lock step over the batch).

    ``lane`` (edges,) is the lane of each edge (the same in every graph), ``vert`` and
    ``valid`` (graphs × edges) its bank vertex and whether it exists.  Returns the
    graphs × lanes × max Δ table of edge ids per (lane, colour), −1 where the lane idles.

    Edge (u, v): use the lowest colour free at both ends if there is one.  Otherwise take
    a colour a free at u (so used at v) and b free at v (so used at u): the path from v
    along colours a, b, a, … never reaches u (lanes are entered along a, which u lacks), and
    swapping a and b on it frees a at v.
    """
    m = vert.shape[0]
    d = int(delta.max(initial=0))
    cols = np.arange(d)
    blocked = cols[None, :] >= delta[:, None]                       # colours ≥ Δ never free
    lnb = np.where(blocked[:, None, :], -2, -1).astype(np.int32).repeat(lanes, 1)
    ledge = np.full((m, lanes, d), -1, dtype=np.int32)
    bnb = np.where(blocked[:, None, :], -2, -1).astype(np.int32).repeat(verts, 1)
    for e in range(vert.shape[1]):
        ms = np.flatnonzero(valid[:, e])
        if ms.size == 0:
            continue
        u = int(lane[e])
        v = vert[ms, e]
        k = np.arange(ms.size)
        lfree, bfree = lnb[ms, u] == -1, bnb[ms, v] == -1
        both = lfree & bfree
        col = np.argmax(both, axis=1)                   # lowest colour free at both ends
        flip = ~both[k, col]
        if flip.any():
            a = np.argmax(lfree[flip], axis=1)
            b = np.argmax(bfree[flip], axis=1)
            _swap_path(lnb, ledge, bnb, ms[flip], v[flip], a, b)
            col[flip] = a
        lnb[ms, u, col] = v
        ledge[ms, u, col] = e
        bnb[ms, v, col] = u
    return ledge


def _swap_path(lnb, ledge, bnb, ms, start, a, b):
    """Swap colours a and b on the a/b path that leaves bank vertex ``start`` along a, for
    each graph in ``ms`` at once (in lock step until every path ends)."""
    recs = []                          # (graph, lane, vertex, colour, new colour, edge)
    cur_m, cur_v, ca, cb = ms, start, a, b
    while cur_m.size:
        y = bnb[cur_m, cur_v, ca]                 # lane on the a edge of the vertex
        go = y >= 0
        cur_m, cur_v, ca, cb, y = cur_m[go], cur_v[go], ca[go], cb[go], y[go]
        recs.append((cur_m, y, cur_v, ca, cb, ledge[cur_m, y, ca]))
        z = lnb[cur_m, y, cb]                     # vertex on the b edge of that lane
        go = z >= 0
        cur_m, y, ca, cb, z = cur_m[go], y[go], ca[go], cb[go], z[go]
        recs.append((cur_m, y, z, cb, ca, ledge[cur_m, y, cb]))
        cur_v = z
    g, ln, vx, c, other, ed = (np.concatenate(x) for x in zip(*recs))
    lnb[g, ln, c] = -1                            # clear the whole path, then recolour it
    ledge[g, ln, c] = -1
    bnb[g, vx, c] = -1
    lnb[g, ln, other] = vx
    ledge[g, ln, other] = ed
    bnb[g, vx, other] = ln


def _check_ports(ports) -> int:
    return _check_int("ports", ports, 1, 2)


def _pair_mask(mask, placement: Placement) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise TypeError(f"mask must be a boolean array, not {mask.dtype}")
    if mask.ndim != 2 or mask.shape[0] == 0:
        raise ValueError(f"mask must be lanes × bins, not {mask.shape}")
    if mask.shape[1] != placement.bins:
        raise ValueError(f"mask must have the placement's {placement.bins} bins, not "
                         f"{mask.shape[1]}")
    return mask


def schedule_steps(mask, placement: Placement, ports: int = 1) -> int:
    """Δ of one (group, channel): max(busiest lane's non-zeros, ⌈busiest bank's reads /
    ports⌉) — the length of :func:`conflict_free_schedule` and a lower bound on any
    schedule's steps.  ``mask`` is lanes × bins."""
    mask = _pair_mask(mask, placement)
    ports = _check_ports(ports)
    reads = np.bincount(placement.bank[np.nonzero(mask)[1]], minlength=placement.banks)
    return int(max(mask.sum(axis=1).max(), -(-reads.max() // ports)))


def _schedule_batch(mask: np.ndarray, placement: Placement, ports: int):
    """Colour a batch (rows × lanes × bins) of (group, channel) pairs; returns the
    rows × max Δ × lanes table of bins (−1 idle) and Δ per row."""
    rows, lanes, _ = mask.shape
    bins_of, valid = _lane_bins(mask)                              # rows × lanes × k
    k = bins_of.shape[-1]
    # edges in round-robin order over the lanes: every lane's 1st non-zero, then 2nd, …
    eb = bins_of.transpose(0, 2, 1).reshape(rows, k * lanes)
    ev = valid.transpose(0, 2, 1).reshape(rows, k * lanes)
    lane = np.tile(np.arange(lanes), k)
    verts = placement.banks * ports
    vert = _split_ports(placement.bank[np.maximum(eb, 0)], ev, placement.banks, ports)
    delta = _degrees(valid.sum(axis=-1), vert, ev, verts)
    order = np.full((rows, int(delta.max(initial=0)), lanes), -1, dtype=np.int16)
    step = max(1, _TABLE_ENTRIES // max(1, (2 * lanes + verts) * int(delta.max(initial=1))))
    for lo in range(0, rows, step):
        hi = min(rows, lo + step)
        ledge = _colour(lane, vert[lo:hi], ev[lo:hi], delta[lo:hi], lanes, verts)
        got = np.take_along_axis(eb[lo:hi], np.maximum(ledge, 0).reshape(hi - lo, -1), 1)
        got = np.where(ledge.reshape(hi - lo, -1) >= 0, got, -1)
        order[lo:hi, :ledge.shape[2]] = got.reshape(hi - lo, lanes, -1).transpose(0, 2, 1)
    return order, delta


def conflict_free_schedule(mask, placement: Placement, ports: int = 1) -> list[tuple]:
    """The compiled read schedule of one (group, channel): :func:`schedule_steps` steps.

    ``mask`` is lanes × bins (lane p reads bin f iff ``mask[p, f]``).  Each step is a
    tuple with one entry per lane: the bin it reads, or None.  Every non-zero is read in
    exactly one step, and in every step each bank serves at most ``ports`` lanes (reads of
    the same bin by two lanes count twice: no broadcast), so :func:`schedule_cycles` finds
    no stall.  Computed as a Δ-edge colouring of the lanes × bank-ports multigraph.
    """
    mask = _pair_mask(mask, placement)
    ports = _check_ports(ports)
    order, delta = _schedule_batch(mask[None], placement, ports)
    return [tuple(None if f < 0 else int(f) for f in row) for row in order[0, :delta[0]]]


def naive_schedule(mask) -> list[tuple]:
    """The in-order schedule of one (group, channel): step t = each lane's t-th non-zero in
    bin order (None for lanes that have fewer).  ``mask`` is lanes × bins."""
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise TypeError(f"mask must be a boolean array, not {mask.dtype}")
    if mask.ndim != 2 or mask.shape[0] == 0:
        raise ValueError(f"mask must be lanes × bins, not {mask.shape}")
    bins_of, _ = _lane_bins(mask)
    return [tuple(None if f < 0 else int(f) for f in bins_of[:, t])
            for t in range(bins_of.shape[1])]


def schedule_cycles(schedule, placement: Placement, ports: int = 1) -> tuple[int, int]:
    """(cycles, stall cycles) of ``schedule`` on the lock-step hardware: each step takes
    max over banks of ⌈requests / ports⌉ cycles, at least 1; stalls = cycles − steps."""
    ports = _check_ports(ports)
    cycles = 0
    for step in schedule:
        bins = [f for f in step if f is not None]
        if any(not 0 <= f < placement.bins for f in bins):
            raise ValueError(f"schedule bins must be in [0, {placement.bins}), not {step!r}")
        reads = np.bincount(placement.bank[np.asarray(bins, dtype=np.int64)],
                            minlength=placement.banks)
        cycles += max(1, -(-int(reads.max()) // ports))
    return cycles, cycles - len(schedule)


@dataclass(frozen=True)
class LayerSchedule:
    """Schedules of one layer: per (group of ``lanes`` filters, input channel).

    Attributes
    ----------
    lanes, banks, ports:
        The datapath: P lanes, B input-spectrum banks with ``ports`` read ports each.
    placement:
        The input-spectrum placement used.
    order:
        int16, groups × channels × max steps × lanes: the bin lane p reads at step t of
        the compiled schedule, −1 when idle or past that pair's length.
    steps:
        groups × channels: compiled steps (= cycles: the schedule never stalls).
    naive_steps, naive_cycles:
        groups × channels: the in-order schedule's steps and its cycles on the lock-step
        hardware (``naive_cycles − naive_steps`` are its stalls).
    macs:
        groups × channels: useful complex MACs (non-zeros) per tile.
    """

    lanes: int
    banks: int
    ports: int
    placement: Placement
    order: np.ndarray
    steps: np.ndarray
    naive_steps: np.ndarray
    naive_cycles: np.ndarray
    macs: np.ndarray

    @property
    def naive_stalls(self) -> np.ndarray:
        """Stall cycles of the in-order schedule per (group, channel)."""
        return self.naive_cycles - self.naive_steps

    @property
    def cycles(self) -> int:
        """Compiled cycles per tile, all (group, channel) pairs."""
        return int(self.steps.sum())

    @property
    def naive_total(self) -> int:
        """In-order cycles per tile, stalls included."""
        return int(self.naive_cycles.sum())

    @property
    def stall_cycles(self) -> int:
        """Stall cycles of the in-order schedule per tile (the compiled one has none)."""
        return int(self.naive_stalls.sum())

    @property
    def utilisation(self) -> float:
        """Lane utilisation of the compiled schedule: useful MACs / (lanes × cycles)."""
        return float(self.macs.sum() / (self.lanes * max(1, self.cycles)))

    @property
    def naive_utilisation(self) -> float:
        """Lane utilisation of the in-order schedule."""
        return float(self.macs.sum() / (self.lanes * max(1, self.naive_total)))


def schedule_layer(mask, lanes: int, banks: int, ports: int = 1,
                   placement: Placement | str = "balanced") -> LayerSchedule:
    """Schedule every (group, channel) pair of a layer.

    ``mask`` is filters × channels × bins (:attr:`PrunedKernels.mask`); filters are grouped
    ``lanes`` at a time in order, the last group padded with idle lanes.  ``placement`` is a
    :class:`Placement`, ``"balanced"`` (:func:`balanced_placement`) or ``"default"``.
    """
    mask = _layer_mask(mask)
    lanes = _check_int("lanes", lanes, 1)
    banks = _check_int("banks", banks, 1)
    ports = _check_ports(ports)
    if isinstance(placement, str):
        if placement not in ("balanced", "default"):
            raise ValueError(f"placement must be a Placement, 'balanced' or 'default', not "
                             f"{placement!r}")
        placement = (balanced_placement(mask, lanes, banks) if placement == "balanced"
                     else default_placement(mask.shape[-1], banks))
    elif not isinstance(placement, Placement):
        raise TypeError(f"placement must be a Placement, 'balanced' or 'default', not "
                        f"{placement!r}")
    if placement.banks != banks or placement.bins != mask.shape[-1]:
        raise ValueError(f"placement must have {banks} banks and {mask.shape[-1]} bins, not "
                         f"{placement.banks} and {placement.bins}")
    grouped = _groups(mask, lanes)
    g, c = grouped.shape[:2]
    pairs = grouped.reshape(g * c, lanes, -1)
    order, delta = _schedule_batch(pairs, placement, ports)
    # the in-order schedule: step t = every lane's t-th non-zero
    bins_of, valid = _lane_bins(pairs)                             # pairs × lanes × k
    k = bins_of.shape[-1]
    idx = ((np.arange(g * c)[:, None, None] * k + np.arange(k)[None, None, :]) * banks
           + placement.bank[np.maximum(bins_of, 0)])
    reads = np.bincount(idx[valid], minlength=g * c * k * banks).reshape(g * c, k, banks)
    naive_steps = valid.sum(axis=-1).max(axis=-1)
    per_step = np.maximum(1, -(-reads.max(axis=-1, initial=0) // ports))
    naive_cycles = np.where(np.arange(k) < naive_steps[:, None], per_step, 0).sum(axis=1)
    return LayerSchedule(lanes, banks, ports, placement,
                         order.reshape(g, c, *order.shape[1:]), delta.reshape(g, c),
                         naive_steps.reshape(g, c), naive_cycles.reshape(g, c),
                         pairs.sum(axis=(1, 2)).reshape(g, c))


@dataclass(frozen=True)
class SparseProgram:
    """What the conv datapath's sparse unit holds for one layer (``rtl/spectral.py``).

    Attributes
    ----------
    schedule:
        The layer's :class:`LayerSchedule` (balanced placement, one read port a bank).
    placement:
        Per bin, its (bank, row) in the input-spectrum banks.
    steps:
        The schedule memory, group-major then channel: per step the bin each lane reads
        (−1: idle) and whether it is its (group, channel) pair's last step.
    kernels:
        Per lane, the kernel values (re, im) in the order the schedule has the lane read
        them on one tile (every group, then channel, then step).
    """

    schedule: LayerSchedule
    placement: tuple
    steps: tuple
    kernels: tuple


def layer_program(pruned: PrunedKernels, lanes: int, banks: int) -> SparseProgram:
    """The sparse unit's placement, schedule and kernel banks for a layer's pruned kernels
    (``pruned`` filters × channels × bins): :func:`schedule_layer` with a balanced
    placement, its steps in group, channel order, and each lane's non-zeros in the order
    it reads them."""
    schedule = schedule_layer(pruned.mask, lanes, banks, 1, "balanced")
    filters, channels, bins = pruned.mask.shape
    # dense (filter, channel, bin) values: the kernels' non-zeros, zero where pruned
    re = np.zeros((filters, channels, bins), dtype=np.int64)
    im = np.zeros((filters, channels, bins), dtype=np.int64)
    np.put_along_axis(re, pruned.bin, pruned.re, -1)
    np.put_along_axis(im, pruned.bin, pruned.im, -1)
    steps, kernels = [], [[] for _ in range(lanes)]
    for g in range(schedule.steps.shape[0]):
        for c in range(channels):
            delta = int(schedule.steps[g, c])
            for t in range(delta):
                row = tuple(int(b) for b in schedule.order[g, c, t])
                steps.append((row, t == delta - 1))
                for lane, b in enumerate(row):
                    if b >= 0:
                        f = g * lanes + lane
                        kernels[lane].append((int(re[f, c, b]), int(im[f, c, b])))
    place = schedule.placement
    return SparseProgram(schedule, tuple(zip(place.bank.tolist(), place.address.tolist())),
                         tuple(steps), tuple(tuple(k) for k in kernels))
