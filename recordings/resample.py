"""Align streams recorded at their own rates onto a common time grid.

Every stream in an episode keeps its true timestamps; consumers that need one
row per instant (exporters, the review timeline) pick, for each grid time, the
last sample taken at or before it. That is what a controller running at that
instant could have known, so nothing from the future leaks into a row.
"""

from __future__ import annotations

import numpy as np

TIME_EPS = 1e-9
"""Seconds by which a sample may come after a grid time and still count as "at" it.

Grid times are computed as ``start + i / fps`` and sample times by other
arithmetic; a sample meant to sit on a grid point may land one float ulp after
it. A nanosecond is far below any clock that stamps our samples.
"""


def last_at_or_before(sample_t: np.ndarray, grid_t: np.ndarray) -> np.ndarray:
    """Index of the last sample at or before each grid time.

    ``sample_t`` must be sorted ascending (ties allowed: the last of equal times
    wins). A grid time before the first sample takes the first sample (index 0):
    at the start of an episode a camera's first frame usually arrives a few ms
    after the first tick, and repeating that frame is better than having none.

    Returns int64 indices into ``sample_t``, one per grid time.
    """
    sample_t = np.asarray(sample_t, dtype=np.float64)
    grid_t = np.asarray(grid_t, dtype=np.float64)
    if sample_t.ndim != 1 or sample_t.size == 0:
        raise ValueError("last_at_or_before needs a non-empty 1-D array of sample times")
    if np.any(np.diff(sample_t) < 0):
        raise ValueError("sample times must be sorted ascending")
    idx = np.searchsorted(sample_t, grid_t + TIME_EPS, side="right") - 1
    return np.maximum(idx, 0).astype(np.int64)


def grid(start_s: float, end_s: float, fps: float) -> np.ndarray:
    """Times ``start_s + i / fps`` for every i that stays within ``[start_s, end_s]``.

    Both ends are included when they fall on the grid, so N ticks recorded at
    ``fps`` give N grid times. ``end_s == start_s`` gives one time.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if not (np.isfinite(start_s) and np.isfinite(end_s)) or end_s < start_s:
        raise ValueError(f"need finite start <= end, got [{start_s}, {end_s}]")
    n = int(np.floor((end_s - start_s) * fps + 1e-6)) + 1
    return start_s + np.arange(n, dtype=np.float64) / fps
