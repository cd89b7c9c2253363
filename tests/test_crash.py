"""SIGKILL a real recording process at random moments; what it leaves must open, repair, and hold
every sample older than one second.

The child (``recording_child.py``) drives the real Recorder and EpisodeWriter with
synthetic 100 Hz ticks and two 30 fps cameras, and prints every sample it
publishes, so the test knows exactly what must have reached the disk.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from recording_child import CAMERAS, expected_state
from recordings.reader import Episode
from recordings.repair import repair

CHILD = Path(__file__).with_name("recording_child.py")
MAX_LOSS_S = 1.0


@dataclass
class Killed:
    """What a killed child said before it died."""

    t_kill: float = 0.0
    starts: list[tuple[Path, float]] = field(default_factory=list)
    stops: dict[Path, float] = field(default_factory=dict)
    ticks: list[tuple[int, float, float]] = field(default_factory=list)  # index, t, published by
    frames: dict[str, list[tuple[int, float, float]]] = field(default_factory=lambda: {c: [] for c in CAMERAS})


def record_and_kill(folder: Path, delay_s: float, *args: str, before_kill: Callable[[], None] | None = None) -> Killed:
    """Start the child with ``args``, SIGKILL it ``delay_s`` after its first episode started, parse its output."""
    proc = subprocess.Popen([sys.executable, str(CHILD), str(folder), *args],
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    out = Killed()
    started = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            if not line.endswith("\n"):
                break  # the kill cut this line short
            kind, *rest = line.split()
            if kind == "tick":
                out.ticks.append((int(rest[0]), float(rest[1]), float(rest[2])))
            elif kind == "frame":
                out.frames[rest[0]].append((int(rest[1]), float(rest[2]), float(rest[3])))
            elif kind == "start":
                out.starts.append((Path(rest[0]), float(rest[1])))
                started.set()
            elif kind == "stop":
                out.stops[Path(rest[0])] = float(rest[1])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(60), "the recording child did not start"
        time.sleep(delay_s)
        if before_kill is not None:
            before_kill()
        out.t_kill = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    reader.join(5)
    assert proc.returncode == -signal.SIGKILL
    return out


def check_episode(path: Path, killed: Killed, t_start: float, t_stop: float | None) -> str:
    """Open and repair one episode the child left; returns how it fared: "complete" or "crashed".

    Samples stamped from ``t_start`` on and published by ``t_stop`` if it was stopped,
    else by a second before the kill, must be in it.
    """
    finished = t_stop is not None
    must_before = t_stop if finished else killed.t_kill - MAX_LOSS_S
    required = [i for i, t, done in killed.ticks if t >= t_start and done <= must_before]
    with Episode.open(path) as ep:  # a crashed file opens as it is, read-only
        outcome = "complete" if ep.status == "complete" and not ep.issues else "crashed"
        assert outcome == "complete" or not finished, (path, ep.issues)
    report = repair(path, idle_s=0)
    assert report.repaired == (outcome == "crashed")
    published = {i: t for i, t, _ in killed.ticks}
    with Episode.open(path) as ep:
        assert ep.status == "complete" and not ep.issues
        ticks = ep.ticks(trimmed=False)
        index = ticks["tick"].tolist()
        assert np.all(np.diff(index) == 1), "ticks must be contiguous"
        lost = sorted(set(required) - set(index))
        assert not lost, (f"{path.name}: lost ticks {lost} at {[published[i] - killed.t_kill for i in lost]} s "
                          f"from the kill (stopped at {t_stop and t_stop - killed.t_kill} s)")
        assert np.array_equal(ticks["state"], np.stack([expected_state(i) for i in index]))
        assert all(abs(t + ep.t0 - published[i]) < 1e-9 for i, t in zip(index, ticks["t"]) if i in published)
        for cam in CAMERAS:
            seqs = ep.h5[f"cameras/{cam}/seq"][: ep.frame_count(cam, trimmed=False)].tolist()
            required_frames = {s for s, t, done in killed.frames[cam] if t >= t_start and done <= must_before}
            assert required_frames <= set(seqs), f"{cam}: lost frames older than {MAX_LOSS_S} s"
            if seqs:
                assert ep.frame(cam, len(seqs) - 1, trimmed=False).shape == (120, 160, 3)
    return outcome


def check_folder(folder: Path, killed: Killed) -> list[str]:
    """Check every episode file in ``folder``; one the child created but did not announce has no requirements."""
    starts = dict(killed.starts)
    return [check_episode(path, killed, starts.get(path, float("inf")), killed.stops.get(path))
            for path in sorted(folder.glob("episode_*.h5"))]


@pytest.mark.parametrize("seed", range(5))
def test_sigkill_during_a_long_episode(tmp_path, seed):
    killed = record_and_kill(tmp_path, random.Random(seed).uniform(0.3, 3.0))
    assert check_folder(tmp_path, killed) == ["crashed"]


@pytest.mark.parametrize("seed", range(2))
def test_sigkill_while_flushing_all_the_time(tmp_path, seed):
    """The writer flushes on every pass (~100 times a second), so kills tend to land inside HDF5 flushes."""
    killed = record_and_kill(tmp_path, random.Random(10 + seed).uniform(0.5, 3.0), "--flush-s", "0")
    assert check_folder(tmp_path, killed) == ["crashed"]


@pytest.mark.parametrize("seed", range(2))
def test_sigkill_among_back_to_back_episodes(tmp_path, seed):
    """Short episodes back to back, so kills also land while files are created and finalized."""
    killed = record_and_kill(tmp_path, random.Random(100 + seed).uniform(1.0, 3.0), "--episode-s", "0.2")
    outcomes = check_folder(tmp_path, killed)
    assert outcomes.count("complete") >= 2 and outcomes.count("crashed") <= 1, outcomes


def test_a_live_episode_opens_from_another_process(tmp_path):
    """The library may list the folder while another process records into it."""
    seen = {}

    def look() -> None:
        (path,) = tmp_path.glob("episode_*.h5")
        with Episode.open(path) as ep:
            n = ep.frame_count("front", trimmed=False)
            last = ep.frame("front", n - 1, trimmed=False)  # untrimmed: it may come after the last tick written
            seen.update(status=ep.status, ticks=ep.tick_count(), frames=n, shape=last.shape)

    record_and_kill(tmp_path, 1.5, before_kill=look)
    assert seen["status"] == "recording" and seen["ticks"] >= 50 and seen["frames"] >= 15
    assert seen["shape"] == (120, 160, 3)
