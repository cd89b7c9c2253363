"""The control loop's figures and its stall diagnosis.

:class:`LoopStats` is written by the loop thread only (one tick at a time) and
read by anyone (:meth:`LoopStats.figures` copies what it needs); a reader may see
the counters of two neighbouring ticks, never a torn value. Percentiles come
from fixed rings (:data:`RING` periods) so memory stays bounded.

:func:`where_thread_is` answers "where is the loop stuck?" for the watchdog's
reason and for a call that timed out: the loop thread's innermost frame outside
the standard library, or a garbage collection that stopped every thread.
"""

from __future__ import annotations

import sys
import sysconfig
import threading
from pathlib import Path
from types import CodeType
from typing import Any

import numpy as np

SECTIONS = ("input", "command", "safety", "send", "read", "publish")
RING = 1 << 16  # ~11 minutes of periods at 100 Hz for percentiles
_STDLIB = sysconfig.get_paths()["stdlib"]


def where_thread_is(thread: threading.Thread | None, sleeping: CodeType) -> str | None:
    """Where ``thread`` is now: its innermost frame outside the standard library, for a stall report.

    ``sleeping`` is the code of the loop's wait for its next tick: a thread found
    there is late because it was not scheduled, not because a driver blocks it.
    """
    frame = sys._current_frames().get(thread.ident) if thread is not None and thread.ident is not None else None
    while frame is not None and frame.f_code.co_filename.startswith(_STDLIB):
        frame = frame.f_back
    if frame is None:
        return None
    code = frame.f_code
    if code is sleeping:
        return ("waiting for its next tick (its thread did not get to run: the CPU is overloaded, "
                "or another thread kept the GIL)")
    return f"in {code.co_qualname} ({'/'.join(Path(code.co_filename).parts[-2:])}:{frame.f_lineno})"


class _Ring:
    def __init__(self) -> None:
        self.data = np.zeros(RING)
        self.n = 0

    def add(self, x: float) -> None:
        self.data[self.n % RING] = x
        self.n += 1

    def values(self) -> np.ndarray:
        return self.data[: min(self.n, RING)]


class LoopStats:
    """Periods, time per tick section, overruns and who drove how many ticks, since :meth:`reset`."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.periods = _Ring()
        self.sections = {name: _Ring() for name in SECTIONS}
        self.kill_latencies: list[float] = []
        self.overruns = 0
        self.missed = 0
        self.ticks = 0
        self.t_first: float | None = None
        self.t_last: float | None = None
        self.prev_t0: float | None = None
        self.policy_ticks = 0
        self.starved = 0
        self.stall = 0
        self.longest_stall = 0
        self.inference_ticks = 0
        self.intervention_ticks = 0
        self.takeovers = 0
        self.hand_backs = 0

    def tick_started(self, t0: float) -> None:
        if self.prev_t0 is not None:
            self.periods.add(t0 - self.prev_t0)
        self.prev_t0 = t0

    def tick_done(self, t0: float, marks: tuple[float, ...]) -> None:
        """``marks``: the time each section ended, in :data:`SECTIONS` order, after ``t0``."""
        self.ticks += 1
        self.t_first = self.t_first or t0
        self.t_last = t0
        before = t0
        for name, t in zip(SECTIONS, marks):
            self.sections[name].add(t - before)
            before = t

    def late(self, skipped: int) -> None:
        self.overruns += 1
        self.missed += skipped

    def policy_tick(self, starved: bool, in_flight: bool) -> None:
        self.policy_ticks += 1
        if in_flight:
            self.inference_ticks += 1
        if starved:
            self.starved += 1
            self.stall += 1
            self.longest_stall = max(self.longest_stall, self.stall)
        else:
            self.stall = 0

    def figures(self, target_hz: float) -> dict[str, Any]:
        """Rate, period percentiles, overruns and time per section (ms)."""
        periods = self.periods.values() * 1e3
        span = (self.t_last - self.t_first) if self.t_first and self.t_last else 0.0
        lat = np.asarray(self.kill_latencies) * 1e3
        return {
            "target_hz": target_hz,
            "ticks": self.ticks,
            "achieved_hz": (self.ticks - 1) / span if span > 0 else 0.0,
            "period_p50_ms": _pct(periods, 50),
            "period_p99_ms": _pct(periods, 99),
            "period_max_ms": float(periods.max()) if periods.size else None,
            "overruns": self.overruns,
            "missed_deadlines": self.missed,
            "sections_ms": {
                name: {"mean": _mean(r.values() * 1e3), "p99": _pct(r.values() * 1e3, 99),
                       "max": float(r.values().max() * 1e3) if r.n else None}
                for name, r in self.sections.items()
            },
            "kill_latency_ms": {"count": int(lat.size), "p50": _pct(lat, 50), "p99": _pct(lat, 99),
                                "max": float(lat.max()) if lat.size else None},
        }

    def policy_figures(self) -> dict[str, Any]:
        return {
            "ticks": self.policy_ticks,
            "starved_ticks": self.starved,
            "longest_stall_ticks": self.longest_stall,
            "inference_in_flight_ticks": self.inference_ticks,
            "intervention_ticks": self.intervention_ticks,
            "takeovers": self.takeovers,
            "hand_backs": self.hand_backs,
        }


def _pct(x: np.ndarray, q: float) -> float | None:
    return float(np.percentile(x, q)) if x.size else None


def _mean(x: np.ndarray) -> float | None:
    return float(x.mean()) if x.size else None
