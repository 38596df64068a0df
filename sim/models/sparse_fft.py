"""Bit-accurate golden model of the pruned (sparse) spectral convolution, ``sparse_fft``.

The pipeline is :func:`sim.models.fft.fft_conv` with ``hermitian=True`` step for step — the
same fixed-point FFT of the input tiles, the same quantised kernel spectra, the exact
integer complex MAC over channels per bin, requantisation by ``mac_shift``, Hermitian
extension, inverse FFT and overlap-add — except that the kernel bins the compiler pruned are
zero, so they contribute nothing to the MAC.  Pruning is magnitude pruning of the quantised
half spectra (bins v ≤ N/2) per (filter, channel) kernel,
:func:`dse.compiler.sparse_schedule.prune_spectral`; the order in which the sparse datapath reads the
non-zeros does not change the exact integer sums, so the schedule is not an input here.

A pruned kernel spectrum is no longer the spectrum of an R×R kernel: its inverse spans the
whole N×N tile, so overlap-add with blocks every N − R + 1 pixels wraps part of it into the
neighbours.  That is what the hardware computes, and it is part of the pruning error that
:func:`pruning_sqnr` measures.
"""

from __future__ import annotations

import numpy as np

from dse.compiler.sparse_schedule import prune_spectral
from sim.models.conv import conv2d
from sim.models.fft import FFTParams, SpectralResult, fft_conv, spectral_kernels, sqnr_db

__all__ = ["spectral_mask", "sparse_fft_conv", "pruning_sqnr"]


def spectral_mask(w, n: int, density, kernel_bits: int = 16,
                  kernel_frac: int | None = None) -> np.ndarray:
    """Which bins of the quantised half spectra of ``w`` (N×C×R×S; at ``kernel_frac``,
    :func:`sim.models.fft.spectral_kernels`) survive pruning to ``density``: bool,
    N×C×n×(n/2 + 1)."""
    kr, ki, _ = spectral_kernels(w, n, kernel_bits, kernel_frac)
    h = n // 2 + 1
    return prune_spectral(kr[..., :h], ki[..., :h], density).mask.reshape(kr.shape[:-1] + (h,))


def sparse_fft_conv(x, w, params: FFTParams, density=None, mask=None, padding=0,
                    in_bits: int = 8, kernel_bits: int = 16, mac_shift: int | None = None,
                    inverse_params: FFTParams | None = None,
                    kernel_frac: int | None = None) -> SpectralResult:
    """Stride-1 convolution through the pruned spectral path (half spectra, overlap-add).

    Give exactly one of ``density`` (prune each kernel's quantised half spectrum to
    ⌈density·N·(N/2 + 1)⌉ bins, :func:`spectral_mask`) and ``mask`` (the kept bins,
    bool N×C×n×(n/2 + 1), e.g. from a compiler that pruned otherwise).  The other arguments
    and the result are those of :func:`sim.models.fft.fft_conv`; ``mac_shift`` ``None``
    calibrates on the pruned accumulators.  With ``density``, the mask is of the spectra at
    ``kernel_frac`` (``None``: the largest these weights allow).  At density 1 the result is
    ``fft_conv(..., hermitian=True)``'s, bit for bit.
    """
    if (density is None) == (mask is None):
        raise ValueError("give exactly one of density and mask")
    if mask is None:
        mask = spectral_mask(w, params.n, density, kernel_bits, kernel_frac)
    return fft_conv(x, w, params, padding, in_bits, kernel_bits, mac_shift, inverse_params,
                    hermitian=True, kernel_mask=mask, kernel_frac=kernel_frac)


def pruning_sqnr(x, w, params: FFTParams, densities=(0.1, 0.25, 0.5), padding=0,
                 in_bits: int = 8, kernel_bits: int = 16) -> list[dict]:
    """SQNR of the pruned path at each density, without retraining.

    Returns one dict per density: ``density``, ``keep`` (bins kept per kernel),
    ``vs_dense_db`` (against the dense fixed-point path, ``fft_conv(..., hermitian=True)``)
    and ``vs_exact_db`` (against the exact integer convolution), plus ``dense_vs_exact_db``
    for reference.
    """
    exact = conv2d(np.asarray(x), np.asarray(w), 1, padding)
    dense = fft_conv(x, w, params, padding, in_bits, kernel_bits, hermitian=True).output
    rows = []
    for d in densities:
        mask = spectral_mask(w, params.n, d, kernel_bits)
        out = sparse_fft_conv(x, w, params, mask=mask, padding=padding, in_bits=in_bits,
                              kernel_bits=kernel_bits).output
        rows.append({"density": d, "keep": int(mask[0, 0].sum()),
                     "vs_dense_db": sqnr_db(out, dense), "vs_exact_db": sqnr_db(out, exact),
                     "dense_vs_exact_db": sqnr_db(dense, exact)})
    return rows
