"""EpisodeWriter → Episode round trips with synthetic ticks and frames: values, times, images, trimming."""

from __future__ import annotations

import dataclasses
import time

import cv2
import h5py
import numpy as np
import pytest

from drivers.types import Frame, RobotState
from recordings.format import INPUT_KINDS, SOURCES
from recordings.reader import Episode, EpisodeError
from recordings.repair import repair
from recordings.writer import EpisodeWriter
from drivers.types import TickRecord

JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
META = {"app_version": "test", "rig": "test_rig", "robot_type": "sim_so101", "control_rate_hz": 100.0,
        "task": "pick the cube", "operator": "ada"}
T0 = 1000.0  # monotonic time of the first tick
W, H = 64, 48
CAMS = {
    "front": {"width": W, "height": H, "fps": 10.0, "kind": "color",
              "intrinsics": {"model": "pinhole", "fx": 50.0, "fy": 50.0, "cx": 32.0, "cy": 24.0}},
    "wrist": {"width": W, "height": H, "fps": 10.0, "kind": "color", "intrinsics": None},
    "depth": {"width": W, "height": H, "fps": 10.0, "kind": "depth", "intrinsics": None},
}
N_TICKS = 300  # 3 s at 100 Hz
N_FRAMES = 31  # 10 fps from 0.05 s before the first tick


def tick(i: int, n_joints: int = len(JOINTS)) -> TickRecord:
    t = T0 + 0.01 * i
    q = np.linspace(-1.0, 1.0, n_joints) + 0.01 * i
    raw, kind = [(None, "none"), (np.arange(7) * 1e-3 * i, "ee_delta"), (q + 0.1, "joint")][i % 3]
    state = RobotState(t_host=t + 0.002, joint_pos=q, joint_vel=-q, gripper=(i % 10) / 10,
                       ee_pos=np.array([1.0, 2.0, 3.0]) * 1e-3 * i)
    return TickRecord(tick=i, t=t, t_sent=t + 0.001, state=state, command=q + 0.05, raw_input=raw,
                      input_kind=kind, source=SOURCES[i % len(SOURCES)], safety=i % 32, killed=False)


def color_image(seq: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    image = np.stack([xx * 4, yy * 5, np.full_like(xx, 128)], -1).astype(np.uint8)
    x = 8 * seq % (W - 20)
    image[10:30, x: x + 20] = (250, 40, 40)
    return image


def looks_like(decoded: np.ndarray, original: np.ndarray) -> bool:
    """JPEG q90 of a small synthetic image: close to the original; neighbouring frames differ ~4x more."""
    return bool(np.abs(decoded.astype(int) - original).mean() < 5.0)


def depth_image(seq: int) -> np.ndarray:
    return np.random.default_rng(seq).integers(0, 65535, (H, W), dtype=np.uint16)


def frame_time(k: int) -> float:
    return T0 - 0.05 + 0.1 * k


def frame(cam: str, k: int) -> Frame:
    image = depth_image(k) if cam == "depth" else color_image(k)
    return Frame(cam, image, t_capture=frame_time(k), t_host=frame_time(k) + 0.004, seq=k)


def write_episode(path, n_ticks: int = N_TICKS, n_frames: int = N_FRAMES) -> EpisodeWriter:
    """Frames and ticks interleaved as the recorder would: frames may come before the first tick."""
    writer = EpisodeWriter(path, META, JOINTS, CAMS)
    k = 0
    for i in range(0, n_ticks + 10, 10):
        while k < n_frames and frame_time(k) <= T0 + 0.01 * i:
            for cam in CAMS:
                assert writer.append_frame(cam, frame(cam, k))
            k += 1
        writer.append_ticks([tick(j) for j in range(i, min(i + 10, n_ticks))])
        if i % 50 == 0:
            writer.flush()
    return writer


@pytest.fixture
def episode_path(tmp_path):
    path = tmp_path / "episode_000001.h5"
    write_episode(path).finalize({"ticks": 0, "front": 0, "wrist": 0, "depth": 0}, success="true")
    return path


def test_metadata_and_ticks_round_trip(episode_path):
    with Episode.open(episode_path) as ep:
        assert ep.status == "complete" and ep.issues == []
        m = ep.meta
        assert m["format"] == "teleop-episode" and m["format_version"] == 2
        assert m["joint_names"] == JOINTS and m["joint_units"] == ["rad"] * 6
        assert m["cameras"] == list(CAMS) == ep.camera_names
        assert (m["task"], m["operator"], m["success"], m["rig"]) == ("pick the cube", "ada", "true", "test_rig")
        assert m["kept_start"] is None and m["kept_end"] is None
        assert m["dropped"] == {"ticks": 0, "front": 0, "wrist": 0, "depth": 0}
        assert ep.t0 == T0 and m["created"].endswith("+00:00")
        assert ep.kept_range == (0.0, pytest.approx(2.99)) and ep.duration == ep.full_duration

        ticks = ep.ticks()
        expected = [tick(i) for i in range(N_TICKS)]
        assert ticks["tick"].tolist() == list(range(N_TICKS))
        np.testing.assert_allclose(ticks["t"], [r.t - T0 for r in expected], atol=1e-12)
        np.testing.assert_allclose(ticks["t_sent"] - ticks["t"], 0.001, atol=1e-9)
        np.testing.assert_allclose(ticks["t_state"] - ticks["t"], 0.002, atol=1e-9)
        np.testing.assert_array_equal(ticks["state"], np.float32([r.state.joint_pos for r in expected]))
        np.testing.assert_array_equal(ticks["velocity"], np.float32([r.state.joint_vel for r in expected]))
        np.testing.assert_array_equal(ticks["action"], np.float32([r.command for r in expected]))
        np.testing.assert_array_equal(ticks["gripper"], np.float32([r.state.gripper for r in expected]))
        np.testing.assert_array_equal(ticks["ee_pos"], np.float32([r.state.ee_pos for r in expected]))
        assert ticks["safety"].tolist() == [i % 32 for i in range(N_TICKS)]
        assert [ticks["source_names"][s] for s in ticks["source"]] == [r.source for r in expected]
        assert [ticks["input_kind_names"][k] for k in ticks["input_kind"]] == [r.input_kind for r in expected]
        assert list(ticks["source_names"]) == list(SOURCES) and list(ticks["input_kind_names"]) == list(INPUT_KINDS)
        raw = ticks["raw_input"]
        assert raw.shape == (N_TICKS, 7)
        assert np.isnan(raw[0]).all()  # no input
        np.testing.assert_array_equal(raw[1], np.float32(np.arange(7) * 1e-3))  # an EE delta fills all 7
        np.testing.assert_array_equal(raw[2, :6], np.float32(expected[2].raw_input))  # joint targets, NaN-padded
        assert np.isnan(raw[2, 6])


def test_frames_decode_with_their_times(episode_path):
    with Episode.open(episode_path) as ep:
        info = ep.camera_info("front")
        assert info == {"width": W, "height": H, "fps": 10.0, "kind": "color", "encoding": "jpeg",
                        "intrinsics": CAMS["front"]["intrinsics"], "frames": N_FRAMES}
        assert ep.camera_info("depth")["encoding"] == "png16"
        for cam in CAMS:
            times = ep.frame_times(cam, trimmed=False)
            np.testing.assert_allclose(times, [frame_time(k) - T0 for k in range(N_FRAMES)], atol=1e-9)
            assert times[0] == pytest.approx(-0.05)  # captured just before the first tick: kept, negative time
            assert ep.frame_count(cam, trimmed=False) == N_FRAMES
        for k in (0, 7, N_FRAMES - 1):
            rgb = ep.frame("front", k, trimmed=False)
            assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
            assert looks_like(rgb, color_image(k))
            assert np.array_equal(ep.frame("depth", k, trimmed=False), depth_image(k))  # lossless
            assert ep.encoded_frame("wrist", k, trimmed=False)[:2] == b"\xff\xd8"
        red = ep.frame("front", 3, trimmed=False)[20, 8 * 3 % (W - 20) + 10]
        assert red[0] > 200 and red[2] < 90


def test_frame_at_is_the_last_frame_at_or_before(episode_path):
    with Episode.open(episode_path) as ep:
        first = ep.frame_times("front", trimmed=False)[0]
        assert ep.frame_at("front", first - 1e-6, trimmed=False) is None
        assert ep.frame_at("front", first, trimmed=False)[0] == 0  # exactly at a capture time: that frame
        assert ep.frame_at("front", 0.0, trimmed=False)[0] == 0
        assert ep.frame_at("front", 0.0499, trimmed=False)[0] == 0
        assert ep.frame_at("front", 0.0501, trimmed=False)[0] == 1
        i, image = ep.frame_at("depth", 1.26, trimmed=False)
        assert i == 13 and np.array_equal(image, depth_image(13))
        assert ep.frame_at("front", 100.0, trimmed=False)[0] == N_FRAMES - 1


def test_trimmed_views_follow_the_kept_range(episode_path):
    with h5py.File(episode_path, "r+") as f:  # what a trim edit writes: two attributes
        f.attrs["kept_start"] = 0.5
        f.attrs["kept_end"] = 2.0
    with Episode.open(episode_path) as ep:
        assert ep.kept_range == (0.5, 2.0) and ep.duration == pytest.approx(1.5)
        assert ep.full_duration == pytest.approx(2.99)
        ticks = ep.ticks()
        assert ticks["t"][0] == pytest.approx(0.5) and ticks["t"][-1] == pytest.approx(2.0)
        assert ep.tick_count() == 151 and ep.tick_count(trimmed=False) == N_TICKS
        times = ep.frame_times("front")
        # the frame on screen at 0.5 s (captured at 0.45 s) up to the last one captured by 2.0 s (1.95 s)
        assert times[0] == pytest.approx(0.45) and times[-1] == pytest.approx(1.95)
        assert ep.frame_count("front") == len(times) == 16
        i, image = ep.frame_at("front", 0.5)
        assert i == 0 and looks_like(image, color_image(5))
        assert ep.frame_at("front", 0.4) is None  # before the kept range's first frame
        with pytest.raises(IndexError):
            ep.frame("front", 16)
        assert np.array_equal(ep.frame("depth", 15), depth_image(20))


def test_frames_that_do_not_fit_are_rejected_and_counted(tmp_path):
    writer = EpisodeWriter(tmp_path / "e.h5", META, JOINTS, CAMS)
    writer.append_ticks([tick(0)])
    assert not writer.append_frame("front", Frame("front", np.zeros((H, W + 1, 3), np.uint8), T0, T0, 0))
    assert not writer.append_frame("depth", Frame("depth", np.zeros((H, W, 3), np.uint8), T0, T0, 0))
    assert writer.append_frame("front", frame("front", 1))
    assert writer.rejected == {"front": 1, "wrist": 0, "depth": 1}
    assert writer.counts == {"ticks": 1, "front": 1, "wrist": 0, "depth": 0}
    writer.finalize(writer.rejected, success="false")
    with Episode.open(tmp_path / "e.h5") as ep:
        assert ep.meta["dropped"] == {"front": 1, "wrist": 0, "depth": 1} and ep.meta["success"] == "false"
        assert ep.frame_count("front", trimmed=False) == 1 and ep.frame_count("wrist") == 0


def test_the_file_gets_its_name_with_its_first_tick(tmp_path):
    path = tmp_path / "episode_000001.h5"
    writer = EpisodeWriter(path, META, JOINTS, CAMS)
    assert not path.exists() and (tmp_path / ".episode_000001.h5.partial").exists()
    writer.append_frame("front", frame("front", 0))
    with pytest.raises(ValueError, match="no tick"):
        writer.finalize({})
    assert list(tmp_path.iterdir()) == []

    writer = EpisodeWriter(path, META, JOINTS, CAMS)
    writer.append_ticks([tick(0)])
    assert path.exists() and not (tmp_path / ".episode_000001.h5.partial").exists()
    with pytest.raises(FileExistsError):
        EpisodeWriter(path, META, JOINTS, CAMS)
    writer.abort()


def test_an_aborted_episode_reads_like_a_crashed_one_and_repairs(tmp_path):
    path = tmp_path / "episode_000001.h5"
    writer = write_episode(path, n_ticks=120, n_frames=10)
    writer.flush()
    with pytest.raises(EpisodeError, match="probably still being recorded"):
        repair(path)  # its writer has just written to it
    writer.abort()
    with Episode.open(path) as ep:
        assert ep.status == "recording" and ep.issues
        assert ep.tick_count() == 120 and ep.frame_count("wrist", trimmed=False) == 10
    report = repair(path, idle_s=0)
    assert report.repaired and report.ticks_kept == 120 and report.frames_kept == dict.fromkeys(CAMS, 10)
    assert report.text().startswith("episode_000001.h5: repaired ") and "Kept 120 ticks" in report.text()
    assert repair(path).text() == "episode_000001.h5: complete and consistent, nothing to repair"
    with Episode.open(path) as ep:
        assert ep.status == "complete" and ep.issues == []
        assert "repaired" in ep.meta["notes"] and ep.meta["task"] == "pick the cube"
        assert np.array_equal(ep.frame("depth", 9, trimmed=False), depth_image(9))


def test_arms_with_more_joints_keep_their_raw_joint_input(tmp_path):
    joints = [f"j{i}" for i in range(8)]
    writer = EpisodeWriter(tmp_path / "e.h5", META, joints, {})
    writer.append_ticks([tick(i, n_joints=8) for i in range(3)])
    writer.finalize({})
    with Episode.open(tmp_path / "e.h5") as ep:
        raw = ep.ticks()["raw_input"]
        assert raw.shape == (3, 8) and np.array_equal(raw[2], np.float32(tick(2, 8).raw_input))
        assert ep.camera_names == []


def test_bad_metadata_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown episode metadata"):
        EpisodeWriter(tmp_path / "a.h5", {**META, "colour": "red"}, JOINTS, {})
    with pytest.raises(ValueError, match="needs rig"):
        EpisodeWriter(tmp_path / "a.h5", {k: v for k, v in META.items() if k != "rig"}, JOINTS, {})
    with pytest.raises(ValueError, match="success"):
        EpisodeWriter(tmp_path / "a.h5", {**META, "success": "maybe"}, JOINTS, {})
    with pytest.raises(ValueError, match="camera kind"):
        EpisodeWriter(tmp_path / "a.h5", META, JOINTS, {"ir": {**CAMS["front"], "kind": "infrared"}})
    assert list(tmp_path.iterdir()) == []


def test_finalize_does_not_grow_with_the_episode(tmp_path):
    """Ten minutes of ticks: finalize still only flips attributes (time printed, not asserted)."""
    writer = EpisodeWriter(tmp_path / "long.h5", META, JOINTS, {"front": CAMS["front"]})
    records = [tick(i) for i in range(100)]
    image = cv2.imencode(".jpg", color_image(0))[1].reshape(-1)
    for second in range(600):
        writer.append_ticks([dataclasses.replace(r, tick=second * 100 + r.tick, t=r.t + second) for r in records])
        writer.append_encoded("front", second, T0 + second, T0 + second, image)
        if second % 10 == 0:
            writer.flush()
    t = time.perf_counter()
    writer.finalize({})
    print(f"finalize after 600 s of ticks: {(time.perf_counter() - t) * 1e3:.1f} ms")
    with Episode.open(tmp_path / "long.h5") as ep:
        assert ep.tick_count() == 60_000 and ep.full_duration == pytest.approx(599.99)
        assert ep.frame_count("front") == 600
