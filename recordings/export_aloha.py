"""Export episodes in the ALOHA / ACT HDF5 layout: one ``episode_{i}.hdf5`` per episode.

Layout (``shared/reference/hdf5-layouts.md``), every array with the same T rows
on the grid ``kept_start + i / fps``::

    attrs: sim (robot type ``sim_*``), compress, plus fps, task, source file... for people
    /observations/qpos     (T, J) float32   measured joints (rad), gripper as opening 0..1
    /observations/qvel     (T, J) float32   measured joint velocities (rad/s), gripper in opening/s
    /observations/effort   (T, J) float32   zeros: we record no effort
    /observations/images/<cam>  compressed (default): (T, L) uint8, row i the JPEG of frame i
                                zero-padded to L (the longest JPEG of the episode, all cameras
                                alike, as ALOHA pads), one chunk per row;
                                raw: (T, H, W, 3) uint8, one chunk per frame
    /compress_len          (n_cams, T) float32, compressed only: the JPEG lengths, cameras in
                           the order of ``cameras`` (ALOHA writes it with h5py's default dtype)
    /action                (T, J) float32   joint targets sent (rad), gripper as opening 0..1

Compressed rows are what ALOHA's loaders expect: ``cv2.imdecode(row, 1)`` gives
the image in the channel order it was recorded in, RGB (so the JPEG holds the
RGB array as OpenCV would encode it, and a standard decoder shows red and blue
swapped, as in ALOHA's own files). Each distinct frame is decoded and encoded once.

ACT normalizes the gripper to 0..1 in both qpos and action. The measured
opening is in the episode file; the commanded one is derived from the gripper
joint target with the same linear map, see :func:`gripper_range`.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import h5py
import numpy as np

from recordings.export_common import (
    RESAMPLING_NOTE,
    CancelCheck,
    Cancelled,
    ExportReport,
    Layout,
    Progress,
    SkipEpisode,
    cancel_check,
    export_episodes,
    iter_frames,
    publish,
    resample_episode,
    staging_dir,
)
from recordings.reader import Episode

DEFAULT_FPS = 50  # ALOHA's control rate
JPEG_QUALITY = 90  # our recordings' quality (ALOHA itself uses 50)
EFFORT_NOTE = "zeros: teleop-app does not record joint effort"


def export_aloha(
    episode_paths: list[Path],
    out_dir: Path,
    fps: int | None = None,
    include_failures: bool = False,
    progress: Progress | None = None,
    compress: bool = True,
    cancel: threading.Event | CancelCheck | None = None,
) -> ExportReport:
    """Write each exported episode as ``out_dir/episode_{i}.hdf5`` (i from 0, in input order).

    ``fps`` defaults to 50 Hz like ALOHA. Images are JPEG rows in ALOHA's
    compressed layout unless ``compress`` is False (raw ``(T, H, W, 3)``).
    Selection, skipping, cancelling and the all-or-nothing directory work as in
    :func:`recordings.export_lerobot.export_lerobot`; episodes must share joints
    and cameras (ACT batches them together).
    """
    fps = fps or DEFAULT_FPS
    out_dir = Path(out_dir)
    report = ExportReport(out_dir=out_dir, fps=fps)
    cancelled = cancel_check(cancel)
    with staging_dir(out_dir) as root:
        writer = _AlohaWriter(root, fps, compress, cancelled)
        export_episodes(episode_paths, report, include_failures, progress, writer.add, cancelled)
        if report.exported:
            (root / "README.md").write_text(writer.readme(report))
            publish(root, out_dir)
    return report


def gripper_range(angle: np.ndarray, opening: np.ndarray) -> tuple[float, float] | None:
    """Gripper joint angles ``(closed, open)`` recovered from measured ``(angle, opening)`` pairs.

    Drivers report ``opening = clip((angle - closed) / (open - closed), 0, 1)``
    (``drivers.base.Robot.joint_to_gripper``), and the episode file stores no
    joint limits, so a line is fitted through the samples strictly between
    closed and open. None when the gripper never moved there.
    """
    angle = np.asarray(angle, dtype=np.float64)
    opening = np.asarray(opening, dtype=np.float64)
    inside = np.isfinite(angle) & np.isfinite(opening) & (opening > 1e-3) & (opening < 1 - 1e-3)
    if inside.sum() < 2 or np.ptp(angle[inside]) < 1e-3:
        return None
    slope, intercept = np.polyfit(angle[inside], opening[inside], 1)
    closed = -intercept / slope
    return float(closed), float(closed + 1.0 / slope)


class _AlohaWriter:
    def __init__(self, root: Path, fps: int, compress: bool, cancelled: CancelCheck) -> None:
        self.root = root
        self.fps = fps
        self.compress = compress
        self.cancelled = cancelled
        self.layout: Layout | None = None
        self.gripper: tuple[float, float] | None = None  # last fitted (closed, open), for episodes that cannot fit
        self.written: list[tuple[Path, tuple[float, float], tuple[float, float]]] = []

    def add(self, ep: Episode, path: Path) -> int:
        layout = Layout.of(ep)
        if self.layout is not None:
            self.layout.check(layout)
        all_ticks = ep.ticks(trimmed=False)
        gripper = gripper_range(all_ticks["state"][:, -1], all_ticks["gripper"]) or self.gripper
        if gripper is None:
            raise SkipEpisode("cannot normalize the gripper: it never moved between closed and open "
                              "(and no earlier episode of this export did)")
        closed, opened = gripper
        cams = [c for c, _, _ in layout.cameras]
        r = resample_episode(ep, self.fps, ("state", "velocity", "gripper", "action"), cams)
        n = len(r.t)

        qpos = r.ticks["state"].astype(np.float32)
        qpos[:, -1] = r.ticks["gripper"]
        qvel = r.ticks["velocity"].astype(np.float32)
        qvel[:, -1] /= opened - closed
        action = r.ticks["action"].astype(np.float32)
        action[:, -1] = np.clip((action[:, -1] - closed) / (opened - closed), 0.0, 1.0)

        out = self.root / f"episode_{len(self.written)}.hdf5"
        try:
            with h5py.File(out, "w") as f:
                f.attrs["sim"] = layout.robot_type.startswith("sim")
                f.attrs["compress"] = self.compress
                f.attrs["fps"] = self.fps
                f.attrs["task"] = str(ep.meta["task"])
                f.attrs["source_file"] = path.name
                f.attrs["kept_range"] = np.asarray(ep.kept_range, dtype=np.float64)
                f.attrs["robot_type"] = layout.robot_type
                f.attrs["joint_names"] = json.dumps(list(layout.joint_names))
                f.attrs["resampling"] = RESAMPLING_NOTE
                obs = f.create_group("observations")
                obs.create_dataset("qpos", data=qpos)
                obs.create_dataset("qvel", data=qvel)
                effort = obs.create_dataset("effort", data=np.zeros_like(qpos))
                effort.attrs["note"] = EFFORT_NOTE
                images = obs.create_group("images")
                if self.compress:
                    jpegs = {cam: self._jpeg_rows(ep, cam, r.frames[cam], (height, width, 3))
                             for cam, height, width in layout.cameras}
                    lengths = np.array([[len(p) for p in rows] for rows in jpegs.values()], dtype=np.float32)
                    padded = int(lengths.max()) if lengths.size else 0
                    for cam, rows in jpegs.items():
                        block = np.zeros((n, padded), dtype=np.uint8)
                        for i, payload in enumerate(rows):
                            block[i, : len(payload)] = payload
                        images.create_dataset(cam, data=block, chunks=(1, padded))
                    f.create_dataset("compress_len", data=lengths.reshape(len(jpegs), n))
                else:
                    for cam, height, width in layout.cameras:
                        ds = images.create_dataset(cam, shape=(n, height, width, 3), dtype=np.uint8,
                                                   chunks=(1, height, width, 3))
                        for i, image in enumerate(iter_frames(ep, cam, r.frames[cam], (height, width, 3))):
                            if i % 16 == 0 and self.cancelled():
                                raise Cancelled()
                            ds[i] = image
                act = f.create_dataset("action", data=action)
                act.attrs["gripper"] = (f"opening 0..1 = (target - {closed:.6f}) / ({opened:.6f} - {closed:.6f}), "
                                        "clipped; gripper joint angles fitted from the measured opening")
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        self.layout, self.gripper = layout, gripper
        self.written.append((path, tuple(float(x) for x in ep.kept_range), gripper))
        return n

    def _jpeg_rows(self, ep: Episode, cam: str, frames: np.ndarray, shape: tuple[int, ...]) -> list[np.ndarray]:
        """One JPEG per output row (a repeated frame shares its bytes; each distinct frame is encoded once)."""
        rows: list[np.ndarray] = []
        last, payload = -1, None
        for i, image in enumerate(iter_frames(ep, cam, frames, shape)):
            if i % 16 == 0 and self.cancelled():
                raise Cancelled()
            if frames[i] != last:
                last = frames[i]
                ok, payload = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                if not ok:
                    raise SkipEpisode(f"camera {cam!r} frame {last} could not be encoded as JPEG")
                payload = payload.reshape(-1)
            rows.append(payload)
        return rows

    def readme(self, report: ExportReport) -> str:
        joints = ", ".join(self.layout.joint_names)
        cams = ", ".join(c for c, _, _ in self.layout.cameras) or "none"
        lines = [
            "# ALOHA / ACT episodes exported by teleop-app",
            "",
            f"{len(self.written)} episodes at {self.fps} Hz, robot `{self.layout.robot_type}`, "
            f"joints {joints} (gripper last), cameras {cams}.",
            "",
            "## How the recordings were resampled",
            "",
            RESAMPLING_NOTE,
            "",
            "`/observations/qpos` holds the measured joint positions (rad) with the gripper as its measured "
            "opening (0 closed, 1 open); `/action` the joint targets sent after the safety filter (rad) with the "
            "gripper target mapped to the same 0..1 opening (the gripper's closed and open joint angles are "
            "fitted from the recorded angle/opening pairs). `/observations/qvel` is measured, its gripper column "
            f"in opening per second. `/observations/effort` is {EFFORT_NOTE}. Depth streams are not exported.",
            "",
            (f"Images are JPEG (quality {JPEG_QUALITY}) rows in ALOHA's compressed layout: row i of "
             "`/observations/images/<cam>` is frame i's JPEG padded with zeros, `/compress_len[c, i]` its length; "
             "`cv2.imdecode(row, 1)` returns the RGB image." if self.compress else
             "Images are raw RGB `(T, H, W, 3)` uint8."),
            "",
            "## Source episodes",
            "",
            "| file | source | kept range (s) | gripper closed / open (rad) |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| episode_{i}.hdf5 | {p.name} | {a:.3f} – {b:.3f} | {lo:.4f} / {hi:.4f} |"
            for i, (p, (a, b), (lo, hi)) in enumerate(self.written)
        ]
        if report.skipped:
            lines += ["", "## Left out", ""]
            lines += [f"- {s.path.name}: {s.reason}" for s in report.skipped]
        return "\n".join(lines) + "\n"
