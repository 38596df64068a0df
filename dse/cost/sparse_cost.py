"""The ``sparse_fft`` choices' DRAM traffic in the cost model's terms.

:func:`sparse_tile_traffic` replaces, in a :class:`dse.cost.traffic.Traffic` of every
(layer, choice, point), the columns of the sparse choices by
:func:`dse.cost.sparse_traffic.sparse_traffic`: the choice's tiling is the reuse mode
(``weights``: kernels resident, activations streamed -- ``kr_bytes``; ``activations``:
activations resident, kernels streamed -- ``ar_bytes``), at the point's weight buffer as the
kernel buffer and its activation buffer as the activation buffer (the KiB the tiling may
fill), the layer's density (``LayerTable.density``, z = ⌈D·bins⌉ kept non-zeros per kernel),
packed kernel entries (⌈log2 bins⌉-bit index, two 16-bit parts), activations and outputs at
the precision, 32-bit partial sums.  Explorer per layer picks the cheaper of the two modes:
that is the flexible dataflow.

Also set, for the sparse columns: ``act_bytes`` (the activation passes), ``weight_bytes``
(the kernel passes), ``out_bytes`` (outputs, overlap-add halo and channel partial sums);
``buffer_bytes`` (the kernel and activation buffers the mode fills: min(buffer, what there
is to hold) each), ``first_load_bytes`` (before the first step: one tile of every channel
and the first channel's kernels of every filter) and
``last_store_bytes`` (one tile's outputs of every filter); ``feasible`` as
``sparse_traffic``'s.  Layers the spectral path cannot run are left infeasible (the legality
mask removes them anyway).
"""

from __future__ import annotations

import numpy as np

from rtl.params import Algorithm

__all__ = ["sparse_tile_traffic", "sparse_legal_layers"]

_ALGOS = list(Algorithm)


def sparse_legal_layers(layers, n: int) -> np.ndarray:
    """Boolean ``(L,)``: layers the ``n``-point spectral path runs (square 1 < k < n,
    stride 1, dilation 1, one group, conv)."""
    return ((layers.kh == layers.kw) & (layers.kh > 1) & (layers.kh < n)
            & (layers.stride_h == 1) & (layers.stride_w == 1) & (layers.dil_h == 1)
            & (layers.dil_w == 1) & (layers.groups == 1)
            & np.array([op == "conv" for op in layers.ops], dtype=bool))


def sparse_tile_traffic(t, layers, choices, points, precision: int):
    """``t`` with the sparse choices' columns replaced (module docstring); ``points`` has
    ``arrays`` of ``act_buffer_kib`` and ``weight_buffer_kib`` (``(V,)``)."""
    from dse.cost.sparse_traffic import KERNEL_REUSE, sparse_traffic
    from dse.lowering import sparse_fft

    sparse = np.flatnonzero(choices.algo == _ALGOS.index(Algorithm.SPARSE_FFT))
    if not sparse.size:
        return t
    n_l, n_c = len(layers), len(choices)
    kb = np.asarray(points.arrays["weight_buffer_kib"], dtype=np.float64) * 1024.0
    ab = np.asarray(points.arrays["act_buffer_kib"], dtype=np.float64) * 1024.0
    n_v = kb.size
    full = (n_l, n_c, n_v)
    names = ("dram_bytes", "act_bytes", "weight_bytes", "out_bytes", "buffer_bytes",
             "first_load_bytes", "last_store_bytes")
    arrays = {k: np.array(np.broadcast_to(np.asarray(getattr(t, k), dtype=np.float64), full))
              for k in names}
    feasible = np.array(np.broadcast_to(np.asarray(getattr(t, "feasible")), full), dtype=bool)
    for n in np.unique(choices.fft_n[sparse]):
        cols = sparse[choices.fft_n[sparse] == n]
        ok = sparse_legal_layers(layers, int(n))
        for k in names:      # infeasible (``feasible`` false masks it): finite zeros
            arrays[k][:, cols] = 0.0
        feasible[:, cols] = False
        if not ok.any():
            continue
        sub = layers.take(np.flatnonzero(ok))
        z = sparse_fft.keep(sub.density, int(n))
        st = sparse_traffic(sub, int(n), z, kb, ab, act_bits=precision, out_bits=precision)
        rows = np.flatnonzero(ok)
        s = int(n) - sub.kh.astype(np.float64)[:, None] + 1
        tile_out = sub.c_out.astype(np.float64)[:, None] * s * s * precision / 8.0
        # what the first (tile, channel) step waits for: one tile of every channel and the
        # first channel's kernels of every filter
        c_in = sub.c_in.astype(np.float64)[:, None]
        first = (np.minimum(st.act_bytes, c_in * s * s * precision / 8.0)
                 + st.kernel_bytes / c_in)
        for c in cols:
            kr = choices.tiling[c] == KERNEL_REUSE
            pre = "kr_" if kr else "ar_"
            get = lambda name: np.asarray(getattr(st, pre + name))  # noqa: E731
            held = np.minimum(kb[None, :], st.kernel_bytes) + np.minimum(ab[None, :],
                                                                        st.act_bytes)
            vals = {"dram_bytes": get("bytes"), "act_bytes": get("act_bytes"),
                    "weight_bytes": get("kernel_bytes"),
                    "out_bytes": st.out_bytes + get("halo_bytes") + get("partial_bytes"),
                    "buffer_bytes": held, "first_load_bytes": first,
                    "last_store_bytes": np.minimum(tile_out, st.out_bytes)}
            good = st.feasible
            for k, v in vals.items():
                arrays[k][rows, c] = np.where(good, v, 0.0)
            feasible[rows, c] = good
    for k, v in arrays.items():
        setattr(t, k, v)
    t.feasible = feasible
    return t
