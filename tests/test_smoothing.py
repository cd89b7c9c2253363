"""The low-pass on per-tick actions (``run-policy --smooth``): what it keeps, what it removes, where it starts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from policies.base import ActionChunk
from policies.smoothing import LowPass
from policies.strategies import make_strategy
from recordings.analysis.metrics import hf_share

RATE = 100.0


def filtered(cutoff: float, signal: np.ndarray) -> np.ndarray:
    f = LowPass(cutoff, RATE)
    return np.array([f.step(x, tick) for tick, x in enumerate(signal)])


def test_a_steady_motion_is_followed_with_the_stated_lag():
    ramp = np.arange(300, dtype=float)[:, None] * 0.01 * np.ones(2)  # 1 rad/s, joint and gripper
    out = filtered(3.0, ramp)
    np.testing.assert_array_equal(out[:, 1], ramp[:, 1])  # the gripper (last) is never delayed
    lag_ticks = (ramp[-1, 0] - out[-1, 0]) / 0.01
    assert lag_ticks == pytest.approx(LowPass(3.0, RATE).lag_s * RATE, abs=1.0)
    assert np.all(np.diff(out[:, 0]) >= 0)  # never backwards, never overshoots
    assert out[0, 0] == ramp[0, 0]  # the first action passes unchanged: no jump at the start


def test_re_planning_wiggles_are_taken_out_of_the_velocity():
    t = np.arange(1250) / RATE
    motion = 0.5 * np.sin(2 * math.pi * 0.4 * t)  # a reach at 0.4 Hz
    wiggle = 0.01 * np.sin(2 * math.pi * 6.0 * t)  # plans that disagree, six times a second
    signal = np.stack([motion + wiggle] * 3, axis=1)  # two joints and a gripper
    out = filtered(3.0, signal)
    settled = slice(250, None)  # after the start, four whole periods of the motion
    arm = slice(0, 2)
    assert hf_share(t[settled], signal[settled, arm]) > 0.05  # about what re-planning gave the rollouts
    assert hf_share(t[settled], out[settled, arm]) < 0.1 * hf_share(t[settled], signal[settled, arm])
    # the reach itself is kept: within the lag, the same amplitude
    assert np.ptp(out[settled, 0]) == pytest.approx(np.ptp(motion[settled]), rel=0.05)


def test_skipped_ticks_are_filtered_as_repeats_and_reset_starts_again():
    a, b = LowPass(3.0, RATE), LowPass(3.0, RATE)
    for f in (a, b):
        f.step(np.zeros(3), 0)
    for tick in (1, 2, 3):
        expected = a.step(np.ones(3), tick)
    np.testing.assert_allclose(b.step(np.ones(3), 3), expected)
    b.reset()
    np.testing.assert_array_equal(b.step(np.full(3, 7.0), 10), np.full(3, 7.0))


def test_a_strategy_hands_out_smoothed_actions_and_remembers_them_as_executed():
    s = make_strategy("open-loop", 10, smooth_hz=3.0, rate_hz=RATE)
    s.on_chunk(ActionChunk(np.array([[0.0, 0.0]] + [[1.0, 1.0]] * 9), 0, 0.0, 0.0), 0)
    out = np.array([s.action_for(t) for t in range(10)])
    arm = out[:, 0]
    assert arm[0] == 0.0 and 0.0 < arm[1] < 0.1 and all(np.diff(arm) > 0) and arm[-1] < 1.0
    assert out[1:, 1].tolist() == [1.0] * 9  # the gripper closes when the chunk says
    np.testing.assert_allclose(s.plan(10).executed, out)
    s.reset()  # a takeover, a new episode: the filter starts again where the next chunk does
    s.on_chunk(ActionChunk(np.full((10, 2), 5.0), 20, 0.0, 0.0), 20)
    assert s.action_for(20).tolist() == [5.0, 5.0]


def test_bad_cutoffs_are_refused():
    with pytest.raises(ValueError, match="positive cutoff"):
        LowPass(0.0, RATE)
    with pytest.raises(ValueError, match="control rate"):
        make_strategy("async", 10, smooth_hz=3.0)
