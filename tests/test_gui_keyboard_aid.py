"""While the keyboard drives, the front camera tile shows which way its keys move the arm (real window, sim rig)."""

import numpy as np

from teleop_app.axes_aid import base_axes, camera_pose
from test_gui_live import console_window, rig_file, settings  # noqa: F401 (fixtures)


def test_the_base_axes_are_drawn_on_the_front_tile_while_the_keyboard_drives(qtbot, console_window, tmp_path):
    console, window = console_window
    live = window.live
    window.resize(1280, 720)
    assert console.active_input == "keyboard"
    qtbot.waitUntil(lambda: "front" in live.keyboard_aids, timeout=15000)
    assert "wrist" not in live.keyboard_aids  # it moves with the arm: its pose is not known, nothing is drawn
    overlay = live.keyboard_aids["front"]
    qtbot.waitUntil(lambda: overlay.visible, timeout=2000)
    front = console.rig.cameras["front"]
    expected = {a.axis: a for a in base_axes(camera_pose(front), front.intrinsics)}
    assert set(overlay.labels) == {"W", "S", "A", "D", "R", "F"}
    w = overlay.labels["W"].pos()
    tip = np.array(expected["x"].plus)
    assert np.linalg.norm(np.array([w.x(), w.y()]) - tip) < 10  # W sits just beyond the +x tip
    for item in overlay.items:
        assert item.isVisible() and item.getViewBox() is live.tiles["front"].box
    window.grab().save(str(tmp_path / "keyboard-aid.png"))

    window.live.input_panel.input_chosen.emit("scripted")
    qtbot.waitUntil(lambda: not overlay.visible, timeout=2000)
    window.live.input_panel.input_chosen.emit("keyboard")
    qtbot.waitUntil(lambda: overlay.visible, timeout=2000)
