"""The safety filter and kill switch, on the real SO-101 kinematics and joint limits."""

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.so101.kinematics import SO101Kinematics
from drivers.sim.model import build_model
from drivers.types import SafetyFlag
from teleop_app.safety import KillSwitch, SafetyFilter, SafetyLimits

_MODEL = build_model(64, 64)
LOWER = _MODEL.actuator_ctrlrange[:, 0].copy()
UPPER = _MODEL.actuator_ctrlrange[:, 1].copy()
STEP = 0.05
BOX_MIN = np.array([-0.1, -0.45, 0.004])
BOX_MAX = np.array([0.55, 0.45, 0.5])
KIN = SO101Kinematics()


def make_filter(workspace: bool = True) -> SafetyFilter:
    limits = SafetyLimits(LOWER, UPPER, STEP, BOX_MIN if workspace else None, BOX_MAX if workspace else None)
    return SafetyFilter(limits, KIN)


def inside_box(q: np.ndarray, tol: float = 1e-9) -> bool:
    pos, _ = KIN.fk(q)
    return bool(np.all(pos >= BOX_MIN - tol) and np.all(pos <= BOX_MAX + tol))


floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
wild_vectors = st.one_of(
    st.lists(floats, min_size=6, max_size=6).map(np.array),
    st.lists(st.floats(-10, 10), min_size=6, max_size=6).map(np.array),
    st.lists(floats, min_size=0, max_size=9).map(np.array),  # wrong lengths
    st.just(np.zeros((2, 3))),
    st.just(None),
    st.just("0,0,0,0,0,0"),
    st.just([1, 2, "x", 4, 5, 6]),
)


@st.composite
def safe_references(draw):
    """Joint positions within the limits whose end effector is inside the box."""
    for _ in range(50):
        u = np.array([draw(st.floats(0, 1)) for _ in range(6)])
        q = LOWER + u * (UPPER - LOWER)
        if inside_box(q):
            return q
    return np.array([0.0, -1.0, 1.0, 0.5, 0.0, 0.5])  # a raised pose, inside the box


settings.register_profile("safety", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])


@settings(settings.get_profile("safety"))
@given(target=wild_vectors, reference=safe_references())
def test_any_input_gives_a_safe_target(target, reference):
    out, flags = make_filter().filter(target, reference)
    assert out.shape == (6,) and np.all(np.isfinite(out))
    assert np.all(out >= LOWER) and np.all(out <= UPPER)
    assert np.all(np.abs(out - reference) <= STEP + 1e-12)
    assert inside_box(out)


@settings(settings.get_profile("safety"), max_examples=60)
@given(targets=st.lists(wild_vectors, min_size=5, max_size=40), start=safe_references())
def test_limits_hold_over_any_sequence(targets, start):
    f = make_filter()
    ref = start
    for target in targets:
        out, _ = f.filter(target, ref)
        assert np.all(np.abs(out - ref) <= STEP + 1e-12) and inside_box(out)
        assert np.all(out >= LOWER) and np.all(out <= UPPER)
        ref = out


@pytest.mark.parametrize("bad", [np.full(6, np.nan), np.array([0, 0, np.inf, 0, 0, 0.0]), np.zeros(5),
                                 np.zeros(7), None, "hello", np.zeros((6, 1))])
def test_invalid_commands_become_a_hold(bad):
    f = make_filter()
    ref = np.array([0.1, -0.8, 0.9, 0.4, 0.0, 0.6])
    out, flags = f.filter(bad, ref)
    np.testing.assert_array_equal(out, ref)
    assert SafetyFlag.INVALID in flags
    assert f.counts["INVALID"] == 1


def test_step_and_joint_limits_are_flagged():
    f = make_filter(workspace=False)
    ref = np.zeros(6)
    out, flags = f.filter(np.array([10.0, 0, 0, 0, 0, 0]), ref)
    assert out[0] == pytest.approx(STEP)
    assert SafetyFlag.JOINT_LIMIT in flags and SafetyFlag.STEP_LIMIT in flags
    out, flags = f.filter(np.array([0.01, 0, 0, 0, 0, 0]), ref)
    assert flags == SafetyFlag.NONE and out[0] == 0.01


def test_workspace_stops_the_gripper_at_the_table():
    """Pushing straight down from above the table ends at the box floor, not below it."""
    f = make_filter()
    q = KIN.ik(np.array([0.0, -0.5, 0.8, 0.9, 0.0, 1.0]), np.array([0.3, 0.0, 0.05]))
    for _ in range(400):
        pos, rot = KIN.fk(q)
        target = KIN.ik(q, pos + np.array([0.0, 0.0, -0.01]), rot)
        q, flags = f.filter(target, q)
    z = KIN.fk(q)[0][2]
    assert BOX_MIN[2] - 1e-9 <= z < BOX_MIN[2] + 0.01
    assert f.counts["WORKSPACE"] > 0


def test_kill_switch_latches_first_reason_until_rearmed():
    kill = KillSwitch()
    seen = []
    kill.add_listener(lambda latched, reason: seen.append((latched, reason)))
    threads = [threading.Thread(target=kill.trigger, args=(f"t{i}",)) for i in range(8)]
    kill.trigger("first")
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert kill.latched and kill.reason == "first" and kill.generation == 1 and kill.triggers == 9
    kill.rearm()
    assert not kill.latched and kill.reason is None
    kill.trigger("again")
    assert kill.generation == 2 and kill.reason == "again"
    assert seen == [(True, "first"), (False, None), (True, "again")]
