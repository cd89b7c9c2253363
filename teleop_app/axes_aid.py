"""Where the robot base's axes appear in a camera image, labelled with the keyboard keys that move along them.

The keyboard moves the end effector along the robot base frame's x, y and z
(``drivers.keyboard.MOTION_KEYS``); this module projects that frame into a
camera's image so the window can draw which way each key goes. It needs the
camera's real intrinsics (``Camera.intrinsics``, pinhole) and its pose in the
base frame. Only a simulated camera fixed in the scene has a known pose here
(from the MuJoCo scene the renderer draws, compiled without meshes); a real
camera, or one that moves with the arm, gets ``None``: nothing is drawn rather
than something wrong. Plain numpy and MuJoCo, no Qt; computed once per camera
on the GUI thread (a fixed camera's projection never changes).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from drivers.keyboard import MOTION_KEYS

AXIS_LENGTH_M = 0.1


@dataclass(frozen=True)
class CameraPose:
    """A camera in the robot base frame, MuJoCo's convention: it looks along its -z, x right, y up."""

    rotation: np.ndarray  # [3, 3] columns: the camera's x, y, z axes in base coordinates
    position: np.ndarray  # [3] metres


@dataclass(frozen=True)
class AxisArrow:
    """One base axis as image pixels: from the point the ``minus_key`` moves towards to the ``plus_key`` one."""

    axis: str  # "x", "y" or "z"
    minus: tuple[float, float]  # (column, row) of origin - AXIS_LENGTH_M along the axis
    plus: tuple[float, float]  # (column, row) of origin + AXIS_LENGTH_M along the axis
    plus_key: str
    minus_key: str


def keys_for_axis(axis: int) -> tuple[str, str]:
    """The keys (as printed) that move along +axis and -axis."""
    plus = next(k for k, (a, sign, _) in MOTION_KEYS.items() if a == axis and sign > 0)
    minus = next(k for k, (a, sign, _) in MOTION_KEYS.items() if a == axis and sign < 0)
    return plus.upper(), minus.upper()


def project(points: np.ndarray, pose: CameraPose, intrinsics: dict[str, Any]) -> np.ndarray | None:
    """Base-frame points [n, 3] to (column, row) pixels [n, 2]; None if any lies behind the camera."""
    cam = (np.asarray(points, dtype=float) - pose.position) @ pose.rotation  # camera coordinates
    depth = -cam[:, 2]
    if np.any(depth <= 1e-6):
        return None
    col = intrinsics["cx"] + intrinsics["fx"] * cam[:, 0] / depth
    row = intrinsics["cy"] - intrinsics["fy"] * cam[:, 1] / depth
    return np.column_stack([col, row])


def base_axes(pose: CameraPose, intrinsics: dict[str, Any], axes: tuple[int, ...] = (0, 1, 2)) -> list[AxisArrow]:
    """The arrows of the base axes ``axes`` (0 = x, 1 = y, 2 = z) in the image; [] if they are not in view."""
    arrows = []
    for axis in axes:
        unit = np.eye(3)[axis] * AXIS_LENGTH_M
        px = project(np.stack([-unit, unit]), pose, intrinsics)
        if px is None:
            return []
        plus_key, minus_key = keys_for_axis(axis)
        minus, plus = (float(px[0, 0]), float(px[0, 1])), (float(px[1, 0]), float(px[1, 1]))
        arrows.append(AxisArrow("xyz"[axis], minus, plus, plus_key, minus_key))
    return arrows


def camera_pose(camera: Any) -> CameraPose | None:
    """The pose of a rig camera in the base frame, where it is known for sure; else None."""
    from drivers.sim.render import SimCamera

    if isinstance(camera, SimCamera):
        return sim_camera_pose(camera.config.scene_camera)
    return None


@functools.lru_cache(maxsize=8)
def sim_camera_pose(name: str) -> CameraPose | None:
    """A sim scene camera's pose in the robot base frame; None for a camera that moves with a body."""
    import mujoco

    from drivers.sim.model import build_spec

    spec = build_spec()
    for geom in list(spec.geoms):  # meshes are what makes compiling slow; poses do not need them
        if geom.type == mujoco.mjtGeom.mjGEOM_MESH:
            spec.delete(geom)
    for mesh in list(spec.meshes):
        spec.delete(mesh)
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    cam = model.camera(name).id
    if model.cam_bodyid[cam] != 0 or model.cam_mode[cam] != mujoco.mjtCamLight.mjCAMLIGHT_FIXED:
        return None
    base = model.body("base").id
    base_rot, base_pos = data.xmat[base].reshape(3, 3), data.xpos[base]
    cam_rot, cam_pos = data.cam_xmat[cam].reshape(3, 3), data.cam_xpos[cam]
    return CameraPose(rotation=base_rot.T @ cam_rot, position=base_rot.T @ (cam_pos - base_pos))
