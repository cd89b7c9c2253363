"""What the operator console does, as plain Python: the GUI only observes it and forwards intent.

One :class:`Console` owns a running rig and a recorder. It knows the dataset
folder, the task sentence, which input drives, and whether an episode is being
recorded; it starts, keeps (as success or failure) and discards episodes, resets
the scene, stops the robot and re-arms it. Every change is announced to
listeners (``fn(event: str)``) so views can refresh without polling the model's
internals, and every method works from tests and scripts without Qt.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drivers.base import DeviceError
from recordings import edit
from recordings.library import episode_files
from recordings.recorder import Recorder, RecordingError
from teleop_app.replay import Replayer
from teleop_app.rig import Rig
from teleop_app.session import InvalidTransition, Mode

STOP_REASON = "STOP pressed"


class ConsoleError(RuntimeError):
    """An operator action that cannot be done now; the message says why and what to do."""


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


@dataclass(frozen=True)
class EpisodeResult:
    path: Path | None  # None when discarded
    outcome: str  # "success", "failure", "unlabelled", "discarded" or "failed" (could not be written)
    duration_s: float
    error: str = ""  # why a "failed" episode could not be written, and what to do


class Console:
    def __init__(self, rig: Rig, dataset_dir: str | Path, task: str = "", operator: str = "") -> None:
        self.rig = rig
        self.task = task
        self.operator = operator
        self.recorder = Recorder.for_rig(rig, dataset_dir)
        self.replayer = Replayer(rig)  # replay on the robot, started from the review tab
        self.replayer.add_listener(lambda event: self._emit("mode"))
        self.last_result: EpisodeResult | None = None
        self.message = ""  # the latest thing the operator should read (status line)
        self._seen_presses: dict[tuple[str, str], int] = {}
        self._notes = ""  # the running episode's notes
        self._listeners: list[Callable[[str], None]] = []
        rig.kill.add_listener(lambda latched, reason: self._emit("kill"))

    # -- observing ---------------------------------------------------------------------------
    def add_listener(self, fn: Callable[[str], None]) -> None:
        """``fn(event)`` after each change; events: dataset, task, input, mode, recording, episode, kill, message."""
        self._listeners.append(fn)

    def _emit(self, event: str) -> None:
        for fn in list(self._listeners):
            fn(event)

    def say(self, text: str) -> None:
        """Show ``text`` to the operator (the status line)."""
        self.message = text
        self._emit("message")

    @property
    def dataset_dir(self) -> Path:
        return self.recorder.dataset_dir

    @property
    def recording(self) -> bool:
        return self.recorder.recording

    @property
    def episode_count(self) -> int:
        """Episodes kept in the dataset folder (the trash and the one being recorded not included)."""
        files = episode_files(self.dataset_dir)
        return len([f for f in files if not (self.recording and f == self.recorder.path)])

    @property
    def active_input(self) -> str | None:
        return self.rig.loop.active_input

    @property
    def mode(self) -> Mode:
        return self.rig.session.mode

    @property
    def stopped(self) -> bool:
        return self.rig.kill.latched

    def free_disk_bytes(self) -> int | None:
        folder = self.dataset_dir
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            return None

    # -- settings ----------------------------------------------------------------------------
    def set_dataset_dir(self, folder: str | Path) -> None:
        if self.recording:
            raise ConsoleError("stop the episode before changing the dataset folder")
        self.recorder.dataset_dir = Path(folder).expanduser()
        self._emit("dataset")

    def set_task(self, task: str) -> None:
        self.task = task.strip()
        self._emit("task")

    def set_active_input(self, name: str) -> None:
        if name not in self.rig.inputs:
            raise ConsoleError(f"this rig has no input {name!r} (inputs: {', '.join(self.rig.inputs)})")
        if self.mode in (Mode.TELEOP, Mode.INTERVENTION):
            self._check_can_drive(name)
        self.rig.loop.call_soon(lambda: setattr(self.rig.loop, "active_input", name)).result(timeout=2)
        self._emit("input")

    def set_teleop(self, on: bool) -> None:
        """Hand the robot to the active input (on) or let it hold still (off)."""
        if on:
            self._check_can_drive(self.active_input)
        try:
            self.rig.session.set_mode(Mode.TELEOP if on else Mode.IDLE, reason="console")
        except InvalidTransition as exc:
            raise ConsoleError(str(exc)) from exc
        self._emit("mode")

    def _check_can_drive(self, name: str | None) -> None:
        try:
            check_can_drive(self.rig, name)
        except DeviceError as exc:
            raise ConsoleError(f"{exc} — move the leader arm to match the robot, then try again") from exc

    # -- episodes ----------------------------------------------------------------------------
    def start_episode(self, notes: str = "") -> Path:
        if self.recording:
            raise ConsoleError("an episode is already being recorded")
        if not self.task:
            raise ConsoleError("type a task sentence first (what the robot should do)")
        if self.stopped:
            raise ConsoleError("the robot is stopped: re-arm it before recording")
        if self.mode is Mode.IDLE:
            self.set_teleop(True)
        try:
            path = self.recorder.start_episode(self.task, operator=self.operator, notes=notes)
            self._notes = notes
            self.rig.session.start_recording(reason="console")
        except (RecordingError, InvalidTransition) as exc:
            if self.recorder.recording:
                self.recorder.discard()
            raise ConsoleError(str(exc)) from exc
        self.say(f"recording {path.name}")
        self._emit("recording")
        return path

    def keep(self, success: bool | None) -> EpisodeResult:
        """Stop the episode and keep it, labelled a success or a failure (None: unlabelled, for review)."""
        if not self.recording:
            raise ConsoleError("no episode is being recorded")
        self.rig.session.stop_recording(reason="console")
        try:
            path = self.recorder.stop_episode(success=success)
        except RecordingError as exc:
            self.say(str(exc))
            self._emit("recording")
            raise ConsoleError(str(exc)) from exc
        if self.stopped:
            kill_note = f"stopped by the kill switch: {self.rig.kill.reason}"
            edit.label(path, notes=f"{self._notes}; {kill_note}" if self._notes else kill_note)
        outcome = {True: "success", False: "failure", None: "unlabelled"}[success]
        result = EpisodeResult(path, outcome, self.recorder.elapsed_s)
        return self._finished(result)

    def discard(self) -> EpisodeResult:
        if not self.recording:
            raise ConsoleError("no episode is being recorded")
        self.rig.session.stop_recording(reason="console")
        elapsed = self.recorder.elapsed_s
        self.recorder.discard()
        return self._finished(EpisodeResult(None, "discarded", elapsed))

    def _finished(self, result: EpisodeResult) -> EpisodeResult:
        self.last_result = result
        name = result.path.name if result.path else "episode"
        self.say(f"{name} {'kept as ' + result.outcome if result.path else 'discarded'} "
                  f"({result.duration_s:.1f} s)")
        self._emit("recording")
        self._emit("episode")
        return result

    @property
    def elapsed_s(self) -> float:
        return self.recorder.elapsed_s if self.recording else 0.0

    def reset_scene(self, seed: int | None = None) -> bool:
        """Put the cube somewhere new (sim); False where the robot cannot reset itself."""
        ok = bool(self.rig.loop.reset_scene(seed).result(timeout=5))
        self.say("scene reset" if ok else "this robot cannot reset its scene: set it up by hand")
        return ok

    def poll(self) -> None:
        """The window calls this on its timer: a recording that can no longer be written, then device buttons.

        A failed recording (full disk, …) is stopped at once, so nobody goes on
        demonstrating into a file that no longer grows; the operator is told why.
        ``kill`` on any input is STOP. ``episode`` on the driving input starts an
        episode, or ends it: kept as a success or failure where the robot can tell
        (a sim), else kept unlabelled for the review tab.
        """
        if self.recording and self.recorder.error is not None:
            self._recording_failed()
        for name, device in self.rig.inputs.items():
            if self._new_presses(name, device, "kill"):
                self.stop(f"kill button on {name}")
        name = self.active_input
        if name is None or not self._new_presses(name, self.rig.inputs[name], "episode"):
            return
        try:
            if not self.recording:
                self.start_episode()
            else:
                self.keep(self.rig.robot.success())
        except ConsoleError as exc:
            self.say(str(exc))

    def _recording_failed(self) -> None:
        elapsed = self.recorder.elapsed_s
        path = self.recorder.path
        self.rig.session.stop_recording(reason="recording failed")
        error = self.recorder.error
        try:
            self.recorder.stop_episode(success=None)
        except RecordingError as exc:
            error = str(exc)  # the file, the cause, what to do, and the repair
        self.last_result = EpisodeResult(path, "failed", elapsed, error=error)
        self.say(f"RECORDING STOPPED: {error}")
        self._emit("recording")
        self._emit("episode")

    def _new_presses(self, name: str, device: object, role: str) -> bool:
        count = device.presses(role)
        seen = self._seen_presses.setdefault((name, role), count)
        self._seen_presses[(name, role)] = count
        return count > seen

    # -- safety ------------------------------------------------------------------------------
    def stop(self, reason: str = STOP_REASON) -> None:
        """The STOP button: the loop holds the robot on its next tick, whatever drives it."""
        self.rig.kill.trigger(reason)
        self.say(f"STOPPED ({reason}). Re-arm to move again.")

    def rearm(self) -> None:
        """Let the robot move again after a stop; it continues from where it was held."""
        if not self.stopped:
            return
        self.rig.kill.rearm()
        self.say("re-armed: the robot follows the active input again")

    def close(self) -> None:
        """Stop a replay, keep a running episode as unlabelled rather than lose it, then stop the rig."""
        if self.replayer.active:
            self.replayer.stop()
        if self.recording:
            try:
                self.rig.session.stop_recording(reason="closing")
                self.recorder.stop_episode(success=None)
            except (RecordingError, InvalidTransition):
                pass
        self.rig.close()
