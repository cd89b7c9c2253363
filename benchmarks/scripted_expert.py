"""Success rate of the scripted expert through the real control loop, in real time.

Each episode resets the sim scene with a new seed (random cube pose) and lets
the scripted expert drive until the sim's success detector fires or the time
limit passes. Prints one JSON object.

    python benchmarks/scripted_expert.py --episodes 20
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from teleop_app.config import load_rig  # noqa: E402
from teleop_app.rig import build_rig  # noqa: E402
from teleop_app.modes import Mode  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--limit", type=float, default=20.0, help="seconds per episode")
    parser.add_argument("--first-seed", type=int, default=1000)
    args = parser.parse_args()

    rig = build_rig(load_rig().without_cameras(), active_input="scripted")
    rig.start()
    times: list[float | None] = []
    try:
        rig.modes.set_mode(Mode.TELEOP)
        for i in range(args.episodes):
            rig.loop.reset_scene(seed=args.first_seed + i).result(timeout=5)
            t0 = time.monotonic()
            done = None
            while time.monotonic() - t0 < args.limit:
                if rig.robot.success():
                    done = time.monotonic() - t0
                    break
                time.sleep(0.02)
            times.append(done)
        stats = rig.loop.stats()
    finally:
        rig.close()
    ok = [t for t in times if t is not None]
    print(json.dumps({
        "episodes": len(times),
        "successes": len(ok),
        "success_rate": len(ok) / len(times),
        "time_to_success_s": {"mean": float(np.mean(ok)) if ok else None,
                              "max": float(np.max(ok)) if ok else None},
        "per_episode_s": times,
        "loop_achieved_hz": stats["achieved_hz"],
        "safety_counts": stats["safety_counts"],
    }, indent=2))


if __name__ == "__main__":
    main()
