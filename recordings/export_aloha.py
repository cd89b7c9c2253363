"""Export episodes in the ALOHA / ACT HDF5 layout: one ``episode_{i}.hdf5`` per episode.

Layout (``shared/reference/hdf5-layouts.md``), every array with the same T rows
on the grid ``kept_start + i / fps``::

    attrs: sim (robot type ``sim_*``), compress (False), plus fps, task, source file... for people
    /observations/qpos     (T, J) float32   measured joints (rad), gripper as opening 0..1
    /observations/qvel     (T, J) float32   measured joint velocities (rad/s), gripper in opening/s
    /observations/effort   (T, J) float32   zeros: we record no effort
    /observations/images/<cam>  (T, H, W, 3) uint8, one chunk per frame
    /action                (T, J) float32   joint targets sent (rad), gripper as opening 0..1

ACT normalizes the gripper to 0..1 in both qpos and action. The measured
opening is in the episode file; the commanded one is derived from the gripper
joint target with the same linear map, see :func:`gripper_range`.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from recordings.export_common import (
    RESAMPLING_NOTE,
    ExportReport,
    Layout,
    Progress,
    SkipEpisode,
    export_episodes,
    iter_frames,
    publish,
    resample_episode,
    staging_dir,
)
from recordings.reader import Episode

DEFAULT_FPS = 50  # ALOHA's control rate
EFFORT_NOTE = "zeros: teleop-app does not record joint effort"


def export_aloha(
    episode_paths: list[Path],
    out_dir: Path,
    fps: int | None = None,
    include_failures: bool = False,
    progress: Progress | None = None,
) -> ExportReport:
    """Write each exported episode as ``out_dir/episode_{i}.hdf5`` (i from 0, in input order).

    ``fps`` defaults to 50 Hz like ALOHA. Selection, skipping and the
    all-or-nothing directory work as in :func:`recordings.export_lerobot.export_lerobot`;
    episodes must share joints and cameras (ACT batches them together).
    """
    fps = fps or DEFAULT_FPS
    out_dir = Path(out_dir)
    report = ExportReport(out_dir=out_dir, fps=fps)
    with staging_dir(out_dir) as root:
        writer = _AlohaWriter(root, fps)
        export_episodes(episode_paths, report, include_failures, progress, writer.add)
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
    def __init__(self, root: Path, fps: int) -> None:
        self.root = root
        self.fps = fps
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
                f.attrs["compress"] = False
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
                for cam, height, width in layout.cameras:
                    ds = images.create_dataset(cam, shape=(n, height, width, 3), dtype=np.uint8,
                                               chunks=(1, height, width, 3))
                    for i, image in enumerate(iter_frames(ep, cam, r.frames[cam], (height, width, 3))):
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
