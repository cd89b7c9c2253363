"""Opens the operator console: builds and starts the rig, then the window; closes both in order."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from teleop_app.config import load_rig
from teleop_app.console import Console, ConsoleError
from teleop_app.rig import build_rig
from teleop_app.session import Mode
from ui.main_window import MainWindow

DEFAULT_DATASET = Path.home() / "teleop-data" / "demos"


def preferred_input(inputs: list[str], remembered: str | None) -> str | None:
    """The remembered input if the rig still has it, else the keyboard, else the rig's first."""
    if remembered in inputs:
        return remembered
    if "keyboard" in inputs:
        return "keyboard"
    return inputs[0] if inputs else None


def open_console(rig_name: str | None = None, dataset: str | None = None, operator: str = "",
                 settings: QtCore.QSettings | None = None) -> tuple[Console, MainWindow]:
    """Build and start the rig, and a window on it in teleop mode (not yet shown)."""
    # The control loop is a thread of this process: when it wakes, it must get the GIL from the
    # GUI thread within a fraction of its period, not after the default 5 ms switch interval.
    sys.setswitchinterval(0.0005)
    settings = settings or QtCore.QSettings("teleop-app", "teleop-app")
    config = load_rig(rig_name)
    active = preferred_input([i.name for i in config.inputs], settings.value("active_input"))
    rig = build_rig(config, active_input=active)
    rig.start()
    try:
        folder = dataset or settings.value("dataset_dir") or str(DEFAULT_DATASET)
        console = Console(rig, folder, task=str(settings.value("task") or ""), operator=operator)
        if active is not None:
            try:
                console.set_teleop(True)
            except ConsoleError:
                pass
        window = MainWindow(console, settings)
    except BaseException:
        rig.close()
        raise
    return console, window


def main(rig_name: str | None = None, dataset: str | None = None, operator: str = "") -> int:
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("teleop-app")
    QtGui.QGuiApplication.setApplicationDisplayName("teleop-app")
    console, window = open_console(rig_name, dataset, operator)
    window.show()
    try:
        return app.exec()
    finally:
        if console.mode is not Mode.IDLE and not console.recording:
            console.rig.session.set_mode(Mode.IDLE, reason="window closed")
        console.close()
