"""Scrolling plots of the measured joints and the commands sent, one small plot per joint.

Painting axes is what costs most in pyqtgraph (text through QPicture), so the
axes are cached as pixmaps and their range changes only when the data leave it
or use little of it, checked twice a second; curves are decimated to about a
point per pixel. That keeps the window's share of the CPU (and of the GIL the
control loop needs) small.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from ui.tick_history import TickHistory

MAX_POINTS = 300
RANGE_CHECK_S = 0.5
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
        self.y_ranges: list[tuple[float, float]] = [(-1.0, 1.0)] * len(joint_names)
        self._range_checked = 0.0
        for i, name in enumerate(joint_names):
            if i and i % columns == 0:
                self.canvas.nextRow()
            plot = self.canvas.addPlot(title=name)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            plot.setMenuEnabled(False)
            plot.showGrid(x=False, y=True, alpha=0.2)
            plot.hideAxis("bottom")
            plot.getAxis("left").setWidth(44)
            plot.getAxis("left").setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
            plot.disableAutoRange()
            plot.setXRange(-window_s, 0, padding=0)
            plot.setYRange(-1, 1, padding=0)
            self.commanded.append(plot.plot(pen=COMMANDED_PEN, skipFiniteCheck=True))
            self.measured.append(plot.plot(pen=MEASURED_PEN, skipFiniteCheck=True))
            self.plots.append(plot)

    def update_from(self, history: TickHistory, now: float) -> None:
        t, measured, commanded = history.arrays()
        if t.size == 0:
            return
        first = int(np.searchsorted(t, now - self.window_s))
        if first == t.size:  # nothing in the window (the loop has not ticked for that long): nothing to draw
            for m, c in zip(self.measured, self.commanded):
                m.setData([], [])
                c.setData([], [])
            return
        step = max(1, (t.size - first) // MAX_POINTS)
        sl = slice(first, None, step)
        x = t[sl] - now
        for j, (m, c) in enumerate(zip(self.measured, self.commanded)):
            m.setData(x, measured[sl, j])
            c.setData(x, commanded[sl, j])
        if time.monotonic() - self._range_checked > RANGE_CHECK_S:
            self._range_checked = time.monotonic()
            self._fit_ranges(measured[first:], commanded[first:])
        self.updates += 1

    def _fit_ranges(self, measured: np.ndarray, commanded: np.ndarray) -> None:
        """Refit a joint's y range only when its data leave it or fill less than a quarter of it."""
        lo = np.minimum(measured.min(axis=0), commanded.min(axis=0))
        hi = np.maximum(measured.max(axis=0), commanded.max(axis=0))
        for j, plot in enumerate(self.plots):
            y0, y1 = self.y_ranges[j]
            span = max(hi[j] - lo[j], 0.05)
            if lo[j] < y0 or hi[j] > y1 or span < 0.25 * (y1 - y0):
                margin = 0.25 * span
                self.y_ranges[j] = (float(lo[j] - margin), float(lo[j] + span + margin))
                plot.setYRange(*self.y_ranges[j], padding=0)

    def curve_data(self, joint: int) -> tuple[np.ndarray, np.ndarray]:
        """What the measured curve of ``joint`` shows now (for tests)."""
        x, y = self.measured[joint].getData()
        return (np.array([]) if x is None else x), (np.array([]) if y is None else y)
