"""The built-in policy's flow-matching head: training, sampling, checkpoints.

Synthetic episodes (``synthetic_episodes``: one 64x48 camera, joints known
functions of time) written with the real writer; tiny networks (32 px images,
4 targets) so each training takes a few seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from drivers.types import RobotState
from policies.builtin.checkpoint import read_checkpoint
from policies.builtin.model import BuiltinConfig, BuiltinNet
from policies.builtin.options import TrainOptions
from policies.builtin.train import train
from policies.loading import load_policy
from policies.observation import Observation
from synthetic_episodes import HEIGHT, WIDTH, joint_positions, make_episode  # tests/ on sys.path
from teleop_app import cli

TASK = "pick up the cube"
SMALL = {"image_size": 32, "steps": 4, "stride": 5, "channels": 8, "threads": 1, "batch_size": 16}


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flow-demos")
    for i in range(2):
        make_episode(folder / f"episode_{i + 1:06d}.h5", seconds=2.0, seed=i)
    return folder


def observation(t: float = 0.7) -> Observation:
    q = joint_positions(np.array([t]))[0]
    state = RobotState(t_host=t, joint_pos=q, joint_vel=np.zeros(6), gripper=0.5, ee_pos=np.zeros(3))
    return Observation(tick=70, t=t, state=state, task=TASK,
                       images={"front": np.full((HEIGHT, WIDTH, 3), 90, np.uint8)})


def test_flow_head_learns_and_samples_reproducibly(demos, tmp_path):
    out = tmp_path / "flow.pt"
    result = train(demos, out, TrainOptions(epochs=4, head="flow", flow_steps=6, **SMALL))
    # the flow-matching loss starts near 2 (the variance of actions minus noise) and must fall
    assert result.losses[-1] < 0.8 * result.initial_loss
    assert result.losses[-1] < result.losses[0]

    seeded = load_policy(str(out), seed=7)
    assert seeded.info.chunk_length == 16 and seeded.info.continues
    first, _ = seeded.predict(observation())
    second, _ = seeded.predict(observation())
    assert first.shape == (16, 6) and np.all(np.isfinite(first))
    assert not np.array_equal(first, second)  # fresh noise on every call ...
    seeded.reset()
    np.testing.assert_array_equal(seeded.predict(observation())[0], first)  # ... and the same stream after a reset
    other = load_policy(str(out), seed=8)
    assert not np.array_equal(other.predict(observation())[0], first)
    # every sample stays inside what the demonstrations commanded
    assert np.all(first >= seeded.norm.target_min) and np.all(first <= seeded.norm.target_max)


def test_train_cli_writes_a_flow_checkpoint_that_round_trips(demos, tmp_path, capsys):
    out = tmp_path / "flow.pt"
    code = cli.main(["train", str(demos), "--out", str(out), "--epochs", "1", "--head", "flow", "--flow-steps", "3",
                     "--image-size", "32", "--batch-size", "32", "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "trained the flow head on" in captured.err
    data = read_checkpoint(out)
    assert data["config"]["head"] == "flow" and data["config"]["flow_steps"] == 3
    assert data["training"]["options"]["head"] == "flow"
    policy = load_policy(str(out))
    assert policy.config.head == "flow" and policy.config.flow_steps == 3
    # the weights that were saved are the weights that run
    saved = data["state_dict"]
    assert all(torch.equal(saved[k], v) for k, v in policy.net.state_dict().items())
    assert policy.predict(observation())[0].shape == (46, 6)


def test_a_checkpoint_from_before_the_flow_head_still_loads(demos, tmp_path):
    out = tmp_path / "old.pt"
    train(demos, out, TrainOptions(epochs=1, **SMALL))
    data = read_checkpoint(out)
    del data["config"]["flow_steps"]  # what checkpoints written before the flow head hold
    torch.save(data, out)
    policy = load_policy(str(out))
    assert policy.config.head == "continuous" and not policy.info.continues
    assert policy.predict(observation())[0].shape == (16, 6)


def test_the_sampler_integrates_the_flow_with_the_configured_euler_steps():
    """A velocity that depends on neither x nor τ moves the noise by exactly itself, in 1 step or in 7."""
    torch.manual_seed(0)
    images = torch.zeros(1, 1, 3, 32, 32, dtype=torch.uint8)
    state, words, noise = torch.zeros(1, 6), torch.ones(1, 1, dtype=torch.int64), torch.randn(1, 24)
    answers = []
    for steps in (1, 7):
        config = BuiltinConfig(cameras=("front",), joint_names=tuple("abcdef"), image_size=32, steps=4,
                               head="flow", channels=8, flow_steps=steps)
        net = BuiltinNet(config).eval()
        with torch.no_grad():
            net.head.net[-1].weight.zero_()
            net.head.net[-1].bias.copy_(torch.linspace(-1.0, 1.0, 24))
            answers.append(net(images, state, words, noise=noise))
    assert answers[0].shape == (1, 4, 6)
    for answer in answers:
        torch.testing.assert_close(answer.reshape(1, -1), noise + torch.linspace(-1.0, 1.0, 24))
