"""teleop-app core: rig configuration, the control loop, safety and the operator session.

Nothing in here imports Qt; the GUI in ``ui/`` observes these objects. The
command line (``teleop_app.cli``) is a front end on top of the core.
"""

from drivers.app_version import APP_VERSION as __version__

__all__ = ["__version__"]
