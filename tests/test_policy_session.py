"""The Policy tab's model without Qt: the action plot's curves, and rollouts on the sim rig."""

import numpy as np
import pytest

from policies import loading
from policies.base import ActionChunk, ActionKind
from policies.runner import RunnerView
from policies.strategies import make_strategy
from policy_helpers import HoldPolicy  # tests/ is on sys.path
from recordings.reader import Episode
from teleop_app.console import Console
from teleop_app.policy_session import (
    LoadOptions,
    PolicyRunError,
    PolicySession,
    RunOptions,
    SentTrail,
    StrategyOptions,
    chunk_curves,
)
from teleop_app.session import Mode
from waiting import wait_for

LATENCY = {"last": None, "p50": None, "p99": None, "max": None}


def chunk(tick, values):
    actions = np.repeat(np.asarray(values, float)[:, None], 2, axis=1)
    return ActionChunk(actions, tick, 0.0, 0.0)


def view_at(strategy, tick, kind=ActionKind.JOINT):
    return RunnerView("running", kind, tick, strategy.plan(tick), None, None, False, LATENCY, 0, None)


def test_curves_put_executed_actions_left_of_now_and_the_chunk_ahead_of_it():
    strategy = make_strategy("async", 10, threshold=5)
    strategy.on_chunk(chunk(0, np.arange(10) * 0.1), 2)  # arrived at tick 2: ticks 0 and 1 had passed
    for t in range(2, 6):
        strategy.action_for(t)
    strategy.on_chunk(chunk(4, 1.0 + np.arange(10) * 0.1), 6)
    sent = SentTrail()
    for t in (3, 4, 4, 5):  # the view samples the same tick twice at times: kept once
        sent.add(t, np.full(2, t / 10))

    c = chunk_curves(view_at(strategy, 6), now_tick=6, rate_hz=100.0, past_s=1.0, sent=sent)
    assert c.dim == 2
    np.testing.assert_allclose(c.executed[0], [-0.04, -0.03, -0.02, -0.01])
    np.testing.assert_allclose(c.executed[1][:, 0], [0.2, 0.3, 0.4, 0.5])
    np.testing.assert_allclose(c.current[0], (np.arange(4, 14) - 6) / 100)  # starts before now: latency
    np.testing.assert_allclose(c.previous[0], (np.arange(0, 10) - 6) / 100)
    np.testing.assert_allclose(c.planned[0], (np.arange(6, 14) - 6) / 100)  # what runs from now on
    np.testing.assert_allclose(c.planned[1][0], [1.2, 1.2])  # the newest chunk replaced the overlap
    np.testing.assert_allclose(c.sent[0], [-0.03, -0.02, -0.01])

    ee = chunk_curves(view_at(strategy, 6, ActionKind.EE_DELTA), 6, 100.0, 1.0, sent)
    assert ee.sent[0].size == 0  # sent joint targets do not share the axes of end-effector steps


def test_curves_keep_the_window_and_about_a_point_per_pixel():
    strategy = make_strategy("open-loop", 1000)
    strategy.on_chunk(chunk(0, np.linspace(0, 1, 1000)), 0)
    for t in range(900):
        strategy.action_for(t)
    c = chunk_curves(view_at(strategy, 900), 900, 100.0, past_s=3.0, max_points=100)
    x = c.executed[0]
    assert x.min() >= -3.0 and x[-1] == pytest.approx(-0.01) and x.size <= 100
    assert c.current[0].size <= 100 and c.current[0][-1] == pytest.approx(0.99)


def test_strategy_options_explain_bad_values():
    with pytest.raises(PolicyRunError, match="threshold"):
        StrategyOptions("async", threshold=-1).build(10)
    assert StrategyOptions("ensemble", k=0.05).build(10).k == 0.05


@pytest.fixture
def session(sim_rig, tmp_path, monkeypatch):
    monkeypatch.setitem(loading.FILE_LOADERS, ".hold", lambda path, **options: HoldPolicy(chunk=10, drift=0.001))
    (tmp_path / "m.hold").write_text("synthetic")
    sim_rig.start()
    console = Console(sim_rig, tmp_path / "data", task="hold the arm")
    s = PolicySession(console)
    s.load(LoadOptions(str(tmp_path / "m.hold")))
    yield s
    s.close()


def test_a_recorded_rollout_is_labelled_and_noted(session):
    console, rig = session.console, session.rig
    session.start(RunOptions(StrategyOptions("open-loop", replan_every=5), takeover=None, record=True))
    assert wait_for(lambda: console.recorder.counts.get("ticks", 0) > 30, timeout=5)
    result = session.stop()
    assert result.outcome == "failure" and console.mode is Mode.IDLE and rig.loop.policy is None
    with Episode.open(result.path) as ep:
        assert ep.meta["notes"].startswith("policy ") and "open-loop, re-plan every 5" in ep.meta["notes"]
        ticks = ep.ticks()
    assert set(ticks["source_names"][ticks["source"]]) == {"policy"}


def test_teleop_taking_the_robot_ends_the_rollout(session):
    console = session.console
    session.start(RunOptions(takeover=None))  # the rig's active input is the scripted expert: it always moves
    assert wait_for(lambda: session.rollout.runner.chunks > 0, timeout=5)
    console.set_teleop(True)  # the window's Teleop box: POLICY -> TELEOP
    status = session.poll()
    assert status.phase == "stopped" and session.rig.loop.policy is None and console.mode is Mode.TELEOP
    assert "teleop taking the robot" in session.message


def test_a_kill_ends_the_rollout_so_rearm_does_not_resume_it(session):
    rig = session.rig
    session.start(RunOptions(takeover=None))  # the rig's active input is the scripted expert: it always moves
    assert wait_for(lambda: session.rollout.runner.chunks > 0, timeout=5)
    session.console.stop()
    assert session.on_kill() and rig.loop.policy is None
    session.console.rearm()
    assert session.console.mode is Mode.IDLE and session.poll().phase == "stopped"
    session.start(RunOptions(takeover=None))  # only Start gives the robot back to the policy
    assert session.console.mode is Mode.POLICY
    with pytest.raises(PolicyRunError, match="already running"):
        session.start(RunOptions(takeover=None))
