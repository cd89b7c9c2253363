"""Changing who drives never jumps: a takeover starts from the gripper the policy left, a hand-back ramps.

A policy holds a fixed pose with the gripper part-closed (as on a grasp). A human
takes over with the keyboard (whose own gripper toggle says "open"), drives the
arm forward, lets go; the policy gets the robot back and must join from where the
human left the arm at no more than the rig's ramp speed on any joint.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from policies import loading
from policies.base import ActionKind, Policy, PolicyInfo
from policies.loading import LoadOptions
from teleop_app.modes import Mode
from teleop_app.operator_session import OperatorSession
from teleop_app.rollouts import RolloutOptions, StrategyOptions
from teleop_app.takeover import TakeoverConfig
from waiting import wait_for

GRIP = 0.19  # the opening the policy holds the gripper at


class PosePolicy(Policy):
    """Every action is the same joint pose."""

    def __init__(self, pose: np.ndarray, chunk: int = 10) -> None:
        self.info = PolicyInfo(ActionKind.JOINT, len(pose), chunk, name="pose")
        self.pose = np.asarray(pose, dtype=np.float64)
        self.chunk = chunk

    def predict(self, observation):
        return np.repeat(self.pose[None, :], self.chunk, axis=0), {}


@pytest.fixture
def session(sim_rig, tmp_path, monkeypatch):
    s = OperatorSession(sim_rig, tmp_path / "data", task="hold the cube")
    s.start()
    s.set_active_input("keyboard")
    assert wait_for(lambda: sim_rig.loop.latest() is not None)
    pose = sim_rig.loop.latest().command.copy()
    pose[-1] = sim_rig.robot.gripper_to_joint(GRIP)
    monkeypatch.setitem(loading.FILE_LOADERS, ".pose", lambda path, **options: PosePolicy(pose))
    (tmp_path / "m.pose").write_text("synthetic")
    s.load_policy(LoadOptions(str(tmp_path / "m.pose")))
    s.pose = pose
    yield s
    s.close()


def commands(rig, since: float) -> list[tuple[float, np.ndarray, str]]:
    return [(t, q, src) for t, q, src in rig.robot.command_log if t > since]


def test_takeover_keeps_the_gripper_and_hand_back_joins_at_the_ramp_speed(session):
    rig, keyboard = session.rig, session.rig.inputs["keyboard"]
    grip_joint = rig.robot.gripper_to_joint(GRIP)
    run = session.start_rollout(RolloutOptions(StrategyOptions("open-loop"), takeover=TakeoverConfig(
        input="keyboard", release_s=0.3)))
    assert wait_for(lambda: abs(rig.loop.latest().command[-1] - grip_joint) < 1e-6, timeout=10), \
        "the policy never closed the gripper to its target"

    t_take = time.monotonic()
    keyboard.press("w")  # forward: a takeover
    assert wait_for(lambda: session.mode is Mode.INTERVENTION, timeout=2)
    time.sleep(0.6)
    keyboard.release("w")
    human = [(q, src) for _, q, src in commands(rig, t_take) if src == "intervention"]
    assert len(human) > 30
    moved = np.abs(human[-1][0][:5] - session.pose[:5]).max()
    assert moved > 0.02, "the keyboard did not move the arm"
    gripper = np.array([q[-1] for q, _ in human])
    np.testing.assert_allclose(gripper, grip_joint, atol=1e-9)  # the keyboard's own "open" never reached the robot

    assert wait_for(lambda: session.mode is Mode.POLICY, timeout=3)  # let go for 0.3 s: handed back
    t_back = rig.modes.history[-1].t
    assert wait_for(lambda: np.abs(rig.loop.latest().command - session.pose).max() < 1e-6, timeout=10), \
        "the policy never got the arm back to its pose"
    after = [q for t, q, src in commands(rig, t_back - rig.loop.period) if src in ("policy", "intervention")]
    joined = next(i for i, q in enumerate(after) if np.abs(q - session.pose).max() < 1e-6)
    steps = np.abs(np.diff(np.array(after[: joined + 1]), axis=0))
    assert joined > 5  # it took a while: the arm was away from the pose
    assert steps.max() <= rig.loop.ramp.step + 1e-9  # never faster than the ramp speed, on any joint

    session.stop_rollout()
    session.set_teleop(True)  # the Teleop box after a policy run: the keyboard keeps the policy's gripper
    t_teleop = time.monotonic()
    assert wait_for(lambda: len([1 for *_, s in commands(rig, t_teleop) if s == "human"]) > 20, timeout=3)
    teleop_gripper = [q[-1] for _, q, s in commands(rig, t_teleop) if s == "human"]
    np.testing.assert_allclose(teleop_gripper, grip_joint, atol=1e-9)
    assert run.result is not None


def test_the_ramp_holds_back_absolute_targets_only():
    """A leader arm's or a policy's joint targets are joined slowly; an end-effector step (made from the last
    command) moves the arm at its own pace, and only its absolute gripper target is ramped."""
    from teleop_app.arbitration import JoinRamp

    ramp = JoinRamp(0.5, 0.01)
    q = np.zeros(6)
    ramp.start()
    far = np.full(6, 0.3)
    np.testing.assert_allclose(ramp.apply(far, q), np.full(6, 0.005))
    step = np.array([0.02, -0.02, 0.01, 0, 0, 0.3])  # an IK step of a fast twist, and a gripper far away
    np.testing.assert_allclose(ramp.apply(step, q, gripper_only=True), [0.02, -0.02, 0.01, 0, 0, 0.005])
    assert ramp.active
    np.testing.assert_allclose(ramp.apply(np.full(6, 0.004), q), np.full(6, 0.004))
    assert not ramp.active  # joined: from now on targets pass as they are
    np.testing.assert_allclose(ramp.apply(far, q), far)
