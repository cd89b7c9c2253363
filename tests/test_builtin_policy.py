"""The built-in policy: samples from episode files, training through the CLI, checkpoints, predictions.

Episodes are the synthetic ones of ``synthetic_episodes`` (one 64x48 camera
``front``, joints known functions of time, commanded targets 0.05 rad ahead of
the measured arm joints), written with the real writer; networks are tiny
(32 px images) so every training here takes a second or two.
"""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import torch

from drivers.types import RobotState
from policies.base import ActionKind, PolicyError
from policies.builtin.checkpoint import interpolate, read_checkpoint
from policies.builtin.dataset import DatasetError, load_demos
from policies.builtin.model import BuiltinConfig, Normalization, decode_targets, encode_task
from policies.builtin.options import TrainOptions
from policies.builtin.train import soft_labels, train
from policies.loading import PolicyLoadError, load_policy
from policies.observation import Observation
from recordings import edit
from synthetic_episodes import (HEIGHT, WIDTH, expected_rows, joint_positions, joint_targets,  # tests/ on sys.path
                                make_episode)
from teleop_app import cli

TASK = "pick up the cube"
SMALL = {"image_size": 32, "steps": 4, "stride": 5, "channels": 8, "threads": 1}
TRIM = (0.5, 1.5)


run_cli = cli.main  # the command as teleop-app runs it, in this process


@pytest.fixture(scope="module")
def demos_dir(tmp_path_factory):
    """Two successful episodes (the second trimmed to TRIM) and a failed one; the kept tick times of each."""
    folder = tmp_path_factory.mktemp("demos")
    kept = {}
    for i, success in enumerate(("true", "true", "false")):
        path = folder / f"episode_{i + 1:06d}.h5"
        t = make_episode(path, seconds=2.0, success=success, seed=i)["t"]
        if i == 1:
            edit.set_trim(path, *TRIM)
            t = t[(t >= TRIM[0]) & (t <= TRIM[1])]
        kept[path.name] = t
    return folder, kept


def observation(images: dict | None = None, t: float = 0.7, task: str = TASK) -> Observation:
    q = joint_positions(np.array([t]))[0]
    state = RobotState(t_host=t, joint_pos=q, joint_vel=np.zeros(6), gripper=0.5, ee_pos=np.zeros(3))
    if images is None:
        images = {"front": np.full((HEIGHT, WIDTH, 3), 90, np.uint8)}
    return Observation(tick=70, t=t, state=state, task=task, images=images)


def net_config(**kw) -> BuiltinConfig:
    return BuiltinConfig(cameras=("front",), joint_names=tuple("abcdef"), **kw)


# -- samples ---------------------------------------------------------------------------------
def test_samples_come_from_the_kept_range_of_successful_episodes(demos_dir):
    folder, kept = demos_dir
    demos = load_demos(folder, image_size=32, steps=4, stride=5)
    assert demos.episodes == [folder / "episode_000001.h5", folder / "episode_000002.h5"]
    assert demos.skipped == {"failed": 1}
    assert len(demos) == len(kept["episode_000001.h5"]) + len(kept["episode_000002.h5"])
    assert demos.cameras == ("front",) and demos.frames[0].shape[1:] == (3, 32, 32)
    assert demos.vocab == ("<pad>", "<unk>", "cube", "pick", "the", "up")

    # the trimmed episode's samples: measured joints of its kept ticks, commanded targets every 5 ticks from them
    t = kept["episode_000002.h5"]
    mine = demos.episode == 1
    np.testing.assert_allclose(demos.state[mine], joint_positions(t), atol=1e-6)
    targets = demos.targets[mine]
    for j in range(4):
        rows = expected_rows(t, t + j * 0.05)  # 5 ticks at 100 Hz; past the kept range: its last tick
        np.testing.assert_allclose(targets[:, j], joint_targets(t[rows]), atol=1e-5)
    assert expected_rows(t, t[-1:] + 0.15)[0] == len(t) - 1

    everything = load_demos(folder, image_size=32, steps=4, stride=5, sample_every=2, include_failures=True)
    assert len(everything.episodes) == 3 and everything.skipped == {}
    assert len(everything) == sum((len(t) + 1) // 2 for t in kept.values())


def test_each_sample_sees_the_last_frame_at_or_before_its_tick(demos_dir):
    folder, kept = demos_dir
    demos = load_demos(folder, image_size=32, steps=2, stride=1)
    t = kept["episode_000001.h5"]
    grey = demos.frames[0][demos.frame_index[demos.episode == 0, 0]].mean(axis=(1, 2, 3))
    # the grey level encodes the capture time (120 levels per second); padding rows are black: 32x24 of 32x32
    shown = grey / 120 * 32 / 24
    assert np.all(shown <= t + 0.02) and np.all(shown >= t - 1 / 15 - 0.03)


def test_normalization_round_trip_and_bins_within_half_a_step():
    rng = np.random.default_rng(0)
    states, targets = rng.normal(1.0, 0.3, (500, 6)), rng.normal(1.0, 0.3, (500, 4, 6))
    targets[:, :, 2] = 0.25  # a joint that never moves
    norm = Normalization.of(states, targets)
    z = norm.state(states)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-9)
    np.testing.assert_allclose(norm.untargets(norm.targets(targets)), targets, atol=1e-12)
    assert np.all(np.isfinite(norm.targets(targets)))
    np.testing.assert_array_equal(norm.target_min, targets.min(axis=(0, 1)))
    again = Normalization.from_dict(json.loads(json.dumps(norm.to_dict())))
    np.testing.assert_array_equal(again.target_high, norm.target_high)

    tok = norm.tokenizer(256)
    inside = np.clip(targets, norm.target_low, norm.target_high).reshape(500, -1)
    back = tok.detokenize(tok.tokenize(inside))
    assert np.all(np.abs(back - inside) <= tok.half_step + 1e-12)
    # the binned head decodes its most likely bin: logits peaked at the tokens give the same values
    config = net_config(head="binned", steps=4)
    logits = np.eye(256)[tok.tokenize(inside)] * 50.0
    np.testing.assert_allclose(decode_targets(logits, config, norm).reshape(500, -1), back)


def test_binned_labels_spread_over_neighbouring_bins():
    labels = soft_labels(256, 2.0)
    np.testing.assert_allclose(labels.sum(dim=1), 1.0, atol=1e-6)
    assert labels.argmax(dim=1).tolist() == list(range(256))
    assert labels[100, 99] == labels[100, 101] and labels[100, 102] < labels[100, 101] < labels[100, 100]
    assert labels[0, 0] > labels[100, 100]  # the edge bins keep the mass that would fall outside
    assert torch.equal(soft_labels(8, 0.0), torch.eye(8))


def test_interpolation_gives_one_smooth_target_per_tick():
    line = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
    out = interpolate(line, 4)
    assert out.shape == (13, 2)
    np.testing.assert_allclose(out[:, 0], np.arange(13) / 4)  # a steady motion is kept exactly
    np.testing.assert_allclose(out[[0, -1]], line[[0, -1]])  # from the first target to the last
    # a target that turns back: the per-tick velocity changes gradually, where straight lines between the
    # targets would flip it from one tick to the next
    turn = interpolate(np.array([[0.0], [1.0], [0.0], [1.0], [0.0]]), 5)[:, 0]
    velocity = np.diff(turn)
    assert np.abs(np.diff(velocity)).max() < 0.5 * np.abs(velocity).max()
    assert turn.max() < 1.0 and turn.min() > -0.01  # smoothed knots never overshoot the range


def test_task_words_outside_the_vocabulary_are_unknown():
    vocab = ("<pad>", "<unk>", "cube", "pick")
    np.testing.assert_array_equal(encode_task("Pick the CUBE!", vocab, 5), [3, 1, 2, 0, 0])
    np.testing.assert_array_equal(encode_task("", vocab), [1])


# -- training and the checkpoint ---------------------------------------------------------------
@pytest.mark.parametrize("head", ["continuous", "binned"])
def test_train_cli_writes_a_checkpoint_that_runs_as_a_policy(demos_dir, tmp_path, capsys, head):
    folder, _ = demos_dir
    out = tmp_path / f"{head}.pt"
    code = run_cli(["train", str(folder), "--out", str(out), "--epochs", "2", "--head", head,
                    "--image-size", "32", "--batch-size", "32", "--seed", "1", "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "train: epoch 2/2  loss" in captured.err and "samples/s" in captured.err and "eta" in captured.err
    assert f"trained the {head} head on" in captured.err and "(left out: 1 failed)" in captured.err
    data = read_checkpoint(out)
    assert data["config"]["cameras"] == ["front"] and data["config"]["image_size"] == 32
    assert data["training"]["episodes"] == ["episode_000001.h5", "episode_000002.h5"]
    assert out.stat().st_size < 5e6

    policy = load_policy(str(out))
    info = policy.info
    assert (info.action_kind, info.action_dim, info.chunk_length) == (ActionKind.JOINT, 6, 46)
    assert info.resizes_images  # the rollout gives it the cameras' own frames, resized once as in training
    obs = observation()
    actions, timing = policy.predict(obs)
    assert actions.shape == (46, 6) and np.all(np.isfinite(actions)) and timing["infer_ms"] > 0
    # robot units: inside what the demonstrations commanded
    demos = load_demos(folder, image_size=32, steps=10, stride=5)
    assert np.all(actions >= demos.targets.min(axis=(0, 1))) and np.all(actions <= demos.targets.max(axis=(0, 1)))
    # any image size is padded and resized to the checkpoint's; the answer is the same for the same picture
    big = observation({"front": np.full((96, 128, 3), 90, np.uint8)})
    np.testing.assert_allclose(policy.predict(big)[0], actions, atol=1e-5)
    chunk = policy.infer(obs)
    assert chunk.tick == 70 and chunk.actions.shape == (46, 6)
    # the measured gripper joint is not an input (whether to close must come from the images)
    q = obs.state.joint_pos.copy()
    q[-1] -= 0.5
    sagged = Observation(obs.tick, obs.t, RobotState(0.0, q, np.zeros(6), 0.3, np.zeros(3)), TASK, obs.images)
    np.testing.assert_array_equal(policy.predict(sagged)[0], actions)


def test_a_missing_camera_or_a_different_robot_is_a_policy_error(demos_dir, tmp_path):
    folder, _ = demos_dir
    out = tmp_path / "p.pt"
    train(folder, out, TrainOptions(epochs=1, **SMALL))
    policy = load_policy(str(out))
    with pytest.raises(PolicyError, match=r"no image from camera front \(the policy needs front; the observation "
                                          r"has wrist\)"):
        policy.predict(observation({"wrist": np.zeros((48, 64, 3), np.uint8)}))
    obs = observation()
    five = RobotState(t_host=0.0, joint_pos=np.zeros(5), joint_vel=np.zeros(5), gripper=0.0, ee_pos=np.zeros(3))
    with pytest.raises(PolicyError, match="the robot has 5 joints, the policy was trained on 6"):
        policy.predict(Observation(obs.tick, obs.t, five, TASK, obs.images))


def test_a_small_network_fits_a_tiny_dataset(tmp_path):
    """Loss and target error measured in the same run: training must drive both well below where they start."""
    folder = tmp_path / "one"
    folder.mkdir()
    make_episode(folder / "episode_000001.h5", seconds=1.0, seed=3)
    options = TrainOptions(epochs=60, batch_size=16, lr=3e-3, sample_every=4, shift=0, state_noise=0.0, **SMALL)
    result = train(folder, tmp_path / "fit.pt", options)
    demos = load_demos(folder, image_size=32, steps=4, stride=5, sample_every=4)
    spread = float(np.abs(demos.targets - demos.targets.mean(0)).mean())
    assert result.samples == 25
    assert result.losses[-1] < 0.3 * result.initial_loss
    assert result.error_rad < 0.3 * spread


# -- errors --------------------------------------------------------------------------------
def copy_with(folder, tmp_path, name, change, every=False):
    """``folder`` copied to ``tmp_path/name`` with ``change(h5file)`` applied to its last episode (or ``every`` one)."""
    dst = tmp_path / name
    shutil.copytree(folder, dst)
    files = sorted(dst.glob("*.h5"))
    for path in files if every else files[-1:]:
        with h5py.File(path, "r+") as f:
            change(f)
    return dst


def rename_camera(f):
    f.move("cameras/front", "cameras/side")
    f.attrs["cameras"] = json.dumps(["side"])


def no_cameras(f):
    del f["cameras/front"]
    f.attrs["cameras"] = "[]"


def keep_no_tick(f):
    f.attrs["kept_start"], f.attrs["kept_end"] = 0.505, 0.509  # ticks are 10 ms apart, jittered by < 4 ms


def other_joints(f):
    f.attrs["joint_names"] = json.dumps(["a", "b", "c", "d", "e", "gripper"])


@pytest.mark.parametrize("setup, message", [
    (lambda folder, tmp: tmp / "nothing", "no such folder"),
    (lambda folder, tmp: tmp, "no episode files (*.h5) to train on"),  # an empty folder
    (lambda folder, tmp: copy_with(folder, tmp, "fails", lambda f: f.attrs.__setitem__("success", "false"), every=True),
     "no successful episodes (2 failed)"),
    (lambda folder, tmp: copy_with(folder, tmp, "cam", rename_camera),
     "episode_000002.h5 has no camera front (it has: side); the policy needs front"),
    (lambda folder, tmp: copy_with(folder, tmp, "joints", other_joints),
     "episode_000002.h5 has joints a, b, c, d, e, gripper but episode_000001.h5 has shoulder_pan"),
    (lambda folder, tmp: copy_with(folder, tmp, "trim", keep_no_tick),
     "episode_000002.h5: no tick in its kept range (widen its trim)"),
], ids=["missing", "empty", "no-success", "camera", "joints", "trim"])
def test_folders_it_cannot_train_on_are_one_line_errors(demos_dir, tmp_path, capsys, setup, message):
    folder, _ = demos_dir
    two = tmp_path / "two"
    two.mkdir()
    for name in ("episode_000001.h5", "episode_000002.h5"):
        shutil.copy(folder / name, two / name)
    work = tmp_path / "work"
    work.mkdir()
    target = setup(two, work)
    code = run_cli(["train", str(target), "--out", str(tmp_path / "x.pt"), "--epochs", "1", "--image-size", "32",
                    "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "x.pt").exists()


def test_episodes_without_cameras_and_bad_outputs_are_refused(demos_dir, tmp_path, capsys):
    folder, _ = demos_dir
    blind = tmp_path / "blind"
    blind.mkdir()
    shutil.copy(folder / "episode_000001.h5", blind / "episode_000001.h5")
    with h5py.File(blind / "episode_000001.h5", "r+") as f:
        no_cameras(f)
    with pytest.raises(DatasetError, match="has no color camera: the built-in policy learns from images"):
        load_demos(blind, image_size=32, steps=2, stride=1)
    assert run_cli(["train", str(folder), "--out", str(tmp_path / "policy.ckpt")]) == 2
    assert "checkpoints of the built-in policy end in .pt" in capsys.readouterr().err


def test_files_that_are_not_builtin_checkpoints_do_not_load(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(PolicyLoadError, match="junk.pt: not a built-in policy checkpoint"):
        load_policy(str(junk))
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(PolicyLoadError, match="a torch file but not a built-in policy checkpoint"):
        load_policy(str(other))


# -- language ------------------------------------------------------------------------------------
def test_the_sentence_conditions_the_image_features_and_old_checkpoints_do_without():
    """With FiLM the same image gives different keypoints for "red" and "blue" (once the maps have weights: they
    start at zero, the unconditioned encoder); a config from before FiLM builds the network it was saved with."""
    from policies.builtin.model import BuiltinNet, build_vocab

    vocab = build_vocab(["pick up the red cube", "pick up the blue cube"])
    config = BuiltinConfig(cameras=("front",), joint_names=tuple(f"j{i}" for i in range(6)), image_size=32,
                           channels=4, keypoints=4, film=True, vocab=vocab)
    torch.manual_seed(0)
    net = BuiltinNet(config).eval()
    image = torch.rand(1, 1, 3, 32, 32)
    words = {c: torch.from_numpy(encode_task(f"pick up the {c} cube", vocab)[None]) for c in ("red", "blue")}

    def keypoints(colour: str) -> torch.Tensor:
        with torch.no_grad():
            return net.encoders[0](image[:, 0], net.task(words[colour]))

    assert torch.equal(keypoints("red"), keypoints("blue"))  # untrained: FiLM is the identity
    for film in net.encoders[0].film:
        torch.nn.init.normal_(film.weight, std=0.5)
    assert not torch.allclose(keypoints("red"), keypoints("blue"))

    old = {k: v for k, v in config.to_dict().items() if k != "film"}  # what a checkpoint from before wrote
    old_net = BuiltinNet(BuiltinConfig.from_dict(old))
    assert not any("film" in name for name in old_net.state_dict())


def test_training_shows_some_samples_a_blank_sentence(demos_dir):
    """About task_dropout of the augmented samples get the blank sentence (what an empty or unknown task encodes
    to); evaluation batches keep every sentence."""
    from policies.builtin.train import _Batches

    demos = load_demos(demos_dir[0], image_size=32, steps=4, stride=5, sample_every=2)
    options = TrainOptions(task_dropout=0.25, **SMALL)
    config = BuiltinConfig(cameras=demos.cameras, joint_names=demos.joint_names, image_size=32, steps=4,
                           stride=5, film=True, vocab=demos.vocab)
    batches = _Batches(demos, config, Normalization.of(demos.state, demos.targets), options,
                       np.random.default_rng(0))
    idx = np.arange(len(demos))
    blank = torch.from_numpy(encode_task("", demos.vocab, demos.words.shape[1]))
    _, _, words, _ = batches.batch(idx, True)
    share = float((words == blank).all(dim=1).float().mean())
    assert 0.15 < share < 0.35
    _, _, words, _ = batches.batch(idx, False)
    assert torch.equal(words, torch.from_numpy(demos.words))
