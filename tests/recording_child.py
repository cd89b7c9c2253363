"""A recording process for the crash tests: synthetic ticks and frames through the real Recorder.

    python tests/recording_child.py DATASET_DIR [--episode-s S] [--flush-s S]

A synthetic control loop publishes 100 Hz ticks and two synthetic cameras publish
160x120 frames at 30 fps, into a real :class:`recordings.recorder.Recorder`. The
process records episodes back to back (each ``--episode-s`` long; 0 = one episode
until killed) and prints, flushed, one line per event, so the parent knows what
must have survived a SIGKILL:

    start <path> <t>                   an episode file was created; every sample stamped from t on is recorded
    tick <index> <t> <t_done>          a tick stamped t was published by t_done
    frame <camera> <seq> <t> <t_done>  a frame captured at t was published by t_done
    stop <path> <t>                    the episode was finalized; it was stopped at t
    discarded <path>                   the episode got no tick before it was stopped, and was deleted

Every value a tick carries is a function of its index (:func:`expected_state`).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.base import Camera  # noqa: E402
from drivers.streams import Broadcast  # noqa: E402
from drivers.types import Frame, RobotState  # noqa: E402
from recordings.recorder import Recorder, RecordingError  # noqa: E402
from drivers.types import TickRecord  # noqa: E402

JOINTS = ("a", "b", "c", "d", "e", "gripper")
RATE_HZ = 100.0
CAMERAS = ("front", "wrist")
W, H, FPS = 160, 120, 30.0
_print_lock = threading.Lock()


def say(*parts: object) -> None:
    with _print_lock:
        print(*parts, flush=True)


def expected_state(index: int) -> np.ndarray:
    return np.sin(0.01 * index + np.arange(len(JOINTS))).astype(np.float32)


class SyntheticLoop:
    """What the Recorder needs of a ControlLoop: ``subscribe``, ``ticks``, ``rate_hz``, ``running``, ``robot``."""

    def __init__(self, report: bool = False) -> None:
        self.ticks: Broadcast[TickRecord] = Broadcast()
        self.rate_hz = RATE_HZ
        self.running = True
        self.robot = SimpleNamespace(joint_names=JOINTS)
        self.report = report  # print every tick published
        self.index = 0
        self.stopped = threading.Event()

    def subscribe(self, name: str, maxsize: int):
        return self.ticks.subscribe(name, maxsize)

    def run(self) -> None:
        deadline = time.monotonic()
        while not self.stopped.is_set():
            t = time.monotonic()
            q = expected_state(self.index)
            state = RobotState(t_host=t, joint_pos=q, joint_vel=-q, gripper=0.5, ee_pos=q[:3])
            self.ticks.publish(TickRecord(tick=self.index, t=t, t_sent=t, state=state, command=q, raw_input=q,
                                          input_kind="joint", source="human", safety=0, killed=False))
            if self.report:
                say("tick", self.index, repr(t), repr(time.monotonic()))
            self.index += 1
            deadline += 1.0 / RATE_HZ
            time.sleep(max(0.0, deadline - time.monotonic()))


class SyntheticCamera(Camera):
    def __init__(self, name: str) -> None:
        super().__init__(name, W, H, FPS)
        yy, xx = np.mgrid[0:H, 0:W]
        self.base = np.stack([xx * 255 // W, yy * 255 // H, (xx + yy) * 255 // (W + H)], -1).astype(np.uint8)
        self.seq = 0

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def stop(self) -> None:
        pass

    def _run(self) -> None:
        while True:
            image = self.base.copy()
            x = (self.seq * 3) % (W - 20)
            image[40:60, x: x + 20] = 255
            t = time.monotonic()
            self._publish(Frame(self.name, image, t_capture=t, t_host=t, seq=self.seq))
            say("frame", self.name, self.seq, repr(t), repr(time.monotonic()))
            self.seq += 1
            time.sleep(1.0 / FPS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset_dir", type=Path)
    parser.add_argument("--episode-s", type=float, default=0.0)
    parser.add_argument("--flush-s", type=float, default=0.25, help="0: flush on every pass, so kills land in flushes")
    args = parser.parse_args()
    loop = SyntheticLoop(report=True)
    cameras = {name: SyntheticCamera(name) for name in CAMERAS}
    recorder = Recorder(loop, cameras, args.dataset_dir,
                        {"rig": "synthetic", "robot_type": "synthetic", "control_rate_hz": RATE_HZ},
                        flush_interval_s=args.flush_s)
    for cam in cameras.values():
        cam.start()
    threading.Thread(target=loop.run, daemon=True).start()
    while True:
        path = recorder.start_episode("synthetic task")
        say("start", path, repr(time.monotonic()))
        if args.episode_s <= 0:
            threading.Event().wait()
        time.sleep(args.episode_s)
        t = time.monotonic()
        try:
            say("stop", recorder.stop_episode(success=True), repr(t))
        except RecordingError:  # starved of CPU, no tick came in time: the recorder deleted the empty file
            say("discarded", path)


if __name__ == "__main__":
    main()
