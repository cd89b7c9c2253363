"""What the dataset exporters share: episode selection, resampling onto the output grid, the report.

An exporter hands :func:`export_episodes` a function that writes one episode.
That function must write all of an episode or nothing (it cleans up after
itself when it raises), so a damaged file found halfway through costs only
that episode, listed in the report with the reason.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recordings.reader import Episode, EpisodeError
from recordings.resample import grid, last_at_or_before

Progress = Callable[[int, int, str], None]
"""``progress(done, total, message)``: ``done`` of ``total`` input files handled so far."""

CancelCheck = Callable[[], bool]
"""``cancelled()`` is true once the caller wants the export stopped (e.g. ``threading.Event().is_set``)."""

RESAMPLING_NOTE = (
    "Every stream was recorded at its own rate with its own timestamps. Each exported "
    "frame i of an episode stands for the time kept_start + i / fps (kept_start: the start "
    "of the range kept when the episode was trimmed) and holds, for every stream, the last "
    "sample taken at or before that time, so no row holds data from its future. A time "
    "before a stream's first sample takes that first sample."
)


class Cancelled(Exception):
    """The export was cancelled; nothing was written to its output folder."""


def cancel_check(cancel: threading.Event | CancelCheck | None) -> CancelCheck:
    """A callable from what exporters accept as ``cancel``: an event, a callable, or None (never cancelled)."""
    if cancel is None:
        return lambda: False
    if isinstance(cancel, threading.Event):
        return cancel.is_set
    return cancel


class SkipEpisode(Exception):
    """An episode that can be read but cannot go into this export (the message says why)."""


@dataclass(frozen=True)
class SkippedEpisode:
    path: Path
    reason: str


@dataclass
class ExportReport:
    """What an export wrote and what it left out.

    Output episode ``i`` was made from ``exported[i]`` and has ``frames[i]`` frames.
    ``notes`` tell of exported episodes the reader had to work around (a crashed
    recording) and of streams left out. When nothing was exported, ``out_dir``
    was not created.
    """

    out_dir: Path
    fps: int | None = None
    exported: list[Path] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    skipped: list[SkippedEpisode] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total_frames(self) -> int:
        return sum(self.frames)

    def text(self) -> str:
        """A summary for a terminal."""
        if self.exported:
            head = (f"exported {len(self.exported)} episode(s), {self.total_frames} frames at {self.fps} fps, "
                    f"to {self.out_dir}")
        else:
            head = f"nothing exported: {self.out_dir} was not written"
        lines = [head]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)}:")
            lines += [f"  {s.path.name}: {s.reason}" for s in self.skipped]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


@dataclass
class Resampled:
    """One episode on an output grid: row i is the state of every stream at ``t[i]``."""

    t: np.ndarray  # [T] grid times, s relative to the episode's t0
    ticks: dict[str, np.ndarray]  # tick streams ("state", "action", ...), [T, ...] each
    frames: dict[str, np.ndarray]  # camera -> [T] untrimmed frame index shown at t[i]


def color_cameras(ep: Episode) -> list[str]:
    """The episode's RGB cameras; depth streams are not exported."""
    return [c for c in ep.camera_names if ep.camera_info(c)["kind"] == "color"]


@dataclass(frozen=True)
class Layout:
    """What every episode of one export must share; the first exported episode sets it."""

    robot_type: str
    joint_names: tuple[str, ...]
    cameras: tuple[tuple[str, int, int], ...]  # (name, height, width) of each colour camera

    @classmethod
    def of(cls, ep: Episode) -> Layout:
        infos = {c: ep.camera_info(c) for c in color_cameras(ep)}
        cams = tuple((c, int(info["height"]), int(info["width"])) for c, info in infos.items())
        return cls(str(ep.meta["robot_type"]), tuple(ep.meta["joint_names"]), cams)

    def check(self, other: Layout) -> None:
        """Raise :class:`SkipEpisode` naming what ``other`` does differently."""
        diffs = [
            f"{name} {getattr(other, name)!r} differs from the export's {getattr(self, name)!r}"
            for name in ("robot_type", "joint_names", "cameras")
            if getattr(self, name) != getattr(other, name)
        ]
        if diffs:
            raise SkipEpisode("; ".join(diffs))


def resample_episode(ep: Episode, fps: float, tick_keys: tuple[str, ...], cameras: list[str]) -> Resampled:
    """Put the kept range of ``ep`` on the grid ``kept_start + i / fps``.

    Samples are looked up among all of the episode's samples, not only the kept
    ones, so a grid time right after the trim start still gets the sample taken
    just before it rather than a later one.
    """
    start, end = ep.kept_range
    t = grid(start, end, fps)
    ticks = ep.ticks(trimmed=False)
    rows = last_at_or_before(ticks["t"], t)
    frames = {}
    for cam in cameras:
        times = ep.frame_times(cam, trimmed=False)
        if len(times) == 0:
            raise SkipEpisode(f"camera {cam!r} has no frames")
        frames[cam] = last_at_or_before(times, t)
    return Resampled(t=t, ticks={k: ticks[k][rows] for k in tick_keys}, frames=frames)


def iter_frames(ep: Episode, cam: str, indices: np.ndarray, shape: tuple[int, ...]) -> Iterator[np.ndarray]:
    """The RGB frames at ``indices`` (untrimmed), decoding each run of repeats once.

    Raises :class:`SkipEpisode` for a frame that is not uint8 of ``shape``.
    """
    last, image = -1, None
    for i in indices:
        if i != last:
            last, image = int(i), ep.frame(cam, int(i), trimmed=False)
            if image.shape != shape or image.dtype != np.uint8:
                raise SkipEpisode(f"camera {cam!r} frame {last} is {image.dtype} {image.shape}, expected uint8 {shape}")
        yield image


def why_excluded(ep: Episode, include_failures: bool) -> str | None:
    """The reason an episode is left out by the success filter, or None to export it."""
    success = ep.meta["success"]
    if success != "true" and not include_failures:
        return f"success is {success!r} (only 'true' is exported without include_failures)"
    return None


def export_episodes(
    paths: list[Path],
    report: ExportReport,
    include_failures: bool,
    progress: Progress | None,
    export_one: Callable[[Episode, Path], int],
    cancelled: CancelCheck = lambda: False,
) -> None:
    """Open each file, filter it, and call ``export_one(ep, path) -> frames written``.

    Unreadable files and episodes ``export_one`` rejects land in ``report.skipped``.
    Raises :class:`Cancelled` once ``cancelled()`` is true (checked between episodes;
    ``export_one`` checks it within one).
    """
    total = len(paths)
    for done, path in enumerate(paths):
        path = Path(path)
        if cancelled():
            raise Cancelled()
        if progress:
            progress(done, total, f"exporting {path.name}")
        try:
            with Episode.open(path) as ep:
                reason = why_excluded(ep, include_failures)
                if reason is not None:
                    raise SkipEpisode(reason)
                frames = export_one(ep, path)
                notes = [f"{path.name}: exported although {issue}" for issue in ep.issues]
                depth = [c for c in ep.camera_names if c not in color_cameras(ep)]
                if depth:
                    notes.append(f"{path.name}: depth stream(s) {', '.join(depth)} not exported")
        except (EpisodeError, SkipEpisode) as e:
            report.skipped.append(SkippedEpisode(path, str(e) or type(e).__name__))
            continue
        report.exported.append(path)
        report.frames.append(frames)
        report.notes.extend(notes)
    if progress:
        progress(total, total, "done")


@contextlib.contextmanager
def staging_dir(out_dir: Path) -> Iterator[Path]:
    """A fresh directory beside ``out_dir`` that becomes ``out_dir`` on success.

    An error mid-export leaves nothing behind and a crash (SIGKILL) only a hidden
    ``.<name>.partial-*`` directory: never a half-written dataset at ``out_dir``,
    which must not exist or be empty. The caller decides whether to keep
    the result: :func:`publish` moves it into place, otherwise it is deleted.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} exists and is not an empty directory")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def publish(tmp: Path, out_dir: Path) -> None:
    """Move a finished staging directory to ``out_dir``."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        out_dir.rmdir()  # empty, checked by staging_dir
    tmp.rename(out_dir)
