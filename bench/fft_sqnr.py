"""SQNR of the FFT path per precision, FFT size and kernel: the table the explorer's accuracy
floor reads (``dse/cost/fft_sqnr.json``, :mod:`dse.cost.sqnr`).

Usage::

    .venv/bin/python bench/fft_sqnr.py [--write]

For every precision (8, 16), FFT size N (8, 16) and square kernel k the datapath runs by FFT
(2 ≤ k < N), the bit-accurate golden model of the datapath's FFT path
(``sim.models.fft.fft_conv``: Hermitian half of the bins, the spectral sums requantised by
the smallest shift that saturates nothing, as ``omniconv verify`` calibrates it) convolves
uniform random full-range integers -- the data ``omniconv verify`` uses -- at the widths the
explorer gives the array for FFT (``dse.cost.choices.required_widths``: data and kernel
parts of ``a_width − 1`` and ``b_width − 1`` bits).  Each case has 4 filters on a 2N × 2N
input padded by k // 2 on every side, for C = 1, 8, 64 and 512 channels and three seeds; the SQNR
against the exact convolution pools the three seeds' signal and noise.  The table keeps,
per (precision, N, k), the lowest of the four channel counts rounded down to 0.1 dB -- a
conservative figure: the explorer compares it with the config's ``min_sqnr_db``.

Prints one line per (precision, N, k) with the four SQNRs; ``--write`` stores the table
(about a minute).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dse.cost.choices import required_widths  # noqa: E402
from dse.cost.sqnr import FFT_SIZES, PRECISIONS, TABLE_PATH  # noqa: E402
from sim.models.conv import conv2d  # noqa: E402
from sim.models.fft import FFTParams, fft_conv  # noqa: E402

CHANNELS = (1, 8, 64, 512)
SEEDS = (0, 1, 2)
FILTERS = 4


def measure(precision: int, n: int, k: int, channels: int) -> float:
    """Pooled SQNR (dB) of the FFT path over :data:`SEEDS` for one case."""
    a_width, b_width = required_widths(f"fft{n}", precision)
    params = FFTParams(n=n, data_bits=a_width - 1, twiddle_bits=a_width - 1)
    lo, hi = -(1 << (precision - 1)), 1 << (precision - 1)
    signal = noise = 0.0
    for seed in SEEDS:
        rng = np.random.default_rng([precision, n, k, channels, seed])
        x = rng.integers(lo, hi, (channels, 2 * n, 2 * n))
        w = rng.integers(lo, hi, (FILTERS, channels, k, k))
        pad = k // 2
        res = fft_conv(x, w, params, padding=pad, in_bits=precision, kernel_bits=b_width - 1,
                       hermitian=True)
        exact = conv2d(np.pad(x, ((0, 0), (pad, pad), (pad, pad))), w)
        exact = exact.astype(np.float64)
        signal += float(np.sum(exact ** 2))
        noise += float(np.sum((res.acc * res.scale - exact) ** 2))
    return math.inf if noise == 0 else 10 * math.log10(signal / noise)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true",
                        help=f"store the table in {TABLE_PATH.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    table: dict = {}
    detail: dict = {}
    for precision in PRECISIONS:
        for n in FFT_SIZES:
            for k in range(2, n):
                values = [measure(precision, n, k, c) for c in CHANNELS]
                low = math.floor(min(values) * 10) / 10
                table.setdefault(str(precision), {}).setdefault(str(n), {})[str(k)] = low
                detail.setdefault(str(precision), {}).setdefault(str(n), {})[str(k)] = [
                    round(v, 2) for v in values]
                print(f"int{precision} fft{n} {k}x{k}: "
                      + "  ".join(f"C={c} {v:6.2f} dB" for c, v in zip(CHANNELS, values))
                      + f"  -> {low} dB", flush=True)
    print(f"measured in {time.perf_counter() - start:.1f} s")
    if args.write:
        doc = {"generated_by": "python bench/fft_sqnr.py --write",
               "method": "sim.models.fft.fft_conv (Hermitian, calibrated shift) against the "
                         "exact convolution; uniform random full-range data; 4 filters, "
                         "2N x 2N input padded by k // 2; pooled over seeds "
                         f"{list(SEEDS)}; the lowest over C = {list(CHANNELS)}, rounded "
                         "down to 0.1 dB",
               "sqnr_db": table, "by_channels": {"channels": list(CHANNELS), **detail}}
        TABLE_PATH.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {TABLE_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
