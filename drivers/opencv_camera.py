"""Any camera or video file OpenCV can open (``cv2.VideoCapture``).

A reader thread reads frames as they come and publishes each one (the newest is
always in :meth:`~drivers.base.Camera.latest`). Time stamps: a V4L2 camera's
buffer time stamp is on the host's monotonic clock and becomes ``t_capture``
(``clock = "v4l2_monotonic"``); where a backend gives nothing plausible,
``t_capture`` is the host receive time. A video file plays in real time paced
by its own presentation times (``clock = "media"``, ``t_device`` = the frame's
time in the file), so a file stands in for a camera in tests and demos.

States (:attr:`OpenCVCamera.state`): ``running``; ``stale`` when no frame came
for ``stale_after_s`` (computed when read, so a capture blocked inside OpenCV
still shows up); ``lost`` when a camera stops delivering (the thread reopens it
every ``reconnect_interval_s``); ``ended`` at the end of a file with
``at_end = "stop"``; ``stopped``. Anything but running is explained in ``error``.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from drivers.base import Camera, DeviceError
from drivers.streams import ReaderThread
from drivers.types import Frame

AT_END = ("stop", "loop")
_PLAUSIBLE_DELAY_S = 2.0  # a device stamp this much older than its arrival is not on our clock


@dataclass(frozen=True)
class OpenCVCameraConfig:
    """A camera by ``index`` (``/dev/video<index>``) or ``path`` (a device node or a video file).

    ``fourcc`` (e.g. ``"MJPG"``), ``width``, ``height`` and ``fps`` are requested
    from a camera (``None``: its default); for a file, ``fps`` sets the playback
    rate (default: the file's own). ``at_end`` says what a file does at its end.
    """

    name: str
    index: int | None = None
    path: str | None = None
    fourcc: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    stale_after_s: float = 1.0
    at_end: str = "stop"
    reconnect_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if self.index is not None and self.path is not None:
            raise ValueError(f"camera {self.name!r}: give index or path, not both")
        if self.index is None and self.path is None:
            object.__setattr__(self, "index", 0)
        if self.fourcc is not None and len(self.fourcc) != 4:
            raise ValueError(f"camera {self.name!r}: fourcc must have 4 characters, got {self.fourcc!r}")
        if self.at_end not in AT_END:
            raise ValueError(f"camera {self.name!r}: at_end must be one of {AT_END}, got {self.at_end!r}")
        if self.stale_after_s <= 0 or self.reconnect_interval_s <= 0 or (self.fps is not None and self.fps <= 0):
            raise ValueError(f"camera {self.name!r}: stale_after_s, reconnect_interval_s and fps must be positive")

    @property
    def source(self) -> int | str:
        return self.index if self.index is not None else self.path

    @property
    def is_file(self) -> bool:
        """A regular file (played back) rather than a device node or index (captured)."""
        if self.path is None:
            return False
        try:
            return not stat.S_ISCHR(os.stat(self.path).st_mode)
        except OSError:
            return not self.path.startswith("/dev/")


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise DeviceError("OpenCV camera: the opencv package is missing: pip install opencv-python") from None
    return cv2


class OpenCVCamera(Camera):
    """A ``cv2.VideoCapture`` source on its own reader thread; see the module notes.

    ``open_capture`` builds the capture from :attr:`OpenCVCameraConfig.source`
    (default ``cv2.VideoCapture``); anything with ``isOpened``, ``read``,
    ``get``, ``set`` and ``release`` works.
    """

    config_class = OpenCVCameraConfig

    def __init__(self, config: OpenCVCameraConfig, robot: Any = None, *,
                 open_capture: Callable[[int | str], Any] | None = None) -> None:
        super().__init__(config.name, config.width or 0, config.height or 0, config.fps or 0.0)
        self.config = config
        self._open_capture = open_capture
        self._state = "stopped"
        self._t_last = 0.0  # host time of the newest frame (or of the start)
        self._seq = 0
        self._reader = ReaderThread()

    # -- state ---------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """``running``, ``stale``, ``lost``, ``ended`` or ``stopped``."""
        if self._state == "running" and time.monotonic() - self._t_last > self.config.stale_after_s:
            return "stale"
        return self._state

    @property
    def error(self) -> str | None:
        """Why frames are not coming, or None while they are."""
        if self._error is None and self.state == "stale":
            return (f"camera {self.name}: no frame for {time.monotonic() - self._t_last:.1f} s "
                    f"(stale_after_s = {self.config.stale_after_s:g}): stalled or unplugged?")
        return self._error

    @error.setter
    def error(self, value: str | None) -> None:
        self._error = value

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Open the source and read its first frame; :class:`DeviceError` (one line) if either fails."""
        if self._reader.running:
            return
        cap = self._open()
        self._seq = 0
        self.error = None
        player = _Player(self, cap)
        player.first()
        self._reader.start(self._run, player, name=f"opencv-{self.name}")

    def stop(self) -> None:
        self._reader.stop()
        self._state = "stopped"

    # -- capture -------------------------------------------------------------------------------
    def _open(self) -> Any:
        cv2 = _import_cv2()
        c = self.config
        what = f"camera {self.name} ({c.path if c.path is not None else f'index {c.index}'})"
        if c.is_file and not os.path.exists(c.path):
            raise DeviceError(f"{what}: no such file")
        cap = (self._open_capture or cv2.VideoCapture)(c.source)
        if not cap.isOpened():
            cap.release()
            if c.is_file:
                raise DeviceError(f"{what}: OpenCV cannot decode this file (codec or container not supported)")
            raise DeviceError(f"{what} cannot be opened: is it plugged in (`teleop-app devices`), free (not used by "
                              "another program) and readable (your user in the video group)?")
        if not c.is_file:
            if c.fourcc is not None:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*c.fourcc))
            for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, c.width), (cv2.CAP_PROP_FRAME_HEIGHT, c.height),
                                (cv2.CAP_PROP_FPS, c.fps)):
                if value is not None:
                    cap.set(prop, value)
        reported = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)  # a file's rate; what a camera agreed to
        self.fps = (c.fps or reported) if c.is_file else (reported or c.fps)
        self.fps = self.fps or 30.0  # neither knows: the recorder only sizes its queue with it
        return cap

    def _run(self, player: _Player) -> None:
        c = self.config
        while not self._reader.stopping.is_set():
            if player.cap is None:
                if self._reader.stopping.wait(c.reconnect_interval_s):
                    break
                try:
                    player.cap = self._open()
                except DeviceError as exc:
                    self.error = f"{exc} (retrying every {c.reconnect_interval_s:g} s)"
                    continue
                self.error = None
                self._state = "running"
                self._t_last = time.monotonic()
            if not player.step():
                break
        player.close()

    def _deliver(self, image: np.ndarray, t_capture: float, t_host: float, t_device: float | None,
                 clock: str | None) -> None:
        if self._seq == 0:
            self.height, self.width = image.shape[:2]
        self._t_last = t_host
        frame = Frame(self.name, image, t_capture, t_host, self._seq, t_device=t_device, clock=clock)
        self._seq += 1
        self._publish(frame)


class _Player:
    """Reads one source for one camera: pacing and end handling for files, loss handling for devices."""

    def __init__(self, camera: OpenCVCamera, cap: Any) -> None:
        self.camera = camera
        self.cap = cap
        self.cv2 = _import_cv2()
        self.is_file = camera.config.is_file
        self.t0 = time.monotonic()  # host time of the file's time 0
        self.speed = 1.0
        self.frames_this_pass = 0
        self.pass_offset = 0.0  # media seconds played in earlier loops
        self.last_media = 0.0  # the newest frame's time in the file

    def first(self) -> None:
        """Read and publish the first frame; a source that opens but gives no frame is an error."""
        c = self.camera.config
        ok, image = self.cap.read()
        if not ok or image is None:
            self.close()
            kind = "file has no frames" if self.is_file else "opened but delivers no frames"
            raise DeviceError(f"camera {self.camera.name} ({c.source}): {kind}; check fourcc/width/height/fps")
        if self.is_file:
            native = float(self.cap.get(self.cv2.CAP_PROP_FPS) or 0.0)
            self.speed = (c.fps / native) if (c.fps and native) else 1.0
            self.t0 = time.monotonic() - self._media_s() / self.speed
        self.camera._state = "running"
        self._publish(image, time.monotonic())

    def step(self) -> bool:
        """Read and publish one frame; False when the thread should end (end of a file)."""
        cam = self.camera
        ok, image = self.cap.read()
        if ok and image is not None:
            self._publish(image, time.monotonic())
            return True
        if self.is_file:
            if cam.config.at_end == "loop" and self.frames_this_pass > 0:
                self.pass_offset += self.last_media + self.speed / cam.fps  # one frame period of the file
                self.frames_this_pass = 0
                self.cap.set(self.cv2.CAP_PROP_POS_FRAMES, 0)
                return True
            cam._state = "ended"
            cam.error = f"camera {cam.name}: end of file {cam.config.path} after {cam._seq} frames"
            return False
        cam._state = "lost"
        cam.error = (f"camera {cam.name} ({cam.config.source}) stopped delivering frames (unplugged?); "
                     f"reopening every {cam.config.reconnect_interval_s:g} s")
        self.close()
        return True

    def _media_s(self) -> float:
        return float(self.cap.get(self.cv2.CAP_PROP_POS_MSEC) or 0.0) / 1000.0

    def _publish(self, image: np.ndarray, t_host: float) -> None:
        cv2 = self.cv2
        if self.is_file:
            t_device = self.last_media = self._media_s()
            t_capture = self.t0 + (self.pass_offset + t_device) / self.speed
            if self.camera._reader.stopping.wait(max(0.0, t_capture - time.monotonic())):
                return
            t_host, clock = time.monotonic(), "media"
        else:
            t_device = self._media_s()  # V4L2: the driver's buffer time stamp, CLOCK_MONOTONIC
            plausible = 0.0 <= t_host - t_device < _PLAUSIBLE_DELAY_S
            t_capture, clock = (t_device, "v4l2_monotonic") if plausible else (t_host, None)
            t_device = t_device if plausible else None
        self.frames_this_pass += 1
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if image.ndim == 2 else cv2.COLOR_BGR2RGB)
        self.camera._deliver(rgb, t_capture, t_host, t_device, clock)

    def close(self) -> None:
        cap, self.cap = self.cap, None
        if cap is not None:
            cap.release()
