"""Keep Python's full garbage collections short, so they do not stall the control loop.

A full (generation-2) collection walks every object the collector tracks while it
holds the GIL, and no other thread runs meanwhile, the control loop included. With the
window open (Qt, pyqtgraph, MuJoCo, numpy: ~117,000 objects) one took 45 ms on
this machine, idle (`benchmarks/gc_pause.py`); the test process, at ~485,000
objects, took up to 347 ms, enough to trip the 200 ms watchdog. Almost all of those
objects are modules, classes and the window, which live as long as the process.
Freezing them moves them out of the collector's sight. Garbage made later is still
collected as usual.
"""
from __future__ import annotations

import gc


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
