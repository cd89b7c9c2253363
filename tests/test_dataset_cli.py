"""The dataset commands end to end, as a user runs them: collect → list → info → trim → label → export → delete."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import av
import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from recordings.reader import Episode
from small_rig import small_rig_toml  # tests/ is on sys.path

BIN = Path(sys.executable).parent / "teleop-app"
TASK = "pick up the purple cube"

SMALL_RIG = small_rig_toml("sim_small", ("scripted",))


def cli(*args, check=True):
    out = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=300,
                         stdin=subprocess.DEVNULL)
    if check:
        assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rig = root / "small.toml"
    rig.write_text(SMALL_RIG)
    out = root / "demos"
    cli("collect", "--headless", "--input", "scripted", "--episodes", 2, "--seconds", 25, "--task", TASK,
        "--out", out, "--rig", rig, "--seed", 11, "--operator", "ci")
    return out


def listing(folder, *extra):
    return json.loads(cli("episodes", "list", folder, "--json", *extra).stdout)


def test_collect_records_labelled_episodes(dataset):
    table = cli("episodes", "list", dataset).stdout
    assert "driven by" in table and table.count("scripted 100%") == 2  # the expert's demos say so
    eps = listing(dataset)
    assert [Path(e["path"]).name for e in eps] == ["episode_000001.h5", "episode_000002.h5"]
    for e in eps:
        assert e["damaged"] is None and e["status"] == "complete"
        assert e["task"] == TASK and e["operator"] == "ci" and e["success"] == "true"
        assert 3 < e["duration_s"] < 25 and e["ticks"] > 300
        assert set(e["frames"]) == {"front", "wrist"} and min(e["frames"].values()) > 0
        assert e["source_mix"] == {"scripted": 1.0} and e["drivers"] == {"scripted": 1.0}  # the expert, not a human
        assert not any(e["dropped"].values())
        with Episode.open(e["path"]) as ep:  # both cameras recorded from the start to the end
            for cam in ("front", "wrist"):
                t = ep.frame_times(cam)
                assert t[0] < 1.0 and t[-1] > ep.duration - 1.0 and np.all(np.diff(t) > 0), (cam, t)
    with Episode.open(eps[0]["path"]) as ep:
        ticks = ep.ticks()
        assert np.all(np.diff(ticks["t"]) > 0)
        assert ep.meta["joint_names"][-1] == "gripper" and ep.meta["control_rate_hz"] == 100.0
        assert ep.frame("front", 0).shape == (120, 160, 3)


def test_info_trim_label_export_delete_restore(dataset, tmp_path):
    first, second = (Path(e["path"]) for e in listing(dataset))
    info = json.loads(cli("episodes", "info", first, "--json").stdout)
    assert info["task"] == TASK
    text = cli("episodes", "info", first).stdout
    assert TASK in text and "front" in text

    cli("episodes", "trim", first, "--start", 0.5, "--end", 2.5)
    trimmed = json.loads(cli("episodes", "info", first, "--json").stdout)
    assert trimmed["trimmed"] and trimmed["duration_s"] == pytest.approx(2.0, abs=0.02)
    assert trimmed["full_duration_s"] == pytest.approx(info["full_duration_s"])

    cli("episodes", "label", second, "--failure", "--task", "push the cube")
    relabelled = json.loads(cli("episodes", "info", second, "--json").stdout)
    assert relabelled["success"] == "false" and relabelled["task"] == "push the cube"

    # LeRobot export: only the successful, trimmed episode, every row on the 20 fps grid
    out = tmp_path / "lerobot"
    cli("export", "lerobot", dataset, "--out", out, "--fps", 20)
    meta = json.loads((out / "meta/info.json").read_text())
    assert meta["codebase_version"] == "v3.0" and meta["total_episodes"] == 1 and meta["fps"] == 20
    data = pq.read_table(out / "data/chunk-000/file-000.parquet").to_pydict()
    n = len(data["timestamp"])
    assert n == meta["total_frames"] == 41  # 2.0 s at 20 fps, both ends included
    np.testing.assert_allclose(data["timestamp"], np.arange(n) / 20, atol=1e-4)
    assert json.loads((out / "meta/stats.json").read_text())["action"]["mean"]
    for cam in ("front", "wrist"):
        videos = list((out / f"videos/observation.images.{cam}").rglob("*.mp4"))
        with av.open(str(videos[0])) as container:
            assert sum(1 for _ in container.decode(video=0)) == n

    # ALOHA export of both, failures included
    aloha = tmp_path / "aloha"
    cli("export", "aloha", dataset, "--out", aloha, "--include-failures")
    files = sorted(aloha.glob("episode_*.hdf5"))
    assert len(files) == 2
    with h5py.File(files[0], "r") as f:
        t = f["/observations/qpos"].shape[0]
        assert f["/action"].shape[0] == t == f["/observations/images/front"].shape[0]
        assert t == pytest.approx(2.0 * 50 + 1, abs=1)

    # delete to trash and restore
    cli("episodes", "delete", second)
    assert [Path(e["path"]).name for e in listing(dataset)] == ["episode_000001.h5"]
    assert [Path(e["path"]).name for e in listing(dataset, "--trash")] == ["episode_000002.h5"]
    cli("episodes", "restore", second)
    assert len(listing(dataset)) == 2


def test_apply_trim_rewrites_the_file(dataset, tmp_path):
    src = Path(listing(dataset)[1]["path"])
    copy = tmp_path / src.name
    shutil.copy(src, copy)
    with Episode.open(src) as ep:  # what the window [1 s, 3 s] holds, whatever the loop's jitter was
        t = ep.frame_times("front", trimmed=False)
        in_window = int(np.count_nonzero((t >= 1.0) & (t <= 3.0)))
        t = ep.ticks(trimmed=False)["t"]
        kept = t[(t >= 1.0) & (t <= 3.0)]
    cli("episodes", "trim", copy, "--start", 1.0, "--end", 3.0, "--apply")
    with Episode.open(copy) as ep:
        assert ep.kept_range == (0.0, pytest.approx(kept[-1] - kept[0], abs=1e-6)) and kept[-1] - kept[0] > 1.0
        assert ep.meta["kept_start"] is None and "trim applied" in ep.meta["notes"]
        ticks = ep.ticks()
        assert ticks["t"][0] == 0.0 and len(ticks["t"]) == len(kept)
        assert in_window > 0 and abs(ep.frame_count("front") - in_window) <= 1  # the frames of [1 s, 3 s]
        assert ep.frame("front", 0).shape == (120, 160, 3)
    assert copy.stat().st_size < src.stat().st_size


def test_check_finds_damaged_files_and_commands_explain(dataset, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(Path(listing(dataset)[0]["path"]), folder / "episode_000001.h5")
    (folder / "episode_000002.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 40)
    out = cli("episodes", "check", folder, check=False)
    assert out.returncode == 1 and "DAMAGED" in out.stdout and "1/2 episodes OK" in out.stdout
    listed = listing(folder)
    assert listed[1]["damaged"]
    for args in (["episodes", "info", folder / "episode_000002.h5"],
                 ["episodes", "trim", folder / "episode_000002.h5", "--start", "1"],
                 ["episodes", "label", folder / "episode_000002.h5", "--success"],
                 ["episodes", "trim", folder / "episode_000001.h5", "--start", "5", "--end", "1"],
                 ["episodes", "restore", folder / "nothing.h5"]):
        out = cli(*args, check=False)
        assert out.returncode in (1, 2) and (out.stderr.strip() or out.stdout.strip())


def test_a_reader_that_stops_early_ends_the_listing_quietly(tmp_path):
    """`teleop-app episodes list DIR --json | head` used to print "[Errno 32] Broken pipe"."""
    from command import BIN
    from synthetic_episodes import make_episode

    first = tmp_path / "episode_000001.h5"
    make_episode(first, seconds=0.5, seed=0)
    for i in range(2, 301):  # enough listing to overflow the pipe's buffer
        (tmp_path / f"episode_{i:06d}.h5").hardlink_to(first)
    out = subprocess.run(["bash", "-o", "pipefail", "-c", f'"{BIN}" episodes list --json "{tmp_path}" | head -c 20'],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith("[") and out.stderr == ""
    assert out.returncode == 141  # as a shell reports a writer stopped by SIGPIPE
