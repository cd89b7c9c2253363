"""What every command that drives the robot shares: its rig, its operator session, Ctrl+C, its report.

``teleop``, ``collect``, ``run-policy`` and ``episodes replay`` are thin drivers of
:class:`~teleop_app.operator_session.OperatorSession`, as the window is: the
session decides when a run ends and what a kill means; a command only starts
runs and prints what happened. Ctrl+C (SIGINT) and SIGTERM are STOP: the robot
holds on the next tick and the running run ends as any kill ends it.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from teleop_app.gc_pauses import freeze_long_lived
from teleop_app.operator_session import BatchReport, OperatorSession
from teleop_app import rig as rig_module
from teleop_app.rig import Rig
from teleop_app.runs import AFTER_SUCCESS_S, EndReason, Run, kept_text


def batch_tasks(values: list[str]) -> tuple[str, ...]:
    """The ``--task`` sentences of a batch (given once or more: run ``i`` gets sentence ``i`` mod their count)."""
    tasks = tuple(t.strip() for t in values)
    if not all(tasks):
        raise ValueError("--task needs a sentence (what the robot should do), not an empty string")
    return tasks


def add_batch_arguments(p: argparse.ArgumentParser) -> None:
    """What every batch of recorded episodes (``collect``, ``run-policy``) takes besides its own options."""
    p.add_argument("--operator", default="")
    p.add_argument("--rig", default=None)
    p.add_argument("--seed", type=int, default=None, help="seed of the first scene reset; +1 per episode")
    p.add_argument("--no-cameras", action="store_true")
    p.add_argument("--after-success", type=float, default=AFTER_SUCCESS_S,
                   help="keep recording this long after the sim reports success (s)")


def rig_from_args(args: argparse.Namespace, active_input: str | None = None) -> Rig:
    """The rig of ``--rig`` (default: the simulated SO-101), without cameras for ``--no-cameras``."""
    from teleop_app.config import load_rig

    config = load_rig(args.rig)
    if getattr(args, "no_cameras", False):
        config = config.without_cameras()
    if active_input is None and getattr(args, "input", None) is None and config.inputs:
        active_input = config.inputs[0].name
    return rig_module.build_rig(config, active_input=active_input or getattr(args, "input", None))


@contextmanager
def running(session: OperatorSession, err: TextIO | None = None) -> Iterator[OperatorSession]:
    """Start the session (its rig, its supervisor) with Ctrl+C and SIGTERM as STOP; close it afterwards.

    A run that a signal (or the closing) ends is named on stderr with what became of its episode, so a
    Ctrl+C never keeps a file without saying which file and with which label.
    """
    signalled: list[tuple[str, Run | None]] = []

    def stop(signum: int, _frame: object) -> None:
        why = "Ctrl+C" if signum == signal.SIGINT else signal.Signals(signum).name
        signalled.append((why, session.running))  # plain attribute reads: the session's lock may be held here
        session.stop(why)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        freeze_long_lived()  # modules, the rig (and a loaded policy) live as long as the command: keep GC off the loop
        session.start()
        yield session
    finally:
        closing = session.running
        session.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _say_what_was_kept([*signalled, ("on closing", closing)], err or sys.stderr)


def _say_what_was_kept(endings: list[tuple[str, Run | None]], err: TextIO) -> None:
    """One line per recorded run that a signal or the closing ended: its file and its label."""
    named: set[int] = set()
    for why, run in endings:
        text = kept_text(run)
        if text is not None and id(run) not in named:
            named.add(id(run))
            print(f"{why}: {text}", file=err)


def report_batch(report: BatchReport, what: str, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """One line per kept episode on stdout, the tally and what stopped the batch on stderr; the exit status."""
    out, err = out or sys.stdout, err or sys.stderr
    kept = [r for r in report.results if r.path is not None and r.outcome != "failed"]
    for r in kept:
        wrong = f"  ({r.reason.value}: {r.detail})" if r.reason is EndReason.WRONG_OBJECT else ""
        print(f"{r.path}  {r.outcome}  {r.duration_s:.1f} s{wrong}", file=out)
    ok = sum(r.outcome == "success" for r in kept)
    folder = kept[0].path.parent if kept else Path(".")
    print(f"{ok}/{len(kept)} successful {what} in {folder}", file=err)
    stopped = report.stopped_by
    if stopped is not None and stopped.outcome == "failed":
        print(f"error: recording stopped: {stopped.detail}", file=err)
    elif stopped is not None:
        print(f"error: stopped by the kill switch ({stopped.detail}); the last episode is labelled a failure "
              "with that note", file=err)
    return 0 if stopped is None else 1
