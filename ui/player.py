"""The episode player: every camera and the signal plots on one timeline, with the trim handles.

The state is plain Python (:class:`ui.review_state.Timeline`, ``TrimHandles``,
``LoadedEpisode``); this widget draws it. Frames are decoded on demand by a
:class:`ui.workers.LatestFrameDecoder` (newest request only), and not at all
when the cursor moves within the frames already on screen.
"""

from __future__ import annotations

import time

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from ui.image_tile import ImageTile
from ui.review_state import SPEEDS, LoadedEpisode, Timeline, TrimHandles
from ui.workers import LatestFrameDecoder

JOINT_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
CURSOR_PEN = pg.mkPen("#111111", width=2)
CURSOR_HOVER_PEN = pg.mkPen("#e6550d", width=3)
HANDLE_PEN = pg.mkPen("#1565c0", width=3)
HANDLE_HOVER_PEN = pg.mkPen("#e6550d", width=4)
SHADE_BRUSH = pg.mkBrush(90, 90, 90, 80)
PLAY_MS = 30
SLIDER_STEPS_PER_S = 1000  # the slider counts milliseconds


class TrimRegion(pg.LinearRegionItem):
    """In/out handles: only the two edges move (dragging the inside pans the plot, as elsewhere)."""

    def mouseDragEvent(self, ev: object) -> None:  # noqa: N802 (pyqtgraph name)
        ev.ignore()

    def mouseClickEvent(self, ev: object) -> None:  # noqa: N802 (pyqtgraph name)
        ev.ignore()  # a click inside the kept range still moves the cursor


class SeekSlider(QtWidgets.QSlider):
    """A slider whose left click jumps the handle to the click (and keeps dragging from there),
    instead of paging towards it: the style hint ``SH_Slider_AbsoluteSetButtons`` asks for exactly that."""

    def __init__(self, orientation: QtCore.Qt.Orientation, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(orientation, parent)
        self._style = _AbsoluteClickStyle(self.style().name())
        self._style.setParent(self)  # the widget does not own its style
        self.setStyle(self._style)


class _AbsoluteClickStyle(QtWidgets.QProxyStyle):
    def styleHint(self, hint: QtWidgets.QStyle.StyleHint, option: QtWidgets.QStyleOption | None = None,  # noqa: N802
                  widget: QtWidgets.QWidget | None = None, returnData: QtWidgets.QStyleHintReturn | None = None) -> int:  # noqa: N803
        if hint == QtWidgets.QStyle.StyleHint.SH_Slider_AbsoluteSetButtons:
            return int(QtCore.Qt.MouseButton.LeftButton.value)
        return super().styleHint(hint, option, widget, returnData)


class SignalPlot:
    """One plot of the player: curves, the shaded trimmed-out parts, the trim handles and the cursor line."""

    def __init__(self, item: pg.PlotItem, full: float) -> None:
        self.item = item
        item.setMenuEnabled(False)
        item.hideButtons()
        item.showGrid(x=True, y=True, alpha=0.15)
        item.setMouseEnabled(x=True, y=False)
        vb = item.getViewBox()
        vb.setLimits(xMin=0.0, xMax=max(full, 1e-3))
        self.shade_before = pg.LinearRegionItem((0, 0), movable=False, brush=SHADE_BRUSH, pen=pg.mkPen(None))
        self.shade_after = pg.LinearRegionItem((full, full), movable=False, brush=SHADE_BRUSH, pen=pg.mkPen(None))
        for shade in (self.shade_before, self.shade_after):
            shade.setZValue(-20)
            item.addItem(shade, ignoreBounds=True)
        self.region = TrimRegion((0, full), brush=pg.mkBrush(0, 0, 0, 0), pen=HANDLE_PEN,
                                 hoverPen=HANDLE_HOVER_PEN, hoverBrush=pg.mkBrush(0, 0, 0, 0),
                                 bounds=(0, full))
        self.region.setZValue(-10)
        item.addItem(self.region, ignoreBounds=True)
        self.cursor = pg.InfiniteLine(0.0, angle=90, movable=True, pen=CURSOR_PEN, hoverPen=CURSOR_HOVER_PEN,
                                      bounds=(0, full))
        self.cursor.setZValue(20)
        item.addItem(self.cursor, ignoreBounds=True)
        self.full = full

    def show_trim(self, start: float, end: float) -> None:
        self.region.setRegion((start, end))
        self.shade_before.setRegion((0.0, start))
        self.shade_after.setRegion((end, self.full))


class Player(QtWidgets.QWidget):
    """Cameras + plots + transport for one :class:`LoadedEpisode` (or none)."""

    cursor_moved = QtCore.Signal(float)
    trim_moved = QtCore.Signal(float, float)  # the handles (not yet applied)
    frames_shown = QtCore.Signal(float)  # the time whose frames are now on screen

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.loaded: LoadedEpisode | None = None
        self.timeline = Timeline()
        self.trim: TrimHandles | None = None
        self.tiles: dict[str, ImageTile] = {}
        self.plots: list[SignalPlot] = []
        self.shown_t: float | None = None  # the time whose frames are on screen
        self.shown_index: dict[str, int | None] = {}
        self._request_seq = 0  # every cursor move asks for the frames at the cursor ...
        self._shown_seq = 0  # ... and the newest answer on screen wins; older ones are dropped
        self._syncing = False
        self._sized = False
        self._last_advance = 0.0

        self.decoder = LatestFrameDecoder(self)
        self.decoder.decoded.connect(self._on_decoded)
        self.play_timer = QtCore.QTimer(self)
        self.play_timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.play_timer.setInterval(PLAY_MS)
        self.play_timer.timeout.connect(self._advance)

        self.placeholder = QtWidgets.QLabel("Select an episode in the table to play it.")
        self.placeholder.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setObjectName("hint")
        self.camera_row = QtWidgets.QHBoxLayout()
        self.camera_row.setSpacing(4)
        self.no_cameras = QtWidgets.QLabel("This episode has no camera streams.")
        self.no_cameras.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.no_cameras.setObjectName("hint")
        self.camera_row.addWidget(self.no_cameras)
        self.legend = QtWidgets.QLabel()
        self.legend.setObjectName("hint")
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground("w")
        self.canvas.setMinimumHeight(170)
        self.canvas.scene().sigMouseClicked.connect(self._plot_clicked)

        style = self.style()
        SP = QtWidgets.QStyle.StandardPixmap
        self.back_button = self._tool(style.standardIcon(SP.SP_MediaSeekBackward), "Previous frame  [←]",
                                      lambda: self.step(-1))
        self.play_button = self._tool(style.standardIcon(SP.SP_MediaPlay), "Play / pause  [Space]",
                                      self.toggle_play)
        self.forward_button = self._tool(style.standardIcon(SP.SP_MediaSeekForward), "Next frame  [→]",
                                         lambda: self.step(1))
        self.slider = SeekSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setToolTip("Click or drag to move the cursor (or drag the black line on the plots)")
        self.slider.valueChanged.connect(self._slider_moved)
        self.time_label = QtWidgets.QLabel("—")
        self.time_label.setMinimumWidth(150)
        self.time_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.speed_box = QtWidgets.QComboBox()
        for s in SPEEDS:
            self.speed_box.addItem(f"{s:g}×", s)
        self.speed_box.setCurrentIndex(SPEEDS.index(1.0))
        self.speed_box.setToolTip("Playback speed  [ and ] change it")
        self.speed_box.currentIndexChanged.connect(lambda i: self.timeline.set_speed(SPEEDS[i]))
        transport = QtWidgets.QHBoxLayout()
        for w in (self.back_button, self.play_button, self.forward_button):
            transport.addWidget(w)
        transport.addWidget(self.slider, 1)
        transport.addWidget(self.time_label)
        transport.addWidget(QtWidgets.QLabel("speed"))
        transport.addWidget(self.speed_box)

        self.body = QtWidgets.QWidget()
        body = QtWidgets.QVBoxLayout(self.body)
        body.setContentsMargins(0, 0, 0, 0)
        cams = QtWidgets.QWidget()
        cams.setLayout(self.camera_row)
        self.camera_row.setContentsMargins(0, 0, 0, 0)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        split.addWidget(cams)
        plots = QtWidgets.QWidget()
        plots_layout = QtWidgets.QVBoxLayout(plots)
        plots_layout.setContentsMargins(0, 0, 0, 0)
        plots_layout.setSpacing(0)
        plots_layout.addWidget(self.legend)
        plots_layout.addWidget(self.canvas, 1)
        split.addWidget(plots)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)
        self.splitter = split
        body.addWidget(split, 1)
        body.addLayout(transport)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.placeholder, 1)
        layout.addWidget(self.body, 1)
        self._set_enabled(False)

    def _tool(self, icon: QtGui.QIcon, tip: str, slot: object) -> QtWidgets.QToolButton:
        button = QtWidgets.QToolButton()
        button.setIcon(icon)
        button.setToolTip(tip)
        button.setAutoRaise(True)
        button.setIconSize(QtCore.QSize(22, 22))
        button.clicked.connect(slot)
        return button

    def _set_enabled(self, on: bool) -> None:
        self.placeholder.setVisible(not on)
        self.body.setVisible(on)

    # -- loading -------------------------------------------------------------------------------
    def load(self, loaded: LoadedEpisode | None, cursor: float = 0.0) -> None:
        """Show ``loaded`` (None: nothing), the cursor at ``cursor`` and the handles at its kept range."""
        self.pause()
        self.decoder.cancel()
        self.loaded = loaded
        self.shown_t = None
        self.shown_index = {}
        self._shown_seq = self._request_seq
        for tile in self.tiles.values():
            tile.setParent(None)
            tile.deleteLater()
        self.tiles = {}
        self.canvas.clear()
        self.plots = []
        if loaded is None:
            self.trim = None
            self.timeline = Timeline()
            self._set_enabled(False)
            return
        self._set_enabled(True)
        self.timeline = Timeline.for_episode(loaded)
        self.timeline.set_speed(SPEEDS[self.speed_box.currentIndex()])
        self.trim = TrimHandles(loaded.full_duration, loaded.kept_range)
        for cam in loaded.cameras:
            info = loaded.camera_info[cam]
            tile = ImageTile(f"{cam}  ({info['width']}×{info['height']}, {info['kind']})")
            tile.set_caption("no frame yet")
            n = len(loaded.frame_times[cam])
            widest = f"frame {n}/{n} · {max(loaded.full_duration, 1.0) * 10:.3f} s"
            tile.caption.setMinimumWidth(tile.caption.fontMetrics().horizontalAdvance(widest) + 8)  # no jitter
            self.tiles[cam] = tile
            self.camera_row.addWidget(tile, 1)
        self.no_cameras.setVisible(not loaded.cameras)
        self._build_plots(loaded)
        full_ms = int(round(loaded.full_duration * SLIDER_STEPS_PER_S))
        with QtCore.QSignalBlocker(self.slider):
            self.slider.setRange(0, full_ms)
            self.slider.setPageStep(max(full_ms // 20, 1))
            self.slider.setSingleStep(max(int(SLIDER_STEPS_PER_S / 30), 1))
        self._draw_trim()
        if not self._sized:  # first episode: cameras get the larger share (the user's split is kept after)
            total = max(self.splitter.height(), 400)
            self.splitter.setSizes([total * 11 // 20, total - total * 11 // 20])
            self._sized = True
        self.seek(cursor)

    def _build_plots(self, loaded: LoadedEpisode) -> None:
        data = loaded.plots
        full = loaded.full_duration
        names = data.joint_names
        arm = list(range(len(names) - 1))
        joints = self.canvas.addPlot(row=0, col=0)
        joints.setLabel("left", "joints", units="rad")
        self.canvas.nextRow()
        grip = self.canvas.addPlot(row=1, col=0)
        grip.setLabel("left", "gripper")
        grip.setLabel("bottom", "time", units="s")
        grip.setXLink(joints)
        joints.getAxis("bottom").setStyle(showValues=False)
        for plot in (joints, grip):
            for side in ("left", "bottom"):
                plot.getAxis(side).enableAutoSIPrefix(False)  # rad and s, never mrad or ms
            plot.getAxis("left").setWidth(52)  # equal widths keep the two time axes aligned
        self.canvas.ci.layout.setRowStretchFactor(0, 3)
        self.canvas.ci.layout.setRowStretchFactor(1, 2)
        self.joint_curves: list[tuple[pg.PlotDataItem, pg.PlotDataItem]] = []
        for j in arm:
            color = JOINT_COLORS[j % len(JOINT_COLORS)]
            commanded = joints.plot(pen=pg.mkPen(color, width=1.2, style=QtCore.Qt.PenStyle.DashLine))
            measured = joints.plot(pen=pg.mkPen(color, width=2))
            for curve in (commanded, measured):
                curve.setClipToView(True)
                curve.setDownsampling(auto=True, method="peak")
            commanded.setData(data.t, data.commanded[:, j])
            measured.setData(data.t, data.measured[:, j])
            self.joint_curves.append((measured, commanded))
        joint_keys = " ".join(f"<span style='color:{JOINT_COLORS[j % len(JOINT_COLORS)]}'>■&nbsp;{names[j]}</span>"
                              for j in arm)
        self.grip_measured = grip.plot(data.t, data.gripper_opening, pen=pg.mkPen("#2b8cbe", width=2))
        if data.gripper_commanded is not None:
            self.grip_commanded = grip.plot(data.t, data.gripper_commanded,
                                            pen=pg.mkPen("#e6550d", width=1.5, style=QtCore.Qt.PenStyle.DashLine))
            grip.setYRange(-0.05, 1.05, padding=0)
            grip_text = ("<b>Gripper</b> opening (0 closed … 1 open): <span style='color:#2b8cbe'>━ measured</span> "
                         "<span style='color:#e6550d'>╌ commanded</span>")
        else:
            self.grip_commanded = None
            grip.setYRange(-0.05, 1.05, padding=0)
            grip_text = ("<b>Gripper</b> opening (0 closed … 1 open): <span style='color:#2b8cbe'>━ measured</span> "
                         "(it never moved, so its commanded opening is unknown)")
        self.legend.setText(f"<b>Joints</b> (rad; ━ measured, ╌ commanded): {joint_keys}<br>{grip_text}"
                            " &nbsp;·&nbsp; <span style='background:#c8c8c8'>&nbsp;shaded&nbsp;</span> = trimmed out"
                            " &nbsp;·&nbsp; <span style='color:#1565c0'>┃</span> trim handles (drag)")
        joints.setXRange(0, full, padding=0.01)
        self.plots = [SignalPlot(joints, full), SignalPlot(grip, full)]
        for plot in self.plots:
            plot.cursor.sigPositionChanged.connect(self._cursor_dragged)
            plot.region.sigRegionChanged.connect(self._region_dragged)

    # -- the cursor ----------------------------------------------------------------------------
    def seek(self, t: float) -> float:
        """Move the cursor to ``t`` (clamped): plots, slider and label follow; frames are requested."""
        if self.loaded is None:
            return 0.0
        t = self.timeline.seek(t)
        self._sync_cursor()
        self._request_frames()
        self.cursor_moved.emit(t)
        return t

    @property
    def cursor(self) -> float:
        return self.timeline.cursor

    def _sync_cursor(self) -> None:
        t = self.timeline.cursor
        self._syncing = True
        try:
            for plot in self.plots:
                plot.cursor.setValue(t)
            self.slider.setValue(int(round(t * SLIDER_STEPS_PER_S)))
        finally:
            self._syncing = False
        self._update_label()

    def _update_label(self) -> None:
        if self.loaded is None:
            self.time_label.setText("—")
            return
        self.time_label.setText(f"<b>{self.timeline.cursor:7.3f} s</b> / {self.loaded.full_duration:.3f} s")

    def _slider_moved(self, value: int) -> None:
        if not self._syncing:
            self.seek(value / SLIDER_STEPS_PER_S)

    def _cursor_dragged(self, line: pg.InfiniteLine) -> None:
        if not self._syncing:
            self.pause()
            self.seek(float(line.value()))

    def _plot_clicked(self, ev: object) -> None:
        if self.loaded is None or ev.button() != QtCore.Qt.MouseButton.LeftButton:
            return
        for plot in self.plots:
            vb = plot.item.getViewBox()
            if vb.sceneBoundingRect().contains(ev.scenePos()):
                self.pause()
                self.seek(float(vb.mapSceneToView(ev.scenePos()).x()))
                return

    # -- frames --------------------------------------------------------------------------------
    def _request_frames(self) -> None:
        loaded, t = self.loaded, self.timeline.cursor
        if loaded is None:
            return
        self._request_seq += 1
        wanted = {cam: loaded.frame_index_at(cam, t) for cam in loaded.cameras}
        if self.shown_t is not None and wanted == self.shown_index:
            # The frames on screen are the ones for t: nothing to decode, and an older decode
            # still in flight (for other frames) must not replace them.
            self._shown_seq = self._request_seq
            self._frames_on_screen(t)
            return
        self.decoder.request((loaded, self._request_seq), loaded.frames_at, t)

    def _on_decoded(self, token: object, t: float, result: object) -> None:
        loaded, seq = token
        if loaded is not self.loaded or loaded is None or seq <= self._shown_seq:
            return  # an episode no longer shown, or frames older than those on screen
        self._shown_seq = seq
        if isinstance(result, str):
            for tile in self.tiles.values():
                tile.set_caption(result, warn=True)
            return
        for cam, tile in self.tiles.items():
            got = result.get(cam)
            n = len(loaded.frame_times[cam])
            if got is None:
                tile.image.clear()
                tile.shown_seq = None
                tile.set_caption("no frame yet at this time")
                self.shown_index[cam] = None
            elif isinstance(got, str):
                tile.set_caption(got, warn=True)
                self.shown_index[cam] = loaded.frame_index_at(cam, t)
            else:
                i, image = got
                tile.show_image(image, seq=i)
                self.shown_index[cam] = i
                tile.set_caption(f"frame {i + 1}/{n} · {loaded.frame_times[cam][i]:.3f} s")
        self._frames_on_screen(t)

    def _frames_on_screen(self, t: float) -> None:
        self.shown_t = t
        self.frames_shown.emit(t)

    # -- play ----------------------------------------------------------------------------------
    def toggle_play(self) -> None:
        if self.timeline.playing:
            self.pause()
        else:
            self.play()

    def play(self) -> None:
        if self.loaded is None:
            return
        self.timeline.play(from_t=self.trim.start if self.trim else 0.0)
        if self.timeline.playing:
            self._last_advance = time.monotonic()
            self.play_timer.start()
            self.play_button.setIcon(self.style().standardIcon(QtWidgets.QStyle.StandardPixmap.SP_MediaPause))
            self.seek(self.timeline.cursor)

    def pause(self) -> None:
        self.timeline.pause()
        self.play_timer.stop()
        self.play_button.setIcon(self.style().standardIcon(QtWidgets.QStyle.StandardPixmap.SP_MediaPlay))

    @property
    def playing(self) -> bool:
        return self.timeline.playing

    def _advance(self) -> None:
        now = time.monotonic()
        dt, self._last_advance = now - self._last_advance, now
        t = self.timeline.advance(dt)
        self.seek(t)
        if not self.timeline.playing:
            self.pause()

    def step(self, direction: int) -> float:
        if self.loaded is None:
            return 0.0
        self.pause()
        return self.seek(self.timeline.step(direction))

    def change_speed(self, steps: int) -> None:
        i = min(max(self.speed_box.currentIndex() + steps, 0), len(SPEEDS) - 1)
        self.speed_box.setCurrentIndex(i)

    # -- trim handles --------------------------------------------------------------------------
    def set_trim(self, start: float, end: float) -> None:
        """Put the handles at ``start``/``end`` (clamped; not written to the file)."""
        if self.trim is None:
            return
        self.trim.set(start, end)
        self._draw_trim()
        self.trim_moved.emit(self.trim.start, self.trim.end)

    def set_in(self) -> None:
        if self.trim is not None:
            self.trim.set_in(self.timeline.cursor)
            self._draw_trim()
            self.trim_moved.emit(self.trim.start, self.trim.end)

    def set_out(self) -> None:
        if self.trim is not None:
            self.trim.set_out(self.timeline.cursor)
            self._draw_trim()
            self.trim_moved.emit(self.trim.start, self.trim.end)

    def _draw_trim(self) -> None:
        if self.trim is None:
            return
        self._syncing = True
        try:
            for plot in self.plots:
                plot.show_trim(self.trim.start, self.trim.end)
        finally:
            self._syncing = False

    def _region_dragged(self, region: TrimRegion) -> None:
        if self._syncing or self.trim is None:
            return
        start, end = region.getRegion()
        self.set_trim(float(start), float(end))

    # -- teardown ------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop playing and the decoder thread (the window is closing)."""
        self.pause()
        self.decoder.stop()
