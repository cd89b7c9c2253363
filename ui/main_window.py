"""The operator console window: the STOP bar, the Live and Review tabs, the status bar.

The window reads snapshots on a ~30 Hz timer and forwards user intent to the
:class:`~teleop_app.operator_session.OperatorSession`, which owns every rule (when an
episode ends, what a kill means); the window never waits on the control loop.
Keys are routed by one application-wide event filter so that Esc is STOP
whatever has focus, in any of the application's windows (a dialog too), and teleop keys reach the keyboard device only while the
Live tab is shown and no text field is being typed in.
"""

from __future__ import annotations

import html

from PySide6 import QtCore, QtGui, QtWidgets

from drivers.keyboard import GRIPPER_KEY, MOTION_KEYS, KeyboardInput
from drivers.streams import RateMeter
from teleop_app.errors import OperatorError
from teleop_app.events import Event
from teleop_app.loop import LoopNotAnswering
from teleop_app.modes import Mode
from teleop_app.operator_session import OperatorSession
from ui.bridge import SessionBridge
from ui.help_overlay import HelpOverlay, shortcut_sections
from ui.live_view import LiveView
from ui.recording_panel import EPISODE_KEYS
from ui.compare_tab import CompareTab
from ui.policy_tab import PolicyTab
from ui.remembered import fit_on_screen, restore_fields, save_fields
from ui.review_tab import ReviewTab

STYLE = """
#stopButton { background: #c62828; color: white; font-size: 20px; font-weight: bold;
              border-radius: 6px; padding: 6px 18px; }
#stopButton:pressed { background: #8e0000; }
#startButton { font-weight: bold; }
#tileCaption { color: #555; }
#hint { color: #666; }
"""
REFRESH_MS = 33  # ~30 Hz
STATUS_MS = 500
TYPING_WIDGETS = (QtWidgets.QLineEdit, QtWidgets.QTextEdit, QtWidgets.QPlainTextEdit, QtWidgets.QAbstractSpinBox)
_KEY_NAMES = {QtCore.Qt.Key.Key_Space: GRIPPER_KEY}
_EPISODE_BY_KEY = {getattr(QtCore.Qt.Key, f"Key_{qt}"): name for name, (_, qt, _) in EPISODE_KEYS.items()}
_EPISODE_BY_KEY[QtCore.Qt.Key.Key_Enter] = "start"  # the keypad's Enter too


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, session: OperatorSession, settings: QtCore.QSettings | None = None) -> None:
        super().__init__()
        self.session = session
        self.settings = settings or QtCore.QSettings("teleop-app", "teleop-app")
        self.bridge = SessionBridge(session, self)
        self.keyboards = [d for d in session.rig.inputs.values() if isinstance(d, KeyboardInput)]
        self.repaints = RateMeter()
        self.setWindowTitle(f"teleop-app — {session.rig.config.name}")
        self.setStyleSheet(STYLE)

        self.stop_button = QtWidgets.QPushButton("STOP   [Esc]")
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setMinimumSize(220, 54)
        self.stop_button.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.stop_button.clicked.connect(lambda: self.session.stop())
        self.rearm_button = QtWidgets.QPushButton("Re-arm   [Ctrl+R]")
        self.rearm_button.setMinimumHeight(54)
        self.rearm_button.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.rearm_button.clicked.connect(self.rearm)
        self.safety_label = QtWidgets.QLabel()
        self.safety_label.setObjectName("safetyLabel")
        self.safety_label.setWordWrap(True)
        self.teleop_box = QtWidgets.QCheckBox("Teleop  [T]")
        self.teleop_box.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.teleop_box.clicked.connect(self._teleop_clicked)
        help_button = QtWidgets.QPushButton("? Help  [F1]")
        help_button.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        help_button.clicked.connect(self.toggle_help)
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(self.stop_button)
        bar.addWidget(self.rearm_button)
        bar.addWidget(self.safety_label, 1)
        bar.addWidget(self.teleop_box)
        bar.addWidget(help_button)

        self.live = LiveView(session)
        self.review = ReviewTab(self.bridge)
        self.compare = CompareTab(self.bridge)
        self.policy_tab = PolicyTab(self.bridge)
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.addTab(self.live, "Live")
        self.tabs.addTab(self.review, "Review")
        self.tabs.addTab(self.compare, "Compare")
        self.tabs.addTab(self.policy_tab, "Policy")
        self.tabs.currentChanged.connect(lambda _: self._release_keys())

        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 2)
        layout.addLayout(bar)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.help = HelpOverlay(central)
        self.help.set_sections(shortcut_sections([*self.review.help_sections(), *self.compare.help_sections(),
                                                  *self.policy_tab.help_sections()]))

        self.status_labels = {name: QtWidgets.QLabel() for name in ("loop", "drops", "recording", "disk", "gui")}
        self.message_label = QtWidgets.QLabel()
        self.statusBar().addWidget(self.message_label, 1)
        for label in self.status_labels.values():
            self.statusBar().addPermanentWidget(label)

        self.live.recording.action.connect(self.episode_action)
        self.live.recording.task_edited.connect(self._task_edited)
        self.live.recording.folder_chosen.connect(self._folder_chosen)
        self.live.input_panel.input_chosen.connect(self._input_chosen)
        self.bridge.changed.connect(self._on_session_event)

        self._restore_settings()
        QtWidgets.QApplication.instance().installEventFilter(self)
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(REFRESH_MS)
        self.status_timer = QtCore.QTimer(self)
        self.status_timer.timeout.connect(self.refresh_status)
        self.status_timer.start(STATUS_MS)
        self._show_safety()
        self.refresh_status()

    # -- periodic ----------------------------------------------------------------------------
    def refresh(self) -> None:
        self.repaints.tick()
        current = self.tabs.currentWidget()
        self.live.take_ticks()  # shown or not: the plots' history stays whole
        if current is self.live:
            self.live.refresh()
        elif current is self.policy_tab:
            self.policy_tab.refresh()
        self.teleop_box.setChecked(self.session.mode in (Mode.TELEOP, Mode.INTERVENTION))

    def refresh_status(self) -> None:
        session = self.session
        stats = session.rig.loop.stats()
        hz, p50, p99 = stats["achieved_hz"], stats["period_p50_ms"], stats["period_p99_ms"]
        jitter = f" · period p50 {p50:.1f} / p99 {p99:.1f} ms" if p50 is not None else ""
        self.status_labels["loop"].setText(f"loop {hz:5.1f} Hz{jitter}")
        drops = session.recorder.dropped if session.recording else {}
        lost = sum(drops.values())
        self.status_labels["drops"].setText(f"dropped {lost}" if session.recording else "dropped —")
        self.status_labels["drops"].setStyleSheet("color:#d33; font-weight:bold" if lost else "")
        self.status_labels["recording"].setText(
            f"● REC {session.recorder.path.name if session.recorder.path else ''}" if session.recording else "idle")
        free = session.free_disk_bytes()
        self.status_labels["disk"].setText(f"free {_fmt_bytes(free)}")
        self.status_labels["disk"].setStyleSheet("color:#d33; font-weight:bold" if free is not None
                                                 and free < 2 * 1024**3 else "")
        self.status_labels["gui"].setText(f"GUI {self.repaints.rate():.0f} fps")

    # -- session events ----------------------------------------------------------------------
    def _on_session_event(self, event: Event) -> None:
        if event in (Event.KILL, Event.MODE):
            self._show_safety()
            if self.session.stopped:
                self._release_keys()
        elif event is Event.MESSAGE:
            text = html.escape(self.session.message)
            self._say(f"<b style='color:#d33'>{text}</b>" if self.session.message_is_error else text,
                      self.session.message)
        elif event in (Event.DATASET, Event.RUN):
            self.live.forget_episode_count()
        elif event is Event.INPUT:
            self.live.keeping.apply()

    def _show_safety(self) -> None:
        kill = self.session.rig.kill
        if kill.latched:
            self.safety_label.setText(f"<b style='color:#d33'>STOPPED</b> — {html.escape(kill.reason or '')}. "
                                      "Check the scene, then Re-arm.")
        else:
            who = {Mode.IDLE: "teleop is off: the robot holds still", Mode.TELEOP: "the robot follows the active input",
                   Mode.POLICY: "a POLICY drives the robot", Mode.INTERVENTION: "you drive: human takeover",
                   Mode.REPLAY: "a recorded episode is being replayed"}[self.session.mode]
            self.safety_label.setText(f"<b style='color:#2a2'>ARMED</b> — {who}.")
        self.rearm_button.setEnabled(kill.latched)

    # -- intent ------------------------------------------------------------------------------
    def _run(self, fn, *args) -> object:
        """Call a session action; a refusal (or a stalled loop) becomes the status message, never a traceback."""
        try:
            return fn(*args)
        except (OperatorError, LoopNotAnswering) as exc:
            self._say(f"<b style='color:#d33'>{html.escape(str(exc))}</b>", str(exc))
            return None

    def _say(self, rich: str, plain: str) -> None:
        """The status-bar message; the bar may cut a long one, so its tooltip holds it whole."""
        self.message_label.setText(rich)
        self.message_label.setToolTip(plain)

    def episode_action(self, name: str) -> None:
        c = self.session
        if name == "start":
            self._task_edited(self.live.recording.task.text())
            self._run(c.start_episode)
        elif name == "success":
            self._run(c.keep, True)
        elif name == "failure":
            self._run(c.keep, False)
        elif name == "discard":
            self._run(c.discard)
        elif name == "reset" and c.rig.robot.can_reset_scene and not c.recording:
            self._run(c.reset_scene)
        self.live.refresh()

    def rearm(self) -> None:
        self.session.rearm()
        self._show_safety()

    def toggle_help(self) -> None:
        self._release_keys()
        self.help.toggle()

    def _teleop_clicked(self, checked: bool) -> None:
        self._run(self.session.set_teleop, checked)

    def _task_edited(self, text: str) -> None:
        if text.strip() != self.session.task:
            self.session.set_task(text)
            self.settings.setValue("task", self.session.task)

    def _folder_chosen(self, folder: str) -> None:
        if folder.strip() and folder.strip() != str(self.session.dataset_dir):
            self._run(self.session.set_dataset_dir, folder.strip())
            self.settings.setValue("dataset_dir", str(self.session.dataset_dir))

    def _input_chosen(self, name: str) -> None:
        self._release_keys()
        self._run(self.session.set_active_input, name)
        self.settings.setValue("active_input", name)

    def _release_keys(self) -> None:
        for keyboard in self.keyboards:
            keyboard.release_all()

    # -- keys --------------------------------------------------------------------------------
    def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802 (Qt name)
        etype = event.type()
        if etype in (QtCore.QEvent.Type.KeyPress, QtCore.QEvent.Type.ShortcutOverride):
            # any window of this application: Esc in the export dialog or a file chooser is STOP too
            if event.key() == QtCore.Qt.Key.Key_Escape and QtWidgets.QApplication.activeWindow() is not None:
                if etype == QtCore.QEvent.Type.KeyPress:
                    self.session.stop()
                return True
        if etype == QtCore.QEvent.Type.ApplicationDeactivate:
            self._release_keys()
        if etype not in (QtCore.QEvent.Type.KeyPress, QtCore.QEvent.Type.KeyRelease) or not self.isActiveWindow():
            return False
        if not isinstance(obj, QtGui.QWindow):  # each key event also passes the widgets; act on it once
            return False
        return self._key(event, etype == QtCore.QEvent.Type.KeyPress)

    def _key(self, event: QtGui.QKeyEvent, pressed: bool) -> bool:
        key, mods = event.key(), event.modifiers()
        ctrl = bool(mods & QtCore.Qt.KeyboardModifier.ControlModifier)
        if pressed and key == QtCore.Qt.Key.Key_F1:
            self.toggle_help()
            return True
        if pressed and ctrl:
            if key == QtCore.Qt.Key.Key_R:
                self.rearm()
                return True
            tab = key - QtCore.Qt.Key.Key_1
            if 0 <= tab < self.tabs.count():
                self.tabs.setCurrentIndex(tab)
                return True
            if key == QtCore.Qt.Key.Key_Q:
                self.close()
                return True
            return False
        focus = QtWidgets.QApplication.focusWidget()
        current = self.tabs.currentWidget()  # teleop keys drive on the Live tab, and take over on the Policy tab
        if current not in (self.live, self.policy_tab) or self.help.isVisible():
            return False
        if isinstance(focus, TYPING_WIDGETS):
            if pressed and key in (QtCore.Qt.Key.Key_Return, QtCore.Qt.Key.Key_Enter):
                focus.clearFocus()  # Enter finishes typing; the next Enter starts the episode
            return False
        if pressed and not event.isAutoRepeat() and current is self.live:
            if key in _EPISODE_BY_KEY:
                self.episode_action(_EPISODE_BY_KEY[key])
                return True
            if key == QtCore.Qt.Key.Key_T:
                self._teleop_clicked(self.session.mode not in (Mode.TELEOP, Mode.INTERVENTION))
                return True
        name = _KEY_NAMES.get(key, event.text().lower())
        if name in MOTION_KEYS or name == GRIPPER_KEY:
            if not event.isAutoRepeat():
                for keyboard in self.keyboards:
                    (keyboard.press if pressed else keyboard.release)(name)
            return True
        return False

    # -- settings ----------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = self.settings
        geometry, size = s.value("geometry"), s.value("size")
        if geometry is not None:
            self.restoreGeometry(geometry)
        self.resize(size if isinstance(size, QtCore.QSize) else QtCore.QSize(1440, 900))
        fit_on_screen(self)
        splitter = s.value("live_splitter")
        if splitter is not None:
            self.live.splitter.restoreState(splitter)
        for kind in ("human", "scripted"):
            if s.contains(f"keep_on_success/{kind}"):
                self.live.keeping.choices[kind] = str(s.value(f"keep_on_success/{kind}")) == "true"
        self.live.keeping.apply()
        restore_fields(s, "policy_tab", self.policy_tab.remembered_fields())
        restore_fields(s, "compare_tab", self.compare.remembered_fields())
        tab = s.value("tab")
        if tab is not None:
            self.tabs.setCurrentIndex(int(tab))

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("geometry", self.saveGeometry())
        s.setValue("size", self.size())
        s.setValue("live_splitter", self.live.splitter.saveState())
        s.setValue("tab", self.tabs.currentIndex())
        for kind, on in self.live.keeping.choices.items():
            s.setValue(f"keep_on_success/{kind}", "true" if on else "false")
        save_fields(s, "policy_tab", self.policy_tab.remembered_fields())
        save_fields(s, "compare_tab", self.compare.remembered_fields())
        s.setValue("task", self.session.task)
        s.setValue("dataset_dir", str(self.session.dataset_dir))
        if self.session.active_input:
            s.setValue("active_input", self.session.active_input)
        s.sync()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt name)
        self.timer.stop()
        self.status_timer.stop()
        self._release_keys()
        self.policy_tab.shutdown()  # keeps a running rollout's episode
        self.review.shutdown()
        self.compare.shutdown()
        self.save_settings()
        QtWidgets.QApplication.instance().removeEventFilter(self)
        super().closeEvent(event)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        if self.help.isVisible():
            self.help.setGeometry(self.centralWidget().rect())
