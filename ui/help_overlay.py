"""Every keyboard shortcut of the window, shown over it (F1 or the Help button)."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from drivers.keyboard import KeyboardInput


def shortcut_sections(extra: list[tuple[str, list[tuple[str, str]]]] | None = None) -> list[tuple[str, list[tuple[str, str]]]]:
    """(section, [(key, what it does)]) for the whole window; tabs add their own sections."""
    from ui.recording_panel import EPISODE_KEYS

    sections = [
        ("Safety (everywhere)", [
            ("Esc", "STOP: the robot holds on the next tick, whatever drives it"),
            ("Ctrl+R", "re-arm after a stop (the robot continues from where it was held)"),
        ]),
        ("Live tab: episodes", [(key, text.lstrip("●✓✗↻ ")) for text, _, key in EPISODE_KEYS.values()]
         + [("T", "teleop on/off")]),
        ("Live tab: keyboard teleop (when Keyboard drives)", KeyboardInput.bindings()),
        ("Window", [
            ("F1", "show / hide this help"),
            ("Ctrl+1 … Ctrl+4", "Live, Review, Compare, Policy tab"),
            ("Ctrl+Q", "quit (a running episode is kept, unlabelled)"),
        ]),
    ]
    return sections + (extra or [])


class HelpOverlay(QtWidgets.QWidget):
    """A translucent sheet over the parent window; click or F1 closes it (Esc stays STOP)."""

    def __init__(self, parent: QtWidgets.QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setObjectName("helpOverlay")
        self.setStyleSheet("#helpOverlay { background: rgba(20, 20, 24, 225); } QLabel { color: #f2f2f2; }")
        self.text = QtWidgets.QLabel()
        self.text.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.text.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignHCenter)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidget(self.text)
        scroll.setWidgetResizable(True)
        scroll.setStyleSheet("background: transparent; border: none;")
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(40, 30, 40, 30)
        layout.addWidget(scroll)
        self.hide()

    def set_sections(self, sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
        html = ["<h2>Keyboard shortcuts</h2><p>Click anywhere or press F1 to close.</p>",
                "<table cellspacing='0' cellpadding='3'>"]
        for title, keys in sections:
            html.append(f"<tr><td colspan='2'><br><b style='font-size:15px'>{title}</b></td></tr>")
            html += [f"<tr><td style='padding-right:24px'><code><b>{k}</b></code></td><td>{v}</td></tr>"
                     for k, v in keys]
        html.append("</table>")
        self.text.setText("".join(html))

    def toggle(self) -> None:
        if self.isVisible():
            self.hide()
        else:
            self.setGeometry(self.parentWidget().rect())
            self.raise_()
            self.show()

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 (Qt name)
        self.hide()
