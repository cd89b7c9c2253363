"""Commanded vs measured gripper opening as two bars (0 = closed, 1 = open)."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

COMMANDED = QtGui.QColor("#e6550d")
MEASURED = QtGui.QColor("#2b8cbe")


class GripperGauge(QtWidgets.QWidget):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.commanded: float | None = None
        self.measured: float | None = None
        self.setMinimumHeight(70)
        self.setToolTip("Gripper opening: what was commanded and what the gripper measures. "
                        "A gap that stays means the jaws are blocked — usually by a grasped object.")

    def set_values(self, commanded: float | None, measured: float | None) -> None:
        if (commanded, measured) != (self.commanded, self.measured):
            self.commanded, self.measured = commanded, measured
            self.update()

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt name)
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        w = self.width()
        label_w, bar_h, gap = 92, 18, 8
        rows = (("commanded", self.commanded, COMMANDED), ("measured", self.measured, MEASURED))
        p.setPen(self.palette().color(QtGui.QPalette.ColorRole.WindowText))
        p.drawText(QtCore.QRectF(0, 0, w, 16), "Gripper opening  (0 closed … 1 open)")
        for row, (name, value, color) in enumerate(rows):
            y = 20 + row * (bar_h + gap)
            track = QtCore.QRectF(label_w, y, w - label_w - 44, bar_h)
            p.setPen(self.palette().color(QtGui.QPalette.ColorRole.WindowText))
            p.drawText(QtCore.QRectF(0, y, label_w, bar_h), QtCore.Qt.AlignmentFlag.AlignVCenter, name)
            p.setPen(QtGui.QPen(QtGui.QColor("#999")))
            p.setBrush(QtGui.QColor("#eee"))
            p.drawRoundedRect(track, 3, 3)
            text = "—"
            if value is not None:
                fill = QtCore.QRectF(track.x(), track.y(), track.width() * max(0.0, min(1.0, value)), bar_h)
                p.setPen(QtCore.Qt.PenStyle.NoPen)
                p.setBrush(color)
                p.drawRoundedRect(fill, 3, 3)
                text = f"{value:.2f}"
            p.setPen(self.palette().color(QtGui.QPalette.ColorRole.WindowText))
            p.drawText(QtCore.QRectF(track.right() + 4, y, 40, bar_h), QtCore.Qt.AlignmentFlag.AlignVCenter, text)
        p.end()
