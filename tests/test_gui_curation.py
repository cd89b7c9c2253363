"""The Review tab's curation aids on real episode files (pytest-qt): the quality-flag column and filter, the trim suggestion."""

from __future__ import annotations

import pytest
from PySide6 import QtCore

from recordings.reader import Episode
from synthetic_episodes import make_episode
from teleop_app.operator_session import OperatorSession
from ui.bridge import SessionBridge
from ui.episode_table import COLUMNS, SORT_ROLE, WARN_COLOR
from ui.review_tab import ReviewTab


@pytest.fixture
def tab(qtbot, sim_rig, tmp_path):
    folder = tmp_path / "demos"
    folder.mkdir()
    make_episode(folder / "episode_000001.h5", seconds=1.0, seed=1)
    make_episode(folder / "episode_000002.h5", seconds=1.0, seed=2, idle=(0.5, 0.5), still_gripper=True)
    widget = ReviewTab(SessionBridge(OperatorSession(sim_rig, folder)))
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitUntil(lambda: not widget.listing)
    yield widget
    widget.shutdown()


def shown(tab, column, role=QtCore.Qt.ItemDataRole.DisplayRole):
    proxy = tab.table.proxy
    return [proxy.data(proxy.index(r, COLUMNS.index(column)), role) for r in range(proxy.rowCount())]


def test_flags_column_tooltip_sort_and_filter(qtbot, tab):
    tab.table.sortByColumn(COLUMNS.index("Name"), QtCore.Qt.SortOrder.AscendingOrder)
    assert shown(tab, "Flags") == ["", "still"]
    assert shown(tab, "Flags", QtCore.Qt.ItemDataRole.ForegroundRole)[1] == WARN_COLOR
    assert shown(tab, "Flags", QtCore.Qt.ItemDataRole.ToolTipRole)[1].startswith("still: arm moved at most")
    tab.table.sortByColumn(COLUMNS.index("Flags"), QtCore.Qt.SortOrder.DescendingOrder)
    assert shown(tab, "Flags", SORT_ROLE) == [1, 0]
    tab.filter_edit.setText("still")
    assert shown(tab, "Name") == ["episode_000002.h5"]
    tab.filter_edit.clear()
    assert tab.table.proxy.rowCount() == 2


def test_suggest_puts_the_trim_handles_around_the_motion(qtbot, sim_rig, tmp_path):
    folder = tmp_path / "idle"
    folder.mkdir()
    path = folder / "episode_000001.h5"
    make_episode(path, seconds=2.0, idle=(0.6, 0.5))
    widget = ReviewTab(SessionBridge(OperatorSession(sim_rig, folder)))
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitUntil(lambda: not widget.listing)
    try:
        assert widget.table.select_path(path)
        qtbot.waitUntil(lambda: widget.loaded is not None)
        qtbot.mouseClick(widget.auto_trim_button, QtCore.Qt.MouseButton.LeftButton)
        trim = widget.player.trim
        assert trim.start == pytest.approx(0.3, abs=0.06) and trim.end == pytest.approx(1.8, abs=0.06)
        assert trim.dirty and widget.apply_trim_button.isEnabled() and "suggested cut" in widget.last_message
        with Episode.open(path) as ep:  # nothing written until Apply
            assert ep.meta["kept_start"] is None
        qtbot.mouseClick(widget.apply_trim_button, QtCore.Qt.MouseButton.LeftButton)
        with Episode.open(path) as ep:
            assert ep.kept_range[0] == pytest.approx(0.3, abs=0.06)
    finally:
        widget.shutdown()
