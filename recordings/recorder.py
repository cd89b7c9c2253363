"""Records episodes from a running rig: one writer thread per episode drains the control
loop's ticks and every camera's frames from bounded queues into an :class:`EpisodeWriter`.

Nothing here can block the control loop or a camera: they only ``offer`` into
bounded subscriptions, whose overflow is counted. JPEG encoding and all HDF5 work
happen on the writer thread (cv2 releases the GIL while it encodes). The writer
flushes every ``flush_interval_s``, so a SIGKILL loses at most that much plus
what was still queued (well under a second when the writer keeps up).
"""

from __future__ import annotations

import collections
import errno
import re
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from recordings.format import SUFFIX, TRASH_DIR
from recordings.writer import EpisodeWriter
from drivers.app_version import APP_VERSION

if TYPE_CHECKING:
    from drivers.base import Camera
    from drivers.streams import Broadcast, Subscription
    from drivers.types import Frame, TickRecord


class TickSource(Protocol):
    """What the recorder needs of the control loop: its ticks, its rate, its robot's joint names."""

    ticks: Broadcast[TickRecord]
    rate_hz: float
    robot: Any

    @property
    def running(self) -> bool: ...

    def subscribe(self, name: str, maxsize: int = ...) -> Subscription[TickRecord]: ...

EPISODE_NAME = "episode_{:06d}" + SUFFIX
_EPISODE_RE = re.compile(r"episode_(\d+)" + re.escape(SUFFIX))
MIN_FREE_BYTES = 100 << 20
"""An episode does not start with less room than this (a minute of three 640x480 cameras is ~225 MB)."""
_LAG_SAMPLES = 1 << 16  # ~12 minutes of frames from three 30 fps cameras


class RecordingError(RuntimeError):
    """An episode could not be recorded or finalized; the message says why."""


_WRITE_FAILURES = {
    errno.ENOSPC: "the disk is full: free space on it, or record to another folder",
    errno.EDQUOT: "your disk quota is used up: free space, or record to another folder",
    errno.EFBIG: "the file reached the size limit for files (`ulimit -f`): raise it, or record shorter episodes",
    errno.EROFS: "the folder is on a read-only file system: record to another folder",
    errno.EIO: "the disk reported an I/O error: check it, and record to another folder",
}


def describe_write_error(exc: BaseException) -> str:
    """One line saying why an episode could not be written and what to do.

    HDF5 reports a failed ``write(2)`` as a RuntimeError whose text carries the
    errno (``errno = 28``); OSError carries it as ``.errno``.
    """
    code = getattr(exc, "errno", None)
    if code is None and (m := re.search(r"errno = (\d+)", str(exc))):
        code = int(m.group(1))
    if code in _WRITE_FAILURES:
        return _WRITE_FAILURES[code]
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def next_episode_path(dataset_dir: str | Path) -> Path:
    """``episode_{n:06d}.h5`` with n one above the highest index in the folder or its trash."""
    folder = Path(dataset_dir)
    indices = [int(m.group(1)) for d in (folder, folder / TRASH_DIR) if d.is_dir()
               for p in d.iterdir() if (m := _EPISODE_RE.fullmatch(p.name))]
    return folder / EPISODE_NAME.format(max(indices, default=0) + 1)


class Recorder:
    """Records episodes of ``loop`` ticks and ``cameras`` frames into ``dataset_dir``.

    ``rig_meta`` gives the root attributes ``rig``, ``robot_type``,
    ``control_rate_hz`` (and optionally ``app_version``, ``joint_units``, and
    ``joint_names``, which default to the loop's robot's).
    A camera may declare ``kind = "depth"`` (uint16 frames); others are color.
    Up to ``queue_s`` seconds of samples wait per stream before overflow is
    counted as drops: that bounds memory (2 s of a 640x480 30 fps camera ≈ 55 MB).
    The properties are safe to poll from any thread (GUI, CLI).
    """

    def __init__(self, loop: TickSource, cameras: dict[str, Camera], dataset_dir: str | Path,
                 rig_meta: dict[str, Any], *, queue_s: float = 2.0, flush_interval_s: float = 0.25,
                 min_free_bytes: int = MIN_FREE_BYTES) -> None:
        self.loop = loop
        self.cameras = dict(cameras)
        self.dataset_dir = Path(dataset_dir)
        self.rig_meta = dict(rig_meta)
        self.joint_names = list(self.rig_meta.pop("joint_names", loop.robot.joint_names))
        self.queue_s = queue_s
        self.flush_interval_s = flush_interval_s
        self.min_free_bytes = min_free_bytes
        self.error: str | None = None  # set if the writer thread failed; the episode is left repairable
        self.finalize_s: float | None = None  # how long the last finalize took
        self._writer: EpisodeWriter | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._discard = False
        self._success = "unknown"
        self._notes: str | None = None
        self._wrong_object = False
        self._tick_sub: Subscription[TickRecord] | None = None
        self._frame_subs: dict[str, Subscription[Frame]] = {}
        self._counts: dict[str, int] = {}
        self._lags: collections.deque[float] = collections.deque(maxlen=_LAG_SAMPLES)
        self._t_last_tick: float | None = None

    @classmethod
    def for_rig(cls, rig: Any, dataset_dir: str | Path, **kwargs: Any) -> Recorder:
        """A recorder of a rig's ``loop`` and ``cameras``, with its ``metadata()`` as episode metadata."""
        return cls(rig.loop, rig.cameras, dataset_dir, rig.metadata(), **kwargs)

    # -- state for the GUI / CLI -------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self._thread is not None

    @property
    def path(self) -> Path | None:
        """The file of the current (or last) episode."""
        return None if self._writer is None else self._writer.path

    @property
    def elapsed_s(self) -> float:
        """Seconds since the episode's first tick (its duration once stopped)."""
        writer = self._writer
        if writer is None or writer.t0 is None:
            return 0.0
        if self.recording:
            return time.monotonic() - writer.t0
        return (self._t_last_tick or writer.t0) - writer.t0

    @property
    def has_ticks(self) -> bool:
        """The episode holds its first tick (stopping it now saves a file)."""
        writer = self._writer
        return writer is not None and writer.t0 is not None

    @property
    def counts(self) -> dict[str, int]:
        """Rows written so far: ``ticks`` and one entry per camera."""
        return dict(self._counts)

    @property
    def dropped(self) -> dict[str, int]:
        """Samples lost per stream: queue overflows plus frames that could not be encoded for their stream."""
        out = {"ticks": self._tick_sub.dropped if self._tick_sub is not None else 0}
        rejected = self._writer.rejected if self._writer is not None else {}
        for name, sub in self._frame_subs.items():
            out[name] = sub.dropped + rejected.get(name, 0)
        return out

    @property
    def offered(self) -> dict[str, int]:
        """Samples each stream published while recording (once stopped: written + dropped)."""
        subs = {"ticks": self._tick_sub, **self._frame_subs} if self._tick_sub is not None else {}
        return {name: sub.offered for name, sub in subs.items()}

    def stats(self) -> dict[str, Any]:
        """Counts, drops, and how long frames wait until they are on disk (capture → flushed)."""
        lags = np.asarray(self._lags) * 1e3
        return {
            "offered": self.offered,
            "counts": self.counts,
            "dropped": self.dropped,
            "elapsed_s": self.elapsed_s,
            "disk_lag_ms": {"p50": round(float(np.percentile(lags, 50)), 1) if lags.size else None,
                            "p99": round(float(np.percentile(lags, 99)), 1) if lags.size else None,
                            "max": round(float(lags.max()), 1) if lags.size else None},
            "finalize_ms": None if self.finalize_s is None else self.finalize_s * 1e3,
            "error": self.error,
        }

    # -- episodes ----------------------------------------------------------------------------
    def start_episode(self, task: str, operator: str = "", notes: str = "") -> Path:
        """Create the next episode file and start recording into it; returns its path."""
        if self.recording:
            raise RecordingError(f"already recording {self.path}")
        if not self.loop.running:
            raise RecordingError("the control loop is not running: start the rig before recording")
        try:
            self.dataset_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordingError(f"cannot create the dataset folder {self.dataset_dir}: {exc}") from exc
        free = shutil.disk_usage(self.dataset_dir).free
        if free < self.min_free_bytes:
            raise RecordingError(f"only {free / 2**20:.0f} MB free for {self.dataset_dir}: free space first (an "
                                 f"episode needs at least {self.min_free_bytes / 2**20:.0f} MB), or record elsewhere")
        cams = {name: {"width": cam.width, "height": cam.height, "fps": cam.fps,
                       "kind": cam.kind, "intrinsics": cam.intrinsics}
                for name, cam in self.cameras.items()}
        meta = {**self.rig_meta, "task": task, "operator": operator, "notes": notes}
        meta.setdefault("app_version", APP_VERSION)
        try:
            writer = EpisodeWriter(next_episode_path(self.dataset_dir), meta, self.joint_names, cams)
        except OSError as exc:
            raise RecordingError(f"cannot create an episode in {self.dataset_dir}: {exc}") from exc
        self._writer = writer
        self.error = None
        self.finalize_s = None
        self._stop.clear()
        self._discard = False
        self._lags.clear()
        self._counts = writer.counts
        self._t_last_tick = None
        self._tick_sub = self.loop.subscribe("recorder", max(2, int(self.loop.rate_hz * self.queue_s)))
        self._frame_subs = {name: cam.subscribe("recorder", max(2, int(np.ceil(cam.fps * self.queue_s))))
                            for name, cam in self.cameras.items()}
        self._thread = threading.Thread(target=self._run, args=(writer,), name="recorder-writer", daemon=True)
        self._thread.start()
        return writer.path

    def stop_episode(self, success: bool | None = None, notes: str | None = None,
                     wrong_object: bool = False) -> Path:
        """Stop, write everything queued, finalize with the success label and ``notes``; returns the path.

        ``notes`` (None: keep those given at the start) and ``wrong_object`` (the robot
        reported an object the task did not name picked) are written as part of
        finalizing, so nothing needs to reopen the file to annotate it.

        Raises :class:`RecordingError` if the episode ended before its first tick
        (nothing is saved), or could not be finalized (the file is then left as a
        crash would leave it, and ``repair`` restores it).
        """
        if not self.recording:
            raise RecordingError("not recording")
        self._success = {True: "true", False: "false", None: "unknown"}[success]
        self._notes = notes
        self._wrong_object = wrong_object
        self._finish(discard=False)
        writer = self._writer
        if writer.t0 is None:
            raise RecordingError("the episode ended before its first tick: nothing was saved")
        if self.error is not None:
            raise RecordingError(f"{writer.path.name} was not finalized: {self.error}; it keeps what was written "
                                 f"before, and `teleop-app episodes repair {writer.path}` makes it readable")
        return writer.path

    def discard(self) -> None:
        """Stop the current recording and delete its file."""
        if not self.recording:
            raise RecordingError("not recording")
        self._finish(discard=True)
        self._writer.path.unlink(missing_ok=True)

    def _finish(self, discard: bool) -> None:
        self.loop.ticks.unsubscribe(self._tick_sub)
        for name, sub in self._frame_subs.items():
            self.cameras[name].frames.unsubscribe(sub)
        self._discard = discard
        self._stop.set()  # after unsubscribing: the thread's last pass then sees every queued sample
        self._thread.join()
        self._thread = None

    # -- the writer thread -------------------------------------------------------------------
    def _run(self, writer: EpisodeWriter) -> None:
        pending_t: list[float] = []  # capture times of frames not yet flushed
        next_flush = time.monotonic() + self.flush_interval_s
        try:
            while True:
                last_pass = self._stop.is_set()
                first = self._tick_sub.get(timeout=0.01)  # paces the thread: ticks come at the loop rate
                ticks = ([first] if first is not None else []) + self._tick_sub.drain()
                if ticks:
                    writer.append_ticks(ticks)
                    self._t_last_tick = ticks[-1].t
                for name, sub in self._frame_subs.items():
                    for _ in range(len(sub)):  # one at a time: the queue bounds memory, not a drained batch
                        frame = sub.get(timeout=0)
                        if writer.append_frame(name, frame):
                            pending_t.append(frame.t_capture)
                self._counts = writer.counts
                if last_pass or self._discard:
                    break
                if time.monotonic() >= next_flush:
                    self._flush(writer, pending_t)
                    next_flush = time.monotonic() + self.flush_interval_s
            if self._discard or writer.t0 is None:
                writer.abort()  # which deletes a file that never got a tick
                return
            t = time.monotonic()
            self._flush(writer, pending_t)
            writer.finalize(self.dropped, self._success, self._notes, self._wrong_object)
            self.finalize_s = time.monotonic() - t
        except Exception as exc:
            self.error = describe_write_error(exc)
            try:
                writer.abandon()
            except Exception:
                pass

    def _flush(self, writer: EpisodeWriter, pending_t: list[float]) -> None:
        writer.flush()
        now = time.monotonic()
        self._lags.extend(now - t for t in pending_t)
        pending_t.clear()

