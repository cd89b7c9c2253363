"""3Dconnexion SpaceMouse driving the end effector, through pyspacemouse.

Why a reader thread that drains: while the cap is deflected the device sends a
report every 8-16 ms (and three zero reports on release), and the kernel queues
whatever nobody reads. A reader that takes one report per control tick or per
GUI frame falls behind, and the robot keeps moving for about a second after the
hand lets go (the known pyspacemouse lag bug). Here a thread reads every queued
report as soon as it comes (non-blocking reads until the queue is empty, then a
short sleep), keeps only the newest state with its host time, and counts button
presses on every report so no click is lost; :meth:`SpaceMouse.read` never
touches the device.

Axes: pyspacemouse parses the reports with its raw HID convention (+x right,
+y toward the user, +z down, roll/pitch/yaw about those axes, right-handed,
about ±1.0 at full deflection = ±350 raw). ``axis_map`` and ``signs`` take them
to the robot base frame. The defaults suit an operator behind the robot who
looks the way it faces: push away = +x, push left = +y, lift = +z (the same
frame as pyspacemouse's ROS convention).

Safety: a read error (unplugged, receiver out of range) zeroes the motion at
once and marks the device disconnected while the thread tries to reopen it; a
non-zero deflection with no report for ``motion_timeout_s`` counts as released
(a held cap repeats its report every 8-16 ms, so silence means a lost link).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drivers.base import DeviceError, InputDevice
from drivers.streams import RateMeter, ReaderThread
from drivers.types import InputState

DEVICE_AXES = ("x", "y", "z", "roll", "pitch", "yaw")
"""The six axes pyspacemouse reports, in its raw HID convention."""
NO_AXIS = "none"
GRIPPER_MODES = ("toggle", "hold")
BUTTON_ROLES = ("gripper", "episode", "deadman", "kill")
"""Stable names in :attr:`InputState.buttons` for the mapped buttons (others are ``button<i>``)."""
_MULTI_AXIS_USAGE = (0x01, 0x08)  # HID usage page Generic Desktop, usage Multi-axis Controller

HIDAPI_FIX = "the hidapi system library is missing: sudo apt install libhidapi-hidraw0"
UDEV_FIX = "install the hidraw udev rule from docs/hardware.md and replug it"


@dataclass(frozen=True)
class SpaceMouseConfig:
    """How the SpaceMouse drives the robot.

    ``axis_map[i]`` names the device axis (one of :data:`DEVICE_AXES`, or
    ``"none"``) that feeds base-frame axis i of ``[x, y, z, roll, pitch, yaw]``;
    ``signs[i]`` multiplies it. ``deadband`` is a fraction of full deflection;
    the rest of the travel is rescaled so speed starts from zero at its edge.
    Full deflection gives ``max_linear_speed`` (m/s) or ``max_angular_speed``
    (rad/s). Buttons are indices into the device's button list (0 = left on
    two-button models). ``gripper_mode`` ``"toggle"`` opens/closes on each press,
    ``"hold"`` closes while the button is held. With a ``deadman_button`` nothing
    moves (and the gripper target does not change) unless it is held.
    ``device`` picks a model by its pyspacemouse name (e.g. ``"SpaceMouseCompact"``)
    and ``path`` one unit by its ``/dev/hidrawN``; neither takes the first found.
    """

    name: str = "spacemouse"
    device: str | None = None
    path: str | None = None
    axis_map: tuple[str, ...] = ("y", "x", "z", "pitch", "roll", "yaw")
    signs: tuple[float, ...] = (-1.0, -1.0, -1.0, -1.0, -1.0, -1.0)
    deadband: float = 0.05
    max_linear_speed: float = 0.1
    max_angular_speed: float = 0.8
    gripper_mode: str = "toggle"
    gripper_button: int | None = 0
    episode_button: int | None = 1
    deadman_button: int | None = None
    kill_button: int | None = None
    motion_timeout_s: float = 0.1
    reconnect_interval_s: float = 1.0
    poll_interval_s: float = 0.002

    def __post_init__(self) -> None:
        object.__setattr__(self, "axis_map", tuple(str(a) for a in self.axis_map))
        object.__setattr__(self, "signs", tuple(float(s) for s in self.signs))
        if len(self.axis_map) != 6 or any(a not in DEVICE_AXES + (NO_AXIS,) for a in self.axis_map):
            raise ValueError(f"axis_map needs 6 entries from {DEVICE_AXES + (NO_AXIS,)}, got {list(self.axis_map)}")
        if len(self.signs) != 6:
            raise ValueError(f"signs needs 6 numbers, got {list(self.signs)}")
        if not 0.0 <= self.deadband < 1.0:
            raise ValueError(f"deadband must be in [0, 1), got {self.deadband}")
        if self.max_linear_speed <= 0 or self.max_angular_speed <= 0:
            raise ValueError("max_linear_speed and max_angular_speed must be positive")
        if self.gripper_mode not in GRIPPER_MODES:
            raise ValueError(f"gripper_mode must be one of {GRIPPER_MODES}, got {self.gripper_mode!r}")
        buttons = [b for b in self.button_roles().values()]
        if any(b < 0 for b in buttons) or len(set(buttons)) != len(buttons):
            raise ValueError(f"buttons must be distinct indices >= 0, got {self.button_roles()}")
        if min(self.motion_timeout_s, self.reconnect_interval_s, self.poll_interval_s) <= 0:
            raise ValueError("motion_timeout_s, reconnect_interval_s and poll_interval_s must be positive")

    def button_roles(self) -> dict[str, int]:
        """Role name -> button index, for the roles that have a button."""
        roles = {"gripper": self.gripper_button, "episode": self.episode_button,
                 "deadman": self.deadman_button, "kill": self.kill_button}
        return {role: int(b) for role, b in roles.items() if b is not None}


@dataclass(frozen=True, slots=True)
class Report:
    """The device's newest state as the reader thread left it."""

    seq: int  # reports read since start (0: none yet)
    t_host: float  # monotonic time the report was read (start time before the first)
    axes: tuple[float, ...]  # DEVICE_AXES, about -1..1
    buttons: tuple[int, ...]  # 0/1 per device button
    gripper: float  # opening target after this report
    connected: bool = True
    held: frozenset[str] = field(default_factory=frozenset)  # names of pressed buttons


def default_hid_enumerate() -> list[Any]:
    """Every HID interface on the machine, as easyhid (pyspacemouse's HID layer) lists them."""
    try:
        from easyhid import Enumeration
    except OSError:  # easyhid loads the hidapi shared library at import
        raise DeviceError(f"SpaceMouse: {HIDAPI_FIX}") from None
    try:
        return list(Enumeration().find())
    except AttributeError:  # easyhid found no library and bound to one without hid_* symbols
        raise DeviceError(f"SpaceMouse: {HIDAPI_FIX}") from None


def _import_pyspacemouse() -> Any:
    try:
        import pyspacemouse
    except ImportError:
        raise DeviceError("SpaceMouse: the pyspacemouse package is missing: pip install pyspacemouse") from None
    except OSError:
        raise DeviceError(f"SpaceMouse: {HIDAPI_FIX}") from None
    return pyspacemouse


class SpaceMouse(InputDevice):
    """A SpaceMouse as an end-effector twist (m/s, rad/s in the base frame) plus gripper and buttons.

    ``hid_enumerate`` lists HID interfaces (easyhid device objects: ``vendor_id``,
    ``product_id``, ``path``, ``open``, ``read``, ``set_nonblocking``, ``close``);
    it is the layer below pyspacemouse, replaced in tests by emulated devices
    that produce real report bytes. pyspacemouse itself parses every report.
    """

    config_class = SpaceMouseConfig

    def __init__(self, config: SpaceMouseConfig, robot: object | None = None, *,
                 hid_enumerate: Callable[[], Iterable[Any]] | None = None) -> None:
        super().__init__(config.name)
        self.config = config
        self.error: str | None = None
        self.report_rate = RateMeter()
        self._enumerate = hid_enumerate or default_hid_enumerate
        self._roles = config.button_roles()
        self._gripper = 1.0
        self._report = Report(0, time.monotonic(), (0.0,) * 6, (), self._gripper, connected=False)
        self._presses = dict.fromkeys(self._roles, 0)
        self._reader = ReaderThread()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Open the device and start draining it; :class:`DeviceError` names the fix if it cannot."""
        if self._reader.running:
            return
        mouse = self._open()
        self.error = None
        self._report = self._idle_report(connected=True)
        self._reader.start(self._run, mouse, name=f"spacemouse-{self.name}")

    def stop(self) -> None:
        self._reader.stop()
        self._report = self._idle_report(connected=False)

    def follow(self, gripper_opening: float) -> None:
        with self._lock:
            self._gripper = float(min(max(gripper_opening, 0.0), 1.0))
            self._report = dataclasses.replace(self._report, gripper=self._gripper)

    def reset(self) -> None:
        with self._lock:
            self._gripper = 1.0

    # -- what the loop and the GUI read -------------------------------------------------------
    @property
    def report(self) -> Report:
        """The newest report (raw axes, buttons, its sequence number and host time)."""
        return self._report

    def presses(self, role: str) -> int:
        """How many times the button of ``role`` (e.g. ``"episode"``) was pressed since start.

        Counted on every report, so a click shorter than a GUI frame still counts:
        compare with the previous count to act once per press.
        """
        return self._presses.get(role, 0)

    def read(self) -> InputState:
        r = self._report
        if not r.connected:
            return InputState(device=self.name, t_host=r.t_host, connected=False, ee_twist=np.zeros(6),
                              axes=dict(zip(DEVICE_AXES, r.axes)))
        twist = self.twist(r.axes)
        stale = time.monotonic() - r.t_host > self.config.motion_timeout_s
        if stale or ("deadman" in self._roles and "deadman" not in r.held):
            twist[:] = 0.0
        return InputState(device=self.name, t_host=r.t_host, ee_twist=twist, gripper=r.gripper,
                          buttons=r.held, axes=dict(zip(DEVICE_AXES, r.axes)))

    def twist(self, axes: tuple[float, ...]) -> np.ndarray:
        """Base-frame twist ``[vx, vy, vz, wx, wy, wz]`` (m/s, rad/s) for raw device axes."""
        c = self.config
        out = np.zeros(6)
        for i, (source, sign) in enumerate(zip(c.axis_map, c.signs)):
            if source == NO_AXIS:
                continue
            v = min(abs(axes[DEVICE_AXES.index(source)]), 1.0)
            if v <= c.deadband:
                continue
            v = (v - c.deadband) / (1.0 - c.deadband)
            out[i] = np.copysign(v, axes[DEVICE_AXES.index(source)]) * sign
        out[:3] *= c.max_linear_speed
        out[3:] *= c.max_angular_speed
        return out

    # -- the device --------------------------------------------------------------------------
    def _open(self) -> Any:
        """Find the configured SpaceMouse among the HID interfaces and open it through pyspacemouse."""
        psm = _import_pyspacemouse()
        c = self.config
        specs = psm.get_device_specs()
        by_id = {}
        for spec in specs.values():
            by_id.setdefault((spec.vendor_id, spec.product_id), spec)
        found = [(hid, by_id[(hid.vendor_id, hid.product_id)]) for hid in self._enumerate()
                 if (hid.vendor_id, hid.product_id) in by_id]
        if c.device is not None:
            if c.device not in specs:
                raise DeviceError(f"SpaceMouse: unknown device {c.device!r}; known: {', '.join(sorted(specs))}")
            want = (specs[c.device].vendor_id, specs[c.device].product_id)
            found = [(hid, spec) for hid, spec in found if (spec.vendor_id, spec.product_id) == want]
        if c.path is not None:
            found = [(hid, spec) for hid, spec in found if _same_path(hid.path, c.path)]
        if not found:
            which = c.path or c.device or "any model"
            raise DeviceError(f"SpaceMouse: none found ({which}): plug it in and check `teleop-app devices`")
        # Receivers expose several interfaces; the multi-axis controller is the one with the reports.
        found.sort(key=lambda hs: (getattr(hs[0], "usage_page", None), getattr(hs[0], "usage", None))
                   != _MULTI_AXIS_USAGE)
        hid, spec = found[0]
        mouse = psm.SpaceMouseDevice(info=psm.apply_axis_convention(spec, psm.AxisConvention.HID), device=hid)
        try:
            mouse.open()
            hid.set_nonblocking(True)
        except Exception as exc:  # easyhid's HIDException (wrapped in RuntimeError by pyspacemouse)
            raise DeviceError(f"SpaceMouse {spec.name} at {hid.path} cannot be opened (no permission?): "
                              f"{UDEV_FIX}") from exc
        return mouse

    def _run(self, mouse: Any) -> None:
        """Reader thread: drain every queued report, keep the newest; reopen after a failure."""
        c = self.config
        last_t = None  # pyspacemouse's time of the last report read: a read that returns it read nothing
        while not self._reader.stopping.is_set():
            if mouse is None:
                if self._reader.stopping.wait(c.reconnect_interval_s):
                    break
                try:
                    mouse = self._open()
                except DeviceError as exc:
                    self.error = f"{exc} (retrying every {c.reconnect_interval_s:g} s)"
                    continue
                self.error = None
                self._report = self._idle_report(connected=True)
                last_t = None
            try:
                t = self._drain(mouse, last_t)
            except Exception as exc:  # the read failed: unplugged, or the receiver lost the device
                self._report = self._idle_report(connected=False)  # zero motion first, then the rest
                self.error = (f"SpaceMouse {self.name} lost ({type(exc).__name__}: {exc}); "
                              f"motion stopped, reconnecting every {c.reconnect_interval_s:g} s")
                _close(mouse)
                mouse = None
                continue
            if t == last_t:
                self._reader.stopping.wait(c.poll_interval_s)
            last_t = t
        if mouse is not None:
            _close(mouse)

    def _drain(self, mouse: Any, last_t: float | None) -> float | None:
        """Read until the device has nothing queued; returns the time stamp of the last report read."""
        while True:
            state = mouse.read()  # one queued report at most; the same state object again when none
            if state.t == last_t or state.t < 0:  # t < 0: nothing read since open
                return last_t
            last_t = state.t
            self._on_report(tuple(float(getattr(state, a)) for a in DEVICE_AXES), tuple(state.buttons))

    def _on_report(self, axes: tuple[float, ...], buttons: tuple[int, ...]) -> None:
        now = time.monotonic()
        prev = self._report
        pressed = {role for role, b in self._roles.items() if b < len(buttons) and buttons[b]}
        was = {role for role, b in self._roles.items() if b < len(prev.buttons) and prev.buttons[b]}
        for role in pressed - was:
            self._presses[role] += 1
        with self._lock:
            if "deadman" not in self._roles or "deadman" in pressed:
                if self.config.gripper_mode == "hold" and "gripper" in self._roles:
                    self._gripper = 0.0 if "gripper" in pressed else 1.0
                elif "gripper" in pressed - was:
                    self._gripper = 0.0 if self._gripper > 0.5 else 1.0
            mapped = set(self._roles.values())
            held = frozenset(pressed | {f"button{i}" for i, b in enumerate(buttons) if b and i not in mapped})
            self._report = Report(prev.seq + 1, now, axes, buttons, self._gripper, True, held)
        self.report_rate.tick(now)

    def _idle_report(self, connected: bool) -> Report:
        """No deflection, no button: at start, after a reconnect, and the moment the device is lost."""
        return Report(self._report.seq, time.monotonic(), (0.0,) * 6, (), self._gripper, connected)


def _same_path(hid_path: Any, wanted: str) -> bool:
    path = hid_path.decode() if isinstance(hid_path, bytes) else str(hid_path)
    return os.path.realpath(path) == os.path.realpath(wanted)


def _close(mouse: Any) -> None:
    try:
        mouse.close()
    except Exception:  # closing a device that is already gone may fail; nothing is left to release
        pass
