"""A disk that stops taking the episode: the recording stops at once, the operator is told, nothing crashes.

Real write errors from the kernel (a file-size limit makes writes past the end
fail, as a full disk does), through the real recorder, console and CLI.
"""

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recordings.reader import Episode
from recordings.recorder import Recorder, RecordingError, describe_write_error
from recordings.repair import repair

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent / "teleop-app"


def repaired(path: Path) -> Episode:
    """The failed episode after `episodes repair`: complete, with only whole, ordered rows."""
    report = repair(path, idle_s=0)
    assert report.repaired and report.ticks_kept > 0
    ep = Episode.open(path)
    assert ep.status == "complete"
    t = ep.ticks(trimmed=False)["t"]
    assert np.all(np.isfinite(t)) and np.all(np.diff(t) > 0)
    return ep


def test_the_console_stops_a_recording_the_disk_refuses_and_keeps_running(tmp_path):
    out = subprocess.run([sys.executable, str(HERE / "write_failure_child.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr  # it used to die with SIGSEGV closing the failed file
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert not seen["recording"] and seen["stopped_after_s"] < 15
    assert seen["outcome"] == "failed" and seen["message"].startswith("RECORDING STOPPED: episode_000001.h5")
    assert "size limit for files" in seen["error"] and "teleop-app episodes repair" in seen["error"]
    assert seen["ticks_after_failure"] >= 25 and seen["mode"] == "teleop" and not seen["killed"]
    with Episode.open(seen["second"]) as ep:  # once there is room again, recording works as before
        assert ep.status == "complete" and ep.meta["success"] == "true"
    with repaired(Path(seen["path"])) as ep:
        assert ep.duration > 1.0 and ep.meta["task"] == "pick up the cube"


def test_collect_stops_at_a_failed_write_with_one_line_and_exit_1(tmp_path):
    def limit():  # in the child: writes past 120 kB fail (a fresh episode file is ~100 kB)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (120_000, resource.RLIM_INFINITY))

    out = subprocess.run([str(BIN), "collect", "--headless", "--input", "scripted", "--episodes", "3", "--seconds",
                          "20", "--task", "pick", "--out", str(tmp_path), "--no-cameras", "--seed", "3"],
                         capture_output=True, text=True, timeout=120, preexec_fn=limit, stdin=subprocess.DEVNULL,
                         env=dict(os.environ, MUJOCO_GL="egl"))
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert "error: recording stopped: episode_000001.h5 was not finalized: the file reached the size limit" \
           in out.stderr
    assert [p.name for p in tmp_path.glob("episode_*.h5")] == ["episode_000001.h5"]  # no second episode tried
    with repaired(tmp_path / "episode_000001.h5") as ep:
        assert ep.tick_count() > 100


def test_write_errors_name_the_fix():
    assert describe_write_error(OSError(errno.ENOSPC, "No space left on device")).startswith("the disk is full")
    hdf5 = RuntimeError("Unable to synchronously flush file (file write failed: time = Tue Nov 24 04:04:43 2026\n"
                        ", filename = 'x.h5', file descriptor = 3, errno = 28, error message = 'No space left on "
                        "device', buf = 0x1, total write size = 44016)")
    assert describe_write_error(hdf5) == "the disk is full: free space on it, or record to another folder"
    assert describe_write_error(OSError(errno.EDQUOT, "Disk quota exceeded")).startswith("your disk quota")
    assert describe_write_error(ValueError("odd\nsecond line")) == "ValueError: odd"


def test_an_episode_does_not_start_without_room(sim_rig, tmp_path):
    sim_rig.start()
    free = shutil.disk_usage(tmp_path).free
    recorder = Recorder.for_rig(sim_rig, tmp_path / "ds", min_free_bytes=free + (1 << 30))  # more than there is
    with pytest.raises(RecordingError, match=r"only \d+ MB free for .*: free space first"):
        recorder.start_episode("pick")
    assert not recorder.recording and not list((tmp_path / "ds").iterdir())
