"""Serving any loadable policy over the openpi websocket protocol (``teleop-app serve``).

The wire protocol is openpi's, to the letter, so openpi's own client and ours
(:mod:`policies.openpi_client`) both work: on connect the server sends one
binary msgpack frame of metadata; then strictly alternating, the client sends a
binary msgpack observation dict and gets a binary msgpack result dict
``{"actions": [k, dim] float32, "policy_timing": {...}, "server_timing":
{"infer_ms", "prev_total_ms"}}``. A failure while answering sends the traceback
as a *text* frame and closes with code 1011 (the server keeps serving other
connections). ``GET /healthz`` answers 200 ``OK``. Arrays are encoded as in
:mod:`policies.msgpack_numpy`. Newer openpi clients mark episodes with
``{"__ctrl__": "episode_start" | "episode_end", ...}``; those get
``{"__ack__": ...}`` (the start resets the policy) and are not inferences.

An observation dict is turned back into an :class:`~policies.observation.Observation`
by inverting a client mapping (by default the client's
:data:`~policies.openpi_client.DEFAULT_MAPPING`): ``state`` gives the joints,
``image:CAM`` / ``image_chw:CAM`` the camera images, ``task`` the prompt.
Streams the protocol does not carry (joint velocities, the measured end
effector) are zeros: a served policy may only rely on what its mapping sends.

The metadata frame holds ``policy_info`` (action kind, dim, chunk length,
name, normalization and its statistics) and ``observation_keys`` (the
mapping), which our client adopts when it connects.

Threads: the websockets server runs one thread per connection; the policy is
called under a lock, one inference at a time (the :class:`Policy` contract).
"""

from __future__ import annotations

import http
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.sync.server import Server, ServerConnection, serve

from policies import msgpack_numpy
from policies.base import Policy, PolicyError, PolicyInfo
from policies.observation import Observation
from drivers.types import RobotState

METADATA_KEY = "policy_info"


def policy_metadata(info: PolicyInfo, mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata frame for a policy with ``info`` reading observations through ``mapping``."""
    return {
        METADATA_KEY: {
            "name": info.name, "action_kind": info.action_kind.value, "action_dim": info.action_dim,
            "chunk_length": info.chunk_length, "normalization": info.normalization,
            "stats": None if info.stats is None else info.stats.to_dict(),
        },
        "observation_keys": _plain(mapping),
    }


def _plain(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) if isinstance(v, Mapping) else v for k, v in mapping.items()}


def to_observation(request: Mapping[str, Any], mapping: Mapping[str, Any], tick: int) -> Observation:
    """The :class:`Observation` a client built ``request`` from, following its ``mapping``.

    Keys the mapping names but the request lacks are left out (the policy says
    what it misses); the joints come from ``state``, or ``joints`` + ``gripper``.
    """
    found: dict[str, Any] = {}
    _collect(request, mapping, found)
    images: dict[str, np.ndarray] = {}
    for stream, value in found.items():
        kind, _, camera = stream.partition(":")
        if kind in ("image", "image_chw") and camera:
            image = np.asarray(value)
            if image.ndim != 3:
                raise PolicyError(f"{stream}: an image is 3-dimensional, got shape {image.shape}")
            images[camera] = np.ascontiguousarray(image.transpose(1, 2, 0) if kind == "image_chw" else image)
    if "state" in found:
        q = np.asarray(found["state"], dtype=np.float64).reshape(-1)
    elif "joints" in found and "gripper" in found:
        q = np.concatenate([np.asarray(found["joints"], np.float64).reshape(-1),
                            np.asarray(found["gripper"], np.float64).reshape(-1)])
    else:
        raise PolicyError(f"the observation has no joint state (keys: {', '.join(map(str, request)) or 'none'}; "
                          "the mapping reads it from 'state', or 'joints' and 'gripper')")
    gripper = float(np.asarray(found["gripper"]).reshape(-1)[0]) if "gripper" in found else 0.0
    ee_pos = np.asarray(found["ee_pos"], np.float64).reshape(3) if "ee_pos" in found else np.zeros(3)
    tick = int(found["tick"]) if "tick" in found else tick
    t = time.monotonic()
    state = RobotState(t_host=t, joint_pos=q, joint_vel=np.zeros_like(q), gripper=gripper, ee_pos=ee_pos)
    task = found.get("task", "")
    return Observation(tick=tick, t=t, state=state, task=task if isinstance(task, str) else str(task),
                       images=images, image_times={c: t for c in images})


def _collect(request: Mapping[str, Any], mapping: Mapping[str, Any], out: dict[str, Any]) -> None:
    for key, source in mapping.items():
        if key not in request:
            continue
        if isinstance(source, Mapping):
            if isinstance(request[key], Mapping):
                _collect(request[key], source, out)
        else:
            out[source] = request[key]


class PolicyServer:
    """Serves ``policy`` on ``host:port`` (port 0: any free port) until :meth:`close`.

    ``on_event`` receives one-line log messages (connections, errors).
    """

    def __init__(self, policy: Policy, mapping: Mapping[str, Any], host: str = "127.0.0.1", port: int = 8000,
                 *, on_event: Callable[[str], None] | None = None) -> None:
        self.policy = policy
        self.mapping = dict(mapping)
        self.metadata = msgpack_numpy.packb(policy_metadata(policy.info, self.mapping))
        self.on_event = on_event or (lambda message: None)
        self.requests = 0
        self._lock = threading.Lock()  # one inference at a time
        self._server: Server = serve(self._handle, host, port, compression=None, max_size=None,
                                     process_request=self._health)
        self.host, self.port = self._server.socket.getsockname()[:2]

    def serve_forever(self) -> None:
        """Answer connections until :meth:`close` is called (from another thread or a signal handler)."""
        self._server.serve_forever()

    def close(self) -> None:
        self._server.shutdown()

    @staticmethod
    def _health(connection: ServerConnection, request: Any) -> Any:
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        return None

    def _handle(self, ws: ServerConnection) -> None:
        peer = "%s:%s" % ws.remote_address[:2]
        self.on_event(f"client {peer} connected")
        ws.send(self.metadata)
        prev_total_ms: float | None = None
        while True:
            try:
                message = ws.recv()
            except ConnectionClosed:
                self.on_event(f"client {peer} disconnected")
                return
            t_start = time.monotonic()
            try:
                request = self._decode(message)
                if "__ctrl__" in request:  # openpi's episode_start / episode_end: acknowledged, not timed
                    ws.send(msgpack_numpy.packb(self._control(request)))
                    continue
                reply = self._answer(request)
                reply["server_timing"] = {"infer_ms": (time.monotonic() - t_start) * 1e3}
                if prev_total_ms is not None:
                    reply["server_timing"]["prev_total_ms"] = prev_total_ms
                ws.send(msgpack_numpy.packb(reply))
            except ConnectionClosed:
                self.on_event(f"client {peer} disconnected")
                return
            except Exception as exc:  # any failure of the policy becomes the protocol's error frame
                text = traceback.format_exc()
                self.on_event(f"error answering {peer}: {type(exc).__name__}: {exc}".splitlines()[0])
                try:
                    ws.send(text)
                    ws.close(CloseCode.INTERNAL_ERROR, "Internal server error. Traceback included in previous frame.")
                except ConnectionClosed:
                    pass
                return
            prev_total_ms = (time.monotonic() - t_start) * 1e3

    @staticmethod
    def _decode(message: str | bytes) -> Mapping[str, Any]:
        if isinstance(message, str):
            raise PolicyError("expected a binary msgpack observation, got a text frame")
        request = msgpack_numpy.unpackb(message)
        if not isinstance(request, Mapping):
            raise PolicyError(f"expected an observation dict, got {type(request).__name__}")
        return request

    def _control(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The acknowledgement of an episode marker; a new episode resets the policy's per-episode state."""
        ctrl = request["__ctrl__"]
        if ctrl == "episode_start":
            with self._lock:
                self.policy.reset()
        return {"__ack__": ctrl if ctrl in ("episode_start", "episode_end") else "ignored"}

    def _answer(self, request: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.requests += 1
            observation = to_observation(request, self.mapping, self.requests)
            actions, timing = self.policy.predict(observation)
        actions = np.asarray(actions)
        info = self.policy.info
        if actions.ndim != 2 or actions.shape[1] != info.action_dim or actions.dtype.kind not in "biuf":
            raise PolicyError(f"{info.name or 'the policy'} answered {actions.dtype} {actions.shape}, "
                              f"its info says [k, {info.action_dim}] numbers")
        policy_timing = {k: float(v) for k, v in timing.items() if isinstance(v, (int, float))}
        return {"actions": actions.astype(np.float32), "policy_timing": policy_timing}
