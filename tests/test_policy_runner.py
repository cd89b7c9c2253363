"""The policy runner on the real control loop and simulated SO-101: rate, kills, takeover, recording."""

import itertools
import time

import numpy as np
import pytest

from drivers.types import InputState, RobotState
from policies.runner import PolicyRunner
from policies.strategies import make_strategy
from policy_helpers import Hand, HoldPolicy, add_input  # tests/ is on sys.path
from runner_drive import RampPolicy, drive
from runner_drive import runner as ramp_runner
from recordings.reader import Episode
from recordings.recorder import Recorder
from drivers.types import SafetyFlag
from teleop_app.modes import Mode
from teleop_app.takeover import TakeoverConfig, TakeoverDetector
from waiting import wait_for


def runner_for(rig, policy, strategy="async", timeout_s=2.0, **kwargs):
    return PolicyRunner.for_robot(rig.robot, rig.cameras, rig.config.rate_hz, policy,
                                  make_strategy(strategy, policy.chunk, **kwargs), "hold still", timeout_s=timeout_s)


def commands_since(rig, t0):
    return rig.robot.command_log.since(t0)


def test_async_strategy_keeps_the_loop_rate_with_a_150ms_policy(sim_rig):
    sim_rig.start()
    results, starved_records = {}, {}
    for name in ("async", "open-loop"):
        policy = HoldPolicy(chunk=50, latency=0.15)
        runner = runner_for(sim_rig, policy, name)
        sub = sim_rig.loop.subscribe(name)
        sim_rig.loop.reset_stats()
        sim_rig.loop.start_policy(runner)
        time.sleep(3.0)
        sim_rig.loop.stop_policy()
        results[name] = sim_rig.loop.stats()["policy"]
        records = [r for r in sub.drain() if r.source == "policy"]
        starved_records[name] = [r for r in records if r.safety & SafetyFlag.STARVED]
        assert len(records) == results[name]["ticks"]
        sim_rig.loop.ticks.unsubscribe(sub)
    a, o = results["async"], results["open-loop"]
    # the loop ticked on while the model thought (waiting for it would give ~7 ticks per second)
    assert a["ticks"] > 200 and o["ticks"] > 200
    assert a["runner"]["chunks"] >= 5 and a["runner"]["latency_ms"]["p50"] >= 150
    # both wait for the first answer; async then never runs dry, open-loop waits for every chunk
    assert a["longest_stall_ticks"] >= 10 and o["longest_stall_ticks"] >= 10
    assert a["starved_ticks"] <= 0.15 * a["ticks"]
    assert o["starved_ticks"] >= 2.5 * a["starved_ticks"]
    # starved ticks are recorded as policy ticks holding the last target, flagged STARVED
    assert len(starved_records["async"]) == a["starved_ticks"]
    assert len(starved_records["open-loop"]) == o["starved_ticks"]
    assert all(r.raw_input is None and r.input_kind == "none" for r in starved_records["open-loop"])


@pytest.mark.parametrize("bad, reason", [
    ("nan", "policy: output has NaN in dim 3"),
    ("inf", "policy: output has inf in dim 2"),
    ("shape", "policy: output has shape (20, 5), expected [k, 6]"),
    ("range", "policy: output out of range in dim 0: 5 > "),
])
def test_malformed_output_never_reaches_the_robot(sim_rig, bad, reason):
    sim_rig.start()
    q0 = sim_rig.robot.read().joint_pos.copy()
    policy = HoldPolicy(chunk=20, latency=0.02, bad={3: bad})
    runner = runner_for(sim_rig, policy, threshold=10)
    t0 = time.monotonic()
    sim_rig.loop.start_policy(runner)
    assert wait_for(lambda: sim_rig.kill.latched, timeout=5)
    assert sim_rig.kill.reason.startswith(reason), sim_rig.kill.reason
    time.sleep(0.2)
    log = commands_since(sim_rig, t0)
    policy_q = [q for _, q, s in log if s == "policy"]
    assert len(policy_q) > 10  # the two good chunks ran
    assert all(np.all(np.isfinite(q)) for _, q, _ in log)
    # the bad chunk would have pulled joint 0 towards 5 rad (clamped, 0.05 rad per tick): it never started
    assert max(abs(q[0] - q0[0]) for q in policy_q) < 0.01
    # (not JOINT_LIMIT == 0: the open gripper rests on its stop, and holding where it is measured may touch it)
    assert sim_rig.loop.safety.counts["INVALID"] == 0
    t_kill = sim_rig.kill.t_trigger
    after = [s for t, _, s in log if t > t_kill]
    assert after.index("kill") <= 1 and set(after[after.index("kill"):]) == {"kill"}
    assert runner.stats()["errors"] == 1


def test_policy_exception_kills_with_the_reason(sim_rig):
    sim_rig.start()
    policy = HoldPolicy(chunk=10, latency=0.01, bad={2: "raise"})
    sim_rig.loop.start_policy(runner_for(sim_rig, policy, "open-loop"))
    assert wait_for(lambda: sim_rig.kill.latched, timeout=5)
    assert sim_rig.kill.reason == "policy: RuntimeError: model exploded"
    time.sleep(0.1)
    rec = sim_rig.loop.latest()
    assert rec.killed and rec.source == "policy" and SafetyFlag.KILLED & rec.safety


def test_timeout_kills_and_the_late_answer_is_ignored_until_rearmed(sim_rig):
    sim_rig.start()
    policy = HoldPolicy(chunk=10, latency=0.01, drift=0.001, bad={2: ("sleep", 0.8)})
    runner = runner_for(sim_rig, policy, "open-loop", timeout_s=0.3)
    sim_rig.loop.start_policy(runner)
    assert wait_for(lambda: sim_rig.kill.latched, timeout=5)
    assert sim_rig.kill.reason == "policy: no answer within 0.30 s"
    t_kill = sim_rig.kill.t_trigger
    assert wait_for(lambda: runner.stats()["discarded_answers"] == 1, timeout=3)  # the late answer came: dropped
    time.sleep(0.1)
    after = [s for _, _, s in commands_since(sim_rig, t_kill)]  # at most the tick in flight sends its own
    assert after.index("kill") <= 1 and set(after[after.index("kill"):]) == {"kill"}
    assert runner.view().plan.ticks.size == 0
    calls = policy.calls
    t_rearm = time.monotonic()
    sim_rig.kill.rearm()
    assert wait_for(lambda: any(s == "policy" for _, _, s in commands_since(sim_rig, t_rearm)), timeout=3)
    assert policy.calls > calls  # a fresh observation after re-arming
    assert not sim_rig.kill.latched and runner.stats()["timeouts"] == 1


def test_kill_drops_queued_actions_and_new_chunks_follow_the_rearm(sim_rig):
    sim_rig.start()
    policy = HoldPolicy(chunk=200, latency=0.01, drift=0.0005)
    runner = runner_for(sim_rig, policy, threshold=50)
    sim_rig.loop.start_policy(runner)
    assert wait_for(lambda: runner.view().plan.ticks.size > 50, timeout=3)
    sim_rig.kill.trigger("STOP pressed")
    assert wait_for(lambda: runner.view().plan.ticks.size == 0, timeout=1)
    kill_tick = sim_rig.loop.latest().tick
    time.sleep(0.2)
    assert runner.view().plan.ticks.size == 0  # nothing was queued while latched
    sim_rig.kill.rearm()
    assert wait_for(lambda: runner.view().plan.current is not None, timeout=3)
    assert runner.view().plan.current.tick >= kill_tick


def test_restart_while_an_inference_hangs_never_calls_the_policy_twice_at_once(sim_rig):
    sim_rig.start()
    policy = HoldPolicy(chunk=10, latency=0.01, bad={2: ("sleep", 0.8)})
    runner = runner_for(sim_rig, policy, "open-loop", timeout_s=5.0)
    sim_rig.loop.start_policy(runner)
    assert wait_for(lambda: policy.calls == 2, timeout=3)
    sim_rig.loop.stop_policy()
    sim_rig.loop.start_policy(runner)  # the old worker is still inside predict()
    assert wait_for(lambda: policy.calls >= 5, timeout=5)
    sim_rig.loop.stop_policy()
    assert policy.max_active == 1 and not sim_rig.kill.latched
    assert runner.stats()["discarded_answers"] >= 1 and runner.stats()["chunks"] >= 2


def test_view_shows_plan_history_and_what_was_sent(sim_rig):
    sim_rig.start()
    sub = sim_rig.loop.subscribe("view")
    policy = HoldPolicy(chunk=40, latency=0.02, drift=0.001)
    runner = runner_for(sim_rig, policy, threshold=20)
    sim_rig.loop.start_policy(runner)
    time.sleep(1.0)
    view = runner.view()
    sim_rig.loop.stop_policy()
    assert view.state == "running" and view.kind.value == "joint" and view.error is None
    plan = view.plan
    assert plan.current is not None and plan.previous is not None and plan.current.tick > plan.previous.tick
    assert plan.ticks.size > 0 and plan.ticks[0] >= view.tick and plan.actions.shape == (plan.ticks.size, 6)
    assert plan.executed.shape == (plan.executed_ticks.size, 6) and plan.executed_ticks.size > 50
    assert np.all(np.diff(plan.executed_ticks) > 0)
    assert view.latency_ms["p50"] >= 20 and view.starved_ticks >= 1
    sent = {r.tick: r.command for r in sub.drain()}
    np.testing.assert_array_equal(sent[view.last_sent_tick], view.last_sent)
    assert runner.state == "stopped" and sim_rig.modes.mode is Mode.IDLE and sim_rig.loop.policy is None


def test_policy_sees_the_rig_state_and_resized_camera_frames():
    from teleop_app.config import load_rig
    from teleop_app.rig import build_rig

    config = load_rig()
    front = config.cameras[0]
    rig = build_rig(type(config)(config.name, config.rate_hz, config.robot, (front,), config.inputs, config.safety,
                                 config.loop_core, config.source))
    try:
        rig.start()
        assert wait_for(lambda: rig.cameras["front"].latest() is not None, timeout=10)
        policy = HoldPolicy(chunk=10, latency=0.01)
        rig.loop.start_policy(runner_for(rig, policy, "open-loop"))
        assert wait_for(lambda: len(policy.observations) >= 3, timeout=5)
        rig.loop.stop_policy()
    finally:
        rig.close()
    obs = policy.observations[-1]
    assert obs.task == "hold still" and set(obs.images) == {"front"}
    image = obs.images["front"]
    assert image.shape == (224, 224, 3) and image.dtype == np.uint8
    assert not image[:28].any() and not image[-28:].any() and image[28:-28].any()  # 640x480 padded to square
    assert obs.image_times["front"] <= obs.t and obs.state.joint_pos.shape == (6,)
    ticks = [o.tick for o in policy.observations]
    assert ticks == sorted(ticks) and len(set(ticks)) == len(ticks)


# -- takeover ---------------------------------------------------------------------------------
def test_takeover_is_recorded_as_intervention_and_control_returns(sim_rig, tmp_path):
    hand = Hand()
    add_input(sim_rig, hand)
    sim_rig.start()
    policy = HoldPolicy(chunk=20, latency=0.01)
    runner = runner_for(sim_rig, policy, threshold=10)
    sim_rig.loop.start_policy(runner, TakeoverConfig(input="hand", release_s=0.4))
    recorder = Recorder.for_rig(sim_rig, tmp_path)
    path = recorder.start_episode("hold still")
    time.sleep(0.5)
    x0 = sim_rig.robot.read().ee_pos[0]
    hand.twist = np.array([0.05, 0, 0, 0, 0, 0])  # the human pushes the arm forward
    assert wait_for(lambda: sim_rig.modes.mode is Mode.INTERVENTION, timeout=2)
    assert runner.state == "paused"
    time.sleep(0.6)
    hand.twist = np.zeros(6)  # lets go
    assert wait_for(lambda: sim_rig.modes.mode is Mode.POLICY, timeout=3)
    time.sleep(0.3)
    recorder.stop_episode(success=False)
    sim_rig.loop.stop_policy()
    assert sim_rig.robot.read().ee_pos[0] - x0 > 0.015  # the push moved it, the policy held it there
    reasons = [c.reason for c in sim_rig.modes.history]
    assert "takeover: hand twist 0.050 > 0.02" in reasons and "human let go for 0.4 s" in reasons
    stats = sim_rig.loop.stats()["policy"]
    assert stats["takeovers"] == 1 and stats["hand_backs"] == 1

    with Episode.open(path) as ep:
        ticks = ep.ticks()
    names = ticks["source_names"][ticks["source"]].tolist()
    assert [k for k, _ in itertools.groupby(names)] == ["policy", "intervention", "policy"]
    inter = ticks["source"] == list(ticks["source_names"]).index("intervention")
    assert 0.6 * 100 <= inter.sum() <= 1.6 * 100  # ~0.6 s pushing + 0.4 s until let go counts, loosely
    kinds = ticks["input_kind_names"][ticks["input_kind"][inter]]
    assert set(kinds) == {"ee_delta"}
    pushing = ticks["raw_input"][inter][:, 0]
    assert np.isclose(pushing, 0.05 / 100).sum() >= 40  # the human's step per tick was recorded


def test_manual_takeover_stays_human_until_handed_back(sim_rig):
    hand = Hand()
    add_input(sim_rig, hand)
    sim_rig.start()
    runner = runner_for(sim_rig, HoldPolicy(chunk=20, latency=0.01), threshold=10)
    sim_rig.loop.start_policy(runner, TakeoverConfig(input="hand", release_s=0.1))
    assert sim_rig.loop.take_over("GUI button").result(timeout=1) is True
    assert sim_rig.modes.mode is Mode.INTERVENTION
    time.sleep(0.4)  # no motion for longer than release_s: still human, the takeover was explicit
    assert sim_rig.modes.mode is Mode.INTERVENTION and sim_rig.loop.latest().source == "intervention"
    assert sim_rig.loop.hand_back().result(timeout=1) is True
    assert sim_rig.modes.mode is Mode.POLICY and runner.state == "running"
    assert sim_rig.loop.hand_back().result(timeout=1) is False  # nothing to hand back now
    sim_rig.loop.stop_policy(Mode.TELEOP)
    assert sim_rig.modes.mode is Mode.TELEOP and runner.state == "stopped"


def test_takeover_without_auto_hand_back_stays_human(sim_rig):
    hand = Hand()
    add_input(sim_rig, hand)
    sim_rig.start()
    runner = runner_for(sim_rig, HoldPolicy(chunk=20, latency=0.01), threshold=10)
    sim_rig.loop.start_policy(runner, TakeoverConfig(input="hand", release_s=0.1, auto_hand_back=False))
    hand.buttons = frozenset({"t"})
    time.sleep(0.2)
    assert sim_rig.modes.mode is Mode.POLICY  # "t" is not a takeover button here
    hand.twist = np.array([0, 0, 0.03, 0, 0, 0])
    assert wait_for(lambda: sim_rig.modes.mode is Mode.INTERVENTION, timeout=2)
    hand.twist = np.zeros(6)
    time.sleep(0.4)
    assert sim_rig.modes.mode is Mode.INTERVENTION
    with pytest.raises(RuntimeError, match="already running"):
        sim_rig.loop.start_policy(runner)
    sim_rig.loop.stop_policy(Mode.TELEOP)
    with pytest.raises(ValueError, match="no input device 'nope'"):
        sim_rig.loop.start_policy(runner, TakeoverConfig(input="nope"))
    assert sim_rig.loop.policy is None and runner.state == "stopped"


def leader(q, gripper=None, buttons=()):
    return InputState(device="leader", t_host=0.0, joint_targets=np.asarray(q, float), gripper=gripper,
                      buttons=frozenset(buttons))


def test_takeover_detector_for_a_leader_arm_buttons_and_gripper():
    det = TakeoverDetector(TakeoverConfig(joint_threshold=0.05, release_s=1.0, buttons=frozenset({"t"})))
    det.rest(leader([0.0, 0.5], gripper=1.0))
    assert det.moving(leader([0.04, 0.5], 1.0), now=0.0) is None  # within the threshold: a hand resting on it
    assert det.moving(leader([0.06, 0.5], 1.0), now=0.1) == "leader joints moved 0.060 rad > 0.05"
    assert not det.released(0.5)
    assert det.moving(leader([0.09, 0.5], 1.0), now=0.6) is None  # 0.03 from where it was last seen moving
    assert det.released(1.1)
    assert det.moving(leader([0.09, 0.5], 0.2), now=1.2) == "leader gripper 0.20"
    assert det.moving(leader([0.09, 0.5], 0.2, buttons=["t"]), now=1.3) == "button 't' on leader"
    assert det.moving(InputState(device="leader", t_host=0.0, connected=False, ee_twist=np.ones(6)), 1.4) is None
    assert det.moving(InputState(device="sm", t_host=0.0, ee_twist=np.full(6, np.nan)), 1.5) is None


@pytest.mark.parametrize("ablate", [(), ("task",), ("state",), ("task", "state")])
def test_ablations_hide_the_task_or_the_state_from_the_policy(ablate):
    policy = RampPolicy(chunk=10)
    state = RobotState(t_host=0.0, joint_pos=np.full(6, 0.3), joint_vel=np.full(6, 0.1), gripper=0.7,
                       ee_pos=np.full(3, 0.2))
    drive(ramp_runner(policy, make_strategy("open-loop", 10), ablate=ablate), 3, state)
    seen = policy.observations[0]
    assert seen.task == ("" if "task" in ablate else "task")
    hidden = "state" in ablate
    np.testing.assert_array_equal(seen.state.joint_pos, np.zeros(6) if hidden else state.joint_pos)
    assert seen.state.gripper == (0.0 if hidden else 0.7)
    np.testing.assert_array_equal(seen.state.ee_pos, np.zeros(3) if hidden else state.ee_pos)
