"""`collect` under a kill: it stops at once, keeps the episode as a failure with the reason, and exits non-zero."""

import threading

from recordings.reader import Episode
from teleop_app import cli, rig as rig_module


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
