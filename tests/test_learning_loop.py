"""benchmarks/learning_loop.py: which run-policy configurations it runs and what it reads from episodes.

The end-to-end run (collect, train, roll out) takes minutes and is run by hand;
here the configuration table and the evaluation of real episode files
(``synthetic_episodes``) are checked.
"""

from __future__ import annotations

import math

import numpy as np

from benchmarks.learning_loop import Config, configs, evaluate
from synthetic_episodes import make_episode  # tests/ on sys.path


def test_configurations_cover_heads_strategies_rtc_and_ablations():
    runs = list(configs(["continuous", "flow"], ["async", "ensemble"], "both", [1.0, 1.3], ["task", "chunk1"]))
    assert [c.name for c in runs] == [
        "continuous_async", "continuous_async_speed1.3", "continuous_ensemble", "continuous_ensemble_speed1.3",
        "continuous_async_ablate-task", "continuous_async_ablate-chunk1",
        "flow_async_rtc", "flow_async_rtc_speed1.3", "flow_async_no-rtc", "flow_async_no-rtc_speed1.3",
        "flow_ensemble", "flow_ensemble_speed1.3", "flow_async_rtc_ablate-task", "flow_async_rtc_ablate-chunk1"]
    assert Config("flow", "async", False, 1.3).run_args() == ["--strategy", "async", "--speed", "1.3", "--no-rtc"]
    assert Config("continuous", "async", None, 1.0, "task").run_args() == [
        "--strategy", "async", "--speed", "1", "--ablate", "task"]
    assert Config("continuous", "async", None, 1.0, "chunk1").run_args() == [
        "--strategy", "open-loop", "--speed", "1", "--replan-every", "1"]


def test_blends_multiply_the_async_runs_only():
    runs = list(configs(["continuous"], ["async", "ensemble"], "both", [1.0], ["task"], ["latest", "crossfade"]))
    assert [c.name for c in runs] == ["continuous_async_latest", "continuous_async_crossfade", "continuous_ensemble",
                                      "continuous_async_latest_ablate-task"]
    assert runs[1].run_args() == ["--strategy", "async", "--speed", "1", "--blend", "crossfade"]
    assert "--blend" not in runs[2].run_args()


def test_evaluation_reads_success_time_and_jitter_from_the_episodes(tmp_path):
    for i, success in enumerate(("true", "true", "false")):
        make_episode(tmp_path / f"episode_{i + 1:06d}.h5", seconds=2.0, success=success, seed=i)
    demos = evaluate(tmp_path)
    assert demos["episodes"] == 3 and demos["unreadable"] == 0
    assert demos["success_rate"] == 2 / 3
    assert len(demos["_times"]) == 2 and 0 < demos["time_to_success_s"] <= 2.0
    assert 0.0 <= demos["hf_share"] <= 1.0 and demos["watchdog_stops"] == 0
    assert demos["wrong_object_rate"] == 0.0  # one cube: nothing else to take

    same = evaluate(tmp_path, demos["_times"])  # the demonstrator against itself
    ratio = same["time_ratio_to_demos"]
    assert ratio["ratio"] == 1.0 and ratio["ci95"][0] <= 1.0 <= ratio["ci95"][1]
    assert evaluate(tmp_path / "missing") == {"episodes": 0}
    slower = evaluate(tmp_path, np.asarray(demos["_times"]) / 2)
    assert math.isclose(slower["time_ratio_to_demos"]["ratio"], 2.0)
