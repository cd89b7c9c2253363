"""When a human grabs control from a running policy, and when they have let go.

The control loop reads the takeover device every tick while a policy runs. The
human counts as *moving* when the device reports an end-effector twist above
``twist_threshold`` (SpaceMouse, held keyboard keys), a leader arm's joint
targets move more than ``joint_threshold`` from where they rested, the gripper
target changes by more than ``gripper_threshold``, or one of ``buttons`` is
held. Moving while the policy drives is a takeover; no motion for
``release_s`` during an intervention is letting go (the loop then hands back
to the policy if ``auto_hand_back``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drivers.types import InputState


@dataclass(frozen=True)
class TakeoverConfig:
    input: str | None = None  # device name; None = the loop's active input
    twist_threshold: float = 0.02  # norm of the twist [m/s, rad/s]
    joint_threshold: float = 0.05  # rad
    gripper_threshold: float = 0.5  # of the normalized opening
    buttons: frozenset[str] = frozenset()
    release_s: float = 1.0
    auto_hand_back: bool = True


class TakeoverDetector:
    """Pure and tick-driven: feed it every state of the device with the tick time."""

    def __init__(self, config: TakeoverConfig) -> None:
        self.config = config
        self._joints: np.ndarray | None = None  # where a leader arm last rested
        self._gripper: float | None = None
        self.t_last_motion: float | None = None

    def rest(self, inp: InputState | None) -> None:
        """Take the device's current state as the resting one (policy started or got control back)."""
        self._joints = None if inp is None or inp.joint_targets is None else np.array(inp.joint_targets, float)
        self._gripper = None if inp is None or inp.gripper is None else float(inp.gripper)
        self.t_last_motion = None

    def moving(self, inp: InputState, now: float) -> str | None:
        """Why the human counts as moving in ``inp`` (None if not); the resting state follows the motion."""
        why = self._why(inp)
        if why is not None:
            self.t_last_motion = now
        return why

    def released(self, now: float) -> bool:
        """No motion for ``release_s`` (since the last motion, or since :meth:`rest`)."""
        return self.t_last_motion is None or now - self.t_last_motion >= self.config.release_s

    def _why(self, inp: InputState) -> str | None:
        if not inp.connected:
            return None
        c = self.config
        held = sorted(c.buttons & inp.buttons)
        if held:
            return f"button {held[0]!r} on {inp.device}"
        if inp.ee_twist is not None:
            try:
                norm = float(np.linalg.norm(np.asarray(inp.ee_twist, dtype=np.float64)))
            except (TypeError, ValueError):
                norm = 0.0
            if np.isfinite(norm) and norm > c.twist_threshold:
                return f"{inp.device} twist {norm:.3f} > {c.twist_threshold:g}"
        why = None
        if inp.joint_targets is not None:
            q = np.asarray(inp.joint_targets, dtype=np.float64)
            if self._joints is None or self._joints.shape != q.shape:
                self._joints = q.copy()
            moved = float(np.max(np.abs(q - self._joints))) if q.size else 0.0
            if np.isfinite(moved) and moved > c.joint_threshold:
                self._joints = q.copy()
                why = f"{inp.device} joints moved {moved:.3f} rad > {c.joint_threshold:g}"
        if inp.gripper is not None:
            g = float(inp.gripper)
            if self._gripper is None:
                self._gripper = g
            if abs(g - self._gripper) > c.gripper_threshold:
                self._gripper = g
                why = why or f"{inp.device} gripper {g:.2f}"
        return why
