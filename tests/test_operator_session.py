"""The operator session without a window: episodes, rollouts, device buttons, and how runs end.

The session is what the window and every command drive, so these tests are the
rules for all of them; the command-line and window tests check that each entry
point reaches them.
"""

import dataclasses
import threading
import time

import numpy as np
import pytest

from drivers.base import InputDevice
from drivers.types import InputState
from policies import loading
from policies.loading import LoadOptions
from recordings.reader import Episode
from teleop_app.errors import OperatorError
from teleop_app.modes import Mode
from teleop_app.operator_session import OperatorSession
from teleop_app.rollouts import RolloutOptions, StrategyOptions
from teleop_app.runs import EndReason, EndRules, RunKind
from policy_helpers import HoldPolicy, add_input  # tests/ is on sys.path
from waiting import wait_for


class ButtonBox(InputDevice):
    """An input with an episode and a kill button and no motion, like a SpaceMouse left alone."""

    def __init__(self) -> None:
        super().__init__("box")
        self.counts = {"episode": 0, "kill": 0}

    def read(self) -> InputState:
        return InputState(device=self.name, t_host=time.monotonic(), ee_twist=np.zeros(6))

    def presses(self, role: str) -> int:
        return self.counts.get(role, 0)


@pytest.fixture
def session(sim_rig, tmp_path):
    add_input(sim_rig, ButtonBox())
    s = OperatorSession(sim_rig, tmp_path / "data", operator="me")
    s.start()
    s.set_active_input("box")
    yield s
    s.close()


def test_start_needs_a_task_and_an_armed_robot(session):
    with pytest.raises(OperatorError, match="task sentence"):
        session.start_episode()
    session.set_task("  wave  ")
    assert session.task == "wave"
    session.stop()
    with pytest.raises(OperatorError, match="re-arm"):
        session.start_episode()
    with pytest.raises(OperatorError, match="re-arm it before resetting the scene"):
        session.reset_scene()  # a reset moves the arm: never while STOPPED
    session.rearm()
    path = session.start_episode()
    assert session.recording and session.mode is Mode.TELEOP and path.parent == session.dataset_dir
    with pytest.raises(OperatorError, match="stop the episode"):
        session.set_dataset_dir("/tmp/elsewhere")
    with pytest.raises(OperatorError, match="being recorded"):
        session.start_episode()
    time.sleep(0.3)
    result = session.keep(False)
    assert result.outcome == "failure" and session.episode_count == 1
    with Episode.open(result.path) as ep:
        assert ep.meta["success"] == "false" and ep.meta["task"] == "wave" and ep.meta["operator"] == "me"
        ticks = ep.ticks()
    assert set(ticks["source_names"][ticks["source"]]) == {"human"}
    assert set(ticks["driver"]) == {b"box"}


def test_device_buttons_act_without_anyone_polling(session):
    """The supervisor starts and ends episodes on the episode button; the loop stops on the kill button."""
    box, rig = session.rig.inputs["box"], session.rig
    session.set_task("lift")
    box.counts["episode"] += 1
    assert wait_for(lambda: session.recording, timeout=2)
    time.sleep(0.3)
    box.counts["episode"] += 1
    assert wait_for(lambda: not session.recording, timeout=2)
    with Episode.open(session.last_result.path) as ep:  # the sim can tell: the cube was not lifted
        assert ep.meta["success"] == "false"
    ticks = rig.loop.subscribe("test", maxsize=10_000)
    box.counts["kill"] += 1
    assert wait_for(lambda: rig.kill.latched, timeout=2) and rig.kill.reason == "kill button on box"
    assert wait_for(lambda: (r := rig.loop.latest()) is not None and r.killed, timeout=2)
    records = ticks.drain()
    first = next(r for r in records if r.killed)  # the tick that read the press is the tick that held
    assert first.t <= rig.kill.t_trigger < first.t_sent


def test_a_stop_ends_the_episode_as_a_failure_with_the_reason(session):
    session.set_task("lift")
    session.start_episode()
    time.sleep(0.3)
    session.stop()
    assert wait_for(lambda: not session.recording, timeout=2)
    result = session.last_result
    assert result.reason is EndReason.KILL and result.outcome == "failure"
    with Episode.open(result.path) as ep:
        assert ep.meta["success"] == "false"
        assert "stopped by the kill switch: STOP pressed" in ep.meta["notes"]
    with pytest.raises(OperatorError, match="no episode"):
        session.keep(True)


def test_discard_leaves_nothing_and_close_keeps_a_running_episode(session, tmp_path):
    session.set_task("lift")
    session.start_episode()
    time.sleep(0.2)
    assert session.discard().path is None and session.episode_count == 0
    session.start_episode()
    time.sleep(0.2)
    assert session.recorder.path.exists() and session.episode_count == 0  # the one being recorded is not counted
    session.close()  # the window closed mid-episode: kept, unlabelled
    files = list((tmp_path / "data").glob("episode_*.h5"))
    assert len(files) == 1
    with Episode.open(files[0]) as ep:
        assert ep.meta["success"] == "unknown" and ep.meta["status"] == "complete"
        assert "kept unlabelled when the program closed" in ep.meta["notes"]


@pytest.fixture
def policy_session(sim_rig, tmp_path, monkeypatch):
    monkeypatch.setitem(loading.FILE_LOADERS, ".hold", lambda path, **options: HoldPolicy(chunk=10, drift=0.001))
    (tmp_path / "m.hold").write_text("synthetic")
    s = OperatorSession(sim_rig, tmp_path / "data", task="hold the arm")
    s.start()
    s.load_policy(LoadOptions(str(tmp_path / "m.hold")))
    yield s
    s.close()


def test_a_recorded_rollout_is_labelled_and_noted(policy_session):
    session, rig = policy_session, policy_session.rig
    session.start_rollout(RolloutOptions(StrategyOptions("open-loop", replan_every=5), takeover=None, record=True))
    assert wait_for(lambda: session.recorder.counts.get("ticks", 0) > 30, timeout=5)
    result = session.stop_rollout()
    assert result.outcome == "failure" and session.mode is Mode.IDLE and rig.loop.policy is None
    with Episode.open(result.path) as ep:
        assert ep.meta["notes"].startswith("policy ") and "open-loop, re-plan every 5" in ep.meta["notes"]
        ticks = ep.ticks()
    sources = set(ticks["source_names"][ticks["source"]])
    assert "policy" in sources and sources <= {"policy", "idle"}
    assert b"hold" in set(ticks["driver"])


def test_teleop_taking_the_robot_ends_the_rollout(policy_session):
    session = policy_session
    run = session.start_rollout(RolloutOptions(takeover=None))
    assert wait_for(lambda: run.runner.chunks > 0, timeout=5)
    session.set_teleop(True)  # the window's Teleop box
    assert not run.active and session.rig.loop.policy is None and session.mode is Mode.TELEOP
    assert run.result.reason is EndReason.OPERATOR and "teleop took the robot" in session.message


def test_a_kill_ends_the_rollout_so_rearm_does_not_resume_it(policy_session):
    session, rig = policy_session, policy_session.rig
    run = session.start_rollout(RolloutOptions(takeover=None))
    assert wait_for(lambda: run.runner.chunks > 0, timeout=5)
    session.stop()
    assert wait_for(lambda: not run.active, timeout=2) and rig.loop.policy is None
    assert run.result.reason is EndReason.KILL
    session.rearm()
    assert session.mode is Mode.IDLE and session.running is None
    session.start_rollout(RolloutOptions(takeover=None))  # only Start gives the robot back to the policy
    assert session.mode is Mode.POLICY
    with pytest.raises(OperatorError, match="policy is running"):
        session.start_rollout(RolloutOptions(takeover=None))


def test_half_a_chunk_means_half_of_what_runs_at_the_rollouts_speed(policy_session):
    """At 2x a chunk of 10 actions runs in 5 ticks: async asks for the next one when fewer than 2 are left
    (half of 5), not fewer than 5, which would re-plan after every action."""
    session = policy_session
    run = session.start_rollout(RolloutOptions(StrategyOptions("async"), takeover=None, speed=2.0))
    assert run.runner.strategy.threshold == 2
    session.stop_rollout()
    run = session.start_rollout(RolloutOptions(StrategyOptions("async"), takeover=None))
    assert run.runner.strategy.threshold == 5
    session.stop_rollout()


def test_a_policy_that_resizes_images_itself_gets_the_cameras_own_frames(policy_session):
    """The built-in policy resizes each camera frame once, as in training; resizing to 224 first would show it
    images it never saw. Other policies get the rollout's image size."""
    session = policy_session
    run = session.start_rollout(RolloutOptions(takeover=None))
    assert run.runner.observations.image_size == (224, 224)
    session.stop_rollout()
    session.policy.info = dataclasses.replace(session.policy.info, resizes_images=True)
    run = session.start_rollout(RolloutOptions(takeover=None))
    assert run.runner.observations.image_size is None
    session.stop_rollout()


def test_strategy_options_explain_bad_values():
    with pytest.raises(OperatorError, match="threshold"):
        StrategyOptions("async", threshold=-1).build(10)
    assert StrategyOptions("ensemble", k=0.05).build(10).k == 0.05


def test_a_run_waits_for_its_end_rules(session):
    session.set_task("lift")
    t = time.monotonic()
    session.start_episode(EndRules(time_limit_s=0.5))
    result = session.wait_for_end(session.run, timeout=5)
    assert result is not None and result.reason is EndReason.TIME_LIMIT and result.kind is RunKind.EPISODE
    assert 0.45 < time.monotonic() - t
    with Episode.open(result.path) as ep:
        assert "ended at the time limit (0.5 s)" in ep.meta["notes"] and ep.meta["success"] == "false"


def test_loading_a_checkpoint_ten_times_while_the_loop_runs_trips_no_watchdog(sim_rig, tmp_path):
    """What the Policy tab does, with the loaders' libraries imported before the loop starts (as the window does).

    ``benchmarks/policy_load.py`` measures the same with and without that, with the shipped watchdog.
    """
    from drivers.so101.joints import JOINTS
    from policies.builtin.checkpoint import save_checkpoint
    from policies.builtin.model import BuiltinConfig, BuiltinNet, Normalization

    config = BuiltinConfig(cameras=("front", "wrist"), joint_names=JOINTS)
    rng = np.random.default_rng(0)
    norm = Normalization.of(rng.normal(size=(32, 6)), rng.normal(size=(32, config.steps, 6)))
    save_checkpoint(tmp_path / "untrained.pt", config, norm, BuiltinNet(config), {})
    session = OperatorSession(sim_rig, tmp_path / "data")
    session.start(preload_policy_loaders=True)
    ticks = sim_rig.loop.subscribe("test", maxsize=100_000)
    try:
        loads = threading.Thread(target=lambda: [session.load_policy(LoadOptions(str(tmp_path / "untrained.pt")))
                                                 for _ in range(10)])
        loads.start()
        loads.join()
        periods = np.diff([r.t for r in ticks.drain()])
    finally:
        session.close()
    print(f"worst loop period while loading 10 times: {periods.max() * 1e3:.1f} ms")
    assert session.policy is None and sim_rig.loop.watchdog.trips == 0 and not sim_rig.kill.latched


def test_a_kill_from_another_thread_during_a_batch_stops_the_batch(session):
    from teleop_app.operator_session import BatchPlan

    session.set_task("lift")
    threading.Timer(0.5, session.stop, args=("STOP pressed",)).start()
    report = session.run_batch(BatchPlan(3, EndRules(time_limit_s=5.0)))
    assert len(report.results) == 1 and report.stopped_by is report.results[0]
    assert report.results[0].outcome == "failure"
