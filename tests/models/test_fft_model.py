"""Fixed-point FFT golden: against numpy's FFT, and the spectral path's SQNR vs exact conv."""

import numpy as np
import pytest

from sim.models.conv import conv2d
from sim.models.fft import FFTParams, bit_reverse, fft2d_fixed, fft_conv, sqnr_db, twiddles
from sim.reference import ort_conv_float


@pytest.mark.parametrize("n", [4, 8, 16])
@pytest.mark.parametrize("inverse", [False, True])
def test_fft2d_close_to_numpy(n, inverse):
    # each of 2·log2(n) passes adds at most ~1 LSB of rounding per part (twiddle product
    # rounding, halving, twiddle quantisation), scaled down by later passes: < passes LSB total
    p = FFTParams(n)
    rng = np.random.default_rng(n)
    re = rng.integers(-2 ** 14, 2 ** 14, (5, n, n))
    im = rng.integers(-2 ** 14, 2 ** 14, (5, n, n))
    st = {}
    gr, gi = fft2d_fixed(re, im, p, inverse, st)
    z = re + 1j * im
    ref = np.fft.ifft2(z) if inverse else np.fft.fft2(z) / (n * n)
    assert np.abs(gr - ref.real).max() < p.passes
    assert np.abs(gi - ref.imag).max() < p.passes
    assert st["saturated"] == 0


def test_butterfly_by_hand():
    # n = 4, one row [a, b, c, d] -> DFT/4 with exact twiddles (1 and -j are exact)
    p = FFTParams(4, data_bits=16, twiddle_bits=16)
    re = np.zeros((4, 4), dtype=np.int64)
    re[0] = [400, 80, -48, 16]                # multiples of 16: every halving is exact
    gr, gi = fft2d_fixed(re, np.zeros_like(re), p)
    # 2-D DFT/16 of a single non-zero row: every row of the result is the row's DFT/16
    want = np.fft.fft(re[0]) / 16
    np.testing.assert_array_equal(gr, np.tile(np.floor(want.real + 0.5), (4, 1)))
    np.testing.assert_array_equal(gi, np.tile(np.floor(want.imag + 0.5), (4, 1)))


def test_twiddles_round_half_up():
    re, im = twiddles(8, 8)                   # F = 6: cos(pi/4)·64 = 45.25 -> 45
    np.testing.assert_array_equal(re, [64, 45, 0, -45])
    np.testing.assert_array_equal(im, [0, -45, -64, -45])
    assert [bit_reverse(i, 3) for i in range(8)] == [0, 4, 2, 6, 1, 5, 3, 7]


def test_saturation_is_counted():
    p = FFTParams(4, data_bits=8, scale=(False,) * 4)
    st = {}
    fft2d_fixed(np.full((4, 4), 100), np.zeros((4, 4)), p, stats=st)
    assert st["saturated"] > 0


# (n, kernel, channels): the SQNR target is 40 dB at 16-bit data and twiddles
@pytest.mark.parametrize("hermitian", [False, True], ids=["all_bins", "hermitian"])
@pytest.mark.parametrize("n,k,c", [(8, 3, 16), (8, 5, 6), (8, 1, 3), (16, 3, 8), (16, 7, 5)])
def test_spectral_conv_sqnr_at_16_bits(n, k, c, hermitian):
    rng = np.random.default_rng(n * k + c)
    x = rng.integers(-128, 128, (c, 19, 17))
    w = rng.integers(-128, 128, (4, c, k, k))
    res = fft_conv(x, w, FFTParams(n), padding=k // 2, hermitian=hermitian)
    exact = ort_conv_float(x, w, 1, k // 2)
    np.testing.assert_array_equal(exact, conv2d(x, w, 1, k // 2))
    assert res.saturated == 0
    assert sqnr_db(res.output, exact) >= 40.0


def test_spectral_conv_sqnr_drops_with_width():
    # a sanity check that the model is really fixed point: 10-bit data loses ~36 dB
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (4, 12, 12))
    w = rng.integers(-128, 128, (2, 4, 3, 3))
    exact = conv2d(x, w, 1, 1)
    hi = sqnr_db(fft_conv(x, w, FFTParams(8), 1).output, exact)
    lo = sqnr_db(fft_conv(x, w, FFTParams(8, data_bits=10, twiddle_bits=10), 1).output, exact)
    assert hi > lo + 20


def test_fft_refuses_kernel_not_smaller_than_tile():
    with pytest.raises(ValueError, match=r"^kernel must be square and smaller than the FFT"):
        fft_conv(np.zeros((1, 8, 8)), np.zeros((1, 1, 9, 9)), FFTParams(8))


def test_params_validated():
    with pytest.raises(ValueError, match=r"^n must be 4, 8, 16 or 32, not 6$"):
        FFTParams(6)
    with pytest.raises(TypeError, match=r"^n must be an integer, not '8'$"):
        FFTParams("8")
    with pytest.raises(ValueError, match=r"^scale must have 6 flags, not 2$"):
        FFTParams(8, scale=(True, False))


def test_hermitian_extend_mirrors_and_saturates():
    # bins v > N/2 become conj of (−u mod N, N − v); −(−2^(b−1)) saturates to 2^(b−1) − 1
    from sim.models.fft import hermitian_extend

    rng = np.random.default_rng(3)
    re = rng.integers(-100, 100, (8, 8))
    im = rng.integers(-100, 100, (8, 8))
    im[3, 2] = -128
    st = {}
    r2, i2 = hermitian_extend(re, im, 8, st)
    for u in range(8):
        for v in range(8):
            if v <= 4:
                assert (r2[u, v], i2[u, v]) == (re[u, v], im[u, v])
            else:
                mu, mv = (-u) % 8, 8 - v
                want = 127 if im[mu, mv] == -128 else -im[mu, mv]
                assert (r2[u, v], i2[u, v]) == (re[mu, mv], want)
    assert st["saturated"] == 1


def test_channel_chunks_at_the_layers_fraction_sum_to_a_close_convolution():
    # a layer's channels in chunks, each chunk's spectra at the whole layer's fraction: the
    # chunks' spectra are the layer's, and their overlap-added outputs sum to the
    # convolution as closely as the whole layer's do
    from sim.models.fft import spectral_kernels

    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (12, 10, 9))
    w = rng.integers(-128, 128, (4, 12, 3, 3))
    n, bits = 8, 16
    kr, ki, frac = spectral_kernels(w, n, bits)
    part_r, part_i, part_frac = spectral_kernels(w[:, 4:9], n, bits, kernel_frac=frac)
    assert part_frac == frac
    np.testing.assert_array_equal(part_r, kr[:, 4:9])
    np.testing.assert_array_equal(part_i, ki[:, 4:9])
    own = spectral_kernels(w[:, 4:9], n, bits)[2]
    with pytest.raises(ValueError, match="overflows"):
        spectral_kernels(w, n, bits, kernel_frac=frac + 1)
    assert own >= frac
    p = FFTParams(n=n, data_bits=16, twiddle_bits=16)
    whole = fft_conv(x, w, p, padding=1, mac_shift=None, hermitian=True)
    parts = [fft_conv(x[c0:c1], w[:, c0:c1], p, padding=1, mac_shift=whole.mac_shift,
                      hermitian=True, kernel_frac=frac) for c0, c1 in ((0, 5), (5, 12))]
    summed = (parts[0].acc + parts[1].acc) * whole.scale
    exact = conv2d(x, w, 1, 1)
    assert sqnr_db(summed, exact) > sqnr_db(whole.output, exact) - 6
    assert sqnr_db(summed, exact) > 50
