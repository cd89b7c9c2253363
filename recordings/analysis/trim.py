"""Suggested kept range of an episode: the idle start and end cut, a short margin kept.

Computed from the whole recording (not the current kept range) and its true tick
times. A tick is *active* when, over a ±``SPEED_HALF_WINDOW_S`` window (so encoder
quantisation and single-tick noise do not count as motion):

- a commanded arm joint (``action``) moves at ``JOINT_SPEED_RAD_S`` or more, or
- a measured arm joint (``state``) moves at ``JOINT_SPEED_RAD_S`` or more, or
- the commanded or measured gripper joint moves at ``JOINT_SPEED_RAD_S`` or more,
  or the measured opening changes at ``GRIPPER_RATE`` per second or more.

Speeds are per joint (the largest of them), so a single slow joint counts.
Motion starts at the first run of active ticks lasting ``MIN_ACTIVE_S`` or more
and ends at the last such run; shorter blips (a servo settling, a bump of the
table) are ignored. The suggestion keeps ``MARGIN_S`` before and after, clipped
to the recording. An episode without such a run has no suggestion (it is still:
see the quality flags), and one whose idle ends are both shorter than
``MIN_CUT_S`` is left as recorded.

Pure functions of the tick columns; no threads. Applying a suggestion is
``recordings.edit.set_trim`` (non-destructive).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recordings.analysis.metrics import runs, windowed_rate
from recordings.reader import Episode

SPEED_HALF_WINDOW_S = 0.05
JOINT_SPEED_RAD_S = 0.05  # ~3 deg/s: slower than any deliberate motion, faster than servo noise over 0.1 s
GRIPPER_RATE = 0.1  # opening (0..1) per second
MIN_ACTIVE_S = 0.1
MARGIN_S = 0.3
MIN_CUT_S = 0.05


@dataclass(frozen=True)
class TrimSuggestion:
    """What to keep of one episode, in seconds relative to its t0."""

    path: Path
    full_duration: float
    current: tuple[float, float]  # the kept range now
    keep: tuple[float, float] | None  # the suggested kept range; None: no motion found

    @property
    def cut_start(self) -> float:
        return self.keep[0] if self.keep else 0.0

    @property
    def cut_end(self) -> float:
        return self.full_duration - self.keep[1] if self.keep else 0.0

    @property
    def changes(self) -> bool:
        """Applying it would change the kept range."""
        return self.keep is not None and any(abs(a - b) > 1e-6 for a, b in zip(self.keep, self.current))


def active_ticks(t: np.ndarray, state: np.ndarray, action: np.ndarray, gripper: np.ndarray) -> np.ndarray:
    """Per tick: is anything moving (see the module docstring)? ``t`` in seconds, ``state``/``action`` ``[N, J]``."""
    t = np.asarray(t, dtype=np.float64)
    moving = np.zeros(len(t), dtype=bool)
    for q in (state, action):
        q = np.nan_to_num(np.asarray(q, dtype=np.float64))
        speeds = np.stack([windowed_rate(t, q[:, j], SPEED_HALF_WINDOW_S) for j in range(q.shape[1])], axis=1)
        moving |= speeds.max(axis=1) >= JOINT_SPEED_RAD_S
    opening = np.nan_to_num(np.asarray(gripper, dtype=np.float64))
    moving |= windowed_rate(t, opening, SPEED_HALF_WINDOW_S) >= GRIPPER_RATE
    return moving


def motion_span(t: np.ndarray, active: np.ndarray) -> tuple[float, float] | None:
    """Time of the first and last tick of the runs of activity lasting ``MIN_ACTIVE_S`` or more; None if none."""
    long_runs = [(a, b) for a, b in runs(active) if t[b] - t[a] >= MIN_ACTIVE_S]
    if not long_runs:
        return None
    return float(t[long_runs[0][0]]), float(t[long_runs[-1][1]])


def suggest_range(t: np.ndarray, active: np.ndarray, margin: float = MARGIN_S) -> tuple[float, float] | None:
    """The kept range for ticks at times ``t`` (relative, from 0) with activity ``active``."""
    span = motion_span(t, active)
    if span is None:
        return None
    full = float(t[-1])
    start, end = max(0.0, span[0] - margin), min(full, span[1] + margin)
    if start < MIN_CUT_S:
        start = 0.0
    if full - end < MIN_CUT_S:
        end = full
    return start, end


def suggest_trim(path: str | Path, margin: float = MARGIN_S) -> TrimSuggestion:
    """The suggestion for one episode file; raises ``EpisodeError`` if it cannot be read."""
    path = Path(path)
    with Episode.open(path) as ep:
        ticks = ep.ticks(trimmed=False)
        keep = suggest_range(ticks["t"], active_ticks(ticks["t"], ticks["state"], ticks["action"], ticks["gripper"]),
                             margin)
        return TrimSuggestion(path, float(ep.full_duration), tuple(float(x) for x in ep.kept_range), keep)
