"""Speed metrics of one episode, from its true tick timestamps (kept range only).

Everything here is computed from the ``/ticks`` table of the kept (trimmed)
range, with the times the loop measured — never ``index / rate``. The numbers
answer "how fast did this episode get the job done, and how did it move?":

Motion
    The end-effector speed at a tick is the distance ``ee_pos`` moved across a
    window of ±``SPEED_HALF_WINDOW_S`` around it divided by the true time between
    the window's ends (a central difference over ~10 ticks at 100 Hz: encoder
    quantisation on a real arm would otherwise turn into speed spikes). The path
    length is the time integral of that speed (exact for a straight line at
    constant speed). Mean / p90 / peak speed are over the kept ticks.

Idle
    A tick is *active* when the end effector moves at ``IDLE_SPEED_MM_S`` or more,
    or the gripper opening changes at ``GRIPPER_ACTIVE_RATE`` per second or more
    (closing the jaws with the arm still is work, not idling). Idle time is the
    true time of the other ticks (each tick owns the interval to the next one).
    ``idle_start_s`` runs from the start of the kept range to the first active
    tick, ``idle_end_s`` from the last active tick to the end of the kept range;
    an episode that never moves has ``idle_start_s = duration`` and
    ``idle_end_s = 0`` (the idle is counted once).

Phases (from the measured gripper opening, 0 closed … 1 open)
    *reach* lasts until the gripper starts closing: the closing is found where
    the opening first drops ``CLOSE_DROP`` below its running maximum, and its
    start is the last tick before that still within ``CLOSE_START_BAND`` of the
    running maximum. *grasp* lasts from there until the opening stops changing
    (stays within ``STILL_BAND`` for ``STILL_WINDOW_S``), *lift* is the rest of
    the kept range (it includes holding the object and any idle at the end). An
    episode whose gripper never closes is all reach.

Time to success
    The sim does not store the tick the cube came up, so *time to lift* is the
    first tick after the grasp at which the end effector is ``LIFT_RISE_M`` above
    where the grasp ended. ``time_to_success_s`` is the time to lift of episodes
    labelled successful (their kept duration when no lift is detected) and is not
    defined (NaN) for episodes not labelled successful.

Control and policy
    Achieved rate = (ticks − 1) / (last − first tick time). Starved ticks carry
    ``SafetyFlag.STARVED`` (a policy tick with no action ready: the last target
    was held); a run of consecutive starved ticks is one *inference wait*, whose
    length runs from its first tick to the next tick that was not starved.

Actions (arm joints of ``action``, i.e. after safety; the gripper joint, last, is left out)
    The joint step of a tick is the L2 norm of the change of the arm targets to
    the next tick. Step sizes, commanded joint speed (step / true interval) and
    measured end-effector step are averaged over *active* ticks that were
    neither starved nor killed and whose target changed, so idling and holding
    do not shrink them (the speed window marks a few still ticks at the edges of
    a movement active; their zero steps are holds, not small actions).
    Smoothness is the mean norm of the second difference of the arm targets
    divided by the squared tick interval (rad/s²; lower = smoother); the
    high-frequency share is the fraction of the commanded joint-velocity power at
    ``HF_CUTOFF_HZ`` and above (interpolated onto a uniform grid at the achieved rate).

Every metric is a float; NaN means "not defined for this episode" (e.g. starved
share of a human demo, or the motion metrics of a robot that stores no
end-effector position: rows with a missing ``ee_pos`` are interpolated in time,
an episode without any leaves its motion undefined and every tick whose gripper
does not move idle).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recordings.format import INPUT_KINDS, SOURCES
from recordings.reader import Episode
from recordings.run_notes import speed_in
from drivers.types import SafetyFlag

SPEED_HALF_WINDOW_S = 0.05
IDLE_SPEED_MM_S = 5.0
GRIPPER_ACTIVE_RATE = 0.2  # opening (0..1) per second
CLOSE_DROP = 0.1
CLOSE_START_BAND = 0.02
STILL_BAND = 0.03
STILL_WINDOW_S = 0.2
LIFT_RISE_M = 0.03
HF_CUTOFF_HZ = 3.0
HOLD_STEP_RAD = 1e-7  # a target that moved less than this did not change: a hold, not a small step
PROFILE_POINTS = 101  # the speed profile over normalized time, 0 … 1 in steps of 1 %
SOURCE_MAJORITY = 0.5  # an episode is "human" / "policy" when that share of its ticks is at least this

_STARVED = int(SafetyFlag.STARVED)
_KILLED = int(SafetyFlag.KILLED)
_HUMAN, _POLICY, _INTERVENTION = SOURCES.index("human"), SOURCES.index("policy"), SOURCES.index("intervention")
_EE_DELTA = INPUT_KINDS.index("ee_delta")


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    fmt: str  # format spec of a value, e.g. ".2f"
    group: str
    help: str


METRICS: tuple[Metric, ...] = (
    Metric("duration_s", "duration", "s", ".2f", "time", "kept range, start to end"),
    Metric("time_to_lift_s", "time to lift", "s", ".2f", "time",
           f"until the end effector is {LIFT_RISE_M * 100:.0f} cm above where the grasp ended"),
    Metric("time_to_success_s", "time to success", "s", ".2f", "time",
           "time to lift of successful episodes (their duration if no lift is seen)"),
    Metric("success", "success rate", "", ".0%", "time", "share of episodes labelled successful"),
    Metric("reach_s", "reach phase", "s", ".2f", "phases", "until the gripper starts closing"),
    Metric("grasp_s", "grasp phase", "s", ".2f", "phases", "gripper closing until it stops"),
    Metric("lift_s", "lift phase", "s", ".2f", "phases", "after the grasp to the end"),
    Metric("path_length_m", "path length", "m", ".3f", "motion", "end-effector path"),
    Metric("speed_mean_mm_s", "mean speed", "mm/s", ".1f", "motion", "end effector, over the kept ticks"),
    Metric("speed_active_mm_s", "speed while moving", "mm/s", ".1f", "motion",
           "end effector, over the active (not idle) ticks"),
    Metric("speed_p90_mm_s", "p90 speed", "mm/s", ".1f", "motion", "90th percentile of the end-effector speed"),
    Metric("speed_peak_mm_s", "peak speed", "mm/s", ".1f", "motion", "highest end-effector speed"),
    Metric("idle_fraction", "idle fraction", "", ".0%", "idle",
           f"time with the arm under {IDLE_SPEED_MM_S:g} mm/s and the gripper still"),
    Metric("idle_s", "idle time", "s", ".2f", "idle", "all idle time"),
    Metric("idle_start_s", "idle at start", "s", ".2f", "idle", "before the first movement"),
    Metric("idle_end_s", "idle at end", "s", ".2f", "idle", "after the last movement"),
    Metric("rate_hz", "control rate", "Hz", ".1f", "control", "achieved, from the tick timestamps"),
    Metric("rate_nominal_hz", "nominal rate", "Hz", ".0f", "control", "the loop's target rate (file metadata)"),
    Metric("starved_share", "starved ticks", "", ".1%", "control", "share of policy ticks with no action ready"),
    Metric("starved_s", "starved time", "s", ".2f", "control", "time spent holding while waiting for inference"),
    Metric("longest_stall_s", "longest stall", "s", ".2f", "control", "longest run of starved ticks"),
    Metric("inference_waits", "inference waits", "", ".0f", "control", "runs of consecutive starved ticks"),
    Metric("intervention_share", "intervention share", "", ".1%", "control", "share of ticks a human took over"),
    Metric("action_step_rad", "joint step", "rad", ".4f", "actions",
           "commanded arm-joint change per tick (active ticks)"),
    Metric("action_step_reach_rad", "reach joint step", "rad", ".4f", "actions", "as above, reach phase only"),
    Metric("action_step_lift_rad", "lift joint step", "rad", ".4f", "actions", "as above, lift phase only"),
    Metric("action_speed_rad_s", "joint speed", "rad/s", ".3f", "actions",
           "commanded arm-joint change per second (active ticks)"),
    Metric("ee_step_mm", "ee step", "mm", ".2f", "actions", "measured end-effector move per tick (active ticks)"),
    Metric("commanded_ee_step_mm", "commanded ee step", "mm", ".2f", "actions",
           "operator/policy end-effector step per tick, where the input was one"),
    Metric("action_accel_rad_s2", "action roughness", "rad/s²", ".2f", "actions",
           "mean |second difference| of the arm targets per s² (lower = smoother)"),
    Metric("action_hf_share", "high-freq. share", "", ".1%", "actions",
           f"share of commanded joint-velocity power at {HF_CUTOFF_HZ:g} Hz and above"),
)
METRIC_KEYS = tuple(m.key for m in METRICS)
METRIC_BY_KEY = {m.key: m for m in METRICS}


@dataclass
class EpisodeMetrics:
    """The metrics of one episode (``values`` keyed like :data:`METRICS`; NaN = not defined)."""

    path: Path
    task: str
    success: str  # "true", "false", "unknown"
    source: str  # "human", "scripted", "policy" or "mixed": who drove most of the kept ticks
    source_mix: dict[str, float]
    values: dict[str, float]
    profile: np.ndarray  # end-effector speed (mm/s) at PROFILE_POINTS normalized times of the kept range
    ticks: int
    notes: list[str] = field(default_factory=list)
    speed: float = 1.0  # a rollout's execution speed (chunks run this many times faster than planned)

    @property
    def name(self) -> str:
        return self.path.name

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "name": self.name, "task": self.task, "success": self.success,
                "source": self.source, "source_mix": self.source_mix, "ticks": self.ticks,
                "metrics": {k: _json_float(v) for k, v in self.values.items()}, "notes": list(self.notes),
                "speed": self.speed}


def _json_float(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


# -- signal helpers (public: the tests and the report use them) ------------------------------------
def windowed_rate(t: np.ndarray, x: np.ndarray, half_window: float = SPEED_HALF_WINDOW_S) -> np.ndarray:
    """|x(t+h) − x(t−h)| / true time between them, per sample; windows are clipped at the ends.

    ``x`` is ``[N]`` or ``[N, D]`` (the norm is taken over D). Samples whose window
    holds a single time give 0.
    """
    t = np.asarray(t, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    lo = np.searchsorted(t, t - half_window, "left")
    hi = np.searchsorted(t, t + half_window, "right") - 1
    dt = t[hi] - t[lo]
    dist = np.linalg.norm(x[hi] - x[lo], axis=1)
    out = np.zeros(len(t))
    ok = dt > 0
    out[ok] = dist[ok] / dt[ok]
    return out


def tick_intervals(t: np.ndarray) -> np.ndarray:
    """True time each tick owns: the interval to the next tick (0 for the last)."""
    return np.append(np.diff(t), 0.0) if len(t) else np.zeros(0)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[(first, last)]`` index ranges of consecutive True values."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return []
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), stops.tolist()))


@dataclass(frozen=True)
class Phases:
    """Tick indices of the gripper phases; ``close_start``/``close_end`` None when not found."""

    close_start: int | None
    close_end: int | None


def find_phases(t: np.ndarray, gripper: np.ndarray) -> Phases:
    """Where the gripper starts closing and where it stops (see the module docstring)."""
    g = np.asarray(gripper, dtype=np.float64)
    n = len(g)
    if n < 2 or not np.isfinite(g).all():
        return Phases(None, None)
    top = np.maximum.accumulate(g)
    dropped = np.flatnonzero(g < top - CLOSE_DROP)
    if dropped.size == 0:
        return Phases(None, None)
    i1 = int(dropped[0])
    near_top = np.flatnonzero(g[: i1 + 1] >= top[: i1 + 1] - CLOSE_START_BAND)
    i0 = int(near_top[-1]) if near_top.size else 0
    span = t[-1] - t[0]
    rate = (n - 1) / span if span > 0 else 1.0
    w = max(2, int(round(STILL_WINDOW_S * rate)) + 1)
    tail = g[i1:]
    if len(tail) >= w:
        windows = np.lib.stride_tricks.sliding_window_view(tail, w)
        still = np.flatnonzero(np.ptp(windows, axis=1) <= STILL_BAND)
        if still.size:
            return Phases(i0, i1 + int(still[0]))
    if len(tail) and np.ptp(tail) <= STILL_BAND:
        return Phases(i0, i1)
    return Phases(i0, None)


def hf_share(t: np.ndarray, q: np.ndarray, cutoff_hz: float = HF_CUTOFF_HZ) -> float:
    """Share of the joint-velocity power at ``cutoff_hz`` and above (q: ``[N, D]``), on a uniform grid.

    The targets are interpolated linearly onto a uniform grid at the achieved
    rate: picking "the last tick at or before" each grid time would repeat and
    skip ticks whose times jitter, and those steps would show up as
    high-frequency power the commands never had. NaN when there is
    less than a second of data, nothing moves, or the rate cannot resolve the cutoff.
    """
    n = len(t)
    if n < 3 or t[-1] - t[0] < 1.0:
        return math.nan
    rate = (n - 1) / (t[-1] - t[0])
    if rate < 2 * cutoff_hz:
        return math.nan
    grid_t = t[0] + np.arange(int((t[-1] - t[0]) * rate) + 1) / rate
    qg = np.stack([np.interp(grid_t, t, q[:, j]) for j in range(q.shape[1])], axis=1)
    v = np.diff(qg, axis=0) * rate
    v = v - v.mean(axis=0)
    power = np.abs(np.fft.rfft(v, axis=0)) ** 2
    freqs = np.fft.rfftfreq(len(v), 1.0 / rate)
    total = float(power.sum())
    if total <= 1e-18:
        return math.nan
    return float(power[freqs >= cutoff_hz].sum() / total)


def _fill_gaps(t: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, bool]:
    """Rows of ``x`` with a non-finite value interpolated from their neighbours in time.

    Returns zeros and False when no row is finite (a robot that reports no
    end-effector position): the motion metrics are then undefined, not zero.
    """
    ok = np.isfinite(x).all(axis=1)
    if ok.all():
        return x, True
    if not ok.any():
        return np.zeros_like(x), False
    filled = np.stack([np.interp(t, t[ok], x[ok, d]) for d in range(x.shape[1])], axis=1)
    return filled, True


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else math.nan


def dominant_source(mix: dict[str, float]) -> str:
    """``"human"``, ``"scripted"`` (an expert program's demo) or ``"policy"`` (policy + intervention ticks)
    when that share is the majority, else ``"mixed"``."""
    shares = {"human": mix.get("human", 0.0), "scripted": mix.get("scripted", 0.0),
              "policy": mix.get("policy", 0.0) + mix.get("intervention", 0.0)}
    best = max(shares, key=shares.get)
    if shares[best] >= SOURCE_MAJORITY and all(shares[best] > v for k, v in shares.items() if k != best):
        return best
    return "mixed"


# -- the metrics -----------------------------------------------------------------------------------
def compute_from_ticks(ticks: dict[str, np.ndarray], kept_range: tuple[float, float], success: str = "unknown",
                       nominal_rate_hz: float = math.nan) -> tuple[dict[str, float], np.ndarray, dict[str, float]]:
    """Metrics of a kept range's ticks (times relative to t0, as :meth:`Episode.ticks` returns them).

    Returns ``(values, speed profile over normalized time, source mix)``.
    """
    t = np.asarray(ticks["t"], dtype=np.float64)
    n = len(t)
    start, end = float(kept_range[0]), float(kept_range[1])
    duration = max(end - start, 0.0)
    v: dict[str, float] = dict.fromkeys(METRIC_KEYS, math.nan)
    v["duration_s"] = duration
    v["success"] = {"true": 1.0, "false": 0.0}.get(success, math.nan)
    v["rate_nominal_hz"] = float(nominal_rate_hz)
    sources = np.asarray(ticks["source"], dtype=np.int64)
    counts = np.bincount(sources, minlength=len(SOURCES))[: len(SOURCES)]
    mix = {SOURCES[i]: round(float(c) / max(n, 1), 4) for i, c in enumerate(counts) if c}
    if n == 0:
        return v, np.zeros(PROFILE_POINTS), mix

    ee, ee_ok = _fill_gaps(t, np.asarray(ticks["ee_pos"], dtype=np.float64))
    grip = np.asarray(ticks["gripper"], dtype=np.float64)
    safety = np.asarray(ticks["safety"], dtype=np.int64)
    action = np.asarray(ticks["action"], dtype=np.float64)
    arm = action[:, :-1] if action.shape[1] > 1 else action
    dt = tick_intervals(t)

    # motion
    speed = windowed_rate(t, ee) * 1000.0  # mm/s (all 0 when the robot reports no end-effector position)
    grip_rate = windowed_rate(t, np.nan_to_num(grip))
    if ee_ok:
        v["path_length_m"] = float(np.trapezoid(speed, t) / 1000.0) if n > 1 else 0.0
        v["speed_mean_mm_s"] = float(np.mean(speed))
        v["speed_p90_mm_s"] = float(np.percentile(speed, 90))
        v["speed_peak_mm_s"] = float(np.max(speed))
    if n > 1 and t[-1] > t[0]:
        u = (t - t[0]) / (t[-1] - t[0])
        profile = np.interp(np.linspace(0.0, 1.0, PROFILE_POINTS), u, speed)
    else:
        profile = np.full(PROFILE_POINTS, float(speed[0]))

    # idle
    active = (speed >= IDLE_SPEED_MM_S) | (grip_rate >= GRIPPER_ACTIVE_RATE)
    if ee_ok:
        v["speed_active_mm_s"] = _mean(speed[active])
    v["idle_s"] = float(dt[~active].sum())
    v["idle_fraction"] = v["idle_s"] / duration if duration > 0 else math.nan
    if active.any():
        first, last = int(np.argmax(active)), int(n - 1 - np.argmax(active[::-1]))
        v["idle_start_s"] = max(float(t[first]) - start, 0.0)
        v["idle_end_s"] = max(end - float(t[min(last + 1, n - 1)]), 0.0)
    else:
        v["idle_start_s"], v["idle_end_s"] = duration, 0.0

    # phases and time to lift / success
    phases = find_phases(t, grip)
    reach_mask = np.ones(n, dtype=bool)
    lift_mask = np.zeros(n, dtype=bool)
    if phases.close_start is None:
        v["reach_s"] = duration
    else:
        t_close = float(t[phases.close_start])
        v["reach_s"] = t_close - start
        reach_mask = np.arange(n) < phases.close_start
        if phases.close_end is None:
            v["grasp_s"], v["lift_s"] = end - t_close, 0.0
        else:
            t_held = float(t[phases.close_end])
            v["grasp_s"], v["lift_s"] = t_held - t_close, end - t_held
            lift_mask = np.arange(n) >= phases.close_end
            risen = np.flatnonzero(ee[phases.close_end:, 2] >= ee[phases.close_end, 2] + LIFT_RISE_M)
            if ee_ok and risen.size:
                v["time_to_lift_s"] = float(t[phases.close_end + int(risen[0])]) - start
    if success == "true":
        v["time_to_success_s"] = v["time_to_lift_s"] if math.isfinite(v["time_to_lift_s"]) else duration

    # control rate, starvation, interventions
    if n > 1 and t[-1] > t[0]:
        v["rate_hz"] = (n - 1) / float(t[-1] - t[0])
    starved = (safety & _STARVED) != 0
    policy_ticks = int(((sources == _POLICY) | starved).sum())
    if policy_ticks:
        v["starved_share"] = float(starved.sum()) / policy_ticks
        period = float(np.median(np.diff(t))) if n > 1 else 0.0
        waits = []
        for a, b in runs(starved):
            waits.append(float(t[b + 1] - t[a]) if b + 1 < n else float(t[b] - t[a]) + period)
        v["starved_s"] = float(sum(waits))
        v["longest_stall_s"] = max(waits, default=0.0)
        v["inference_waits"] = float(len(waits))
    v["intervention_share"] = float((sources == _INTERVENTION).sum()) / n

    # actions
    if n > 1:
        steps = np.linalg.norm(np.diff(arm, axis=0), axis=1)
        gaps = np.diff(t)
        held = starved | ((safety & _KILLED) != 0)
        ok = active[:-1] & ~held[:-1] & ~held[1:] & (gaps > 0) & np.isfinite(steps) & (steps > HOLD_STEP_RAD)
        v["action_step_rad"] = _mean(steps[ok])
        rates = np.divide(steps, gaps, out=np.zeros_like(steps), where=gaps > 0)
        v["action_speed_rad_s"] = _mean(rates[ok])
        v["action_step_reach_rad"] = _mean(steps[ok & reach_mask[:-1]])
        v["action_step_lift_rad"] = _mean(steps[ok & lift_mask[:-1]])
        ee_steps = np.linalg.norm(np.diff(ee, axis=0), axis=1) * 1000.0
        if ee_ok:
            v["ee_step_mm"] = _mean(ee_steps[active[:-1]])
        raw = np.asarray(ticks["raw_input"], dtype=np.float64)
        kinds = np.asarray(ticks["input_kind"], dtype=np.int64)
        ee_cmd = (kinds == _EE_DELTA) & np.isfinite(raw[:, :3]).all(axis=1) & active
        v["commanded_ee_step_mm"] = _mean(np.linalg.norm(raw[ee_cmd, :3], axis=1) * 1000.0)
        if n > 2:
            second = np.linalg.norm(arm[2:] - 2 * arm[1:-1] + arm[:-2], axis=1)
            h = 0.5 * (gaps[1:] + gaps[:-1])
            ok2 = active[1:-1] & ~held[:-2] & ~held[1:-1] & ~held[2:] & (h > 0)
            v["action_accel_rad_s2"] = _mean(second[ok2] / h[ok2] ** 2)
        v["action_hf_share"] = hf_share(t, arm)
    return v, profile, mix


def episode_metrics(path: str | Path) -> EpisodeMetrics:
    """Open ``path`` and compute its metrics over the kept range (raises EpisodeError if unreadable)."""
    path = Path(path)
    with Episode.open(path) as ep:
        ticks = ep.ticks(trimmed=True)
        meta = ep.meta
        values, profile, mix = compute_from_ticks(ticks, ep.kept_range, str(meta["success"]),
                                                  float(meta["control_rate_hz"]))
        notes = [f"needs repair: {issue}" for issue in ep.issues]
        n = len(ticks["t"])
    if n < 2:
        notes.append("fewer than two ticks in the kept range: most metrics are undefined")
    return EpisodeMetrics(path=path, task=str(meta["task"]), success=str(meta["success"]),
                          source=dominant_source(mix), source_mix=mix, values=values, profile=profile, ticks=n,
                          notes=notes, speed=speed_in(str(meta.get("notes", ""))))


def metrics_of(paths: Sequence[str | Path], progress: Callable[[int, int, str], None] | None = None
               ) -> tuple[list[EpisodeMetrics], list[tuple[Path, str]]]:
    """Metrics of many episodes; unreadable ones are returned as ``(path, reason)``, never raised."""
    from recordings.reader import EpisodeError

    done: list[EpisodeMetrics] = []
    failed: list[tuple[Path, str]] = []
    paths = [Path(p) for p in paths]
    for i, path in enumerate(paths):
        if progress:
            progress(i, len(paths), path.name)
        try:
            done.append(episode_metrics(path))
        except EpisodeError as exc:
            failed.append((path, str(exc)))
    if progress:
        progress(len(paths), len(paths), "")
    return done, failed
