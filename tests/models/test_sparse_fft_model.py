"""Pruned spectral convolution golden: the dense path at density 1, a loop-by-loop
recomputation of the fixed-point pipeline, a float reference, and SQNR against density."""

import numpy as np
import pytest

from sim.models.conv import conv2d
from sim.models.fft import (FFTParams, fft2d_fixed, fft_conv, hermitian_extend,
                            spectral_kernels, sqnr_db)
from sim.models.sparse_fft import pruning_sqnr, sparse_fft_conv, spectral_mask


def case(seed, c=5, f=3, k=3, h=13, w=11):
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, (c, h, w)), rng.integers(-128, 128, (f, c, k, k))


@pytest.mark.parametrize("n,k", [(8, 3), (8, 5), (16, 3)])
def test_density_one_is_the_dense_path(n, k):
    x, w = case(n + k, k=k)
    p = FFTParams(n)
    dense = fft_conv(x, w, p, k // 2, hermitian=True)
    got = sparse_fft_conv(x, w, p, density=1.0, padding=k // 2)
    np.testing.assert_array_equal(got.acc, dense.acc)
    assert (got.mac_shift, got.kernel_frac, got.saturated) == (
        dense.mac_shift, dense.kernel_frac, dense.saturated)
    # an all-True mask leaves fft_conv unchanged in both bin modes
    full = np.ones((3, 5, n, n // 2 + 1), dtype=bool)
    for herm in (False, True):
        np.testing.assert_array_equal(
            fft_conv(x, w, p, k // 2, hermitian=herm, kernel_mask=full).acc,
            fft_conv(x, w, p, k // 2, hermitian=herm).acc)


def top_bins(kr, ki, keep):
    """Each kernel's ``keep`` largest half-spectrum bins (lower bin first on ties), by loops."""
    f, c, n, h = kr.shape
    mask = np.zeros((f, c, n, h), dtype=bool)
    for i in range(f):
        for j in range(c):
            mag = {(u, v): int(kr[i, j, u, v]) ** 2 + int(ki[i, j, u, v]) ** 2
                   for u in range(n) for v in range(h)}
            for u, v in sorted(mag, key=lambda b: (-mag[b], b))[:keep]:
                mask[i, j, u, v] = True
    return mask


@pytest.mark.parametrize("n,k,density,keep", [(8, 3, 0.25, 10), (8, 5, 0.1, 4),
                                              (16, 3, 0.5, 72)])
def test_pipeline_recomputed_by_loops_bit_for_bit(n, k, density, keep):
    # the stages fft_conv documents, redone with Python integers: forward FFT of the tiles,
    # the masked complex MAC over channels, requantisation (round half up, saturate),
    # Hermitian extension, inverse FFT, overlap-add
    x, w = case(7 * n + k, c=4, f=2, k=k, h=2 * n - 3, w=n + 2)
    p = FFTParams(n)
    pad, shift = k // 2, 13
    kr, ki, _ = spectral_kernels(w, n)
    h = n // 2 + 1
    mask = top_bins(kr[..., :h], ki[..., :h], keep)
    np.testing.assert_array_equal(spectral_mask(w, n, density), mask)
    got = sparse_fft_conv(x, w, p, density=density, padding=pad, mac_shift=shift)

    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    step = n - k + 1
    th, tw = -(-xp.shape[1] // step), -(-xp.shape[2] // step)
    tiles = np.zeros((x.shape[0], th, tw, n, n), dtype=np.int64)
    for ti in range(th):
        for tj in range(tw):
            blk = xp[:, ti * step:(ti + 1) * step, tj * step:(tj + 1) * step]
            tiles[:, ti, tj, :blk.shape[1], :blk.shape[2]] = blk * 2 ** (p.data_bits - 9)
    xr, xi = fft2d_fixed(tiles, np.zeros_like(tiles), p)
    lim = 2 ** (p.data_bits - 1)
    zr = np.zeros((w.shape[0], th, tw, n, n), dtype=np.int64)
    zi = np.zeros_like(zr)
    for o in range(w.shape[0]):
        for ti in range(th):
            for tj in range(tw):
                for u in range(n):
                    for v in range(h):
                        ar = ai = 0
                        for c in range(x.shape[0]):
                            if mask[o, c, u, v]:
                                a, b = int(xr[c, ti, tj, u, v]), int(xi[c, ti, tj, u, v])
                                cr, ci = int(kr[o, c, u, v]), int(ki[o, c, u, v])
                                ar += a * cr - b * ci
                                ai += a * ci + b * cr
                        q = [min(max((s + 2 ** (shift - 1)) >> shift, -lim), lim - 1)
                             for s in (ar, ai)]
                        zr[o, ti, tj, u, v], zi[o, ti, tj, u, v] = q
    zr, zi = hermitian_extend(zr, zi, p.data_bits)
    yr, _ = fft2d_fixed(zr, zi, p, inverse=True)
    big = np.zeros((w.shape[0], th * step + k - 1, tw * step + k - 1), dtype=np.int64)
    for ti in range(th):
        for tj in range(tw):
            big[:, ti * step:ti * step + n, tj * step:tj * step + n] += yr[:, ti, tj]
    oh, ow = x.shape[1], x.shape[2]
    np.testing.assert_array_equal(got.acc, big[:, k - 1:k - 1 + oh, k - 1:k - 1 + ow])


@pytest.mark.parametrize("n,k,density", [(8, 3, 0.25), (8, 5, 0.1), (16, 3, 0.5),
                                         (16, 7, 0.25)])
def test_close_to_the_float_masked_spectral_conv(n, k, density):
    # float64 numpy: the same tiles, the exact kernel spectra masked to the same bins,
    # the half spectrum MAC, conjugate mirrors for v > n/2, IFFT, overlap-add
    x, w = case(11 * n + k, c=6, f=3, k=k, h=3 * n // 2, w=2 * n)
    p = FFTParams(n)
    pad = k // 2
    mask = spectral_mask(w, n, density)
    got = sparse_fft_conv(x, w, p, mask=mask, padding=pad)
    assert got.saturated == 0
    kpad = np.zeros((w.shape[0], w.shape[1], n, n))
    kpad[:, :, :k, :k] = w[:, :, ::-1, ::-1]
    h = n // 2 + 1
    kspec = np.fft.fft2(kpad)[..., :h] * mask
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad))).astype(np.float64)
    step = n - k + 1
    th, tw = -(-xp.shape[1] // step), -(-xp.shape[2] // step)
    big = np.zeros((w.shape[0], th * step + k - 1, tw * step + k - 1))
    for ti in range(th):
        for tj in range(tw):
            tile = np.zeros((x.shape[0], n, n))
            blk = xp[:, ti * step:(ti + 1) * step, tj * step:(tj + 1) * step]
            tile[:, :blk.shape[1], :blk.shape[2]] = blk
            half = np.einsum("ocuv,cuv->ouv", kspec, np.fft.fft2(tile)[..., :h])
            full = np.zeros((w.shape[0], n, n), dtype=complex)
            full[..., :h] = half
            for v in range(h, n):
                full[..., v] = np.conj(half[:, (-np.arange(n)) % n, n - v])
            big[:, ti * step:ti * step + n, tj * step:tj * step + n] += np.fft.ifft2(full).real
    ref = big[:, k - 1:k - 1 + x.shape[1], k - 1:k - 1 + x.shape[2]]
    # the dense path keeps ≥ 40 dB against exact arithmetic at 16 bits (test_fft_model.py)
    assert sqnr_db(got.output, ref) >= 40.0
    # all N² bins MACed: a bin v > n/2 follows its mirror's mask, the kernel stays Hermitian
    every = fft_conv(x, w, p, pad, kernel_mask=mask)
    assert sqnr_db(every.output, ref) >= 40.0
    assert sqnr_db(got.output, conv2d(x, w, 1, pad)) < 20.0    # and pruning did bite


def test_pruned_bins_contribute_nothing():
    # changing a kernel's pruned spectrum entries cannot change the result: prune the same
    # mask out of two different kernels that agree on the kept bins
    x, w = case(5)
    n, h = 8, 5
    mask = np.zeros((3, 5, n, h), dtype=bool)
    mask[..., 0, 0] = True                        # DC only: the kernel sum
    w2 = w.copy()
    w2[..., 0, 0] += 7
    w2[..., 2, 2] -= 7                            # same sum, other spectrum
    p = FFTParams(n)
    a = sparse_fft_conv(x, w, p, mask=mask, padding=1, mac_shift=12)
    b = sparse_fft_conv(x, w2, p, mask=mask, padding=1, mac_shift=12)
    assert a.kernel_frac == b.kernel_frac
    np.testing.assert_array_equal(a.acc, b.acc)
    assert np.any(a.acc != fft_conv(x, w, p, 1, 12, hermitian=True).acc)


def test_sqnr_rises_with_density():
    rng = np.random.default_rng(2024)
    x = rng.integers(-128, 128, (16, 20, 20))
    w = rng.integers(-128, 128, (8, 16, 3, 3))
    rows = pruning_sqnr(x, w, FFTParams(8), (0.1, 0.25, 0.5, 1.0), padding=1)
    assert [r["keep"] for r in rows] == [4, 10, 20, 40]
    exact = [r["vs_exact_db"] for r in rows]
    assert exact == sorted(exact) and len(set(exact)) == 4
    assert rows[-1]["vs_dense_db"] == float("inf")
    assert rows[-1]["vs_exact_db"] == rows[-1]["dense_vs_exact_db"] >= 40.0
    # without retraining, pruning random (white-spectrum) kernels costs most of the signal
    assert all(r["vs_exact_db"] < 15.0 for r in rows[:3])


def test_errors():
    x, w = case(1)
    p = FFTParams(8)
    with pytest.raises(ValueError, match=r"^give exactly one of density and mask$"):
        sparse_fft_conv(x, w, p)
    with pytest.raises(ValueError, match=r"^give exactly one of density and mask$"):
        sparse_fft_conv(x, w, p, density=0.5, mask=np.ones((3, 5, 8, 5), dtype=bool))
    with pytest.raises(ValueError, match=r"^kernel_mask must be a boolean array of shape "
                                         r"\(3, 5, 8, 5\), not bool \(3, 5, 8, 8\)$"):
        fft_conv(x, w, p, kernel_mask=np.ones((3, 5, 8, 8), dtype=bool))
    with pytest.raises(ValueError, match=r"^density must be in \(0, 1\], not 0$"):
        sparse_fft_conv(x, w, p, density=0)
