"""Remote policies against real servers in this process: openpi over websockets, OpenVLA over HTTP.

Each failure a server can produce — an error frame, no answer, a dropped
connection, the string "error" — must stop the robot with the reason and let
nothing but holds reach it afterwards.
"""

import base64
import json
import time

import msgpack
import numpy as np
import pytest

from drivers.types import RobotState
from policies import json_numpy, msgpack_numpy
from policies.base import ActionKind, PolicyError
from policies.loading import FILE_LOADERS, PolicyLoadError, load_policy, register_file_loader
from policies.observation import Observation
from policies.openpi_client import OpenPIClient, mapped_streams
from policies.openvla_client import OpenVLAClient, _parse_action
from policies.runner import PolicyRunner
from policies.strategies import make_strategy
from policy_helpers import StillCamera  # tests/ is on sys.path
from policy_servers import OpenPIServer, OpenVLAServer
from teleop_app.config import load_rig
from teleop_app.rig import build_rig
from waiting import wait_for

STATE_ONLY = {"observation/state": "state", "prompt": "task"}
TRACEBACK = ('Traceback (most recent call last):\n  File "serve_policy.py", line 80, in handler\n'
             "ValueError: expected an 8-dim state, got 6\n")


# -- encodings --------------------------------------------------------------------------------
def test_msgpack_arrays_are_maps_with_binary_keys():
    arr = np.arange(6, dtype="<f4").reshape(2, 3)
    image = np.zeros((4, 5, 3), np.uint8)
    data = msgpack_numpy.packb({"a": arr, "img": image, "s": np.float32(1.5), "prompt": "pick"})
    raw = msgpack.unpackb(data, raw=False)  # what any msgpack reader sees
    assert raw["a"] == {b"__ndarray__": True, b"data": arr.tobytes(), b"dtype": "<f4", b"shape": [2, 3]}
    assert raw["img"][b"dtype"] == "|u1" and raw["img"][b"shape"] == [4, 5, 3]
    assert raw["s"] == {b"__npgeneric__": True, b"data": 1.5, b"dtype": "<f4"}
    assert raw["prompt"] == "pick"
    back = msgpack_numpy.unpackb(data)
    np.testing.assert_array_equal(back["a"], arr)
    assert back["a"].dtype == np.float32 and not back["a"].flags.writeable  # a view of the message
    assert back["s"] == np.float32(1.5) and isinstance(back["s"], np.float32)
    for refused in (np.array([1j]), np.array([object()], dtype=object), np.zeros(2, dtype=[("x", "<f4")])):
        with pytest.raises(ValueError, match="cannot be sent"):
            msgpack_numpy.packb({"x": refused})
    crafted = msgpack.packb({b"__ndarray__": True, b"data": b"\0" * 16, b"dtype": "<c16", b"shape": [1]})
    with pytest.raises(ValueError, match="refused"):
        msgpack_numpy.unpackb(crafted)


def test_json_numpy_format():
    arr = np.array([1.0, -2.0], dtype="<f4")
    text = json_numpy.dumps({"action": arr, "n": np.int64(3)})
    assert json.loads(text) == {
        "action": {"__numpy__": base64.b64encode(arr.tobytes()).decode(), "dtype": "<f4", "shape": [2]},
        "n": {"__numpy__": base64.b64encode(np.int64(3).tobytes()).decode(), "dtype": "<i8", "shape": []},
    }
    back = json_numpy.loads(text)
    np.testing.assert_array_equal(back["action"], arr)
    assert back["n"] == 3 and isinstance(back["n"], np.int64)
    with pytest.raises(ValueError, match="cannot be sent"):
        json_numpy.dumps(np.array([object()], dtype=object))


# -- openpi -----------------------------------------------------------------------------------
def joint_chunk(obs, k=10, drift=0.002):
    """The observed joints, joint 0 moving ``drift`` rad per action."""
    q = np.asarray(obs["observation/state"], dtype=np.float32)
    actions = np.repeat(q[None, :], k, axis=0)
    actions[:, 0] += drift * np.arange(1, k + 1)
    return {"actions": actions, "policy_timing": {"infer_ms": 12.5}, "server_timing": {"infer_ms": 13.0}}


@pytest.fixture
def openpi():
    servers = []

    def make(respond, metadata=None):
        server = OpenPIServer(respond, metadata)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def start(rig, policy, strategy="async", chunk=10, timeout_s=2.0):
    runner = PolicyRunner.for_robot(rig.robot, rig.cameras, rig.config.rate_hz, policy, make_strategy(strategy, chunk),
                                    "pick up the cube", timeout_s=timeout_s)
    rig.loop.start_policy(runner)
    return runner


def held_after_kill(rig):
    """Every command after the kill is the hold (at most the tick already past its kill check sent first)."""
    t_kill = rig.kill.t_trigger
    time.sleep(0.2)
    after = [s for t, _, s in rig.robot.command_log if t > t_kill]
    return bool(after) and after.index("kill") <= 1 and set(after[after.index("kill"):]) == {"kill"}


def test_openpi_chunks_drive_the_robot(sim_rig, openpi):
    server = openpi(lambda obs, n: ("reply", joint_chunk(obs)), metadata={"reset_pose": np.zeros(6)})
    client = load_policy(server.url, mapping=STATE_ONLY, action_dim=6, timeout_s=2.0)
    assert isinstance(client, OpenPIClient) and client.healthz()
    np.testing.assert_array_equal(client.server_metadata["reset_pose"], np.zeros(6))
    sim_rig.start()
    q0 = sim_rig.robot.read().joint_pos[0]
    runner = start(sim_rig, client)
    assert wait_for(lambda: sim_rig.robot.read().joint_pos[0] - q0 > 0.05, timeout=5)
    view = runner.view()
    sim_rig.loop.stop_policy()
    client.close()
    assert not sim_rig.kill.latched and runner.stats()["chunks"] >= 3
    obs = server.requests[0]
    assert set(obs) == {"observation/state", "prompt"} and obs["prompt"] == "pick up the cube"
    assert obs["observation/state"].dtype == np.float32 and obs["observation/state"].shape == (6,)
    assert view.plan.current.timing == {"policy_infer_ms": 12.5, "server_infer_ms": 13.0}
    assert any(s == "policy" for _, _, s in sim_rig.robot.command_log)


def test_openpi_observation_mapping_with_images_and_nesting(openpi):
    server = openpi(lambda obs, n: ("reply", {"actions": np.zeros((4, 6), np.float32)}))
    image = np.full((224, 224, 3), 7, np.uint8)
    state = RobotState(0.0, np.arange(6.0), np.zeros(6), 0.5, np.zeros(3))
    obs = Observation(3, 0.0, state, "stack the blocks", {"front": image, "wrist": image})
    aloha = {"images": {"cam_high": "image_chw:front", "cam_left_wrist": "image_chw:wrist"},
             "state": "state", "prompt": "task"}
    client = OpenPIClient(server.url, mapping=aloha, action_dim=6)
    chunk = client.infer(obs)
    droid = OpenPIClient(server.url, action_dim=6, mapping={"observation/exterior_image_1_left": "image:front",
                                              "observation/joint_position": "joints",
                                              "observation/gripper_position": "gripper", "prompt": "task"})
    droid.infer(obs)
    client.close()
    droid.close()
    assert chunk.tick == 3 and chunk.actions.shape == (4, 6)
    nested, flat = server.requests
    assert nested["images"]["cam_high"].shape == (3, 224, 224) and nested["images"]["cam_high"].dtype == np.uint8
    assert np.all(nested["images"]["cam_left_wrist"] == 7) and nested["prompt"] == "stack the blocks"
    assert flat["observation/exterior_image_1_left"].shape == (224, 224, 3)
    assert flat["observation/joint_position"].tolist() == [0, 1, 2, 3, 4]
    assert flat["observation/gripper_position"].tolist() == [0.5]
    assert sorted(mapped_streams(aloha)) == ["image_chw:front", "image_chw:wrist", "state", "task"]
    with pytest.raises(PolicyError, match="observation key 'observation/image': .*no image from camera 'side'"):
        OpenPIClient(server.url, action_dim=6, mapping={"observation/image": "image:side"}).infer(obs)


def test_openpi_error_frame_stops_the_robot(sim_rig, openpi):
    server = openpi(lambda obs, n: ("error", TRACEBACK) if n == 3 else ("reply", joint_chunk(obs)))
    client = load_policy(server.url, mapping=STATE_ONLY, action_dim=6)
    sim_rig.start()
    start(sim_rig, client, "open-loop", timeout_s=5.0)
    assert wait_for(lambda: sim_rig.kill.latched, timeout=5)
    assert sim_rig.kill.reason == "policy: openpi server error: ValueError: expected an 8-dim state, got 6"
    assert held_after_kill(sim_rig)
    client.close()


def test_openpi_timeout_stops_the_robot(sim_rig, openpi):
    server = openpi(lambda obs, n: ("stall", 1.0, joint_chunk(obs)) if n == 3 else ("reply", joint_chunk(obs)))
    client = load_policy(server.url, mapping=STATE_ONLY, action_dim=6, timeout_s=0.3)
    sim_rig.start()
    start(sim_rig, client, "open-loop", timeout_s=5.0)  # the client's own receive timeout fires first
    assert wait_for(lambda: sim_rig.kill.latched, timeout=5)
    assert sim_rig.kill.reason == f"policy: openpi server {server.url}: no reply within 0.3 s"
    assert held_after_kill(sim_rig)
    client.close()


def test_openpi_dropped_connection_reconnects_once(sim_rig, openpi):
    server = openpi(lambda obs, n: ("close",) if n == 3 else ("reply", joint_chunk(obs)))
    client = load_policy(server.url, mapping=STATE_ONLY, action_dim=6)
    sim_rig.start()
    runner = start(sim_rig, client, "open-loop")
    assert wait_for(lambda: len(server.requests) >= 8, timeout=5)
    sim_rig.loop.stop_policy()
    client.close()
    assert not sim_rig.kill.latched and runner.stats()["errors"] == 0
    assert client.reconnects == 1 and server.connections == 2
    np.testing.assert_array_equal(server.requests[2]["observation/state"], server.requests[3]["observation/state"])


def test_openpi_server_that_keeps_dropping_stops_the_robot(openpi):
    """The kill must name the dropped server."""
    sim_rig = build_rig(load_rig().without_cameras(), active_input="scripted")
    server = openpi(lambda obs, n: ("close",) if n >= 3 else ("reply", joint_chunk(obs)))
    client = load_policy(server.url, mapping=STATE_ONLY, action_dim=6)
    try:
        sim_rig.start()
        start(sim_rig, client, "open-loop")
        assert wait_for(lambda: sim_rig.kill.latched, timeout=5)
        assert sim_rig.kill.reason.startswith(f"policy: openpi server {server.url} closed the connection")
        assert held_after_kill(sim_rig)
    finally:
        client.close()
        sim_rig.close()


def test_openpi_unreachable_server_is_a_clear_error():
    with pytest.raises(PolicyError, match="cannot connect to the openpi server ws://127.0.0.1:9"):
        load_policy("ws://127.0.0.1:9", action_dim=6, connect_timeout_s=1.0)
    assert not OpenPIClient("ws://127.0.0.1:9", action_dim=6).healthz(timeout_s=0.5)
    with pytest.raises(ValueError, match="give action_dim for joint actions"):
        OpenPIClient("ws://127.0.0.1:9")
    assert OpenPIClient("ws://127.0.0.1:9", action_kind=ActionKind.EE_DELTA).info.action_dim == 7


# -- OpenVLA ----------------------------------------------------------------------------------
@pytest.fixture
def openvla():
    servers = []

    def make(respond):
        server = OpenVLAServer(respond)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


FORWARD = np.array([0.0005, 0, 0, 0, 0, 0, 1.0], dtype=np.float32)  # 5 cm/s forward at 100 Hz, gripper open


def with_camera(rig):
    rig.cameras["front"] = StillCamera("front", np.full((480, 640, 3), 90, np.uint8))


def test_openvla_actions_drive_the_robot(sim_rig, openvla):
    server = openvla(lambda payload, n: ("reply", FORWARD))
    client = load_policy(f"http://127.0.0.1:{server.port}", unnorm_key="bridge_orig")
    assert isinstance(client, OpenVLAClient) and client.url == server.url
    with_camera(sim_rig)
    sim_rig.start()
    x0 = sim_rig.robot.read().ee_pos[0]
    with pytest.raises(ValueError, match="answers one action at a time: use the open-loop strategy"):
        start(sim_rig, client, "async", chunk=1)
    runner = start(sim_rig, client, "open-loop", chunk=1)
    assert wait_for(lambda: sim_rig.robot.read().ee_pos[0] - x0 > 0.01, timeout=5)
    sim_rig.loop.stop_policy()
    assert not sim_rig.kill.latched and runner.stats()["chunks"] >= 10
    payload = server.requests[0]
    assert server.paths[0] == "/act" and set(payload) == {"image", "instruction", "unnorm_key"}
    assert payload["image"].shape == (224, 224, 3) and payload["image"].dtype == np.uint8
    assert payload["instruction"] == "pick up the cube" and payload["unnorm_key"] == "bridge_orig"
    assert wait_for(lambda: sim_rig.loop.latest().source == "idle", timeout=1)  # stop_policy handed it back


def test_openvla_error_string_stops_the_robot(sim_rig, openvla):
    server = openvla(lambda payload, n: ("error",) if n == 5 else ("reply", FORWARD))
    client = load_policy(server.url)
    with_camera(sim_rig)
    sim_rig.start()
    start(sim_rig, client, "open-loop", chunk=1)
    assert wait_for(lambda: sim_rig.kill.latched, timeout=5)
    assert sim_rig.kill.reason == f'policy: OpenVLA server {server.url} answered "error" (see the server log)'
    assert held_after_kill(sim_rig)


def test_openvla_timeout_and_answer_forms(openvla):
    server = openvla(lambda payload, n: ("stall", 1.0, FORWARD))
    client = OpenVLAClient(server.url, timeout_s=0.3)
    obs = Observation(0, 0.0, RobotState(0.0, np.zeros(6), np.zeros(6), 1.0, np.zeros(3)), "t",
                      {"front": np.zeros((224, 224, 3), np.uint8)})
    with pytest.raises(PolicyError, match="no answer within 0.3 s"):
        client.predict(obs)
    double = json.dumps(json_numpy.dumps(FORWARD)).encode()  # the server's double-encoded answer
    np.testing.assert_allclose(_parse_action(double, "x"), FORWARD[None, :])
    assert _parse_action(b"[0, 0, 0, 0, 0, 0, 1]", "x").shape == (1, 7)
    with pytest.raises(PolicyError, match="not json_numpy"):
        _parse_action(b"<html>", "x")
    with pytest.raises(PolicyError, match="no image from camera 'wrist'"):
        OpenVLAClient(server.url, camera="wrist").predict(obs)


# -- loading ----------------------------------------------------------------------------------
def test_checkpoint_files_go_to_the_registered_loader(tmp_path, monkeypatch):
    ckpt = tmp_path / "policy.pt"
    ckpt.write_bytes(b"weights")
    other = tmp_path / "policy.onnx"
    other.write_bytes(b"weights")
    with pytest.raises(PolicyLoadError, match="no policy loader for .onnx files"):
        load_policy(str(other))
    with pytest.raises(PolicyLoadError, match="policy.pt: not a built-in policy checkpoint"):
        load_policy(str(ckpt))  # .pt goes to the built-in policy's loader, which names what is wrong
    with pytest.raises(PolicyLoadError, match="no such checkpoint file"):
        load_policy(str(tmp_path / "missing.pt"))
    monkeypatch.setitem(FILE_LOADERS, ".pt", "policy_helpers:load_hold")  # a lazy "module:function"
    policy = load_policy(str(ckpt), chunk=7)
    assert policy.path == ckpt and policy.chunk == 7 and policy.info.action_kind is ActionKind.JOINT
    monkeypatch.delitem(FILE_LOADERS, ".pt")
    register_file_loader(".PT", lambda path, **kw: ("loaded", path))
    monkeypatch.setitem(FILE_LOADERS, ".pt", FILE_LOADERS[".pt"])  # undone after the test
    assert load_policy(str(ckpt)) == ("loaded", ckpt)
    with pytest.raises(ValueError, match="starts with a dot"):
        register_file_loader("pt", "x:y")
    with pytest.raises(ValueError, match="ws://HOST:PORT"):
        OpenPIClient("http://x")
