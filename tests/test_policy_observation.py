"""Observations (padding resize, streams) and the ActionSpec that checks and un-normalizes outputs."""

import numpy as np
import pytest

from drivers.sim.robot import SimSO101
from drivers.types import RobotState
from policies.base import ActionKind
from policies.observation import ActionSpec, ActionStats, ObservationSource, resize_with_pad
from policy_helpers import StillCamera  # tests/ is on sys.path


def state():
    return RobotState(t_host=2.0, joint_pos=np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), joint_vel=np.zeros(6),
                      gripper=0.7, ee_pos=np.array([0.2, 0.0, 0.1]))


def test_resize_keeps_the_aspect_and_pads_with_zeros():
    wide = np.full((480, 640, 3), 200, np.uint8)
    out = resize_with_pad(wide, 224, 224)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    # 640x480 scales by 0.35 to 224x168: 28 black rows above and below
    assert not out[:28].any() and not out[196:].any() and np.all(out[28:196] == 200)
    tall = np.full((100, 50, 3), 9, np.uint8)
    out = resize_with_pad(tall, 64, 64)
    assert not out[:, :16].any() and not out[:, 48:].any() and np.all(out[:, 16:48] == 9)
    same = np.zeros((8, 8, 3), np.uint8)
    assert resize_with_pad(same, 8, 8) is same


def test_capture_is_by_reference_and_build_resizes():
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    cams = {"front": StillCamera("front", image), "wrist": StillCamera("wrist", image)}
    source = ObservationSource(cams, "pick the cube", image_size=(96, 128), camera_names=["front"])
    capture = source.capture(7, 2.5, state())
    assert capture.frames["front"] is cams["front"].latest() and set(capture.frames) == {"front"}
    obs = source.build(capture)
    assert obs.tick == 7 and obs.t == 2.5 and obs.task == "pick the cube"
    assert obs.image_times == {"front": cams["front"].latest().t_capture}
    assert obs.stream("image:front").shape == (96, 128, 3)
    assert obs.stream("image_chw:front").shape == (3, 96, 128)
    np.testing.assert_array_equal(obs.stream("state"), np.float32([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]))
    assert obs.stream("joints").shape == (5,) and obs.stream("gripper").tolist() == [np.float32(0.7)]
    assert obs.stream("ee_pos").dtype == np.float32 and obs.stream("task") == "pick the cube"
    with pytest.raises(KeyError, match="no image from camera 'wrist'"):
        obs.stream("image:wrist")
    with pytest.raises(KeyError, match="unknown observation stream 'depth'"):
        obs.stream("depth")
    with pytest.raises(KeyError, match="no camera side"):
        ObservationSource(cams, camera_names=["side"])
    full = ObservationSource(cams, image_size=None).build(source.capture(8, 3.0, state()))
    assert full.images["front"].shape == (480, 640, 3)


def spec(**kwargs):
    return ActionSpec(ActionKind.JOINT, np.array([-1.0, -1.0, 0.0]), np.array([1.0, 1.0, 10.0]), **kwargs)


def test_check_names_the_first_problem():
    s = spec()
    good = np.array([[0.5, -0.5, 3.0], [0.0, 0.0, 0.0]])
    out, problem = s.check(good)
    assert problem is None and out.dtype == np.float64
    np.testing.assert_array_equal(out, good)
    bad = good.copy()
    bad[1, 2] = np.nan
    assert s.check(bad) == (None, "output has NaN in dim 2")
    bad[1, 2] = np.inf
    assert s.check(bad) == (None, "output has inf in dim 2")
    assert s.check(good[:, :2]) == (None, "output has shape (2, 2), expected [k, 3]")
    assert s.check(good[0]) == (None, "output has shape (3,), expected [k, 3]")
    assert s.check(np.zeros((0, 3))) == (None, "output has shape (0, 3), expected [k, 3]")
    assert s.check([["a", "b", "c"]])[1] == "output is not numeric (dtype <U1)"
    bad = good.copy()
    bad[1, 1] = -1.5
    assert s.check(bad) == (None, "output out of range in dim 1: -1.5 < -1 (action 1)")
    bad[1, 1], bad[0, 2] = 0.0, 12.0
    assert s.check(bad) == (None, "output out of range in dim 2: 12 > 10 (action 0)")


def test_unnormalize_by_hand():
    stats = ActionStats(mean=np.array([1.0, 2.0, 3.0]), std=np.array([0.5, 1.0, 2.0]), q01=np.array([-0.5, 0.0, 2.0]),
                        q99=np.array([0.5, 1.0, 6.0]), min=np.array([-1.0, -1.0, 0.0]), max=np.array([1.0, 1.0, 8.0]))
    a = np.array([[1.0, -1.0, 0.5]])
    np.testing.assert_allclose(spec(normalization="mean_std", stats=stats).unnormalize(a), [[1.5, 1.0, 4.0]])
    # OpenVLA: 0.5 * (a + 1) * (q99 - q01) + q01, the gripper (last) left alone by the mask
    openvla = spec(normalization="q01_q99", stats=stats, mask=np.array([True, True, False]))
    np.testing.assert_allclose(openvla.unnormalize(a), [[0.5, 0.0, 0.5]])
    np.testing.assert_allclose(spec(normalization="min_max", stats=stats).unnormalize(a), [[1.0, -1.0, 6.0]])
    for s in (openvla, spec(normalization="mean_std", stats=stats), spec(normalization="min_max", stats=stats)):
        np.testing.assert_allclose(s.normalize(s.unnormalize(a)), a)
    out, problem = openvla.check(np.array([[3.0, 0.0, 0.0]]))  # 0.5 * 4 * 1 - 0.5 = 1.5 > 1
    assert out is None and problem == "output out of range in dim 0: 1.5 > 1 (action 0)"
    stats_of = ActionStats.of(np.array([[0.0, 1.0], [2.0, 3.0]]))
    assert stats_of.mean.tolist() == [1.0, 2.0] and ActionStats.from_dict(stats_of.to_dict()).max.tolist() == [2, 3]


def test_spec_validation_and_robot_bounds():
    with pytest.raises(ValueError, match="needs stats.q01 with 3 values"):
        spec(normalization="q01_q99")
    with pytest.raises(ValueError, match="unknown normalization"):
        spec(normalization="zscore")
    with pytest.raises(ValueError, match="7 dimensions"):
        ActionSpec(ActionKind.EE_DELTA, np.zeros(6), np.ones(6))
    robot = SimSO101()
    joint = ActionSpec.for_robot(robot, ActionKind.JOINT, 100.0)
    span = robot.joint_upper - robot.joint_lower
    np.testing.assert_allclose(joint.high, robot.joint_upper + 0.1 * span)
    ee = ActionSpec.for_robot(robot, ActionKind.EE_DELTA, 50.0)
    np.testing.assert_allclose(ee.high, [0.02] * 3 + [0.08] * 3 + [1.1])
    assert ee.check(np.array([[0.03, 0, 0, 0, 0, 0, 1.0]]))[1].startswith("output out of range in dim 0: 0.03 > 0.02")
