"""Screenshots of the Review tab for the docs, made with real sim episodes.

``record_sim_dataset`` records a few scripted-expert episodes on the simulated
SO-101 with both cameras; ``review_screenshot`` opens the Review tab on a
dataset folder, loads its first readable episode with the cursor mid-way and
the trim handles pulled in (not applied: the dataset is not modified), and
saves the tab as a PNG. Needs a Qt platform: set ``QT_QPA_PLATFORM=offscreen``
on a machine without a display.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from teleop_app.config import DeviceSpec, load_rig
from teleop_app.console import Console
from teleop_app.rig import build_rig

MAX_PNG_BYTES = 300 * 1024


def record_sim_dataset(folder: str | Path, episodes: int = 1, seconds: float = 12.0, width: int = 320,
                       height: int = 240, task: str = "pick up the cube") -> list[Path]:
    """Record ``episodes`` scripted-expert episodes of ``seconds`` each (cameras at ``width`` x ``height``)."""
    config = load_rig()
    cameras = tuple(DeviceSpec(c.kind, c.type, c.name, {**c.options, "width": width, "height": height})
                    for c in config.cameras)
    rig = build_rig(dataclasses.replace(config, cameras=cameras), active_input="scripted")
    rig.start()
    console = Console(rig, folder, task=task, operator="screenshots")
    paths = []
    try:
        deadline = time.monotonic() + 60
        while not all(cam.latest() is not None for cam in rig.cameras.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for i in range(episodes):
            console.reset_scene(seed=i)
            console.start_episode()
            time.sleep(seconds)
            result = console.keep(success=bool(rig.robot.success()))
            paths.append(result.path)
    finally:
        console.close()
    return paths


def _wait(app: QtWidgets.QApplication, done: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)


def review_screenshot(out_png: str | Path, dataset_dir: str | Path, size: tuple[int, int] = (1440, 860)) -> Path:
    """Save a PNG (at most 300 KB) of the Review tab showing the first readable episode of ``dataset_dir``."""
    from ui.bridge import ConsoleBridge
    from ui.review_tab import ReviewTab

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    rig = build_rig(load_rig().without_cameras(), active_input="scripted")  # never started: the robot stays put
    console = Console(rig, dataset_dir)
    tab = ReviewTab(ConsoleBridge(console))
    try:
        tab.resize(*size)
        tab.show()
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
        for _ in range(5):  # let the layouts settle after the last captions
            app.processEvents()
            time.sleep(0.02)
        image = tab.grab().toImage()
        out_png = Path(out_png)
        out_png.parent.mkdir(parents=True, exist_ok=True)
        _save_small_png(image, out_png)
    finally:
        tab.shutdown()
        tab.close()
        tab.deleteLater()
        console.close()
    return out_png


def _save_small_png(image: QtGui.QImage, path: Path) -> None:
    """PNG as it is when small enough, else with a 256-colour palette (camera images make PNGs large)."""
    image.save(str(path), "PNG", 0)
    if path.stat().st_size <= MAX_PNG_BYTES:
        return
    indexed = image.convertToFormat(QtGui.QImage.Format.Format_Indexed8, QtCore.Qt.ImageConversionFlag.ThresholdDither)
    indexed.save(str(path), "PNG", 0)
    if path.stat().st_size > MAX_PNG_BYTES:
        raise RuntimeError(f"{path} is {path.stat().st_size // 1024} KB even with a palette; use a smaller size")
