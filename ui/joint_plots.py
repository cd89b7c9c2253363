"""Scrolling plots of the measured joints and the commands sent, one small plot per joint."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from ui.tick_history import TickHistory

MEASURED_PEN = pg.mkPen("#2b8cbe", width=2)
COMMANDED_PEN = pg.mkPen("#e6550d", width=1.5, style=pg.QtCore.Qt.PenStyle.DashLine)


class JointPlots(QtWidgets.QWidget):
    """``window_s`` seconds of history; curves are updated in place with ``setData`` (no redraw storms)."""

    def __init__(self, joint_names: tuple[str, ...], window_s: float = 10.0, columns: int = 3,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.window_s = window_s
        self.updates = 0
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        legend = QtWidgets.QLabel(
            "<span style='color:#2b8cbe'>━ measured</span> &nbsp; "
            "<span style='color:#e6550d'>╌ commanded</span> &nbsp; (rad, last "
            f"{window_s:.0f} s)")
        layout.addWidget(legend)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground("w")
        layout.addWidget(self.canvas, 1)
        self.measured: list[pg.PlotDataItem] = []
        self.commanded: list[pg.PlotDataItem] = []
        self.plots: list[pg.PlotItem] = []
        for i, name in enumerate(joint_names):
            if i and i % columns == 0:
                self.canvas.nextRow()
            plot = self.canvas.addPlot(title=name)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            plot.setMenuEnabled(False)
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.getAxis("bottom").setStyle(showValues=False)
            plot.setXRange(-window_s, 0, padding=0)
            self.commanded.append(plot.plot(pen=COMMANDED_PEN, skipFiniteCheck=True))
            self.measured.append(plot.plot(pen=MEASURED_PEN, skipFiniteCheck=True))
            self.plots.append(plot)

    def update_from(self, history: TickHistory, now: float) -> None:
        t, measured, commanded = history.arrays()
        if t.size == 0:
            return
        keep = t >= now - self.window_s
        x = t[keep] - now
        for j, (m, c) in enumerate(zip(self.measured, self.commanded)):
            m.setData(x, measured[keep, j])
            c.setData(x, commanded[keep, j])
        self.updates += 1

    def curve_data(self, joint: int) -> tuple[np.ndarray, np.ndarray]:
        """What the measured curve of ``joint`` shows now (for tests)."""
        x, y = self.measured[joint].getData()
        return (np.array([]) if x is None else x), (np.array([]) if y is None else y)
