"""The Live tab: camera tiles, joint plots, recording controls, input device and gripper gauge.

GUI thread only; :meth:`LiveView.refresh` pulls snapshots (frames, ticks, the
session's state) and never waits on the loop or a camera. It shows what the
robot reports about the task, offers keeping an episode as a success once the
robot reports it (:mod:`teleop_app.success_keeping` decides), and, while the
keyboard drives, draws the base's axes on the tiles of cameras whose pose is
known (:mod:`teleop_app.axes_aid`).
"""

from __future__ import annotations

import html
import time

from PySide6 import QtCore, QtWidgets

from drivers.keyboard import KeyboardInput
from teleop_app.axes_aid import base_axes, camera_pose
from teleop_app.modes import Mode
from teleop_app.operator_session import OperatorSession
from teleop_app.runs import RunKind
from teleop_app.success_keeping import SuccessKeeping
from ui.axes_overlay import AxesOverlay
from ui.gripper_gauge import GripperGauge
from ui.image_tile import ImageTile
from ui.input_panel import InputPanel
from ui.joint_plots import JointPlots
from ui.live_tiles import show_latest
from ui.recording_panel import RecordingPanel
from ui.tick_history import TickHistory


class LiveView(QtWidgets.QWidget):
    """Refreshed by the window's timer through :meth:`refresh`; never blocks on the loop or a camera."""

    def __init__(self, session: OperatorSession, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        rig = session.rig
        self.history = TickHistory(rig.robot.n_joints, capacity=int(rig.loop.rate_hz * 12))
        self.ticks = rig.loop.subscribe("gui", maxsize=int(rig.loop.rate_hz * 2))
        self._plotted_upto = 0  # history.n when the plots were last drawn

        self.tiles: dict[str, ImageTile] = {}
        cams = QtWidgets.QHBoxLayout()
        for name in rig.cameras:
            tile = ImageTile(name)
            self.tiles[name] = tile
            cams.addWidget(tile, 1)
        if not rig.cameras:
            cams.addWidget(QtWidgets.QLabel("This rig has no cameras."))
        self.plots = JointPlots(tuple(rig.robot.joint_names))
        self.keyboard_aids: dict[str, AxesOverlay] = {}  # camera -> the base's axes drawn on its tile
        self._aid_pending = {name for name, cam in rig.cameras.items() if camera_pose(cam) is not None}

        left = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        cam_box = QtWidgets.QWidget()
        cam_box.setLayout(cams)
        left.addWidget(cam_box)
        left.addWidget(self.plots)
        left.setStretchFactor(0, 3)
        left.setStretchFactor(1, 2)
        self.splitter = left

        self.recording = RecordingPanel()
        self.keeping = SuccessKeeping(session)
        self.keeping.apply()
        self.recording.keep_on_success_chosen.connect(self.keeping.choose)
        self.input_panel = InputPanel(rig.inputs)
        self.gripper = GripperGauge()
        grip_box = QtWidgets.QGroupBox("Gripper")
        QtWidgets.QVBoxLayout(grip_box).addWidget(self.gripper)
        right = QtWidgets.QVBoxLayout()
        right.addWidget(self.recording)
        right.addWidget(self.input_panel)
        right.addWidget(grip_box)
        right.addStretch(1)
        side_inner = QtWidgets.QWidget()
        side_inner.setLayout(right)
        right.setContentsMargins(0, 0, 0, 0)
        side = QtWidgets.QScrollArea()  # on a small screen the lower panels scroll; the recording panel is first
        side.setWidget(side_inner)
        side.setWidgetResizable(True)
        side.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        side.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        side.setFixedWidth(370)

        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(left, 1)
        layout.addWidget(side)

    def refresh(self) -> None:
        """Pull the newest frames and ticks (called at ~30 Hz)."""
        session, rig = self.session, self.session.rig
        now = time.monotonic()
        for name, tile in self.tiles.items():
            show_latest(rig.cameras[name], tile, now)
        self._show_keyboard_aid()
        if self.take_ticks() or self._plotted_upto != self.history.n:
            self.plots.update_from(self.history, now)
            self._plotted_upto = self.history.n
        latest = rig.loop.latest()
        if latest is not None:
            self.gripper.set_values(rig.robot.joint_to_gripper(float(latest.command[-1])), latest.state.gripper)
        driving = session.mode in (Mode.TELEOP, Mode.INTERVENTION) and not session.stopped
        inputs = rig.inputs  # one consistent view: the replay input comes and goes between ticks
        active = session.active_input
        self.input_panel.set_active(active)
        self.keeping.apply()  # the active input may have changed (a key, a device button, the window)
        device = inputs.get(active) if active else None
        error = device.error if device is not None else None
        self.input_panel.show_state(rig.loop.last_input, driving, self._input_hint(driving), error)
        self.input_panel.show_others({
            name: (None if dev.read_has_side_effects else dev.read().connected, dev.error)
            for name, dev in inputs.items() if name != active
        })
        self.recording.show_state(
            recording=session.recording, elapsed_s=session.elapsed_s, episodes=self._episode_count(),
            folder=str(session.dataset_dir), task=session.task, can_reset=rig.robot.can_reset_scene,
            armed=not session.stopped and (session.running is None or session.running.kind is RunKind.EPISODE),
            success=rig.robot.success(), keep_on_success=self.keeping.enabled() if self.keeping.available else None,
            after_success_s=self.keeping.after_success_s,
            wrong_object=rig.robot.wrong_object(),
        )
        self.recording.message.setText(self._next_step())

    def _show_keyboard_aid(self) -> None:
        """The base's axes on the tiles of cameras with a known pose, while the keyboard is the active input."""
        rig = self.session.rig
        for name in list(self._aid_pending):
            cam, frame = rig.cameras[name], rig.cameras[name].latest()
            if cam.intrinsics is None or frame is None:
                continue  # the camera reports its intrinsics once it runs
            self._aid_pending.discard(name)
            size = (cam.intrinsics["width"], cam.intrinsics["height"])
            if size == (frame.image.shape[1], frame.image.shape[0]):  # else the projection is not this image's
                arrows = base_axes(camera_pose(cam), cam.intrinsics)
                if arrows:
                    self.keyboard_aids[name] = AxesOverlay(self.tiles[name], arrows, size[0])
        keyboard = isinstance(rig.inputs.get(self.session.active_input or ""), KeyboardInput)
        for overlay in self.keyboard_aids.values():
            overlay.set_visible(keyboard)

    def take_ticks(self) -> int:
        """Move the loop's new ticks into the plots' history; the window calls it on every refresh, shown or
        not, so the bounded tick queue never fills and the history has no hole where another tab was shown."""
        return self.history.extend(self.ticks.drain())

    def _next_step(self) -> str:
        """What to do next, in one line, for someone who has not read anything."""
        session = self.session
        run = session.running
        if run is not None and run.kind is RunKind.EPISODE and run.rules.after_success_s is not None:
            return (f"It ends by itself, kept as a success, {run.rules.after_success_s:g} s after the robot reports "
                    "success; <b>G</b> / <b>B</b> / <b>Backspace</b> end it now.")
        if run is not None and run.kind is RunKind.EPISODE:
            return "Drive the arm. Then <b>G</b> keeps it as a success, <b>B</b> as a failure, <b>Backspace</b> discards."
        if run is not None and run.kind is RunKind.ROLLOUT:
            return f"A policy drives ({html.escape(run.driver)}): watch it on the <b>Policy</b> tab; <b>Esc</b> stops it."
        if run is not None:
            return f"Replaying {html.escape(run.driver)} on the robot (Review tab); <b>Esc</b> stops it."
        last = session.last_result
        done = ""
        if last is not None and last.outcome == "failed":
            return f"<b style='color:#d33'>Recording stopped: {html.escape(last.detail)}</b>"
        if last is not None and last.kind is RunKind.EPISODE:
            name = last.path.name if last.path else "The episode"
            done = f"{name}: {'discarded' if last.path is None else 'kept as ' + last.outcome}. "
        if session.stopped:
            return done + "The robot is stopped: check the scene, then <b>Re-arm</b> (Ctrl+R)."
        if not session.task:
            return done + ("Type what the robot should do in <b>Task</b> and press <b>Enter</b>; "
                           "<b>Enter</b> again starts recording.")
        return done + "Press <b>Enter</b> to start an episode."

    _count_cache: tuple[float, int] = (0.0, 0)

    def _episode_count(self) -> int:
        """Counted from the folder at most once a second (it lists a directory)."""
        t, n = self._count_cache
        if time.monotonic() - t > 1.0:
            n = self.session.episode_count
            self._count_cache = (time.monotonic(), n)
        return n

    def forget_episode_count(self) -> None:
        self._count_cache = (0.0, 0)

    def _input_hint(self, driving: bool) -> str:
        session = self.session
        if session.stopped:
            return "The robot is stopped. Press Re-arm (Ctrl+R) to move again."
        if session.mode is Mode.POLICY:
            return "A policy drives the robot (Policy tab). Move the takeover input, or press Take over, to drive."
        if session.mode is Mode.REPLAY:
            return "A recorded episode is being replayed on the robot (Review tab)."
        if not driving:
            return "Teleop is off: tick “Teleop” at the top to drive."
        name = session.active_input
        if name and isinstance(session.rig.inputs.get(name), KeyboardInput):
            return ("Keys: W/S forward/back · A/D left/right · R/F up/down · J/L roll · I/K pitch · "
                    "U/O yaw · Space gripper (the arrows on the camera show W/S, A/D, R/F). Click an empty spot "
                    "if a text field has the keys.")
        return ""
