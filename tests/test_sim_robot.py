"""The simulated SO-101 and its kinematics, on the real MuJoCo model."""

from __future__ import annotations

import math
import threading
import time

import mujoco
import numpy as np
import pytest

from drivers import registry
from drivers.base import DeviceError
from drivers.so101.kinematics import GRASP_JAW_ANGLE, PAD_GEOMS, SO101Kinematics
from drivers.sim.robot import START_POSE, SimSO101, SimSO101Config
from drivers.types import JointCommand

# Where the app works: arm configurations in front of the robot (rad) that put the
# grasp point over the table (m, base frame).
WORK_LOW = np.array([-1.0, -1.3, -1.3, -1.2, -2.5])
WORK_HIGH = np.array([1.0, 1.2, 1.3, 1.5, 2.5])
TABLE_LOW = np.array([0.1, -0.3, 0.01])
TABLE_HIGH = np.array([0.45, 0.3, 0.35])


@pytest.fixture(scope="module")
def kin() -> SO101Kinematics:
    return SO101Kinematics()


@pytest.fixture(scope="module")
def stepped() -> SimSO101:
    """A robot whose physics only advances on send (fast, deterministic). Tests reset it first."""
    robot = SimSO101(SimSO101Config(realtime=False, seed=0))
    robot.connect()
    yield robot
    robot.disconnect()


@pytest.fixture(scope="module")
def realtime() -> SimSO101:
    robot = SimSO101(SimSO101Config(realtime=True, seed=0))
    robot.connect()
    yield robot
    robot.disconnect()


def angle_between(a: np.ndarray, b: np.ndarray) -> float:
    return math.acos(np.clip((np.trace(a.T @ b) - 1) / 2, -1.0, 1.0))


def hold_still(robot: SimSO101, q: np.ndarray, seconds: float) -> None:
    for _ in range(round(seconds / robot.config.step_dt)):
        robot.send(JointCommand(q))


# -- kinematics --------------------------------------------------------------------------------
def test_fk_ik_round_trip_over_the_workspace(kin):
    rng = np.random.default_rng(1)
    tried = 0
    while tried < 200:
        q_true = np.append(rng.uniform(WORK_LOW, WORK_HIGH), 0.3)
        pos, rot = kin.fk(q_true)
        if np.any(pos < TABLE_LOW) or np.any(pos > TABLE_HIGH):
            continue
        tried += 1
        q0 = q_true + np.append(rng.normal(0.0, 0.2, 5), 0.0)
        q = kin.ik(q0, pos, rot)
        got_pos, got_rot = kin.fk(q)
        assert np.linalg.norm(got_pos - pos) < 1e-3
        assert angle_between(got_rot, rot) < 1e-2
        assert q[5] == q0[5]
        q = kin.ik(q0, pos)  # position only
        assert np.linalg.norm(kin.fk(q)[0] - pos) < 1e-3


def test_ik_reaches_points_above_the_table_from_the_start_pose(kin):
    rng = np.random.default_rng(2)
    q0 = np.append(START_POSE, 1.0)
    for _ in range(50):
        target = rng.uniform([0.15, -0.2, 0.02], [0.4, 0.2, 0.25])
        q = kin.ik(q0, target)
        assert np.linalg.norm(kin.fk(q)[0] - target) < 1e-3


def test_ik_stays_within_joint_limits_for_an_unreachable_target(kin):
    q0 = np.append(START_POSE, 1.0)
    target = np.array([1.0, 0.0, 0.2])
    q = kin.ik(q0, target)
    assert np.all(q >= kin.joint_lower) and np.all(q <= kin.joint_upper)
    assert np.linalg.norm(kin.fk(q)[0] - target) < np.linalg.norm(kin.fk(q0)[0] - target) - 0.2


def test_ee_point_is_between_the_fingertip_pads(stepped):
    """The kinematics' end effector is the midpoint of the pads at the grasp opening, in the full scene too."""
    model = stepped._model  # white box: compare with the physics scene's own geometry
    data = mujoco.MjData(model)
    data.qpos[:6] = np.append(START_POSE, GRASP_JAW_ANGLE)
    mujoco.mj_kinematics(model, data)
    pads = np.mean([data.geom(name).xpos for name in PAD_GEOMS], axis=0)
    np.testing.assert_allclose(stepped.kinematics.fk(data.qpos[:6])[0], pads, atol=1e-9)


@pytest.mark.parametrize("delta", [
    [0.002, 0, 0, 0, 0, 0], [0, -0.002, 0, 0, 0, 0], [0, 0, 0.002, 0, 0, 0], [0.001, 0.001, -0.001, 0, 0, 0],
])
def test_apply_ee_delta_moves_the_point_by_the_delta(kin, delta):
    q = np.array([0.1, -0.6, 0.4, 1.2, 1.6, 0.7])
    q_new = kin.apply_ee_delta(q, np.array(delta, dtype=float))
    np.testing.assert_allclose(kin.fk(q_new)[0] - kin.fk(q)[0], delta[:3], atol=1e-6)
    assert q_new[5] == q[5]
    assert angle_between(kin.fk(q_new)[1], kin.fk(q)[1]) < 0.02  # orientation kept where it can be


def test_apply_ee_delta_rotation_keeps_the_point_and_turns_towards_the_target(kin):
    q = np.array([0.1, -0.6, 0.4, 1.2, 1.6, 0.7])
    pos, rot = kin.fk(q)
    for axis in np.eye(3):
        delta = np.concatenate([np.zeros(3), 0.01 * axis])
        wanted = _rotation(0.01 * axis) @ rot
        new_pos, new_rot = kin.fk(kin.apply_ee_delta(q, delta))
        assert np.linalg.norm(new_pos - pos) < 1e-6
        assert angle_between(new_rot, wanted) < angle_between(rot, wanted)


def test_integrated_twist_follows_a_straight_line(kin):
    """100 ticks of a constant 5 cm/s twist at 100 Hz, each solved from the last command, as the loop does."""
    q = np.append(START_POSE, 1.0)
    start = kin.fk(q)[0]
    velocity = np.array([0.05, -0.03, -0.04])
    for _ in range(100):
        q = kin.apply_ee_delta(q, np.concatenate([velocity * 0.01, np.zeros(3)]))
    np.testing.assert_allclose(kin.fk(q)[0] - start, velocity, atol=1e-4)


def test_apply_ee_delta_timing(kin):
    """Not an assertion on speed (benchmarks do that): prints the per-call cost for the record."""
    q = np.append(START_POSE, 1.0)
    n = 500
    t0 = time.perf_counter()
    for i in range(n):
        q = kin.apply_ee_delta(q, np.array([0.001, 0.0005, -0.0005, 0.0, 0.002, 0.0]) * (-1) ** (i // 50))
    print(f"apply_ee_delta: {(time.perf_counter() - t0) / n * 1e6:.0f} us per call")


def _rotation(rotvec: np.ndarray) -> np.ndarray:
    quat, mat = np.empty(4), np.empty(9)
    angle = float(np.linalg.norm(rotvec))
    mujoco.mju_axisAngle2Quat(quat, rotvec / angle, angle)
    mujoco.mju_quat2Mat(mat, quat)
    return mat.reshape(3, 3)


# -- the robot ---------------------------------------------------------------------------------
def test_reset_scene_puts_the_arm_at_the_start_and_the_cube_in_bounds(stepped):
    cfg = stepped.config
    poses = {}
    for seed in range(20):
        assert stepped.reset_scene(seed=seed) is True
        pos, quat = stepped.cube_pose()
        yaw = 2 * math.atan2(quat[3], quat[0])
        assert cfg.cube_x[0] <= pos[0] <= cfg.cube_x[1] and cfg.cube_y[0] <= pos[1] <= cfg.cube_y[1]
        assert pos[2] == pytest.approx(0.02) and cfg.cube_yaw[0] <= yaw <= cfg.cube_yaw[1]
        state = stepped.read()
        np.testing.assert_allclose(state.joint_pos[:5], START_POSE)
        assert state.gripper == 1.0 and not np.any(state.joint_vel) and state.t_device == 0.0
        assert stepped.success() is False
        poses[seed] = np.concatenate([pos, quat])
    assert len({tuple(p.round(6)) for p in poses.values()}) == 20  # different seeds, different poses
    stepped.reset_scene(seed=7)
    np.testing.assert_array_equal(np.concatenate(stepped.cube_pose()), poses[7])  # same seed, same pose


def test_reset_without_seed_follows_the_config_seed():
    def placements(robot: SimSO101) -> list[np.ndarray]:
        robot.connect()
        try:
            out = [robot.cube_pose()[0]]
            for _ in range(3):
                robot.reset_scene()
                out.append(robot.cube_pose()[0])
            return out
        finally:
            robot.disconnect()

    a = placements(SimSO101(SimSO101Config(realtime=False, seed=42)))
    b = placements(SimSO101(SimSO101Config(realtime=False, seed=42)))
    np.testing.assert_array_equal(a, b)
    assert len({tuple(p) for p in a}) == 4


def test_cube_rests_on_the_table(stepped):
    stepped.reset_scene(seed=3)
    start = stepped.cube_pose()[0]
    hold_still(stepped, stepped.read().joint_pos, 1.0)
    np.testing.assert_allclose(stepped.cube_pose()[0], start, atol=1e-3)


def test_send_moves_the_arm_to_the_target(stepped):
    stepped.reset_scene(seed=0)
    target = np.array([-0.3, -0.5, 0.8, 0.9, 0.5, 0.2])
    hold_still(stepped, target, 2.0)
    state = stepped.read()
    np.testing.assert_allclose(state.joint_pos, target, atol=0.05)  # position servos sag a little under gravity
    assert np.all(np.abs(state.joint_vel) < 0.05)
    t, sent, source = stepped.command_log[-1]
    np.testing.assert_array_equal(sent, target)
    assert source == "loop" and t <= time.monotonic()
    assert state.gripper == pytest.approx(stepped.joint_to_gripper(state.joint_pos[5]))
    np.testing.assert_allclose(state.ee_pos, stepped.kinematics.fk(state.joint_pos)[0])


def test_targets_are_clipped_to_the_actuator_ranges(stepped):
    stepped.reset_scene(seed=0)
    stepped.send(JointCommand(np.full(6, 10.0)), source="test")
    np.testing.assert_array_equal(stepped.command_log[-1][1], stepped.joint_upper)
    stepped.send(JointCommand(np.full(6, -10.0)), source="test")
    np.testing.assert_array_equal(stepped.command_log[-1][1], stepped.joint_lower)
    ranges = stepped._model.actuator_ctrlrange  # white box: the limits are the actuators'
    np.testing.assert_array_equal(stepped.joint_lower, ranges[:, 0])
    np.testing.assert_array_equal(stepped.joint_upper, ranges[:, 1])


@pytest.mark.parametrize("bad", [np.full(6, np.nan), np.zeros(5), np.array([0, 0, 0, 0, np.inf, 0])])
def test_invalid_targets_are_refused(stepped, bad):
    stepped.reset_scene(seed=0)
    n = len(stepped.command_log)
    with pytest.raises(ValueError, match="6 finite joint targets"):
        stepped.send(JointCommand(bad))
    assert len(stepped.command_log) == n


def test_stepped_mode_advances_step_dt_per_send_only(stepped):
    stepped.reset_scene(seed=0)
    q = stepped.read().joint_pos
    for _ in range(10):
        stepped.send(JointCommand(q))
        stepped.read()
    assert stepped.read().t_device == pytest.approx(10 * stepped.config.step_dt)


def test_state_listener_gets_every_advance(stepped):
    calls = []
    stepped.add_state_listener(lambda t, qpos: calls.append((t, qpos)))
    stepped.reset_scene(seed=0)
    q = stepped.read().joint_pos
    stepped.send(JointCommand(q))
    stepped.read()  # no physics advance in stepped mode: no call
    assert len(calls) == 2  # the reset and the send
    (t0, q0), (t1, q1) = calls
    assert t0 <= t1 <= time.monotonic() and q1.shape == (stepped._model.nq,)
    np.testing.assert_array_equal(q1[:6], stepped.read().joint_pos)
    q1[:] = 0  # a copy: the listener cannot disturb the physics
    assert np.any(stepped.read().joint_pos)


def test_realtime_sim_time_follows_the_wall_clock(realtime):
    """Sim time elapsed between two reads lies within the wall time bracketing them (to one physics step)."""
    realtime.reset_scene(seed=0)
    step = realtime._model.opt.timestep  # white box: the 2 ms physics step

    def timed_read() -> tuple[float, float, float]:
        t_call = time.monotonic()
        state = realtime.read()
        return t_call, state.t_host, state.t_device

    q = realtime.read().joint_pos
    call_a, host_a, sim_a = timed_read()
    while time.monotonic() - call_a < 1.0:
        realtime.send(JointCommand(q))
        realtime.read()
        time.sleep(0.01)
    call_b, host_b, sim_b = timed_read()
    assert call_b - host_a - step <= sim_b - sim_a <= host_b - call_a
    assert sim_b - sim_a > 0.99

    time.sleep(1.0)  # a stalled caller: half a second is caught up, then the clock jumps
    call_c, host_c, sim_c = timed_read()
    assert sim_c - sim_b == pytest.approx(0.5, abs=step)
    time.sleep(0.2)
    call_d, host_d, sim_d = timed_read()
    assert call_d - host_c - step <= sim_d - sim_c <= host_d - call_c


def test_hold_from_another_thread_stops_the_arm(realtime):
    realtime.reset_scene(seed=0)
    gripper_target = realtime.gripper_to_joint(0.5)
    far = np.array([0.8, 0.3, -0.5, 0.2, -1.0, gripper_target])
    realtime.send(JointCommand(far), source="loop")
    time.sleep(0.15)
    moving = realtime.read()
    assert np.abs(moving.joint_vel[:5]).max() > 0.5

    t_hold = time.monotonic()
    holder = threading.Thread(target=realtime.hold, kwargs={"source": "watchdog"})
    holder.start()
    holder.join()
    t, held, source = realtime.command_log[-1]
    assert source == "watchdog" and t >= t_hold
    assert held[5] == gripper_target  # the gripper keeps its target (a held cube is not dropped)
    assert np.abs(held[:5] - far[:5]).max() > 0.3  # the arm was stopped on its way

    for _ in range(60):  # the loop keeps reading while held
        realtime.read()
        time.sleep(0.01)
    state = realtime.read()
    assert np.abs(state.joint_vel[:5]).max() < 0.05
    np.testing.assert_allclose(state.joint_pos[:5], held[:5], atol=0.05)


def test_send_and_read_timing(realtime):
    """Prints the cost of one control tick's send() + read() at 100 Hz for the record (benchmarks assert speed)."""
    realtime.reset_scene(seed=0)
    q = realtime.read().joint_pos
    costs = []
    for _ in range(100):
        t0 = time.perf_counter()
        realtime.send(JointCommand(q))
        realtime.read()
        costs.append(time.perf_counter() - t0)
        time.sleep(0.01)
    print(f"send+read per 10 ms tick: median {np.median(costs) * 1e6:.0f} us, max {max(costs) * 1e6:.0f} us")


def test_disconnected_robot_says_how_to_fix_it():
    robot = SimSO101()
    with pytest.raises(DeviceError, match="call connect"):
        robot.read()
    assert robot.n_joints == 6 and robot.joint_names[-1] == "gripper"
    assert robot.joint_lower.shape == (6,) and np.all(robot.joint_lower < robot.joint_upper)


def test_registry_builds_the_sim_robot_from_rig_options():
    robot = registry.create("robot", "sim_so101", {"realtime": False, "seed": 5, "cube_yaw": [0.0, 0.0]})
    assert isinstance(robot, SimSO101) and robot.config.seed == 5 and robot.config.realtime is False
    with pytest.raises(registry.ConfigError, match="no option 'speed'"):
        registry.create("robot", "sim_so101", {"speed": 1})
