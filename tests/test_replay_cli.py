"""`teleop-app episodes replay`: a recorded episode played on the sim arm from the command line."""

import os
import signal
import threading

import numpy as np
import pytest

from teleop_app import cli
from teleop_app import rig as rig_module
from teleop_app.replay import Trajectory


run_cli = cli.main  # the command as teleop-app runs it, in this process


@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    out = tmp_path_factory.mktemp("demos")
    assert run_cli(["collect", "--headless", "--input", "scripted", "--seconds", "20", "--task", "pick",
                    "--out", str(out), "--no-cameras", "--seed", "7"]) == 0
    [path] = out.glob("episode_*.h5")
    return path


@pytest.fixture
def built(monkeypatch):
    rigs, build_rig = [], rig_module.build_rig

    def build_and_remember(*args, **kwargs):
        rigs.append(build_rig(*args, **kwargs))
        return rigs[-1]

    monkeypatch.setattr(rig_module, "build_rig", build_and_remember)
    return rigs


def test_replay_moves_the_arm_through_the_recorded_targets(episode, built, capsys):
    code = run_cli(["episodes", "replay", str(episode), "--no-cameras", "--ramp-speed", "2"])
    err = capsys.readouterr().err
    assert code == 0 and f"replayed {episode} on sim_so101" in err, err
    traj = Trajectory.from_episode(episode)
    last = built[0].loop.latest()  # the last tick before the rig closed
    assert np.max(np.abs(last.state.joint_pos[:5] - traj.q[-1][:5])) < 0.05  # the arm ended where the demo did
    assert np.allclose(last.command, traj.q[-1], atol=1e-6)  # commanded: the demo's last target


def test_ctrl_c_stops_the_replay_and_the_arm_holds(episode, built, capsys):
    threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    code = run_cli(["episodes", "replay", str(episode), "--no-cameras"])
    err = capsys.readouterr().err
    assert code == 1 and "stopped by the kill switch (Ctrl+C)" in err, err
    rig = built[0]
    after = [s for t, _, s in rig.robot.command_log if t > rig.kill.t_trigger]
    assert after and after.index("kill") <= 1 and set(after[after.index("kill"):]) == {"kill"}
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # pytest's Ctrl+C works again


def test_a_file_that_cannot_be_replayed_is_one_line(tmp_path, capsys):
    bad = tmp_path / "episode_000001.h5"
    bad.write_bytes(b"not an episode")
    assert run_cli(["episodes", "replay", str(bad), "--no-cameras"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("teleop-app: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1
