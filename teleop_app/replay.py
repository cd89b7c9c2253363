"""Replay a recorded episode on the robot, through the control loop and its safety filter.

:class:`ReplayInput` is an input device that answers the loop with the joint
targets the episode actually sent (its ``action`` column, kept range only),
picking "the last sample at or before" the time since the replay started, so a
replay runs at the recorded pace whatever the loop's rate. Before the first
sample it ramps, slowly and in a straight joint-space line, from the pose the
robot was last commanded to the episode's first target: the safety filter's
step limit would get there too, but at up to ``max_joint_step`` per tick (5 rad/s
on the default rig), which is a lunge, and the recorded timing would then lag.

:class:`Replayer` puts a ReplayInput in charge of a running rig (session mode
REPLAY, the loop's active input) and gives the robot back afterwards: when the
replay ends, when it is stopped, and when the kill switch trips (the loop holds
the robot on that tick by itself; the replay is then over, so re-arming never
resumes it mid-way).

Nothing here imports Qt: the review tab, the CLI and tests drive the same code.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drivers.base import InputDevice
from drivers.types import InputState
from recordings.reader import Episode, EpisodeError
from teleop_app.rig import Rig
from teleop_app.session import Change, InvalidTransition, Mode

REPLAY_INPUT = "replay"
"""The name the replay input gets among the loop's inputs while it plays."""

DEFAULT_RAMP_SPEED = 0.5
"""rad/s of the fastest joint while ramping to the first recorded target (0.005 rad a tick at 100 Hz,
a tenth of the default rig's safety step limit)."""


SETTLE_TIMEOUT_S = 2.0
"""Longest a replay goes on holding its last target, past its end, for the robot to be commanded there."""


class ReplayError(RuntimeError):
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
        with Episode.open(path) as ep:
            ticks = ep.ticks(trimmed=True)
            names = tuple(ep.meta["joint_names"])
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

    The clock starts at the first :meth:`read` (the loop's first tick in charge),
    the ramp from ``start_pose`` comes first, and then the sample at or before
    ``now - start - ramp`` is returned; after the last one the input keeps
    answering with it (the robot holds there) and :attr:`finished` is set once
    ``reached(last target)`` says the robot was commanded there (the safety
    filter's step limit may still be catching up after a stall), or
    :data:`SETTLE_TIMEOUT_S` later. ``on_finished`` is called once, from the
    reading thread (the control loop): it must not block.
    """

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
    ) -> None:
        super().__init__(name)
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


Listener = Callable[[str], None]


class Replayer:
    """Runs episode replays on one rig; every method may be called from any thread but the loop's.

    Events for :meth:`add_listener` (called on whichever thread caused them —
    the loop, the kill switch's trigger, the caller):

    ``started``   the replay input drives the robot;
    ``finished``  it played to its end; mode and input are given back;
    ``stopped``   :meth:`stop` or the kill switch ended it early (see :attr:`last_reason`).
    """

    def __init__(self, rig: Rig, *, ramp_speed: float = DEFAULT_RAMP_SPEED) -> None:
        self.rig = rig
        self.ramp_speed = ramp_speed
        self.input: ReplayInput | None = None
        self.path: Path | None = None
        self.last_reason = ""
        self._previous: tuple[Mode, str | None] | None = None
        self._pending: tuple[Mode, str | None] | None = None  # a hand-back waiting for a recording to stop
        self._starting = False
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        rig.kill.add_listener(self._on_kill)
        rig.session.add_listener(self._on_session)

    def add_listener(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def _emit(self, event: str) -> None:
        for fn in list(self._listeners):
            fn(event)

    @property
    def active(self) -> bool:
        return self.input is not None

    def progress(self) -> tuple[float, float]:
        """``(seconds played, total)`` of the running replay, ramp included; ``(0, 0)`` when idle."""
        inp = self.input
        return (0.0, 0.0) if inp is None else (min(inp.elapsed_s, inp.total_s), inp.total_s)

    # -- start / stop --------------------------------------------------------------------------
    def start(self, path: str | Path) -> ReplayInput:
        """Replay the kept range of the episode at ``path`` on the robot; returns the input that plays it.

        Refused (:class:`ReplayError`) while another replay runs, while the robot is
        stopped, while an episode is being recorded, while a policy drives, when
        the loop is not running, or when the episode's joints are not the robot's.
        """
        rig, loop, session = self.rig, self.rig.loop, self.rig.session
        path = Path(path)
        with self._lock:
            if self.input is not None or self._starting:
                raise ReplayError(f"already replaying {self.path.name if self.path else 'an episode'}: stop it first")
            self._starting = True
        try:
            if not loop.running:
                raise ReplayError("the robot is not running: start the rig first")
            if rig.kill.latched:
                raise ReplayError("the robot is stopped: re-arm it before replaying")
            if session.recording:
                raise ReplayError("an episode is being recorded: keep or discard it before replaying")
            if session.mode not in (Mode.IDLE, Mode.TELEOP):
                raise ReplayError(f"the robot is in {session.mode.value} mode: stop it (idle or teleop) first")
            try:
                traj = Trajectory.from_episode(path)
            except EpisodeError as exc:
                raise ReplayError(str(exc)) from None
            robot_joints = tuple(rig.robot.joint_names)
            if traj.joint_names != robot_joints:
                raise ReplayError(f"{path.name} was recorded with joints {', '.join(traj.joint_names)}; "
                                  f"this robot has {', '.join(robot_joints)}")
            inp = ReplayInput(traj, ramp_speed=self.ramp_speed, on_finished=self._on_finished, reached=self._commanded)
            abandoned = threading.Event()
            future = loop.call_soon(lambda: self._take_over(inp, path, abandoned))
            try:
                future.result(timeout=2.0)
            except TimeoutError as exc:
                with self._lock:
                    abandoned.set()
                    started = self.input is inp
                if not started:
                    raise ReplayError(str(exc)) from None
        finally:
            with self._lock:
                self._starting = False
        self._emit("started")
        return inp

    def _take_over(self, inp: ReplayInput, path: Path, abandoned: threading.Event) -> None:
        """On the loop thread, between two ticks, so no tick sees a half-switched state."""
        rig, loop, session = self.rig, self.rig.loop, self.rig.session
        with self._lock:
            if abandoned.is_set():
                return
            if rig.kill.latched:
                raise ReplayError("the robot was stopped: re-arm it before replaying")
            if session.recording or session.mode not in (Mode.IDLE, Mode.TELEOP):
                raise ReplayError(f"the robot went into {session.label} mode meanwhile")
            last = loop.latest()
            inp.set_start_pose(last.command if last is not None else rig.robot.read().joint_pos)
            previous = (session.mode, loop.active_input)
            loop.inputs[inp.name] = inp
            loop.active_input = inp.name
            try:
                if session.mode is not Mode.IDLE:
                    session.set_mode(Mode.IDLE, reason="replay")
                session.set_mode(Mode.REPLAY, reason=f"replay {path.name}")
            except InvalidTransition as exc:
                loop.inputs.pop(inp.name, None)
                loop.active_input = previous[1]
                raise ReplayError(str(exc)) from None
            self.input, self._previous, self.path, self.last_reason = inp, previous, path, ""
        # The kill listener only ends a replay it can see; one that tripped while we switched is caught here.
        if rig.kill.latched and self._end("kill switch", wait=False):
            raise ReplayError("the robot was stopped: re-arm it before replaying")

    def _commanded(self, target: np.ndarray) -> bool:
        """The last command the loop sent (after the safety filter) was ``target``."""
        last = self.rig.loop.latest()
        return last is not None and last.command.shape == target.shape and bool(
            np.allclose(last.command, target, atol=1e-6))

    def stop(self, reason: str = "stopped") -> bool:
        """End the running replay early and give the robot back; False if none was running."""
        ended = self._end(reason, wait=True)
        if ended:
            self._emit("stopped")
        return ended

    def _on_finished(self) -> None:
        # On the loop thread, inside the input's read(): hand back at the start of the next tick, never wait.
        if self._end("finished", wait=False):
            self._emit("finished")

    def _on_kill(self, latched: bool, reason: str | None) -> None:
        # On the triggering thread, which may be the loop's own (a driver error): never wait.
        if latched and self._end(f"kill switch: {reason}", wait=False):
            self._emit("stopped")

    def _end(self, reason: str, wait: bool) -> bool:
        with self._lock:
            inp, previous = self.input, self._previous
            if inp is None or previous is None:
                return False
            self.input, self._previous, self.last_reason = None, None, reason
        future = self.rig.loop.call_soon(lambda: self._give_back(inp, previous))
        if wait and self.rig.loop.running:
            future.result(timeout=2.0)
        return True

    def _give_back(self, inp: ReplayInput, previous: tuple[Mode, str | None]) -> None:
        """On the loop thread: remove the replay input and restore the mode and input it replaced."""
        loop, session = self.rig.loop, self.rig.session
        loop.inputs.pop(inp.name, None)
        if session.mode is not Mode.REPLAY:  # someone else took over meanwhile: leave their choice
            if loop.active_input == inp.name:
                loop.active_input = previous[1]
            return
        if session.recording:
            # The replay is being recorded: REPLAY -> IDLE is refused until the recording stops.
            # Hold still (no input) and finish the hand-back then (see _on_session).
            loop.active_input = None
            self._pending = previous
            return
        self._restore(previous)

    def _restore(self, previous: tuple[Mode, str | None]) -> None:
        self._pending = None
        mode, active = previous
        self.rig.loop.active_input = active
        self.rig.session.set_mode(Mode.IDLE, reason="replay over")
        if mode is not Mode.IDLE:
            self.rig.session.set_mode(mode, reason="replay over")

    def _on_session(self, change: Change) -> None:
        pending = self._pending
        if pending is not None and not change.recording and change.mode is Mode.REPLAY:
            self.rig.loop.call_soon(lambda: self._give_back_pending(pending))

    def _give_back_pending(self, previous: tuple[Mode, str | None]) -> None:
        if self._pending is previous and self.rig.session.mode is Mode.REPLAY and not self.rig.session.recording:
            self._restore(previous)
