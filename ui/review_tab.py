"""The Review tab: browse a dataset's episodes, play them, trim, relabel, delete (with undo), export, replay.

A thin view: the listing comes from :mod:`recordings.library` (in a worker),
edits from :mod:`recordings.edit` through :mod:`ui.review_state`, replays through
the operator session (:meth:`~teleop_app.operator_session.OperatorSession.start_replay`). The episode on screen is open read-only
(the whole recording, so the trim handles can move back out); it is closed
before any edit touches its file and opened again afterwards.

Keys (active while the focus is inside this tab; typing in a text field keeps
its own keys): Space play/pause, ←/→ previous/next frame, [ and ] slower/faster,
I/O set the in/out handle at the cursor, Del delete, Ctrl+Z undo the last delete.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from recordings.analysis.quality import check_dataset
from recordings.analysis.trim import suggest_trim
from recordings.export_common import ExportReport
from recordings.library import DatasetFigures, EpisodeSummary, dataset_figures, episode_files, free_space, summarize
from recordings.reader import EpisodeError
from recordings.repair import RepairReport, repair
from teleop_app.errors import OperatorError
from teleop_app.events import Event
from teleop_app.replay import ReplayError
from teleop_app.runs import EndReason, Run, RunKind
from ui.bridge import SessionBridge
from ui.episode_table import EpisodeTable
from ui.export_dialog import ExportDialog
from ui.player import Player
from ui.review_state import (SUCCESS_LABELS, LoadedEpisode, TrashStack, figures_text, problem_text,
                             set_success)
from ui.workers import Task, TaskRunner

SHORTCUTS: list[tuple[str, str, str]] = [  # (key sequence, what it does, method name)
    ("Space", "play / pause", "toggle_play"),
    ("Left", "previous frame", "step_back"),
    ("Right", "next frame", "step_forward"),
    ("[", "slower", "slower"),
    ("]", "faster", "faster"),
    ("I", "trim: in handle at the cursor", "set_in"),
    ("O", "trim: out handle at the cursor", "set_out"),
    ("Delete", "move the episode to the trash", "delete_episode"),
    ("Ctrl+Z", "undo the last delete", "undo_delete"),
]
LEVEL_STYLE = {"info": "", "ok": "color:#2e7d32", "warn": "color:#b26a00; font-weight:bold",
               "error": "color:#c62828; font-weight:bold"}


def list_episodes(folder: Path, progress: Callable[[int, int, str], None] | None = None) -> list[EpisodeSummary]:
    """``recordings.library.list_dataset`` with quality flags and progress (it opens every file: run it off
    the GUI thread)."""
    paths = episode_files(folder)
    out = []
    for i, path in enumerate(paths):
        if progress:
            progress(i, 2 * len(paths), f"reading {path.name}")
        out.append(summarize(path))

    def checking(i: int, n: int, name: str) -> None:
        if progress:
            progress(n + i, 2 * n, f"checking {name}")

    for summary, q in zip(out, check_dataset(paths, checking)):
        summary.flags = q.flags
    if progress:
        progress(2 * len(paths), 2 * len(paths), "done")
    return out


def repair_files(paths: list[Path], progress: Callable[[int, int, str], None] | None = None) \
        -> list[tuple[Path, RepairReport | str]]:
    """``recordings.repair.repair`` on each file (run it off the GUI thread): its report, or why it failed."""
    out: list[tuple[Path, RepairReport | str]] = []
    for i, path in enumerate(paths):
        if progress:
            progress(i, len(paths), path.name)
        try:
            out.append((path, repair(path)))
        except (EpisodeError, OSError) as exc:
            out.append((path, str(exc).removeprefix(f"{path.name}: ")))
    return out


class ReviewTab(QtWidgets.QWidget):
    """The Review tab over ``bridge.session``'s dataset folder; see the module docstring for its keys."""

    listing_done = QtCore.Signal()
    export_done = QtCore.Signal(object)  # ExportReport, or None when the export was cancelled or failed

    def __init__(self, bridge: SessionBridge, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.session = bridge.session
        self.loaded: LoadedEpisode | None = None
        self.trash = TrashStack()
        self.runner = TaskRunner(threads=2, parent=self)
        self.last_message = ""
        self.export_dialog: ExportDialog | None = None
        self.figures: DatasetFigures | None = None
        self._listing_generation = 0
        self._listing = False
        self._repairing: Path | None = None
        self._repairing_all: list[Path] = []
        self._prompted: set[Path] = set()  # dataset folders whose files needing repair were announced
        self._bar_folder: Path | None = None  # the folder the repair bar speaks of
        self._sized = False

        self._build_left()
        self._build_right()
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        split.addWidget(self.left)
        split.addWidget(self.right)
        split.setStretchFactor(0, 9)  # the table keeps room for its columns when the window shrinks; the
        split.setStretchFactor(1, 11)  # camera tiles are limited by the height first
        split.setChildrenCollapsible(False)
        self.splitter = split
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self._build_repair_bar()
        layout.addWidget(self.repair_bar)
        layout.addWidget(split, 1)
        self.message_label = QtWidgets.QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.message_label)

        self.shortcuts: dict[str, QtGui.QShortcut] = {}
        for keys, _, method in SHORTCUTS:
            sc = QtGui.QShortcut(QtGui.QKeySequence(keys), self)
            sc.setContext(QtCore.Qt.ShortcutContext.WidgetWithChildrenShortcut)
            sc.activated.connect(getattr(self, method))
            self.shortcuts[keys] = sc

        self.replay_timer = QtCore.QTimer(self)
        self.replay_timer.setInterval(100)
        self.replay_timer.timeout.connect(self._update_replay)

        bridge.changed.connect(self._on_session_event)
        self.table.episode_selected.connect(self.load_episode)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._export_follows_table())
        self.player.trim_moved.connect(lambda *_: self._update_trim_label())
        self._update_actions()
        self.refresh()

    # -- layout --------------------------------------------------------------------------------
    def _button(self, text: str, slot: Callable[[], object], tip: str = "") -> QtWidgets.QPushButton:
        button = QtWidgets.QPushButton(text)
        button.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)  # keys stay with the table and the player
        button.clicked.connect(lambda _=False: slot())
        if tip:
            button.setToolTip(tip)
        return button

    def _build_left(self) -> None:
        self.left = QtWidgets.QWidget()
        v = QtWidgets.QVBoxLayout(self.left)
        v.setContentsMargins(0, 0, 0, 0)
        self.folder_label = QtWidgets.QLabel()
        self.folder_label.setWordWrap(True)
        self.refresh_button = self._button("Refresh", self.refresh, "List the dataset folder again")
        self.filter_edit = QtWidgets.QLineEdit()
        self.filter_edit.setPlaceholderText("filter: name, task, source, flag…")
        self.filter_edit.setClearButtonEnabled(True)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.filter_edit, 1)
        top.addWidget(self.refresh_button)
        self.table = EpisodeTable()
        self.filter_edit.textChanged.connect(self.table.proxy.setFilterFixedString)
        self.count_label = QtWidgets.QLabel()
        self.count_label.setWordWrap(True)
        self.count_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.export_button = self._button("Export…", self.open_export_dialog,
                                          "Write all, the selected or the successful episodes as a LeRobot v3.0 "
                                          "or an ALOHA dataset (Ctrl/Shift+click selects several rows)")
        exports = QtWidgets.QHBoxLayout()
        exports.addWidget(self.count_label, 1)
        exports.addWidget(self.export_button)
        v.addWidget(self.folder_label)
        v.addLayout(top)
        v.addWidget(self.table, 1)
        v.addLayout(exports)

    def _build_right(self) -> None:
        self.right = QtWidgets.QWidget()
        v = QtWidgets.QVBoxLayout(self.right)
        v.setContentsMargins(0, 0, 0, 0)
        self.header = QtWidgets.QLabel()
        self.header.setWordWrap(True)
        self.header.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.player = Player()
        v.addWidget(self.header)
        v.addWidget(self.player, 1)

        trim = QtWidgets.QGroupBox("Trim")
        self.in_button = self._button("In [I]", self.set_in, "Put the in handle at the cursor")
        self.out_button = self._button("Out [O]", self.set_out, "Put the out handle at the cursor")
        self.apply_trim_button = self._button("Apply trim", self.apply_trim,
                                              "Keep only the range between the handles (the file keeps everything: "
                                              "Clear trim brings it back)")
        self.clear_trim_button = self._button("Clear trim", self.clear_trim, "Keep the whole recording again")
        self.auto_trim_button = self._button("Suggest", self.suggest_trim,
                                             "Put the handles around the recorded motion: idle start and end cut, "
                                             "a short margin kept (Apply trim writes it)")
        self.trim_label = QtWidgets.QLabel()
        self.trim_label.setWordWrap(True)
        g = QtWidgets.QGridLayout(trim)
        g.addWidget(self.in_button, 0, 0)
        g.addWidget(self.out_button, 0, 1)
        g.addWidget(self.auto_trim_button, 0, 2)
        g.addWidget(self.apply_trim_button, 1, 0)
        g.addWidget(self.clear_trim_button, 1, 1)
        g.addWidget(self.trim_label, 2, 0, 1, 3)

        label = QtWidgets.QGroupBox("Label")
        self.success_box = QtWidgets.QComboBox()
        for value in ("true", "false", "unknown"):
            self.success_box.addItem(SUCCESS_LABELS[value], value)
        self.task_edit = QtWidgets.QLineEdit()
        self.task_edit.setPlaceholderText("task sentence")
        self.task_edit.returnPressed.connect(self.save_label)
        self.save_label_button = self._button("Save label", self.save_label, "Write outcome and task to the file")
        g = QtWidgets.QGridLayout(label)
        g.addWidget(QtWidgets.QLabel("outcome"), 0, 0)
        g.addWidget(self.success_box, 0, 1)
        g.addWidget(self.save_label_button, 0, 2)
        g.addWidget(QtWidgets.QLabel("task"), 1, 0)
        g.addWidget(self.task_edit, 1, 1, 1, 2)
        g.setColumnStretch(1, 1)

        episode = QtWidgets.QGroupBox("Episode")
        self.delete_button = self._button("Delete [Del]", self.delete_episode,
                                          "Move the episode to the dataset's .trash folder")
        self.undo_button = self._button("Undo [Ctrl+Z]", self.undo_delete,
                                        "Bring back the last episode deleted here")
        self.replay_button = self._button("Replay on robot", self.toggle_replay,
                                          "Play the kept range's commanded joint targets on the robot, through "
                                          "the safety filter (STOP / Esc holds it at once)")
        self.repair_button = self._button("Repair", self.repair_episode,
                                          "Make a file left by a crash or a failed write readable again: every "
                                          "complete row is kept (the original stays as it is until the repaired "
                                          "copy has been checked)")
        self.replay_label = QtWidgets.QLabel()
        g = QtWidgets.QGridLayout(episode)
        g.addWidget(self.delete_button, 0, 0)
        g.addWidget(self.undo_button, 0, 1)
        g.addWidget(self.replay_button, 1, 0)
        g.addWidget(self.repair_button, 1, 1)
        g.addWidget(self.replay_label, 2, 0, 1, 2)

        self.edit_row = QtWidgets.QWidget()
        h = QtWidgets.QHBoxLayout(self.edit_row)
        h.setContentsMargins(0, 0, 0, 0)
        for group in (trim, label, episode):
            group.layout().setContentsMargins(6, 4, 6, 4)
        h.addWidget(trim, 2)
        h.addWidget(label, 3)
        h.addWidget(episode, 2)
        v.addWidget(self.edit_row)

    def _build_repair_bar(self) -> None:
        self.repair_bar = QtWidgets.QFrame()
        self.repair_bar.setObjectName("repairBar")
        self.repair_bar.setStyleSheet("#repairBar { background:#fff3cd; border:1px solid #b26a00; border-radius:3px }")
        self.repair_bar_label = QtWidgets.QLabel()
        self.repair_bar_label.setWordWrap(True)
        self.repair_bar_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.repair_all_button = self._button("Repair", self.repair_all,
                                              "Repair every file listed here, one after the other (each original "
                                              "stays as it is until its repaired copy has been checked)")
        self.repair_all_button.setStyleSheet("font-weight:bold")
        self.dismiss_repair_button = self._button("Later", self.repair_bar.hide,
                                                  "Hide this bar (the Problem column and the Repair button of "
                                                  "each row stay)")
        h = QtWidgets.QHBoxLayout(self.repair_bar)
        h.setContentsMargins(8, 2, 8, 2)
        h.addWidget(self.repair_bar_label, 1)
        h.addWidget(self.repair_all_button)
        h.addWidget(self.dismiss_repair_button)
        self.repair_bar.hide()

    def help_sections(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """This tab's keys for the window's help overlay."""
        keys = [(k.replace("Left", "←").replace("Right", "→").replace("Delete", "Del"), text)
                for k, text, _ in SHORTCUTS]
        keys.append(("click / drag", "on the plots: move the cursor (black line) or the trim handles (blue)"))
        return [("Review tab (when it has the focus)", keys)]

    # -- messages ------------------------------------------------------------------------------
    def show_message(self, text: str, level: str = "info") -> None:
        """The tab's status line; errors are shown here as text, never as a traceback."""
        self.last_message = text
        self.message_label.setStyleSheet(LEVEL_STYLE[level])
        self.message_label.setText(text)

    # -- listing -------------------------------------------------------------------------------
    def refresh(self) -> None:
        """List the dataset folder again, in a worker; the table updates when it is done."""
        folder = self.session.dataset_dir
        self.folder_label.setText(f"<b>Dataset</b> {folder}")
        self._listing_generation += 1
        generation = self._listing_generation
        self._listing = True
        self.count_label.setText("listing…")
        task = Task(list_episodes, folder)
        task.signals.progress.connect(lambda done, total, _m: self.count_label.setText(f"listing {done}/{total}…"))
        task.signals.done.connect(lambda result: self._listed(generation, result))
        task.signals.failed.connect(lambda reason: self._list_failed(generation, reason))
        self.runner.start(task)

    @property
    def listing(self) -> bool:
        return self._listing

    def _listed(self, generation: int, summaries: list[EpisodeSummary]) -> None:
        if generation != self._listing_generation:
            return  # a newer listing is on its way
        self._listing = False
        keep = self.loaded.path if self.loaded else None
        kept = self.table.set_summaries(summaries, keep=keep)
        if keep is not None and not kept:
            self._unload()
        self._export_follows_table()
        self._update_count()
        self._update_actions()
        self._prompt_repair()
        self.listing_done.emit()

    def _list_failed(self, generation: int, reason: str) -> None:
        if generation == self._listing_generation:
            self._listing = False
            self.count_label.setText("")
            self.show_message(f"Could not list {self.session.dataset_dir}: {reason}", "error")
            self.listing_done.emit()

    def _update_count(self) -> None:
        """The dataset's figures under the table (outcomes, durations, size, room left on the disk)."""
        figures = dataset_figures(self.table.source_model.summaries(), free_space(self.session.dataset_dir))
        self.figures = figures
        self.count_label.setText(figures_text(figures))

    def _on_session_event(self, event: Event) -> None:
        if event is Event.DATASET:
            self.refresh()
        elif event is Event.KILL:
            self._update_replay()
        elif event is Event.RUN:
            self._on_run_event()

    # -- the episode on screen -----------------------------------------------------------------
    def load_episode(self, path: Path | None, cursor: float = 0.0) -> bool:
        """Open ``path`` in the player (None: show nothing); False with a message if it cannot be read."""
        self._release_file()
        self.loaded = None
        if path is None:
            self.player.load(None)
            self._update_header()
            self._update_actions()
            return False
        try:
            self.loaded = LoadedEpisode(Path(path))
        except EpisodeError as exc:
            self.player.load(None)
            self._update_header(error=str(exc))
            self._update_actions()
            return False
        self.player.load(self.loaded, cursor)
        meta = self.loaded.meta
        self.success_box.setCurrentIndex(max(self.success_box.findData(meta["success"]), 0))
        self.task_edit.setText(str(meta["task"]))
        self._update_header()
        self._update_trim_label()
        self._update_actions()
        return True

    def _release_file(self) -> None:
        """Close the open episode's file (waiting for a frame decode in progress) so it may be edited."""
        self.player.decoder.cancel()
        if self.loaded is not None:
            self.loaded.close()

    def _reopen(self) -> None:
        """Open the episode again after an edit, with the cursor where it was."""
        if self.loaded is not None:
            self.load_episode(self.loaded.path, self.player.cursor)

    def _unload(self) -> None:
        self.load_episode(None)

    def _update_header(self, error: str = "") -> None:
        if error:
            self.header.setText(f"<span style='{LEVEL_STYLE['error']}'>{html.escape(error)}</span>")
            return
        ep = self.loaded
        if ep is None:
            self.header.setText("")
            return
        m = ep.meta
        when = m["created"][:19].replace("T", " ")
        parts = [f"<b style='font-size:14px'>{ep.path.name}</b>", f"“{m['task']}”" if m["task"] else "(no task)",
                 SUCCESS_LABELS.get(m["success"], m["success"]), f"{ep.full_duration:.2f} s recorded", when]
        if m["operator"]:
            parts.append(f"by {m['operator']}")
        text = " &nbsp;·&nbsp; ".join(parts)
        if ep.issues:
            text += f"<br><span style='{LEVEL_STYLE['warn']}'>needs repair: {'; '.join(ep.issues)}</span>"
        self.header.setText(text)

    def _update_trim_label(self) -> None:
        trim = self.player.trim
        if trim is None:
            self.trim_label.setText("")
            return
        if trim.whole:
            text = f"the whole recording is kept ({trim.full:.2f} s)"
        else:
            text = f"kept {trim.start:.2f}–{trim.end:.2f} s: {trim.end - trim.start:.2f} of {trim.full:.2f} s"
        if trim.dirty:
            text += " <b style='color:#b26a00'>· not applied</b>"
        self.trim_label.setText(text)
        self.apply_trim_button.setEnabled(self.loaded is not None and trim.dirty)

    def _update_actions(self) -> None:
        has = self.loaded is not None
        for w in (self.in_button, self.out_button, self.clear_trim_button, self.auto_trim_button, self.success_box,
                  self.task_edit, self.save_label_button):
            w.setEnabled(has)
        self.apply_trim_button.setEnabled(has and self.player.trim is not None and self.player.trim.dirty)
        self.delete_button.setEnabled(self.table.current_path() is not None)
        self.undo_button.setEnabled(len(self.trash) > 0)
        self.undo_button.setToolTip(f"Bring back {self.trash.last.name}" if self.trash.last else
                                    "Nothing deleted here yet")
        self.repair_button.setEnabled(self._repairing is None and not self._repairing_all
                                      and bool(self._problem(self.table.current_path())))
        self.export_button.setEnabled(any(not s.damaged for s in self.table.source_model.summaries()))
        self._update_replay()

    # -- transport (shortcut targets) ----------------------------------------------------------
    def toggle_play(self) -> None:
        self.player.toggle_play()

    def step_back(self) -> None:
        self.player.step(-1)

    def step_forward(self) -> None:
        self.player.step(1)

    def slower(self) -> None:
        self.player.change_speed(-1)

    def faster(self) -> None:
        self.player.change_speed(1)

    # -- trim ----------------------------------------------------------------------------------
    def set_in(self) -> None:
        self.player.set_in()

    def set_out(self) -> None:
        self.player.set_out()

    def _edit(self, what: str, fn: Callable[[Path], object]) -> bool:
        """Run an edit of the open episode's file: close it, edit, update its row, open it again."""
        ep = self.loaded
        if ep is None:
            return False
        self._release_file()
        try:
            fn(ep.path)
        except (EpisodeError, ValueError, OSError) as exc:
            self.show_message(f"Could not {what} {ep.path.name}: {exc}", "error")
            self._reopen()
            return False
        self.table.source_model.put(summarize(ep.path))
        self._update_count()
        self.table.select_path(ep.path, notify=False)
        self._reopen()
        return True

    def apply_trim(self) -> None:
        trim = self.player.trim
        if trim is None:
            return
        if self._edit("trim", trim.apply):
            start, end = trim.saved
            self.show_message(f"{self.loaded.path.name}: keeps {start:.2f}–{end:.2f} s ({end - start:.2f} s) — "
                              "the trimmed-out parts stay in the file (Clear trim brings them back)", "ok")

    def suggest_trim(self) -> None:
        """Move the handles to the suggested kept range (``recordings.analysis.trim``); nothing is written."""
        if self.loaded is None or self.player.trim is None:
            return
        try:
            suggestion = suggest_trim(self.loaded.path)
        except EpisodeError as exc:
            self.show_message(f"Could not read {self.loaded.path.name}: {exc}", "error")
            return
        if suggestion.keep is None:
            self.show_message(f"{self.loaded.path.name}: no motion found, the handles stay", "warn")
            return
        self.player.set_trim(*suggestion.keep)
        self.show_message(f"{self.loaded.path.name}: suggested cut {suggestion.cut_start:.2f} s at the start and "
                          f"{suggestion.cut_end:.2f} s at the end — Apply trim keeps it")

    def clear_trim(self) -> None:
        trim = self.player.trim
        if trim is not None and self._edit("clear the trim of", trim.clear):
            self.show_message(f"{self.loaded.path.name}: the whole recording is kept again", "ok")

    # -- label ---------------------------------------------------------------------------------
    def save_label(self) -> None:
        value = self.success_box.currentData()
        task = self.task_edit.text().strip()
        if self._edit("relabel", lambda path: set_success(path, value, task)):
            self.show_message(f"{self.loaded.path.name}: {SUCCESS_LABELS[value]}, task “{task}”", "ok")

    # -- delete / undo -------------------------------------------------------------------------
    def delete_episode(self) -> None:
        path = self.table.current_path()
        if path is None:
            return
        recorder = self.session.recorder
        if self.session.recording and recorder.path is not None and Path(recorder.path) == path:
            self.show_message(f"{path.name} is being recorded: keep or discard it in the Live tab first", "error")
            return
        proxy_row = self.table.currentIndex().row()
        if self.loaded is not None and self.loaded.path == path:
            self._release_file()
        try:
            trashed = self.trash.delete(path)
        except OSError as exc:
            self.show_message(f"Could not delete {path.name}: {exc}", "error")
            if self.loaded is not None and self.loaded.path == path:
                self._reopen()
            return
        self.loaded = None
        self.player.load(None)
        self.table.source_model.remove(path)
        self._update_count()
        self.show_message(f"{path.name} moved to {trashed.parent} — Undo delete (Ctrl+Z) brings it back", "ok")
        next_path = self.table.path_at(min(proxy_row, self.table.proxy.rowCount() - 1))
        if next_path is None or not self.table.select_path(next_path):
            self.load_episode(None)
        self._update_actions()

    def undo_delete(self) -> None:
        if not len(self.trash):
            self.show_message("Nothing to undo: no episode was deleted here", "warn")
            return
        try:
            path = self.trash.undo()
        except OSError as exc:
            self.show_message(f"Could not restore {self.trash.last.name}: {exc}", "error")
            return
        self.table.source_model.put(summarize(path))
        self._update_count()
        self.table.select_path(path)
        self.show_message(f"{path.name} restored", "ok")
        self._update_actions()

    # -- repair --------------------------------------------------------------------------------
    def _problem(self, path: Path | None) -> str:
        model = self.table.source_model
        row = None if path is None else model.row_of(path)
        return "" if row is None else problem_text(model.summary(row))

    def repair_episode(self) -> bool:
        """Repair the selected damaged or unfinished episode in a worker; its row and the player follow."""
        path = self.table.current_path()
        if path is None or self._repairing is not None or self._repairing_all or not self._problem(path):
            return False
        recorder = self.session.recorder
        if self.session.recording and recorder.path is not None and Path(recorder.path) == path:
            self.show_message(f"{path.name} is being recorded: keep or discard it in the Live tab first", "error")
            return False
        if self.loaded is not None and self.loaded.path == path:
            self._release_file()
        self._repairing = path
        self._update_actions()
        self.show_message(f"Repairing {path.name}…")
        task = Task(repair, path, with_progress=False)
        task.signals.done.connect(self._repaired)
        task.signals.failed.connect(self._repair_failed)
        self.runner.start(task)
        return True

    @property
    def repairing(self) -> bool:
        return self._repairing is not None or bool(self._repairing_all)

    def _repaired(self, report: RepairReport) -> None:
        self._repairing = None
        self.table.source_model.put(summarize(report.path))
        self._update_count()
        self.show_message(report.text(), "ok")
        if self.table.current_path() == report.path:
            self.load_episode(report.path)
        self._update_actions()

    def _repair_failed(self, reason: str) -> None:
        path, self._repairing = self._repairing, None
        reason = reason.removeprefix("EpisodeError: ").removeprefix(f"{path.name}: ")
        self.show_message(f"Could not repair {path.name}: {reason}", "error")
        if self.loaded is not None and self.loaded.path == path:
            self._reopen()
        self._update_actions()

    def needing_repair(self) -> list[tuple[Path, str]]:
        """Listed files with a problem (damaged, or left unfinished by a crash) and why."""
        rows = self.table.source_model.summaries()
        return [(s.path, problem_text(s)) for s in rows if problem_text(s)]

    def _prompt_repair(self) -> None:
        """Once per dataset folder in this session: say how many files need repair and why, with a Repair button.

        A bar already shown follows new listings (another folder, or nothing left to repair: it goes).
        """
        folder = Path(self.session.dataset_dir).resolve()
        found = self.needing_repair()
        if not self.repair_bar.isHidden() and not self._repairing_all:
            if folder != self._bar_folder or not found:
                self.repair_bar.hide()
            else:
                self._show_repair_bar(found)
        if folder in self._prompted or not found:
            return
        self._prompted.add(folder)
        self._bar_folder = folder
        self.session.say(f"{len(found)} file(s) in {self.session.dataset_dir} need repair: Review tab → Repair",
                         error=True)
        self._show_repair_bar(found)

    def _show_repair_bar(self, found: list[tuple[Path, str]]) -> None:
        shown = found[:3]
        items = "; ".join(f"<b>{html.escape(p.name)}</b>: {html.escape(why.removeprefix(f'{p.name}: '))}"
                          for p, why in shown)
        more = f"; and {len(found) - len(shown)} more (Problem column)" if len(found) > 3 else ""
        self.repair_bar_label.setText(f"<b style='color:#b26a00'>⚠ {len(found)} file(s) in this dataset need "
                                      f"repair</b> (left by a crash or a failed write) — {items}{more}")
        self.repair_all_button.setText(f"Repair {len(found)} file(s)")
        self.repair_all_button.setEnabled(True)
        self.repair_bar.show()

    def repair_all(self) -> bool:
        """Repair every file that needs it, in a worker, one after the other; the bar shows the outcome."""
        if self._repairing is not None or self._repairing_all:
            return False
        paths = [p for p, _ in self.needing_repair()]
        recorder = self.session.recorder
        if self.session.recording and recorder.path is not None:
            paths = [p for p in paths if p != Path(recorder.path)]  # the episode being recorded is not crashed
        if not paths:
            self.repair_bar.hide()
            return False
        if self.loaded is not None and self.loaded.path in paths:
            self._release_file()
        self._repairing_all = paths
        self.repair_all_button.setEnabled(False)
        self._update_actions()
        self.repair_bar_label.setText(f"Repairing {len(paths)} file(s)…")
        task = Task(repair_files, paths)
        task.signals.progress.connect(
            lambda done, total, name: self.repair_bar_label.setText(f"Repairing {name} ({done + 1}/{total})…"))
        task.signals.done.connect(self._repaired_all)
        task.signals.failed.connect(self._repair_all_failed)
        self.runner.start(task)
        return True

    def _repaired_all(self, outcomes: list[tuple[Path, RepairReport | str]]) -> None:
        paths, self._repairing_all = self._repairing_all, []
        for path in paths:
            self.table.source_model.put(summarize(path))
        self._update_count()
        failed = [(p, why) for p, why in outcomes if isinstance(why, str)]
        fixed = len(outcomes) - len(failed)
        text = f"Repaired {fixed} of {len(outcomes)} file(s)"
        if failed:
            self.show_message(text + "; could not repair " + "; ".join(f"{p.name}: {why}" for p, why in failed),
                              "warn")
            self._show_repair_bar(failed)
            self.repair_all_button.setText("Try again")
        else:
            self.show_message(text, "ok")
            self.repair_bar.hide()
        self.session.say(self.last_message, error=bool(failed))  # replaces the start-up notice
        if self.loaded is not None and self.loaded.path in paths:
            self.load_episode(self.loaded.path, self.player.cursor)
        self._update_actions()

    def _repair_all_failed(self, reason: str) -> None:
        self._repairing_all = []
        self.show_message(f"Could not repair: {reason}", "error")
        self.repair_all_button.setEnabled(True)
        self._reopen()
        self._update_actions()

    # -- export --------------------------------------------------------------------------------
    def open_export_dialog(self) -> ExportDialog:
        """Show the export dialog (format, folder, fps, codec, which episodes) over the current listing."""
        if self.export_dialog is not None and self.export_dialog.running:
            self.export_dialog.raise_()
            return self.export_dialog
        if self.export_dialog is not None:
            self.export_dialog.deleteLater()
        dialog = ExportDialog(self.table.source_model.summaries(), self.table.selected_paths(),
                              self.session.dataset_dir, self)
        dialog.finished_export.connect(self._exported)
        self.export_dialog = dialog
        dialog.show()
        return dialog

    def _export_follows_table(self) -> None:
        if self.export_dialog is not None and self.export_dialog.isVisible():
            self.export_dialog.set_episodes(self.table.source_model.summaries(), self.table.selected_paths())

    def _exported(self, report: ExportReport | None) -> None:
        if report is not None:
            self.show_message(report.text().splitlines()[0], "ok" if report.exported else "warn")
        elif self.export_dialog is not None:  # cancelled or failed: the dialog says which
            self.show_message(self.export_dialog.last_message, "warn")
        self.export_done.emit(report)

    # -- replay --------------------------------------------------------------------------------
    def _replay(self) -> Run | None:
        """The session's current or last run, if it is a replay."""
        run = self.session.run
        return run if run is not None and run.kind is RunKind.REPLAY else None

    def toggle_replay(self) -> None:
        run = self._replay()
        if run is not None and run.active:
            self.session.stop_replay()
            return
        if self.loaded is None:
            self.show_message("Select an episode to replay", "warn")
            return
        try:
            self.session.start_replay(self.loaded.path)
        except (ReplayError, OperatorError) as exc:
            self.show_message(f"Cannot replay: {exc}", "error")

    def _on_run_event(self) -> None:
        run = self._replay()
        if run is None:
            self._update_replay()
            return
        if run.active:
            self.replay_timer.start()
            self.show_message(f"Replaying {run.driver} on the robot — STOP (Esc) holds it at once", "warn")
        elif run.result is not None and run.result.reason is EndReason.FINISHED:
            self.show_message(f"Replay of {run.driver} finished; the robot holds its last pose", "ok")
        elif run.result is not None:
            why = run.result.detail or run.result.reason.value
            self.show_message(f"Replay of {run.driver} stopped ({why})", "warn")
        self._update_replay()

    def _update_replay(self) -> None:
        run = self._replay()
        if run is not None and run.active:
            done, total = run.replay.progress()
            self.replay_button.setText("■ Stop replay")
            self.replay_button.setStyleSheet("background:#ffb300; font-weight:bold")
            self.replay_button.setEnabled(True)
            self.replay_label.setText(f"<b>replaying {run.driver}…</b> {done:.1f} / {total:.1f} s")
        else:
            self.replay_timer.stop()
            self.replay_button.setText("▶ Replay on robot")
            self.replay_button.setStyleSheet("")
            self.replay_button.setEnabled(self.loaded is not None)
            self.replay_label.setText("the robot is stopped: re-arm to replay" if self.session.stopped else "")

    # -- lifecycle -----------------------------------------------------------------------------
    def showEvent(self, event: QtGui.QShowEvent) -> None:  # noqa: N802 (Qt name)
        super().showEvent(event)
        if not self._sized:  # the table gets room for its columns, the player the rest
            width = max(self.width(), 800)
            self.splitter.setSizes([width * 9 // 20, width - width * 9 // 20])
            self._sized = True

    def hideEvent(self, event: QtGui.QHideEvent) -> None:  # noqa: N802 (Qt name)
        self.player.pause()  # no playback behind the Live tab
        super().hideEvent(event)

    def shutdown(self) -> None:
        """Call when the window closes: stops playback and the decoder and waits for workers (the session
        ends a running replay when it closes)."""
        self.replay_timer.stop()
        self.player.shutdown()
        if self.export_dialog is not None:
            self.export_dialog.reject()  # cancels a running export
        self.runner.wait(30_000)
        if self.loaded is not None:
            self.loaded.close()
