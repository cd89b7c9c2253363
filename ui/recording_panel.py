"""Dataset folder, task sentence, and the episode buttons (each labelled with its key)."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

# action -> (button text, key as Qt names it, key as printed on the button)
EPISODE_KEYS: dict[str, tuple[str, str, str]] = {
    "start": ("● Start episode", "Return", "Enter"),
    "success": ("✓ Keep: success", "G", "G"),
    "failure": ("✗ Keep: failure", "B", "B"),
    "discard": ("Discard", "Backspace", "Backspace"),
    "reset": ("↻ Reset scene", "N", "N"),
}


class RecordingPanel(QtWidgets.QGroupBox):
    """Views only: every button and edit is forwarded through :attr:`action` / :attr:`task_edited` /
    :attr:`folder_chosen`; the window decides what happens and calls :meth:`show_state`."""

    action = QtCore.Signal(str)  # a key of EPISODE_KEYS
    task_edited = QtCore.Signal(str)
    folder_chosen = QtCore.Signal(str)
    keep_on_success_chosen = QtCore.Signal(bool)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Recording", parent)
        form = QtWidgets.QFormLayout()
        folder_row = QtWidgets.QHBoxLayout()
        self.folder = QtWidgets.QLineEdit()
        self.folder.setPlaceholderText("folder for the episodes")
        self.folder.editingFinished.connect(lambda: self.folder_chosen.emit(self.folder.text()))
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        form.addRow("Dataset", folder_row)
        self.task = QtWidgets.QLineEdit()
        self.task.setPlaceholderText("what the robot should do, e.g. pick up the cube")
        self.task.editingFinished.connect(lambda: self.task_edited.emit(self.task.text()))
        form.addRow("Task", self.task)

        self.buttons: dict[str, QtWidgets.QPushButton] = {}
        for name, (text, _, key) in EPISODE_KEYS.items():
            button = QtWidgets.QPushButton(f"{text}   [{key}]")
            button.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)  # keys keep driving the robot
            button.clicked.connect(lambda _=False, n=name: self.action.emit(n))
            self.buttons[name] = button
        self.buttons["start"].setObjectName("startButton")
        grid = QtWidgets.QGridLayout()
        grid.addWidget(self.buttons["start"], 0, 0, 1, 2)
        grid.addWidget(self.buttons["success"], 1, 0)
        grid.addWidget(self.buttons["failure"], 1, 1)
        grid.addWidget(self.buttons["discard"], 2, 0)
        grid.addWidget(self.buttons["reset"], 2, 1)

        self.keep_on_success = QtWidgets.QCheckBox()
        self.keep_on_success.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.keep_on_success.setToolTip("End the episode by itself, kept as a success, this long after the "
                                        "robot first reports the task done (as collect does)")
        self.keep_on_success.clicked.connect(lambda checked: self.keep_on_success_chosen.emit(bool(checked)))
        self.success_light = QtWidgets.QLabel()
        self.success_light.setObjectName("successLight")
        self.success_light.setWordWrap(True)
        self.success_light.setToolTip("What the robot itself reports about the task (the sim knows; "
                                      "a real robot cannot tell)")

        self.timer = QtWidgets.QLabel("0.0 s")
        self.timer.setObjectName("episodeTimer")
        self.counter = QtWidgets.QLabel()
        self.message = QtWidgets.QLabel()
        self.message.setWordWrap(True)
        info = QtWidgets.QHBoxLayout()
        info.addWidget(self.timer)
        info.addStretch(1)
        info.addWidget(self.counter)

        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(grid)
        layout.addWidget(self.keep_on_success)
        layout.addLayout(info)
        layout.addWidget(self.success_light)
        layout.addWidget(self.message)

    def _browse(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Dataset folder", self.folder.text())
        if folder:
            self.folder.setText(folder)
            self.folder_chosen.emit(folder)

    def show_state(self, *, recording: bool, elapsed_s: float, episodes: int, folder: str, task: str,
                   can_reset: bool, armed: bool = True, success: bool | None = None,
                   keep_on_success: bool | None = None, after_success_s: float = 0.0,
                   wrong_object: str | None = None) -> None:
        """``armed``: the robot may move and nothing else runs (no STOP, no rollout, no replay);
        ``success``: what the robot reports (None: it cannot tell, nothing shown); ``keep_on_success``:
        whether an episode ends itself as a success ``after_success_s`` after that (None: not offered);
        ``wrong_object``: the robot's line when an object the task did not name was picked."""
        self.buttons["start"].setEnabled(armed and not recording)
        for name in ("success", "failure", "discard"):
            self.buttons[name].setEnabled(recording)
        self.buttons["reset"].setEnabled(can_reset and armed and not recording)
        self.folder.setEnabled(not recording)
        self.task.setEnabled(not recording)
        if not self.folder.hasFocus() and self.folder.text() != folder:
            self.folder.setText(folder)
        if not self.task.hasFocus() and self.task.text() != task:
            self.task.setText(task)
        self.timer.setText(f"● REC {elapsed_s:5.1f} s" if recording else "not recording")
        self.timer.setStyleSheet("color:#d33; font-weight:bold; font-size:15px" if recording
                                 else "color:#666; font-size:15px")
        self.counter.setText(f"{episodes} episode{'s' if episodes != 1 else ''} in the folder")
        self.keep_on_success.setVisible(keep_on_success is not None)
        self.keep_on_success.setEnabled(not recording)  # an episode keeps the rule it started with
        self.keep_on_success.setChecked(bool(keep_on_success))
        self.keep_on_success.setText(f"Keep as success {after_success_s:g} s after the robot reports success")
        self.success_light.setVisible(success is not None)
        if wrong_object:
            text, css = (f"✗ WRONG OBJECT — {wrong_object}", "color:#fff; background:#c62828; "
                         "font-weight:bold; border-radius:4px; padding:3px")
        elif success:
            text, css = ("✓ SUCCESS — the robot reports the task done", "color:#fff; background:#2e7d32; "
                         "font-weight:bold; border-radius:4px; padding:3px")
        else:
            text, css = ("○ the robot does not report success yet", "color:#666; padding:3px")
        if self.success_light.text() != text:
            self.success_light.setText(text)
            self.success_light.setStyleSheet(css)
