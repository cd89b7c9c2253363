"""Builds a running rig from its config: robot, cameras, inputs, safety filter and control loop.

The rig's inputs are the control loop's (:attr:`ControlLoop.inputs`): one set,
changed only through the loop's input API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from drivers import registry
from drivers.base import Camera, InputDevice, Robot
from teleop_app.config import RigConfig
from teleop_app.loop import ControlLoop
from teleop_app.safety import KillSwitch, SafetyFilter, SafetyLimits
from teleop_app.modes import Modes


@dataclass
class Rig:
    config: RigConfig
    robot: Robot
    cameras: dict[str, Camera]
    loop: ControlLoop
    kill: KillSwitch
    modes: Modes
    started: list[object] = field(default_factory=list)

    @property
    def inputs(self) -> Mapping[str, InputDevice]:
        """The loop's input devices (read-only; see :meth:`ControlLoop.attach_input`)."""
        return self.loop.inputs

    def start(self) -> None:
        """Connect the robot, start cameras (before the loop: renderer start-up is heavy) and inputs, then the loop."""
        try:
            self.robot.connect()
            self.started.append(self.robot)
            for cam in self.cameras.values():
                cam.start()
                self.started.append(cam)
            for dev in self.inputs.values():
                dev.start()
                self.started.append(dev)
            self.loop.start()
            self.started.append(self.loop)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop everything that was started, newest first; the loop stops before the robot disconnects."""
        while self.started:
            part = self.started.pop()
            if isinstance(part, ControlLoop):
                part.stop()
            elif isinstance(part, Robot):
                part.disconnect()
            else:
                part.stop()

    def metadata(self) -> dict[str, object]:
        """What an episode file records about the rig (the recorder adds the robot's joint names)."""
        from teleop_app import __version__

        return {
            "rig": self.config.name,
            "robot_type": self.config.robot.type,
            "joint_units": ["rad"] * self.robot.n_joints,
            "control_rate_hz": self.config.rate_hz,
            "app_version": __version__,
        }

    def __enter__(self) -> Rig:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_rig(config: RigConfig, active_input: str | None = None) -> Rig:
    """Instantiate every device of ``config`` (nothing is connected or started yet)."""
    robot: Robot = registry.create("robot", config.robot.type, config.robot.options)
    cameras = {c.name: registry.create("camera", c.type, c.options, robot=robot) for c in config.cameras}
    inputs = {i.name: registry.create("input", i.type, i.options, robot=robot) for i in config.inputs}
    if active_input is not None and active_input not in inputs:
        raise registry.ConfigError(
            f"rig {config.name} has no input {active_input!r} (inputs: {', '.join(inputs) or 'none'})"
        )
    s = config.safety
    limits = SafetyLimits(
        joint_lower=np.asarray(robot.joint_lower, dtype=np.float64),
        joint_upper=np.asarray(robot.joint_upper, dtype=np.float64),
        max_joint_step=s.max_joint_step,
        workspace_min=None if s.workspace_min is None else np.asarray(s.workspace_min),
        workspace_max=None if s.workspace_max is None else np.asarray(s.workspace_max),
    )
    kill = KillSwitch()
    modes = Modes()
    loop = ControlLoop(
        robot, inputs, SafetyFilter(limits, robot.kinematics), rate_hz=config.rate_hz, kill=kill,
        modes=modes, watchdog_periods=s.watchdog_periods, loop_core=config.loop_core,
        active_input=active_input, ramp_speed=s.ramp_speed,
    )
    return Rig(config, robot, cameras, loop, kill, modes)
