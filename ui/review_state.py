"""What the Review tab knows, in plain Python (no Qt): the open episode, the timeline, the trim handles.

The views in ``ui/review_tab.py``, ``ui/player.py`` and ``ui/episode_table.py``
only draw these objects and forward clicks and keys to them, so every rule —
which frame is on screen at a time, where a frame step lands, what "Apply trim"
writes — is tested without a window.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from recordings import edit
from recordings.export_aloha import gripper_range  # the gripper's joint range, fitted as the ALOHA export does
from recordings.format import SUCCESS_VALUES
from recordings.library import DatasetFigures, EpisodeSummary
from recordings.reader import Episode, EpisodeError

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)
SUCCESS_LABELS = {"true": "success", "false": "failure", "unknown": "unknown"}
SUCCESS_RANK = {"true": 0, "unknown": 1, "false": 2}


# -- text for the table --------------------------------------------------------------------------
def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(seconds, 60)
    return f"{int(minutes)}:{s:04.1f}"


def format_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit in ("B", "KB") else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def format_total(seconds: float) -> str:
    """A total duration: ``42.0 s``, ``12 min 05 s``, ``3 h 07 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        minutes, s = divmod(int(round(seconds)), 60)
        return f"{minutes} min {s:02d} s"
    hours, minutes = divmod(int(round(seconds / 60)), 60)
    return f"{hours} h {minutes:02d} min"


def figures_text(fig: DatasetFigures) -> str:
    """The Review tab's two lines about the dataset (rich text)."""
    if not fig.episodes:
        return "No episodes in this folder yet: record some in the Live tab."
    counts = [f"<b>{fig.episodes} episode(s)</b>: <span style='color:#2e7d32'>{fig.successes} success</span>",
              f"<span style='color:#c62828'>{fig.failures} failure</span>", f"{fig.unlabelled} unlabelled"]
    if fig.damaged:
        counts.append(f"<span style='color:#c62828'><b>{fig.damaged} damaged</b></span>")
    recorded = f"{format_total(fig.recorded_s)} recorded"
    if abs(fig.kept_s - fig.recorded_s) > 0.05:
        recorded += f" ({format_total(fig.kept_s)} kept)"
    size = f"{format_size(fig.size_bytes)} on disk"
    if fig.bytes_per_hour is not None:
        size += f", {format_size(int(fig.bytes_per_hour))} per hour"
    parts = [recorded, size]
    if fig.free_bytes is not None:
        free = f"{format_size(fig.free_bytes)} free"
        if fig.hours_left is not None:
            free += f": about {format_total(fig.hours_left * 3600)} more"
        parts.append(free)
    return " · ".join(counts) + "<br>" + " · ".join(parts)


def problem_text(summary: EpisodeSummary) -> str:
    """Why an episode needs attention ("" when it does not): damaged, or left unfinished by a crash."""
    if summary.damaged:
        return summary.damaged
    if summary.status and summary.status != "complete":
        return f"not finalized ({summary.status}), left by a crash: Repair keeps every complete row"
    return ""


# -- labels --------------------------------------------------------------------------------------
def set_success(path: Path, value: str, task: str | None = None) -> None:
    """Label an episode a success (``"true"``), a failure (``"false"``) or ``"unknown"``, and set its task.

    ``recordings.edit.label`` cannot reset a label to unknown (its ``success=None``
    means "leave it"), so that one value is written here with the same rule:
    only a complete episode is edited, and only its root attribute.
    """
    if value not in SUCCESS_VALUES:
        raise ValueError(f"success must be one of {', '.join(SUCCESS_VALUES)}, got {value!r}")
    path = Path(path)
    if value == "unknown":
        edit.label(path, task=task)  # checks the file is a complete episode (raises EpisodeError otherwise)
        with h5py.File(path, "r+") as f:
            f.attrs["success"] = "unknown"
    else:
        edit.label(path, success=value == "true", task=task)


# -- the open episode ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PlotData:
    """Per-tick columns of the whole recording for the plots (times relative to t0)."""

    t: np.ndarray
    measured: np.ndarray  # [N, J] joint positions
    commanded: np.ndarray  # [N, J] joint targets sent
    gripper_opening: np.ndarray  # [N] measured, 0..1
    gripper_commanded: np.ndarray | None  # [N] commanded opening 0..1, when the joint's range can be recovered
    joint_names: tuple[str, ...]


class LoadedEpisode:
    """An episode opened for display: the full recording (``trimmed=False``) so trimmed-out parts can be shown.

    Every read goes through one lock so a decoder thread and the GUI thread can
    share the HDF5 handle, and :meth:`close` (before any edit of the file) waits
    for a decode in progress. Frame indices are those of the full recording, as
    ``Episode.frame_at(cam, t, trimmed=False)`` returns them.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._ep: Episode | None = Episode.open(self.path)
        ep = self._ep
        try:
            self.meta = dict(ep.meta)
            self.issues = list(ep.issues)
            self.status = ep.status
            self.full_duration = float(ep.full_duration)
            self.kept_range = tuple(float(x) for x in ep.kept_range)
            self.cameras: list[str] = list(ep.camera_names)
            self.camera_info = {cam: ep.camera_info(cam) for cam in self.cameras}
            self.frame_times = {cam: ep.frame_times(cam, trimmed=False) for cam in self.cameras}
            ticks = ep.ticks(trimmed=False)
        except EpisodeError:
            ep.close()
            raise
        names = tuple(self.meta["joint_names"])
        commanded_grip = None
        fit = gripper_range(ticks["state"][:, -1], ticks["gripper"])
        if fit is not None:
            closed, opened = fit
            commanded_grip = np.clip((ticks["action"][:, -1] - closed) / (opened - closed), 0.0, 1.0)
        self.plots = PlotData(ticks["t"], ticks["state"], ticks["action"], ticks["gripper"], commanded_grip, names)

    @property
    def is_open(self) -> bool:
        return self._ep is not None

    def frame_at(self, cam: str, t: float) -> tuple[int, np.ndarray] | None:
        """The last frame of ``cam`` captured at or before ``t``; None before its first frame or once closed."""
        with self._lock:
            if self._ep is None:
                return None
            return self._ep.frame_at(cam, t, trimmed=False)

    def frames_at(self, t: float) -> dict[str, tuple[int, np.ndarray] | None | str]:
        """:meth:`frame_at` for every camera; a frame that cannot be decoded gives the reason (str)."""
        out: dict[str, tuple[int, np.ndarray] | None | str] = {}
        for cam in self.cameras:
            try:
                out[cam] = self.frame_at(cam, t)
            except EpisodeError as exc:
                out[cam] = str(exc)
        return out

    def frame_index_at(self, cam: str, t: float) -> int | None:
        """Index of the frame on screen at ``t`` without decoding it."""
        i = int(np.searchsorted(self.frame_times[cam], t, "right")) - 1
        return None if i < 0 else i

    def close(self) -> None:
        """Release the file (waits for a read in progress); reads return None afterwards."""
        with self._lock:
            if self._ep is not None:
                self._ep.close()
                self._ep = None


# -- timeline ------------------------------------------------------------------------------------
class Timeline:
    """One cursor over ``[0, end]`` seconds that every view follows, plus play/pause at a speed."""

    def __init__(self, end: float = 0.0, step_times: np.ndarray | None = None) -> None:
        self.end = max(float(end), 0.0)
        self.cursor = 0.0
        self.playing = False
        self.speed = 1.0
        self.step_times = np.unique(np.clip(step_times, 0.0, self.end)) if step_times is not None \
            and len(step_times) else np.zeros(0)

    @classmethod
    def for_episode(cls, loaded: LoadedEpisode) -> Timeline:
        """Frame steps land on camera frames (any camera); without cameras on ticks."""
        times = [t for t in loaded.frame_times.values() if len(t)]
        steps = np.concatenate(times) if times else loaded.plots.t
        return cls(loaded.full_duration, steps)

    def seek(self, t: float) -> float:
        self.cursor = float(min(max(t, 0.0), self.end)) if math.isfinite(t) else self.cursor
        return self.cursor

    def set_speed(self, speed: float) -> None:
        if not speed > 0:
            raise ValueError("speed must be positive")
        self.speed = float(speed)

    def play(self, from_t: float | None = None) -> None:
        """Start playing; at the end it starts over from ``from_t`` (default 0)."""
        if self.cursor >= self.end:
            self.cursor = 0.0 if from_t is None else min(max(from_t, 0.0), self.end)
        self.playing = self.end > 0

    def pause(self) -> None:
        self.playing = False

    def advance(self, wall_dt: float) -> float:
        """Move the cursor by ``wall_dt`` seconds of wall time at the current speed; pauses at the end."""
        if self.playing:
            self.seek(self.cursor + wall_dt * self.speed)
            if self.cursor >= self.end:
                self.playing = False
        return self.cursor

    def step(self, direction: int) -> float:
        """Go to the next (``+1``) or previous (``-1``) frame time; the ends of the timeline past the last one."""
        self.playing = False
        s = self.step_times
        eps = 1e-9
        if direction > 0:
            i = int(np.searchsorted(s, self.cursor + eps, "right"))
            return self.seek(float(s[i]) if i < len(s) else self.end)
        i = int(np.searchsorted(s, self.cursor - eps, "left")) - 1
        return self.seek(float(s[i]) if i >= 0 else 0.0)


# -- trim ----------------------------------------------------------------------------------------
class TrimHandles:
    """The in/out handles: they start at the kept range on disk and may differ from it until applied."""

    MIN_KEPT = 0.01  # s: the handles never cross (edit.set_trim refuses an empty range)

    def __init__(self, full_duration: float, kept: tuple[float, float]) -> None:
        self.full = float(full_duration)
        self.saved = (float(kept[0]), float(kept[1]))
        self.start, self.end = self.saved

    def set(self, start: float, end: float) -> tuple[float, float]:
        lo, hi = sorted((float(start), float(end)))
        lo = min(max(lo, 0.0), self.full)
        hi = min(max(hi, 0.0), self.full)
        if hi - lo < self.MIN_KEPT:
            hi = min(lo + self.MIN_KEPT, self.full)
            lo = max(hi - self.MIN_KEPT, 0.0)
        self.start, self.end = lo, hi
        return self.start, self.end

    def set_in(self, t: float) -> tuple[float, float]:
        return self.set(min(t, self.end - self.MIN_KEPT), self.end)

    def set_out(self, t: float) -> tuple[float, float]:
        return self.set(self.start, max(t, self.start + self.MIN_KEPT))

    @property
    def dirty(self) -> bool:
        """The handles are not where the file's kept range is."""
        return abs(self.start - self.saved[0]) > 1e-6 or abs(self.end - self.saved[1]) > 1e-6

    @property
    def whole(self) -> bool:
        return self.start <= 1e-6 and self.end >= self.full - 1e-6

    def apply(self, path: Path) -> tuple[float, float]:
        """Write the handles as the episode's kept range (non-destructive); returns what the file keeps."""
        self.saved = edit.set_trim(path, self.start, self.end)
        self.start, self.end = self.saved
        return self.saved

    def clear(self, path: Path) -> tuple[float, float]:
        edit.clear_trim(path)
        self.saved = (0.0, self.full)
        self.start, self.end = self.saved
        return self.saved


# -- delete / undo -------------------------------------------------------------------------------
class TrashStack:
    """Episodes deleted from this tab, newest last, so Undo restores them in reverse order."""

    def __init__(self) -> None:
        self._items: list[Path] = []

    def delete(self, path: Path) -> Path:
        trashed = edit.delete(path)
        self._items.append(trashed)
        return trashed

    def undo(self) -> Path | None:
        """Restore the last deleted episode; returns its path again (None when nothing is left to undo)."""
        if not self._items:
            return None
        restored = edit.restore(self._items[-1])
        self._items.pop()
        return restored

    def __len__(self) -> int:
        return len(self._items)

    @property
    def last(self) -> Path | None:
        return self._items[-1] if self._items else None
