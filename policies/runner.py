"""Runs a policy beside the control loop: inference on a worker thread, actions through a strategy.

The control loop never waits for the model. Each tick it calls :meth:`PolicyRunner.step`,
which takes an answer that arrived, sends the observation of this tick if the
strategy wants one and nothing is in flight, and returns the strategy's action
for this tick — or None, and the loop holds the robot (a *starved* tick).

Every answer is checked against the :class:`~policies.observation.ActionSpec`
on the worker. An exception, an answer later than ``timeout_s``, or an output
that is not ``[k, dim]`` finite numbers inside the spec's range triggers the
kill switch with the reason (``policy: output has NaN in dim 3``) and never
becomes an action. Whatever the runner returns still goes through the loop's
safety filter.

``speed`` (joint-target policies) executes each checked chunk faster or slower
than the policy planned it (:mod:`policies.speed`), a speed-up clipped per
chunk so it never steps a joint more than ``max_step`` per tick; the strategy only sees the
time-scaled chunk. A request carries the strategy's :class:`~policies.base.Prefix`
(real-time chunking), mapped back onto the policy's own timeline. ``ablate`` hides
inputs from the policy for experiments (:data:`ABLATIONS`: ``task`` blanks the
sentence, ``state`` zeroes the measured robot state it sees).

Threads: :meth:`step`, :meth:`drop`, :meth:`pause`, :meth:`resume` run on the
loop thread; the worker only hands over finished answers; :meth:`view` and
:meth:`stats` may be called from any thread (the GUI polls them at ~30 Hz).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from drivers.base import Camera, Robot
from drivers.types import Command, EEDeltaCommand, JointCommand, RobotState
from policies.base import ActionChunk, ActionKind, Policy, PolicyError, Prefix
from policies.observation import ActionSpec, Capture, Observation, ObservationSource
from policies.speed import at_speed, time_scale
from policies.strategies import OpenLoop, Plan, Strategy

_LATENCIES = 4096
ABLATIONS = ("task", "state")  # inputs a runner can hide from its policy


@dataclass(frozen=True)
class RunnerView:
    """A snapshot for live plots. ``plan`` holds the actions ahead of ``tick``, the current and
    previous chunk and the executed actions; ``last_sent`` the joint targets that reached the
    robot (after the safety filter) on policy tick ``last_sent_tick``."""

    state: str  # "idle" (not started), "running", "paused" (human in control), "stopped"
    kind: ActionKind
    tick: int
    plan: Plan
    last_sent_tick: int | None
    last_sent: np.ndarray | None
    in_flight: bool
    latency_ms: dict[str, float | None]
    starved_ticks: int
    error: str | None


class PolicyRunner:
    def __init__(self, policy: Policy, strategy: Strategy, spec: ActionSpec, observations: ObservationSource,
                 *, timeout_s: float = 2.0, speed: float = 1.0, max_step: float | None = None,
                 ablate: tuple[str, ...] = ()) -> None:
        if policy.info.action_dim != spec.dim or policy.info.action_kind is not spec.kind:
            raise ValueError(f"the policy answers {policy.info.action_dim}-dim {policy.info.action_kind.value} "
                             f"actions, the spec expects {spec.dim}-dim {spec.kind.value}")
        if policy.info.chunk_length == 1 and not isinstance(strategy, OpenLoop):
            raise ValueError(f"{policy.info.name or 'this policy'} answers one action at a time: use the open-loop "
                             f"strategy ({strategy.name} only uses actions for ticks that have not passed, and a "
                             "single action's tick has always passed when it arrives)")
        if not speed > 0:
            raise ValueError(f"speed {speed:g}: must be > 0 (1 runs chunks as planned)")
        if speed != 1.0 and spec.kind is not ActionKind.JOINT:
            raise ValueError("a speed other than 1 needs a policy of absolute joint targets "
                             "(end-effector steps are not time-scaled)")
        unknown = set(ablate) - set(ABLATIONS)
        if unknown:
            raise ValueError(f"cannot ablate {', '.join(sorted(unknown))} (known: {', '.join(ABLATIONS)})")
        self.policy = policy
        self.strategy = strategy
        self.ablate = tuple(ablate)
        self.speed = speed
        self.max_step = max_step
        self.speeds_used: list[float] = []  # the clipped speed of each chunk (bounded like the latencies)
        self.spec = spec
        self.observations = observations
        self.timeout_s = timeout_s
        self._on_fault: Callable[[str], None] = lambda reason: None
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._state = "idle"
        self._generation = 0  # bumped by drop(): answers to older requests are discarded
        self._infer_lock = threading.Lock()  # one inference at a time, even when a stuck worker is replaced
        self._next_id = 0
        # (id, capture, prefix, generation, t_submit): a request the worker has not taken yet
        self._request: tuple[int, Capture, Prefix | None, int, float] | None = None
        self._in_flight: tuple[int, float, bool] | None = None  # (id, t_submit, timed out): requested, not answered
        self._ready: tuple[ActionChunk, float, float] | None = None  # a checked answer, t_submit, t_ready
        self._reset_policy = False
        self._tick = 0
        self._last_sent: tuple[int, np.ndarray] | None = None
        self._latency = np.zeros(_LATENCIES)
        self._delays = np.zeros(_LATENCIES)
        self._n_latency = 0
        self.requests = 0
        self.chunks = 0
        self.errors = 0
        self.timeouts = 0
        self.discarded = 0  # answers that came back after a kill, a takeover or a timeout
        self.starved_ticks = 0
        self.error: str | None = None

    @classmethod
    def for_robot(cls, robot: Robot, cameras: Mapping[str, Camera], rate_hz: float, policy: Policy,
                  strategy: Strategy, task: str, *, spec: ActionSpec | None = None,
                  image_size: tuple[int, int] | None = (224, 224), camera_names: list[str] | None = None,
                  timeout_s: float = 2.0, speed: float = 1.0, max_step: float | None = None,
                  ablate: tuple[str, ...] = ()) -> PolicyRunner:
        """A runner on these cameras; the spec defaults to the robot's bounds for the policy's action kind."""
        info = policy.info
        if spec is None:
            spec = ActionSpec.for_robot(robot, info.action_kind, rate_hz, normalization=info.normalization,
                                        stats=info.stats)
        source = ObservationSource(dict(cameras), task, image_size=image_size, camera_names=camera_names)
        return cls(policy, strategy, spec, source, timeout_s=timeout_s, speed=speed, max_step=max_step,
                   ablate=ablate)

    # -- lifecycle (ControlLoop.start_policy / stop_policy call these) ---------------------------
    def start(self, on_fault: Callable[[str], None]) -> None:
        """Start the worker; ``on_fault(reason)`` (the kill switch's trigger) is called on any policy fault."""
        if self._thread is not None:
            raise RuntimeError("the policy runner is already running")
        self._on_fault = on_fault
        thread = threading.Thread(target=self._work, name="policy-worker", daemon=True)
        with self._lock:
            self._state = "running"
            self._thread = thread
        thread.start()

    def stop(self) -> None:
        """Stop the worker. An inference still running finishes on its own thread and is discarded;
        a later :meth:`start` waits for it before the policy is called again."""
        with self._lock:
            self._state = "stopped"
            self._drop_locked()
            thread, self._thread = self._thread, None
            self._wake.notify_all()
        if thread is not None:
            thread.join(timeout=0.5)

    @property
    def state(self) -> str:
        return self._state

    def reset(self) -> None:
        """A new episode: drop every queued action; the policy's own reset runs before its next inference."""
        with self._lock:
            self._drop_locked()
            self._reset_policy = True

    # -- loop thread ------------------------------------------------------------------------------
    def step(self, tick: int, t: float, state: RobotState) -> Command | None:
        """The command for this tick, or None to hold. Never blocks on the model."""
        reason = None
        with self._lock:
            self._tick = tick
            if self._state != "running":
                return None
            if self._ready is not None:
                chunk, t_submit, t_ready = self._ready
                self._ready = None
                self.strategy.on_chunk(chunk, tick)
                self._note_latency(t_ready - t_submit, tick - chunk.tick)
            flight = self._in_flight
            if flight is not None and not flight[2] and t - flight[1] > self.timeout_s:
                self._in_flight = (flight[0], flight[1], True)  # one kill per request, however long it hangs
                self.timeouts += 1
                self._generation += 1
                reason = self.error = f"policy: no answer within {self.timeout_s:.2f} s"
            elif flight is None and self._request is None and self.strategy.wants_inference(tick):
                t_submit = time.monotonic()
                self._next_id += 1
                self._request = (self._next_id, self.observations.capture(tick, t, state),
                                 self.strategy.prefix(tick), self._generation, t_submit)
                self._in_flight = (self._next_id, t_submit, False)
                self.requests += 1
                self._wake.notify()
            action = None if reason else self.strategy.action_for(tick)
            if action is None:
                self.starved_ticks += 1
        if reason is not None:
            self._on_fault(reason)
            return None
        if action is None:
            return None
        if self.spec.kind is ActionKind.JOINT:
            return JointCommand(action.copy())
        return EEDeltaCommand(action.copy())

    @property
    def in_flight(self) -> bool:
        return self._in_flight is not None

    def note_sent(self, tick: int, q: np.ndarray) -> None:
        """The joint targets that went to the robot on a policy tick (after the safety filter)."""
        self._last_sent = (tick, q.copy())

    def drop(self) -> None:
        """Forget every planned action and ignore answers already requested (kill, scene reset)."""
        with self._lock:
            self._drop_locked()

    def pause(self) -> None:
        """A human took over: drop the plan; :meth:`step` returns nothing until :meth:`resume`."""
        with self._lock:
            self._drop_locked()
            if self._state == "running":
                self._state = "paused"

    def resume(self) -> None:
        """Back to the policy: it starts again from a fresh observation."""
        with self._lock:
            self._drop_locked()
            if self._state == "paused":
                self._state = "running"

    def _drop_locked(self) -> None:
        self.strategy.reset()
        self._generation += 1
        if self._request is not None:  # never started: nothing is in flight any more
            self._request = None
            self._in_flight = None
        self._ready = None

    # -- worker -----------------------------------------------------------------------------------
    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                while self._request is None and self._thread is me:
                    self._wake.wait()
                if self._thread is not me:  # stopped, or replaced after a stop while this one was stuck
                    return
                (req_id, capture, prefix, generation, t_submit), self._request = self._request, None
                reset, self._reset_policy = self._reset_policy, False
            chunk, problem = None, None
            with self._infer_lock:
                try:
                    if reset:
                        self.policy.reset()
                    answer = self.policy.infer(self._observation(capture), self._policy_prefix(prefix))
                    chunk, problem = self._check(answer, capture.tick)
                except PolicyError as exc:
                    problem = str(exc)
                except Exception as exc:  # any failure of the model or its code stops the robot
                    lines = str(exc).strip().splitlines()
                    problem = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
            t_ready = time.monotonic()
            reason = None
            with self._lock:
                if self._in_flight is not None and self._in_flight[0] == req_id:
                    self._in_flight = None
                if generation != self._generation:
                    self.discarded += 1
                elif problem is not None:
                    self.errors += 1
                    reason = self.error = f"policy: {problem}"
                else:
                    self._ready = (chunk, t_submit, t_ready)
                    self.chunks += 1
            if reason is not None:
                self._on_fault(reason)  # outside the lock: kill listeners may call view()

    def _check(self, chunk: object, tick: int) -> tuple[ActionChunk | None, str | None]:
        """The chunk in robot units and None, or None and why it is out of spec."""
        if not isinstance(chunk, ActionChunk):
            return None, f"infer() returned {type(chunk).__name__}, not an ActionChunk"
        if chunk.tick != tick:
            return None, f"answer is for tick {chunk.tick}, the observation was tick {tick}"
        actions, problem = self.spec.check(chunk.actions)
        if problem is not None:
            return None, problem
        if self.speed != 1.0:
            actions, used = at_speed(actions, self.speed, self.max_step)
            with self._lock:
                self.speeds_used = [*self.speeds_used[-(_LATENCIES - 1):], used]
        return dataclasses.replace(chunk, actions=actions), None

    def _observation(self, capture: Capture) -> Observation:
        obs = self.observations.build(capture)
        if "task" in self.ablate:
            obs = dataclasses.replace(obs, task="")
        if "state" in self.ablate:
            s = obs.state
            obs = dataclasses.replace(obs, state=dataclasses.replace(
                s, joint_pos=np.zeros_like(s.joint_pos), joint_vel=np.zeros_like(s.joint_vel), gripper=0.0,
                ee_pos=np.zeros_like(s.ee_pos)))
        return obs

    def _policy_prefix(self, prefix: Prefix | None) -> Prefix | None:
        """The strategy's prefix (per control tick) on the policy's timeline: slower by ``speed``."""
        if prefix is None or self.speed == 1.0:
            return prefix
        actions = time_scale(prefix.actions, 1.0 / self.speed)
        return Prefix(actions, min(len(actions), int(np.ceil(prefix.hold * self.speed))))

    def _note_latency(self, latency: float, delay_ticks: int) -> None:
        i = self._n_latency % _LATENCIES
        self._latency[i] = latency
        self._delays[i] = delay_ticks
        self._n_latency += 1

    # -- any thread -------------------------------------------------------------------------------
    def _latency_ms(self) -> dict[str, float | None]:
        n = min(self._n_latency, _LATENCIES)
        lat = self._latency[:n] * 1e3
        if not n:
            return {"last": None, "p50": None, "p99": None, "max": None}
        last = self._latency[(self._n_latency - 1) % _LATENCIES] * 1e3
        return {"last": float(last), "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                "max": float(lat.max())}

    def view(self) -> RunnerView:
        with self._lock:
            plan = self.strategy.plan(self._tick)
            sent = self._last_sent
            return RunnerView(
                state=self._state, kind=self.spec.kind, tick=self._tick, plan=plan,
                last_sent_tick=None if sent is None else sent[0], last_sent=None if sent is None else sent[1],
                in_flight=self._in_flight is not None, latency_ms=self._latency_ms(),
                starved_ticks=self.starved_ticks, error=self.error,
            )

    def stats(self) -> dict[str, Any]:
        """Counts since the runner was made, answer latency (request → ready, ms) and delay in ticks
        (observation tick → the tick the answer was taken)."""
        with self._lock:
            n = min(self._n_latency, _LATENCIES)
            delays = self._delays[:n]
            return {
                "strategy": self.strategy.name,
                "state": self._state,
                "requests": self.requests,
                "chunks": self.chunks,
                "errors": self.errors,
                "timeouts": self.timeouts,
                "discarded_answers": self.discarded,
                "stale_actions_dropped": self.strategy.stale_dropped,
                "starved_ticks": self.starved_ticks,
                "latency_ms": self._latency_ms(),
                "delay_ticks": {"p50": float(np.percentile(delays, 50)) if n else None,
                                "max": int(delays.max()) if n else None},
                "speed": {"asked": self.speed,
                          "min_used": min(self.speeds_used) if self.speeds_used else None,
                          "mean_used": float(np.mean(self.speeds_used)) if self.speeds_used else None},
                "error": self.error,
            }
