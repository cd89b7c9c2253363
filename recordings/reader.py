"""Read episode files (``docs/episode-format.md``), including ones a crash left half-written.

Opening is cheap — root attributes and dataset shapes only — because the dataset
library opens every file it lists. Columns and frames are read on demand. Anything
that is not a readable episode raises :class:`EpisodeError` whose message says why.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import cv2
import h5py
import numpy as np

from recordings.format import (
    CAMERA_ATTRS,
    CAMERAS,
    ENCODINGS,
    FILL_VALUES,
    FORMAT_NAME,
    FORMAT_VERSION,
    FRAME_BYTES,
    FRAME_DATASETS,
    INPUT_KINDS,
    OPTIONAL_ROOT_ATTRS,
    RAW_INPUT_MIN,
    ROOT_ATTRS,
    SOURCES,
    SUCCESS_VALUES,
    TICK_DATASETS,
    TICKS,
    WRONG_OBJECT_VALUES,
    tick_datasets,
)

STATUSES = ("recording", "complete")
T = TypeVar("T")
_JSON_ATTRS = {"joint_names": list, "joint_units": list, "cameras": list, "dropped": dict}
_TIME_COLUMNS = ("t", "t_sent", "t_state")


class EpisodeError(Exception):
    """A file is not a readable episode; the message is the human-readable reason."""


def open_h5(path: str | Path) -> tuple[h5py.File, bool]:
    """Open an HDF5 file read-only; returns the file and whether it needed SWMR read mode.

    A file whose SWMR writer is still running, or was killed, carries HDF5's
    "open for writing" flags: it only opens in SWMR read mode.
    """
    path = Path(path)
    if not path.is_file():
        raise EpisodeError(f"{path}: no such file")
    try:
        return h5py.File(path, "r"), False
    except OSError as exc:
        if "already open for write" not in str(exc):
            raise EpisodeError(f"{path.name}: {_h5_reason(exc)}") from None
    try:
        return h5py.File(path, "r", swmr=True), True
    except OSError as exc:
        raise EpisodeError(f"{path.name}: {_h5_reason(exc)}") from None


_TRUNCATED = re.compile(r"truncated file: eof = (\d+),.*stored_eof = (\d+)", re.S)


def truncated_size(path: str | Path) -> tuple[int, int] | None:
    """``(bytes held, bytes HDF5 expects)`` if the file at ``path`` is cut short (a write failed), else None."""
    for swmr in (False, True):  # an unfinished episode opens only in SWMR mode
        try:
            h5py.File(path, "r", swmr=swmr).close()
            return None
        except OSError as exc:
            if m := _TRUNCATED.search(str(exc)):
                return int(m.group(1)), int(m.group(2))
            if "already open for write" not in str(exc):
                return None
    return None


def _h5_reason(exc: OSError) -> str:
    text = str(exc)
    if "file signature not found" in text:
        return "not an HDF5 file"
    if m := _TRUNCATED.search(text):
        return (f"the file is truncated ({int(m.group(1)):,} of {int(m.group(2)):,} bytes: a write failed); "
                "`teleop-app episodes repair` keeps every complete row")
    return f"HDF5 cannot open it ({text})"


def complete_tick_rows(ticks: h5py.Group, n: int) -> int:
    """How many leading rows of ``/ticks`` are complete: a row whose data never reached the disk holds fill values."""
    t = ticks["t"][:n]
    tick = ticks["tick"][:n]
    # A fill value, or a row that does not continue the sequence (zeros where a failed write left a hole).
    bad = ~np.isfinite(t) | (tick < 0) | np.r_[False, (np.diff(tick) <= 0) | (np.diff(t) < 0)]
    return int(np.argmax(bad)) if bad.any() else n


def complete_frame_rows(group: h5py.Group, n: int) -> int:
    """How many leading frame rows are complete: finite times and bytes inside ``data``."""
    offset = group["offset"][:n]
    size = group["size"][:n].astype(np.int64)
    t = group["t_capture"][:n]
    n_bytes = group[FRAME_BYTES].shape[0]
    bad = (offset < 0) | (size <= 0) | (offset + size > n_bytes) | ~np.isfinite(t) | (group["seq"][:n] < 0)
    return int(np.argmax(bad)) if bad.any() else n


class Episode:
    """One episode file, opened read-only. Use :meth:`open` (also a context manager).

    Times are seconds relative to :attr:`t0` (the first tick). Views with
    ``trimmed=True`` (the default) honour the kept range: the ticks inside it and
    the frames on screen during it (the last frame at or before its start, then
    every frame up to its end).
    """

    def __init__(self, path: Path, f: h5py.File, swmr: bool) -> None:
        self.path = path
        self._f = f
        self.issues: list[str] = []  # what the reader had to work around (shown as "needs repair")
        if swmr:
            self.issues.append("the writer never closed the file (HDF5 write flags still set)")
        self.meta = _parse_meta(f.attrs)
        self.status: str = self.meta["status"]
        if self.status != "complete":
            self.issues.append(f"status is {self.status!r}: still being recorded, or the recording was interrupted")
        self.camera_names: list[str] = list(self.meta["cameras"])
        self._encodings: dict[str, str] = {}
        self._n_ticks = self._tick_rows()
        self._frame_dims = {cam: self._camera_rows(cam) for cam in self.camera_names}
        self._frame_rows: dict[str, int] = {}
        self._frame_columns: dict[str, dict[str, np.ndarray]] = {}
        t0 = self.meta["t0"]
        if not math.isfinite(t0):
            t0 = float(self._ticks["t"][0])
            self.issues.append("t0 was never written: using the first tick")
        self.t0: float = t0

    @classmethod
    def open(cls, path: str | Path) -> Episode:
        """Open ``path``; raises :class:`EpisodeError` if it is not a readable episode."""
        path = Path(path)
        f, swmr = open_h5(path)
        try:
            return cls(path, f, swmr)
        except EpisodeError as exc:
            f.close()
            raise EpisodeError(f"{path.name}: {exc}") from None
        except Exception as exc:  # h5py raises many types on damaged files; callers get one
            f.close()
            raise EpisodeError(f"{path.name}: unreadable ({type(exc).__name__}: {exc})") from None

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> Episode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def h5(self) -> h5py.File:
        """The open HDF5 file, for tools that copy raw datasets (rows past the counts here are not valid)."""
        return self._f

    def _guard(self, read: Callable[[], T]) -> T:
        """Run a read of file data; a damaged file's errors become :class:`EpisodeError`."""
        try:
            return read()
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            raise EpisodeError(f"{self.path.name}: unreadable data ({type(exc).__name__}: {exc})") from None

    # -- structure ---------------------------------------------------------------------------
    @property
    def _ticks(self) -> h5py.Group:
        return self._f[TICKS]

    def _tick_rows(self) -> int:
        if TICKS not in self._f:
            raise EpisodeError(f"missing group /{TICKS}")
        n_joints = len(self.meta["joint_names"])
        sizes = {"J": n_joints, "R": max(RAW_INPUT_MIN, n_joints)}
        lengths = {}
        for name, (dtype, shape) in tick_datasets(self.meta["format_version"]).items():
            ds = _dataset(self._ticks, name, dtype, f"{TICKS}/{name}")
            row = tuple(sizes.get(d, d) for d in shape)
            if ds.shape[1:] != row:
                raise EpisodeError(f"/{TICKS}/{name} has rows of shape {ds.shape[1:]}, expected {row}")
            lengths[name] = ds.shape[0]
        n = min(lengths.values())
        if len(set(lengths.values())) > 1:
            self.issues.append(f"/{TICKS} datasets differ in length ({min(lengths.values())}.."
                               f"{max(lengths.values())} rows): using the shortest")
        if self.status != "complete" or self.issues:
            complete = complete_tick_rows(self._ticks, n)
            if complete < n:
                self.issues.append(f"/{TICKS}: {n - complete} row(s) from row {complete} on are incomplete: ignored")
            n = complete
        if n == 0:
            raise EpisodeError("no ticks were recorded")
        return n

    def _camera_rows(self, cam: str) -> int:
        path = f"{CAMERAS}/{cam}"
        if path not in self._f:
            raise EpisodeError(f"camera {cam!r} is listed but /{path} is missing")
        group = self._f[path]
        missing = [a for a in CAMERA_ATTRS if a not in group.attrs]
        if missing:
            raise EpisodeError(f"/{path} lacks attribute(s) {', '.join(missing)}")
        encoding = _text(group.attrs["encoding"])
        if encoding not in ENCODINGS:
            raise EpisodeError(f"/{path} has an unknown encoding {encoding!r}")
        self._encodings[cam] = encoding
        lengths = {name: _dataset(group, name, dtype, f"{path}/{name}").shape[0]
                   for name, (dtype, _) in FRAME_DATASETS.items()}
        _dataset(group, FRAME_BYTES, "uint8", f"{path}/{FRAME_BYTES}")
        if len(set(lengths.values())) > 1:
            self.issues.append(f"/{path} datasets differ in length: using the shortest")
        return min(lengths.values())

    def _frames_group(self, cam: str) -> h5py.Group:
        if cam not in self._frame_dims:
            raise KeyError(f"no camera {cam!r} (cameras: {', '.join(self.camera_names) or 'none'})")
        return self._f[f"{CAMERAS}/{cam}"]

    def _n_frames(self, cam: str) -> int:
        """Frame rows that are complete (checked on first use: it reads the offset/size columns)."""
        if cam not in self._frame_rows:
            group, n = self._frames_group(cam), self._frame_dims[cam]
            complete = self._guard(lambda: complete_frame_rows(group, n))
            if complete < n:
                self.issues.append(f"camera {cam!r}: {n - complete} frame(s) with missing bytes ignored")
            self._frame_rows[cam] = complete
        return self._frame_rows[cam]

    # -- time ------------------------------------------------------------------------------
    @cached_property
    def _t(self) -> np.ndarray:
        return self._guard(lambda: self._ticks["t"][: self._n_ticks]) - self.t0

    @cached_property
    def full_duration(self) -> float:
        """Seconds from the first tick to the last one."""
        return float(self._guard(lambda: self._ticks["t"][self._n_ticks - 1]) - self.t0)

    @property
    def kept_range(self) -> tuple[float, float]:
        """The kept (trimmed) range ``(start, end)`` in seconds relative to t0; the whole recording by default."""
        end_all = self.full_duration
        start = self.meta["kept_start"]
        end = self.meta["kept_end"]
        start = 0.0 if start is None else min(max(start, 0.0), end_all)
        end = end_all if end is None else min(max(end, start), end_all)
        return start, end

    @property
    def duration(self) -> float:
        start, end = self.kept_range
        return end - start

    # -- ticks -----------------------------------------------------------------------------
    def tick_slice(self, trimmed: bool = True) -> slice:
        """Rows of ``/ticks`` in the kept range (or all of them)."""
        if not trimmed:
            return slice(0, self._n_ticks)
        start, end = self.kept_range
        return slice(int(np.searchsorted(self._t, start, "left")), int(np.searchsorted(self._t, end, "right")))

    def tick_count(self, trimmed: bool = True) -> int:
        s = self.tick_slice(trimmed)
        return s.stop - s.start

    def ticks(self, trimmed: bool = True) -> dict[str, np.ndarray]:
        """Every ``/ticks`` column; times relative to t0; ``source``/``input_kind`` as indices into
        ``source_names``/``input_kind_names`` (also returned); ``driver`` as stored bytes (decode UTF-8)."""
        s = self.tick_slice(trimmed)

        present = tick_datasets(self.meta["format_version"])

        def read() -> dict[str, np.ndarray]:
            return {name: self._ticks[name][s] for name in present}

        out = self._guard(read)
        n = s.stop - s.start
        for name, (dtype, _) in TICK_DATASETS.items():
            if name not in out:  # an older file: a column added later reads as its fill value
                out[name] = np.full(n, FILL_VALUES[dtype], dtype=dtype)
        for name in _TIME_COLUMNS:
            out[name] = out[name] - self.t0
        out["source_names"] = np.array(SOURCES)
        out["input_kind_names"] = np.array(INPUT_KINDS)
        return out

    # -- cameras ---------------------------------------------------------------------------
    def camera_info(self, cam: str) -> dict[str, Any]:
        """``width, height, fps, kind, encoding, intrinsics`` (dict or None) and ``frames`` (all, untrimmed)."""
        attrs = self._frames_group(cam).attrs
        info = {k: _plain(attrs[k]) for k in CAMERA_ATTRS}
        try:
            info["intrinsics"] = json.loads(info["intrinsics"])
        except (TypeError, ValueError):
            info["intrinsics"] = None
        info["frames"] = self._n_frames(cam)
        return info

    def _columns(self, cam: str) -> dict[str, np.ndarray]:
        """t_capture (relative), offset and size of the complete frames, cached."""
        if cam not in self._frame_columns:
            group, n = self._frames_group(cam), self._n_frames(cam)
            self._frame_columns[cam] = self._guard(lambda: {
                "t": group["t_capture"][:n] - self.t0,
                "offset": group["offset"][:n],
                "size": group["size"][:n],
            })
        return self._frame_columns[cam]

    def frame_slice(self, cam: str, trimmed: bool = True) -> slice:
        """Rows of camera ``cam`` in the kept range: the frame on screen at its start, then every frame to its end."""
        n = self._n_frames(cam)
        if not trimmed:
            return slice(0, n)
        t = self._columns(cam)["t"]
        start, end = self.kept_range
        first = max(int(np.searchsorted(t, start, "right")) - 1, 0)
        return slice(first, max(int(np.searchsorted(t, end, "right")), first))

    def frame_count(self, cam: str, trimmed: bool = True) -> int:
        s = self.frame_slice(cam, trimmed)
        return s.stop - s.start

    def frame_times(self, cam: str, trimmed: bool = True) -> np.ndarray:
        """Capture times of the frames, relative to t0 (frames just before the first tick are negative)."""
        return self._columns(cam)["t"][self.frame_slice(cam, trimmed)]

    def encoded_frame(self, cam: str, i: int, trimmed: bool = True) -> bytes:
        """The stored bytes of frame ``i`` (JPEG, or PNG for depth)."""
        s = self.frame_slice(cam, trimmed)
        if not 0 <= i < s.stop - s.start:
            raise IndexError(f"camera {cam!r} has {s.stop - s.start} frames, no frame {i}")
        cols = self._columns(cam)
        offset, size = int(cols["offset"][s.start + i]), int(cols["size"][s.start + i])
        return self._guard(lambda: self._frames_group(cam)[FRAME_BYTES][offset: offset + size].tobytes())

    def frame(self, cam: str, i: int, trimmed: bool = True) -> np.ndarray:
        """Frame ``i`` decoded: RGB uint8 HxWx3, or uint16 HxW for depth."""
        buf = np.frombuffer(self.encoded_frame(cam, i, trimmed), dtype=np.uint8)
        depth = self._encodings[cam] == "png16"
        try:
            image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED if depth else cv2.IMREAD_COLOR)
        except cv2.error:
            image = None
        if image is None or (depth and (image.dtype != np.uint16 or image.ndim != 2)):
            raise EpisodeError(f"{self.path.name}: frame {i} of {cam!r} cannot be decoded")
        return image if depth else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def frame_at(self, cam: str, t: float, trimmed: bool = True) -> tuple[int, np.ndarray] | None:
        """The last frame captured at or before relative time ``t``, with its index; None if there is none."""
        i = int(np.searchsorted(self.frame_times(cam, trimmed), t, "right")) - 1
        return None if i < 0 else (i, self.frame(cam, i, trimmed))


def _dataset(group: h5py.Group, name: str, dtype: str, where: str) -> h5py.Dataset:
    ds = group.get(name)
    if not isinstance(ds, h5py.Dataset):
        raise EpisodeError(f"missing dataset /{where}")
    if ds.dtype != np.dtype(dtype):
        raise EpisodeError(f"/{where} has dtype {ds.dtype}, expected {dtype}")
    if ds.ndim < 1:
        raise EpisodeError(f"/{where} is a scalar, expected rows")
    return ds


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _plain(value: Any) -> Any:
    """An attribute value as a plain Python value."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _parse_meta(attrs: h5py.AttributeManager) -> dict[str, Any]:
    """Root attributes as Python values, validated; raises :class:`EpisodeError` with the reason."""
    if "format" not in attrs:
        raise EpisodeError(f"not a teleop episode (no 'format' attribute; expected {FORMAT_NAME!r})")
    if _text(attrs["format"]) != FORMAT_NAME:
        raise EpisodeError(f"not a teleop episode (format is {_text(attrs['format'])!r}, expected {FORMAT_NAME!r})")
    try:
        version = int(attrs.get("format_version"))
    except (TypeError, ValueError):
        raise EpisodeError("format_version is missing or not an integer") from None
    if version > FORMAT_VERSION:
        raise EpisodeError(f"format version {version} is newer than this app reads (<= {FORMAT_VERSION}): "
                           "update teleop-app")
    if version < 1:
        raise EpisodeError(f"unsupported format version {version}")
    missing = [a for a in ROOT_ATTRS if a not in attrs]
    if missing:
        raise EpisodeError(f"missing root attribute(s): {', '.join(missing)}")
    meta = {a: _plain(attrs[a]) for a in ROOT_ATTRS}
    meta.update({a: _plain(attrs[a]) if a in attrs else default for a, default in OPTIONAL_ROOT_ATTRS.items()})
    for key, kind in _JSON_ATTRS.items():
        try:
            meta[key] = json.loads(meta[key])
        except (TypeError, ValueError):
            raise EpisodeError(f"attribute {key!r} is not valid JSON") from None
        if not isinstance(meta[key], kind):
            raise EpisodeError(f"attribute {key!r} must be a JSON {kind.__name__}")
    for key in ("t0", "control_rate_hz", "kept_start", "kept_end"):
        try:
            meta[key] = float(meta[key])
        except (TypeError, ValueError):
            raise EpisodeError(f"attribute {key!r} must be a number") from None
    for key in ("kept_start", "kept_end"):
        if math.isnan(meta[key]):
            meta[key] = None
    if meta["status"] not in STATUSES:
        raise EpisodeError(f"unknown status {meta['status']!r} (expected one of {', '.join(STATUSES)})")
    if meta["success"] not in SUCCESS_VALUES:
        raise EpisodeError(f"success must be one of {', '.join(SUCCESS_VALUES)}, got {meta['success']!r}")
    if meta["wrong_object"] not in WRONG_OBJECT_VALUES:
        raise EpisodeError(f"wrong_object must be one of {', '.join(WRONG_OBJECT_VALUES)}, "
                           f"got {meta['wrong_object']!r}")
    meta["format_version"] = version
    return meta
