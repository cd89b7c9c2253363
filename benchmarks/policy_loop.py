"""The control loop under policy control: each chunk strategy against policies of set latency.

A synthetic policy (sleeps for its latency, then answers a 50-action chunk of a
known joint trajectory: joint 0 swings 0.2 rad with a 4 s period) drives the
sim rig without cameras. Per case: the loop rate achieved, starved ticks (no
action ready: the robot held), the longest stall, answer latency, how far the
sent joint 0 was from the trajectory, then the kill switch is fired and re-armed
``--kills`` times to measure its latency while the policy drives. Prints JSON.

    python benchmarks/policy_loop.py --seconds 5
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

from policies.base import ActionKind, Policy, PolicyInfo  # noqa: E402
from policies.runner import PolicyRunner  # noqa: E402
from policies.strategies import STRATEGIES, make_strategy  # noqa: E402
from teleop_app.config import load_rig  # noqa: E402
from teleop_app.rig import build_rig  # noqa: E402

AMPLITUDE, PERIOD_TICKS = 0.2, 400


class SwingPolicy(Policy):
    """Answers the reference trajectory for the ticks of the chunk after ``latency`` seconds."""

    def __init__(self, start: np.ndarray, chunk: int, latency: float) -> None:
        self.info = PolicyInfo(ActionKind.JOINT, len(start), chunk, name=f"swing {latency * 1e3:.0f} ms")
        self.start = start
        self.chunk = chunk
        self.latency = latency

    def predict(self, observation):
        time.sleep(self.latency)
        return reference(self.start, np.arange(observation.tick, observation.tick + self.chunk)), {}


def reference(start: np.ndarray, ticks: np.ndarray) -> np.ndarray:
    q = np.repeat(start[None, :], len(ticks), axis=0)
    q[:, 0] += AMPLITUDE * np.sin(2 * np.pi * ticks / PERIOD_TICKS)
    return q


def fire_kills(rig, n: int, rng: random.Random) -> None:
    """Trigger, wait until the loop has acted, re-arm; random gaps so triggers land anywhere in a period."""
    loop, kill = rig.loop, rig.kill
    for _ in range(n):
        time.sleep(rng.uniform(0.02, 0.05))
        before = len(loop.kill_latencies)
        kill.trigger("benchmark")
        deadline = time.monotonic() + 1.0
        while len(loop.kill_latencies) == before and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(rng.uniform(0.01, 0.03))
        kill.rearm()


def run_case(rig, strategy: str, latency: float, seconds: float, chunk: int, kills: int) -> dict:
    loop = rig.loop
    loop.reset_scene(seed=0).result(timeout=5)
    start = rig.robot.read().joint_pos.copy()
    runner = PolicyRunner.for_robot(rig.robot, rig.cameras, rig.config.rate_hz, SwingPolicy(start, chunk, latency),
                                    make_strategy(strategy, chunk), "swing")
    sub = loop.subscribe("bench", maxsize=int(rig.config.rate_hz * (seconds + 5)))
    loop.reset_stats()
    loop.start_policy(runner)
    time.sleep(seconds)
    stats = loop.stats()
    records = [r for r in sub.drain() if r.source == "policy" and not r.killed]
    fire_kills(rig, kills, random.Random(0))
    kill_stats = loop.stats()["kill_latency_ms"]
    loop.stop_policy()
    loop.ticks.unsubscribe(sub)
    pol = stats["policy"]
    ticks = np.array([r.tick for r in records])
    sent = np.array([r.command[0] for r in records])
    error = np.abs(sent - reference(start, ticks)[:, 0]) if records else np.zeros(0)
    period_ms = 1e3 / rig.config.rate_hz
    return {
        "strategy": strategy,
        "policy_latency_ms": latency * 1e3,
        "achieved_hz": round(stats["achieved_hz"], 2),
        "period_p99_ms": round(stats["period_p99_ms"], 2),
        "overruns": stats["overruns"],
        "policy_ticks": pol["ticks"],
        "starved_ticks": pol["starved_ticks"],
        "starved_fraction": round(pol["starved_ticks"] / max(pol["ticks"], 1), 4),
        "longest_stall_ms": round(pol["longest_stall_ticks"] * period_ms, 1),
        "inference_in_flight_fraction": round(pol["inference_in_flight_ticks"] / max(pol["ticks"], 1), 4),
        "chunks": pol["runner"]["chunks"],
        "answer_latency_ms": {k: None if v is None else round(v, 1)
                              for k, v in pol["runner"]["latency_ms"].items() if k in ("p50", "max")},
        "stale_actions_dropped": pol["runner"]["stale_actions_dropped"],
        "joint0_error_rad": {"mean": round(float(error.mean()), 4) if error.size else None,
                             "max": round(float(error.max()), 4) if error.size else None},
        "kill_latency_ms": {k: None if v is None else round(v, 2) for k, v in kill_stats.items()},
        "errors": pol["runner"]["errors"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per case")
    parser.add_argument("--latencies", default="5,50,150,500", help="policy latencies in ms")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--kills", type=int, default=10, help="kill/re-arm cycles per case")
    parser.add_argument("--rig", default=None)
    args = parser.parse_args()

    rig = build_rig(load_rig(args.rig).without_cameras())
    rig.start()
    cases = []
    try:
        for strategy in args.strategies.split(","):
            for ms in (float(x) for x in args.latencies.split(",")):
                cases.append(run_case(rig, strategy, ms / 1e3, args.seconds, args.chunk, args.kills))
    finally:
        rig.close()
    print(json.dumps({"seconds_per_case": args.seconds, "cpu_count": os.cpu_count(),
                      "target_hz": rig.config.rate_hz, "chunk_length": args.chunk,
                      "trajectory": f"joint 0 +{AMPLITUDE} rad sine, {PERIOD_TICKS} ticks", "cases": cases}, indent=2))


if __name__ == "__main__":
    main()
