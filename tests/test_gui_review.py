"""The Review tab with real episode files and an operator session on the sim rig, driven as a user would (pytest-qt).

Synthetic episodes (``synthetic_episodes.make_episode``) encode each frame's
capture time in its grey level, so what the player shows can be checked
against ``Episode.frame_at`` pixel for pixel.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

import ui.review_tab as review_tab_module
from recordings.format import TRASH_DIR
from recordings.reader import Episode
from synthetic_episodes import make_episode
from teleop_app.events import Event
from teleop_app.modes import Mode
from teleop_app.operator_session import OperatorSession
from ui.bridge import SessionBridge
from ui.episode_table import COLUMNS, DAMAGED_COLOR, SORT_ROLE
from ui.review_tab import ReviewTab
from waiting import wait_for

Key = QtCore.Qt.Key
EPISODES = {  # name: (seconds, task, success)
    "episode_000001.h5": (2.0, "pick up the cube", "true"),
    "episode_000002.h5": (1.0, "stack the blocks", "false"),
    "episode_000003.h5": (1.5, "open the drawer", "unknown"),
}
DAMAGED = "episode_000004.h5"
SUCCESS_TEXT = {"true": "success", "false": "failure", "unknown": "unknown"}


@pytest.fixture
def dataset(tmp_path):
    folder = tmp_path / "demos"
    folder.mkdir()
    for i, (name, (seconds, task, success)) in enumerate(EPISODES.items()):
        make_episode(folder / name, seconds=seconds, task=task, success=success, seed=i, depth=(i == 1))
    (folder / DAMAGED).write_bytes(b"\x00garbage" * 500)
    return folder


@pytest.fixture
def console(sim_rig, dataset):
    session = OperatorSession(sim_rig, dataset)
    yield session
    session.close()


@pytest.fixture
def tab(qtbot, console):
    widget = ReviewTab(SessionBridge(console))
    qtbot.addWidget(widget)
    widget.resize(1400, 860)
    widget.show()
    qtbot.waitExposed(widget)
    widget.activateWindow()
    qtbot.waitUntil(widget.isActiveWindow)
    qtbot.waitUntil(lambda: not widget.listing)
    yield widget
    widget.shutdown()


def cell(tab, name, column, role=QtCore.Qt.ItemDataRole.DisplayRole):
    model = tab.table.source_model
    row = model.row_of(tab.session.dataset_dir / name)
    assert row is not None, f"{name} is not listed"
    return model.data(model.index(row, COLUMNS.index(column)), role)


def column_in_view_order(tab, column, role=QtCore.Qt.ItemDataRole.DisplayRole):
    proxy = tab.table.proxy
    return [proxy.data(proxy.index(r, COLUMNS.index(column)), role) for r in range(proxy.rowCount())]


def select(qtbot, tab, name):
    path = tab.session.dataset_dir / name
    assert tab.table.select_path(path)
    qtbot.waitUntil(lambda: tab.loaded is not None and tab.loaded.path == path)
    tab.table.setFocus()
    return path


def wait_frames(qtbot, tab):
    """Until the frames on screen are those of the cursor time."""
    qtbot.waitUntil(lambda: tab.player.shown_t == tab.player.cursor)


def assert_shows_frame_at(tab, path, t):
    with Episode.open(path) as ep:
        for cam in ep.camera_names:
            tile = tab.player.tiles[cam]
            got = ep.frame_at(cam, t, trimmed=False)
            if got is None:  # before the camera's first frame
                assert tile.shown_seq is None and tile.caption.text() == "no frame yet at this time"
                continue
            index, image = got
            assert tile.shown_seq == index
            np.testing.assert_array_equal(tile.image.image, image)
            assert tile.caption.text().startswith(f"frame {index + 1}/{ep.frame_count(cam, trimmed=False)}")


def press(qtbot, tab, key, modifier=QtCore.Qt.KeyboardModifier.NoModifier):
    qtbot.keyClick(QtWidgets.QApplication.focusWidget() or tab, key, modifier)


# -- the table -----------------------------------------------------------------------------------
def test_lists_episodes_with_their_labels_and_marks_the_damaged_one(qtbot, tab, dataset):
    assert tab.table.proxy.rowCount() == 4
    for name, (seconds, task, success) in EPISODES.items():
        with Episode.open(dataset / name) as ep:
            duration = ep.duration
        assert cell(tab, name, "Task") == task
        assert cell(tab, name, "Success") == SUCCESS_TEXT[success]
        assert cell(tab, name, "Duration") == f"{duration:.1f} s"
        assert cell(tab, name, "Duration", SORT_ROLE) == pytest.approx(duration)
        assert cell(tab, name, "Source") == "human 100%"
        assert cell(tab, name, "Problem") == ""
    assert cell(tab, DAMAGED, "Name") == f"⚠ {DAMAGED}"
    assert cell(tab, DAMAGED, "Name", QtCore.Qt.ItemDataRole.ForegroundRole) == DAMAGED_COLOR
    assert "not an HDF5 file" in cell(tab, DAMAGED, "Problem")
    assert "not an HDF5 file" in cell(tab, DAMAGED, "Task", QtCore.Qt.ItemDataRole.ToolTipRole)
    assert "1 damaged" in tab.count_label.text()

    # numbers sort as numbers: the 4 KB garbage file lies between none of the ~400-700 KB episodes
    header = tab.table.horizontalHeader()
    size_column = COLUMNS.index("Size")
    x = header.sectionViewportPosition(size_column) + header.sectionSize(size_column) // 2
    qtbot.mouseClick(header.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=QtCore.QPoint(x, header.height() // 2))
    assert header.sortIndicatorSection() == size_column
    if header.sortIndicatorOrder() == QtCore.Qt.SortOrder.DescendingOrder:
        qtbot.mouseClick(header.viewport(), QtCore.Qt.MouseButton.LeftButton,
                         pos=QtCore.QPoint(x, header.height() // 2))
    sizes = column_in_view_order(tab, "Size", SORT_ROLE)
    assert sizes == sorted(sizes) and column_in_view_order(tab, "Name")[0] == f"⚠ {DAMAGED}"
    assert column_in_view_order(tab, "Size")[0] == "4 KB"
    tab.table.sortByColumn(COLUMNS.index("Duration"), QtCore.Qt.SortOrder.DescendingOrder)
    assert column_in_view_order(tab, "Duration")[:3] == ["2.0 s", "1.5 s", "1.0 s"]
    tab.table.sortByColumn(COLUMNS.index("Success"), QtCore.Qt.SortOrder.AscendingOrder)
    assert column_in_view_order(tab, "Success")[:3] == ["success", "unknown", "failure"]

    tab.filter_edit.setText("drawer")
    assert column_in_view_order(tab, "Name") == ["episode_000003.h5"]
    tab.filter_edit.clear()
    assert tab.table.proxy.rowCount() == 4


def test_listing_runs_in_a_worker_and_follows_the_console(qtbot, tab, console, dataset, tmp_path, monkeypatch):
    threads = []
    real = review_tab_module.summarize

    def spy(path):
        threads.append(threading.current_thread())
        return real(path)

    monkeypatch.setattr(review_tab_module, "summarize", spy)
    other = tmp_path / "other"
    other.mkdir()
    make_episode(other / "episode_000001.h5", seconds=0.5, task="wave")
    with qtbot.waitSignal(tab.listing_done):
        console.set_dataset_dir(other)  # the console's "dataset" event
    assert column_in_view_order(tab, "Task") == ["wave"]
    assert threads and all(t is not threading.main_thread() for t in threads)
    make_episode(other / "episode_000002.h5", seconds=0.5, task="wave again")
    with qtbot.waitSignal(tab.listing_done):
        tab.bridge.changed.emit(Event.DATASET)  # what the session says after an episode was kept
    assert column_in_view_order(tab, "Task") == ["wave", "wave again"]
    make_episode(other / "episode_000003.h5", seconds=0.5, task="third")
    with qtbot.waitSignal(tab.listing_done):
        qtbot.mouseClick(tab.refresh_button, QtCore.Qt.MouseButton.LeftButton)
    assert tab.table.proxy.rowCount() == 3


def test_selecting_a_damaged_file_says_why(qtbot, tab, dataset):
    assert tab.table.select_path(dataset / DAMAGED)
    qtbot.waitUntil(lambda: "not an HDF5 file" in tab.header.text())
    assert tab.loaded is None and not tab.player.body.isVisible()


# -- the player ----------------------------------------------------------------------------------
def test_scrubbing_shows_the_frame_at_or_before_the_time_on_every_camera(qtbot, tab, dataset):
    path = select(qtbot, tab, "episode_000002.h5")  # front camera and a depth camera
    assert set(tab.player.tiles) == {"front", "depth"}
    with Episode.open(path) as ep:
        full = ep.full_duration
        frame_t = ep.frame_times("front", trimmed=False)
    assert tab.player.slider.maximum() == round(full * 1000)
    wait_frames(qtbot, tab)
    assert_shows_frame_at(tab, path, 0.0)  # the first frame comes 4 ms after the first tick: none yet
    assert tab.player.tiles["front"].shown_seq is None

    # the slider (milliseconds), including times between two frames and exactly on one
    for t in (0.5, float(np.round(frame_t[7], 3)) + 0.001, 0.123, full):
        tab.player.slider.setValue(round(t * 1000))
        assert tab.player.cursor == pytest.approx(t, abs=1e-9)
        wait_frames(qtbot, tab)
        assert_shows_frame_at(tab, path, tab.player.cursor)
        assert f"{tab.player.cursor:.3f} s" in tab.player.time_label.text()

    # dragging the cursor line of a plot
    tab.player.plots[0].cursor.setValue(0.31)
    assert tab.player.cursor == pytest.approx(0.31)
    assert tab.player.plots[1].cursor.value() == pytest.approx(0.31)  # both plots follow
    wait_frames(qtbot, tab)
    assert_shows_frame_at(tab, path, 0.31)

    # clicking on a plot
    vb = tab.player.plots[1].item.getViewBox()
    scene_pos = vb.mapViewToScene(QtCore.QPointF(0.7, 0.5))
    widget_pos = tab.player.canvas.mapFromScene(scene_pos)
    qtbot.mouseClick(tab.player.canvas.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=widget_pos)
    assert tab.player.cursor == pytest.approx(0.7, abs=0.02)
    wait_frames(qtbot, tab)
    assert_shows_frame_at(tab, path, tab.player.cursor)


def test_frame_steps_play_pause_and_speed_from_the_keyboard(qtbot, tab, dataset):
    path = select(qtbot, tab, "episode_000001.h5")
    with Episode.open(path) as ep:
        frame_t = ep.frame_times("front", trimmed=False)
    wait_frames(qtbot, tab)
    press(qtbot, tab, Key.Key_Right)
    assert tab.player.cursor == pytest.approx(frame_t[0])
    press(qtbot, tab, Key.Key_Right)
    assert tab.player.cursor == pytest.approx(frame_t[1])
    wait_frames(qtbot, tab)
    assert tab.player.tiles["front"].shown_seq == 1
    assert_shows_frame_at(tab, path, tab.player.cursor)
    press(qtbot, tab, Key.Key_Left)
    assert tab.player.cursor == pytest.approx(frame_t[0])
    wait_frames(qtbot, tab)
    assert tab.player.tiles["front"].shown_seq == 0

    press(qtbot, tab, Key.Key_BracketRight)
    assert tab.player.speed_box.currentText() == "2×" and tab.player.timeline.speed == 2.0
    press(qtbot, tab, Key.Key_BracketLeft)
    press(qtbot, tab, Key.Key_BracketLeft)
    assert tab.player.timeline.speed == 0.5
    start = tab.player.cursor
    press(qtbot, tab, Key.Key_Space)
    assert tab.player.playing
    qtbot.waitUntil(lambda: tab.player.cursor > start + 0.2)
    qtbot.waitUntil(lambda: tab.player.tiles["front"].shown_seq > 1)  # frames follow the playback
    press(qtbot, tab, Key.Key_Space)
    assert not tab.player.playing
    stopped = tab.player.cursor
    qtbot.wait(100)
    assert tab.player.cursor == stopped
    wait_frames(qtbot, tab)
    assert_shows_frame_at(tab, path, stopped)
    tab.player.speed_box.setCurrentIndex(tab.player.speed_box.count() - 1)  # 4×: play to the end
    qtbot.mouseClick(tab.player.play_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not tab.player.playing, timeout=10_000)
    assert tab.player.cursor == pytest.approx(tab.loaded.full_duration)


# -- edits ---------------------------------------------------------------------------------------
def test_trim_handles_apply_to_the_file_and_the_table(qtbot, tab, dataset, tmp_path):
    path = select(qtbot, tab, "episode_000001.h5")
    full = tab.loaded.full_duration
    plot = tab.player.plots[0]
    assert plot.region.getRegion() == pytest.approx((0.0, full))  # handles start at the kept range
    assert not tab.apply_trim_button.isEnabled()
    plot.region.lines[0].setValue(0.4)  # what dragging the handles does
    plot.region.lines[1].setValue(1.2)
    assert tab.player.trim.start == pytest.approx(0.4) and tab.player.trim.end == pytest.approx(1.2)
    assert tab.player.plots[1].region.getRegion() == pytest.approx((0.4, 1.2))  # the other plot follows
    assert plot.shade_before.getRegion() == pytest.approx((0.0, 0.4))  # trimmed-out parts shaded
    assert plot.shade_after.getRegion() == pytest.approx((1.2, full))
    assert "not applied" in tab.trim_label.text()
    tab.player.seek(1.0)
    wait_frames(qtbot, tab)
    tab.grab().save(str(tmp_path / "review_tab_trim.png"))
    assert (tmp_path / "review_tab_trim.png").stat().st_size > 10_000

    qtbot.mouseClick(tab.apply_trim_button, QtCore.Qt.MouseButton.LeftButton)
    with Episode.open(path) as ep:
        assert ep.kept_range == pytest.approx((0.4, 1.2))
        assert ep.full_duration == pytest.approx(full)  # non-destructive
    assert cell(tab, path.name, "Duration") == "0.8 s ✂"
    assert tab.loaded.path == path and tab.loaded.full_duration == pytest.approx(full)  # still the whole recording
    assert tab.player.cursor == pytest.approx(1.0)
    assert "not applied" not in tab.trim_label.text() and not tab.apply_trim_button.isEnabled()

    # keys I and O set the handles at the cursor
    tab.player.seek(0.6)
    press(qtbot, tab, Key.Key_I)
    tab.player.seek(1.5)
    press(qtbot, tab, Key.Key_O)
    assert (tab.player.trim.start, tab.player.trim.end) == pytest.approx((0.6, 1.5))
    qtbot.mouseClick(tab.apply_trim_button, QtCore.Qt.MouseButton.LeftButton)
    with Episode.open(path) as ep:
        assert ep.kept_range == pytest.approx((0.6, 1.5))
    # the handles come back where the file's kept range is
    select(qtbot, tab, "episode_000003.h5")
    select(qtbot, tab, path.name)
    assert tab.player.plots[0].region.getRegion() == pytest.approx((0.6, 1.5))

    qtbot.mouseClick(tab.clear_trim_button, QtCore.Qt.MouseButton.LeftButton)
    with Episode.open(path) as ep:
        assert ep.kept_range == pytest.approx((0.0, full))
        assert ep.meta["kept_start"] is None and ep.meta["kept_end"] is None
    assert cell(tab, path.name, "Duration") == f"{full:.1f} s"


def test_trim_of_an_unfinished_episode_is_refused_with_a_message(qtbot, tab, dataset):
    crashed = dataset / "episode_000005.h5"
    make_episode(crashed, seconds=0.5, crash=True)
    with qtbot.waitSignal(tab.listing_done):
        tab.refresh()
    assert "not finalized" in cell(tab, crashed.name, "Problem")
    select(qtbot, tab, crashed.name)
    tab.player.set_trim(0.1, 0.3)
    qtbot.mouseClick(tab.apply_trim_button, QtCore.Qt.MouseButton.LeftButton)
    assert "Could not trim episode_000005.h5" in tab.last_message and "repair" in tab.last_message
    assert "Traceback" not in tab.message_label.text()
    assert tab.loaded is not None and tab.loaded.is_open  # still shown


def test_repair_button_restores_an_unfinished_episode_and_explains_what_it_cannot(qtbot, tab, dataset):
    crashed = dataset / "episode_000005.h5"
    make_episode(crashed, seconds=0.5, crash=True)
    os.utime(crashed, (time.time() - 60, time.time() - 60))  # its writer is long gone
    with qtbot.waitSignal(tab.listing_done):
        tab.refresh()
    select(qtbot, tab, "episode_000001.h5")
    assert not tab.repair_button.isEnabled()  # nothing to repair in a complete episode
    select(qtbot, tab, crashed.name)
    assert tab.repair_button.isEnabled() and "not finalized" in cell(tab, crashed.name, "Problem")
    qtbot.mouseClick(tab.repair_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not tab.repairing, timeout=10000)
    assert "episode_000005.h5: repaired" in tab.last_message, tab.last_message
    assert cell(tab, crashed.name, "Problem") == "" and not tab.repair_button.isEnabled()
    assert tab.loaded is not None and tab.loaded.path == crashed and not tab.loaded.issues
    with Episode.open(crashed) as ep:
        assert ep.status == "complete" and "repaired" in ep.meta["notes"]

    assert tab.table.select_path(dataset / DAMAGED)  # random bytes: nothing to recover
    qtbot.waitUntil(lambda: "not an HDF5 file" in tab.header.text())
    qtbot.mouseClick(tab.repair_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not tab.repairing, timeout=10000)
    assert tab.last_message.startswith("Could not repair episode_000004.h5: not an HDF5 file")
    assert "c62828" in tab.message_label.styleSheet() and "Traceback" not in tab.last_message
    assert cell(tab, DAMAGED, "Problem")


def test_relabel_writes_outcome_and_task(qtbot, tab, dataset):
    path = select(qtbot, tab, "episode_000001.h5")
    assert tab.success_box.currentData() == "true" and tab.task_edit.text() == "pick up the cube"
    tab.success_box.setCurrentIndex(tab.success_box.findData("false"))
    tab.task_edit.setText("pick up the red cube")
    qtbot.mouseClick(tab.save_label_button, QtCore.Qt.MouseButton.LeftButton)
    with Episode.open(path) as ep:
        assert (ep.meta["success"], ep.meta["task"]) == ("false", "pick up the red cube")
    assert cell(tab, path.name, "Success") == "failure"
    assert cell(tab, path.name, "Task") == "pick up the red cube"
    tab.success_box.setCurrentIndex(tab.success_box.findData("unknown"))
    tab.task_edit.setFocus()
    qtbot.keyClick(tab.task_edit, Key.Key_Return)
    with Episode.open(path) as ep:
        assert ep.meta["success"] == "unknown"
    assert cell(tab, path.name, "Success") == "unknown"
    assert "pick up the red cube" in tab.header.text()


def test_delete_moves_to_the_trash_and_ctrl_z_restores(qtbot, tab, dataset):
    path = select(qtbot, tab, "episode_000002.h5")
    assert not tab.undo_button.isEnabled()
    press(qtbot, tab, Key.Key_Delete)
    assert not path.exists() and (dataset / TRASH_DIR / path.name).is_file()
    assert tab.table.source_model.row_of(path) is None and tab.table.proxy.rowCount() == 3
    assert tab.undo_button.isEnabled() and "moved to" in tab.last_message
    qtbot.waitUntil(lambda: tab.loaded is not None)  # the next episode is shown
    assert tab.loaded.path != path
    other = tab.loaded.path
    qtbot.mouseClick(tab.delete_button, QtCore.Qt.MouseButton.LeftButton)
    assert not other.exists()

    press(qtbot, tab, Key.Key_Z, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert other.is_file() and tab.loaded.path == other
    qtbot.mouseClick(tab.undo_button, QtCore.Qt.MouseButton.LeftButton)
    assert path.is_file() and not (dataset / TRASH_DIR / path.name).exists()
    assert tab.table.proxy.rowCount() == 4 and tab.loaded.path == path
    assert not tab.undo_button.isEnabled()
    with Episode.open(path) as ep:
        assert ep.meta["task"] == "stack the blocks"


def test_shortcuts_stay_inside_the_tab_and_out_of_text_fields(qtbot, tab, dataset):
    path = select(qtbot, tab, "episode_000001.h5")
    tab.task_edit.setFocus()
    qtbot.keyClick(tab.task_edit, Key.Key_I)
    qtbot.keyClick(tab.task_edit, Key.Key_Delete)
    assert tab.task_edit.text() == "pick up the cubei"
    assert path.exists() and not tab.player.trim.dirty
    other = QtWidgets.QWidget()  # a widget elsewhere (another tab, another window)
    qtbot.addWidget(other)
    other.show()
    other.activateWindow()
    qtbot.waitUntil(other.isActiveWindow)
    qtbot.keyClick(other, Key.Key_Delete)
    assert path.exists()
    assert all(sc.context() == QtCore.Qt.ShortcutContext.WidgetWithChildrenShortcut
               for sc in tab.shortcuts.values())
    keys = dict(tab.help_sections()[0][1])
    assert keys["Space"] == "play / pause" and keys["Ctrl+Z"] == "undo the last delete"


# -- replay --------------------------------------------------------------------------------------
def replaying(tab):
    run = tab.session.running
    return run.replay if run is not None and run.replay is not None else None


def test_replay_button_drives_the_robot_and_stop_holds_it(qtbot, tab, console, sim_rig, dataset):
    console.start()
    path = select(qtbot, tab, "episode_000001.h5")
    t_start = time.monotonic()
    qtbot.mouseClick(tab.replay_button, QtCore.Qt.MouseButton.LeftButton)
    assert replaying(tab) is not None and tab.session.run.driver == path.name, tab.last_message
    assert tab.replay_button.text() == "■ Stop replay" and "replaying episode_000001.h5" in tab.replay_label.text()
    assert sim_rig.modes.mode is Mode.REPLAY
    assert wait_for(lambda: replaying(tab) is not None and replaying(tab).elapsed_s > 0.2), \
        "the control loop never read the replay input (it must read inputs in Mode.REPLAY)"
    sent = [(q, s) for t, q, s in sim_rig.robot.command_log if t > t_start]
    assert any(s == "replay" for _, s in sent)
    moving = [q for q, s in sent if s == "replay"]
    assert np.abs(moving[-1] - moving[0]).max() > 0  # the replay moves the robot (ramping to the episode)

    qtbot.mouseClick(tab.replay_button, QtCore.Qt.MouseButton.LeftButton)  # Stop replay
    assert replaying(tab) is None and sim_rig.modes.mode is Mode.IDLE
    qtbot.waitUntil(lambda: tab.replay_button.text() == "▶ Replay on robot")
    assert "stopped" in tab.last_message

    qtbot.mouseClick(tab.replay_button, QtCore.Qt.MouseButton.LeftButton)
    assert wait_for(lambda: replaying(tab) is not None and replaying(tab).elapsed_s > 0.2)
    tab.session.stop()  # the STOP button / Esc of the window
    t_kill = sim_rig.kill.t_trigger
    assert wait_for(lambda: any(t > t_kill and s == "kill" for t, _, s in sim_rig.robot.command_log))
    log = [s for t, _, s in sim_rig.robot.command_log if t > t_kill]
    assert log.index("kill") <= 1 and set(log[log.index("kill"):]) == {"kill"}
    qtbot.waitUntil(lambda: tab.replay_button.text() == "▶ Replay on robot")
    assert "stopped (STOP pressed)" in tab.last_message
    assert "re-arm" in tab.replay_label.text()
    qtbot.mouseClick(tab.replay_button, QtCore.Qt.MouseButton.LeftButton)
    assert "re-arm" in tab.last_message and replaying(tab) is None


def test_replay_needs_a_running_robot(qtbot, tab, dataset):
    select(qtbot, tab, "episode_000001.h5")
    qtbot.mouseClick(tab.replay_button, QtCore.Qt.MouseButton.LeftButton)
    assert tab.last_message == "Cannot replay: the robot is not running: start the rig first"
    assert tab.replay_button.text() == "▶ Replay on robot"
