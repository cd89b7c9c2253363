"""The Live tab shows what the sim reports about the task, and a scripted-expert episode ends itself as a success."""

from PySide6 import QtCore

from recordings.reader import Episode
from teleop_app.runs import EndReason
from test_gui_live import console_window, rig_file, settings  # noqa: F401 (fixtures)

LMB = QtCore.Qt.MouseButton.LeftButton


def test_a_scripted_episode_ends_itself_kept_as_a_success(qtbot, console_window, tmp_path):
    console, window = console_window
    panel = window.live.recording
    window.resize(1280, 720)
    console.set_task("pick up the cube")
    window.live.refresh()
    assert console.active_input == "keyboard"  # a human: the operator keeps episodes by hand
    assert panel.keep_on_success.isVisible() and not panel.keep_on_success.isChecked()
    assert console.episode_rules.after_success_s is None
    assert panel.success_light.isVisible() and "SUCCESS" not in panel.success_light.text()

    window.live.input_panel.input_chosen.emit("scripted")
    window.live.refresh()
    assert panel.keep_on_success.isChecked() and console.episode_rules.after_success_s == 1.0
    qtbot.mouseClick(panel.buttons["start"], LMB)
    path = console.recorder.path
    assert console.recording and path is not None
    qtbot.waitUntil(lambda: console.rig.robot.success(), timeout=60000)  # the expert lifts the cube
    qtbot.waitUntil(lambda: "SUCCESS" in panel.success_light.text(), timeout=2000)
    assert panel.success_light.isVisible()
    window.grab().save(str(tmp_path / "success.png"))
    qtbot.waitUntil(lambda: not console.recording, timeout=5000)  # no key pressed: it ended itself
    result = console.last_result
    assert result.reason is EndReason.SUCCESS and result.path == path
    with Episode.open(path) as ep:
        assert ep.meta["success"] == "true"

    # the operator's choice is per kind of input: off for the expert, the human's default is kept
    qtbot.waitUntil(panel.keep_on_success.isEnabled, timeout=2000)  # an episode keeps the rule it started with
    qtbot.mouseClick(panel.keep_on_success, LMB, pos=QtCore.QPoint(8, panel.keep_on_success.height() // 2))
    assert console.episode_rules.after_success_s is None
    window.live.input_panel.input_chosen.emit("keyboard")
    window.live.refresh()
    assert not panel.keep_on_success.isChecked()
    window.live.input_panel.input_chosen.emit("scripted")
    window.live.refresh()
    assert not panel.keep_on_success.isChecked() and console.episode_rules.after_success_s is None


def test_the_keep_on_success_choice_is_remembered_per_input_kind(qtbot, rig_file, settings, tmp_path):
    from ui.app import open_console

    console, window = open_console(str(rig_file), str(tmp_path / "data"), settings=settings)
    qtbot.addWidget(window)
    window.show()
    window.live.recording.keep_on_success_chosen.emit(True)  # keyboard (a person): on
    window.live.input_panel.input_chosen.emit("scripted")
    window.live.recording.keep_on_success_chosen.emit(False)  # the expert: off
    window.close()
    console.close()

    console, window = open_console(str(rig_file), None, settings=settings)
    qtbot.addWidget(window)
    try:
        assert console.active_input == "scripted" and console.episode_rules.after_success_s is None
        window.live.input_panel.input_chosen.emit("keyboard")
        assert console.episode_rules.after_success_s == 1.0
    finally:
        window.close()
        console.close()
