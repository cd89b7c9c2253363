"""A device's kill button is STOP in every entry point, on the control tick that sees the press.

The SpaceMouse is emulated at the HID layer (tests/fake_hid.py): the real driver
reads real report bytes and counts the press; the control loop reads the count
at the start of every tick, latches the kill switch and sends the hold in that
same tick — in ``teleop``, ``collect``, ``run-policy`` and ``episodes replay``
alike, with no window and nothing polling.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import drivers.spacemouse as spacemouse_module
from fake_hid import Bus, FakeHID
from policies import loading
from policy_helpers import HoldPolicy
from recordings.reader import Episode
from spacemouse_cli_child import PRO, press, spacemouse_rig
from synthetic_episodes import make_episode
from teleop_app import cli
from teleop_app import rig as rig_module
from waiting import wait_for

HERE = Path(__file__).resolve().parent
REASON = "kill button on spacemouse"


@pytest.fixture
def rig_file(tmp_path):
    path = tmp_path / "kill_rig.toml"
    path.write_text(spacemouse_rig())
    return path


@pytest.fixture
def spacemouse(monkeypatch):
    hid = FakeHID(ids=PRO)
    monkeypatch.setattr(spacemouse_module, "default_hid_enumerate", Bus(hid))
    return hid


@pytest.fixture
def built(monkeypatch):
    """Every rig the command builds, with a subscription to all its ticks (taken before it starts)."""
    rigs, build_rig = [], rig_module.build_rig

    def build_and_remember(*args, **kwargs):
        rig = build_rig(*args, **kwargs)
        rig.test_ticks = rig.loop.subscribe("test", maxsize=100_000)
        rigs.append(rig)
        return rig

    monkeypatch.setattr(rig_module, "build_rig", build_and_remember)
    return rigs


def press_when(hid: FakeHID, ready) -> None:
    def run():
        if wait_for(ready, timeout=30):
            press(hid)

    threading.Thread(target=run, daemon=True).start()


def assert_held_on_the_tick_that_saw_the_press(rig) -> None:
    """The kill switch latched inside a tick (reading the buttons) and that very tick held the robot."""
    kill = rig.kill
    assert kill.reason == REASON, kill.reason
    records = rig.test_ticks.drain()
    first = next(i for i, r in enumerate(records) if r.killed)
    assert records[first].t <= kill.t_trigger < records[first].t_sent  # triggered in this tick, before it sent
    assert not records[first - 1].killed and all(r.killed for r in records[first:])
    sent = [(t, s) for t, _, s in rig.robot.command_log if t >= kill.t_trigger]
    assert sent[0][1] == "kill" and {s for _, s in sent} == {"kill"}


def test_teleop_headless(rig_file, spacemouse, built, capsys):
    press_when(spacemouse, lambda: built and built[0].loop.stats()["ticks"] > 50)
    code = cli.main(["teleop", "--headless", "--rig", str(rig_file), "--input", "scripted", "--seconds", "3"])
    assert code == 0
    assert f"STOPPED: {REASON}" in capsys.readouterr().err
    assert_held_on_the_tick_that_saw_the_press(built[0])


def test_collect_through_the_command_in_a_subprocess(rig_file, tmp_path):
    trigger, out = tmp_path / "press-now", tmp_path / "demos"
    child = subprocess.Popen(
        [sys.executable, str(HERE / "spacemouse_cli_child.py"), str(trigger), "--", "collect", "--headless",
         "--rig", str(rig_file), "--input", "scripted", "--episodes", "3", "--seconds", "20", "--task", "pick",
         "--out", str(out), "--seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, MUJOCO_GL="egl"))
    try:
        assert wait_for(lambda: (out / "episode_000001.h5").exists(), timeout=60)
        trigger.touch()
        stdout, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 1, stderr
    assert f"stopped by the kill switch ({REASON})" in stderr and "Traceback" not in stderr
    t_press = float(next(line for line in stdout.splitlines() if line.startswith("pressed")).split()[1])
    assert [p.name for p in out.glob("episode_*.h5")] == ["episode_000001.h5"]  # the batch stopped
    with Episode.open(out / "episode_000001.h5") as ep:
        assert ep.meta["success"] == "false" and f"stopped by the kill switch: {REASON}" in ep.meta["notes"]
        ticks, t0 = ep.ticks(trimmed=False), ep.t0
    killed = np.flatnonzero(ticks["safety"] & 16)
    assert killed.size and np.all(np.diff(killed) == 1) and killed[-1] == len(ticks["t"]) - 1  # latched to the end
    assert t0 + ticks["t"][killed[0]] > t_press  # held after the press, not before


def test_run_policy(rig_file, spacemouse, built, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(loading.FILE_LOADERS, ".hold", lambda path, **options: HoldPolicy(chunk=10))
    (tmp_path / "m.hold").write_text("synthetic")
    press_when(spacemouse, lambda: built and built[0].loop.stats()["policy"]["ticks"] > 50)
    code = cli.main(["run-policy", "--policy", str(tmp_path / "m.hold"), "--headless", "--rig", str(rig_file),
                     "--episodes", "2", "--seconds", "10", "--task", "hold", "--out", str(tmp_path / "out")])
    assert code == 1
    assert f"stopped by the kill switch ({REASON})" in capsys.readouterr().err
    assert_held_on_the_tick_that_saw_the_press(built[0])
    assert len(list((tmp_path / "out").glob("episode_*.h5"))) == 1


def test_episodes_replay(rig_file, spacemouse, built, tmp_path, capsys):
    episode = tmp_path / "episode_000001.h5"
    make_episode(episode, seconds=2.0)
    press_when(spacemouse, lambda: built and (r := built[0].loop.latest()) is not None and r.source == "replay")
    code = cli.main(["episodes", "replay", str(episode), "--rig", str(rig_file)])
    assert code == 1
    assert f"stopped by the kill switch ({REASON})" in capsys.readouterr().err
    assert_held_on_the_tick_that_saw_the_press(built[0])
