"""A built-in checkpoint served by ``teleop-app serve``, driven by ``run-policy`` over loopback; prints JSON.

Trains on a folder of demos (or reuses a checkpoint), starts ``teleop-app serve``
in a subprocess, measures the answer latency of our openpi client against it
(observations as run-policy sends them: two 224x224 images, the joints, the
task) and rolls the sim out with ``teleop-app run-policy --policy ws://…`` in
another subprocess. Reported: latency p50/p99/max over ``--requests`` calls,
the rollouts' success rate and run-policy's own answer-latency figures.

    nice -n 10 python benchmarks/serve_policy.py --work /tmp/serve-bench --demos-dir /tmp/serve-bench/demos
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

from builtin_policy import TASK, cli, outcomes, train_policy  # noqa: E402 (benchmarks/ is the script's folder)
from policies.builtin.options import TrainOptions  # noqa: E402


def start_server(checkpoint: Path, port: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "teleop_app.cli", "serve", str(checkpoint), "--port", str(port)],
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        sys.stderr.write(line)
        m = re.search(r" on (ws://\S+) ", line)
        if m:  # keep echoing its log, so the pipe never fills
            threading.Thread(target=lambda: [sys.stderr.write(x) for x in proc.stderr], daemon=True).start()
            return proc, m.group(1)
    raise RuntimeError(f"serve exited with {proc.wait()} before listening")


def latency_ms(url: str, n: int) -> dict:
    """Round trips of our client (connect excluded): observation out, chunk back."""
    import numpy as np

    from drivers.types import RobotState
    from policies.loading import LoadOptions
    from policies.observation import Observation

    client = LoadOptions(spec=url).load(["front", "wrist"], 6)
    rng = np.random.default_rng(0)
    images = {c: rng.integers(0, 255, (224, 224, 3), np.uint8) for c in ("front", "wrist")}
    state = RobotState(t_host=0.0, joint_pos=np.zeros(6), joint_vel=np.zeros(6), gripper=1.0, ee_pos=np.zeros(3))
    times, server = [], []
    try:
        for i in range(n + 5):
            t0 = time.perf_counter()
            _, timing = client.predict(Observation(i, 0.0, state, TASK, images))
            times.append((time.perf_counter() - t0) * 1e3)
            server.append(timing.get("server_infer_ms", float("nan")))
    finally:
        client.close()
    t, s = np.array(times[5:]), np.array(server[5:])
    return {"requests": n, "p50": float(np.percentile(t, 50)), "p99": float(np.percentile(t, 99)),
            "max": float(t.max()), "server_infer_p50": float(np.percentile(s, 50))}


def rollouts_each(url: str, folder: Path, n: int, seed: int, strategy: str) -> dict:
    """``n`` rollouts, one ``run-policy`` each (seeds ``seed``…), so a kill stops one rollout, not the batch.

    A watchdog stop means the machine starved the control loop (not the policy's doing): such rollouts are
    counted apart, and the success rate is also given over the rollouts that ran to their end.
    """
    runs = []
    for i in range(n):
        out, stats = folder / f"seed_{seed + i}", folder / f"seed_{seed + i}.stats.json"
        proc = cli("run-policy", "--policy", url, "--episodes", "1", "--headless", "--strategy", strategy,
                   "--seconds", "20", "--task", TASK, "--out", str(out), "--seed", str(seed + i),
                   "--stats-json", str(stats))
        stopped = re.search(r"stopped by the kill switch \((.*)\); the last", proc.stderr)
        loop = json.loads(stats.read_text()) if stats.exists() else {}
        runner = (loop.get("policy") or {}).get("runner") or {}
        runs.append({"seed": seed + i, "success": any(ok for _, ok, _ in outcomes(proc.stdout)),
                     "exit_code": proc.returncode, "stopped": stopped[1] if stopped else None,
                     "answer_latency_ms": runner.get("latency_ms"), "loop_hz": loop.get("achieved_hz")})
    watchdog = [r for r in runs if r["stopped"] and r["stopped"].startswith("watchdog")]
    ran = [r for r in runs if r not in watchdog]
    return {"rollouts": n, "successes": sum(r["success"] for r in runs), "watchdog_stops": len(watchdog),
            "successes_of_rollouts_not_stopped_by_the_watchdog": f"{sum(r['success'] for r in ran)}/{len(ran)}",
            "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the checkpoint and rollouts")
    parser.add_argument("--demos-dir", type=Path, default=None, help="train on these demos")
    parser.add_argument("--checkpoint", type=Path, default=None, help="serve this checkpoint instead of training")
    parser.add_argument("--epochs", type=int, default=TrainOptions.epochs)
    parser.add_argument("--rollouts", type=int, default=10)
    parser.add_argument("--rollout-seed", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--strategy", default="async")
    args = parser.parse_args()
    if (args.demos_dir is None) == (args.checkpoint is None):
        parser.error("give --demos-dir (to train) or --checkpoint")

    args.work.mkdir(parents=True, exist_ok=True)
    report: dict = {"task": TASK}
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = args.work / "builtin_served.pt"
        report["train"] = train_policy(args.demos_dir, checkpoint, TrainOptions(epochs=args.epochs))
    proc, url = start_server(checkpoint, args.port)
    try:
        report["loopback_latency_ms"] = latency_ms(url, args.requests)
        report["rollouts"] = rollouts_each(url, args.work / f"rollouts_served_{args.strategy}", args.rollouts,
                                           args.rollout_seed, args.strategy)
    finally:
        proc.terminate()
        proc.wait(10)
    report["rollouts"]["policy"] = f"{url} serving {checkpoint}"
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
