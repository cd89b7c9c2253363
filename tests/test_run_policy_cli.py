"""`run-policy` end to end: a real openpi websocket server in this process drives the sim rig.

The server's policy is the scripted expert behind the protocol (it reads the sim
like a privileged model would), so a working pipeline lifts the cube and the
episode is labelled a success by the sim's detector.
"""

import json

import numpy as np
import pytest

from drivers.sim.scripted import ScriptedExpert, ScriptedExpertConfig
from policy_servers import OpenPIServer  # tests/ is on sys.path
from recordings.reader import Episode
from teleop_app import cli
from teleop_app import rig as rig_module

CHUNK = 5
STATE_MAP = ["--obs-map", "observation/state=state", "--obs-map", "prompt=task"]


run_cli = cli.main  # the command as teleop-app runs it, in this process


@pytest.fixture
def expert_server(monkeypatch):
    """An openpi server whose answers come from the scripted expert on the rig the CLI builds."""
    built, build_rig = [], rig_module.build_rig

    def build_and_remember(*args, **kwargs):
        rig = build_rig(*args, **kwargs)
        built.append(rig)
        return rig

    monkeypatch.setattr(rig_module, "build_rig", build_and_remember)
    experts = []
    fail_at = {}

    def respond(obs, n):
        if fail_at.get("hold"):  # a policy that does nothing: the arm stays where it is
            return "reply", {"actions": np.tile([0, 0, 0, 0, 0, 0, 1.0], (CHUNK, 1)).astype(np.float32)}
        if n == fail_at.get("n"):
            return "error", "Traceback (most recent call last):\nRuntimeError: CUDA error: device-side assert"
        if not experts:
            experts.append(ScriptedExpert(ScriptedExpertConfig(), robot=built[0].robot))
        inp = experts[0].read()
        step = np.append(inp.ee_twist / built[0].config.rate_hz, inp.gripper)
        return "reply", {"actions": np.repeat(step[None, :], CHUNK, axis=0).astype(np.float32)}

    server = OpenPIServer(respond)
    server.fail_at = fail_at
    server.built = built
    yield server
    server.close()


def test_rollout_recorded_as_a_successful_policy_episode(expert_server, tmp_path, capsys):
    stats_file = tmp_path / "stats.json"
    code = run_cli(["run-policy", "--policy", expert_server.url, "--episodes", "1", "--headless",
                    "--strategy", "async", "--seconds", "25", "--task", "pick up the cube", "--out",
                    str(tmp_path / "ds"), "--no-cameras", "--seed", "3", "--action-kind", "ee_delta",
                    "--chunk-length", str(CHUNK), "--stats-json", str(stats_file), *STATE_MAP])
    err = capsys.readouterr().err
    assert code == 0, err
    files = sorted((tmp_path / "ds").glob("episode_*.h5"))
    assert len(files) == 1
    with Episode.open(files[0]) as ep:
        assert ep.meta["success"] == "true" and ep.meta["task"] == "pick up the cube"
        assert ep.meta["notes"] == f"policy {expert_server.url}, strategy async, threshold half a chunk, crossfade blend"
        ticks = ep.ticks()
    assert set(ticks["source_names"][ticks["source"]]) == {"policy"}
    assert set(ticks["input_kind_names"][ticks["input_kind"]]) <= {"ee_delta", "none"}
    assert "1/1 successful rollouts" in err
    stats = json.loads(stats_file.read_text())
    assert stats["policy"]["ticks"] > 100 and stats["policy"]["runner"]["chunks"] > 20
    assert not stats["kill"]["latched"]
    assert expert_server.requests[0]["prompt"] == "pick up the cube"


def test_a_server_error_stops_the_run_and_labels_the_episode(expert_server, tmp_path, capsys):
    expert_server.fail_at["n"] = 20
    code = run_cli(["run-policy", "--policy", expert_server.url, "--episodes", "3", "--headless",
                    "--strategy", "open-loop", "--seconds", "20", "--task", "pick", "--out", str(tmp_path),
                    "--no-cameras", "--seed", "3", "--action-kind", "ee_delta", *STATE_MAP])
    err = capsys.readouterr().err
    reason = "policy: openpi server error: RuntimeError: CUDA error: device-side assert"
    assert code == 1, err
    assert f"stopped by the kill switch ({reason})" in err
    files = sorted(tmp_path.glob("episode_*.h5"))
    assert len(files) == 1  # no further rollout was started
    with Episode.open(files[0]) as ep:
        assert ep.meta["success"] == "false" and reason in ep.meta["notes"]
        assert ep.duration < 5
    rig = expert_server.built[0]
    t_kill = rig.kill.t_trigger
    after = [s for t, _, s in rig.robot.command_log if t > t_kill]
    assert after.index("kill") <= 1 and set(after[after.index("kill"):]) == {"kill"}


def test_a_policy_that_fails_its_first_answer_still_leaves_an_episode(expert_server, tmp_path, capsys):
    """The kill comes before the recorder's first tick: the episode still holds the moment (the robot holding)."""
    expert_server.fail_at["n"] = 1
    code = run_cli(["run-policy", "--policy", expert_server.url, "--episodes", "2", "--headless", "--task", "pick",
                    "--out", str(tmp_path), "--no-cameras", "--action-kind", "ee_delta", *STATE_MAP])
    err = capsys.readouterr().err
    assert code == 1 and "stopped by the kill switch (policy: openpi server error" in err, err
    [path] = tmp_path.glob("episode_*.h5")
    with Episode.open(path) as ep:
        assert ep.meta["success"] == "false" and "CUDA error" in ep.meta["notes"] and ep.tick_count() >= 1


def test_a_human_takes_over_with_an_input_of_the_rig(expert_server, tmp_path, capsys):
    """The policy holds still; the scripted expert, named as the takeover input, moves and finishes the task."""
    expert_server.fail_at["hold"] = True
    code = run_cli(["run-policy", "--policy", expert_server.url, "--episodes", "2", "--headless", "--seconds", "25",
                    "--task", "pick", "--out", str(tmp_path), "--no-cameras", "--seed", "3", "--action-kind",
                    "ee_delta", "--chunk-length", str(CHUNK), "--takeover", "scripted", "--hand-back-after", "0",
                    *STATE_MAP])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "2/2 successful rollouts" in err and "2 human takeover(s)" in err
    for path in sorted(tmp_path.glob("episode_*.h5")):
        with Episode.open(path) as ep:
            assert ep.meta["success"] == "true" and ep.meta["notes"].endswith("; 1 human takeover(s)")
            ticks = ep.ticks()
        sources = ticks["source_names"][ticks["source"]]
        assert set(sources) <= {"policy", "intervention"} and sources[-1] == "intervention"
        assert np.mean(sources == "intervention") > 0.9  # the expert moves from the first ticks on


@pytest.mark.parametrize("argv, message", [
    (["--policy", "ws://127.0.0.1:9", *STATE_MAP, "--takeover", "spacemouse"],
     "--takeover spacemouse: this rig has no such input (it has: scripted, keyboard)"),
    (["--policy", "ws://127.0.0.1:9", *STATE_MAP, "--takeover-twist", "0.1"],
     "--takeover-twist and --takeover-joints need --takeover INPUT"),
    (["--policy", "/no/such/policy.pt"], "no such checkpoint file"),
    (["--policy", "ws://127.0.0.1:9", *STATE_MAP], "cannot connect to the openpi server ws://127.0.0.1:9"),
    (["--policy", "ws://127.0.0.1:9"], "the observation map uses camera(s) front, wrist but the rig has none"),
    (["--policy", "http://127.0.0.1:9/act"], "OpenVLA needs a camera image; the rig has no camera"),
    (["--policy", "ws://127.0.0.1:9", "--obs-map", "state"], "--obs-map takes KEY=STREAM, not 'state'"),
])
def test_bad_policy_specs_are_one_line_errors(tmp_path, capsys, argv, message):
    code = run_cli(["run-policy", "--headless", "--task", "pick", "--out", str(tmp_path), "--no-cameras", *argv])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_rollouts_alternate_the_task_sentences_on_the_two_cube_scene(expert_server, tmp_path, capsys):
    """`--task` twice: rollout i is told sentence i mod 2, the policy hears it and the sim judges by it."""
    red, blue = "pick up the red cube", "pick up the blue cube"
    code = run_cli(["run-policy", "--policy", expert_server.url, "--episodes", "2", "--headless",
                    "--strategy", "async", "--seconds", "25", "--task", red, "--task", blue, "--out",
                    str(tmp_path / "ds"), "--rig", "sim_so101_two_cubes", "--no-cameras", "--seed", "3",
                    "--action-kind", "ee_delta", "--chunk-length", str(CHUNK), *STATE_MAP])
    err = capsys.readouterr().err
    assert code == 0, err
    files = sorted((tmp_path / "ds").glob("episode_*.h5"))
    labels = []
    for f in files:
        with Episode.open(f) as ep:
            labels.append((ep.meta["task"], ep.meta["success"], ep.meta.get("wrong_object")))
    assert labels == [(red, "true", "false"), (blue, "true", "false")]
    prompts = [r["prompt"] for r in expert_server.requests]
    assert prompts == [red] * prompts.count(red) + [blue] * prompts.count(blue) and prompts.count(blue) > 0
