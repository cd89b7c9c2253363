"""Control-loop timing on the sim rig with both cameras rendering, and kill-switch latency.

Runs the built-in sim rig headless at its rate (100 Hz) with the scripted expert
driving, while another thread fires the kill switch (≥ 200 times over the run
by default) and re-arms it. Prints one JSON object.

    python benchmarks/loop_timing.py --seconds 20
"""

from __future__ import annotations

import argparse
import json
import os
import random
import threading
import time

os.environ.setdefault("MUJOCO_GL", "egl")

from teleop_app.config import load_rig  # noqa: E402
from teleop_app.rig import build_rig  # noqa: E402
from teleop_app.modes import Mode  # noqa: E402


def fire_kills(rig, stop: threading.Event, out: list[int]) -> None:
    """Trigger, wait until the loop has acted, re-arm; random gaps so triggers land anywhere in a period."""
    loop, kill = rig.loop, rig.kill
    rng = random.Random(0)
    while not stop.wait(rng.uniform(0.02, 0.05)):
        before = len(loop.kill_latencies)
        kill.trigger("benchmark")
        deadline = time.monotonic() + 1.0
        while len(loop.kill_latencies) == before and time.monotonic() < deadline:
            time.sleep(0.001)
        out[0] += 1
        if stop.wait(rng.uniform(0.01, 0.03)):
            break
        kill.rearm()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rig", default=None)
    parser.add_argument("--no-kills", action="store_true", help="measure the loop without kill triggers")
    args = parser.parse_args()

    rig = build_rig(load_rig(args.rig), active_input="scripted")
    rig.start()
    try:
        rig.loop.reset_scene(seed=0).result(timeout=5)
        rig.modes.set_mode(Mode.TELEOP)
        time.sleep(1.0)  # let cameras reach their rate before measuring
        seq0 = {n: (c.latest().seq if c.latest() else -1, time.monotonic()) for n, c in rig.cameras.items()}
        rig.loop.reset_stats()
        stop = threading.Event()
        fired = [0]
        killer = None
        if not args.no_kills:
            killer = threading.Thread(target=fire_kills, args=(rig, stop, fired), daemon=True)
            killer.start()
        t0 = time.monotonic()
        time.sleep(args.seconds)
        stop.set()
        if killer is not None:
            killer.join()
        t1 = time.monotonic()
        fps = {}
        for name, cam in rig.cameras.items():
            frame = cam.latest()
            s0, ts = seq0[name]
            fps[name] = round(((frame.seq if frame else -1) - s0) / (t1 - ts), 2)
        stats = rig.loop.stats()
    finally:
        rig.close()

    result = {
        "seconds": round(t1 - t0, 3),
        "cpu_count": os.cpu_count(),
        "target_hz": rig.config.rate_hz,
        "achieved_hz": round(stats["achieved_hz"], 3),
        "achieved_ratio": round(stats["achieved_hz"] / rig.config.rate_hz, 4),
        "period_p50_ms": stats["period_p50_ms"],
        "period_p99_ms": stats["period_p99_ms"],
        "period_max_ms": stats["period_max_ms"],
        "overruns": stats["overruns"],
        "camera_fps": fps,
        "kill_triggers": fired[0],
        "kill_latency_ms": stats["kill_latency_ms"],
        "sections_ms": stats["sections_ms"],
        "watchdog_trips": stats["watchdog_trips"],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
