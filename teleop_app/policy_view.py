"""What the Policy tab shows, as plain data: the rollout's status line and the action plot's curves.

:func:`policy_status` describes an :class:`~teleop_app.operator_session.OperatorSession`'s
policy side at one moment (the tab calls it at ~30 Hz); it decides nothing — every
rule (when a rollout ends, what a kill means) is the session's. :func:`chunk_curves`
turns a runner's plan into the curves drawn ahead of and behind "now".
:class:`SentTrail` remembers the targets that reached the robot; it belongs to
the view that samples it (one thread).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from policies.base import ActionKind
from policies.loading import is_server
from policies.runner import RunnerView
from teleop_app.errors import OperatorError
from teleop_app.modes import Mode
from teleop_app.rollouts import describe_policy
from teleop_app.runs import EndReason, RunKind

if TYPE_CHECKING:
    from teleop_app.operator_session import OperatorSession

STOPPED_TEXT = "stopped — press Start to run the policy again"
_TRAIL = 1024  # commands sent, sampled at the view's rate (~30 s at 30 Hz)


class SentTrail:
    """The joint targets the runner reported sent to the robot (after safety), one per policy tick seen."""

    def __init__(self, capacity: int = _TRAIL) -> None:
        self.capacity = capacity
        self.clear()

    def clear(self) -> None:
        self._ticks = np.zeros(self.capacity, dtype=np.int64)
        self._values: np.ndarray | None = None
        self._n = 0
        self.last_tick: int | None = None

    def add(self, tick: int | None, values: np.ndarray | None) -> None:
        if tick is None or values is None or tick == self.last_tick:
            return
        if self._values is None or self._values.shape[1] != values.shape[0]:
            self._values = np.zeros((self.capacity, values.shape[0]))
            self._n = 0
        i = self._n % self.capacity
        self._ticks[i], self._values[i] = tick, values
        self._n += 1
        self.last_tick = tick

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Ticks [n] and targets [n, dim], oldest first."""
        if self._values is None or self._n == 0:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0))
        n = min(self._n, self.capacity)
        order = np.arange(self._n - n, self._n) % self.capacity
        return self._ticks[order], self._values[order]


@dataclass(frozen=True)
class PolicyStatus:
    """What a view shows, taken at one moment (plain data: tests read it too)."""

    phase: str  # "empty", "loading", "ready", "running", "takeover", "stopped"
    headline: str  # one line: what is going on / what to do next
    policy: str  # the loaded policy, described ("" when none)
    mode: Mode
    stopped: bool  # the kill switch is latched
    view: RunnerView | None  # the current or last runner's view
    now_tick: int | None  # the control loop's newest tick
    success: bool | None  # the robot reports success (None: it cannot tell, or no run yet)
    gripper: tuple[float | None, float | None]  # commanded and measured opening
    banner: str  # "HUMAN TAKEOVER …" while a human drives instead of the policy, else ""
    stats: str  # latency, starved ticks, chunks, takeovers as one line
    recording: str  # the rollout's episode, or the last kept one
    can_start: bool
    can_stop: bool
    can_take_over: bool
    can_hand_back: bool


@dataclass(frozen=True)
class ChunkCurves:
    """The action plot's curves: x in seconds relative to now (negative: past), y ``[n, dim]``.

    ``executed``: actions the strategy handed out (before safety); ``current`` and
    ``previous``: the two newest chunks over the ticks they were computed for;
    ``planned``: the actions that will run from now on (blended where chunks overlap);
    ``sent``: joint targets that reached the robot (after safety; joint actions only).
    """

    dim: int
    executed: tuple[np.ndarray, np.ndarray]
    current: tuple[np.ndarray, np.ndarray]
    previous: tuple[np.ndarray, np.ndarray]
    planned: tuple[np.ndarray, np.ndarray]
    sent: tuple[np.ndarray, np.ndarray]

    def items(self) -> list[tuple[str, tuple[np.ndarray, np.ndarray]]]:
        return [(name, getattr(self, name)) for name in ("executed", "current", "previous", "planned", "sent")]


def _empty(dim: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0), np.zeros((0, dim))


def _decimate(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    step = max(1, int(np.ceil(x.size / max_points)))
    if step == 1:
        return x, y
    keep = np.arange(x.size - 1, -1, -step)[::-1]  # always keep the newest point
    return x[keep], y[keep]


def chunk_curves(view: RunnerView, now_tick: int, rate_hz: float, past_s: float, sent: SentTrail | None = None,
                 max_points: int = 300) -> ChunkCurves:
    """The curves of the action plot for ``view`` at tick ``now_tick`` (``past_s`` seconds of history)."""
    plan = view.plan
    dim = plan.actions.shape[1] if plan.actions.ndim == 2 and plan.actions.shape[1] else 0
    for chunk in (plan.current, plan.previous):
        if not dim and chunk is not None and chunk.actions.ndim == 2:
            dim = chunk.actions.shape[1]
    if not dim and plan.executed.ndim == 2:
        dim = plan.executed.shape[1]
    first = now_tick - int(round(past_s * rate_hz))

    def series(ticks: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if ticks.size == 0 or values.ndim != 2 or values.shape[1] != dim:
            return _empty(dim)
        keep = ticks >= first
        return _decimate((ticks[keep] - now_tick) / rate_hz, values[keep], max_points)

    def chunk_series(chunk: Any) -> tuple[np.ndarray, np.ndarray]:
        if chunk is None:
            return _empty(dim)
        return series(chunk.tick + np.arange(len(chunk)), np.asarray(chunk.actions, dtype=np.float64))

    sent_series = _empty(dim)
    if sent is not None and view.kind is ActionKind.JOINT:
        sent_series = series(*sent.arrays())
    return ChunkCurves(dim, series(plan.executed_ticks, plan.executed), chunk_series(plan.current),
                       chunk_series(plan.previous), series(plan.ticks, plan.actions), sent_series)


def policy_text(session: OperatorSession) -> str:
    """The loaded policy, described ("" when none)."""
    if session.policy is None or session.load_options is None:
        return ""
    return describe_policy(session.policy.info, session.load_options.spec)


def policy_status(session: OperatorSession, sent: SentTrail | None = None) -> PolicyStatus:
    """The Policy tab's state now; samples the runner's last sent target into ``sent``."""
    run = session.run if session.run is not None and session.run.kind is RunKind.ROLLOUT else None
    loop, robot = session.rig.loop, session.rig.robot
    running = run is not None and run.active
    mode = session.mode
    success = robot.success() if run is not None else None
    view = run.runner.view() if run is not None else None
    if view is not None and running and sent is not None:
        sent.add(view.last_sent_tick, view.last_sent)
    latest = loop.latest()
    gripper: tuple[float | None, float | None] = (None, None)
    if latest is not None:
        gripper = (robot.joint_to_gripper(float(latest.command[-1])), latest.state.gripper)
    phase = _phase(session, running, mode)
    now_tick = None if latest is None else latest.tick
    if view is not None and view.plan.executed_ticks.size:
        # The loop takes a tick's action before it publishes the tick: "now" is the newer of the two.
        now_tick = max(int(view.plan.executed_ticks[-1]), now_tick if now_tick is not None else -1)
    try:
        session.check_can_start_rollout()
        can_start = True
    except OperatorError:
        can_start = False
    return PolicyStatus(
        phase=phase, headline=_headline(session, phase, run, success), policy=policy_text(session), mode=mode,
        stopped=session.stopped, view=view, now_tick=now_tick, success=success, gripper=gripper,
        banner=_banner(session, run) if phase == "takeover" else "", stats=_stats_text(session, run, view),
        recording=_recording_text(run), can_start=can_start, can_stop=running,
        can_take_over=running and mode is Mode.POLICY, can_hand_back=running and mode is Mode.INTERVENTION,
    )


def _phase(session: OperatorSession, running: bool, mode: Mode) -> str:
    if session.loading is not None:
        return "loading"
    if running:
        return "takeover" if mode is Mode.INTERVENTION else "running"
    run = session.run
    if run is not None and run.kind is RunKind.ROLLOUT:
        return "stopped"
    return "ready" if session.policy is not None else "empty"


def _headline(session: OperatorSession, phase: str, run: Any, success: bool | None) -> str:
    if phase == "loading":
        verb = "Connecting to" if is_server(session.loading or "") else "Loading"
        return f"{verb} {session.loading} …"
    if phase == "empty":
        return "No policy loaded: enter a checkpoint file or a server address, then Load / Connect."
    if phase == "ready":
        return "Ready: press Start to hand the robot to the policy."
    done = " — the robot reports SUCCESS" if success else ""
    if phase in ("running", "takeover"):
        who = "HUMAN TAKEOVER" if phase == "takeover" else "Policy running"
        return f"{who} · {run.strategy} · {run.elapsed_s:.1f} s{done}"
    result = run.result
    if result is not None and result.reason is EndReason.KILL:
        rearm = " (after Re-arm)" if session.stopped else ""
        return f"{result.detail}: the robot holds. Policy {STOPPED_TEXT}{rearm}.{done}"
    return f"Policy {STOPPED_TEXT} ({run.elapsed_s:.1f} s run).{done}"


def _banner(session: OperatorSession, run: Any) -> str:
    config = run.takeover
    if session.rig.loop.manual_takeover or config is None or not config.auto_hand_back:
        how = "press Hand back to give it the robot again"
    else:
        how = f"let go for {config.release_s:g} s or press Hand back"
    return f"HUMAN TAKEOVER — you drive, the policy is paused ({how})"


def _stats_text(session: OperatorSession, run: Any, view: RunnerView | None) -> str:
    """Per rollout (a fresh runner each Start); read without loop.stats(), which sorts whole rings."""
    if run is None or view is None:
        return "no run yet"
    lat = view.latency_ms

    def ms(x: float | None) -> str:
        return "—" if x is None else f"{x:.0f}"

    parts = [f"inference last {ms(lat['last'])} · p50 {ms(lat['p50'])} · p99 {ms(lat['p99'])} ms",
             f"starved {view.starved_ticks} ticks", f"chunks {run.runner.chunks}",
             f"takeovers {session.takeovers(run)}"]
    if view.in_flight and view.state == "running":
        parts.append("thinking…")
    return " · ".join(parts)


def _recording_text(run: Any) -> str:
    if run is None:
        return ""
    if run.active and run.episode is not None:
        return f"● REC {run.episode.name}"
    result = run.result
    if result is not None and result.path is not None:
        kept = f"{result.path.name} kept as {result.outcome}"
        return f"{kept} ({result.detail})" if result.outcome == "failed" else kept
    if result is not None and result.outcome == "failed":
        return f"episode not kept: {result.detail}"
    return ""
