"""Execution speed: chunks run faster (or slower) than planned, never faster than the rig's step limit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from policies.speed import at_speed, time_scale
from policies.strategies import make_strategy
from policy_servers import OpenPIServer  # tests/ on sys.path
from recordings.reader import Episode
from runner_drive import RampPolicy, drive, runner
from teleop_app import cli

LIMIT = 0.02  # rad per tick


def segments(out: list) -> list[np.ndarray]:
    """The runs of consecutive actions between holds (each one chunk under open-loop)."""
    runs, current = [], []
    for action in out + [None]:
        if action is None:
            if current:
                runs.append(np.asarray(current))
            current = []
        else:
            current.append(action)
    return runs


@pytest.mark.parametrize(("speed", "ticks_per_chunk", "step"), [(1.0, 20, 0.01), (1.3, 15, 0.013),
                                                                 (3.0, 10, LIMIT)])
def test_the_runner_executes_chunks_at_speed_within_the_step_limit(speed, ticks_per_chunk, step):
    """Chunks of 20 targets 0.01 rad apart: 1.3x runs them in 15 ticks; 3x would step 0.03 rad per tick,
    so it is clipped to the limit's 2x (10 ticks), not left to the safety filter."""
    policy = RampPolicy(chunk=20, slope=0.01)
    run = runner(policy, make_strategy("open-loop", 20), speed=speed, max_step=LIMIT)
    chunks = segments(drive(run, 60))[:-1]  # the last may be cut short by the end of the drive
    assert len(chunks) >= 2
    for chunk in chunks:
        assert len(chunk) == ticks_per_chunk
        steps = np.abs(np.diff(chunk, axis=0))
        assert steps.max() <= LIMIT
        np.testing.assert_allclose(steps, step, atol=1e-9)
    stats = run.stats()["speed"]
    assert stats["asked"] == speed
    assert stats["min_used"] == (None if speed == 1.0 else pytest.approx(min(speed, 2.0)))  # 1: chunks untouched


def test_time_scaling_keeps_the_path_and_reports_the_clipped_speed():
    path = np.stack([np.linspace(0.0, 1.0, 11), np.linspace(0.0, -0.5, 11) ** 2], axis=1)
    fast = time_scale(path, 2.0)
    np.testing.assert_allclose(fast, path[::2])
    slow = time_scale(path, 0.5)
    assert len(slow) == 21 and np.allclose(slow[::2], path)
    scaled, used = at_speed(path, 5.0, 0.25)
    assert used == pytest.approx(2.5) and used < 2.5 and np.abs(np.diff(scaled, axis=0)).max() <= 0.25
    # a chunk that already steps 0.1 rad at 1x against a 0.05 limit: not sped up, and not slowed down for it
    assert at_speed(path, 1.3, 0.05)[1] == 1.0
    assert at_speed(path, 0.5, 0.01)[1] == 0.5


def test_run_policy_accepts_speed_and_records_it(tmp_path, capsys):
    """A joint-target policy (a slow ramp on the first joint from where the arm is) run at 1.3x for a second,
    through a 4 Hz low-pass."""

    def respond(obs, n):
        q = np.asarray(obs["observation/state"], dtype=np.float64)
        actions = np.repeat(q[None, :], 20, axis=0)
        actions[:, 0] += 0.002 * np.arange(20)
        return "reply", {"actions": actions.astype(np.float32)}

    server = OpenPIServer(respond)
    stats_file = tmp_path / "stats.json"
    try:
        code = cli.main(["run-policy", "--policy", server.url, "--episodes", "1", "--headless", "--seconds", "1",
                         "--task", "move", "--out", str(tmp_path / "ds"), "--no-cameras", "--action-kind", "joint",
                         "--chunk-length", "20", "--speed", "1.3", "--smooth", "4", "--stats-json", str(stats_file),
                         "--obs-map", "observation/state=state", "--obs-map", "prompt=task"])
    finally:
        server.close()
    err = capsys.readouterr().err
    assert code == 0, err
    [path] = (tmp_path / "ds").glob("episode_*.h5")
    with Episode.open(path) as ep:
        assert "strategy async, threshold half a chunk, crossfade blend, low-pass 4 Hz, speed 1.3x" in ep.meta["notes"]
    speed = json.loads(stats_file.read_text())["policy"]["runner"]["speed"]
    assert speed["asked"] == 1.3 and speed["min_used"] == pytest.approx(1.3)


def test_run_policy_refuses_a_speed_that_is_not_positive(tmp_path, capsys):
    code = cli.main(["run-policy", "--policy", "x.pt", "--headless", "--task", "t", "--out", str(tmp_path),
                     "--speed", "0"])
    assert code != 0 and "--speed" in capsys.readouterr().err
