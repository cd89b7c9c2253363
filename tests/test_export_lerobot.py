"""LeRobotDataset v3.0 export of episodes written by the real EpisodeWriter, read back with pyarrow and PyAV.

The synthetic episodes know their truth: joint angles are functions of the tick
time, and each camera frame's colour encodes its capture time,
so every exported row and decoded video frame can be checked against the
sample that should have been picked for its grid time. Frames are grey (a
luma change survives H.264 and JPEG best): level = 120 * t, 8 levels between
frames at 15 fps, while the codecs here are off by a level or two.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from recordings.edit import set_trim
from recordings.export_lerobot import export_lerobot

from synthetic_episodes import (  # isort: skip
    JOINTS,
    HEIGHT,
    WIDTH,
    joint_positions,
    joint_targets,
    colour_of,
    source_frames,
    make_episode,
    expected_rows,
    decode,
    read_parquet,
)

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Two good episodes (the second trimmed), a failure, an unlabelled one, garbage, and one with broken JPEGs."""
    src = tmp_path_factory.mktemp("episodes")
    truth = {"a": make_episode(src / "a.h5", seed=1)}
    make_episode(src / "failed.h5", success="false", seed=2)
    make_episode(src / "unlabelled.h5", success="unknown", seed=3)
    (src / "garbage.h5").write_bytes(b"this is not an episode" * 100)
    make_episode(src / "broken_frames.h5", seed=4)
    with h5py.File(src / "broken_frames.h5", "r+") as f:
        data = f["cameras/front/data"]
        data[data.shape[0] // 2:] = 0  # frames in the second half no longer decode
    truth["b"] = make_episode(src / "b.h5", seed=5, task="put the cube down")
    set_trim(src / "b.h5", 0.63, 1.71)
    order = ["a", "failed", "unlabelled", "garbage", "broken_frames", "b"]
    out = tmp_path_factory.mktemp("export") / "dataset"
    calls = []
    report = export_lerobot([src / f"{name}.h5" for name in order], out, fps=100,
                            progress=lambda done, total, msg: calls.append((done, total, msg)))
    return {"out": out, "report": report, "truth": truth, "src": src, "calls": calls}


def test_report_lists_exported_and_skipped(exported):
    report, src = exported["report"], exported["src"]
    assert report.exported == [src / "a.h5", src / "b.h5"]
    assert report.fps == 100
    reasons = {s.path.name: s.reason for s in report.skipped}
    assert set(reasons) == {"failed.h5", "unlabelled.h5", "garbage.h5", "broken_frames.h5"}
    assert "'false'" in reasons["failed.h5"] and "'unknown'" in reasons["unlabelled.h5"]
    assert "not an HDF5 file" in reasons["garbage.h5"]
    assert "cannot be decoded" in reasons["broken_frames.h5"]
    assert exported["calls"][0] == (0, 6, "exporting a.h5") and exported["calls"][-1] == (6, 6, "done")
    text = report.text()
    assert text.startswith("exported 2 episode(s), 309 frames at 100 fps") and "  garbage.h5: " in text


def test_files_of_the_dataset(exported):
    out = exported["out"]
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert names == [
        "README.md",
        "data/chunk-000/file-000.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
        "meta/info.json",
        "meta/stats.json",
        "meta/tasks.parquet",
        "videos/observation.images.front/chunk-000/file-000.mp4",
        "videos/observation.images.front/chunk-000/file-001.mp4",  # the broken episode left nothing behind
    ]
    assert not list(out.parent.glob(".dataset.partial-*"))
    assert "last sample taken at or before" in (out / "README.md").read_text()


def test_info_json(exported):
    info = json.loads((exported["out"] / "meta/info.json").read_text())
    lengths = exported["report"].frames
    assert info["codebase_version"] == "v3.0"
    assert info["robot_type"] == "sim_so101"
    assert info["fps"] == 100
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (2, sum(lengths), 2)
    assert info["splits"] == {"train": "0:2"}
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    features = info["features"]
    for key in ("observation.state", "action"):
        assert features[key] == {"dtype": "float32", "shape": [6], "names": [f"{j}.pos" for j in JOINTS]}
    video = features["observation.images.front"]
    assert video["dtype"] == "video" and video["shape"] == [HEIGHT, WIDTH, 3]
    assert video["names"] == ["height", "width", "channels"]
    assert video["info"]["video.codec"] == "h264" and video["info"]["video.pix_fmt"] == "yuv420p"
    assert video["info"]["video.fps"] == 100 and video["info"]["video.is_depth_map"] is False
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert features[key]["shape"] == [1] and features[key]["names"] is None


def test_rows_sit_on_the_grid_and_hold_the_right_samples(exported):
    out, truth = exported["out"], exported["truth"]
    data = read_parquet(out / "data/chunk-000/file-000.parquet")
    episodes = read_parquet(out / "meta/episodes/chunk-000/file-000.parquet")
    n = len(data["index"])
    np.testing.assert_array_equal(data["index"], np.arange(n))
    assert np.all(np.abs(data["timestamp"] - data["frame_index"] / 100) < 1e-4)
    np.testing.assert_array_equal(episodes["length"], exported["report"].frames)
    np.testing.assert_array_equal(episodes["dataset_from_index"], [0, episodes["length"][0]])
    np.testing.assert_array_equal(episodes["dataset_to_index"], np.cumsum(episodes["length"]))
    for ep, (name, kept) in enumerate([("a", (0.0, truth["a"]["t"][-1])), ("b", (0.63, 1.71))]):
        rows = data["episode_index"] == ep
        assert rows.sum() == episodes["length"][ep] == int(np.floor((kept[1] - kept[0]) * 100 + 1e-6)) + 1
        np.testing.assert_array_equal(data["frame_index"][rows], np.arange(rows.sum()))
        grid_t = kept[0] + data["frame_index"][rows] / 100
        tick_t = truth[name]["t"][expected_rows(truth[name]["t"], grid_t)]
        np.testing.assert_allclose(data["observation.state"][rows], joint_positions(tick_t).astype(np.float32),
                                   rtol=0, atol=1e-6)
        np.testing.assert_allclose(data["action"][rows], joint_targets(tick_t).astype(np.float32), rtol=0, atol=1e-6)


def test_trim_is_honoured(exported):
    data = read_parquet(exported["out"] / "data/chunk-000/file-000.parquet")
    truth = exported["truth"]["b"]["t"]
    first = data["observation.state"][data["episode_index"] == 1][0]
    last_tick_before_start = truth[truth <= 0.63][-1]
    np.testing.assert_allclose(first, joint_positions(np.array([last_tick_before_start]))[0], atol=1e-6)


def test_tasks(exported):
    out = exported["out"]
    tasks = pq.read_table(out / "meta/tasks.parquet")
    assert dict(zip(tasks.column("task").to_pylist(), tasks.column("task_index").to_pylist())) == {
        "pick up the cube": 0, "put the cube down": 1}
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    episodes = read_parquet(out / "meta/episodes/chunk-000/file-000.parquet")
    assert [list(t) for t in episodes["tasks"]] == [["pick up the cube"], ["put the cube down"]]
    data = read_parquet(out / "data/chunk-000/file-000.parquet")
    np.testing.assert_array_equal(data["task_index"], data["episode_index"])


def test_videos_hold_the_last_frame_captured_at_or_before_each_grid_time(exported):
    out, truth = exported["out"], exported["truth"]
    episodes = read_parquet(out / "meta/episodes/chunk-000/file-000.parquet")
    key = "videos/observation.images.front"
    for ep, (name, start) in enumerate([("a", 0.0), ("b", 0.63)]):
        assert episodes[f"{key}/chunk_index"][ep] == 0 and episodes[f"{key}/file_index"][ep] == ep
        assert episodes[f"{key}/from_timestamp"][ep] == 0.0
        length = episodes["length"][ep]
        assert episodes[f"{key}/to_timestamp"][ep] == pytest.approx(length / 100)
        times, images = decode(out / f"{key}/chunk-000/file-{ep:03d}.mp4")
        assert len(images) == length
        np.testing.assert_allclose(times, np.arange(length) / 100, atol=1e-4)
        frame_t = truth[name]["frame_t"]
        expected = expected_rows(frame_t, start + np.arange(length) / 100)
        np.testing.assert_array_equal(source_frames(images, frame_t), expected)
        assert images[0].shape == (HEIGHT, WIDTH, 3)


def test_stats(exported):
    out = exported["out"]
    stats = json.loads((out / "meta/stats.json").read_text())
    data = read_parquet(out / "data/chunk-000/file-000.parquet")
    for key in ("observation.state", "action", "timestamp", "index"):
        values = data[key].astype(np.float64).reshape(len(data[key]), -1)
        s = {k: np.array(v) for k, v in stats[key].items()}
        np.testing.assert_allclose(s["min"], values.min(0), rtol=1e-6)
        np.testing.assert_allclose(s["max"], values.max(0), rtol=1e-6)
        np.testing.assert_allclose(s["mean"], values.mean(0), rtol=1e-6)
        np.testing.assert_allclose(s["std"], values.std(0), rtol=1e-6)
        np.testing.assert_allclose(s["q01"], np.quantile(values, 0.01, axis=0), rtol=1e-6)
        np.testing.assert_allclose(s["q50"], np.quantile(values, 0.5, axis=0), rtol=1e-6)
        np.testing.assert_allclose(s["q99"], np.quantile(values, 0.99, axis=0), rtol=1e-6)
        assert s["count"].tolist() == [len(values)]
    image = {k: np.array(v) for k, v in stats["observation.images.front"].items()}
    for name in ("min", "max", "mean", "std", "q01", "q10", "q50", "q90", "q99"):
        assert image[name].shape == (3, 1, 1) and np.all((image[name] >= 0) & (image[name] <= 1))
    assert exported["report"].frames == [200, 109]
    assert image["count"].tolist() == [100 + 100]  # LeRobot's sampling: 100 frames per episode up to ~460
    # Grey frames: the channels agree; levels run from ~0 (t = 0) to 120 * ~1.95 s.
    np.testing.assert_allclose(image["mean"][0], image["mean"][2], atol=0.01)
    assert image["min"][0, 0, 0] < 0.02 and image["max"][0, 0, 0] == pytest.approx(colour_of(1.95) / 255, abs=0.03)

    episodes = read_parquet(out / "meta/episodes/chunk-000/file-000.parquet")
    for ep in range(2):
        rows = data["observation.state"][data["episode_index"] == ep].astype(np.float64)
        np.testing.assert_allclose(episodes["stats/observation.state/mean"][ep], rows.mean(0), rtol=1e-6)
        np.testing.assert_allclose(episodes["stats/observation.state/q90"][ep], np.quantile(rows, 0.9, axis=0),
                                   rtol=1e-6)
        assert episodes["stats/observation.state/count"][ep].tolist() == [len(rows)]
        assert np.array(episodes["stats/observation.images.front/mean"][ep]).shape == (3, 1, 1)
    # Dataset image stats combine the episodes' exactly (every frame has as many pixels).
    key = "stats/observation.images.front"
    counts = np.array([c[0] for c in episodes[f"{key}/count"]])
    means = np.array([np.array(m) for m in episodes[f"{key}/mean"]])
    np.testing.assert_allclose(image["mean"], np.tensordot(counts / counts.sum(), means, axes=1), atol=1e-12)
    np.testing.assert_allclose(image["min"], np.min([np.array(m) for m in episodes[f"{key}/min"]], axis=0))
    np.testing.assert_allclose(image["max"], np.max([np.array(m) for m in episodes[f"{key}/max"]], axis=0))


def test_failures_on_request_at_another_fps(tmp_path):
    make_episode(tmp_path / "ok.h5", seconds=1.0)
    make_episode(tmp_path / "failed.h5", seconds=1.0, success="false", seed=1)
    report = export_lerobot([tmp_path / "ok.h5", tmp_path / "failed.h5"], tmp_path / "out", fps=30,
                            include_failures=True)
    assert report.exported == [tmp_path / "ok.h5", tmp_path / "failed.h5"] and report.fps == 30
    data = read_parquet(tmp_path / "out/data/chunk-000/file-000.parquet")
    assert np.all(np.abs(data["timestamp"] - data["frame_index"] / 30) < 1e-4)
    times, images = decode(tmp_path / "out/videos/observation.images.front/chunk-000/file-001.mp4")
    assert len(images) == report.frames[1] == (data["episode_index"] == 1).sum()
    np.testing.assert_allclose(times, np.arange(len(images)) / 30, atol=1e-4)


def test_episode_with_other_cameras_is_skipped(tmp_path):
    make_episode(tmp_path / "a.h5", seconds=0.5)
    make_episode(tmp_path / "big.h5", seconds=0.5, width=80, height=60)
    report = export_lerobot([tmp_path / "a.h5", tmp_path / "big.h5"], tmp_path / "out")
    assert report.exported == [tmp_path / "a.h5"]
    assert "cameras" in report.skipped[0].reason and "80" in report.skipped[0].reason


def test_notes_for_a_crashed_recording_and_a_depth_stream(tmp_path):
    make_episode(tmp_path / "crashed.h5", seconds=0.5, depth=True, crash=True)
    report = export_lerobot([tmp_path / "crashed.h5"], tmp_path / "out")
    assert report.exported == [tmp_path / "crashed.h5"]
    assert any("crashed.h5: exported although status is 'recording'" in note for note in report.notes)
    assert "crashed.h5: depth stream(s) depth not exported" in report.notes
    info = json.loads((tmp_path / "out/meta/info.json").read_text())
    assert [k for k in info["features"] if k.startswith("observation.images")] == ["observation.images.front"]


def test_nothing_to_export_writes_nothing(tmp_path):
    make_episode(tmp_path / "failed.h5", seconds=0.5, success="false")
    report = export_lerobot([tmp_path / "failed.h5", tmp_path / "missing.h5"], tmp_path / "out")
    assert report.exported == [] and len(report.skipped) == 2
    assert report.text().startswith("nothing exported")
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == [tmp_path / "failed.h5"]


def test_refuses_a_non_empty_out_dir_and_unknown_codecs(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        export_lerobot([], tmp_path / "out")
    with pytest.raises(ValueError, match="no H.264/HEVC/AV1 video encoder"):
        export_lerobot([], tmp_path / "other", codec="nonexistent")


def test_av1_codec(tmp_path):
    make_episode(tmp_path / "a.h5", seconds=0.5)
    export_lerobot([tmp_path / "a.h5"], tmp_path / "out", codec="libsvtav1")
    info = json.loads((tmp_path / "out/meta/info.json").read_text())
    assert info["features"]["observation.images.front"]["info"]["video.codec"] == "av1"
    times, images = decode(tmp_path / "out/videos/observation.images.front/chunk-000/file-000.mp4")
    assert len(images) == info["total_frames"]
    np.testing.assert_allclose(times, np.arange(len(images)) / 30, atol=1e-4)  # the default fps


def test_image_stats_from_histograms_match_numpy():
    from recordings.export_lerobot import _image_stats
    from recordings.export_video import histograms

    rng = np.random.default_rng(7)
    frames = rng.integers(0, 256, (20, 12, 16, 3), dtype=np.uint8)
    frames[..., 1] = frames[..., 1] // 4 + 60  # a channel with a narrower range
    stats = _image_stats(histograms(frames[:5]) + histograms(frames[5:]), 20)  # two episodes add up
    pixels = frames.reshape(-1, 3) / 255.0
    expected = {"min": pixels.min(0), "max": pixels.max(0), "mean": pixels.mean(0), "std": pixels.std(0)}
    expected |= {f"q{round(q * 100):02d}": np.quantile(pixels, q, axis=0) for q in (0.01, 0.1, 0.5, 0.9, 0.99)}
    for name, value in expected.items():
        assert stats[name].shape == (3, 1, 1)
        np.testing.assert_allclose(stats[name].ravel(), value, atol=1e-12)
    assert stats["count"].tolist() == [20]


def test_default_fps_is_30_whatever_the_control_rate(tmp_path):
    make_episode(tmp_path / "a.h5", seconds=1.0)  # recorded at 100 Hz
    report = export_lerobot([tmp_path / "a.h5"], tmp_path / "out")
    info = json.loads((tmp_path / "out/meta/info.json").read_text())
    assert report.fps == info["fps"] == 30 and info["features"]["observation.images.front"]["info"]["video.fps"] == 30
    assert report.frames == [int(np.floor(make_episode_duration(tmp_path / "a.h5") * 30 + 1e-6)) + 1]


def make_episode_duration(path):
    with h5py.File(path, "r") as f:
        t = f["ticks/t"][()]
    return t[-1] - t[0]


def test_worker_processes_write_the_same_dataset_as_the_serial_path(tmp_path):
    """Two cameras encoded in two processes give byte-identical videos, tables and stats to workers=0."""
    make_episode(tmp_path / "a.h5", seconds=1.0, depth=True)
    make_episode(tmp_path / "b.h5", seconds=0.7, seed=3)
    paths = [tmp_path / "a.h5", tmp_path / "b.h5"]
    serial = export_lerobot(paths, tmp_path / "serial", workers=0)
    parallel = export_lerobot(paths, tmp_path / "parallel", workers=2)
    assert serial.frames == parallel.frames and serial.exported == parallel.exported == paths
    files = sorted(p.relative_to(tmp_path / "serial") for p in (tmp_path / "serial").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "parallel") for p in (tmp_path / "parallel").rglob("*")
                           if p.is_file())
    for name in files:
        if name.suffix in (".mp4", ".json"):
            assert (tmp_path / "serial" / name).read_bytes() == (tmp_path / "parallel" / name).read_bytes(), name
    for name in ("data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet"):
        assert pq.read_table(tmp_path / "serial" / name).equals(pq.read_table(tmp_path / "parallel" / name))


@pytest.mark.parametrize("workers", [0, 2])
def test_cancel_leaves_nothing_behind(tmp_path, workers):
    import threading

    make_episode(tmp_path / "a.h5", seconds=1.0)
    make_episode(tmp_path / "b.h5", seconds=1.0, seed=2)
    cancel = threading.Event()
    calls = []

    def progress(done, total, message):
        calls.append(message)
        if "frames" in message:  # cancel while the first episode's video is being encoded
            cancel.set()

    from recordings.export_common import Cancelled

    with pytest.raises(Cancelled):
        export_lerobot([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "out", workers=workers,
                       progress=progress, cancel=cancel)
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "b.h5"]
    assert any(m.startswith("exporting a.h5: ") and m.endswith(" frames") for m in calls)
    assert not any("b.h5" in m for m in calls)


@pytest.mark.parametrize("sampling", ["420", "422", "444"])
def test_stats_samples_are_the_rgb_pixels_of_the_stored_jpeg(sampling):
    """The sampled pixels come straight from the JPEG's planes: within JPEG upsampling noise of a full decode."""
    import av
    import cv2

    from recordings.export_video import strided_rgb

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:240, 0:320]
    image = np.stack([xx * 255 // 319, yy * 255 // 239, (xx + yy) % 256], axis=-1).astype(np.uint8)
    image = np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)
    factor = {"420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
              "444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444}[sampling]
    ok, jpeg = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                                                      factor])
    frame = av.CodecContext.create("mjpeg", "r").decode(av.Packet(jpeg.tobytes()))[0]
    assert frame.format.name == f"yuvj{sampling}p"
    full = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    sampled = strided_rgb(frame, 3)
    assert sampled.shape == full[::3, ::3].shape and sampled.dtype == np.uint8
    assert np.abs(sampled.astype(int) - full[::3, ::3]).mean() < 1.5
