"""Recording a batch of episodes without a window: `collect` (human or scripted input) and `run-policy`.

Each episode: reset the scene, wait until every camera shows the new scene (so
neither the first recorded frames nor a policy's first observation show the
previous episode), let the caller hand the robot over (``begin``),
record until the robot reports success (plus ``after_success`` seconds), the time
runs out, or the kill switch latches; then take the robot back (``end``) and label
the episode from the robot's own success detector. A kill ends the batch: the
episode is labelled a failure with the reason in its notes and nothing re-arms
behind the user's back.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from recordings import edit
from recordings.recorder import Recorder, RecordingError
from teleop_app.cli.progress import Progress
from teleop_app.rig import Rig


FRESH_FRAME_TIMEOUT_S = 5.0
FIRST_TICK_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Outcome:
    path: Path
    success: bool
    seconds: float


@dataclass
class Batch:
    outcomes: list[Outcome]
    stopped: str | None  # the kill switch's reason, when a kill ended the batch
    failed: str | None = None  # why an episode could not be written (full disk, …), when that ended the batch

    def report(self, what: str, out: TextIO | None = None, err: TextIO | None = None) -> None:
        """One line per episode on ``out`` (stdout); the tally (and the kill, if any) on ``err`` (stderr)."""
        out, err = out or sys.stdout, err or sys.stderr
        for o in self.outcomes:
            print(f"{o.path}  {'success' if o.success else 'failure'}  {o.seconds:.1f} s", file=out)
        ok = sum(o.success for o in self.outcomes)
        folder = self.outcomes[0].path.parent if self.outcomes else "."
        print(f"{ok}/{len(self.outcomes)} successful {what} in {folder}", file=err)
        if self.stopped is not None:
            print(f"error: stopped by the kill switch ({self.stopped}); the last episode is labelled a failure "
                  "with that note", file=err)
        if self.failed is not None:
            print(f"error: recording stopped: {self.failed}", file=err)

    @property
    def ok(self) -> bool:
        """Every episode ran to its end and was written."""
        return self.stopped is None and self.failed is None


def wait_for_fresh_frames(rig: Rig, since: float, timeout: float = FRESH_FRAME_TIMEOUT_S) -> bool:
    """Wait until every camera has a frame captured after ``since``; False if one had none within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all((f := cam.latest()) is not None and f.t_capture > since for cam in rig.cameras.values()):
            return True
        time.sleep(0.01)
    return False


def record_episodes(
    rig: Rig,
    recorder: Recorder,
    *,
    episodes: int,
    seconds: float,
    task: str,
    operator: str = "",
    notes: str = "",
    seed: int | None = None,
    after_success: float = 1.0,
    begin: Callable[[], None] = lambda: None,
    end: Callable[[], str | None] = lambda: None,
    label: str = "episode",
) -> Batch:
    """Record ``episodes`` episodes of at most ``seconds`` each; scene ``i`` is reset with ``seed + i``.

    What ``end`` returns (if anything) is added to that episode's notes.
    """
    outcomes: list[Outcome] = []
    stopped = failed = None
    progress = Progress(label)
    try:
        for i in range(episodes):
            progress(i, episodes, f"episode {i + 1}")
            rig.loop.reset_scene(None if seed is None else seed + i).result(timeout=5)
            wait_for_fresh_frames(rig, since=time.monotonic())
            begin()
            rig.session.start_recording(reason=label)
            path = recorder.start_episode(task, operator=operator, notes=notes)
            t0 = time.monotonic()
            # The loop ticks even while killed (it holds): wait for the first tick, so that a kill in
            # the first milliseconds still leaves an episode that shows it.
            while not recorder.has_ticks and time.monotonic() - t0 < FIRST_TICK_TIMEOUT_S:
                time.sleep(0.005)
            t_success = None
            while time.monotonic() - t0 < seconds and not rig.kill.latched and recorder.error is None:
                if t_success is None and rig.robot.success():
                    t_success = time.monotonic()
                if t_success is not None and time.monotonic() - t_success >= after_success:
                    break
                time.sleep(0.02)
            killed = rig.kill.reason if rig.kill.latched else None
            success = bool(rig.robot.success()) and killed is None
            try:
                recorder.stop_episode(success=success)
            except RecordingError as exc:  # the writer failed: a full disk, …; the next episode would too
                failed = str(exc)
            rig.session.stop_recording(reason=label)
            ended = end()
            if failed is not None:
                break
            outcomes.append(Outcome(path, success, time.monotonic() - t0))
            more = [m for m in (ended, killed and f"stopped by the kill switch: {killed}") if m]
            if more:
                edit.label(path, notes="; ".join(n for n in (notes, *more) if n))
            if killed is not None:
                stopped = killed
                break
        progress(episodes, episodes, "done")
    finally:
        progress.close()
    return Batch(outcomes, stopped, failed)
