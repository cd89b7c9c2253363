"""The trajectory a replay plays on the robot, through the control loop and its safety filter.

:class:`ReplayInput` is an input device that answers the loop with the joint
targets the episode actually sent (its ``action`` column, kept range only),
picking "the last sample at or before" the time since the replay started, so a
replay runs at the recorded pace whatever the loop's rate. Before the first
sample it ramps, slowly and in a straight joint-space line, from the pose the
robot was last commanded to the episode's first target: the safety filter's
step limit would get there too, but at up to ``max_joint_step`` per tick (5 rad/s
on the default rig), which is a lunge, and the recorded timing would then lag.

:meth:`OperatorSession.start_replay <teleop_app.operator_session.OperatorSession.start_replay>`
attaches a ReplayInput to the loop and gives the robot back when the replay
ends, is stopped, or the kill switch trips (re-arming never resumes a replay).

Nothing here imports Qt: the review tab, the CLI and tests drive the same code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drivers.base import InputDevice
from drivers.types import InputState
from recordings.reader import Episode, EpisodeError
from teleop_app.arbitration import DEFAULT_RAMP_SPEED
from teleop_app.errors import OperatorError

REPLAY_INPUT = "replay"
"""The name the replay input gets among the loop's inputs while it plays."""

SETTLE_TIMEOUT_S = 2.0
"""Longest a replay goes on holding its last target, past its end, for the robot to be commanded there."""


class ReplayError(OperatorError):
    """A replay that cannot start now; the message says why and what to do."""


@dataclass(frozen=True)
class Trajectory:
    """Joint targets over time: ``t`` seconds from the first sample (non-decreasing), ``q`` ``[N, J]``."""

    t: np.ndarray
    q: np.ndarray
    joint_names: tuple[str, ...]
    source: str = ""  # what it was read from, for messages

    @classmethod
    def from_episode(cls, path: str | Path) -> Trajectory:
        """The commanded joint targets (``action``) of the episode's kept range; the file is closed again."""
        path = Path(path)
        try:
            with Episode.open(path) as ep:
                ticks = ep.ticks(trimmed=True)
                names = tuple(ep.meta["joint_names"])
        except EpisodeError as exc:
            raise ReplayError(str(exc)) from None
        t = np.asarray(ticks["t"], dtype=np.float64)
        q = np.asarray(ticks["action"], dtype=np.float64)
        keep = np.isfinite(t) & np.all(np.isfinite(q), axis=1)
        t, q = t[keep], q[keep]
        if len(t) == 0:
            raise ReplayError(f"{path.name} has no commanded joint targets in its kept range")
        return cls(t - t[0], q, names, path.name)

    @property
    def duration(self) -> float:
        return float(self.t[-1])


class ReplayInput(InputDevice):
    """Plays a :class:`Trajectory` as joint targets against the clock; see the module docstring.

    Its ticks are recorded with source ``replay`` and its :attr:`label` (the file) as driver. Only the
    loop reads it: the first read starts its clock.

    The clock starts at the first :meth:`read` (the loop's first tick in charge),
    the ramp from ``start_pose`` comes first, and then the sample at or before
    ``now - start - ramp`` is returned; after the last one the input keeps
    answering with it (the robot holds there) and :attr:`finished` is set once
    ``reached(last target)`` says the robot was commanded there (the safety
    filter's step limit may still be catching up after a stall), or
    :data:`SETTLE_TIMEOUT_S` later. ``on_finished`` is called once, from the
    reading thread (the control loop): it must not block.
    """

    read_has_side_effects = True

    def __init__(
        self,
        trajectory: Trajectory,
        start_pose: np.ndarray | None = None,
        *,
        ramp_speed: float = DEFAULT_RAMP_SPEED,
        clock: Callable[[], float] = time.monotonic,
        on_finished: Callable[[], None] | None = None,
        reached: Callable[[np.ndarray], bool] | None = None,
        name: str = REPLAY_INPUT,
        label: str = "",
    ) -> None:
        super().__init__(name)
        self.label = label or trajectory.source or name  # the driver name its ticks carry
        if ramp_speed <= 0:
            raise ValueError("ramp_speed must be positive")
        self.trajectory = trajectory
        self.ramp_speed = ramp_speed
        self.clock = clock
        self.on_finished = on_finished
        self.reached = reached
        self.start_pose: np.ndarray | None = None
        self.ramp_s = 0.0
        self.set_start_pose(start_pose)
        self._t_start: float | None = None
        self._elapsed = 0.0
        self._finished = False

    def set_start_pose(self, pose: np.ndarray | None) -> None:
        """Where the ramp starts (the robot's last commanded pose); None skips the ramp."""
        if pose is None:
            self.start_pose, self.ramp_s = None, 0.0
            return
        pose = np.asarray(pose, dtype=np.float64)
        first = self.trajectory.q[0]
        if pose.shape != first.shape:
            raise ReplayError(f"the robot has {pose.size} joints, the episode {first.size}")
        self.start_pose = pose.copy()
        self.ramp_s = float(np.max(np.abs(first - pose))) / self.ramp_speed

    @property
    def started(self) -> bool:
        return self._t_start is not None

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def elapsed_s(self) -> float:
        """Seconds since the replay's first read, ramp included."""
        return self._elapsed

    @property
    def position_s(self) -> float:
        """Where in the trajectory the replay is (0 while ramping, at most its duration)."""
        return float(min(max(self._elapsed - self.ramp_s, 0.0), self.trajectory.duration))

    @property
    def total_s(self) -> float:
        """Ramp plus trajectory."""
        return self.ramp_s + self.trajectory.duration

    def progress(self) -> tuple[float, float]:
        """``(seconds played, total)``, ramp included."""
        return min(self._elapsed, self.total_s), self.total_s

    def target_at(self, elapsed: float) -> np.ndarray:
        """The joint targets ``elapsed`` seconds after the start (ramp, then last sample at or before)."""
        traj = self.trajectory
        if elapsed < self.ramp_s and self.start_pose is not None:
            frac = max(elapsed, 0.0) / self.ramp_s
            return self.start_pose + frac * (traj.q[0] - self.start_pose)
        i = int(np.searchsorted(traj.t, elapsed - self.ramp_s, "right")) - 1
        return traj.q[max(i, 0)].copy()

    def read(self) -> InputState:
        now = self.clock()
        with self._lock:
            if self._t_start is None:
                self._t_start = now
            self._elapsed = now - self._t_start
            target = self.target_at(self._elapsed)
            past_end = self._elapsed - self.ramp_s - self.trajectory.duration
            done = not self._finished and past_end >= 0 and (
                self.reached is None or past_end >= SETTLE_TIMEOUT_S or self.reached(target))
            if done:
                self._finished = True
        if done and self.on_finished is not None:
            self.on_finished()
        return InputState(device=self.name, t_host=now, joint_targets=target)
