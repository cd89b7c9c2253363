"""The console model without a window: what the GUI's buttons and a device's buttons do."""

import time

import numpy as np
import pytest

from drivers.base import InputDevice
from drivers.types import InputState
from recordings.reader import Episode
from teleop_app.console import Console, ConsoleError
from teleop_app.session import Mode


class ButtonBox(InputDevice):
    """An input with an episode and a kill button and no motion, like a SpaceMouse left alone."""

    def __init__(self) -> None:
        super().__init__("box")
        self.counts = {"episode": 0, "kill": 0}

    def read(self) -> InputState:
        return InputState(device=self.name, t_host=time.monotonic(), ee_twist=np.zeros(6))

    def presses(self, role: str) -> int:
        return self.counts.get(role, 0)


@pytest.fixture
def console(sim_rig, tmp_path):
    box = ButtonBox()
    sim_rig.inputs["box"] = box
    sim_rig.loop.inputs["box"] = box
    sim_rig.start()
    c = Console(sim_rig, tmp_path / "data", operator="me")
    c.set_active_input("box")
    yield c
    c.close()


def test_start_needs_a_task_and_an_armed_robot(console):
    with pytest.raises(ConsoleError, match="task sentence"):
        console.start_episode()
    console.set_task("  wave  ")
    assert console.task == "wave"
    console.stop()
    with pytest.raises(ConsoleError, match="re-arm"):
        console.start_episode()
    console.rearm()
    path = console.start_episode()
    assert console.recording and console.mode is Mode.TELEOP and path.parent == console.dataset_dir
    with pytest.raises(ConsoleError, match="stop the episode"):
        console.set_dataset_dir("/tmp/elsewhere")
    time.sleep(0.3)
    result = console.keep(False)
    assert result.outcome == "failure" and console.episode_count == 1
    with Episode.open(result.path) as ep:
        assert ep.meta["success"] == "false" and ep.meta["task"] == "wave" and ep.meta["operator"] == "me"


def test_device_buttons_start_and_end_episodes_and_stop_the_robot(console):
    box = console.rig.inputs["box"]
    console.set_task("lift")
    events = []
    console.add_listener(events.append)
    console.poll()  # nothing pressed: nothing happens
    assert not console.recording
    box.counts["episode"] += 1
    console.poll()
    assert console.recording and "recording" in events
    time.sleep(0.3)
    box.counts["episode"] += 1
    console.poll()
    assert not console.recording
    with Episode.open(console.last_result.path) as ep:  # the sim can tell: the cube was not lifted
        assert ep.meta["success"] == "false"
    box.counts["kill"] += 1
    console.poll()
    assert console.stopped and console.rig.kill.reason == "kill button on box"


def test_stop_during_an_episode_is_noted_in_the_file(console):
    console.set_task("lift")
    console.start_episode()
    time.sleep(0.3)
    console.stop()
    result = console.keep(True)
    with Episode.open(result.path) as ep:
        assert "stopped by the kill switch: STOP pressed" in ep.meta["notes"]


def test_discard_leaves_nothing_and_close_keeps_a_running_episode(console, tmp_path):
    console.set_task("lift")
    console.start_episode()
    time.sleep(0.2)
    assert console.discard().path is None and console.episode_count == 0
    console.start_episode()
    time.sleep(0.2)
    console.close()  # the window closed mid-episode: kept, unlabelled
    files = list((tmp_path / "data").glob("episode_*.h5"))
    assert len(files) == 1
    with Episode.open(files[0]) as ep:
        assert ep.meta["success"] == "unknown" and ep.meta["status"] == "complete"


def test_the_episode_being_recorded_is_not_counted_as_kept(console):
    console.set_task("lift")
    console.start_episode()
    time.sleep(0.3)
    assert console.recorder.path.exists() and console.episode_count == 0
    console.keep(True)
    assert console.episode_count == 1
