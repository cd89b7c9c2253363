"""Replay on the robot: the ReplayInput's timing, and replays through the real control loop of the sim rig.

The through-the-loop tests need the loop to read its active input in
``Mode.REPLAY`` (``ControlLoop._tick_once``); they say so when it does not.
"""

from __future__ import annotations

import threading
import time

import h5py
import numpy as np
import pytest

from recordings import edit
from recordings.reader import Episode
from recordings.recorder import Recorder
from synthetic_episodes import make_episode
from teleop_app.config import load_rig
from teleop_app.errors import OperatorError
from teleop_app.operator_session import OperatorSession
from teleop_app.replay import REPLAY_INPUT, SETTLE_TIMEOUT_S, ReplayError, ReplayInput, Trajectory
from teleop_app.runs import EndReason
from teleop_app.rig import build_rig
from teleop_app.modes import Mode
from waiting import wait_for

LOOP_MUST_READ_REPLAY = ("the control loop never read the replay input: ControlLoop._tick_once must read the "
                         "active input in Mode.REPLAY too (add it to the tuple with TELEOP and INTERVENTION)")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def traj(times, rows) -> Trajectory:
    return Trajectory(np.asarray(times, float), np.asarray(rows, float), ("a", "b"))


# -- ReplayInput on its own -------------------------------------------------------------------------
def test_plays_the_last_sample_at_or_before_the_time_since_start():
    clock = FakeClock()
    finished = []
    inp = ReplayInput(traj([0.0, 0.125, 0.25], [[0, 0], [1, 1], [2, 2]]), clock=clock,
                      on_finished=lambda: finished.append(clock.now))
    expected = {0.0: 0, 0.0625: 0, 0.125: 1, 0.2: 1, 0.25: 2}  # binary fractions: exact clock arithmetic
    for dt, row in expected.items():
        clock.now = 100.0 + dt
        state = inp.read()
        np.testing.assert_array_equal(state.joint_targets, [row, row])
        assert state.t_host == clock.now and state.connected and state.ee_twist is None
        assert inp.finished == (dt >= 0.25)
    assert finished == [100.25]
    clock.now = 107.0
    np.testing.assert_array_equal(inp.read().joint_targets, [2, 2])  # holds the last sample
    assert finished == [100.25]  # reported once
    assert inp.position_s == 0.25


def test_after_a_stall_it_finishes_only_once_the_robot_was_commanded_to_the_last_target():
    """A stalled loop jumps ahead in time; the step limit then lags, and handing back early left the arm short."""
    clock = FakeClock()
    commanded = {"q": np.array([0.0, 0.0])}
    finished = []
    inp = ReplayInput(traj([0.0, 0.125], [[0, 0], [1, 1]]), clock=clock, on_finished=lambda: finished.append(1),
                      reached=lambda q: bool(np.allclose(commanded["q"], q)))
    inp.read()
    clock.now = 100.5  # the loop was away for half a second: the next read is past the end
    np.testing.assert_array_equal(inp.read().joint_targets, [1, 1])
    assert not inp.finished and not finished  # the last command sent was still [0, 0]
    commanded["q"] = np.array([1.0, 1.0])  # the step limit got there
    inp.read()
    assert inp.finished and finished == [1]

    stuck = ReplayInput(traj([0.0, 0.125], [[0, 0], [1, 1]]), clock=clock, reached=lambda q: False)
    stuck.read()
    clock.now += 0.125 + SETTLE_TIMEOUT_S - 1 / 128  # binary fractions: exact clock arithmetic
    stuck.read()
    assert not stuck.finished
    clock.now += 1 / 128  # however long a limit holds it back, the replay ends
    stuck.read()
    assert stuck.finished


def test_ramps_from_the_start_pose_at_the_ramp_speed():
    clock = FakeClock()
    inp = ReplayInput(traj([0.0, 0.125], [[1.0, 0.5], [2.0, 0.5]]), start_pose=np.array([0.0, 0.5]),
                      ramp_speed=0.5, clock=clock)
    assert inp.ramp_s == pytest.approx(2.0)  # 1 rad at 0.5 rad/s
    seen = []
    for k in range(0, 231):  # 10 ms ticks
        clock.now = 100.0 + k / 100
        seen.append(inp.read().joint_targets)
    seen = np.array(seen)
    np.testing.assert_allclose(seen[0], [0.0, 0.5])
    np.testing.assert_allclose(seen[100], [0.5, 0.5])  # half way after 1 s
    assert np.abs(np.diff(seen[:200], axis=0)).max() <= 0.5 / 100 + 1e-12  # never faster than the ramp speed
    np.testing.assert_allclose(seen[200], [1.0, 0.5])  # first sample at the end of the ramp
    np.testing.assert_allclose(seen[210], [1.0, 0.5])
    np.testing.assert_allclose(seen[220], [2.0, 0.5])
    assert inp.finished and inp.total_s == pytest.approx(2.125)


def test_trajectory_is_the_kept_range_of_the_commanded_targets(tmp_path):
    path = tmp_path / "episode_000001.h5"
    make_episode(path, seconds=2.0)
    edit.set_trim(path, 0.5, 1.5)
    with Episode.open(path) as ep:
        full = ep.ticks(trimmed=False)
    keep = (full["t"] >= 0.5) & (full["t"] <= 1.5)
    tr = Trajectory.from_episode(path)
    np.testing.assert_allclose(tr.t, full["t"][keep] - full["t"][keep][0])
    np.testing.assert_array_equal(tr.q, full["action"][keep])
    assert tr.t[0] == 0.0 and tr.duration == pytest.approx(full["t"][keep][-1] - full["t"][keep][0])
    assert tr.joint_names[-1] == "gripper"


# -- through the control loop -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A 2.5 s episode of the scripted expert on the sim rig, trimmed to start at 1 s (away from the start pose)."""
    rig = build_rig(load_rig().without_cameras(), active_input="scripted")
    rig.start()
    try:
        recorder = Recorder.for_rig(rig, tmp_path_factory.mktemp("replay"))
        rig.modes.set_mode(Mode.TELEOP)
        path = recorder.start_episode("pick up the cube")
        time.sleep(2.5)
        recorder.stop_episode(success=True)
    finally:
        rig.close()
    edit.set_trim(path, 1.0, None)
    return path


def replay_commands(rig, since: float) -> list[tuple[float, np.ndarray, str]]:
    return [(t, q, s) for t, q, s in rig.robot.command_log if t > since]


@pytest.fixture
def session(sim_rig, tmp_path):
    s = OperatorSession(sim_rig, tmp_path)
    yield s
    s.close()


def test_replay_drives_the_robot_through_the_safety_filter_and_gives_it_back(session, sim_rig, recorded):
    with Episode.open(recorded) as ep:
        actions = ep.ticks(trimmed=True)["action"].astype(np.float64)
    session.start()
    assert wait_for(lambda: sim_rig.loop.latest() is not None)
    pose_before = sim_rig.loop.latest().command.copy()
    t_start = time.monotonic()
    run = session.start_replay(recorded)
    inp = run.replay
    assert session.running is run and run.driver == recorded.name
    assert sim_rig.modes.mode is Mode.REPLAY and sim_rig.loop.active_input == REPLAY_INPUT
    assert np.abs(actions[0] - pose_before).max() > 0.05  # the trim start is away from the start pose: a ramp
    assert inp.ramp_s > 0
    assert wait_for(lambda: inp.started, timeout=2), LOOP_MUST_READ_REPLAY
    result = session.wait_for_end(run, timeout=inp.total_s + 10)
    assert result is not None and result.reason is EndReason.FINISHED and result.outcome == "played"
    assert wait_for(lambda: sim_rig.modes.mode is Mode.IDLE)
    assert sim_rig.loop.active_input == "scripted" and REPLAY_INPUT not in sim_rig.loop.inputs

    sent = replay_commands(sim_rig, t_start)
    replayed = np.array([q for _, q, s in sent if s == "replay"])
    assert len(replayed) > len(actions) // 2
    assert {s for _, _, s in sent} <= {"idle", "replay"}
    # every command went through the safety filter's step limit, starting from the pose before the replay
    steps = np.abs(np.diff(np.vstack([pose_before, replayed]), axis=0))
    assert steps.max() <= sim_rig.loop.safety.limits.max_joint_step + 1e-9
    # after the ramp, the robot got the recorded targets, in their order, up to the last one
    nearest = np.array([np.abs(actions - q).max(axis=1).min() for q in replayed])
    row = np.array([int(np.argmin(np.abs(actions - q).max(axis=1))) for q in replayed])
    recorded_rows = np.flatnonzero(nearest < 1e-5)
    after_ramp = replayed[recorded_rows[0]:]
    assert len(recorded_rows) >= 0.5 * len(after_ramp)
    assert np.all(np.diff(row[recorded_rows]) >= 0)
    np.testing.assert_allclose(replayed[-1], actions[-1], atol=1e-5)  # played to the end
    np.testing.assert_allclose(sim_rig.loop.latest().command, actions[-1], atol=1e-5)  # and holds there
    # the ramp: the targets before the first recorded one lie on the straight line to it
    line = actions[0] - pose_before
    ramp = replayed[: recorded_rows[0]]
    assert len(ramp) > 10
    for q in ramp:
        frac = np.dot(q - pose_before, line) / np.dot(line, line)
        np.testing.assert_allclose(q, pose_before + frac * line, atol=1e-5)
    assert sim_rig.loop.safety.counts["INVALID"] == 0


def test_stop_gives_teleop_back_to_its_input(session, sim_rig, recorded):
    session.start()
    session.set_teleop(True)
    run = session.start_replay(recorded)
    assert sim_rig.modes.mode is Mode.REPLAY
    assert wait_for(lambda: run.replay.started, timeout=2), LOOP_MUST_READ_REPLAY
    result = session.stop_replay()
    assert result.reason is EndReason.OPERATOR and session.running is None
    assert sim_rig.modes.mode is Mode.TELEOP and sim_rig.loop.active_input == "scripted"
    assert REPLAY_INPUT not in sim_rig.loop.inputs
    t = time.monotonic()
    assert wait_for(lambda: any(s == "scripted" for _, _, s in replay_commands(sim_rig, t)))
    assert session.stop_replay() is None


def test_stop_switch_during_replay_holds_on_the_next_tick_and_ends_the_replay(session, sim_rig, recorded):
    session.start()
    run = session.start_replay(recorded)
    inp = run.replay
    assert wait_for(lambda: inp.started, timeout=2), LOOP_MUST_READ_REPLAY
    assert wait_for(lambda: inp.elapsed_s > 0.3)
    killer = threading.Thread(target=sim_rig.kill.trigger, args=("STOP pressed",))
    killer.start()
    killer.join()
    t_kill = sim_rig.kill.t_trigger
    assert wait_for(lambda: any(s == "kill" for _, _, s in replay_commands(sim_rig, t_kill)))
    assert wait_for(lambda: sim_rig.modes.mode is Mode.IDLE)
    time.sleep(0.3)
    log = replay_commands(sim_rig, t_kill)
    first_hold = next(i for i, (_, _, s) in enumerate(log) if s == "kill")
    assert first_hold <= 1  # at most the tick already past its kill check sends its replay target
    assert all(s == "kill" for _, _, s in log[first_hold:])
    assert all(np.array_equal(q, log[first_hold][1]) for _, q, _ in log[first_hold:])
    assert not run.active and run.result.reason is EndReason.KILL and run.result.detail == "STOP pressed"
    assert REPLAY_INPUT not in sim_rig.loop.inputs and sim_rig.loop.active_input == "scripted"
    t_rearm = time.monotonic()
    session.rearm()  # the replay is over: re-arming holds (idle), it does not resume
    assert wait_for(lambda: len(replay_commands(sim_rig, t_rearm)) > 20)
    sources = [s for _, _, s in replay_commands(sim_rig, t_rearm)]
    # the tick in flight when re-arming may still send its hold; every one after it holds as idle
    assert sources[0] in ("kill", "idle") and set(sources[1:]) == {"idle"}, sources


def test_refuses_when_it_cannot_replay(session, sim_rig, recorded, tmp_path):
    with pytest.raises(OperatorError, match="not running"):
        session.start_replay(recorded)
    session.start()
    sim_rig.kill.trigger("test")
    with pytest.raises(OperatorError, match="re-arm"):
        session.start_replay(recorded)
    session.rearm()
    other = tmp_path / "episode_000001.h5"
    make_episode(other, seconds=0.5)
    with h5py.File(other, "r+") as f:
        f.attrs["joint_names"] = '["a", "b", "c", "d", "e", "f"]'
    with pytest.raises(ReplayError, match="recorded with joints a, b, c"):
        session.start_replay(other)
    (tmp_path / "junk.h5").write_bytes(b"not an episode")
    with pytest.raises(ReplayError, match="not an HDF5 file"):
        session.start_replay(tmp_path / "junk.h5")
    session.set_task("lift")
    session.start_episode()
    with pytest.raises(OperatorError, match="being recorded"):
        session.start_replay(recorded)
    session.discard()
    sim_rig.modes.set_mode(Mode.POLICY)  # something drives that the session did not start
    with pytest.raises(ReplayError, match="from policy to replay"):
        session.start_replay(recorded)
    assert session.running is None and sim_rig.modes.mode is Mode.POLICY
    assert REPLAY_INPUT not in sim_rig.loop.inputs
