"""A scripted expert that picks up the sim cube: an input device for demos and tests.

It reads the robot's measured state and the pose of the cube to pick (privileged
sim information: in a two-cube scene the one the task sentence names, see
:meth:`~drivers.sim.robot.SimSO101.set_task`) and answers like a human on a SpaceMouse would: an end-effector
twist in the base frame plus a gripper opening target. Phases:

``approach``  grasp point to a spot above the cube, jaws open and turned so they
              close across two faces of the cube;
``descend``   straight down to the grasp height, the fixed jaw kept clear of the cube;
``close``     jaws shut, arm still, until the gripper stops on the cube;
``lift``      straight up; back to ``retry`` if the cube does not come along;
``hold``      keep the cube up (the sim reports success after 0.5 s);
``retry``     open, rise, start again from ``approach``.

It starts over from ``approach`` when the scene is reset or the task names another cube.

The arm has five joints, so the jaws point forward-down at a tilt that grows
with the cube's distance from the base (past ~0.3 m the wrist cannot point the
jaws straight down) and close along the horizontal direction across the arm.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import mujoco
import numpy as np

from drivers.base import DeviceError, InputDevice
from drivers.so101.kinematics import SO101Kinematics
from drivers.sim.model import CUBE_HALF
from drivers.sim.robot import SimSO101
from drivers.types import InputState

PHASES = ("approach", "descend", "close", "lift", "hold", "retry")

# When a phase is done (sim seconds, metres, radians, normalized gripper opening).
APPROACH_TOL, APPROACH_TURN_TOL, APPROACH_TIMEOUT = 0.01, 0.2, 6.0
DESCEND_TOL, DESCEND_TIMEOUT = 0.004, 4.0
SHUT = 0.1  # the jaws closed further than this hold nothing
SLIP_RISE = 0.03  # the hand rose this much ...
SLIP_CUBE_RISE = 0.01  # ... but the cube less than this: it is not in the hand
FIXED_JAW_MARGIN = 0.006  # the fixed jaw passes this far outside the cube's silhouette


@dataclass
class ScriptedExpertConfig:
    name: str = "scripted"
    max_speed: float = 0.15  # m/s of the grasp point in free space
    careful_speed: float = 0.05  # m/s near the cube (descend, lift)
    max_turn: float = 1.0  # rad/s
    gain: float = 4.0  # 1/s: twist = gain * position error, then capped
    turn_gain: float = 3.0  # 1/s
    hover: float = 0.07  # m above the cube centre before descending
    grasp_dz: float = 0.0  # m, grasp point relative to the cube centre at the grasp
    lift: float = 0.10  # m the cube is lifted
    open: float = 1.0  # gripper opening while approaching
    close_time: float = 0.6  # s the jaws get to close before lifting
    tilt_near: float = 0.35  # rad from vertical, jaws' tilt for a cube 0.2 m from the base
    tilt_far: float = 0.8  # rad, for a cube 0.4 m away
    cube: str = ""  # colour of the cube to pick whatever the task names (a deliberately wrong demo); "": the named one


class ScriptedExpert(InputDevice):
    """Picks and lifts the (named) cube of a :class:`~drivers.sim.robot.SimSO101`; see the module doc."""

    config_class = ScriptedExpertConfig
    read_has_side_effects = True  # read() runs the expert's phase machine
    source = "scripted"  # its ticks are recorded as the scripted expert's, never a human's

    def __init__(self, config: ScriptedExpertConfig | None = None, robot: SimSO101 | None = None) -> None:
        self.config = config or ScriptedExpertConfig()
        super().__init__(self.config.name)
        if not isinstance(robot, SimSO101):
            raise DeviceError("the scripted expert drives the simulated arm only: use robot type 'sim_so101'")
        self.robot = robot
        colours = [colour for _, colour in robot.cubes]
        if self.config.cube and self.config.cube not in colours:
            raise DeviceError(f"the scripted expert's cube {self.config.cube!r} is not in the scene: "
                              f"set cube to one of {', '.join(colours)} or leave it out")
        self._fixed = colours.index(self.config.cube) if self.config.cube else None
        self._kin = SO101Kinematics()  # own scratch state: read() may run off the loop thread
        self.reset()

    def reset(self) -> None:
        """Start over from ``approach`` (also done on its own when the robot's scene is reset)."""
        with self._lock:
            self._restart()

    def _restart(self) -> None:
        self.phase = "approach"
        self.attempts = 1  # grasp attempts this episode
        self._generation = self.robot.scene_generation
        self._target = self._cube_to_pick()  # the cube the task named when this attempt started
        self._t_phase: float | None = None  # robot clock at phase start
        self._table_z: float | None = None
        self._jaw_sign = 0.0

    def read(self) -> InputState:
        state = self.robot.read()
        target = self._cube_to_pick()
        cube_pos, cube_quat = self.robot.cube_pose(target or 0)
        now = state.t_device if state.t_device is not None else state.t_host
        ee_pos, ee_rot = self._kin.fk(state.joint_pos)
        with self._lock:
            if self.robot.scene_generation != self._generation or target != self._target:
                self._restart()
                self._target = target
            twist, gripper = self._act(now, ee_pos, ee_rot, state.gripper, cube_pos, cube_quat)
            phase = self.phase
        return InputState(
            device=self.name, t_host=time.monotonic(), ee_twist=twist, gripper=gripper,
            axes={"phase": float(PHASES.index(phase))},
        )

    def _cube_to_pick(self) -> int | None:
        return self.robot.named_cube if self._fixed is None else self._fixed

    # -- the policy ------------------------------------------------------------------------------
    def _act(
        self, now: float, ee: np.ndarray, rot: np.ndarray, opening: float, cube: np.ndarray, cube_quat: np.ndarray
    ) -> tuple[np.ndarray, float]:
        cfg = self.config
        if self._t_phase is None:
            self._t_phase = now
            self._table_z = float(cube[2]) - CUBE_HALF
        if self._jaw_sign == 0.0:
            self._jaw_sign = 1.0 if rot[:, 2] @ _across(cube) >= 0 else -1.0
        elapsed = now - self._t_phase
        target_rot, clearance = self._grasp_frame(cube, cube_quat)
        jaw = target_rot[:, 2]
        above = cube + (0.0, 0.0, cfg.hover) - clearance * jaw
        at_grasp = cube + (0.0, 0.0, cfg.grasp_dz) - clearance * jaw
        lifted = self._table_z + CUBE_HALF + cfg.lift
        phase = self.phase

        if phase == "approach":
            aligned = np.linalg.norm(above - ee) < APPROACH_TOL and _angle(target_rot, rot) < APPROACH_TURN_TOL
            if aligned or elapsed > APPROACH_TIMEOUT:
                phase = "descend"
        elif phase == "descend":
            if np.linalg.norm(at_grasp - ee) < DESCEND_TOL or elapsed > DESCEND_TIMEOUT:
                phase = "close"
        elif phase == "close":
            if elapsed > cfg.close_time:
                phase = "lift" if opening > SHUT else "retry"
        elif phase == "lift":
            cube_rise = cube[2] - (self._table_z + CUBE_HALF)
            if ee[2] - at_grasp[2] > SLIP_RISE and cube_rise < SLIP_CUBE_RISE or opening < SHUT:
                phase = "retry"
            elif cube[2] > lifted - 0.01:
                phase = "hold"
        elif phase == "retry" and ee[2] > cube[2] + cfg.hover - 0.01:
            phase = "approach"
            self.attempts += 1
        if phase != self.phase:
            self.phase, self._t_phase = phase, now

        gripper = cfg.open
        if phase == "approach":
            v = self._toward(above, ee, cfg.max_speed)
        elif phase == "descend":
            v = self._toward(at_grasp, ee, cfg.careful_speed)
        elif phase == "close":
            v, gripper = np.zeros(3), 0.0
        elif phase in ("lift", "hold"):
            v, gripper = self._toward(np.array([ee[0], ee[1], lifted + cfg.grasp_dz]), ee, cfg.careful_speed), 0.0
        else:  # retry
            v = self._toward(np.array([ee[0], ee[1], cube[2] + cfg.hover + 0.02]), ee, cfg.careful_speed)
        w = np.zeros(3) if phase in ("close", "lift", "hold") else self._turn(target_rot, rot)
        return np.concatenate([v, w]), gripper

    def _grasp_frame(self, cube: np.ndarray, cube_quat: np.ndarray) -> tuple[np.ndarray, float]:
        """End-effector rotation for the grasp, and how far to keep the fixed jaw off the cube's centre line.

        Jaws point forward-down (tilted by distance) and close across the arm's
        plane; the clearance lets the fixed jaw pass a cube turned against them.
        """
        cfg = self.config
        reach = float(np.hypot(cube[0], cube[1]))
        tilt = np.interp(reach, (0.2, 0.4), (cfg.tilt_near, cfg.tilt_far))
        radial = np.array([cube[0], cube[1], 0.0]) / max(reach, 1e-6)
        approach = math.sin(tilt) * radial - math.cos(tilt) * np.array([0.0, 0.0, 1.0])
        jaw = self._jaw_sign * _across(cube)
        rot = np.column_stack([approach, np.cross(jaw, approach), jaw])
        turned = _turn_about_vertical(cube_quat, jaw)
        half_width = CUBE_HALF * (abs(math.cos(turned)) + abs(math.sin(turned)))
        return rot, half_width - CUBE_HALF + FIXED_JAW_MARGIN

    def _toward(self, target: np.ndarray, ee: np.ndarray, speed: float) -> np.ndarray:
        v = self.config.gain * (target - ee)
        n = float(np.linalg.norm(v))
        return v * (speed / n) if n > speed else v

    def _turn(self, target_rot: np.ndarray, rot: np.ndarray) -> np.ndarray:
        w = self.config.turn_gain * _rotvec(target_rot @ rot.T)
        n = float(np.linalg.norm(w))
        return w * (self.config.max_turn / n) if n > self.config.max_turn else w


def _across(cube: np.ndarray) -> np.ndarray:
    """Horizontal unit vector across the arm's plane at the cube."""
    d = np.array([-cube[1], cube[0], 0.0])
    return d / max(float(np.linalg.norm(d)), 1e-6)


def _turn_about_vertical(quat: np.ndarray, direction: np.ndarray) -> float:
    """Angle (rad, in [-pi/4, pi/4]) between ``direction`` and the nearest face normal of the cube."""
    mat = np.empty(9)
    mujoco.mju_quat2Mat(mat, quat)
    axes = mat.reshape(3, 3)
    side = axes[:, int(np.argmin(np.abs(axes[2])))]  # a cube axis lying closest to the table plane
    rel = math.atan2(side[1], side[0]) - math.atan2(direction[1], direction[0])
    return (rel + math.pi / 4) % (math.pi / 2) - math.pi / 4


def _rotvec(mat: np.ndarray) -> np.ndarray:
    """Rotation vector (axis times angle, angle <= pi) of a rotation matrix."""
    quat, vec = np.empty(4), np.empty(3)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(mat).reshape(9))
    if quat[0] < 0:
        quat = -quat
    mujoco.mju_quat2Vel(vec, quat, 1.0)
    return vec


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(_rotvec(a @ b.T)))
