"""ALOHA / ACT HDF5 export of real episode files, read back with plain h5py by the published layout."""

from __future__ import annotations

import cv2
import h5py
import numpy as np
import pytest

from drivers.types import Frame, RobotState, TickRecord
from recordings.edit import set_trim
from recordings.export_aloha import export_aloha, gripper_range
from recordings.writer import EpisodeWriter

from synthetic_episodes import (  # isort: skip
    GRIPPER_CLOSED,
    GRIPPER_OPEN,
    HEIGHT,
    JOINTS,
    T0,
    WIDTH,
    expected_rows,
    joint_positions,
    joint_targets,
    joint_velocities,
    make_episode,
    opening,
    source_frames,
)


def read(path):
    """An exported episode as ACT's loader sees it: compressed rows decoded with ``cv2.imdecode(row, 1)``."""
    with h5py.File(path, "r") as f:
        compressed = bool(f.attrs["compress"])
        rows = {cam: f[f"/observations/images/{cam}"][()] for cam in f["/observations/images"]}
        images = {cam: np.stack([cv2.imdecode(row, 1) for row in r]) if compressed else r for cam, r in rows.items()}
        return {
            "attrs": dict(f.attrs),
            "rows": rows,
            "compress_len": f["/compress_len"][()] if compressed else None,
            "qpos": f["/observations/qpos"][()],
            "qvel": f["/observations/qvel"][()],
            "effort": f["/observations/effort"][()],
            "effort_note": f["/observations/effort"].attrs["note"],
            "images": images,
            "chunks": {cam: f[f"/observations/images/{cam}"].chunks for cam in f["/observations/images"]},
            "action": f["/action"][()],
        }


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    src = tmp_path_factory.mktemp("episodes")
    truth = {"a": make_episode(src / "a.h5", seed=1)}
    make_episode(src / "failed.h5", success="false", seed=2)
    (src / "garbage.h5").write_bytes(b"\x00" * 4096)
    truth["b"] = make_episode(src / "b.h5", seed=3)
    set_trim(src / "b.h5", 0.41, 1.5)
    out = tmp_path_factory.mktemp("export") / "aloha"
    report = export_aloha([src / "a.h5", src / "failed.h5", src / "garbage.h5", src / "b.h5"], out, compress=False)
    compressed = tmp_path_factory.mktemp("export") / "aloha_jpeg"
    export_aloha([src / "a.h5", src / "b.h5"], compressed)
    return {"src": src, "out": out, "compressed": compressed, "report": report, "truth": truth}


def test_report_and_files(exported):
    report, src, out = exported["report"], exported["src"], exported["out"]
    assert report.exported == [src / "a.h5", src / "b.h5"] and report.fps == 50
    assert {s.path.name for s in report.skipped} == {"failed.h5", "garbage.h5"}
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "episode_0.hdf5", "episode_1.hdf5"]
    assert "last sample taken at or before" in (out / "README.md").read_text()


def test_layout_and_values(exported):
    out, truth = exported["out"], exported["truth"]
    for i, (name, kept) in enumerate([("a", (0.0, truth["a"]["t"][-1])), ("b", (0.41, 1.5))]):
        ep = read(out / f"episode_{i}.hdf5")
        T = int(np.floor((kept[1] - kept[0]) * 50 + 1e-6)) + 1
        assert T == exported["report"].frames[i]
        assert ep["attrs"]["sim"] == True and ep["attrs"]["compress"] == False  # noqa: E712 (numpy bools)
        assert ep["attrs"]["fps"] == 50 and ep["attrs"]["source_file"] == f"{name}.h5"
        for key in ("qpos", "qvel", "effort", "action"):
            assert ep[key].shape == (T, 6) and ep[key].dtype == np.float32
        assert ep["images"]["front"].shape == (T, HEIGHT, WIDTH, 3) and ep["images"]["front"].dtype == np.uint8
        assert ep["chunks"]["front"] == (1, HEIGHT, WIDTH, 3)
        assert not ep["effort"].any() and "zeros" in ep["effort_note"]

        grid_t = kept[0] + np.arange(T) / 50
        tick_t = truth[name]["t"][expected_rows(truth[name]["t"], grid_t)]
        q, cmd = joint_positions(tick_t), joint_targets(tick_t)
        np.testing.assert_allclose(ep["qpos"][:, :5], q[:, :5], atol=1e-6)
        np.testing.assert_allclose(ep["qpos"][:, 5], opening(q[:, 5]), atol=1e-6)
        np.testing.assert_allclose(ep["qvel"][:, :5], joint_velocities(tick_t)[:, :5], atol=1e-6)
        np.testing.assert_allclose(ep["action"][:, :5], cmd[:, :5], atol=1e-6)
        np.testing.assert_allclose(ep["action"][:, 5], opening(cmd[:, 5]), atol=1e-4)
        assert ep["action"][:, 5].min() >= 0 and ep["action"][:, 5].max() <= 1

        frame_t = truth[name]["frame_t"]
        np.testing.assert_array_equal(source_frames(list(ep["images"]["front"]), frame_t),
                                      expected_rows(frame_t, grid_t))


def test_compressed_layout_holds_the_same_images(exported):
    """ALOHA's compressed variant: (T, L) uint8 zero-padded JPEG rows and /compress_len (n_cams, T)."""
    for i in range(2):
        raw = read(exported["out"] / f"episode_{i}.hdf5")
        jpeg = read(exported["compressed"] / f"episode_{i}.hdf5")
        assert jpeg["attrs"]["compress"] == True  # noqa: E712 (numpy bool)
        T = len(raw["qpos"])
        rows, lengths = jpeg["rows"]["front"], jpeg["compress_len"]
        assert rows.dtype == np.uint8 and rows.ndim == 2 and rows.shape[0] == T
        assert jpeg["chunks"]["front"] == (1, rows.shape[1])
        assert lengths.shape == (1, T) and lengths.dtype == np.float32 and lengths.max() == rows.shape[1]  # one camera
        for row, n in zip(rows, lengths[0].astype(int)):
            assert row[0] == 0xFF and row[1] == 0xD8 and row[n - 2] == 0xFF and row[n - 1] == 0xD9
            assert not row[n:].any()
        assert jpeg["images"]["front"].shape == raw["images"]["front"].shape
        # re-encoded once more as JPEG: within a few grey levels of the raw export, same frame picked
        assert np.abs(jpeg["images"]["front"].astype(int) - raw["images"]["front"].astype(int)).max() <= 3
        for key in ("qpos", "qvel", "action"):
            np.testing.assert_array_equal(jpeg[key], raw[key])


def test_compressed_rows_decode_to_rgb_as_aloha_expects(tmp_path):
    """``cv2.imdecode(row, 1)`` returns the image in the order it was recorded (RGB), as in ALOHA's files;
    every camera's rows are padded to the longest JPEG of the episode."""
    cams = {name: {"width": 32, "height": 24, "fps": 10.0, "kind": "color", "intrinsics": None}
            for name in ("front", "wrist")}
    writer = EpisodeWriter(tmp_path / "red.h5", {"app_version": "test", "rig": "r", "robot_type": "sim_so101",
                                                 "control_rate_hz": 100.0, "task": "t", "success": "true"},
                           JOINTS, cams)
    angle = np.linspace(-0.17, 1.74, 30)
    q = np.zeros((30, 6))
    q[:, 5] = angle
    writer.append_ticks([
        TickRecord(tick=k, t=T0 + k / 100, t_sent=T0 + k / 100,
                   state=RobotState(t_host=T0 + k / 100, joint_pos=q[k], joint_vel=np.zeros(6),
                                    gripper=float(opening(angle[k])), ee_pos=np.zeros(3)),
                   command=q[k], raw_input=None, input_kind="none", source="human", safety=0, killed=False)
        for k in range(30)])
    red = np.zeros((24, 32, 3), np.uint8)
    red[..., 0] = 200
    noise = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)  # a much longer JPEG
    assert writer.append_frame("front", Frame("front", red, T0, T0, 0))
    assert writer.append_frame("wrist", Frame("wrist", noise, T0, T0, 0))
    writer.finalize({})
    export_aloha([tmp_path / "red.h5"], tmp_path / "out")
    with h5py.File(tmp_path / "out/episode_0.hdf5", "r") as f:
        front, wrist = f["/observations/images/front"][()], f["/observations/images/wrist"][()]
        lengths = f["/compress_len"][()]
    assert lengths.shape == (2, len(front)) and front.shape == wrist.shape == (len(front), lengths.max())
    assert lengths[1, 0] > 2 * lengths[0, 0] and not front[:, int(lengths[0, 0]):].any()
    image = cv2.imdecode(front[0], 1)
    assert abs(int(image[..., 0].mean()) - 200) <= 3 and image[..., 2].max() <= 3


def test_fps_option_and_failures(tmp_path):
    make_episode(tmp_path / "failed.h5", seconds=1.0, success="false")
    report = export_aloha([tmp_path / "failed.h5"], tmp_path / "out", fps=20, include_failures=True)
    ep = read(tmp_path / "out/episode_0.hdf5")
    assert report.frames == [len(ep["qpos"])] and report.fps == 20
    assert {len(ep[k]) for k in ("qpos", "qvel", "effort", "action")} | {len(ep["images"]["front"])} == {20}


def test_gripper_range_is_recovered_from_clipped_measurements():
    angle = np.linspace(-0.5, 2.0, 200)
    closed, opened = gripper_range(angle, opening(angle))
    assert closed == pytest.approx(GRIPPER_CLOSED, abs=1e-9) and opened == pytest.approx(GRIPPER_OPEN, abs=1e-9)
    assert gripper_range(np.full(10, 2.0), np.ones(10)) is None  # never left "open": nothing to fit


def test_a_still_gripper_borrows_the_range_fitted_on_an_earlier_episode(tmp_path):
    make_episode(tmp_path / "still.h5", seconds=0.5, still_gripper=True)
    make_episode(tmp_path / "moving.h5", seconds=0.5)
    report = export_aloha([tmp_path / "still.h5", tmp_path / "moving.h5", tmp_path / "still.h5"], tmp_path / "out")
    assert report.exported == [tmp_path / "moving.h5", tmp_path / "still.h5"]
    assert "cannot normalize the gripper" in report.skipped[0].reason
    still = read(tmp_path / "out/episode_1.hdf5")
    np.testing.assert_allclose(still["action"][:, 5], 0.5, atol=1e-4)
    np.testing.assert_allclose(still["qpos"][:, 5], 0.5, atol=1e-6)
