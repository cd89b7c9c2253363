import pytest

from teleop_app.session import InvalidTransition, Mode, Session


def test_starts_idle_and_labels_ticks_by_who_drives():
    s = Session()
    assert s.mode is Mode.IDLE and s.source == "idle" and not s.recording
    s.set_mode(Mode.TELEOP)
    assert s.source == "human"
    s.set_mode(Mode.POLICY)
    assert s.source == "policy"
    s.set_mode(Mode.INTERVENTION)
    assert s.source == "intervention"


def test_recording_needs_a_driver_and_must_stop_before_idle():
    s = Session()
    with pytest.raises(InvalidTransition, match="before recording"):
        s.start_recording()
    s.set_mode(Mode.TELEOP)
    s.start_recording()
    assert s.label == "recording (teleop)"
    with pytest.raises(InvalidTransition, match="stop the recording"):
        s.set_mode(Mode.IDLE)
    s.stop_recording()
    s.set_mode(Mode.IDLE)
    assert [c.mode for c in s.history] == [Mode.IDLE, Mode.TELEOP, Mode.TELEOP, Mode.TELEOP, Mode.IDLE]


def test_forbidden_transition_names_the_allowed_ones():
    s = Session()
    with pytest.raises(InvalidTransition, match="allowed: policy, replay, teleop"):
        s.set_mode(Mode.INTERVENTION)


def test_listeners_see_every_change():
    s = Session()
    seen = []
    s.add_listener(seen.append)
    s.set_mode(Mode.REPLAY, reason="review")
    s.set_mode(Mode.IDLE)
    assert [(c.mode, c.reason) for c in seen] == [(Mode.REPLAY, "review"), (Mode.IDLE, "")]
