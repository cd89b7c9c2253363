"""The README's screenshots of the window, made with real sim episodes: ``python -m ui.screenshots docs``.

``record_sim_dataset`` records scripted-expert episodes on the simulated SO-101
with both cameras; ``window_screenshots`` opens the window on that dataset,
grabs the Live tab while recording and the Review tab with trim handles. Needs
a Qt platform: set ``QT_QPA_PLATFORM=offscreen`` on a machine without a display.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from teleop_app.config import DeviceSpec, load_rig
from teleop_app.operator_session import OperatorSession
from teleop_app.runs import EndRules
from teleop_app.rig import build_rig

MAX_PNG_BYTES = 300 * 1024


def record_sim_dataset(folder: str | Path, episodes: int = 1, seconds: float = 12.0, width: int = 320,
                       height: int = 240, task: str = "pick up the cube") -> list[Path]:
    """Record ``episodes`` scripted-expert episodes of ``seconds`` each (cameras at ``width`` x ``height``)."""
    config = load_rig()
    cameras = tuple(DeviceSpec(c.kind, c.type, c.name, {**c.options, "width": width, "height": height})
                    for c in config.cameras)
    rig = build_rig(dataclasses.replace(config, cameras=cameras), active_input="scripted")
    session = OperatorSession(rig, folder, task=task, operator="screenshots")
    session.start()
    paths = []
    try:
        deadline = time.monotonic() + 60
        while not all(cam.latest() is not None for cam in rig.cameras.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for i in range(episodes):
            session.reset_scene(seed=i)
            session.start_episode(EndRules(time_limit_s=seconds))
            paths.append(session.wait_for_end(session.run).path)
    finally:
        session.close()
    return paths


def _wait(app: QtWidgets.QApplication, done: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)


def window_screenshots(out_dir: str | Path, dataset_dir: str | Path, size: tuple[int, int] = (1440, 900)) -> list[Path]:
    """The whole window twice, as a new user sees it: ``live-recording.png`` (Live tab, the scripted
    expert driving, an episode being recorded) and ``review-tab.png`` (that dataset's first episode in
    the Review tab, cursor mid-way, trim handles pulled in but not applied). Each PNG ≤ 300 KB."""
    import tempfile

    from ui.app import open_console

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings = QtCore.QSettings(str(Path(tmp) / "settings.ini"), QtCore.QSettings.Format.IniFormat)
        session, window = open_console(None, str(dataset_dir), operator="screenshots", settings=settings)
        try:
            window.resize(*size)
            window.show()
            session.set_task("pick up the cube")
            session.set_active_input("scripted")
            session.reset_scene(seed=4)
            _wait(app, lambda: all(t.frames_shown > 3 for t in window.live.tiles.values()))
            session.start_episode(EndRules())  # kept by hand below, whatever the window's keep-on-success choice
            _wait(app, lambda: session.elapsed_s > 3.5)
            live = out_dir / "live-recording.png"
            _save_small_png(window.grab().toImage(), live)
            session.keep(True)

            window.tabs.setCurrentWidget(window.review)
            tab = window.review
            tab.refresh()
            _wait(app, lambda: not tab.listing)
            first = next((s.path for s in tab.table.source_model.summaries() if not s.damaged), None)
            if first is None:
                raise RuntimeError(f"{dataset_dir} holds no readable episode to show")
            tab.table.select_path(first)
            _wait(app, lambda: tab.loaded is not None)
            player = tab.player
            full = tab.loaded.full_duration
            if player.trim is not None and player.trim.whole:
                player.set_trim(0.12 * full, 0.88 * full)  # show the handles and the shaded parts
            player.seek(0.45 * full)
            _wait(app, lambda: player.shown_t == player.cursor)
            _wait(app, lambda: not tab.listing)  # the kept episode's listing, if it came after ours
            for _ in range(5):  # let the layouts settle after the last captions
                app.processEvents()
                time.sleep(0.02)
            review = out_dir / "review-tab.png"
            _save_small_png(window.grab().toImage(), review)
        finally:
            window.close()
            session.close()
    return [live, review]


def main() -> None:
    """``python -m ui.screenshots OUT_DIR``: record a sim episode, then save both window screenshots."""
    import sys
    import tempfile

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs")
    with tempfile.TemporaryDirectory() as data:
        record_sim_dataset(data, episodes=1)
        for path in window_screenshots(out, data):
            print(f"{path}  {path.stat().st_size // 1024} KB")


def _save_small_png(image: QtGui.QImage, path: Path) -> None:
    """PNG as it is when small enough, else with a 256-colour palette (camera images make PNGs large)."""
    image.save(str(path), "PNG", 0)
    if path.stat().st_size <= MAX_PNG_BYTES:
        return
    indexed = image.convertToFormat(QtGui.QImage.Format.Format_Indexed8, QtCore.Qt.ImageConversionFlag.ThresholdDither)
    indexed.save(str(path), "PNG", 0)
    if path.stat().st_size > MAX_PNG_BYTES:
        raise RuntimeError(f"{path} is {path.stat().st_size // 1024} KB even with a palette; use a smaller size")


if __name__ == "__main__":
    main()
