"""``load_policy(spec)``: a policy from a server address or a checkpoint file.

``ws://HOST:PORT`` (or ``wss://``) connects to an openpi server,
``http(s)://HOST:PORT/act`` talks to an OpenVLA deploy server,
``lerobot+grpc://HOST:PORT`` to LeRobot's async-inference policy server (only
with ``trust_pickle``: its protocol carries Python pickles), anything else is a
checkpoint file loaded by the loader registered for its suffix.

Checkpoint loaders are ``"module:function"`` targets imported only when a file
of that kind is loaded (the torch-based built-in policy must not be imported
otherwise); ``function(path, **options)`` returns a :class:`~policies.base.Policy`.
Packages add theirs to :data:`FILE_LOADERS` or call :func:`register_file_loader`.

:class:`LoadOptions` is what a user says about a policy (``teleop-app run-policy``'s
options, the Policy tab's fields); :meth:`LoadOptions.load` turns them into the
client's options for a rig's cameras and joints and loads the policy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies.base import ActionKind, Policy

SERVER_SCHEMES = ("ws://", "wss://", "http://", "https://", "lerobot+grpc://")

FILE_LOADERS: dict[str, str | Callable[..., Policy]] = {".pt": "policies.builtin.checkpoint:load"}
"""Checkpoint suffix (``".pt"``) -> loader, as ``"module:function"`` or a callable."""


class PolicyLoadError(ValueError):
    """A policy spec that cannot be loaded; the message names the fix."""


def is_server(spec: str) -> bool:
    """``spec`` names a policy server (else a checkpoint file)."""
    return spec.strip().startswith(SERVER_SCHEMES)


@dataclass(frozen=True)
class LoadOptions:
    """What to load and, for servers, how to talk to it (the options of ``teleop-app run-policy``)."""

    spec: str  # ws://HOST:PORT, http://HOST:PORT/act or a checkpoint file
    action_kind: str | None = None  # servers: "joint" or "ee_delta"; None: the client's default
    chunk_length: int | None = None  # servers: actions per answer, if known
    obs_map: tuple[str, ...] | None = None  # openpi: "KEY=STREAM" items; None: the default mapping
    camera: str | None = None  # OpenVLA: the camera whose image is sent (None: the first)
    unnorm_key: str | None = None  # OpenVLA: dataset statistics to un-normalize with
    timeout_s: float = 5.0  # an answer later than this stops the robot
    lerobot_policy: str | None = None  # LeRobot: the server-side policy type (act, smolvla, pi0, …)
    lerobot_pretrained: str | None = None  # LeRobot: the policy's hub id or path on the server
    lerobot_device: str = "cpu"  # LeRobot: where the server runs the policy
    lerobot_cameras: tuple[str, ...] | None = None  # LeRobot: "POLICY_NAME=RIG_CAMERA" items; None: every camera
    trust_pickle: bool = False  # LeRobot: the user accepts that the server's pickles run code here

    def client_options(self, cameras: Sequence[str], n_joints: int) -> dict[str, Any]:
        """``load_policy`` options for a rig with these cameras and joints (servers only; {} for files).

        Raises :class:`PolicyLoadError` when the options do not fit the rig (a mapped camera it lacks, …).
        """
        spec = self.spec.strip()
        cameras = list(cameras)
        options: dict[str, Any] = {"timeout_s": self.timeout_s}
        if self.action_kind is not None:
            options["action_kind"] = ActionKind(self.action_kind)
        if spec.startswith(("ws://", "wss://")):
            from policies.openpi_client import DEFAULT_MAPPING, mapped_streams

            options["chunk_length"] = self.chunk_length
            if options.get("action_kind", ActionKind.JOINT) is ActionKind.JOINT:
                options["action_dim"] = n_joints
            mapping = DEFAULT_MAPPING if self.obs_map is None else dict(key_stream(i) for i in self.obs_map)
            missing = sorted({s.partition(":")[2] for s in mapped_streams(mapping) if s.startswith("image")}
                             - set(cameras))
            if missing:
                raise PolicyLoadError(f"the observation map uses camera(s) {', '.join(missing)} but the rig has "
                                      f"{', '.join(cameras) or 'none'}: pass --obs-map KEY=STREAM for what the "
                                      "server needs")
            options["mapping"] = mapping
        elif spec.startswith("lerobot+grpc://"):
            options.update(self._lerobot_options(cameras, n_joints))
        elif spec.startswith(("http://", "https://")):
            camera = self.camera or (cameras[0] if cameras else None)
            if camera is None or camera not in cameras:
                raise PolicyLoadError(f"OpenVLA needs a camera image; the rig has {', '.join(cameras) or 'no camera'}")
            options.update(camera=camera, unnorm_key=self.unnorm_key)
            if options.get("action_kind") is ActionKind.JOINT:
                options["action_dim"] = n_joints
        else:
            return {}
        return options

    def _lerobot_options(self, cameras: list[str], n_joints: int) -> dict[str, Any]:
        from policies.base import PolicyError
        from policies.lerobot_client import check_features, expected_features

        if not self.trust_pickle:
            from policies.lerobot_client import PICKLE_WARNING

            raise PolicyLoadError(f"refusing to connect to {self.spec.strip()}: {PICKLE_WARNING}")
        if not self.lerobot_policy or not self.lerobot_pretrained:
            raise PolicyLoadError("a LeRobot server needs --lerobot-policy TYPE and --lerobot-pretrained "
                                  "NAME_OR_PATH (what it should load)")
        if self.action_kind not in (None, "joint"):
            raise PolicyLoadError("LeRobot policies answer joint targets: leave out --action-kind")
        if self.lerobot_cameras is None:
            mapping = {c: c for c in cameras}
        else:
            mapping = dict(key_stream(i, "--lerobot-camera", "POLICY_NAME=RIG_CAMERA") for i in self.lerobot_cameras)
        missing = sorted(set(mapping.values()) - set(cameras))
        if missing:
            raise PolicyLoadError(f"--lerobot-camera uses camera(s) {', '.join(missing)} but the rig has "
                                  f"{', '.join(cameras) or 'none'}")
        expected = expected_features(self.lerobot_pretrained)
        if expected is not None:
            try:
                check_features(mapping, n_joints, expected)
            except PolicyError as exc:
                raise PolicyLoadError(str(exc)) from None
        return {"policy_type": self.lerobot_policy, "pretrained": self.lerobot_pretrained,
                "device": self.lerobot_device, "cameras": mapping, "action_dim": n_joints,
                "actions_per_chunk": self.chunk_length or 50, "trust_pickle": True}

    def load(self, cameras: Sequence[str], n_joints: int) -> Policy:
        """Connect to the server or load the checkpoint, for a rig with these cameras and joints."""
        return load_policy(self.spec.strip(), **self.client_options(cameras, n_joints))


def key_stream(item: str, flag: str = "--obs-map", form: str = "KEY=STREAM") -> tuple[str, str]:
    key, sep, stream = item.partition("=")
    if not sep or not key or not stream:
        raise PolicyLoadError(f"{flag} takes {form}, not {item!r}")
    return key, stream


def register_file_loader(suffix: str, loader: str | Callable[..., Policy]) -> None:
    if not suffix.startswith("."):
        raise ValueError(f"a checkpoint suffix starts with a dot, e.g. '.pt', not {suffix!r}")
    FILE_LOADERS[suffix.lower()] = loader


def preload_file_loaders() -> list[str]:
    """Import every registered checkpoint loader's module (and so its libraries: torch); returns their names.

    Importing torch initialises C code that holds the GIL for a few hundred ms: a
    program whose control loop is already running must do this before the loop
    starts, so that loading a checkpoint later does not stall the loop.
    """
    done = []
    for loader in FILE_LOADERS.values():
        if isinstance(loader, str):
            module = loader.partition(":")[0]
            importlib.import_module(module)
            done.append(module)
    return done


def load_policy(spec: str, **options: Any) -> Policy:
    """The policy ``spec`` names; ``options`` go to the client or loader (e.g. ``action_kind``,
    ``mapping`` and ``timeout_s`` for an openpi server). A server is connected to before returning."""
    if spec.startswith(("ws://", "wss://")):
        from policies.openpi_client import OpenPIClient

        client = OpenPIClient(spec, **options)
        client.connect()
        return client
    if spec.startswith("lerobot+grpc://"):
        from policies.lerobot_client import LeRobotClient

        lerobot = LeRobotClient(spec, **options)
        try:
            lerobot.connect()
        except BaseException:
            lerobot.close()
            raise
        return lerobot
    if spec.startswith(("http://", "https://")):
        from policies.openvla_client import OpenVLAClient

        return OpenVLAClient(spec, **options)
    path = Path(spec)
    if not path.is_file():
        raise PolicyLoadError(f"{spec}: no such checkpoint file (a server is ws://HOST:PORT for openpi, "
                              "http://HOST:PORT/act for OpenVLA or lerobot+grpc://HOST:PORT for LeRobot)")
    loader = FILE_LOADERS.get(path.suffix.lower())
    if loader is None:
        known = ", ".join(sorted(FILE_LOADERS)) or "none registered"
        raise PolicyLoadError(f"{path.name}: no policy loader for {path.suffix or 'suffix-less'} files "
                              f"(checkpoint kinds: {known})")
    if isinstance(loader, str):
        module, _, name = loader.partition(":")
        loader = getattr(importlib.import_module(module), name)
    return loader(path, **options)
