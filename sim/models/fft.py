"""Bit-accurate fixed-point 2-D FFT/IFFT and spectral (overlap-and-add) convolution.

The 2-D transform mirrors rtl/fft.py step for step:

- Data: complex samples of ``data_bits``-bit signed real and imaginary parts.  The tile is
  loaded at bit-reversed row and column addresses, then radix-2 decimation-in-time passes
  run in natural order: log2(N) passes along rows, then log2(N) along columns.
- Butterfly (a, b, w), w = exp(∓2πik/N) quantised to ``twiddle_bits``-bit signed parts with
  F = twiddle_bits − 2 fraction bits (so +1.0 is representable),
  ``w = floor(cos·2^F + 1/2) + j·floor(∓sin·2^F + 1/2)``:
  t = b·w exactly, then each part rounded half up: ``(p + 2^(F−1)) >> F``;
  a' = a + t, b' = a − t; if the pass scales, ``(v + 1) >> 1`` (÷2, round half up);
  then saturate to ``data_bits``.
- Scaling: ``scale`` is a tuple of 2·log2(N) flags, one per pass (rows first).  All scaled
  gives a forward transform of DFT/N² that cannot overflow (each partial DFT stays below the
  input magnitude).

Spectral convolution (:func:`fft_conv`), stride 1 only, overlap-and-add:
input tiles of T = N − R + 1 pixels, zero-padded to N×N, are transformed; kernels are
flipped (CNN layers correlate) and transformed offline in float64, then quantised to
``kernel_bits`` with ``kernel_frac`` fraction bits; the array multiply-accumulates across
channels per frequency bin exactly (3 real products per complex product, see
docs/algorithms.md); the accumulator is requantised to ``data_bits`` by ``mac_shift``
(round half up, saturate), inverse-transformed, and the real parts are overlap-added.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.models.conv import conv_out_size, pad_chw, pair

__all__ = ["FFTParams", "twiddles", "bit_reverse", "fft2d_fixed", "hermitian_extend",
           "SpectralResult",
           "spectral_kernels", "fft_conv", "sqnr_db"]


@dataclass(frozen=True)
class FFTParams:
    """Widths and scaling of the fixed-point 2-D FFT.

    Parameters
    ----------
    n:
        Points per side (4, 8, 16 or 32).
    data_bits:
        Signed width of the real and imaginary parts of every stored sample.
    twiddle_bits:
        Signed width of twiddle parts; F = twiddle_bits − 2 fraction bits.
    scale:
        One flag per pass (2·log2(n), row passes first): halve after that pass.  ``None``
        means every pass scales.
    """

    n: int = 8
    data_bits: int = 16
    twiddle_bits: int = 16
    scale: tuple[bool, ...] | None = None

    def __post_init__(self):
        if not isinstance(self.n, int) or isinstance(self.n, bool):
            raise TypeError(f"n must be an integer, not {self.n!r}")
        if self.n not in (4, 8, 16, 32):
            raise ValueError(f"n must be 4, 8, 16 or 32, not {self.n}")
        for name in ("data_bits", "twiddle_bits"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"{name} must be an integer, not {v!r}")
            if not 4 <= v <= 32:
                raise ValueError(f"{name} must be between 4 and 32, not {v}")
        if self.scale is not None:
            if len(self.scale) != self.passes:
                raise ValueError(f"scale must have {self.passes} flags, not {len(self.scale)}")
            object.__setattr__(self, "scale", tuple(bool(s) for s in self.scale))

    @property
    def log2n(self) -> int:
        """log2 of the size."""
        return self.n.bit_length() - 1

    @property
    def passes(self) -> int:
        """Butterfly passes of the 2-D transform (rows then columns)."""
        return 2 * self.log2n

    @property
    def scale_flags(self) -> tuple[bool, ...]:
        """The per-pass halving flags (all True by default)."""
        return self.scale if self.scale is not None else (True,) * self.passes

    @property
    def scaled_passes(self) -> int:
        """Number of passes that halve: the transform computes DFT / 2^this."""
        return sum(self.scale_flags)

    @property
    def twiddle_frac(self) -> int:
        """Fraction bits of the twiddles."""
        return self.twiddle_bits - 2


def bit_reverse(i: int, bits: int) -> int:
    """Reverse the low ``bits`` bits of i."""
    return int(format(i, f"0{bits}b")[::-1], 2) if bits else 0


def twiddles(n: int, twiddle_bits: int, inverse: bool = False):
    """Quantised twiddles exp(∓2πik/n), k < n/2: (re, im) int64 arrays, round half up."""
    f = twiddle_bits - 2
    k = np.arange(n // 2)
    ang = 2 * np.pi * k / n
    re = np.floor(np.cos(ang) * (1 << f) + 0.5).astype(np.int64)
    im = np.floor((1 if inverse else -1) * np.sin(ang) * (1 << f) + 0.5).astype(np.int64)
    return re, im


def _sat(v: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    n = int(np.count_nonzero((v < lo) | (v > hi)))
    return np.clip(v, lo, hi), n


def fft2d_fixed(re, im, params: FFTParams, inverse: bool = False, stats: dict | None = None):
    """Fixed-point 2-D FFT (or IFFT, unnormalised apart from the scaling) of [..., N, N].

    Returns (re, im) int64 arrays in natural order.  If ``stats`` is a dict, the number of
    saturated parts is added to ``stats["saturated"]``.
    """
    n, lg = params.n, params.log2n
    re = np.asarray(re, dtype=np.int64)
    im = np.asarray(im, dtype=np.int64)
    if re.shape[-2:] != (n, n) or im.shape != re.shape:
        raise ValueError(f"tiles must be {n}×{n}, not {re.shape} and {im.shape}")
    rev = np.array([bit_reverse(i, lg) for i in range(n)])
    re = re[..., rev, :][..., :, rev].copy()            # load at bit-reversed addresses
    im = im[..., rev, :][..., :, rev].copy()
    wr, wi = twiddles(n, params.twiddle_bits, inverse)
    f = params.twiddle_frac
    half = 1 << (f - 1)
    saturated = 0
    for p, scale in enumerate(params.scale_flags):
        axis = -1 if p < lg else -2
        k = p % lg
        h = 1 << k
        idx = np.arange(n)
        i0 = idx[(idx >> k) & 1 == 0]
        i1 = i0 + h
        tw = (i0 & (h - 1)) * (n // (2 * h))
        ar, ai = np.take(re, i0, axis), np.take(im, i0, axis)
        br, bi = np.take(re, i1, axis), np.take(im, i1, axis)
        shape = [1] * re.ndim
        shape[axis] = len(i0)
        cr, ci = wr[tw].reshape(shape), wi[tw].reshape(shape)
        tr = (br * cr - bi * ci + half) >> f
        ti = (br * ci + bi * cr + half) >> f
        outs = []
        for v in (ar + tr, ai + ti, ar - tr, ai - ti):
            if scale:
                v = (v + 1) >> 1
            v, s = _sat(v, params.data_bits)
            saturated += s
            outs.append(v)
        sl0 = [slice(None)] * re.ndim
        sl1 = [slice(None)] * re.ndim
        sl0[axis], sl1[axis] = i0, i1
        re, im = re.copy(), im.copy()
        re[tuple(sl0)], im[tuple(sl0)], re[tuple(sl1)], im[tuple(sl1)] = outs
    if stats is not None:
        stats["saturated"] = stats.get("saturated", 0) + saturated
    return re, im


@dataclass(frozen=True)
class SpectralResult:
    """Output of :func:`fft_conv`.

    ``acc`` is the overlap-added integer output (N×OH×OW int64, the bit-exact target);
    ``scale`` converts it to the convolution's units (``acc · scale`` ≈ exact output);
    ``saturated`` counts saturated parts across all FFT, requantisation and IFFT steps.
    """

    acc: np.ndarray
    scale: float
    saturated: int
    mac_shift: int
    kernel_frac: int

    @property
    def output(self) -> np.ndarray:
        """The result in the convolution's units (float64)."""
        return self.acc * self.scale


def spectral_kernels(w: np.ndarray, n: int, kernel_bits: int = 16,
                     kernel_frac: int | None = None):
    """Offline kernel spectra: flipped, zero-padded to n×n, FFT, quantised half up.

    Returns (re, im, kernel_frac) with int64 parts of shape N×C×n×n, scaled by 2^kernel_frac,
    the largest fraction that keeps every part within ``kernel_bits`` signed -- or the
    given ``kernel_frac`` (a part of a layer's channels quantised as the whole layer is:
    ``w`` must then be a part of that layer's weights, so that every part fits).
    """
    w = np.asarray(w, dtype=np.float64)
    nf, c, r, s = w.shape
    if r > n or s > n:
        raise ValueError(f"kernel must fit the FFT tile: {r}×{s} > {n}×{n}")
    pad = np.zeros((nf, c, n, n))
    pad[:, :, :r, :s] = w[:, :, ::-1, ::-1]
    k = np.fft.fft2(pad)
    peak = max(np.abs(k.real).max(), np.abs(k.imag).max(), 1e-300)
    frac = int(np.floor(np.log2(((1 << (kernel_bits - 1)) - 1) / peak)))
    if kernel_frac is not None:
        if kernel_frac > frac:
            raise ValueError(f"kernel_frac {kernel_frac} overflows {kernel_bits}-bit parts on "
                             f"these weights (at most {frac})")
        frac = kernel_frac
    q = lambda v: np.floor(v * 2.0 ** frac + 0.5).astype(np.int64)
    return q(k.real), q(k.imag), frac


def hermitian_extend(re, im, bits: int, stats: dict | None = None):
    """Fill bins (u, v) with v > N/2 of [..., N, N] spectra from their mirrors: X(u, v) =
    conj X(−u mod N, N − v), the negated imaginary part saturated to ``bits`` (−(−2^(bits−1))
    does not fit).  The computed half (v ≤ N/2) is kept as it is."""
    re, im = np.array(re, dtype=np.int64), np.array(im, dtype=np.int64)
    n = re.shape[-1]
    cols = np.arange(n // 2 + 1, n)
    rows = (-np.arange(n)) % n
    re[..., cols] = re[..., rows, :][..., n - cols]
    neg, saturated = _sat(-im[..., rows, :][..., n - cols], bits)
    im[..., cols] = neg
    if stats is not None:
        stats["saturated"] = stats.get("saturated", 0) + saturated
    return re, im


def fft_conv(x, w, params: FFTParams, padding=0, in_bits: int = 8, kernel_bits: int = 16,
             mac_shift: int | None = None, inverse_params: FFTParams | None = None,
             hermitian: bool = False, kernel_mask=None,
             kernel_frac: int | None = None) -> SpectralResult:
    """Stride-1 convolution through the fixed-point FFT path (overlap-and-add).

    ``x`` C×H×W and ``w`` N×C×R×S integers of ``in_bits``.  Inputs enter the FFT as
    x·2^(data_bits − in_bits − 1) (one guard bit).  ``mac_shift`` requantises the spectral
    accumulators to ``data_bits`` before the IFFT; ``None`` picks the smallest shift that
    saturates nothing on this data (what a calibrating compiler would store).
    ``inverse_params`` (same n and widths) may give the IFFT its own scaling schedule.
    ``hermitian``: only the bins (u, v ≤ N/2) are multiply-accumulated (the spectrum of a real
    tile is Hermitian); the others are their conjugate mirrors (:func:`hermitian_extend`), as
    the datapath (``rtl/spectral.py``) computes them.  ``mac_shift`` ``None`` then looks at
    the computed half only.
    ``kernel_mask`` (pruned spectral convolution, docs/sparse-fft.md): boolean N×C×n×(n/2+1)
    over the stored half spectra (bins v ≤ n/2); quantised kernel bins where it is False are
    zeroed before the MAC, and with ``hermitian`` False a bin v > n/2 follows the mask of its
    mirror (−u mod n, n − v), so the kernel stays Hermitian.  ``None`` keeps every bin.
    ``kernel_frac``: the kernel spectra's fraction (:func:`spectral_kernels`); ``None``, the
    largest these weights allow (a layer's channels in chunks each take the whole layer's).
    """
    n = params.n
    ip = inverse_params or params
    if ip.n != n or ip.data_bits != params.data_bits:
        raise ValueError("inverse_params must have the same n and data_bits as params")
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    nf, c, r, s = w.shape
    if r >= n or s >= n or r != s:
        raise ValueError(f"kernel must be square and smaller than the FFT tile {n}, "
                         f"not {r}×{s}")
    ph, pw = pair(padding, "padding")
    oh, ow = conv_out_size(x.shape[1], r, 1, ph, 1), conv_out_size(x.shape[2], s, 1, pw, 1)
    xp = pad_chw(x, padding)
    step = n - r + 1
    th, tw = -(-xp.shape[1] // step), -(-xp.shape[2] // step)
    full = np.zeros((c, th * step, tw * step), dtype=np.int64)
    full[:, :xp.shape[1], :xp.shape[2]] = xp
    in_shift = params.data_bits - in_bits - 1
    if in_shift < 0:
        raise ValueError(f"data_bits must exceed in_bits, not {params.data_bits} ≤ {in_bits}")
    tiles = np.zeros((c, th, tw, n, n), dtype=np.int64)
    tiles[..., :step, :step] = (full.reshape(c, th, step, tw, step).transpose(0, 1, 3, 2, 4)
                                << in_shift)
    stats: dict = {}
    xr, xi = fft2d_fixed(tiles, np.zeros_like(tiles), params, stats=stats)
    kr, ki, kfrac = spectral_kernels(w, n, kernel_bits, kernel_frac)
    if kernel_mask is not None:
        kr, ki = _mask_kernels(kr, ki, kernel_mask)
    # complex MAC across channels per bin, exact (the array's job)
    acc_r = np.einsum("ncuv,cijuv->nijuv", kr, xr) - np.einsum("ncuv,cijuv->nijuv", ki, xi)
    acc_i = np.einsum("ncuv,cijuv->nijuv", kr, xi) + np.einsum("ncuv,cijuv->nijuv", ki, xr)
    if hermitian:                           # what is not computed cannot saturate
        acc_r, acc_i = acc_r[..., :n // 2 + 1], acc_i[..., :n // 2 + 1]
    if mac_shift is None:
        peak = int(max(np.abs(acc_r).max(), np.abs(acc_i).max(), 1))
        mac_shift = max(0, peak.bit_length() - (params.data_bits - 1))
        while max(peak + (1 << mac_shift >> 1), 0) >> mac_shift > (1 << (params.data_bits - 1)) - 1:
            mac_shift += 1
    half = (1 << mac_shift) >> 1
    zr, s1 = _sat((acc_r + half) >> mac_shift, params.data_bits)
    zi, s2 = _sat((acc_i + half) >> mac_shift, params.data_bits)
    if hermitian:
        full_r = np.zeros(zr.shape[:-1] + (n,), dtype=np.int64)
        full_i = np.zeros_like(full_r)
        full_r[..., :n // 2 + 1], full_i[..., :n // 2 + 1] = zr, zi
        zr, zi = hermitian_extend(full_r, full_i, params.data_bits, stats)
    yr, _ = fft2d_fixed(zr, zi, ip, inverse=True, stats=stats)
    # overlap-add of N×N blocks placed every `step` pixels (full convolution with flip(w))
    big = np.zeros((nf, th * step + r - 1, tw * step + s - 1), dtype=np.int64)
    for i in range(th):
        for j in range(tw):
            big[:, i * step:i * step + n, j * step:j * step + n] += yr[:, i, j]
    acc = big[:, r - 1:r - 1 + oh, s - 1:s - 1 + ow]
    scale = 2.0 ** (params.scaled_passes + ip.scaled_passes + mac_shift - in_shift - kfrac) \
        / (n * n)
    return SpectralResult(acc, scale, stats["saturated"] + s1 + s2, mac_shift, kfrac)


def _mask_kernels(kr, ki, mask):
    """Zero the kernel bins that ``mask`` (over the half spectra, v ≤ n/2) prunes; bins
    v > n/2 take the mask of their Hermitian mirror."""
    mask = np.asarray(mask)
    n = kr.shape[-1]
    want = kr.shape[:-1] + (n // 2 + 1,)
    if mask.dtype != bool or mask.shape != want:
        raise ValueError(f"kernel_mask must be a boolean array of shape {want}, not "
                         f"{mask.dtype} {mask.shape}")
    cols = np.arange(n // 2 + 1, n)
    full = np.concatenate([mask, mask[..., (-np.arange(n)) % n, :][..., n - cols]], axis=-1)
    return np.where(full, kr, 0), np.where(full, ki, 0)


def sqnr_db(approx: np.ndarray, exact: np.ndarray) -> float:
    """Signal-to-quantisation-noise ratio of ``approx`` against ``exact`` in dB."""
    exact = np.asarray(exact, dtype=np.float64)
    noise = np.sum((np.asarray(approx, dtype=np.float64) - exact) ** 2)
    sig = np.sum(exact ** 2)
    return float("inf") if noise == 0 else float(10 * np.log10(sig / noise))
