"""Doctor checks of the dataset folder: free space and measured write speed against what the rig records.

What a recording writes is estimated from the rig file: every camera's width ×
height × fps, colour stored as JPEG (about a tenth of the raw RGB bytes at the
writer's quality 90), depth as 16-bit PNG (about half of the raw bytes), plus
the ticks. The write test writes ``size_mb`` to a file in the folder with one
fsync at the end, then removes it. No threads.

Thresholds (docs/hardware.md): free space fails below 10 minutes of recording
or 1 GB, whichever is more, and warns below an hour; the write speed fails
below 4× the recording's rate (the writer must catch up after a pause, and the
disk has other users).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from teleop_app.config import RigConfig
from teleop_app.doctor.result import FAIL, OK, WARN, Check

JPEG_RATIO = 0.1  # JPEG bytes per raw RGB byte at quality 90 (recordings/writer.py)
PNG16_RATIO = 0.5  # 16-bit PNG bytes per raw depth byte at zlib level 1
TICK_BYTES = 512  # state, command, input and timestamps of one control tick, as stored
FAIL_MINUTES, WARN_MINUTES, MIN_FREE_BYTES = 10, 60, 1e9
SPEED_HEADROOM = 4.0
WRITE_TEST_FILE = ".teleop-app-doctor-write-test"
MB = 1e6


def recording_rate(config: RigConfig) -> float:
    """Bytes per second a recording of this rig writes (an estimate from its cameras and rate)."""
    rate = config.rate_hz * TICK_BYTES
    for camera in config.cameras:
        o = camera.options
        pixels = float(o.get("width", 640)) * float(o.get("height", 480)) * float(o.get("fps", 30))
        rate += pixels * (2 * PNG16_RATIO if o.get("stream") == "depth" else 3 * JPEG_RATIO)
    return rate


def existing_folder(folder: Path) -> Path:
    """``folder`` or its nearest existing parent (the disk it will be on)."""
    folder = folder.expanduser().absolute()
    while not folder.exists():
        folder = folder.parent
    return folder


def _where(folder: Path) -> str:
    folder = folder.expanduser().absolute()
    here = existing_folder(folder)
    return str(folder) if here == folder else f"{here} ({folder} does not exist yet)"


def free_space(folder: Path, rate: float) -> Check:
    """Enough free space in ``folder`` for a recording session at ``rate`` bytes per second."""
    free = shutil.disk_usage(existing_folder(folder)).free
    minutes = free / rate / 60
    span = f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.0f} h"
    detail = f"{free / 1e9:.2f} GB free in {_where(folder)}: about {span} of recording at {rate / MB:.1f} MB/s"
    fix = "free some space, or record elsewhere: --dataset DIR"
    if free < max(MIN_FREE_BYTES, FAIL_MINUTES * 60 * rate):
        return Check("disk space", FAIL, detail + f" (needs {FAIL_MINUTES} min and at least 1 GB)", fix)
    if minutes < WARN_MINUTES:
        return Check("disk space", WARN, detail, fix)
    return Check("disk space", OK, detail)


def write_speed(folder: Path, rate: float, size_mb: int = 64, min_mb_s: float | None = None) -> Check:
    """Write ``size_mb`` with an fsync in ``folder``; fail below ``min_mb_s`` (default: 4× ``rate``)."""
    need = min_mb_s if min_mb_s is not None else SPEED_HEADROOM * rate / MB
    here = existing_folder(folder)
    path = here / WRITE_TEST_FILE
    block = os.urandom(4_000_000)
    fix = "record to a local disk (not a network share or a USB 2 stick): --dataset DIR"
    try:
        t0 = time.perf_counter()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            written = 0
            while written < size_mb * MB:
                written += os.write(fd, block)
            os.fsync(fd)
        finally:
            os.close(fd)
        seconds = time.perf_counter() - t0
    except OSError as exc:
        return Check("disk write", FAIL, f"cannot write in {_where(folder)}: {exc.strerror}",
                     "free some space, or record where you may write: --dataset DIR")
    finally:
        path.unlink(missing_ok=True)
    speed = written / MB / seconds
    detail = f"{speed:.0f} MB/s writing {written / MB:.0f} MB with fsync in {_where(folder)} (needs {need:.1f} MB/s)"
    return Check("disk write", OK if speed >= need else FAIL, detail, None if speed >= need else fix)

