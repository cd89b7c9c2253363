"""Streaming writer of one episode file (``docs/episode-format.md``).

Crash safety comes from HDF5's SWMR mode plus the order of a few steps:

1. The whole file — every root attribute, group and dataset, empty — is built
   under a hidden temporary name and switched to SWMR mode. It is renamed to its
   real name only once its first tick (and ``t0``) is flushed, so an episode file
   that exists always holds at least one tick; a kill before that leaves only a
   hidden ``.episode_*.h5.partial`` that nothing lists.
2. From then on the writer only grows datasets (resize, then write) and calls
   :meth:`flush` regularly. In SWMR mode HDF5 orders its metadata writes so that
   the file on disk is readable after any prefix of them, so a SIGKILL at any
   moment leaves a file a SWMR reader opens, holding everything up to the last
   completed flush. Rows whose data had not reached the disk read as the fill
   values of ``FILL_VALUES``; readers and :func:`recordings.repair.repair` cut them.
3. :meth:`finalize` flushes the data, then flips three attributes (``status``,
   ``dropped``, ``success``) and closes the file: its cost does not depend on the
   episode's length. ``status = "complete"`` is thus never on disk before the data.

Only one thread may use a writer (HDF5 is not safe for concurrent writers).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import h5py
import numpy as np

from drivers.types import Frame
from recordings.format import (
    CAMERA_ATTRS,
    CAMERAS,
    FILL_VALUES,
    FORMAT_NAME,
    FORMAT_VERSION,
    FRAME_BYTES,
    FRAME_DATASETS,
    INPUT_KINDS,
    RAW_INPUT_MIN,
    SOURCES,
    SUCCESS_VALUES,
    TICK_DATASETS,
    TICKS,
    encode_driver,
)

if TYPE_CHECKING:
    from drivers.types import TickRecord

JPEG_QUALITY = 90
PNG_COMPRESSION = 1  # zlib level: depth frames stay lossless, and level 1 keeps encoding fast
TICK_CHUNK_ROWS = 512  # ~5 s at 100 Hz
FRAME_CHUNK_ROWS = 256
DATA_CHUNK_BYTES = 256 * 1024  # a few JPEG frames: a random frame read touches one or two chunks
MAX_PENDING_BYTES = 8 << 20  # encoded frames buffered between flushes before they go to HDF5 anyway
CAMERA_KINDS = {"color": "jpeg", "depth": "png16"}

# Root attributes the caller provides (the writer sets the others); None = required.
META_DEFAULTS: dict[str, Any] = {
    "app_version": None,
    "rig": None,
    "robot_type": None,
    "control_rate_hz": None,
    "joint_units": None,  # defaults to "rad" for every joint
    "task": "",
    "operator": "",
    "success": "unknown",
    "notes": "",
}


def create_layout(f: h5py.File, n_joints: int, cameras: Mapping[str, Mapping[str, Any]]) -> None:
    """Create ``/ticks`` and ``/cameras/<name>`` with every dataset empty, chunked, with an unlimited first dim.

    ``cameras`` maps each stream name to its attributes (``CAMERA_ATTRS``, as stored).
    """
    sizes = {"J": n_joints, "R": max(RAW_INPUT_MIN, n_joints)}
    ticks = f.create_group(TICKS)
    for name, (dtype, shape) in TICK_DATASETS.items():
        row = tuple(sizes.get(d, d) for d in shape)
        _create(ticks, name, dtype, row, TICK_CHUNK_ROWS)
    group = f.create_group(CAMERAS)
    for cam, attrs in cameras.items():
        g = group.create_group(cam)
        for key in CAMERA_ATTRS:
            g.attrs[key] = attrs[key]
        for name, (dtype, shape) in FRAME_DATASETS.items():
            _create(g, name, dtype, shape, FRAME_CHUNK_ROWS)
        _create(g, FRAME_BYTES, "uint8", (), DATA_CHUNK_BYTES, fill=0)


def _create(group: h5py.Group, name: str, dtype: str, row: tuple[int, ...], chunk_rows: int,
            fill: float | int | None = None) -> None:
    group.create_dataset(name, shape=(0, *row), maxshape=(None, *row), dtype=dtype, chunks=(chunk_rows, *row),
                         fillvalue=FILL_VALUES[dtype] if fill is None else fill)


def camera_attrs(info: Mapping[str, Any]) -> dict[str, Any]:
    """The stored attributes of a camera stream from ``{width, height, fps, kind, intrinsics}``."""
    kind = str(info.get("kind", "color"))
    if kind not in CAMERA_KINDS:
        raise ValueError(f"camera kind must be one of {', '.join(CAMERA_KINDS)}, got {kind!r}")
    return {
        "width": int(info["width"]),
        "height": int(info["height"]),
        "fps": float(info["fps"]),
        "kind": kind,
        "encoding": CAMERA_KINDS[kind],
        "intrinsics": json.dumps(info.get("intrinsics")),
    }


def encode_image(image: np.ndarray, kind: str, width: int, height: int) -> np.ndarray | None:
    """JPEG (color: RGB uint8 HxWx3) or 16-bit PNG (depth: uint16 HxW) bytes; None if the image does not fit."""
    if kind == "color":
        if image.dtype != np.uint8 or image.shape != (height, width, 3):
            return None
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    else:
        if image.dtype != np.uint16 or image.shape != (height, width):
            return None
        ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    return buf.reshape(-1) if ok else None


def tick_columns(records: Sequence[TickRecord], n_joints: int) -> dict[str, np.ndarray]:
    """The ``/ticks`` rows of a batch of :class:`teleop_app.loop.TickRecord`, one array per dataset."""
    n = len(records)
    raw = np.full((n, max(RAW_INPUT_MIN, n_joints)), np.nan, dtype=np.float32)
    for i, r in enumerate(records):
        if r.raw_input is not None:
            values = np.asarray(r.raw_input, dtype=np.float32).reshape(-1)
            raw[i, : values.size] = values
    try:
        kinds = [INPUT_KINDS.index(r.input_kind) for r in records]
        sources = [SOURCES.index(r.source) for r in records]
    except ValueError as exc:
        raise ValueError(f"tick with an unknown input kind or source: {exc}") from None
    return {
        "tick": np.fromiter((r.tick for r in records), np.int64, n),
        "t": np.fromiter((r.t for r in records), np.float64, n),
        "t_sent": np.fromiter((r.t_sent for r in records), np.float64, n),
        "t_state": np.fromiter((r.state.t_host for r in records), np.float64, n),
        "state": np.array([r.state.joint_pos for r in records], dtype=np.float32).reshape(n, n_joints),
        "velocity": np.array([r.state.joint_vel for r in records], dtype=np.float32).reshape(n, n_joints),
        "gripper": np.fromiter((r.state.gripper for r in records), np.float32, n),
        "ee_pos": np.array([r.state.ee_pos for r in records], dtype=np.float32).reshape(n, 3),
        "action": np.array([r.command for r in records], dtype=np.float32).reshape(n, n_joints),
        "raw_input": raw,
        "input_kind": np.array(kinds, dtype=np.uint8),
        "source": np.array(sources, dtype=np.uint8),
        "safety": np.fromiter((r.safety for r in records), np.uint8, n),
        "driver": np.array([encode_driver(r.driver) for r in records], dtype=TICK_DATASETS["driver"][0]),
    }


def _root_attrs(meta: Mapping[str, Any], joint_names: Sequence[str], cameras: Sequence[str]) -> dict[str, Any]:
    unknown = sorted(set(meta) - set(META_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown episode metadata {unknown} (known: {', '.join(META_DEFAULTS)})")
    values = {**META_DEFAULTS, **{k: v for k, v in meta.items() if v is not None}}
    if values["joint_units"] is None:
        values["joint_units"] = ["rad"] * len(joint_names)
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise ValueError(f"episode metadata needs {', '.join(missing)}")
    if values["success"] not in SUCCESS_VALUES:
        raise ValueError(f"success must be one of {SUCCESS_VALUES}, got {values['success']!r}")
    if len(values["joint_units"]) != len(joint_names):
        raise ValueError("joint_units must give one unit per joint")
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "status": "recording",
        "created": "",  # set with t0 by the first ticks
        "t0": math.nan,
        "app_version": str(values["app_version"]),
        "rig": str(values["rig"]),
        "robot_type": str(values["robot_type"]),
        "joint_names": json.dumps([str(j) for j in joint_names]),
        "joint_units": json.dumps([str(u) for u in values["joint_units"]]),
        "control_rate_hz": float(values["control_rate_hz"]),
        "cameras": json.dumps(list(cameras)),
        "task": str(values["task"]),
        "operator": str(values["operator"]),
        "success": str(values["success"]),
        "notes": str(values["notes"]),
        "kept_start": math.nan,
        "kept_end": math.nan,
        "dropped": "{}",
        "wrong_object": "false",
    }


def iso_utc_of_monotonic(t: float) -> str:
    """Wall-clock UTC time (ISO 8601) of a ``time.monotonic()`` instant in the recent past."""
    wall = time.time() - (time.monotonic() - t)
    return datetime.datetime.fromtimestamp(wall, datetime.UTC).isoformat(timespec="milliseconds")


class EpisodeWriter:
    """Appends ticks and camera frames to a new episode file; see the module docstring for crash safety.

    ``cameras`` maps each stream name to ``{width, height, fps, kind, intrinsics}``
    (kind ``"color"``: RGB uint8 frames stored as JPEG; ``"depth"``: uint16 frames
    stored as 16-bit PNG). ``meta`` holds the root attributes of ``META_DEFAULTS``.
    """

    def __init__(self, path: str | Path, meta: Mapping[str, Any], joint_names: Sequence[str],
                 cameras: Mapping[str, Mapping[str, Any]]) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} already exists")
        self.n_joints = len(joint_names)
        root = _root_attrs(meta, joint_names, list(cameras))
        self._cams = {name: camera_attrs(info) for name, info in cameras.items()}
        self._tmp: Path | None = self.path.with_name(f".{self.path.name}.partial")  # None once renamed
        f = h5py.File(self._tmp, "w", libver="latest")
        try:
            for key, value in root.items():
                f.attrs[key] = value
            create_layout(f, self.n_joints, self._cams)
            f.swmr_mode = True
        except BaseException:
            f.close()
            self._tmp.unlink(missing_ok=True)
            raise
        self._f = f
        self._ticks = {name: f[TICKS][name] for name in TICK_DATASETS}
        self._frames = {cam: {name: f[CAMERAS][cam][name] for name in (*FRAME_DATASETS, FRAME_BYTES)}
                        for cam in self._cams}
        self._n_ticks = 0  # rows in the file (pending rows not included)
        self._pending_ticks: list[dict[str, np.ndarray]] = []
        self._pending_frames: dict[str, list[tuple[int, float, float, np.ndarray]]] = {cam: [] for cam in self._cams}
        self._pending_bytes = 0
        self._n_frames = dict.fromkeys(self._cams, 0)
        self._n_bytes = dict.fromkeys(self._cams, 0)
        self.rejected = dict.fromkeys(self._cams, 0)  # frames that could not be encoded for their stream
        self.t0: float | None = None

    @property
    def counts(self) -> dict[str, int]:
        """Rows appended so far: ``ticks`` and one entry per camera."""
        return {"ticks": self._n_ticks + sum(len(c["t"]) for c in self._pending_ticks),
                **{cam: self._n_frames[cam] + len(rows) for cam, rows in self._pending_frames.items()}}

    @property
    def closed(self) -> bool:
        return not self._f.id.valid

    def append_ticks(self, records: Sequence[TickRecord]) -> None:
        """Append :class:`teleop_app.loop.TickRecord` rows.

        The first batch fixes ``t0`` and ``created``, is flushed at once, and only
        then does the file get its real name.
        """
        if not records:
            return
        cols = tick_columns(records, self.n_joints)
        self._pending_ticks.append(cols)
        if self.t0 is None:
            self.t0 = float(cols["t"][0])
            self._f.attrs.modify("t0", self.t0)
            self._f.attrs.modify("created", iso_utc_of_monotonic(self.t0))
            self.flush()
            if self.path.exists():
                raise FileExistsError(f"{self.path} appeared while recording into it")
            os.rename(self._tmp, self.path)
            self._tmp = None

    def append_frame(self, camera: str, frame: Frame) -> bool:
        """Encode and append one frame; False (and counted in :attr:`rejected`) if it does not fit the stream."""
        attrs = self._cams[camera]
        payload = encode_image(frame.image, attrs["kind"], attrs["width"], attrs["height"])
        if payload is None:
            self.rejected[camera] += 1
            return False
        self.append_encoded(camera, frame.seq, frame.t_capture, frame.t_host, payload)
        return True

    def append_encoded(self, camera: str, seq: int, t_capture: float, t_host: float, payload: np.ndarray) -> None:
        """Append one already encoded frame."""
        self._pending_frames[camera].append((seq, t_capture, t_host, payload))
        self._pending_bytes += payload.size
        if self._pending_bytes >= MAX_PENDING_BYTES:
            self._write_pending()

    def _write_pending(self) -> None:
        """Hand the buffered rows to HDF5: one resize and one write per dataset, whatever the batch size.

        Rows are buffered because h5py costs ~0.1 ms of Python (holding the GIL)
        per call, and nothing is safe from a crash before :meth:`flush` anyway.
        Each frame's bytes are written before the row that points at them.
        """
        if self._pending_ticks:
            batch = self._pending_ticks
            cols = {name: np.concatenate([c[name] for c in batch]) for name in TICK_DATASETS}
            self._append(self._ticks, self._n_ticks, cols)
            self._n_ticks += len(cols["t"])
            self._pending_ticks = []
        for cam, rows in self._pending_frames.items():
            if not rows:
                continue
            ds = self._frames[cam]
            sizes = np.array([p.size for *_, p in rows], dtype=np.int64)
            offsets = self._n_bytes[cam] + np.cumsum(sizes) - sizes
            self._append(ds, self._n_bytes[cam], {FRAME_BYTES: np.concatenate([p for *_, p in rows])})
            self._append(ds, self._n_frames[cam], {
                "seq": np.array([r[0] for r in rows], dtype=np.int64),
                "t_capture": np.array([r[1] for r in rows], dtype=np.float64),
                "t_host": np.array([r[2] for r in rows], dtype=np.float64),
                "offset": offsets,
                "size": sizes.astype(np.int32),
            })
            self._n_bytes[cam] += int(sizes.sum())
            self._n_frames[cam] += len(rows)
            self._pending_frames[cam] = []
        self._pending_bytes = 0

    @staticmethod
    def _append(datasets: Mapping[str, h5py.Dataset], n0: int, cols: Mapping[str, np.ndarray]) -> None:
        for name, values in cols.items():
            ds = datasets[name]
            ds.resize(n0 + len(values), axis=0)
            ds[n0:] = values

    def flush(self) -> None:
        """Write everything appended so far to the file; a crash after this returns keeps it."""
        self._write_pending()
        self._f.flush()

    def finalize(self, dropped: Mapping[str, int], success: str | None = None, notes: str | None = None,
                 wrong_object: bool = False) -> None:
        """Mark the episode complete, store the drop counts (and the success label, notes, a wrong-object pick),
        close.

        Constant time.

        An episode needs at least one tick: without one, the file is deleted and ValueError raised.
        """
        if success is not None and success not in SUCCESS_VALUES:
            raise ValueError(f"success must be one of {SUCCESS_VALUES}, got {success!r}")
        if self.t0 is None:
            self.abort()
            raise ValueError("the episode has no tick: nothing was saved")
        self.flush()  # data first: "complete" must never reach the disk before it
        attrs = self._f.attrs
        attrs.modify("dropped", json.dumps({k: int(v) for k, v in dropped.items()}, sort_keys=True))
        if success is not None:
            attrs.modify("success", success)
        if notes is not None:
            attrs.modify("notes", notes)
        attrs.modify("wrong_object", "true" if wrong_object else "false")
        attrs.modify("status", "complete")
        self._f.close()

    def abort(self) -> None:
        """Flush and close without marking the episode complete (it reads, and repairs, like a crashed one).

        A file that never got a tick (still under its temporary name) is deleted.
        """
        if not self.closed:
            try:
                self.flush()
            finally:
                self._f.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)

    def abandon(self) -> None:
        """Close a file whose writes fail (full disk, size limit, I/O error) without writing to it again.

        HDF5 keeps trying to write what it holds when the file is flushed or
        closed; after a failed write that leaves its state broken, and closing the
        objects later crashes the process. So the file's descriptor is pointed at
        /dev/null first: the close then succeeds, and the file on disk keeps what
        was written before the failure, as a crash would leave it.
        """
        if self.closed:
            return
        fd = self._f.id.get_vfd_handle()
        null = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
        try:
            self._f.close()
        finally:
            if self._tmp is not None:
                self._tmp.unlink(missing_ok=True)
