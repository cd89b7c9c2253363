"""teleop-app core: rig configuration, the control loop, safety, session state and the CLI.

Nothing in here imports Qt; the GUI in ``ui/`` observes these objects.
"""

__version__ = "0.1.0"
