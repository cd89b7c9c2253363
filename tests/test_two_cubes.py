"""The two-cube sim scene, where the task sentence names the cube: the real MuJoCo scene, session and files."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from drivers import registry
from drivers.sim.model import CUBE_HALF, build_model
from drivers.sim.robot import CUBE_GAP, START_POSE, SimSO101, SimSO101Config
from drivers.sim.scripted import ScriptedExpert, ScriptedExpertConfig
from drivers.types import JointCommand
from recordings.library import summarize
from recordings.reader import Episode
from teleop_app.config import load_rig, parse_rig
from teleop_app.operator_session import OperatorSession
from teleop_app.rig import build_rig
from teleop_app.cli.sessions import report_batch
from teleop_app.operator_session import BatchReport
from teleop_app.runs import EndReason, EndRules, Run, RunKind, episode_notes, success_label
from command import cli  # tests/ is on sys.path
from test_scripted_expert import run_episode
from waiting import wait_for

RED, BLUE = "pick up the red cube", "pick up the blue cube"
W, H = 320, 240


def sim(cubes: int = 2, seed: int = 0) -> SimSO101:
    robot = SimSO101(SimSO101Config(realtime=False, step_dt=0.01, seed=seed, cubes=cubes))
    robot.connect()
    return robot


def test_the_two_cubes_are_apart_on_the_table_in_the_sampling_box_over_many_seeds():
    robot = sim()
    cfg = robot.config
    assert [colour for _, colour in robot.cubes] == ["red", "blue"]
    for seed in range(200):
        robot.reset_scene(seed)
        (red, _), (blue, _) = robot.cube_pose(0), robot.cube_pose(1)
        assert math.dist(red[:2], blue[:2]) >= CUBE_GAP > 2 * math.sqrt(2) * CUBE_HALF  # never touching
        for cube in (red, blue):
            assert cfg.cube_x[0] <= cube[0] <= cfg.cube_x[1] and cfg.cube_y[0] <= cube[1] <= cfg.cube_y[1]
            assert cube[2] == pytest.approx(CUBE_HALF)
    robot.reset_scene(7)
    again = sim(seed=1)
    again.reset_scene(7)
    np.testing.assert_array_equal(robot.cube_pose(1)[0], again.cube_pose(1)[0])  # seeded like the single cube


def test_the_default_rig_keeps_its_single_cube_and_its_placements():
    assert load_rig().robot.options.get("cubes", 1) == 1
    assert load_rig("sim_so101_two_cubes").robot.options["cubes"] == 2
    assert build_model(64, 64).nq == build_model(64, 64, cubes=2).nq - 7  # one free joint more
    one = sim(cubes=1)
    assert len(one.cubes) == 1
    one.set_task(BLUE)  # the scene has no blue cube: its one cube counts, as it always did
    one.reset_scene(4)
    assert one.named_cube is None
    assert run_episode(one, ScriptedExpert(ScriptedExpertConfig(), robot=one)) is not None
    assert one.success() and one.wrong_object() is None


def red_and_blue_pixels(image: np.ndarray) -> tuple[int, int]:
    r, g, b = (image[..., i].astype(int) for i in range(3))
    return int(((r > 150) & (g < 80) & (b < 80)).sum()), int(((b > 150) & (r < 80) & (g < 120)).sum())


@pytest.mark.parametrize("cubes", [2, 1])
def test_the_rendered_front_image_shows_a_red_and_a_blue_cube_in_the_two_cube_scene_only(cubes):
    robot = SimSO101(SimSO101Config(seed=0, cubes=cubes, offscreen_width=W, offscreen_height=H))
    robot.connect()
    front = registry.create("camera", "sim", {"name": "front", "width": W, "height": H, "fps": 10.0}, robot=robot)
    try:
        front.start()
        robot.reset_scene(3)
        wait_for(lambda: front.latest() is not None, timeout=30)
        red, blue = red_and_blue_pixels(front.latest().image)
    finally:
        front.stop()
        robot.disconnect()
    if cubes == 2:
        assert red > 100 and blue > 100
    else:
        assert blue == 0  # the single cube is the scene's own (purple), no blue one


@pytest.mark.parametrize("task,seed", [(RED, 3), (BLUE, 3), (RED, 11), (BLUE, 12)])
def test_the_expert_lifts_the_cube_the_task_names(task, seed):
    robot = sim()
    expert = ScriptedExpert(ScriptedExpertConfig(), robot=robot)
    robot.set_task(task)
    robot.reset_scene(seed)
    named = robot.named_cube
    assert robot.cubes[named][1] in task
    assert run_episode(robot, expert) is not None
    assert robot.success() and robot.wrong_object() is None
    assert robot.cube_pose(named)[0][2] > CUBE_HALF + 0.05
    assert robot.cube_pose(1 - named)[0][2] == pytest.approx(CUBE_HALF, abs=0.005)  # the other stays down


def test_a_task_naming_the_other_cube_judges_anew_and_holding_the_first_is_then_a_wrong_pick():
    robot = sim()
    robot.set_task(BLUE)
    robot.reset_scene(3)
    assert run_episode(robot, ScriptedExpert(ScriptedExpertConfig(), robot=robot)) is not None
    robot.set_task(RED)
    assert not robot.success() and robot.wrong_object() is None
    held = np.append(robot.read().joint_pos[:5], robot.gripper_to_joint(0.0))
    for _ in range(60):  # hold the blue cube up for 0.6 s of sim time
        robot.send(JointCommand(held))
    assert not robot.success()
    assert robot.wrong_object() == "lifted the blue cube, the task named the red one"


def test_without_a_colour_word_no_cube_is_named_and_either_counts():
    robot = sim()
    robot.set_task("pick up a cube")
    robot.reset_scene(5)
    assert robot.named_cube is None
    assert run_episode(robot, ScriptedExpert(ScriptedExpertConfig(cube="blue"), robot=robot)) is not None
    assert robot.success() and robot.wrong_object() is None


def wrong_picker_rig():
    """The two-cube rig without cameras whose expert picks the blue cube whatever the task says."""
    config = parse_rig({"name": "wrong", "rate_hz": 100.0, "robot": {"type": "sim_so101", "cubes": 2},
                        "inputs": [{"name": "scripted", "type": "scripted", "cube": "blue"}]}, source="test")
    return build_rig(config, active_input="scripted")


def test_lifting_the_other_cube_ends_the_episode_as_a_wrong_object_failure(tmp_path):
    session = OperatorSession(wrong_picker_rig(), tmp_path / "ds", task=RED)
    with session:
        session.reset_scene(3)
        session.start_episode(EndRules(after_success_s=0.2, time_limit_s=40))
        result = session.wait_for_end(session.run, timeout=60)
    assert result.reason is EndReason.WRONG_OBJECT and result.outcome == "failure"
    assert result.detail == "lifted the blue cube, the task named the red one"
    assert "ended (wrong object: lifted the blue cube, the task named the red one)" in session.message
    with Episode.open(result.path) as ep:
        assert ep.meta["success"] == "false" and ep.meta["wrong_object"] == "true"
        assert "wrong object: lifted the blue cube, the task named the red one" in ep.meta["notes"]
    summary = summarize(result.path)
    assert summary.wrong_object is True and summary.success == "false" and summary.task == RED
    assert "false (wrong object)" in cli("episodes", "list", result.path.parent).stdout
    assert "  success    false (wrong object)" in cli("episodes", "info", result.path).stdout
    out, err = io.StringIO(), io.StringIO()
    assert report_batch(BatchReport([result]), "episodes", out, err) == 0  # a wrong pick does not stop a batch
    assert out.getvalue().rstrip().endswith("failure  " + f"{result.duration_s:.1f} s  (wrong object: "
                                            "lifted the blue cube, the task named the red one)")


def test_an_episode_with_a_wrong_pick_is_a_failure_by_the_robots_judgement_whatever_ended_it():
    run = Run(RunKind.EPISODE, "scripted", EndRules(time_limit_s=20), t_success=1.0, t_wrong_object=2.0,
              wrong_object="lifted the blue cube, the task named the red one")
    assert success_label(run, EndReason.TIME_LIMIT, robot_can_tell=True) is False
    assert success_label(run, EndReason.OPERATOR, True, operator_label=True, labelled_by_operator=True) is True
    assert "wrong object: lifted the blue cube" in episode_notes(run, EndReason.TIME_LIMIT, None, 0)


def test_a_right_pick_is_not_marked_wrong_and_old_files_read_as_not_wrong(tmp_path):
    import h5py

    rig = build_rig(load_rig("sim_so101_two_cubes").without_cameras(), active_input="scripted")
    session = OperatorSession(rig, tmp_path / "ds", task=BLUE)
    with session:
        session.reset_scene(3)
        session.start_episode(EndRules(after_success_s=0.2, time_limit_s=40))
        result = session.wait_for_end(session.run, timeout=60)
    assert result.reason is EndReason.SUCCESS and result.outcome == "success"
    assert summarize(result.path).wrong_object is False
    with h5py.File(result.path, "r+") as f:  # a file written before the attribute existed
        del f.attrs["wrong_object"]
    assert summarize(result.path).wrong_object is False and summarize(result.path).damaged is None


def test_collect_alternates_the_task_sentences_and_each_episode_lifts_its_cube(tmp_path):
    out = tmp_path / "ds"
    cli("collect", "--headless", "--rig", "sim_so101_two_cubes", "--no-cameras", "--task", RED, "--task", BLUE,
        "--episodes", 2, "--seed", 3, "--seconds", 30, "--after-success", 0.3, "--out", out)
    files = sorted(out.glob("episode_*.h5"))
    assert len(files) == 2
    where = sim()
    for i, (path, task) in enumerate(zip(files, (RED, BLUE))):
        summary = summarize(path)
        assert summary.task == task and summary.success == "true" and summary.wrong_object is False
        where.set_task(task)
        where.reset_scene(3 + i)  # the scene collect's episode i had
        named, _ = where.cube_pose()
        with Episode.open(path) as ep:
            ticks = ep.ticks()
        assert np.abs(ticks["state"][0][:5] - START_POSE).max() < 0.1  # recorded from the reset pose on
        assert math.dist(ticks["ee_pos"][-1][:2], named[:2]) < 0.03  # the hand ends above the named cube


def test_a_sentence_naming_both_colours_names_the_first():
    robot = sim()
    robot.set_task("put the blue cube next to the red one")
    assert robot.cubes[robot.named_cube][1] == "blue"
    robot.set_task("Pick up the RED cube.")
    assert robot.cubes[robot.named_cube][1] == "red"


def test_the_expert_refuses_a_colour_the_scene_lacks():
    from drivers.base import DeviceError

    with pytest.raises(DeviceError, match="not in the scene"):
        ScriptedExpert(ScriptedExpertConfig(cube="green"), robot=sim())
