"""Console events (raised on any thread: the loop, the watchdog, a worker) as a Qt signal on the GUI thread."""

from __future__ import annotations

from PySide6 import QtCore

from teleop_app.console import Console


class ConsoleBridge(QtCore.QObject):
    """Views connect to :attr:`changed`; Qt queues emissions from other threads onto the GUI thread."""

    changed = QtCore.Signal(str)

    def __init__(self, console: Console, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.console = console
        console.add_listener(self.changed.emit)
