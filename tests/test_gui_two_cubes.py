"""The Live tab on the two-cube scene: a pick of the cube the task did not name is shown as such, then ends the episode."""

from __future__ import annotations

from PySide6 import QtCore

from recordings.reader import Episode
from teleop_app.runs import EndReason
from ui.app import open_console

WRONG_PICKER = """
name = "two_cubes_wrong_picker"
rate_hz = 100.0
[robot]
type = "sim_so101"
cubes = 2
[[inputs]]
name = "scripted"
type = "scripted"
cube = "blue"
"""
LMB = QtCore.Qt.MouseButton.LeftButton


def test_the_live_tab_says_the_wrong_cube_was_lifted(qtbot, tmp_path):
    rig_file = tmp_path / "rig.toml"
    rig_file.write_text(WRONG_PICKER)
    settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    session, window = open_console(str(rig_file), str(tmp_path / "data"), settings=settings)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    try:
        panel = window.live.recording
        session.set_task("pick up the red cube")  # the expert of this rig lifts the blue one regardless
        window.live.refresh()
        assert panel.keep_on_success.isChecked()  # the scripted expert: episodes end themselves
        qtbot.mouseClick(panel.buttons["start"], LMB)
        assert session.recording
        qtbot.waitUntil(lambda: "WRONG OBJECT" in panel.success_light.text(), timeout=60000)
        assert "lifted the blue cube, the task named the red one" in panel.success_light.text()
        assert "SUCCESS" not in panel.success_light.text()
        qtbot.waitUntil(lambda: not session.recording, timeout=10000)  # held: the episode ends as a failure
        result = session.last_result
        assert result.reason is EndReason.WRONG_OBJECT
        with Episode.open(result.path) as ep:
            assert ep.meta["success"] == "false" and ep.meta["wrong_object"] == "true"
    finally:
        window.close()
        session.close()
