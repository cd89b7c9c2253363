"""Who controls the robot, and whether an episode is being recorded.

Two parts kept in one object: the control *mode* (idle, teleop, policy,
intervention, replay) and a *recording* flag, because recording is orthogonal
to who drives (human demos, policy rollouts and takeovers are all recorded).
Every tick is labelled with :attr:`Session.source`.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


class Mode(enum.Enum):
    IDLE = "idle"  # loop runs, robot holds its last target, inputs are ignored
    TELEOP = "teleop"  # a human input device drives
    POLICY = "policy"  # a policy drives
    INTERVENTION = "intervention"  # a human took over from the policy
    REPLAY = "replay"  # a recorded episode is played back


# Which mode may follow which. Policy, intervention and replay are entered by
# the policy runtime and the review player.
TRANSITIONS: dict[Mode, frozenset[Mode]] = {
    Mode.IDLE: frozenset({Mode.TELEOP, Mode.POLICY, Mode.REPLAY}),
    Mode.TELEOP: frozenset({Mode.IDLE, Mode.POLICY}),
    Mode.POLICY: frozenset({Mode.IDLE, Mode.INTERVENTION, Mode.TELEOP}),
    Mode.INTERVENTION: frozenset({Mode.POLICY, Mode.IDLE, Mode.TELEOP}),
    Mode.REPLAY: frozenset({Mode.IDLE}),
}

SOURCE = {
    Mode.IDLE: "idle",
    Mode.TELEOP: "human",
    Mode.POLICY: "policy",
    Mode.INTERVENTION: "intervention",
    Mode.REPLAY: "replay",
}


class InvalidTransition(RuntimeError):
    pass


@dataclass(frozen=True)
class Change:
    t: float
    mode: Mode
    recording: bool
    reason: str


class Session:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mode = Mode.IDLE
        self._recording = False
        self.history: list[Change] = [Change(time.monotonic(), Mode.IDLE, False, "start")]
        self._listeners: list[Callable[[Change], None]] = []

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def recording(self) -> bool:
        return self._recording

    @property
    def source(self) -> str:
        """The label every tick gets: ``idle``, ``human``, ``policy``, ``intervention`` or ``replay``."""
        return SOURCE[self._mode]

    @property
    def label(self) -> str:
        return f"recording ({self._mode.value})" if self._recording else self._mode.value

    def set_mode(self, mode: Mode, reason: str = "") -> None:
        with self._lock:
            if mode == self._mode:
                return
            if mode not in TRANSITIONS[self._mode]:
                allowed = ", ".join(sorted(m.value for m in TRANSITIONS[self._mode]))
                raise InvalidTransition(f"cannot go from {self._mode.value} to {mode.value} (allowed: {allowed})")
            if mode is Mode.IDLE and self._recording:
                raise InvalidTransition("stop the recording before going idle")
            self._mode = mode
            change = self._record(reason)
        self._notify(change)

    def start_recording(self, reason: str = "") -> None:
        with self._lock:
            if self._recording:
                raise InvalidTransition("already recording")
            if self._mode is Mode.IDLE:
                raise InvalidTransition("start teleop, a policy or a replay before recording")
            self._recording = True
            change = self._record(reason)
        self._notify(change)

    def stop_recording(self, reason: str = "") -> None:
        with self._lock:
            if not self._recording:
                raise InvalidTransition("not recording")
            self._recording = False
            change = self._record(reason)
        self._notify(change)

    def add_listener(self, fn: Callable[[Change], None]) -> None:
        self._listeners.append(fn)

    def _record(self, reason: str) -> Change:
        change = Change(time.monotonic(), self._mode, self._recording, reason)
        self.history.append(change)
        return change

    def _notify(self, change: Change) -> None:
        for fn in list(self._listeners):
            fn(change)
