"""Per-episode speed metrics on trajectories whose answers can be worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recordings import edit
from recordings.analysis.metrics import (
    GRIPPER_ACTIVE_RATE,
    IDLE_SPEED_MM_S,
    LIFT_RISE_M,
    METRIC_KEYS,
    SPEED_HALF_WINDOW_S,
    dominant_source,
    episode_metrics,
    hf_share,
    metrics_of,
    runs,
    windowed_rate,
)
from speed_episodes import GRIPPER_CLOSED, GRIPPER_OPEN, write_episode

RATE = 100.0
P0 = np.array([0.2, -0.05, 0.1])
DIRECTION = np.array([3.0, 4.0, 0.0]) / 5.0  # a unit vector


def jittered_times(seconds: float, rate: float = RATE, jitter: float = 0.3, seed: int = 0) -> np.ndarray:
    """Tick times at ``rate`` whose intervals vary by ±``jitter`` (as a loaded machine's would)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    dt = rng.uniform(1 - jitter, 1 + jitter, n) / rate
    t = np.concatenate([[0.0], np.cumsum(dt)])
    return t * (seconds / t[-1])  # exactly `seconds` long


def arm_of(ee: np.ndarray, opening: np.ndarray) -> np.ndarray:
    """Joint targets: three arm joints follow the end effector (5 rad/m), gripper joint from the opening."""
    n = len(ee)
    action = np.zeros((n, 6))
    action[:, :3] = (ee - P0) * 5.0
    action[:, 5] = GRIPPER_CLOSED + opening * (GRIPPER_OPEN - GRIPPER_CLOSED)
    return action


def line_episode(path, t, ee, opening=None, **kwargs):
    opening = np.ones(len(t)) if opening is None else opening
    return write_episode(path, t, ee, opening, arm_of(ee, opening), **kwargs)


def approx(value, expected, abs_tol):
    return math.isclose(value, expected, abs_tol=abs_tol)


# -- motion ----------------------------------------------------------------------------------------
def test_straight_line_at_constant_speed(tmp_path):
    """0.1 m/s along a straight line for 2 s, ticks jittering ±30 %: path 0.2 m, speed 100 mm/s everywhere."""
    t = jittered_times(2.0)
    ee = P0 + 0.1 * t[:, None] * DIRECTION
    m = episode_metrics(line_episode(tmp_path / "episode_000001.h5", t, ee))
    v = m.values
    assert v["duration_s"] == pytest.approx(2.0)
    assert v["path_length_m"] == pytest.approx(0.2, rel=1e-4)
    for key in ("speed_mean_mm_s", "speed_active_mm_s", "speed_p90_mm_s", "speed_peak_mm_s"):
        assert v[key] == pytest.approx(100.0, rel=1e-4), key
    np.testing.assert_allclose(m.profile, 100.0, rtol=1e-4)
    assert v["idle_fraction"] == 0.0 and v["idle_s"] == 0.0
    assert v["idle_start_s"] == 0.0 and v["idle_end_s"] == 0.0
    assert v["rate_hz"] == pytest.approx((len(t) - 1) / 2.0)
    assert v["reach_s"] == pytest.approx(2.0) and math.isnan(v["grasp_s"]) and math.isnan(v["lift_s"])
    assert v["ee_step_mm"] == pytest.approx(np.mean(np.diff(t)) * 100.0, rel=1e-4)


def test_speed_uses_the_true_tick_times():
    """Uneven ticks along a constant-speed line: index/rate would see speed swing ±30 %, true times see none."""
    t = jittered_times(1.0, seed=3)
    x = 0.05 * t
    np.testing.assert_allclose(windowed_rate(t, x), 0.05, rtol=1e-9)
    by_index = np.abs(np.diff(x)) * RATE
    assert by_index.max() / by_index.min() > 1.5


def test_idle_at_both_ends_and_in_the_middle(tmp_path):
    """Still 1 s, move 1 s, still 0.5 s, move 1 s, still 1.5 s (5 s); the speed window blurs each edge by ≤ 0.05 s."""
    t = jittered_times(5.0, jitter=0.1)
    s = np.clip(t - 1.0, 0, 1.0) + np.clip(t - 2.5, 0, 1.0)  # seconds of motion done
    ee = P0 + 0.1 * s[:, None] * DIRECTION
    v = episode_metrics(line_episode(tmp_path / "episode_000001.h5", t, ee)).values
    edge = SPEED_HALF_WINDOW_S
    assert approx(v["idle_start_s"], 1.0, edge)
    assert approx(v["idle_end_s"], 1.5, edge)
    assert approx(v["idle_s"], 3.0, 4 * edge)
    assert approx(v["idle_fraction"], 3.0 / 5.0, 4 * edge / 5.0)
    assert v["path_length_m"] == pytest.approx(0.2, rel=1e-3)
    assert v["speed_peak_mm_s"] == pytest.approx(100.0, rel=1e-4)
    assert v["speed_mean_mm_s"] == pytest.approx(200.0 / 5.0, rel=0.02)  # 0.2 m in 5 s
    assert v["speed_active_mm_s"] == pytest.approx(100.0, rel=0.1)
    assert v["speed_p90_mm_s"] == pytest.approx(100.0, rel=1e-4)  # 40 % of the ticks move at full speed


def test_slow_drift_is_idle_and_a_closing_gripper_is_not(tmp_path):
    """The arm creeping at 4 mm/s counts as idle; the jaws closing with the arm still count as work."""
    t = jittered_times(3.0, jitter=0.05)
    ee = P0 + 0.004 * t[:, None] * DIRECTION
    opening = np.clip(1.0 - 0.5 * np.clip(t - 1.0, 0, None), 0.3, 1.0)  # closes at 0.5/s from 1.0 s to 2.4 s
    v = episode_metrics(line_episode(tmp_path / "episode_000001.h5", t, ee, opening)).values
    assert 4.0 < IDLE_SPEED_MM_S and 0.5 > GRIPPER_ACTIVE_RATE
    assert approx(v["idle_start_s"], 1.0, SPEED_HALF_WINDOW_S)
    assert approx(v["idle_end_s"], 0.6, SPEED_HALF_WINDOW_S)
    assert approx(v["idle_s"], 1.6, 2 * SPEED_HALF_WINDOW_S)


# -- phases and time to lift -----------------------------------------------------------------------
def grasp_and_lift(tmp_path, success="true", name="episode_000001.h5"):
    """Reach 1.5 s, close 1.5 → 2.0 s (opening 1 → 0.3), wait to 2.2 s, lift at 0.1 m/s until 3.5 s, hold to 4 s."""
    t = jittered_times(4.0, jitter=0.1)
    reach = np.clip(t / 1.5, 0, 1)
    ee = P0 + 0.1 * reach[:, None] * DIRECTION
    ee[:, 2] += 0.1 * np.clip(t - 2.2, 0, 1.3)
    opening = 1.0 - 0.7 * np.clip((t - 1.5) / 0.5, 0, 1)
    return line_episode(tmp_path / name, t, ee, opening, success=success)


def test_phases_from_a_known_gripper_profile(tmp_path):
    v = episode_metrics(grasp_and_lift(tmp_path)).values
    tick = 1.1 / RATE  # one jittered tick
    assert approx(v["reach_s"], 1.5, 2 * tick)
    assert approx(v["grasp_s"], 0.5, 0.03)  # ends when the opening stays within 0.03 for 0.2 s: ≤ 0.02 s early
    assert approx(v["lift_s"], 2.0, 0.03)
    assert v["reach_s"] + v["grasp_s"] + v["lift_s"] == pytest.approx(4.0)
    assert approx(v["time_to_lift_s"], 2.2 + LIFT_RISE_M / 0.1, 2 * tick)
    assert v["time_to_success_s"] == v["time_to_lift_s"]
    assert v["success"] == 1.0


def test_time_to_success_only_for_successful_episodes(tmp_path):
    failed = episode_metrics(grasp_and_lift(tmp_path, success="false")).values
    assert math.isfinite(failed["time_to_lift_s"]) and math.isnan(failed["time_to_success_s"])
    assert failed["success"] == 0.0
    unknown = episode_metrics(grasp_and_lift(tmp_path, success="unknown", name="episode_000002.h5")).values
    assert math.isnan(unknown["time_to_success_s"]) and math.isnan(unknown["success"])


def test_successful_episode_without_a_lift_counts_its_duration(tmp_path):
    t = jittered_times(2.0)
    ee = P0 + 0.1 * t[:, None] * DIRECTION
    v = episode_metrics(line_episode(tmp_path / "episode_000001.h5", t, ee, success="true")).values
    assert math.isnan(v["time_to_lift_s"]) and v["time_to_success_s"] == pytest.approx(2.0)


def test_gripper_that_opens_first_then_closes(tmp_path):
    """Starting half closed, opening, then closing: reach lasts until the closing starts, not the opening."""
    t = jittered_times(3.0, jitter=0.1)
    opening = np.interp(t, [0.0, 0.5, 1.0, 2.0, 2.4, 3.0], [0.5, 0.5, 1.0, 1.0, 0.2, 0.2])
    ee = P0 + 0.05 * t[:, None] * DIRECTION
    v = episode_metrics(line_episode(tmp_path / "episode_000001.h5", t, ee, opening)).values
    assert approx(v["reach_s"], 2.0, 0.03)
    assert approx(v["grasp_s"], 0.4, 0.03)


# -- trims -----------------------------------------------------------------------------------------
def test_metrics_cover_the_kept_range_only(tmp_path):
    """Idle 1 s, move 2 s, idle 1.5 s; trimmed to 0.8–3.2 s the idle ends shrink to 0.2 s each."""
    t = jittered_times(4.5, jitter=0.1)
    s = np.clip(t - 1.0, 0, 2.0)
    ee = P0 + 0.1 * s[:, None] * DIRECTION
    path = line_episode(tmp_path / "episode_000001.h5", t, ee)
    whole = episode_metrics(path).values
    assert whole["duration_s"] == pytest.approx(4.5)
    edit.set_trim(path, 0.8, 3.2)
    v = episode_metrics(path).values
    assert v["duration_s"] == pytest.approx(2.4)
    assert approx(v["idle_start_s"], 0.2, SPEED_HALF_WINDOW_S + 0.011)
    assert approx(v["idle_end_s"], 0.2, SPEED_HALF_WINDOW_S + 0.011)
    assert v["path_length_m"] == pytest.approx(0.2, rel=1e-3)
    assert v["idle_fraction"] < whole["idle_fraction"] / 2
    assert v["rate_hz"] == pytest.approx(whole["rate_hz"], rel=0.05)


# -- control: starvation, interventions, rates ------------------------------------------------------
def test_starved_runs_interventions_and_rate(tmp_path):
    """400 ticks at 50 Hz: starved runs of 10 and 30 ticks, 50 intervention ticks, the rest policy."""
    n, rate = 400, 50.0
    t = np.arange(n) / rate
    ee = P0 + 0.05 * t[:, None] * DIRECTION
    safety = np.zeros(n, dtype=int)
    safety[100:110] = 32
    safety[200:230] = 32
    sources = ["policy"] * n
    sources[300:350] = ["intervention"] * 50
    path = line_episode(tmp_path / "episode_000001.h5", t, ee, safety=safety, source=sources, rate=rate)
    m = episode_metrics(path)
    v = m.values
    assert v["starved_share"] == pytest.approx(40 / 350)
    assert v["inference_waits"] == 2
    assert v["longest_stall_s"] == pytest.approx(30 / rate)
    assert v["starved_s"] == pytest.approx(40 / rate)
    assert v["intervention_share"] == pytest.approx(50 / 400)
    assert v["rate_hz"] == pytest.approx(rate) and v["rate_nominal_hz"] == rate
    assert m.source == "policy" and m.source_mix == {"policy": 0.875, "intervention": 0.125}


def test_human_episode_has_no_starvation_metrics(tmp_path):
    t = jittered_times(1.0)
    v = episode_metrics(line_episode(tmp_path / "episode_000001.h5", t, P0 + 0.1 * t[:, None] * DIRECTION)).values
    for key in ("starved_share", "starved_s", "longest_stall_s", "inference_waits"):
        assert math.isnan(v[key]), key
    assert v["intervention_share"] == 0.0


def test_stall_at_the_very_end_lasts_its_ticks(tmp_path):
    n = 100
    t = np.arange(n) / RATE
    safety = np.zeros(n, dtype=int)
    safety[-20:] = 32
    v = episode_metrics(line_episode(tmp_path / "episode_000001.h5", t, P0 + 0.1 * t[:, None] * DIRECTION,
                                     safety=safety, source="policy")).values
    assert v["longest_stall_s"] == pytest.approx(20 / RATE)


# -- actions ---------------------------------------------------------------------------------------
def test_action_steps_speed_and_smoothness_of_a_ramp(tmp_path):
    """Arm joints ramp with the end effector: 0.1 m/s × 5 rad/m = 0.5 rad/s along DIRECTION, no curvature."""
    t = np.arange(201) / RATE
    ee = P0 + 0.1 * t[:, None] * DIRECTION
    v = episode_metrics(line_episode(tmp_path / "episode_000001.h5", t, ee)).values
    assert v["action_step_rad"] == pytest.approx(0.5 / RATE, rel=1e-4)
    assert v["action_speed_rad_s"] == pytest.approx(0.5, rel=1e-4)
    assert v["action_step_reach_rad"] == pytest.approx(0.5 / RATE, rel=1e-4)
    assert math.isnan(v["action_step_lift_rad"])
    assert v["action_accel_rad_s2"] == pytest.approx(0.0, abs=1e-3)


def test_action_smoothness_of_a_sine(tmp_path):
    """A joint target A·sin(ωt): mean |second derivative| = A·ω²·2/π."""
    amplitude, omega = 0.2, 2 * np.pi * 0.5
    t = np.arange(401) / RATE
    ee = P0 + 0.1 * t[:, None] * DIRECTION
    action = arm_of(ee, np.ones(len(t)))
    action[:, 3] = amplitude * np.sin(omega * t)
    v = episode_metrics(write_episode(tmp_path / "episode_000001.h5", t, ee, np.ones(len(t)), action)).values
    assert v["action_accel_rad_s2"] == pytest.approx(amplitude * omega**2 * 2 / np.pi, rel=0.02)


def test_starved_and_idle_ticks_do_not_shrink_the_action_steps(tmp_path):
    n = 300
    t = np.arange(n) / RATE
    progress = np.concatenate([np.zeros(50), np.arange(200) / RATE, np.full(50, 199 / RATE)])  # idle, move, idle
    safety = np.zeros(n, dtype=int)
    held = np.zeros(n, dtype=bool)
    held[120:140] = True
    for k in np.flatnonzero(held):  # a starved tick holds the previous target and progress stops
        progress[k:] -= progress[k] - progress[k - 1]
    safety[held] = 32
    ee = P0 + 0.1 * progress[:, None] * DIRECTION
    v = episode_metrics(line_episode(tmp_path / "episode_000001.h5", t, ee, safety=safety, source="policy")).values
    assert v["action_step_rad"] == pytest.approx(0.5 / RATE, rel=1e-3)


def test_commanded_ee_step_from_the_operator_input(tmp_path):
    n = 100
    t = np.arange(n) / RATE
    ee = P0 + 0.1 * t[:, None] * DIRECTION
    raw = np.zeros((n, 7))
    raw[:, :3] = 0.0012 * DIRECTION  # 1.2 mm per tick
    v = episode_metrics(line_episode(tmp_path / "episode_000001.h5", t, ee, raw_input=raw,
                                     input_kind="ee_delta")).values
    assert v["commanded_ee_step_mm"] == pytest.approx(1.2, rel=1e-4)
    assert v["ee_step_mm"] == pytest.approx(1.0, rel=1e-4)


def test_high_frequency_share():
    t = np.arange(1001) / RATE
    slow = 0.3 * np.sin(2 * np.pi * 0.5 * t)
    fast = 0.3 * 0.5 / 6.0 * np.sin(2 * np.pi * 6.0 * t)  # same velocity amplitude at 6 Hz
    assert hf_share(t, slow[:, None]) < 0.01
    assert hf_share(t, fast[:, None]) > 0.99
    assert hf_share(t, np.column_stack([slow, fast])) == pytest.approx(0.5, abs=0.02)
    jittered = jittered_times(10.0, seed=5)
    assert hf_share(jittered, (0.3 * np.sin(2 * np.pi * 0.5 * jittered))[:, None]) < 0.01
    assert math.isnan(hf_share(t[:50], slow[:50, None]))  # under a second


# -- helpers and bookkeeping -----------------------------------------------------------------------
def test_runs():
    assert runs(np.array([0, 1, 1, 0, 1, 0, 1, 1, 1], dtype=bool)) == [(1, 2), (4, 4), (6, 8)]
    assert runs(np.zeros(4, dtype=bool)) == []
    assert runs(np.ones(3, dtype=bool)) == [(0, 2)]


def test_dominant_source():
    assert dominant_source({"human": 1.0}) == "human"
    assert dominant_source({"policy": 0.4, "intervention": 0.2, "human": 0.4}) == "policy"
    assert dominant_source({"human": 0.45, "policy": 0.45, "idle": 0.1}) == "mixed"
    assert dominant_source({"replay": 1.0}) == "mixed"


def test_every_metric_is_a_float_and_unreadable_files_are_reported(tmp_path):
    t = jittered_times(1.0)
    good = line_episode(tmp_path / "episode_000001.h5", t, P0 + 0.1 * t[:, None] * DIRECTION)
    bad = tmp_path / "episode_000002.h5"
    bad.write_bytes(b"not an episode" * 100)
    seen = []
    done, failed = metrics_of([good, bad], progress=lambda i, n, what: seen.append((i, n)))
    assert [m.path for m in done] == [good]
    assert [p for p, _ in failed] == [bad] and "not an HDF5 file" in failed[0][1]
    assert seen[-1] == (2, 2)
    assert set(done[0].values) == set(METRIC_KEYS)
    assert all(isinstance(x, float) for x in done[0].values.values())
    d = done[0].to_dict()
    assert d["metrics"]["starved_share"] is None and d["metrics"]["duration_s"] == pytest.approx(1.0)


def test_missing_end_effector_positions(tmp_path):
    """A few NaN rows are bridged in time; a robot that stores none leaves the motion metrics undefined."""
    t = jittered_times(2.0)
    ee = P0 + 0.1 * t[:, None] * DIRECTION
    gaps = ee.copy()
    gaps[50:60] = np.nan
    opening = np.ones(len(t))
    v = episode_metrics(write_episode(tmp_path / "episode_000001.h5", t, gaps, opening, arm_of(ee, opening))).values
    assert v["path_length_m"] == pytest.approx(0.2, rel=1e-4)
    assert v["speed_peak_mm_s"] == pytest.approx(100.0, rel=1e-4)
    none = np.full_like(ee, np.nan)
    v = episode_metrics(write_episode(tmp_path / "episode_000002.h5", t, none, opening, arm_of(ee, opening))).values
    for key in ("path_length_m", "speed_mean_mm_s", "speed_active_mm_s", "speed_peak_mm_s", "ee_step_mm"):
        assert math.isnan(v[key]), key
    assert v["duration_s"] == pytest.approx(2.0) and v["rate_hz"] == pytest.approx((len(t) - 1) / 2.0)
    assert math.isnan(v["action_step_rad"])  # without motion every tick is idle: no step is averaged
