"""The Policy tab at the sizes of a laptop and a desktop screen: its actions and what the policy sees, unscrolled."""

import pytest
from PySide6 import QtCore

from test_gui_policy import policy_window  # noqa: F401 (fixture)


def visible_in(window, widget) -> bool:
    """Shown, and wholly inside each parent up to the window (not cut off, not scrolled away)."""
    if not widget.isVisible():
        return False
    rect = QtCore.QRect(QtCore.QPoint(0, 0), widget.size())
    w = widget
    while w is not window:
        rect = rect.translated(w.pos())
        w = w.parentWidget()
        if not w.rect().contains(rect):
            return False
    return True


@pytest.mark.parametrize("size", [(1280, 720), (1600, 900)])
def test_the_run_buttons_are_on_screen_without_scrolling(qtbot, policy_window, size, tmp_path):
    console, window, tab = policy_window
    window.resize(*size)
    qtbot.waitUntil(lambda: (window.width(), window.height()) == size, timeout=3000)
    qtbot.wait(100)
    for button in (tab.start_button, tab.stop_button, tab.take_over_button, tab.hand_back_button, tab.load_button):
        assert visible_in(window, button), button.text()
    window.grab().save(str(tmp_path / f"policy-{size[0]}.png"))


def test_the_policy_tab_shows_the_cameras_the_policy_gets(qtbot, policy_window):
    console, window, tab = policy_window
    window.resize(1280, 720)
    assert set(tab.tiles) == set(console.rig.cameras) == {"front", "wrist"}
    qtbot.waitUntil(lambda: all(t.frames_shown >= 3 for t in tab.tiles.values()), timeout=15000)
    for tile in tab.tiles.values():
        assert tile.image.image.std() > 5  # a rendered scene, not a blank buffer
        assert "fps" in tile.caption.text()
        assert visible_in(window, tile.view)
    assert visible_in(window, tab.plots) and visible_in(window, tab.gripper)
