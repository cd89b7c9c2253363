"""Automatic trim: episode files with known idle ends, through the library and `teleop-app episodes trim --auto`."""

from __future__ import annotations

import numpy as np
import pytest

from recordings.analysis.trim import MARGIN_S, active_ticks, suggest_range, suggest_trim
from recordings.edit import set_trim
from recordings.reader import Episode

from command import cli  # isort: skip
from synthetic_episodes import make_episode  # isort: skip



@pytest.mark.parametrize("idle, noise", [((1.0, 1.5), 0.0), ((0.6, 0.0), 0.002), ((0.0, 2.0), 0.002)])
def test_suggestion_cuts_the_known_idle_ends_and_keeps_the_margin(tmp_path, idle, noise):
    truth = make_episode(tmp_path / "e.h5", seconds=5.0, idle=idle, noise=noise)
    s = suggest_trim(tmp_path / "e.h5")
    full = truth["t"][-1]
    assert s.full_duration == pytest.approx(full)
    start = 0.0 if idle[0] == 0 else idle[0] - MARGIN_S
    end = full if idle[1] == 0 else 5.0 - idle[1] + MARGIN_S
    assert s.keep[0] == pytest.approx(start, abs=0.06) and s.keep[1] == pytest.approx(end, abs=0.06)
    assert s.cut_start == pytest.approx(start, abs=0.06) and s.cut_end == pytest.approx(full - end, abs=0.06)
    assert s.changes and s.current == (0.0, pytest.approx(full))


def test_a_still_episode_gets_no_suggestion_and_a_blip_is_not_motion(tmp_path):
    make_episode(tmp_path / "still.h5", seconds=2.0, idle=(1.0, 1.0), still_gripper=True, noise=0.002)
    assert suggest_trim(tmp_path / "still.h5").keep is None
    t = np.arange(300) / 100
    q = np.zeros((300, 6))
    q[100:104, 0] = 0.05  # 40 ms bump: shorter than MIN_ACTIVE_S
    q[200:, 1] = np.linspace(0, 1, 100)  # a real movement from 2 s to the end
    active = active_ticks(t, q, q, np.zeros(300))
    assert active[95:105].any() and suggest_range(t, active) == (pytest.approx(2.0 - MARGIN_S, abs=0.06), t[-1])


def test_cli_dry_run_prints_the_table_and_changes_nothing(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    make_episode(data / "episode_000001.h5", seconds=4.0, idle=(1.0, 1.0))
    make_episode(data / "episode_000002.h5", seconds=3.0, idle=(1.0, 1.0), still_gripper=True, seed=2)
    make_episode(data / "episode_000003.h5", seconds=2.0, idle=(2.0, 0.0), still_gripper=True, seed=3)
    out = cli("episodes", "trim", data, "--auto", "--dry-run").stdout
    lines = out.splitlines()
    assert lines[0].split() == ["episode", "length", "kept", "now", "suggested", "cut", "start", "cut", "end"]
    name, length, now, suggested, cut_start, cut_end = lines[1].split()
    assert name == "episode_000001.h5" and now == "0.00–3.99"
    start, end = map(float, suggested.split("–"))
    assert start == pytest.approx(0.7, abs=0.06) and end == pytest.approx(3.3, abs=0.06)
    assert float(cut_start[:-1]) == start and float(cut_end[:-1]) == pytest.approx(float(length[:-1]) - end, abs=0.011)
    assert "episode_000003.h5" in lines[3] and "no motion found" in lines[3]
    assert "dry run: nothing changed" in out
    for path in sorted(data.iterdir()):
        with Episode.open(path) as ep:
            assert ep.meta["kept_start"] is None and ep.meta["kept_end"] is None


def test_cli_applies_kept_ranges_non_destructively(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    truth = make_episode(data / "episode_000001.h5", seconds=4.0, idle=(1.0, 1.0))
    make_episode(data / "episode_000002.h5", seconds=3.0, seed=2)  # moves all the time: unchanged
    ticks_before = len(truth["t"])
    out = cli("episodes", "trim", data, "--auto", "--margin", "0.5").stdout
    assert "applied" in out.splitlines()[1] and "unchanged" in out.splitlines()[2]
    with Episode.open(data / "episode_000001.h5") as ep:
        assert ep.kept_range[0] == pytest.approx(0.5, abs=0.06) and ep.kept_range[1] == pytest.approx(3.5, abs=0.06)
        assert ep.tick_count(trimmed=False) == ticks_before  # nothing rewritten
    with Episode.open(data / "episode_000002.h5") as ep:
        assert ep.meta["kept_start"] is None and ep.meta["kept_end"] is None
    # a single file works too, and the result does not depend on an earlier trim
    set_trim(data / "episode_000001.h5", 2.0, 2.5)
    cli("episodes", "trim", data / "episode_000001.h5", "--auto")
    with Episode.open(data / "episode_000001.h5") as ep:
        assert ep.kept_range[0] == pytest.approx(0.7, abs=0.06)


def test_cli_bad_input_gets_one_line(tmp_path):
    make_episode(tmp_path / "e.h5", seconds=1.0)
    err = cli("episodes", "trim", tmp_path / "e.h5", "--auto", "--start", "1", code=2).stderr
    assert "--auto finds the range itself" in err and len(err.strip().splitlines()) == 1
    err = cli("episodes", "trim", tmp_path / "empty_dir_that_is_missing", "--auto", code=2).stderr
    assert len(err.strip().splitlines()) == 1
