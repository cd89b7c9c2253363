"""The fixed-rate control loop: inputs → command → safety filter → robot → measured state.

One thread ticks at the rig rate against absolute deadlines. It never waits on a
camera, the disk, the GUI or a model: it reads latest-value slots and emits
each :class:`TickRecord` into bounded subscriber queues (overflow is counted).
The kill switch is checked first on every tick and also wakes the loop while it
sleeps, so a hold reaches the robot within one period of the trigger.

In :attr:`Mode.POLICY <teleop_app.session.Mode>` the command comes from an attached
:class:`~policies.runner.PolicyRunner` (:meth:`ControlLoop.start_policy`): a tick
without a policy action holds the last target and carries :attr:`SafetyFlag.STARVED`.
A human moving the takeover device switches to ``INTERVENTION`` (ticks labelled
``intervention``) and, after letting go, back to the policy (:mod:`teleop_app.takeover`).
"""

from __future__ import annotations

import os
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from drivers.base import InputDevice, Robot
from drivers.streams import Broadcast, Subscription
from drivers.types import (EE_DELTA_DIM, Command, EEDeltaCommand, InputState, JointCommand, RobotState,
                           SafetyFlag, TickRecord)
from teleop_app.gc_pauses import long_collection_since, watch_collections
from teleop_app.safety import KillSwitch, SafetyFilter, Watchdog
from teleop_app.session import Mode, Session
from teleop_app.takeover import TakeoverConfig, TakeoverDetector

if TYPE_CHECKING:
    from policies.runner import PolicyRunner

LOOP_NICE = -10  # the loop thread's nice value, where the user may raise priority
SECTIONS = ("input", "command", "safety", "send", "read", "publish")
_RING = 1 << 16  # ~11 minutes of periods at 100 Hz for percentiles
# A thread running Python keeps the GIL for up to this long after another asks for it (CPython's
# default is 5 ms), and the loop asks each time it wakes or comes back from C code. At 5 ms the
# loop made 80 Hz beside one busy Python thread; at 1 ms, 100 Hz (benchmarks/gil_contention.py).
GIL_SWITCH_S = 0.001
_STDLIB = sysconfig.get_paths()["stdlib"]


def what_thread_is_doing(thread: threading.Thread | None) -> str | None:
    """Where ``thread`` is now: its innermost frame outside the standard library, for a stall report."""
    frame = sys._current_frames().get(thread.ident) if thread is not None and thread.ident is not None else None
    while frame is not None and frame.f_code.co_filename.startswith(_STDLIB):
        frame = frame.f_back
    if frame is None:
        return None
    code = frame.f_code
    if code is ControlLoop._sleep_until.__code__:
        return ("waiting for its next tick (its thread did not get to run: the CPU is overloaded, "
                "or another thread kept the GIL)")
    return f"in {code.co_qualname} ({'/'.join(Path(code.co_filename).parts[-2:])}:{frame.f_lineno})"


class LoopNotAnswering(TimeoutError):
    """The control loop did not run a call in time (a ``TimeoutError``, so an ``OSError``)."""


class _LoopCall(Future):
    """A call waiting for the loop thread; a timeout names the reason instead of being blank."""

    def __init__(self, loop: ControlLoop) -> None:
        super().__init__()
        self._loop = loop

    def result(self, timeout: float | None = None) -> Any:
        try:
            return super().result(timeout)
        except TimeoutError:
            if self.done():  # the call itself raised it
                raise
            raise LoopNotAnswering(f"the control loop did not answer within {timeout:g} s: "
                                   f"{self._loop.why_not_answering()}") from None


class _Ring:
    def __init__(self) -> None:
        self.data = np.zeros(_RING)
        self.n = 0

    def add(self, x: float) -> None:
        self.data[self.n % _RING] = x
        self.n += 1

    def values(self) -> np.ndarray:
        return self.data[: min(self.n, _RING)]


class ControlLoop:
    def __init__(
        self,
        robot: Robot,
        inputs: dict[str, InputDevice],
        safety: SafetyFilter,
        *,
        rate_hz: float = 100.0,
        kill: KillSwitch | None = None,
        session: Session | None = None,
        watchdog_periods: int = 20,
        loop_core: int | None = None,
        active_input: str | None = None,
    ) -> None:
        self.robot = robot
        self.inputs = dict(inputs)
        self.safety = safety
        self.rate_hz = rate_hz
        self.period = 1.0 / rate_hz
        self.kill = kill or KillSwitch()
        self.session = session or Session()
        self.loop_core = loop_core
        self.watchdog = Watchdog(robot, self.kill, self.period, watchdog_periods, where=self._where)
        self.ticks: Broadcast[TickRecord] = Broadcast()
        self.active_input = active_input or next(iter(self.inputs), None)
        self.last_input: InputState | None = None
        self.error: str | None = None
        self.thread_nice: int | None = None  # the loop thread's nice value once running (-10 where allowed)

        self._calls: list[tuple[Callable[[], Any], Future]] = []
        self._calls_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._q_cmd = np.zeros(robot.n_joints)
        self._q_hold: np.ndarray | None = None
        self._acted_generation = 0
        self._state: RobotState | None = None
        self._tick = 0
        self._policy: PolicyRunner | None = None
        self._takeover: TakeoverDetector | None = None
        self._takeover_input: str | None = None
        self._manual_takeover = False
        self._last_policy: PolicyRunner | None = None
        self.reset_stats()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start ticking; the robot must be connected."""
        if self._thread is not None:
            raise RuntimeError("control loop already running")
        self._state = self.robot.read()
        self._q_cmd = self._state.joint_pos.copy()
        self._stop.clear()
        watch_collections()  # so a stall report can name a long garbage collection
        if sys.getswitchinterval() > GIL_SWITCH_S:
            sys.setswitchinterval(GIL_SWITCH_S)
        self._thread = threading.Thread(target=self._run, name="control-loop", daemon=True)
        self._thread.start()
        self.watchdog.start()

    def stop(self) -> None:
        """Stop ticking (an attached policy's worker stops too; the policy stays attached)."""
        self.watchdog.stop()
        self._stop.set()
        self.kill.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self.kill.wake.clear()
        if self._policy is not None:
            self._policy.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def subscribe(self, name: str, maxsize: int = 4096) -> Subscription[TickRecord]:
        return self.ticks.subscribe(name, maxsize)

    def latest(self) -> TickRecord | None:
        return self.ticks.latest.get()

    def call_soon(self, fn: Callable[[], Any]) -> Future:
        """Run ``fn`` on the loop thread at the start of the next tick; its result comes in the future.

        Waiting on that future past its timeout raises :class:`LoopNotAnswering`, which says why.
        """
        future = _LoopCall(self)
        with self._calls_lock:
            self._calls.append((fn, future))
        if not self.running:
            self._run_calls()
        return future

    def _where(self) -> str | None:
        """Why the loop is late, for the watchdog: a long garbage collection, else where its thread is."""
        began = self._prev_t0
        return (None if began is None else long_collection_since(began)) or what_thread_is_doing(self._thread)

    def why_not_answering(self) -> str:
        """What the loop is doing instead of running calls, for an error message."""
        if not self.running:
            return "its thread is not running" + (f" ({self.error})" if self.error else "")
        began = self._prev_t0
        if began is None:
            return "it has not ticked yet"
        doing = self._where()
        return (f"its current tick began {time.monotonic() - began:.1f} s ago"
                + (f", {doing}" if doing else ": the CPU is overloaded or a driver blocks the loop"))

    def reset_scene(self, seed: int | None = None) -> Future:
        """Reset the scene (sim) between ticks and re-sync the command to the new pose."""

        def reset() -> bool:
            ok = self.robot.reset_scene(seed)
            self._state = self.robot.read()
            self._q_cmd = self._state.joint_pos.copy()
            if self._q_hold is not None:
                self._q_hold = self._q_cmd.copy()
            for device in self.inputs.values():
                device.reset()
            if self._policy is not None:
                self._policy.drop()  # planned actions belong to the old scene
            return ok

        return self.call_soon(reset)

    # -- policy control ----------------------------------------------------------------------
    @property
    def policy(self) -> PolicyRunner | None:
        """The attached policy runner (None when no policy is running)."""
        return self._policy

    @property
    def takeover(self) -> TakeoverConfig | None:
        """How a human takes over from the running policy (None: only :meth:`take_over` does)."""
        return None if self._takeover is None else self._takeover.config

    def start_policy(self, runner: PolicyRunner, takeover: TakeoverConfig | None = None) -> None:
        """Hand the robot to ``runner``: its worker starts and the mode becomes POLICY.

        With ``takeover``, moving its input device gives the human control (see
        :mod:`teleop_app.takeover`). Raises InvalidTransition from modes that cannot
        go to POLICY (replay), ValueError for an unknown takeover device.
        """
        if self._policy is not None:
            raise RuntimeError("a policy is already running: stop_policy() first")
        device = None if takeover is None else (takeover.input or self.active_input)
        if takeover is not None and device not in self.inputs:
            raise ValueError(f"no input device {device!r} for takeover (inputs: {', '.join(self.inputs) or 'none'})")
        runner.start(self.kill)

        def attach() -> None:
            self.session.set_mode(Mode.POLICY, reason="policy started")
            self._takeover = None if takeover is None else TakeoverDetector(takeover)
            self._takeover_input = device
            self._manual_takeover = False
            if self._takeover is not None:
                self._takeover.rest(self.inputs[device].read())
            self._policy = self._last_policy = runner

        try:
            self.call_soon(attach).result(timeout=2.0)
        except BaseException:
            runner.stop()
            raise

    def stop_policy(self, mode: Mode = Mode.IDLE) -> PolicyRunner | None:
        """Take the robot from the policy (the mode becomes ``mode``) and stop its worker; returns the runner.

        Raises InvalidTransition (the policy keeps running) e.g. for IDLE while recording.
        """

        def detach() -> PolicyRunner | None:
            runner = self._policy
            if runner is None:
                return None
            if self.session.mode in (Mode.POLICY, Mode.INTERVENTION):
                self.session.set_mode(mode, reason="policy stopped")
            self._policy = None
            self._takeover = None
            return runner

        runner = self.call_soon(detach).result(timeout=2.0)
        if runner is not None:
            runner.stop()
        return runner

    def take_over(self, reason: str = "takeover requested") -> Future:
        """Give the human control now (a GUI button); it stays human until :meth:`hand_back`."""

        def take() -> bool:
            if self._policy is None or self.session.mode is not Mode.POLICY:
                return False
            self._enter_intervention(reason)
            self._manual_takeover = True
            return True

        return self.call_soon(take)

    def hand_back(self) -> Future:
        """Give control back to the policy after an intervention; the future says whether it happened."""

        def back() -> bool:
            if self._policy is None or self.session.mode is not Mode.INTERVENTION:
                return False
            self._leave_intervention("handed back")
            return True

        return self.call_soon(back)

    def _enter_intervention(self, reason: str) -> None:
        self.session.set_mode(Mode.INTERVENTION, reason=reason)
        self._policy.pause()
        self.takeovers += 1

    def _leave_intervention(self, reason: str) -> None:
        self.session.set_mode(Mode.POLICY, reason=reason)
        self._manual_takeover = False
        if self._takeover is not None:
            self._takeover.rest(self.last_input)
        self._policy.resume()
        self.hand_backs += 1

    def _policy_command(self, inp: InputState | None, t0: float) -> tuple[Command | None, bool]:
        """This tick's command in POLICY/INTERVENTION mode, switching between them; and whether it starved."""
        detector = self._takeover
        mode = self.session.mode
        if detector is not None and inp is not None:
            why = detector.moving(inp, t0)
            if mode is Mode.POLICY and why is not None:
                self._enter_intervention(f"takeover: {why}")
                mode = Mode.INTERVENTION
            elif (mode is Mode.INTERVENTION and detector.config.auto_hand_back and not self._manual_takeover
                  and detector.released(t0)):
                self._leave_intervention(f"human let go for {detector.config.release_s:g} s")
                mode = Mode.POLICY
        if mode is Mode.INTERVENTION:
            self._intervention_ticks += 1
            return (None if inp is None else self._command_from_input(inp)), False
        runner = self._policy
        command = runner.step(self._tick, t0, self._state)
        self._policy_ticks += 1
        if runner.in_flight:
            self._inference_ticks += 1
        if command is None:
            self._starved += 1
            self._stall += 1
            self._longest_stall = max(self._longest_stall, self._stall)
        else:
            self._stall = 0
        return command, command is None

    # -- the loop ----------------------------------------------------------------------------
    def _run(self) -> None:
        if self.loop_core is not None:
            try:
                os.sched_setaffinity(0, {self.loop_core})  # pid 0 = this thread on Linux
            except (OSError, AttributeError):
                pass
        try:  # ahead of cameras, the window and the writer when the CPU is busy; needs CAP_SYS_NICE (or root)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOOP_NICE)
        except (OSError, AttributeError):
            pass
        self.thread_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        deadline = time.monotonic()
        while not self._stop.is_set():
            t0 = time.monotonic()
            if self._prev_t0 is not None:
                self._periods.add(t0 - self._prev_t0)
            self._prev_t0 = t0
            self.watchdog.beat(t0)
            try:
                self._tick_once(t0)
            except Exception as exc:  # a driver failed: hold, tell the user, keep ticking
                self.error = f"{type(exc).__name__}: {exc}"
                self.kill.trigger(f"control loop error: {self.error}")
            deadline += self.period
            now = time.monotonic()
            if now > deadline:
                self._overruns += 1
                skipped = int((now - deadline) / self.period)
                self._missed += skipped
                deadline += skipped * self.period
            self._sleep_until(deadline)

    def _sleep_until(self, deadline: float) -> None:
        kill = self.kill
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if kill.wake.wait(remaining):
                kill.wake.clear()
                if kill.latched and kill.generation != self._acted_generation:
                    try:
                        self._act_on_kill()
                    except Exception as exc:  # the robot itself failed (unplugged): keep ticking, say why
                        self.error = f"{type(exc).__name__}: {exc}"

    def _tick_once(self, t0: float) -> None:
        sec = self._sections
        self._run_calls()
        kill = self.kill
        raw, kind, flags = None, "none", SafetyFlag.NONE
        if kill.latched:
            self._act_on_kill()
            t1 = t2 = t3 = time.monotonic()
        else:
            if self._q_hold is not None:  # re-armed: continue from where the robot was held
                self._q_cmd = self._q_hold
                self._q_hold = None
            target = self._q_cmd
            mode = self.session.mode
            t1 = t0
            starved = False
            if self._policy is not None and mode in (Mode.POLICY, Mode.INTERVENTION):
                name = self._takeover_input or self.active_input
                inp = None
                if name is not None and (self._takeover is not None or mode is Mode.INTERVENTION):
                    inp = self.inputs[name].read()
                    self.last_input = inp
                t1 = time.monotonic()
                command, starved = self._policy_command(inp, t0)
                target, raw, kind = self._joint_targets(command)
            elif mode in (Mode.TELEOP, Mode.INTERVENTION, Mode.REPLAY) and self.active_input is not None:
                inp = self.inputs[self.active_input].read()
                self.last_input = inp
                t1 = time.monotonic()
                target, raw, kind = self._joint_targets(self._command_from_input(inp))
            t2 = time.monotonic()
            safe, flags = self.safety.filter(target, self._q_cmd)
            if starved:
                flags |= SafetyFlag.STARVED
            t3 = time.monotonic()
            if kill.latched:  # triggered while we computed: the hold wins
                self._act_on_kill()
            else:
                self.robot.send(JointCommand(safe), source=self.session.source)
                self._q_cmd = safe
                if self._policy is not None and self.session.mode is Mode.POLICY:
                    self._policy.note_sent(self._tick, safe)
        t_sent = time.monotonic()
        state = self.robot.read()
        self._state = state
        t5 = time.monotonic()
        killed = self._q_hold is not None
        record = TickRecord(
            tick=self._tick,
            t=t0,
            t_sent=t_sent,
            state=state,
            command=(self._q_hold if killed else self._q_cmd).copy(),
            raw_input=raw,
            input_kind=kind,
            source=self.session.source,
            safety=int(flags | (SafetyFlag.KILLED if killed else 0)),
            killed=killed,
        )
        self.ticks.publish(record)
        t6 = time.monotonic()
        self._tick += 1
        self._stat_ticks += 1
        self._t_first = self._t_first or t0
        self._t_last = t0
        for name, dt in zip(SECTIONS, (t1 - t0, t2 - t1, t3 - t2, t_sent - t3, t5 - t_sent, t6 - t5)):
            sec[name].add(dt)

    def _command_from_input(self, inp: InputState) -> Command | None:
        """What an input state asks for this tick: joint targets, an end-effector step, or nothing."""
        if not inp.connected:
            return None
        if inp.joint_targets is not None:
            return JointCommand(inp.joint_targets)
        if inp.ee_twist is None and inp.gripper is None:
            return None
        try:
            twist = np.zeros(6) if inp.ee_twist is None else np.asarray(inp.ee_twist, dtype=np.float64)
            gripper = self.robot.joint_to_gripper(self._q_cmd[-1]) if inp.gripper is None else float(inp.gripper)
            return EEDeltaCommand(np.append(twist * self.period, gripper))
        except (TypeError, ValueError):
            return EEDeltaCommand(np.full(EE_DELTA_DIM, np.nan))

    def _joint_targets(self, command: Command | None) -> tuple[object, np.ndarray | None, str]:
        """Joint targets for this tick (not yet made safe), the raw command to record, and its kind."""
        if command is None:
            return self._q_cmd, None, "none"
        if isinstance(command, JointCommand):
            return command.positions, np.asarray(command.positions), "joint"
        delta = np.asarray(command.delta, dtype=np.float64)
        if delta.shape != (EE_DELTA_DIM,) or not np.all(np.isfinite(delta)):
            # Never hand garbage to the IK: an all-NaN target is what the safety filter turns into a hold.
            return np.full(self.robot.n_joints, np.nan), None, "none"
        kin = self.robot.kinematics
        step = delta[:6]
        q = kin.apply_ee_delta(self._q_cmd, step) if kin is not None and np.any(step) else self._q_cmd.copy()
        q[-1] = self.robot.gripper_to_joint(delta[6])
        return q, delta, "ee_delta"

    def _act_on_kill(self) -> None:
        """Send the latched hold: where the arm is, the gripper keeping its target (a held object stays held)."""
        kill = self.kill
        if kill.generation != self._acted_generation or self._q_hold is None:
            self._acted_generation = kill.generation
            if self._policy is not None:
                self._policy.drop()  # queued actions never run; answers already requested are ignored
            q = self._state.joint_pos.copy() if self._state is not None else self._q_cmd.copy()
            q[-1] = self._q_cmd[-1]
            self._q_hold = np.clip(q, self.safety.limits.joint_lower, self.safety.limits.joint_upper)
            self.robot.send(JointCommand(self._q_hold), source="kill")
            if kill.t_trigger is not None:
                self.kill_latencies.append(time.monotonic() - kill.t_trigger)
        else:
            self.robot.send(JointCommand(self._q_hold), source="kill")

    def _run_calls(self) -> None:
        with self._calls_lock:
            calls, self._calls = self._calls, []
        for fn, future in calls:
            try:
                future.set_result(fn())
            except Exception as exc:
                future.set_exception(exc)

    # -- statistics --------------------------------------------------------------------------
    def reset_stats(self) -> None:
        """Start the figures of :meth:`stats` afresh (e.g. after a warm-up)."""
        self._periods = _Ring()
        self._sections = {name: _Ring() for name in SECTIONS}
        self.kill_latencies: list[float] = []
        self._overruns = 0
        self._missed = 0
        self._stat_ticks = 0
        self._t_first: float | None = None
        self._t_last: float | None = None
        self._prev_t0: float | None = None
        self._policy_ticks = 0
        self._starved = 0
        self._stall = 0
        self._longest_stall = 0
        self._inference_ticks = 0
        self._intervention_ticks = 0
        self.takeovers = 0
        self.hand_backs = 0

    def stats(self) -> dict[str, Any]:
        """Loop figures since start: rate, period percentiles, overruns, time per section, kill latency.

        ``policy`` counts ticks driven by a policy, starved ticks (held: no action ready),
        the longest run of them, ticks with an inference in flight, intervention ticks,
        takeovers and hand-backs (all reset by :meth:`reset_stats`), and ``runner``: the
        current or last runner's own :meth:`~policies.runner.PolicyRunner.stats`.
        """
        periods = self._periods.values() * 1e3
        span = (self._t_last - self._t_first) if self._t_first and self._t_last else 0.0
        out: dict[str, Any] = {
            "target_hz": self.rate_hz,
            "ticks": self._stat_ticks,
            "achieved_hz": (self._stat_ticks - 1) / span if span > 0 else 0.0,
            "period_p50_ms": _pct(periods, 50),
            "period_p99_ms": _pct(periods, 99),
            "period_max_ms": float(periods.max()) if periods.size else None,
            "overruns": self._overruns,
            "missed_deadlines": self._missed,
            "sections_ms": {
                name: {"mean": _mean(r.values() * 1e3), "p99": _pct(r.values() * 1e3, 99),
                       "max": float(r.values().max() * 1e3) if r.n else None}
                for name, r in self._sections.items()
            },
            "safety_counts": dict(self.safety.counts),
            "kill": {
                "latched": self.kill.latched,
                "reason": self.kill.reason,
                "triggers": self.kill.triggers,
            },
            "watchdog_trips": self.watchdog.trips,
            "thread_nice": self.thread_nice,
            "subscriber_drops": {s.name: s.dropped for s in self.ticks.subscriptions},
            "error": self.error,
            "policy": {
                "ticks": self._policy_ticks,
                "starved_ticks": self._starved,
                "longest_stall_ticks": self._longest_stall,
                "inference_in_flight_ticks": self._inference_ticks,
                "intervention_ticks": self._intervention_ticks,
                "takeovers": self.takeovers,
                "hand_backs": self.hand_backs,
                "runner": None if self._last_policy is None else self._last_policy.stats(),
            },
        }
        lat = np.asarray(self.kill_latencies) * 1e3
        out["kill_latency_ms"] = {"count": int(lat.size), "p50": _pct(lat, 50), "p99": _pct(lat, 99),
                                  "max": float(lat.max()) if lat.size else None}
        return out


def _pct(x: np.ndarray, q: float) -> float | None:
    return float(np.percentile(x, q)) if x.size else None


def _mean(x: np.ndarray) -> float | None:
    return float(x.mean()) if x.size else None
