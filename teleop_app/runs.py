"""What a run of the operator's work is, how it ends, and what its ending means — decided here, once.

A *run* is one episode driven by an input device (a human or a scripted expert),
one policy rollout, or one replay of a recorded episode. Every entry point (the
window, ``teleop``, ``collect``, ``run-policy``, ``episodes replay``) starts runs
through :class:`~teleop_app.operator_session.OperatorSession`, so a run ends for
the same reasons everywhere, and an ending means the same everywhere:

=================  ===========================================================
``SUCCESS``        the robot reported success and held it for ``after_success_s``: kept as a success
``WRONG_OBJECT``   the robot reported an object the task did not name picked, for ``after_success_s``:
                   kept as a failure, marked as a wrong-object pick, with what was picked in its notes
``TIME_LIMIT``     ``time_limit_s`` passed: kept, labelled by what the robot reported during the run
``KILL``           the kill switch latched: the robot holds, the run is over (a re-arm never resumes
                   it), its episode is kept as a failure with the reason in its notes, a batch stops
``WRITE_FAILURE``  the episode could not be written (full disk, …): the file is left for repair, a batch stops
``OPERATOR``       a person ended it: with a label (keep as success/failure) or without one (labelled
                   by what the robot reported)
``FINISHED``       a replay played to its end
``CLOSING``        the program is closing: an episode is kept unlabelled rather than lost
=================  ===========================================================

"Labelled by what the robot reported" is: a success if the robot reported
success at any moment of the run and no wrong-object pick, a failure if it can
tell and never did (or reported a wrong pick), and unlabelled (left for review)
where it cannot tell (real hardware). An episode in which the robot reported a
wrong-object pick is recorded as one (``wrong_object`` in the file), whatever
ended it.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class RunKind(enum.Enum):
    EPISODE = "episode"  # the active input drives (human or scripted), recorded
    ROLLOUT = "rollout"  # a policy drives (a human may take over), recorded if asked
    REPLAY = "replay"  # a recorded episode plays back through the safety filter


class EndReason(enum.Enum):
    SUCCESS = "success"
    WRONG_OBJECT = "wrong object"
    TIME_LIMIT = "time limit"
    KILL = "kill switch"
    WRITE_FAILURE = "write failure"
    OPERATOR = "operator"
    FINISHED = "finished"
    CLOSING = "closing"


AFTER_SUCCESS_S = 1.0
"""How long a run goes on after the robot first reports success, where it ends on success by default."""

STOPS_A_BATCH = (EndReason.KILL, EndReason.WRITE_FAILURE)
"""Endings after which a batch of runs does not go on (nothing re-arms or retries behind the user's back)."""


@dataclass(frozen=True)
class EndRules:
    """When a run ends by itself. None: never for that reason (the operator or a kill ends it)."""

    after_success_s: float | None = None  # end this long after the robot first reports success (or a wrong pick)
    time_limit_s: float | None = None  # end this long after the start

    def __post_init__(self) -> None:
        for name in ("after_success_s", "time_limit_s"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be ≥ 0")


@dataclass(frozen=True)
class RunResult:
    """How a run ended. ``outcome``: success, failure, unlabelled, discarded, failed (not written), or
    played (a replay), stopped (a rollout or replay that was not recorded)."""

    kind: RunKind
    reason: EndReason
    outcome: str
    duration_s: float
    path: Path | None = None  # the episode file, when one was kept (or left for repair)
    detail: str = ""  # the kill switch's reason, or why the episode could not be written
    takeovers: int = 0

    @property
    def stops_a_batch(self) -> bool:
        return self.reason in STOPS_A_BATCH


@dataclass
class Run:
    """The current (or last) run; the session changes it under its lock, views read it."""

    kind: RunKind
    driver: str  # the input's or the policy's name, or the replayed file's
    rules: EndRules
    t_start: float = field(default_factory=time.monotonic)
    episode: Path | None = None  # the file being recorded
    notes: str = ""  # what the episode's notes start with (the policy and strategy of a rollout)
    takeovers_before: int = 0  # the loop's takeover count when the run started
    t_success: float | None = None  # first moment the robot reported success
    t_wrong_object: float | None = None  # first moment the robot reported a wrong-object pick
    wrong_object: str = ""  # what the robot said was picked instead
    t_end: float | None = None
    result: RunResult | None = None
    runner: Any = None  # a rollout's PolicyRunner
    strategy: str = ""  # a rollout's strategy, described
    takeover: Any = None  # a rollout's TakeoverConfig
    replay: Any = None  # a replay's ReplayInput
    previous: Any = None  # a replay's (mode, active input) before it, restored after it

    @property
    def active(self) -> bool:
        return self.t_end is None

    @property
    def elapsed_s(self) -> float:
        return (self.t_end or time.monotonic()) - self.t_start


def judged_success(run: Run, robot_can_tell: bool) -> bool | None:
    """What the robot's own judgement makes of a run (see the module docstring)."""
    if not robot_can_tell:
        return None
    return run.t_success is not None and run.t_wrong_object is None


def success_label(run: Run, reason: EndReason, robot_can_tell: bool, operator_label: bool | None = None,
                  labelled_by_operator: bool = False) -> bool | None:
    """The success label an episode ending for ``reason`` gets (None: unlabelled)."""
    if reason in (EndReason.KILL, EndReason.WRONG_OBJECT):
        return False
    if reason is EndReason.SUCCESS:
        return True
    if reason is EndReason.CLOSING:
        return None
    if labelled_by_operator:
        return operator_label
    return judged_success(run, robot_can_tell)


def episode_notes(run: Run, reason: EndReason, kill_reason: str | None, takeovers: int) -> str:
    """The notes an episode is finalized with: its start notes, takeovers, and why it ended if not normally."""
    parts = [run.notes] if run.notes else []
    if takeovers:
        parts.append(f"{takeovers} human takeover(s)")
    if run.wrong_object:
        parts.append(f"wrong object: {run.wrong_object}")
    if reason is EndReason.KILL:
        parts.append(f"stopped by the kill switch: {kill_reason}")
    elif reason is EndReason.TIME_LIMIT:
        parts.append(f"ended at the time limit ({run.rules.time_limit_s:g} s)")
    elif reason is EndReason.CLOSING:
        parts.append("kept unlabelled when the program closed")
    return "; ".join(parts)


OUTCOME_OF_LABEL = {True: "success", False: "failure", None: "unlabelled"}


def kept_text(run: Run | None) -> str | None:
    """What became of an ended run's episode file, in words ("… kept as a failure"); None without a file."""
    result = None if run is None else run.result
    if result is None or result.path is None:
        return None
    kept = {"failed": f"left for repair ({result.detail})", "unlabelled": "kept unlabelled"}.get(
        result.outcome, f"kept as a {result.outcome}")
    return f"{result.path} {kept}"
