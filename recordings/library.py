"""A dataset folder of episode files, listed from metadata only.

Listing opens each file for its attributes, dataset shapes and the small
per-tick source column — never an image — so hundreds of episodes list in
about a second. A file that is not a readable episode is listed as damaged with
the reason, never skipped silently and never an exception.
"""

from __future__ import annotations

import os
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


def list_dataset(folder: Path, trash: bool = False) -> list[EpisodeSummary]:
    return [summarize(p) for p in episode_files(folder, trash)]


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
