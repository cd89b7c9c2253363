import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from teleop_app.config import load_rig  # noqa: E402
from teleop_app.rig import build_rig  # noqa: E402


@pytest.fixture
def sim_rig():
    """The built-in sim rig without cameras (tests of cameras start their own), not yet started."""
    rig = build_rig(load_rig().without_cameras(), active_input="scripted")
    yield rig
    rig.close()
