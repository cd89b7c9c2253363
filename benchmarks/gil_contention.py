"""The control loop beside a thread that runs Python flat out (the window, a collection, a server).

Python threads share one interpreter lock (GIL). Each time the loop thread wakes,
or comes back from C code that let the lock go (a MuJoCo step), it must win the
lock back, and a busy thread may keep it for the whole switch interval. Variants:

    as_shipped      the sim steps its physics in one call; the loop sets a 1 ms switch interval
    switch_5ms      the same with CPython's default 5 ms switch interval
    per_step_calls  the physics stepped one call per step (how the sim did it before), 5 ms

Each variant runs in its own process: the sim rig without cameras, the scripted
expert driving, and a thread counting in Python for ``--seconds``. Prints JSON.

    python benchmarks/gil_contention.py --seconds 4 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time

VARIANTS = ("as_shipped", "switch_5ms", "per_step_calls")


def one(variant: str, seconds: float) -> dict:
    import mujoco

    from drivers.sim.robot import SimSO101
    from teleop_app import loop as loop_module
    from teleop_app.config import load_rig
    from teleop_app.rig import build_rig

    if variant in ("switch_5ms", "per_step_calls"):
        loop_module.GIL_SWITCH_S = 0.005
    if variant == "per_step_calls":
        def step_each(self, n):
            if n <= 0:
                return None
            for _ in range(n):
                mujoco.mj_step(self._model, self._data)
            self._update_success()
            return time.monotonic(), self._data.qpos.copy()

        SimSO101._step = step_each
    rig = build_rig(load_rig().without_cameras(), active_input="scripted")
    rig.start()
    try:
        time.sleep(0.5)
        rig.loop.reset_stats()
        end = time.monotonic() + seconds

        def busy() -> None:
            n = 0
            while time.monotonic() < end:
                n += 1

        thread = threading.Thread(target=busy)
        thread.start()
        thread.join()
        s = rig.loop.stats()
    finally:
        rig.close()
    return {"variant": variant, "switch_interval_ms": sys.getswitchinterval() * 1e3,
            "achieved_hz": round(s["achieved_hz"], 1), "period_p99_ms": round(s["period_p99_ms"], 1),
            "period_max_ms": round(s["period_max_ms"], 1), "watchdog_trips": s["watchdog_trips"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one run, in a child process
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(one(args.variant, args.seconds)))
        return
    runs = []
    for _ in range(args.rounds):  # alternated, so drift of the machine affects all alike
        for variant in VARIANTS:
            out = subprocess.run([sys.executable, __file__, "--variant", variant, "--seconds", str(args.seconds)],
                                 capture_output=True, text=True, check=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
    print(json.dumps({"runs": runs}, indent=2))


if __name__ == "__main__":
    main()
