"""Turn a crashed or partly written episode into a valid, complete one.

The repaired episode is written beside the original under a hidden name, from
what the reader can recover (every group cut to its complete rows, frames whose
bytes are incomplete dropped), then verified, and only then atomically renamed
over the original — so the original stays untouched, as the backup, until its
replacement has proved itself, and a crash during repair changes nothing.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from recordings.format import (CAMERA_ATTRS, CAMERAS, FILL_VALUES, FORMAT_VERSION, FRAME_BYTES, FRAME_DATASETS,
                               TICK_DATASETS, TICKS, tick_datasets)
from recordings.reader import Episode, EpisodeError, complete_tick_rows, truncated_size
from recordings.writer import create_layout

_COPY_BLOCK = 32 << 20  # bytes of frame data read at a time
_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"
_PNG_START, _PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"


@dataclass(frozen=True)
class RepairReport:
    path: Path
    repaired: bool  # False: the file already was a complete, consistent episode and was left alone
    ticks_kept: int
    ticks_cut: int  # rows present in the file but incomplete
    frames_kept: dict[str, int] = field(default_factory=dict)
    frames_cut: dict[str, int] = field(default_factory=dict)  # rows incomplete, or bytes missing/truncated
    duration_s: float = 0.0
    note: str = ""  # what was appended to the episode's notes

    def text(self) -> str:
        """What happened, for people (the CLI)."""
        if not self.repaired:
            return f"{self.path.name}: complete and consistent, nothing to repair"
        return f"{self.path.name}: {self.note.strip('[]')}"


def repair(path: str | Path, *, idle_s: float = 2.0) -> RepairReport:
    """Repair the episode at ``path`` in place; raises :class:`EpisodeError` if nothing can be recovered.

    An unfinished file written to less than ``idle_s`` ago is refused: its writer
    is probably still running (it flushes every 0.25 s), and replacing the file
    under it would lose the rest of the episode.
    """
    path = Path(path)
    try:
        short = truncated_size(path)
        if short is None:
            return _repair(path, path, idle_s, None)
        # A write that failed (full disk) left the file shorter than HDF5's record of it. A copy padded
        # to that length opens; the rows that never reached the disk read as fill values or zeros, and
        # are cut like those of a crash.
        padded = path.with_name(f".{path.name}.padded")
        try:
            shutil.copyfile(path, padded)
            os.truncate(padded, short[1])
            return _repair(padded, path, idle_s, f"the file was truncated at {short[0]:,} of {short[1]:,} bytes")
        finally:
            padded.unlink(missing_ok=True)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:  # damage beyond what the reader catches
        raise EpisodeError(f"{path.name}: cannot repair ({type(exc).__name__}: {exc})") from None


def _repair(source: Path, path: Path, idle_s: float, truncated: str | None) -> RepairReport:
    """Repair ``path`` from ``source`` (the file itself, or a copy padded to the length HDF5 expects)."""
    with Episode.open(source) as ep:
        age = time.time() - path.stat().st_mtime
        if ep.status != "complete" and age < idle_s:
            raise EpisodeError(f"{path.name} was written {age:.1f} s ago: it is probably still being recorded "
                               "(stop the recording, or wait and repair again)")
        f = ep.h5
        rows = max(f[TICKS][name].shape[0] for name in tick_datasets(ep.meta["format_version"]))
        n_ticks = complete_tick_rows(f[TICKS], ep.tick_count(trimmed=False))
        keep = {cam: _complete_frames(f[f"{CAMERAS}/{cam}"], ep.frame_count(cam, trimmed=False))
                for cam in ep.camera_names}
        cut = {cam: f[f"{CAMERAS}/{cam}"]["t_capture"].shape[0] - int(k.sum()) for cam, k in keep.items()}
        duration = float(f[TICKS]["t"][n_ticks - 1] - ep.t0)
        if truncated is None and not ep.issues and n_ticks == rows and not any(cut.values()):
            return RepairReport(path, False, n_ticks, 0, {c: int(k.sum()) for c, k in keep.items()}, cut, duration)
        note = _note(ep, n_ticks, rows - n_ticks, duration, keep, cut, truncated)
        tmp = path.with_name(f".{path.name}.repair")
        try:
            _write_repaired(ep, tmp, n_ticks, keep, note)
            _verify(tmp, ep, n_ticks, keep)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    os.replace(tmp, path)
    return RepairReport(path, True, n_ticks, rows - n_ticks, {c: int(k.sum()) for c, k in keep.items()}, cut,
                        duration, note)


def _complete_frames(group: h5py.Group, n: int) -> np.ndarray:
    """Which of the first ``n`` frames hold a whole encoded image (start and end markers in place)."""
    start_mark, end_mark = (_PNG_START, _PNG_END) if _attr(group, "encoding") == "png16" else (_JPEG_START, _JPEG_END)
    offsets = group["offset"][:n]
    sizes = group["size"][:n].astype(np.int64)
    ok = np.zeros(n, dtype=bool)
    for lo, hi, base, block in _blocks(group[FRAME_BYTES], offsets, sizes):
        for i in range(lo, hi):
            b = block[offsets[i] - base: offsets[i] - base + sizes[i]]
            ok[i] = b[: len(start_mark)] == start_mark and b[-len(end_mark):] == end_mark
    return ok


def _blocks(data: h5py.Dataset, offsets: np.ndarray, sizes: np.ndarray):
    """The bytes of consecutive frames ``[lo, hi)``, about ``_COPY_BLOCK`` at a time: yields (lo, hi, base, bytes)."""
    lo, n = 0, len(offsets)
    while lo < n:
        hi = lo + 1
        while hi < n and offsets[hi] + sizes[hi] - offsets[lo] <= _COPY_BLOCK:
            hi += 1
        base, end = int(offsets[lo:hi].min()), int((offsets[lo:hi] + sizes[lo:hi]).max())
        yield lo, hi, base, data[base:end].tobytes()
        lo = hi


def _note(ep: Episode, n_ticks: int, ticks_cut: int, duration: float, keep: dict[str, np.ndarray],
          cut: dict[str, int], truncated: str | None) -> str:
    when = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    frames = ", ".join(f"{cam} {int(k.sum())} kept/{cut[cam]} cut" for cam, k in keep.items()) or "no cameras"
    reasons = "; ".join([*([truncated] if truncated else []), *ep.issues]) or "incomplete rows"
    return (f"[repaired {when}: {reasons}. Kept {n_ticks} ticks ({duration:.2f} s), cut {ticks_cut} incomplete "
            f"tick rows; frames: {frames}. Samples after the last flush before the crash are lost.]")


def _write_repaired(ep: Episode, tmp: Path, n_ticks: int, keep: dict[str, np.ndarray], note: str) -> None:
    src = ep.h5
    dropped = dict(ep.meta["dropped"])
    for cam, k in keep.items():
        cut = src[f"{CAMERAS}/{cam}"]["t_capture"].shape[0] - int(k.sum())
        if cut:
            dropped[cam] = dropped.get(cam, 0) + cut
    with h5py.File(tmp, "w", libver="latest") as f:
        for key, value in src.attrs.items():
            f.attrs[key] = value
        f.attrs["status"] = "complete"
        f.attrs["t0"] = ep.t0
        f.attrs["dropped"] = json.dumps(dropped, sort_keys=True)
        f.attrs["notes"] = f"{ep.meta['notes']}\n{note}".strip()
        cams = {cam: {a: src[f"{CAMERAS}/{cam}"].attrs[a] for a in CAMERA_ATTRS} for cam in ep.camera_names}
        create_layout(f, len(ep.meta["joint_names"]), cams)
        f.attrs["format_version"] = FORMAT_VERSION  # the layout is this version's; older files lack columns
        for name, (dtype, _) in TICK_DATASETS.items():
            values = src[TICKS][name][:n_ticks] if name in src[TICKS] else np.full(n_ticks, FILL_VALUES[dtype], dtype)
            _put(f[TICKS][name], values)
        for cam, k in keep.items():
            _copy_frames(src[f"{CAMERAS}/{cam}"], f[f"{CAMERAS}/{cam}"], k)


def _copy_frames(src: h5py.Group, dst: h5py.Group, keep: np.ndarray) -> None:
    index = np.flatnonzero(keep)
    offsets, sizes = src["offset"][: len(keep)][index], src["size"][: len(keep)][index].astype(np.int64)
    new_offsets = np.cumsum(sizes) - sizes
    dst[FRAME_BYTES].resize((int(sizes.sum()),))
    for lo, hi, base, block in _blocks(src[FRAME_BYTES], offsets, sizes):
        chunk = b"".join(block[offsets[i] - base: offsets[i] - base + sizes[i]] for i in range(lo, hi))
        dst[FRAME_BYTES][new_offsets[lo]: new_offsets[lo] + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
    for name in FRAME_DATASETS:
        values = {"offset": new_offsets, "size": sizes.astype(np.int32)}.get(name)
        _put(dst[name], src[name][: len(keep)][index] if values is None else values)


def _put(ds: h5py.Dataset, values: np.ndarray) -> None:
    ds.resize(len(values), axis=0)
    if len(values):
        ds[:] = values


def _verify(tmp: Path, ep: Episode, n_ticks: int, keep: dict[str, np.ndarray]) -> None:
    """The repaired file must open cleanly with the expected rows, identical ticks and decodable frames."""
    with Episode.open(tmp) as fixed:
        problems = list(fixed.issues)
        if fixed.tick_count(trimmed=False) != n_ticks:
            problems.append(f"{fixed.tick_count(trimmed=False)} ticks instead of {n_ticks}")
        elif not np.array_equal(fixed.h5[TICKS]["t"][:], ep.h5[TICKS]["t"][:n_ticks]):
            problems.append("tick times differ")
        for cam, k in keep.items():
            n = fixed.frame_count(cam, trimmed=False)
            if n != int(k.sum()):
                problems.append(f"camera {cam!r}: {n} frames instead of {int(k.sum())}")
            elif n and not _complete_frames(fixed.h5[f"{CAMERAS}/{cam}"], n).all():
                problems.append(f"camera {cam!r}: frames with broken bytes")
            elif n:
                fixed.frame(cam, 0, trimmed=False)
                fixed.frame(cam, n - 1, trimmed=False)
    if problems:
        raise EpisodeError(f"{ep.path.name}: the repaired copy did not verify ({'; '.join(problems)}); "
                           "the original is unchanged")


def _attr(group: h5py.Group, name: str) -> str:
    value = group.attrs[name]
    return value.decode() if isinstance(value, bytes) else str(value)
