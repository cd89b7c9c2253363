"""Export speed (LeRobot v3.0) and ALOHA image size, on a dataset made for the purpose. Prints one JSON object.

    nice -n 10 python benchmarks/export.py --episodes 3 --seconds 10

The dataset: ``--episodes`` episodes of ``--seconds`` s, ticks at 100 Hz, two
640x480 cameras at 30 fps whose frames look like camera images to a codec
(lit gradient, sensor noise, moving shapes; JPEG quality 90 as recorded).

LeRobot runs, each from the same files into a new folder:

- ``old``: the export as it was before issue 14's defaults — frames on the
  control-rate grid (100 fps) and cameras encoded one after the other in this
  process (``workers=0``);
- ``serial_30fps``: the default 30 fps grid, still one camera after the other;
- ``new``: the defaults — 30 fps, one worker process per camera.

Each reports ``realtime_x``: seconds of recording exported per second of wall
time, and ``cpu_s`` (this process and its worker processes), ``cores_used``
(cpu_s / wall: below the core count when other programs share the machine) and
``realtime_x_per_cpu_s`` (seconds of recording per CPU second: what one whole
core would give). ALOHA: one episode of ``--aloha-seconds`` s exported at 50 fps in the
compressed layout (JPEG rows, the default) and raw (``--raw``), with their sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.types import RobotState, TickRecord  # noqa: E402
from recordings.export_aloha import export_aloha  # noqa: E402
from recordings.export_lerobot import export_lerobot  # noqa: E402
from recordings.writer import EpisodeWriter  # noqa: E402

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
RATE_HZ = 100.0
CAMERAS = ("front", "wrist")
W, H, FPS = 640, 480, 30.0
T0 = 1000.0


def camera_images(seed: int, n: int) -> list[np.ndarray]:
    """``n`` JPEG frames of one camera: a lit gradient, noise that changes every frame, two moving shapes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    light = 0.55 + 0.45 * np.cos((xx - W * rng.random()) / W * 2.2) * np.cos((yy - H * rng.random()) / H * 1.7)
    base = (light[..., None] * rng.uniform(0.5, 1.0, 3) * 220).astype(np.int16)
    base[H * 3 // 5:] //= 2
    noise = [rng.normal(0, 3, (H, W, 3)).astype(np.int16) for _ in range(6)]
    out = []
    for k in range(n):
        image = np.clip(base + noise[k % len(noise)], 0, 255).astype(np.uint8)
        x = int(W / 2 + W / 3 * np.sin(k / 25 + seed))
        cv2.rectangle(image, (x - 45, 210), (x + 45, 290), (190, 70, 40), -1)
        cv2.circle(image, (W - x, 110 + k % 70), 28, (40, 170, 95), -1)
        ok, jpeg = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        out.append(jpeg.reshape(-1))
    return out


def make_episode(path: Path, seconds: float, seed: int) -> None:
    n = int(seconds * RATE_HZ)
    t = T0 + np.arange(n) / RATE_HZ
    phase = np.arange(n)[:, None] / RATE_HZ + np.arange(len(JOINTS))[None, :]
    q = (0.4 * np.sin(0.8 * phase)).astype(np.float32)
    meta = {"app_version": "benchmark", "rig": "benchmark", "robot_type": "sim_so101", "control_rate_hz": RATE_HZ,
            "task": "move the cube", "success": "true"}
    cams = {c: {"width": W, "height": H, "fps": FPS, "kind": "color", "intrinsics": None} for c in CAMERAS}
    writer = EpisodeWriter(path, meta, JOINTS, cams)
    writer.append_ticks([
        TickRecord(tick=k, t=t[k], t_sent=t[k],
                   state=RobotState(t_host=t[k], joint_pos=q[k], joint_vel=np.zeros(len(JOINTS)),
                                    gripper=float(k % 100) / 100, ee_pos=np.zeros(3)),
                   command=q[k] + 0.01, raw_input=None, input_kind="none", source="human", safety=0, killed=False)
        for k in range(n)])
    frames = int(seconds * FPS)
    for c, cam in enumerate(CAMERAS):
        for i, jpeg in enumerate(camera_images(seed * 10 + c, frames)):
            tc = T0 + 0.003 + i / FPS
            writer.append_encoded(cam, i, tc, tc + 0.004, jpeg)
    writer.finalize({})


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cpu_seconds() -> float:
    """CPU time of this process and of its finished (waited-for) children, worker processes included."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def lerobot_run(paths: list[Path], out: Path, data_s: float, **kwargs: object) -> dict:
    t, cpu = time.perf_counter(), cpu_seconds()
    report = export_lerobot(paths, out, **kwargs)
    wall, cpu = time.perf_counter() - t, cpu_seconds() - cpu
    assert len(report.exported) == len(paths), report.text()
    return {"fps": report.fps, "workers": kwargs.get("workers", "default"), "frames": report.total_frames,
            "wall_s": round(wall, 2), "realtime_x": round(data_s / wall, 2),
            "cpu_s": round(cpu, 2), "cores_used": round(cpu / wall, 2),
            "realtime_x_per_cpu_s": round(data_s / cpu, 2), "size_mb": round(folder_size(out) / 1e6, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--aloha-seconds", type=float, default=3.0)
    ap.add_argument("--skip-old", action="store_true", help="only the new path (the old one is slow)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        paths = [root / "data" / f"episode_{i + 1:06d}.h5" for i in range(args.episodes)]
        paths[0].parent.mkdir()
        for i, path in enumerate(paths):
            make_episode(path, args.seconds, seed=i + 1)
        make_s = time.perf_counter() - t
        data_s = args.episodes * (args.seconds - 1 / RATE_HZ)
        result: dict = {
            "dataset": {"episodes": args.episodes, "seconds_each": args.seconds, "cameras": len(CAMERAS),
                        "image": f"{W}x{H}", "camera_fps": FPS, "control_hz": RATE_HZ, "cpu_count": os.cpu_count(),
                        "load_average_1min": round(os.getloadavg()[0], 2), "made_in_s": round(make_s, 1)},
        }
        lerobot = {}
        if not args.skip_old:
            lerobot["old"] = lerobot_run(paths, root / "old", data_s, fps=int(RATE_HZ), workers=0)
            lerobot["serial_30fps"] = lerobot_run(paths, root / "serial", data_s, workers=0)
        lerobot["new"] = lerobot_run(paths, root / "new", data_s)
        if "old" in lerobot:
            lerobot["new_vs_old"] = round(lerobot["new"]["realtime_x"] / lerobot["old"]["realtime_x"], 2)
            lerobot["new_vs_serial_30fps"] = round(lerobot["new"]["realtime_x"] / lerobot["serial_30fps"]["realtime_x"], 2)
        result["lerobot"] = lerobot

        short = root / "aloha_src" / "episode_000001.h5"
        short.parent.mkdir()
        make_episode(short, args.aloha_seconds, seed=99)
        sizes = {}
        for name, compress in (("compressed", True), ("raw", False)):
            t = time.perf_counter()
            export_aloha([short], root / f"aloha_{name}", compress=compress)
            sizes[name] = {"bytes": folder_size(root / f"aloha_{name}"), "wall_s": round(time.perf_counter() - t, 2)}
        sizes["compressed_over_raw"] = round(sizes["compressed"]["bytes"] / sizes["raw"]["bytes"], 4)
        result["aloha"] = {"seconds": args.aloha_seconds, **sizes}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
