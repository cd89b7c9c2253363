"""What stands between any command and the robot: the safety filter, the kill switch, the watchdog.

The filter turns every target into one the robot may take *this tick*: invalid
input (NaN, inf, wrong shape or type) becomes a hold, joint targets are clamped
to the limits, the per-tick step is capped, and the end effector is kept inside
the workspace box. The kill switch is a latched flag any thread may trigger; the
control loop acts on it first thing on the next tick (or at once if it is
sleeping). The watchdog is a separate thread that holds the robot itself when
the loop stops ticking.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from drivers.base import Kinematics, Robot
from drivers.types import SafetyFlag


@dataclass(frozen=True)
class SafetyLimits:
    joint_lower: np.ndarray
    joint_upper: np.ndarray
    max_joint_step: float
    workspace_min: np.ndarray | None = None
    workspace_max: np.ndarray | None = None


class SafetyFilter:
    """Makes any requested joint target safe relative to the last target sent.

    ``reference`` (the last command that went to the robot) is assumed to be
    within the joint limits; when it is inside the workspace box the result is
    too. A reference already outside the box (e.g. a start pose) may only move
    towards the box.
    """

    BISECTION_STEPS = 10

    def __init__(self, limits: SafetyLimits, kinematics: Kinematics | None = None) -> None:
        self.limits = limits
        self.kinematics = kinematics if limits.workspace_min is not None else None
        self.n = len(limits.joint_lower)
        self.counts = {flag.name: 0 for flag in SafetyFlag if flag not in (SafetyFlag.NONE, SafetyFlag.STARVED)}

    def filter(self, target: object, reference: np.ndarray) -> tuple[np.ndarray, SafetyFlag]:
        """The safe target for this tick and the flags saying what was changed."""
        flags = SafetyFlag.NONE
        arr = _as_vector(target, self.n)
        if arr is None:
            flags |= SafetyFlag.INVALID
            arr = reference.copy()
        lim = self.limits
        clamped = np.clip(arr, lim.joint_lower, lim.joint_upper)
        if not np.array_equal(clamped, arr):
            flags |= SafetyFlag.JOINT_LIMIT
        step = np.clip(clamped - reference, -lim.max_joint_step, lim.max_joint_step)
        stepped = reference + step
        if not np.array_equal(stepped, clamped):
            flags |= SafetyFlag.STEP_LIMIT
        out = np.clip(stepped, lim.joint_lower, lim.joint_upper)
        if self.kinematics is not None:
            out, moved = self._keep_in_workspace(out, reference)
            if moved:
                flags |= SafetyFlag.WORKSPACE
        for flag in SafetyFlag:
            if flag and flag in flags:
                self.counts[flag.name] += 1
        return out, flags

    def violation(self, q: np.ndarray) -> float:
        """How far (m) the end effector at ``q`` lies outside the workspace box; 0 inside."""
        pos, _ = self.kinematics.fk(q)
        lo, hi = self.limits.workspace_min, self.limits.workspace_max
        return float(np.linalg.norm(np.maximum(lo - pos, 0.0) + np.maximum(pos - hi, 0.0)))

    def _keep_in_workspace(self, q: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, bool]:
        if self.violation(q) == 0.0:
            return q, False
        ref_violation = self.violation(reference)
        if ref_violation > 0.0:
            # Outside already: allow only moves that do not take it further out.
            return (q, False) if self.violation(q) < ref_violation else (reference.copy(), True)
        lo, hi = 0.0, 1.0  # bisection on the straight joint-space line reference -> q
        for _ in range(self.BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            if self.violation(reference + mid * (q - reference)) == 0.0:
                lo = mid
            else:
                hi = mid
        return reference + lo * (q - reference), True


def _as_vector(target: object, n: int) -> np.ndarray | None:
    """``target`` as a finite float vector of length n, or None if it is not one."""
    try:
        arr = np.asarray(target, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        return None
    return arr.copy()


class KillSwitch:
    """A latched stop that any thread can trigger and only :meth:`rearm` clears.

    The first reason is kept while latched (later triggers are counted, not
    overwritten), so the user sees what stopped the robot first.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.wake = threading.Event()  # the loop sleeps on this between ticks
        self._latched = False
        self.reason: str | None = None
        self.t_trigger: float | None = None
        self.generation = 0  # incremented by every trigger that latches
        self.triggers = 0
        self._listeners: list[Callable[[bool, str | None], None]] = []

    @property
    def latched(self) -> bool:
        return self._latched

    def trigger(self, reason: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.triggers += 1
            if self._latched:
                return
            self.t_trigger = now
            self.reason = reason
            self.generation += 1
            self._latched = True
        self.wake.set()
        self._notify()

    def rearm(self) -> None:
        with self._lock:
            if not self._latched:
                return
            self._latched = False
            self.reason = None
        self._notify()

    def add_listener(self, fn: Callable[[bool, str | None], None]) -> None:
        """``fn(latched, reason)`` is called on the triggering thread after each change."""
        self._listeners.append(fn)

    def _notify(self) -> None:
        for fn in list(self._listeners):
            fn(self._latched, self.reason)


class Watchdog:
    """Holds the robot and latches the kill switch when the loop stops ticking.

    The loop calls :meth:`beat` every tick; this thread checks every half
    period. A stall longer than ``stall_periods`` periods makes the robot driver
    hold on its own, without waiting for the loop.
    """

    def __init__(self, robot: Robot, kill: KillSwitch, period: float, stall_periods: int = 20,
                 where: Callable[[], str | None] = lambda: None) -> None:
        self.robot = robot
        self.where = where  # what the loop thread is doing, for the reason
        self.kill = kill
        self.period = period
        self.limit = stall_periods * period
        self.trips = 0
        self.last_trip_stall_ms: float | None = None
        self._last_beat: float | None = None
        self._tripped_on: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self, t: float) -> None:
        self._last_beat = t

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        self._last_beat = None

    def _run(self) -> None:
        while not self._stop.wait(self.period / 2):
            beat = self._last_beat
            if beat is None or beat == self._tripped_on:
                continue
            stall = time.monotonic() - beat
            if stall > self.limit:
                self._tripped_on = beat
                self.trips += 1
                self.last_trip_stall_ms = stall * 1e3
                reason = f"watchdog: control loop stalled for {stall * 1e3:.0f} ms"
                doing = self.where()
                if doing:
                    reason += f", {doing}"
                try:
                    self.robot.hold(source="watchdog")
                except Exception as exc:  # the watchdog must outlive a robot that fails too
                    reason += f" (and the robot could not hold: {exc})"
                self.kill.trigger(reason)
