"""Who controls the robot: the control mode the loop reads every tick.

``IDLE`` holds still, ``TELEOP`` follows the active input (a human device or a
scripted expert), ``POLICY`` a policy, ``INTERVENTION`` a human who took over
from the policy, ``REPLAY`` a recorded episode. Which transitions are allowed is
fixed here; *when* they happen is decided by the operator session
(:mod:`teleop_app.operator_session`) and, for takeovers, by the loop's arbiter.
Whether an episode is being recorded is not a mode: any driver can be recorded.

Thread-safe: the loop reads :attr:`Modes.mode` without a lock (one reference),
changes take a lock and are announced to listeners on the changing thread.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


class Mode(enum.Enum):
    IDLE = "idle"  # loop runs, robot holds its last target, inputs are ignored
    TELEOP = "teleop"  # the active input drives (a human device or a scripted expert)
    POLICY = "policy"  # a policy drives
    INTERVENTION = "intervention"  # a human took over from the policy
    REPLAY = "replay"  # a recorded episode is played back


TRANSITIONS: dict[Mode, frozenset[Mode]] = {
    Mode.IDLE: frozenset({Mode.TELEOP, Mode.POLICY, Mode.REPLAY}),
    Mode.TELEOP: frozenset({Mode.IDLE, Mode.POLICY, Mode.REPLAY}),
    Mode.POLICY: frozenset({Mode.IDLE, Mode.INTERVENTION, Mode.TELEOP}),
    Mode.INTERVENTION: frozenset({Mode.POLICY, Mode.IDLE, Mode.TELEOP}),
    Mode.REPLAY: frozenset({Mode.IDLE, Mode.TELEOP}),
}


class InvalidTransition(RuntimeError):
    pass


@dataclass(frozen=True)
class Change:
    t: float
    mode: Mode
    reason: str


class Modes:
    """The current control mode, its history and listeners."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mode = Mode.IDLE
        self.history: list[Change] = [Change(time.monotonic(), Mode.IDLE, "start")]
        self._listeners: list[Callable[[Change], None]] = []

    @property
    def mode(self) -> Mode:
        return self._mode

    def set_mode(self, mode: Mode, reason: str = "") -> None:
        with self._lock:
            if mode == self._mode:
                return
            if mode not in TRANSITIONS[self._mode]:
                allowed = ", ".join(sorted(m.value for m in TRANSITIONS[self._mode]))
                raise InvalidTransition(f"cannot go from {self._mode.value} to {mode.value} (allowed: {allowed})")
            self._mode = mode
            change = Change(time.monotonic(), mode, reason)
            self.history.append(change)
        for fn in list(self._listeners):
            fn(change)

    def add_listener(self, fn: Callable[[Change], None]) -> None:
        self._listeners.append(fn)
