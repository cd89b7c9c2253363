"""Plain data exchanged between drivers and the core.

Every sample carries monotonic host time (``time.monotonic()``, one clock for
every thread and process on the machine) and, where the device has one, its own
capture time. Angles are radians, lengths metres, the gripper opening is
normalized: 0 closed, 1 fully open.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

EE_DELTA_DIM = 7
"""``[dx, dy, dz, droll, dpitch, dyaw, gripper]``: metres and radians per tick in the
robot base frame, and the gripper as an absolute opening target in [0, 1]."""


@dataclass(frozen=True, slots=True)
class RobotState:
    """What the robot measured, as read on the host."""

    t_host: float
    joint_pos: np.ndarray  # [n_joints] rad, gripper joint last
    joint_vel: np.ndarray  # [n_joints] rad/s
    gripper: float  # measured opening in [0, 1]
    ee_pos: np.ndarray  # [3] metres in the base frame
    t_device: float | None = None  # the device's own clock, where it has one


@dataclass(frozen=True, slots=True)
class JointCommand:
    """Absolute joint position targets, gripper joint last (radians)."""

    positions: np.ndarray


@dataclass(frozen=True, slots=True)
class EEDeltaCommand:
    """A 7-vector end-effector step, see :data:`EE_DELTA_DIM`."""

    delta: np.ndarray


Command = JointCommand | EEDeltaCommand


@dataclass(frozen=True, slots=True)
class Frame:
    """One camera image with its timestamps.

    ``t_capture`` is when the image was taken on the device's clock mapped to host
    monotonic time where possible (the simulated state time for sim cameras);
    ``t_host`` is when the host received it; ``seq`` counts frames from 0 per stream.
    Where the device stamps frames itself, ``t_device`` keeps that stamp as it
    came (seconds) and ``clock`` names its time base (e.g. RealSense
    ``"hardware_clock"``/``"global_time"``, ``"v4l2_monotonic"``, ``"media"`` for
    a video file's presentation time), so the mapping to ``t_capture`` can be checked.
    """

    camera: str
    image: np.ndarray  # HxWx3 uint8 RGB (or HxW uint16 depth)
    t_capture: float
    t_host: float
    seq: int
    t_device: float | None = None
    clock: str | None = None


@dataclass(frozen=True, slots=True)
class InputState:
    """The latest state of a human (or scripted) input device.

    A device drives the robot either in joint space (``joint_targets``, e.g. a
    leader arm) or with an end-effector twist (``ee_twist``: m/s and rad/s in the
    base frame, rate independent) plus a gripper opening target. ``None`` in both
    means "no motion requested".
    """

    device: str
    t_host: float
    connected: bool = True
    ee_twist: np.ndarray | None = None  # [6]
    gripper: float | None = None  # target opening in [0, 1]
    joint_targets: np.ndarray | None = None  # [n_joints]
    buttons: frozenset[str] = field(default_factory=frozenset)
    axes: dict[str, float] = field(default_factory=dict)  # raw values, for display


SOURCES = ("idle", "human", "policy", "intervention", "replay", "scripted")
"""Who drives a tick: nobody (the robot holds), a human's input device, a policy, a human who took over
from a policy, an episode played back, a scripted expert. Episode files store the index (never reorder)."""


class SafetyFlag(enum.IntFlag):
    """What the safety filter (or the loop) did to a tick's command; stored per tick in episode files."""

    NONE = 0
    INVALID = 1  # NaN, inf, wrong shape or type: replaced by a hold
    JOINT_LIMIT = 2
    STEP_LIMIT = 4
    WORKSPACE = 8
    KILLED = 16
    STARVED = 32  # set by the control loop: no policy action for this tick, the last target was held


@dataclass(frozen=True, slots=True)
class TickRecord:
    """Everything one control tick did, with monotonic timestamps: what the loop publishes and a recorder stores."""

    tick: int
    t: float  # tick start
    t_sent: float  # when the command was handed to the robot
    state: RobotState  # measured right after the command
    command: np.ndarray  # joint targets actually sent (after safety)
    raw_input: np.ndarray | None  # the operator's input: EE delta [7] or joint targets
    input_kind: str  # "ee_delta", "joint" or "none"
    source: str  # one of SOURCES: who drove this tick
    safety: int  # SafetyFlag bits
    killed: bool
    driver: str = ""  # which input device (its rig name) or policy drove it; "" while idle
