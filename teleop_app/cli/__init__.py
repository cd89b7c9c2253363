"""The ``teleop-app`` command line: a front end that drives the core, as the window does.

Nothing in the core imports this package; it may open the window (``ui``) for ``gui``.
"""

from teleop_app.cli.main import main

__all__ = ["main"]
