import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from teleop_app.config import load_rig  # noqa: E402
from teleop_app.loop import ControlLoop  # noqa: E402
from teleop_app.rig import build_rig  # noqa: E402

PATIENT_WATCHDOG_PERIODS = 100  # 1 s at 100 Hz


def pytest_collection_finish(session):
    """Freeze what collection imported, as the app freezes its modules and window before its loop starts."""
    from teleop_app.gc_pauses import freeze_long_lived

    freeze_long_lived()


@pytest.fixture(autouse=True)
def patient_watchdog(request, monkeypatch):
    """Control loops built in a test wait 1 s, not the shipped 0.2 s, before their watchdog trips.

    On a shared 2-core CI machine the loop thread is sometimes not run for 210-250 ms
    (the watchdog's reason says so: "waiting for its next tick"). The trip then latches
    the kill switch, and a test of something else (a STOP reason, a policy rollout)
    fails on it. Tests marked ``shipped_watchdog`` keep the rig's own setting, and so
    do the tests of :class:`~teleop_app.safety.Watchdog` itself.
    """
    if request.node.get_closest_marker("shipped_watchdog"):
        return
    build = ControlLoop.__init__

    def init(self, *args, watchdog_periods: int = 20, **kwargs):
        build(self, *args, watchdog_periods=max(watchdog_periods, PATIENT_WATCHDOG_PERIODS), **kwargs)

    monkeypatch.setattr(ControlLoop, "__init__", init)


@pytest.fixture
def sim_rig():
    """The built-in sim rig without cameras (tests of cameras start their own), not yet started."""
    rig = build_rig(load_rig().without_cameras(), active_input="scripted")
    yield rig
    rig.close()
