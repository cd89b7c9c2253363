"""The LeRobot async-inference client against a real gRPC server in this process (tests/lerobot_server.py).

Setup, chunks, a slow server, a dead one, payloads that are not action chunks,
feature names that do not match, the refusal to connect without
``--trust-pickle``, and a run-policy rollout of the sim through it.
"""

from __future__ import annotations

import json
import io
import os
import pickle
import queue
import time

import numpy as np
import pytest
import torch

from drivers.types import RobotState
from lerobot_server import LeRobotServer, hold  # tests/ is on sys.path
from policies import lerobot_pickle as wire
from policies import lerobot_proto as pb
from policies.base import PolicyError
from policies.lerobot_client import LeRobotClient
from policies.loading import LoadOptions, PolicyLoadError, load_policy
from policies.observation import Observation
from teleop_app import cli

CAMERAS = ["front", "wrist"]


def options(server, **kw) -> LoadOptions:
    base = {"spec": server.url, "lerobot_policy": "act", "lerobot_pretrained": "someone/act_so101",
            "trust_pickle": True, "chunk_length": 10, "timeout_s": 2.0}
    return LoadOptions(**{**base, **kw})


def observation(tick: int = 7, size: int = 224) -> Observation:
    q = np.linspace(-0.5, 0.5, 6)
    state = RobotState(t_host=0.0, joint_pos=q, joint_vel=np.zeros(6), gripper=0.4, ee_pos=np.zeros(3))
    images = {c: np.full((size, size, 3), 40 + i, np.uint8) for i, c in enumerate(CAMERAS)}
    return Observation(tick, 1.0, state, "pick up the cube", images)


@pytest.fixture
def server():
    s = LeRobotServer(lambda obs, n: ("reply", hold(obs)))
    yield s
    s.close()


def test_setup_then_chunks(server):
    policy = options(server, lerobot_device="cuda").load(CAMERAS, 6)
    try:
        assert server.calls == ["Ready", "SendPolicyInstructions"]
        [setup] = server.setups
        assert (setup.policy_type, setup.pretrained_name_or_path, setup.actions_per_chunk, setup.device) == (
            "act", "someone/act_so101", 10, "cuda")
        assert setup.lerobot_features["observation.state"] == {
            "dtype": "float32", "shape": (6,), "names": [f"joint{i}.pos" for i in range(6)]}
        assert setup.lerobot_features["observation.images.wrist"]["shape"] == (224, 224, 3)
        assert setup.rename_map == {}
        info = policy.info
        assert (info.action_dim, info.chunk_length) == (6, 10) and "someone/act_so101" in info.name

        obs = observation()
        actions, timing = policy.predict(obs)
        np.testing.assert_allclose(actions, np.tile(obs.state.joint_pos, (10, 1)), atol=1e-6)
        assert timing["server_ms"] > 0
        [sent] = server.observations
        assert sent.timestep == 7 and sent.must_go is True and abs(sent.timestamp - time.time()) < 5
        assert sent.observation["task"] == "pick up the cube"
        assert [sent.observation[f"joint{i}.pos"] for i in range(6)] == pytest.approx(list(obs.state.joint_pos))
        np.testing.assert_array_equal(sent.observation["wrist"], obs.images["wrist"])
        assert server.piece_states == [[pb.TRANSFER_END]]  # one piece: marked END, as LeRobot's sender does

        # an observation over 2 MB travels in pieces
        policy.predict(observation(tick=8, size=700))
        assert server.piece_states[-1] == [pb.TRANSFER_BEGIN, pb.TRANSFER_END]
        assert server.observations[-1].observation["front"].shape == (700, 700, 3)
    finally:
        policy.close()


def test_the_pickles_name_lerobots_classes():
    data = wire.dumps(wire.TimedObservation(1.5, 3, {"task": "x"}, True))
    assert b"lerobot.async_inference.helpers" in data and b"TimedObservation" in data
    assert wire.loads(data) == wire.TimedObservation(1.5, 3, {"task": "x"}, True)
    chunk = wire.loads(wire.dumps([wire.TimedAction(0.0, 0, torch.arange(3.0))]))
    assert torch.equal(chunk[0].action, torch.arange(3.0))


def test_no_connection_without_the_trust_flag(server):
    with pytest.raises(PolicyLoadError, match="refusing to connect to lerobot\\+grpc://127.0.0.1:\\d+: LeRobot's "
                                              "async-inference protocol sends Python pickles.*--trust-pickle"):
        options(server, trust_pickle=False).load(CAMERAS, 6)
    with pytest.raises(PolicyError, match="refusing to connect"):
        load_policy(server.url, policy_type="act", pretrained="x", action_dim=6)
    with pytest.raises(PolicyError, match="refusing to connect"):
        LeRobotClient(server.url, policy_type="act", pretrained="x", action_dim=6)
    assert server.calls == []  # nothing was sent, nothing received


def test_a_slow_server_is_a_timeout(server):
    server.respond = lambda obs, n: ("stall", 3.0, hold(obs))
    policy = options(server, timeout_s=1.0).load(CAMERAS, 6)
    try:
        with pytest.raises(PolicyError, match=r"LeRobot server 127.0.0.1:\d+ sent no action chunk within 1 s"):
            policy.predict(observation())
    finally:
        policy.close()


def test_no_answer_queued_is_asked_again_until_the_deadline(server):
    """The server answers an empty message when it has no observation (it skipped one): ask again, then give up."""
    policy = options(server, timeout_s=1.5).load(CAMERAS, 6)
    try:
        server._queue = _NeverQueue()
        with pytest.raises(PolicyError, match="sent no action chunk within 1.5 s"):
            policy.predict(observation())
        assert server.calls.count("GetActions") >= 2
    finally:
        policy.close()


class _NeverQueue:
    """A queue that drops what is put and has nothing to get (the server skipped the observation)."""

    def full(self) -> bool:
        return False

    def put(self, item) -> None:
        pass

    def get(self, timeout: float):
        time.sleep(timeout)
        raise queue.Empty


def test_a_dead_server_is_a_reason(server):
    policy = options(server).load(CAMERAS, 6)
    try:
        policy.predict(observation())
        server.close()
        with pytest.raises(PolicyError, match=r"LeRobot server 127.0.0.1:\d+ (took no observation|is not answering)"
                                              r" \(unavailable"):
            policy.predict(observation())
        assert policy.reconnects == 1
    finally:
        policy.close()
    with pytest.raises(PolicyError, match="is not answering"):
        options(server).load(CAMERAS, 6)


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


class _BoomInStorage:
    """A 'tensor storage' whose bytes are a full torch pickle that would call os.system."""

    def __reduce__(self):
        inner = io.BytesIO()
        torch.save(_Boom(), inner, _use_new_zipfile_serialization=False)
        return (torch.storage._load_from_bytes, (inner.getvalue(),))


@pytest.mark.parametrize("payload, message", [
    (pickle.dumps(_Boom()), r"unreadable chunk \(refused to load (posix|os)\.system"),
    (pickle.dumps(_BoomInStorage()), r"unreadable chunk \(Weights only load failed"),
    (pickle.dumps({"actions": [1, 2]}), "sent dict, not a list of TimedAction"),
    (b"\x80\x04garbage", "unreadable chunk"),
])
def test_a_payload_that_is_not_a_chunk_is_refused(server, payload, message):
    server.respond = lambda obs, n: ("raw", payload)
    policy = options(server).load(CAMERAS, 6)
    try:
        with pytest.raises(PolicyError, match=message) as caught:
            policy.predict(observation())
        assert "\n" not in str(caught.value)
    finally:
        policy.close()


def test_feature_names_must_match_the_policy(server, tmp_path):
    pretrained = tmp_path / "act_so101"
    pretrained.mkdir()
    (pretrained / "config.json").write_text(json.dumps({"type": "act", "input_features": {
        "observation.state": {"type": "STATE", "shape": [6]},
        "observation.images.laptop": {"type": "VISUAL", "shape": [3, 480, 640]},
        "observation.images.phone": {"type": "VISUAL", "shape": [3, 480, 640]}}}))
    with pytest.raises(PolicyLoadError, match=r"the policy expects cameras observation.images.laptop, "
                                              r"observation.images.phone but we would send "
                                              r"observation.images.front, observation.images.wrist: map them with "
                                              r"--lerobot-camera POLICY_NAME=RIG_CAMERA"):
        options(server, lerobot_pretrained=str(pretrained)).load(CAMERAS, 6)
    with pytest.raises(PolicyLoadError, match=r"expects observation.state of shape \[6\] but the robot has 7 joints"):
        options(server, lerobot_pretrained=str(pretrained), lerobot_cameras=("laptop=front", "phone=wrist")).load(
            CAMERAS, 7)
    assert server.calls == []
    policy = options(server, lerobot_pretrained=str(pretrained),
                     lerobot_cameras=("laptop=front", "phone=wrist")).load(CAMERAS, 6)
    try:
        policy.predict(observation())
        sent = server.observations[-1].observation
        np.testing.assert_array_equal(sent["phone"], observation().images["wrist"])
        assert set(server.setups[-1].lerobot_features) == {"observation.state", "observation.images.laptop",
                                                          "observation.images.phone"}
    finally:
        policy.close()


# -- run-policy --------------------------------------------------------------------------------
LEROBOT = ["--lerobot-policy", "act", "--lerobot-pretrained", "someone/act_so101", "--trust-pickle"]


def test_run_policy_rolls_out_through_a_lerobot_server(server, tmp_path, capsys):
    stats = tmp_path / "stats.json"
    code = cli.main(["run-policy", "--policy", server.url, *LEROBOT, "--episodes", "1", "--headless",
                     "--seconds", "2", "--task", "hold", "--out", str(tmp_path / "ds"), "--no-cameras",
                     "--chunk-length", "10", "--stats-json", str(stats)])
    err = capsys.readouterr().err
    assert code == 0, err
    runner = json.loads(stats.read_text())["policy"]["runner"]
    assert runner["chunks"] >= 5 and runner["errors"] == 0
    assert server.setups[0].lerobot_features.keys() == {"observation.state"}
    assert "answer latency p50" in err


@pytest.mark.parametrize("answer, reason", [
    ("nan", "policy: output has NaN in dim 2"),
    ("shape", "policy: output has shape (10, 5), expected [k, 6]"),
    ("dead", "policy: LeRobot server 127.0.0.1:"),
])
def test_run_policy_stops_the_robot_with_the_reason(server, tmp_path, capsys, answer, reason):
    def respond(obs, n):
        chunk = torch.stack(hold(obs))
        if n >= 3 and answer == "nan":
            chunk[4, 2] = float("nan")
        if n >= 3 and answer == "shape":
            chunk = chunk[:, :5]
        if n >= 3 and answer == "dead":
            server._server.stop(grace=None)
        return "reply", chunk

    server.respond = respond
    code = cli.main(["run-policy", "--policy", server.url, *LEROBOT, "--episodes", "2", "--headless",
                     "--seconds", "10", "--task", "hold", "--out", str(tmp_path), "--no-cameras",
                     "--chunk-length", "10", "--strategy", "open-loop", "--timeout", "2"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"stopped by the kill switch ({reason}" in err, err
    assert len(list(tmp_path.glob("episode_*.h5"))) == 1


def test_run_policy_refuses_a_lerobot_server_without_the_trust_flag(server, tmp_path, capsys):
    code = cli.main(["run-policy", "--policy", server.url, "--lerobot-policy", "act", "--lerobot-pretrained", "x",
                     "--headless", "--task", "hold", "--out", str(tmp_path), "--no-cameras"])
    err = capsys.readouterr().err
    assert code == 2 and "--trust-pickle" in err and "Traceback" not in err
    assert server.calls == []
