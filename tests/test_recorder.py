"""The Recorder on the real sim rig (scripted expert, both cameras rendering at 160x120), plus drop accounting."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest

from drivers.base import Camera
from drivers.types import Frame
from recording_child import SyntheticLoop
from recordings.reader import Episode
from recordings.recorder import Recorder, RecordingError, next_episode_path
from teleop_app.config import DeviceSpec, load_rig
from teleop_app.rig import build_rig
from teleop_app.modes import Mode

W, H = 160, 120
SECONDS = 3.0


@pytest.fixture(scope="module")
def rig():
    config = load_rig()
    cameras = tuple(DeviceSpec(c.kind, c.type, c.name, {**c.options, "width": W, "height": H}) for c in config.cameras)
    rig = build_rig(dataclasses.replace(config, cameras=cameras), active_input="scripted")
    rig.start()
    rig.modes.set_mode(Mode.TELEOP)
    deadline = time.monotonic() + 30
    while not all(cam.latest() is not None for cam in rig.cameras.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    yield rig
    rig.close()


def test_records_an_episode_of_the_sim_rig(rig, tmp_path):
    recorder = Recorder.for_rig(rig, tmp_path / "demos")
    path = recorder.start_episode("pick up the cube", operator="tester", notes="first try")
    assert path.name == "episode_000001.h5" and recorder.recording and recorder.path == path
    time.sleep(SECONDS)
    assert 0.5 * SECONDS < recorder.elapsed_s < 2 * SECONDS
    assert recorder.counts["ticks"] > 0
    t = time.perf_counter()
    assert recorder.stop_episode(success=True) == path
    print(f"\nstop_episode {1e3 * (time.perf_counter() - t):.1f} ms, of which finalize "
          f"{1e3 * recorder.finalize_s:.1f} ms; disk lag {recorder.stats()['disk_lag_ms']}")
    assert not recorder.recording
    assert recorder.dropped == {"ticks": 0, "front": 0, "wrist": 0}
    counts = recorder.counts

    with Episode.open(path) as ep:
        assert ep.status == "complete" and ep.issues == []
        m = ep.meta
        assert (m["task"], m["operator"], m["notes"]) == ("pick up the cube", "tester", "first try")
        assert m["success"] == "true"
        assert (m["rig"], m["robot_type"], m["control_rate_hz"]) == ("sim_so101", "sim_so101", 100.0)
        assert m["joint_names"] == list(rig.robot.joint_names) and m["dropped"] == recorder.dropped
        ticks = ep.ticks(trimmed=False)
        n = len(ticks["t"])
        assert n == counts["ticks"] and 10 <= n <= 1.1 * 100 * SECONDS  # the loop's rate is benchmarks' business
        assert ticks["t"][0] == 0.0 and np.all(np.diff(ticks["t"]) > 0)
        assert np.all(np.diff(ticks["tick"]) == 1)
        assert np.all(ticks["t"] <= ticks["t_sent"]) and np.all(ticks["t_sent"] <= ticks["t_state"])
        assert set(ticks["source_names"][ticks["source"]]) == {"scripted"} and set(ticks["driver"]) == {b"scripted"}
        assert set(ticks["input_kind_names"][ticks["input_kind"]]) <= {"ee_delta", "none"}
        assert np.isfinite(ticks["state"]).all() and np.isfinite(ticks["action"]).all()
        for cam in ("front", "wrist"):
            info = ep.camera_info(cam)
            assert (info["width"], info["height"], info["kind"]) == (W, H, "color") and info["intrinsics"]["fy"] > 0
            times = ep.frame_times(cam, trimmed=False)
            assert len(times) == counts[cam] >= 2  # how many depends on the machine's load: the sim renders
            assert np.all(np.diff(times) > 0)  # as fast as it can up to fps; it must cover the episode
            assert -0.5 < times[0] < 0.5 and ep.full_duration / 2 < times[-1] < ep.full_duration + 0.5
            seq = ep.h5[f"cameras/{cam}/seq"][: len(times)]
            assert np.all(np.diff(seq) == 1)  # every frame the camera produced while recording
            assert ep.frame(cam, len(times) - 1, trimmed=False).shape == (H, W, 3)

    assert recorder.start_episode("again").name == "episode_000002.h5"
    time.sleep(0.3)
    recorder.discard()
    assert not recorder.recording and not (tmp_path / "demos" / "episode_000002.h5").exists()
    with pytest.raises(RecordingError, match="not recording"):
        recorder.stop_episode(True)


def test_recording_needs_a_running_loop(sim_rig, tmp_path):
    with pytest.raises(RecordingError, match="control loop is not running"):
        Recorder.for_rig(sim_rig, tmp_path).start_episode("task")
    assert list(tmp_path.iterdir()) == []


def test_episode_numbers_continue_after_the_highest_including_the_trash(tmp_path):
    assert next_episode_path(tmp_path / "new") == tmp_path / "new" / "episode_000001.h5"
    (tmp_path / ".trash").mkdir()
    (tmp_path / "episode_000002.h5").touch()
    (tmp_path / ".trash" / "episode_000007.h5").touch()
    (tmp_path / "episode_000099.h5.partial").touch()
    (tmp_path / "notes.txt").touch()
    assert next_episode_path(tmp_path).name == "episode_000008.h5"


class BurstCamera(Camera):
    """Publishes frames only when told to, as fast as it is told."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def burst(self, n: int, start_seq: int) -> None:
        image = np.zeros((self.height, self.width, 3), np.uint8)
        for seq in range(start_seq, start_seq + n):
            t = time.monotonic()
            self._publish(Frame(self.name, image, t, t, seq))


def test_overflow_is_counted_and_stored_never_silent(tmp_path):
    loop = SyntheticLoop()
    threading.Thread(target=loop.run, daemon=True).start()
    cam = BurstCamera("cam", 32, 24, fps=10.0)
    recorder = Recorder(loop, {"cam": cam}, tmp_path, {"rig": "t", "robot_type": "t", "control_rate_hz": 100.0},
                        queue_s=0.2)  # a queue of 2 frames
    path = recorder.start_episode("burst")
    time.sleep(0.1)
    cam.burst(500, 0)  # far faster than any writer: most must overflow
    time.sleep(0.3)
    recorder.stop_episode(None)
    loop.stopped.set()
    dropped, counts = recorder.dropped, recorder.counts
    assert dropped["cam"] > 0 and counts["cam"] + dropped["cam"] == 500
    with Episode.open(path) as ep:
        assert ep.meta["dropped"] == dropped and ep.meta["success"] == "unknown"
        assert ep.frame_count("cam", trimmed=False) == counts["cam"]
