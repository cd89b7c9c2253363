"""Running a policy from the operator console, as plain Python: what the Policy tab does.

A :class:`PolicySession` sits on a :class:`~teleop_app.console.Console`. It loads
a policy (a checkpoint file or a server, through :func:`policies.loading.load_policy`
with the same options as ``teleop-app run-policy``), starts a *rollout* (a fresh
:class:`~policies.runner.PolicyRunner` handed to the control loop, optionally
recorded as an episode with the console's recorder), lets the human take over
and hand back, and stops it. :meth:`PolicySession.poll` returns a
:class:`PolicyStatus` snapshot for a view, and :func:`chunk_curves` turns the
runner's plan into the curves of the live action plot.

The kill switch always wins: once it latches the loop holds the robot, and
:meth:`PolicySession.on_kill` ends the rollout (keeping its episode), so that
re-arming does **not** give the robot back to the policy — the operator has to
press Start again. (The control loop on its own resumes the attached policy
after a re-arm.)

Threads: :meth:`PolicySession.load` blocks while a server connects or a
checkpoint loads; call it off the GUI thread. Every other method belongs to
one thread (the GUI's) and never to the control loop's or a kill listener's:
they wait for the loop thread to run a call between two ticks.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from policies.base import ActionKind, Policy, PolicyInfo
from policies.loading import LoadOptions, is_server
from policies.runner import PolicyRunner, RunnerView
from policies.strategies import BLENDS, STRATEGIES, Strategy, make_strategy
from recordings import edit
from teleop_app.console import Console, ConsoleError, EpisodeResult
from teleop_app.gc_pauses import freeze_long_lived
from teleop_app.session import InvalidTransition, Mode
from teleop_app.takeover import TakeoverConfig

EE_DIM_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
STOPPED_TEXT = "stopped — press Start to run the policy again"
_TRAIL = 1024  # commands sent, sampled at the view's rate (~30 s at 30 Hz)


class PolicyRunError(ConsoleError):
    """A policy action that cannot be done now; the message is one line that says why and what to do."""


def one_line(exc: BaseException) -> str:
    """An exception as one line for the user: our own messages as they are, others with their type."""
    from drivers.registry import ConfigError
    from policies.base import PolicyError
    from policies.loading import PolicyLoadError

    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if isinstance(exc, (PolicyLoadError, PolicyError, ConfigError, ConsoleError, ValueError, KeyError)) and first:
        return first
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@dataclass(frozen=True)
class StrategyOptions:
    """How chunks become per-tick actions (see :mod:`policies.strategies`); None: follow the chunk length."""

    name: str = "async"  # one of STRATEGIES
    replan_every: int | None = None  # open-loop: actions run per chunk
    k: float = 0.01  # ensemble: weight decay exp(-k*i), i = 0 the oldest
    threshold: int | None = None  # async: ask for the next chunk below this many planned actions
    blend: str = "latest"  # async: "latest" or "weighted"

    def build(self, chunk_length: int | None) -> Strategy:
        if self.name not in STRATEGIES:
            raise PolicyRunError(f"unknown strategy {self.name!r} (known: {', '.join(STRATEGIES)})")
        if self.blend not in BLENDS:
            raise PolicyRunError(f"unknown blend {self.blend!r} (known: {', '.join(BLENDS)})")
        try:
            return make_strategy(self.name, chunk_length, replan_every=self.replan_every, k=self.k,
                                 threshold=self.threshold, blend=self.blend)
        except ValueError as exc:
            raise PolicyRunError(one_line(exc)) from exc

    def describe(self) -> str:
        if self.name == "open-loop":
            return f"open-loop, re-plan every {self.replan_every or 'chunk'}"
        if self.name == "ensemble":
            return f"temporal ensemble, k={self.k:g}"
        return f"async, threshold {self.threshold or 'half a chunk'}, {self.blend} blend"


@dataclass(frozen=True)
class RunOptions:
    """One rollout: strategy, takeover (None: only :meth:`PolicySession.take_over`), recording."""

    strategy: StrategyOptions = StrategyOptions()
    takeover: TakeoverConfig | None = TakeoverConfig()
    record: bool = False  # record the rollout as an episode in the console's dataset folder
    reset_scene: bool = False  # a sim puts the arm home and the cube somewhere new first
    image_size: int = 224  # square size camera images are padded and resized to for the policy


@dataclass
class Rollout:
    """The current or the last run of the policy."""

    runner: PolicyRunner
    spec: str
    strategy: str
    t_start: float
    takeover: TakeoverConfig | None = None
    takeovers_before: int = 0  # the loop's takeover count when the run started
    manual_takeover: bool = False  # the human took over with the button: no automatic hand-back
    episode: Any = None  # Path of the episode being recorded, or None
    succeeded: bool = False  # the robot reported success at some point during the run
    t_end: float | None = None
    stopped_by: str | None = None  # the kill switch's reason when it ended the run
    result: EpisodeResult | None = None  # the kept episode
    error: str | None = None  # keeping the episode failed

    @property
    def active(self) -> bool:
        return self.t_end is None

    @property
    def elapsed_s(self) -> float:
        return (self.t_end or time.monotonic()) - self.t_start


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


def dim_names(info: PolicyInfo, joint_names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Plot titles for each action dimension."""
    if info.action_kind is ActionKind.EE_DELTA:
        return EE_DIM_NAMES[: info.action_dim] + tuple(f"a{i}" for i in range(len(EE_DIM_NAMES), info.action_dim))
    names = tuple(joint_names)
    return names[: info.action_dim] + tuple(f"a{i}" for i in range(len(names), info.action_dim))


def describe_policy(info: PolicyInfo, spec: str) -> str:
    chunk = f"chunks of {info.chunk_length}" if info.chunk_length else "chunk length set by the server"
    kind = "joint targets" if info.action_kind is ActionKind.JOINT else "end-effector steps"
    return f"{info.name or spec}: {info.action_dim} {kind}, {chunk}"


class PolicySession:
    """The policy side of a console; see the module docstring for its rules and threads."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.rig = console.rig
        self.policy: Policy | None = None
        self.load_options: LoadOptions | None = None
        self.loading: str | None = None  # the spec being loaded now
        self.rollout: Rollout | None = None
        self.sent = SentTrail()
        self.message = ""  # the last thing the operator should read about the policy
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str], None]] = []
        self._notes: tuple[Rollout, str] | None = None  # for the episode being kept (see _on_console_event)
        console.add_listener(self._on_console_event)

    # -- observing ---------------------------------------------------------------------------
    def add_listener(self, fn: Callable[[str], None]) -> None:
        """``fn(event)`` after each change: ``loaded``, ``started``, ``stopped``, ``takeover``, ``message``."""
        self._listeners.append(fn)

    def _emit(self, event: str) -> None:
        for fn in list(self._listeners):
            fn(event)

    def _say(self, text: str) -> None:
        self.message = text
        self._emit("message")

    @property
    def running(self) -> bool:
        """A rollout of this session drives (or a human took over from it)."""
        r = self.rollout
        return r is not None and r.active and self.rig.loop.policy is r.runner

    # -- loading -----------------------------------------------------------------------------
    def load(self, options: LoadOptions) -> PolicyInfo:
        """Load a checkpoint or connect to a server (blocks: call it off the GUI thread).

        Replaces (and closes) the policy loaded before; refused while a rollout runs.
        Every failure is a :class:`PolicyRunError` with a one-line reason.
        """
        spec = options.spec.strip()
        if not spec:
            raise PolicyRunError("enter a checkpoint file or a server address (ws://HOST:PORT, http://HOST:PORT/act)")
        with self._lock:
            if self.running:
                raise PolicyRunError("stop the running policy before loading another")
            if self.loading is not None:
                raise PolicyRunError(f"still loading {self.loading}")
            self.loading = spec
        try:
            try:
                policy = dataclasses.replace(options, spec=spec).load(list(self.rig.cameras), self.rig.robot.n_joints)
            except Exception as exc:  # any failure of a loader or a connection is a message, never a traceback
                raise PolicyRunError(one_line(exc)) from exc
            problem = self._mismatch(policy.info)
            if problem is not None:
                policy.close()
                raise PolicyRunError(problem)
            freeze_long_lived(collect=False)  # a checkpoint brought torch; the loop is running: no collection
            with self._lock:
                old, self.policy = self.policy, policy
                self.load_options = dataclasses.replace(options, spec=spec)
            if old is not None and old is not policy:
                old.close()
        finally:
            with self._lock:
                self.loading = None
        self._say(f"loaded {describe_policy(policy.info, spec)}")
        self._emit("loaded")
        return policy.info

    def _mismatch(self, info: PolicyInfo) -> str | None:
        n = self.rig.robot.n_joints
        if info.action_kind is ActionKind.JOINT and info.action_dim != n:
            return (f"the policy answers {info.action_dim} joint targets but this robot has {n} joints: "
                    "it was trained for another robot")
        return None

    def unload(self) -> None:
        """Close the loaded policy (refused while it runs)."""
        if self.running:
            raise PolicyRunError("stop the running policy first")
        with self._lock:
            policy, self.policy = self.policy, None
        if policy is not None:
            policy.close()
        self._emit("loaded")

    # -- running -----------------------------------------------------------------------------
    def check_can_start(self, options: RunOptions | None = None) -> None:
        """Raise :class:`PolicyRunError` saying why Start cannot run now."""
        c = self.console
        if self.loading is not None:
            raise PolicyRunError(f"still loading {self.loading}: wait until it is ready")
        if self.policy is None:
            raise PolicyRunError("nothing is loaded: enter a checkpoint file or a server address, then Load / Connect")
        if self.running:
            raise PolicyRunError("the policy is already running")
        if self.rig.loop.policy is not None:
            raise PolicyRunError("another policy drives the robot: stop it first")
        if c.stopped:
            raise PolicyRunError("the robot is stopped: check the scene, press Re-arm (Ctrl+R), then Start")
        if c.replayer.active or c.mode is Mode.REPLAY:
            raise PolicyRunError("an episode is being replayed on the robot: stop the replay on the Review tab first")
        if c.recording:
            raise PolicyRunError("an episode is being recorded on the Live tab: keep or discard it first")
        starting = [name for name, cam in self.rig.cameras.items() if cam.latest() is None and not cam.error]
        if starting:
            raise PolicyRunError(f"waiting for the first frame of camera {', '.join(starting)}: "
                                 "Start again in a moment")
        if options is not None and options.record and not c.task:
            raise PolicyRunError("type a task sentence first: it is given to the policy and stored with the rollout")
        if options is not None and options.takeover is not None and options.takeover.input is not None \
                and options.takeover.input not in self.rig.inputs:
            raise PolicyRunError(f"this rig has no input {options.takeover.input!r} to take over with "
                                 f"(inputs: {', '.join(self.rig.inputs) or 'none'})")

    def start(self, options: RunOptions) -> Rollout:
        """Hand the robot to a fresh runner of the loaded policy; record it as an episode if asked."""
        self.check_can_start(options)
        policy, load = self.policy, self.load_options
        strategy = options.strategy.build(policy.info.chunk_length)
        try:
            runner = PolicyRunner.for_rig(self.rig, policy, strategy, self.console.task, timeout_s=load.timeout_s,
                                          image_size=(options.image_size, options.image_size))
        except (ValueError, KeyError) as exc:
            raise PolicyRunError(one_line(exc)) from exc
        if options.reset_scene and self.rig.robot.can_reset_scene:
            self.console.reset_scene()
        runner.reset()  # a new episode: the policy's own reset runs before its first inference
        try:
            self.rig.loop.start_policy(runner, takeover=options.takeover)
        except (ValueError, RuntimeError) as exc:  # InvalidTransition is a RuntimeError
            raise PolicyRunError(one_line(exc)) from exc
        rollout = Rollout(runner, load.spec, options.strategy.describe(), time.monotonic(), options.takeover,
                          takeovers_before=self.rig.loop.takeovers)
        self.rollout = rollout
        self.sent.clear()
        if options.record:
            try:
                rollout.episode = self.console.start_episode()
            except ConsoleError as exc:
                self._end(rollout, Mode.IDLE)
                raise PolicyRunError(f"not started: {exc}") from exc
        self._say(f"running {describe_policy(policy.info, load.spec)}"
                  + (f", recording {rollout.episode.name}" if rollout.episode is not None else ""))
        self._emit("started")
        return rollout

    def stop(self, reason: str = "the operator") -> EpisodeResult | None:
        """End the rollout: the robot holds, its episode (if recorded) is kept, the mode becomes idle.

        The episode is labelled a success when the robot reported success during
        the run, a failure when it did not (or the kill switch ended it), and is
        left unlabelled for review where the robot cannot tell.
        """
        rollout = self.rollout
        if rollout is None or not rollout.active:
            return None
        killed = self.rig.kill.reason if self.console.stopped else None
        if not rollout.succeeded and self.rig.robot.success():
            rollout.succeeded = True
        # Detach the runner without changing the mode first: with no runner the loop holds the robot
        # while the episode is finalized, and those last ticks stay in the rollout's episode.
        self.rig.loop.stop_policy(mode=self.console.mode)
        rollout.t_end = time.monotonic()
        rollout.stopped_by = killed
        result = None
        if rollout.episode is not None and self.console.recording and self.console.recorder.path == rollout.episode:
            result = self._keep(rollout, killed)
        self._leave_policy_mode()
        takeovers = self.takeovers(rollout)
        what = f"the kill switch ({killed})" if killed else reason
        kept = f"; {result.path.name} kept as {result.outcome}" if result is not None and result.path else ""
        self._say(f"policy stopped by {what} after {rollout.elapsed_s:.1f} s"
                  f"{f', {takeovers} takeover(s)' if takeovers else ''}{kept}")
        self._emit("stopped")
        return result

    def _keep(self, rollout: Rollout, killed: str | None) -> EpisodeResult | None:
        can_tell = self.rig.robot.success() is not None
        success = (rollout.succeeded and killed is None) if can_tell else (False if killed else None)
        notes = f"policy {rollout.spec}, strategy {rollout.strategy}"
        takeovers = self.takeovers(rollout)
        if takeovers:
            notes += f"; {takeovers} human takeover(s)"
        if killed:
            notes += f"; stopped by the kill switch: {killed}"
        self._notes = (rollout, notes)
        try:
            result = self.console.keep(success)
        except ConsoleError as exc:
            rollout.error = str(exc)
            return None
        finally:
            self._notes = None
        rollout.result = result
        return result

    def _on_console_event(self, event: str) -> None:
        """Write the rollout's notes into its episode as soon as :meth:`Console.keep` has finalized it.

        Console.keep announces ``recording`` and then ``episode``; views list the
        dataset (opening every file) on ``episode``, so labelling on ``recording``
        is the moment nobody else has the new file open.
        """
        pending = self._notes
        if event != "recording" or pending is None or self.console.recording:
            return
        rollout, notes = pending
        last = self.console.last_result
        if last is None or last.path is None or last.path != rollout.episode:
            return
        self._notes = None
        try:
            edit.label(last.path, notes=notes)
        except (OSError, ValueError) as exc:
            rollout.error = f"kept, but its notes could not be written: {one_line(exc)}"

    def takeovers(self, rollout: Rollout) -> int:
        """Times the human took over during ``rollout`` (so far)."""
        return self.rig.loop.takeovers - rollout.takeovers_before

    def _end(self, rollout: Rollout, mode: Mode) -> None:
        try:
            self.rig.loop.stop_policy(mode=mode)
        except InvalidTransition:
            self.rig.loop.stop_policy(mode=Mode.TELEOP)
        rollout.t_end = time.monotonic()

    def _leave_policy_mode(self) -> None:
        """Idle after a rollout; teleop instead when an episode someone else started is still recording."""
        session = self.rig.session
        if session.mode not in (Mode.POLICY, Mode.INTERVENTION):
            return
        try:
            session.set_mode(Mode.IDLE, reason="policy stopped")
        except InvalidTransition:
            session.set_mode(Mode.TELEOP, reason="policy stopped while an episode records")

    def on_kill(self) -> bool:
        """The kill switch latched (call on the GUI thread): end the rollout so a re-arm cannot resume it."""
        if self.console.stopped and self.rollout is not None and self.rollout.active:
            self.stop("the kill switch")
            return True
        return False

    def take_over(self) -> bool:
        """The human drives now (with the takeover input, else the active input) until :meth:`hand_back`."""
        if not self.running:
            raise PolicyRunError("no policy is running")
        ok = bool(self.rig.loop.take_over("takeover button").result(timeout=2.0))
        if ok:
            self.rollout.manual_takeover = True
            self._emit("takeover")
        return ok

    def hand_back(self) -> bool:
        if not self.running:
            raise PolicyRunError("no policy is running")
        ok = bool(self.rig.loop.hand_back().result(timeout=2.0))
        if ok:
            self._emit("takeover")
        return ok

    # -- observing, at the view's rate -------------------------------------------------------
    def poll(self) -> PolicyStatus:
        """Bring the rollout up to date (a missed kill, teleop taking the robot, success) and describe it."""
        rollout = self.rollout
        if rollout is not None and rollout.active:
            if self.console.stopped:
                self.on_kill()
            elif self.rig.loop.policy is not rollout.runner or self.console.mode not in (Mode.POLICY,
                                                                                         Mode.INTERVENTION):
                self.stop(f"{self.console.mode.value} taking the robot")  # e.g. the window's Teleop box
        rollout = self.rollout
        running = self.running
        success = None
        if rollout is not None:
            success = self.rig.robot.success()
            if running and success:
                rollout.succeeded = True
        view = rollout.runner.view() if rollout is not None else None
        if view is not None and running:
            self.sent.add(view.last_sent_tick, view.last_sent)
        latest = self.rig.loop.latest()
        gripper: tuple[float | None, float | None] = (None, None)
        if latest is not None:
            gripper = (self.rig.robot.joint_to_gripper(float(latest.command[-1])), latest.state.gripper)
        mode = self.console.mode
        if rollout is not None and mode is not Mode.INTERVENTION:
            rollout.manual_takeover = False
        phase = self._phase(running, mode)
        now_tick = None if latest is None else latest.tick
        if view is not None and view.plan.executed_ticks.size:
            # The loop takes a tick's action before it publishes the tick: "now" is the newer of the two.
            now_tick = max(int(view.plan.executed_ticks[-1]), now_tick if now_tick is not None else -1)
        return PolicyStatus(
            phase=phase, headline=self._headline(phase, rollout, success), policy=self.policy_text(),
            mode=mode, stopped=self.console.stopped, view=view, now_tick=now_tick,
            success=success if rollout is not None else None, gripper=gripper,
            banner=self._banner(rollout) if phase == "takeover" else "", stats=self._stats_text(rollout, view),
            recording=self._recording_text(rollout), can_start=self._can_start(), can_stop=running,
            can_take_over=running and mode is Mode.POLICY, can_hand_back=running and mode is Mode.INTERVENTION,
        )

    def _can_start(self) -> bool:
        try:
            self.check_can_start()
        except PolicyRunError:
            return False
        return True

    def _phase(self, running: bool, mode: Mode) -> str:
        if self.loading is not None:
            return "loading"
        if running:
            return "takeover" if mode is Mode.INTERVENTION else "running"
        if self.rollout is not None and not self.rollout.active:
            return "stopped"
        return "ready" if self.policy is not None else "empty"

    def _headline(self, phase: str, rollout: Rollout | None, success: bool | None) -> str:
        if phase == "loading":
            verb = "Connecting to" if is_server(self.loading or "") else "Loading"
            return f"{verb} {self.loading} …"
        if phase == "empty":
            return "No policy loaded: enter a checkpoint file or a server address, then Load / Connect."
        if phase == "ready":
            return "Ready: press Start to hand the robot to the policy."
        done = " — the robot reports SUCCESS" if success else ""
        if phase in ("running", "takeover"):
            who = "HUMAN TAKEOVER" if phase == "takeover" else "Policy running"
            return f"{who} · {rollout.strategy} · {rollout.elapsed_s:.1f} s{done}"
        if rollout.stopped_by:
            rearm = " (after Re-arm)" if self.console.stopped else ""
            return f"{rollout.stopped_by}: the robot holds. Policy {STOPPED_TEXT}{rearm}.{done}"
        return f"Policy {STOPPED_TEXT} ({rollout.elapsed_s:.1f} s run).{done}"

    @staticmethod
    def _banner(rollout: Rollout) -> str:
        config = rollout.takeover
        if rollout.manual_takeover or config is None or not config.auto_hand_back:
            how = "press Hand back to give it the robot again"
        else:
            how = f"let go for {config.release_s:g} s or press Hand back"
        return f"HUMAN TAKEOVER — you drive, the policy is paused ({how})"

    def policy_text(self) -> str:
        """The loaded policy, described ("" when none)."""
        if self.policy is None or self.load_options is None:
            return ""
        return describe_policy(self.policy.info, self.load_options.spec)

    def _stats_text(self, rollout: Rollout | None, view: RunnerView | None) -> str:
        """Per rollout (a fresh runner each Start); read without loop.stats(), which sorts whole rings."""
        if rollout is None or view is None:
            return "no run yet"
        lat = view.latency_ms

        def ms(x: float | None) -> str:
            return "—" if x is None else f"{x:.0f}"

        parts = [f"inference last {ms(lat['last'])} · p50 {ms(lat['p50'])} · p99 {ms(lat['p99'])} ms",
                 f"starved {view.starved_ticks} ticks", f"chunks {rollout.runner.chunks}",
                 f"takeovers {self.takeovers(rollout)}"]
        if view.in_flight and view.state == "running":
            parts.append("thinking…")
        return " · ".join(parts)

    def _recording_text(self, rollout: Rollout | None) -> str:
        if rollout is None:
            return ""
        if rollout.active and rollout.episode is not None:
            return f"● REC {rollout.episode.name}"
        if rollout.result is not None and rollout.result.path is not None:
            kept = f"{rollout.result.path.name} kept as {rollout.result.outcome}"
            return f"{kept} ({rollout.error})" if rollout.error else kept
        if rollout.error:
            return f"episode not kept: {rollout.error}"
        return ""

    def close(self) -> None:
        """End a rollout (keeping its episode) and close the policy (the window is closing)."""
        if self.rollout is not None and self.rollout.active:
            self.stop("the window closing")
        with self._lock:
            policy, self.policy = self.policy, None
        if policy is not None:
            policy.close()


__all__ = [
    "ChunkCurves", "LoadOptions", "PolicyRunError", "PolicySession", "PolicyStatus", "Rollout", "RunOptions",
    "SentTrail", "StrategyOptions", "STOPPED_TEXT", "chunk_curves", "describe_policy", "dim_names", "is_server",
    "one_line",
]
