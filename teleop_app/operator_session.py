"""The operator's work at a rig, as plain Python: the one object every front end drives.

An :class:`OperatorSession` owns a rig and its recorder. It knows the dataset
folder, the task sentence, which input drives and which policy is loaded, and it
runs the operator's work one *run* at a time (:mod:`teleop_app.runs`): an episode
driven by the active input, a policy rollout (with takeovers and hand-backs), a
replay of a recorded episode — and batches of them for ``collect`` and
``run-policy``. When a run ends, and what its ending means (success, time limit,
kill, write failure, the operator), is decided here for the window and every
command alike; the recorder writes the episode's label and notes as it finalizes
the file, so nothing reopens a finished file. The robot is told the task sentence
(:meth:`~drivers.base.Robot.set_task`) whenever it changes and when a run starts,
so a robot that judges by the words (the two-cube sim) judges the current one.

Threads:

- Public methods may be called from any thread but the control loop's (they wait
  for the loop to run requests between ticks); they take the session's lock, so
  two callers never interleave. :meth:`load_policy` blocks while a checkpoint
  loads or a server connects: call it off a GUI thread.
- A *supervisor* thread (:meth:`start` → ``session-supervisor``) checks the
  running run every 20 ms, and at once when the kill switch latches: end rules,
  the kill switch, a failed write, a replay that finished, the driving input's
  episode button. The control loop itself acts on device kill buttons on the
  next tick (:mod:`teleop_app.loop`); the supervisor only ends the run.
- Listeners (:meth:`add_listener`) get a :class:`~teleop_app.events.Event` on the
  thread that made the change.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drivers.base import DeviceError
from policies.base import ActionKind, Policy, PolicyInfo
from policies.loading import LoadOptions, preload_file_loaders
from recordings.library import episode_files, free_space
from recordings.recorder import Recorder, RecordingError
from teleop_app.errors import OperatorError, one_line
from teleop_app.events import Event
from teleop_app.gc_pauses import freeze_long_lived
from teleop_app.modes import InvalidTransition, Mode
from teleop_app.replay import ReplayError, ReplayInput, Trajectory
from teleop_app.rig import Rig
from teleop_app.rollouts import RolloutOptions, describe_policy, runner_for
from teleop_app.runs import (
    OUTCOME_OF_LABEL,
    EndReason,
    EndRules,
    Run,
    RunKind,
    RunResult,
    episode_notes,
    success_label,
)

STOP_REASON = "STOP pressed"
SUPERVISE_S = 0.02
FRESH_FRAME_TIMEOUT_S = 5.0
FIRST_TICK_TIMEOUT_S = 2.0
LOOP_CALL_TIMEOUT_S = 2.0


def check_can_drive(rig: Rig, input_name: str | None) -> None:
    """Refuse to hand a robot to a joint-space input (a leader arm) that is posed far from it.

    Robots that can tell (a real follower: ``check_leader``) raise DeviceError
    naming the joint and the gap; others accept any input.
    """
    check = getattr(rig.robot, "check_leader", None)
    if check is None or input_name is None:
        return
    state = rig.inputs[input_name].read()
    if state.connected and state.joint_targets is not None:
        check(state.joint_targets)


def wait_for_fresh_frames(rig: Rig, since: float, timeout: float = FRESH_FRAME_TIMEOUT_S) -> bool:
    """Wait until every camera has a frame captured after ``since``; False if one had none within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all((f := cam.latest()) is not None and f.t_capture > since for cam in rig.cameras.values()):
            return True
        time.sleep(0.01)
    return False


@dataclass(frozen=True)
class BatchPlan:
    """``runs`` recorded runs, each on a freshly reset scene (seed ``seed + i``), ending by ``rules``.

    The robot holds still from each reset until its run starts (and its recording with it).

    ``rollout`` None: episodes driven by the active input (``collect``); else policy rollouts.
    ``tasks``: run ``i`` gets the task sentence ``tasks[i % len(tasks)]`` (set before its reset);
    empty: the session's task for every run.
    """

    runs: int
    rules: EndRules
    seed: int | None = None
    rollout: RolloutOptions | None = None
    tasks: tuple[str, ...] = ()


@dataclass
class BatchReport:
    results: list[RunResult]

    @property
    def stopped_by(self) -> RunResult | None:
        """The run whose ending stopped the batch (a kill or a write failure), if any."""
        last = self.results[-1] if self.results else None
        return last if last is not None and last.stops_a_batch else None


class OperatorSession:
    """See the module docstring for its rules and threads."""

    def __init__(self, rig: Rig, dataset_dir: str | Path, *, task: str = "", operator: str = "",
                 episode_rules: EndRules | None = None) -> None:
        self.rig = rig
        self.task = task.strip()
        self.operator = operator
        self.recorder = Recorder.for_rig(rig, dataset_dir)
        self.episode_rules = episode_rules or EndRules()  # how an episode started by hand or button ends
        self.policy: Policy | None = None
        self.load_options: LoadOptions | None = None
        self.loading: str | None = None  # the spec being loaded now
        self.run: Run | None = None  # the current or the last run
        self.message = ""
        self.message_is_error = False
        self._lock = threading.RLock()
        self._ended = threading.Condition(self._lock)
        self._listeners: list[Callable[[Event], None]] = []
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._episode_presses = 0
        rig.kill.add_listener(self._on_kill)
        rig.modes.add_listener(lambda change: self._emit(Event.MODE))
        rig.robot.set_task(self.task)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, preload_policy_loaders: bool = False) -> None:
        """Start the rig (robot, cameras, inputs, the loop) and the supervisor.

        ``preload_policy_loaders``: import the checkpoint loaders' libraries (torch)
        first, where a policy may be loaded while the loop runs (the window):
        importing them later would stall the loop (benchmarks/policy_load.py).
        """
        if preload_policy_loaders:
            preload_file_loaders()
            freeze_long_lived()
        self.rig.start()
        self._episode_presses = self.rig.loop.episode_presses
        self._closing.clear()
        self._supervisor = threading.Thread(target=self._supervise_forever, name="session-supervisor", daemon=True)
        self._supervisor.start()

    def close(self) -> None:
        """End the running run (an episode is kept unlabelled rather than lost), close the policy and the rig."""
        with self._lock:
            self._end_run(EndReason.CLOSING)
            policy, self.policy = self.policy, None
        self._closing.set()
        self._wake.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=2.0)
            self._supervisor = None
        if policy is not None:
            policy.close()
        self.rig.close()

    def __enter__(self) -> OperatorSession:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- observing ---------------------------------------------------------------------------
    def add_listener(self, fn: Callable[[Event], None]) -> None:
        self._listeners.append(fn)

    def _emit(self, event: Event) -> None:
        for fn in list(self._listeners):
            fn(event)

    def say(self, text: str, error: bool = False) -> None:
        """Show ``text`` to the operator (the window's status line, a command's stderr)."""
        self.message, self.message_is_error = text, error
        self._emit(Event.MESSAGE)

    @property
    def dataset_dir(self) -> Path:
        return self.recorder.dataset_dir

    @property
    def mode(self) -> Mode:
        return self.rig.modes.mode

    @property
    def stopped(self) -> bool:
        return self.rig.kill.latched

    @property
    def active_input(self) -> str | None:
        return self.rig.loop.active_input

    @property
    def recording(self) -> bool:
        return self.recorder.recording

    @property
    def running(self) -> Run | None:
        """The run in progress, if any."""
        run = self.run
        return run if run is not None and run.active else None

    @property
    def last_result(self) -> RunResult | None:
        run = self.run
        return None if run is None else run.result

    @property
    def elapsed_s(self) -> float:
        """Seconds the recording in progress has run (0 when none)."""
        return self.recorder.elapsed_s if self.recording else 0.0

    @property
    def episode_count(self) -> int:
        """Episodes kept in the dataset folder (the trash and the one being recorded not included)."""
        files = episode_files(self.dataset_dir)
        return len([f for f in files if not (self.recording and f == self.recorder.path)])

    def free_disk_bytes(self) -> int | None:
        return free_space(self.dataset_dir)

    def takeovers(self, run: Run | None = None) -> int:
        """Times the human took over during ``run`` (default: the current or last one)."""
        run = run or self.run
        return 0 if run is None or run.kind is not RunKind.ROLLOUT else self.rig.loop.takeovers - run.takeovers_before

    # -- settings ----------------------------------------------------------------------------
    def set_dataset_dir(self, folder: str | Path) -> None:
        with self._lock:
            if self.recording:
                raise OperatorError("stop the episode before changing the dataset folder")
            self.recorder.dataset_dir = Path(folder).expanduser()
        self._emit(Event.DATASET)

    def set_task(self, task: str) -> None:
        self.task = task.strip()
        self.rig.robot.set_task(self.task)
        self._emit(Event.TASK)

    def set_active_input(self, name: str) -> None:
        with self._lock:
            if name not in self.rig.inputs:
                raise OperatorError(f"this rig has no input {name!r} (inputs: {', '.join(self.rig.inputs)})")
            if self.running is not None and self.running.kind is RunKind.REPLAY:
                raise OperatorError("an episode is being replayed: stop the replay first")
            if self.mode in (Mode.TELEOP, Mode.INTERVENTION):
                self._check_can_drive(name)
            self.rig.loop.set_active_input(name).result(timeout=LOOP_CALL_TIMEOUT_S)
        self._emit(Event.INPUT)

    def set_teleop(self, on: bool) -> None:
        """Hand the robot to the active input (on) or let it hold still (off); on ends a running rollout."""
        with self._lock:
            run = self.running
            if run is not None and run.kind is RunKind.REPLAY:
                raise OperatorError("an episode is being replayed: stop the replay first")
            if not on and run is not None and run.kind is RunKind.EPISODE:
                raise OperatorError("an episode is being recorded: keep or discard it first")
            if on:
                if self.active_input is None:
                    raise OperatorError("this rig has no input to drive with")
                self._check_can_drive(self.active_input)
                if run is not None and run.kind is RunKind.ROLLOUT:
                    self._end_run(EndReason.OPERATOR, detail="teleop took the robot")
            try:
                self.rig.modes.set_mode(Mode.TELEOP if on else Mode.IDLE, reason="operator")
            except InvalidTransition as exc:
                raise OperatorError(str(exc)) from exc

    def _check_can_drive(self, name: str | None) -> None:
        try:
            check_can_drive(self.rig, name)
        except DeviceError as exc:
            raise OperatorError(f"{exc} — move the leader arm to match the robot, then try again") from exc

    # -- safety ------------------------------------------------------------------------------
    def stop(self, reason: str = STOP_REASON) -> None:
        """STOP: the loop holds the robot on its next tick, whatever drives it; the running run ends."""
        self.rig.kill.trigger(reason)
        self.say(f"STOPPED ({reason}). Re-arm to move again.", error=True)

    def rearm(self) -> None:
        """Let the robot move again after a stop: the active input drives, if teleop is on; nothing resumes."""
        if not self.stopped:
            return
        with self._lock:
            self._end_run(EndReason.KILL)  # a run the supervisor has not ended yet never outlives the stop
            self.rig.kill.rearm()
        self.say("re-armed" + (": the robot follows the active input again" if self.mode is Mode.TELEOP else ""))

    def _on_kill(self, latched: bool, reason: str | None) -> None:
        # On the triggering thread (the loop, the watchdog, a policy worker, a signal handler): never wait.
        self._wake.set()
        self._emit(Event.KILL)

    # -- starting runs -----------------------------------------------------------------------
    def _check_can_start(self, kind: RunKind, *, needs_task: bool) -> None:
        if not self.rig.loop.running:
            raise OperatorError("the robot is not running: start the rig first")
        if self.stopped:
            raise OperatorError("the robot is stopped: check the scene, then re-arm it (Ctrl+R)")
        run = self.running
        if run is not None:
            doing = {RunKind.EPISODE: "an episode is being recorded: keep or discard it first",
                     RunKind.ROLLOUT: "a policy is running: stop it first",
                     RunKind.REPLAY: "an episode is being replayed: stop the replay first"}[run.kind]
            raise OperatorError(doing)
        if needs_task and not self.task:
            raise OperatorError("type a task sentence first (what the robot should do)")

    def _start_recording(self, notes: str = "") -> Path:
        try:
            return self.recorder.start_episode(self.task, operator=self.operator, notes=notes)
        except RecordingError as exc:
            raise OperatorError(str(exc)) from exc

    def start_episode(self, rules: EndRules | None = None) -> Path:
        """Record an episode driven by the active input (teleop is turned on if it was off)."""
        with self._lock:
            self._check_can_start(RunKind.EPISODE, needs_task=True)
            self.rig.robot.set_task(self.task)
            if self.mode is not Mode.TELEOP:
                self.set_teleop(True)
            path = self._start_recording()
            self.run = Run(RunKind.EPISODE, self.active_input or "", rules or self.episode_rules, episode=path)
            self._episode_presses = self.rig.loop.episode_presses
        self.say(f"recording {path.name}")
        self._emit(Event.RUN)
        return path

    def keep(self, success: bool | None) -> RunResult:
        """End the episode being recorded and keep it, labelled a success or a failure (None: unlabelled)."""
        with self._lock:
            run = self.running
            if run is None or run.kind is not RunKind.EPISODE:
                raise OperatorError("no episode is being recorded")
            return self._end_run(EndReason.OPERATOR, label=success, labelled=True)

    def discard(self) -> RunResult:
        """End the episode being recorded and delete its file."""
        with self._lock:
            run = self.running
            if run is None or run.kind is not RunKind.EPISODE:
                raise OperatorError("no episode is being recorded")
            return self._end_run(EndReason.OPERATOR, discard=True)

    def load_policy(self, options: LoadOptions) -> PolicyInfo:
        """Load a checkpoint or connect to a server (blocks); replaces (and closes) the policy loaded before."""
        spec = options.spec.strip()
        if not spec:
            raise OperatorError("enter a checkpoint file or a server address (ws://HOST:PORT, http://HOST:PORT/act)")
        with self._lock:
            if self.running is not None and self.running.kind is RunKind.ROLLOUT:
                raise OperatorError("stop the running policy before loading another")
            if self.loading is not None:
                raise OperatorError(f"still loading {self.loading}")
            self.loading = spec
        self._emit(Event.POLICY)
        try:
            try:
                policy = dataclasses.replace(options, spec=spec).load(list(self.rig.cameras), self.rig.robot.n_joints)
            except Exception as exc:  # any failure of a loader or a connection is a message, never a traceback
                raise OperatorError(one_line(exc)) from exc
            problem = self._mismatch(policy.info)
            if problem is not None:
                policy.close()
                raise OperatorError(problem)
            freeze_long_lived(collect=not self.rig.loop.running)  # a checkpoint brought torch
            with self._lock:
                old, self.policy = self.policy, policy
                self.load_options = dataclasses.replace(options, spec=spec)
            if old is not None and old is not policy:
                old.close()
            self.say(f"loaded {describe_policy(policy.info, spec)}")
            return policy.info
        finally:
            self.loading = None
            self._emit(Event.POLICY)

    def _mismatch(self, info: PolicyInfo) -> str | None:
        n = self.rig.robot.n_joints
        if info.action_kind is ActionKind.JOINT and info.action_dim != n:
            return (f"the policy answers {info.action_dim} joint targets but this robot has {n} joints: "
                    "it was trained for another robot")
        return None

    def check_can_start_rollout(self, options: RolloutOptions | None = None) -> None:
        """Raise :class:`OperatorError` saying why a rollout cannot start now."""
        if self.loading is not None:
            raise OperatorError(f"still loading {self.loading}: wait until it is ready")
        if self.policy is None:
            raise OperatorError("nothing is loaded: enter a checkpoint file or a server address, then Load / Connect")
        self._check_can_start(RunKind.ROLLOUT, needs_task=options is not None and options.record)
        starting = [name for name, cam in self.rig.cameras.items() if cam.latest() is None and not cam.error]
        if starting:
            raise OperatorError(f"waiting for the first frame of camera {', '.join(starting)}: start again in a moment")
        if options is not None and options.takeover is not None and options.takeover.input is not None \
                and options.takeover.input not in self.rig.inputs:
            raise OperatorError(f"this rig has no input {options.takeover.input!r} to take over with "
                                f"(inputs: {', '.join(self.rig.inputs) or 'none'})")

    def start_rollout(self, options: RolloutOptions, rules: EndRules | None = None) -> Run:
        """Hand the robot to a fresh runner of the loaded policy; record it as an episode if asked."""
        with self._lock:
            self.check_can_start_rollout(options)
            self.rig.robot.set_task(self.task)
            policy, load = self.policy, self.load_options
            strategy = options.strategy.build(options.executed_length(policy.info.chunk_length),
                                              policy.info.continues, self.rig.config.rate_hz)
            try:
                runner = runner_for(self.rig, policy, strategy, self.task, timeout_s=load.timeout_s,
                                    image_size=None if policy.info.resizes_images else options.image_size,
                                    speed=options.speed, ablate=options.ablate)
            except (ValueError, KeyError) as exc:
                raise OperatorError(one_line(exc)) from exc
            if options.reset_scene and self.rig.robot.can_reset_scene:
                self.reset_scene()
            runner.reset()  # a new episode: the policy's own reset runs before its first inference
            if self.mode is Mode.TELEOP:
                self.rig.modes.set_mode(Mode.IDLE, reason="policy starting")
            takeovers_before = self.rig.loop.takeovers  # a takeover may come on the very first tick
            try:
                self.rig.loop.start_policy(runner, takeover=options.takeover)
            except (ValueError, RuntimeError) as exc:  # InvalidTransition is a RuntimeError
                raise OperatorError(one_line(exc)) from exc
            run = Run(RunKind.ROLLOUT, policy.info.name or load.spec, rules or EndRules(),
                      notes=f"policy {load.spec}, {options.describe(policy.info.continues)}",
                      takeovers_before=takeovers_before, runner=runner,
                      strategy=options.strategy.describe(policy.info.continues), takeover=options.takeover)
            self.run = run
            if options.record:
                try:
                    run.episode = self._start_recording(run.notes)
                except OperatorError as exc:
                    self.rig.loop.stop_policy(Mode.IDLE)
                    run.t_end = time.monotonic()
                    raise OperatorError(f"not started: {exc}") from exc
        self.say(f"running {describe_policy(policy.info, load.spec)}"
                 + (f", recording {run.episode.name}" if run.episode is not None else ""))
        self._emit(Event.RUN)
        return run

    def stop_rollout(self, why: str = "the operator") -> RunResult | None:
        """End the running rollout (its episode is kept, labelled by what the robot reported); None if none runs."""
        with self._lock:
            run = self.running
            if run is None or run.kind is not RunKind.ROLLOUT:
                return None
            return self._end_run(EndReason.OPERATOR, detail=why)

    def take_over(self) -> bool:
        """The human drives now (the takeover input, else the active input) until :meth:`hand_back`."""
        with self._lock:
            run = self.running
            if run is None or run.kind is not RunKind.ROLLOUT:
                raise OperatorError("no policy is running")
            ok = bool(self.rig.loop.take_over("takeover button").result(timeout=LOOP_CALL_TIMEOUT_S))
        return ok

    def hand_back(self) -> bool:
        """Give the robot back to the policy; it joins from where the human left the arm."""
        with self._lock:
            run = self.running
            if run is None or run.kind is not RunKind.ROLLOUT:
                raise OperatorError("no policy is running")
            return bool(self.rig.loop.hand_back().result(timeout=LOOP_CALL_TIMEOUT_S))

    def start_replay(self, path: str | Path, ramp_speed: float | None = None) -> Run:
        """Play the kept range of a recorded episode on the robot, through the loop and its safety filter.

        The robot first ramps from where it was commanded to the episode's first
        target at ``ramp_speed`` (default: the rig's). Refused while anything else runs.
        """
        path = Path(path)
        with self._lock:
            self._check_can_start(RunKind.REPLAY, needs_task=False)
            traj = Trajectory.from_episode(path)
            robot_joints = tuple(self.rig.robot.joint_names)
            if traj.joint_names != robot_joints:
                raise ReplayError(f"{path.name} was recorded with joints {', '.join(traj.joint_names)}; "
                                  f"this robot has {', '.join(robot_joints)}")
            loop = self.rig.loop
            inp = ReplayInput(traj, ramp_speed=ramp_speed or self.rig.config.safety.ramp_speed,
                              on_finished=self._wake.set, reached=self._commanded, label=path.name)
            previous = (self.mode, loop.active_input)

            def take() -> None:  # on the loop thread, between two ticks
                last = loop.latest()
                inp.set_start_pose(last.command if last is not None else self.rig.robot.read().joint_pos)
                loop.attach_input(inp).result()  # on the loop thread these run at once
                loop.set_active_input(inp.name).result()
                if self.mode is not Mode.REPLAY:
                    self.rig.modes.set_mode(Mode.REPLAY, reason=f"replay {path.name}")

            try:
                loop.call_soon(take).result(timeout=LOOP_CALL_TIMEOUT_S)
            except InvalidTransition as exc:
                loop.call_soon(lambda: self._give_back(inp, previous)).result(timeout=LOOP_CALL_TIMEOUT_S)
                raise ReplayError(str(exc)) from None
            self.run = Run(RunKind.REPLAY, path.name, EndRules(), replay=inp, previous=previous)
        self.say(f"replaying {path.name} on the robot")
        self._emit(Event.RUN)
        return self.run

    def stop_replay(self) -> RunResult | None:
        with self._lock:
            run = self.running
            if run is None or run.kind is not RunKind.REPLAY:
                return None
            return self._end_run(EndReason.OPERATOR)

    def _commanded(self, target: object) -> bool:
        """The last command the loop sent (after the safety filter) was ``target``."""
        import numpy as np

        last = self.rig.loop.latest()
        return last is not None and last.command.shape == np.shape(target) and bool(
            np.allclose(last.command, target, atol=1e-6))

    def _give_back(self, inp: ReplayInput, previous: tuple[Mode, str | None]) -> None:
        """On the loop thread: remove the replay input and restore the mode and input it replaced."""
        loop = self.rig.loop
        mode, active = previous
        if inp.name in loop.inputs:
            loop.detach_input(inp.name).result()
        loop.set_active_input(active if active in loop.inputs else None).result()
        if self.mode is Mode.REPLAY:
            self.rig.modes.set_mode(mode if mode is Mode.TELEOP else Mode.IDLE, reason="replay over")

    def reset_scene(self, seed: int | None = None) -> bool:
        """Put the cube somewhere new (sim); False where the robot cannot reset itself."""
        with self._lock:
            if self.stopped:
                raise OperatorError("the robot is stopped: re-arm it before resetting the scene (a reset moves the arm)")
            if self.recording:
                raise OperatorError("keep or discard the episode before resetting the scene")
            ok = bool(self.rig.loop.reset_scene(seed).result(timeout=5))
        self.say("scene reset" if ok else "this robot cannot reset its scene: set it up by hand")
        return ok

    # -- ending runs (the one place) ---------------------------------------------------------
    def _end_run(self, reason: EndReason, *, label: bool | None = None, labelled: bool = False,
                 discard: bool = False, detail: str = "") -> RunResult | None:
        """End the running run for ``reason``; its episode is finalized with its label and notes."""
        with self._lock:
            run = self.running
            if run is None:
                return None
            kill_reason = self.rig.kill.reason if reason is EndReason.KILL else None
            self._note_judgement(run, time.monotonic())
            takeovers = self.takeovers(run)
            if run.kind is RunKind.ROLLOUT:
                # Detach the runner first without changing the mode: with no runner the loop holds the robot
                # while the episode is finalized, and those last ticks stay in the rollout's episode.
                self.rig.loop.stop_policy(mode=self.mode)
            elif run.kind is RunKind.REPLAY:
                inp, previous = run.replay, run.previous
                self.rig.loop.call_soon(lambda: self._give_back(inp, previous)).result(timeout=LOOP_CALL_TIMEOUT_S)
            run.t_end = time.monotonic()
            can_tell = self.rig.robot.success() is not None
            outcome, path, why = self._finish_episode(run, reason, label, labelled, discard, kill_reason, takeovers,
                                                      can_tell)
            if run.kind is RunKind.ROLLOUT and self.mode in (Mode.POLICY, Mode.INTERVENTION):
                self.rig.modes.set_mode(Mode.IDLE, reason="policy stopped")
            detail = detail or (run.wrong_object if reason is EndReason.WRONG_OBJECT else "")
            run.result = RunResult(run.kind, reason, outcome, run.elapsed_s, path, why or kill_reason or detail,
                                   takeovers)
            self._ended.notify_all()
        self.say(self._describe_end(run.result), error=reason in (EndReason.KILL, EndReason.WRITE_FAILURE))
        self._emit(Event.RUN)
        if path is not None:
            self._emit(Event.DATASET)
        return run.result

    def _finish_episode(self, run: Run, reason: EndReason, label: bool | None, labelled: bool, discard: bool,
                        kill_reason: str | None, takeovers: int, can_tell: bool) -> tuple[str, Path | None, str]:
        """Stop the run's recording: ``(outcome, path or None, why it failed)``."""
        if run.episode is None or not self.recording or self.recorder.path != run.episode:
            return ("played" if run.kind is RunKind.REPLAY and reason is EndReason.FINISHED else "stopped"), None, ""
        if discard:
            self.recorder.discard()
            return "discarded", None, ""
        success = success_label(run, reason, can_tell, label, labelled)
        notes = episode_notes(run, reason, kill_reason, takeovers)
        deadline = time.monotonic() + FIRST_TICK_TIMEOUT_S
        while not self.recorder.has_ticks and self.recorder.error is None and time.monotonic() < deadline:
            time.sleep(0.005)  # ended in its first milliseconds (a kill): the loop's next tick still shows it
        if reason is EndReason.KILL:  # the episode shows the hold: wait for the tick that sent it
            self._wait_for_hold(deadline)
        try:
            path = self.recorder.stop_episode(success=success, notes=notes,
                                              wrong_object=run.t_wrong_object is not None)
        except RecordingError as exc:
            return "failed", (run.episode if run.episode.exists() else None), str(exc)
        return OUTCOME_OF_LABEL[success], path, ""

    def _wait_for_hold(self, deadline: float) -> None:
        """Until the loop has published a tick that held the robot after the kill switch latched."""
        kill, loop = self.rig.kill, self.rig.loop
        while time.monotonic() < deadline and loop.running:
            last = loop.latest()
            if last is not None and last.killed and kill.t_trigger is not None and last.t_sent >= kill.t_trigger:
                return
            time.sleep(0.002)

    @staticmethod
    def _describe_end(result: RunResult) -> str:
        what = {RunKind.EPISODE: "episode", RunKind.ROLLOUT: "policy", RunKind.REPLAY: "replay"}[result.kind]
        name = result.path.name if result.path is not None else what
        if result.outcome == "failed":
            return f"RECORDING STOPPED: {result.detail}"
        if result.reason is EndReason.KILL:
            head = f"{name} stopped by the kill switch ({result.detail})"
        elif result.outcome == "discarded":
            return f"{name} discarded ({result.duration_s:.1f} s)"
        else:
            head = f"{name} ended ({result.reason.value}{': ' + result.detail if result.detail else ''})"
        takeovers = f", {result.takeovers} takeover(s)" if result.takeovers else ""
        kept = f"; kept as {result.outcome}" if result.path is not None else ""
        return f"{head} after {result.duration_s:.1f} s{takeovers}{kept}"

    def wait_for_end(self, run: Run, timeout: float | None = None) -> RunResult | None:
        """Block until ``run`` has ended (by its rules, a kill, the operator…); its result, or None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while run.result is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._ended.wait(remaining if remaining is not None else 0.5)
            return run.result

    # -- the supervisor ----------------------------------------------------------------------
    def _supervise_forever(self) -> None:
        while not self._closing.is_set():
            self._wake.wait(SUPERVISE_S)
            self._wake.clear()
            if self._closing.is_set():
                return
            try:
                self.supervise()
            except Exception as exc:  # the supervisor must outlive any one failure, and say what it was
                self.say(f"could not end the run: {one_line(exc)}", error=True)

    def supervise(self) -> None:
        """One pass of the supervisor (also callable directly, e.g. by a test): see the module docstring."""
        with self._lock:
            run = self.running
            if run is not None:
                reason = self._ending(run)
                if reason is not None:
                    self._end_run(reason)
            presses = self.rig.loop.episode_presses
            if presses != self._episode_presses:
                self._episode_presses = presses
                self._episode_button()

    def _ending(self, run: Run) -> EndReason | None:
        """Why ``run`` must end now, if it must."""
        if run.episode is not None and self.recording and self.recorder.error is not None:
            return EndReason.WRITE_FAILURE
        if self.stopped:
            return EndReason.KILL
        if run.kind is RunKind.REPLAY:
            return EndReason.FINISHED if run.replay.finished else None
        now = time.monotonic()
        self._note_judgement(run, now)
        rules = run.rules
        if rules.after_success_s is not None and run.t_success is not None \
                and now - run.t_success >= rules.after_success_s:
            return EndReason.SUCCESS
        if rules.after_success_s is not None and run.t_wrong_object is not None \
                and now - run.t_wrong_object >= rules.after_success_s:
            return EndReason.WRONG_OBJECT
        if rules.time_limit_s is not None and now - run.t_start >= rules.time_limit_s:
            return EndReason.TIME_LIMIT
        return None

    def _note_judgement(self, run: Run, now: float) -> None:
        """Note the first moment the robot reports success, and a wrong-object pick (with what it says)."""
        robot = self.rig.robot
        if run.t_success is None and robot.success():
            run.t_success = now
        if run.t_wrong_object is None:
            wrong = robot.wrong_object()
            if wrong:
                run.t_wrong_object, run.wrong_object = now, wrong

    def _episode_button(self) -> None:
        """The driving input's episode button: start an episode, or end it, labelled by the robot's judgement."""
        run = self.running
        try:
            if run is None:
                self.start_episode()
            elif run.kind is RunKind.EPISODE:
                self._end_run(EndReason.OPERATOR, detail="episode button")
        except OperatorError as exc:
            self.say(str(exc), error=True)

    # -- batches (collect, run-policy) -------------------------------------------------------
    def run_batch(self, plan: BatchPlan, progress: Callable[[int, int, str], None] | None = None) -> BatchReport:
        """Record ``plan.runs`` runs one after another; stops early after a kill or a write failure."""
        results: list[RunResult] = []
        for i in range(plan.runs):
            if progress is not None:
                progress(i, plan.runs, f"{'rollout' if plan.rollout else 'episode'} {i + 1}")
            if plan.tasks:
                self.set_task(plan.tasks[i % len(plan.tasks)])
            if plan.rollout is None and self.mode is Mode.TELEOP:
                self.set_teleop(False)  # the input waits for its episode, which then holds the whole demonstration
            self.reset_scene(None if plan.seed is None else plan.seed + i)
            wait_for_fresh_frames(self.rig, since=time.monotonic())
            if plan.rollout is not None:
                run = self.start_rollout(dataclasses.replace(plan.rollout, record=True, reset_scene=False),
                                         plan.rules)
            else:
                self.start_episode(plan.rules)
                run = self.run
            result = self.wait_for_end(run)
            results.append(result)
            if result.stops_a_batch:
                break
        if progress is not None:
            progress(plan.runs, plan.runs, "done")
        return BatchReport(results)
