"""Control-loop timing with the operator console open and recording, against headless, in one run.

One process, one rig (the built-in sim with both cameras rendering, the scripted
expert driving), phases alternated so drift of the machine affects both alike:

    headless  the rig records an episode; no window exists
    gui       the same, with the main window shown and refreshing (~30 Hz)

Each phase starts from a scene reset and records one episode. Prints one JSON
object: per phase the loop's achieved rate, period percentiles, overruns and
recording drops; for GUI phases also the window's refresh rate; and the ratio of
the GUI phases' mean loop rate to the headless phases'.

    python benchmarks/gui_load.py --seconds 15 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6 import QtCore, QtWidgets  # noqa: E402

from ui.app import open_console  # noqa: E402


def run_phase(app: QtWidgets.QApplication, console, window, gui: bool, seconds: float, seed: int) -> dict:
    rig = console.rig
    console.reset_scene(seed)
    if gui:
        window.show()
    else:
        window.hide()
    t_end = time.monotonic() + 1.0
    while time.monotonic() < t_end:  # settle: cameras at rate, window painted once
        app.processEvents()
        time.sleep(0.005)
    rig.loop.reset_stats()
    refreshes0 = window.live.plots.updates
    console.start_episode()
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if gui:
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 5)
        time.sleep(0.002)  # the event loop's own idle wait
    elapsed = time.monotonic() - t0
    dropped = dict(console.recorder.dropped)
    console.keep(True)
    s = rig.loop.stats()
    out = {
        "phase": "gui" if gui else "headless",
        "achieved_hz": round(s["achieved_hz"], 2),
        "period_p50_ms": round(s["period_p50_ms"], 2),
        "period_p99_ms": round(s["period_p99_ms"], 2),
        "period_max_ms": round(s["period_max_ms"], 2),
        "overruns": s["overruns"],
        "recording_dropped": dropped,
        "camera_fps": {n: round(c.rate.rate(), 1) for n, c in rig.cameras.items()},
    }
    if gui:
        out["gui_plot_refresh_hz"] = round((window.live.plots.updates - refreshes0) / elapsed, 1)
        out["gui_timer_hz"] = round(window.repaints.rate(), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per phase")
    parser.add_argument("--rounds", type=int, default=2, help="headless+gui pairs")
    parser.add_argument("--rig", default=None)
    args = parser.parse_args()

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        settings = QtCore.QSettings(os.path.join(tmp, "settings.ini"), QtCore.QSettings.Format.IniFormat)
        console, window = open_console(args.rig, os.path.join(tmp, "data"), settings=settings)
        try:
            console.set_task("benchmark: pick up the cube")
            console.set_active_input("scripted")
            phases = []
            for r in range(args.rounds):
                phases.append(run_phase(app, console, window, False, args.seconds, seed=r))
                phases.append(run_phase(app, console, window, True, args.seconds, seed=r))
        finally:
            window.close()
            console.close()

    def mean(key: str, phase: str) -> float:
        values = [p[key] for p in phases if p["phase"] == phase]
        return sum(values) / len(values)

    headless, gui = mean("achieved_hz", "headless"), mean("achieved_hz", "gui")
    print(json.dumps({
        "platform": QtWidgets.QApplication.platformName(),
        "seconds_per_phase": args.seconds,
        "phases": phases,
        "loop_hz_headless": round(headless, 2),
        "loop_hz_gui": round(gui, 2),
        "gui_over_headless": round(gui / headless, 4),
        "gui_plot_refresh_hz": round(mean("gui_plot_refresh_hz", "gui"), 1),
    }, indent=2))


if __name__ == "__main__":
    main()
