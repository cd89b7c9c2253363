"""Per-arm servo calibration: which servo drives which joint and how its ticks map to joint angles.

One JSON file per physical arm (``teleop-app calibrate`` writes it)::

    {
      "format": "teleop-app servo calibration",
      "version": 1,
      "protocol": "feetech",                  # or "dynamixel"
      "joints": {                             # every SO-101 joint, gripper last
        "shoulder_pan": {"id": 1, "offset": 2048, "sign": 1, "range_min": 1010, "range_max": 3090},
        ...
        "gripper":      {"id": 6, "offset": 2030, "sign": 1, "range_min": 2030, "range_max": 3180}
      }
    }

For an arm joint, ``offset`` is the raw position (ticks, 4096 per turn) at joint
angle 0 and ``angle = sign * (ticks - offset) * 2π / 4096``. For the gripper,
``offset`` is the closed position and ``sign`` the direction it opens: the
normalized opening (0 closed, 1 open, the convention of every robot's
``gripper_to_joint``) runs from ``offset`` to ``range_max`` (sign 1) or to
``range_min`` (sign -1).

A raw reading is first *unwrapped* to the turn centred on the offset, so a
Dynamixel joint whose range crosses the 4095 → 0 point reads continuously;
``range_min``/``range_max`` are on that unwrapped scale and may lie below 0 or
above 4095 (Dynamixel only: Feetech goals cannot cross that point, so their
ranges must stay within 0–4095). Offsets live in this file, not in servo
EEPROM, so a power cycle does not lose them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drivers.registry import ConfigError
from drivers.servo.bus import PROTOCOLS, get_protocol
from drivers.servo.protocol import TICKS_PER_TURN
from drivers.so101.joints import ARM_JOINTS, JOINTS

FORMAT = "teleop-app servo calibration"
VERSION = 1
TICKS_PER_RAD = TICKS_PER_TURN / (2 * math.pi)
_HALF = TICKS_PER_TURN // 2
_FIELDS = ("id", "offset", "sign", "range_min", "range_max")


def unwrap(raw: int, offset: int) -> int:
    """``raw`` moved by whole turns to within half a turn of ``offset``."""
    return offset + (raw - offset + _HALF) % TICKS_PER_TURN - _HALF


class CalibrationError(ConfigError):
    """A calibration file is missing or wrong; the message names the file and the field."""


@dataclass(frozen=True)
class JointCalibration:
    id: int
    offset: int
    sign: int
    range_min: int
    range_max: int

    def unwrap(self, raw: int) -> int:
        return unwrap(raw, self.offset)

    @property
    def open_end(self) -> int:
        """For the gripper: the fully open end of the range."""
        return self.range_max if self.sign > 0 else self.range_min


@dataclass(frozen=True)
class ArmCalibration:
    """Calibration of the six SO-101 joints (gripper last) on one bus."""

    protocol: str
    joints: dict[str, JointCalibration]
    source: str = "<memory>"

    @property
    def ids(self) -> list[int]:
        """Servo ids in joint order."""
        return [self.joints[name].id for name in JOINTS]

    def to_joints(self, raw: Mapping[int, int]) -> tuple[np.ndarray, float]:
        """Arm joint angles [5] (rad) and the gripper's normalized opening for raw positions by servo id."""
        arm = np.empty(len(ARM_JOINTS))
        for k, name in enumerate(ARM_JOINTS):
            j = self.joints[name]
            arm[k] = j.sign * (j.unwrap(raw[j.id]) - j.offset) / TICKS_PER_RAD
        g = self.joints["gripper"]
        opening = (g.unwrap(raw[g.id]) - g.offset) / (g.open_end - g.offset)
        return arm, float(np.clip(opening, 0.0, 1.0))

    def to_ticks(self, arm: Sequence[float], opening: float) -> dict[int, int]:
        """Goal positions by servo id for arm angles (rad) and an opening, each clipped to its calibrated range."""
        out = {}
        for name, angle in zip(ARM_JOINTS, arm):
            j = self.joints[name]
            out[j.id] = _clip(round(j.offset + j.sign * float(angle) * TICKS_PER_RAD), j)
        g = self.joints["gripper"]
        opening = float(np.clip(opening, 0.0, 1.0))
        out[g.id] = _clip(round(g.offset + opening * (g.open_end - g.offset)), g)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "protocol": self.protocol,
                "joints": {name: asdict(self.joints[name]) for name in JOINTS}}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def _clip(ticks: int, j: JointCalibration) -> int:
    return min(max(ticks, j.range_min), j.range_max)


def load_calibration(path: str | Path) -> ArmCalibration:
    """Read and check a calibration file (``~`` is expanded; relative paths are from the working directory)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CalibrationError(f"calibration file {path} not found: create it with "
                               f"`teleop-app calibrate --port PORT --protocol feetech --out {path}`")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CalibrationError(f"calibration {path} is not valid JSON: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"cannot read calibration {path}: {exc}") from None
    return parse_calibration(data, str(path))


def parse_calibration(data: Any, source: str = "<memory>") -> ArmCalibration:
    """Check the structure and values of a decoded calibration file."""
    where = f"calibration {source}"
    if not isinstance(data, dict):
        raise CalibrationError(f"{where}: expected a JSON object at the top level")
    known = {"format", "version", "protocol", "joints"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CalibrationError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    if data.get("version", VERSION) != VERSION:
        raise CalibrationError(f"{where}: version {data['version']!r} is not supported (this app reads {VERSION})")
    protocol = data.get("protocol")
    if protocol not in PROTOCOLS:
        raise CalibrationError(f"{where}: protocol must be one of {', '.join(map(repr, PROTOCOLS))}, got {protocol!r}")
    joints_data = data.get("joints")
    if not isinstance(joints_data, dict):
        raise CalibrationError(f"{where}: 'joints' must be an object with one entry per joint ({', '.join(JOINTS)})")
    missing = [name for name in JOINTS if name not in joints_data]
    if missing:
        raise CalibrationError(f"{where}: joints.{missing[0]} is missing (every joint is needed: {', '.join(JOINTS)})")
    extra = sorted(set(joints_data) - set(JOINTS))
    if extra:
        raise CalibrationError(f"{where}: unknown joint(s) {', '.join(extra)} (joints: {', '.join(JOINTS)})")
    joints = {name: _joint(joints_data[name], f"{where}: joints.{name}", protocol, name == "gripper")
              for name in JOINTS}
    ids = [j.id for j in joints.values()]
    for name, j in joints.items():
        if ids.count(j.id) > 1:
            others = [n for n, o in joints.items() if o.id == j.id and n != name]
            raise CalibrationError(f"{where}: joints.{name}.id {j.id} is also the id of {', '.join(others)}")
    return ArmCalibration(protocol, joints, source)


def _joint(entry: Any, where: str, protocol: str, gripper: bool) -> JointCalibration:
    if not isinstance(entry, dict):
        raise CalibrationError(f"{where} must be an object with keys {', '.join(_FIELDS)}")
    for key in _FIELDS:
        if key not in entry:
            raise CalibrationError(f"{where}.{key} is missing")
        value = entry[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise CalibrationError(f"{where}.{key} must be an integer, got {value!r}")
    unknown = sorted(set(entry) - set(_FIELDS))
    if unknown:
        raise CalibrationError(f"{where}: unknown key(s) {', '.join(unknown)} (keys: {', '.join(_FIELDS)})")
    j = JointCalibration(**{key: entry[key] for key in _FIELDS})
    max_id = get_protocol(protocol).max_id
    if not 0 <= j.id <= max_id:
        raise CalibrationError(f"{where}.id must be between 0 and {max_id}, got {j.id}")
    if j.sign not in (1, -1):
        raise CalibrationError(f"{where}.sign must be 1 or -1, got {j.sign}")
    if j.range_min >= j.range_max:
        raise CalibrationError(f"{where}: range_min ({j.range_min}) must be less than range_max ({j.range_max})")
    if j.range_max - j.range_min >= TICKS_PER_TURN:
        raise CalibrationError(f"{where}: the range spans a whole turn or more ({j.range_min}..{j.range_max})")
    if not j.range_min <= j.offset <= j.range_max:
        raise CalibrationError(f"{where}.offset {j.offset} lies outside its range {j.range_min}..{j.range_max}")
    if protocol == "feetech" and (j.range_min < 0 or j.range_max >= TICKS_PER_TURN):
        raise CalibrationError(
            f"{where}: range {j.range_min}..{j.range_max} crosses the servo's 0/4095 point, which Feetech goals "
            f"cannot cross: re-centre the servo horn (mid-range near 2048) and calibrate again")
    if gripper and j.open_end == j.offset:
        side = "range_max" if j.sign > 0 else "range_min"
        raise CalibrationError(f"{where}: the gripper opens towards {side} (sign {j.sign}) but offset "
                               f"(closed) equals {side}: flip the sign or calibrate again")
    return j


def from_zero_pose(protocol: str, ids: Sequence[int], raw: Mapping[int, int], signs: Sequence[int],
                   joint_lower: Sequence[float], joint_upper: Sequence[float], source: str = "<memory>") -> ArmCalibration:
    """A calibration that takes ``raw`` as the zero pose (gripper closed) and the model's joint limits as ranges.

    Arm ranges are the limits (rad) around the offset; the gripper opens by the
    span of its joint range. Feetech ranges are cut at 0 and 4095.
    """
    joints = {}
    for k, name in enumerate(JOINTS):
        offset, sign = raw[ids[k]], signs[k]
        if name == "gripper":
            span = round((joint_upper[k] - joint_lower[k]) * TICKS_PER_RAD)
            ends = (offset, offset + sign * span)
        else:
            ends = (round(offset + sign * joint_lower[k] * TICKS_PER_RAD),
                    round(offset + sign * joint_upper[k] * TICKS_PER_RAD))
        lo, hi = min(ends), max(ends)
        if protocol == "feetech":
            lo, hi = max(lo, 0), min(hi, TICKS_PER_TURN - 1)
        joints[name] = {"id": ids[k], "offset": offset, "sign": sign, "range_min": lo, "range_max": hi}
    return parse_calibration({"protocol": protocol, "joints": joints}, source)


def from_recording(protocol: str, ids: Sequence[int], zero: Mapping[int, int], low: Mapping[int, int],
                   high: Mapping[int, int], signs: Sequence[int], source: str = "<memory>") -> ArmCalibration:
    """A calibration from a recorded zero pose and the extremes each joint reached (unwrapped around ``zero``).

    The gripper's sign is found from the recording: it opens away from the closed (zero-pose) reading.
    """
    joints = {}
    for k, name in enumerate(JOINTS):
        sid, offset = ids[k], zero[ids[k]]
        lo, hi = min(low[sid], offset), max(high[sid], offset)
        sign = (1 if hi - offset >= offset - lo else -1) if name == "gripper" else signs[k]
        joints[name] = {"id": sid, "offset": offset, "sign": sign, "range_min": lo, "range_max": hi}
    return parse_calibration({"protocol": protocol, "joints": joints}, source)
