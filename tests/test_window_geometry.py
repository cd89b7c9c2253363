"""A window geometry saved on a larger (or another) screen is put back inside the screen the window opens on."""

import json
import os
import signal
import subprocess

from PySide6 import QtCore

from command import BIN, wait_for_console  # tests/ is on sys.path
from ui.remembered import fit_rect

SCREEN = {"name": "laptop", "x": 0, "y": 0, "width": 1280, "height": 720, "logicalDpi": 96, "logicalBaseDpi": 96,
          "dpr": 1}


def test_fit_rect_shrinks_and_moves_into_the_screen():
    screen = QtCore.QRect(0, 0, 1280, 720)
    assert fit_rect(QtCore.QRect(3000, 2000, 1600, 900), screen) == QtCore.QRect(0, 0, 1280, 720)
    assert fit_rect(QtCore.QRect(-400, 600, 800, 500), screen) == QtCore.QRect(0, 220, 800, 500)
    assert fit_rect(QtCore.QRect(100, 50, 800, 500), screen) == QtCore.QRect(100, 50, 800, 500)  # fits: kept


def test_a_window_saved_on_a_bigger_screen_opens_inside_a_small_one(tmp_path):
    """The real command on a 1280×720 screen, with settings saved at 2560×1440 on a second monitor."""
    config = tmp_path / "config"
    path = config / "teleop-app" / "teleop-app.conf"
    saved = QtCore.QSettings(str(path), QtCore.QSettings.Format.IniFormat)
    saved.setValue("size", QtCore.QSize(2560, 1440))
    saved.setValue("dataset_dir", str(tmp_path / "data"))
    saved.sync()
    screens = tmp_path / "screens.json"
    screens.write_text(json.dumps({"screens": [SCREEN]}))
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={screens}", MUJOCO_GL="egl",
               XDG_CONFIG_HOME=str(config))
    proc = subprocess.Popen([str(BIN), "gui", "--dataset", str(tmp_path / "data")], env=env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_console(proc)
        proc.send_signal(signal.SIGTERM)  # closes as the close button does: the geometry it had is saved
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    assert "Traceback" not in proc.stderr.read()
    size = QtCore.QSettings(str(path), QtCore.QSettings.Format.IniFormat).value("size")
    assert isinstance(size, QtCore.QSize) and 0 < size.width() <= 1280 and 0 < size.height() <= 720, size
