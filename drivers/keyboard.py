"""End-effector teleop from the keyboard.

The device keeps a set of held keys; anything that sees key events feeds it:
the GUI (press and release events) or a terminal (press events only, so a key
counts as held for ``hold_timeout`` after its last press — the terminal's key
repeat keeps a held key alive).
"""

from __future__ import annotations

import os
import select
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from drivers.base import InputDevice
from drivers.types import InputState

# key -> (twist axis, sign, what it does); axes are x, y, z, roll, pitch, yaw in the base frame
MOTION_KEYS: dict[str, tuple[int, int, str]] = {
    "w": (0, +1, "forward (+x)"),
    "s": (0, -1, "back (-x)"),
    "a": (1, +1, "left (+y)"),
    "d": (1, -1, "right (-y)"),
    "r": (2, +1, "up (+z)"),
    "f": (2, -1, "down (-z)"),
    "j": (3, +1, "roll +"),
    "l": (3, -1, "roll -"),
    "i": (4, +1, "pitch +"),
    "k": (4, -1, "pitch -"),
    "u": (5, +1, "yaw +"),
    "o": (5, -1, "yaw -"),
}
GRIPPER_KEY = " "
AXIS_NAMES = ("x", "y", "z", "roll", "pitch", "yaw")


@dataclass
class KeyboardConfig:
    name: str = "keyboard"
    linear_speed: float = 0.08  # m/s while a translation key is held
    angular_speed: float = 0.8  # rad/s while a rotation key is held
    hold_timeout: float = 0.6  # s; only for sources without release events (a terminal)


class KeyboardInput(InputDevice):
    config_class = KeyboardConfig

    def __init__(self, config: KeyboardConfig, robot: object | None = None) -> None:
        super().__init__(config.name)
        self.config = config
        self._held: dict[str, float | None] = {}  # key -> expiry time (None: until released)
        self._gripper = 1.0

    @staticmethod
    def bindings() -> list[tuple[str, str]]:
        """(key, action) pairs for help screens."""
        keys = [(k.upper(), what) for k, (_, _, what) in MOTION_KEYS.items()]
        return keys + [("Space", "toggle gripper open/closed")]

    def press(self, key: str) -> None:
        key = key.lower() if key != GRIPPER_KEY else key
        with self._lock:
            if key == GRIPPER_KEY:
                if key not in self._held:
                    self._gripper = 0.0 if self._gripper > 0.5 else 1.0
                self._held[key] = None
            elif key in MOTION_KEYS:
                self._held[key] = None

    def release(self, key: str) -> None:
        key = key.lower() if key != GRIPPER_KEY else key
        with self._lock:
            self._held.pop(key, None)

    def tap(self, key: str, now: float | None = None) -> None:
        """A press with no release to follow (terminal input): held until ``hold_timeout`` passes."""
        key = key.lower() if key != GRIPPER_KEY else key
        now = time.monotonic() if now is None else now
        with self._lock:
            if key == GRIPPER_KEY:
                self._gripper = 0.0 if self._gripper > 0.5 else 1.0
            elif key in MOTION_KEYS:
                # A terminal repeats a held key every ~30-50 ms after a ~0.5 s delay; other
                # motion keys are let go, since a terminal can only report one held key.
                self._held = {k: v for k, v in self._held.items() if k == key or v is None}
                self._held[key] = now + self.config.hold_timeout

    def release_all(self) -> None:
        """Let go of every key (the window lost focus: no release event will come)."""
        with self._lock:
            self._held.clear()

    def follow(self, gripper_opening: float) -> None:
        with self._lock:
            self._gripper = float(min(max(gripper_opening, 0.0), 1.0))

    def reset(self) -> None:
        with self._lock:
            self._held.clear()
            self._gripper = 1.0

    def read(self) -> InputState:
        now = time.monotonic()
        twist = np.zeros(6)
        with self._lock:
            for key, expiry in list(self._held.items()):
                if expiry is not None and now > expiry:
                    del self._held[key]
                    continue
                if key in MOTION_KEYS:
                    axis, sign, _ = MOTION_KEYS[key]
                    twist[axis] += sign
            gripper = self._gripper
            held = frozenset(self._held)
        twist[:3] *= self.config.linear_speed
        twist[3:] *= self.config.angular_speed
        return InputState(
            device=self.name, t_host=now, ee_twist=twist, gripper=gripper, buttons=held,
            axes={name: float(v) for name, v in zip(AXIS_NAMES, twist)},
        )


class TerminalKeys:
    """Reads single key presses from a terminal on a thread (headless keyboard teleop).

    ``handlers`` maps special keys (e.g. ``x`` for STOP) to callables; every other
    key goes to ``device.tap``. The terminal is restored on :meth:`stop`.
    """

    def __init__(self, device: KeyboardInput, handlers: dict[str, Callable[[], None]] | None = None,
                 stream: TextIO | None = None) -> None:
        self.device = device
        self.handlers = handlers or {}
        self.stream = stream or sys.stdin
        self._stop = threading.Event()
        self._saved = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        fd = self.stream.fileno()
        if self.stream.isatty():
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        self._thread = threading.Thread(target=self._run, name="terminal-keys", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._saved is not None:
            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None

    def _run(self) -> None:
        fd = self.stream.fileno()
        while not self._stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            data = os.read(fd, 32).decode(errors="ignore")
            if not data:
                return
            for ch in data:
                handler = self.handlers.get(ch.lower())
                if handler is not None:
                    handler()
                else:
                    self.device.tap(ch)
