"""The operator session on the sim rig, recording when the kernel starts refusing to let the episode grow.

    python tests/write_failure_child.py DATASET_DIR

A file-size limit (``RLIMIT_FSIZE``, set once the episode has its first second)
makes every write past the file's current end fail with EFBIG, as a full disk
fails them with ENOSPC: a real error from the kernel through HDF5, not a fake.
Nothing polls: the session's supervisor notices by itself. The process prints one JSON
line saying what the operator was told and whether the rig kept running, records
one more episode with the limit lifted, and exits normally (it used to crash
when the failed file was closed).
"""

from __future__ import annotations

import json
import resource
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from teleop_app.config import load_rig  # noqa: E402
from teleop_app.operator_session import OperatorSession  # noqa: E402
from teleop_app.rig import build_rig  # noqa: E402


def main() -> None:
    rig = build_rig(load_rig(None).without_cameras())
    console = OperatorSession(rig, sys.argv[1], task="pick up the cube")
    console.start()
    path = console.start_episode()
    time.sleep(1.2)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the failed write returns EFBIG instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 1024, resource.RLIM_INFINITY))
    t = time.monotonic()
    while console.recording and time.monotonic() - t < 30:
        time.sleep(1 / 30)
    stopped_after = time.monotonic() - t
    ticks = rig.loop.stats()["ticks"]
    time.sleep(0.5)
    ticked = rig.loop.stats()["ticks"] - ticks
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    result, message = console.last_result, console.message
    second = console.start_episode()
    time.sleep(0.5)
    console.keep(True)
    print(json.dumps({"recording": console.recording, "stopped_after_s": stopped_after, "message": message,
                      "outcome": result.outcome, "error": result.detail, "path": str(result.path),
                      "ticks_after_failure": ticked, "mode": console.mode.value, "killed": console.stopped,
                      "second": str(second)}), flush=True)
    console.close()


if __name__ == "__main__":
    main()
