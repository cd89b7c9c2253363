"""Opens the operator session: builds and starts the rig, then the window; closes both in order."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from teleop_app.config import load_rig
from teleop_app.errors import OperatorError
from teleop_app.gc_pauses import freeze_long_lived
from teleop_app.rig import build_rig
from teleop_app.operator_session import OperatorSession
from teleop_app.runs import kept_text
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
                 settings: QtCore.QSettings | None = None, start: bool = True) -> tuple[OperatorSession, MainWindow]:
    """Build the rig and a window on it (not yet shown); with ``start``, start the rig in teleop mode.

    ``main`` starts the rig only once the window is on screen: building and first
    painting the window hold the GIL long enough to stall a running control loop
    past its watchdog.
    """
    # The control loop is a thread of this process: when it wakes, it must get the GIL from the
    # GUI thread within a fraction of its period, not after the default 5 ms switch interval.
    sys.setswitchinterval(0.0005)
    settings = settings or QtCore.QSettings("teleop-app", "teleop-app")
    config = load_rig(rig_name)
    active = preferred_input([i.name for i in config.inputs], settings.value("active_input"))
    rig = build_rig(config, active_input=active)
    folder = dataset or settings.value("dataset_dir") or str(DEFAULT_DATASET)
    session = OperatorSession(rig, folder, task=str(settings.value("task") or ""), operator=operator)
    window = MainWindow(session, settings)
    if start:
        try:
            start_console(session)
        except BaseException:
            window.close()
            raise
    return session, window


def start_console(session: OperatorSession) -> None:
    """Start the session (rig, loop, supervisor) and hand the robot to the active input."""
    session.start(preload_policy_loaders=True)  # the Policy tab may load a checkpoint while the loop runs
    if session.active_input is not None:
        try:
            session.set_teleop(True)
        except OperatorError as exc:  # e.g. a leader arm posed far from the follower: say so, stay idle
            session.say(str(exc), error=True)


def close_on_signals(window: MainWindow) -> None:
    """Ctrl+C in the terminal (SIGINT) and SIGTERM close the window as its close button does.

    Python runs the handler between two Python calls on the main thread; the
    window's 30 Hz refresh makes one within ~33 ms even while Qt's loop waits.
    """

    def close(signum: int, frame: object) -> None:
        QtCore.QTimer.singleShot(0, window.close)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, close)


def main(rig_name: str | None = None, dataset: str | None = None, operator: str = "") -> int:
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("teleop-app")
    QtGui.QGuiApplication.setApplicationDisplayName("teleop-app")
    session, window = open_console(rig_name, dataset, operator, start=False)
    window.show()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and not window.isVisible():
        app.processEvents()
    for _ in range(10):  # first paint and layout before the control loop starts
        app.processEvents()
    freeze_long_lived()  # the window, the rig and every module stay: keep full collections off the loop
    try:
        start_console(session)
    except BaseException:
        window.close()
        raise
    close_on_signals(window)
    print(f"teleop-app: console open on rig {session.rig.config.name}, dataset {session.dataset_dir}; "
          "Ctrl+C here closes it (a running episode is kept)", file=sys.stderr, flush=True)
    try:
        return app.exec()
    finally:
        running = session.running
        session.close()  # a running episode is kept (unlabelled), a rollout or replay ends
        kept = kept_text(running)
        if kept is not None:
            print(f"teleop-app: on closing, {kept}", file=sys.stderr, flush=True)
