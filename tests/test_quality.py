"""Quality flags on real episode files: written by the EpisodeWriter, then given the defect each flag is for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from recordings.analysis.quality import check_dataset, episode_quality

from synthetic_episodes import make_episode  # isort: skip

BIN = Path(sys.executable).parent / "teleop-app"


def edit(path, **columns):
    """Rewrite whole columns of an episode file in place (``ticks/t=...`` as ``ticks__t``)."""
    with h5py.File(path, "r+") as f:
        for key, fn in columns.items():
            ds = f[key.replace("__", "/")]
            ds[...] = fn(ds[()])


def test_a_clean_episode_has_no_flags(tmp_path):
    make_episode(tmp_path / "e.h5", seconds=2.0)
    q = episode_quality(tmp_path / "e.h5")
    assert q.damaged is None and q.flags == {}
    assert q.rate_hz == pytest.approx(100, rel=0.03) and q.worst_rate_hz >= 95
    assert q.camera_seq_gaps == {"front": 0} and q.joint_travel_rad > 0.9


def test_loop_stall_overruns_and_rate_dip(tmp_path):
    make_episode(tmp_path / "stall.h5", seconds=2.0)
    edit(tmp_path / "stall.h5", ticks__t=lambda t: t + np.where(np.arange(len(t)) >= 100, 0.2, 0.0))
    q = episode_quality(tmp_path / "stall.h5")
    assert set(q.flags) >= {"stall"} and "no tick for 2" in q.flags["stall"]
    make_episode(tmp_path / "slow.h5", seconds=2.0)  # from tick 50 on, every period 8 ms longer
    edit(tmp_path / "slow.h5", ticks__t=lambda t: t + 0.008 * np.maximum(np.arange(len(t)) - 50, 0))
    q = episode_quality(tmp_path / "slow.h5")
    assert {"overruns", "rate_dip"} <= set(q.flags) and "stall" not in q.flags
    assert q.overrun_share > 0.5 and q.worst_rate_hz < 60


def test_dropped_samples_starved_ticks_and_camera_gaps(tmp_path):
    path = tmp_path / "e.h5"
    make_episode(path, seconds=2.0)
    edit(path, ticks__tick=lambda k: k + np.where(np.arange(len(k)) >= 120, 3, 0),
         ticks__safety=lambda s: np.where((np.arange(len(s)) >= 40) & (np.arange(len(s)) < 47), 32, s).astype(np.uint8),
         cameras__front__seq=lambda s: s + np.where(np.arange(len(s)) >= 10, 2, 0))
    with h5py.File(path, "r+") as f:
        f.attrs["dropped"] = json.dumps({"front": 4})
    q = episode_quality(path)
    assert q.tick_gaps == 3 and q.dropped == 4 and q.starved_ticks == 7 and q.camera_seq_gaps == {"front": 2}
    assert {"dropped", "starved", "camera_gap"} <= set(q.flags)
    assert "front: 2 frame(s) skipped" in q.flags["camera_gap"]


def test_a_long_capture_gap_is_a_camera_gap(tmp_path):
    make_episode(tmp_path / "e.h5", seconds=2.0)
    edit(tmp_path / "e.h5", cameras__front__t_capture=lambda t: t + np.where(np.arange(len(t)) >= 12, 0.3, 0.0))
    q = episode_quality(tmp_path / "e.h5")
    assert q.camera_longest_gap_s["front"] > 0.3 and "no frame for" in q.flags["camera_gap"]


def test_still_and_near_still(tmp_path):
    make_episode(tmp_path / "still.h5", seconds=2.0, idle=(1.0, 1.0), still_gripper=True, noise=0.001)
    assert "still" in episode_quality(tmp_path / "still.h5").flags
    make_episode(tmp_path / "small.h5", seconds=2.0, idle=(0.9, 1.0))  # 0.1 s of motion
    q = episode_quality(tmp_path / "small.h5")
    assert "near_still" in q.flags and "still" not in q.flags


def test_jerk_ranking_and_length_outliers_against_the_dataset(tmp_path):
    paths = []
    for i, seconds in enumerate((1.0, 1.0, 1.0, 1.0, 2.5, 0.4)):
        paths.append(tmp_path / f"e{i}.h5")
        make_episode(paths[-1], seconds=seconds, seed=i)
    rng = np.random.default_rng(0)
    edit(paths[2], ticks__action=lambda a: a + rng.normal(0, 0.01, a.shape).astype(np.float32))
    (tmp_path / "garbage.h5").write_bytes(b"nothing")
    result = check_dataset([*paths, tmp_path / "garbage.h5"])
    by_name = {q.path.name: q for q in result}
    assert by_name["e2.h5"].jerk_rank == 1 and "jerky" in by_name["e2.h5"].flags
    assert [n for n, q in by_name.items() if "jerky" in q.flags] == ["e2.h5"]
    assert sorted(q.jerk_rank for q in result if q.damaged is None) == [1, 2, 3, 4, 5, 6]
    assert "long" in by_name["e4.h5"].flags and "short" in by_name["e5.h5"].flags
    assert by_name["garbage.h5"].damaged and by_name["garbage.h5"].flags == {}
    assert json.dumps(by_name["e0.h5"].to_dict())  # JSON-ready


def test_cli_list_and_check_show_flags(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    make_episode(data / "episode_000001.h5", seconds=2.0)
    make_episode(data / "episode_000002.h5", seconds=2.0, idle=(1.0, 1.0), still_gripper=True, seed=1)
    run = lambda *a: subprocess.run([str(BIN), *map(str, a)], capture_output=True, text=True, timeout=120,
                                    stdin=subprocess.DEVNULL)
    out = run("episodes", "list", data)
    assert out.returncode == 0 and "flags" in out.stdout.splitlines()[0]
    assert "still" in out.stdout.splitlines()[2] and "still" not in out.stdout.splitlines()[1]
    listed = json.loads(run("episodes", "list", data, "--json").stdout)
    assert [e["flags"] for e in listed][0] == {} and "still" in listed[1]["flags"]
    out = run("episodes", "check", data)
    assert out.returncode == 0 and "FLAGGED" in out.stdout and "episode_000002.h5: still" in out.stdout
    checked = json.loads(run("episodes", "check", data, "--json").stdout)
    assert [Path(e["path"]).name for e in checked] == ["episode_000001.h5", "episode_000002.h5"]
    assert checked[1]["flags"]["still"].startswith("arm moved at most") and checked[0]["damaged"] is None
