"""The episode batch behind `collect` and `run-policy`: each episode starts on fresh camera frames."""

import dataclasses
import time

from recordings.reader import Episode
from recordings.recorder import Recorder
from teleop_app.batch import record_episodes
from teleop_app.config import DeviceSpec, load_rig
from teleop_app.rig import build_rig
from teleop_app.session import Mode


def test_each_episode_starts_after_every_camera_shows_the_new_scene(tmp_path):
    config = load_rig()
    cameras = tuple(DeviceSpec(c.kind, c.type, c.name, {**c.options, "width": 160, "height": 120, "fps": 5.0})
                    for c in config.cameras)
    rig = build_rig(dataclasses.replace(config, cameras=cameras), active_input="scripted")
    rig.start()
    resets, begins = [], []
    reset_scene = rig.loop.reset_scene

    def remembering_reset(seed=None):
        future = reset_scene(seed)
        future.add_done_callback(lambda _: resets.append(time.monotonic()))
        return future

    rig.loop.reset_scene = remembering_reset

    def begin():
        begins.append({name: cam.latest().t_capture for name, cam in rig.cameras.items()})

    try:
        rig.session.set_mode(Mode.TELEOP)
        batch = record_episodes(rig, Recorder.for_rig(rig, tmp_path), episodes=2, seconds=0.5, task="t",
                                begin=begin)
    finally:
        rig.close()
    assert len(batch.outcomes) == 2 and len(begins) == 2
    for t_reset, frames in zip(resets, begins):
        assert all(t > t_reset for t in frames.values()), (t_reset, frames)  # 5 fps: a stale frame is likely
    with Episode.open(batch.outcomes[1].path) as ep:
        first = ep.frame_times("front")[0]
        assert ep.meta["t0"] + first > resets[1]  # no frame of the previous scene was recorded
