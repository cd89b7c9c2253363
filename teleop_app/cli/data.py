"""``teleop-app collect``, ``episodes …`` and ``export …``: recording and curating datasets headless."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from teleop_app.cli.errors import fail
from teleop_app.cli.progress import Progress
from teleop_app.cli.sessions import add_batch_arguments


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("collect", help="record episodes headless (scripted expert or keyboard)")
    p.add_argument("--headless", action="store_true",
                   help="no window (required: to record by hand, open `teleop-app gui`)")
    p.add_argument("--input", default=None, help="input device name from the rig (default: the rig's first)")
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--seconds", type=float, default=20.0, help="longest episode")
    p.add_argument("--task", required=True, action="append",
                   help="the task sentence stored with every episode; give it more than once to alternate them: "
                        "episode i gets the (i mod k)-th of k sentences, told to the robot before its scene reset "
                        "(--task 'pick up the red cube' --task 'pick up the blue cube' --episodes 100: 50 of each)")
    p.add_argument("--out", type=Path, required=True, help="dataset folder (created if missing)")
    add_batch_arguments(p)

    ep = sub.add_parser("episodes", help="list, inspect, trim, label, delete, restore, repair episodes")
    es = ep.add_subparsers(dest="action", required=True)
    p = es.add_parser("list", help="every episode of a dataset folder")
    p.add_argument("dir", type=Path)
    p.add_argument("--json", action="store_true")
    p.add_argument("--trash", action="store_true", help="list the trash folder instead")
    p = es.add_parser("info", help="one episode in detail")
    p.add_argument("file", type=Path)
    p.add_argument("--json", action="store_true")
    p = es.add_parser("trim", help="keep [start, end] s (non-destructive unless --apply); --auto cuts idle ends")
    p.add_argument("file", type=Path, help="an episode file (with --auto also a dataset folder)")
    p.add_argument("--auto", action="store_true",
                   help="cut the idle start and end found in the recorded motion (a short margin kept)")
    p.add_argument("--dry-run", action="store_true", help="with --auto: print what would be cut, change nothing")
    p.add_argument("--margin", type=float, default=None, help="with --auto: seconds kept around the motion (0.3)")
    p.add_argument("--start", type=float, default=None)
    p.add_argument("--end", type=float, default=None)
    p.add_argument("--apply", action="store_true", help="rewrite the file with only the kept range")
    p.add_argument("--clear", action="store_true", help="keep everything again")
    p = es.add_parser("label", help="set success/failure, task or notes")
    p.add_argument("file", type=Path)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--success", action="store_true")
    g.add_argument("--failure", action="store_true")
    p.add_argument("--task", default=None)
    p.add_argument("--notes", default=None)
    p = es.add_parser("delete", help="move to the dataset's trash folder (restorable)")
    p.add_argument("file", type=Path)
    p = es.add_parser("restore", help="move back from the trash folder")
    p.add_argument("file", type=Path)
    p = es.add_parser("repair", help="make a file left by a crash readable again")
    p.add_argument("file", type=Path)
    p = es.add_parser("check", help="open every episode of a folder and report the damaged and flagged ones")
    p.add_argument("dir", type=Path)
    p.add_argument("--json", action="store_true")
    where = "only episodes meeting KEY=VALUE or KEY!=VALUE (task, success, source, flag); repeat to combine"
    for name, helptext in (("copy", "copy episodes into another dataset (new names; nothing replaced)"),
                           ("move", "move episodes into another dataset (copied and checked first)")):
        p = es.add_parser(name, help=helptext)
        p.add_argument("episodes", nargs="+", help="episode files, dataset folders or glob patterns")
        p.add_argument("--to", type=Path, required=True, help="the destination dataset folder (created if missing)")
        p.add_argument("--where", action="append", default=[], help=where)
    p = es.add_parser("merge", help="copy every episode of several datasets into one")
    p.add_argument("datasets", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True, help="the merged dataset folder (may exist: episodes are added)")
    p.add_argument("--where", action="append", default=[], help=where)
    p = es.add_parser("split", help="copy a dataset's episodes into train and validation datasets, by a seed")
    p.add_argument("episodes", nargs="+", help="episode files, dataset folders or glob patterns")
    p.add_argument("--train", type=Path, required=True)
    p.add_argument("--val", type=Path, required=True)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--where", action="append", default=[], help=where)
    p = es.add_parser("replay", help="play an episode's commanded joints on the robot, through the safety filter")
    p.add_argument("file", type=Path)
    p.add_argument("--rig", default=None, help="the robot to replay on (default: the simulated SO-101)")
    p.add_argument("--no-cameras", action="store_true")
    p.add_argument("--ramp-speed", type=float, default=None,
                   help="rad/s of the fastest joint while moving to the first recorded pose (default 0.5)")

    im = sub.add_parser("import", help="turn a dataset of another format into episode files")
    ims = im.add_subparsers(dest="format", required=True)
    p = ims.add_parser("lerobot", help="LeRobotDataset v3.0 (parquet + mp4)")
    p.add_argument("dir", type=Path, help="the LeRobot dataset folder (with meta/info.json)")
    p.add_argument("--out", type=Path, required=True, help="dataset folder of episode files (created if missing)")

    ex = sub.add_parser("export", help="export a dataset for training code")
    xs = ex.add_subparsers(dest="format", required=True)
    for name, helptext in (("lerobot", "LeRobotDataset v3.0 (parquet + mp4)"), ("aloha", "ALOHA/ACT HDF5")):
        p = xs.add_parser(name, help=helptext)
        p.add_argument("dir", nargs="+", help="dataset folders, episode files or glob patterns")
        p.add_argument("--where", action="append", default=[],
                       help="only episodes meeting KEY=VALUE or KEY!=VALUE (task, success, source, flag)")
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--fps", type=int, default=None, help="grid rate (default: lerobot 30, aloha 50)")
        p.add_argument("--include-failures", action="store_true", help="also export episodes not labelled success")
        if name == "lerobot":
            p.add_argument("--codec", default="h264", help="video encoder: h264 (default), libsvtav1, hevc, …")
            p.add_argument("--workers", type=int, default=None,
                           help="encoder processes (default: one per camera, at most one per core; 0: none)")
        else:
            p.add_argument("--raw", action="store_true",
                           help="store images as raw (T, H, W, 3) arrays instead of ALOHA's compressed JPEG rows")


def run(args: argparse.Namespace) -> int:
    from drivers.base import DeviceError
    from drivers.registry import ConfigError
    from recordings.reader import EpisodeError
    from teleop_app.errors import OperatorError

    handler = {"collect": _collect, "episodes": _episodes, "export": _export, "import": _import}[args.command]
    try:
        return handler(args)
    except BrokenPipeError:
        raise  # the reader of our output went away (`| head`): main() ends quietly
    except (EpisodeError, ValueError, OSError, ConfigError, DeviceError, OperatorError) as exc:
        return fail(exc)


# -- collect ---------------------------------------------------------------------------------
def _collect(args: argparse.Namespace) -> int:
    from teleop_app.cli.sessions import batch_tasks, report_batch, rig_from_args, running
    from teleop_app.operator_session import BatchPlan, OperatorSession
    from teleop_app.runs import EndRules

    if not args.headless:
        raise ValueError("collect runs without a window: add --headless (to record by hand, open `teleop-app gui`)")
    if args.episodes < 1 or args.seconds <= 0:
        raise ValueError("--episodes must be ≥ 1 and --seconds > 0")
    tasks = batch_tasks(args.task)
    args.out.mkdir(parents=True, exist_ok=True)
    session = OperatorSession(rig_from_args(args), args.out, task=tasks[0], operator=args.operator)
    plan = BatchPlan(args.episodes, EndRules(after_success_s=args.after_success, time_limit_s=args.seconds),
                     seed=args.seed, tasks=tasks)
    progress = Progress("collect")
    try:
        with running(session):
            report = session.run_batch(plan, progress)  # each episode hands the robot to the input as it starts
    finally:
        progress.close()
    return report_batch(report, "episodes")


# -- episodes --------------------------------------------------------------------------------
def _episodes(args: argparse.Namespace) -> int:
    from recordings import edit
    from recordings.library import list_dataset, summarize

    action = args.action
    if action == "list":
        from recordings.analysis.quality import check_dataset

        summaries = list_dataset(args.dir, trash=args.trash)
        flags = [q.flags for q in check_dataset([s.path for s in summaries])]
        if args.json:
            print(json.dumps([{**s.to_dict(), "flags": f} for s, f in zip(summaries, flags)], indent=2))
        else:
            print(_table(summaries, flags) if summaries else f"no episodes in {args.dir}")
        return 0
    if action == "info":
        s = summarize(args.file)
        if args.json:
            print(json.dumps(s.to_dict(), indent=2))
        else:
            print(_info(s))
        return 1 if s.damaged else 0
    if action == "trim":
        if args.auto:
            return _auto_trim(args)
        if args.dry_run or args.margin is not None:
            raise ValueError("--dry-run and --margin go with --auto")
        if args.clear:
            edit.clear_trim(args.file)
            print(f"{args.file}: keeping everything")
            return 0
        if args.start is None and args.end is None:
            raise ValueError("give --start and/or --end (seconds from the episode start), or --clear")
        lo, hi = edit.set_trim(args.file, args.start, args.end)
        if args.apply:
            edit.apply_trim(args.file)
            print(f"{args.file}: cut to {lo:.3f}–{hi:.3f} s (rewritten)")
        else:
            print(f"{args.file}: keeping {lo:.3f}–{hi:.3f} s (non-destructive; --apply rewrites the file)")
        return 0
    if action == "label":
        success = True if args.success else False if args.failure else None
        if success is None and args.task is None and args.notes is None:
            raise ValueError("give --success or --failure, and/or --task TEXT / --notes TEXT")
        edit.label(args.file, success=success, task=args.task, notes=args.notes)
        print(f"{args.file}: labelled")
        return 0
    if action == "delete":
        print(f"moved to {edit.delete(args.file)} (teleop-app episodes restore to undo)")
        return 0
    if action == "restore":
        print(f"restored {edit.restore(args.file)}")
        return 0
    if action == "repair":
        from recordings.repair import repair

        report = repair(args.file)
        print(report.text())
        return 0
    if action == "check":
        from recordings.analysis.quality import check_dataset
        from recordings.library import episode_files

        files = episode_files(args.dir)
        progress = Progress("check")
        damaged = {}
        for i, path in enumerate(files):
            progress(i, len(files), path.name)
            s = summarize(path)
            if s.damaged or s.status != "complete":
                damaged[path] = s.damaged or f"status {s.status!r}: run `teleop-app episodes repair {path}`"
        quality = check_dataset(files)
        progress(len(files), len(files), "")
        progress.close()
        if args.json:
            print(json.dumps([{**q.to_dict(), "damaged": damaged.get(q.path)} for q in quality], indent=2))
            return 1 if damaged else 0
        for path, reason in damaged.items():
            print(f"DAMAGED {path}: {reason}")
        for q in quality:
            for flag, why in q.flags.items():
                print(f"FLAGGED {q.path.name}: {flag} ({why})")
        flagged = sum(1 for q in quality if q.flags)
        print(f"{len(files) - len(damaged)}/{len(files)} episodes OK in {args.dir}, {flagged} flagged "
              "(thresholds: docs/quality-flags.md)")
        return 1 if damaged else 0
    if action in ("copy", "move", "merge", "split"):
        return _dataset_op(args)
    if action == "replay":
        return _replay(args)
    raise ValueError(f"unknown action {action}")


def _replay(args: argparse.Namespace) -> int:
    """Ctrl+C is STOP: the kill switch holds the robot on the next tick and ends the replay."""
    from teleop_app.cli.sessions import rig_from_args, running
    from teleop_app.operator_session import OperatorSession
    from teleop_app.replay import ReplayError, Trajectory
    from teleop_app.runs import EndReason

    try:
        Trajectory.from_episode(args.file)  # a file that cannot be replayed fails before the robot starts
    except ReplayError as exc:
        raise ValueError(str(exc)) from None
    rig = rig_from_args(args)
    session = OperatorSession(rig, args.file.parent)
    progress = Progress("replay")
    try:
        with running(session):
            try:
                run = session.start_replay(args.file, ramp_speed=args.ramp_speed)
            except ReplayError as exc:
                raise ValueError(str(exc)) from None
            while session.wait_for_end(run, timeout=0.1) is None:
                played, total = run.replay.progress()
                progress(round(played * 10), round(total * 10), f"{played:.1f} / {total:.1f} s")
            result = run.result
            if not rig.kill.latched:
                total = run.replay.total_s
                progress(round(total * 10), round(total * 10), f"{total:.1f} / {total:.1f} s")
            else:  # the robot holds on the loop's next tick: let that tick happen before closing
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline and not _held_since(rig, rig.kill.t_trigger):
                    time.sleep(0.01)
    finally:
        progress.close()
    if result.reason is EndReason.KILL:
        print(f"replay of {args.file} stopped by the kill switch ({result.detail}); the robot held", file=sys.stderr)
        return 1
    print(f"replayed {args.file} on {rig.config.name}", file=sys.stderr)
    return 0


def _dataset_op(args: argparse.Namespace) -> int:
    from recordings import dataset_ops
    from recordings.analysis.select import select

    inputs = args.datasets if args.action == "merge" else args.episodes
    if args.action == "merge":
        missing = [str(d) for d in inputs if not Path(d).is_dir()]
        if missing:
            raise ValueError(f"not a dataset folder: {', '.join(missing)}")
    files = select(dataset_ops.resolve(inputs), args.where)
    if not files:
        raise ValueError("no episode meets the --where conditions")  # resolve() refuses inputs without episodes
    progress = Progress(args.action)
    try:
        if args.action == "split":
            train, val = dataset_ops.split(files, args.train, args.val, args.val_fraction, args.seed)
            print(f"split {len(files)} episode(s) with seed {args.seed}: {len(train.copied)} to {args.train}, "
                  f"{len(val.copied)} to {args.val}")
            return 0
        if args.action == "move":
            done = dataset_ops.move_episodes(files, args.to, progress)
        else:
            done = dataset_ops.copy_episodes(files, args.out if args.action == "merge" else args.to, progress)
    finally:
        progress.close()
    for source, new in done.copied:
        print(f"{source} -> {new}")
    print(done.text({"copy": "copied", "move": "moved", "merge": "merged"}[args.action]))
    return 0


def _auto_trim(args: argparse.Namespace) -> int:
    """Print the suggested cut of each episode as a table, then (unless --dry-run) set the kept ranges."""
    from recordings import edit
    from recordings.analysis.trim import MARGIN_S, suggest_trim
    from recordings.library import episode_files
    from recordings.reader import EpisodeError

    if args.start is not None or args.end is not None or args.apply or args.clear:
        raise ValueError("--auto finds the range itself: leave out --start, --end, --apply and --clear")
    margin = MARGIN_S if args.margin is None else args.margin
    if margin < 0:
        raise ValueError("--margin must be ≥ 0 s")
    if not args.file.exists():
        raise ValueError(f"{args.file} does not exist")
    files = episode_files(args.file) if args.file.is_dir() else [args.file]
    if not files:
        raise ValueError(f"no episodes in {args.file}")
    rows = [("episode", "length", "kept now", "suggested", "cut start", "cut end", "")]
    failed = 0
    for path in files:
        try:
            s = suggest_trim(path, margin)
        except EpisodeError as exc:
            rows.append((path.name, "", "", "", "", "", f"unreadable: {exc}"))
            failed += 1
            continue
        now = f"{s.current[0]:.2f}–{s.current[1]:.2f}"
        if s.keep is None:
            rows.append((path.name, f"{s.full_duration:.2f}s", now, "-", "", "", "no motion found: left as is"))
            continue
        what = "" if s.changes else "unchanged"
        if s.changes and not args.dry_run:
            try:
                edit.set_trim(path, s.keep[0], s.keep[1])
                what = "applied"
            except (EpisodeError, ValueError) as exc:
                what = f"not applied: {exc}"
                failed += 1
        rows.append((path.name, f"{s.full_duration:.2f}s", now, f"{s.keep[0]:.2f}–{s.keep[1]:.2f}",
                     f"{s.cut_start:.2f}s", f"{s.cut_end:.2f}s", what))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if args.dry_run:
        print("dry run: nothing changed (kept ranges are non-destructive; `episodes trim --clear` undoes one)")
    return 1 if failed else 0


def _held_since(rig: Any, t: float) -> bool:
    """The loop has sent a kill-switch hold in a tick that started after ``t``."""
    last = rig.loop.latest()
    return last is not None and last.killed and last.t > t


def _table(summaries: list[Any], flags: list[dict[str, str]]) -> str:
    rows = [("episode", "success", "duration", "ticks", "frames", "driven by", "size", "flags", "task")]
    for s, flagged in zip(summaries, flags):
        if s.damaged:
            rows.append((s.name, "DAMAGED", "", "", "", "", _mb(s.size_bytes), "", s.damaged))
            continue
        frames = "/".join(str(n) for n in s.frames.values()) or "-"
        source = s.who_drove
        dur = f"{s.duration_s:.1f}s" + ("*" if s.trimmed else "")
        status = _label(s) if s.status == "complete" else f"{_label(s)} (unfinished)"
        rows.append((s.name, status, dur, str(s.ticks), frames, source, _mb(s.size_bytes), ",".join(flagged) or "-",
                     s.task))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
    if any(s.trimmed for s in summaries):
        lines.append("* trimmed (kept range)")
    return "\n".join(lines)


def _info(s: Any) -> str:
    if s.damaged:
        return f"{s.path}\n  DAMAGED: {s.damaged}"
    lines = [str(s.path)]
    for key in ("status", "task", "success", "operator", "created"):
        lines.append(f"  {key:<10} {_label(s) if key == 'success' else getattr(s, key)}")
    trim = " (trimmed)" if s.trimmed else ""
    lines.append(f"  duration   {s.duration_s:.3f} s of {s.full_duration_s:.3f} s{trim}")
    lines.append(f"  ticks      {s.ticks}")
    for cam, n in s.frames.items():
        lines.append(f"  camera     {cam}: {n} frames")
    lines.append("  driven by  " + s.who_drove)
    if any(s.dropped.values()):
        lines.append("  DROPPED    " + ", ".join(f"{k} {v}" for k, v in s.dropped.items() if v))
    lines.append(f"  size       {_mb(s.size_bytes)}")
    return "\n".join(lines)


def _label(s: Any) -> str:
    """The success label, and "(wrong object)" where the robot lifted a cube the task did not name."""
    return f"{s.success} (wrong object)" if s.wrong_object else s.success


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


# -- export and import ----------------------------------------------------------------------
def _cancellable(label: str, work: Callable[[Progress, Any], Any], cancelled: str) -> int:
    """Run ``work(progress, cancel)`` with Ctrl+C setting ``cancel``; print its report, or ``cancelled`` (exit 130)."""
    import signal
    import threading

    from recordings.export_common import Cancelled

    progress = Progress(label)
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    try:
        report = work(progress, cancel)
    except Cancelled:
        progress.close()
        print(cancelled, file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
        progress.close()
    print(report.text())
    return 0


def _export(args: argparse.Namespace) -> int:
    """Ctrl+C cancels: the exporter stops within a frame and removes what it had written."""
    from recordings.analysis.select import select
    from recordings.dataset_ops import resolve

    files = select(resolve(args.dir), args.where)
    if not files:
        raise ValueError("no episode meets the --where conditions")  # resolve() refuses inputs without episodes

    def export(progress: Progress, cancel: Any) -> Any:
        if args.format == "lerobot":
            from recordings.export_lerobot import export_lerobot

            return export_lerobot(files, args.out, fps=args.fps, include_failures=args.include_failures,
                                  codec=args.codec, progress=progress, workers=args.workers, cancel=cancel)
        from recordings.export_aloha import export_aloha

        return export_aloha(files, args.out, fps=args.fps, include_failures=args.include_failures,
                            progress=progress, compress=not args.raw, cancel=cancel)

    return _cancellable(f"export {args.format}", export, f"export cancelled: nothing was written to {args.out}")


def _import(args: argparse.Namespace) -> int:
    """Ctrl+C stops after removing the episode being written; the ones before it are whole and stay."""
    from recordings.import_lerobot import import_lerobot

    return _cancellable("import lerobot",
                        lambda progress, cancel: import_lerobot(args.dir, args.out, progress=progress, cancel=cancel),
                        f"import cancelled: the episodes imported so far are in {args.out}")
