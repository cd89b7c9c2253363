"""The Review tab as a new user meets it in the window: sizes at 1280×720 and 1600×900, the timeline slider,
the export dialog (pytest-qt, real episode files, real exporters, the real window)."""

from __future__ import annotations

import json
import os
import threading
import time

import h5py
import pytest
from PySide6 import QtCore, QtWidgets

import ui.export_dialog as export_dialog_module
import ui.review_tab as review_tab_module
from recordings.reader import Episode
from synthetic_episodes import make_episode
from teleop_app.operator_session import OperatorSession
from ui.episode_table import COLUMNS, fit_widths
from ui.main_window import MainWindow
from ui.review_state import format_size, format_total, problem_text

Left = QtCore.Qt.MouseButton.LeftButton
EPISODES = {  # name: (seconds, task, success)
    "episode_000001.h5": (2.0, "pick up the cube and put it in the bowl on the left", "true"),
    "episode_000002.h5": (1.0, "stack the blocks", "false"),
    "episode_000003.h5": (1.5, "open the drawer", "unknown"),
}
DAMAGED = "episode_000004.h5"
MIN_TILE_HEIGHT = {(1280, 720): 170, (1600, 900): 260}  # px of camera image (4:3) at each window size


@pytest.fixture
def dataset(tmp_path):
    folder = tmp_path / "demos"
    folder.mkdir()
    for i, (name, (seconds, task, success)) in enumerate(EPISODES.items()):
        make_episode(folder / name, seconds=seconds, task=task, success=success, seed=i, depth=(i == 1))
    (folder / DAMAGED).write_bytes(b"\x00garbage" * 500)  # a long reason in the Problem column
    return folder


@pytest.fixture
def open_window(qtbot, sim_rig, dataset, tmp_path):
    """Opens the window on ``dataset`` at 1280×720 as the app does (Live tab first)."""
    opened = []

    def open_() -> MainWindow:
        session = OperatorSession(sim_rig, dataset)
        settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)
        win = MainWindow(session, settings)
        opened.append((win, session))
        qtbot.addWidget(win)
        win.resize(1280, 720)
        win.show()
        qtbot.waitExposed(win)
        qtbot.waitUntil(lambda: not win.review.listing)
        return win

    yield open_
    for win, session in opened:
        win.close()
        session.close()


@pytest.fixture
def window(open_window):
    win = open_window()
    win.tabs.setCurrentWidget(win.review)
    return win


def select(qtbot, tab, name):
    path = tab.session.dataset_dir / name
    assert tab.table.select_path(path)
    qtbot.waitUntil(lambda: tab.loaded is not None and tab.loaded.path == path)
    return path


def inside(widget, window, size) -> bool:
    """The widget is shown and wholly inside the window and the screen of ``size`` it was fitted to."""
    top_left = widget.mapTo(window, QtCore.QPoint(0, 0))
    rect = QtCore.QRect(top_left, widget.size())
    screen = QtCore.QRect(0, 0, min(window.width(), size[0]), min(window.height(), size[1]))
    return widget.isVisible() and screen.contains(rect)


# -- sizes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(1280, 720), (1600, 900)])
def test_every_column_and_main_action_is_on_screen_and_the_tiles_are_a_useful_size(qtbot, window, size):
    window.resize(*size)
    tab = window.review
    select(qtbot, tab, "episode_000001.h5")
    qtbot.waitUntil(lambda: tab.player.shown_t == tab.player.cursor)
    qtbot.wait(50)  # layouts settle
    assert window.width() == size[0]  # (the height may be a little more: the Live tab sets the window's minimum)

    table = tab.table
    header = table.horizontalHeader()
    for i, name in enumerate(COLUMNS):
        right = header.sectionViewportPosition(i) + header.sectionSize(i)
        assert header.sectionViewportPosition(i) >= 0 and right <= table.viewport().width(), name
        assert header.sectionSize(i) >= 40, name
    model = table.source_model
    row = model.row_of(tab.session.dataset_dir / DAMAGED)
    problem = model.index(row, COLUMNS.index("Problem"))
    assert "not an HDF5 file" in model.data(problem, QtCore.Qt.ItemDataRole.ToolTipRole)  # elided: full text here
    task = model.index(model.row_of(tab.session.dataset_dir / "episode_000001.h5"), COLUMNS.index("Task"))
    assert model.data(task, QtCore.Qt.ItemDataRole.ToolTipRole) == EPISODES["episode_000001.h5"][1]
    name_width = table.fontMetrics().horizontalAdvance("episode_000001.h5")
    assert header.sectionSize(COLUMNS.index("Name")) > name_width  # the name is never elided at these sizes

    player = tab.player
    for button in (player.play_button, player.back_button, player.forward_button, player.slider, tab.in_button,
                   tab.out_button, tab.apply_trim_button, tab.clear_trim_button, tab.success_box,
                   tab.save_label_button, tab.task_edit, tab.delete_button, tab.undo_button, tab.replay_button,
                   tab.repair_button, tab.export_button, tab.refresh_button, tab.repair_all_button):
        assert inside(button, window, size), button.text() if hasattr(button, "text") else button
    qtbot.mouseClick(tab.dismiss_repair_button, Left)  # the bar about the damaged file takes a little height
    qtbot.wait(50)
    for tile in player.tiles.values():
        assert inside(tile.view, window, size)
        assert tile.view.height() >= MIN_TILE_HEIGHT[size] and tile.view.width() >= 4 * MIN_TILE_HEIGHT[size] // 3


def test_columns_give_way_long_text_first():
    # Name, Task, Success, Duration, Source, Size, Flags, Problem
    wanted = [130, 300, 70, 70, 110, 60, 60, 400]
    fitted = fit_widths(wanted, 600, flexible=(1, 4, 6, 7), last=(0,))
    assert sum(fitted) <= 600
    assert fitted[0] == 130 and fitted[2:4] == [70, 70] and fitted[5] == 60  # short columns keep their text
    assert fitted[7] == fitted[1] < 300  # the widest long-text columns shrank alike
    assert fit_widths([100, 100], 500) == [100, 400]  # spare room goes to the last column


# -- the slider ----------------------------------------------------------------------------------
def test_clicking_the_slider_seeks_to_the_click(qtbot, window):
    tab = window.review
    select(qtbot, tab, "episode_000001.h5")
    slider = tab.player.slider
    full = tab.loaded.full_duration
    option = QtWidgets.QStyleOptionSlider()
    slider.initStyleOption(option)
    groove = slider.style().subControlRect(QtWidgets.QStyle.ComplexControl.CC_Slider, option,
                                           QtWidgets.QStyle.SubControl.SC_SliderGroove, slider)
    handle = slider.style().subControlRect(QtWidgets.QStyle.ComplexControl.CC_Slider, option,
                                           QtWidgets.QStyle.SubControl.SC_SliderHandle, slider)
    span = groove.width() - handle.width()
    x = groove.x() + handle.width() // 2 + round(0.75 * span)
    qtbot.mouseClick(slider, Left, pos=QtCore.QPoint(x, slider.height() // 2))
    assert tab.player.cursor == pytest.approx(0.75 * full, abs=0.02 * full)  # not one page (1/20) further
    qtbot.waitUntil(lambda: tab.player.shown_t == tab.player.cursor)
    x = groove.x() + handle.width() // 2 + round(0.2 * span)
    qtbot.mouseClick(slider, Left, pos=QtCore.QPoint(x, slider.height() // 2))
    assert tab.player.cursor == pytest.approx(0.2 * full, abs=0.02 * full)


# -- export --------------------------------------------------------------------------------------
def open_dialog(qtbot, tab):
    qtbot.mouseClick(tab.export_button, Left)
    dialog = tab.export_dialog
    assert dialog is not None and dialog.isVisible()
    return dialog


def ctrl_click_row(qtbot, table, name):
    for r in range(table.proxy.rowCount()):
        if table.path_at(r).name == name:
            rect = table.visualRect(table.proxy.index(r, 0))
            qtbot.mouseClick(table.viewport(), Left, QtCore.Qt.KeyboardModifier.ControlModifier, rect.center())
            return
    raise AssertionError(f"{name} is not listed")


def test_export_a_selection_to_a_typed_new_folder_at_the_chosen_fps(qtbot, window, dataset, tmp_path, monkeypatch):
    threads = []
    real = export_dialog_module.export_lerobot

    def spying(*args, **kwargs):
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(export_dialog_module, "export_lerobot", spying)
    tab = window.review
    select(qtbot, tab, "episode_000001.h5")
    ctrl_click_row(qtbot, tab.table, "episode_000003.h5")  # a success and an unlabelled one, not the failure
    assert [p.name for p in tab.table.selected_paths()] == ["episode_000001.h5", "episode_000003.h5"]

    dialog = open_dialog(qtbot, tab)
    assert dialog.fps_box.value() == 30 and dialog.codec_box.currentData() == "h264"
    assert dialog.which_buttons["selected"].isChecked()
    assert "2 episode(s) will be exported" in dialog.count_label.text()
    ctrl_click_row(qtbot, tab.table, "episode_000002.h5")  # the dialog follows the table while it is open
    assert "3 episode(s) will be exported" in dialog.count_label.text()
    ctrl_click_row(qtbot, tab.table, "episode_000002.h5")
    assert "2 episode(s) will be exported" in dialog.count_label.text()
    out = tmp_path / "exports" / "two of three"  # neither folder exists
    dialog.folder_edit.setText(str(out))
    assert "will be created" in dialog.folder_note.text() and dialog.export_button.isEnabled()
    dialog.fps_box.setValue(10)
    with qtbot.waitSignal(dialog.finished_export, timeout=120_000) as done:
        qtbot.mouseClick(dialog.export_button, Left)
        assert dialog.running and dialog.cancel_button.isVisible() and not dialog.close_button.isEnabled()
    report = done.args[0]
    assert report is not None and [p.name for p in report.exported] == ["episode_000001.h5", "episode_000003.h5"]
    assert threads and threads[0] is not threading.main_thread()
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 2 and info["fps"] == 10
    for path, frames in zip(report.exported, report.frames):
        with Episode.open(path) as ep:
            assert frames == pytest.approx(ep.duration * 10, abs=1.5)  # 10 rows a second, not the control rate
    assert dialog.progress.value() == dialog.progress.maximum() == 2
    assert dialog.progress.text().startswith("2/2 episodes done")
    assert "exported 2 episode(s)" in dialog.last_message and "exported 2 episode(s)" in tab.last_message
    assert not dialog.running and dialog.close_button.isEnabled()

    # the same folder again is refused before anything starts; ALOHA, raw images, successes only
    dialog.format_box.setCurrentIndex(dialog.format_box.findData("aloha"))
    assert dialog.fps_box.value() == 50 and not dialog.codec_box.isEnabled()
    dialog.folder_edit.setText(str(out))
    assert "not empty" in dialog.folder_note.text() and not dialog.export_button.isEnabled()
    dialog.folder_edit.setText(str(tmp_path / "aloha"))
    dialog.compress_box.setCurrentIndex(dialog.compress_box.findData(False))
    dialog.which_buttons["successes"].setChecked(True)
    assert "1 episode(s) will be exported" in dialog.count_label.text()
    with qtbot.waitSignal(dialog.finished_export, timeout=120_000) as done:
        qtbot.mouseClick(dialog.export_button, Left)
    assert [p.name for p in done.args[0].exported] == ["episode_000001.h5"]
    with h5py.File(tmp_path / "aloha" / "episode_0.hdf5") as f:
        assert f["observations/images/front"].ndim == 4 and not f.attrs["compress"]


def test_cancel_stops_the_export_and_leaves_nothing(qtbot, window, dataset, tmp_path, monkeypatch):
    real = export_dialog_module.export_lerobot
    mid_episode = threading.Event()

    def holding(*args, progress, cancel, **kwargs):
        def report(done, total, message):
            progress(done, total, message)
            if "frames" in message:  # an episode is being encoded: hold until the user has clicked Cancel
                mid_episode.set()
                cancel.wait(30)
        return real(*args, progress=report, cancel=cancel, **kwargs)

    monkeypatch.setattr(export_dialog_module, "export_lerobot", holding)
    tab = window.review
    dialog = open_dialog(qtbot, tab)
    out = tmp_path / "cancelled"
    dialog.folder_edit.setText(str(out))
    dialog.which_buttons["all"].setChecked(True)
    with qtbot.waitSignal(dialog.finished_export, timeout=120_000) as done:
        qtbot.mouseClick(dialog.export_button, Left)
        qtbot.waitUntil(mid_episode.is_set, timeout=60_000)
        qtbot.waitUntil(lambda: "frames" in dialog.progress.text())
        qtbot.mouseClick(dialog.cancel_button, Left)
    assert done.args[0] is None
    assert dialog.last_message == f"Export cancelled: nothing was written to {out}"
    assert tab.last_message == dialog.last_message
    assert not out.exists() and list(tmp_path.glob(".cancelled*")) == []  # no staging folder either
    assert not dialog.running and dialog.export_button.isVisible() and dialog.export_button.isEnabled()


# -- repair at start-up --------------------------------------------------------------------------
def test_start_up_says_once_which_files_need_repair_and_repairs_them(qtbot, open_window, dataset):
    crashed = dataset / "episode_000005.h5"
    make_episode(crashed, seconds=0.5, crash=True)  # a recording its writer never finished
    os.utime(crashed, (time.time() - 60, time.time() - 60))  # ... long ago
    window = open_window()
    tab = window.review
    assert window.tabs.currentWidget() is window.live
    status = window.message_label.text()
    assert "2 file(s)" in status and "need repair" in status  # seen on the Live tab at start-up
    window.tabs.setCurrentWidget(tab)
    assert tab.repair_bar.isVisible() and inside(tab.repair_all_button, window, (1280, 720))
    text = tab.repair_bar_label.text()
    assert "2 file(s) in this dataset need repair" in text
    assert "episode_000005.h5</b>: not finalized (recording), left by a crash" in text, text
    assert "episode_000004.h5</b>: not an HDF5 file" in text
    assert tab.repair_all_button.text() == "Repair 2 file(s)"

    qtbot.mouseClick(tab.repair_all_button, Left)
    assert tab.repairing and not tab.repair_all_button.isEnabled()
    qtbot.waitUntil(lambda: not tab.repairing, timeout=30_000)
    with Episode.open(crashed) as ep:
        assert ep.status == "complete" and "repaired" in ep.meta["notes"]
    assert tab.last_message.startswith("Repaired 1 of 2 file(s); could not repair episode_000004.h5: not an HDF5")
    model = tab.table.source_model
    assert problem_text(model.summary(model.row_of(crashed))) == ""
    assert tab.repair_bar.isVisible() and "1 file(s) in this dataset need repair" in tab.repair_bar_label.text()
    assert "episode_000005" not in tab.repair_bar_label.text()

    qtbot.mouseClick(tab.dismiss_repair_button, Left)
    assert not tab.repair_bar.isVisible()
    with qtbot.waitSignal(tab.listing_done):
        tab.refresh()
    assert not tab.repair_bar.isVisible()  # said once for this folder in this session


def test_the_repair_bar_follows_the_dataset_folder(qtbot, open_window, dataset, tmp_path):
    window = open_window()
    tab = window.review
    window.tabs.setCurrentWidget(tab)
    assert tab.repair_bar.isVisible() and "episode_000004.h5" in tab.repair_bar_label.text()
    clean = tmp_path / "clean"
    clean.mkdir()
    make_episode(clean / "episode_000001.h5", seconds=0.5)
    with qtbot.waitSignal(tab.listing_done):
        tab.session.set_dataset_dir(clean)
    assert not tab.repair_bar.isVisible()  # nothing in this folder needs repair
    with qtbot.waitSignal(tab.listing_done):
        tab.session.set_dataset_dir(dataset)
    assert not tab.repair_bar.isVisible()  # announced once already


# -- figures -------------------------------------------------------------------------------------
def test_the_dataset_figures_are_under_the_table(qtbot, monkeypatch, open_window, dataset):
    monkeypatch.setattr(review_tab_module, "free_space", lambda folder: 20 * 1024 ** 3)
    window = open_window()
    tab = window.review
    window.tabs.setCurrentWidget(tab)
    recorded = 0.0
    for name in EPISODES:
        with Episode.open(dataset / name) as ep:
            recorded += ep.full_duration
    sizes = {p.name: p.stat().st_size for p in dataset.iterdir()}
    readable = sum(size for name, size in sizes.items() if name != DAMAGED)
    per_hour = readable / (recorded / 3600)
    text = tab.count_label.text()
    assert text.startswith("<b>4 episode(s)</b>: <span style='color:#2e7d32'>1 success</span> · "
                           "<span style='color:#c62828'>1 failure</span> · 1 unlabelled · "
                           "<span style='color:#c62828'><b>1 damaged</b></span><br>")
    assert text.endswith(f"<br>{recorded:.1f} s recorded · {format_size(sum(sizes.values()))} on disk, "
                         f"{format_size(int(per_hour))} per hour · 20.0 GB free: about "
                         f"{format_total(20 * 1024 ** 3 / per_hour * 3600)} more")
    assert inside(tab.count_label, window, (1280, 720))

    select(qtbot, tab, "episode_000002.h5")  # relabel the failure a success: the figures follow
    tab.success_box.setCurrentIndex(tab.success_box.findData("true"))
    qtbot.mouseClick(tab.save_label_button, Left)
    assert "2 success</span> · <span style='color:#c62828'>0 failure" in tab.count_label.text()


def test_an_export_that_fails_says_why_in_one_line(qtbot, window, tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_dialog_module, "export_lerobot", full_disk)
    tab = window.review
    dialog = open_dialog(qtbot, tab)
    dialog.folder_edit.setText(str(tmp_path / "out"))
    with qtbot.waitSignal(dialog.finished_export, timeout=30_000) as done:
        qtbot.mouseClick(dialog.export_button, Left)
    assert done.args[0] is None
    assert dialog.last_message == "Export failed: OSError: [Errno 28] No space left on device"
    assert tab.last_message == dialog.last_message and "c62828" in dialog.status_label.styleSheet()
    assert not dialog.running and dialog.export_button.isEnabled() and not dialog.progress.isVisible()
