"""Sim camera throughput: frames per second each camera reaches, and frame age, with nothing else running.

Connects the sim SO-101 (real time), advances it at 100 Hz from a plain thread
(no control loop, no inputs) and starts the sim cameras, all sharing the one
render process. Prints one JSON object.

    python benchmarks/render_only.py --seconds 10 --width 640 --height 480
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from drivers.sim.render import SimCamera, SimCameraConfig  # noqa: E402
from drivers.sim.robot import SimSO101, SimSO101Config  # noqa: E402
from drivers.types import JointCommand  # noqa: E402


def advance(robot: SimSO101, stop: threading.Event) -> None:
    """Hold the start pose and step the real-time physics at 100 Hz, as the control loop would."""
    target = JointCommand(robot.read().joint_pos.copy())
    while not stop.wait(0.01):
        robot.send(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=float, default=15.0, help="fps each camera asks for")
    parser.add_argument("--cameras", default="front,wrist", help="comma-separated scene cameras")
    args = parser.parse_args()

    robot = SimSO101(SimSO101Config(offscreen_width=args.width, offscreen_height=args.height))
    robot.connect()
    stop = threading.Event()
    stepper = threading.Thread(target=advance, args=(robot, stop), daemon=True)
    stepper.start()
    cameras = [SimCamera(SimCameraConfig(name, args.width, args.height, args.fps), robot=robot)
               for name in args.cameras.split(",")]
    t_start = time.monotonic()
    try:
        for cam in cameras:
            cam.start()
        t_ready = time.monotonic()
        time.sleep(1.0)  # warm-up: first frames, shader compilation
        subs = [cam.subscribe("bench", maxsize=100_000) for cam in cameras]
        t0 = time.monotonic()
        time.sleep(args.seconds)
        t1 = time.monotonic()
        frames = [sub.drain() for sub in subs]
        pid = cameras[0].render_pid
        render_cores = sorted(os.sched_getaffinity(pid)) if pid else None
        errors = {cam.name: cam.error for cam in cameras if cam.error}
    finally:
        for cam in cameras:
            cam.stop()
        stop.set()
        stepper.join()
        robot.disconnect()

    per_camera = {}
    for cam, fs in zip(cameras, frames):
        age = np.array([f.t_host - f.t_capture for f in fs]) * 1e3
        per_camera[cam.name] = {
            "frames": len(fs),
            "fps": round(len(fs) / (t1 - t0), 2),
            "age_ms_p50": round(float(np.percentile(age, 50)), 1) if len(fs) else None,
            "age_ms_p95": round(float(np.percentile(age, 95)), 1) if len(fs) else None,
        }
    result = {
        "seconds": round(t1 - t0, 3),
        "width": args.width,
        "height": args.height,
        "fps_requested": args.fps,
        "cpu_count": os.cpu_count(),
        "render_cores": render_cores,
        "start_s": round(t_ready - t_start, 2),
        "cameras": per_camera,
        "total_fps": round(sum(c["fps"] for c in per_camera.values()), 2),
        "errors": errors,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
