"""Synthetic episodes whose truth is known, written with the real EpisodeWriter (shared by the export tests).

Joint angles are functions of the tick time and each camera frame's grey level
encodes its capture time (level = 120 * t), so every exported row and decoded
video frame can be checked against the sample that should have been picked.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq

from drivers.types import Frame, RobotState
from recordings.writer import EpisodeWriter
from drivers.types import TickRecord

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
GRIPPER_CLOSED, GRIPPER_OPEN = -0.17, 1.74  # rad: the gripper joint at opening 0 and 1
T0 = 5000.0  # monotonic time of the first tick
RATE = 100.0
CAM_FPS = 15.0
HEIGHT, WIDTH = 48, 64


def joint_positions(t: np.ndarray) -> np.ndarray:
    """[N, 6] measured joints at relative times t; the gripper joint runs a little past both ends."""
    arm = [0.2 * j + 0.5 * np.sin(1.5 * t + j) for j in range(5)]
    grip = GRIPPER_CLOSED + (0.5 + 0.7 * np.sin(2 * t)) * (GRIPPER_OPEN - GRIPPER_CLOSED)
    return np.stack([*arm, grip], axis=1)


def joint_velocities(t: np.ndarray) -> np.ndarray:
    arm = [0.75 * np.cos(1.5 * t + j) for j in range(5)]
    grip = 1.4 * np.cos(2 * t) * (GRIPPER_OPEN - GRIPPER_CLOSED)
    return np.stack([*arm, grip], axis=1)


def opening(angle: np.ndarray) -> np.ndarray:
    """What a driver reports for a gripper joint angle (drivers.base.Robot.joint_to_gripper)."""
    return np.clip((angle - GRIPPER_CLOSED) / (GRIPPER_OPEN - GRIPPER_CLOSED), 0.0, 1.0)


def joint_targets(t: np.ndarray) -> np.ndarray:
    """[N, 6] commanded joints: arm 0.05 rad ahead of the measured one, gripper target on its own curve."""
    q = joint_positions(t) + 0.05
    q[:, -1] = GRIPPER_CLOSED + (0.5 + 0.7 * np.sin(2 * t + 0.3)) * (GRIPPER_OPEN - GRIPPER_CLOSED)
    return q


LEVELS_PER_S = 120


def colour_of(t_capture: float) -> int:
    """The grey level of a frame captured at t (white from ~2.1 s on: longer episodes do not check frames by colour)."""
    return min(int(round(LEVELS_PER_S * t_capture)), 255)


def time_of_colour(image: np.ndarray) -> float:
    """The capture time a (decoded) frame's colour encodes."""
    return float(image.astype(np.float64).mean()) / LEVELS_PER_S


def source_frames(images: list[np.ndarray], frame_t: np.ndarray) -> np.ndarray:
    """Index of the source frame each decoded image shows: the one whose encoded time is nearest."""
    decoded = np.array([time_of_colour(im) for im in images])
    nearest = np.abs(decoded[:, None] - frame_t[None, :]).argmin(axis=1)
    assert np.max(np.abs(decoded - frame_t[nearest])) < 2.5 / LEVELS_PER_S  # codec error, frames 8 levels apart
    return nearest


def make_episode(path: Path, *, seconds: float = 2.0, success: str = "true", task: str = "pick up the cube",
                 seed: int = 0, width: int = WIDTH, height: int = HEIGHT,
                 still_gripper: bool = False, depth: bool = False, crash: bool = False,
                 idle: tuple[float, float] = (0.0, 0.0), noise: float = 0.0) -> dict[str, np.ndarray]:
    """Write an episode file with jittery tick and frame times; returns those times (relative to t0).

    ``still_gripper`` holds the gripper half open the whole time; ``depth`` adds a
    depth camera; ``crash`` leaves the file as a recording that never finished.
    ``idle = (first, last)`` seconds of the recording hold the arm still (commanded
    and measured), ``noise`` adds that much Gaussian sensor noise (rad) to the measured joints.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE + rng.uniform(0.0, 0.004, n)
    t[0] = 0.0
    frame_t = 0.004 + np.arange(int(seconds * CAM_FPS)) / CAM_FPS + rng.uniform(0.0, 0.01, int(seconds * CAM_FPS))
    meta = {"app_version": "test", "rig": "test_rig", "robot_type": "sim_so101", "control_rate_hz": RATE,
            "task": task, "success": success}
    cams = {"front": {"width": width, "height": height, "fps": CAM_FPS, "kind": "color", "intrinsics": None}}
    if depth:
        cams["depth"] = {"width": width, "height": height, "fps": CAM_FPS, "kind": "depth", "intrinsics": None}
    motion_t = np.clip(t, idle[0], seconds - idle[1])  # the arm holds where it was before and after
    q, dq, cmd = joint_positions(motion_t), joint_velocities(motion_t), joint_targets(motion_t)
    dq[motion_t != t] = 0.0
    q += rng.normal(0.0, noise, q.shape) if noise else 0.0
    if still_gripper:
        q[:, -1] = cmd[:, -1] = (GRIPPER_CLOSED + GRIPPER_OPEN) / 2
        dq[:, -1] = 0.0
    writer = EpisodeWriter(path, meta, JOINTS, cams)
    records = [
        TickRecord(tick=k, t=T0 + t[k], t_sent=T0 + t[k],
                   state=RobotState(t_host=T0 + t[k], joint_pos=q[k], joint_vel=dq[k],
                                    gripper=float(opening(q[k, -1])), ee_pos=np.zeros(3)),
                   command=cmd[k], raw_input=None, input_kind="none", source="human", safety=0, killed=False)
        for k in range(n)
    ]
    writer.append_ticks(records)
    for i, tc in enumerate(frame_t):
        image = np.empty((height, width, 3), np.uint8)
        image[:] = colour_of(tc)
        assert writer.append_frame("front", Frame("front", image, T0 + tc, T0 + tc + 0.002, i))
        if depth:
            millimetres = np.full((height, width), 500 + i, np.uint16)
            assert writer.append_frame("depth", Frame("depth", millimetres, T0 + tc, T0 + tc + 0.002, i))
    if crash:
        writer.abort()
    else:
        writer.finalize({})
    return {"t": t, "frame_t": frame_t}


def expected_rows(sample_t: np.ndarray, grid_t: np.ndarray) -> np.ndarray:
    """Hand-rolled "last sample at or before", independent of recordings.resample."""
    out = []
    for g in grid_t:
        before = [i for i, s in enumerate(sample_t) if s <= g + 1e-9]
        out.append(before[-1] if before else 0)
    return np.array(out)


def decode(path: Path) -> tuple[list[float], list[np.ndarray]]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return [float(f.pts * f.time_base) for f in frames], [f.to_ndarray(format="rgb24") for f in frames]


def read_parquet(path: Path) -> dict[str, np.ndarray]:
    table = pq.read_table(path)
    return {name: np.array(table.column(name).to_pylist()) for name in table.column_names}
