"""A dataset folder of episode files, listed from metadata only.

Listing opens each file for its attributes, dataset shapes and the small
per-tick source column — never an image — so hundreds of episodes list in
about a second. A file that is not a readable episode is listed as damaged with
the reason, never skipped silently and never an exception.
:func:`dataset_figures` adds a listing up: outcomes, durations, size on disk and
the recording time the free disk still holds.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from recordings.format import SOURCES, SUFFIX, TRASH_DIR
from recordings.reader import Episode, EpisodeError


@dataclass
class EpisodeSummary:
    path: Path
    size_bytes: int
    damaged: str | None = None  # the reason, for a file that does not open as an episode
    status: str = ""  # "complete", or "recording" for a file left by a crash
    task: str = ""
    success: str = "unknown"
    wrong_object: bool = False  # the robot reported an object the task did not name picked (root attr wrong_object)
    operator: str = ""
    created: str = ""
    duration_s: float = 0.0  # kept (trimmed) duration
    full_duration_s: float = 0.0
    trimmed: bool = False
    ticks: int = 0  # in the kept range
    frames: dict[str, int] = field(default_factory=dict)  # per camera, in the kept range
    source_mix: dict[str, float] = field(default_factory=dict)  # share of kept ticks per source
    dropped: dict[str, int] = field(default_factory=dict)
    drivers: dict[str, float] = field(default_factory=dict)  # share of kept ticks per "source (driver)"
    flags: dict[str, str] = field(default_factory=dict)  # quality flag -> why; filled by recordings.analysis users

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def who_drove(self) -> str:
        """Who drove the kept ticks, largest share first: ``policy (pi0) 80% · intervention (spacemouse) 20%``."""
        mix = self.drivers or self.source_mix
        return " · ".join(f"{k} {round(100 * v):d}%" for k, v in sorted(mix.items(), key=lambda kv: -kv[1]))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def episode_files(folder: Path, trash: bool = False) -> list[Path]:
    """Episode files of a dataset folder (or of its trash), sorted by name."""
    folder = Path(folder) / TRASH_DIR if trash else Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == SUFFIX and p.is_file())


def summarize(path: Path) -> EpisodeSummary:
    path = Path(path)
    summary = EpisodeSummary(path=path, size_bytes=_size(path))
    try:
        with Episode.open(path) as ep:
            meta = ep.meta
            ticks = ep.ticks(trimmed=True)
            sources = ticks["source"]
            start, end = ep.kept_range
            summary.status = ep.status
            summary.task = str(meta.get("task", ""))
            summary.success = str(meta.get("success", "unknown"))
            summary.wrong_object = meta["wrong_object"] == "true"
            summary.operator = str(meta.get("operator", ""))
            summary.created = str(meta.get("created", ""))
            summary.duration_s = float(ep.duration)
            summary.full_duration_s = float(ep.full_duration)
            summary.trimmed = meta.get("kept_start") is not None or meta.get("kept_end") is not None
            summary.ticks = int(len(sources))
            summary.frames = {cam: int(ep.frame_count(cam, trimmed=True)) for cam in ep.camera_names}
            counts = np.bincount(np.asarray(sources, dtype=np.int64), minlength=len(SOURCES))
            total = max(int(counts.sum()), 1)
            summary.source_mix = {SOURCES[i]: round(int(c) / total, 4) for i, c in enumerate(counts[: len(SOURCES)]) if c}
            summary.dropped = dict(meta.get("dropped") or {})
            summary.drivers = driver_mix(sources, ticks["driver"])
    except EpisodeError as exc:
        summary.damaged = str(exc)
    return summary


def driver_mix(sources: np.ndarray, drivers: np.ndarray) -> dict[str, float]:
    """Share of ticks per ``source (driver)`` pair (``source`` alone where no driver was stored)."""
    total = len(sources)
    if not total:
        return {}
    pairs, counts = np.unique(np.stack([np.asarray(sources, dtype=np.int64).astype(str),
                                        np.char.decode(np.asarray(drivers, dtype="S"), "utf-8", "ignore")], axis=1), axis=0, return_counts=True)
    out: dict[str, float] = {}
    for (code, driver), count in zip(pairs, counts):
        source = SOURCES[int(code)] if int(code) < len(SOURCES) else f"source {code}"
        key = f"{source} ({driver})" if driver and driver != source else source
        out[key] = round(out.get(key, 0.0) + int(count) / total, 4)
    return out


@dataclass(frozen=True)
class DatasetFigures:
    """A dataset at a glance: outcomes, duration, size on disk and how much more recording the disk holds."""

    episodes: int
    successes: int
    failures: int
    unlabelled: int
    damaged: int  # files that do not open as episodes (not counted in the outcomes)
    recorded_s: float  # whole recordings, trimmed-out parts included: what the files hold
    kept_s: float  # the kept (trimmed) ranges: what an export takes
    size_bytes: int  # every listed file, damaged ones included
    size_bytes_readable: int  # the readable episodes only (what the per-hour figure is made of)
    free_bytes: int | None  # on the dataset's disk; None when unknown

    @property
    def bytes_per_hour(self) -> float | None:
        """Disk used per hour of recording, from the readable episodes; None without any."""
        readable = self.size_bytes_readable
        return readable / (self.recorded_s / 3600) if self.recorded_s > 0 and readable > 0 else None

    @property
    def hours_left(self) -> float | None:
        """Hours of recording like these the free disk still holds; None when unknown."""
        per_hour = self.bytes_per_hour
        return None if per_hour is None or self.free_bytes is None else self.free_bytes / per_hour


def dataset_figures(summaries: list[EpisodeSummary], free_bytes: int | None = None) -> DatasetFigures:
    """Count outcomes and add up durations and sizes of a listing (``free_bytes``: see :func:`free_space`)."""
    readable = [s for s in summaries if not s.damaged]
    return DatasetFigures(
        episodes=len(summaries),
        successes=sum(1 for s in readable if s.success == "true"),
        failures=sum(1 for s in readable if s.success == "false"),
        unlabelled=sum(1 for s in readable if s.success not in ("true", "false")),
        damaged=len(summaries) - len(readable),
        recorded_s=sum(s.full_duration_s for s in readable),
        kept_s=sum(s.duration_s for s in readable),
        size_bytes=sum(s.size_bytes for s in summaries),
        free_bytes=free_bytes,
        size_bytes_readable=sum(s.size_bytes for s in readable),
    )


def free_space(folder: Path) -> int | None:
    """Free bytes on the disk of ``folder`` (or of its nearest existing parent); None when it cannot be read."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def list_dataset(folder: Path, trash: bool = False) -> list[EpisodeSummary]:
    return [summarize(p) for p in episode_files(folder, trash)]


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
