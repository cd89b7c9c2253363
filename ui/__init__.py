"""PySide6 + pyqtgraph views over the core. Nothing else imports this package."""
