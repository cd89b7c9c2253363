"""Device implementations keyed by the ``type`` string a rig file names.

Targets are ``"module:Class"`` strings imported only when a rig asks for that
type, so a missing vendor SDK never breaks the rest. Each driver class has a
``config_class`` dataclass; rig options are checked against its fields.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any

from drivers.base import DeviceError

KINDS = ("robot", "camera", "input")


@dataclass(frozen=True)
class Entry:
    kind: str
    type: str
    target: str
    summary: str


_ENTRIES: dict[tuple[str, str], Entry] = {}


class ConfigError(ValueError):
    """A rig or device configuration is wrong; the message says what to change."""


def register(kind: str, type_: str, target: str, summary: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown device kind {kind!r}; expected one of {KINDS}")
    _ENTRIES[(kind, type_)] = Entry(kind, type_, target, summary)


def resolve(kind: str, type_: str) -> type:
    """The driver class for ``type_``, imported now."""
    try:
        entry = _ENTRIES[(kind, type_)]
    except KeyError:
        known = ", ".join(sorted(t for k, t in _ENTRIES if k == kind))
        raise ConfigError(f"unknown {kind} type {type_!r} (known: {known})") from None
    module_name, _, class_name = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DeviceError(f"{kind} type {type_!r} cannot load: {exc}") from exc
    return getattr(module, class_name)


def make_config(cls: type, kind: str, type_: str, options: dict[str, Any]) -> Any:
    """Build ``cls.config_class`` from rig options, naming any option it does not know."""
    config_class = cls.config_class
    fields = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ConfigError(
            f"{kind} type {type_!r} has no option {', '.join(map(repr, unknown))} "
            f"(options: {', '.join(sorted(fields))})"
        )
    try:
        return config_class(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{kind} type {type_!r}: {exc}") from exc


def create(kind: str, type_: str, options: dict[str, Any], **context: Any) -> Any:
    """Instantiate a driver: ``Class(config, **context)``."""
    cls = resolve(kind, type_)
    return cls(make_config(cls, kind, type_, options), **context)


register("robot", "sim_so101", "drivers.sim.robot:SimSO101",
         "MuJoCo SO-101 arm with a cube, physics in real time")
register("camera", "sim", "drivers.sim.render:SimCamera",
         "a camera of the simulated scene, rendered in its own process")
register("input", "scripted", "drivers.sim.scripted:ScriptedExpert",
         "an expert that picks and lifts the cube in the sim")
register("input", "keyboard", "drivers.keyboard:KeyboardInput",
         "end-effector teleop from the keyboard (terminal or GUI)")
register("robot", "so101", "drivers.so101.follower:SO101Follower",
         "SO-101 follower arm on a Feetech serial bus")
register("input", "leader_arm", "drivers.so101.leader:LeaderArm",
         "SO-101 (Feetech) or Koch/GELLO (Dynamixel) leader arm, torque off")
register("input", "spacemouse", "drivers.spacemouse:SpaceMouse",
         "3Dconnexion SpaceMouse through pyspacemouse (end-effector deltas)")
register("camera", "realsense", "drivers.realsense:RealSenseCamera",
         "Intel RealSense color (+ aligned depth) through pyrealsense2")
register("camera", "opencv", "drivers.opencv_camera:OpenCVCamera",
         "any camera or video file OpenCV can open")
