"""The fixed-rate control loop: inputs → command → safety filter → robot → measured state.

One thread ticks at the rig rate against absolute deadlines. It never waits on a
camera, the disk, the GUI or a model: it reads latest-value slots and emits
each :class:`~drivers.types.TickRecord` into bounded subscriber queues (overflow
is counted). Every tick, in this order:

1. requests from other threads (:meth:`ControlLoop.call_soon`) run, so no tick
   sees a half-made change;
2. every input's buttons are read: a ``kill`` press on any device latches the
   kill switch *this* tick; ``episode`` presses of the driving input are counted
   for the operator session (:attr:`ControlLoop.episode_presses`);
3. the kill switch: latched → the robot holds where it is (the switch also wakes
   the loop while it sleeps, so a hold goes out within one period of the trigger);
4. the driver's command: the active input (``TELEOP``/``REPLAY``), or the
   attached policy and a human who took over from it (``POLICY``/``INTERVENTION``,
   :mod:`teleop_app.arbitration`); a change of driver joins through the ramp;
5. the safety filter, the robot, the measured state, the published record —
   labelled with the tick's source (``human``, ``scripted``, ``policy``, …) and
   driver (the input's or policy's name).

Inputs are one set, owned here: :meth:`attach_input`, :meth:`detach_input` and
:meth:`set_active_input` change them between ticks; :attr:`inputs` is a
read-only view that other threads may iterate. Figures and the stall diagnosis
live in :mod:`teleop_app.loop_stats`.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from types import MappingProxyType
from typing import Any

import numpy as np

from drivers.base import InputDevice, Robot
from drivers.streams import Broadcast, Subscription
from drivers.types import (EE_DELTA_DIM, Command, EEDeltaCommand, InputState, JointCommand, RobotState,
                           SafetyFlag, TickRecord)
from policies.runner import PolicyRunner
from teleop_app.arbitration import DEFAULT_RAMP_SPEED, JoinRamp, PolicyArbiter
from teleop_app.gc_pauses import long_collection_since, watch_collections
from teleop_app.loop_stats import LoopStats, where_thread_is
from teleop_app.modes import Mode, Modes
from teleop_app.safety import KillSwitch, SafetyFilter, Watchdog
from teleop_app.takeover import TakeoverConfig

LOOP_NICE = -10  # the loop thread's nice value, where the user may raise priority
# A thread running Python keeps the GIL for up to this long after another asks for it (CPython's
# default is 5 ms), and the loop asks each time it wakes or comes back from C code. At 5 ms the
# loop made 80 Hz beside one busy Python thread; at 1 ms, 100 Hz (benchmarks/gil_contention.py).
GIL_SWITCH_S = 0.001
BUTTON_ROLES = ("kill", "episode")


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


class ControlLoop:
    def __init__(
        self,
        robot: Robot,
        inputs: Mapping[str, InputDevice],
        safety: SafetyFilter,
        *,
        rate_hz: float = 100.0,
        kill: KillSwitch | None = None,
        modes: Modes | None = None,
        watchdog_periods: int = 20,
        loop_core: int | None = None,
        active_input: str | None = None,
        ramp_speed: float = DEFAULT_RAMP_SPEED,
    ) -> None:
        self.robot = robot
        self._inputs: dict[str, InputDevice] = dict(inputs)  # replaced, never mutated: readers iterate safely
        self.safety = safety
        self.rate_hz = rate_hz
        self.period = 1.0 / rate_hz
        self.kill = kill or KillSwitch()
        self.modes = modes or Modes()
        self.loop_core = loop_core
        self.watchdog = Watchdog(robot, self.kill, self.period, watchdog_periods, where=self._where)
        self.ticks: Broadcast[TickRecord] = Broadcast()
        self._active = active_input or next(iter(self._inputs), None)
        self.last_input: InputState | None = None
        self.error: str | None = None
        self.thread_nice: int | None = None  # the loop thread's nice value once running (-10 where allowed)
        self.ramp = JoinRamp(ramp_speed, self.period)
        self.episode_presses = 0  # presses of the driving input's ``episode`` button (read by the session)
        self._stats = LoopStats()

        self._calls: list[tuple[Callable[[], Any], Future]] = []
        self._calls_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._q_cmd = np.zeros(robot.n_joints)
        self._q_hold: np.ndarray | None = None
        self._acted_generation = 0
        self._state: RobotState | None = None
        self._tick = 0
        self._arbiter: PolicyArbiter | None = None
        self._last_policy: PolicyRunner | None = None
        self._driver: tuple[Mode, str | None] | None = None  # who drove the last tick
        self._presses: dict[tuple[str, str], int] = {}
        self._note_presses(self._inputs)

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
        if self._arbiter is not None:
            self._arbiter.runner.stop()

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
        When the loop is not running, or this is the loop's own thread (a call made by another
        call), ``fn`` runs at once.
        """
        future = _LoopCall(self)
        if threading.current_thread() is self._thread:
            self._call(fn, future)
            return future
        with self._calls_lock:
            self._calls.append((fn, future))
        if not self.running:
            self._run_calls()
        return future

    def _where(self) -> str | None:
        """Why the loop is late, for the watchdog: a long garbage collection, else where its thread is."""
        began = self._stats.prev_t0
        return ((None if began is None else long_collection_since(began))
                or where_thread_is(self._thread, ControlLoop._sleep_until.__code__))

    def why_not_answering(self) -> str:
        """What the loop is doing instead of running calls, for an error message."""
        if not self.running:
            return "its thread is not running" + (f" ({self.error})" if self.error else "")
        began = self._stats.prev_t0
        if began is None:
            return "it has not ticked yet"
        doing = self._where()
        return (f"its current tick began {time.monotonic() - began:.1f} s ago"
                + (f", {doing}" if doing else ": the CPU is overloaded or a driver blocks the loop"))

    # -- inputs ------------------------------------------------------------------------------
    @property
    def inputs(self) -> Mapping[str, InputDevice]:
        """Every input device, by name (a read-only view; the replay input appears while it plays)."""
        return MappingProxyType(self._inputs)

    @property
    def active_input(self) -> str | None:
        """The input that drives in ``TELEOP``/``REPLAY`` (and takes over from a policy by default)."""
        return self._active

    def attach_input(self, device: InputDevice) -> Future:
        """Add an input between two ticks (its earlier button presses are not acted on)."""

        def attach() -> None:
            if device.name in self._inputs:
                raise ValueError(f"there is already an input named {device.name!r}")
            self._note_presses({device.name: device})
            self._inputs = {**self._inputs, device.name: device}

        return self.call_soon(attach)

    def detach_input(self, name: str) -> Future:
        """Remove an input between two ticks; if it was the active one, no input is active afterwards."""

        def detach() -> None:
            self._inputs = {k: v for k, v in self._inputs.items() if k != name}
            if self._active == name:
                self._active = None

        return self.call_soon(detach)

    def set_active_input(self, name: str | None) -> Future:
        """Make ``name`` the driving input between two ticks (None: no input drives)."""

        def make_active() -> None:
            if name is not None and name not in self._inputs:
                raise ValueError(f"no input {name!r} (inputs: {', '.join(self._inputs) or 'none'})")
            self._active = name

        return self.call_soon(make_active)

    def _note_presses(self, devices: Mapping[str, InputDevice]) -> None:
        for name, device in devices.items():
            for role in BUTTON_ROLES:
                self._presses[(name, role)] = device.presses(role)

    def _read_buttons(self) -> None:
        """A kill press on any device latches the kill switch now; episode presses are counted."""
        for name, device in self._inputs.items():
            for role in BUTTON_ROLES:
                count = device.presses(role)
                seen = self._presses.get((name, role), count)
                if count == seen:
                    continue
                self._presses[(name, role)] = count
                if role == "kill":
                    self.kill.trigger(f"kill button on {name}")
                elif name == self._active and count > seen:
                    self.episode_presses += count - seen

    def reset_scene(self, seed: int | None = None) -> Future:
        """Reset the scene (sim) between ticks and re-sync the command to the new pose."""

        def reset() -> bool:
            ok = self.robot.reset_scene(seed)
            self._state = self.robot.read()
            self._q_cmd = self._state.joint_pos.copy()
            if self._q_hold is not None:
                self._q_hold = self._q_cmd.copy()
            for device in self._inputs.values():
                device.reset()
            self._driver = None  # every device starts over from the new pose
            if self._arbiter is not None:
                self._arbiter.runner.drop()  # planned actions belong to the old scene
            return ok

        return self.call_soon(reset)

    # -- policy control ----------------------------------------------------------------------
    @property
    def policy(self) -> PolicyRunner | None:
        """The attached policy runner (None when no policy is attached)."""
        return None if self._arbiter is None else self._arbiter.runner

    @property
    def takeover(self) -> TakeoverConfig | None:
        """How a human takes over from the running policy (None: only :meth:`take_over` does)."""
        return None if self._arbiter is None else self._arbiter.config

    @property
    def manual_takeover(self) -> bool:
        """The human took over with :meth:`take_over` (a button): no automatic hand-back."""
        return self._arbiter is not None and self._arbiter.manual

    @property
    def takeovers(self) -> int:
        """Times a human took over from a policy since the figures were last reset."""
        return self._stats.takeovers

    @property
    def kill_latencies(self) -> list[float]:
        """Seconds from each kill trigger to the hold command it caused."""
        return self._stats.kill_latencies

    def start_policy(self, runner: PolicyRunner, takeover: TakeoverConfig | None = None) -> None:
        """Hand the robot to ``runner``: its worker starts and the mode becomes POLICY.

        With ``takeover``, moving its input device gives the human control (see
        :mod:`teleop_app.takeover`); :meth:`take_over` always can, with the takeover
        input or else the active one. Raises InvalidTransition from modes that cannot
        go to POLICY (replay), ValueError for an unknown takeover device.
        """
        if self._arbiter is not None:
            raise RuntimeError("a policy is already running: stop_policy() first")
        device = self._active if takeover is None or takeover.input is None else takeover.input
        if takeover is not None and device not in self._inputs:
            raise ValueError(f"no input device {device!r} for takeover (inputs: {', '.join(self._inputs) or 'none'})")
        runner.start(self.kill.trigger)

        def attach() -> None:
            self.modes.set_mode(Mode.POLICY, reason="policy started")
            arbiter = PolicyArbiter(runner, takeover, device, self.modes, self._stats)
            if takeover is not None:
                arbiter.rest(self._inputs[device].read())
            self._arbiter = arbiter
            self._last_policy = runner

        try:
            self.call_soon(attach).result(timeout=2.0)
        except BaseException:
            runner.stop()
            raise

    def stop_policy(self, mode: Mode = Mode.IDLE) -> PolicyRunner | None:
        """Take the robot from the policy (the mode becomes ``mode``) and stop its worker; returns the runner.

        Raises InvalidTransition (the policy keeps running) for a mode the current one cannot go to.
        """

        def detach() -> PolicyRunner | None:
            arbiter = self._arbiter
            if arbiter is None:
                return None
            if self.modes.mode in (Mode.POLICY, Mode.INTERVENTION):
                self.modes.set_mode(mode, reason="policy stopped")
            self._arbiter = None
            return arbiter.runner

        runner = self.call_soon(detach).result(timeout=2.0)
        if runner is not None:
            runner.stop()
        return runner

    def take_over(self, reason: str = "takeover requested") -> Future:
        """Give the human control now (a button); it stays human until :meth:`hand_back`."""

        def take() -> bool:
            arbiter = self._arbiter
            if arbiter is None or self.modes.mode is not Mode.POLICY or arbiter.input is None:
                return False
            arbiter.take_over(reason)
            arbiter.manual = True
            return True

        return self.call_soon(take)

    def hand_back(self) -> Future:
        """Give control back to the policy after an intervention; the future says whether it happened."""

        def back() -> bool:
            arbiter = self._arbiter
            if arbiter is None or self.modes.mode is not Mode.INTERVENTION:
                return False
            arbiter.hand_back("handed back", self.last_input)
            return True

        return self.call_soon(back)

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
            self._stats.tick_started(t0)
            self.watchdog.beat(t0)
            try:
                self._tick_once(t0)
            except Exception as exc:  # a driver failed: hold, tell the user, keep ticking
                self.error = f"{type(exc).__name__}: {exc}"
                self.kill.trigger(f"control loop error: {self.error}")
            deadline += self.period
            now = time.monotonic()
            if now > deadline:
                skipped = int((now - deadline) / self.period)
                self._stats.late(skipped)
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
        self._run_calls()
        self._read_buttons()
        kill = self.kill
        raw, kind, flags, source, driver = None, "none", SafetyFlag.NONE, "idle", ""
        if kill.latched:
            self._act_on_kill()
            source, driver = self._in_charge()  # the hold is recorded against whoever was driving
            t1 = t2 = t3 = time.monotonic()
        else:
            if self._q_hold is not None:  # re-armed: continue from where the robot was held
                self._q_cmd = self._q_hold
                self._q_hold = None
                self._driver = None  # whoever drives now joins from the held pose
            command, starved, source, driver = self._command()
            t1 = time.monotonic()
            target, raw, kind = self._joint_targets(command)
            if command is not None:
                target = self.ramp.apply(target, self._q_cmd, gripper_only=isinstance(command, EEDeltaCommand))
            t2 = time.monotonic()
            safe, flags = self.safety.filter(target, self._q_cmd)
            if starved:
                flags |= SafetyFlag.STARVED
            t3 = time.monotonic()
            if kill.latched:  # triggered while we computed: the hold wins
                self._act_on_kill()
            else:
                self.robot.send(JointCommand(safe), source=source)
                self._q_cmd = safe
                if self._arbiter is not None and source == "policy":
                    self._arbiter.runner.note_sent(self._tick, safe)
        t_sent = time.monotonic()
        state = self.robot.read()
        self._state = state
        t5 = time.monotonic()
        killed = self._q_hold is not None
        record = TickRecord(
            tick=self._tick, t=t0, t_sent=t_sent, state=state,
            command=(self._q_hold if killed else self._q_cmd).copy(), raw_input=raw, input_kind=kind,
            source=source, safety=int(flags | (SafetyFlag.KILLED if killed else 0)), killed=killed, driver=driver,
        )
        self.ticks.publish(record)
        t6 = time.monotonic()
        self._tick += 1
        self._stats.tick_done(t0, (t1, t2, t3, t_sent, t5, t6))

    def _command(self) -> tuple[Command | None, bool, str, str]:
        """This tick's command, whether a policy starved, and the tick's source and driver."""
        mode = self.modes.mode
        arbiter = self._arbiter
        if arbiter is not None and mode in (Mode.POLICY, Mode.INTERVENTION):
            inp = None
            if arbiter.wants_input(mode):
                self._join(mode, arbiter.input if mode is Mode.INTERVENTION else arbiter.label)
                inp = self.last_input = self._inputs[arbiter.input].read()
            command, starved, human = arbiter.decide(inp, self._tick, time.monotonic(), self._state)
            mode = self.modes.mode
            if human:
                if self._driver != (mode, arbiter.input):  # taken over this tick: the device follows first
                    self._join(mode, arbiter.input)
                    inp = self.last_input = self._inputs[arbiter.input].read()
                return self._command_from_input(inp), False, "intervention", arbiter.input
            self._join(mode, arbiter.label)
            return command, starved, ("policy" if mode is Mode.POLICY else "intervention"), arbiter.label
        if mode in (Mode.POLICY, Mode.INTERVENTION):  # the policy was just detached: hold until the mode changes
            self._join(mode, None)
            return None, False, mode.value, ""
        name = self._active
        if mode in (Mode.TELEOP, Mode.REPLAY) and name is not None:
            device = self._inputs[name]
            self._join(mode, name)
            inp = self.last_input = device.read()
            source = "replay" if mode is Mode.REPLAY else device.source
            return self._command_from_input(inp), False, source, getattr(device, "label", name)
        self._join(Mode.IDLE, None)
        return None, False, "idle", ""

    def _in_charge(self) -> tuple[str, str]:
        """The source and driver of the mode in force, without reading any device (for held ticks)."""
        mode, arbiter, name = self.modes.mode, self._arbiter, self._active
        if arbiter is not None and mode is Mode.POLICY:
            return "policy", arbiter.label
        if arbiter is not None and mode is Mode.INTERVENTION:
            return "intervention", arbiter.input or ""
        if mode in (Mode.TELEOP, Mode.REPLAY) and name in self._inputs:
            device = self._inputs[name]
            return ("replay" if mode is Mode.REPLAY else device.source), getattr(device, "label", name)
        return "idle", ""

    def _join(self, mode: Mode, who: str | None) -> None:
        """A new driver: it starts from the commanded gripper, and the ramp joins it to the arm's pose."""
        key = (mode, who)
        if key == self._driver:
            return
        self._driver = key
        if mode is Mode.IDLE:
            return
        self.ramp.start()
        device = self._inputs.get(who) if who is not None and mode is not Mode.POLICY else None
        if device is not None:
            device.follow(self.robot.joint_to_gripper(float(self._q_cmd[-1])))

    def _command_from_input(self, inp: InputState | None) -> Command | None:
        """What an input state asks for this tick: joint targets, an end-effector step, or nothing."""
        if inp is None or not inp.connected:
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
            if self._arbiter is not None:
                self._arbiter.runner.drop()  # queued actions never run; answers already requested are ignored
            q = self._state.joint_pos.copy() if self._state is not None else self._q_cmd.copy()
            q[-1] = self._q_cmd[-1]
            self._q_hold = np.clip(q, self.safety.limits.joint_lower, self.safety.limits.joint_upper)
            self.robot.send(JointCommand(self._q_hold), source="kill")
            if kill.t_trigger is not None:
                self._stats.kill_latencies.append(time.monotonic() - kill.t_trigger)
        else:
            self.robot.send(JointCommand(self._q_hold), source="kill")

    def _run_calls(self) -> None:
        with self._calls_lock:
            calls, self._calls = self._calls, []
        for fn, future in calls:
            self._call(fn, future)

    @staticmethod
    def _call(fn: Callable[[], Any], future: Future) -> None:
        try:
            future.set_result(fn())
        except Exception as exc:
            future.set_exception(exc)

    # -- figures -----------------------------------------------------------------------------
    def reset_stats(self) -> None:
        """Start the figures of :meth:`stats` afresh (e.g. after a warm-up)."""
        self._stats.reset()

    def stats(self) -> dict[str, Any]:
        """Loop figures since start: rate, period percentiles, overruns, time per section, kill latency.

        ``policy`` counts ticks driven by a policy, starved ticks (held: no action ready),
        the longest run of them, ticks with an inference in flight, intervention ticks,
        takeovers and hand-backs (all reset by :meth:`reset_stats`), and ``runner``: the
        current or last runner's own :meth:`~policies.runner.PolicyRunner.stats`.
        """
        out = self._stats.figures(self.rate_hz)
        out.update({
            "safety_counts": dict(self.safety.counts),
            "kill": {"latched": self.kill.latched, "reason": self.kill.reason, "triggers": self.kill.triggers},
            "watchdog_trips": self.watchdog.trips,
            "thread_nice": self.thread_nice,
            "subscriber_drops": {s.name: s.dropped for s in self.ticks.subscriptions},
            "error": self.error,
            "policy": {**self._stats.policy_figures(),
                       "runner": None if self._last_policy is None else self._last_policy.stats()},
        })
        return out
