"""The live action plot of a running policy: one small plot per action dimension.

x is seconds relative to now (the dashed line): executed actions to the left,
the current chunk drawn bold over the ticks it was computed for (so its part
left of now shows what inference latency cost), the previous chunk faded, the
actions that will run from now on (blended where chunks overlap) dotted, and
the joint targets that actually reached the robot after the safety filter as a
green line ending in a dot at now.

Like :mod:`ui.joint_plots`: curves are updated in place with ``setData``,
decimated to about a point per pixel, axes cached as pixmaps, y ranges sticky
(refitted when the data leave the range, or use little of it — that at most
twice a second), the x range fixed until a chunk reaches past it.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from teleop_app.policy_view import ChunkCurves

RANGE_CHECK_S = 0.5
PENS = {
    "previous": pg.mkPen("#bdbdbd", width=2),
    "executed": pg.mkPen("#9ecae1", width=5),  # a wide pale band: the sent line runs inside it
    "current": pg.mkPen("#e6550d", width=4),
    "planned": pg.mkPen("#7f2704", width=1.5, style=pg.QtCore.Qt.PenStyle.DotLine),
    "sent": pg.mkPen("#31a354", width=1.5),
}
ORDER = ("previous", "executed", "current", "planned", "sent")  # drawn bottom to top
LEGEND = ("<span style='color:#6baed6'><b>━ executed</b></span> &nbsp; <span style='color:#e6550d'><b>━ current "
          "chunk</b></span> &nbsp; <span style='color:#bdbdbd'>━ previous chunk</span> &nbsp; "
          "<span style='color:#7f2704'>┈ planned</span> &nbsp; <span style='color:#31a354'>━● sent to the robot "
          "(after safety)</span> &nbsp; x: seconds from now")


class ChunkPlots(QtWidgets.QWidget):
    """Call :meth:`set_dims` when a policy is loaded, :meth:`show_curves` at the window's refresh rate."""

    def __init__(self, columns: int = 3, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.past_s = 3.0
        self.columns = columns
        self.updates = 0
        self.names: tuple[str, ...] = ()
        self.unit = ""
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.legend = QtWidgets.QLabel(LEGEND)
        self.legend.setWordWrap(True)
        layout.addWidget(self.legend)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground("w")
        layout.addWidget(self.canvas, 1)
        self.plots: list[pg.PlotItem] = []
        self.curves: list[dict[str, pg.PlotDataItem]] = []
        self.sent_now: list[pg.PlotDataItem] = []
        self.y_ranges: list[tuple[float, float]] = []
        self.x_range = (-self.past_s, 1.0)
        self._range_checked = 0.0
        self.placeholder = QtWidgets.QLabel("Load a policy: its actions are drawn here, one plot per dimension.")
        self.placeholder.setObjectName("hint")
        layout.addWidget(self.placeholder)

    def set_dims(self, names: tuple[str, ...], future_s: float | None, unit: str = "") -> None:
        """One plot per action dimension; ``future_s`` seconds ahead of now (None: unknown yet, the first
        chunks decide). The past shown is four times that, within 1–3 s, so a chunk stays readable."""
        self.canvas.clear()
        self.plots, self.curves, self.sent_now = [], [], []
        self.names, self.unit = tuple(names), unit
        self._set_x(future_s or 0.2)
        self.y_ranges = [(-1.0, 1.0)] * len(names)
        bottom_row = (len(names) - 1) // self.columns
        for i, name in enumerate(names):
            if i and i % self.columns == 0:
                self.canvas.nextRow()
            plot = self.canvas.addPlot(title=f"{name} ({unit})" if unit else name)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            plot.setMenuEnabled(False)
            plot.showGrid(x=True, y=True, alpha=0.15)
            left = plot.getAxis("left")
            left.setWidth(44)
            left.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
            if i // self.columns == bottom_row or i + self.columns >= len(names):
                plot.getAxis("bottom").setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
            else:
                plot.hideAxis("bottom")
            plot.disableAutoRange()
            plot.setXRange(*self.x_range, padding=0)
            plot.setYRange(-1, 1, padding=0)
            plot.addItem(pg.InfiniteLine(0.0, angle=90, pen=pg.mkPen("#555", width=1,
                                                                     style=pg.QtCore.Qt.PenStyle.DashLine)))
            self.curves.append({name: plot.plot(pen=PENS[name], skipFiniteCheck=True) for name in ORDER})
            self.sent_now.append(plot.plot(pen=None, symbol="o", symbolSize=8, symbolBrush="#31a354",
                                           symbolPen="w"))
            self.plots.append(plot)
        self.placeholder.setVisible(not names)

    def show_curves(self, curves: ChunkCurves) -> None:
        if curves.dim != len(self.plots):
            return
        sx, sy = curves.sent
        for j, items in enumerate(self.curves):
            for name, (x, y) in curves.items():
                items[name].setData(x, y[:, j])
            self.sent_now[j].setData(sx[-1:], sy[-1:, j])
        self._fit_x(curves)
        self._fit_y(curves)
        self.updates += 1

    def _set_x(self, future_s: float) -> None:
        future = max(0.05, future_s)
        self.past_s = min(3.0, max(1.0, 4.0 * future))
        self.x_range = (-self.past_s, future)
        for plot in self.plots:
            plot.setXRange(*self.x_range, padding=0)

    def _fit_x(self, curves: ChunkCurves) -> None:
        """Widen the future side once a chunk reaches past it (never narrows: no jumping axes)."""
        ends = [x[-1] for _, (x, _) in curves.items() if x.size]
        end = max(ends, default=0.0)
        if end > self.x_range[1]:
            self._set_x(float(end) * 1.15)

    def _fit_y(self, curves: ChunkCurves) -> None:
        """Refit a dimension's y range at once when its data leave it (a moving joint: with room to move
        on), and at most twice a second when they fill less than a quarter of it."""
        ys = [y for _, (x, y) in curves.items() if x.size]
        if not ys:
            return
        data = np.concatenate(ys, axis=0)  # actions passed the spec check and safety: finite
        lo, hi = data.min(axis=0), data.max(axis=0)
        shrink = time.monotonic() - self._range_checked > RANGE_CHECK_S
        if shrink:
            self._range_checked = time.monotonic()
        for j, plot in enumerate(self.plots):
            y0, y1 = self.y_ranges[j]
            span = max(hi[j] - lo[j], 0.02)
            if lo[j] < y0 or hi[j] > y1 or (shrink and span < 0.25 * (y1 - y0)):
                margin = 0.5 * span
                self.y_ranges[j] = (float(lo[j] - margin), float(hi[j] + margin))
                plot.setYRange(*self.y_ranges[j], padding=0)

    def curve_data(self, dim: int, name: str) -> tuple[np.ndarray, np.ndarray]:
        """What curve ``name`` (one of ORDER) of dimension ``dim`` shows now (for tests)."""
        x, y = self.curves[dim][name].getData()
        return (np.array([]) if x is None else np.asarray(x)), (np.array([]) if y is None else np.asarray(y))
