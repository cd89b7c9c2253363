"""The window as `teleop-app gui` opens it (``ui.app.main``), with an episode recording from the start.

    python tests/gui_recording_child.py DATASET_DIR

For the test of what Ctrl+C in the terminal says: the only change to the real
program is that the console starts an episode as soon as its rig runs (a person
would press Enter).
"""

from __future__ import annotations

import sys

import ui.app

start_console = ui.app.start_console


def start_and_record(session) -> None:
    start_console(session)
    session.set_task("pick up the cube")
    session.start_episode()


ui.app.start_console = start_and_record
sys.exit(ui.app.main(None, sys.argv[1]))
