"""Quality flags of episodes: what a curator should look at before training on them.

Per episode, from its kept range (what an export would use) and true timestamps:

==================  ==============================================================================
flag                raised when (thresholds: the constants below; ``docs/quality-flags.md``)
==================  ==============================================================================
``overruns``        more than ``OVERRUN_SHARE`` of tick periods exceed ``OVERRUN_FACTOR`` × 1/rate
``rate_dip``        some ``RATE_WINDOW_S`` window ran below ``RATE_DIP_SHARE`` of the target rate
``stall``           a tick period of ``STALL_S`` or more (the loop stopped)
``dropped``         samples the recorder could not keep (``dropped`` attribute) or gaps in ``tick``
``starved``         ticks with the STARVED safety bit (32: a policy tick with no action ready)
``camera_gap``      a camera skipped frames (``seq`` gaps) or captured none for ``CAMERA_GAP_FACTOR``
                    frame periods (nominal ``fps``), or stopped more than that long before the end
``jerky``           arm-target jerk above ``JERK_OUTLIER`` × the dataset's median (``JERK_MIN_EPISODES``+)
``still``           no arm joint moved more than ``STILL_RAD`` and the gripper not ``STILL_GRIPPER``
``near_still``      the arm's largest joint travel is under ``NEAR_STILL_RAD`` (but not still)
``long``/``short``  kept duration above ``LENGTH_FACTOR`` × or below 1/``LENGTH_FACTOR`` × the
                    dataset's median (``LENGTH_MIN_EPISODES``+ episodes)
==================  ==============================================================================

Jerk is the RMS of the third time derivative of the commanded arm joints
(``action``, gripper left out) resampled onto a uniform grid at the achieved
rate, in rad/s³; every episode also gets its rank in the dataset (1 = jerkiest).

Per-episode flags need one file; ``jerky``, ``long`` and ``short`` compare an
episode with the others given to :func:`check_dataset`. Files are read one at a
time on the caller's thread; no images are decoded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from drivers.types import SafetyFlag
from recordings.format import CAMERAS
from recordings.reader import Episode, EpisodeError

OVERRUN_FACTOR = 1.5
OVERRUN_SHARE = 0.01
RATE_WINDOW_S = 1.0
RATE_DIP_SHARE = 0.9
STALL_S = 0.1
CAMERA_GAP_FACTOR = 2.5
JERK_OUTLIER = 3.0
JERK_MIN_EPISODES = 3
STILL_RAD = 0.01
STILL_GRIPPER = 0.02
NEAR_STILL_RAD = 0.1
LENGTH_FACTOR = 2.0
LENGTH_MIN_EPISODES = 3

FLAGS = ("overruns", "rate_dip", "stall", "dropped", "starved", "camera_gap", "jerky", "still", "near_still",
         "long", "short")
_STARVED = int(SafetyFlag.STARVED)


@dataclass
class EpisodeQuality:
    """The figures behind the flags of one episode, and the flags with a reason each."""

    path: Path
    damaged: str | None = None  # why it could not be read; no figures then
    duration_s: float = 0.0
    rate_hz: float = math.nan  # achieved over the kept range
    worst_rate_hz: float = math.nan  # lowest over a RATE_WINDOW_S window
    overrun_share: float = 0.0
    longest_period_s: float = 0.0
    tick_gaps: int = 0  # ticks missing from the counter
    dropped: int = 0  # from the file's dropped attribute
    starved_ticks: int = 0
    camera_seq_gaps: dict[str, int] = field(default_factory=dict)
    camera_longest_gap_s: dict[str, float] = field(default_factory=dict)  # incl. from the last frame to the end
    camera_fps: dict[str, float] = field(default_factory=dict)  # nominal
    joint_travel_rad: float = 0.0  # the arm joint that travelled furthest
    gripper_range: float = 0.0
    jerk: float = math.nan  # rad/s^3 RMS
    jerk_rank: int = 0  # 1 = the jerkiest of the dataset; 0 = not ranked
    flags: dict[str, str] = field(default_factory=dict)  # flag -> why

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def episode_quality(path: str | Path) -> EpisodeQuality:
    """The per-episode figures and flags of one file (dataset-relative flags are left to :func:`check_dataset`)."""
    path = Path(path)
    q = EpisodeQuality(path)
    try:
        with Episode.open(path) as ep:
            _measure(ep, q)
    except EpisodeError as exc:
        q.damaged = str(exc)
    return q


def check_dataset(paths: Sequence[str | Path],
                  progress: Callable[[int, int, str], None] | None = None) -> list[EpisodeQuality]:
    """Every episode's figures and flags, with jerk and length judged against the others, in input order."""
    out = []
    for i, path in enumerate(paths):
        if progress:
            progress(i, len(paths), Path(path).name)
        out.append(episode_quality(path))
    if progress:
        progress(len(paths), len(paths), "")
    rank_against_dataset(out)
    return out


def rank_against_dataset(episodes: list[EpisodeQuality]) -> None:
    """Add ``jerk_rank`` and the ``jerky``, ``long`` and ``short`` flags."""
    good = [q for q in episodes if q.damaged is None]
    jerks = [q for q in good if math.isfinite(q.jerk)]
    for rank, q in enumerate(sorted(jerks, key=lambda q: -q.jerk), start=1):
        q.jerk_rank = rank
    if len(jerks) >= JERK_MIN_EPISODES:
        median = float(np.median([q.jerk for q in jerks]))
        for q in jerks:
            if median > 0 and q.jerk > JERK_OUTLIER * median:
                q.flags["jerky"] = (f"jerk {q.jerk:.0f} rad/s³ is {q.jerk / median:.1f}× the dataset's median "
                                    f"({median:.0f}), rank {q.jerk_rank}/{len(jerks)}")
    if len(good) >= LENGTH_MIN_EPISODES:
        median = float(np.median([q.duration_s for q in good]))
        for q in good:
            if median > 0 and q.duration_s > LENGTH_FACTOR * median:
                q.flags["long"] = f"{q.duration_s:.1f} s, {q.duration_s / median:.1f}× the median {median:.1f} s"
            elif median > 0 and q.duration_s < median / LENGTH_FACTOR:
                q.flags["short"] = f"{q.duration_s:.1f} s, {q.duration_s / median:.2f}× the median {median:.1f} s"


def _measure(ep: Episode, q: EpisodeQuality) -> None:
    ticks = ep.ticks(trimmed=True)
    t = np.asarray(ticks["t"], dtype=np.float64)
    start, end = ep.kept_range
    q.duration_s = float(end - start)
    rate = float(ep.meta["control_rate_hz"])
    period = 1.0 / rate if rate > 0 else math.nan
    dt = np.diff(t)
    if len(dt):
        q.rate_hz = float(len(dt) / (t[-1] - t[0])) if t[-1] > t[0] else math.nan
        q.longest_period_s = float(dt.max())
        q.overrun_share = float(np.mean(dt > OVERRUN_FACTOR * period)) if math.isfinite(period) else 0.0
        q.worst_rate_hz = _worst_window_rate(t)
    q.tick_gaps = int(np.sum(np.maximum(np.diff(ticks["tick"]) - 1, 0)))
    q.dropped = int(sum(int(v) for v in (ep.meta["dropped"] or {}).values()))
    q.starved_ticks = int(np.count_nonzero(np.asarray(ticks["safety"], dtype=np.int64) & _STARVED))
    _cameras(ep, q, start, end)
    state = np.nan_to_num(np.asarray(ticks["state"], dtype=np.float64))
    if len(state):
        q.joint_travel_rad = float(np.ptp(state[:, :-1], axis=0).max()) if state.shape[1] > 1 else 0.0
        q.gripper_range = float(np.ptp(np.nan_to_num(ticks["gripper"])))
    q.jerk = _jerk(t, np.asarray(ticks["action"], dtype=np.float64)[:, :-1])
    _flag(q, rate)


def _worst_window_rate(t: np.ndarray) -> float:
    """The lowest tick rate over any ``RATE_WINDOW_S`` window starting at a tick (whole range if shorter)."""
    if t[-1] - t[0] < RATE_WINDOW_S:
        return float((len(t) - 1) / (t[-1] - t[0])) if t[-1] > t[0] else math.nan
    last_start = np.searchsorted(t, t[-1] - RATE_WINDOW_S, "right")
    ends = np.searchsorted(t, t[:last_start] + RATE_WINDOW_S, "right")
    return float((ends - np.arange(last_start) - 1).min() / RATE_WINDOW_S)


def _cameras(ep: Episode, q: EpisodeQuality, start: float, end: float) -> None:
    """Skipped ``seq`` numbers and the longest time without a new frame, within the kept range."""
    for cam in ep.camera_names:
        s = ep.frame_slice(cam, trimmed=True)
        seq = ep.h5[CAMERAS][cam]["seq"][s.start:s.stop]
        times = ep.frame_times(cam, trimmed=True)
        q.camera_fps[cam] = float(ep.camera_info(cam)["fps"])
        q.camera_seq_gaps[cam] = int(np.sum(np.maximum(np.diff(seq) - 1, 0)))
        if len(times) == 0:
            q.camera_longest_gap_s[cam] = float(end - start)
            continue
        edges = np.concatenate([[max(start, times[0])], times[1:], [max(end, times[-1])]])
        q.camera_longest_gap_s[cam] = float(np.diff(edges).max())


def _jerk(t: np.ndarray, q: np.ndarray) -> float:
    """RMS third derivative of ``q`` [N, D] on a uniform grid at the achieved rate; NaN when too short."""
    if len(t) < 8 or t[-1] <= t[0] or q.shape[1] == 0:
        return math.nan
    h = (t[-1] - t[0]) / (len(t) - 1)
    grid = t[0] + np.arange(len(t)) * h
    u = np.stack([np.interp(grid, t, np.nan_to_num(q[:, j])) for j in range(q.shape[1])], axis=1)
    third = np.diff(u, n=3, axis=0) / h**3
    return float(np.sqrt(np.mean(np.sum(third**2, axis=1))))


def _flag(q: EpisodeQuality, rate: float) -> None:
    f = q.flags
    if q.overrun_share > OVERRUN_SHARE:
        f["overruns"] = (f"{q.overrun_share:.1%} of tick periods over {OVERRUN_FACTOR}× the "
                         f"{1000 / rate:.0f} ms target")
    if math.isfinite(q.worst_rate_hz) and q.worst_rate_hz < RATE_DIP_SHARE * rate:
        f["rate_dip"] = f"{q.worst_rate_hz:.0f} Hz over {RATE_WINDOW_S:g} s (target {rate:g} Hz)"
    if q.longest_period_s >= STALL_S:
        f["stall"] = f"no tick for {q.longest_period_s * 1000:.0f} ms"
    if q.dropped or q.tick_gaps:
        f["dropped"] = f"{q.dropped} sample(s) dropped by the recorder, {q.tick_gaps} tick(s) missing"
    if q.starved_ticks:
        f["starved"] = f"{q.starved_ticks} starved tick(s) (policy action not ready)"
    gaps = [f"{cam}: {n} frame(s) skipped" for cam, n in q.camera_seq_gaps.items() if n]
    gaps += [f"{cam}: no frame for {gap * 1000:.0f} ms" for cam, gap in q.camera_longest_gap_s.items()
             if q.camera_fps[cam] > 0 and gap > CAMERA_GAP_FACTOR / q.camera_fps[cam]]
    if gaps:
        f["camera_gap"] = "; ".join(gaps)
    if q.joint_travel_rad < STILL_RAD and q.gripper_range < STILL_GRIPPER:
        f["still"] = f"arm moved at most {q.joint_travel_rad:.3f} rad, gripper {q.gripper_range:.3f}"
    elif q.joint_travel_rad < NEAR_STILL_RAD:
        f["near_still"] = f"arm moved at most {q.joint_travel_rad:.3f} rad"
