"""The operator console's Live tab on the real sim rig (cameras rendering), driven by key events as a user would."""

import time

import numpy as np
import pytest
from PySide6 import QtCore, QtTest

from drivers.keyboard import MOTION_KEYS
from recordings.reader import Episode
from ui.app import open_console
from ui.recording_panel import EPISODE_KEYS
from small_rig import small_rig_toml  # tests/ is on sys.path

SMALL_RIG = small_rig_toml("sim_gui_test", ("keyboard", "scripted"))
TASK = "put the purple cube on its side"
Key = QtCore.Qt.Key


@pytest.fixture
def rig_file(tmp_path):
    path = tmp_path / "rig.toml"
    path.write_text(SMALL_RIG)
    return path


@pytest.fixture
def settings(tmp_path):
    return QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)


@pytest.fixture
def console_window(qtbot, rig_file, settings, tmp_path):
    console, window = open_console(str(rig_file), str(tmp_path / "data"), operator="tester", settings=settings)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    yield console, window
    window.close()
    console.close()


def key(window, k, text="", press=True, release=True):
    handle = window.windowHandle()
    if press:
        QtTest.QTest.keyPress(handle, k, QtCore.Qt.KeyboardModifier.NoModifier)
    if release:
        QtTest.QTest.keyRelease(handle, k, QtCore.Qt.KeyboardModifier.NoModifier)


def test_window_shows_frames_plots_and_status(qtbot, console_window, tmp_path):
    console, window = console_window
    tiles = window.live.tiles
    assert set(tiles) == {"front", "wrist"}
    qtbot.waitUntil(lambda: all(t.frames_shown >= 3 for t in tiles.values()), timeout=15000)
    for name, tile in tiles.items():
        image = tile.image.image
        assert image.shape == (120, 160, 3) and image.std() > 5  # a rendered scene, not a blank buffer
        assert "fps" in tile.caption.text() and "160×120" in tile.caption.text()
    qtbot.waitUntil(lambda: window.live.plots.updates >= 5, timeout=5000)
    x, y = window.live.plots.curve_data(1)
    assert x.size > 10 and x.max() <= 0 and np.all(np.isfinite(y))
    window.refresh_status()
    assert "Hz" in window.status_labels["loop"].text() and "free" in window.status_labels["disk"].text()
    window.grab().save(str(tmp_path / "live.png"))


def test_keys_record_keep_and_discard_episodes(qtbot, console_window, tmp_path):
    console, window = console_window
    panel = window.live.recording
    panel.task.setFocus()
    panel.task.clear()
    QtTest.QTest.keyClicks(panel.task, TASK)
    key(window, Key.Key_Return)  # finishes typing: the field lets go of the keys
    assert not panel.task.hasFocus() and console.task == TASK
    folder = tmp_path / "data"

    key(window, Key.Key_Return)  # start
    qtbot.waitUntil(lambda: console.elapsed_s > 0.8 and console.recorder.counts.get("front", 0) >= 2, timeout=10000)
    window.grab().save(str(tmp_path / "recording.png"))
    key(window, Key.Key_G)  # keep: success
    assert not console.recording
    key(window, Key.Key_Return)
    qtbot.waitUntil(lambda: console.elapsed_s > 0.8 and console.recorder.counts.get("front", 0) >= 2, timeout=10000)
    key(window, Key.Key_B)  # keep: failure
    key(window, Key.Key_Return)
    qtbot.waitUntil(lambda: console.elapsed_s > 0.8 and console.recorder.counts.get("front", 0) >= 2, timeout=10000)
    key(window, Key.Key_Backspace)  # discard
    assert not console.recording

    files = sorted(folder.glob("episode_*.h5"))
    assert [f.name for f in files] == ["episode_000001.h5", "episode_000002.h5"]  # the third was discarded
    labels = []
    for f in files:
        with Episode.open(f) as ep:
            assert ep.meta["task"] == TASK and ep.meta["operator"] == "tester"
            assert ep.tick_count() > 20 and ep.frame_count("front") >= 2
            labels.append(ep.meta["success"])
    assert labels == ["true", "false"]
    window.live.refresh()
    assert "2 episodes" in panel.counter.text()
    assert "discarded" in console.message


def test_keyboard_teleop_moves_the_arm(qtbot, console_window):
    console, window = console_window
    assert console.active_input == "keyboard" and window.teleop_box.isChecked()
    start = console.rig.robot.read().ee_pos.copy()
    key(window, Key.Key_W, release=False)  # hold W: forward (+x)
    qtbot.wait(800)
    key(window, Key.Key_W, press=False)
    qtbot.wait(200)
    moved = console.rig.robot.read().ee_pos - start
    assert moved[0] > 0.02 and abs(moved[1]) < 0.01
    after = console.rig.robot.read().ee_pos.copy()
    qtbot.wait(300)
    assert np.linalg.norm(console.rig.robot.read().ee_pos - after) < 0.003  # released: it stops


def test_keys_do_not_drive_while_typing(qtbot, console_window):
    console, window = console_window
    panel = window.live.recording
    panel.task.setFocus()
    start = console.rig.robot.read().ee_pos.copy()
    QtTest.QTest.keyClicks(panel.task, "wwww")
    qtbot.wait(300)
    assert "wwww" in panel.task.text()
    assert np.linalg.norm(console.rig.robot.read().ee_pos - start) < 0.003


def test_escape_stops_on_the_next_tick_and_rearm_resumes(qtbot, console_window, tmp_path):
    console, window = console_window
    rig = console.rig
    console.set_active_input("scripted")  # the arm is moving when STOP comes
    qtbot.wait(1500)
    t_press = time.monotonic()
    key(window, Key.Key_Escape)
    assert rig.kill.latched and rig.kill.reason == "STOP pressed"
    qtbot.wait(300)
    after = [(t, q, s) for t, q, s in rig.robot.command_log if t >= t_press]
    first = next(i for i, (_, _, s) in enumerate(after) if s == "kill")
    assert first <= 1  # the hold is the next command (a send already under way may be logged just after the press)
    held = after[first:]
    assert all(s == "kill" for _, _, s in held)
    assert all(np.allclose(q, held[0][1]) for _, q, _ in held)  # and it stays held
    assert "STOPPED" in window.safety_label.text() and window.rearm_button.isEnabled()
    window.live.refresh()  # what a key does is what the panel shows: Enter and N do nothing while STOPPED
    panel = window.live.recording
    assert not panel.buttons["start"].isEnabled() and not panel.buttons["reset"].isEnabled()
    assert "Re-arm" in panel.message.text()
    window.grab().save(str(tmp_path / "stopped.png"))

    # Esc is STOP even while typing in a text field
    rig.kill.rearm()
    window.live.recording.task.setFocus()
    key(window, Key.Key_Escape)
    assert rig.kill.latched

    t_rearm = time.monotonic()
    QtTest.QTest.keyClick(window.windowHandle(), Key.Key_R, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert not rig.kill.latched and "ARMED" in window.safety_label.text()
    window.live.refresh()
    assert panel.buttons["start"].isEnabled() and panel.buttons["reset"].isEnabled()
    qtbot.wait(300)
    assert any(s == "scripted" for t, _, s in rig.robot.command_log if t > t_rearm)  # the expert drives again


def test_help_lists_every_shortcut(qtbot, console_window, tmp_path):
    console, window = console_window
    key(window, Key.Key_F1)
    assert window.help.isVisible()
    text = window.help.text.text()
    for _, _, printed in EPISODE_KEYS.values():
        assert f"<b>{printed}</b>" in text
    for k in MOTION_KEYS:
        assert f"<b>{k.upper()}</b>" in text
    for k in ("Esc", "Ctrl+R", "F1", "Space", "T"):
        assert f"<b>{k}</b>" in text
    window.grab().save(str(tmp_path / "help.png"))
    key(window, Key.Key_F1)
    assert not window.help.isVisible()


def test_settings_are_remembered(qtbot, rig_file, settings, tmp_path):
    console, window = open_console(str(rig_file), str(tmp_path / "first"), settings=settings)
    qtbot.addWidget(window)
    window.show()
    console.set_task("stack the cubes")
    window._input_chosen("scripted")
    window.resize(790, 720)  # the offscreen screen is 800 px wide
    window.tabs.setCurrentIndex(1)
    size = (window.width(), window.height())
    tab = window.policy_tab
    tab.spec_edit.setText("ws://gpu-box:8000")
    tab.strategy.setCurrentIndex(tab.strategy.findData("ensemble"))
    tab.k_spin.setValue(0.25)
    tab.blend.setCurrentIndex(tab.blend.findData("weighted"))
    tab.takeover_input.setCurrentIndex(tab.takeover_input.findData(""))
    tab.auto_hand_back.setChecked(False)
    tab.record_box.setChecked(True)
    window.compare.set_sets(tmp_path / "demos", tmp_path / "rollouts")
    window.close()
    console.close()

    console, window = open_console(str(rig_file), None, settings=settings)
    qtbot.addWidget(window)
    try:
        assert console.task == "stack the cubes"
        assert console.dataset_dir == tmp_path / "first"
        assert console.active_input == "scripted"
        assert window.tabs.currentIndex() == 1 and (window.width(), window.height()) == size
        tab = window.policy_tab
        assert tab.spec_edit.text() == "ws://gpu-box:8000" and tab.server_box.isVisibleTo(tab)
        options = tab.run_options()
        assert options.strategy.name == "ensemble" and options.strategy.k == 0.25
        assert options.strategy.blend == "weighted" and options.takeover is None and options.record
        assert tab.strategy_pages.currentIndex() == 1 and not tab.release_spin.isEnabled()
        assert window.compare.human_edit.text() == str(tmp_path / "demos")
        assert window.compare.policy_edit.text() == str(tmp_path / "rollouts") and window.compare.mode == "sets"
    finally:
        window.close()
        console.close()


def test_a_stalled_loop_is_a_red_line_not_a_traceback(qtbot, console_window):
    """An action that needs the loop (choosing the input) while a driver blocks it says so in the window."""
    import threading

    console, window = console_window
    release = threading.Event()
    console.rig.loop.call_soon(lambda: release.wait(5.0))  # a driver call that hangs on the loop thread
    try:
        window.live.input_panel.input_chosen.emit("scripted")
        text = window.message_label.text()
        assert "the control loop did not answer within 2 s: its current tick began" in text and "#d33" in text
        assert "test_gui_live.py" in text  # where the loop thread is stuck
        assert "&lt;lambda&gt;" in text  # escaped: Qt would take "<lambda>" for a tag and drop it
        assert window.message_label.toolTip().startswith("the control loop did not answer")  # whole, if cut
    finally:
        release.set()
    window.live.input_panel.input_chosen.emit("scripted")  # the loop is free again: the choice takes
    assert console.rig.loop.active_input == "scripted"


def test_a_replay_from_the_review_tab_keeps_the_live_tab_updating(qtbot, console_window, tmp_path, capfd):
    """The replay input comes and goes among the loop's inputs: the Live tab follows, and says who drives."""
    from synthetic_episodes import make_episode

    console, window = console_window
    qtbot.waitUntil(lambda: all(t.frames_shown >= 1 for t in window.live.tiles.values()), timeout=15000)
    path = console.dataset_dir / "episode_000001.h5"
    console.dataset_dir.mkdir(parents=True, exist_ok=True)
    make_episode(path, seconds=2.0)
    window.tabs.setCurrentWidget(window.review)
    qtbot.waitUntil(lambda: window.review.load_episode(path), timeout=5000)
    window.review.toggle_replay()
    assert console.running is not None and console.running.replay is not None, window.review.last_message
    window.tabs.setCurrentWidget(window.live)
    updates = window.live.plots.updates
    frames = {name: tile.frames_shown for name, tile in window.live.tiles.items()}
    qtbot.waitUntil(lambda: window.live.plots.updates >= updates + 15, timeout=5000)
    qtbot.waitUntil(lambda: all(t.frames_shown > frames[n] for n, t in window.live.tiles.items()), timeout=5000)
    assert "Replaying episode_000001.h5" in window.live.recording.message.text()
    assert "replayed" in window.live.input_panel.hint.text()
    assert "replayed" in window.safety_label.text()
    qtbot.waitUntil(lambda: console.running is None, timeout=20000)  # played to its end
    err = capfd.readouterr().err
    assert "Traceback" not in err and "KeyError" not in err, err
