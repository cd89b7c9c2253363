"""One camera image with its name and a caption, aspect kept; used by the live view and the review player."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets


class ImageTile(QtWidgets.QWidget):
    """A pyqtgraph ``ImageItem`` with fixed levels (no per-frame autoscale) in a locked-aspect view."""

    def __init__(self, title: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.frames_shown = 0
        self.shown_seq: int | None = None  # sequence number (live) or frame index (review) on screen
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        head = QtWidgets.QHBoxLayout()
        self.name_label = QtWidgets.QLabel(f"<b>{title}</b>")
        self.caption = QtWidgets.QLabel("waiting for frames…")
        self.caption.setObjectName("tileCaption")
        self.caption.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        head.addWidget(self.name_label)
        head.addStretch(1)
        head.addWidget(self.caption)
        layout.addLayout(head)
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground("#111")
        self.view.ci.setContentsMargins(0, 0, 0, 0)
        box = self.view.addViewBox(lockAspect=True, enableMouse=False, invertY=True)
        box.setMenuEnabled(False)
        box.setDefaultPadding(0.0)
        # No levels here: pyqtgraph would apply them after the first setImage, overriding its levels (depth)
        self.image = pg.ImageItem(axisOrder="row-major")
        box.addItem(self.image)
        self.box = box
        self.view.setMinimumSize(160, 120)
        layout.addWidget(self.view, 1)
        self._shape: tuple[int, ...] | None = None

    def show_image(self, image: np.ndarray, seq: int | None = None) -> None:
        """Show an RGB uint8 (or uint16 depth) image; the view refits only when the size changes."""
        if image.dtype == np.uint16:  # depth: millimetres shown over 0..4 m
            self.image.setImage(image, autoLevels=False, levels=(0, 4000))
        else:
            self.image.setImage(image, autoLevels=False, levels=(0, 255))
        if image.shape != self._shape:
            self._shape = image.shape
            self.box.setRange(xRange=(0, image.shape[1]), yRange=(0, image.shape[0]), padding=0)
        self.frames_shown += 1
        self.shown_seq = seq

    def set_caption(self, text: str, warn: bool = False) -> None:
        self.caption.setText(text)
        self.caption.setStyleSheet("color: #d33; font-weight: bold;" if warn else "")
