"""`teleop-app serve`: a real server subprocess, spoken to by raw websockets, our client and `run-policy`.

The served policies are a tiny built-in checkpoint trained here on synthetic
episodes, and ``.hold`` policies of :mod:`serve_child` that misbehave on a
given call (raise, NaN, wrong shape). Server processes are real; one is killed
with SIGKILL mid-rollout, one stopped with SIGINT as Ctrl+C would.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from policies import msgpack_numpy
from policies.builtin.options import TrainOptions
from policies.builtin.train import train
from policies.loading import LoadOptions
from recordings.reader import Episode
from synthetic_episodes import make_episode  # tests/ is on sys.path
from teleop_app import cli
from waiting import wait_for

CHILD = Path(__file__).resolve().parent / "serve_child.py"
SMALL = {"image_size": 32, "steps": 4, "stride": 5, "channels": 8, "threads": 1}
FRONT_MAP = ["--obs-map", "observation/image=image:front", "--obs-map", "observation/state=state",
             "--obs-map", "prompt=task"]
STATE_MAP = ["--obs-map", "observation/state=state", "--obs-map", "prompt=task"]

run_cli = cli.main  # run-policy as teleop-app runs it, in this process


class Served:
    """``teleop-app serve ARGV`` in a subprocess on a free port; its stderr collected line by line."""

    def __init__(self, *argv: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(CHILD), "serve", *argv, "--port", "0"],
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert wait_for(lambda: self.url is not None or self.proc.poll() is not None, 60), self.err
        assert self.url is not None, self.err

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def err(self) -> str:
        return "".join(self.lines)

    @property
    def url(self) -> str | None:
        m = re.search(r" on (ws://[\d.]+:\d+) ", self.err)
        return m.group(1) if m else None

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def wait(self, timeout: float = 10) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout=2)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny built-in policy on the synthetic episodes (camera ``front``, the sim's joints)."""
    folder = tmp_path_factory.mktemp("demos")
    for i in range(2):
        make_episode(folder / f"episode_{i + 1:06d}.h5", seconds=2.0, seed=i)
    out = folder.parent / "tiny.pt"
    train(folder, out, TrainOptions(epochs=2, **SMALL))
    return out


def hold_policy(tmp_path: Path, bad: dict | None = None, chunk: int = 20) -> str:
    path = tmp_path / "policy.hold"
    path.write_text(json.dumps({"chunk": chunk, "bad": bad or {}}))
    return str(path)


def healthz(port: int) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def request(state: np.ndarray) -> dict:
    """An observation as our client's default mapping sends it."""
    image = np.full((224, 224, 3), 90, np.uint8)
    return {"observation/image": image, "observation/wrist_image": image,
            "observation/state": state.astype(np.float32), "prompt": "pick up the cube"}


# -- the protocol ------------------------------------------------------------------------------
def test_the_wire_follows_openpi(checkpoint):
    server = Served(str(checkpoint))
    try:
        assert healthz(server.port) == (200, b"OK\n")
        with connect(server.url, compression=None, max_size=None, open_timeout=10) as ws:
            first = ws.recv(timeout=10)
            assert isinstance(first, bytes)  # one binary metadata frame
            metadata = msgpack_numpy.unpackb(first)
            assert metadata["policy_info"] == {"name": "tiny.pt", "action_kind": "joint", "action_dim": 6,
                                               "chunk_length": 16, "normalization": "none", "stats": None}
            ws.send(msgpack_numpy.packb({"__ctrl__": "episode_start", "__experiment__": "x", "__task__": "",
                                         "__episode_id__": 1}))
            assert msgpack_numpy.unpackb(ws.recv(timeout=10)) == {"__ack__": "episode_start"}
            replies = []
            for _ in range(3):  # strictly alternating
                ws.send(msgpack_numpy.packb(request(np.zeros(6))))
                raw = ws.recv(timeout=10)
                assert isinstance(raw, bytes)
                replies.append(msgpack_numpy.unpackb(raw))
        actions = replies[0]["actions"]
        assert actions.dtype == np.float32 and actions.shape == (16, 6) and np.all(np.isfinite(actions))
        assert replies[0]["policy_timing"]["infer_ms"] > 0 and replies[0]["server_timing"]["infer_ms"] > 0
        assert "prev_total_ms" not in replies[0]["server_timing"]
        assert replies[2]["server_timing"]["prev_total_ms"] >= replies[1]["server_timing"]["infer_ms"]
        np.testing.assert_array_equal(replies[1]["actions"], actions)  # same observation, same answer

        # our client adopts the served policy's info; a rig it contradicts is refused at connect
        client = LoadOptions(spec=server.url).load(["front", "wrist"], 6)
        try:
            assert (client.info.chunk_length, client.info.action_dim, client.info.name) == (
                16, 6, f"openpi {server.url} (tiny.pt)")
            assert client.healthz()
        finally:
            client.close()
        with pytest.raises(Exception, match="answers 6-dim joint actions, this robot takes 7"):
            LoadOptions(spec=server.url).load(["front", "wrist"], 7)
        with pytest.raises(Exception, match="answers joint actions, not ee_delta"):
            LoadOptions(spec=server.url, action_kind="ee_delta").load(["front", "wrist"], 6)
        assert server.proc.poll() is None
    finally:
        server.stop()


def test_a_bad_request_is_an_error_frame_then_1011(checkpoint):
    server = Served(str(checkpoint))
    try:
        with connect(server.url, compression=None, max_size=None, open_timeout=10) as ws:
            ws.recv(timeout=10)
            ws.send(msgpack_numpy.packb({"prompt": "no state"}))
            text = ws.recv(timeout=10)
            assert isinstance(text, str) and text.startswith("Traceback (most recent call last)")
            assert "PolicyError: the observation has no joint state (keys: prompt" in text
            with pytest.raises(Exception):
                ws.recv(timeout=10)
            assert ws.protocol.close_rcvd.code == 1011
        assert healthz(server.port)[0] == 200  # one broken connection does not stop the server
    finally:
        server.stop()


# -- run-policy through serve ------------------------------------------------------------------
def test_run_policy_drives_the_sim_through_a_served_checkpoint(checkpoint, tmp_path, capsys):
    server = Served(str(checkpoint), *FRONT_MAP)
    try:
        stats_file = tmp_path / "stats.json"
        code = run_cli(["run-policy", "--policy", server.url, "--episodes", "1", "--headless", "--seconds", "3",
                        "--task", "pick up the cube", "--out", str(tmp_path / "ds"), "--seed", "3",
                        "--stats-json", str(stats_file), *FRONT_MAP])
        err = capsys.readouterr().err
        assert code == 0, err + server.err
        assert re.search(r"answer latency p50 \d+ ms / max \d+ ms", err), err
        stats = json.loads(stats_file.read_text())
        runner = stats["policy"]["runner"]
        assert runner["chunks"] >= 5 and runner["errors"] == 0 and not stats["kill"]["latched"]
        [path] = (tmp_path / "ds").glob("episode_*.h5")
        with Episode.open(path) as ep:
            ticks = ep.ticks()
            assert ep.meta["notes"].startswith(f"policy {server.url}, strategy async, threshold half a chunk")
        assert set(ticks["source_names"][ticks["source"]]) == {"policy"}
        assert "client 127.0.0.1:" in server.err and "connected" in server.err
    finally:
        server.stop()


@pytest.mark.parametrize("bad, reason", [
    ("raise", "policy: openpi server error: second line: CUDA out of memory"),
    (["sleep", 4.0], "policy: (no answer within 1.00 s|openpi server ws://127.0.0.1:\\d+: no reply within 1 s)"),
    ("nan", "policy: output has NaN in dim 3"),
    ("shape", "policy: openpi server error: policies.base.PolicyError: hold answered float64 (20, 5), "
              "its info says [k, 6] numbers"),
])
def test_a_failing_served_policy_stops_the_robot_with_the_reason(tmp_path, capsys, bad, reason):
    server = Served(hold_policy(tmp_path, {"3": bad}), *STATE_MAP)
    try:
        code = run_cli(["run-policy", "--policy", server.url, "--episodes", "2", "--headless", "--seconds", "10",
                        "--task", "hold", "--out", str(tmp_path / "ds"), "--no-cameras", "--strategy", "open-loop",
                        "--timeout", "1", *STATE_MAP])
        err = capsys.readouterr().err
        assert code == 1, err
        stopped = re.search(r"stopped by the kill switch \((.*)\); the last episode", err)
        assert stopped and re.fullmatch(reason if isinstance(bad, list) else re.escape(reason), stopped[1]), err
        [path] = (tmp_path / "ds").glob("episode_*.h5")
        with Episode.open(path) as ep:
            assert ep.meta["success"] == "false" and stopped[1] in ep.meta["notes"]
        if bad in ("raise", "shape"):
            assert "error answering 127.0.0.1:" in server.err
        assert healthz(server.port)[0] == 200
    finally:
        server.stop()


def test_a_server_killed_mid_rollout_stops_run_policy(tmp_path, capsys):
    server = Served(hold_policy(tmp_path), *STATE_MAP)
    killed = threading.Event()

    def kill_when_serving() -> None:
        if wait_for(lambda: "connected" in server.err, 60):
            time.sleep(1.0)  # the rollout is under way: answers have been flowing for a second
            os.kill(server.proc.pid, signal.SIGKILL)
            killed.set()

    killer = threading.Thread(target=kill_when_serving, daemon=True)
    killer.start()
    try:
        code = run_cli(["run-policy", "--policy", server.url, "--episodes", "1", "--headless", "--seconds", "20",
                        "--task", "hold", "--out", str(tmp_path / "ds"), "--no-cameras", "--timeout", "2",
                        *STATE_MAP])
        err = capsys.readouterr().err
        assert killed.is_set() and code == 1, err
        assert re.search(r"stopped by the kill switch \(policy: (cannot connect to|openpi server "
                         r"ws://127\.0\.0\.1:\d+ closed the connection)", err), err
        assert server.wait() == -signal.SIGKILL
    finally:
        killer.join(timeout=5)
        server.stop()


# -- the command -------------------------------------------------------------------------------
def test_ctrl_c_stops_the_server_and_a_public_address_is_announced(tmp_path):
    server = Served(hold_policy(tmp_path), "--host", "0.0.0.0", *STATE_MAP)
    try:
        assert "warning: listening on 0.0.0.0:" in server.err and "no authentication" in server.err
        assert healthz(server.port)[0] == 200
        with connect(f"ws://127.0.0.1:{server.port}", compression=None, max_size=None, open_timeout=10) as ws:
            ws.recv(timeout=10)
            ws.send(msgpack_numpy.packb({"observation/state": np.zeros(6, np.float32), "prompt": "hold"}))
            assert msgpack_numpy.unpackb(ws.recv(timeout=10))["actions"].shape == (20, 6)
            server.proc.send_signal(signal.SIGINT)  # with a client connected: it is told the server goes away
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=10)
            assert ws.protocol.close_rcvd.code == 1001
        assert server.wait() == 0
        assert "serve: stopped after 1 request(s)" in server.err and "Traceback" not in server.err
    finally:
        server.stop()
    local = Served(hold_policy(tmp_path))
    try:
        assert "warning" not in local.err and local.url.startswith("ws://127.0.0.1:")
    finally:
        local.stop()


@pytest.mark.parametrize("argv, message", [
    (["ws://127.0.0.1:9"], "ws://127.0.0.1:9 is a policy server already: serve takes a checkpoint file"),
    (["/no/such/policy.pt"], "no such checkpoint file"),
    (["x.pt", "--obs-map", "state"], "--obs-map takes KEY=STREAM, not 'state'"),
])
def test_bad_serve_arguments_are_one_line_errors(capsys, argv, message):
    assert run_cli(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
