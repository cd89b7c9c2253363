"""Client of an openpi policy server (pi0, pi0-FAST, pi0.5) over its websocket protocol.

The protocol: the client opens ``ws://host:port`` (no compression, no size
limit, optionally ``Authorization: Api-Key <key>``); the server first sends one
binary msgpack frame of metadata; then each request is a binary msgpack
observation dict answered by a binary msgpack result dict holding ``actions``
``[horizon, action_dim]`` (already un-normalized) and timings. A *text* frame is
the server's traceback: an error, after which it closes the connection.
``GET /healthz`` answers 200 while the server lives. Arrays travel as in
:mod:`policies.msgpack_numpy`.

A server run by ``teleop-app serve`` (:mod:`policies.serve`) puts its policy's
info in the metadata (``policy_info``); the client adopts what the user left
open (action kind, dim, chunk length, normalization) and refuses a server whose
policy contradicts what the user or the rig said.

Unlike the reference client this one has timeouts on every receive, refuses
to wait forever, and reconnects once (re-sending the observation) when the
connection drops without an error; a second failure is an error, which the
runner turns into a kill.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import ClientConnection, connect

from drivers.types import EE_DELTA_DIM
from policies import msgpack_numpy
from policies.base import ActionKind, Policy, PolicyError, PolicyInfo
from policies.observation import ActionStats, Observation

DEFAULT_MAPPING: dict[str, Any] = {
    "observation/image": "image:front",
    "observation/wrist_image": "image:wrist",
    "observation/state": "state",
    "prompt": "task",
}
"""Server key -> observation stream (see :meth:`Observation.stream`); a nested mapping
makes a nested dict (ALOHA configs: ``{"images": {"cam_high": "image_chw:front"}, ...}``)."""


def build_request(observation: Observation, mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The observation dict a server expects, following ``mapping``."""
    out: dict[str, Any] = {}
    for key, source in mapping.items():
        if isinstance(source, Mapping):
            out[key] = build_request(observation, source)
            continue
        try:
            out[key] = observation.stream(source)
        except KeyError as exc:
            raise PolicyError(f"observation key {key!r}: {exc.args[0]}") from None
    return out


def mapped_streams(mapping: Mapping[str, Any]) -> list[str]:
    """Every stream name ``mapping`` uses (to check a rig has those cameras before starting)."""
    out: list[str] = []
    for source in mapping.values():
        out.extend(mapped_streams(source) if isinstance(source, Mapping) else [source])
    return out


class OpenPIClient(Policy):
    def __init__(self, url: str, *, action_kind: ActionKind | None = None, action_dim: int | None = None,
                 chunk_length: int | None = None, mapping: Mapping[str, Any] | None = None,
                 api_key: str | None = None, timeout_s: float = 5.0, connect_timeout_s: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"an openpi server address looks like ws://HOST:PORT, not {url!r}")
        self._given = {"action_kind": action_kind, "action_dim": action_dim, "chunk_length": chunk_length}
        action_kind = ActionKind.JOINT if action_kind is None else action_kind
        if action_dim is None:
            if action_kind is not ActionKind.EE_DELTA:
                raise ValueError("give action_dim for joint actions (the robot's number of joints)")
            action_dim = EE_DELTA_DIM
        self.url = url
        self.info = PolicyInfo(action_kind, action_dim, chunk_length, name=f"openpi {url}")
        self.mapping = dict(DEFAULT_MAPPING if mapping is None else mapping)
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.server_metadata: dict[str, Any] = {}
        self.reconnects = 0
        self._ws: ClientConnection | None = None

    # -- connection -------------------------------------------------------------------------
    def connect(self) -> dict[str, Any]:
        """Open the connection and read the server's metadata frame (returned and kept)."""
        self.close()
        headers = {"Authorization": f"Api-Key {self.api_key}"} if self.api_key else None
        try:
            ws = connect(self.url, compression=None, max_size=None, proxy=None, additional_headers=headers,
                         open_timeout=self.connect_timeout_s, close_timeout=1.0, legacy=True)
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise PolicyError(f"cannot connect to the openpi server {self.url}: {_describe(exc)}") from None
        try:
            first = ws.recv(timeout=self.connect_timeout_s)
        except (TimeoutError, ConnectionClosed) as exc:
            ws.close()
            raise PolicyError(f"openpi server {self.url} sent no metadata: {_describe(exc)}") from None
        if isinstance(first, str):
            ws.close()
            raise PolicyError(f"openpi server {self.url} error: {_last_line(first)}")
        metadata = msgpack_numpy.unpackb(first)
        self.server_metadata = metadata if isinstance(metadata, dict) else {}
        served = self.server_metadata.get("policy_info")
        if isinstance(served, dict):
            try:
                self.info = self._adopt(served)
            except PolicyError:
                ws.close()
                raise
        self._ws = ws
        return self.server_metadata

    def _adopt(self, served: dict[str, Any]) -> PolicyInfo:
        """This client's info with the served policy's filled in; PolicyError where they contradict."""
        try:
            kind = ActionKind(served["action_kind"])
            dim = int(served["action_dim"])
            chunk = None if served.get("chunk_length") is None else int(served["chunk_length"])
            stats = ActionStats.from_dict(served["stats"]) if served.get("stats") else None
        except (KeyError, TypeError, ValueError) as exc:
            raise PolicyError(f"openpi server {self.url} sent unreadable policy_info ({exc})") from None
        given = self._given
        if given["action_kind"] is not None and given["action_kind"] is not kind:
            raise PolicyError(f"the policy served at {self.url} answers {kind.value} actions, not "
                              f"{given['action_kind'].value}")
        expected = EE_DELTA_DIM if kind is ActionKind.EE_DELTA else given["action_dim"]
        if expected is not None and dim != expected:
            raise PolicyError(f"the policy served at {self.url} answers {dim}-dim {kind.value} actions, this robot "
                              f"takes {expected}")
        if given["chunk_length"] is not None and chunk is not None and chunk != given["chunk_length"]:
            raise PolicyError(f"the policy served at {self.url} answers {chunk} actions per chunk, not "
                              f"{given['chunk_length']}")
        name = str(served.get("name") or "")
        return PolicyInfo(kind, dim, chunk if chunk is not None else given["chunk_length"],
                          name=f"openpi {self.url}" + (f" ({name})" if name else ""),
                          normalization=str(served.get("normalization") or "none"), stats=stats)

    def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            ws.close()

    def healthz(self, timeout_s: float = 2.0) -> bool:
        """True if ``GET /healthz`` on the server's HTTP port answers 200."""
        parts = urlsplit(self.url)
        conn_class = http.client.HTTPSConnection if parts.scheme == "wss" else http.client.HTTPConnection
        conn = conn_class(parts.hostname, parts.port or (443 if parts.scheme == "wss" else 80), timeout=timeout_s)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    # -- inference --------------------------------------------------------------------------
    def predict(self, observation: Observation) -> tuple[np.ndarray, Mapping[str, float]]:
        request = msgpack_numpy.packb(build_request(observation, self.mapping))
        reply = self._roundtrip(request)
        if not isinstance(reply, dict) or "actions" not in reply:
            keys = ", ".join(map(str, reply)) if isinstance(reply, dict) else type(reply).__name__
            raise PolicyError(f"openpi server {self.url} replied without 'actions' ({keys})")
        timing = {}
        for group in ("policy_timing", "server_timing"):
            for name, value in (reply.get(group) or {}).items():
                if isinstance(value, (int, float)):
                    timing[f"{group.split('_')[0]}_{name}"] = float(value)
        return np.array(reply["actions"]), timing

    def _roundtrip(self, request: bytes) -> Any:
        deadline = time.monotonic() + self.timeout_s
        reconnected = False
        while True:
            if self._ws is None:
                self.connect()
            try:
                self._ws.send(request)
                reply = self._ws.recv(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                self.close()  # a late reply would answer the next request: start afresh next time
                raise PolicyError(f"openpi server {self.url}: no reply within {self.timeout_s:g} s") from None
            except ConnectionClosed as exc:
                self.close()
                if not reconnected and time.monotonic() < deadline:
                    reconnected = True
                    self.reconnects += 1
                    continue
                raise PolicyError(f"openpi server {self.url} closed the connection ({_describe(exc)})") from None
            if isinstance(reply, str):
                self.close()
                raise PolicyError(f"openpi server error: {_last_line(reply)}")
            return msgpack_numpy.unpackb(reply)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(empty error message)"


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
