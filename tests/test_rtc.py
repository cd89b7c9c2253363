"""Real-time chunking: the async strategy hands the runner a prefix, the runner hands it to the policy,
the built-in flow head continues it (held actions exact, the rest guided and blended)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from drivers.types import RobotState
from policies.base import ActionChunk, Prefix
from policies.builtin.checkpoint import overlap_weights
from policies.builtin.flow import Guidance
from policies.builtin.options import TrainOptions
from policies.builtin.train import train
from policies.loading import load_policy
from policies.observation import Observation
from policies.strategies import AsyncChunks
from runner_drive import RampPolicy, drive, runner  # tests/ on sys.path
from synthetic_episodes import HEIGHT, WIDTH, joint_positions, make_episode
from teleop_app.rollouts import StrategyOptions

HOLD = 5


@pytest.fixture(scope="module")
def flow_policy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rtc-demos")
    for i in range(2):
        make_episode(folder / f"episode_{i + 1:06d}.h5", seconds=2.0, seed=i)
    out = folder / "flow.pt"
    train(folder, out, TrainOptions(epochs=4, head="flow", image_size=32, steps=6, stride=5, channels=8,
                                    threads=1, batch_size=16))
    return load_policy(str(out), seed=1)


def observation(t: float, tick: int) -> Observation:
    q = joint_positions(np.array([t]))[0]
    state = RobotState(t_host=t, joint_pos=q, joint_vel=np.zeros(6), gripper=0.5, ee_pos=np.zeros(3))
    return Observation(tick=tick, t=t, state=state, task="pick up the cube",
                       images={"front": np.full((HEIGHT, WIDTH, 3), 90, np.uint8)})


def test_the_continued_chunk_holds_the_committed_actions_and_joins_them_smoothly(flow_policy):
    current, _ = flow_policy.predict(observation(0.6, 60))
    # committed: what the current chunk still plans from tick 70 on, pushed 0.15 rad off what the model
    # would answer now, so a chunk that ignored it would jump
    committed = current[10:] + 0.15
    prefix = Prefix(committed, HOLD)
    free, _ = flow_policy.predict(observation(0.7, 70))
    cont, _ = flow_policy.predict_continuing(observation(0.7, 70), prefix)
    assert cont.shape == free.shape
    np.testing.assert_array_equal(cont[:HOLD], committed[:HOLD])  # exactly, not approximately

    switch_jump = np.abs(free[HOLD] - committed[HOLD - 1]).max()  # a plain new chunk at the same tick
    steps = np.abs(np.diff(cont[: len(committed) + 1], axis=0)).max(axis=1)  # through the overlap and past it
    own = max(np.abs(np.diff(committed, axis=0)).max(), np.abs(np.diff(free, axis=0)).max())
    assert switch_jump > 0.1
    assert steps.max() <= own + 0.15 / (len(committed) - HOLD) + 1e-9
    # the step into the new actions is the committed plan's own step there, plus less than a fifth of the
    # jump a plain switch makes (an undertrained tiny model plans big steps of its own)
    planned_step = np.abs(committed[HOLD] - committed[HOLD - 1]).max()
    assert steps[HOLD - 1] < planned_step + 0.2 * switch_jump


def test_guidance_pulls_the_sampled_chunk_toward_the_committed_one(flow_policy):
    net, cfg = flow_policy.net, flow_policy.config
    images = torch.full((1, 1, 3, 32, 32), 90, dtype=torch.uint8)
    state, words = torch.zeros(1, 6), torch.tensor([[2, 3]])
    noise = torch.randn(1, cfg.steps * cfg.dim, generator=torch.Generator().manual_seed(0))
    target = torch.full((1, cfg.steps * cfg.dim), 1.5)
    weights = torch.zeros(1, cfg.steps, cfg.dim)
    weights[:, :3] = 1.0
    with torch.no_grad():
        free = net(images, state, words, noise=noise)
        guided = net(images, state, words, noise=noise, guidance=Guidance(target, weights.reshape(1, -1)))
    held = weights.reshape(1, cfg.steps, cfg.dim) > 0
    gap_free = (free - 1.5)[held].abs().mean()
    gap_guided = (guided - 1.5)[held].abs().mean()
    assert gap_guided < 0.5 * gap_free
    # the free part is still the model's own: it is not pulled as hard
    assert (guided - free)[~held].abs().mean() < (guided - free)[held].abs().mean()


def test_overlap_weights_hold_then_fall_to_zero():
    w = overlap_weights(10, 3)
    np.testing.assert_array_equal(w[:3], 1.0)
    assert np.all(np.diff(w[2:]) < 0) and 0 < w[-1] < w[3] < 1


def test_async_strategy_offers_its_plan_and_the_measured_delay_only_with_rtc():
    plain, rtc = AsyncChunks(5), AsyncChunks(5, rtc=True)
    actions = np.arange(20.0)[:, None] * np.ones((1, 6))
    for s in (plain, rtc):
        assert s.prefix(0) is None
        s.on_chunk(ActionChunk(actions, tick=100, t_request=0.0, t_done=0.0), 104)  # answered 4 ticks late
    assert plain.prefix(110) is None
    prefix = rtc.prefix(110)
    np.testing.assert_array_equal(prefix.actions, actions[10:])
    assert prefix.hold == 4


def test_the_runner_passes_the_plan_to_a_continuing_policy():
    policy = RampPolicy(chunk=20)
    strategy = StrategyOptions(name="async", rtc=True).build(20, continues=policy.info.continues)
    out = drive(runner(policy, strategy), 40)
    assert policy.prefixes[0] is None  # nothing planned yet
    continued = [p for p in policy.prefixes if p is not None]
    assert continued and all(p.hold == 1 for p in continued)  # each answer arrived one tick after its request
    # the first chunk answers tick 0 for ticks 0..19; at tick 11 fewer than 10 are left: those 9 are the prefix
    np.testing.assert_allclose(continued[0].actions[:, 0], 0.01 * np.arange(11, 20))
    assert all(o is not None for o in out[1:])  # never starved


def test_rtc_is_off_for_policies_that_cannot_continue_and_when_asked():
    assert not StrategyOptions(name="async").build(20, continues=False).rtc
    assert not StrategyOptions(name="async", rtc=False).build(20, continues=True).rtc
    assert StrategyOptions(name="async").build(20, continues=True).rtc
    assert "real-time chunking" in StrategyOptions(name="async").describe(continues=True)
