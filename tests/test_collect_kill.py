"""`collect` under a kill: it stops at once, keeps the episode as a failure with the reason, and exits non-zero."""

import threading

from recordings.reader import Episode
from teleop_app import cli, rig as rig_module
from command import wait_for_console  # tests/ is on sys.path


def test_kill_during_collect_stops_and_labels(tmp_path, monkeypatch, capsys):
    built, build_rig = [], rig_module.build_rig

    def build_and_remember(*args, **kwargs):
        rig = build_rig(*args, **kwargs)
        built.append(rig)
        threading.Timer(1.5, rig.loop.kill.trigger, args=("STOP pressed",)).start()
        return rig

    monkeypatch.setattr(rig_module, "build_rig", build_and_remember)
    code = cli.main(["collect", "--headless", "--no-cameras", "--input", "scripted", "--episodes", "3",
                     "--seconds", "20", "--task", "pick", "--out", str(tmp_path), "--seed", "3"])
    assert code == 1
    assert "stopped by the kill switch (STOP pressed)" in capsys.readouterr().err
    files = sorted(tmp_path.glob("episode_*.h5"))
    assert len(files) == 1  # no further episode was started
    with Episode.open(files[0]) as ep:
        assert ep.meta["success"] == "false" and "STOP pressed" in ep.meta["notes"]
        assert ep.duration < 5
    assert built[0].loop.kill.latched


def test_ctrl_c_names_the_episode_it_kept_and_its_label(tmp_path):
    """A user's Ctrl+C (SIGINT to the installed command) ends the running episode: stderr says which file, how."""
    import signal
    import subprocess
    import time

    from command import BIN  # tests/ is on sys.path

    proc = subprocess.Popen([str(BIN), "collect", "--headless", "--no-cameras", "--input", "scripted", "--episodes",
                             "3", "--seconds", "30", "--task", "pick", "--out", str(tmp_path), "--seed", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("episode_*.h5")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        time.sleep(1.0)  # a second of the episode recorded
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    files = sorted(tmp_path.glob("episode_*.h5"))
    assert proc.returncode == 1 and len(files) == 1, err
    assert f"Ctrl+C: {files[0]} kept as a failure" in err, err
    assert "Traceback" not in err
    with Episode.open(files[0]) as ep:
        assert ep.meta["success"] == "false" and "Ctrl+C" in ep.meta["notes"]


def test_ctrl_c_in_the_window_s_terminal_names_the_episode_it_kept(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    child = Path(__file__).parent / "gui_recording_child.py"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MUJOCO_GL="egl", XDG_CONFIG_HOME=str(tmp_path / "config"),
               PYTHONPATH=str(Path(__file__).parent.parent))
    proc = subprocess.Popen([sys.executable, str(child), str(tmp_path / "data")], env=env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_console(proc)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    err = proc.stderr.read()
    path = tmp_path / "data" / "episode_000001.h5"
    assert f"on closing, {path} kept unlabelled" in err, err
    with Episode.open(path) as ep:
        assert ep.meta["success"] == "unknown"
