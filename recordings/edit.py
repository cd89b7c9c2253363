"""Edits of episode files: trim, label, set task, delete to trash and restore.

Trim, label and task only rewrite root attributes (the kept range is
non-destructive: every reader and exporter honours it); ``apply_trim`` is the
one edit that rewrites data, into a new file that replaces the old one only
after it has been verified.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import h5py
import numpy as np

from recordings.format import CAMERAS, FRAME_BYTES, FRAME_DATASETS, TICKS, TRASH_DIR, tick_datasets
from recordings.reader import Episode, EpisodeError


def _full_duration(path: Path) -> float:
    with Episode.open(path) as ep:
        if ep.status != "complete":
            raise EpisodeError(f"{path.name} was not finalized (status {ep.status!r}): run `teleop-app episodes repair {path}` first")
        return float(ep.full_duration)


def set_trim(path: Path, start: float | None, end: float | None) -> tuple[float, float]:
    """Keep only [start, end] seconds (relative to the episode start); None keeps that end. Returns the kept range."""
    path = Path(path)
    full = _full_duration(path)
    lo = 0.0 if start is None else float(start)
    hi = full if end is None else float(end)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("trim times must be numbers")
    lo, hi = max(lo, 0.0), min(hi, full)
    if hi - lo <= 0:
        raise ValueError(f"nothing would be kept: start {lo:.3f} s must be before end {hi:.3f} s "
                         f"(the episode lasts {full:.3f} s)")
    with h5py.File(path, "r+") as f:
        f.attrs["kept_start"] = lo if lo > 0 else math.nan
        f.attrs["kept_end"] = hi if hi < full else math.nan
    return lo, hi


def clear_trim(path: Path) -> None:
    _full_duration(path)
    with h5py.File(path, "r+") as f:
        f.attrs["kept_start"] = math.nan
        f.attrs["kept_end"] = math.nan


def label(path: Path, success: bool | None = None, task: str | None = None, notes: str | None = None) -> None:
    """Set success (True/False; None leaves it), the task sentence and/or the notes."""
    path = Path(path)
    _full_duration(path)
    with h5py.File(path, "r+") as f:
        if success is not None:
            f.attrs["success"] = "true" if success else "false"
        if task is not None:
            f.attrs["task"] = task
        if notes is not None:
            f.attrs["notes"] = notes


def delete(path: Path) -> Path:
    """Move an episode into the dataset's trash folder; returns where it went (restorable)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    trash = path.parent / TRASH_DIR
    trash.mkdir(exist_ok=True)
    target = _free_name(trash / path.name)
    os.replace(path, target)
    return target


def restore(path: Path) -> Path:
    """Move an episode back from the trash. ``path`` may name the trashed file or its old place."""
    path = Path(path)
    if path.parent.name != TRASH_DIR:
        path = path.parent / TRASH_DIR / path.name
    if not path.is_file():
        raise FileNotFoundError(f"{path.name} is not in the trash folder {path.parent}")
    target = path.parent.parent / path.name
    if target.exists():
        raise FileExistsError(f"{target} exists: rename it before restoring")
    os.replace(path, target)
    return target


def _free_name(target: Path) -> Path:
    n = 1
    candidate = target
    while candidate.exists():
        candidate = target.with_name(f"{target.stem}.{n}{target.suffix}")
        n += 1
    return candidate



def apply_trim(path: Path) -> Path:
    """Rewrite ``path`` keeping only its kept range (destructive); the original is replaced only once the new file opens.

    Times stay the recorded monotonic ones; ``t0`` moves to the first kept tick so
    the rewritten episode starts at 0 s. Camera frames keep the last frame at or
    before the new start, like every reader does.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".trimming")
    with Episode.open(path) as ep:
        if ep.status != "complete":
            raise EpisodeError(f"{path.name} was not finalized: run `teleop-app episodes repair {path}` first")
        start, end = ep.kept_range
        full = ep.full_duration
        ticks = ep.tick_slice(trimmed=True)
        frames = {cam: ep.frame_slice(cam, trimmed=True) for cam in ep.camera_names}
        src = ep.h5
        with h5py.File(tmp, "w") as dst:
            for key, value in src.attrs.items():
                dst.attrs[key] = value
            t0 = float(src[TICKS]["t"][ticks.start])
            dst.attrs["t0"] = t0
            dst.attrs["kept_start"] = math.nan
            dst.attrs["kept_end"] = math.nan
            note = f"trim applied: kept {start:.3f}-{end:.3f} s of {full:.3f} s"
            old = str(src.attrs.get("notes", ""))
            dst.attrs["notes"] = f"{old}\n{note}" if old else note
            _copy_rows(src[TICKS], dst.create_group(TICKS), ticks, list(tick_datasets(ep.meta['format_version'])))
            cams = dst.create_group(CAMERAS)
            for cam, s in frames.items():
                _copy_frames(src[CAMERAS][cam], cams.create_group(cam), s)
    try:
        with Episode.open(tmp) as check:
            if abs(check.full_duration - (end - start)) > 0.05:
                raise EpisodeError(f"rewritten file lasts {check.full_duration:.3f} s, expected {end - start:.3f} s")
    except EpisodeError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path


def _copy_rows(src: h5py.Group, dst: h5py.Group, rows: slice, names: list[str]) -> None:
    for key, value in src.attrs.items():
        dst.attrs[key] = value
    for name in names:
        data = src[name][rows]
        dst.create_dataset(name, data=data, chunks=True, maxshape=(None,) + data.shape[1:])


def _copy_frames(src: h5py.Group, dst: h5py.Group, rows: slice) -> None:
    """Frame columns of ``rows`` with their encoded bytes packed again from offset 0."""
    _copy_rows(src, dst, rows, [n for n in FRAME_DATASETS if n not in ("offset", "size")])
    offset, size = src["offset"][rows], src["size"][rows]
    new_offset = np.concatenate([[0], np.cumsum(size.astype(np.int64))[:-1]]) if len(size) else offset
    blob = np.concatenate([src[FRAME_BYTES][o: o + n] for o, n in zip(offset, size)]) if len(size) else \
        np.zeros(0, np.uint8)
    dst.create_dataset("offset", data=new_offset.astype(np.int64), chunks=True, maxshape=(None,))
    dst.create_dataset("size", data=size, chunks=True, maxshape=(None,))
    dst.create_dataset(FRAME_BYTES, data=blob, chunks=True, maxshape=(None,))
