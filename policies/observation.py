"""What a policy sees (:class:`Observation`) and what it may answer (:class:`ActionSpec`).

Observations are taken in two steps so the control loop never does image work:
:meth:`ObservationSource.capture` runs on the loop thread and only keeps
references to the latest frames and the measured state; :meth:`ObservationSource.build`
runs on the policy worker and resizes the images (aspect-preserving, zero padding,
as openpi and most VLA servers expect).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from drivers.base import Camera, Robot
from drivers.types import EE_DELTA_DIM, Frame, RobotState

NORMALIZATIONS = ("none", "mean_std", "q01_q99", "min_max")


class ActionKind(enum.Enum):
    JOINT = "joint"  # absolute joint targets, gripper joint last (rad)
    EE_DELTA = "ee_delta"  # [dx, dy, dz, droll, dpitch, dyaw, gripper] per tick, gripper an opening in [0, 1]


def resize_with_pad(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` scaled to fit ``height`` x ``width`` without distortion, centred, padded with zeros."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    scale = min(height / h, width / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.zeros((height, width) + image.shape[2:], dtype=image.dtype)
    top, left = (height - nh) // 2, (width - nw) // 2
    out[top: top + nh, left: left + nw] = resized.reshape((nh, nw) + image.shape[2:])
    return out


@dataclass(frozen=True)
class Observation:
    """One observation: the state measured before tick ``tick`` and the newest camera frames.

    ``images`` are HxWx3 uint8 RGB at the source's image size; ``image_times``
    the capture times of the frames they come from.
    """

    tick: int
    t: float
    state: RobotState
    task: str
    images: Mapping[str, np.ndarray] = field(default_factory=dict)
    image_times: Mapping[str, float] = field(default_factory=dict)

    def stream(self, name: str) -> Any:
        """A named stream, for mapping observations onto a server's keys.

        ``state`` (all joints, float32), ``joints`` (arm joints without the
        gripper), ``gripper`` ([1] opening), ``ee_pos`` ([3]), ``task``, ``tick``,
        ``image:<camera>`` (HxWx3 uint8) and ``image_chw:<camera>`` (3xHxW).
        """
        s = self.state
        fixed = {
            "state": lambda: s.joint_pos.astype(np.float32),
            "joints": lambda: s.joint_pos[:-1].astype(np.float32),
            "gripper": lambda: np.array([s.gripper], dtype=np.float32),
            "ee_pos": lambda: s.ee_pos.astype(np.float32),
            "task": lambda: self.task,
            "tick": lambda: self.tick,
        }
        if name in fixed:
            return fixed[name]()
        kind, _, camera = name.partition(":")
        if kind in ("image", "image_chw") and camera:
            if camera not in self.images:
                have = ", ".join(self.images) or "none"
                raise KeyError(f"the observation has no image from camera {camera!r} (have: {have})")
            image = self.images[camera]
            return np.ascontiguousarray(image.transpose(2, 0, 1)) if kind == "image_chw" else image
        raise KeyError(f"unknown observation stream {name!r} (known: {', '.join(fixed)}, image:<camera>, "
                       "image_chw:<camera>)")


@dataclass(frozen=True)
class Capture:
    """References taken on the loop thread; :meth:`ObservationSource.build` turns them into an observation."""

    tick: int
    t: float
    state: RobotState
    task: str
    frames: Mapping[str, Frame]


class ObservationSource:
    """Builds observations of a rig: its cameras (all, or ``camera_names``), the task sentence.

    ``image_size`` is ``(height, width)``; None keeps the cameras' own size.
    ``task`` may be changed between episodes.
    """

    def __init__(self, cameras: Mapping[str, Camera], task: str = "", *,
                 image_size: tuple[int, int] | None = (224, 224), camera_names: Sequence[str] | None = None) -> None:
        names = list(cameras) if camera_names is None else list(camera_names)
        missing = [n for n in names if n not in cameras]
        if missing:
            raise KeyError(f"no camera {', '.join(missing)} on this rig (cameras: {', '.join(cameras) or 'none'})")
        self.cameras = {n: cameras[n] for n in names}
        self.task = task
        self.image_size = image_size

    def capture(self, tick: int, t: float, state: RobotState) -> Capture:
        """Cheap: the latest frame of each camera by reference (frames are never modified once published)."""
        frames = {name: frame for name, cam in self.cameras.items() if (frame := cam.latest()) is not None}
        return Capture(tick, t, state, self.task, frames)

    def build(self, capture: Capture) -> Observation:
        images, times = {}, {}
        for name, frame in capture.frames.items():
            image = frame.image
            if self.image_size is not None:
                image = resize_with_pad(image, *self.image_size)
            images[name] = image
            times[name] = frame.t_capture
        return Observation(capture.tick, capture.t, capture.state, capture.task, images, times)


# -- actions ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ActionStats:
    """Per-dimension statistics of a dataset's actions (any subset may be given)."""

    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    q01: np.ndarray | None = None
    q99: np.ndarray | None = None
    min: np.ndarray | None = None
    max: np.ndarray | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ActionStats:
        """From a JSON-style mapping of lists (unknown keys are refused)."""
        unknown = set(d) - {"mean", "std", "q01", "q99", "min", "max"}
        if unknown:
            raise ValueError(f"unknown action statistics {', '.join(sorted(unknown))}")
        return cls(**{k: np.asarray(v, dtype=np.float64) for k, v in d.items() if v is not None})

    @classmethod
    def of(cls, actions: np.ndarray) -> ActionStats:
        """All statistics of ``actions`` ``[n, dim]``."""
        a = np.asarray(actions, dtype=np.float64)
        return cls(a.mean(0), a.std(0), np.quantile(a, 0.01, axis=0), np.quantile(a, 0.99, axis=0),
                   a.min(0), a.max(0))

    def to_dict(self) -> dict[str, list[float]]:
        return {k: v.tolist() for k in ("mean", "std", "q01", "q99", "min", "max")
                if (v := getattr(self, k)) is not None}


_NEEDS = {"mean_std": ("mean", "std"), "q01_q99": ("q01", "q99"), "min_max": ("min", "max")}


@dataclass(frozen=True)
class ActionSpec:
    """What a policy may answer, and how its raw numbers become robot units.

    ``low``/``high`` bound every action *after* un-normalization; an output
    outside them (or NaN, inf, the wrong shape) is out of spec and stops the
    robot. ``normalization`` is one of :data:`NORMALIZATIONS`:
    ``mean_std``: ``a * std + mean``; ``q01_q99`` and ``min_max``:
    ``0.5 * (a + 1) * (hi - lo) + lo`` (OpenVLA's convention). ``mask`` (bool
    per dimension) limits un-normalization to the dimensions where it is True
    (OpenVLA leaves the gripper alone).
    """

    kind: ActionKind
    low: np.ndarray
    high: np.ndarray
    normalization: str = "none"
    stats: ActionStats | None = None
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {self.normalization!r} (known: {', '.join(NORMALIZATIONS)})")
        if np.shape(self.low) != np.shape(self.high) or np.ndim(self.low) != 1:
            raise ValueError("ActionSpec low and high must be vectors of one length")
        if self.kind is ActionKind.EE_DELTA and self.dim != EE_DELTA_DIM:
            raise ValueError(f"end-effector actions have {EE_DELTA_DIM} dimensions, not {self.dim}")
        for name in _NEEDS.get(self.normalization, ()):
            value = None if self.stats is None else getattr(self.stats, name)
            if value is None or np.shape(value) != (self.dim,):
                raise ValueError(f"normalization {self.normalization} needs stats.{name} with {self.dim} values")

    @property
    def dim(self) -> int:
        return len(self.low)

    @classmethod
    def for_robot(cls, robot: Robot, kind: ActionKind, rate_hz: float, *, normalization: str = "none",
                  stats: ActionStats | None = None, mask: np.ndarray | None = None, margin: float = 0.1,
                  max_linear_speed: float = 1.0, max_angular_speed: float = 4.0) -> ActionSpec:
        """Bounds from the robot: joint limits widened by ``margin`` of their range (the safety
        filter clamps to the limits anyway; far outside means a broken policy), or end-effector
        steps up to the given speeds at ``rate_hz`` and a gripper opening within ``[-margin, 1 + margin]``."""
        if kind is ActionKind.JOINT:
            lo, hi = np.asarray(robot.joint_lower, float), np.asarray(robot.joint_upper, float)
            pad = margin * (hi - lo)
            low, high = lo - pad, hi + pad
        else:
            lin, ang = max_linear_speed / rate_hz, max_angular_speed / rate_hz
            high = np.array([lin] * 3 + [ang] * 3 + [1.0 + margin])
            low = np.array([-lin] * 3 + [-ang] * 3 + [-margin])
        return cls(kind, low, high, normalization, stats, mask)

    def unnormalize(self, actions: np.ndarray) -> np.ndarray:
        a = np.asarray(actions, dtype=np.float64)
        if self.normalization == "none":
            return a.copy()
        s = self.stats
        if self.normalization == "mean_std":
            out = a * s.std + s.mean
        else:
            lo, hi = (s.q01, s.q99) if self.normalization == "q01_q99" else (s.min, s.max)
            out = 0.5 * (a + 1.0) * (hi - lo) + lo
        return out if self.mask is None else np.where(self.mask, out, a)

    def normalize(self, actions: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`unnormalize` (for training code and tests)."""
        a = np.asarray(actions, dtype=np.float64)
        if self.normalization == "none":
            return a.copy()
        s = self.stats
        if self.normalization == "mean_std":
            out = (a - s.mean) / np.where(s.std > 0, s.std, 1.0)
        else:
            lo, hi = (s.q01, s.q99) if self.normalization == "q01_q99" else (s.min, s.max)
            out = 2.0 * (a - lo) / np.where(hi > lo, hi - lo, 1.0) - 1.0
        return out if self.mask is None else np.where(self.mask, out, a)

    def check(self, raw: object) -> tuple[np.ndarray | None, str | None]:
        """``(actions in robot units, None)`` for a valid raw output ``[k, dim]``, else ``(None, why)``."""
        try:
            a = np.asarray(raw)
        except (TypeError, ValueError) as exc:
            return None, f"output is not an array ({exc})"
        if a.dtype.kind not in "biuf":
            return None, f"output is not numeric (dtype {a.dtype})"
        if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] != self.dim:
            return None, f"output has shape {a.shape}, expected [k, {self.dim}]"
        a = a.astype(np.float64)
        for bad, name in ((np.isnan(a), "NaN"), (np.isinf(a), "inf")):
            if bad.any():
                return None, f"output has {name} in dim {int(np.argwhere(bad)[0][1])}"
        out = self.unnormalize(a)
        below, above = out < self.low, out > self.high
        if below.any() or above.any():
            i, d = (np.argwhere(below) if below.any() else np.argwhere(above))[0]
            bound = f"< {self.low[d]:.4g}" if below.any() else f"> {self.high[d]:.4g}"
            return None, f"output out of range in dim {d}: {out[i, d]:.4g} {bound} (action {i})"
        return out, None
