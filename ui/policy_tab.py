"""The Policy tab: load a checkpoint or connect to a server, run it, watch every chunk, take over by hand.

A thin view over :class:`~teleop_app.operator_session.OperatorSession` (all the
rules live there: a kill ends the rollout, keeping its episode, so a re-arm never
hands the robot back to the policy): the window calls :meth:`PolicyTab.refresh` at
~30 Hz while the tab is shown and it draws :func:`~teleop_app.policy_view.policy_status`;
loading runs on a worker thread; session events arrive through the
:class:`~ui.bridge.SessionBridge`.
"""

from __future__ import annotations

import re
import time

from PySide6 import QtCore, QtWidgets

from drivers.keyboard import KeyboardInput
from policies.base import ActionKind, PolicyInfo
from policies.strategies import BLENDS
from policies.loading import LoadOptions, is_server
from teleop_app.errors import OperatorError, one_line
from teleop_app.events import Event
from teleop_app.policy_view import PolicyStatus, SentTrail, chunk_curves, policy_status, policy_text
from teleop_app.rollouts import RolloutOptions, StrategyOptions, dim_names
from teleop_app.runs import RunKind
from teleop_app.takeover import TakeoverConfig
from ui.bridge import SessionBridge
from ui.chunk_plot import ChunkPlots
from ui.gripper_gauge import GripperGauge
from ui.image_tile import ImageTile
from ui.live_tiles import show_latest
from ui.workers import Task, TaskRunner

STYLE = """
#takeoverBanner { background: #e65100; color: white; font-size: 22px; font-weight: bold;
                  border-radius: 6px; padding: 8px; }
#policyHeadline { font-size: 15px; }
#successLabel { color: #2e7d32; font-size: 16px; font-weight: bold; }
#policyStart { font-weight: bold; }
"""
STRATEGY_LABELS = {"open-loop": "Open loop (re-plan every n)", "ensemble": "Temporal ensemble (ACT)",
                   "async": "Asynchronous (blend overlap)"}
PHASE_STYLE = {"running": "color:#2e7d32; font-weight:bold", "takeover": "color:#e65100; font-weight:bold",
               "stopped": "color:#c62828; font-weight:bold", "loading": "color:#555", "ready": "",
               "empty": "color:#555"}
NO_TAKEOVER = "none: the Take over button only"


class PolicyTab(QtWidgets.QWidget):
    """See the module docstring; :attr:`session` is the model, usable from tests without the widgets."""

    def __init__(self, bridge: SessionBridge, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.session = bridge.session
        self.rig = self.session.rig
        self.sent = SentTrail()  # targets that reached the robot, sampled at this view's rate
        self.loader = TaskRunner(threads=1, parent=self)
        self.last_status: PolicyStatus | None = None
        self.setStyleSheet(STYLE)

        side = QtWidgets.QWidget()
        v = QtWidgets.QVBoxLayout(side)
        v.setContentsMargins(0, 0, 4, 0)
        v.addWidget(self._build_policy_box())
        v.addWidget(self._build_strategy_box())
        v.addWidget(self._build_takeover_box())
        v.addStretch(1)
        scroll = QtWidgets.QScrollArea()  # the settings scroll on a small screen; the Run box never does
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        right = QtWidgets.QWidget()
        right.setFixedWidth(400)
        column = QtWidgets.QVBoxLayout(right)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(scroll, 1)
        column.addWidget(self._build_run_box())

        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(self._build_left(), 1)
        layout.addWidget(right)

        bridge.changed.connect(self._on_session_event)
        self._sync_task()
        self.refresh()

    # -- layout --------------------------------------------------------------------------------
    @staticmethod
    def _button(text: str, slot, tip: str = "") -> QtWidgets.QPushButton:
        button = QtWidgets.QPushButton(text)
        button.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)  # keys keep going to the takeover keyboard
        button.clicked.connect(lambda _=False: slot())
        button.setToolTip(tip)
        return button

    def _build_left(self) -> QtWidgets.QVBoxLayout:
        self.banner = QtWidgets.QLabel()
        self.banner.setObjectName("takeoverBanner")
        self.banner.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.banner.setWordWrap(True)
        self.banner.hide()
        self.headline = QtWidgets.QLabel()
        self.headline.setObjectName("policyHeadline")
        self.headline.setWordWrap(True)
        self.success_label = QtWidgets.QLabel()
        self.success_label.setObjectName("successLabel")
        self.success_label.setWordWrap(True)
        self.plots = ChunkPlots()
        self.stats_label = QtWidgets.QLabel("no run yet")
        self.stats_label.setWordWrap(True)
        self.gripper = GripperGauge()
        grip_box = QtWidgets.QGroupBox("Gripper")
        QtWidgets.QVBoxLayout(grip_box).addWidget(self.gripper)
        info = QtWidgets.QVBoxLayout()
        info.addWidget(grip_box)
        info.addWidget(QtWidgets.QLabel("<b>Inference</b>"))
        info.addWidget(self.stats_label)
        info.addWidget(self.success_label)
        info.addStretch(1)
        info_box = QtWidgets.QWidget()
        info_box.setLayout(info)
        info_box.setFixedWidth(300)
        # what the policy sees: every camera of the rig (a loaded policy gets them all), from the same frames
        self.tiles: dict[str, ImageTile] = {name: ImageTile(name) for name in self.rig.cameras}
        top = QtWidgets.QHBoxLayout()
        for tile in self.tiles.values():
            top.addWidget(tile, 1)
        top.addWidget(info_box)
        top_box = QtWidgets.QWidget()
        top_box.setLayout(top)
        top.setContentsMargins(0, 0, 0, 0)
        left = QtWidgets.QVBoxLayout()
        left.addWidget(self.banner)
        left.addWidget(self.headline)
        left.addWidget(top_box, 2)
        left.addWidget(self.plots, 3)
        return left

    def _build_policy_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Policy")
        v = QtWidgets.QVBoxLayout(box)
        row = QtWidgets.QHBoxLayout()
        self.spec_edit = QtWidgets.QLineEdit()
        self.spec_edit.setPlaceholderText("checkpoint file, ws://HOST:PORT or http://HOST:PORT/act")
        self.spec_edit.setToolTip("A checkpoint file (loaded here), an openpi server (ws://HOST:PORT) or an "
                                  "OpenVLA deploy server (http://HOST:PORT/act)")
        self.spec_edit.textChanged.connect(lambda _: self._update_server_box())
        row.addWidget(self.spec_edit, 1)
        row.addWidget(self._button("Browse…", self._browse, "Choose a checkpoint file"))
        v.addLayout(row)

        self.server_box = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(self.server_box)
        form.setContentsMargins(0, 0, 0, 0)
        self.action_kind = QtWidgets.QComboBox()
        self.action_kind.addItem("server default", None)
        self.action_kind.addItem("joint targets", ActionKind.JOINT.value)
        self.action_kind.addItem("end-effector steps", ActionKind.EE_DELTA.value)
        self.action_kind.setToolTip("What the server's actions are (openpi default: joint targets; "
                                    "OpenVLA: end-effector steps)")
        form.addRow("Actions", self.action_kind)
        self.chunk_spin = QtWidgets.QSpinBox()
        self.chunk_spin.setRange(0, 1000)
        self.chunk_spin.setSpecialValueText("as the server answers")
        self.chunk_spin.setToolTip("Actions per answer, if known (it sets the strategies' defaults)")
        form.addRow("Chunk length", self.chunk_spin)
        self.obs_map = QtWidgets.QLineEdit()
        self.obs_map.setPlaceholderText("openpi default: images front, wrist; state; prompt")
        self.obs_map.setToolTip("openpi: KEY=STREAM items separated by spaces or commas; streams: state, joints, "
                                "gripper, ee_pos, task, image:CAMERA, image_chw:CAMERA")
        form.addRow("Observation", self.obs_map)
        v.addWidget(self.server_box)

        timeout_row = QtWidgets.QHBoxLayout()
        self.timeout_spin = QtWidgets.QDoubleSpinBox()
        self.timeout_spin.setRange(0.1, 60.0)
        self.timeout_spin.setValue(5.0)
        self.timeout_spin.setSuffix(" s")
        self.timeout_spin.setToolTip("An answer later than this stops the robot (kill switch)")
        timeout_row.addWidget(QtWidgets.QLabel("Answer timeout"))
        timeout_row.addWidget(self.timeout_spin)
        timeout_row.addStretch(1)
        self.load_button = self._button("Load / Connect", self.load, "Load the checkpoint or connect to the server")
        timeout_row.addWidget(self.load_button)
        v.addLayout(timeout_row)
        self.load_progress = QtWidgets.QProgressBar()
        self.load_progress.setRange(0, 0)  # busy: a connection or a load has no steps to count
        self.load_progress.setMaximumHeight(10)
        self.load_progress.setTextVisible(False)
        self.load_progress.hide()
        v.addWidget(self.load_progress)
        self.load_status = QtWidgets.QLabel("nothing loaded")
        self.load_status.setWordWrap(True)
        self.load_status.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        v.addWidget(self.load_status)
        self._update_server_box()
        return box

    def _build_strategy_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Chunk execution")
        v = QtWidgets.QVBoxLayout(box)
        self.strategy = QtWidgets.QComboBox()
        for name, label in STRATEGY_LABELS.items():
            self.strategy.addItem(label, name)
        v.addWidget(self.strategy)
        self.strategy_pages = QtWidgets.QStackedWidget()

        page = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(page)
        form.setContentsMargins(0, 0, 0, 0)
        self.replan_spin = QtWidgets.QSpinBox()
        self.replan_spin.setRange(0, 1000)
        self.replan_spin.setSpecialValueText("whole chunk")
        self.replan_spin.setToolTip("Actions run from each chunk before asking again; the robot holds while "
                                    "the model thinks")
        form.addRow("Re-plan every", self.replan_spin)
        self.strategy_pages.addWidget(page)

        page = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(page)
        form.setContentsMargins(0, 0, 0, 0)
        self.k_spin = QtWidgets.QDoubleSpinBox()
        self.k_spin.setDecimals(3)
        self.k_spin.setRange(0.0, 10.0)
        self.k_spin.setSingleStep(0.01)
        self.k_spin.setValue(0.01)
        self.k_spin.setToolTip("Weights exp(-k·i), i = 0 the oldest chunk covering a tick (ACT uses 0.01)")
        form.addRow("k", self.k_spin)
        self.strategy_pages.addWidget(page)

        page = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(page)
        form.setContentsMargins(0, 0, 0, 0)
        self.threshold_spin = QtWidgets.QSpinBox()
        self.threshold_spin.setRange(0, 1000)
        self.threshold_spin.setSpecialValueText("half a chunk")
        self.threshold_spin.setToolTip("Ask for the next chunk when fewer planned actions than this remain")
        form.addRow("Threshold", self.threshold_spin)
        self.blend = QtWidgets.QComboBox()
        for name in BLENDS:
            self.blend.addItem({"latest": "newest chunk replaces", "weighted": "weighted mix",
                                "crossfade": "cross-fade the overlap"}.get(name, name), name)
        form.addRow("Blend", self.blend)
        self.rtc_box = QtWidgets.QCheckBox("real-time chunking")
        self.rtc_box.setChecked(True)
        self.rtc_box.setToolTip("For policies that can continue a plan (the built-in flow head): each new chunk "
                                "starts with the actions the robot runs while the model thinks, and joins the "
                                "rest smoothly. Other policies ignore it.")
        form.addRow("", self.rtc_box)
        self.strategy_pages.addWidget(page)

        self.strategy.currentIndexChanged.connect(self.strategy_pages.setCurrentIndex)
        self.strategy.setCurrentIndex(list(STRATEGY_LABELS).index("async"))
        v.addWidget(self.strategy_pages)
        speed_row = QtWidgets.QFormLayout()
        speed_row.setContentsMargins(0, 0, 0, 0)
        self.speed_spin = QtWidgets.QDoubleSpinBox()
        self.speed_spin.setRange(0.25, 3.0)
        self.speed_spin.setSingleStep(0.1)
        self.speed_spin.setDecimals(2)
        self.speed_spin.setValue(1.0)
        self.speed_spin.setSuffix(" ×")
        self.speed_spin.setToolTip("Run each chunk this many times faster (or slower) than the policy planned it; "
                                   "a speed-up never steps a joint beyond the rig's step limit. Written in the "
                                   "rollout's notes.")
        speed_row.addRow("Speed", self.speed_spin)
        self.smooth_spin = QtWidgets.QDoubleSpinBox()
        self.smooth_spin.setRange(0.0, 20.0)
        self.smooth_spin.setSingleStep(0.5)
        self.smooth_spin.setDecimals(1)
        self.smooth_spin.setSpecialValueText("off")
        self.smooth_spin.setSuffix(" Hz")
        self.smooth_spin.setToolTip("Low-pass the actions sent to the robot at this cutoff: removes the direction "
                                    "changes of re-planning, at a lag of 1/(π·cutoff) seconds. Written in the "
                                    "rollout's notes.")
        speed_row.addRow("Low-pass", self.smooth_spin)
        v.addLayout(speed_row)
        return box

    def _build_takeover_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Task and takeover")
        form = QtWidgets.QFormLayout(box)
        self.task_edit = QtWidgets.QLineEdit()
        self.task_edit.setPlaceholderText("what the robot should do (sent to the policy)")
        self.task_edit.setToolTip("The task sentence (shared with the Live tab); used from the next Start")
        self.task_edit.editingFinished.connect(self._task_edited)
        form.addRow("Task", self.task_edit)
        self.takeover_input = QtWidgets.QComboBox()
        for name in self.rig.inputs:
            self.takeover_input.addItem(name, name)
        self.takeover_input.addItem(NO_TAKEOVER, "")
        self.takeover_input.setCurrentIndex(self.takeover_input.findData(self._default_takeover_input()))
        self.takeover_input.setToolTip("Moving this device while the policy runs pauses it and gives you control")
        self.takeover_input.currentIndexChanged.connect(lambda _: self._update_takeover_hint())
        form.addRow("Take over with", self.takeover_input)
        defaults = TakeoverConfig()
        self.twist_spin = QtWidgets.QDoubleSpinBox()
        self.twist_spin.setDecimals(3)
        self.twist_spin.setRange(0.001, 2.0)
        self.twist_spin.setSingleStep(0.01)
        self.twist_spin.setValue(defaults.twist_threshold)
        self.twist_spin.setToolTip("SpaceMouse, keyboard: a twist above this (m/s, rad/s) is a takeover")
        form.addRow("Twist above", self.twist_spin)
        self.joint_spin = QtWidgets.QDoubleSpinBox()
        self.joint_spin.setDecimals(3)
        self.joint_spin.setRange(0.001, 3.0)
        self.joint_spin.setSingleStep(0.01)
        self.joint_spin.setValue(defaults.joint_threshold)
        self.joint_spin.setSuffix(" rad")
        self.joint_spin.setToolTip("Leader arm: a joint moved more than this from where it rested is a takeover")
        form.addRow("Leader moves", self.joint_spin)
        row = QtWidgets.QHBoxLayout()
        self.auto_hand_back = QtWidgets.QCheckBox("hand back after")
        self.auto_hand_back.setChecked(defaults.auto_hand_back)
        self.auto_hand_back.setToolTip("Give control back to the policy when you have let go this long")
        self.release_spin = QtWidgets.QDoubleSpinBox()
        self.release_spin.setRange(0.1, 30.0)
        self.release_spin.setValue(defaults.release_s)
        self.release_spin.setSuffix(" s still")
        self.auto_hand_back.toggled.connect(self.release_spin.setEnabled)
        row.addWidget(self.auto_hand_back)
        row.addWidget(self.release_spin)
        row.addStretch(1)
        form.addRow("", row)
        self.takeover_hint = QtWidgets.QLabel()
        self.takeover_hint.setObjectName("hint")
        self.takeover_hint.setWordWrap(True)
        form.addRow(self.takeover_hint)
        self._update_takeover_hint()
        return box

    def _build_run_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Run")
        v = QtWidgets.QVBoxLayout(box)
        self.record_box = QtWidgets.QCheckBox("record rollouts")
        self.record_box.setToolTip("Record each run as an episode in the session's dataset folder "
                                   "(ticks labelled policy / intervention)")
        self.reset_box = QtWidgets.QCheckBox("reset the scene before each run")
        self.reset_box.setToolTip("The sim puts the arm home and the cube somewhere new")
        self.reset_box.setChecked(self.rig.robot.can_reset_scene)
        self.reset_box.setVisible(self.rig.robot.can_reset_scene)
        for check in (self.record_box, self.reset_box):
            check.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
            v.addWidget(check)
        self.folder_label = QtWidgets.QLabel()
        self.folder_label.setObjectName("hint")
        self.folder_label.setWordWrap(True)
        v.addWidget(self.folder_label)
        grid = QtWidgets.QGridLayout()
        self.start_button = self._button("▶ Start", self.start, "Hand the robot to the policy")
        self.start_button.setObjectName("policyStart")
        self.stop_button = self._button("■ Stop", self.stop, "Take the robot from the policy: it holds "
                                        "(the recorded rollout is kept)")
        self.take_over_button = self._button("Take over", self.take_over, "Pause the policy and drive with "
                                             "the takeover input until Hand back")
        self.hand_back_button = self._button("Hand back", self.hand_back, "Give the robot back to the policy")
        grid.addWidget(self.start_button, 0, 0)
        grid.addWidget(self.stop_button, 0, 1)
        grid.addWidget(self.take_over_button, 1, 0)
        grid.addWidget(self.hand_back_button, 1, 1)
        v.addLayout(grid)
        self.recording_label = QtWidgets.QLabel()
        self.recording_label.setWordWrap(True)
        v.addWidget(self.recording_label)
        self.message = QtWidgets.QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        v.addWidget(self.message)
        return box

    def _default_takeover_input(self) -> str:
        """The active input, unless it is a script (it always moves): then the first human one, else none."""
        human = [name for name, dev in self.rig.inputs.items() if not dev.read_has_side_effects]
        active = self.session.active_input
        return active if active in human else (human[0] if human else "")

    # -- options from the widgets ---------------------------------------------------------------
    def load_options(self) -> LoadOptions:
        items = tuple(i for i in re.split(r"[\s,]+", self.obs_map.text().strip()) if i)
        return LoadOptions(spec=self.spec_edit.text().strip(), action_kind=self.action_kind.currentData(),
                           chunk_length=self.chunk_spin.value() or None, obs_map=items or None,
                           timeout_s=self.timeout_spin.value())

    def run_options(self) -> RolloutOptions:
        strategy = StrategyOptions(name=self.strategy.currentData(), replan_every=self.replan_spin.value() or None,
                                   k=self.k_spin.value(), threshold=self.threshold_spin.value() or None,
                                   blend=self.blend.currentData(), rtc=self.rtc_box.isChecked(),
                                   smooth_hz=self.smooth_spin.value())
        device = self.takeover_input.currentData()
        takeover = None if not device else TakeoverConfig(
            input=device, twist_threshold=self.twist_spin.value(), joint_threshold=self.joint_spin.value(),
            auto_hand_back=self.auto_hand_back.isChecked(), release_s=self.release_spin.value())
        return RolloutOptions(strategy=strategy, takeover=takeover, record=self.record_box.isChecked(),
                          reset_scene=self.reset_box.isChecked(), speed=self.speed_spin.value())

    # -- intent ---------------------------------------------------------------------------------
    def show_message(self, text: str, error: bool = False) -> None:
        """One line under the Run buttons; errors in red (never a traceback)."""
        self.message.setText(text)
        self.message.setStyleSheet("color:#c62828; font-weight:bold" if error else "")

    def load(self) -> None:
        if self.loader.busy:
            return
        options = self.load_options()
        try:
            if self._rollout_running():
                raise OperatorError("stop the running policy before loading another")
            if not options.spec:
                raise OperatorError("enter a checkpoint file or a server address first")
        except OperatorError as exc:
            self._show_load(str(exc), error=True)
            return
        verb = "connecting to" if is_server(options.spec) else "loading"
        self._show_load(f"{verb} {options.spec} …")
        self.load_button.setEnabled(False)
        self.load_progress.show()
        task = Task(self._load_job, options, with_progress=False)
        task.signals.done.connect(self._loaded)
        task.signals.failed.connect(lambda reason: self._loaded(OperatorError(reason)))
        self.loader.start(task)

    def _rollout_running(self) -> bool:
        run = self.session.running
        return run is not None and run.kind is RunKind.ROLLOUT

    def _load_job(self, options: LoadOptions) -> PolicyInfo | OperatorError:
        """On the worker: an expected failure comes back as a value (one line), not as a traceback."""
        try:
            return self.session.load_policy(options)
        except OperatorError as exc:
            return exc

    def _loaded(self, result: PolicyInfo | OperatorError) -> None:
        self.load_button.setEnabled(True)
        self.load_progress.hide()
        if isinstance(result, Exception):
            self._show_load(one_line(result), error=True)
            return
        self._show_load(f"✓ {policy_text(self.session)}")
        rate = self.rig.loop.rate_hz
        future_s = 1.15 * result.chunk_length / rate if result.chunk_length else None
        unit = "rad" if result.action_kind is ActionKind.JOINT else ""
        self.plots.set_dims(dim_names(result, self.rig.robot.joint_names), future_s, unit)
        self.refresh()

    def _show_load(self, text: str, error: bool = False) -> None:
        self.load_status.setText(text)
        self.load_status.setStyleSheet("color:#c62828; font-weight:bold" if error else "")

    def _browse(self) -> None:
        from policies.loading import FILE_LOADERS

        patterns = " ".join(f"*{suffix}" for suffix in sorted(FILE_LOADERS))
        filters = (f"Checkpoints ({patterns});;" if patterns else "") + "All files (*)"
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Policy checkpoint", self.spec_edit.text(), filters)
        if path:
            self.spec_edit.setText(path)

    def start(self) -> bool:
        self._task_edited()
        try:
            self.session.start_rollout(self.run_options())
        except OperatorError as exc:
            self.show_message(str(exc), error=True)
            self.refresh()
            return False
        self.sent.clear()
        self.show_message(self.session.message)
        self.refresh()
        return True

    def stop(self) -> None:
        self._act(self.session.stop_rollout)

    def take_over(self) -> None:
        self._act(self.session.take_over)

    def hand_back(self) -> None:
        self._act(self.session.hand_back)

    def _act(self, fn) -> None:
        try:
            fn()
        except Exception as exc:  # a refusal or a loop that did not answer: a line, not a dialog
            self.show_message(one_line(exc), error=True)
        else:
            self.show_message(self.session.message)
        self.refresh()

    def _task_edited(self) -> None:
        text = self.task_edit.text().strip()
        if text != self.session.task:
            self.session.set_task(text)

    def _sync_task(self) -> None:
        if not self.task_edit.hasFocus() and self.task_edit.text() != self.session.task:
            self.task_edit.setText(self.session.task)

    def _update_server_box(self) -> None:
        self.server_box.setEnabled(is_server(self.spec_edit.text()))

    def _update_takeover_hint(self) -> None:
        device = self.takeover_input.currentData()
        if not device:
            self.takeover_hint.setText("Only the Take over button gives you control; the active input drives then.")
        elif isinstance(self.rig.inputs[device], KeyboardInput):
            self.takeover_hint.setText("Hold a motion key (W/S, A/D, R/F, …) to take over; let go to hand back.")
        else:
            self.takeover_hint.setText(f"Move the {device} to take over; let go to hand back.")

    # -- session events and refresh ---------------------------------------------------------------
    def _on_session_event(self, event: Event) -> None:
        if event is Event.RUN:  # e.g. the kill switch or the window's Teleop box ended the rollout
            run = self.session.run
            if run is not None and run.kind is RunKind.ROLLOUT and not run.active:
                self.show_message(self.session.message, error=self.session.message_is_error)
            self.refresh()
        elif event in (Event.KILL, Event.MODE):
            self.refresh()
        elif event is Event.TASK:
            self._sync_task()

    def refresh(self) -> None:
        """Pull the session's state and the runner's plan (the window calls this at ~30 Hz while shown)."""
        now = time.monotonic()
        for name, tile in self.tiles.items():
            show_latest(self.rig.cameras[name], tile, now)
        status = policy_status(self.session, self.sent)
        self.last_status = status
        self.headline.setText(status.headline)
        _set_style(self.headline, PHASE_STYLE.get(status.phase, ""))
        self.banner.setText(status.banner)
        self.banner.setVisible(bool(status.banner))
        if status.view is not None and status.now_tick is not None and self.plots.plots:
            self.plots.show_curves(chunk_curves(status.view, status.now_tick, self.rig.loop.rate_hz,
                                                self.plots.past_s, self.sent))
        self.gripper.set_values(*status.gripper)
        self.stats_label.setText(status.stats)
        self.success_label.setText("✓ SUCCESS — the robot reports the task done" if status.success else "")
        self.recording_label.setText(status.recording)
        _set_style(self.recording_label, "color:#d33; font-weight:bold" if status.recording.startswith("●") else "")
        self.folder_label.setText(f"into {self.session.dataset_dir}")
        busy = self.loader.busy
        self.start_button.setEnabled(not status.can_stop and not busy)  # a refusal explains itself when clicked
        self.stop_button.setEnabled(status.can_stop)
        self.take_over_button.setEnabled(status.can_take_over)
        self.hand_back_button.setEnabled(status.can_hand_back)
        self.load_button.setEnabled(not busy and not status.can_stop)
        running = status.phase in ("running", "takeover")
        for widget in (self.strategy, self.strategy_pages, self.takeover_input, self.twist_spin, self.joint_spin,
                       self.auto_hand_back, self.record_box, self.reset_box, self.speed_spin, self.smooth_spin):
            widget.setEnabled(not running)
        self.release_spin.setEnabled(not running and self.auto_hand_back.isChecked())

    # -- window integration -----------------------------------------------------------------------
    def help_sections(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """This tab's keys and gestures for the window's help overlay."""
        return [("Policy tab", [
            ("Esc", "STOP: the robot holds; the policy is stopped (Re-arm, then Start to run it again)"),
            ("move the takeover input", "HUMAN TAKEOVER: the policy pauses and you drive; let go to hand back"),
            ("W/S A/D R/F …", "with Keyboard as the takeover input: take over and drive"),
        ])]

    def remembered_fields(self) -> dict[str, QtWidgets.QWidget]:
        """The fields the window keeps between runs (the task is the session's, kept by the window)."""
        fields = {"policy": self.spec_edit, "actions": self.action_kind, "chunk_length": self.chunk_spin,
                  "observation": self.obs_map, "timeout_s": self.timeout_spin, "strategy": self.strategy,
                  "replan_every": self.replan_spin, "k": self.k_spin, "threshold": self.threshold_spin,
                  "blend": self.blend, "takeover_input": self.takeover_input, "twist_threshold": self.twist_spin,
                  "joint_threshold": self.joint_spin, "auto_hand_back": self.auto_hand_back,
                  "release_s": self.release_spin, "record": self.record_box, "low_pass_hz": self.smooth_spin}
        if self.rig.robot.can_reset_scene:  # a real robot never resets itself, whatever a sim run chose
            fields["reset_scene"] = self.reset_box
        return fields

    def shutdown(self) -> None:
        """Call when the window closes: waits for a load (the session ends a rollout and closes the policy)."""
        self.loader.wait(15_000)


def _set_style(widget: QtWidgets.QWidget, css: str) -> None:
    """Only when it changes: a style sheet re-polishes the widget, too costly to repeat at 30 Hz."""
    if widget.styleSheet() != css:
        widget.setStyleSheet(css)
