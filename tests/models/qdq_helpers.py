"""Shared by the QDQ tests: calibration data for ``onnxruntime.quantization.quantize_static``."""

from __future__ import annotations

import numpy as np


class RandomCalibration:
    """A ``CalibrationDataReader``: ``n`` seeded standard-normal inputs named ``x``."""

    def __init__(self, shape, seed, n=8):
        rng = np.random.default_rng(seed)
        self._data = iter([{"x": rng.normal(0, 1, shape).astype(np.float32)}
                           for _ in range(n)])

    def get_next(self):
        return next(self._data, None)
