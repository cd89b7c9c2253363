"""Client of LeRobot's async-inference policy server (``lerobot+grpc://HOST:PORT``) as a :class:`Policy`.

The protocol (gRPC service ``transport.AsyncInference``, see
:mod:`policies.lerobot_proto`): ``Ready``, then ``SendPolicyInstructions`` with
a pickled ``RemotePolicyConfig`` (policy type, pretrained name or path, the
robot's features, actions per chunk, device) that makes the server load the
policy; then per answer a ``SendObservations`` stream carrying a pickled
``TimedObservation`` and ``GetActions``, whose pickled list of ``TimedAction``
is the chunk (already un-normalized). A ``GetActions`` with nothing queued
answers an empty message after the server's queue timeout; the client asks
again until its own deadline.

Observations: the joints go out as ``joint{i}.pos`` and arrive at the server's
policy as ``observation.state``; rig camera ``CAM`` goes out under the policy's
camera name (``cameras`` maps policy name to rig camera) and arrives as
``observation.images.NAME``; the task as ``task``. Every observation is sent
with ``must_go`` (the runner only asks when it wants a chunk; the server would
otherwise skip one close to the last).

The payloads are Python pickles (:mod:`policies.lerobot_pickle`): the client
refuses to be built without ``trust_pickle=True`` and so never unpickles from
a connection the user did not mark trusted. Every RPC has a deadline; a dead
server, a late or unreadable answer is a :class:`PolicyError` with a one-line
reason. One reconnect (Ready and setup again) is tried when the server is
unavailable, as a restarted server has lost its policy.

Threads: calls come from the runner's worker, one at a time; grpc runs its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from policies.base import ActionKind, Policy, PolicyError, PolicyInfo
from policies.observation import Observation

SCHEME = "lerobot+grpc://"
POLICY_TYPES = ("act", "smolvla", "diffusion", "tdmpc", "vqbet", "pi0", "pi05", "groot")
IMAGE_PREFIX = "observation.images."
PICKLE_WARNING = ("LeRobot's async-inference protocol sends Python pickles, which run code when loaded: pass "
                  "--trust-pickle only for a server you control")


def expected_features(pretrained: str) -> dict[str, Any] | None:
    """``input_features`` of the policy's ``config.json`` when ``pretrained`` is a folder here, else None."""
    path = Path(pretrained).expanduser() / "config.json"
    if not path.is_file():
        return None
    try:
        features = json.loads(path.read_text()).get("input_features")
    except (OSError, ValueError, AttributeError):
        return None
    return features if isinstance(features, dict) else None


def check_features(cameras: Mapping[str, str], n_joints: int, expected: Mapping[str, Any]) -> None:
    """PolicyError (one line, both sides) unless the policy's expected inputs are what we send."""
    ours = sorted(IMAGE_PREFIX + name for name in cameras)
    theirs = sorted(k for k in expected if k.startswith(IMAGE_PREFIX))
    if ours != theirs:
        raise PolicyError(f"the policy expects cameras {', '.join(theirs) or 'none'} but we would send "
                          f"{', '.join(ours) or 'none'}: map them with --lerobot-camera POLICY_NAME=RIG_CAMERA")
    state = expected.get("observation.state")
    shape = state.get("shape") if isinstance(state, Mapping) else None
    if shape is not None and list(shape) != [n_joints]:
        raise PolicyError(f"the policy expects observation.state of shape {list(shape)} but the robot has "
                          f"{n_joints} joints")


class LeRobotClient(Policy):
    def __init__(self, url: str, *, policy_type: str, pretrained: str, trust_pickle: bool = False,
                 cameras: Mapping[str, str] | None = None, action_dim: int, actions_per_chunk: int = 50,
                 device: str = "cpu", image_shape: Sequence[int] = (224, 224, 3), timeout_s: float = 5.0,
                 setup_timeout_s: float = 300.0) -> None:
        if not trust_pickle:
            raise PolicyError(f"refusing to connect to {url}: {PICKLE_WARNING}")
        if not url.startswith(SCHEME) or not urlsplit(url).hostname or urlsplit(url).port is None:
            raise ValueError(f"a LeRobot policy server address looks like {SCHEME}HOST:PORT, not {url!r}")
        if policy_type not in POLICY_TYPES:
            raise ValueError(f"unknown LeRobot policy type {policy_type!r} (the server runs: "
                             f"{', '.join(POLICY_TYPES)})")
        if actions_per_chunk < 1:
            raise ValueError("actions per chunk must be ≥ 1")
        self.url = url
        self.target = url[len(SCHEME):].rstrip("/")
        self.cameras = dict(cameras or {})  # policy camera name -> rig camera
        self.info = PolicyInfo(ActionKind.JOINT, action_dim, actions_per_chunk,
                               name=f"lerobot {policy_type} {pretrained} at {self.target}")
        from policies.lerobot_pickle import RemotePolicyConfig

        names = [f"joint{i}.pos" for i in range(action_dim)]
        features: dict[str, Any] = {"observation.state": {"dtype": "float32", "shape": (action_dim,),
                                                          "names": names}}
        for name in self.cameras:
            features[IMAGE_PREFIX + name] = {"dtype": "image", "shape": tuple(image_shape),
                                             "names": ["height", "width", "channels"],
                                             "info": {"is_depth_map": False}}
        self.setup = RemotePolicyConfig(policy_type, pretrained, features, actions_per_chunk, device)
        self.state_names = names
        self.timeout_s = timeout_s
        self.setup_timeout_s = setup_timeout_s
        self.reconnects = 0
        self._channel: Any = None
        self._stubs: dict[str, Any] = {}

    # -- connection -------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the channel, say Ready and have the server load the policy (may take minutes for a large one)."""
        import grpc

        from policies import lerobot_pickle as wire
        from policies import lerobot_proto as pb

        self.close()
        options = [("grpc.max_receive_message_length", pb.MAX_MESSAGE_SIZE),
                   ("grpc.max_send_message_length", pb.MAX_MESSAGE_SIZE)]
        self._channel = grpc.insecure_channel(self.target, options=options)
        unary = self._channel.unary_unary
        self._stubs = {
            "Ready": unary(pb.method("Ready"), request_serializer=pb.Empty.SerializeToString,
                           response_deserializer=pb.Empty.FromString),
            "SendPolicyInstructions": unary(pb.method("SendPolicyInstructions"),
                                            request_serializer=pb.PolicySetup.SerializeToString,
                                            response_deserializer=pb.Empty.FromString),
            "GetActions": unary(pb.method("GetActions"), request_serializer=pb.Empty.SerializeToString,
                                response_deserializer=pb.Actions.FromString),
            "SendObservations": self._channel.stream_unary(
                pb.method("SendObservations"), request_serializer=pb.Observation.SerializeToString,
                response_deserializer=pb.Empty.FromString),
        }
        self._call("Ready", pb.Empty(), self.timeout_s, "is not answering")
        self._call("SendPolicyInstructions", pb.PolicySetup(data=wire.dumps(self.setup)), self.setup_timeout_s,
                   f"did not load policy {self.setup.pretrained_name_or_path}")

    def close(self) -> None:
        channel, self._channel = self._channel, None
        self._stubs = {}
        if channel is not None:
            channel.close()

    def _call(self, name: str, request: Any, timeout: float, what: str, budget: float | None = None) -> Any:
        """``stub(request)`` within ``timeout`` s; errors say ``what`` failed (within ``budget`` s, if given)."""
        import grpc

        try:
            return self._stubs[name](request, timeout=max(timeout, 0.001))
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            detail = (exc.details() if hasattr(exc, "details") else "") or ""
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise PolicyError(f"LeRobot server {self.target} {what} within {budget or timeout:g} s") from None
            reason = code.name.lower() if code else "error"
            if detail:
                reason += f": {detail.splitlines()[0]}"
            error = _Unavailable if code == grpc.StatusCode.UNAVAILABLE else PolicyError
            raise error(f"LeRobot server {self.target} {what} ({reason})") from None

    # -- inference --------------------------------------------------------------------------
    def raw_observation(self, observation: Observation) -> dict[str, Any]:
        """The robot observation dict LeRobot's server expects from this observation."""
        q = np.asarray(observation.state.joint_pos, dtype=np.float32)
        if q.shape != (len(self.state_names),):
            raise PolicyError(f"the robot has {q.size} joints, the LeRobot policy was set up for "
                              f"{len(self.state_names)}")
        raw: dict[str, Any] = {name: float(v) for name, v in zip(self.state_names, q)}
        for name, camera in self.cameras.items():
            if camera not in observation.images:
                have = ", ".join(observation.images) or "none"
                raise PolicyError(f"no image from camera {camera} for the policy's {name} (have: {have})")
            raw[name] = np.ascontiguousarray(observation.images[camera])
        raw["task"] = observation.task
        return raw

    def predict(self, observation: Observation) -> tuple[np.ndarray, Mapping[str, float]]:
        from policies import lerobot_pickle as wire
        from policies import lerobot_proto as pb

        payload = wire.dumps(wire.TimedObservation(time.time(), int(observation.tick),
                                                   self.raw_observation(observation), must_go=True))
        deadline = time.monotonic() + self.timeout_s
        reconnected = False
        while True:
            try:
                if self._channel is None:
                    self.connect()
                self._call("SendObservations", pb.pieces(payload), deadline - time.monotonic(),
                           "took no observation", self.timeout_s)
                t_sent = time.monotonic()
                while True:
                    reply = self._call("GetActions", pb.Empty(), deadline - time.monotonic(),
                                       "sent no action chunk", self.timeout_s)
                    if reply.data:
                        break
                    if time.monotonic() >= deadline:
                        raise PolicyError(f"LeRobot server {self.target} sent no action chunk within "
                                          f"{self.timeout_s:g} s")
                break
            except _Unavailable as exc:
                self.close()
                if reconnected or time.monotonic() >= deadline:
                    raise PolicyError(str(exc)) from None
                reconnected = True
                self.reconnects += 1
        actions = self._chunk(wire, reply.data)
        return actions, {"server_ms": (time.monotonic() - t_sent) * 1e3}

    def _chunk(self, wire: Any, data: bytes) -> np.ndarray:
        try:
            timed = wire.loads(data)
        except Exception as exc:  # a payload that is not an action chunk: say what it was
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise PolicyError(f"LeRobot server {self.target} sent an unreadable chunk ({first})") from None
        if not isinstance(timed, list) or not timed or not all(isinstance(a, wire.TimedAction) for a in timed):
            raise PolicyError(f"LeRobot server {self.target} sent {type(timed).__name__}, not a list of TimedAction")
        rows = []
        for a in timed:
            value = a.action
            value = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
            rows.append(np.asarray(value, dtype=np.float64).reshape(-1))
        if len({r.shape for r in rows}) != 1:
            raise PolicyError(f"LeRobot server {self.target} sent actions of different lengths "
                              f"{sorted({r.size for r in rows})}")
        return np.stack(rows)


class _Unavailable(PolicyError):
    """The server cannot be reached (worth one reconnect)."""
