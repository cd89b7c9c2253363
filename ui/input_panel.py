"""The input devices of the rig: which one drives, whether it is connected, and its live values."""

from __future__ import annotations

import html
import time

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from drivers.types import InputState

TWIST_AXES = ("x", "y", "z", "roll", "pitch", "yaw")
FULL_SCALE = (0.15, 0.15, 0.15, 1.0, 1.0, 1.0)  # m/s, rad/s drawn as a full bar
STALE_S = 0.5


class SignedBars(QtWidgets.QWidget):
    """Labelled bars for values in [-1, 1] drawn from the middle, with the value printed."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[tuple[str, float, str]] = []  # (label, fraction in [-1, 1], text)
        self.setMinimumHeight(7 * 16)

    def set_rows(self, rows: list[tuple[str, float, str]]) -> None:
        if rows != self.rows:
            self.rows = rows
            self.setMinimumHeight(max(1, len(rows)) * 16)
            self.update()

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt name)
        p = QtGui.QPainter(self)
        fg = self.palette().color(QtGui.QPalette.ColorRole.WindowText)
        label_w, value_w, h = 58, 84, 14
        track_w = max(20, self.width() - label_w - value_w)
        for i, (label, frac, text) in enumerate(self.rows):
            y = i * 16
            p.setPen(fg)
            p.drawText(QtCore.QRectF(0, y, label_w, h), QtCore.Qt.AlignmentFlag.AlignVCenter, label)
            track = QtCore.QRectF(label_w, y + 2, track_w, h - 4)
            p.fillRect(track, QtGui.QColor("#eee"))
            mid = track.center().x()
            p.setPen(QtGui.QColor("#aaa"))
            p.drawLine(QtCore.QPointF(mid, track.top()), QtCore.QPointF(mid, track.bottom()))
            f = float(np.clip(frac, -1.0, 1.0))
            if f:
                bar = QtCore.QRectF(min(mid, mid + f * track_w / 2), track.top(), abs(f) * track_w / 2,
                                    track.height())
                p.fillRect(bar, QtGui.QColor("#31a354" if f > 0 else "#756bb1"))
            p.setPen(fg)
            p.drawText(QtCore.QRectF(label_w + track_w + 4, y, value_w - 4, h),
                       QtCore.Qt.AlignmentFlag.AlignVCenter, text)
        p.end()


def describe(state: InputState | None, now: float) -> tuple[str, list[tuple[str, float, str]]]:
    """Connection text and bar rows for an input state (plain function: tests call it)."""
    if state is None:
        return "no reading yet", []
    if not state.connected:
        return "DISCONNECTED — the robot holds", []
    age = now - state.t_host
    status = "connected" if age < STALE_S else f"connected, no report for {age:.1f} s"
    rows: list[tuple[str, float, str]] = []
    if state.joint_targets is not None:
        for i, q in enumerate(np.asarray(state.joint_targets, dtype=float)):
            rows.append((f"joint {i + 1}", q / np.pi, f"{q:+.2f} rad"))
    else:
        twist = np.zeros(6) if state.ee_twist is None else np.asarray(state.ee_twist, dtype=float)
        for name, v, full in zip(TWIST_AXES, twist, FULL_SCALE):
            unit = "m/s" if name in "xyz" else "rad/s"
            rows.append((name, v / full, f"{v:+.2f} {unit}"))
    if state.gripper is not None:
        rows.append(("gripper", 2 * state.gripper - 1, f"{state.gripper:.2f}"))
    return status, rows


class InputPanel(QtWidgets.QGroupBox):
    """Pick the input that drives; see it live. Only the driving input is read (reading has side effects
    for some devices, e.g. the scripted expert's state machine), the others show their device name."""

    input_chosen = QtCore.Signal(str)

    def __init__(self, inputs: dict[str, object], parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Input device", parent)
        layout = QtWidgets.QVBoxLayout(self)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Drive with"))
        self.choice = QtWidgets.QComboBox()
        for name, device in inputs.items():
            self.choice.addItem(f"{name}  ({type(device).__name__})", name)
        self.choice.activated.connect(lambda i: self.input_chosen.emit(self.choice.itemData(i)))
        row.addWidget(self.choice, 1)
        layout.addLayout(row)
        self.status = QtWidgets.QLabel()
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.bars = SignedBars()
        layout.addWidget(self.bars)
        self.hint = QtWidgets.QLabel()
        self.hint.setWordWrap(True)
        self.hint.setObjectName("hint")
        layout.addWidget(self.hint)
        self.others = QtWidgets.QLabel()
        self.others.setWordWrap(True)
        layout.addWidget(self.others)

    def set_active(self, name: str | None) -> None:
        i = self.choice.findData(name)
        if i >= 0 and i != self.choice.currentIndex():
            self.choice.setCurrentIndex(i)

    def show_state(self, state: InputState | None, driving: bool, hint: str = "", error: str | None = None) -> None:
        if not driving:
            self.status.setText("not driving (teleop is off or the robot is stopped)")
            self.bars.set_rows([])
        else:
            text, rows = describe(state, time.monotonic())
            warn = text.startswith("DISCONNECTED")
            self.status.setText(f"<b style='color:#d33'>{html.escape(text)}</b>" if warn else text)
            self.bars.set_rows(rows)
        if error:
            self.status.setText(f"{self.status.text()}<br><span style='color:#d33'>{error}</span>")
        self.hint.setText(hint)

    def show_others(self, states: dict[str, tuple[bool | None, str | None]]) -> None:
        """The inputs that do not drive: ``name -> (connected or None if not read, error)``."""
        lines = []
        for name, (connected, error) in states.items():
            if error:
                lines.append(f"<span style='color:#d33'>● {name}: {error}</span>")
            elif connected is None:
                lines.append(f"<span style='color:#888'>● {name}: standby</span>")
            else:
                color, text = ("#2a2", "connected") if connected else ("#d33", "disconnected")
                lines.append(f"<span style='color:{color}'>● {name}: {text}</span>")
        self.others.setText("<br>".join(lines))
