"""`teleop-app export` as a user runs it: defaults, options, and Ctrl+C leaving nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from synthetic_episodes import make_episode  # tests/ is on sys.path

BIN = Path(sys.executable).parent / "teleop-app"


def cli(*args):
    out = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=300,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return out


def test_lerobot_defaults_to_30_fps_and_aloha_to_compressed(tmp_path):
    (tmp_path / "data").mkdir()
    make_episode(tmp_path / "data" / "episode_000001.h5", seconds=1.0)
    cli("export", "lerobot", tmp_path / "data", "--out", tmp_path / "lerobot", "--workers", "2")
    info = json.loads((tmp_path / "lerobot/meta/info.json").read_text())
    assert info["fps"] == 30 and info["total_episodes"] == 1
    cli("export", "aloha", tmp_path / "data", "--out", tmp_path / "aloha")
    cli("export", "aloha", tmp_path / "data", "--out", tmp_path / "raw", "--raw")
    with h5py.File(tmp_path / "aloha/episode_0.hdf5") as jpeg, h5py.File(tmp_path / "raw/episode_0.hdf5") as raw:
        assert jpeg.attrs["compress"] and not raw.attrs["compress"]
        assert jpeg["/observations/images/front"].ndim == 2 and "compress_len" in jpeg
        assert raw["/observations/images/front"].ndim == 4 and "compress_len" not in raw


@pytest.mark.parametrize("workers", ["0", "2"])
def test_ctrl_c_cancels_and_leaves_no_dataset(tmp_path, workers):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(6):  # ~1200 frames of 640x480 at 100 fps: seconds of work
        make_episode(data / f"episode_{i + 1:06d}.h5", seconds=2.0, seed=i, width=640, height=480)
    out = tmp_path / "out"
    # its own session: Ctrl+C in a terminal signals the whole process group, worker processes included
    proc = subprocess.Popen([str(BIN), "export", "lerobot", str(data), "--out", str(out), "--fps", "100",
                             "--workers", workers], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    first = proc.stderr.readline()  # "export lerobot: 0/6 exporting episode_000001.h5": the export has begun
    assert first.startswith("export lerobot: 0/6"), first
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, first + err
    assert "export cancelled: nothing was written" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no out, no hidden .out.partial-*
