"""Export episodes as a LeRobotDataset v3.0: parquet tables and one mp4 per episode and camera.

Layout and conventions follow ``shared/reference/lerobot-dataset-v3.md``. LeRobot
expects frames on an exact ``1 / fps`` grid; our streams keep their true
timestamps, so each episode is resampled onto ``kept_start + i / fps`` (see
:data:`recordings.export_common.RESAMPLING_NOTE`) and ``timestamp`` is
``frame_index / fps``. Each episode gets its own mp4 per camera
(``from_timestamp`` 0), which the format allows: a bad episode found halfway is
dropped without touching the others, and deleting an episode later needs no
re-encoding of the rest.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recordings.export_common import (
    RESAMPLING_NOTE,
    CancelCheck,
    ExportReport,
    Layout,
    Progress,
    SkipEpisode,
    cancel_check,
    export_episodes,
    publish,
    resample_episode,
    staging_dir,
)
from recordings.export_video import CRF, GOP, PIX_FMT, BadFrame, VideoJob, VideoPool, VideoResult, \
    default_workers, encode_camera, encoder_options
from recordings.reader import Episode

CODEBASE_VERSION = "v3.0"
DEFAULT_CODEC = "h264"
"""H.264 (libx264 in PyAV's wheels): fast to encode on a laptop CPU and decodable everywhere.
LeRobot's own default, ``libsvtav1``, also works here and gives smaller files."""
DEFAULT_FPS = 30  # the LeRobot convention, whatever the control rate
CHUNKS_SIZE = 1000
DATA_FILE_MB = 100
VIDEO_FILE_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
INDEX_FEATURES = ("frame_index", "episode_index", "index", "task_index")

Stats = dict[str, np.ndarray]


def export_lerobot(
    episode_paths: list[Path],
    out_dir: Path,
    fps: int | None = None,
    include_failures: bool = False,
    codec: str = DEFAULT_CODEC,
    progress: Progress | None = None,
    workers: int | None = None,
    cancel: threading.Event | CancelCheck | None = None,
) -> ExportReport:
    """Write the episodes at ``episode_paths`` as a LeRobotDataset v3.0 in ``out_dir``.

    ``fps`` defaults to 30 (LeRobot's convention).
    Only episodes labelled successful go in unless ``include_failures``; files
    that cannot be read, or that do not match the first exported episode
    (robot, joints, cameras, image sizes), are skipped and listed in the report.
    The dataset is built beside ``out_dir`` (which must not exist or be empty)
    and moved there at the end; when nothing is exported nothing is written.
    ``codec`` is a PyAV encoder name for H.264, HEVC or AV1 (``h264``,
    ``libx264``, ``hevc``, ``libsvtav1``...).

    Cameras are encoded side by side in ``workers`` processes (default: one per
    camera, at most one per CPU core, none when that is one); ``workers=0``
    encodes them one after the other in this thread. ``cancel`` (an event or a callable) stops the export
    within a frame and raises :class:`~recordings.export_common.Cancelled`;
    ``out_dir`` is then left as it was.
    """
    canonical = codec_name(codec)
    out_dir = Path(out_dir)
    report = ExportReport(out_dir=out_dir)
    cancelled = cancel_check(cancel)
    with staging_dir(out_dir) as root:
        status = _Status(progress)
        writer = _DatasetWriter(root, fps or DEFAULT_FPS, codec, canonical, cancelled, status.frames)
        try:
            processes = default_workers(_camera_count(episode_paths)) if workers is None else workers
            if processes > 1 or workers:  # by default one camera, or one core, encodes here: no process to start
                writer.pool = VideoPool(processes)
            export_episodes(episode_paths, report, include_failures, status, writer.add, cancelled)
        finally:
            if writer.pool is not None:
                writer.pool.close()
        report.fps = writer.fps
        if report.exported:
            writer.finish(report)
            publish(root, out_dir)
    return report


class _Status:
    """Passes the per-file progress on, and adds frame counts while an episode encodes."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.done, self.total, self.message = 0, 0, ""

    def __call__(self, done: int, total: int, message: str) -> None:
        self.done, self.total, self.message = done, total, message
        if self.progress:
            self.progress(done, total, message)

    def frames(self, encoded: int, frames: int) -> None:
        if self.progress:
            self.progress(self.done, self.total, f"{self.message}: {encoded}/{frames} frames")


def _camera_count(paths: list[Path]) -> int:
    """Colour cameras of the first readable episode (to size the worker pool), 0 if none opens."""
    for path in paths:
        try:
            with Episode.open(path) as ep:
                return len(Layout.of(ep).cameras)
        except Exception:  # an unreadable file is reported by the export itself
            continue
    return 0


def codec_name(codec: str) -> str:
    """The canonical name (``h264``, ``hevc``, ``av1``) of an encoder PyAV has, else ValueError."""
    try:
        found = av.codec.Codec(codec, "w")
    except ValueError:
        found = None
    if found is None or found.canonical_name not in CRF:
        have = sorted(c for c in av.codecs_available if _encodes(c) in CRF)
        raise ValueError(f"no H.264/HEVC/AV1 video encoder named {codec!r} in PyAV's FFmpeg; available: {have}")
    return found.canonical_name


def _encodes(name: str) -> str | None:
    try:
        return av.codec.Codec(name, "w").canonical_name
    except ValueError:
        return None


class _DatasetWriter:
    """Accumulates episodes into one dataset directory (``root``)."""

    def __init__(self, root: Path, fps: int, codec: str, canonical: str, cancelled: CancelCheck,
                 frames_progress: Callable[[int, int], None]) -> None:
        self.root = root
        self.fps = fps
        self.codec = codec
        self.canonical = canonical
        self.cancelled = cancelled
        self.frames_progress = frames_progress
        self.pool: VideoPool | None = None
        self.layout: Layout | None = None
        self.tasks: dict[str, int] = {}
        self.episodes: list[dict] = []
        self.sources: list[tuple[Path, tuple[float, float]]] = []
        self.numeric: dict[str, list[np.ndarray]] = defaultdict(list)  # all rows, for exact dataset stats
        self.image_hist: dict[str, list[tuple[np.ndarray, int]]] = defaultdict(list)  # (histograms, frames)
        self._data: pq.ParquetWriter | None = None
        self._data_path: Path | None = None
        self._data_file = 0  # running file number: chunk = n // CHUNKS_SIZE, file = n % CHUNKS_SIZE
        self._index = 0

    # -- one episode -------------------------------------------------------------------------
    def add(self, ep: Episode, path: Path) -> int:
        layout = Layout.of(ep)
        if self.layout is not None:
            self.layout.check(layout)
        fps = self.fps
        cams = [c for c, _, _ in layout.cameras]
        r = resample_episode(ep, fps, ("state", "action"), cams)
        ep_index, n = len(self.episodes), len(r.t)
        task = str(ep.meta["task"])
        task_index = self.tasks.get(task, len(self.tasks))

        image_hist = self._write_videos(ep, layout, fps, r.frames, ep_index)  # may raise: nothing written yet
        self.layout = layout  # the first exported episode fixes it
        self.tasks.setdefault(task, task_index)
        frame_index = np.arange(n, dtype=np.int64)
        columns = {
            "observation.state": r.ticks["state"].astype(np.float32),
            "action": r.ticks["action"].astype(np.float32),
            "timestamp": (frame_index / self.fps).astype(np.float32),
            "frame_index": frame_index,
            "episode_index": np.full(n, ep_index, dtype=np.int64),
            "index": self._index + frame_index,
            "task_index": np.full(n, task_index, dtype=np.int64),
        }
        chunk, file = divmod(self._data_file, CHUNKS_SIZE)
        self._append_data(columns)
        stats = {key: _feature_stats(value) for key, value in columns.items()}
        stats.update({key: _image_stats(*value) for key, value in image_hist.items()})
        for key, value in columns.items():
            self.numeric[key].append(value)
        for key, value in image_hist.items():
            self.image_hist[key].append(value)

        row = {
            "episode_index": ep_index,
            "tasks": [task],
            "length": n,
            "data/chunk_index": chunk,
            "data/file_index": file,
            "dataset_from_index": self._index,
            "dataset_to_index": self._index + n,
        }
        v_chunk, v_file = divmod(ep_index, CHUNKS_SIZE)
        for cam in cams:
            key = _video_key(cam)
            row[f"videos/{key}/chunk_index"] = v_chunk
            row[f"videos/{key}/file_index"] = v_file
            row[f"videos/{key}/from_timestamp"] = 0.0
            row[f"videos/{key}/to_timestamp"] = n / self.fps
        row["meta/episodes/chunk_index"] = 0
        row["meta/episodes/file_index"] = 0
        for feature, feature_stats in stats.items():
            for name, value in feature_stats.items():
                row[f"stats/{feature}/{name}"] = value.tolist()
        self.episodes.append(row)
        self.sources.append((path, tuple(float(x) for x in ep.kept_range)))
        self._index += n
        return n

    def _write_videos(
        self, ep: Episode, layout: Layout, fps: int, frames: dict[str, np.ndarray], ep_index: int
    ) -> dict[str, tuple[np.ndarray, int]]:
        """Encode one mp4 per camera (side by side in the pool, if any); none is left if any fails.

        Returns each video's sampled histograms and sample count.
        """
        chunk, file = divmod(ep_index, CHUNKS_SIZE)
        threads = 0 if self.pool is None else 1
        jobs = [
            VideoJob(ep.path, cam, frames[cam],
                     self.root / VIDEO_PATH.format(video_key=_video_key(cam), chunk_index=chunk, file_index=file),
                     fps, self.codec, self.canonical, height, width, threads)
            for cam, height, width in layout.cameras
        ]
        total = sum(len(job.frames) for job in jobs)
        try:
            if self.pool is not None:
                results = self.pool.run(jobs, self.cancelled, lambda done: self.frames_progress(done, total))
            else:
                results = self._encode_here(jobs, total)
        except BadFrame as exc:
            raise SkipEpisode(str(exc)) from None
        except BaseException:
            for job in jobs:
                job.out.unlink(missing_ok=True)
            raise
        return {_video_key(job.camera): (r.hist, r.samples) for job, r in zip(jobs, results)}

    def _encode_here(self, jobs: list[VideoJob], total: int) -> list[VideoResult]:
        done = 0

        def tick(k: int) -> None:
            nonlocal done
            done += k
            self.frames_progress(done, total)

        results = []
        try:
            for job in jobs:
                results.append(encode_camera(job, self.cancelled, tick))
        except BaseException:
            for job in jobs:
                job.out.unlink(missing_ok=True)
            raise
        return results

    def _append_data(self, columns: dict[str, np.ndarray]) -> None:
        table = pa.table({key: _arrow(value) for key, value in columns.items()})
        if self._data is None:
            chunk, file = divmod(self._data_file, CHUNKS_SIZE)
            self._data_path = self.root / DATA_PATH.format(chunk_index=chunk, file_index=file)
            self._data_path.parent.mkdir(parents=True, exist_ok=True)
            self._data = pq.ParquetWriter(self._data_path, table.schema, compression="snappy")
        self._data.write_table(table)
        if self._data_path.stat().st_size >= DATA_FILE_MB * 1024 * 1024:
            self._data.close()
            self._data = None
            self._data_file += 1

    # -- the whole dataset ---------------------------------------------------------------------
    def finish(self, report: ExportReport) -> None:
        if self._data is not None:
            self._data.close()
        meta = self.root / "meta"
        (meta / "episodes/chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.episodes), self.root / EPISODES_PATH, compression="snappy")
        pq.write_table(_tasks_table(self.tasks), meta / "tasks.parquet", compression="snappy")

        stats = {key: _feature_stats(np.concatenate(parts)) for key, parts in self.numeric.items()}
        for key, parts in self.image_hist.items():
            stats[key] = _image_stats(sum(h for h, _ in parts), sum(n for _, n in parts))
        _write_json(meta / "stats.json", {k: {s: v.tolist() for s, v in st.items()} for k, st in stats.items()})
        _write_json(meta / "info.json", self._info())
        (self.root / "README.md").write_text(self._readme(report))

    def _info(self) -> dict:
        names = [f"{j}.pos" for j in self.layout.joint_names]
        vector = {"dtype": "float32", "shape": [len(names)], "names": names}
        features: dict[str, dict] = {"observation.state": dict(vector), "action": dict(vector)}
        for cam, height, width in self.layout.cameras:
            features[_video_key(cam)] = {
                "dtype": "video",
                "shape": [height, width, 3],
                "names": ["height", "width", "channels"],
                "info": {
                    "video.height": height,
                    "video.width": width,
                    "video.codec": self.canonical,
                    "video.pix_fmt": PIX_FMT,
                    "video.is_depth_map": False,
                    "video.fps": self.fps,
                    "video.channels": 3,
                    "has_audio": False,
                },
            }
        features["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
        for key in INDEX_FEATURES:
            features[key] = {"dtype": "int64", "shape": [1], "names": None}
        return {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.layout.robot_type,
            "total_episodes": len(self.episodes),
            "total_frames": self._index,
            "total_tasks": len(self.tasks),
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILE_MB,
            "video_files_size_in_mb": VIDEO_FILE_MB,
            "fps": self.fps,
            "splits": {"train": f"0:{len(self.episodes)}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.layout.cameras else None,
            "features": features,
        }

    def _readme(self, report: ExportReport) -> str:
        lines = [
            "# LeRobotDataset v3.0 exported by teleop-app",
            "",
            f"{len(self.episodes)} episodes, {self._index} frames at {self.fps} fps, robot `{self.layout.robot_type}`.",
            "",
            "## How the recordings were resampled",
            "",
            RESAMPLING_NOTE,
            "`timestamp` is exactly `frame_index / fps`.",
            "`observation.state` is the measured joint positions and `action` the joint targets sent to the "
            "robot after the safety filter, both in radians, gripper joint last.",
            f"Videos ({self.canonical}, {PIX_FMT}, encoder options {encoder_options(self.codec, self.canonical)}: "
            f"CRF {CRF[self.canonical]}, key frame every {GOP} frames) "
            "repeat a camera frame until the next one was captured; depth streams are not exported.",
            "",
            "## Source episodes",
            "",
            "| episode_index | file | kept range (s) |",
            "| --- | --- | --- |",
        ]
        lines += [f"| {i} | {p.name} | {a:.3f} – {b:.3f} |" for i, (p, (a, b)) in enumerate(self.sources)]
        if report.skipped:
            lines += ["", "## Left out", ""]
            lines += [f"- {s.path.name}: {s.reason}" for s in report.skipped]
        return "\n".join(lines) + "\n"


def _video_key(cam: str) -> str:
    return f"observation.images.{cam}"


def _feature_stats(values: np.ndarray) -> Stats:
    """Stats over rows; a 1-D column gives shape-(1,) arrays like LeRobot's scalar features."""
    values = np.asarray(values, dtype=np.float64)
    keep = values.ndim == 1
    stats = {
        "min": values.min(axis=0, keepdims=keep),
        "max": values.max(axis=0, keepdims=keep),
        "mean": values.mean(axis=0, keepdims=keep),
        "std": values.std(axis=0, keepdims=keep),
        "count": np.array([len(values)]),
    }
    quantiles = np.quantile(values, list(QUANTILES.values()), axis=0, keepdims=keep)
    stats.update(zip(QUANTILES, quantiles))
    return stats


def _image_stats(hist: np.ndarray, frames: int) -> Stats:
    """Per-channel stats, shape (3, 1, 1) and scaled to 0..1, of the pixels counted in ``hist``.

    The same numbers as numpy's min/max/mean/std/quantile (linear interpolation)
    over every pixel, without sorting millions of floats; and histograms add up,
    so the dataset's stats are exact too. ``count`` is the number of ``frames``.
    """
    levels = np.arange(256) / 255.0
    hist = hist.astype(np.float64)
    n = hist[0].sum()
    cum = hist.cumsum(axis=1)

    def order_statistic(k: float) -> np.ndarray:  # the k-th smallest value (from 0) of each channel
        return levels[(cum <= k).sum(axis=1)]

    mean = hist @ levels / n
    stats = {
        "min": order_statistic(0),
        "max": order_statistic(n - 1),
        "mean": mean,
        "std": np.sqrt(np.maximum(hist @ levels**2 / n - mean**2, 0.0)),
    }
    for name, q in QUANTILES.items():
        h = (n - 1) * q
        below = order_statistic(np.floor(h))
        stats[name] = below + (h - np.floor(h)) * (order_statistic(min(np.floor(h) + 1, n - 1)) - below)
    stats = {name: value.reshape(3, 1, 1) for name, value in stats.items()}
    stats["count"] = np.array([frames])
    return stats


def _arrow(values: np.ndarray) -> pa.Array:
    if values.ndim == 1:
        return pa.array(values)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def _tasks_table(tasks: dict[str, int]) -> pa.Table:
    """``meta/tasks.parquet`` as pandas writes a frame indexed by ``task`` (LeRobot reads it with pandas)."""
    table = pa.table({"task_index": pa.array(list(tasks.values()), pa.int64()), "task": pa.array(list(tasks))})
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [
            {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
             "metadata": {"encoding": "UTF-8"}}
        ],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=4) + "\n")
