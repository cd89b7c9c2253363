"""What the window remembers between runs: form fields (one QSettings group per tab, one key per widget)
and where the window was, put back on a screen that may have changed since.

Values go through QSettings as text (the INI backend gives strings back), so each
widget kind has its own way in and out. A remembered choice that no longer exists
(a combo item gone, a value outside the range) leaves the widget's default alone.
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

# Line edits, spin boxes, combo boxes (by item data) and check or radio buttons.
Field = QtWidgets.QWidget


def save_fields(settings: QtCore.QSettings, group: str, fields: dict[str, Field]) -> None:
    settings.beginGroup(group)
    try:
        for key, widget in fields.items():
            settings.setValue(key, _value(widget))
    finally:
        settings.endGroup()


def restore_fields(settings: QtCore.QSettings, group: str, fields: dict[str, Field]) -> None:
    settings.beginGroup(group)
    try:
        for key, widget in fields.items():
            if settings.contains(key):
                _set(widget, str(settings.value(key)))
    finally:
        settings.endGroup()


def _value(widget: Field) -> str:
    if isinstance(widget, QtWidgets.QLineEdit):
        return widget.text()
    if isinstance(widget, (QtWidgets.QSpinBox, QtWidgets.QDoubleSpinBox)):
        return repr(widget.value())
    if isinstance(widget, QtWidgets.QComboBox):
        data = widget.currentData()
        return "" if data is None else str(data)
    return "true" if widget.isChecked() else "false"


def _set(widget: Field, text: str) -> None:
    if isinstance(widget, QtWidgets.QLineEdit):
        widget.setText(text)
    elif isinstance(widget, (QtWidgets.QSpinBox, QtWidgets.QDoubleSpinBox)):
        try:
            value = float(text)
        except ValueError:
            return
        if widget.minimum() <= value <= widget.maximum():
            widget.setValue(int(value) if isinstance(widget, QtWidgets.QSpinBox) else value)
    elif isinstance(widget, QtWidgets.QComboBox):
        index = next((i for i in range(widget.count())
                      if ("" if widget.itemData(i) is None else str(widget.itemData(i))) == text), -1)
        if index >= 0:
            widget.setCurrentIndex(index)
    elif widget.isCheckable():
        widget.setChecked(text == "true")


def fit_rect(rect: QtCore.QRect, available: QtCore.QRect) -> QtCore.QRect:
    """``rect`` made no larger than ``available`` and moved (not resized further) to lie inside it."""
    width, height = min(rect.width(), available.width()), min(rect.height(), available.height())
    x = min(max(rect.x(), available.left()), available.left() + available.width() - width)
    y = min(max(rect.y(), available.top()), available.top() + available.height() - height)
    return QtCore.QRect(x, y, width, height)


def fit_on_screen(window: QtWidgets.QWidget) -> None:
    """Keep a restored window (its frame, title bar and status bar) on the screen it opens on: a saved
    size from a larger monitor, or a position on one no longer attached, would put parts of it out of reach."""
    center = window.frameGeometry().center()
    screen = QtGui.QGuiApplication.screenAt(center) or window.screen() or QtGui.QGuiApplication.primaryScreen()
    if screen is None:
        return
    frame, inner = window.frameGeometry(), window.geometry()
    extra_w, extra_h = frame.width() - inner.width(), frame.height() - inner.height()
    fitted = fit_rect(frame, screen.availableGeometry())
    if fitted != frame:  # never below what the window's layout needs (a screen smaller than that cannot help)
        least = window.minimumSizeHint().expandedTo(window.minimumSize())
        window.resize(max(fitted.width() - extra_w, least.width()), max(fitted.height() - extra_h, least.height()))
        window.move(fitted.topLeft())
