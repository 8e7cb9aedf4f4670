"""A user calibration reader (``calibration = tests.deploy.calibration_outliers:batches``):
smooth images plus one extreme outlier, to tell threshold_search from naive."""

from __future__ import annotations

import numpy as np


def batches(opts: object) -> list[np.ndarray]:
    """Eight 32x32 batches of values in [100, 150] and one with a single pixel at 1e5."""
    rng = np.random.default_rng(0)
    data = [rng.uniform(100, 150, size=(1, 3, 32, 32)).astype(np.float32) for _ in range(8)]
    data[3][0, 0, 5, 5] = 1e5
    return data
