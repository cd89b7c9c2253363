"""Arrows of the robot base's axes drawn over a camera tile, each end labelled with the key that moves there.

A view only: the points come from :mod:`teleop_app.axes_aid`; the Live tab shows
the overlay while the keyboard is the active input and hides it otherwise. GUI
thread only.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from teleop_app.axes_aid import AxisArrow
from ui.image_tile import ImageTile

HEAD_PX = 6.0  # arrow head length, in pixels of a 160-pixel-wide image (scaled with the image)
LABEL_GAP_PX = 6.0
COLORS = {"x": "#e53935", "y": "#43a047", "z": "#1e88e5"}  # the usual x/y/z colours


class AxesOverlay:
    """Items added to ``tile``'s image view: per axis a line, an arrow head and the two keys."""

    def __init__(self, tile: ImageTile, arrows: list[AxisArrow], image_width: int) -> None:
        """``arrows`` in the pixels of the tile's image, ``image_width`` pixels wide."""
        self.tile = tile
        self.arrows = arrows
        self.items: list[pg.GraphicsObject] = []
        self.labels: dict[str, pg.TextItem] = {}
        px = image_width / 160.0
        for a in arrows:
            color = COLORS.get(a.axis, "#fff")
            p0, p1 = np.array(a.minus), np.array(a.plus)
            length = float(np.linalg.norm(p1 - p0))
            if length < 1e-6:  # seen end-on: no direction to draw
                continue
            d = (p1 - p0) / length
            n = np.array([-d[1], d[0]])
            head = min(0.25 * length, HEAD_PX * px)
            wing1, wing2 = p1 - head * d + 0.5 * head * n, p1 - head * d - 0.5 * head * n
            xy = np.array([p0, p1, p1, wing1, p1, wing2])
            self.items.append(pg.PlotCurveItem(xy[:, 0], xy[:, 1], connect="pairs", pen=pg.mkPen(color, width=3)))
            gap = LABEL_GAP_PX * px
            for key, at in ((a.plus_key, p1 + gap * d), (a.minus_key, p0 - gap * d)):
                text = pg.TextItem(html=f"<b style='color:{color}; background-color:#ffffff'>&nbsp;{key}&nbsp;</b>",
                                   anchor=(0.5, 0.5))
                text.setPos(float(at[0]), float(at[1]))
                self.labels[key] = text
                self.items.append(text)
        for item in self.items:
            item.setZValue(10)
            tile.box.addItem(item)
        self.set_visible(False)

    @property
    def visible(self) -> bool:
        return bool(self.items) and self.items[0].isVisible()

    def set_visible(self, on: bool) -> None:
        if on != self.visible or not self.items:
            for item in self.items:
                item.setVisible(on)
