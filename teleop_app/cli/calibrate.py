"""``teleop-app calibrate``: record each servo's zero and range for one arm and write its calibration file.

Interactive by default: the user puts the arm in the zero pose (press Enter),
then moves every joint through its range (press Enter). ``--from-current``
takes the present pose as the zero pose and the SO-101 model's joint limits as
ranges, with no questions asked (scripts, tests, a quick start).
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from teleop_app.cli.errors import fail

if TYPE_CHECKING:  # imported lazily at run time: `teleop-app --help` stays fast
    from drivers.servo.bus import ServoBus
    from drivers.so101.calibration import ArmCalibration

ZERO_POSE = ("base facing forward, upper arm pointing straight up, forearm and gripper pointing straight forward "
             "(level), wrist roll centred, gripper closed")
MIN_TRAVEL = 200  # ticks (~18°) a joint must move in the range step, or the user is told to redo it
SWEEP_PERIOD = 0.02  # s between reads while the user moves the joints
CALIBRATE_TIMEOUT_S = 0.1  # per reply: nothing here is time-critical, and a busy machine may be slow to read


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="calibrate a leader or follower arm on a serial servo bus",
                       description="Record each joint's servo id, zero position and range; write them to --out.")
    p.add_argument("--port", required=True, help="serial port of the arm (see `teleop-app devices`)")
    p.add_argument("--protocol", required=True, choices=("feetech", "dynamixel"),
                   help="feetech: SO-100/SO-101 (STS3215); dynamixel: Koch, GELLO (protocol 2.0)")
    p.add_argument("--ids", default="1,2,3,4,5,6",
                   help="servo ids in joint order: shoulder_pan, shoulder_lift, elbow_flex, wrist_flex, "
                        "wrist_roll, gripper (default 1,2,3,4,5,6)")
    p.add_argument("--out", type=Path, required=True, help="calibration file to write (JSON)")
    p.add_argument("--baud", type=int, default=None, help="default: 1000000 (feetech), 57600 (dynamixel)")
    p.add_argument("--signs", default="1,1,1,1,1,1",
                   help="1 or -1 per joint: -1 where the servo counts down as the joint angle grows; "
                        "the gripper's is measured in the interactive mode")
    p.add_argument("--from-current", action="store_true",
                   help="no questions: the present pose is the zero pose (gripper closed), ranges are the "
                        "SO-101 model's joint limits")


def run(args: argparse.Namespace) -> int:
    from drivers.base import DeviceError
    from drivers.registry import ConfigError
    from drivers.servo.bus import ServoBus

    try:
        ids = _int_list(args.ids, "--ids")
        signs = _int_list(args.signs, "--signs")
        if any(s not in (1, -1) for s in signs):
            raise ValueError(f"--signs takes 1 or -1 per joint, got {args.signs}")
        with ServoBus(args.port, args.protocol, args.baud, timeout=CALIBRATE_TIMEOUT_S) as bus:
            for servo_id in ids:
                bus.ping(servo_id)
            bus.set_torque(ids, False)  # so the arm can be moved by hand
            if args.from_current:
                calibration = _from_current(bus, ids, signs, str(args.out))
            else:
                calibration = _interactive(bus, ids, signs, str(args.out))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        calibration.save(args.out)
    except (DeviceError, ConfigError, ValueError, OSError) as exc:
        return fail(exc)
    except (KeyboardInterrupt, EOFError):
        print("\nteleop-app: calibration cancelled; nothing written", file=sys.stderr)
        return 130
    print(_table(calibration))
    print(f"wrote {args.out}")
    return 0


def _int_list(text: str, option: str) -> list[int]:
    from drivers.so101.joints import JOINTS

    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{option} takes {len(JOINTS)} comma-separated integers, got {text!r}") from None
    if len(values) != len(JOINTS):
        raise ValueError(f"{option} needs one value per joint ({', '.join(JOINTS)}), got {len(values)}")
    return values


def _from_current(bus: ServoBus, ids: Sequence[int], signs: Sequence[int], source: str) -> ArmCalibration:
    from drivers.so101.kinematics import SO101Kinematics
    from drivers.so101.calibration import from_zero_pose

    kin = SO101Kinematics()
    return from_zero_pose(bus.protocol.name, ids, bus.read_positions(ids), signs,
                          kin.joint_lower, kin.joint_upper, source)


def _interactive(bus: ServoBus, ids: Sequence[int], signs: Sequence[int], source: str) -> ArmCalibration:
    from drivers.base import DeviceError
    from drivers.so101.joints import JOINTS
    from drivers.so101.calibration import from_recording, unwrap

    print(f"Step 1/2: move the arm to the zero pose: {ZERO_POSE}. Then press Enter.")
    input()
    zero = bus.read_positions(ids)
    low, high = dict(zero), dict(zero)

    def track(raw: dict[int, int]) -> None:
        for servo_id, value in raw.items():
            u = unwrap(value, zero[servo_id])
            low[servo_id], high[servo_id] = min(low[servo_id], u), max(high[servo_id], u)

    stop = threading.Event()
    failures: list[DeviceError] = []

    def sweep() -> None:
        while not stop.is_set():
            try:
                track(bus.read_positions(ids))
            except DeviceError as exc:
                failures.append(exc)
                return
            stop.wait(SWEEP_PERIOD)

    print("Step 2/2: move every joint slowly through its whole range, open and close the gripper fully. "
          "Then press Enter.")
    thread = threading.Thread(target=sweep, name="calibrate-sweep", daemon=True)
    thread.start()
    try:
        input()
    finally:
        stop.set()
        thread.join()
    if failures:
        raise failures[0]
    track(bus.read_positions(ids))
    for name, servo_id in zip(JOINTS, ids):
        if high[servo_id] - low[servo_id] < MIN_TRAVEL:
            raise ValueError(f"{name} (servo {servo_id}) moved only {high[servo_id] - low[servo_id]} ticks: move "
                             f"every joint through its whole range and run calibrate again")
    return from_recording(bus.protocol.name, ids, zero, low, high, signs, source)


def _table(calibration: ArmCalibration) -> str:
    lines = [f"{'joint':<14} {'id':>3} {'offset':>7} {'sign':>5} {'range_min':>10} {'range_max':>10}"]
    for name, j in calibration.joints.items():
        lines.append(f"{name:<14} {j.id:>3} {j.offset:>7} {j.sign:>+5d} {j.range_min:>10} {j.range_max:>10}")
    return "\n".join(lines)
