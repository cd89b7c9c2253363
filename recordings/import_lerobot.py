"""Import a LeRobotDataset v3.0 (parquet + mp4) as teleop episode files, one per LeRobot episode.

Read with pyarrow and PyAV only (the ``lerobot`` package is not needed); the
layout is the one ``recordings.export_lerobot`` writes and LeRobot 0.6 reads
(``shared/reference/lerobot-dataset-v3.md``): videos may hold one episode each
or many concatenated (``from_timestamp``/``to_timestamp``).

What each episode file gets:

- one tick per LeRobot frame at its ``timestamp`` (relative to the episode's
  first frame; a float32 timestamp within LeRobot's 1e-4 s tolerance of
  ``frame_index / fps`` is taken as that exact value, undoing the float32
  rounding): ``state`` = ``observation.state``, ``action`` = ``action``;
  measured velocity, gripper opening and end-effector point are not in a
  LeRobot dataset and are NaN;
- one camera per ``observation.images.<cam>`` video feature, every decoded
  frame at its own video timestamp (minus the episode's ``from_timestamp``),
  stored as JPEG like a recording; cameras keep their names and fps;
- ``task`` (the episode's first task), ``success`` from ``next.success`` where the
  dataset has it (``"true"`` when any frame of the episode is a success, else
  ``"false"``; ``"unknown"`` without the column), ``control_rate_hz`` = ``fps``,
  ``robot_type``, joint names from the state feature's names (``.pos`` dropped);
- ``source``: ``"human"``, or, when the dataset has an intervention column (a
  feature named ``is_intervention`` or ``intervention``, possibly prefixed as in
  ``complementary_info.is_intervention``), ``"intervention"`` on flagged frames
  and ``"policy"`` on the others;
- ``notes`` saying where it came from.

Files are written through :class:`recordings.writer.EpisodeWriter` under new
``episode_{n:06d}.h5`` names (never reusing an index), one episode at a time on
the caller's thread; an episode that fails halfway is removed, so the output
folder holds only whole episodes. Anything malformed raises
:class:`LeRobotFormatError` with one line naming what is wrong, before any file
is written where possible.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from drivers.app_version import APP_VERSION
from drivers.types import Frame, RobotState, TickRecord
from recordings.export_common import Cancelled, CancelCheck, Progress, cancel_check
from recordings.recorder import next_episode_path
from recordings.writer import EpisodeWriter

CODEBASE_VERSION = "v3.0"
IMAGE_PREFIX = "observation.images."
INTERVENTION_NAMES = ("is_intervention", "intervention")
TIMESTAMP_TOLERANCE_S = 1e-4  # LeRobot's own check of timestamp against frame_index / fps


class LeRobotFormatError(ValueError):
    """The folder is not a LeRobotDataset v3.0 this importer can read; the message says what is wrong."""


@dataclass
class ImportReport:
    out_dir: Path
    written: list[Path] = field(default_factory=list)  # one per imported episode, in episode order
    episodes: list[int] = field(default_factory=list)  # their LeRobot episode_index

    def text(self) -> str:
        if not self.written:
            return f"nothing imported into {self.out_dir}"
        return (f"imported {len(self.written)} episode(s) into {self.out_dir}: "
                f"{self.written[0].name} … {self.written[-1].name}")


@dataclass(frozen=True)
class _Camera:
    key: str  # the feature key, observation.images.<name>
    name: str
    height: int
    width: int
    fps: float


@dataclass
class LeRobotSource:
    """What the importer needs of a dataset's metadata, checked."""

    root: Path
    info: dict[str, Any]
    fps: int
    joints: list[str]
    cameras: list[_Camera]
    tasks: dict[int, str]
    episodes: list[dict[str, Any]]
    success_column: str | None
    intervention_column: str | None

    @classmethod
    def open(cls, root: str | Path) -> LeRobotSource:
        root = Path(root)
        if not root.is_dir():
            raise LeRobotFormatError(f"{root} is not a folder")
        info = _json(root / "meta" / "info.json")
        version = info.get("codebase_version")
        if version != CODEBASE_VERSION:
            raise LeRobotFormatError(f"{root}: meta/info.json says codebase_version {version!r}; "
                                     f"only LeRobot {CODEBASE_VERSION} datasets are read")
        for key in ("fps", "features", "data_path"):
            if key not in info:
                raise LeRobotFormatError(f"{root}: meta/info.json has no {key!r}")
        fps = info["fps"]
        if not isinstance(fps, (int, float)) or fps <= 0:
            raise LeRobotFormatError(f"{root}: meta/info.json fps {fps!r} is not a positive number")
        features = info["features"]
        joints = _joint_names(features)
        cameras = [_camera(key, spec, fps) for key, spec in features.items() if spec.get("dtype") == "video"]
        images = [key for key, spec in features.items() if spec.get("dtype") == "image"]
        if images:
            raise LeRobotFormatError(f"{root}: image features stored in parquet are not supported ({', '.join(images)}); "
                                     "only video features are imported")
        if cameras and not info.get("video_path"):
            raise LeRobotFormatError(f"{root}: meta/info.json has video features but no video_path")
        tasks = _tasks(root / "meta" / "tasks.parquet")
        episodes = _episodes(root)
        names = set(features)
        success = "next.success" if "next.success" in names else None
        intervention = next((n for n in features if n.split(".")[-1] in INTERVENTION_NAMES), None)
        source = cls(root, info, int(round(fps)), joints, cameras, tasks, episodes, success, intervention)
        source._check_files()
        return source

    def _check_files(self) -> None:
        """Every episode's rows and videos are where meta/episodes says (so an import does not fail halfway)."""
        counts: dict[str, dict[int, int]] = {}
        for row in self.episodes:
            index = row["episode_index"]
            rel = self.info["data_path"].format(chunk_index=row["data/chunk_index"], file_index=row["data/file_index"])
            if rel not in counts:
                column = _parquet(self.root / rel, columns=["episode_index"]).column("episode_index").to_numpy()
                values, n = np.unique(column, return_counts=True)
                counts[rel] = dict(zip(values.tolist(), n.tolist()))
            if counts[rel].get(index, 0) != row["length"]:
                raise LeRobotFormatError(f"episode {index}: {counts[rel].get(index, 0)} rows in {rel}, "
                                         f"meta/episodes says {row['length']}")
            for cam in self.cameras:
                self.video(row, cam)

    def video(self, row: dict[str, Any], cam: _Camera) -> tuple[Path, float, float]:
        """The video file holding ``cam`` of episode ``row`` and the episode's ``(from, to)`` seconds in it."""
        prefix = f"videos/{cam.key}/"
        try:
            chunk, file = row[prefix + "chunk_index"], row[prefix + "file_index"]
            start, end = float(row[prefix + "from_timestamp"]), float(row[prefix + "to_timestamp"])
        except (KeyError, TypeError):
            raise LeRobotFormatError(f"meta/episodes of episode {row['episode_index']} lacks the "
                                     f"{prefix}chunk_index/file_index/from_timestamp/to_timestamp columns") from None
        rel = self.info["video_path"].format(video_key=cam.key, chunk_index=chunk, file_index=file)
        if not (self.root / rel).is_file():
            raise LeRobotFormatError(f"episode {row['episode_index']}: missing video {rel}")
        return self.root / rel, start, end


def import_lerobot(src: str | Path, out_dir: str | Path, progress: Progress | None = None,
                   cancel: threading.Event | CancelCheck | None = None) -> ImportReport:
    """Convert every episode of the LeRobot v3.0 dataset at ``src`` into new episode files in ``out_dir``.

    Raises :class:`LeRobotFormatError` for a malformed dataset and
    :class:`~recordings.export_common.Cancelled` when ``cancel`` is set; episodes
    written before either stay (each is whole), the one in progress is removed.
    """
    source = LeRobotSource.open(src)
    cancelled = cancel_check(cancel)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = ImportReport(out_dir)
    total = len(source.episodes)
    for done, row in enumerate(source.episodes):
        if cancelled():
            raise Cancelled()
        if progress:
            progress(done, total, f"episode {row['episode_index']}")
        report.written.append(_import_episode(source, row, out_dir, cancelled))
        report.episodes.append(int(row["episode_index"]))
    if progress:
        progress(total, total, "done")
    return report


# -- metadata ------------------------------------------------------------------------------------
def _json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise LeRobotFormatError(f"{path.parent.parent}: no {path.parent.name}/{path.name} "
                                 "(not a LeRobot dataset folder)") from None
    except (OSError, ValueError) as exc:
        raise LeRobotFormatError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(value, dict):
        raise LeRobotFormatError(f"{path}: expected a JSON object")
    return value


def _names(spec: dict[str, Any], n: int) -> list[str]:
    names = spec.get("names")
    if isinstance(names, dict):  # older datasets: {"motors": [...]}
        names = next(iter(names.values()), None)
    if not isinstance(names, list) or len(names) != n:
        return [f"joint_{i}" for i in range(n)]
    return [str(x).removesuffix(".pos") for x in names]


def _joint_names(features: dict[str, Any]) -> list[str]:
    for key in ("observation.state", "action"):
        spec = features.get(key)
        if not isinstance(spec, dict) or spec.get("dtype") not in ("float32", "float64"):
            raise LeRobotFormatError(f"feature {key!r} is missing or not a float vector "
                                     "(teleop episodes need the joint state and the joint targets)")
    n_state = int(np.prod(features["observation.state"].get("shape", [0])))
    n_action = int(np.prod(features["action"].get("shape", [0])))
    if n_state == 0 or n_state != n_action:
        raise LeRobotFormatError(f"observation.state has {n_state} values and action {n_action}: teleop "
                                 "episodes need one joint target per measured joint")
    return _names(features["observation.state"], n_state)


def _camera(key: str, spec: dict[str, Any], fps: float) -> _Camera:
    shape, names = spec.get("shape"), spec.get("names")
    if not isinstance(shape, list) or len(shape) != 3:
        raise LeRobotFormatError(f"video feature {key!r} has shape {shape!r}, expected [height, width, channels]")
    dims = dict(zip(names, shape)) if isinstance(names, list) and len(names) == 3 else {}
    height, width = dims.get("height", shape[0]), dims.get("width", shape[1])
    name = key.removeprefix(IMAGE_PREFIX).replace(".", "_").replace("/", "_")
    video_fps = (spec.get("info") or {}).get("video.fps", fps)
    return _Camera(key, name, int(height), int(width), float(video_fps))


def _tasks(path: Path) -> dict[int, str]:
    table = _parquet(path)
    columns = set(table.column_names)
    if "task_index" not in columns:
        raise LeRobotFormatError(f"{path}: no task_index column")
    text = "task" if "task" in columns else "__index_level_0__" if "__index_level_0__" in columns else None
    if text is None:
        raise LeRobotFormatError(f"{path}: no task column")
    return dict(zip(table.column("task_index").to_pylist(), map(str, table.column(text).to_pylist())))


def _episodes(root: Path) -> list[dict[str, Any]]:
    files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise LeRobotFormatError(f"{root}: no meta/episodes/chunk-*/file-*.parquet")
    rows = [row for path in files for row in _parquet(path).to_pylist()]
    needed = ("episode_index", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
              "dataset_to_index")
    for row in rows:
        missing = [k for k in needed if row.get(k) is None]
        if missing:
            raise LeRobotFormatError(f"{root}: meta/episodes row of episode {row.get('episode_index')} "
                                     f"lacks {', '.join(missing)}")
    return sorted(rows, key=lambda r: r["episode_index"])


def _parquet(path: Path, columns: list[str] | None = None) -> Any:
    try:
        return pq.read_table(path, columns=columns)
    except FileNotFoundError:
        raise LeRobotFormatError(f"missing {path}") from None
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise LeRobotFormatError(f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})") from None


# -- one episode ---------------------------------------------------------------------------------
def _episode_rows(source: LeRobotSource, row: dict[str, Any]) -> dict[str, np.ndarray]:
    """The episode's data rows, ordered by frame_index, as numpy columns."""
    rel = source.info["data_path"].format(chunk_index=row["data/chunk_index"], file_index=row["data/file_index"])
    table = _parquet(source.root / rel)
    for key in ("observation.state", "action", "timestamp", "episode_index", "frame_index"):
        if key not in table.column_names:
            raise LeRobotFormatError(f"{source.root / rel}: no {key!r} column")
    table = table.filter(pc.equal(table.column("episode_index"), row["episode_index"]))
    if table.num_rows != row["length"]:
        raise LeRobotFormatError(f"episode {row['episode_index']}: {table.num_rows} rows in {rel}, "
                                 f"meta/episodes says {row['length']}")
    table = table.sort_by("frame_index")
    out = {}
    for key in ("observation.state", "action"):
        values = np.array(table.column(key).to_pylist(), dtype=np.float32)
        if values.ndim != 2 or values.shape[1] != len(source.joints):
            raise LeRobotFormatError(f"episode {row['episode_index']}: {key} rows do not have "
                                     f"{len(source.joints)} values")
        out[key] = values
    stored = table.column("timestamp").to_numpy().astype(np.float64)
    on_grid = table.column("frame_index").to_numpy() / source.fps
    # float32 timestamps are frame_index / fps rounded: take the exact value where LeRobot's tolerance holds
    out["timestamp"] = np.where(np.abs(stored - on_grid) < TIMESTAMP_TOLERANCE_S, on_grid, stored)
    if np.any(np.diff(out["timestamp"]) <= 0):
        raise LeRobotFormatError(f"episode {row['episode_index']}: timestamps do not increase")
    if "task_index" in table.column_names:
        out["task_index"] = table.column("task_index").to_numpy()
    for key in (source.success_column, source.intervention_column):
        if key:
            out[key] = np.array(table.column(key).to_pylist(), dtype=bool).reshape(len(table), -1)[:, 0]
    return out


def _import_episode(source: LeRobotSource, row: dict[str, Any], out_dir: Path, cancelled: CancelCheck) -> Path:
    index = int(row["episode_index"])
    data = _episode_rows(source, row)
    tasks = row.get("tasks") or []
    task = str(tasks[0]) if tasks else source.tasks.get(int(data["task_index"][0]), "") if "task_index" in data else ""
    success = "unknown"
    if source.success_column:
        success = "true" if data[source.success_column].any() else "false"
    n = len(data["timestamp"])
    if source.intervention_column:
        flags = data[source.intervention_column]
        sources = np.where(flags, "intervention", "policy")
    else:
        sources = np.full(n, "human")
    meta = {"app_version": APP_VERSION, "rig": "lerobot-import", "robot_type": str(source.info.get("robot_type") or ""),
            "control_rate_hz": float(source.fps), "task": task, "success": success,
            "notes": f"imported from LeRobot {CODEBASE_VERSION} dataset {source.root.name}, episode {index}"}
    cams = {c.name: {"width": c.width, "height": c.height, "fps": c.fps, "kind": "color", "intrinsics": None}
            for c in source.cameras}
    path = next_episode_path(out_dir)
    writer = EpisodeWriter(path, meta, source.joints, cams)
    try:
        t0 = time.monotonic()
        t = t0 + data["timestamp"] - data["timestamp"][0]
        nan_j, nan3 = np.full(len(source.joints), np.nan), np.full(3, np.nan)
        writer.append_ticks([
            TickRecord(tick=k, t=float(t[k]), t_sent=float(t[k]),
                       state=RobotState(t_host=float(t[k]), joint_pos=data["observation.state"][k], joint_vel=nan_j,
                                        gripper=math.nan, ee_pos=nan3),
                       command=data["action"][k], raw_input=None, input_kind="none", source=str(sources[k]),
                       safety=0, killed=False)
            for k in range(n)])
        for cam in source.cameras:
            _import_video(source, row, cam, writer, t0, cancelled)
        writer.finalize({})
    except BaseException as exc:
        if isinstance(exc, OSError):
            writer.abandon()  # a failed write: HDF5 must not write to the file again
        else:
            writer.abort()
        path.unlink(missing_ok=True)
        raise
    return path


def _import_video(source: LeRobotSource, row: dict[str, Any], cam: _Camera, writer: EpisodeWriter, t0: float,
                  cancelled: CancelCheck) -> None:
    """Append the frames of ``cam`` between the episode's from/to timestamps, at their video times."""
    path, start, end = source.video(row, cam)
    half = 0.5 / cam.fps
    count = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if start > 0:
                container.seek(int(start / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.time is None or frame.time < start - half:
                    continue
                if frame.time >= end - half:
                    break
                if count % 16 == 0 and cancelled():
                    raise Cancelled()
                image = frame.to_ndarray(format="rgb24")
                if image.shape[:2] != (cam.height, cam.width):
                    raise LeRobotFormatError(f"{path.name}: frames are {image.shape[1]}x{image.shape[0]}, "
                                             f"info.json says {cam.width}x{cam.height}")
                tc = t0 + frame.time - start
                if not writer.append_frame(cam.name, Frame(cam.name, image, tc, tc, count)):
                    raise LeRobotFormatError(f"{path.name}: frame {count} could not be stored")
                count += 1
    except av.FFmpegError as exc:
        raise LeRobotFormatError(f"{path.relative_to(source.root)}: not a readable video ({exc})") from None
    if count == 0:
        raise LeRobotFormatError(f"{path.relative_to(source.root)}: no frames between {start:.3f} and {end:.3f} s")
