"""Intel RealSense color and depth through pyrealsense2.

One :class:`RealSenseCamera` is one stream, because a camera in a rig (and in an
episode file) has one ``kind``: ``"color"`` (RGB uint8, stored as JPEG) or
``"depth"`` (uint16 in the sensor's units, stored as 16-bit PNG). A rig that
wants both names two cameras with the same ``serial``, one per ``stream``; they
share one :class:`_Unit` — one pipeline, one reader thread — so color and
depth come from the same framesets, depth aligned to color with ``rs.align``
when ``align_depth`` (then both have the color camera's size and its
intrinsics, and pixel (u, v) of one is pixel (u, v) of the other).

Create every camera of a unit before starting any: the first start opens the
pipeline with the streams of the cameras created so far.

Time: each frame keeps the device's stamp and its domain (``Frame.t_device``,
``Frame.clock``); ``t_capture`` maps it to host monotonic time with
:class:`DeviceClock`. Disconnects: no frame for ``stale_after_s`` (or a failed
wait, as librealsense raises when a camera is unplugged) sets ``error`` on the
cameras, stops the pipeline and retries every ``reconnect_interval_s``; frames
resume and the error clears when the camera is back.

Tests open ``rs.software_device`` objects through the same pipeline code
(``pipeline.set_device``); only finding a USB camera by serial and what USB
hardware does are left untested (see ``docs/hardware.md``).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from drivers.base import Camera, DeviceError
from drivers.registry import ConfigError
from drivers.types import Frame

STREAMS = ("color", "depth")
WAIT_MS = 100  # the reader wakes at least this often to check for a stop or a stall
_HOST_CLOCK_DOMAINS = ("global_time", "system_time")  # stamps already on the host's wall clock (ms)


@dataclass(frozen=True)
class RealSenseConfig:
    """One stream of a RealSense camera.

    ``serial`` picks the camera (``None``: the first one found, fine with one
    camera). ``stream`` is ``"color"`` or ``"depth"``. Cameras sharing a serial
    must agree on ``fps``, ``align_depth`` and, when aligned, on the size.
    ``stale_after_s``: no frame for this long counts as a lost camera.
    """

    name: str
    serial: str | None = None
    stream: str = "color"
    width: int = 640
    height: int = 480
    fps: int = 30
    align_depth: bool = True
    stale_after_s: float = 0.5
    reconnect_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if self.stream not in STREAMS:
            raise ValueError(f"camera {self.name!r}: stream must be one of {STREAMS}, got {self.stream!r}")
        if self.width < 1 or self.height < 1 or self.fps < 1:
            raise ValueError(f"camera {self.name!r}: width, height and fps must be positive")
        if self.stale_after_s <= 0 or self.reconnect_interval_s <= 0:
            raise ValueError(f"camera {self.name!r}: stale_after_s and reconnect_interval_s must be positive")
        if self.serial is not None:
            object.__setattr__(self, "serial", str(self.serial))


class DeviceClock:
    """Maps frame time stamps (seconds, with their librealsense domain) to host monotonic time.

    ``global_time``/``system_time`` stamps are on the host's wall clock: they
    are shifted by the current wall-to-monotonic offset. ``hardware_clock``
    stamps have an unknown offset: the smallest ``t_host - t_device`` seen is
    the best estimate (the frame with the least transfer delay), allowed to
    creep up by ``drift`` (s/s) so a device clock slower than the host's is
    followed; a stamp that goes backwards (device reset) starts afresh. Either
    way the result is never after ``t_host`` and never before the previous one.
    """

    def __init__(self, drift: float = 1e-4, wall_minus_monotonic: Callable[[], float] | None = None) -> None:
        self.drift = drift
        self._wall = wall_minus_monotonic or (lambda: time.time() - time.monotonic())
        self._offset: float | None = None
        self._domain: str | None = None
        self._last_device = 0.0
        self._last = -np.inf

    def map(self, t_device: float, domain: str, t_host: float) -> float:
        if domain in _HOST_CLOCK_DOMAINS:
            t = t_device - self._wall()
        else:
            sample = t_host - t_device
            if self._offset is None or domain != self._domain or t_device < self._last_device:
                self._offset = sample
            else:
                self._offset = min(self._offset + self.drift * (t_device - self._last_device), sample)
            t = t_device + self._offset
        self._domain = domain
        self._last_device = t_device
        t = max(min(t, t_host), self._last)
        self._last = t
        return t


class RealSenseCamera(Camera):
    """One stream (color or depth) of a RealSense camera; see the module notes.

    ``device`` is a pyrealsense2 device to open instead of looking ``serial``
    up among the connected cameras (a ``software_device`` in tests).
    """

    config_class = RealSenseConfig

    def __init__(self, config: RealSenseConfig, robot: Any = None, *, device: Any = None) -> None:
        super().__init__(config.name, config.width, config.height, config.fps)
        self.config = config
        self.kind = config.stream
        self.missed = 0  # frames the camera numbered but never delivered (USB drops)
        self._lock = threading.Lock()
        self._active = False
        self._seq = 0
        self._last_number: int | None = None
        self._unit = _unit_for(config, device)
        self._unit.register(self)

    @property
    def serial(self) -> str | None:
        """The camera's serial number once started (the configured one before)."""
        return self._unit.serial

    def start(self) -> None:
        """Start this stream; the unit's first start opens the pipeline. :class:`DeviceError` names the fix."""
        self._unit.start(self)

    def stop(self) -> None:
        """Stop this stream; the unit's last stop closes the pipeline. Idempotent."""
        self._unit.stop(self)

    def _begin(self) -> None:
        with self._lock:
            self._active = True
            self._seq = 0
            self._last_number = None
            self.error = None

    def _end(self) -> None:
        with self._lock:
            self._active = False

    def _deliver(self, image: np.ndarray, t_capture: float, t_host: float, t_device: float, clock: str,
                 number: int) -> None:
        with self._lock:
            if not self._active:
                return
            if self._last_number is not None and number > self._last_number + 1:
                self.missed += number - self._last_number - 1
            self._last_number = number
            self.error = None
            frame = Frame(self.name, image, t_capture, t_host, self._seq, t_device=t_device, clock=clock)
            self._seq += 1
            self._publish(frame)


# -- the pipeline shared by the streams of one camera ----------------------------------------------

_units: weakref.WeakValueDictionary[str, _Unit] = weakref.WeakValueDictionary()
_units_lock = threading.Lock()


def _unit_for(config: RealSenseConfig, device: Any) -> _Unit:
    key = config.serial or ""
    if device is not None and not key:
        key = f"device-{id(device)}"
    with _units_lock:
        unit = _units.get(key)
        if unit is None or unit.device is not device:
            unit = _units[key] = _Unit(config.serial, device)
        return unit


def _import_rs() -> Any:
    try:
        import pyrealsense2 as rs
    except ImportError:
        raise DeviceError("RealSense: the pyrealsense2 package is missing: pip install pyrealsense2") from None
    except OSError:  # the wheel's native library could not load its dependencies
        raise DeviceError("RealSense: pyrealsense2 cannot load libusb: sudo apt install libusb-1.0-0") from None
    return rs


class _Unit:
    """One RealSense camera: its pipeline, reader thread and clock, fanning frames out to its streams.

    Holds its cameras weakly (they hold it), so dropped cameras take it with them.
    """

    def __init__(self, serial: str | None, device: Any) -> None:
        self.serial = serial
        self.device = device
        self._cameras: weakref.WeakSet[RealSenseCamera] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._streams: tuple[str, ...] = ()  # those the open pipeline delivers
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pipe: Any = None
        self._align: Any = None
        self._clocks = {s: DeviceClock() for s in STREAMS}  # per stream: each one's stamps only increase
        self._last: dict[str, tuple[int, float] | None] = dict.fromkeys(STREAMS)  # (number, stamp) delivered

    def register(self, camera: RealSenseCamera) -> None:
        with self._lock:
            if self._thread is not None:
                raise DeviceError(f"RealSense {self.serial or '(first)'}: camera {camera.name!r} was created after "
                                  "the camera started; create all its streams before starting any")
            if any(c.kind == camera.kind for c in self._cameras):
                raise ConfigError(f"RealSense {self.serial or '(first)'} already has a {camera.kind} camera; "
                                  "give each camera its serial")
            self._cameras.add(camera)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, camera: RealSenseCamera) -> None:
        with self._lock:
            if camera._active:
                return
            if self._thread is None:
                self._open()
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name=f"realsense-{self.serial}", daemon=True)
                self._thread.start()
            camera._begin()

    def stop(self, camera: RealSenseCamera) -> None:
        with self._lock:
            if not camera._active:
                return
            camera._end()
            if any(c._active for c in self._cameras) or self._thread is None:
                return
            thread, self._thread = self._thread, None
            self._stop.set()
        thread.join(timeout=5.0)
        self._close()

    # -- the pipeline --------------------------------------------------------------------------
    def _plan(self) -> dict[str, Any]:
        """The pipeline's streams and settings from the cameras' configs, checked for agreement."""
        configs = {c.kind: c.config for c in self._cameras}
        fps = {c.fps for c in configs.values()}
        align = {c.align_depth for c in configs.values()}
        names = ", ".join(c.name for c in configs.values())
        if len(fps) > 1 or len(align) > 1:
            raise ConfigError(f"RealSense cameras {names} share serial {self.serial}: give them the same "
                              "fps and align_depth")
        aligned = "depth" in configs and align.pop()
        sizes = {(c.width, c.height) for c in configs.values()}
        if aligned and len(sizes) > 1:
            raise ConfigError(f"RealSense cameras {names}: depth aligned to color has the color image's size; "
                              "give both the same width and height (or align_depth = false)")
        color = configs.get("color") or configs["depth"]
        streams = tuple(s for s in STREAMS if s in configs or (s == "color" and aligned))
        return {"fps": fps.pop(), "aligned": aligned, "streams": streams,
                "size": {s: ((configs.get(s) or color).width, (configs.get(s) or color).height) for s in streams}}

    def _open(self) -> None:
        """Start the pipeline; raises :class:`DeviceError` (one line) when it cannot."""
        rs = _import_rs()
        plan = self._plan()
        device = self.device
        if device is None:
            ctx = rs.context()
            device = _find(rs, ctx, self.serial)
            pipe = rs.pipeline(ctx)
        else:
            pipe = rs.pipeline(rs.context())
            pipe.set_device(device)
        serial = device.get_info(rs.camera_info.serial_number)
        cfg = rs.config()
        cfg.enable_device(serial)
        formats = {"color": (rs.stream.color, rs.format.rgb8), "depth": (rs.stream.depth, rs.format.z16)}
        for s in plan["streams"]:
            cfg.enable_stream(formats[s][0], *plan["size"][s], formats[s][1], plan["fps"])
        try:
            profile = pipe.start(cfg)
        except RuntimeError as exc:
            modes = ", ".join(f"{s} {w}x{h}" for s, (w, h) in plan["size"].items())
            raise DeviceError(f"RealSense {serial}: cannot stream {modes} at {plan['fps']} fps ({exc}); "
                              "check the mode in realsense-viewer and use a USB 3 port") from None
        self.serial = serial
        self._pipe = pipe
        self._streams = plan["streams"]
        self._last = dict.fromkeys(STREAMS)
        self._align = rs.align(rs.stream.color) if plan["aligned"] else None
        self._set_intrinsics(rs, profile, plan["aligned"])

    def _set_intrinsics(self, rs: Any, profile: Any, aligned: bool) -> None:
        streams = {"color": rs.stream.color, "depth": rs.stream.depth}
        for camera in self._cameras:
            source = "color" if camera.kind == "color" or aligned else "depth"
            intr = intrinsics(profile.get_stream(streams[source]))
            if camera.kind == "depth":
                intr["depth_scale"] = float(profile.get_device().first_depth_sensor().get_depth_scale())
            camera.intrinsics = intr

    def _close(self) -> None:
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            try:
                pipe.stop()
            except RuntimeError:  # already stopped by a lost device
                pass

    def _run(self) -> None:
        """Reader thread: wait for framesets and fan them out; on a stall, report, close and reopen."""
        stale_after = min(c.config.stale_after_s for c in self._cameras)
        retry = min(c.config.reconnect_interval_s for c in self._cameras)
        last = time.monotonic()
        while not self._stop.is_set():
            if self._pipe is None:
                if self._stop.wait(retry):
                    break
                try:
                    self._open()
                except DeviceError as exc:
                    self._fail(f"{exc}; retrying every {retry:g} s")
                    continue
                last = time.monotonic()
            try:
                ok, frames = self._pipe.try_wait_for_frames(WAIT_MS)
            except RuntimeError as exc:  # librealsense's answer to an unplugged camera
                self._lost(f"lost ({exc})", retry)
                continue
            now = time.monotonic()
            if ok:
                self._fan_out(frames, now)
                last = now
            elif now - last > stale_after:
                self._lost(f"no frame for {stale_after:g} s (unplugged, or USB bandwidth exhausted?)", retry)
        self._close()

    def _lost(self, why: str, retry: float) -> None:
        self._fail(f"RealSense {self.serial}: {why}; restarting every {retry:g} s")
        self._close()

    def _fail(self, message: str) -> None:
        for camera in self._cameras:
            if camera._active:
                camera.error = message

    def _fan_out(self, frames: Any, t_host: float) -> None:
        if self._align is not None:
            frames = self._align.process(frames)
        got = {"color": frames.get_color_frame(), "depth": frames.get_depth_frame()}
        for camera in self._cameras:
            frame = got.get(camera.kind)
            if not frame:
                continue
            number = int(frame.get_frame_number())
            t_device = frame.get_timestamp() / 1000.0
            if self._last[camera.kind] == (number, t_device):
                continue  # the syncer repeats a stream's last frame while it waits for the other's next
            self._last[camera.kind] = (number, t_device)
            clock = frame.get_frame_timestamp_domain().name
            t_capture = self._clocks[camera.kind].map(t_device, clock, t_host)
            image = np.asanyarray(frame.get_data()).copy()  # the buffer goes back to librealsense's pool
            camera._deliver(image, t_capture, t_host, t_device, clock, number)


def _find(rs: Any, ctx: Any, serial: str | None) -> Any:
    """The connected camera with ``serial`` (the first one if None)."""
    try:
        devices = list(ctx.query_devices())
    except RuntimeError as exc:
        raise DeviceError(f"RealSense: cannot list cameras ({exc}); is libusb-1.0-0 installed?") from None
    serials = [d.get_info(rs.camera_info.serial_number) for d in devices]
    if serial is not None and serial not in serials:
        raise DeviceError(f"RealSense {serial} not found (connected: {', '.join(serials) or 'none'}); "
                          "plug it into a USB 3 port and check the serial with `teleop-app devices`")
    if not devices:
        raise DeviceError("RealSense: no camera connected: plug it into a USB 3 port and check "
                          "`teleop-app devices` (udev rules: docs/hardware.md)")
    if serial is None:
        return devices[0]
    return devices[serials.index(serial)]


def intrinsics(stream_profile: Any) -> dict[str, Any]:
    """The pinhole model of a video stream as the episode format stores it (pixels; ``cx``/``cy`` = ppx/ppy)."""
    i = stream_profile.as_video_stream_profile().get_intrinsics()
    return {"model": i.model.name, "width": int(i.width), "height": int(i.height), "fx": float(i.fx),
            "fy": float(i.fy), "cx": float(i.ppx), "cy": float(i.ppy), "coeffs": [float(c) for c in i.coeffs]}
