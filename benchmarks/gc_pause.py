"""How long a full garbage collection holds the GIL (and so the control loop) in the GUI process.

Opens the operator console offscreen on the built-in sim rig with the built-in
policy's modules (torch) imported, as a working session has them, then times full
collections before and after :func:`teleop_app.gc_pauses.freeze_long_lived`.
Prints one JSON object.

    python benchmarks/gc_pause.py --repeats 5
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import torch  # noqa: E402,F401  (a loaded checkpoint brings it)
from PySide6 import QtWidgets  # noqa: E402

from teleop_app.gc_pauses import freeze_long_lived  # noqa: E402
from ui.app import open_console  # noqa: E402


def full_collections_ms(repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        gc.collect()
        times.append((time.perf_counter() - t) * 1e3)
    return {"min": round(min(times), 2), "max": round(max(times), 2), "tracked_objects": len(gc.get_objects())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    console, window = open_console(None, tempfile.mkdtemp(prefix="gc_pause_"), operator="bench")
    window.show()
    t_end = time.monotonic() + 2.0
    while time.monotonic() < t_end:  # the window painting, cameras and loop running
        app.processEvents()
        time.sleep(0.01)
    try:
        before = full_collections_ms(args.repeats)
        frozen = freeze_long_lived()
        after = full_collections_ms(args.repeats)
    finally:
        window.close()
        console.close()
    print(json.dumps({"full_collection_ms": {"as_is": before, "after_freeze": after}, "frozen_objects": frozen},
                     indent=2))


if __name__ == "__main__":
    main()
