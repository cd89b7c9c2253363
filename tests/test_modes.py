"""The control modes: who may follow whom, and who hears about it."""

import pytest

from teleop_app.modes import InvalidTransition, Mode, Modes


def test_starts_idle_and_keeps_a_history():
    s = Modes()
    assert s.mode is Mode.IDLE
    s.set_mode(Mode.TELEOP, reason="operator")
    s.set_mode(Mode.POLICY)
    s.set_mode(Mode.INTERVENTION)
    s.set_mode(Mode.INTERVENTION)  # no change, no entry
    assert [c.mode for c in s.history] == [Mode.IDLE, Mode.TELEOP, Mode.POLICY, Mode.INTERVENTION]


def test_forbidden_transition_names_the_allowed_ones():
    s = Modes()
    with pytest.raises(InvalidTransition, match="allowed: policy, replay, teleop"):
        s.set_mode(Mode.INTERVENTION)
    s.set_mode(Mode.REPLAY)
    with pytest.raises(InvalidTransition, match="allowed: idle, teleop"):
        s.set_mode(Mode.POLICY)


def test_listeners_see_every_change():
    s = Modes()
    seen = []
    s.add_listener(seen.append)
    s.set_mode(Mode.REPLAY, reason="review")
    s.set_mode(Mode.IDLE)
    assert [(c.mode, c.reason) for c in seen] == [(Mode.REPLAY, "review"), (Mode.IDLE, "")]
