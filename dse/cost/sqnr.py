"""Predicted accuracy of the approximate algorithms: the explorer's SQNR floor.

Every algorithm of the datapath is bit-exact but FFT (``fft8``, ``fft16``): its spectra are
fixed-point, so its outputs carry quantisation noise.  The explorer offers an FFT choice for a
layer only where the predicted signal-to-quantisation-noise ratio reaches the config's
``min_sqnr_db`` (default :data:`DEFAULT_MIN_SQNR_DB`), and design.json gives each FFT
layer's prediction as ``sqnr_db``.

The prediction is a measured table (``fft_sqnr.json``, written by ``python bench/fft_sqnr.py
--write``): per precision, FFT size N and square kernel k, the lowest SQNR of the golden
model of the datapath's FFT path over 1 to 512 channels on uniform random full-range data
(the data ``omniconv verify`` checks with).  The SQNR hardly depends on the channel count
(the spectral sums are requantised by a calibrated shift), so the table has no channel axis.
``omniconv verify`` measures each FFT layer's SQNR on its own data (verify.json
``sqnr_db``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_MIN_SQNR_DB", "TABLE_PATH", "PRECISIONS", "FFT_SIZES", "table",
           "fft_sqnr_db", "layer_sqnr_db", "sqnr_mask"]

#: ``min_sqnr_db`` of a config that sets none.
DEFAULT_MIN_SQNR_DB = 40.0
#: The measured table.
TABLE_PATH = Path(__file__).with_name("fft_sqnr.json")
#: Precisions and FFT sizes the table covers (kernels 2 … N − 1, what the FFT path runs).
PRECISIONS = (8, 16)
FFT_SIZES = (8, 16)


@lru_cache(maxsize=1)
def table() -> dict:
    """``{(precision, n, k): dB}`` from :data:`TABLE_PATH`."""
    doc = json.loads(TABLE_PATH.read_text())["sqnr_db"]
    return {(int(p), int(n), int(k)): float(v)
            for p, by_n in doc.items() for n, by_k in by_n.items() for k, v in by_k.items()}


def fft_sqnr_db(precision: int, n, kernel):
    """Predicted SQNR (dB) of ``n``-point FFT tiles for ``kernel`` × ``kernel`` layers, float
    array broadcast over ``n`` and ``kernel``; NaN where the FFT path cannot run the kernel
    (it needs 2 ≤ k < N) or ``n`` is 0."""
    t = table()
    n, kernel = np.broadcast_arrays(np.asarray(n, dtype=np.int64),
                                    np.asarray(kernel, dtype=np.int64))
    out = np.full(n.shape, np.nan)
    for (p, tn, tk), value in t.items():
        if p == precision:
            out[(n == tn) & (kernel == tk)] = value
    return out


def layer_sqnr_db(variant: str, kernel: int, precision: int) -> float | None:
    """design.json's ``sqnr_db`` of a layer: the prediction for an FFT variant (``"fft8"``),
    ``None`` for the exact ones."""
    from dse.cost.choices import VARIANTS

    n = VARIANTS[variant][2] if variant in VARIANTS else 0
    if not n:
        return None
    value = float(fft_sqnr_db(precision, n, kernel))
    return None if np.isnan(value) else value


def sqnr_mask(layers, choices, precision: int, min_sqnr_db: float) -> np.ndarray:
    """Boolean ``(L, C)``: each choice is exact, or its predicted SQNR on each layer (square
    kernels: ``layers.kh``) reaches ``min_sqnr_db``."""
    fn = np.asarray(choices.fft_n)[None, :]
    predicted = fft_sqnr_db(precision, fn, np.asarray(layers.kh)[:, None])
    with np.errstate(invalid="ignore"):
        return (fn == 0) | (predicted >= min_sqnr_db)
