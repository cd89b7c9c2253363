"""A low-pass filter on the per-tick actions a strategy hands the robot (``run-policy --smooth HZ``).

Two first-order low-passes in a row, both with the cutoff ``cutoff_hz`` at the
control rate: a critically damped second-order filter, so a step in the
targets is followed without overshoot and a steady motion is followed with a
constant lag of ``2 / (2π·cutoff_hz)`` seconds. Re-planning makes a policy's
targets change direction a few times a second; this is what takes those
changes out of the commanded velocity, at the price of that lag (which an
execution speed above 1 can buy back). The gripper (the last action value, as
for every action kind of :mod:`policies.base`) passes unfiltered: opening or
closing late only delays the grasp. The first action after a reset passes
unchanged (the filter starts at rest there), so starting or handing back
never makes the target jump. Ticks the loop skipped are filtered as if the
same action had been given on each. Not thread-safe: the runner calls it from
the control-loop thread only, through its strategy.
"""

from __future__ import annotations

import math

import numpy as np

MAX_CATCH_UP = 100  # skipped ticks filtered one by one; beyond that the filter has settled anyway


class LowPass:
    """Critically damped low-pass over action vectors, one step per control tick."""

    def __init__(self, cutoff_hz: float, rate_hz: float) -> None:
        if not (cutoff_hz > 0 and rate_hz > 0 and math.isfinite(cutoff_hz) and math.isfinite(rate_hz)):
            raise ValueError(f"a low-pass needs a positive cutoff and rate (got {cutoff_hz:g} Hz at {rate_hz:g} Hz)")
        self.cutoff_hz = cutoff_hz
        self.alpha = 1.0 - math.exp(-2.0 * math.pi * cutoff_hz / rate_hz)
        self.lag_s = 2.0 / (2.0 * math.pi * cutoff_hz)
        self.reset()

    def reset(self) -> None:
        self._first: np.ndarray | None = None
        self._second: np.ndarray | None = None
        self._tick = 0

    def step(self, action: np.ndarray, tick: int) -> np.ndarray:
        """The filtered action for ``tick`` (ticks increase; a gap repeats ``action`` over the skipped ones);
        its last value, the gripper, unchanged."""
        x = np.asarray(action, dtype=np.float64)
        arm = x[:-1]
        if self._first is None:
            self._first, self._second = arm.copy(), arm.copy()
        else:
            for _ in range(min(max(1, tick - self._tick), MAX_CATCH_UP)):
                self._first += self.alpha * (arm - self._first)
                self._second += self.alpha * (self._first - self._second)
        self._tick = tick
        return np.concatenate([self._second, x[-1:]])
