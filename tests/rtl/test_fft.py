"""rtl.fft.FFT2D vs the bit-accurate golden sim/models/fft.py (random stalls, extremes)."""


import numpy as np
import pytest

from dse.cost.transforms import fft2d_cycles, fft2d_pass_cycles
from rtl.fft import FFT2D
from sim.models.conv import conv2d
from sim.bench.amaranth_stream import run_stream
from sim.models.fft import FFTParams, fft2d_fixed, fft_conv, sqnr_db, spectral_kernels


def rtl_fft2d(re, im, params: FFTParams, inverse=False, *, idle=0.0, stall=0.0, seed=0):
    """Stream T tiles (T×N×N parts) through the unit; returns (re, im, cycles)."""
    n = params.n
    dut = FFT2D(n, params.data_bits, params.twiddle_bits, params.scale)
    beats = [{"re": int(a), "im": int(b)} for a, b in zip(re.ravel(), im.ravel())]
    got, cycles = run_stream(dut, beats, len(beats), config={"inverse": int(inverse)},
                             idle=idle, stall=stall, seed=seed,
                             decode=lambda p: (p.re, p.im))
    out = np.array(got, dtype=np.int64).reshape(re.shape + (2,))
    return out[..., 0], out[..., 1], cycles


def test_fft8_random_tiles_bit_exact_with_stalls():
    p = FFTParams(8)
    rng = np.random.default_rng(0)
    re = rng.integers(-2 ** 15, 2 ** 15, (2, 8, 8))
    im = rng.integers(-2 ** 15, 2 ** 15, (2, 8, 8))
    gr, gi, _ = rtl_fft2d(re, im, p, idle=0.2, stall=0.3, seed=1)
    wr, wi = fft2d_fixed(re, im, p)
    np.testing.assert_array_equal(gr, wr)
    np.testing.assert_array_equal(gi, wi)


def test_ifft8_extremes_and_saturation_bit_exact():
    # full-scale inputs and an unscaled schedule: saturation paths must match the golden
    p = FFTParams(8, scale=(False, True, False, True, False, True))
    re = np.full((3, 8, 8), 2 ** 15 - 1)
    im = np.full((3, 8, 8), -2 ** 15)
    re[1, ::2] = -2 ** 15
    im[2] = np.where(np.indices((8, 8)).sum(0) % 3, 2 ** 15 - 1, -2 ** 15)
    st = {}
    wr, wi = fft2d_fixed(re, im, p, inverse=True, stats=st)
    assert st["saturated"] > 0
    gr, gi, _ = rtl_fft2d(re, im, p, inverse=True)
    np.testing.assert_array_equal(gr, wr)
    np.testing.assert_array_equal(gi, wi)


@pytest.mark.parametrize("n,data_bits,twiddle_bits", [(4, 12, 10), (16, 16, 16)])
def test_fft_sizes_and_widths_bit_exact_and_cycles(n, data_bits, twiddle_bits):
    p = FFTParams(n, data_bits, twiddle_bits)
    rng = np.random.default_rng(n)
    lim = 1 << (data_bits - 1)
    re = rng.integers(-lim, lim, (2, n, n))
    im = rng.integers(-lim, lim, (2, n, n))
    gr, gi, cycles = rtl_fft2d(re, im, p)
    wr, wi = fft2d_fixed(re, im, p)
    np.testing.assert_array_equal(gr, wr)
    np.testing.assert_array_equal(gi, wi)
    assert cycles == fft2d_cycles(n, 2, 1)
    assert cycles == 2 * fft2d_pass_cycles(n)


def test_spectral_conv_through_rtl_fft_and_ifft():
    # forward FFT of the input tiles and IFFT of the accumulated spectra on the RTL unit;
    # the MAC across channels (the array's job) in numpy; equal to the golden fft_conv
    rng = np.random.default_rng(2)
    p = FFTParams(8)
    c, k, nf = 2, 3, 2
    x = rng.integers(-128, 128, (c, 6, 6))             # padded 8×8 → 6×6 blocks: 2×2 tiles
    w = rng.integers(-128, 128, (nf, c, k, k))
    gold = fft_conv(x, w, p, padding=1)
    step = 6
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    tiles = np.zeros((c, 2, 2, 8, 8), dtype=np.int64)
    full = np.zeros((c, 12, 12), dtype=np.int64)
    full[:, :8, :8] = xp
    for i in range(2):
        for j in range(2):
            tiles[:, i, j, :step, :step] = full[:, i * step:(i + 1) * step,
                                                j * step:(j + 1) * step] << 7
    xr, xi, _ = rtl_fft2d(tiles.reshape(-1, 8, 8), np.zeros((c * 4, 8, 8), np.int64), p)
    xr, xi = xr.reshape(tiles.shape), xi.reshape(tiles.shape)
    kr, ki, _ = spectral_kernels(w, 8)
    acc_r = np.einsum("ncuv,cijuv->nijuv", kr, xr) - np.einsum("ncuv,cijuv->nijuv", ki, xi)
    acc_i = np.einsum("ncuv,cijuv->nijuv", kr, xi) + np.einsum("ncuv,cijuv->nijuv", ki, xr)
    sh = gold.mac_shift
    zr = np.clip((acc_r + (1 << sh >> 1)) >> sh, -2 ** 15, 2 ** 15 - 1)
    zi = np.clip((acc_i + (1 << sh >> 1)) >> sh, -2 ** 15, 2 ** 15 - 1)
    yr, _, _ = rtl_fft2d(zr.reshape(-1, 8, 8), zi.reshape(-1, 8, 8), p, inverse=True)
    yr = yr.reshape(nf, 2, 2, 8, 8)
    big = np.zeros((nf, 14, 14), dtype=np.int64)
    for i in range(2):
        for j in range(2):
            big[:, i * step:i * step + 8, j * step:j * step + 8] += yr[:, i, j]
    np.testing.assert_array_equal(big[:, 2:8, 2:8], gold.acc)
    assert sqnr_db(gold.output, conv2d(x, w, 1, 1)) >= 40.0


def test_rejects_bad_size():
    with pytest.raises(ValueError, match=r"^n must be 4, 8, 16 or 32, not 12$"):
        FFT2D(12)


@pytest.mark.regress
@pytest.mark.parametrize("n,bits,inverse", [(8, 16, True), (16, 16, False), (16, 14, True),
                                            (32, 16, False), (32, 18, True)])
def test_fft_sweep(n, bits, inverse):
    rng = np.random.default_rng(n + bits)
    lg = n.bit_length() - 1
    scale = tuple(bool(v) for v in rng.integers(0, 2, 2 * lg)) if inverse else None
    p = FFTParams(n, bits, bits, scale)
    lim = 1 << (bits - 1)
    re = rng.integers(-lim, lim, (2, n, n)) >> rng.integers(0, bits, (2, 1, 1))
    im = rng.integers(-lim, lim, (2, n, n)) >> rng.integers(0, bits, (2, 1, 1))
    gr, gi, _ = rtl_fft2d(re, im, p, inverse, idle=0.3, stall=0.3, seed=n)
    wr, wi = fft2d_fixed(re, im, p, inverse)
    np.testing.assert_array_equal(gr, wr)
    np.testing.assert_array_equal(gi, wi)
    _, _, cycles = rtl_fft2d(re, im, p, inverse)
    assert cycles == fft2d_cycles(n, 2, 1)


@pytest.mark.verilator
def test_lints_clean(tmp_path):
    from sim.runner import LINT_WAIVERS, emit_verilog, lint_verilog
    for i, dut in enumerate([FFT2D(8), FFT2D(4, 12, 10)]):
        top = f"lint_fft{i}"
        violations, waived = lint_verilog(emit_verilog(dut, top), top, work_dir=tmp_path)
        assert not violations, [(v.rule, v.line, v.message) for v in violations[:10]]
        assert {w.rule for w in waived} <= set(LINT_WAIVERS)
