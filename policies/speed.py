"""Executing a chunk of absolute joint targets faster or slower than it was demonstrated.

At speed ``s`` the chunk's timeline is compressed by ``s``: the target for the
``j``-th tick after the observation is the chunk's target at tick ``j·s``
(linear interpolation between its per-tick targets), so a chunk of ``k`` targets
runs in about ``k / s`` ticks. A speed-up is clipped per chunk so that it
never makes a target move any joint more than ``max_step`` from the one
before it: a piecewise-linear path sampled every ``s`` ticks never moves more
than ``s`` times its steepest per-tick step. A chunk that already steps over
``max_step`` as planned is not sped up (it runs at 1x, as without a speed) and
never slowed down for it: a slow-down is only what was asked. (Those steps and
the seam to the previous chunk are the safety filter's, as at speed 1.) Pure
functions, any thread.
"""

from __future__ import annotations

import numpy as np

MARGIN = 1e-9  # relative: a clipped speed stays this far under the limit despite rounding


def executed_length(k: int, speed: float) -> int:
    """Ticks a chunk of ``k`` per-tick actions takes at ``speed``: ``floor((k − 1) / speed) + 1``."""
    if speed <= 0:
        raise ValueError("speed must be > 0")
    if k < 2 or speed == 1.0:
        return k
    return int(np.floor((k - 1) / speed + 1e-9)) + 1


def time_scale(actions: np.ndarray, speed: float) -> np.ndarray:
    """``actions`` ``[k, dim]`` (one per tick) resampled at ``speed`` times the pace:
    ``[executed_length(k, speed), dim]``."""
    k = len(actions)
    n = executed_length(k, speed)
    if n == k:
        return np.array(actions, dtype=np.float64)
    at = np.minimum(np.arange(n) * speed, k - 1)
    grid = np.arange(k)
    return np.stack([np.interp(at, grid, actions[:, d]) for d in range(actions.shape[1])], axis=1)


def limited_speed(actions: np.ndarray, speed: float, max_step: float) -> float:
    """``speed``, or less (never under 1 or ``speed``, whichever is lower) if at ``speed`` some joint of
    ``actions`` would move more than ``max_step`` per tick."""
    if len(actions) < 2:
        return speed
    steepest = float(np.abs(np.diff(actions, axis=0)).max())
    if steepest * speed <= max_step:
        return speed
    return max(min(speed, 1.0), max_step / steepest * (1.0 - MARGIN))


def at_speed(actions: np.ndarray, speed: float, max_step: float | None) -> tuple[np.ndarray, float]:
    """The chunk executed at ``speed`` clipped to ``max_step`` (None: no limit), and the speed used."""
    used = speed if max_step is None else limited_speed(actions, speed, max_step)
    return time_scale(actions, used), used
