"""The ``teleop-app`` command line."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from teleop_app import __version__
from teleop_app.cli.errors import fail



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="teleop-app", description="Teleoperate, record and run VLA policies.")
    parser.add_argument("--version", action="version", version=f"teleop-app {__version__}")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("gui", help="open the operator console window (the default command)")
    _add_gui_options(p)

    p = sub.add_parser("teleop", help="drive the robot with an input device")
    p.add_argument("--headless", action="store_true", help="no window: status in the terminal")
    p.add_argument("--input", default=None, help="input device name from the rig (sim rig: scripted, keyboard)")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until q or Ctrl-C)")
    p.add_argument("--rig", default=None, help="rig TOML file or built-in rig name (default: sim_so101)")
    p.add_argument("--stats-json", type=Path, default=None, help="write loop statistics and the outcome here")
    p.add_argument("--seed", type=int, default=None, help="seed of the scene reset (sim)")
    p.add_argument("--no-cameras", action="store_true", help="do not start the rig's cameras")

    p = sub.add_parser("devices", help="list attached cameras, SpaceMice and serial ports")
    p.add_argument("--json", action="store_true")

    from teleop_app.cli import calibrate as cli_calibrate
    from teleop_app.cli import compare as cli_compare
    from teleop_app.cli import data as cli_data
    from teleop_app.cli import doctor as cli_doctor
    from teleop_app.cli import policy as cli_policy
    from teleop_app.cli import serve as cli_serve
    from teleop_app.cli import train as cli_train

    cli_data.add_parsers(sub)
    cli_calibrate.add_parser(sub)
    cli_policy.add_parsers(sub)
    cli_compare.add_parser(sub)
    cli_train.add_parser(sub)
    cli_doctor.add_parser(sub)
    cli_serve.add_parser(sub)

    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["gui"])
    if args.command == "gui":
        return _gui(args.rig, args.dataset, args.operator)
    commands = {"devices": _devices, "teleop": _teleop, "calibrate": cli_calibrate.run, "run-policy": cli_policy.run,
                "compare": cli_compare.run, "train": cli_train.run, "doctor": cli_doctor.run, "serve": cli_serve.run}
    try:
        return commands.get(args.command, cli_data.run)(args)
    except BrokenPipeError:
        return _reader_gone()


def _reader_gone() -> int:
    """The program reading our output closed it (``teleop-app episodes list DIR | head``): stop quietly.

    What is left in stdout's buffer is dropped (the interpreter would fail flushing it at exit),
    and the status is the one a shell gives a command killed by SIGPIPE.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


def _add_gui_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rig", default=None, help="rig TOML file or built-in rig name (default: sim_so101)")
    p.add_argument("--dataset", default=None, help="episode folder (default: the last one used, "
                   "else ~/teleop-data/demos)")
    p.add_argument("--operator", default="", help="your name, stored in every episode")


def _gui(rig: str | None, dataset: str | None, operator: str) -> int:
    import os

    from drivers.base import DeviceError
    from drivers.registry import ConfigError

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")):
        return fail("no display to open the window on: run it on a desktop, under `xvfb-run`, "
                     "or use `teleop-app teleop --headless`")
    try:
        from ui.app import main as gui_main
    except ImportError as exc:
        return fail(f"the window cannot start ({exc}): reinstall with `make run`")
    try:
        return gui_main(rig, dataset, operator)
    except (ConfigError, DeviceError) as exc:
        return fail(exc)


def _devices(args: argparse.Namespace) -> int:
    from drivers.discovery import discover

    report = discover()
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.text())
    return 0


def _teleop(args: argparse.Namespace) -> int:
    from drivers.base import DeviceError
    from drivers.keyboard import KeyboardInput, TerminalKeys
    from drivers.registry import ConfigError
    from teleop_app.cli.sessions import rig_from_args, running
    from teleop_app.errors import OperatorError
    from teleop_app.operator_session import OperatorSession

    if not args.headless:
        return _gui(args.rig, None, "")
    try:
        rig = rig_from_args(args)
    except (ConfigError, DeviceError) as exc:
        return fail(exc)
    if rig.loop.active_input is None:
        return fail(f"rig {rig.config.name} has no input device")
    session = OperatorSession(rig, Path.cwd())  # teleop records nothing
    stop = threading.Event()
    terminal = None
    try:
        with running(session):
            signal.signal(signal.SIGINT, lambda *_: stop.set())  # Ctrl+C quits teleop (x or Esc is STOP)
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            session.reset_scene(args.seed)
            session.set_teleop(True)
            device = rig.inputs[rig.loop.active_input]
            if isinstance(device, KeyboardInput) and sys.stdin.isatty():
                terminal = TerminalKeys(device, {"x": lambda: session.stop("STOP key (x)"), "z": session.rearm,
                                                 "q": stop.set, "\x1b": lambda: session.stop("STOP key (Esc)")})
                terminal.start()
                keys = "  ".join(f"{k}:{what}" for k, what in device.bindings())
                print(f"keys: {keys}\n      x/Esc: STOP  z: re-arm  q: quit", file=sys.stderr)
            outcome = _run_headless(rig, args.seconds, stop)
    except (DeviceError, OperatorError, RuntimeError) as exc:
        return fail(f"could not start the rig: {exc}")
    finally:
        if terminal is not None:
            terminal.stop()
    stats = rig.loop.stats()
    stats["cameras"] = {name: {"fps": cam.rate.rate(), "error": cam.error} for name, cam in rig.cameras.items()}
    stats.update(outcome)
    print(_summary(stats), file=sys.stderr)
    if args.stats_json:
        args.stats_json.write_text(json.dumps(stats, indent=2))
    return 0


def _run_headless(rig: Any, seconds: float | None, stop: threading.Event) -> dict[str, Any]:
    t_start = time.monotonic()
    ee_start = rig.robot.read().ee_pos.tolist()
    t_success = None
    tty = sys.stderr.isatty()
    last_print = 0.0
    while not stop.is_set():
        now = time.monotonic()
        if seconds is not None and now - t_start >= seconds:
            break
        if t_success is None and rig.robot.success():
            t_success = now - t_start
        if now - last_print >= (0.25 if tty else 2.0):
            last_print = now
            line = _status(rig, now - t_start, t_success)
            print("\r" + line + "   " if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
        stop.wait(0.05)
    if tty:
        print(file=sys.stderr)
    return {"input": rig.loop.active_input, "seconds": time.monotonic() - t_start,
            "success": t_success is not None, "time_to_success_s": t_success,
            "ee_start": ee_start, "ee_end": rig.robot.read().ee_pos.tolist()}


def _status(rig: Any, elapsed: float, t_success: float | None) -> str:
    rec = rig.loop.latest()
    stats = rig.loop.stats()
    parts = [f"t={elapsed:5.1f}s", f"loop {stats['achieved_hz']:5.1f} Hz p99 {stats['period_p99_ms'] or 0:4.1f} ms"]
    if rec is not None:
        x, y, z = rec.state.ee_pos
        parts.append(f"ee=({x:+.3f},{y:+.3f},{z:+.3f}) m grip {rec.state.gripper:.2f}")
    phase = getattr(rig.inputs.get(rig.loop.active_input), "phase", None)
    if phase is not None:
        parts.append(f"phase {getattr(phase, 'name', phase)}")
    cams = " ".join(f"{n} {c.rate.rate():.0f}fps" for n, c in rig.cameras.items())
    if cams:
        parts.append(cams)
    parts.append("SUCCESS" if t_success is not None else "")
    if rig.kill.latched:
        parts.append(f"STOPPED: {rig.kill.reason}")
    return "  ".join(p for p in parts if p)


def _summary(stats: dict[str, Any]) -> str:
    lines = [
        f"loop: {stats['achieved_hz']:.1f} Hz of {stats['target_hz']:.0f} Hz, period p50 {stats['period_p50_ms'] or 0:.2f}"
        f" / p99 {stats['period_p99_ms'] or 0:.2f} / max {stats['period_max_ms'] or 0:.2f} ms, "
        f"{stats['overruns']} overruns over {stats['ticks']} ticks",
    ]
    for name, cam in stats.get("cameras", {}).items():
        lines.append(f"camera {name}: {cam['fps']:.1f} fps" + (f" ERROR {cam['error']}" if cam["error"] else ""))
    if stats.get("success"):
        lines.append(f"task: success after {stats['time_to_success_s']:.1f} s")
    else:
        lines.append("task: not done")
    if stats["kill"]["latched"]:
        lines.append(f"STOPPED: {stats['kill']['reason']}")
    return "\n".join(lines)


