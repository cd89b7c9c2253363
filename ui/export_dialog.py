"""The export dialog of the Review tab: format, output folder, fps, codec, which episodes; progress and Cancel.

Threads: the dialog lives on the GUI thread; the export runs in one worker of
its own :class:`ui.workers.TaskRunner` (the exporters' video encoding goes to
their own processes), so neither the GUI nor the control loop waits for it.
Progress and the result come back as queued Qt signals.

Invariants: the folder rule is the exporters' own (``staging_dir``: the folder
must not exist or be empty; a missing one is created); Export is refused with
the reason shown before anything starts. Cancel sets the ``cancel`` event the
exporters take; they stop within a frame and leave the output folder as it
was, so a cancelled export never leaves a half-written dataset.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from recordings.export_aloha import DEFAULT_FPS as ALOHA_FPS
from recordings.export_aloha import export_aloha
from recordings.export_common import Cancelled, ExportReport
from recordings.export_lerobot import DEFAULT_CODEC, codec_name, export_lerobot
from recordings.export_lerobot import DEFAULT_FPS as LEROBOT_FPS
from recordings.library import EpisodeSummary
from ui.workers import Task, TaskRunner

FORMATS: dict[str, tuple[str, int]] = {  # kind: (title, default fps)
    "lerobot": ("LeRobot v3.0 (parquet + mp4)", LEROBOT_FPS),
    "aloha": ("ALOHA / ACT (HDF5)", ALOHA_FPS),
}
CODEC_CHOICES = (  # PyAV encoder name, what it is; only those PyAV's FFmpeg has are offered
    ("h264", "H.264 — fast to encode, plays everywhere"),
    ("hevc", "HEVC / H.265 — smaller files"),
    ("libsvtav1", "AV1 (SVT) — smallest files, LeRobot's default"),
)
WHICH = (  # key, label
    ("all", "all readable episodes"),
    ("selected", "the rows selected in the table"),
    ("successes", "successes only"),
)


def available_codecs() -> list[tuple[str, str]]:
    """The :data:`CODEC_CHOICES` that ``export_lerobot`` accepts here (``codec_name`` does not refuse them)."""
    out = []
    for name, text in CODEC_CHOICES:
        try:
            codec_name(name)
        except ValueError:
            continue
        out.append((name, text))
    return out


def folder_problem(out_dir: Path | None) -> str:
    """Why the exporters would refuse ``out_dir`` ("" when it is fine: missing, or an empty folder)."""
    if out_dir is None or not str(out_dir).strip():
        return "Type or choose an output folder"
    if out_dir.exists() and not out_dir.is_dir():
        return f"{out_dir} is a file: choose a folder"
    if out_dir.is_dir() and any(out_dir.iterdir()):
        return f"{out_dir} is not empty: choose an empty or a new folder"
    return ""


def chosen_episodes(summaries: list[EpisodeSummary], selected: list[Path], which: str) -> tuple[list[Path], bool]:
    """The files to export and ``include_failures`` for a choice of :data:`WHICH`; damaged files never go in.

    "all" and "selected" export failures and unlabelled episodes too (the user
    picked them); "successes" lets the exporter keep only episodes labelled a success.
    """
    readable = [s for s in summaries if not s.damaged]
    if which == "selected":
        wanted = set(selected)
        return [s.path for s in readable if s.path in wanted], True
    if which == "successes":
        return [s.path for s in readable if s.success == "true"], False
    return [s.path for s in readable], True


def progress_text(done: int, total: int, message: str) -> str:
    """What the progress bar says: episodes finished of the total, and what the exporter is doing."""
    return f"{done}/{total} episodes done" + (f" — {message}" if message and message != "done" else "")


@dataclass(frozen=True)
class ExportRequest:
    kind: str
    out_dir: Path
    paths: list[Path]
    include_failures: bool
    fps: int
    codec: str
    compress: bool

    def call(self) -> tuple[Callable[..., ExportReport], dict]:
        """The exporter and its keyword arguments (without progress and cancel)."""
        if self.kind == "lerobot":
            return export_lerobot, {"fps": self.fps, "include_failures": self.include_failures, "codec": self.codec}
        return export_aloha, {"fps": self.fps, "include_failures": self.include_failures, "compress": self.compress}


def _unless_cancelled(fn: Callable[..., ExportReport], *args: object, **kwargs: object) -> ExportReport | None:
    """Run an exporter in the worker; a cancel (the user's wish, not an error) returns None."""
    try:
        return fn(*args, **kwargs)
    except Cancelled:
        return None


class ExportDialog(QtWidgets.QDialog):
    """Choose and run one export; :attr:`finished_export` gives the report (None: cancelled or failed)."""

    finished_export = QtCore.Signal(object)

    def __init__(self, summaries: list[EpisodeSummary], selected: list[Path], dataset_dir: Path,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export episodes")
        self.summaries = summaries
        self.selected = selected
        self.runner = TaskRunner(threads=1, parent=self)
        self.cancel_event: threading.Event | None = None
        self.last_report: ExportReport | None = None
        self.last_message = ""
        self._default_dir = dataset_dir.parent

        self.format_box = QtWidgets.QComboBox()
        for kind, (title, _) in FORMATS.items():
            self.format_box.addItem(title, kind)
        self.folder_edit = QtWidgets.QLineEdit(str(dataset_dir.parent / f"{dataset_dir.name}_lerobot"))
        self.folder_edit.setMinimumWidth(380)
        self.browse_button = QtWidgets.QPushButton("Browse…")
        self.browse_button.clicked.connect(self._browse)
        folder_row = QtWidgets.QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(self.browse_button)
        self.folder_note = QtWidgets.QLabel()
        self.folder_note.setWordWrap(True)
        self.fps_box = QtWidgets.QSpinBox()
        self.fps_box.setRange(1, 1000)
        self.fps_box.setSuffix(" fps")
        self.fps_box.setToolTip("Every stream is resampled onto this grid (LeRobot's convention is 30)")
        self.codec_box = QtWidgets.QComboBox()
        for name, text in available_codecs():
            self.codec_box.addItem(f"{name}  ({text})", name)
        self.codec_box.setCurrentIndex(max(self.codec_box.findData(DEFAULT_CODEC), 0))
        self.compress_box = QtWidgets.QComboBox()
        self.compress_box.addItem("compressed (JPEG rows, as ALOHA records)", True)
        self.compress_box.addItem("raw (T×H×W×3 arrays, large)", False)
        self.which_group = QtWidgets.QButtonGroup(self)
        which_box = QtWidgets.QVBoxLayout()
        self.which_buttons: dict[str, QtWidgets.QRadioButton] = {}
        for key, text in WHICH:
            button = QtWidgets.QRadioButton(text)
            self.which_group.addButton(button)
            self.which_buttons[key] = button
            which_box.addWidget(button)
            button.toggled.connect(lambda _on: self._update())
        self.count_label = QtWidgets.QLabel()

        form = QtWidgets.QFormLayout()
        form.addRow("format", self.format_box)
        form.addRow("folder", folder_row)
        form.addRow("", self.folder_note)
        form.addRow("rate", self.fps_box)
        form.addRow("video codec", self.codec_box)
        form.addRow("images", self.compress_box)
        form.addRow("episodes", which_box)
        form.addRow("", self.count_label)

        self.progress = QtWidgets.QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.status_label = QtWidgets.QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.export_button = QtWidgets.QPushButton("Export")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start)
        self.cancel_button = QtWidgets.QPushButton("Cancel export")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.hide()
        self.close_button = QtWidgets.QPushButton("Close")
        self.close_button.clicked.connect(self.reject)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.export_button, self.cancel_button, self.close_button):
            buttons.addWidget(b)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status_label)
        layout.addLayout(buttons)

        (self.which_buttons["selected"] if len(selected) > 1 else self.which_buttons["all"]).setChecked(True)
        self.format_box.currentIndexChanged.connect(self._format_changed)
        self.folder_edit.textChanged.connect(lambda _t: self._update())
        self._format_changed()

    def set_episodes(self, summaries: list[EpisodeSummary], selected: list[Path]) -> None:
        """Follow the table (a new listing, another selection); ignored while an export runs."""
        if not self.running:
            self.summaries, self.selected = summaries, selected
            self._update()

    # -- choices -------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.format_box.currentData()

    @property
    def which(self) -> str:
        return next(key for key, b in self.which_buttons.items() if b.isChecked())

    def out_dir(self) -> Path | None:
        text = self.folder_edit.text().strip()
        return Path(text).expanduser() if text else None

    def _format_changed(self) -> None:
        kind = self.kind
        self.fps_box.setValue(FORMATS[kind][1])
        self.codec_box.setEnabled(kind == "lerobot")
        self.compress_box.setEnabled(kind == "aloha")
        other = "aloha" if kind == "lerobot" else "lerobot"
        text = self.folder_edit.text()
        if text.endswith(f"_{other}"):  # the suggested name follows the format
            self.folder_edit.setText(text.removesuffix(f"_{other}") + f"_{kind}")
        self._update()

    def _browse(self) -> None:
        start = str(self.out_dir().parent if self.out_dir() else self._default_dir)
        chosen = QtWidgets.QFileDialog.getExistingDirectory(self, "Export into folder…", start)
        if chosen:
            self.folder_edit.setText(chosen)

    def request(self) -> ExportRequest:
        paths, include_failures = chosen_episodes(self.summaries, self.selected, self.which)
        return ExportRequest(self.kind, self.out_dir() or Path(), paths, include_failures, self.fps_box.value(),
                             self.codec_box.currentData() or DEFAULT_CODEC, bool(self.compress_box.currentData()))

    def problem(self) -> str:
        """Why Export cannot start now ("" when it can)."""
        out_dir = self.out_dir()
        folder = folder_problem(out_dir)
        if folder:
            return folder
        if not self.request().paths:
            return "No episode to export with this choice"
        return ""

    def _update(self) -> None:
        running = self.running
        paths = self.request().paths
        self.which_buttons["selected"].setText(f"the rows selected in the table ({len(self.selected)})")
        self.count_label.setText(f"{len(paths)} episode(s) will be exported")
        out_dir = self.out_dir()
        problem = self.problem()
        if problem:
            self.folder_note.setText(f"<span style='color:#c62828'>{problem}</span>")
        elif out_dir is not None and not out_dir.exists():
            self.folder_note.setText("a new folder: it will be created")
        else:
            self.folder_note.setText("an empty folder: the export goes in it")
        self.export_button.setEnabled(not running and not problem)
        for w in (self.format_box, self.folder_edit, self.browse_button, self.fps_box):
            w.setEnabled(not running)
        self.codec_box.setEnabled(not running and self.kind == "lerobot")
        self.compress_box.setEnabled(not running and self.kind == "aloha")
        for b in self.which_buttons.values():
            b.setEnabled(not running)
        self.close_button.setEnabled(not running)
        self.cancel_button.setVisible(running)
        self.export_button.setVisible(not running)

    # -- running -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.cancel_event is not None

    def start(self) -> bool:
        """Start the export in a worker; False (with the reason shown) when it cannot start."""
        if self.running:
            return False
        problem = self.problem()
        if problem:
            self._say(problem, error=True)
            return False
        req = self.request()
        fn, kwargs = req.call()
        self.cancel_event = threading.Event()
        self.progress.setRange(0, len(req.paths))
        self.progress.setValue(0)
        self.progress.setFormat(progress_text(0, len(req.paths), ""))
        self.progress.show()
        self._say(f"Exporting {len(req.paths)} episode(s) to {req.out_dir}…")
        task = Task(_unless_cancelled, fn, req.paths, req.out_dir, cancel=self.cancel_event, **kwargs)
        task.signals.progress.connect(self._progress)
        task.signals.done.connect(self._done)
        task.signals.failed.connect(self._failed)
        self.runner.start(task)
        self._update()
        return True

    def cancel(self) -> None:
        """Ask the export to stop; it ends within a frame, its output folder left as it was."""
        if self.cancel_event is not None:
            self.cancel_event.set()
            self.cancel_button.setEnabled(False)
            self._say("Cancelling…")

    def _progress(self, done: int, total: int, message: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(progress_text(done, total, message))

    def _finish(self) -> None:
        self.cancel_event = None
        self.cancel_button.setEnabled(True)
        self._update()

    def _done(self, report: ExportReport | None) -> None:
        if report is None:
            self._cancelled()
            return
        self.last_report = report
        self._finish()
        lines = report.text().splitlines()
        self._say("<br>".join(lines[:8]) + ("<br>…" if len(lines) > 8 else ""), error=not report.exported)
        self.finished_export.emit(report)

    def _cancelled(self) -> None:
        self._finish()
        self.progress.hide()
        self._say(f"Export cancelled: nothing was written to {self.out_dir()}")
        self.finished_export.emit(None)

    def _failed(self, reason: str) -> None:
        self._finish()
        self.progress.hide()
        self._say(f"Export failed: {reason}", error=True)
        self.finished_export.emit(None)

    def _say(self, text: str, error: bool = False) -> None:
        self.last_message = text
        self.status_label.setStyleSheet("color:#c62828; font-weight:bold" if error else "")
        self.status_label.setText(text)

    def reject(self) -> None:
        """Close (Esc or the window's close button) cancels a running export and waits for it to stop."""
        if self.running:
            self.cancel()
            self.runner.wait(60_000)
            QtCore.QCoreApplication.processEvents()
        super().reject()
