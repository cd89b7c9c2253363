"""Chunk execution strategies, tick by tick, against hand-computed answers."""

import math

import numpy as np
import pytest

from policies.base import ActionChunk
from policies.strategies import AsyncChunks, OpenLoop, TemporalEnsemble, make_strategy


def chunk(tick, values):
    """A 1-dim chunk answering the observation of ``tick``."""
    return ActionChunk(np.asarray(values, dtype=float)[:, None], tick, 0.0, 0.0)


def run(strategy, ticks):
    return [None if (a := strategy.action_for(t)) is None else float(a[0]) for t in ticks]


# -- open loop --------------------------------------------------------------------------------
def test_open_loop_runs_n_actions_then_holds_until_the_next_chunk():
    s = OpenLoop(replan_every=3)
    assert s.wants_inference(10) and s.action_for(10) is None  # nothing yet: starved
    s.on_chunk(chunk(10, [0, 1, 2, 3, 4]), tick=12)  # arrives two ticks late: runs from its first action
    assert not s.wants_inference(12)
    assert run(s, [12, 13]) == [0.0, 1.0]
    plan = s.plan(14)
    assert plan.ticks.tolist() == [14] and plan.actions[:, 0].tolist() == [2.0]
    assert run(s, [14]) == [2.0]
    assert s.wants_inference(15)  # re-plan after 3 of 5 actions
    assert run(s, [15, 16]) == [None, None]  # synchronous: the robot waits for the model
    s.on_chunk(chunk(15, [10, 11, 12, 13, 14]), tick=17)
    assert run(s, [17, 18, 19, 20]) == [10.0, 11.0, 12.0, None]
    plan = s.plan(20)
    assert plan.current.tick == 15 and plan.previous.tick == 10
    assert plan.executed_ticks.tolist() == [12, 13, 14, 17, 18, 19]
    assert plan.executed[:, 0].tolist() == [0, 1, 2, 10, 11, 12]


def test_open_loop_runs_a_short_chunk_to_its_end():
    s = OpenLoop(replan_every=8)
    s.on_chunk(chunk(0, [5, 6]), tick=1)
    assert run(s, [1, 2, 3]) == [5.0, 6.0, None] and s.wants_inference(3)


# -- temporal ensemble ------------------------------------------------------------------------
def test_ensemble_weights_the_oldest_prediction_most():
    s = TemporalEnsemble(k=0.5)
    a, b, c = chunk(0, [10, 11, 12, 13, 14]), chunk(2, [20, 21, 22, 23, 24]), chunk(3, [30, 31, 32, 33, 34])
    s.on_chunk(a, 1)
    s.on_chunk(c, 3)  # arrival order does not matter: age is the observation tick
    s.on_chunk(b, 3)
    # tick 3: A says 13 (oldest, i = 0), B says 21 (i = 1), C says 30 (i = 2)
    w = [1.0, math.exp(-0.5), math.exp(-1.0)]
    expected = (13 * w[0] + 21 * w[1] + 30 * w[2]) / sum(w)
    assert expected == pytest.approx(36.77353 / 1.974410, abs=1e-5)  # = 18.62507
    assert run(s, [3]) == [pytest.approx(expected)]
    # tick 5: A has ended; B says 23 (i = 0), C says 32 (i = 1)
    assert run(s, [5]) == [pytest.approx((23 + 32 * math.exp(-0.5)) / (1 + math.exp(-0.5)))]
    # tick 7: only C
    assert run(s, [7]) == [34.0]
    assert run(s, [8]) == [None] and s.wants_inference(8)


def test_ensemble_default_k_is_acts():
    s = TemporalEnsemble()
    s.on_chunk(chunk(0, [0, 0, 0]), 0)
    s.on_chunk(chunk(1, [1, 1, 1]), 1)
    w = np.exp(-0.01 * np.arange(2))
    assert run(s, [2]) == [pytest.approx(w[1] / w.sum())]  # = 0.4975: slightly less than the plain mean
    assert s.wants_inference(2)  # ACT queries every step


def test_ensemble_plan_blends_ahead_and_counts_stale_actions():
    s = TemporalEnsemble(k=0.0)  # plain mean
    s.on_chunk(chunk(0, [0, 2, 4, 6]), 2)  # ticks 0 and 1 passed before it arrived
    s.on_chunk(chunk(2, [10, 10, 10, 10]), 3)
    assert s.stale_dropped == 2 + 1
    plan = s.plan(3)
    assert plan.ticks.tolist() == [3, 4, 5]
    assert plan.actions[:, 0].tolist() == [8.0, 10.0, 10.0]


# -- asynchronous -----------------------------------------------------------------------------
def test_async_aligns_by_tick_drops_the_past_and_replaces_the_overlap():
    s = AsyncChunks(threshold=3, blend="latest")
    assert s.wants_inference(0)
    s.on_chunk(chunk(0, [0, 1, 2, 3, 4]), tick=1)  # action for tick 0 arrived too late
    assert s.stale_dropped == 1
    assert not s.wants_inference(1)  # 4 planned
    assert run(s, [1, 2]) == [1.0, 2.0]
    assert s.remaining(3) == 2 and s.wants_inference(3)
    assert run(s, [3]) == [3.0]
    s.on_chunk(chunk(2, [20, 21, 22, 23, 24]), tick=4)  # ticks 2, 3 passed; tick 4 overlaps
    assert s.stale_dropped == 3
    plan = s.plan(4)
    assert plan.ticks.tolist() == [4, 5, 6] and plan.actions[:, 0].tolist() == [22.0, 23.0, 24.0]
    assert plan.current.tick == 2 and plan.previous.tick == 0
    assert run(s, [4, 5, 6, 7]) == [22.0, 23.0, 24.0, None]


def test_async_weighted_blend_keeps_part_of_the_old_plan():
    s = AsyncChunks(threshold=2, blend="weighted", old_weight=0.3)
    s.on_chunk(chunk(0, [0, 10, 20, 30]), tick=0)
    s.on_chunk(chunk(1, [100, 100, 100, 100]), tick=2)  # overlap on ticks 2, 3; tick 4 is new
    assert run(s, [2, 3, 4]) == [pytest.approx(0.3 * 20 + 0.7 * 100), pytest.approx(0.3 * 30 + 0.7 * 100), 100.0]


def test_async_crossfade_hands_over_without_a_jump():
    s = AsyncChunks(threshold=2, blend="crossfade")
    s.on_chunk(chunk(0, [0, 0, 0, 0, 0, 0]), tick=0)
    s.on_chunk(chunk(1, [64, 64, 64, 64, 64, 64, 64]), tick=3)  # overlap on ticks 3, 4, 5; ticks 6, 7 new
    executed = run(s, [3, 4, 5, 6, 7])
    # the new chunk's weight is 3x² - 2x³ at x = 1/4, 2/4, 3/4: 10/64, 32/64, 54/64
    assert executed == [pytest.approx(10.0), pytest.approx(32.0), pytest.approx(54.0), 64.0, 64.0]
    steps = np.diff([0.0, 0.0, *executed])
    # no step bigger than 22 of the 64 of disagreement ("latest" jumps by all of it at once); small at both ends
    assert steps.max() == pytest.approx(22.0) and steps[1] < steps[2] and steps[-2] < steps[-3]


def test_async_skips_ticks_the_loop_did_not_ask_for():
    s = AsyncChunks(threshold=1)
    s.on_chunk(chunk(0, [0, 1, 2, 3]), tick=0)
    assert run(s, [0, 3]) == [0.0, 3.0]  # a missed deadline: ticks 1 and 2 are gone
    assert s.remaining(4) == 0


def test_reset_forgets_everything_planned():
    for s in (OpenLoop(5), TemporalEnsemble(), AsyncChunks(2)):
        s.on_chunk(chunk(0, [1, 2, 3, 4, 5, 6]), 0)
        s.reset()
        assert s.action_for(1) is None and s.wants_inference(1)
        plan = s.plan(1)
        assert plan.current is None and plan.ticks.size == 0


def test_make_strategy_by_name():
    assert isinstance(make_strategy("open-loop", 10, replan_every=8), OpenLoop)
    assert make_strategy("open-loop", 10).replan_every == 10
    assert make_strategy("async", 50).threshold == 25
    assert make_strategy("async", 50, threshold=30, blend="weighted").blend == "weighted"
    assert make_strategy("ensemble", None, k=0.1).k == 0.1
    with pytest.raises(ValueError, match="known: open-loop, ensemble, async"):
        make_strategy("sometimes", 10)
    with pytest.raises(ValueError, match="blend"):
        AsyncChunks(3, blend="average")
