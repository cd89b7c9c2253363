"""Who drives a tick while a policy is attached, and how a new driver joins without a jump.

:class:`PolicyArbiter` holds an attached :class:`~policies.runner.PolicyRunner` and,
optionally, a takeover device. Each tick in ``POLICY`` or ``INTERVENTION`` mode it
decides: a human moving the takeover device takes over (the policy pauses and
its plan is dropped), a human who let go for ``release_s`` hands back (the
policy starts again from a fresh observation of where the human left the arm),
and otherwise the policy's action for this tick (None: starved, the loop holds).

:class:`JoinRamp` is the one rule for every change of driver (teleop on, a
takeover, a hand-back, a policy or a replay starting, a re-arm): until the new
driver's target is within one ramp step of the last command, the command moves
toward it at no more than the rig's ramp speed on any joint, gripper included.
End-effector steps are made from the last command, so for them only the
gripper (which they set absolutely) is ramped.

Both live on the control loop's thread: only the loop calls them (the loop's
``call_soon`` runs other threads' requests between ticks).
"""

from __future__ import annotations

import numpy as np

from drivers.types import Command, InputState, RobotState
from policies.runner import PolicyRunner
from teleop_app.loop_stats import LoopStats
from teleop_app.modes import Mode, Modes
from teleop_app.takeover import TakeoverConfig, TakeoverDetector

DEFAULT_RAMP_SPEED = 0.5
"""rad/s of the fastest joint while a new driver joins (0.005 rad a tick at 100 Hz, a tenth of the default
rig's safety step limit)."""


class JoinRamp:
    """Caps the command's speed at ``speed`` rad/s from :meth:`start` until the driver's target is reached."""

    def __init__(self, speed: float, period: float) -> None:
        if speed <= 0:
            raise ValueError("the ramp speed must be positive (rad/s)")
        self.speed = speed
        self.step = speed * period
        self.active = False

    def start(self) -> None:
        self.active = True

    def apply(self, target: object, q_cmd: np.ndarray, gripper_only: bool = False) -> object:
        """This tick's target: ``target`` itself once joined, else a step of at most ``step`` toward it.

        ``gripper_only``: the arm's target was made from the last command (an
        end-effector step), so only the gripper, which such a command sets
        absolutely, can jump; the arm joints pass as they are.
        """
        if not self.active:
            return target
        try:
            arr = np.asarray(target, dtype=np.float64)
        except (TypeError, ValueError):
            return target  # not a vector: the safety filter makes it a hold
        if arr.shape != q_cmd.shape or not np.all(np.isfinite(arr)):
            return target
        joints = slice(-1, None) if gripper_only else slice(None)
        gap = arr[joints] - q_cmd[joints]
        if np.all(np.abs(gap) <= self.step + 1e-12):
            self.active = False
            return arr
        out = arr.copy()
        out[joints] = q_cmd[joints] + np.clip(gap, -self.step, self.step)
        return out


class PolicyArbiter:
    """An attached policy and its takeover device; see the module docstring."""

    def __init__(self, runner: PolicyRunner, takeover: TakeoverConfig | None, takeover_input: str | None,
                 modes: Modes, stats: LoopStats) -> None:
        self.runner = runner
        self.config = takeover
        self.detector = None if takeover is None else TakeoverDetector(takeover)
        self.input = takeover_input
        self.modes = modes
        self.stats = stats
        self.manual = False  # taken over with take_over(): no automatic hand-back

    @property
    def label(self) -> str:
        """The driver name its ticks carry."""
        return self.runner.policy.info.name or "policy"

    def rest(self, inp: InputState | None) -> None:
        if self.detector is not None:
            self.detector.rest(inp)

    def wants_input(self, mode: Mode) -> bool:
        return self.input is not None and (self.detector is not None or mode is Mode.INTERVENTION)

    def take_over(self, reason: str) -> None:
        self.modes.set_mode(Mode.INTERVENTION, reason=reason)
        self.runner.pause()
        self.stats.takeovers += 1

    def hand_back(self, reason: str, inp: InputState | None) -> None:
        self.modes.set_mode(Mode.POLICY, reason=reason)
        self.manual = False
        self.rest(inp)
        self.runner.resume()
        self.stats.hand_backs += 1

    def decide(self, inp: InputState | None, tick: int, t0: float, state: RobotState) -> tuple[Command | None, bool,
                                                                                                  bool]:
        """``(policy command, starved, human)`` for this tick; switches between policy and human first.

        ``human`` says the human drives this tick: the loop then takes the
        command from the takeover input (the command returned is None).
        """
        mode = self.modes.mode
        detector = self.detector
        if detector is not None and inp is not None:
            why = detector.moving(inp, t0)
            if mode is Mode.POLICY and why is not None:
                self.take_over(f"takeover: {why}")
                self.stats.intervention_ticks += 1
                return None, False, True
            if (mode is Mode.INTERVENTION and self.config.auto_hand_back and not self.manual
                    and detector.released(t0)):
                self.hand_back(f"human let go for {self.config.release_s:g} s", inp)
                mode = Mode.POLICY
        if mode is Mode.INTERVENTION:
            self.stats.intervention_ticks += 1
            return None, False, True
        command = self.runner.step(tick, t0, state)
        self.stats.policy_tick(starved=command is None, in_flight=self.runner.in_flight)
        return command, command is None, False
