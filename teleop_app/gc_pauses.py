"""Keep Python's full garbage collections short, so they do not stall the control loop.

A full (generation-2) collection walks every object the collector tracks while it
holds the GIL, and no other thread runs meanwhile, the control loop included. With the
window open and torch imported (Qt, pyqtgraph, MuJoCo, numpy: ~257,000 objects) one
took 106-125 ms on this machine, idle (`benchmarks/gc_pause.py`); the test process,
at ~485,000 objects, took up to 347 ms, enough to trip the 200 ms watchdog. Almost all of those
objects are modules, classes and the window, which live as long as the process.
Freezing them moves them out of the collector's sight. Garbage made later is still
collected as usual.
"""
from __future__ import annotations

import gc
import time


def freeze_long_lived(collect: bool = True) -> int:
    """Move every object alive now out of the collector's view; returns how many are frozen in all.

    Call it once what stays for the whole run is built (modules, the window, the
    rig), before the control loop starts. ``collect`` first frees any garbage,
    which would otherwise be frozen too (and never freed); it is one full
    collection, so skip it while the loop runs (e.g. after loading a policy)
    and freeze only.
    """
    if collect:
        gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


LONG_PAUSE_S = 0.02  # a collection at least this long is remembered, to explain a stall
_start: float | None = None
_last_long: tuple[float, float, int] | None = None  # (monotonic end, seconds, generation)


def _on_collection(phase: str, info: dict) -> None:
    """gc callback. Collections run one at a time (they hold the GIL), so one start time is enough."""
    global _start, _last_long
    now = time.monotonic()
    if phase == "start":
        _start = now
    elif _start is not None:
        if now - _start >= LONG_PAUSE_S:
            _last_long = (now, now - _start, info["generation"])
        _start = None


def watch_collections() -> None:
    """Remember long collections from now on (idempotent)."""
    if _on_collection not in gc.callbacks:
        gc.callbacks.append(_on_collection)


def long_collection_since(t: float) -> str | None:
    """A sentence about the last long collection if it ended at or after monotonic time ``t``."""
    last = _last_long
    if last is None or last[0] < t:
        return None
    return f"a garbage collection (generation {last[2]}) stopped every thread for {last[1] * 1e3:.0f} ms"
