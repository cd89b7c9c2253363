"""A leader arm (SO-101 on Feetech, Koch/GELLO on Dynamixel) as an input device giving joint targets.

The arm runs with torque off: a person moves it and its joint angles become the
robot's joint targets. A reader thread sync-reads every servo at ``rate_hz`` and
keeps only the newest sample, so the control loop never waits on the bus. When
the bus fails (unplugged, servo unpowered) the device reports
``connected=False`` with no targets — the loop then holds the robot — keeps the
reason in :attr:`LeaderArm.error` for the GUI, and tries to reconnect every
``reconnect_s``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from drivers.base import DeviceError, InputDevice, Robot
from drivers.registry import ConfigError
from drivers.servo.bus import PROTOCOLS, ServoBus
from drivers.so101.joints import JOINTS
from drivers.so101.calibration import load_calibration
from drivers.streams import RateMeter, ReaderThread
from drivers.types import InputState


@dataclass
class LeaderArmConfig:
    port: str  # e.g. /dev/serial/by-id/usb-1a86_USB_Single_Serial_5A46-if00 (see `teleop-app devices`)
    calibration: str  # calibration file of this arm (`teleop-app calibrate` writes it)
    name: str = "leader"
    protocol: str = "feetech"  # "feetech" (SO-100/SO-101) or "dynamixel" (Koch, GELLO)
    baud: int | None = None  # default: 1 Mbaud for feetech, 57600 for dynamixel
    rate_hz: float = 200.0  # reads per second
    timeout_ms: float = 20.0  # per reply
    retries: int = 2
    reconnect_s: float = 1.0  # between reconnect attempts after a failure

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(map(repr, PROTOCOLS))}, got {self.protocol!r}")
        if self.rate_hz <= 0 or self.timeout_ms <= 0 or self.reconnect_s <= 0 or self.retries < 0:
            raise ValueError("rate_hz, timeout_ms and reconnect_s must be > 0 and retries >= 0")


class LeaderArm(InputDevice):
    """Joint targets (rad, the robot's joint order, gripper last) from a torque-off leader arm."""

    config_class = LeaderArmConfig

    def __init__(self, config: LeaderArmConfig, robot: Robot) -> None:
        super().__init__(config.name)
        self.config = config
        if robot.n_joints != len(JOINTS):
            raise ConfigError(f"leader_arm drives SO-101-style arms ({len(JOINTS)} joints, gripper last); "
                              f"robot {robot.name} has {robot.n_joints}")
        self.calibration = load_calibration(config.calibration)
        if self.calibration.protocol != config.protocol:
            raise ConfigError(f"input {config.name}: protocol is {config.protocol!r} but calibration "
                              f"{self.calibration.source} is for {self.calibration.protocol!r}")
        self.robot = robot
        self.bus = ServoBus(config.port, config.protocol, config.baud,
                            timeout=config.timeout_ms / 1e3, retries=config.retries)
        self.error: str | None = None  # why the arm is disconnected, for the GUI; None while reading
        self.reconnects = 0
        self.rate = RateMeter()
        self._latest = self.idle_state(connected=False)
        self._reader = ReaderThread()

    def start(self) -> None:
        """Open the bus, turn torque off, take a first sample, start reading. Raises DeviceError with the fix."""
        if self._reader.running:
            return
        try:
            self._connect()
        except DeviceError:
            self.bus.close()
            raise
        self._reader.start(self._run, name=f"leader-{self.name}")

    def stop(self) -> None:
        self._reader.stop()
        self.bus.close()
        self._latest = self.idle_state(connected=False)

    def read(self) -> InputState:
        return self._latest

    def _connect(self) -> None:
        self.bus.open()
        self.bus.set_torque(self.calibration.ids, False)
        self._sample()

    def _sample(self) -> None:
        cal = self.calibration
        raw = self.bus.read_positions(cal.ids)
        now = time.monotonic()
        arm, opening = cal.to_joints(raw)
        q = np.append(arm, self.robot.gripper_to_joint(opening))
        self._latest = InputState(
            device=self.name, t_host=now, joint_targets=q, gripper=opening,
            axes={name: float(raw[j.id]) for name, j in cal.joints.items()},
        )
        self.rate.tick(now)

    def _run(self) -> None:
        period = 1.0 / self.config.rate_hz
        deadline = time.monotonic()
        while not self._reader.stopping.is_set():
            try:
                self._sample()
            except DeviceError as exc:
                self._latest = self.idle_state(connected=False)
                self.error = str(exc)
                self.bus.close()
                self._reconnect()
                deadline = time.monotonic()
            deadline += period
            now = time.monotonic()
            if deadline < now:  # fell behind (a slow bus): read again at once, do not catch up
                deadline = now
            self._reader.stopping.wait(deadline - now)

    def _reconnect(self) -> None:
        while not self._reader.stopping.wait(self.config.reconnect_s):
            try:
                self._connect()
            except DeviceError as exc:
                self.error = str(exc)
                self.bus.close()
                continue
            self.error = None
            self.reconnects += 1
            return
