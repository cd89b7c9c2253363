"""Rig files: one robot, its cameras and input devices, rates and safety limits (TOML).

The built-in ``sim_so101`` rig is the default; ``--rig PATH`` loads another.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from drivers.registry import ConfigError

BUILTIN_RIGS = tuple(sorted(f.name.removesuffix(".toml") for f in (resources.files("teleop_app") / "rigs").iterdir()
                            if f.name.endswith(".toml")))


@dataclass(frozen=True)
class DeviceSpec:
    """One device entry of a rig: its kind, registry ``type``, a name and driver options."""

    kind: str
    type: str
    name: str
    options: dict[str, Any]


@dataclass(frozen=True)
class SafetyConfig:
    max_joint_step: float = 0.05
    workspace_min: tuple[float, float, float] | None = None
    workspace_max: tuple[float, float, float] | None = None
    watchdog_periods: int = 20
    ramp_speed: float = 0.5  # rad/s: how fast a new driver (takeover, hand-back, replay, re-arm) may join


@dataclass(frozen=True)
class RigConfig:
    name: str
    rate_hz: float
    robot: DeviceSpec
    cameras: tuple[DeviceSpec, ...] = ()
    inputs: tuple[DeviceSpec, ...] = ()
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    loop_core: int | None = None
    source: str = "<memory>"

    def without_cameras(self) -> RigConfig:
        return RigConfig(self.name, self.rate_hz, self.robot, (), self.inputs, self.safety,
                         self.loop_core, self.source)


def load_rig(path_or_name: str | Path | None = None) -> RigConfig:
    """Load a rig by built-in name (default ``sim_so101``) or from a TOML file path."""
    if path_or_name is None or str(path_or_name) in BUILTIN_RIGS:
        name = str(path_or_name or "sim_so101")
        text = (resources.files("teleop_app") / "rigs" / f"{name}.toml").read_text()
        return parse_rig(tomllib.loads(text), source=f"built-in:{name}")
    path = Path(path_or_name)
    if not path.is_file():
        raise ConfigError(f"rig file {path} not found (built-in rigs: {', '.join(BUILTIN_RIGS)})")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"rig file {path} is not valid TOML: {exc}") from exc
    return parse_rig(data, source=str(path))


def _device(kind: str, entry: Any, where: str) -> DeviceSpec:
    if not isinstance(entry, dict) or "type" not in entry:
        raise ConfigError(f"{where}: each {kind} needs a table with a 'type' key")
    options = {k: v for k, v in entry.items() if k != "type"}
    name = str(options.get("name", entry["type"]))
    return DeviceSpec(kind, str(entry["type"]), name, options)


def _vec3(value: Any, key: str, where: str) -> tuple[float, float, float] | None:
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 3):
        raise ConfigError(f"{where}: safety.{key} must be a list of 3 numbers (metres)")
    return (float(value[0]), float(value[1]), float(value[2]))


def parse_rig(data: dict[str, Any], source: str = "<memory>") -> RigConfig:
    where = f"rig {source}"
    known = {"name", "rate_hz", "robot", "cameras", "inputs", "safety", "cpu"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    if "robot" not in data:
        raise ConfigError(f"{where}: missing [robot] table")
    rate = float(data.get("rate_hz", 100.0))
    if not 1.0 <= rate <= 2000.0:
        raise ConfigError(f"{where}: rate_hz must be between 1 and 2000, got {rate}")
    robot = _device("robot", data["robot"], where)
    robot = DeviceSpec("robot", robot.type, robot.name, {k: v for k, v in robot.options.items() if k != "name"})
    cameras = tuple(_device("camera", c, where) for c in data.get("cameras", []))
    inputs = tuple(_device("input", i, where) for i in data.get("inputs", []))
    for kind, specs in (("camera", cameras), ("input", inputs)):
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: two {kind}s share a name ({names}); give each a unique 'name'")
    s = data.get("safety", {})
    safety = SafetyConfig(
        max_joint_step=float(s.get("max_joint_step", 0.05)),
        workspace_min=_vec3(s.get("workspace_min"), "workspace_min", where),
        workspace_max=_vec3(s.get("workspace_max"), "workspace_max", where),
        watchdog_periods=int(s.get("watchdog_periods", 20)),
        ramp_speed=float(s.get("ramp_speed", 0.5)),
    )
    if (safety.workspace_min is None) != (safety.workspace_max is None):
        raise ConfigError(f"{where}: give both safety.workspace_min and safety.workspace_max, or neither")
    if safety.max_joint_step <= 0 or safety.watchdog_periods < 2 or safety.ramp_speed <= 0:
        raise ConfigError(f"{where}: safety.max_joint_step and ramp_speed must be > 0 and watchdog_periods >= 2")
    core = data.get("cpu", {}).get("loop_core", "auto")
    return RigConfig(str(data.get("name", Path(source).stem)), rate, robot, cameras, inputs, safety,
                     _loop_core(core, where), source)


def _loop_core(value: Any, where: str) -> int | None:
    if value == "auto":
        return 0 if (os.cpu_count() or 1) >= 2 else None
    if value in (None, "none", False):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    raise ConfigError(f"{where}: cpu.loop_core must be \"auto\", \"none\" or a core number")
