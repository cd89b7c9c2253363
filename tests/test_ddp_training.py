"""`teleop-app train` under torchrun: two CPU processes (gloo) against one, on the same synthetic episodes.

The two-process run is a real ``python -m torch.distributed.run --standalone
--nproc-per-node 2`` of the command line; its checkpoint must load like any
other and reach a held-out error (a synthetic episode it never saw) comparable
to a single process trained for the same epochs with the same settings.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from policies.builtin.checkpoint import read_checkpoint
from policies.builtin.dataset import load_demos
from policies.builtin.distributed import World, from_env
from policies.builtin.evaluate import heldout_error
from policies.loading import load_policy
from synthetic_episodes import make_episode  # tests/ is on sys.path
from teleop_app import cli

EPOCHS = 12
ARGS = ["--epochs", str(EPOCHS), "--image-size", "32", "--batch-size", "32", "--seed", "1", "--threads", "1"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    train_dir, heldout_dir = tmp_path_factory.mktemp("train"), tmp_path_factory.mktemp("heldout")
    for i in range(3):
        make_episode(train_dir / f"episode_{i + 1:06d}.h5", seconds=2.0, seed=i)
    make_episode(heldout_dir / "episode_000001.h5", seconds=2.0, seed=10)
    return train_dir, heldout_dir


def test_two_processes_train_a_checkpoint_as_good_as_one(folders, tmp_path, capsys):
    train_dir, heldout_dir = folders
    single, ddp = tmp_path / "single.pt", tmp_path / "ddp.pt"
    assert cli.main(["train", str(train_dir), "--out", str(single), *ARGS]) == 0
    capsys.readouterr()
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "teleop_app.cli", "train", str(train_dir), "--out", str(ddp), *ARGS],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    # rank 0 alone reports and writes
    assert proc.stderr.count(f"train: epoch {EPOCHS}/{EPOCHS}") == 1 and proc.stderr.count("trained the") == 1
    assert proc.stdout.count("ddp.pt") == 1 and not list(tmp_path.glob("*.tmp"))

    data = read_checkpoint(ddp)
    assert data["training"]["processes"] == 2 and read_checkpoint(single)["training"]["processes"] == 1
    assert set(data["state_dict"]) == set(read_checkpoint(single)["state_dict"])
    policy = load_policy(str(ddp))
    assert (policy.info.action_dim, policy.info.chunk_length) == (6, 46)

    err_single, err_ddp = heldout_error(single, heldout_dir), heldout_error(ddp, heldout_dir)
    heldout = load_demos(heldout_dir, image_size=32, steps=10, stride=5)
    spread = float(np.abs(heldout.targets - heldout.targets.mean(axis=0)).mean())  # a constant guess's error
    print(f"held-out error after {EPOCHS} epochs: one process {err_single * 1e3:.1f} mrad, two processes "
          f"{err_ddp * 1e3:.1f} mrad (constant guess {spread * 1e3:.1f} mrad)")
    assert err_single < 0.6 * spread and err_ddp < 0.6 * spread
    assert abs(err_ddp - err_single) < 0.35 * err_single + 0.01


def test_the_torchrun_environment_is_read_or_refused():
    assert from_env({}) == World() and not World().distributed
    world = from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert world == World(1, 2, 1) and world.distributed and not world.is_main
    with pytest.raises(ValueError, match="rank 5 of a world of 2: not a valid torchrun environment"):
        from_env({"RANK": "5", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="must be integers"):
        from_env({"RANK": "a", "WORLD_SIZE": "2"})


def test_a_bad_torchrun_environment_is_a_one_line_error(folders, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    assert cli.main(["train", str(folders[0]), "--out", str(tmp_path / "x.pt"), *ARGS]) == 2
    err = capsys.readouterr().err
    assert "rank 2 of a world of 2: not a valid torchrun environment" in err and "Traceback" not in err
    assert not (tmp_path / "x.pt").exists()
