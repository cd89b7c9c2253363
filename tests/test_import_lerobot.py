"""LeRobot v3.0 import: our export read back into episode files, and malformed folders named in one line."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recordings.edit import label, set_trim
from recordings.export_aloha import export_aloha
from recordings.export_lerobot import export_lerobot
from recordings.import_lerobot import LeRobotFormatError, import_lerobot
from recordings.reader import Episode

from synthetic_episodes import JOINTS, make_episode, read_parquet, source_frames  # isort: skip

BIN = Path(sys.executable).parent / "teleop-app"
FPS = 100


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    truth = {"a": make_episode(src / "a.h5", seed=1),
             "b": make_episode(src / "b.h5", seed=5, task="put the cube down")}
    set_trim(src / "b.h5", 0.63, 1.71)
    exported = tmp_path_factory.mktemp("lerobot") / "ds"
    export_lerobot([src / "a.h5", src / "b.h5"], exported, fps=FPS)
    out = tmp_path_factory.mktemp("imported") / "demos"
    report = import_lerobot(exported, out)
    return {"src": src, "truth": truth, "exported": exported, "out": out, "report": report}


def test_one_episode_file_per_lerobot_episode(round_trip):
    report, out = round_trip["report"], round_trip["out"]
    assert [p.name for p in report.written] == ["episode_000001.h5", "episode_000002.h5"]
    assert report.episodes == [0, 1] and sorted(p.name for p in out.iterdir()) == [p.name for p in report.written]
    with Episode.open(report.written[1]) as ep:
        assert ep.issues == [] and ep.status == "complete"
        assert ep.meta["task"] == "put the cube down" and ep.meta["success"] == "unknown"
        assert ep.meta["joint_names"] == list(JOINTS) and ep.meta["robot_type"] == "sim_so101"
        assert ep.meta["control_rate_hz"] == FPS and ep.camera_names == ["front"]
        assert ep.camera_info("front")["fps"] == FPS and "episode 1" in ep.meta["notes"]


def test_state_and_action_are_the_exported_values_bit_for_bit(round_trip):
    data = read_parquet(round_trip["exported"] / "data/chunk-000/file-000.parquet")
    for i, path in enumerate(round_trip["report"].written):
        rows = data["episode_index"] == i
        with Episode.open(path) as ep:
            ticks = ep.ticks()
            np.testing.assert_array_equal(ticks["state"], data["observation.state"][rows].astype(np.float32))
            np.testing.assert_array_equal(ticks["action"], data["action"][rows].astype(np.float32))
            np.testing.assert_allclose(ticks["t"], data["timestamp"][rows], rtol=0, atol=1e-6)
            # float32 rounding undone (up to the float64 rounding of monotonic time minus t0)
            np.testing.assert_allclose(ticks["t"], data["frame_index"][rows] / FPS, rtol=0, atol=1e-9)
            assert np.isnan(ticks["velocity"]).all() and np.isnan(ticks["gripper"]).all()  # not in LeRobot data
            assert set(ticks["source_names"][ticks["source"]]) == {"human"}


def test_kept_ranges_survive(round_trip):
    """The imported episode is what was kept: it starts at the kept start and lasts the kept range (on the grid)."""
    for path, kept in zip(round_trip["report"].written, [(0.0, round_trip["truth"]["a"]["t"][-1]), (0.63, 1.71)]):
        with Episode.open(path) as ep:
            assert ep.kept_range == (0.0, ep.full_duration)
            assert ep.full_duration == pytest.approx(np.floor((kept[1] - kept[0]) * FPS + 1e-6) / FPS, abs=1e-5)


def test_frames_keep_their_video_times_and_content(round_trip):
    for path, (name, start) in zip(round_trip["report"].written, [("a", 0.0), ("b", 0.63)]):
        with Episode.open(path) as ep:
            n = ep.frame_count("front")
            assert n == ep.tick_count()  # one video frame per grid row
            np.testing.assert_allclose(ep.frame_times("front"), np.arange(n) / FPS, atol=1e-6)
            images = [ep.frame("front", i) for i in range(n)]
        frame_t = round_trip["truth"][name]["frame_t"]
        expected = np.searchsorted(frame_t, start + np.arange(n) / FPS + 1e-9, "right") - 1
        np.testing.assert_array_equal(source_frames(images, frame_t), np.maximum(expected, 0))


def test_review_tools_work_on_imported_episodes(round_trip, tmp_path):
    """Trim, relabel and export again: the re-export holds the same numbers as the first export."""
    copy = tmp_path / "demos"
    shutil.copytree(round_trip["out"], copy)
    first = copy / "episode_000001.h5"
    label(first, success=True, task="stack the cube")
    set_trim(first, 0.5, 1.5)
    label(copy / "episode_000002.h5", success=False)
    again = tmp_path / "again"
    report = export_lerobot(sorted(copy.glob("*.h5")), again, fps=FPS, include_failures=True)
    assert len(report.exported) == 2
    before = read_parquet(round_trip["exported"] / "data/chunk-000/file-000.parquet")
    after = read_parquet(again / "data/chunk-000/file-000.parquet")
    rows_before = (before["episode_index"] == 0) & (before["frame_index"] >= 50) & (before["frame_index"] <= 150)
    np.testing.assert_array_equal(after["observation.state"][after["episode_index"] == 0],
                                  before["observation.state"][rows_before])
    np.testing.assert_array_equal(after["action"][after["episode_index"] == 1],
                                  before["action"][before["episode_index"] == 1])
    tasks = pq.read_table(again / "meta/tasks.parquet").column("task").to_pylist()
    assert tasks == ["stack the cube", "put the cube down"]
    # ALOHA cannot normalize a gripper whose opening was never measured: it says so
    aloha = export_aloha(sorted(copy.glob("*.h5")), tmp_path / "aloha", include_failures=True)
    assert not aloha.exported and "gripper" in aloha.skipped[0].reason


def test_success_and_interventions_where_present(round_trip, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(round_trip["exported"], ds)
    data_path = ds / "data/chunk-000/file-000.parquet"
    table = pq.read_table(data_path)
    episode, frame = table.column("episode_index").to_numpy(), table.column("frame_index").to_numpy()
    success = (episode == 0) & (frame == frame[episode == 0].max())  # episode 0 succeeds on its last frame
    intervention = (episode == 1) & (frame >= 20) & (frame < 40)
    table = table.append_column("next.success", pa.array(success)).append_column(
        "complementary_info.is_intervention", pa.array(intervention))
    pq.write_table(table, data_path)
    info = json.loads((ds / "meta/info.json").read_text())
    for key in ("next.success", "complementary_info.is_intervention"):
        info["features"][key] = {"dtype": "bool", "shape": [1], "names": None}
    (ds / "meta/info.json").write_text(json.dumps(info))
    report = import_lerobot(ds, tmp_path / "out")
    with Episode.open(report.written[0]) as ep:
        assert ep.meta["success"] == "true"
        ticks = ep.ticks()
        assert set(ticks["source_names"][ticks["source"]]) == {"policy"}
    with Episode.open(report.written[1]) as ep:
        assert ep.meta["success"] == "false"
        ticks = ep.ticks()
        names = ticks["source_names"][ticks["source"]]
        assert list(np.flatnonzero(names == "intervention")) == list(range(20, 40))


def test_import_appends_after_the_highest_index_and_never_overwrites(round_trip, tmp_path):
    out = tmp_path / "demos"
    (out / ".trash").mkdir(parents=True)
    shutil.copy(round_trip["report"].written[0], out / ".trash" / "episode_000007.h5")
    report = import_lerobot(round_trip["exported"], out)
    assert [p.name for p in report.written] == ["episode_000008.h5", "episode_000009.h5"]


def _break(ds: Path, how: str) -> str:
    """Damage a copy of the dataset; returns a piece of the expected error line."""
    if how == "no_info":
        (ds / "meta/info.json").unlink()
        return "no meta/info.json"
    if how == "version":
        info = json.loads((ds / "meta/info.json").read_text())
        info["codebase_version"] = "v2.1"
        (ds / "meta/info.json").write_text(json.dumps(info))
        return "codebase_version 'v2.1'"
    if how == "no_state":
        info = json.loads((ds / "meta/info.json").read_text())
        del info["features"]["observation.state"]
        (ds / "meta/info.json").write_text(json.dumps(info))
        return "'observation.state' is missing"
    if how == "no_video":
        (ds / "videos/observation.images.front/chunk-000/file-001.mp4").unlink()
        return "missing video videos/observation.images.front/chunk-000/file-001.mp4"
    if how == "short_data":
        path = ds / "data/chunk-000/file-000.parquet"
        table = pq.read_table(path)
        pq.write_table(table.slice(0, table.num_rows - 5), path)
        return "meta/episodes says"
    if how == "no_episodes":
        shutil.rmtree(ds / "meta/episodes")
        return "no meta/episodes/chunk-*/file-*.parquet"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["no_info", "version", "no_state", "no_video", "short_data", "no_episodes"])
def test_a_malformed_folder_gives_one_line_and_leaves_no_partial_episode(round_trip, tmp_path, how):
    ds = tmp_path / "ds"
    shutil.copytree(round_trip["exported"], ds)
    expected = _break(ds, how)
    with pytest.raises(LeRobotFormatError, match=re.escape(expected)):
        import_lerobot(ds, tmp_path / "lib")
    out = subprocess.run([str(BIN), "import", "lerobot", str(ds), "--out", str(tmp_path / "cli")],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and expected in out.stderr
    for folder in (tmp_path / "lib", tmp_path / "cli"):  # only whole episodes, never a partial one
        for path in folder.glob("*") if folder.exists() else []:
            with Episode.open(path) as ep:
                assert ep.status == "complete"


def test_cli_import(round_trip, tmp_path):
    out = subprocess.run([str(BIN), "import", "lerobot", str(round_trip["exported"]), "--out", str(tmp_path / "d")],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert "imported 2 episode(s)" in out.stdout and len(list((tmp_path / "d").glob("episode_*.h5"))) == 2


def test_episodes_concatenated_in_one_video_as_lerobot_writes_them(round_trip, tmp_path):
    """LeRobot's own layout: one mp4 per camera holding every episode, found by from/to_timestamp."""
    ds = tmp_path / "ds"
    shutil.copytree(round_trip["exported"], ds)
    videos = ds / "videos/observation.images.front/chunk-000"
    images = [decode_all(videos / f"file-{i:03d}.mp4") for i in range(2)]
    for i in range(2):
        (videos / f"file-{i:03d}.mp4").unlink()
    with av.open(str(videos / "file-000.mp4"), "w") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"g": "2", "crf": "18"})
        stream.width, stream.height, stream.pix_fmt = images[0][0].shape[1], images[0][0].shape[0], "yuv420p"
        for pts, image in enumerate(images[0] + images[1]):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = pts
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    episodes_path = ds / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(episodes_path)
    n0 = len(images[0])
    key = "videos/observation.images.front"
    columns = {f"{key}/file_index": [0, 0], f"{key}/from_timestamp": [0.0, n0 / FPS],
               f"{key}/to_timestamp": [n0 / FPS, (n0 + len(images[1])) / FPS]}
    for name, values in columns.items():
        i = table.column_names.index(name)
        table = table.set_column(i, name, pa.array(values, type=table.schema.field(name).type))
    pq.write_table(table, episodes_path)

    report = import_lerobot(ds, tmp_path / "out")
    for path, original, (name, start) in zip(report.written, round_trip["report"].written,
                                              [("a", 0.0), ("b", 0.63)]):
        with Episode.open(path) as ep, Episode.open(original) as orig:
            n = ep.frame_count("front")
            assert n == orig.frame_count("front")
            np.testing.assert_allclose(ep.frame_times("front"), orig.frame_times("front"), atol=1e-6)
            got = [ep.frame("front", i) for i in range(n)]
        frame_t = round_trip["truth"][name]["frame_t"]
        expected = np.searchsorted(frame_t, start + np.arange(n) / FPS + 1e-9, "right") - 1
        np.testing.assert_array_equal(source_frames(got, frame_t), np.maximum(expected, 0))


def decode_all(path):
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
