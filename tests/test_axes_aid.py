"""The keyboard aid's projection of the robot base frame lands where MuJoCo renders the same points."""

import math

import mujoco
import numpy as np
import pytest

from drivers.sim.model import build_model
from teleop_app.axes_aid import AXIS_LENGTH_M, base_axes, project, sim_camera_pose

W, H = 640, 480


@pytest.fixture(scope="module")
def renderer():
    model = build_model(W, H)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    r = mujoco.Renderer(model, height=H, width=W)
    yield r, data, model
    r.close()


def rendered_marker(renderer, point):
    """Centre (column, row) of a small green sphere at ``point`` (world = base frame), drawn alone."""
    r, data, _ = renderer
    r.update_scene(data, camera="front")
    r.scene.ngeom = 0  # nothing may hide the marker
    mujoco.mjv_initGeom(r.scene.geoms[0], mujoco.mjtGeom.mjGEOM_SPHERE, np.array([0.004, 0, 0]),
                        np.asarray(point, dtype=float), np.eye(3).flatten(), np.array([0, 1, 0, 1], np.float32))
    r.scene.geoms[0].emission = 1.0
    r.scene.ngeom = 1
    image = r.render().astype(int)
    mask = (image[..., 1] > 150) & (image[..., 0] < 100) & (image[..., 2] < 100)
    rows, cols = np.nonzero(mask)
    assert rows.size > 3
    return cols.mean() + 0.5, rows.mean() + 0.5  # pixel centres


def test_base_origin_and_axis_tips_land_where_mujoco_draws_them(renderer):
    _, _, model = renderer
    pose = sim_camera_pose("front")
    fovy = model.cam_fovy[model.camera("front").id]
    fy = 0.5 * H / math.tan(math.radians(fovy) / 2)  # the sim camera's intrinsics, as it reports them
    intrinsics = {"fx": fy, "fy": fy, "cx": W / 2, "cy": H / 2}
    points = np.array([[0, 0, 0], [AXIS_LENGTH_M, 0, 0], [0, AXIS_LENGTH_M, 0], [0, 0, AXIS_LENGTH_M],
                       [0.3, -0.1, 0.05]])
    projected = project(points, pose, intrinsics)
    for point, px in zip(points, projected):
        assert np.allclose(px, rendered_marker(renderer, point), atol=1.5), point
    arrows = {a.axis: a for a in base_axes(pose, intrinsics)}
    assert np.allclose(arrows["x"].plus, projected[1]) and (arrows["x"].plus_key, arrows["x"].minus_key) == ("W", "S")
    assert (arrows["y"].plus_key, arrows["y"].minus_key) == ("A", "D")
    assert (arrows["z"].plus_key, arrows["z"].minus_key) == ("R", "F")


def test_a_camera_that_moves_with_the_arm_gets_no_aid():
    assert sim_camera_pose("wrist") is None
