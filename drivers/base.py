"""The three kinds of device the app talks to, each a small base class.

Implementations register under a ``type`` string (:mod:`drivers.registry`) with
a config dataclass; the core only ever sees these interfaces.
"""

from __future__ import annotations

import abc
import threading
import time
from typing import Any, Protocol

import numpy as np

from drivers.streams import Broadcast, RateMeter, Subscription
from drivers.types import Frame, InputState, JointCommand, RobotState


class DeviceError(RuntimeError):
    """A device or its library is unavailable. The message is one line naming the fix."""


class Kinematics(Protocol):
    """Forward and inverse kinematics of an arm, in its base frame."""

    def fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """End-effector position [3] and rotation matrix [3, 3] for joint angles ``q``."""
        ...

    def ik(self, q0: np.ndarray, pos: np.ndarray, rot: np.ndarray | None = None) -> np.ndarray:
        """Joint angles near ``q0`` that put the end effector at ``pos`` (and best effort ``rot``)."""
        ...


class Robot(abc.ABC):
    """An arm with a gripper, commanded by absolute joint targets (gripper last)."""

    name: str
    joint_names: tuple[str, ...]
    joint_lower: np.ndarray
    joint_upper: np.ndarray
    kinematics: Kinematics | None = None
    can_reset_scene = False  # True where reset_scene() can put the task back by itself (a sim)

    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def disconnect(self) -> None: ...

    @abc.abstractmethod
    def send(self, command: JointCommand, source: str = "loop") -> None:
        """Hand joint targets to the robot. Never blocks for long."""

    @abc.abstractmethod
    def read(self) -> RobotState: ...

    @abc.abstractmethod
    def hold(self, source: str = "hold") -> None:
        """Stop where the arm is now. Safe to call from any thread (the watchdog does)."""

    def reset_scene(self, seed: int | None = None) -> bool:
        """Put the scene back to a start state; False where the robot cannot (hardware)."""
        return False

    def success(self) -> bool | None:
        """Whether the task is done, where the robot can tell (a sim); None when unknown."""
        return None

    def set_task(self, task: str) -> None:
        """The operator's task sentence, told whenever it changes and when a run starts.

        For robots whose judgement depends on the words (a sim scene with two
        cubes: which one to pick); others ignore it. Called from any thread.
        """

    def wrong_object(self) -> str | None:
        """Where the robot can tell: one line if an object the task did not name was picked (held like a
        success would be), e.g. "lifted the blue cube, the task named the red one"; None otherwise."""
        return None

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    def gripper_to_joint(self, opening: float) -> float:
        """Normalized opening (0 closed, 1 open) to the gripper joint angle."""
        lo, hi = float(self.joint_lower[-1]), float(self.joint_upper[-1])
        return lo + float(np.clip(opening, 0.0, 1.0)) * (hi - lo)

    def joint_to_gripper(self, angle: float) -> float:
        lo, hi = float(self.joint_lower[-1]), float(self.joint_upper[-1])
        return float(np.clip((angle - lo) / (hi - lo), 0.0, 1.0))


class Camera(abc.ABC):
    """A stream of frames produced on the camera's own thread (or process).

    Consumers take the newest frame from :meth:`latest` or subscribe to every
    frame through a bounded queue; neither ever blocks the camera.
    """

    kind = "color"  # "color" (RGB uint8 frames) or "depth" (uint16 frames)

    def __init__(self, name: str, width: int, height: int, fps: float) -> None:
        self.name = name
        self.width = width
        self.height = height
        self.fps = fps
        self.frames: Broadcast[Frame] = Broadcast()
        self.rate = RateMeter()
        self.intrinsics: dict[str, Any] | None = None
        self.error: str | None = None

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    def latest(self) -> Frame | None:
        return self.frames.latest.get()

    def subscribe(self, name: str, maxsize: int = 256) -> Subscription[Frame]:
        return self.frames.subscribe(name, maxsize)

    def _publish(self, frame: Frame) -> None:
        self.rate.tick(frame.t_host)
        self.frames.publish(frame)


class InputDevice(abc.ABC):
    """A human (or scripted) input read by the control loop without waiting.

    :meth:`read` returns the latest state at once; devices with hardware read it
    on their own thread and keep only the newest report.
    """

    read_has_side_effects = False  # True where read() advances state (a scripted expert): only the loop reads it
    source = "human"  # what a tick it drives is recorded as: "human", or "scripted" for an expert program

    def __init__(self, name: str) -> None:
        self.name = name
        self.error: str | None = None  # why the device is not working, one line for the user
        self._lock = threading.Lock()

    def start(self) -> None:
        """Open the device. Raise :class:`DeviceError` with the fix if it cannot."""

    def stop(self) -> None:
        """Release the device."""

    def reset(self) -> None:
        """Forget any per-episode state (e.g. a scripted expert's phase)."""

    def follow(self, gripper_opening: float) -> None:
        """The device takes over a robot whose gripper is commanded at ``gripper_opening`` (0 closed, 1 open).

        Devices that keep a gripper target of their own (a toggle button) start
        from it, so taking over never opens or closes the gripper by itself.
        Called on the control loop's thread: must not block.
        """

    @abc.abstractmethod
    def read(self) -> InputState: ...

    def presses(self, role: str) -> int:
        """How many times the device's button for ``role`` (``"episode"``, ``"kill"``) was pressed; 0 if none."""
        return 0

    def idle_state(self, connected: bool = True) -> InputState:
        return InputState(device=self.name, t_host=time.monotonic(), connected=connected)
