"""The SO-101 follower arm: STS3215 servos on a Feetech bus, position-controlled.

Same joint names, order, units and limits as the simulated arm
(:class:`drivers.sim.robot.SimSO101`), and the same kinematics, so one rig
config, one policy and one end-effector teleop work on both. ``send`` is one
SYNC_WRITE of goal positions, ``read`` one SYNC_READ of present positions; a
per-send step limit guards the arm even when it is driven without the
control loop's safety filter. When the adapter is unplugged, ``send`` and
``read`` raise a one-line :class:`~drivers.base.DeviceError` (the control loop
turns that into a kill-switch hold); the servos keep their last goal.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from drivers.base import DeviceError, Robot
from drivers.command_log import CommandLog
from drivers.registry import ConfigError
from drivers.servo.bus import ServoBus
from drivers.so101.kinematics import N_ARM, SO101Kinematics
from drivers.so101.joints import JOINTS
from drivers.so101.calibration import load_calibration
from drivers.types import JointCommand, RobotState


@dataclass
class SO101FollowerConfig:
    port: str  # e.g. /dev/serial/by-id/usb-1a86_USB_Single_Serial_5A7A-if00 (see `teleop-app devices`)
    calibration: str  # calibration file of this arm (`teleop-app calibrate --protocol feetech` writes it)
    baud: int = 1_000_000
    timeout_ms: float = 20.0  # per reply
    retries: int = 2
    max_step: float = 0.1  # rad: largest change of any joint target per send (a backstop behind the rig's safety)
    torque_off_on_disconnect: bool = True  # False keeps the arm stiff after the app exits (servos stay powered)

    def __post_init__(self) -> None:
        if self.max_step <= 0 or self.timeout_ms <= 0 or self.retries < 0:
            raise ValueError("max_step and timeout_ms must be > 0 and retries >= 0")


class SO101Follower(Robot):
    config_class = SO101FollowerConfig

    def __init__(self, config: SO101FollowerConfig) -> None:
        self.config = config
        self.name = "so101"
        self.joint_names = JOINTS
        self.kinematics = SO101Kinematics()  # for the control loop's thread
        self.joint_lower = self.kinematics.joint_lower.copy()
        self.joint_upper = self.kinematics.joint_upper.copy()
        self.calibration = load_calibration(config.calibration)
        if self.calibration.protocol != "feetech":
            raise ConfigError(f"robot so101 runs on a Feetech bus; calibration {self.calibration.source} "
                              f"is for {self.calibration.protocol!r}")
        self.bus = ServoBus(config.port, "feetech", config.baud,
                            timeout=config.timeout_ms / 1e3, retries=config.retries)
        self.command_log = CommandLog()
        self.error: str | None = None  # the last failure of hold() (which never raises)
        self._kin = SO101Kinematics()  # for read(), from any thread, under _lock
        self._lock = threading.Lock()
        self._q_cmd: np.ndarray | None = None
        self._last: tuple[float, np.ndarray] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the bus, set every goal to where the arm is, then turn torque on (so nothing jumps)."""
        bus, ids = self.bus, self.calibration.ids
        try:
            bus.open()
            raw = bus.read_positions(ids)
            bus.write_goals(raw)
            bus.set_torque(ids, True)
        except DeviceError:
            bus.close()
            raise
        with self._lock:
            self._q_cmd = self._to_q(raw)
            self._last = None
        self.error = None

    def disconnect(self) -> None:
        """Torque off (unless configured otherwise) and close the port; a bus already gone is not an error."""
        if self.config.torque_off_on_disconnect and self.bus.is_open:
            try:
                self.bus.set_torque(self.calibration.ids, False)
            except DeviceError as exc:
                self.error = str(exc)
        self.bus.close()

    # -- Robot interface ---------------------------------------------------------------------
    def send(self, command: JointCommand, source: str = "loop") -> None:
        """Clip to the joint limits and the per-send step, then write every goal in one sync write."""
        q = np.asarray(command.positions, dtype=np.float64)
        if q.shape != (len(JOINTS),) or not np.all(np.isfinite(q)):
            raise ValueError(f"so101 needs {len(JOINTS)} finite joint targets, got {command.positions!r}")
        with self._lock:
            q = np.clip(q, self.joint_lower, self.joint_upper)
            if self._q_cmd is not None:
                step = self.config.max_step
                q = self._q_cmd + np.clip(q - self._q_cmd, -step, step)
            self._write(q, source)

    def read(self) -> RobotState:
        raw = self.bus.read_positions(self.calibration.ids)
        now = time.monotonic()
        q = self._to_q(raw)
        with self._lock:
            vel = np.zeros_like(q) if self._last is None or now <= self._last[0] else \
                (q - self._last[1]) / (now - self._last[0])
            self._last = (now, q)
            ee = self._kin.fk(q)[0]
        return RobotState(t_host=now, joint_pos=q, joint_vel=vel, gripper=self.joint_to_gripper(q[-1]), ee_pos=ee)

    def hold(self, source: str = "hold") -> None:
        """Goals to where the arm joints are now; the gripper keeps its target (a held object stays held).

        Never raises (the watchdog calls it from its own thread): if the bus is
        gone the servos keep their last goal, and the reason is kept in :attr:`error`.
        """
        try:
            q = self._to_q(self.bus.read_positions(self.calibration.ids))
            with self._lock:
                if self._q_cmd is not None:
                    q[-1] = self._q_cmd[-1]
                self._write(np.clip(q, self.joint_lower, self.joint_upper), source)
        except DeviceError as exc:
            self.error = str(exc)

    # -- starting safely ---------------------------------------------------------------------
    def check_leader(self, leader_q: np.ndarray, max_diff_rad: float = 0.8) -> None:
        """Refuse (DeviceError) when any arm joint of the leader is further than ``max_diff_rad`` from the follower's.

        The gripper is not compared: a gripper snapping open or shut does not swing the arm.
        """
        leader_q = np.asarray(leader_q, dtype=np.float64)
        if leader_q.shape != (len(JOINTS),):
            raise ValueError(f"leader pose needs {len(JOINTS)} joint angles, got shape {leader_q.shape}")
        q = self.read().joint_pos
        diff = np.abs(leader_q[:N_ARM] - q[:N_ARM])
        worst = int(np.argmax(diff))
        if diff[worst] > max_diff_rad:
            raise DeviceError(
                f"leader and follower differ by {diff[worst]:.2f} rad ({np.degrees(diff[worst]):.0f}°) at "
                f"{JOINTS[worst]} (limit {max_diff_rad:.2f} rad): move the leader to the follower's pose, "
                f"or ramp the follower to the leader first")

    def ramp_to(self, pose: np.ndarray, max_step: float = 0.01, rate_hz: float = 50.0) -> None:
        """Move to ``pose`` from where the arm is, at most ``max_step`` rad per joint per step (blocking).

        For the start of a session, before the control loop runs: 0.01 rad at
        50 Hz is 0.5 rad/s.
        """
        target = np.clip(np.asarray(pose, dtype=np.float64), self.joint_lower, self.joint_upper)
        if target.shape != (len(JOINTS),) or not np.all(np.isfinite(target)):
            raise ValueError(f"ramp_to needs {len(JOINTS)} finite joint angles, got {pose!r}")
        q = self.read().joint_pos
        while True:
            gap = target - q
            q = np.where(np.abs(gap) <= max_step, target, q + np.sign(gap) * max_step)
            with self._lock:
                self._write(q, "ramp")
            if np.array_equal(q, target):
                return
            time.sleep(1.0 / rate_hz)

    # -- conversions -------------------------------------------------------------------------
    def _to_q(self, raw: dict[int, int]) -> np.ndarray:
        arm, opening = self.calibration.to_joints(raw)
        return np.append(arm, self.gripper_to_joint(opening))

    def _write(self, q: np.ndarray, source: str) -> None:
        """Send goals for ``q`` and remember it as the last command. Lock held."""
        self.bus.write_goals(self.calibration.to_ticks(q[:N_ARM], self.joint_to_gripper(q[-1])))
        self._q_cmd = q.copy()
        self.command_log.append(self._q_cmd, source)
