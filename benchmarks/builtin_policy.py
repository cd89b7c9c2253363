"""The built-in policy end to end on the sim: collect scripted demos, train, roll out; prints JSON.

Collection and rollouts run the real CLI commands (``teleop-app collect`` and
``teleop-app run-policy``) in subprocesses, each with its own sim rig; training
runs in this process through :func:`policies.builtin.train.train` (the code
behind ``teleop-app train``) and nothing else runs meanwhile. Reported: wall
time of each phase, the training curve, checkpoint size, inference latency and
the success rate of the rollouts as the sim labels them.

    python benchmarks/builtin_policy.py --work /tmp/builtin/bench --demos 50 --rollouts 20

``--demos-dir`` reuses a folder of demos instead of collecting (``--demos 0``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

from policies.builtin.options import HEADS, TrainOptions  # noqa: E402

TASK = "pick up the cube"


def cli(*argv: str) -> subprocess.CompletedProcess:
    """``teleop-app ARGV`` in a subprocess; stdout and stderr captured, stderr echoed."""
    proc = subprocess.run([sys.executable, "-m", "teleop_app.cli", *argv], capture_output=True, text=True)
    sys.stderr.write(proc.stderr)
    return proc


def outcomes(stdout: str) -> list[tuple[str, bool, float]]:
    """``(file, success, seconds)`` per line ``PATH  success|failure  S s`` of collect / run-policy."""
    rows = []
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[1] in ("success", "failure") and parts[3] == "s":
            rows.append((parts[0], parts[1] == "success", float(parts[2])))
    return rows


def collect(folder: Path, n: int, seed: int) -> dict:
    """A watchdog stop (a busy machine) ends the batch early: ``exit_code`` 1 and fewer ``episodes``."""
    t0 = time.monotonic()
    proc = cli("collect", "--headless", "--input", "scripted", "--episodes", str(n), "--seconds", "20",
               "--task", TASK, "--out", str(folder), "--seed", str(seed))
    rows = outcomes(proc.stdout)
    ok = [s for _, success, s in rows if success]
    return {"seconds": time.monotonic() - t0, "exit_code": proc.returncode, "episodes": len(rows),
            "successful": len(ok), "mean_successful_episode_s": sum(ok) / len(ok) if ok else None}


def train_policy(folder: Path, out: Path, options: TrainOptions) -> dict:
    from policies.builtin.train import train

    def on_epoch(r) -> None:
        print(f"epoch {r.epoch}/{r.epochs} loss {r.loss:.4f} {r.samples_per_s:.0f} samples/s eta {r.eta_s:.0f} s",
              file=sys.stderr, flush=True)

    t0 = time.monotonic()
    result = train(folder, out, options, on_epoch=on_epoch)
    return {"wall_s": time.monotonic() - t0, "load_s": result.load_s, "train_s": result.train_s,
            "samples": result.samples, "episodes": result.episodes, "skipped": result.skipped,
            "initial_loss": result.initial_loss, "losses": result.losses, "target_error_mrad": result.error_rad * 1e3,
            "checkpoint_mb": out.stat().st_size / 1e6}


def inference_ms(checkpoint: Path, n: int = 50) -> dict:
    """Latency of one prediction on 224x224 images (what run-policy sends by default), one torch thread."""
    import numpy as np

    from drivers.types import RobotState
    from policies.loading import load_policy
    from policies.observation import Observation

    policy = load_policy(str(checkpoint))
    cams = policy.config.cameras
    state = RobotState(t_host=0.0, joint_pos=np.zeros(policy.info.action_dim),
                       joint_vel=np.zeros(policy.info.action_dim), gripper=1.0, ee_pos=np.zeros(3))
    rng = np.random.default_rng(0)
    obs = Observation(0, 0.0, state, TASK, {c: rng.integers(0, 255, (224, 224, 3), np.uint8) for c in cams})
    times = []
    for _ in range(n + 5):
        t0 = time.perf_counter()
        policy.predict(obs)
        times.append((time.perf_counter() - t0) * 1e3)
    times = np.array(times[5:])
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99)), "max": float(times.max())}


def rollouts(checkpoint: Path, folder: Path, n: int, seed: int, strategy: str, extra: list[str]) -> dict:
    stats = folder.with_suffix(".stats.json")
    t0 = time.monotonic()
    proc = cli("run-policy", "--policy", str(checkpoint), "--episodes", str(n), "--headless", "--strategy", strategy,
               "--seconds", "20", "--task", TASK, "--out", str(folder), "--seed", str(seed),
               "--stats-json", str(stats), *extra)
    rows = outcomes(proc.stdout)
    ok = [s for _, success, s in rows if success]
    loop = json.loads(stats.read_text()) if stats.exists() else {}
    runner = (loop.get("policy") or {}).get("runner") or {}
    return {"seconds": time.monotonic() - t0, "exit_code": proc.returncode, "strategy": strategy, "options": extra,
            "rollouts": len(rows), "successes": len(ok), "success_rate": len(ok) / len(rows) if rows else 0.0,
            "mean_successful_episode_s": sum(ok) / len(ok) if ok else None,  # ends --after-success (1 s) after success
            "answer_latency_ms": runner.get("latency_ms"), "loop_hz": loop.get("achieved_hz")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for demos, checkpoint and rollouts")
    parser.add_argument("--demos", type=int, default=50)
    parser.add_argument("--demos-dir", type=Path, default=None, help="reuse these demos instead of collecting")
    parser.add_argument("--demo-seed", type=int, default=1000)
    parser.add_argument("--rollouts", type=int, default=20)
    parser.add_argument("--rollout-seed", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=TrainOptions.epochs)
    parser.add_argument("--head", choices=HEADS, default="continuous")
    parser.add_argument("--strategy", default="async")
    parser.add_argument("--run-option", action="append", default=[], metavar="ARG",
                        help="extra run-policy argument, e.g. --run-option=--replan-every=25 (repeatable)")
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    report: dict = {"task": TASK}
    demos = args.demos_dir or args.work / "demos"
    if args.demos_dir is None:
        report["collect"] = collect(demos, args.demos, args.demo_seed)
    checkpoint = args.work / f"builtin_{args.head}.pt"
    report["train"] = train_policy(demos, checkpoint, TrainOptions(epochs=args.epochs, head=args.head))
    report["inference_ms"] = inference_ms(checkpoint)
    report["rollouts"] = rollouts(checkpoint, args.work / f"rollouts_{args.head}_{args.strategy}", args.rollouts,
                                  args.rollout_seed, args.strategy, args.run_option)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
