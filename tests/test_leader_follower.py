"""Calibration files, `teleop-app calibrate`, the leader arm and the SO-101 follower over emulated servo buses.

The end-to-end tests run the real rig files, registry, control loop and
safety filter: an emulated leader arm drives the simulated SO-101, and an
emulated leader drives an emulated follower.
"""

import argparse
import builtins
import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from drivers.base import DeviceError
from drivers.registry import ConfigError
from drivers.servo.emulator import ServoEmulator
from drivers.servo.protocol import SYNC_READ
from drivers.so101.kinematics import SO101Kinematics
from drivers.sim.robot import START_POSE, SimSO101
from drivers.so101.calibration import CalibrationError, load_calibration, parse_calibration
from drivers.so101.follower import SO101Follower, SO101FollowerConfig
from drivers.so101.leader import LeaderArm, LeaderArmConfig
from drivers.types import JointCommand
from teleop_app.cli import calibrate as cli_calibrate
from teleop_app.config import load_rig, parse_rig
from teleop_app.rig import build_rig
from teleop_app.modes import Mode
from waiting import wait_for  # tests/ is on sys.path

IDS = [1, 2, 3, 4, 5, 6]
TPR = 4096 / (2 * math.pi)  # ticks per radian
RIGS = Path(__file__).resolve().parent.parent / "teleop_app" / "rigs"
KIN = SO101Kinematics()
GRIPPER_SPAN = round((KIN.joint_upper[-1] - KIN.joint_lower[-1]) * TPR)


def ticks(arm, opening, offset=2048):
    """Raw positions of an arm calibrated at ``offset`` (sign 1) showing these angles and gripper opening."""
    out = {i: offset + round(a * TPR) for i, a in zip(IDS, arm)}
    out[6] = offset + round(opening * GRIPPER_SPAN)
    return out


def calibrate_args(*argv):
    parser = argparse.ArgumentParser()
    cli_calibrate.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["calibrate", *argv])


def calibrate_from_current(emu, out, protocol="feetech"):
    args = calibrate_args("--port", emu.path, "--protocol", protocol, "--out", str(out), "--from-current")
    assert cli_calibrate.run(args) == 0
    return out


def rig_from(name, robot=None, inputs=None):
    """A rig file of the project with ports and calibration files pointed at emulators, cameras left out."""
    data = tomllib.loads((RIGS / name).read_text())
    data["robot"].update(robot or {})
    for entry in data["inputs"]:
        entry.update((inputs or {}).get(entry["name"], {}))
    data["cameras"] = []
    return parse_rig(data, source=name)


def good_calibration():
    joints = {name: {"id": i, "offset": 2048, "sign": 1, "range_min": 1000, "range_max": 3000}
              for name, i in zip(("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"), IDS)}
    joints["gripper"].update(offset=1000)
    return {"format": "teleop-app servo calibration", "version": 1, "protocol": "feetech", "joints": joints}


# -- calibration files -------------------------------------------------------------------------
@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["joints"].pop("elbow_flex"), "joints.elbow_flex is missing"),
    (lambda d: d["joints"]["wrist_flex"].update(offset="2048"), "joints.wrist_flex.offset must be an integer, got '2048'"),
    (lambda d: d["joints"]["wrist_flex"].update(sign=True), "joints.wrist_flex.sign must be an integer, got True"),
    (lambda d: d["joints"]["shoulder_lift"].update(range_min=3000), "joints.shoulder_lift: range_min (3000) must be less than range_max (3000)"),
    (lambda d: d.update(protocol="herkulex"), "protocol must be one of 'feetech', 'dynamixel', got 'herkulex'"),
    (lambda d: d["joints"]["gripper"].pop("id"), "joints.gripper.id is missing"),
    (lambda d: d["joints"]["wrist_roll"].update(id=2), "joints.shoulder_lift.id 2 is also the id of wrist_roll"),
    (lambda d: d["joints"]["shoulder_pan"].update(range_min=-100), "crosses the servo's 0/4095 point"),
    (lambda d: d["joints"]["shoulder_pan"].update(offset=3500), "joints.shoulder_pan.offset 3500 lies outside its range 1000..3000"),
    (lambda d: d["joints"]["gripper"].update(sign=-1), "the gripper opens towards range_min (sign -1) but offset (closed) equals range_min"),
    (lambda d: d.update(joints=[1, 2]), "'joints' must be an object"),
    (lambda d: d.update(offsets={}), "unknown key(s) offsets"),
])
def test_bad_calibration_files_name_the_file_and_the_field(tmp_path, mutate, message):
    data = good_calibration()
    mutate(data)
    path = tmp_path / "arm.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CalibrationError) as err:
        load_calibration(path)
    assert str(err.value).startswith(f"calibration {path}")
    assert message in str(err.value)


def test_unreadable_calibration_files(tmp_path):
    with pytest.raises(CalibrationError, match=r"calibration file .*nope.json not found: create it with `teleop-app calibrate"):
        load_calibration(tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"protocol": "feetech",')
    with pytest.raises(CalibrationError, match=r"calibration .*broken.json is not valid JSON"):
        load_calibration(broken)


def test_ticks_and_angles_convert_both_ways():
    cal = parse_calibration(good_calibration())
    data = good_calibration()
    data["joints"]["elbow_flex"]["sign"] = -1
    flipped = parse_calibration(data)
    raw = {1: 2048 + 512, 2: 2048, 3: 2048 + 256, 4: 2048 - 512, 5: 2048, 6: 1500}
    arm, opening = cal.to_joints(raw)
    assert arm == pytest.approx([math.pi / 4, 0.0, math.pi / 8, -math.pi / 4, 0.0])
    assert opening == pytest.approx(0.25)  # gripper closed at 1000, open at 3000
    assert flipped.to_joints(raw)[0][2] == pytest.approx(-math.pi / 8)
    assert cal.to_ticks(arm, opening) == raw
    # goals are clipped to the calibrated range
    assert cal.to_ticks([10.0, 0, 0, 0, 0], 2.0)[1] == 3000 and cal.to_ticks([0] * 5, 2.0)[6] == 3000


def test_dynamixel_joint_across_the_wrap_point_reads_continuously():
    data = good_calibration()
    data["protocol"] = "dynamixel"
    data["joints"]["shoulder_pan"].update(offset=4050, range_min=3500, range_max=4600)  # crosses 4095 -> 0
    cal = parse_calibration(data)
    base = {i: 2048 for i in IDS}
    assert cal.to_joints({**base, 1: 4050})[0][0] == pytest.approx(0.0)
    assert cal.to_joints({**base, 1: 30})[0][0] == pytest.approx(76 / TPR)  # 4050 -> 4095 -> 0 -> 30
    assert cal.to_joints({**base, 1: 3950})[0][0] == pytest.approx(-100 / TPR)
    # a reading one whole turn away (Dynamixel multi-turn counts) is the same angle
    assert cal.to_joints({**base, 1: 30 + 4096})[0][0] == pytest.approx(76 / TPR)


# -- teleop-app calibrate ----------------------------------------------------------------------
def test_calibrate_from_current_writes_a_file_the_arms_load(tmp_path, capsys):
    with ServoEmulator("feetech", IDS) as emu:
        emu.set_positions({1: 2000, 2: 2100, 3: 1900, 4: 2048, 5: 2300, 6: 1800})
        out = calibrate_from_current(emu, tmp_path / "sub" / "leader.json")
        assert not any(emu.torque(i) for i in IDS)
    cal = load_calibration(out)
    assert cal.protocol == "feetech" and cal.ids == IDS
    assert [j.offset for j in cal.joints.values()] == [2000, 2100, 1900, 2048, 2300, 1800]
    pan = cal.joints["shoulder_pan"]
    assert (pan.range_min, pan.range_max) == (2000 - round(1.91986 * TPR), 2000 + round(1.91986 * TPR))
    assert (cal.joints["gripper"].range_min, cal.joints["gripper"].range_max) == (1800, 1800 + GRIPPER_SPAN)
    printed = capsys.readouterr().out
    assert "shoulder_pan" in printed and f"wrote {out}" in printed


def test_calibrate_interactive_records_zero_pose_and_ranges(tmp_path, monkeypatch, capsys):
    with ServoEmulator("feetech", IDS) as emu:
        zero = {1: 2048, 2: 2000, 3: 2100, 4: 2048, 5: 2048, 6: 2500}
        emu.set_positions(zero)
        sweep = [{1: 1000, 2: 900, 3: 3000, 4: 1200, 5: 500, 6: 1700}, {1: 3100, 2: 3050, 3: 1000, 4: 2900, 5: 3600, 6: 2400}]
        prompts = []

        def enter(prompt=""):
            prompts.append(capsys.readouterr().out)
            if len(prompts) == 2:  # the range step: the person moves every joint to both ends
                for pose in sweep:
                    emu.set_positions(pose)
                    seen = emu.count(SYNC_READ)
                    assert wait_for(lambda: emu.count(SYNC_READ) >= seen + 2)
            return ""

        monkeypatch.setattr(builtins, "input", enter)
        out = tmp_path / "leader.json"
        assert cli_calibrate.run(calibrate_args("--port", emu.path, "--protocol", "feetech", "--out", str(out),
                                                "--signs", "1,1,-1,1,1,1")) == 0
    assert "zero pose" in prompts[0] and "whole range" in prompts[1]
    cal = load_calibration(out)
    assert {n: j.offset for n, j in cal.joints.items()} == dict(zip(cal.joints, zero.values()))
    assert (cal.joints["shoulder_pan"].range_min, cal.joints["shoulder_pan"].range_max) == (1000, 3100)
    assert (cal.joints["wrist_roll"].range_min, cal.joints["wrist_roll"].range_max) == (500, 3600)
    assert cal.joints["elbow_flex"].sign == -1
    gripper = cal.joints["gripper"]  # closed at 2500 in the zero pose, opened down to 1700: opens towards range_min
    assert (gripper.sign, gripper.range_min, gripper.range_max) == (-1, 1700, 2500)


def test_calibrate_refuses_a_joint_that_did_not_move(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(builtins, "input", lambda prompt="": "")
    with ServoEmulator("feetech", IDS) as emu:
        out = tmp_path / "leader.json"
        assert cli_calibrate.run(calibrate_args("--port", emu.path, "--protocol", "feetech", "--out", str(out))) == 2
    assert "shoulder_pan (servo 1) moved only 0 ticks" in capsys.readouterr().err
    assert not out.exists()


def test_calibrate_errors_are_one_line(tmp_path, capsys):
    with ServoEmulator("dynamixel", [1, 2, 3, 4, 5]) as emu:
        args = calibrate_args("--port", emu.path, "--protocol", "dynamixel", "--out", str(tmp_path / "x.json"),
                              "--from-current")
        assert cli_calibrate.run(args) == 2
        assert capsys.readouterr().err == f"teleop-app: servo 6 on {emu.path} did not answer (timeout 100 ms): check power and the ID\n"
        args = calibrate_args("--port", emu.path, "--protocol", "dynamixel", "--ids", "1,2,3", "--out", "x.json")
        assert cli_calibrate.run(args) == 2
        assert "--ids needs one value per joint" in capsys.readouterr().err


# -- rig files ---------------------------------------------------------------------------------
def test_rig_files_parse():
    real = load_rig(RIGS / "so101_real.toml")
    assert real.robot.type == "so101" and {"port", "calibration"} <= set(real.robot.options)
    assert [(c.name, c.type, c.options["index"]) for c in real.cameras] == [("front", "opencv", 0), ("wrist", "opencv", 2)]
    assert [(i.name, i.type) for i in real.inputs] == [("leader", "leader_arm"), ("keyboard", "keyboard")]
    sim = load_rig(RIGS / "sim_leader.toml")
    assert sim.robot.type == "sim_so101"
    assert sim.inputs[0].type == "leader_arm" and sim.inputs[0].options["protocol"] == "feetech"


def test_a_rig_naming_a_missing_calibration_fails_before_anything_starts(tmp_path):
    config = rig_from("sim_leader.toml", inputs={"leader": {"calibration": str(tmp_path / "none.json")}})
    with pytest.raises(CalibrationError, match="none.json not found"):
        build_rig(config)


# -- the leader arm ----------------------------------------------------------------------------
def test_leader_reads_joint_targets_with_torque_off(tmp_path):
    robot = SimSO101()
    with ServoEmulator("feetech", IDS) as emu:
        cal = calibrate_from_current(emu, tmp_path / "leader.json")
        leader = LeaderArm(LeaderArmConfig(port=emu.path, calibration=str(cal), rate_hz=100, timeout_ms=100), robot)
        leader.bus.open()
        leader.bus.set_torque(IDS, True)  # left on by something else: the leader must switch it off
        leader.bus.close()
        assert all(emu.torque(i) for i in IDS)
        leader.start()
        try:
            assert not any(emu.torque(i) for i in IDS)
            assert leader.read().connected and leader.error is None
            seen = emu.count(SYNC_READ)
            emu.set_positions(ticks([0.5, -0.25, 1.0, 0.0, -1.5], 0.5))  # a hand moves the arm
            assert wait_for(lambda: emu.count(SYNC_READ) >= seen + 2)
            state = leader.read()
            assert state.connected
            assert state.joint_targets[:5] == pytest.approx([0.5, -0.25, 1.0, 0.0, -1.5], abs=1e-3)
            assert state.gripper == pytest.approx(0.5, abs=1e-3)
            assert state.joint_targets[5] == pytest.approx(robot.gripper_to_joint(0.5), abs=2e-3)
            emu.set_position(3, 2048 - 1024)
            assert wait_for(lambda: abs(leader.read().joint_targets[2] + math.pi / 2) < 1e-3)
        finally:
            leader.stop()


def test_leader_start_names_the_missing_servo(tmp_path):
    with ServoEmulator("feetech", IDS) as emu:
        cal = calibrate_from_current(emu, tmp_path / "leader.json")
        emu.silent.add(4)
        leader = LeaderArm(LeaderArmConfig(port=emu.path, calibration=str(cal)), SimSO101())
        with pytest.raises(DeviceError, match=f"servo 4 on {emu.path} did not answer"):
            leader.start()
        assert not leader.bus.is_open


def test_leader_config_mistakes_are_config_errors(tmp_path):
    with ServoEmulator("feetech", IDS) as emu:
        cal = calibrate_from_current(emu, tmp_path / "leader.json")
    with pytest.raises(ConfigError, match="protocol is 'dynamixel' but calibration .* is for 'feetech'"):
        LeaderArm(LeaderArmConfig(port="/dev/null", calibration=str(cal), protocol="dynamixel"), SimSO101())
    with pytest.raises(ConfigError, match="has no option 'baudrate'"):
        build_rig(rig_from("sim_leader.toml", inputs={"leader": {"calibration": str(cal), "baudrate": 1}}))
    with pytest.raises(ConfigError, match="protocol must be one of"):
        build_rig(rig_from("sim_leader.toml", inputs={"leader": {"calibration": str(cal), "protocol": "can"}}))


def test_leader_unplugged_reports_disconnected_and_reconnects(tmp_path):
    link = tmp_path / "ttyLEADER"  # like /dev/serial/by-id: the name stays, the device behind it changes
    first = ServoEmulator("feetech", IDS)
    cal = calibrate_from_current(first, tmp_path / "leader.json")
    link.symlink_to(first.path)
    config = LeaderArmConfig(port=str(link), calibration=str(cal), rate_hz=100, timeout_ms=100, reconnect_s=0.05)
    leader = LeaderArm(config, SimSO101())
    leader.start()
    try:
        assert leader.read().connected
        first.unplug()
        link.unlink()  # udev removes the by-id link with the device (and the pty's number may go to another)
        assert wait_for(lambda: not leader.read().connected)
        state = leader.read()
        assert state.joint_targets is None and state.ee_twist is None  # nothing for the loop to follow
        assert wait_for(lambda: "not found: run `teleop-app devices`" in (leader.error or ""))
        assert str(link) in leader.error
        with ServoEmulator("feetech", IDS, position=2048 + 512) as second:
            link.symlink_to(second.path)
            assert wait_for(lambda: leader.read().connected, timeout=10)
            assert leader.error is None and leader.reconnects == 1
            assert leader.read().joint_targets[0] == pytest.approx(512 / TPR, abs=1e-3)
    finally:
        leader.stop()


def test_dynamixel_leader_reads_across_the_wrap_point(tmp_path):
    with ServoEmulator("dynamixel", IDS) as emu:
        emu.set_position(1, 4080)
        cal = calibrate_from_current(emu, tmp_path / "gello.json", protocol="dynamixel")
        leader = LeaderArm(LeaderArmConfig(port=emu.path, calibration=str(cal), protocol="dynamixel",
                                           rate_hz=100, timeout_ms=100), SimSO101())
        leader.start()
        try:
            emu.set_position(1, 50)  # turned 66 ticks further, through 4095 -> 0
            assert wait_for(lambda: abs(leader.read().joint_targets[0] - 66 / TPR) < 1e-6)
            emu.set_position(1, 3980)
            assert wait_for(lambda: abs(leader.read().joint_targets[0] + 100 / TPR) < 1e-6)
        finally:
            leader.stop()


# -- the follower ------------------------------------------------------------------------------
@pytest.fixture
def follower(tmp_path):
    emu = ServoEmulator("feetech", IDS)
    cal = calibrate_from_current(emu, tmp_path / "follower.json")
    emu.set_positions(ticks(START_POSE, 1.0))
    arm = SO101Follower(SO101FollowerConfig(port=emu.path, calibration=str(cal), timeout_ms=100))
    arm.connect()
    yield emu, arm
    arm.disconnect()
    emu.unplug()


def goals(emu):
    return {i: emu.goal(i) for i in IDS}


def test_follower_connects_without_a_jump_and_reads_its_state(follower):
    emu, arm = follower
    assert all(emu.torque(i) for i in IDS)
    assert goals(emu) == ticks(START_POSE, 1.0)  # torque came on at the present pose
    state = arm.read()
    assert state.joint_pos[:5] == pytest.approx(START_POSE, abs=1e-3)
    assert state.gripper == pytest.approx(1.0, abs=1e-3)
    assert state.ee_pos == pytest.approx(KIN.fk(state.joint_pos)[0])
    assert arm.joint_names == SimSO101().joint_names
    assert arm.kinematics is not None


def test_follower_send_writes_goals_with_a_step_limit(follower):
    emu, arm = follower
    q = np.append(START_POSE + [0.05, -0.05, 0.0, 0.02, 0.0], arm.gripper_to_joint(0.96))
    arm.send(JointCommand(q))
    arm.read()  # the next exchange follows the (unanswered) sync write
    assert goals(emu) == ticks(q[:5], 0.96)
    far = q.copy()
    far[2] += 1.0
    arm.send(JointCommand(far))
    arm.read()
    assert emu.goal(3) == ticks(q[:5], 0.96)[3] + round(0.1 * TPR)  # max_step 0.1 rad per send
    with pytest.raises(ValueError, match="6 finite joint targets"):
        arm.send(JointCommand(np.full(6, np.nan)))


def test_follower_hold_stops_where_the_arm_is_and_keeps_the_gripper(follower):
    emu, arm = follower
    arm.send(JointCommand(np.append(START_POSE, arm.gripper_to_joint(0.97))))
    arm.read()
    pushed = ticks(START_POSE + [0.03, 0, 0, 0, 0], 0.6)  # the arm lags, someone pushed the gripper
    emu.set_positions(pushed)
    arm.hold()
    arm.read()
    held = goals(emu)
    assert {i: held[i] for i in IDS[:5]} == {i: pushed[i] for i in IDS[:5]}
    assert held[6] == ticks(START_POSE, 0.97)[6]
    assert arm.command_log[-1][2] == "hold"


def test_follower_refuses_a_leader_that_is_too_far_away(follower):
    _, arm = follower
    near = np.append(START_POSE + 0.3, 0.0)
    arm.check_leader(near)
    far = np.append(START_POSE, 0.0)
    far[2] += 1.0
    with pytest.raises(DeviceError) as err:
        arm.check_leader(far)
    assert str(err.value).startswith("leader and follower differ by 1.00 rad (57°) at elbow_flex (limit 0.80 rad)")


def test_follower_ramps_slowly_to_a_start_pose(follower):
    emu, arm = follower
    pose = np.append(START_POSE + [0.2, -0.1, 0.15, 0.0, -0.3], arm.gripper_to_joint(0.5))
    arm.ramp_to(pose, max_step=0.02, rate_hz=1000)
    arm.read()
    assert goals(emu) == ticks(pose[:5], 0.5)
    ramp = np.array([q for _, q, source in arm.command_log if source == "ramp"])
    assert len(ramp) >= 15  # 0.3 rad in 0.02 rad steps
    assert np.abs(np.diff(ramp[:, :5], axis=0)).max() <= 0.02 + 1e-9


def test_follower_unplugged_raises_one_line_and_hold_does_not(follower):
    emu, arm = follower
    emu.unplug()
    for call in (arm.read, lambda: arm.send(JointCommand(np.append(START_POSE, 0.0)))):
        with pytest.raises(DeviceError) as err:
            call()
        assert "\n" not in str(err.value)
        assert f"servo bus on {emu.path} was disconnected" in str(err.value)
    arm.hold(source="watchdog")  # the watchdog thread must survive this
    assert "was disconnected" in arm.error
    arm.disconnect()


def test_follower_needs_a_feetech_calibration(tmp_path):
    with ServoEmulator("dynamixel", IDS) as emu:
        cal = calibrate_from_current(emu, tmp_path / "koch.json", protocol="dynamixel")
    with pytest.raises(ConfigError, match="robot so101 runs on a Feetech bus"):
        SO101Follower(SO101FollowerConfig(port="/dev/null", calibration=str(cal)))


# -- end to end through the control loop -------------------------------------------------------
def test_leader_arm_drives_the_simulated_arm_and_unplugging_holds_it(tmp_path):
    with ServoEmulator("feetech", IDS) as emu:
        cal = calibrate_from_current(emu, tmp_path / "leader.json")
        first = np.array([0.3, -0.8, 0.4, 1.2, 1.0])
        emu.set_positions(ticks(first, 0.3))
        config = rig_from("sim_leader.toml", inputs={"leader": {"port": emu.path, "calibration": str(cal),
                                                                "timeout_ms": 100, "rate_hz": 100}})
        rig = build_rig(config, active_input="leader")
        try:
            rig.start()
            robot, leader = rig.robot, rig.inputs["leader"]
            rig.modes.set_mode(Mode.TELEOP)

            def commanded():
                log = robot.command_log
                return log[-1][1] if log else np.full(6, np.nan)

            for arm, opening in ((first, 0.3), (np.array([-0.2, -1.1, 0.7, 1.0, 0.2]), 0.8)):
                emu.set_positions(ticks(arm, opening))
                target = np.append(arm, robot.gripper_to_joint(opening))
                assert wait_for(lambda: np.allclose(commanded(), target, atol=2e-3), timeout=10), commanded()
                assert wait_for(lambda: np.allclose(robot.read().joint_pos[:5], arm, atol=0.05), timeout=10)
            record = rig.loop.latest()
            assert record.input_kind == "joint" and record.source == "human"

            emu.unplug()
            assert wait_for(lambda: not leader.read().connected)
            assert emu.path in leader.error
            assert wait_for(lambda: rig.loop.last_input is not None and not rig.loop.last_input.connected)
            n = len(robot.command_log)
            assert wait_for(lambda: len(robot.command_log) >= n + 20)
            held = [q for _, q, _ in robot.command_log.snapshot()[n:]]
            assert all(np.array_equal(q, held[0]) for q in held)  # the loop holds the last target
            assert np.allclose(held[0], target, atol=2e-3)
            assert not rig.kill.latched and rig.loop.error is None
        finally:
            rig.close()


def test_leader_drives_a_follower_and_an_unplugged_follower_stops_the_loop(tmp_path):
    with ServoEmulator("feetech", IDS) as lead_emu, ServoEmulator("feetech", IDS) as follow_emu:
        lead_cal = calibrate_from_current(lead_emu, tmp_path / "leader.json")
        follow_cal = calibrate_from_current(follow_emu, tmp_path / "follower.json")
        follow_emu.set_positions(ticks(START_POSE, 1.0))
        lead_emu.set_positions(ticks(START_POSE + [0.3, 0.1, -0.2, 0.0, 0.4], 0.5))
        config = rig_from(
            "so101_real.toml",
            robot={"port": follow_emu.path, "calibration": str(follow_cal), "timeout_ms": 100},
            inputs={"leader": {"port": lead_emu.path, "calibration": str(lead_cal), "timeout_ms": 100, "rate_hz": 100}},
        )
        rig = build_rig(config, active_input="leader")
        try:
            rig.start()
            follower, leader = rig.robot, rig.inputs["leader"]
            follower.check_leader(leader.read().joint_targets)
            rig.modes.set_mode(Mode.TELEOP)
            # calibrated alike, the follower's servos are sent to where the leader's servos are
            assert wait_for(lambda: goals(follow_emu) == {i: lead_emu.position(i) for i in IDS}, timeout=10), \
                (goals(follow_emu), {i: lead_emu.position(i) for i in IDS})
            lead_emu.set_position(2, lead_emu.position(2) - 300)
            assert wait_for(lambda: follow_emu.goal(2) == lead_emu.position(2), timeout=10)

            follow_emu.unplug()
            assert wait_for(lambda: rig.kill.latched)
            assert f"servo bus on {follow_emu.path} was disconnected" in rig.kill.reason
            assert "was disconnected" in rig.loop.error
            assert leader.read().connected
        finally:
            rig.close()  # a follower that is gone does not make closing fail


def test_session_refuses_teleop_while_the_leader_is_far_from_the_follower(tmp_path):
    from teleop_app.errors import OperatorError
    from teleop_app.operator_session import OperatorSession

    with ServoEmulator("feetech", IDS) as lead_emu, ServoEmulator("feetech", IDS) as follow_emu:
        lead_cal = calibrate_from_current(lead_emu, tmp_path / "leader.json")
        follow_cal = calibrate_from_current(follow_emu, tmp_path / "follower.json")
        follow_emu.set_positions(ticks(START_POSE, 1.0))
        far = np.array(START_POSE, dtype=float)
        far[1] += 1.2  # shoulder_lift 1.2 rad away
        lead_emu.set_positions(ticks(far, 0.5))
        config = rig_from(
            "so101_real.toml",
            robot={"port": follow_emu.path, "calibration": str(follow_cal), "timeout_ms": 100},
            inputs={"leader": {"port": lead_emu.path, "calibration": str(lead_cal), "timeout_ms": 100, "rate_hz": 100}},
        )
        rig = build_rig(config.without_cameras(), active_input="leader")
        console = OperatorSession(rig, tmp_path / "data")
        try:
            console.start()
            goals_before = {i: follow_emu.goal(i) for i in IDS}
            with pytest.raises(OperatorError, match="shoulder_lift.*move the leader arm to match the robot"):
                console.set_teleop(True)
            assert rig.modes.mode is Mode.IDLE
            assert {i: follow_emu.goal(i) for i in IDS} == goals_before  # nothing moved
            lead_emu.set_positions(ticks(START_POSE, 0.5))  # the operator matches the pose
            assert wait_for(lambda: abs(rig.inputs["leader"].read().joint_targets[1] - START_POSE[1]) < 1e-2)
            console.set_teleop(True)
            assert rig.modes.mode is Mode.TELEOP
        finally:
            console.close()
