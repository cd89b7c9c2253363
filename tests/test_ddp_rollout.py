"""A checkpoint trained by two torchrun processes drives the simulated arm to success.

The whole loop as a user runs it, each step the installed command: the
scripted expert records three demos of one scene (seed 1000) with ``collect``,
``torchrun --nproc-per-node 2 … train`` (gloo, CPU) fits the built-in policy
to them, and ``run-policy`` rolls the checkpoint out on that same scene, where
the arm must lift the cube. One scene keeps it short: what is tested is that
the data-parallel checkpoint acts, not that it generalizes (the benchmarks
measure that).
"""

from __future__ import annotations

import subprocess
import sys

from command import cli  # tests/ is on sys.path
from recordings.library import episode_files, summarize

SCENE = 1000
TASK = "pick up the cube"


def test_a_torchrun_trained_checkpoint_lifts_the_cube(tmp_path):
    demos, rollouts, checkpoint = tmp_path / "demos", tmp_path / "rollouts", tmp_path / "ddp.pt"
    for _ in range(3):  # the same scene each time: collect's --seed numbers the first of a batch
        cli("collect", "--headless", "--input", "scripted", "--episodes", 1, "--seconds", 12, "--task", TASK,
            "--out", demos, "--seed", SCENE, "--after-success", 0.5)
    assert [summarize(p).success for p in episode_files(demos)] == ["true"] * 3

    train = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "teleop_app.cli", "train", str(demos), "--out", str(checkpoint), "--epochs", "30",
         "--image-size", "48", "--batch-size", "32", "--seed", "1", "--threads", "1"],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert train.returncode == 0, train.stderr
    assert train.stderr.count("trained the continuous head") == 1  # rank 0 alone reports

    out = cli("run-policy", "--headless", "--policy", checkpoint, "--episodes", 1, "--seconds", 15, "--task", TASK,
              "--out", rollouts, "--seed", SCENE, "--after-success", 0.3)
    [rollout] = episode_files(rollouts)
    assert summarize(rollout).success == "true", out.stdout + out.stderr
    assert "1/1 successful rollouts" in out.stderr
