"""Episode recording under a realistic load, and crash recovery under SIGKILL.

Synthetic sources drive the real Recorder → EpisodeWriter path: a 100 Hz control
loop stand-in publishing TickRecords, and three 640x480 cameras at 30 fps whose
images look like camera images to JPEG (gradients, sensor noise, moving shapes).
Prints one JSON object.

    python benchmarks/recording.py --seconds 120      # throughput, drops, lag, finalize, size, CPU
    python benchmarks/recording.py --crash 20         # SIGKILL a recording process 20 times

The first mode runs the sources alone for ``--baseline-s`` first, so the loop's
period jitter and the CPU cost can be compared with and without recording.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.base import Camera  # noqa: E402
from drivers.streams import Broadcast  # noqa: E402
from drivers.types import Frame, RobotState  # noqa: E402
from recordings.reader import Episode, EpisodeError  # noqa: E402
from recordings.recorder import Recorder  # noqa: E402
from recordings.repair import repair  # noqa: E402
from drivers.types import TickRecord  # noqa: E402

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
RATE_HZ = 100.0
CAMERAS = ("front", "wrist", "side")
W, H, FPS = 640, 480, 30.0
RIG_META = {"rig": "benchmark", "robot_type": "synthetic", "control_rate_hz": RATE_HZ}
MAX_LOSS_S = 1.0
_print_lock = threading.Lock()  # lines of the crash child's threads must not interleave


def say(*parts: object) -> None:
    with _print_lock:
        print(*parts, flush=True)


class Loop:
    """A 100 Hz control-loop stand-in: publishes a TickRecord per period and measures its own periods."""

    def __init__(self, report: bool = False) -> None:
        self.ticks: Broadcast[TickRecord] = Broadcast()
        self.rate_hz = RATE_HZ
        self.running = True
        self.robot = SimpleNamespace(joint_names=JOINTS)
        self.report = report
        self.periods: list[float] = []
        self.stopped = threading.Event()

    def subscribe(self, name: str, maxsize: int):
        return self.ticks.subscribe(name, maxsize)

    def run(self) -> None:
        deadline = prev = time.monotonic()
        index = 0
        while not self.stopped.is_set():
            t = time.monotonic()
            self.periods.append(t - prev)
            prev = t
            q = np.sin(0.01 * index + np.arange(len(JOINTS)))
            state = RobotState(t_host=t, joint_pos=q, joint_vel=-q, gripper=0.5, ee_pos=q[:3])
            self.ticks.publish(TickRecord(index, t, t, state, q, np.append(q, 0.0), "ee_delta", "human", 0, False))
            if self.report:
                say("tick", index, repr(t), repr(time.monotonic()))
            index += 1
            deadline += 1.0 / RATE_HZ
            time.sleep(max(0.0, deadline - time.monotonic()))


class SyntheticCamera(Camera):
    """640x480 at 30 fps: a lit-looking gradient, sensor noise and shapes that move every frame."""

    def __init__(self, name: str, seed: int) -> None:
        super().__init__(name, W, H, FPS)
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        light = 0.6 + 0.4 * np.cos((xx - W * rng.random()) / W * 2.5) * np.cos((yy - H * rng.random()) / H * 2.0)
        tint = rng.uniform(0.5, 1.0, 3)
        self.base = (light[..., None] * tint * 220).astype(np.int16)
        self.base[H * 2 // 3:] //= 2  # a "table" edge
        self.noise = [rng.normal(0, 4, (H, W, 3)).astype(np.int16) for _ in range(8)]
        self.stopped = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True).start()

    def stop(self) -> None:
        self.stopped.set()

    def image(self, seq: int) -> np.ndarray:
        image = np.clip(self.base + self.noise[seq % len(self.noise)], 0, 255).astype(np.uint8)
        x = int(W / 2 + W / 3 * np.sin(seq / 20))
        cv2.rectangle(image, (x - 40, 200), (x + 40, 280), (200, 60, 40), -1)
        cv2.circle(image, (W - x, 120 + seq % 60), 30, (40, 180, 90), -1)
        cv2.putText(image, f"{seq:06d}", (20, 460), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        return image

    def _run(self) -> None:
        seq, deadline = 0, time.monotonic()
        while not self.stopped.is_set():
            image = self.image(seq)
            t = time.monotonic()
            self._publish(Frame(self.name, image, t_capture=t, t_host=t, seq=seq))
            seq += 1
            deadline += 1.0 / FPS
            time.sleep(max(0.0, deadline - time.monotonic()))


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _ms(values: list[float]) -> dict[str, float]:
    x = np.asarray(values) * 1e3
    return {"p50": round(float(np.percentile(x, 50)), 2), "p99": round(float(np.percentile(x, 99)), 2),
            "max": round(float(x.max()), 2)}


def benchmark(seconds: float, baseline_s: float, folder: Path) -> dict[str, Any]:
    loop = Loop()
    cameras = {name: SyntheticCamera(name, seed) for seed, name in enumerate(CAMERAS)}
    for cam in cameras.values():
        cam.start()
    threading.Thread(target=loop.run, name="loop", daemon=True).start()
    cpu0 = _cpu_s()
    time.sleep(baseline_s)
    cpu1, base_periods = _cpu_s(), list(loop.periods)

    recorder = Recorder(loop, cameras, folder, RIG_META)
    n_periods = len(loop.periods)
    path = recorder.start_episode("benchmark")
    time.sleep(seconds)
    t = time.perf_counter()
    recorder.stop_episode(success=True)
    stop_ms = (time.perf_counter() - t) * 1e3
    cpu2 = _cpu_s()
    rec_periods = loop.periods[n_periods:]
    loop.stopped.set()
    for cam in cameras.values():
        cam.stop()
    stats = recorder.stats()

    with Episode.open(path) as ep:
        minutes = ep.full_duration / 60
        per_camera = {}
        for name in CAMERAS:
            n = ep.frame_count(name, trimmed=False)
            stored = ep.h5[f"cameras/{name}/data"].shape[0]
            per_camera[name] = {
                "offered": stats["offered"][name],
                "written": n,
                "dropped": stats["dropped"][name],
                "mb_per_min_stored": round(stored / 1e6 / minutes, 1),
                "mb_per_min_raw": round(n * W * H * 3 / 1e6 / minutes, 1),
                "compression": round(n * W * H * 3 / stored, 1),
                "mean_jpeg_kb": round(stored / n / 1e3, 1),
            }
        ticks_written = ep.tick_count(trimmed=False)
        file_mb = path.stat().st_size / 1e6
    return {
        "seconds": seconds,
        "cameras": f"{len(CAMERAS)} x {W}x{H} @ {FPS:g} fps",
        "ticks": {"offered": stats["offered"]["ticks"], "written": ticks_written, "dropped": stats["dropped"]["ticks"]},
        "frames": per_camera,
        "disk_lag_ms": stats["disk_lag_ms"],  # capture → flushed to the file
        "finalize_ms": round(recorder.finalize_s * 1e3, 2),
        "stop_episode_ms": round(stop_ms, 2),
        "file_mb": round(file_mb, 1),
        "cpu_s_per_s": {"sources_only": round((cpu1 - cpu0) / baseline_s, 3),
                        "sources_and_recorder": round((cpu2 - cpu1) / seconds, 3)},
        "cpu_s_recorder": round((cpu2 - cpu1) - (cpu1 - cpu0) / baseline_s * seconds, 1),
        "loop_period_ms": {"baseline": _ms(base_periods[1:]), "recording": _ms(rec_periods)},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3, 1),
        "targets": {"frames_dropped_0": all(c["dropped"] == 0 for c in per_camera.values()),
                    "finalize_under_500ms": recorder.finalize_s < 0.5,
                    "stored_at_most_tenth_of_raw": all(c["compression"] >= 10 for c in per_camera.values())},
    }


def child(folder: Path) -> None:
    """Record until killed, printing ``start <path> <t>`` and ``tick <i> <t> <t_published>`` lines."""
    loop = Loop(report=True)
    cameras = {name: SyntheticCamera(name, seed) for seed, name in enumerate(CAMERAS)}
    for cam in cameras.values():
        cam.start()
    threading.Thread(target=loop.run, daemon=True).start()
    path = Recorder(loop, cameras, folder, RIG_META).start_episode("crash benchmark")
    say("start", path, repr(time.monotonic()))
    threading.Event().wait()


def kill_once(folder: Path, delay_s: float) -> dict[str, Any]:
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(folder)], stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("start"):
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not started.wait(60):
        proc.kill()
        raise RuntimeError("the recording child did not start")
    time.sleep(delay_s)
    t_kill = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    reader.join(5)
    start = next(line.split() for line in lines if line.startswith("start"))
    path, t_start = Path(start[1]), float(start[2])
    ticks = {}
    for line in lines:
        parts = line.split()
        if parts[0] == "tick" and len(parts) == 4 and line.endswith("\n"):
            ticks[int(parts[1])] = (float(parts[2]), float(parts[3]))
    required = {i for i, (t, done) in ticks.items() if t >= t_start and done <= t_kill - MAX_LOSS_S}
    out: dict[str, Any] = {"delay_s": round(delay_s, 2)}
    try:
        with Episode.open(path) as ep:
            out["opened"] = True
            out["status"] = ep.status
    except EpisodeError as exc:
        out["opened"] = False
        out["open_error"] = str(exc)
    try:
        t = time.perf_counter()
        out["repaired"] = repair(path, idle_s=0).repaired
        out["repair_ms"] = round((time.perf_counter() - t) * 1e3, 1)
        with Episode.open(path) as ep:
            have = set(ep.ticks(trimmed=False)["tick"].tolist())
            out["ticks_in_file"] = len(have)
            out["ticks_lost_older_than_1s"] = len(required - have)
            out["newest_tick_age_at_kill_s"] = round(t_kill - ep.t0 - ep.full_duration, 3)
            out["frames_in_file"] = {c: ep.frame_count(c, trimmed=False) for c in ep.camera_names}
    except EpisodeError as exc:
        out["repaired"] = False
        out["repair_error"] = str(exc)
        out["ticks_lost_older_than_1s"] = len(required)
    return out


def crash(n: int, seed: int, folder: Path) -> dict[str, Any]:
    rng = random.Random(seed)
    kills = []
    for k in range(n):
        sub = folder / f"kill_{k:03d}"
        sub.mkdir()
        kills.append(kill_once(sub, rng.uniform(0.3, 6.0)))
    lost = [k["ticks_lost_older_than_1s"] for k in kills]
    return {
        "kills": n,
        "cameras": f"{len(CAMERAS)} x {W}x{H} @ {FPS:g} fps, ticks at {RATE_HZ:g} Hz",
        "opened_as_is": sum(k["opened"] for k in kills),
        "repaired": sum(k.get("repaired", False) for k in kills),
        "failed": sum("repair_error" in k for k in kills),
        "ticks_lost_older_than_1s": {"total": sum(lost), "max": max(lost)},
        "newest_tick_age_at_kill_s_max": max(k.get("newest_tick_age_at_kill_s", float("inf")) for k in kills),
        "per_kill": kills,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--baseline-s", type=float, default=10.0, help="sources alone first, for comparison")
    parser.add_argument("--crash", type=int, default=0, metavar="N", help="SIGKILL a recording process N times")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    with tempfile.TemporaryDirectory(prefix="recording-bench-") as tmp:
        if args.crash:
            result = crash(args.crash, args.seed, Path(tmp))
        else:
            result = benchmark(args.seconds, args.baseline_s, Path(tmp))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
