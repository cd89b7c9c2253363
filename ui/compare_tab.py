"""The Compare tab: human demos vs policy rollouts — how much slower, where, and why.

A thin view over :mod:`recordings.analysis.compare`: the two sets are two folders or
globs, or one dataset folder (the session's) split by who drove the ticks.
The metrics are computed in a worker; the tab then shows the end-effector
speed over normalized time (median and p25–p75 band per set), the duration
histograms, the phase bars, the metrics table with policy/human ratios and
their bootstrap confidence intervals, and the verdict and diagnosis with their
evidence, as the analysis decided them (:mod:`recordings.analysis.verdict`):
the verdict is green only when the comparison is ``ok``.
Both the picture (PNG) and the full HTML report can be saved.

Keys (while the focus is inside this tab): Enter in a set field or Ctrl+Enter
compares.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from recordings.analysis.compare import (
    Comparison,
    compare_by_source,
    compare_sets,
    fmt_ratio,
    fmt_value,
    resolve_set,
)
from recordings.analysis.comparison import findings, share_text
from recordings.analysis.metrics import METRICS
from recordings.analysis.report import PHASE_COLORS, phase_means, write_report
from recordings.library import episode_files
from teleop_app.events import Event
from ui.bridge import SessionBridge
from ui.workers import Task, TaskRunner

HUMAN_COLOR = "#2b8cbe"  # as in the joint plots and the HTML report
POLICY_COLOR = "#e6550d"
COLORS = {"human": HUMAN_COLOR, "policy": POLICY_COLOR}
BAND_ALPHA = 60
VERDICT_OK, VERDICT_WARN, VERDICT_NEUTRAL = "#e8f5e9", "#fff3e0", "#f4f4f4"  # the verdict's background
LEVEL_STYLE = {"info": "", "ok": "color:#2e7d32", "warn": "color:#b26a00; font-weight:bold",
               "error": "color:#c62828; font-weight:bold"}
MODES = ("sets", "source")
KEY_ROLE = QtCore.Qt.ItemDataRole.UserRole  # the metric key of a table row


def run_comparison(mode: str, human: list[Path], policy: list[Path], labels: tuple[str, str], folder: Path,
                   progress: Callable[[int, int, str], None] | None = None) -> Comparison:
    """The worker's job: compare two lists of files, or one folder by source."""
    if mode == "source":
        return compare_by_source(folder, progress=progress)
    return compare_sets(human, policy, labels=labels, progress=progress)


class CompareTab(QtWidgets.QWidget):
    """See the module docstring. :attr:`comparison` is the result on screen (None before the first one)."""

    compared = QtCore.Signal(object)  # the Comparison, or None when it failed

    def __init__(self, bridge: SessionBridge, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.session = bridge.session
        self.runner = TaskRunner(threads=1, parent=self)
        self.comparison: Comparison | None = None
        self.last_message = ""
        self._generation = 0
        self._busy = False
        self._dataset = Path(self.session.dataset_dir)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self._build_sets())
        self.results = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.results.setChildrenCollapsible(False)
        self.results.addWidget(self._build_charts_and_table())
        self.results.addWidget(self._build_diagnosis())
        self.results.setStretchFactor(0, 3)
        self.results.setStretchFactor(1, 2)
        layout.addWidget(self.results, 1)
        self.message_label = QtWidgets.QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.message_label)

        self.shortcuts = []
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            sc = QtGui.QShortcut(QtGui.QKeySequence(keys), self)
            sc.setContext(QtCore.Qt.ShortcutContext.WidgetWithChildrenShortcut)
            sc.activated.connect(self.compare)
            self.shortcuts.append(sc)
        bridge.changed.connect(self._on_session_event)
        self._set_mode("sets")
        self._update_actions()
        self.show_message("Choose the human demos and the policy rollouts, then Compare.")

    # -- layout --------------------------------------------------------------------------------
    def _button(self, text: str, slot: Callable[[], object], tip: str = "") -> QtWidgets.QPushButton:
        button = QtWidgets.QPushButton(text)
        button.clicked.connect(lambda _=False: slot())
        if tip:
            button.setToolTip(tip)
        return button

    def _build_sets(self) -> QtWidgets.QWidget:
        box = QtWidgets.QGroupBox("Sets")
        g = QtWidgets.QGridLayout(box)
        self.mode_sets = QtWidgets.QRadioButton("Folders or globs")
        self.mode_source = QtWidgets.QRadioButton("By source, in the dataset folder")
        self.mode_sets.setToolTip("Human demos and policy rollouts from two folders, files or globs "
                                  "(e.g. ~/teleop-data/rollouts/*.h5)")
        self.mode_source.setToolTip("One folder: episodes mostly driven by a human vs mostly by the policy")
        self.mode_group = QtWidgets.QButtonGroup(self)
        for button in (self.mode_sets, self.mode_source):
            self.mode_group.addButton(button)
        self.mode_sets.toggled.connect(lambda on: on and self._set_mode("sets"))
        self.mode_source.toggled.connect(lambda on: on and self._set_mode("source"))
        self.human_edit = QtWidgets.QLineEdit(str(self._dataset))
        self.human_edit.setPlaceholderText("folder, file or glob of human demos")
        self.policy_edit = QtWidgets.QLineEdit()
        self.policy_edit.setPlaceholderText("folder, file or glob of policy rollouts")
        for edit in (self.human_edit, self.policy_edit):
            edit.setClearButtonEnabled(True)
            edit.returnPressed.connect(self.compare)
            edit.textChanged.connect(lambda _=None: self._update_actions())
        self.human_browse = self._button("…", lambda: self._browse(self.human_edit), "Choose a folder")
        self.policy_browse = self._button("…", lambda: self._browse(self.policy_edit), "Choose a folder")
        for button in (self.human_browse, self.policy_browse):
            button.setMaximumWidth(36)
        self.source_label = QtWidgets.QLabel()
        self.source_label.setObjectName("hint")
        self.compare_button = self._button("Compare", self.compare, "Compute the metrics of both sets "
                                           "(Enter in a field, or Ctrl+Enter)")
        self.compare_button.setObjectName("compareButton")
        self.png_button = self._button("Save PNG…", self.save_png, "Save the charts, table and diagnosis as a picture")
        self.report_button = self._button("Save HTML report…", self.save_report,
                                          "Save a self-contained HTML report (charts inline, opens offline)")
        self.progress = QtWidgets.QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setMaximumWidth(220)
        self.progress.hide()
        self.human_label = QtWidgets.QLabel(f"<b style='color:{HUMAN_COLOR}'>human</b>")
        self.policy_label = QtWidgets.QLabel(f"<b style='color:{POLICY_COLOR}'>policy</b>")
        g.addWidget(self.mode_sets, 0, 0, 1, 2)
        g.addWidget(self.mode_source, 0, 2)
        g.addWidget(self.source_label, 0, 3, 1, 4)
        g.addWidget(self.human_label, 1, 0)
        g.addWidget(self.human_edit, 1, 1, 1, 2)
        g.addWidget(self.human_browse, 1, 3)
        g.addWidget(self.policy_label, 2, 0)
        g.addWidget(self.policy_edit, 2, 1, 1, 2)
        g.addWidget(self.policy_browse, 2, 3)
        g.addWidget(self.compare_button, 1, 4, 2, 1)
        g.addWidget(self.png_button, 1, 5)
        g.addWidget(self.report_button, 2, 5)
        g.addWidget(self.progress, 1, 6, 2, 1)
        g.setColumnStretch(1, 1)
        g.setColumnStretch(2, 1)
        self.compare_button.setMinimumHeight(48)
        return box

    def _build_charts_and_table(self) -> QtWidgets.QWidget:
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        split.setChildrenCollapsible(False)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground("w")
        self.speed_plot = self.canvas.addPlot(row=0, col=0, colspan=2,
                                              title="End-effector speed over normalized time (median, p25–p75)")
        self.speed_plot.setLabel("left", "speed", units="mm/s")
        self.speed_plot.setLabel("bottom", "normalized time (% of the episode)")
        self.speed_plot.showGrid(x=False, y=True, alpha=0.2)
        self.speed_plot.setXRange(0, 100, padding=0.01)
        self.speed_legend = self.speed_plot.addLegend(offset=(-10, 8), labelTextColor="#333")
        self.hist_plot = self.canvas.addPlot(row=1, col=0, title="Episode durations")
        self.hist_plot.setLabel("left", "episodes")
        self.hist_plot.setLabel("bottom", "duration", units="s")
        self.hist_legend = self.hist_plot.addLegend(offset=(-10, 4), labelTextColor="#333", colCount=2)
        self.phase_plot = self.canvas.addPlot(row=1, col=1, title="Phases (mean s per episode)")
        self.phase_plot.setLabel("bottom", "seconds")
        self.phase_plot.getAxis("left").setTicks([[(1, "human"), (0, "policy")]])
        self.phase_plot.setYRange(-0.6, 1.6, padding=0)
        self.phase_legend = self.phase_plot.addLegend(offset=(10, 4), labelTextColor="#333", colCount=3)
        for plot in (self.speed_plot, self.hist_plot, self.phase_plot):
            plot.hideButtons()
            plot.getAxis("left").setTextPen("#333")
            plot.getAxis("bottom").setTextPen("#333")
            plot.titleLabel.setText(plot.titleLabel.text, color="#222", size="10pt")
        self.canvas.ci.layout.setRowStretchFactor(0, 3)
        self.canvas.ci.layout.setRowStretchFactor(1, 2)
        self.band_items: dict[str, pg.FillBetweenItem] = {}
        self.median_items: dict[str, pg.PlotDataItem] = {}
        self.hist_items: dict[str, pg.BarGraphItem] = {}
        self.phase_items: dict[str, pg.BarGraphItem] = {}

        self.table = QtWidgets.QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["metric", "human mean", "policy mean", "policy / human [95% CI]"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        for col in (1, 2, 3):
            header.setSectionResizeMode(col, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        split.addWidget(self.canvas)
        split.addWidget(self.table)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        return split

    def _build_diagnosis(self) -> QtWidgets.QWidget:
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)  # a long verdict scrolls, never gets cut
        split.setChildrenCollapsible(False)
        self.verdict_label = QtWidgets.QLabel("No comparison yet.")
        self.verdict_label.setWordWrap(True)
        self.verdict_label.setObjectName("verdict")
        self.verdict_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft)
        self._style_verdict(VERDICT_NEUTRAL)
        self.verdict_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.verdict_scroll = QtWidgets.QScrollArea()
        self.verdict_scroll.setWidgetResizable(True)
        self.verdict_scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.verdict_scroll.setWidget(self.verdict_label)
        self.diagnosis = QtWidgets.QTextBrowser()
        self.diagnosis.setOpenLinks(False)
        split.addWidget(self.verdict_scroll)
        split.addWidget(self.diagnosis)
        split.setSizes([2000, 3000])  # two fifths for the verdict, whatever the window's size
        return split

    def _style_verdict(self, background: str) -> None:
        self.verdict_label.setStyleSheet(f"font-size:14px; font-weight:600; padding:6px; background:{background};"
                                         "border-radius:4px")

    def help_sections(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """This tab's keys for the window's help overlay."""
        return [("Compare tab", [
            ("Enter", "in a set field: compare"),
            ("Ctrl+Enter", "compare"),
            ("wheel / drag", "on a chart: zoom / pan; right-click for View All and Export"),
        ])]

    # -- state -----------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return "source" if self.mode_source.isChecked() else "sets"

    def _set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        button = self.mode_source if mode == "source" else self.mode_sets
        if not button.isChecked():
            button.setChecked(True)
        sets = mode == "sets"
        for w in (self.human_edit, self.policy_edit, self.human_browse, self.policy_browse, self.human_label,
                  self.policy_label):
            w.setEnabled(sets)
        self._update_source_label()
        self._update_actions()

    def remembered_fields(self) -> dict[str, QtWidgets.QWidget]:
        """The fields the window keeps between runs."""
        return {"by_source": self.mode_source, "human": self.human_edit, "policy": self.policy_edit}

    def set_sets(self, human: str | Path, policy: str | Path) -> None:
        """Fill in two folders/globs (the "Folders or globs" mode)."""
        self._set_mode("sets")
        self.human_edit.setText(str(human))
        self.policy_edit.setText(str(policy))

    def set_by_source(self) -> None:
        """Compare within the session's dataset folder, by the source of the ticks."""
        self._set_mode("source")

    def _update_source_label(self) -> None:
        self.source_label.setText(f"dataset: {self._dataset}" if self.mode == "source" else "")

    def _update_actions(self) -> None:
        ready = self.mode == "source" or bool(self.human_edit.text().strip() and self.policy_edit.text().strip())
        self.compare_button.setEnabled(ready and not self._busy)
        self.png_button.setEnabled(self.comparison is not None)
        self.report_button.setEnabled(self.comparison is not None)

    @property
    def busy(self) -> bool:
        return self._busy

    def show_message(self, text: str, level: str = "info") -> None:
        """The tab's status line; errors are text here, never a traceback."""
        self.last_message = text
        self.message_label.setStyleSheet(LEVEL_STYLE[level])
        self.message_label.setText(text)

    def _on_session_event(self, event: Event) -> None:
        if event is Event.DATASET:
            old, self._dataset = self._dataset, Path(self.session.dataset_dir)
            if self.human_edit.text().strip() == str(old):
                self.human_edit.setText(str(self._dataset))
            self._update_source_label()

    def _browse(self, edit: QtWidgets.QLineEdit) -> None:
        start = edit.text().strip() or str(self._dataset)
        chosen = QtWidgets.QFileDialog.getExistingDirectory(self, "Choose an episode folder", start)
        if chosen:
            edit.setText(chosen)

    # -- computing -------------------------------------------------------------------------------
    def compare(self) -> bool:
        """Start the comparison in a worker; False (with the reason shown) when the sets are not usable."""
        if self._busy:
            return False
        human: list[Path] = []
        policy: list[Path] = []
        labels = ("", "")
        try:
            if self.mode == "sets":
                h, p = self.human_edit.text().strip(), self.policy_edit.text().strip()
                if not (h and p):
                    raise ValueError("give a folder or glob for both the human demos and the policy rollouts")
                human, policy = resolve_set(h), resolve_set(p)
                labels = (h, p)
            elif not episode_files(self._dataset):
                raise ValueError(f"no episodes in {self._dataset}")
        except (ValueError, OSError) as exc:
            self.show_message(str(exc), "error")
            return False
        self._generation += 1
        generation = self._generation
        self._busy = True
        total = len(human) + len(policy)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(0)
        self.progress.setFormat("reading %v/%m")
        self.progress.show()
        self.show_message("Computing the metrics…")
        self._update_actions()
        task = Task(run_comparison, self.mode, human, policy, labels, self._dataset)
        task.signals.progress.connect(self._on_progress)
        task.signals.done.connect(lambda result: self._done(generation, result))
        task.signals.failed.connect(lambda reason: self._failed(generation, reason))
        self.runner.start(task)
        return True

    def _on_progress(self, done: int, total: int, what: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setToolTip(what)

    def _done(self, generation: int, comparison: Comparison) -> None:
        if generation != self._generation:
            return
        self._busy = False
        self.progress.hide()
        self.show_comparison(comparison)
        skipped = sum(len(items) for items in comparison.skipped.values())
        text = f"Compared {len(comparison.human)} human and {len(comparison.policy)} policy episode(s)"
        self.show_message(text + (f"; {skipped} skipped (see the diagnosis)" if skipped else "") + ".",
                          "warn" if skipped else "ok")
        self._update_actions()
        self.compared.emit(comparison)

    def _failed(self, generation: int, reason: str) -> None:
        if generation != self._generation:
            return
        self._busy = False
        self.progress.hide()
        kind, _, message = reason.partition(": ")
        self.show_message(f"Could not compare: {message if kind in ('ValueError', 'EpisodeError') else reason}",
                          "error")
        self._update_actions()
        self.compared.emit(None)

    # -- showing ---------------------------------------------------------------------------------
    def show_comparison(self, c: Comparison) -> None:
        """Draw a comparison: charts, table, verdict and diagnosis."""
        self.comparison = c
        self._draw_speed(c)
        self._draw_histogram(c)
        self._draw_phases(c)
        self._fill_table(c)
        self._style_verdict(VERDICT_OK if c.ok else VERDICT_WARN)  # green only when the analysis says ok
        self.verdict_label.setText(c.verdict)
        self.diagnosis.setHtml(diagnosis_html(c))
        self._update_actions()

    def _draw_speed(self, c: Comparison) -> None:
        plot = self.speed_plot
        plot.clear()
        self.speed_legend.clear()
        self.band_items.clear()
        self.median_items.clear()
        x = np.linspace(0.0, 100.0, len(c.profiles["human"]["median"]))
        for side, items in (("human", c.human), ("policy", c.policy)):
            prof, colour = c.profiles[side], QtGui.QColor(COLORS[side])
            band_colour = QtGui.QColor(colour)
            band_colour.setAlpha(BAND_ALPHA)
            edge = pg.mkPen(band_colour, width=1)
            lo = pg.PlotCurveItem(x, prof["p25"], pen=edge)  # curve items: their paths exist to fill between
            hi = pg.PlotCurveItem(x, prof["p75"], pen=edge)
            band = pg.FillBetweenItem(lo, hi, brush=pg.mkBrush(band_colour))
            plot.addItem(lo)
            plot.addItem(hi)
            plot.addItem(band)
            median = plot.plot(x, prof["median"], pen=pg.mkPen(colour, width=2.5),
                               name=f"{side} median, p25–p75 band (n={len(items)})")
            self.band_items[side] = band
            self.median_items[side] = median
        top = max(float(np.max(c.profiles[s]["p75"])) for s in ("human", "policy"))
        plot.setXRange(0, 100, padding=0.01)
        plot.setYRange(0, max(top * 1.15, 1.0), padding=0)

    def _draw_histogram(self, c: Comparison) -> None:
        plot = self.hist_plot
        plot.clear()
        self.hist_legend.clear()
        self.hist_items.clear()
        dur = c.metrics["duration_s"]
        both = np.concatenate([dur.human.values, dur.policy.values])
        lo, hi = float(both.min()), float(both.max())
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, 11)
        width = (edges[1] - edges[0]) / 2
        top = 1
        for j, (side, values) in enumerate((("human", dur.human.values), ("policy", dur.policy.values))):
            counts, _ = np.histogram(values, edges)
            top = max(top, int(counts.max(initial=0)))
            item = pg.BarGraphItem(x0=edges[:-1] + j * width, height=counts, width=width * 0.92,
                                   brush=pg.mkBrush(COLORS[side]), pen=pg.mkPen(None), name=side)
            plot.addItem(item)  # named items join the plot's legend
            self.hist_items[side] = item
        plot.setXRange(lo, hi, padding=0.03)
        plot.setYRange(0, top * 1.35, padding=0)  # room for the legend above the bars

    def _draw_phases(self, c: Comparison) -> None:
        plot = self.phase_plot
        plot.clear()
        self.phase_legend.clear()
        self.phase_items.clear()
        means = phase_means(c)
        rows = {"human": 1.0, "policy": 0.0}
        start = dict.fromkeys(rows, 0.0)
        for phase, colour in PHASE_COLORS.items():
            x0 = np.array([start[s] for s in rows])
            widths = np.array([means[s][phase] for s in rows])
            item = pg.BarGraphItem(x0=x0, y=np.array(list(rows.values())), height=0.6, width=widths,
                                   brush=pg.mkBrush(colour), pen=pg.mkPen("w", width=1), name=phase)
            plot.addItem(item)
            self.phase_items[phase] = item
            for side in rows:
                if means[side][phase] > 0.08 * max(sum(means[s].values()) for s in rows):
                    label = pg.TextItem(f"{means[side][phase]:.1f}", color="#222", anchor=(0.5, 0.5))
                    label.setPos(start[side] + means[side][phase] / 2, rows[side])
                    plot.addItem(label)
                start[side] += means[side][phase]
        total = max(start.values())
        plot.setXRange(0, max(total, 1e-3) * 1.05, padding=0)
        plot.setYRange(-0.6, 2.4, padding=0)  # room for the legend above the bars

    def _fill_table(self, c: Comparison) -> None:
        """Like-with-like durations first (keys ``"speed"``, ``"failures"``), then every metric with data."""
        rows = [(label, mc, key, "the verdict's duration comparison") for key, label, mc in c.duration_rows()]
        rows += [(m.label + (f" ({m.unit})" if m.unit else ""), c.metrics[m.key], m.key, m.help) for m in METRICS
                 if c.metrics[m.key].human.n or c.metrics[m.key].policy.n]
        self.table.setRowCount(len(rows))
        bold = QtGui.QFont()
        bold.setBold(True)
        for r, (text, mc, key, tip) in enumerate(rows):
            label = QtWidgets.QTableWidgetItem(text)
            label.setToolTip(tip)
            label.setData(KEY_ROLE, key)
            cells = [label]
            for dist in (mc.human, mc.policy):
                item = QtWidgets.QTableWidgetItem(fmt_value(mc.key, dist.stat("mean")))
                if dist.n:
                    item.setToolTip(f"n={dist.n}, median {fmt_value(mc.key, dist.stat('median'))}, "
                                    f"p25–p75 {fmt_value(mc.key, dist.stat('p25'))}–"
                                    f"{fmt_value(mc.key, dist.stat('p75'))}")
                cells.append(item)
            ratio = QtWidgets.QTableWidgetItem(fmt_ratio(mc))
            if math.isfinite(mc.ci_low) and (mc.ci_low > 1.0 or mc.ci_high < 1.0):
                ratio.setFont(bold)  # the interval excludes 1: a real difference
                ratio.setToolTip("the 95% interval excludes 1")
            cells.append(ratio)
            for col, item in enumerate(cells):
                if col:
                    item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, col, item)
        self.table.resizeRowsToContents()

    def ratio_text(self, key: str) -> str | None:
        """What the table shows in the ratio column for metric ``key`` (None if the row is not shown)."""
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).data(KEY_ROLE) == key:
                return self.table.item(r, 3).text()
        return None

    # -- export ----------------------------------------------------------------------------------
    def grab_results(self) -> QtGui.QImage:
        """The charts, the table, the verdict and the diagnosis as one picture."""
        return self.results.grab().toImage()

    def save_png(self, path: str | Path | None = None) -> Path | None:
        """Save :meth:`grab_results` as PNG (a file dialog when ``path`` is None); None when cancelled or failed."""
        if self.comparison is None:
            return None
        if path is None:
            chosen, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save the comparison as PNG",
                                                              str(self._dataset.parent / "compare.png"),
                                                              "PNG image (*.png)")
            if not chosen:
                return None
            path = chosen
        path = Path(path)
        if not self.grab_results().save(str(path), "PNG"):
            self.show_message(f"Could not write {path}", "error")
            return None
        self.show_message(f"Saved {path}", "ok")
        return path

    def save_report(self, path: str | Path | None = None) -> Path | None:
        """Write the HTML report (a file dialog when ``path`` is None); None when cancelled or failed."""
        if self.comparison is None:
            return None
        if path is None:
            chosen, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save the HTML report",
                                                              str(self._dataset.parent / "compare.html"),
                                                              "HTML report (*.html)")
            if not chosen:
                return None
            path = chosen
        try:
            written = write_report(self.comparison, path)
        except OSError as exc:
            self.show_message(f"Could not write the report: {exc}", "error")
            return None
        self.show_message(f"Saved {written} (self-contained: open it in any browser)", "ok")
        return written

    # -- lifecycle -------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Call when the window closes: waits for a comparison in progress (its result is dropped)."""
        self._generation += 1
        self.runner.wait(30_000)


def diagnosis_html(c: Comparison) -> str:
    """The diagnosis for the tab's text view (Qt's rich-text subset of HTML)."""
    e = html.escape
    parts = []
    for i, cause in enumerate(c.causes, 1):
        share = share_text(cause, c.gap_s) if c.slower else ""
        effect = f" <span style='color:#666'>({e(share)})</span>" if share else ""
        parts.append(f"<h3 style='margin-bottom:2px'>{i}. {e(cause.title)}{effect}</h3><ul style='margin-top:2px'>"
                     + "".join(f"<li>{e(x)}</li>" for x in cause.evidence)
                     + f"</ul><p style='color:#1b5e20'><b>Fix:</b> {e(cause.fix)}</p>")
    if c.phase is not None:
        parts.append(f"<h3 style='margin-bottom:2px'>{e(c.phase.text())}</h3>")
    found = findings(c.checks)
    if found:
        parts.append("<p><b>" + ("Also measured" if c.causes else "Measured differences") + ":</b> "
                     + e("; ".join(found)) + "</p>")
    rows = c.duration_rows()
    if rows:
        parts.append("<p style='color:#555'>" + "<br>".join(
            f"{e(label)}: human {fmt_value(mc.key, mc.human.stat('mean'))}, policy "
            f"{fmt_value(mc.key, mc.policy.stat('mean'))}, {e(fmt_ratio(mc))}" for _, label, mc in rows) + "</p>")
    parts.append("<p><b>Every check</b> <span style='color:#555'>(evidence that crosses its threshold in "
                 "red)</span></p>")
    status_style = {"fires": "color:#c62828", "partly": "color:#b26a00", "no": "color:#555"}
    for check in c.checks:
        lines = [f"<span style='color:#c62828'>{e(x.text)}</span>" if x.met else e(x.text) for x in check.criteria]
        lines += [e(x) for x in check.context]
        parts.append(f"<p><b>{e(check.title)}</b>: <b style='{status_style[check.status]}'>"
                     f"{e(check.status_text())}</b><br><span style='color:#555'>" + "<br>".join(lines)
                     + "</span></p>")
    sets = (f"<p style='color:#555'><b style='color:{HUMAN_COLOR}'>human</b>: {len(c.human)} episode(s) from "
            f"{e(c.labels[0])}<br><b style='color:{POLICY_COLOR}'>policy</b>: {len(c.policy)} episode(s) from "
            f"{e(c.labels[1])}" + (f"<br>{e(c.speed_text)}" if c.speed_text else "") + "</p>")
    parts.append(sets)
    for note in c.notes:
        parts.append(f"<p style='color:#b26a00'>{e(note)}</p>")
    skipped = [(side, p, reason) for side, items in c.skipped.items() for p, reason in items]
    if skipped:
        parts.append("<p><b>Skipped</b><br>" + "<br>".join(f"{e(side)}: {e(p.name)} — {e(reason)}"
                                                           for side, p, reason in skipped) + "</p>")
    return "".join(parts)
