"""Session events (raised on any thread: the loop, the supervisor, a worker) as a Qt signal on the GUI thread."""

from __future__ import annotations

from PySide6 import QtCore

from teleop_app.operator_session import OperatorSession


class SessionBridge(QtCore.QObject):
    """Views connect to :attr:`changed` (an :class:`~teleop_app.events.Event`); Qt queues emissions from
    other threads onto the GUI thread."""

    changed = QtCore.Signal(object)

    def __init__(self, session: OperatorSession, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        session.add_listener(self.changed.emit)
