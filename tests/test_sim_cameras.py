"""Sim cameras on the real simulated SO-101 (real time) with the real render process."""

import os
import signal
import threading
import time

import numpy as np
import pytest

from drivers import registry
from drivers.base import DeviceError
from drivers.sim.render import SimCamera, SimCameraConfig
from drivers.sim.robot import SimSO101, SimSO101Config
from drivers.types import JointCommand
from waiting import wait_for  # tests/ is on sys.path

W, H, FPS = 320, 240, 15.0
FAR_POSE = np.array([-1.2, 0.0, -0.5, 0.0, 0.0])  # pan the arm far left and raise it: a big change in both views


class Driver:
    """Advances the real-time sim at 100 Hz by sending joint targets, as the control loop does."""

    def __init__(self, robot: SimSO101) -> None:
        self.robot = robot
        self.target = robot.read().joint_pos.copy()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.robot.send(JointCommand(self.target.copy()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def robot():
    robot = SimSO101(SimSO101Config(seed=0, offscreen_width=W, offscreen_height=H))
    robot.connect()
    driver = Driver(robot)
    yield robot, driver
    driver.close()
    robot.disconnect()


@pytest.fixture
def cameras(robot):
    cams = [registry.create("camera", "sim", {"name": n, "width": W, "height": H, "fps": FPS}, robot=robot[0])
            for n in ("front", "wrist")]
    yield cams
    for cam in cams:
        cam.stop()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_both_cameras_stream_frames_that_follow_the_arm(robot, cameras):
    _, driver = robot
    assert all(isinstance(c, SimCamera) for c in cameras)
    subs = [cam.subscribe("test") for cam in cameras]
    for cam in cameras:
        cam.start()
    assert cameras[0].render_pid == cameras[1].render_pid  # one process for both
    assert wait_for(lambda: all(cam.latest() is not None for cam in cameras))
    t0 = time.monotonic()
    time.sleep(1.5)
    t_move = time.monotonic()
    driver.target[:5] = FAR_POSE
    # frames captured once the arm is there (it takes about a second); a loaded machine renders slowly
    assert wait_for(lambda: all(cam.latest().t_capture > t_move + 1.5 for cam in cameras), timeout=15)
    t1 = time.monotonic()

    for cam, sub in zip(cameras, subs):
        frames = sub.drain()
        assert sub.dropped == 0
        assert [f.seq for f in frames] == list(range(len(frames)))
        assert all(f.camera == cam.name for f in frames)
        assert all(f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 for f in frames)
        t_capture = np.array([f.t_capture for f in frames])
        t_host = np.array([f.t_host for f in frames])
        assert np.all(t_capture <= t_host)
        assert np.all(np.diff(t_capture) >= 0) and np.all(np.diff(t_host) >= 0)
        # frames before and after the move (the rate depends on the machine: benchmarks/render_only.py measures it)
        for a, b in ((t0, t_move), (t_move, t1)):
            assert any(a <= f.t_host <= b for f in frames), f"{cam.name}: no frame in {b - a:.1f} s"

        still = [f.image.astype(np.int16) for f in frames if f.t_capture < t_move]
        moved = frames[-1].image.astype(np.int16)
        rest_change = np.abs(still[-1] - still[len(still) // 2]).mean()
        move_change = np.abs(moved - still[-1]).mean()
        assert move_change > 3.0 and move_change > 10 * rest_change, (cam.name, rest_change, move_change)
    assert cameras[0].intrinsics["fy"] > 0


def test_last_stop_ends_the_render_process(robot, cameras):
    front, wrist = cameras
    front.start()
    wrist.start()
    pid = front.render_pid
    assert wait_for(lambda: front.latest() is not None and wrist.latest() is not None)

    front.stop()
    n = wrist.frames.latest.count
    assert wait_for(lambda: wrist.frames.latest.count > n + 2)  # the other camera keeps going
    assert not gone(pid)

    t = time.monotonic()
    wrist.stop()
    assert time.monotonic() - t < 1.0
    assert gone(pid)
    counts = [c.frames.latest.count for c in cameras]
    time.sleep(0.3)
    assert [c.frames.latest.count for c in cameras] == counts
    wrist.stop()  # idempotent
    assert front.render_pid is None and front.error is None and wrist.error is None


def test_killed_render_process_is_reported_and_restartable(robot, cameras):
    for cam in cameras:
        cam.start()
    pid = cameras[0].render_pid
    assert wait_for(lambda: all(cam.latest() is not None for cam in cameras))

    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: all(cam.error is not None for cam in cameras))
    assert "SIGKILL" in cameras[0].error and "\n" not in cameras[0].error
    counts = [c.frames.latest.count for c in cameras]
    time.sleep(0.3)
    assert [c.frames.latest.count for c in cameras] == counts
    t = time.monotonic()
    for cam in cameras:
        cam.stop()
    assert time.monotonic() - t < 1.0

    sub = cameras[0].subscribe("after restart")
    cameras[0].start()  # a new render process; the error clears and seq starts again
    assert cameras[0].error is None and cameras[0].render_pid not in (None, pid)
    frame = sub.get(timeout=5.0)
    assert frame is not None and frame.seq == 0


def test_unknown_scene_camera_fails_to_start_with_the_known_names():
    robot = SimSO101(SimSO101Config(offscreen_width=W, offscreen_height=H))
    cam = SimCamera(SimCameraConfig("top", W, H, mujoco_camera="overhead"), robot=robot)
    with pytest.raises(DeviceError, match=r"no camera 'overhead'.*front, wrist"):
        cam.start()
    assert cam.render_pid is None
    cam.stop()


def test_config_rejects_bad_values():
    with pytest.raises(registry.ConfigError, match="fps"):
        registry.make_config(SimCamera, "camera", "sim", {"name": "front", "fps": 0})
    with pytest.raises(registry.ConfigError, match="width and height"):
        registry.make_config(SimCamera, "camera", "sim", {"name": "front", "width": 0})
