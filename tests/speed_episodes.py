"""Episode files with controlled motion, for the speed metrics and the human-vs-policy diagnosis.

``write_episode`` writes exactly the columns it is given through the real
:class:`recordings.writer.EpisodeWriter`. ``pick_episode`` builds a pick-and-lift
whose cause of slowness is known by construction:

The task runs on a *progress clock* τ (seconds of the nominal motion): reach
(``REACH_S``, minimum-jerk from ``A`` to ``B``), grasp (``GRASP_S``, the gripper
closes 1.0 → 0.3 linearly, arm still), lift (``LIFT_S``, 0.1 m up). Each tick
advances τ by ``speed × dt`` — 0 during the idle start, on starved ticks and
once the task is done. The robot tracks the commanded joints perfectly, and the
end effector is a linear function of the first three arm joints, so actions,
measured state and ``ee_pos`` agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from drivers.types import RobotState
from recordings.writer import EpisodeWriter
from drivers.types import TickRecord

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
GRIPPER_CLOSED, GRIPPER_OPEN = -0.17, 1.74
A = np.array([0.20, 0.00, 0.15])  # ee at the start (m)
B = np.array([0.30, 0.05, 0.03])  # ee at the grasp
LIFT = np.array([0.0, 0.0, 0.10])
REACH_S, GRASP_S, LIFT_S = 2.0, 0.5, 1.5
TASK_S = REACH_S + GRASP_S + LIFT_S
RAD_PER_M = 5.0  # arm joints 0..2 = (ee - A) * RAD_PER_M
T0 = 1000.0
STARVED = 32


def write_episode(path: Path, t: np.ndarray, ee: np.ndarray, opening: np.ndarray, action: np.ndarray, *,
                  source: str | list[str] = "human", safety: np.ndarray | None = None,
                  raw_input: np.ndarray | None = None, input_kind: str = "none", success: str = "true",
                  rate: float = 100.0, task: str = "pick up the cube") -> Path:
    """One episode with exactly these columns (``t`` relative to the first tick; measured joints = ``action``)."""
    n = len(t)
    sources = [source] * n if isinstance(source, str) else list(source)
    safety = np.zeros(n, dtype=int) if safety is None else safety
    meta = {"app_version": "test", "rig": "test_rig", "robot_type": "sim_so101", "control_rate_hz": rate,
            "task": task, "success": success}
    writer = EpisodeWriter(path, meta, JOINTS, {})
    records = [
        TickRecord(tick=k, t=T0 + t[k], t_sent=T0 + t[k],
                   state=RobotState(t_host=T0 + t[k], joint_pos=action[k], joint_vel=np.zeros(len(JOINTS)),
                                    gripper=float(opening[k]), ee_pos=ee[k]),
                   command=action[k], raw_input=None if raw_input is None else raw_input[k],
                   input_kind=input_kind if raw_input is not None else "none", source=sources[k],
                   safety=int(safety[k]), killed=False)
        for k in range(n)
    ]
    writer.append_ticks(records)
    writer.finalize({})
    return path


def min_jerk(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return 10 * x**3 - 15 * x**4 + 6 * x**5


def pulses(x: np.ndarray, count: int) -> np.ndarray:
    """A 0→1 progress whose speed comes in ``count`` sin² bursts (a SpaceMouse pushed and let go)."""
    x = np.clip(x, 0.0, 1.0)
    return x - np.sin(2 * np.pi * count * x) / (2 * np.pi * count)


def task_at(tau: np.ndarray, b: np.ndarray = B, bursts: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """End effector ``[N, 3]`` and gripper opening ``[N]`` at progress times τ."""
    x = tau / REACH_S
    reach = pulses(x, bursts) if bursts else min_jerk(x)
    ee = A + reach[:, None] * (b - A)
    lift = min_jerk((tau - REACH_S - GRASP_S) / LIFT_S)
    ee = ee + lift[:, None] * LIFT
    opening = 1.0 - 0.7 * np.clip((tau - REACH_S) / GRASP_S, 0.0, 1.0)
    return ee, opening


def pick_episode(path: Path, *, seed: int = 0, rate: float = 100.0, speed: float = 1.0, idle_start: float = 0.2,
                 idle_end: float = 0.2, starve: tuple[int, int] | None = None, source: str = "human",
                 bursts: int = 0, wiggle: float = 0.0, smooth_s: float = 0.0, jitter: float = 0.0,
                 grasp_speed: float = 1.0, success: str = "true") -> Path:
    """A pick whose slowness has a known cause (see the module docstring).

    ``speed`` scales how fast τ runs (smaller actions per tick); ``starve=(run, wait)``
    executes ``run`` ticks then holds ``wait`` starved ticks while the task moves;
    ``bursts`` makes the reach come in sin² bursts, ``wiggle`` adds a 6 Hz
    oscillation (rad) to the wrist-flex target (high-frequency content that does not
    move the end effector), ``smooth_s`` low-passes the arm targets with a causal
    moving average of that length (what a temporal ensemble does), ``jitter`` zig-zags
    the end effector sideways by that many metres at 5 Hz while it moves (what a
    noisy or badly blended policy does), ``grasp_speed`` scales how fast τ runs while the
    gripper closes (below 1: a policy that hesitates at the grasp). Small per-seed
    variations of the target, speed and idle times keep the sets from being identical.
    """
    rng = np.random.default_rng(seed)
    speed = speed * rng.uniform(0.97, 1.03)
    idle_start = idle_start * rng.uniform(0.9, 1.1)
    idle_end = idle_end * rng.uniform(0.9, 1.1)
    b = B + rng.uniform(-0.01, 0.01, 3)
    dt_nominal = 1.0 / rate
    t_list, tau_list, starved_list = [0.0], [0.0], [False]
    t, tau, k_motion, done_at = 0.0, 0.0, 0, None
    while True:
        t += dt_nominal * rng.uniform(0.95, 1.05)
        starved = False
        if t >= idle_start and tau < TASK_S:
            if starve is not None:
                run, wait = starve
                starved = (k_motion % (run + wait)) >= run
                k_motion += 1
            if not starved:
                grasping = REACH_S <= tau < REACH_S + GRASP_S
                tau = min(TASK_S, tau + speed * (grasp_speed if grasping else 1.0) * (t - t_list[-1]))
        if tau >= TASK_S and done_at is None:
            done_at = t
        t_list.append(t)
        tau_list.append(tau)
        starved_list.append(starved)
        if done_at is not None and t >= done_at + smooth_s + idle_end:
            break
    t_arr, tau_arr = np.array(t_list), np.array(tau_list)
    starved_arr = np.array(starved_list)
    ee, opening = task_at(tau_arr, b, bursts)
    if jitter > 0:
        moving = (tau_arr > 0) & (tau_arr < TASK_S)
        ee[moving, 1] += jitter * np.sin(2 * np.pi * 5.0 * t_arr[moving])
    arm = np.zeros((len(t_arr), 5))
    arm[:, :3] = (ee - A) * RAD_PER_M
    arm[:, 3] = 0.3 + wiggle * np.sin(2 * np.pi * 6.0 * t_arr)
    if smooth_s > 0:
        w = max(1, int(round(smooth_s * rate)))
        padded = np.concatenate([np.repeat(arm[:1], w - 1, axis=0), arm])
        kernel = np.ones(w) / w
        arm = np.stack([np.convolve(padded[:, j], kernel, mode="valid") for j in range(5)], axis=1)
        ee = A + arm[:, :3] / RAD_PER_M
    grip_joint = GRIPPER_CLOSED + opening * (GRIPPER_OPEN - GRIPPER_CLOSED)
    action = np.column_stack([arm, grip_joint])
    safety = np.where(starved_arr, STARVED, 0)
    raw = None
    if source == "policy":
        raw = np.column_stack([action, np.full(len(t_arr), np.nan)])
        raw[starved_arr] = np.nan
    return write_episode(path, t_arr, ee, opening, action, source=source, safety=safety, raw_input=raw,
                         input_kind="joint", success=success, rate=rate)


def pick_set(folder: Path, count: int, *, first_seed: int = 0, **kwargs: object) -> list[Path]:
    """``count`` pick episodes in ``folder`` (created), named like a dataset's."""
    folder.mkdir(parents=True, exist_ok=True)
    return [pick_episode(folder / f"episode_{i + 1:06d}.h5", seed=first_seed + i, **kwargs) for i in range(count)]
